/*
 * cmd_generate.c - `edgellm generate` (prompt -> streamed text) and `edgellm chat` (interactive, with the
 * model's chat template).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

typedef struct gen_opts {
    const char *engine;
    edgellm_sampling_params sp;
    int64_t n;
    int64_t threads;
    bool ignore_eos;
    bool raw; /* generate: no BOS/post-processor */
    bool stats;
} gen_opts;

static const char *k_gen_help =
    "usage: edgellm generate [options] PROMPT\n"
    "  streams the continuation of PROMPT to stdout\n"
    "  --engine DIR        engine directory (default: the bundled stories260K model, built on first use)\n"
    "  -n, --max-new-tokens N   tokens to generate (default 256)\n"
    "  --temperature T     0 = greedy (default 1.0)\n"
    "  --top-k K           0 = off (default 50)\n"
    "  --top-p P           1 = off (default 0.8)\n"
    "  --seed S            same seed => same output (default 42)\n"
    "  --threads N         CPU threads (default: all cores)\n"
    "  --ignore-eos        keep generating after the end-of-sequence token\n"
    "  --no-special        do not add BOS/special tokens to the prompt\n"
    "  --stats             print prefill/decode speed to stderr at the end\n";

static const char *k_chat_help =
    "usage: edgellm chat [options]\n"
    "  interactive chat: one user message per line on stdin, replies on stdout, using the engine's chat\n"
    "  template. Commands: /reset clears the history, /quit exits.\n"
    "  --engine DIR  --system TEXT  --temperature T  --top-k K  --top-p P  --seed S  -n N  --threads N\n"
    "  --enable-thinking   pass enable_thinking=true to the template\n";

/* Parses the options shared by generate and chat; returns -1 to continue, else an exit code. Leaves
 * positional args in pos[]. */
static int parse_opts(int argc, char **argv, gen_opts *o, const char **pos, int *n_pos, const char **system,
                      bool *thinking) {
    o->engine = NULL;
    o->sp = edgellm_sampling_params_default();
    o->n = 256;
    o->threads = 0;
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int err = 0;
        double d;
        int64_t k;
        if (cli_flag_val(argc, argv, &i, "--engine", &v, &err)) {
            if (err) return 2;
            o->engine = v;
        } else if (cli_flag_val(argc, argv, &i, "--temperature", &v, &err)) {
            if (err || !cli_parse_f64(v, &d) || d < 0) return cli_usage_error("--temperature needs a number >= 0");
            o->sp.temperature = (float)d;
        } else if (cli_flag_val(argc, argv, &i, "--top-k", &v, &err)) {
            if (err || !cli_parse_i64(v, 0, 1 << 30, &k)) return cli_usage_error("--top-k needs an integer >= 0");
            o->sp.top_k = (int32_t)k;
        } else if (cli_flag_val(argc, argv, &i, "--top-p", &v, &err)) {
            if (err || !cli_parse_f64(v, &d) || d <= 0 || d > 1) return cli_usage_error("--top-p needs a number in (0, 1]");
            o->sp.top_p = (float)d;
        } else if (cli_flag_val(argc, argv, &i, "--seed", &v, &err)) {
            if (err || !cli_parse_i64(v, 0, INT64_MAX, &k)) return cli_usage_error("--seed needs an integer >= 0");
            o->sp.seed = (uint64_t)k;
        } else if (cli_flag_val(argc, argv, &i, "-n", &v, &err) ||
                   cli_flag_val(argc, argv, &i, "--max-new-tokens", &v, &err)) {
            if (err || !cli_parse_i64(v, 0, 1 << 24, &k)) return cli_usage_error("-n needs an integer >= 0");
            o->n = k;
        } else if (cli_flag_val(argc, argv, &i, "--threads", &v, &err)) {
            if (err || !cli_parse_i64(v, 0, 1024, &k)) return cli_usage_error("--threads needs an integer >= 0");
            o->threads = k;
        } else if (system && cli_flag_val(argc, argv, &i, "--system", &v, &err)) {
            if (err) return 2;
            *system = v;
        } else if (thinking && !strcmp(argv[i], "--enable-thinking")) {
            *thinking = true;
        } else if (!strcmp(argv[i], "--ignore-eos")) {
            o->ignore_eos = true;
        } else if (!strcmp(argv[i], "--no-special")) {
            o->raw = true;
        } else if (!strcmp(argv[i], "--stats")) {
            o->stats = true;
        } else if (argv[i][0] == '-' && argv[i][1] != 0 && strcmp(argv[i], "--") != 0) {
            return cli_usage_error("unknown option %s (see --help)", argv[i]);
        } else {
            if (!strcmp(argv[i], "--")) {
                for (i++; i < argc && *n_pos < 8; i++) pos[(*n_pos)++] = argv[i];
                break;
            }
            if (*n_pos >= 8) return cli_usage_error("too many arguments");
            pos[(*n_pos)++] = argv[i];
        }
    }
    return -1;
}

static int open_runtime(const gen_opts *o, edgellm_runtime **rt) {
    char def[4096];
    const char *dir = o->engine;
    if (!dir) {
        int rc = cli_default_engine(def, sizeof def);
        if (rc) return rc;
        dir = def;
    }
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = (int32_t)o->threads;
    if (edgellm_runtime_create(dir, &rp, rt) != EDGELLM_STATUS_OK) return cli_fail("loading the engine");
    if (!edgellm_runtime_tokenizer(*rt)) {
        edgellm_runtime_free(*rt);
        *rt = NULL;
        fprintf(stderr, "error: engine %s has no tokenizer (use `edgellm logits --ids` for id-level use)\n", dir);
        return 1;
    }
    return 0;
}

typedef struct stream_ctx {
    edgellm_detok_stream *ds;
    bool failed;
} stream_ctx;

static bool on_token(int32_t req, int32_t tok, void *user) {
    (void)req;
    stream_ctx *c = user;
    const char *piece = NULL;
    if (edgellm_detok_stream_push(c->ds, tok, &piece) != EDGELLM_STATUS_OK) {
        c->failed = true;
        return false;
    }
    if (piece && piece[0]) {
        fputs(piece, stdout);
        fflush(stdout);
    }
    return true;
}

/* Generates from ids, streaming text to stdout. */
static int stream_generate(edgellm_runtime *rt, const gen_opts *o, const int32_t *ids, size_t n_ids) {
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    stream_ctx c = {0};
    if (edgellm_detok_stream_create(tok, true, &c.ds) != EDGELLM_STATUS_OK) return cli_fail("detokenizer");
    /* the prompt goes through the same stream, so the first generated piece is decoded in context */
    for (size_t i = 0; i < n_ids; i++)
        if (!on_token(0, ids[i], &c)) {
            edgellm_detok_stream_free(c.ds);
            return cli_fail("detokenizing the prompt");
        }
    edgellm_request req = {0};
    req.prompt = ids;
    req.n_prompt = (int32_t)n_ids;
    req.max_new_tokens = (int32_t)o->n;
    req.ignore_eos = o->ignore_eos;
    edgellm_result res = {0};
    edgellm_status s = edgellm_runtime_generate(rt, &req, 1, &o->sp, on_token, &c, &res);
    const char *piece = NULL;
    if (s == EDGELLM_STATUS_OK && edgellm_detok_stream_flush(c.ds, &piece) == EDGELLM_STATUS_OK && piece)
        fputs(piece, stdout);
    edgellm_detok_stream_free(c.ds);
    edgellm_result_clear(&res);
    if (s != EDGELLM_STATUS_OK) return cli_fail("generation failed");
    if (c.failed) return cli_fail("detokenizing");
    return 0;
}

static void print_stats(edgellm_runtime *rt) {
    edgellm_metrics m;
    edgellm_runtime_get_metrics(rt, &m);
    fprintf(stderr, "\nprefill: %lld tokens in %.1f ms (%.1f tok/s); decode: %lld tokens in %.1f ms (%.1f tok/s)\n",
            (long long)m.prefill_tokens, m.prefill_ms, m.prefill_ms > 0 ? m.prefill_tokens * 1e3 / m.prefill_ms : 0,
            (long long)m.decode_tokens, m.decode_ms, m.decode_ms > 0 ? m.decode_tokens * 1e3 / m.decode_ms : 0);
}

int cmd_generate(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(k_gen_help, stdout);
        return 0;
    }
    gen_opts o = {0};
    const char *pos[8];
    int n_pos = 0;
    int rc = parse_opts(argc, argv, &o, pos, &n_pos, NULL, NULL);
    if (rc >= 0) return rc;
    if (n_pos > 1) return cli_usage_error("generate takes one PROMPT argument (quote it)");
    const char *prompt = n_pos ? pos[0] : "";
    edgellm_runtime *rt = NULL;
    if ((rc = open_runtime(&o, &rt))) return rc;
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (edgellm_tokenizer_encode(tok, prompt, strlen(prompt), !o.raw, &ids, &n_ids) != EDGELLM_STATUS_OK) {
        edgellm_runtime_free(rt);
        return cli_fail("tokenizing the prompt");
    }
    int32_t bos = -1;
    const int32_t *prompt_ids = ids;
    if (n_ids == 0) { /* nothing to condition on: start from BOS when the model has one */
        bos = edgellm_runtime_bos_id(rt);
        if (bos < 0) bos = edgellm_tokenizer_bos_id(tok);
        if (bos < 0) {
            edgellm_free(ids);
            edgellm_runtime_free(rt);
            return cli_usage_error("empty prompt and the model has no BOS token");
        }
        prompt_ids = &bos;
        n_ids = 1;
    }
    rc = stream_generate(rt, &o, prompt_ids, n_ids);
    edgellm_free(ids);
    if (!rc) fputc('\n', stdout);
    if (!rc && o.stats) print_stats(rt);
    edgellm_runtime_free(rt);
    return rc;
}

/* ---- chat ----------------------------------------------------------------------------------------- */

typedef struct collect_ctx {
    edgellm_detok_stream *ds;
    char *text;
    size_t len, cap;
    bool failed;
} collect_ctx;

static bool collect_piece(collect_ctx *c, const char *piece) {
    if (piece && piece[0]) {
        size_t n = strlen(piece);
        if (c->len + n + 1 > c->cap) {
            size_t cap = (c->cap + n + 1) * 2;
            char *t = realloc(c->text, cap);
            if (!t) {
                c->failed = true;
                return false;
            }
            c->text = t;
            c->cap = cap;
        }
        memcpy(c->text + c->len, piece, n + 1);
        c->len += n;
        fputs(piece, stdout);
        fflush(stdout);
    }
    return true;
}

static bool on_chat_token(int32_t req, int32_t tok, void *user) {
    (void)req;
    collect_ctx *c = user;
    const char *piece = NULL;
    if (edgellm_detok_stream_push(c->ds, tok, &piece) != EDGELLM_STATUS_OK) {
        c->failed = true;
        return false;
    }
    return collect_piece(c, piece);
}

int cmd_chat(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(k_chat_help, stdout);
        return 0;
    }
    gen_opts o = {0};
    const char *pos[8], *system = NULL;
    int n_pos = 0;
    bool thinking = false;
    int rc = parse_opts(argc, argv, &o, pos, &n_pos, &system, &thinking);
    if (rc >= 0) return rc;
    if (n_pos) return cli_usage_error("chat takes no positional arguments");
    edgellm_runtime *rt = NULL;
    if ((rc = open_runtime(&o, &rt))) return rc;
    const edgellm_chat_template *tmpl = edgellm_runtime_chat_template(rt);
    if (!tmpl) {
        edgellm_runtime_free(rt);
        fprintf(stderr, "error: this engine has no chat template; use `edgellm generate`\n");
        return 1;
    }
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    cJSON *msgs = cJSON_CreateArray();
    if (system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", system);
        cJSON_AddItemToArray(msgs, m);
    }
    char extra[64];
    snprintf(extra, sizeof extra, "{\"enable_thinking\": %s}", thinking ? "true" : "false");
    char line[65536];
    rc = 0;
    while (fgets(line, sizeof line, stdin)) {
        size_t L = strlen(line);
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = 0;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            while (cJSON_GetArraySize(msgs) > (system ? 1 : 0)) cJSON_DeleteItemFromArray(msgs, cJSON_GetArraySize(msgs) - 1);
            continue;
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", line);
        cJSON_AddItemToArray(msgs, m);
        char *mj = cJSON_PrintUnformatted(msgs), *rendered = NULL;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (edgellm_chat_template_render(tmpl, mj, true, extra, &rendered) != EDGELLM_STATUS_OK) {
            free(mj);
            rc = cli_fail("chat template");
            break;
        }
        free(mj);
        edgellm_status s = edgellm_tokenizer_encode(tok, rendered, strlen(rendered), false, &ids, &n_ids);
        edgellm_free(rendered);
        if (s != EDGELLM_STATUS_OK) {
            rc = cli_fail("tokenizing");
            break;
        }
        collect_ctx c = {0};
        if (edgellm_detok_stream_create(tok, true, &c.ds) != EDGELLM_STATUS_OK) {
            edgellm_free(ids);
            rc = cli_fail("detokenizer");
            break;
        }
        edgellm_request req = {.prompt = ids, .n_prompt = (int32_t)n_ids, .max_new_tokens = (int32_t)o.n};
        edgellm_result res = {0};
        s = edgellm_runtime_generate(rt, &req, 1, &o.sp, on_chat_token, &c, &res);
        const char *piece = NULL;
        if (s == EDGELLM_STATUS_OK && edgellm_detok_stream_flush(c.ds, &piece) == EDGELLM_STATUS_OK)
            collect_piece(&c, piece);
        edgellm_detok_stream_free(c.ds);
        edgellm_result_clear(&res);
        edgellm_free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (s != EDGELLM_STATUS_OK || c.failed) {
            free(c.text);
            rc = cli_fail("generation failed");
            break;
        }
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "role", "assistant");
        cJSON_AddStringToObject(a, "content", c.text ? c.text : "");
        cJSON_AddItemToArray(msgs, a);
        free(c.text);
    }
    cJSON_Delete(msgs);
    edgellm_runtime_free(rt);
    return rc;
}
