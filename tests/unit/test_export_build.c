/* test_export_build.c - export + build + engine open round trips for every fixture and dtype, error
 * paths (missing dir, unknown arch, wrong shapes, quantization, profile), sharded checkpoints and
 * engine corruption. */
#include "edgellm/edgellm.h"
#include "engine/engine.h"
#include "models/models.h"
#include "models_test_util.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <dirent.h>

static char g_dir[1024];
static const char *k_models[] = {"stories260K-hf", "sotu-qwen3", "tiny-llama", "tiny-qwen2", "tiny-qwen3"};
#define N_MODELS (sizeof k_models / sizeof k_models[0])

static void copy_dir(const char *src, const char *dst) {
    el_mkdir_p(dst);
    DIR *d = opendir(src);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char a[2048], b[2048];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        if (strcmp(e->d_name, "reference.safetensors") && el_copy_file(a, b) != EDGELLM_STATUS_OK) {
            fprintf(stderr, "copy %s failed\n", a);
            exit(2);
        }
    }
    if (d) closedir(d);
}

static bool no_tmp_left(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    bool ok = true;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) ok = false;
    if (d) closedir(d);
    return ok;
}

static void load_hp(const char *dir, el_hparams *hp) {
    char p[2048];
    cJSON *c = NULL, *g = NULL;
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_OK(el_json_load(p, 0, &c));
    snprintf(p, sizeof p, "%s/generation_config.json", dir);
    if (el_file_exists(p)) CHECK_OK(el_json_load(p, 0, &g));
    CHECK_OK(el_hparams_from_config(c, g, hp));
    cJSON_Delete(c);
    cJSON_Delete(g);
}

/* Compares every engine tensor with the source tensor converted as the builder promises. */
static void check_engine_vs_source(const char *label, const el_engine *e, const el_st_file *src, el_dtype want_w) {
    for (int64_t i = 0; i < e->n_tensors; i++) {
        const el_engine_tensor *t = &e->tensors[i];
        const el_st_tensor *s = el_st_find(src, t->name);
        CHECKF(s != NULL, "%s: %s not in source", label, t->name);
        if (!s) continue;
        el_dtype dt = t->n_dims == 2 ? want_w : EL_DTYPE_F32;
        CHECKF(t->dtype == dt, "%s: %s dtype %s", label, t->name, el_dtype_name(t->dtype));
        size_t n = s->nbytes / el_dtype_size(s->dtype);
        void *tmp = malloc(n * 4 + 4), *conv = malloc(n * 4 + 4);
        memcpy(tmp, s->data, s->nbytes);
        el_convert(dt, conv, s->dtype, tmp, n);
        CHECKF(t->nbytes == n * el_dtype_size(dt) && !memcmp(conv, t->data, t->nbytes), "%s: %s bytes differ", label,
               t->name);
        CHECKF(((uintptr_t)t->data - (uintptr_t)e->map.data) % 64 == 0, "%s: %s misaligned", label, t->name);
        free(tmp);
        free(conv);
    }
}

static void test_roundtrip(void) {
    static const char *dtypes[] = {NULL, "fp32", "bf16", "fp16"};
    for (size_t m = 0; m < N_MODELS; m++) {
        char src[256];
        snprintf(src, sizeof src, "fixtures/models/%s", k_models[m]);
        el_hparams hp_src;
        load_hp(src, &hp_src);
        el_st_file st;
        CHECK_OK(el_st_open(src, &st));
        for (size_t d = 0; d < 4; d++) {
            char label[128], exp[1200], eng[1200];
            snprintf(label, sizeof label, "%s/%s", k_models[m], dtypes[d] ? dtypes[d] : "keep");
            snprintf(exp, sizeof exp, "%s/%s-%s-exp", g_dir, k_models[m], dtypes[d] ? dtypes[d] : "keep");
            snprintf(eng, sizeof eng, "%s/%s-%s-eng", g_dir, k_models[m], dtypes[d] ? dtypes[d] : "keep");
            edgellm_export_params ep = edgellm_export_params_default();
            ep.dtype = dtypes[d];
            CHECK_OK(edgellm_export(src, exp, &ep));
            edgellm_build_params bp = edgellm_build_params_default();
            bp.max_batch_size = 2;
            CHECK_OK(edgellm_build(exp, eng, &bp));
            el_engine *e = NULL;
            CHECK_OK(el_engine_open(eng, true, &e));
            if (!e) continue;
            el_dtype want = EL_DTYPE_COUNT;
            if (dtypes[d]) el_dtype_from_user_name(dtypes[d], &want);
            else want = el_st_find(&st, "model.embed_tokens.weight")->dtype;
            CHECKF(e->weight_dtype == want, "%s: weight dtype", label);
            CHECKF(memcmp(&e->hp, &hp_src, sizeof hp_src) == 0, "%s: engine hparams differ from the checkpoint's", label);
            CHECK(e->profile.max_batch_size == 2 && e->profile.max_input_len == 1024 &&
                  e->profile.max_kv_cache_capacity == 4096 && !strcmp(e->profile.backend, "cpu"));
            check_engine_vs_source(label, e, &st, want);
            /* the export's safetensors also equal the converted source (1-D kept as is) */
            char p[1300];
            snprintf(p, sizeof p, "%s/model.safetensors", exp);
            el_st_file ex;
            CHECK_OK(el_st_open(p, &ex));
            CHECKF(ex.n_tensors == e->n_tensors, "%s: export has %lld tensors, engine %lld", label,
                   (long long)ex.n_tensors, (long long)e->n_tensors);
            for (int64_t i = 0; i < ex.n_tensors; i++) {
                const el_st_tensor *a = &ex.tensors[i], *b = el_st_find(&st, a->name);
                if (!b) continue;
                if (a->n_dims == 1) CHECK(a->dtype == b->dtype && !memcmp(a->data, b->data, a->nbytes));
                else CHECK(a->dtype == want);
            }
            el_st_close(&ex);
            /* tokenizer files travel along */
            snprintf(p, sizeof p, "%s/tokenizer.json", src);
            bool has_tok = el_file_exists(p);
            snprintf(p, sizeof p, "%s/tokenizer.json", eng);
            CHECKF(el_file_exists(p) == has_tok, "%s: tokenizer.json copy", label);
            snprintf(p, sizeof p, "%s/generation_config.json", src);
            bool has_gen = el_file_exists(p);
            snprintf(p, sizeof p, "%s/generation_config.json", eng);
            CHECK(el_file_exists(p) == has_gen);
            edgellm_engine_info info;
            CHECK_OK(edgellm_engine_info_read(eng, &info));
            CHECK(info.n_layer == hp_src.n_layer && info.n_vocab == hp_src.n_vocab && info.has_tokenizer == has_tok &&
                  info.weight_bytes == e->weight_bytes && info.file_bytes == e->map.size && info.max_batch_size == 2);
            CHECK(!strcmp(info.weight_dtype, dtypes[d] ? dtypes[d] : (want == EL_DTYPE_F32 ? "fp32" : "bf16")));
            CHECK(!strcmp(info.arch, hp_src.arch));
            /* lookups */
            CHECK(el_engine_find(e, "model.norm.weight") != NULL);
            CHECK(el_engine_find(e, "lm_head.weight") == (hp_src.tied_embd ? NULL : el_engine_find(e, "lm_head.weight")));
            CHECK(el_engine_find(e, "nope") == NULL);
            el_engine_close(e);
            /* exporting again without overwrite fails, with overwrite works */
            CHECK(edgellm_export(src, exp, &ep) == EDGELLM_STATUS_INVALID_ARG);
            ep.overwrite = true;
            CHECK_OK(edgellm_export(src, exp, &ep));
            el_rm_rf(exp);
            el_rm_rf(eng);
        }
        el_st_close(&st);
    }
    CHECK(no_tmp_left(g_dir));
}

static void set_cfg(const char *dir, const char *key, cJSON *val) {
    char p[2048];
    snprintf(p, sizeof p, "%s/config.json", dir);
    cJSON *c = NULL;
    CHECK_OK(el_json_load(p, 0, &c));
    if (!strcmp(key, "architectures")) {
        cJSON_ReplaceItemInObject(c, key, val);
    } else {
        cJSON_DeleteItemFromObject(c, key);
        cJSON_AddItemToObject(c, key, val);
    }
    char *t = cJSON_Print(c);
    tu_write(p, t, strlen(t));
    cJSON_free(t);
    cJSON_Delete(c);
}

static void test_errors(void) {
    char src[1200], out[1200];
    snprintf(out, sizeof out, "%s/err-out", g_dir);
    edgellm_status s = edgellm_export("fixtures/models/does-not-exist", out, NULL);
    CHECK(s == EDGELLM_STATUS_IO && tu_contains(edgellm_last_error(), "does-not-exist"));
    CHECK(!el_dir_exists(out));
    /* unknown architecture */
    snprintf(src, sizeof src, "%s/gpt2", g_dir);
    copy_dir("fixtures/models/tiny-qwen2", src);
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString("GPT2LMHeadModel"));
    set_cfg(src, "architectures", a);
    s = edgellm_export(src, out, NULL);
    CHECK(s == EDGELLM_STATUS_UNSUPPORTED && tu_contains(edgellm_last_error(), "unsupported architecture 'GPT2LMHeadModel'"));
    CHECK(!el_dir_exists(out) && no_tmp_left(g_dir));
    el_rm_rf(src);
    /* config shapes that do not match the weights: fails naming the tensor and both shapes */
    snprintf(src, sizeof src, "%s/badshape", g_dir);
    copy_dir("fixtures/models/tiny-qwen2", src);
    set_cfg(src, "intermediate_size", cJSON_CreateNumber(320));
    s = edgellm_export(src, out, NULL);
    CHECK(s == EDGELLM_STATUS_FORMAT);
    CHECKF(tu_contains(edgellm_last_error(),
                       "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [384, 128] in the checkpoint but "
                       "config.json implies [320, 128]"),
           "message: %s", edgellm_last_error());
    CHECK(!el_dir_exists(out) && no_tmp_left(g_dir));
    set_cfg(src, "intermediate_size", cJSON_CreateNumber(384));
    set_cfg(src, "num_hidden_layers", cJSON_CreateNumber(4));
    s = edgellm_export(src, out, NULL);
    CHECK(s == EDGELLM_STATUS_FORMAT && tu_contains(edgellm_last_error(), "missing tensor 'model.layers.3.input_layernorm.weight'"));
    set_cfg(src, "num_hidden_layers", cJSON_CreateNumber(3));
    set_cfg(src, "tie_word_embeddings", cJSON_CreateFalse());
    s = edgellm_export(src, out, NULL);
    CHECK(s == EDGELLM_STATUS_FORMAT && tu_contains(edgellm_last_error(), "'lm_head.weight'"));
    set_cfg(src, "tie_word_embeddings", cJSON_CreateTrue());
    /* unknown quantization scheme (the schemes themselves: test_quant_export.c) */
    edgellm_export_params ep = edgellm_export_params_default();
    ep.quantization = "int5_awq";
    s = edgellm_export(src, out, &ep);
    CHECK(s == EDGELLM_STATUS_INVALID_ARG && tu_contains(edgellm_last_error(), "unknown quantization 'int5_awq'"));
    ep.quantization = "none";
    ep.dtype = "int3";
    CHECK(edgellm_export(src, out, &ep) == EDGELLM_STATUS_INVALID_ARG);
    /* corrupt safetensors */
    char p[1300];
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    size_t n;
    char *raw = tu_read(p, &n);
    tu_write(p, raw, n / 2);
    s = edgellm_export(src, out, NULL);
    CHECK(s == EDGELLM_STATUS_FORMAT && tu_contains(edgellm_last_error(), "model.safetensors"));
    CHECK(!el_dir_exists(out) && no_tmp_left(g_dir));
    /* no weights at all */
    unlink(p);
    CHECK(edgellm_export(src, out, NULL) == EDGELLM_STATUS_IO);
    tu_write(p, raw, n);
    free(raw);
    /* no config.json */
    snprintf(p, sizeof p, "%s/config.json", src);
    unlink(p);
    CHECK(edgellm_export(src, out, NULL) == EDGELLM_STATUS_IO && tu_contains(edgellm_last_error(), "config.json"));
    el_rm_rf(src);

    /* build: profile validation, non-export input */
    char exp[1200];
    snprintf(exp, sizeof exp, "%s/prof-exp", g_dir);
    CHECK_OK(edgellm_export("fixtures/models/tiny-qwen3", exp, NULL));
    static const struct { const char *backend; int b, i, k; } bad[] = {
        {"cpu", 0, 16, 64}, {"cpu", 257, 16, 64}, {"cpu", 1, 0, 64}, {"cpu", 1, 65, 64},
        {"cpu", 1, 16, (1 << 20) + 1}, {"metal", 1, 16, 64}, {"cpu", 1, 16, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        edgellm_build_params bp = {bad[i].backend, bad[i].b, bad[i].i, bad[i].k, false, NULL};
        CHECKF(edgellm_build(exp, out, &bp) == EDGELLM_STATUS_INVALID_ARG, "bad profile %zu accepted", i);
        CHECK(!el_dir_exists(out));
    }
    edgellm_build_params bp = {"cuda", 256, 1 << 20, 1 << 20, false, NULL};
    CHECK_OK(edgellm_build(exp, out, &bp));
    el_engine *e;
    CHECK_OK(el_engine_open(out, false, &e));
    CHECK(e && !strcmp(e->profile.backend, "cuda") && e->profile.max_kv_cache_capacity == 1 << 20);
    el_engine_close(e);
    el_rm_rf(out);
    /* output == input is refused even with overwrite */
    bp.overwrite = true;
    CHECK(edgellm_build(exp, exp, &bp) == EDGELLM_STATUS_INVALID_ARG);
    edgellm_export_params ep2 = edgellm_export_params_default();
    ep2.overwrite = true;
    CHECK(edgellm_export(exp, exp, &ep2) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(el_dir_exists(exp));
    s = edgellm_build("fixtures/models/tiny-qwen3", out, NULL);
    CHECK(s == EDGELLM_STATUS_FORMAT && tu_contains(edgellm_last_error(), "not an edgellm export"));
    CHECK(edgellm_build("fixtures/models/nope", out, NULL) == EDGELLM_STATUS_IO);
    CHECK(!el_dir_exists(out) && no_tmp_left(g_dir));
    el_rm_rf(exp);
}

static int g_warn_extra, g_warn_rotary;
static void count_warnings(edgellm_log_level lvl, const char *msg, void *user) {
    (void)user;
    if (lvl != EDGELLM_LOG_LEVEL_WARN) return;
    if (strstr(msg, "skipping unexpected tensor 'model.visual.extra.weight'")) g_warn_extra++;
    if (strstr(msg, "inv_freq")) g_warn_rotary++;
}

/* Extra tensors are skipped (rotary buffers silently); a sharded copy exports to the same bytes. */
static void test_extra_and_sharded(void) {
    const char *fx = "fixtures/models/tiny-qwen2";
    el_st_file st;
    CHECK_OK(el_st_open(fx, &st));
    char d[1200], p[1300];
    /* 1) extra tensors */
    snprintf(d, sizeof d, "%s/extra", g_dir);
    copy_dir(fx, d);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    el_st_decl *decls = calloc((size_t)st.n_tensors + 2, sizeof *decls);
    for (int64_t i = 0; i < st.n_tensors; i++) {
        decls[i].name = st.tensors[i].name;
        decls[i].dtype = st.tensors[i].dtype;
        decls[i].n_dims = st.tensors[i].n_dims;
        memcpy(decls[i].shape, st.tensors[i].shape, sizeof decls[i].shape);
    }
    decls[st.n_tensors] = (el_st_decl){"model.layers.0.self_attn.rotary_emb.inv_freq", EL_DTYPE_F32, 1, {16}};
    decls[st.n_tensors + 1] = (el_st_decl){"model.visual.extra.weight", EL_DTYPE_F32, 1, {4}};
    el_st_writer *w;
    CHECK_OK(el_st_writer_open(p, decls, st.n_tensors + 2, NULL, &w));
    for (int64_t i = 0; i < st.n_tensors; i++) CHECK_OK(el_st_writer_write(w, st.tensors[i].data, st.tensors[i].nbytes));
    float z[16] = {0};
    CHECK_OK(el_st_writer_write(w, z, 64));
    CHECK_OK(el_st_writer_write(w, z, 16));
    CHECK_OK(el_st_writer_close(w));
    char e1[1200], e2[1200];
    snprintf(e1, sizeof e1, "%s/ref-exp", g_dir);
    snprintf(e2, sizeof e2, "%s/extra-exp", g_dir);
    CHECK_OK(edgellm_export(fx, e1, NULL));
    edgellm_log_set(count_warnings, NULL);
    edgellm_log_set_level(EDGELLM_LOG_LEVEL_WARN);
    CHECK_OK(edgellm_export(d, e2, NULL));
    edgellm_log_set(NULL, NULL);
    edgellm_log_set_level(EDGELLM_LOG_LEVEL_ERROR);
    CHECK(g_warn_extra == 1 && g_warn_rotary == 0);
    char a[1300], b[1300];
    snprintf(a, sizeof a, "%s/model.safetensors", e1);
    snprintf(b, sizeof b, "%s/model.safetensors", e2);
    size_t na, nb;
    char *ra = tu_read(a, &na), *rb = tu_read(b, &nb);
    CHECK(ra && rb && na == nb && !memcmp(ra, rb, na));
    free(rb);
    el_rm_rf(d);
    el_rm_rf(e2);
    /* 2) two shards + index */
    snprintf(d, sizeof d, "%s/sharded", g_dir);
    copy_dir(fx, d);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    unlink(p);
    int64_t half = st.n_tensors / 2;
    cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
    for (int sh = 0; sh < 2; sh++) {
        int64_t lo = sh ? half : 0, hi = sh ? st.n_tensors : half;
        /* reverse order inside the shard: the exporter must not depend on file order */
        el_st_decl *sd = calloc((size_t)(hi - lo), sizeof *sd);
        for (int64_t i = lo; i < hi; i++) sd[hi - 1 - i] = decls[i];
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", d, sh + 1);
        CHECK_OK(el_st_writer_open(p, sd, hi - lo, "{\"format\":\"pt\"}", &w));
        for (int64_t i = hi - 1; i >= lo; i--) {
            CHECK_OK(el_st_writer_write(w, st.tensors[i].data, st.tensors[i].nbytes));
            char fn[64];
            snprintf(fn, sizeof fn, "model-0000%d-of-00002.safetensors", sh + 1);
            cJSON_AddStringToObject(wm, st.tensors[i].name, fn);
        }
        CHECK_OK(el_st_writer_close(w));
        free(sd);
    }
    char *t = cJSON_Print(idx);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    tu_write(p, t, strlen(t));
    cJSON_free(t);
    cJSON_Delete(idx);
    CHECK_OK(edgellm_export(d, e2, NULL));
    rb = tu_read(b, &nb);
    CHECKF(ra && rb && na == nb && !memcmp(ra, rb, na), "sharded export differs from the single-file export");
    free(ra);
    free(rb);
    free(decls);
    el_rm_rf(d);
    el_rm_rf(e1);
    el_rm_rf(e2);
    el_st_close(&st);
}

static void patch_u32(char *raw, size_t off, uint32_t v) {
    for (int i = 0; i < 4; i++) raw[off + (size_t)i] = (char)(v >> (8 * i));
}
static void rehash_header(char *raw) {
    uint64_t h = el_hash64(raw, 56);
    for (int i = 0; i < 8; i++) raw[56 + i] = (char)(h >> (8 * i));
}

static void expect_open_fail(const char *eng, bool verify, const char *needle) {
    el_engine *e = NULL;
    edgellm_status s = el_engine_open(eng, verify, &e);
    CHECKF(s == EDGELLM_STATUS_FORMAT && e == NULL, "expected FORMAT for '%s', got %d (%s)", needle, (int)s,
           edgellm_last_error());
    CHECKF(tu_contains(edgellm_last_error(), needle), "message '%s' lacks '%s'", edgellm_last_error(), needle);
    if (e) el_engine_close(e);
}

static void test_engine_corruption(void) {
    char exp[1200], eng[1200], p[1300];
    snprintf(exp, sizeof exp, "%s/c-exp", g_dir);
    snprintf(eng, sizeof eng, "%s/c-eng", g_dir);
    CHECK_OK(edgellm_export("fixtures/models/sotu-qwen3", exp, NULL));
    CHECK_OK(edgellm_build(exp, eng, NULL));
    snprintf(p, sizeof p, "%s/model.engine", eng);
    size_t n;
    char *orig = tu_read(p, &n), *raw = malloc(n);
    CHECK(orig && n > 8192 && !memcmp(orig, "EDGELLM\0", 8));
    el_engine *e;
    double t0 = el_time_ms();
    CHECK_OK(el_engine_open(eng, false, &e));
    double t1 = el_time_ms();
    el_engine_close(e);
    CHECK_OK(el_engine_open(eng, true, &e));
    fprintf(stderr, "engine open (%.1f MB): %.2f ms\n", n / 1e6, t1 - t0);
    /* a flipped data byte: only caught with verify, naming the tensor */
    const el_engine_tensor *t = el_engine_find(e, "model.layers.2.mlp.down_proj.weight");
    size_t off = (size_t)((const char *)t->data - (const char *)e->map.data) + 100;
    el_engine_close(e);
    el_engine_close(NULL);
    memcpy(raw, orig, n);
    raw[off] ^= 0x10;
    tu_write(p, raw, n);
    CHECK_OK(el_engine_open(eng, false, &e));
    el_engine_close(e);
    expect_open_fail(eng, true, "checksum mismatch in tensor model.layers.2.mlp.down_proj.weight: engine file is corrupt");
    /* truncated */
    tu_write(p, orig, n - 1000);
    expect_open_fail(eng, false, "truncated");
    tu_write(p, orig, 40);
    expect_open_fail(eng, false, "truncated");
    tu_write(p, orig, 0);
    expect_open_fail(eng, false, "truncated");
    /* bad magic */
    memcpy(raw, orig, n);
    raw[0] = 'X';
    tu_write(p, raw, n);
    expect_open_fail(eng, false, "bad magic");
    /* a newer format version (with a valid header hash) */
    memcpy(raw, orig, n);
    patch_u32(raw, 8, 2);
    rehash_header(raw);
    tu_write(p, raw, n);
    expect_open_fail(eng, false, "engine format version 2 is not supported (expected 1)");
    /* header field changed without rehash */
    memcpy(raw, orig, n);
    raw[40] ^= 1;
    tu_write(p, raw, n);
    expect_open_fail(eng, false, "header checksum mismatch");
    /* metadata byte flipped */
    memcpy(raw, orig, n);
    raw[100] ^= 1;
    tu_write(p, raw, n);
    expect_open_fail(eng, false, "metadata checksum mismatch");
    /* misaligned data offset (rehashed, so the bounds check must catch it) */
    memcpy(raw, orig, n);
    patch_u32(raw, 32, 4096 + 8);
    rehash_header(raw);
    tu_write(p, raw, n);
    expect_open_fail(eng, false, "inconsistent header");
    /* missing file */
    unlink(p);
    CHECK(el_engine_open(eng, false, &e) == EDGELLM_STATUS_IO);
    CHECK(el_engine_open("fixtures/nope", false, &e) == EDGELLM_STATUS_IO);
    tu_write(p, orig, n);
    CHECK_OK(el_engine_open(eng, true, &e));
    el_engine_close(e);
    free(orig);
    free(raw);
    el_rm_rf(exp);
    el_rm_rf(eng);
}

int main(void) {
    edgellm_log_set_level(EDGELLM_LOG_LEVEL_ERROR);
    tu_scratch(g_dir, sizeof g_dir, "test_export_build");
    test_roundtrip();
    test_errors();
    test_extra_and_sharded();
    test_engine_corruption();
    el_rm_rf(g_dir);
    return t_finish("test_export_build");
}
