/*
 * cmd_eval.c - `edgellm perplexity` (windowed perplexity of a text file) and `edgellm logits` (all-position
 * logits of an id sequence, written to safetensors).
 */
#include "cli.h"
#include "core/core.h"
#include "models/models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* positions evaluated (with logits) per eval call: as many as keep the logits buffer near 64 MB */
static int64_t eval_chunk(int64_t vocab) {
    int64_t c = ((int64_t)64 << 20) / (vocab * (int64_t)sizeof(float));
    return c < 16 ? 16 : c > 512 ? 512 : c;
}

static int open_rt(const char *engine, int64_t threads, edgellm_runtime **rt) {
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = (int32_t)threads;
    if (edgellm_runtime_create(engine, &rp, rt) != EDGELLM_STATUS_OK) return cli_fail("loading the engine");
    return 0;
}

/* Evaluates ids[0..n) in slot 0 from position 0 with logits at every position; calls fn per chunk of
 * rows. */
typedef int (*rows_fn)(const float *logits, int64_t row0, int64_t n_rows, int64_t vocab, void *user);
static int eval_all(edgellm_runtime *rt, const int32_t *ids, int64_t n, float *buf, rows_fn fn, void *user) {
    int32_t pos[512], slot[512];
    int8_t want[512];
    int64_t V = edgellm_runtime_vocab_size(rt);
    const int64_t chunk = eval_chunk(V);
    if (edgellm_runtime_kv_clear(rt, 0, 0) != EDGELLM_STATUS_OK) return cli_fail("kv");
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        int64_t m = n - c0 < chunk ? n - c0 : chunk;
        for (int64_t i = 0; i < m; i++) {
            pos[i] = (int32_t)(c0 + i);
            slot[i] = 0;
            want[i] = 1;
        }
        edgellm_batch b = {(int32_t)m, ids + c0, pos, slot, want};
        if (edgellm_runtime_eval(rt, &b, buf) != EDGELLM_STATUS_OK) return cli_fail("evaluation failed");
        int rc = fn(buf, c0, m, V, user);
        if (rc) return rc;
    }
    return 0;
}

/* ---- perplexity ------------------------------------------------------------------------------------ */

typedef struct ppl_ctx {
    const int32_t *targets; /* targets[i] = token following position i */
    int64_t n_targets;
    double nll;
    int64_t scored;
} ppl_ctx;

static int ppl_rows(const float *lg, int64_t row0, int64_t n_rows, int64_t V, void *user) {
    ppl_ctx *c = user;
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t p = row0 + r;
        if (p >= c->n_targets) break;
        const float *x = lg + r * V;
        double mx = -INFINITY;
        for (int64_t j = 0; j < V; j++)
            if (x[j] > mx) mx = x[j];
        double s = 0;
        for (int64_t j = 0; j < V; j++) s += exp((double)x[j] - mx);
        c->nll += log(s) + mx - (double)x[c->targets[p]];
        c->scored++;
    }
    return 0;
}

int cmd_perplexity(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: edgellm perplexity --engine DIR --file TXT [--window 512] [--threads N]\n"
               "  tokenizes the whole file without special tokens into t[0..n); for s = 0, W, 2W, ... scores\n"
               "  positions 1..len-1 of the window t[s .. min(s+W+1, n)) given only the tokens before them in\n"
               "  that window. Last line: {\"ppl\": X, \"tokens_scored\": N}\n");
        return 0;
    }
    const char *engine = NULL, *file = NULL;
    int64_t W = 512, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0;
        if (cli_flag_val(argc, argv, &i, "--engine", &v, &err)) engine = v;
        else if (cli_flag_val(argc, argv, &i, "--file", &v, &err)) file = v;
        else if (cli_flag_val(argc, argv, &i, "--window", &v, &err)) {
            if (!err && !cli_parse_i64(v, 1, 1 << 20, &W)) return cli_usage_error("--window needs an integer >= 1");
        } else if (cli_flag_val(argc, argv, &i, "--threads", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 1024, &threads)) return cli_usage_error("--threads needs an integer");
        } else
            return cli_usage_error("unknown option %s (see edgellm perplexity --help)", argv[i]);
        if (err) return 2;
    }
    if (!engine || !file) return cli_usage_error("perplexity needs --engine and --file");
    char *text = NULL;
    size_t len = 0;
    if (el_read_file(file, 0, &text, &len) < 0) return cli_fail("reading the text file");
    edgellm_runtime *rt = NULL;
    int rc = open_rt(engine, threads, &rt);
    if (rc) {
        el_free(text);
        return rc;
    }
    edgellm_engine_info info;
    edgellm_runtime_get_info(rt, &info);
    if (W > info.max_kv_cache_capacity) {
        el_free(text);
        edgellm_runtime_free(rt);
        return cli_usage_error("--window %lld needs a KV capacity of %lld, the engine has %d", (long long)W,
                               (long long)W, info.max_kv_cache_capacity);
    }
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    if (!tok) {
        el_free(text);
        edgellm_runtime_free(rt);
        fprintf(stderr, "error: engine %s has no tokenizer\n", engine);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    edgellm_status s = edgellm_tokenizer_encode(tok, text, len, false, &ids, &n);
    el_free(text);
    if (s != EDGELLM_STATUS_OK) {
        edgellm_runtime_free(rt);
        return cli_fail("tokenizing");
    }
    float *buf = malloc((size_t)eval_chunk(info.n_vocab) * (size_t)info.n_vocab * sizeof(float));
    ppl_ctx c = {0};
    double t0 = el_time_ms();
    for (int64_t s0 = 0; buf && s0 + 1 < (int64_t)n && rc == 0; s0 += W) {
        int64_t end = s0 + W + 1 < (int64_t)n ? s0 + W + 1 : (int64_t)n;
        c.targets = ids + s0 + 1;
        c.n_targets = end - s0 - 1;
        rc = eval_all(rt, ids + s0, end - s0 - 1, buf, ppl_rows, &c);
        fprintf(stderr, "\r[%lld/%zu tokens] ppl so far %.4f", (long long)(s0 + c.n_targets), n,
                c.scored ? exp(c.nll / c.scored) : 0.0);
    }
    fprintf(stderr, "\n");
    if (!buf) rc = cli_usage_error("out of memory");
    if (!rc) {
        fprintf(stderr, "scored %lld tokens in %.1f s\n", (long long)c.scored, (el_time_ms() - t0) / 1e3);
        printf("{\"ppl\": %.6f, \"tokens_scored\": %lld}\n", c.scored ? exp(c.nll / c.scored) : NAN,
               (long long)c.scored);
    }
    free(buf);
    edgellm_free(ids);
    edgellm_runtime_free(rt);
    return rc;
}

/* ---- logits ------------------------------------------------------------------------------------------ */

typedef struct logits_ctx {
    el_st_writer *w;
} logits_ctx;

static int logits_rows(const float *lg, int64_t row0, int64_t n_rows, int64_t V, void *user) {
    (void)row0;
    logits_ctx *c = user;
    if (el_st_writer_write(c->w, lg, (size_t)(n_rows * V) * sizeof(float)) < 0) return cli_fail("writing logits");
    return 0;
}

int cmd_logits(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: edgellm logits --engine DIR --ids 1,2,3 --output OUT.safetensors [--threads N]\n"
               "  writes the F32 tensor `logits` [n, vocab] with the logits of every position\n");
        return 0;
    }
    const char *engine = NULL, *ids_s = NULL, *outp = NULL;
    int64_t threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0;
        if (cli_flag_val(argc, argv, &i, "--engine", &v, &err)) engine = v;
        else if (cli_flag_val(argc, argv, &i, "--ids", &v, &err)) ids_s = v;
        else if (cli_flag_val(argc, argv, &i, "--output", &v, &err)) outp = v;
        else if (cli_flag_val(argc, argv, &i, "--threads", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 1024, &threads)) return cli_usage_error("--threads needs an integer");
        } else
            return cli_usage_error("unknown option %s (see edgellm logits --help)", argv[i]);
        if (err) return 2;
    }
    if (!engine || !ids_s || !outp) return cli_usage_error("logits needs --engine, --ids and --output");
    /* parse ids */
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    const char *p = ids_s;
    while (ids && *p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(ids);
            return cli_usage_error("--ids must be a comma-separated list of non-negative integers");
        }
        if (n == cap) {
            cap *= 2;
            int32_t *t = realloc(ids, cap * sizeof *ids);
            if (!t) break;
            ids = t;
        }
        ids[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!ids || n == 0) {
        free(ids);
        return cli_usage_error("--ids is empty");
    }
    edgellm_runtime *rt = NULL;
    int rc = open_rt(engine, threads, &rt);
    if (rc) {
        free(ids);
        return rc;
    }
    edgellm_engine_info info;
    edgellm_runtime_get_info(rt, &info);
    if ((int64_t)n > info.max_kv_cache_capacity) {
        free(ids);
        edgellm_runtime_free(rt);
        return cli_usage_error("%zu ids exceed the engine's KV capacity %d", n, info.max_kv_cache_capacity);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", outp);
    el_st_decl d = {"logits", EL_DTYPE_F32, 2, {(int64_t)n, info.n_vocab, 0, 0}};
    logits_ctx c = {0};
    float *buf = malloc((size_t)eval_chunk(info.n_vocab) * (size_t)info.n_vocab * sizeof(float));
    if (!buf || el_st_writer_open(tmp, &d, 1, NULL, &c.w) < 0) {
        rc = cli_fail("creating the output");
    } else {
        rc = eval_all(rt, ids, (int64_t)n, buf, logits_rows, &c);
        if (rc) {
            el_st_writer_abort(c.w);
        } else if (el_st_writer_close(c.w) < 0 || rename(tmp, outp) != 0) {
            remove(tmp);
            rc = cli_fail("writing the output");
        }
    }
    free(buf);
    free(ids);
    edgellm_runtime_free(rt);
    return rc;
}
