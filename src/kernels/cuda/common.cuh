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

/* One 16-byte read-only vector, streamed: ld.global.nc.L1::no_allocate (weights are read once per
 * kernel; L1 stays for the activations). Not volatile: the loads may be reordered and batched. */
static __device__ __forceinline__ uint4 elk_ldg_stream(const void *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

/* el_qhdr (src/kernels/quant.h), 64 bytes at the start of every quantized weight, read on the device */
struct elk_qhdr {
    uint32_t magic, format, n, k, group, flags;
    float act_scale, global_scale;
    uint64_t scales_off, zeros_off, quants_off, nbytes;
};
#define ELK_QF_STATIC_ACT 1u

/* 8 nibbles of u (element t = bits 4t..4t+3) -> q as 2^23 + q (f32 bit pattern), element order */
static __device__ __forceinline__ void elk_nib8(uint32_t u, float *f) {
    const uint32_t lo = u & 0x0f0f0f0fu, hi = (u >> 4) & 0x0f0f0f0fu;
    f[0] = __uint_as_float(__byte_perm(lo, 0x4b00, 0x5440));
    f[1] = __uint_as_float(__byte_perm(hi, 0x4b00, 0x5440));
    f[2] = __uint_as_float(__byte_perm(lo, 0x4b00, 0x5441));
    f[3] = __uint_as_float(__byte_perm(hi, 0x4b00, 0x5441));
    f[4] = __uint_as_float(__byte_perm(lo, 0x4b00, 0x5442));
    f[5] = __uint_as_float(__byte_perm(hi, 0x4b00, 0x5442));
    f[6] = __uint_as_float(__byte_perm(lo, 0x4b00, 0x5443));
    f[7] = __uint_as_float(__byte_perm(hi, 0x4b00, 0x5443));
}

/* mma.sync m16n8k16 bf16 x bf16 -> f32 (d += A B), fragments as the PTX ISA lays them out */
static __device__ __forceinline__ void elk_mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                    uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* (x0, x1) -> bf16x2 hi and lo with x ~= hi + lo (to ~2^-17 relative); lower half = x0. */
static __device__ __forceinline__ void elk_split_bf16x2(float x0, float x1, uint32_t &hi, uint32_t &lo) {
    __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
    __nv_bfloat162 l = __floats2bfloat162_rn(x0 - __low2float(h), x1 - __high2float(h));
    hi = *reinterpret_cast<uint32_t *>(&h);
    lo = *reinterpret_cast<uint32_t *>(&l);
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
