/*
 * elementwise.cu - the small memory-bound kernels of a transformer layer (all f32 activations):
 *
 *   embed     out[t, :] = f32(table[ids[t], :])            grid-stride, one thread per output element
 *   rmsnorm   y = x * rsqrt(mean(x^2) + eps) * w           one block (256 threads) per row, fp32 sum of
 *                                                          squares, float4 path when dim % 4 == 0
 *   rope      HF rotate_half, a = (float)pos * inv_freq    one thread per (token, head, i < n_rot/2);
 *             (fp32 product as HF), accurate sincosf         cos/sin computed per thread (compute is tiny)
 *   kv_store  cache[slot, h, pos, :] = k/v (f32/f16/bf16)  one thread per (token, head, dim) element;
 *                                                          pos outside [0, cap) is skipped (no OOB write)
 *   swiglu    out = silu(gate) * up                        grid-stride, expf (accurate)
 *   add       y += x                                       grid-stride
 *   convert   f32 -> f16/bf16 (round to nearest even)      for the tensor-core GEMM inputs
 *   add_bias  y[i, j] += bias[j]                           after a cuBLASLt GEMM
 *
 * All are bound by device-memory bandwidth (1-2 flops per byte); launch configs are 256 threads and
 * enough blocks to cover the elements (capped; the loops are grid-stride).
 */
#include "kernels/cuda/common.cuh"

#define EW_THREADS 256
static inline unsigned ew_grid(int64_t n) {
    int64_t b = (n + EW_THREADS - 1) / EW_THREADS;
    if (b > 65536) b = 65536;
    if (b < 1) b = 1;
    return (unsigned)b;
}

template <int T>
__global__ void k_embed(const int32_t *ids, int64_t n, const void *table, int64_t dim, float *out) {
    const int64_t total = n * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / dim, d = i - t * dim;
        out[i] = elk_ld<T>(table, (int64_t)ids[t] * dim + d);
    }
}

cudaError_t elk_embed(cudaStream_t st, const int32_t *ids, int64_t n, const void *table, int tt, int64_t dim,
                      float *out) {
    unsigned g = ew_grid(n * dim);
    if (tt == ELK_F32) k_embed<ELK_F32><<<g, EW_THREADS, 0, st>>>(ids, n, table, dim, out);
    else if (tt == ELK_F16) k_embed<ELK_F16><<<g, EW_THREADS, 0, st>>>(ids, n, table, dim, out);
    else k_embed<ELK_BF16><<<g, EW_THREADS, 0, st>>>(ids, n, table, dim, out);
    return cudaGetLastError();
}

/* the next decode step's inputs from this one's sampled ids: ids[i] = sampled[i], pos[i] += 1 */
__global__ void k_feed_tokens(const int32_t *sampled, int32_t *ids, int32_t *pos, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        ids[i] = sampled[i];
        pos[i] += 1;
    }
}

cudaError_t elk_feed_tokens(cudaStream_t st, const int32_t *sampled, int32_t *ids, int32_t *pos, int64_t n) {
    if (n <= 0) return cudaSuccess;
    k_feed_tokens<<<ew_grid(n), EW_THREADS, 0, st>>>(sampled, ids, pos, n);
    return cudaGetLastError();
}

template <int T>
__global__ void k_rmsnorm(const float *x, const void *w, int64_t dim, float eps, float *y) {
    __shared__ float red[32];
    const float *xr = x + blockIdx.x * dim;
    float *yr = y + blockIdx.x * dim;
    float ss = 0.f;
    const bool vec = (dim & 3) == 0;
    if (vec) {
        const float4 *x4 = (const float4 *)xr;
        for (int64_t i = threadIdx.x; i < dim / 4; i += blockDim.x) {
            float4 v = x4[i];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
    }
    ss = elk_block_sum(ss, red);
    const float inv = rsqrtf(ss / (float)dim + eps);
    if (vec) {
        const float4 *x4 = (const float4 *)xr;
        float4 *y4 = (float4 *)yr;
        for (int64_t i = threadIdx.x; i < dim / 4; i += blockDim.x) {
            float4 v = x4[i];
            v.x = v.x * inv * elk_ld<T>(w, 4 * i + 0);
            v.y = v.y * inv * elk_ld<T>(w, 4 * i + 1);
            v.z = v.z * inv * elk_ld<T>(w, 4 * i + 2);
            v.w = v.w * inv * elk_ld<T>(w, 4 * i + 3);
            y4[i] = v;
        }
    } else {
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * inv * elk_ld<T>(w, i);
    }
}

cudaError_t elk_rmsnorm(cudaStream_t st, const float *x, const void *w, int wt, int64_t rows, int64_t dim,
                        float eps, float *y) {
    if (rows <= 0) return cudaSuccess;
    int th = dim >= 1024 ? 256 : 128;
    if (wt == ELK_F32) k_rmsnorm<ELK_F32><<<(unsigned)rows, th, 0, st>>>(x, w, dim, eps, y);
    else if (wt == ELK_F16) k_rmsnorm<ELK_F16><<<(unsigned)rows, th, 0, st>>>(x, w, dim, eps, y);
    else k_rmsnorm<ELK_BF16><<<(unsigned)rows, th, 0, st>>>(x, w, dim, eps, y);
    return cudaGetLastError();
}

__global__ void k_rope(float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t half, const int32_t *pos,
                       const float *inv_freq, float s) {
    const int64_t total = n_tok * n_heads * half;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % half, th = e / half; /* th = t * n_heads + h */
        int64_t t = th / n_heads;
        float a = (float)pos[t] * inv_freq[i]; /* fp32 product, as HF */
        float sn, c;
        sincosf(a, &sn, &c);
        c *= s;
        sn *= s;
        float *xh = x + th * head_dim;
        float x1 = xh[i], x2 = xh[i + half];
        xh[i] = x1 * c - x2 * sn;
        xh[i + half] = x2 * c + x1 * sn;
    }
}

cudaError_t elk_rope(cudaStream_t st, float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                     const int32_t *pos, const float *inv_freq, float attn_scale) {
    int64_t half = n_rot / 2;
    if (n_tok <= 0 || half <= 0) return cudaSuccess;
    k_rope<<<ew_grid(n_tok * n_heads * half), EW_THREADS, 0, st>>>(x, n_tok, n_heads, head_dim, half, pos, inv_freq,
                                                                   attn_scale);
    return cudaGetLastError();
}

template <int T>
__global__ void k_kv_store(const float *k, const float *v, int64_t n_tok, int64_t n_head_kv, int64_t head_dim,
                           const int32_t *slot, const int32_t *pos, void *kc, void *vc, int64_t cap) {
    const int64_t total = n_tok * n_head_kv * head_dim;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t d = e % head_dim, th = e / head_dim;
        int64_t h = th % n_head_kv, t = th / n_head_kv;
        int64_t p = pos[t];
        if (p < 0 || p >= cap || slot[t] < 0) continue;
        int64_t dst = (((int64_t)slot[t] * n_head_kv + h) * cap + p) * head_dim + d;
        elk_st<T>(kc, dst, k[e]);
        elk_st<T>(vc, dst, v[e]);
    }
}

/* fp8 cache: e4m3(x / scale) with the conversion of kernels/e4m3.h (bit-identical to the C reference) */
__global__ void k_kv_store_e4m3(const float *k, const float *v, int64_t n_tok, int64_t n_head_kv, int64_t head_dim,
                                const int32_t *slot, const int32_t *pos, uint8_t *kc, uint8_t *vc, float ks, float vs,
                                int64_t cap) {
    const int64_t total = n_tok * n_head_kv * head_dim;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t d = e % head_dim, th = e / head_dim;
        int64_t h = th % n_head_kv, t = th / n_head_kv;
        int64_t p = pos[t];
        if (p < 0 || p >= cap || slot[t] < 0) continue;
        int64_t dst = (((int64_t)slot[t] * n_head_kv + h) * cap + p) * head_dim + d;
        kc[dst] = el_e4m3_from_f32(__fdiv_rn(k[e], ks));
        vc[dst] = el_e4m3_from_f32(__fdiv_rn(v[e], vs));
    }
}

cudaError_t elk_kv_store(cudaStream_t st, const float *k, const float *v, int64_t n_tok, int64_t n_head_kv,
                         int64_t head_dim, const int32_t *slot, const int32_t *pos, void *k_cache, void *v_cache,
                         int kv_t, float k_scale, float v_scale, int64_t cap) {
    int64_t total = n_tok * n_head_kv * head_dim;
    if (total <= 0) return cudaSuccess;
    unsigned g = ew_grid(total);
    if (kv_t == ELK_E4M3)
        k_kv_store_e4m3<<<g, EW_THREADS, 0, st>>>(k, v, n_tok, n_head_kv, head_dim, slot, pos, (uint8_t *)k_cache,
                                                  (uint8_t *)v_cache, k_scale, v_scale, cap);
    else if (kv_t == ELK_F32)
        k_kv_store<ELK_F32><<<g, EW_THREADS, 0, st>>>(k, v, n_tok, n_head_kv, head_dim, slot, pos, k_cache, v_cache, cap);
    else if (kv_t == ELK_F16)
        k_kv_store<ELK_F16><<<g, EW_THREADS, 0, st>>>(k, v, n_tok, n_head_kv, head_dim, slot, pos, k_cache, v_cache, cap);
    else
        k_kv_store<ELK_BF16><<<g, EW_THREADS, 0, st>>>(k, v, n_tok, n_head_kv, head_dim, slot, pos, k_cache, v_cache, cap);
    return cudaGetLastError();
}

__global__ void k_swiglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g / (1.f + expf(-g)) * up[i];
    }
}

cudaError_t elk_swiglu(cudaStream_t st, const float *gate, const float *up, float *out, int64_t n) {
    if (n <= 0) return cudaSuccess;
    k_swiglu<<<ew_grid(n), EW_THREADS, 0, st>>>(gate, up, out, n);
    return cudaGetLastError();
}

__global__ void k_add(float *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

cudaError_t elk_add(cudaStream_t st, float *y, const float *x, int64_t n) {
    if (n <= 0) return cudaSuccess;
    k_add<<<ew_grid(n), EW_THREADS, 0, st>>>(y, x, n);
    return cudaGetLastError();
}

template <int T> __global__ void k_convert(const float *src, void *dst, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        elk_st<T>(dst, i, src[i]);
}

cudaError_t elk_convert_f32(cudaStream_t st, const float *src, void *dst, int dt, int64_t n) {
    if (n <= 0) return cudaSuccess;
    if (dt == ELK_F16) k_convert<ELK_F16><<<ew_grid(n), EW_THREADS, 0, st>>>(src, dst, n);
    else if (dt == ELK_BF16) k_convert<ELK_BF16><<<ew_grid(n), EW_THREADS, 0, st>>>(src, dst, n);
    else k_convert<ELK_F32><<<ew_grid(n), EW_THREADS, 0, st>>>(src, dst, n);
    return cudaGetLastError();
}

__global__ void k_add_bias(float *y, const float *bias, int64_t m, int64_t n, int64_t ldy) {
    const int64_t total = m * n;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / n, j = e - i * n;
        y[i * ldy + j] += bias[j];
    }
}

cudaError_t elk_add_bias(cudaStream_t st, float *y, const float *bias, int64_t m, int64_t n, int64_t ldy) {
    if (m * n <= 0) return cudaSuccess;
    k_add_bias<<<ew_grid(m * n), EW_THREADS, 0, st>>>(y, bias, m, n, ldy);
    return cudaGetLastError();
}
