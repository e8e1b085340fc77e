/*
 * test_api_misuse.c - the public C API under misuse and at its edges, on a stories260K fp32 engine:
 * NULL arguments, free(NULL), eval with bad slots / positions / tokens, kv_clear + re-eval, generate
 * edge cases (n_req 0, max_new_tokens 0, aborting callback, stop ids, EOS vs ignore_eos, KV clamp with
 * a warning), sampling determinism and degenerate sampling (top_k 1, tiny top_p == greedy).
 * Every call must return its documented status (with a non-empty edgellm_last_error() on errors) and
 * never crash.
 */
#include "edgellm/edgellm.h"
#include "core/core.h"
#include "test.h"

#include <stdlib.h>

static char g_tmp[512];

/* an error status with a message */
#define CHECK_ERR(expr, want)                                                                          \
    do {                                                                                               \
        edgellm_clear_error();                                                                         \
        edgellm_status t_e_ = (expr);                                                                  \
        CHECKF(t_e_ == (want), "%s -> %d (%s), expected %d", #expr, (int)t_e_, edgellm_last_error(), (int)(want)); \
        CHECKF(edgellm_last_error()[0] != 0, "%s: no error message", #expr);                           \
    } while (0)

/* ---- log capture --------------------------------------------------------------------------------- */
typedef struct log_cap {
    int n_warn;
    char last[1024];
} log_cap;

static void log_cb(edgellm_log_level lvl, const char *msg, void *user) {
    log_cap *c = user;
    if (lvl == EDGELLM_LOG_LEVEL_WARN) {
        c->n_warn++;
        snprintf(c->last, sizeof c->last, "%s", msg);
    }
}

/* ---- helpers ---------------------------------------------------------------------------------------- */
static int build_engine(const char *hf, const char *name, char *engine, size_t cap) {
    char exp[1024];
    snprintf(exp, sizeof exp, "%s/%s.export", g_tmp, name);
    snprintf(engine, cap, "%s/%s.engine", g_tmp, name);
    edgellm_export_params ep = edgellm_export_params_default();
    ep.dtype = "fp32";
    ep.overwrite = true;
    edgellm_build_params bp = edgellm_build_params_default();
    bp.overwrite = true;
    bp.max_batch_size = 4;
    bp.max_input_len = 512;
    bp.max_kv_cache_capacity = 512;
    edgellm_status s = edgellm_export(hf, exp, &ep);
    CHECKF(s == EDGELLM_STATUS_OK, "export %s: %s", hf, edgellm_last_error());
    if (s) return -1;
    s = edgellm_build(exp, engine, &bp);
    CHECKF(s == EDGELLM_STATUS_OK, "build %s: %s", name, edgellm_last_error());
    return s ? -1 : 0;
}

static bool same_ids(const edgellm_result *a, const edgellm_result *b) {
    return a->n_ids == b->n_ids && (a->n_ids == 0 || !memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n_ids));
}

static edgellm_status gen1(edgellm_runtime *rt, const int32_t *prompt, int32_t n, int32_t max_new, bool ignore_eos,
                           const edgellm_sampling_params *sp, edgellm_result *res) {
    edgellm_request r = {.prompt = prompt, .n_prompt = n, .max_new_tokens = max_new, .ignore_eos = ignore_eos};
    return edgellm_runtime_generate(rt, &r, 1, sp, NULL, NULL, res);
}

/* ---- NULL arguments and frees ----------------------------------------------------------------------- */
static void check_nulls(const char *engine, edgellm_runtime *rt) {
    edgellm_runtime *r2 = (edgellm_runtime *)(uintptr_t)1;
    CHECK_ERR(edgellm_runtime_create(NULL, NULL, &r2), EDGELLM_STATUS_INVALID_ARG);
    CHECK(r2 == NULL);
    CHECK_ERR(edgellm_runtime_create(engine, NULL, NULL), EDGELLM_STATUS_INVALID_ARG);
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/no-such.engine", g_tmp);
    CHECK_ERR(edgellm_runtime_create(missing, NULL, &r2), EDGELLM_STATUS_IO);
    CHECK(r2 == NULL);
    CHECK(strstr(edgellm_last_error(), "no-such.engine") != NULL);

    edgellm_tokenizer *tok = (edgellm_tokenizer *)(uintptr_t)1;
    CHECK_ERR(edgellm_tokenizer_load(NULL, &tok), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_tokenizer_load("fixtures/models/stories260K-hf", NULL), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_tokenizer_load(missing, &tok), EDGELLM_STATUS_IO);
    CHECK(tok == NULL);
    const edgellm_tokenizer *t = edgellm_runtime_tokenizer(rt);
    CHECK(t != NULL);
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL;
    const char *piece = NULL;
    CHECK_ERR(edgellm_tokenizer_encode(NULL, "a", 1, true, &ids, &n), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_tokenizer_encode(t, NULL, 3, true, &ids, &n), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_tokenizer_encode(t, "a", 1, true, NULL, &n), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_tokenizer_encode(t, "a", 1, true, &ids, NULL), EDGELLM_STATUS_INVALID_ARG);
    /* empty text is fine: BOS only */
    CHECK_OK(edgellm_tokenizer_encode(t, NULL, 0, true, &ids, &n));
    CHECK(n == 1 && ids && ids[0] == edgellm_tokenizer_bos_id(t));
    edgellm_free(ids);
    CHECK_ERR(edgellm_tokenizer_decode(NULL, (int32_t[]){1}, 1, true, &text, &n), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_tokenizer_decode(t, NULL, 2, true, &text, &n), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_tokenizer_decode(t, (int32_t[]){1}, 1, true, NULL, &n), EDGELLM_STATUS_INVALID_ARG);
    CHECK_OK(edgellm_tokenizer_decode(t, NULL, 0, true, &text, NULL)); /* len is optional */
    CHECK(text && text[0] == 0);
    edgellm_free(text);
    text = NULL;
    /* out-of-range ids: an error or skipped, never a crash */
    edgellm_status s = edgellm_tokenizer_decode(t, (int32_t[]){-5, 300, 1 << 30}, 3, false, &text, &n);
    CHECKF(s == EDGELLM_STATUS_OK || (s < 0 && edgellm_last_error()[0]), "decode of bad ids -> %d", (int)s);
    edgellm_free(text);
    CHECK(edgellm_tokenizer_vocab_size(NULL) == 0 && edgellm_tokenizer_bos_id(NULL) == -1 &&
          edgellm_tokenizer_eos_id(NULL) == -1 && edgellm_tokenizer_pad_id(NULL) == -1);
    CHECK(edgellm_tokenizer_token_to_id(NULL, "a") == -1 && edgellm_tokenizer_token_to_id(t, NULL) == -1);
    CHECK(edgellm_tokenizer_id_to_token(NULL, 3) == NULL && edgellm_tokenizer_id_to_token(t, -1) == NULL &&
          edgellm_tokenizer_id_to_token(t, 1 << 30) == NULL);
    CHECK(!edgellm_tokenizer_is_special(NULL, 1) && !edgellm_tokenizer_is_special(t, -1) &&
          !edgellm_tokenizer_is_special(t, 1 << 30));

    edgellm_detok_stream *ds = (edgellm_detok_stream *)(uintptr_t)1;
    CHECK_ERR(edgellm_detok_stream_create(NULL, true, &ds), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_detok_stream_create(t, true, NULL), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_detok_stream_push(NULL, 5, &piece), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_detok_stream_flush(NULL, &piece), EDGELLM_STATUS_INVALID_ARG);
    ds = NULL;
    CHECK_OK(edgellm_detok_stream_create(t, true, &ds));
    if (ds) {
        CHECK_ERR(edgellm_detok_stream_push(ds, 5, NULL), EDGELLM_STATUS_INVALID_ARG);
        CHECK_ERR(edgellm_detok_stream_flush(ds, NULL), EDGELLM_STATUS_INVALID_ARG);
        s = edgellm_detok_stream_push(ds, -3, &piece);
        CHECKF(s == EDGELLM_STATUS_OK || (s < 0 && edgellm_last_error()[0]), "push(-3) -> %d", (int)s);
        s = edgellm_detok_stream_push(ds, 1 << 30, &piece);
        CHECKF(s == EDGELLM_STATUS_OK || (s < 0 && edgellm_last_error()[0]), "push(1<<30) -> %d", (int)s);
        CHECK_OK(edgellm_detok_stream_push(ds, 100, &piece));
        CHECK_OK(edgellm_detok_stream_flush(ds, &piece));
        CHECK(piece != NULL);
        edgellm_detok_stream_free(ds);
    }

    edgellm_chat_template *ct = (edgellm_chat_template *)(uintptr_t)1;
    char *out = (char *)(uintptr_t)1;
    CHECK_ERR(edgellm_chat_template_load(NULL, &ct), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_chat_template_load("fixtures/models/sotu-qwen3", NULL), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_chat_template_load(missing, &ct), EDGELLM_STATUS_IO);
    CHECK(ct == NULL);
    CHECK_ERR(edgellm_chat_template_from_string(NULL, NULL, NULL, &ct), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_chat_template_from_string("{{ x }}", NULL, NULL, NULL), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_chat_template_render(NULL, "[]", true, NULL, &out), EDGELLM_STATUS_INVALID_ARG);
    CHECK(out == NULL);
    ct = NULL;
    CHECK_OK(edgellm_chat_template_from_string("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}", "<s>",
                                               "</s>", &ct));
    if (ct) {
        CHECK_ERR(edgellm_chat_template_render(ct, NULL, true, NULL, &out), EDGELLM_STATUS_INVALID_ARG);
        CHECK_ERR(edgellm_chat_template_render(ct, "[]", true, NULL, NULL), EDGELLM_STATUS_INVALID_ARG);
        s = edgellm_chat_template_render(ct, "[{\"role\": \"user\", ", true, NULL, &out);
        CHECKF(s < 0 && edgellm_last_error()[0] && out == NULL, "malformed messages JSON -> %d", (int)s);
        s = edgellm_chat_template_render(ct, "{\"role\": \"user\"}", true, NULL, &out);
        CHECKF(s < 0 && edgellm_last_error()[0] && out == NULL, "messages not an array -> %d", (int)s);
        s = edgellm_chat_template_render(ct, "[]", true, "[1, 2]", &out);
        CHECKF(s < 0 && edgellm_last_error()[0] && out == NULL, "extra_json not an object -> %d", (int)s);
        CHECK_OK(edgellm_chat_template_render(ct, "[{\"role\": \"user\", \"content\": \"hi\"}]", true, NULL, &out));
        CHECKF(out && !strcmp(out, "<user>hi"), "render: %s", out ? out : "(null)");
        edgellm_free(out);
        edgellm_chat_template_free(ct);
    }
    /* unclosed block: a clear error, not a crash */
    ct = NULL;
    s = edgellm_chat_template_from_string("{% for m in messages %}{{ m.content }}", NULL, NULL, &ct);
    CHECKF(s < 0 && edgellm_last_error()[0] && ct == NULL, "unclosed for -> %d", (int)s);

    edgellm_export_params ep = edgellm_export_params_default();
    edgellm_build_params bp = edgellm_build_params_default();
    CHECK_ERR(edgellm_export(NULL, "x", &ep), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_export("fixtures/models/tiny-qwen3", NULL, &ep), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_build(NULL, "x", &bp), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_build("x", NULL, &bp), EDGELLM_STATUS_INVALID_ARG);
    edgellm_engine_info info;
    CHECK_ERR(edgellm_engine_info_read(engine, NULL), EDGELLM_STATUS_INVALID_ARG);
    s = edgellm_engine_info_read(NULL, &info);
    CHECKF(s < 0 && edgellm_last_error()[0], "engine_info_read(NULL) -> %d", (int)s);
    CHECK_OK(edgellm_engine_info_read(engine, &info));
    CHECK(info.n_vocab == 512 && info.max_batch_size == 4 && info.max_kv_cache_capacity == 512 && info.has_tokenizer);

    /* runtime entry points with NULL */
    edgellm_result res = {0};
    edgellm_request req = {.prompt = (int32_t[]){1}, .n_prompt = 1, .max_new_tokens = 1};
    float lg[512];
    CHECK_ERR(edgellm_runtime_eval(NULL, &(edgellm_batch){1, (int32_t[]){1}, (int32_t[]){0}, (int32_t[]){0}, NULL}, lg),
              EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_eval(rt, NULL, lg), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_eval(rt, &(edgellm_batch){1, NULL, (int32_t[]){0}, (int32_t[]){0}, NULL}, lg),
              EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_eval(rt, &(edgellm_batch){1, (int32_t[]){1}, NULL, (int32_t[]){0}, NULL}, lg),
              EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_eval(rt, &(edgellm_batch){1, (int32_t[]){1}, (int32_t[]){0}, NULL, NULL}, lg),
              EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_generate(NULL, &req, 1, NULL, NULL, NULL, &res), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_generate(rt, NULL, 1, NULL, NULL, NULL, &res), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_generate(rt, &req, 1, NULL, NULL, NULL, NULL), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_kv_clear(NULL, 0, 0), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_get_info(NULL, &info), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_get_info(rt, NULL), EDGELLM_STATUS_INVALID_ARG);
    CHECK(edgellm_runtime_tokenizer(NULL) == NULL && edgellm_runtime_chat_template(NULL) == NULL);
    /* accessors on NULL (fixed: these dereferenced rt) */
    int32_t eos[4];
    CHECK(edgellm_runtime_vocab_size(NULL) == 0);
    CHECK(edgellm_runtime_bos_id(NULL) == -1);
    CHECK(edgellm_runtime_eos_ids(NULL, eos, 4) == 0);
    CHECK(edgellm_runtime_eos_ids(rt, NULL, 4) == 0);
    edgellm_metrics m;
    memset(&m, 0xff, sizeof m);
    edgellm_runtime_get_metrics(NULL, &m);
    CHECK(m.prefill_tokens == 0 && m.decode_tokens == 0);
    edgellm_runtime_get_metrics(rt, NULL);
    edgellm_runtime_reset_metrics(NULL);
    CHECK(edgellm_runtime_vocab_size(rt) == 512 && edgellm_runtime_bos_id(rt) == 1);
    CHECK(edgellm_runtime_eos_ids(rt, eos, 4) >= 1 && eos[0] == 2);
    CHECK(edgellm_runtime_eos_ids(rt, eos, 0) == 0);

    /* frees of NULL are no-ops */
    edgellm_runtime_free(NULL);
    edgellm_tokenizer_free(NULL);
    edgellm_detok_stream_free(NULL);
    edgellm_chat_template_free(NULL);
    edgellm_free(NULL);
    edgellm_result_clear(NULL);
    edgellm_result zero = {0};
    edgellm_result_clear(&zero);
    edgellm_result_clear(&zero); /* twice */
    CHECK(zero.ids == NULL && zero.n_ids == 0);
    edgellm_set_allocator(NULL); /* restoring the default twice is harmless */
    edgellm_log_set(NULL, NULL);

    /* status strings and error state */
    CHECK(edgellm_status_str(EDGELLM_STATUS_NO_MEMORY) && strlen(edgellm_status_str(EDGELLM_STATUS_NO_MEMORY)) > 0);
    CHECK(edgellm_status_str((edgellm_status)12345) != NULL);
    CHECK(edgellm_status_str((edgellm_status)-12345) != NULL);
    CHECK(edgellm_version() && edgellm_version()[0]);
    edgellm_clear_error();
    CHECK(edgellm_last_error() && edgellm_last_error()[0] == 0);
}

/* ---- eval ------------------------------------------------------------------------------------------- */
static edgellm_status eval1(edgellm_runtime *rt, int32_t tok, int32_t pos, int32_t slot, float *lg) {
    edgellm_batch b = {1, &tok, &pos, &slot, NULL};
    return edgellm_runtime_eval(rt, &b, lg);
}

static void check_eval(edgellm_runtime *rt) {
    const int32_t V = 512;
    float *a = malloc(sizeof(float) * V * 4), *b = malloc(sizeof(float) * V * 4);
    const int32_t toks[4] = {1, 403, 407, 261};
    const int32_t pos[4] = {0, 1, 2, 3}, slot[4] = {2, 2, 2, 2};
    const int8_t all[4] = {1, 1, 1, 1};
    for (int s = 0; s < 4; s++) CHECK_OK(edgellm_runtime_kv_clear(rt, s, 0));

    /* bad tokens / slots / positions: INVALID_ARG, and the cache is left unchanged */
    CHECK_ERR(edgellm_runtime_eval(rt, &(edgellm_batch){0, toks, pos, slot, NULL}, a), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_eval(rt, &(edgellm_batch){-1, toks, pos, slot, NULL}, a), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(eval1(rt, -1, 0, 0, a), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(eval1(rt, V, 0, 0, a), EDGELLM_STATUS_INVALID_ARG);
    CHECK(strstr(edgellm_last_error(), "512") != NULL);
    CHECK_ERR(eval1(rt, 1, 0, -1, a), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(eval1(rt, 1, 0, 4, a), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(eval1(rt, 1, 0, 1 << 30, a), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(eval1(rt, 1, 1, 0, a), EDGELLM_STATUS_INVALID_ARG);  /* does not continue an empty slot */
    CHECK_ERR(eval1(rt, 1, -1, 0, a), EDGELLM_STATUS_INVALID_ARG); /* negative position */
    CHECK_ERR(eval1(rt, 1, 512, 0, a), EDGELLM_STATUS_LIMIT);      /* beyond the KV capacity */
    CHECK_ERR(eval1(rt, 1, 1 << 30, 0, a), EDGELLM_STATUS_LIMIT);
    /* a repeated position in one batch, and a bad entry after good ones: nothing is consumed */
    CHECK_ERR(edgellm_runtime_eval(rt, &(edgellm_batch){2, toks, (int32_t[]){0, 0}, slot, NULL}, a),
              EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_eval(rt, &(edgellm_batch){3, (int32_t[]){1, 403, 9999}, pos, slot, NULL}, a),
              EDGELLM_STATUS_INVALID_ARG);
    /* slot 2 must still be empty: position 0 is accepted */
    CHECK_OK(edgellm_runtime_eval(rt, &(edgellm_batch){4, toks, pos, slot, all}, a));
    /* continuing requires pos == 4 now */
    CHECK_ERR(eval1(rt, 5, 3, 2, b), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(eval1(rt, 5, 5, 2, b), EDGELLM_STATUS_INVALID_ARG);
    CHECK(strstr(edgellm_last_error(), "continue") != NULL);

    /* kv_clear then re-eval: identical logits */
    CHECK_OK(edgellm_runtime_kv_clear(rt, 2, 0));
    CHECK_OK(edgellm_runtime_eval(rt, &(edgellm_batch){4, toks, pos, slot, all}, b));
    CHECKF(!memcmp(a, b, sizeof(float) * V * 4), "re-eval after kv_clear gives different logits");
    /* truncating to 2 and re-running the last two positions gives the same last logits */
    CHECK_OK(edgellm_runtime_kv_clear(rt, 2, 2));
    CHECK_ERR(eval1(rt, toks[3], 3, 2, b), EDGELLM_STATUS_INVALID_ARG); /* length is 2 now */
    CHECK_OK(edgellm_runtime_eval(rt, &(edgellm_batch){2, toks + 2, pos + 2, slot, all}, b));
    CHECKF(t_nmse(a + 2 * V, b, 2 * (size_t)V) < 1e-10, "logits after kv_clear(from=2) differ from the full run");
    /* kv_clear beyond the length is a no-op; bad arguments fail */
    CHECK_OK(edgellm_runtime_kv_clear(rt, 2, 100));
    CHECK_OK(eval1(rt, 5, 4, 2, b));
    CHECK_ERR(edgellm_runtime_kv_clear(rt, -1, 0), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_kv_clear(rt, 4, 0), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_kv_clear(rt, 0, -1), EDGELLM_STATUS_INVALID_ARG);
    /* other slots are independent: the same sequence in slot 0 gives the same logits, mixed in one batch
     * with a continuation of slot 2 */
    CHECK_OK(edgellm_runtime_kv_clear(rt, 0, 0));
    CHECK_OK(edgellm_runtime_eval(
        rt, &(edgellm_batch){5, (int32_t[]){1, 403, 9, 407, 261}, (int32_t[]){0, 1, 5, 2, 3}, (int32_t[]){0, 0, 2, 0, 0},
                             (int8_t[]){0, 0, 0, 0, 1}},
        b));
    CHECKF(t_nmse(a + 3 * V, b, (size_t)V) < 1e-10, "slot 0 logits differ from slot 2's for the same sequence");
    /* logits_out NULL: runs, returns no logits */
    CHECK_OK(eval1(rt, 7, 4, 0, NULL));
    free(a);
    free(b);
}

/* ---- generate --------------------------------------------------------------------------------------- */
typedef struct abort_ctx {
    int32_t stop_after, seen[4], req_abort;
} abort_ctx;

static bool abort_cb(int32_t req, int32_t tok, void *user) {
    (void)tok;
    abort_ctx *c = user;
    c->seen[req]++;
    return !(req == c->req_abort && c->seen[req] >= c->stop_after);
}

static void check_generate(edgellm_runtime *rt) {
    edgellm_sampling_params greedy = edgellm_sampling_params_default();
    greedy.temperature = 0;
    const int32_t prompt[5] = {1, 403, 407, 261, 378};
    edgellm_result g = {0}, r = {0}, rs[5] = {{0}};
    CHECK_OK(gen1(rt, prompt, 5, 40, true, &greedy, &g));
    CHECK(g.n_ids == 40 && g.finish == EDGELLM_FINISH_LENGTH);

    /* n_req 0 / negative / too many; bad requests */
    edgellm_request req = {.prompt = prompt, .n_prompt = 5, .max_new_tokens = 4};
    CHECK_ERR(edgellm_runtime_generate(rt, &req, 0, &greedy, NULL, NULL, &r), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(edgellm_runtime_generate(rt, &req, -3, &greedy, NULL, NULL, &r), EDGELLM_STATUS_INVALID_ARG);
    edgellm_request five[5] = {req, req, req, req, req};
    CHECK_ERR(edgellm_runtime_generate(rt, five, 5, &greedy, NULL, NULL, rs), EDGELLM_STATUS_LIMIT);
    CHECK_ERR(gen1(rt, prompt, 0, 4, false, &greedy, &r), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(gen1(rt, NULL, 5, 4, false, &greedy, &r), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(gen1(rt, prompt, 5, -1, false, &greedy, &r), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(gen1(rt, (int32_t[]){1, 512}, 2, 4, false, &greedy, &r), EDGELLM_STATUS_INVALID_ARG);
    CHECK_ERR(gen1(rt, (int32_t[]){1, -1}, 2, 4, false, &greedy, &r), EDGELLM_STATUS_INVALID_ARG);
    int32_t *longp = calloc(513, sizeof(int32_t));
    CHECK_ERR(gen1(rt, longp, 513, 1, false, &greedy, &r), EDGELLM_STATUS_LIMIT);
    CHECK(r.ids == NULL && r.n_ids == 0);

    /* max_new_tokens 0: OK, nothing generated; NULL sampling params = defaults */
    r.ids = NULL;
    CHECK_OK(gen1(rt, prompt, 5, 0, false, &greedy, &r));
    CHECK(r.n_ids == 0 && r.finish == EDGELLM_FINISH_LENGTH);
    edgellm_result_clear(&r);
    CHECK_OK(gen1(rt, prompt, 5, 3, false, NULL, &r));
    CHECK(r.n_ids >= 0 && r.n_ids <= 3);
    edgellm_result_clear(&r);

    /* aborting callback: request 1 of 2 aborts at its 3rd token, ids so far kept; request 0 unaffected */
    abort_ctx ac = {.stop_after = 3, .req_abort = 1};
    edgellm_request two[2] = {{.prompt = prompt, .n_prompt = 5, .max_new_tokens = 20, .ignore_eos = true},
                              {.prompt = prompt, .n_prompt = 5, .max_new_tokens = 20, .ignore_eos = true}};
    edgellm_status s = edgellm_runtime_generate(rt, two, 2, &greedy, abort_cb, &ac, rs);
    CHECKF(s >= 0, "generate with an aborting callback -> %d (%s)", (int)s, edgellm_last_error());
    CHECK(rs[1].finish == EDGELLM_FINISH_ABORTED && rs[1].n_ids == 3 && !memcmp(rs[1].ids, g.ids, 3 * sizeof(int32_t)));
    CHECK(rs[0].finish == EDGELLM_FINISH_LENGTH && rs[0].n_ids == 20 && !memcmp(rs[0].ids, g.ids, 20 * sizeof(int32_t)));
    CHECK(ac.seen[0] == 20 && ac.seen[1] == 3);
    edgellm_result_clear(&rs[0]);
    edgellm_result_clear(&rs[1]);
    /* aborting at the very first token */
    abort_ctx a1 = {.stop_after = 1, .req_abort = 0};
    s = edgellm_runtime_generate(rt, two, 1, &greedy, abort_cb, &a1, &r);
    CHECK(s >= 0 && r.finish == EDGELLM_FINISH_ABORTED && r.n_ids == 1 && r.ids[0] == g.ids[0]);
    edgellm_result_clear(&r);

    /* stop ids: stop at the first occurrence of g.ids[k], which is not included */
    int k = 6;
    int first = 0;
    while (g.ids[first] != g.ids[k]) first++;
    int32_t stop[2] = {100000, g.ids[k]};
    edgellm_request sr = {.prompt = prompt, .n_prompt = 5, .max_new_tokens = 40, .stop_ids = stop, .n_stop_ids = 2,
                          .ignore_eos = true};
    CHECK_OK(edgellm_runtime_generate(rt, &sr, 1, &greedy, NULL, NULL, &r));
    CHECKF(r.finish == EDGELLM_FINISH_STOP && r.n_ids == first && !memcmp(r.ids, g.ids, sizeof(int32_t) * (size_t)first),
           "stop id %d: finish %d, %d ids (want %d)", stop[1], (int)r.finish, r.n_ids, first);
    edgellm_result_clear(&r);
    /* stop_ids with n_stop_ids 0 is ignored */
    sr.n_stop_ids = 0;
    CHECK_OK(edgellm_runtime_generate(rt, &sr, 1, &greedy, NULL, NULL, &r));
    CHECK(same_ids(&r, &g) && r.finish == EDGELLM_FINISH_LENGTH);
    edgellm_result_clear(&r);

    /* prompt + max_new beyond the KV capacity (512): clamped, with a warning */
    log_cap lc = {0};
    edgellm_log_set(log_cb, &lc);
    edgellm_log_set_level(EDGELLM_LOG_LEVEL_WARN);
    int32_t *p500 = malloc(500 * sizeof(int32_t));
    p500[0] = 1;
    for (int i = 1; i < 500; i++) p500[i] = prompt[1 + i % 4];
    CHECK_OK(gen1(rt, p500, 500, 100, true, &greedy, &r));
    CHECKF(r.n_ids == 12 && r.finish == EDGELLM_FINISH_LENGTH, "clamped generation gave %d ids", r.n_ids);
    CHECKF(lc.n_warn == 1 && strstr(lc.last, "KV capacity"), "expected one KV capacity warning, got %d: %s", lc.n_warn,
           lc.last);
    edgellm_result_clear(&r);
    /* a prompt filling the whole cache: nothing to generate, still OK */
    lc.n_warn = 0;
    int32_t *p512 = malloc(512 * sizeof(int32_t));
    memcpy(p512, p500, 500 * sizeof(int32_t));
    for (int i = 500; i < 512; i++) p512[i] = 5;
    CHECK_OK(gen1(rt, p512, 512, 10, true, &greedy, &r));
    CHECK(r.n_ids == 0 && lc.n_warn == 1);
    edgellm_result_clear(&r);
    /* no warning when it fits */
    lc.n_warn = 0;
    CHECK_OK(gen1(rt, p500, 500, 12, true, &greedy, &r));
    CHECK(r.n_ids == 12 && lc.n_warn == 0);
    edgellm_result_clear(&r);
    edgellm_log_set(NULL, NULL);
    free(p500);
    free(p512);

    /* sampling: same seed => same ids; different seed => different ids (temperature 1, no truncation) */
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.seed = 1234;
    edgellm_result s1 = {0}, s2 = {0}, s3 = {0};
    CHECK_OK(gen1(rt, prompt, 5, 32, true, &sp, &s1));
    CHECK_OK(gen1(rt, prompt, 5, 32, true, &sp, &s2));
    sp.seed = 98765;
    CHECK_OK(gen1(rt, prompt, 5, 32, true, &sp, &s3));
    CHECK(s1.n_ids == 32 && same_ids(&s1, &s2));
    CHECKF(!same_ids(&s1, &s3), "seeds 1234 and 98765 gave identical 32-token samples");
    CHECKF(!same_ids(&s1, &(edgellm_result){g.ids, 32, 0}), "temperature 1 sampling gave exactly the greedy ids");
    edgellm_result_clear(&s1);
    edgellm_result_clear(&s2);
    edgellm_result_clear(&s3);
    /* top_k 1 and a tiny top_p are greedy, whatever the temperature and seed */
    edgellm_sampling_params k1 = {.temperature = 1.5f, .top_k = 1, .top_p = 1.0f, .seed = 5};
    edgellm_sampling_params p0 = {.temperature = 1.5f, .top_k = 0, .top_p = 1e-6f, .seed = 6};
    edgellm_sampling_params p0k = {.temperature = 0.7f, .top_k = 50, .top_p = 1e-6f, .seed = 7};
    CHECK_OK(gen1(rt, prompt, 5, 40, true, &k1, &s1));
    CHECK_OK(gen1(rt, prompt, 5, 40, true, &p0, &s2));
    CHECK_OK(gen1(rt, prompt, 5, 40, true, &p0k, &s3));
    CHECKF(same_ids(&s1, &g), "top_k=1 differs from greedy");
    CHECKF(same_ids(&s2, &g), "top_p=1e-6 differs from greedy");
    CHECKF(same_ids(&s3, &g), "top_k=50 top_p=1e-6 differs from greedy");
    edgellm_result_clear(&s1);
    edgellm_result_clear(&s2);
    edgellm_result_clear(&s3);
    /* odd sampling parameters: a status, never a crash; ids in the vocabulary */
    const edgellm_sampling_params odd[] = {
        {.temperature = NAN, .top_k = 50, .top_p = 0.8f, .seed = 1},
        {.temperature = -1.0f, .top_k = 50, .top_p = 0.8f, .seed = 1},
        {.temperature = INFINITY, .top_k = 50, .top_p = 0.8f, .seed = 1},
        {.temperature = 1.0f, .top_k = -7, .top_p = 0.8f, .seed = 1},
        {.temperature = 1.0f, .top_k = 1 << 30, .top_p = 0.8f, .seed = 1},
        {.temperature = 1.0f, .top_k = 0, .top_p = 0.0f, .seed = 1},
        {.temperature = 1.0f, .top_k = 0, .top_p = -1.0f, .seed = 1},
        {.temperature = 1.0f, .top_k = 0, .top_p = 5.0f, .seed = 1},
        {.temperature = 1.0f, .top_k = 0, .top_p = NAN, .seed = 1},
        {.temperature = 1e-30f, .top_k = 0, .top_p = 1.0f, .seed = 1},
        {.temperature = 1e30f, .top_k = 0, .top_p = 1.0f, .seed = 1},
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        edgellm_clear_error();
        s = gen1(rt, prompt, 5, 8, true, &odd[i], &r);
        int bad = 0;
        for (int32_t j = 0; s == EDGELLM_STATUS_OK && j < r.n_ids; j++) bad |= r.ids[j] < 0 || r.ids[j] >= 512;
        CHECKF((s == EDGELLM_STATUS_OK && r.n_ids == 8 && !bad) ||
                   (s == EDGELLM_STATUS_INVALID_ARG && edgellm_last_error()[0]),
               "odd sampling params #%zu: status %d, %d ids, out-of-vocab %d", i, (int)s, r.n_ids, bad);
        edgellm_result_clear(&r);
    }
    /* results are overwritten, not appended: a failing call leaves them empty (the earlier ids still
     * belong to the caller) */
    CHECK_OK(gen1(rt, prompt, 5, 4, true, &greedy, &r));
    int32_t *keep = r.ids;
    CHECK_ERR(gen1(rt, prompt, 5, -1, true, &greedy, &r), EDGELLM_STATUS_INVALID_ARG);
    CHECK(r.ids == NULL && r.n_ids == 0);
    edgellm_free(keep);
    free(longp);
    edgellm_result_clear(&g);
}

/* ---- export / build / runtime parameters -------------------------------------------------------- */
static bool dir_empty(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' 2>/dev/null)\"", dir);
    return system(cmd) == 0;
}

static void check_params(const char *engine) {
    char out[1024], exp[1100], eng[1100];
    snprintf(out, sizeof out, "%s/params", g_tmp);
    el_rm_rf(out);
    el_mkdir_p(out);
    snprintf(exp, sizeof exp, "%s/x.export", out);
    snprintf(eng, sizeof eng, "%s/x.engine", out);
    edgellm_export_params ep = edgellm_export_params_default();
    ep.dtype = "fp7";
    CHECK_ERR(edgellm_export("fixtures/models/tiny-qwen3", exp, &ep), EDGELLM_STATUS_INVALID_ARG);
    CHECK(strstr(edgellm_last_error(), "fp7") != NULL);
    ep = edgellm_export_params_default();
    ep.format = "onnx";
    CHECK_ERR(edgellm_export("fixtures/models/tiny-qwen3", exp, &ep), EDGELLM_STATUS_INVALID_ARG);
    ep = edgellm_export_params_default();
    ep.quantization = "int3";
    CHECK_ERR(edgellm_export("fixtures/models/tiny-qwen3", exp, &ep), EDGELLM_STATUS_INVALID_ARG);
    CHECK(strstr(edgellm_last_error(), "int3") != NULL);
    CHECK_ERR(edgellm_export("fixtures/models/no-such-model", exp, NULL), EDGELLM_STATUS_IO);
    /* export into the model directory itself is refused */
    edgellm_status s = edgellm_export("fixtures/models/tiny-qwen3", "fixtures/models/tiny-qwen3", NULL);
    CHECKF(s < 0 && edgellm_last_error()[0], "export onto its own input -> %d", (int)s);
    CHECK(el_file_exists("fixtures/models/tiny-qwen3/model.safetensors"));
    CHECKF(dir_empty(out), "failed exports left files in %s", out);
    /* a good export; then exporting again without overwrite fails and keeps it */
    CHECK_OK(edgellm_export("fixtures/models/tiny-qwen3", exp, NULL));
    s = edgellm_export("fixtures/models/tiny-qwen3", exp, NULL);
    CHECKF(s < 0 && edgellm_last_error()[0] && el_dir_exists(exp), "export over an existing dir -> %d", (int)s);

    struct {
        const char *what;
        edgellm_build_params bp;
    } bad[] = {
        {"max_batch_size 0", {NULL, 0, 64, 64, false, NULL}},
        {"max_batch_size -1", {NULL, -1, 64, 64, false, NULL}},
        {"max_input_len 0", {NULL, 2, 0, 64, false, NULL}},
        {"max_kv_cache_capacity -5", {NULL, 2, 64, -5, false, NULL}},
        {"max_input_len > max_kv_cache_capacity", {NULL, 2, 128, 64, false, NULL}},
        {"max_batch_size 257", {NULL, 257, 64, 64, false, NULL}},
        {"max_kv_cache_capacity 2^21", {NULL, 2, 64, 1 << 21, false, NULL}},
        {"backend tpu", {"tpu", 2, 64, 64, false, NULL}},
        {"backend with a long name", {"cpu-but-with-a-very-long-name-indeed", 2, 64, 64, false, NULL}},
        {"kv_cache_dtype int3", {NULL, 2, 64, 64, false, "int3"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        edgellm_clear_error();
        s = edgellm_build(exp, eng, &bad[i].bp);
        CHECKF(s < 0 && edgellm_last_error()[0] && !el_dir_exists(eng), "build with %s -> %d (%s)", bad[i].what, (int)s,
               edgellm_last_error());
    }
    /* building from something that is not an export (the HF checkpoint) */
    s = edgellm_build("fixtures/models/tiny-qwen3", eng, NULL);
    CHECKF(s < 0 && strstr(edgellm_last_error(), "export") && !el_dir_exists(eng), "build from an HF dir -> %d (%s)",
           (int)s, edgellm_last_error());
    CHECK_ERR(edgellm_build(out, eng, NULL), EDGELLM_STATUS_IO); /* a directory without config.json */
    CHECK(strstr(edgellm_last_error(), "config.json") != NULL);
    edgellm_build_params bp = edgellm_build_params_default();
    bp.max_batch_size = 1;
    bp.max_input_len = 8;
    bp.max_kv_cache_capacity = 16;
    CHECK_OK(edgellm_build(exp, eng, &bp));
    s = edgellm_build(exp, eng, &bp);
    CHECKF(s < 0 && edgellm_last_error()[0] && el_dir_exists(eng), "build over an existing engine -> %d", (int)s);

    /* an engine for the CUDA backend: where CUDA is not compiled in, loading it is UNSUPPORTED with a
     * message (with CUDA: OK on a device, UNSUPPORTED/DEVICE without one) */
    char cuda_eng[1200];
    snprintf(cuda_eng, sizeof cuda_eng, "%s/cuda.engine", out);
    edgellm_build_params cbp = edgellm_build_params_default();
    cbp.backend = "cuda";
    cbp.max_batch_size = 1;
    cbp.max_input_len = 8;
    cbp.max_kv_cache_capacity = 16;
    s = edgellm_build(exp, cuda_eng, &cbp);
    CHECKF(s == EDGELLM_STATUS_OK || (s < 0 && edgellm_last_error()[0]), "build for cuda -> %d", (int)s);
    if (s == EDGELLM_STATUS_OK) {
        edgellm_runtime *crt = NULL;
        edgellm_clear_error();
        s = edgellm_runtime_create(cuda_eng, NULL, &crt);
#ifdef EDGELLM_HAVE_CUDA
        CHECKF(s == EDGELLM_STATUS_OK || ((s == EDGELLM_STATUS_UNSUPPORTED || s == EDGELLM_STATUS_DEVICE) && !crt &&
                                          edgellm_last_error()[0]),
               "cuda engine -> %d (%s)", (int)s, edgellm_last_error());
#else
        CHECKF(s == EDGELLM_STATUS_UNSUPPORTED && !crt && edgellm_last_error()[0], "cuda engine without CUDA -> %d (%s)",
               (int)s, edgellm_last_error());
#endif
        edgellm_runtime_free(crt);
    }

    /* runtime parameters */
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    edgellm_runtime *rt = (edgellm_runtime *)(uintptr_t)1;
    rp.n_threads = -2;
    s = edgellm_runtime_create(engine, &rp, &rt);
    CHECKF(s == EDGELLM_STATUS_INVALID_ARG && rt == NULL && edgellm_last_error()[0], "n_threads -2 -> %d", (int)s);
    rp = edgellm_runtime_params_default();
    rp.max_ubatch = -3; /* <= 0 means the default */
    rp.n_threads = 1;
    rp.verify_checksums = false;
    rt = NULL;
    CHECK_OK(edgellm_runtime_create(engine, &rp, &rt));
    edgellm_runtime_free(rt);
    /* an engine without a tokenizer: the text accessors are NULL, ids still work */
    rt = NULL;
    CHECK_OK(edgellm_runtime_create(eng, NULL, &rt));
    if (rt) {
        edgellm_engine_info info;
        CHECK(edgellm_runtime_tokenizer(rt) == NULL && edgellm_runtime_chat_template(rt) == NULL);
        CHECK_OK(edgellm_runtime_get_info(rt, &info));
        CHECK(!info.has_tokenizer && info.max_batch_size == 1 && info.max_input_len == 8);
        edgellm_result r = {0};
        edgellm_request req = {.prompt = (int32_t[]){1, 2, 3}, .n_prompt = 3, .max_new_tokens = 20, .ignore_eos = true};
        edgellm_sampling_params sp = edgellm_sampling_params_default();
        sp.temperature = 0;
        edgellm_log_set_level(EDGELLM_LOG_LEVEL_ERROR); /* the KV clamp warning */
        CHECK_OK(edgellm_runtime_generate(rt, &req, 1, &sp, NULL, NULL, &r));
        edgellm_log_set_level(EDGELLM_LOG_LEVEL_WARN);
        CHECK(r.n_ids == 13); /* clamped to the 16-token cache */
        edgellm_result_clear(&r);
        edgellm_request two[2] = {req, req};
        edgellm_result rr[2] = {{0}};
        CHECK_ERR(edgellm_runtime_generate(rt, two, 2, &sp, NULL, NULL, rr), EDGELLM_STATUS_LIMIT);
        CHECK_ERR(edgellm_runtime_kv_clear(rt, 1, 0), EDGELLM_STATUS_INVALID_ARG);
        edgellm_runtime_free(rt);
    }
}

/* A batch longer than the forward chunk (ubatch 512), two slots interleaved: the same logits as each
 * sequence alone. */
static void check_chunked(edgellm_runtime *rt) {
    const int32_t V = 512, L = 300;
    int32_t *tok = malloc(sizeof(int32_t) * 2 * L), *pos = malloc(sizeof(int32_t) * 2 * L),
            *slot = malloc(sizeof(int32_t) * 2 * L);
    int8_t *want = calloc(2 * L, 1);
    float *both = malloc(sizeof(float) * V * 2), *alone = malloc(sizeof(float) * V);
    for (int32_t i = 0; i < 2 * L; i++) {
        int32_t s = i & 1, p = i / 2;
        tok[i] = p == 0 ? 1 : (int32_t)((p * 7 + s * 13) % 500 + 3);
        pos[i] = p;
        slot[i] = s + 1;
        want[i] = p == L - 1;
    }
    CHECK_OK(edgellm_runtime_kv_clear(rt, 1, 0));
    CHECK_OK(edgellm_runtime_kv_clear(rt, 2, 0));
    CHECK_OK(edgellm_runtime_eval(rt, &(edgellm_batch){2 * L, tok, pos, slot, want}, both));
    for (int s = 0; s < 2; s++) {
        int32_t *t1 = malloc(sizeof(int32_t) * L), *p1 = malloc(sizeof(int32_t) * L), *s1 = malloc(sizeof(int32_t) * L);
        for (int32_t p = 0; p < L; p++) {
            t1[p] = tok[2 * p + s];
            p1[p] = p;
            s1[p] = 3;
        }
        CHECK_OK(edgellm_runtime_kv_clear(rt, 3, 0));
        CHECK_OK(edgellm_runtime_eval(rt, &(edgellm_batch){L, t1, p1, s1, NULL}, alone));
        double e = t_nmse(alone, both + (size_t)s * V, (size_t)V);
        CHECKF(e < 1e-9, "slot %d: chunked interleaved batch logits NMSE %.3e vs alone", s + 1, e);
        free(t1);
        free(p1);
        free(s1);
    }
    /* one more token fits each slot (positions 300), the cache capacity is enforced per slot */
    CHECK_OK(edgellm_runtime_eval(rt, &(edgellm_batch){2, (int32_t[]){5, 6}, (int32_t[]){L, L}, (int32_t[]){1, 2}, NULL},
                                  NULL));
    free(tok);
    free(pos);
    free(slot);
    free(want);
    free(both);
    free(alone);
}

/* EOS honoured unless ignore_eos. stories260K separates stories with BOS (id 1) and never emits its EOS
 * (2), so this engine is built from a copy whose generation_config.json declares eos_token_id [2, 1]. */
static void check_eos(void) {
    char hf[1024], cmd[4096], engine[1024];
    snprintf(hf, sizeof hf, "%s/stories-eos-hf", g_tmp);
    el_rm_rf(hf);
    snprintf(cmd, sizeof cmd, "cp -r fixtures/models/stories260K-hf '%s' && printf '{\"eos_token_id\": [2, 1]}' > '%s/generation_config.json'",
             hf, hf);
    CHECK(system(cmd) == 0);
    if (build_engine(hf, "misuse-st-eos", engine, sizeof engine)) return;
    edgellm_runtime *rt = NULL;
    CHECK_OK(edgellm_runtime_create(engine, NULL, &rt));
    if (!rt) return;
    int32_t eos[4];
    CHECK(edgellm_runtime_eos_ids(rt, eos, 4) == 2 && eos[0] == 2 && eos[1] == 1);
    const int32_t prompt[1] = {1};
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    int found = 0;
    for (uint64_t seed = 1; seed <= 40 && !found; seed++) {
        sp.seed = seed;
        edgellm_result all = {0}, stopped = {0};
        CHECK_OK(gen1(rt, prompt, 1, 400, true, &sp, &all));
        int e = -1;
        for (int32_t i = 0; i < all.n_ids && e < 0; i++)
            if (all.ids[i] == 2 || all.ids[i] == 1) e = i;
        if (e >= 0) {
            found = 1;
            CHECK(all.n_ids == 400 && all.finish == EDGELLM_FINISH_LENGTH); /* went on past EOS */
            CHECK_OK(gen1(rt, prompt, 1, 400, false, &sp, &stopped));
            CHECKF(stopped.finish == EDGELLM_FINISH_STOP && stopped.n_ids == e &&
                       !memcmp(stopped.ids, all.ids, sizeof(int32_t) * (size_t)e),
                   "seed %llu: EOS at %d, but generation without ignore_eos gave %d ids, finish %d",
                   (unsigned long long)seed, e, stopped.n_ids, (int)stopped.finish);
            printf("  seed %llu reaches EOS after %d tokens; stops there without ignore_eos\n", (unsigned long long)seed, e);
        }
        edgellm_result_clear(&all);
        edgellm_result_clear(&stopped);
    }
    CHECKF(found, "no seed in 1..40 reached EOS within 400 tokens");
    edgellm_runtime_free(rt);
}

int main(void) {
    const char *t = getenv("EDGELLM_TMP");
    snprintf(g_tmp, sizeof g_tmp, "%s/api_misuse", t ? t : "/tmp/edgellm-test");
    el_mkdir_p(g_tmp);
    char engine[1024];
    if (build_engine("fixtures/models/stories260K-hf", "misuse-st", engine, sizeof engine) == 0) {
        edgellm_runtime *rt = NULL;
        CHECK_OK(edgellm_runtime_create(engine, NULL, &rt));
        if (rt) {
            check_nulls(engine, rt);
            check_eval(rt);
            check_chunked(rt);
            check_generate(rt);
            edgellm_runtime_free(rt);
        }
    }
    check_eos();
    check_params(engine);
    return t_finish("test_api_misuse");
}
