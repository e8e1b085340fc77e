/* kernels_scalar.c - portable instantiation of simd_impl.h with a one-lane "vector" (plain float);
 * the fallback when the CPU has neither AVX2 nor AVX-512, and the baseline of the ISA tests. */
#include "kernels/cpu/cpu_impl.h"
#include "kernels/e4m3.h"

#include <math.h>

typedef float V;
#define VW 1
#define MR_MAX 4
#define NR_MAX 4
#define FN(name) name##_scalar

static inline V vzero(void) { return 0.0f; }
static inline V vld(const float *p) { return *p; }
static inline void vst(float *p, V v) { *p = v; }
static inline V vset1(float f) { return f; }
static inline V vfma(V a, V b, V c) { return a * b + c; }
static inline V vadd(V a, V b) { return a + b; }
static inline V vsub(V a, V b) { return a - b; }
static inline V vmax(V a, V b) { return a > b ? a : b; }
static inline V vmul(V a, V b) { return a * b; }
static inline V vdiv(V a, V b) { return a / b; }
static inline float vhsum(V v) { return v; }
static inline V vld_f16(const uint16_t *p) { return el_f16_to_f32(*p); }
static inline V vld_bf16(const uint16_t *p) { return el_bf16_to_f32(*p); }
static inline V vld_e4m3(const uint8_t *p) { /* value / 256, as the SIMD versions */
    return el_e4m3_to_f32_fast(*p) * 0.00390625f;
}
static inline V vexp(V x) { return expf(x); }

#include "kernels/cpu/simd_impl.h"
