/* qfloat_impl.h - shared between qfloat.c (dispatch) and qfloat_avx512.c (kernels): the geometry of a
 * weight-only / float-activation quantized layout (w4a16, fp8, nvfp4; kernels/quant.h) as the SIMD
 * kernels walk it, and the layout of the per-call prepared activations.
 *
 * Chunks: w4a16 and nvfp4 rows are walked in chunks of 128 elements (64 bytes of nibbles), fp8 rows in
 * chunks of 32 elements (32 bytes). The activations are prepared once per matmul call:
 *   xb   bf16 [m][ldx], per chunk its elements as hi = bf16(x) (RNE), then (except fp8 with static
 *        activations) the same count of lo = bf16(x - hi); zero past k; ldx = kx (x 2 with lo),
 *        kx = nch * chunk elements. nvfp4 decode stores each chunk part permuted to the order the kernel
 *        unpacks 16-bit words of nibbles: position r * 32 + i holds element 4 i + r of the chunk (r =
 *        nibble index in the word). fp8, and nvfp4 prefill (m > EL_QF_MDEC): natural order in parts of 32
 *        (32 hi words, then 32 lo words); fp8 with a static activation scale: the e4m3 round trip of
 *        x / act_scale (exact in bf16, no lo part).
 *   w4a16 instead (qfloat_w4dec_avx512.c): per chunk of 128, n = rne(x / d) (d = max |x| / 32639) in two
 *        signed 8-bit limbs n = x1 * 2^8 + x0, each limb as 64 bytes of the even elements then 64 of the
 *        odd ones (256 bytes; ldx = nch * 128 16-bit units); after xs, f32 [m][nch] the chunk factors d,
 *        then f32 [m][nch] the chunk sums of the represented x.
 *   w4a16 prefill (m > EL_QF_MDEC): int16 [m][kx], per chunk of 128 rne(x * 32767 / a) (a = the chunk's
 *        max |x|, zero past k), then f32 [m][nch] the chunk factors a / 32767.
 *   xs   f32 [m][G] (w4a16 decode): the sum of the (represented) x over each group X_g, for the offset
 *        correction: the kernel dots the unsigned nibbles q and adds -sum_g s_g z_g X_g once per row.
 */
#ifndef EL_QFLOAT_IMPL_H
#define EL_QFLOAT_IMPL_H

#include "kernels/kernels.h"
#include "kernels/quant.h"

#include <string.h>

enum { EL_QF_FMT_W4 = 1, EL_QF_FMT_FP8 = 2, EL_QF_FMT_NV4 = 3 };

typedef struct el_qf_info {
    int fmt;
    int64_t n;                /* rows of W                                                          */
    int64_t k, kx, nch, rowb; /* k; padded x length; chunks per row; quant bytes per row           */
    int64_t ldx;              /* prepared row stride (elements): kx, 2 kx with the lo part          */
    int64_t cb, tailb;        /* bytes per chunk; bytes of the last chunk (1..cb)                  */
    int64_t G, g;             /* w4a16: groups per row, group size; nvfp4: blocks per row, 16      */
    const uint8_t *qs, *sc, *zs;
    float gscale; /* nvfp4 global scale                                                       */
    float post;   /* fp8: act_scale when static activations, else 1                            */
    float inv;    /* fp8 static: 1 / act_scale                                                 */
    bool act;     /* fp8 static activations                                                    */
    size_t xb_bytes, xs_bytes;
} el_qf_info;

/* Fills q for weight w (n, k); false when the SIMD kernels do not handle the layout. */
static inline bool el_qf_info_of(const void *w, el_dtype wt, int64_t k, el_qf_info *q) {
    if (wt != EL_DTYPE_Q_W4A16 && wt != EL_DTYPE_Q_FP8 && wt != EL_DTYPE_Q_NVFP4) return false;
    el_qhdr h;
    memcpy(&h, w, sizeof h);
    if (h.magic != EL_QHDR_MAGIC || h.format != (uint32_t)wt || (int64_t)h.k != k || k <= 0) return false;
    memset(q, 0, sizeof *q);
    const uint8_t *base = w;
    q->n = h.n;
    q->k = k;
    q->qs = base + h.quants_off;
    q->sc = base + h.scales_off;
    q->post = 1.0f;
    if (wt == EL_DTYPE_Q_FP8) {
        q->fmt = EL_QF_FMT_FP8;
        q->cb = 32;
        q->rowb = k;
        q->nch = (k + 31) / 32;
        q->kx = q->nch * 32;
        q->act = h.act_scale > 0;
        if (q->act) {
            q->post = h.act_scale;
            q->inv = 1.0f / h.act_scale;
        }
    } else {
        const int64_t g = wt == EL_DTYPE_Q_NVFP4 ? 16 : (int64_t)h.group;
        if (g < 8 || g % 8 || (128 % g && g % 128)) return false;
        q->fmt = wt == EL_DTYPE_Q_NVFP4 ? EL_QF_FMT_NV4 : EL_QF_FMT_W4;
        q->g = g;
        q->G = (k + g - 1) / g;
        q->cb = 64;
        q->rowb = q->G * g / 2;
        q->nch = (q->G * g + 127) / 128;
        q->kx = q->nch * 128;
        q->gscale = h.global_scale;
        if (q->fmt == EL_QF_FMT_W4 && (h.flags & EL_QF_ZEROS)) q->zs = base + h.zeros_off;
        if (g > 128 && q->nch > 256) return false; /* per-chunk scales of such rows: QF_SF_MAX */
    }
    q->tailb = q->rowb - (q->nch - 1) * q->cb;
    q->ldx = q->act ? q->kx : 2 * q->kx;
    if (q->fmt == EL_QF_FMT_W4) q->ldx = q->nch * 128; /* 256 bytes of int8 limbs per chunk */
    q->xb_bytes = 0;
    q->xs_bytes = 0;
    return true;
}

/* m <= EL_QF_MDEC: the vdpbf16ps / vpdpbusd kernels on prepared activations; larger m (prefill):
 *   w4a16: x as int16 per chunk of 128 (xq = rne(x * 32767 / max |x|), f32 factor d = max |x| / 32767 per
 *     row and chunk; error <= d / 2); EL_QF_W4P_ROWS rows of W expanded into per-thread scratch as int16
 *     q - z, pairs of elements interleaved by row (the 16 rows of a vector side by side), and vpdpwssd
 *     (32 int16 MACs per instruction, exact int32 sums per group) over all m rows of x;
 *   fp8 / nvfp4: x as bf16 hi + lo (fp8 with static activations: the e4m3 values, no lo) in natural order
 *     per chunk of 32 (the fp8 decode layout, kx / 32 chunks); EL_QF_W4P_ROWS rows of W expanded into
 *     per-thread scratch as exact bf16 values (fp8: e4m3; nvfp4: e2m1 x e4m3 block scale), pairs of
 *     elements interleaved by row, and vdpbf16ps (32 MACs per instruction, f32 sums) over all m rows of x.
 * Either way each weight is expanded once for all m rows of x. */
#define EL_QF_MDEC 4
#define EL_QF_W4P_ROWS 64 /* rows of W per expanded prefill tile (four vectors of 16) */

/* w4a16 prefill: elements per segment (one int32 sum per segment: one weight group and one x chunk) */
static inline int64_t el_qf_w4p_seg(const el_qf_info *q) { return q->g < 128 ? q->g : 128; }

/* Prepared-activation sizes for m rows (each part 64-byte aligned). Prefill: w4a16 the int16 x [m][kx] then
 * f32 d [m][nch]; fp8 / nvfp4 bf16 [m][ldx] as for decode (nvfp4 in natural order, not permuted). */
static inline size_t el_qf_prep_size(el_qf_info *q, int64_t m) {
    if (m > EL_QF_MDEC && q->fmt == EL_QF_FMT_W4) {
        q->xb_bytes = ((size_t)(m * q->kx) * 2 + 63) & ~(size_t)63;
        q->xs_bytes = (size_t)(m * q->nch) * 4;
    } else {
        q->xb_bytes = ((size_t)(m * q->ldx) * 2 + 63) & ~(size_t)63;
        q->xs_bytes = q->fmt == EL_QF_FMT_W4 ? (size_t)(m * (q->G + 2 * q->nch)) * 4 : 0;
    }
    return q->xb_bytes + q->xs_bytes;
}

/* fp8 / nvfp4 prefill: row stride (dwords) of the 16 staged rows of pairs (kx / 2, plus 16 against cache
 * set conflicts) */
static inline int64_t el_qf_bfp_stage(const el_qf_info *q) { return q->kx / 2 + 16; }

/* The per-thread scratch bytes of prefill (0 for decode): the expanded tile of EL_QF_W4P_ROWS rows of W
 * (fp8 / nvfp4: then the 16 staged rows). */
static inline size_t el_qf_scratch_size(const el_qf_info *q, int64_t m) {
    if (m <= EL_QF_MDEC) return 0;
    if (q->fmt == EL_QF_FMT_W4) /* the int16 tile, then f32 scales [segments][rows] */
        return (size_t)(EL_QF_W4P_ROWS * q->kx) * 2 + (size_t)(EL_QF_W4P_ROWS * (q->kx / el_qf_w4p_seg(q))) * 4 +
               128;
    return (size_t)(EL_QF_W4P_ROWS * q->kx) * 2 + (size_t)(16 * el_qf_bfp_stage(q)) * 4 + 64; /* bf16 pairs */
}

#if defined(__x86_64__)
void el_qf_prep_avx512(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep);
void el_qf_matmul_avx512(const el_qf_info *q, const float *x, const void *prep, int64_t m, int64_t n0,
                         int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);
/* w4a16 decode (m <= EL_QF_MDEC): qfloat_w4dec_avx512.c */
void el_w4d_prep_avx512(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep);
void el_w4d_matmul_avx512(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1,
                          const float *bias, float *y, int64_t ldy);
#endif

#endif
