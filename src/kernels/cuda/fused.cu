/*
 * fused.cu - decode-step kernels that replace chains of small kernels (batch-1 decode is bound by the
 * ~2.5-4 us every launch costs at least, not by the work of the small ops):
 *
 *   k_fgemv           rmsnorm + up to 3 GEMVs (q, k, v) in one launch; GEMV + residual add (o_proj,
 *                     down_proj); rmsnorm + gate and up GEMV + SwiGLU (the MLP input side)
 *   k_qk_rope_store   q_norm / k_norm (Qwen3) + RoPE of q and k + the KV-cache store of k and v
 *
 * k_fgemv: 128 threads per block, a block owns R consecutive rows of one matrix (SWIGLU: row j of gate
 * and of up for R rows j). The threads stride together over k in 16-byte weight vectors loaded with
 * ld.global.nc.L1::no_allocate (as gemv.cu), R (2R) independent loads in flight per thread per step, the
 * loop unrolled by 2; x is read as float4 through L1/L2. With a norm weight g, every block reads all of
 * x anyway, so it accumulates sum(x^2) in the same loop, multiplies x by g elementwise and applies
 * r = rsqrt(sum(x^2)/k + eps) to the finished dot products: (x r g) W^T = r (x g) W^T. The partial sums
 * (and sum(x^2)) are reduced by warp shuffles and through shared memory; thread r < R writes row0 + r.
 * Tail rows re-read row n - 1 and are not stored. A scalar variant (one row per block, element loads)
 * takes k not a multiple of the vector width or unaligned pointers.
 *
 * Programmatic dependent launch (pdl = true, sm_90+): the kernels are launched with
 * cudaLaunchAttributeProgrammaticStreamSerialization, so a kernel's blocks may start while the previous
 * kernel of the stream still runs. Each kernel lets its dependents start at once
 * (griddepcontrol.launch_dependents) and waits for its predecessor's completion (griddepcontrol.wait)
 * before it reads activations or writes anything; k_fgemv issues its first weight loads before the wait
 * (weights are constant), so the weight stream of the next GEMV overlaps the tail of the previous kernel.
 * Transitively every earlier kernel is complete once the wait returns (the predecessor waited too).
 *
 * k_qk_rope_store: one block per (token, head) over the n_head q heads and n_head_kv k heads; a k-head
 * block also stores the v head. The head is staged in shared memory (the norm needs all of it, RoPE
 * pairs i and i + n_rot/2), the arithmetic is that of k_rmsnorm / k_rope in elementwise.cu.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fused.cuh"
#include "kernels/cuda/fused_ops.cuh"
#include "kernels/cuda/pdl.cuh"

#include <math.h>
#include <string.h>

#define FG_THREADS 128

/* One 16-byte weight vector as floats: 8 for F16/BF16, 4 for F32. */
template <int WT> struct fgv;
template <> struct fgv<ELK_BF16> {
    static constexpr int N = 8;
    static __device__ __forceinline__ void cvt(uint4 u, float *f) {
        const uint32_t a[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[2 * i] = __uint_as_float(a[i] << 16);
            f[2 * i + 1] = __uint_as_float(a[i] & 0xffff0000u);
        }
    }
};
template <> struct fgv<ELK_F16> {
    static constexpr int N = 8;
    static __device__ __forceinline__ void cvt(uint4 u, float *f) {
        const uint32_t a[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[2 * i] = elk_f16_bits_to_f32((uint16_t)(a[i] & 0xffffu));
            f[2 * i + 1] = elk_f16_bits_to_f32((uint16_t)(a[i] >> 16));
        }
    }
};
template <> struct fgv<ELK_F32> {
    static constexpr int N = 4;
    static __device__ __forceinline__ void cvt(uint4 u, float *f) {
        f[0] = __uint_as_float(u.x);
        f[1] = __uint_as_float(u.y);
        f[2] = __uint_as_float(u.z);
        f[3] = __uint_as_float(u.w);
    }
};

/* acc[r] += (x g) . w_r over one 16-byte vector v of every row (ss += x . x when norm) */
template <int WT, int NR>
static __device__ __forceinline__ void fg_step(const uint4 (&wv)[NR], const float *__restrict__ x,
                                               const float *__restrict__ g, bool norm, int64_t v,
                                               float (&acc)[NR], float &ss) {
    constexpr int V = fgv<WT>::N;
    float xf[V];
#pragma unroll
    for (int j = 0; j < V / 4; j++) {
        const float4 t = __ldg((const float4 *)(x + v * V) + j);
        xf[4 * j] = t.x;
        xf[4 * j + 1] = t.y;
        xf[4 * j + 2] = t.z;
        xf[4 * j + 3] = t.w;
    }
    if (norm) {
#pragma unroll
        for (int j = 0; j < V / 4; j++) {
            const float4 t = __ldg((const float4 *)(g + v * V) + j);
            ss = fmaf(xf[4 * j], xf[4 * j], ss);
            ss = fmaf(xf[4 * j + 1], xf[4 * j + 1], ss);
            ss = fmaf(xf[4 * j + 2], xf[4 * j + 2], ss);
            ss = fmaf(xf[4 * j + 3], xf[4 * j + 3], ss);
            xf[4 * j] *= t.x;
            xf[4 * j + 1] *= t.y;
            xf[4 * j + 2] *= t.z;
            xf[4 * j + 3] *= t.w;
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        float wf[V];
        fgv<WT>::cvt(wv[r], wf);
#pragma unroll
        for (int j = 0; j < V; j++)
            acc[r] = fmaf(xf[j], wf[j], acc[r]);
    }
}

template <int WT, int R, int MODE, bool VEC>
__global__ void __launch_bounds__(FG_THREADS) k_fgemv(const elk_fg_ops a) {
    constexpr int NM = MODE == ELK_FG_SWIGLU ? 2 : 1; /* matrices read per block */
    constexpr int NR = NM * R;
    constexpr int ESZ = WT == ELK_F32 ? 4 : 2;
    int mi;
    const unsigned tile = elk_fg_tile<MODE>(a, blockIdx.x, mi);
    const void *w0 = mi == 0 ? a.w[0] : mi == 1 ? a.w[1] : a.w[2];
    const int64_t n = mi == 0 ? a.n[0] : mi == 1 ? a.n[1] : a.n[2];
    const int64_t k = a.k;
    const int64_t row0 = (int64_t)tile * R;
    const char *wrow[NR];
#pragma unroll
    for (int m = 0; m < NM; m++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int64_t row = row0 + r < n ? row0 + r : n - 1;
            wrow[m * R + r] = (const char *)(m == 0 ? w0 : a.w[1]) + row * k * ESZ;
        }
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.f;
    float ss = 0.f;
    const float *__restrict__ x = a.x;
    const float *__restrict__ g = a.g;
    const bool norm = g != NULL;

    pdl_launch_dependents();
    if (VEC) {
        constexpr int V = fgv<WT>::N;
        const int64_t nv = k / V;
        /* two vectors per row in flight per thread (v, v + FG_THREADS); the first two are loaded before
         * the wait (weights do not depend on earlier kernels), so they stream during the previous
         * kernel's tail. k <= 2048 (bf16) is then a single round trip. */
        uint4 wa[NR], wb[NR];
        int64_t v = threadIdx.x;
        const bool a0 = v < nv, b0 = v + FG_THREADS < nv;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (a0) wa[r] = elk_ldg_stream(wrow[r] + v * 16);
            if (b0) wb[r] = elk_ldg_stream(wrow[r] + (v + FG_THREADS) * 16);
        }
        pdl_wait();
        for (; v < nv; v += 2 * FG_THREADS) {
            const bool hb = v + FG_THREADS < nv;
            fg_step<WT, NR>(wa, x, g, norm, v, acc, ss);
            if (hb) fg_step<WT, NR>(wb, x, g, norm, v + FG_THREADS, acc, ss);
            const int64_t vn = v + 2 * FG_THREADS;
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (vn < nv) wa[r] = elk_ldg_stream(wrow[r] + vn * 16);
                if (vn + FG_THREADS < nv) wb[r] = elk_ldg_stream(wrow[r] + (vn + FG_THREADS) * 16);
            }
        }
    } else {
        pdl_wait();
        for (int64_t i = threadIdx.x; i < k; i += FG_THREADS) {
            float xv = x[i];
            if (norm) {
                ss = fmaf(xv, xv, ss);
                xv *= g[i];
            }
#pragma unroll
            for (int r = 0; r < NR; r++)
                acc[r] = fmaf(xv, elk_ld<WT>(wrow[r], i), acc[r]);
        }
    }

    __shared__ float red[FG_THREADS / 32][NR + 1];
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const float s = elk_warp_sum(acc[r]);
        if (lane == 0) red[wp][r] = s;
    }
    if (norm) {
        const float s = elk_warp_sum(ss);
        if (lane == 0) red[wp][NR] = s;
    }
    __syncthreads();
    if (threadIdx.x >= R) return;
    const int r = threadIdx.x;
    const int64_t row = row0 + r;
    if (row >= n) return;
    float scale = 1.f;
    if (norm) {
        float s2 = 0.f;
#pragma unroll
        for (int i = 0; i < FG_THREADS / 32; i++)
            s2 += red[i][NR];
        scale = rsqrtf(s2 / (float)k + a.eps);
    }
    float s = 0.f, u = 0.f;
#pragma unroll
    for (int i = 0; i < FG_THREADS / 32; i++)
        s += red[i][r];
    if (MODE == ELK_FG_SWIGLU) {
#pragma unroll
        for (int i = 0; i < FG_THREADS / 32; i++)
            u += red[i][R + r];
    }
    elk_fg_store<MODE>(a, mi, row, s * scale, u * scale);
}

template <int WT, int MODE>
static cudaError_t fg_launch(cudaStream_t st, const elk_fg_ops &a, int64_t rows, bool vec, int n_sm, bool pdl) {
    const int R = !vec ? 1 : rows >= (int64_t)n_sm * 16 ? 4 : rows >= (int64_t)n_sm * 8 ? 2 : 1;
    elk_fg_ops b = a;
    const int64_t blocks = elk_fg_tiles(b, R, MODE);
    if (blocks < 0) return cudaErrorInvalidValue;
    if (blocks == 0) return cudaSuccess;
    const unsigned nb = (unsigned)blocks;
    void (*kern)(const elk_fg_ops) = !vec     ? k_fgemv<WT, 1, MODE, false>
                                  : R == 4 ? k_fgemv<WT, 4, MODE, true>
                                  : R == 2 ? k_fgemv<WT, 2, MODE, true>
                                           : k_fgemv<WT, 1, MODE, true>;
    return elk_launch_ex(kern, dim3(nb), dim3(FG_THREADS), 0, st, pdl, b);
}

template <int WT>
static cudaError_t fg_mode(cudaStream_t st, const elk_fg_ops &a, int64_t rows, bool vec, int mode, int n_sm,
                           bool pdl) {
    if (mode == ELK_FG_SWIGLU) return fg_launch<WT, ELK_FG_SWIGLU>(st, a, rows, vec, n_sm, pdl);
    if (mode == ELK_FG_ACCUM) return fg_launch<WT, ELK_FG_ACCUM>(st, a, rows, vec, n_sm, pdl);
    return fg_launch<WT, ELK_FG_STORE>(st, a, rows, vec, n_sm, pdl);
}

cudaError_t elk_fused_gemv(cudaStream_t st, const float *x, int64_t k, const float *norm_w, float eps, int wt,
                           int n_w, const void *const *w, const int64_t *n, const float *const *bias,
                           float *const *y, int mode, int n_sm, bool pdl) {
    elk_fg_ops a;
    if (!elk_fg_fill(a, x, k, norm_w, eps, n_w, w, n, bias, y, mode)) return cudaErrorInvalidValue;
    if (n_sm <= 0) n_sm = 1;
    const int V = wt == ELK_F32 ? 4 : 8;
    bool vec = k % V == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)norm_w & 15) == 0;
    const int64_t rows = a.n[0] + a.n[1] + a.n[2]; /* SWIGLU: n[0] (the pair's rows) */
    for (int i = 0; i < n_w; i++)
        vec = vec && ((uintptr_t)w[i] & 15) == 0;
    if (wt == ELK_BF16) return fg_mode<ELK_BF16>(st, a, rows, vec, mode, n_sm, pdl);
    if (wt == ELK_F16) return fg_mode<ELK_F16>(st, a, rows, vec, mode, n_sm, pdl);
    return fg_mode<ELK_F32>(st, a, rows, vec, mode, n_sm, pdl);
}

/* ---- q/k norm + RoPE + KV store ---- */

template <int KT>
__global__ void
k_qk_rope_store(float *__restrict__ q, float *__restrict__ k, const float *__restrict__ v, int n_head,
                int n_head_kv, int hd, const float *__restrict__ qn, const float *__restrict__ kn, float eps,
                int half, const int32_t *__restrict__ pos, const float *__restrict__ inv_freq, float s,
                const int32_t *__restrict__ slot, void *__restrict__ kc, void *__restrict__ vc, int64_t cap) {
    extern __shared__ float sh[]; /* [hd] */
    __shared__ float red[32];
    const int64_t t = blockIdx.x;
    const int h = blockIdx.y;
    const bool isq = h < n_head;
    const int hk = h - n_head;
    float *xh = isq ? q + (t * n_head + h) * hd : k + (t * n_head_kv + hk) * hd;
    const float *nw = isq ? qn : kn;
    pdl_launch_dependents();
    pdl_wait();
    float ss = 0.f;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        const float xv = xh[d];
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
    const int64_t p = pos[t];
    const float pf = (float)pos[t];
    const int sl = isq ? -1 : slot[t];
    const bool store = !isq && p >= 0 && p < cap && sl >= 0;
    const int64_t dst = store ? (((int64_t)sl * n_head_kv + hk) * cap + p) * hd : 0;
    const float *vh = v + (t * n_head_kv + (isq ? 0 : hk)) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = sh[d];
        if (d < 2 * half) {
            const int i = d < half ? d : d - half;
            const float a = pf * inv_freq[i]; /* fp32 product, as HF */
            float sn, c;
            sincosf(a, &sn, &c);
            c *= s;
            sn *= s;
            const float x1 = sh[i], x2 = sh[i + half];
            o = d < half ? x1 * c - x2 * sn : x2 * c + x1 * sn;
        }
        xh[d] = o;
        if (store) {
            elk_st<KT>(kc, dst + d, o);
            elk_st<KT>(vc, dst + d, vh[d]);
        }
    }
}

cudaError_t elk_qk_rope_store(cudaStream_t st, float *q, float *k, const float *v, int64_t n_tok,
                              int64_t n_head, int64_t n_head_kv, int64_t hd, const float *q_norm,
                              const float *k_norm, float eps, int64_t n_rot, const int32_t *pos,
                              const float *inv_freq, float attn_scale, const int32_t *slot, void *k_cache,
                              void *v_cache, int kv_t, int64_t cap, bool pdl) {
    if (n_tok <= 0) return cudaSuccess;
    if (n_tok > 0x7fffffff || n_head + n_head_kv > 65535 || hd <= 0 || hd > 1024 || n_rot < 0 || n_rot > hd ||
        (n_rot & 1))
        return cudaErrorInvalidValue;
    const int th = hd >= 128 ? 128 : (int)((hd + 31) / 32 * 32);
    const dim3 grid((unsigned)n_tok, (unsigned)(n_head + n_head_kv));
    const size_t smem = (size_t)hd * sizeof(float);
    const int half = (int)(n_rot / 2);
    void (*kern)(float *, float *, const float *, int, int, int, const float *, const float *, float, int,
                 const int32_t *, const float *, float, const int32_t *, void *, void *, int64_t) =
        kv_t == ELK_F32   ? k_qk_rope_store<ELK_F32>
        : kv_t == ELK_F16 ? k_qk_rope_store<ELK_F16>
                          : k_qk_rope_store<ELK_BF16>;
    return elk_launch_ex(kern, grid, dim3(th), smem, st, pdl, q, k, v, (int)n_head, (int)n_head_kv, (int)hd,
                         q_norm, k_norm, eps, half, pos, inv_freq, attn_scale, slot, k_cache, v_cache, cap);
}
