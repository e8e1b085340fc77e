/* kernels_avx512.c - AVX-512 (F/BW/VL/DQ) instantiation of simd_impl.h; 16 f32 lanes. */
#include "kernels/cpu/cpu_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

typedef __m512 V;
#define VW 16
#define MR_MAX 4
#define NR_MAX 4
#define FN(name) name##_avx512

static inline V vzero(void) { return _mm512_setzero_ps(); }
static inline V vld(const float *p) { return _mm512_loadu_ps(p); }
static inline void vst(float *p, V v) { _mm512_storeu_ps(p, v); }
static inline V vset1(float f) { return _mm512_set1_ps(f); }
static inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
static inline V vmax(V a, V b) { return _mm512_max_ps(a, b); } /* b where either is NaN */
static inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V vdiv(V a, V b) { return _mm512_div_ps(a, b); }
static inline float vhsum(V v) { return _mm512_reduce_add_ps(v); }
static inline V vld_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline V vld_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
/* 16 e4m3fn codes as value / 256 (exact, subnormals included): sign-extended to 16 bits and shifted
 * left by 7, the code's exponent|mantissa sits in f16 bits 7..13 and the sign in bit 15; bit 14 (a sign
 * copy) is cleared. simd_impl.h folds the 256 into the attention scales. */
static inline V vld_e4m3(const uint8_t *p) {
    const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
    return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xbf80)));
}
/* r[i] = sum of the lanes of a[i], i < 16: a reduction tree (unpack, shuffle, 128-bit lane shuffles)
 * costing ~45 instructions for 16 sums instead of ~8 per horizontal sum. */
#define HAVE_VHSUM_N 1
static inline __m512 vhsum_pair(__m512 a, __m512 b) { /* per 128-bit lane: a0+a2, b0+b2, a1+a3, b1+b3 */
    return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
}
static inline __m512 vhsum_quad(__m512 t0, __m512 t1) { /* per lane: sums of the 4 sources' lane */
    return _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
}
static inline __m512 vhsum_lanes(__m512 u0, __m512 u1) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
}
static inline V vhsum_n(const V *a) {
    __m512 u[4];
    for (int i = 0; i < 4; i++)
        u[i] = vhsum_quad(vhsum_pair(a[4 * i], a[4 * i + 1]), vhsum_pair(a[4 * i + 2], a[4 * i + 3]));
    return vhsum_lanes(vhsum_lanes(u[0], u[1]), vhsum_lanes(u[2], u[3]));
}

/* exp: range reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial, 2^n via the exponent. */
static inline V vexp(V x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.0f));
    V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    V p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

#include "kernels/cpu/simd_impl.h"
#endif
