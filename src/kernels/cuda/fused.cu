/*
 * fused.cu - decode-step kernels that replace chains of small kernels (batch-1 decode is bound by the
 * ~2.5-4 us every launch costs at least, not by the work of the small ops):
 *
 *   k_fgemv           rmsnorm + up to 3 GEMVs (q, k, v) in one launch; GEMV + residual add (o_proj,
 *                     down_proj); rmsnorm + gate and up GEMV + SwiGLU (the MLP input side)
 *   k_fq              the ops of k_fgemv for fp8, w8a8 and nvfp4 weights (elk_fused_q)
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
 * k_fq: the block layout, weight stream and epilogue of k_fgemv, 16-byte vectors of 16 e4m3 / int8 codes or 32 e2m1
 * codes (with the two e4m3 block scales of the vector, loaded alongside). Formats that quantize the activations (w8a8,
 * static fp8) must see the op chain's h bit for bit: after the wait every block computes h = x * inv * g with inv from
 * the sum of squares in elk_rmsnorm's order, max |h| for dynamic w8a8, and the codes of h (qact.cuh, as the qgemv
 * pre-kernels) into shared memory (fq_codes_rows: each thread's float4s of x and g requested at once, one L2 round trip
 * for k <= 2048; per-pass loops for unaligned x or k % 16 != 0, and as the A/B reference), one array per distinct scale
 * (SWIGLU's up may have its own static scale); the dot products read them as 16-byte vectors (w8a8: dp4a into int32,
 * exact; fp8: e4m3 values * 2^-8 both sides, products exact in f32), and the epilogue applies the reference's scale
 * order. Weight-only fp8 and nvfp4 use x (times g) directly and scale the sums by the norm's rsqrt as k_fgemv.
 * Per-element variants take k % 16 != 0 (8-bit formats), odd nvfp4 block counts and unaligned x.
 *
 * k_qk_rope_store: one block per (token, head) over the n_head q heads and n_head_kv k heads; a k-head
 * block also stores the v head. The head is staged in shared memory (the norm needs all of it, RoPE
 * pairs i and i + n_rot/2), the arithmetic is that of k_rmsnorm / k_rope in elementwise.cu.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fused.cuh"
#include "kernels/cuda/fused_ops.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/qact.cuh"
#include "kernels/cuda/rope.cuh"

#include <math.h>
#include <string.h>

int elk_pdl_late = 4; /* cuda_kernels.cuh */

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

template <int WT, int R, int MODE, bool VEC, int D>
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

    if (!a.late_trig) pdl_launch_dependents();
    if (VEC) {
        constexpr int V = fgv<WT>::N;
        const int64_t nv = k / V;
        /* D vectors per row in flight per thread (v, v + FG_THREADS, ...; slot d refilled as soon as it is
         * consumed); the first D are loaded before the wait (weights do not depend on earlier kernels), so
         * they stream during the previous kernel's tail. The sums run over v in the same order for any D. */
        uint4 wb[D][NR];
        int64_t v = threadIdx.x;
#pragma unroll
        for (int d = 0; d < D; d++)
#pragma unroll
            for (int r = 0; r < NR; r++)
                if (v + d * FG_THREADS < nv) wb[d][r] = elk_ldg_stream(wrow[r] + (v + d * FG_THREADS) * 16);
        pdl_wait();
        if (a.late_trig) pdl_launch_dependents();
        for (; v < nv; v += D * FG_THREADS) {
#pragma unroll
            for (int d = 0; d < D; d++) {
                if (v + d * FG_THREADS < nv) fg_step<WT, NR>(wb[d], x, g, norm, v + d * FG_THREADS, acc, ss);
                const int64_t vn = v + (D + d) * FG_THREADS;
#pragma unroll
                for (int r = 0; r < NR; r++)
                    if (vn < nv) wb[d][r] = elk_ldg_stream(wrow[r] + vn * 16);
            }
        }
    } else {
        pdl_wait();
        if (a.late_trig) pdl_launch_dependents();
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

extern "C" int elk_fg_depth; /* cuda_kernels.cuh */
int elk_fg_depth = 0;

template <int WT, int MODE>
static cudaError_t fg_launch(cudaStream_t st, const elk_fg_ops &a, int64_t rows, bool vec, int n_sm, bool pdl) {
    const int R = !vec ? 1 : rows >= (int64_t)n_sm * 16 ? 4 : rows >= (int64_t)n_sm * 8 ? 2 : 1;
    elk_fg_ops b = a;
    const int64_t blocks = elk_fg_tiles(b, R, MODE);
    if (blocks < 0) return cudaErrorInvalidValue;
    if (blocks == 0) return cudaSuccess;
    const unsigned nb = (unsigned)blocks;
    /* 4 vectors per row in flight where a thread's whole share of a row is 3-4 vectors (all of it requested before
     * the wait, while the previous kernel runs) and the block reads <= 2 rows, else 2. H200, bf16 decode: Qwen3-0.6B
     * (down_proj, k 3072, 1 row per block) 1008-1011 -> 1023-1026 tok/s; the same with 4 rows per block (Llama-3.1-8B
     * q/k/v, o, lm_head) 221.6 -> 213.8, and 4 deep on longer rows (8B down) 221.5 -> 219.5: not taken.
     * elk_fg_depth 2 / 4 forces one (tests, EDGELLM_FG_DEPTH A/B) */
    const int64_t per_thread = (a.k / (WT == ELK_F32 ? 4 : 8) + FG_THREADS - 1) / FG_THREADS;
    const bool d4 = elk_fg_depth ? elk_fg_depth == 4
                                 : per_thread > 2 && per_thread <= 4 && R * (MODE == ELK_FG_SWIGLU ? 2 : 1) <= 2;
    void (*kern)(const elk_fg_ops) = !vec     ? k_fgemv<WT, 1, MODE, false, 2>
                                  : R == 4 ? (d4 ? k_fgemv<WT, 4, MODE, true, 4> : k_fgemv<WT, 4, MODE, true, 2>)
                                  : R == 2 ? (d4 ? k_fgemv<WT, 2, MODE, true, 4> : k_fgemv<WT, 2, MODE, true, 2>)
                                           : (d4 ? k_fgemv<WT, 1, MODE, true, 4> : k_fgemv<WT, 1, MODE, true, 2>);
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

/* ---- fp8, w8a8 and nvfp4 weights (elk_fused_q) ---- */

/* kernel argument besides elk_fg_ops: the quants offset of each matrix, x and g 16-byte aligned */
struct elk_fq_off {
    uint64_t q[3];
    bool xal;
    bool slow; /* codes formats: the per-pass loops instead of fq_codes_rows (elk_fq_slow_codes) */
    const uint8_t *pre; /* codes formats: k_fq_pre's slots (fq_pre_slot bytes each), NULL: every block makes them */
};

/* bytes of a k_fq_pre slot for k (a multiple of 16): sx[0], sx[NM - 1], the two-codes flag, padding, 2 k codes */
static __host__ __device__ __forceinline__ int64_t fq_pre_slot(int64_t k) {
    return 16 + 2 * k;
}

extern "C" int elk_fq_slow_codes; /* cuda_kernels.cuh */
int elk_fq_slow_codes = 0;
extern "C" int elk_fq_pre; /* cuda_kernels.cuh */
int elk_fq_pre = -1;
/* H200, decode tok/s (tests/gpu/ab.sh, context 128-256), codes in every block / once per op for every k / for
 * k >= 2048 / 3072 / 4096: Llama-3.2-1B fp8 934 / 954 / 955 / 963 / 963, int8_sq 921 / 974 / 975 / 958 / 959;
 * Qwen3-0.6B fp8 804 / 773 / 761 / 801 / 805, int8_sq 794 / 768 / 753 / 803 / 794 (the pre-kernel's launch and
 * L2 round trip outweigh a 1-2K-element prologue); 8-layer Llama-3.1-8B (every k >= 4096) fp8 758 -> 842,
 * int8_sq 741 -> 898 */
extern "C" int elk_fq_pre_min_k;
int elk_fq_pre_min_k = 4096;

enum { FQ_FP8 = 0, FQ_FP8S = 1, FQ_W8A8 = 2, FQ_NVFP4 = 3 }; /* fp8 weight-only / static activations, ... */

template <bool I> struct fq_acc {
    typedef float T;
};
template <> struct fq_acc<true> {
    typedef int T;
};
template <typename T> static __device__ __forceinline__ T fq_warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* sum of x[c]^2 over c < k, bit-identical to elk_rmsnorm's (elementwise.cu: k_rmsnorm, T = 256 threads when
 * k >= 1024, else 128; terms of 4 elements when k % 4 == 0): thread t plays threads t and t + 128 of the T, the
 * warp sums and the block sum are those of elk_block_sum. Every thread gets the sum; red: __shared__ float[32],
 * not in use. xal: x is 16-byte aligned. */
static __device__ __forceinline__ float fq_sumsq(const float *__restrict__ x, int64_t k, bool xal, float *red) {
    const int T = k >= 1024 ? 256 : 128;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    for (int hv = 0; hv < T / FG_THREADS; hv++) {
        const int t = threadIdx.x + hv * FG_THREADS;
        float ss = 0.f;
        if ((k & 3) == 0) {
            for (int64_t i = t; i < k / 4; i += T) {
                const float4 v = xal ? __ldg((const float4 *)x + i)
                                     : make_float4(__ldg(x + 4 * i), __ldg(x + 4 * i + 1), __ldg(x + 4 * i + 2),
                                                   __ldg(x + 4 * i + 3));
                ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            }
        } else {
            for (int64_t i = t; i < k; i += T) {
                const float v = __ldg(x + i);
                ss += v * v;
            }
        }
        ss = elk_warp_sum(ss);
        if (lane == 0) red[wp + hv * (FG_THREADS / 32)] = ss;
    }
    __syncthreads();
    return elk_warp_sum(lane < T / 32 ? red[lane] : 0.f);
}

/* h[c0 .. c0 + 3] (0 beyond k): x, or x * inv * g as k_rmsnorm rounds it when g is given */
static __device__ __forceinline__ void fq_h4(const float *__restrict__ x, const float *__restrict__ g, float inv,
                                             int64_t c0, int64_t k, bool xal, float (&h)[4]) {
    float xv[4], gv[4] = {1.f, 1.f, 1.f, 1.f};
    ldx<4>(x, c0, k, xal, xv);
    if (g) ldx<4>(g, c0, k, xal, gv);
#pragma unroll
    for (int t = 0; t < 4; t++)
        h[t] = g ? xv[t] * inv * gv[t] : xv[t];
}

/* Codes formats (w8a8, static fp8): acc[r] += xq . q_r over the 16-byte weight vector v of every row; the codes
 * of the block's first matrix at cx0, of the second (SWIGLU up) at cx1. w8a8: exact int32 (dp4a); fp8: e4m3
 * values * 2^-8 on both sides (every product exact in f32). */
template <int F, int NM, int NR, typename AT>
static __device__ __forceinline__ void fq_step_codes(const uint4 (&wv)[NR], const uint8_t *cx0, const uint8_t *cx1,
                                                     int64_t v, AT (&acc)[NR]) {
    constexpr int R = NR / NM;
    if constexpr (F == FQ_W8A8) {
        const int4 x0 = *(const int4 *)(cx0 + v * 16);
        const int4 x1 = NM == 2 ? *(const int4 *)(cx1 + v * 16) : x0;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            const int4 xv = r < R ? x0 : x1;
            AT s = acc[r];
            s = __dp4a((int)wv[r].x, xv.x, s);
            s = __dp4a((int)wv[r].y, xv.y, s);
            s = __dp4a((int)wv[r].z, xv.z, s);
            s = __dp4a((int)wv[r].w, xv.w, s);
            acc[r] = s;
        }
    } else {
        float xf[NM][16];
#pragma unroll
        for (int m = 0; m < NM; m++) {
            const uint4 u = *(const uint4 *)((m ? cx1 : cx0) + v * 16);
            e4m3x4(u.x, xf[m]);
            e4m3x4(u.y, xf[m] + 4);
            e4m3x4(u.z, xf[m] + 8);
            e4m3x4(u.w, xf[m] + 12);
        }
#pragma unroll
        for (int r = 0; r < NR; r++)
#pragma unroll
            for (int wi = 0; wi < 4; wi++) {
                float wf[4];
                e4m3x4(wi == 0 ? wv[r].x : wi == 1 ? wv[r].y : wi == 2 ? wv[r].z : wv[r].w, wf);
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[r] = fmaf(xf[r / R][4 * wi + j], wf[j], acc[r]);
            }
    }
}

/* Weight-only formats (fp8 without activation scale, nvfp4): acc[r] += (x g) . w_r over the 16-byte weight vector v
 * of every row (fp8: 16 e4m3 values * 2^-8; nvfp4: two blocks of 16 e2m1 values * 2^-14, each block's sum times
 * its e4m3 scale * 2^-8, sv = the two scale bytes), ss += x . x when norm, as k_fgemv. */
template <int F, int NR>
static __device__ __forceinline__ void fq_step_f(const uint4 (&wv)[NR], const uint32_t (&sv)[NR],
                                                 const float *__restrict__ x, const float *__restrict__ g, bool norm,
                                                 int64_t v, int64_t k, float (&acc)[NR], float &ss) {
    constexpr int V = F == FQ_NVFP4 ? 32 : 16;
    float xf[V];
    ldx<V>(x, v * V, k, true, xf); /* nvfp4: zeros beyond k in the last vector */
    if (norm) {
        float gf[V];
        ldx<V>(g, v * V, k, true, gf);
#pragma unroll
        for (int j = 0; j < V; j++) {
            ss = fmaf(xf[j], xf[j], ss);
            xf[j] *= gf[j];
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const uint32_t u[4] = {wv[r].x, wv[r].y, wv[r].z, wv[r].w};
        if constexpr (F == FQ_NVFP4) {
            float sc[4];
            e4m3x4(sv[r], sc);
#pragma unroll
            for (int half = 0; half < 2; half++) {
                float part = 0.f;
#pragma unroll
                for (int wj = 0; wj < 2; wj++) {
                    float wf[8];
                    e2m1x8(u[2 * half + wj], wf);
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        part = fmaf(xf[16 * half + 8 * wj + j], wf[j], part);
                }
                acc[r] = fmaf(part, sc[half], acc[r]);
            }
        } else {
#pragma unroll
            for (int wi = 0; wi < 4; wi++) {
                float wf[4];
                e4m3x4(u[wi], wf);
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[r] = fmaf(xf[4 * wi + j], wf[j], acc[r]);
            }
        }
    }
}

/* Codes formats: whether the codes need max |h| (dynamic w8a8 on any of the block's matrices) */
template <int F, int NM> static __device__ __forceinline__ bool fq_dynamic(const uint32_t (&flg)[NM]) {
    bool dyn = false;
#pragma unroll
    for (int m = 0; m < NM; m++)
        dyn = dyn || (F == FQ_W8A8 && !(flg[m] & ELK_QF_STATIC_ACT));
    return dyn;
}
/* ... the inverse scales the codes multiply h by and the epilogue's s_x, per matrix (amax: max |h| if dynamic) */
template <int F, int NM>
static __device__ __forceinline__ void fq_act_scales(const uint32_t (&flg)[NM], const float (&act)[NM], float amax,
                                                     float (&inv)[NM], float (&sx)[NM]) {
#pragma unroll
    for (int m = 0; m < NM; m++) {
        if (F == FQ_W8A8) {
            w8a8_act_scale((flg[m] & ELK_QF_STATIC_ACT) != 0, act[m], amax, inv[m], sx[m]);
        } else {
            sx[m] = act[m];
            inv[m] = __fdiv_rn(1.0f, act[m]);
        }
    }
}
/* ... the code word of h[0 .. 3] = elements c0 .. c0 + 3 (from k on: padding, code 0) */
template <int F>
static __device__ __forceinline__ uint32_t fq_code_word(const float (&h)[4], float iv, int64_t c0, int64_t k) {
    uint32_t word = 0;
#pragma unroll
    for (int t = 0; t < 4; t++) {
        if (c0 + t >= k) continue;
        const uint32_t q = F == FQ_W8A8 ? (uint32_t)(int)w8a8_code(h[t], iv) & 0xffu : fp8_act_code(h[t], iv);
        word |= q << (8 * t);
    }
    return word;
}

/* Codes formats, x (and g) 16-byte aligned, k % 16 == 0: the codes of h into cw (as the op chain's pre-kernel, bit
 * for bit), the scales sx; returns whether SWIGLU's up has codes of its own (at cw + k bytes). Each thread holds
 * XB float4 of x (and g) at a time, all requested at once, so a row of k <= XB * 512 costs one round trip to L2
 * for the whole prologue (the loop of fq_sumsq and the code pass after it took one per float4 and pass): the sum
 * of squares in elk_rmsnorm's order (T = 256 when k >= 1024: this thread plays t and t + 128, i.e. the float4
 * t + 128 u with u even and odd), then max |h| (dynamic w8a8), then the codes. */
template <int F, int NM>
static __device__ __forceinline__ bool fq_codes_rows(const float *__restrict__ x, const float *__restrict__ g,
                                                     int64_t k, float eps, const uint32_t (&flg)[NM],
                                                     const float (&act)[NM], float *red, uint32_t *cw,
                                                     float (&sx)[NM]) {
    constexpr int XB = 4;
    const int t = threadIdx.x, lane = t & 31, wp = t >> 5;
    const int64_t k4 = k / 4, span = (int64_t)XB * FG_THREADS;
    const bool one = k4 <= span;
    const float4 *x4 = (const float4 *)x, *g4 = (const float4 *)g;
    float4 xr[XB], gr[XB];
    auto load = [&](int64_t b0) {
#pragma unroll
        for (int u = 0; u < XB; u++) {
            const int64_t i = b0 + t + (int64_t)u * FG_THREADS;
            xr[u] = i < k4 ? __ldg(x4 + i) : make_float4(0.f, 0.f, 0.f, 0.f);
            gr[u] = g && i < k4 ? __ldg(g4 + i) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
    };
    auto hrow = [&](int u, float inv, float (&h)[4]) { /* fq_h4's arithmetic */
        const float xv[4] = {xr[u].x, xr[u].y, xr[u].z, xr[u].w};
        const float gv[4] = {gr[u].x, gr[u].y, gr[u].z, gr[u].w};
#pragma unroll
        for (int c = 0; c < 4; c++)
            h[c] = g ? xv[c] * inv * gv[c] : xv[c];
    };
    if (one) load(0);
    float inv_n = 1.f;
    if (g) {
        const int T = k >= 1024 ? 256 : 128;
        float s0 = 0.f, s1 = 0.f;
        for (int64_t b0 = 0; b0 < k4; b0 += span) {
            if (!one) load(b0);
#pragma unroll
            for (int u = 0; u < XB; u++) {
                if (b0 + t + (int64_t)u * FG_THREADS >= k4) continue;
                const float4 v = xr[u];
                if (T == 256 && (u & 1))
                    s1 += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
                else
                    s0 += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            }
        }
        s0 = elk_warp_sum(s0);
        if (lane == 0) red[wp] = s0;
        if (T == 256) {
            s1 = elk_warp_sum(s1);
            if (lane == 0) red[wp + FG_THREADS / 32] = s1;
        }
        __syncthreads();
        inv_n = rsqrtf(elk_warp_sum(lane < T / 32 ? red[lane] : 0.f) / (float)k + eps);
    }
    float inv[NM], amax = 0.f;
    if (fq_dynamic<F, NM>(flg)) {
        for (int64_t b0 = 0; b0 < k4; b0 += span) {
            if (!one) load(b0);
#pragma unroll
            for (int u = 0; u < XB; u++) {
                if (b0 + t + (int64_t)u * FG_THREADS >= k4) continue;
                float h[4];
                hrow(u, inv_n, h);
                amax = fmaxf(amax, fmaxf(fmaxf(fabsf(h[0]), fabsf(h[1])), fmaxf(fabsf(h[2]), fabsf(h[3]))));
            }
        }
        amax = qa_block_max(amax, red);
    }
    fq_act_scales<F, NM>(flg, act, amax, inv, sx);
    const bool two = NM == 2 && inv[NM - 1] != inv[0];
    for (int64_t b0 = 0; b0 < k4; b0 += span) {
        if (!one) load(b0);
#pragma unroll
        for (int u = 0; u < XB; u++) {
            const int64_t i = b0 + t + (int64_t)u * FG_THREADS;
            if (i >= k4) continue;
            float h[4];
            hrow(u, inv_n, h);
            for (int m = 0; m < (two ? 2 : 1); m++)
                cw[m * k4 + i] = fq_code_word<F>(h, m == 0 ? inv[0] : inv[NM - 1], 0, 4);
        }
    }
    return two;
}

/* Codes formats, fast path (x and g 16-byte aligned, k % 16 == 0), elk_fq_pre: block mi makes the codes a k_fq block
 * of matrix mi would make (SWIGLU: one block, gate's and up's), with fq_codes_rows, into slot mi of pre: sx[0],
 * sx[NM - 1] (f32), whether up has codes of its own (int), then the codes as in shared memory. k_fq then copies
 * them instead of each of its blocks normalising and quantizing all of x (32 KB of x and g read from L2 per block on
 * Llama-3.1-8B gate/up, against 32 KB of fp8 weights). */
template <int F, int MODE>
__global__ void __launch_bounds__(FG_THREADS) k_fq_pre(const elk_fg_ops a, uint8_t *pre) {
    constexpr int NM = MODE == ELK_FG_SWIGLU ? 2 : 1;
    __shared__ float red[32];
    const int mi = (int)blockIdx.x;
    float act[NM];
    uint32_t flg[NM];
#pragma unroll
    for (int m = 0; m < NM; m++) {
        const int mm = m == 0 ? mi : 1;
        const elk_qhdr *hd = (const elk_qhdr *)(mm == 0 ? a.w[0] : mm == 1 ? a.w[1] : a.w[2]);
        act[m] = hd->act_scale;
        flg[m] = hd->flags;
    }
    pdl_launch_dependents(); /* k_fq's blocks start and request their first weights while this runs */
    pdl_wait();
    uint8_t *slot = pre + mi * fq_pre_slot(a.k);
    float sx[NM];
    const bool two = fq_codes_rows<F, NM>(a.x, a.g, a.k, a.eps, flg, act, red, (uint32_t *)(slot + 16), sx);
    if (threadIdx.x == 0) {
        ((float *)slot)[0] = sx[0];
        ((float *)slot)[1] = sx[NM - 1];
        ((int *)slot)[2] = two;
    }
}

template <int F, int R, int MODE, bool VEC>
__global__ void __launch_bounds__(FG_THREADS) k_fq(const elk_fg_ops a, const elk_fq_off o) {
    constexpr int NM = MODE == ELK_FG_SWIGLU ? 2 : 1; /* matrices read per block */
    constexpr int NR = NM * R;
    constexpr bool CODES = F == FQ_FP8S || F == FQ_W8A8;
    typedef typename fq_acc<F == FQ_W8A8>::T AT;
    extern __shared__ uint4 fq_codes[]; /* CODES: the activation codes, kq bytes per distinct scale */
    __shared__ float red[32];
    __shared__ AT racc[FG_THREADS / 32][NR];
    __shared__ float rss[FG_THREADS / 32];
    int mi;
    const unsigned tile = elk_fg_tile<MODE>(a, blockIdx.x, mi);
    const int64_t n = mi == 0 ? a.n[0] : mi == 1 ? a.n[1] : a.n[2];
    const int64_t k = a.k, nb = (k + 15) / 16;            /* nvfp4: scale blocks per row */
    const int64_t rb = F == FQ_NVFP4 ? nb * 8 : k;          /* quant bytes per row */
    const int64_t nck = F == FQ_NVFP4 ? nb / 2 : k / 16;    /* 16-byte vectors per row (VEC) */
    const int64_t row0 = (int64_t)tile * R;
    const elk_qhdr *hd[NM];
    const uint8_t *wq[NR], *ws[NR];
#pragma unroll
    for (int m = 0; m < NM; m++) {
        const int mm = m == 0 ? mi : 1;
        const uint8_t *base = (const uint8_t *)(mm == 0 ? a.w[0] : mm == 1 ? a.w[1] : a.w[2]);
        const uint64_t qo = mm == 0 ? o.q[0] : mm == 1 ? o.q[1] : o.q[2];
        hd[m] = (const elk_qhdr *)base;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int64_t row = row0 + r < n ? row0 + r : n - 1;
            wq[m * R + r] = base + qo + row * rb;
        }
    }
    AT acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0;
    float ss = 0.f;
    const float *__restrict__ x = a.x;
    const float *__restrict__ g = a.g;
    const bool norm = g != NULL;

    if (!a.late_trig) pdl_launch_dependents();
    /* weights are constant: the first two vectors per row and the headers are loaded before the wait */
    uint4 wa[NR], wb[NR];
    uint32_t sa[NR], sb[NR];
    int64_t v = threadIdx.x;
    if (VEC) {
        const bool a0 = v < nck, b0 = v + FG_THREADS < nck;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (a0) wa[r] = elk_ldg_stream(wq[r] + v * 16);
            if (b0) wb[r] = elk_ldg_stream(wq[r] + (v + FG_THREADS) * 16);
        }
    }
    float act[NM], gsc[NM];
    uint32_t flg[NM];
    uint64_t soff[NM];
#pragma unroll
    for (int m = 0; m < NM; m++) {
        act[m] = hd[m]->act_scale;
        gsc[m] = hd[m]->global_scale;
        flg[m] = hd[m]->flags;
        soff[m] = hd[m]->scales_off;
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
        ws[r] = wq[r];
    if (F == FQ_NVFP4) { /* the rows' block scales */
#pragma unroll
        for (int m = 0; m < NM; m++)
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int64_t row = row0 + r < n ? row0 + r : n - 1;
                ws[m * R + r] = (const uint8_t *)hd[m] + soff[m] + row * nb;
            }
        if (VEC) {
            const bool a0 = v < nck, b0 = v + FG_THREADS < nck;
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (a0) sa[r] = __ldg((const uint16_t *)(ws[r] + 2 * v));
                if (b0) sb[r] = __ldg((const uint16_t *)(ws[r] + 2 * (v + FG_THREADS)));
            }
        }
    }
    pdl_wait();
    if (a.late_trig) pdl_launch_dependents();

    /* codes formats: every block quantizes all of h (the same codes as the op chain's pre-kernel) into shared
     * memory; weight-only formats use x (times g) as it comes, the norm is applied to the dot products */
    float sx[NM];
    const uint8_t *cx0 = (const uint8_t *)fq_codes, *cx1 = cx0;
    bool fast = false;
    if constexpr (CODES) {
        fast = o.xal && (k & 15) == 0 && !o.slow;
        if (fast && o.pre) { /* k_fq_pre's codes of this block's matrices (L2 only: written by the last kernel) */
            const uint8_t *slot = o.pre + mi * fq_pre_slot(k);
            sx[0] = __ldcg((const float *)slot);
            sx[NM - 1] = __ldcg((const float *)slot + 1);
            const bool two = NM == 2 && __ldcg((const int *)slot + 2) != 0;
            const uint4 *src = (const uint4 *)(slot + 16);
            const int64_t nv = (two ? 2 : 1) * (k / 16);
            for (int64_t i = threadIdx.x; i < nv; i += FG_THREADS)
                fq_codes[i] = __ldcg(src + i);
            if (two) cx1 = cx0 + k;
            __syncthreads();
        } else if (fast) {
            if (fq_codes_rows<F, NM>(x, g, k, a.eps, flg, act, red, (uint32_t *)fq_codes, sx)) cx1 = cx0 + k;
            __syncthreads();
        }
    }
    if (CODES && !fast) {
        const int64_t kq = (k + 15) & ~(int64_t)15;
        float inv_n = 1.f, inv[NM], amax = 0.f;
        if (norm) inv_n = rsqrtf(fq_sumsq(x, k, o.xal, red) / (float)k + a.eps);
        if (fq_dynamic<F, NM>(flg)) {
            for (int64_t c = 4 * threadIdx.x; c < k; c += 4 * FG_THREADS) {
                float h[4];
                fq_h4(x, g, inv_n, c, k, o.xal, h);
                amax = fmaxf(amax, fmaxf(fmaxf(fabsf(h[0]), fabsf(h[1])), fmaxf(fabsf(h[2]), fabsf(h[3]))));
            }
            amax = qa_block_max(amax, red);
        }
        fq_act_scales<F, NM>(flg, act, amax, inv, sx);
        const bool two = NM == 2 && inv[NM - 1] != inv[0]; /* SWIGLU: up quantized with another scale */
        uint32_t *cw = (uint32_t *)fq_codes;
        for (int m = 0; m < (two ? 2 : 1); m++) {
            const float iv = m == 0 ? inv[0] : inv[NM - 1];
            for (int64_t wi = threadIdx.x; wi < kq / 4; wi += FG_THREADS) {
                float h[4];
                fq_h4(x, g, inv_n, 4 * wi, k, o.xal, h);
                cw[m * (kq / 4) + wi] = fq_code_word<F>(h, iv, 4 * wi, k);
            }
        }
        if (two) cx1 = cx0 + kq;
        __syncthreads();
    }

    float post = 1.f; /* the power of 2 the vector paths' values carry */
    if (VEC) {
        post = F == FQ_NVFP4 ? 4194304.0f : F == FQ_FP8S ? 65536.0f : 256.0f; /* 2^22, 2^16, 2^8 */
        for (; v < nck; v += 2 * FG_THREADS) {
            const bool hb = v + FG_THREADS < nck;
            if constexpr (CODES) {
                fq_step_codes<F, NM, NR, AT>(wa, cx0, cx1, v, acc);
                if (hb) fq_step_codes<F, NM, NR, AT>(wb, cx0, cx1, v + FG_THREADS, acc);
            } else {
                fq_step_f<F, NR>(wa, sa, x, g, norm, v, k, acc, ss);
                if (hb) fq_step_f<F, NR>(wb, sb, x, g, norm, v + FG_THREADS, k, acc, ss);
            }
            const int64_t vn = v + 2 * FG_THREADS;
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (vn < nck) {
                    wa[r] = elk_ldg_stream(wq[r] + vn * 16);
                    if (F == FQ_NVFP4) sa[r] = __ldg((const uint16_t *)(ws[r] + 2 * vn));
                }
                if (vn + FG_THREADS < nck) {
                    wb[r] = elk_ldg_stream(wq[r] + (vn + FG_THREADS) * 16);
                    if (F == FQ_NVFP4) sb[r] = __ldg((const uint16_t *)(ws[r] + 2 * (vn + FG_THREADS)));
                }
            }
        }
    } else { /* element by element: k % 16 != 0 (8-bit formats), an odd block count (nvfp4), unaligned x */
        for (int64_t c = threadIdx.x; c < k; c += FG_THREADS) {
            if constexpr (CODES) {
                const uint32_t x0 = cx0[c], x1 = cx1[c];
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    const uint32_t xc = r < R ? x0 : x1, wc = __ldg(wq[r] + c);
                    if constexpr (F == FQ_W8A8)
                        acc[r] += (int)(int8_t)xc * (int)(int8_t)wc;
                    else
                        acc[r] = fmaf(elk_e4m3_to_f32(xc), elk_e4m3_to_f32(wc), acc[r]);
                }
            } else {
                float xv = x[c];
                if (norm) {
                    ss = fmaf(xv, xv, ss);
                    xv *= g[c];
                }
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    const float wv = F == FQ_NVFP4 ? e2m1_f32(__ldg(wq[r] + c / 2) >> ((c & 1) * 4)) *
                                                         elk_e4m3_to_f32(__ldg(ws[r] + c / 16))
                                                   : elk_e4m3_to_f32(__ldg(wq[r] + c));
                    acc[r] = fmaf(xv, wv, acc[r]);
                }
            }
        }
    }

    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const AT s = fq_warp_sum(acc[r]);
        if (lane == 0) racc[wp][r] = s;
    }
    if (!CODES && norm) {
        const float s = elk_warp_sum(ss);
        if (lane == 0) rss[wp] = s;
    }
    __syncthreads();
    if (threadIdx.x >= R) return;
    const int r = threadIdx.x;
    const int64_t row = row0 + r;
    if (row >= n) return;
    float rn = 1.f; /* weight-only formats: the norm's scale */
    if (!CODES && norm) {
        float s2 = 0.f;
#pragma unroll
        for (int i = 0; i < FG_THREADS / 32; i++)
            s2 += rss[i];
        rn = rsqrtf(s2 / (float)k + a.eps);
    }
    float val[NM];
#pragma unroll
    for (int m = 0; m < NM; m++) {
        AT s = 0;
#pragma unroll
        for (int i = 0; i < FG_THREADS / 32; i++)
            s += racc[i][m * R + r];
        const float *sw = (const float *)((const uint8_t *)hd[m] + soff[m]); /* fp8 / w8a8: per-row scales */
        if (F == FQ_W8A8)
            val[m] = __fmul_rn(__fmul_rn((float)s, sw[row]), sx[m]); /* as k_w8a8 */
        else if (F == FQ_FP8S)
            val[m] = ((float)s * post) * __fmul_rn(sw[row], act[m]); /* as k_fp8 */
        else if (F == FQ_FP8)
            val[m] = ((float)s * rn * post) * sw[row];
        else
            val[m] = (float)s * rn * (gsc[m] * post);
    }
    elk_fg_store<MODE>(a, mi, row, val[0], val[NM - 1]);
}

template <int F, int MODE>
static cudaError_t fq_launch(cudaStream_t st, const elk_fg_ops &a, const elk_fq_off &o, int64_t rows, bool vec,
                             int n_sm, bool pdl) {
    const int R = !vec ? 1 : rows >= (int64_t)n_sm * 16 ? 4 : rows >= (int64_t)n_sm * 8 ? 2 : 1;
    elk_fg_ops b = a;
    const int64_t blocks = elk_fg_tiles(b, R, MODE);
    if (blocks < 0) return cudaErrorInvalidValue;
    if (blocks == 0) return cudaSuccess;
    const bool codes = F == FQ_FP8S || F == FQ_W8A8;
    const size_t smem = codes ? (size_t)(MODE == ELK_FG_SWIGLU ? 2 : 1) * (size_t)((a.k + 15) & ~(int64_t)15) : 0;
    void (*kern)(const elk_fg_ops, const elk_fq_off) = !vec     ? k_fq<F, 1, MODE, false>
                                                     : R == 4 ? k_fq<F, 4, MODE, true>
                                                     : R == 2 ? k_fq<F, 2, MODE, true>
                                                              : k_fq<F, 1, MODE, true>;
    if (smem > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    if constexpr (F == FQ_FP8S || F == FQ_W8A8)
        if (o.pre) {
            const unsigned np = MODE == ELK_FG_SWIGLU ? 1u : (unsigned)(a.n[2] ? 3 : a.n[1] ? 2 : 1);
            const cudaError_t e = elk_launch_ex(k_fq_pre<F, MODE>, dim3(np), dim3(FG_THREADS), 0, st, pdl, b,
                                                (uint8_t *)o.pre);
            if (e != cudaSuccess) return e;
        }
    return elk_launch_ex(kern, dim3((unsigned)blocks), dim3(FG_THREADS), smem, st, pdl, b, o);
}

template <int F>
static cudaError_t fq_mode(cudaStream_t st, const elk_fg_ops &a, const elk_fq_off &o, int64_t rows, bool vec,
                           int mode, int n_sm, bool pdl) {
    if (mode == ELK_FG_SWIGLU) return fq_launch<F, ELK_FG_SWIGLU>(st, a, o, rows, vec, n_sm, pdl);
    if (mode == ELK_FG_ACCUM) return fq_launch<F, ELK_FG_ACCUM>(st, a, o, rows, vec, n_sm, pdl);
    return fq_launch<F, ELK_FG_STORE>(st, a, o, rows, vec, n_sm, pdl);
}

size_t elk_fused_q_pre_bytes(int64_t k) {
    return 3 * (size_t)fq_pre_slot((k + 15) & ~(int64_t)15); /* up to 3 matrices */
}

cudaError_t elk_fused_q(cudaStream_t st, const float *x, int64_t k, const float *norm_w, float eps, int wt,
                        bool act_static, int n_w, const void *const *w, const uint64_t *qoff, const int64_t *n,
                        const float *const *bias, float *const *y, int mode, int n_sm, bool pdl, void *pre) {
    elk_fg_ops a;
    if (!elk_fg_fill(a, x, k, norm_w, eps, n_w, w, n, bias, y, mode)) return cudaErrorInvalidValue;
    const int F = wt == ELK_Q_W8A8 ? FQ_W8A8
                  : wt == ELK_Q_NVFP4 ? FQ_NVFP4
                  : wt == ELK_Q_FP8 ? (act_static ? FQ_FP8S : FQ_FP8)
                                    : -1;
    if (F < 0 || ((F == FQ_W8A8 || F == FQ_FP8S) && k > ELK_FQ_MAX_K)) return cudaErrorInvalidValue;
    elk_fq_off o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < n_w; i++) {
        if ((((uintptr_t)w[i] | qoff[i]) & 15) != 0) return cudaErrorInvalidValue;
        o.q[i] = qoff[i];
    }
    o.xal = ((uintptr_t)x & 15) == 0 && ((uintptr_t)norm_w & 15) == 0;
    o.slow = elk_fq_slow_codes != 0;
    /* the codes made once by k_fq_pre (codes formats, the fast prologue's conditions) */
    if (pre && (F == FQ_FP8S || F == FQ_W8A8) && o.xal && k % 16 == 0 && !o.slow) o.pre = (const uint8_t *)pre;
    if (n_sm <= 0) n_sm = 1;
    /* the 16-byte vector path: whole vectors per row (8-bit formats: k % 16 == 0; nvfp4: an even block count);
     * the weight-only formats also load x (and g) as float4 there */
    bool vec = F == FQ_NVFP4 ? ((k + 15) / 16) % 2 == 0 : k % 16 == 0;
    if (F == FQ_FP8 || F == FQ_NVFP4) vec = vec && o.xal;
    const int64_t rows = a.n[0] + a.n[1] + a.n[2]; /* SWIGLU: n[0] (the pair's rows) */
    if (F == FQ_W8A8) return fq_mode<FQ_W8A8>(st, a, o, rows, vec, mode, n_sm, pdl);
    if (F == FQ_FP8S) return fq_mode<FQ_FP8S>(st, a, o, rows, vec, mode, n_sm, pdl);
    if (F == FQ_NVFP4) return fq_mode<FQ_NVFP4>(st, a, o, rows, vec, mode, n_sm, pdl);
    return fq_mode<FQ_FP8>(st, a, o, rows, vec, mode, n_sm, pdl);
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
    pdl_launch_dependents();
    pdl_wait();
    elk_head_stage(xh, sh, hd, isq ? qn : kn, eps, red);
    const int64_t p = pos[t];
    const float pf = (float)pos[t];
    const int sl = isq ? -1 : slot[t];
    const bool store = !isq && p >= 0 && p < cap && sl >= 0;
    const int64_t dst = store ? (((int64_t)sl * n_head_kv + hk) * cap + p) * hd : 0;
    const float *vh = v + (t * n_head_kv + (isq ? 0 : hk)) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        const float o = elk_head_rope(sh, d, half, pf, inv_freq, s);
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
