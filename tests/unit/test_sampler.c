/*
 * test_sampler.c - the host sampler's RNG use (el_sample_draws) and el_sample_exact, the scalar reference of
 * the device sampler: greedy = el_argmax; hand-computed draws; on random rows (V = 1000 and 151936; gaussian
 * logits at three scales, rows with many exact ties, constant rows; top_k 1/40/2000/V/off, top_p
 * 0/0.1/0.9/1, temperatures 0.7/1.5) the same ids as el_sample in >= 99.9% of the draws, every
 * disagreement on a rounding boundary (sample_check.h); el_sort_desc (top-p's candidate order) equal to qsort's.
 */
#include "runtime/sampler.h"
#include "sample_check.h"
#include "test.h"

static uint64_t st = 0x9e3779b97f4a7c15ull;
static double u01(void) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return (double)(st >> 11) * 0x1.0p-53;
}
static float normal(void) {
    double a = u01(), b = u01();
    return (float)(sqrt(-2.0 * log(a + 1e-300)) * cos(6.283185307179586 * b));
}

static void test_rng_use(void) {
    static const float TS[5] = {0.f, 0.0005f, 0.7f, 1.5f, NAN};
    static const int32_t KS[3] = {0, 1, 40};
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = normal();
    el_sampler_scratch sc;
    CHECK_OK(el_sampler_scratch_init(&sc, 64));
    for (int t = 0; t < 5; t++)
        for (int k = 0; k < 3; k++)
            for (int p = 0; p < 2; p++) {
                el_rng a, b;
                el_rng_seed(&a, 7);
                el_rng_seed(&b, 7);
                el_sample(x, 64, TS[t], KS[k], p ? 0.5f : 1.f, &a, &sc);
                if (el_sample_draws(TS[t], KS[k])) el_rng_uniform(&b);
                CHECKF(!memcmp(&a, &b, sizeof a),
                       "T %g top_k %d: el_sample's RNG use differs from el_sample_draws", TS[t], KS[k]);
            }
    CHECK(!el_sample_draws(0.f, 40) && !el_sample_draws(0.7f, 1) && el_sample_draws(0.7f, 0));
    el_sampler_scratch_free(&sc);
}

static void test_hand(void) {
    el_sampler_scratch sc;
    CHECK_OK(el_sampler_scratch_init(&sc, 8));
    /* p = {1/4, 3/4}: index order without top-k / top-p */
    const float x[2] = {0.f, logf(3.f)};
    CHECK(el_sample_exact(x, 2, 1.f, 0, 1.f, 0.2, &sc) == 0);
    CHECK(el_sample_exact(x, 2, 1.f, 0, 1.f, 0.3, &sc) == 1);
    CHECK(el_sample_exact(x, 2, 1.f, 0, 1.f, 0.0, &sc) == 0);
    CHECK(el_sample_exact(x, 2, 1.f, 0, 1.f, 0.999999, &sc) == 1);
    /* sorted (top_p < 1): {1, 0}; top_p 0.5 keeps only 1, 0.8 keeps both */
    CHECK(el_sample_exact(x, 2, 1.f, 0, 0.5f, 0.99, &sc) == 1);
    CHECK(el_sample_exact(x, 2, 1.f, 0, 0.8f, 0.7, &sc) == 1);
    CHECK(el_sample_exact(x, 2, 1.f, 0, 0.8f, 0.8, &sc) == 0);
    CHECK(el_sample_exact(x, 2, 1.f, 0, 0.f, 0.8, &sc) == 0); /* top_p 0: no truncation, sorted order */
    CHECK(el_sample_exact(x, 2, 1.f, 2, 1.f, 0.8, &sc) == 1); /* top_k = n: off, index order */
    /* ties: equal logits in index order; top-k keeps the lower indices */
    const float t4[4] = {1.f, 2.f, 2.f, 2.f};
    CHECK(el_sample_exact(t4, 4, 1.f, 2, 1.f, 0.0, &sc) == 1);
    CHECK(el_sample_exact(t4, 4, 1.f, 2, 1.f, 0.6, &sc) == 2);
    CHECK(el_sample_exact(t4, 4, 1.f, 0, 0.5f, 0.9, &sc) == 2);
    CHECK(el_sample_exact(t4, 4, 0.f, 0, 1.f, 0.5, &sc) == 1); /* greedy: first of the ties */
    const float nan0[3] = {NAN, 5.f, 1.f};
    CHECK(el_sample_exact(nan0, 3, 0.f, 0, 1.f, 0.5, &sc) == 0); /* as el_argmax */
    /* all -inf: weight 0 everywhere -> the first candidate */
    const float ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
    CHECK(el_sample_exact(ninf, 3, 1.f, 0, 1.f, 0.5, &sc) == 0);
    /* the boundary classifier rejects real differences: ids 2 apart in index order, or adjacent ids away
     * from the drawn point */
    float g[8];
    for (int i = 0; i < 8; i++)
        g[i] = normal();
    const double u = 0.5;
    const int32_t a = el_sample_exact(g, 8, 1.f, 0, 1.f, u, &sc);
    CHECK(!samp_on_boundary(g, 8, 1.f, 0, 1.f, u, a, (a + 2) % 8));
    CHECK(!samp_on_boundary(g, 8, 1.f, 0, 1.f, u, a, a < 7 ? a + 1 : a - 1));
    CHECK(el_sample_exact_shift(1) == 63 && el_sample_exact_shift(151936) == 45 &&
          el_sample_exact_shift(262144) == 45);
    el_sampler_scratch_free(&sc);
}

static void test_vs_host(int64_t V, int rows_per_set) {
    static const int32_t KS[5] = {1, 40, 2000, 0, -1};
    static const float PS[4] = {0.1f, 0.9f, 1.0f, 0.f}, TS[3] = {0.7f, 1.5f, 0.f};
    float *x = malloc(sizeof(float) * (size_t)V);
    el_sampler_scratch sc;
    CHECK_OK(el_sampler_scratch_init(&sc, V));
    int n = 0, same = 0, bound = 0, row = 0;
    for (int ki = 0; ki < 5; ki++)
        for (int pi = 0; pi < 4; pi++)
            for (int ti = 0; ti < 3; ti++)
                for (int r = 0; r < rows_per_set; r++, row++) {
                    const int kind = r % 5;
                    const float scale = kind == 0 ? 1.f : kind == 1 ? 4.f : 12.f;
                    for (int64_t i = 0; i < V; i++) {
                        float g = normal() * scale;
                        x[i] = kind == 3 ? roundf(g * 0.5f) : kind == 4 ? 0.5f : g;
                    }
                    const int32_t k = KS[ki] < 0 ? (int32_t)V : KS[ki];
                    el_rng a, b;
                    el_rng_seed(&a, 500 + (uint64_t)row);
                    el_rng_seed(&b, 500 + (uint64_t)row);
                    const double u = el_sample_draws(TS[ti], k) ? el_rng_uniform(&b) : 0.0;
                    const int32_t hs = el_sample(x, V, TS[ti], k, PS[pi], &a, &sc);
                    const int32_t ex = el_sample_exact(x, V, TS[ti], k, PS[pi], u, &sc);
                    n++;
                    if (!el_sample_draws(TS[ti], k)) CHECK(ex == el_argmax(x, V));
                    if (hs == ex) {
                        same++;
                        continue;
                    }
                    const bool on = samp_on_boundary(x, V, TS[ti], k, PS[pi], u, hs, ex);
                    bound += on;
                    CHECKF(
                        on,
                        "V %lld T %.2f top_k %d top_p %.2f u %.17g: el_sample %d, exact %d, not a boundary",
                        (long long)V, TS[ti], k, PS[pi], u, hs, ex);
                }
    CHECKF(same * 1000 >= n * 999, "V %lld: el_sample agreement %d / %d", (long long)V, same, n);
    printf("el_sample_exact vs el_sample, V %6lld: %d draws, %d same, %d on a rounding boundary\n",
           (long long)V, n, same, bound);
    el_sampler_scratch_free(&sc);
    free(x);
}

/* el_sort_desc (the top-p candidate order) against qsort with the order written out: v descending, equal
 * values (-0 and +0 too) by lower index; rows of gaussians, of many exact ties, with +-0 and +-inf */
static const float *sort_v;
static int sort_cmp(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (sort_v[x] != sort_v[y]) return sort_v[x] > sort_v[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}
static void test_sort_desc(void) {
    static const int64_t NS[4] = {1, 7, 1000, 70001};
    for (int ni = 0; ni < 4; ni++)
        for (int kind = 0; kind < 3; kind++) {
            const int64_t n = NS[ni];
            float *v = malloc(sizeof(float) * (size_t)n);
            int32_t *got = malloc(sizeof(int32_t) * (size_t)n), *want = malloc(sizeof(int32_t) * (size_t)n);
            uint32_t *aux = malloc(sizeof(uint32_t) * 3 * (size_t)n);
            for (int64_t i = 0; i < n; i++) {
                const float g = normal() * 4.f;
                v[i] = kind == 0 ? g : kind == 1 ? roundf(g) : (i % 5 == 0 ? 0.f : i % 5 == 1 ? -0.f : g);
                if (kind == 2 && i % 97 == 3) v[i] = i % 2 ? INFINITY : -INFINITY;
            }
            for (int64_t i = 0; i < n; i++)
                want[i] = (int32_t)i;
            sort_v = v;
            qsort(want, (size_t)n, sizeof(int32_t), sort_cmp);
            el_sort_desc(v, n, got, aux);
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++)
                bad += got[i] != want[i];
            CHECKF(bad == 0, "el_sort_desc n %lld kind %d: %lld positions differ from qsort", (long long)n, kind,
                   (long long)bad);
            free(v), free(got), free(want), free(aux);
        }
}

int main(void) {
    const bool quick = getenv("EDGELLM_TEST_QUICK") != NULL;
    test_sort_desc();
    test_rng_use();
    test_hand();
    test_vs_host(1000, quick ? 5 : 40);
    test_vs_host(151936, quick ? 0 : 1);
    return t_finish("test_sampler");
}
