/*
 * e4m3.h - branch-light e4m3fn <-> f32 conversions for the fp8 KV cache, shared by the C kernels and the
 * CUDA kernels (host + device inline). Bit-identical to el_f32_to_e4m3 / el_e4m3_to_f32 of quant.h
 * (saturating round-to-nearest-even, NaN -> 0x7f; tests/unit/test_kernels.c checks every f16 value and
 * all 256 codes).
 *
 * The fp8 KV cache (EL_DTYPE_F8_E4M3, kernels.h) stores e4m3(x / scale) with one f32 scale per layer
 * for K and one for V, and reads e4m3 * scale.
 */
#ifndef EL_E4M3_H
#define EL_E4M3_H

#include <stdint.h>

#ifdef __CUDACC__
#define EL_E4M3_FN static __host__ __device__ __forceinline__
#else
#include <math.h>
#define EL_E4M3_FN static inline
#endif

EL_E4M3_FN uint32_t el_e4m3_f32_bits(float f) {
    union {
        float f;
        uint32_t u;
    } v;
    v.f = f;
    return v.u;
}
EL_E4M3_FN float el_e4m3_bits_f32(uint32_t u) {
    union {
        float f;
        uint32_t u;
    } v;
    v.u = u;
    return v.f;
}

/* f32 -> e4m3fn code: RNE, |x| >= 448 saturates to +-448 (0x7e), NaN -> 0x7f. */
EL_E4M3_FN uint8_t el_e4m3_from_f32(float f) {
    const uint32_t u = el_e4m3_f32_bits(f);
    const uint32_t sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7f;                     /* NaN */
    if (a >= 0x43e00000u) return (uint8_t)(sign | 0x7eu); /* >= 448 (and inf) */
    if (a < 0x3c800000u) {                                /* < 2^-6: subnormal codes, step 2^-9 */
        /* |f| * 512 is exact and < 8; rintf rounds to nearest even */
        return (uint8_t)(sign | (uint32_t)rintf(el_e4m3_bits_f32(a) * 512.0f));
    }
    /* normal: keep 3 mantissa bits with RNE on the 20 dropped ones, rebias the exponent 127 -> 7 */
    const uint32_t r = (a + 0x7ffffu + ((a >> 20) & 1u)) >> 20;
    const uint32_t code = r - (120u << 3);
    return (uint8_t)(sign | (code > 0x7eu ? 0x7eu : code));
}

/* e4m3fn code -> f32 (0x7f / 0xff decode as 480, never written by el_e4m3_from_f32). */
EL_E4M3_FN float el_e4m3_to_f32_fast(uint8_t b) {
    const uint32_t em = b & 0x7fu, sign = (uint32_t)(b & 0x80u) << 24;
    if (em < 8) { /* subnormal: m * 2^-9 */
        const float r = (float)em * 0.001953125f;
        return b & 0x80u ? -r : r;
    }
    return el_e4m3_bits_f32(sign | ((em << 20) + (120u << 23)));
}

#endif
