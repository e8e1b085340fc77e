/* qneon_impl.h - bodies of the NEON quantized-format kernels (qneon.h), included once by qneon.c (QN_DP 0:
 * ARMv8.0, names *_neon) and once by qneon_dp.c (QN_DP 1: built with +dotprod, names *_neondp). The only
 * difference is qn_dot: 16 int8 products summed into 4 int32 lanes by one SDOT, or on ARMv8.0 by
 * vmull_s8 + vmlal_high_s8 (pairs of products in int16: |a b + a' b'| <= 2 * 128 * 127 < 2^15 since one
 * operand is never -128: activations are clamped to +-127, nibbles are 0..15) and vpadalq_s16.
 *
 * w8a8 (bit-exact with el_ref_qmatmul): register tiles of R <= 4 rows of W x T <= 4 tokens, 16 bytes of k
 *   per step, one horizontal sum per output; blocks of ~128 KiB of W under which all token groups pass.
 * q8_0 / q4_0 (bit-exact): 4 rows of W in the 4 f32 lanes, accumulated block by block in the reference's
 *   order (acc += (float)isum * (d_w * d_x), no FMA); per block the 4 rows' int32 partial sums are reduced
 *   by two vpaddq; q4_0 dots the unsigned nibbles and subtracts 8 * (block sum of x). Up to 4 tokens share
 *   each loaded (unpacked) block of the 4 rows.
 * w4a16: x per chunk of 128 as n = rne(x / d), d = max |x| / 32639, split into two int8
 *   limbs n = 256 x1 + x0 (x0 in -128..127); per segment (one group within one chunk: min(g, 128)
 *   elements) the exact int32 sum of q * n = 256 (q . x1) + (q . x0) minus z * (segment sum of n), times
 *   s_g * d in f32 (FMA into 4 lanes per output).
 * nvfp4: as w4a16 with the nibbles mapped to 2 x e2m1 (-12..12) by one vqtbl1q_s8 each; segments of 32 (two
 *   blocks: SDOT lanes 0-1 are elements 0-15, lanes 2-3 16-31, so one f32 FMA with the lane scales [s0 s0 s1
 *   s1] per 32 elements; the ARMv8.0 build uses qn_dot4, which keeps SDOT's lanes).
 * fp8: e4m3 -> f16 bits (sign-extended code << 7 with bit 14 cleared = value / 256, vshll_n_s8 + and) ->
 *   f32 (fcvtl), FMA with x in f32 (static activations: their exact e4m3 values, products exact). */
#if !defined(QN_DP)
#error "define QN_DP before including qneon_impl.h"
#endif

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#if QN_DP
#define QN_FN(name) name##_neondp
#else
#define QN_FN(name) name##_neon
#endif
#define QN_AI static inline __attribute__((always_inline))

QN_AI int32x4_t qn_dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if QN_DP
    return vdotq_s32(acc, a, b);
#else
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    p = vmlal_high_s8(p, a, b);
    return vpadalq_s16(acc, p);
#endif
}

/* ---- w8a8 ------------------------------------------------------------------------------------------- */

/* out[t * R + r] = sum_c W[r, c] * xq[t, c] (exact int32, wrap-around as the reference) */
QN_AI void w8_tile(const int R, const int T, const int8_t *w, int64_t k, const int8_t *x, int64_t kp,
                   int32_t *out) {
    int32x4_t acc[16];
    for (int i = 0; i < R * T; i++)
        acc[i] = vdupq_n_s32(0);
    const int64_t kv = k & ~(int64_t)15;
    for (int64_t c = 0; c < kv; c += 16) {
        int8x16_t xv[4];
        for (int t = 0; t < T; t++)
            xv[t] = vld1q_s8(x + t * kp + c);
        for (int r = 0; r < R; r++) {
            const int8x16_t wv = vld1q_s8(w + r * k + c);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = qn_dot(acc[t * R + r], wv, xv[t]);
        }
    }
    if (kv < k) { /* the row tail through a zero-padded copy (x is zero past k up to kp) */
        int8x16_t xv[4];
        for (int t = 0; t < T; t++)
            xv[t] = vld1q_s8(x + t * kp + kv);
        for (int r = 0; r < R; r++) {
            int8_t tmp[16] = {0};
            memcpy(tmp, w + r * k + kv, (size_t)(k - kv));
            const int8x16_t wv = vld1q_s8(tmp);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = qn_dot(acc[t * R + r], wv, xv[t]);
        }
    }
    for (int i = 0; i < R * T; i++)
        out[i] = vaddvq_s32(acc[i]);
}

static void w8_tile_rt(int R, int T, const int8_t *w, int64_t k, const int8_t *x, int64_t kp, int32_t *out) {
    if (R == 4) {
        if (T == 4) w8_tile(4, 4, w, k, x, kp, out);
        if (T == 3) w8_tile(4, 3, w, k, x, kp, out);
        if (T == 2) w8_tile(4, 2, w, k, x, kp, out);
        if (T == 1) w8_tile(4, 1, w, k, x, kp, out);
    } else {
        if (T == 4) w8_tile(1, 4, w, k, x, kp, out);
        if (T == 3) w8_tile(1, 3, w, k, x, kp, out);
        if (T == 2) w8_tile(1, 2, w, k, x, kp, out);
        if (T == 1) w8_tile(1, 1, w, k, x, kp, out);
    }
}

/* the tile of el_qi8_w8a8_matmul (T <= 4; signed dots need no code sums) */
static void w8_tile_fn(int R, int T, const int8_t *w, int64_t k, const int8_t *x, int64_t kp, const int32_t *xs,
                       int32_t *out) {
    (void)xs;
    w8_tile_rt(R, T, w, k, x, kp, out);
}

/* ---- q8_0 / q4_0 ------------------------------------------------------------------------------------ */

/* the f16 scales of block p of 4 rows (stride rb) as f32 */
QN_AI float32x4_t gg_dw4(const uint8_t *p, int64_t rb) {
    uint16_t d[4];
    for (int r = 0; r < 4; r++)
        memcpy(&d[r], p + r * rb, 2);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d)));
}

/* T tokens from t0 over 4 rows of W (row stride rb) from j0: y[t, j0 + r] for r < nr */
QN_AI void gg_tile(const int Q8, const int T, const uint8_t *w, int64_t rb, int64_t nb, const float *dx,
                   const int32_t *xs, const int8_t *xq, int64_t k, int64_t t0, int64_t j0, int nr,
                   const float *bias, float *y, int64_t ldy) {
    const int64_t bb = Q8 ? 34 : 18;
    float32x4_t facc[4];
    for (int t = 0; t < T; t++)
        facc[t] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = w + b * bb;
        int8x16_t wl[4], wh[4]; /* elements 0..15 and 16..31 of the block, per row */
        for (int r = 0; r < 4; r++) {
            if (Q8) {
                wl[r] = vld1q_s8((const int8_t *)(p + r * rb + 2));
                wh[r] = vld1q_s8((const int8_t *)(p + r * rb + 18));
            } else {
                const uint8x16_t v = vld1q_u8(p + r * rb + 2);
                wl[r] = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15)));
                wh[r] = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
            }
        }
        const float32x4_t dw = gg_dw4(p, rb);
        for (int t = 0; t < T; t++) {
            const int8_t *xb = xq + (t0 + t) * k + b * 32;
            const int8x16_t xl = vld1q_s8(xb), xh = vld1q_s8(xb + 16);
            int32x4_t s[4];
            for (int r = 0; r < 4; r++)
                s[r] = qn_dot(qn_dot(vdupq_n_s32(0), wl[r], xl), wh[r], xh);
            int32x4_t isum = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
            if (!Q8) isum = vsubq_s32(isum, vdupq_n_s32(8 * xs[(t0 + t) * nb + b]));
            /* the reference's f32 operations: acc += (float)isum * (d_w * d_x) */
            facc[t] =
                vaddq_f32(facc[t], vmulq_f32(vcvtq_f32_s32(isum), vmulq_n_f32(dw, dx[(t0 + t) * nb + b])));
        }
    }
    for (int t = 0; t < T; t++) {
        float o[4];
        vst1q_f32(o, facc[t]);
        for (int r = 0; r < nr; r++)
            y[(t0 + t) * ldy + j0 + r] = bias ? o[r] + bias[j0 + r] : o[r];
    }
}

QN_AI void gg_rows(const int Q8, const uint8_t *w, int64_t rb, int64_t nb, const float *dx, const int32_t *xs,
                   const int8_t *xq, int64_t k, int64_t m, int64_t j0, int nr, const float *bias, float *y,
                   int64_t ldy) {
    int64_t t = 0;
    for (; t + 4 <= m; t += 4)
        gg_tile(Q8, 4, w, rb, nb, dx, xs, xq, k, t, j0, nr, bias, y, ldy);
    if (m - t == 3) gg_tile(Q8, 3, w, rb, nb, dx, xs, xq, k, t, j0, nr, bias, y, ldy);
    if (m - t == 2) gg_tile(Q8, 2, w, rb, nb, dx, xs, xq, k, t, j0, nr, bias, y, ldy);
    if (m - t == 1) gg_tile(Q8, 1, w, rb, nb, dx, xs, xq, k, t, j0, nr, bias, y, ldy);
}

static void ggml_matmul(el_dtype wt, const uint8_t *act, int64_t m, int64_t k, const void *w, int64_t n0,
                        int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    const int Q8 = wt == EL_DTYPE_Q8_0;
    const int64_t nb = k / 32, rb = nb * (Q8 ? 34 : 18);
    const el_qi8_ggml_act xa = el_qi8_ggml_of(act, wt, m, k);
    uint8_t *part = scratch; /* edgellm_cpu_qmm_i8_scratch >= 16 rows */
    for (int64_t j = n0; j < n1; j += 4) {
        const int nr = n1 - j < 4 ? (int)(n1 - j) : 4;
        const uint8_t *src = el_qi8_ggml_tile_src(w, j, nr, 4, rb, part);
        if (Q8)
            gg_rows(1, src, rb, nb, xa.dx, xa.xsum, xa.xq, k, m, j, nr, bias, y, ldy);
        else
            gg_rows(0, src, rb, nb, xa.dx, xa.xsum, xa.xq, k, m, j, nr, bias, y, ldy);
    }
}

void QN_FN(el_qi8_matmul)(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                          int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    (void)n;
    if (wt == EL_DTYPE_Q_W8A8)
        el_qi8_w8a8_matmul(act, m, k, w, n0, n1, bias, y, ldy, 4, w8_tile_fn);
    else
        ggml_matmul(wt, act, m, k, w, n0, n1, bias, y, ldy, scratch);
}

/* ---- w4a16 / nvfp4 (x as int8 limbs) and fp8 (x in f32) ----------------------------------------------- */

/* Prepared activations (el_qn_prep_size):
 *   w4a16 / nvfp4: per token row int8 limbs [nch][4 blocks of 32][x1 of the 16 even elements | x1 odd | x0
 *     even | x0 odd] (256 bytes per chunk of 128), then f32 d [m][nch], then int32 segment sums of n
 *     [m][nseg] (w4a16 zero points), then f32 post [m]: rows with max |x| < 2^-40 are prepared as x * 2^64
 *     (32639 / max |x| would overflow, d be subnormal) and their outputs multiplied by post = 2^-64.
 *     Segments: w4a16 min(g, 128) elements (one scale, one d), nvfp4 and w4a16 with g < 32: 32 elements
 *     (lane scales: lane l of a SDOT covers elements 8 l .. 8 l + 7 of the 32).
 *   fp8: f32 [m][kx], x (static activations: the values of its e4m3 codes), zero past k. */
typedef struct qn_geo {
    int64_t L, nseg, ldb; /* segment elements; segments per row of W; bytes per token row */
    size_t off_d, off_n, off_p, size;
} qn_geo;

static inline qn_geo qn_geom(const el_qf_info *q, int64_t m) {
    qn_geo g;
    memset(&g, 0, sizeof g);
    if (q->fmt == EL_QF_FMT_FP8) {
        g.ldb = q->kx * 4;
        g.size = (size_t)(m * g.ldb);
        return g;
    }
    g.L = q->fmt == EL_QF_FMT_NV4 || q->g < 32 ? 32 : q->g < 128 ? q->g : 128;
    g.nseg = (q->G * q->g + g.L - 1) / g.L;
    g.ldb = q->nch * 256;
    g.off_d = ((size_t)(m * g.ldb) + 63) & ~(size_t)63;
    g.off_n = g.off_d + (((size_t)(m * q->nch) * 4 + 63) & ~(size_t)63);
    g.off_p = g.off_n + (((size_t)(m * g.nseg) * 4 + 63) & ~(size_t)63);
    g.size = g.off_p + (size_t)m * 4;
    return g;
}

/* as qn_dot with SDOT's lanes also on ARMv8.0 (lane l = bytes 4 l .. 4 l + 3): the lane scales */
QN_AI int32x4_t qn_dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if QN_DP
    return vdotq_s32(acc, a, b);
#else
    return vpadalq_s16(acc, vpaddq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)), vmull_high_s8(a, b)));
#endif
}

/* acc (hi: x1, lo: x0) += the products of 32 weights (we: even elements, wo: odd) with block xp of a token */
QN_AI void q4_block(const int LM, int32x4_t *hi, int32x4_t *lo, int8x16_t we, int8x16_t wo,
                    const int8_t *xp) {
    if (LM) {
        *hi = qn_dot4(qn_dot4(*hi, we, vld1q_s8(xp)), wo, vld1q_s8(xp + 16));
        *lo = qn_dot4(qn_dot4(*lo, we, vld1q_s8(xp + 32)), wo, vld1q_s8(xp + 48));
    } else {
        *hi = qn_dot(qn_dot(*hi, we, vld1q_s8(xp)), wo, vld1q_s8(xp + 16));
        *lo = qn_dot(qn_dot(*lo, we, vld1q_s8(xp + 32)), wo, vld1q_s8(xp + 48));
    }
}

/* e4m3 codes a, b as f16 bits of value / 256 (sign-extended code << 7, bit 14 cleared), lanes a a b b */
QN_AI float32x4_t nv_scales(uint8_t a, uint8_t b) {
    const uint16_t ha = (uint16_t)((uint16_t)((int8_t)a * 128) & 0xbfff),
                   hb = (uint16_t)((uint16_t)((int8_t)b * 128) & 0xbfff);
    const uint16_t h[4] = {ha, ha, hb, hb};
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/* w4a16 with groups of 8 / 16 (g < 32): 32-element segments with lane scales, zero points subtracted from
 * the nibbles (lane l: elements 8 l .. 8 l + 7, one group) */
#define QN_FMT_W4S 4

/* per lane l the zero point (4 equal bytes) of elements e + 8 l of row j */
QN_AI int8x16_t w4s_zeros(const el_qf_info *q, int64_t j, int64_t e) {
    if (!q->zs) return vdupq_n_s8(8);
    uint32_t zl[4];
    for (int l = 0; l < 4; l++) {
        const int64_t gi = (e + 8 * l) / q->g;
        zl[l] = (gi < q->G ? q->zs[j * q->G + gi] : 8u) * 0x01010101u;
    }
    return vreinterpretq_s8_u32(vld1q_u32(zl));
}

/* per lane l the f16 scale of elements e + 8 l of row j (0 past the row) as f32 */
QN_AI float32x4_t w4s_scales(const el_qf_info *q, int64_t j, int64_t e) {
    uint16_t h[4];
    for (int l = 0; l < 4; l++) {
        const int64_t gi = (e + 8 * l) / q->g;
        h[l] = 0;
        if (gi < q->G) memcpy(&h[l], q->sc + (j * q->G + gi) * 2, 2);
    }
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/* F: w4a16 (EL_QF_FMT_W4, g >= 32), nvfp4 (EL_QF_FMT_NV4), w4a16 g < 32 (QN_FMT_W4S): R rows of W from j,
 * T tokens from t0 */
QN_AI void q4_tile(const int F, const int R, const int T, const el_qf_info *q, const qn_geo *g,
                   const uint8_t *prep, int64_t t0, int64_t j, const float *bias, float *y, int64_t ldy) {
    const int NV = F == EL_QF_FMT_NV4, LM = F != EL_QF_FMT_W4; /* LM: lane scales per 32 elements */
    const int8_t *xl = (const int8_t *)prep + t0 * g->ldb;
    const float *dd = (const float *)(const void *)(prep + g->off_d) + t0 * q->nch;
    const int32_t *nn = (const int32_t *)(const void *)(prep + g->off_n) + t0 * g->nseg;
    const float *post = (const float *)(const void *)(prep + g->off_p) + t0;
    const int8x16_t lut = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}; /* 2 x e2m1 */
    float32x4_t facc[8];
    for (int i = 0; i < R * T; i++)
        facc[i] = vdupq_n_f32(0.0f);
    for (int64_t s = 0; s < g->nseg; s++) {
        int32x4_t hi[8], lo[8];
        for (int i = 0; i < R * T; i++)
            hi[i] = lo[i] = vdupq_n_s32(0);
        for (int64_t e = s * g->L; e < (s + 1) * g->L; e += 32) {
            int8x16_t we[4], wo[4];
            for (int r = 0; r < R; r++) {
                const uint8_t *p = q->qs + (j + r) * q->rowb + e / 2;
                uint8x16_t v;
                if (LM && e / 2 + 16 > q->rowb) { /* rows of G * g % 32 != 0 elements: the last bytes */
                    uint8_t tmp[16] = {0};
                    memcpy(tmp, p, (size_t)(q->rowb - e / 2));
                    v = vld1q_u8(tmp);
                } else {
                    v = vld1q_u8(p);
                }
                const uint8x16_t ve = vandq_u8(v, vdupq_n_u8(15)), vo = vshrq_n_u8(v, 4);
                if (NV) {
                    we[r] = vqtbl1q_s8(lut, ve);
                    wo[r] = vqtbl1q_s8(lut, vo);
                } else if (LM) {
                    const int8x16_t zv = w4s_zeros(q, j + r, e);
                    we[r] = vsubq_s8(vreinterpretq_s8_u8(ve), zv);
                    wo[r] = vsubq_s8(vreinterpretq_s8_u8(vo), zv);
                } else {
                    we[r] = vreinterpretq_s8_u8(ve);
                    wo[r] = vreinterpretq_s8_u8(vo);
                }
            }
            for (int t = 0; t < T; t++)
                for (int r = 0; r < R; r++)
                    q4_block(LM, &hi[t * R + r], &lo[t * R + r], we[r], wo[r], xl + t * g->ldb + e * 2);
        }
        const int64_t c = s * g->L / 128, gi = s * g->L / q->g;
        for (int r = 0; r < R; r++) {
            float32x4_t sv;
            int32_t z = 0;
            if (NV) { /* blocks gi (lanes 0, 1) and gi + 1 (lanes 2, 3) */
                const uint8_t *bs = q->sc + (j + r) * q->G + gi;
                sv = nv_scales(bs[0], gi + 1 < q->G ? bs[1] : 0);
            } else if (LM) {
                sv = w4s_scales(q, j + r, s * 32);
            } else {
                uint16_t s16;
                memcpy(&s16, q->sc + ((j + r) * q->G + gi) * 2, 2);
                sv = vdupq_n_f32(el_f16_to_f32(s16));
                z = q->zs ? q->zs[(j + r) * q->G + gi] : 8;
            }
            for (int t = 0; t < T; t++) {
                int32x4_t is = vaddq_s32(vshlq_n_s32(hi[t * R + r], 8), lo[t * R + r]);
                if (!LM) is = vsubq_s32(is, vsetq_lane_s32(z * nn[t * g->nseg + s], vdupq_n_s32(0), 0));
                facc[t * R + r] =
                    vfmaq_f32(facc[t * R + r], vcvtq_f32_s32(is), vmulq_n_f32(sv, dd[t * q->nch + c]));
            }
        }
    }
    /* nvfp4: the lane scales were e4m3 / 256 and the weights 2 x e2m1 */
    const float gs = NV ? q->gscale * 128.0f : 1.0f;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            const float v = vaddvq_f32(facc[t * R + r]) * post[t] * gs;
            y[(t0 + t) * ldy + j + r] = bias ? v + bias[j + r] : v;
        }
}

/* fp8: R rows of W from j, T tokens from t0; e4m3 -> f16 bits (value / 256) -> f32, FMA with x in f32 */
QN_AI void f8_tile(const int R, const int T, const el_qf_info *q, const uint8_t *prep, int64_t t0, int64_t j,
                   const float *bias, float *y, int64_t ldy) {
    const float *xp = (const float *)(const void *)prep + t0 * q->kx;
    const float *sw = (const float *)(const void *)q->sc;
    const uint16x8_t keep = vdupq_n_u16(0xbfff);
    float32x4_t acc[8];
    for (int i = 0; i < R * T; i++)
        acc[i] = vdupq_n_f32(0.0f);
    for (int64_t c = 0; c < q->k; c += 16) {
        float32x4_t wf[4][4];
        for (int r = 0; r < R; r++) {
            const int8_t *p = (const int8_t *)q->qs + (j + r) * q->k + c;
            int8_t tmp[16] = {0};
            if (c + 16 > q->k) { /* the row tail through a zero-padded copy (x is zero past k) */
                memcpy(tmp, p, (size_t)(q->k - c));
                p = tmp;
            }
            const int8x16_t b = vld1q_s8(p);
            const uint16x8_t l16 = vreinterpretq_u16_s16(vshll_n_s8(vget_low_s8(b), 7)),
                             h16 = vreinterpretq_u16_s16(vshll_high_n_s8(b, 7));
            const float16x8_t lo = vreinterpretq_f16_u16(vandq_u16(l16, keep)),
                              hi = vreinterpretq_f16_u16(vandq_u16(h16, keep));
            wf[r][0] = vcvt_f32_f16(vget_low_f16(lo));
            wf[r][1] = vcvt_high_f32_f16(lo);
            wf[r][2] = vcvt_f32_f16(vget_low_f16(hi));
            wf[r][3] = vcvt_high_f32_f16(hi);
        }
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++) {
                const float32x4_t xv = vld1q_f32(xp + t * q->kx + c + 4 * i);
                for (int r = 0; r < R; r++)
                    acc[t * R + r] = vfmaq_f32(acc[t * R + r], wf[r][i], xv);
            }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            const float v = (vaddvq_f32(acc[t * R + r]) * 256.0f) * (sw[j + r] * q->post);
            y[(t0 + t) * ldy + j + r] = bias ? v + bias[j + r] : v;
        }
}

QN_AI void qn_tile(const int F, const int R, const int T, const el_qf_info *q, const qn_geo *g,
                   const uint8_t *prep, int64_t t0, int64_t j, const float *bias, float *y, int64_t ldy) {
    if (F == EL_QF_FMT_FP8)
        f8_tile(R, T, q, prep, t0, j, bias, y, ldy);
    else
        q4_tile(F, R, T, q, g, prep, t0, j, bias, y, ldy);
}

/* R rows of W from j x tokens [tb, te) of format F, up to 4 tokens at a time */
QN_AI void qn_rows(const int F, const int R, const el_qf_info *q, const qn_geo *g, const uint8_t *prep,
                   int64_t tb, int64_t te, int64_t j, const float *bias, float *y, int64_t ldy) {
    int64_t t = tb;
    for (; t + 4 <= te; t += 4)
        qn_tile(F, R, 4, q, g, prep, t, j, bias, y, ldy);
    if (te - t == 3) qn_tile(F, R, 3, q, g, prep, t, j, bias, y, ldy);
    if (te - t == 2) qn_tile(F, R, 2, q, g, prep, t, j, bias, y, ldy);
    if (te - t == 1) qn_tile(F, R, 1, q, g, prep, t, j, bias, y, ldy);
}

/* rows [jb, je) x tokens [tb, te): 4 rows at a time for one token (decode), else 2 rows x up to 4 tokens */
QN_AI void qn_block(const int F, const el_qf_info *q, const qn_geo *g, const uint8_t *prep, int64_t tb,
                    int64_t te, int64_t jb, int64_t je, const float *bias, float *y, int64_t ldy) {
    int64_t j = jb;
    if (te - tb == 1)
        for (; j + 4 <= je; j += 4)
            qn_tile(F, 4, 1, q, g, prep, tb, j, bias, y, ldy);
    for (; j + 2 <= je; j += 2)
        qn_rows(F, 2, q, g, prep, tb, te, j, bias, y, ldy);
    if (j < je) qn_rows(F, 1, q, g, prep, tb, te, j, bias, y, ldy);
}

void QN_FN(el_qn_matmul)(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1,
                         const float *bias, float *y, int64_t ldy) {
    const qn_geo g = qn_geom(q, m);
    /* blocks of 64 rows x 16 tokens (W and x blocks of ~32 k / 64 k bytes stay in L2) */
    const int64_t RB = 64, TB = m <= 4 ? m : 16;
    for (int64_t jb = n0; jb < n1; jb += RB) {
        const int64_t je = jb + RB < n1 ? jb + RB : n1;
        for (int64_t tb = 0; tb < m; tb += TB) {
            const int64_t te = tb + TB < m ? tb + TB : m;
            if (q->fmt == EL_QF_FMT_W4 && q->g < 32)
                qn_block(QN_FMT_W4S, q, &g, prep, tb, te, jb, je, bias, y, ldy);
            else if (q->fmt == EL_QF_FMT_W4)
                qn_block(EL_QF_FMT_W4, q, &g, prep, tb, te, jb, je, bias, y, ldy);
            else if (q->fmt == EL_QF_FMT_NV4)
                qn_block(EL_QF_FMT_NV4, q, &g, prep, tb, te, jb, je, bias, y, ldy);
            else
                qn_block(EL_QF_FMT_FP8, q, &g, prep, tb, te, jb, je, bias, y, ldy);
        }
    }
}

#if !QN_DP
/* ---- activations (no dot products: compiled once, in qneon.c) ------------------------------------- */

/* max |x| over 4-aligned v (n % 4 == 0) and a scalar tail, fmaxf semantics (NaN ignored) */
static float qn_amax(const float *x, int64_t n) {
    float32x4_t mx = vdupq_n_f32(0.0f);
    const int64_t nv = n & ~(int64_t)3;
    for (int64_t c = 0; c < nv; c += 4)
        mx = vmaxnmq_f32(mx, vabsq_f32(vld1q_f32(x + c)));
    float a = vmaxnmvq_f32(mx);
    for (int64_t c = nv; c < n; c++)
        a = fmaxf(a, fabsf(x[c]));
    return a;
}

/* w8a8: xq = clamp(rne(x * inv), -127, 127) as the reference (f32 multiply, round to nearest even) */
static void w8a8_quantize_row(const el_qhdr *h, const float *xr, int64_t k, int8_t *q, float *sx, int32_t *xsum) {
    float inv;
    *sx = el_qi8_w8a8_scale(h, h->flags & EL_QF_STATIC_ACT ? 0.0f : qn_amax(xr, k), &inv);
    memset(q, 0, (size_t)el_qi8_kp(EL_DTYPE_Q_W8A8, k));
    int32x4_t sum = vdupq_n_s32(0);
    const int32x4_t lim = vdupq_n_s32(127);
    for (int64_t c = 0; c < k; c += 4) {
        float tmp[4] = {0};
        const float *p = xr + c;
        if (c + 4 > k) {
            memcpy(tmp, p, (size_t)(k - c) * 4);
            p = tmp;
        }
        int32x4_t v = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(p), inv));
        v = vmaxq_s32(vminq_s32(v, lim), vnegq_s32(lim));
        sum = vaddq_s32(sum, v);
        int8_t o[8];
        vst1_s8(o, vmovn_s16(vcombine_s16(vmovn_s32(v), vdup_n_s16(0))));
        memcpy(q + c, o, (size_t)(c + 4 > k ? k - c : 4));
    }
    *xsum = vaddvq_s32(sum);
}

/* ggml: per block of 32, d = amax / 127, q = roundf(x / d) (ties away: FCVTAS), scale f16(d) */
static void ggml_quantize_row(const float *x, int64_t k, int8_t *xq, float *dx, int32_t *xsum) {
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + b * 32;
        const float amax = qn_amax(xb, 32);
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        dx[b] = el_f16_to_f32(el_f32_to_f16(d));
        int32x4_t q[8], sum = vdupq_n_s32(0);
        for (int u = 0; u < 8; u++) {
            q[u] = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(xb + 4 * u), id));
            sum = vaddq_s32(sum, q[u]);
        }
        for (int u = 0; u < 8; u += 2)
            vst1_s8(xq + b * 32 + 4 * u, vmovn_s16(vcombine_s16(vmovn_s32(q[u]), vmovn_s32(q[u + 1]))));
        xsum[b] = vaddvq_s32(sum);
    }
}

void el_qi8_quantize_neon(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                          int64_t i1, void *act) {
    el_qi8_quantize_rows(w, wt, x, m, k, i0, i1, act, w8a8_quantize_row, ggml_quantize_row);
}

size_t el_qn_prep_size(const el_qf_info *q, int64_t m) {
    return qn_geom(q, m).size;
}

/* 16 int32 n (4 vectors) -> 16 int8 limbs x1 (hi) and x0 (lo) */
static inline void w4_limbs(const int32x4_t *n, int8_t *hi, int8_t *lo) {
    int32x4_t h[4], l[4];
    for (int u = 0; u < 4; u++) {
        h[u] = vshrq_n_s32(vaddq_s32(n[u], vdupq_n_s32(128)), 8);
        l[u] = vsubq_s32(n[u], vshlq_n_s32(h[u], 8));
    }
    vst1q_s8(hi, vcombine_s8(vmovn_s16(vcombine_s16(vmovn_s32(h[0]), vmovn_s32(h[1]))),
                             vmovn_s16(vcombine_s16(vmovn_s32(h[2]), vmovn_s32(h[3])))));
    vst1q_s8(lo, vcombine_s8(vmovn_s16(vcombine_s16(vmovn_s32(l[0]), vmovn_s32(l[1]))),
                             vmovn_s16(vcombine_s16(vmovn_s32(l[2]), vmovn_s32(l[3])))));
}

/* fp8: x, or the values of its e4m3 codes (static activations, as the reference), zero past k */
static void f8_prep(const el_qf_info *q, const float *x, int64_t i0, int64_t i1, float *xp) {
    for (int64_t i = i0; i < i1; i++) {
        const float *xr = x + i * q->k;
        float *o = xp + i * q->kx;
        for (int64_t c = 0; c < q->k; c++) {
            float v = xr[c];
            if (q->act) {
                v *= q->inv;
                v = el_e4m3_to_f32(el_f32_to_e4m3(v < -448.0f ? -448.0f : v > 448.0f ? 448.0f : v));
            }
            o[c] = v;
        }
        memset(o + q->k, 0, (size_t)(q->kx - q->k) * 4);
    }
}

void el_qn_prep_neon(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep) {
    if (q->fmt == EL_QF_FMT_FP8) {
        f8_prep(q, x, i0, i1, prep);
        return;
    }
    const qn_geo g = qn_geom(q, m);
    uint8_t *pb = prep;
    float tmp[128];
    for (int64_t i = i0; i < i1; i++) {
        int8_t *xl = (int8_t *)pb + i * g.ldb;
        float *dd = (float *)(pb + g.off_d) + i * q->nch;
        int32_t *nn = (int32_t *)(pb + g.off_n) + i * g.nseg;
        for (int64_t s = 0; s < g.nseg; s++)
            nn[s] = 0;
        const float ra = qn_amax(x + i * q->k, q->k), pre = ra > 0 && ra < 0x1p-40f ? 0x1p64f : 1.0f;
        ((float *)(pb + g.off_p))[i] = 1.0f / pre;
        for (int64_t c = 0; c < q->nch; c++) {
            const int64_t c0 = c * 128, len = q->k - c0 < 128 ? q->k - c0 : 128;
            const float *xc = x + i * q->k + c0;
            if (len < 128 ||
                pre != 1.0f) { /* the last chunks (past k when g > 128) zero-padded, tiny rows scaled */
                for (int64_t e = 0; e < 128; e++)
                    tmp[e] = e < len ? xc[e] * pre : 0.0f;
                xc = tmp;
            }
            const float amax = qn_amax(xc, 128);
            const float inv = amax > 0 ? 32639.0f / amax : 0.0f;
            dd[c] = amax / 32639.0f;
            const int32x4_t lim = vdupq_n_s32(32639);
            for (int b = 0; b < 4; b++) {
                int32x4_t ne[4], no[4], sum = vdupq_n_s32(0);
                for (int u = 0; u < 4; u++) { /* elements 8 u + 2 i (even) and 8 u + 2 i + 1 (odd) */
                    const float32x4x2_t v = vld2q_f32(xc + b * 32 + 8 * u);
                    ne[u] = vcvtnq_s32_f32(vmulq_n_f32(v.val[0], inv));
                    no[u] = vcvtnq_s32_f32(vmulq_n_f32(v.val[1], inv));
                    ne[u] = vmaxq_s32(vminq_s32(ne[u], lim), vnegq_s32(lim));
                    no[u] = vmaxq_s32(vminq_s32(no[u], lim), vnegq_s32(lim));
                    sum = vaddq_s32(sum, vaddq_s32(ne[u], no[u]));
                }
                int8_t *xb = xl + c * 256 + b * 64;
                w4_limbs(ne, xb, xb + 32);
                w4_limbs(no, xb + 16, xb + 48);
                const int64_t s = (c0 + b * 32) / g.L;
                if (s < g.nseg) nn[s] += vaddvq_s32(sum);
            }
        }
    }
}
#endif
