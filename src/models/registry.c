/* registry.c - the architecture table and the canonical tensor list shared by every decoder. */
#include "models.h"

#include <stdio.h>
#include <string.h>

extern const el_arch el_arch_llama, el_arch_qwen2, el_arch_qwen3;
static const el_arch *const k_archs[] = {&el_arch_llama, &el_arch_qwen2, &el_arch_qwen3};
#define N_ARCHS (sizeof k_archs / sizeof k_archs[0])

const el_arch *el_arch_find(const char *hf_name) {
    if (!hf_name) return NULL;
    for (size_t i = 0; i < N_ARCHS; i++)
        for (const char *const *n = k_archs[i]->hf_names; *n; n++)
            if (!strcmp(*n, hf_name)) return k_archs[i];
    return NULL;
}

const el_arch *el_arch_by_name(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(k_archs[i]->name, name)) return k_archs[i];
    return NULL;
}

void el_arch_list(char *out, size_t cap) {
    if (!cap) return;
    out[0] = 0;
    size_t len = 0;
    for (size_t i = 0; i < N_ARCHS; i++)
        for (const char *const *n = k_archs[i]->hf_names; *n; n++) {
            int w = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", *n);
            if (w < 0 || (size_t)w >= cap - len) return;
            len += (size_t)w;
        }
}

/* Shared by the Llama-family decoders: checkpoint names already are the canonical names; rotary
 * buffers saved by old transformers versions are dropped. */
edgellm_status el_map_tensor_identity(const char *hf_name, char *out, size_t cap, bool *skip) {
    *skip = false;
    if (el_str_ends_with(hf_name, "rotary_emb.inv_freq")) {
        *skip = true;
        if (cap) out[0] = 0;
        return EDGELLM_STATUS_OK;
    }
    const size_t n = strlen(hf_name);
    if (n + 1 > cap) return el_err(EDGELLM_STATUS_FORMAT, "tensor name too long: %.64s...", hf_name);
    memcpy(out, hf_name, n + 1);
    return EDGELLM_STATUS_OK;
}

#define VISIT(req, r, c, ...)                                                                          \
    do {                                                                                               \
        snprintf(name, sizeof name, __VA_ARGS__);                                                      \
        EL_TRY(fn(name, (r), (c), (req), user));                                                       \
    } while (0)

edgellm_status el_model_visit_tensors(const el_hparams *hp, el_tensor_visit_fn fn, void *user) {
    char name[128];
    const int64_t E = hp->n_embd, F = hp->n_ff, Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    VISIT(true, hp->n_vocab, E, "model.embed_tokens.weight");
    for (int64_t i = 0; i < hp->n_layer; i++) {
        const long long l = (long long)i;
        VISIT(true, E, 0, "model.layers.%lld.input_layernorm.weight", l);
        VISIT(true, Q, E, "model.layers.%lld.self_attn.q_proj.weight", l);
        if (hp->qkv_bias) VISIT(true, Q, 0, "model.layers.%lld.self_attn.q_proj.bias", l);
        VISIT(true, KV, E, "model.layers.%lld.self_attn.k_proj.weight", l);
        if (hp->qkv_bias) VISIT(true, KV, 0, "model.layers.%lld.self_attn.k_proj.bias", l);
        VISIT(true, KV, E, "model.layers.%lld.self_attn.v_proj.weight", l);
        if (hp->qkv_bias) VISIT(true, KV, 0, "model.layers.%lld.self_attn.v_proj.bias", l);
        VISIT(true, E, Q, "model.layers.%lld.self_attn.o_proj.weight", l);
        if (hp->o_bias) VISIT(true, E, 0, "model.layers.%lld.self_attn.o_proj.bias", l);
        if (hp->qk_norm) {
            VISIT(true, hp->head_dim, 0, "model.layers.%lld.self_attn.q_norm.weight", l);
            VISIT(true, hp->head_dim, 0, "model.layers.%lld.self_attn.k_norm.weight", l);
        }
        VISIT(true, E, 0, "model.layers.%lld.post_attention_layernorm.weight", l);
        VISIT(true, F, E, "model.layers.%lld.mlp.gate_proj.weight", l);
        if (hp->mlp_bias) VISIT(true, F, 0, "model.layers.%lld.mlp.gate_proj.bias", l);
        VISIT(true, F, E, "model.layers.%lld.mlp.up_proj.weight", l);
        if (hp->mlp_bias) VISIT(true, F, 0, "model.layers.%lld.mlp.up_proj.bias", l);
        VISIT(true, E, F, "model.layers.%lld.mlp.down_proj.weight", l);
        if (hp->mlp_bias) VISIT(true, E, 0, "model.layers.%lld.mlp.down_proj.bias", l);
    }
    VISIT(true, E, 0, "model.norm.weight");
    if (!hp->tied_embd) VISIT(true, hp->n_vocab, E, "lm_head.weight");
    return EDGELLM_STATUS_OK;
}
