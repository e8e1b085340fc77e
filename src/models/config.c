/* config.c - HF config.json <-> el_hparams (transformers-4 `rope_scaling` and -5 `rope_parameters`). */
#include "models.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CFG_TRY(expr, key)                                                                             \
    do {                                                                                               \
        edgellm_status s_ = (expr);                                                                    \
        if (s_ < 0) return el_err_prefix(s_, "config.json");                                           \
    } while (0)

/* Required positive integer. */
static edgellm_status req_int(const cJSON *c, const char *key, int64_t *out) {
    bool present;
    CFG_TRY(el_json_int(c, key, 0, out, &present), key);
    if (!present) return el_err(EDGELLM_STATUS_FORMAT, "config.json: missing '%s'", key);
    if (*out <= 0) return el_err(EDGELLM_STATUS_FORMAT, "config.json: '%s' must be positive (got %lld)", key, (long long)*out);
    return EDGELLM_STATUS_OK;
}

/* A token id field: int, list of ints (first for bos/pad; all for eos), or null. */
static edgellm_status read_ids(const cJSON *c, const char *key, int32_t *ids, int32_t *n, int32_t max, bool *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    *present = false;
    if (!v || cJSON_IsNull(v)) return EDGELLM_STATUS_OK;
    *present = true;
    *n = 0;
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 2147483647.0)
            return el_err(EDGELLM_STATUS_FORMAT, "'%s' must be a token id (got %g)", key, v->valuedouble);
        ids[0] = (int32_t)v->valuedouble;
        *n = 1;
        return EDGELLM_STATUS_OK;
    }
    if (!cJSON_IsArray(v)) return el_err(EDGELLM_STATUS_FORMAT, "'%s' must be an integer or a list of integers", key);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > 2147483647.0)
            return el_err(EDGELLM_STATUS_FORMAT, "'%s' must be a list of token ids", key);
        if (*n >= max) return el_err(EDGELLM_STATUS_LIMIT, "'%s' has more than %d ids", key, (int)max);
        ids[(*n)++] = (int32_t)e->valuedouble;
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status read_special(const cJSON *c, el_hparams *hp) {
    if (!c) return EDGELLM_STATUS_OK;
    int32_t ids[EL_MAX_EOS], n = 0;
    bool present;
    EL_TRY(read_ids(c, "bos_token_id", ids, &n, EL_MAX_EOS, &present));
    if (present) hp->bos_id = n ? ids[0] : -1;
    EL_TRY(read_ids(c, "eos_token_id", ids, &n, EL_MAX_EOS, &present));
    if (present) {
        memcpy(hp->eos_ids, ids, sizeof(int32_t) * (size_t)n);
        hp->n_eos = n;
    }
    EL_TRY(read_ids(c, "pad_token_id", ids, &n, EL_MAX_EOS, &present));
    if (present) hp->pad_id = n ? ids[0] : -1;
    return EDGELLM_STATUS_OK;
}

static edgellm_status rope_num(const cJSON *rp, const char *key, double def, bool required, const char *type,
                               double *out) {
    bool present;
    edgellm_status s = el_json_num(rp, key, def, out, &present);
    if (s < 0) return el_err_prefix(s, "config.json rope parameters");
    if (required && !present)
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: rope type '%s' needs '%s'", type, key);
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_rope(const cJSON *c, el_hparams *hp) {
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c, "rope_parameters");
    if (rp && cJSON_IsNull(rp)) rp = NULL;
    if (!rp) {
        rp = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
        if (rp && cJSON_IsNull(rp)) rp = NULL;
    }
    if (rp && !cJSON_IsObject(rp))
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: rope_parameters/rope_scaling must be an object");
    /* theta: inside rope_parameters (tf-5), else top level (tf-4), default 10000 */
    double theta;
    bool present = false;
    if (rp) CFG_TRY(el_json_num(rp, "rope_theta", 0, &theta, &present), "rope_theta");
    if (!present) CFG_TRY(el_json_num(c, "rope_theta", 10000.0, &theta, NULL), "rope_theta");
    if (!(theta > 0) || !isfinite(theta))
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: rope_theta must be positive (got %g)", theta);
    hp->rope_theta = (float)theta;

    double prf;
    present = false;
    if (rp) CFG_TRY(el_json_num(rp, "partial_rotary_factor", 1.0, &prf, &present), "partial_rotary_factor");
    if (!present) CFG_TRY(el_json_num(c, "partial_rotary_factor", 1.0, &prf, NULL), "partial_rotary_factor");
    if (!(prf > 0 && prf <= 1))
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: partial_rotary_factor must be in (0, 1] (got %g)", prf);
    hp->partial_rotary_factor = (float)prf;

    const char *type = NULL;
    if (rp) {
        CFG_TRY(el_json_str(rp, "rope_type", &type), "rope_type");
        if (!type) CFG_TRY(el_json_str(rp, "type", &type), "type");
    }
    if (!type) type = "default";
    hp->rope_factor = 1.0f;
    hp->rope_orig_max_pos = hp->max_pos;
    double v;
    if (!strcmp(type, "default")) {
        hp->rope_type = EL_ROPE_DEFAULT;
    } else if (!strcmp(type, "linear")) {
        hp->rope_type = EL_ROPE_LINEAR;
        EL_TRY(rope_num(rp, "factor", 1.0, true, type, &v));
        hp->rope_factor = (float)v;
    } else if (!strcmp(type, "llama3")) {
        hp->rope_type = EL_ROPE_LLAMA3;
        EL_TRY(rope_num(rp, "factor", 1.0, true, type, &v));
        hp->rope_factor = (float)v;
        EL_TRY(rope_num(rp, "low_freq_factor", 1.0, true, type, &v));
        hp->rope_low_freq_factor = (float)v;
        EL_TRY(rope_num(rp, "high_freq_factor", 4.0, true, type, &v));
        hp->rope_high_freq_factor = (float)v;
        EL_TRY(rope_num(rp, "original_max_position_embeddings", 8192, true, type, &v));
        if (!(v >= 1) || v != floor(v))
            return el_err(EDGELLM_STATUS_FORMAT, "config.json: original_max_position_embeddings must be a positive integer");
        hp->rope_orig_max_pos = (int64_t)v;
        if (!(hp->rope_high_freq_factor > hp->rope_low_freq_factor) || !(hp->rope_low_freq_factor > 0))
            return el_err(EDGELLM_STATUS_FORMAT,
                          "config.json: llama3 rope needs 0 < low_freq_factor < high_freq_factor (got %g, %g)",
                          (double)hp->rope_low_freq_factor, (double)hp->rope_high_freq_factor);
    } else if (!strcmp(type, "yarn")) {
        hp->rope_type = EL_ROPE_YARN;
        EL_TRY(rope_num(rp, "original_max_position_embeddings", (double)hp->max_pos, false, type, &v));
        if (!(v >= 1) || v != floor(v))
            return el_err(EDGELLM_STATUS_FORMAT, "config.json: original_max_position_embeddings must be a positive integer");
        hp->rope_orig_max_pos = (int64_t)v;
        /* transformers 5: a missing factor is max_position_embeddings / original_max_position_embeddings */
        EL_TRY(rope_num(rp, "factor", (double)hp->max_pos / (double)hp->rope_orig_max_pos, false, type, &v));
        hp->rope_factor = (float)v;
        EL_TRY(rope_num(rp, "beta_fast", 32.0, false, type, &v));
        hp->yarn_beta_fast = (float)v;
        EL_TRY(rope_num(rp, "beta_slow", 1.0, false, type, &v));
        hp->yarn_beta_slow = (float)v;
        EL_TRY(rope_num(rp, "mscale", 0.0, false, type, &v));
        hp->yarn_mscale = (float)v;
        EL_TRY(rope_num(rp, "mscale_all_dim", 0.0, false, type, &v));
        hp->yarn_mscale_all_dim = (float)v;
        EL_TRY(rope_num(rp, "attention_factor", -1.0, false, type, &v));
        hp->yarn_attn_factor = (float)v;
        bool tr;
        CFG_TRY(el_json_bool(rp, "truncate", true, &tr, NULL), "truncate");
        hp->yarn_truncate = tr;
        if (hp->yarn_beta_fast == 0) hp->yarn_beta_fast = 32; /* HF: `or 32` */
        if (hp->yarn_beta_slow == 0) hp->yarn_beta_slow = 1;
    } else {
        return el_err(EDGELLM_STATUS_UNSUPPORTED,
                      "config.json: rope type '%s' is not supported (supported: default, linear, llama3, yarn)", type);
    }
    if (!(hp->rope_factor > 0) || !isfinite(hp->rope_factor))
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: rope factor must be positive (got %g)", (double)hp->rope_factor);
    return EDGELLM_STATUS_OK;
}

edgellm_status el_hparams_from_config(const cJSON *c, const cJSON *gen, el_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    if (!c || !cJSON_IsObject(c)) return el_err(EDGELLM_STATUS_FORMAT, "config.json must be a JSON object");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    const char *hf = NULL;
    if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0 && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        hf = cJSON_GetArrayItem(archs, 0)->valuestring;
    if (!hf) return el_err(EDGELLM_STATUS_FORMAT, "config.json: missing 'architectures' (a list with the model class name)");
    const el_arch *arch = el_arch_find(hf);
    if (!arch) {
        char list[256];
        el_arch_list(list, sizeof list);
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "unsupported architecture '%s' (supported: %s)", hf, list);
    }
    snprintf(hp->arch, sizeof hp->arch, "%s", arch->name);
    snprintf(hp->hf_arch, sizeof hp->hf_arch, "%s", hf);

    EL_TRY(req_int(c, "vocab_size", &hp->n_vocab));
    EL_TRY(req_int(c, "hidden_size", &hp->n_embd));
    EL_TRY(req_int(c, "num_hidden_layers", &hp->n_layer));
    EL_TRY(req_int(c, "num_attention_heads", &hp->n_head));
    EL_TRY(req_int(c, "intermediate_size", &hp->n_ff));
    bool present;
    CFG_TRY(el_json_int(c, "num_key_value_heads", hp->n_head, &hp->n_head_kv, NULL), "num_key_value_heads");
    CFG_TRY(el_json_int(c, "head_dim", 0, &hp->head_dim, &present), "head_dim");
    if (!present) {
        if (hp->n_embd % hp->n_head != 0)
            return el_err(EDGELLM_STATUS_FORMAT,
                          "config.json: hidden_size %lld is not divisible by num_attention_heads %lld (set head_dim)",
                          (long long)hp->n_embd, (long long)hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    CFG_TRY(el_json_int(c, "max_position_embeddings", 2048, &hp->max_pos, NULL), "max_position_embeddings");
    if (hp->n_head_kv <= 0)
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: 'num_key_value_heads' must be positive (got %lld)",
                      (long long)hp->n_head_kv);
    if (hp->head_dim <= 0 || hp->head_dim > 4096 || hp->head_dim % 2 != 0)
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: head_dim must be even and in 2..4096 (got %lld)",
                      (long long)hp->head_dim);
    if (hp->max_pos <= 0)
        return el_err(EDGELLM_STATUS_FORMAT, "config.json: 'max_position_embeddings' must be positive");
    if (hp->n_head % hp->n_head_kv != 0)
        return el_err(EDGELLM_STATUS_FORMAT,
                      "config.json: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                      (long long)hp->n_head, (long long)hp->n_head_kv);
    const int64_t lim = (int64_t)1 << 24;
    if (hp->n_vocab > (int64_t)1 << 26 || hp->n_embd > lim || hp->n_ff > lim || hp->n_layer > 4096 ||
        hp->n_head > 4096 || hp->n_head * hp->head_dim > lim)
        return el_err(EDGELLM_STATUS_FORMAT,
                      "config.json: implausible dimensions (vocab %lld, hidden %lld, ffn %lld, layers %lld, heads %lld x %lld)",
                      (long long)hp->n_vocab, (long long)hp->n_embd, (long long)hp->n_ff, (long long)hp->n_layer,
                      (long long)hp->n_head, (long long)hp->head_dim);

    double eps;
    CFG_TRY(el_json_num(c, "rms_norm_eps", 1e-6, &eps, NULL), "rms_norm_eps");
    if (!(eps > 0 && eps < 1)) return el_err(EDGELLM_STATUS_FORMAT, "config.json: rms_norm_eps must be in (0, 1)");
    hp->norm_eps = (float)eps;
    CFG_TRY(el_json_bool(c, "tie_word_embeddings", false, &hp->tied_embd, NULL), "tie_word_embeddings");
    const char *act = NULL;
    CFG_TRY(el_json_str(c, "hidden_act", &act), "hidden_act");
    if (!act || !strcmp(act, "silu") || !strcmp(act, "swish")) hp->act = EL_ACT_SILU;
    else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_tanh")) hp->act = EL_ACT_GELU_TANH;
    else return el_err(EDGELLM_STATUS_UNSUPPORTED, "config.json: hidden_act '%s' is not supported (silu, gelu_pytorch_tanh)", act);

    EL_TRY(parse_rope(c, hp));

    /* sliding-window attention: Qwen2/3 switch it on with use_sliding_window; Mistral sets only
     * sliding_window. The decoder implements full attention. */
    bool use_sw = false, sw_flag_present = false;
    CFG_TRY(el_json_bool(c, "use_sliding_window", false, &use_sw, &sw_flag_present), "use_sliding_window");
    if (use_sw)
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "config.json: sliding-window attention (use_sliding_window) is not supported");
    int64_t sw = 0;
    CFG_TRY(el_json_int(c, "sliding_window", 0, &sw, NULL), "sliding_window");
    if (!sw_flag_present && sw > 0 && sw < hp->max_pos)
        EL_LOG_WARN("config.json: sliding_window %lld is ignored; attention is full (exact up to %lld tokens)",
                    (long long)sw, (long long)sw);

    hp->bos_id = -1;
    hp->pad_id = -1;
    hp->n_eos = 0;
    EL_TRY(read_special(c, hp));
    edgellm_status s = read_special(gen, hp);
    if (s < 0) return el_err_prefix(s, "generation_config.json");
    for (int i = 0; i < hp->n_eos; i++)
        if (hp->eos_ids[i] >= hp->n_vocab)
            return el_err(EDGELLM_STATUS_FORMAT, "config.json: eos_token_id %d is outside the vocabulary (%lld)",
                          (int)hp->eos_ids[i], (long long)hp->n_vocab);

    if (arch->finish_config) EL_TRY(arch->finish_config(c, hp));
    return EDGELLM_STATUS_OK;
}

static void add_num(cJSON *o, const char *k, double v) { cJSON_AddNumberToObject(o, k, v); }

cJSON *el_hparams_to_config(const el_hparams *hp) {
    cJSON *c = cJSON_CreateObject();
    if (!c) return NULL;
    cJSON *archs = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(hp->hf_arch));
    cJSON_AddStringToObject(c, "model_type", hp->arch);
    add_num(c, "vocab_size", (double)hp->n_vocab);
    add_num(c, "hidden_size", (double)hp->n_embd);
    add_num(c, "num_hidden_layers", (double)hp->n_layer);
    add_num(c, "num_attention_heads", (double)hp->n_head);
    add_num(c, "num_key_value_heads", (double)hp->n_head_kv);
    add_num(c, "head_dim", (double)hp->head_dim);
    add_num(c, "intermediate_size", (double)hp->n_ff);
    add_num(c, "max_position_embeddings", (double)hp->max_pos);
    add_num(c, "rms_norm_eps", (double)hp->norm_eps);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", hp->tied_embd);
    cJSON_AddBoolToObject(c, "attention_bias", hp->qkv_bias);
    cJSON_AddBoolToObject(c, "mlp_bias", hp->mlp_bias);
    cJSON_AddStringToObject(c, "hidden_act", hp->act == EL_ACT_GELU_TANH ? "gelu_pytorch_tanh" : "silu");
    add_num(c, "rope_theta", (double)hp->rope_theta);
    cJSON *rp = cJSON_AddObjectToObject(c, "rope_parameters");
    static const char *names[] = {"default", "linear", "llama3", "yarn"};
    cJSON_AddStringToObject(rp, "rope_type", names[hp->rope_type]);
    add_num(rp, "rope_theta", (double)hp->rope_theta);
    if (hp->partial_rotary_factor != 1.0f) add_num(rp, "partial_rotary_factor", (double)hp->partial_rotary_factor);
    if (hp->rope_type != EL_ROPE_DEFAULT) add_num(rp, "factor", (double)hp->rope_factor);
    if (hp->rope_type == EL_ROPE_LLAMA3) {
        add_num(rp, "low_freq_factor", (double)hp->rope_low_freq_factor);
        add_num(rp, "high_freq_factor", (double)hp->rope_high_freq_factor);
    }
    if (hp->rope_type == EL_ROPE_LLAMA3 || hp->rope_type == EL_ROPE_YARN)
        add_num(rp, "original_max_position_embeddings", (double)hp->rope_orig_max_pos);
    if (hp->rope_type == EL_ROPE_YARN) {
        add_num(rp, "beta_fast", (double)hp->yarn_beta_fast);
        add_num(rp, "beta_slow", (double)hp->yarn_beta_slow);
        if (hp->yarn_mscale != 0) add_num(rp, "mscale", (double)hp->yarn_mscale);
        if (hp->yarn_mscale_all_dim != 0) add_num(rp, "mscale_all_dim", (double)hp->yarn_mscale_all_dim);
        if (hp->yarn_attn_factor > 0) add_num(rp, "attention_factor", (double)hp->yarn_attn_factor);
        cJSON_AddBoolToObject(rp, "truncate", hp->yarn_truncate);
    }
    if (hp->bos_id >= 0) add_num(c, "bos_token_id", hp->bos_id);
    else cJSON_AddNullToObject(c, "bos_token_id");
    if (hp->n_eos == 1) {
        add_num(c, "eos_token_id", hp->eos_ids[0]);
    } else if (hp->n_eos > 1) {
        cJSON *e = cJSON_AddArrayToObject(c, "eos_token_id");
        for (int i = 0; i < hp->n_eos; i++) cJSON_AddItemToArray(e, cJSON_CreateNumber(hp->eos_ids[i]));
    } else {
        cJSON_AddNullToObject(c, "eos_token_id");
    }
    if (hp->pad_id >= 0) add_num(c, "pad_token_id", hp->pad_id);
    else cJSON_AddNullToObject(c, "pad_token_id");
    if (!rp) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}
