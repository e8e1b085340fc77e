/* export_internal.h - shared by export (src/export) and the engine builder (src/engine). */
#ifndef EL_EXPORT_INTERNAL_H
#define EL_EXPORT_INTERNAL_H

#include "edgellm/model.h"
#include "models/models.h"

#define EL_EXPORT_FORMAT_VERSION 1

/* Files copied verbatim from the checkpoint to the export and from the export to the engine. */
extern const char *const el_export_aux_files[];
edgellm_status el_copy_aux_files(const char *src_dir, const char *dst_dir);

/* INVALID_ARG when out names the same directory as in (an --overwrite would delete the input). */
edgellm_status el_check_distinct_dirs(const char *in, const char *out);

/* "fp32", "fp16", "bf16" (others: el_dtype_name). */
const char *el_weight_dtype_user_name(el_dtype t);

/* Loads dir/config.json (+ generation_config.json when present) and parses the hparams.
 * *cfg (and *gen when gen != NULL; may be NULL) are freed by the caller with cJSON_Delete. */
struct cJSON;
edgellm_status el_load_model_config(const char *dir, struct cJSON **cfg, struct cJSON **gen, el_hparams *hp);

/* The expected tensors of hp matched against a safetensors file, in el_model_visit_tensors order. */
typedef struct el_export_item {
    const el_st_tensor *src;
    const char *name; /* canonical (owned by the plan) */
    int n_dims;
    el_dtype dst;     /* filled by the caller */
} el_export_item;
typedef struct el_export_plan {
    char **canon; /* (n_src) */
    int64_t n_src;
    el_export_item *items;
    int64_t n_items;
} el_export_plan;
/* Fails naming the tensor when one is missing, has the wrong shape or a non-float dtype.
 * what: "checkpoint" / "export" (for messages). warn_extra: log unexpected tensors. */
edgellm_status el_export_plan_make(const el_hparams *hp, const el_st_file *st, const char *what, bool warn_extra,
                                   el_export_plan *plan);
void el_export_plan_free(el_export_plan *p);

/* Quantized export (quant_export.c): true when p asks for a quantization scheme or hf_dir is a
 * pre-quantized checkpoint (config.json has quantization_config). */
bool el_export_is_quant(const char *hf_dir, const edgellm_export_params *p);
edgellm_status el_export_quant(const char *hf_dir, const char *out_dir, const edgellm_export_params *p);

#endif
