/*
 * sample.cu - token sampling on the device, one CTA of SB threads per row of logits (sample.cuh).
 *
 * Semantics are those of el_sample_exact (src/runtime/sampler.c, the scalar reference): p = logit / T
 * (IEEE f32 division), key(p) = an order-preserving u32 of p (-0 as +0, NaN lowest), candidates in the
 * CPU order "p descending, lower index first", weights W = round(exp((double)p - mx) * 2^s) summed in
 * u64 (exact, so any reduction order gives the same sums), top-p and the inverse-CDF draw as exact
 * integer comparisons. Paths of a row:
 *   greedy      block argmax (NaN skipped, lowest index on ties; logits[0] NaN -> 0 as el_argmax)
 *   index order (no top-k, top_p >= 1): max key, then the first index whose cumulative weight exceeds
 *               the drawn target, found with per-warp segment sums and one warp rescanning its segment
 *   sorted      radix select (11/11/10-bit digits over the key, histograms in shared memory) finds the
 *               rank-m element of the sorted order, m = min(top_k or n, SB); the m candidates are
 *               gathered, ranked in shared memory and scanned; top-p and the draw finish there when the
 *               kept prefix lies inside them (top-k <= SB always does). Otherwise (large top-k, or a
 *               top-p set / draw beyond the first SB candidates) the same decisions are made by radix
 *               selects weighted by W over the whole row (still no sort). Both give the same ids.
 * Ties of equal keys are resolved in index order by a segment scan, as the CPU's sort does.
 */
#include "kernels/cuda/sample.cuh"

#include <math.h>

#define SB 1024
#define NW (SB / 32)
#define NBINS 2048
#define FULL 0xffffffffu

typedef unsigned long long u64;

extern "C" int elk_sample_global_only = 0;

struct sm_t {
    u64 hist[NBINS];
    uint32_t ckey[SB];
    int32_t cidx[SB];
    uint32_t skey[SB];
    int32_t sidx[SB];
    u64 wsum[NW];
    u64 total, sel_above, ftarget, facc, rval;
    long long fidx;
    uint32_t sel_digit, kmax;
    int fw, cnt, rmin;
    float rv[NW];
    int ri[NW];
};

struct row_t {
    const float *x;
    int64_t n;
    float t;
};
/* a prefix of the sorted order: every element ranked at or before (key k, index i); all = the whole row */
struct set_t {
    uint32_t k;
    int64_t i;
    bool all;
};

static __device__ __forceinline__ uint32_t fkey(float p) {
    if (p != p) return 0u;
    if (p == 0.f) p = 0.f;
    const uint32_t b = __float_as_uint(p);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
static __device__ __forceinline__ float kdec(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
/* f(i, x[i], valid) for i = b + tid + j * SB, j < UNR, every b = 0, UNR * SB, ... < n: UNR loads in flight per
 * thread, the same trip count for every thread (warp intrinsics in f are safe), i ascending per thread. */
#define UNR 4
template <class F> static __device__ __forceinline__ void for_row(const float *x, int64_t n, F f) {
    for (int64_t b = 0; b < n; b += (int64_t)UNR * SB) {
        float v[UNR];
#pragma unroll
        for (int j = 0; j < UNR; j++) {
            const int64_t i = b + threadIdx.x + (int64_t)j * SB;
            v[j] = i < n ? x[i] : 0.f;
        }
#pragma unroll
        for (int j = 0; j < UNR; j++) {
            const int64_t i = b + threadIdx.x + (int64_t)j * SB;
            f(i, v[j], i < n);
        }
    }
}
static __device__ __forceinline__ bool in_set(const set_t &s, uint32_t key, int64_t i) {
    return s.all || key > s.k || (key == s.k && i <= s.i);
}
/* fixed-point weight, as exact_weight in sampler.c */
static __device__ __forceinline__ u64 wfix(float p, float mx, double sc) {
    double e = exp((double)p - (double)mx);
    if (!(e >= 0.0)) e = 0.0;
    if (e > 1.0) e = 1.0;
    return __double2ull_rn(e * sc);
}
/* targets: 0 = the value a; 1 = top-p, a = top_p * 2^64: first C >= ceil(a * total / 2^64), as a strict
 * "C > target"; 2 = draw, a = u * 2^64 (u53 << 11): target floor(u * total) */
static __device__ __forceinline__ u64 tgt_eval(int mode, u64 a, u64 total) {
    if (mode == 0) return a;
    if (mode == 1) {
        const u64 t = __umul64hi(a, total) + (a * total != 0ull ? 1ull : 0ull);
        return t ? t - 1 : 0;
    }
    return __umul64hi(a, total);
}

static __device__ __forceinline__ u64 warp_incl_scan(u64 v) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const u64 t = __shfl_up_sync(FULL, v, o);
        if (lane >= o) v += t;
    }
    return v;
}
static __device__ __forceinline__ u64 warp_sum64(u64 v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(FULL, v, o);
    return v;
}
/* Exclusive scan of v in thread order; *total = the block sum. All threads must call. */
static __device__ u64 block_excl_scan(u64 v, sm_t *sm, u64 *total) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const u64 inc = warp_incl_scan(v);
    if (lane == 31) sm->wsum[w] = inc;
    __syncthreads();
    if (w == 0) {
        const u64 s = sm->wsum[lane];
        const u64 si = warp_incl_scan(s);
        sm->wsum[lane] = si - s;
        if (lane == 31) sm->total = si;
    }
    __syncthreads();
    const u64 r = sm->wsum[w] + inc - v;
    *total = sm->total;
    __syncthreads();
    return r;
}
/* Smallest tid with cond (SB if none). All threads must call. */
static __device__ int block_first(bool cond, sm_t *sm) {
    if (threadIdx.x == 0) sm->rmin = SB;
    __syncthreads();
    if (cond) atomicMin(&sm->rmin, (int)threadIdx.x);
    __syncthreads();
    const int r = sm->rmin;
    __syncthreads();
    return r;
}

/* First index i (in index order) whose cumulative weight wf(0..i) exceeds tgt_eval(mode, a, total);
 * -1 when the total is 0 or nothing exceeds. wf(i, x[i]) is the weight of element i. Level 1: warp w sums
 * its segment of the row (coalesced, UNR loads in flight), thread 0 picks the segment holding the crossing.
 * Level 2: the block splits that segment into SB contiguous pieces, scans their sums, and the one thread
 * whose piece holds the crossing rescans it. Integer sums: every level reproduces the others exactly. */
template <class WF> static __device__ int64_t find_index(const float *x, int64_t n, WF wf, int mode, u64 a, sm_t *sm) {
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int64_t seg = ((n + NW - 1) / NW + 31) / 32 * 32;
    const int64_t start = (int64_t)w * seg, end = start + seg < n ? start + seg : n;
    u64 s = 0;
    for (int64_t c = start; c < end; c += 32 * UNR) {
        float v[UNR];
#pragma unroll
        for (int j = 0; j < UNR; j++) {
            const int64_t i = c + lane + 32 * j;
            v[j] = i < end ? x[i] : 0.f;
        }
#pragma unroll
        for (int j = 0; j < UNR; j++) {
            const int64_t i = c + lane + 32 * j;
            if (i < end) s += wf(i, v[j]);
        }
    }
    s = warp_sum64(s);
    if (lane == 0) sm->wsum[w] = s;
    __syncthreads();
    if (tid == 0) {
        u64 tot = 0;
        for (int j = 0; j < NW; j++) tot += sm->wsum[j];
        int f = -1;
        u64 acc = 0, target = 0;
        if (tot) {
            target = tgt_eval(mode, a, tot);
            for (int j = 0; j < NW; j++) {
                if (acc + sm->wsum[j] > target) {
                    f = j;
                    break;
                }
                acc += sm->wsum[j];
            }
        }
        sm->fw = f;
        sm->facc = acc;
        sm->ftarget = target;
        sm->fidx = -1;
    }
    __syncthreads();
    const int f = sm->fw;
    if (f < 0) {
        __syncthreads();
        return -1;
    }
    const u64 acc = sm->facc, target = sm->ftarget;
    const int64_t s0 = (int64_t)f * seg, s1 = s0 + seg < n ? s0 + seg : n, c2 = (s1 - s0 + SB - 1) / SB;
    const int64_t p0 = s0 + tid * c2 < s1 ? s0 + tid * c2 : s1, p1 = p0 + c2 < s1 ? p0 + c2 : s1;
    u64 my = 0;
    for (int64_t i = p0; i < p1; i++) my += wf(i, x[i]);
    u64 tot2;
    const u64 ex = acc + block_excl_scan(my, sm, &tot2);
    if (my && ex <= target && ex + my > target) {
        u64 cum = ex;
        for (int64_t i = p0; i < p1; i++) {
            cum += wf(i, x[i]);
            if (cum > target) {
                sm->fidx = i;
                break;
            }
        }
    }
    __syncthreads();
    const int64_t r = sm->fidx;
    __syncthreads();
    return r;
}

/* Radix select in the sorted order (key descending, index ascending) restricted to the set R: the first
 * element whose cumulative weight (1 per element, or W when MASS) exceeds tgt_eval(mode, a, W(R)).
 * Writes its position as a set (the prefix ending there) to *out; false when W(R) is 0 or the target is
 * not below it. */
template <bool MASS>
static __device__ bool select_sorted(const row_t &r, const set_t &R, float mx, double sc, int mode, u64 a,
                                     sm_t *sm, set_t *out) {
    const int tid = threadIdx.x, lane = tid & 31;
    uint32_t pref = 0, pmask = 0;
    u64 above = 0, target = 0;
    for (int lvl = 0; lvl < 3; lvl++) {
        const int shift = lvl == 0 ? 21 : lvl == 1 ? 10 : 0;
        const uint32_t dmask = lvl == 2 ? 0x3ffu : 0x7ffu;
        for (int b = tid; b < NBINS; b += SB)
            sm->hist[b] = 0;
        __syncthreads();
        for_row(r.x, r.n, [&](int64_t i, float xv, bool valid) {
            uint32_t d = 0xffffffffu;
            u64 wt = 0;
            if (valid) {
                const float p = __fdiv_rn(xv, r.t);
                const uint32_t key = fkey(p);
                if ((key & pmask) == pref && in_set(R, key, i)) {
                    d = (key >> shift) & dmask;
                    wt = MASS ? wfix(p, mx, sc) : 1ull;
                }
            }
            if (MASS) {
                if (wt) atomicAdd(&sm->hist[d], wt);
            } else {
                const unsigned peers = __match_any_sync(FULL, d);
                if (d != 0xffffffffu && lane == __ffs(peers) - 1) atomicAdd(&sm->hist[d], (u64)__popc(peers));
            }
        });
        __syncthreads();
        const int d0 = NBINS - 1 - 2 * tid, d1 = d0 - 1;
        const u64 h0 = sm->hist[d0], h1 = sm->hist[d1];
        u64 tot;
        const u64 ex = block_excl_scan(h0 + h1, sm, &tot);
        if (lvl == 0) {
            if (tot == 0) return false;
            target = tgt_eval(mode, a, tot);
            if (target >= tot) return false;
        }
        const u64 e0 = above + ex, e1 = e0 + h0;
        if (e0 <= target && e1 > target) {
            sm->sel_digit = (uint32_t)d0;
            sm->sel_above = e0;
        } else if (e1 <= target && e1 + h1 > target) {
            sm->sel_digit = (uint32_t)d1;
            sm->sel_above = e1;
        }
        __syncthreads();
        pref |= sm->sel_digit << shift;
        pmask |= dmask << shift;
        above = sm->sel_above;
        __syncthreads();
    }
    const uint32_t K = pref;
    const set_t Rc = R;
    const row_t rc = r;
    const int64_t i = find_index(
        r.x, r.n,
        [&](int64_t j, float xv) -> u64 {
            const float p = __fdiv_rn(xv, rc.t);
            const uint32_t key = fkey(p);
            if (key != K || !in_set(Rc, key, j)) return 0ull;
            return MASS ? wfix(p, mx, sc) : 1ull;
        },
        0, target - above, sm);
    if (i < 0) return false;
    out->k = K;
    out->i = i;
    out->all = false;
    return true;
}

/* el_argmax: NaN never wins, equal values go to the lower index, logits[0] NaN -> 0 */
static __device__ int64_t block_argmax(const float *x, int64_t n, sm_t *sm) {
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    float bv = 0.f;
    int bi = -1;
    for_row(x, n, [&](int64_t i, float v, bool valid) {
        if (valid && v == v && (bi < 0 || v > bv)) {
            bv = v;
            bi = (int)i;
        }
    });
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(FULL, bv, o);
        const int oi = __shfl_xor_sync(FULL, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
            bv = ov;
            bi = oi;
        }
    }
    if (lane == 0) {
        sm->rv[w] = bv;
        sm->ri[w] = bi;
    }
    __syncthreads();
    if (w == 0) {
        bv = sm->rv[lane];
        bi = sm->ri[lane];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(FULL, bv, o);
            const int oi = __shfl_xor_sync(FULL, bi, o);
            if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) sm->fidx = (x[0] != x[0] || bi < 0) ? 0 : bi;
    }
    __syncthreads();
    return sm->fidx;
}

/* Gathers the m (<= SB) elements of the prefix set P into skey/sidx in sorted order (rank by counting). */
static __device__ void gather_sorted(const row_t &r, const set_t &P, int m, sm_t *sm) {
    const int tid = threadIdx.x;
    if (tid == 0) sm->cnt = 0;
    __syncthreads();
    for_row(r.x, r.n, [&](int64_t i, float xv, bool valid) {
        const uint32_t key = fkey(__fdiv_rn(xv, r.t));
        if (valid && in_set(P, key, i)) {
            const int s = atomicAdd(&sm->cnt, 1);
            if (s < SB) {
                sm->ckey[s] = key;
                sm->cidx[s] = (int32_t)i;
            }
        }
    });
    __syncthreads();
    const int c = sm->cnt < m ? sm->cnt : m; /* == m: P is a prefix of m elements */
    if (tid < c) {
        const uint32_t k = sm->ckey[tid];
        const int32_t ix = sm->cidx[tid];
        int rank = 0;
        for (int l = 0; l < c; l++) {
            const uint32_t kl = sm->ckey[l];
            rank += (kl > k || (kl == k && sm->cidx[l] < ix)) ? 1 : 0;
        }
        if (rank < SB) {
            sm->skey[rank] = k;
            sm->sidx[rank] = ix;
        }
    }
    __syncthreads();
}

static __device__ int64_t sample_row(const row_t &r, const elk_sample_row &pr, double sc, bool small,
                                     sm_t *sm) {
    const int tid = threadIdx.x;
    const int64_t n = r.n;
    const bool topk = pr.top_k > 0 && pr.top_k < n;
    const bool sorted = topk || pr.top_p < 1.0f;
    const bool topp = pr.top_p > 0.0f && pr.top_p < 1.0f;
    double u = pr.u;
    if (!(u >= 0.0)) u = 0.0;
    const u64 u53 = u < 1.0 ? (u64)ldexp(u, 53) : (1ull << 53) - 1;
    const u64 ua = u53 << 11;
    const set_t all = {0u, 0, true};
    if (!sorted) {
        if (tid == 0) sm->kmax = 0;
        __syncthreads();
        uint32_t km = 0;
        for_row(r.x, n, [&](int64_t, float xv, bool valid) {
            const uint32_t k = fkey(__fdiv_rn(xv, r.t));
            if (valid) km = k > km ? k : km;
        });
        atomicMax(&sm->kmax, km);
        __syncthreads();
        const float mx = kdec(sm->kmax);
        const row_t rc = r;
        const int64_t i = find_index(
            r.x, n, [&](int64_t, float xv) -> u64 { return wfix(__fdiv_rn(xv, rc.t), mx, sc); }, 2, ua, sm);
        return i < 0 ? 0 : i;
    }
    /* S: the top-k set or the whole row; P: its first m elements */
    set_t S = all, P;
    const int64_t mS = topk ? pr.top_k : n;
    if (topk && !select_sorted<false>(r, all, 0.f, sc, 0, (u64)(pr.top_k - 1), sm, &S)) return 0;
    const int m = (int)(mS < SB ? mS : SB);
    if (m == mS)
        P = S;
    else if (!select_sorted<false>(r, all, 0.f, sc, 0, (u64)(m - 1), sm, &P))
        return 0;
    gather_sorted(r, P, m, sm);
    const int64_t top = sm->sidx[0];
    const float mx = kdec(sm->skey[0]);
    const u64 w = tid < m ? wfix(kdec(sm->skey[tid]), mx, sc) : 0ull;
    u64 sumP;
    const u64 C = block_excl_scan(w, sm, &sumP) + w;
    u64 sumS = sumP;
    if (m != mS) { /* the weight of all of S */
        u64 s = 0;
        for_row(r.x, n, [&](int64_t i, float xv, bool valid) {
            const float p = __fdiv_rn(xv, r.t);
            if (valid && in_set(S, fkey(p), i)) s += wfix(p, mx, sc);
        });
        block_excl_scan(s, sm, &sumS);
    }
    if (sumS == 0) return top;
    int keep = -1; /* kept prefix length when it lies within P */
    u64 ksum = sumS;
    if (topp) {
        const u64 pa = (u64)ldexp((double)pr.top_p, 64);
        const u64 tgt = tgt_eval(1, pa, sumS);
        const int f = block_first(tid < m && C > tgt, sm);
        if (f < SB && small) {
            if (tid == f) sm->rval = C;
            __syncthreads();
            keep = f + 1;
            ksum = sm->rval;
            __syncthreads();
        }
    } else if (m == mS && small) {
        keep = m;
    }
    if (keep > 0 || (!topp && small)) {
        const u64 tgt = tgt_eval(2, ua, ksum);
        const int lim = keep > 0 ? keep : m;
        const int f = block_first(tid < lim && C > tgt, sm);
        if (f < SB) return sm->sidx[f];
    }
    /* whole-row path */
    set_t keepset = S, res;
    if (topp && !select_sorted<true>(r, S, mx, sc, 1, (u64)ldexp((double)pr.top_p, 64), sm, &keepset))
        return top;
    if (!select_sorted<true>(r, keepset, mx, sc, 2, ua, sm, &res)) return top;
    return res.i;
}

__global__ void __launch_bounds__(SB)
    k_sample(const float *logits, int64_t n, int64_t ld, const elk_sample_row *par, double sc,
             int global_only, int32_t *ids) {
    __shared__ sm_t sm;
    const int64_t row = blockIdx.x;
    const elk_sample_row pr = par[row];
    const row_t r = {logits + row * ld, n, pr.temperature};
    int64_t id;
    if (!(pr.temperature >= 1e-3f) || pr.top_k == 1)
        id = block_argmax(r.x, n, &sm);
    else
        id = sample_row(r, pr, sc, global_only == 0, &sm);
    if (threadIdx.x == 0) ids[row] = (int32_t)(id >= 0 && id < n ? id : 0);
}

cudaError_t elk_sample(cudaStream_t st, const float *logits, int64_t rows, int64_t n, int64_t ld,
                       const elk_sample_row *par, int32_t *ids) {
    if (rows <= 0) return cudaSuccess;
    if (n < 1 || n > 0x7fffffff || ld < n || rows > 0x7fffffff) return cudaErrorInvalidValue;
    int c = 0;
    while (c < 62 && ((int64_t)1 << c) < n)
        c++;
    const double sc = ldexp(1.0, 63 - c); /* el_sample_exact_shift */
    k_sample<<<(unsigned)rows, SB, 0, st>>>(logits, n, ld, par, sc, elk_sample_global_only, ids);
    return cudaGetLastError();
}
