/* test_cli_models.c - `edgellm export|build|info|synth` through the real binary ($EDGELLM_CLI):
 * exit codes (0 ok, 1 failure, 2 usage) and exactly one "error: ..." line on stderr for failures. */
#include "models_test_util.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <sys/wait.h>

static const char *g_cli;
static char g_dir[1024];
static char g_err[8192], g_out[65536];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char args[4096], cmd[8192], ef[1200], of[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(ef, sizeof ef, "%s/stderr.txt", g_dir);
    snprintf(of, sizeof of, "%s/stdout.txt", g_dir);
    snprintf(cmd, sizeof cmd, "EDGELLM_LOG=error '%s' %s >'%s' 2>'%s'", g_cli, args, of, ef);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    size_t n;
    char *e = tu_read(ef, &n);
    snprintf(g_err, sizeof g_err, "%s", e ? e : "");
    free(e);
    e = tu_read(of, &n);
    snprintf(g_out, sizeof g_out, "%s", e ? e : "");
    free(e);
    return rc;
}

/* stderr is exactly one line, starting with "error:" and containing needle */
static bool one_error_line(const char *needle) {
    size_t n = strlen(g_err);
    bool one = n > 0 && !strncmp(g_err, "error: ", 7) && strchr(g_err, '\n') == g_err + n - 1;
    return one && strstr(g_err, needle);
}

#define EXPECT_FAIL(rc_want, needle, ...)                                                              \
    do {                                                                                               \
        int rc_ = run(__VA_ARGS__);                                                                    \
        CHECKF(rc_ == (rc_want), "exit %d != %d; stderr: %s", rc_, rc_want, g_err);                    \
        CHECKF(one_error_line(needle), "stderr is not one error line with '%s': %s", needle, g_err);   \
    } while (0)

int main(void) {
    g_cli = getenv("EDGELLM_CLI");
    if (!g_cli || !*g_cli) {
        fprintf(stderr, "EDGELLM_CLI is not set\n");
        return 1;
    }
    tu_scratch(g_dir, sizeof g_dir, "test_cli_models");
    char exp[1200], eng[1200], bad[1200], p[1300];
    snprintf(exp, sizeof exp, "%s/exp", g_dir);
    snprintf(eng, sizeof eng, "%s/eng", g_dir);

    /* help and usage errors */
    const char *cmds[] = {"export", "build", "info", "synth"};
    for (int i = 0; i < 4; i++) {
        CHECK(run("%s --help", cmds[i]) == 0 && strstr(g_out, "usage: edgellm") != NULL);
        EXPECT_FAIL(2, "unknown option '--bogus'", "%s --bogus 1", cmds[i]);
    }
    EXPECT_FAIL(2, "required", "export --model fixtures/models/tiny-qwen3");
    EXPECT_FAIL(2, "needs a value", "export --model");
    EXPECT_FAIL(2, "--dtype", "export --model a --output b --dtype int4");
    EXPECT_FAIL(2, "--max-batch-size", "build --input a --engine b --max-batch-size 0");
    EXPECT_FAIL(2, "--max-batch-size", "build --input a --engine b --max-batch-size 12x");
    EXPECT_FAIL(2, "--max-input-len", "build --input a --engine b --max-input-len 5000");
    EXPECT_FAIL(2, "--backend", "build --input a --engine b --backend tpu");
    EXPECT_FAIL(2, "--shape", "synth --output x --shape gpt5");

    /* the happy path */
    CHECK(run("export --model fixtures/models/tiny-qwen3 --output '%s' --dtype bf16", exp) == 0);
    CHECK(run("build --input '%s' --engine '%s' --max-batch-size 2 --max-input-len 128 --max-kv-cache-capacity 256",
              exp, eng) == 0);
    CHECKF(strstr(g_err, "built ") && strstr(g_err, "tensors") && strstr(g_err, "MB weights") &&
               strstr(g_err, "peak RSS"),
           "build summary: %s", g_err);
    CHECK(run("info --engine '%s' --verify", eng) == 0);
    cJSON *j = cJSON_Parse(g_out);
    CHECKF(j != NULL, "info output is not JSON: %s", g_out);
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(j, "profile");
    CHECK(cJSON_GetObjectItemCaseSensitive(prof, "max_batch_size") &&
          cJSON_GetObjectItemCaseSensitive(prof, "max_batch_size")->valueint == 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(prof, "max_kv_cache_capacity")->valueint == 256);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    CHECK(cJSON_GetObjectItemCaseSensitive(cfg, "num_hidden_layers")->valueint == 3);
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(j, "weight_dtype")->valuestring, "bf16"));
    cJSON_Delete(j);
    EXPECT_FAIL(1, "already exists", "build --input '%s' --engine '%s'", exp, eng);
    CHECK(run("build --input '%s' --engine '%s' --overwrite", exp, eng) == 0);

    /* failures: one error line, exit 1 */
    EXPECT_FAIL(1, "does-not-exist", "export --model fixtures/models/does-not-exist --output '%s/x'", g_dir);
    snprintf(bad, sizeof bad, "%s/gpt2", g_dir);
    el_mkdir_p(bad);
    snprintf(p, sizeof p, "%s/config.json", bad);
    const char *cj = "{\"architectures\":[\"GPT2LMHeadModel\"],\"vocab_size\":10}";
    tu_write(p, cj, strlen(cj));
    EXPECT_FAIL(1, "unsupported architecture 'GPT2LMHeadModel' (supported: LlamaForCausalLM", "export --model '%s' --output '%s/x'",
                bad, g_dir);
    /* corrupt safetensors: valid config, weights cut in half */
    snprintf(bad, sizeof bad, "%s/corrupt", g_dir);
    el_mkdir_p(bad);
    snprintf(p, sizeof p, "%s/config.json", bad);
    el_copy_file("fixtures/models/tiny-qwen3/config.json", p);
    size_t n;
    char *raw = tu_read("fixtures/models/tiny-qwen3/model.safetensors", &n);
    snprintf(p, sizeof p, "%s/model.safetensors", bad);
    tu_write(p, raw, n / 2);
    free(raw);
    EXPECT_FAIL(1, "model.safetensors", "export --model '%s' --output '%s/x'", bad, g_dir);
    CHECK(!el_dir_exists(p) && run("info --engine '%s/x'", g_dir) == 1);
    /* corrupt engine: flipped data byte (info --verify), truncated (info) */
    snprintf(p, sizeof p, "%s/model.engine", eng);
    raw = tu_read(p, &n);
    raw[n - 10] ^= 0x40;
    tu_write(p, raw, n);
    CHECK(run("info --engine '%s'", eng) == 0);
    EXPECT_FAIL(1, "checksum mismatch in tensor", "info --engine '%s' --verify", eng);
    tu_write(p, raw, n / 2);
    EXPECT_FAIL(1, "truncated", "info --engine '%s'", eng);
    free(raw);
    EXPECT_FAIL(1, "not an edgellm export", "build --input fixtures/models/tiny-qwen3 --engine '%s/y'", g_dir);

    el_rm_rf(g_dir);
    return t_finish("test_cli_models");
}
