/*
 * cuda.cu - the CUDA backend: el_backend_i on one NVIDIA GPU.
 *
 * One non-blocking stream; every op is enqueued on it (asynchronous), download() and sync() are the
 * only host waits. Memory: cudaMalloc per alloc (zeroed on the stream), weight_map copies the host
 * weights into device memory. upload() goes through a pinned staging ring so that it returns before
 * the copy ran (the caller may reuse its buffer at once). Ops: kernels of src/kernels/cuda; matmul is a
 * bandwidth-bound GEMV for m <= 8 and cuBLASLt for m > 8 (x converted to the weight type, tensor cores,
 * fp32 accumulate and output; f32 weights in plain fp32, no TF32); quantized weights: qmatmul (w8a8 / static
 * fp8 prefill on cuBLASLt int8 / fp8 GEMMs of the codes, other formats on bf16 GEMMs of dequantized rows).
 * Scratch (converted activations, attention partials) grows at first use and is never freed while the
 * backend lives (a captured graph may hold an old buffer), so steady-state decode does no cudaMalloc.
 * Graphs: graph_begin/graph_end capture the stream (relaxed mode) and keep the executable graph under
 * a key; graph_launch replays it. Ops read dynamic values (ids, positions, slots) from device buffers
 * and size their grids from static shapes only, so replays see the values uploaded before the launch.
 * Errors: EDGELLM_STATUS_DEVICE with "file:line: cudaGetErrorString" (or the cuBLAS status).
 */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend/backend.h"
#include "kernels/quant.h"
}
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/fused.cuh"
#include "kernels/cuda/sample.cuh"

#define CU_STAGE_BYTES ((size_t)8 << 20)
#define CU_LT_WS_BYTES ((size_t)32 << 20)
#define CU_MAX_GRAPHS 256
#define CU_ATT_COUNTERS 65536 /* (token, kv head) pairs of one attention call that merge without a 2nd kernel */
#define CU_SAMPLE_ROWS 256     /* rows of one sample call that may be split over CTAs (2 MiB of scratch) */
#define CU_GEMM_CACHE 64

typedef struct cu_alloc {
    void *p = NULL;
    size_t n;
    int64_t qgroup; /* a w4a16 weight (weight_map) the int8-mma kernels take (qmma.cu): its group size; else 0 */
    elk_w4off w4off; /* and its section offsets (from the header weight_map uploaded) */
    /* a w8a8 / fp8 / nvfp4 weight (weight_map): its header's format, shape and quants offset, and (fp8) whether
     * its activations are static (act_scale > 0): what the int8 / fp8 prefill GEMMs and the fused decode ops need
     * on the host; qfmt 0: none */
    int qfmt;
    int64_t qn, qk;
    uint64_t qoff;
    bool qstatic;
} cu_alloc;

/* A cached cuBLASLt matmul (descriptors and algorithm) for one shape and type combination: wt = the weight
 * (A) type, float (bf16/f16/f32 x bf16/f16/f32 -> f32), EL_DTYPE_Q_W8A8 (int8 x int8 -> int32) or
 * EL_DTYPE_Q_FP8 (e4m3 x e4m3 -> f32); unsupported: cuBLASLt offered no algorithm (cached too) */
typedef struct cu_gemm_plan {
    bool used, unsupported;
    int64_t m, n, k, ldb, ldy;
    int wt, align_a, align_b, align_c;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} cu_gemm_plan;

typedef struct cu_graph {
    int key;
    cudaGraphExec_t exec;
} cu_graph;

typedef struct cu_ctx {
    int dev, n_sm;
    int cc; /* compute capability, major * 10 + minor (fp8 GEMMs: 89 and up) */
    bool pdl; /* fused kernels use programmatic dependent launch (sm_90+, EDGELLM_NO_PDL unset) */
    bool fused_fp8; /* fused_quant takes fp8 weights (default on sm_89+; EDGELLM_FUSED_FP8=0 / 1 overrides) */
    size_t smem_optin;
    cudaStream_t st;
    cublasLtHandle_t lt;
    void *lt_ws;
    cu_alloc *allocs;
    size_t n_allocs, cap_allocs;
    uint64_t cur_bytes, peak_bytes;
    void *scratch;
    unsigned *att_cnt; /* CU_ATT_COUNTERS zeroed split counters of elk_attention_ex (zero between launches) */
    void *samp_ws;     /* elk_sample scratch for CU_SAMPLE_ROWS rows (rows split over CTAs) */
    size_t scratch_size;
    void **retired;
    size_t n_retired, cap_retired;
    char *up_stage;
    size_t up_off;
    char *down_stage;
    size_t down_size;
    char *dl_slot;          /* [2][EL_DOWNLOAD_SLOT] pinned: download_begin / download_end */
    cudaEvent_t dl_ev[2];   /* recorded after each slot's copy */
    bool dl_busy[2];        /* a copy into the slot is queued and not yet waited for */
    cu_graph graphs[CU_MAX_GRAPHS];
    int n_graphs;
    bool capturing;
    cu_gemm_plan plans[CU_GEMM_CACHE];
    int plan_next;
} cu_ctx;

static edgellm_status cu_fail(cudaError_t e, const char *file, int line) {
    const char *f = strrchr(file, '/');
    return el_err(EDGELLM_STATUS_DEVICE, "%s:%d: %s", f ? f + 1 : file, line, cudaGetErrorString(e));
}
#define CU_TRY(expr)                                                                                   \
    do {                                                                                               \
        cudaError_t cu_e_ = (expr);                                                                    \
        if (cu_e_ != cudaSuccess) return cu_fail(cu_e_, __FILE__, __LINE__);                           \
    } while (0)
static edgellm_status lt_fail(cublasStatus_t s, const char *what, const char *file, int line) {
    const char *f = strrchr(file, '/');
    return el_err(EDGELLM_STATUS_DEVICE, "%s:%d: cuBLASLt %s failed (status %d)", f ? f + 1 : file, line, what,
                  (int)s);
}
#define LT_TRY(expr)                                                                                   \
    do {                                                                                               \
        cublasStatus_t lt_s_ = (expr);                                                                 \
        if (lt_s_ != CUBLAS_STATUS_SUCCESS) return lt_fail(lt_s_, #expr, __FILE__, __LINE__);          \
    } while (0)

/* Makes the backend's device current on the calling thread (once per thread and device). */
static thread_local int tl_dev = -1;
static cu_ctx *ctx_of(el_backend *be) {
    cu_ctx *c = (cu_ctx *)be->ctx;
    if (tl_dev != c->dev) {
        cudaSetDevice(c->dev);
        tl_dev = c->dev;
    }
    return c;
}

/* Prefill GEMMs of w8a8 / static fp8 weights: 1 = on the codes (cuBLASLt int8 / fp8) where shape and device
 * allow it, 0 = the bf16 GEMM on dequantized weights for every format (EDGELLM_CUDA_QGEMM=0 at backend creation;
 * tests and benchmarks set it). Counts of quantized prefill GEMMs run since the process started, by path:
 * [0] int8, [1] fp8, [2] bf16 on dequantized weights (one per matmul call). */
extern "C" int el_cuda_qgemm_mode;
extern "C" unsigned long long el_cuda_qgemm_count[3];
int el_cuda_qgemm_mode = 1;
unsigned long long el_cuda_qgemm_count[3];

static bool float_type(el_dtype t) { return t == EL_DTYPE_F32 || t == EL_DTYPE_F16 || t == EL_DTYPE_BF16; }
static int elk_type(el_dtype t) { return t == EL_DTYPE_F32 ? ELK_F32 : t == EL_DTYPE_F16 ? ELK_F16 : ELK_BF16; }

/* ---- memory ------------------------------------------------------------------------------------ */

static edgellm_status track(cu_ctx *c, void *p, size_t n) {
    if (c->n_allocs == c->cap_allocs) {
        size_t nc = c->cap_allocs ? c->cap_allocs * 2 : 64;
        cu_alloc *na = (cu_alloc *)el_realloc(c->allocs, nc * sizeof *na);
        if (!na) return el_err(EDGELLM_STATUS_NO_MEMORY, "cuda: allocation table");
        c->allocs = na;
        c->cap_allocs = nc;
    }
    cu_alloc *a = &c->allocs[c->n_allocs++];
    *a = cu_alloc{};
    a->p = p;
    a->n = n;
    c->cur_bytes += n;
    if (c->cur_bytes > c->peak_bytes) c->peak_bytes = c->cur_bytes;
    return EDGELLM_STATUS_OK;
}

static edgellm_status dev_malloc(cu_ctx *c, size_t n, void **out) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n ? n : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return el_err(EDGELLM_STATUS_NO_MEMORY, "cuda: cudaMalloc of %zu bytes failed: %s", n,
                      cudaGetErrorString(e));
    }
    edgellm_status s = track(c, p, n);
    if (s < 0) {
        cudaFree(p);
        return s;
    }
    *out = p;
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_alloc(el_backend *be, size_t size, void **out) {
    cu_ctx *c = ctx_of(be);
    void *p = NULL;
    EL_TRY(dev_malloc(c, size, &p));
    CU_TRY(cudaMemsetAsync(p, 0, size, c->st));
    *out = p;
    return EDGELLM_STATUS_OK;
}

static void be_dealloc(el_backend *be, void *p) {
    if (!p) return;
    cu_ctx *c = ctx_of(be);
    for (size_t i = 0; i < c->n_allocs; i++) {
        if (c->allocs[i].p == p) {
            cudaStreamSynchronize(c->st);
            cudaFree(p);
            c->cur_bytes -= c->allocs[i].n;
            c->allocs[i] = c->allocs[--c->n_allocs];
            return;
        }
    }
    EL_LOG_WARN("cuda: dealloc of a pointer this backend did not allocate");
}

static edgellm_status be_weight_map(el_backend *be, const void *host, size_t n, void **out) {
    cu_ctx *c = ctx_of(be);
    void *p = NULL;
    EL_TRY(dev_malloc(c, n, &p));
    cudaError_t e = cudaMemcpyAsync(p, host, n, cudaMemcpyHostToDevice, c->st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->st);
    if (e != cudaSuccess) {
        be_dealloc(be, p);
        return cu_fail(e, __FILE__, __LINE__);
    }
    el_qhdr h;
    cu_alloc *a = c->n_allocs && c->allocs[c->n_allocs - 1].p == p ? &c->allocs[c->n_allocs - 1] : NULL;
    if (n >= sizeof h) memcpy(&h, host, sizeof h);
    if (a && n >= sizeof h && h.magic == EL_QHDR_MAGIC && h.nbytes <= n) {
        if (h.format == EL_DTYPE_Q_W4A16 && elk_w4a16_mma_ok(h.k, h.group) && h.quants_off < h.nbytes &&
            h.scales_off < h.nbytes && h.zeros_off < h.nbytes) {
            a->qgroup = h.group;
            a->w4off = elk_w4off{h.quants_off, h.scales_off, h.zeros_off};
        }
        if (h.format == EL_DTYPE_Q_W8A8 || h.format == EL_DTYPE_Q_FP8 || h.format == EL_DTYPE_Q_NVFP4) {
            a->qfmt = (int)h.format;
            a->qn = h.n;
            a->qk = h.k;
            a->qoff = h.quants_off;
            a->qstatic = h.act_scale > 0;
        }
    }
    *out = p;
    return EDGELLM_STATUS_OK;
}

/* The allocation record of a device pointer this backend returned (alloc / weight_map), else NULL. */
static const cu_alloc *find_alloc(const cu_ctx *c, const void *p) {
    for (size_t i = c->n_allocs; i-- > 0;)
        if (c->allocs[i].p == p) return &c->allocs[i];
    return NULL;
}

/* The group size of a w4a16 weight the int8-mma kernels take (weight_map recorded it, with the section
 * offsets: *off when off is not NULL), else 0. */
static int64_t w4_group(const cu_ctx *c, const void *w, elk_w4off *off = NULL) {
    const cu_alloc *a = find_alloc(c, w);
    if (a && off) *off = a->w4off;
    return a ? a->qgroup : 0;
}

/* The allocation record of an fp8 / w8a8 / nvfp4 weight of dtype wt that elk_fused_q takes (mapped by weight_map,
 * quants 16-byte aligned, k within the kernels' limit for the formats that stage activation codes), else NULL. */
static const cu_alloc *fused_q_alloc(const cu_ctx *c, const void *w, el_dtype wt) {
    if (wt != EL_DTYPE_Q_FP8 && wt != EL_DTYPE_Q_W8A8 && wt != EL_DTYPE_Q_NVFP4) return NULL;
    const cu_alloc *a = find_alloc(c, w);
    if (!a || a->qfmt != (int)wt || (a->qoff & 15)) return NULL;
    const bool codes = wt == EL_DTYPE_Q_W8A8 || (wt == EL_DTYPE_Q_FP8 && a->qstatic);
    return codes && a->qk > ELK_FQ_MAX_K ? NULL : a;
}

static bool be_fused_quant(el_backend *be, const void *w, el_dtype wt) {
    if (wt == EL_DTYPE_Q_W4A16) return w4_group(ctx_of(be), w) > 0;
    if (wt == EL_DTYPE_Q_FP8 && !ctx_of(be)->fused_fp8) return false;
    return fused_q_alloc(ctx_of(be), w, wt) != NULL;
}

static edgellm_status be_upload(el_backend *be, void *dst, const void *src, size_t n) {
    cu_ctx *c = ctx_of(be);
    if (c->capturing) return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: upload during graph capture");
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done < CU_STAGE_BYTES ? n - done : CU_STAGE_BYTES;
        if (c->up_off + chunk > CU_STAGE_BYTES) { /* ring full: wait until earlier copies are done */
            CU_TRY(cudaStreamSynchronize(c->st));
            c->up_off = 0;
        }
        char *stage = c->up_stage + c->up_off;
        memcpy(stage, (const char *)src + done, chunk);
        CU_TRY(cudaMemcpyAsync((char *)dst + done, stage, chunk, cudaMemcpyHostToDevice, c->st));
        c->up_off += (chunk + 255) & ~(size_t)255;
        done += chunk;
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_download(el_backend *be, void *dst, const void *src, size_t n) {
    cu_ctx *c = ctx_of(be);
    if (c->capturing) return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: download during graph capture");
    if (n > c->down_size) {
        CU_TRY(cudaStreamSynchronize(c->st));
        if (c->down_stage) cudaFreeHost(c->down_stage);
        c->down_stage = NULL;
        c->down_size = 0;
        size_t sz = n < ((size_t)1 << 20) ? ((size_t)1 << 20) : n + n / 2;
        CU_TRY(cudaMallocHost((void **)&c->down_stage, sz));
        c->down_size = sz;
    }
    CU_TRY(cudaMemcpyAsync(c->down_stage, src, n, cudaMemcpyDeviceToHost, c->st));
    CU_TRY(cudaStreamSynchronize(c->st));
    c->up_off = 0; /* the stream is idle: the upload ring is free again */
    memcpy(dst, c->down_stage, n);
    return EDGELLM_STATUS_OK;
}

/* decode lookahead (backend.h): the copy lands in a pinned slot; only its event is waited for, so work queued
 * after it (the next decode step) keeps running. The upload ring is not reset here (later uploads may still be
 * queued); it waits for the stream itself when it wraps. */
static edgellm_status be_download_begin(el_backend *be, const void *src, size_t n, int tag) {
    cu_ctx *c = ctx_of(be);
    if (c->capturing) return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: download during graph capture");
    if (tag < 0 || tag > 1 || n > EL_DOWNLOAD_SLOT || c->dl_busy[tag])
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: download_begin: bad slot %d or size %zu", tag, n);
    CU_TRY(cudaMemcpyAsync(c->dl_slot + (size_t)tag * EL_DOWNLOAD_SLOT, src, n, cudaMemcpyDeviceToHost, c->st));
    CU_TRY(cudaEventRecord(c->dl_ev[tag], c->st));
    c->dl_busy[tag] = true;
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_download_end(el_backend *be, int tag, void *dst, size_t n) {
    cu_ctx *c = ctx_of(be);
    if (tag < 0 || tag > 1 || n > EL_DOWNLOAD_SLOT || !c->dl_busy[tag])
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: download_end: slot %d has no copy queued", tag);
    c->dl_busy[tag] = false;
    CU_TRY(cudaEventSynchronize(c->dl_ev[tag]));
    memcpy(dst, c->dl_slot + (size_t)tag * EL_DOWNLOAD_SLOT, n);
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_feed_tokens(el_backend *be, const int32_t *sampled, int32_t *ids, int32_t *pos, int64_t n) {
    cu_ctx *c = ctx_of(be);
    CU_TRY(elk_feed_tokens(c->st, sampled, ids, pos, n));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_memset0(el_backend *be, void *dst, size_t n) {
    cu_ctx *c = ctx_of(be);
    CU_TRY(cudaMemsetAsync(dst, 0, n, c->st));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_sync(el_backend *be) {
    cu_ctx *c = ctx_of(be);
    if (c->capturing) return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: sync during graph capture");
    CU_TRY(cudaStreamSynchronize(c->st));
    CU_TRY(cudaGetLastError());
    c->up_off = 0;
    return EDGELLM_STATUS_OK;
}

/* Scratch of at least n bytes. An outgrown buffer is retired, not freed: in-flight kernels and
 * captured graphs may still use it. */
static edgellm_status scratch(cu_ctx *c, size_t n, void **out) {
    if (n > c->scratch_size) {
        if (c->scratch) {
            if (c->n_retired == c->cap_retired) {
                size_t nc = c->cap_retired ? c->cap_retired * 2 : 8;
                void **nr = (void **)el_realloc(c->retired, nc * sizeof *nr);
                if (!nr) return el_err(EDGELLM_STATUS_NO_MEMORY, "cuda: scratch list");
                c->retired = nr;
                c->cap_retired = nc;
            }
            c->retired[c->n_retired++] = c->scratch;
            c->scratch = NULL;
        }
        size_t sz = n + n / 2;
        sz = (sz + 4095) & ~(size_t)4095;
        void *p = NULL;
        cudaError_t e = cudaMalloc(&p, sz);
        if (e != cudaSuccess) {
            cudaGetLastError();
            c->scratch_size = 0;
            return el_err(EDGELLM_STATUS_NO_MEMORY, "cuda: scratch of %zu bytes: %s", sz, cudaGetErrorString(e));
        }
        c->scratch = p;
        c->scratch_size = sz;
        c->cur_bytes += sz;
        if (c->cur_bytes > c->peak_bytes) c->peak_bytes = c->cur_bytes;
    }
    *out = c->scratch;
    return EDGELLM_STATUS_OK;
}

/* ---- ops --------------------------------------------------------------------------------------- */

static edgellm_status be_embed(el_backend *be, const int32_t *ids, int64_t n, const void *table, el_dtype tt,
                               int64_t dim, float *out) {
    cu_ctx *c = ctx_of(be);
    if (!float_type(tt) || n < 0 || dim < 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda embed: bad table dtype %s or shape", el_dtype_name(tt));
    CU_TRY(elk_embed(c->st, ids, n, table, elk_type(tt), dim, out));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_rmsnorm(el_backend *be, const float *x, const void *w, el_dtype wt, int64_t rows,
                                 int64_t dim, float eps, float *y) {
    cu_ctx *c = ctx_of(be);
    if (!float_type(wt) || rows < 0 || dim <= 0 || rows > 0x7fffffff)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda rmsnorm: bad weight dtype %s or shape", el_dtype_name(wt));
    CU_TRY(elk_rmsnorm(c->st, x, w, elk_type(wt), rows, dim, eps, y));
    return EDGELLM_STATUS_OK;
}

static int ptr_align(const void *p, int64_t ld_bytes) {
    uintptr_t a = (uintptr_t)p | (uintptr_t)ld_bytes;
    int al = 16;
    while (al > 1 && (a & (uintptr_t)(al - 1))) al >>= 1;
    return al;
}

static cudaDataType_t lt_type(el_dtype t) {
    return t == EL_DTYPE_F32 ? CUDA_R_32F : t == EL_DTYPE_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

static void plan_destroy(cu_gemm_plan *p) {
    if (!p->used) return;
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    p->used = false;
}

/* Descriptors and algorithm of plan p (its key fields set, descriptors NULL); the first failing status. */
static cublasStatus_t plan_build(cu_ctx *c, cu_gemm_plan *p) {
    const el_dtype wt = (el_dtype)p->wt;
    const bool i8 = wt == EL_DTYPE_Q_W8A8, f8 = wt == EL_DTYPE_Q_FP8;
    const cudaDataType_t ab = i8 ? CUDA_R_8I : f8 ? CUDA_R_8F_E4M3 : lt_type(wt), cd = i8 ? CUDA_R_32I : CUDA_R_32F;
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->op, i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F, cd);
    if (s != CUBLAS_STATUS_SUCCESS) return s; /* the scale type (alpha, beta) is C's: int32 for int8, else f32 */
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const int8_t fast = 0; /* fp8: accumulation promoted to fp32 at intervals (the library default, stated) */
    if ((s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        (s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
        (f8 && (s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast))) ||
        (s = cublasLtMatrixLayoutCreate(&p->a, ab, (uint64_t)p->k, (uint64_t)p->n, p->k)) ||
        (s = cublasLtMatrixLayoutCreate(&p->b, ab, (uint64_t)p->k, (uint64_t)p->m, p->ldb)) ||
        (s = cublasLtMatrixLayoutCreate(&p->c, cd, (uint64_t)p->n, (uint64_t)p->m, p->ldy)))
        return s;
    cublasLtMatmulPreference_t pref;
    if ((s = cublasLtMatmulPreferenceCreate(&pref))) return s;
    size_t ws = CU_LT_WS_BYTES;
    uint32_t ua = (uint32_t)p->align_a, ub = (uint32_t)p->align_b, uc = (uint32_t)p->align_c;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ua, sizeof ua);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ub, sizeof ub);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &uc, sizeof uc);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &uc, sizeof uc);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    s = cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && nres < 1) s = CUBLAS_STATUS_NOT_SUPPORTED;
    if (s == CUBLAS_STATUS_SUCCESS) p->algo = res.algo;
    return s;
}

/* Column-major view: Y^T (n, m, ld ldy) = W^T^T (n, k) * X^T (k, m): A = W stored (k, n) ld k with op T ("TN",
 * as the int8 and fp8 kernels require), B = x (k, m) ld ldb, C = D = y; types by wt (cu_gemm_plan), al_* the
 * pointer / leading-dimension alignments in bytes (ptr_align). Float wt: DEVICE error when cuBLASLt fails or
 * has no algorithm. int8 / fp8: UNSUPPORTED without an error message instead (the caller takes the bf16
 * path), remembered in the cache. */
static edgellm_status gemm_plan(cu_ctx *c, int64_t m, int64_t n, int64_t k, el_dtype wt, int64_t ldb, int64_t ldy,
                                int al_a, int al_b, int al_c, cu_gemm_plan **out) {
    for (int i = 0; i < CU_GEMM_CACHE; i++) {
        cu_gemm_plan *p = &c->plans[i];
        if (p->used && p->m == m && p->n == n && p->k == k && p->wt == (int)wt && p->ldb == ldb && p->ldy == ldy &&
            p->align_a == al_a && p->align_b == al_b && p->align_c == al_c) {
            *out = p;
            return p->unsupported ? EDGELLM_STATUS_UNSUPPORTED : EDGELLM_STATUS_OK;
        }
    }
    cu_gemm_plan *p = &c->plans[c->plan_next];
    c->plan_next = (c->plan_next + 1) % CU_GEMM_CACHE;
    plan_destroy(p);
    memset(p, 0, sizeof *p);
    p->used = true; /* plan_destroy frees the descriptors that exist */
    p->m = m;
    p->n = n;
    p->k = k;
    p->wt = (int)wt;
    p->ldb = ldb;
    p->ldy = ldy;
    p->align_a = al_a;
    p->align_b = al_b;
    p->align_c = al_c;
    const cublasStatus_t s = plan_build(c, p);
    if (s != CUBLAS_STATUS_SUCCESS) {
        if (wt == EL_DTYPE_Q_W8A8 || wt == EL_DTYPE_Q_FP8) {
            EL_LOG_WARN("cuda matmul: no cuBLASLt %s GEMM for m=%lld n=%lld k=%lld (status %d): bf16 path",
                        wt == EL_DTYPE_Q_W8A8 ? "int8" : "fp8", (long long)m, (long long)n, (long long)k, (int)s);
            p->unsupported = true;
            *out = p;
            return EDGELLM_STATUS_UNSUPPORTED;
        }
        plan_destroy(p);
        return el_err(EDGELLM_STATUS_DEVICE, "cuda matmul: cuBLASLt has no algorithm for m=%lld n=%lld k=%lld %s "
                      "(status %d)", (long long)m, (long long)n, (long long)k, el_dtype_name(wt), (int)s);
    }
    *out = p;
    return EDGELLM_STATUS_OK;
}

/* One int8 / fp8 GEMM of plan p: D (p->n, p->m, ld p->ldy) = A^T B (alpha 1, beta 0; int32 scalars for int8).
 * A refusal by cuBLASLt (NOT_SUPPORTED, INVALID_VALUE: nothing enqueued) marks the plan unsupported, is logged
 * once and returns UNSUPPORTED. */
static edgellm_status qgemm_run(cu_ctx *c, cu_gemm_plan *p, const void *a, const void *b, void *d) {
    const bool i8 = p->wt == EL_DTYPE_Q_W8A8;
    const int32_t ione = 1, izero = 0;
    const float fone = 1.f, fzero = 0.f;
    const cublasStatus_t ls =
        cublasLtMatmul(c->lt, p->op, i8 ? (const void *)&ione : (const void *)&fone, a, p->a, b, p->b,
                       i8 ? (const void *)&izero : (const void *)&fzero, d, p->c, d, p->c, &p->algo, c->lt_ws,
                       CU_LT_WS_BYTES, c->st);
    if (ls == CUBLAS_STATUS_NOT_SUPPORTED || ls == CUBLAS_STATUS_INVALID_VALUE) {
        EL_LOG_WARN("cuda matmul: cuBLASLt refused the %s GEMM m=%lld n=%lld k=%lld (status %d): bf16 path",
                    i8 ? "int8" : "fp8", (long long)p->m, (long long)p->n, (long long)p->k, (int)ls);
        p->unsupported = true;
        return EDGELLM_STATUS_UNSUPPORTED;
    }
    if (ls != CUBLAS_STATUS_SUCCESS) return lt_fail(ls, "cublasLtMatmul (int8/fp8)", __FILE__, __LINE__);
    return EDGELLM_STATUS_OK;
}

/* Token counts of the int8 / fp8 GEMMs: the main GEMM takes a multiple of CU_QGEMM_TOK tokens (at least
 * CU_QGEMM_TAIL) straight into y; the remaining (or all, below CU_QGEMM_TAIL) tokens go through one GEMM of
 * CU_QGEMM_TAIL tokens, zero padded, into scratch (cuBLASLt's int8 / fp8 kernels have refused small and odd
 * token counts in past releases: PyTorch pads _int_mm to 32 rows, vLLM pads fp8 inputs to 32). */
#define CU_QGEMM_TOK 16
#define CU_QGEMM_TAIL 32

/* Prefill (m > 8) of w8a8 and static-fp8 weights on the codes themselves: x quantized exactly as
 * el_ref_qmatmul does (elk_qgemm_act), cuBLASLt GEMMs, then the scales and the bias in the reference's order
 * (elk_qepilogue_acc). w8a8: int8 x int8 -> int32 sums (exact; the main GEMM writes them into y itself, converted
 * in place): bit-identical to the reference. Static fp8 (sm_89+): e4m3 x e4m3 -> f32 (every product exact; the
 * sums differ in order and in the fp8 tensor cores' accumulation). Needs a weight mapped by weight_map (its
 * header is read there: the quants offset, static or not) and cuBLASLt's rules for these kernels: A transposed
 * ("TN"); int8: 4-byte aligned pointers, k, rows of W and leading dimensions multiples of 4; fp8: 16-byte aligned
 * pointers and leading dimensions, k and the rows of W multiples of 16. Returns UNSUPPORTED where any of this
 * does not hold or cuBLASLt refuses; then the caller's bf16 path computes all of y again (whatever was written
 * before is overwritten). */
static edgellm_status qgemm_codes(cu_ctx *c, const float *x, int64_t m, int64_t k, const void *w, el_dtype wt,
                                  int64_t n, const float *bias, float *y, int64_t ldy) {
    const bool i8 = wt == EL_DTYPE_Q_W8A8;
    if (!el_cuda_qgemm_mode || (!i8 && wt != EL_DTYPE_Q_FP8) || m > 0x7fffffff) return EDGELLM_STATUS_UNSUPPORTED;
    const cu_alloc *a = find_alloc(c, w);
    if (!a || a->qfmt != (int)wt || a->qn != n || a->qk != k || (a->qoff & 63)) return EDGELLM_STATUS_UNSUPPORTED;
    if (!i8 && (!a->qstatic || c->cc < 89)) return EDGELLM_STATUS_UNSUPPORTED; /* weight-only fp8, pre-Ada */
    if (i8 ? (k % 4 || n % 4 || ldy % 4) : (k % 16 || n % 16 || ldy % 4 || ((uintptr_t)y & 15)))
        return EDGELLM_STATUS_UNSUPPORTED;
    const int64_t m0 = m >= CU_QGEMM_TAIL ? m / CU_QGEMM_TOK * CU_QGEMM_TOK : 0, mt = m - m0; /* main, tail */
    const int64_t rows = m0 + (mt ? CU_QGEMM_TAIL : 0), ldq = (k + 15) & ~(int64_t)15; /* elk_qgemm_act's stride */
    const int64_t ldt = (n + 3) & ~(int64_t)3;                                          /* the tail's sums */
    const size_t act = (elk_qgemm_act_scratch((int)wt, rows, k) + 255) & ~(size_t)255;
    void *s = NULL;
    EL_TRY(scratch(c, act + (mt ? (size_t)ldt * CU_QGEMM_TAIL * 4 : 0), &s));
    char *xq = (char *)s, *dt = (char *)s + act;
    const void *wq = (const char *)w + a->qoff;
    float *sx = NULL;
    CU_TRY(elk_qgemm_act(c->st, x, m, rows, k, w, (int)wt, s, &sx));
    cu_gemm_plan *p = NULL;
    if (m0) {
        EL_TRY(gemm_plan(c, m0, n, k, wt, ldq, ldy, ptr_align(wq, k), ptr_align(xq, ldq), ptr_align(y, ldy * 4), &p));
        EL_TRY(qgemm_run(c, p, wq, xq, y));
        CU_TRY(elk_qepilogue_acc(c->st, y, ldy, i8, y, m0, n, ldy, w, (int)wt, sx, bias));
    }
    if (mt) {
        const char *xt = xq + m0 * ldq;
        EL_TRY(gemm_plan(c, CU_QGEMM_TAIL, n, k, wt, ldq, ldt, ptr_align(wq, k), ptr_align(xt, ldq),
                         ptr_align(dt, ldt * 4), &p));
        EL_TRY(qgemm_run(c, p, wq, xt, dt));
        CU_TRY(elk_qepilogue_acc(c->st, dt, ldt, i8, y + m0 * ldy, mt, n, ldy, w, (int)wt, sx ? sx + m0 : NULL,
                                 bias));
    }
    el_cuda_qgemm_count[i8 ? 0 : 1]++;
    return EDGELLM_STATUS_OK;
}

/* Quantized weights (kernels/quant.h layouts, kernels in src/kernels/cuda/qgemv.cu). m <= 8: the format's
 * GEMV (activation quantization in a pre-kernel on scratch). m > 8: w8a8 / static fp8 on int8 / fp8 tensor
 * cores where possible (qgemm_codes); otherwise rows of W dequantized to bf16 into scratch, at most
 * CU_QDEQ_ELEMS elements per cuBLASLt bf16 GEMM (the scratch is sized by the largest call and reused), then the
 * format's scales and the bias in an epilogue. */
#define CU_QDEQ_ELEMS ((int64_t)32 << 20)
static edgellm_status qmatmul(cu_ctx *c, const float *x, int64_t m, int64_t k, const void *w, el_dtype wt,
                              int64_t n, const float *bias, float *y, int64_t ldy) {
    const bool ggml = wt == EL_DTYPE_Q8_0 || wt == EL_DTYPE_Q4_0; /* 2-byte aligned blocks; others: 64 */
    if (m < 0 || k <= 0 || n < 0 || ldy < n || n > 0x7fffffff || ((uintptr_t)w & (ggml ? 1 : 63)) ||
        (ggml && k % 32))
        return el_err(EDGELLM_STATUS_INVALID_ARG,
                      "cuda matmul: bad %s weight or shape (m=%lld k=%lld n=%lld "
                      "ldy=%lld)",
                      el_dtype_name(wt), (long long)m, (long long)k, (long long)n, (long long)ldy);
    if (m == 0 || n == 0) return EDGELLM_STATUS_OK;
    void *s = NULL;
    elk_w4off off4;
    const int64_t g4 = m == 1 && wt == EL_DTYPE_Q_W4A16 && elk_qgemv_tc_mode == 0 ? w4_group(c, w, &off4) : 0;
    if (g4) { /* int16 x on int8 tensor cores (qmma.cu) */
        CU_TRY(elk_fused_w4a16(c->st, x, k, g4, NULL, 0.f, 1, &w, &off4, &n, &bias, &y, ELK_FG_STORE, c->n_sm, false));
        return EDGELLM_STATUS_OK;
    }
    if (m <= 8) {
        size_t need = elk_qgemv_scratch((int)wt, m, k);
        if (need) EL_TRY(scratch(c, need, &s));
        CU_TRY(elk_qgemv(c->st, x, m, k, w, (int)wt, n, bias, y, ldy, c->n_sm, s));
        return EDGELLM_STATUS_OK;
    }
    const edgellm_status qs = qgemm_codes(c, x, m, k, w, wt, n, bias, y, ldy);
    if (qs != EDGELLM_STATUS_UNSUPPORTED) return qs;
    int64_t rows = CU_QDEQ_ELEMS / k;
    if (rows >= n)
        rows = n;
    else
        rows = rows >= 64 ? rows / 64 * 64 : (rows < 1 ? 1 : rows);
    const size_t xb = ((size_t)(m * k) * 2 + 255) & ~(size_t)255, rsb = ((size_t)m * 4 + 255) & ~(size_t)255;
    EL_TRY(scratch(c, xb + rsb + (size_t)(rows * k) * 2, &s));
    char *xbf = (char *)s, *wd = (char *)s + xb + rsb;
    float *rs = (float *)((char *)s + xb);
    CU_TRY(elk_qprep_act_bf16(c->st, x, m, k, w, (int)wt, xbf, rs));
    const float alpha = 1.f, beta = 0.f;
    for (int64_t n0 = 0; n0 < n; n0 += rows) {
        const int64_t nr = n - n0 < rows ? n - n0 : rows;
        CU_TRY(elk_qdequant_bf16(c->st, w, (int)wt, n, k, n0, n0 + nr, wd));
        cu_gemm_plan *p = NULL;
        EL_TRY(gemm_plan(c, m, nr, k, EL_DTYPE_BF16, k, ldy, ptr_align(wd, k * 2), ptr_align(xbf, k * 2),
                         ptr_align(y + n0, ldy * 4), &p));
        LT_TRY(cublasLtMatmul(c->lt, p->op, &alpha, wd, p->a, xbf, p->b, &beta, y + n0, p->c, y + n0, p->c,
                              &p->algo, c->lt_ws, CU_LT_WS_BYTES, c->st));
    }
    CU_TRY(elk_qepilogue(c->st, y, m, n, ldy, w, (int)wt, rs, bias));
    el_cuda_qgemm_count[2]++;
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_matmul(el_backend *be, const float *x, int64_t m, int64_t k, const void *w, el_dtype wt,
                                int64_t n, const float *bias, float *y, int64_t ldy) {
    cu_ctx *c = ctx_of(be);
    if (el_dtype_is_quant(wt)) return qmatmul(c, x, m, k, w, wt, n, bias, y, ldy);
    if (!float_type(wt) || m < 0 || k < 0 || n < 0 || ldy < n)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda matmul: bad weight dtype %s or shape (m=%lld k=%lld n=%lld "
                      "ldy=%lld)", el_dtype_name(wt), (long long)m, (long long)k, (long long)n, (long long)ldy);
    if (m == 0 || n == 0) return EDGELLM_STATUS_OK;
    if (m <= 8) {
        CU_TRY(elk_gemv(c->st, x, m, k, w, elk_type(wt), n, bias, y, ldy, c->n_sm));
        return EDGELLM_STATUS_OK;
    }
    const void *b = x;
    if (wt != EL_DTYPE_F32) {
        size_t bytes;
        if (!el_mul_ok((size_t)m * 2, (size_t)k, &bytes))
            return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda matmul: size overflow");
        void *s = NULL;
        EL_TRY(scratch(c, bytes, &s));
        CU_TRY(elk_convert_f32(c->st, x, s, elk_type(wt), m * k));
        b = s;
    }
    int esz = wt == EL_DTYPE_F32 ? 4 : 2;
    cu_gemm_plan *p = NULL;
    EL_TRY(gemm_plan(c, m, n, k, wt, k, ldy, ptr_align(w, k * esz), ptr_align(b, k * esz), ptr_align(y, ldy * 4),
                     &p));
    float alpha = 1.f, beta = 0.f;
    LT_TRY(cublasLtMatmul(c->lt, p->op, &alpha, w, p->a, b, p->b, &beta, y, p->c, y, p->c, &p->algo, c->lt_ws,
                          CU_LT_WS_BYTES, c->st));
    if (bias) CU_TRY(elk_add_bias(c->st, y, bias, m, n, ldy));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_rope(el_backend *be, float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                              int64_t n_rot, const int32_t *pos, const float *inv_freq, float attn_scale) {
    cu_ctx *c = ctx_of(be);
    if (n_tok < 0 || n_heads < 0 || n_rot < 0 || n_rot > head_dim || (n_rot & 1))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda rope: bad shape (head_dim %lld, n_rot %lld)",
                      (long long)head_dim, (long long)n_rot);
    CU_TRY(elk_rope(c->st, x, n_tok, n_heads, head_dim, n_rot, pos, inv_freq, attn_scale));
    return EDGELLM_STATUS_OK;
}

/* KV cache types: the float types, or fp8 (e4m3) with finite positive scales */
static bool kv_type_ok(el_dtype t, float k_scale, float v_scale) {
    if (float_type(t)) return true;
    return t == EL_DTYPE_F8_E4M3 && k_scale > 0 && k_scale < INFINITY && v_scale > 0 && v_scale < INFINITY;
}
static int kv_elk(el_dtype t) { return t == EL_DTYPE_F8_E4M3 ? ELK_E4M3 : elk_type(t); }

static edgellm_status be_kv_store(el_backend *be, const float *k, const float *v, int64_t n_tok, int64_t n_head_kv,
                                  int64_t head_dim, const int32_t *slot, const int32_t *pos, void *k_cache,
                                  void *v_cache, el_dtype kv_t, float k_scale, float v_scale, int64_t cap) {
    cu_ctx *c = ctx_of(be);
    if (!kv_type_ok(kv_t, k_scale, v_scale) || n_tok < 0 || n_head_kv <= 0 || head_dim <= 0 || cap <= 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda kv_store: bad cache dtype %s (or fp8 scales) or shape",
                      el_dtype_name(kv_t));
    CU_TRY(elk_kv_store(c->st, k, v, n_tok, n_head_kv, head_dim, slot, pos, k_cache, v_cache, kv_elk(kv_t), k_scale,
                        v_scale, cap));
    return EDGELLM_STATUS_OK;
}

/* the split-KV plan of an attention call (static shapes) and its partial-result scratch */
typedef struct att_plan {
    int n_split;
    int64_t chunk;
    float *part; /* NULL when n_split == 1 */
} att_plan;
static edgellm_status plan_attention(cu_ctx *c, int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                                     int64_t cap, att_plan *pl) {
    size_t part_floats;
    elk_attention_plan(n_tok, n_head, n_head_kv, head_dim, cap, c->n_sm, &pl->n_split, &pl->chunk, &part_floats);
    void *part = NULL;
    if (part_floats) EL_TRY(scratch(c, part_floats * sizeof(float), &part));
    pl->part = (float *)part;
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_attention(el_backend *be, const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv,
                                   int64_t head_dim, const int32_t *slot, const int32_t *pos, int32_t max_pos,
                                   const void *k_cache, const void *v_cache, el_dtype kv_t, float k_scale,
                                   float v_scale, int64_t cap, float scale, float *out) {
    cu_ctx *c = ctx_of(be);
    (void)max_pos; /* grids depend on static shapes only (graph replays see new positions) */
    if (!kv_type_ok(kv_t, k_scale, v_scale) || n_tok < 0 || n_head_kv <= 0 || n_head % n_head_kv || head_dim < 1 || head_dim > 256 ||
        cap <= 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda attention: bad dtype %s or shape (heads %lld/%lld, head_dim "
                      "%lld)", el_dtype_name(kv_t), (long long)n_head, (long long)n_head_kv, (long long)head_dim);
    if (n_tok == 0) return EDGELLM_STATUS_OK;
    if (((uintptr_t)k_cache | (uintptr_t)v_cache) & 15)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda attention: the KV cache must be 16-byte aligned");
    if (elk_attn_prefill_use(n_tok, kv_elk(kv_t), head_dim)) { /* many tokens: tensor-core kernel */
        CU_TRY(elk_attention_prefill(c->st, q, n_tok, n_head, n_head_kv, head_dim, slot, pos, k_cache, v_cache,
                                     kv_elk(kv_t), cap, scale, out));
        return EDGELLM_STATUS_OK;
    }
    size_t smem = elk_attention_smem(n_head, n_head_kv, head_dim);
    if (smem > c->smem_optin)
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "cuda attention: %lld query heads per kv head x head_dim %lld needs "
                      "%zu bytes of shared memory (device: %zu)", (long long)(n_head / n_head_kv),
                      (long long)head_dim, smem, c->smem_optin);
    att_plan pl;
    EL_TRY(plan_attention(c, n_tok, n_head, n_head_kv, head_dim, cap, &pl));
    if (n_tok * n_head_kv <= CU_ATT_COUNTERS) { /* splits merge themselves (no combine kernel), PDL */
        CU_TRY(elk_attention_ex(c->st, q, n_tok, n_head, n_head_kv, head_dim, slot, pos, k_cache, v_cache,
                                kv_elk(kv_t), k_scale, v_scale, cap, scale, out, pl.n_split, pl.chunk, pl.part,
                                c->att_cnt, c->pdl));
        return EDGELLM_STATUS_OK;
    }
    CU_TRY(elk_attention(c->st, q, n_tok, n_head, n_head_kv, head_dim, slot, pos, k_cache, v_cache, kv_elk(kv_t),
                         k_scale, v_scale, cap, scale, out, pl.n_split, pl.chunk, pl.part));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_swiglu(el_backend *be, const float *gate, const float *up, float *out, int64_t n) {
    cu_ctx *c = ctx_of(be);
    CU_TRY(elk_swiglu(c->st, gate, up, out, n));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_add(el_backend *be, float *y, const float *x, int64_t n) {
    cu_ctx *c = ctx_of(be);
    CU_TRY(elk_add(c->st, y, x, n));
    return EDGELLM_STATUS_OK;
}

/* ---- fused decode ops (kernels/cuda/fused.cu, w4a16: qmma.cu) ---- */

/* The common group size of w4a16 weights w[0..n_w) the int8-mma kernels take; 0 (and the error set) if none. */
static int64_t fused_w4_group(const cu_ctx *c, int n_w, const void *const *w, elk_w4off *off, const char *op) {
    const int64_t g = w4_group(c, w[0], &off[0]);
    for (int i = 1; i < n_w; i++)
        if (w4_group(c, w[i], &off[i]) != g) {
            el_err(EDGELLM_STATUS_INVALID_ARG, "cuda %s: w4a16 weights of different group sizes", op);
            return 0;
        }
    if (!g) el_err(EDGELLM_STATUS_INVALID_ARG, "cuda %s: w4a16 weight not mapped by this backend or its group "
                   "size is not 32, 64 or 128 times a power of 2", op);
    return g;
}

/* the quantized dtypes the fused ops take (w4a16: qmma.cu; fp8, w8a8, nvfp4: fused.cu's elk_fused_q) */
static bool fused_qtype(el_dtype t) {
    return t == EL_DTYPE_Q_W4A16 || t == EL_DTYPE_Q_FP8 || t == EL_DTYPE_Q_W8A8 || t == EL_DTYPE_Q_NVFP4;
}

/* The quants offsets of fp8 / w8a8 / nvfp4 weights w[0..n_w) (n[i], k) for elk_fused_q and whether each has static
 * activation scales (fp8); INVALID_ARG when fused_quant would refuse one or the shape is not the mapped one. */
static edgellm_status fused_q_args(const cu_ctx *c, int n_w, const void *const *w, el_dtype wt, int64_t k,
                                   const int64_t *n, uint64_t *qoff, bool *st, const char *op) {
    for (int i = 0; i < n_w; i++) {
        const cu_alloc *a = fused_q_alloc(c, w[i], wt);
        if (!a || a->qk != k || a->qn != n[i])
            return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda %s: %s weight %d not mapped by this backend, not of shape "
                          "(%lld, %lld) or k above %d", op, el_dtype_name(wt), i, (long long)n[i], (long long)k,
                          ELK_FQ_MAX_K);
        qoff[i] = a->qoff;
        st[i] = wt == EL_DTYPE_Q_FP8 && a->qstatic;
    }
    return EDGELLM_STATUS_OK;
}

/* The codes scratch of elk_fused_q where the codes are made once per op (elk_fq_pre 1, or -1 and k >= elk_fq_pre_min_k),
 * else NULL. The scratch is reused: the codes pre-kernel of the next op writes only after its PDL wait, when this
 * op's GEMV has finished. */
static edgellm_status fused_q_pre(cu_ctx *c, int64_t k, void **pre) {
    *pre = NULL;
    const bool use = elk_fq_pre > 0 || (elk_fq_pre < 0 && k >= elk_fq_pre_min_k);
    return use ? scratch(c, elk_fused_q_pre_bytes(k), pre) : EDGELLM_STATUS_OK;
}

static edgellm_status be_norm_matmul(el_backend *be, const float *x, int64_t k, const float *norm_w, float eps,
                                     int n_w, const void *const *w, el_dtype wt, const int64_t *n,
                                     const float *const *bias, float *const *y, bool accumulate) {
    cu_ctx *c = ctx_of(be);
    if ((!float_type(wt) && !fused_qtype(wt)) || k <= 0 || n_w < 1 || n_w > 3)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda norm_matmul: bad weight dtype %s or shape (k=%lld, %d weights)",
                      el_dtype_name(wt), (long long)k, n_w);
    for (int i = 0; i < n_w; i++)
        if (n[i] < 0 || n[i] > 0x7fffffff)
            return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda norm_matmul: bad n %lld", (long long)n[i]);
    const int mode = accumulate ? ELK_FG_ACCUM : ELK_FG_STORE;
    if (wt == EL_DTYPE_Q_W4A16) {
        elk_w4off off[3];
        const int64_t g = fused_w4_group(c, n_w, w, off, "norm_matmul");
        if (!g) return EDGELLM_STATUS_INVALID_ARG;
        CU_TRY(elk_fused_w4a16(c->st, x, k, g, norm_w, eps, n_w, w, off, n, bias, y, mode, c->n_sm, c->pdl));
        return EDGELLM_STATUS_OK;
    }
    if (!float_type(wt)) {
        uint64_t qoff[3];
        bool st[3];
        EL_TRY(fused_q_args(c, n_w, w, wt, k, n, qoff, st, "norm_matmul"));
        bool same = true;
        for (int i = 1; i < n_w; i++)
            same = same && st[i] == st[0];
        void *pre = NULL;
        EL_TRY(fused_q_pre(c, k, &pre));
        if (same) {
            CU_TRY(elk_fused_q(c->st, x, k, norm_w, eps, (int)wt, st[0], n_w, w, qoff, n, bias, y, mode, c->n_sm,
                               c->pdl, pre));
            return EDGELLM_STATUS_OK;
        }
        for (int i = 0; i < n_w; i++) /* fp8 with and without static activation scales: one launch per weight */
            CU_TRY(elk_fused_q(c->st, x, k, norm_w, eps, (int)wt, st[i], 1, &w[i], &qoff[i], &n[i],
                               bias ? &bias[i] : NULL, &y[i], mode, c->n_sm, c->pdl, pre));
        return EDGELLM_STATUS_OK;
    }
    CU_TRY(elk_fused_gemv(c->st, x, k, norm_w, eps, elk_type(wt), n_w, w, n, bias, y, mode, c->n_sm, c->pdl));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_norm_swiglu(el_backend *be, const float *x, int64_t k, const float *norm_w, float eps,
                                     const void *wg, const void *wu, el_dtype wt, int64_t n, const float *bg,
                                     const float *bu, float *out) {
    cu_ctx *c = ctx_of(be);
    if ((!float_type(wt) && !fused_qtype(wt)) || k <= 0 || n < 0 || n > 0x7fffffff)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda norm_swiglu: bad weight dtype %s or shape (k=%lld n=%lld)",
                      el_dtype_name(wt), (long long)k, (long long)n);
    const void *w[2] = {wg, wu};
    const int64_t nn[2] = {n, n};
    const float *b[2] = {bg, bu};
    float *y[2] = {out, NULL};
    if (wt == EL_DTYPE_Q_W4A16) {
        elk_w4off off[2];
        const int64_t g = fused_w4_group(c, 2, w, off, "norm_swiglu");
        if (!g) return EDGELLM_STATUS_INVALID_ARG;
        CU_TRY(elk_fused_w4a16(c->st, x, k, g, norm_w, eps, 2, w, off, nn, b, y, ELK_FG_SWIGLU, c->n_sm, c->pdl));
        return EDGELLM_STATUS_OK;
    }
    if (!float_type(wt)) {
        uint64_t qoff[2];
        bool st[2];
        EL_TRY(fused_q_args(c, 2, w, wt, k, nn, qoff, st, "norm_swiglu"));
        if (st[0] != st[1])
            return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda norm_swiglu: fp8 gate and up weights differ in having "
                          "static activation scales");
        void *pre = NULL;
        EL_TRY(fused_q_pre(c, k, &pre));
        CU_TRY(elk_fused_q(c->st, x, k, norm_w, eps, (int)wt, st[0], 2, w, qoff, nn, b, y, ELK_FG_SWIGLU, c->n_sm,
                           c->pdl, pre));
        return EDGELLM_STATUS_OK;
    }
    CU_TRY(elk_fused_gemv(c->st, x, k, norm_w, eps, elk_type(wt), 2, w, nn, b, y, ELK_FG_SWIGLU, c->n_sm, c->pdl));
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_qk_rope_kv(el_backend *be, float *q, float *k, const float *v, int64_t n_tok, int64_t n_head,
                                    int64_t n_head_kv, int64_t head_dim, const float *q_norm, const float *k_norm,
                                    float eps, int64_t n_rot, const int32_t *pos, const float *inv_freq,
                                    float attn_scale, const int32_t *slot, void *k_cache, void *v_cache,
                                    el_dtype kv_t, int64_t cap) {
    cu_ctx *c = ctx_of(be);
    if (!float_type(kv_t) || n_tok < 0 || n_head < 0 || n_head_kv <= 0 || head_dim <= 0 || head_dim > 1024 ||
        n_head + n_head_kv > 65535 || n_rot < 0 || n_rot > head_dim || (n_rot & 1) || cap <= 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda qk_rope_kv: bad cache dtype %s or shape (heads %lld/%lld, "
                      "head_dim %lld, n_rot %lld)", el_dtype_name(kv_t), (long long)n_head, (long long)n_head_kv,
                      (long long)head_dim, (long long)n_rot);
    CU_TRY(elk_qk_rope_store(c->st, q, k, v, n_tok, n_head, n_head_kv, head_dim, q_norm, k_norm, eps, n_rot, pos,
                             inv_freq, attn_scale, slot, k_cache, v_cache, elk_type(kv_t), cap, c->pdl));
    return EDGELLM_STATUS_OK;
}

/* q/k norm + RoPE + KV store inside the decode attention kernel (one launch less per layer); shapes the fused
 * kernel does not take run the two ops */
static edgellm_status be_rope_attention(el_backend *be, float *q, float *k, const float *v, int64_t n_tok,
                                        int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float *q_norm,
                                        const float *k_norm, float eps, int64_t n_rot, const int32_t *pos,
                                        const float *inv_freq, float attn_scale, const int32_t *slot, void *k_cache,
                                        void *v_cache, el_dtype kv_t, int64_t cap, float scale, float *out) {
    cu_ctx *c = ctx_of(be);
    const bool ok = float_type(kv_t) && n_tok > 0 && n_head_kv > 0 && n_head % n_head_kv == 0 && cap > 0 &&
                    n_rot >= 0 && n_rot <= head_dim && !(n_rot & 1) && n_tok * n_head_kv <= CU_ATT_COUNTERS &&
                    !(((uintptr_t)k_cache | (uintptr_t)v_cache) & 15) &&
                    !elk_attn_prefill_use(n_tok, kv_elk(kv_t), head_dim) &&
                    elk_attention_rope_ok(kv_elk(kv_t), n_head, n_head_kv, head_dim);
    if (!ok) {
        EL_TRY(be_qk_rope_kv(be, q, k, v, n_tok, n_head, n_head_kv, head_dim, q_norm, k_norm, eps, n_rot, pos,
                             inv_freq, attn_scale, slot, k_cache, v_cache, kv_t, cap));
        return be_attention(be, q, n_tok, n_head, n_head_kv, head_dim, slot, pos, 0, k_cache, v_cache, kv_t, 1.f,
                            1.f, cap, scale, out);
    }
    att_plan pl;
    EL_TRY(plan_attention(c, n_tok, n_head, n_head_kv, head_dim, cap, &pl));
    CU_TRY(elk_attention_rope(c->st, q, k, v, n_tok, n_head, n_head_kv, head_dim, q_norm, k_norm, eps, n_rot, pos,
                              inv_freq, attn_scale, slot, k_cache, v_cache, kv_elk(kv_t), cap, scale, out, pl.n_split,
                              pl.chunk, pl.part, c->att_cnt, c->pdl));
    return EDGELLM_STATUS_OK;
}

/* ---- graphs ------------------------------------------------------------------------------------ */

static cu_graph *graph_find(cu_ctx *c, int key) {
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].key == key) return &c->graphs[i];
    return NULL;
}

static edgellm_status be_graph_begin(el_backend *be, int key) {
    cu_ctx *c = ctx_of(be);
    if (c->capturing) return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: graph %d: a capture is already running", key);
    if (!graph_find(c, key) && c->n_graphs == CU_MAX_GRAPHS)
        return el_err(EDGELLM_STATUS_LIMIT, "cuda: more than %d graphs", CU_MAX_GRAPHS);
    CU_TRY(cudaStreamBeginCapture(c->st, cudaStreamCaptureModeRelaxed));
    c->capturing = true;
    return EDGELLM_STATUS_OK;
}

static edgellm_status be_graph_end(el_backend *be, int key) {
    cu_ctx *c = ctx_of(be);
    if (!c->capturing) return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: graph %d: no capture running", key);
    c->capturing = false;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->st, &g);
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        return cu_fail(e, __FILE__, __LINE__);
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) return cu_fail(e, __FILE__, __LINE__);
    cu_graph *slot = graph_find(c, key);
    if (slot) {
        cudaGraphExecDestroy(slot->exec);
    } else {
        slot = &c->graphs[c->n_graphs++];
        slot->key = key;
    }
    slot->exec = exec;
    return EDGELLM_STATUS_OK;
}

static bool be_graph_has(el_backend *be, int key) { return graph_find((cu_ctx *)be->ctx, key) != NULL; }

static edgellm_status be_graph_launch(el_backend *be, int key) {
    cu_ctx *c = ctx_of(be);
    cu_graph *g = graph_find(c, key);
    if (!g) return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: no graph under key %d", key);
    CU_TRY(cudaGraphLaunch(g->exec, c->st));
    return EDGELLM_STATUS_OK;
}

static uint64_t be_peak_memory(el_backend *be) { return ((cu_ctx *)be->ctx)->peak_bytes; }

static const char *be_name(el_backend *be) {
    (void)be;
    return "cuda";
}

static void be_free(el_backend *be) {
    if (!be) return;
    cu_ctx *c = (cu_ctx *)be->ctx;
    if (c) {
        cudaSetDevice(c->dev);
        if (c->st) {
            if (c->capturing) {
                cudaGraph_t g = NULL;
                if (cudaStreamEndCapture(c->st, &g) == cudaSuccess && g) cudaGraphDestroy(g);
            }
            cudaStreamSynchronize(c->st);
        }
        for (int i = 0; i < c->n_graphs; i++) cudaGraphExecDestroy(c->graphs[i].exec);
        for (int i = 0; i < CU_GEMM_CACHE; i++) plan_destroy(&c->plans[i]);
        for (size_t i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i].p);
        for (size_t i = 0; i < c->n_retired; i++) cudaFree(c->retired[i]);
        if (c->scratch) cudaFree(c->scratch);
        if (c->att_cnt) cudaFree(c->att_cnt);
        if (c->samp_ws) cudaFree(c->samp_ws);
        if (c->lt_ws) cudaFree(c->lt_ws);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->up_stage) cudaFreeHost(c->up_stage);
        if (c->down_stage) cudaFreeHost(c->down_stage);
        if (c->dl_slot) cudaFreeHost(c->dl_slot);
        for (int i = 0; i < 2; i++)
            if (c->dl_ev[i]) cudaEventDestroy(c->dl_ev[i]);
        if (c->st) cudaStreamDestroy(c->st);
        el_free(c->allocs);
        el_free(c->retired);
        el_free(c);
    }
    el_free(be);
}

static_assert(sizeof(el_sample_row) == sizeof(elk_sample_row) && offsetof(el_sample_row, u) == offsetof(elk_sample_row, u),
              "el_sample_row and elk_sample_row differ");
static edgellm_status be_sample(el_backend *be, const float *logits, int64_t rows, int64_t n_vocab, int64_t ld,
                                const el_sample_row *params, int32_t *ids) {
    cu_ctx *c = ctx_of(be);
    if (rows < 0 || n_vocab < 1 || n_vocab > 0x7fffffff || ld < n_vocab)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda sample: bad shape (rows %lld, n_vocab %lld, ld %lld)",
                      (long long)rows, (long long)n_vocab, (long long)ld);
    CU_TRY(elk_sample(c->st, logits, rows, n_vocab, ld, (const elk_sample_row *)params, ids, c->samp_ws,
                      CU_SAMPLE_ROWS));
    return EDGELLM_STATUS_OK;
}

static const el_backend_i cuda_iface = {
    be_name,      be_free,      be_alloc,     be_dealloc,       be_weight_map,   be_upload,     be_download,
    be_memset0,   be_sync,      be_embed,     be_rmsnorm,       be_matmul,       be_rope,       be_kv_store,
    be_attention, be_swiglu,    be_add,       be_graph_begin,   be_graph_end,    be_graph_has,  be_graph_launch,
    be_peak_memory, be_sample,
    be_norm_matmul, be_norm_swiglu, be_qk_rope_kv,
    be_fused_quant,
    NULL, /* weight_map_rows: weight_map (the embedding table is read on the device too) */
    be_rope_attention,
    be_download_begin, be_download_end, be_feed_tokens,
};

static edgellm_status create_fail(el_backend *be, cudaError_t e, const char *file, int line) {
    edgellm_status s = cu_fail(e, file, line);
    char msg[600];
    snprintf(msg, sizeof msg, "%s", edgellm_last_error());
    be_free(be);
    return el_err(s, "%s", msg);
}

extern "C" edgellm_status el_backend_cuda_create(const el_backend_params *p, el_backend **out) {
    *out = NULL;
    int dev = p ? p->device : 0;
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0) {
        cudaGetLastError();
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "cuda: no CUDA device (%s)",
                      e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    if (dev < 0 || dev >= n_dev)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "cuda: device %d out of range (%d devices)", dev, n_dev);
    el_backend *be = (el_backend *)el_calloc(1, sizeof *be);
    cu_ctx *c = (cu_ctx *)el_calloc(1, sizeof *c);
    if (!be || !c) {
        el_free(be);
        el_free(c);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "cuda: backend");
    }
    be->iface = cuda_iface;
    be->ctx = c;
    c->dev = dev;
    if ((e = cudaSetDevice(dev)) != cudaSuccess) return create_fail(be, e, __FILE__, __LINE__);
    tl_dev = dev;
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess) return create_fail(be, e, __FILE__, __LINE__);
    c->n_sm = prop.multiProcessorCount;
    c->cc = prop.major * 10 + prop.minor;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    c->pdl = prop.major >= 9 && !getenv("EDGELLM_NO_PDL");
    const char *nr = getenv("EDGELLM_NO_ROPE_ATT"); /* A/B: qk_rope_kv and attention as two kernels */
    if (nr && strcmp(nr, "0")) be->iface.rope_attention = NULL;
    /* A/B switches of the w4a16 decode path (tests/gpu/ab.sh): EDGELLM_NO_QFUSED=1 runs the unfused op chain
     * for w4a16 layers; EDGELLM_QGEMV_MODE=1 / 2 picks the fp32-FMA / bf16 tensor-core GEMV at m = 1 too */
    const char *nq = getenv("EDGELLM_NO_QFUSED");
    if (nq && strcmp(nq, "0")) be->iface.fused_quant = NULL;
    /* fp8 layers run fused on sm_89+, where every block converts x to e4m3 with the hardware conversion (H200,
     * Llama-3.2-1B static fp8: 764 tok/s fused, 708-716 on the op chain; with the scalar conversion the fused
     * kernel ran 527 tok/s, so older devices keep the chain); EDGELLM_FUSED_FP8=0 / 1 overrides (A/B) */
    const char *f8 = getenv("EDGELLM_FUSED_FP8");
    c->fused_fp8 = f8 ? !strcmp(f8, "1") : c->cc >= 89;
    /* EDGELLM_CUDA_QGEMM=0: w8a8 / static-fp8 prefill on the bf16 GEMM of dequantized weights (A/B) */
    const char *qg = getenv("EDGELLM_CUDA_QGEMM");
    if (qg && !strcmp(qg, "0")) el_cuda_qgemm_mode = 0;
    const char *qm = getenv("EDGELLM_QGEMV_MODE");
    if (qm && (qm[0] == '1' || qm[0] == '2') && !qm[1]) elk_qgemv_tc_mode = qm[0] - '0';
    /* w4a16 decode: clusters of 2 blocks convert x once per cluster (sm_90+); EDGELLM_QMMA_CLUSTER=1..4 (A/B) */
    const char *qc = getenv("EDGELLM_QMMA_CLUSTER");
    elk_qmma_cluster = c->cc < 90 ? 1 : qc && qc[0] >= '1' && qc[0] <= '4' && !qc[1] ? qc[0] - '0' : 2;
    const char *fd = getenv("EDGELLM_FG_DEPTH"); /* A/B: weight vectors in flight per thread, fused float GEMVs */
    if (fd && (!strcmp(fd, "2") || !strcmp(fd, "4"))) elk_fg_depth = atoi(fd);
    const char *fp = getenv("EDGELLM_FQ_PRE"); /* A/B: fused w8a8 / static fp8 codes once per op (k_fq_pre) */
    if (fp && (!strcmp(fp, "0") || !strcmp(fp, "1"))) elk_fq_pre = fp[0] - '0';
    const char *fk = getenv("EDGELLM_FQ_PRE_MINK"); /* A/B: the smallest k of the codes pre-kernel (default mode) */
    if (fk && atoi(fk) > 0) elk_fq_pre_min_k = atoi(fk);
    const char *fs = getenv("EDGELLM_FQ_SLOW_CODES"); /* A/B: the fused w8a8 / fp8 codes prologue, per-pass loops */
    if (fs && !strcmp(fs, "1")) elk_fq_slow_codes = 1;
    const char *ac = getenv("EDGELLM_ATT_CHUNK"); /* A/B: the smallest split-KV chunk of decode attention */
    if (ac && (!strcmp(ac, "16") || !strcmp(ac, "32") || !strcmp(ac, "64") || !strcmp(ac, "128") || !strcmp(ac, "256")))
        elk_attn_min_chunk = atoi(ac);
    const char *rl = getenv("EDGELLM_ATT_ROPE_LATE"); /* A/B: rope attention loads each raw head when it norms it */
    if (rl && !strcmp(rl, "1")) elk_attn_rope_late = 1;
    const char *la = getenv("EDGELLM_ATT_LANE"); /* A/B: 0 = decode attention scores a position per warp */
    if (la && (!strcmp(la, "0") || !strcmp(la, "1"))) elk_attn_lane_scores = la[0] - '0';
    const char *pl = getenv("EDGELLM_PDL_LATE"); /* A/B: when attention / the fused GEMVs let the next kernel launch */
    if (pl && pl[0] >= '0' && pl[0] <= '7' && !pl[1]) elk_pdl_late = pl[0] - '0';
    if ((e = cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking)) != cudaSuccess)
        return create_fail(be, e, __FILE__, __LINE__);
    if ((e = cudaMallocHost((void **)&c->up_stage, CU_STAGE_BYTES)) != cudaSuccess ||
        (e = cudaMallocHost((void **)&c->dl_slot, 2 * EL_DOWNLOAD_SLOT)) != cudaSuccess)
        return create_fail(be, e, __FILE__, __LINE__);
    for (int i = 0; i < 2; i++)
        if ((e = cudaEventCreateWithFlags(&c->dl_ev[i], cudaEventDisableTiming)) != cudaSuccess)
            return create_fail(be, e, __FILE__, __LINE__);
    if ((e = cudaMalloc(&c->lt_ws, CU_LT_WS_BYTES)) != cudaSuccess) return create_fail(be, e, __FILE__, __LINE__);
    cublasStatus_t ls = cublasLtCreate(&c->lt);
    if (ls != CUBLAS_STATUS_SUCCESS) {
        c->lt = NULL;
        be_free(be);
        return el_err(EDGELLM_STATUS_DEVICE, "cuda: cublasLtCreate failed (status %d)", (int)ls);
    }
    if ((e = cudaMalloc((void **)&c->att_cnt, CU_ATT_COUNTERS * sizeof(unsigned))) != cudaSuccess ||
        (e = cudaMemsetAsync(c->att_cnt, 0, CU_ATT_COUNTERS * sizeof(unsigned), c->st)) != cudaSuccess)
        return create_fail(be, e, __FILE__, __LINE__);
    if ((e = cudaMalloc(&c->samp_ws, elk_sample_scratch_bytes(CU_SAMPLE_ROWS))) != cudaSuccess)
        return create_fail(be, e, __FILE__, __LINE__);
    c->cur_bytes = c->peak_bytes =
        CU_LT_WS_BYTES + CU_ATT_COUNTERS * sizeof(unsigned) + elk_sample_scratch_bytes(CU_SAMPLE_ROWS);
    EL_LOG_INFO("cuda: %s, %d SMs, %.1f GiB, compute %d.%d", prop.name, c->n_sm,
                (double)prop.totalGlobalMem / (1 << 30), prop.major, prop.minor);
    *out = be;
    return EDGELLM_STATUS_OK;
}
