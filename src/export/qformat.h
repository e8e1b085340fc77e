/* qformat.h - quantized HF-style checkpoint tensors (GPTQ, AutoAWQ, ModelOpt fp8 / int8 / nvfp4) <->
 * edgellm weight layouts (kernels/quant.h). Used by export (writing and importing) and the builder
 * (conversion to the engine). docs/export-format.md documents the tensors. */
#ifndef EL_EXPORT_QFORMAT_H
#define EL_EXPORT_QFORMAT_H

#include "kernels/quant.h"
#include "models/models.h"

/* int4 weights in unpacked form: q and z in 0..15, w = (q - z) * s. Rows padded to kp = G * g
 * (padding holds q = z). */
typedef struct el_int4_mat {
    int64_t n, k, g, G, kp;
    uint8_t *q;  /* (n, kp) */
    uint8_t *z;  /* (n, G)  */
    uint16_t *s; /* (n, G) f16 */
} el_int4_mat;
edgellm_status el_int4_alloc(el_int4_mat *m, int64_t n, int64_t k, int64_t g);
void el_int4_free(el_int4_mat *m);
/* Checkpoint shapes: k padded to kp (multiple of g and 8), n padded to a multiple of 8. */
int64_t el_int4_np(int64_t n);

/* GPTQ (AutoGPTQ / transformers, checkpoint_format "gptq": stored zeros = z - 1):
 *   qweight I32 (kp/8, np)  nibble i of [r, j] = q[j, 8r + i]
 *   qzeros  I32 (G, np/8)   nibble i of [g, c] = z[8c + i, g] - 1
 *   scales  F16 (G, np)     g_idx I32 (kp) = c / g
 * AutoAWQ GEMM:
 *   qweight I32 (kp, np/8)  nibble i of [c, col] = q[8 col + order[i], c], order = 0 2 4 6 1 3 5 7
 *   qzeros  I32 (G, np/8)   same packing of z;  scales F16 (G, np) */
void el_int4_pack_gptq(const el_int4_mat *m, int32_t *qweight, int32_t *qzeros, uint16_t *scales, int32_t *g_idx);
void el_int4_pack_awq(const el_int4_mat *m, int32_t *qweight, int32_t *qzeros, uint16_t *scales);

/* The quantization_config facts the builder needs. */
typedef struct el_qconfig {
    bool quantized;
    char int4_method[8];   /* "gptq" or "awq": packing of qweight tensors                         */
    bool gptq_zeros_minus1; /* GPTQ checkpoint_format "gptq" (v1): stored zeros are z - 1         */
    int64_t group_size;     /* int4 group size (-1: per channel)                                  */
    bool desc_act;
    bool static_act;        /* w8a8: use the calibrated per-tensor input_scale                    */
    const struct cJSON *group_overrides; /* edgellm_group_size_overrides {"prefix": g} (borrowed)  */
} el_qconfig;
/* Reads config.json's quantization_config (HF GPTQ / AWQ / ModelOpt style). */
edgellm_status el_qconfig_read(const struct cJSON *cfg, el_qconfig *qc);

/* Converts the checkpoint tensors of weight `prefix` ("model.layers.0.mlp.up_proj") of shape (n, k)
 * into an engine layout: *found = false when the weight is a plain float "prefix.weight" (nothing
 * written). *out is el_aligned_alloc'ed (free with el_free_aligned). */
edgellm_status el_qweight_import(const el_st_file *st, const char *prefix, int64_t n, int64_t k,
                                 const el_qconfig *qc, bool *found, el_dtype *dt, void **out, size_t *nbytes);

/* True when the checkpoint stores `prefix` quantized (qweight, or a non-float .weight). */
bool el_qweight_present(const el_st_file *st, const char *prefix);

#endif
