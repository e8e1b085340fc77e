/*
 * attention.cu - causal attention over the KV cache, split-KV ("flash-decoding") with online softmax.
 *
 * Math: token t (query q[t] of n_head heads) attends to cache positions 0..pos[t] of slot[t];
 * q head h uses kv head h / G (G = n_head / n_head_kv, GQA). out = softmax(q k^T * scale) v.
 * Layout: q, out (n_tok, n_head, hd) f32; cache (n_slot, n_head_kv, cap, hd) in F32/F16/BF16, or E4M3 (fp8)
 * read as e4m3 * k_scale / v_scale: k_scale is folded into the query scale and v_scale into the output
 * (the unscaled e4m3 values are exact in f32).
 *
 * Kernel k_attn: one block (128 threads = 4 warps) per (token, kv head, split). It serves all G query
 * heads of the kv head, so each K/V row is read once per group. The split covers cache positions
 * [s*chunk, min((s+1)*chunk, pos+1)), walked in blocks of 64 positions:
 *   scores  a warp per position; each lane holds hd/32 contiguous elements of K (fast paths hd = 32,
 *           64, 128, 256; any hd 8..256 through a strided generic path), dot with the G scaled query
 *           heads in shared memory, warp-shuffle reduction;
 *   softmax online (running max m and sum l per head, the accumulator rescaled by exp(m_old - m_new));
 *   P V     thread per (head, dim) accumulator in shared memory, V rows read coalesced.
 * With one split the block writes out = acc / l; with several, it writes (acc, m, l) to a scratch
 * buffer and k_attn_combine merges the splits of each (token, head). elk_attention_ex (decode steps of
 * the fused path) merges without the second kernel: per (token, kv head) a counter (zero between
 * launches) counts the finished splits that hold positions, and the last one to finish merges them
 * (the classic threadfence + atomic pattern; it resets the counter); when pos[t] needs only one split,
 * that block writes out directly. It also launches with programmatic dependent launch when asked.
 * The split size depends on static shapes only (elk_attention_plan), never on pos[], so a captured
 * CUDA graph stays correct when pos grows; blocks whose range starts past pos[t] exit at once.
 * Decode is bound by reading the K/V cache (memory); prefill reuses each token's K/V rows through L2
 * (no query tiling: a tiled tensor-core prefill kernel is future work).
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fused.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/rope.cuh"

#include <math.h>
#ifdef EDGELLM_ATT_TIMING
#include <stdio.h>  /* att_timing_dump */
#include <stdlib.h> /* atexit */
#endif

#define ATT_THREADS 128
#define ATT_BLK 64

size_t elk_attention_smem(int64_t n_head, int64_t n_head_kv, int64_t head_dim) {
    int64_t G = n_head / n_head_kv;
    return sizeof(float) * (size_t)(2 * G * head_dim + G * ATT_BLK + 3 * G);
}

/* 0: staged (cp.async) kernel where it applies, 1: never staged (tests compare both). */
int elk_attn_stage_mode = 0;
/* smallest split of the cache (positions: a multiple of ATT_BLK, or 16 / 32): a split's block walks ~chunk / 64
 * staged blocks one after another; the backend sets it (EDGELLM_ATT_CHUNK) */
int elk_attn_min_chunk = 64;
/* 1: the rope variant reads each raw q / k head when it norms it (one L2 round trip per head, the A/B and test
 * reference); 0: all of them requested at once after the PDL wait */
int elk_attn_rope_late = 0;
/* 1 (default): staged decode attention scores a position per thread pair (each half of the K row's 16-byte chunks,
 * the G query heads from shared memory, one shuffle) instead of a warp per position (0: EDGELLM_ATT_LANE=0; F32 /
 * F16 / BF16 caches, G <= 8). H200, decode tok/s at context 128-256 / 2048-2176: Llama-3.2-1B bf16 +4.3% / +4.4%,
 * int4_rtn +3.6% / +5.2%, Qwen3-0.6B bf16 +0.8% / +2.0%, int4_rtn +1.4% / +1.8% (docs/cuda.md) */
int elk_attn_lane_scores = 1;

void elk_attention_plan(int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim, int64_t cap,
                        int n_sm, int *n_split, int64_t *chunk, size_t *part_floats) {
    (void)n_head;
    int64_t ctas = n_tok * n_head_kv;
    int ns = 1;
    int64_t ch = cap;
    /* chunks: multiples of 64 (a full block walk), or of 16 below 64 (elk_attn_min_chunk 16 / 32) */
    const int64_t mc = elk_attn_min_chunk >= ATT_BLK ? elk_attn_min_chunk / ATT_BLK * ATT_BLK
                       : elk_attn_min_chunk >= 16     ? elk_attn_min_chunk / 16 * 16
                                                      : ATT_BLK;
    if (ctas < 2 * (int64_t)n_sm && cap > 2 * mc) {
        int64_t target = (4 * (int64_t)n_sm + ctas - 1) / ctas;
        ch = (cap + target - 1) / target;
        if (ch < mc) ch = mc;
        const int64_t r = ch >= ATT_BLK ? ATT_BLK : 16;
        ch = (ch + r - 1) / r * r;
        ns = (int)((cap + ch - 1) / ch);
        if (ns <= 1) {
            ns = 1;
            ch = cap;
        }
    }
    *n_split = ns;
    *chunk = ch;
    *part_floats = ns > 1 ? (size_t)(n_tok * n_head * ns * (head_dim + 2)) : 0;
}

/* EPL contiguous elements at element offset i (16 bytes at most, aligned: i is a multiple of EPL and
 * every row starts at a multiple of head_dim) as f32, in one vector load. */
template <int KT, int EPL> static __device__ __forceinline__ void ld_vec(const void *p, int64_t i, float *f) {
    if (KT == ELK_F32) {
        const float *q = (const float *)p + i;
        if (EPL == 8) {
            float4 a = *(const float4 *)q, b = *(const float4 *)(q + 4);
            f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
        } else if (EPL == 4) {
            float4 a = *(const float4 *)q;
            f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
        } else if (EPL == 2) {
            float2 a = *(const float2 *)q;
            f[0] = a.x, f[1] = a.y;
        } else {
#pragma unroll
            for (int e = 0; e < EPL; e++) f[e] = q[e];
        }
    } else if (KT == ELK_E4M3) {
        const uint8_t *q8 = (const uint8_t *)p + i;
        if (EPL == 8) {
            uint2 a = *(const uint2 *)q8;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                f[e] = elk_e4m3_to_f32((a.x >> (8 * e)) & 0xffu);
                f[4 + e] = elk_e4m3_to_f32((a.y >> (8 * e)) & 0xffu);
            }
        } else if (EPL == 4) {
            uint32_t a = *(const uint32_t *)q8;
#pragma unroll
            for (int e = 0; e < 4; e++) f[e] = elk_e4m3_to_f32((a >> (8 * e)) & 0xffu);
        } else if (EPL == 2) {
            uint32_t a = *(const uint16_t *)q8;
            f[0] = elk_e4m3_to_f32(a & 0xffu);
            f[1] = elk_e4m3_to_f32(a >> 8);
        } else {
#pragma unroll
            for (int e = 0; e < EPL; e++) f[e] = elk_e4m3_to_f32(q8[e]);
        }
    } else {
        const uint16_t *q = (const uint16_t *)p + i;
        uint32_t w[EPL >= 2 ? EPL / 2 : 1];
        if (EPL == 8) {
            uint4 a = *(const uint4 *)q;
            w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w;
        } else if (EPL == 4) {
            uint2 a = *(const uint2 *)q;
            w[0] = a.x, w[1] = a.y;
        } else if (EPL == 2) {
            w[0] = *(const uint32_t *)q;
        }
        if (EPL == 1) {
            f[0] = KT == ELK_BF16 ? elk_bf16_bits_to_f32(q[0]) : elk_f16_bits_to_f32(q[0]);
        } else {
#pragma unroll
            for (int e = 0; e < EPL / 2; e++) {
                if (KT == ELK_BF16) {
                    f[2 * e] = __uint_as_float(w[e] << 16);
                    f[2 * e + 1] = __uint_as_float(w[e] & 0xffff0000u);
                } else {
                    f[2 * e] = elk_f16_bits_to_f32((uint16_t)(w[e] & 0xffffu));
                    f[2 * e + 1] = elk_f16_bits_to_f32((uint16_t)(w[e] >> 16));
                }
            }
        }
    }
}

/* EPL > 0: head_dim == 32 * EPL, lane owns elements [lane*EPL, lane*EPL + EPL). EPL == 0: generic. */
static __device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    unsigned sa = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(gmem) : "memory");
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* Bytes of the float part of the shared memory (q, acc, scores, m, l, alpha), rounded to 16. */
static __host__ __device__ inline size_t att_float_bytes(int G, int hd) {
    return ((size_t)(2 * G * hd + G * ATT_BLK + 3 * G) * sizeof(float) + 15) & ~(size_t)15;
}

/* ROPE (elk_attention_rope): q and the token's k, v arrive raw; what k_qk_rope_store would do is done here. */
struct elk_att_rope {
    const float *k, *v;       /* (n_tok, n_head_kv, hd), raw */
    const float *qn, *kn;     /* q / k norm weights (hd) or NULL */
    const float *inv_freq;    /* (half) */
    void *kc, *vc;            /* the caches, writable (the split holding pos[t] stores k, v there first) */
    float eps, s;             /* norm eps, RoPE attention scale */
    int half;                 /* n_rot / 2 */
    bool pre;                 /* raw q, k, v requested with pos / slot (elk_attn_rope_late = 0) */
    bool late_trig;           /* the next kernel launches when this one exits (elk_pdl_late bit 1) */
    bool lane;                /* scores by thread pairs (elk_attn_lane_scores), set for every launch */
};

/* The staged K rows are padded by ATT_KPAD bytes (row stride hd * esz + 32 = 8 words mod 32), so the thread
 * pairs of the lane scores, which read 16-byte chunks 2 c + h of rows j, meet 8 distinct bank quads per quarter
 * warp. V rows stay unpadded. */
#define ATT_KPAD 32

/* the 16 / esz elements of a 16-byte chunk of F32 / F16 / BF16 cache elements as f32 (exact, as elk_ld) */
template <int KT> static __device__ __forceinline__ void att_unpack16(const uint4 &c, float *f) {
    const uint32_t w[4] = {c.x, c.y, c.z, c.w};
    if constexpr (KT == ELK_F32) {
#pragma unroll
        for (int i = 0; i < 4; i++) f[i] = __uint_as_float(w[i]);
    } else if constexpr (KT == ELK_BF16) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[2 * i] = __uint_as_float(w[i] << 16);
            f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 t = __half22float2(*(const __half2 *)&w[i]);
            f[2 * i] = t.x;
            f[2 * i + 1] = t.y;
        }
    }
}

/* STG: K/V blocks are copied into shared memory with cp.async, two stages (the next block loads while
 * the current one is computed); needs hd * esz <= 256 and the one-V-load-per-thread P V path.
 * ROPE (STG only, float caches, one token per slot): before anything reads the cache, the split whose range
 * holds pos[t] norms (k_norm) and rotates the token's k head with rope.cuh (the arithmetic of k_qk_rope_store,
 * bit for bit) and stores it and v at pos[t]; its own cp.async reads (L2) then see them after a __threadfence.
 * Every split norms and rotates the G q heads itself into qs. The kernel's reads of kc / vc all go through
 * cp.async (asm) in STG mode, so the writes through r.kc / r.vc do not meet a restrict-qualified load. */
#ifdef EDGELLM_ATT_TIMING
/* Phase timing (a build with -DEDGELLM_ATT_TIMING only; tests/gpu/att_timing.sh): thread 0 of block (0, 0, 0)
 * of each decode (rope) k_attn launch records clock64() at the phase boundaries of ATT_TS below, plus its
 * split's positions. */
#define ATT_TS_N 8192
#define ATT_TS_K 12 /* 0 start, 1 PDL wait done, 2 pos / slot read, 3 k / v stored, 4 q heads ready, 5-8 first
                     * block: K/V staged, scores, softmax, P V; 9 loop end; 10 positions; 11 blocks */
__device__ long long elk_att_ts[ATT_TS_N][ATT_TS_K];
__device__ unsigned elk_att_ts_n;
#define ATT_TS(i)                                                                                                  \
    do {                                                                                                           \
        if (tsrec) ts[i] = clock64();                                                                              \
    } while (0)
#else
#define ATT_TS(i) ((void)0)
#endif

template <int KT, int EPL, bool STG, bool ROPE>
__global__ void __launch_bounds__(ATT_THREADS, 2)
    k_attn(const float *__restrict__ q, int n_head, int n_head_kv, int hd, const int32_t *__restrict__ slot,
           const int32_t *__restrict__ pos, const void *__restrict__ kc, const void *__restrict__ vc, int64_t cap,
           float scale, float vscale, float *__restrict__ out, int n_split, int64_t chunk, float *__restrict__ part,
           unsigned *__restrict__ cnt, const elk_att_rope r) {
    static_assert(!ROPE || STG, "the ROPE variant reads the cache through cp.async only");
    /* vscale: the fp8 cache's v_scale (E4M3 only; scale already includes k_scale) */
    extern __shared__ float sm[];
    __shared__ float rred[ROPE ? 32 : 1]; /* elk_block_sum scratch of the q / k norms */
    const int t = blockIdx.x, hk = blockIdx.y, s = blockIdx.z;
    const int G = n_head / n_head_kv;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float *qs = sm;                     /* [G][hd]  */
    float *acc = qs + G * hd;           /* [G][hd]  */
    float *S = acc + G * hd;            /* [G][BLK] */
    float *mrun = S + G * ATT_BLK;      /* [G] */
    float *lrun = mrun + G;             /* [G] */
    float *alpha = lrun + G;            /* [G] */

#ifdef EDGELLM_ATT_TIMING
    const bool tsrec = ROPE && threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0;
    long long ts[ATT_TS_K] = {0};
#endif
    ATT_TS(0);
    if (!(ROPE && r.late_trig)) pdl_launch_dependents();
    pdl_wait(); /* q and the cache come from the previous kernels */
    ATT_TS(1);
    /* ROPE, r.pre: the raw q heads (into qs) and this thread's element of the token's k and v head are requested
     * now, together with pos / slot (they do not depend on them), instead of one L2 round trip per head below */
    const bool pre = ROPE && r.pre && hd <= ATT_THREADS;
    const float *qt = q + ((int64_t)t * n_head + (int64_t)hk * G) * hd;
    float kr = 0.f, vr = 0.f;
    if (ROPE && pre) {
        const int64_t th = ((int64_t)t * n_head_kv + hk) * hd;
        if ((int)threadIdx.x < hd) {
            kr = r.k[th + threadIdx.x];
            vr = r.v[th + threadIdx.x];
        }
#pragma unroll 4
        for (int i = threadIdx.x; i < G * hd; i += ATT_THREADS)
            qs[i] = qt[i];
    }
    const int64_t p = pos[t];
    int64_t end = p + 1 < cap ? p + 1 : cap;
    const int64_t j_begin = (int64_t)s * chunk;
    int64_t j_end = j_begin + chunk < end ? j_begin + chunk : end;
    const int sl = slot[t];
    /* cnt: splits holding positions (they merge themselves); with one of them it writes out directly */
    const int ns_act = sl < 0 || end <= 0 ? 0 : (int)min((int64_t)n_split, (end - 1) / chunk + 1);
    const bool direct = n_split == 1 || (cnt && ns_act == 1);
    if (j_begin >= j_end || sl < 0) {
        if (s == 0 && (n_split == 1 || cnt)) { /* nothing to attend to (invalid pos/slot): zeros */
            for (int i = threadIdx.x; i < G * hd; i += ATT_THREADS)
                out[((int64_t)t * n_head + (int64_t)hk * G) * hd + i] = 0.f;
        }
        return;
    }
    ATT_TS(2);
    const int64_t base = (((int64_t)sl * n_head_kv + hk) * cap) * hd;
    if constexpr (ROPE) {
        if (p >= j_begin && p < j_end) { /* this split holds pos[t]: k and v of the token into the cache first */
            const int64_t th = ((int64_t)t * n_head_kv + hk) * hd;
            float *ks = pre ? acc : qs; /* scratch (pre: qs holds the raw q heads) */
            if (pre)
                elk_head_stage_v([&](int) { return kr; }, ks, hd, r.kn, r.eps, rred);
            else
                elk_head_stage(r.k + th, ks, hd, r.kn, r.eps, rred);
            const int64_t dst = base + p * hd;
            for (int d = threadIdx.x; d < hd; d += ATT_THREADS) {
                elk_st<KT>(r.kc, dst + d, elk_head_rope(ks, d, r.half, (float)p, r.inv_freq, r.s));
                elk_st<KT>(r.vc, dst + d, pre ? vr : r.v[th + d]);
            }
            __threadfence(); /* in L2 before the cp.async reads below */
            __syncthreads();
        }
    }
    ATT_TS(3);

    constexpr int ESZ = KT == ELK_F32 ? 4 : KT == ELK_E4M3 ? 1 : 2;
    char *kst = (char *)sm + att_float_bytes(G, hd); /* [2][BLK][hd * ESZ + ATT_KPAD] raw cache bytes (STG) */
    const int krb = hd * ESZ + ATT_KPAD;            /* bytes per staged K row */
    const size_t kstage_bytes = (size_t)ATT_BLK * krb, stage_bytes = (size_t)ATT_BLK * hd * ESZ;
    char *vst = kst + 2 * kstage_bytes; /* [2][BLK][hd] */
    const int64_t krs = STG ? krb / ESZ : hd; /* K row stride in elements where the scores read it */
    /* issues the cp.async copies of block [jb, jb + nb) into stage st */
    auto issue = [&](int64_t jb, int nbk, int stg) {
        const char *ks = (const char *)kc + (base + jb * hd) * ESZ;
        const char *vs = (const char *)vc + (base + jb * hd) * ESZ;
        const int n16 = (int)((size_t)nbk * hd * ESZ / 16), cpr = hd * ESZ / 16;
        for (int i = threadIdx.x; i < n16; i += ATT_THREADS) {
            cp_async16(kst + stg * kstage_bytes + (size_t)(i / cpr) * krb + (size_t)(i % cpr) * 16,
                       ks + (size_t)i * 16);
            cp_async16(vst + stg * stage_bytes + (size_t)i * 16, vs + (size_t)i * 16);
        }
        cp_async_commit();
    };
    if (STG) issue(j_begin, (int)(j_end - j_begin < ATT_BLK ? j_end - j_begin : ATT_BLK), 0);

    if constexpr (ROPE) {
        if (pre) __syncthreads(); /* the raw q heads in qs are read by other threads than wrote them */
        for (int g = 0; g < G; g++) { /* q head g: norm + RoPE (acc as scratch), times scale, into qs */
            elk_head_stage(pre ? qs + g * hd : qt + g * hd, acc, hd, r.qn, r.eps, rred);
            for (int d = threadIdx.x; d < hd; d += ATT_THREADS)
                qs[g * hd + d] = elk_head_rope(acc, d, r.half, (float)p, r.inv_freq, r.s) * scale;
            __syncthreads(); /* the pairs of acc are read across threads before the next head overwrites it */
        }
        for (int i = threadIdx.x; i < G * hd; i += ATT_THREADS)
            acc[i] = 0.f;
    } else {
        for (int i = threadIdx.x; i < G * hd; i += ATT_THREADS) {
            qs[i] = qt[i] * scale;
            acc[i] = 0.f;
        }
    }
    for (int g = threadIdx.x; g < G; g += ATT_THREADS) {
        mrun[g] = -INFINITY;
        lrun[g] = 0.f;
    }
    __syncthreads();
    ATT_TS(4);

    int blk = 0;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += ATT_BLK, blk++) {
        const int nb = (int)(j_end - j0 < ATT_BLK ? j_end - j0 : ATT_BLK);
        /* where this block's K and V rows are read from: element offsets of row j0 */
        const void *kp = kc, *vp = vc;
        int64_t row0 = base + j0 * hd;
        if (STG) {
            const int64_t jn = j0 + ATT_BLK;
            if (jn < j_end) {
                issue(jn, (int)(j_end - jn < ATT_BLK ? j_end - jn : ATT_BLK), (blk + 1) & 1);
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
            kp = kst + (blk & 1) * kstage_bytes;
            vp = vst + (blk & 1) * stage_bytes;
            row0 = 0;
        }
        if (blk == 0) ATT_TS(5);
        /* scores */
        constexpr bool LANE_OK = STG && (KT == ELK_F32 || KT == ELK_F16 || KT == ELK_BF16);
        if (LANE_OK && r.lane && G <= 8 && (hd * ESZ) % 32 == 0) {
            /* T threads per position (ATT_THREADS = 2 ATT_BLK: T = 2; splits of at most 32 / 16 positions: T = 4 / 8
             * where the row has a multiple of T 16-byte chunks; other chunks below 64, e.g. 48, keep pairs): thread h
             * takes the row's 16-byte chunks T c + h, each against the G query heads (shared memory, read by the T
             * threads at the same addresses), then log2(T) shuffles add them */
            static_assert(!LANE_OK || ATT_THREADS == 2 * ATT_BLK, "one thread pair per position of a block");
            constexpr int EPC = 16 / ESZ; /* elements per chunk */
            const int nc = hd * ESZ / 16;
            /* log2 T: a block's positions (at most the chunk) must fit the 128 / T rows a round scores */
            const int lt = chunk > 32 || nc % 4 ? 1 : chunk > 16 || nc % 8 ? 2 : 3, T = 1 << lt;
            const int j = threadIdx.x >> lt, h = threadIdx.x & (T - 1), ncT = nc >> lt;
            float dsum[8];
#pragma unroll
            for (int g = 0; g < 8; g++) dsum[g] = 0.f;
            if (j < nb) {
                const char *krow = (const char *)kp + (size_t)j * krb + h * 16;
                for (int c = 0; c < ncT; c++) {
                    float kf[EPC];
                    att_unpack16<KT>(*(const uint4 *)(krow + c * 16 * T), kf);
                    const float *qc = qs + (T * c + h) * EPC;
#pragma unroll
                    for (int g = 0; g < 8; g++)
                        if (g < G) {
                            float a = dsum[g];
#pragma unroll
                            for (int e = 0; e < EPC; e++) a = fmaf(qc[g * hd + e], kf[e], a);
                            dsum[g] = a;
                        }
                }
            }
#pragma unroll
            for (int g = 0; g < 8; g++)
                if (g < G) {
                    float v = dsum[g];
                    for (int o = 1; o < T; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
                    if (h == 0 && j < nb) S[g * ATT_BLK + j] = v;
                }
        } else
        for (int jj = EPL > 0 ? warp * 4 : warp; jj < nb; jj += EPL > 0 ? ATT_THREADS / 32 * 4 : ATT_THREADS / 32) {
            const int64_t koff = row0 + (int64_t)jj * krs;
            if (EPL > 0) {
                /* 4 positions per step: 4 independent row loads and reduction chains in flight */
                constexpr int U = 4;
                float kf[U][EPL > 0 ? EPL : 1];
#pragma unroll
                for (int u = 0; u < U; u++) {
                    if (jj + u < nb) ld_vec<KT, EPL>(kp, koff + (int64_t)u * krs + lane * EPL, kf[u]);
                    else
#pragma unroll
                        for (int e = 0; e < EPL; e++) kf[u][e] = 0.f;
                }
                for (int g = 0; g < G; g++) {
                    float qv[EPL > 0 ? EPL : 1];
#pragma unroll
                    for (int e = 0; e < EPL; e++) qv[e] = qs[g * hd + lane * EPL + e];
                    float d[U];
#pragma unroll
                    for (int u = 0; u < U; u++) {
                        d[u] = 0.f;
#pragma unroll
                        for (int e = 0; e < EPL; e++) d[u] = fmaf(qv[e], kf[u][e], d[u]);
                    }
#pragma unroll
                    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
                        for (int u = 0; u < U; u++) d[u] += __shfl_xor_sync(0xffffffffu, d[u], o);
                    if (lane == 0)
#pragma unroll
                        for (int u = 0; u < U; u++)
                            if (jj + u < nb) S[g * ATT_BLK + jj + u] = d[u];
                }
            } else {
                for (int g = 0; g < G; g++) {
                    const float *qg = qs + g * hd;
                    float d = 0.f;
                    for (int e = lane; e < hd; e += 32) d = fmaf(qg[e], elk_ld<KT>(kp, koff + e), d);
                    d = elk_warp_sum(d);
                    if (lane == 0) S[g * ATT_BLK + jj] = d;
                }
            }
        }
        __syncthreads();
        if (blk == 0) ATT_TS(6);
        /* online softmax, a warp per head */
        for (int g = warp; g < G; g += ATT_THREADS / 32) {
            float *Sg = S + g * ATT_BLK;
            float mx = -INFINITY;
            for (int jj = lane; jj < nb; jj += 32) mx = fmaxf(mx, Sg[jj]);
            mx = elk_warp_max(mx);
            const float m_old = mrun[g];
            const float m_new = fmaxf(m_old, mx);
            float sum = 0.f;
            for (int jj = lane; jj < nb; jj += 32) {
                float e = __expf(Sg[jj] - m_new);
                Sg[jj] = e;
                sum += e;
            }
            sum = elk_warp_sum(sum);
            if (lane == 0) {
                float a = m_old == -INFINITY ? 0.f : __expf(m_old - m_new);
                alpha[g] = a;
                lrun[g] = lrun[g] * a + sum;
                mrun[g] = m_new;
            }
        }
        __syncthreads();
        if (blk == 0) ATT_TS(7);
        /* acc = acc * alpha + P V */
        if (ATT_THREADS % hd == 0 && G <= 8 * (ATT_THREADS / hd)) {
            /* fast path: a thread owns one dim d for up to 8 heads, so each V element is loaded once */
            const int d = threadIdx.x % hd, g0 = threadIdx.x / hd, gs = ATT_THREADS / hd;
            float a[8];
#pragma unroll
            for (int u = 0; u < 8; u++) a[u] = 0.f;
            const int64_t voff = row0 + d;
            int jj = 0;
            for (; jj + 4 <= nb; jj += 4) {
                float v[4];
#pragma unroll
                for (int q4 = 0; q4 < 4; q4++) v[q4] = elk_ld<KT>(vp, voff + (int64_t)(jj + q4) * hd);
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    const int g = g0 + u * gs;
                    if (g < G) {
                        const float *Pg = S + g * ATT_BLK + jj;
                        a[u] = fmaf(Pg[0], v[0], fmaf(Pg[1], v[1], fmaf(Pg[2], v[2], fmaf(Pg[3], v[3], a[u]))));
                    }
                }
            }
            for (; jj < nb; jj++) {
                float v = elk_ld<KT>(vp, voff + (int64_t)jj * hd);
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    const int g = g0 + u * gs;
                    if (g < G) a[u] = fmaf(S[g * ATT_BLK + jj], v, a[u]);
                }
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int g = g0 + u * gs;
                if (g < G) acc[g * hd + d] = acc[g * hd + d] * alpha[g] + a[u];
            }
        } else
        for (int i = threadIdx.x; i < G * hd; i += ATT_THREADS) {
            const int g = i / hd, d = i - g * hd;
            const float *Pg = S + g * ATT_BLK;
            float a = acc[i] * alpha[g];
            const int64_t voff = row0 + d;
            int jj = 0;
            for (; jj + 4 <= nb; jj += 4) {
                float v0 = elk_ld<KT>(vp, voff + (int64_t)(jj + 0) * hd);
                float v1 = elk_ld<KT>(vp, voff + (int64_t)(jj + 1) * hd);
                float v2 = elk_ld<KT>(vp, voff + (int64_t)(jj + 2) * hd);
                float v3 = elk_ld<KT>(vp, voff + (int64_t)(jj + 3) * hd);
                a = fmaf(Pg[jj], v0, a);
                a = fmaf(Pg[jj + 1], v1, a);
                a = fmaf(Pg[jj + 2], v2, a);
                a = fmaf(Pg[jj + 3], v3, a);
            }
            for (; jj < nb; jj++) a = fmaf(Pg[jj], elk_ld<KT>(vp, voff + (int64_t)jj * hd), a);
            acc[i] = a;
        }
        __syncthreads();
        if (blk == 0) ATT_TS(8);
    }
    ATT_TS(9);
#ifdef EDGELLM_ATT_TIMING
    if (tsrec) {
        ts[10] = j_end - j_begin;
        ts[11] = blk;
        const unsigned i = atomicAdd(&elk_att_ts_n, 1u);
        if (i < ATT_TS_N)
            for (int e = 0; e < ATT_TS_K; e++) elk_att_ts[i][e] = ts[e];
    }
#endif

    if (direct) {
        float *o = out + ((int64_t)t * n_head + (int64_t)hk * G) * hd;
        for (int i = threadIdx.x; i < G * hd; i += ATT_THREADS)
            o[i] = KT == ELK_E4M3 ? acc[i] / lrun[i / hd] * vscale : acc[i] / lrun[i / hd];
    } else {
        for (int g = 0; g < G; g++) {
            float *pp = part + (((int64_t)t * n_head + (int64_t)hk * G + g) * n_split + s) * (hd + 2);
            for (int d = threadIdx.x; d < hd; d += ATT_THREADS)
                pp[d] = KT == ELK_E4M3 ? acc[g * hd + d] * vscale : acc[g * hd + d];
            if (threadIdx.x == 0) {
                pp[hd] = mrun[g];
                pp[hd + 1] = lrun[g];
            }
        }
        if (cnt) { /* the last of the ns_act splits merges them (as k_attn_combine) */
            __shared__ int last;
            __threadfence(); /* this block's partials visible to the merging block */
            __syncthreads();
            if (threadIdx.x == 0) {
                unsigned *c = cnt + (int64_t)t * n_head_kv + hk;
                last = atomicAdd(c, 1u) == (unsigned)ns_act - 1;
                if (last) atomicExch(c, 0u); /* every split has counted: ready for the next launch */
            }
            __syncthreads();
            if (!last) return;
            __threadfence();
            const float *pt = part + ((int64_t)t * n_head + (int64_t)hk * G) * n_split * (int64_t)(hd + 2);
            for (int i = threadIdx.x; i < G * hd; i += ATT_THREADS) {
                const int g = i / hd, d = i - g * hd;
                const float *pp = pt + (int64_t)g * n_split * (hd + 2);
                float M = -INFINITY;
                for (int u = 0; u < ns_act; u++) M = fmaxf(M, __ldcg(pp + u * (int64_t)(hd + 2) + hd));
                float den = 0.f, a = 0.f;
                for (int u = 0; u < ns_act; u++) {
                    const float *ps = pp + u * (int64_t)(hd + 2);
                    const float e = __expf(__ldcg(ps + hd) - M);
                    den += __ldcg(ps + hd + 1) * e;
                    a += __ldcg(ps + d) * e;
                }
                out[((int64_t)t * n_head + (int64_t)hk * G) * hd + i] = a / den;
            }
        }
    }
}

#ifdef EDGELLM_ATT_TIMING
/* at exit: mean cycles of each phase of the recorded launches, by the positions of block (0, 0, 0)'s split */
static void att_timing_dump(void) {
    static long long h[ATT_TS_N][ATT_TS_K];
    unsigned n = 0;
    if (cudaMemcpyFromSymbol(&n, elk_att_ts_n, sizeof n) != cudaSuccess ||
        cudaMemcpyFromSymbol(h, elk_att_ts, sizeof h) != cudaSuccess)
        return;
    if (n > ATT_TS_N) n = ATT_TS_N;
    static const char *ph[9] = {"pdl wait", "pos/slot", "k/v store", "q heads", "K/V staged", "scores", "softmax",
                                "P V", "rest of loop"};
    fprintf(stderr, "att_timing: %u launches of block (0,0,0); mean cycles per phase, by positions of its split\n", n);
    for (int b = 0; b < 5; b++) {
        const long long lo = b * 16 + 1, hi = b < 4 ? (b + 1) * 16 : 1 << 30;
        double sum[9] = {0}, tot = 0;
        int c = 0;
        for (unsigned i = 0; i < n; i++) {
            if (h[i][10] < lo || h[i][10] > hi) continue;
            c++;
            for (int e = 0; e < 9; e++) sum[e] += (double)(h[i][e + 1] - h[i][e]);
            tot += (double)(h[i][9] - h[i][0]);
        }
        if (!c) continue;
        fprintf(stderr, "att_timing: positions %lld-%lld, %d launches, total %.0f:", lo, b < 4 ? hi : -1LL, c, tot / c);
        for (int e = 0; e < 9; e++) fprintf(stderr, " %s %.0f", ph[e], sum[e] / c);
        fprintf(stderr, "\n");
    }
}
#endif

__global__ void k_attn_combine(int n_head, int hd, const int32_t *__restrict__ pos, int64_t cap, int n_split,
                               int64_t chunk, const float *__restrict__ part, float *__restrict__ out) {
    const int64_t th = blockIdx.x; /* t * n_head + h */
    const int64_t t = th / n_head;
    const int64_t p = pos[t];
    int64_t end = p + 1 < cap ? p + 1 : cap;
    float *o = out + th * hd;
    if (end <= 0) {
        for (int d = threadIdx.x; d < hd; d += blockDim.x) o[d] = 0.f;
        return;
    }
    int ns = (int)((end - 1) / chunk + 1);
    if (ns > n_split) ns = n_split;
    const float *pp = part + th * n_split * (int64_t)(hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, pp[s * (int64_t)(hd + 2) + hd]);
    float den = 0.f;
    for (int s = 0; s < ns; s++) {
        const float *ps = pp + s * (int64_t)(hd + 2);
        den += ps[hd + 1] * __expf(ps[hd] - M);
    }
    const float inv = 1.f / den;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.f;
        for (int s = 0; s < ns; s++) {
            const float *ps = pp + s * (int64_t)(hd + 2);
            a += ps[d] * __expf(ps[hd] - M);
        }
        o[d] = a * inv;
    }
}

template <int KT, int EPL, bool STG, bool ROPE = false>
static cudaError_t attn_launch(cudaStream_t st, dim3 grid, size_t smem, const float *q, int n_head, int n_head_kv,
                               int hd, const int32_t *slot, const int32_t *pos, const void *kc, const void *vc,
                               int64_t cap, float scale, float vscale, float *out, int n_split, int64_t chunk,
                               float *part, unsigned *cnt, bool pdl, const elk_att_rope &r = elk_att_rope{}) {
    if (smem > 48 * 1024) {
        cudaError_t e =
            cudaFuncSetAttribute(k_attn<KT, EPL, STG, ROPE>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    elk_att_rope rl = r;
    rl.lane = elk_attn_lane_scores != 0; /* both decode attention paths score the same way */
    return elk_launch_ex(k_attn<KT, EPL, STG, ROPE>, grid, dim3(ATT_THREADS), smem, st, pdl, q, n_head, n_head_kv, hd,
                         slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, rl);
}

/* shared memory of the staged kernel for this shape, or 0 when it does not apply */
static size_t att_stg_smem(size_t esz, int G, int hd) {
    if (elk_attn_stage_mode != 0 || !(hd == 32 || hd == 64 || hd == 128) || hd * esz > 256 ||
        G > 8 * (ATT_THREADS / hd))
        return 0;
    const size_t smem_stg = att_float_bytes(G, hd) + 2 * (size_t)ATT_BLK * (hd * esz + ATT_KPAD) +
                            2 * (size_t)ATT_BLK * hd * esz;
    int dev = 0, optin = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    return smem_stg <= (size_t)optin ? smem_stg : 0;
}

template <int KT>
static cudaError_t attn_kt(cudaStream_t st, dim3 grid, const float *q, int n_head, int n_head_kv, int hd,
                           const int32_t *slot, const int32_t *pos, const void *kc, const void *vc, int64_t cap,
                           float scale, float vscale, float *out, int n_split, int64_t chunk, float *part,
                           unsigned *cnt, bool pdl) {
    const int G = n_head / n_head_kv;
    const size_t esz = KT == ELK_F32 ? 4 : KT == ELK_E4M3 ? 1 : 2;
    size_t smem = elk_attention_smem(n_head, n_head_kv, hd);
    /* staged path: hd 32/64/128 with rows of at most 256 bytes and the one-V-load P V path */
    const size_t smem_stg = att_stg_smem(esz, G, hd);
    if (smem_stg) {
        switch (hd) {
        case 32: return attn_launch<KT, 1, true>(st, grid, smem_stg, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
        case 64: return attn_launch<KT, 2, true>(st, grid, smem_stg, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
        default: return attn_launch<KT, 4, true>(st, grid, smem_stg, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
        }
    }
    switch (hd) {
    case 32: return attn_launch<KT, 1, false>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
    case 64: return attn_launch<KT, 2, false>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
    case 128: return attn_launch<KT, 4, false>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
    case 256: return attn_launch<KT, 8, false>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
    default: return attn_launch<KT, 0, false>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, vscale, out, n_split, chunk, part, cnt, pdl);
    }
}

static cudaError_t attention(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv,
                             int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                             const void *v_cache, int kv_t, float k_scale, float v_scale, int64_t cap, float scale,
                             float *out, int n_split, int64_t chunk, float *part, unsigned *cnt, bool pdl) {
    if (n_tok <= 0) return cudaSuccess;
    if (n_tok > 0x7fffffff || n_head_kv > 65535 || n_split > 65535 || n_split < 1) return cudaErrorInvalidValue;
    dim3 grid((unsigned)n_tok, (unsigned)n_head_kv, (unsigned)n_split);
    cudaError_t e;
    if (kv_t == ELK_E4M3) /* fp8: k_scale folded into the query scale, v_scale into the output */
        e = attn_kt<ELK_E4M3>(st, grid, q, (int)n_head, (int)n_head_kv, (int)head_dim, slot, pos, k_cache, v_cache, cap, scale * k_scale, v_scale, out, n_split, chunk, part, cnt, pdl);
    else if (kv_t == ELK_F32)
        e = attn_kt<ELK_F32>(st, grid, q, (int)n_head, (int)n_head_kv, (int)head_dim, slot, pos, k_cache, v_cache, cap, scale, 1.f, out, n_split, chunk, part, cnt, pdl);
    else if (kv_t == ELK_F16)
        e = attn_kt<ELK_F16>(st, grid, q, (int)n_head, (int)n_head_kv, (int)head_dim, slot, pos, k_cache, v_cache, cap, scale, 1.f, out, n_split, chunk, part, cnt, pdl);
    else
        e = attn_kt<ELK_BF16>(st, grid, q, (int)n_head, (int)n_head_kv, (int)head_dim, slot, pos, k_cache, v_cache, cap, scale, 1.f, out, n_split, chunk, part, cnt, pdl);
    if (e != cudaSuccess || n_split == 1 || cnt) return e;
    k_attn_combine<<<(unsigned)(n_tok * n_head), 128, 0, st>>>((int)n_head, (int)head_dim, pos, cap, n_split, chunk,
                                                              part, out);
    return cudaGetLastError();
}

cudaError_t elk_attention(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv,
                          int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                          const void *v_cache, int kv_t, float k_scale, float v_scale, int64_t cap, float scale,
                          float *out, int n_split, int64_t chunk, float *part) {
    return attention(st, q, n_tok, n_head, n_head_kv, head_dim, slot, pos, k_cache, v_cache, kv_t, k_scale, v_scale,
                     cap, scale, out, n_split, chunk, part, NULL, false);
}

cudaError_t elk_attention_ex(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv,
                             int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                             const void *v_cache, int kv_t, float k_scale, float v_scale, int64_t cap, float scale,
                             float *out, int n_split, int64_t chunk, float *part, unsigned *cnt, bool pdl) {
    return attention(st, q, n_tok, n_head, n_head_kv, head_dim, slot, pos, k_cache, v_cache, kv_t, k_scale, v_scale,
                     cap, scale, out, n_split, chunk, part, cnt, pdl);
}

template <int KT>
static cudaError_t attn_rope_kt(cudaStream_t st, dim3 grid, size_t smem, const float *q, int n_head, int n_head_kv,
                                int hd, const int32_t *slot, const int32_t *pos, const void *kc, const void *vc,
                                int64_t cap, float scale, float *out, int n_split, int64_t chunk, float *part,
                                unsigned *cnt, bool pdl, const elk_att_rope &r) {
    switch (hd) {
    case 32: return attn_launch<KT, 1, true, true>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, 1.f, out, n_split, chunk, part, cnt, pdl, r);
    case 64: return attn_launch<KT, 2, true, true>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, 1.f, out, n_split, chunk, part, cnt, pdl, r);
    default: return attn_launch<KT, 4, true, true>(st, grid, smem, q, n_head, n_head_kv, hd, slot, pos, kc, vc, cap, scale, 1.f, out, n_split, chunk, part, cnt, pdl, r);
    }
}

/* shared memory of the rope variant (the staged kernel on a float cache) for this shape, or 0 when it does not apply */
static size_t att_rope_smem(int kv_t, int64_t n_head, int64_t n_head_kv, int64_t head_dim) {
    if (n_head_kv <= 0 || n_head % n_head_kv || (kv_t != ELK_F32 && kv_t != ELK_F16 && kv_t != ELK_BF16)) return 0;
    return att_stg_smem(kv_t == ELK_F32 ? 4 : 2, (int)(n_head / n_head_kv), (int)head_dim);
}

bool elk_attention_rope_ok(int kv_t, int64_t n_head, int64_t n_head_kv, int64_t head_dim) {
    return att_rope_smem(kv_t, n_head, n_head_kv, head_dim) != 0;
}

cudaError_t elk_attention_rope(cudaStream_t st, const float *q, const float *k, const float *v, int64_t n_tok,
                               int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float *q_norm,
                               const float *k_norm, float eps, int64_t n_rot, const int32_t *pos,
                               const float *inv_freq, float attn_scale, const int32_t *slot, void *k_cache,
                               void *v_cache, int kv_t, int64_t cap, float scale, float *out, int n_split,
                               int64_t chunk, float *part, unsigned *cnt, bool pdl) {
    if (n_tok <= 0) return cudaSuccess;
#ifdef EDGELLM_ATT_TIMING
    static bool dump_set = false;
    if (!dump_set) dump_set = atexit(att_timing_dump) == 0;
#endif
    const size_t smem = att_rope_smem(kv_t, n_head, n_head_kv, head_dim); /* one device-attribute query */
    if (!smem || !cnt || n_tok > 0x7fffffff || n_head_kv > 65535 || n_split > 65535 || n_split < 1 || n_rot < 0 ||
        n_rot > head_dim || (n_rot & 1))
        return cudaErrorInvalidValue;
    const int hd = (int)head_dim;
    const dim3 grid((unsigned)n_tok, (unsigned)n_head_kv, (unsigned)n_split);
    elk_att_rope r;
    r.k = k, r.v = v, r.qn = q_norm, r.kn = k_norm, r.inv_freq = inv_freq, r.kc = k_cache, r.vc = v_cache;
    r.eps = eps, r.s = attn_scale, r.half = (int)(n_rot / 2);
    r.pre = !elk_attn_rope_late;
    r.late_trig = (elk_pdl_late & 1) != 0;
    if (kv_t == ELK_F32)
        return attn_rope_kt<ELK_F32>(st, grid, smem, q, (int)n_head, (int)n_head_kv, hd, slot, pos, k_cache, v_cache,
                                     cap, scale, out, n_split, chunk, part, cnt, pdl, r);
    if (kv_t == ELK_F16)
        return attn_rope_kt<ELK_F16>(st, grid, smem, q, (int)n_head, (int)n_head_kv, hd, slot, pos, k_cache, v_cache,
                                     cap, scale, out, n_split, chunk, part, cnt, pdl, r);
    return attn_rope_kt<ELK_BF16>(st, grid, smem, q, (int)n_head, (int)n_head_kv, hd, slot, pos, k_cache, v_cache, cap,
                                  scale, out, n_split, chunk, part, cnt, pdl, r);
}
