/*
 * jinja_parse.c - Jinja2 lexer (with trim_blocks / lstrip_blocks / {%- -%} whitespace control exactly as
 * jinja2's lexer applies them) and recursive-descent parser to an AST.
 */
#include "jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ------------------------------------------------------------------------------------- */
struct jj_arena_blk {
    jj_arena_blk *next;
    size_t used, cap;
    max_align_t align_[]; /* data follows */
};

void *jj_alloc(jj_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!n) n = 16;
    jj_arena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (a->limit && a->total + cap > a->limit) {
            a->oom = true;
            return NULL;
        }
        b = el_malloc(sizeof *b + cap);
        if (!b) {
            a->oom = true;
            return NULL;
        }
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->total += cap;
    }
    void *p = (char *)(b + 1) + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void jj_arena_free(jj_arena *a) {
    jj_arena_blk *b = a->head;
    while (b) {
        jj_arena_blk *n = b->next;
        el_free(b);
        b = n;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---- lexer ------------------------------------------------------------------------------------- */
enum { T_EOF, T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP };

typedef struct tok {
    int t;
    int line;
    const char *p; /* text / name / op / decoded string (arena) */
    size_t n;
    int64_t i;
    double f;
} tok;

typedef struct lexer {
    jj_arena *a;
    const char *s;
    size_t n, pos;
    int line;
    tok *toks;
    size_t ntok, cap;
} lexer;

static edgellm_status push_tok(lexer *L, int t, const char *p, size_t n, int line) {
    if (L->ntok == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        tok *nt = el_realloc(L->toks, cap * sizeof *nt);
        if (!nt) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
        L->toks = nt;
        L->cap = cap;
    }
    tok *k = &L->toks[L->ntok++];
    memset(k, 0, sizeof *k);
    k->t = t;
    k->p = p;
    k->n = n;
    k->line = line;
    return EDGELLM_STATUS_OK;
}

/* Length of the Unicode whitespace char at p (Python str.isspace), 0 if none. */
static size_t ws_len(const char *p, size_t avail) {
    unsigned char c = (unsigned char)p[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c < 0x80) return 0;
    if (avail >= 2 && c == 0xc2 && ((unsigned char)p[1] == 0x85 || (unsigned char)p[1] == 0xa0)) return 2;
    if (avail >= 3) {
        unsigned c1 = (unsigned char)p[1], c2 = (unsigned char)p[2];
        uint32_t cp = ((c & 0x0fu) << 12) | ((c1 & 0x3fu) << 6) | (c2 & 0x3fu);
        if ((c & 0xf0) == 0xe0 &&
            (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
             cp == 0x205f || cp == 0x3000))
            return 3;
    }
    return 0;
}
/* Length of the whitespace suffix of p[0..n). */
static size_t ws_suffix(const char *p, size_t n) {
    size_t e = n;
    while (e > 0) {
        size_t k = 0;
        for (size_t back = 1; back <= 3 && back <= e; back++) {
            size_t l = ws_len(p + e - back, back);
            if (l == back) {
                k = back;
                break;
            }
        }
        if (!k) break;
        e -= k;
    }
    return n - e;
}
size_t el_jinja_ws_len(const char *p, size_t avail) { return ws_len(p, avail); }
size_t el_jinja_ws_suffix(const char *p, size_t n) { return ws_suffix(p, n); }

static int count_nl(const char *p, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += p[i] == '\n';
    return c;
}

/* Emits text s[from, to) applying the strip rules of the following tag. */
static edgellm_status emit_text(lexer *L, size_t from, size_t to, char sign, bool is_var, bool line_starting) {
    const char *t = L->s + from;
    size_t n = to - from;
    if (sign == '-') {
        n -= ws_suffix(t, n);
    } else if (sign != '+' && !is_var) {
        size_t lpos = 0;
        for (size_t i = n; i > 0; i--)
            if (t[i - 1] == '\n') {
                lpos = i;
                break;
            }
        if (lpos > 0 || line_starting) {
            bool only = true;
            for (size_t i = lpos; i < n; i++)
                if (t[i] != ' ' && t[i] != '\t') only = false;
            if (only) n = lpos;
        }
    }
    if (n) EL_TRY(push_tok(L, T_TEXT, t, n, L->line));
    L->line += count_nl(L->s + from, to - from);
    return EDGELLM_STATUS_OK;
}

static edgellm_status lex_err(lexer *L, edgellm_status s, const char *what) {
    return el_err(s, "chat template: %s at line %d", what, L->line);
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Lexes one string literal at L->pos (quote char there). */
static edgellm_status lex_string(lexer *L) {
    char q = L->s[L->pos];
    size_t i = L->pos + 1;
    int line = L->line;
    size_t end = i;
    while (end < L->n && L->s[end] != q) {
        if (L->s[end] == '\\' && end + 1 < L->n) end++;
        end++;
    }
    if (end >= L->n) return lex_err(L, EDGELLM_STATUS_FORMAT, "unterminated string");
    char *o = jj_alloc(L->a, (end - i) * 2 + 8);
    if (!o) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
    size_t k = 0;
    while (i < end) {
        char c = L->s[i];
        if (c != '\\') {
            o[k++] = c;
            i++;
            continue;
        }
        char e = L->s[i + 1];
        i += 2;
        switch (e) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'v': o[k++] = '\v'; break;
        case 'a': o[k++] = '\a'; break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int d = 0; d < nd; d++) {
                int h = i + (size_t)d < end ? hexv(L->s[i + (size_t)d]) : -1;
                if (h < 0) return lex_err(L, EDGELLM_STATUS_FORMAT, "bad escape in string");
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)nd;
            if (cp > 0x10ffff) return lex_err(L, EDGELLM_STATUS_FORMAT, "bad escape in string");
            k += put_utf8(o + k, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int d = 0; d < 2 && i < end && L->s[i] >= '0' && L->s[i] <= '7'; d++) cp = cp * 8 + (uint32_t)(L->s[i++] - '0');
                k += put_utf8(o + k, cp);
            } else {
                o[k++] = '\\';
                o[k++] = e;
            }
        }
    }
    L->line += count_nl(L->s + L->pos, end - L->pos);
    EL_TRY(push_tok(L, T_STR, o, k, line));
    L->pos = end + 1;
    return EDGELLM_STATUS_OK;
}

static const char *k_ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                              "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};

/* Lexes the inside of a {{ }} or {% %} tag up to and including its end; returns via *line_starting. */
static edgellm_status lex_tag(lexer *L, bool is_var, bool *line_starting) {
    int depth = 0;
    for (;;) {
        while (L->pos < L->n) {
            size_t w = ws_len(L->s + L->pos, L->n - L->pos);
            if (!w) break;
            if (L->s[L->pos] == '\n') L->line++;
            L->pos += w;
        }
        if (L->pos >= L->n) return lex_err(L, EDGELLM_STATUS_FORMAT, is_var ? "unclosed '{{'" : "unclosed '{%'");
        const char *p = L->s + L->pos;
        size_t rem = L->n - L->pos;
        if (depth == 0) {
            char c2 = is_var ? '}' : '%';
            char c3 = is_var ? '}' : '}';
            int sign = 0;
            size_t k = 0;
            if (rem >= 3 && (p[0] == '-' || p[0] == '+') && p[1] == c2 && p[2] == c3) {
                sign = p[0];
                k = 3;
            } else if (rem >= 2 && p[0] == c2 && p[1] == c3) {
                k = 2;
            }
            if (k && !(is_var && sign == '+')) {
                EL_TRY(push_tok(L, is_var ? T_VEND : T_BEND, NULL, 0, L->line));
                L->pos += k;
                size_t start = L->pos;
                if (sign == '-') {
                    while (L->pos < L->n) {
                        size_t w = ws_len(L->s + L->pos, L->n - L->pos);
                        if (!w) break;
                        L->pos += w;
                    }
                } else if (!is_var && sign != '+' && L->pos < L->n && L->s[L->pos] == '\n') {
                    L->pos++;
                }
                L->line += count_nl(L->s + start, L->pos - start);
                /* line_starting: whether the whole matched end token ends with a newline */
                *line_starting = L->s[L->pos - 1] == '\n';
                return EDGELLM_STATUS_OK;
            }
        }
        unsigned char c = (unsigned char)*p;
        if (c == '\'' || c == '"') {
            EL_TRY(lex_string(L));
            continue;
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            size_t k = 1;
            while (k < rem && ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') ||
                               (p[k] >= '0' && p[k] <= '9') || p[k] == '_'))
                k++;
            EL_TRY(push_tok(L, T_NAME, p, k, L->line));
            L->pos += k;
            continue;
        }
        if (c >= '0' && c <= '9') {
            bool after_dot = L->ntok && L->toks[L->ntok - 1].t == T_OP && L->toks[L->ntok - 1].n == 1 &&
                             L->toks[L->ntok - 1].p[0] == '.';
            size_t k = 0;
            while (k < rem && ((p[k] >= '0' && p[k] <= '9') || p[k] == '_')) k++;
            bool is_float = false;
            if (!after_dot) {
                size_t j = k;
                if (j + 1 < rem && p[j] == '.' && p[j + 1] >= '0' && p[j + 1] <= '9') {
                    j++;
                    while (j < rem && ((p[j] >= '0' && p[j] <= '9') || p[j] == '_')) j++;
                    is_float = true;
                    k = j;
                }
                if (k < rem && (p[k] == 'e' || p[k] == 'E')) {
                    size_t e = k + 1;
                    if (e < rem && (p[e] == '+' || p[e] == '-')) e++;
                    if (e < rem && p[e] >= '0' && p[e] <= '9') {
                        while (e < rem && p[e] >= '0' && p[e] <= '9') e++;
                        k = e;
                        is_float = true;
                    }
                }
            }
            char buf[64];
            size_t bn = 0;
            for (size_t j = 0; j < k && bn < sizeof buf - 1; j++)
                if (p[j] != '_') buf[bn++] = p[j];
            buf[bn] = 0;
            EL_TRY(push_tok(L, is_float ? T_FLOAT : T_INT, p, k, L->line));
            if (is_float)
                L->toks[L->ntok - 1].f = strtod(buf, NULL);
            else
                L->toks[L->ntok - 1].i = strtoll(buf, NULL, 10);
            L->pos += k;
            continue;
        }
        bool found = false;
        for (size_t o = 0; o < sizeof k_ops / sizeof k_ops[0]; o++) {
            size_t ol = strlen(k_ops[o]);
            if (rem >= ol && !memcmp(p, k_ops[o], ol)) {
                if (ol == 1 && (*p == '(' || *p == '[' || *p == '{')) depth++;
                if (ol == 1 && (*p == ')' || *p == ']' || *p == '}')) {
                    if (depth == 0) return lex_err(L, EDGELLM_STATUS_FORMAT, "unbalanced bracket");
                    depth--;
                }
                EL_TRY(push_tok(L, T_OP, p, ol, L->line));
                L->pos += ol;
                found = true;
                break;
            }
        }
        if (!found) return lex_err(L, EDGELLM_STATUS_FORMAT, "unexpected character");
    }
}

static bool word_at(const char *p, size_t rem, const char *w) {
    size_t n = strlen(w);
    if (rem < n || memcmp(p, w, n)) return false;
    return rem == n || !((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= '0' && p[n] <= '9') ||
                         p[n] == '_');
}

/* If a `{% raw %}` starts right after the `{%` at L->pos (sign consumed), handles the whole raw block. */
static edgellm_status try_raw(lexer *L, bool *handled, bool *line_starting) {
    *handled = false;
    size_t i = L->pos;
    while (i < L->n && (L->s[i] == ' ' || L->s[i] == '\t' || L->s[i] == '\n')) i++;
    if (!word_at(L->s + i, L->n - i, "raw")) return EDGELLM_STATUS_OK;
    i += 3;
    while (i < L->n && (L->s[i] == ' ' || L->s[i] == '\t' || L->s[i] == '\n')) i++;
    char sign = 0;
    if (i < L->n && (L->s[i] == '-' || L->s[i] == '+')) sign = L->s[i++];
    if (i + 1 >= L->n || L->s[i] != '%' || L->s[i + 1] != '}') return EDGELLM_STATUS_OK;
    i += 2;
    if (sign == '-')
        while (i < L->n && ws_len(L->s + i, L->n - i)) i += ws_len(L->s + i, L->n - i);
    else if (sign != '+' && i < L->n && L->s[i] == '\n')
        i++;
    L->line += count_nl(L->s + L->pos, i - L->pos);
    bool ls = L->s[i - 1] == '\n';
    /* find {%[-+]? endraw [-+]?%} */
    for (size_t j = i; j + 1 < L->n; j++) {
        if (L->s[j] != '{' || L->s[j + 1] != '%') continue;
        size_t k = j + 2;
        char s1 = 0;
        if (k < L->n && (L->s[k] == '-' || L->s[k] == '+')) s1 = L->s[k++];
        while (k < L->n && ws_len(L->s + k, L->n - k)) k += ws_len(L->s + k, L->n - k);
        if (!word_at(L->s + k, L->n - k, "endraw")) continue;
        k += 6;
        while (k < L->n && ws_len(L->s + k, L->n - k)) k += ws_len(L->s + k, L->n - k);
        char s2 = 0;
        if (k < L->n && (L->s[k] == '-' || L->s[k] == '+')) s2 = L->s[k++];
        if (k + 1 >= L->n || L->s[k] != '%' || L->s[k + 1] != '}') continue;
        k += 2;
        EL_TRY(emit_text(L, i, j, s1, false, ls));
        size_t st = k;
        if (s2 == '-')
            while (k < L->n && ws_len(L->s + k, L->n - k)) k += ws_len(L->s + k, L->n - k);
        else if (s2 != '+' && k < L->n && L->s[k] == '\n')
            k++;
        L->line += count_nl(L->s + j, k - j) - count_nl(L->s + j, 0);
        (void)st;
        L->pos = k;
        *line_starting = L->s[k - 1] == '\n';
        *handled = true;
        return EDGELLM_STATUS_OK;
    }
    return lex_err(L, EDGELLM_STATUS_FORMAT, "missing endraw");
}

static edgellm_status lex_all(lexer *L) {
    bool line_starting = true;
    while (L->pos < L->n) {
        /* find next tag start */
        size_t j = L->pos;
        int kind = 0; /* '{', '%', '#' */
        while (j + 1 < L->n) {
            if (L->s[j] == '{' && (L->s[j + 1] == '{' || L->s[j + 1] == '%' || L->s[j + 1] == '#')) {
                kind = L->s[j + 1];
                break;
            }
            j++;
        }
        if (!kind) {
            EL_TRY(emit_text(L, L->pos, L->n, '+', true, false));
            L->pos = L->n;
            break;
        }
        char sign = 0;
        if (j + 2 < L->n && (L->s[j + 2] == '-' || L->s[j + 2] == '+')) sign = L->s[j + 2];
        bool is_var = kind == '{';
        if (is_var && sign == '+') sign = 0; /* `{{+` is not a sign */
        EL_TRY(emit_text(L, L->pos, j, sign, is_var, line_starting));
        L->pos = j + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t k = L->pos;
            while (k + 1 < L->n && !(L->s[k] == '#' && L->s[k + 1] == '}')) k++;
            if (k + 1 >= L->n) return lex_err(L, EDGELLM_STATUS_FORMAT, "unclosed comment");
            bool minus = k > L->pos && L->s[k - 1] == '-';
            bool plus = k > L->pos && L->s[k - 1] == '+';
            size_t e = k + 2;
            if (minus)
                while (e < L->n && ws_len(L->s + e, L->n - e)) e += ws_len(L->s + e, L->n - e);
            else if (!plus && e < L->n && L->s[e] == '\n')
                e++;
            L->line += count_nl(L->s + L->pos, e - L->pos);
            line_starting = L->s[e - 1] == '\n';
            L->pos = e;
            continue;
        }
        if (kind == '%') {
            bool handled;
            EL_TRY(try_raw(L, &handled, &line_starting));
            if (handled) continue;
        }
        EL_TRY(push_tok(L, is_var ? T_VBEGIN : T_BBEGIN, NULL, 0, L->line));
        EL_TRY(lex_tag(L, is_var, &line_starting));
    }
    return push_tok(L, T_EOF, NULL, 0, L->line);
}

/* ---- parser ------------------------------------------------------------------------------------ */
typedef struct parser {
    jj_arena *a;
    tok *t;
    size_t i, n;
    int depth;
} parser;

#define MAX_NESTING 128
#define ENTER(P)                                                                                       \
    do {                                                                                               \
        if (++(P)->depth > MAX_NESTING) return perr(P, "nested too deeply%s", "");                    \
    } while (0)

static tok *cur(parser *P) { return &P->t[P->i]; }
static tok *peekn(parser *P, size_t k) { return &P->t[P->i + k < P->n ? P->i + k : P->n - 1]; }
static bool is_op(const tok *k, const char *op) {
    return k->t == T_OP && k->n == strlen(op) && !memcmp(k->p, op, k->n);
}
static bool is_name(const tok *k, const char *nm) {
    return k->t == T_NAME && k->n == strlen(nm) && !memcmp(k->p, nm, k->n);
}

static edgellm_status perr(parser *P, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return el_err(EDGELLM_STATUS_FORMAT, "chat template: %s at line %d", msg, cur(P)->line);
}
static edgellm_status punsup(parser *P, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: %s at line %d", msg, cur(P)->line);
}

static char *tokstr(parser *P, const tok *k) {
    char *s = jj_alloc(P->a, k->n + 1);
    if (s) memcpy(s, k->p, k->n);
    return s;
}

static jj_node *mk(parser *P, int kind) {
    jj_node *n = jj_alloc(P->a, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = cur(P)->line;
    }
    return n;
}

#define PNEW(var, kind)                                                                                \
    jj_node *var = mk(P, kind);                                                                        \
    if (!var) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory")

static edgellm_status expect_op(parser *P, const char *op) {
    if (!is_op(cur(P), op)) return perr(P, "expected '%s'", op);
    P->i++;
    return EDGELLM_STATUS_OK;
}

/* growable node list */
typedef struct nlist {
    jj_node **v;
    const char **names;
    int n, cap;
} nlist;
static edgellm_status nl_push(parser *P, nlist *l, jj_node *x, const char *name) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        jj_node **nv = jj_alloc(P->a, (size_t)cap * sizeof *nv);
        const char **nn = jj_alloc(P->a, (size_t)cap * sizeof *nn);
        if (!nv || !nn) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
        if (l->n) {
            memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
            memcpy(nn, l->names, (size_t)l->n * sizeof *nn);
        }
        l->v = nv;
        l->names = nn;
        l->cap = cap;
    }
    l->v[l->n] = x;
    l->names[l->n] = name;
    l->n++;
    return EDGELLM_STATUS_OK;
}
static void nl_attach(jj_node *n, nlist *l) {
    n->items = l->v;
    n->names = l->names;
    n->nitems = l->n;
}

static edgellm_status parse_expr(parser *P, jj_node **out, bool with_cond);
static edgellm_status parse_unary(parser *P, jj_node **out, bool with_filter);
static edgellm_status parse_or(parser *P, jj_node **out);

/* Parses `expr (, expr)*` to a tuple (or single expr). simplified: names only when names_only. */
static edgellm_status parse_tuple(parser *P, jj_node **out, bool names_only, bool with_cond, bool explicit_only) {
    nlist l = {0};
    bool comma = false;
    for (;;) {
        if (l.n) {
            if (!is_op(cur(P), ",")) break;
            P->i++;
            comma = true;
        }
        tok *k = cur(P);
        if (l.n && (k->t == T_BEND || k->t == T_VEND || is_op(k, ")") || is_op(k, "=") || is_name(k, "in")))
            break;
        jj_node *e = NULL;
        if (names_only) {
            if (k->t != T_NAME) return perr(P, "expected a name", NULL);
            PNEW(nn, JN_NAME);
            nn->str = tokstr(P, k);
            P->i++;
            e = nn;
            if (is_op(cur(P), ".") && peekn(P, 1)->t == T_NAME) { /* ns.attr target */
                PNEW(ga, JN_GETATTR);
                P->i++;
                ga->a = nn;
                ga->str = tokstr(P, cur(P));
                P->i++;
                e = ga;
            }
        } else {
            EL_TRY(parse_expr(P, &e, with_cond));
        }
        EL_TRY(nl_push(P, &l, e, NULL));
        if (explicit_only && !is_op(cur(P), ",")) break;
    }
    if (!comma && l.n == 1) {
        *out = l.v[0];
        return EDGELLM_STATUS_OK;
    }
    PNEW(t, JN_TUPLE);
    nl_attach(t, &l);
    *out = t;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_call_args(parser *P, jj_node *call) {
    /* at '(' */
    EL_TRY(expect_op(P, "("));
    nlist l = {0};
    while (!is_op(cur(P), ")")) {
        if (l.n) EL_TRY(expect_op(P, ","));
        if (is_op(cur(P), ")")) break;
        if (is_op(cur(P), "*") || is_op(cur(P), "**")) return punsup(P, "unsupported *args/**kwargs in call", NULL);
        const char *kw = NULL;
        if (cur(P)->t == T_NAME && is_op(peekn(P, 1), "=")) {
            kw = tokstr(P, cur(P));
            P->i += 2;
        }
        jj_node *e = NULL;
        EL_TRY(parse_expr(P, &e, true));
        EL_TRY(nl_push(P, &l, e, kw));
    }
    P->i++;
    nl_attach(call, &l);
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_primary(parser *P, jj_node **out) {
    tok *k = cur(P);
    if (k->t == T_NAME) {
        if (is_name(k, "true") || is_name(k, "True") || is_name(k, "false") || is_name(k, "False")) {
            PNEW(n, JN_LIT);
            n->lit.t = JV_BOOL;
            n->lit.u.b = k->p[0] == 't' || k->p[0] == 'T';
            P->i++;
            *out = n;
            return EDGELLM_STATUS_OK;
        }
        if (is_name(k, "none") || is_name(k, "None")) {
            PNEW(n, JN_LIT);
            n->lit.t = JV_NONE;
            P->i++;
            *out = n;
            return EDGELLM_STATUS_OK;
        }
        PNEW(n, JN_NAME);
        n->str = tokstr(P, k);
        P->i++;
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    if (k->t == T_STR) {
        /* adjacent strings concatenate */
        size_t total = 0;
        size_t j = P->i;
        while (P->t[j].t == T_STR) total += P->t[j++].n;
        char *s = jj_alloc(P->a, total + 1);
        if (!s) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
        size_t o = 0;
        while (cur(P)->t == T_STR) {
            memcpy(s + o, cur(P)->p, cur(P)->n);
            o += cur(P)->n;
            P->i++;
        }
        PNEW(n, JN_LIT);
        n->lit.t = JV_STR;
        n->lit.u.s.p = s;
        n->lit.u.s.n = total;
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    if (k->t == T_INT || k->t == T_FLOAT) {
        PNEW(n, JN_LIT);
        if (k->t == T_INT) {
            n->lit.t = JV_INT;
            n->lit.u.i = k->i;
        } else {
            n->lit.t = JV_FLOAT;
            n->lit.u.f = k->f;
        }
        P->i++;
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    if (is_op(k, "(")) {
        P->i++;
        if (is_op(cur(P), ")")) {
            P->i++;
            PNEW(t, JN_TUPLE);
            *out = t;
            return EDGELLM_STATUS_OK;
        }
        jj_node *e = NULL;
        EL_TRY(parse_tuple(P, &e, false, true, false));
        EL_TRY(expect_op(P, ")"));
        *out = e;
        return EDGELLM_STATUS_OK;
    }
    if (is_op(k, "[")) {
        P->i++;
        nlist l = {0};
        while (!is_op(cur(P), "]")) {
            if (l.n) EL_TRY(expect_op(P, ","));
            if (is_op(cur(P), "]")) break;
            jj_node *e = NULL;
            EL_TRY(parse_expr(P, &e, true));
            EL_TRY(nl_push(P, &l, e, NULL));
        }
        P->i++;
        PNEW(n, JN_LIST);
        nl_attach(n, &l);
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    if (is_op(k, "{")) {
        P->i++;
        nlist l = {0};
        while (!is_op(cur(P), "}")) {
            if (l.n) EL_TRY(expect_op(P, ","));
            if (is_op(cur(P), "}")) break;
            jj_node *kk = NULL, *vv = NULL;
            EL_TRY(parse_expr(P, &kk, true));
            EL_TRY(expect_op(P, ":"));
            EL_TRY(parse_expr(P, &vv, true));
            EL_TRY(nl_push(P, &l, kk, NULL));
            EL_TRY(nl_push(P, &l, vv, NULL));
        }
        P->i++;
        PNEW(n, JN_DICT);
        nl_attach(n, &l);
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    return perr(P, "unexpected token in expression", NULL);
}

static edgellm_status parse_subscript_arg(parser *P, jj_node **out) {
    /* inside [ ]: expr or slice */
    jj_node *parts[3] = {NULL, NULL, NULL};
    int idx = 0;
    bool is_slice = false;
    for (;;) {
        if (is_op(cur(P), "]")) break;
        if (is_op(cur(P), ":")) {
            if (idx >= 2) return perr(P, "bad slice", NULL);
            is_slice = true;
            idx++;
            P->i++;
            continue;
        }
        if (parts[idx]) return perr(P, "bad subscript", NULL);
        EL_TRY(parse_expr(P, &parts[idx], true));
        if (!is_slice && is_op(cur(P), ",")) { /* x[a, b]: tuple key */
            nlist l = {0};
            EL_TRY(nl_push(P, &l, parts[0], NULL));
            while (is_op(cur(P), ",")) {
                P->i++;
                if (is_op(cur(P), "]")) break;
                jj_node *e = NULL;
                EL_TRY(parse_expr(P, &e, true));
                EL_TRY(nl_push(P, &l, e, NULL));
            }
            PNEW(t, JN_TUPLE);
            nl_attach(t, &l);
            *out = t;
            return EDGELLM_STATUS_OK;
        }
    }
    if (!is_slice) {
        if (!parts[0]) { /* x[] is x[()] in jinja */
            PNEW(t, JN_TUPLE);
            *out = t;
            return EDGELLM_STATUS_OK;
        }
        *out = parts[0];
        return EDGELLM_STATUS_OK;
    }
    PNEW(s, JN_SLICE);
    s->a = parts[0];
    s->b = parts[1];
    s->c = parts[2];
    *out = s;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_postfix(parser *P, jj_node **node) {
    for (;;) {
        tok *k = cur(P);
        if (is_op(k, ".")) {
            P->i++;
            tok *nk = cur(P);
            if (nk->t == T_NAME) {
                PNEW(g, JN_GETATTR);
                g->a = *node;
                g->str = tokstr(P, nk);
                P->i++;
                *node = g;
            } else if (nk->t == T_INT) {
                PNEW(g, JN_GETITEM);
                PNEW(lit, JN_LIT);
                lit->lit.t = JV_INT;
                lit->lit.u.i = nk->i;
                g->a = *node;
                g->b = lit;
                P->i++;
                *node = g;
            } else {
                return perr(P, "expected attribute name", NULL);
            }
        } else if (is_op(k, "[")) {
            P->i++;
            PNEW(g, JN_GETITEM);
            g->a = *node;
            EL_TRY(parse_subscript_arg(P, &g->b));
            EL_TRY(expect_op(P, "]"));
            *node = g;
        } else if (is_op(k, "(")) {
            PNEW(c, JN_CALL);
            c->a = *node;
            EL_TRY(parse_call_args(P, c));
            *node = c;
        } else {
            return EDGELLM_STATUS_OK;
        }
    }
}

static edgellm_status parse_filter_expr(parser *P, jj_node **node) {
    for (;;) {
        tok *k = cur(P);
        if (is_op(k, "|")) {
            P->i++;
            if (cur(P)->t != T_NAME) return perr(P, "expected filter name", NULL);
            /* dotted filter names are not supported */
            PNEW(f, JN_FILTER);
            f->str = tokstr(P, cur(P));
            P->i++;
            if (!jj_known_filter(f->str)) return punsup(P, "unsupported filter '%s'", f->str);
            f->a = *node;
            if (is_op(cur(P), "(")) EL_TRY(parse_call_args(P, f));
            *node = f;
        } else if (is_name(k, "is")) {
            P->i++;
            PNEW(t, JN_TEST);
            if (is_name(cur(P), "not")) {
                t->neg = true;
                P->i++;
            }
            if (cur(P)->t != T_NAME) return perr(P, "expected test name", NULL);
            t->str = tokstr(P, cur(P));
            P->i++;
            if (!jj_known_test(t->str)) return punsup(P, "unsupported test '%s'", t->str);
            t->a = *node;
            tok *nk = cur(P);
            if (is_op(nk, "(")) {
                EL_TRY(parse_call_args(P, t));
            } else if ((nk->t == T_NAME || nk->t == T_STR || nk->t == T_INT || nk->t == T_FLOAT || is_op(nk, "[") ||
                        is_op(nk, "{")) &&
                       !is_name(nk, "else") && !is_name(nk, "or") && !is_name(nk, "and")) {
                /* as jinja: any other name here is the test's argument */
                if (is_name(nk, "is")) return perr(P, "You cannot chain multiple tests with is", NULL);
                jj_node *arg = NULL;
                EL_TRY(parse_primary(P, &arg));
                EL_TRY(parse_postfix(P, &arg));
                nlist l = {0};
                EL_TRY(nl_push(P, &l, arg, NULL));
                nl_attach(t, &l);
            }
            *node = t;
        } else if (is_op(k, "(")) {
            PNEW(c, JN_CALL);
            c->a = *node;
            EL_TRY(parse_call_args(P, c));
            *node = c;
        } else {
            return EDGELLM_STATUS_OK;
        }
    }
}

static edgellm_status parse_unary_(parser *P, jj_node **out, bool with_filter);
static edgellm_status parse_unary(parser *P, jj_node **out, bool with_filter) {
    ENTER(P);
    edgellm_status st = parse_unary_(P, out, with_filter);
    P->depth--;
    return st;
}

static edgellm_status parse_unary_(parser *P, jj_node **out, bool with_filter) {
    tok *k = cur(P);
    jj_node *n = NULL;
    if (is_op(k, "-") || is_op(k, "+")) {
        PNEW(u, k->p[0] == '-' ? JN_NEG : JN_POS);
        P->i++;
        EL_TRY(parse_unary(P, &u->a, false));
        n = u;
    } else {
        EL_TRY(parse_primary(P, &n));
        EL_TRY(parse_postfix(P, &n));
    }
    if (with_filter) EL_TRY(parse_filter_expr(P, &n));
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status mkbin(parser *P, int kind, int op, jj_node *a, jj_node *b, jj_node **out) {
    PNEW(n, kind);
    n->op = op;
    n->a = a;
    n->b = b;
    *out = n;
    return EDGELLM_STATUS_OK;
}


static edgellm_status parse_pow(parser *P, jj_node **out) {
    jj_node *l = NULL;
    EL_TRY(parse_unary(P, &l, true));
    while (is_op(cur(P), "**")) {
        P->i++;
        jj_node *r = NULL;
        EL_TRY(parse_unary(P, &r, true));
        EL_TRY(mkbin(P, JN_BINOP, OP_POW, l, r, &l));
    }
    *out = l;
    return EDGELLM_STATUS_OK;
}
static edgellm_status parse_math2(parser *P, jj_node **out) {
    jj_node *l = NULL;
    EL_TRY(parse_pow(P, &l));
    for (;;) {
        tok *k = cur(P);
        int op = is_op(k, "*") ? OP_MUL : is_op(k, "/") ? OP_DIV : is_op(k, "//") ? OP_FLOORDIV : is_op(k, "%") ? OP_MOD : 0;
        if (!op) break;
        P->i++;
        jj_node *r = NULL;
        EL_TRY(parse_pow(P, &r));
        EL_TRY(mkbin(P, JN_BINOP, op, l, r, &l));
    }
    *out = l;
    return EDGELLM_STATUS_OK;
}
static edgellm_status parse_concat(parser *P, jj_node **out) {
    jj_node *l = NULL;
    EL_TRY(parse_math2(P, &l));
    if (!is_op(cur(P), "~")) {
        *out = l;
        return EDGELLM_STATUS_OK;
    }
    nlist lst = {0};
    EL_TRY(nl_push(P, &lst, l, NULL));
    while (is_op(cur(P), "~")) {
        P->i++;
        jj_node *r = NULL;
        EL_TRY(parse_math2(P, &r));
        EL_TRY(nl_push(P, &lst, r, NULL));
    }
    PNEW(c, JN_CONCAT);
    nl_attach(c, &lst);
    *out = c;
    return EDGELLM_STATUS_OK;
}
static edgellm_status parse_math1(parser *P, jj_node **out) {
    jj_node *l = NULL;
    EL_TRY(parse_concat(P, &l));
    for (;;) {
        tok *k = cur(P);
        int op = is_op(k, "+") ? OP_ADD : is_op(k, "-") ? OP_SUB : 0;
        if (!op) break;
        P->i++;
        jj_node *r = NULL;
        EL_TRY(parse_concat(P, &r));
        EL_TRY(mkbin(P, JN_BINOP, op, l, r, &l));
    }
    *out = l;
    return EDGELLM_STATUS_OK;
}
static edgellm_status parse_compare(parser *P, jj_node **out) {
    jj_node *l = NULL;
    EL_TRY(parse_math1(P, &l));
    jj_node *result = NULL;
    for (;;) {
        tok *k = cur(P);
        int op = 0;
        bool neg = false;
        if (is_op(k, "==")) op = OP_EQ;
        else if (is_op(k, "!=")) op = OP_NE;
        else if (is_op(k, "<")) op = OP_LT;
        else if (is_op(k, "<=")) op = OP_LE;
        else if (is_op(k, ">")) op = OP_GT;
        else if (is_op(k, ">=")) op = OP_GE;
        else if (is_name(k, "in")) op = OP_IN;
        else if (is_name(k, "not") && is_name(peekn(P, 1), "in")) {
            op = OP_IN;
            neg = true;
            P->i++;
        }
        if (!op) break;
        P->i++;
        jj_node *r = NULL;
        EL_TRY(parse_math1(P, &r));
        jj_node *c = NULL;
        EL_TRY(mkbin(P, JN_COMPARE, op, l, r, &c));
        c->neg = neg;
        if (result)
            EL_TRY(mkbin(P, JN_AND, 0, result, c, &result));
        else
            result = c;
        l = r;
    }
    *out = result ? result : l;
    return EDGELLM_STATUS_OK;
}
static edgellm_status parse_not_(parser *P, jj_node **out);
static edgellm_status parse_not(parser *P, jj_node **out) {
    ENTER(P);
    edgellm_status st = parse_not_(P, out);
    P->depth--;
    return st;
}

static edgellm_status parse_not_(parser *P, jj_node **out) {
    if (is_name(cur(P), "not")) {
        P->i++;
        PNEW(n, JN_NOT);
        EL_TRY(parse_not(P, &n->a));
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    return parse_compare(P, out);
}
static edgellm_status parse_and(parser *P, jj_node **out) {
    jj_node *l = NULL;
    EL_TRY(parse_not(P, &l));
    while (is_name(cur(P), "and")) {
        P->i++;
        jj_node *r = NULL;
        EL_TRY(parse_not(P, &r));
        EL_TRY(mkbin(P, JN_AND, 0, l, r, &l));
    }
    *out = l;
    return EDGELLM_STATUS_OK;
}
static edgellm_status parse_or(parser *P, jj_node **out) {
    jj_node *l = NULL;
    EL_TRY(parse_and(P, &l));
    while (is_name(cur(P), "or")) {
        P->i++;
        jj_node *r = NULL;
        EL_TRY(parse_and(P, &r));
        EL_TRY(mkbin(P, JN_OR, 0, l, r, &l));
    }
    *out = l;
    return EDGELLM_STATUS_OK;
}
static edgellm_status parse_expr_(parser *P, jj_node **out, bool with_cond);
static edgellm_status parse_expr(parser *P, jj_node **out, bool with_cond) {
    ENTER(P);
    edgellm_status st = parse_expr_(P, out, with_cond);
    P->depth--;
    return st;
}

static edgellm_status parse_expr_(parser *P, jj_node **out, bool with_cond) {
    jj_node *e = NULL;
    EL_TRY(parse_or(P, &e));
    while (with_cond && is_name(cur(P), "if")) {
        P->i++;
        PNEW(c, JN_COND);
        c->a = e;
        EL_TRY(parse_or(P, &c->b));
        if (is_name(cur(P), "else")) {
            P->i++;
            EL_TRY(parse_or(P, &c->c));
        }
        e = c;
    }
    *out = e;
    return EDGELLM_STATUS_OK;
}

/* ---- statements -------------------------------------------------------------------------------- */
static edgellm_status parse_body(parser *P, const char *const *ends, jj_node **out);

static edgellm_status expect_bend(parser *P) {
    if (cur(P)->t != T_BEND) return perr(P, "expected end of statement block", NULL);
    P->i++;
    return EDGELLM_STATUS_OK;
}

/* at BBEGIN followed by the end name: consume `{% name %}` */
static edgellm_status consume_end(parser *P, const char *name) {
    if (cur(P)->t != T_BBEGIN || !is_name(peekn(P, 1), name)) return perr(P, "expected '%s'", name);
    P->i += 2;
    if (!strcmp(name, "endmacro") || !strcmp(name, "endblock")) /* optional name */
        if (cur(P)->t == T_NAME) P->i++;
    return expect_bend(P);
}

static edgellm_status parse_if(parser *P, jj_node **out) {
    /* after 'if' / 'elif' name */
    PNEW(n, JN_IF);
    EL_TRY(parse_tuple(P, &n->a, false, true, true));
    EL_TRY(expect_bend(P));
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    EL_TRY(parse_body(P, ends, &n->b));
    tok *k = peekn(P, 1);
    if (is_name(k, "elif")) {
        P->i += 2;
        EL_TRY(parse_if(P, &n->c));
    } else if (is_name(k, "else")) {
        P->i += 2;
        EL_TRY(expect_bend(P));
        static const char *const ends2[] = {"endif", NULL};
        EL_TRY(parse_body(P, ends2, &n->c));
        EL_TRY(consume_end(P, "endif"));
    } else {
        EL_TRY(consume_end(P, "endif"));
    }
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_for(parser *P, jj_node **out) {
    PNEW(n, JN_FOR);
    EL_TRY(parse_tuple(P, &n->a, true, false, false));
    if (!is_name(cur(P), "in")) return perr(P, "expected 'in' in for loop", NULL);
    P->i++;
    EL_TRY(parse_tuple(P, &n->b, false, false, false));
    if (is_name(cur(P), "if")) {
        P->i++;
        EL_TRY(parse_expr(P, &n->c, true));
    }
    if (is_name(cur(P), "recursive")) return punsup(P, "unsupported recursive for loop", NULL);
    EL_TRY(expect_bend(P));
    static const char *const ends[] = {"endfor", "else", NULL};
    EL_TRY(parse_body(P, ends, &n->d));
    /* body stored in d temporarily; move to b for clarity */
    jj_node *body = n->d;
    n->d = NULL;
    if (is_name(peekn(P, 1), "else")) {
        P->i += 2;
        EL_TRY(expect_bend(P));
        static const char *const ends2[] = {"endfor", NULL};
        EL_TRY(parse_body(P, ends2, &n->d));
    }
    EL_TRY(consume_end(P, "endfor"));
    /* layout: a target, b iter, c cond, items[0] body via a JN_BODY in ->items */
    jj_node **it = jj_alloc(P->a, sizeof *it);
    if (!it) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
    it[0] = body;
    n->items = it;
    n->nitems = 1;
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_set(parser *P, jj_node **out) {
    jj_node *target = NULL;
    EL_TRY(parse_tuple(P, &target, true, false, false));
    if (is_op(cur(P), "=")) {
        P->i++;
        PNEW(n, JN_SET);
        n->a = target;
        EL_TRY(parse_tuple(P, &n->b, false, true, false));
        EL_TRY(expect_bend(P));
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    if (target->kind != JN_NAME && target->kind != JN_GETATTR) return perr(P, "bad block set target", NULL);
    PNEW(n, JN_SETBLOCK);
    n->a = target;
    if (is_op(cur(P), "|")) {
        /* {% set x | filter %} */
        PNEW(ph, JN_LIT);
        ph->lit.t = JV_STR;
        ph->op = 1;
        jj_node *f = ph;
        EL_TRY(parse_filter_expr(P, &f));
        n->c = f; /* filter chain applied to the placeholder literal */
        n->d = ph;
    }
    EL_TRY(expect_bend(P));
    static const char *const ends[] = {"endset", NULL};
    EL_TRY(parse_body(P, ends, &n->b));
    EL_TRY(consume_end(P, "endset"));
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_macro_sig(parser *P, jj_node *n) {
    EL_TRY(expect_op(P, "("));
    nlist l = {0};
    while (!is_op(cur(P), ")")) {
        if (l.n) EL_TRY(expect_op(P, ","));
        if (is_op(cur(P), ")")) break;
        if (cur(P)->t != T_NAME) return perr(P, "expected parameter name", NULL);
        const char *nm = tokstr(P, cur(P));
        P->i++;
        jj_node *def = NULL;
        if (is_op(cur(P), "=")) {
            P->i++;
            EL_TRY(parse_expr(P, &def, true));
        }
        EL_TRY(nl_push(P, &l, def, nm));
    }
    P->i++;
    nl_attach(n, &l);
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_macro(parser *P, jj_node **out) {
    PNEW(n, JN_MACRO);
    if (cur(P)->t != T_NAME) return perr(P, "expected macro name", NULL);
    n->str = tokstr(P, cur(P));
    P->i++;
    EL_TRY(parse_macro_sig(P, n));
    EL_TRY(expect_bend(P));
    static const char *const ends[] = {"endmacro", NULL};
    EL_TRY(parse_body(P, ends, &n->b));
    EL_TRY(consume_end(P, "endmacro"));
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_callblock(parser *P, jj_node **out) {
    PNEW(n, JN_CALLBLOCK);
    PNEW(caller, JN_MACRO);
    caller->str = "caller";
    if (is_op(cur(P), "(")) EL_TRY(parse_macro_sig(P, caller));
    jj_node *e = NULL;
    EL_TRY(parse_expr(P, &e, true));
    if (e->kind != JN_CALL) return perr(P, "expected a call in call block", NULL);
    n->a = e;
    EL_TRY(expect_bend(P));
    static const char *const ends[] = {"endcall", NULL};
    EL_TRY(parse_body(P, ends, &caller->b));
    EL_TRY(consume_end(P, "endcall"));
    n->b = caller;
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_with(parser *P, jj_node **out) {
    PNEW(n, JN_WITH);
    PNEW(vals, JN_BODY);
    nlist targets = {0}, values = {0};
    while (cur(P)->t != T_BEND) {
        if (targets.n) EL_TRY(expect_op(P, ","));
        jj_node *t = NULL, *v = NULL;
        EL_TRY(parse_tuple(P, &t, true, false, true));
        EL_TRY(expect_op(P, "="));
        EL_TRY(parse_expr(P, &v, true));
        EL_TRY(nl_push(P, &targets, t, NULL));
        EL_TRY(nl_push(P, &values, v, NULL));
    }
    P->i++;
    nl_attach(n, &targets);
    nl_attach(vals, &values);
    n->d = vals;
    static const char *const ends[] = {"endwith", NULL};
    EL_TRY(parse_body(P, ends, &n->b));
    EL_TRY(consume_end(P, "endwith"));
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_filterblock(parser *P, jj_node **out) {
    /* {% filter name(args) | more %}body{% endfilter %} */
    PNEW(n, JN_FILTERBLOCK);
    PNEW(ph, JN_LIT);
    ph->lit.t = JV_STR;
    ph->op = 1;
    if (cur(P)->t != T_NAME) return perr(P, "expected filter name", NULL);
    PNEW(f, JN_FILTER);
    f->str = tokstr(P, cur(P));
    P->i++;
    if (!jj_known_filter(f->str)) return punsup(P, "unsupported filter '%s'", f->str);
    f->a = ph;
    if (is_op(cur(P), "(")) EL_TRY(parse_call_args(P, f));
    jj_node *chain = f;
    EL_TRY(parse_filter_expr(P, &chain));
    n->c = chain;
    n->d = ph;
    EL_TRY(expect_bend(P));
    static const char *const ends[] = {"endfilter", NULL};
    EL_TRY(parse_body(P, ends, &n->b));
    EL_TRY(consume_end(P, "endfilter"));
    *out = n;
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_stmt(parser *P, jj_node **out) {
    /* at BBEGIN */
    P->i++;
    tok *k = cur(P);
    if (k->t != T_NAME) return perr(P, "expected statement name", NULL);
    char name[48];
    snprintf(name, sizeof name, "%.*s", (int)(k->n < 40 ? k->n : 40), k->p);
    P->i++;
    if (!strcmp(name, "if")) return parse_if(P, out);
    if (!strcmp(name, "for")) return parse_for(P, out);
    if (!strcmp(name, "set")) return parse_set(P, out);
    if (!strcmp(name, "macro")) return parse_macro(P, out);
    if (!strcmp(name, "call")) return parse_callblock(P, out);
    if (!strcmp(name, "with")) return parse_with(P, out);
    if (!strcmp(name, "filter")) return parse_filterblock(P, out);
    if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        PNEW(n, name[0] == 'b' ? JN_BREAK : JN_CONTINUE);
        EL_TRY(expect_bend(P));
        *out = n;
        return EDGELLM_STATUS_OK;
    }
    if (!strcmp(name, "generation")) { /* transformers' AssistantTracker: renders its body */
        EL_TRY(expect_bend(P));
        static const char *const ends[] = {"endgeneration", NULL};
        EL_TRY(parse_body(P, ends, out));
        return consume_end(P, "endgeneration");
    }
    P->i--;
    return punsup(P, "unsupported tag '%s'", name);
}

static edgellm_status parse_body_(parser *P, const char *const *ends, jj_node **out);
static edgellm_status parse_body(parser *P, const char *const *ends, jj_node **out) {
    ENTER(P);
    edgellm_status st = parse_body_(P, ends, out);
    P->depth--;
    return st;
}

static edgellm_status parse_body_(parser *P, const char *const *ends, jj_node **out) {
    nlist l = {0};
    for (;;) {
        tok *k = cur(P);
        if (k->t == T_EOF) {
            if (ends) {
                const char *want = ends[0];
                for (int e = 0; ends[e]; e++)
                    if (!strncmp(ends[e], "end", 3)) want = ends[e];
                return perr(P, "unexpected end of template, expected '%s'", want);
            }
            break;
        }
        if (k->t == T_TEXT) {
            PNEW(n, JN_TEXT);
            n->str = k->p;
            n->len = k->n;
            P->i++;
            EL_TRY(nl_push(P, &l, n, NULL));
            continue;
        }
        if (k->t == T_VBEGIN) {
            P->i++;
            PNEW(n, JN_OUTPUT);
            EL_TRY(parse_tuple(P, &n->a, false, true, false));
            if (cur(P)->t != T_VEND) return perr(P, "expected '}}'", NULL);
            P->i++;
            EL_TRY(nl_push(P, &l, n, NULL));
            continue;
        }
        if (k->t == T_BBEGIN) {
            tok *nk = peekn(P, 1);
            if (ends)
                for (int e = 0; ends[e]; e++)
                    if (is_name(nk, ends[e])) goto done;
            if (nk->t == T_NAME && (nk->n >= 3 && (!memcmp(nk->p, "end", 3) || is_name(nk, "else") || is_name(nk, "elif")))) {
                char nm[48];
                snprintf(nm, sizeof nm, "%.*s", (int)(nk->n < 40 ? nk->n : 40), nk->p);
                P->i++;
                return perr(P, "unexpected '%s'", nm);
            }
            jj_node *s = NULL;
            EL_TRY(parse_stmt(P, &s));
            EL_TRY(nl_push(P, &l, s, NULL));
            continue;
        }
        return perr(P, "unexpected token", NULL);
    }
done:;
    PNEW(b, JN_BODY);
    nl_attach(b, &l);
    *out = b;
    return EDGELLM_STATUS_OK;
}

edgellm_status el_jinja_parse(const char *src, el_jinja **out) {
    *out = NULL;
    el_jinja *t = el_calloc(1, sizeof *t);
    if (!t) return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
    edgellm_status st = EDGELLM_STATUS_OK;
    /* normalize newlines and drop one trailing newline (keep_trailing_newline=False) */
    size_t n = strlen(src);
    char *s = jj_alloc(&t->arena, n + 1);
    if (!s) {
        el_free(t);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            s[k++] = src[i];
        }
    }
    if (k && s[k - 1] == '\n') k--;
    s[k] = 0;
    lexer L = {.a = &t->arena, .s = s, .n = k, .line = 1};
    st = lex_all(&L);
    if (st >= 0) {
        parser P = {.a = &t->arena, .t = L.toks, .n = L.ntok};
        st = parse_body(&P, NULL, &t->root);
    }
    el_free(L.toks);
    if (st < 0) {
        el_jinja_free(t);
        return st;
    }
    *out = t;
    return EDGELLM_STATUS_OK;
}

void el_jinja_free(el_jinja *t) {
    if (!t) return;
    jj_arena_free(&t->arena);
    el_free(t);
}
