/* avx2_util.h - small AVX2 helpers shared by the AVX2 quantized kernels (qint8_avx2.c, qfloat_avx2.c);
 * include only from translation units compiled with -mavx2 -mfma -mf16c. */
#ifndef EL_AVX2_UTIL_H
#define EL_AVX2_UTIL_H

#include "kernels/kernels.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EL_AVX2_AI static inline __attribute__((always_inline))

/* sum of the 8 int32 lanes (wrap-around) */
EL_AVX2_AI int32_t el_avx2_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

EL_AVX2_AI float el_avx2_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

EL_AVX2_AI float el_avx2_hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

EL_AVX2_AI __m256 el_avx2_abs_ps(__m256 v) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* lanes [0, n) of p (n <= 8), zero above */
EL_AVX2_AI __m256 el_avx2_load_ps_n(const float *p, int64_t n) {
    if (n >= 8) return _mm256_loadu_ps(p);
    if (n <= 0) return _mm256_setzero_ps();
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx));
}

/* 8 e4m3fn codes (bytes) -> f32 value / 256 exactly (subnormals included): the f16 with the code's
 * exponent and mantissa bits moved up by 7 (f16 bias 15 vs e4m3 bias 7) */
EL_AVX2_AI __m256 el_avx2_e4m3x8(__m128i codes8) {
    const __m128i w = _mm_cvtepi8_epi16(codes8); /* sign-extended: the sign lands on bit 15 after << 7 */
    return _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(w, 7), _mm_set1_epi16((short)0xbf80)));
}

/* 8 consecutive 8-lane vectors of int32 for 8 rows -> one vector of their 8 sums (lane r = sum of v[r]) */
EL_AVX2_AI __m256i el_avx2_hsum8x8_epi32(const __m256i *v) {
    const __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    /* ab: [r0 r1 r2 r3 (low 128 halves) | r0 r1 r2 r3 (high)], cd: the same for r4..r7 */
    const __m256i lo = _mm256_permute2x128_si256(ab, cd, 0x20), hi = _mm256_permute2x128_si256(ab, cd, 0x31);
    return _mm256_add_epi32(lo, hi);
}

/* 8 rows of 8 dwords -> o[q] = dword q of rows 0..7 */
EL_AVX2_AI void el_avx2_transpose8x8(const __m256i *r, __m256i *o) {
    __m256i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]); /* dwords 0 / 4 */
        u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]); /* 1 / 5 */
        u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]); /* 2 / 6 */
        u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]); /* 3 / 7 */
    }
    for (int q = 0; q < 4; q++) {
        o[q] = _mm256_permute2x128_si256(u[q], u[4 + q], 0x20);
        o[q + 4] = _mm256_permute2x128_si256(u[q], u[4 + q], 0x31);
    }
}

/* AVX-VNNI (cpuid 7.1 eax bit 4: vpdpbusd / vpdpwssd on ymm, VEX encoded), unless EDGELLM_CPU_AVXVNNI=0
 * (read on every call: tests and benchmarks compare both paths) */
static inline bool el_avx2_vnni(void) {
    const char *e = getenv("EDGELLM_CPU_AVXVNNI");
    return el_cpu_has(EL_FEAT_AVX_VNNI) && !(e && !strcmp(e, "0"));
}

/* acc += u8 a x s8 b summed per 4-byte group (AVX-VNNI; only where el_avx2_vnni()). Inline asm: the
 * translation units are compiled for plain AVX2. */
EL_AVX2_AI __m256i el_avx2_dpbusd(__m256i acc, __m256i a, __m256i b) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
}

#endif
