/*
 * quant.h - quantized weight formats: byte layouts, scalar quantize / dequantize references and the
 * reference matmul that emulates exactly what a real kernel computes (activation quantization
 * included). docs/quantization.md describes the same layouts in prose.
 *
 * A quantized weight W (n, k) (n output rows, k input columns; y = x W^T) is ONE self-contained byte
 * region that a kernel reads from a single pointer given (n, k); its size is el_weight_nbytes().
 *
 * ---- edgellm formats (w8a8, w4a16, fp8, nvfp4): a 64-byte header, then sections -----------------
 *   offset 0  el_qhdr (64 bytes, little endian, below)
 *   sections at the offsets the header gives, each starting on a 64-byte boundary (relative to the
 *   weight pointer, which the engine aligns to 64), zero padding in between; scales always come
 *   before the quants.
 *
 *   w8a8  (EL_DTYPE_Q_W8A8)  SmoothQuant W8A8. The smoothing factors are folded into the previous
 *         norm / linear at export, so the layout is plain per-channel int8.
 *     scales  f32[n]       s_w[j] = max_c |W[j,c]| / 127
 *     quants  i8[n][k]     q[j,c] = clamp(rne(W[j,c] / s_w[j]), -127, 127), row stride k
 *     activations (flags & EL_QF_STATIC_ACT == 0: dynamic per token):
 *       a = max_c |x[c]|;  inv = a > 0 ? 127 / a : 0;  s_x = a / 127
 *     (EL_QF_STATIC_ACT: s_x = hdr.act_scale from calibration, inv = 1 / s_x)
 *       xq[c] = clamp(rne(x[c] * inv), -127, 127)                        (f32 multiply, RNE)
 *       y[j]  = ((float)isum_j * s_w[j]) * s_x + bias[j],  isum_j = sum_c xq[c] * q[j,c]  (exact int32)
 *
 *   w4a16 (EL_DTYPE_Q_W4A16) int4 group-wise (AWQ, GPTQ, RTN), activations stay f32.
 *     g = hdr.group (multiple of 8); G = ceil(k / g) groups per row; kp = G * g (row padded to whole
 *     groups: padded elements hold the zero point, i.e. value 0)
 *     scales  f16[n][G]    s[j, c / g]
 *     zeros   u8[n][G]     z[j, c / g] in 0..15  (only with EL_QF_ZEROS; without it z = 8: symmetric)
 *     quants  u8[n][kp/2]  nibble c of row j is byte c/2 of the row, LOW nibble for even c
 *     W[j,c] = (q[j,c] - z) * s ;  symmetric RTN (all 16 levels, as ggml q4_0): m = the group's value of
 *     largest magnitude, s = f16(m / -8) (s may be negative), q = clamp(rne(W/s), -8, 7) + 8
 *     y[j] = sum_groups s * sum_{c in group} (q - z) * x[c]  + bias[j]
 *
 *   fp8   (EL_DTYPE_Q_FP8)   e4m3fn weights, per-channel (or per-tensor: all rows equal) f32 scales,
 *         static e4m3 activations.
 *     scales  f32[n]       W[j,c] = e4m3(q[j,c]) * s[j]
 *     quants  u8[n][k]     e4m3fn codes (max 448, no inf; 0x7f/0xff NaN never written)
 *     activations with hdr.act_scale > 0 (static, calibrated):  inv = 1 / act_scale,
 *       xq[c] = e4m3(clamp(x[c] * inv, -448, 448)) (RNE) ; y[j] = (sum_c xq[c] * q[j,c]) * s[j] * act_scale
 *       (every product of two e4m3 values is exact in f32; the sum is accumulated in >= f32)
 *     act_scale == 0: weight-only fp8, y[j] = (sum_c x[c] * q[j,c]) * s[j]
 *
 *   nvfp4 (EL_DTYPE_Q_NVFP4) e2m1 values, e4m3 scale per block of 16, f32 global scale; weight-only
 *         (activations stay f32 on the CPU). B = ceil(k / 16) blocks per row (last padded with 0).
 *     scales  u8[n][B]     e4m3fn block scales
 *     quants  u8[n][B*8]   e2m1 codes, low nibble first (element c: byte c/2, low nibble if c even);
 *                          code bit 3 = sign, bits 0..2 index {0, 0.5, 1, 1.5, 2, 3, 4, 6}
 *     W[j,c] = e2m1(q) * e4m3(scale[j, c/16]) * hdr.global_scale
 *     quantize (ModelOpt): global = amax(W) / (6 * 448); block scale = e4m3(amax(block) / 6 / global);
 *     q = nearest e2m1 of W / (block scale * global), ties to the even code
 *
 * ---- ggml formats (q8_0, q4_0): rows of ggml blocks, no header (bit-identical to GGUF) ------------
 *   k must be a multiple of 32; row j is k/32 consecutive blocks.
 *   q8_0 block (34 B): f16 d; i8 qs[32]          W = qs[i] * d
 *   q4_0 block (18 B): f16 d; u8 qs[16]          W[i] = ((qs[i] & 15) - 8) * d, W[i+16] = ((qs[i] >> 4) - 8) * d
 *   The matmul emulates ggml's CPU path: x is quantized to q8_0 blocks (d = f16(amax / 127),
 *   q = roundf(x * (1/d)), half away from zero), then per block sumi (int) * f16->f32(d_w) * f16->f32(d_x).
 */
#ifndef EL_QUANT_H
#define EL_QUANT_H

#include "core/core.h"

#define EL_QHDR_MAGIC 0x31575145u /* "EQW1" */

enum {
    EL_QF_STATIC_ACT = 1u << 0,  /* w8a8: per-tensor static activation scale in act_scale            */
    EL_QF_PER_CHANNEL = 1u << 1, /* fp8: scales differ per row (informational)                      */
    EL_QF_ZEROS = 1u << 2,       /* w4a16: zero-point section present (asymmetric, AWQ/GPTQ import) */
};

typedef struct el_qhdr {
    uint32_t magic;       /* EL_QHDR_MAGIC                                               */
    uint32_t format;      /* the el_dtype value                                          */
    uint32_t n, k;        /* shape                                                       */
    uint32_t group;       /* w4a16: g; nvfp4: 16; else 0                                 */
    uint32_t flags;       /* EL_QF_*                                                     */
    float act_scale;      /* static activation scale (w8a8 with EL_QF_STATIC_ACT, fp8)   */
    float global_scale;   /* nvfp4 global scale; else 0                                  */
    uint64_t scales_off;  /* byte offsets from the start of the weight, multiples of 64  */
    uint64_t zeros_off;   /* 0 when there is no zero section                             */
    uint64_t quants_off;
    uint64_t nbytes;      /* whole layout = el_weight_nbytes()                           */
} el_qhdr;

/* Fills h for format t (w8a8/w4a16/fp8/nvfp4) and shape (n, k). INVALID_ARG on bad shape / group. */
edgellm_status el_qhdr_init(el_qhdr *h, el_dtype t, int64_t n, int64_t k, int64_t group, uint32_t flags);
/* Checks a stored layout of nbytes bytes against (t, n, k): magic, format, shape, offsets, size. */
edgellm_status el_qweight_check(const void *w, size_t nbytes, el_dtype t, int64_t n, int64_t k);
/* Bytes of an (n, k) weight stored in the engine as t: el_weight_nbytes, reading group/zeros from the
 * header for w4a16 (w must point at >= 64 readable bytes for it). */
size_t el_qweight_nbytes_of(const void *w, el_dtype t, int64_t n, int64_t k);

/* ---- scalar conversions -------------------------------------------------------------------------- */
float el_e4m3_to_f32(uint8_t v);
uint8_t el_f32_to_e4m3(float f); /* RNE, saturating to +-448, NaN -> 0x7f */
float el_e2m1_to_f32(uint8_t v); /* low 4 bits */
uint8_t el_f32_to_e2m1(float f); /* nearest, ties to even code, saturating to +-6 */

/* ---- reference quantize / dequantize -------------------------------------------------------------- */
typedef struct el_qopts {
    int64_t group;    /* w4a16 group size (default 128)                                       */
    float act_scale;  /* w8a8 static (> 0 sets EL_QF_STATIC_ACT) / fp8 input scale (0 = none) */
    bool per_tensor;  /* fp8: one weight scale for the whole tensor                           */
    bool zeros;       /* w4a16 asymmetric (min/max) with a zero-point section                 */
} el_qopts;
el_qopts el_qopts_default(void);

/* Quantizes W (n, k) f32 row-major into out (el_weight_nbytes(t, n, k, o->group, o->zeros) bytes,
 * 64-byte aligned for the edgellm formats) with round-to-nearest. */
edgellm_status el_quantize_ref(el_dtype t, const float *w, int64_t n, int64_t k, const el_qopts *o, void *out);
/* Dequantizes a layout into W (n, k) f32. */
void el_dequantize_ref(el_dtype t, const void *q, int64_t n, int64_t k, float *w);

/* Accessors for writers that fill sections themselves (import, GPTQ, AWQ): pointers into a layout
 * whose header is already written (el_qhdr_init + memcpy). */
static inline el_qhdr *el_qhdr_of(void *w) { return (el_qhdr *)w; }
static inline void *el_qsec(void *w, uint64_t off) { return (char *)w + off; }
/* w4a16 nibble store / load of element c in a row. */
static inline void el_w4_set(uint8_t *row, int64_t c, unsigned q) {
    uint8_t *b = row + c / 2;
    *b = (c & 1) ? (uint8_t)((*b & 0x0f) | (q << 4)) : (uint8_t)((*b & 0xf0) | (q & 15));
}
static inline unsigned el_w4_get(const uint8_t *row, int64_t c) { return (row[c / 2] >> ((c & 1) * 4)) & 15; }

/* ---- reference matmul ------------------------------------------------------------------------------ */
/* Rows j in [n0, n1) of y (m, ldy) = x (m, k) W^T + bias for a quantized W (n, k) of format wt,
 * emulating the activation quantization of the format exactly (see above). Scalar, allocates scratch. */
void el_ref_qmatmul(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n, int64_t n0,
                    int64_t n1, const float *bias, float *y, int64_t ldy);
/* The activation emulation alone (for tests and calibration): replaces x (k) by its quantize->dequantize
 * round trip as format wt's matmul sees it (identity for weight-only formats). */
void el_ref_qact_roundtrip(const void *w, el_dtype wt, float *x, int64_t k);

#endif
