/*
 * qmma.cu - one-token GEMVs of w4a16 weights (int4 codes, f16 group scales, optional u8 zero points;
 * kernels/quant.h) on int8 tensor cores: the plain GEMV of elk_qgemv at m = 1 and the fused decode ops of
 * elk_fused_gemv (rmsnorm + up to 3 matrices, residual add, gate/up + SwiGLU) for w4a16 weights.
 *
 * Why: the fp32-FMA kernel (qgemv.cu k_w4a16) spends ~3 instructions per int4 element (nibble -> float,
 * zero point, FMA) and reaches 30-57% of the copy bandwidth on Llama-3.1-8B shapes; here one mma.sync
 * m16n8k32 (u8 x s8 -> s32) consumes 512 codes, so the kernel is left with the loads and ~1 instruction
 * per 2 codes of unpacking.
 *
 * Activations: u = x (or x * norm_w when the op has a norm; rmsnorm's scalar rsqrt(mean(x^2) + eps) is
 * applied to the finished dot products) is quantized per 128-element block b to integers
 * v = rint(u * 32639 / max_b|u|), |error| <= max_b|u| / 65278 per element (the CPU w4a16 prefill uses the
 * same int16-per-128 scheme). v = 256 hi + lo with hi in [-127, 127], lo in [-128, 127] (both int8), so
 * sum q v = 256 sum q hi + sum q lo exactly in int32 (q = 0..15). With zero point z (8 when symmetric):
 * sum (q - z) v = 256 Dh + Dl - z sum v; the group scale and max_b|u| / 32639 multiply that in f32.
 * Each block (CTA) converts all of x once into shared memory, already in the mma B-fragment order, while
 * its first weight loads are in flight.
 *
 * Blocks are persistent (as many as fit on the SMs; block c takes the 16-row tiles c, c + grid, ...) and
 * every warp streams its 128-blocks of each tile (8 warps split k) through an S-stage cp.async ring in
 * shared memory (S - 1 blocks of 1 KB in flight per warp, crossing tile boundaries), so the weight stream
 * does not stop for the per-tile reduction; the first S - 1 blocks are requested before the programmatic
 * dependent launch wait, during the previous kernel.
 *
 * mma m16n8k32: A = 16 weight rows (g, g + 8 for lane group g = lane / 4) x 32 codes, B = 32 x 8. Lane
 * (g, tg = lane % 4) holds 16 bytes (32 codes) of rows g and g + 8 at k = 128 kb + 32 tg; word j of them
 * (codes 8 j .. 8 j + 7) gives A registers a0 = word & 0x0f0f0f0f (codes 0, 2, 4, 6 of the word, rows g)
 * and a2 = (word >> 4) & 0x0f0f0f0f (codes 1, 3, 5, 7), a1 / a3 the same for row g + 8; mma j = 0..3 covers
 * the 128-block. The k order inside an mma is free as long as B agrees: B column 2c holds the hi bytes and
 * column 2c + 1 the lo bytes of the x elements of group c of the block (group c = the lanes tg whose
 * 32 codes lie in group c: c = 0 for g >= 128, tg / 2 for g = 64, tg for g = 32), zero elsewhere, so D
 * column pair c is group c's (Dh, Dl) and lands in lane tg = c (D holds columns 2 tg, 2 tg + 1). |D| <=
 * 15 * 128 * 128 < 2^22, so D converts to float exactly by the 2^23 + 2^22 bit trick.
 * The 8 warps' partial sums meet in shared memory once per tile. Group sizes other than 32, 64 and
 * 128 * 2^i are not taken (elk_w4a16_mma_ok): the backend keeps the fp32-FMA kernel and the op chain.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fused.cuh"
#include "kernels/cuda/fused_ops.cuh"
#include "kernels/cuda/pdl.cuh"

#include <string.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define QM_CLUSTERS 1 /* thread block clusters: x converted once per cluster, shared through DSMEM */
#endif

int elk_qmma_cluster = 1; /* cuda_kernels.cuh */

#define QM_WARPS 8
#define QM_THREADS (QM_WARPS * 32)
#define QM_XMAX 32639.f /* hi = (v + 128) >> 8 stays within [-127, 127] */
#define QM_SMEM_PER_BLOCK (256 + 4 + 16) /* B fragments, block scale, 4 chunk sums (1 block sum when g >= 128) */

struct qm_args {
    elk_fg_ops f;         /* the op (tile_end: 16-row tiles) */
    int nkb, per;         /* 128-blocks of k; blocks per warp */
    int gsh;              /* group size of every matrix: 32, 64 or 128 << gsh (the kernel's GPB) */
    int64_t G, rb, codes; /* groups per row, code bytes per row, G * group */
    bool xvec;            /* x (and g) 16-byte aligned, k % 4 == 0 */
    bool have_off;        /* off: the sections' offsets (else read from the headers) */
    elk_w4off off[3];
};

static __device__ __forceinline__ void mma_u8s8(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* |v| < 2^22 -> float, exact */
static __device__ __forceinline__ float qm_i2f(int v) {
    return __int_as_float(v + 0x4B400000) - 12582912.f;
}

static __device__ __forceinline__ uint32_t qm_word(const uint4 &q, int j) {
    return j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w;
}

/* byte B (0 or 1) of a, b, c, d packed into one word, a lowest */
static __device__ __forceinline__ uint32_t qm_bytes4(uint32_t a, uint32_t b, uint32_t c, uint32_t d, int B) {
    const unsigned sel = B ? 0x0051u : 0x0040u;
    return __byte_perm(__byte_perm(a, b, sel), __byte_perm(c, d, sel), 0x5410u);
}

/* cp.async: 16 bytes (src_bytes < 16: the rest zero-filled), L2 only; 4 bytes through L1 */
static __device__ __forceinline__ void qm_cp16(void *dst, const void *src, int src_bytes) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}
static __device__ __forceinline__ void qm_cp4(void *dst, const void *src) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(d), "l"(src) : "memory");
}
static __device__ __forceinline__ void qm_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> static __device__ __forceinline__ void qm_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* Thread block clusters (sm_90): the rank of this block, the number of blocks, a pointer to the same shared
 * memory variable of block r, the cluster barrier (arrive: release; wait: acquire) */
template <bool SIZE> static __device__ __forceinline__ unsigned qm_cluster_reg() { /* rank, or size */
#ifdef QM_CLUSTERS
    unsigned r;
    if constexpr (SIZE)
        asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(r));
    else
        asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
#else
    return SIZE ? 1 : 0;
#endif
}
template <typename P> static __device__ __forceinline__ P *qm_peer(P *p, unsigned r) {
#ifdef QM_CLUSTERS
    uint64_t o;
    asm volatile("mapa.u64 %0, %1, %2;" : "=l"(o) : "l"(p), "r"(r));
    return (P *)o;
#else
    (void)r;
    return p;
#endif
}
static __device__ __forceinline__ void qm_cluster_arrive() {
#ifdef QM_CLUSTERS
    asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
#endif
}
static __device__ __forceinline__ void qm_cluster_wait() {
#ifdef QM_CLUSTERS
    asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}

/* One pipeline stage of a warp: the 16 rows x 128 codes of one block of T matrices, per lane its own
 * 16 code bytes of rows g and g + 8, the aligned 4-byte words holding their scale and zero point. */
template <int T> struct qm_stage {
    uint4 q[T][2][32];
    uint32_t s[T][2][32];
    uint32_t z[T][2][32];
};
template <int T, int S> struct qm_cfg { /* S stages per warp: S - 1 blocks in flight */
    static constexpr size_t WARP_BYTES = (size_t)S * sizeof(qm_stage<T>);
    static constexpr size_t BYTES = QM_WARPS * WARP_BYTES;
};

/* Persistent: block c takes tiles c, c + gridDim.x, ...; warp w the 128-blocks [w per, (w + 1) per) of
 * each, streamed through its S-stage cp.async ring across tile boundaries. GPB: groups per 128-block (1 for
 * group >= 128, 2 for 64, 4 for 32), fixed at compile time so the common g >= 128 case carries no per-lane
 * group bookkeeping in its inner loop. */
template <int MODE, int S, int GPB>
__global__ void __launch_bounds__(QM_THREADS, 2) k_q4mma(const qm_args a) {
    constexpr int T = MODE == ELK_FG_SWIGLU ? 2 : 1; /* matrices per tile */
    constexpr int gpb = GPB;
    extern __shared__ __align__(16) uint8_t qm_sm[];
    __shared__ float red[2][QM_WARPS][T][16];
    __shared__ float redn[32];
    const int nkb = a.nkb;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gq = lane >> 2, tg = lane & 3;
    qm_stage<T> *ring = (qm_stage<T> *)(qm_sm + warp * qm_cfg<T, S>::WARP_BYTES);
    uint32_t *xs = (uint32_t *)(qm_sm + qm_cfg<T, S>::BYTES); /* [nkb][2 (hi, lo)][4 tg][4 j][2] */
    float *xsc = (float *)(xs + nkb * 64);                  /* [nkb] max|u| / 32639 */
    float *xsum = xsc + nkb;                                /* [nkb][4] sum of v over each 32-code chunk */
    const int64_t k = a.f.k, G = a.G;
    const unsigned ntiles = a.f.tile_end[MODE == ELK_FG_SWIGLU ? 0 : 2];
    const unsigned nt_c = blockIdx.x < ntiles ? (ntiles - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
    const int kb_lo = warp * a.per, per_w = max(0, min(nkb, kb_lo + a.per) - kb_lo);
    const int total = (int)nt_c * per_w;
    /* the matrices' sections (headers read once) */
    __shared__ const uint8_t *mq[3], *ms[3], *mz[3];
    if (threadIdx.x < 3 && a.f.w[threadIdx.x]) {
        const uint8_t *w = (const uint8_t *)a.f.w[threadIdx.x];
        elk_w4off o;
        if (a.have_off) {
            o = a.off[threadIdx.x];
        } else {
            const elk_qhdr *h = (const elk_qhdr *)w;
            o.quants = h->quants_off, o.scales = h->scales_off, o.zeros = h->zeros_off;
        }
        mq[threadIdx.x] = w + o.quants;
        ms[threadIdx.x] = w + o.scales;
        mz[threadIdx.x] = o.zeros ? w + o.zeros : nullptr;
    }
    __syncthreads();

    /* tile -> (matrix, first row) */
    auto where = [&](unsigned ti, int &mi, int64_t &row0) {
        row0 = (int64_t)elk_fg_tile<MODE>(a.f, blockIdx.x + ti * gridDim.x, mi) * 16;
    };
    /* issue cursor: item i = (tile ci, block kb_lo + cj); the lane's row pointers of tile ci */
    unsigned ci = 0;
    int cj = 0, ii = 0, islot = 0; /* islot = ii % S */
    const uint8_t *cq[T][2], *cs[T][2], *cz[T][2];
    auto cursor_tile = [&]() {
        if (ci >= nt_c) return;
        int mi;
        int64_t row0;
        where(ci, mi, row0);
        const int64_t n = a.f.n[MODE == ELK_FG_SWIGLU ? 0 : mi];
        const int64_t r[2] = {min(row0 + gq, n - 1), min(row0 + gq + 8, n - 1)}; /* past n: row n - 1 */
#pragma unroll
        for (int t = 0; t < T; t++) {
            const int m = T == 2 ? t : mi;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                cq[t][hh] = mq[m] + r[hh] * a.rb;
                cs[t][hh] = ms[m] + r[hh] * G * 2;
                cz[t][hh] = mz[m] ? mz[m] + r[hh] * G : nullptr;
            }
        }
    };
    cursor_tile();
    auto issue = [&]() { /* the next item (ii), then advance the cursor */
        if (ii < total) {
            qm_stage<T> &st = ring[islot];
            const int kb = kb_lo + cj;
            const int64_t gi = gpb == 1 ? (int64_t)(kb >> a.gsh) : (int64_t)kb * gpb + tg;
            const bool in = kb * 128 + tg * 32 < a.codes; /* codes < 2^31: k is bounded by elk_w4a16_mma_ok */
#pragma unroll
            for (int t = 0; t < T; t++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    qm_cp16(&st.q[t][hh][lane], in ? cq[t][hh] + (int64_t)kb * 64 + tg * 16 : cq[t][hh], in ? 16 : 0);
                    if (gpb == 1) { /* lane tg < 2: the words of row g + 8 tg, in slot 0 */
                        if (hh == 0 && tg < 2) {
                            const uint8_t *ps = tg ? cs[t][1] : cs[t][0], *pz = tg ? cz[t][1] : cz[t][0];
                            qm_cp4(&st.s[t][0][lane], (const void *)((uintptr_t)(ps + gi * 2) & ~(uintptr_t)3));
                            if (pz) qm_cp4(&st.z[t][0][lane], (const void *)((uintptr_t)(pz + gi) & ~(uintptr_t)3));
                        }
                    } else if (tg < gpb) {
                        qm_cp4(&st.s[t][hh][lane], (const void *)((uintptr_t)(cs[t][hh] + gi * 2) & ~(uintptr_t)3));
                        if (cz[t][hh])
                            qm_cp4(&st.z[t][hh][lane], (const void *)((uintptr_t)(cz[t][hh] + gi) & ~(uintptr_t)3));
                    }
                }
            if (++cj == per_w) {
                cj = 0;
                ci++;
                cursor_tile();
            }
        }
        ii++;
        islot = islot == S - 1 ? 0 : islot + 1;
        qm_commit(); /* one group per item, empty past the end: the wait counts stay uniform */
    };
    /* weights are constant: fill the ring during the previous kernel (programmatic dependent launch) */
#pragma unroll 1
    for (int i = 0; i < S - 1; i++)
        issue();
    /* cluster: block r converts the 256-element pairs kb2 = w + 8 r (mod 8 csize) of x and stores them into
     * every block's shared memory; the first barrier phase makes sure all blocks of the cluster run */
    const unsigned crank = qm_cluster_reg<false>(), csize = qm_cluster_reg<true>();
    if (csize > 1) qm_cluster_arrive();
    if (!a.f.late_trig) pdl_launch_dependents();
    pdl_wait();
    if (a.f.late_trig) pdl_launch_dependents();
    if (csize > 1) qm_cluster_wait();

    /* x -> shared memory: 16 lanes per 128-block, 8 elements per lane (two blocks per warp and step) */
    const float *__restrict__ x = a.f.x;
    const float *__restrict__ g = a.f.g;
    float ss = 0.f;
#pragma unroll 4 /* independent iterations: their x loads in flight together */
    for (int kb2 = warp + QM_WARPS * (int)crank; 2 * kb2 < nkb; kb2 += QM_WARPS * (int)csize) {
        const int kb = 2 * kb2 + (lane >> 4), l16 = lane & 15;
        const int64_t e0 = (int64_t)kb * 128 + l16 * 8;
        float u[8];
        if (a.xvec && e0 + 8 <= k) {
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const float4 t = __ldg((const float4 *)(x + e0) + i);
                u[4 * i] = t.x, u[4 * i + 1] = t.y, u[4 * i + 2] = t.z, u[4 * i + 3] = t.w;
            }
            if (g) {
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    const float4 t = __ldg((const float4 *)(g + e0) + i);
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        ss = fmaf(u[4 * i + j], u[4 * i + j], ss);
                    u[4 * i] *= t.x, u[4 * i + 1] *= t.y, u[4 * i + 2] *= t.z, u[4 * i + 3] *= t.w;
                }
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const bool in = kb < nkb && e0 + i < k;
                u[i] = in ? __ldg(x + e0 + i) : 0.f;
                if (g) {
                    ss = fmaf(u[i], u[i], ss);
                    u[i] *= in ? __ldg(g + e0 + i) : 0.f;
                }
            }
        }
        float amax = 0.f;
#pragma unroll
        for (int i = 0; i < 8; i++)
            amax = fmaxf(amax, fabsf(u[i]));
#pragma unroll
        for (int o = 8; o > 0; o >>= 1)
            amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const float inv = amax > 0.f ? QM_XMAX / amax : 0.f;
        /* w = bits of 1.5 * 2^23 + rint(u inv) = 0x4B400000 + v (|v| < 2^22): byte 0 of w is lo (v mod 256),
         * byte 1 of w + 128 is hi = (v + 128) >> 8 (0x4B400000 is a multiple of 2^16) */
        uint32_t w[8], wh[8], usum = 0u - 8u * 0x4B400000u;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            w[i] = __float_as_uint(fmaf(u[i], inv, 12582912.f));
            wh[i] = w[i] + 128u;
            usum += w[i];
        }
        int sum = (int)usum; /* sum of the 8 v, exact */
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        if (gpb == 1) { /* one group per block: its sum, times the symmetric zero point 8 */
            sum += __shfl_xor_sync(0xffffffffu, sum, 4);
            sum += __shfl_xor_sync(0xffffffffu, sum, 8);
        }
        if (kb < nkb) {
            const int ct = l16 >> 2, j = l16 & 3;
            uint2 *hp = (uint2 *)(xs + ((kb * 2 + 0) * 4 + ct) * 8 + j * 2);
            uint2 *lp = (uint2 *)(xs + ((kb * 2 + 1) * 4 + ct) * 8 + j * 2);
            const uint2 hv = make_uint2(qm_bytes4(wh[0], wh[2], wh[4], wh[6], 1), qm_bytes4(wh[1], wh[3], wh[5], wh[7], 1));
            const uint2 lv = make_uint2(qm_bytes4(w[0], w[2], w[4], w[6], 0), qm_bytes4(w[1], w[3], w[5], w[7], 0));
            for (unsigned r = 0; r < csize; r++) {
                *qm_peer(hp, r) = hv;
                *qm_peer(lp, r) = lv;
                if (gpb > 1 && j == 0) *qm_peer(xsum + kb * 4 + ct, r) = (float)sum;
                if (gpb == 1 && l16 == 0) *qm_peer(xsum + kb, r) = (float)sum;
                if (l16 == 0) *qm_peer(xsc + kb, r) = amax / QM_XMAX;
            }
        }
    }
    /* sum(x^2) of each warp's part (0 without a norm) into slot 8 crank + warp of every block; then the
     * barrier (cluster-wide when csize > 1) after which the x fragments and the slots are complete */
    ss = elk_warp_sum(ss);
    if (lane == 0)
        for (unsigned r = 0; r < csize; r++)
            *qm_peer(&redn[crank * QM_WARPS + warp], r) = ss;
    if (csize > 1) {
        qm_cluster_arrive();
        qm_cluster_wait();
    } else {
        __syncthreads();
    }
    float rn = 1.f;
    if (g) rn = rsqrtf(elk_warp_sum(lane < QM_WARPS * (int)csize ? redn[lane] : 0.f) / (float)k + a.f.eps);

    /* lane (gq, tg) feeds B column gq: hi (gq even) or lo bytes of group gq / 2, if its codes are in it; one
     * group per block (gpb 1): columns 2, 3 repeat 0, 1, so lane tg = 1 holds (Dh, Dl) of row g + 8 in d[2..3] */
    const int mygrp = gpb == 1 ? 0 : tg / (4 / gpb);
    const bool bon = gpb == 1 ? gq < 4 : (gq >> 1) == mygrp;
    int i = 0, rslot = 0; /* rslot = i % S */
    for (unsigned ti = 0; ti < nt_c; ti++) {
        float acc[T][2];
#pragma unroll
        for (int t = 0; t < T; t++)
            acc[t][0] = acc[t][1] = 0.f;
        int mi;
        int64_t row0;
        where(ti, mi, row0);
        const int64_t nrow = a.f.n[MODE == ELK_FG_SWIGLU ? 0 : mi];
        const int64_t rr[2] = {min(row0 + gq, nrow - 1), min(row0 + gq + 8, nrow - 1)};
        bool zpt[T];
#pragma unroll
        for (int t = 0; t < T; t++)
            zpt[t] = mz[T == 2 ? t : mi] != nullptr;
        /* the epilogue's bias / residual of this tile's rows, loaded now (thread r < 16: row row0 + r) */
        float2 pre = make_float2(0.f, 0.f);
        if (threadIdx.x < 16 && row0 + threadIdx.x < nrow) pre = elk_fg_pre<MODE>(a.f, mi, row0 + threadIdx.x);
        /* element row * G + gi of the scale (zero) arrays: its half (byte) in the aligned word copied */
        const int e0 = (int)((rr[0] * G) & 3), e1 = (int)((rr[1] * G) & 3);
        for (int j = 0; j < per_w; j++, i++) {
            qm_wait<S - 2>(); /* item i landed (S - 1 groups were ahead of it) */
            const qm_stage<T> &st = ring[rslot];
            rslot = rslot == S - 1 ? 0 : rslot + 1;
            const int kb = kb_lo + j;
            uint4 b0 = make_uint4(0, 0, 0, 0), b1 = b0;
            if (bon) {
                const uint4 *p = (const uint4 *)(xs + ((kb * 2 + (gq & 1)) * 4 + tg) * 8);
                b0 = p[0], b1 = p[1];
            }
            const uint32_t bb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
            float sx; /* sum of v over this lane's group */
            if (gpb == 1)
                sx = xsum[kb];
            else if (gpb == 2)
                sx = tg < 2 ? xsum[kb * 4 + 2 * tg] + xsum[kb * 4 + 2 * tg + 1] : 0.f;
            else
                sx = xsum[kb * 4 + tg];
            const float bs = xsc[kb];
            const int gi = gpb == 1 ? kb >> a.gsh : kb * gpb + tg;
#pragma unroll
            for (int t = 0; t < T; t++) {
                int d[4] = {0, 0, 0, 0}, d2[4] = {0, 0, 0, 0}; /* two independent mma chains */
                const uint4 q0 = st.q[t][0][lane], q1 = st.q[t][1][lane]; /* one 16-byte shared load each */
#pragma unroll
                for (int jj = 0; jj < 4; jj++) {
                    const uint32_t u0 = qm_word(q0, jj), u1 = qm_word(q1, jj);
                    mma_u8s8(jj & 1 ? d2 : d, u0 & 0x0f0f0f0fu, u1 & 0x0f0f0f0fu, (u0 >> 4) & 0x0f0f0f0fu,
                             (u1 >> 4) & 0x0f0f0f0fu, bb[2 * jj], bb[2 * jj + 1]);
                }
#pragma unroll
                for (int c = 0; c < 4; c++)
                    d[c] += d2[c];
                if (gpb == 1) { /* lane tg < 2: row g + 8 tg */
                    if (tg < 2) {
                        const int e = (tg ? e1 : e0) + gi;
                        const float sw = __half2float(
                            __ushort_as_half((unsigned short)(st.s[t][0][lane] >> ((int)(e & 1) * 16))));
                        const float z = zpt[t] ? (float)((st.z[t][0][lane] >> ((int)(e & 3) * 8)) & 0xffu) : 8.f;
                        const float v = fmaf(qm_i2f(tg ? d[2] : d[0]), 256.f, qm_i2f(tg ? d[3] : d[1])) - z * sx;
                        acc[t][0] = fmaf(v, sw * bs, acc[t][0]);
                    }
                } else if (tg < gpb) {
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int e = (hh ? e1 : e0) + gi;
                        const float sw = __half2float(
                            __ushort_as_half((unsigned short)(st.s[t][hh][lane] >> ((int)(e & 1) * 16))));
                        const float z = zpt[t] ? (float)((st.z[t][hh][lane] >> ((int)(e & 3) * 8)) & 0xffu) : 8.f;
                        const float v = fmaf(qm_i2f(d[2 * hh]), 256.f, qm_i2f(d[2 * hh + 1])) - z * sx;
                        acc[t][hh] = fmaf(v, sw * bs, acc[t][hh]);
                    }
                }
            }
            issue(); /* item i + S - 1, into the stage read last iteration */
        }
#pragma unroll
        for (int t = 0; t < T; t++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                if (gpb == 1) { /* lane tg < 2 has row g + 8 tg */
                    if (hh == 0 && tg < 2) red[ti & 1][warp][t][gq + 8 * tg] = acc[t][0];
                    continue;
                }
                float v = acc[t][hh];
                v += __shfl_xor_sync(0xffffffffu, v, 1);
                v += __shfl_xor_sync(0xffffffffu, v, 2);
                if (tg == 0) red[ti & 1][warp][t][gq + 8 * hh] = v;
            }
        __syncthreads(); /* one barrier per tile: red alternates, so tile ti + 2 writes after this one's reads */
        if (threadIdx.x < 16) {
            const int r = threadIdx.x;
            const int64_t n = a.f.n[MODE == ELK_FG_SWIGLU ? 0 : mi];
            const int64_t row = row0 + r;
            if (row < n) {
                float s = 0.f, up = 0.f;
#pragma unroll
                for (int w = 0; w < QM_WARPS; w++) {
                    s += red[ti & 1][w][0][r];
                    if (MODE == ELK_FG_SWIGLU) up += red[ti & 1][w][T - 1][r];
                }
                elk_fg_store<MODE>(a.f, mi, row, s * rn, up * rn, pre);
            }
        }
    }
    qm_wait<0>();
}

template <int MODE, int S, int GPB>
static cudaError_t qm_launch_s(cudaStream_t st, const qm_args &a, unsigned tiles, int n_sm, bool pdl) {
    constexpr int T = MODE == ELK_FG_SWIGLU ? 2 : 1;
    const size_t smem = qm_cfg<T, S>::BYTES + (size_t)a.nkb * QM_SMEM_PER_BLOCK;
    /* clusters of C blocks share the x conversion (sm_90+, set by the backend; at most 4: 8 C sum slots) */
    const int C = elk_qmma_cluster >= 2 && elk_qmma_cluster <= 4 ? elk_qmma_cluster : 1;
    static size_t smem_set; /* the dynamic shared memory enabled so far */
    static int occ, occ_smem, occ_c, occ_nsm; /* resident blocks at the smem, cluster size, SMs of the last launch */
    if (smem > smem_set) {
        const cudaError_t e = cudaFuncSetAttribute(k_q4mma<MODE, S, GPB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   (int)smem);
        if (e != cudaSuccess) return e;
        smem_set = smem;
    }
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[2];
    elk_launch_cfg(cfg, at, dim3((unsigned)C), dim3(QM_THREADS), smem, st, pdl, (unsigned)C);
    if (occ_smem != (int)smem || occ_c != C || occ_nsm != n_sm) {
        int b = 0;
        cudaError_t e;
        if (C > 1) { /* clusters that fit at once (GPC boundaries; cfg.gridDim is one cluster here) */
            e = cudaOccupancyMaxActiveClusters(&b, k_q4mma<MODE, S, GPB>, &cfg);
            b *= C;
        } else {
            e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, k_q4mma<MODE, S, GPB>, QM_THREADS, smem);
            b *= n_sm;
        }
        if (e != cudaSuccess) return e;
        occ = b > C ? b : C;
        occ_smem = (int)smem, occ_c = C, occ_nsm = n_sm;
    }
    /* every block converts its share of x, so idle blocks of a partial last cluster are fine */
    unsigned grid = (unsigned)(tiles < (unsigned)occ ? tiles : (unsigned)occ);
    grid = (grid + C - 1) / C * C;
    cfg.gridDim = dim3(grid);
    return cudaLaunchKernelEx(&cfg, k_q4mma<MODE, S, GPB>, a);
}

/* The current device's shared memory, cached: per block with opt-in (the kernel's limit) and per SM (two
 * blocks of the 8-stage ring fit in 228 KB on sm_90 / sm_80, not in Orin's (sm_87) 164 KB) */
static void qm_smem_limits(size_t &per_block, size_t &per_sm) {
    static int dev_cached = -1;
    static size_t blk, sm;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) dev = 0;
    if (dev != dev_cached) {
        int b = 0, m = 0;
        if (cudaDeviceGetAttribute(&b, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) b = 48 * 1024;
        if (cudaDeviceGetAttribute(&m, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess) m = b;
        blk = (size_t)b, sm = (size_t)m, dev_cached = dev;
    }
    per_block = blk, per_sm = sm;
}

/* Stages: 8 (7 blocks in flight per warp) for one matrix per tile, 6 when that leaves room for only one block of
 * 256 threads per SM (long k: the x fragments grow), 4 for SwiGLU tiles (two matrices per stage). */
template <int MODE, int GPB> static cudaError_t qm_launch(cudaStream_t st, qm_args &a, int n_sm, bool pdl) {
    const int64_t tiles = elk_fg_tiles(a.f, 16, MODE);
    if (tiles < 0) return cudaErrorInvalidValue;
    if (tiles == 0) return cudaSuccess;
    if constexpr (MODE == ELK_FG_SWIGLU) {
        return qm_launch_s<MODE, 4, GPB>(st, a, (unsigned)tiles, n_sm, pdl);
    } else {
        const size_t x_smem = (size_t)a.nkb * QM_SMEM_PER_BLOCK;
        size_t per_block, per_sm;
        qm_smem_limits(per_block, per_sm);
        const size_t sm_lim = per_sm > 1024 ? per_sm - 1024 : 0; /* 227 KB on sm_90 */
        if (2 * (qm_cfg<1, 8>::BYTES + x_smem + 2048) <= (sm_lim < 227 * 1024 ? sm_lim : 227 * 1024))
            return qm_launch_s<MODE, 8, GPB>(st, a, (unsigned)tiles, n_sm, pdl);
        return qm_launch_s<MODE, 6, GPB>(st, a, (unsigned)tiles, n_sm, pdl);
    }
}

template <int GPB> static cudaError_t qm_launch_mode(cudaStream_t st, qm_args &a, int mode, int n_sm, bool pdl) {
    if (mode == ELK_FG_SWIGLU) return qm_launch<ELK_FG_SWIGLU, GPB>(st, a, n_sm, pdl);
    if (mode == ELK_FG_ACCUM) return qm_launch<ELK_FG_ACCUM, GPB>(st, a, n_sm, pdl);
    return qm_launch<ELK_FG_STORE, GPB>(st, a, n_sm, pdl);
}

static int qm_gsh(int64_t group) { /* group = 128 << gsh; -1 if not */
    for (int sh = 0; sh < 24; sh++)
        if (group == (int64_t)128 << sh) return sh;
    return -1;
}

bool elk_w4a16_mma_ok(int64_t k, int64_t group) {
    /* the largest block (the 8-stage ring, or SwiGLU's 4 stages of two matrices: the same bytes) with its x
     * fragments and static shared memory within 200 KB and the device's opt-in limit (Orin: 163 KB) */
    size_t per_block, per_sm;
    qm_smem_limits(per_block, per_sm);
    static_assert(qm_cfg<2, 4>::BYTES == qm_cfg<1, 8>::BYTES, "SwiGLU's ring is the largest one too");
    const size_t lim = per_block > 8192 ? per_block - 8192 : 0; /* static shared memory: <= 4.3 KB */
    return k > 0 && (group == 32 || group == 64 || qm_gsh(group) >= 0) &&
           qm_cfg<1, 8>::BYTES + (size_t)((k + 127) / 128) * QM_SMEM_PER_BLOCK <= (lim < 200 * 1024 ? lim : 200 * 1024);
}

cudaError_t elk_fused_w4a16(cudaStream_t st, const float *x, int64_t k, int64_t group, const float *norm_w, float eps,
                            int n_w, const void *const *w, const elk_w4off *off, const int64_t *n,
                            const float *const *bias, float *const *y, int mode, int n_sm, bool pdl) {
    qm_args a;
    memset(&a, 0, sizeof a);
    if (!elk_w4a16_mma_ok(k, group) || !elk_fg_fill(a.f, x, k, norm_w, eps, n_w, w, n, bias, y, mode))
        return cudaErrorInvalidValue;
    a.f.late_trig = (elk_pdl_late & 4) != 0; /* elk_fg_fill set the float GEMVs' bit */
    for (int i = 0; i < n_w; i++)
        if ((uintptr_t)w[i] & 63) return cudaErrorInvalidValue;
    if (off) {
        a.have_off = true;
        for (int i = 0; i < n_w; i++)
            a.off[i] = off[i];
    }
    a.nkb = (int)((k + 127) / 128);
    a.per = (a.nkb + QM_WARPS - 1) / QM_WARPS;
    a.gsh = group >= 128 ? qm_gsh(group) : 0;
    a.G = (k + group - 1) / group;
    a.codes = a.G * group;
    a.rb = a.codes / 2;
    a.xvec = k % 4 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)norm_w & 15) == 0;
    if (n_sm <= 0) n_sm = 1;
    if (group >= 128) return qm_launch_mode<1>(st, a, mode, n_sm, pdl);
    return group == 64 ? qm_launch_mode<2>(st, a, mode, n_sm, pdl) : qm_launch_mode<4>(st, a, mode, n_sm, pdl);
}
