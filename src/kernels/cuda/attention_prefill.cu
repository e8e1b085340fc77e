/*
 * attention_prefill.cu - causal attention over the KV cache for many query tokens at once (prefill), on
 * tensor cores (mma.sync m16n8k16, f16/bf16 operands, f32 accumulation), flash-attention-2 style.
 *
 * Same semantics as elk_attention (attention.cu): token t attends to cache positions 0..min(pos[t], cap-1)
 * of slot[t]; q head h uses kv head h / G; out = softmax(q k^T * scale) v; a token with slot < 0 or
 * pos < 0 gets zeros. Cache (n_slot, n_head_kv, cap, hd) in F16 or BF16, hd 64 or 128.
 *
 * Kernel k_attn_pf<D, KT, MR>: one CTA (4 warps, 128 threads) per (tile of BQ = 64 * MR query tokens,
 * q head); warp w owns query rows 16 MR w .. 16 MR (w + 1) - 1 of the tile (MR mma row tiles of 16).
 *   Q    the tile's q rows (f32) converted to the cache type (round to nearest even) into shared memory;
 *        with MR = 1 held in registers as mma A fragments for the whole kernel, with MR = 2 re-read
 *        (ldmatrix) per K/V tile;
 *   K/V  tiles of 64 positions copied from the cache with cp.async into two shared-memory stages (the
 *        next tile loads while the current one is computed); rows past the last needed position are
 *        zero-filled. Rows are padded by 16 bytes so ldmatrix reads are bank-conflict free;
 *   S    = Q K^T on tensor cores (f32), times scale * log2(e) in f32, positions past a row's pos set to
 *        -inf; online softmax in f32 (running max m and sum l per row, the accumulator rescaled by
 *        exp2(m_old - m_new)); P rounded to the cache type is reused from the S accumulators as the A
 *        operand of O += P V (the mma C layout of two n8 tiles is the A layout of one k16 slice).
 * Slots: the tile's rows are processed in one pass per distinct slot among them (rows of other slots are
 * masked out in that pass). A prefill tile (one sequence, contiguous positions) takes one pass; a tile
 * straddling sequences takes a few. A tile of more than PF_MAX_RUNS runs of equal slots (decode tokens
 * of many sequences in one batch) is left to k_attn_pf_rows, launched alongside: a warp per (token, kv
 * head) on CUDA cores in f32, so large decode batches keep per-token parallelism.
 * Positions read: every position < the largest pos of the pass's rows. The runtime stores a token's K/V
 * before attention and a sequence's positions are filled from 0, so these rows hold finite values
 * (masked ones get weight exactly 0).
 * CTAs of the last (longest, causal) tiles are launched first; the q heads of one kv head are adjacent
 * in launch order so they read the same K/V rows while those are in L2.
 *
 * MR = 2 (128-row tiles) halves the shared-memory reads per mma (each K/V fragment feeds two row tiles);
 * it is used when the grid still has two CTAs per SM and the device has the shared memory (105 KB at
 * hd 128), else MR = 1.
 *
 * Precision: Q, K, V and P are rounded to f16/bf16 (K/V already are); products and sums are f32. With
 * bf16 the relative rounding of q and p (up to 2^-9) dominates: NMSE against the f64 reference ~1e-5 on
 * random data, far below the 1e-3 used for the tensor-core GEMMs. A f16 cache takes q as f16: |q| must
 * stay below 65504 (it is the rotated q projection, O(10) in practice).
 */
#include "kernels/cuda/common.cuh"

#include <limits.h>
#include <math.h>

#define PF_BQ 64       /* query rows per CTA per mma row tile of a warp (BQ = PF_BQ * MR) */
#define PF_BK 64       /* cache positions per K/V tile */
#define PF_THREADS 128 /* 4 warps */

/* 0: the prefill kernel for n_tok >= 64 where it applies, 1: never, 2: for every n_tok (tests). */
int elk_attn_prefill_mode = 0;
/* query rows per CTA: 0 = chosen from the grid size, 64 or 128 = forced (tests and benchmarks compare) */
int elk_attn_prefill_rows = 0;

int elk_attn_prefill_use(int64_t n_tok, int kv_t, int64_t head_dim) {
    if (elk_attn_prefill_mode == 1) return 0;
    if (kv_t != ELK_F16 && kv_t != ELK_BF16) return 0;
    if (head_dim != 64 && head_dim != 128) return 0;
    return elk_attn_prefill_mode == 2 || n_tok >= 64;
}

static __device__ __forceinline__ unsigned pf_smem_addr(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
/* 16 bytes global -> shared; src_bytes 0 writes zeros (the source is not read). */
static __device__ __forceinline__ void pf_cp16(void *smem, const void *gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(pf_smem_addr(smem)), "l"(gmem),
                 "r"(src_bytes)
                 : "memory");
}
static __device__ __forceinline__ void pf_commit() {
    asm volatile("cp.async.commit_group;" ::: "memory");
}
template <int N> static __device__ __forceinline__ void pf_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
static __device__ __forceinline__ void pf_ldsm4(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(pf_smem_addr(p)));
}
static __device__ __forceinline__ void pf_ldsm4t(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(pf_smem_addr(p)));
}
/* c (16x8 f32) += a (16x16) b (16x8) */
template <int KT>
static __device__ __forceinline__ void pf_mma(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    if (KT == ELK_BF16)
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
            "{%8, %9}, {%0, %1, %2, %3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* two f32 -> packed f16/bf16 pair (lo = a), round to nearest even */
template <int KT> static __device__ __forceinline__ uint32_t pf_pack(float a, float b) {
    if (KT == ELK_BF16) {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *(uint32_t *)&h;
    } else {
        __half2 h = __floats2half2_rn(a, b);
        return *(uint32_t *)&h;
    }
}

/* The slot a batch row attends in, -1 for none (past n_tok, slot < 0 or pos < 0). */
static __device__ __forceinline__ int pf_slot_of(const int32_t *slot, const int32_t *pos, int n_tok, int t) {
    return t < n_tok && slot[t] >= 0 && pos[t] >= 0 ? slot[t] : -1;
}
/* Runs of consecutive rows with the same (valid) slot among batch rows [t0, t0 + bq), bq a multiple of
 * 32, computed by a whole warp (every lane gets it). A tile with more than PF_MAX_RUNS runs (a batch of
 * decode tokens of many sequences) goes to the per-token kernel k_attn_pf_rows instead of k_attn_pf:
 * both evaluate this on the same inputs, so every tile is done by exactly one of them. */
#define PF_MAX_RUNS 4
static __device__ int pf_tile_runs(const int32_t *slot, const int32_t *pos, int n_tok, int t0, int bq,
                                   int lane) {
    int runs = 0;
    for (int r = lane; r < bq; r += 32) {
        const int s = pf_slot_of(slot, pos, n_tok, t0 + r);
        const bool start = s >= 0 && (r == 0 || s != pf_slot_of(slot, pos, n_tok, t0 + r - 1));
        runs += __popc(__ballot_sync(0xffffffffu, start));
    }
    return runs;
}

/* Shared memory bytes of k_attn_pf<D, .., MR>: Q [BQ][D+8] + K, V [2][BK][D+8] (16-bit elements) +
 * slot/lim [BQ], BQ = 64 * MR. */
static __host__ __device__ constexpr size_t pf_smem_bytes(int D, int MR) {
    return (size_t)(PF_BQ * MR + 4 * PF_BK) * (D + 8) * 2 + 2 * PF_BQ * MR * sizeof(int);
}

/* MR: 16-row mma tiles per warp (BQ = 64 * MR query rows per CTA). With MR = 2 every K/V fragment read
 * from shared memory feeds two mma instead of one (half the shared-memory traffic per flop); Q is then
 * re-read from shared memory per K/V tile instead of being held in registers. */
template <int D, int KT, int MR>
__global__ void __launch_bounds__(PF_THREADS)
    k_attn_pf(const float *__restrict__ q, int n_tok, int n_head, int n_head_kv,
              const int32_t *__restrict__ slot, const int32_t *__restrict__ pos,
              const uint16_t *__restrict__ kc, const uint16_t *__restrict__ vc, int64_t cap, float scale_log2,
              float *__restrict__ out) {
    constexpr int BQ = PF_BQ * MR;
    constexpr int LD = D + 8;      /* shared row stride, elements (16-byte padding) */
    constexpr int NKD = D / 16;    /* k16 slices of the head dim */
    constexpr int NOD = D / 8;     /* n8 tiles of the output */
    constexpr int NS = PF_BK / 8;  /* n8 tiles of a K/V tile */
    constexpr bool QREG = MR == 1; /* Q fragments held in registers */
    extern __shared__ __align__(16) uint16_t pf_sm[];
    uint16_t *Qs = pf_sm;                       /* [BQ][LD] */
    uint16_t *Ks = Qs + BQ * LD;                /* [2][BK][LD] */
    uint16_t *Vs = Ks + 2 * PF_BK * LD;         /* [2][BK][LD] */
    int *s_slot = (int *)(Vs + 2 * PF_BK * LD); /* [BQ] slot of the row, -1: nothing to attend to */
    int *s_lim = s_slot + BQ;                   /* [BQ] last position the row attends to */

    const int h = blockIdx.x;
    const int tile = gridDim.y - 1 - blockIdx.y;
    const int t0 = tile * BQ;
    const int G = n_head / n_head_kv, hk = h / G;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, c4 = lane & 3;
    const int i8 = lane >> 3, r8 = lane & 7; /* ldmatrix: the 8x8 matrix and row this lane addresses */

    /* tiles of many short runs (decode batches) are k_attn_pf_rows' work */
    if (pf_tile_runs(slot, pos, n_tok, t0, BQ, lane) > PF_MAX_RUNS) return;
    for (int r = tid; r < BQ; r += PF_THREADS) {
        const int t = t0 + r;
        int sl = -1, lim = -1;
        if (t < n_tok) {
            sl = slot[t];
            const int64_t p = pos[t];
            lim = (int)(p < cap - 1 ? p : cap - 1);
            if (sl < 0 || lim < 0) sl = -1, lim = -1;
        }
        s_slot[r] = sl;
        s_lim[r] = lim;
    }
    /* Q tile -> shared (cache type); rows past n_tok are zeros */
    for (int i = tid; i < BQ * D / 4; i += PF_THREADS) {
        const int r = i / (D / 4), c = (i % (D / 4)) * 4;
        const int t = t0 + r;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (t < n_tok) v = *(const float4 *)(q + ((int64_t)t * n_head + h) * D + c);
        uint2 w;
        w.x = pf_pack<KT>(v.x, v.y);
        w.y = pf_pack<KT>(v.z, v.w);
        *(uint2 *)(Qs + r * LD + c) = w;
    }
    __syncthreads();

    /* rows of this warp: mma tile mi covers rows w0 + 16 mi .. + 15; this thread holds the S/O elements of
     * rows w0 + 16 mi + g (hf 0) and + 8 (hf 1) */
    const int w0 = warp * 16 * MR;
    /* Q as A fragments: row (l % 16), columns kk*16 + (l / 16) * 8 */
    const uint16_t *qa_base = Qs + (w0 + (lane & 15)) * LD + (lane >> 4) * 8;
    uint32_t qf[QREG ? NKD : 1][4];
    if (QREG) {
#pragma unroll
        for (int kk = 0; kk < NKD; kk++)
            pf_ldsm4(qf[QREG ? kk : 0], qa_base + kk * 16);
    }
    float o[MR][NOD][4];
    float m[MR][2], l[MR][2];
#pragma unroll
    for (int mi = 0; mi < MR; mi++) {
#pragma unroll
        for (int n = 0; n < NOD; n++)
            o[mi][n][0] = o[mi][n][1] = o[mi][n][2] = o[mi][n][3] = 0.f;
        m[mi][0] = m[mi][1] = -INFINITY;
        l[mi][0] = l[mi][1] = 0.f;
    }

    int prev = -1;
    for (;;) {
        /* next slot of the tile (ascending) and the number of positions its rows need */
        int cur = INT_MAX;
        for (int r = 0; r < BQ; r++) {
            const int sr = s_slot[r];
            if (sr > prev && sr < cur) cur = sr;
        }
        if (cur == INT_MAX) break;
        int nk = 0;
        for (int r = 0; r < BQ; r++)
            if (s_slot[r] == cur && s_lim[r] + 1 > nk) nk = s_lim[r] + 1;
        prev = cur;

        int lim[MR][2];
        int wl = -1, lim_min = INT_MAX; /* the warp's last needed position; this thread's smallest limit */
#pragma unroll
        for (int mi = 0; mi < MR; mi++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                const int r = w0 + 16 * mi + 8 * hf + g;
                lim[mi][hf] = s_slot[r] == cur ? s_lim[r] : -1;
                wl = max(wl, lim[mi][hf]);
                lim_min = min(lim_min, lim[mi][hf]);
            }
#pragma unroll
        for (int off = 4; off < 32; off <<= 1)
            wl = max(wl, __shfl_xor_sync(0xffffffffu, wl, off));

        const int64_t base = ((int64_t)cur * n_head_kv + hk) * cap * D;
        const uint16_t *kb = kc + base, *vb = vc + base;
        const int n_tiles = (nk + PF_BK - 1) / PF_BK;
        auto issue = [&](int j, int stg) {
            uint16_t *ks = Ks + stg * PF_BK * LD, *vs = Vs + stg * PF_BK * LD;
            for (int i = tid; i < PF_BK * D / 8; i += PF_THREADS) {
                const int r = i / (D / 8), c = (i % (D / 8)) * 8;
                const int key = j * PF_BK + r;
                const bool ok = key < nk;
                const int64_t off = ok ? (int64_t)key * D + c : 0;
                pf_cp16(ks + r * LD + c, kb + off, ok ? 16 : 0);
                pf_cp16(vs + r * LD + c, vb + off, ok ? 16 : 0);
            }
            pf_commit();
        };
        issue(0, 0);
        for (int j = 0; j < n_tiles; j++) {
            if (j + 1 < n_tiles) {
                issue(j + 1, (j + 1) & 1);
                pf_wait<1>();
            } else {
                pf_wait<0>();
            }
            __syncthreads();
            const int k0 = j * PF_BK;
            if (k0 <= wl) { /* else every row of this warp has all of the tile masked */
                const uint16_t *ks = Ks + (j & 1) * PF_BK * LD, *vs = Vs + (j & 1) * PF_BK * LD;
                float s[MR][NS][4];
#pragma unroll
                for (int mi = 0; mi < MR; mi++)
#pragma unroll
                    for (int n = 0; n < NS; n++)
                        s[mi][n][0] = s[mi][n][1] = s[mi][n][2] = s[mi][n][3] = 0.f;
                        /* S = Q K^T: B fragments of key tiles 2jp, 2jp+1 for slice kk in one ldmatrix.x4 */
#pragma unroll
                for (int kk = 0; kk < NKD; kk++) {
                    uint32_t qa[MR][4];
                    if (!QREG) {
#pragma unroll
                        for (int mi = 0; mi < MR; mi++)
                            pf_ldsm4(qa[mi], qa_base + 16 * mi * LD + kk * 16);
                    }
#pragma unroll
                    for (int jp = 0; jp < PF_BK / 16; jp++) {
                        uint32_t b[4];
                        pf_ldsm4(b, ks + (jp * 16 + (i8 >> 1) * 8 + r8) * LD + kk * 16 + (i8 & 1) * 8);
#pragma unroll
                        for (int mi = 0; mi < MR; mi++) {
                            const uint32_t *a = QREG ? qf[QREG ? kk : 0] : qa[mi];
                            pf_mma<KT>(s[mi][2 * jp], a, b[0], b[1]);
                            pf_mma<KT>(s[mi][2 * jp + 1], a, b[2], b[3]);
                        }
                    }
                }
                /* scale (log2 domain), mask, online softmax per row */
                const bool need_mask = k0 + PF_BK - 1 > lim_min;
#pragma unroll
                for (int mi = 0; mi < MR; mi++) {
                    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
                    for (int n = 0; n < NS; n++) {
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            float x = s[mi][n][e] * scale_log2;
                            if (need_mask && k0 + n * 8 + 2 * c4 + (e & 1) > lim[mi][e >> 1]) x = -INFINITY;
                            s[mi][n][e] = x;
                            mx[e >> 1] = fmaxf(mx[e >> 1], x);
                        }
                    }
#pragma unroll
                    for (int hf = 0; hf < 2; hf++) {
#pragma unroll
                        for (int off = 1; off < 4; off <<= 1)
                            mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], off));
                        const float mn = fmaxf(m[mi][hf], mx[hf]);
                        /* a row with nothing unmasked so far keeps m = -inf: subtract 0 instead (exp2(-inf) =
                         * 0) */
                        const float u = mn == -INFINITY ? 0.f : mn;
                        const float a = exp2f(m[mi][hf] - u);
                        m[mi][hf] = mn;
                        float sum = 0.f;
#pragma unroll
                        for (int n = 0; n < NS; n++) {
                            const float p0 = exp2f(s[mi][n][2 * hf] - u),
                                        p1 = exp2f(s[mi][n][2 * hf + 1] - u);
                            s[mi][n][2 * hf] = p0;
                            s[mi][n][2 * hf + 1] = p1;
                            sum += p0 + p1;
                        }
                        /* partial over this thread's columns; the quad is summed at the end */
                        l[mi][hf] = l[mi][hf] * a + sum;
#pragma unroll
                        for (int n = 0; n < NOD; n++)
                            o[mi][n][2 * hf] *= a, o[mi][n][2 * hf + 1] *= a;
                    }
                }
                /* O += P V: P from the S accumulators (C layout of key tiles 2kk, 2kk+1 = A layout of slice
                 * kk); V fragments (transposed) of d tiles 2dp, 2dp+1 */
#pragma unroll
                for (int kk = 0; kk < PF_BK / 16; kk++) {
                    uint32_t pa[MR][4];
#pragma unroll
                    for (int mi = 0; mi < MR; mi++) {
                        pa[mi][0] = pf_pack<KT>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
                        pa[mi][1] = pf_pack<KT>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
                        pa[mi][2] = pf_pack<KT>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
                        pa[mi][3] = pf_pack<KT>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
                    }
#pragma unroll
                    for (int dp = 0; dp < D / 16; dp++) {
                        uint32_t b[4];
                        pf_ldsm4t(b, vs + (kk * 16 + (i8 & 1) * 8 + r8) * LD + dp * 16 + (i8 >> 1) * 8);
#pragma unroll
                        for (int mi = 0; mi < MR; mi++) {
                            pf_mma<KT>(o[mi][2 * dp], pa[mi], b[0], b[1]);
                            pf_mma<KT>(o[mi][2 * dp + 1], pa[mi], b[2], b[3]);
                        }
                    }
                }
            }
            __syncthreads(); /* the stage just read is refilled by the next iteration */
        }
    }

#pragma unroll
    for (int mi = 0; mi < MR; mi++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            float lt = l[mi][hf];
#pragma unroll
            for (int off = 1; off < 4; off <<= 1)
                lt += __shfl_xor_sync(0xffffffffu, lt, off);
            const float inv = lt > 0.f ? 1.f / lt : 0.f;
            const int t = t0 + w0 + 16 * mi + 8 * hf + g;
            if (t < n_tok) {
                float *orow = out + ((int64_t)t * n_head + h) * D + 2 * c4;
#pragma unroll
                for (int n = 0; n < NOD; n++)
                    *(float2 *)(orow + n * 8) =
                        make_float2(o[mi][n][2 * hf] * inv, o[mi][n][2 * hf + 1] * inv);
            }
        }
}

/* two packed f16/bf16 -> f32 */
template <int KT> static __device__ __forceinline__ float2 pf_unpack(uint32_t w) {
    if (KT == ELK_BF16) return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
    return make_float2(__half2float(__ushort_as_half((unsigned short)(w & 0xffffu))),
                       __half2float(__ushort_as_half((unsigned short)(w >> 16))));
}
/* EPL (2 or 4) contiguous cache elements at element offset i as f32 */
template <int KT, int EPL>
static __device__ __forceinline__ void pf_ld_row(const uint16_t *p, int64_t i, float *f) {
    if (EPL == 4) {
        const uint2 w = *(const uint2 *)(p + i);
        const float2 a = pf_unpack<KT>(w.x), b = pf_unpack<KT>(w.y);
        f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
    } else {
        const float2 a = pf_unpack<KT>(*(const uint32_t *)(p + i));
        f[0] = a.x, f[1] = a.y;
    }
}

/* Per-token path for the tiles k_attn_pf leaves (more than PF_MAX_RUNS runs of slots): a warp per (token,
 * kv head) serves the G q heads one after the other (the K/V rows stay in L1), CTA = 4 consecutive tokens.
 * Lane owns D / 32 elements; scores by warp reduction, 4 positions per step, online softmax, all in f32. */
template <int D, int KT>
__global__ void __launch_bounds__(PF_THREADS)
    k_attn_pf_rows(const float *__restrict__ q, int n_tok, int n_head, int n_head_kv,
                   const int32_t *__restrict__ slot, const int32_t *__restrict__ pos,
                   const uint16_t *__restrict__ kc, const uint16_t *__restrict__ vc, int64_t cap,
                   float scale_log2, float *__restrict__ out, int bq) {
    constexpr int EPL = D / 32;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int t = blockIdx.x * (PF_THREADS / 32) + warp, hk = blockIdx.y;
    if (t >= n_tok) return;
    if (pf_tile_runs(slot, pos, n_tok, t / bq * bq, bq, lane) <= PF_MAX_RUNS) return; /* k_attn_pf's tile */
    const int G = n_head / n_head_kv;
    const int sl = slot[t];
    const int64_t p = pos[t];
    const int lim = (int)(p < cap - 1 ? p : cap - 1);
    if (sl < 0 || lim < 0) {
        for (int g = 0; g < G; g++)
#pragma unroll
            for (int e = 0; e < EPL; e++)
                out[((int64_t)t * n_head + hk * G + g) * D + lane * EPL + e] = 0.f;
        return;
    }
    const int64_t base = ((int64_t)sl * n_head_kv + hk) * cap * D + lane * EPL;
    for (int g = 0; g < G; g++) {
        const int h = hk * G + g;
        float qv[EPL], o[EPL];
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            qv[e] = q[((int64_t)t * n_head + h) * D + lane * EPL + e] * scale_log2;
            o[e] = 0.f;
        }
        float m = -INFINITY, l = 0.f;
        for (int j0 = 0; j0 <= lim; j0 += 4) {
            float sc[4], vv[4][EPL];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                float kf[EPL];
                sc[u] = 0.f;
                if (j0 + u <= lim) {
                    pf_ld_row<KT, EPL>(kc, base + (int64_t)(j0 + u) * D, kf);
                    pf_ld_row<KT, EPL>(vc, base + (int64_t)(j0 + u) * D, vv[u]);
#pragma unroll
                    for (int e = 0; e < EPL; e++)
                        sc[u] = fmaf(qv[e], kf[e], sc[u]);
                } else {
#pragma unroll
                    for (int e = 0; e < EPL; e++)
                        vv[u][e] = 0.f;
                }
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
#pragma unroll
                for (int u = 0; u < 4; u++)
                    sc[u] += __shfl_xor_sync(0xffffffffu, sc[u], off);
            float mx = m;
#pragma unroll
            for (int u = 0; u < 4; u++) {
                if (j0 + u > lim) sc[u] = -INFINITY;
                mx = fmaxf(mx, sc[u]);
            }
            const float a = exp2f(m - mx); /* m = -inf (first step): 0; mx is finite (position j0 <= lim) */
            m = mx;
            l *= a;
#pragma unroll
            for (int e = 0; e < EPL; e++)
                o[e] *= a;
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const float pu = exp2f(sc[u] - mx);
                l += pu;
#pragma unroll
                for (int e = 0; e < EPL; e++)
                    o[e] = fmaf(pu, vv[u][e], o[e]);
            }
        }
        const float inv = 1.f / l;
#pragma unroll
        for (int e = 0; e < EPL; e++)
            out[((int64_t)t * n_head + h) * D + lane * EPL + e] = o[e] * inv;
    }
}

template <int D, int KT, int MR>
static cudaError_t pf_launch(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head,
                             int64_t n_head_kv, const int32_t *slot, const int32_t *pos, const void *kc,
                             const void *vc, int64_t cap, float scale, float *out) {
    const size_t smem = pf_smem_bytes(D, MR);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(k_attn_pf<D, KT, MR>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    dim3 grid((unsigned)n_head, (unsigned)((n_tok + PF_BQ * MR - 1) / (PF_BQ * MR)));
    const float sl2 = scale * 1.4426950408889634f;
    k_attn_pf<D, KT, MR><<<grid, PF_THREADS, smem, st>>>(q, (int)n_tok, (int)n_head, (int)n_head_kv, slot,
                                                         pos, (const uint16_t *)kc, (const uint16_t *)vc, cap,
                                                         sl2, out);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    dim3 grid_rows((unsigned)((n_tok + PF_THREADS / 32 - 1) / (PF_THREADS / 32)), (unsigned)n_head_kv);
    k_attn_pf_rows<D, KT><<<grid_rows, PF_THREADS, 0, st>>>(q, (int)n_tok, (int)n_head, (int)n_head_kv, slot,
                                                            pos, (const uint16_t *)kc, (const uint16_t *)vc,
                                                            cap, sl2, out, PF_BQ * MR);
    return cudaGetLastError();
}

template <int D, int KT>
static cudaError_t pf_launch_mr(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head,
                                int64_t n_head_kv, const int32_t *slot, const int32_t *pos, const void *kc,
                                const void *vc, int64_t cap, float scale, float *out) {
    /* 128-row tiles where they fit the device's shared memory and still give every SM two CTAs
     * (elk_attn_prefill_rows = 64 or 128 forces the size where it fits) */
    int dev = 0, n_sm = 0, optin = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    int mr = 1;
    if (pf_smem_bytes(D, 2) <= (size_t)optin) {
        if (elk_attn_prefill_rows == 128)
            mr = 2;
        else if (elk_attn_prefill_rows != 64 && n_head * ((n_tok + 127) / 128) >= 2 * (int64_t)n_sm)
            mr = 2;
    }
    if (mr == 2)
        return pf_launch<D, KT, 2>(st, q, n_tok, n_head, n_head_kv, slot, pos, kc, vc, cap, scale, out);
    return pf_launch<D, KT, 1>(st, q, n_tok, n_head, n_head_kv, slot, pos, kc, vc, cap, scale, out);
}

cudaError_t elk_attention_prefill(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head,
                                  int64_t n_head_kv, int64_t head_dim, const int32_t *slot,
                                  const int32_t *pos, const void *k_cache, const void *v_cache, int kv_t,
                                  int64_t cap, float scale, float *out) {
    if (n_tok <= 0) return cudaSuccess;
    if (n_tok > 0x7fffffff - 2 * PF_BQ || n_head <= 0 || n_head > 65535 || n_head_kv <= 0 ||
        n_head % n_head_kv || (n_tok + PF_BQ - 1) / PF_BQ > 65535 || cap <= 0 || cap > 0x7fffffff ||
        (kv_t != ELK_F16 && kv_t != ELK_BF16) || (head_dim != 64 && head_dim != 128))
        return cudaErrorInvalidValue;
    if (kv_t == ELK_BF16)
        return head_dim == 64 ? pf_launch_mr<64, ELK_BF16>(st, q, n_tok, n_head, n_head_kv, slot, pos,
                                                           k_cache, v_cache, cap, scale, out)
                              : pf_launch_mr<128, ELK_BF16>(st, q, n_tok, n_head, n_head_kv, slot, pos,
                                                            k_cache, v_cache, cap, scale, out);
    return head_dim == 64 ? pf_launch_mr<64, ELK_F16>(st, q, n_tok, n_head, n_head_kv, slot, pos, k_cache,
                                                      v_cache, cap, scale, out)
                          : pf_launch_mr<128, ELK_F16>(st, q, n_tok, n_head, n_head_kv, slot, pos, k_cache,
                                                       v_cache, cap, scale, out);
}
