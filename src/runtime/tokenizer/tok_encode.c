/* tok_encode.c - encoding: added-token extraction (leftmost-longest, lstrip/rstrip/single_word), the
 * normalizer, pre-tokenizer and model per piece, and the post-processor. */
#include "tokenizer_impl.h"

#include <string.h>

/* ---- trie ------------------------------------------------------------------------------------- */
void tk_trie_free(tk_trie *t) {
    el_free(t->nodes);
    memset(t, 0, sizeof *t);
}

static int32_t trie_new(tk_trie *t, uint8_t b) {
    if (t->n + 2 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        tk_trie_node *p = el_realloc(t->nodes, nc * sizeof *p);
        if (!p) return -1;
        t->nodes = p;
        t->cap = nc;
        if (t->n == 0) t->n = 1; /* node 0 is "none" */
    }
    int32_t i = (int32_t)t->n++;
    t->nodes[i] = (tk_trie_node){0, 0, -1, b};
    return i;
}

edgellm_status tk_trie_add(tk_trie *t, const char *s, size_t len, int32_t val);
edgellm_status tk_trie_add(tk_trie *t, const char *s, size_t len, int32_t val) {
    const uint8_t *u = (const uint8_t *)s;
    int32_t node = t->root[u[0]];
    if (!node) {
        node = trie_new(t, u[0]);
        if (node < 0) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        t->root[u[0]] = node;
    }
    for (size_t k = 1; k < len; k++) {
        int32_t c = t->nodes[node].child;
        while (c && t->nodes[c].byte != u[k]) c = t->nodes[c].sibling;
        if (!c) {
            c = trie_new(t, u[k]);
            if (c < 0) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
            t->nodes[c].sibling = t->nodes[node].child;
            t->nodes[node].child = c;
        }
        node = c;
    }
    if (t->nodes[node].term < 0) t->nodes[node].term = val; /* first one wins for duplicates */
    return EDGELLM_STATUS_OK;
}

/* Leftmost-longest match at or after pos. */
static bool trie_find(const tk_trie *t, const char *s, size_t len, size_t pos, size_t *ms, size_t *me, int32_t *val) {
    const uint8_t *u = (const uint8_t *)s;
    for (; pos < len; pos++) {
        int32_t node = t->root[u[pos]];
        if (!node) continue;
        int32_t best = t->nodes[node].term;
        size_t best_end = pos + 1;
        for (size_t k = pos + 1; k < len; k++) {
            int32_t c = t->nodes[node].child;
            while (c && t->nodes[c].byte != u[k]) c = t->nodes[c].sibling;
            if (!c) break;
            node = c;
            if (t->nodes[node].term >= 0) {
                best = t->nodes[node].term;
                best_end = k + 1;
            }
        }
        if (best >= 0) {
            *ms = pos;
            *me = best_end;
            *val = best;
            return true;
        }
    }
    return false;
}

/* ---- segments: (added index or -1, start, end) -------------------------------------------------- */
typedef struct seg {
    int32_t added;
    size_t start, end;
} seg;

typedef struct segs {
    seg *a;
    size_t n, cap;
} segs;

static edgellm_status segs_push(segs *l, int32_t added, size_t s, size_t e) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        seg *p = el_realloc(l->a, nc * sizeof *p);
        if (!p) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        l->a = p;
        l->cap = nc;
    }
    l->a[l->n++] = (seg){added, s, e};
    return EDGELLM_STATUS_OK;
}

static bool is_word_cp(int32_t cp) { return cp == '_' || tk_is_alnum(cp); }

static int32_t last_cp(const char *s, size_t end) {
    size_t k = end - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    int32_t cp;
    tk_utf8_decode(s + k, end - k, &cp);
    return cp;
}

/* AddedVocabulary::find_matches */
static edgellm_status find_matches(const edgellm_tokenizer *t, const tk_trie *trie, const char *s, size_t len,
                                   segs *out) {
    out->n = 0;
    if (len == 0) return EDGELLM_STATUS_OK;
    size_t start_offset = 0, pos = 0, ms, me;
    int32_t idx;
    while (trie->n && trie_find(trie, s, len, pos, &ms, &me, &idx)) {
        pos = me;
        const tk_added *a = &t->added[idx];
        size_t start = ms, stop = me;
        if (a->single_word) {
            int32_t cp;
            bool start_space = start == 0 || !is_word_cp(last_cp(s, start));
            bool stop_space = true;
            if (stop < len) {
                tk_utf8_decode(s + stop, len - stop, &cp);
                stop_space = !is_word_cp(cp);
            }
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t k = ns - 1;
                while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
                int32_t cp;
                tk_utf8_decode(s + k, ns - k, &cp);
                if (!tk_is_whitespace(cp)) break;
                ns = k;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < len) {
                int32_t cp;
                int l = tk_utf8_decode(s + stop, len - stop, &cp);
                if (!tk_is_whitespace(cp)) break;
                stop += (size_t)l;
            }
        }
        if (start < start_offset) start = start_offset; /* overlapping after an rstrip: keep order */
        if (start_offset < start) EL_TRY(segs_push(out, -1, start_offset, start));
        EL_TRY(segs_push(out, idx, start, stop));
        start_offset = stop;
        if (pos < stop) pos = stop;
    }
    if (start_offset != len) EL_TRY(segs_push(out, -1, start_offset, len));
    return EDGELLM_STATUS_OK;
}

/* ---- encode ------------------------------------------------------------------------------------ */
typedef struct enc_ctx {
    const edgellm_tokenizer *t;
    pcre2_match_data *md;
    tk_pieces in, out;
    el_buf norm, tmp;
    segs s1, s2;
    int32_t **ids;
    size_t *n, *cap;
} enc_ctx;

/* pre-tokenize + model on one normalized piece */
static edgellm_status model_piece(enc_ctx *c, const char *s, size_t len, bool first) {
    if (len == 0) return EDGELLM_STATUS_OK;
    const edgellm_tokenizer *t = c->t;
    if (!t->has_pre) return tk_model_tokenize(&t->model, s, len, c->ids, c->n, c->cap);
    tk_pieces_clear(&c->in);
    EL_TRY(tk_pieces_add(&c->in, s, len, first));
    EL_TRY(tk_pre_apply(&t->pre, &c->in, &c->out, c->md));
    for (size_t i = 0; i < c->out.n; i++)
        EL_TRY(tk_model_tokenize(&t->model, tk_piece(&c->out, i), c->out.len[i], c->ids, c->n, c->cap));
    return EDGELLM_STATUS_OK;
}

static edgellm_status encode_text(enc_ctx *c, const char *text, size_t len) {
    const edgellm_tokenizer *t = c->t;
    EL_TRY(find_matches(t, &t->trie_raw, text, len, &c->s1));
    for (size_t i = 0; i < c->s1.n; i++) {
        seg sg = c->s1.a[i];
        if (sg.added >= 0) {
            EL_TRY(tk_ids_push(c->ids, c->n, c->cap, t->added[sg.added].id));
            continue;
        }
        c->norm.len = 0;
        EL_TRY(el_buf_append(&c->norm, text + sg.start, sg.end - sg.start));
        if (t->has_norm) EL_TRY(tk_norm_apply(&t->norm, &c->norm, &c->tmp));
        bool first = sg.start == 0;
        if (!t->trie_norm.n) {
            EL_TRY(model_piece(c, c->norm.data, c->norm.len, first));
            continue;
        }
        EL_TRY(find_matches(t, &t->trie_norm, c->norm.data, c->norm.len, &c->s2));
        for (size_t k = 0; k < c->s2.n; k++) {
            seg s2 = c->s2.a[k];
            if (s2.added >= 0) EL_TRY(tk_ids_push(c->ids, c->n, c->cap, t->added[s2.added].id));
            else EL_TRY(model_piece(c, c->norm.data + s2.start, s2.end - s2.start, first && s2.start == 0));
        }
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status post_apply(const tk_post *p, int32_t **ids, size_t *n, size_t *cap) {
    switch (p->type) {
    case TK_POST_NOOP: return EDGELLM_STATUS_OK;
    case TK_POST_WRAP:
    case TK_POST_TEMPLATE: {
        size_t extra = p->n_ids;
        int32_t *out = el_malloc((*n + extra + 1) * sizeof *out);
        if (!out) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        size_t k = 0;
        for (size_t i = 0; i < p->n_ids; i++) {
            if (p->ids[i] == -2) {
                if (*n) memcpy(out + k, *ids, *n * sizeof *out);
                k += *n;
            } else {
                out[k++] = p->ids[i];
            }
        }
        el_free(*ids);
        *ids = out;
        *n = k;
        *cap = *n + extra + 1;
        return EDGELLM_STATUS_OK;
    }
    case TK_POST_SEQUENCE:
        for (size_t i = 0; i < p->n_children; i++) EL_TRY(post_apply(&p->children[i], ids, n, cap));
        return EDGELLM_STATUS_OK;
    }
    return EDGELLM_STATUS_OK;
}

edgellm_status edgellm_tokenizer_encode(const edgellm_tokenizer *t, const char *text, size_t len, bool add_special,
                                        int32_t **ids_out, size_t *n_out) {
    if (!t || !ids_out || !n_out || (!text && len))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "tokenizer_encode: NULL argument");
    *ids_out = NULL;
    *n_out = 0;
    el_buf clean = {0};
    if (len && !tk_utf8_valid(text, len)) {
        /* invalid UTF-8 is read as a JS/Rust lossy decoder would: U+FFFD per maximal subpart */
        EL_TRY(tk_utf8_lossy(&clean, text, len));
        text = clean.data;
        len = clean.len;
    }
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    enc_ctx c = {0};
    c.t = t;
    c.ids = &ids;
    c.n = &n;
    c.cap = &cap;
    c.md = pcre2_match_data_create(16, NULL);
    edgellm_status st = c.md ? EDGELLM_STATUS_OK : el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    if (st >= 0 && len) st = encode_text(&c, text ? text : "", len);
    if (st >= 0 && add_special && t->has_post) st = post_apply(&t->post, &ids, &n, &cap);
    if (c.md) pcre2_match_data_free(c.md);
    tk_pieces_free(&c.in);
    tk_pieces_free(&c.out);
    el_buf_free(&c.norm);
    el_buf_free(&c.tmp);
    el_free(c.s1.a);
    el_free(c.s2.a);
    el_buf_free(&clean);
    if (st < 0) {
        el_free(ids);
        return st;
    }
    if (!ids) {
        ids = el_malloc(sizeof *ids);
        if (!ids) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    *ids_out = ids;
    *n_out = n;
    return EDGELLM_STATUS_OK;
}
