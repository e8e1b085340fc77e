/* qwen3.c - Qwen3ForCausalLM: per-head RMSNorm on q and k; attention_bias covers q/k/v/o. */
#include "arch_internal.h"

#include <cjson/cJSON.h>

static edgellm_status qwen3_finish(const cJSON *cfg, el_hparams *hp) {
    bool ab;
    EL_TRY(el_json_bool(cfg, "attention_bias", false, &ab, NULL));
    hp->qkv_bias = hp->o_bias = ab;
    hp->mlp_bias = false;
    hp->qk_norm = true;
    return EDGELLM_STATUS_OK;
}

static const char *const k_names[] = {"Qwen3ForCausalLM", NULL};
const el_arch el_arch_qwen3 = {"qwen3", k_names, qwen3_finish, el_map_tensor_identity};
