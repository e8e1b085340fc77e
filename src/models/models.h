/*
 * models.h - HF checkpoint reading: safetensors (single and sharded), config.json in both
 * transformers-4 and -5 styles, the architecture registry and the canonical hyper-parameters.
 *
 * Canonical tensor names (what export writes and the engine stores) are the HF Llama names:
 *   model.embed_tokens.weight                       (n_vocab, n_embd)
 *   model.layers.{i}.input_layernorm.weight         (n_embd)
 *   model.layers.{i}.self_attn.q_proj.weight        (n_head*head_dim, n_embd)    + .bias if qkv_bias
 *   model.layers.{i}.self_attn.k_proj.weight        (n_head_kv*head_dim, n_embd) + .bias if qkv_bias
 *   model.layers.{i}.self_attn.v_proj.weight        (n_head_kv*head_dim, n_embd) + .bias if qkv_bias
 *   model.layers.{i}.self_attn.o_proj.weight        (n_embd, n_head*head_dim)    + .bias if o_bias
 *   model.layers.{i}.self_attn.q_norm.weight        (head_dim)                   if qk_norm
 *   model.layers.{i}.self_attn.k_norm.weight        (head_dim)                   if qk_norm
 *   model.layers.{i}.post_attention_layernorm.weight (n_embd)
 *   model.layers.{i}.mlp.gate_proj.weight           (n_ff, n_embd)               + .bias if mlp_bias
 *   model.layers.{i}.mlp.up_proj.weight             (n_ff, n_embd)
 *   model.layers.{i}.mlp.down_proj.weight           (n_embd, n_ff)
 *   model.norm.weight                               (n_embd)
 *   lm_head.weight                                  (n_vocab, n_embd)            absent if tied_embd
 * Shapes are given as (rows, cols) = safetensors shape order; a weight (out, in) computes y = x W^T.
 */
#ifndef EL_MODELS_H
#define EL_MODELS_H

#include "core/core.h"

struct cJSON;

/* ---- hyper-parameters -------------------------------------------------------------------------- */
typedef enum el_rope_type {
    EL_ROPE_DEFAULT = 0,
    EL_ROPE_LINEAR = 1,
    EL_ROPE_LLAMA3 = 2,
    EL_ROPE_YARN = 3,
} el_rope_type;

typedef enum el_act { EL_ACT_SILU = 0, EL_ACT_GELU_TANH = 1 } el_act;

#define EL_MAX_EOS 8

typedef struct el_hparams {
    char arch[32];     /* registry name: "llama", "qwen2", "qwen3"                              */
    char hf_arch[64];  /* config.json architectures[0]                                           */
    int64_t n_vocab;   /* vocab_size                                                             */
    int64_t n_embd;    /* hidden_size                                                            */
    int64_t n_layer;   /* num_hidden_layers                                                      */
    int64_t n_head;    /* num_attention_heads                                                    */
    int64_t n_head_kv; /* num_key_value_heads (default n_head)                                   */
    int64_t head_dim;  /* head_dim, or hidden_size / num_attention_heads                         */
    int64_t n_ff;      /* intermediate_size                                                      */
    int64_t max_pos;   /* max_position_embeddings                                                */
    float norm_eps;    /* rms_norm_eps                                                           */
    bool tied_embd;    /* tie_word_embeddings                                                    */
    bool qkv_bias;     /* q/k/v projections have a bias (Qwen2, attention_bias)                   */
    bool o_bias;       /* o_proj has a bias (attention_bias on Llama)                             */
    bool mlp_bias;     /* gate/up/down have biases (mlp_bias)                                     */
    bool qk_norm;      /* per-head RMSNorm on q and k before RoPE (Qwen3)                         */
    el_act act;        /* hidden_act                                                             */
    /* RoPE */
    el_rope_type rope_type;
    float rope_theta;
    float rope_factor;            /* linear / llama3 / yarn factor                               */
    float rope_low_freq_factor;   /* llama3                                                      */
    float rope_high_freq_factor;  /* llama3                                                      */
    int64_t rope_orig_max_pos;    /* llama3 / yarn original_max_position_embeddings              */
    float yarn_beta_fast, yarn_beta_slow, yarn_mscale, yarn_mscale_all_dim;
    float yarn_attn_factor;       /* attention_factor if given (<= 0: derived)                   */
    bool yarn_truncate;           /* yarn "truncate" (default true)                              */
    float partial_rotary_factor;  /* 1.0 = rotate all of head_dim                                */
    /* special ids (-1 = none) */
    int32_t bos_id;
    int32_t eos_ids[EL_MAX_EOS];
    int32_t n_eos;
    int32_t pad_id;
} el_hparams;

/* Parses a config.json object (both rope styles, explicit or derived head_dim) and validates it:
 * positive dims, n_head % n_head_kv == 0, rope type known. Unknown architecture -> UNSUPPORTED whose
 * message lists the supported ones. generation_config (may be NULL) supplies eos ids when present. */
edgellm_status el_hparams_from_config(const struct cJSON *config, const struct cJSON *generation_config,
                                      el_hparams *hp);
/* Writes hp as an HF-style config.json object (transformers-5 style rope_parameters plus rope_theta),
 * which el_hparams_from_config reads back to the same hp. */
struct cJSON *el_hparams_to_config(const el_hparams *hp);

/* RoPE: inverse frequencies for the rotated dims (n_rot/2 values) and the attention scaling
 * (yarn's mscale, 1.0 otherwise), exactly as HF ROPE_INIT_FUNCTIONS computes them. */
int64_t el_rope_n_rot(const el_hparams *hp);
void el_rope_inv_freq(const el_hparams *hp, float *inv_freq, float *attn_scale);

/* ---- architecture registry ---------------------------------------------------------------------- */
typedef struct el_arch {
    const char *name;              /* "qwen2"                                                   */
    const char *const *hf_names;   /* {"Qwen2ForCausalLM", NULL}                               */
    /* Sets architecture flags on hp after the generic parse (qkv_bias, qk_norm...). */
    edgellm_status (*finish_config)(const struct cJSON *cfg, el_hparams *hp);
    /* Maps a checkpoint tensor name to its canonical name (writes into out, cap bytes). Returns 0 and
     * sets *skip=true for tensors to drop (e.g. rotary inv_freq buffers). */
    edgellm_status (*map_tensor)(const char *hf_name, char *out, size_t cap, bool *skip);
} el_arch;

const el_arch *el_arch_find(const char *hf_name); /* NULL if unknown */
const el_arch *el_arch_by_name(const char *name);
/* "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM" into out. */
void el_arch_list(char *out, size_t cap);

/* Expected canonical tensors for hp: calls fn(name, rows, cols, user) for each (cols = 0 for 1-D).
 * Used by export to validate a checkpoint and by the runtime to find weights. */
typedef edgellm_status (*el_tensor_visit_fn)(const char *name, int64_t rows, int64_t cols, bool required,
                                             void *user);
edgellm_status el_model_visit_tensors(const el_hparams *hp, el_tensor_visit_fn fn, void *user);

/* ---- safetensors --------------------------------------------------------------------------------- */
#define EL_MAX_DIMS 4
typedef struct el_st_tensor {
    char *name;
    el_dtype dtype;
    int n_dims;
    int64_t shape[EL_MAX_DIMS];
    const void *data; /* points into the mapped file                                           */
    size_t nbytes;
    int shard;        /* index of the file that holds it                                       */
} el_st_tensor;

typedef struct el_st_file {
    el_mmap *maps;    /* (n_maps) */
    int n_maps;
    el_st_tensor *tensors; /* (n_tensors), sorted by name */
    int64_t n_tensors;
    struct cJSON *metadata; /* "__metadata__" of the first shard, or NULL */
} el_st_file;

/* path: a .safetensors file, or a directory with model.safetensors or
 * model.safetensors.index.json (sharded). Validates every header field: JSON, dtype, shape product
 * * dtype size == end - begin, offsets in bounds, no overlap, no duplicates. FORMAT errors name the
 * file and tensor. */
edgellm_status el_st_open(const char *path, el_st_file *st);
void el_st_close(el_st_file *st);
const el_st_tensor *el_st_find(const el_st_file *st, const char *name);

/* Streaming safetensors writer: header first (all tensors declared), then data in declaration order. */
typedef struct el_st_writer el_st_writer;
typedef struct el_st_decl {
    const char *name;
    el_dtype dtype;
    int n_dims;
    int64_t shape[EL_MAX_DIMS];
} el_st_decl;
/* metadata_json: NULL or a JSON object of string values for "__metadata__". */
edgellm_status el_st_writer_open(const char *path, const el_st_decl *decls, int64_t n, const char *metadata_json,
                                 el_st_writer **out);
/* Appends the bytes of the next declared tensor (may be called several times per tensor). */
edgellm_status el_st_writer_write(el_st_writer *w, const void *data, size_t n);
edgellm_status el_st_writer_close(el_st_writer *w); /* checks every byte was written; frees w */
void el_st_writer_abort(el_st_writer *w);           /* frees w, removes the file */

#endif
