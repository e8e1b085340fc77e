/* qint8.c - entry points of the int8-activation quantized matmuls (w8a8, q8_0, q4_0): sizes of the
 * shared activation buffer and of the per-thread scratch, and dispatch to the AVX-512 VNNI kernels
 * (qint8_avx512.c). Without AVX-512 VNNI (or with a lower ISA forced) edgellm_cpu_qmm_i8_supported is
 * false and the caller runs el_ref_qmatmul. */
#include "kernels/cpu/qint8.h"

#include <stdlib.h>
#include <string.h>

static bool have_vnni(void) {
#if defined(__x86_64__)
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512vnni") ? 1 : 0;
    return cached == 1;
#else
    return false;
#endif
}

/* AVX-512 in effect: detected and not lowered by EDGELLM_CPU_ISA (el_cpu_isa_set is not seen here) */
static bool isa_avx512(void) {
    if (el_cpu_isa_detect() != EL_ISA_AVX512) return false;
    const char *e = getenv("EDGELLM_CPU_ISA");
    return !e || (strcmp(e, "scalar") != 0 && strcmp(e, "avx2") != 0);
}

bool edgellm_cpu_qmm_i8_supported(el_dtype wt, int64_t k) {
    if (wt != EL_DTYPE_Q_W8A8 && !el_qi8_ggml(wt)) return false;
    if (k <= 0 || (el_qi8_ggml(wt) && k % 32)) return false;
    return isa_avx512() && have_vnni();
}

size_t edgellm_cpu_qmm_i8_act_bytes(el_dtype wt, int64_t m, int64_t k) {
    return el_qi8_act_bytes(wt, m, k);
}

size_t edgellm_cpu_qmm_i8_scratch(el_dtype wt, int64_t m, int64_t k) {
    (void)m;
    if (!el_qi8_ggml(wt)) return 0;
    const int64_t nb = k / 32, rb = nb * (wt == EL_DTYPE_Q8_0 ? 34 : 18);
    return (size_t)(nb * 64 * 9 + 16 * rb + 64); /* a transposed 16-row tile + a padded last tile */
}

void edgellm_cpu_qmm_i8_quantize(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                                 int64_t i1, void *act) {
#if defined(__x86_64__)
    if (i1 > i0) el_qi8_quantize_avx512(w, wt, x, m, k, i0, i1, act);
#else
    (void)w, (void)wt, (void)x, (void)m, (void)k, (void)i0, (void)i1, (void)act;
#endif
}

void edgellm_cpu_qmm_i8(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
#if defined(__x86_64__)
    if (m > 0 && n1 > n0) el_qi8_matmul_avx512(act, m, k, w, wt, n, n0, n1, bias, y, ldy, scratch);
#else
    (void)act, (void)m, (void)k, (void)w, (void)wt, (void)n, (void)n0, (void)n1, (void)bias, (void)y,
        (void)ldy, (void)scratch;
#endif
}
