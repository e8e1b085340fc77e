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

#include <string.h>

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

/* w8a8: the scale s_x of a row (kernels/quant.h: the static act_scale, or amax / 127 with amax = max |x| of
 * the row, which the caller computes only when the activations are dynamic) and the multiplier *inv. */
static inline float el_qi8_w8a8_scale(const el_qhdr *h, float amax, float *inv) {
    if (h->flags & EL_QF_STATIC_ACT) {
        *inv = 1.0f / h->act_scale;
        return h->act_scale;
    }
    *inv = amax > 0 ? 127.0f / amax : 0.0f;
    return amax / 127.0f;
}

/* What a w8a8 matmul reads: the weight's row scales sw and codes qs (kernels/quant.h), the activation
 * buffer's scales sx, code sums xsum and codes xq (row stride kp). */
typedef struct el_qi8_w8a8 {
    const float *sw, *sx;
    const int8_t *qs, *xq;
    const int32_t *xsum;
    int64_t kp;
} el_qi8_w8a8;
static inline el_qi8_w8a8 el_qi8_w8a8_of(const void *act, int64_t m, int64_t k, const void *w) {
    el_qhdr h;
    memcpy(&h, w, sizeof h);
    const uint8_t *a = act;
    el_qi8_w8a8 p;
    p.sw = (const float *)((const uint8_t *)w + h.scales_off);
    p.qs = (const int8_t *)((const uint8_t *)w + h.quants_off);
    p.sx = (const float *)a;
    p.xsum = (const int32_t *)(a + el_qi8_off_xsum(EL_DTYPE_Q_W8A8, m, k));
    p.xq = (const int8_t *)(a + el_qi8_off_xq(EL_DTYPE_Q_W8A8, m, k));
    p.kp = el_qi8_kp(EL_DTYPE_Q_W8A8, k);
    return p;
}

/* What a q8_0 / q4_0 matmul reads from the activation buffer: the q8_0 block scales dx of x, their code
 * sums xsum and the codes xq (row stride k). */
typedef struct el_qi8_ggml_act {
    const float *dx;
    const int32_t *xsum;
    const int8_t *xq;
} el_qi8_ggml_act;
static inline el_qi8_ggml_act el_qi8_ggml_of(const void *act, el_dtype wt, int64_t m, int64_t k) {
    const uint8_t *a = act;
    el_qi8_ggml_act p = {(const float *)a, (const int32_t *)(a + el_qi8_off_xsum(wt, m, k)),
                         (const int8_t *)(a + el_qi8_off_xq(wt, m, k))};
    return p;
}

/* Rows [j, j + nr) of a q8_0 / q4_0 weight w (rb bytes per row) as a tile of `rows` rows: in place, or (nr <
 * rows, the last tile) copied into part and zero padded. */
static inline const uint8_t *el_qi8_ggml_tile_src(const void *w, int64_t j, int nr, int rows, int64_t rb,
                                                  uint8_t *part) {
    const uint8_t *src = (const uint8_t *)w + j * rb;
    if (nr == rows) return src;
    memcpy(part, src, (size_t)(nr * rb));
    memset(part + nr * rb, 0, (size_t)((rows - nr) * rb));
    return part;
}

/* An ISA's w8a8 tile: the exact int32 dot products isum[t * R + r] of R (4 or 1) rows of W (wr, stride k)
 * and T (1 .. the driver's tmax) rows of codes (xr, stride kp; xs their code sums). */
typedef void (*el_qi8_w8a8_tile_fn)(int R, int T, const int8_t *wr, int64_t k, const int8_t *xr, int64_t kp,
                                    const int32_t *xs, int32_t *isum);

/* y rows [n0, n1) of a w8a8 matmul on an ISA's tile (tmax <= 8 tokens per tile): rows of W in blocks of ~128
 * KiB (in L2) under which all the token groups pass, so W is read from memory once (m <= tmax: one block),
 * 4 rows at a time (1 at the end); y = ((float)isum * s_w) * s_x + bias, the reference's order. */
static inline void el_qi8_w8a8_matmul(const void *act, int64_t m, int64_t k, const void *w, int64_t n0, int64_t n1,
                                      const float *bias, float *y, int64_t ldy, int tmax, el_qi8_w8a8_tile_fn tile) {
    const el_qi8_w8a8 p = el_qi8_w8a8_of(act, m, k, w);
    int32_t isum[32];
    const int64_t rb = m <= tmax ? n1 - n0 : ((int64_t)131072 / k + 3) & ~(int64_t)3;
    for (int64_t jb = n0; jb < n1; jb += rb) {
        const int64_t je = jb + rb < n1 ? jb + rb : n1;
        for (int64_t t = 0; t < m;) {
            const int T = m - t >= tmax ? tmax : (int)(m - t);
            for (int64_t j = jb; j < je;) {
                const int R = je - j >= 4 ? 4 : 1;
                tile(R, T, p.qs + j * k, k, p.xq + t * p.kp, p.kp, p.xsum + t, isum);
                for (int tt = 0; tt < T; tt++)
                    for (int r = 0; r < R; r++) {
                        const float v = ((float)isum[tt * R + r] * p.sw[j + r]) * p.sx[t + tt];
                        y[(t + tt) * ldy + j + r] = bias ? v + bias[j + r] : v;
                    }
                j += R;
            }
            t += T;
        }
    }
}

/* One row of x (k) quantized by an ISA's kernel: w8a8 into xq (kp = el_qi8_kp, zero padded), *sx and the
 * code sum *xsum; ggml into k / 32 q8_0 blocks: codes xq, scales dx, block sums xsum. */
typedef void (*el_qi8_w8a8_row_fn)(const el_qhdr *h, const float *x, int64_t k, int8_t *xq, float *sx,
                                   int32_t *xsum);
typedef void (*el_qi8_ggml_row_fn)(const float *x, int64_t k, int8_t *xq, float *dx, int32_t *xsum);

/* Rows [i0, i1) of x (m, k) into the activation buffer act of weight w (format wt), one row at a time by
 * the ISA's row kernels (the body of every el_qi8_quantize_*). */
static inline void el_qi8_quantize_rows(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k,
                                        int64_t i0, int64_t i1, void *act, el_qi8_w8a8_row_fn w8a8_row,
                                        el_qi8_ggml_row_fn ggml_row) {
    uint8_t *a = act;
    const int64_t ns = el_qi8_ns(wt, k), kp = el_qi8_kp(wt, k);
    float *sc = (float *)a;
    int32_t *xs = (int32_t *)(a + el_qi8_off_xsum(wt, m, k));
    int8_t *xq = (int8_t *)(a + el_qi8_off_xq(wt, m, k));
    el_qhdr h;
    if (!el_qi8_ggml(wt)) memcpy(&h, w, sizeof h);
    for (int64_t i = i0; i < i1; i++) {
        if (el_qi8_ggml(wt))
            ggml_row(x + i * k, k, xq + i * kp, sc + i * ns, xs + i * ns);
        else
            w8a8_row(&h, x + i * k, k, xq + i * kp, sc + i, xs + i);
    }
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
