/* tok_normalize.c - normalizers and pre-tokenizers with HF tokenizers 0.22 semantics. */
#include "tokenizer_impl.h"

#include <string.h>
#include <utf8proc.h>

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) ------------------------------------------------- */
static char g_b2u[256][3];
static uint8_t g_b2u_len[256];
static pthread_once_t g_b2u_once = PTHREAD_ONCE_INIT;

static void b2u_init(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cp = b;
        else cp = 256 + n++;
        g_b2u_len[b] = (uint8_t)tk_utf8_encode(cp, g_b2u[b]);
    }
}

const char *tk_bytelevel_char(unsigned char b, int *len);
const char *tk_bytelevel_char(unsigned char b, int *len) {
    pthread_once(&g_b2u_once, b2u_init);
    *len = g_b2u_len[b];
    return g_b2u[b];
}

static edgellm_status bytelevel_map(el_buf *out, const char *s, size_t n) {
    pthread_once(&g_b2u_once, b2u_init);
    EL_TRY(el_buf_reserve(out, n * 2));
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        memcpy(out->data + out->len, g_b2u[b], g_b2u_len[b]);
        out->len += g_b2u_len[b];
    }
    return EDGELLM_STATUS_OK;
}

/* ---- normalizers ---------------------------------------------------------------------------------- */
void tk_norm_free(tk_norm *n) {
    for (size_t i = 0; i < n->n_children; i++) tk_norm_free(&n->children[i]);
    el_free(n->children);
    tk_regex_free(&n->re);
    el_free(n->content);
    memset(n, 0, sizeof *n);
}

static bool is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

static edgellm_status unicode_normalize(el_buf *s, el_buf *tmp, utf8proc_option_t opt) {
    if (is_ascii(s->data, s->len)) return EDGELLM_STATUS_OK;
    opt |= UTF8PROC_STABLE;
    utf8proc_ssize_t need = utf8proc_decompose((const utf8proc_uint8_t *)s->data, (utf8proc_ssize_t)s->len, NULL, 0, opt);
    if (need < 0) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: unicode normalization failed: %s", utf8proc_errmsg(need));
    tmp->len = 0;
    EL_TRY(el_buf_reserve(tmp, (size_t)need * 4 + 4));
    utf8proc_int32_t *buf = (utf8proc_int32_t *)tmp->data;
    utf8proc_ssize_t got =
        utf8proc_decompose((const utf8proc_uint8_t *)s->data, (utf8proc_ssize_t)s->len, buf, need, opt);
    if (got < 0 || got > need) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: unicode normalization failed");
    utf8proc_ssize_t out = utf8proc_reencode(buf, got, opt);
    if (out < 0) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: unicode normalization failed: %s", utf8proc_errmsg(out));
    s->len = 0;
    return el_buf_append(s, tmp->data, (size_t)out);
}

/* Applies a per-code-point mapping. fn appends the replacement of cp to out. */
typedef edgellm_status (*cp_map_fn)(const tk_norm *n, int32_t cp, el_buf *out);

static edgellm_status map_cps(const tk_norm *n, el_buf *s, el_buf *tmp, cp_map_fn fn) {
    tmp->len = 0;
    for (size_t i = 0; i < s->len;) {
        int32_t cp;
        int l = tk_utf8_decode(s->data + i, s->len - i, &cp);
        EL_TRY(fn(n, cp, tmp));
        i += (size_t)l;
    }
    s->len = 0;
    return el_buf_append(s, tmp->data, tmp->len);
}

static edgellm_status put_cp(el_buf *out, int32_t cp) {
    char b[4];
    int l = tk_utf8_encode(cp, b);
    return el_buf_append(out, b, (size_t)l);
}

static edgellm_status lower_cp(const tk_norm *n, int32_t cp, el_buf *out) {
    (void)n;
    if (cp == 0x130) return el_buf_append(out, "i\xCC\x87", 3); /* Rust: 'İ'.to_lowercase() == "i\u{307}" */
    return put_cp(out, utf8proc_tolower(cp));
}

static bool is_mark(int32_t cp) {
    if (cp < 0x300) return false;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

static edgellm_status strip_accents_cp(const tk_norm *n, int32_t cp, el_buf *out) {
    (void)n;
    if (is_mark(cp)) return EDGELLM_STATUS_OK;
    return put_cp(out, cp);
}

static bool bert_is_control(int32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CN ||
           c == UTF8PROC_CATEGORY_CO;
}

static bool is_chinese(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static edgellm_status bert_clean_cp(const tk_norm *n, int32_t cp, el_buf *out) {
    (void)n;
    if (cp == 0 || cp == 0xFFFD || bert_is_control(cp)) return EDGELLM_STATUS_OK;
    if (tk_is_whitespace(cp)) return el_buf_append(out, " ", 1);
    return put_cp(out, cp);
}

static edgellm_status bert_chinese_cp(const tk_norm *n, int32_t cp, el_buf *out) {
    (void)n;
    if (!is_chinese(cp)) return put_cp(out, cp);
    EL_TRY(el_buf_append(out, " ", 1));
    EL_TRY(put_cp(out, cp));
    return el_buf_append(out, " ", 1);
}

static edgellm_status strip_mn_cp(const tk_norm *n, int32_t cp, el_buf *out) {
    (void)n;
    if (cp >= 0x300 && utf8proc_category(cp) == UTF8PROC_CATEGORY_MN) return EDGELLM_STATUS_OK;
    return put_cp(out, cp);
}

/* Nmt: drop some control characters, map other "spaces" to ' ' */
static edgellm_status nmt_cp(const tk_norm *n, int32_t c, el_buf *out) {
    (void)n;
    if ((c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F)
        return EDGELLM_STATUS_OK;
    if (c == 0x9 || c == 0xA || c == 0xC || c == 0xD || c == 0x1680 || (c >= 0x200B && c <= 0x200F) || c == 0x2028 ||
        c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD)
        c = ' ';
    return put_cp(out, c);
}

static edgellm_status replace_all(const tk_regex *re, const char *content, el_buf *s, el_buf *tmp) {
    pcre2_match_data *md = re->code ? pcre2_match_data_create_from_pattern(re->code, NULL) : NULL;
    if (re->code && !md) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    tmp->len = 0;
    size_t pos = 0, prev = 0, clen = strlen(content);
    size_t last_match_end = (size_t)-1;
    edgellm_status st = EDGELLM_STATUS_OK;
    size_t ms, me;
    int f;
    while (pos <= s->len && (f = tk_regex_next(re, md, s->data, s->len, pos, &ms, &me)) != 0) {
        if (f < 0) {
            st = EDGELLM_STATUS_LIMIT;
            goto done;
        }
        if (ms == me && last_match_end == me) {
            if (pos >= s->len) break;
            int32_t cp;
            pos += (size_t)tk_utf8_decode(s->data + pos, s->len - pos, &cp);
            continue;
        }
        if ((st = el_buf_append(tmp, s->data + prev, ms - prev)) < 0) goto done;
        if ((st = el_buf_append(tmp, content, clen)) < 0) goto done;
        prev = me;
        pos = me;
        last_match_end = me;
    }
    if ((st = el_buf_append(tmp, s->data + prev, s->len - prev)) < 0) goto done;
    s->len = 0;
    st = el_buf_append(s, tmp->data, tmp->len);
done:
    if (md) pcre2_match_data_free(md);
    return st;
}

edgellm_status tk_norm_apply(const tk_norm *n, el_buf *s, el_buf *tmp) {
    switch (n->type) {
    case TK_NORM_SEQUENCE:
        for (size_t i = 0; i < n->n_children; i++) EL_TRY(tk_norm_apply(&n->children[i], s, tmp));
        return EDGELLM_STATUS_OK;
    case TK_NORM_NFC: return unicode_normalize(s, tmp, UTF8PROC_COMPOSE);
    case TK_NORM_NFD: return unicode_normalize(s, tmp, UTF8PROC_DECOMPOSE);
    case TK_NORM_NFKC: return unicode_normalize(s, tmp, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case TK_NORM_NFKD: return unicode_normalize(s, tmp, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case TK_NORM_LOWERCASE: return map_cps(n, s, tmp, lower_cp);
    case TK_NORM_STRIP_ACCENTS: return map_cps(n, s, tmp, strip_accents_cp);
    case TK_NORM_NMT: return map_cps(n, s, tmp, nmt_cp);
    case TK_NORM_STRIP: {
        size_t a = 0, b = s->len;
        int32_t cp;
        if (n->left)
            while (a < b) {
                int l = tk_utf8_decode(s->data + a, b - a, &cp);
                if (!tk_is_whitespace(cp)) break;
                a += (size_t)l;
            }
        if (n->right)
            while (b > a) {
                size_t k = b - 1;
                while (k > a && ((unsigned char)s->data[k] & 0xC0) == 0x80) k--;
                tk_utf8_decode(s->data + k, b - k, &cp);
                if (!tk_is_whitespace(cp)) break;
                b = k;
            }
        memmove(s->data, s->data + a, b - a);
        s->len = b - a;
        return EDGELLM_STATUS_OK;
    }
    case TK_NORM_REPLACE: return replace_all(&n->re, n->content, s, tmp);
    case TK_NORM_PREPEND: {
        if (s->len == 0) return EDGELLM_STATUS_OK;
        tmp->len = 0;
        EL_TRY(el_buf_append_str(tmp, n->content));
        EL_TRY(el_buf_append(tmp, s->data, s->len));
        s->len = 0;
        return el_buf_append(s, tmp->data, tmp->len);
    }
    case TK_NORM_BERT: {
        if (n->clean_text) EL_TRY(map_cps(n, s, tmp, bert_clean_cp));
        if (n->handle_chinese) EL_TRY(map_cps(n, s, tmp, bert_chinese_cp));
        if (n->strip_accents) {
            EL_TRY(unicode_normalize(s, tmp, UTF8PROC_DECOMPOSE));
            EL_TRY(map_cps(n, s, tmp, strip_mn_cp));
        }
        if (n->lowercase) EL_TRY(map_cps(n, s, tmp, lower_cp));
        return EDGELLM_STATUS_OK;
    }
    case TK_NORM_BYTELEVEL: {
        tmp->len = 0;
        EL_TRY(bytelevel_map(tmp, s->data, s->len));
        s->len = 0;
        return el_buf_append(s, tmp->data, tmp->len);
    }
    }
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: unknown normalizer");
}

/* ---- pre-tokenizers ------------------------------------------------------------------------------- */
void tk_pre_free(tk_pre *p) {
    for (size_t i = 0; i < p->n_children; i++) tk_pre_free(&p->children[i]);
    el_free(p->children);
    tk_regex_free(&p->re);
    memset(p, 0, sizeof *p);
}

/* A split segment list: (start, end, is_match) covering a piece. */
typedef struct seglist {
    size_t *a;
    size_t n, cap; /* triples */
} seglist;

static edgellm_status seg_push(seglist *l, size_t s, size_t e, bool m) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        size_t *p = el_realloc(l->a, nc * 3 * sizeof *p);
        if (!p) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        l->a = p;
        l->cap = nc;
    }
    l->a[l->n * 3] = s;
    l->a[l->n * 3 + 1] = e;
    l->a[l->n * 3 + 2] = m;
    l->n++;
    return EDGELLM_STATUS_OK;
}

/* Pattern::find_matches for a regex (onig FindMatches semantics). */
static edgellm_status regex_matches(const tk_regex *re, pcre2_match_data *md, const char *s, size_t n, bool invert,
                                    seglist *l) {
    l->n = 0;
    if (n == 0) return seg_push(l, 0, 0, invert);
    size_t prev = 0, pos = 0, ms, me;
    size_t last_match_end = (size_t)-1;
    int f;
    while (pos <= n && (f = tk_regex_next(re, md, s, n, pos, &ms, &me)) != 0) {
        if (f < 0) return EDGELLM_STATUS_LIMIT;
        if (ms == me && last_match_end == me) {
            if (pos >= n) break;
            int32_t cp;
            pos += (size_t)tk_utf8_decode(s + pos, n - pos, &cp);
            continue;
        }
        if (prev != ms) EL_TRY(seg_push(l, prev, ms, invert));
        EL_TRY(seg_push(l, ms, me, !invert));
        prev = me;
        pos = me;
        last_match_end = me;
    }
    if (prev != n) EL_TRY(seg_push(l, prev, n, invert));
    return EDGELLM_STATUS_OK;
}

typedef bool (*cp_pred)(int32_t cp);

/* Pattern::find_matches for Fn(char) -> bool: every matching char is its own match. */
static edgellm_status pred_matches(cp_pred pred, const char *s, size_t n, seglist *l) {
    l->n = 0;
    if (n == 0) return seg_push(l, 0, 0, false);
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = tk_utf8_decode(s + i, n - i, &cp);
        if (pred(cp)) {
            if (last < i) EL_TRY(seg_push(l, last, i, false));
            EL_TRY(seg_push(l, i, i + (size_t)k, true));
            last = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (n > last) EL_TRY(seg_push(l, last, n, false));
    return EDGELLM_STATUS_OK;
}

/* NormalizedString::split with a behavior; appends the resulting pieces to out. */
static edgellm_status split_apply(const char *s, bool first, seglist *l, tk_split_behavior b, tk_pieces *out) {
    size_t *a = l->a;
    size_t n = l->n;
    switch (b) {
    case TK_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            EL_TRY(tk_pieces_add(out, s + a[3 * i], a[3 * i + 1] - a[3 * i], first && a[3 * i] == 0));
        return EDGELLM_STATUS_OK;
    case TK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!a[3 * i + 2]) EL_TRY(tk_pieces_add(out, s + a[3 * i], a[3 * i + 1] - a[3 * i], first && a[3 * i] == 0));
        return EDGELLM_STATUS_OK;
    case TK_SPLIT_CONTIGUOUS:
    case TK_SPLIT_MERGED_PREV: {
        /* fold into (start, end) groups, in place */
        size_t m = 0;
        bool prevm = false;
        for (size_t i = 0; i < n; i++) {
            bool im = a[3 * i + 2];
            bool merge = b == TK_SPLIT_CONTIGUOUS ? (im == prevm) : (im && !prevm);
            if (merge && m > 0) {
                a[3 * (m - 1) + 1] = a[3 * i + 1];
            } else {
                a[3 * m] = a[3 * i];
                a[3 * m + 1] = a[3 * i + 1];
                m++;
            }
            prevm = im;
        }
        for (size_t i = 0; i < m; i++)
            EL_TRY(tk_pieces_add(out, s + a[3 * i], a[3 * i + 1] - a[3 * i], first && a[3 * i] == 0));
        return EDGELLM_STATUS_OK;
    }
    case TK_SPLIT_MERGED_NEXT: {
        /* fold from the end; groups are written from the back of the array */
        size_t m = 0; /* number of groups, stored at a[3*(n-1-k)] for k < m */
        bool prevm = false;
        for (size_t ii = n; ii-- > 0;) {
            bool im = a[3 * ii + 2];
            size_t st = a[3 * ii], en = a[3 * ii + 1];
            if (im && !prevm && m > 0) {
                a[3 * (n - m)] = st; /* last pushed group: extend its start */
            } else {
                size_t g = n - 1 - m;
                a[3 * g] = st;
                a[3 * g + 1] = en;
                m++;
            }
            prevm = im;
        }
        for (size_t k = n - m; k < n; k++)
            EL_TRY(tk_pieces_add(out, s + a[3 * k], a[3 * k + 1] - a[3 * k], first && a[3 * k] == 0));
        return EDGELLM_STATUS_OK;
    }
    }
    return EDGELLM_STATUS_OK;
}

static const char *k_gpt2_re =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char *tk_gpt2_regex(void);
const char *tk_gpt2_regex(void) { return k_gpt2_re; }

static bool pred_space(int32_t cp) { return tk_is_whitespace(cp); }

static edgellm_status pre_one(const tk_pre *p, const tk_pieces *in, tk_pieces *out, pcre2_match_data *md,
                              seglist *l, el_buf *tmp, el_buf *tmp2) {
    for (size_t i = 0; i < in->n; i++) {
        const char *s = tk_piece(in, i);
        size_t n = in->len[i];
        bool first = in->first[i];
        switch (p->type) {
        case TK_PRE_SEQUENCE: break; /* handled by caller */
        case TK_PRE_SPLIT:
            EL_TRY(regex_matches(&p->re, md, s, n, p->invert, l));
            EL_TRY(split_apply(s, first, l, p->behavior, out));
            break;
        case TK_PRE_WHITESPACE:
            EL_TRY(regex_matches(&p->re, md, s, n, true, l));
            EL_TRY(split_apply(s, first, l, TK_SPLIT_REMOVED, out));
            break;
        case TK_PRE_CHAR_DELIMITER: {
            l->n = 0;
            size_t last = 0;
            if (n == 0) EL_TRY(seg_push(l, 0, 0, false));
            for (size_t k = 0; k < n;) {
                int32_t cp;
                int kl = tk_utf8_decode(s + k, n - k, &cp);
                if (cp == p->delimiter) {
                    if (last < k) EL_TRY(seg_push(l, last, k, false));
                    EL_TRY(seg_push(l, k, k + (size_t)kl, true));
                    last = k + (size_t)kl;
                }
                k += (size_t)kl;
            }
            if (n > last) EL_TRY(seg_push(l, last, n, false));
            EL_TRY(split_apply(s, first, l, TK_SPLIT_REMOVED, out));
            break;
        }
        case TK_PRE_WHITESPACE_SPLIT:
            EL_TRY(pred_matches(pred_space, s, n, l));
            EL_TRY(split_apply(s, first, l, TK_SPLIT_REMOVED, out));
            break;
        case TK_PRE_PUNCTUATION:
            EL_TRY(pred_matches(tk_is_punctuation, s, n, l));
            EL_TRY(split_apply(s, first, l, p->behavior, out));
            break;
        case TK_PRE_DIGITS:
            EL_TRY(pred_matches(tk_is_numeric, s, n, l));
            EL_TRY(split_apply(s, first, l, p->individual_digits ? TK_SPLIT_ISOLATED : TK_SPLIT_CONTIGUOUS, out));
            break;
        case TK_PRE_BERT: {
            tk_pieces mid = {0};
            edgellm_status st = pred_matches(pred_space, s, n, l);
            if (st >= 0) st = split_apply(s, first, l, TK_SPLIT_REMOVED, &mid);
            for (size_t k = 0; st >= 0 && k < mid.n; k++) {
                st = pred_matches(tk_is_punctuation, tk_piece(&mid, k), mid.len[k], l);
                if (st >= 0) st = split_apply(tk_piece(&mid, k), mid.first[k], l, TK_SPLIT_ISOLATED, out);
            }
            tk_pieces_free(&mid);
            EL_TRY(st);
            break;
        }
        case TK_PRE_BYTELEVEL: {
            tmp->len = 0;
            if (p->add_prefix_space && !(n > 0 && s[0] == ' ')) EL_TRY(el_buf_append(tmp, " ", 1));
            EL_TRY(el_buf_append(tmp, s, n));
            const char *t = tmp->data;
            size_t tn = tmp->len;
            if (p->use_regex) {
                EL_TRY(regex_matches(&p->re, md, t, tn, false, l));
            } else {
                l->n = 0;
                EL_TRY(seg_push(l, 0, tn, false));
            }
            for (size_t k = 0; k < l->n; k++) {
                size_t a = l->a[3 * k], e = l->a[3 * k + 1];
                if (e == a) continue;
                tmp2->len = 0;
                EL_TRY(bytelevel_map(tmp2, t + a, e - a));
                EL_TRY(tk_pieces_add(out, tmp2->data, tmp2->len, first && a == 0));
            }
            break;
        }
        case TK_PRE_METASPACE: {
            tmp->len = 0;
            bool starts = n >= strlen(p->replacement) && !memcmp(s, p->replacement, strlen(p->replacement));
            /* the replacement of ' ' happens first, so a leading ' ' also counts as starting with it */
            if (n > 0 && s[0] == ' ') starts = true;
            bool prepend = (p->prepend_scheme == TK_PREPEND_ALWAYS && !starts) ||
                           (p->prepend_scheme == TK_PREPEND_FIRST && !starts && first);
            if (prepend) EL_TRY(el_buf_append_str(tmp, p->replacement));
            size_t rl = strlen(p->replacement);
            for (size_t k = 0; k < n; k++) {
                if (s[k] == ' ') EL_TRY(el_buf_append(tmp, p->replacement, rl));
                else EL_TRY(el_buf_append(tmp, s + k, 1));
            }
            if (!p->split) {
                EL_TRY(tk_pieces_add(out, tmp->data, tmp->len, first));
                break;
            }
            /* split on the replacement char, MergedWithNext */
            l->n = 0;
            const char *t = tmp->data;
            size_t tn = tmp->len, last = 0;
            if (tn == 0) EL_TRY(seg_push(l, 0, 0, false));
            for (size_t k = 0; k < tn;) {
                int32_t cp;
                int kl = tk_utf8_decode(t + k, tn - k, &cp);
                if (cp == p->replacement_cp) {
                    if (last < k) EL_TRY(seg_push(l, last, k, false));
                    EL_TRY(seg_push(l, k, k + (size_t)kl, true));
                    last = k + (size_t)kl;
                }
                k += (size_t)kl;
            }
            if (tn > last) EL_TRY(seg_push(l, last, tn, false));
            /* the pieces come from tmp, which split_apply copies into out */
            EL_TRY(split_apply(t, first, l, TK_SPLIT_MERGED_NEXT, out));
            break;
        }
        }
    }
    return EDGELLM_STATUS_OK;
}

edgellm_status tk_pre_apply(const tk_pre *p, const tk_pieces *in, tk_pieces *out, pcre2_match_data *md) {
    tk_pieces_clear(out);
    seglist l = {0};
    el_buf tmp = {0}, tmp2 = {0};
    edgellm_status st = EDGELLM_STATUS_OK;
    if (p->type != TK_PRE_SEQUENCE) {
        st = pre_one(p, in, out, md, &l, &tmp, &tmp2);
    } else if (p->n_children == 0) {
        for (size_t i = 0; i < in->n && st >= 0; i++) st = tk_pieces_add(out, tk_piece(in, i), in->len[i], in->first[i]);
    } else {
        tk_pieces a = {0}, b = {0};
        const tk_pieces *cur = in;
        for (size_t c = 0; c < p->n_children && st >= 0; c++) {
            tk_pieces *dst = c == p->n_children - 1 ? out : (cur == &a ? &b : &a);
            tk_pieces_clear(dst);
            st = tk_pre_apply(&p->children[c], cur, dst, md);
            cur = dst;
        }
        tk_pieces_free(&a);
        tk_pieces_free(&b);
    }
    el_free(l.a);
    el_buf_free(&tmp);
    el_buf_free(&tmp2);
    return st;
}
