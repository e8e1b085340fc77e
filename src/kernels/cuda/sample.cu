/*
 * sample.cu - token sampling on the device, CTAs of SB threads: one per row, or (split rows, see split_row)
 * up to 32 per row for the passes over the logits and one that merges their results (sample.cuh).
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
 * Ties of equal keys are resolved in index order by a segment scan, as the CPU's sort does. Split rows make
 * the same decisions from per-chunk results (argmaxes, sorted chunk lists, exact integer chunk sums).
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
            if (MASS) { /* a warp whose lanes share one digit (ties, constant rows) adds once */
                if (__match_any_sync(FULL, d) == FULL) {
                    const u64 t = warp_sum64(wt);
                    if (lane == 0 && t) atomicAdd(&sm->hist[d], t);
                } else if (wt) {
                    atomicAdd(&sm->hist[d], wt);
                }
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

/* el_argmax: NaN never wins, equal values go to the lower index, logits[0] NaN -> 0; raw: the plain argmax
 * over the non-NaN values (-1 if none), sm->rv[0] its value */
static __device__ int64_t block_argmax(const float *x, int64_t n, sm_t *sm, bool raw = false) {
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
        if (lane == 0) {
            sm->fidx = raw ? bi : (x[0] != x[0] || bi < 0) ? 0 : bi;
            sm->rv[0] = bv;
        }
    }
    __syncthreads();
    const int64_t r = sm->fidx;
    __syncthreads();
    return r;
}

/* Ranks the c (<= SB) candidates ckey/cidx in the sorted order (by counting) and writes those of rank < m
 * to skey/sidx. */
static __device__ void rank_sorted(int c, int m, sm_t *sm) {
    const int tid = threadIdx.x;
    if (tid < c) {
        const uint32_t k = sm->ckey[tid];
        const int32_t ix = sm->cidx[tid];
        int rank = 0;
        for (int l = 0; l < c; l++) {
            const uint32_t kl = sm->ckey[l];
            rank += (kl > k || (kl == k && sm->cidx[l] < ix)) ? 1 : 0;
        }
        if (rank < m) {
            sm->skey[rank] = k;
            sm->sidx[rank] = ix;
        }
    }
    __syncthreads();
}

/* The same for nk candidates that are nc sorted lists of ll entries each (the last one shorter), at ckey/cidx
 * [c * ll, ...): a candidate's rank is its position in its own list plus, per other list, the number of
 * entries ahead of it there (binary search; indices are distinct, so "ahead" is strict). */
static __device__ void rank_lists(int nc, int ll, int nk, int m, sm_t *sm) {
    const int j = threadIdx.x;
    if (j < nk) {
        const int own = j / ll;
        const uint32_t k = sm->ckey[j];
        const int32_t ix = sm->cidx[j];
        int rank = j - own * ll;
        for (int c = 0; c < nc; c++) {
            if (c == own) continue;
            int lo = c * ll, hi = c * ll + ll < nk ? c * ll + ll : nk; /* first entry not ahead of (k, ix) */
            while (lo < hi) {
                const int mid = (lo + hi) >> 1;
                const uint32_t km = sm->ckey[mid];
                if (km > k || (km == k && sm->cidx[mid] < ix))
                    lo = mid + 1;
                else
                    hi = mid;
            }
            rank += lo - c * ll;
        }
        if (rank < m) {
            sm->skey[rank] = k;
            sm->sidx[rank] = ix;
        }
    }
    __syncthreads();
}

/* Gathers the m (<= SB) elements of the prefix set P into skey/sidx in sorted order. */
static __device__ void gather_sorted(const row_t &r, const set_t &P, int m, sm_t *sm) {
    if (threadIdx.x == 0) sm->cnt = 0;
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
    rank_sorted(sm->cnt < m ? sm->cnt : m, m, sm); /* cnt == m: P is a prefix of m elements */
}

/* the draw's a = u53 << 11 (u * 2^64 with u's 53 bits) of tgt_eval mode 2 */
static __device__ __forceinline__ u64 draw_a(double u) {
    if (!(u >= 0.0)) u = 0.0;
    const u64 u53 = u < 1.0 ? (u64)ldexp(u, 53) : (1ull << 53) - 1;
    return u53 << 11;
}

/* A row split over nc CTAs (split_row below): nc chunks of ll candidates each */
#define NC_MAX 32
#define NC_TOPP 8
#define CH_MIN 2048
struct split_t {
    int nc, ll;
    bool greedy, topp, plain; /* plain: temperature only (no top-k, top_p >= 1): the index-order draw */
};

/* chunk c of a row of n split into nc chunks: its first element b and length len (the last one may be short) */
static __device__ __forceinline__ void chunk_span(int64_t n, int nc, int64_t c, int64_t &b, int64_t &len) {
    const int64_t L = (n + nc - 1) / nc;
    b = c * L;
    len = n - b < L ? n - b : L;
}

/* scratch of a row: SB candidates (key or value bits, index), then NC_MAX chunk weight sums */
#define ROW_SCRATCH (SB * sizeof(uint2) + NC_MAX * sizeof(u64))

/* cand: the row's candidate lists and chunk sums from k_sample_cand (sp.nc >= 2), else NULL */
static __device__ int64_t sample_row(const row_t &r, const elk_sample_row &pr, double sc, bool small,
                                     sm_t *sm, const uint2 *cand, const split_t &sp) {
    const int tid = threadIdx.x;
    const int64_t n = r.n;
    const bool topk = pr.top_k > 0 && pr.top_k < n;
    const bool sorted = topk || pr.top_p < 1.0f;
    const bool topp = pr.top_p > 0.0f && pr.top_p < 1.0f;
    const u64 ua = draw_a(pr.u);
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
    const int m = cand ? sp.ll : (int)(mS < SB ? mS : SB);
    if (cand) { /* P (the top-k set, or the first ll of the row) = the first m of the chunks' lists */
        const int nc = sp.nc;
        int64_t lb, llen; /* the last chunk's list is min(m, its length) long */
        chunk_span(n, nc, nc - 1, lb, llen);
        const int nk = (nc - 1) * m + (int)min((int64_t)m, llen);
        for (int j = threadIdx.x; j < nk; j += SB) {
            const uint2 v = cand[j];
            sm->ckey[j] = v.x;
            sm->cidx[j] = (int32_t)v.y;
        }
        __syncthreads();
        rank_lists(nc, m, nk, m, sm);
    } else {
        if (topk && !select_sorted<false>(r, all, 0.f, sc, 0, (u64)(pr.top_k - 1), sm, &S)) return 0;
        if (m == mS)
            P = S;
        else if (!select_sorted<false>(r, all, 0.f, sc, 0, (u64)(m - 1), sm, &P))
            return 0;
        gather_sorted(r, P, m, sm);
    }
    const int64_t top = sm->sidx[0];
    const float mx = kdec(sm->skey[0]);
    const u64 w = tid < m ? wfix(kdec(sm->skey[tid]), mx, sc) : 0ull;
    u64 sumP;
    const u64 C = block_excl_scan(w, sm, &sumP) + w;
    u64 sumS = sumP;
    if (m != mS && cand) { /* top-p row: S is the row; its weight is the sum of the chunks' exact sums */
        sumS = 0;
        for (int c = 0; c < sp.nc; c++)
            sumS += ((const u64 *)(cand + SB))[c];
    } else if (m != mS) { /* the weight of all of S */
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
    /* whole-row path (a top-k candidate row never gets here: m == top_k, so the kept prefix and the draw lie in
     * it; a top-p one does when the kept prefix is longer than ll) */
    if (cand && topk && !select_sorted<false>(r, all, 0.f, sc, 0, (u64)(pr.top_k - 1), sm, &S)) return 0;
    set_t keepset = S, res;
    if (topp && !select_sorted<true>(r, S, mx, sc, 1, (u64)ldexp((double)pr.top_p, 64), sm, &keepset))
        return top;
    if (!select_sorted<true>(r, keepset, mx, sc, 2, ua, sm, &res)) return top;
    return res.i;
}

/* Rows split over CTAs (k_sample_cand, then k_sample merges): greedy rows, rows with 2 <= top_k <= SB / 2
 * ("top-k rows"), rows with top-p but no top-k ("top-p rows") and rows with neither ("plain": the chunks'
 * exact weight sums pick the chunk of the index-order draw, the merge CTA scans that chunk); split_row gives the number of chunks nc
 * (0: one CTA does the whole row) and the length ll of each chunk's candidate list from the row's parameters
 * alone, so both kernels agree. Chunks have >= CH_MIN elements (>= ll). A top-k row's chunks keep their top-k
 * lists (ll = top_k), which together contain the row's top-k set (each element of it is in its chunk's
 * top-k); a top-p row's chunks keep their top ll = SB / nc (the first ll of the row are among them) and the
 * exact weight sum of the chunk, so the merge has the row's total without another pass; when the top-p
 * prefix or the draw falls beyond the first ll, sample_row takes the whole-row path as before. */
static __device__ __forceinline__ split_t split_row(const elk_sample_row &pr, int64_t n, int64_t row, int64_t cap,
                                                    int global_only) {
    split_t sp = {0, 0, !(pr.temperature >= 1e-3f) || pr.top_k == 1, false, false};
    if (row >= cap) return sp;
    int64_t nc = n / CH_MIN < NC_MAX ? n / CH_MIN : NC_MAX;
    if (!sp.greedy) {
        if (global_only) return sp;
        if (pr.top_k >= 2 && pr.top_k < n) {
            if (pr.top_k > SB / 2) return sp;
            nc = nc < SB / pr.top_k ? nc : SB / pr.top_k;
            sp.ll = pr.top_k;
        } else if (pr.top_p > 0.0f && pr.top_p < 1.0f) {
            nc = nc < NC_TOPP ? nc : NC_TOPP;
            sp.topp = true;
            sp.ll = nc >= 2 ? SB / (int)nc : 0;
        } else if (!(pr.top_p < 1.0f)) {
            sp.plain = true;
        } else {
            return sp;
        }
    }
    sp.nc = nc >= 2 ? (int)nc : 0;
    return sp;
}

/* CTA (row, c): chunk c of a split row -> its argmax (greedy: cand[c] = (value bits, index or -1)) or its
 * top-ll list in sorted order (cand[c * ll + j] = (key, index), min(ll, chunk) entries); top-p rows also the
 * chunk's weight sum, with the row maximum every CTA finds itself (one read of the row from L2). */
__global__ void __launch_bounds__(SB)
    k_sample_cand(const float *logits, int64_t n, int64_t ld, const elk_sample_row *par, double sc, int64_t cap,
                  int global_only, uint8_t *ws) {
    __shared__ sm_t sm;
    const int64_t row = blockIdx.x;
    const int c = (int)blockIdx.y;
    const elk_sample_row pr = par[row];
    const split_t sp = split_row(pr, n, row, cap, global_only);
    if (c >= sp.nc) return;
    int64_t b, len;
    chunk_span(n, sp.nc, c, b, len);
    uint2 *out = (uint2 *)(ws + row * ROW_SCRATCH);
    const row_t r = {logits + row * ld + b, len, pr.temperature};
    if (sp.greedy) {
        const int64_t i = block_argmax(r.x, len, &sm, true);
        if (threadIdx.x == 0) out[c] = make_uint2(__float_as_uint(sm.rv[0]), (uint32_t)(i < 0 ? -1 : b + i));
        return;
    }
    if (sp.topp || sp.plain) { /* max key of the row = key of its largest non-NaN logit (x / T is monotone), 0
                                * if none; then the chunk's weight sum */
        const float *xr = logits + row * ld;
        uint32_t km = 0; /* 16 loads in flight per thread: the whole row is read by every chunk's CTA */
        for (int64_t b0 = 0; b0 < n; b0 += 16 * SB) {
            float v[16];
#pragma unroll
            for (int j = 0; j < 16; j++) {
                const int64_t i = b0 + threadIdx.x + (int64_t)j * SB;
                v[j] = i < n ? xr[i] : __int_as_float(0x7fc00000); /* NaN: skipped */
            }
#pragma unroll
            for (int j = 0; j < 16; j++)
                if (v[j] == v[j]) km = max(km, fkey(v[j]));
        }
        if (threadIdx.x == 0) sm.kmax = 0;
        __syncthreads();
        atomicMax(&sm.kmax, km);
        __syncthreads();
        const float mx = kdec(sm.kmax ? fkey(__fdiv_rn(kdec(sm.kmax), pr.temperature)) : 0u);
        u64 w = 0;
        for_row(r.x, len, [&](int64_t, float xv, bool valid) {
            if (valid) w += wfix(__fdiv_rn(xv, r.t), mx, sc);
        });
        u64 tot;
        block_excl_scan(w, &sm, &tot);
        if (threadIdx.x == 0) ((u64 *)(out + SB))[c] = tot;
        if (sp.plain) {
            if (threadIdx.x == 0 && c == 0) out[0] = make_uint2(__float_as_uint(mx), 0u);
            return;
        }
    }
    const int m = (int)(sp.ll < len ? sp.ll : len);
    const set_t all = {0u, 0, true};
    set_t P = all;
    if (m < len && !select_sorted<false>(r, all, 0.f, sc, 0, (u64)(m - 1), &sm, &P)) return; /* cannot fail */
    gather_sorted(r, P, m, &sm);
    if (threadIdx.x < m)
        out[c * sp.ll + threadIdx.x] = make_uint2(sm.skey[threadIdx.x], (uint32_t)(b + sm.sidx[threadIdx.x]));
}

__global__ void __launch_bounds__(SB)
    k_sample(const float *logits, int64_t n, int64_t ld, const elk_sample_row *par, double sc,
             int global_only, const uint8_t *ws, int64_t cap, int32_t *ids) {
    __shared__ sm_t sm;
    const int64_t row = blockIdx.x;
    const elk_sample_row pr = par[row];
    const row_t r = {logits + row * ld, n, pr.temperature};
    const split_t sp = ws ? split_row(pr, n, row, cap, global_only) : split_t{0, 0, false, false, false};
    const uint2 *rc = sp.nc ? (const uint2 *)(ws + row * ROW_SCRATCH) : nullptr;
    int64_t id;
    if (!(pr.temperature >= 1e-3f) || pr.top_k == 1) {
        if (!sp.nc) {
            id = block_argmax(r.x, n, &sm);
        } else { /* the chunks' argmaxes, in chunk (index) order: the first of the largest */
            if (threadIdx.x == 0) {
                float bv = 0.f;
                int64_t bi = -1;
                for (int c = 0; c < sp.nc; c++) {
                    const uint2 v = rc[c];
                    const float cv = __uint_as_float(v.x);
                    if ((int32_t)v.y >= 0 && (bi < 0 || cv > bv)) bv = cv, bi = (int32_t)v.y;
                }
                sm.fidx = (r.x[0] != r.x[0] || bi < 0) ? 0 : bi;
            }
            __syncthreads();
            id = sm.fidx;
        }
    } else if (sp.plain && sp.nc) { /* the chunk holding the draw from the chunks' sums, then the index in it */
        const u64 *cs = (const u64 *)(rc + SB);
        if (threadIdx.x == 0) {
            u64 tot = 0, acc = 0;
            for (int c = 0; c < sp.nc; c++)
                tot += cs[c];
            int f = -1;
            const u64 tgt = tgt_eval(2, draw_a(pr.u), tot);
            for (int c = 0; tot && c < sp.nc; c++) {
                if (acc + cs[c] > tgt) {
                    f = c;
                    break;
                }
                acc += cs[c];
            }
            sm.fw = f;
            sm.ftarget = tgt - acc;
        }
        __syncthreads();
        const int f = sm.fw;
        const u64 tg = sm.ftarget;
        __syncthreads();
        id = 0;
        if (f >= 0) {
            int64_t b, len;
            chunk_span(n, sp.nc, f, b, len);
            const float mx = __uint_as_float(rc[0].x), t = pr.temperature;
            const int64_t i = find_index(
                r.x + b, len, [&](int64_t, float xv) -> u64 { return wfix(__fdiv_rn(xv, t), mx, sc); }, 0, tg, &sm);
            id = i < 0 ? 0 : b + i;
        }
    } else {
        id = sample_row(r, pr, sc, global_only == 0, &sm, rc, sp);
    }
    if (threadIdx.x == 0) ids[row] = (int32_t)(id >= 0 && id < n ? id : 0);
}

size_t elk_sample_scratch_bytes(int64_t rows) { return (size_t)(rows > 0 ? rows : 0) * ROW_SCRATCH; }

cudaError_t elk_sample(cudaStream_t st, const float *logits, int64_t rows, int64_t n, int64_t ld,
                       const elk_sample_row *par, int32_t *ids, void *scratch, int64_t scratch_rows) {
    if (rows <= 0) return cudaSuccess;
    if (n < 1 || n > 0x7fffffff || ld < n || rows > 0x7fffffff) return cudaErrorInvalidValue;
    int c = 0;
    while (c < 62 && ((int64_t)1 << c) < n)
        c++;
    const double sc = ldexp(1.0, 63 - c); /* el_sample_exact_shift */
    const int64_t cap = scratch ? (scratch_rows < rows ? scratch_rows : rows) : 0;
    uint8_t *cand = (uint8_t *)scratch;
    if (cap > 0 && n >= 2 * CH_MIN) {
        k_sample_cand<<<dim3((unsigned)cap, NC_MAX), SB, 0, st>>>(logits, n, ld, par, sc, cap,
                                                                  elk_sample_global_only, cand);
        const cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
    } else {
        cand = nullptr;
    }
    k_sample<<<(unsigned)rows, SB, 0, st>>>(logits, n, ld, par, sc, elk_sample_global_only, cand, cap, ids);
    return cudaGetLastError();
}
