/*
 * engine.h - the engine directory: one mmap-able weights file plus tokenizer/chat-template files.
 *
 * ENGINE DIR
 *   model.engine               the file below
 *   tokenizer.json, tokenizer_config.json, chat_template.jinja, processed_chat_template.json,
 *   generation_config.json     copied from the export when present
 *
 * model.engine (little endian; docs/engine-format.md is the byte-level spec)
 *   offset 0   char[8]  magic "EDGELLM\0"
 *          8   u32      format version (EL_ENGINE_VERSION)
 *         12   u32      flags (0)
 *         16   u64      meta_offset  (= 64)
 *         24   u64      meta_size    (bytes of UTF-8 JSON, no NUL)
 *         32   u64      data_offset  (multiple of 4096, >= meta_offset + meta_size)
 *         40   u64      data_size
 *         48   u64      meta_hash    XXH3-64 of the JSON bytes
 *         56   u64      header_hash  XXH3-64 of bytes 0..55
 *         64   JSON metadata:
 *              {"format":"edgellm-engine","version":1,
 *               "config": {HF-style config.json object written by el_hparams_to_config},
 *               "profile": {"backend":"cpu","max_batch_size":4,"max_input_len":1024,
 *                           "max_kv_cache_capacity":4096, "kv_cache_dtype":"f16",
 *                           "kv_cache_scales": {"k_scale":[n_layer], "v_scale":[n_layer]} (fp8 only)},
 *               "weight_dtype":"bf16", "export": {... export metadata ...}, "weight_bytes":N,
 *               "tensors":[{"name":..., "dtype":"bf16", "layout":"rowmajor", "shape":[r,c],
 *                           "offset": <bytes from data_offset, multiple of 64>, "nbytes":N,
 *                           "xxh3":"<16 hex digits>"}, ...]}
 *          data_offset: tensor bytes, each tensor 64-byte aligned, zero padding between.
 */
#ifndef EL_ENGINE_H
#define EL_ENGINE_H

#include "models/models.h"

#define EL_ENGINE_MAGIC "EDGELLM\0"
#define EL_ENGINE_VERSION 1u
#define EL_ENGINE_FILE "model.engine"

typedef enum el_layout {
    EL_LAYOUT_ROWMAJOR = 0, /* (rows, cols) row-major, as safetensors                              */
} el_layout;

typedef struct el_engine_tensor {
    char *name;
    el_dtype dtype;
    el_layout layout;
    int n_dims;
    int64_t shape[EL_MAX_DIMS];
    const void *data; /* into the mapping */
    size_t nbytes;
    uint64_t hash;
} el_engine_tensor;

typedef struct el_profile {
    char backend[16];
    int32_t max_batch_size;
    int32_t max_input_len;
    int32_t max_kv_cache_capacity;
    el_dtype kv_dtype; /* KV cache element type: F32, F16, BF16 or F8_E4M3 ("kv_cache_dtype": f32 (default),
                          f16, bf16, fp8) */
} el_profile;

typedef struct el_engine {
    char *dir;
    el_mmap map;
    el_hparams hp;
    el_profile profile;
    el_dtype weight_dtype;
    float *kv_k_scale,
        *kv_v_scale;           /* (n_layer) fp8 KV cache scales (profile.kv_cache_scales); NULL otherwise */
    el_engine_tensor *tensors; /* (n_tensors) sorted by name */
    int64_t n_tensors;
    uint64_t weight_bytes;
    struct cJSON *meta; /* whole metadata object */
} el_engine;

/* Maps dir/model.engine and validates magic, version, hashes, bounds, alignment and that every
 * tensor the model needs is present with the right shape. verify: also hash every tensor's bytes.
 * FORMAT errors say what is wrong ("checksum mismatch in tensor X: engine file is corrupt"). */
edgellm_status el_engine_open(const char *dir, bool verify, el_engine **out);
void el_engine_close(el_engine *e);
const el_engine_tensor *el_engine_find(const el_engine *e, const char *name);
/* The profile's name of a KV cache dtype: "f32", "f16", "bf16", "fp8". */
const char *el_kv_dtype_name(el_dtype t);

#endif
