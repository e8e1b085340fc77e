/* qint8.h - internal layout of the activation buffer of the int8-activation quantized matmuls (w8a8,
 * q8_0, q4_0; kernels/quant.h) shared by qint8.c (entry points, dispatch) and the kernels (qint8_avx512.c,
 * qint8_avx2.c).
 *
 * The activations are quantized ONCE per matmul call into this buffer (64-byte aligned), then every
 * thread reads it for its rows of W:
 *   w8a8  float sx[m] | int32 xsum[m] | int8 xq[m][kp]          kp = k rounded up to 64 (zero padded)
 *   ggml  float dx[m][nb] | int32 xsum[m][nb] | int8 xq[m][k]    nb = k / 32 (q8_0 blocks of x)
 * each section starting on a 64-byte boundary. xsum is the sum of the int8 values (of the row, resp.
 * of the block): the kernels use u8 x s8 VNNI products on biased weights (w + 128, or the q4_0 nibble
 * q = w + 8) and subtract 128 * xsum (resp. 8 * xsum) to get the exact signed dot products. */
#ifndef EL_QINT8_H
#define EL_QINT8_H

#include "kernels/kernels.h"
#include "kernels/quant.h"

static inline size_t el_qi8_pad64(size_t v) {
    return (v + 63) & ~(size_t)63;
}
static inline bool el_qi8_ggml(el_dtype wt) {
    return wt == EL_DTYPE_Q8_0 || wt == EL_DTYPE_Q4_0;
}
/* int8 row stride of xq */
static inline int64_t el_qi8_kp(el_dtype wt, int64_t k) {
    return el_qi8_ggml(wt) ? k : (int64_t)el_qi8_pad64((size_t)k);
}
/* scales per row of x: 1 (w8a8) or k / 32 */
static inline int64_t el_qi8_ns(el_dtype wt, int64_t k) {
    return el_qi8_ggml(wt) ? k / 32 : 1;
}
static inline size_t el_qi8_off_xsum(el_dtype wt, int64_t m, int64_t k) {
    return el_qi8_pad64((size_t)(m * el_qi8_ns(wt, k)) * 4);
}
static inline size_t el_qi8_off_xq(el_dtype wt, int64_t m, int64_t k) {
    return 2 * el_qi8_off_xsum(wt, m, k);
}
static inline size_t el_qi8_act_bytes(el_dtype wt, int64_t m, int64_t k) {
    return el_qi8_off_xq(wt, m, k) + el_qi8_pad64((size_t)(m * el_qi8_kp(wt, k)));
}

#if defined(__x86_64__)
/* AVX-512 VNNI kernels (qint8_avx512.c); same contracts as edgellm_cpu_qmm_quantize / edgellm_cpu_qmm. */
void el_qi8_quantize_avx512(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                            int64_t i1, void *act);
void el_qi8_matmul_avx512(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                          int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);
/* AVX2 kernels (qint8_avx2.c), for CPUs without AVX-512 VNNI. */
void el_qi8_quantize_avx2(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                          int64_t i1, void *act);
void el_qi8_matmul_avx2(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);
#endif

#endif
