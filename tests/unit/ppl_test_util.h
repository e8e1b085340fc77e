/* ppl_test_util.h - perplexity of an engine over a token file as `edgellm perplexity` computes it, for the
 * accuracy tests (test_quant_export, test_kv_fp8). Needs models_test_util.h (tu_read) included first. */
#ifndef PPL_TEST_UTIL_H
#define PPL_TEST_UTIL_H

#include "edgellm/edgellm.h"

#include <math.h>

static inline int32_t *tu_tokenize_file(const char *engine, const char *file, size_t max_tok, size_t *n) {
    edgellm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    *n = 0;
    if (edgellm_tokenizer_load(engine, &tok) != EDGELLM_STATUS_OK) return NULL;
    size_t len;
    char *text = tu_read(file, &len);
    if (text && edgellm_tokenizer_encode(tok, text, len, false, &ids, n) != EDGELLM_STATUS_OK) ids = NULL;
    el_free(text);
    edgellm_tokenizer_free(tok);
    if (*n > max_tok) *n = max_tok;
    return ids;
}

/* Perplexity with windows of 512 as `edgellm perplexity` (prefill chunks of 64 tokens). */
static inline double tu_perplexity(const char *engine, const int32_t *ids, size_t n) {
    edgellm_runtime *rt = NULL;
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = 2;
    if (edgellm_runtime_create(engine, &rp, &rt) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "runtime %s: %s\n", engine, edgellm_last_error());
        return INFINITY;
    }
    const int64_t V = edgellm_runtime_vocab_size(rt), W = 512;
    float *lg = malloc(sizeof(float) * (size_t)(V * 64));
    int32_t pos[64], slot[64] = {0};
    int8_t want[64];
    double nll = 0;
    int64_t scored = 0;
    for (size_t s0 = 0; s0 + 1 < n; s0 += (size_t)W) {
        size_t end = s0 + (size_t)W + 1 < n ? s0 + (size_t)W + 1 : n;
        edgellm_runtime_kv_clear(rt, 0, 0);
        for (size_t c0 = s0; c0 + 1 < end; c0 += 64) {
            size_t m = end - 1 - c0 < 64 ? end - 1 - c0 : 64;
            for (size_t i = 0; i < m; i++) {
                pos[i] = (int32_t)(c0 - s0 + i);
                want[i] = 1;
            }
            edgellm_batch b = {(int32_t)m, ids + c0, pos, slot, want};
            if (edgellm_runtime_eval(rt, &b, lg) != EDGELLM_STATUS_OK) {
                fprintf(stderr, "eval: %s\n", edgellm_last_error());
                nll = INFINITY;
                goto out;
            }
            for (size_t i = 0; i < m; i++) {
                const float *r = lg + i * (size_t)V;
                double mx = r[0], se = 0;
                for (int64_t v = 1; v < V; v++)
                    mx = r[v] > mx ? r[v] : mx;
                for (int64_t v = 0; v < V; v++)
                    se += exp((double)r[v] - mx);
                nll += log(se) + mx - r[ids[c0 + i + 1]];
                scored++;
            }
        }
    }
out:
    free(lg);
    edgellm_runtime_free(rt);
    return scored ? exp(nll / (double)scored) : INFINITY;
}

#endif
