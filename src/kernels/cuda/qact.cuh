/*
 * qact.cuh - device helpers of the quantized weight formats (kernels/quant.h) shared by qgemv.cu (GEMV, prefill)
 * and fused.cu (the fused decode ops): the reference's scalar conversions bit for bit, the exact unpacking of
 * e4m3 / e2m1 codes, guarded x loads and the activation quantization of w8a8 and static fp8 (scales and
 * codes exactly as el_ref_qmatmul). Internal to src/kernels/cuda.
 */
#ifndef EL_CUDA_QACT_CUH
#define EL_CUDA_QACT_CUH

#include "kernels/cuda/common.cuh"

#include <cuda_fp8.h>

/* ---- scalar conversions (the reference's, bit for bit) ---- */
static __device__ __forceinline__ float e2m1_f32(uint32_t v) {
    const uint32_t a = v & 7;
    const float r = a < 4 ? 0.5f * (float)a : (a == 4 ? 2.0f : a == 5 ? 3.0f : a == 6 ? 4.0f : 6.0f);
    return (v & 8) ? -r : r;
}
static __device__ __forceinline__ float f16_f32(uint16_t b) {
    return __half2float(__ushort_as_half(b));
}
static __device__ __forceinline__ float f16_round(float f) {
    return __half2float(__float2half_rn(f));
}

/* ---- vector conversions ---- */
/* 4 e4m3 codes (bytes of u) -> values * 2^-8 as f32 (exact) */
static __device__ __forceinline__ void e4m3x4(uint32_t u, float *f) {
    uint32_t a = __byte_perm(u, 0, 0x1404), b = __byte_perm(u, 0, 0x3424); /* [0,b0,0,b1], [0,b2,0,b3] */
    a = (a & 0x80008000u) | ((a >> 1) & 0x3f803f80u);
    b = (b & 0x80008000u) | ((b >> 1) & 0x3f803f80u);
    float2 fa = __half22float2(*reinterpret_cast<__half2 *>(&a));
    float2 fb = __half22float2(*reinterpret_cast<__half2 *>(&b));
    f[0] = fa.x, f[1] = fa.y, f[2] = fb.x, f[3] = fb.y;
}
/* 8 e2m1 nibbles of u -> values * 2^-14 (exact), element order */
static __device__ __forceinline__ void e2m1x8(uint32_t u, float *f) {
    uint32_t h[4];
    h[0] = ((u << 9) & 0x0e000e00u) | ((u << 12) & 0x80008000u);
    h[1] = ((u << 5) & 0x0e000e00u) | ((u << 8) & 0x80008000u);
    h[2] = ((u << 1) & 0x0e000e00u) | ((u << 4) & 0x80008000u);
    h[3] = ((u >> 3) & 0x0e000e00u) | (u & 0x80008000u);
#pragma unroll
    for (int t = 0; t < 4; t++) {
        float2 v = __half22float2(*reinterpret_cast<__half2 *>(&h[t]));
        f[t] = v.x;
        f[t + 4] = v.y;
    }
}

/* NV floats of x row xr from element off: vector loads when allowed and in range, else guarded. */
template <int NV>
static __device__ __forceinline__ void ldx(const float *xr, int64_t off, int64_t k, bool xvec, float *f) {
    if (xvec && off + NV <= k) {
#pragma unroll
        for (int j = 0; j < NV / 4; j++) {
            float4 t = __ldg((const float4 *)(xr + off) + j);
            f[4 * j] = t.x, f[4 * j + 1] = t.y, f[4 * j + 2] = t.z, f[4 * j + 3] = t.w;
        }
    } else {
#pragma unroll
        for (int j = 0; j < NV; j++)
            f[j] = off + j < k ? __ldg(xr + off + j) : 0.f;
    }
}


/* ---- activation quantization (the reference's, bit for bit) ---- */
/* Maximum of a over the block (blockDim.x a multiple of 32); every thread gets it. `red` is __shared__
 * float[32], free to overwrite (a barrier comes first). */
static __device__ __forceinline__ float qa_block_max(float a, float *red) {
    a = elk_warp_max(a);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = a;
    __syncthreads();
    a = red[0]; /* every warp reads all the warp maxima */
    for (int i = 1; i < (int)(blockDim.x >> 5); i++)
        a = fmaxf(a, red[i]);
    return a;
}
/* w8a8 activation scales of a token row: static (the header's act_scale) or dynamic from amax = max |x| over
 * the row: inv multiplies x before rounding, s is s_x of the epilogue */
static __device__ __forceinline__ void w8a8_act_scale(bool stat, float act, float amax, float &inv, float &s) {
    if (stat) {
        s = act;
        inv = __fdiv_rn(1.0f, s);
    } else {
        inv = amax > 0 ? __fdiv_rn(127.0f, amax) : 0.0f;
        s = __fdiv_rn(amax, 127.0f);
    }
}
/* w8a8 code of one activation as a float: clamp(rne(x * inv), -127, 127) */
static __device__ __forceinline__ float w8a8_code(float x, float inv) {
    return fminf(fmaxf(rintf(__fmul_rn(x, inv)), -127.0f), 127.0f);
}
/* static fp8 code of one activation: e4m3(clamp(x * inv, -448, 448)), RNE */
static __device__ __forceinline__ uint32_t fp8_act_code(float x, float inv) {
    const float c = fminf(fmaxf(__fmul_rn(x, inv), -448.0f), 448.0f);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890 /* the hardware conversion: RNE, |c| <= 448, no NaN here */
    return (uint32_t)__nv_cvt_float_to_fp8(c, __NV_SATFINITE, __NV_E4M3);
#else
    return el_e4m3_from_f32(c); /* kernels/e4m3.h, the reference's conversion bit for bit */
#endif
}

#endif
