/*
 * test_cli.c - the edgellm CLI end to end, as a user runs it: export -> build -> run/generate/perplexity/
 * logits, compared with HF references, plus bad input (each must exit non-zero with one clear
 * "error:" line and leave no output behind).
 */
#include "edgellm/edgellm.h"
#include "models/models.h"
#include "test.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_tmp[512], g_cli[512];

/* Runs a shell command; returns its exit code, stdout in out (if non-NULL), stderr in err. */
static int sh(const char *cmd, char *out, size_t out_cap, char *err, size_t err_cap) {
    char full[8192], of[1200], ef[1200];
    snprintf(of, sizeof of, "%s/cli.out", g_tmp);
    snprintf(ef, sizeof ef, "%s/cli.err", g_tmp);
    snprintf(full, sizeof full, "%s > '%s' 2> '%s' < /dev/null", cmd, of, ef);
    int st = system(full);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    const char *files[2] = {of, ef};
    char *bufs[2] = {out, err};
    size_t caps[2] = {out_cap, err_cap};
    for (int i = 0; i < 2; i++) {
        if (!bufs[i]) continue;
        bufs[i][0] = 0;
        FILE *f = fopen(files[i], "rb");
        if (!f) continue;
        size_t n = fread(bufs[i], 1, caps[i] - 1, f);
        bufs[i][n] = 0;
        fclose(f);
    }
    return rc;
}

static int count_lines(const char *s, const char *prefix) {
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = s; p && *p;) {
        if (!strncmp(p, prefix, pl)) n++;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return n;
}

/* A failing command: non-zero exit, exactly one "error:" line that mentions `needle`. */
static void expect_error(const char *what, const char *cmd, const char *needle) {
    char err[8192];
    int rc = sh(cmd, NULL, 0, err, sizeof err);
    CHECKF(rc != 0, "%s: exit code 0 (expected failure)", what);
    CHECKF(rc != 128 && rc < 128, "%s: crashed (rc %d)", what, rc);
    CHECKF(count_lines(err, "error:") == 1, "%s: expected one 'error:' line, stderr was:\n%s", what, err);
    CHECKF(strstr(err, needle) != NULL, "%s: stderr does not mention '%s':\n%s", what, needle, err);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int32_t *ref_ids(const char *model, const char *tensor, int64_t *n) {
    char path[512];
    snprintf(path, sizeof path, "fixtures/models/%s/reference.safetensors", model);
    el_st_file st;
    if (el_st_open(path, &st) != EDGELLM_STATUS_OK) return NULL;
    const el_st_tensor *t = el_st_find(&st, tensor);
    int32_t *ids = NULL;
    if (t) {
        *n = t->shape[0];
        ids = malloc(t->nbytes);
        memcpy(ids, t->data, t->nbytes);
    }
    el_st_close(&st);
    return ids;
}

int main(void) {
    if (!t_cli_paths("cli", g_cli, sizeof g_cli, g_tmp, sizeof g_tmp)) return 1;
    el_rm_rf(g_tmp);
    el_mkdir_p(g_tmp);
    char cmd[8192], out[65536], err[8192];
    int rc;

    /* ---- stories260K: export -> build -> generate / run ---- */
    snprintf(cmd, sizeof cmd, "'%s' export --model fixtures/models/stories260K-hf --output '%s/st.export' --dtype fp32",
             g_cli, g_tmp);
    rc = sh(cmd, NULL, 0, err, sizeof err);
    CHECKF(rc == 0, "export: %s", err);
    snprintf(cmd, sizeof cmd, "'%s' build --input '%s/st.export' --engine '%s/st.engine' --max-input-len 256 --max-kv-cache-capacity 512",
             g_cli, g_tmp, g_tmp);
    rc = sh(cmd, NULL, 0, err, sizeof err);
    CHECKF(rc == 0, "build: %s", err);

    char *expected = NULL;
    size_t elen = 0;
    CHECK(el_read_file("fixtures/expected/stories260K_greedy.txt", 0, &expected, &elen) == EDGELLM_STATUS_OK);
    int64_t ng = 0;
    int32_t *greedy = ref_ids("stories260K-hf", "prompt0.greedy_ids", &ng);
    CHECK(greedy && ng == 48);

    /* generate from BOS, greedy, 48 tokens: the reference story */
    snprintf(cmd, sizeof cmd, "'%s' generate --engine '%s/st.engine' --temperature 0 -n 48 --ignore-eos ''", g_cli, g_tmp);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECKF(rc == 0, "generate: %s", err);
    if (expected) {
        size_t ol = strlen(out);
        while (ol && out[ol - 1] == '\n') out[--ol] = 0;
        CHECKF(!strcmp(out, expected), "generate text differs:\n got: %s\nwant: %s", out, expected);
    }

    /* run with the seed's JSON format */
    char in[1200], op[1200];
    snprintf(in, sizeof in, "%s/in.json", g_tmp);
    snprintf(op, sizeof op, "%s/out.json", g_tmp);
    write_text(in, "{\"batch_size\": 2, \"temperature\": 0.0, \"top_p\": 0.8, \"top_k\": 50, \"max_generate_length\": 48,\n"
                   " \"apply_chat_template\": true, \"requests\": [\n"
                   "  {\"messages\": [{\"role\": \"user\", \"content\": \"\"}], \"reference\": \"ignored\"},\n"
                   "  {\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Once upon a time\"}]}]},\n"
                   "  {\"messages\": [{\"role\": \"user\", \"content\": \"\"}]}]}\n");
    snprintf(cmd, sizeof cmd, "EDGELLM_LOG=error '%s' run --engine '%s/st.engine' --input '%s' --output '%s' --dump-profile",
             g_cli, g_tmp, in, op);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECKF(rc == 0, "run: %s", err);
    CHECKF(strstr(out, "=== LLM Generation") != NULL, "no profile printed");
    char *js = NULL;
    size_t jl;
    if (el_read_file(op, 0, &js, &jl) == EDGELLM_STATUS_OK) {
        /* the BOS-only requests' ids are the reference greedy ids, their text the reference story */
        char idbuf[4096];
        size_t L = (size_t)snprintf(idbuf, sizeof idbuf, "\"output_ids\":\t[");
        for (int64_t i = 0; greedy && i < ng; i++)
            L += (size_t)snprintf(idbuf + L, sizeof idbuf - L, i ? ", %d" : "%d", greedy[i]);
        snprintf(idbuf + L, sizeof idbuf - L, "]");
        CHECKF(strstr(js, idbuf) != NULL, "run output lacks the reference greedy ids %s", idbuf);
        const char *r0 = strstr(js, "\"output_text\"");
        CHECK(r0 != NULL);
        if (expected) CHECKF(strstr(js, expected) != NULL, "run output lacks the reference story");
        int n_story = 0;
        for (const char *p = js; expected && (p = strstr(p, expected)); p++) n_story++;
        CHECKF(n_story >= 2, "both BOS-only requests should produce the reference story (found %d)", n_story);
        CHECK(strstr(js, "\"request_idx\":\t2") != NULL);
        CHECK(strstr(js, "\"batch_idx\":\t1") != NULL);
        el_free(js);
    } else {
        CHECKF(0, "run wrote no output file");
    }

    /* ---- perplexity and logits on sotu-qwen3 (fp32) ---- */
    snprintf(cmd, sizeof cmd,
             "'%s' export --model fixtures/models/sotu-qwen3 --output '%s/sq.export' --dtype fp32 && "
             "'%s' build --input '%s/sq.export' --engine '%s/sq.engine' --max-input-len 1024 --max-kv-cache-capacity 1024",
             g_cli, g_tmp, g_cli, g_tmp, g_tmp);
    rc = sh(cmd, NULL, 0, err, sizeof err);
    CHECKF(rc == 0, "sotu export/build: %s", err);
    /* EDGELLM_TEST_QUICK (sanitizer builds): a 20 kB slice, checked for sanity only */
    bool quick = getenv("EDGELLM_TEST_QUICK") != NULL;
    if (quick)
        snprintf(cmd, sizeof cmd, "head -c 20000 fixtures/data/sotu_2006_2021.txt > '%s/slice.txt' && "
                                  "'%s' perplexity --engine '%s/sq.engine' --file '%s/slice.txt' --window 512",
                 g_tmp, g_cli, g_tmp, g_tmp);
    else
        snprintf(cmd, sizeof cmd,
                 "'%s' perplexity --engine '%s/sq.engine' --file fixtures/data/sotu_2006_2021.txt --window 512", g_cli,
                 g_tmp);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECKF(rc == 0, "perplexity: %s", err);
    double ppl = 0;
    long long scored = 0;
    const char *last = strstr(out, "{\"ppl\":");
    CHECKF(last && sscanf(last, "{\"ppl\": %lf, \"tokens_scored\": %lld}", &ppl, &scored) == 2, "bad output: %s", out);
    const double ref_ppl = 59.330941674677305;
    if (quick) {
        CHECKF(scored > 1000 && ppl > 10 && ppl < 500, "slice perplexity %.3f over %lld tokens", ppl, scored);
    } else {
        CHECKF(fabs(ppl - ref_ppl) / ref_ppl <= 1e-3, "perplexity %.4f not within 0.1%% of %.4f", ppl, ref_ppl);
        CHECKF(scored == 155393, "tokens scored %lld != 155393", scored);
    }
    printf("  sotu-qwen3 fp32 perplexity %.6f (reference %.6f), %lld tokens scored%s\n", ppl, ref_ppl, scored,
           quick ? " (quick slice)" : "");

    int64_t n0 = 0;
    int32_t *ids = ref_ids("sotu-qwen3", "prompt1.input_ids", &n0);
    CHECK(ids != NULL);
    if (ids) {
        char list[8192] = "";
        size_t L = 0;
        for (int64_t i = 0; i < n0; i++) L += (size_t)snprintf(list + L, sizeof list - L, i ? ",%d" : "%d", ids[i]);
        snprintf(cmd, sizeof cmd, "'%s' logits --engine '%s/sq.engine' --ids %s --output '%s/lg.safetensors'", g_cli, g_tmp,
                 list, g_tmp);
        rc = sh(cmd, NULL, 0, err, sizeof err);
        CHECKF(rc == 0, "logits: %s", err);
        el_st_file a, b;
        char p[1200];
        snprintf(p, sizeof p, "%s/lg.safetensors", g_tmp);
        if (el_st_open(p, &a) == EDGELLM_STATUS_OK) {
            if (el_st_open("fixtures/models/sotu-qwen3/reference.safetensors", &b) == EDGELLM_STATUS_OK) {
                const el_st_tensor *x = el_st_find(&a, "logits"), *y = el_st_find(&b, "prompt1.logits");
                CHECK(x && y && x->nbytes == y->nbytes && x->shape[0] == n0);
                if (x && y && x->nbytes == y->nbytes) {
                    double e = t_nmse(y->data, x->data, x->nbytes / 4);
                    CHECKF(e <= 1e-6, "logits command NMSE %.3e", e);
                }
                el_st_close(&b);
            }
            el_st_close(&a);
        } else {
            CHECKF(0, "logits output unreadable: %s", edgellm_last_error());
        }
        free(ids);
    }

    /* ---- bad input ---- */
    char bad[1200], p2[1400];
    /* missing model dir */
    snprintf(cmd, sizeof cmd, "'%s' export --model '%s/nope' --output '%s/x.export'", g_cli, g_tmp, g_tmp);
    expect_error("missing model dir", cmd, "nope");
    CHECK(!el_dir_exists("x.export"));
    /* truncated safetensors */
    snprintf(bad, sizeof bad, "%s/trunc", g_tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp fixtures/models/tiny-qwen2/config.json '%s/' && head -c 300000 "
                              "fixtures/models/tiny-qwen2/model.safetensors > '%s/model.safetensors'",
             bad, bad, bad);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' export --model '%s' --output '%s/trunc.export'", g_cli, bad, g_tmp);
    expect_error("truncated safetensors", cmd, "safetensors");
    snprintf(p2, sizeof p2, "%s/trunc.export", g_tmp);
    CHECKF(!el_dir_exists(p2), "a failed export left %s behind", p2);
    /* corrupt header */
    snprintf(bad, sizeof bad, "%s/hdr", g_tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp fixtures/models/tiny-qwen2/config.json '%s/' && "
                              "cp fixtures/models/tiny-qwen2/model.safetensors '%s/' && printf '\\377\\377\\377\\377' | "
                              "dd of='%s/model.safetensors' bs=1 seek=0 conv=notrunc 2>/dev/null",
             bad, bad, bad, bad);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' export --model '%s' --output '%s/hdr.export'", g_cli, bad, g_tmp);
    expect_error("corrupt safetensors header", cmd, "model.safetensors");
    /* unknown architecture */
    snprintf(bad, sizeof bad, "%s/arch", g_tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp fixtures/models/tiny-qwen2/model.safetensors '%s/' && "
                              "sed 's/Qwen2ForCausalLM/FooBarForCausalLM/' fixtures/models/tiny-qwen2/config.json > '%s/config.json'",
             bad, bad, bad);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' export --model '%s' --output '%s/arch.export'", g_cli, bad, g_tmp);
    expect_error("unknown architecture", cmd, "FooBarForCausalLM");
    sh(cmd, NULL, 0, err, sizeof err);
    CHECKF(strstr(err, "Qwen3ForCausalLM") != NULL, "the error should list the supported architectures: %s", err);
    /* wrong shapes in config */
    snprintf(bad, sizeof bad, "%s/shape", g_tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp fixtures/models/tiny-qwen2/model.safetensors '%s/' && "
                              "sed 's/\"intermediate_size\": 384/\"intermediate_size\": 512/' "
                              "fixtures/models/tiny-qwen2/config.json > '%s/config.json'",
             bad, bad, bad);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' export --model '%s' --output '%s/shape.export'", g_cli, bad, g_tmp);
    expect_error("wrong shapes in config", cmd, "mlp");
    /* corrupt engine (one flipped byte in the weights) */
    snprintf(cmd, sizeof cmd, "cp -r '%s/st.engine' '%s/bad.engine' && sz=$(stat -c %%s '%s/bad.engine/model.engine') && "
                              "printf '\\125' | dd of='%s/bad.engine/model.engine' bs=1 seek=$((sz - 100)) conv=notrunc 2>/dev/null",
             g_tmp, g_tmp, g_tmp, g_tmp);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' generate --engine '%s/bad.engine' -n 4 'hi'", g_cli, g_tmp);
    expect_error("corrupt engine", cmd, "checksum");
    /* truncated engine */
    snprintf(cmd, sizeof cmd, "cp -r '%s/st.engine' '%s/tr.engine' && truncate -s 5000 '%s/tr.engine/model.engine'", g_tmp,
             g_tmp, g_tmp);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' generate --engine '%s/tr.engine' -n 4 'hi'", g_cli, g_tmp);
    expect_error("truncated engine", cmd, "model.engine");
    /* malformed input JSON: no output file */
    remove(op);
    write_text(in, "{\"requests\": [ {\"messages\": [ }");
    snprintf(cmd, sizeof cmd, "'%s' run --engine '%s/st.engine' --input '%s' --output '%s'", g_cli, g_tmp, in, op);
    expect_error("malformed input JSON", cmd, "JSON");
    CHECK(!el_file_exists(op));
    /* unknown content type */
    write_text(in, "{\"requests\": [{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"smell\"}]}]}]}");
    expect_error("unknown content type", cmd, "smell");
    CHECK(!el_file_exists(op));
    /* prompt longer than max input length (256 for this engine) */
    {
        char *big = malloc(20000);
        strcpy(big, "{\"requests\": [{\"messages\": [{\"role\": \"user\", \"content\": \"");
        for (int i = 0; i < 600; i++) strcat(big, "Lily ran. ");
        strcat(big, "\"}]}]}");
        write_text(in, big);
        free(big);
    }
    expect_error("over-long prompt", cmd, "max input length");
    CHECK(!el_file_exists(op));
    /* batch larger than the engine's max batch (4) */
    write_text(in, "{\"batch_size\": 8, \"requests\": [{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}]}");
    expect_error("max batch exceeded", cmd, "max batch");
    CHECK(!el_file_exists(op));
    /* missing engine */
    snprintf(cmd, sizeof cmd, "'%s' generate --engine '%s/none.engine' 'hi'", g_cli, g_tmp);
    expect_error("missing engine", cmd, "none.engine");
    /* unknown flag: usage error */
    snprintf(cmd, sizeof cmd, "'%s' build --input x --engine y --frobnicate", g_cli);
    expect_error("unknown flag", cmd, "frobnicate");

    /* bench: the JSON line (tok/s, bytes per step, time to first token, peak memory), and a batch beyond the
     * engine's profile (max batch 4) as an error */
    snprintf(cmd, sizeof cmd, "'%s' bench --engine '%s/st.engine' --prompt-len 16 --gen-len 8 --reps 2 --json", g_cli,
             g_tmp);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECKF(rc == 0, "bench: %s", err);
    {
        cJSON *j = cJSON_Parse(out);
        CHECKF(j != NULL, "bench --json printed no JSON: %s", out);
        const cJSON *pf = cJSON_GetObjectItem(j, "prefill_tok_s"), *dc = cJSON_GetObjectItem(j, "decode_tok_s");
        const double pmed = cJSON_GetNumberValue(cJSON_GetObjectItem(pf, "median"));
        const double dmin = cJSON_GetNumberValue(cJSON_GetObjectItem(dc, "min"));
        const double dmax = cJSON_GetNumberValue(cJSON_GetObjectItem(dc, "max"));
        const double ttft = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ttft_ms"));
        const double wb = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "weight_bytes_per_step"));
        const double rss = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "peak_cpu_memory_bytes"));
        CHECKF(pmed > 0 && dmin > 0 && dmax >= dmin, "bench tok/s: prefill %g, decode %g .. %g", pmed, dmin, dmax);
        /* stories260K fp32 without the (tied) table counted twice: ~1 MB of weights per step */
        CHECKF(wb > 0.5e6 && wb < 2e6, "bench weight bytes per step %g", wb);
        CHECKF(ttft > 0 && ttft < 60e3, "bench time to first token %g ms", ttft);
        CHECKF(rss > wb, "bench peak CPU memory %g bytes (weights alone %g)", rss, wb);
        cJSON_Delete(j);
    }
    snprintf(cmd, sizeof cmd, "'%s' bench --engine '%s/st.engine' --prompt-len 16 --gen-len 8 --batch 9", g_cli, g_tmp);
    expect_error("bench batch beyond the profile", cmd, "too small");

    free(expected);
    free(greedy);
    return t_finish("test_cli");
}
