/* llama.c - LlamaForCausalLM / MistralForCausalLM: attention_bias covers q/k/v/o, mlp_bias gate/up/down. */
#include "arch_internal.h"

#include <cjson/cJSON.h>

static edgellm_status llama_finish(const cJSON *cfg, el_hparams *hp) {
    bool ab, mb;
    EL_TRY(el_json_bool(cfg, "attention_bias", false, &ab, NULL));
    EL_TRY(el_json_bool(cfg, "mlp_bias", false, &mb, NULL));
    hp->qkv_bias = hp->o_bias = ab;
    hp->mlp_bias = mb;
    hp->qk_norm = false;
    return EDGELLM_STATUS_OK;
}

static const char *const k_names[] = {"LlamaForCausalLM", "MistralForCausalLM", NULL};
const el_arch el_arch_llama = {"llama", k_names, llama_finish, el_map_tensor_identity};
