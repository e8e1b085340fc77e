/* qint8_avx2.c - the AVX2 path of the int8-activation matmuls (w8a8, q8_0, q4_0) for CPUs without AVX-512
 * VNNI, bit-exact with el_ref_qmatmul.
 *
 * vpmaddubsw multiplies u8 by s8 into int16 pairs that saturate, so for signed weights the sign goes to the
 * activation: |w| (0..128 as u8) times sign(x, w) (x in -127..127, never -128) gives pair sums of at most
 * 2 * 128 * 127 = 32512 < 32767: no saturation, exact. q4_0 nibbles q = w + 8 are u8 already (pairs
 * <= 2 * 15 * 127) and the kernel subtracts 8 * (block sum of x). vpmaddwd with ones widens to int32.
 * With AVX-VNNI (cpuid 7.1; EDGELLM_CPU_AVXVNNI=0 turns it off) vpdpbusd does both steps without
 * saturation, on w + 128 for the signed weights (minus 128 * the sum of x, which comes with x).
 * w8a8: register tiles of R <= 4 rows of W x T <= 2 rows of x along k, one horizontal sum per output; the
 *   next 4 rows are prefetched as one contiguous stretch.
 * q8_0 / q4_0: the reference sums each output block by block in f32 (acc += isum_b * (d_w * d_x)), so the
 *   kernel keeps 8 rows of W in the 8 lanes of a vector and accumulates in f32 in the reference's order.
 *   Decode (m = 1) reads the weights as they are: per block the 8 rows' int32 partial sums are reduced
 *   together by one hadd tree into the 8 exact block sums; the next tile (8 contiguous rows) is prefetched
 *   while this one runs (the hardware prefetchers do not follow 8 interleaved row streams: 2-3x slower).
 *   Prefill (m >= 2) transposes each 8-row tile once into scratch (per block the 8 f32 scales and 8 vectors
 *   of 8 rows x 4 bytes), so that a broadcast 4-byte group of x gives 8 row sums with no reduction, for
 *   all m tokens (4 at a time) over the tile in L1/L2.
 * The w8a8 activations are quantized by a plain C loop with the reference's operations (fmaxf, nearbyintf);
 * the ggml ones (d = amax / 127, q = roundf(x / d)) with AVX2 as qint8_avx512.c does. */
#include "kernels/cpu/qint8.h"

#if defined(__x86_64__)
#include "kernels/cpu/avx2_util.h"

#include <math.h>
#include <string.h>

/* ---- w8a8 ------------------------------------------------------------------------------------------- */

static void w8a8_quantize_row(const el_qhdr *h, const float *x, int64_t k, int8_t *q, float *sx, int32_t *xsum) {
    float amax = 0, inv;
    if (!(h->flags & EL_QF_STATIC_ACT))
        for (int64_t c = 0; c < k; c++)
            amax = fmaxf(amax, fabsf(x[c]));
    *sx = el_qi8_w8a8_scale(h, amax, &inv);
    int32_t sum = 0;
    for (int64_t c = 0; c < k; c++) {
        float v = nearbyintf(x[c] * inv);
        v = v < -127.0f ? -127.0f : v > 127.0f ? 127.0f : v;
        q[c] = (int8_t)v;
        sum += q[c];
    }
    memset(q + k, 0, (size_t)(el_qi8_kp(EL_DTYPE_Q_W8A8, k) - k));
    *xsum = sum;
}

/* the weight operand of a row, once per row for all tokens: |w| (sign trick) or, with AVX-VNNI, w + 128 */
static inline __attribute__((always_inline)) __m256i wop(const int VN, __m256i wv) {
    return VN ? _mm256_xor_si256(wv, _mm256_set1_epi8((char)0x80)) : _mm256_abs_epi8(wv);
}

/* acc += the 32 products of w (wv, its operand aw) and x: vpmaddubsw on |w| x sign(x, w), or vpdpbusd on
 * (w + 128) x x (the caller subtracts 128 * sum(x)) */
static inline __attribute__((always_inline)) __m256i dot32(const int VN, __m256i acc, __m256i aw, __m256i wv,
                                                           __m256i x) {
    if (VN) return el_avx2_dpbusd(acc, aw, x);
    const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, wv));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* out[t * R + r] = sum_c W[r, c] * xq[t, c], R <= 4 rows, T <= 2 tokens (xs: the tokens' sums of xq) */
static inline __attribute__((always_inline)) void tile(const int VN, const int R, const int T, const int8_t *w,
                                                       int64_t k, const int8_t *x, int64_t kp, const int32_t *xs,
                                                       int32_t *out) {
    __m256i acc[8];
    for (int i = 0; i < 8; i++)
        acc[i] = _mm256_setzero_si256();
    const int64_t kv = k & ~(int64_t)31;
    for (int64_t c = 0; c < kv; c += 32) {
        __m256i xv[2];
        for (int t = 0; t < T; t++)
            xv[t] = _mm256_load_si256((const __m256i *)(x + t * kp + c));
        if (R == 4) /* the next tile (rows 4..7: 4 k contiguous bytes), 128 bytes of it per step */
            for (int o = 0; o < 128; o += 64)
                _mm_prefetch((const char *)(w + 4 * k + 4 * c + o), _MM_HINT_T0);
        for (int r = 0; r < R; r++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + r * k + c)), aw = wop(VN, wv);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = dot32(VN, acc[t * R + r], aw, wv, xv[t]);
        }
    }
    if (kv < k) { /* the row tail through a zero-padded copy (x is zero past k) */
        __m256i xv[2];
        for (int t = 0; t < T; t++)
            xv[t] = _mm256_load_si256((const __m256i *)(x + t * kp + kv));
        for (int r = 0; r < R; r++) {
            int8_t tmp[32] = {0};
            memcpy(tmp, w + r * k + kv, (size_t)(k - kv));
            const __m256i wv = _mm256_loadu_si256((const __m256i *)tmp), aw = wop(VN, wv);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = dot32(VN, acc[t * R + r], aw, wv, xv[t]);
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) { /* exact int32 (wrap-around) */
            const uint32_t off = VN ? 128u * (uint32_t)xs[t] : 0u;
            out[t * R + r] = (int32_t)((uint32_t)el_avx2_hsum_epi32(acc[t * R + r]) - off);
        }
}

static void tile_rt(const int VN, int R, int T, const int8_t *wr, int64_t k, const int8_t *xr, int64_t kp,
                    const int32_t *xs, int32_t *isum) {
    if (R == 4 && T == 2)
        tile(VN, 4, 2, wr, k, xr, kp, xs, isum);
    else if (R == 4)
        tile(VN, 4, 1, wr, k, xr, kp, xs, isum);
    else if (T == 2)
        tile(VN, 1, 2, wr, k, xr, kp, xs, isum);
    else
        tile(VN, 1, 1, wr, k, xr, kp, xs, isum);
}

/* the tile of el_qi8_w8a8_matmul (T <= 2): with AVX-VNNI or without */
static void tile_vn(int R, int T, const int8_t *wr, int64_t k, const int8_t *xr, int64_t kp, const int32_t *xs,
                    int32_t *isum) {
    tile_rt(1, R, T, wr, k, xr, kp, xs, isum);
}
static void tile_sign(int R, int T, const int8_t *wr, int64_t k, const int8_t *xr, int64_t kp, const int32_t *xs,
                      int32_t *isum) {
    tile_rt(0, R, T, wr, k, xr, kp, xs, isum);
}

/* ---- q8_0 / q4_0 ------------------------------------------------------------------------------------ */

/* roundf (half away from zero) of v, for |v| < 2^23 */
static inline __m256 round_away(__m256 v) {
    const __m256 a = el_avx2_abs_ps(v);
    __m256 r = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, r), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    r = _mm256_add_ps(r, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
    return _mm256_or_ps(r, _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
}

/* x (k, a multiple of 32) -> q8_0 blocks as ggml: d = amax / 127, q = roundf(x / d), scale f16(d). */
static void quant_ggml(const float *x, int64_t k, int8_t *xq, float *dx, int32_t *xsum) {
    for (int64_t b = 0; b < k / 32; b++) {
        __m256 v[4];
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
            mx = _mm256_max_ps(mx, el_avx2_abs_ps(v[i]));
        }
        const float amax = el_avx2_hmax_ps(mx);
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        dx[b] = el_f16_to_f32(el_f32_to_f16(d));
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++)
            q[i] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[i], vid)));
        xsum[b] = el_avx2_hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(xq + 32 * b),
                            _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

static inline int ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* the int32 partial sums (8 lanes) of one block of one row of W against one block of x; with AVX-VNNI
 * (vpdpbusd) q8_0 gives the sums of (w + 128) x (the caller subtracts 128 * the block sum of x) */
static inline __attribute__((always_inline)) __m256i ggml_dot(const int VN, const int Q8, const uint8_t *blk,
                                                              __m256i xv) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (Q8) {
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 2));
        if (VN) return el_avx2_dpbusd(_mm256_setzero_si256(), _mm256_xor_si256(wv, _mm256_set1_epi8((char)0x80)), xv);
        return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv)), ones);
    }
    const __m128i b = _mm_loadu_si128((const __m128i *)(blk + 2)); /* elements i (low nibble), i + 16 (high) */
    const __m256i wv = _mm256_and_si256(
        _mm256_inserti128_si256(_mm256_castsi128_si256(b), _mm_srli_epi16(b, 4), 1), _mm256_set1_epi8(0x0f));
    if (VN) return el_avx2_dpbusd(_mm256_setzero_si256(), wv, xv);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
}

/* the f16 scales of block p of 8 rows (stride rb) as f32 (constant lane indices: an insert with a loop
 * index would need -O2 to compile) */
static inline __m256 dw8(const uint8_t *p, int64_t rb) {
    return _mm256_cvtph_ps(_mm_setr_epi16((short)ld16(p), (short)ld16(p + rb), (short)ld16(p + 2 * rb),
                                          (short)ld16(p + 3 * rb), (short)ld16(p + 4 * rb), (short)ld16(p + 5 * rb),
                                          (short)ld16(p + 6 * rb), (short)ld16(p + 7 * rb)));
}

/* facc += the block's exact sums (offset-corrected: 8 * sum x for q4_0, 128 * sum x for q8_0 on AVX-VNNI)
 * times d_w * d_x, in the reference's f32 order (no FMA) */
static inline __attribute__((always_inline)) __m256 acc_block(const int Q8, const int VN, __m256 facc, __m256i isum,
                                                              __m256 dw, int32_t xsum, float dx) {
    if (!Q8 || VN) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32((Q8 ? 128 : 8) * xsum));
    return _mm256_add_ps(facc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(dx))));
}

/* y[j0 + r] = the 8 lanes of v (+ bias) for r < nr */
static inline void store_rows(__m256 v, int nr, const float *bias, int64_t j0, float *y) {
    float o[8];
    _mm256_storeu_ps(o, v);
    for (int r = 0; r < nr; r++)
        y[j0 + r] = bias ? o[r] + bias[j0 + r] : o[r];
}

/* decode (m = 1): 8 rows of W (row stride rb) straight from the weights, the next 8 rows prefetched */
static inline __attribute__((always_inline)) void ggml_decode(const int VN, const int Q8, const uint8_t *w,
                                                              int64_t rb, int64_t nb, const float *dx,
                                                              const int32_t *xs, const int8_t *xq, int64_t j0,
                                                              int nr, const float *bias, float *y) {
    const int64_t bb = Q8 ? 34 : 18;
    __m256 facc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = w + b * bb;
        /* the next tile (8 rows = 8 rb contiguous bytes), 8 bb bytes of it per block */
        for (int64_t o = 0; o < 8 * bb; o += 64)
            _mm_prefetch((const char *)(w + 8 * rb + b * 8 * bb + o), _MM_HINT_T0);
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
        __m256i v[8];
        for (int r = 0; r < 8; r++)
            v[r] = ggml_dot(VN, Q8, p + r * rb, xv);
        facc = acc_block(Q8, VN, facc, el_avx2_hsum8x8_epi32(v), dw8(p, rb), xs[b], dx[b]);
    }
    store_rows(facc, nr, bias, j0, y);
}

/* Prefill (m >= 2): each 8-row tile is transposed once into scratch, per block: the 8 rows' f32 scales,
 * then per 4-byte group q of the block the 8 rows' 4 bytes side by side (q4_0: the nibbles as u8; q8_0:
 * w + 128 with AVX-VNNI, else |w| and then w for the sign), so that one broadcast 4-byte group of x gives
 * the 8 rows' partial sums with no horizontal reduction (as the AVX-512 kernel's 16-row tiles). */
static int64_t pk_block_bytes(int Q8, int VN) {
    return 32 + 32 * (Q8 && !VN ? 16 : 8);
}


static inline __attribute__((always_inline)) void pk_tile(const int Q8, const int VN, const uint8_t *w,
                                                          int64_t rb, int64_t nb, uint8_t *dst) {
    const int64_t bb = Q8 ? 34 : 18, pb = pk_block_bytes(Q8, VN);
    for (int64_t b = 0; b < nb; b++, dst += pb) {
        const uint8_t *p = w + b * bb;
        __m256i rows[8], o[8];
        for (int r = 0; r < 8; r++) {
            if (Q8) {
                rows[r] = _mm256_loadu_si256((const __m256i *)(p + r * rb + 2));
            } else {
                const __m128i v = _mm_loadu_si128((const __m128i *)(p + r * rb + 2));
                rows[r] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1),
                                           _mm256_set1_epi8(0x0f));
            }
        }
        el_avx2_transpose8x8(rows, o);
        _mm256_store_ps((float *)(void *)dst, dw8(p, rb));
        __m256i *ov = (__m256i *)(void *)(dst + 32);
        for (int q = 0; q < 8; q++) {
            if (!Q8)
                _mm256_store_si256(ov + q, o[q]);
            else if (VN)
                _mm256_store_si256(ov + q, _mm256_xor_si256(o[q], _mm256_set1_epi8((char)0x80)));
            else {
                _mm256_store_si256(ov + q, _mm256_abs_epi8(o[q]));
                _mm256_store_si256(ov + 8 + q, o[q]);
            }
        }
    }
}

/* T tokens from t0 over a packed tile: y[t, j0 + r] for r < nr */
static inline __attribute__((always_inline)) void pk_tokens(const int Q8, const int VN, const int T,
                                                            const uint8_t *tile, int64_t nb, const float *dx,
                                                            const int32_t *xs, const int8_t *xq, int64_t k,
                                                            int64_t t0, int64_t j0, int nr, const float *bias,
                                                            float *y, int64_t ldy) {
    const int64_t pb = pk_block_bytes(Q8, VN);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 facc[4];
    for (int t = 0; t < T; t++)
        facc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *tb = tile + b * pb;
        const __m256i *wv = (const __m256i *)(const void *)(tb + 32);
        const __m256 dw = _mm256_load_ps((const float *)(const void *)tb);
        for (int t = 0; t < T; t++) {
            const int8_t *xb = xq + (t0 + t) * k + b * 32;
            __m256i isum = _mm256_setzero_si256(), s16 = _mm256_setzero_si256();
            for (int q = 0; q < 8; q++) {
                int32_t x4;
                memcpy(&x4, xb + 4 * q, 4);
                const __m256i xv = _mm256_set1_epi32(x4);
                if (VN)
                    isum = el_avx2_dpbusd(isum, _mm256_load_si256(wv + q), xv);
                else if (!Q8) /* int16 sums of 8 groups: <= 8 * 2 * 15 * 127 < 2^15 */
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_load_si256(wv + q), xv));
                else { /* |w| x sign(x, w) */
                    const __m256i sx = _mm256_sign_epi8(xv, _mm256_load_si256(wv + 8 + q));
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_load_si256(wv + q), sx),
                                                                    ones));
                }
            }
            if (!VN && !Q8) isum = _mm256_madd_epi16(s16, ones);
            facc[t] = acc_block(Q8, VN, facc[t], isum, dw, xs[(t0 + t) * nb + b], dx[(t0 + t) * nb + b]);
        }
    }
    for (int t = 0; t < T; t++)
        store_rows(facc[t], nr, bias, j0, y + (t0 + t) * ldy);
}

static inline __attribute__((always_inline)) void pk_run(const int Q8, const int VN, const uint8_t *src, int64_t rb,
                                                         int64_t nb, uint8_t *tile, const float *dx,
                                                         const int32_t *xs, const int8_t *xq, int64_t k, int64_t m,
                                                         int64_t j0, int nr, const float *bias, float *y,
                                                         int64_t ldy) {
    pk_tile(Q8, VN, src, rb, nb, tile);
    int64_t t = 0;
    for (; t + 4 <= m; t += 4)
        pk_tokens(Q8, VN, 4, tile, nb, dx, xs, xq, k, t, j0, nr, bias, y, ldy);
    if (t + 2 <= m) {
        pk_tokens(Q8, VN, 2, tile, nb, dx, xs, xq, k, t, j0, nr, bias, y, ldy);
        t += 2;
    }
    if (t < m) pk_tokens(Q8, VN, 1, tile, nb, dx, xs, xq, k, t, j0, nr, bias, y, ldy);
}

static void ggml_matmul(el_dtype wt, const uint8_t *act, int64_t m, int64_t k, const void *w, int64_t n0,
                        int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    const int Q8 = wt == EL_DTYPE_Q8_0;
    const int64_t nb = k / 32, rb = nb * (Q8 ? 34 : 18);
    const el_qi8_ggml_act xa = el_qi8_ggml_of(act, wt, m, k);
    const bool vn = el_avx2_vnni();
    /* scratch (edgellm_cpu_qmm_i8_scratch): the packed tile (prefill), then a zero-padded last tile */
    uint8_t *tile = (uint8_t *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);
    uint8_t *part = tile + nb * pk_block_bytes(Q8, vn);
    for (int64_t j = n0; j < n1; j += 8) {
        const int nr = n1 - j < 8 ? (int)(n1 - j) : 8;
        const uint8_t *src = el_qi8_ggml_tile_src(w, j, nr, 8, rb, part);
        if (m >= 2) {
            if (vn && Q8)
                pk_run(1, 1, src, rb, nb, tile, xa.dx, xa.xsum, xa.xq, k, m, j, nr, bias, y, ldy);
            else if (vn)
                pk_run(0, 1, src, rb, nb, tile, xa.dx, xa.xsum, xa.xq, k, m, j, nr, bias, y, ldy);
            else if (Q8)
                pk_run(1, 0, src, rb, nb, tile, xa.dx, xa.xsum, xa.xq, k, m, j, nr, bias, y, ldy);
            else
                pk_run(0, 0, src, rb, nb, tile, xa.dx, xa.xsum, xa.xq, k, m, j, nr, bias, y, ldy);
        } else if (vn && Q8)
            ggml_decode(1, 1, src, rb, nb, xa.dx, xa.xsum, xa.xq, j, nr, bias, y);
        else if (vn)
            ggml_decode(1, 0, src, rb, nb, xa.dx, xa.xsum, xa.xq, j, nr, bias, y);
        else if (Q8)
            ggml_decode(0, 1, src, rb, nb, xa.dx, xa.xsum, xa.xq, j, nr, bias, y);
        else
            ggml_decode(0, 0, src, rb, nb, xa.dx, xa.xsum, xa.xq, j, nr, bias, y);
    }
}

/* ---- entry points ------------------------------------------------------------------------------------ */

void el_qi8_quantize_avx2(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                          int64_t i1, void *act) {
    el_qi8_quantize_rows(w, wt, x, m, k, i0, i1, act, w8a8_quantize_row, quant_ggml);
}

void el_qi8_matmul_avx2(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    (void)n;
    if (wt == EL_DTYPE_Q_W8A8)
        el_qi8_w8a8_matmul(act, m, k, w, n0, n1, bias, y, ldy, 2, el_avx2_vnni() ? tile_vn : tile_sign);
    else
        ggml_matmul(wt, act, m, k, w, n0, n1, bias, y, ldy, scratch);
}

#endif
