/* tok_util.c - tokenizer helpers: string hash map, piece lists, PCRE2 regex wrapper, UTF-8 utilities. */
#include "tokenizer_impl.h"

#include <string.h>
#include <utf8proc.h>

/* ---- hash map ------------------------------------------------------------------------------------- */
void tk_map_free(tk_map *m) {
    el_free(m->e);
    el_free(m->slots);
    el_buf_free(&m->arena);
    memset(m, 0, sizeof *m);
}

static edgellm_status map_rehash(tk_map *m, size_t nslots) {
    int32_t *s = el_malloc(nslots * sizeof *s);
    if (!s) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    memset(s, 0xff, nslots * sizeof *s);
    size_t mask = nslots - 1;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = (size_t)m->e[i].hash & mask;
        while (s[j] >= 0) j = (j + 1) & mask;
        s[j] = (int32_t)i;
    }
    el_free(m->slots);
    m->slots = s;
    m->mask = mask;
    return EDGELLM_STATUS_OK;
}

edgellm_status tk_map_reserve(tk_map *m, size_t n, size_t key_bytes) {
    if (n > m->cap) {
        tk_map_entry *ne = el_realloc(m->e, n * sizeof *ne);
        if (!ne) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        m->e = ne;
        m->cap = n;
    }
    EL_TRY(el_buf_reserve(&m->arena, key_bytes));
    size_t slots = 1024;
    while (slots < (n + 1) * 2) slots *= 2;
    if (!m->slots || slots > m->mask + 1) return map_rehash(m, slots);
    return EDGELLM_STATUS_OK;
}

int32_t tk_map_get(const tk_map *m, const char *k, size_t klen) {
    if (!m->slots) return -1;
    uint64_t h = el_hash64(k, klen);
    size_t j = (size_t)h & m->mask;
    for (;;) {
        int32_t i = m->slots[j];
        if (i < 0) return -1;
        const tk_map_entry *e = &m->e[i];
        if (e->hash == h && e->klen == klen && !memcmp(m->arena.data + e->off, k, klen)) return e->val;
        j = (j + 1) & m->mask;
    }
}

edgellm_status tk_map_put(tk_map *m, const char *k, size_t klen, int32_t val) {
    if (klen > UINT32_MAX) return el_err(EDGELLM_STATUS_LIMIT, "tokenizer: token too long");
    if (!m->slots) EL_TRY(map_rehash(m, 1024));
    uint64_t h = el_hash64(k, klen);
    size_t j = (size_t)h & m->mask;
    for (;;) {
        int32_t i = m->slots[j];
        if (i < 0) break;
        tk_map_entry *e = &m->e[i];
        if (e->hash == h && e->klen == klen && !memcmp(m->arena.data + e->off, k, klen)) {
            e->val = val;
            return EDGELLM_STATUS_OK;
        }
        j = (j + 1) & m->mask;
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        tk_map_entry *ne = el_realloc(m->e, nc * sizeof *ne);
        if (!ne) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        m->e = ne;
        m->cap = nc;
    }
    size_t off = m->arena.len;
    EL_TRY(el_buf_append(&m->arena, k, klen));
    EL_TRY(el_buf_append(&m->arena, "", 1)); /* keep keys NUL-terminated */
    size_t i = m->n++;
    m->e[i] = (tk_map_entry){h, off, (uint32_t)klen, val};
    if ((m->n + 1) * 2 > m->mask + 1) return map_rehash(m, (m->mask + 1) * 2);
    m->slots[j] = (int32_t)i;
    return EDGELLM_STATUS_OK;
}

/* ---- pieces --------------------------------------------------------------------------------------- */
void tk_pieces_free(tk_pieces *p) {
    el_buf_free(&p->arena);
    el_free(p->off);
    el_free(p->len);
    el_free(p->first);
    memset(p, 0, sizeof *p);
}

void tk_pieces_clear(tk_pieces *p) {
    p->arena.len = 0;
    p->n = 0;
}

static edgellm_status pieces_grow(tk_pieces *p) {
    if (p->n < p->cap) return EDGELLM_STATUS_OK;
    size_t nc = p->cap ? p->cap * 2 : 32;
    size_t *o = el_realloc(p->off, nc * sizeof *o);
    if (!o) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    p->off = o;
    size_t *l = el_realloc(p->len, nc * sizeof *l);
    if (!l) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    p->len = l;
    uint8_t *f = el_realloc(p->first, nc);
    if (!f) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    p->first = f;
    p->cap = nc;
    return EDGELLM_STATUS_OK;
}

edgellm_status tk_pieces_add2(tk_pieces *p, const char *a, size_t alen, const char *s, size_t len, bool first) {
    if (alen + len == 0) return EDGELLM_STATUS_OK; /* HF drops empty splits */
    EL_TRY(pieces_grow(p));
    size_t off = p->arena.len;
    if (alen) EL_TRY(el_buf_append(&p->arena, a, alen));
    if (len) EL_TRY(el_buf_append(&p->arena, s, len));
    p->off[p->n] = off;
    p->len[p->n] = alen + len;
    p->first[p->n] = first;
    p->n++;
    return EDGELLM_STATUS_OK;
}

edgellm_status tk_pieces_add_any(tk_pieces *p, const char *s, size_t len, bool first) {
    EL_TRY(pieces_grow(p));
    size_t off = p->arena.len;
    EL_TRY(el_buf_reserve(&p->arena, len + 1));
    if (len) memcpy(p->arena.data + off, s, len);
    p->arena.len += len;
    p->off[p->n] = off;
    p->len[p->n] = len;
    p->first[p->n] = first;
    p->n++;
    return EDGELLM_STATUS_OK;
}

edgellm_status tk_pieces_add(tk_pieces *p, const char *s, size_t len, bool first) {
    return tk_pieces_add2(p, NULL, 0, s, len, first);
}

/* ---- regex ---------------------------------------------------------------------------------------- */
void tk_regex_free(tk_regex *r) {
    if (r->code) pcre2_code_free(r->code);
    el_free(r->literal);
    memset(r, 0, sizeof *r);
}

/* Oniguruma classes that differ from PCRE2's (UCP): \s also matches U+0085; \w is Alphabetic | Mark |
 * Nd | Pc plus the Latin-1 table's word digits and fractions (U+00B2 U+00B3 U+00B9 U+00BC-U+00BE), checked
 * against HF; \h is a hex digit. Rewritten outside and inside character classes (\S, \W, \H only
 * outside). */
#define ONIG_WORD "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}"
static edgellm_status translate_onig(const char *pat, el_buf *out) {
    bool in_class = false;
    size_t n = strlen(pat);
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char d = pat[i + 1];
            if (d == 's') {
                EL_TRY(el_buf_append_str(out, in_class ? "\\s\\x{85}" : "[\\s\\x{85}]"));
            } else if (d == 'S' && !in_class) {
                EL_TRY(el_buf_append_str(out, "[^\\s\\x{85}]"));
            } else if (d == 'w') {
                EL_TRY(el_buf_append_str(out, in_class ? ONIG_WORD : "[" ONIG_WORD "]"));
            } else if (d == 'W' && !in_class) {
                EL_TRY(el_buf_append_str(out, "[^" ONIG_WORD "]"));
            } else if (d == 'h') { /* Oniguruma: hexadecimal digit */
                EL_TRY(el_buf_append_str(out, in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"));
            } else if (d == 'H' && !in_class) {
                EL_TRY(el_buf_append_str(out, "[^0-9a-fA-F]"));
            } else {
                EL_TRY(el_buf_append(out, pat + i, 2));
            }
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            EL_TRY(el_buf_append(out, &c, 1));
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < n && pat[i + 1] == '^') {
                EL_TRY(el_buf_append(out, "^", 1));
                i++;
            }
            if (i + 1 < n && pat[i + 1] == ']') {
                EL_TRY(el_buf_append(out, "]", 1));
                i++;
            }
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        EL_TRY(el_buf_append(out, &c, 1));
    }
    return el_buf_append(out, "", 1); /* NUL */
}

edgellm_status tk_regex_init(tk_regex *r, const char *pattern, bool is_literal) {
    memset(r, 0, sizeof *r);
    if (is_literal) {
        r->literal = el_strdup(pattern);
        if (!r->literal) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        r->literal_len = strlen(pattern);
        return EDGELLM_STATUS_OK;
    }
    el_buf b = {0};
    edgellm_status st = translate_onig(pattern, &b);
    if (st < 0) {
        el_buf_free(&b); /* a partial translation (e.g. out of memory) */
        return st;
    }
    int err;
    PCRE2_SIZE eoff;
    r->code = pcre2_compile((PCRE2_SPTR)b.data, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    el_buf_free(&b);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: cannot compile regex /%s/ at offset %zu: %s",
                      pattern, (size_t)eoff, (const char *)msg);
    }
    pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is missing */
    return EDGELLM_STATUS_OK;
}

int tk_regex_next(const tk_regex *r, pcre2_match_data *md, const char *s, size_t len, size_t from, size_t *ms,
                  size_t *me) {
    if (r->literal) {
        if (r->literal_len == 0 || from > len) return 0;
        const char *p = memmem(s + from, len - from, r->literal, r->literal_len);
        if (!p) return 0;
        *ms = (size_t)(p - s);
        *me = *ms + r->literal_len;
        return 1;
    }
    int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        el_err(EDGELLM_STATUS_LIMIT, "tokenizer: regex match failed on a %zu-byte piece: %s", len, (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* ---- utf8 ----------------------------------------------------------------------------------------- */
int tk_utf8_decode(const char *s, size_t n, int32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80 || n < 2) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xE0) {
        *cp = ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if (u[0] < 0xF0 || n < 4) {
        if (n < 3) {
            *cp = u[0];
            return 1;
        }
        *cp = ((u[0] & 0x0F) << 12) | ((u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = ((u[0] & 0x07) << 18) | ((u[1] & 0x3F) << 12) | ((u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    return 4;
}

int tk_utf8_encode(int32_t cp, char *out) {
    return (int)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

bool tk_is_whitespace(int32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool tk_is_numeric(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool tk_is_alnum(int32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    utf8proc_category_t cat = utf8proc_category(c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || cat == UTF8PROC_CATEGORY_ND ||
           cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool tk_is_punctuation(int32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    utf8proc_category_t cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* Length of the valid sequence at s (0 if invalid); *sub = length of the maximal subpart when invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n, size_t *sub) {
    unsigned char c = s[0];
    *sub = 1;
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else return 0;
    for (size_t k = 1; k <= need; k++) {
        if (k >= n) {
            *sub = k;
            return 0;
        }
        unsigned char d = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (d < l || d > h) {
            *sub = k;
            return 0;
        }
    }
    return need + 1;
}

bool tk_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, sub;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_valid_len(u + i, n - i, &sub);
        if (!l) return false;
        i += l;
    }
    return true;
}

edgellm_status tk_utf8_lossy(el_buf *out, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0, sub;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_valid_len(u + i, n - i, &sub);
        if (l) {
            i += l;
            continue;
        }
        EL_TRY(el_buf_append(out, s + run, i - run));
        EL_TRY(el_buf_append(out, "\xEF\xBF\xBD", 3));
        i += sub;
        run = i;
    }
    return el_buf_append(out, s + run, n - run);
}
