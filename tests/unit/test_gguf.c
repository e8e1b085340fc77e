/* test_gguf.c - GGUF export: ggml Q8_0/Q4_0 block encodings on hand-computed blocks, and the files
 * written for tiny-llama (llama Q/K permutation, llama3 rope_freqs, placeholder vocab), sotu-qwen3
 * (gpt2 tokenizer, qwen3 q/k norms) and stories260K (SentencePiece vocab, F16 fallback for q4_0 rows of
 * 172) parsed back and compared with the checkpoint. Bad input: unknown quantization, existing output. */
#include "core/core.h"
#include "export/gguf.h"
#include "models/models.h"
#include "test.h"

#include <unistd.h>

/* ---- a small GGUF reader ---- */
typedef struct gkv {
    char key[96];
    uint32_t type;
    const uint8_t *val; /* points at the value */
    uint64_t arr_n;     /* arrays: count */
    uint32_t arr_type;
} gkv;
typedef struct gti {
    char name[96];
    uint32_t n_dims, type;
    uint64_t ne[4], offset;
} gti;
typedef struct gfile {
    el_mmap m;
    uint32_t version;
    gkv kv[64];
    int n_kv;
    gti t[128];
    int n_t;
    const uint8_t *data;
    bool ok;
} gfile;

static uint64_t rd64(const uint8_t **p) {
    uint64_t v;
    memcpy(&v, *p, 8);
    *p += 8;
    return v;
}
static uint32_t rd32(const uint8_t **p) {
    uint32_t v;
    memcpy(&v, *p, 4);
    *p += 4;
    return v;
}
static size_t scalar_size(uint32_t t) {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
}
static void skip_val(const uint8_t **p, uint32_t t) {
    if (t == 8) {
        uint64_t n = rd64(p);
        *p += n;
    } else if (t == 9) {
        uint32_t et = rd32(p);
        uint64_t n = rd64(p);
        for (uint64_t i = 0; i < n; i++) skip_val(p, et);
    } else {
        *p += scalar_size(t);
    }
}

static bool gguf_open(const char *path, gfile *g) {
    memset(g, 0, sizeof *g);
    if (el_mmap_open(path, &g->m) < 0) return false;
    const uint8_t *p = g->m.data;
    if (memcmp(p, "GGUF", 4)) return false;
    p += 4;
    g->version = rd32(&p);
    uint64_t nt = rd64(&p), nkv = rd64(&p);
    if (nt > 128 || nkv > 64) return false;
    for (uint64_t i = 0; i < nkv; i++) {
        gkv *k = &g->kv[g->n_kv++];
        uint64_t n = rd64(&p);
        snprintf(k->key, sizeof k->key, "%.*s", (int)n, (const char *)p);
        p += n;
        k->type = rd32(&p);
        k->val = p;
        if (k->type == 9) {
            const uint8_t *q = p;
            k->arr_type = rd32(&q);
            k->arr_n = rd64(&q);
        }
        skip_val(&p, k->type);
    }
    for (uint64_t i = 0; i < nt; i++) {
        gti *t = &g->t[g->n_t++];
        uint64_t n = rd64(&p);
        snprintf(t->name, sizeof t->name, "%.*s", (int)n, (const char *)p);
        p += n;
        t->n_dims = rd32(&p);
        for (uint32_t d = 0; d < t->n_dims; d++) t->ne[d] = rd64(&p);
        t->type = rd32(&p);
        t->offset = rd64(&p);
    }
    size_t off = (size_t)(p - (const uint8_t *)g->m.data);
    off = (off + 31) / 32 * 32;
    g->data = (const uint8_t *)g->m.data + off;
    g->ok = true;
    return true;
}
static const gkv *gkv_find(const gfile *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}
static bool gkv_str_is(const gfile *g, const char *key, const char *want) {
    const gkv *k = gkv_find(g, key);
    if (!k || k->type != 8) return false;
    const uint8_t *p = k->val;
    uint64_t n = rd64(&p);
    return n == strlen(want) && !memcmp(p, want, n);
}
static int64_t gkv_u32(const gfile *g, const char *key) {
    const gkv *k = gkv_find(g, key);
    if (!k || k->type != 4) return -1;
    const uint8_t *p = k->val;
    return rd32(&p);
}
static const gti *gti_find(const gfile *g, const char *name) {
    for (int i = 0; i < g->n_t; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

/* ---- block encodings ---- */
static void test_blocks(void) {
    float x[32], y[32];
    uint8_t q8[34], q4[18];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) * 0.1f; /* amax 1.6 at j = 0 (negative) */
    el_ggml_quantize_q8_0(x, q8, 32);
    uint16_t d8 = (uint16_t)(q8[0] | q8[1] << 8);
    CHECK(d8 == el_f32_to_f16(1.6f / 127.0f));
    CHECK((int8_t)q8[2] == -127);      /* x[0] = -1.6 */
    CHECK((int8_t)q8[2 + 16] == 0);    /* x[16] = 0 */
    CHECK((int8_t)q8[2 + 31] == 119);  /* 1.5 / (1.6/127) = 119.06 */
    CHECK((int8_t)q8[2 + 21] == 40);   /* 0.5 / (1.6/127) = 39.69 -> 40 */
    el_ggml_dequantize_q8_0(q8, y, 32);
    double maxerr = 0;
    for (int j = 0; j < 32; j++) maxerr = fmax(maxerr, fabs(y[j] - x[j]));
    CHECK(maxerr <= 0.5 * 1.6 / 127 + 1e-4);

    /* Q4_0: d = max / -8 with max the signed value of largest magnitude */
    el_ggml_quantize_q4_0(x, q4, 32); /* max = -1.6 -> d = 0.2 */
    CHECK((uint16_t)(q4[0] | q4[1] << 8) == el_f32_to_f16(0.2f));
    CHECK((q4[2] & 0x0f) == 0);         /* x[0] = -1.6 -> -8 + 8 = 0 */
    CHECK((q4[2] >> 4) == 8);           /* x[16] = 0 -> 8 (high nibble of byte 0 = element 16) */
    CHECK((q4[2 + 15] >> 4) == 15);     /* x[31] = 1.5 -> 7.5 + 8.5 = 16 -> clamped 15 */
    CHECK((q4[2 + 8] & 0x0f) == 4);     /* x[8] = -0.8 -> -4 + 8.5 -> 4 */
    for (int j = 0; j < 32; j++) x[j] = -x[j];        /* now max = +1.6 -> d = -0.2 */
    el_ggml_quantize_q4_0(x, q4, 32);
    CHECK((uint16_t)(q4[0] | q4[1] << 8) == el_f32_to_f16(-0.2f));
    CHECK((q4[2] & 0x0f) == 0);                       /* 1.6 / -0.2 = -8 -> 0 */
    el_ggml_dequantize_q4_0(q4, y, 32);
    maxerr = 0;
    for (int j = 0; j < 32; j++) maxerr = fmax(maxerr, fabs(y[j] - x[j]));
    CHECK(maxerr <= 0.2 + 1e-3); /* the clamped edge costs up to one step */
    /* zero block: d = 0, all q = 8 */
    float z[32] = {0};
    el_ggml_quantize_q4_0(z, q4, 32);
    CHECK(q4[0] == 0 && (q4[1] & 0x7f) == 0 && q4[2] == 0x88 && q4[17] == 0x88); /* d = -0.0 as in ggml */
    el_ggml_quantize_q8_0(z, q8, 32);
    CHECK(q8[0] == 0 && q8[1] == 0 && q8[2] == 0 && q8[33] == 0);
    CHECK(el_ggml_row_size(EL_GGML_Q4_0, 64) == 36 && el_ggml_row_size(EL_GGML_Q8_0, 64) == 68);
}

static float src_at(const el_st_tensor *t, int64_t r, int64_t c) {
    int64_t cols = t->n_dims == 2 ? t->shape[1] : 1;
    float v;
    el_convert(EL_DTYPE_F32, &v, t->dtype, (const uint8_t *)t->data + (size_t)(r * cols + c) * el_dtype_size(t->dtype), 1);
    return v;
}

static float f16_round(float v) { return el_f16_to_f32(el_f32_to_f16(v)); }

static void test_llama(const char *tmp) {
    char out[4096];
    snprintf(out, sizeof out, "%s/gguf_tiny_llama.gguf", tmp);
    unlink(out);
    CHECK_OK(el_export_gguf("fixtures/models/tiny-llama", out, "f16", false, false));
    gfile g;
    el_st_file st = {0};
    CHECK(gguf_open(out, &g) && g.version == 3);
    CHECK_OK(el_st_open("fixtures/models/tiny-llama", &st));
    if (!g.ok || !st.n_tensors) goto done;
    CHECK(gkv_str_is(&g, "general.architecture", "llama"));
    CHECK(gkv_u32(&g, "llama.block_count") == 3);
    CHECK(gkv_u32(&g, "llama.attention.head_count") == 4);
    CHECK(gkv_u32(&g, "llama.attention.head_count_kv") == 2);
    CHECK(gkv_u32(&g, "llama.attention.key_length") == 32);
    CHECK(gkv_u32(&g, "general.file_type") == 1);
    CHECK(gkv_str_is(&g, "tokenizer.ggml.model", "llama"));
    const gkv *toks = gkv_find(&g, "tokenizer.ggml.tokens");
    CHECK(toks && toks->arr_n == 512);
    /* rope_freqs: llama3 factor 8, low 1, high 4, original 256, theta 5e5, dim 32 */
    const gti *rf = gti_find(&g, "rope_freqs.weight");
    CHECK(rf && rf->type == EL_GGML_F32 && rf->ne[0] == 16);
    if (rf) {
        const float *f = (const float *)(g.data + rf->offset);
        CHECK(f[0] == 1.0f);  /* highest frequency: wavelength 2pi < 64 */
        CHECK(f[15] == 8.0f); /* lowest: 2pi * 5e5^(30/32) > 256 */
    }
    /* Q rows permuted per head: gguf row h*hd + 2i + j = HF row h*hd + j*hd/2 + i */
    const gti *q = gti_find(&g, "blk.1.attn_q.weight");
    const el_st_tensor *sq = el_st_find(&st, "model.layers.1.self_attn.q_proj.weight");
    const gti *k = gti_find(&g, "blk.2.attn_k.weight");
    const el_st_tensor *sk = el_st_find(&st, "model.layers.2.self_attn.k_proj.weight");
    const gti *v = gti_find(&g, "blk.0.attn_v.weight");
    const el_st_tensor *sv = el_st_find(&st, "model.layers.0.self_attn.v_proj.weight");
    CHECK(q && sq && q->type == EL_GGML_F16 && q->ne[0] == 128 && q->ne[1] == 128);
    CHECK(k && sk && k->ne[1] == 64 && v && sv);
    if (q && sq && k && sk && v && sv) {
        int bad = 0;
        const uint16_t *qd = (const uint16_t *)(g.data + q->offset), *kd = (const uint16_t *)(g.data + k->offset);
        const uint16_t *vd = (const uint16_t *)(g.data + v->offset);
        for (int64_t r = 0; r < 128; r++) {
            int64_t h = r / 32, w = r % 32, sr = h * 32 + (w % 2) * 16 + w / 2;
            for (int64_t c = 0; c < 128; c++) {
                bad += el_f16_to_f32(qd[r * 128 + c]) != f16_round(src_at(sq, sr, c));
                if (r < 64) bad += el_f16_to_f32(kd[r * 128 + c]) != f16_round(src_at(sk, sr, c));
                if (r < 64) bad += el_f16_to_f32(vd[r * 128 + c]) != f16_round(src_at(sv, r, c)); /* v: not permuted */
            }
        }
        CHECKF(bad == 0, "%d permuted values differ", bad);
        /* the identity layout must NOT match q (the permutation is not a no-op) */
        int same = 0;
        for (int64_t c = 0; c < 128; c++) same += el_f16_to_f32(qd[1 * 128 + c]) == f16_round(src_at(sq, 1, c));
        CHECK(same < 128);
    }
    CHECK(gti_find(&g, "output.weight") != NULL); /* untied */
    CHECK(gti_find(&g, "blk.0.attn_norm.weight") && gti_find(&g, "blk.0.ffn_norm.weight") &&
          gti_find(&g, "blk.0.ffn_gate.weight") && gti_find(&g, "blk.0.ffn_up.weight") &&
          gti_find(&g, "blk.0.ffn_down.weight") && gti_find(&g, "output_norm.weight"));
done:
    el_mmap_close(&g.m);
    el_st_close(&st);
}

static void test_qwen3_q8(const char *tmp) {
    char out[4096];
    snprintf(out, sizeof out, "%s/gguf_sotu_q8.gguf", tmp);
    unlink(out);
    CHECK_OK(el_export_gguf("fixtures/models/sotu-qwen3", out, "q8_0", false, false));
    gfile g;
    el_st_file st = {0};
    CHECK(gguf_open(out, &g));
    CHECK_OK(el_st_open("fixtures/models/sotu-qwen3", &st));
    if (!g.ok || !st.n_tensors) goto done;
    CHECK(gkv_str_is(&g, "general.architecture", "qwen3"));
    CHECK(gkv_u32(&g, "general.file_type") == 7);
    CHECK(gkv_str_is(&g, "tokenizer.ggml.model", "gpt2"));
    CHECK(gkv_str_is(&g, "tokenizer.ggml.pre", "qwen2"));
    CHECK(gkv_u32(&g, "tokenizer.ggml.eos_token_id") == 4093);
    const gkv *m = gkv_find(&g, "tokenizer.ggml.merges");
    CHECK(m && m->arr_n == 3837);
    if (m) { /* first merge "Ġ t" */
        const uint8_t *p = m->val + 12;
        uint64_t n = rd64(&p);
        CHECK(n == 4 && !memcmp(p, "\xc4\xa0 t", 4));
    }
    CHECK(gti_find(&g, "output.weight") == NULL); /* tied */
    const gti *qn = gti_find(&g, "blk.0.attn_q_norm.weight");
    CHECK(qn && qn->type == EL_GGML_F32 && qn->ne[0] == 64);
    /* q rows are not permuted for qwen; Q8_0 blocks decode to within d/2 of the checkpoint */
    const gti *q = gti_find(&g, "blk.3.attn_q.weight");
    const el_st_tensor *sq = el_st_find(&st, "model.layers.3.self_attn.q_proj.weight");
    CHECK(q && sq && q->type == EL_GGML_Q8_0);
    if (q && sq) {
        float row[256], src[256];
        int bad = 0;
        for (int64_t r = 0; r < (int64_t)q->ne[1]; r++) {
            el_ggml_dequantize_q8_0(g.data + q->offset + (size_t)r * 8 * 34, row, 256);
            for (int c = 0; c < 256; c++) src[c] = src_at(sq, r, c);
            for (int b = 0; b < 8; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(src[b * 32 + j]));
                for (int j = 0; j < 32; j++) bad += fabsf(row[b * 32 + j] - src[b * 32 + j]) > amax / 127 * 0.57f + 1e-6f; /* d/2 + fp16 rounding of d */
            }
        }
        CHECKF(bad == 0, "%d q8_0 values off", bad);
    }
done:
    el_mmap_close(&g.m);
    el_st_close(&st);
}

static void test_stories_q4(const char *tmp) {
    char out[4096];
    snprintf(out, sizeof out, "%s/gguf_stories_q4.gguf", tmp);
    unlink(out);
    CHECK_OK(el_export_gguf("fixtures/models/stories260K-hf", out, "q4_0", false, false));
    gfile g;
    CHECK(gguf_open(out, &g));
    if (!g.ok) goto done;
    CHECK(gkv_str_is(&g, "tokenizer.ggml.model", "llama"));
    CHECK(gkv_u32(&g, "tokenizer.ggml.bos_token_id") == 1 && gkv_u32(&g, "tokenizer.ggml.eos_token_id") == 2);
    const gkv *tt = gkv_find(&g, "tokenizer.ggml.token_type");
    CHECK(tt && tt->arr_n == 512 && tt->arr_type == 5);
    if (tt) {
        int32_t ty[512]; /* the array is not 4-byte aligned in the file */
        memcpy(ty, tt->val + 12, sizeof ty);
        CHECK(ty[0] == 2 && ty[1] == 3 && ty[3] == 6 && ty[258] == 6 && ty[300] == 1); /* unk, control, bytes */
    }
    const gti *down = gti_find(&g, "blk.0.ffn_down.weight"), *up = gti_find(&g, "blk.0.ffn_up.weight");
    CHECK(down && down->type == EL_GGML_F16 && down->ne[0] == 172); /* 172 % 32 != 0 */
    CHECK(up && up->type == EL_GGML_Q4_0 && up->ne[0] == 64 && up->ne[1] == 172);
    CHECK(gti_find(&g, "token_embd.weight") && gti_find(&g, "token_embd.weight")->type == EL_GGML_Q4_0);
done:
    el_mmap_close(&g.m);
}

static void test_bad(const char *tmp) {
    char out[4096];
    snprintf(out, sizeof out, "%s/gguf_bad.gguf", tmp);
    unlink(out);
    CHECK(el_export_gguf("fixtures/models/tiny-qwen2", out, "q3_k", false, false) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(!el_file_exists(out));
    CHECK_OK(el_export_gguf("fixtures/models/tiny-qwen2", out, NULL, false, false));
    CHECK(el_export_gguf("fixtures/models/tiny-qwen2", out, "f16", false, false) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(strstr(edgellm_last_error(), "--overwrite") != NULL);
    CHECK_OK(el_export_gguf("fixtures/models/tiny-qwen2", out, "q4_0", true, false));
    CHECK(el_export_gguf("fixtures/models/does-not-exist", out, "f16", true, false) == EDGELLM_STATUS_IO);
    CHECK(el_file_exists(out)); /* a failed overwrite keeps the old file */
    gfile g;
    CHECK(gguf_open(out, &g) && gkv_u32(&g, "general.file_type") == 2 && gti_find(&g, "blk.0.attn_q.bias"));
    el_mmap_close(&g.m);
}

int main(void) {
    const char *tmp = getenv("EDGELLM_TMP");
    if (!tmp) tmp = "/tmp";
    el_mkdir_p(tmp);
    edgellm_log_set_level(EDGELLM_LOG_LEVEL_ERROR);
    test_blocks();
    test_llama(tmp);
    test_qwen3_q8(tmp);
    test_stories_q4(tmp);
    test_bad(tmp);
    return t_finish("test_gguf");
}
