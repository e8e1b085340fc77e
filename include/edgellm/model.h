/*
 * model.h - export (HF checkpoint -> exported model dir) and engine build (export -> engine dir).
 *
 *   edgellm_export_params ep = edgellm_export_params_default();
 *   ep.dtype = "bf16";
 *   edgellm_export("hf_dir", "export_dir", &ep);
 *   edgellm_build_params bp = edgellm_build_params_default();
 *   edgellm_build("export_dir", "engine_dir", &bp);
 *
 * Both write into a temporary sibling directory and rename it into place only when complete, so a
 * failed run never leaves a half-written output that looks finished.
 */
#ifndef EDGELLM_MODEL_H
#define EDGELLM_MODEL_H

#include "edgellm/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgellm_export_params {
    const char *dtype;        /* "fp32", "fp16", "bf16"; NULL = keep the checkpoint's dtype      */
    const char *quantization; /* NULL or "none" (others: quantization issue)                     */
    bool overwrite;           /* replace an existing output dir (default false)                  */
    bool progress;            /* progress bar on stderr (default false)                          */
    const char *format;       /* NULL or "hf" (export dir, default); "gguf": out_dir is a .gguf FILE
                                 for llama.cpp, quantization f16 (default), bf16, f32, q8_0, q4_0   */
    /* quantized HF exports (docs/quantization.md); quantization: "fp16", "bf16", "fp8", "int8_sq",
     * "int4_awq", "int4_rtn", "int4_gptq", "nvfp4" */
    int32_t group_size;                 /* int4 group size: 32, 64, 128 (default 128)                  */
    float sq_alpha;                     /* SmoothQuant / migration strength (default 0.5)               */
    const char *lm_head_quantization;   /* NULL/"none", "fp8", "int8", "int4_awq", "nvfp4"             */
    const char *const *exclude;         /* glob patterns on canonical tensor names (not quantized)      */
    int32_t n_exclude;
    const char *kv_cache_quantization;  /* NULL/"none" or "fp8": per-layer K/V scales from calibration */
    const char *calib_file;             /* text or JSONL ({"text": ...} per line); NULL = shipped slice */
    int32_t calib_samples;              /* default 512                                                 */
    int32_t calib_seq_len;              /* default 512                                                 */
    const char *calib_algorithm;        /* "max" (default) or "percentile"                             */
    const char *calib_backend;          /* where calibration runs: NULL/"cpu" (default) or "cuda"       */
} edgellm_export_params;
edgellm_export_params edgellm_export_params_default(void);

/* Reads config.json + (sharded) safetensors + tokenizer files from hf_dir and writes out_dir.
 * Errors: IO (missing/unreadable), FORMAT (corrupt safetensors/config), UNSUPPORTED (architecture,
 * dtype), INVALID_ARG. */
edgellm_status edgellm_export(const char *hf_dir, const char *out_dir, const edgellm_export_params *p);

typedef struct edgellm_build_params {
    const char *backend;           /* "cpu" (default) or "cuda"                                  */
    int32_t max_batch_size;        /* default 4                                                  */
    int32_t max_input_len;         /* default 1024                                               */
    int32_t max_kv_cache_capacity; /* default 4096 (tokens per sequence: prompt + generated)     */
    bool overwrite;                /* default false                                              */
    const char *kv_cache_dtype;    /* "auto" (default: fp8 when the export has calibrated K/V    */
                                   /* scales, else f32 for fp32 weights, else f16), "f32",       */
                                   /* "f16", "bf16", "fp8" (e4m3 with the export's per-layer     */
                                   /* K/V scales; INVALID_ARG when the export has none)          */
} edgellm_build_params;
edgellm_build_params edgellm_build_params_default(void);

edgellm_status edgellm_build(const char *export_dir, const char *engine_dir, const edgellm_build_params *p);

/* Summary of an engine, filled by edgellm_engine_info (no weights are touched). */
typedef struct edgellm_engine_info {
    char arch[32];         /* registry name: "llama", "qwen2", "qwen3"                       */
    char backend[16];      /* "cpu", "cuda"                                                  */
    char weight_dtype[16]; /* "fp32", "fp16", "bf16", ...                                    */
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    int32_t max_batch_size, max_input_len, max_kv_cache_capacity;
    uint64_t weight_bytes; /* bytes of all weight tensors in the engine file                 */
    uint64_t file_bytes;
    bool has_tokenizer;
    bool tied_embeddings;
    char kv_cache_dtype[16];
        /* "f32", "f16", "bf16", "fp8"                                      */ /* the output head is the
                                                                                  embedding table */
} edgellm_engine_info;
edgellm_status edgellm_engine_info_read(const char *engine_dir, edgellm_engine_info *out);

#ifdef __cplusplus
}
#endif

#endif
