/* qfloat.c - dispatch of the weight-only / float-activation quantized matmul (w4a16, fp8, nvfp4):
 * the AVX-512 BF16 kernels of qfloat_avx512.c (w4a16 decode: qfloat_w4dec_avx512.c, VNNI) when the CPU
 * and the ISA in effect allow them, else the AVX2 + FMA + F16C kernels of qfloat_avx2.c (CPUs without
 * AVX-512 BF16 / VNNI, or EDGELLM_CPU_ISA=avx2), on aarch64 the NEON kernels of qneon.h,
 * else prep_bytes says 0 and the caller runs the scalar
 * reference el_ref_qmatmul. Compiled without ISA flags: only the feature checks here (el_cpu_has). */
#include "kernels/cpu/qfloat_avx2.h"
#include "kernels/cpu/qneon.h"

enum { QF_NONE = 0, QF_AVX2 = 1, QF_AVX512 = 2, QF_NEON = 3 /* aarch64 (qneon.h) */ };

/* the kernels for the ISA in effect (el_cpu_isa_get: detected, lowered by EDGELLM_CPU_ISA / el_cpu_isa_set) */
static int qf_path(void) {
#if defined(__x86_64__)
    const el_cpu_isa isa = el_cpu_isa_get();
    if (isa == EL_ISA_AVX512 && el_cpu_has(EL_FEAT_AVX512_BF16) && el_cpu_has(EL_FEAT_AVX512_VNNI))
        return QF_AVX512;
    return isa >= EL_ISA_AVX2 ? QF_AVX2 : QF_NONE;
#elif defined(__aarch64__)
    return el_cpu_isa_get() == EL_ISA_NEON ? QF_NEON : QF_NONE;
#else
    return QF_NONE;
#endif
}

/* q for (w, wt, k) and the sizes of m rows on path p; false: the reference */
static bool qf_setup(const void *w, el_dtype wt, int64_t m, int64_t k, el_qf_info *q, int *p, size_t *prep) {
    *p = qf_path();
    if (!w || m <= 0 || *p == QF_NONE || !el_qf_info_of(w, wt, k, q)) return false;
#if defined(__x86_64__)
    *prep = *p == QF_AVX512 ? el_qf_prep_size(q, m) : el_qf_sizes_avx2(q, m);
#elif defined(__aarch64__)
    *prep = el_qn_prep_size(q, m);
#else
    *prep = 0;
#endif
    return *prep > 0;
}

size_t edgellm_cpu_qf_prep_bytes(const void *w, el_dtype wt, int64_t m, int64_t k) {
    el_qf_info q;
    int p;
    size_t n;
    return qf_setup(w, wt, m, k, &q, &p, &n) ? n : 0;
}

void edgellm_cpu_qf_prep(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t i0, int64_t i1,
                         void *prep) {
    el_qf_info q;
    int p;
    size_t n;
    if (i1 <= i0 || !qf_setup(w, wt, m, k, &q, &p, &n)) return;
#if defined(__x86_64__)
    if (p == QF_AVX512 && q.fmt == EL_QF_FMT_W4 && m <= EL_QF_MDEC)
        el_w4d_prep_avx512(&q, x, m, i0, i1, prep);
    else if (p == QF_AVX512)
        el_qf_prep_avx512(&q, x, m, i0, i1, prep);
    else
        el_qf_prep_avx2(&q, x, m, i0, i1, prep);
#elif defined(__aarch64__)
    el_qn_prep_neon(&q, x, m, i0, i1, prep);
#else
    (void)x;
    (void)prep;
#endif
}

size_t edgellm_cpu_qf_scratch(const void *w, el_dtype wt, int64_t m, int64_t k) {
    el_qf_info q;
    int p;
    size_t n;
    if (!qf_setup(w, wt, m, k, &q, &p, &n)) return 0;
#if defined(__x86_64__)
    return p == QF_AVX512 ? el_qf_scratch_size(&q, m) : el_qf_scratch_avx2(&q, m);
#else
    return 0;
#endif
}

void edgellm_cpu_qf_matmul(const float *x, const void *prep, int64_t m, int64_t k, const void *w, el_dtype wt,
                           int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    el_qf_info q;
    int p;
    size_t n;
    if (n1 <= n0 || !qf_setup(w, wt, m, k, &q, &p, &n)) return;
#if defined(__x86_64__)
    if (p == QF_AVX512 && q.fmt == EL_QF_FMT_W4 && m <= EL_QF_MDEC)
        el_w4d_matmul_avx512(&q, prep, m, n0, n1, bias, y, ldy);
    else if (p == QF_AVX512)
        el_qf_matmul_avx512(&q, x, prep, m, n0, n1, bias, y, ldy, scratch);
    else
        el_qf_matmul_avx2(&q, x, prep, m, n0, n1, bias, y, ldy, scratch);
#elif defined(__aarch64__)
    (void)x;
    (void)scratch;
    (el_qn_dotprod() ? el_qn_matmul_neondp : el_qn_matmul_neon)(&q, prep, m, n0, n1, bias, y, ldy);
#else
    (void)x;
    (void)scratch;
    (void)prep;
    (void)bias;
    (void)y;
    (void)ldy;
#endif
}
