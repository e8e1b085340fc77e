/* test_kernels.c - the reference kernels against hand-computed values, then every SIMD kernel (each ISA
 * this CPU has) and the CPU backend (1 and 2 threads, through the vtable) against the reference on
 * seeded random inputs; plus a thread-pool stress test and backend memory basics. */
#include "backend/backend.h"
#include "kernels/e4m3.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform [-1, 1] */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}
static float *frand_buf(size_t n) {
    float *p = malloc(n * sizeof *p + 64);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
/* random values stored as dtype t (F8_E4M3: e4m3 codes of [-300, 300], every magnitude class) */
static void *trand_buf(size_t n, el_dtype t) {
    float *f = frand_buf(n);
    void *p = malloc(n * el_dtype_size(t) + 64);
    if (t == EL_DTYPE_F8_E4M3)
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)p)[i] = el_f32_to_e4m3(f[i] * f[i] * f[i] * 300.0f);
    else
        el_convert(t, p, EL_DTYPE_F32, f, n);
    free(f);
    return p;
}
static double tol_for(el_dtype t) { return t == EL_DTYPE_F32 ? 1e-7 : 1e-6; }

static const el_dtype k_dtypes[3] = {EL_DTYPE_F32, EL_DTYPE_F16, EL_DTYPE_BF16};
/* KV cache types: the float types and the fp8 cache */
static const el_dtype k_kv_dtypes[4] = {EL_DTYPE_F32, EL_DTYPE_F16, EL_DTYPE_BF16, EL_DTYPE_F8_E4M3};
#define KV_K_SCALE (1.0f / 300.0f) /* fp8 cache scales (the float caches must ignore them) */
#define KV_V_SCALE 0.0041f

/* ---- e4m3 conversions of the fp8 KV cache (kernels/e4m3.h) vs the quant.h reference ------------- */
static void test_e4m3(void) {
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7f) == 0x7f) continue; /* NaN codes: never written */
        if (el_e4m3_to_f32_fast((uint8_t)c) != el_e4m3_to_f32((uint8_t)c)) bad++;
        if (el_e4m3_from_f32(el_e4m3_to_f32((uint8_t)c)) != c) bad++; /* every value round-trips */
    }
    CHECKF(bad == 0, "e4m3 decode: %d codes differ", bad);
    /* ties between neighbouring codes round to the even code, like the reference */
    bad = 0;
    for (int c = 0; c < 0x7e; c++) {
        float a = el_e4m3_to_f32((uint8_t)c), b = el_e4m3_to_f32((uint8_t)(c + 1)), mid = (a + b) / 2;
        uint8_t want = (uint8_t)(c & 1 ? c + 1 : c);
        if (el_e4m3_from_f32(mid) != want || el_f32_to_e4m3(mid) != want) bad++;
        if (el_e4m3_from_f32(-mid) != (0x80 | want)) bad++;
    }
    CHECKF(bad == 0, "e4m3 ties: %d wrong", bad);
    /* every f16 value, scaled by a few factors, and random f32 bit patterns */
    bad = 0;
    static const float mul[] = {1.0f, 1.0f / 3.0f, 37.0f, 1e-3f};
    for (int m = 0; m < 4; m++)
        for (uint32_t h = 0; h < 65536; h++) {
            float f = el_f16_to_f32((uint16_t)h) * mul[m];
            if (el_e4m3_from_f32(f) != el_f32_to_e4m3(f)) bad++;
        }
    uint64_t r = 88172645463325252ull;
    for (int i = 0; i < 1000000; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        uint32_t u = (uint32_t)r;
        float f;
        memcpy(&f, &u, 4);
        if (el_e4m3_from_f32(f) != el_f32_to_e4m3(f)) bad++;
    }
    const float edge[] = {448.0f,    447.99f,    464.0f,        464.01f,     480.0f,    1e30f,
                          INFINITY,  -INFINITY,  NAN,           -0.0f,       0.0f,      1e-40f,
                          0.015625f, 0.0156249f, 0.0009765625f, 0.00097656f, 0.0009766f};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        if (el_e4m3_from_f32(edge[i]) != el_f32_to_e4m3(edge[i])) bad++;
        if (el_e4m3_from_f32(-edge[i]) != el_f32_to_e4m3(-edge[i])) bad++;
    }
    CHECKF(bad == 0, "e4m3 encode: %d values differ from el_f32_to_e4m3", bad);
    CHECK(el_e4m3_from_f32(1e9f) == 0x7e && el_e4m3_from_f32(-1e9f) == 0xfe && el_e4m3_from_f32(NAN) == 0x7f);
}

/* ---- the oracle against hand-computed values -------------------------------------------------- */
static void test_ref_known(void) {
    const float x[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, bias[2] = {1, -1};
    float y[4];
    edgellm_ref_matmul(x, 2, 3, w, EL_DTYPE_F32, 2, bias, y);
    CHECK(fabsf(y[0] - -1.0f) < 1e-6f && fabsf(y[1] - 2.0f) < 1e-6f);
    CHECK(fabsf(y[2] - -1.0f) < 1e-6f && fabsf(y[3] - 6.5f) < 1e-6f);
    uint16_t wb[6];
    el_convert(EL_DTYPE_BF16, wb, EL_DTYPE_F32, w, 6);
    edgellm_ref_matmul(x, 2, 3, wb, EL_DTYPE_BF16, 2, NULL, y);
    CHECK(fabsf(y[0] - -2.0f) < 1e-6f && fabsf(y[3] - 7.5f) < 1e-6f);

    const float xr[2] = {3, 4}, wr[2] = {1, 2};
    float yr[2];
    edgellm_ref_rmsnorm(xr, wr, EL_DTYPE_F32, 1, 2, 0.0f, yr); /* rms = sqrt(12.5) */
    CHECK(fabsf(yr[0] - 0.84852814f) < 1e-6f && fabsf(yr[1] - 2.26274170f) < 1e-6f);

    float xq[4] = {1, 2, 3, 4};
    const float inv_freq[2] = {1.5707963267948966f, 1.0f};
    const int32_t pos1 = 1;
    edgellm_ref_rope(xq, 1, 1, 4, 4, &pos1, inv_freq, 1.0f);
    /* pair (x0, x2) rotated by pi/2, pair (x1, x3) by 1 rad */
    CHECK(fabsf(xq[0] - -3.0f) < 1e-6f && fabsf(xq[2] - 1.0f) < 1e-6f);
    CHECK(fabsf(xq[1] - (2 * cosf(1) - 4 * sinf(1))) < 1e-6f && fabsf(xq[3] - (4 * cosf(1) + 2 * sinf(1))) < 1e-6f);

    /* attention over 2 positions: scores 0 and ln 3 -> weights 1/4, 3/4 */
    const float kc[4] = {0, 0, logf(3.0f), 0}, vc[4] = {1, 2, 3, 6}, q[2] = {1, 0};
    const int32_t slot0 = 0;
    float o[2];
    edgellm_ref_attention(q, 1, 1, 1, 2, &slot0, &pos1, kc, vc, EL_DTYPE_F32, 1, 1, 2, 1.0f, o);
    CHECK(fabsf(o[0] - 2.5f) < 1e-6f && fabsf(o[1] - 5.0f) < 1e-6f);
    const int32_t pos0 = 0; /* causal: position 0 sees only itself */
    edgellm_ref_attention(q, 1, 1, 1, 2, &slot0, &pos0, kc, vc, EL_DTYPE_F32, 1, 1, 2, 1.0f, o);
    CHECK(fabsf(o[0] - 1.0f) < 1e-6f && fabsf(o[1] - 2.0f) < 1e-6f);
    /* the same through an fp8 cache: k / (ln3 / 2) and v / 0.5 are exact e4m3 values */
    uint8_t k8[4], v8[4];
    const int32_t pp[2] = {0, 1}, ss[2] = {0, 0};
    const float ks = logf(3.0f) / 2.0f;
    edgellm_ref_kv_store(kc, vc, 2, 1, 2, ss, pp, k8, v8, EL_DTYPE_F8_E4M3, ks, 0.5f, 2);
    CHECK(k8[0] == 0 && k8[2] == el_f32_to_e4m3(2.0f) && v8[3] == el_f32_to_e4m3(12.0f));
    edgellm_ref_attention(q, 1, 1, 1, 2, &slot0, &pos1, k8, v8, EL_DTYPE_F8_E4M3, ks, 0.5f, 2, 1.0f, o);
    CHECK(fabsf(o[0] - 2.5f) < 1e-6f && fabsf(o[1] - 5.0f) < 1e-6f);

    const float g[2] = {1, -2}, u[2] = {2, 3};
    float s[2];
    edgellm_ref_swiglu(g, u, s, 2);
    CHECK(fabsf(s[0] - 1.46211716f) < 1e-6f && fabsf(s[1] - (-2.0f / (1 + expf(2)) * 3)) < 1e-6f);
    float a[2] = {1, 2};
    edgellm_ref_add(a, u, 2);
    CHECK(a[0] == 3 && a[1] == 5);

    const int32_t ids[2] = {1, 0};
    float e[4];
    edgellm_ref_embed(ids, 2, x, EL_DTYPE_F32, 2, e);
    CHECK(e[0] == 3 && e[1] == 4 && e[2] == 1 && e[3] == 2);
}

/* ---- SIMD kernels vs reference ---------------------------------------------------------------- */
static int n_isa_checked;

static void check_close(const char *what, const float *ref, const float *got, size_t n, double tol, const char *ctx) {
    double e = t_nmse(ref, got, n);
    CHECKF(e <= tol, "%s [%s]: nmse %.3g > %.3g", what, ctx, e, tol);
}

static void test_matmul_isa(const char *isa) {
    static const int64_t shapes[][3] = {{1, 16, 16}, {1, 17, 33}, {2, 64, 40},  {3, 37, 19},   {4, 128, 70},
                                        {5, 33, 9},  {6, 96, 21}, {7, 48, 66},  {8, 1000, 31}, {9, 31, 17},
                                        {64, 96, 70}, {65, 128, 47}, {1, 1024, 130}, {70, 64, 5},
                                        {5, 3001, 23}, {2, 3072, 9}, {4, 4100, 12}, {9, 3001, 13}, {12, 2100, 9}}; /* k blocks */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t m = shapes[si][0], k = shapes[si][1], n = shapes[si][2];
        for (int di = 0; di < 3; di++) {
            el_dtype wt = k_dtypes[di];
            float *x = frand_buf((size_t)(m * k)), *bias = frand_buf((size_t)n);
            void *w = trand_buf((size_t)(n * k), wt);
            float *yr = malloc((size_t)(m * n) * 4), *yc = malloc((size_t)(m * n + 8) * 4);
            for (int bi = 0; bi < 2; bi++) {
                const float *b = bi ? bias : NULL;
                edgellm_ref_matmul(x, m, k, w, wt, n, b, yr);
                memset(yc, 0xff, (size_t)(m * n) * 4); /* NaN: every output must be written */
                /* two column ranges with an odd split point */
                int64_t mid = n / 3;
                edgellm_cpu_matmul(x, m, k, w, wt, 0, mid, b, yc, n, NULL);
                edgellm_cpu_matmul(x, m, k, w, wt, mid, n, b, yc, n, NULL);
                char ctx[128];
                snprintf(ctx, sizeof ctx, "%s m=%lld k=%lld n=%lld %s bias=%d", isa, (long long)m, (long long)k,
                         (long long)n, el_dtype_name(wt), bi);
                check_close("cpu_matmul", yr, yc, (size_t)(m * n), tol_for(wt), ctx);
            }
            free(x);
            free(bias);
            free(w);
            free(yr);
            free(yc);
        }
    }
}

static void test_rmsnorm_isa(const char *isa) {
    static const int64_t shapes[][2] = {{1, 8}, {3, 17}, {2, 64}, {7, 1000}, {1, 1024}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int di = 0; di < 3; di++) {
            const int64_t rows = shapes[si][0], dim = shapes[si][1];
            el_dtype wt = k_dtypes[di];
            float *x = frand_buf((size_t)(rows * dim));
            void *w = trand_buf((size_t)dim, wt);
            float *yr = malloc((size_t)(rows * dim) * 4), *yc = malloc((size_t)(rows * dim) * 4);
            edgellm_ref_rmsnorm(x, w, wt, rows, dim, 1e-6f, yr);
            memset(yc, 0xff, (size_t)(rows * dim) * 4);
            edgellm_cpu_rmsnorm(x, w, wt, 0, rows / 2, dim, 1e-6f, yc);
            edgellm_cpu_rmsnorm(x, w, wt, rows / 2, rows, dim, 1e-6f, yc);
            char ctx[96];
            snprintf(ctx, sizeof ctx, "%s rows=%lld dim=%lld %s", isa, (long long)rows, (long long)dim, el_dtype_name(wt));
            check_close("cpu_rmsnorm", yr, yc, (size_t)(rows * dim), tol_for(wt), ctx);
            /* in place */
            edgellm_cpu_rmsnorm(x, w, wt, 0, rows, dim, 1e-6f, x);
            check_close("cpu_rmsnorm in place", yr, x, (size_t)(rows * dim), tol_for(wt), ctx);
            free(x);
            free(w);
            free(yr);
            free(yc);
        }
    }
}

static void test_eltwise_isa(const char *isa) {
    static const int64_t ns[] = {1, 15, 16, 17, 1000, 70001};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        const int64_t n = ns[i];
        float *g = frand_buf((size_t)n), *u = frand_buf((size_t)n);
        for (int64_t j = 0; j < n; j++) g[j] *= 12.0f; /* exercise the exp range */
        float *r = malloc((size_t)n * 4), *c = malloc((size_t)n * 4);
        edgellm_ref_swiglu(g, u, r, n);
        edgellm_cpu_swiglu(g, u, c, 0, n / 2);
        edgellm_cpu_swiglu(g, u, c, n / 2, n);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "%s n=%lld", isa, (long long)n);
        check_close("cpu_swiglu", r, c, (size_t)n, 1e-7, ctx);
        memcpy(r, g, (size_t)n * 4);
        memcpy(c, g, (size_t)n * 4);
        edgellm_ref_add(r, u, n);
        edgellm_cpu_add(c, u, 0, n);
        check_close("cpu_add", r, c, (size_t)n, 1e-7, ctx);
        free(g);
        free(u);
        free(r);
        free(c);
    }
}

/* Attention fixture: a cache of n_slot slots filled with random values, query tokens with slots and
 * positions. */
typedef struct attn_case {
    int64_t n_tok, n_head, n_kv, hd, cap, n_slot;
    el_dtype kt;
    int32_t *slot, *pos;
    float *q;
    void *kc, *vc;
    float scale, k_scale, v_scale;
} attn_case;

/* prefill: 0 decode (slots 0 / 1, scattered positions), 1 a prompt (slot 1, positions 0..), 2 a later chunk of
 * a prompt (slot 1, positions 100..: blocks the causal limits cross in their middle) */
static void attn_case_init(attn_case *a, int64_t n_tok, int64_t n_head, int64_t n_kv, int64_t hd, el_dtype kt,
                           int prefill) {
    a->n_tok = n_tok;
    a->n_head = n_head;
    a->n_kv = n_kv;
    a->hd = hd;
    a->cap = 300;
    a->n_slot = 2;
    a->kt = kt;
    a->scale = 1.0f / sqrtf((float)hd);
    a->k_scale = KV_K_SCALE;
    a->v_scale = KV_V_SCALE;
    a->slot = malloc((size_t)n_tok * 4);
    a->pos = malloc((size_t)n_tok * 4);
    static const int32_t dpos[] = {0, 1, 63, 64, 65, 200, 299, 127, 5};
    for (int64_t t = 0; t < n_tok; t++) {
        a->slot[t] = prefill ? 1 : (int32_t)(t % 2);
        a->pos[t] = prefill ? (int32_t)(t + (prefill == 2 ? 100 : 0)) : dpos[t % 9];
    }
    a->q = frand_buf((size_t)(n_tok * n_head * hd));
    for (int64_t i = 0; i < n_tok * n_head * hd; i++) a->q[i] *= 3.0f; /* peakier softmax */
    size_t nc = (size_t)(a->n_slot * n_kv * a->cap * hd);
    a->kc = trand_buf(nc, kt);
    a->vc = trand_buf(nc, kt);
}
static void attn_case_free(attn_case *a) {
    free(a->slot);
    free(a->pos);
    free(a->q);
    free(a->kc);
    free(a->vc);
}

static void test_attention_isa(const char *isa) {
    static const int64_t hds[] = {8, 20, 32, 64, 128};
    static const int64_t groups[] = {1, 2, 4};
    for (size_t hi = 0; hi < 5; hi++) {
        for (size_t gi = 0; gi < 3; gi++) {
            for (int di = 0; di < 4; di++) {
                for (int pf = 0; pf < 3; pf++) {
                    attn_case a;
                    attn_case_init(&a, pf ? 70 : 9, 2 * groups[gi], 2, hds[hi], k_kv_dtypes[di], pf);
                    size_t no = (size_t)(a.n_tok * a.n_head * a.hd);
                    float *r = malloc(no * 4), *c = malloc(no * 4);
                    edgellm_ref_attention(a.q, a.n_tok, a.n_head, a.n_kv, a.hd, a.slot, a.pos, a.kc, a.vc,
                                          a.kt, a.k_scale, a.v_scale, a.cap, a.scale, r);
                    memset(c, 0xff, no * 4);
                    int64_t mid = a.n_tok / 2;
                    edgellm_cpu_attention(a.q, 0, mid, a.n_head, a.n_kv, a.hd, a.slot, a.pos, a.kc, a.vc,
                                          a.kt, a.k_scale, a.v_scale, a.cap, a.scale, c, NULL);
                    edgellm_cpu_attention(a.q, mid, a.n_tok, a.n_head, a.n_kv, a.hd, a.slot, a.pos, a.kc,
                                          a.vc, a.kt, a.k_scale, a.v_scale, a.cap, a.scale, c, NULL);
                    char ctx[128];
                    snprintf(ctx, sizeof ctx, "%s hd=%lld heads=%lld/%lld kv=%s %s", isa, (long long)a.hd,
                             (long long)a.n_head, (long long)a.n_kv, el_dtype_name(a.kt),
                             pf == 2 ? "prefill@100" : pf ? "prefill" : "decode");
                    check_close("cpu_attention", r, c, no, tol_for(a.kt), ctx);
                    free(r);
                    free(c);
                    attn_case_free(&a);
                }
            }
        }
    }
}

static void test_rope_cpu(void) {
    static const int64_t hds[] = {8, 32, 64, 128};
    for (int hi = 0; hi < 4; hi++) {
        for (int full = 0; full < 2; full++) {
            const int64_t hd = hds[hi], n_rot = full ? hd : hd / 2, n_tok = 5, nh = 3;
            float inv_freq[64];
            for (int64_t i = 0; i < n_rot / 2; i++) inv_freq[i] = powf(10000.0f, -2.0f * (float)i / (float)n_rot);
            int32_t pos[5] = {0, 1, 17, 1000, 4095};
            float *x = frand_buf((size_t)(n_tok * nh * hd)), *y = malloc((size_t)(n_tok * nh * hd) * 4);
            memcpy(y, x, (size_t)(n_tok * nh * hd) * 4);
            edgellm_ref_rope(x, n_tok, nh, hd, n_rot, pos, inv_freq, 0.7f);
            edgellm_cpu_rope(y, 0, 2, nh, hd, n_rot, pos, inv_freq, 0.7f);
            edgellm_cpu_rope(y, 2, n_tok, nh, hd, n_rot, pos, inv_freq, 0.7f);
            check_close("cpu_rope", x, y, (size_t)(n_tok * nh * hd), 1e-7, full ? "full" : "partial");
            free(x);
            free(y);
        }
    }
}

/* ---- the CPU backend through its vtable ------------------------------------------------------- */
static void test_backend(int nth) {
    el_backend *be = NULL;
    el_backend_params p = {.n_threads = nth};
    CHECK_OK(el_backend_create("cpu", &p, &be));
    if (!be) return;
    el_backend_i *B = &be->iface;
    char ctx[128];

    /* matmul, incl. ldy > n and shapes that take each split path */
    static const int64_t shapes[][3] = {{1, 1024, 2048}, {1, 37, 300}, {3, 64, 129}, {9, 96, 70}, {64, 128, 200},
                                        {130, 64, 33}, {512, 64, 64}, {70, 3072, 96}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int di = 0; di < 3; di++) {
            const int64_t m = shapes[si][0], k = shapes[si][1], n = shapes[si][2], ldy = n + 3;
            el_dtype wt = k_dtypes[di];
            float *x = frand_buf((size_t)(m * k)), *bias = frand_buf((size_t)n);
            void *w = trand_buf((size_t)(n * k), wt);
            float *yr = malloc((size_t)(m * n) * 4), *yc = malloc((size_t)(m * ldy) * 4), *yp = malloc((size_t)(m * n) * 4);
            edgellm_ref_matmul(x, m, k, w, wt, n, bias, yr);
            memset(yc, 0xff, (size_t)(m * ldy) * 4);
            CHECK_OK(B->matmul(be, x, m, k, w, wt, n, bias, yc, ldy));
            for (int64_t i = 0; i < m; i++) memcpy(yp + i * n, yc + i * ldy, (size_t)n * 4);
            snprintf(ctx, sizeof ctx, "nth=%d m=%lld k=%lld n=%lld %s", nth, (long long)m, (long long)k, (long long)n,
                     el_dtype_name(wt));
            check_close("backend matmul", yr, yp, (size_t)(m * n), tol_for(wt), ctx);
            free(x);
            free(bias);
            free(w);
            free(yr);
            free(yc);
            free(yp);
        }
    }

    /* rmsnorm */
    for (int di = 0; di < 3; di++) {
        const int64_t rows = 33, dim = 1000;
        float *x = frand_buf((size_t)(rows * dim)), *yr = malloc((size_t)(rows * dim) * 4),
              *yc = malloc((size_t)(rows * dim) * 4);
        void *w = trand_buf((size_t)dim, k_dtypes[di]);
        edgellm_ref_rmsnorm(x, w, k_dtypes[di], rows, dim, 1e-5f, yr);
        CHECK_OK(B->rmsnorm(be, x, w, k_dtypes[di], rows, dim, 1e-5f, yc));
        snprintf(ctx, sizeof ctx, "nth=%d %s", nth, el_dtype_name(k_dtypes[di]));
        check_close("backend rmsnorm", yr, yc, (size_t)(rows * dim), tol_for(k_dtypes[di]), ctx);
        free(x);
        free(yr);
        free(yc);
        free(w);
    }

    /* embed, kv_store, attention (prefill and decode), rope, swiglu, add */
    for (int di = 0; di < 4; di++) {
        el_dtype kt = k_kv_dtypes[di];
        attn_case a;
        attn_case_init(&a, 70, 8, 2, 64, kt, 1);
        size_t no = (size_t)(a.n_tok * a.n_head * a.hd);
        float *r = malloc(no * 4), *c = malloc(no * 4);
        const float ks = a.k_scale, vs = a.v_scale;
        edgellm_ref_attention(a.q, a.n_tok, a.n_head, a.n_kv, a.hd, a.slot, a.pos, a.kc, a.vc, kt, ks, vs,
                              a.cap, a.scale, r);
        CHECK_OK(B->attention(be, a.q, a.n_tok, a.n_head, a.n_kv, a.hd, a.slot, a.pos, 69, a.kc, a.vc, kt, ks,
                              vs, a.cap, a.scale, c));
        snprintf(ctx, sizeof ctx, "nth=%d prefill %s", nth, el_dtype_name(kt));
        check_close("backend attention", r, c, no, tol_for(kt), ctx);
        /* decode: one token at a long position */
        int32_t dslot = 0, dpos = 299;
        edgellm_ref_attention(a.q, 1, a.n_head, a.n_kv, a.hd, &dslot, &dpos, a.kc, a.vc, kt, ks, vs, a.cap,
                              a.scale, r);
        CHECK_OK(B->attention(be, a.q, 1, a.n_head, a.n_kv, a.hd, &dslot, &dpos, 299, a.kc, a.vc, kt, ks, vs,
                              a.cap, a.scale, c));
        snprintf(ctx, sizeof ctx, "nth=%d decode %s", nth, el_dtype_name(kt));
        check_close("backend attention", r, c, (size_t)(a.n_head * a.hd), tol_for(kt), ctx);

        /* kv_store: same bytes as the reference */
        size_t nc = (size_t)(a.n_slot * a.n_kv * a.cap * a.hd) * el_dtype_size(kt);
        void *kr = calloc(1, nc), *vr = calloc(1, nc), *kcache = NULL, *vcache = NULL;
        CHECK_OK(B->alloc(be, nc, &kcache));
        CHECK_OK(B->alloc(be, nc, &vcache));
        float *kn = frand_buf((size_t)(a.n_tok * a.n_kv * a.hd)), *vn = frand_buf((size_t)(a.n_tok * a.n_kv * a.hd));
        if (kt == EL_DTYPE_F8_E4M3) /* values beyond 448 * scale saturate */
            for (int64_t i = 0; i < a.n_tok * a.n_kv * a.hd; i++)
                kn[i] *= i % 7 ? 1.0f : 2.0f;
        edgellm_ref_kv_store(kn, vn, a.n_tok, a.n_kv, a.hd, a.slot, a.pos, kr, vr, kt, ks, vs, a.cap);
        if (kcache && vcache) {
            CHECK_OK(B->kv_store(be, kn, vn, a.n_tok, a.n_kv, a.hd, a.slot, a.pos, kcache, vcache, kt, ks, vs,
                                 a.cap));
            CHECK(memcmp(kr, kcache, nc) == 0 && memcmp(vr, vcache, nc) == 0);
        }
        if (kt == EL_DTYPE_F8_E4M3) { /* fp8 round trip: |x - dequant| <= half an e4m3 step (2^-4 relative) */
            int bad = 0;
            for (int64_t t = 0; t < a.n_tok; t++)
                for (int64_t i = 0; i < a.n_kv * a.hd; i++) {
                    int64_t h = i / a.hd, d = i % a.hd;
                    int64_t off = (((int64_t)a.slot[t] * a.n_kv + h) * a.cap + a.pos[t]) * a.hd + d;
                    float x = vn[t * a.n_kv * a.hd + i], y = el_e4m3_to_f32(((uint8_t *)vr)[off]) * vs;
                    if (fabsf(x - y) > fabsf(x) / 16.0f + vs / 1024.0f) bad++;
                }
            CHECKF(bad == 0, "fp8 kv_store: %d values off by more than half a step", bad);
        }
        B->dealloc(be, kcache);
        B->dealloc(be, vcache);
        free(kr);
        free(vr);
        free(kn);
        free(vn);

        /* embed */
        int32_t ids[4] = {3, 0, 69, 3};
        float er[4 * 64], ec[4 * 64];
        if (kt != EL_DTYPE_F8_E4M3) {
            edgellm_ref_embed(ids, 4, a.kc, kt, 64, er);
            CHECK_OK(B->embed(be, ids, 4, a.kc, kt, 64, ec));
            CHECK(memcmp(er, ec, sizeof er) == 0);
        }
        free(r);
        free(c);
        attn_case_free(&a);
    }
    {
        const int64_t n_tok = 9, nh = 4, hd = 128;
        float inv_freq[64];
        for (int i = 0; i < 64; i++) inv_freq[i] = powf(1e6f, -(float)i / 64.0f);
        int32_t pos[9] = {0, 1, 2, 3, 4, 100, 1000, 30000, 7};
        float *x = frand_buf((size_t)(n_tok * nh * hd)), *y = malloc((size_t)(n_tok * nh * hd) * 4);
        memcpy(y, x, (size_t)(n_tok * nh * hd) * 4);
        edgellm_ref_rope(x, n_tok, nh, hd, hd, pos, inv_freq, 1.0f);
        CHECK_OK(B->rope(be, y, n_tok, nh, hd, hd, pos, inv_freq, 1.0f));
        snprintf(ctx, sizeof ctx, "nth=%d", nth);
        check_close("backend rope", x, y, (size_t)(n_tok * nh * hd), 1e-7, ctx);
        free(x);
        free(y);
    }
    {
        const int64_t n = 100003;
        float *g = frand_buf((size_t)n), *u = frand_buf((size_t)n), *r = malloc((size_t)n * 4), *c = malloc((size_t)n * 4);
        edgellm_ref_swiglu(g, u, r, n);
        CHECK_OK(B->swiglu(be, g, u, c, n));
        check_close("backend swiglu", r, c, (size_t)n, 1e-7, "");
        memcpy(r, g, (size_t)n * 4);
        memcpy(c, g, (size_t)n * 4);
        edgellm_ref_add(r, u, n);
        CHECK_OK(B->add(be, c, u, n));
        check_close("backend add", r, c, (size_t)n, 1e-7, "");
        /* out aliasing gate */
        edgellm_ref_swiglu(g, u, r, n);
        CHECK_OK(B->swiglu(be, g, u, g, n));
        check_close("backend swiglu in place", r, g, (size_t)n, 1e-7, "");
        free(g);
        free(u);
        free(r);
        free(c);
    }

    /* bad arguments are reported, not crashed on */
    float dummy[4] = {0};
    CHECK(B->matmul(be, dummy, 1, 0, dummy, EL_DTYPE_F32, 1, NULL, dummy, 1) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(B->matmul(be, dummy, 1, 1, dummy, EL_DTYPE_I32, 1, NULL, dummy, 1) == EDGELLM_STATUS_UNSUPPORTED);
    int32_t z = 0;
    CHECK(B->attention(be, dummy, 1, 3, 2, 2, &z, &z, 0, dummy, dummy, EL_DTYPE_F32, 1, 1, 1, 1.0f, dummy) ==
          EDGELLM_STATUS_INVALID_ARG);
    int32_t far = 5, neg = -1; /* positions beyond max_pos / the cache, negative slots */
    CHECK(B->attention(be, dummy, 1, 1, 1, 2, &z, &far, 3, dummy, dummy, EL_DTYPE_F32, 1, 1, 8, 1.0f,
                       dummy) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(B->kv_store(be, dummy, dummy, 1, 1, 2, &z, &far, dummy, dummy, EL_DTYPE_F32, 1, 1, 4) ==
          EDGELLM_STATUS_INVALID_ARG);
    CHECK(B->kv_store(be, dummy, dummy, 1, 1, 2, &neg, &z, dummy, dummy, EL_DTYPE_F32, 1, 1, 4) ==
          EDGELLM_STATUS_INVALID_ARG);
    /* an fp8 cache needs finite positive scales; other non-float caches are refused */
    CHECK(B->kv_store(be, dummy, dummy, 1, 1, 2, &z, &z, dummy, dummy, EL_DTYPE_F8_E4M3, 0, 1, 4) ==
          EDGELLM_STATUS_INVALID_ARG);
    CHECK(B->attention(be, dummy, 1, 1, 1, 2, &z, &z, 0, dummy, dummy, EL_DTYPE_F8_E4M3, 1, NAN, 8, 1.0f,
                       dummy) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(B->kv_store(be, dummy, dummy, 1, 1, 2, &z, &z, dummy, dummy, EL_DTYPE_I8, 1, 1, 4) ==
          EDGELLM_STATUS_UNSUPPORTED);
    el_backend_free(be);
}

/* use_reference routes every op to the reference kernels: bit-identical results */
static void test_backend_reference(void) {
    el_backend *be = NULL;
    el_backend_params p = {.use_reference = true};
    CHECK_OK(el_backend_create("cpu", &p, &be));
    if (!be) return;
    const int64_t m = 3, k = 40, n = 17;
    float *x = frand_buf((size_t)(m * k)), *yr = malloc((size_t)(m * n) * 4), *yc = malloc((size_t)(m * n) * 4);
    void *w = trand_buf((size_t)(n * k), EL_DTYPE_BF16);
    edgellm_ref_matmul(x, m, k, w, EL_DTYPE_BF16, n, NULL, yr);
    CHECK_OK(be->iface.matmul(be, x, m, k, w, EL_DTYPE_BF16, n, NULL, yc, n));
    CHECK(memcmp(yr, yc, (size_t)(m * n) * 4) == 0);
    free(x);
    free(yr);
    free(yc);
    free(w);
    el_backend_free(be);
}

static void test_backend_memory(void) {
    el_backend *be = NULL;
    CHECK(el_backend_create("nope", NULL, &be) == EDGELLM_STATUS_INVALID_ARG && be == NULL);
#ifndef EDGELLM_HAVE_CUDA
    CHECK(el_backend_create("cuda", NULL, &be) == EDGELLM_STATUS_UNSUPPORTED && be == NULL);
#endif
    CHECK_OK(el_backend_create("cpu", NULL, &be));
    if (!be) return;
    CHECK(strcmp(be->iface.name(be), "cpu") == 0);
    CHECK(be->iface.graph_begin == NULL && be->iface.graph_launch == NULL);
    void *small = NULL, *big = NULL;
    CHECK_OK(be->iface.alloc(be, 1000, &small));
    CHECK_OK(be->iface.alloc(be, 8u << 20, &big)); /* mmap path */
    CHECK(small && ((uintptr_t)small & 63) == 0 && big && ((uintptr_t)big & 63) == 0);
    if (small && big) {
        bool zero = true;
        for (int i = 0; i < 1000; i++) zero &= ((char *)small)[i] == 0;
        for (size_t i = 0; i < (8u << 20); i += 4093) zero &= ((char *)big)[i] == 0;
        CHECK(zero);
        float v[3] = {1, 2, 3}, back[3];
        CHECK_OK(be->iface.upload(be, (char *)big + 100, v, sizeof v));
        CHECK_OK(be->iface.download(be, back, (char *)big + 100, sizeof v));
        CHECK(back[2] == 3);
        CHECK_OK(be->iface.memset0(be, big, 8u << 20));
        CHECK(((float *)big)[26] == 0);
        CHECK(be->iface.peak_memory(be) >= (8u << 20) + 1000);
    }
    be->iface.dealloc(be, small);
    be->iface.dealloc(be, big);
    const char host[16] = "weights";
    void *dev = NULL;
    CHECK_OK(be->iface.weight_map(be, host, sizeof host, &dev));
    CHECK(dev == host);
    CHECK_OK(be->iface.sync(be));
    el_backend_free(be);
    /* EDGELLM_CPU_WEIGHTS=copy: weights of >= 1 MiB copied (huge-page memory; split over 1-3 threads, sizes that
     * end inside a 2 MiB page, are a whole number of them, or give a thread nothing), smaller ones still zero copy */
    const size_t wn = (5u << 20) + 4100; /* not a whole number of pages */
    uint8_t *w = el_aligned_alloc(wn);
    if (!w) return;
    for (size_t i = 0; i < wn; i++) w[i] = (uint8_t)(i * 2654435761u >> 13);
    const size_t sizes[4] = {wn, (4u << 20) - 64, (1u << 20), (2u << 20) + 1};
    for (int nth = 1; nth <= 3; nth++) {
        const el_backend_params bp = {.n_threads = nth};
        setenv("EDGELLM_CPU_WEIGHTS", "copy", 1);
        CHECK_OK(el_backend_create("cpu", &bp, &be));
        unsetenv("EDGELLM_CPU_WEIGHTS");
        if (!be) break;
        for (int k = 0; k < 4; k++) {
            CHECK_OK(be->iface.weight_map(be, w, sizes[k], &dev));
            CHECKF(dev && dev != (void *)w && memcmp(dev, w, sizes[k]) == 0, "copy of %zu bytes, %d threads",
                   sizes[k], nth);
            CHECK(be->iface.peak_memory(be) >= sizes[k]);
            if (dev != (void *)w) be->iface.dealloc(be, dev);
        }
        /* a weight ops only gather rows from (an untied embedding table) stays in place */
        CHECK_OK(be->iface.weight_map_rows(be, w, wn, &dev));
        CHECK(dev == (void *)w);
        CHECK_OK(be->iface.weight_map(be, host, sizeof host, &dev));
        CHECK(dev == host);
        el_backend_free(be);
    }
    bool same_src = true; /* the source keeps its data (anonymous memory here, as for any caller) */
    for (size_t i = 0; i < wn; i += 977) same_src &= w[i] == (uint8_t)(i * 2654435761u >> 13);
    CHECK(same_src);
    /* EDGELLM_CPU_WEIGHTS=map (or mmap) keeps every weight in place, also where the default would copy */
    const el_backend_params hint = {.weight_bytes = wn};
    for (int m = 0; m < 2; m++) {
        setenv("EDGELLM_CPU_WEIGHTS", m ? "mmap" : "map", 1);
        CHECK_OK(el_backend_create("cpu", &hint, &be));
        unsetenv("EDGELLM_CPU_WEIGHTS");
        if (!be) break;
        CHECK_OK(be->iface.weight_map(be, w, wn, &dev));
        CHECK(dev == (void *)w);
        el_backend_free(be);
    }
    el_free_aligned(w);
    /* the default: copy when THP is available and the weights take at most half of the available memory */
    const uint64_t G = 1000000000ull;
    const char *envs[3] = {NULL, "", "bogus"}; /* an unknown value warns and takes the default */
    for (int e = 0; e < 3; e++) {
        CHECK(el_cpu_weights_copy_policy(envs[e], 1 * G, 4 * G, true));
        CHECK(el_cpu_weights_copy_policy(envs[e], 2 * G, 4 * G, true));
        CHECK(!el_cpu_weights_copy_policy(envs[e], 2 * G + 1, 4 * G, true));
        CHECK(!el_cpu_weights_copy_policy(envs[e], 1 * G, 4 * G, false)); /* THP never / unknown */
        CHECK(!el_cpu_weights_copy_policy(envs[e], 0, 4 * G, true));      /* weight size unknown */
        CHECK(!el_cpu_weights_copy_policy(envs[e], 1 * G, 0, true));      /* MemAvailable unknown */
    }
    CHECK(el_cpu_weights_copy_policy("copy", 0, 0, false));
    CHECK(el_cpu_weights_copy_policy("copy", 8 * G, 4 * G, false));
    CHECK(!el_cpu_weights_copy_policy("map", 1 * G, 4 * G, true));
    CHECK(!el_cpu_weights_copy_policy("mmap", 1 * G, 4 * G, true));
}

/* ---- thread pool --------------------------------------------------------------------------------- */
typedef struct tp_ctx {
    _Atomic int64_t hits[8];
    _Atomic int64_t total;
    int nth_seen;
    int64_t bad;
} tp_ctx;
static void tp_fn(void *c, int ith, int nth) {
    tp_ctx *t = c;
    if (ith < 0 || ith >= 8 || nth != t->nth_seen) {
        t->bad++;
        return;
    }
    atomic_fetch_add(&t->hits[ith], 1);
    atomic_fetch_add(&t->total, 1);
}
typedef struct nest_ctx {
    el_threadpool *tp;
    _Atomic int inner, inner_nth1;
} nest_ctx;
static void nest_inner(void *c, int ith, int nth) {
    nest_ctx *n = c;
    (void)ith;
    atomic_fetch_add(&n->inner, 1);
    if (nth == 1) atomic_fetch_add(&n->inner_nth1, 1);
}
static void nest_fn(void *c, int ith, int nth) {
    (void)ith;
    (void)nth;
    nest_ctx *n = c;
    el_threadpool_run(n->tp, nest_inner, n);
}
static void test_threadpool(void) {
    for (int n = 1; n <= 4; n++) {
        el_threadpool *tp = el_threadpool_create(n);
        CHECK(tp != NULL);
        if (!tp) continue;
        CHECK(el_threadpool_size(tp) == n);
        tp_ctx c = {.nth_seen = n};
        const int runs = n <= el_num_cpus() ? 20000 : 100; /* oversubscribed pools are slow by design */
        for (int r = 0; r < runs; r++) {
            el_threadpool_run(tp, tp_fn, &c);
            /* every thread has finished this run before run() returns */
            if (atomic_load(&c.total) != (int64_t)(r + 1) * n) {
                c.bad++;
                break;
            }
        }
        CHECK(c.bad == 0);
        bool all = true;
        for (int i = 0; i < n; i++) all &= atomic_load(&c.hits[i]) == runs;
        CHECKF(all, "pool of %d: each thread must run every task", n);
        el_threadpool_free(tp);
    }
    /* a task that runs the pool again (nested) executes serially instead of deadlocking */
    {
        el_threadpool *tp2 = el_threadpool_create(2);
        if (tp2) {
            nest_ctx nc = {.tp = tp2};
            el_threadpool_run(tp2, nest_fn, &nc);
            CHECK(atomic_load(&nc.inner) == 2 && atomic_load(&nc.inner_nth1) == 2);
            el_threadpool_free(tp2);
        }
    }
    /* runs after the workers went to sleep (futex path) */
    el_threadpool *tp = el_threadpool_create(2);
    if (tp) {
        tp_ctx c = {.nth_seen = 2};
        for (int r = 0; r < 3; r++) {
            struct timespec ts = {0, 30 * 1000 * 1000};
            nanosleep(&ts, NULL);
            el_threadpool_run(tp, tp_fn, &c);
        }
        CHECK(atomic_load(&c.total) == 6 && c.bad == 0);
        el_threadpool_free(tp);
    }
}

int main(void) {
    test_ref_known();
    test_e4m3();
    test_threadpool();
    el_cpu_isa best = el_cpu_isa_detect();
    printf("best ISA: %s\n", el_cpu_isa_name(best));
    for (int isa = EL_ISA_SCALAR; isa < EL_ISA_COUNT; isa++) {
        if (!el_cpu_isa_ok((el_cpu_isa)isa)) continue; /* the other architecture's, or above this CPU */
        el_cpu_isa got = el_cpu_isa_set((el_cpu_isa)isa);
        CHECK(got == (el_cpu_isa)isa);
        const char *name = el_cpu_isa_name(got);
        test_matmul_isa(name);
        test_rmsnorm_isa(name);
        test_eltwise_isa(name);
        test_attention_isa(name);
        n_isa_checked++;
    }
    CHECK(el_cpu_isa_set(EL_ISA_AVX512) == best && el_cpu_isa_set(EL_ISA_NEON) == best);
    CHECK(n_isa_checked == (best == EL_ISA_AVX512 ? 3 : best == EL_ISA_SCALAR ? 1 : 2));
    test_rope_cpu();
    test_backend(1);
    test_backend(2);
    test_backend_reference();
    test_backend_memory();
    printf("ISAs checked: %d\n", n_isa_checked);
    return t_finish("test_kernels");
}
