/*
 * sampler.h - token sampling from one row of logits: greedy, temperature, top-k, top-p, seeded.
 *
 * Order (as HF generate's warpers): temperature scaling -> top-k -> softmax -> top-p (smallest set whose
 * cumulative probability >= top_p, always at least one token) -> draw with the request's own RNG, so a
 * request samples the same tokens whatever else is in its batch.
 */
#ifndef EL_SAMPLER_H
#define EL_SAMPLER_H

#include "core/core.h"

typedef struct el_rng {
    uint64_t s[4];
} el_rng;
void el_rng_seed(el_rng *r, uint64_t seed);
uint64_t el_rng_next(el_rng *r);
double el_rng_uniform(el_rng *r); /* [0, 1) with 53 random bits */

typedef struct el_sampler_scratch {
    int32_t *idx;  /* (n_vocab) */
    float *prob;   /* (n_vocab) */
    uint32_t *aux; /* (3 n_vocab): el_sort_desc, then el_sample's exp cache */
    int64_t cap;
} el_sampler_scratch;
edgellm_status el_sampler_scratch_init(el_sampler_scratch *s, int64_t n_vocab);
void el_sampler_scratch_free(el_sampler_scratch *s);

/* idx[0..n) = 0..n-1 ordered by v descending, ties (and -0 / +0) by lower index, NaN last: the candidate
 * order of top-p (a stable radix sort over 32-bit keys; aux: 3 n words of scratch). */
void el_sort_desc(const float *v, int64_t n, int32_t *idx, uint32_t *aux);

/* Index of the largest logit (lowest index on ties, as torch.argmax). */
int32_t el_argmax(const float *logits, int64_t n);
/* Samples one id. temperature < 1e-3 -> greedy. */
int32_t el_sample(const float *logits, int64_t n, float temperature, int32_t top_k, float top_p, el_rng *rng,
                  el_sampler_scratch *s);

/* Whether el_sample with these parameters draws from the RNG: exactly one el_rng_uniform per call
 * unless it is greedy (temperature < 1e-3 or NaN, or top_k == 1), which draws nothing. A backend that
 * samples on the device takes that uniform from the host so the request's RNG advances as here. */
bool el_sample_draws(float temperature, int32_t top_k);

/* Scalar reference of the device sampler (backend op `sample`, src/kernels/cuda/sample.cu), given the
 * uniform u that el_sample would draw. Same candidate set and order as el_sample (p = logit / temperature
 * in f32; top-k by p then lower index; sorted by p descending, ties by lower index, when top-k or
 * top_p < 1 is active, else index order), with the softmax mass in exact integer arithmetic:
 *   W_i = round(exp((double)p_i - mx) * 2^s), s = 63 - ceil(log2(n))  (the sum of n weights fits 64 bits)
 *   top-p: keep the shortest prefix whose cumulative weight C >= top_p * sum (exact 128-bit product);
 *   draw: the first kept candidate with C > floor(u * 2^53 * ksum / 2^53).
 * So the result is independent of summation order (the device can reduce in any order and get the same
 * id). It differs from el_sample (double sums in candidate order) only where a top-p cumulative sum or
 * the drawn point u * ksum lies within ~n * 2^-s (relative) of a cumulative boundary: a rounding tie, not
 * a different distribution. Greedy parameters give el_argmax. Total weight 0 (no finite logit): the first
 * candidate. */
int32_t el_sample_exact(const float *logits, int64_t n, float temperature, int32_t top_k, float top_p,
                        double u, el_sampler_scratch *s);
/* Fixed-point weight shift s of el_sample_exact for a vocabulary of n. */
int el_sample_exact_shift(int64_t n);

#endif
