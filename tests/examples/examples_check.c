/*
 * examples_check.c - ctest driver for the programs in examples/ (registered by tests/examples.cmake).
 *
 *   examples_check readme README.md examples/simple/simple.c
 *       every statement of the README's C API snippet that uses the API appears, in order, in simple.c
 *       (between README:begin and README:end), up to the engine path / prompt arguments
 *   examples_check simple EXAMPLE_SIMPLE ENGINE_DIR TMP
 *       greedy from "Once upon a time" on stories260K prints the HF reference continuation
 *       (prompt1.greedy_ids of reference.safetensors, decoded with the library's tokenizer)
 *   examples_check chat EXAMPLE_CHAT ENGINE_DIR TMP
 *       two turns + /reset, greedy and seeded sampling: the streamed replies equal what the library
 *       gives for the same conversation rendered with the engine's chat template; bad flags fail cleanly
 *
 * Run from tests/ (fixtures/...).
 */
#include "edgellm/edgellm.h"
#include "models/models.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <sys/wait.h>

static char g_tmp[1024];

/* Runs cmd with stdin from `input` (NULL = /dev/null); stdout/stderr into out/err (malloc'd). */
static int run_cmd(const char *cmd, const char *input, char **out, char **err) {
    char in[1200], of[1200], ef[1200], full[8192];
    snprintf(in, sizeof in, "%s/stdin.txt", g_tmp);
    snprintf(of, sizeof of, "%s/stdout.txt", g_tmp);
    snprintf(ef, sizeof ef, "%s/stderr.txt", g_tmp);
    FILE *f = fopen(in, "wb");
    if (f) {
        if (input) fputs(input, f);
        fclose(f);
    }
    snprintf(full, sizeof full, "%s < '%s' > '%s' 2> '%s'", cmd, in, of, ef);
    int st = system(full);
    size_t n;
    *out = NULL;
    *err = NULL;
    if (el_read_file(of, 0, out, &n) != EDGELLM_STATUS_OK) *out = el_strdup("");
    if (el_read_file(ef, 0, err, &n) != EDGELLM_STATUS_OK) *err = el_strdup("");
    if (!WIFEXITED(st)) return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return WEXITSTATUS(st);
}

/* ---- readme ------------------------------------------------------------------------------------ */

/* s without whitespace (malloc'd) */
static char *squash(const char *s, size_t n) {
    char *o = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) o[k++] = s[i];
    o[k] = 0;
    return o;
}

static void replace_all(char **s, const char *from, const char *to) {
    char *p;
    while ((p = strstr(*s, from))) {
        size_t a = (size_t)(p - *s), fl = strlen(from), tl = strlen(to), L = strlen(*s);
        char *n = malloc(L - fl + tl + 1);
        memcpy(n, *s, a);
        memcpy(n + a, to, tl);
        memcpy(n + a + tl, p + fl, L - a - fl + 1);
        free(*s);
        *s = n;
    }
}

static int check_readme(const char *readme, const char *simple) {
    char *r = NULL, *c = NULL;
    size_t rl, cl;
    CHECK_OK(el_read_file(readme, 0, &r, &rl));
    CHECK_OK(el_read_file(simple, 0, &c, &cl));
    if (!r || !c) return t_finish("example_readme_sync");
    const char *sec = strstr(r, "## C API");
    const char *b = sec ? strstr(sec, "```c\n") : NULL;
    const char *e = b ? strstr(b + 5, "```") : NULL;
    CHECKF(b && e, "README.md has no ```c block in its \"C API\" section");
    const char *cb = strstr(c, "/* README:begin */"), *ce = strstr(c, "/* README:end */");
    CHECKF(cb && ce && cb < ce, "simple.c lacks the README:begin / README:end markers");
    if (b && e && cb && ce) {
        char *code = squash(cb, (size_t)(ce - cb));
        /* the README's literal engine path and prompt are the program's arguments */
        char *snip = squash(b + 5, (size_t)(e - b - 5));
        replace_all(&snip, "\"qwen3.engine\"", "engine_dir");
        replace_all(&snip, "\"ThecapitalofFranceis\",24", "prompt,strlen(prompt)");
        const char *at = code;
        int n_stmt = 0;
        for (char *st = snip; *st;) {
            char *semi = strchr(st, ';');
            if (!semi) break;
            *semi = 0;
            /* statements that use the API (skip the #include line and plain C) */
            char *stmt = st;
            if (!strncmp(stmt, "#include<edgellm/edgellm.h>", 27)) stmt += 27;
            if (strstr(stmt, "edgellm_")) {
                const char *hit = strstr(at, stmt);
                CHECKF(hit != NULL, "README statement not found (in order) in simple.c: %s", stmt);
                if (hit) at = hit + strlen(stmt);
                n_stmt++;
            }
            st = semi + 1;
        }
        CHECKF(n_stmt >= 12, "only %d API statements found in the README snippet", n_stmt);
        printf("  %d README API statements found in order in examples/simple/simple.c\n", n_stmt);
        free(code);
        free(snip);
    }
    el_free(r);
    el_free(c);
    return t_finish("example_readme_sync");
}

/* ---- simple ------------------------------------------------------------------------------------ */

static int check_simple(const char *bin, const char *engine) {
    edgellm_tokenizer *tok = NULL;
    CHECK_OK(edgellm_tokenizer_load("fixtures/models/stories260K-hf", &tok));
    el_st_file ref;
    edgellm_status s = el_st_open("fixtures/models/stories260K-hf/reference.safetensors", &ref);
    CHECKF(s == EDGELLM_STATUS_OK, "reference: %s", edgellm_last_error());
    if (!tok || s) return t_finish("example_simple");
    const el_st_tensor *ti = el_st_find(&ref, "prompt1.input_ids"), *tg = el_st_find(&ref, "prompt1.greedy_ids");
    CHECK(ti && tg && ti->dtype == EL_DTYPE_I32 && tg->dtype == EL_DTYPE_I32);
    if (ti && tg) {
        /* prompt1 is "Once upon a time" with BOS, as the example encodes it */
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(edgellm_tokenizer_encode(tok, "Once upon a time", 16, true, &ids, &n));
        CHECKF(ids && (int64_t)n == ti->shape[0] && !memcmp(ids, ti->data, n * sizeof(int32_t)),
               "prompt1.input_ids is not the encoding of \"Once upon a time\"");
        edgellm_free(ids);
        /* the example generates up to 32 tokens and stops at EOS (not printed) */
        const int32_t *g = tg->data;
        int64_t ng = tg->shape[0] < 32 ? tg->shape[0] : 32;
        int32_t eos = edgellm_tokenizer_eos_id(tok);
        for (int64_t i = 0; i < ng; i++)
            if (g[i] == eos) ng = i;
        char *want = NULL;
        size_t wl = 0;
        CHECK_OK(edgellm_tokenizer_decode(tok, g, (size_t)ng, true, &want, &wl));
        char cmd[4096], *out, *err;
        snprintf(cmd, sizeof cmd, "'%s' '%s' 'Once upon a time'", bin, engine);
        int rc = run_cmd(cmd, NULL, &out, &err);
        CHECKF(rc == 0, "example_simple exited %d: %s", rc, err);
        size_t ol = strlen(out);
        CHECKF(ol && out[ol - 1] == '\n', "output does not end with a newline");
        if (ol && out[ol - 1] == '\n') out[--ol] = 0;
        CHECKF(want && wl > 20 && !strcmp(out, want), "example_simple output differs from the reference:\n got: %s\nwant: %s",
               out, want ? want : "");
        printf("  Once upon a time%s\n", out);
        el_free(out);
        el_free(err);
        /* usage and error paths */
        snprintf(cmd, sizeof cmd, "'%s'", bin);
        rc = run_cmd(cmd, NULL, &out, &err);
        CHECKF(rc == 2 && strstr(err, "usage:"), "no arguments: rc %d, stderr %s", rc, err);
        el_free(out);
        el_free(err);
        snprintf(cmd, sizeof cmd, "'%s' '%s/no-such.engine' hi", bin, g_tmp);
        rc = run_cmd(cmd, NULL, &out, &err);
        CHECKF(rc == 1 && !strncmp(err, "error: ", 7) && strstr(err, "no-such.engine") && !out[0],
               "missing engine: rc %d, stderr %s", rc, err);
        el_free(out);
        el_free(err);
        /* an engine without a tokenizer (tiny-qwen3, built next to this one) */
        char tq[1200];
        snprintf(tq, sizeof tq, "%s", engine);
        char *slash = strrchr(tq, '/');
        if (slash) snprintf(slash + 1, sizeof tq - (size_t)(slash + 1 - tq), "tq.engine");
        snprintf(cmd, sizeof cmd, "'%s' '%s' hi", bin, tq);
        rc = run_cmd(cmd, NULL, &out, &err);
        CHECKF(rc == 1 && !strncmp(err, "error: ", 7) && strstr(err, "tokenizer") && !out[0],
               "engine without a tokenizer: rc %d, stderr %s", rc, err);
        el_free(out);
        el_free(err);
        edgellm_free(want);
    }
    el_st_close(&ref);
    edgellm_tokenizer_free(tok);
    return t_finish("example_simple");
}

/* ---- chat -------------------------------------------------------------------------------------- */

/* The reply the library gives for `msgs` (rendered with the template, generation prompt on). */
static char *lib_reply(edgellm_runtime *rt, cJSON *msgs, const edgellm_sampling_params *sp, int32_t n_new) {
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    const edgellm_chat_template *tmpl = edgellm_runtime_chat_template(rt);
    char *mj = cJSON_PrintUnformatted(msgs), *rendered = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    CHECK_OK(edgellm_chat_template_render(tmpl, mj, true, "{\"enable_thinking\": false}", &rendered));
    free(mj);
    if (!rendered) return NULL;
    CHECK_OK(edgellm_tokenizer_encode(tok, rendered, strlen(rendered), false, &ids, &n));
    edgellm_free(rendered);
    edgellm_request req = {.prompt = ids, .n_prompt = (int32_t)n, .max_new_tokens = n_new};
    edgellm_result res = {0};
    CHECK_OK(edgellm_runtime_generate(rt, &req, 1, sp, NULL, NULL, &res));
    CHECK_OK(edgellm_tokenizer_decode(tok, res.ids, (size_t)res.n_ids, true, &text, &len));
    edgellm_result_clear(&res);
    edgellm_free(ids);
    return text;
}

static void add_msg(cJSON *msgs, const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddItemToArray(msgs, m);
}

/* Runs the example on turns u1, u2, "/reset", u1 and compares with the library. */
static void chat_case(const char *bin, const char *engine, edgellm_runtime *rt, const char *flags,
                      const edgellm_sampling_params *sp, int32_t n_new, const char *system) {
    const char *u1 = "What is the state of the union?", *u2 = "And what about \"taxes\" and the army?";
    cJSON *msgs = cJSON_CreateArray();
    if (system) add_msg(msgs, "system", system);
    add_msg(msgs, "user", u1);
    char *r1 = lib_reply(rt, msgs, sp, n_new);
    add_msg(msgs, "assistant", r1 ? r1 : "");
    add_msg(msgs, "user", u2);
    char *r2 = lib_reply(rt, msgs, sp, n_new);
    cJSON_Delete(msgs);
    if (!r1 || !r2) return;
    char *want = malloc(strlen(r1) * 2 + strlen(r2) + 8);
    sprintf(want, "%s\n%s\n%s\n", r1, r2, r1); /* after /reset, u1 again gives r1 (same seed per call) */
    char cmd[4096], input[512], *out, *err;
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s", bin, engine, flags);
    snprintf(input, sizeof input, "%s\n%s\n/reset\n%s\n/quit\nnot read\n", u1, u2, u1);
    int rc = run_cmd(cmd, input, &out, &err);
    CHECKF(rc == 0, "example_chat %s exited %d: %s", flags, rc, err);
    CHECKF(strlen(r1) > 10 && strlen(r2) > 10, "replies too short to be a meaningful check: '%s' / '%s'", r1, r2);
    CHECKF(!strcmp(out, want), "example_chat %s output differs from the library:\n got: %s\nwant: %s", flags, out, want);
    printf("  chat %s: %zu + %zu bytes of replies match\n", flags, strlen(r1), strlen(r2));
    edgellm_free(r1);
    edgellm_free(r2);
    free(want);
    el_free(out);
    el_free(err);
}

static int check_chat(const char *bin, const char *engine) {
    edgellm_runtime *rt = NULL;
    CHECK_OK(edgellm_runtime_create(engine, NULL, &rt));
    if (!rt) return t_finish("example_chat");
    CHECK(edgellm_runtime_chat_template(rt) != NULL);
    if (!edgellm_runtime_chat_template(rt)) {
        edgellm_runtime_free(rt);
        return t_finish("example_chat");
    }
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0;
    chat_case(bin, engine, rt, "--temperature 0 -n 24", &sp, 24, NULL);
    sp.temperature = 0.8f;
    sp.top_k = 20;
    sp.top_p = 0.9f;
    sp.seed = 7;
    chat_case(bin, engine, rt, "--temperature 0.8 --top-k 20 --top-p 0.9 --seed 7 -n 20 --system 'Be brief.'", &sp,
              20, "Be brief.");
    edgellm_runtime_free(rt);

    char cmd[4096], *out, *err;
    /* --show-prompt: the second turn's prompt holds the first reply */
    snprintf(cmd, sizeof cmd, "'%s' '%s' --temperature 0 -n 12 --show-prompt", bin, engine);
    int rc = run_cmd(cmd, "hello\nagain\n", &out, &err);
    CHECKF(rc == 0, "show-prompt: rc %d %s", rc, err);
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
    const char *p2 = strstr(err, "again");
    CHECKF(out[0] && p2 && strstr(err, out) && strstr(err, out) < p2, "the second prompt lacks the first reply '%s':\n%s",
           out, err);
    el_free(out);
    el_free(err);
    /* bad flags / missing engine / engine without a chat template: clean errors */
    snprintf(cmd, sizeof cmd, "'%s' '%s' --top-p 0", bin, engine);
    rc = run_cmd(cmd, "hi\n", &out, &err);
    CHECKF(rc == 2 && strstr(err, "usage:") && !out[0], "--top-p 0: rc %d %s", rc, err);
    el_free(out);
    el_free(err);
    snprintf(cmd, sizeof cmd, "'%s' '%s' --bogus 1", bin, engine);
    rc = run_cmd(cmd, "hi\n", &out, &err);
    CHECKF(rc == 2 && strstr(err, "--bogus"), "--bogus: rc %d %s", rc, err);
    el_free(out);
    el_free(err);
    snprintf(cmd, sizeof cmd, "'%s' '%s/no-such.engine'", bin, g_tmp);
    rc = run_cmd(cmd, "hi\n", &out, &err);
    CHECKF(rc == 1 && !strncmp(err, "error: ", 7) && strstr(err, "no-such.engine"), "missing engine: rc %d %s", rc, err);
    el_free(out);
    el_free(err);
    /* engines without a chat template (stories260K) or a tokenizer (tiny-qwen3), built next to this one */
    const char *others[2] = {"st.engine", "tq.engine"}, *needles[2] = {"chat template", "tokenizer"};
    for (int i = 0; i < 2; i++) {
        char other[1200];
        snprintf(other, sizeof other, "%s", engine);
        char *slash = strrchr(other, '/');
        if (slash) snprintf(slash + 1, sizeof other - (size_t)(slash + 1 - other), "%s", others[i]);
        snprintf(cmd, sizeof cmd, "'%s' '%s'", bin, other);
        rc = run_cmd(cmd, "hi\n", &out, &err);
        CHECKF(rc == 1 && !strncmp(err, "error: ", 7) && strstr(err, needles[i]) && !out[0], "%s: rc %d %s", others[i],
               rc, err);
        el_free(out);
        el_free(err);
    }
    return t_finish("example_chat");
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: examples_check readme|simple|chat ...\n");
        return 2;
    }
    snprintf(g_tmp, sizeof g_tmp, "%s", argc > 4 ? argv[4] : "/tmp/edgellm-test/examples");
    el_mkdir_p(g_tmp);
    if (!strcmp(argv[1], "readme")) return check_readme(argv[2], argv[3]);
    if (!strcmp(argv[1], "simple")) return check_simple(argv[2], argv[3]);
    if (!strcmp(argv[1], "chat")) return check_chat(argv[2], argv[3]);
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
