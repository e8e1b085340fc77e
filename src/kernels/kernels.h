/*
 * kernels.h - compute kernels: raw pointers and shapes only, no framework objects.
 *
 * edgellm_ref_*  scalar C, double accumulation, no SIMD: the oracle every other kernel is tested
 *                against (tests/unit/test_kernels.c).
 * edgellm_cpu_*  SIMD kernels with runtime dispatch (AVX-512 / AVX2+FMA+F16C / scalar). Each works on
 *                a sub-range [r0, r1) of its output so that the CPU backend can split it over threads;
 *                none allocates.
 *
 * Conventions: activations are f32 row-major; a weight W of dtype wt is (n, k) row-major and a matmul
 * computes y[i, j] = sum_k x[i, k] * W[j, k] (+ bias[j]), i.e. y = x W^T as torch.nn.Linear.
 * The KV cache of one layer is (n_slot, n_head_kv, cap, head_dim) in kv_t (F32, F16, BF16 or F8_E4M3).
 * F8_E4M3 (fp8 KV cache) stores e4m3(k / k_scale) and e4m3(v / v_scale) (x / scale in f32, then the
 * saturating RNE conversion of el_f32_to_e4m3, kernels/e4m3.h) and reads e4m3 * scale; k_scale and
 * v_scale are the layer's calibrated scales (> 0). The float cache types ignore them.
 */
#ifndef EL_KERNELS_H
#define EL_KERNELS_H

#include "core/core.h"

/* ---- reference kernels ---------------------------------------------------------------------- */

/* y (m, n) = x (m, k) W^T + bias; bias may be NULL; bias dtype f32. */
void edgellm_ref_matmul(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        const float *bias, float *y);
/* y (rows, dim) = x / sqrt(mean(x^2) + eps) * w; w of dtype wt; y may alias x. */
void edgellm_ref_rmsnorm(const float *x, const void *w, el_dtype wt, int64_t rows, int64_t dim, float eps,
                         float *y);
/* out (n, dim) = table[ids[i]] converted to f32. */
void edgellm_ref_embed(const int32_t *ids, int64_t n, const void *table, el_dtype tt, int64_t dim, float *out);
/* HF rotate_half RoPE in place on x (n_tok, n_heads, head_dim): for each token t, head h and
 * i < n_rot/2, with a = pos[t] * inv_freq[i] (computed in float as HF: freqs = pos * inv_freq in fp32):
 *   x1 = x[i], x2 = x[i + n_rot/2]
 *   x[i]           = x1 * cos(a) * s - x2 * sin(a) * s
 *   x[i + n_rot/2] = x2 * cos(a) * s + x1 * sin(a) * s        (s = attn_scale)
 * dims >= n_rot are left as they are. */
void edgellm_ref_rope(float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, const float *inv_freq, float attn_scale);
/* Writes k, v (n_tok, n_head_kv, head_dim) into the cache of the layer at [slot[t], h, pos[t], :]. */
void edgellm_ref_kv_store(const float *k, const float *v, int64_t n_tok, int64_t n_head_kv, int64_t head_dim,
                          const int32_t *slot, const int32_t *pos, void *k_cache, void *v_cache,
                          el_dtype kv_t, float k_scale, float v_scale, int64_t cap);
/* Causal attention over the cache: token t (query q[t], (n_head, head_dim)) attends to positions
 * 0..pos[t] of its slot; GQA: q head h uses kv head h / (n_head / n_head_kv).
 * out (n_tok, n_head, head_dim) = softmax(q k^T * scale) v. */
void edgellm_ref_attention(const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                           const int32_t *slot, const int32_t *pos, const void *k_cache, const void *v_cache,
                           el_dtype kv_t, float k_scale, float v_scale, int64_t cap, float scale, float *out);
/* out[i] = silu(gate[i]) * up[i], n elements. out may alias gate. */
void edgellm_ref_swiglu(const float *gate, const float *up, float *out, int64_t n);
/* y[i] += x[i] */
void edgellm_ref_add(float *y, const float *x, int64_t n);

/* ---- CPU SIMD kernels ------------------------------------------------------------------------- */
/* x86-64: SCALAR < AVX2 < AVX512; aarch64: SCALAR < NEON (el_cpu_isa_ok tells which this CPU runs) */
typedef enum el_cpu_isa { EL_ISA_SCALAR = 0, EL_ISA_AVX2 = 1, EL_ISA_AVX512 = 2, EL_ISA_NEON = 3 } el_cpu_isa;
#define EL_ISA_COUNT 4
el_cpu_isa el_cpu_isa_detect(void); /* best ISA this CPU supports (cpuid + xgetbv)            */
const char *el_cpu_isa_name(el_cpu_isa isa);
bool el_cpu_isa_ok(el_cpu_isa isa); /* this CPU runs the kernels of isa (scalar always)        */
/* Instruction-set extensions beyond the ISA levels (raw cpuid bits, read once; the OS register state they
 * need is that of the ISA level they are used with: AVX-VNNI with AVX2, the AVX-512 ones with AVX512). */
typedef enum el_cpu_feat {
    EL_FEAT_AVX512_VNNI, /* cpuid 7.0 ecx bit 11: vpdpbusd / vpdpwssd on zmm      */
    EL_FEAT_AVX512_BF16, /* cpuid 7.1 eax bit 5: vdpbf16ps                         */
    EL_FEAT_AVX_VNNI,    /* cpuid 7.1 eax bit 4: VEX vpdpbusd / vpdpwssd on ymm      */
    EL_FEAT_DOTPROD,     /* aarch64 HWCAP_ASIMDDP (ARMv8.2 SDOT / UDOT)              */
} el_cpu_feat;
bool el_cpu_has(el_cpu_feat f);
/* Forces a lower ISA (tests); returns the one in effect (the best when isa is not el_cpu_isa_ok). Until
 * called, the kernels use the best ISA, or EDGELLM_CPU_ISA=scalar|avx2|avx512|neon when set and available. */
el_cpu_isa el_cpu_isa_set(el_cpu_isa isa);

/* Bytes of scratch per thread the matmul kernel wants for (m, k): 0 for dense f32/f16/bf16. */
size_t edgellm_cpu_matmul_scratch(int64_t m, int64_t k, el_dtype wt);
/* Rows j in [n0, n1) of y = x W^T + bias (all m rows of x). */
void edgellm_cpu_matmul(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n0,
                        int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);
void edgellm_cpu_rmsnorm(const float *x, const void *w, el_dtype wt, int64_t r0, int64_t r1, int64_t dim,
                         float eps, float *y);
/* Tokens [t0, t1) and all heads. */
void edgellm_cpu_attention(const float *q, int64_t t0, int64_t t1, int64_t n_head, int64_t n_head_kv,
                           int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                           const void *v_cache, el_dtype kv_t, float k_scale, float v_scale, int64_t cap,
                           float scale, float *out, float *scratch /* >= cap floats */);
void edgellm_cpu_swiglu(const float *gate, const float *up, float *out, int64_t i0, int64_t i1);
/* (added) Work items [i0, i1) over (token, kv head) pairs, item = t * n_head_kv + kv_head: every q head
 * of that kv head for that token. Lets the backend split decode attention over heads. No scratch. */
void edgellm_cpu_attention_items(const float *q, int64_t i0, int64_t i1, int64_t n_head, int64_t n_head_kv,
                                 int64_t head_dim, const int32_t *slot, const int32_t *pos,
                                 const void *k_cache, const void *v_cache, el_dtype kv_t, float k_scale,
                                 float v_scale, int64_t cap, float scale, float *out);
/* (added) y[i] += x[i] for i in [i0, i1). */
void edgellm_cpu_add(float *y, const float *x, int64_t i0, int64_t i1);
/* (added) RoPE as edgellm_ref_rope on tokens [t0, t1) (fp32 cosf/sinf). */
void edgellm_cpu_rope(float *x, int64_t t0, int64_t t1, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, const float *inv_freq, float attn_scale);

/* (added) The ISA the edgellm_cpu_* kernels use now (the best detected, or what el_cpu_isa_set forced). */
el_cpu_isa el_cpu_isa_get(void);

/* (added) Weight-only / float-activation quantized matmul (w4a16, fp8, nvfp4 layouts of kernels/quant.h)
 * on AVX-512 BF16, else AVX2 + FMA + F16C (src/kernels/cpu/qfloat*.c). Per matmul call: qf_prep_bytes
 * (0 = not handled on this CPU / ISA / layout: run el_ref_qmatmul instead), qf_prep once over all rows
 * [0, m) of x, in any row ranges [i0, i1) (x (m, k) -> a 64-byte aligned buffer of that size: the
 * activations as bf16 hi + lo or int8 limbs for small m, int16 for w4a16 prefill; per ISA), then qf_matmul
 * on any row ranges [n0, n1) of W, e.g. one per thread, each with its own scratch of qf_scratch bytes
 * (prefill: expanded / dequantized rows of W).
 * Matches el_ref_qmatmul to NMSE < 1e-6 (tests/unit/test_qkernels_float.c). */
size_t edgellm_cpu_qf_prep_bytes(const void *w, el_dtype wt, int64_t m, int64_t k);
size_t edgellm_cpu_qf_scratch(const void *w, el_dtype wt, int64_t m, int64_t k);
void edgellm_cpu_qf_prep(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t i0, int64_t i1,
                         void *prep);
void edgellm_cpu_qf_matmul(const float *x, const void *prep, int64_t m, int64_t k, const void *w, el_dtype wt,
                           int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);

/* (added) Int8-activation quantized matmul (w8a8, q8_0, q4_0 layouts of kernels/quant.h) on AVX-512 VNNI,
 * else AVX2 (src/kernels/cpu/qint8*.c), bit-exact with el_ref_qmatmul. qmm_i8_supported false (other CPU / ISA,
 * ggml k not a multiple of 32): run el_ref_qmatmul instead. Per matmul call: qmm_i8_quantize x (m, k)
 * into a 64-byte aligned buffer of qmm_i8_act_bytes (ONCE, rows [i0, i1) per thread if split), then
 * qmm_i8 on any row ranges [n0, n1) of W (multiples of 16 rows keep whole tiles), each with its own
 * per-thread scratch of qmm_i8_scratch bytes (no alignment needed). */
bool edgellm_cpu_qmm_i8_supported(el_dtype wt, int64_t k);
size_t edgellm_cpu_qmm_i8_act_bytes(el_dtype wt, int64_t m, int64_t k);
size_t edgellm_cpu_qmm_i8_scratch(el_dtype wt, int64_t m, int64_t k);
void edgellm_cpu_qmm_i8_quantize(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                                 int64_t i1, void *act);
void edgellm_cpu_qmm_i8(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n, int64_t n0,
                        int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);

/* ---- thread pool (created once, reused; no allocation per call) ------------------------------ */
typedef struct el_threadpool el_threadpool;
el_threadpool *el_threadpool_create(int n_threads);
void el_threadpool_free(el_threadpool *tp);
int el_threadpool_size(const el_threadpool *tp);
/* Runs fn(ctx, ith, nth) on every thread (ith = 0..nth-1, the caller is thread 0) and waits. */
typedef void (*el_task_fn)(void *ctx, int ith, int nth);
void el_threadpool_run(el_threadpool *tp, el_task_fn fn, void *ctx);

#endif
