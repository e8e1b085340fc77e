/*
 * runtime.h - inference runtime created from an engine directory.
 *
 * Low level: sequences live in KV slots 0..max_batch_size-1; edgellm_runtime_eval runs one forward over
 * a batch of (token, position, slot) entries and returns logits for the entries that ask for them.
 * High level: edgellm_runtime_generate runs prefill + decode for up to max_batch_size requests with
 * sampling, stop tokens and a per-token callback.
 *
 *   edgellm_runtime *rt;
 *   edgellm_runtime_create("engine_dir", NULL, &rt);
 *   edgellm_request req = {.prompt = ids, .n_prompt = n, .max_new_tokens = 64};
 *   edgellm_sampling_params sp = edgellm_sampling_params_default();
 *   edgellm_result res;
 *   edgellm_runtime_generate(rt, &req, 1, &sp, NULL, NULL, &res);
 *   ... res.ids[0..res.n_ids) ...
 *   edgellm_result_clear(&res);
 *   edgellm_runtime_free(rt);
 */
#ifndef EDGELLM_RUNTIME_H
#define EDGELLM_RUNTIME_H

#include "edgellm/common.h"
#include "edgellm/model.h"
#include "edgellm/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgellm_runtime edgellm_runtime;

typedef struct edgellm_runtime_params {
    int32_t n_threads;       /* CPU threads; 0 = all cores (default 0)                           */
    int32_t device;          /* CUDA device ordinal for cuda engines (default 0)                 */
    bool verify_checksums;   /* hash every weight tensor at load (default true)                  */
    bool use_reference;      /* route every op to the scalar reference kernels (tests; false)    */
    int32_t max_ubatch;      /* tokens per forward chunk; 0 = default (512)                      */
} edgellm_runtime_params;
edgellm_runtime_params edgellm_runtime_params_default(void);

/* Errors: IO (missing engine), FORMAT (bad magic, version, checksum mismatch), UNSUPPORTED (backend not
 * compiled in / no device), NO_MEMORY. */
edgellm_status edgellm_runtime_create(const char *engine_dir, const edgellm_runtime_params *p,
                                      edgellm_runtime **out);
void edgellm_runtime_free(edgellm_runtime *rt);

/* Borrowed; NULL when the engine has no tokenizer. Valid until edgellm_runtime_free. */
const edgellm_tokenizer *edgellm_runtime_tokenizer(const edgellm_runtime *rt);
/* Borrowed; NULL when the engine has no chat template. */
const edgellm_chat_template *edgellm_runtime_chat_template(const edgellm_runtime *rt);
edgellm_status edgellm_runtime_get_info(const edgellm_runtime *rt, edgellm_engine_info *out);
int32_t edgellm_runtime_vocab_size(const edgellm_runtime *rt);
/* EOS ids from generation_config.json/config.json (n written, at most cap). */
int32_t edgellm_runtime_eos_ids(const edgellm_runtime *rt, int32_t *ids, int32_t cap);
int32_t edgellm_runtime_bos_id(const edgellm_runtime *rt);

/* ---- low level -------------------------------------------------------------------------------- */
typedef struct edgellm_batch {
    int32_t n_tokens;
    const int32_t *tokens; /* (n_tokens) */
    const int32_t *pos;    /* (n_tokens) position in its sequence                                    */
    const int32_t *slot;   /* (n_tokens) KV slot 0..max_batch_size-1                                 */
    const int8_t *logits;  /* (n_tokens) non-zero = return logits for this entry; NULL = last only  */
} edgellm_batch;

/* Forgets slot's KV from position `from` on (0 = whole sequence). */
edgellm_status edgellm_runtime_kv_clear(edgellm_runtime *rt, int32_t slot, int32_t from);
/* Runs the batch. Positions of a slot must continue its sequence (pos == current length, in order).
 * logits_out: (n_selected, vocab) f32, rows in batch order of the selected entries.
 * Errors: INVALID_ARG (bad slot/position/token), LIMIT (position beyond KV capacity). */
edgellm_status edgellm_runtime_eval(edgellm_runtime *rt, const edgellm_batch *batch, float *logits_out);

/* ---- high level ------------------------------------------------------------------------------- */
typedef struct edgellm_sampling_params {
    float temperature; /* 0 (or < 1e-3) = greedy; default 1.0                                        */
    int32_t top_k;     /* 0 = off; default 50                                                        */
    float top_p;       /* 1 = off; default 0.8 (the seed's defaults)                                 */
    uint64_t seed;     /* same seed => same output; default 42                                       */
} edgellm_sampling_params;
edgellm_sampling_params edgellm_sampling_params_default(void);

typedef struct edgellm_request {
    const int32_t *prompt; /* (n_prompt) token ids, already including BOS if the model wants it     */
    int32_t n_prompt;
    int32_t max_new_tokens;
    const int32_t *stop_ids; /* extra stop ids besides the model's EOS (NULL/0 = none)              */
    int32_t n_stop_ids;
    bool ignore_eos;         /* do not stop at EOS (benchmarks)                                      */
} edgellm_request;

typedef enum edgellm_finish_reason {
    EDGELLM_FINISH_LENGTH = 0,
    EDGELLM_FINISH_STOP = 1, /* EOS or a stop id (not included in ids)                                */
    EDGELLM_FINISH_ABORTED = 2,
} edgellm_finish_reason;

typedef struct edgellm_result {
    int32_t *ids; /* generated ids (owned; edgellm_result_clear frees)                               */
    int32_t n_ids;
    edgellm_finish_reason finish;
} edgellm_result;
void edgellm_result_clear(edgellm_result *r);

/* Called once per generated token per request, in order. Return false to abort that request. */
typedef bool (*edgellm_token_cb)(int32_t request_idx, int32_t token, void *user);

typedef struct edgellm_metrics {
    int64_t prefill_tokens, prefill_runs;
    double prefill_ms;   /* wall time of prefills, incl. first sample                               */
    int64_t decode_tokens, decode_steps;
    double decode_ms;    /* wall time of decode steps (excluding the sample after prefill)          */
    double ttft_ms;      /* of the last generate call                                               */
    uint64_t peak_rss_bytes;
    uint64_t peak_device_bytes;
} edgellm_metrics;

/* Runs n_req (<= max_batch_size) requests together; results[i] for request i (pass cleared results;
 * they are overwritten). Uses KV slots 0..n_req-1 and overwrites what edgellm_runtime_eval left there.
 * A callback that returns false ends that request with finish == EDGELLM_FINISH_ABORTED (the call still
 * returns OK and keeps the ids generated so far). prompt + max_new_tokens beyond the KV capacity is
 * clamped with a warning. Errors: INVALID_ARG, LIMIT (prompt longer than max_input_len, n_req > max
 * batch), plus those of eval. */
edgellm_status edgellm_runtime_generate(edgellm_runtime *rt, const edgellm_request *reqs, int32_t n_req,
                                        const edgellm_sampling_params *sp, edgellm_token_cb cb, void *user,
                                        edgellm_result *results);
void edgellm_runtime_get_metrics(const edgellm_runtime *rt, edgellm_metrics *m);
void edgellm_runtime_reset_metrics(edgellm_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif
