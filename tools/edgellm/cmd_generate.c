/*
 * cmd_generate.c - `edgellm generate` (prompt -> streamed text) and `edgellm chat` (interactive, with the
 * model's chat template).
 */
#include "cli.h"
#include "core/core.h"

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

static bool print_piece(const char *piece, void *user) {
    (void)user;
    fputs(piece, stdout);
    fflush(stdout);
    return true;
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
    if ((rc = cli_open_runtime(o.engine, o.threads, &rt))) return rc;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (cli_prompt_ids(rt, prompt, !o.raw, &ids, &n_ids) != EDGELLM_STATUS_OK) {
        edgellm_runtime_free(rt);
        return cli_fail("tokenizing the prompt");
    }
    /* the prompt goes through the same stream, so the first generated piece is decoded in context */
    cli_gen_req gr = {.ids = ids, .n_ids = n_ids, .max_new_tokens = (int32_t)o.n, .ignore_eos = o.ignore_eos,
                      .prime = true, .emit_prompt = true};
    edgellm_result res;
    rc = 0;
    if (cli_generate_text(rt, &gr, &o.sp, print_piece, NULL, &res) != EDGELLM_STATUS_OK)
        rc = cli_fail("generation failed");
    edgellm_result_clear(&res);
    edgellm_free(ids);
    if (!rc) fputc('\n', stdout);
    if (!rc && o.stats) print_stats(rt);
    edgellm_runtime_free(rt);
    return rc;
}

/* ---- chat ----------------------------------------------------------------------------------------- */

/* the reply so far, echoed to stdout */
static bool collect_piece(const char *piece, void *user) {
    print_piece(piece, NULL);
    return el_buf_append_str(user, piece) == EDGELLM_STATUS_OK;
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
    if ((rc = cli_open_runtime(o.engine, o.threads, &rt))) return rc;
    const edgellm_chat_template *tmpl = edgellm_runtime_chat_template(rt);
    if (!tmpl) {
        edgellm_runtime_free(rt);
        fprintf(stderr, "error: this engine has no chat template; use `edgellm generate`\n");
        return 1;
    }
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
        char *mj = cJSON_PrintUnformatted(msgs);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        edgellm_status s = mj ? cli_chat_ids(rt, mj, extra, &ids, &n_ids) : EDGELLM_STATUS_NO_MEMORY;
        free(mj);
        if (s != EDGELLM_STATUS_OK) {
            rc = cli_fail("chat template");
            break;
        }
        el_buf reply = {0};
        cli_gen_req gr = {.ids = ids, .n_ids = n_ids, .max_new_tokens = (int32_t)o.n};
        edgellm_result res;
        s = cli_generate_text(rt, &gr, &o.sp, collect_piece, &reply, &res);
        bool aborted = res.finish == EDGELLM_FINISH_ABORTED;
        edgellm_result_clear(&res);
        edgellm_free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (s != EDGELLM_STATUS_OK || aborted) {
            el_buf_free(&reply);
            rc = cli_fail("generation failed");
            break;
        }
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "role", "assistant");
        cJSON_AddStringToObject(a, "content", reply.data ? reply.data : "");
        cJSON_AddItemToArray(msgs, a);
        el_buf_free(&reply);
    }
    cJSON_Delete(msgs);
    edgellm_runtime_free(rt);
    return rc;
}
