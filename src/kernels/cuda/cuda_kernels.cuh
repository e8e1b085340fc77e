/*
 * cuda_kernels.cuh - host launchers of the CUDA kernels (the .cu files of src/kernels/cuda), used by the CUDA backend
 * (src/backend/cuda.cu). Every launcher enqueues on `st` and returns the launch error (cudaSuccess when
 * the launch was accepted); none allocates or synchronizes, so all of them can be captured in a CUDA graph.
 *
 * Shapes and semantics are those of src/kernels/kernels.h: activations f32 row-major, a weight W (n, k)
 * row-major in F32/F16/BF16, the KV cache of one layer (n_slot, n_head_kv, cap, head_dim) in F32/F16/BF16
 * or E4M3 (fp8: e4m3(x / scale) stored, e4m3 * scale read, one k_scale / v_scale per layer; the float types
 * ignore the scales). Types are passed as the el_dtype integer values (F32 = 0, F16 = 1, BF16 = 2,
 * F8_E4M3 = 7).
 */
#ifndef EL_CUDA_KERNELS_CUH
#define EL_CUDA_KERNELS_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#define ELK_F32 0
#define ELK_F16 1
#define ELK_BF16 2
#define ELK_E4M3 7

/* elementwise.cu */
cudaError_t elk_embed(cudaStream_t st, const int32_t *ids, int64_t n, const void *table, int tt, int64_t dim,
                      float *out);
/* ids[i] = sampled[i], pos[i] += 1 for i < n (a decode step's inputs from the previous step's sampled ids) */
cudaError_t elk_feed_tokens(cudaStream_t st, const int32_t *sampled, int32_t *ids, int32_t *pos, int64_t n);
cudaError_t elk_rmsnorm(cudaStream_t st, const float *x, const void *w, int wt, int64_t rows, int64_t dim,
                        float eps, float *y);
cudaError_t elk_rope(cudaStream_t st, float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                     const int32_t *pos, const float *inv_freq, float attn_scale);
cudaError_t elk_kv_store(cudaStream_t st, const float *k, const float *v, int64_t n_tok, int64_t n_head_kv,
                         int64_t head_dim, const int32_t *slot, const int32_t *pos, void *k_cache, void *v_cache,
                         int kv_t, float k_scale, float v_scale, int64_t cap);
cudaError_t elk_swiglu(cudaStream_t st, const float *gate, const float *up, float *out, int64_t n);
cudaError_t elk_add(cudaStream_t st, float *y, const float *x, int64_t n);
/* dst (m, k) in dt (F16/BF16) = src (m, k) f32, round to nearest even. */
cudaError_t elk_convert_f32(cudaStream_t st, const float *src, void *dst, int dt, int64_t n);
/* y[i * ldy + j] += bias[j] for i < m, j < n */
cudaError_t elk_add_bias(cudaStream_t st, float *y, const float *bias, int64_t m, int64_t n, int64_t ldy);

/* gemv.cu: y (m, n) row stride ldy = x (m, k) W^T + bias, for 1 <= m <= 8. BF16 weights with m >= 2 use
 * tensor cores (elk_gemv_tc_mode: 0 = that default, 1 = never, 2 = for every m). */
extern "C" int elk_gemv_tc_mode;
/* fused.cu: weight vectors per row in flight per thread in the float fused GEMVs (0 = by shape, 2, 4) */
extern "C" int elk_fg_depth;
/* fused.cu: 1 = the codes prologue of the fused w8a8 / static fp8 ops as per-pass loops (the A/B and test
 * reference of the batched one, fq_codes_rows); 0 = batched where x is aligned and k % 16 == 0 */
extern "C" int elk_fq_slow_codes;
/* cuda backend: 1 = the fused w8a8 / static fp8 ops make their activation codes once per op in a pre-kernel
 * (elk_fused_q's pre scratch; EDGELLM_FQ_PRE=1), 0 = in every block, -1 (default) = once per op where the input
 * has k >= elk_fq_pre_min_k elements (EDGELLM_FQ_PRE_MINK) */
extern "C" int elk_fq_pre;
extern "C" int elk_fq_pre_min_k;
/* w4a16 GEMV kernel choice (qgemv.cu): 0 = fp32 FMA at m = 1 (the backend takes qmma.cu's int8 tensor cores
 * where it can), bf16 tensor cores for m >= 2; 1 = fp32 FMA for every m; 2 = bf16 tensor cores for every m */
extern "C" int elk_qgemv_tc_mode;
/* qmma.cu: blocks per thread block cluster that share the x conversion of the w4a16 decode kernels (1 = no
 * clusters; 2..4 on sm_90+ devices only: the backend sets it from the device, EDGELLM_QMMA_CLUSTER overrides) */
extern "C" int elk_qmma_cluster;
cudaError_t elk_gemv(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int wt, int64_t n,
                     const float *bias, float *y, int64_t ldy, int n_sm);

/* qgemv.cu: quantized weights (layouts of src/kernels/quant.h; wt = the el_dtype value ELK_Q_*), the
 * weight pointer 64-byte aligned. Kernels read the weight's header on the device (nothing is copied back).
 * Decode, 1 <= m <= 8: y = x W^T + bias with the activation quantization of the format done exactly as
 * el_ref_qmatmul does; `scratch` (16-byte aligned) holds elk_qgemv_scratch(wt, m, k) bytes (0: unused). */
#define ELK_Q_W8A8 8
#define ELK_Q_W4A16 9
#define ELK_Q_FP8 10
#define ELK_Q_NVFP4 11
#define ELK_Q8_0 12
#define ELK_Q4_0 13
size_t elk_qgemv_scratch(int wt, int64_t m, int64_t k);
cudaError_t elk_qgemv(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int wt, int64_t n,
                      const float *bias, float *y, int64_t ldy, int n_sm, void *scratch);
/* Prefill (the backend's bf16 GEMM on dequantized weights): y = epilogue(xb Wd^T) where
 *   elk_qprep_act_bf16  xb (m, k) bf16 = the activations as the format's GEMM consumes them (w8a8: the int8
 *                       codes, static fp8: the e4m3 values, ggml: the q8_0 round trip, else x) and
 *                       rs (m) = the per-token scale (w8a8);
 *   elk_qdequant_bf16   rows [n0, n1) of W as bf16 (n1 - n0, k) (w8a8: int8 codes, fp8: e4m3 values, nvfp4:
 *                       e2m1 * block scale, w4a16 / ggml: the dequantized weight rounded to bf16);
 *   elk_qepilogue       y (m, n, ldy) scaled in place (w8a8: s_w[j] * rs[i], fp8: s_w[j] * act_scale,
 *                       nvfp4: global scale) plus bias. */
cudaError_t elk_qprep_act_bf16(cudaStream_t st, const float *x, int64_t m, int64_t k, const void *w, int wt,
                               void *xb, float *rs);
cudaError_t elk_qdequant_bf16(cudaStream_t st, const void *w, int wt, int64_t n, int64_t k, int64_t n0,
                              int64_t n1, void *dst);
cudaError_t elk_qepilogue(cudaStream_t st, float *y, int64_t m, int64_t n, int64_t ldy, const void *w, int wt,
                          const float *rs, const float *bias);
/* Prefill on int8 / fp8 tensor cores (the backend's cuBLASLt GEMM on the codes themselves):
 *   elk_qgemm_act      the GEMM's B operand, `rows` >= m token rows (rows from m on: zero padding), in `scratch`
 *                      (256-byte aligned, elk_qgemm_act_scratch(wt, rows, k) bytes): w8a8: int8 codes (rows, ldq)
 *                      and *sx = the per-token scales (inside scratch), static fp8: e4m3 codes (rows, ldq);
 *                      ldq = k rounded up to 16, zero padded; exactly el_ref_qmatmul's quantization;
 *   elk_qepilogue_acc  y (m, n, ldy) = scales * acc + bias, acc (m, n, lda) the GEMM's sums (i32: int32, w8a8;
 *                      else f32), y itself or another buffer; the reference's order: w8a8 ((float)isum * s_w[j])
 *                      * rs[i] + bias[j], fp8 sum * (s_w[j] * act_scale) + bias[j] (elk_qepilogue = in place). */
size_t elk_qgemm_act_scratch(int wt, int64_t rows, int64_t k);
cudaError_t elk_qgemm_act(cudaStream_t st, const float *x, int64_t m, int64_t rows, int64_t k, const void *w, int wt,
                          void *scratch, float **sx);
cudaError_t elk_qepilogue_acc(cudaStream_t st, const void *acc, int64_t lda, bool i32, float *y, int64_t m, int64_t n,
                              int64_t ldy, const void *w, int wt, const float *rs, const float *bias);

/* attention.cu. Split-KV attention: the cache positions of each token are cut into n_split chunks of
 * `chunk` positions (n_split * chunk >= cap); when n_split > 1, partial results go to `part` and a
 * second kernel combines them. elk_attention_plan picks (n_split, chunk) from static shapes only, so a
 * captured graph stays valid for any pos[] < cap; part_floats is the scratch size it needs. */
void elk_attention_plan(int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim, int64_t cap,
                        int n_sm, int *n_split, int64_t *chunk, size_t *part_floats);
cudaError_t elk_attention(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv,
                          int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                          const void *v_cache, int kv_t, float k_scale, float v_scale, int64_t cap, float scale,
                          float *out, int n_split, int64_t chunk, float *part);
/* Shared memory the attention kernel needs (bytes); the backend checks it against the device limit.
 * (hd 32/64/128 may use a larger staged variant, chosen only when it fits.) */
/* elk_attn_stage_mode: 0 = cp.async-staged K/V blocks where they apply, 1 = never (tests compare). */
extern "C" int elk_attn_stage_mode;
/* the smallest split-KV chunk of elk_attention_plan (positions: a multiple of 64, or 16 / 32; default 64) */
extern "C" int elk_attn_min_chunk;
/* 1 = the rope variant of decode attention reads each raw q / k head when it norms it; 0 = all requested at once */
extern "C" int elk_attn_rope_late;
/* 1 (default) = staged decode attention scores a position per thread pair, 0 = a warp per position (A/B) */
extern "C" int elk_attn_lane_scores;
/* when kernels let the next one launch (programmatic dependent launch): bit 1, decode attention only when it
 * exits; bit 2, the fused float / w8a8 / fp8 GEMVs after their own PDL wait (one kernel ahead prefetches
 * weights, not a chain of them); bit 4, the w4a16 GEMVs (qmma.cu) after theirs. Default 4: H200 A/B
 * (docs/cuda.md, session 2026-11-29 (c)): bit 4 gave Qwen3-0.6B int4 decode +5%, Llama-3.2-1B int4 +-0;
 * bits 1 and 2 help some shapes and hurt others (EDGELLM_PDL_LATE=0..7 sets it) */
extern "C" int elk_pdl_late;
size_t elk_attention_smem(int64_t n_head, int64_t n_head_kv, int64_t head_dim);

/* attention_prefill.cu: the same attention as elk_attention on tensor cores, flash-attention style, for
 * F16/BF16 caches and head_dim 64/128 (cudaErrorInvalidValue otherwise): query tiles of 64 tokens, one
 * pass per distinct slot in a tile (fast when each tile is one or two sequences: prefill).
 * elk_attn_prefill_use says whether the backend should call it (elk_attn_prefill_mode: 0 = for
 * n_tok >= 64, 1 = never, 2 = for any n_tok; tests compare). */
extern "C" int elk_attn_prefill_mode;
/* query rows per CTA: 0 = 128 when the grid still fills the device twice, else 64; 64/128 = forced */
extern "C" int elk_attn_prefill_rows;
int elk_attn_prefill_use(int64_t n_tok, int kv_t, int64_t head_dim);
cudaError_t elk_attention_prefill(cudaStream_t st, const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv,
                                  int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                                  const void *v_cache, int kv_t, int64_t cap, float scale, float *out);

#endif
