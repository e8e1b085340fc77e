/*
 * chat_template.c - public chat-template API: loading from a model dir (processed_chat_template.json,
 * chat_template.jinja, chat_template.json, tokenizer_config.json) and rendering, as HF transformers'
 * apply_chat_template renders (Jinja) or as TensorRT Edge-LLM concatenates (processed JSON).
 */
#include "jinja.h"
#include "edgellm/tokenizer.h"

#include <cjson/cJSON.h>
#include <string.h>

struct edgellm_chat_template {
    el_jinja *jinja;
    cJSON *processed; /* processed_chat_template.json (takes precedence) */
    char *bos, *eos;
};

#define MAX_FILE ((size_t)64 << 20)

void edgellm_chat_template_free(edgellm_chat_template *t) {
    if (!t) return;
    el_jinja_free(t->jinja);
    cJSON_Delete(t->processed);
    el_free(t->bos);
    el_free(t->eos);
    el_free(t);
}

edgellm_status edgellm_chat_template_from_string(const char *src, const char *bos, const char *eos,
                                                 edgellm_chat_template **out) {
    if (!out) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: out is NULL");
    *out = NULL;
    if (!src) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: source is NULL");
    edgellm_chat_template *t = el_calloc(1, sizeof *t);
    if (!t) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
    edgellm_status st = el_jinja_parse(src, &t->jinja);
    if (st >= 0 && bos && !(t->bos = el_strdup(bos))) st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    if (st >= 0 && eos && !(t->eos = el_strdup(eos))) st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    if (st < 0) {
        edgellm_chat_template_free(t);
        return st;
    }
    *out = t;
    return EDGELLM_STATUS_OK;
}

/* string or {"content": string} */
static const char *token_str(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

/* chat_template value: string, or list of {name, template} (use "default") */
static edgellm_status template_from_value(const cJSON *v, const char *path, const char **out) {
    *out = NULL;
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return EDGELLM_STATUS_OK;
    }
    if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tt = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(n) && cJSON_IsString(tt) && !strcmp(n->valuestring, "default")) {
                *out = tt->valuestring;
                return EDGELLM_STATUS_OK;
            }
        }
        return el_err(EDGELLM_STATUS_FORMAT, "%s: chat_template list has no \"default\" entry", path);
    }
    if (v && !cJSON_IsNull(v)) return el_err(EDGELLM_STATUS_FORMAT, "%s: chat_template must be a string or a list", path);
    return EDGELLM_STATUS_OK;
}

edgellm_status edgellm_chat_template_load(const char *dir, edgellm_chat_template **out) {
    if (!out || !dir) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: NULL argument");
    *out = NULL;
    char path[4096];
    edgellm_status st = EDGELLM_STATUS_OK;
    cJSON *cfg = NULL, *aux = NULL;
    char *src = NULL;
    const char *tpl = NULL;
    edgellm_chat_template *t = NULL;

    EL_CHECK(el_path_join(path, sizeof path, dir, "tokenizer_config.json"));
    if (el_file_exists(path)) EL_CHECK(el_json_load(path, MAX_FILE, &cfg));
    const char *bos = cfg ? token_str(cfg, "bos_token") : NULL;
    const char *eos = cfg ? token_str(cfg, "eos_token") : NULL;

    EL_CHECK(el_path_join(path, sizeof path, dir, "processed_chat_template.json"));
    if (el_file_exists(path)) {
        cJSON *p;
        EL_CHECK(el_json_load(path, MAX_FILE, &p));
        const cJSON *roles = cJSON_GetObjectItemCaseSensitive(p, "roles");
        if (!cJSON_IsObject(p) || !cJSON_IsObject(roles)) {
            cJSON_Delete(p);
            st = el_err(EDGELLM_STATUS_FORMAT, "%s: expected an object with \"roles\"", path);
            goto fail;
        }
        t = el_calloc(1, sizeof *t);
        if (!t) {
            cJSON_Delete(p);
            st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
        t->processed = p;
        goto tokens;
    }
    EL_CHECK(el_path_join(path, sizeof path, dir, "chat_template.jinja"));
    if (el_file_exists(path)) {
        size_t len;
        EL_CHECK(el_read_file(path, MAX_FILE, &src, &len));
        tpl = src;
    }
    if (!tpl) {
        EL_CHECK(el_path_join(path, sizeof path, dir, "chat_template.json"));
        if (el_file_exists(path)) {
            EL_CHECK(el_json_load(path, MAX_FILE, &aux));
            EL_CHECK(template_from_value(cJSON_GetObjectItemCaseSensitive(aux, "chat_template"), path, &tpl));
        }
    }
    if (!tpl && cfg) {
        EL_CHECK(el_path_join(path, sizeof path, dir, "tokenizer_config.json"));
        EL_CHECK(template_from_value(cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), path, &tpl));
    }
    if (!tpl) {
        st = el_err(EDGELLM_STATUS_IO, "%s: no chat template found (processed_chat_template.json, chat_template.jinja, "
                                       "chat_template.json or tokenizer_config.json \"chat_template\")", dir);
        goto fail;
    }
    EL_CHECK(edgellm_chat_template_from_string(tpl, NULL, NULL, &t));
tokens:
    if (bos && !(t->bos = el_strdup(bos))) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    if (eos && !(t->eos = el_strdup(eos))) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    cJSON_Delete(cfg);
    cJSON_Delete(aux);
    el_free(src);
    *out = t;
    return EDGELLM_STATUS_OK;
fail:
    edgellm_chat_template_free(t);
    cJSON_Delete(cfg);
    cJSON_Delete(aux);
    el_free(src);
    return st;
}

/* ---- processed_chat_template.json (TensorRT Edge-LLM format) ------------------------------------- */
static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static edgellm_status render_processed(const cJSON *p, const cJSON *msgs, bool add_gen, bool thinking, el_buf *b) {
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(p, "roles");
    const cJSON *ctypes = cJSON_GetObjectItemCaseSensitive(p, "content_types");
    const char *dsys = jstr(p, "default_system_prompt");
    bool has_system = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const char *r = jstr(m, "role");
        if (r && !strcmp(r, "system")) has_system = true;
    }
    if (!has_system && dsys && dsys[0]) {
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(roles, "system");
        const char *pre = jstr(rs, "prefix"), *suf = jstr(rs, "suffix");
        EL_TRY(el_buf_append_str(b, pre ? pre : ""));
        EL_TRY(el_buf_append_str(b, dsys));
        EL_TRY(el_buf_append_str(b, suf ? suf : ""));
    }
    cJSON_ArrayForEach(m, msgs) {
        const char *r = jstr(m, "role");
        if (!r) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: message without a string \"role\"");
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(roles, r);
        if (!cJSON_IsObject(rs)) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: role '%s' is not in the template", r);
        const char *pre = jstr(rs, "prefix"), *suf = jstr(rs, "suffix");
        EL_TRY(el_buf_append_str(b, pre ? pre : ""));
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(c)) {
            EL_TRY(el_buf_append_str(b, c->valuestring));
        } else if (cJSON_IsArray(c)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, c) {
                const char *ty = jstr(it, "type");
                if (ty && !strcmp(ty, "text")) {
                    const char *tx = jstr(it, "text");
                    EL_TRY(el_buf_append_str(b, tx ? tx : ""));
                } else if (ty) {
                    const char *fmt = jstr(cJSON_GetObjectItemCaseSensitive(ctypes, ty), "format");
                    if (!fmt) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: content type '%s' is not in the template", ty);
                    EL_TRY(el_buf_append_str(b, fmt));
                } else {
                    return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: content item without \"type\"");
                }
            }
        } else if (c && !cJSON_IsNull(c)) {
            return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: content must be a string or a list");
        }
        EL_TRY(el_buf_append_str(b, suf ? suf : ""));
    }
    if (add_gen) {
        const char *g = thinking ? jstr(p, "generation_prompt_thinking") : NULL;
        if (!g) g = jstr(p, "generation_prompt");
        EL_TRY(el_buf_append_str(b, g ? g : ""));
    }
    return EDGELLM_STATUS_OK;
}

/* true if a JSON string in text holds the escape \u0000 */
static bool has_nul_escape(const char *text) {
    for (const char *p = text; *p; p++)
        if (*p == '\\' && p[1]) {
            if (p[1] == 'u' && !strncmp(p + 2, "0000", 4)) return true;
            p++; /* skip the escaped char (so \\u0000 is a backslash and "u0000") */
        }
    return false;
}

edgellm_status edgellm_chat_template_render(const edgellm_chat_template *t, const char *messages_json,
                                            bool add_generation_prompt, const char *extra_json, char **out) {
    if (!out) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: out is NULL");
    *out = NULL;
    if (!t || !messages_json) return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: NULL argument");
    edgellm_status st = EDGELLM_STATUS_OK;
    cJSON *msgs = cJSON_Parse(messages_json), *extra = NULL, *vars = NULL;
    el_jinja_num *nums = NULL;
    size_t nn = 0, ncap = 0;
    if (!msgs || !cJSON_IsArray(msgs)) {
        st = el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: messages must be a JSON array");
        goto done;
    }
    /* cJSON strings end at NUL: refuse "\u0000" rather than render a truncated text */
    if (has_nul_escape(messages_json) || (extra_json && has_nul_escape(extra_json))) {
        st = el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: NUL characters (\\u0000) in messages are not supported");
        goto done;
    }
    if (extra_json && extra_json[0]) {
        extra = cJSON_Parse(extra_json);
        if (extra && cJSON_IsNull(extra)) { /* "null": no extra variables */
            cJSON_Delete(extra);
            extra = NULL;
            extra_json = NULL;
        } else if (!extra || !cJSON_IsObject(extra)) {
            st = el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: extra must be a JSON object");
            goto done;
        }
    }
    /* number literals as written (Python's json: "1.0" is a float, "1" an int) */
    st = el_jinja_scan_numbers(messages_json, msgs, &nums, &nn, &ncap);
    if (st >= 0 && extra) st = el_jinja_scan_numbers(extra_json, extra, &nums, &nn, &ncap);
    if (st < 0) goto done;
    el_jinja_sort_numbers(nums, nn);
    if (t->processed) {
        const cJSON *th = extra ? cJSON_GetObjectItemCaseSensitive(extra, "enable_thinking") : NULL;
        el_buf b = {0};
        st = render_processed(t->processed, msgs, add_generation_prompt, cJSON_IsTrue(th), &b);
        if (st >= 0) st = el_buf_append(&b, "", 1);
        if (st >= 0) {
            *out = b.data;
            b.data = NULL;
        }
        el_buf_free(&b);
        goto done;
    }
    /* variables as transformers passes them: messages, tools, documents, add_generation_prompt,
     * special tokens, then the extra kwargs (which may override) */
    vars = cJSON_CreateObject();
    if (!vars) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    cJSON_AddItemToObject(vars, "messages", msgs);
    msgs = NULL;
    cJSON_AddItemToObject(vars, "tools", cJSON_CreateNull());
    cJSON_AddItemToObject(vars, "documents", cJSON_CreateNull());
    cJSON_AddItemToObject(vars, "add_generation_prompt", cJSON_CreateBool(add_generation_prompt));
    if (t->bos) cJSON_AddItemToObject(vars, "bos_token", cJSON_CreateString(t->bos));
    if (t->eos) cJSON_AddItemToObject(vars, "eos_token", cJSON_CreateString(t->eos));
    if (extra) {
        cJSON *e = extra->child;
        while (e) {
            cJSON *next = e->next;
            cJSON *d = cJSON_DetachItemViaPointer(extra, e);
            char *key = el_strdup(d->string ? d->string : "");
            if (!key) {
                cJSON_Delete(d);
                st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto done;
            }
            cJSON_DeleteItemFromObjectCaseSensitive(vars, key);
            cJSON_AddItemToObject(vars, key, d);
            el_free(key);
            e = next;
        }
    }
    if (st >= 0) st = el_jinja_render(t->jinja, vars, nums, nn, out);
done:
    el_free(nums);
    cJSON_Delete(msgs);
    cJSON_Delete(extra);
    cJSON_Delete(vars);
    return st;
}
