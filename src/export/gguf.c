/* gguf.c - GGUF v3 export (see gguf.h). File layout (ggml/docs/gguf.md):
 *   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv, KV pairs (string key, u32 type, value),
 *   tensor infos (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset),
 *   zero padding to 32, tensor data (each tensor at a 32-aligned offset from the data start). */
#include "gguf.h"

#include "export_internal.h"
#include "models/stream.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_ALIGN 32

enum { GT_U8 = 0, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STR, GT_ARR, GT_U64, GT_I64, GT_F64 };
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* ---- block encodings ---------------------------------------------------------------------------- */
size_t el_ggml_row_size(int type, int64_t n) {
    switch (type) {
    case EL_GGML_F32: return (size_t)n * 4;
    case EL_GGML_F16:
    case EL_GGML_BF16: return (size_t)n * 2;
    case EL_GGML_Q8_0: return (size_t)(n / EL_GGML_QK) * 34;
    case EL_GGML_Q4_0: return (size_t)(n / EL_GGML_QK) * 18;
    default: return 0;
    }
}

static void put_f16(uint8_t *p, float f) {
    uint16_t h = el_f32_to_f16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

void el_ggml_quantize_q8_0(const float *x, void *out, int64_t n) {
    uint8_t *y = out;
    for (int64_t b = 0; b < n / EL_GGML_QK; b++, x += EL_GGML_QK, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < EL_GGML_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int j = 0; j < EL_GGML_QK; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

void el_ggml_quantize_q4_0(const float *x, void *out, int64_t n) {
    uint8_t *y = out;
    for (int64_t b = 0; b < n / EL_GGML_QK; b++, x += EL_GGML_QK, y += 18) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < EL_GGML_QK; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int j = 0; j < EL_GGML_QK / 2; j++) {
            int x0 = (int8_t)(x[j] * id + 8.5f), x1 = (int8_t)(x[EL_GGML_QK / 2 + j] * id + 8.5f);
            if (x0 > 15) x0 = 15;
            if (x1 > 15) x1 = 15;
            y[2 + j] = (uint8_t)(x0 | (x1 << 4));
        }
    }
}

static float get_f16(const uint8_t *p) { return el_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

void el_ggml_dequantize_q8_0(const void *in, float *y, int64_t n) {
    const uint8_t *x = in;
    for (int64_t b = 0; b < n / EL_GGML_QK; b++, x += 34, y += EL_GGML_QK) {
        const float d = get_f16(x);
        for (int j = 0; j < EL_GGML_QK; j++) y[j] = (float)(int8_t)x[2 + j] * d;
    }
}

void el_ggml_dequantize_q4_0(const void *in, float *y, int64_t n) {
    const uint8_t *x = in;
    for (int64_t b = 0; b < n / EL_GGML_QK; b++, x += 18, y += EL_GGML_QK) {
        const float d = get_f16(x);
        for (int j = 0; j < EL_GGML_QK / 2; j++) {
            y[j] = (float)((x[2 + j] & 0x0f) - 8) * d;
            y[EL_GGML_QK / 2 + j] = (float)((x[2 + j] >> 4) - 8) * d;
        }
    }
}

static void encode_row(int type, const float *x, int64_t n, void *out) {
    switch (type) {
    case EL_GGML_F32: memcpy(out, x, (size_t)n * 4); break;
    case EL_GGML_F16: el_convert(EL_DTYPE_F16, out, EL_DTYPE_F32, x, (size_t)n); break;
    case EL_GGML_BF16: el_convert(EL_DTYPE_BF16, out, EL_DTYPE_F32, x, (size_t)n); break;
    case EL_GGML_Q8_0: el_ggml_quantize_q8_0(x, out, n); break;
    case EL_GGML_Q4_0: el_ggml_quantize_q4_0(x, out, n); break;
    default: break;
    }
}

/* ---- metadata buffer ------------------------------------------------------------------------------ */
typedef struct kvw {
    el_buf b;
    uint64_t n;
    edgellm_status st; /* first error (sticky) */
} kvw;

static void raw(kvw *w, const void *p, size_t n) {
    if (w->st >= 0) w->st = el_buf_append(&w->b, p, n);
}
static void raw_u32(kvw *w, uint32_t v) { raw(w, &v, 4); }
static void raw_u64(kvw *w, uint64_t v) { raw(w, &v, 8); }
static void raw_str(kvw *w, const char *s) {
    raw_u64(w, strlen(s));
    raw(w, s, strlen(s));
}
static void key(kvw *w, const char *k, uint32_t type) {
    raw_str(w, k);
    raw_u32(w, type);
    w->n++;
}
static void kv_u32(kvw *w, const char *k, uint32_t v) {
    key(w, k, GT_U32);
    raw_u32(w, v);
}
static void kv_bool(kvw *w, const char *k, bool v) {
    key(w, k, GT_BOOL);
    uint8_t b = v;
    raw(w, &b, 1);
}
static void kv_str(kvw *w, const char *k, const char *v) {
    key(w, k, GT_STR);
    raw_str(w, v);
}
static void kv_arr(kvw *w, const char *k, uint32_t elem_type, uint64_t n) {
    key(w, k, GT_ARR);
    raw_u32(w, elem_type);
    raw_u64(w, n);
}
static void kv_archf(kvw *w, const char *arch, const char *suffix, uint32_t type, const void *v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    key(w, k, type);
    if (type == GT_STR) raw_str(w, v);
    else raw(w, v, 4);
}
static void kv_arch_u32(kvw *w, const char *arch, const char *suffix, int64_t v) {
    uint32_t u = (uint32_t)v;
    kv_archf(w, arch, suffix, GT_U32, &u);
}
static void kv_arch_f32(kvw *w, const char *arch, const char *suffix, float v) {
    kv_archf(w, arch, suffix, GT_F32, &v);
}

/* ---- tokenizer ------------------------------------------------------------------------------------- */
/* The content of a special-token entry of tokenizer_config.json: a string or {"content": ...}. */
static const char *tok_cfg_str(const cJSON *tc, const char *k) {
    const cJSON *v = tc ? cJSON_GetObjectItemCaseSensitive(tc, k) : NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static int32_t find_token(char **toks, int64_t n, const char *s) {
    if (!s) return -1;
    for (int64_t i = 0; i < n; i++)
        if (toks[i] && !strcmp(toks[i], s)) return (int32_t)i;
    return -1;
}

static bool is_byte_token(const char *s) {
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' && strchr("0123456789abcdefABCDEF", s[3]) &&
           strchr("0123456789abcdefABCDEF", s[4]);
}

/* Writes tokenizer.ggml.* for dir's tokenizer.json (or model "none" without one). */
static edgellm_status write_tokenizer(kvw *w, const char *dir, const el_hparams *hp) {
    char path[4096];
    EL_TRY(el_path_join(path, sizeof path, dir, "tokenizer.json"));
    if (!el_file_exists(path)) {
        /* llama.cpp cannot run a model with tokenizer.ggml.model "none" (its tokenizer is asserted on load),
         * so the file gets a placeholder SentencePiece-style vocabulary: "<tok_ID>" names, the config's
         * bos/eos as control tokens. Token ids - the only thing such a model is run from - are unchanged. */
        EL_LOG_WARN("gguf: %s has no tokenizer.json; writing a placeholder vocabulary (<tok_ID>), run it from token ids",
                    dir);
        const int64_t nv = hp->n_vocab;
        kv_str(w, "tokenizer.ggml.model", "llama");
        kv_str(w, "tokenizer.ggml.pre", "default");
        /* the first 256 non-special ids also get the <0xXX> byte tokens llama.cpp looks up ('\n') */
        int32_t *types = el_calloc((size_t)nv, sizeof *types);
        if (!types) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        kv_arr(w, "tokenizer.ggml.tokens", GT_STR, (uint64_t)nv);
        int next_byte = 0;
        for (int64_t i = 0; i < nv; i++) {
            bool ctl = i == hp->bos_id || i == hp->pad_id;
            for (int k = 0; k < hp->n_eos; k++) ctl |= i == hp->eos_ids[k];
            char t[40];
            if (ctl) snprintf(t, sizeof t, "<ctl_%lld>", (long long)i), types[i] = TT_CONTROL;
            else if (next_byte < 256 && nv >= 512) snprintf(t, sizeof t, "<0x%02X>", next_byte++), types[i] = TT_BYTE;
            else snprintf(t, sizeof t, "<tok_%lld>", (long long)i), types[i] = TT_NORMAL;
            raw_str(w, t);
        }
        kv_arr(w, "tokenizer.ggml.scores", GT_F32, (uint64_t)nv);
        for (int64_t i = 0; i < nv; i++) {
            float sc = 0.0f;
            raw(w, &sc, 4);
        }
        kv_arr(w, "tokenizer.ggml.token_type", GT_I32, (uint64_t)nv);
        raw(w, types, (size_t)nv * 4);
        el_free(types);
        if (hp->bos_id >= 0 && hp->bos_id < nv) kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)hp->bos_id);
        if (hp->n_eos > 0 && hp->eos_ids[0] >= 0 && hp->eos_ids[0] < nv)
            kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)hp->eos_ids[0]);
        kv_bool(w, "tokenizer.ggml.add_bos_token", false);
        kv_bool(w, "tokenizer.ggml.add_eos_token", false);
        return w->st;
    }
    edgellm_status s = EDGELLM_STATUS_OK;
    cJSON *tj = NULL, *tc = NULL;
    char **toks = NULL;
    int32_t *types = NULL;
    float *scores = NULL;
    const int64_t nv = hp->n_vocab;
    EL_TRY(el_json_load(path, 256u << 20, &tj));
    if (el_path_join(path, sizeof path, dir, "tokenizer_config.json") >= 0 && el_file_exists(path) &&
        (s = el_json_load(path, 64u << 20, &tc)) < 0)
        goto done;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsString(mtype) || !vocab) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s/tokenizer.json has no model.type / model.vocab", dir);
        goto done;
    }
    bool unigram = !strcmp(mtype->valuestring, "Unigram");
    bool bpe = !strcmp(mtype->valuestring, "BPE");
    if (!unigram && !bpe) {
        s = el_err(EDGELLM_STATUS_UNSUPPORTED, "gguf: tokenizer model type %s is not supported (BPE, Unigram)",
                   mtype->valuestring);
        goto done;
    }
    const cJSON *bf = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    bool spm = unigram || cJSON_IsTrue(bf); /* SentencePiece-style -> "llama"; else byte-level BPE -> "gpt2" */
    toks = el_calloc((size_t)nv, sizeof *toks);
    types = el_calloc((size_t)nv, sizeof *types);
    scores = el_calloc((size_t)nv, sizeof *scores);
    if (!toks || !types || !scores) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    /* vocab */
    int64_t idx = 0;
    for (const cJSON *e = vocab->child; e; e = e->next, idx++) {
        const char *text;
        int64_t id;
        float score = 0.0f;
        if (unigram) { /* [[piece, score], ...] */
            if (!cJSON_IsArray(e) || !cJSON_IsString(e->child) || !cJSON_IsNumber(e->child->next)) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s/tokenizer.json: bad Unigram vocab entry %lld", dir, (long long)idx);
                goto done;
            }
            text = e->child->valuestring, id = idx, score = (float)e->child->next->valuedouble;
        } else {
            if (!cJSON_IsNumber(e) || !e->string) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s/tokenizer.json: bad BPE vocab entry", dir);
                goto done;
            }
            text = e->string, id = (int64_t)e->valuedouble;
        }
        if (id < 0 || id >= nv) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s/tokenizer.json: token id %lld is outside vocab_size %lld", dir,
                       (long long)id, (long long)nv);
            goto done;
        }
        el_free(toks[id]);
        toks[id] = el_strdup(text);
        if (!toks[id]) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto done;
        }
        types[id] = spm && is_byte_token(text) ? TT_BYTE : TT_NORMAL;
        scores[id] = unigram ? score : -(float)id; /* SentencePiece BPE: earlier pieces merge first */
    }
    /* added tokens */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *jc = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(jid) || !cJSON_IsString(jc)) continue;
        int64_t id = (int64_t)jid->valuedouble;
        if (id < 0 || id >= nv) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s/tokenizer.json: added token id %lld is outside vocab_size %lld", dir,
                       (long long)id, (long long)nv);
            goto done;
        }
        el_free(toks[id]);
        toks[id] = el_strdup(jc->valuestring);
        if (!toks[id]) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto done;
        }
        types[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special")) ? TT_CONTROL : TT_USER;
        scores[id] = 0.0f;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    int32_t unk_id = cJSON_IsString(unk) ? find_token(toks, nv, unk->valuestring) : -1;
    if (unk_id >= 0) types[unk_id] = TT_UNKNOWN;
    /* ids the config sizes for but the tokenizer does not name (Qwen pads 151669 -> 151936) */
    for (int64_t i = 0; i < nv; i++)
        if (!toks[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
            if (!(toks[i] = el_strdup(pad))) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto done;
            }
            types[i] = TT_UNUSED;
            scores[i] = -1e9f;
        }

    kv_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    if (!spm) {
        const char *pre = strncmp(hp->arch, "qwen", 4) == 0 ? "qwen2" : !strcmp(hp->arch, "llama") ? "llama-bpe"
                                                                                                   : "default";
        kv_str(w, "tokenizer.ggml.pre", pre);
    } else {
        kv_str(w, "tokenizer.ggml.pre", "default");
    }
    kv_arr(w, "tokenizer.ggml.tokens", GT_STR, (uint64_t)nv);
    for (int64_t i = 0; i < nv; i++) raw_str(w, toks[i]);
    if (spm) {
        kv_arr(w, "tokenizer.ggml.scores", GT_F32, (uint64_t)nv);
        raw(w, scores, (size_t)nv * 4);
    }
    kv_arr(w, "tokenizer.ggml.token_type", GT_I32, (uint64_t)nv);
    raw(w, types, (size_t)nv * 4);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!spm && cJSON_IsArray(merges)) {
        kv_arr(w, "tokenizer.ggml.merges", GT_STR, (uint64_t)cJSON_GetArraySize(merges));
        for (const cJSON *m = merges->child; m; m = m->next) {
            if (cJSON_IsString(m)) {
                raw_str(w, m->valuestring);
            } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                       cJSON_IsString(m->child->next)) {
                const char *a = m->child->valuestring, *b = m->child->next->valuestring;
                raw_u64(w, strlen(a) + 1 + strlen(b));
                raw(w, a, strlen(a));
                raw(w, " ", 1);
                raw(w, b, strlen(b));
            } else {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s/tokenizer.json: bad merges entry", dir);
                goto done;
            }
        }
    }
    /* special ids: tokenizer_config.json first, then config/generation_config */
    int32_t bos = find_token(toks, nv, tok_cfg_str(tc, "bos_token"));
    int32_t eos = find_token(toks, nv, tok_cfg_str(tc, "eos_token"));
    int32_t pad = find_token(toks, nv, tok_cfg_str(tc, "pad_token"));
    if (bos < 0) bos = hp->bos_id;
    if (eos < 0 && hp->n_eos > 0) eos = hp->eos_ids[0];
    if (pad < 0) pad = hp->pad_id;
    if (bos >= 0 && bos < nv) kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0 && eos < nv) kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (pad >= 0 && pad < nv) kv_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    if (unk_id >= 0) kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk_id);
    const cJSON *ab = tc ? cJSON_GetObjectItemCaseSensitive(tc, "add_bos_token") : NULL;
    kv_bool(w, "tokenizer.ggml.add_bos_token", cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : spm);
    const cJSON *ae = tc ? cJSON_GetObjectItemCaseSensitive(tc, "add_eos_token") : NULL;
    kv_bool(w, "tokenizer.ggml.add_eos_token", cJSON_IsTrue(ae));
    /* chat template: chat_template.jinja, else tokenizer_config.json's string */
    char *jinja = NULL;
    if (el_path_join(path, sizeof path, dir, "chat_template.jinja") >= 0 && el_file_exists(path) &&
        el_read_file(path, 16u << 20, &jinja, NULL) >= 0) {
        kv_str(w, "tokenizer.chat_template", jinja);
        el_free(jinja);
    } else {
        const cJSON *ct = tc ? cJSON_GetObjectItemCaseSensitive(tc, "chat_template") : NULL;
        if (cJSON_IsString(ct)) kv_str(w, "tokenizer.chat_template", ct->valuestring);
    }
    s = w->st;
done:
    for (int64_t i = 0; toks && i < nv; i++) el_free(toks[i]);
    el_free(toks);
    el_free(types);
    el_free(scores);
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    return s;
}

/* ---- tensors --------------------------------------------------------------------------------------- */
typedef struct gtensor {
    char name[96];
    const el_st_tensor *src; /* NULL: rope_freqs (data in extra) */
    const float *extra;
    int n_dims;
    int64_t ne[2];   /* ne[0] = row length */
    int type;
    int permute_heads; /* > 0: llama Q/K row un-permute with this many heads */
    uint64_t offset, nbytes;
} gtensor;

static bool gguf_name(const char *canon, char *out, size_t cap) {
    static const struct { const char *hf, *gg; } layer_map[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.o_proj.bias", "attn_output.bias"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.gate_proj.bias", "ffn_gate.bias"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.up_proj.bias", "ffn_up.bias"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
        {"mlp.down_proj.bias", "ffn_down.bias"},
    };
    if (!strcmp(canon, "model.embed_tokens.weight")) return snprintf(out, cap, "token_embd.weight") > 0;
    if (!strcmp(canon, "model.norm.weight")) return snprintf(out, cap, "output_norm.weight") > 0;
    if (!strcmp(canon, "lm_head.weight")) return snprintf(out, cap, "output.weight") > 0;
    int layer, pos = 0;
    if (sscanf(canon, "model.layers.%d.%n", &layer, &pos) != 1 || pos == 0) return false;
    for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++)
        if (!strcmp(canon + pos, layer_map[i].hf)) return snprintf(out, cap, "blk.%d.%s", layer, layer_map[i].gg) > 0;
    return false;
}

/* convert_hf_to_gguf.py LlamaModel.permute: row (h, j, i) of HF [n_head, 2, hd/2] goes to (h, i, j). */
static int64_t permuted_src_row(int64_t r, int64_t rows, int n_head) {
    int64_t hd = rows / n_head, h = r / hd, w = r % hd;
    return h * hd + (w % 2) * (hd / 2) + w / 2;
}

static int parse_quant(const char *q, int *ftype) {
    if (!q || !strcmp(q, "none") || !strcmp(q, "f16") || !strcmp(q, "fp16")) return *ftype = 1, EL_GGML_F16;
    if (!strcmp(q, "f32") || !strcmp(q, "fp32")) return *ftype = 0, EL_GGML_F32;
    if (!strcmp(q, "bf16")) return *ftype = 32, EL_GGML_BF16;
    if (!strcmp(q, "q8_0")) return *ftype = 7, EL_GGML_Q8_0;
    if (!strcmp(q, "q4_0")) return *ftype = 2, EL_GGML_Q4_0;
    return -1;
}

static edgellm_status write_all(FILE *f, const void *p, size_t n, const char *path) {
    if (n && fwrite(p, 1, n, f) != n) return el_err(EDGELLM_STATUS_IO, "cannot write %s: %s", path, strerror(errno));
    return EDGELLM_STATUS_OK;
}

static edgellm_status write_pad(FILE *f, uint64_t pos, const char *path) {
    static const uint8_t zeros[GGUF_ALIGN];
    size_t pad = (size_t)((GGUF_ALIGN - pos % GGUF_ALIGN) % GGUF_ALIGN);
    return write_all(f, zeros, pad, path);
}

/* Streams one tensor: per output row, convert the (possibly permuted) source row to f32 and encode. */
static edgellm_status write_tensor(FILE *f, const gtensor *t, float *row, uint8_t *enc, const char *path) {
    const int64_t n = t->ne[0], rows = t->n_dims == 2 ? t->ne[1] : 1;
    const size_t rb = el_ggml_row_size(t->type, n);
    if (!t->src) {
        encode_row(t->type, t->extra, n, enc);
        return write_all(f, enc, rb, path);
    }
    const size_t es = el_dtype_size(t->src->dtype);
    const uint8_t *base = t->src->data;
    if (t->n_dims == 1 && t->permute_heads > 0) { /* q/k bias: permute elements */
        for (int64_t r = 0; r < n; r++) {
            el_convert(EL_DTYPE_F32, &row[r], t->src->dtype, base + (size_t)permuted_src_row(r, n, t->permute_heads) * es, 1);
        }
        encode_row(t->type, row, n, enc);
        return write_all(f, enc, rb, path);
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t sr = t->permute_heads > 0 ? permuted_src_row(r, rows, t->permute_heads) : r;
        el_convert(EL_DTYPE_F32, row, t->src->dtype, base + (size_t)sr * (size_t)n * es, (size_t)n);
        encode_row(t->type, row, n, enc);
        EL_TRY(write_all(f, enc, rb, path));
    }
    el_drop_pages(t->src->data, t->src->nbytes);
    return EDGELLM_STATUS_OK;
}

/* Llama-3 rope scaling as per-dimension frequency divisors (convert_hf_to_gguf.py LlamaModel). */
static void llama3_rope_factors(const el_hparams *hp, float *out, int64_t n_half) {
    const double dim = (double)(n_half * 2), base = hp->rope_theta, factor = hp->rope_factor;
    const double lo = hp->rope_low_freq_factor, hi = hp->rope_high_freq_factor;
    const double old_ctx = (double)hp->rope_orig_max_pos;
    const double lo_wl = old_ctx / lo, hi_wl = old_ctx / hi;
    for (int64_t i = 0; i < n_half; i++) {
        float freq = (float)(1.0 / pow(base, (double)(2 * i) / dim));
        double wl = 2.0 * 3.14159265358979323846 / freq;
        if (wl < hi_wl) out[i] = 1.0f;
        else if (wl > lo_wl) out[i] = (float)factor;
        else {
            double smooth = (old_ctx / wl - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
}

edgellm_status el_export_gguf(const char *hf_dir, const char *out_file, const char *quant, bool overwrite,
                              bool progress) {
    int ftype = 0;
    const int wtype = parse_quant(quant, &ftype);
    if (wtype < 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "gguf: unknown quantization '%s' (expected f16, bf16, f32, q8_0, q4_0)",
                      quant);
    if (!hf_dir || !out_file) return el_err(EDGELLM_STATUS_INVALID_ARG, "export: model and output paths are required");
    if (!el_dir_exists(hf_dir)) return el_err(EDGELLM_STATUS_IO, "model directory %s does not exist", hf_dir);
    struct stat sb;
    if (stat(out_file, &sb) == 0) {
        if (!overwrite) return el_err(EDGELLM_STATUS_INVALID_ARG, "output %s already exists (use --overwrite)", out_file);
        if (S_ISDIR(sb.st_mode)) return el_err(EDGELLM_STATUS_INVALID_ARG, "output %s is a directory", out_file);
    }

    edgellm_status s;
    cJSON *cfg = NULL;
    el_hparams hp;
    el_st_file st = {0};
    el_export_plan plan = {0};
    gtensor *ts = NULL;
    kvw kv = {0};
    el_buf info = {0};
    float *row = NULL, *rope_f = NULL;
    uint8_t *enc = NULL;
    FILE *f = NULL;
    char tmp[4096] = "";
    int64_t nt = 0;
    int n_fallback = 0;

    if ((s = el_load_model_config(hf_dir, &cfg, NULL, &hp)) < 0) goto fail;
    const char *arch = hp.arch;
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2") && strcmp(arch, "qwen3")) {
        s = el_err(EDGELLM_STATUS_UNSUPPORTED, "gguf: architecture %s has no GGUF mapping", arch);
        goto fail;
    }
    if (hp.act != EL_ACT_SILU || hp.partial_rotary_factor != 1.0f) {
        s = el_err(EDGELLM_STATUS_UNSUPPORTED, "gguf: only SiLU MLPs with full-head RoPE map to llama.cpp's %s", arch);
        goto fail;
    }
    if (hp.rope_type == EL_ROPE_LLAMA3 && strcmp(arch, "llama")) {
        s = el_err(EDGELLM_STATUS_UNSUPPORTED, "gguf: llama3 rope scaling is only mapped for the llama architecture");
        goto fail;
    }
    if ((s = el_st_open(hf_dir, &st)) < 0) goto fail;
    if ((s = el_export_plan_make(&hp, &st, "checkpoint", true, &plan)) < 0) goto fail;

    /* ---- tensor list ---- */
    ts = el_calloc((size_t)plan.n_items + 1, sizeof *ts);
    if (!ts) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    int64_t max_row = 64;
    if (hp.rope_type == EL_ROPE_LLAMA3) {
        int64_t nh = el_rope_n_rot(&hp) / 2;
        rope_f = el_calloc((size_t)nh, sizeof(float));
        if (!rope_f) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
        llama3_rope_factors(&hp, rope_f, nh);
        gtensor *t = &ts[nt++];
        snprintf(t->name, sizeof t->name, "rope_freqs.weight");
        t->extra = rope_f, t->n_dims = 1, t->ne[0] = nh, t->ne[1] = 1, t->type = EL_GGML_F32;
    }
    const bool is_llama = !strcmp(arch, "llama");
    for (int64_t i = 0; i < plan.n_items; i++) {
        const el_export_item *it = &plan.items[i];
        gtensor *t = &ts[nt++];
        if (!gguf_name(it->name, t->name, sizeof t->name)) {
            s = el_err(EDGELLM_STATUS_UNSUPPORTED, "gguf: no GGUF name for tensor %s", it->name);
            goto fail;
        }
        t->src = it->src;
        t->n_dims = it->n_dims;
        t->ne[0] = it->n_dims == 2 ? it->src->shape[1] : it->src->shape[0];
        t->ne[1] = it->n_dims == 2 ? it->src->shape[0] : 1;
        if (t->ne[0] > max_row) max_row = t->ne[0];
        if (it->n_dims == 1) {
            t->type = EL_GGML_F32;
        } else {
            t->type = wtype;
            if ((wtype == EL_GGML_Q8_0 || wtype == EL_GGML_Q4_0) && t->ne[0] % EL_GGML_QK != 0) {
                t->type = EL_GGML_F16;
                n_fallback++;
                EL_LOG_INFO("gguf: %s has rows of %lld (not a multiple of 32): stored as F16", t->name,
                            (long long)t->ne[0]);
            }
        }
        if (is_llama && (el_str_ends_with(it->name, "q_proj.weight") || el_str_ends_with(it->name, "q_proj.bias")))
            t->permute_heads = (int)hp.n_head;
        if (is_llama && (el_str_ends_with(it->name, "k_proj.weight") || el_str_ends_with(it->name, "k_proj.bias")))
            t->permute_heads = (int)hp.n_head_kv;
    }
    if (n_fallback) EL_LOG_WARN("gguf: %d weight tensors kept as F16 (row length not a multiple of 32)", n_fallback);

    /* ---- metadata ---- */
    const char *slash = strrchr(hf_dir, '/');
    const char *mname = slash && slash[1] ? slash + 1 : hf_dir;
    kv_str(&kv, "general.architecture", arch);
    kv_str(&kv, "general.name", mname);
    kv_u32(&kv, "general.file_type", (uint32_t)ftype);
    if (wtype == EL_GGML_Q8_0 || wtype == EL_GGML_Q4_0) kv_u32(&kv, "general.quantization_version", 2);
    kv_arch_u32(&kv, arch, "vocab_size", hp.n_vocab);
    kv_arch_u32(&kv, arch, "context_length", hp.max_pos);
    kv_arch_u32(&kv, arch, "embedding_length", hp.n_embd);
    kv_arch_u32(&kv, arch, "block_count", hp.n_layer);
    kv_arch_u32(&kv, arch, "feed_forward_length", hp.n_ff);
    kv_arch_u32(&kv, arch, "attention.head_count", hp.n_head);
    kv_arch_u32(&kv, arch, "attention.head_count_kv", hp.n_head_kv);
    kv_arch_u32(&kv, arch, "attention.key_length", hp.head_dim);
    kv_arch_u32(&kv, arch, "attention.value_length", hp.head_dim);
    kv_arch_u32(&kv, arch, "rope.dimension_count", el_rope_n_rot(&hp));
    kv_arch_f32(&kv, arch, "rope.freq_base", hp.rope_theta);
    kv_arch_f32(&kv, arch, "attention.layer_norm_rms_epsilon", hp.norm_eps);
    if (hp.rope_type == EL_ROPE_LINEAR) {
        kv_archf(&kv, arch, "rope.scaling.type", GT_STR, "linear");
        kv_arch_f32(&kv, arch, "rope.scaling.factor", hp.rope_factor);
    } else if (hp.rope_type == EL_ROPE_YARN) {
        kv_archf(&kv, arch, "rope.scaling.type", GT_STR, "yarn");
        kv_arch_f32(&kv, arch, "rope.scaling.factor", hp.rope_factor);
        kv_arch_u32(&kv, arch, "rope.scaling.original_context_length", hp.rope_orig_max_pos);
        kv_arch_f32(&kv, arch, "rope.scaling.yarn_beta_fast", hp.yarn_beta_fast);
        kv_arch_f32(&kv, arch, "rope.scaling.yarn_beta_slow", hp.yarn_beta_slow);
        if (hp.yarn_attn_factor > 0 || hp.yarn_mscale != 0 || hp.yarn_mscale_all_dim != 0)
            EL_LOG_WARN("gguf: yarn attention_factor/mscale are not mapped; llama.cpp uses its default "
                        "0.1*ln(factor)+1 scaling");
    }
    if ((s = kv.st) < 0) goto fail;
    if ((s = write_tokenizer(&kv, hf_dir, &hp)) < 0) goto fail;

    /* ---- tensor infos ---- */
    uint64_t off = 0;
    for (int64_t i = 0; i < nt; i++) {
        gtensor *t = &ts[i];
        t->nbytes = (uint64_t)el_ggml_row_size(t->type, t->ne[0]) * (uint64_t)t->ne[1];
        t->offset = off;
        off += (t->nbytes + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
        uint64_t len = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        uint64_t ne0 = (uint64_t)t->ne[0], ne1 = (uint64_t)t->ne[1];
        if ((s = el_buf_append(&info, &len, 8)) < 0 || (s = el_buf_append(&info, t->name, len)) < 0 ||
            (s = el_buf_append(&info, &nd, 4)) < 0 || (s = el_buf_append(&info, &ne0, 8)) < 0 ||
            (nd == 2 && (s = el_buf_append(&info, &ne1, 8)) < 0) || (s = el_buf_append(&info, &ty, 4)) < 0 ||
            (s = el_buf_append(&info, &t->offset, 8)) < 0)
            goto fail;
    }

    /* ---- write ---- */
    row = el_calloc((size_t)max_row, sizeof(float));
    enc = el_calloc((size_t)max_row, 4);
    if (!row || !enc) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", out_file, (int)getpid()) >= (int)sizeof tmp) {
        s = el_err(EDGELLM_STATUS_INVALID_ARG, "output path too long: %s", out_file);
        goto fail;
    }
    f = fopen(tmp, "wb");
    if (!f) {
        s = el_err(EDGELLM_STATUS_IO, "cannot create %s: %s", tmp, strerror(errno));
        tmp[0] = 0;
        goto fail;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    const uint32_t hdr[2] = {0x46554747u /* "GGUF" */, 3};
    const uint64_t counts[2] = {(uint64_t)nt, kv.n};
    if ((s = write_all(f, hdr, 8, tmp)) < 0 || (s = write_all(f, counts, 16, tmp)) < 0 ||
        (s = write_all(f, kv.b.data, kv.b.len, tmp)) < 0 || (s = write_all(f, info.data, info.len, tmp)) < 0 ||
        (s = write_pad(f, 24 + kv.b.len + info.len, tmp)) < 0)
        goto fail;
    double t0 = el_time_ms();
    for (int64_t i = 0; i < nt; i++) {
        if ((s = write_tensor(f, &ts[i], row, enc, tmp)) < 0 || (s = write_pad(f, ts[i].nbytes, tmp)) < 0) goto fail;
        if (progress && ((i + 1) % 16 == 0 || i + 1 == nt))
            EL_LOG_INFO("gguf: %lld/%lld tensors", (long long)(i + 1), (long long)nt);
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        s = el_err(EDGELLM_STATUS_IO, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) {
        s = el_err(EDGELLM_STATUS_IO, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, out_file) != 0) {
        s = el_err(EDGELLM_STATUS_IO, "cannot move %s to %s: %s", tmp, out_file, strerror(errno));
        goto fail;
    }
    EL_LOG_INFO("gguf: wrote %s (%lld tensors, %.1f MB) in %.0f ms", out_file, (long long)nt, (double)off / 1e6,
                el_time_ms() - t0);
    s = EDGELLM_STATUS_OK;
    goto done;
fail:
    if (f) fclose(f);
    if (tmp[0]) unlink(tmp);
done:
    el_free(row);
    el_free(enc);
    el_free(rope_f);
    el_free(ts);
    el_buf_free(&kv.b);
    el_buf_free(&info);
    el_export_plan_free(&plan);
    el_st_close(&st);
    cJSON_Delete(cfg);
    return s;
}
