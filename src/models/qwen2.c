/* qwen2.c - Qwen2ForCausalLM: q/k/v always have biases, o_proj and the MLP never do. */
#include "arch_internal.h"

static edgellm_status qwen2_finish(const struct cJSON *cfg, el_hparams *hp) {
    (void)cfg;
    hp->qkv_bias = true;
    hp->o_bias = false;
    hp->mlp_bias = false;
    hp->qk_norm = false;
    return EDGELLM_STATUS_OK;
}

static const char *const k_names[] = {"Qwen2ForCausalLM", NULL};
const el_arch el_arch_qwen2 = {"qwen2", k_names, qwen2_finish, el_map_tensor_identity};
