/*
 * test_cuda_ops.c - every op of the CUDA backend, through the el_backend_i vtable, against the scalar
 * references edgellm_ref_* on seeded random inputs (NMSE thresholds: f32 paths 1e-6, GEMV with
 * f16/bf16 weights 1e-5, tensor-core GEMM 1e-3; quantized formats per run_qmatmul, w8a8 prefill on the int8
 * GEMM bit-identical). Also: CUDA-graph capture and replay with new
 * positions, argument errors, peak memory. Prints one "op ... nmse" line per case. The KV cache ops run
 * for f32/f16/bf16 and the fp8 (e4m3) cache with per-layer scales (kv_store bytes identical to the
 * reference, attention against the reference's e4m3 * scale).
 * Skips (exit 77) when no CUDA device is present.
 */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

#include <cuda_runtime_api.h>

static el_backend *be;
extern int elk_gemv_tc_mode;    /* src/kernels/cuda/gemv.cu: 0 auto, 1 never tensor cores, 2 always (bf16) */
extern int elk_qgemv_tc_mode;   /* src/kernels/cuda/qgemv.cu: 0 int8 mma m = 1 / bf16 mma m >= 2, 1 FMA, 2 bf16 mma */
extern int elk_attn_stage_mode; /* src/kernels/cuda/attention.cu: 0 staged where it applies, 1 never */
extern int elk_attn_rope_late;  /* attention.cu: 1 = the rope variant reads each raw head when it norms it */
extern int elk_attn_lane_scores; /* attention.cu: 1 (default) = staged scores by thread pairs, 0 = by warps */
extern int elk_attn_min_chunk;  /* attention.cu: the smallest split-KV chunk of the decode plan (64; 16 / 32) */
extern int elk_attn_prefill_mode; /* attention_prefill.cu: 0 n_tok >= 64, 1 never, 2 always */
extern int elk_attn_prefill_rows; /* attention_prefill.cu: query rows per CTA, 0 auto, 64, 128 */
extern int elk_fg_depth;        /* src/kernels/cuda/fused.cu: float fused GEMV load depth, 0 by shape, 2, 4 */
extern int elk_fq_slow_codes;   /* fused.cu: 1 = the w8a8 / static fp8 codes prologue as per-pass loops */
extern int elk_fq_pre;          /* fused.cu / cuda backend: 1 = those codes made once per op by k_fq_pre */
extern int el_cuda_qgemm_mode;    /* backend/cuda.cu: 1 w8a8 / static fp8 prefill on int8 / fp8 GEMMs, 0 bf16 path */
extern unsigned long long el_cuda_qgemm_count[3]; /* backend/cuda.cu: prefill GEMMs run: int8, fp8, bf16 */
static int g_cc; /* the device's compute capability, major * 10 + minor */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) { return t_frand(&rng); } /* uniform in [-1, 1) */
static float *rand_f32(size_t n, float scale) {
    float *p = el_malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
/* n random values stored as dtype t (host); F8_E4M3: e4m3 codes of values in [-300, 300] * scale. */
static void *rand_typed(el_dtype t, size_t n, float scale) {
    float *f = rand_f32(n, scale);
    if (t == EL_DTYPE_F32) return f;
    if (t == EL_DTYPE_F8_E4M3) {
        uint8_t *o = el_malloc(n);
        for (size_t i = 0; i < n; i++)
            o[i] = el_f32_to_e4m3(f[i] * 300.f);
        el_free(f);
        return o;
    }
    void *o = el_malloc(n * 2);
    el_convert(t, o, EL_DTYPE_F32, f, n);
    el_free(f);
    return o;
}
static void *dput(const void *h, size_t n) {
    void *d = NULL;
    if (be->iface.alloc(be, n, &d) != EDGELLM_STATUS_OK) return NULL;
    if (h && be->iface.upload(be, d, h, n) != EDGELLM_STATUS_OK) return NULL;
    return d;
}
static void dget(void *h, const void *d, size_t n) { CHECK_OK(be->iface.download(be, h, d, n)); }
/* Poisons a device f32 buffer (NaN) so that unwritten outputs fail the comparison. */
static void dpoison(void *d, size_t n_floats) {
    float *h = el_malloc(n_floats * sizeof *h);
    for (size_t i = 0; i < n_floats; i++) h[i] = NAN;
    CHECK_OK(be->iface.upload(be, d, h, n_floats * sizeof *h));
    el_free(h);
}
static void report(const char *what, double nmse, double tol) {
    printf("op %-58s nmse %.3e (tol %.0e) %s\n", what, nmse, tol, nmse <= tol ? "ok" : "FAIL");
    CHECKF(nmse <= tol, "%s: nmse %.3e > %.0e", what, nmse, tol);
}

static const el_dtype FT[3] = {EL_DTYPE_F32, EL_DTYPE_F16, EL_DTYPE_BF16};
/* KV cache types and the fp8 cache's scales (k: inputs up to 1 / KS = 500 saturate at 448; the float
 * caches ignore the scales) */
static const el_dtype KVT[4] = {EL_DTYPE_F32, EL_DTYPE_F16, EL_DTYPE_BF16, EL_DTYPE_F8_E4M3};
#define KS (1.f / 500.f)
#define VS 0.0041f

static void test_embed(void) {
    for (int ti = 0; ti < 3; ti++) {
        const int64_t vocab = 50, dim = 96, n = 7;
        void *tab = rand_typed(FT[ti], vocab * dim, 1.f);
        int32_t ids[7] = {0, 49, 3, 3, 17, 25, 1};
        float *ref = el_malloc(n * dim * 4), *got = el_malloc(n * dim * 4);
        edgellm_ref_embed(ids, n, tab, FT[ti], dim, ref);
        void *dt = dput(tab, vocab * dim * el_dtype_size(FT[ti])), *di = dput(ids, sizeof ids), *dy = dput(NULL, n * dim * 4);
        dpoison(dy, n * dim);
        CHECK_OK(be->iface.embed(be, di, n, dt, FT[ti], dim, dy));
        dget(got, dy, n * dim * 4);
        char nm[96];
        snprintf(nm, sizeof nm, "embed %s", el_dtype_name(FT[ti]));
        report(nm, t_nmse(ref, got, n * dim), 1e-6);
        be->iface.dealloc(be, dt), be->iface.dealloc(be, di), be->iface.dealloc(be, dy);
        el_free(tab), el_free(ref), el_free(got);
    }
}

static void test_rmsnorm(void) {
    const int64_t dims[3] = {1024, 1023, 4096};
    for (int di = 0; di < 3; di++)
        for (int ti = 0; ti < 3; ti += 2) {
            const int64_t rows = 5, dim = dims[di];
            float *x = rand_f32(rows * dim, 3.f);
            void *w = rand_typed(FT[ti], dim, 1.f);
            float *ref = el_malloc(rows * dim * 4), *got = el_malloc(rows * dim * 4);
            edgellm_ref_rmsnorm(x, w, FT[ti], rows, dim, 1e-6f, ref);
            float *dx = dput(x, rows * dim * 4);
            void *dw = dput(w, dim * el_dtype_size(FT[ti]));
            CHECK_OK(be->iface.rmsnorm(be, dx, dw, FT[ti], rows, dim, 1e-6f, dx)); /* in place */
            dget(got, dx, rows * dim * 4);
            char nm[96];
            snprintf(nm, sizeof nm, "rmsnorm dim %lld w %s (in place)", (long long)dim, el_dtype_name(FT[ti]));
            report(nm, t_nmse(ref, got, rows * dim), 1e-6);
            be->iface.dealloc(be, dx), be->iface.dealloc(be, dw);
            el_free(x), el_free(w), el_free(ref), el_free(got);
        }
}

static void test_rope(void) {
    const int64_t n_tok = 4, heads = 3, hd = 128;
    const int64_t rots[2] = {128, 64};
    const float scales[2] = {1.f, 1.1f};
    for (int c = 0; c < 2; c++) {
        int64_t n_rot = rots[c];
        float *x = rand_f32(n_tok * heads * hd, 2.f), *got = el_malloc(n_tok * heads * hd * 4);
        float inv[64];
        for (int i = 0; i < n_rot / 2; i++) inv[i] = (float)pow(1000000.0, -2.0 * i / (double)n_rot);
        int32_t pos[4] = {0, 1, 4097, 31999};
        float *dx = dput(x, n_tok * heads * hd * 4);
        int32_t *dp = dput(pos, sizeof pos);
        float *dinv = dput(inv, sizeof inv);
        edgellm_ref_rope(x, n_tok, heads, hd, n_rot, pos, inv, scales[c]);
        CHECK_OK(be->iface.rope(be, dx, n_tok, heads, hd, n_rot, dp, dinv, scales[c]));
        dget(got, dx, n_tok * heads * hd * 4);
        char nm[96];
        snprintf(nm, sizeof nm, "rope n_rot %lld/%lld scale %.1f pos up to 31999", (long long)n_rot, (long long)hd,
                 scales[c]);
        report(nm, t_nmse(x, got, n_tok * heads * hd), 1e-6);
        be->iface.dealloc(be, dx), be->iface.dealloc(be, dp), be->iface.dealloc(be, dinv);
        el_free(x), el_free(got);
    }
}

/* Fills a random cache (host + device), n_slot slots. */
typedef struct kvc {
    void *hk, *hv, *dk, *dv;
    size_t bytes;
} kvc;
static kvc make_cache(el_dtype t, int64_t n_slot, int64_t nkv, int64_t cap, int64_t hd) {
    kvc c;
    size_t n = (size_t)(n_slot * nkv * cap * hd);
    c.bytes = n * el_dtype_size(t);
    c.hk = rand_typed(t, n, 1.f);
    c.hv = rand_typed(t, n, 1.f);
    c.dk = dput(c.hk, c.bytes);
    c.dv = dput(c.hv, c.bytes);
    return c;
}
static void free_cache(kvc *c) {
    be->iface.dealloc(be, c->dk), be->iface.dealloc(be, c->dv);
    el_free(c->hk), el_free(c->hv);
}

static void test_kv_store(void) {
    for (int ti = 0; ti < 4; ti++) {
        const int64_t n_tok = 3, nkv = 2, hd = 64, cap = 16, n_slot = 3;
        const el_dtype kt = KVT[ti];
        kvc c = make_cache(kt, n_slot, nkv, cap, hd);
        float *k = rand_f32(n_tok * nkv * hd, 1.f), *v = rand_f32(n_tok * nkv * hd, 1.f);
        int32_t slot[3] = {2, 0, 2}, pos[3] = {0, 15, 7};
        edgellm_ref_kv_store(k, v, n_tok, nkv, hd, slot, pos, c.hk, c.hv, kt, KS, VS, cap);
        float *dk = dput(k, n_tok * nkv * hd * 4), *dv = dput(v, n_tok * nkv * hd * 4);
        int32_t *ds = dput(slot, sizeof slot), *dp = dput(pos, sizeof pos);
        CHECK_OK(be->iface.kv_store(be, dk, dv, n_tok, nkv, hd, ds, dp, c.dk, c.dv, kt, KS, VS, cap));
        size_t n = (size_t)(n_slot * nkv * cap * hd);
        void *gk = el_malloc(c.bytes), *gv = el_malloc(c.bytes);
        dget(gk, c.dk, c.bytes);
        dget(gv, c.dv, c.bytes);
        if (kt == EL_DTYPE_F8_E4M3) { /* e4m3(x / scale): the same bytes as the reference */
            size_t dk_n = 0, dv_n = 0;
            for (size_t i = 0; i < c.bytes; i++) {
                dk_n += ((uint8_t *)gk)[i] != ((uint8_t *)c.hk)[i];
                dv_n += ((uint8_t *)gv)[i] != ((uint8_t *)c.hv)[i];
            }
            printf("op %-58s %zu/%zu bytes differ %s\n", "kv_store fp8 (e4m3, k saturating)", dk_n + dv_n,
                   2 * c.bytes, dk_n + dv_n ? "FAIL" : "ok");
            CHECKF(dk_n + dv_n == 0, "kv_store fp8: %zu bytes differ from the reference", dk_n + dv_n);
            be->iface.dealloc(be, dk), be->iface.dealloc(be, dv), be->iface.dealloc(be, ds),
                be->iface.dealloc(be, dp);
            free_cache(&c);
            el_free(k), el_free(v), el_free(gk), el_free(gv);
            continue;
        }
        float *a = el_malloc(n * 4), *b = el_malloc(n * 4);
        el_convert(EL_DTYPE_F32, a, FT[ti], c.hk, n);
        el_convert(EL_DTYPE_F32, b, FT[ti], gk, n);
        double e1 = t_nmse(a, b, n);
        el_convert(EL_DTYPE_F32, a, FT[ti], c.hv, n);
        el_convert(EL_DTYPE_F32, b, FT[ti], gv, n);
        double e2 = t_nmse(a, b, n);
        char nm[96];
        snprintf(nm, sizeof nm, "kv_store %s", el_dtype_name(FT[ti]));
        report(nm, e1 > e2 ? e1 : e2, 0);
        be->iface.dealloc(be, dk), be->iface.dealloc(be, dv), be->iface.dealloc(be, ds), be->iface.dealloc(be, dp);
        free_cache(&c);
        el_free(k), el_free(v), el_free(gk), el_free(gv), el_free(a), el_free(b);
    }
}

typedef struct att_case {
    const char *name;
    int64_t n_tok, n_head, nkv, hd, cap, n_slot;
    el_dtype t;
    int prefill; /* 1: tokens of slot 0 at positions 0..n_tok-1 */
} att_case;

static void run_attention(const att_case *ac) {
    kvc c = make_cache(ac->t, ac->n_slot, ac->nkv, ac->cap, ac->hd);
    int64_t nq = ac->n_tok * ac->n_head * ac->hd;
    float *q = rand_f32(nq, 1.f), *ref = el_malloc(nq * 4), *got = el_malloc(nq * 4);
    int32_t *slot = el_malloc(ac->n_tok * 4), *pos = el_malloc(ac->n_tok * 4);
    int32_t max_pos = 0;
    for (int64_t t = 0; t < ac->n_tok; t++) {
        if (ac->prefill) {
            slot[t] = 0;
            pos[t] = (int32_t)t;
        } else {
            slot[t] = (int32_t)(t % ac->n_slot);
            pos[t] = (int32_t)((t * 7919 + ac->cap - 1) % ac->cap); /* spread, includes cap - 1 */
            if (t == 1) pos[t] = 0;
        }
        if (pos[t] > max_pos) max_pos = pos[t];
    }
    float scale = 1.f / sqrtf((float)ac->hd);
    edgellm_ref_attention(q, ac->n_tok, ac->n_head, ac->nkv, ac->hd, slot, pos, c.hk, c.hv, ac->t, KS, VS, ac->cap,
                          scale, ref);
    float *dq = dput(q, nq * 4), *dout = dput(NULL, nq * 4);
    int32_t *ds = dput(slot, ac->n_tok * 4), *dp = dput(pos, ac->n_tok * 4);
    dpoison(dout, nq);
    CHECK_OK(be->iface.attention(be, dq, ac->n_tok, ac->n_head, ac->nkv, ac->hd, ds, dp, max_pos, c.dk, c.dv, ac->t,
                                 KS, VS, ac->cap, scale, dout));
    dget(got, dout, nq * 4);
    char nm[128];
    snprintf(nm, sizeof nm, "attention %s kv %s", ac->name, el_dtype_name(ac->t));
    report(nm, t_nmse(ref, got, nq), 1e-6);
    be->iface.dealloc(be, dq), be->iface.dealloc(be, dout), be->iface.dealloc(be, ds), be->iface.dealloc(be, dp);
    free_cache(&c);
    el_free(q), el_free(ref), el_free(got), el_free(slot), el_free(pos);
}

static void test_attention(void) {
    const att_case cases[] = {
        {"decode 3 tok, 16/4 heads, hd 128, cap 2048 (split)", 3, 16, 4, 128, 2048, 2, EL_DTYPE_F16, 0},
        {"decode 2 tok, 32/8 heads, hd 64, cap 4096 (split)", 2, 32, 8, 64, 4096, 2, EL_DTYPE_BF16, 0},
        {"decode 4 tok, 8/8 heads, hd 128, cap 1000", 4, 8, 8, 128, 1000, 3, EL_DTYPE_F32, 0},
        {"decode 2 tok, 4/2 heads, hd 80 (generic), cap 700", 2, 4, 2, 80, 700, 2, EL_DTYPE_BF16, 0},
        {"decode 1 tok, 16/2 heads, hd 256, cap 600", 1, 16, 2, 256, 600, 1, EL_DTYPE_F32, 0},
        {"decode 2 tok, 32/1 heads, hd 256 (>48 KB smem), cap 300", 2, 32, 1, 256, 300, 2, EL_DTYPE_F16, 0},
        {"decode 2 tok, 64/2 heads, hd 128 (G 32, generic P V), cap 900", 2, 64, 2, 128, 900, 2, EL_DTYPE_BF16, 0},
        {"decode 5 tok, 2/1 heads, hd 8 (generic), cap 300", 5, 2, 1, 8, 300, 3, EL_DTYPE_F16, 0},
        {"decode 3 tok, 8/8 heads, hd 32, cap 100", 3, 8, 8, 32, 100, 2, EL_DTYPE_F32, 0},
        {"prefill 70 tok, 8/2 heads, hd 64, cap 128", 70, 8, 2, 64, 128, 1, EL_DTYPE_F32, 1},
        {"prefill 300 tok, 16/8 heads, hd 128, cap 512", 300, 16, 8, 128, 512, 1, EL_DTYPE_F16, 1},
        {"prefill 33 tok, 6/3 heads, hd 96 (generic), cap 64", 33, 6, 3, 96, 64, 1, EL_DTYPE_BF16, 1},
        /* fp8 (e4m3) cache: every vector-load width, split and unsplit, staged and generic paths */
        {"decode 3 tok, 16/4 heads, hd 128, cap 2048 (split)", 3, 16, 4, 128, 2048, 2, EL_DTYPE_F8_E4M3, 0},
        {"decode 2 tok, 32/8 heads, hd 64, cap 4096 (split)", 2, 32, 8, 64, 4096, 2, EL_DTYPE_F8_E4M3, 0},
        {"decode 3 tok, 8/8 heads, hd 32, cap 100", 3, 8, 8, 32, 100, 2, EL_DTYPE_F8_E4M3, 0},
        {"decode 1 tok, 16/2 heads, hd 256, cap 600", 1, 16, 2, 256, 600, 1, EL_DTYPE_F8_E4M3, 0},
        {"decode 2 tok, 4/2 heads, hd 80 (generic), cap 700", 2, 4, 2, 80, 700, 2, EL_DTYPE_F8_E4M3, 0},
        {"decode 2 tok, 64/2 heads, hd 128 (G 32, generic P V), cap 900", 2, 64, 2, 128, 900, 2,
         EL_DTYPE_F8_E4M3, 0},
        {"prefill 300 tok, 16/8 heads, hd 128, cap 512", 300, 16, 8, 128, 512, 1, EL_DTYPE_F8_E4M3, 1},
        {"prefill 70 tok, 8/2 heads, hd 64, cap 128", 70, 8, 2, 64, 128, 1, EL_DTYPE_F8_E4M3, 1},
    };
    for (int mode = 1; mode >= 0; mode--) { /* 1: direct loads only, 0: cp.async-staged where it applies */
        elk_attn_stage_mode = mode;
        printf("attention kernels: %s\n", mode ? "unstaged" : "staged where applicable");
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_attention(&cases[i]);
    }
}

/* ---- tensor-core prefill attention (attention_prefill.cu) against edgellm_ref_attention ----
 * A batch is a list of runs: n tokens of one slot at positions p0, p0 + 1, ... (a prefill chunk; n = 1 is
 * a decode token); slot -1: n decode tokens round robin over the slots (tiles of more than 4 runs go to
 * the per-token f32 kernel). Every cache position holds random data (the reference reads the same cache).
 * Tolerance: the kernel rounds q and the softmax weights p to the cache type (relative error up to 2^-9
 * for bf16, 2^-12 for f16) and sums in f32; K/V are exact. Random data puts the output NMSE near
 * 1e-5 (bf16) / 2e-7 (f16) at most, so 1e-4 / 1e-5 leave room for rounding only, not for a wrong
 * position, mask or head (those give NMSE ~ 1e-2 .. 1). */
typedef struct pf_run {
    int32_t slot, p0, n;
} pf_run;
typedef struct pf_case {
    const char *name;
    int64_t n_head, nkv, hd, cap, n_slot;
    el_dtype t;
    float qscale;
    int n_run;
    pf_run runs[8];
} pf_case;

static void run_attention_pf(const pf_case *pc, int mode) {
    int64_t n_tok = 0;
    for (int r = 0; r < pc->n_run; r++)
        n_tok += pc->runs[r].n;
    kvc c = make_cache(pc->t, pc->n_slot, pc->nkv, pc->cap, pc->hd);
    int64_t nq = n_tok * pc->n_head * pc->hd;
    float *q = rand_f32(nq, pc->qscale), *ref = el_malloc(nq * 4), *got = el_malloc(nq * 4);
    int32_t *slot = el_malloc(n_tok * 4), *pos = el_malloc(n_tok * 4);
    int32_t max_pos = 0;
    int64_t t = 0;
    for (int r = 0; r < pc->n_run; r++)
        for (int32_t i = 0; i < pc->runs[r].n; i++, t++) {
            const int rr = pc->runs[r].slot < 0; /* round robin over the slots, spread positions */
            slot[t] = rr ? (int32_t)(t % pc->n_slot) : pc->runs[r].slot;
            pos[t] = rr ? (int32_t)((t * 7919 + 11) % pc->cap) : pc->runs[r].p0 + i;
            if (pos[t] > max_pos) max_pos = pos[t];
        }
    float scale = 1.f / sqrtf((float)pc->hd);
    edgellm_ref_attention(q, n_tok, pc->n_head, pc->nkv, pc->hd, slot, pos, c.hk, c.hv, pc->t, 1.f, 1.f,
                          pc->cap, scale, ref);
    float *dq = dput(q, nq * 4), *dout = dput(NULL, nq * 4);
    int32_t *ds = dput(slot, n_tok * 4), *dp = dput(pos, n_tok * 4);
    for (int rows = 64; rows <= 128; rows += 64) { /* query rows per CTA (mode 0: the backend's choice) */
        if (mode == 0 && rows == 128) break;
        dpoison(dout, nq);
        elk_attn_prefill_mode = mode;
        elk_attn_prefill_rows = mode == 0 ? 0 : rows;
        CHECK_OK(be->iface.attention(be, dq, n_tok, pc->n_head, pc->nkv, pc->hd, ds, dp, max_pos, c.dk, c.dv,
                                     pc->t, 1.f, 1.f, pc->cap, scale, dout));
        elk_attn_prefill_mode = 0;
        elk_attn_prefill_rows = 0;
        dget(got, dout, nq * 4);
        char nm[160];
        snprintf(nm, sizeof nm, "attention tc %s kv %s, %s", pc->name, el_dtype_name(pc->t),
                 mode == 0    ? "auto"
                 : rows == 64 ? "64 rows"
                              : "128 rows");
        report(nm, t_nmse(ref, got, nq), pc->t == EL_DTYPE_BF16 ? 1e-4 : 1e-5);
    }
    be->iface.dealloc(be, dq), be->iface.dealloc(be, dout), be->iface.dealloc(be, ds),
        be->iface.dealloc(be, dp);
    free_cache(&c);
    el_free(q), el_free(ref), el_free(got), el_free(slot), el_free(pos);
}

static void test_attention_prefill(void) {
    const pf_case cases[] = {
        {"300 tok, 32/8 heads, hd 128", 32, 8, 128, 512, 1, EL_DTYPE_BF16, 1.f, 1, {{0, 0, 300}}},
        {"300 tok, 32/8 heads, hd 128", 32, 8, 128, 512, 1, EL_DTYPE_F16, 1.f, 1, {{0, 0, 300}}},
        {"37 tok, 8/8 heads, hd 64", 8, 8, 64, 64, 1, EL_DTYPE_F16, 1.f, 1, {{0, 0, 37}}},
        {"37 tok, 8/8 heads, hd 64", 8, 8, 64, 64, 1, EL_DTYPE_BF16, 1.f, 1, {{0, 0, 37}}},
        {"128 tok, 32/4 heads, hd 128, q x4 (peaky)",
         32,
         4,
         128,
         128,
         1,
         EL_DTYPE_F16,
         4.f,
         1,
         {{0, 0, 128}}},
        {"128 tok, 32/4 heads, hd 128, q x4 (peaky)",
         32,
         4,
         128,
         128,
         1,
         EL_DTYPE_BF16,
         4.f,
         1,
         {{0, 0, 128}}},
        {"200 tok at pos 100 (chunk), 16/2 heads, hd 128",
         16,
         2,
         128,
         512,
         2,
         EL_DTYPE_F16,
         1.f,
         1,
         {{1, 100, 200}}},
        {"200 tok at pos 100 (chunk), 16/2 heads, hd 64",
         16,
         2,
         64,
         512,
         2,
         EL_DTYPE_BF16,
         1.f,
         1,
         {{1, 100, 200}}},
        {"3 seqs 70+100+45 (tiles straddle), 8/2 heads, hd 64",
         8,
         2,
         64,
         256,
         3,
         EL_DTYPE_BF16,
         2.f,
         3,
         {{2, 0, 70}, {0, 0, 100}, {1, 30, 45}}},
        {"3 seqs 70+100+45 (tiles straddle), 8/2 heads, hd 128",
         8,
         2,
         128,
         256,
         3,
         EL_DTYPE_F16,
         2.f,
         3,
         {{2, 0, 70}, {0, 0, 100}, {1, 30, 45}}},
        {"decode x5 + 90-tok prefill (mixed), 16/4 heads, hd 128",
         16,
         4,
         128,
         300,
         6,
         EL_DTYPE_BF16,
         1.f,
         6,
         {{0, 299, 1}, {4, 17, 1}, {3, 0, 90}, {1, 0, 1}, {5, 150, 1}, {2, 64, 1}}},
        {"1 tok at pos 700, 4/1 heads, hd 64", 4, 1, 64, 1024, 1, EL_DTYPE_F16, 1.f, 1, {{0, 700, 1}}},
        {"70 decode tok of 7 slots (per-token path), 16/4 heads, hd 128", 16, 4, 128, 600, 7, EL_DTYPE_BF16, 1.f,
         1, {{-1, 0, 70}}},
        {"70 decode tok of 7 slots (per-token path), 8/8 heads, hd 64", 8, 8, 64, 600, 7, EL_DTYPE_F16, 1.f, 1,
         {{-1, 0, 70}}},
        {"1000 tok, 8/2 heads, hd 128", 8, 2, 128, 1024, 1, EL_DTYPE_BF16, 1.f, 1, {{0, 0, 1000}}},
    };
    const size_t nc = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < nc; i++) {
        if (getenv("EDGELLM_TEST_QUICK") && i >= 6) break;
        run_attention_pf(&cases[i], 2);
    }
    run_attention_pf(&cases[0], 0); /* through the backend's own choice (n_tok >= 64) */
}

static void test_swiglu_add(void) {
    const int64_t n = 10007;
    float *g = rand_f32(n, 6.f), *u = rand_f32(n, 2.f), *ref = el_malloc(n * 4), *got = el_malloc(n * 4);
    edgellm_ref_swiglu(g, u, ref, n);
    float *dg = dput(g, n * 4), *du = dput(u, n * 4);
    CHECK_OK(be->iface.swiglu(be, dg, du, dg, n)); /* out aliases gate */
    dget(got, dg, n * 4);
    report("swiglu (out = gate)", t_nmse(ref, got, n), 1e-6);
    memcpy(ref, g, n * 4);
    edgellm_ref_add(ref, u, n);
    CHECK_OK(be->iface.upload(be, dg, g, n * 4));
    CHECK_OK(be->iface.add(be, dg, du, n));
    dget(got, dg, n * 4);
    report("add", t_nmse(ref, got, n), 1e-6);
    be->iface.dealloc(be, dg), be->iface.dealloc(be, du);
    el_free(g), el_free(u), el_free(ref), el_free(got);
}

static void run_matmul(int64_t m, int64_t k, int64_t n, el_dtype wt, int with_bias, int64_t ldy, double tol) {
    float *x = rand_f32(m * k, 1.f);
    void *w = rand_typed(wt, n * k, 0.5f);
    float *bias = with_bias ? rand_f32(n, 1.f) : NULL;
    float *ref = el_malloc(m * n * 4), *got = el_malloc(m * ldy * 4), *gc = el_malloc(m * n * 4);
    edgellm_ref_matmul(x, m, k, w, wt, n, bias, ref);
    float *dx = dput(x, m * k * 4), *dy = dput(NULL, m * ldy * 4), *db = bias ? dput(bias, n * 4) : NULL;
    void *dw = NULL;
    CHECK_OK(be->iface.weight_map(be, w, n * k * el_dtype_size(wt), &dw));
    dpoison(dy, m * ldy);
    CHECK_OK(be->iface.matmul(be, dx, m, k, dw, wt, n, db, dy, ldy));
    dget(got, dy, m * ldy * 4);
    for (int64_t i = 0; i < m; i++) memcpy(gc + i * n, got + i * ldy, n * 4);
    char nm[128];
    snprintf(nm, sizeof nm, "matmul %s m %lld k %lld n %lld%s%s", el_dtype_name(wt), (long long)m, (long long)k,
             (long long)n, bias ? " +bias" : "", ldy > n ? " ldy>n" : "");
    report(nm, t_nmse(ref, gc, m * n), tol);
    be->iface.dealloc(be, dx), be->iface.dealloc(be, dy), be->iface.dealloc(be, dw);
    if (db) be->iface.dealloc(be, db);
    el_free(x), el_free(w), el_free(bias), el_free(ref), el_free(got), el_free(gc);
}

static void test_matmul(void) {
    /* GEMV (m <= 8): vector path and the scalar fallback (k % 8 != 0) */
    const int64_t ms[5] = {1, 2, 3, 5, 8};
    for (int ti = 0; ti < 3; ti++) {
        double tol = FT[ti] == EL_DTYPE_F32 ? 1e-6 : 1e-5;
        for (int mi = 0; mi < 5; mi++) run_matmul(ms[mi], 1024, 1000, FT[ti], mi & 1, 1000, tol);
        run_matmul(4, 100, 37, FT[ti], 1, 40, tol);
        run_matmul(1, 4096, 3000, FT[ti], 0, 3000, tol);
        run_matmul(8, 2048, 4096, FT[ti], 0, 4096, tol);
        /* tensor-core GEMV (bf16, m >= 2): k tail (k % 32 != 0), n < 16, the 32- and 64-row tiles */
        run_matmul(6, 520, 77, FT[ti], 1, 80, tol);
        run_matmul(2, 64, 5, FT[ti], 0, 5, tol);
        run_matmul(3, 1024, 9000, FT[ti], 1, 9000, tol);
        run_matmul(7, 256, 20000, FT[ti], 0, 20000, tol);
    }
    /* bf16 with the kernel choice forced: tensor cores at m = 1, fp32 FMA at m >= 2 */
    elk_gemv_tc_mode = 2;
    run_matmul(1, 1024, 1000, EL_DTYPE_BF16, 1, 1000, 1e-5);
    run_matmul(1, 4096, 20000, EL_DTYPE_BF16, 0, 20000, 1e-5);
    elk_gemv_tc_mode = 1;
    run_matmul(8, 1024, 1000, EL_DTYPE_BF16, 1, 1000, 1e-5);
    run_matmul(3, 2048, 3000, EL_DTYPE_BF16, 0, 3000, 1e-5);
    elk_gemv_tc_mode = 0;
    /* GEMM (m > 8): cuBLASLt; bf16/f16 tensor cores, f32 exact fp32 */
    run_matmul(9, 512, 384, EL_DTYPE_BF16, 1, 384, 1e-3);
    run_matmul(64, 1024, 512, EL_DTYPE_BF16, 0, 520, 1e-3);
    run_matmul(100, 768, 256, EL_DTYPE_F16, 1, 256, 1e-3);
    run_matmul(33, 512, 200, EL_DTYPE_F32, 1, 200, 1e-6);
    run_matmul(128, 100, 90, EL_DTYPE_BF16, 0, 90, 1e-3);
}

/* ---- quantized weights (kernels/quant.h) against el_ref_qmatmul ---- */
typedef struct qfmt {
    const char *name;
    el_dtype t;
    int64_t group;
    bool zeros, per_tensor;
    float act; /* static activation scale as a fraction of the (127 or 448) range of max|x|; 0: none */
} qfmt;
static const qfmt QF[] = {
    {"w8a8 dynamic", EL_DTYPE_Q_W8A8, 0, false, false, 0},
    {"w8a8 static", EL_DTYPE_Q_W8A8, 0, false, false, 0.8f},
    {"w4a16 g128", EL_DTYPE_Q_W4A16, 128, false, false, 0},
    {"w4a16 g128 zeros", EL_DTYPE_Q_W4A16, 128, true, false, 0},
    {"w4a16 g64 zeros", EL_DTYPE_Q_W4A16, 64, true, false, 0},
    {"w4a16 g32", EL_DTYPE_Q_W4A16, 32, false, false, 0},
    {"w4a16 g16 (generic)", EL_DTYPE_Q_W4A16, 16, false, false, 0},
    {"fp8 static", EL_DTYPE_Q_FP8, 0, false, false, 0.8f},
    {"fp8 static per-tensor", EL_DTYPE_Q_FP8, 0, false, true, 1.2f},
    {"fp8 weight-only", EL_DTYPE_Q_FP8, 0, false, false, 0},
    {"nvfp4", EL_DTYPE_Q_NVFP4, 16, false, false, 0},
    {"q8_0", EL_DTYPE_Q8_0, 0, false, false, 0},
    {"q4_0", EL_DTYPE_Q4_0, 0, false, false, 0},
};

/* Quantizes a random (n, k) weight to f (host, 64-byte aligned). */
static void *make_qweight(const qfmt *f, int64_t n, int64_t k, float xmax, size_t *nbytes) {
    float *wf = rand_f32((size_t)(n * k), 0.5f);
    el_qopts o = el_qopts_default();
    if (f->group) o.group = f->group;
    o.zeros = f->zeros;
    o.per_tensor = f->per_tensor;
    if (f->act > 0) o.act_scale = xmax / (f->t == EL_DTYPE_Q_FP8 ? 448.f : 127.f) * f->act;
    *nbytes = el_weight_nbytes(f->t, n, k, o.group, o.zeros);
    void *q = el_malloc(*nbytes + 64);
    memset(q, 0, *nbytes);
    CHECK_OK(el_quantize_ref(f->t, wf, n, k, &o, q));
    el_free(wf);
    return q;
}

static bool q_int_exact(const qfmt *f) { /* integer dot products: results match the reference to rounding */
    return f->t == EL_DTYPE_Q_W8A8 || f->t == EL_DTYPE_Q8_0 || f->t == EL_DTYPE_Q4_0;
}

/* The prefill path the backend must take for f at this shape (m > 8): 0 int8 GEMM, 1 fp8 GEMM, 2 bf16 GEMM on
 * dequantized weights (cuBLASLt's rules: int8 needs rows of W, k and ldy multiples of 4; fp8 k and the rows of W
 * multiples of 16, ldy of 4, static activations, sm_89+; y is 256-byte aligned here) */
static int qgemm_path(const qfmt *f, int64_t k, int64_t n, int64_t ldy) {
    if (!el_cuda_qgemm_mode) return 2;
    if (f->t == EL_DTYPE_Q_W8A8) return k % 4 == 0 && n % 4 == 0 && ldy % 4 == 0 ? 0 : 2;
    if (f->t == EL_DTYPE_Q_FP8 && f->act > 0 && g_cc >= 89) return k % 16 == 0 && n % 16 == 0 && ldy % 4 == 0 ? 1 : 2;
    return 2;
}

/* One quantized matmul against el_ref_qmatmul. m > 8 and w8a8 / fp8: also checks which prefill path ran
 * (qgemm_path) and, on the int8 GEMM, that every output is bit-identical to the reference. */
static void run_qmatmul(const qfmt *f, int64_t m, int64_t k, int64_t n, int with_bias, int64_t ldy) {
    float *x = rand_f32((size_t)(m * k), 2.f);
    float xmax = 0;
    for (int64_t i = 0; i < m * k; i++)
        xmax = fmaxf(xmax, fabsf(x[i]));
    size_t nb = 0;
    void *w = make_qweight(f, n, k, xmax, &nb);
    float *bias = with_bias ? rand_f32((size_t)n, 1.f) : NULL;
    float *ref = el_malloc((size_t)(m * n) * 4), *got = el_malloc((size_t)(m * ldy) * 4),
          *gc = el_malloc((size_t)(m * n) * 4);
    el_ref_qmatmul(x, m, k, w, f->t, n, 0, n, bias, ref, n);
    float *dx = dput(x, (size_t)(m * k) * 4), *dy = dput(NULL, (size_t)(m * ldy) * 4),
          *db = bias ? dput(bias, (size_t)n * 4) : NULL;
    void *dw = NULL;
    CHECK_OK(be->iface.weight_map(be, w, nb, &dw));
    dpoison(dy, (size_t)(m * ldy));
    unsigned long long cnt0[3];
    memcpy(cnt0, el_cuda_qgemm_count, sizeof cnt0);
    CHECK_OK(be->iface.matmul(be, dx, m, k, dw, f->t, n, db, dy, ldy));
    dget(got, dy, (size_t)(m * ldy) * 4);
    for (int64_t i = 0; i < m; i++)
        memcpy(gc + i * n, got + i * ldy, (size_t)n * 4);
    const bool codes_fmt = f->t == EL_DTYPE_Q_W8A8 || f->t == EL_DTYPE_Q_FP8;
    const int path = m > 8 && codes_fmt ? qgemm_path(f, k, n, ldy) : -1;
    if (path >= 0) {
        for (int i = 0; i < 3; i++)
            CHECKF(el_cuda_qgemm_count[i] - cnt0[i] == (i == path ? 1u : 0u),
                   "qmatmul %s m %lld k %lld n %lld ldy %lld: expected prefill path %d, counts +%llu +%llu +%llu",
                   f->name, (long long)m, (long long)k, (long long)n, (long long)ldy, path,
                   el_cuda_qgemm_count[0] - cnt0[0], el_cuda_qgemm_count[1] - cnt0[1],
                   el_cuda_qgemm_count[2] - cnt0[2]);
    }
    if (path == 0) { /* int8 GEMM: exact int32 sums, the reference's float epilogue: bit-identical */
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)(m * n); i++)
            diff += memcmp(&ref[i], &gc[i], 4) != 0;
        CHECKF(diff == 0, "qmatmul %s m %lld k %lld n %lld (int8 GEMM): %zu of %lld outputs differ from the reference",
               f->name, (long long)m, (long long)k, (long long)n, diff, (long long)(m * n));
    }
    /* GEMV: integer formats exact up to the float epilogue, float formats 1e-5. GEMM: w8a8 on the int8 GEMM
     * bit-identical (checked above); on the bf16 GEMM of dequantized weights the codes are exact in bf16 and the
     * fp32 accumulator (sums exact below 2^24). Static fp8: every e4m3 product exact; the bf16 path sums in fp32
     * (1e-8); the fp8 GEMM sums in the fp8 tensor cores, whose accumulation keeps about 14 bits between the
     * promotions to fp32 on Hopper (DeepSeek-V3 report, sec. 3.3.2; fast accumulation is off here): measured
     * worst 1.18e-8 over the 28 cases (H200, 2026-11-28), bound 1e-7 */
    double tol;
    if (m <= 8)
        tol = q_int_exact(f) ? 1e-10 : 1e-5;
    else if (f->t == EL_DTYPE_Q_W8A8)
        tol = 1e-10;
    else if (f->t == EL_DTYPE_Q_FP8 && f->act > 0)
        tol = path == 1 ? 1e-7 : 1e-8;
    else
        tol = 1e-3;
    char nm[128];
    static const char *const pname[3] = {" [int8 GEMM]", " [fp8 GEMM]", " [bf16 GEMM]"};
    snprintf(nm, sizeof nm, "qmatmul %s m %lld k %lld n %lld%s%s%s", f->name, (long long)m, (long long)k,
             (long long)n, bias ? " +bias" : "", ldy > n ? " ldy>n" : "", path >= 0 ? pname[path] : "");
    report(nm, t_nmse(ref, gc, (size_t)(m * n)), tol);
    be->iface.dealloc(be, dx), be->iface.dealloc(be, dy), be->iface.dealloc(be, dw);
    if (db) be->iface.dealloc(be, db);
    el_free(x), el_free(w), el_free(bias), el_free(ref), el_free(got), el_free(gc);
}

static void test_qmatmul(void) {
    /* (k, n): vector paths; k tails (k % 16 != 0: 8-bit formats per element, w4a16 partial last chunk, nvfp4
     * even block count with a partial chunk); odd n; a k with many chunks per lane; k = 998: x rows not
     * 16-byte aligned (guarded x loads) and an odd nvfp4 block count (per-element path) */
    const int64_t shapes[][2] = {{1024, 1000}, {1020, 77}, {544, 37}, {4096, 300}, {96, 5}, {998, 50}};
    const int64_t ms[5] = {1, 3, 8, 37, 128};
    for (size_t fi = 0; fi < sizeof QF / sizeof QF[0]; fi++) {
        const qfmt *f = &QF[fi];
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t k = shapes[si][0], n = shapes[si][1];
            if ((f->t == EL_DTYPE_Q8_0 || f->t == EL_DTYPE_Q4_0) && k % 32) continue;
            for (int mi = 0; mi < 5; mi++) {
                if (ms[mi] > 8 && si >= 3) continue; /* GEMM: the first three shapes */
                run_qmatmul(f, ms[mi], k, n, (int)((mi + si) & 1), (mi == 2 || mi == 3) ? n + 3 : n);
            }
        }
        /* every m of the GEMV templates once */
        for (int64_t m = 2; m <= 7; m++)
            if (m != 3) run_qmatmul(f, m, 512, 200, 0, 200);
    }
    /* w4a16 on tensor cores (elk_qgemv_tc_mode 2: every m): g128 with and without zero points, k tails
     * (partial 128-blocks, guarded x), g64 (the kernel's per-element path) */
    elk_qgemv_tc_mode = 2;
    printf("w4a16 GEMV: tensor-core kernel\n");
    for (int fi = 2; fi <= 4; fi++)
        for (int mi = 0; mi < 3; mi++) {
            run_qmatmul(&QF[fi], ms[mi], 1024, 1000, mi & 1, 1000);
            run_qmatmul(&QF[fi], ms[mi], 1020, 77, 1, 80);
            run_qmatmul(&QF[fi], ms[mi], 4096, 300, 0, 300);
        }
    run_qmatmul(&QF[2], 5, 998, 50, 0, 50);
    /* m = 1 on the fp32-FMA kernel (the default m = 1 kernel is qmma.cu's, run by the loop above) */
    elk_qgemv_tc_mode = 1;
    printf("w4a16 GEMV: fp32-FMA kernel at m = 1\n");
    for (int fi = 2; fi <= 6; fi++) {
        run_qmatmul(&QF[fi], 1, 1024, 1000, 1, 1000);
        run_qmatmul(&QF[fi], 1, 1020, 77, 0, 77);
    }
    elk_qgemv_tc_mode = 0;
    /* prefill bigger than one dequantized chunk (32M elements): two GEMMs */
    run_qmatmul(&QF[2], 12, 4096, 9000, 1, 9000);
    /* k % 32 != 0 is refused for the ggml formats */
    CHECK(be->iface.matmul(be, NULL, 1, 48, NULL, EL_DTYPE_Q8_0, 8, NULL, NULL, 8) ==
          EDGELLM_STATUS_INVALID_ARG);
}

/* Prefill of w8a8 (dynamic, static) and static fp8 on the int8 / fp8 cuBLASLt GEMMs: token counts from 9 to 2048
 * (below 32: one zero-padded 32-token GEMM into scratch; else a multiple of 16 straight into y plus such a tail for
 * the rest), k and n that are not multiples of 16 where the format allows it, ldy > n, and the shapes the GEMMs do
 * not take (bf16 path: k % 4, n % 4, ldy % 4; fp8: k % 16, n % 16); then the same on the bf16 path
 * (el_cuda_qgemm_mode 0, as EDGELLM_CUDA_QGEMM=0). */
static void test_qgemm_codes(void) {
    const qfmt *fs[4] = {&QF[0], &QF[1], &QF[7], &QF[8]}; /* w8a8 dynamic / static, fp8 static per-channel / tensor */
    typedef struct {
        int64_t k, n, ldy_pad;
        int n_m; /* the first n_m token counts of ms */
    } qcase;
    const qcase cs[] = {
        {1024, 1024, 0, 8}, /* every GEMM, every split of the tokens */
        {1008, 112, 0, 4},  /* k % 32 != 0: both GEMMs */
        {1020, 100, 4, 4},  /* k, n % 16 != 0: int8 GEMM, fp8 on bf16; ldy > n */
        {1024, 1000, 0, 3}, /* n % 16 != 0: int8 GEMM, fp8 on bf16 */
        {1022, 96, 0, 2},   /* k % 4 != 0: bf16 */
        {512, 78, 0, 2},    /* n % 4 != 0: bf16 */
        {512, 200, 3, 2},   /* ldy % 4 != 0: bf16 */
    };
    const int64_t ms[8] = {9, 77, 16, 512, 31, 33, 47, 48};
    printf("prefill GEMMs on int8 / fp8 codes (device compute capability %d.%d)\n", g_cc / 10, g_cc % 10);
    for (int mode = 1; mode >= 0; mode--) {
        el_cuda_qgemm_mode = mode;
        if (!mode) printf("the same on the bf16 path (el_cuda_qgemm_mode 0)\n");
        for (int fi = 0; fi < 4; fi++) {
            for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
                for (int mi = 0; mi < cs[ci].n_m; mi++)
                    run_qmatmul(fs[fi], ms[mi], cs[ci].k, cs[ci].n, (int)((mi + ci) & 1), cs[ci].n + cs[ci].ldy_pad);
            run_qmatmul(fs[fi], 2048, 256, 128, fi & 1, 128);
            if (mode) run_qmatmul(fs[fi], 2047, 1024, 256, 1, 260);
        }
    }
    el_cuda_qgemm_mode = 1;
}

/* Quantized GEMVs (with their activation pre-kernels) inside a captured graph, replayed with new x. */
static void test_qgraph(void) {
    const qfmt *fs[3] = {&QF[0], &QF[2], &QF[7]}; /* w8a8 dynamic, w4a16 g128, fp8 static */
    const int64_t m = 2, k = 1024, n = 640;
    for (int fi = 0; fi < 3; fi++) {
        size_t nb = 0;
        void *w = make_qweight(fs[fi], n, k, 2.f, &nb);
        void *dw = NULL;
        CHECK_OK(be->iface.weight_map(be, w, nb, &dw));
        float *dx = dput(NULL, (size_t)(m * k) * 4), *dy = dput(NULL, (size_t)(m * n) * 4);
        CHECK_OK(be->iface.graph_begin(be, 100 + fi));
        CHECK_OK(be->iface.matmul(be, dx, m, k, dw, fs[fi]->t, n, NULL, dy, n));
        CHECK_OK(be->iface.graph_end(be, 100 + fi));
        for (int rep = 0; rep < 2; rep++) {
            float *x = rand_f32((size_t)(m * k), rep ? 0.5f : 2.f);
            float *ref = el_malloc((size_t)(m * n) * 4), *got = el_malloc((size_t)(m * n) * 4);
            el_ref_qmatmul(x, m, k, w, fs[fi]->t, n, 0, n, NULL, ref, n);
            CHECK_OK(be->iface.upload(be, dx, x, (size_t)(m * k) * 4));
            CHECK_OK(be->iface.graph_launch(be, 100 + fi));
            dget(got, dy, (size_t)(m * n) * 4);
            char nm[96];
            snprintf(nm, sizeof nm, "qmatmul graph replay %d %s", rep, fs[fi]->name);
            report(nm, t_nmse(ref, got, (size_t)(m * n)), q_int_exact(fs[fi]) ? 1e-10 : 1e-5);
            el_free(x), el_free(ref), el_free(got);
        }
        be->iface.dealloc(be, dx), be->iface.dealloc(be, dy), be->iface.dealloc(be, dw);
        el_free(w);
    }
}

/* Captures rope + kv_store + attention for 2 tokens, replays with new positions (graph key: key). */
static void test_graph(el_dtype t, int key) {
    if (!be->iface.graph_begin) return;
    const int64_t n_tok = 2, nh = 8, nkv = 2, hd = 64, cap = 1024, n_slot = 2;
    kvc c = make_cache(t, n_slot, nkv, cap, hd);
    float inv[32];
    for (int i = 0; i < 32; i++) inv[i] = (float)pow(10000.0, -2.0 * i / 64.0);
    float *dq = dput(NULL, n_tok * nh * hd * 4), *dk = dput(NULL, n_tok * nkv * hd * 4), *dv = dput(NULL, n_tok * nkv * hd * 4);
    float *dout = dput(NULL, n_tok * nh * hd * 4), *dinv = dput(inv, sizeof inv);
    int32_t *dpos = dput(NULL, 8), *dslot = dput(NULL, 8);
    int32_t slot[2] = {1, 0};
    CHECK_OK(be->iface.upload(be, dslot, slot, sizeof slot));
    float scale = 0.125f;
    CHECK(!be->iface.graph_has(be, key));
    CHECK_OK(be->iface.graph_begin(be, key));
    CHECK_OK(be->iface.rope(be, dq, n_tok, nh, hd, hd, dpos, dinv, 1.f));
    CHECK_OK(be->iface.rope(be, dk, n_tok, nkv, hd, hd, dpos, dinv, 1.f));
    CHECK_OK(be->iface.kv_store(be, dk, dv, n_tok, nkv, hd, dslot, dpos, c.dk, c.dv, t, KS, VS, cap));
    CHECK_OK(be->iface.attention(be, dq, n_tok, nh, nkv, hd, dslot, dpos, 0, c.dk, c.dv, t, KS, VS, cap,
                                 scale, dout));
    CHECK_OK(be->iface.graph_end(be, key));
    CHECK(be->iface.graph_has(be, key));
    const int32_t steps[3][2] = {{3, 0}, {500, 9}, {1023, 700}};
    for (int s = 0; s < 3; s++) {
        float *q = rand_f32(n_tok * nh * hd, 1.f), *k = rand_f32(n_tok * nkv * hd, 1.f), *v = rand_f32(n_tok * nkv * hd, 1.f);
        CHECK_OK(be->iface.upload(be, dq, q, n_tok * nh * hd * 4));
        CHECK_OK(be->iface.upload(be, dk, k, n_tok * nkv * hd * 4));
        CHECK_OK(be->iface.upload(be, dv, v, n_tok * nkv * hd * 4));
        CHECK_OK(be->iface.upload(be, dpos, steps[s], 8));
        CHECK_OK(be->iface.graph_launch(be, key));
        float *ref = el_malloc(n_tok * nh * hd * 4), *got = el_malloc(n_tok * nh * hd * 4);
        edgellm_ref_rope(q, n_tok, nh, hd, hd, steps[s], inv, 1.f);
        edgellm_ref_rope(k, n_tok, nkv, hd, hd, steps[s], inv, 1.f);
        edgellm_ref_kv_store(k, v, n_tok, nkv, hd, slot, steps[s], c.hk, c.hv, t, KS, VS, cap);
        edgellm_ref_attention(q, n_tok, nh, nkv, hd, slot, steps[s], c.hk, c.hv, t, KS, VS, cap, scale, ref);
        dget(got, dout, n_tok * nh * hd * 4);
        char nm[96];
        snprintf(nm, sizeof nm, "graph replay %d (pos %d, %d) kv %s", s, steps[s][0], steps[s][1],
                 el_dtype_name(t));
        report(nm, t_nmse(ref, got, n_tok * nh * hd), 1e-6);
        el_free(q), el_free(k), el_free(v), el_free(ref), el_free(got);
    }
    CHECK_OK(be->iface.sync(be));
    be->iface.dealloc(be, dq), be->iface.dealloc(be, dk), be->iface.dealloc(be, dv), be->iface.dealloc(be, dout);
    be->iface.dealloc(be, dinv), be->iface.dealloc(be, dpos), be->iface.dealloc(be, dslot);
    free_cache(&c);
}

static void test_errors(void) {
    CHECK(be->iface.rope(be, NULL, 1, 1, 64, 63, NULL, NULL, 1.f) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.attention(be, NULL, 1, 4, 3, 64, NULL, NULL, 0, NULL, NULL, EL_DTYPE_F16, 1.f, 1.f, 16,
                              1.f, NULL) == EDGELLM_STATUS_INVALID_ARG);
    /* fp8 cache without usable scales */
    CHECK(be->iface.attention(be, NULL, 1, 4, 2, 64, NULL, NULL, 0, NULL, NULL, EL_DTYPE_F8_E4M3, 0.f, 1.f,
                              16, 1.f, NULL) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.kv_store(be, NULL, NULL, 1, 2, 64, NULL, NULL, NULL, NULL, EL_DTYPE_F8_E4M3, 1.f, -1.f,
                             16) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.matmul(be, NULL, 1, 8, NULL, EL_DTYPE_I8, 8, NULL, NULL, 8) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.graph_launch(be, 12345) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.graph_end(be, 3) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(strstr(edgellm_last_error(), "cuda") != NULL);
    CHECK(be->iface.peak_memory(be) > 0);
    CHECK(!strcmp(be->iface.name(be), "cuda"));
}

/* ---- fused decode ops (src/kernels/cuda/fused.cu) against the reference op chains ---- */

/* A random (n, k) weight of the fused ops: float type wt, or quantized as qf (then wt = qf->t; xmax: max |h| for
 * the static activation scale of qf). */
static void *fused_weight(el_dtype wt, const qfmt *qf, int64_t n, int64_t k, float xmax, size_t *nb) {
    if (qf) return make_qweight(qf, n, k, xmax, nb);
    *nb = (size_t)(n * k) * el_dtype_size(wt);
    return rand_typed(wt, n * k, 0.5f);
}
static void fused_ref(const float *h, int64_t k, const void *w, el_dtype wt, int64_t n, const float *b, float *y) {
    if (el_dtype_is_quant(wt)) el_ref_qmatmul(h, 1, k, w, wt, n, 0, n, b, y, n);
    else edgellm_ref_matmul(h, 1, k, w, wt, n, b, y);
}

/* h of the reference chain: rmsnorm(x; g) (norm) or x. Quantized weights: the backend's rmsnorm, as in the op chain
 * the runtime runs unfused (the activation codes of w8a8 / static fp8 depend on every bit of h); else the
 * reference's. Returns max |h|. */
static float fused_h(const float *x, const float *g, const float *dx, const float *dg, int64_t k, float eps,
                     bool norm, bool quant, float *h) {
    if (norm && quant) {
        float *dh = dput(NULL, k * 4);
        CHECK_OK(be->iface.rmsnorm(be, dx, dg, EL_DTYPE_F32, 1, k, eps, dh));
        dget(h, dh, k * 4);
        be->iface.dealloc(be, dh);
    } else if (norm) {
        edgellm_ref_rmsnorm(x, g, EL_DTYPE_F32, 1, k, eps, h);
    } else {
        memcpy(h, x, k * 4);
    }
    float m = 0.f;
    for (int64_t i = 0; i < k; i++)
        m = fmaxf(m, fabsf(h[i]));
    return m;
}

/* norm_matmul: n_w weights sharing k; with norm: h = rmsnorm(x), else x; accumulate: y += (pre-filled).
 * qfs[i]: weight i quantized in that format (one el_dtype for all; wt ignored), NULL: float weights of type wt. */
static void run_norm_matmul_qs(int64_t k, int n_w, const int64_t *n, el_dtype wt, bool norm, bool with_bias,
                               bool accum, double tol, const qfmt *const *qfs) {
    const qfmt *qf = qfs ? qfs[0] : NULL;
    if (qf) wt = qf->t;
    const float eps = 1e-5f;
    float *x = rand_f32(k, 2.f), *g = rand_f32(k, 1.f), *h = el_malloc(k * 4);
    float *dx = dput(x, k * 4), *dg = dput(g, k * 4);
    const float hmax = fused_h(x, g, dx, dg, k, eps, norm, qf != NULL, h);
    void *hw[3] = {0}, *dw[3] = {0};
    float *hb[3] = {0}, *db[3] = {0}, *hy0[3] = {0}, *dy[3] = {0};
    for (int i = 0; i < n_w; i++) {
        size_t nb = 0;
        hw[i] = fused_weight(wt, qf ? qfs[i] : NULL, n[i], k, hmax * (1.f + 0.1f * (float)i), &nb); /* own scales */
        CHECK_OK(be->iface.weight_map(be, hw[i], nb, &dw[i]));
        if (qf) CHECK(be->iface.fused_quant && be->iface.fused_quant(be, dw[i], wt));
        if (with_bias && i != 1) { /* matrix 1 without bias: per-matrix NULL */
            hb[i] = rand_f32(n[i], 1.f);
            db[i] = dput(hb[i], n[i] * 4);
        }
        hy0[i] = rand_f32(n[i], 1.f); /* residual for accumulate */
        dy[i] = dput(hy0[i], n[i] * 4);
        if (!accum) dpoison(dy[i], n[i]);
    }
    const void *cw[3] = {dw[0], dw[1], dw[2]};
    const float *cb[3] = {db[0], db[1], db[2]};
    CHECK_OK(be->iface.norm_matmul(be, dx, k, norm ? dg : NULL, eps, n_w, cw, wt, n, cb, dy, accum));
    for (int i = 0; i < n_w; i++) {
        float *ref = el_malloc(n[i] * 4), *got = el_malloc(n[i] * 4);
        fused_ref(h, k, hw[i], wt, n[i], hb[i], ref);
        if (accum) edgellm_ref_add(ref, hy0[i], n[i]);
        dget(got, dy[i], n[i] * 4);
        char nm[160];
        snprintf(nm, sizeof nm, "norm_matmul %s k %lld n %lld (%d of %d)%s%s%s", qf ? qfs[i]->name : el_dtype_name(wt),
                 (long long)k,
                 (long long)n[i], i + 1, n_w, norm ? " norm" : "", hb[i] ? " +bias" : "", accum ? " +=" : "");
        report(nm, t_nmse(ref, got, n[i]), tol);
        el_free(ref), el_free(got);
        be->iface.dealloc(be, dw[i]), be->iface.dealloc(be, dy[i]);
        if (db[i]) be->iface.dealloc(be, db[i]);
        el_free(hw[i]), el_free(hb[i]), el_free(hy0[i]);
    }
    be->iface.dealloc(be, dx), be->iface.dealloc(be, dg);
    el_free(x), el_free(g), el_free(h);
}

static void run_norm_matmul_q(int64_t k, int n_w, const int64_t *n, el_dtype wt, bool norm, bool with_bias,
                              bool accum, double tol, const qfmt *qf) {
    const qfmt *qfs[3] = {qf, qf, qf};
    run_norm_matmul_qs(k, n_w, n, wt, norm, with_bias, accum, tol, qf ? qfs : NULL);
}

static void run_norm_matmul(int64_t k, int n_w, const int64_t *n, el_dtype wt, bool norm, bool with_bias, bool accum,
                            double tol) {
    run_norm_matmul_q(k, n_w, n, wt, norm, with_bias, accum, tol, NULL);
}

static void run_norm_swiglu_q(int64_t k, int64_t n, el_dtype wt, bool norm, bool with_bias, double tol,
                              const qfmt *qf) {
    const float eps = 1e-6f;
    if (qf) wt = qf->t;
    float *x = rand_f32(k, 3.f), *g = rand_f32(k, 1.f), *h = el_malloc(k * 4);
    float *dx = dput(x, k * 4), *dg = dput(g, k * 4), *dout = dput(NULL, n * 4);
    const float hmax = fused_h(x, g, dx, dg, k, eps, norm, qf != NULL, h);
    size_t nbg = 0, nbu = 0; /* static activation scales: up's differs from gate's (its own activation codes) */
    void *wg = fused_weight(wt, qf, n, k, hmax, &nbg), *wu = fused_weight(wt, qf, n, k, hmax * 1.1f, &nbu);
    float *bg = with_bias ? rand_f32(n, 1.f) : NULL, *bu = with_bias ? rand_f32(n, 1.f) : NULL;
    float *rg = el_malloc(n * 4), *ru = el_malloc(n * 4), *ref = el_malloc(n * 4), *got = el_malloc(n * 4);
    fused_ref(h, k, wg, wt, n, bg, rg);
    fused_ref(h, k, wu, wt, n, bu, ru);
    edgellm_ref_swiglu(rg, ru, ref, n);
    float *dbg = bg ? dput(bg, n * 4) : NULL, *dbu = bu ? dput(bu, n * 4) : NULL;
    void *dwg = NULL, *dwu = NULL;
    CHECK_OK(be->iface.weight_map(be, wg, nbg, &dwg));
    CHECK_OK(be->iface.weight_map(be, wu, nbu, &dwu));
    if (qf) CHECK(be->iface.fused_quant && be->iface.fused_quant(be, dwg, wt) && be->iface.fused_quant(be, dwu, wt));
    dpoison(dout, n);
    CHECK_OK(be->iface.norm_swiglu(be, dx, k, norm ? dg : NULL, eps, dwg, dwu, wt, n, dbg, dbu, dout));
    dget(got, dout, n * 4);
    char nm[160];
    snprintf(nm, sizeof nm, "norm_swiglu %s k %lld n %lld%s%s", qf ? qf->name : el_dtype_name(wt), (long long)k,
             (long long)n, norm ? " norm" : "", bg ? " +bias" : "");
    report(nm, t_nmse(ref, got, n), tol);
    be->iface.dealloc(be, dx), be->iface.dealloc(be, dg), be->iface.dealloc(be, dout);
    be->iface.dealloc(be, dwg), be->iface.dealloc(be, dwu);
    if (dbg) be->iface.dealloc(be, dbg), be->iface.dealloc(be, dbu);
    el_free(x), el_free(g), el_free(h), el_free(wg), el_free(wu), el_free(bg), el_free(bu);
    el_free(rg), el_free(ru), el_free(ref), el_free(got);
}

/* The codes prologue of the fused w8a8 / static fp8 ops (fused.cu): batched loads (fq_codes_rows), the per-pass
 * loops and the codes made once per op by k_fq_pre (elk_fq_pre) must give the same codes, so the same outputs bit
 * for bit (NMSE 0): n_w matrices (or SWIGLU: gate and an up with its own static scale) on the same x. */
static void run_fq_codes_ab(int64_t k, int n_w, const int64_t *n, bool norm, bool swiglu, const qfmt *qf) {
    const float eps = 1e-5f;
    float *x = rand_f32(k, 2.f), *g = rand_f32(k, 1.f), *h = el_malloc(k * 4);
    float *dx = dput(x, k * 4), *dg = dput(g, k * 4);
    const float hmax = fused_h(x, g, dx, dg, k, eps, norm, true, h);
    void *hw[3] = {0}, *dw[3] = {0};
    float *dy[3] = {0}, *out[3][3] = {{0}};
    const int nm = swiglu ? 2 : n_w;
    for (int i = 0; i < nm; i++) {
        size_t nb = 0;
        const int64_t ni = swiglu ? n[0] : n[i];
        hw[i] = make_qweight(qf, ni, k, hmax * (1.f + 0.1f * (float)i), &nb); /* own static scales */
        CHECK_OK(be->iface.weight_map(be, hw[i], nb, &dw[i]));
        CHECK(be->iface.fused_quant && be->iface.fused_quant(be, dw[i], qf->t));
    }
    const int no = swiglu ? 1 : n_w;
    for (int i = 0; i < no; i++)
        dy[i] = dput(NULL, n[i] * 4);
    const int pre0 = elk_fq_pre;
    for (int pass = 0; pass < 3; pass++) { /* batched, loops, pre-kernel */
        elk_fq_slow_codes = pass == 1;
        elk_fq_pre = pass == 2;
        for (int i = 0; i < no; i++)
            dpoison(dy[i], n[i]);
        if (swiglu) {
            CHECK_OK(be->iface.norm_swiglu(be, dx, k, norm ? dg : NULL, eps, dw[0], dw[1], qf->t, n[0], NULL, NULL,
                                           dy[0]));
        } else {
            const void *cw[3] = {dw[0], dw[1], dw[2]};
            CHECK_OK(be->iface.norm_matmul(be, dx, k, norm ? dg : NULL, eps, n_w, cw, qf->t, n, NULL, dy, false));
        }
        for (int i = 0; i < no; i++) {
            out[pass][i] = el_malloc(n[i] * 4);
            dget(out[pass][i], dy[i], n[i] * 4);
        }
    }
    elk_fq_slow_codes = 0;
    elk_fq_pre = pre0;
    for (int i = 0; i < no; i++) {
        char nm2[128];
        for (int pass = 1; pass < 3; pass++) {
            snprintf(nm2, sizeof nm2, "fq codes batched vs %s %s k %lld n %lld%s%s", pass == 1 ? "loops" : "pre-kernel",
                     qf->name, (long long)k, (long long)n[i], norm ? " norm" : "", swiglu ? " swiglu" : "");
            report(nm2, t_nmse(out[pass][i], out[0][i], n[i]), 0.0);
        }
        el_free(out[0][i]), el_free(out[1][i]), el_free(out[2][i]);
        be->iface.dealloc(be, dy[i]);
    }
    for (int i = 0; i < nm; i++)
        be->iface.dealloc(be, dw[i]), el_free(hw[i]);
    be->iface.dealloc(be, dx), be->iface.dealloc(be, dg);
    el_free(x), el_free(g), el_free(h);
}

/* rope_attention (q/k norm + RoPE + KV store inside the attention kernel) vs qk_rope_kv + attention on copies of
 * the same inputs and caches: one token per slot, positions in the first, a middle and the last split, at
 * split boundaries, past cap and a slot -1; bit-identical outputs and caches (same arithmetic, same order) */
static void run_rope_attention(int64_t nh, int64_t nkv, int64_t hd, int64_t n_rot, bool norm, el_dtype t,
                               int64_t cap) {
    const int64_t n_tok = 7, n_slot = 7;
    const float eps = 1e-6f, s = 1.05f, scale = 1.f / sqrtf((float)hd);
    int32_t pos[7] = {0, 63, 64, (int32_t)(cap / 2 + 5), (int32_t)cap - 1, (int32_t)cap, 9};
    int32_t slot[7] = {0, 1, 2, 3, 4, 5, -1};
    kvc c = make_cache(t, n_slot, nkv, cap, hd);
    const int64_t nq = n_tok * nh * hd, nk = n_tok * nkv * hd;
    float *q = rand_f32(nq, 2.f), *k = rand_f32(nk, 2.f), *v = rand_f32(nk, 1.f);
    float *qn = rand_f32(hd, 1.f), *kn = rand_f32(hd, 1.f), inv[512];
    for (int i = 0; i < n_rot / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / (double)n_rot);
    float *dq = dput(q, nq * 4), *dk = dput(k, nk * 4), *dv = dput(v, nk * 4), *dq2 = dput(q, nq * 4);
    float *dk2 = dput(k, nk * 4), *dqn = dput(qn, hd * 4), *dkn = dput(kn, hd * 4), *dinv = dput(inv, sizeof inv);
    int32_t *dp = dput(pos, sizeof pos), *ds = dput(slot, sizeof slot);
    void *dkc2 = dput(c.hk, c.bytes), *dvc2 = dput(c.hv, c.bytes);
    float *dout = dput(NULL, nq * 4), *dout2 = dput(NULL, nq * 4);
    CHECK_OK(be->iface.qk_rope_kv(be, dq, dk, dv, n_tok, nh, nkv, hd, norm ? dqn : NULL, norm ? dkn : NULL, eps, n_rot,
                                  dp, dinv, s, ds, c.dk, c.dv, t, cap));
    CHECK_OK(be->iface.attention(be, dq, n_tok, nh, nkv, hd, ds, dp, 0, c.dk, c.dv, t, 1.f, 1.f, cap, scale, dout));
    CHECK_OK(be->iface.rope_attention(be, dq2, dk2, dv, n_tok, nh, nkv, hd, norm ? dqn : NULL, norm ? dkn : NULL, eps,
                                      n_rot, dp, dinv, s, ds, dkc2, dvc2, t, cap, scale, dout2));
    float *o1 = el_malloc(nq * 4), *o2 = el_malloc(nq * 4);
    void *k1 = el_malloc(c.bytes), *k2 = el_malloc(c.bytes), *v1 = el_malloc(c.bytes), *v2 = el_malloc(c.bytes);
    dget(o1, dout, nq * 4), dget(o2, dout2, nq * 4);
    dget(k1, c.dk, c.bytes), dget(k2, dkc2, c.bytes), dget(v1, c.dv, c.bytes), dget(v2, dvc2, c.bytes);
    char nm[160];
    snprintf(nm, sizeof nm, "rope_attention %lld/%lld heads hd %lld n_rot %lld%s kv %s cap %lld: out = chain",
             (long long)nh, (long long)nkv, (long long)hd, (long long)n_rot, norm ? " qk_norm" : "", el_dtype_name(t),
             (long long)cap);
    CHECK(memcmp(o1, o2, (size_t)nq * 4) == 0);
    report(nm, t_nmse(o1, o2, nq), 0);
    CHECKF(memcmp(k1, k2, c.bytes) == 0 && memcmp(v1, v2, c.bytes) == 0, "%s: the caches differ", nm);
    be->iface.dealloc(be, dq), be->iface.dealloc(be, dk), be->iface.dealloc(be, dv), be->iface.dealloc(be, dq2);
    be->iface.dealloc(be, dk2), be->iface.dealloc(be, dqn), be->iface.dealloc(be, dkn), be->iface.dealloc(be, dinv);
    be->iface.dealloc(be, dp), be->iface.dealloc(be, ds), be->iface.dealloc(be, dkc2), be->iface.dealloc(be, dvc2);
    be->iface.dealloc(be, dout), be->iface.dealloc(be, dout2);
    free_cache(&c);
    el_free(q), el_free(k), el_free(v), el_free(qn), el_free(kn), el_free(o1), el_free(o2);
    el_free(k1), el_free(k2), el_free(v1), el_free(v2);
}

static void run_norm_swiglu(int64_t k, int64_t n, el_dtype wt, bool norm, bool with_bias, double tol) {
    run_norm_swiglu_q(k, n, wt, norm, with_bias, tol, NULL);
}

/* qk_rope_kv vs rmsnorm (q_norm/k_norm) + rope(q) + rope(k) + kv_store */
static void run_qk_rope_kv(int64_t n_tok, int64_t nh, int64_t nkv, int64_t hd, int64_t n_rot, bool norm, el_dtype t) {
    const int64_t cap = 64, n_slot = 2;
    const float eps = 1e-6f, s = 1.05f;
    kvc c = make_cache(t, n_slot, nkv, cap, hd);
    const int64_t nq = n_tok * nh * hd, nk = n_tok * nkv * hd;
    float *q = rand_f32(nq, 2.f), *k = rand_f32(nk, 2.f), *v = rand_f32(nk, 1.f);
    float *qn = rand_f32(hd, 1.f), *kn = rand_f32(hd, 1.f), inv[512];
    for (int i = 0; i < n_rot / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / (double)n_rot);
    int32_t pos[4] = {5, 63, 0, 64}, slot[4] = {1, 0, 0, -1}; /* pos 64 = cap and slot -1: not stored */
    float *dq = dput(q, nq * 4), *dk = dput(k, nk * 4), *dv = dput(v, nk * 4);
    float *dqn = dput(qn, hd * 4), *dkn = dput(kn, hd * 4), *dinv = dput(inv, sizeof inv);
    int32_t *dp = dput(pos, sizeof pos), *ds = dput(slot, sizeof slot);
    CHECK_OK(be->iface.qk_rope_kv(be, dq, dk, dv, n_tok, nh, nkv, hd, norm ? dqn : NULL, norm ? dkn : NULL, eps, n_rot,
                                  dp, dinv, s, ds, c.dk, c.dv, t, cap));
    if (norm) {
        edgellm_ref_rmsnorm(q, qn, EL_DTYPE_F32, n_tok * nh, hd, eps, q);
        edgellm_ref_rmsnorm(k, kn, EL_DTYPE_F32, n_tok * nkv, hd, eps, k);
    }
    edgellm_ref_rope(q, n_tok, nh, hd, n_rot, pos, inv, s);
    edgellm_ref_rope(k, n_tok, nkv, hd, n_rot, pos, inv, s);
    for (int64_t i = 0; i < n_tok; i++) /* the reference stores every token: give it the storable ones */
        if (slot[i] >= 0 && pos[i] < cap)
            edgellm_ref_kv_store(k + i * nkv * hd, v + i * nkv * hd, 1, nkv, hd, slot + i, pos + i, c.hk, c.hv, t,
                                 1.f, 1.f, cap);
    float *gq = el_malloc(nq * 4), *gk = el_malloc(nk * 4);
    dget(gq, dq, nq * 4);
    dget(gk, dk, nk * 4);
    const size_t ncache = (size_t)(n_slot * nkv * cap * hd);
    void *hk = el_malloc(c.bytes), *hv = el_malloc(c.bytes);
    dget(hk, c.dk, c.bytes);
    dget(hv, c.dv, c.bytes);
    float *a = el_malloc(ncache * 4), *b = el_malloc(ncache * 4);
    el_convert(EL_DTYPE_F32, a, t, c.hk, ncache);
    el_convert(EL_DTYPE_F32, b, t, hk, ncache);
    double ek = t_nmse(a, b, ncache);
    el_convert(EL_DTYPE_F32, a, t, c.hv, ncache);
    el_convert(EL_DTYPE_F32, b, t, hv, ncache);
    double ev = t_nmse(a, b, ncache);
    char nm[128];
    snprintf(nm, sizeof nm, "qk_rope_kv %lld tok %lld/%lld heads hd %lld n_rot %lld%s kv %s: q", (long long)n_tok,
             (long long)nh, (long long)nkv, (long long)hd, (long long)n_rot, norm ? " qk_norm" : "", el_dtype_name(t));
    report(nm, t_nmse(q, gq, nq), 1e-6);
    nm[strlen(nm) - 1] = 'k';
    report(nm, t_nmse(k, gk, nk), 1e-6);
    strcat(nm, " cache");
    report(nm, ek, 1e-6);
    nm[strlen(nm) - 7] = 'v';
    report(nm, ev, 0); /* v is stored as is: bit-exact */
    be->iface.dealloc(be, dq), be->iface.dealloc(be, dk), be->iface.dealloc(be, dv), be->iface.dealloc(be, dqn);
    be->iface.dealloc(be, dkn), be->iface.dealloc(be, dinv), be->iface.dealloc(be, dp), be->iface.dealloc(be, ds);
    free_cache(&c);
    el_free(q), el_free(k), el_free(v), el_free(qn), el_free(kn), el_free(gq), el_free(gk);
    el_free(hk), el_free(hv), el_free(a), el_free(b);
}

static void test_fused(void) {
    if (!be->iface.norm_matmul || !be->iface.norm_swiglu || !be->iface.qk_rope_kv) {
        CHECKF(0, "the CUDA backend has no fused ops");
        return;
    }
    for (int ti = 0; ti < 3; ti++) {
        const el_dtype wt = FT[ti];
        const double tol = wt == EL_DTYPE_F32 ? 1e-6 : 1e-5;
        /* q/k/v shapes: 1 row per block (small n), 2 and 4 rows per block, the scalar path (k % 8 != 0) */
        const int64_t qkv_s[3] = {256, 64, 64}, qkv_m[3] = {1024, 256, 256}, qkv_l[3] = {2048, 512, 512};
        const int64_t odd[3] = {37, 5, 5}, one[1] = {1000}, tail[2] = {4093, 3};
        run_norm_matmul(512, 3, qkv_s, wt, true, true, false, tol);
        run_norm_matmul(1024, 3, qkv_m, wt, true, false, false, tol);
        run_norm_matmul(2048, 3, qkv_l, wt, true, true, false, tol);
        run_norm_matmul(100, 3, odd, wt, true, true, false, tol);
        run_norm_matmul(2048, 2, tail, wt, false, false, false, tol);
        /* o_proj / down_proj: y += x W^T (+ bias), no norm; lm_head-like: norm, one matrix */
        run_norm_matmul(4096, 1, qkv_l, wt, false, true, true, tol);
        run_norm_matmul(1000, 1, one, wt, false, false, true, tol);
        run_norm_matmul(204, 1, one, wt, false, false, true, tol);
        run_norm_matmul(1024, 1, one, wt, true, false, false, tol);
        /* gate/up + SwiGLU */
        run_norm_swiglu(1024, 3072, wt, true, false, tol);
        run_norm_swiglu(2048, 700, wt, true, true, tol);
        run_norm_swiglu(512, 200, wt, false, false, tol);
        run_norm_swiglu(100, 50, wt, true, true, tol);
    }
    run_norm_matmul(1024, 1, (const int64_t[]){20000}, EL_DTYPE_BF16, true, false, false, 1e-5); /* lm_head-like */
    /* weight vectors in flight per thread forced to 2 and 4 (by shape: 4 where a thread walks >= 8 vectors of a
     * row, e.g. down_proj of Llama-3.2-1B); k 9000: the 4-deep loop's tail */
    for (int d = 2; d <= 4; d += 2) {
        elk_fg_depth = d;
        run_norm_matmul(8192, 1, (const int64_t[]){2048}, EL_DTYPE_BF16, false, true, true, 1e-5);
        run_norm_matmul(9000, 3, (const int64_t[]){300, 100, 100}, EL_DTYPE_BF16, true, true, false, 1e-5);
        run_norm_matmul(9000, 1, (const int64_t[]){700}, EL_DTYPE_F32, false, false, true, 1e-6);
        run_norm_swiglu(9000, 500, EL_DTYPE_F16, true, true, 1e-5);
    }
    elk_fg_depth = 0;
    /* w4a16 weights (qmma.cu): g128 +- zero points, g64, g32, g16 (the element-by-element path); k tails
     * (partial 128-blocks, unaligned x rows when k % 4 != 0), odd n, long k (more than one load batch) */
    for (int fi = 2; fi <= 5; fi++) {
        const qfmt *qf = &QF[fi];
        const int64_t qkv[3] = {1024, 256, 256}, odd[3] = {37, 5, 5}, one[1] = {1000};
        run_norm_matmul_q(2048, 3, qkv, EL_DTYPE_F32, true, true, false, 1e-5, qf);
        run_norm_matmul_q(1056, 3, odd, EL_DTYPE_F32, true, false, false, 1e-5, qf);
        run_norm_matmul_q(4096, 1, qkv, EL_DTYPE_F32, false, true, true, 1e-5, qf);
        run_norm_matmul_q(998, 1, one, EL_DTYPE_F32, false, false, true, 1e-5, qf);
        run_norm_swiglu_q(1024, 3072, EL_DTYPE_F32, true, false, 1e-5, qf);
        run_norm_swiglu_q(14336 / 4, 700, EL_DTYPE_F32, true, true, 1e-5, qf);
        run_norm_swiglu_q(544, 50, EL_DTYPE_F32, false, false, 1e-5, qf);
    }
    run_norm_matmul_q(14336, 1, (const int64_t[]){4096}, EL_DTYPE_F32, false, false, true, 1e-5, &QF[2]); /* down */
    run_norm_matmul_q(4096, 1, (const int64_t[]){30000}, EL_DTYPE_F32, true, false, false, 1e-5, &QF[2]);
    /* fp8 (static activation scale, per-channel and per-tensor weight scales; weight-only), w8a8 (dynamic, static)
     * and nvfp4 (fused.cu: elk_fused_q) against el_ref_qmatmul on the backend's rmsnorm output (the op chain): w8a8
     * exact up to the float epilogue (1e-10), the float formats 1e-5 as their GEMVs. Shapes: 4 / 2 / 1 rows per
     * block (132 SMs) with n not a multiple of them; k % 128 != 0: 1040 (8-bit vector path, nvfp4 odd block count:
     * element path), 1048 and 1022 (nvfp4 vector path with a partial last vector, 8-bit element path), 1030 and
     * 1000 (element paths of all); the norm's sum of squares as elk_rmsnorm's with 256 threads (k >= 1024) and 128,
     * float4 terms and k % 4 != 0; without norm (dynamic w8a8: max |x|); o_proj / down_proj-like += */
    const int qfi[6] = {7, 8, 9, 0, 1, 10};
    for (int i = 0; i < 6; i++) {
        const qfmt *qf = &QF[qfi[i]];
        const double tol = q_int_exact(qf) ? 1e-10 : 1e-5;
        const int64_t qkv4[3] = {2050, 514, 510}, qkv2[3] = {1030, 262, 131}, odd[3] = {37, 5, 5},
                      n3[3] = {300, 100, 100}, two[2] = {700, 300}, one[1] = {1000}, down[1] = {2048}, o3[1] = {300};
        run_norm_matmul_q(2048, 3, qkv4, EL_DTYPE_F32, true, true, false, tol, qf);
        run_norm_matmul_q(1040, 3, qkv2, EL_DTYPE_F32, true, false, false, tol, qf);
        run_norm_matmul_q(1048, 3, odd, EL_DTYPE_F32, true, true, false, tol, qf);
        run_norm_matmul_q(1022, 3, n3, EL_DTYPE_F32, true, true, false, tol, qf);
        run_norm_matmul_q(512, 2, two, EL_DTYPE_F32, false, false, false, tol, qf);
        run_norm_matmul_q(4096, 1, one, EL_DTYPE_F32, false, true, true, tol, qf);
        run_norm_matmul_q(8192, 1, down, EL_DTYPE_F32, false, false, true, tol, qf);
        run_norm_matmul_q(1000, 1, o3, EL_DTYPE_F32, false, false, true, tol, qf);
        run_norm_swiglu_q(2048, 3072, EL_DTYPE_F32, true, false, tol, qf);
        run_norm_swiglu_q(1040, 700, EL_DTYPE_F32, true, true, tol, qf);
        run_norm_swiglu_q(1030, 70, EL_DTYPE_F32, true, false, tol, qf);
        run_norm_swiglu_q(544, 50, EL_DTYPE_F32, true, false, tol, qf);
        run_norm_swiglu_q(512, 40, EL_DTYPE_F32, false, true, tol, qf);
    }
    /* batched codes prologue vs the per-pass loops, bit for bit: fp8 static per-channel, w8a8 dynamic / static; one
     * batch (k <= 2048, 256- and 128-thread sums), several (3072, 8192, 32768), without norm, SWIGLU with two scales */
    for (int i = 0; i < 3; i++) {
        const qfmt *qf = &QF[(const int[]){7, 0, 1}[i]];
        const int64_t qkv[3] = {2048, 512, 512}, one[1] = {1000}, sw[1] = {700};
        run_fq_codes_ab(2048, 3, qkv, true, false, qf);
        run_fq_codes_ab(1024, 3, qkv, true, false, qf);
        run_fq_codes_ab(512, 1, one, true, false, qf);
        run_fq_codes_ab(3072, 1, one, false, false, qf);
        run_fq_codes_ab(8192, 1, one, true, false, qf);
        run_fq_codes_ab(2048, 1, sw, true, true, qf);
        run_fq_codes_ab(32768, 1, sw, true, true, qf);
    }
    /* w8a8 gate/up with k = 32768: 64 KiB of activation codes (above the default 48 KiB of shared memory) */
    run_norm_swiglu_q(32768, 64, EL_DTYPE_F32, true, true, 1e-10, &QF[0]);
    run_norm_swiglu_q(32768, 64, EL_DTYPE_F32, true, false, 1e-10, &QF[1]);
    { /* fp8 q with a static activation scale, k and v weight-only: one launch per weight */
        const qfmt *mix[3] = {&QF[7], &QF[9], &QF[9]};
        const int64_t qkv[3] = {1024, 256, 256};
        run_norm_matmul_qs(2048, 3, qkv, EL_DTYPE_F32, true, true, false, 1e-5, mix);
    }
    { /* w8a8 with k above ELK_FQ_MAX_K (49152): not taken by the fused ops */
        size_t nb = 0;
        const int64_t kbig = 49168;
        void *hw = make_qweight(&QF[0], 4, kbig, 0.f, &nb), *dw = NULL;
        CHECK_OK(be->iface.weight_map(be, hw, nb, &dw));
        CHECK(be->iface.fused_quant && !be->iface.fused_quant(be, dw, EL_DTYPE_Q_W8A8));
        const void *cw[1] = {dw};
        const int64_t n1[1] = {4};
        float *y1[1] = {NULL};
        CHECK(be->iface.norm_matmul(be, NULL, kbig, NULL, 0.f, 1, cw, EL_DTYPE_Q_W8A8, n1, NULL, y1, true) ==
              EDGELLM_STATUS_INVALID_ARG);
        be->iface.dealloc(be, dw);
        el_free(hw);
    }
    { /* w4a16 g16: not taken by the fused ops (the runtime asks fused_quant and runs the op chain) */
        size_t nb = 0;
        void *hw = make_qweight(&QF[6], 64, 256, 0.f, &nb), *dw = NULL;
        CHECK_OK(be->iface.weight_map(be, hw, nb, &dw));
        CHECK(be->iface.fused_quant && !be->iface.fused_quant(be, dw, EL_DTYPE_Q_W4A16));
        const void *cw[1] = {dw};
        const int64_t n1[1] = {64};
        float *y1[1] = {NULL};
        CHECK(be->iface.norm_matmul(be, NULL, 256, NULL, 0.f, 1, cw, EL_DTYPE_Q_W4A16, n1, NULL, y1, false) ==
              EDGELLM_STATUS_INVALID_ARG);
        be->iface.dealloc(be, dw);
        el_free(hw);
    }
    for (int ti = 0; ti < 3; ti++) {
        run_qk_rope_kv(3, 8, 2, 128, 128, true, FT[ti]);
        run_qk_rope_kv(4, 6, 3, 64, 32, false, FT[ti]);
    }
    run_qk_rope_kv(2, 4, 4, 256, 256, true, EL_DTYPE_BF16);
    run_qk_rope_kv(1, 2, 1, 80, 64, true, EL_DTYPE_F16);
    if (be->iface.rope_attention) {
        for (int ti = 0; ti < 3; ti++) {
            for (int late = 0; late < 2; late++) { /* raw heads requested at once, and one at a time */
                elk_attn_rope_late = late;
                run_rope_attention(32, 8, 64, 64, false, FT[ti], 512);   /* Llama-3.2-1B heads */
                run_rope_attention(16, 8, 128, 128, true, FT[ti], 4096); /* Qwen3-0.6B heads, many splits */
            }
            elk_attn_rope_late = 0;
        }
        for (int mc = 16; mc <= 32; mc *= 2) { /* chunks below the 64-position block */
            elk_attn_min_chunk = mc;
            run_rope_attention(32, 8, 64, 64, false, EL_DTYPE_BF16, 512);
            run_rope_attention(16, 8, 128, 128, true, EL_DTYPE_F16, 4096);
            run_rope_attention(8, 2, 128, 64, true, EL_DTYPE_F32, 300);
        }
        elk_attn_min_chunk = 64;
        elk_attn_lane_scores = 0; /* rope attention and the chain both score by warps: still bit-identical */
        for (int ti = 0; ti < 3; ti++) {
            run_rope_attention(32, 8, 64, 64, false, FT[ti], 512);
            run_rope_attention(16, 8, 128, 128, true, FT[ti], 4096);
        }
        elk_attn_lane_scores = 1;
        run_rope_attention(8, 2, 128, 64, true, EL_DTYPE_BF16, 300);   /* partial rotary, odd capacity */
        run_rope_attention(4, 4, 32, 32, false, EL_DTYPE_F16, 128);
        run_rope_attention(12, 2, 80, 64, true, EL_DTYPE_F16, 256);    /* hd 80: the two-op fallback */
    }
    /* argument errors */
    CHECK(be->iface.norm_matmul(be, NULL, 16, NULL, 0.f, 4, NULL, EL_DTYPE_BF16, NULL, NULL, NULL, false) ==
          EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.norm_swiglu(be, NULL, 16, NULL, 0.f, NULL, NULL, EL_DTYPE_I8, 8, NULL, NULL, NULL) ==
          EDGELLM_STATUS_INVALID_ARG);
}

/* The fused ops of one layer captured in a CUDA graph (programmatic dependent launch on sm_90) and
 * replayed with new inputs: qkv (norm) -> q/k norm + rope + kv store -> gate/up (norm) + SwiGLU -> down
 * accumulated into x (x is read by the first ops of the chain and written by the last one). */
static void test_fused_graph(void) {
    if (!be->iface.graph_begin || !be->iface.norm_matmul) return;
    const int64_t E = 512, nh = 4, nkv = 2, hd = 64, F = 1024, cap = 32, QD = nh * hd, KD = nkv * hd;
    const el_dtype wt = EL_DTYPE_BF16, kt = EL_DTYPE_BF16;
    const float eps = 1e-6f;
    kvc c = make_cache(kt, 1, nkv, cap, hd);
    void *hw[6];
    const int64_t wn[6] = {QD, KD, KD, F, F, E}, wk[6] = {E, E, E, E, E, F};
    void *dw[6];
    for (int i = 0; i < 6; i++) {
        hw[i] = rand_typed(wt, wn[i] * wk[i], 0.3f);
        CHECK_OK(be->iface.weight_map(be, hw[i], wn[i] * wk[i] * 2, &dw[i]));
    }
    float *g1 = rand_f32(E, 1.f), *g2 = rand_f32(E, 1.f), *qn = rand_f32(hd, 1.f), *kn = rand_f32(hd, 1.f), inv[32];
    for (int i = 0; i < 32; i++) inv[i] = (float)pow(10000.0, -2.0 * i / 64.0);
    float *dg1 = dput(g1, E * 4), *dg2 = dput(g2, E * 4), *dqn = dput(qn, hd * 4), *dkn = dput(kn, hd * 4);
    float *dinv = dput(inv, sizeof inv), *dx = dput(NULL, E * 4), *dq = dput(NULL, QD * 4), *dk = dput(NULL, KD * 4);
    float *dv = dput(NULL, KD * 4), *dgo = dput(NULL, F * 4);
    int32_t *dpos = dput(NULL, 4), *dslot = dput(NULL, 4), slot0 = 0;
    CHECK_OK(be->iface.upload(be, dslot, &slot0, 4));
    CHECK_OK(be->iface.graph_begin(be, 11));
    {
        const void *w3[3] = {dw[0], dw[1], dw[2]}, *wd[1] = {dw[5]};
        const int64_t n3[3] = {QD, KD, KD}, nd[1] = {E};
        float *y3[3] = {dq, dk, dv}, *yd[1] = {dx};
        CHECK_OK(be->iface.norm_matmul(be, dx, E, dg1, eps, 3, w3, wt, n3, NULL, y3, false));
        CHECK_OK(be->iface.qk_rope_kv(be, dq, dk, dv, 1, nh, nkv, hd, dqn, dkn, eps, hd, dpos, dinv, 1.f, dslot, c.dk,
                                      c.dv, kt, cap));
        CHECK_OK(be->iface.norm_swiglu(be, dx, E, dg2, eps, dw[3], dw[4], wt, F, NULL, NULL, dgo));
        CHECK_OK(be->iface.norm_matmul(be, dgo, F, NULL, 0.f, 1, wd, wt, nd, NULL, yd, true));
    }
    CHECK_OK(be->iface.graph_end(be, 11));
    const int32_t steps[3] = {0, 7, 31};
    for (int s = 0; s < 3; s++) {
        float *x = rand_f32(E, 2.f), *h = el_malloc(E * 4), *q = el_malloc(QD * 4), *k = el_malloc(KD * 4);
        float *v = el_malloc(KD * 4), *gg = el_malloc(F * 4), *uu = el_malloc(F * 4), *o = el_malloc(E * 4);
        CHECK_OK(be->iface.upload(be, dx, x, E * 4));
        CHECK_OK(be->iface.upload(be, dpos, &steps[s], 4));
        CHECK_OK(be->iface.graph_launch(be, 11));
        edgellm_ref_rmsnorm(x, g1, EL_DTYPE_F32, 1, E, eps, h);
        edgellm_ref_matmul(h, 1, E, hw[0], wt, QD, NULL, q);
        edgellm_ref_matmul(h, 1, E, hw[1], wt, KD, NULL, k);
        edgellm_ref_matmul(h, 1, E, hw[2], wt, KD, NULL, v);
        edgellm_ref_rmsnorm(q, qn, EL_DTYPE_F32, nh, hd, eps, q);
        edgellm_ref_rmsnorm(k, kn, EL_DTYPE_F32, nkv, hd, eps, k);
        edgellm_ref_rope(q, 1, nh, hd, hd, &steps[s], inv, 1.f);
        edgellm_ref_rope(k, 1, nkv, hd, hd, &steps[s], inv, 1.f);
        edgellm_ref_kv_store(k, v, 1, nkv, hd, &slot0, &steps[s], c.hk, c.hv, kt, 1.f, 1.f, cap);
        edgellm_ref_rmsnorm(x, g2, EL_DTYPE_F32, 1, E, eps, h);
        edgellm_ref_matmul(h, 1, E, hw[3], wt, F, NULL, gg);
        edgellm_ref_matmul(h, 1, E, hw[4], wt, F, NULL, uu);
        edgellm_ref_swiglu(gg, uu, gg, F);
        edgellm_ref_matmul(gg, 1, F, hw[5], wt, E, NULL, o);
        edgellm_ref_add(o, x, E);
        float *gq = el_malloc(QD * 4), *gx = el_malloc(E * 4);
        dget(gq, dq, QD * 4);
        dget(gx, dx, E * 4);
        const size_t nc = (size_t)(nkv * cap * hd);
        void *hk = el_malloc(c.bytes);
        dget(hk, c.dk, c.bytes);
        float *a = el_malloc(nc * 4), *b = el_malloc(nc * 4);
        el_convert(EL_DTYPE_F32, a, kt, c.hk, nc);
        el_convert(EL_DTYPE_F32, b, kt, hk, nc);
        char nm[96];
        snprintf(nm, sizeof nm, "fused layer graph replay %d (pos %d): q", s, steps[s]);
        report(nm, t_nmse(q, gq, QD), 1e-5);
        snprintf(nm, sizeof nm, "fused layer graph replay %d (pos %d): k cache", s, steps[s]);
        report(nm, t_nmse(a, b, nc), 1e-5);
        snprintf(nm, sizeof nm, "fused layer graph replay %d (pos %d): x += mlp(x)", s, steps[s]);
        report(nm, t_nmse(o, gx, E), 1e-5);
        el_free(x), el_free(h), el_free(q), el_free(k), el_free(v), el_free(gg), el_free(uu), el_free(o);
        el_free(gq), el_free(gx), el_free(hk), el_free(a), el_free(b);
    }
    CHECK_OK(be->iface.sync(be));
    for (int i = 0; i < 6; i++) be->iface.dealloc(be, dw[i]), el_free(hw[i]);
    float *bufs[] = {dg1, dg2, dqn, dkn, dinv, dx, dq, dk, dv, dgo};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->iface.dealloc(be, bufs[i]);
    be->iface.dealloc(be, dpos), be->iface.dealloc(be, dslot);
    free_cache(&c);
    el_free(g1), el_free(g2), el_free(qn), el_free(kn);
}

#include "gpu/cuda_sample_cases.h" /* test_sample: the sample op */

/* decode lookahead ops: feed_tokens against the scalar rule (ids = sampled, pos + 1), download_begin / _end
 * through both slots (the second copy queued before the first is read), and their misuse reported */
static void test_lookahead_ops(void) {
    static const int64_t ns[3] = {1, 3, 300};
    for (int c = 0; c < 3; c++) {
        const int64_t n = ns[c];
        int32_t *samp = el_malloc(n * 4), *ids = el_malloc(n * 4), *pos = el_malloc(n * 4);
        int32_t *gi = el_malloc(n * 4), *gp = el_malloc(n * 4), *g2 = el_malloc(n * 4);
        for (int64_t i = 0; i < n; i++) samp[i] = (int32_t)(i * 7919 % 1000), ids[i] = -1, pos[i] = (int32_t)(i * 3);
        int32_t *ds = dput(samp, n * 4), *di = dput(ids, n * 4), *dp = dput(pos, n * 4);
        CHECK_OK(be->iface.feed_tokens(be, ds, di, dp, n));
        CHECK_OK(be->iface.download_begin(be, di, n * 4, 0));
        CHECK_OK(be->iface.feed_tokens(be, di, di, dp, n)); /* a second step, queued before slot 0 is read */
        CHECK_OK(be->iface.download_begin(be, dp, n * 4, 1));
        CHECK_OK(be->iface.download_end(be, 0, gi, n * 4));
        CHECK_OK(be->iface.download_end(be, 1, gp, n * 4));
        dget(g2, di, n * 4);
        int bad = 0;
        for (int64_t i = 0; i < n; i++) bad += gi[i] != samp[i] || g2[i] != samp[i] || gp[i] != pos[i] + 2;
        printf("op lookahead feed_tokens + download slots, n %-4lld %s\n", (long long)n, bad ? "FAIL" : "ok");
        CHECKF(!bad, "lookahead ops n %lld: %d wrong entries", (long long)n, bad);
        be->iface.dealloc(be, ds), be->iface.dealloc(be, di), be->iface.dealloc(be, dp);
        el_free(samp), el_free(ids), el_free(pos), el_free(gi), el_free(gp), el_free(g2);
    }
    int32_t *d = dput(NULL, EL_DOWNLOAD_SLOT + 4), h[4];
    CHECK(be->iface.download_end(be, 0, h, 16) == EDGELLM_STATUS_INVALID_ARG); /* nothing queued */
    CHECK(be->iface.download_begin(be, d, EL_DOWNLOAD_SLOT + 4, 0) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.download_begin(be, d, 16, 2) == EDGELLM_STATUS_INVALID_ARG);
    CHECK_OK(be->iface.download_begin(be, d, 16, 1));
    CHECK(be->iface.download_begin(be, d, 16, 1) == EDGELLM_STATUS_INVALID_ARG); /* slot 1 still queued */
    CHECK_OK(be->iface.download_end(be, 1, h, 16));
    be->iface.dealloc(be, d);
}

int main(void) {
    el_backend_params p = {0};
    setenv("EDGELLM_FUSED_FP8", "1", 1); /* fused fp8 ops tested on every device (runtime: sm_89+) */
    edgellm_status s = el_backend_cuda_create(&p, &be);
    if (s != EDGELLM_STATUS_OK) {
        printf("test_cuda_ops: skipped (%s)\n", edgellm_last_error());
        return 77;
    }
    test_embed();
    test_rmsnorm();
    test_rope();
    test_kv_store();
    elk_attn_prefill_mode = 1; /* the split-KV kernel for every case there (1e-6), the prefill kernel below */
    test_attention();
    /* splits of 16 / 32 positions: blocks that end inside a 64-position block; the staged scores take 8 / 4 threads
     * per position there */
    for (int mc = 16; mc <= 32; mc *= 2) {
        elk_attn_min_chunk = mc;
        test_attention();
    }
    elk_attn_min_chunk = 64;
    elk_attn_lane_scores = 0; /* scores by a warp per position (the staged F32 / F16 / BF16 cases) */
    test_attention();
    elk_attn_lane_scores = 1;
    elk_attn_prefill_mode = 0;
    test_attention_prefill();
    test_swiglu_add();
    test_matmul();
    int cc_major = 0, cc_minor = 0;
    cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, 0);
    cudaDeviceGetAttribute(&cc_minor, cudaDevAttrComputeCapabilityMinor, 0);
    g_cc = cc_major * 10 + cc_minor;
    test_qmatmul();
    test_qgemm_codes();
    test_qgraph();
    test_graph(EL_DTYPE_F16, 7);
    test_graph(EL_DTYPE_F8_E4M3, 8);
    test_fused();
    test_fused_graph();
    test_sample();
    test_lookahead_ops();
    test_errors();
    CHECK_OK(be->iface.sync(be));
    printf("peak device memory: %.1f MiB\n", (double)be->iface.peak_memory(be) / (1 << 20));
    be->iface.free(be);
    return t_finish("test_cuda_ops");
}
