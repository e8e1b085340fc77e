/*
 * jinja_eval.c - evaluator of the Jinja2 AST: Python value semantics (truthiness, str/repr, int vs float,
 * floor division...), filters, tests, string/dict methods, macros, loops, namespaces.
 */
#include "jinja.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

size_t el_jinja_ws_len(const char *p, size_t avail);
size_t el_jinja_ws_suffix(const char *p, size_t n);

/* ---- context ----------------------------------------------------------------------------------- */
typedef struct scope {
    struct scope *parent;
    jj_dict vars;
} scope;

typedef struct jj_macro {
    const jj_node *n;
    scope *closure;
    struct jj_macro *caller; /* for call blocks */
} jj_macro;

typedef struct jj_func {
    const char *name;
    jj_val self;
} jj_func;

typedef struct jj_loop {
    jj_val *items;
    size_t n, i;
    jj_val last_changed; /* loop.changed(): the arguments of the previous call */
    bool has_changed;
} jj_loop;

typedef struct ctx {
    jj_arena *a;
    el_buf *out;
    scope *root;
    scope *globals;
    int ctl; /* 1 break, 2 continue */
    int depth;
    int rdepth; /* repr / tojson nesting */
    const el_jinja_num *nums; /* number literals of the variables' JSON, sorted by item */
    size_t nnums;
    /* growable string blocks: `acc = acc + x` appends in place when acc ends where its block's used part
     * ends, so accumulating a long string costs O(n) memory instead of O(n^2) (the arena frees nothing) */
    struct strblk {
        char *base;
        size_t used, cap;
    } sb[16];
    int sb_next;
    uint64_t steps; /* loop iterations + macro calls, bounded against runaway templates */
    uintptr_t stack_base; /* address of a local of el_jinja_render: bounds the recursion's stack use */
    jj_val placeholder;   /* the rendered block text a set/filter block's filter chain applies to */
} ctx;

/* Deeply nested macros/expressions recurse; stop at this much stack (threads need a bit more). */
#define STACK_BUDGET ((uintptr_t)192 << 10)
static bool stack_exhausted(const ctx *c) {
    char probe;
    uintptr_t here = (uintptr_t)&probe;
    uintptr_t used = here < c->stack_base ? c->stack_base - here : here - c->stack_base;
    return used > STACK_BUDGET;
}

#define MAX_STEPS 20000000ull
#define MAX_OUTPUT ((size_t)256 << 20)

typedef struct args {
    jj_val *pos;
    int npos;
    const char **kwn;
    jj_val *kwv;
    int nkw;
} args;

#define OK EDGELLM_STATUS_OK
static const jj_val k_undef = {0};

static edgellm_status rerr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static edgellm_status rerr(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: %s", msg);
}
static edgellm_status oom(void) { return el_err(EDGELLM_STATUS_NO_MEMORY, "chat template: out of memory"); }

/* ---- value constructors ------------------------------------------------------------------------ */
static jj_val vnone(void) {
    jj_val v = {0};
    v.t = JV_NONE;
    return v;
}
static jj_val vbool(bool b) {
    jj_val v = {0};
    v.t = JV_BOOL;
    v.u.b = b;
    return v;
}
static jj_val vint(int64_t i) {
    jj_val v = {0};
    v.t = JV_INT;
    v.u.i = i;
    return v;
}
static jj_val vfloat(double f) {
    jj_val v = {0};
    v.t = JV_FLOAT;
    v.u.f = f;
    return v;
}
jj_val jj_str(jj_arena *a, const char *p, size_t n) {
    jj_val v = {0};
    v.t = JV_STR;
    char *s = jj_alloc(a, n + 1);
    if (!s) {
        v.t = JV_UNDEF;
        return v;
    }
    if (n) memcpy(s, p, n);
    v.u.s.p = s;
    v.u.s.n = n;
    return v;
}
static jj_val vstr_lit(const char *p) {
    jj_val v = {0};
    v.t = JV_STR;
    v.u.s.p = p;
    v.u.s.n = strlen(p);
    return v;
}
static jj_list *new_list(ctx *c, size_t cap) {
    jj_list *l = jj_alloc(c->a, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        l->v = jj_alloc(c->a, cap * sizeof *l->v);
        if (!l->v) return NULL;
        l->cap = cap;
    }
    return l;
}
static jj_val vlist(jj_list *l) {
    jj_val v = {0};
    v.t = JV_LIST;
    v.u.l = l;
    return v;
}
static edgellm_status list_push(ctx *c, jj_list *l, jj_val x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jj_val *nv = jj_alloc(c->a, cap * sizeof *nv);
        if (!nv) return oom();
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return OK;
}
static bool val_eq(jj_val a, jj_val b);
static jj_val *dict_find(jj_dict *d, jj_val k) {
    for (size_t i = 0; i < d->n; i++)
        if (val_eq(d->k[i], k)) return &d->v[i];
    return NULL;
}
static jj_val *dict_find_s(jj_dict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, k, n)) return &d->v[i];
    return NULL;
}
static edgellm_status dict_set(ctx *c, jj_dict *d, jj_val k, jj_val v) {
    jj_val *e = dict_find(d, k);
    if (e) {
        *e = v;
        return OK;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jj_val *nk = jj_alloc(c->a, cap * sizeof *nk), *nv = jj_alloc(c->a, cap * sizeof *nv);
        if (!nk || !nv) return oom();
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return OK;
}
static jj_val vfunc(ctx *c, const char *name, jj_val self) {
    jj_func *f = jj_alloc(c->a, sizeof *f);
    jj_val v = {0};
    if (!f) return v;
    f->name = name;
    f->self = self;
    v.t = JV_FUNC;
    v.u.fn = f;
    return v;
}

/* ---- UTF-8 helpers ------------------------------------------------------------------------------ */
static size_t u8_len(const char *p, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xc0) != 0x80;
    return c;
}
/* byte offset of code point index ci (clamped) */
static size_t u8_off(const char *p, size_t n, size_t ci) {
    size_t i = 0, c = 0;
    while (i < n && c < ci) {
        i++;
        while (i < n && ((unsigned char)p[i] & 0xc0) == 0x80) i++;
        c++;
    }
    return i;
}
static int32_t u8_dec(const char *p, size_t n, size_t *len) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)n, &cp);
    if (k <= 0) {
        *len = 1;
        return (unsigned char)p[0];
    }
    *len = (size_t)k;
    return cp;
}
static edgellm_status buf_cp(el_buf *b, int32_t cp) {
    utf8proc_uint8_t tmp[8];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, tmp);
    return el_buf_append(b, tmp, (size_t)k);
}

/* ---- number formatting (Python repr) ----------------------------------------------------------- */
static void fmt_float(double f, char *out, size_t cap) {
    if (isnan(f)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(out, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        snprintf(out, cap, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char buf[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    /* buf = [-]d.ddde[+-]XX */
    char digits[32];
    int nd = 0;
    const char *p = buf;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp10 = atoi(p + 1);
    int decpt = exp10 + 1;
    char *o = out;
    size_t left = cap;
#define PUT(ch)                                                                                        \
    do {                                                                                               \
        if (left > 1) {                                                                                \
            *o++ = (ch);                                                                               \
            left--;                                                                                    \
        }                                                                                              \
    } while (0)
    if (neg) PUT('-');
    if (decpt > 16 || decpt < -3) {
        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (int i = 1; i < nd; i++) PUT(digits[i]);
        }
        PUT('e');
        int e = decpt - 1;
        PUT(e < 0 ? '-' : '+');
        if (e < 0) e = -e;
        char eb[16];
        snprintf(eb, sizeof eb, "%02d", e % 1000);
        for (char *q = eb; *q; q++) PUT(*q);
    } else if (decpt <= 0) {
        PUT('0');
        PUT('.');
        for (int i = 0; i < -decpt; i++) PUT('0');
        for (int i = 0; i < nd; i++) PUT(digits[i]);
    } else {
        for (int i = 0; i < decpt; i++) PUT(i < nd ? digits[i] : '0');
        PUT('.');
        if (nd > decpt)
            for (int i = decpt; i < nd; i++) PUT(digits[i]);
        else
            PUT('0');
    }
    *o = 0;
#undef PUT
}

/* ---- str / repr -------------------------------------------------------------------------------- */
static edgellm_status to_str(ctx *c, jj_val v, el_buf *b);

static bool py_printable(int32_t cp) {
    if (cp < 0x20 || cp == 0x7f) return false;
    if (cp < 0x7f) return true;
    utf8proc_category_t cat = utf8proc_category(cp);
    switch (cat) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        return false;
    case UTF8PROC_CATEGORY_ZS:
        return cp == ' ';
    default:
        return true;
    }
}

static edgellm_status repr_str(el_buf *b, const char *p, size_t n) {
    bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    EL_TRY(el_buf_append(b, &q, 1));
    for (size_t i = 0; i < n;) {
        size_t l;
        int32_t cp = u8_dec(p + i, n - i, &l);
        if (cp == q || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            EL_TRY(el_buf_append(b, e, 2));
        } else if (cp == '\n') {
            EL_TRY(el_buf_append(b, "\\n", 2));
        } else if (cp == '\r') {
            EL_TRY(el_buf_append(b, "\\r", 2));
        } else if (cp == '\t') {
            EL_TRY(el_buf_append(b, "\\t", 2));
        } else if (!py_printable(cp)) {
            if (cp < 0x100)
                EL_TRY(el_buf_appendf(b, "\\x%02x", (unsigned)cp));
            else if (cp < 0x10000)
                EL_TRY(el_buf_appendf(b, "\\u%04x", (unsigned)cp));
            else
                EL_TRY(el_buf_appendf(b, "\\U%08x", (unsigned)cp));
        } else {
            EL_TRY(el_buf_append(b, p + i, l));
        }
        i += l;
    }
    return el_buf_append(b, &q, 1);
}

static edgellm_status repr_(ctx *c, jj_val v, el_buf *b);
static edgellm_status repr(ctx *c, jj_val v, el_buf *b) {
    if (++c->rdepth > 500) {
        c->rdepth--;
        return el_err(EDGELLM_STATUS_LIMIT, "chat template: value nested too deeply (or recursive) to print");
    }
    edgellm_status st = repr_(c, v, b);
    c->rdepth--;
    return st;
}
static edgellm_status repr_(ctx *c, jj_val v, el_buf *b) {
    switch (v.t) {
    case JV_STR: return repr_str(b, v.u.s.p, v.u.s.n);
    case JV_UNDEF: return el_buf_append_str(b, "Undefined");
    case JV_LIST: {
        if (v.u.l->kind == JL_GEN)
            return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: cannot print a generator (Python prints its address); add '| list'");
        if (v.u.l->kind != JL_LIST) {
            static const char *const pre[] = {"", "", "dict_items(", "dict_keys(", "dict_values("};
            jj_val plain = v;
            jj_list tmp = *v.u.l;
            tmp.kind = JL_LIST;
            plain.u.l = &tmp;
            EL_TRY(el_buf_append_str(b, pre[v.u.l->kind]));
            EL_TRY(repr(c, plain, b));
            return el_buf_append_str(b, ")");
        }
        if (v.u.l->is_range) {
            if (v.u.l->r_step == 1) return el_buf_appendf(b, "range(%lld, %lld)", (long long)v.u.l->r_start, (long long)v.u.l->r_stop);
            return el_buf_appendf(b, "range(%lld, %lld, %lld)", (long long)v.u.l->r_start, (long long)v.u.l->r_stop,
                                  (long long)v.u.l->r_step);
        }
        EL_TRY(el_buf_append_str(b, v.tuple ? "(" : "["));
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) EL_TRY(el_buf_append_str(b, ", "));
            EL_TRY(repr(c, v.u.l->v[i], b));
        }
        if (v.tuple && v.u.l->n == 1) EL_TRY(el_buf_append_str(b, ","));
        return el_buf_append_str(b, v.tuple ? ")" : "]");
    }
    case JV_DICT: {
        EL_TRY(el_buf_append_str(b, "{"));
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) EL_TRY(el_buf_append_str(b, ", "));
            EL_TRY(repr(c, v.u.d->k[i], b));
            EL_TRY(el_buf_append_str(b, ": "));
            EL_TRY(repr(c, v.u.d->v[i], b));
        }
        return el_buf_append_str(b, "}");
    }
    default: return to_str(c, v, b);
    }
}

static edgellm_status to_str(ctx *c, jj_val v, el_buf *b) {
    char nb[64];
    switch (v.t) {
    case JV_UNDEF: return OK;
    case JV_NONE: return el_buf_append_str(b, "None");
    case JV_BOOL: return el_buf_append_str(b, v.u.b ? "True" : "False");
    case JV_INT: return el_buf_appendf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT: fmt_float(v.u.f, nb, sizeof nb); return el_buf_append_str(b, nb);
    case JV_STR: return el_buf_append(b, v.u.s.p, v.u.s.n);
    case JV_LIST:
    case JV_DICT: return repr(c, v, b);
    case JV_NS: {
        EL_TRY(el_buf_append_str(b, "<Namespace "));
        jj_val d = v;
        d.t = JV_DICT;
        EL_TRY(repr(c, d, b));
        return el_buf_append_str(b, ">");
    }
    case JV_MACRO: return el_buf_appendf(b, "<Macro '%s'>", v.u.m->n->str ? v.u.m->n->str : "");
    case JV_FUNC: return el_buf_appendf(b, "<built-in function %s>", v.u.fn->name);
    case JV_LOOP: return el_buf_appendf(b, "<LoopContext %zu/%zu>", v.u.loop->i + 1, v.u.loop->n);
    }
    return OK;
}

/* str(v) as a new arena string */
static edgellm_status str_of(ctx *c, jj_val v, jj_val *out) {
    if (v.t == JV_STR) {
        *out = v;
        return OK;
    }
    el_buf b = {0};
    edgellm_status st = to_str(c, v, &b);
    if (st >= 0) {
        *out = jj_str(c->a, b.data ? b.data : "", b.len);
        if (out->t != JV_STR) st = oom();
    }
    el_buf_free(&b);
    return st;
}
static jj_val buf_to_val(ctx *c, el_buf *b) { return jj_str(c->a, b->data ? b->data : "", b->len); }

static const char *type_name(jj_val v) {
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST:
        if (v.u.l->kind == JL_GEN) return "generator";
        if (v.u.l->kind == JL_ITEMS) return "dict_items";
        if (v.u.l->kind == JL_KEYS) return "dict_keys";
        if (v.u.l->kind == JL_VALUES) return "dict_values";
        return v.tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_FUNC: return "builtin_function_or_method";
    case JV_LOOP: return "LoopContext";
    }
    return "object";
}

/* ---- JSON dumps (transformers' tojson) ----------------------------------------------------------- */
typedef struct jopts {
    int indent; /* -1 = none */
    bool ensure_ascii, sort_keys;
    const char *item_sep, *key_sep;
} jopts;

static edgellm_status json_str(el_buf *b, const char *p, size_t n, bool ascii) {
    EL_TRY(el_buf_append(b, "\"", 1));
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"') EL_TRY(el_buf_append(b, "\\\"", 2));
        else if (ch == '\\') EL_TRY(el_buf_append(b, "\\\\", 2));
        else if (ch == '\n') EL_TRY(el_buf_append(b, "\\n", 2));
        else if (ch == '\r') EL_TRY(el_buf_append(b, "\\r", 2));
        else if (ch == '\t') EL_TRY(el_buf_append(b, "\\t", 2));
        else if (ch == '\b') EL_TRY(el_buf_append(b, "\\b", 2));
        else if (ch == '\f') EL_TRY(el_buf_append(b, "\\f", 2));
        else if (ch < 0x20) EL_TRY(el_buf_appendf(b, "\\u%04x", ch));
        else if (ch >= 0x80 && ascii) {
            size_t l;
            int32_t cp = u8_dec(p + i, n - i, &l);
            if (cp >= 0x10000) {
                int32_t v = cp - 0x10000;
                EL_TRY(el_buf_appendf(b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff)));
            } else {
                EL_TRY(el_buf_appendf(b, "\\u%04x", cp));
            }
            i += l;
            continue;
        } else EL_TRY(el_buf_append(b, p + i, 1));
        i++;
    }
    return el_buf_append(b, "\"", 1);
}

static edgellm_status json_nl(el_buf *b, const jopts *o, int level) {
    EL_TRY(el_buf_append(b, "\n", 1));
    for (int i = 0; i < o->indent * level; i++) EL_TRY(el_buf_append(b, " ", 1));
    return OK;
}

static int cmp_vals(jj_val a, jj_val b, bool *ok);

static edgellm_status json_dump(ctx *c, jj_val v, el_buf *b, const jopts *o, int level) {
    char nb[64];
    if (level > 500) return el_err(EDGELLM_STATUS_LIMIT, "chat template: value nested too deeply for tojson");
    switch (v.t) {
    case JV_NONE: return el_buf_append_str(b, "null");
    case JV_BOOL: return el_buf_append_str(b, v.u.b ? "true" : "false");
    case JV_INT: return el_buf_appendf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT:
        if (isnan(v.u.f)) return el_buf_append_str(b, "NaN");
        if (isinf(v.u.f)) return el_buf_append_str(b, v.u.f > 0 ? "Infinity" : "-Infinity");
        fmt_float(v.u.f, nb, sizeof nb);
        return el_buf_append_str(b, nb);
    case JV_STR: return json_str(b, v.u.s.p, v.u.s.n, o->ensure_ascii);
    case JV_LIST: {
        if (v.u.l->is_range) return rerr("Object of type range is not JSON serializable");
        if (v.u.l->kind != JL_LIST) return rerr("Object of type %s is not JSON serializable", v.u.l->kind == JL_GEN ? "generator" : "dict view");
        if (!v.u.l->n) return el_buf_append_str(b, "[]");
        EL_TRY(el_buf_append_str(b, "["));
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) EL_TRY(el_buf_append_str(b, o->item_sep));
            if (o->indent >= 0) EL_TRY(json_nl(b, o, level + 1));
            EL_TRY(json_dump(c, v.u.l->v[i], b, o, level + 1));
        }
        if (o->indent >= 0) EL_TRY(json_nl(b, o, level));
        return el_buf_append_str(b, "]");
    }
    case JV_DICT: {
        jj_dict *d = v.u.d;
        if (!d->n) return el_buf_append_str(b, "{}");
        size_t *ord = jj_alloc(c->a, d->n * sizeof *ord);
        if (!ord) return oom();
        for (size_t i = 0; i < d->n; i++) ord[i] = i;
        if (o->sort_keys) /* insertion sort, stable */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = ord[i], j = i;
                bool okc = true;
                while (j > 0 && cmp_vals(d->k[ord[j - 1]], d->k[x], &okc) > 0) {
                    ord[j] = ord[j - 1];
                    j--;
                }
                ord[j] = x;
                if (!okc) return rerr("'<' not supported between keys in tojson(sort_keys=True)");
            }
        EL_TRY(el_buf_append_str(b, "{"));
        for (size_t ii = 0; ii < d->n; ii++) {
            size_t i = ord[ii];
            if (ii) EL_TRY(el_buf_append_str(b, o->item_sep));
            if (o->indent >= 0) EL_TRY(json_nl(b, o, level + 1));
            jj_val k = d->k[i];
            if (k.t == JV_STR) {
                EL_TRY(json_str(b, k.u.s.p, k.u.s.n, o->ensure_ascii));
            } else if (k.t == JV_INT || k.t == JV_FLOAT || k.t == JV_BOOL || k.t == JV_NONE) {
                el_buf t = {0};
                edgellm_status st = json_dump(c, k, &t, o, 0);
                if (st >= 0) st = json_str(b, t.data, t.len, false);
                el_buf_free(&t);
                EL_TRY(st);
            } else {
                return rerr("keys must be str, int, float, bool or None, not %s", type_name(k));
            }
            EL_TRY(el_buf_append_str(b, o->key_sep));
            EL_TRY(json_dump(c, d->v[i], b, o, level + 1));
        }
        if (o->indent >= 0) EL_TRY(json_nl(b, o, level));
        return el_buf_append_str(b, "}");
    }
    default: return rerr("Object of type %s is not JSON serializable", type_name(v));
    }
}

/* ---- truthiness, equality, ordering ------------------------------------------------------------ */
static bool truthy(jj_val v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s.n != 0;
    case JV_LIST: return v.u.l->kind == JL_GEN || v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}
static bool is_num(jj_val v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
static double num_f(jj_val v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t num_i(jj_val v) { return v.t == JV_INT ? v.u.i : (int64_t)v.u.b; }

static bool val_eq(jj_val a, jj_val b) {
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.u.l->kind == JL_GEN || b.u.l->kind == JL_GEN) return a.u.l == b.u.l;
        if (a.tuple != b.tuple || a.u.l->kind != b.u.l->kind || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!val_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jj_val *o = dict_find(b.u.d, a.u.d->k[i]);
            if (!o || !val_eq(a.u.d->v[i], *o)) return false;
        }
        return true;
    case JV_NS: return a.u.d == b.u.d;
    case JV_MACRO: return a.u.m == b.u.m;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_LOOP: return a.u.loop == b.u.loop;
    }
    return false;
}

/* -1/0/1; *ok=false when the types cannot be ordered */
static int cmp_vals(jj_val a, jj_val b, bool *ok) {
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
            double x = num_f(a), y = num_f(b);
            return x < y ? -1 : x > y ? 1 : 0;
        }
        int64_t x = num_i(a), y = num_i(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.p, b.u.s.p, n);
        if (r) return r < 0 ? -1 : 1;
        return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n ? 1 : 0;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple && a.u.l->kind == JL_LIST && b.u.l->kind == JL_LIST) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (val_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return cmp_vals(a.u.l->v[i], b.u.l->v[i], ok);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n ? 1 : 0;
    }
    *ok = false;
    return 0;
}

/* Python hash(): lists, dicts and tuples holding them are unhashable */
static bool hashable(jj_val v) {
    if (v.t == JV_DICT) return false;
    if (v.t != JV_LIST) return true;
    if (v.u.l->kind == JL_GEN) return true;
    if (!v.tuple) return false;
    for (size_t i = 0; i < v.u.l->n; i++)
        if (!hashable(v.u.l->v[i])) return false;
    return true;
}

/* ---- iteration --------------------------------------------------------------------------------- */
/* Materializes v as a list of items (dict -> keys, string -> chars, undefined -> empty). */
static edgellm_status iter_list(ctx *c, jj_val v, jj_list **out) {
    jj_list *l;
    switch (v.t) {
    case JV_UNDEF:
        l = new_list(c, 0);
        if (!l) return oom();
        *out = l;
        return OK;
    case JV_LIST:
        if (v.u.l->deferred_err) return el_err(EDGELLM_STATUS_INVALID_ARG, "%s", v.u.l->deferred_err);
        *out = v.u.l;
        return OK;
    case JV_DICT:
    case JV_NS:
        l = new_list(c, v.u.d->n);
        if (!l) return oom();
        for (size_t i = 0; i < v.u.d->n; i++) l->v[i] = v.u.d->k[i];
        l->n = v.u.d->n;
        *out = l;
        return OK;
    case JV_STR: {
        l = new_list(c, v.u.s.n);
        if (!l) return oom();
        for (size_t i = 0; i < v.u.s.n;) {
            size_t k;
            u8_dec(v.u.s.p + i, v.u.s.n - i, &k);
            if (i + k > v.u.s.n) k = v.u.s.n - i;
            l->v[l->n++] = jj_str(c->a, v.u.s.p + i, k);
            i += k;
        }
        *out = l;
        return OK;
    }
    default: return rerr("'%s' object is not iterable", type_name(v));
    }
}

static edgellm_status make_items(ctx *c, jj_val d, jj_val *out) {
    if (d.t == JV_UNDEF) {
        jj_list *l = new_list(c, 0);
        if (!l) return oom();
        *out = vlist(l);
        return OK;
    }
    if (d.t != JV_DICT && d.t != JV_NS) return rerr("can only get item pairs from a mapping");
    jj_list *l = new_list(c, d.u.d->n);
    if (!l) return oom();
    for (size_t i = 0; i < d.u.d->n; i++) {
        jj_list *p = new_list(c, 2);
        if (!p) return oom();
        p->v[0] = d.u.d->k[i];
        p->v[1] = d.u.d->v[i];
        p->n = 2;
        jj_val t = vlist(p);
        t.tuple = 1;
        l->v[l->n++] = t;
    }
    *out = vlist(l);
    return OK;
}

/* ---- attribute / item access -------------------------------------------------------------------- */
static const char *const k_str_methods[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith",
                                            "replace", "lower", "upper", "title", "capitalize", "format", "find",
                                            "rfind", "count", "join", "splitlines", "isdigit", "isalpha", "isalnum",
                                            "isspace", "islower", "isupper", "index", "zfill", "center", "ljust",
                                            "rjust", "partition", "rpartition", "removeprefix", "removesuffix",
                                            "casefold", "swapcase", "isnumeric", "isdecimal", "istitle", NULL};
static const char *const k_dict_methods[] = {"items", "keys", "values", "get", "copy", "pop", "update", "setdefault",
                                             "clear", "popitem", NULL};
static const char *const k_list_methods[] = {"index", "count", "copy", "append", "extend", "pop", "insert",
                                             "remove", "sort", "reverse", "clear", NULL};

static bool in_names(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return true;
    return false;
}

static edgellm_status loop_attr(ctx *c, jj_loop *L, const char *name, jj_val *out) {
    size_t i = L->i, n = L->n;
    if (!strcmp(name, "index")) *out = vint((int64_t)i + 1);
    else if (!strcmp(name, "index0")) *out = vint((int64_t)i);
    else if (!strcmp(name, "revindex")) *out = vint((int64_t)(n - i));
    else if (!strcmp(name, "revindex0")) *out = vint((int64_t)(n - i - 1));
    else if (!strcmp(name, "first")) *out = vbool(i == 0);
    else if (!strcmp(name, "last")) *out = vbool(i + 1 == n);
    else if (!strcmp(name, "length")) *out = vint((int64_t)n);
    else if (!strcmp(name, "depth")) *out = vint(1);
    else if (!strcmp(name, "depth0")) *out = vint(0);
    else if (!strcmp(name, "previtem")) *out = i > 0 ? L->items[i - 1] : k_undef;
    else if (!strcmp(name, "nextitem")) *out = i + 1 < n ? L->items[i + 1] : k_undef;
    else if (!strcmp(name, "cycle") || !strcmp(name, "changed")) {
        jj_val self = {0};
        self.t = JV_LOOP;
        self.u.loop = L;
        *out = vfunc(c, name[0] == 'c' && name[1] == 'y' ? "loop.cycle" : "loop.changed", self);
    } else *out = k_undef;
    return OK;
}

static edgellm_status get_attr(ctx *c, jj_val obj, const char *name, jj_val *out) {
    switch (obj.t) {
    case JV_UNDEF: return rerr("'Undefined' has no attribute '%s'", name);
    case JV_DICT:
        if (in_names(k_dict_methods, name)) {
            *out = vfunc(c, name, obj);
            return OK;
        } else {
            jj_val *v = dict_find_s(obj.u.d, name, strlen(name));
            *out = v ? *v : k_undef;
            return OK;
        }
    case JV_NS: {
        jj_val *v = dict_find_s(obj.u.d, name, strlen(name));
        *out = v ? *v : k_undef;
        return OK;
    }
    case JV_STR:
        *out = in_names(k_str_methods, name) ? vfunc(c, name, obj) : k_undef;
        return OK;
    case JV_LIST:
        *out = in_names(k_list_methods, name) ? vfunc(c, name, obj) : k_undef;
        return OK;
    case JV_LOOP: return loop_attr(c, obj.u.loop, name, out);
    default: *out = k_undef; return OK;
    }
}

static edgellm_status slice_val(ctx *c, jj_val obj, jj_val s0, jj_val s1, jj_val s2, jj_val *out);

static edgellm_status get_item(ctx *c, jj_val obj, jj_val key, jj_val *out) {
    switch (obj.t) {
    case JV_UNDEF: return rerr("'Undefined' has no item");
    case JV_DICT:
    case JV_NS: {
        jj_val *v = dict_find(obj.u.d, key);
        if (v) {
            *out = *v;
            return OK;
        }
        if (key.t == JV_STR && obj.t == JV_DICT) {
            char nm[64];
            if (key.u.s.n < sizeof nm) {
                memcpy(nm, key.u.s.p, key.u.s.n);
                nm[key.u.s.n] = 0;
                if (in_names(k_dict_methods, nm)) {
                    *out = vfunc(c, jj_str(c->a, nm, key.u.s.n).u.s.p, obj);
                    return OK;
                }
            }
        }
        *out = k_undef;
        return OK;
    }
    case JV_LIST:
    case JV_STR: {
        if (key.t == JV_STR) {
            char nm[64];
            if (key.u.s.n < sizeof nm) {
                memcpy(nm, key.u.s.p, key.u.s.n);
                nm[key.u.s.n] = 0;
                return get_attr(c, obj, jj_str(c->a, nm, key.u.s.n).u.s.p, out);
            }
            *out = k_undef;
            return OK;
        }
        if (key.t != JV_INT && key.t != JV_BOOL) {
            *out = k_undef;
            return OK;
        }
        int64_t i = num_i(key);
        if (obj.t == JV_LIST && obj.u.l->kind != JL_LIST) return rerr("'%s' object is not subscriptable", type_name(obj));
        if (obj.t == JV_LIST) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            *out = (i >= 0 && i < n) ? obj.u.l->v[i] : k_undef;
        } else {
            int64_t n = (int64_t)u8_len(obj.u.s.p, obj.u.s.n);
            if (i < 0) i += n;
            if (i < 0 || i >= n) {
                *out = k_undef;
                return OK;
            }
            size_t o = u8_off(obj.u.s.p, obj.u.s.n, (size_t)i), e = u8_off(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
            *out = jj_str(c->a, obj.u.s.p + o, e - o);
        }
        return OK;
    }
    case JV_LOOP:
        if (key.t == JV_STR) {
            char nm[32];
            snprintf(nm, sizeof nm, "%.*s", (int)(key.u.s.n < 31 ? key.u.s.n : 31), key.u.s.p);
            return loop_attr(c, obj.u.loop, jj_str(c->a, nm, strlen(nm)).u.s.p, out);
        }
        *out = k_undef;
        return OK;
    default: *out = k_undef; return OK;
    }
}

static edgellm_status slice_val(ctx *c, jj_val obj, jj_val s0, jj_val s1, jj_val s2, jj_val *out) {
    int64_t n;
    if (obj.t == JV_LIST && obj.u.l->kind != JL_LIST) return rerr("'%s' object is not subscriptable", type_name(obj));
    if (obj.t == JV_LIST) n = (int64_t)obj.u.l->n;
    else if (obj.t == JV_STR) n = (int64_t)u8_len(obj.u.s.p, obj.u.s.n);
    else if (obj.t == JV_UNDEF) return rerr("'Undefined' is not subscriptable");
    else return rerr("'%s' object is not subscriptable", type_name(obj));
    int64_t step = 1;
    if (s2.t != JV_UNDEF && s2.t != JV_NONE) {
        if (s2.t != JV_INT) return rerr("slice indices must be integers");
        step = s2.u.i;
        if (!step) return rerr("slice step cannot be zero");
    }
    int64_t start, stop;
    if (s0.t == JV_UNDEF || s0.t == JV_NONE) start = step < 0 ? n - 1 : 0;
    else {
        if (!is_num(s0) || s0.t == JV_FLOAT) return rerr("slice indices must be integers");
        start = num_i(s0);
        if (start < 0) start += n;
        if (start < 0) start = step < 0 ? -1 : 0;
        if (start >= n) start = step < 0 ? n - 1 : n;
    }
    if (s1.t == JV_UNDEF || s1.t == JV_NONE) stop = step < 0 ? -1 : n;
    else {
        if (!is_num(s1) || s1.t == JV_FLOAT) return rerr("slice indices must be integers");
        stop = num_i(s1);
        if (stop < 0) stop += n;
        if (stop < 0) stop = step < 0 ? -1 : 0;
        if (stop >= n) stop = step < 0 ? n - 1 : n;
    }
    if (obj.t == JV_LIST) {
        jj_list *l = new_list(c, 0);
        if (!l) return oom();
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) EL_TRY(list_push(c, l, obj.u.l->v[i]));
        *out = vlist(l);
        out->tuple = obj.tuple;
        return OK;
    }
    el_buf b = {0};
    edgellm_status st = OK;
    if (step == 1) {
        size_t o = u8_off(obj.u.s.p, obj.u.s.n, (size_t)start);
        size_t e = stop > start ? u8_off(obj.u.s.p, obj.u.s.n, (size_t)stop) : o;
        *out = jj_str(c->a, obj.u.s.p + o, e - o);
        return OK;
    }
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        size_t o = u8_off(obj.u.s.p, obj.u.s.n, (size_t)i), e = u8_off(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
        st = el_buf_append(&b, obj.u.s.p + o, e - o);
        if (st < 0) break;
    }
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&b);
    return st;
}

/* ---- scopes ------------------------------------------------------------------------------------- */
static jj_val *scope_lookup(scope *s, const char *name) {
    size_t n = strlen(name);
    for (; s; s = s->parent) {
        jj_val *v = dict_find_s(&s->vars, name, n);
        if (v) return v;
    }
    return NULL;
}
static edgellm_status scope_set(ctx *c, scope *s, const char *name, jj_val v) {
    jj_val k = vstr_lit(name);
    return dict_set(c, &s->vars, k, v);
}
static scope *new_scope(ctx *c, scope *parent) {
    scope *s = jj_alloc(c->a, sizeof *s);
    if (s) s->parent = parent;
    return s;
}

/* ---- args helpers ------------------------------------------------------------------------------ */
static bool arg(const args *a, int idx, const char *name, jj_val *out) {
    if (idx >= 0 && idx < a->npos) {
        *out = a->pos[idx];
        return true;
    }
    if (name)
        for (int i = 0; i < a->nkw; i++)
            if (!strcmp(a->kwn[i], name)) {
                *out = a->kwv[i];
                return true;
            }
    *out = k_undef;
    return false;
}

static edgellm_status eval(ctx *c, scope *s, const jj_node *n, jj_val *out);
static edgellm_status exec_body(ctx *c, scope *s, const jj_node *body);
static edgellm_status call_value(ctx *c, jj_val f, args *a, jj_val *out);
static edgellm_status apply_filter(ctx *c, const char *name, jj_val subj, args *a, jj_val *out);
static edgellm_status apply_test(ctx *c, const char *name, jj_val subj, args *a, bool *out);

static edgellm_status eval_args(ctx *c, scope *s, const jj_node *n, int skip, args *a) {
    int cnt = n->nitems;
    a->pos = jj_alloc(c->a, (size_t)(cnt + 1) * sizeof *a->pos);
    a->kwv = jj_alloc(c->a, (size_t)(cnt + 1) * sizeof *a->kwv);
    a->kwn = jj_alloc(c->a, (size_t)(cnt + 1) * sizeof *a->kwn);
    if (!a->pos || !a->kwv || !a->kwn) return oom();
    a->npos = a->nkw = 0;
    (void)skip;
    for (int i = 0; i < cnt; i++) {
        jj_val v;
        EL_TRY(eval(c, s, n->items[i], &v));
        if (n->names && n->names[i]) {
            a->kwn[a->nkw] = n->names[i];
            a->kwv[a->nkw++] = v;
        } else {
            a->pos[a->npos++] = v;
        }
    }
    return OK;
}

/* ---- string helpers ------------------------------------------------------------------------------ */
static bool cp_is_space(int32_t cp) {
    char tmp[8];
    size_t k = (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)tmp);
    return el_jinja_ws_len(tmp, k) == k;
}

/* strip chars (NULL = whitespace) from p[0..n); mode 1 left, 2 right, 3 both */
static void strip_range(const char *p, size_t n, const char *chars, size_t nchars, int mode, size_t *o, size_t *e) {
    size_t b = 0, en = n;
    if (mode & 1) {
        while (b < en) {
            size_t l;
            int32_t cp = u8_dec(p + b, en - b, &l);
            bool hit;
            if (!chars) hit = cp_is_space(cp);
            else {
                hit = false;
                for (size_t j = 0; j < nchars;) {
                    size_t l2;
                    int32_t c2 = u8_dec(chars + j, nchars - j, &l2);
                    if (c2 == cp) hit = true;
                    j += l2;
                }
            }
            if (!hit) break;
            b += l;
        }
    }
    if (mode & 2) {
        while (en > b) {
            size_t st = en - 1;
            while (st > b && ((unsigned char)p[st] & 0xc0) == 0x80) st--;
            size_t l;
            int32_t cp = u8_dec(p + st, en - st, &l);
            bool hit;
            if (!chars) hit = cp_is_space(cp);
            else {
                hit = false;
                for (size_t j = 0; j < nchars;) {
                    size_t l2;
                    int32_t c2 = u8_dec(chars + j, nchars - j, &l2);
                    if (c2 == cp) hit = true;
                    j += l2;
                }
            }
            if (!hit) break;
            en = st;
        }
    }
    *o = b;
    *e = en;
}

static const char *memfind(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}
static const char *memrfind(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

/* ---- Python's full case mapping (SpecialCasing) on top of utf8proc's simple mapping ---------------- */
static bool cp_cased(int32_t cp) {
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
static bool cp_case_ignorable(int32_t cp) {
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK || cp == '\'' || cp == '.' || cp == ':' ||
           cp == 0xb7 || cp == 0x2019;
}
/* Python's final-sigma rule for U+03A3 at byte offset i of p[0..n) */
static bool final_sigma(const char *p, size_t n, size_t i, size_t len) {
    bool before = false, after = false;
    for (size_t k = i; k > 0;) {
        size_t st = k - 1;
        while (st > 0 && ((unsigned char)p[st] & 0xc0) == 0x80) st--;
        size_t l;
        int32_t cp = u8_dec(p + st, k - st, &l);
        k = st;
        if (cp_case_ignorable(cp)) continue;
        before = cp_cased(cp);
        break;
    }
    for (size_t k = i + len; k < n;) {
        size_t l;
        int32_t cp = u8_dec(p + k, n - k, &l);
        k += l;
        if (cp_case_ignorable(cp)) continue;
        after = cp_cased(cp);
        break;
    }
    return before && !after;
}
/* Characters whose full upper/title mapping is several code points and that are not handled below. */
static bool special_upper_unhandled(int32_t cp) {
    return cp == 0x01f0 || cp == 0x0390 || cp == 0x03b0 || cp == 0x0587 || (cp >= 0x1e96 && cp <= 0x1e9a) ||
           cp == 0x1f50 || cp == 0x1f52 || cp == 0x1f54 || cp == 0x1f56 || (cp >= 0x1f80 && cp <= 0x1faf) ||
           (cp >= 0x1fb2 && cp <= 0x1fb4) || cp == 0x1fb6 || cp == 0x1fb7 || cp == 0x1fbc ||
           (cp >= 0x1fc2 && cp <= 0x1fc4) || cp == 0x1fc6 || cp == 0x1fc7 || cp == 0x1fcc || cp == 0x1fd2 ||
           cp == 0x1fd3 || cp == 0x1fd6 || cp == 0x1fd7 || (cp >= 0x1fe2 && cp <= 0x1fe4) || cp == 0x1fe6 ||
           cp == 0x1fe7 || (cp >= 0x1ff2 && cp <= 0x1ff4) || cp == 0x1ff6 || cp == 0x1ff7 || cp == 0x1ffc ||
           (cp >= 0xfb13 && cp <= 0xfb17);
}
/* appends the upper (title=false) or title case of cp */
static edgellm_status put_upper(el_buf *b, int32_t cp, bool title) {
    static const struct {
        int32_t cp;
        const char *up, *ti;
    } sp[] = {{0xdf, "SS", "Ss"},         {0xfb00, "FF", "Ff"},   {0xfb01, "FI", "Fi"}, {0xfb02, "FL", "Fl"},
              {0xfb03, "FFI", "Ffi"},     {0xfb04, "FFL", "Ffl"}, {0xfb05, "ST", "St"}, {0xfb06, "ST", "St"},
              {0x149, "\xca\xbcN", "\xca\xbcN"}};
    for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++)
        if (sp[k].cp == cp) return el_buf_append_str(b, title ? sp[k].ti : sp[k].up);
    if (special_upper_unhandled(cp))
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: full case mapping of U+%04X is not supported", (unsigned)cp);
    return buf_cp(b, title ? utf8proc_totitle(cp) : utf8proc_toupper(cp));
}
/* appends the lower case of the char cp at byte i (length len) of p[0..n) */
static edgellm_status put_lower(el_buf *b, const char *p, size_t n, size_t i, size_t len, int32_t cp) {
    if (cp == 0x130) return el_buf_append_str(b, "i\xcc\x87");
    if (cp == 0x3a3) return buf_cp(b, final_sigma(p, n, i, len) ? 0x3c2 : 0x3c3);
    return buf_cp(b, utf8proc_tolower(cp));
}

/* case mapping as Python's str methods; mode 0 lower, 1 upper, 2 title, 3 capitalize, 4 swapcase */
static edgellm_status case_map(ctx *c, jj_val s, int mode, jj_val *out) {
    el_buf b = {0};
    edgellm_status st = OK;
    bool prev_cased = false;
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    for (size_t i = 0; i < n && st >= 0;) {
        size_t l;
        int32_t cp = u8_dec(p + i, n - i, &l);
        switch (mode) {
        case 0: st = put_lower(&b, p, n, i, l, cp); break;
        case 1: st = put_upper(&b, cp, false); break;
        case 2:
            st = prev_cased ? put_lower(&b, p, n, i, l, cp) : put_upper(&b, cp, true);
            prev_cased = cp_cased(cp);
            break;
        case 3: st = i == 0 ? put_upper(&b, cp, true) : put_lower(&b, p, n, i, l, cp); break;
        default: {
            utf8proc_category_t cat = utf8proc_category(cp);
            if (cat == UTF8PROC_CATEGORY_LU) st = put_lower(&b, p, n, i, l, cp);
            else if (cat == UTF8PROC_CATEGORY_LL) st = put_upper(&b, cp, false);
            else st = buf_cp(&b, cp);
        }
        }
        i += l;
    }
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&b);
    return st;
}

/* Python str.split(sep=None, maxsplit=-1) and rsplit */
static edgellm_status py_split(ctx *c, jj_val s, jj_val sepv, int64_t maxsplit, bool right, jj_val *out) {
    jj_list *l = new_list(c, 0);
    if (!l) return oom();
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    if (sepv.t == JV_NONE || sepv.t == JV_UNDEF) {
        /* whitespace split */
        jj_list *tmp = new_list(c, 0);
        if (!tmp) return oom();
        if (!right) {
            size_t i = 0;
            int64_t splits = 0;
            for (;;) {
                while (i < n && el_jinja_ws_len(p + i, n - i)) i += el_jinja_ws_len(p + i, n - i);
                if (i >= n) break;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    size_t o, e;
                    strip_range(p + i, n - i, NULL, 0, 2, &o, &e);
                    EL_TRY(list_push(c, l, jj_str(c->a, p + i, e)));
                    break;
                }
                size_t st = i;
                while (i < n && !el_jinja_ws_len(p + i, n - i)) i++;
                EL_TRY(list_push(c, l, jj_str(c->a, p + st, i - st)));
                splits++;
            }
        } else {
            size_t e = n;
            int64_t splits = 0;
            for (;;) {
                size_t w;
                while (e > 0 && (w = el_jinja_ws_suffix(p, e)) > 0) e -= w;
                if (e == 0) break;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    size_t o, ee;
                    strip_range(p, e, NULL, 0, 1, &o, &ee);
                    EL_TRY(list_push(c, tmp, jj_str(c->a, p + o, e - o)));
                    break;
                }
                size_t st = e;
                while (st > 0 && el_jinja_ws_suffix(p, st) == 0) st--;
                EL_TRY(list_push(c, tmp, jj_str(c->a, p + st, e - st)));
                e = st;
                splits++;
            }
            for (size_t i = tmp->n; i-- > 0;) EL_TRY(list_push(c, l, tmp->v[i]));
        }
        *out = vlist(l);
        return OK;
    }
    if (sepv.t != JV_STR) return rerr("must be str or None, not %s", type_name(sepv));
    if (!sepv.u.s.n) return rerr("empty separator");
    const char *sp = sepv.u.s.p;
    size_t sn = sepv.u.s.n;
    if (!right) {
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            const char *f = (maxsplit < 0 || splits < maxsplit) ? memfind(p + i, n - i, sp, sn) : NULL;
            if (!f) {
                EL_TRY(list_push(c, l, jj_str(c->a, p + i, n - i)));
                break;
            }
            EL_TRY(list_push(c, l, jj_str(c->a, p + i, (size_t)(f - (p + i)))));
            i = (size_t)(f - p) + sn;
            splits++;
        }
    } else {
        jj_list *tmp = new_list(c, 0);
        if (!tmp) return oom();
        size_t e = n;
        int64_t splits = 0;
        for (;;) {
            const char *f = (maxsplit < 0 || splits < maxsplit) ? memrfind(p, e, sp, sn) : NULL;
            if (!f) {
                EL_TRY(list_push(c, tmp, jj_str(c->a, p, e)));
                break;
            }
            size_t fo = (size_t)(f - p);
            EL_TRY(list_push(c, tmp, jj_str(c->a, f + sn, e - fo - sn)));
            e = fo;
            splits++;
        }
        for (size_t i = tmp->n; i-- > 0;) EL_TRY(list_push(c, l, tmp->v[i]));
    }
    *out = vlist(l);
    return OK;
}

static edgellm_status py_replace(ctx *c, jj_val s, jj_val a, jj_val b, int64_t count, jj_val *out) {
    if (a.t != JV_STR || b.t != JV_STR) return rerr("replace() arguments must be str");
    el_buf o = {0};
    edgellm_status st = OK;
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    int64_t done = 0;
    if (a.u.s.n == 0) {
        /* insert b between every char */
        size_t idx = 0;
        while (st >= 0) {
            if (count < 0 || done < count) {
                st = el_buf_append(&o, b.u.s.p, b.u.s.n);
                done++;
            }
            if (i >= n || st < 0) break;
            size_t l;
            u8_dec(p + i, n - i, &l);
            st = el_buf_append(&o, p + i, l);
            i += l;
            idx++;
        }
    } else {
        while (st >= 0 && i <= n) {
            const char *f = (count < 0 || done < count) ? memfind(p + i, n - i, a.u.s.p, a.u.s.n) : NULL;
            if (!f) {
                st = el_buf_append(&o, p + i, n - i);
                break;
            }
            st = el_buf_append(&o, p + i, (size_t)(f - (p + i)));
            if (st >= 0) st = el_buf_append(&o, b.u.s.p, b.u.s.n);
            i = (size_t)(f - p) + a.u.s.n;
            done++;
        }
    }
    if (st >= 0) *out = buf_to_val(c, &o);
    el_buf_free(&o);
    return st;
}

/* Python-style "%" formatting of a string with a value or tuple. */
static edgellm_status percent_format(ctx *c, jj_val fmt, jj_val argsv, jj_val *out) {
    jj_val *av;
    size_t an, ai = 0;
    jj_val single = argsv;
    if (argsv.t == JV_LIST && argsv.tuple) {
        av = argsv.u.l->v;
        an = argsv.u.l->n;
    } else {
        av = &single;
        an = 1;
    }
    el_buf b = {0};
    edgellm_status st = OK;
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n;
    for (size_t i = 0; i < n && st >= 0; i++) {
        if (p[i] != '%') {
            st = el_buf_append(&b, p + i, 1);
            continue;
        }
        i++;
        if (i >= n) {
            st = rerr("incomplete format");
            break;
        }
        char spec[32];
        size_t sl = 0;
        spec[sl++] = '%';
        while (i < n && strchr("-+ 0#.0123456789", p[i]) && sl < 20) spec[sl++] = p[i++];
        if (i >= n) {
            st = rerr("incomplete format");
            break;
        }
        char conv = p[i];
        if (conv == '%') {
            st = el_buf_append(&b, "%", 1);
            continue;
        }
        if (ai >= an) {
            st = rerr("not enough arguments for format string");
            break;
        }
        jj_val v = av[ai++];
        if (conv == 's' || conv == 'r') {
            el_buf t = {0};
            st = conv == 's' ? to_str(c, v, &t) : repr(c, v, &t);
            if (st >= 0) {
                spec[sl++] = '.';
                spec[sl++] = '*';
                spec[sl++] = 's';
                spec[sl] = 0;
                if (sl == 4) st = el_buf_append(&b, t.data ? t.data : "", t.len);
                else {
                    sl -= 3;
                    spec[sl++] = 's';
                    spec[sl] = 0;
                    char *z = el_strndup(t.data ? t.data : "", t.len);
                    st = z ? el_buf_appendf(&b, spec, z) : oom();
                    el_free(z);
                }
            }
            el_buf_free(&t);
        } else if (conv == 'd' || conv == 'i') {
            if (!is_num(v)) {
                st = rerr("%%d format: a real number is required, not %s", type_name(v));
                break;
            }
            spec[sl++] = 'l';
            spec[sl++] = 'l';
            spec[sl++] = 'd';
            spec[sl] = 0;
            st = el_buf_appendf(&b, spec, (long long)(v.t == JV_FLOAT ? (int64_t)v.u.f : num_i(v)));
        } else if (strchr("feEgGxXo", conv)) {
            if (!is_num(v)) {
                st = rerr("format requires a number, not %s", type_name(v));
                break;
            }
            spec[sl++] = conv;
            spec[sl] = 0;
            if (strchr("xXo", conv)) {
                spec[sl - 1] = 'l';
                spec[sl++] = 'l';
                spec[sl++] = conv;
                spec[sl] = 0;
                st = el_buf_appendf(&b, spec, (long long)num_i(v));
            } else {
                st = el_buf_appendf(&b, spec, num_f(v));
            }
        } else {
            st = el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported format character '%c'", conv);
        }
    }
    if (st >= 0 && ai < an && argsv.t != JV_DICT && argsv.t != JV_UNDEF && !(argsv.t == JV_LIST && !argsv.tuple))
        st = rerr("not all arguments converted during string formatting");
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&b);
    return st;
}

/* str.format with {} / {0} / {name} fields (no format specs beyond none). */
static edgellm_status str_format(ctx *c, jj_val fmt, args *a, jj_val *out) {
    el_buf b = {0};
    edgellm_status st = OK;
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n;
    int autoi = 0;
    for (size_t i = 0; i < n && st >= 0; i++) {
        if (p[i] == '{' && i + 1 < n && p[i + 1] == '{') {
            st = el_buf_append(&b, "{", 1);
            i++;
            continue;
        }
        if (p[i] == '}' && i + 1 < n && p[i + 1] == '}') {
            st = el_buf_append(&b, "}", 1);
            i++;
            continue;
        }
        if (p[i] != '{') {
            st = el_buf_append(&b, p + i, 1);
            continue;
        }
        size_t j = i + 1;
        while (j < n && p[j] != '}') j++;
        if (j >= n) {
            st = rerr("Single '{' encountered in format string");
            break;
        }
        char field[64];
        size_t fl = j - i - 1;
        if (fl >= sizeof field || memchr(p + i + 1, ':', fl) || memchr(p + i + 1, '!', fl) ||
            memchr(p + i + 1, '.', fl) || memchr(p + i + 1, '[', fl)) {
            st = el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported str.format field");
            break;
        }
        memcpy(field, p + i + 1, fl);
        field[fl] = 0;
        jj_val v;
        if (!fl) {
            if (!arg(a, autoi++, NULL, &v)) {
                st = rerr("Replacement index out of range");
                break;
            }
        } else if (field[0] >= '0' && field[0] <= '9') {
            if (!arg(a, atoi(field), NULL, &v)) {
                st = rerr("Replacement index out of range");
                break;
            }
        } else if (!arg(a, -1, field, &v)) {
            st = rerr("KeyError: '%s'", field);
            break;
        }
        st = to_str(c, v, &b);
        i = j;
    }
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&b);
    return st;
}

static edgellm_status join_vals(ctx *c, jj_list *l, jj_val sep, jj_val *out) {
    el_buf b = {0};
    edgellm_status st = OK;
    for (size_t i = 0; i < l->n && st >= 0; i++) {
        if (i) st = to_str(c, sep, &b);
        if (st >= 0) st = to_str(c, l->v[i], &b);
    }
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&b);
    return st;
}

static bool str_starts(jj_val s, jj_val pre) {
    return pre.t == JV_STR && pre.u.s.n <= s.u.s.n && !memcmp(s.u.s.p, pre.u.s.p, pre.u.s.n);
}
static bool str_ends(jj_val s, jj_val suf) {
    return suf.t == JV_STR && suf.u.s.n <= s.u.s.n && !memcmp(s.u.s.p + s.u.s.n - suf.u.s.n, suf.u.s.p, suf.u.s.n);
}

static edgellm_status py_splitlines(ctx *c, jj_val s, jj_list **out);
static edgellm_status str_method(ctx *c, const char *m, jj_val s, args *a, jj_val *out) {
    jj_val a0, a1, a2;
    bool h0 = arg(a, 0, NULL, &a0), h1 = arg(a, 1, NULL, &a1);
    (void)h1;
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        int mode = m[0] == 'l' ? 1 : m[0] == 'r' ? 2 : 3;
        if (!h0) arg(a, -1, "chars", &a0);
        const char *chars = NULL;
        size_t nc = 0;
        if (a0.t == JV_STR) {
            chars = a0.u.s.p;
            nc = a0.u.s.n;
        } else if (a0.t != JV_NONE && a0.t != JV_UNDEF) {
            return rerr("strip arg must be None or str");
        }
        size_t o, e;
        strip_range(s.u.s.p, s.u.s.n, chars, nc, mode, &o, &e);
        *out = jj_str(c->a, s.u.s.p + o, e - o);
        return OK;
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        if (!h0) arg(a, -1, "sep", &a0);
        if (!arg(a, 1, "maxsplit", &a1)) a1 = vint(-1);
        if (!is_num(a1)) return rerr("maxsplit must be an integer");
        return py_split(c, s, a0, num_i(a1), m[0] == 'r', out);
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        bool (*fn)(jj_val, jj_val) = m[0] == 's' ? str_starts : str_ends;
        if (a0.t == JV_LIST) {
            bool r = false;
            for (size_t i = 0; i < a0.u.l->n; i++) r = r || fn(s, a0.u.l->v[i]);
            *out = vbool(r);
            return OK;
        }
        if (a0.t != JV_STR) return rerr("%s first arg must be str or a tuple of str, not %s", m, type_name(a0));
        *out = vbool(fn(s, a0));
        return OK;
    }
    if (!strcmp(m, "replace")) {
        if (!arg(a, 2, "count", &a2)) a2 = vint(-1);
        return py_replace(c, s, a0, a1, num_i(a2), out);
    }
    if (!strcmp(m, "lower")) return case_map(c, s, 0, out);
    if (!strcmp(m, "upper")) return case_map(c, s, 1, out);
    if (!strcmp(m, "title")) return case_map(c, s, 2, out);
    if (!strcmp(m, "capitalize")) return case_map(c, s, 3, out);
    if (!strcmp(m, "swapcase")) return case_map(c, s, 4, out);
    if (!strcmp(m, "casefold")) return case_map(c, s, 0, out);
    if (!strcmp(m, "format")) return str_format(c, s, a, out);
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "count")) {
        if (a0.t != JV_STR) return rerr("must be str, not %s", type_name(a0));
        if (!strcmp(m, "count")) {
            int64_t cnt = 0;
            if (!a0.u.s.n) cnt = (int64_t)u8_len(s.u.s.p, s.u.s.n) + 1;
            else
                for (size_t i = 0; i + a0.u.s.n <= s.u.s.n;) {
                    const char *f = memfind(s.u.s.p + i, s.u.s.n - i, a0.u.s.p, a0.u.s.n);
                    if (!f) break;
                    cnt++;
                    i = (size_t)(f - s.u.s.p) + a0.u.s.n;
                }
            *out = vint(cnt);
            return OK;
        }
        const char *f = m[0] == 'r' ? memrfind(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n)
                                    : memfind(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n);
        if (!f && m[0] == 'i') return rerr("substring not found");
        *out = vint(f ? (int64_t)u8_len(s.u.s.p, (size_t)(f - s.u.s.p)) : -1);
        return OK;
    }
    if (!strcmp(m, "join")) {
        jj_list *l;
        EL_TRY(iter_list(c, a0, &l));
        for (size_t i = 0; i < l->n; i++)
            if (l->v[i].t != JV_STR) return rerr("sequence item %zu: expected str instance, %s found", i, type_name(l->v[i]));
        return join_vals(c, l, s, out);
    }
    if (!strcmp(m, "splitlines")) {
        jj_list *l;
        EL_TRY(py_splitlines(c, s, &l));
        *out = vlist(l);
        return OK;
    }
    if (!strncmp(m, "is", 2)) {
        bool r = s.u.s.n > 0, any_cased = false;
        for (size_t i = 0; i < s.u.s.n;) {
            size_t l;
            int32_t cp = u8_dec(s.u.s.p + i, s.u.s.n - i, &l);
            utf8proc_category_t cat = utf8proc_category(cp);
            bool letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
            bool digit = cat == UTF8PROC_CATEGORY_ND;
            bool num = cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
            if (!strcmp(m, "isdigit") || !strcmp(m, "isdecimal")) r = r && digit;
            else if (!strcmp(m, "isnumeric")) r = r && num;
            else if (!strcmp(m, "isalpha")) r = r && letter;
            else if (!strcmp(m, "isalnum")) r = r && (letter || num);
            else if (!strcmp(m, "isspace")) r = r && cp_is_space(cp);
            else if (!strcmp(m, "islower")) {
                if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) r = false;
                if (cat == UTF8PROC_CATEGORY_LL) any_cased = true;
            } else if (!strcmp(m, "isupper")) {
                if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) r = false;
                if (cat == UTF8PROC_CATEGORY_LU) any_cased = true;
            } else return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported str.%s", m);
            i += l;
        }
        if (!strcmp(m, "islower") || !strcmp(m, "isupper")) r = r && any_cased;
        *out = vbool(r);
        return OK;
    }
    if (!strcmp(m, "removeprefix")) {
        *out = str_starts(s, a0) ? jj_str(c->a, s.u.s.p + a0.u.s.n, s.u.s.n - a0.u.s.n) : s;
        return OK;
    }
    if (!strcmp(m, "removesuffix")) {
        *out = (str_ends(s, a0) && a0.u.s.n) ? jj_str(c->a, s.u.s.p, s.u.s.n - a0.u.s.n) : s;
        return OK;
    }
    if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) {
        if (a0.t != JV_STR || !a0.u.s.n) return rerr("bad separator");
        const char *f = m[0] == 'r' ? memrfind(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n)
                                    : memfind(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n);
        jj_list *l = new_list(c, 3);
        if (!l) return oom();
        jj_val e = vstr_lit("");
        if (!f) {
            l->v[0] = m[0] == 'r' ? e : s;
            l->v[1] = e;
            l->v[2] = m[0] == 'r' ? s : e;
        } else {
            size_t fo = (size_t)(f - s.u.s.p);
            l->v[0] = jj_str(c->a, s.u.s.p, fo);
            l->v[1] = a0;
            l->v[2] = jj_str(c->a, f + a0.u.s.n, s.u.s.n - fo - a0.u.s.n);
        }
        l->n = 3;
        *out = vlist(l);
        out->tuple = 1;
        return OK;
    }
    if (!strcmp(m, "zfill") || !strcmp(m, "center") || !strcmp(m, "ljust") || !strcmp(m, "rjust")) {
        if (!is_num(a0)) return rerr("%s() needs an integer width", m);
        int64_t w = num_i(a0), len = (int64_t)u8_len(s.u.s.p, s.u.s.n);
        const char *fill = " ";
        size_t fl = 1;
        if (h1 && a1.t == JV_STR) {
            fill = a1.u.s.p;
            fl = a1.u.s.n;
        }
        if (!strcmp(m, "zfill")) {
            fill = "0";
            fl = 1;
        }
        int64_t pad = w > len ? w - len : 0, left = 0;
        if (!strcmp(m, "center")) left = pad / 2 + (pad & w & 1);
        else if (!strcmp(m, "rjust") || !strcmp(m, "zfill")) left = pad;
        el_buf b = {0};
        edgellm_status st = OK;
        size_t skip = 0;
        if (!strcmp(m, "zfill") && s.u.s.n && (s.u.s.p[0] == '-' || s.u.s.p[0] == '+')) {
            st = el_buf_append(&b, s.u.s.p, 1);
            skip = 1;
        }
        for (int64_t i = 0; i < left && st >= 0; i++) st = el_buf_append(&b, fill, fl);
        if (st >= 0) st = el_buf_append(&b, s.u.s.p + skip, s.u.s.n - skip);
        for (int64_t i = left; i < pad && st >= 0; i++) st = el_buf_append(&b, fill, fl);
        if (st >= 0) *out = buf_to_val(c, &b);
        el_buf_free(&b);
        return st;
    }
    if (!strcmp(m, "istitle")) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported str.istitle");
    return rerr("str has no method '%s'", m);
}

/* ---- sorting ------------------------------------------------------------------------------------- */
typedef struct sort_key {
    jj_val key, item;
} sort_key;

static edgellm_status lower_if_str(ctx *c, jj_val v, bool case_sensitive, jj_val *out) {
    if (!case_sensitive && v.t == JV_STR) return case_map(c, v, 0, out);
    *out = v;
    return OK;
}

static edgellm_status stable_sort(sort_key *k, size_t n, bool reverse) {
    /* insertion sort (stable); lists in templates are small */
    for (size_t i = 1; i < n; i++) {
        sort_key x = k[i];
        size_t j = i;
        while (j > 0) {
            bool ok = true;
            int r = val_eq(k[j - 1].key, x.key) ? 0 : cmp_vals(k[j - 1].key, x.key, &ok);
            if (!ok) return rerr("'<' not supported between instances of '%s' and '%s'", type_name(k[j - 1].key), type_name(x.key));
            if (reverse ? r >= 0 : r <= 0) break;
            k[j] = k[j - 1];
            j--;
        }
        k[j] = x;
    }
    return OK;
}

/* resolves a dotted attribute path like jinja's make_attrgetter */
static edgellm_status attr_path_d(ctx *c, jj_val v, jj_val attr, const jj_val *dflt, jj_val *out) {
    if (attr.t == JV_INT) {
        EL_TRY(get_item(c, v, attr, out));
        if (dflt && out->t == JV_UNDEF) *out = *dflt;
        return OK;
    }
    if (attr.t != JV_STR) return rerr("attribute name must be a string");
    const char *p = attr.u.s.p;
    size_t n = attr.u.s.n, i = 0;
    jj_val cur = v;
    while (i <= n) {
        size_t j = i;
        while (j < n && p[j] != '.') j++;
        jj_val key;
        bool digits = j > i;
        for (size_t q = i; q < j; q++)
            if (p[q] < '0' || p[q] > '9') digits = false;
        if (digits) key = vint(strtoll(jj_str(c->a, p + i, j - i).u.s.p, NULL, 10));
        else key = jj_str(c->a, p + i, j - i);
        EL_TRY(get_item(c, cur, key, &cur)); /* an undefined item raises, as in jinja's getitem */
        if (dflt && cur.t == JV_UNDEF) cur = *dflt;
        i = j + 1;
    }
    *out = cur;
    return OK;
}

static edgellm_status attr_path(ctx *c, jj_val v, jj_val attr, jj_val *out) { return attr_path_d(c, v, attr, NULL, out); }

/* ---- filters ------------------------------------------------------------------------------------ */
static const char *const k_filters[] = {
    "trim", "tojson", "length", "count", "items", "selectattr", "rejectattr", "select", "reject", "map", "join",
    "list", "first", "last", "lower", "upper", "title", "capitalize", "replace", "default", "d", "string", "int",
    "float", "abs", "round", "reverse", "sort", "unique", "safe", "indent", "wordcount", "e", "escape", "min",
    "max", "sum", "dictsort", "attr", "format", "center", "forceescape", NULL};
static const char *const k_tests[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
    "boolean", "true", "false", "callable", "equalto", "eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">",
    "ge", ">=", "greaterthan", "lessthan", "in", "odd", "even", "divisibleby", "sameas", "lower", "upper",
    "escaped", "filter", "test", NULL};

bool jj_known_filter(const char *name) { return in_names(k_filters, name); }
bool jj_known_test(const char *name) { return in_names(k_tests, name); }

static edgellm_status to_int(jj_val v, int64_t def, int64_t *out) {
    switch (v.t) {
    case JV_INT: *out = v.u.i; return OK;
    case JV_BOOL: *out = v.u.b; return OK;
    case JV_FLOAT:
        *out = isfinite(v.u.f) ? (int64_t)v.u.f : def;
        return OK;
    case JV_STR: {
        char buf[64];
        size_t o, e;
        strip_range(v.u.s.p, v.u.s.n, NULL, 0, 3, &o, &e);
        if (e - o == 0 || e - o >= sizeof buf) {
            *out = def;
            return OK;
        }
        memcpy(buf, v.u.s.p + o, e - o);
        buf[e - o] = 0;
        char *end;
        long long x = strtoll(buf, &end, 10);
        if (!*end) {
            *out = x;
            return OK;
        }
        double f = strtod(buf, &end);
        *out = (!*end && isfinite(f)) ? (int64_t)f : def;
        return OK;
    }
    default: *out = def; return OK;
    }
}

static edgellm_status do_select(ctx *c, jj_val seq, args *a, bool attr_mode, bool want, jj_val *out) {
    jj_list *l, *r = new_list(c, 0);
    if (!r) return oom();
    r->kind = JL_GEN;
    if (!truthy(seq)) { /* jinja: `if seq:` before iterating */
        *out = vlist(r);
        return OK;
    }
    EL_TRY(iter_list(c, seq, &l));
    int base = 0;
    jj_val attr = k_undef, testname = k_undef;
    if (attr_mode) {
        if (!arg(a, 0, NULL, &attr)) return rerr("selectattr needs an attribute name");
        base = 1;
    }
    bool has_test = arg(a, base, NULL, &testname);
    if (has_test && testname.t != JV_STR) return rerr("test name must be a string");
    args ta = {0};
    if (a->npos > base + 1) {
        ta.pos = a->pos + base + 1;
        ta.npos = a->npos - base - 1;
    }
    ta.kwn = a->kwn;
    ta.kwv = a->kwv;
    ta.nkw = a->nkw;
    char tname[32] = "";
    if (has_test) {
        snprintf(tname, sizeof tname, "%.*s", (int)(testname.u.s.n < 31 ? testname.u.s.n : 31), testname.u.s.p);
        if (!jj_known_test(tname)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported test '%s'", tname);
    }
    for (size_t i = 0; i < l->n; i++) {
        jj_val item = l->v[i], v = item;
        if (attr_mode) EL_TRY(attr_path(c, item, attr, &v));
        bool res;
        if (has_test) EL_TRY(apply_test(c, tname, v, &ta, &res));
        else res = truthy(v);
        if (res == want) EL_TRY(list_push(c, r, item));
    }
    *out = vlist(r);
    return OK;
}

static edgellm_status do_round(jj_val v, int64_t prec, const char *method, jj_val *out) {
    if (!is_num(v)) return rerr("round() needs a number, not %s", type_name(v));
    double x = num_f(v);
    if (!strcmp(method, "common") && v.t != JV_FLOAT) { /* round(int, n) stays int */
        int64_t i = num_i(v);
        if (prec < 0) {
            int64_t p = 1;
            for (int64_t k = 0; k < -prec && p < INT64_MAX / 10; k++) p *= 10;
            int64_t q = i / p, r = i % p;
            if (r < 0) {
                r += p;
                q--;
            }
            if (2 * r > p || (2 * r == p && (q & 1))) q++;
            i = q * p;
        }
        *out = vint(i);
        return OK;
    }
    if (!strcmp(method, "common")) {
        if (prec < 0 || prec > 300) {
            double p = pow(10, (double)prec);
            *out = vfloat(nearbyint(x * p) / p);
            return OK;
        }
        char buf[512];
        snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
        *out = vfloat(strtod(buf, NULL));
        return OK;
    }
    double p = pow(10, (double)prec);
    if (!strcmp(method, "ceil")) *out = vfloat(ceil(x * p) / p);
    else if (!strcmp(method, "floor")) *out = vfloat(floor(x * p) / p);
    else return rerr("method must be common, ceil or floor");
    return OK;
}

/* Python str.splitlines() (no keepends) */
static edgellm_status py_splitlines(ctx *c, jj_val s, jj_list **out) {
    jj_list *l = new_list(c, 0);
    if (!l) return oom();
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, st = 0, i = 0;
    while (i < n) {
        size_t len;
        int32_t cp = u8_dec(p + i, n - i, &len);
        bool br = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d || cp == 0x1e ||
                  cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (br) {
            EL_TRY(list_push(c, l, jj_str(c->a, p + st, i - st)));
            if (cp == '\r' && i + 1 < n && p[i + 1] == '\n') len++;
            st = i + len;
        }
        i += len;
    }
    if (st < n) EL_TRY(list_push(c, l, jj_str(c->a, p + st, n - st)));
    *out = l;
    return OK;
}

/* jinja's do_indent */
static edgellm_status do_indent(ctx *c, jj_val s, args *a, jj_val *out) {
    jj_val w, first, blank;
    if (!arg(a, 0, "width", &w)) w = vint(4);
    arg(a, 1, "first", &first);
    arg(a, 2, "blank", &blank);
    if (s.t != JV_STR) return rerr("unsupported operand type(s) for +=: '%s' and 'str'", type_name(s));
    el_buf ind = {0}, b = {0};
    edgellm_status st = OK;
    if (w.t == JV_STR) st = el_buf_append(&ind, w.u.s.p, w.u.s.n);
    else if (is_num(w) && w.t != JV_FLOAT)
        for (int64_t i = 0; i < num_i(w) && st >= 0; i++) st = el_buf_append(&ind, " ", 1);
    else st = rerr("indent width must be an int or a string");
    jj_list *lines = NULL;
    if (st >= 0) {
        el_buf t = {0};
        st = el_buf_append(&t, s.u.s.p, s.u.s.n);
        if (st >= 0) st = el_buf_append(&t, "\n", 1);
        if (st >= 0) st = py_splitlines(c, buf_to_val(c, &t), &lines);
        el_buf_free(&t);
    }
    if (st >= 0 && truthy(first)) st = el_buf_append(&b, ind.data ? ind.data : "", ind.len);
    for (size_t i = 0; st >= 0 && lines && i < lines->n; i++) {
        jj_val ln = lines->v[i];
        if (i) {
            st = el_buf_append(&b, "\n", 1);
            if (st >= 0 && (truthy(blank) || ln.u.s.n)) st = el_buf_append(&b, ind.data ? ind.data : "", ind.len);
        }
        if (st >= 0) st = el_buf_append(&b, ln.u.s.p, ln.u.s.n);
    }
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&ind);
    el_buf_free(&b);
    return st;
}

static edgellm_status html_escape(ctx *c, jj_val v, jj_val *out) {
    jj_val s;
    EL_TRY(str_of(c, v, &s));
    el_buf b = {0};
    edgellm_status st = OK;
    for (size_t i = 0; i < s.u.s.n && st >= 0; i++) {
        char ch = s.u.s.p[i];
        if (ch == '&') st = el_buf_append_str(&b, "&amp;");
        else if (ch == '<') st = el_buf_append_str(&b, "&lt;");
        else if (ch == '>') st = el_buf_append_str(&b, "&gt;");
        else if (ch == '"') st = el_buf_append_str(&b, "&#34;");
        else if (ch == '\'') st = el_buf_append_str(&b, "&#39;");
        else st = el_buf_append(&b, &ch, 1);
    }
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&b);
    return st;
}

static edgellm_status apply_filter_(ctx *c, const char *f, jj_val v, args *a, jj_val *out);
static const char *const k_lazy_filters[] = {"select", "reject", "selectattr", "rejectattr", "map", "unique", "items", NULL};
static const char *const k_undef_strict[] = {"int", "float", "abs", "round", "dictsort", "tojson", NULL};

static edgellm_status apply_filter(ctx *c, const char *f, jj_val v, args *a, jj_val *out) {
    if (v.t == JV_UNDEF && in_names(k_undef_strict, f)) return rerr("value is undefined (filter '%s')", f);
    edgellm_status st = apply_filter_(c, f, v, a, out);
    if (st == EDGELLM_STATUS_INVALID_ARG && in_names(k_lazy_filters, f)) {
        /* jinja's filter is a generator: the error only happens when it is consumed */
        jj_list *g = new_list(c, 0);
        if (!g) return oom();
        g->kind = JL_GEN;
        g->deferred_err = jj_str(c->a, edgellm_last_error(), strlen(edgellm_last_error())).u.s.p;
        if (!g->deferred_err) return oom();
        *out = vlist(g);
        return OK;
    }
    return st;
}

static edgellm_status apply_filter_(ctx *c, const char *f, jj_val v, args *a, jj_val *out) {
    jj_val a0, a1, a2;
    arg(a, 0, NULL, &a0);
    if (!strcmp(f, "safe")) {
        *out = v;
        return OK;
    }
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        jj_val dv, boolean;
        if (!arg(a, 0, "default_value", &dv)) dv = vstr_lit("");
        arg(a, 1, "boolean", &boolean);
        *out = (v.t == JV_UNDEF || (truthy(boolean) && !truthy(v))) ? dv : v;
        return OK;
    }
    if (!strcmp(f, "length") || !strcmp(f, "count")) {
        switch (v.t) {
        case JV_UNDEF: *out = vint(0); return OK;
        case JV_STR: *out = vint((int64_t)u8_len(v.u.s.p, v.u.s.n)); return OK;
        case JV_LIST:
            if (v.u.l->kind == JL_GEN) return rerr("object of type 'generator' has no len()");
            *out = vint((int64_t)v.u.l->n);
            return OK;
        case JV_DICT: *out = vint((int64_t)v.u.d->n); return OK;
        case JV_LOOP: *out = vint((int64_t)v.u.loop->n); return OK;
        default: return rerr("object of type '%s' has no len()", type_name(v));
        }
    }
    if (!strcmp(f, "tojson")) {
        jopts o = {.indent = -1, .ensure_ascii = false, .sort_keys = false};
        jj_val ind, ea, sk, sep;
        arg(a, 0, "ensure_ascii", &ea);
        arg(a, 1, "indent", &ind);
        arg(a, 2, "separators", &sep);
        arg(a, 3, "sort_keys", &sk);
        o.ensure_ascii = truthy(ea);
        o.sort_keys = truthy(sk);
        if (ind.t == JV_INT) o.indent = ind.u.i < 0 ? 0 : (int)ind.u.i;
        else if (ind.t == JV_STR) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported tojson string indent");
        o.item_sep = o.indent >= 0 ? "," : ", ";
        o.key_sep = ": ";
        if (sep.t == JV_LIST && sep.u.l->n == 2 && sep.u.l->v[0].t == JV_STR && sep.u.l->v[1].t == JV_STR) {
            o.item_sep = jj_str(c->a, sep.u.l->v[0].u.s.p, sep.u.l->v[0].u.s.n).u.s.p;
            o.key_sep = jj_str(c->a, sep.u.l->v[1].u.s.p, sep.u.l->v[1].u.s.n).u.s.p;
        }
        el_buf b = {0};
        edgellm_status st = json_dump(c, v, &b, &o, 0);
        if (st >= 0) *out = buf_to_val(c, &b);
        el_buf_free(&b);
        return st;
    }
    if (!strcmp(f, "string")) return str_of(c, v, out);
    if (!strcmp(f, "e") || !strcmp(f, "escape") || !strcmp(f, "forceescape")) return html_escape(c, v, out);
    if (!strcmp(f, "trim")) {
        jj_val s;
        EL_TRY(str_of(c, v, &s));
        jj_val ch;
        arg(a, 0, "chars", &ch);
        size_t o, e;
        strip_range(s.u.s.p, s.u.s.n, ch.t == JV_STR ? ch.u.s.p : NULL, ch.t == JV_STR ? ch.u.s.n : 0, 3, &o, &e);
        *out = jj_str(c->a, s.u.s.p + o, e - o);
        return OK;
    }
    if (!strcmp(f, "lower") || !strcmp(f, "upper") || !strcmp(f, "capitalize")) {
        jj_val s;
        EL_TRY(str_of(c, v, &s));
        return case_map(c, s, f[0] == 'l' ? 0 : f[0] == 'u' ? 1 : 3, out);
    }
    if (!strcmp(f, "title")) {
        /* jinja: split on ([-\s({[<]+), first char upper, rest lower */
        jj_val s;
        EL_TRY(str_of(c, v, &s));
        el_buf b = {0};
        edgellm_status st = OK;
        const char *p = s.u.s.p;
        size_t n = s.u.s.n, i = 0;
        while (i < n && st >= 0) {
            size_t j = i;
            bool sep = false;
            size_t l0;
            u8_dec(p + i, n - i, &l0);
            sep = p[i] == '-' || p[i] == '(' || p[i] == '{' || p[i] == '[' || p[i] == '<' || el_jinja_ws_len(p + i, n - i);
            while (j < n) {
                size_t wl = el_jinja_ws_len(p + j, n - j);
                bool is_sep = p[j] == '-' || p[j] == '(' || p[j] == '{' || p[j] == '[' || p[j] == '<' || wl;
                if (is_sep != sep) break;
                size_t l;
                u8_dec(p + j, n - j, &l);
                j += wl ? wl : l;
            }
            if (sep) st = el_buf_append(&b, p + i, j - i);
            else {
                jj_val w = jj_str(c->a, p + i, j - i), first, rest;
                size_t l;
                u8_dec(w.u.s.p, w.u.s.n, &l);
                st = case_map(c, jj_str(c->a, w.u.s.p, l), 1, &first);
                if (st >= 0) st = case_map(c, jj_str(c->a, w.u.s.p + l, w.u.s.n - l), 0, &rest);
                if (st >= 0) st = el_buf_append(&b, first.u.s.p, first.u.s.n);
                if (st >= 0) st = el_buf_append(&b, rest.u.s.p, rest.u.s.n);
            }
            i = j;
        }
        if (st >= 0) *out = buf_to_val(c, &b);
        el_buf_free(&b);
        return st;
    }
    if (!strcmp(f, "replace")) {
        jj_val s;
        EL_TRY(str_of(c, v, &s));
        arg(a, 1, "new", &a1);
        jj_val cnt;
        arg(a, 0, "old", &a0);
        if (!arg(a, 2, "count", &cnt) || cnt.t == JV_NONE) cnt = vint(-1);
        jj_val o1, o2;
        EL_TRY(str_of(c, a0, &o1));
        EL_TRY(str_of(c, a1, &o2));
        return py_replace(c, s, o1, o2, num_i(cnt), out);
    }
    if (!strcmp(f, "items")) {
        EL_TRY(make_items(c, v, out));
        out->u.l->kind = JL_GEN;
        return OK;
    }
    if (!strcmp(f, "list")) {
        jj_list *l;
        EL_TRY(iter_list(c, v, &l));
        jj_list *r = new_list(c, l->n);
        if (!r) return oom();
        if (l->n) memcpy(r->v, l->v, l->n * sizeof *r->v);
        r->n = l->n;
        *out = vlist(r);
        return OK;
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        if (f[0] == 'l' && v.t == JV_LIST && v.u.l->kind == JL_GEN) return rerr("'generator' object is not reversible");
        jj_list *l;
        EL_TRY(iter_list(c, v, &l));
        *out = l->n ? l->v[f[0] == 'f' ? 0 : l->n - 1] : k_undef;
        return OK;
    }
    if (!strcmp(f, "join")) {
        jj_val sep, attr;
        if (!arg(a, 0, "d", &sep)) sep = vstr_lit("");
        bool has_attr = arg(a, 1, "attribute", &attr);
        jj_list *l;
        EL_TRY(iter_list(c, v, &l));
        if (has_attr) {
            jj_list *m = new_list(c, l->n);
            if (!m) return oom();
            for (size_t i = 0; i < l->n; i++) EL_TRY(attr_path(c, l->v[i], attr, &m->v[m->n++]));
            l = m;
        }
        return join_vals(c, l, sep, out);
    }
    if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr")) return do_select(c, v, a, true, f[0] == 's', out);
    if (!strcmp(f, "select") || !strcmp(f, "reject")) return do_select(c, v, a, false, f[0] == 's', out);
    if (!strcmp(f, "map")) {
        jj_list *l, *r;
        if (!truthy(v)) {
            r = new_list(c, 0);
            if (!r) return oom();
            r->kind = JL_GEN;
            *out = vlist(r);
            return OK;
        }
        EL_TRY(iter_list(c, v, &l));
        r = new_list(c, l->n);
        if (!r) return oom();
        r->kind = JL_GEN;
        jj_val attr, dflt;
        if (arg(a, -1, "attribute", &attr)) {
            bool hd = arg(a, -1, "default", &dflt);
            for (size_t i = 0; i < l->n; i++) {
                jj_val x;
                EL_TRY(attr_path_d(c, l->v[i], attr, hd && dflt.t != JV_NONE ? &dflt : NULL, &x));
                r->v[r->n++] = x;
            }
        } else {
            if (a0.t != JV_STR) return rerr("map needs a filter name or attribute=");
            char fname[32];
            snprintf(fname, sizeof fname, "%.*s", (int)(a0.u.s.n < 31 ? a0.u.s.n : 31), a0.u.s.p);
            if (!jj_known_filter(fname)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported filter '%s'", fname);
            args fa = *a;
            fa.pos = a->pos + 1;
            fa.npos = a->npos - 1;
            for (size_t i = 0; i < l->n; i++) EL_TRY(apply_filter(c, fname, l->v[i], &fa, &r->v[r->n++]));
        }
        *out = vlist(r);
        return OK;
    }
    if (!strcmp(f, "int")) {
        jj_val d;
        int64_t def = 0;
        if (arg(a, 0, "default", &d)) def = num_i(d);
        int64_t x;
        EL_TRY(to_int(v, def, &x));
        *out = vint(x);
        return OK;
    }
    if (!strcmp(f, "float")) {
        jj_val d;
        double def = 0;
        if (arg(a, 0, "default", &d) && is_num(d)) def = num_f(d);
        if (is_num(v)) *out = vfloat(num_f(v));
        else if (v.t == JV_STR) {
            char buf[128];
            size_t o, e;
            strip_range(v.u.s.p, v.u.s.n, NULL, 0, 3, &o, &e);
            snprintf(buf, sizeof buf, "%.*s", (int)(e - o), v.u.s.p + o);
            char *end;
            double x = strtod(buf, &end);
            *out = vfloat((e > o && !*end) ? x : def);
        } else *out = vfloat(def);
        return OK;
    }
    if (!strcmp(f, "abs")) {
        if (v.t == JV_INT) *out = vint(v.u.i < 0 ? -v.u.i : v.u.i);
        else if (v.t == JV_BOOL) *out = vint(v.u.b);
        else if (v.t == JV_FLOAT) *out = vfloat(fabs(v.u.f));
        else return rerr("bad operand type for abs(): '%s'", type_name(v));
        return OK;
    }
    if (!strcmp(f, "round")) {
        jj_val p, m;
        if (!arg(a, 0, "precision", &p)) p = vint(0);
        if (!arg(a, 1, "method", &m)) m = vstr_lit("common");
        char mn[16];
        snprintf(mn, sizeof mn, "%.*s", (int)(m.t == JV_STR && m.u.s.n < 15 ? m.u.s.n : 0), m.t == JV_STR ? m.u.s.p : "");
        return do_round(v, num_i(p), mn, out);
    }
    if (!strcmp(f, "reverse")) {
        if (v.t == JV_STR) {
            jj_val n1 = vint(-1), u = k_undef;
            return slice_val(c, v, u, u, n1, out);
        }
        jj_list *l;
        EL_TRY(iter_list(c, v, &l));
        jj_list *r = new_list(c, l->n);
        if (!r) return oom();
        for (size_t i = 0; i < l->n; i++) r->v[i] = l->v[l->n - 1 - i];
        r->n = l->n;
        r->kind = JL_GEN; /* reversed() iterator */
        *out = vlist(r);
        return OK;
    }
    if (!strcmp(f, "sort") || !strcmp(f, "unique") || !strcmp(f, "min") || !strcmp(f, "max") || !strcmp(f, "dictsort")) {
        jj_val rev, cs, attr;
        bool is_sort = !strcmp(f, "sort");
        bool dsort = !strcmp(f, "dictsort");
        if (is_sort) {
            arg(a, 0, "reverse", &rev);
            arg(a, 1, "case_sensitive", &cs);
            arg(a, 2, "attribute", &attr);
        } else if (dsort) {
            arg(a, 0, "case_sensitive", &cs);
            jj_val by;
            arg(a, 1, "by", &by);
            arg(a, 2, "reverse", &rev);
            attr = (by.t == JV_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5)) ? vint(1) : vint(0);
        } else {
            rev = k_undef;
            arg(a, 0, "case_sensitive", &cs);
            arg(a, 1, "attribute", &attr);
        }
        jj_list *l;
        if (dsort) {
            jj_val it;
            EL_TRY(make_items(c, v, &it));
            l = it.u.l;
        } else EL_TRY(iter_list(c, v, &l));
        sort_key *k = jj_alloc(c->a, (l->n + 1) * sizeof *k);
        if (!k) return oom();
        for (size_t i = 0; i < l->n; i++) {
            jj_val key = l->v[i];
            if (is_sort && attr.t == JV_STR && memchr(attr.u.s.p, ',', attr.u.s.n)) {
                /* sort(attribute='a,b'): key is the list of the attributes */
                jj_list *kl = new_list(c, 0);
                if (!kl) return oom();
                const char *p = attr.u.s.p, *e = p + attr.u.s.n;
                while (p <= e) {
                    const char *q = memchr(p, ',', (size_t)(e - p));
                    if (!q) q = e;
                    jj_val part, kv;
                    part = jj_str(c->a, p, (size_t)(q - p));
                    EL_TRY(attr_path(c, l->v[i], part, &kv));
                    EL_TRY(lower_if_str(c, kv, truthy(cs), &kv));
                    EL_TRY(list_push(c, kl, kv));
                    p = q + 1;
                }
                k[i].key = vlist(kl);
                k[i].item = l->v[i];
                continue;
            }
            if (attr.t != JV_UNDEF && attr.t != JV_NONE) EL_TRY(attr_path(c, key, attr, &key));
            EL_TRY(lower_if_str(c, key, truthy(cs), &k[i].key));
            k[i].item = l->v[i];
        }
        if (!strcmp(f, "unique")) {
            jj_list *r = new_list(c, 0);
            if (!r) return oom();
            r->kind = JL_GEN;
            for (size_t i = 0; i < l->n; i++) {
                if (!hashable(k[i].key)) return rerr("unhashable type: '%s'", type_name(k[i].key));
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++) seen = val_eq(k[j].key, k[i].key);
                if (!seen) EL_TRY(list_push(c, r, l->v[i]));
            }
            *out = vlist(r);
            return OK;
        }
        if (!strcmp(f, "min") || !strcmp(f, "max")) {
            if (!l->n) {
                *out = k_undef;
                return OK;
            }
            size_t best = 0;
            for (size_t i = 1; i < l->n; i++) {
                bool ok = true;
                int r = cmp_vals(k[i].key, k[best].key, &ok);
                if (!ok) return rerr("'<' not supported between instances");
                if (f[1] == 'i' ? r < 0 : r > 0) best = i;
            }
            *out = l->v[best];
            return OK;
        }
        EL_TRY(stable_sort(k, l->n, truthy(rev)));
        jj_list *r = new_list(c, l->n);
        if (!r) return oom();
        for (size_t i = 0; i < l->n; i++) r->v[i] = k[i].item;
        r->n = l->n;
        *out = vlist(r);
        return OK;
    }
    if (!strcmp(f, "sum")) {
        jj_val attr, start;
        arg(a, 0, "attribute", &attr);
        if (!arg(a, 1, "start", &start)) start = vint(0);
        jj_list *l;
        EL_TRY(iter_list(c, v, &l));
        jj_val acc = start;
        for (size_t i = 0; i < l->n; i++) {
            jj_val x = l->v[i];
            if (attr.t != JV_UNDEF) EL_TRY(attr_path(c, x, attr, &x));
            if (!is_num(x) || !is_num(acc)) return rerr("unsupported operand type(s) for +");
            if (acc.t == JV_FLOAT || x.t == JV_FLOAT) acc = vfloat(num_f(acc) + num_f(x));
            else acc = vint(num_i(acc) + num_i(x));
        }
        *out = acc;
        return OK;
    }
    if (!strcmp(f, "indent")) return do_indent(c, v, a, out);
    if (!strcmp(f, "wordcount")) {
        jj_val s;
        EL_TRY(str_of(c, v, &s));
        int64_t cnt = 0;
        bool in = false;
        for (size_t i = 0; i < s.u.s.n;) {
            size_t l;
            int32_t cp = u8_dec(s.u.s.p + i, s.u.s.n - i, &l);
            utf8proc_category_t cat = utf8proc_category(cp);
            /* Python's \w: alphanumeric (L*, N*) or '_' */
            bool w = cp == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                     (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
            if (w && !in) cnt++;
            in = w;
            i += l;
        }
        *out = vint(cnt);
        return OK;
    }
    if (!strcmp(f, "attr")) {
        if (a0.t != JV_STR) return rerr("attr name must be a string");
        return get_attr(c, v, jj_str(c->a, a0.u.s.p, a0.u.s.n).u.s.p, out);
    }
    if (!strcmp(f, "format")) {
        jj_val s;
        EL_TRY(str_of(c, v, &s));
        jj_list *l = new_list(c, (size_t)a->npos + 1);
        if (!l) return oom();
        for (int i = 0; i < a->npos; i++) l->v[l->n++] = a->pos[i];
        jj_val t = vlist(l);
        t.tuple = 1;
        return percent_format(c, s, t, out);
    }
    if (!strcmp(f, "center")) {
        jj_val s;
        EL_TRY(str_of(c, v, &s));
        args ca = {0};
        jj_val w;
        if (!arg(a, 0, "width", &w)) w = vint(80);
        ca.pos = &w;
        ca.npos = 1;
        return str_method(c, "center", s, &ca, out);
    }
    (void)a2;
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported filter '%s'", f);
}

/* ---- tests ------------------------------------------------------------------------------------- */
static const char *const k_unary_tests[] = {"defined", "undefined", "none", "string", "number", "integer", "float",
                                            "mapping", "iterable", "sequence", "boolean", "true", "false", "callable",
                                            "odd", "even", "lower", "upper", "escaped", NULL};

static edgellm_status apply_test(ctx *c, const char *t, jj_val v, args *a, bool *out) {
    jj_val a0;
    arg(a, 0, NULL, &a0);
    if ((a->npos || a->nkw) && in_names(k_unary_tests, t))
        return rerr("test_%s() takes 1 positional argument but %d were given", t, 1 + a->npos + a->nkw);
    if (!strcmp(t, "defined")) *out = v.t != JV_UNDEF;
    else if (!strcmp(t, "undefined")) *out = v.t == JV_UNDEF;
    else if (!strcmp(t, "none")) *out = v.t == JV_NONE;
    else if (!strcmp(t, "string")) *out = v.t == JV_STR;
    else if (!strcmp(t, "number")) *out = is_num(v);
    else if (!strcmp(t, "integer")) *out = v.t == JV_INT;
    else if (!strcmp(t, "float")) *out = v.t == JV_FLOAT;
    else if (!strcmp(t, "mapping")) *out = v.t == JV_DICT;
    else if (!strcmp(t, "iterable")) *out = v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    else if (!strcmp(t, "sequence")) *out = v.t == JV_STR || (v.t == JV_LIST && v.u.l->kind == JL_LIST) || v.t == JV_DICT || v.t == JV_UNDEF;
    else if (!strcmp(t, "boolean")) *out = v.t == JV_BOOL;
    else if (!strcmp(t, "true")) *out = v.t == JV_BOOL && v.u.b;
    else if (!strcmp(t, "false")) *out = v.t == JV_BOOL && !v.u.b;
    else if (!strcmp(t, "callable")) *out = v.t == JV_MACRO || v.t == JV_FUNC || v.t == JV_UNDEF;
    else if (!strcmp(t, "equalto") || !strcmp(t, "eq") || !strcmp(t, "==")) *out = val_eq(v, a0);
    else if (!strcmp(t, "ne") || !strcmp(t, "!=")) *out = !val_eq(v, a0);
    else if (!strcmp(t, "sameas")) {
        if (v.t != a0.t) *out = false;
        else if (v.t == JV_NONE || v.t == JV_UNDEF) *out = true;
        else if (v.t == JV_BOOL) *out = v.u.b == a0.u.b;
        else if (v.t == JV_LIST) *out = v.u.l == a0.u.l;
        else if (v.t == JV_DICT || v.t == JV_NS) *out = v.u.d == a0.u.d;
        else *out = val_eq(v, a0);
    } else if (!strcmp(t, "lt") || !strcmp(t, "<") || !strcmp(t, "lessthan") || !strcmp(t, "le") || !strcmp(t, "<=") ||
               !strcmp(t, "gt") || !strcmp(t, ">") || !strcmp(t, "greaterthan") || !strcmp(t, "ge") || !strcmp(t, ">=")) {
        bool ok = true;
        int r = cmp_vals(v, a0, &ok);
        if (!ok) return rerr("'<' not supported between instances of '%s' and '%s'", type_name(v), type_name(a0));
        if (t[0] == 'l' || t[0] == '<') *out = (t[1] == 'e' || t[1] == '=') ? r <= 0 : r < 0;
        else *out = (t[1] == 'e' || t[1] == '=') ? r >= 0 : r > 0;
    } else if (!strcmp(t, "in")) {
        if (a0.t == JV_STR) {
            if (v.t != JV_STR) return rerr("'in <string>' requires string as left operand");
            *out = memfind(a0.u.s.p, a0.u.s.n, v.u.s.p, v.u.s.n) != NULL;
        } else if (a0.t == JV_DICT || a0.t == JV_NS) {
            if (!hashable(v)) return rerr("unhashable type: '%s'", type_name(v));
            *out = dict_find(a0.u.d, v) != NULL;
        }
        else if (a0.t == JV_LIST) {
            if (a0.u.l->deferred_err) return el_err(EDGELLM_STATUS_INVALID_ARG, "%s", a0.u.l->deferred_err);
            *out = false;
            for (size_t i = 0; i < a0.u.l->n && !*out; i++) *out = val_eq(a0.u.l->v[i], v);
        } else if (a0.t == JV_UNDEF) *out = false;
        else return rerr("argument of type '%s' is not iterable", type_name(a0));
    } else if (!strcmp(t, "odd") || !strcmp(t, "even") || !strcmp(t, "divisibleby")) {
        if (!is_num(v) || v.t == JV_FLOAT) {
            if (v.t == JV_FLOAT && !strcmp(t, "divisibleby")) {
                *out = is_num(a0) && num_f(a0) != 0 && fmod(v.u.f, num_f(a0)) == 0;
                return OK;
            }
            if (v.t == JV_FLOAT) {
                double m = fmod(v.u.f, 2);
                if (m < 0) m += 2;
                *out = t[0] == 'o' ? m == 1 : m == 0;
                return OK;
            }
            return rerr("unsupported operand type(s) for %%: '%s' and 'int'", type_name(v));
        }
        int64_t x = num_i(v);
        if (t[0] == 'o') *out = (x % 2 + 2) % 2 == 1;
        else if (t[0] == 'e') *out = x % 2 == 0;
        else {
            if (!is_num(a0)) return rerr("divisibleby needs a number");
            if (a0.t == JV_FLOAT) *out = num_f(a0) != 0 && fmod((double)x, a0.u.f) == 0;
            else {
                if (num_i(a0) == 0) return rerr("integer division or modulo by zero");
                *out = x % num_i(a0) == 0;
            }
        }
    } else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        jj_val r, sv;
        args none = {0};
        EL_TRY(str_of(c, v, &sv));
        EL_TRY(str_method(c, t[0] == 'l' ? "islower" : "isupper", sv, &none, &r));
        *out = r.u.b;
    } else if (!strcmp(t, "escaped")) *out = false;
    else if (!strcmp(t, "filter")) {
        char nm[32];
        snprintf(nm, sizeof nm, "%.*s", a0.t == JV_STR ? (int)(a0.u.s.n < 31 ? a0.u.s.n : 31) : 0, a0.t == JV_STR ? a0.u.s.p : "");
        *out = jj_known_filter(nm);
    } else if (!strcmp(t, "test")) {
        char nm[32];
        snprintf(nm, sizeof nm, "%.*s", a0.t == JV_STR ? (int)(a0.u.s.n < 31 ? a0.u.s.n : 31) : 0, a0.t == JV_STR ? a0.u.s.p : "");
        *out = jj_known_test(nm);
    } else return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: unsupported test '%s'", t);
    return OK;
}

/* ---- operators ---------------------------------------------------------------------------------- */
static const char *op_sym(int op) {
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_FLOORDIV: return "//";
    case OP_MOD: return "%";
    case OP_POW: return "**";
    default: return "?";
    }
}

/* x + y for strings (see ctx.sb) */
static edgellm_status str_append(ctx *c, jj_val x, const char *yp, size_t yn, jj_val *out) {
    size_t n = x.u.s.n + yn;
    jj_val r = {0};
    r.t = JV_STR;
    r.u.s.n = n;
    for (int i = 0; i < 16; i++) {
        struct strblk *b = &c->sb[i];
        if (b->base && x.u.s.p + x.u.s.n == b->base + b->used && b->used + yn + 1 <= b->cap) {
            memcpy(b->base + b->used, yp, yn);
            b->used += yn;
            b->base[b->used] = 0;
            r.u.s.p = x.u.s.p;
            *out = r;
            return OK;
        }
    }
    if (n < 1024) {
        char *p = jj_alloc(c->a, n + 1);
        if (!p) return oom();
        memcpy(p, x.u.s.p, x.u.s.n);
        memcpy(p + x.u.s.n, yp, yn);
        r.u.s.p = p;
        *out = r;
        return OK;
    }
    size_t cap = 2 * n + 1;
    char *p = jj_alloc(c->a, cap);
    if (!p) return oom();
    memcpy(p, x.u.s.p, x.u.s.n);
    memcpy(p + x.u.s.n, yp, yn);
    struct strblk *b = &c->sb[c->sb_next];
    c->sb_next = (c->sb_next + 1) % 16;
    b->base = p;
    b->used = n;
    b->cap = cap;
    r.u.s.p = p;
    *out = r;
    return OK;
}

static edgellm_status binop(ctx *c, int op, jj_val x, jj_val y, jj_val *out) {
    if (op == OP_MOD && x.t == JV_STR) return percent_format(c, x, y, out);
    if (x.t == JV_UNDEF || y.t == JV_UNDEF) return rerr("unsupported operand: value is undefined");
    if (is_num(x) && is_num(y)) {
        bool fl = x.t == JV_FLOAT || y.t == JV_FLOAT;
        if (op == OP_DIV) {
            if (num_f(y) == 0) return rerr("division by zero");
            *out = vfloat(num_f(x) / num_f(y));
            return OK;
        }
        if (fl) {
            double a = num_f(x), b = num_f(y), r;
            switch (op) {
            case OP_ADD: r = a + b; break;
            case OP_SUB: r = a - b; break;
            case OP_MUL: r = a * b; break;
            case OP_FLOORDIV:
                if (b == 0) return rerr("float floor division by zero");
                r = floor(a / b);
                break;
            case OP_MOD:
                if (b == 0) return rerr("float modulo");
                r = fmod(a, b);
                if (r != 0 && ((r < 0) != (b < 0))) r += b;
                break;
            case OP_POW:
                if (a == 0 && b < 0) return rerr("0.0 cannot be raised to a negative power");
                if (a < 0 && b != floor(b) && isfinite(b))
                    return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: complex numbers are not supported");
                r = pow(a, b);
                if (isinf(r) && isfinite(a) && isfinite(b)) return rerr("(34, 'Numerical result out of range')");
                break;
            default: return rerr("bad operator");
            }
            *out = vfloat(r);
            return OK;
        }
        int64_t a = num_i(x), b = num_i(y), r;
        switch (op) {
        case OP_ADD:
            if (__builtin_add_overflow(a, b, &r)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: integer overflow (no big integers)");
            break;
        case OP_SUB:
            if (__builtin_sub_overflow(a, b, &r)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: integer overflow (no big integers)");
            break;
        case OP_MUL:
            if (__builtin_mul_overflow(a, b, &r)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: integer overflow (no big integers)");
            break;
        case OP_FLOORDIV:
            if (b == 0) return rerr("integer division or modulo by zero");
            r = a / b;
            if ((a % b != 0) && ((a < 0) != (b < 0))) r--;
            break;
        case OP_MOD:
            if (b == 0) return rerr("integer division or modulo by zero");
            r = a % b;
            if (r != 0 && ((r < 0) != (b < 0))) r += b;
            break;
        case OP_POW:
            if (b < 0) {
                if (a == 0) return rerr("0.0 cannot be raised to a negative power");
                *out = vfloat(pow((double)a, (double)b));
                return OK;
            }
            r = 1;
            for (int64_t i = 0; i < b; i++)
                if (__builtin_mul_overflow(r, a, &r))
                    return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: integer overflow (no big integers)");
            break;
        default: return rerr("bad operator");
        }
        *out = vint(r);
        return OK;
    }
    if (op == OP_ADD && x.t == JV_STR && y.t == JV_STR) return str_append(c, x, y.u.s.p, y.u.s.n, out);
    if (op == OP_ADD && x.t == JV_LIST && y.t == JV_LIST && x.tuple == y.tuple && x.u.l->kind == JL_LIST && y.u.l->kind == JL_LIST) {
        jj_list *l = new_list(c, x.u.l->n + y.u.l->n + 1);
        if (!l) return oom();
        for (size_t i = 0; i < x.u.l->n; i++) l->v[l->n++] = x.u.l->v[i];
        for (size_t i = 0; i < y.u.l->n; i++) l->v[l->n++] = y.u.l->v[i];
        *out = vlist(l);
        out->tuple = x.tuple;
        return OK;
    }
    if (op == OP_MUL && ((x.t == JV_STR || (x.t == JV_LIST && x.u.l->kind == JL_LIST)) && (y.t == JV_INT || y.t == JV_BOOL))) {
        int64_t k = num_i(y);
        if (x.t == JV_STR) {
            el_buf b = {0};
            edgellm_status st = OK;
            for (int64_t i = 0; i < k && st >= 0; i++) st = el_buf_append(&b, x.u.s.p, x.u.s.n);
            if (st >= 0) *out = buf_to_val(c, &b);
            el_buf_free(&b);
            return st;
        }
        jj_list *l = new_list(c, 0);
        if (!l) return oom();
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < x.u.l->n; j++) EL_TRY(list_push(c, l, x.u.l->v[j]));
        *out = vlist(l);
        out->tuple = x.tuple;
        return OK;
    }
    if (op == OP_MUL && (y.t == JV_STR || (y.t == JV_LIST && y.u.l->kind == JL_LIST)) && (x.t == JV_INT || x.t == JV_BOOL)) return binop(c, op, y, x, out);
    if (op == OP_MOD && x.t == JV_STR) return percent_format(c, x, y, out);
    if (op == OP_ADD && x.t == JV_STR)
        return rerr("can only concatenate str (not \"%s\") to str", type_name(y));
    return rerr("unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op), type_name(x), type_name(y));
}

/* ---- calls -------------------------------------------------------------------------------------- */
static edgellm_status call_macro(ctx *c, jj_macro *m, args *a, jj_val *out) {
    const jj_node *n = m->n;
    if (c->depth > 64) return el_err(EDGELLM_STATUS_LIMIT, "chat template: maximum macro recursion depth exceeded");
    scope *s = new_scope(c, m->closure);
    if (!s) return oom();
    int np = n->nitems;
    jj_list *varargs = new_list(c, 0);
    if (!varargs) return oom();
    for (int i = 0; i < a->npos; i++) {
        if (i < np) EL_TRY(scope_set(c, s, n->names[i], a->pos[i]));
        else EL_TRY(list_push(c, varargs, a->pos[i]));
    }
    jj_dict *kw = jj_alloc(c->a, sizeof *kw);
    if (!kw) return oom();
    for (int i = 0; i < a->nkw; i++) {
        bool found = false;
        for (int p = 0; p < np; p++)
            if (!strcmp(n->names[p], a->kwn[i])) {
                if (p < a->npos) return rerr("macro '%s' got multiple values for argument '%s'", n->str, a->kwn[i]);
                EL_TRY(scope_set(c, s, n->names[p], a->kwv[i]));
                found = true;
            }
        if (!found) EL_TRY(dict_set(c, kw, vstr_lit(a->kwn[i]), a->kwv[i]));
    }
    for (int p = 0; p < np; p++) {
        if (dict_find_s(&s->vars, n->names[p], strlen(n->names[p]))) continue;
        jj_val dv = k_undef;
        if (n->items[p]) EL_TRY(eval(c, s, n->items[p], &dv));
        EL_TRY(scope_set(c, s, n->names[p], dv));
    }
    jj_val vv = vlist(varargs);
    vv.tuple = 1;
    EL_TRY(scope_set(c, s, "varargs", vv));
    jj_val kv = {0};
    kv.t = JV_DICT;
    kv.u.d = kw;
    EL_TRY(scope_set(c, s, "kwargs", kv));
    if (m->caller) {
        jj_val cv = {0};
        cv.t = JV_MACRO;
        cv.u.m = m->caller;
        EL_TRY(scope_set(c, s, "caller", cv));
    }
    el_buf b = {0}, *saved = c->out;
    c->out = &b;
    c->depth++;
    edgellm_status st = exec_body(c, s, n->b);
    c->depth--;
    c->out = saved;
    c->ctl = 0;
    if (st >= 0) *out = buf_to_val(c, &b);
    el_buf_free(&b);
    return st;
}

static edgellm_status call_value(ctx *c, jj_val f, args *a, jj_val *out) {
    if (f.t == JV_MACRO) return call_macro(c, f.u.m, a, out);
    if (f.t == JV_UNDEF) return rerr("'Undefined' is not callable");
    if (f.t != JV_FUNC) return rerr("'%s' object is not callable", type_name(f));
    const char *nm = f.u.fn->name;
    jj_val self = f.u.fn->self;
    jj_val a0, a1;
    arg(a, 0, NULL, &a0);
    arg(a, 1, NULL, &a1);
    if (self.t == JV_STR) return str_method(c, nm, self, a, out);
    if (self.t == JV_DICT) {
        if (!strcmp(nm, "items")) {
            EL_TRY(make_items(c, self, out));
            out->u.l->kind = JL_ITEMS;
            return OK;
        }
        if (!strcmp(nm, "keys") || !strcmp(nm, "values")) {
            jj_list *l = new_list(c, self.u.d->n + 1);
            if (!l) return oom();
            l->kind = nm[0] == 'k' ? JL_KEYS : JL_VALUES;
            for (size_t i = 0; i < self.u.d->n; i++) l->v[l->n++] = nm[0] == 'k' ? self.u.d->k[i] : self.u.d->v[i];
            *out = vlist(l);
            return OK;
        }
        if (!strcmp(nm, "get")) {
            jj_val *v = dict_find(self.u.d, a0);
            *out = v ? *v : (a->npos > 1 ? a1 : vnone());
            return OK;
        }
        if (!strcmp(nm, "copy")) {
            jj_dict *d = jj_alloc(c->a, sizeof *d);
            if (!d) return oom();
            for (size_t i = 0; i < self.u.d->n; i++) EL_TRY(dict_set(c, d, self.u.d->k[i], self.u.d->v[i]));
            jj_val r = {0};
            r.t = JV_DICT;
            r.u.d = d;
            *out = r;
            return OK;
        }
        return rerr("access to attribute '%s' of 'dict' object is unsafe.", nm);
    }
    if (self.t == JV_LIST) {
        if (!strcmp(nm, "index") || !strcmp(nm, "count")) {
            int64_t cnt = 0;
            for (size_t i = 0; i < self.u.l->n; i++)
                if (val_eq(self.u.l->v[i], a0)) {
                    if (nm[0] == 'i') {
                        *out = vint((int64_t)i);
                        return OK;
                    }
                    cnt++;
                }
            if (nm[0] == 'i') return rerr("value is not in list");
            *out = vint(cnt);
            return OK;
        }
        if (!strcmp(nm, "copy")) return apply_filter(c, "list", self, a, out);
        return rerr("access to attribute '%s' of '%s' object is unsafe.", nm, type_name(self));
    }
    if (self.t == JV_LOOP && !strcmp(nm, "loop.changed")) {
        jj_list *l = new_list(c, (size_t)a->npos + 1);
        if (!l) return oom();
        for (int i = 0; i < a->npos; i++) l->v[l->n++] = a->pos[i];
        jj_val now = vlist(l);
        jj_loop *L = self.u.loop;
        bool changed = !L->has_changed || !val_eq(L->last_changed, now);
        L->last_changed = now;
        L->has_changed = true;
        *out = vbool(changed);
        return OK;
    }
    if (self.t == JV_LOOP) { /* loop.cycle */
        if (!a->npos) return rerr("no items for cycling given");
        *out = a->pos[self.u.loop->i % (size_t)a->npos];
        return OK;
    }
    /* globals */
    if (!strcmp(nm, "raise_exception")) {
        jj_val s;
        EL_TRY(str_of(c, a0, &s));
        return el_err(EDGELLM_STATUS_INVALID_ARG, "chat template: %.*s", (int)s.u.s.n, s.u.s.p);
    }
    if (!strcmp(nm, "strftime_now")) {
        if (a0.t != JV_STR) return rerr("strftime_now needs a format string");
        char fmt[256], buf[512];
        snprintf(fmt, sizeof fmt, "%.*s", (int)a0.u.s.n, a0.u.s.p);
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        size_t k = strftime(buf, sizeof buf, fmt, &tmv);
        *out = jj_str(c->a, buf, k);
        return OK;
    }
    if (!strcmp(nm, "namespace") || !strcmp(nm, "dict")) {
        jj_dict *d = jj_alloc(c->a, sizeof *d);
        if (!d) return oom();
        if (a->npos >= 1) {
            jj_val src = a->pos[0];
            if (src.t == JV_DICT || src.t == JV_NS) {
                for (size_t i = 0; i < src.u.d->n; i++) EL_TRY(dict_set(c, d, src.u.d->k[i], src.u.d->v[i]));
            } else if (src.t == JV_LIST) {
                for (size_t i = 0; i < src.u.l->n; i++) {
                    jj_val p = src.u.l->v[i];
                    if (p.t != JV_LIST || p.u.l->n != 2) return rerr("dict() sequence element has wrong length");
                    EL_TRY(dict_set(c, d, p.u.l->v[0], p.u.l->v[1]));
                }
            } else return rerr("'%s' object is not iterable", type_name(src));
        }
        for (int i = 0; i < a->nkw; i++) EL_TRY(dict_set(c, d, vstr_lit(a->kwn[i]), a->kwv[i]));
        jj_val r = {0};
        r.t = nm[0] == 'n' ? JV_NS : JV_DICT;
        r.u.d = d;
        *out = r;
        return OK;
    }
    if (!strcmp(nm, "range")) {
        int64_t st = 0, en, step = 1;
        if (a->npos == 1) en = num_i(a0);
        else {
            st = num_i(a0);
            en = num_i(a1);
            if (a->npos > 2) step = num_i(a->pos[2]);
        }
        if (!step) return rerr("range() arg 3 must not be zero");
        jj_list *l = new_list(c, 0);
        if (!l) return oom();
        for (int64_t i = st; step > 0 ? i < en : i > en; i += step) {
            if (l->n > 100000) return el_err(EDGELLM_STATUS_LIMIT, "chat template: range too large");
            EL_TRY(list_push(c, l, vint(i)));
        }
        l->is_range = true;
        l->r_start = st;
        l->r_stop = en;
        l->r_step = step;
        *out = vlist(l);
        return OK;
    }
    return rerr("'%s' is not callable", nm);
}

/* ---- expression evaluation --------------------------------------------------------------------- */
static edgellm_status lookup_name(ctx *c, scope *s, const char *name, jj_val *out) {
    jj_val *v = scope_lookup(s, name);
    if (v) {
        *out = *v;
        return OK;
    }
    static const char *const globals[] = {"raise_exception", "strftime_now", "namespace", "range", "dict", NULL};
    static const char *const unsupported[] = {"cycler", "joiner", "lipsum", NULL};
    if (in_names(unsupported, name)) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: global '%s' is not supported", name);
    if (in_names(globals, name)) {
        *out = vfunc(c, name, k_undef);
        return OK;
    }
    *out = k_undef;
    return OK;
}

static edgellm_status eval(ctx *c, scope *s, const jj_node *n, jj_val *out) {
    if (c->a->oom) return oom();
    if (stack_exhausted(c)) return el_err(EDGELLM_STATUS_LIMIT, "chat template: nesting too deep (stack budget)");
    switch (n->kind) {
    case JN_LIT: *out = n->op == 1 ? c->placeholder : n->lit; return OK;
    case JN_NAME: return lookup_name(c, s, n->str, out);
    case JN_LIST:
    case JN_TUPLE: {
        jj_list *l = new_list(c, (size_t)n->nitems + 1);
        if (!l) return oom();
        for (int i = 0; i < n->nitems; i++) EL_TRY(eval(c, s, n->items[i], &l->v[l->n++]));
        *out = vlist(l);
        out->tuple = n->kind == JN_TUPLE;
        return OK;
    }
    case JN_DICT: {
        jj_dict *d = jj_alloc(c->a, sizeof *d);
        if (!d) return oom();
        for (int i = 0; i + 1 < n->nitems; i += 2) {
            jj_val k, v;
            EL_TRY(eval(c, s, n->items[i], &k));
            EL_TRY(eval(c, s, n->items[i + 1], &v));
            if (!hashable(k)) return rerr("unhashable type: '%s'", type_name(k));
            EL_TRY(dict_set(c, d, k, v));
        }
        jj_val r = {0};
        r.t = JV_DICT;
        r.u.d = d;
        *out = r;
        return OK;
    }
    case JN_GETATTR: {
        jj_val o;
        EL_TRY(eval(c, s, n->a, &o));
        if (o.t == JV_UNDEF) return rerr("'%s' is undefined (getting attribute '%s')", n->a->kind == JN_NAME ? n->a->str : "value", n->str);
        return get_attr(c, o, n->str, out);
    }
    case JN_GETITEM: {
        jj_val o;
        EL_TRY(eval(c, s, n->a, &o));
        if (n->b->kind == JN_SLICE) {
            jj_val s0 = k_undef, s1 = k_undef, s2 = k_undef;
            if (n->b->a) EL_TRY(eval(c, s, n->b->a, &s0));
            if (n->b->b) EL_TRY(eval(c, s, n->b->b, &s1));
            if (n->b->c) EL_TRY(eval(c, s, n->b->c, &s2));
            return slice_val(c, o, s0, s1, s2, out);
        }
        jj_val k;
        EL_TRY(eval(c, s, n->b, &k));
        if (o.t == JV_UNDEF) return rerr("'%s' is undefined (getting an item)", n->a->kind == JN_NAME ? n->a->str : "value");
        return get_item(c, o, k, out);
    }
    case JN_CALL: {
        jj_val f;
        EL_TRY(eval(c, s, n->a, &f));
        args a;
        EL_TRY(eval_args(c, s, n, 0, &a));
        return call_value(c, f, &a, out);
    }
    case JN_FILTER: {
        jj_val v;
        EL_TRY(eval(c, s, n->a, &v));
        args a;
        EL_TRY(eval_args(c, s, n, 0, &a));
        return apply_filter(c, n->str, v, &a, out);
    }
    case JN_TEST: {
        jj_val v;
        EL_TRY(eval(c, s, n->a, &v));
        args a;
        EL_TRY(eval_args(c, s, n, 0, &a));
        bool r;
        EL_TRY(apply_test(c, n->str, v, &a, &r));
        *out = vbool(n->neg ? !r : r);
        return OK;
    }
    case JN_BINOP: {
        jj_val x, y;
        EL_TRY(eval(c, s, n->a, &x));
        EL_TRY(eval(c, s, n->b, &y));
        return binop(c, n->op, x, y, out);
    }
    case JN_NEG:
    case JN_POS: {
        jj_val x;
        EL_TRY(eval(c, s, n->a, &x));
        if (!is_num(x)) return rerr("bad operand type for unary %s: '%s'", n->kind == JN_NEG ? "-" : "+", type_name(x));
        if (n->kind == JN_POS) *out = x.t == JV_BOOL ? vint(x.u.b) : x;
        else if (x.t == JV_FLOAT) *out = vfloat(-x.u.f);
        else if (num_i(x) == INT64_MIN) return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: integer overflow (no big integers)");
        else *out = vint(-num_i(x));
        return OK;
    }
    case JN_NOT: {
        jj_val x;
        EL_TRY(eval(c, s, n->a, &x));
        *out = vbool(!truthy(x));
        return OK;
    }
    case JN_AND:
    case JN_OR: {
        jj_val x;
        EL_TRY(eval(c, s, n->a, &x));
        bool t = truthy(x);
        if (n->kind == JN_AND ? !t : t) {
            *out = x;
            return OK;
        }
        return eval(c, s, n->b, out);
    }
    case JN_COMPARE: {
        jj_val x, y;
        EL_TRY(eval(c, s, n->a, &x));
        EL_TRY(eval(c, s, n->b, &y));
        bool r;
        switch (n->op) {
        case OP_EQ: r = val_eq(x, y); break;
        case OP_NE: r = !val_eq(x, y); break;
        case OP_IN: {
            args a = {0};
            a.pos = &y;
            a.npos = 1;
            EL_TRY(apply_test(c, "in", x, &a, &r));
            if (n->neg) r = !r;
            break;
        }
        default: {
            bool ok = true;
            int cr = cmp_vals(x, y, &ok);
            if (!ok) {
                const char *sym = n->op == OP_LT ? "<" : n->op == OP_LE ? "<=" : n->op == OP_GT ? ">" : ">=";
                return rerr("'%s' not supported between instances of '%s' and '%s'", sym, type_name(x), type_name(y));
            }
            r = n->op == OP_LT ? cr < 0 : n->op == OP_LE ? cr <= 0 : n->op == OP_GT ? cr > 0 : cr >= 0;
        }
        }
        *out = vbool(r);
        return OK;
    }
    case JN_COND: {
        jj_val cnd;
        EL_TRY(eval(c, s, n->b, &cnd));
        if (truthy(cnd)) return eval(c, s, n->a, out);
        if (n->c) return eval(c, s, n->c, out);
        *out = k_undef;
        return OK;
    }
    case JN_CONCAT: {
        jj_val acc = vstr_lit("");
        for (int i = 0; i < n->nitems; i++) {
            jj_val x, xs;
            EL_TRY(eval(c, s, n->items[i], &x));
            EL_TRY(str_of(c, x, &xs));
            if (i == 0) acc = xs;
            else EL_TRY(str_append(c, acc, xs.u.s.p, xs.u.s.n, &acc));
        }
        *out = acc;
        return OK;
    }
    default: return rerr("bad expression node");
    }
}

/* ---- statements -------------------------------------------------------------------------------- */
static edgellm_status assign(ctx *c, scope *s, const jj_node *target, jj_val v) {
    if (target->kind == JN_NAME) return scope_set(c, s, target->str, v);
    if (target->kind == JN_GETATTR) {
        jj_val ns;
        EL_TRY(lookup_name(c, s, target->a->str, &ns));
        if (ns.t != JV_NS) return rerr("cannot assign attribute on non-namespace object");
        return dict_set(c, ns.u.d, vstr_lit(target->str), v);
    }
    if (target->kind == JN_TUPLE) {
        jj_list *l;
        EL_TRY(iter_list(c, v, &l));
        if (l->n != (size_t)target->nitems)
            return rerr(l->n > (size_t)target->nitems ? "too many values to unpack (expected %d)" : "not enough values to unpack (expected %d)",
                        target->nitems);
        for (int i = 0; i < target->nitems; i++) EL_TRY(assign(c, s, target->items[i], l->v[i]));
        return OK;
    }
    return rerr("bad assignment target");
}

static edgellm_status exec(ctx *c, scope *s, const jj_node *n);

static edgellm_status exec_for(ctx *c, scope *s, const jj_node *n) {
    jj_val it;
    EL_TRY(eval(c, s, n->b, &it));
    jj_list *src;
    EL_TRY(iter_list(c, it, &src));
    /* snapshot (the loop iterates what the iterable was when the loop started) */
    jj_list *items = new_list(c, src->n + 1);
    if (!items) return oom();
    scope *ls = new_scope(c, s);
    if (!ls) return oom();
    for (size_t i = 0; i < src->n; i++) {
        if (n->c) {
            EL_TRY(assign(c, ls, n->a, src->v[i]));
            jj_val cv;
            EL_TRY(eval(c, ls, n->c, &cv));
            if (!truthy(cv)) continue;
        }
        items->v[items->n++] = src->v[i];
    }
    bool completed = false; /* jinja: else runs unless some iteration ran its body to the end */
    jj_loop *L = jj_alloc(c->a, sizeof *L);
    if (!L) return oom();
    L->items = items->v;
    L->n = items->n;
    jj_val lv = {0};
    lv.t = JV_LOOP;
    lv.u.loop = L;
    for (size_t i = 0; i < items->n; i++) {
        if (++c->steps > MAX_STEPS) return el_err(EDGELLM_STATUS_LIMIT, "chat template: too many loop iterations");
        ls = new_scope(c, s);
        if (!ls) return oom();
        L->i = i;
        EL_TRY(scope_set(c, ls, "loop", lv));
        EL_TRY(assign(c, ls, n->a, items->v[i]));
        EL_TRY(exec_body(c, ls, n->items[0]));
        if (c->ctl == 1) {
            c->ctl = 0;
            break;
        }
        if (!c->ctl) completed = true;
        c->ctl = 0;
    }
    if (!completed && n->d) return exec_body(c, s, n->d);
    return OK;
}

static edgellm_status exec(ctx *c, scope *s, const jj_node *n) {
    if (c->a->oom) return oom();
    switch (n->kind) {
    case JN_TEXT:
        if (c->out->len > MAX_OUTPUT) return el_err(EDGELLM_STATUS_LIMIT, "chat template: output larger than %zu bytes", MAX_OUTPUT);
        return el_buf_append(c->out, n->str, n->len);
    case JN_OUTPUT: {
        jj_val v;
        EL_TRY(eval(c, s, n->a, &v));
        if (c->out->len > MAX_OUTPUT) return el_err(EDGELLM_STATUS_LIMIT, "chat template: output larger than %zu bytes", MAX_OUTPUT);
        return to_str(c, v, c->out);
    }
    case JN_BODY: return exec_body(c, s, n);
    case JN_IF: {
        jj_val v;
        EL_TRY(eval(c, s, n->a, &v));
        if (truthy(v)) return exec_body(c, s, n->b);
        if (n->c) return exec(c, s, n->c);
        return OK;
    }
    case JN_FOR: return exec_for(c, s, n);
    case JN_SET: {
        jj_val v;
        EL_TRY(eval(c, s, n->b, &v));
        return assign(c, s, n->a, v);
    }
    case JN_SETBLOCK: {
        el_buf b = {0}, *saved = c->out;
        c->out = &b;
        edgellm_status st = exec_body(c, s, n->b);
        c->out = saved;
        jj_val v = {0};
        if (st >= 0) v = buf_to_val(c, &b);
        el_buf_free(&b);
        EL_TRY(st);
        if (n->c) { /* the filter chain, applied to the block's text */
            jj_val saved_ph = c->placeholder;
            c->placeholder = v;
            st = eval(c, s, n->c, &v);
            c->placeholder = saved_ph;
            EL_TRY(st);
        }
        return assign(c, s, n->a, v);
    }
    case JN_FILTERBLOCK: {
        el_buf b = {0}, *saved = c->out;
        c->out = &b;
        edgellm_status st = exec_body(c, s, n->b);
        c->out = saved;
        jj_val v = {0};
        if (st >= 0) v = buf_to_val(c, &b);
        el_buf_free(&b);
        EL_TRY(st);
        jj_val saved_ph = c->placeholder;
        c->placeholder = v;
        st = eval(c, s, n->c, &v);
        c->placeholder = saved_ph;
        EL_TRY(st);
        return to_str(c, v, c->out);
    }
    case JN_MACRO: {
        jj_macro *m = jj_alloc(c->a, sizeof *m);
        if (!m) return oom();
        m->n = n;
        m->closure = s;
        jj_val v = {0};
        v.t = JV_MACRO;
        v.u.m = m;
        return scope_set(c, s, n->str, v);
    }
    case JN_CALLBLOCK: {
        jj_val f;
        EL_TRY(eval(c, s, n->a->a, &f));
        if (f.t != JV_MACRO) return rerr("call block needs a macro");
        jj_macro *caller = jj_alloc(c->a, sizeof *caller), *m2 = jj_alloc(c->a, sizeof *m2);
        if (!caller || !m2) return oom();
        caller->n = n->b;
        caller->closure = s;
        *m2 = *f.u.m;
        m2->caller = caller;
        args a;
        EL_TRY(eval_args(c, s, n->a, 0, &a));
        jj_val r;
        EL_TRY(call_macro(c, m2, &a, &r));
        return to_str(c, r, c->out);
    }
    case JN_WITH: {
        scope *ws = new_scope(c, s);
        if (!ws) return oom();
        for (int i = 0; i < n->nitems; i++) {
            jj_val v;
            EL_TRY(eval(c, s, n->d->items[i], &v));
            EL_TRY(assign(c, ws, n->items[i], v));
        }
        return exec_body(c, ws, n->b);
    }
    case JN_BREAK: c->ctl = 1; return OK;
    case JN_CONTINUE: c->ctl = 2; return OK;
    default: return rerr("bad statement node");
    }
}

static edgellm_status exec_body(ctx *c, scope *s, const jj_node *body) {
    for (int i = 0; i < body->nitems; i++) {
        EL_TRY(exec(c, s, body->items[i]));
        if (c->ctl) return OK;
    }
    return OK;
}

/* ---- JSON -> values ----------------------------------------------------------------------------- */
static edgellm_status from_json(ctx *c, const cJSON *j, jj_val *out) {
    if (cJSON_IsNull(j)) *out = vnone();
    else if (cJSON_IsBool(j)) *out = vbool(cJSON_IsTrue(j));
    else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        const el_jinja_num *nm = NULL;
        size_t lo = 0, hi = c->nnums;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if ((uintptr_t)c->nums[mid].node < (uintptr_t)j) lo = mid + 1;
            else hi = mid;
        }
        if (lo < c->nnums && c->nums[lo].node == (const void *)j) nm = &c->nums[lo];
        if (nm) {
            if (nm->is_float) *out = vfloat(d);
            else if (nm->exact) *out = vint(nm->ival);
            else return el_err(EDGELLM_STATUS_UNSUPPORTED, "chat template: integer in the JSON input does not fit 64 bits");
        } else if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            *out = vint((int64_t)d);
        } else {
            *out = vfloat(d);
        }
    } else if (cJSON_IsString(j)) {
        *out = jj_str(c->a, j->valuestring, strlen(j->valuestring));
        if (out->t != JV_STR) return oom();
    } else if (cJSON_IsArray(j)) {
        jj_list *l = new_list(c, (size_t)cJSON_GetArraySize(j) + 1);
        if (!l) return oom();
        for (const cJSON *e = j->child; e; e = e->next) EL_TRY(from_json(c, e, &l->v[l->n++]));
        *out = vlist(l);
    } else if (cJSON_IsObject(j)) {
        jj_dict *d = jj_alloc(c->a, sizeof *d);
        if (!d) return oom();
        for (const cJSON *e = j->child; e; e = e->next) {
            jj_val v;
            EL_TRY(from_json(c, e, &v));
            jj_val k = jj_str(c->a, e->string ? e->string : "", e->string ? strlen(e->string) : 0);
            EL_TRY(dict_set(c, d, k, v));
        }
        jj_val r = {0};
        r.t = JV_DICT;
        r.u.d = d;
        *out = r;
    } else *out = k_undef;
    return OK;
}

static void collect_number_items(const cJSON *j, const cJSON **items, size_t *k, size_t cap) {
    if (cJSON_IsNumber(j)) {
        if (*k < cap) items[*k] = j;
        (*k)++;
        return;
    }
    for (const cJSON *e = j->child; e; e = e->next) collect_number_items(e, items, k, cap);
}

edgellm_status el_jinja_scan_numbers(const char *json, const cJSON *root, el_jinja_num **nums, size_t *n, size_t *cap) {
    size_t first = *n;
    for (const char *p = json; *p;) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
            continue;
        }
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            const char *st = p;
            bool fl = false;
            while (*p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')) {
                if (*p == '.' || *p == 'e' || *p == 'E') fl = true;
                p++;
            }
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                el_jinja_num *nn = el_realloc(*nums, nc * sizeof *nn);
                if (!nn) return oom();
                *nums = nn;
                *cap = nc;
            }
            el_jinja_num *e = &(*nums)[(*n)++];
            memset(e, 0, sizeof *e);
            e->is_float = fl;
            if (!fl) {
                char buf[32];
                size_t len = (size_t)(p - st);
                if (len < sizeof buf) {
                    memcpy(buf, st, len);
                    buf[len] = 0;
                    errno = 0;
                    char *end;
                    long long v = strtoll(buf, &end, 10);
                    if (!errno && !*end) {
                        e->exact = true;
                        e->ival = v;
                    }
                }
            }
            continue;
        }
        p++;
    }
    /* tie the literals to the parsed items (both in document order) */
    size_t want = *n - first, k = 0;
    const cJSON **items = want ? el_malloc(want * sizeof *items) : NULL;
    if (want && !items) return oom();
    if (root) collect_number_items(root, items, &k, want);
    if (k != want) {
        *n = first; /* disagreement: fall back to the heuristic for this text */
    } else {
        for (size_t i = 0; i < want; i++) (*nums)[first + i].node = items[i];
    }
    el_free(items);
    return OK;
}

static int num_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const el_jinja_num *)a)->node, y = (uintptr_t)((const el_jinja_num *)b)->node;
    return x < y ? -1 : x > y;
}
void el_jinja_sort_numbers(el_jinja_num *nums, size_t n) {
    if (n > 1) qsort(nums, n, sizeof *nums, num_cmp);
}

edgellm_status el_jinja_render(const el_jinja *t, const cJSON *vars, const el_jinja_num *nums, size_t nnums, char **out) {
    *out = NULL;
    jj_arena a = {.limit = (size_t)512 << 20};
    el_buf b = {0};
    ctx c = {.a = &a, .out = &b, .nums = nums, .nnums = nnums};
    char base_probe;
    c.stack_base = (uintptr_t)&base_probe;
    edgellm_status st = OK;
    c.globals = new_scope(&c, NULL);
    if (!c.globals) {
        st = oom();
        goto done;
    }
    if (vars)
        for (const cJSON *e = vars->child; e; e = e->next) {
            jj_val v;
            st = from_json(&c, e, &v);
            if (st < 0) goto done;
            st = scope_set(&c, c.globals, jj_str(&a, e->string, strlen(e->string)).u.s.p, v);
            if (st < 0) goto done;
        }
    c.root = new_scope(&c, c.globals);
    if (!c.root) {
        st = oom();
        goto done;
    }
    st = exec_body(&c, c.root, t->root);
    if (st >= 0) {
        st = el_buf_append(&b, "", 1); /* NUL */
        if (st >= 0) {
            *out = b.data;
            b.data = NULL;
        }
    }
done:
    if (a.oom && st >= 0) st = oom();
    el_buf_free(&b);
    jj_arena_free(&a);
    return st;
}
