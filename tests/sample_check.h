/*
 * sample_check.h - test helper: classifies a disagreement between el_sample (double sums in candidate order)
 * and el_sample_exact / the device sampler (exact fixed-point sums) of one row. They may only differ where
 * rounding decides: the drawn point u * ksum within 1e-8 * ksum of the cumulative sum between the two ids
 * (which must be adjacent in the candidate order), or a top-p cumulative probability within 1e-8 of top_p.
 * Sums here in long double, in the CPU's candidate order (p descending, lower index first; index order
 * when neither top-k nor top_p < 1 is active).
 */
#ifndef EL_TEST_SAMPLE_CHECK_H
#define EL_TEST_SAMPLE_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const float *samp_cmp_p;
static int samp_cmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float px = samp_cmp_p[x], py = samp_cmp_p[y];
    if (px > py || (px == py && x < y)) return -1;
    if (py > px || (px == py && y < x)) return 1;
    return 0;
}

/* Whether ids a (el_sample) and b (exact) of row x differ only by a rounding boundary. */
static bool samp_on_boundary(const float *x, int64_t n, float T, int32_t k, float tp, double u, int32_t a,
                             int32_t b) {
    float *p = malloc(sizeof(float) * (size_t)n);
    int32_t *ord = malloc(sizeof(int32_t) * (size_t)n);
    long double *c = malloc(sizeof(long double) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        p[i] = x[i] / T, ord[i] = (int32_t)i;
    const bool topk = k > 0 && k<n, topp = tp> 0.f && tp < 1.f;
    int64_t m = n;
    if (topk || tp < 1.f) {
        samp_cmp_p = p;
        qsort(ord, (size_t)n, sizeof(int32_t), samp_cmp);
        if (topk) m = k;
    }
    float mx = -INFINITY;
    for (int64_t i = 0; i < m; i++)
        if (p[ord[i]] > mx) mx = p[ord[i]];
    long double acc = 0;
    for (int64_t i = 0; i < m; i++)
        c[i] = acc += expl((long double)p[ord[i]] - mx);
    const long double sum = c[m - 1];
    bool ok = false;
    int64_t keep = m;
    for (int64_t i = 0; topp && i < m; i++) {
        if (fabsl(c[i] / sum - tp) <= 1e-8L) ok = true;
        if (c[i] / sum >= tp && keep == m) keep = i + 1;
    }
    int64_t pa = -1, pb = -1;
    for (int64_t i = 0; i < m; i++) {
        if (ord[i] == a) pa = i;
        if (ord[i] == b) pb = i;
    }
    if (!ok && pa >= 0 && pb >= 0 && (pa - pb == 1 || pb - pa == 1)) {
        const long double ks = c[keep - 1], t = (long double)u * ks;
        ok = fabsl(c[pa < pb ? pa : pb] - t) <= 1e-8L * ks;
    }
    free(p), free(ord), free(c);
    return ok;
}

#endif
