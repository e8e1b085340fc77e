/*
 * rope.cuh - per-head q/k norm and RoPE on a head staged in shared memory, shared by k_qk_rope_store (fused.cu)
 * and the decode attention kernel that applies them itself (attention.cu, elk_attention_rope). One block's
 * threads work on one head at a time; element d belongs to threads d, d + blockDim.x, ... in both kernels, so
 * the sums (elk_block_sum: warps of zeros add exactly) and every value are bit-identical between them.
 * Internal to src/kernels/cuda.
 */
#ifndef EL_CUDA_ROPE_CUH
#define EL_CUDA_ROPE_CUH

#include "kernels/cuda/common.cuh"

/* sh[0 .. hd) = x[0 .. hd) (xat(d): element d, asked by the thread that owns d), then, with a norm weight nw,
 * sh = sh * rsqrt(mean(sh^2) + eps) * nw (k_rmsnorm's arithmetic); red: __shared__ float[32] not in use. Ends
 * with __syncthreads (sh complete). */
template <typename X>
static __device__ __forceinline__ void elk_head_stage_v(X xat, float *sh, int hd, const float *__restrict__ nw,
                                                        float eps, float *red) {
    float ss = 0.f;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        const float xv = xat(d);
        sh[d] = xv;
        ss += xv * xv;
    }
    if (nw) { /* uniform per block */
        ss = elk_block_sum(ss, red);
        const float inv = rsqrtf(ss / (float)hd + eps);
        for (int d = threadIdx.x; d < hd; d += blockDim.x)
            sh[d] = sh[d] * inv * nw[d];
    }
    __syncthreads();
}
/* the same with x[d] read from memory (global or shared, not sh) */
static __device__ __forceinline__ void elk_head_stage(const float *__restrict__ x, float *sh, int hd,
                                                      const float *__restrict__ nw, float eps, float *red) {
    elk_head_stage_v([&](int d) { return x[d]; }, sh, hd, nw, eps, red);
}

/* element d of the staged head after RoPE at position pf (pairs i and i + half for i < half; elements from
 * 2 half on unrotated), as HF: angle pf * inv_freq[i] in fp32, cos and sin times the attention scale s */
static __device__ __forceinline__ float elk_head_rope(const float *sh, int d, int half, float pf,
                                                      const float *__restrict__ inv_freq, float s) {
    if (d >= 2 * half) return sh[d];
    const int i = d < half ? d : d - half;
    const float a = pf * inv_freq[i];
    float sn, c;
    sincosf(a, &sn, &c);
    c *= s;
    sn *= s;
    const float x1 = sh[i], x2 = sh[i + half];
    return d < half ? x1 * c - x2 * sn : x2 * c + x1 * sn;
}

#endif
