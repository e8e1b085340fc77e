/*
 * chat.c - a multi-turn chat on the public C API: the engine's chat template renders the whole
 * conversation each turn, the reply is sampled with the flags' parameters and streamed to stdout
 * through the streaming detokenizer (only complete UTF-8 is printed).
 *
 *   example_chat ENGINE_DIR [--system TEXT] [--temperature T] [--top-k K] [--top-p P] [--seed S]
 *                [-n MAX_NEW_TOKENS] [--enable-thinking] [--show-prompt]
 *
 * One user message per line on stdin; each reply is printed followed by a newline. "/reset" clears
 * the history, "/quit" (or end of input) exits. --show-prompt prints each rendered prompt to stderr.
 */
#include <edgellm/edgellm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a growable string ------------------------------------------------------------------------- */
typedef struct str {
    char *p;
    size_t len, cap;
} str;

static int str_add(str *s, const char *t, size_t n) {
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *q = realloc(s->p, cap);
        if (!q) return -1;
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->len, t, n);
    s->len += n;
    s->p[s->len] = 0;
    return 0;
}

/* Appends t as a JSON string literal. */
static int str_add_json(str *s, const char *t) {
    if (str_add(s, "\"", 1)) return -1;
    for (const unsigned char *c = (const unsigned char *)t; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            if (str_add(s, esc, 2)) return -1;
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            if (str_add(s, esc, 6)) return -1;
        } else if (str_add(s, (const char *)c, 1)) {
            return -1;
        }
    }
    return str_add(s, "\"", 1);
}

/* ---- the conversation: a list of (role, content) ------------------------------------------------ */
typedef struct msg {
    char role[16];
    char *content;
} msg;

typedef struct convo {
    msg *m;
    int n, cap;
} convo;

static int convo_add(convo *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        msg *m = realloc(c->m, sizeof(msg) * (size_t)cap);
        if (!m) return -1;
        c->m = m;
        c->cap = cap;
    }
    char *dup = strdup(content);
    if (!dup) return -1;
    snprintf(c->m[c->n].role, sizeof c->m[c->n].role, "%s", role);
    c->m[c->n].content = dup;
    c->n++;
    return 0;
}

static void convo_truncate(convo *c, int n) {
    while (c->n > n) free(c->m[--c->n].content);
}

/* messages as the JSON array edgellm_chat_template_render takes */
static char *convo_json(const convo *c) {
    str s = {0};
    int bad = str_add(&s, "[", 1);
    for (int i = 0; i < c->n && !bad; i++) {
        bad |= str_add(&s, i ? ",{\"role\":" : "{\"role\":", i ? 9 : 8);
        bad |= str_add_json(&s, c->m[i].role);
        bad |= str_add(&s, ",\"content\":", 11);
        bad |= str_add_json(&s, c->m[i].content);
        bad |= str_add(&s, "}", 1);
    }
    bad |= str_add(&s, "]", 1);
    if (bad) {
        free(s.p);
        return NULL;
    }
    return s.p;
}

/* ---- streaming: the per-token callback feeds the detokenizer and prints complete text ----------- */
typedef struct stream_ctx {
    edgellm_detok_stream *ds;
    str reply;
    bool failed;
} stream_ctx;

static bool emit(stream_ctx *c, const char *piece) {
    if (!piece || !piece[0]) return true;
    fputs(piece, stdout);
    fflush(stdout);
    if (str_add(&c->reply, piece, strlen(piece))) {
        c->failed = true;
        return false;
    }
    return true;
}

static bool on_token(int32_t request_idx, int32_t token, void *user) {
    (void)request_idx;
    stream_ctx *c = user;
    const char *piece = NULL;
    if (edgellm_detok_stream_push(c->ds, token, &piece) != EDGELLM_STATUS_OK) {
        c->failed = true;
        return false; /* aborts the request */
    }
    return emit(c, piece);
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s ENGINE_DIR [--system TEXT] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
            "          [-n MAX_NEW_TOKENS] [--enable-thinking] [--show-prompt]\n",
            argv0);
    return 2;
}

static bool parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') return usage(argv[0]);
    const char *engine_dir = argv[1], *system_prompt = NULL;
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    int32_t max_new = 256;
    bool thinking = false, show_prompt = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        double v;
        if (!strcmp(a, "--enable-thinking")) {
            thinking = true;
            continue;
        }
        if (!strcmp(a, "--show-prompt")) {
            show_prompt = true;
            continue;
        }
        if (i + 1 >= argc) return usage(argv[0]);
        const char *val = argv[++i];
        if (!strcmp(a, "--system")) {
            system_prompt = val;
        } else if (!strcmp(a, "--temperature") && parse_num(val, 0, 100, &v)) {
            sp.temperature = (float)v;
        } else if (!strcmp(a, "--top-k") && parse_num(val, 0, 1 << 30, &v) && v == (int32_t)v) {
            sp.top_k = (int32_t)v;
        } else if (!strcmp(a, "--top-p") && parse_num(val, 1e-9, 1, &v)) {
            sp.top_p = (float)v;
        } else if (!strcmp(a, "--seed") && parse_num(val, 0, 9007199254740992.0, &v) && v == (double)(uint64_t)v) {
            sp.seed = (uint64_t)v;
        } else if (!strcmp(a, "-n") && parse_num(val, 0, 1 << 24, &v) && v == (int32_t)v) {
            max_new = (int32_t)v;
        } else {
            fprintf(stderr, "error: bad option or value: %s %s\n", a, val);
            return usage(argv[0]);
        }
    }

    edgellm_runtime *rt = NULL;
    if (edgellm_runtime_create(engine_dir, NULL, &rt) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "error: %s\n", edgellm_last_error());
        return 1;
    }
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    const edgellm_chat_template *tmpl = edgellm_runtime_chat_template(rt);
    if (!tok || !tmpl) {
        fprintf(stderr, "error: engine %s has no %s\n", engine_dir, !tok ? "tokenizer" : "chat template");
        edgellm_runtime_free(rt);
        return 1;
    }
    const char *extra = thinking ? "{\"enable_thinking\": true}" : "{\"enable_thinking\": false}";
    bool interactive = isatty(STDIN_FILENO);

    convo conv = {0};
    int rc = 0, base = 0;
    if (system_prompt) {
        if (convo_add(&conv, "system", system_prompt)) {
            fprintf(stderr, "error: out of memory\n");
            edgellm_runtime_free(rt);
            return 1;
        }
        base = 1;
    }
    char line[65536];
    for (;;) {
        if (interactive) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        if (!fgets(line, sizeof line, stdin)) break;
        size_t L = strlen(line);
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = 0;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            convo_truncate(&conv, base);
            continue;
        }
        if (convo_add(&conv, "user", line)) {
            fprintf(stderr, "error: out of memory\n");
            rc = 1;
            break;
        }
        /* render the whole conversation with the generation prompt, then tokenize it as is (the
         * template already holds any BOS / special tokens) */
        char *mj = convo_json(&conv), *rendered = NULL;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        edgellm_status s = mj ? edgellm_chat_template_render(tmpl, mj, true, extra, &rendered) : EDGELLM_STATUS_NO_MEMORY;
        free(mj);
        if (s == EDGELLM_STATUS_OK) {
            if (show_prompt) fprintf(stderr, "[prompt]%s[/prompt]\n", rendered);
            s = edgellm_tokenizer_encode(tok, rendered, strlen(rendered), false, &ids, &n_ids);
        }
        edgellm_free(rendered);
        stream_ctx c = {0};
        if (s == EDGELLM_STATUS_OK) s = edgellm_detok_stream_create(tok, true, &c.ds);
        edgellm_result res = {0};
        if (s == EDGELLM_STATUS_OK) {
            edgellm_request req = {.prompt = ids, .n_prompt = (int32_t)n_ids, .max_new_tokens = max_new};
            s = edgellm_runtime_generate(rt, &req, 1, &sp, on_token, &c, &res);
        }
        const char *piece = NULL;
        if (s == EDGELLM_STATUS_OK && !c.failed && edgellm_detok_stream_flush(c.ds, &piece) == EDGELLM_STATUS_OK)
            emit(&c, piece);
        fputc('\n', stdout);
        fflush(stdout);
        edgellm_detok_stream_free(c.ds);
        edgellm_result_clear(&res);
        edgellm_free(ids);
        if (s != EDGELLM_STATUS_OK || c.failed) {
            fprintf(stderr, "error: %s\n", s != EDGELLM_STATUS_OK ? edgellm_last_error() : "streaming the reply");
            free(c.reply.p);
            rc = 1;
            break;
        }
        int bad = convo_add(&conv, "assistant", c.reply.p ? c.reply.p : "");
        free(c.reply.p);
        if (bad) {
            fprintf(stderr, "error: out of memory\n");
            rc = 1;
            break;
        }
    }
    convo_truncate(&conv, 0);
    free(conv.m);
    edgellm_runtime_free(rt);
    return rc;
}
