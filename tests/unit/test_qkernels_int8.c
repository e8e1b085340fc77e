/* test_qkernels_int8.c - the AVX-512 VNNI and the AVX2 (aarch64: NEON with and without SDOT) int8-activation
 * quantized matmuls (w8a8 dynamic / static, q8_0, q4_0; kernels/cpu/qint8*.c, qneon*.c; each ISA this CPU
 * has) against the scalar reference
 * el_ref_qmatmul on the same (original) layout: bit-exact outputs on random shapes (odd n, k not a multiple
 * of 64, m from 1 to prefill sizes, bias or not, ldy > n, row ranges split at tile and non-tile boundaries),
 * weights from el_quantize_ref and raw random bytes (int8 -128 included), activations with rounding ties and
 * all-zero rows; and the CPU backend's quantized matmul (threads, activations quantized once) against the
 * reference backend. */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static float frand(void) {
    return (float)((double)(rnd() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* x: mode 0 random floats, 1 integers in [-254, 254] with |max| 254 (ties at x / 2 for both rounding
 * rules), 2 random with an all-zero row 0 */
static void fill_x(float *x, int64_t m, int64_t k, int mode) {
    for (int64_t i = 0; i < m * k; i++)
        x[i] = mode == 1 ? (float)((int)(rnd() % 509) - 254) : 3.0f * frand();
    if (mode == 1)
        for (int64_t i = 0; i < m; i++)
            x[i * k + (i % k)] = 254.0f; /* amax 254 (each ggml block too, below) */
    if (mode == 1 && k % 32 == 0)
        for (int64_t i = 0; i < m; i++)
            for (int64_t b = 0; b < k / 32; b++)
                x[i * k + b * 32 + (b + i) % 32] = -254.0f;
    if (mode == 2)
        for (int64_t c = 0; c < k; c++)
            x[c] = 0.0f;
}

/* a weight of format wt: from random floats through el_quantize_ref, or (raw) random quants */
static void *make_w(el_dtype wt, int64_t n, int64_t k, bool raw, float act_scale, size_t *nbytes) {
    el_qopts o = el_qopts_default();
    o.act_scale = act_scale;
    size_t nb = el_weight_nbytes(wt, n, k, o.group, false);
    *nbytes = nb;
    float *wf = malloc((size_t)(n * k) * sizeof(float));
    void *w = el_aligned_alloc(nb + 64);
    if (!wf || !w) return NULL;
    for (int64_t i = 0; i < n * k; i++)
        wf[i] = frand() * (1.0f + (float)(i % 7));
    if (el_quantize_ref(wt, wf, n, k, &o, w) != EDGELLM_STATUS_OK) {
        free(wf);
        el_free_aligned(w);
        return NULL;
    }
    if (raw) {
        uint8_t *p = w;
        if (wt == EL_DTYPE_Q_W8A8) {
            el_qhdr h;
            memcpy(&h, w, sizeof h);
            for (int64_t i = 0; i < n * k; i++)
                p[h.quants_off + (uint64_t)i] = (uint8_t)rnd();
        } else { /* every quant byte of every block, the f16 scales kept */
            const int64_t bb = wt == EL_DTYPE_Q8_0 ? 34 : 18;
            for (int64_t b = 0; b < n * (k / 32); b++)
                for (int64_t i = 2; i < bb; i++)
                    p[b * bb + i] = (uint8_t)rnd();
        }
    }
    free(wf);
    return w;
}

static int64_t g_cases, g_bad_cases;

static void check_case(el_dtype wt, int64_t m, int64_t n, int64_t k, bool bias_on, bool raw, float act_scale,
                       int xmode) {
    size_t wbytes;
    void *w = make_w(wt, n, k, raw, act_scale, &wbytes);
    const int64_t ldy = n + 3;
    float *x = malloc((size_t)(m * k) * sizeof(float)), *bias = malloc((size_t)n * sizeof(float));
    float *yr = malloc((size_t)(m * ldy) * sizeof(float)), *ys = malloc((size_t)(m * ldy) * sizeof(float));
    void *act = el_aligned_alloc(edgellm_cpu_qmm_i8_act_bytes(wt, m, k));
    void *scr = malloc(edgellm_cpu_qmm_i8_scratch(wt, m, k) + 1);
    CHECK(w && x && bias && yr && ys && act && scr);
    if (!w || !x || !bias || !yr || !ys || !act || !scr) goto done;
    fill_x(x, m, k, xmode);
    for (int64_t j = 0; j < n; j++)
        bias[j] = frand();
    for (int64_t i = 0; i < m * ldy; i++)
        yr[i] = ys[i] = -7.0f; /* the gaps of ldy stay untouched */
    el_ref_qmatmul(x, m, k, w, wt, n, 0, n, bias_on ? bias : NULL, yr, ldy);
    /* activations quantized in two row ranges (as two threads would), W in three row ranges */
    edgellm_cpu_qmm_i8_quantize(w, wt, x, m, k, 0, m / 2, act);
    edgellm_cpu_qmm_i8_quantize(w, wt, x, m, k, m / 2, m, act);
    const int64_t s1 = n > 16 ? 16 : n, s2 = n > 40 ? n - 7 : n;
    edgellm_cpu_qmm_i8(act, m, k, w, wt, n, 0, s1, bias_on ? bias : NULL, ys, ldy, scr);
    edgellm_cpu_qmm_i8(act, m, k, w, wt, n, s1, s2, bias_on ? bias : NULL, ys, ldy, scr);
    edgellm_cpu_qmm_i8(act, m, k, w, wt, n, s2, n, bias_on ? bias : NULL, ys, ldy, scr);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < m * ldy; i++)
        if (memcmp(&yr[i], &ys[i], 4) != 0) {
            if (first < 0) first = i;
            bad++;
        }
    g_cases++;
    if (bad) g_bad_cases++;
    CHECKF(bad == 0,
           "%s m=%lld n=%lld k=%lld bias=%d raw=%d static=%g xmode=%d: %lld outputs differ, first [%lld] ref "
           "%.9g got %.9g",
           el_dtype_name(wt), (long long)m, (long long)n, (long long)k, bias_on, raw, (double)act_scale,
           xmode, (long long)bad, (long long)first, first >= 0 ? (double)yr[first] : 0.0,
           first >= 0 ? (double)ys[first] : 0.0);
done:
    el_free_aligned(w);
    free(x);
    free(bias);
    free(yr);
    free(ys);
    el_free_aligned(act);
    free(scr);
}

static void test_kernels(bool quick) {
    static const int64_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 37};
    static const int64_t ns[] = {1, 5, 16, 17, 33, 48, 70};
    static const int64_t k8[] = {1, 17, 63, 64, 100, 257, 384};
    static const int64_t kg[] = {32, 64, 96, 160, 320};
    const el_dtype fmts[] = {EL_DTYPE_Q_W8A8, EL_DTYPE_Q_W8A8, EL_DTYPE_Q8_0, EL_DTYPE_Q4_0};
    const int nm = quick ? 5 : 10;
    for (int f = 0; f < 4; f++) {
        const el_dtype wt = fmts[f];
        const float act = f == 1 ? 0.02f : 0.0f; /* static activation scale (values far above clamp too) */
        const bool gg = wt != EL_DTYPE_Q_W8A8;
        const int64_t *ks = gg ? kg : k8;
        const int nk = gg ? 5 : 7;
        for (int ki = 0; ki < nk; ki++)
            for (int ni = 0; ni < 7; ni++)
                for (int mi = 0; mi < nm; mi++) {
                    const int v = (int)(rnd() % 8);
                    check_case(wt, ms[mi], ns[ni], ks[ki], v & 1, (v >> 1) & 1, act, (int)(rnd() % 3));
                }
        /* prefill-sized */
        check_case(wt, quick ? 40 : 128, 96, gg ? 1024 : 1000, true, false, act, 0);
        if (!quick) check_case(wt, 37, 160, gg ? 2048 : 2050, false, true, act, 1);
    }
}

/* the CPU backend (2 threads, SIMD) against the reference backend on one quantized matmul */
static void test_backend(void) {
    el_backend_params p = {0}, pr = {0};
    p.n_threads = 2;
    pr.use_reference = true;
    el_backend *be = NULL, *rb = NULL;
    CHECK_OK(el_backend_cpu_create(&p, &be));
    CHECK_OK(el_backend_cpu_create(&pr, &rb));
    if (!be || !rb) return;
    const el_dtype fmts[] = {EL_DTYPE_Q_W8A8, EL_DTYPE_Q8_0, EL_DTYPE_Q4_0};
    const int64_t shapes[][3] = {{1, 200, 256}, {3, 100, 512}, {37, 130, 320}, {128, 64, 128}};
    for (int f = 0; f < 3; f++)
        for (int s = 0; s < 4; s++) {
            const int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            size_t nb;
            void *w = make_w(fmts[f], n, k, false, 0.0f, &nb);
            float *x = malloc((size_t)(m * k) * 4), *y1 = malloc((size_t)(m * n) * 4),
                  *y2 = malloc((size_t)(m * n) * 4);
            CHECK(w && x && y1 && y2);
            if (w && x && y1 && y2) {
                fill_x(x, m, k, 0);
                CHECK_OK(be->iface.matmul(be, x, m, k, w, fmts[f], n, NULL, y1, n));
                CHECK_OK(rb->iface.matmul(rb, x, m, k, w, fmts[f], n, NULL, y2, n));
                CHECKF(memcmp(y1, y2, (size_t)(m * n) * 4) == 0, "backend %s m=%lld n=%lld k=%lld differs",
                       el_dtype_name(fmts[f]), (long long)m, (long long)n, (long long)k);
            }
            el_free_aligned(w);
            free(x);
            free(y1);
            free(y2);
        }
    be->iface.free(be);
    rb->iface.free(rb);
}

/* aarch64: the NEON kernels (qneon.h) with SDOT where the CPU has it, then the ARMv8.0 ones
 * (EDGELLM_CPU_DOTPROD=0), then the scalar ISA (the reference on both sides) */
static void test_neon(bool quick) {
    CHECK(edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q_W8A8, 17));
    CHECK(edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q8_0, 64));
    CHECK(edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q4_0, 64));
    CHECK(!edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q4_0, 48));
    for (int dp = 1; dp >= 0; dp--) {
        if (dp && !el_cpu_has(EL_FEAT_DOTPROD)) {
            printf("test_qkernels_int8: no dot product instructions here, SDOT kernels not run\n");
            continue;
        }
        setenv("EDGELLM_CPU_DOTPROD", dp ? "1" : "0", 1);
        g_cases = g_bad_cases = 0;
        test_kernels(quick);
        printf("test_qkernels_int8: NEON%s: %lld kernel cases, %lld not bit-exact\n", dp ? " SDOT" : " (v8.0)",
               (long long)g_cases, (long long)g_bad_cases);
        CHECK(g_cases > 0);
        test_backend();
    }
    unsetenv("EDGELLM_CPU_DOTPROD");
    const el_cpu_isa isa0 = el_cpu_isa_get();
    el_cpu_isa_set(EL_ISA_SCALAR);
    CHECK(!edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q_W8A8, 64));
    test_backend();
    el_cpu_isa_set(isa0);
}

int main(void) {
    const bool quick = getenv("EDGELLM_TEST_QUICK") != NULL;
    CHECK(!edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q_W4A16, 64));
    CHECK(!edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q8_0, 48)); /* ggml needs k % 32 == 0 */
    if (el_cpu_isa_detect() == EL_ISA_NEON) {
        test_neon(quick);
        return t_finish("test_qkernels_int8");
    }
    const el_cpu_isa isa0 = el_cpu_isa_get();
    if (!edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q8_0, 64)) {
        printf("test_qkernels_int8: no AVX-512 VNNI here, VNNI kernel checks skipped\n");
    } else {
        test_kernels(quick);
        printf("test_qkernels_int8: AVX-512 VNNI: %lld kernel cases, %lld not bit-exact\n",
               (long long)g_cases, (long long)g_bad_cases);
    }
    test_backend();
    /* the AVX2 path (all three formats) */
    if (el_cpu_isa_detect() >= EL_ISA_AVX2) {
        el_cpu_isa_set(EL_ISA_AVX2);
        CHECK(edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q_W8A8, 17));
        CHECK(edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q8_0, 64));
        CHECK(edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q4_0, 64));
        CHECK(!edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q4_0, 48));
        g_cases = g_bad_cases = 0;
        test_kernels(quick);
        printf("test_qkernels_int8: AVX2: %lld kernel cases, %lld not bit-exact\n", (long long)g_cases,
               (long long)g_bad_cases);
        /* AVX2 without AVX-VNNI (vpmaddubsw instead of vpdpbusd where the CPU has AVX-VNNI) */
        setenv("EDGELLM_CPU_AVXVNNI", "0", 1);
        g_cases = g_bad_cases = 0;
        test_kernels(quick);
        printf("test_qkernels_int8: AVX2 without AVX-VNNI: %lld kernel cases, %lld not bit-exact\n",
               (long long)g_cases, (long long)g_bad_cases);
        test_backend();
        unsetenv("EDGELLM_CPU_AVXVNNI");
        test_backend();
        el_cpu_isa_set(EL_ISA_SCALAR);
        CHECK(!edgellm_cpu_qmm_i8_supported(EL_DTYPE_Q_W8A8, 64));
        test_backend(); /* the reference on both sides */
        el_cpu_isa_set(isa0);
    }
    return t_finish("test_qkernels_int8");
}
