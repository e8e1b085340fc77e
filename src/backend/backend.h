/*
 * backend.h - the device interface the model graph runs on. The CPU backend is the first
 * implementation; the CUDA backend implements the same vtable (device memory, one stream, asynchronous
 * ops, optional CUDA-graph capture of a decode step).
 *
 * All pointers passed to ops are device pointers obtained from alloc() or weight_map(). Ops are
 * enqueued in order on the backend's stream; download() and sync() are the only host waits.
 * Dynamic per-step values (token ids, positions, slots) live in device buffers that the caller fills
 * with upload() before the ops, so a captured graph replays correctly with new values.
 */
#ifndef EL_BACKEND_H
#define EL_BACKEND_H

#include "core/core.h"

typedef struct el_backend el_backend;

typedef struct el_backend_params {
    int n_threads;      /* CPU: 0 = all cores                                                     */
    int device;         /* CUDA ordinal                                                           */
    bool use_reference; /* CPU: route every op to kernels/ref                                     */
    uint64_t weight_bytes; /* CPU: bytes the caller will pass to weight_map (0 = unknown; sizes the copy policy) */
    bool weights_in_file;  /* CPU: weight_map sources lie in a read-only private file mapping, so a copy may drop
                            * their pages as it goes (el_drop_pages): peak RSS then holds one copy of each weight */
} el_backend_params;

/* Per-row parameters of the optional sample op (device memory; layout of elk_sample_row, sample.cuh). */
typedef struct el_sample_row {
    float temperature;
    int32_t top_k;
    float top_p;
    int32_t reserved;
    double u; /* the uniform el_sample would draw from the request's RNG (el_sample_draws), else 0 */
} el_sample_row;

#define EL_DOWNLOAD_SLOT 4096 /* bytes of a download_begin slot */

typedef struct el_backend_i {
    const char *(*name)(el_backend *be);
    void (*free)(el_backend *be);
    /* Device memory, zeroed. */
    edgellm_status (*alloc)(el_backend *be, size_t size, void **out);
    void (*dealloc)(el_backend *be, void *p);
    /* Makes a host weight region (the engine mapping) usable by ops: the CPU returns host itself or a copy in
     * huge-page memory (el_cpu_weights_copy_policy), CUDA copies it into device memory. Freed by dealloc unless
     * *out == host; host is left as it was (the caller may drop its pages when *out != host). */
    edgellm_status (*weight_map)(el_backend *be, const void *host, size_t n, void **out);
    edgellm_status (*upload)(el_backend *be, void *dst, const void *src, size_t n);   /* async */
    edgellm_status (*download)(el_backend *be, void *dst, const void *src, size_t n); /* waits */
    edgellm_status (*memset0)(el_backend *be, void *dst, size_t n);
    edgellm_status (*sync)(el_backend *be);

    /* ---- ops (shapes as in kernels/kernels.h) ---- */
    edgellm_status (*embed)(el_backend *be, const int32_t *ids, int64_t n, const void *table, el_dtype tt,
                            int64_t dim, float *out);
    edgellm_status (*rmsnorm)(el_backend *be, const float *x, const void *w, el_dtype wt, int64_t rows,
                              int64_t dim, float eps, float *y);
    /* y (m, n) with row stride ldy = x (m, k) W^T + bias (bias f32 or NULL) */
    edgellm_status (*matmul)(el_backend *be, const float *x, int64_t m, int64_t k, const void *w, el_dtype wt,
                             int64_t n, const float *bias, float *y, int64_t ldy);
    edgellm_status (*rope)(el_backend *be, float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                           int64_t n_rot, const int32_t *pos, const float *inv_freq, float attn_scale);
    /* kv_t F32/F16/BF16, or F8_E4M3 with the layer's k_scale / v_scale (finite, > 0; kernels.h):
     * the float types ignore the scales. */
    edgellm_status (*kv_store)(el_backend *be, const float *k, const float *v, int64_t n_tok,
                               int64_t n_head_kv, int64_t head_dim, const int32_t *slot, const int32_t *pos,
                               void *k_cache, void *v_cache, el_dtype kv_t, float k_scale, float v_scale,
                               int64_t cap);
    /* max_pos: an upper bound of pos[] (host value) so kernels can size their work. */
    edgellm_status (*attention)(el_backend *be, const float *q, int64_t n_tok, int64_t n_head,
                                int64_t n_head_kv, int64_t head_dim, const int32_t *slot, const int32_t *pos,
                                int32_t max_pos, const void *k_cache, const void *v_cache, el_dtype kv_t,
                                float k_scale, float v_scale, int64_t cap, float scale, float *out);
    edgellm_status (*swiglu)(el_backend *be, const float *gate, const float *up, float *out, int64_t n);
    edgellm_status (*add)(el_backend *be, float *y, const float *x, int64_t n);

    /* (optional) decode-step graphs: begin capture / end capture under key; launch replays.
     * NULL = not supported (ops run eagerly). */
    edgellm_status (*graph_begin)(el_backend *be, int key);
    edgellm_status (*graph_end)(el_backend *be, int key);
    bool (*graph_has)(el_backend *be, int key);
    edgellm_status (*graph_launch)(el_backend *be, int key);
    /* (optional) bytes of device memory in use at peak */
    uint64_t (*peak_memory)(el_backend *be);
    /* (optional) sampling on the device: ids[r] (int32, device) = el_sample_exact (runtime/sampler.h) of
     * logits row r (rows, n_vocab; row stride ld floats; device) with params[r] (device). NULL = not
     * supported (the runtime downloads the logits and samples on the host). */
    edgellm_status (*sample)(el_backend *be, const float *logits, int64_t rows, int64_t n_vocab, int64_t ld,
                             const el_sample_row *params, int32_t *ids);
    /* ---- (optional) fused decode ops: fewer, larger kernels for one token. NULL = not supported: the
     * runtime then runs the op chain they replace. Weights F32/F16/BF16 (one wt for all weights of a
     * call), norm weights f32, activations f32, results as the chain (up to float rounding order). ----
     * norm_matmul: one row x (k); h = rmsnorm(x; norm_w, eps) (norm_w (k), or h = x when NULL); for
     * i < n_w (1..3): y[i] (n[i]) = h W_i^T + bias[i] (bias NULL or bias[i] NULL: none), or with
     * accumulate y[i] += h W_i^T + bias[i] (the residual add; y[i] must not alias x). */
    edgellm_status (*norm_matmul)(el_backend *be, const float *x, int64_t k, const float *norm_w, float eps,
                                  int n_w, const void *const *w, el_dtype wt, const int64_t *n,
                                  const float *const *bias, float *const *y, bool accumulate);
    /* norm_swiglu: one row x (k); out (n) = silu(h Wg^T + bg) * (h Wu^T + bu), h as norm_matmul,
     * Wg and Wu (n, k) in wt, bg / bu f32 or NULL. */
    edgellm_status (*norm_swiglu)(el_backend *be, const float *x, int64_t k, const float *norm_w, float eps,
                                  const void *wg, const void *wu, el_dtype wt, int64_t n, const float *bg,
                                  const float *bu, float *out);
    /* qk_rope_kv: q (n_tok, n_head, head_dim), k and v (n_tok, n_head_kv, head_dim): rmsnorm of every q
     * and k head when q_norm / k_norm (f32 (head_dim)) are given, then rope (as the op above) of q and k
     * in place, then kv_store of k and v (kv_t F32/F16/BF16 only). */
    edgellm_status (*qk_rope_kv)(el_backend *be, float *q, float *k, const float *v, int64_t n_tok, int64_t n_head,
                                 int64_t n_head_kv, int64_t head_dim, const float *q_norm, const float *k_norm,
                                 float eps, int64_t n_rot, const int32_t *pos, const float *inv_freq,
                                 float attn_scale, const int32_t *slot, void *k_cache, void *v_cache, el_dtype kv_t,
                                 int64_t cap);
    /* (optional) whether norm_matmul / norm_swiglu also take this quantized weight w (a weight_map result)
     * of dtype wt. NULL = float weights only. */
    bool (*fused_quant)(el_backend *be, const void *w, el_dtype wt);
    /* (optional) weight_map for a weight that ops only gather rows from (the embedding table when it is not
     * also the head). The CPU backend reads it in place even where weight_map copies (a copy would cost its
     * size for no decode bandwidth). NULL = weight_map. */
    edgellm_status (*weight_map_rows)(el_backend *be, const void *host, size_t n, void **out);
    /* (optional) rope_attention: qk_rope_kv then attention (out as attention with max_pos unused), for n_tok
     * tokens of distinct slots (one token per sequence: decode steps); q and k may be left rotated or raw.
     * NULL = not supported (the runtime runs the two ops). */
    edgellm_status (*rope_attention)(el_backend *be, float *q, float *k, const float *v, int64_t n_tok,
                                     int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float *q_norm,
                                     const float *k_norm, float eps, int64_t n_rot, const int32_t *pos,
                                     const float *inv_freq, float attn_scale, const int32_t *slot, void *k_cache,
                                     void *v_cache, el_dtype kv_t, int64_t cap, float scale, float *out);
    /* (optional, all three or none) decode lookahead: the runtime queues step n + 1 before it reads step n's ids.
     * download_begin queues a copy of n <= EL_DOWNLOAD_SLOT bytes of device memory (after all queued work) into
     * host slot tag (0 or 1) and returns; download_end waits for that copy and copies the slot into dst.
     * feed_tokens queues ids[i] = sampled[i], pos[i] += 1 for i < n (device int32 arrays). */
    edgellm_status (*download_begin)(el_backend *be, const void *src, size_t n, int tag);
    edgellm_status (*download_end)(el_backend *be, int tag, void *dst, size_t n);
    edgellm_status (*feed_tokens)(el_backend *be, const int32_t *sampled, int32_t *ids, int32_t *pos, int64_t n);
} el_backend_i;

struct el_backend {
    el_backend_i iface;
    void *ctx;
};

/* name: "cpu" or "cuda". UNSUPPORTED when the backend is not compiled in or has no device. */
edgellm_status el_backend_create(const char *name, const el_backend_params *p, el_backend **out);
void el_backend_free(el_backend *be);

edgellm_status el_backend_cpu_create(const el_backend_params *p, el_backend **out);
/* Whether the CPU backend's weight_map copies weights of >= 1 MiB into transparent-huge-page memory.
 * env: EDGELLM_CPU_WEIGHTS ("copy" / "map" or "mmap" force it; NULL or "" = auto). Auto copies when THP can
 * back the copy (thp) and weight_bytes is known and at most half of mem_available (bytes; 0 = unknown). */
bool el_cpu_weights_copy_policy(const char *env, uint64_t weight_bytes, uint64_t mem_available, bool thp);
#ifdef EDGELLM_HAVE_CUDA
edgellm_status el_backend_cuda_create(const el_backend_params *p, el_backend **out);
#endif

#endif
