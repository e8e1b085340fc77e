/* kernels_neon.c - AArch64 Advanced SIMD (NEON) instantiation of simd_impl.h; 4 f32 lanes. NEON is part of
 * every ARMv8-A core (Cortex-A53/A57/A72/A78AE of Jetson Nano/TX2/Xavier/Orin, Graviton, Apple), so the
 * table is used whenever the library is built for aarch64. */
#include "kernels/cpu/cpu_impl.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

typedef float32x4_t V;
#define VW 4
#define MR_MAX 4
#define NR_MAX 4
#define FN(name) name##_neon

static inline V vzero(void) { return vdupq_n_f32(0.0f); }
static inline V vld(const float *p) { return vld1q_f32(p); }
static inline void vst(float *p, V v) { vst1q_f32(p, v); }
static inline V vset1(float f) { return vdupq_n_f32(f); }
static inline V vfma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
static inline V vadd(V a, V b) { return vaddq_f32(a, b); }
static inline V vsub(V a, V b) { return vsubq_f32(a, b); }
static inline V vmax(V a, V b) { return vbslq_f32(vcgtq_f32(a, b), a, b); } /* b where either is NaN, as x86 */
static inline V vmul(V a, V b) { return vmulq_f32(a, b); }
static inline V vdiv(V a, V b) { return vdivq_f32(a, b); }
static inline float vhsum(V v) { return vaddvq_f32(v); }
static inline V vld_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline V vld_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
/* 4 e4m3fn codes as value / 256 via f16 bits (as kernels_avx2.c): sign-extended code << 7, bit 14 cleared */
static inline V vld_e4m3(const uint8_t *p) {
    uint32_t w;
    memcpy(&w, p, 4);
    const int16x4_t s = vget_low_s16(vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(w))));
    const uint16x4_t h = vand_u16(vreinterpret_u16_s16(vshl_n_s16(s, 7)), vdup_n_u16(0xbf80));
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}
/* exp: range reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial, 2^n via the exponent
 * (the constants of kernels_avx2.c) */
static inline V vexp(V x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.0f));
    const V n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    V r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    V p = vdupq_n_f32(1.0f / 5040.0f);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

#include "kernels/cpu/simd_impl.h"
#endif
