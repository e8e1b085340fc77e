/* test_safetensors.c - safetensors reader (fixtures, corrupt variants, shards) and streaming writer. */
#include "models/models.h"
#include "models_test_util.h"
#include "test.h"

#include <cjson/cJSON.h>

static char g_dir[1024];

static void test_fixtures(void) {
    static const char *models[] = {"stories260K-hf", "sotu-qwen3", "tiny-llama", "tiny-qwen2", "tiny-qwen3"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char p[256];
        el_st_file st;
        snprintf(p, sizeof p, "fixtures/models/%s", models[i]);
        CHECK_OK(el_st_open(p, &st)); /* directory form */
        CHECKF(st.n_tensors > 10, "%s: %lld tensors", models[i], (long long)st.n_tensors);
        const el_st_tensor *e = el_st_find(&st, "model.embed_tokens.weight");
        CHECKF(e && e->n_dims == 2 && e->shape[0] > 0 && e->nbytes == (size_t)(e->shape[0] * e->shape[1]) * el_dtype_size(e->dtype),
               "%s: embedding", models[i]);
        CHECK(el_st_find(&st, "no.such.tensor") == NULL);
        for (int64_t k = 1; k < st.n_tensors; k++) CHECK(strcmp(st.tensors[k - 1].name, st.tensors[k].name) < 0);
        el_st_close(&st);
        snprintf(p, sizeof p, "fixtures/models/%s/reference.safetensors", models[i]);
        CHECK_OK(el_st_open(p, &st)); /* file form */
        CHECK(st.n_tensors >= 1);
        el_st_close(&st);
    }
}

static void test_writer_roundtrip(void) {
    char p[1200];
    snprintf(p, sizeof p, "%s/w.safetensors", g_dir);
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {0x3f80, 0x4000, 0xc040};
    int32_t c[1] = {42};
    el_st_decl d[4] = {
        {"a", EL_DTYPE_F32, 2, {2, 3}}, {"b", EL_DTYPE_BF16, 1, {3}}, {"empty", EL_DTYPE_F16, 1, {0}},
        {"c", EL_DTYPE_I32, 0, {0}},
    };
    el_st_writer *w;
    CHECK_OK(el_st_writer_open(p, d, 4, "{\"format\":\"pt\",\"k\":\"v\"}", &w));
    CHECK_OK(el_st_writer_write(w, a, 10)); /* split writes */
    CHECK_OK(el_st_writer_write(w, (char *)a + 10, 14));
    CHECK_OK(el_st_writer_write(w, b, 6));
    CHECK_OK(el_st_writer_write(w, c, 4));
    CHECK(el_st_writer_write(w, c, 1) == EDGELLM_STATUS_INVALID_ARG); /* beyond the declared data */
    CHECK_OK(el_st_writer_close(w));
    el_st_file st;
    CHECK_OK(el_st_open(p, &st));
    CHECK(st.n_tensors == 4);
    const el_st_tensor *t = el_st_find(&st, "a");
    CHECK(t && t->dtype == EL_DTYPE_F32 && t->n_dims == 2 && t->shape[1] == 3 && !memcmp(t->data, a, 24));
    t = el_st_find(&st, "b");
    CHECK(t && t->dtype == EL_DTYPE_BF16 && !memcmp(t->data, b, 6));
    t = el_st_find(&st, "c");
    int32_t cv = 0;
    if (t) memcpy(&cv, t->data, 4);
    CHECK(t && t->dtype == EL_DTYPE_I32 && t->n_dims == 0 && cv == 42);
    t = el_st_find(&st, "empty");
    CHECK(t && t->nbytes == 0);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(st.metadata, "k");
    CHECK(cJSON_IsString(k) && !strcmp(k->valuestring, "v"));
    /* the data section starts 8-byte aligned */
    size_t n;
    char *raw = tu_read(p, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)raw[i];
    CHECK(hl % 8 == 0);
    free(raw);
    el_st_close(&st);
    /* incomplete close fails and removes the file */
    CHECK_OK(el_st_writer_open(p, d, 2, NULL, &w));
    CHECK_OK(el_st_writer_write(w, a, 24));
    CHECK(el_st_writer_close(w) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(tu_contains(edgellm_last_error(), "'b' is incomplete"));
    CHECK(!el_file_exists(p));
    /* abort removes the file */
    CHECK_OK(el_st_writer_open(p, d, 2, NULL, &w));
    el_st_writer_abort(w);
    CHECK(!el_file_exists(p));
}

static void expect_bad(const char *label, const char *path, const char *needle) {
    el_st_file st;
    edgellm_status s = el_st_open(path, &st);
    CHECKF(s == EDGELLM_STATUS_FORMAT, "%s: status %d (%s)", label, (int)s, edgellm_last_error());
    CHECKF(tu_contains(edgellm_last_error(), needle), "%s: message '%s' lacks '%s'", label, edgellm_last_error(), needle);
    CHECKF(tu_contains(edgellm_last_error(), path), "%s: message '%s' does not name the file", label,
           edgellm_last_error());
}

static void test_corrupt(void) {
    char p[1200];
    snprintf(p, sizeof p, "%s/bad.safetensors", g_dir);
    /* a valid baseline */
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16);
    el_st_file st;
    CHECK_OK(el_st_open(p, &st));
    el_st_close(&st);
    /* truncated: cut inside the data */
    size_t n;
    char *raw = tu_read(p, &n);
    tu_write(p, raw, n - 5);
    expect_bad("truncated data", p, "'x'");
    tu_write(p, raw, 20); /* inside the header */
    expect_bad("truncated header", p, "truncated");
    tu_write(p, raw, 5);
    expect_bad("tiny file", p, "truncated");
    tu_write(p, "", 0);
    expect_bad("empty file", p, "truncated");
    free(raw);
    /* header length absurd / zero */
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    tu_write(p, big, 16);
    expect_bad("huge header length", p, "header length");
    unsigned char zero[16] = {0};
    tu_write(p, zero, 16);
    expect_bad("zero header length", p, "header length");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",", 0);
    expect_bad("bad JSON", p, "not valid JSON");
    tu_write_st(p, "[1,2,3]", 0);
    expect_bad("not an object", p, "not a JSON object");
    tu_write_st(p, "{} garbage", 0);
    expect_bad("trailing garbage", p, "trailing");
    tu_write_st(p, "{\"x\":{\"dtype\":\"Q4_K\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
    expect_bad("unknown dtype", p, "tensor 'x': unknown dtype 'Q4_K'");
    tu_write_st(p, "{\"x\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
    expect_bad("missing dtype", p, "'x': missing dtype");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}", 16);
    expect_bad("shape/size mismatch", p, "tensor 'x': shape and dtype need 20 bytes but data_offsets span 16");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16);
    expect_bad("negative dim", p, "'x': bad shape");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,4],\"data_offsets\":[0,16]}}", 16);
    expect_bad("too many dims", p, "'x': shape");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 16);
    expect_bad("out of bounds", p, "'x': data_offsets [16, 32] out of bounds");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16);
    expect_bad("begin > end", p, "out of bounds");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 16);
    expect_bad("bad offsets", p, "data_offsets must be");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                   "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                16);
    expect_bad("overlap", p, "overlap");
    tu_write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                16);
    expect_bad("duplicate", p, "duplicate tensor name 'x'");
    tu_write_st(p, "{\"x\":[1]}", 0);
    expect_bad("entry not object", p, "'x'");
    tu_write_st(p, "{\"__metadata__\":5}", 0);
    expect_bad("metadata not object", p, "__metadata__");
    /* every dtype the format knows parses */
    tu_write_st(p, "{\"a\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                   "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                   "\"c\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[4,8]},"
                   "\"d\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]},"
                   "\"e\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[16,24]},"
                   "\"f\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[24,32]},"
                   "\"__metadata__\":{\"format\":\"pt\"}}",
                32);
    CHECK_OK(el_st_open(p, &st));
    CHECK(st.n_tensors == 6 && el_st_find(&st, "c")->dtype == EL_DTYPE_F8_E4M3 &&
          el_st_find(&st, "d")->dtype == EL_DTYPE_I64 && el_st_find(&st, "a")->dtype == EL_DTYPE_I8 &&
          el_st_find(&st, "b")->dtype == EL_DTYPE_U8);
    CHECK(((const unsigned char *)el_st_find(&st, "d")->data)[0] == 8); /* byte i = i & 0xff */
    el_st_close(&st);
    /* missing file / dir without weights: IO */
    snprintf(p, sizeof p, "%s/nope.safetensors", g_dir);
    CHECK(el_st_open(p, &st) == EDGELLM_STATUS_IO);
    snprintf(p, sizeof p, "%s/emptydir", g_dir);
    el_mkdir_p(p);
    CHECK(el_st_open(p, &st) == EDGELLM_STATUS_IO);
}

static void test_sharded(void) {
    char d[1200], p[1300];
    snprintf(d, sizeof d, "%s/sharded", g_dir);
    el_mkdir_p(d);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    tu_write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"m\":\"1\"}}", 8);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    tu_write_st(p, "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                   "\"c\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]}}",
                6);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    const char *idx = "{\"metadata\":{\"total_size\":14},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                      "\"b\":\"model-00002-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\"}}";
    tu_write(p, idx, strlen(idx));
    el_st_file st;
    CHECK_OK(el_st_open(d, &st));
    CHECK(st.n_maps == 2 && st.n_tensors == 3);
    CHECK(el_st_find(&st, "a")->shard == 0 && el_st_find(&st, "c")->shard == 1);
    CHECK(((const unsigned char *)el_st_find(&st, "c")->data)[0] == 4);
    CHECK(st.metadata && cJSON_GetObjectItemCaseSensitive(st.metadata, "m"));
    el_st_close(&st);
    /* a tensor listed but absent */
    idx = "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\","
          "\"c\":\"model-00002-of-00002.safetensors\",\"zz\":\"model-00001-of-00002.safetensors\"}}";
    tu_write(p, idx, strlen(idx));
    CHECK(el_st_open(d, &st) == EDGELLM_STATUS_FORMAT && tu_contains(edgellm_last_error(), "'zz'"));
    /* a tensor in a shard but mapped elsewhere / not at all */
    idx = "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}";
    tu_write(p, idx, strlen(idx));
    CHECK(el_st_open(d, &st) == EDGELLM_STATUS_FORMAT && tu_contains(edgellm_last_error(), "'c'"));
    /* a missing shard file */
    idx = "{\"weight_map\":{\"a\":\"model-00001-of-00003.safetensors\"}}";
    tu_write(p, idx, strlen(idx));
    CHECK(el_st_open(d, &st) == EDGELLM_STATUS_IO && tu_contains(edgellm_last_error(), "model-00001-of-00003"));
    /* path escapes */
    idx = "{\"weight_map\":{\"a\":\"../x.safetensors\"}}";
    tu_write(p, idx, strlen(idx));
    CHECK(el_st_open(d, &st) == EDGELLM_STATUS_FORMAT);
    idx = "{\"nothing\":1}";
    tu_write(p, idx, strlen(idx));
    CHECK(el_st_open(d, &st) == EDGELLM_STATUS_FORMAT && tu_contains(edgellm_last_error(), "weight_map"));
    tu_write(p, "{", 1);
    CHECK(el_st_open(d, &st) == EDGELLM_STATUS_FORMAT);
}

int main(void) {
    tu_scratch(g_dir, sizeof g_dir, "test_safetensors");
    test_fixtures();
    test_writer_roundtrip();
    test_corrupt();
    test_sharded();
    el_rm_rf(g_dir);
    return t_finish("test_safetensors");
}
