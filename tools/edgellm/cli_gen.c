/*
 * cli_gen.c - opening an engine, turning a prompt or a chat into token ids, and generating text through
 * the streaming detokenizer: shared by `generate`, `chat` and `serve`.
 */
#include "cli.h"
#include "core/core.h"

#include <stdio.h>
#include <string.h>

int cli_open_runtime(const char *engine, int64_t threads, edgellm_runtime **rt) {
    char def[4096];
    const char *dir = engine;
    *rt = NULL;
    if (!dir) {
        int rc = cli_default_engine(def, sizeof def);
        if (rc) return rc;
        dir = def;
    }
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = (int32_t)threads;
    if (edgellm_runtime_create(dir, &rp, rt) != EDGELLM_STATUS_OK) return cli_fail("loading the engine");
    if (!edgellm_runtime_tokenizer(*rt)) {
        edgellm_runtime_free(*rt);
        *rt = NULL;
        fprintf(stderr, "error: engine %s has no tokenizer (use `edgellm logits --ids` for id-level use)\n",
                dir);
        return 1;
    }
    return 0;
}

edgellm_status cli_prompt_ids(edgellm_runtime *rt, const char *text, bool add_special, int32_t **ids,
                              size_t *n) {
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    *ids = NULL;
    *n = 0;
    EL_TRY(edgellm_tokenizer_encode(tok, text, strlen(text), add_special, ids, n));
    if (*n > 0) return EDGELLM_STATUS_OK;
    /* nothing to condition on: start from BOS when the model has one */
    int32_t bos = edgellm_runtime_bos_id(rt);
    if (bos < 0) bos = edgellm_tokenizer_bos_id(tok);
    edgellm_free(*ids);
    *ids = NULL;
    if (bos < 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "empty prompt and the model has no BOS token");
    *ids = el_malloc(sizeof(int32_t));
    if (!*ids) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    (*ids)[0] = bos;
    *n = 1;
    return EDGELLM_STATUS_OK;
}

edgellm_status cli_chat_ids(edgellm_runtime *rt, const char *messages_json, const char *extra_json,
                            int32_t **ids, size_t *n) {
    const edgellm_chat_template *tmpl = edgellm_runtime_chat_template(rt);
    *ids = NULL;
    *n = 0;
    if (!tmpl) return el_err(EDGELLM_STATUS_UNSUPPORTED, "this engine has no chat template");
    char *rendered = NULL;
    EL_TRY(edgellm_chat_template_render(tmpl, messages_json, true, extra_json, &rendered));
    /* HF apply_chat_template(tokenize=True) adds no special tokens: the template wrote them */
    edgellm_status s = cli_prompt_ids(rt, rendered, false, ids, n);
    edgellm_free(rendered);
    return s;
}

typedef struct gen_ctx {
    edgellm_detok_stream *ds;
    cli_piece_fn fn;
    void *user;
    edgellm_status err;
} gen_ctx;

static bool gen_push(gen_ctx *c, int32_t tok, bool emit) {
    const char *piece = NULL;
    edgellm_status s = edgellm_detok_stream_push(c->ds, tok, &piece);
    if (s != EDGELLM_STATUS_OK) {
        c->err = s;
        return false;
    }
    return !emit || !piece || !piece[0] || c->fn(piece, c->user);
}

static bool gen_on_token(int32_t req, int32_t tok, void *user) {
    (void)req;
    return gen_push(user, tok, true);
}

edgellm_status cli_generate_text(edgellm_runtime *rt, const cli_gen_req *r, const edgellm_sampling_params *sp,
                                 cli_piece_fn fn, void *user, edgellm_result *res) {
    gen_ctx c = {.fn = fn, .user = user, .err = EDGELLM_STATUS_OK};
    memset(res, 0, sizeof *res);
    EL_TRY(edgellm_detok_stream_create(edgellm_runtime_tokenizer(rt), true, &c.ds));
    for (size_t i = 0; r->prime && i < r->n_ids; i++)
        if (!gen_push(&c, r->ids[i], r->emit_prompt)) {
            edgellm_detok_stream_free(c.ds);
            return c.err < 0 ? el_err_prefix(c.err, "detokenizing the prompt") : EDGELLM_STATUS_OK;
        }
    edgellm_request req = {0};
    req.prompt = r->ids;
    req.n_prompt = (int32_t)r->n_ids;
    req.max_new_tokens = r->max_new_tokens;
    req.ignore_eos = r->ignore_eos;
    edgellm_status s = edgellm_runtime_generate(rt, &req, 1, sp, gen_on_token, &c, res);
    const char *piece = NULL;
    if (s == EDGELLM_STATUS_OK && c.err == EDGELLM_STATUS_OK && res->finish != EDGELLM_FINISH_ABORTED) {
        c.err = edgellm_detok_stream_flush(c.ds, &piece);
        if (c.err == EDGELLM_STATUS_OK && piece && piece[0]) fn(piece, user);
    }
    edgellm_detok_stream_free(c.ds);
    if (s != EDGELLM_STATUS_OK) return s;
    if (c.err < 0) return el_err_prefix(c.err, "detokenizing");
    return EDGELLM_STATUS_OK;
}
