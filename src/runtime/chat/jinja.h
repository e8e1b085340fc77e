/*
 * jinja.h - a small Jinja2 engine for chat templates (internal to src/runtime/chat).
 *
 * Behaves as jinja2 3.x ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
 * extensions=[loopcontrols, transformers' {% generation %}]) with the globals HF transformers adds
 * (raise_exception, strftime_now) and its tojson filter (json.dumps, ensure_ascii=False). Checked against
 * jinja2 by tests/chat (goldens + tests/chat/fuzz_engine.py).
 *
 * Supported: {{ }}, {% %}, {# #}, whitespace control (- + trim_blocks lstrip_blocks), raw, if/elif/else,
 * for (else, `if` filter, unpacking, loop.*, break/continue), set (incl. namespace attributes, tuples,
 * block set), macro (defaults, varargs/kwargs, caller), call blocks, filter blocks, with, generation; Python values and
 * operators, str/repr as Python prints them; the filters and tests listed in jinja_eval.c (k_filters,
 * k_tests); str and dict methods; range, dict, namespace.
 * Refused at parse (UNSUPPORTED): include/import/extends/block/autoescape/do and other tags, unknown
 * filters/tests, recursive loops, *args in calls. Refused at render (UNSUPPORTED) rather than printing
 * something else: printing a generator (Python prints an address), integers beyond int64, str.format
 * specs, rare full-case mappings, cycler/joiner/lipsum.
 * Everything a render evaluates lives in one arena; loops, output, macro depth and stack are bounded (LIMIT).
 */
#ifndef EL_JINJA_H
#define EL_JINJA_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* ---- arena ------------------------------------------------------------------------------------- */
typedef struct jj_arena_blk jj_arena_blk;
typedef struct jj_arena {
    jj_arena_blk *head;
    size_t total, limit; /* limit 0 = none */
    bool oom;
} jj_arena;
void *jj_alloc(jj_arena *a, size_t n); /* zeroed; NULL on OOM / limit (a->oom set) */
void jj_arena_free(jj_arena *a);

/* ---- values ------------------------------------------------------------------------------------ */
typedef enum jj_type {
    JV_UNDEF = 0,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_DICT,
    JV_NS,    /* namespace(): a dict whose attributes can be assigned */
    JV_MACRO,
    JV_FUNC,  /* builtin global or bound method */
    JV_LOOP,
} jj_type;

struct jj_list;
struct jj_dict;
struct jj_node;
struct jj_func;
struct jj_loop;
struct jj_macro;

typedef struct jj_val {
    uint8_t t;
    uint8_t tuple; /* JV_LIST printed as a tuple */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct jj_list *l;
        struct jj_dict *d;
        struct jj_macro *m;
        struct jj_func *fn;
        struct jj_loop *loop;
    } u;
} jj_val;

/* Python objects that behave as lists here but print / measure differently */
enum { JL_LIST = 0, JL_GEN, JL_ITEMS, JL_KEYS, JL_VALUES };

typedef struct jj_list {
    jj_val *v;
    size_t n, cap;
    bool is_range; /* made by range(): prints as range(start, stop[, step]) */
    uint8_t kind;  /* JL_* : what Python object this list stands for */
    const char *deferred_err; /* JL_GEN whose computation failed: raised when it is consumed (lazy) */
    int64_t r_start, r_stop, r_step;
} jj_list;

typedef struct jj_dict {
    jj_val *k, *v;
    size_t n, cap;
} jj_dict;

/* ---- AST --------------------------------------------------------------------------------------- */
typedef enum jj_kind {
    /* expressions */
    JN_LIT,
    JN_NAME,
    JN_LIST,
    JN_TUPLE,
    JN_DICT, /* items: k0, v0, k1, v1, ... */
    JN_GETATTR,
    JN_GETITEM,
    JN_SLICE, /* a, b, c: start, stop, step (NULL = absent) */
    JN_CALL,
    JN_FILTER,
    JN_TEST,
    JN_BINOP,
    JN_NEG,
    JN_POS,
    JN_NOT,
    JN_AND,
    JN_OR,
    JN_COMPARE, /* a op b (chains are split into AND of compares) */
    JN_COND,    /* a if b else c */
    JN_CONCAT,
    /* statements */
    JN_TEXT,
    JN_OUTPUT,
    JN_BODY,
    JN_IF,
    JN_FOR,
    JN_SET,
    JN_SETBLOCK,
    JN_MACRO,
    JN_CALLBLOCK,
    JN_WITH, /* items: assignment targets, names unused; d: JN_BODY of values (items) ; b: body */
    JN_FILTERBLOCK, /* b: body; c: filter chain applied to the placeholder d */
    JN_BREAK,
    JN_CONTINUE,
} jj_kind;

enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN };

typedef struct jj_node {
    int kind;
    int line;
    int op;    /* operator token / flags (JN_LIT: 1 = placeholder for a block's rendered text) */
    bool neg;  /* `is not` / `not in` */
    struct jj_node *a, *b, *c, *d;
    struct jj_node **items; /* args, list items, body statements */
    const char **names;     /* kwarg names (NULL for positional), macro params */
    int nitems;
    const char *str; /* name, text, filter/test/attribute name */
    size_t len;
    jj_val lit;
} jj_node;

typedef struct el_jinja {
    jj_arena arena;
    jj_node *root;
} el_jinja;

/* Parses src. UNSUPPORTED for a construct the engine lacks, FORMAT for a syntax error; the message
 * names the line. */
edgellm_status el_jinja_parse(const char *src, el_jinja **out);
void el_jinja_free(el_jinja *t);

/* How each number literal of the JSON source was written (cJSON keeps only a double): Python's json
 * makes "1.0" a float and "1" an int, exactly. */
typedef struct el_jinja_num {
    const void *node; /* the cJSON number item it belongs to */
    bool is_float;
    bool exact; /* integer literal that fits int64 (ival) */
    int64_t ival;
} el_jinja_num;
/* Scans JSON text (already parsed into root) for its number literals and ties each to its cJSON item;
 * appends to *nums (el_realloc'd). On any disagreement the entries of this text are dropped. */
edgellm_status el_jinja_scan_numbers(const char *json, const struct cJSON *root, el_jinja_num **nums, size_t *n,
                                     size_t *cap);
/* Sorts the table for lookup by item (call once before rendering). */
void el_jinja_sort_numbers(el_jinja_num *nums, size_t n);

/* Renders with the variables of `vars` (a JSON object; JSON null -> None). nums: sorted table of number
 * items (numbers not in it: integral doubles become ints). Runtime errors (raise_exception, type
 * errors) -> INVALID_ARG. *out freed with el_free. */
edgellm_status el_jinja_render(const el_jinja *t, const struct cJSON *vars, const el_jinja_num *nums, size_t nnums,
                               char **out);

/* shared helpers (jinja_value.c) */
jj_val jj_str(jj_arena *a, const char *p, size_t n);
bool jj_known_filter(const char *name);
bool jj_known_test(const char *name);

#endif
