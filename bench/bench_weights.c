/*
 * bench_weights.c - where the CPU backend's weights live, A/B in one process: the engine loaded twice, once
 * read in place from the file mapping (EDGELLM_CPU_WEIGHTS=map) and once copied into transparent-huge-page
 * memory (=copy), decode alternating between the two (AB, BA, AB, ...) with the streaming-read bandwidth
 * measured around every round, so both variants see the same bandwidth state of the machine.
 *
 *   bench_weights ENGINE_DIR [rounds 6] [gen 32] [threads 2]
 *
 * Prints the load time and resident-set growth of each load, then one line per round (decode tok/s of each
 * variant, copy / map, the bandwidth before and after) and the medians over the rounds whose two bandwidth
 * samples are both within 15% of the run's highest sample ("top-bandwidth rounds": this machine flips between
 * ~45-50 and ~80-86 GB/s states) and over the others.
 */
#include "edgellm/edgellm.h"
#include "membw_common.h"

#include <unistd.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / 1e6;
}

static double decode_tok_s(edgellm_runtime *rt, const edgellm_request *req) {
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0;
    edgellm_result res = {0};
    edgellm_runtime_reset_metrics(rt);
    if (edgellm_runtime_generate(rt, req, 1, &sp, NULL, NULL, &res) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "generate: %s\n", edgellm_last_error());
        exit(1);
    }
    edgellm_result_clear(&res);
    edgellm_metrics m;
    edgellm_runtime_get_metrics(rt, &m);
    return m.decode_ms > 0 ? m.decode_tokens * 1e3 / m.decode_ms : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_weights ENGINE_DIR [rounds 6] [gen 32] [threads 2]\n");
        return 2;
    }
    const int rounds = argc > 2 ? atoi(argv[2]) : 6, gen = argc > 3 ? atoi(argv[3]) : 32;
    const int threads = argc > 4 ? atoi(argv[4]) : 2;
    if (rounds < 1 || rounds > 1000 || gen < 1 || threads < 1) {
        fprintf(stderr, "bench_weights: rounds 1..1000, gen >= 1, threads >= 1\n");
        return 2;
    }
    const char *mode[2] = {"map", "copy"};
    edgellm_runtime *rt[2] = {NULL, NULL};
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = threads;
    rp.verify_checksums = false;
    for (int v = 0; v < 2; v++) {
        setenv("EDGELLM_CPU_WEIGHTS", mode[v], 1);
        const double r0 = rss_mb(), t0 = el_time_ms();
        if (edgellm_runtime_create(argv[1], &rp, &rt[v]) != EDGELLM_STATUS_OK) {
            fprintf(stderr, "loading %s: %s\n", argv[1], edgellm_last_error());
            return 1;
        }
        printf("%-4s: load %.0f ms, RSS +%.0f MB\n", mode[v], el_time_ms() - t0, rss_mb() - r0);
    }
    unsetenv("EDGELLM_CPU_WEIGHTS");
    int32_t prompt[16];
    for (int i = 0; i < 16; i++) prompt[i] = 1 + i * 37;
    edgellm_request req = {.prompt = prompt, .n_prompt = 16, .max_new_tokens = 4, .ignore_eos = true};
    for (int v = 0; v < 2; v++) decode_tok_s(rt[v], &req); /* warm-up: faults the mapping's pages in */
    req.max_new_tokens = gen;
    el_threadpool *tp = el_threadpool_create(threads);
    double *tok = calloc((size_t)rounds * 4, sizeof(double)), *bw = tok + 2 * rounds;
    if (!tp || !tok) return 1;
    double bw_max = 0;
    for (int r = 0; r < rounds; r++) {
        bw[2 * r] = membw_measure(tp, 1024, 5);
        for (int k = 0; k < 2; k++) {
            const int v = (r + k) % 2; /* map first in even rounds, copy first in odd ones */
            tok[2 * r + v] = decode_tok_s(rt[v], &req);
        }
        bw[2 * r + 1] = membw_measure(tp, 1024, 5);
        for (int k = 0; k < 2; k++) bw_max = bw[2 * r + k] > bw_max ? bw[2 * r + k] : bw_max;
        printf("round %d: map %.2f tok/s, copy %.2f tok/s, copy/map %.3f; bandwidth %.1f -> %.1f GB/s\n", r + 1,
               tok[2 * r], tok[2 * r + 1], tok[2 * r + 1] / tok[2 * r], bw[2 * r], bw[2 * r + 1]);
        fflush(stdout);
    }
    /* per state (0 other rounds, 1 high state): map tok/s, copy tok/s, copy / map */
    double *st = calloc((size_t)rounds * 6, sizeof(double));
    int n[2] = {0, 0};
    if (!st) return 1;
    for (int r = 0; r < rounds; r++) {
        const int h = bw[2 * r] >= 0.85 * bw_max && bw[2 * r + 1] >= 0.85 * bw_max;
        double *col = st + (size_t)h * 3 * rounds;
        col[n[h]] = tok[2 * r];
        col[rounds + n[h]] = tok[2 * r + 1];
        col[2 * rounds + n[h]] = tok[2 * r + 1] / tok[2 * r];
        n[h]++;
    }
    for (int h = 1; h >= 0; h--) {
        double *col = st + (size_t)h * 3 * rounds;
        printf("%s: %d rounds, medians map %.2f tok/s, copy %.2f tok/s, copy/map %.3f\n",
               h ? "top-bandwidth rounds" : "other rounds", n[h], median(col, n[h]), median(col + rounds, n[h]),
               median(col + 2 * rounds, n[h]));
    }
    printf("top-bandwidth rounds: both samples >= %.1f GB/s (85%% of the highest, %.1f)\n", 0.85 * bw_max, bw_max);
    free(st);
    free(tok);
    el_threadpool_free(tp);
    edgellm_runtime_free(rt[0]);
    edgellm_runtime_free(rt[1]);
    return 0;
}
