/* test_qkernels_float.c - the SIMD kernels of the weight-only / float-activation quantized formats
 * (w4a16 with and without zero points, fp8 weight-only and with static e4m3 activations, nvfp4;
 * src/kernels/cpu/qfloat*.c) against the scalar reference el_ref_qmatmul on the same layout: random
 * shapes with odd n, k not a multiple of the group, m from 1 (decode) to prefill sizes, with and
 * without bias, split row ranges; then the CPU backend's quantized matmul (2 threads). Decode (m <= 4)
 * represents the activations to ~2^-16 (bf16 hi + lo; w4a16: 16-bit integers per chunk in two 8-bit
 * limbs on AVX-512, error <= 2^-16 of the chunk's max |x|, 22-bit in three limbs on AVX2); AVX-512 prefill
 * keeps the bf16 hi + lo of x for fp8 / nvfp4 (~7e-12 here) and rounds w4a16 activations to int16 per
 * chunk of 128 (~1e-7 here, error <= 2^-16 of the chunk's max |x|). NMSE <= 1e-5 is required (the task bound) and the worst
 * cases of decode and prefill are printed. fp8 with static activations has exact products (e4m3 x e4m3)
 * in both paths, so there the bound is 1e-10. All of it runs on each SIMD path this CPU has: AVX-512, then
 * AVX2 (qfloat_avx2.c: decode w4a16 / nvfp4 with 22-bit limbs, fp8 exact e4m3 in f32; prefill f32
 * dequantized rows) with and without AVX-VNNI; on aarch64 NEON (qneon*.c: w4a16 and nvfp4
 * with 16-bit x per chunk of 128 in two int8 limbs as AVX-512 decode, fp8 in f32, for all m) with and
 * without SDOT. */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { return t_frand(&rng); } /* uniform in [-1, 1) */

typedef struct qcase {
    el_dtype t;
    int64_t group;
    bool zeros;
    float act_scale; /* fp8 static activations */
} qcase;

static double g_worst = 0, g_worst_dec = 0, g_worst_fp8act = 0;
static int g_ran = 0;
/* 1: rows of x of very different magnitudes (1e-3 .. 1e3, one all zero, one tiny: g_tiny) and the NMSE
 * taken per row (the worst row). w4a16 takes 1e-36 (32767 / max |x| overflows f32 without the 2^96
 * pre-scale of its int16 prefill activations); nvfp4 / fp8 1e-30 (products with their row / global
 * scales would be subnormal at 1e-36) */
static int g_rowscale = 0;
static float g_tiny = 1e-36f;

static float row_scale(int64_t i) {
    if (!g_rowscale) return 1.0f;
    const float sc[7] = {1.0f, 1e3f, 0.0f, g_tiny, 1e-3f, 37.0f, 0.01f};
    return sc[i % 7];
}

static void run_case(const qcase *c, int64_t m, int64_t n, int64_t k, bool with_bias) {
    float *w = malloc(sizeof(float) * (size_t)(n * k)), *x = malloc(sizeof(float) * (size_t)(m * k));
    float *bias = malloc(sizeof(float) * (size_t)n);
    float *yr = malloc(sizeof(float) * (size_t)(m * (n + 3))),
          *yk = malloc(sizeof(float) * (size_t)(m * (n + 3)));
    const int64_t ldy = n + 3;
    for (int64_t i = 0; i < n * k; i++)
        w[i] = frand() * 0.05f;
    /* a few outlier input channels, as real activations have */
    for (int64_t i = 0; i < m * k; i++)
        x[i] = frand() * ((i % k) % 97 == 3 ? 20.0f : 1.0f) * row_scale(i / k);
    for (int64_t j = 0; j < n; j++)
        bias[j] = frand();
    el_qopts o = el_qopts_default();
    o.group = c->group;
    o.zeros = c->zeros;
    o.act_scale = c->act_scale;
    const size_t nb = el_weight_nbytes(c->t, n, k, c->group, c->zeros);
    void *q = el_aligned_alloc(nb);
    CHECK(q != NULL);
    CHECK_OK(el_quantize_ref(c->t, w, n, k, &o, q));
    const float *b = with_bias ? bias : NULL;
    for (int64_t i = 0; i < m * ldy; i++)
        yr[i] = yk[i] = 12345.0f;
    el_ref_qmatmul(x, m, k, q, c->t, n, 0, n, b, yr, ldy);
    const size_t pb = edgellm_cpu_qf_prep_bytes(q, c->t, m, k);
    if (pb) {
        void *prep = el_aligned_alloc(pb),
             *scr = el_aligned_alloc(edgellm_cpu_qf_scratch(q, c->t, m, k) + 64);
        CHECK(prep != NULL && scr != NULL);
        /* prepared in two row ranges, as the backend's threads do */
        edgellm_cpu_qf_prep(x, m, k, q, c->t, 0, m / 2, prep);
        edgellm_cpu_qf_prep(x, m, k, q, c->t, m / 2, m, prep);
        /* two row ranges split at an odd row, as threads get them */
        const int64_t mid = n / 3 | 1;
        edgellm_cpu_qf_matmul(x, prep, m, k, q, c->t, 0, mid < n ? mid : n, b, yk, ldy, scr);
        if (mid < n) edgellm_cpu_qf_matmul(x, prep, m, k, q, c->t, mid, n, b, yk, ldy, scr);
        /* NMSE over the whole output (one dot product alone can cancel to ~0 and has no useful NMSE) */
        int untouched_bad = 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = n; j < ldy; j++)
                untouched_bad += yk[i * ldy + j] != 12345.0f;
        double num = 0, den = 0, worst = 0;
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < n; j++) {
                /* without the bias, which would make the error look smaller */
                const double r = (double)yr[i * ldy + j] - (b ? b[j] : 0),
                             d = (double)yr[i * ldy + j] - yk[i * ldy + j];
                num += isnan(d) ? INFINITY : d * d;
                den += r * r;
            }
            if (g_rowscale && i + 1 < m) { /* per row (a zero row must come out exact) */
                const double e = den > 0 ? num / den : num > 0 ? INFINITY : 0;
                if (e > worst) worst = e;
                num = den = 0;
            }
        }
        if (!g_rowscale || den > 0 || num > 0) {
            const double e = den > 0 ? num / den : INFINITY;
            if (e > worst) worst = e;
        }
        const bool fp8act = c->t == EL_DTYPE_Q_FP8 && c->act_scale > 0;
        const double bound = fp8act ? 1e-10 : 1e-5;
        CHECKF(worst <= bound, "%s g=%lld zeros=%d act=%g m=%lld n=%lld k=%lld bias=%d: nmse %g > %g",
               el_dtype_name(c->t), (long long)c->group, c->zeros, c->act_scale, (long long)m, (long long)n,
               (long long)k, with_bias, worst, bound);
        CHECKF(untouched_bad == 0, "%s: %d values outside the rows written", el_dtype_name(c->t),
               untouched_bad);
        if (fp8act) {
            if (worst > g_worst_fp8act) g_worst_fp8act = worst;
        } else if (m <= 4) {
            if (worst > g_worst_dec) g_worst_dec = worst;
        } else if (worst > g_worst)
            g_worst = worst;
        g_ran++;
        el_free_aligned(prep);
        el_free_aligned(scr);
    }
    el_free_aligned(q);
    free(w);
    free(x);
    free(bias);
    free(yr);
    free(yk);
}

/* The CPU backend routes these formats to the kernels (or to the reference where they do not apply):
 * 2 threads, a prefill-sized and a decode-sized call. */
static void backend_case(const qcase *c, int64_t m, int64_t n, int64_t k) {
    float *w = malloc(sizeof(float) * (size_t)(n * k)), *x = malloc(sizeof(float) * (size_t)(m * k));
    float *yr = malloc(sizeof(float) * (size_t)(m * n)), *yb = malloc(sizeof(float) * (size_t)(m * n));
    for (int64_t i = 0; i < n * k; i++)
        w[i] = frand() * 0.05f;
    for (int64_t i = 0; i < m * k; i++)
        x[i] = frand();
    el_qopts o = el_qopts_default();
    o.group = c->group;
    o.zeros = c->zeros;
    o.act_scale = c->act_scale;
    void *q = el_aligned_alloc(el_weight_nbytes(c->t, n, k, c->group, c->zeros));
    CHECK_OK(el_quantize_ref(c->t, w, n, k, &o, q));
    el_ref_qmatmul(x, m, k, q, c->t, n, 0, n, NULL, yr, n);
    el_backend *be = NULL;
    el_backend_params bp = {.n_threads = 2};
    CHECK_OK(el_backend_cpu_create(&bp, &be));
    if (be) {
        for (int rep = 0; rep < 2; rep++) { /* the second call reuses the backend's scratch */
            memset(yb, 0, sizeof(float) * (size_t)(m * n));
            CHECK_OK(be->iface.matmul(be, x, m, k, q, c->t, n, NULL, yb, n));
            double e = t_nmse(yr, yb, (size_t)(m * n));
            CHECKF(e <= 1e-5, "backend %s m=%lld: nmse %g", el_dtype_name(c->t), (long long)m, e);
        }
        el_backend_free(be);
    }
    el_free_aligned(q);
    free(w);
    free(x);
    free(yr);
    free(yb);
}

static const qcase cases[] = {
    {EL_DTYPE_Q_W4A16, 128, false, 0},   {EL_DTYPE_Q_W4A16, 64, false, 0},
    {EL_DTYPE_Q_W4A16, 32, false, 0},    {EL_DTYPE_Q_W4A16, 128, true, 0},
    {EL_DTYPE_Q_W4A16, 32, true, 0},     {EL_DTYPE_Q_W4A16, 256, true, 0},
    {EL_DTYPE_Q_W4A16, 16, false, 0},    {EL_DTYPE_Q_W4A16, 16, true, 0},
    {EL_DTYPE_Q_W4A16, 8, true, 0},      {EL_DTYPE_Q_FP8, 128, false, 0},
    {EL_DTYPE_Q_FP8, 128, false, 0.02f}, {EL_DTYPE_Q_NVFP4, 16, false, 0},
};

/* every kernel case and the backend cases on the ISA in effect; returns the kernel cases run */
static int kernel_cases(bool quick) {
    g_ran = 0;
    g_worst = g_worst_dec = g_worst_fp8act = 0;
    const int64_t ks[] = {128, 96, 200, 1000, 2048};
    const int64_t ms[] = {1, 2, 3, 4, 5, 37, 128};
    const int64_t ns[] = {7, 37, 64, 129};
    int ci = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
            for (size_t b = 0; b < sizeof ms / sizeof ms[0]; b++) {
                if (quick && (ms[b] > 5 || ks[a] > 1000)) continue;
                const int64_t n = ns[(a + b + c) % 4];
                run_case(&cases[c], ms[b], n, ks[a], (ci++ & 1) != 0);
            }
    /* w4a16 prefill (int16 x, expanded tiles of 64 rows of W, register tiles of 6 rows of x): every tail of
     * 6 in m, n with empty / partial vectors of a tile, odd k and k not a multiple of the group, with and
     * without zero points; the same for nvfp4 / fp8; then rows of very different magnitudes */
    {
        const int64_t pm[] = {6, 7, 8, 9, 10, 11, 12, 13, 40};
        const int64_t pn[] = {1, 16, 17, 33, 100, 130};
        const int64_t pk[] = {137, 256, 392};
        const int64_t pg[] = {32, 64, 128};
        for (size_t a = 0; a < sizeof pm / sizeof pm[0]; a++)
            for (size_t gi = 0; gi < 3; gi++)
                for (int z = 0; z < 2; z++) {
                    if (quick && a % 3) continue;
                    const qcase c = {EL_DTYPE_Q_W4A16, pg[gi], z != 0, 0};
                    run_case(&c, pm[a], pn[(a + gi + (size_t)z) % 6], pk[(a + gi) % 3], (a + (size_t)z) % 2 == 0);
                }
        /* nvfp4 and fp8 prefill (AVX-512: 64-row bf16 tiles of W, 6-row tiles of x) on the same tails */
        const qcase fc[3] = {{EL_DTYPE_Q_NVFP4, 16, false, 0}, {EL_DTYPE_Q_FP8, 128, false, 0},
                             {EL_DTYPE_Q_FP8, 128, false, 0.02f}};
        for (size_t a = 0; a < sizeof pm / sizeof pm[0]; a++)
            for (size_t f = 0; f < 3; f++) {
                if (quick && a % 3) continue;
                run_case(&fc[f], pm[a], pn[(a + f) % 6], pk[(a + 2 * f) % 3] + (int64_t)f, (a + f) % 2 == 0);
            }
        g_rowscale = 1;
        for (size_t gi = 0; gi < 3; gi++)
            for (int z = 0; z < 2; z++) {
                const qcase c = {EL_DTYPE_Q_W4A16, pg[gi], z != 0, 0};
                run_case(&c, 14, 37, 392, z != 0);
                run_case(&c, 3, 37, 392, z == 0); /* decode: the same rows */
            }
        g_tiny = 1e-30f;
        for (size_t f = 0; f < 2; f++)
            run_case(&fc[f], 14, 37, 392, f == 0);
        g_rowscale = 0;
    }
    /* a group size the kernels do not take (24): prep_bytes says 0 and the backend uses the reference */
    {
        float w[24 * 3] = {0};
        for (int i = 0; i < 72; i++)
            w[i] = frand();
        el_qopts o = el_qopts_default();
        o.group = 24;
        void *q = el_aligned_alloc(el_weight_nbytes(EL_DTYPE_Q_W4A16, 3, 24, 24, false));
        CHECK_OK(el_quantize_ref(EL_DTYPE_Q_W4A16, w, 3, 24, &o, q));
        CHECK(edgellm_cpu_qf_prep_bytes(q, EL_DTYPE_Q_W4A16, 1, 24) == 0);
        el_free_aligned(q);
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        backend_case(&cases[c], 1, 300, 512);
        if (!quick) backend_case(&cases[c], 40, 200, 384);
    }
    return g_ran;
}

int main(void) {
    const bool quick = getenv("EDGELLM_TEST_QUICK") != NULL;
    /* each SIMD path this CPU has: AVX-512 (BF16 / VNNI where present), AVX2 with and without AVX-VNNI */
    const el_cpu_isa best = el_cpu_isa_detect();
    int total = 0;
    /* aarch64: the NEON kernels with SDOT where the CPU has it, then without */
    for (int dp = 1; best == EL_ISA_NEON && dp >= 0; dp--) {
        if (dp && !el_cpu_has(EL_FEAT_DOTPROD)) continue;
        setenv("EDGELLM_CPU_DOTPROD", dp ? "1" : "0", 1);
        const int ran = kernel_cases(quick);
        unsetenv("EDGELLM_CPU_DOTPROD");
        total += ran;
        printf("qkernels_float [neon%s]: %d kernel cases, worst nmse vs el_ref_qmatmul: decode %.3g, prefill %.3g, "
               "fp8 static activations %.3g\n",
               dp ? " sdot" : " v8.0", ran, g_worst_dec, g_worst, g_worst_fp8act);
        CHECKF(ran > 0, "neon: no kernel cases ran");
    }
    for (int pass = 0; pass < 3 && best != EL_ISA_NEON; pass++) {
        const el_cpu_isa isa = pass == 0 ? EL_ISA_AVX512 : EL_ISA_AVX2;
        if (best < isa || (pass == 0 && best == EL_ISA_AVX2)) continue;
        el_cpu_isa_set(isa);
        if (pass == 2) setenv("EDGELLM_CPU_AVXVNNI", "0", 1);
        const int ran = kernel_cases(quick);
        if (pass == 2) unsetenv("EDGELLM_CPU_AVXVNNI");
        total += ran;
        if (ran)
            printf("qkernels_float [%s%s]: %d kernel cases, worst nmse vs el_ref_qmatmul: decode %.3g, prefill "
                   "%.3g, fp8 static activations %.3g\n",
                   el_cpu_isa_name(isa), pass == 2 ? ", no AVX-VNNI" : "", ran, g_worst_dec, g_worst,
                   g_worst_fp8act);
        CHECKF(ran > 0 || isa < EL_ISA_AVX2, "%s: no kernel cases ran", el_cpu_isa_name(isa));
    }
    el_cpu_isa_set(best);
    /* the scalar ISA turns the kernels off (prep_bytes 0): the reference path */
    el_cpu_isa prev = el_cpu_isa_get();
    el_cpu_isa_set(EL_ISA_SCALAR);
    {
        float w[64 * 2];
        for (int i = 0; i < 128; i++)
            w[i] = frand();
        void *q = el_aligned_alloc(el_weight_nbytes(EL_DTYPE_Q_W4A16, 2, 64, 128, false));
        CHECK_OK(el_quantize_ref(EL_DTYPE_Q_W4A16, w, 2, 64, NULL, q));
        CHECK(edgellm_cpu_qf_prep_bytes(q, EL_DTYPE_Q_W4A16, 1, 64) == 0);
        el_free_aligned(q);
    }
    backend_case(&cases[0], 3, 40, 256);
    el_cpu_isa_set(prev);
    if (!total) printf("qkernels_float: no AVX2 on this CPU: kernels skipped, reference path checked\n");
    return t_finish("test_qkernels_float");
}
