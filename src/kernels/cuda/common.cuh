/*
 * common.cuh - device helpers shared by the CUDA kernels: scalar/vector loads of F32/F16/BF16 data as f32,
 * stores with round-to-nearest-even, and warp/block reductions. Header-only (static inline device code).
 */
#ifndef EL_CUDA_COMMON_CUH
#define EL_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/e4m3.h"

/* bf16 -> f32 is exact: the bits go to the top half of the float. */
static __device__ __forceinline__ float elk_bf16_bits_to_f32(uint32_t b) { return __uint_as_float(b << 16); }
static __device__ __forceinline__ float elk_f16_bits_to_f32(uint16_t b) {
    return __half2float(__ushort_as_half(b));
}

/* Element i of a F32/F16/BF16 array as f32. */
template <int T> static __device__ __forceinline__ float elk_ld(const void *p, int64_t i);
template <> __device__ __forceinline__ float elk_ld<ELK_F32>(const void *p, int64_t i) {
    return ((const float *)p)[i];
}
template <> __device__ __forceinline__ float elk_ld<ELK_F16>(const void *p, int64_t i) {
    return elk_f16_bits_to_f32(((const uint16_t *)p)[i]);
}
template <> __device__ __forceinline__ float elk_ld<ELK_BF16>(const void *p, int64_t i) {
    return elk_bf16_bits_to_f32(((const uint16_t *)p)[i]);
}
/* e4m3fn code -> f32, unscaled: the bits shifted into an f16 are the value / 256 exactly (kernels/e4m3.h) */
static __device__ __forceinline__ float elk_e4m3_to_f32(uint32_t b) {
    const uint16_t h = (uint16_t)(((b & 0x80u) << 8) | ((b & 0x7fu) << 7));
    return __half2float(__ushort_as_half(h)) * 256.f;
}
template <> __device__ __forceinline__ float elk_ld<ELK_E4M3>(const void *p, int64_t i) {
    return elk_e4m3_to_f32(((const uint8_t *)p)[i]);
}

/* Runtime-typed load (small kernels where a switch per element costs nothing measurable). */
static __device__ __forceinline__ float elk_ldt(const void *p, int t, int64_t i) {
    if (t == ELK_F32) return ((const float *)p)[i];
    if (t == ELK_F16) return elk_f16_bits_to_f32(((const uint16_t *)p)[i]);
    return elk_bf16_bits_to_f32(((const uint16_t *)p)[i]);
}

template <int T> static __device__ __forceinline__ void elk_st(void *p, int64_t i, float v);
template <> __device__ __forceinline__ void elk_st<ELK_F32>(void *p, int64_t i, float v) { ((float *)p)[i] = v; }
template <> __device__ __forceinline__ void elk_st<ELK_F16>(void *p, int64_t i, float v) {
    ((__half *)p)[i] = __float2half_rn(v);
}
template <> __device__ __forceinline__ void elk_st<ELK_BF16>(void *p, int64_t i, float v) {
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
}

static __device__ __forceinline__ float elk_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float elk_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
 * `red` is __shared__ float[32]. */
static __device__ __forceinline__ float elk_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = elk_warp_sum(v);
    __syncthreads(); /* red may still be read from a previous call */
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.f;
    return elk_warp_sum(v);
}

static inline unsigned elk_blocks(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

#endif
