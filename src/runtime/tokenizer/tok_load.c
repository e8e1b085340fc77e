/* tok_load.c - tokenizer.json / tokenizer_config.json parsing into the internal pipeline. */
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

edgellm_status tk_merge_put(tk_merge_map *mm, int32_t a, int32_t b, uint32_t rank, uint32_t new_id);

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *k, bool def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static const char *jtype(const cJSON *o) {
    const char *t = jstr(o, "type");
    return t ? t : "";
}

static edgellm_status first_cp(const char *s, int32_t *cp) {
    if (!s || !*s) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: empty character in tokenizer.json");
    tk_utf8_decode(s, strlen(s), cp);
    return EDGELLM_STATUS_OK;
}

/* {"String": "..."} or {"Regex": "..."} */
static edgellm_status parse_pattern(const cJSON *p, tk_regex *re, const char *ctx) {
    const char *s = jstr(p, "String");
    if (s) return tk_regex_init(re, s, true);
    s = jstr(p, "Regex");
    if (s) return tk_regex_init(re, s, false);
    return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: %s: pattern must be {\"String\"} or {\"Regex\"}", ctx);
}

static edgellm_status alloc_children(void **arr, size_t *n, size_t elem, const cJSON *list, const char *ctx) {
    if (!cJSON_IsArray(list)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: %s must be an array", ctx);
    size_t count = (size_t)cJSON_GetArraySize(list);
    *arr = el_calloc(count ? count : 1, elem);
    if (!*arr) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    *n = count; /* only once allocated: the free functions walk n children */
    return EDGELLM_STATUS_OK;
}

/* ---- normalizer ------------------------------------------------------------------------------- */
static edgellm_status parse_norm(const cJSON *j, tk_norm *n) {
    const char *t = jtype(j);
    if (!strcmp(t, "Sequence")) {
        n->type = TK_NORM_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        EL_TRY(alloc_children((void **)&n->children, &n->n_children, sizeof *n->children, list, "normalizers"));
        size_t i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, list) EL_TRY(parse_norm(c, &n->children[i++]));
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "NFC")) return n->type = TK_NORM_NFC, EDGELLM_STATUS_OK;
    if (!strcmp(t, "NFD")) return n->type = TK_NORM_NFD, EDGELLM_STATUS_OK;
    if (!strcmp(t, "NFKC")) return n->type = TK_NORM_NFKC, EDGELLM_STATUS_OK;
    if (!strcmp(t, "NFKD")) return n->type = TK_NORM_NFKD, EDGELLM_STATUS_OK;
    if (!strcmp(t, "Lowercase")) return n->type = TK_NORM_LOWERCASE, EDGELLM_STATUS_OK;
    if (!strcmp(t, "StripAccents")) return n->type = TK_NORM_STRIP_ACCENTS, EDGELLM_STATUS_OK;
    if (!strcmp(t, "ByteLevel")) return n->type = TK_NORM_BYTELEVEL, EDGELLM_STATUS_OK;
    if (!strcmp(t, "Nmt")) return n->type = TK_NORM_NMT, EDGELLM_STATUS_OK;
    if (!strcmp(t, "Strip")) {
        n->type = TK_NORM_STRIP;
        n->left = jbool(j, "strip_left", true);
        n->right = jbool(j, "strip_right", true);
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "Replace")) {
        n->type = TK_NORM_REPLACE;
        const char *c = jstr(j, "content");
        if (!c) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Replace normalizer needs 'content'");
        n->content = el_strdup(c);
        if (!n->content) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        return parse_pattern(cJSON_GetObjectItemCaseSensitive(j, "pattern"), &n->re, "Replace normalizer");
    }
    if (!strcmp(t, "Prepend")) {
        n->type = TK_NORM_PREPEND;
        const char *c = jstr(j, "prepend");
        if (!c) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Prepend normalizer needs 'prepend'");
        n->content = el_strdup(c);
        return n->content ? EDGELLM_STATUS_OK : el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    if (!strcmp(t, "BertNormalizer")) {
        n->type = TK_NORM_BERT;
        n->clean_text = jbool(j, "clean_text", true);
        n->handle_chinese = jbool(j, "handle_chinese_chars", true);
        n->lowercase = jbool(j, "lowercase", true);
        n->strip_accents = jbool(j, "strip_accents", n->lowercase); /* null -> follows lowercase */
        return EDGELLM_STATUS_OK;
    }
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: normalizer type '%s' is not supported", t);
}

/* ---- pre-tokenizer ---------------------------------------------------------------------------- */
static edgellm_status parse_behavior(const cJSON *j, tk_split_behavior def, tk_split_behavior *out) {
    const char *b = jstr(j, "behavior");
    if (!b) {
        *out = def;
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(b, "Removed")) *out = TK_SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) *out = TK_SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) *out = TK_SPLIT_MERGED_PREV;
    else if (!strcmp(b, "MergedWithNext")) *out = TK_SPLIT_MERGED_NEXT;
    else if (!strcmp(b, "Contiguous")) *out = TK_SPLIT_CONTIGUOUS;
    else return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: unknown split behavior '%s'", b);
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_prepend_scheme(const cJSON *j, tk_prepend_scheme *out) {
    const char *s = jstr(j, "prepend_scheme");
    if (s) {
        if (!strcmp(s, "always")) *out = TK_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *out = TK_PREPEND_FIRST;
        else if (!strcmp(s, "never")) *out = TK_PREPEND_NEVER;
        else return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: unknown prepend_scheme '%s'", s);
        return EDGELLM_STATUS_OK;
    }
    *out = jbool(j, "add_prefix_space", true) ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER; /* legacy field */
    return EDGELLM_STATUS_OK;
}

const char *tk_gpt2_regex(void);

static edgellm_status parse_pre(const cJSON *j, tk_pre *p) {
    const char *t = jtype(j);
    if (!strcmp(t, "Sequence")) {
        p->type = TK_PRE_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        EL_TRY(alloc_children((void **)&p->children, &p->n_children, sizeof *p->children, list, "pretokenizers"));
        size_t i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, list) EL_TRY(parse_pre(c, &p->children[i++]));
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "Split")) {
        p->type = TK_PRE_SPLIT;
        p->invert = jbool(j, "invert", false);
        EL_TRY(parse_behavior(j, TK_SPLIT_REMOVED, &p->behavior));
        return parse_pattern(cJSON_GetObjectItemCaseSensitive(j, "pattern"), &p->re, "Split pre-tokenizer");
    }
    if (!strcmp(t, "ByteLevel")) {
        p->type = TK_PRE_BYTELEVEL;
        p->add_prefix_space = jbool(j, "add_prefix_space", true);
        p->use_regex = jbool(j, "use_regex", true);
        return p->use_regex ? tk_regex_init(&p->re, tk_gpt2_regex(), false) : EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "Metaspace")) {
        p->type = TK_PRE_METASPACE;
        const char *r = jstr(j, "replacement");
        if (!r || !*r || strlen(r) > 4) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Metaspace needs a one-char 'replacement'");
        int32_t cp;
        int l = tk_utf8_decode(r, strlen(r), &cp);
        memcpy(p->replacement, r, (size_t)l);
        p->replacement[l] = 0;
        p->replacement_cp = cp;
        p->split = jbool(j, "split", true);
        return parse_prepend_scheme(j, &p->prepend_scheme);
    }
    if (!strcmp(t, "Digits")) {
        p->type = TK_PRE_DIGITS;
        p->individual_digits = jbool(j, "individual_digits", false);
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "Punctuation")) {
        p->type = TK_PRE_PUNCTUATION;
        return parse_behavior(j, TK_SPLIT_ISOLATED, &p->behavior);
    }
    if (!strcmp(t, "Whitespace")) {
        p->type = TK_PRE_WHITESPACE;
        /* HF uses the Rust regex crate here (not Oniguruma): \w is Alphabetic|M|Nd|Pc|Join_Control */
        return tk_regex_init(&p->re,
                             "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]+"
                             "|[^\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}\\s]+",
                             false);
    }
    if (!strcmp(t, "WhitespaceSplit")) return p->type = TK_PRE_WHITESPACE_SPLIT, EDGELLM_STATUS_OK;
    if (!strcmp(t, "BertPreTokenizer")) return p->type = TK_PRE_BERT, EDGELLM_STATUS_OK;
    if (!strcmp(t, "CharDelimiterSplit")) {
        p->type = TK_PRE_CHAR_DELIMITER;
        const char *d = jstr(j, "delimiter");
        if (!d || !*d) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: CharDelimiterSplit needs 'delimiter'");
        tk_utf8_decode(d, strlen(d), &p->delimiter);
        return EDGELLM_STATUS_OK;
    }
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: pre-tokenizer type '%s' is not supported", t);
}

/* ---- decoder ---------------------------------------------------------------------------------- */
static edgellm_status parse_dec(const cJSON *j, tk_dec *d) {
    const char *t = jtype(j);
    if (!strcmp(t, "Sequence")) {
        d->type = TK_DEC_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        EL_TRY(alloc_children((void **)&d->children, &d->n_children, sizeof *d->children, list, "decoders"));
        size_t i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, list) EL_TRY(parse_dec(c, &d->children[i++]));
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "ByteLevel")) return d->type = TK_DEC_BYTELEVEL, EDGELLM_STATUS_OK;
    if (!strcmp(t, "ByteFallback")) return d->type = TK_DEC_BYTEFALLBACK, EDGELLM_STATUS_OK;
    if (!strcmp(t, "Fuse")) return d->type = TK_DEC_FUSE, EDGELLM_STATUS_OK;
    if (!strcmp(t, "Metaspace")) {
        d->type = TK_DEC_METASPACE;
        EL_TRY(first_cp(jstr(j, "replacement"), &d->replacement_cp));
        return parse_prepend_scheme(j, &d->prepend_scheme);
    }
    if (!strcmp(t, "Replace")) {
        d->type = TK_DEC_REPLACE;
        const char *c = jstr(j, "content");
        if (!c) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Replace decoder needs 'content'");
        d->content = el_strdup(c);
        if (!d->content) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        return parse_pattern(cJSON_GetObjectItemCaseSensitive(j, "pattern"), &d->re, "Replace decoder");
    }
    if (!strcmp(t, "Strip")) {
        d->type = TK_DEC_STRIP;
        EL_TRY(first_cp(jstr(j, "content"), &d->strip_cp));
        EL_TRY(el_json_int(j, "start", 0, &d->start, NULL));
        EL_TRY(el_json_int(j, "stop", 0, &d->stop, NULL));
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "WordPiece")) {
        d->type = TK_DEC_WORDPIECE;
        const char *p = jstr(j, "prefix");
        d->content = el_strdup(p ? p : "##");
        d->cleanup = jbool(j, "cleanup", true);
        return d->content ? EDGELLM_STATUS_OK : el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    if (!strcmp(t, "BPEDecoder")) {
        d->type = TK_DEC_BPE;
        const char *s = jstr(j, "suffix");
        d->content = el_strdup(s ? s : "</w>");
        return d->content ? EDGELLM_STATUS_OK : el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: decoder type '%s' is not supported", t);
}

/* ---- post-processor --------------------------------------------------------------------------- */
static edgellm_status ids_append(tk_post *p, int32_t v) {
    int32_t *n = el_realloc(p->ids, (p->n_ids + 1) * sizeof *n);
    if (!n) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    p->ids = n;
    p->ids[p->n_ids++] = v;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_post(const cJSON *j, tk_post *p) {
    const char *t = jtype(j);
    if (!strcmp(t, "Sequence")) {
        p->type = TK_POST_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "processors");
        EL_TRY(alloc_children((void **)&p->children, &p->n_children, sizeof *p->children, list, "processors"));
        size_t i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, list) EL_TRY(parse_post(c, &p->children[i++]));
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "ByteLevel")) return p->type = TK_POST_NOOP, EDGELLM_STATUS_OK;
    if (!strcmp(t, "TemplateProcessing")) {
        p->type = TK_POST_TEMPLATE;
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
        if (!cJSON_IsArray(single)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: TemplateProcessing.single must be an array");
        const cJSON *it;
        cJSON_ArrayForEach(it, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
            if (sq) {
                EL_TRY(ids_append(p, -2));
            } else if (sp) {
                const char *name = jstr(sp, "id");
                const cJSON *st = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
                const cJSON *ids = st ? cJSON_GetObjectItemCaseSensitive(st, "ids") : NULL;
                if (!cJSON_IsArray(ids))
                    return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: TemplateProcessing: special token '%s' has no ids",
                                  name ? name : "?");
                const cJSON *v;
                cJSON_ArrayForEach(v, ids) {
                    if (!cJSON_IsNumber(v)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: TemplateProcessing: bad id");
                    EL_TRY(ids_append(p, (int32_t)v->valuedouble));
                }
            } else {
                return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: TemplateProcessing: bad template piece");
            }
        }
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(t, "RobertaProcessing") || !strcmp(t, "BertProcessing")) {
        p->type = TK_POST_TEMPLATE;
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(j, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si))
            return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: %s needs cls and sep as [token, id]", t);
        EL_TRY(ids_append(p, (int32_t)ci->valuedouble));
        EL_TRY(ids_append(p, -2));
        return ids_append(p, (int32_t)si->valuedouble);
    }
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: post-processor type '%s' is not supported", t);
}

/* ---- model ------------------------------------------------------------------------------------ */
static edgellm_status set_token(tk_model *m, int32_t id, const char *s, size_t len) {
    if (id < 0 || id >= m->n_ids) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: token id %d out of range", id);
    EL_TRY(tk_map_put(&m->vocab, s, len, id));
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_model(const cJSON *j, tk_model *m) {
    const char *t = jstr(j, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(j, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(j, "merges");
    if (!t) t = merges ? "BPE" : cJSON_IsArray(vocab) ? "Unigram" : "WordPiece";
    if (!strcmp(t, "BPE")) m->type = TK_MODEL_BPE;
    else if (!strcmp(t, "WordPiece")) m->type = TK_MODEL_WORDPIECE;
    else if (!strcmp(t, "Unigram")) m->type = TK_MODEL_UNIGRAM;
    else if (!strcmp(t, "WordLevel")) m->type = TK_MODEL_WORDLEVEL;
    else return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: model type '%s' is not supported", t);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(j, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0.0)
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: BPE dropout is not supported");
    m->unk_id = -1;
    /* vocab */
    int32_t max_id = -1;
    if (m->type == TK_MODEL_UNIGRAM) {
        if (!cJSON_IsArray(vocab)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Unigram vocab must be an array");
        max_id = cJSON_GetArraySize(vocab) - 1;
    } else {
        if (!cJSON_IsObject(vocab)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: model.vocab must be an object");
        const cJSON *v;
        cJSON_ArrayForEach(v, vocab) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e8)
                return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: vocab entry '%s' has a bad id", v->string);
            if ((int32_t)v->valuedouble > max_id) max_id = (int32_t)v->valuedouble;
        }
    }
    m->n_ids = max_id + 1;
    EL_TRY(tk_map_reserve(&m->vocab, (size_t)cJSON_GetArraySize(vocab), (size_t)cJSON_GetArraySize(vocab) * 8));
    if (m->type == TK_MODEL_UNIGRAM) {
        m->scores = el_calloc((size_t)(m->n_ids ? m->n_ids : 1), sizeof *m->scores);
        if (!m->scores) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        int32_t i = 0;
        const cJSON *v;
        m->min_score = 1e300;
        size_t maxlen = 1;
        cJSON_ArrayForEach(v, vocab) {
            const cJSON *s = cJSON_GetArrayItem(v, 0), *sc = cJSON_GetArrayItem(v, 1);
            if (!cJSON_IsString(s) || !cJSON_IsNumber(sc))
                return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Unigram vocab entry %d must be [piece, score]", i);
            EL_TRY(set_token(m, i, s->valuestring, strlen(s->valuestring)));
            m->scores[i] = sc->valuedouble;
            if (sc->valuedouble < m->min_score) m->min_score = sc->valuedouble;
            if (strlen(s->valuestring) > maxlen) maxlen = strlen(s->valuestring);
            i++;
        }
        m->max_input_chars_per_word = (int64_t)maxlen;
        int64_t unk;
        bool present;
        EL_TRY(el_json_int(j, "unk_id", -1, &unk, &present));
        m->unk_id = (int32_t)unk;
        m->byte_fallback = jbool(j, "byte_fallback", false);
        m->fuse_unk = true; /* Unigram always fuses unknowns */
    } else {
        const cJSON *v;
        cJSON_ArrayForEach(v, vocab) EL_TRY(set_token(m, (int32_t)v->valuedouble, v->string, strlen(v->string)));
        const char *unk = jstr(j, "unk_token");
        if (unk) m->unk_id = tk_map_get(&m->vocab, unk, strlen(unk));
        if (m->type == TK_MODEL_BPE && unk && m->unk_id < 0) m->unk_id = -1; /* HF errors only when used */
        m->fuse_unk = jbool(j, "fuse_unk", false);
        m->byte_fallback = jbool(j, "byte_fallback", false);
        m->ignore_merges = jbool(j, "ignore_merges", false);
        const char *pre = jstr(j, "continuing_subword_prefix");
        const char *suf = jstr(j, "end_of_word_suffix");
        if (m->type == TK_MODEL_WORDPIECE && !pre) pre = "##";
        if (pre && *pre) m->prefix = el_strdup(pre);
        if (suf && *suf) m->suffix = el_strdup(suf);
        EL_TRY(el_json_int(j, "max_input_chars_per_word", 100, &m->max_input_chars_per_word, NULL));
    }
    m->id_to_tok = el_calloc((size_t)(m->n_ids ? m->n_ids : 1), sizeof *m->id_to_tok);
    m->id_len = el_calloc((size_t)(m->n_ids ? m->n_ids : 1), sizeof *m->id_len);
    if (!m->id_to_tok || !m->id_len) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    for (size_t i = 0; i < m->vocab.n; i++) { /* the vocab arena does not move after this */
        int32_t id = m->vocab.e[i].val;
        m->id_to_tok[id] = (char *)tk_map_key(&m->vocab, i);
        m->id_len[id] = m->vocab.e[i].klen;
    }
    if (m->type == TK_MODEL_BPE) {
        if (!cJSON_IsArray(merges) && merges) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: model.merges must be an array");
        size_t nm = merges ? (size_t)cJSON_GetArraySize(merges) : 0;
        size_t slots = 16;
        while (slots < nm * 2 + 16) slots *= 2;
        m->merges.keys = el_calloc(slots, sizeof *m->merges.keys);
        m->merges.rank = el_malloc(slots * sizeof *m->merges.rank);
        m->merges.new_id = el_malloc(slots * sizeof *m->merges.new_id);
        if (!m->merges.keys || !m->merges.rank || !m->merges.new_id)
            return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        m->merges.mask = slots - 1;
        m->merges.n = 0;
        size_t plen = m->prefix ? strlen(m->prefix) : 0;
        el_buf nb = {0};
        uint32_t rank = 0;
        const cJSON *mg;
        edgellm_status st = EDGELLM_STATUS_OK;
        cJSON_ArrayForEach(mg, merges) {
            const char *a, *b;
            size_t al, bl;
            if (cJSON_IsString(mg)) {
                const char *s = mg->valuestring;
                const char *sp = strchr(s, ' ');
                if (!sp || strchr(sp + 1, ' ')) {
                    st = el_err(EDGELLM_STATUS_FORMAT, "tokenizer: merge %u ('%s') must be \"a b\"", rank + 1, s);
                    break;
                }
                a = s, al = (size_t)(sp - s), b = sp + 1, bl = strlen(sp + 1);
            } else if (cJSON_IsArray(mg) && cJSON_GetArraySize(mg) == 2 && cJSON_IsString(cJSON_GetArrayItem(mg, 0)) &&
                       cJSON_IsString(cJSON_GetArrayItem(mg, 1))) {
                a = cJSON_GetArrayItem(mg, 0)->valuestring, b = cJSON_GetArrayItem(mg, 1)->valuestring;
                al = strlen(a), bl = strlen(b);
            } else {
                st = el_err(EDGELLM_STATUS_FORMAT, "tokenizer: merge %u must be a string or a pair", rank + 1);
                break;
            }
            int32_t ai = tk_map_get(&m->vocab, a, al), bi = tk_map_get(&m->vocab, b, bl);
            nb.len = 0;
            size_t skip = bl >= plen ? plen : 0; /* HF: &b[prefix_len..] */
            if ((st = el_buf_append(&nb, a, al)) < 0 || (st = el_buf_append(&nb, b + skip, bl - skip)) < 0) break;
            int32_t ni = tk_map_get(&m->vocab, nb.data, nb.len);
            if (ai < 0 || bi < 0 || ni < 0) {
                st = el_err(EDGELLM_STATUS_FORMAT, "tokenizer: merge %u uses a token that is not in the vocab", rank + 1);
                break;
            }
            tk_merge_put(&m->merges, ai, bi, rank, (uint32_t)ni);
            rank++;
        }
        el_buf_free(&nb);
        EL_TRY(st);
    }
    return tk_model_prepare(m);
}

/* ---- added tokens trie ---------------------------------------------------------------------------- */
edgellm_status tk_trie_add(tk_trie *t, const char *s, size_t len, int32_t val);
void tk_trie_free(tk_trie *t);

/* ---- top level ---------------------------------------------------------------------------------- */
static int32_t config_token_id(edgellm_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = NULL;
    if (cJSON_IsString(v)) s = v->valuestring;
    else if (cJSON_IsObject(v)) s = jstr(v, "content");
    if (!s) return -1;
    return edgellm_tokenizer_token_to_id(t, s);
}

static bool dec_has(const tk_dec *d, tk_dec_type ty) {
    if (d->type == ty) return true;
    for (size_t i = 0; i < d->n_children; i++)
        if (dec_has(&d->children[i], ty)) return true;
    return false;
}

static edgellm_status build(edgellm_tokenizer *t, const cJSON *root) {
    if (!cJSON_IsObject(root)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer.json: top level must be an object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer.json: missing 'model'");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int32_t max_added = -1;
    if (added && !cJSON_IsArray(added)) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer.json: added_tokens must be an array");
    EL_TRY(parse_model(model, &t->model));
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (n && !cJSON_IsNull(n)) {
        t->has_norm = true;
        EL_TRY(parse_norm(n, &t->norm));
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (p && !cJSON_IsNull(p)) {
        t->has_pre = true;
        EL_TRY(parse_pre(p, &t->pre));
    }
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (pp && !cJSON_IsNull(pp)) {
        t->has_post = true;
        EL_TRY(parse_post(pp, &t->post));
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (d && !cJSON_IsNull(d)) {
        t->has_dec = true;
        EL_TRY(parse_dec(d, &t->dec));
        t->dec_is_bytelevel_only = t->dec.type == TK_DEC_BYTELEVEL;
        t->dec_has_bytefallback = dec_has(&t->dec, TK_DEC_BYTEFALLBACK);
    }
    /* added tokens */
    size_t na = added ? (size_t)cJSON_GetArraySize(added) : 0;
    t->added = el_calloc(na ? na : 1, sizeof *t->added);
    if (!t->added) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    /* ids as AddedVocabulary::add_tokens assigns them (JSON order): the vocab id when the content is in
     * the model vocab, else the next id after max(vocab entries, largest added id) */
    const int32_t vocab_len = (int32_t)t->model.vocab.n;
    const cJSON *a;
    cJSON_ArrayForEach(a, added) {
        tk_added *x = &t->added[t->n_added];
        const char *c = jstr(a, "content");
        int64_t id;
        bool present;
        EL_TRY(el_json_int(a, "id", -1, &id, &present));
        if (!c || !present || id < 0 || id > 100000000)
            return el_err(EDGELLM_STATUS_FORMAT, "tokenizer.json: added_tokens[%zu] needs 'id' and 'content'", t->n_added);
        if (!*c || tk_map_get(&t->added_map, c, strlen(c)) >= 0) continue; /* empty or duplicate: ignored */
        int32_t aid = tk_map_get(&t->model.vocab, c, strlen(c));
        if (aid < 0) aid = max_added < 0 ? vocab_len : (max_added >= vocab_len || vocab_len == 0) ? max_added + 1 : vocab_len;
        x->content = el_strdup(c);
        if (!x->content) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        x->len = (uint32_t)strlen(c);
        x->id = aid;
        x->special = jbool(a, "special", false);
        x->lstrip = jbool(a, "lstrip", false);
        x->rstrip = jbool(a, "rstrip", false);
        x->single_word = jbool(a, "single_word", false);
        x->normalized = jbool(a, "normalized", !x->special);
        if (x->id > max_added) max_added = x->id;
        t->n_added++; /* before anything can fail: edgellm_tokenizer_free frees the n_added contents */
        EL_TRY(tk_map_put(&t->added_map, c, x->len, (int32_t)t->n_added - 1));
    }
    t->n_total = t->model.n_ids > max_added + 1 ? t->model.n_ids : max_added + 1;
    t->added_by_id = el_malloc((size_t)(t->n_total ? t->n_total : 1) * sizeof *t->added_by_id);
    if (!t->added_by_id) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    for (int32_t i = 0; i < t->n_total; i++) t->added_by_id[i] = -1;
    el_buf s = {0}, tmp = {0};
    edgellm_status st = EDGELLM_STATUS_OK;
    for (size_t i = 0; i < t->n_added && st >= 0; i++) {
        tk_added *x = &t->added[i];
        t->added_by_id[x->id] = (int32_t)i;
        if (x->len == 0) continue;
        if (!x->normalized || !t->has_norm) {
            if (x->normalized) {
                st = tk_trie_add(&t->trie_norm, x->content, x->len, (int32_t)i);
            } else {
                st = tk_trie_add(&t->trie_raw, x->content, x->len, (int32_t)i);
            }
            continue;
        }
        s.len = 0;
        if ((st = el_buf_append(&s, x->content, x->len)) < 0) break;
        if ((st = tk_norm_apply(&t->norm, &s, &tmp)) < 0) break;
        if (s.len) st = tk_trie_add(&t->trie_norm, s.data, s.len, (int32_t)i);
    }
    el_buf_free(&s);
    el_buf_free(&tmp);
    return st;
}

static void norm_path(const char *path, char *json, size_t cap, char *dir, size_t dcap) {
    if (el_dir_exists(path)) {
        snprintf(dir, dcap, "%s", path);
        snprintf(json, cap, "%s/tokenizer.json", path);
        return;
    }
    snprintf(json, cap, "%s", path);
    snprintf(dir, dcap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, dcap, ".");
}

edgellm_status edgellm_tokenizer_load(const char *path, edgellm_tokenizer **out) {
    if (!path || !out) return el_err(EDGELLM_STATUS_INVALID_ARG, "tokenizer_load: NULL argument");
    *out = NULL;
    char json[4096], dir[4096], cfgp[4200];
    norm_path(path, json, sizeof json, dir, sizeof dir);
    if (!el_file_exists(json)) return el_err(EDGELLM_STATUS_IO, "tokenizer: %s not found", json);
    cJSON *root = NULL;
    EL_TRY(el_json_load(json, 0, &root));
    edgellm_tokenizer *t = el_calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    t->bos_id = t->eos_id = t->pad_id = -1;
    edgellm_status st = build(t, root);
    cJSON_Delete(root);
    if (st < 0) {
        el_err_prefix(st, "%s", json);
        edgellm_tokenizer_free(t);
        return st;
    }
    snprintf(cfgp, sizeof cfgp, "%s/tokenizer_config.json", dir);
    if (el_file_exists(cfgp)) {
        cJSON *cfg = NULL;
        st = el_json_load(cfgp, 0, &cfg);
        if (st < 0) {
            edgellm_tokenizer_free(t);
            return st;
        }
        t->bos_id = config_token_id(t, cfg, "bos_token");
        t->eos_id = config_token_id(t, cfg, "eos_token");
        t->pad_id = config_token_id(t, cfg, "pad_token");
        cJSON_Delete(cfg);
    }
    *out = t;
    return EDGELLM_STATUS_OK;
}

void edgellm_tokenizer_free(edgellm_tokenizer *t) {
    if (!t) return;
    tk_model_free(&t->model);
    for (size_t i = 0; i < t->n_added; i++) el_free(t->added[i].content);
    el_free(t->added);
    tk_map_free(&t->added_map);
    el_free(t->added_by_id);
    tk_trie_free(&t->trie_raw);
    tk_trie_free(&t->trie_norm);
    if (t->has_norm) tk_norm_free(&t->norm);
    if (t->has_pre) tk_pre_free(&t->pre);
    if (t->has_post) tk_post_free(&t->post);
    if (t->has_dec) tk_dec_free(&t->dec);
    el_free(t);
}

void tk_post_free(tk_post *p) {
    for (size_t i = 0; i < p->n_children; i++) tk_post_free(&p->children[i]);
    el_free(p->children);
    el_free(p->ids);
    memset(p, 0, sizeof *p);
}

void tk_dec_free(tk_dec *d) {
    for (size_t i = 0; i < d->n_children; i++) tk_dec_free(&d->children[i]);
    el_free(d->children);
    tk_regex_free(&d->re);
    el_free(d->content);
    memset(d, 0, sizeof *d);
}

/* ---- public lookups ------------------------------------------------------------------------------ */
int32_t edgellm_tokenizer_vocab_size(const edgellm_tokenizer *t) { return t ? t->n_total : 0; }
int32_t edgellm_tokenizer_bos_id(const edgellm_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t edgellm_tokenizer_eos_id(const edgellm_tokenizer *t) { return t ? t->eos_id : -1; }
int32_t edgellm_tokenizer_pad_id(const edgellm_tokenizer *t) { return t ? t->pad_id : -1; }

int32_t edgellm_tokenizer_token_to_id(const edgellm_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    size_t l = strlen(token);
    int32_t a = tk_map_get(&t->added_map, token, l);
    if (a >= 0) return t->added[a].id;
    return tk_map_get(&t->model.vocab, token, l);
}

const char *tk_token_str(const edgellm_tokenizer *t, int32_t id, uint32_t *len) {
    if (id < 0 || id >= t->n_total) return NULL;
    int32_t a = t->added_by_id[id];
    if (a >= 0) {
        *len = t->added[a].len;
        return t->added[a].content;
    }
    if (id >= t->model.n_ids || !t->model.id_to_tok[id]) return NULL;
    *len = t->model.id_len[id];
    return t->model.id_to_tok[id];
}

const char *edgellm_tokenizer_id_to_token(const edgellm_tokenizer *t, int32_t id) {
    uint32_t l;
    return t ? tk_token_str(t, id, &l) : NULL;
}

bool edgellm_tokenizer_is_special(const edgellm_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_total) return false;
    int32_t a = t->added_by_id[id];
    return a >= 0 && t->added[a].special;
}
