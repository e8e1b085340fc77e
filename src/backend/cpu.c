/* cpu.c - the CPU backend: host memory, ops on the SIMD kernels split over a persistent thread pool
 * (or, with use_reference, the scalar reference kernels). Nothing is allocated per op. */
#include "backend/backend.h"
#include "kernels/e4m3.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Allocations of at least this size come from anonymous mmap: zero pages cost no RSS until touched
 * (a large KV cache that is mostly empty stays cheap). */
#define CPU_MMAP_MIN ((size_t)1 << 20)
#define CPU_HDR 64
#define CPU_MAGIC 0x656c637075616c6cull

typedef struct cpu_hdr {
    uint64_t magic;
    uint64_t is_mmap;
    uint64_t size;    /* user bytes */
    uint64_t map_len; /* bytes mapped (is_mmap) */
} cpu_hdr;

typedef struct cpu_be {
    el_backend base;
    el_threadpool *tp;
    int nth;
    bool ref;
    bool copy_w;   /* weights copied into huge-page memory (cpu_weight_map; el_cpu_weights_copy_policy) */
    bool drop_src; /* the copied sources are a file mapping: their pages are dropped behind the copy */
    _Atomic uint64_t cur, peak;
    /* int8-activation quantized matmul: the activations quantized once per call + per-thread scratch;
     * grown on demand (the first call of a shape allocates, decode steps reuse it) */
    uint8_t *qbuf;
    size_t qcap;
    /* fused decode ops: normed x, row results, prepared activations, per-thread scratch (grown on demand) */
    uint8_t *fbuf;
    size_t fcap;
} cpu_be;

static cpu_be *CB(el_backend *be) { return (cpu_be *)be->ctx; }

static const char *cpu_name(el_backend *be) { return CB(be)->ref ? "cpu-reference" : "cpu"; }

static void cpu_free(el_backend *be) {
    cpu_be *cb = CB(be);
    el_threadpool_free(cb->tp);
    el_free_aligned(cb->qbuf);
    el_free_aligned(cb->fbuf);
    el_free(cb);
}

static void track(cpu_be *cb, int64_t delta) {
    uint64_t now = atomic_fetch_add(&cb->cur, (uint64_t)delta) + (uint64_t)delta;
    uint64_t pk = atomic_load(&cb->peak);
    while (now > pk && !atomic_compare_exchange_weak(&cb->peak, &pk, now)) {
    }
}

/* huge: ask for transparent huge pages (before the first touch) */
static edgellm_status cpu_alloc_ex(el_backend *be, size_t size, bool huge, void **out) {
    if (!out) return el_err(EDGELLM_STATUS_INVALID_ARG, "cpu alloc: NULL output pointer");
    *out = NULL;
    if (size > SIZE_MAX / 2) return el_err(EDGELLM_STATUS_NO_MEMORY, "cpu alloc: %zu bytes is too large", size);
    char *raw;
    cpu_hdr h = {CPU_MAGIC, 0, size, 0};
    if (size >= CPU_MMAP_MIN) {
        h.is_mmap = 1;
        h.map_len = size + CPU_HDR;
        void *p = mmap(NULL, h.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return el_err(EDGELLM_STATUS_NO_MEMORY, "cpu alloc: cannot map %zu bytes", size);
#ifdef MADV_HUGEPAGE
        if (huge) madvise(p, h.map_len, MADV_HUGEPAGE); /* advice only: without THP the copy still works */
#endif
        raw = p;
    } else {
        raw = el_aligned_alloc(size + CPU_HDR); /* zeroed */
        if (!raw) return el_err(EDGELLM_STATUS_NO_MEMORY, "cpu alloc: out of memory allocating %zu bytes", size);
    }
    memcpy(raw, &h, sizeof h);
    track(CB(be), (int64_t)size);
    *out = raw + CPU_HDR;
    return EDGELLM_STATUS_OK;
}
static edgellm_status cpu_alloc(el_backend *be, size_t size, void **out) { return cpu_alloc_ex(be, size, false, out); }

static void cpu_dealloc(el_backend *be, void *p) {
    if (!p) return;
    char *raw = (char *)p - CPU_HDR;
    cpu_hdr h;
    memcpy(&h, raw, sizeof h);
    if (h.magic != CPU_MAGIC) {
        EL_LOG_ERROR("cpu dealloc: %p was not allocated by this backend", p);
        return;
    }
    track(CB(be), -(int64_t)h.size);
    h.magic = 0;
    memcpy(raw, &h, sizeof h);
    if (h.is_mmap)
        munmap(raw, h.map_len);
    else
        el_free_aligned(raw);
}

static uint64_t cpu_peak(el_backend *be) { return atomic_load(&CB(be)->peak); }

/* The copy split over the pool: most of its time is the kernel zeroing the fresh huge pages at first touch,
 * which runs on the faulting core (2 threads: Llama-3.2-1B bf16 load ~2x faster). Slices end where the
 * mapping's 2 MiB pages do (dst is CPU_HDR past the mapping's start), so no page is faulted by two threads. */
typedef struct wcopy_task {
    char *dst;
    const char *src;
    size_t n;
    bool drop; /* src is a file mapping: drop its pages behind the copy (el_drop_pages) */
} wcopy_task;

static size_t wcopy_bound(const wcopy_task *t, int i, int nth) {
    const size_t huge = (size_t)2 << 20, per = ((t->n + CPU_HDR) / (size_t)nth + huge - 1) & ~(huge - 1);
    if (i <= 0) return 0;
    if (i >= nth || (size_t)i * per - CPU_HDR > t->n) return t->n;
    return (size_t)i * per - CPU_HDR;
}

static void wcopy_run(void *c, int ith, int nth) {
    const wcopy_task *t = c;
    const size_t a = wcopy_bound(t, ith, nth), b = wcopy_bound(t, ith + 1, nth), piece = (size_t)32 << 20;
    for (size_t o = a; o < b; o += piece) { /* 32 MiB at a time: at most that much of the source resident */
        const size_t len = b - o < piece ? b - o : piece;
        memcpy(t->dst + o, t->src + o, len);
        if (t->drop) el_drop_pages(t->src + o, len);
    }
}

/* Weights of >= 1 MiB are copied into anonymous memory with transparent huge pages (madvise) when copy_w is
 * set (el_cpu_weights_copy_policy, at creation), else ops read the engine mapping (the page cache) in place.
 * Decode streams THP memory faster than page-cache pages mapped 4 KiB at a time (a file written by `edgellm
 * build` stays cached in small folios; this kernel cannot collapse file pages: no READ_ONLY_THP_FOR_FS;
 * docs/kernels.md has the numbers). The copy costs load time and the weights' size in anonymous memory; when
 * the sources are a file mapping (weights_in_file) their pages are dropped 32 MiB behind the copy, so RSS does
 * not count both, not even for the tensor being copied. */
static edgellm_status cpu_weight_map(el_backend *be, const void *host, size_t n, void **out) {
    if (!out || !host) return el_err(EDGELLM_STATUS_INVALID_ARG, "cpu weight_map: NULL pointer");
    *out = (void *)host;
    if (CB(be)->copy_w && n >= CPU_MMAP_MIN) {
        void *p;
        EL_TRY(cpu_alloc_ex(be, n, true, &p));
        wcopy_task t = {p, host, n, CB(be)->drop_src};
        if (CB(be)->tp)
            el_threadpool_run(CB(be)->tp, wcopy_run, &t);
        else
            wcopy_run(&t, 0, 1);
#ifdef MADV_COLD
        /* sources that may not be dropped: their pages first in line for reclaim (non-destructive: host may be
         * anonymous memory too); dropped ones are already gone */
        const uintptr_t pg = 4096, a = ((uintptr_t)host + pg - 1) & ~(pg - 1), e = ((uintptr_t)host + n) & ~(pg - 1);
        if (!t.drop && e > a) madvise((void *)a, e - a, MADV_COLD);
#endif
        *out = p;
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_weight_map_rows(el_backend *be, const void *host, size_t n, void **out) {
    (void)be;
    (void)n;
    if (!out || !host) return el_err(EDGELLM_STATUS_INVALID_ARG, "cpu weight_map_rows: NULL pointer");
    *out = (void *)host;
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_copy(el_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    if (n && (!dst || !src)) return el_err(EDGELLM_STATUS_INVALID_ARG, "cpu copy: NULL pointer");
    if (n) memmove(dst, src, n);
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_memset0(el_backend *be, void *dst, size_t n) {
    (void)be;
    if (n && !dst) return el_err(EDGELLM_STATUS_INVALID_ARG, "cpu memset0: NULL pointer");
    if (n) memset(dst, 0, n);
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_sync(el_backend *be) {
    (void)be;
    return EDGELLM_STATUS_OK;
}

static bool float_dtype(el_dtype t) { return t == EL_DTYPE_F32 || t == EL_DTYPE_F16 || t == EL_DTYPE_BF16; }
/* KV cache types: the float types, or fp8 with usable scales */
static edgellm_status check_kv_type(const char *op, el_dtype t, float k_scale, float v_scale) {
    if (float_dtype(t)) return EDGELLM_STATUS_OK;
    if (t != EL_DTYPE_F8_E4M3)
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "%s: kv dtype %s", op, el_dtype_name(t));
    if (!(k_scale > 0 && k_scale < INFINITY && v_scale > 0 && v_scale < INFINITY))
        return el_err(EDGELLM_STATUS_INVALID_ARG,
                      "%s: fp8 KV cache scales must be finite and > 0 (k %g, v %g)", op, (double)k_scale,
                      (double)v_scale);
    return EDGELLM_STATUS_OK;
}

/* Splits [0, n) into nth near-equal parts aligned to `align`; part ith is [*a, *b). */
static void split(int64_t n, int ith, int nth, int64_t align, int64_t *a, int64_t *b) {
    int64_t per = (n + nth - 1) / nth;
    per = (per + align - 1) / align * align;
    int64_t s = per * ith, e = s + per;
    if (s > n) s = n;
    if (e > n) e = n;
    *a = s;
    *b = e;
}

/* Positions must lie in [0, limit) and slots be >= 0 (a bad value would write or read outside the
 * cache); n_tok values, cheap next to the op. */
static edgellm_status check_slot_pos(const char *op, const int32_t *slot, const int32_t *pos, int64_t n_tok,
                                     int64_t limit) {
    for (int64_t t = 0; t < n_tok; t++)
        if (slot[t] < 0 || pos[t] < 0 || pos[t] >= limit)
            return el_err(EDGELLM_STATUS_INVALID_ARG, "%s: token %lld has slot %d, position %d (limit %lld)", op,
                          (long long)t, (int)slot[t], (int)pos[t], (long long)limit);
    return EDGELLM_STATUS_OK;
}

/* ---- embed / kv_store (memory bound and small: caller thread) -------------------------------------- */

static edgellm_status cpu_embed(el_backend *be, const int32_t *ids, int64_t n, const void *table, el_dtype tt,
                                int64_t dim, float *out) {
    if (!ids || !table || !out || n < 0 || dim <= 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "embed: bad arguments");
    if (!float_dtype(tt)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "embed: table dtype %s", el_dtype_name(tt));
    if (CB(be)->ref) {
        edgellm_ref_embed(ids, n, table, tt, dim, out);
        return EDGELLM_STATUS_OK;
    }
    const size_t es = el_dtype_size(tt);
    for (int64_t t = 0; t < n; t++)
        el_convert(EL_DTYPE_F32, out + t * dim, tt, (const char *)table + (size_t)ids[t] * (size_t)dim * es,
                   (size_t)dim);
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_kv_store(el_backend *be, const float *k, const float *v, int64_t n_tok,
                                   int64_t n_head_kv, int64_t head_dim, const int32_t *slot,
                                   const int32_t *pos, void *k_cache, void *v_cache, el_dtype kv_t,
                                   float k_scale, float v_scale, int64_t cap) {
    if (!k || !v || !slot || !pos || !k_cache || !v_cache || n_tok < 0 || n_head_kv <= 0 || head_dim <= 0 || cap <= 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "kv_store: bad arguments");
    EL_TRY(check_kv_type("kv_store", kv_t, k_scale, v_scale));
    EL_TRY(check_slot_pos("kv_store", slot, pos, n_tok, cap));
    if (CB(be)->ref) {
        edgellm_ref_kv_store(k, v, n_tok, n_head_kv, head_dim, slot, pos, k_cache, v_cache, kv_t, k_scale,
                             v_scale, cap);
        return EDGELLM_STATUS_OK;
    }
    const size_t es = el_dtype_size(kv_t);
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t h = 0; h < n_head_kv; h++) {
            size_t dst = (size_t)((((int64_t)slot[t] * n_head_kv + h) * cap + pos[t]) * head_dim) * es;
            int64_t src = (t * n_head_kv + h) * head_dim;
            if (kv_t == EL_DTYPE_F8_E4M3) { /* e4m3(x / scale), as the reference */
                uint8_t *kd = (uint8_t *)k_cache + dst, *vd = (uint8_t *)v_cache + dst;
                for (int64_t i = 0; i < head_dim; i++) {
                    kd[i] = el_e4m3_from_f32(k[src + i] / k_scale);
                    vd[i] = el_e4m3_from_f32(v[src + i] / v_scale);
                }
                continue;
            }
            el_convert(kv_t, (char *)k_cache + dst, EL_DTYPE_F32, k + src, (size_t)head_dim);
            el_convert(kv_t, (char *)v_cache + dst, EL_DTYPE_F32, v + src, (size_t)head_dim);
        }
    }
    return EDGELLM_STATUS_OK;
}

/* ---- matmul ---------------------------------------------------------------------------------------- */

#ifndef EL_MM_CHUNKS_PER_THREAD
#define EL_MM_CHUNKS_PER_THREAD 2
#endif
/* float-activation quantized decode (m = 1; w4a16 walks a thread's rows as two long sequential streams):
 * one stretch of W per thread (2 per thread were ~5% slower end to end, int4 Qwen3-0.6B shape, 2 threads;
 * the int8-activation kernels showed no difference and keep EL_MM_CHUNKS_PER_THREAD) */
#ifndef EL_QMM_DECODE_CHUNKS_PER_THREAD
#define EL_QMM_DECODE_CHUNKS_PER_THREAD 1
#endif

typedef struct mm_task {
    const float *x;
    int64_t m, k;
    const void *w;
    el_dtype wt;
    int64_t n;
    const float *bias;
    float *y;
    int64_t ldy;
    bool split_m;
    int64_t chunk;        /* columns per grab (split over n) */
    _Atomic int64_t next; /* next column to hand out */
} mm_task;

static void mm_run(void *c, int ith, int nth) {
    const mm_task *t = c;
    int64_t a, b;
    if (t->split_m) {
        split(t->m, ith, nth, 4, &a, &b);
        if (b > a) edgellm_cpu_matmul(t->x + a * t->k, b - a, t->k, t->w, t->wt, 0, t->n, t->bias, t->y + a * t->ldy, t->ldy, NULL);
    } else if (nth == 1) {
        edgellm_cpu_matmul(t->x, t->m, t->k, t->w, t->wt, 0, t->n, t->bias, t->y, t->ldy, NULL);
    } else {
        /* contiguous chunks of W handed out dynamically: a thread that loses its core to another process
         * does not hold up the whole op by a static share */
        mm_task *mt = (mm_task *)t;
        for (;;) {
            a = atomic_fetch_add_explicit(&mt->next, t->chunk, memory_order_relaxed);
            if (a >= t->n) break;
            b = a + t->chunk < t->n ? a + t->chunk : t->n;
            edgellm_cpu_matmul(t->x, t->m, t->k, t->w, t->wt, a, b, t->bias, t->y, t->ldy, NULL);
        }
    }
}

/* Quantized weights (kernels/quant.h): the scalar reference for now, output columns split over the
 * pool (the SIMD kernels replace el_ref_qmatmul here). Uses the dense task's operands only. */
static void qmm_run(void *c, int ith, int nth) {
    const mm_task *t = c;
    int64_t a, b;
    split(t->n, ith, nth, 16, &a, &b);
    if (b > a) el_ref_qmatmul(t->x, t->m, t->k, t->w, t->wt, t->n, a, b, t->bias, t->y, t->ldy);
}

/* SIMD quantized matmul: x prepared once into the shared buffer cb->qbuf (w8a8 / q8_0 / q4_0: quantized to
 * int8 for the VNNI kernels; w4a16 / fp8 / nvfp4: bf16 parts, int8 limbs or int16 for the AVX-512 kernels;
 * rows split over the pool for prefill), followed by per-thread scratch, then chunks of 16-row multiples of W handed
 * out dynamically as in mm_run. */
typedef struct q_task {
    mm_task mm;
    bool i8; /* the int8-activation kernels, else the float-activation ones */
    uint8_t *act, *scr;
    size_t scr_each;
} q_task;

static void q_rows(const q_task *t, int64_t a, int64_t b, void *scr) {
    const mm_task *mt = &t->mm;
    if (t->i8)
        edgellm_cpu_qmm_i8(t->act, mt->m, mt->k, mt->w, mt->wt, mt->n, a, b, mt->bias, mt->y, mt->ldy, scr);
    else
        edgellm_cpu_qf_matmul(mt->x, t->act, mt->m, mt->k, mt->w, mt->wt, a, b, mt->bias, mt->y, mt->ldy, scr);
}

static void q_run(void *c, int ith, int nth) {
    q_task *t = c;
    mm_task *mt = &t->mm;
    void *scr = t->scr + (size_t)ith * t->scr_each;
    if (nth == 1) {
        q_rows(t, 0, mt->n, scr);
        return;
    }
    for (;;) {
        int64_t a = atomic_fetch_add_explicit(&mt->next, mt->chunk, memory_order_relaxed);
        if (a >= mt->n) break;
        q_rows(t, a, a + mt->chunk < mt->n ? a + mt->chunk : mt->n, scr);
    }
}

/* the activations of rows [a, b) of x prepared for the kernels */
static void q_prep_run(void *c, int ith, int nth) {
    const q_task *t = c;
    int64_t a, b;
    split(t->mm.m, ith, nth, 1, &a, &b);
    if (t->i8)
        edgellm_cpu_qmm_i8_quantize(t->mm.w, t->mm.wt, t->mm.x, t->mm.m, t->mm.k, a, b, t->act);
    else
        edgellm_cpu_qf_prep(t->mm.x, t->mm.m, t->mm.k, t->mm.w, t->mm.wt, a, b, t->act);
}

static edgellm_status cpu_qmm_simd(cpu_be *cb, bool i8, size_t act, size_t each, const float *x, int64_t m,
                                   int64_t k, const void *w, el_dtype wt, int64_t n, const float *bias, float *y,
                                   int64_t ldy) {
    const int nth = cb->tp ? cb->nth : 1;
    act = (act + 63) & ~(size_t)63;
    each = (each + 63) & ~(size_t)63;
    const size_t need = act + (size_t)nth * each;
    if (need > cb->qcap) {
        el_free_aligned(cb->qbuf);
        cb->qcap = 0;
        cb->qbuf = el_aligned_alloc(need);
        if (!cb->qbuf) return el_err(EDGELLM_STATUS_NO_MEMORY, "matmul %s: out of memory (%zu bytes of scratch)",
                                     el_dtype_name(wt), need);
        cb->qcap = need;
    }
    q_task t = {{x, m, k, w, wt, n, bias, y, ldy, false, 0, 0}, i8, cb->qbuf, cb->qbuf + act, each};
    const bool par = nth > 1 && (double)m * (double)n * (double)k >= 65536.0;
    if (par && m >= 2 * nth && (double)m * (double)k >= 32768.0)
        el_threadpool_run(cb->tp, q_prep_run, &t);
    else
        q_prep_run(&t, 0, 1);
    if (!par) {
        q_run(&t, 0, 1);
        return EDGELLM_STATUS_OK;
    }
    const int64_t per = m == 1 && !i8 ? EL_QMM_DECODE_CHUNKS_PER_THREAD : EL_MM_CHUNKS_PER_THREAD;
    int64_t chunk = (n / (per * (int64_t)nth)) & ~(int64_t)15;
    /* w4a16 / fp8 / nvfp4 prefill: compute-bound, one expanded tile of 64 rows of W per grab, so that the
     * threads finish together (within one tile) also when one of them loses time to another process */
    if (!i8 && m > 4 && chunk > 64) chunk = 64;
    t.mm.chunk = chunk < 16 ? 16 : chunk;
    el_threadpool_run(cb->tp, q_run, &t);
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_qmatmul(cpu_be *cb, const float *x, int64_t m, int64_t k, const void *w, el_dtype wt,
                                  int64_t n, const float *bias, float *y, int64_t ldy) {
    if (m == 0) return EDGELLM_STATUS_OK;
    switch (wt) { /* SIMD kernels per format where there are some; else the reference below */
    case EL_DTYPE_Q_W8A8:
    case EL_DTYPE_Q8_0:
    case EL_DTYPE_Q4_0:
        if (!cb->ref && edgellm_cpu_qmm_i8_supported(wt, k))
            return cpu_qmm_simd(cb, true, edgellm_cpu_qmm_i8_act_bytes(wt, m, k), edgellm_cpu_qmm_i8_scratch(wt, m, k),
                                x, m, k, w, wt, n, bias, y, ldy);
        break;
    case EL_DTYPE_Q_W4A16:
    case EL_DTYPE_Q_FP8:
    case EL_DTYPE_Q_NVFP4: {
        const size_t need = cb->ref ? 0 : edgellm_cpu_qf_prep_bytes(w, wt, m, k);
        if (need)
            return cpu_qmm_simd(cb, false, need, edgellm_cpu_qf_scratch(w, wt, m, k), x, m, k, w, wt, n, bias, y,
                                ldy);
        break;
    }
    default: break;
    }
    mm_task t = {x, m, k, w, wt, n, bias, y, ldy, false, 0, 0};
    if (cb->nth <= 1 || !cb->tp || (double)m * (double)n * (double)k < 65536.0)
        qmm_run(&t, 0, 1);
    else
        el_threadpool_run(cb->tp, qmm_run, &t);
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_matmul(el_backend *be, const float *x, int64_t m, int64_t k, const void *w, el_dtype wt,
                                 int64_t n, const float *bias, float *y, int64_t ldy) {
    cpu_be *cb = CB(be);
    if (!x || !w || !y || m < 0 || k <= 0 || n <= 0 || ldy < n)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "matmul: bad arguments (m=%lld k=%lld n=%lld ldy=%lld)",
                      (long long)m, (long long)k, (long long)n, (long long)ldy);
    if (el_dtype_is_quant(wt)) return cpu_qmatmul(cb, x, m, k, w, wt, n, bias, y, ldy);
    if (!float_dtype(wt)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "matmul: weight dtype %s", el_dtype_name(wt));
    if (m == 0) return EDGELLM_STATUS_OK;
    if (cb->ref) {
        if (ldy == n)
            edgellm_ref_matmul(x, m, k, w, wt, n, bias, y);
        else
            for (int64_t i = 0; i < m; i++) edgellm_ref_matmul(x + i * k, 1, k, w, wt, n, bias, y + i * ldy);
        return EDGELLM_STATUS_OK;
    }
    mm_task t = {x, m, k, w, wt, n, bias, y, ldy, false, 0, 0};
    const double work = (double)m * (double)n * (double)k;
    if (cb->nth <= 1 || work < 65536.0) {
        mm_run(&t, 0, 1);
        return EDGELLM_STATUS_OK;
    }
    /* over output columns when there are enough of them (each thread streams its part of W once),
     * else over rows of x */
    t.split_m = n < 64 * (int64_t)cb->nth && m >= 4 * (int64_t)cb->nth;
    /* about 2 chunks per thread (long contiguous runs of W keep the prefetchers streaming: measured 3-5%
     * faster decode than 4 on a 2-core Zen 5; a thread that loses its core leaves at most half of its
     * share to wait for), at least ~128 KiB each,
     * a multiple of 16 columns */
    const int64_t row_bytes = k * (int64_t)el_dtype_size(wt);
    int64_t chunk = (n / (EL_MM_CHUNKS_PER_THREAD * (int64_t)cb->nth)) & ~(int64_t)15;
    const int64_t min_chunk = ((int64_t)128 * 1024 / row_bytes) & ~(int64_t)15;
    if (chunk < min_chunk) chunk = min_chunk;
    t.chunk = chunk < 16 ? 16 : chunk;
    el_threadpool_run(cb->tp, mm_run, &t);
    return EDGELLM_STATUS_OK;
}

/* ---- rmsnorm, rope, swiglu, add ---------------------------------------------------------------------- */

typedef struct rn_task {
    const float *x;
    const void *w;
    el_dtype wt;
    int64_t rows, dim;
    float eps;
    float *y;
} rn_task;

static void rn_run(void *c, int ith, int nth) {
    const rn_task *t = c;
    int64_t a, b;
    split(t->rows, ith, nth, 1, &a, &b);
    edgellm_cpu_rmsnorm(t->x, t->w, t->wt, a, b, t->dim, t->eps, t->y);
}

static edgellm_status cpu_rmsnorm(el_backend *be, const float *x, const void *w, el_dtype wt, int64_t rows,
                                  int64_t dim, float eps, float *y) {
    cpu_be *cb = CB(be);
    if (!x || !w || !y || rows < 0 || dim <= 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "rmsnorm: bad arguments");
    if (!float_dtype(wt)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "rmsnorm: weight dtype %s", el_dtype_name(wt));
    if (cb->ref) {
        edgellm_ref_rmsnorm(x, w, wt, rows, dim, eps, y);
        return EDGELLM_STATUS_OK;
    }
    rn_task t = {x, w, wt, rows, dim, eps, y};
    if (cb->nth <= 1 || rows < 2 || rows * dim < 8192)
        rn_run(&t, 0, 1);
    else
        el_threadpool_run(cb->tp, rn_run, &t);
    return EDGELLM_STATUS_OK;
}

typedef struct rope_task {
    float *x;
    int64_t n_tok, n_heads, head_dim, n_rot;
    const int32_t *pos;
    const float *inv_freq;
    float attn_scale;
} rope_task;

static void rope_run(void *c, int ith, int nth) {
    const rope_task *t = c;
    int64_t a, b;
    split(t->n_tok, ith, nth, 1, &a, &b);
    if (b > a) edgellm_cpu_rope(t->x, a, b, t->n_heads, t->head_dim, t->n_rot, t->pos, t->inv_freq, t->attn_scale);
}

static edgellm_status cpu_rope(el_backend *be, float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                               int64_t n_rot, const int32_t *pos, const float *inv_freq, float attn_scale) {
    cpu_be *cb = CB(be);
    if (!x || !pos || !inv_freq || n_tok < 0 || n_heads <= 0 || head_dim <= 0 || n_rot < 0 || n_rot > head_dim ||
        n_rot % 2)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "rope: bad arguments (head_dim=%lld n_rot=%lld)",
                      (long long)head_dim, (long long)n_rot);
    if (cb->ref) {
        edgellm_ref_rope(x, n_tok, n_heads, head_dim, n_rot, pos, inv_freq, attn_scale);
        return EDGELLM_STATUS_OK;
    }
    rope_task t = {x, n_tok, n_heads, head_dim, n_rot, pos, inv_freq, attn_scale};
    if (cb->nth <= 1 || n_tok < 4)
        rope_run(&t, 0, 1);
    else
        el_threadpool_run(cb->tp, rope_run, &t);
    return EDGELLM_STATUS_OK;
}

typedef struct ew_task {
    const float *a, *b;
    float *out;
    int64_t n;
} ew_task;

static void swiglu_run(void *c, int ith, int nth) {
    const ew_task *t = c;
    int64_t a, b;
    split(t->n, ith, nth, 16, &a, &b);
    edgellm_cpu_swiglu(t->a, t->b, t->out, a, b);
}
static void add_run(void *c, int ith, int nth) {
    const ew_task *t = c;
    int64_t a, b;
    split(t->n, ith, nth, 16, &a, &b);
    edgellm_cpu_add(t->out, t->a, a, b);
}

static edgellm_status cpu_swiglu(el_backend *be, const float *gate, const float *up, float *out, int64_t n) {
    cpu_be *cb = CB(be);
    if (!gate || !up || !out || n < 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "swiglu: bad arguments");
    if (cb->ref) {
        edgellm_ref_swiglu(gate, up, out, n);
        return EDGELLM_STATUS_OK;
    }
    ew_task t = {gate, up, out, n};
    if (cb->nth <= 1 || n < 32768)
        swiglu_run(&t, 0, 1);
    else
        el_threadpool_run(cb->tp, swiglu_run, &t);
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_add(el_backend *be, float *y, const float *x, int64_t n) {
    cpu_be *cb = CB(be);
    if (!y || !x || n < 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "add: bad arguments");
    if (cb->ref) {
        edgellm_ref_add(y, x, n);
        return EDGELLM_STATUS_OK;
    }
    ew_task t = {x, NULL, y, n};
    if (cb->nth <= 1 || n < 65536)
        add_run(&t, 0, 1);
    else
        el_threadpool_run(cb->tp, add_run, &t);
    return EDGELLM_STATUS_OK;
}

/* ---- fused decode ops (one token): norm_matmul / norm_swiglu ---------------------------------------
 * Quantized weights with SIMD kernels (cpu_fused_quant): h = rmsnorm(x) and the activations of each weight
 * prepared on the calling thread, then one pool run over the rows of all the call's weights (grabs split at
 * the weights' boundaries; 16-row aligned), the residual add or silu * up applied per grab: one run instead
 * of the chain's three to five (rmsnorm, a matmul per weight, add / swiglu), the same kernels on the same
 * rows, so the same results. Other weights: the chain through this backend's own ops. */

enum { FQ_MAX = 3, FQ_SET = 0, FQ_ADD = 1, FQ_SWIGLU = 2 };

typedef struct fq_task {
    int n_w, mode;                             /* FQ_SWIGLU: w[0] gate, w[1] up (n rows each), into y[0] */
    const void *w[FQ_MAX];
    el_dtype wt;
    bool i8;                                   /* the int8-activation kernels, else the float-activation ones */
    int64_t k, n[FQ_MAX], off[FQ_MAX + 1];     /* weight i: rows [off[i], off[i + 1]) of the concatenation */
    const float *h, *bias[FQ_MAX];
    float *y[FQ_MAX], *tmp;                    /* tmp: row results before the add / the product (off[] indexed) */
    uint8_t *act[FQ_MAX], *scr;
    size_t scr_each;
    int64_t total, chunk;
    _Atomic int64_t next;
} fq_task;

static size_t fq_pad(size_t v) { return (v + 63) & ~(size_t)63; }

/* rows [a, b) of weight i into out (indexed by row) */
static void fq_rows(const fq_task *t, int i, int64_t a, int64_t b, float *out, void *scr) {
    if (t->i8)
        edgellm_cpu_qmm_i8(t->act[i], 1, t->k, t->w[i], t->wt, t->n[i], a, b, t->bias[i], out, t->n[i], scr);
    else
        edgellm_cpu_qf_matmul(t->h, t->act[i], 1, t->k, t->w[i], t->wt, a, b, t->bias[i], out, t->n[i], scr);
}

static void fq_run(void *c, int ith, int nth) {
    (void)nth;
    fq_task *t = c;
    void *scr = t->scr + (size_t)ith * t->scr_each;
    for (;;) {
        const int64_t a = atomic_fetch_add_explicit(&t->next, t->chunk, memory_order_relaxed);
        if (a >= t->total) break;
        const int64_t b = a + t->chunk < t->total ? a + t->chunk : t->total;
        if (t->mode == FQ_SWIGLU) {
            fq_rows(t, 0, a, b, t->tmp, scr);
            fq_rows(t, 1, a, b, t->tmp + t->n[0], scr);
            edgellm_cpu_swiglu(t->tmp, t->tmp + t->n[0], t->y[0], a, b);
            continue;
        }
        for (int i = 0; i < t->n_w; i++) {
            const int64_t lo = (a > t->off[i] ? a : t->off[i]) - t->off[i];
            const int64_t hi = (b < t->off[i + 1] ? b : t->off[i + 1]) - t->off[i];
            if (lo >= hi) continue;
            if (t->mode == FQ_SET) {
                fq_rows(t, i, lo, hi, t->y[i], scr);
            } else {
                fq_rows(t, i, lo, hi, t->tmp + t->off[i], scr);
                edgellm_cpu_add(t->y[i], t->tmp + t->off[i], lo, hi);
            }
        }
    }
}

/* whether the fused ops take weight w (k from its header): the SIMD kernels of its format apply */
static bool fq_kernels(const cpu_be *cb, const void *w, el_dtype wt, int64_t *k, bool *i8) {
    if (cb->ref || !w) return false;
    el_qhdr h;
    memcpy(&h, w, sizeof h);
    if (h.magic != EL_QHDR_MAGIC || h.format != (uint32_t)wt || h.k == 0) return false;
    *k = (int64_t)h.k;
    switch (wt) {
    case EL_DTYPE_Q_W8A8: *i8 = true; return edgellm_cpu_qmm_i8_supported(wt, *k);
    case EL_DTYPE_Q_W4A16:
    case EL_DTYPE_Q_FP8:
    case EL_DTYPE_Q_NVFP4: *i8 = false; return edgellm_cpu_qf_prep_bytes(w, wt, 1, *k) > 0;
    default: return false;
    }
}

static bool cpu_fused_quant(el_backend *be, const void *w, el_dtype wt) {
    int64_t k;
    bool i8;
    return fq_kernels(CB(be), w, wt, &k, &i8);
}

/* the fused path: t's weights, n, bias, y and mode set; x (k) normed by norm_w (or taken as is) */
static edgellm_status fq_exec(cpu_be *cb, fq_task *t, const float *x, const float *norm_w, float eps) {
    const int nth = cb->tp ? cb->nth : 1;
    size_t act[FQ_MAX], each = 0;
    t->off[0] = 0;
    for (int i = 0; i < t->n_w; i++) {
        t->off[i + 1] = t->off[i] + t->n[i];
        act[i] = fq_pad(t->i8 ? edgellm_cpu_qmm_i8_act_bytes(t->wt, 1, t->k)
                              : edgellm_cpu_qf_prep_bytes(t->w[i], t->wt, 1, t->k));
        const size_t e = t->i8 ? edgellm_cpu_qmm_i8_scratch(t->wt, 1, t->k)
                               : edgellm_cpu_qf_scratch(t->w[i], t->wt, 1, t->k);
        if (e > each) each = e;
    }
    t->scr_each = fq_pad(each);
    size_t need = fq_pad((size_t)t->k * 4) + fq_pad((size_t)t->off[t->n_w] * 4) + (size_t)nth * t->scr_each;
    for (int i = 0; i < t->n_w; i++)
        need += act[i];
    if (need > cb->fcap) {
        el_free_aligned(cb->fbuf);
        cb->fcap = 0;
        cb->fbuf = el_aligned_alloc(need);
        if (!cb->fbuf) return el_err(EDGELLM_STATUS_NO_MEMORY, "fused matmul: out of memory (%zu bytes)", need);
        cb->fcap = need;
    }
    uint8_t *p = cb->fbuf;
    float *h = (float *)p;
    p += fq_pad((size_t)t->k * 4);
    t->tmp = (float *)p;
    p += fq_pad((size_t)t->off[t->n_w] * 4);
    for (int i = 0; i < t->n_w; i++) {
        t->act[i] = p;
        p += act[i];
    }
    t->scr = p;
    if (norm_w) {
        edgellm_cpu_rmsnorm(x, norm_w, EL_DTYPE_F32, 0, 1, t->k, eps, h);
        t->h = h;
    } else {
        t->h = x;
    }
    for (int i = 0; i < t->n_w; i++) {
        if (t->i8)
            edgellm_cpu_qmm_i8_quantize(t->w[i], t->wt, t->h, 1, t->k, 0, 1, t->act[i]);
        else
            edgellm_cpu_qf_prep(t->h, 1, t->k, t->w[i], t->wt, 0, 1, t->act[i]);
    }
    t->total = t->mode == FQ_SWIGLU ? t->n[0] : t->off[t->n_w];
    /* as the chain's matmuls: int8 kernels 2 grabs per thread, the float-activation ones 1 (cpu_qmm_simd) */
    const int64_t per = t->i8 ? EL_MM_CHUNKS_PER_THREAD : EL_QMM_DECODE_CHUNKS_PER_THREAD;
    const int64_t chunk = (t->total / (per * (int64_t)nth)) & ~(int64_t)15;
    t->chunk = chunk < 16 ? 16 : chunk;
    atomic_init(&t->next, 0);
    if (nth > 1 && (double)t->total * (double)t->k >= 65536.0)
        el_threadpool_run(cb->tp, fq_run, t);
    else
        fq_run(t, 0, 1);
    return EDGELLM_STATUS_OK;
}

/* the chain's normed x (k floats) for the unfused path: into the fused buffer */
static edgellm_status fq_scratch(cpu_be *cb, size_t need) {
    if (need <= cb->fcap) return EDGELLM_STATUS_OK;
    el_free_aligned(cb->fbuf);
    cb->fcap = 0;
    cb->fbuf = el_aligned_alloc(need);
    if (!cb->fbuf) return el_err(EDGELLM_STATUS_NO_MEMORY, "fused ops: out of memory (%zu bytes)", need);
    cb->fcap = need;
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_norm_matmul(el_backend *be, const float *x, int64_t k, const float *norm_w, float eps,
                                      int n_w, const void *const *w, el_dtype wt, const int64_t *n,
                                      const float *const *bias, float *const *y, bool accumulate) {
    cpu_be *cb = CB(be);
    if (!x || k <= 0 || n_w < 1 || n_w > FQ_MAX || !w || !n || !y)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "norm_matmul: bad arguments");
    fq_task t;
    memset(&t, 0, sizeof t);
    t.n_w = n_w;
    t.wt = wt;
    t.mode = accumulate ? FQ_ADD : FQ_SET;
    bool fused = true;
    int64_t nmax = 0;
    for (int i = 0; i < n_w; i++) {
        int64_t kw = 0;
        bool i8 = false;
        if (!w[i] || !y[i] || n[i] <= 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "norm_matmul: bad arguments");
        fused = fused && fq_kernels(cb, w[i], wt, &kw, &i8) && kw == k && (i == 0 || i8 == t.i8);
        t.i8 = i8;
        t.w[i] = w[i];
        t.n[i] = n[i];
        t.bias[i] = bias ? bias[i] : NULL;
        t.y[i] = y[i];
        if (n[i] > nmax) nmax = n[i];
    }
    t.k = k;
    if (fused) return fq_exec(cb, &t, x, norm_w, eps);
    /* the chain */
    EL_TRY(fq_scratch(cb, fq_pad((size_t)k * 4) + (size_t)nmax * 4));
    float *h = (float *)cb->fbuf, *tmp = (float *)(cb->fbuf + fq_pad((size_t)k * 4));
    if (norm_w) EL_TRY(cpu_rmsnorm(be, x, norm_w, EL_DTYPE_F32, 1, k, eps, h));
    for (int i = 0; i < n_w; i++) {
        EL_TRY(cpu_matmul(be, norm_w ? h : x, 1, k, w[i], wt, n[i], t.bias[i], accumulate ? tmp : y[i], n[i]));
        if (accumulate) EL_TRY(cpu_add(be, y[i], tmp, n[i]));
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status cpu_norm_swiglu(el_backend *be, const float *x, int64_t k, const float *norm_w, float eps,
                                      const void *wg, const void *wu, el_dtype wt, int64_t n, const float *bg,
                                      const float *bu, float *out) {
    cpu_be *cb = CB(be);
    if (!x || k <= 0 || !wg || !wu || n <= 0 || !out)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "norm_swiglu: bad arguments");
    fq_task t;
    memset(&t, 0, sizeof t);
    int64_t kg = 0, ku = 0;
    bool ig = false, iu = false;
    t.n_w = 2;
    t.mode = FQ_SWIGLU;
    t.wt = wt;
    t.k = k;
    t.w[0] = wg;
    t.w[1] = wu;
    t.n[0] = t.n[1] = n;
    t.bias[0] = bg;
    t.bias[1] = bu;
    t.y[0] = out;
    if (fq_kernels(cb, wg, wt, &kg, &ig) && fq_kernels(cb, wu, wt, &ku, &iu) && kg == k && ku == k && ig == iu) {
        t.i8 = ig;
        return fq_exec(cb, &t, x, norm_w, eps);
    }
    EL_TRY(fq_scratch(cb, fq_pad((size_t)k * 4) + (size_t)n * 8));
    float *h = (float *)cb->fbuf, *g = (float *)(cb->fbuf + fq_pad((size_t)k * 4)), *u = g + n;
    if (norm_w) EL_TRY(cpu_rmsnorm(be, x, norm_w, EL_DTYPE_F32, 1, k, eps, h));
    EL_TRY(cpu_matmul(be, norm_w ? h : x, 1, k, wg, wt, n, bg, g, n));
    EL_TRY(cpu_matmul(be, norm_w ? h : x, 1, k, wu, wt, n, bu, u, n));
    return cpu_swiglu(be, g, u, out, n);
}

/* ---- attention: (token, kv head) items handed out dynamically (causal prefill is uneven) ---------- */

typedef struct at_task {
    const float *q;
    int64_t n_items, n_head, n_head_kv, head_dim;
    const int32_t *slot, *pos;
    const void *kc, *vc;
    el_dtype kt;
    float k_scale, v_scale;
    int64_t cap;
    float scale;
    float *out;
    int64_t chunk;
    _Atomic int64_t next;
} at_task;

static void at_run(void *c, int ith, int nth) {
    (void)ith;
    (void)nth;
    at_task *t = c;
    for (;;) { /* from the last items (prefill: the longest contexts) to the first */
        const int64_t d = atomic_fetch_add(&t->next, t->chunk);
        if (d >= t->n_items) break;
        const int64_t b = t->n_items - d, a = b - t->chunk > 0 ? b - t->chunk : 0;
        edgellm_cpu_attention_items(t->q, a, b, t->n_head, t->n_head_kv, t->head_dim, t->slot, t->pos, t->kc,
                                    t->vc, t->kt, t->k_scale, t->v_scale, t->cap, t->scale, t->out);
    }
}

static edgellm_status cpu_attention(el_backend *be, const float *q, int64_t n_tok, int64_t n_head,
                                    int64_t n_head_kv, int64_t head_dim, const int32_t *slot,
                                    const int32_t *pos, int32_t max_pos, const void *k_cache,
                                    const void *v_cache, el_dtype kv_t, float k_scale, float v_scale,
                                    int64_t cap, float scale, float *out) {
    cpu_be *cb = CB(be);
    if (!q || !slot || !pos || !k_cache || !v_cache || !out || n_tok < 0 || n_head <= 0 || n_head_kv <= 0 ||
        n_head % n_head_kv || head_dim <= 0 || cap <= 0 || max_pos >= cap)
        return el_err(EDGELLM_STATUS_INVALID_ARG,
                      "attention: bad arguments (n_head=%lld n_head_kv=%lld head_dim=%lld cap=%lld max_pos=%d)",
                      (long long)n_head, (long long)n_head_kv, (long long)head_dim, (long long)cap, (int)max_pos);
    if (head_dim > 4096) return el_err(EDGELLM_STATUS_UNSUPPORTED, "attention: head_dim %lld > 4096", (long long)head_dim);
    EL_TRY(check_kv_type("attention", kv_t, k_scale, v_scale));
    EL_TRY(check_slot_pos("attention", slot, pos, n_tok, max_pos + 1));
    if (cb->ref) {
        edgellm_ref_attention(q, n_tok, n_head, n_head_kv, head_dim, slot, pos, k_cache, v_cache, kv_t,
                              k_scale, v_scale, cap, scale, out);
        return EDGELLM_STATUS_OK;
    }
    at_task t = {q,    n_tok * n_head_kv, n_head,  n_head_kv, head_dim, slot, pos, k_cache, v_cache,
                 kv_t, k_scale,           v_scale, cap,       scale,    out,  1,   0};
    /* short contexts: hand out several items at a time to keep the counter off the critical path;
     * several tokens: whole tokens, 64 q heads' worth of them (the kernels' prefill tiles: all q heads of
     * a kv head for consecutive tokens of one sequence, 4 tiles of 16 lanes per pass over K / V) */
    if ((int64_t)max_pos < 64) t.chunk = t.n_items / (4 * cb->nth) > 1 ? t.n_items / (4 * cb->nth) : 1;
    else if (n_tok > 1) t.chunk = (n_head / n_head_kv < 64 ? 64 / (n_head / n_head_kv) : 1) * n_head_kv;
    if (cb->nth <= 1 || t.n_items < 2 || (double)t.n_items * (max_pos + 1.0) * (double)head_dim < 16384.0)
        at_run(&t, 0, 1);
    else
        el_threadpool_run(cb->tp, at_run, &t);
    return EDGELLM_STATUS_OK;
}

/* ---- creation ------------------------------------------------------------------------------------ */

/* Whether madvise(MADV_HUGEPAGE) can get transparent huge pages: THP "always" or "madvise", not "never" */
static bool thp_madvise_ok(void) {
#ifdef MADV_HUGEPAGE
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    char line[128] = {0};
    const bool ok = fgets(line, sizeof line, f) && (strstr(line, "[always]") || strstr(line, "[madvise]"));
    fclose(f);
    return ok;
#else
    return false;
#endif
}

bool el_cpu_weights_copy_policy(const char *env, uint64_t weight_bytes, uint64_t mem_available, bool thp) {
    if (env && !strcmp(env, "copy")) return true;
    if (env && (!strcmp(env, "map") || !strcmp(env, "mmap"))) return false;
    if (env && *env) EL_LOG_WARN("EDGELLM_CPU_WEIGHTS=%s: expected copy, map or mmap; using the default", env);
    return thp && weight_bytes > 0 && mem_available > 0 && weight_bytes <= mem_available / 2;
}

edgellm_status el_backend_cpu_create(const el_backend_params *p, el_backend **out) {
    if (!out) return el_err(EDGELLM_STATUS_INVALID_ARG, "cpu backend: NULL output pointer");
    *out = NULL;
    el_backend_params def = {0};
    if (!p) p = &def;
    if (p->n_threads < 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "cpu backend: n_threads %d < 0", p->n_threads);
    cpu_be *cb = el_calloc(1, sizeof *cb);
    if (!cb) return el_err(EDGELLM_STATUS_NO_MEMORY, "cpu backend: out of memory");
    cb->nth = p->n_threads > 0 ? p->n_threads : el_num_cpus();
    /* EDGELLM_THREADS=N overrides every CPU backend's thread count (e.g. 1 under qemu-user, whose
     * pthread_create hangs on this project's build machine; docs/kernels.md) */
    const char *env_nth = getenv("EDGELLM_THREADS");
    if (env_nth && atoi(env_nth) > 0) cb->nth = atoi(env_nth);
    cb->ref = p->use_reference;
    const char *env_w = getenv("EDGELLM_CPU_WEIGHTS");
    const uint64_t avail = el_mem_available_bytes();
    cb->copy_w = !cb->ref && el_cpu_weights_copy_policy(env_w, p->weight_bytes, avail, thp_madvise_ok());
    cb->drop_src = p->weights_in_file;
    EL_LOG_DEBUG("cpu weights: %s (EDGELLM_CPU_WEIGHTS=%s, %.2f GB of weights, %.2f GB available)",
                 cb->copy_w ? "copied into huge pages" : "read in place", env_w ? env_w : "", p->weight_bytes / 1e9,
                 avail / 1e9);
    atomic_init(&cb->cur, 0);
    atomic_init(&cb->peak, 0);
    if (!cb->ref && cb->nth > 1) {
        cb->tp = el_threadpool_create(cb->nth);
        if (!cb->tp) {
            el_free(cb);
            return el_err(EDGELLM_STATUS_NO_MEMORY, "cpu backend: cannot start %d threads", p->n_threads);
        }
    }
    if (cb->ref) cb->nth = 1;
    el_backend_i *i = &cb->base.iface;
    i->name = cpu_name;
    i->free = cpu_free;
    i->alloc = cpu_alloc;
    i->dealloc = cpu_dealloc;
    i->weight_map = cpu_weight_map;
    i->weight_map_rows = cpu_weight_map_rows;
    i->upload = cpu_copy;
    i->download = cpu_copy;
    i->memset0 = cpu_memset0;
    i->sync = cpu_sync;
    i->embed = cpu_embed;
    i->rmsnorm = cpu_rmsnorm;
    i->matmul = cpu_matmul;
    i->rope = cpu_rope;
    i->kv_store = cpu_kv_store;
    i->attention = cpu_attention;
    i->swiglu = cpu_swiglu;
    i->add = cpu_add;
    i->norm_matmul = cpu_norm_matmul;
    i->norm_swiglu = cpu_norm_swiglu;
    i->fused_quant = cpu_fused_quant;
    i->peak_memory = cpu_peak;
    cb->base.ctx = cb;
    *out = &cb->base;
    return EDGELLM_STATUS_OK;
}
