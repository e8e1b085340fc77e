/* qint8_avx512.c - AVX-512 VNNI kernels of the int8-activation quantized matmuls (w8a8, q8_0, q4_0),
 * bit-exact with el_ref_qmatmul (kernels/ref/quant_ref.c): the same activation quantization and exact
 * int32 dot products; for the ggml formats also the same f32 accumulation order over blocks.
 *
 * vpdpbusd multiplies u8 by s8: the weights are made unsigned (w8a8 / q8_0: w + 128 by flipping the
 * sign bit; q4_0: the stored nibble q = w + 8) and the activations stay signed, so
 *   sum_c (w + B) x = isum + B * sum_c x      and the per-row / per-block sum of x comes with x.
 *
 * w8a8: weights in their stored row layout. Decode (m = 1): 16 rows at a time, each row read front to
 *   back into its own accumulator (a single sequential stream that the hardware prefetcher follows), the
 *   16 sums reduced together by one transpose-add tree. Batches: a register tile of R rows of W x T rows
 *   of x keeps R*T int32 accumulators along k (one W load per T tokens, one x load per R rows); prefill
 *   walks blocks of 64 rows x 64 tokens so that both stay in L2.
 * q8_0 / q4_0: the reference sums each output row block by block in f32 (acc += isum_b * (d_w * d_x)),
 *   so the kernel keeps 16 rows of W in the 16 lanes of a vector: a tile of 16 rows is transposed once
 *   into per-thread scratch as, per block, the 16 f32 scales and 8 vectors of (16 rows x 4 bytes), in
 *   which a broadcast 4-byte group of x makes one vpdpbusd produce 16 row sums. All m tokens then run
 *   over the tile in L1/L2 (6 tokens at a time). */
#include "kernels/cpu/qint8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* ---- helpers ------------------------------------------------------------------------------------ */

/* acc += u8 a x s8 b (vpdpbusd) in place: through the intrinsic GCC 12 copies every accumulator of a
 * register tile to a fresh register and back on each step (measured 2x slower prefill) */
AI __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "vm"(b));
    return acc;
}

/* r[i] = sum of the 16 lanes of a[i] (exact, int32 wrap-around) */
AI __m512i hsum16(const __m512i *a) {
#define PS(v) _mm512_castsi512_ps(v)
#define SI(v) _mm512_castps_si512(v)
    __m512i u[4];
    for (int i = 0; i < 4; i++) {
        __m512i p0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[4 * i], a[4 * i + 1]),
                                      _mm512_unpackhi_epi32(a[4 * i], a[4 * i + 1]));
        __m512i p1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[4 * i + 2], a[4 * i + 3]),
                                      _mm512_unpackhi_epi32(a[4 * i + 2], a[4 * i + 3]));
        u[i] = _mm512_add_epi32(SI(_mm512_shuffle_ps(PS(p0), PS(p1), _MM_SHUFFLE(1, 0, 1, 0))),
                                SI(_mm512_shuffle_ps(PS(p0), PS(p1), _MM_SHUFFLE(3, 2, 3, 2))));
    }
    __m512i v0 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512i v1 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)));
#undef PS
#undef SI
}

/* roundf (half away from zero) of v, for |v| < 2^23 */
AI __m512 round_away(__m512 v) {
    const __m512 a = _mm512_abs_ps(v);
    __m512 r = _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(a, r), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    r = _mm512_mask_add_ps(r, up, r, _mm512_set1_ps(1.0f));
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(r), _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN))));
}

/* ---- activation quantization ------------------------------------------------------------------------ */

static float amax512(const float *x, int64_t k) {
    __m512 mx = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= k; c += 16)
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + c)));
    if (c < k)
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (k - c)) - 1), x + c)));
    return _mm512_reduce_max_ps(mx);
}

static void quant_w8a8(const el_qhdr *h, const float *x, int64_t k, int8_t *xq, float *sx, int32_t *xsum) {
    float inv;
    const float s = el_qi8_w8a8_scale(h, h->flags & EL_QF_STATIC_ACT ? 0.0f : amax512(x, k), &inv);
    const __m512 vi = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    __m512i sum = _mm512_setzero_si512();
    const int64_t kp = (int64_t)el_qi8_pad64((size_t)k);
    for (int64_t c = 0; c < kp; c += 16) {
        const __mmask16 mk = c + 16 <= k ? (__mmask16)0xffff : c < k ? (__mmask16)((1u << (k - c)) - 1) : 0;
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + c), vi);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        const __m512i q = _mm512_maskz_cvtps_epi32(mk, v);
        sum = _mm512_add_epi32(sum, q);
        _mm_storeu_si128((__m128i *)(xq + c), _mm512_cvtepi32_epi8(q));
    }
    *sx = s;
    *xsum = _mm512_reduce_add_epi32(sum);
}

/* x (k, a multiple of 32) -> q8_0 blocks as ggml: d = amax / 127, q = roundf(x / d), scale f16(d). */
static void quant_ggml(const float *x, int64_t k, int8_t *xq, float *dx, int32_t *xsum) {
    for (int64_t b = 0; b < k / 32; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        dx[b] = el_f16_to_f32(el_f32_to_f16(d));
        const __m512 vid = _mm512_set1_ps(id);
        const __m512i q0 = _mm512_cvtps_epi32(round_away(_mm512_mul_ps(v0, vid)));
        const __m512i q1 = _mm512_cvtps_epi32(round_away(_mm512_mul_ps(v1, vid)));
        xsum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        _mm_storeu_si128((__m128i *)(xq + 32 * b), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(xq + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
    }
}

void el_qi8_quantize_avx512(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                            int64_t i1, void *act) {
    el_qi8_quantize_rows(w, wt, x, m, k, i0, i1, act, quant_w8a8, quant_ggml);
}

/* ---- w8a8 ------------------------------------------------------------------------------------------- */

/* out[t * R + r] = sum_c (W[r, c] + 128) * xq[t, c] for R rows of W (stride k) and T rows of x (stride kp).
 */
AI void w8_tile(const int R, const int T, const int8_t *w, int64_t k, const int8_t *x, int64_t kp,
                int32_t *out, const int PF) {
    __m512i acc[32];
    for (int i = 0; i < 32; i++)
        acc[i] = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const int64_t kv = k & ~(int64_t)63;
    for (int64_t c = 0; c < kv; c += 64) {
        __m512i xv[6];
        for (int t = 0; t < T; t++)
            xv[t] = _mm512_load_si512((const void *)(x + t * kp + c));
        for (int r = 0; r < R; r++) {
            if (PF) _mm_prefetch((const char *)(w + (r + R) * k + c), _MM_HINT_T0);
            const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512((const void *)(w + r * k + c)), flip);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = dpbusd(acc[t * R + r], wv, xv[t]);
        }
    }
    if (kv < k) {
        const __mmask64 mk = ((__mmask64)1 << (k - kv)) - 1;
        __m512i xv[6];
        for (int t = 0; t < T; t++)
            xv[t] = _mm512_load_si512((const void *)(x + t * kp + kv));
        for (int r = 0; r < R; r++) {
            const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mk, w + r * k + kv), flip);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = dpbusd(acc[t * R + r], wv, xv[t]);
        }
    }
    _mm512_storeu_si512((void *)out, hsum16(acc));
    if (R * T > 16) _mm512_storeu_si512((void *)(out + 16), hsum16(acc + 16));
}

/* decode: out[r] = sum_c (W[r, c] + 128) * x[c] for R <= 16 rows, each row read front to back (one
 * sequential stream through the R * k bytes, which the hardware prefetcher follows) */
static void w8_rows(int R, const int8_t *w, int64_t k, const int8_t *x, int32_t *out) {
    __m512i acc[16];
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const int64_t kv = k & ~(int64_t)127;
    const __mmask64 m1 = k - kv >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (k - kv)) - 1;
    const __mmask64 m2 = k - kv > 64 ? ((__mmask64)1 << (k - kv - 64)) - 1 : 0;
    for (int r = 0; r < 16; r++) {
        if (r >= R) {
            acc[r] = _mm512_setzero_si512();
            continue;
        }
        const int8_t *wr = w + r * k;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
        for (int64_t c = 0; c < kv; c += 128) {
            a0 = dpbusd(a0, _mm512_xor_si512(_mm512_loadu_si512((const void *)(wr + c)), flip),
                        _mm512_load_si512((const void *)(x + c)));
            a1 = dpbusd(a1, _mm512_xor_si512(_mm512_loadu_si512((const void *)(wr + c + 64)), flip),
                        _mm512_load_si512((const void *)(x + c + 64)));
        }
        if (kv < k) {
            a0 = dpbusd(a0, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m1, wr + kv), flip),
                        _mm512_load_si512((const void *)(x + kv)));
            if (m2)
                a1 = dpbusd(a1, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m2, wr + kv + 64), flip),
                            _mm512_load_si512((const void *)(x + kv + 64)));
        }
        acc[r] = _mm512_add_epi32(a0, a1);
    }
    _mm512_storeu_si512((void *)out, hsum16(acc));
}

static void w8_epilogue(int R, int T, const int32_t *isum, int64_t j, int64_t t0, const float *sw,
                        const float *sx, const int32_t *xsum, const float *bias, float *y, int64_t ldy) {
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            const int32_t s = (int32_t)((uint32_t)isum[t * R + r] - 128u * (uint32_t)xsum[t0 + t]);
            const float v = ((float)s * sw[j + r]) * sx[t0 + t];
            y[(t0 + t) * ldy + j + r] = bias ? v + bias[j + r] : v;
        }
}

#define W8_CASE(R, T, PF)                                                                                    \
    case R * 32 + T:                                                                                         \
        w8_tile(R, T, qs + j * k, k, xq + t0 * kp, kp, isum, PF);                                            \
        break;

static void w8_run(int R, int T, const int8_t *qs, int64_t k, const int8_t *xq, int64_t kp, int64_t j,
                   int64_t t0, int32_t *isum) {
    switch (R * 32 + T) {
        W8_CASE(16, 1, 1)
        W8_CASE(8, 1, 1)
        W8_CASE(4, 1, 1)
        W8_CASE(2, 1, 1)
        W8_CASE(1, 1, 1)
        W8_CASE(8, 2, 1)
        W8_CASE(4, 2, 1)
        W8_CASE(2, 2, 1)
        W8_CASE(1, 2, 1)
        W8_CASE(4, 6, 0)
        W8_CASE(2, 6, 0)
        W8_CASE(1, 6, 0)
        W8_CASE(4, 4, 0)
        W8_CASE(2, 4, 0)
        W8_CASE(1, 4, 0)
    default:
        break;
    }
}

/* the epilogue of 4 rows x nt <= 4 tokens in one vector: lane t * 4 + r is y[t0 + t, j + r] */
static void w8_epilogue4(int nt, const int32_t *isum, int64_t j, int64_t t0, const float *sw, const float *sx,
                         const int32_t *xsum, const float *bias, float *y, int64_t ldy) {
    const __m512i tl = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __mmask8 mt = (__mmask8)((1u << nt) - 1);
    const __m512i xs =
        _mm512_permutexvar_epi32(tl, _mm512_castsi128_si512(_mm_maskz_loadu_epi32(mt, xsum + t0)));
    const __m512 vsx = _mm512_permutexvar_ps(tl, _mm512_castps128_ps512(_mm_maskz_loadu_ps(mt, sx + t0)));
    const __m512i s = _mm512_sub_epi32(_mm512_loadu_si512((const void *)isum), _mm512_slli_epi32(xs, 7));
    __m512 v = _mm512_mul_ps(
        _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_broadcast_f32x4(_mm_loadu_ps(sw + j))), vsx);
    if (bias) v = _mm512_add_ps(v, _mm512_broadcast_f32x4(_mm_loadu_ps(bias + j)));
    _mm_storeu_ps(y + t0 * ldy + j, _mm512_extractf32x4_ps(v, 0));
    _mm_storeu_ps(y + (t0 + 1) * ldy + j, _mm512_extractf32x4_ps(v, 1));
    if (nt < 4) return;
    _mm_storeu_ps(y + (t0 + 2) * ldy + j, _mm512_extractf32x4_ps(v, 2));
    _mm_storeu_ps(y + (t0 + 3) * ldy + j, _mm512_extractf32x4_ps(v, 3));
}

/* rows [j0, j1) of W x tokens [t0, t1): tiles of (R, T), remainders with halved R and T */
static void w8_block(const int8_t *qs, const float *sw, int64_t k, const int8_t *xq, const float *sx,
                     const int32_t *xsum, int64_t kp, int64_t j0, int64_t j1, int64_t t0, int64_t t1, int T0,
                     const float *bias, float *y, int64_t ldy) {
    int32_t isum[32];
    for (int64_t t = t0; t < t1;) {
        int T = T0;
        if (t + T > t1) {
            T = 4;
            while (t + T > t1)
                T >>= 1;
        }
        const int R0 = T == 6 ? 4 : 16 / T;
        for (int64_t j = j0; j < j1;) {
            int R = R0;
            while (j + R > j1)
                R >>= 1;
            w8_run(R, T, qs, k, xq, kp, j, t, isum);
            if (R == 4 && T == 6) {
                w8_epilogue4(4, isum, j, t, sw, sx, xsum, bias, y, ldy);
                w8_epilogue4(2, isum + 16, j, t + 4, sw, sx, xsum, bias, y, ldy);
            } else if (R == 4 && T == 4)
                w8_epilogue4(4, isum, j, t, sw, sx, xsum, bias, y, ldy);
            else
                w8_epilogue(R, T, isum, j, t, sw, sx, xsum, bias, y, ldy);
            j += R;
        }
        t += T;
    }
}

static void w8a8_matmul(const uint8_t *act, int64_t m, int64_t k, const void *w, int64_t n0, int64_t n1,
                        const float *bias, float *y, int64_t ldy) {
    const el_qi8_w8a8 p = el_qi8_w8a8_of(act, m, k, w);
    const float *sw = p.sw, *sx = p.sx;
    const int8_t *qs = p.qs, *xq = p.xq;
    const int32_t *xsum = p.xsum;
    const int64_t kp = p.kp;
    const int T0 = m >= 6 ? 6 : m >= 4 ? 4 : m >= 2 ? 2 : 1;
    if (m == 1) { /* decode: 16 rows at a time, each read front to back (28 -> 37 GB/s on 1 core) */
        int32_t isum[16];
        for (int64_t j = n0; j < n1; j += 16) {
            const int R = n1 - j < 16 ? (int)(n1 - j) : 16;
            w8_rows(R, qs + j * k, k, xq, isum);
            w8_epilogue(R, 1, isum, j, 0, sw, sx, xsum, bias, y, ldy);
        }
        return;
    }
    if (m <= 3) { /* tiny batches: W streams once */
        w8_block(qs, sw, k, xq, sx, xsum, kp, n0, n1, 0, m, T0, bias, y, ldy);
        return;
    }
    /* prefill: 64 rows of W x 64 tokens blocks (each <= 64 * k bytes) */
    for (int64_t j = n0; j < n1; j += 64) {
        const int64_t j1 = j + 64 < n1 ? j + 64 : n1;
        for (int64_t t = 0; t < m; t += 64)
            w8_block(qs, sw, k, xq, sx, xsum, kp, j, j1, t, t + 64 < m ? t + 64 : m, T0, bias, y, ldy);
    }
}

/* ---- q8_0 / q4_0 ------------------------------------------------------------------------------------ */

#define TILE_BLOCK_BYTES (64 * 9) /* per block of a 16-row tile: f32 scales[16], 8 x (16 rows x 4 bytes) */

/* 8x8 transposes of dwords in both 256-bit halves: in[p] = [row p | row p + 8] (8 dwords each),
 * out[q] = [dword q of rows 0..7 | of rows 8..15] */
AI void transpose8x8x2(const __m512i *in, __m512i *out) {
    __m512i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]); /* dword 0 / 4 of rows 4i..4i+3 */
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]); /* 1 / 5 */
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]); /* 2 / 6 */
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]); /* 3 / 7 */
    }
    const __m512i ilo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0),
                  ihi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    for (int q = 0; q < 4; q++) {
        out[q] = _mm512_permutex2var_epi64(u[q], ilo, u[4 + q]);
        out[q + 4] = _mm512_permutex2var_epi64(u[q], ihi, u[4 + q]);
    }
}

/* Transposes 16 full rows (row stride rb bytes) of q8_0 / q4_0 blocks into dst (nb * TILE_BLOCK_BYTES). */
static void tile_pack(el_dtype wt, const uint8_t *w, int64_t rb, int64_t nb, uint8_t *dst, const uint8_t *pf,
                      int64_t pf_step) {
    const __m512i vidx = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32((int)rb));
    const int64_t bb = wt == EL_DTYPE_Q8_0 ? 34 : 18;
    for (int64_t b = 0; b < nb; b++, dst += TILE_BLOCK_BYTES) {
        const uint8_t *p = w + b * bb;
        if (pf)
            for (int64_t o = 0; o < pf_step; o += 64)
                _mm_prefetch((const char *)(pf + b * pf_step + o), _MM_HINT_T0);
        const __m512i d16 = _mm512_i32gather_epi32(vidx, (const void *)p, 1);
        _mm512_store_ps((void *)dst, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d16)));
        __m512i *o = (__m512i *)(dst + 64);
        if (wt == EL_DTYPE_Q8_0) {
            __m512i in[8], out[8];
            for (int r = 0; r < 8; r++)
                in[r] = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2 + r * rb))),
                    _mm256_loadu_si256((const __m256i *)(p + 2 + (r + 8) * rb)), 1);
            transpose8x8x2(in, out);
            const __m512i flip = _mm512_set1_epi8((char)0x80);
            for (int q = 0; q < 8; q++)
                _mm512_store_si512((void *)(o + q), _mm512_xor_si512(out[q], flip));
        } else {
            __m512i z[4];
            for (int r = 0; r < 4; r++) { /* [row r | r + 4 | r + 8 | r + 12] */
                __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + 2 + r * rb)));
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 + (r + 4) * rb)), 1);
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 + (r + 8) * rb)), 2);
                z[r] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 + (r + 12) * rb)), 3);
            }
            const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
            const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
            const __m512i g[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                                  _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
            const __m512i m4 = _mm512_set1_epi8(15);
            for (int q = 0; q < 4; q++) {
                _mm512_store_si512((void *)(o + q), _mm512_and_si512(g[q], m4)); /* x 4q..   */
                _mm512_store_si512((void *)(o + 4 + q),
                                   _mm512_and_si512(_mm512_srli_epi16(g[q], 4), m4)); /* 16+4q.. */
            }
        }
    }
}

/* T tokens (t0..) over a packed 16-row tile: y[t, j0 + r] for r < nr */
AI void tile_run(const int T, const uint8_t *tile, int64_t nb, int bias_c, const float *dx, const int32_t *xs,
                 const int8_t *xq, int64_t k, int64_t t0, int64_t j0, int nr, const float *bias, float *y,
                 int64_t ldy) {
    __m512 facc[6];
    for (int t = 0; t < T; t++)
        facc[t] = _mm512_setzero_ps();
    const int32_t *xq32 = (const int32_t *)(const void *)(xq + t0 * k);
    const int64_t k4 = k / 4;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *tb = tile + b * TILE_BLOCK_BYTES;
        __m512i acc[6];
        for (int t = 0; t < T; t++)
            acc[t] = _mm512_set1_epi32(-bias_c * xs[(t0 + t) * nb + b]);
        for (int q = 0; q < 8; q++) {
            const __m512i wv = _mm512_load_si512((const void *)(tb + 64 + 64 * q));
            for (int t = 0; t < T; t++) {
                int32_t xv;
                memcpy(&xv, xq32 + t * k4 + b * 8 + q, 4);
                acc[t] = dpbusd(acc[t], wv, _mm512_set1_epi32(xv));
            }
        }
        const __m512 dw = _mm512_load_ps((const void *)tb);
        for (int t = 0; t < T; t++)
            facc[t] = _mm512_add_ps(facc[t],
                                    _mm512_mul_ps(_mm512_cvtepi32_ps(acc[t]),
                                                  _mm512_mul_ps(dw, _mm512_set1_ps(dx[(t0 + t) * nb + b]))));
    }
    const __mmask16 mk = (__mmask16)((1u << nr) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(mk, bias + j0) : _mm512_setzero_ps();
    for (int t = 0; t < T; t++) {
        const __m512 v = bias ? _mm512_add_ps(facc[t], bv) : facc[t];
        _mm512_mask_storeu_ps(y + (t0 + t) * ldy + j0, mk, v);
    }
}

static void ggml_matmul(el_dtype wt, const uint8_t *act, int64_t m, int64_t k, const void *w, int64_t n0,
                        int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch, int64_t n) {
    const int64_t nb = k / 32, bb = wt == EL_DTYPE_Q8_0 ? 34 : 18, rb = nb * bb;
    const el_qi8_ggml_act xa = el_qi8_ggml_of(act, wt, m, k);
    const float *dx = xa.dx;
    const int32_t *xs = xa.xsum;
    const int8_t *xq = xa.xq;
    uint8_t *tile = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint8_t *part = tile + nb * TILE_BLOCK_BYTES; /* a last tile of < 16 rows, zero padded */
    const int bc = wt == EL_DTYPE_Q8_0 ? 128 : 8;
    (void)n;
    for (int64_t j = n0; j < n1; j += 16) {
        const int nr = n1 - j < 16 ? (int)(n1 - j) : 16;
        const uint8_t *src = el_qi8_ggml_tile_src(w, j, nr, 16, rb, part);
        /* prefetch the next tile (16 contiguous rows) while this one is transposed: the hardware
         * prefetchers do not follow 16 interleaved row streams (2x slower decode without) */
        const bool pf = nr == 16 && j + 16 < n1;
        tile_pack(wt, src, rb, nb, tile, pf ? src + 16 * rb : NULL, (16 * bb + 63) & ~(int64_t)63);
        int64_t t = 0;
        for (; t + 6 <= m; t += 6)
            tile_run(6, tile, nb, bc, dx, xs, xq, k, t, j, nr, bias, y, ldy);
        if (t + 4 <= m) {
            tile_run(4, tile, nb, bc, dx, xs, xq, k, t, j, nr, bias, y, ldy);
            t += 4;
        }
        if (t + 2 <= m) {
            tile_run(2, tile, nb, bc, dx, xs, xq, k, t, j, nr, bias, y, ldy);
            t += 2;
        }
        if (t < m) tile_run(1, tile, nb, bc, dx, xs, xq, k, t, j, nr, bias, y, ldy);
    }
}

void el_qi8_matmul_avx512(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                          int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    if (wt == EL_DTYPE_Q_W8A8)
        w8a8_matmul(act, m, k, w, n0, n1, bias, y, ldy);
    else
        ggml_matmul(wt, act, m, k, w, n0, n1, bias, y, ldy, scratch, n);
}

#endif
