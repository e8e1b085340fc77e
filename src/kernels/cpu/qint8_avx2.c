/* qint8_avx2.c - the AVX2 path of the w8a8 matmul (CPUs without AVX-512 VNNI; q8_0 / q4_0 stay on the
 * reference there), bit-exact with el_ref_qmatmul.
 *
 * vpmaddubsw multiplies u8 by s8 into int16 pairs that saturate, so the sign goes to the activation:
 * |w| (0..128 as u8) times sign(x, w) (x in -127..127, never -128) gives pair sums of at most
 * 2 * 128 * 127 = 32512 < 32767: no saturation, exact. vpmaddwd with ones widens to int32.
 * The activations are quantized by a plain C loop with the reference's operations (fmaxf, nearbyintf). */
#include "kernels/cpu/qint8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

void el_qi8_quantize_avx2(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                          int64_t i1, void *act) {
    (void)wt; /* w8a8 only */
    uint8_t *a = act;
    const int64_t kp = el_qi8_kp(EL_DTYPE_Q_W8A8, k);
    float *sx = (float *)a;
    int32_t *xs = (int32_t *)(a + el_qi8_off_xsum(EL_DTYPE_Q_W8A8, m, k));
    int8_t *xq = (int8_t *)(a + el_qi8_off_xq(EL_DTYPE_Q_W8A8, m, k));
    el_qhdr h;
    memcpy(&h, w, sizeof h);
    for (int64_t i = i0; i < i1; i++) {
        const float *xr = x + i * k;
        float inv, s;
        if (h.flags & EL_QF_STATIC_ACT) {
            s = h.act_scale;
            inv = 1.0f / s;
        } else {
            float amax = 0;
            for (int64_t c = 0; c < k; c++)
                amax = fmaxf(amax, fabsf(xr[c]));
            inv = amax > 0 ? 127.0f / amax : 0.0f;
            s = amax / 127.0f;
        }
        int32_t sum = 0;
        int8_t *q = xq + i * kp;
        for (int64_t c = 0; c < k; c++) {
            float v = nearbyintf(xr[c] * inv);
            v = v < -127.0f ? -127.0f : v > 127.0f ? 127.0f : v;
            q[c] = (int8_t)v;
            sum += q[c];
        }
        memset(q + k, 0, (size_t)(kp - k));
        sx[i] = s;
        xs[i] = sum;
    }
}

static inline int32_t hsum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline __m256i dot32(__m256i acc, __m256i aw, __m256i w, __m256i x) {
    const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* out[t * R + r] = sum_c W[r, c] * xq[t, c], R <= 4 rows, T <= 2 tokens */
static inline __attribute__((always_inline)) void tile(const int R, const int T, const int8_t *w, int64_t k,
                                                       const int8_t *x, int64_t kp, int32_t *out) {
    __m256i acc[8];
    for (int i = 0; i < 8; i++)
        acc[i] = _mm256_setzero_si256();
    const int64_t kv = k & ~(int64_t)31;
    for (int64_t c = 0; c < kv; c += 32) {
        __m256i xv[2];
        for (int t = 0; t < T; t++)
            xv[t] = _mm256_load_si256((const __m256i *)(x + t * kp + c));
        for (int r = 0; r < R; r++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + r * k + c)), aw = _mm256_abs_epi8(wv);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = dot32(acc[t * R + r], aw, wv, xv[t]);
        }
    }
    if (kv < k) { /* the row tail through a zero-padded copy (x is zero past k) */
        __m256i xv[2];
        for (int t = 0; t < T; t++)
            xv[t] = _mm256_load_si256((const __m256i *)(x + t * kp + kv));
        for (int r = 0; r < R; r++) {
            int8_t tmp[32] = {0};
            memcpy(tmp, w + r * k + kv, (size_t)(k - kv));
            const __m256i wv = _mm256_loadu_si256((const __m256i *)tmp), aw = _mm256_abs_epi8(wv);
            for (int t = 0; t < T; t++)
                acc[t * R + r] = dot32(acc[t * R + r], aw, wv, xv[t]);
        }
    }
    for (int i = 0; i < R * T; i++)
        out[i] = hsum8(acc[i]);
}

void el_qi8_matmul_avx2(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    (void)wt, (void)n, (void)scratch;
    el_qhdr h;
    memcpy(&h, w, sizeof h);
    const float *sw = (const float *)((const uint8_t *)w + h.scales_off);
    const int8_t *qs = (const int8_t *)((const uint8_t *)w + h.quants_off);
    const uint8_t *a = act;
    const float *sx = (const float *)a;
    const int8_t *xq = (const int8_t *)(a + el_qi8_off_xq(EL_DTYPE_Q_W8A8, m, k));
    const int64_t kp = el_qi8_kp(EL_DTYPE_Q_W8A8, k);
    int32_t isum[8];
    for (int64_t t = 0; t < m;) {
        const int T = m - t >= 2 ? 2 : 1;
        for (int64_t j = n0; j < n1;) {
            const int R = n1 - j >= 4 ? 4 : 1;
            const int8_t *wr = qs + j * k, *xr = xq + t * kp;
            if (R == 4 && T == 2)
                tile(4, 2, wr, k, xr, kp, isum);
            else if (R == 4)
                tile(4, 1, wr, k, xr, kp, isum);
            else if (T == 2)
                tile(1, 2, wr, k, xr, kp, isum);
            else
                tile(1, 1, wr, k, xr, kp, isum);
            for (int tt = 0; tt < T; tt++)
                for (int r = 0; r < R; r++) {
                    const float v = ((float)isum[tt * R + r] * sw[j + r]) * sx[t + tt];
                    y[(t + tt) * ldy + j + r] = bias ? v + bias[j + r] : v;
                }
            j += R;
        }
        t += T;
    }
}

#endif
