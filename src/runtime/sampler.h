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
    int32_t *idx; /* (n_vocab) */
    float *prob;  /* (n_vocab) */
    int64_t cap;
} el_sampler_scratch;
edgellm_status el_sampler_scratch_init(el_sampler_scratch *s, int64_t n_vocab);
void el_sampler_scratch_free(el_sampler_scratch *s);

/* Index of the largest logit (lowest index on ties, as torch.argmax). */
int32_t el_argmax(const float *logits, int64_t n);
/* Samples one id. temperature < 1e-3 -> greedy. */
int32_t el_sample(const float *logits, int64_t n, float temperature, int32_t top_k, float top_p, el_rng *rng,
                  el_sampler_scratch *s);

#endif
