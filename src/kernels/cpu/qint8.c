/* qint8.c - entry points of the int8-activation quantized matmuls (w8a8, q8_0, q4_0): sizes of the
 * shared activation buffer and of the per-thread scratch, and dispatch to the AVX-512 VNNI kernels
 * (qint8_avx512.c) or, on CPUs with AVX2 but no AVX-512 VNNI, the AVX2 kernels (qint8_avx2.c); on aarch64
 * the NEON kernels (qneon.h: SDOT where the CPU has it).
 * Otherwise edgellm_cpu_qmm_i8_supported is false and the caller runs el_ref_qmatmul. */
#include "kernels/cpu/qint8.h"
#include "kernels/cpu/qneon.h"

/* 3: NEON (qneon.h; aarch64), 2: AVX-512 VNNI kernels, 1: AVX2, 0: none (reference) */
static int path(el_dtype wt, int64_t k) {
    if (wt != EL_DTYPE_Q_W8A8 && !el_qi8_ggml(wt)) return 0;
    if (k <= 0 || (el_qi8_ggml(wt) && k % 32)) return 0;
    const el_cpu_isa isa = el_cpu_isa_get(); /* detected, lowered by EDGELLM_CPU_ISA or el_cpu_isa_set */
    if (isa == EL_ISA_NEON) return 3;
    if (isa == EL_ISA_AVX512 && el_cpu_has(EL_FEAT_AVX512_VNNI)) return 2;
    return isa >= EL_ISA_AVX2 ? 1 : 0;
}

bool edgellm_cpu_qmm_i8_supported(el_dtype wt, int64_t k) {
    return path(wt, k) != 0;
}

size_t edgellm_cpu_qmm_i8_act_bytes(el_dtype wt, int64_t m, int64_t k) {
    return el_qi8_act_bytes(wt, m, k);
}

size_t edgellm_cpu_qmm_i8_scratch(el_dtype wt, int64_t m, int64_t k) {
    (void)m;
    if (!el_qi8_ggml(wt)) return 0;
    const int64_t nb = k / 32, rb = nb * (wt == EL_DTYPE_Q8_0 ? 34 : 18);
    return (size_t)(nb * 64 * 9 + 16 * rb + 64); /* AVX-512: a transposed 16-row tile + a padded last tile
                                                   * (AVX2: a packed 8-row tile + a padded last tile) */
}

void edgellm_cpu_qmm_i8_quantize(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                                 int64_t i1, void *act) {
    if (i1 <= i0) return;
#if defined(__x86_64__)
    const int p = path(wt, k);
    if (p == 2) el_qi8_quantize_avx512(w, wt, x, m, k, i0, i1, act);
    if (p == 1) el_qi8_quantize_avx2(w, wt, x, m, k, i0, i1, act);
#elif defined(__aarch64__)
    if (path(wt, k) == 3) el_qi8_quantize_neon(w, wt, x, m, k, i0, i1, act);
#else
    (void)w, (void)wt, (void)x, (void)m, (void)k, (void)act;
#endif
}

void edgellm_cpu_qmm_i8(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    if (m <= 0 || n1 <= n0) return;
#if defined(__x86_64__)
    const int p = path(wt, k);
    if (p == 2) el_qi8_matmul_avx512(act, m, k, w, wt, n, n0, n1, bias, y, ldy, scratch);
    if (p == 1) el_qi8_matmul_avx2(act, m, k, w, wt, n, n0, n1, bias, y, ldy, scratch);
#elif defined(__aarch64__)
    if (path(wt, k) == 3)
        (el_qn_dotprod() ? el_qi8_matmul_neondp : el_qi8_matmul_neon)(act, m, k, w, wt, n, n0, n1, bias, y, ldy,
                                                                      scratch);
#else
    (void)act, (void)k, (void)w, (void)wt, (void)n, (void)bias, (void)y, (void)ldy, (void)scratch;
#endif
}
