/* qfloat_avx2.h - the AVX2 + FMA + F16C kernels of the weight-only / float-activation quantized formats
 * (qfloat_avx2.c), for CPUs without AVX-512 BF16; dispatched by qfloat.c. They take the geometry of
 * qfloat_impl.h (el_qf_info) but have their own prepared-activation layout and sizes (qfloat_avx2.c). */
#ifndef EL_QFLOAT_AVX2_H
#define EL_QFLOAT_AVX2_H

#include "kernels/cpu/qfloat_impl.h"

#if defined(__x86_64__)
/* Sets q->ldx, q->xb_bytes, q->xs_bytes for m rows of x and returns the prepared-activation bytes (> 0). */
size_t el_qf_sizes_avx2(el_qf_info *q, int64_t m);
/* Per-thread scratch bytes (prefill: a block of dequantized rows of W). */
size_t el_qf_scratch_avx2(const el_qf_info *q, int64_t m);
/* rows [i0, i1) of x (m, k); q as set by el_qf_sizes_avx2 for the same m. */
void el_qf_prep_avx2(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep);
void el_qf_matmul_avx2(const el_qf_info *q, const float *x, const void *prep, int64_t m, int64_t n0,
                       int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);
#endif

#endif
