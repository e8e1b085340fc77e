/* bench_tokenizer.c - single-thread tokenizer throughput (HF tokenizer.json) and load time.
 *
 *   bench_tokenizer [--text FILE] [--runs N] [NAME=PATH ...]
 *
 * Defaults: the Moby Dick text from /work/shared/data (or tests/fixtures/data if absent) and the qwen3 and
 * llama3 fixtures (tests/fixtures/tokenizers/<name>/tokenizer.json.xz, decompressed with xz into $TMPDIR).
 * Reports, per tokenizer: load time, whole-text encode MB/s (one call; first run and best of N), per-line
 * encode MB/s and the token count; "cpu" figures use this process's CPU time (robust on a busy machine). Compare with scripts/bench_tokenizer_hf.mjs (HF tokenizers 0.22). */
#include "core/core.h"
#include "edgellm/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void) { /* this process's CPU time: robust when the machine is busy */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int materialize(const char *name, const char *src, char *out, size_t cap) {
    size_t l = strlen(src);
    if (l < 3 || strcmp(src + l - 3, ".xz")) {
        snprintf(out, cap, "%s", src);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[1024], cmd[3072];
    snprintf(dir, sizeof dir, "%s/bench_tokenizer-%d-%s", tmp && *tmp ? tmp : "/tmp", (int)getpid(), name);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && xz -dc '%s' > '%s/tokenizer.json'", dir, src, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "error: cannot decompress %s\n", src);
        return 1;
    }
    snprintf(out, cap, "%s/tokenizer.json", dir);
    return 0;
}

static void bench_one(const char *name, const char *path, const char *text, size_t len, int runs) {
    edgellm_tokenizer *t = NULL;
    double t0 = el_time_ms(), c0 = cpu_ms();
    if (edgellm_tokenizer_load(path, &t) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "error: %s: %s\n", name, edgellm_last_error());
        return;
    }
    double load_ms = el_time_ms() - t0, load_cpu = cpu_ms() - c0;
    double first = 0, best = 1e30, best_cpu = 1e30;
    size_t n_tok = 0;
    for (int r = 0; r < runs; r++) {
        int32_t *ids;
        size_t n;
        t0 = el_time_ms();
        c0 = cpu_ms();
        if (edgellm_tokenizer_encode(t, text, len, false, &ids, &n) != EDGELLM_STATUS_OK) {
            fprintf(stderr, "error: %s: encode: %s\n", name, edgellm_last_error());
            break;
        }
        double ms = el_time_ms() - t0, cms = cpu_ms() - c0;
        if (r == 0) first = ms;
        if (ms < best) best = ms;
        if (cms < best_cpu) best_cpu = cms;
        n_tok = n;
        edgellm_free(ids);
    }
    /* per line (a typical request granularity) */
    double line_best = 1e30, line_cpu = 1e30;
    for (int r = 0; r < runs; r++) {
        t0 = el_time_ms();
        c0 = cpu_ms();
        const char *p = text, *end = text + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t ll = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
            int32_t *ids;
            size_t n;
            if (edgellm_tokenizer_encode(t, p, ll, false, &ids, &n) == EDGELLM_STATUS_OK) edgellm_free(ids);
            p += ll;
        }
        double ms = el_time_ms() - t0, cms = cpu_ms() - c0;
        if (ms < line_best) line_best = ms;
        if (cms < line_cpu) line_cpu = cms;
    }
    double mb = (double)len / 1e6;
    printf("%-8s load %6.1f ms (cpu %6.1f) | whole text: %zu tokens, first %.1f MB/s, best %.1f MB/s (cpu %.1f) | "
           "per line: best %.1f MB/s (cpu %.1f)\n",
           name, load_ms, load_cpu, n_tok, mb / (first / 1e3), mb / (best / 1e3), mb / (best_cpu / 1e3),
           mb / (line_best / 1e3), mb / (line_cpu / 1e3));
    edgellm_tokenizer_free(t);
}

/* repository root, from this file's path (CMake passes absolute source paths) */
static void repo_root(char *out, size_t cap) {
    snprintf(out, cap, "%s", __FILE__);
    char *p = strstr(out, "/bench/bench_tokenizer.c");
    if (p) *p = 0;
    else snprintf(out, cap, ".");
}

int main(int argc, char **argv) {
    const char *text_path = NULL;
    char root[1024], qp[1200], lp[1200], tp[1200];
    repo_root(root, sizeof root);
    int runs = 5;
    const char *names[16], *paths[16];
    int nt = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text") && i + 1 < argc) text_path = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (strchr(argv[i], '=') && nt < 16) {
            char *eq = strchr(argv[i], '=');
            *eq = 0;
            names[nt] = argv[i];
            paths[nt++] = eq + 1;
        } else {
            fprintf(stderr, "usage: bench_tokenizer [--text FILE] [--runs N] [NAME=PATH ...]\n");
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    if (!text_path) {
        snprintf(tp, sizeof tp, "%s/tests/fixtures/data/moby_dick.txt", root);
        text_path = el_file_exists("/work/shared/data/moby_dick.txt") ? "/work/shared/data/moby_dick.txt" : tp;
    }
    if (nt == 0) {
        snprintf(qp, sizeof qp, "%s/tests/fixtures/tokenizers/qwen3/tokenizer.json.xz", root);
        snprintf(lp, sizeof lp, "%s/tests/fixtures/tokenizers/llama3/tokenizer.json.xz", root);
        names[0] = "qwen3";
        paths[0] = qp;
        names[1] = "llama3";
        paths[1] = lp;
        nt = 2;
    }
    char *text;
    size_t len;
    if (el_read_file(text_path, 0, &text, &len) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "error: %s\n", edgellm_last_error());
        return 1;
    }
    printf("text: %s (%.2f MB), single thread, %d runs\n", text_path, (double)len / 1e6, runs);
    for (int i = 0; i < nt; i++) {
        char p[2048];
        if (materialize(names[i], paths[i], p, sizeof p)) continue;
        bench_one(names[i], p, text, len, runs);
    }
    el_free(text);
    return 0;
}
