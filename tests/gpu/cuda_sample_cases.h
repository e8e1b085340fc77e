/*
 * cuda_sample_cases.h - test_cuda_ops cases of the backend op `sample` (src/kernels/cuda/sample.cu), included
 * by test_cuda_ops.c (uses its `be`). Random logit rows (V = 151936, 128256, 1000; gaussian at several
 * scales, rows with many exact ties, constant rows, a NaN for greedy), top_k 1/40/2000/V/off, top_p
 * 0.1/0.9/1.0, temperatures 0.7/1.5 and greedy, the uniform of each row drawn from an el_rng as el_sample
 * draws it. Checks:
 *   - ids identical to el_sample_exact (the scalar reference of the op) on both device paths (shared-memory
 *     candidates and the whole-row radix selects, elk_sample_global_only = 1), greedy identical to el_argmax;
 *   - ids equal to el_sample (the host sampler, double sums) in >= 99.9% of the draws, and every
 *     disagreement on a rounding boundary: the drawn point u * ksum within 1e-8 * ksum of the cumulative
 *     sum between the two ids (adjacent in the candidate order), or a top-p cumulative within 1e-8 of top_p.
 * Prints the op time for 1 and 8 rows of V = 151936.
 */
#include "runtime/sampler.h"
#include "sample_check.h"

extern int elk_sample_global_only; /* src/kernels/cuda/sample.cu */

static uint64_t samp_state = 0x243f6a8885a308d3ull;
static double samp_u01(void) {
    samp_state ^= samp_state << 13;
    samp_state ^= samp_state >> 7;
    samp_state ^= samp_state << 17;
    return (double)(samp_state >> 11) * 0x1.0p-53;
}
static float samp_normal(void) {
    double a = samp_u01(), b = samp_u01();
    return (float)(sqrt(-2.0 * log(a + 1e-300)) * cos(6.283185307179586 * b));
}

static void test_sample_vocab(int64_t V) {
    static const int32_t SAMP_KS[5] = {1, 40, 2000, 0, -1}; /* -1: top_k = V */
    static const float SAMP_PS[3] = {0.1f, 0.9f, 1.0f}, SAMP_TS[3] = {0.7f, 1.5f, 0.f};
    const int R = V > 10000 ? 5 : 40; /* rows per parameter set: gaussian x1 / x4 / x12, ties, constant */
    const int n_sets = 5 * 3 * 3, rows = n_sets * R;
    float *lg = malloc(sizeof(float) * (size_t)rows * (size_t)V);
    el_sample_row *par = calloc((size_t)rows, sizeof *par);
    int32_t *got = malloc(sizeof(int32_t) * (size_t)rows), *got2 = malloc(sizeof(int32_t) * (size_t)rows);
    el_sampler_scratch sc;
    CHECK_OK(el_sampler_scratch_init(&sc, V));
    int row = 0;
    for (int ki = 0; ki < 5; ki++)
        for (int pi = 0; pi < 3; pi++)
            for (int ti = 0; ti < 3; ti++)
                for (int r = 0; r < R; r++, row++) {
                    float *x = lg + (size_t)row * V;
                    const int kind = r % 5;
                    const float scale = kind == 0 ? 1.f : kind == 1 ? 4.f : 12.f;
                    for (int64_t i = 0; i < V; i++) {
                        float g = samp_normal() * scale;
                        x[i] = kind == 3 ? roundf(g * 0.5f) : kind == 4 ? 0.5f : g;
                    }
                    if (kind == 3 && r % 2) x[0] = NAN; /* greedy: index 0 NaN -> 0; sampled sets skip it */
                    par[row].temperature = SAMP_TS[ti];
                    par[row].top_k = SAMP_KS[ki] < 0 ? (int32_t)V : SAMP_KS[ki];
                    par[row].top_p = SAMP_PS[pi];
                    el_rng rg;
                    el_rng_seed(&rg, 1000 + (uint64_t)row);
                    par[row].u = el_sample_draws(SAMP_TS[ti], par[row].top_k) ? el_rng_uniform(&rg) : 0.0;
                    if (kind == 3 && r % 2 && el_sample_draws(SAMP_TS[ti], par[row].top_k)) x[0] = 1.f;
                }
    float *dl = NULL;
    el_sample_row *dp = NULL;
    int32_t *di = NULL;
    CHECK_OK(be->iface.alloc(be, sizeof(float) * (size_t)rows * (size_t)V, (void **)&dl));
    CHECK_OK(be->iface.alloc(be, sizeof *par * (size_t)rows, (void **)&dp));
    CHECK_OK(be->iface.alloc(be, sizeof(int32_t) * (size_t)rows, (void **)&di));
    CHECK_OK(be->iface.upload(be, dl, lg, sizeof(float) * (size_t)rows * (size_t)V));
    CHECK_OK(be->iface.upload(be, dp, par, sizeof *par * (size_t)rows));
    CHECK_OK(be->iface.sample(be, dl, rows, V, V, dp, di));
    CHECK_OK(be->iface.download(be, got, di, sizeof(int32_t) * (size_t)rows));
    elk_sample_global_only = 1;
    CHECK_OK(be->iface.sample(be, dl, rows, V, V, dp, di));
    CHECK_OK(be->iface.download(be, got2, di, sizeof(int32_t) * (size_t)rows));
    elk_sample_global_only = 0;
    int n_exact = 0, n_exact2 = 0, n_host = 0, n_bound = 0, n_draws = 0;
    for (int i = 0; i < rows; i++) {
        const float *x = lg + (size_t)i * V;
        const el_sample_row *q = &par[i];
        const int32_t ex = el_sample_exact(x, V, q->temperature, q->top_k, q->top_p, q->u, &sc);
        el_rng rg;
        el_rng_seed(&rg, 1000 + (uint64_t)i);
        const int32_t hs = el_sample(x, V, q->temperature, q->top_k, q->top_p, &rg, &sc);
        const bool draws = el_sample_draws(q->temperature, q->top_k);
        n_exact += got[i] == ex;
        n_exact2 += got2[i] == ex;
        CHECKF(got[i] == ex, "V=%lld row %d (T %.2f k %d p %.2f u %.17g): device id %d, el_sample_exact %d",
               (long long)V, i, q->temperature, q->top_k, q->top_p, q->u, got[i], ex);
        CHECKF(got2[i] == ex, "V=%lld row %d whole-row path: device id %d, el_sample_exact %d", (long long)V,
               i, got2[i], ex);
        if (!draws)
            CHECKF(ex == el_argmax(x, V), "V=%lld row %d: greedy reference is not el_argmax", (long long)V,
                   i);
        n_draws++;
        if (hs == ex) {
            n_host++;
        } else {
            const bool b = draws && samp_on_boundary(x, V, q->temperature, q->top_k, q->top_p, q->u, hs, ex);
            n_bound += b;
            CHECKF(
                b,
                "V=%lld row %d (T %.2f k %d p %.2f u %.17g): el_sample %d, exact %d, not a rounding boundary",
                (long long)V, i, q->temperature, q->top_k, q->top_p, q->u, hs, ex);
        }
    }
    CHECKF(n_host * 1000 >= n_draws * 999, "V=%lld: el_sample agreement %d / %d < 99.9%%", (long long)V,
           n_host, n_draws);
    printf("op sample V=%-6lld %4d rows: device = exact %d (whole-row path %d), = el_sample %d, boundary %d "
           "%s\n",
           (long long)V, rows, n_exact, n_exact2, n_host, n_bound,
           n_exact == rows && n_exact2 == rows && n_host + n_bound == rows ? "ok" : "FAIL");
    /* op time on rows 0..7 of the set (gaussian x1 / x4 / x12, ties, constant): greedy, top-k 40 + top-p 0.9,
     * top-p 0.9 alone (its flat rows take the whole-row path); then top-p 0.9 alone on one peaked row (row 2:
     * gaussian x12, whose kept prefix lies in the first candidates); temperature 0.7 alone (index-order draw) */
    if (V == 151936) {
        static const char *what[5] = {"greedy", "top_k 40 top_p 0.9", "top_p 0.9", "top_p 0.9 peaked row",
                                      "temperature only"};
        for (int c = 0; c < 5; c++)
            for (int nr = 1; nr <= (c == 3 ? 1 : 8); nr *= 8) {
                const float *rows0 = c == 3 ? dl + 2 * V : dl;
                el_sample_row q[8];
                for (int i = 0; i < nr; i++) {
                    q[i] =
                        (el_sample_row){c ? 0.7f : 0.f, c == 1 ? 40 : 0, c ? 0.9f : 1.f, 0, 0.37 + 0.05 * i};
                    if (c == 3) q[i].temperature = 1.0f;
                    if (c == 4) q[i].top_p = 1.0f;
                }
                CHECK_OK(be->iface.upload(be, dp, q, sizeof q[0] * (size_t)nr));
                CHECK_OK(be->iface.sample(be, rows0, nr, V, V, dp, di));
                CHECK_OK(be->iface.sync(be));
                const int reps = 50;
                double t0 = el_time_ms();
                for (int i = 0; i < reps; i++)
                    CHECK_OK(be->iface.sample(be, rows0, nr, V, V, dp, di));
                CHECK_OK(be->iface.sync(be));
                printf("op sample V=151936 %d row(s) %-20s %8.1f us\n", nr, what[c],
                       (el_time_ms() - t0) * 1e3 / reps);
            }
    }
    be->iface.dealloc(be, dl);
    be->iface.dealloc(be, dp);
    be->iface.dealloc(be, di);
    el_sampler_scratch_free(&sc);
    free(lg), free(par), free(got), free(got2);
}

static void test_sample(void) {
    CHECK(be->iface.sample != NULL);
    if (!be->iface.sample) return;
    test_sample_vocab(1000);
    test_sample_vocab(128256);
    test_sample_vocab(151936);
    /* argument errors */
    CHECK(be->iface.sample(be, NULL, 1, 0, 0, NULL, NULL) == EDGELLM_STATUS_INVALID_ARG);
    CHECK(be->iface.sample(be, NULL, 1, 10, 5, NULL, NULL) == EDGELLM_STATUS_INVALID_ARG);
}
