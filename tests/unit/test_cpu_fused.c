/* test_cpu_fused.c - the CPU backend's fused decode ops (norm_matmul, norm_swiglu) against the op chain they
 * replace (rmsnorm, a matmul per weight, add / swiglu) through the same backend: bit-identical results for
 * every weight format, with and without the norm, bias and the residual add, q / k / v-like groups of three
 * weights of different heights, on 1 and 2 threads and on each SIMD path this CPU has (aarch64: NEON with and
 * without SDOT; the quantized formats
 * take the fused path wherever their SIMD kernels apply: fused_quant), then on the scalar reference. */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float frand(void) { return t_frand(&rng); } /* uniform in [-1, 1) */

typedef struct fcase {
    el_dtype t;
    int64_t group;
    bool zeros;
    float act_scale;
} fcase;

static const fcase cases[] = {
    {EL_DTYPE_Q_W4A16, 128, false, 0}, {EL_DTYPE_Q_W4A16, 32, true, 0}, {EL_DTYPE_Q_W4A16, 256, true, 0},
    {EL_DTYPE_Q_W8A8, 0, false, 0},    {EL_DTYPE_Q_FP8, 0, false, 0},   {EL_DTYPE_Q_FP8, 0, false, 0.02f},
    {EL_DTYPE_Q_NVFP4, 16, false, 0},  {EL_DTYPE_BF16, 0, false, 0},    {EL_DTYPE_F32, 0, false, 0},
};

/* weight (n, k) of case c from random values, in the backend's layout */
static void *make_weight(const fcase *c, int64_t n, int64_t k) {
    float *wf = malloc(sizeof(float) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++)
        wf[i] = frand() * 0.05f;
    void *w = NULL;
    if (c->t == EL_DTYPE_F32) {
        w = el_aligned_alloc(sizeof(float) * (size_t)(n * k));
        memcpy(w, wf, sizeof(float) * (size_t)(n * k));
    } else if (c->t == EL_DTYPE_BF16) {
        w = el_aligned_alloc(2 * (size_t)(n * k));
        el_convert(EL_DTYPE_BF16, w, EL_DTYPE_F32, wf, (size_t)(n * k));
    } else {
        el_qopts o = el_qopts_default();
        if (c->group) o.group = c->group;
        o.zeros = c->zeros;
        o.act_scale = c->act_scale;
        w = el_aligned_alloc(el_weight_nbytes(c->t, n, k, o.group, c->zeros));
        CHECK_OK(el_quantize_ref(c->t, wf, n, k, &o, w));
    }
    free(wf);
    return w;
}

static bool same(const float *a, const float *b, int64_t n) { return memcmp(a, b, sizeof(float) * (size_t)n) == 0; }

static void fused_case(el_backend *be, const fcase *c, int64_t k, bool with_norm, bool with_bias, int *n_fused) {
    const el_backend_i *B = &be->iface;
    const int64_t nn[3] = {96, 40, 40}, nf = 144;
    float *x = malloc(sizeof(float) * (size_t)k), *nw = malloc(sizeof(float) * (size_t)k);
    float *h = malloc(sizeof(float) * (size_t)k), *bias[3], *yc[3], *yf[3], *res[3];
    for (int64_t i = 0; i < k; i++) {
        x[i] = frand() * 3.0f;
        nw[i] = 1.0f + 0.5f * frand();
    }
    void *w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = make_weight(c, nn[i], k);
        bias[i] = malloc(sizeof(float) * (size_t)nf);
        yc[i] = malloc(sizeof(float) * (size_t)nf);
        yf[i] = malloc(sizeof(float) * (size_t)nf);
        res[i] = malloc(sizeof(float) * (size_t)nf);
        for (int64_t j = 0; j < nf; j++) {
            bias[i][j] = frand();
            res[i][j] = frand();
        }
    }
    if (B->fused_quant && B->fused_quant(be, w[0], c->t)) (*n_fused)++;
    const float *const *bp = with_bias ? (const float *const *)bias : NULL;
    const float *hx = with_norm ? h : x;
    if (with_norm) CHECK_OK(B->rmsnorm(be, x, nw, EL_DTYPE_F32, 1, k, 1e-6f, h));
    /* norm_matmul over 3 weights, then over 1 with the residual add */
    for (int i = 0; i < 3; i++)
        CHECK_OK(B->matmul(be, hx, 1, k, w[i], c->t, nn[i], with_bias ? bias[i] : NULL, yc[i], nn[i]));
    CHECK_OK(B->norm_matmul(be, x, k, with_norm ? nw : NULL, 1e-6f, 3, (const void *const *)w, c->t, nn, bp, yf,
                            false));
    for (int i = 0; i < 3; i++)
        CHECKF(same(yc[i], yf[i], nn[i]), "%s g=%lld k=%lld norm=%d bias=%d: norm_matmul weight %d differs",
               el_dtype_name(c->t), (long long)c->group, (long long)k, with_norm, with_bias, i);
    memcpy(yc[0], res[0], sizeof(float) * (size_t)nn[0]);
    memcpy(yf[0], res[0], sizeof(float) * (size_t)nn[0]);
    CHECK_OK(B->matmul(be, hx, 1, k, w[0], c->t, nn[0], with_bias ? bias[0] : NULL, yc[1], nn[0]));
    CHECK_OK(B->add(be, yc[0], yc[1], nn[0]));
    CHECK_OK(B->norm_matmul(be, x, k, with_norm ? nw : NULL, 1e-6f, 1, (const void *const *)w, c->t, nn, bp, yf,
                            true));
    CHECKF(same(yc[0], yf[0], nn[0]), "%s g=%lld k=%lld norm=%d bias=%d: norm_matmul accumulate differs",
           el_dtype_name(c->t), (long long)c->group, (long long)k, with_norm, with_bias);
    /* norm_swiglu: gate, up (nf, k) */
    void *wg = make_weight(c, nf, k), *wu = make_weight(c, nf, k);
    CHECK_OK(B->matmul(be, hx, 1, k, wg, c->t, nf, with_bias ? bias[0] : NULL, yc[0], nf));
    CHECK_OK(B->matmul(be, hx, 1, k, wu, c->t, nf, with_bias ? bias[1] : NULL, yc[1], nf));
    CHECK_OK(B->swiglu(be, yc[0], yc[1], yc[2], nf));
    CHECK_OK(B->norm_swiglu(be, x, k, with_norm ? nw : NULL, 1e-6f, wg, wu, c->t, nf, with_bias ? bias[0] : NULL,
                            with_bias ? bias[1] : NULL, yf[2]));
    CHECKF(same(yc[2], yf[2], nf), "%s g=%lld k=%lld norm=%d bias=%d: norm_swiglu differs", el_dtype_name(c->t),
           (long long)c->group, (long long)k, with_norm, with_bias);
    el_free_aligned(wg);
    el_free_aligned(wu);
    for (int i = 0; i < 3; i++) {
        el_free_aligned(w[i]);
        free(bias[i]);
        free(yc[i]);
        free(yf[i]);
        free(res[i]);
    }
    free(x);
    free(nw);
    free(h);
}

int main(void) {
    const el_cpu_isa best = el_cpu_isa_detect();
    const int64_t ks[] = {256, 1024, 384};
    const bool arm = best == EL_ISA_NEON; /* aarch64: NEON with SDOT (where present), without, scalar */
    for (int pass = 0; pass < 3; pass++) { /* each SIMD path this CPU has, then the scalar reference path */
        const el_cpu_isa isa = pass == 2 ? EL_ISA_SCALAR : arm ? EL_ISA_NEON : pass == 0 ? EL_ISA_AVX512 : EL_ISA_AVX2;
        if (!arm && best < isa) continue;
        if (arm && pass == 0 && !el_cpu_has(EL_FEAT_DOTPROD)) continue;
        if (arm) setenv("EDGELLM_CPU_DOTPROD", pass == 0 ? "1" : "0", 1);
        el_cpu_isa_set(isa);
        for (int nth = 1; nth <= 2; nth++) {
            el_backend *be = NULL;
            el_backend_params bp = {.n_threads = nth};
            CHECK_OK(el_backend_cpu_create(&bp, &be));
            if (!be) continue;
            CHECK(be->iface.norm_matmul && be->iface.norm_swiglu && be->iface.fused_quant);
            int n_fused = 0, n_run = 0;
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
                for (int v = 0; v < 4; v++) {
                    fused_case(be, &cases[c], ks[(c + (size_t)v) % 3], v & 1, (v >> 1) & 1, &n_fused);
                    n_run++;
                }
            /* the quantized formats take the fused path wherever the ISA has their kernels */
            if (isa == EL_ISA_AVX512 || isa == EL_ISA_NEON)
                CHECKF(n_fused == 7 * 4, "%s %d threads: %d of 28 quantized cases fused", el_cpu_isa_name(isa), nth,
                       n_fused);
            if (isa == EL_ISA_SCALAR) CHECKF(n_fused == 0, "scalar: %d cases fused", n_fused);
            printf("cpu_fused [%s%s, %d thread%s]: %d cases, %d on the fused path\n", el_cpu_isa_name(isa),
                   arm && pass < 2 ? (pass == 0 ? " sdot" : " v8.0") : "", nth, nth > 1 ? "s" : "", n_run, n_fused);
            el_backend_free(be);
        }
    }
    el_cpu_isa_set(best);
    unsetenv("EDGELLM_CPU_DOTPROD");
    return t_finish("test_cpu_fused");
}
