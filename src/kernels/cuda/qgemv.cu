/*
 * qgemv.cu - matmul with quantized weights (layouts of src/kernels/quant.h, docs/quantization.md):
 * y (m, n) row stride ldy = x (m, k) W^T + bias with W (n, k) one quantized byte region in device memory.
 *
 * Every kernel reads the 64-byte el_qhdr from the weight itself (group size, flags, activation and global
 * scales, section offsets), so the host needs only (format, m, n, k) to launch: nothing is copied back,
 * and the launches can be captured in CUDA graphs.
 *
 * Decode (m <= 8, elk_qgemv): bandwidth-bound GEMVs. Layout of one launch: 128 threads (4 warps) per
 * block; `ks` warps share a set of R rows and split the row's 16-byte chunks between them (lane stride
 * 32 * ks), so small n still puts enough warps on the device; every chunk is one 16-byte
 * ld.global.nc.L1::no_allocate per row (R loads in flight per step, unrolled by 2), and the x values of a
 * chunk are loaded once and reused for the R rows. Partial sums: warp shuffles, then the ks warps through
 * shared memory. Per format:
 *   w4a16  32 nibbles per chunk (one group when g % 32 == 0): nibble -> float via prmt into the mantissa of
 *          2^23 (exact), minus (2^23 + z); the group's partial sum is multiplied by its f16 scale.
 *   fp8    16 e4m3 per chunk: e4m3 -> f16 by bit placement (value * 2^-8, exact; the 2^8 goes into the
 *          row's final scale); static activations are quantized to e4m3 (as exact f32 values) by a
 *          pre-kernel, exactly as the reference rounds them.
 *   w8a8   16 int8 per chunk, dp4a with the int8 activations of a pre-kernel (dynamic per-token or static
 *          scale): exact int32 dot products, then ((float)isum * s_w) * s_x as the reference.
 *   nvfp4  32 e2m1 per chunk (two blocks of 16): e2m1 -> f16 by bit placement (value * 2^-14, exact), block
 *          partial sums times the e4m3 block scale (value * 2^-8); 2^22 and the global scale at the end.
 *   q8_0 / q4_0  one ggml block per lane (2-byte aligned: 16-bit loads), x quantized to q8_0 blocks by a
 *          pre-kernel (d = f16(amax / 127), q = roundf(x / d) as ggml), exact int32 block dots (dp4a).
 * Shapes a vector path cannot take (k % 16 for the 8-bit formats, g % 32 for w4a16, odd block counts for
 * nvfp4, unaligned x) run a per-element path of the same kernels (slow, correct).
 *
 * Prefill (m > 8): the backend dequantizes row ranges of W to bf16 (elk_qdequant_bf16) into scratch and
 * runs its cuBLASLt bf16 GEMM on activations prepared by elk_qprep_act_bf16; elk_qepilogue applies the
 * per-row / per-token scales and the bias. The bf16 values are exact where the format allows it: w8a8
 * and static fp8 multiply the integer / e4m3 codes (weights and activations exact in bf16, products exact
 * in the fp32 accumulator) and apply the scales in the epilogue, nvfp4 multiplies e2m1 * e4m3 block scale
 * (exact) and applies the global scale in the epilogue; w4a16 and ggml weights are rounded to bf16.
 * w8a8 and static fp8 prefill normally skip the dequantization: elk_qgemm_act quantizes x exactly as the
 * reference (the decode pre-kernel's w8a8 rows and scales, e4m3 codes for fp8) for the backend's cuBLASLt
 * int8 (int32 sums) / fp8 (f32 sums) GEMM on the weight's codes, then elk_qepilogue_acc.
 * The activation quantization of every path goes through w8a8_row_scale / w8a8_code / fp8_act_code (the last two
 * and the conversions in qact.cuh, shared with the fused decode ops of fused.cu).
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/qact.cuh"

#define QG_THREADS 128
#define QG_WARPS (QG_THREADS / 32)

/* Warp sums of acc, then the ks warps of a row set through shared memory; calls out(mi, r, row, sum). */
template <int M, int R, typename T, typename F>
static __device__ __forceinline__ void qg_reduce(T (&acc)[M][R], int ks, int64_t n, F out) {
    __shared__ T red[QG_WARPS][M * R];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            T v = acc[mi][r];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0) red[warp][mi * R + r] = v;
        }
    __syncthreads();
    const int sets = QG_WARPS / ks;
    for (int e = threadIdx.x; e < sets * M * R; e += QG_THREADS) {
        const int set = e / (M * R), idx = e % (M * R);
        T s = red[set * ks][idx];
        for (int i = 1; i < ks; i++)
            s += red[set * ks + i][idx];
        const int64_t row = ((int64_t)blockIdx.x * sets + set) * R + idx % R;
        if (row < n) out(idx / R, idx % R, row, s);
    }
}

/* Row set and k slice of this warp. */
struct qg_pos {
    int64_t row0;
    int kw, ks, lane;
};
static __device__ __forceinline__ qg_pos qg_where(int ks, int R) {
    qg_pos p;
    const int warp = threadIdx.x >> 5, sets = QG_WARPS / ks;
    p.lane = threadIdx.x & 31;
    p.ks = ks;
    p.kw = warp % ks;
    p.row0 = ((int64_t)blockIdx.x * sets + warp / ks) * R;
    return p;
}
static __device__ __forceinline__ int64_t clamp_row(int64_t r, int64_t n) {
    return r < n ? r : n - 1;
}

/* ---- w4a16 ---- */
template <int M, int R>
__global__ void __launch_bounds__(QG_THREADS)
    k_w4a16(const float *__restrict__ x, int64_t k, const uint8_t *__restrict__ w, int64_t n,
            const float *__restrict__ bias, float *__restrict__ y, int64_t ldy, int ks, bool xvec) {
    const elk_qhdr *h = (const elk_qhdr *)w;
    const int64_t g = h->group, G = (k + g - 1) / g, rb = G * g / 2;
    const uint16_t *s16 = (const uint16_t *)(w + h->scales_off);
    const uint8_t *zs = h->zeros_off ? w + h->zeros_off : nullptr;
    const uint8_t *qs = w + h->quants_off;
    const qg_pos p = qg_where(ks, R);
    int64_t rows[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        rows[r] = clamp_row(p.row0 + r, n);
    float acc[M][R];
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++)
            acc[mi][r] = 0.f;
    if (g % 32 == 0) {
        const int nck = (int)((k + 31) / 32);
        const unsigned cpg = (unsigned)(g / 32); /* chunks per group: a shift for 32/64/128/... */
        const bool p2 = (cpg & (cpg - 1)) == 0;
        const int sh = __ffs((int)cpg) - 1;
        const uint8_t *qrow[R];
        const uint16_t *srow[R];
        const uint8_t *zrow[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            qrow[r] = qs + rows[r] * rb;
            srow[r] = s16 + rows[r] * G;
            zrow[r] = zs ? zs + rows[r] * G : nullptr;
        }
#pragma unroll 2
        for (int c = p.kw * 32 + p.lane; c < nck; c += 32 * p.ks) {
            uint4 q[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                q[r] = elk_ldg_stream(qrow[r] + c * 16);
            const int gi = p2 ? c >> sh : (int)((unsigned)c / cpg);
            float sc[R], mz[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                sc[r] = f16_f32(__ldg(srow[r] + gi));
                mz[r] = 8388608.0f + (float)(zs ? __ldg(zrow[r] + gi) : 8);
            }
            float part[M][R];
#pragma unroll
            for (int mi = 0; mi < M; mi++)
#pragma unroll
                for (int r = 0; r < R; r++)
                    part[mi][r] = 0.f;
#pragma unroll
            for (int wi = 0; wi < 4; wi++) {
                float wf[R][8];
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const uint32_t u = wi == 0 ? q[r].x : wi == 1 ? q[r].y : wi == 2 ? q[r].z : q[r].w;
                    elk_nib8(u, wf[r]);
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        wf[r][j] -= mz[r];
                }
#pragma unroll
                for (int mi = 0; mi < M; mi++) {
                    float xf[8];
                    ldx<8>(x + mi * k, (int64_t)c * 32 + wi * 8, k, xvec, xf);
#pragma unroll
                    for (int r = 0; r < R; r++)
#pragma unroll
                        for (int j = 0; j < 8; j++)
                            part[mi][r] = fmaf(xf[j], wf[r][j], part[mi][r]);
                }
            }
#pragma unroll
            for (int mi = 0; mi < M; mi++)
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[mi][r] = fmaf(part[mi][r], sc[r], acc[mi][r]);
        }
    } else { /* any group size (multiple of 8): element by element */
        for (int64_t c = p.kw * 32 + p.lane; c < k; c += 32 * p.ks) {
            const int64_t gi = c / g;
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int z = zs ? zs[rows[r] * G + gi] : 8;
                const int q = (qs[rows[r] * rb + c / 2] >> ((c & 1) * 4)) & 15;
                const float wv = (float)(q - z) * f16_f32(s16[rows[r] * G + gi]);
#pragma unroll
                for (int mi = 0; mi < M; mi++)
                    acc[mi][r] = fmaf(x[mi * k + c], wv, acc[mi][r]);
            }
        }
    }
    qg_reduce<M, R>(acc, ks, n, [&](int mi, int, int64_t row, float s) {
        y[(int64_t)mi * ldy + row] = bias ? s + bias[row] : s;
    });
}

/* ---- w4a16 on tensor cores (g % 128 == 0, x rows 16-byte aligned; elk_qgemv_tc_mode) ----
 * mma.sync m16n8k16 bf16 -> f32: A = (q - z) of a 16-row tile (exact small integers in bf16: the nibble
 * goes into the mantissa of 128.0 by one lop3, then 128 + z is subtracted in bf16x2), B = x^T (n = 8 =
 * the tokens) split into bf16 hi + lo (x ~= hi + lo to ~2^-17 relative, as the bf16 GEMV). Thread
 * (g = lane / 4, tg = lane % 4) loads 16 bytes (32 nibbles) of rows g and g + 8 at k = 128 kb + 32 tg
 * and its 16 hi + 16 lo x pairs of token g, split once per call by k_xsplit into scratch;
 * nibbles t and t + 4 of a 32-bit word form one bf16x2 pair, and x is paired the same way, so A and B
 * agree on the (permuted) k order inside the mma. A 128-wide k block lies in one group: its mma sums
 * are multiplied by the rows' f16 scales in f32. 8 warps take interleaved k blocks (two in flight) and
 * are summed through shared memory; a block owns 16 * T rows (T = 1 for now). */
#define TCQ_WARPS 8

/* pair t of word u: nibbles t (low half) and t + 4 (high half) as bf16x2 (q - z) */
static __device__ __forceinline__ uint32_t nib_pair(uint32_t u, int t, uint32_t mz2) {
    uint32_t v = ((u >> (4 * t)) & 0x000f000fu) | 0x43004300u; /* 128 + q */
    __nv_bfloat162 r =
        __hsub2(*reinterpret_cast<__nv_bfloat162 *>(&v), *reinterpret_cast<__nv_bfloat162 *>(&mz2));
    return *reinterpret_cast<uint32_t *>(&r);
}

template <int T> struct tcq_chunk {
    uint4 q[T][2];
    uint4 x[8]; /* the thread's 16 hi and 16 lo bf16x2 x pairs (k_xsplit) */
    float s[T][2];
    uint32_t mz[T][2];
};

template <int T>
__global__ void __launch_bounds__(TCQ_WARPS * 32, 2)
    k_w4a16_tc(const float *__restrict__ x, const uint32_t *__restrict__ xsp, int m, int64_t k,
               const uint8_t *__restrict__ w, int64_t n, const float *__restrict__ bias,
               float *__restrict__ y, int64_t ldy) {
    __shared__ float red[TCQ_WARPS][T][4][32];
    const elk_qhdr *h = (const elk_qhdr *)w;
    const int64_t g = h->group, G = (k + g - 1) / g, rb = G * g / 2;
    const uint16_t *s16 = (const uint16_t *)(w + h->scales_off);
    const uint8_t *zs = h->zeros_off ? w + h->zeros_off : nullptr;
    const uint8_t *qs = w + h->quants_off;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gq = lane >> 2, tg = lane & 3;
    const int64_t row0 = (int64_t)blockIdx.x * (16 * T);
    const int64_t nkb = (k + 127) / 128;
    const int cpg = (int)(g / 128); /* k blocks per group */
    int64_t rows[T][2];
#pragma unroll
    for (int i = 0; i < T; i++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            int64_t r = row0 + 16 * i + gq + 8 * hh;
            rows[i][hh] = r < n ? r : n - 1;
        }
    const bool xon = gq < m;
    float acc[T][4];
#pragma unroll
    for (int i = 0; i < T; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;

    auto load = [&](tcq_chunk<T> &c, int64_t kb) {
        const int64_t gi = kb / cpg;
#pragma unroll
        for (int i = 0; i < T; i++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                c.q[i][hh] = elk_ldg_stream(qs + rows[i][hh] * rb + kb * 64 + 16 * tg);
                c.s[i][hh] = f16_f32(__ldg(s16 + rows[i][hh] * G + gi));
                const uint32_t z = zs ? __ldg(zs + rows[i][hh] * G + gi) : 8u;
                c.mz[i][hh] = (0x4300u | z) * 0x00010001u; /* bf16x2 (128 + z, 128 + z) */
            }
        const uint4 *xp = (const uint4 *)(xsp + ((gq * nkb + kb) * 4 + tg) * 32);
#pragma unroll
        for (int j = 0; j < 8; j++)
            c.x[j] = xon ? __ldg(xp + j) : make_uint4(0, 0, 0, 0);
    };
    auto compute = [&](const tcq_chunk<T> &c) {
        /* x pairs: word wi holds elements 8 wi .. 8 wi + 7; pair t = (8 wi + t, 8 wi + t + 4) */
        uint32_t hi[16], lo[16];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            hi[4 * j] = c.x[j].x, hi[4 * j + 1] = c.x[j].y, hi[4 * j + 2] = c.x[j].z,
                   hi[4 * j + 3] = c.x[j].w;
            lo[4 * j] = c.x[4 + j].x, lo[4 * j + 1] = c.x[4 + j].y, lo[4 * j + 2] = c.x[4 + j].z,
                   lo[4 * j + 3] = c.x[4 + j].w;
        }
#pragma unroll
        for (int i = 0; i < T; i++) {
            float blk[4] = {0.f, 0.f, 0.f, 0.f};
            const uint32_t u0[4] = {c.q[i][0].x, c.q[i][0].y, c.q[i][0].z, c.q[i][0].w};
            const uint32_t u1[4] = {c.q[i][1].x, c.q[i][1].y, c.q[i][1].z, c.q[i][1].w};
#pragma unroll
            for (int st = 0; st < 8; st++) { /* pairs 2 st, 2 st + 1 */
                const int p0 = 2 * st, p1 = 2 * st + 1;
                const uint32_t a0 = nib_pair(u0[p0 >> 2], p0 & 3, c.mz[i][0]);
                const uint32_t a2 = nib_pair(u0[p1 >> 2], p1 & 3, c.mz[i][0]);
                const uint32_t a1 = nib_pair(u1[p0 >> 2], p0 & 3, c.mz[i][1]);
                const uint32_t a3 = nib_pair(u1[p1 >> 2], p1 & 3, c.mz[i][1]);
                elk_mma_bf16(blk, a0, a1, a2, a3, hi[p0], hi[p1]);
                elk_mma_bf16(blk, a0, a1, a2, a3, lo[p0], lo[p1]);
            }
            acc[i][0] = fmaf(blk[0], c.s[i][0], acc[i][0]);
            acc[i][1] = fmaf(blk[1], c.s[i][0], acc[i][1]);
            acc[i][2] = fmaf(blk[2], c.s[i][1], acc[i][2]);
            acc[i][3] = fmaf(blk[3], c.s[i][1], acc[i][3]);
        }
    };
    if (g % 128 == 0) {
        int64_t kb = warp;
        for (; kb + TCQ_WARPS < nkb; kb += 2 * TCQ_WARPS) {
            tcq_chunk<T> c0, c1;
            load(c0, kb);
            load(c1, kb + TCQ_WARPS);
            compute(c0);
            compute(c1);
        }
        if (kb < nkb) {
            tcq_chunk<T> c0;
            load(c0, kb);
            compute(c0);
        }
    } else { /* other group sizes: the same outputs element by element (slow, correct) */
#pragma unroll
        for (int i = 0; i < T; i++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int64_t row = rows[i][r >> 1];
                const int mc = tg * 2 + (r & 1);
                if (mc >= m) continue;
                for (int64_t c = warp; c < k; c += TCQ_WARPS) {
                    const int64_t gi = c / g;
                    const int z = zs ? zs[row * G + gi] : 8;
                    const int q = (qs[row * rb + c / 2] >> ((c & 1) * 4)) & 15;
                    acc[i][r] = fmaf(x[mc * k + c], (float)(q - z) * f16_f32(s16[row * G + gi]), acc[i][r]);
                }
            }
    }
#pragma unroll
    for (int i = 0; i < T; i++)
#pragma unroll
        for (int r = 0; r < 4; r++)
            red[warp][i][r][lane] = acc[i][r];
    __syncthreads();
    for (int e = threadIdx.x; e < T * 4 * 32; e += TCQ_WARPS * 32) {
        const int i = e >> 7, r = (e >> 5) & 3, ln = e & 31;
        float s = 0.f;
#pragma unroll
        for (int v = 0; v < TCQ_WARPS; v++)
            s += red[v][i][r][ln];
        const int64_t row = row0 + 16 * i + (ln >> 2) + (r >= 2 ? 8 : 0);
        const int mc = (ln & 3) * 2 + (r & 1);
        if (row < n && mc < m) y[(int64_t)mc * ldy + row] = bias ? s + bias[row] : s;
    }
}

/* w4a16 kernel choice: 0 = the fp32-FMA kernel at m = 1 (the CUDA backend calls qmma.cu's int8 tensor-core
 * kernel instead where the group size allows) and the bf16 tensor-core kernel below for m >= 2, 1 = the
 * fp32-FMA kernel for every m (also in the backend), 2 = the bf16 tensor-core kernel for every m.
 * The bf16 tensor-core kernel is exact only for g % 128 == 0 (other groups run its per-element path). */
extern "C" int elk_qgemv_tc_mode; /* tests and bench_cuda set it */
int elk_qgemv_tc_mode = 0; /* measured (H100, run 0950): bf16 mma wins 2-5x for 2 <= m <= 8 over FMA */

/* x (m, k) -> xsp: per (token, 128-wide k block, tg) the 16 bf16x2 hi pairs then the 16 lo pairs that
 * thread tg of k_w4a16_tc feeds to its mma (pair t of word wi = elements 8 wi + t and 8 wi + t + 4 of the
 * thread's 32), zeros beyond k. One thread per (token, k block, tg). */
__global__ void k_xsplit(const float *__restrict__ x, int64_t k, int64_t nkb, int64_t total,
                         uint32_t *__restrict__ xsp) {
    const int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= total) return;
    const int64_t mi = id / (nkb * 4), kb = (id / 4) % nkb, tg = id % 4;
    const float *xr = x + mi * k;
    const int64_t base = kb * 128 + 32 * tg;
    uint32_t hi[16], lo[16];
#pragma unroll
    for (int p = 0; p < 16; p++) {
        const int64_t c0 = base + 8 * (p >> 2) + (p & 3), c1 = c0 + 4;
        elk_split_bf16x2(c0 < k ? xr[c0] : 0.f, c1 < k ? xr[c1] : 0.f, hi[p], lo[p]);
    }
    uint4 *o = (uint4 *)(xsp + id * 32);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        o[j] = make_uint4(hi[4 * j], hi[4 * j + 1], hi[4 * j + 2], hi[4 * j + 3]);
        o[4 + j] = make_uint4(lo[4 * j], lo[4 * j + 1], lo[4 * j + 2], lo[4 * j + 3]);
    }
}

static cudaError_t w4a16_tc(cudaStream_t st, const float *x, int m, int64_t k, const uint8_t *w, int64_t n,
                            const float *bias, float *y, int64_t ldy, void *scr) {
    const int64_t nkb = (k + 127) / 128, total = m * nkb * 4;
    k_xsplit<<<(unsigned)((total + 127) / 128), 128, 0, st>>>(x, k, nkb, total, (uint32_t *)scr);
    /* one 16-row tile per block (2 and 4 tiles spill at 128 registers) */
    k_w4a16_tc<1><<<(unsigned)((n + 15) / 16), TCQ_WARPS * 32, 0, st>>>(x, (const uint32_t *)scr, m, k, w, n,
                                                                        bias, y, ldy);
    return cudaGetLastError();
}

/* ---- fp8 ---- */
template <int M, int R>
__global__ void __launch_bounds__(QG_THREADS)
    k_fp8(const float *__restrict__ x, const float *__restrict__ xe, int64_t k, const uint8_t *__restrict__ w,
          int64_t n, const float *__restrict__ bias, float *__restrict__ y, int64_t ldy, int ks, bool xvec) {
    const elk_qhdr *h = (const elk_qhdr *)w;
    const float act = h->act_scale;
    const float *xs = act > 0 ? xe : x; /* static: the e4m3-quantized activations (as f32 values) */
    const float *sw = (const float *)(w + h->scales_off);
    const uint8_t *qs = w + h->quants_off;
    const qg_pos p = qg_where(ks, R);
    int64_t rows[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        rows[r] = clamp_row(p.row0 + r, n);
    float acc[M][R];
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++)
            acc[mi][r] = 0.f;
    float post = 256.0f; /* the vector path computes with e4m3 values * 2^-8 */
    if (k % 16 == 0) {
        const int64_t nck = k / 16;
#pragma unroll 2
        for (int64_t c = p.kw * 32 + p.lane; c < nck; c += 32 * p.ks) {
            uint4 q[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                q[r] = elk_ldg_stream(qs + rows[r] * k + c * 16);
#pragma unroll
            for (int wi = 0; wi < 4; wi++) {
                float wf[R][4];
#pragma unroll
                for (int r = 0; r < R; r++)
                    e4m3x4(wi == 0 ? q[r].x : wi == 1 ? q[r].y : wi == 2 ? q[r].z : q[r].w, wf[r]);
#pragma unroll
                for (int mi = 0; mi < M; mi++) {
                    float xf[4];
                    ldx<4>(xs + mi * k, c * 16 + wi * 4, k, xvec, xf);
#pragma unroll
                    for (int r = 0; r < R; r++)
#pragma unroll
                        for (int j = 0; j < 4; j++)
                            acc[mi][r] = fmaf(xf[j], wf[r][j], acc[mi][r]);
                }
            }
        }
    } else {
        post = 1.0f;
        for (int64_t c = p.kw * 32 + p.lane; c < k; c += 32 * p.ks) {
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float wv = elk_e4m3_to_f32(qs[rows[r] * k + c]);
#pragma unroll
                for (int mi = 0; mi < M; mi++)
                    acc[mi][r] = fmaf(xs[mi * k + c], wv, acc[mi][r]);
            }
        }
    }
    const float pa = act > 0 ? act : 1.0f;
    qg_reduce<M, R>(acc, ks, n, [&](int mi, int, int64_t row, float s) {
        const float v = (s * post) * __fmul_rn(sw[row], pa);
        y[(int64_t)mi * ldy + row] = bias ? v + bias[row] : v;
    });
}

/* ---- w8a8 ---- */
template <int M, int R>
__global__ void __launch_bounds__(QG_THREADS)
    k_w8a8(const int8_t *__restrict__ xq, const float *__restrict__ sx, int64_t k,
           const uint8_t *__restrict__ w, int64_t n, const float *__restrict__ bias, float *__restrict__ y,
           int64_t ldy, int ks) {
    const elk_qhdr *h = (const elk_qhdr *)w;
    const float *sw = (const float *)(w + h->scales_off);
    const int8_t *qs = (const int8_t *)(w + h->quants_off);
    const qg_pos p = qg_where(ks, R);
    const int64_t kq = (k + 15) & ~(int64_t)15; /* row stride of xq */
    int64_t rows[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        rows[r] = clamp_row(p.row0 + r, n);
    int acc[M][R];
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++)
            acc[mi][r] = 0;
    if (k % 16 == 0) {
        const int64_t nck = k / 16;
#pragma unroll 2
        for (int64_t c = p.kw * 32 + p.lane; c < nck; c += 32 * p.ks) {
            uint4 q[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                q[r] = elk_ldg_stream(qs + rows[r] * k + c * 16);
#pragma unroll
            for (int mi = 0; mi < M; mi++) {
                const int4 xv = __ldg((const int4 *)(xq + mi * kq + c * 16));
#pragma unroll
                for (int r = 0; r < R; r++) {
                    int a = acc[mi][r];
                    a = __dp4a((int)q[r].x, xv.x, a);
                    a = __dp4a((int)q[r].y, xv.y, a);
                    a = __dp4a((int)q[r].z, xv.z, a);
                    a = __dp4a((int)q[r].w, xv.w, a);
                    acc[mi][r] = a;
                }
            }
        }
    } else {
        for (int64_t c = p.kw * 32 + p.lane; c < k; c += 32 * p.ks) {
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int wv = qs[rows[r] * k + c];
#pragma unroll
                for (int mi = 0; mi < M; mi++)
                    acc[mi][r] += wv * (int)xq[mi * kq + c];
            }
        }
    }
    qg_reduce<M, R>(acc, ks, n, [&](int mi, int, int64_t row, int s) {
        const float v = __fmul_rn(__fmul_rn((float)s, sw[row]), sx[mi]);
        y[(int64_t)mi * ldy + row] = bias ? v + bias[row] : v;
    });
}

/* ---- nvfp4 ---- */
template <int M, int R>
__global__ void __launch_bounds__(QG_THREADS)
    k_nvfp4(const float *__restrict__ x, int64_t k, const uint8_t *__restrict__ w, int64_t n,
            const float *__restrict__ bias, float *__restrict__ y, int64_t ldy, int ks, bool xvec) {
    const elk_qhdr *h = (const elk_qhdr *)w;
    const int64_t B = (k + 15) / 16;
    const uint8_t *bs = w + h->scales_off, *qs = w + h->quants_off;
    const qg_pos p = qg_where(ks, R);
    int64_t rows[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        rows[r] = clamp_row(p.row0 + r, n);
    float acc[M][R];
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++)
            acc[mi][r] = 0.f;
    float post = 4194304.0f; /* 2^22: e2m1 * 2^-14 and e4m3 * 2^-8 in the vector path */
    if (B % 2 == 0) {
        const int64_t nck = B / 2;
#pragma unroll 2
        for (int64_t c = p.kw * 32 + p.lane; c < nck; c += 32 * p.ks) {
            uint4 q[R];
            float sc[R][2];
#pragma unroll
            for (int r = 0; r < R; r++) {
                q[r] = elk_ldg_stream(qs + rows[r] * B * 8 + c * 16);
                const uint32_t s2 = __ldg((const uint16_t *)(bs + rows[r] * B + 2 * c));
                float f4[4];
                e4m3x4(s2, f4);
                sc[r][0] = f4[0], sc[r][1] = f4[1];
            }
#pragma unroll
            for (int half = 0; half < 2; half++) {
                float part[M][R];
#pragma unroll
                for (int mi = 0; mi < M; mi++)
#pragma unroll
                    for (int r = 0; r < R; r++)
                        part[mi][r] = 0.f;
#pragma unroll
                for (int wj = 0; wj < 2; wj++) {
                    const int wi = half * 2 + wj;
                    float wf[R][8];
#pragma unroll
                    for (int r = 0; r < R; r++)
                        e2m1x8(wi == 0 ? q[r].x : wi == 1 ? q[r].y : wi == 2 ? q[r].z : q[r].w, wf[r]);
#pragma unroll
                    for (int mi = 0; mi < M; mi++) {
                        float xf[8];
                        ldx<8>(x + mi * k, c * 32 + wi * 8, k, xvec, xf);
#pragma unroll
                        for (int r = 0; r < R; r++)
#pragma unroll
                            for (int j = 0; j < 8; j++)
                                part[mi][r] = fmaf(xf[j], wf[r][j], part[mi][r]);
                    }
                }
#pragma unroll
                for (int mi = 0; mi < M; mi++)
#pragma unroll
                    for (int r = 0; r < R; r++)
                        acc[mi][r] = fmaf(part[mi][r], sc[r][half], acc[mi][r]);
            }
        }
    } else {
        post = 1.0f;
        for (int64_t c = p.kw * 32 + p.lane; c < k; c += 32 * p.ks) {
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float s = elk_e4m3_to_f32(bs[rows[r] * B + c / 16]);
                const float wv = e2m1_f32(qs[rows[r] * B * 8 + c / 2] >> ((c & 1) * 4)) * s;
#pragma unroll
                for (int mi = 0; mi < M; mi++)
                    acc[mi][r] = fmaf(x[mi * k + c], wv, acc[mi][r]);
            }
        }
    }
    const float gs = h->global_scale * post;
    qg_reduce<M, R>(acc, ks, n, [&](int mi, int, int64_t row, float s) {
        const float v = s * gs;
        y[(int64_t)mi * ldy + row] = bias ? v + bias[row] : v;
    });
}

/* ---- ggml q8_0 / q4_0 (k % 32 == 0; one block per lane) ---- */
static __device__ __forceinline__ uint32_t ld32u16(const uint16_t *p) { /* two 16-bit loads */
    return (uint32_t)__ldg(p) | ((uint32_t)__ldg(p + 1) << 16);
}
template <bool Q4, int M, int R>
__global__ void __launch_bounds__(QG_THREADS)
    k_ggml(const int8_t *__restrict__ xq, const float *__restrict__ xd, int64_t k,
           const uint8_t *__restrict__ w, int64_t n, const float *__restrict__ bias, float *__restrict__ y,
           int64_t ldy, int ks) {
    constexpr int BB = Q4 ? 18 : 34;
    const int64_t nb = k / 32;
    const qg_pos p = qg_where(ks, R);
    int64_t rows[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        rows[r] = clamp_row(p.row0 + r, n);
    float acc[M][R];
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < R; r++)
            acc[mi][r] = 0.f;
    for (int64_t b = p.kw * 32 + p.lane; b < nb; b += 32 * p.ks) {
        uint32_t qw[R][Q4 ? 4 : 8];
        float dw[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint16_t *bp = (const uint16_t *)(w + (rows[r] * nb + b) * BB);
            dw[r] = f16_f32(__ldg(bp));
#pragma unroll
            for (int i = 0; i < (Q4 ? 4 : 8); i++)
                qw[r][i] = ld32u16(bp + 1 + 2 * i);
        }
#pragma unroll
        for (int mi = 0; mi < M; mi++) {
            const int4 *xp = (const int4 *)(xq + mi * k + b * 32);
            const int4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
            const int xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
            const float d = xd[mi * nb + b];
            int sumx = 0;
            if (Q4) {
#pragma unroll
                for (int i = 0; i < 8; i++)
                    sumx = __dp4a(xv[i], 0x01010101, sumx);
            }
#pragma unroll
            for (int r = 0; r < R; r++) {
                int s = 0;
                if (Q4) {
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        s = __dp4a((int)(qw[r][i] & 0x0f0f0f0fu), xv[i], s);
                        s = __dp4a((int)((qw[r][i] >> 4) & 0x0f0f0f0fu), xv[4 + i], s);
                    }
                    s -= 8 * sumx;
                } else {
#pragma unroll
                    for (int i = 0; i < 8; i++)
                        s = __dp4a((int)qw[r][i], xv[i], s);
                }
                acc[mi][r] += (float)s * __fmul_rn(dw[r], d);
            }
        }
    }
    qg_reduce<M, R>(acc, ks, n, [&](int mi, int, int64_t row, float s) {
        y[(int64_t)mi * ldy + row] = bias ? s + bias[row] : s;
    });
}

/* ---- activation quantization (the reference's, bit for bit; used by the decode pre-kernels, the prefill
 * preparation for the bf16 GEMM and the int8 / fp8 prefill GEMMs) ---- */
/* w8a8: the token row's inv and s_x (dynamic: from max |x| over the row, block-wide; static: hdr.act_scale).
 * Every thread of the block calls it and gets the values; `red` is __shared__ float[32]. */
static __device__ __forceinline__ void w8a8_row_scale(const elk_qhdr *h, const float *xr, int64_t k, float *red,
                                                      float &inv, float &s) {
    const bool stat = (h->flags & ELK_QF_STATIC_ACT) != 0;
    float a = 0.f;
    if (!stat) {
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x)
            a = fmaxf(a, fabsf(xr[c]));
        a = qa_block_max(a, red);
    }
    w8a8_act_scale(stat, h->act_scale, a, inv, s);
}
/* ---- activation pre-kernels ---- */
/* w8a8: one block (256 threads) per token: xq (kq = k rounded up to 16, zero padded), sx; blocks from m on
 * (padding rows of the prefill GEMM) write zero codes and scales */
__global__ void __launch_bounds__(256) k_act_w8a8(const float *__restrict__ x, int64_t m, int64_t k, const uint8_t *w,
                                                  int8_t *__restrict__ xq, float *__restrict__ sx) {
    __shared__ float red[32];
    const int64_t kq = (k + 15) & ~(int64_t)15;
    const bool pad = blockIdx.x >= m;
    const float *xr = x + (pad ? 0 : blockIdx.x * k);
    float inv = 0.f, s = 0.f;
    if (!pad) w8a8_row_scale((const elk_qhdr *)w, xr, k, red, inv, s);
    for (int64_t c = threadIdx.x; c < kq; c += blockDim.x)
        xq[blockIdx.x * kq + c] = (int8_t)(!pad && c < k ? (int)w8a8_code(xr[c], inv) : 0);
    if (threadIdx.x == 0) sx[blockIdx.x] = s;
}

/* fp8 static activations: xe = e4m3(clamp(x / act_scale, +-448)) as f32; nothing for weight-only fp8 */
__global__ void k_act_fp8(const float *__restrict__ x, int64_t total, const uint8_t *w,
                          float *__restrict__ xe) {
    const elk_qhdr *h = (const elk_qhdr *)w;
    const float act = h->act_scale;
    if (!(act > 0)) return;
    const float inv = __fdiv_rn(1.0f, act);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        xe[i] = elk_e4m3_to_f32(fp8_act_code(x[i], inv));
}

/* ggml: one warp per 32-block: xq = roundf(x / d) (half away from zero), xd = f16(d) as f32 */
__global__ void k_act_q8_0(const float *__restrict__ x, int64_t nblk, int8_t *__restrict__ xq,
                           float *__restrict__ xd) {
    const int64_t b = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (b >= nblk) return;
    const int lane = threadIdx.x & 31;
    const float v = x[b * 32 + lane];
    const float amax = elk_warp_max(fabsf(v));
    const float d = __fdiv_rn(amax, 127.0f), id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    xq[b * 32 + lane] = (int8_t)(int)roundf(__fmul_rn(v, id));
    if (lane == 0) xd[b] = f16_round(d);
}

/* ---- host side: GEMV ---- */
static inline size_t al256(size_t v) {
    return (v + 255) & ~(size_t)255;
}

size_t elk_qgemv_scratch(int wt, int64_t m, int64_t k) {
    switch (wt) {
    case ELK_Q_W8A8:
        return al256((size_t)m * (size_t)((k + 15) & ~(int64_t)15)) + al256((size_t)m * 4);
    case ELK_Q_FP8:
        return al256((size_t)m * (size_t)k * 4);
    case ELK_Q_W4A16: /* the tensor-core kernel's pre-split x (k_xsplit) */
        return al256((size_t)m * (size_t)((k + 127) / 128) * 512);
    case ELK_Q8_0:
    case ELK_Q4_0:
        return al256((size_t)m * (size_t)k) + al256((size_t)m * (size_t)(k / 32) * 4);
    default:
        return 0;
    }
}

/* Warps per row set: enough warps for the device, at least 2 chunks per lane per row. */
static int pick_ks(int64_t n, int R, int64_t nck, int n_sm) {
    const int64_t sets = (n + R - 1) / R;
    int ks = 1;
    while (ks < QG_WARPS && sets * ks < (int64_t)n_sm * 32 && nck >= (int64_t)64 * ks)
        ks *= 2;
    return ks;
}

struct qg_args {
    const float *x;
    int64_t k;
    const uint8_t *w;
    int64_t n;
    const float *bias;
    float *y;
    int64_t ldy;
    int n_sm;
    bool xvec;
    void *scr;
};

template <int M> static cudaError_t qgemv_m(int wt, cudaStream_t st, const qg_args &a) {
    constexpr int R = M <= 4 ? 4 : 2;
    const int64_t k = a.k, n = a.n;
    int64_t nck;
    switch (wt) {
    case ELK_Q_W4A16:
        nck = (k + 31) / 32;
        break;
    case ELK_Q_NVFP4:
        nck = (k + 31) / 32;
        break;
    case ELK_Q8_0:
    case ELK_Q4_0:
        nck = k / 32;
        break;
    default:
        nck = (k + 15) / 16;
        break;
    }
    const int ks = pick_ks(n, R, nck, a.n_sm);
    const int64_t rows_per_block = (int64_t)(QG_WARPS / ks) * R;
    const unsigned grid = (unsigned)((n + rows_per_block - 1) / rows_per_block);
    switch (wt) {
    case ELK_Q_W4A16:
        if ((M >= 2 && elk_qgemv_tc_mode == 0) || elk_qgemv_tc_mode == 2)
            return w4a16_tc(st, a.x, M, k, a.w, n, a.bias, a.y, a.ldy, a.scr);
        k_w4a16<M, R><<<grid, QG_THREADS, 0, st>>>(a.x, k, a.w, n, a.bias, a.y, a.ldy, ks, a.xvec);
        break;
    case ELK_Q_FP8: {
        float *xe = (float *)a.scr;
        const int64_t total = M * k;
        const unsigned gb = (unsigned)(total < (int64_t)256 * 1024 ? (total + 255) / 256 : 1024);
        k_act_fp8<<<gb, 256, 0, st>>>(a.x, total, a.w, xe);
        k_fp8<M, R><<<grid, QG_THREADS, 0, st>>>(a.x, xe, k, a.w, n, a.bias, a.y, a.ldy, ks, a.xvec);
        break;
    }
    case ELK_Q_W8A8: {
        int8_t *xq = (int8_t *)a.scr;
        float *sx = (float *)((char *)a.scr + al256((size_t)M * (size_t)((k + 15) & ~(int64_t)15)));
        k_act_w8a8<<<M, 256, 0, st>>>(a.x, M, k, a.w, xq, sx);
        k_w8a8<M, R><<<grid, QG_THREADS, 0, st>>>(xq, sx, k, a.w, n, a.bias, a.y, a.ldy, ks);
        break;
    }
    case ELK_Q_NVFP4:
        k_nvfp4<M, R><<<grid, QG_THREADS, 0, st>>>(a.x, k, a.w, n, a.bias, a.y, a.ldy, ks, a.xvec);
        break;
    case ELK_Q8_0:
    case ELK_Q4_0: {
        int8_t *xq = (int8_t *)a.scr;
        float *xd = (float *)((char *)a.scr + al256((size_t)M * (size_t)k));
        const int64_t nblk = M * (k / 32);
        k_act_q8_0<<<(unsigned)((nblk * 32 + 255) / 256), 256, 0, st>>>(a.x, nblk, xq, xd);
        if (wt == ELK_Q4_0)
            k_ggml<true, M, R><<<grid, QG_THREADS, 0, st>>>(xq, xd, k, a.w, n, a.bias, a.y, a.ldy, ks);
        else
            k_ggml<false, M, R><<<grid, QG_THREADS, 0, st>>>(xq, xd, k, a.w, n, a.bias, a.y, a.ldy, ks);
        break;
    }
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

cudaError_t elk_qgemv(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int wt, int64_t n,
                      const float *bias, float *y, int64_t ldy, int n_sm, void *scratch) {
    if (m <= 0 || n <= 0) return cudaSuccess;
    const bool ggml = wt == ELK_Q8_0 || wt == ELK_Q4_0;
    if (m > 8 || k <= 0 || n > 0x7fffffff || ((uintptr_t)w & (ggml ? 1 : 63)) || (ggml && k % 32))
        return cudaErrorInvalidValue;
    if (elk_qgemv_scratch(wt, m, k) && (!scratch || ((uintptr_t)scratch & 15))) return cudaErrorInvalidValue;
    qg_args a = {x,
                 k,
                 (const uint8_t *)w,
                 n,
                 bias,
                 y,
                 ldy,
                 n_sm > 0 ? n_sm : 1,
                 k % 4 == 0 && ((uintptr_t)x & 15) == 0,
                 scratch};
    switch (m) {
    case 1:
        return qgemv_m<1>(wt, st, a);
    case 2:
        return qgemv_m<2>(wt, st, a);
    case 3:
        return qgemv_m<3>(wt, st, a);
    case 4:
        return qgemv_m<4>(wt, st, a);
    case 5:
        return qgemv_m<5>(wt, st, a);
    case 6:
        return qgemv_m<6>(wt, st, a);
    case 7:
        return qgemv_m<7>(wt, st, a);
    default:
        return qgemv_m<8>(wt, st, a);
    }
}

/* ---- prefill: dequantize to bf16, activations, epilogue ---- */

/* W' (the GEMM's bf16 weight value, see the header comment) of rows n0 .. n0 + nr: a thread per 32 consecutive
 * elements of a row (nr * ceil(k / 32) threads). w4a16 with groups of a multiple of 32 and nvfp4 (k % 32 == 0,
 * 16-byte aligned codes) read their 32 codes as one 16-byte vector and write 64 bytes of bf16; the other formats
 * and shapes take the element loop. Every value is the element loop's: (q - z) * scale or e2m1 * e4m3 in f32,
 * rounded to bf16 (RNE). */
__global__ void __launch_bounds__(256) k_qdequant_bf16(const uint8_t *__restrict__ w, int wt, int k, int64_t n0,
                                                       int64_t nr, __nv_bfloat16 *__restrict__ dst) {
    const int64_t cpr = (k + 31) / 32, e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= nr * cpr) return;
    const int64_t r = e / cpr, j = n0 + r;
    const int c00 = (int)(e - r * cpr) * 32;
    __nv_bfloat16 *o = dst + r * k;
    const bool vec = (k & 7) == 0;
    elk_qhdr h = {};
    if (wt != ELK_Q8_0 && wt != ELK_Q4_0) h = *(const elk_qhdr *)w;
    const int g = h.group ? (int)h.group : 1, G = (k + g - 1) / g, B = (k + 15) / 16, nb = k / 32;
    const uint8_t *qr = w + h.quants_off;
    const uint16_t *s16 = (const uint16_t *)(w + h.scales_off);
    const uint8_t *zr = h.zeros_off ? w + h.zeros_off + j * G : nullptr;
    if (wt == ELK_Q_W8A8 || wt == ELK_Q_FP8)
        qr += j * k;
    else if (wt == ELK_Q_W4A16)
        qr += j * ((int64_t)G * g / 2), s16 += j * G;
    else if (wt == ELK_Q_NVFP4)
        qr += j * (int64_t)B * 8;
    else
        qr = w + j * nb * (wt == ELK_Q8_0 ? 34 : 18);
    const uint8_t *bsr = w + h.scales_off + j * B;
    const bool w4v = wt == ELK_Q_W4A16 && g % 32 == 0, f4v = wt == ELK_Q_NVFP4;
    if ((w4v || f4v) && (k & 31) == 0 && ((uintptr_t)(qr + c00 / 2) & 15) == 0) {
        const uint4 q = __ldg((const uint4 *)(qr + c00 / 2)); /* byte b: codes c00 + 2b (low), c00 + 2b + 1 */
        const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
        float sc[2];
        int z = 8;
        if (w4v) {
            const int gi = c00 / g; /* one group: g is a multiple of 32 */
            sc[0] = sc[1] = f16_f32(s16[gi]);
            if (zr) z = zr[gi];
        } else {
            sc[0] = elk_e4m3_to_f32(bsr[c00 >> 4]), sc[1] = elk_e4m3_to_f32(bsr[(c00 >> 4) + 1]);
        }
        uint32_t ov[16];
#pragma unroll
        for (int b = 0; b < 16; b++) {
            const uint32_t by = (qw[b >> 2] >> ((b & 3) * 8)) & 0xffu;
            const float s = sc[b >> 3]; /* bytes 0-7: block c00 / 16, 8-15: the next (nvfp4) */
            float lo, hi;
            if (w4v) {
                lo = (float)((int)(by & 15u) - z) * s;
                hi = (float)((int)(by >> 4) - z) * s;
            } else {
                lo = e2m1_f32(by) * s;
                hi = e2m1_f32(by >> 4) * s;
            }
            const __nv_bfloat162 t = __floats2bfloat162_rn(lo, hi);
            ov[b] = *reinterpret_cast<const uint32_t *>(&t);
        }
        uint4 *op = (uint4 *)(o + c00);
#pragma unroll
        for (int i = 0; i < 4; i++)
            op[i] = make_uint4(ov[4 * i], ov[4 * i + 1], ov[4 * i + 2], ov[4 * i + 3]);
        return;
    }
    for (int c0 = c00; c0 < c00 + 32 && c0 < k; c0 += 8) {
        float v[8];
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const int c = c0 + t < k ? c0 + t : k - 1;
            float f;
            switch (wt) {
            case ELK_Q_W8A8:
                f = (float)(int8_t)qr[c];
                break;
            case ELK_Q_FP8:
                f = elk_e4m3_to_f32(qr[c]);
                break;
            case ELK_Q_W4A16: {
                const int gi = c / g, zz = zr ? zr[gi] : 8;
                f = (float)((int)((qr[c >> 1] >> ((c & 1) * 4)) & 15) - zz) * f16_f32(s16[gi]);
                break;
            }
            case ELK_Q_NVFP4:
                f = e2m1_f32(qr[c >> 1] >> ((c & 1) * 4)) * elk_e4m3_to_f32(bsr[c >> 4]);
                break;
            case ELK_Q8_0: {
                const uint8_t *bp = qr + (c >> 5) * 34;
                f = (float)(int8_t)bp[2 + (c & 31)] * f16_f32(*(const uint16_t *)bp);
                break;
            }
            default: { /* q4_0 */
                const uint8_t *bp = qr + (c >> 5) * 18;
                const int i = c & 31, q = i < 16 ? (bp[2 + i] & 15) : (bp[2 + i - 16] >> 4);
                f = (float)(q - 8) * f16_f32(*(const uint16_t *)bp);
                break;
            }
            }
            v[t] = f;
        }
        if (vec) {
            __nv_bfloat162 b[4];
#pragma unroll
            for (int t = 0; t < 4; t++)
                b[t] = __floats2bfloat162_rn(v[2 * t], v[2 * t + 1]);
            *(uint4 *)(o + c0) = *reinterpret_cast<uint4 *>(b);
        } else {
#pragma unroll
            for (int t = 0; t < 8; t++)
                if (c0 + t < k) o[c0 + t] = __float2bfloat16_rn(v[t]);
        }
    }
}

cudaError_t elk_qdequant_bf16(cudaStream_t st, const void *w, int wt, int64_t n, int64_t k, int64_t n0,
                              int64_t n1, void *dst) {
    if (n0 < 0 || n1 > n || n1 <= n0 || k <= 0 || k > 0x7fffffff || n1 - n0 > 0x7fffffff ||
        ((uintptr_t)dst & 15))
        return cudaErrorInvalidValue;
    const int64_t threads = (n1 - n0) * ((k + 31) / 32), blocks = (threads + 255) / 256;
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    k_qdequant_bf16<<<(unsigned)blocks, 256, 0, st>>>((const uint8_t *)w, wt, (int)k, n0, n1 - n0,
                                                      (__nv_bfloat16 *)dst);
    return cudaGetLastError();
}

/* one block (256 threads) per token row */
__global__ void __launch_bounds__(256)
    k_qprep_act(const float *__restrict__ x, int64_t k, const uint8_t *w, int wt,
                __nv_bfloat16 *__restrict__ xb, float *__restrict__ rs) {
    __shared__ float red[32];
    const float *xr = x + blockIdx.x * k;
    __nv_bfloat16 *ob = xb + blockIdx.x * k;
    if (wt == ELK_Q_W8A8) {
        float inv, s;
        w8a8_row_scale((const elk_qhdr *)w, xr, k, red, inv, s);
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x)
            ob[c] = __float2bfloat16_rn(w8a8_code(xr[c], inv));
        if (threadIdx.x == 0) rs[blockIdx.x] = s;
    } else if (wt == ELK_Q_FP8) {
        const float act = ((const elk_qhdr *)w)->act_scale;
        if (act > 0) {
            const float inv = __fdiv_rn(1.0f, act);
            for (int64_t c = threadIdx.x; c < k; c += blockDim.x)
                ob[c] = __float2bfloat16_rn(elk_e4m3_to_f32(fp8_act_code(xr[c], inv)));
        } else {
            for (int64_t c = threadIdx.x; c < k; c += blockDim.x)
                ob[c] = __float2bfloat16_rn(xr[c]);
        }
    } else if (wt == ELK_Q8_0 || wt == ELK_Q4_0) { /* q8_0 round trip, one warp per block of 32 */
        const int lane = threadIdx.x & 31;
        for (int64_t b = threadIdx.x >> 5; b < k / 32; b += blockDim.x >> 5) {
            const float v = xr[b * 32 + lane];
            const float amax = elk_warp_max(fabsf(v));
            const float d = __fdiv_rn(amax, 127.0f), id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
            const float q = (float)(int)roundf(__fmul_rn(v, id));
            ob[b * 32 + lane] = __float2bfloat16_rn(q * f16_round(d));
        }
    } else {
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x)
            ob[c] = __float2bfloat16_rn(xr[c]);
    }
}

cudaError_t elk_qprep_act_bf16(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int wt,
                               void *xb, float *rs) {
    if (m <= 0) return cudaSuccess;
    if (m > 0x7fffffff || k <= 0) return cudaErrorInvalidValue;
    k_qprep_act<<<(unsigned)m, 256, 0, st>>>(x, k, (const uint8_t *)w, wt, (__nv_bfloat16 *)xb, rs);
    return cudaGetLastError();
}

/* grid (column blocks of 256, token rows strided by gridDim.y): y = scales * acc + bias, acc (ld lda) = y itself
 * (in place) or another buffer; I32: acc holds int32 sums (the int8 GEMM) */
template <bool I32>
__global__ void k_qepilogue(const float *acc, int64_t lda, float *y, int64_t m, int64_t n, int64_t ldy,
                            const uint8_t *w, int wt, const float *__restrict__ rs, const float *__restrict__ bias) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    float cs = 1.0f; /* per-column scale */
    if (wt == ELK_Q_W8A8 || wt == ELK_Q_FP8 || wt == ELK_Q_NVFP4) {
        const elk_qhdr *h = (const elk_qhdr *)w;
        const float *sw = (const float *)(w + h->scales_off);
        if (wt == ELK_Q_W8A8)
            cs = sw[j];
        else if (wt == ELK_Q_FP8)
            cs = __fmul_rn(sw[j], h->act_scale > 0 ? h->act_scale : 1.0f);
        else
            cs = h->global_scale;
    }
    const float b = bias ? bias[j] : 0.0f;
    for (int64_t i = blockIdx.y; i < m; i += gridDim.y) {
        const float a = acc[i * lda + j];
        float v = __fmul_rn(I32 ? (float)__float_as_int(a) : a, cs);
        if (wt == ELK_Q_W8A8) v = __fmul_rn(v, rs[i]);
        y[i * ldy + j] = bias ? v + b : v;
    }
}

cudaError_t elk_qepilogue_acc(cudaStream_t st, const void *acc, int64_t lda, bool i32, float *y, int64_t m, int64_t n,
                              int64_t ldy, const void *w, int wt, const float *rs, const float *bias) {
    if (m <= 0 || n <= 0) return cudaSuccess;
    dim3 grid((unsigned)((n + 255) / 256), (unsigned)(m < 1024 ? m : 1024));
    if (i32)
        k_qepilogue<true><<<grid, 256, 0, st>>>((const float *)acc, lda, y, m, n, ldy, (const uint8_t *)w, wt, rs, bias);
    else
        k_qepilogue<false><<<grid, 256, 0, st>>>((const float *)acc, lda, y, m, n, ldy, (const uint8_t *)w, wt, rs, bias);
    return cudaGetLastError();
}

cudaError_t elk_qepilogue(cudaStream_t st, float *y, int64_t m, int64_t n, int64_t ldy, const void *w, int wt,
                          const float *rs, const float *bias) {
    if (wt != ELK_Q_W8A8 && wt != ELK_Q_FP8 && wt != ELK_Q_NVFP4 && !bias) return cudaSuccess;
    return elk_qepilogue_acc(st, y, ldy, false, y, m, n, ldy, w, wt, rs, bias);
}

/* ---- prefill on int8 / fp8 tensor cores (the backend's cuBLASLt GEMMs on the quantized codes) ---- */

/* static fp8: e4m3 codes of x (m, kq), zero padded beyond k; 4 codes (one 32-bit word) per thread and step */
__global__ void k_act_fp8_codes(const float *__restrict__ x, int64_t m, int64_t rows, int64_t k, int64_t kq,
                                const uint8_t *w, uint32_t *__restrict__ xq, bool xvec) {
    const float inv = __fdiv_rn(1.0f, ((const elk_qhdr *)w)->act_scale);
    const int64_t wpr = kq / 4, total = rows * wpr; /* 32-bit words per row (kq % 16 == 0), words */
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / wpr, c0 = (e - i * wpr) * 4;
        uint32_t v = 0;
        if (i < m) { /* rows from m on: padding, code 0 */
            float f[4];
            ldx<4>(x + i * k, c0, k, xvec, f); /* zeros beyond k: code 0 */
#pragma unroll
            for (int t = 0; t < 4; t++)
                v |= fp8_act_code(f[t], inv) << (8 * t);
        }
        xq[e] = v;
    }
}

static inline int64_t round16(int64_t k) {
    return (k + 15) & ~(int64_t)15;
}

size_t elk_qgemm_act_scratch(int wt, int64_t rows, int64_t k) {
    if (wt == ELK_Q_W8A8) return elk_qgemv_scratch(wt, rows, k); /* the decode pre-kernel's layout, any m */
    if (wt == ELK_Q_FP8) return al256((size_t)rows * (size_t)round16(k));
    return 0;
}

cudaError_t elk_qgemm_act(cudaStream_t st, const float *x, int64_t m, int64_t rows, int64_t k, const void *w, int wt,
                          void *scratch, float **sx) {
    const int64_t kq = round16(k);
    *sx = NULL;
    if (rows <= 0) return cudaSuccess;
    if (rows > 0x7fffffff || m < 0 || m > rows || k <= 0 || !scratch || ((uintptr_t)scratch & 255) ||
        (wt != ELK_Q_W8A8 && wt != ELK_Q_FP8))
        return cudaErrorInvalidValue;
    if (wt == ELK_Q_W8A8) {
        *sx = (float *)((char *)scratch + al256((size_t)rows * (size_t)kq));
        k_act_w8a8<<<(unsigned)rows, 256, 0, st>>>(x, m, k, (const uint8_t *)w, (int8_t *)scratch, *sx);
    } else {
        const int64_t words = rows * (kq / 4);
        const unsigned grid = (unsigned)(words < (int64_t)1024 * 256 ? (words + 255) / 256 : 1024);
        k_act_fp8_codes<<<grid, 256, 0, st>>>(x, m, rows, k, kq, (const uint8_t *)w, (uint32_t *)scratch,
                                              k % 4 == 0 && ((uintptr_t)x & 15) == 0);
    }
    return cudaGetLastError();
}
