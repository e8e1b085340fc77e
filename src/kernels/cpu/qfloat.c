/* qfloat.c - dispatch of the weight-only / float-activation quantized matmul (w4a16, fp8, nvfp4):
 * the AVX-512 BF16 kernels of qfloat_avx512.c when the CPU and the ISA in effect allow them, else
 * prep_bytes says 0 and the caller runs the scalar reference el_ref_qmatmul. Compiled without ISA
 * flags: only cpuid here. */
#include "kernels/cpu/qfloat_impl.h"

#include <stdatomic.h>

#if defined(__x86_64__)
#include <cpuid.h>

static bool has_avx512_bf16(void) {
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        v = __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)) ? 1 : 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v == 1;
}
#endif

static bool qf_enabled(void) {
#if defined(__x86_64__)
    return el_cpu_isa_get() == EL_ISA_AVX512 && has_avx512_bf16() && __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

size_t edgellm_cpu_qf_prep_bytes(const void *w, el_dtype wt, int64_t m, int64_t k) {
    el_qf_info q;
    if (!w || m <= 0 || !qf_enabled() || !el_qf_info_of(w, wt, k, &q)) return 0;
    return el_qf_prep_size(&q, m);
}

void edgellm_cpu_qf_prep(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t i0, int64_t i1,
                         void *prep) {
    el_qf_info q;
    if (m <= 0 || i1 <= i0 || !qf_enabled() || !el_qf_info_of(w, wt, k, &q)) return;
    el_qf_prep_size(&q, m);
#if defined(__x86_64__)
    el_qf_prep_avx512(&q, x, m, i0, i1, prep);
#else
    (void)x;
    (void)prep;
#endif
}

size_t edgellm_cpu_qf_scratch(const void *w, el_dtype wt, int64_t m, int64_t k) {
    el_qf_info q;
    if (!w || m <= 0 || !qf_enabled() || !el_qf_info_of(w, wt, k, &q)) return 0;
    return el_qf_scratch_size(&q, m);
}

void edgellm_cpu_qf_matmul(const float *x, const void *prep, int64_t m, int64_t k, const void *w, el_dtype wt,
                           int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    el_qf_info q;
    if (m <= 0 || n1 <= n0 || !qf_enabled() || !el_qf_info_of(w, wt, k, &q)) return;
    el_qf_prep_size(&q, m);
#if defined(__x86_64__)
    el_qf_matmul_avx512(&q, x, prep, m, n0, n1, bias, y, ldy, scratch);
#else
    (void)x;
    (void)scratch;
    (void)prep;
    (void)bias;
    (void)y;
    (void)ldy;
#endif
}
