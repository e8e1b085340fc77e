/*
 * simple.c - the README's C API example as a complete program: greedy continuation of a prompt.
 *
 *   example_simple ENGINE_DIR "The capital of France is"
 *
 * Loads the engine, encodes the prompt with the engine's tokenizer (BOS added as the model wants),
 * generates up to 32 tokens greedily and prints the decoded continuation. The code between
 * README:begin and README:end makes the same API calls, in the same order, as the README's "C API"
 * section (the example_readme_sync test checks this); it only adds error checks.
 */
#include <edgellm/edgellm.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, edgellm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ENGINE_DIR PROMPT\n", argv[0]);
        return 2;
    }
    const char *engine_dir = argv[1], *prompt = argv[2];
    /* README:begin */
    edgellm_runtime *rt;
    if (edgellm_runtime_create(engine_dir, NULL, &rt) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "error: %s\n", edgellm_last_error());
        return 1;
    }
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    if (!tok) {
        fprintf(stderr, "error: engine %s has no tokenizer\n", engine_dir);
        edgellm_runtime_free(rt);
        return 1;
    }
    int32_t *ids; size_t n;
    if (edgellm_tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &n) != EDGELLM_STATUS_OK) {
        int rc = fail("encoding the prompt");
        edgellm_runtime_free(rt);
        return rc;
    }
    edgellm_request req = {.prompt = ids, .n_prompt = (int32_t)n, .max_new_tokens = 32};
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0;                      /* greedy */
    edgellm_result res;
    if (edgellm_runtime_generate(rt, &req, 1, &sp, NULL, NULL, &res) != EDGELLM_STATUS_OK) {
        int rc = fail("generating");
        edgellm_free(ids); edgellm_runtime_free(rt);
        return rc;
    }
    char *text; size_t len;
    if (edgellm_tokenizer_decode(tok, res.ids, (size_t)res.n_ids, true, &text, &len) != EDGELLM_STATUS_OK) {
        int rc = fail("decoding");
        edgellm_free(ids); edgellm_result_clear(&res); edgellm_runtime_free(rt);
        return rc;
    }
    printf("%s\n", text);
    edgellm_free(text); edgellm_free(ids); edgellm_result_clear(&res); edgellm_runtime_free(rt);
    /* README:end */
    return 0;
}
