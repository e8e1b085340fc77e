/* sampler.c - greedy / temperature / top-k / top-p sampling on the host (see sampler.h). */
#include "runtime/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* xoshiro256** seeded through splitmix64 */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
void el_rng_seed(el_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t el_rng_next(el_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}
double el_rng_uniform(el_rng *r) { return (double)(el_rng_next(r) >> 11) * 0x1.0p-53; }

edgellm_status el_sampler_scratch_init(el_sampler_scratch *s, int64_t n_vocab) {
    s->idx = el_malloc((size_t)n_vocab * sizeof(int32_t));
    s->prob = el_malloc((size_t)n_vocab * sizeof(float));
    s->aux = el_malloc((size_t)n_vocab * 3 * sizeof(uint32_t));
    s->cap = n_vocab;
    if (!s->idx || !s->prob || !s->aux) {
        el_sampler_scratch_free(s);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory for the sampler");
    }
    return EDGELLM_STATUS_OK;
}
void el_sampler_scratch_free(el_sampler_scratch *s) {
    el_free(s->idx);
    el_free(s->prob);
    el_free(s->aux);
    s->idx = NULL;
    s->prob = NULL;
    s->aux = NULL;
    s->cap = 0;
}

int32_t el_argmax(const float *logits, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return (int32_t)best;
}

/* Partial selection: moves the k largest (by prob, ties by lower index) to the front, sorted. Uses a
 * min-heap of size k over the indices, O(n log k). */
static bool better(const float *v, int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); }
static void heap_down(int32_t *h, int64_t k, int64_t i, const float *v) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && better(v, h[m], h[l])) m = l;
        if (r < k && better(v, h[m], h[r])) m = r;
        if (m == i) return;
        int32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}
static int64_t top_k_select(const float *v, int64_t n, int64_t k, int32_t *out) {
    if (k > n) k = n;
    for (int64_t i = 0; i < k; i++) out[i] = (int32_t)i;
    for (int64_t i = k / 2 - 1; i >= 0; i--) heap_down(out, k, i, v);
    for (int64_t i = k; i < n; i++) {
        if (better(v, (int32_t)i, out[0])) {
            out[0] = (int32_t)i;
            heap_down(out, k, 0, v);
        }
    }
    /* heap sort: repeatedly move the worst to the end -> descending order */
    for (int64_t end = k - 1; end > 0; end--) {
        int32_t t = out[0];
        out[0] = out[end];
        out[end] = t;
        heap_down(out, end, 0, v);
    }
    return k;
}

/* u32 whose ascending order is v descending (-0 as +0, NaN after everything) */
static uint32_t desc_key(float v) {
    if (v != v) return UINT32_MAX;
    if (v == 0.0f) v = 0.0f;
    uint32_t b;
    memcpy(&b, &v, 4);
    return (b & 0x80000000u) ? b : ~(b | 0x80000000u);
}

void el_sort_desc(const float *v, int64_t n, int32_t *idx, uint32_t *aux) {
    int32_t *const out = idx;
    uint32_t *key = aux, *key2 = aux + n;
    int32_t *idx2 = (int32_t *)(aux + 2 * n);
    uint32_t hist[3][2048];
    memset(hist, 0, sizeof hist);
    for (int64_t i = 0; i < n; i++) {
        const uint32_t k = desc_key(v[i]);
        key[i] = k;
        idx[i] = (int32_t)i;
        hist[0][k & 2047]++, hist[1][(k >> 11) & 2047]++, hist[2][k >> 22]++;
    }
    for (int d = 0; d < 3; d++) { /* stable passes over 11, 11 and 10 bits: equal keys keep index order */
        const int sh = 11 * d;
        uint32_t off = 0;
        for (int b = 0; b < 2048; b++) {
            const uint32_t c = hist[d][b];
            hist[d][b] = off;
            off += c;
        }
        for (int64_t i = 0; i < n; i++) {
            const uint32_t o = hist[d][(key[i] >> sh) & 2047]++;
            key2[o] = key[i];
            idx2[o] = idx[i];
        }
        uint32_t *tk = key;
        key = key2, key2 = tk;
        int32_t *ti = idx;
        idx = idx2, idx2 = ti;
    }
    if (idx != out) memcpy(out, idx, (size_t)n * sizeof(int32_t)); /* an odd number of passes */
}

/* The candidates of both samplers: p = logits / temperature (s->prob), idx[0..m) = the top-k set in sorted
 * order, else the whole row sorted (top-p) or in index order; returns m, *mx = the largest p among them. */
static int64_t candidates(const float *logits, int64_t n, float temperature, int32_t top_k, float top_p,
                          el_sampler_scratch *s, float *mx) {
    float *p = s->prob;
    int32_t *idx = s->idx;
    for (int64_t i = 0; i < n; i++)
        p[i] = logits[i] / temperature;
    int64_t m;
    if (top_k > 0 && top_k < n) {
        m = top_k_select(p, n, top_k, idx);
    } else {
        m = n;
        if (top_p < 1.0f)
            el_sort_desc(p, n, idx, s->aux);
        else
            for (int64_t i = 0; i < n; i++)
                idx[i] = (int32_t)i;
    }
    float x = -INFINITY;
    for (int64_t i = 0; i < m; i++)
        if (p[idx[i]] > x) x = p[idx[i]];
    *mx = x;
    return m;
}

int32_t el_sample(const float *logits, int64_t n, float temperature, int32_t top_k, float top_p, el_rng *rng,
                  el_sampler_scratch *s) {
    if (!(temperature >= 1e-3f) || top_k == 1) return el_argmax(logits, n);
    const float *p = s->prob;
    const int32_t *idx = s->idx;
    float mx;
    const int64_t m = candidates(logits, n, temperature, top_k, top_p, s, &mx); /* softmax over idx[0..m) */
    double *e = (double *)s->aux; /* exp(p - mx) of candidate i, computed once (aux: 12 bytes per entry) */
    double sum = 0;
    for (int64_t i = 0; i < m; i++) {
        e[i] = exp((double)p[idx[i]] - mx);
        sum += e[i];
    }
    /* top-p on the sorted candidates */
    int64_t keep = m;
    if (top_p > 0.0f && top_p < 1.0f) {
        double cum = 0;
        for (int64_t i = 0; i < m; i++) {
            cum += e[i] / sum;
            if (cum >= top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double ksum = 0;
    for (int64_t i = 0; i < keep; i++) ksum += e[i];
    double u = el_rng_uniform(rng) * ksum, acc = 0;
    for (int64_t i = 0; i < keep; i++) {
        acc += e[i];
        if (u < acc) return idx[i];
    }
    return idx[keep - 1];
}

bool el_sample_draws(float temperature, int32_t top_k) {
    return temperature >= 1e-3f && top_k != 1;
}

int el_sample_exact_shift(int64_t n) {
    int c = 0;
    while (c < 62 && ((int64_t)1 << c) < n)
        c++;
    return 63 - c;
}

/* high 64 bits of a * b */
static uint64_t mulhi64(uint64_t a, uint64_t b) {
    uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

static uint64_t exact_weight(float p, float mx, double scale) {
    double e = exp((double)p - (double)mx);
    if (!(e >= 0.0)) e = 0.0;
    if (e > 1.0) e = 1.0;
    return (uint64_t)llrint(e * scale);
}

int32_t el_sample_exact(const float *logits, int64_t n, float temperature, int32_t top_k, float top_p,
                        double u, el_sampler_scratch *s) {
    if (!el_sample_draws(temperature, top_k)) return el_argmax(logits, n);
    const float *p = s->prob;
    const int32_t *idx = s->idx;
    float mx;
    const int64_t m = candidates(logits, n, temperature, top_k, top_p, s, &mx);
    const double scale = ldexp(1.0, el_sample_exact_shift(n));
    uint64_t sum = 0;
    for (int64_t i = 0; i < m; i++)
        sum += exact_weight(p[idx[i]], mx, scale);
    if (sum == 0) return idx[0];
    int64_t keep = m;
    uint64_t ksum = sum;
    if (top_p > 0.0f && top_p < 1.0f) {
        const uint64_t p64 = (uint64_t)ldexp((double)top_p, 64);
        const uint64_t t = mulhi64(p64, sum) + (p64 * sum != 0); /* ceil(top_p * sum) */
        uint64_t c = 0;
        for (int64_t i = 0; i < m; i++) {
            c += exact_weight(p[idx[i]], mx, scale);
            if (c >= t) {
                keep = i + 1;
                ksum = c;
                break;
            }
        }
    }
    if (!(u >= 0.0)) u = 0.0;
    uint64_t u53 = u < 1.0 ? (uint64_t)ldexp(u, 53) : ((uint64_t)1 << 53) - 1;
    const uint64_t d = mulhi64(u53 << 11, ksum); /* floor(u * ksum), < ksum */
    uint64_t c = 0;
    for (int64_t i = 0; i < keep; i++) {
        c += exact_weight(p[idx[i]], mx, scale);
        if (c > d) return idx[i];
    }
    return idx[keep - 1];
}
