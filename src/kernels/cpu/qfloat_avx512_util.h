/* qfloat_avx512_util.h - AVX-512 helpers shared by the float-activation quantized kernels (qfloat_avx512.c,
 * qfloat_w4dec_avx512.c); include only from translation units compiled with the AVX-512 flags. */
#ifndef EL_QFLOAT_AVX512_UTIL_H
#define EL_QFLOAT_AVX512_UTIL_H

#include "kernels/cpu/qfloat_impl.h"

#include <immintrin.h>
#include <stdint.h>

#define AI static inline __attribute__((always_inline))

typedef __m512i VI;
typedef __m512 VF;

/* acc += sum over 4-byte groups of u8 a times s8 b. Inline asm: with the intrinsic GCC 12 copies the
 * accumulator before every instruction (a register move per instruction in the hot loops). */
AI VI dpbusd(VI acc, VI a, VI b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* v as it is, in a register: keeps GCC from folding one load into several instructions (a load each) */
AI VI in_reg(VI v) {
    __asm__("" : "+v"(v));
    return v;
}

/* 16 floats of x from s, zero at and past k */
AI VF ld16(const float *x, int64_t s, int64_t k) {
    if (s + 16 <= k) return _mm512_loadu_ps(x + s);
    if (s >= k) return _mm512_setzero_ps();
    return _mm512_maskz_loadu_ps((__mmask16)((1u << (k - s)) - 1), x + s);
}

/* One chunk of 128 elements of x (from e0, zero past k) as integers n = rne(x * lim / a), a = the chunk's
 * max |x| (|n| <= lim for lim < 2^24); returns a. Chunks with a < 2^-96 are first scaled by 2^96 (exact),
 * so that lim / a does not overflow. */
AI float q16_chunk(const float *x, int64_t e0, int64_t k, float lim, VI n[8]) {
    VF v[8];
    VF mx = _mm512_setzero_ps();
    for (int t = 0; t < 8; t++) {
        v[t] = ld16(x, e0 + 16 * t, k);
        mx = _mm512_max_ps(mx, _mm512_abs_ps(v[t]));
    }
    const float a = _mm512_reduce_max_ps(mx), pre = a < 0x1p-96f ? 0x1p96f : 1.0f;
    const VF vp = _mm512_set1_ps(pre), inv = _mm512_set1_ps(a > 0 ? lim / (a * pre) : 0.0f);
    for (int t = 0; t < 8; t++)
        n[t] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_mul_ps(v[t], vp), inv)); /* RNE */
    return a;
}

#endif
