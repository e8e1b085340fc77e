/*
 * fused.cuh - host launchers of the fused decode kernels (fused.cu), used by the CUDA backend's optional
 * fused ops (src/backend/backend.h). Conventions as cuda_kernels.cuh: activations f32, weights (n, k)
 * row-major F32/F16/BF16 or w4a16 (ELK_* type codes), launchers enqueue on `st` and return the launch error.
 * pdl: launch with programmatic dependent launch (sm_90+ only; the kernels wait for their predecessor
 * in the stream before they touch activations, see fused.cu).
 */
#ifndef EL_CUDA_FUSED_CUH
#define EL_CUDA_FUSED_CUH

#include <cuda_runtime.h>
#include <stdint.h>

/* elk_fused_gemv modes */
#define ELK_FG_STORE 0  /* y_i = h W_i^T + b_i                                      */
#define ELK_FG_ACCUM 1  /* y_i += h W_i^T + b_i (residual add; y_i must not alias x) */
#define ELK_FG_SWIGLU 2 /* y_0 = silu(h W_0^T + b_0) * (h W_1^T + b_1), n_w = 2, n = n_0 */

/* One row x (k) f32; h = rmsnorm(x; norm_w, eps) = x * rsqrt(mean(x^2) + eps) * norm_w (norm_w f32 (k)),
 * or h = x when norm_w is NULL. STORE/ACCUM: 1 <= n_w <= 3 weights W_i (n[i], k) of type wt, outputs y[i]
 * (n[i]), bias[i] f32 or NULL; all matrices in one launch (blocks map to (matrix, row tile)). Each block
 * reads all of x and computes the norm itself (no separate rmsnorm pass). */
cudaError_t elk_fused_gemv(cudaStream_t st, const float *x, int64_t k, const float *norm_w, float eps, int wt,
                           int n_w, const void *const *w, const int64_t *n, const float *const *bias,
                           float *const *y, int mode, int n_sm, bool pdl);

/* qmma.cu: the ops of elk_fused_gemv for ELK_Q_W4A16 weights (kernels/quant.h, 64-byte aligned) that all
 * have group size `group` (elk_w4a16_mma_ok(k, group): 32, 64 or 128 * 2^i, k up to ~80k): x
 * quantized to 16-bit integers per 128 elements, int8 tensor cores, the modes of elk_fused_gemv. The plain
 * GEMV y = x W^T + b at m = 1 is n_w = 1, no norm, ELK_FG_STORE. */
bool elk_w4a16_mma_ok(int64_t k, int64_t group);
/* Section offsets of a w4a16 weight (its el_qhdr's quants_off, scales_off, zeros_off: 0 = none), known to the
 * host from the header it uploaded; given to elk_fused_w4a16 (off: n_w entries) they spare every block a
 * header read before its first weight load. off NULL: the blocks read the headers. */
typedef struct elk_w4off {
    uint64_t quants, scales, zeros;
} elk_w4off;
cudaError_t elk_fused_w4a16(cudaStream_t st, const float *x, int64_t k, int64_t group, const float *norm_w, float eps,
                            int n_w, const void *const *w, const elk_w4off *off, const int64_t *n,
                            const float *const *bias, float *const *y, int mode, int n_sm, bool pdl);

/* fused.cu: the ops of elk_fused_gemv for ELK_Q_FP8, ELK_Q_W8A8 or ELK_Q_NVFP4 weights (kernels/quant.h; one format
 * per call, weights 16-byte aligned, the quants of w[i] at qoff[i] bytes (its header's quants_off), the rest of the
 * header read on the device). act_static (fp8): the weights have static activation scales (act_scale > 0), all of
 * them or none. Results as the op chain elk_rmsnorm -> elk_qgemv -> elk_add / elk_swiglu: w8a8 and static fp8
 * quantize h exactly as the chain (h bit-identical to elk_rmsnorm's, the codes and scales of the qgemv
 * pre-kernels; w8a8 bit-identical outputs), fp8 weight-only and nvfp4 up to float rounding order. The codes
 * formats take k <= ELK_FQ_MAX_K (the codes are staged in shared memory: k bytes, 2k for SWIGLU; above 48 KiB
 * through the kernel's opt-in limit, 99 KiB on sm_86 / sm_89, more on sm_80, sm_87, sm_90). */
#define ELK_FQ_MAX_K 49152
/* pre: device scratch of elk_fused_q_pre_bytes(k) or NULL. Given, the codes formats make their codes once per op
 * (k_fq_pre, one block per matrix, launched before the GEMV kernel) where x and the norm weight are 16-byte
 * aligned and k % 16 == 0; NULL: every block of the GEMV makes them itself. Same codes, same outputs bit for bit. */
size_t elk_fused_q_pre_bytes(int64_t k);
cudaError_t elk_fused_q(cudaStream_t st, const float *x, int64_t k, const float *norm_w, float eps, int wt,
                        bool act_static, int n_w, const void *const *w, const uint64_t *qoff, const int64_t *n,
                        const float *const *bias, float *const *y, int mode, int n_sm, bool pdl, void *pre);

/* q (n_tok, n_head, hd) and k, v (n_tok, n_head_kv, hd) f32: q and k rmsnormed per head when q_norm /
 * k_norm (f32 (hd)) are given, RoPE as elk_rope (n_rot, pos, inv_freq, attn_scale) in place on q and k,
 * then k and v written to the cache as elk_kv_store (kv_t F32/F16/BF16; positions outside [0, cap) and
 * negative slots skipped). One block per (token, head); hd <= 1024. */
cudaError_t elk_qk_rope_store(cudaStream_t st, float *q, float *k, const float *v, int64_t n_tok,
                              int64_t n_head, int64_t n_head_kv, int64_t hd, const float *q_norm,
                              const float *k_norm, float eps, int64_t n_rot, const int32_t *pos,
                              const float *inv_freq, float attn_scale, const int32_t *slot, void *k_cache,
                              void *v_cache, int kv_t, int64_t cap, bool pdl);

/* attention.cu: elk_attention (cuda_kernels.cuh) where the splits merge themselves instead of a second
 * kernel: cnt holds n_tok * n_head_kv unsigned counters, zero before the launch and zero again after it
 * (allocate them zeroed once); `part` as for elk_attention when n_split > 1. */
cudaError_t elk_attention_ex(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv,
                             int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                             const void *v_cache, int kv_t, float k_scale, float v_scale, int64_t cap, float scale,
                             float *out, int n_split, int64_t chunk, float *part, unsigned *cnt, bool pdl);
/* attention.cu: elk_qk_rope_store followed by elk_attention_ex in one kernel, for tokens of distinct slots (one
 * token per sequence: decode steps). q, k, v raw (as elk_qk_rope_store takes them; none is written), f32 / f16 /
 * bf16 caches, the staged kernel's shapes only (elk_attention_rope_ok); cnt, part, n_split, chunk as for
 * elk_attention_ex. Same values as the two kernels: the split holding pos[t] stores k (normed, rotated) and v,
 * every split rotates q itself. */
bool elk_attention_rope_ok(int kv_t, int64_t n_head, int64_t n_head_kv, int64_t head_dim);
cudaError_t elk_attention_rope(cudaStream_t st, const float *q, const float *k, const float *v, int64_t n_tok,
                               int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float *q_norm,
                               const float *k_norm, float eps, int64_t n_rot, const int32_t *pos,
                               const float *inv_freq, float attn_scale, const int32_t *slot, void *k_cache,
                               void *v_cache, int kv_t, int64_t cap, float scale, float *out, int n_split,
                               int64_t chunk, float *part, unsigned *cnt, bool pdl);

#endif
