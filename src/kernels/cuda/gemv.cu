/*
 * gemv.cu - decode matmul y (m, n) = x (m, k) W^T + bias for 1 <= m <= 8, W (n, k) row-major F32/F16/BF16,
 * x and y f32, fp32 accumulation.
 *
 * Bound by device-memory bandwidth: every weight byte is read exactly once for all m rows of x
 * (2*m flops per 2-byte weight), so the target is the device-to-device copy bandwidth.
 *
 * Launch: 128 threads (4 warps) per block; a block owns R consecutive output rows (R = 4, or 1 for
 * small n so that there are enough blocks to fill the device). The 128 threads stride together over k
 * in 16-byte weight vectors (8 bf16/f16 or 4 f32 elements), which are loaded with
 * ld.global.nc.L1::no_allocate (read once, keep L1 for x), R independent 16-byte loads in flight per
 * thread per step and the loop unrolled by 2. x (f32, read through L1/L2, shared by all blocks) is
 * loaded as float4 and each x vector is reused for the R rows. Partial sums: warp shuffle, then the 4
 * warps through shared memory; thread (mi, r) writes y[mi, row0 + r] (+ bias).
 * A scalar fallback (one row per block, element loads) handles k not a multiple of the vector width
 * or unaligned pointers.
 *
 * BF16 weights with 2 <= m <= 8 use tensor cores instead (k_gemv_tc): with m = 8 the fp32 FMA version
 * needs 8 FMAs per weight and becomes issue-bound at about half the bandwidth. mma.sync m16n8k16
 * (bf16 x bf16 -> fp32) takes a 16-row weight tile as A straight from 16-byte loads (no conversion:
 * the k order inside a 32-wide k block is permuted identically for A and B, which leaves the dot
 * products unchanged) and x^T as B (n = 8 = the m rows of x). x is f32: it is split into
 * hi = bf16(x) and lo = bf16(x - hi), and A*hi + A*lo is accumulated in fp32, so the result keeps
 * ~16 mantissa bits of x (relative error ~2^-17, far below the 1e-5 NMSE budget) while the weights are
 * exact. Launch: 256 threads (8 warps) per block; a block owns 16*T rows (T = 1, 2 or 4 by n), the
 * warps take interleaved 32-wide k blocks (two in flight per warp) and are summed through shared
 * memory at the end.
 */
#include "kernels/cuda/common.cuh"

#define GEMV_THREADS 128

/* Kernel choice for BF16 weights (benchmarks compare the two): 0 = tensor cores for m >= 2,
 * 1 = never tensor cores, 2 = tensor cores for every m. */
int elk_gemv_tc_mode = 0;

static __device__ __forceinline__ uint4 ldg_stream(const void *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* Converts one 16-byte weight vector to floats: 8 for F16/BF16, 4 for F32. */
template <int WT> struct wvec;
template <> struct wvec<ELK_BF16> {
    static constexpr int N = 8;
    static __device__ __forceinline__ void cvt(uint4 u, float *f) {
        uint32_t a[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[2 * i] = __uint_as_float(a[i] << 16);
            f[2 * i + 1] = __uint_as_float(a[i] & 0xffff0000u);
        }
    }
};
template <> struct wvec<ELK_F16> {
    static constexpr int N = 8;
    static __device__ __forceinline__ void cvt(uint4 u, float *f) {
        uint32_t a[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            __half2 h = *reinterpret_cast<__half2 *>(&a[i]);
            float2 v = __half22float2(h);
            f[2 * i] = v.x;
            f[2 * i + 1] = v.y;
        }
    }
};
template <> struct wvec<ELK_F32> {
    static constexpr int N = 4;
    static __device__ __forceinline__ void cvt(uint4 u, float *f) {
        f[0] = __uint_as_float(u.x);
        f[1] = __uint_as_float(u.y);
        f[2] = __uint_as_float(u.z);
        f[3] = __uint_as_float(u.w);
    }
};

template <int M, int R>
static __device__ __forceinline__ void gemv_finish(float (&acc)[M][R], int64_t row0, int64_t n, const float *bias,
                                                   float *y, int64_t ldy) {
    __shared__ float red[GEMV_THREADS / 32][M * R];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            float v = elk_warp_sum(acc[mi][r]);
            if (lane == 0) red[w][mi * R + r] = v;
        }
    __syncthreads();
    if (threadIdx.x < M * R) {
        int mi = threadIdx.x / R, r = threadIdx.x % R;
        int64_t row = row0 + r;
        if (row < n) {
            float s = 0.f;
#pragma unroll
            for (int i = 0; i < GEMV_THREADS / 32; i++) s += red[i][threadIdx.x];
            if (bias) s += bias[row];
            y[(int64_t)mi * ldy + row] = s;
        }
    }
}

template <int WT, int M, int R>
__global__ void __launch_bounds__(GEMV_THREADS) k_gemv_vec(const float *__restrict__ x, int64_t k,
                                                           const void *__restrict__ w, int64_t n,
                                                           const float *__restrict__ bias, float *__restrict__ y,
                                                           int64_t ldy) {
    constexpr int V = wvec<WT>::N;
    const int64_t row0 = (int64_t)blockIdx.x * R;
    const int64_t nv = k / V;
    const char *wrow[R];
    const int esz = WT == ELK_F32 ? 4 : 2;
#pragma unroll
    for (int r = 0; r < R; r++) {
        int64_t row = row0 + r < n ? row0 + r : n - 1; /* tail rows re-read the last row, not stored */
        wrow[r] = (const char *)w + row * k * esz;
    }
    float acc[M][R];
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++) acc[mi][r] = 0.f;

#pragma unroll 2
    for (int64_t v = threadIdx.x; v < nv; v += GEMV_THREADS) {
        uint4 wv[R];
#pragma unroll
        for (int r = 0; r < R; r++) wv[r] = ldg_stream(wrow[r] + v * 16);
        float wf[R][V];
#pragma unroll
        for (int r = 0; r < R; r++) wvec<WT>::cvt(wv[r], wf[r]);
#pragma unroll
        for (int mi = 0; mi < M; mi++) {
            const float4 *xp = (const float4 *)(x + mi * k + v * V);
            float xf[V];
#pragma unroll
            for (int j = 0; j < V / 4; j++) {
                float4 t = __ldg(xp + j);
                xf[4 * j] = t.x;
                xf[4 * j + 1] = t.y;
                xf[4 * j + 2] = t.z;
                xf[4 * j + 3] = t.w;
            }
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int j = 0; j < V; j++) acc[mi][r] = fmaf(xf[j], wf[r][j], acc[mi][r]);
        }
    }
    gemv_finish<M, R>(acc, row0, n, bias, y, ldy);
}

template <int WT, int M>
__global__ void __launch_bounds__(GEMV_THREADS) k_gemv_scalar(const float *__restrict__ x, int64_t k,
                                                              const void *__restrict__ w, int64_t n,
                                                              const float *__restrict__ bias, float *__restrict__ y,
                                                              int64_t ldy) {
    const int64_t row = blockIdx.x;
    float acc[M][1];
#pragma unroll
    for (int mi = 0; mi < M; mi++) acc[mi][0] = 0.f;
    for (int64_t i = threadIdx.x; i < k; i += GEMV_THREADS) {
        float wv = elk_ld<WT>(w, row * k + i);
#pragma unroll
        for (int mi = 0; mi < M; mi++) acc[mi][0] = fmaf(x[mi * k + i], wv, acc[mi][0]);
    }
    gemv_finish<M, 1>(acc, row, n, bias, y, ldy);
}

/* ---- tensor-core path (BF16 weights, 2 <= m <= 8) ---- */
#define TC_WARPS 8

template <int T> struct tc_chunk {
    uint4 w[T][2];
    float4 xa, xb;
};

template <int T> struct tc_rows {
    const char *p[T][2];
};

template <int T>
static __device__ __forceinline__ void tc_load(tc_chunk<T> &c, const tc_rows<T> &wr, const float *xr, bool xon,
                                               int64_t off, bool kin) {
#pragma unroll
    for (int i = 0; i < T; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) c.w[i][h] = kin ? elk_ldg_stream(wr.p[i][h] + off * 2) : make_uint4(0, 0, 0, 0);
    if (kin && xon) {
        c.xa = __ldg((const float4 *)(xr + off));
        c.xb = __ldg((const float4 *)(xr + off + 4));
    } else {
        c.xa = c.xb = make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

template <int T> static __device__ __forceinline__ void tc_compute(float (&acc)[T][4], const tc_chunk<T> &c) {
    uint32_t hi[4], lo[4];
    elk_split_bf16x2(c.xa.x, c.xa.y, hi[0], lo[0]);
    elk_split_bf16x2(c.xa.z, c.xa.w, hi[1], lo[1]);
    elk_split_bf16x2(c.xb.x, c.xb.y, hi[2], lo[2]);
    elk_split_bf16x2(c.xb.z, c.xb.w, hi[3], lo[3]);
#pragma unroll
    for (int i = 0; i < T; i++) {
        const uint4 &r0 = c.w[i][0], &r1 = c.w[i][1]; /* rows g and g + 8 of tile i */
        elk_mma_bf16(acc[i], r0.x, r1.x, r0.y, r1.y, hi[0], hi[1]);
        elk_mma_bf16(acc[i], r0.x, r1.x, r0.y, r1.y, lo[0], lo[1]);
        elk_mma_bf16(acc[i], r0.z, r1.z, r0.w, r1.w, hi[2], hi[3]);
        elk_mma_bf16(acc[i], r0.z, r1.z, r0.w, r1.w, lo[2], lo[3]);
    }
}

template <int T>
__global__ void __launch_bounds__(TC_WARPS * 32, 2) k_gemv_tc(const float *__restrict__ x, int m, int64_t k,
                                                           const void *__restrict__ w, int64_t n,
                                                           const float *__restrict__ bias, float *__restrict__ y,
                                                           int64_t ldy) {
    __shared__ float red[TC_WARPS][T][4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, tg = lane & 3;
    const int64_t row0 = (int64_t)blockIdx.x * (16 * T);
    const int64_t nkb = (k + 31) / 32;
    /* A: rows row0 + 16 i + g (+ 8), 8 consecutive k at 32 kb + 8 tg; B: x row g, same k */
    tc_rows<T> wr;
#pragma unroll
    for (int i = 0; i < T; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int64_t r = row0 + 16 * i + g + 8 * h;
            if (r >= n) r = n - 1;
            wr.p[i][h] = (const char *)w + (r * k + 8 * tg) * 2;
        }
    const bool xon = g < m;
    const float *xr = x + (xon ? g : 0) * k + 8 * tg;
    float acc[T][4];
#pragma unroll
    for (int i = 0; i < T; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;

    int64_t kb = warp;
    for (; kb + TC_WARPS < nkb; kb += 2 * TC_WARPS) { /* two k blocks in flight */
        tc_chunk<T> c0, c1;
        int64_t o0 = kb * 32, o1 = (kb + TC_WARPS) * 32;
        tc_load<T>(c0, wr, xr, xon, o0, o0 + 8 * tg < k);
        tc_load<T>(c1, wr, xr, xon, o1, o1 + 8 * tg < k);
        tc_compute<T>(acc, c0);
        tc_compute<T>(acc, c1);
    }
    if (kb < nkb) {
        tc_chunk<T> c0;
        int64_t o0 = kb * 32;
        tc_load<T>(c0, wr, xr, xon, o0, o0 + 8 * tg < k);
        tc_compute<T>(acc, c0);
    }
#pragma unroll
    for (int i = 0; i < T; i++)
#pragma unroll
        for (int r = 0; r < 4; r++) red[warp][i][r][lane] = acc[i][r];
    __syncthreads();
    for (int e = threadIdx.x; e < T * 4 * 32; e += TC_WARPS * 32) {
        const int i = e >> 7, r = (e >> 5) & 3, ln = e & 31;
        float s = 0.f;
#pragma unroll
        for (int v = 0; v < TC_WARPS; v++) s += red[v][i][r][ln];
        const int64_t row = row0 + 16 * i + (ln >> 2) + (r >= 2 ? 8 : 0);
        const int mc = (ln & 3) * 2 + (r & 1);
        if (row < n && mc < m) y[(int64_t)mc * ldy + row] = bias ? s + bias[row] : s;
    }
}

static cudaError_t gemv_tc(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int64_t n,
                           const float *bias, float *y, int64_t ldy, int n_sm) {
    if (n >= (int64_t)64 * 2 * n_sm)
        k_gemv_tc<4><<<(unsigned)((n + 63) / 64), TC_WARPS * 32, 0, st>>>(x, (int)m, k, w, n, bias, y, ldy);
    else if (n >= (int64_t)32 * 2 * n_sm)
        k_gemv_tc<2><<<(unsigned)((n + 31) / 32), TC_WARPS * 32, 0, st>>>(x, (int)m, k, w, n, bias, y, ldy);
    else
        k_gemv_tc<1><<<(unsigned)((n + 15) / 16), TC_WARPS * 32, 0, st>>>(x, (int)m, k, w, n, bias, y, ldy);
    return cudaGetLastError();
}

template <int WT, int M>
static cudaError_t gemv_launch(cudaStream_t st, const float *x, int64_t k, const void *w, int64_t n,
                               const float *bias, float *y, int64_t ldy, int n_sm) {
    constexpr int V = wvec<WT>::N;
    const bool aligned = k % V == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
    if (WT == ELK_BF16 && aligned && ((M >= 2 && elk_gemv_tc_mode == 0) || elk_gemv_tc_mode == 2)) {
        return gemv_tc(st, x, M, k, w, n, bias, y, ldy, n_sm);
    } else if (!aligned) {
        k_gemv_scalar<WT, M><<<(unsigned)n, GEMV_THREADS, 0, st>>>(x, k, w, n, bias, y, ldy);
    } else if (n >= (int64_t)n_sm * 16) {
        k_gemv_vec<WT, M, 4><<<(unsigned)((n + 3) / 4), GEMV_THREADS, 0, st>>>(x, k, w, n, bias, y, ldy);
    } else if (n >= (int64_t)n_sm * 8) {
        k_gemv_vec<WT, M, 2><<<(unsigned)((n + 1) / 2), GEMV_THREADS, 0, st>>>(x, k, w, n, bias, y, ldy);
    } else {
        k_gemv_vec<WT, M, 1><<<(unsigned)n, GEMV_THREADS, 0, st>>>(x, k, w, n, bias, y, ldy);
    }
    return cudaGetLastError();
}

template <int WT>
static cudaError_t gemv_m(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int64_t n,
                          const float *bias, float *y, int64_t ldy, int n_sm) {
    switch (m) {
    case 1: return gemv_launch<WT, 1>(st, x, k, w, n, bias, y, ldy, n_sm);
    case 2: return gemv_launch<WT, 2>(st, x, k, w, n, bias, y, ldy, n_sm);
    case 3: return gemv_launch<WT, 3>(st, x, k, w, n, bias, y, ldy, n_sm);
    case 4: return gemv_launch<WT, 4>(st, x, k, w, n, bias, y, ldy, n_sm);
    case 5: return gemv_launch<WT, 5>(st, x, k, w, n, bias, y, ldy, n_sm);
    case 6: return gemv_launch<WT, 6>(st, x, k, w, n, bias, y, ldy, n_sm);
    case 7: return gemv_launch<WT, 7>(st, x, k, w, n, bias, y, ldy, n_sm);
    default: return gemv_launch<WT, 8>(st, x, k, w, n, bias, y, ldy, n_sm);
    }
}

cudaError_t elk_gemv(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int wt, int64_t n,
                     const float *bias, float *y, int64_t ldy, int n_sm) {
    if (m <= 0 || n <= 0) return cudaSuccess;
    if (m > 8 || n > 0x7fffffff) return cudaErrorInvalidValue;
    if (n_sm <= 0) n_sm = 1;
    if (wt == ELK_BF16) return gemv_m<ELK_BF16>(st, x, m, k, w, n, bias, y, ldy, n_sm);
    if (wt == ELK_F16) return gemv_m<ELK_F16>(st, x, m, k, w, n, bias, y, ldy, n_sm);
    return gemv_m<ELK_F32>(st, x, m, k, w, n, bias, y, ldy, n_sm);
}
