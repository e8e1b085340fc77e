/* tok_decode.c - decoding (decoder chain on token strings) and the streaming detokenizer. */
#include "tokenizer_impl.h"

#include <string.h>

const char *tk_bytelevel_char(unsigned char b, int *len);

/* char -> byte for the byte-level alphabet (code points < 324), -1 otherwise */
static int16_t g_u2b[512];
static pthread_once_t g_u2b_once = PTHREAD_ONCE_INIT;

static void u2b_init(void) {
    for (int i = 0; i < 512; i++) g_u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int l;
        const char *s = tk_bytelevel_char((unsigned char)b, &l);
        int32_t cp;
        tk_utf8_decode(s, (size_t)l, &cp);
        g_u2b[cp] = (int16_t)b;
    }
}

/* Appends the bytes of one token under the ByteLevel decoder (raw bytes if a char is not mapped). */
static edgellm_status bytelevel_token(el_buf *out, const char *s, size_t n) {
    pthread_once(&g_u2b_once, u2b_init);
    size_t start = out->len;
    EL_TRY(el_buf_reserve(out, n));
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tk_utf8_decode(s + i, n - i, &cp);
        if (cp >= 512 || g_u2b[cp] < 0) {
            out->len = start;
            return el_buf_append(out, s, n);
        }
        out->data[out->len++] = (char)g_u2b[cp];
        i += (size_t)l;
    }
    return EDGELLM_STATUS_OK;
}

static bool byte_token(const char *s, size_t n, uint8_t *val) {
    /* "<0xXX>" as ByteFallback reads it: u8::from_str_radix(&token[3..5], 16) */
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return false;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else if (c == '+' && k == 3) continue;
        else return false;
        v = v * 16 + d;
    }
    *val = (uint8_t)v;
    return true;
}

static edgellm_status replace_in(const tk_regex *re, const char *content, const char *s, size_t n, el_buf *out) {
    pcre2_match_data *md = re->code ? pcre2_match_data_create(16, NULL) : NULL;
    size_t pos = 0, prev = 0, ms, me, clen = strlen(content);
    size_t last_end = (size_t)-1;
    edgellm_status st = EDGELLM_STATUS_OK;
    int f;
    while (pos <= n && (f = tk_regex_next(re, md, s, n, pos, &ms, &me)) != 0) {
        if (f < 0) {
            st = EDGELLM_STATUS_LIMIT;
            break;
        }
        if (ms == me && last_end == me) {
            if (pos >= n) break;
            int32_t cp;
            pos += (size_t)tk_utf8_decode(s + pos, n - pos, &cp);
            continue;
        }
        if ((st = el_buf_append(out, s + prev, ms - prev)) < 0) break;
        if ((st = el_buf_append(out, content, clen)) < 0) break;
        prev = pos = last_end = me;
    }
    if (st >= 0) st = el_buf_append(out, s + prev, n - prev);
    if (md) pcre2_match_data_free(md);
    return st;
}

static edgellm_status put_cp(el_buf *out, int32_t cp) {
    char b[4];
    int l = tk_utf8_encode(cp, b);
    return el_buf_append(out, b, (size_t)l);
}

static bool starts_with(const char *s, size_t n, const char *p) {
    size_t l = strlen(p);
    return n >= l && !memcmp(s, p, l);
}

static edgellm_status wordpiece_cleanup(el_buf *b) {
    static const char *from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " do not", " 's", " 've", " 're"};
    static const char *to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s", "'ve", "'re"};
    el_buf t = {0};
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        t.len = 0;
        size_t fl = strlen(from[r]);
        for (size_t i = 0; i < b->len;) {
            if (i + fl <= b->len && !memcmp(b->data + i, from[r], fl)) {
                EL_TRY(el_buf_append_str(&t, to[r]));
                i += fl;
            } else {
                EL_TRY(el_buf_append(&t, b->data + i, 1));
                i++;
            }
        }
        b->len = 0;
        EL_TRY(el_buf_append(b, t.data, t.len));
    }
    el_buf_free(&t);
    return EDGELLM_STATUS_OK;
}

/* Applies one decoder: in -> out (tokens). */
static edgellm_status dec_apply(const tk_dec *d, const tk_pieces *in, tk_pieces *out) {
    tk_pieces_clear(out);
    el_buf b = {0};
    edgellm_status st = EDGELLM_STATUS_OK;
    switch (d->type) {
    case TK_DEC_SEQUENCE: {
        tk_pieces x = {0}, y = {0};
        const tk_pieces *cur = in;
        for (size_t i = 0; i < d->n_children && st >= 0; i++) {
            tk_pieces *dst = i == d->n_children - 1 ? out : (cur == &x ? &y : &x);
            st = dec_apply(&d->children[i], cur, dst);
            cur = dst;
        }
        if (d->n_children == 0)
            for (size_t i = 0; i < in->n && st >= 0; i++) st = tk_pieces_add_any(out, tk_piece(in, i), in->len[i], false);
        tk_pieces_free(&x);
        tk_pieces_free(&y);
        break;
    }
    case TK_DEC_BYTELEVEL: {
        el_buf raw = {0};
        for (size_t i = 0; i < in->n && st >= 0; i++) st = bytelevel_token(&raw, tk_piece(in, i), in->len[i]);
        if (st >= 0) st = tk_utf8_lossy(&b, raw.data ? raw.data : "", raw.len);
        el_buf_free(&raw);
        if (st >= 0) st = tk_pieces_add_any(out, b.data ? b.data : "", b.len, false);
        break;
    }
    case TK_DEC_FUSE:
        for (size_t i = 0; i < in->n && st >= 0; i++) st = el_buf_append(&b, tk_piece(in, i), in->len[i]);
        if (st >= 0) st = tk_pieces_add_any(out, b.data ? b.data : "", b.len, false);
        break;
    case TK_DEC_REPLACE:
        for (size_t i = 0; i < in->n && st >= 0; i++) {
            b.len = 0;
            st = replace_in(&d->re, d->content, tk_piece(in, i), in->len[i], &b);
            if (st >= 0) st = tk_pieces_add_any(out, b.data ? b.data : "", b.len, false);
        }
        break;
    case TK_DEC_BYTEFALLBACK: {
        el_buf run = {0};
        for (size_t i = 0; i <= in->n && st >= 0; i++) {
            uint8_t v;
            if (i < in->n && byte_token(tk_piece(in, i), in->len[i], &v)) {
                st = el_buf_append(&run, &v, 1);
                continue;
            }
            if (run.len) {
                if (tk_utf8_valid(run.data, run.len)) {
                    st = tk_pieces_add_any(out, run.data, run.len, false);
                } else {
                    for (size_t k = 0; k < run.len && st >= 0; k++) st = tk_pieces_add_any(out, "\xEF\xBF\xBD", 3, false);
                }
                run.len = 0;
            }
            if (i < in->n && st >= 0) st = tk_pieces_add_any(out, tk_piece(in, i), in->len[i], false);
        }
        el_buf_free(&run);
        break;
    }
    case TK_DEC_STRIP:
        for (size_t i = 0; i < in->n && st >= 0; i++) {
            const char *s = tk_piece(in, i);
            size_t n = in->len[i], a = 0, e = n;
            for (int64_t k = 0; k < d->start && a < n; k++) {
                int32_t cp;
                int l = tk_utf8_decode(s + a, n - a, &cp);
                if (cp != d->strip_cp) break;
                a += (size_t)l;
            }
            for (int64_t k = 0; k < d->stop && e > a; k++) {
                size_t q = e - 1;
                while (q > a && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                int32_t cp;
                tk_utf8_decode(s + q, e - q, &cp);
                if (cp != d->strip_cp) break;
                e = q;
            }
            st = tk_pieces_add_any(out, s + a, e - a, false);
        }
        break;
    case TK_DEC_METASPACE:
        for (size_t i = 0; i < in->n && st >= 0; i++) {
            const char *s = tk_piece(in, i);
            size_t n = in->len[i];
            b.len = 0;
            for (size_t k = 0; k < n && st >= 0;) {
                int32_t cp;
                int l = tk_utf8_decode(s + k, n - k, &cp);
                if (cp == d->replacement_cp) {
                    if (!(i == 0 && d->prepend_scheme != TK_PREPEND_NEVER)) st = el_buf_append(&b, " ", 1);
                } else {
                    st = put_cp(&b, cp);
                }
                k += (size_t)l;
            }
            if (st >= 0) st = tk_pieces_add_any(out, b.data ? b.data : "", b.len, false);
        }
        break;
    case TK_DEC_WORDPIECE:
        for (size_t i = 0; i < in->n && st >= 0; i++) {
            const char *s = tk_piece(in, i);
            size_t n = in->len[i];
            b.len = 0;
            if (i != 0) {
                if (starts_with(s, n, d->content)) {
                    size_t pl = strlen(d->content);
                    s += pl;
                    n -= pl;
                } else {
                    st = el_buf_append(&b, " ", 1);
                }
            }
            if (st >= 0) st = el_buf_append(&b, s, n);
            if (st >= 0 && d->cleanup) st = wordpiece_cleanup(&b);
            if (st >= 0) st = tk_pieces_add_any(out, b.data ? b.data : "", b.len, false);
        }
        break;
    case TK_DEC_BPE: {
        tk_regex lit = {0};
        lit.literal = d->content;
        lit.literal_len = strlen(d->content);
        for (size_t i = 0; i < in->n && st >= 0; i++) {
            b.len = 0;
            st = replace_in(&lit, i + 1 == in->n ? "" : " ", tk_piece(in, i), in->len[i], &b);
            if (st >= 0) st = tk_pieces_add_any(out, b.data ? b.data : "", b.len, false);
        }
        break;
    }
    }
    el_buf_free(&b);
    return st;
}

/* tk_pieces_add drops empty strings; decoders keep them, which only matters for positions (i == 0):
 * keep an explicit empty marker by adding the piece even when empty. */
static edgellm_status tokens_from_ids(const edgellm_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                                      tk_pieces *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t l;
        const char *s = tk_token_str(t, ids[i], &l);
        if (!s) continue; /* unknown ids are dropped, as HF does */
        if (skip_special && edgellm_tokenizer_is_special(t, ids[i])) continue;
        EL_TRY(tk_pieces_add_any(out, s, l, false));
    }
    return EDGELLM_STATUS_OK;
}

edgellm_status tk_decode_tokens(const edgellm_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                                el_buf *out) {
    tk_pieces toks = {0}, res = {0};
    edgellm_status st = tokens_from_ids(t, ids, n, skip_special, &toks);
    if (st >= 0) {
        if (t->has_dec) {
            st = dec_apply(&t->dec, &toks, &res);
            for (size_t i = 0; i < res.n && st >= 0; i++) st = el_buf_append(out, tk_piece(&res, i), res.len[i]);
        } else {
            for (size_t i = 0; i < toks.n && st >= 0; i++) {
                if (i) st = el_buf_append(out, " ", 1);
                if (st >= 0) st = el_buf_append(out, tk_piece(&toks, i), toks.len[i]);
            }
        }
    }
    tk_pieces_free(&toks);
    tk_pieces_free(&res);
    return st;
}

edgellm_status edgellm_tokenizer_decode(const edgellm_tokenizer *t, const int32_t *ids, size_t n_ids,
                                        bool skip_special, char **text, size_t *len) {
    if (!t || !text || (!ids && n_ids)) return el_err(EDGELLM_STATUS_INVALID_ARG, "tokenizer_decode: NULL argument");
    *text = NULL;
    el_buf b = {0};
    edgellm_status st = tk_decode_tokens(t, ids, n_ids, skip_special, &b);
    if (st >= 0) st = el_buf_append(&b, "", 1);
    if (st < 0) {
        el_buf_free(&b);
        return st;
    }
    *text = b.data;
    if (len) *len = b.len - 1;
    return EDGELLM_STATUS_OK;
}

/* ---- streaming ---------------------------------------------------------------------------------- */
struct edgellm_detok_stream {
    const edgellm_tokenizer *t;
    bool skip;
    int32_t *ids;
    size_t n, cap;
    size_t emitted; /* bytes of the full decode already emitted (generic path) */
    bool has_anchor;
    size_t anchor;     /* index of the context token of the window */
    size_t anchor_off; /* length of the full text up to and including the anchor token */
    el_buf anchor_txt; /* decode of the anchor token alone */
    size_t run_start;  /* start of the trailing run of byte/skipped tokens (ByteFallback decoders) */
    size_t last_safe;  /* ids decodable at the previous step */
    el_buf bytes;   /* pending raw bytes (ByteLevel path) */
    el_buf piece;
};

edgellm_status edgellm_detok_stream_create(const edgellm_tokenizer *t, bool skip_special, edgellm_detok_stream **out) {
    if (!t || !out) return el_err(EDGELLM_STATUS_INVALID_ARG, "detok_stream_create: NULL argument");
    edgellm_detok_stream *s = el_calloc(1, sizeof *s);
    if (!s) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    s->t = t;
    s->skip = skip_special;
    s->last_safe = (size_t)-1;
    *out = s;
    return EDGELLM_STATUS_OK;
}

void edgellm_detok_stream_free(edgellm_detok_stream *s) {
    if (!s) return;
    el_free(s->ids);
    el_buf_free(&s->bytes);
    el_buf_free(&s->piece);
    el_buf_free(&s->anchor_txt);
    el_free(s);
}

/* Bytes at the end of s that start a valid but incomplete UTF-8 sequence. */
static size_t incomplete_tail(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = u[n - k];
        if ((c & 0xC0) == 0x80) continue;
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 2;
        else if (c == 0xE0) need = 3, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 3;
        else if (c == 0xED) need = 3, hi = 0x9F;
        else if (c == 0xF0) need = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 4;
        else if (c == 0xF4) need = 4, hi = 0x8F;
        else return 0;
        if (k >= need) return 0;
        for (size_t j = 1; j < k; j++) {
            unsigned char d = u[n - k + j];
            if (d < (j == 1 ? lo : 0x80) || d > (j == 1 ? hi : 0xBF)) return 0;
        }
        return k;
    }
    return 0;
}

static edgellm_status stream_bytelevel(edgellm_detok_stream *s, bool flush, const char **piece) {
    size_t keep = flush ? 0 : incomplete_tail(s->bytes.data, s->bytes.len);
    size_t take = s->bytes.len - keep;
    s->piece.len = 0;
    EL_TRY(tk_utf8_lossy(&s->piece, s->bytes.data ? s->bytes.data : "", take));
    if (keep) memmove(s->bytes.data, s->bytes.data + take, keep);
    s->bytes.len = keep;
    EL_TRY(el_buf_append(&s->piece, "", 1));
    s->piece.len--;
    *piece = s->piece.data;
    return EDGELLM_STATUS_OK;
}

/* A token usable as decode context: known, not skipped, not a <0xXX> byte, not empty. */
static bool stream_ctx_token(const edgellm_detok_stream *s, int32_t id) {
    uint32_t l;
    const char *str = tk_token_str(s->t, id, &l);
    uint8_t v;
    if (!str || l == 0 || (s->skip && edgellm_tokenizer_is_special(s->t, id))) return false;
    return !(s->t->dec_has_bytefallback && byte_token(str, l, &v));
}

/* Generic path. The decoded text of ids[0..safe) is
 *   full = prefix(ids[0..anchor]) + (decode(ids[anchor..safe)) - decode(ids[anchor]))
 * where ids[anchor] is a context token whose text is already final; this keeps each push O(window). */
static edgellm_status stream_generic(edgellm_detok_stream *s, bool flush, const char **piece) {
    const edgellm_tokenizer *t = s->t;
    size_t safe = s->n;
    /* a trailing run of <0xXX> tokens (and skipped ones) decodes as a whole: hold it back */
    if (!flush && t->dec_has_bytefallback) safe = s->run_start;
    s->piece.len = 0;
    if (!flush && safe == s->last_safe) { /* nothing new is decodable yet */
        EL_TRY(el_buf_append(&s->piece, "", 1));
        s->piece.len--;
        *piece = s->piece.data;
        return EDGELLM_STATUS_OK;
    }
    s->last_safe = flush ? (size_t)-1 : safe;
    el_buf w = {0}, p = {0};
    const char *text;
    size_t tlen, base = 0;
    edgellm_status st = EDGELLM_STATUS_OK;
    bool windowed = s->has_anchor && safe > s->anchor;
    if (windowed) {
        st = tk_decode_tokens(t, s->ids + s->anchor, safe - s->anchor, s->skip, &w);
        if (st >= 0) st = el_buf_append(&p, s->anchor_txt.data ? s->anchor_txt.data : "", s->anchor_txt.len);
        if (st >= 0 && (w.len < p.len || memcmp(w.data, p.data, p.len) || s->emitted < s->anchor_off)) {
            windowed = false; /* not prefix-stable here: decode everything */
            s->has_anchor = false;
        }
    }
    if (st >= 0 && !windowed) {
        w.len = 0;
        p.len = 0;
        st = tk_decode_tokens(t, s->ids, safe, s->skip, &w);
    }
    if (st < 0) {
        el_buf_free(&w);
        el_buf_free(&p);
        return st;
    }
    text = (w.data ? w.data : "") + p.len;
    tlen = w.len - p.len;
    base = windowed ? s->anchor_off : 0;
    size_t end = tlen;
    if (!flush) {
        /* hold back trailing U+FFFD (may become a character) */
        while (end >= 3 && !memcmp(text + end - 3, "\xEF\xBF\xBD", 3)) end -= 3;
        end -= incomplete_tail(text, end);
    }
    s->piece.len = 0;
    if (base + end > s->emitted) {
        st = el_buf_append(&s->piece, text + (s->emitted - base), base + end - s->emitted);
        s->emitted = base + end;
    }
    /* move the anchor to the last token once everything decoded so far is emitted */
    if (st >= 0 && !flush && end == tlen && safe > 0 && safe == s->n && stream_ctx_token(s, s->ids[safe - 1]) &&
        (!s->has_anchor || safe - 1 > s->anchor)) {
        s->has_anchor = true;
        s->anchor = safe - 1;
        s->anchor_txt.len = 0;
        st = tk_decode_tokens(t, s->ids + s->anchor, 1, s->skip, &s->anchor_txt);
        s->anchor_off = s->emitted;
        if (st < 0 || s->anchor_txt.len > s->emitted) s->has_anchor = false;
    }
    el_buf_free(&w);
    el_buf_free(&p);
    EL_TRY(st);
    EL_TRY(el_buf_append(&s->piece, "", 1));
    s->piece.len--;
    *piece = s->piece.data;
    return EDGELLM_STATUS_OK;
}

edgellm_status edgellm_detok_stream_push(edgellm_detok_stream *s, int32_t id, const char **piece) {
    if (!s || !piece) return el_err(EDGELLM_STATUS_INVALID_ARG, "detok_stream_push: NULL argument");
    *piece = "";
    if (s->t->dec_is_bytelevel_only) {
        uint32_t l;
        const char *str = tk_token_str(s->t, id, &l);
        if (str && !(s->skip && edgellm_tokenizer_is_special(s->t, id))) EL_TRY(bytelevel_token(&s->bytes, str, l));
        return stream_bytelevel(s, false, piece);
    }
    EL_TRY(tk_ids_push(&s->ids, &s->n, &s->cap, id));
    if (s->t->dec_has_bytefallback) {
        uint32_t l;
        const char *str = tk_token_str(s->t, id, &l);
        uint8_t v;
        bool skipped = !str || (s->skip && edgellm_tokenizer_is_special(s->t, id));
        if (!skipped && !byte_token(str, l, &v)) s->run_start = s->n;
    }
    return stream_generic(s, false, piece);
}

edgellm_status edgellm_detok_stream_flush(edgellm_detok_stream *s, const char **piece) {
    if (!s || !piece) return el_err(EDGELLM_STATUS_INVALID_ARG, "detok_stream_flush: NULL argument");
    if (s->t->dec_is_bytelevel_only) return stream_bytelevel(s, true, piece);
    return stream_generic(s, true, piece);
}
