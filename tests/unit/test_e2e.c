/*
 * test_e2e.c - HF checkpoint -> export -> engine -> runtime, checked against HF transformers references
 * (reference.safetensors of each fixture: logits of every position for 3 prompts, greedy continuations).
 *
 *   fp32 engine: logits NMSE <= 1e-6, greedy ids identical
 *   bf16 / fp16 engines: logits NMSE <= 1e-3
 *   a batch of different requests gives the same ids as each request alone
 * Set EDGELLM_TEST_REF=1 to also run the fp32 checks with the scalar reference kernels.
 */
#include "edgellm/edgellm.h"
#include "engine/engine.h"
#include "models/models.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static const char *k_models[] = {"stories260K-hf", "sotu-qwen3", "tiny-llama", "tiny-qwen2", "tiny-qwen3"};

static char g_tmp[512];

static int build_engine(const char *model, const char *dtype, char *engine, size_t cap) {
    char hf[1024], exp[1024];
    snprintf(hf, sizeof hf, "fixtures/models/%s", model);
    snprintf(exp, sizeof exp, "%s/e2e-%s-%s.export", g_tmp, model, dtype);
    snprintf(engine, cap, "%s/e2e-%s-%s.engine", g_tmp, model, dtype);
    edgellm_export_params ep = edgellm_export_params_default();
    ep.dtype = dtype;
    ep.overwrite = true;
    edgellm_build_params bp = edgellm_build_params_default();
    bp.overwrite = true;
    bp.max_batch_size = 4;
    bp.max_input_len = 256;
    bp.max_kv_cache_capacity = 512;
    edgellm_status s = edgellm_export(hf, exp, &ep);
    CHECKF(s == EDGELLM_STATUS_OK, "export %s %s: %s", model, dtype, edgellm_last_error());
    if (s) return -1;
    s = edgellm_build(exp, engine, &bp);
    CHECKF(s == EDGELLM_STATUS_OK, "build %s %s: %s", model, dtype, edgellm_last_error());
    return s ? -1 : 0;
}

/* logits of every position of ids through the low-level API */
static int eval_logits(edgellm_runtime *rt, const int32_t *ids, int32_t n, float *out) {
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)n), *slot = malloc(sizeof(int32_t) * (size_t)n);
    int8_t *want = malloc((size_t)n);
    for (int32_t i = 0; i < n; i++) {
        pos[i] = i;
        slot[i] = 1; /* not slot 0, to exercise slot addressing */
        want[i] = 1;
    }
    edgellm_runtime_kv_clear(rt, 1, 0);
    edgellm_batch b = {n, ids, pos, slot, want};
    edgellm_status s = edgellm_runtime_eval(rt, &b, out);
    CHECKF(s == EDGELLM_STATUS_OK, "eval: %s", edgellm_last_error());
    free(pos);
    free(slot);
    free(want);
    return s ? -1 : 0;
}

static void check_model(const char *model, const char *dtype, double tol, bool check_greedy, bool use_ref) {
    char engine[1024], path[1024];
    if (build_engine(model, dtype, engine, sizeof engine)) return;
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.use_reference = use_ref;
    edgellm_runtime *rt = NULL;
    edgellm_status s = edgellm_runtime_create(engine, &rp, &rt);
    CHECKF(s == EDGELLM_STATUS_OK, "runtime %s: %s", engine, edgellm_last_error());
    if (s) return;
    snprintf(path, sizeof path, "fixtures/models/%s/reference.safetensors", model);
    el_st_file ref;
    s = el_st_open(path, &ref);
    CHECKF(s == EDGELLM_STATUS_OK, "%s: %s", path, edgellm_last_error());
    if (s) {
        edgellm_runtime_free(rt);
        return;
    }
    int32_t V = edgellm_runtime_vocab_size(rt);
    for (int p = 0; p < 8; p++) {
        char name[64];
        snprintf(name, sizeof name, "prompt%d.input_ids", p);
        const el_st_tensor *ti = el_st_find(&ref, name);
        if (!ti) break;
        snprintf(name, sizeof name, "prompt%d.logits", p);
        const el_st_tensor *tl = el_st_find(&ref, name);
        snprintf(name, sizeof name, "prompt%d.greedy_ids", p);
        const el_st_tensor *tg = el_st_find(&ref, name);
        CHECK(tl && tg && ti->dtype == EL_DTYPE_I32 && tl->dtype == EL_DTYPE_F32);
        if (!tl || !tg) break;
        int32_t n = (int32_t)ti->shape[0];
        const int32_t *ids = ti->data;
        CHECK(tl->shape[0] == n && tl->shape[1] == V);
        float *lg = malloc(sizeof(float) * (size_t)n * (size_t)V);
        if (eval_logits(rt, ids, n, lg) == 0) {
            double worst = 0;
            for (int32_t i = 0; i < n; i++) {
                double e = t_nmse((const float *)tl->data + (size_t)i * V, lg + (size_t)i * V, (size_t)V);
                if (e > worst) worst = e;
            }
            CHECKF(worst <= tol, "%s %s%s prompt%d: worst per-position logits NMSE %.3e > %.0e", model, dtype,
                   use_ref ? " (ref kernels)" : "", p, worst, tol);
            printf("  %-16s %-4s%s prompt%d (%3d tokens): worst-position NMSE %.2e\n", model, dtype,
                   use_ref ? " ref" : "", p, n, worst);
        }
        free(lg);
        if (check_greedy) {
            int32_t ng = (int32_t)tg->shape[0];
            edgellm_request req = {.prompt = ids, .n_prompt = n, .max_new_tokens = ng, .ignore_eos = true};
            edgellm_sampling_params sp = edgellm_sampling_params_default();
            sp.temperature = 0;
            edgellm_result res = {0};
            s = edgellm_runtime_generate(rt, &req, 1, &sp, NULL, NULL, &res);
            CHECKF(s == EDGELLM_STATUS_OK, "generate: %s", edgellm_last_error());
            if (s == EDGELLM_STATUS_OK) {
                int same = res.n_ids == ng && !memcmp(res.ids, tg->data, sizeof(int32_t) * (size_t)ng);
                CHECKF(same, "%s %s prompt%d: greedy ids differ from HF", model, dtype, p);
            }
            edgellm_result_clear(&res);
        }
    }
    el_st_close(&ref);
    edgellm_runtime_free(rt);
}

/* Three different prompts together must give exactly what each gives alone. */
static void check_batch_consistency(void) {
    char engine[1024];
    snprintf(engine, sizeof engine, "%s/e2e-sotu-qwen3-fp32.engine", g_tmp);
    edgellm_runtime *rt = NULL;
    CHECK_OK(edgellm_runtime_create(engine, NULL, &rt));
    if (!rt) return;
    int32_t p0[] = {10, 20, 30, 40, 50}, p1[] = {7}, p2[] = {100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 11};
    edgellm_request reqs[3] = {
        {.prompt = p0, .n_prompt = 5, .max_new_tokens = 12, .ignore_eos = true},
        {.prompt = p1, .n_prompt = 1, .max_new_tokens = 20, .ignore_eos = true},
        {.prompt = p2, .n_prompt = 11, .max_new_tokens = 7, .ignore_eos = true},
    };
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0;
    edgellm_result together[3] = {0}, alone = {0};
    CHECK_OK(edgellm_runtime_generate(rt, reqs, 3, &sp, NULL, NULL, together));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(edgellm_runtime_generate(rt, &reqs[i], 1, &sp, NULL, NULL, &alone));
        CHECKF(alone.n_ids == together[i].n_ids && alone.n_ids == reqs[i].max_new_tokens &&
                   !memcmp(alone.ids, together[i].ids, sizeof(int32_t) * (size_t)alone.n_ids),
               "request %d: batched ids differ from alone", i);
        edgellm_result_clear(&alone);
    }
    /* sampling: same seed => same ids, also when batched */
    sp.temperature = 0.9f;
    sp.top_k = 40;
    sp.top_p = 0.95f;
    sp.seed = 1234;
    edgellm_result s1[3] = {0}, s2 = {0};
    CHECK_OK(edgellm_runtime_generate(rt, reqs, 3, &sp, NULL, NULL, s1));
    CHECK_OK(edgellm_runtime_generate(rt, &reqs[2], 1, &sp, NULL, NULL, &s2));
    CHECKF(s2.n_ids == s1[2].n_ids && !memcmp(s2.ids, s1[2].ids, sizeof(int32_t) * (size_t)s2.n_ids),
           "seeded sampling differs between batched and alone");
    int differs = 0;
    for (int i = 0; i < 3; i++) {
        if (memcmp(s1[i].ids, together[i].ids, sizeof(int32_t) * (size_t)s1[i].n_ids)) differs = 1;
        edgellm_result_clear(&s1[i]);
        edgellm_result_clear(&together[i]);
    }
    CHECKF(differs, "temperature sampling gave exactly the greedy ids for every request");
    edgellm_result_clear(&s2);
    /* limits */
    edgellm_request four[5] = {reqs[0], reqs[0], reqs[0], reqs[0], reqs[0]};
    edgellm_result r5[5] = {0};
    CHECK(edgellm_runtime_generate(rt, four, 5, &sp, NULL, NULL, r5) == EDGELLM_STATUS_LIMIT);
    int32_t *longp = calloc(300, sizeof(int32_t));
    edgellm_request lr = {.prompt = longp, .n_prompt = 300, .max_new_tokens = 1};
    CHECK(edgellm_runtime_generate(rt, &lr, 1, &sp, NULL, NULL, r5) == EDGELLM_STATUS_LIMIT);
    CHECK(strstr(edgellm_last_error(), "max input length") != NULL);
    free(longp);
    int32_t bad[] = {1, 99999};
    edgellm_request br = {.prompt = bad, .n_prompt = 2, .max_new_tokens = 1};
    CHECK(edgellm_runtime_generate(rt, &br, 1, &sp, NULL, NULL, r5) == EDGELLM_STATUS_INVALID_ARG);
    edgellm_runtime_free(rt);
}

/* Resident bytes of this process's mappings of the file at path (/proc/self/smaps); -1 if unknown. */
static long long mapped_rss(const char *path) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[4096];
    long long kb = 0, v;
    unsigned long long lo, hi;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        char *nl = strchr(line, '\n'), *name = strstr(line, " /");
        if (nl) *nl = 0;
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2) /* a mapping's header line: range, ..., path */
            in = name && !strcmp(name + 1, path);
        else if (in && sscanf(line, "Rss: %lld kB", &v) == 1)
            kb += v;
    }
    fclose(f);
    return kb * 1024;
}

/* EDGELLM_CPU_WEIGHTS=copy and =map: the same greedy ids, and with the copy the runtime no longer has the copied
 * tensors' pages of the engine file mapped (RSS counts the weights once). */
static void check_weight_placement(void) {
    char engine[1024], file[1200];
    snprintf(engine, sizeof engine, "%s/e2e-sotu-qwen3-fp32.engine", g_tmp);
    snprintf(file, sizeof file, "%s/" EL_ENGINE_FILE, engine);
    char *abs = realpath(file, NULL); /* smaps names the file by its absolute path */
    if (abs) {
        snprintf(file, sizeof file, "%s", abs);
        free(abs);
    }
    el_engine *eng = NULL;
    CHECK_OK(el_engine_open(engine, false, &eng));
    if (!eng) return;
    long long copied = 0, file_bytes = (long long)eng->map.size;
    for (int64_t i = 0; i < eng->n_tensors; i++)
        if (eng->tensors[i].nbytes >= (1u << 20)) copied += (long long)eng->tensors[i].nbytes;
    el_engine_close(eng);
    CHECKF(copied >= (4 << 20), "sotu-qwen3 fp32 has %lld bytes in tensors of >= 1 MiB, expected the 4 MiB embedding",
           copied);
    int32_t prompt[] = {5, 17, 300, 2048, 9};
    edgellm_request req = {.prompt = prompt, .n_prompt = 5, .max_new_tokens = 16, .ignore_eos = true};
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0;
    edgellm_result res[2] = {{0}, {0}};
    long long rss[2] = {0, 0};
    const char *mode[2] = {"map", "copy"};
    for (int v = 0; v < 2; v++) {
        setenv("EDGELLM_CPU_WEIGHTS", mode[v], 1);
        edgellm_runtime *rt = NULL;
        CHECK_OK(edgellm_runtime_create(engine, NULL, &rt)); /* verifies checksums: every page read once */
        unsetenv("EDGELLM_CPU_WEIGHTS");
        if (!rt) return;
        rss[v] = mapped_rss(file);
        CHECK_OK(edgellm_runtime_generate(rt, &req, 1, &sp, NULL, NULL, &res[v]));
        edgellm_runtime_free(rt);
    }
    CHECKF(res[0].n_ids == 16 && res[1].n_ids == 16 && !memcmp(res[0].ids, res[1].ids, 16 * sizeof(int32_t)),
           "greedy ids differ between EDGELLM_CPU_WEIGHTS=map and copy");
    if (rss[0] >= 0) {
        printf("  engine file mapped after load: map %lld kB, copy %lld kB (%lld kB in tensors of >= 1 MiB)\n",
               rss[0] / 1024, rss[1] / 1024, copied / 1024);
        CHECKF(rss[0] >= file_bytes - 8192, "map: %lld of %lld bytes of the engine file resident", rss[0], file_bytes);
        CHECKF(rss[1] <= file_bytes - copied + 8 * 4096, "copy: %lld bytes of the engine file still mapped (file %lld, "
               "copied %lld)", rss[1], file_bytes, copied);
    }
    edgellm_result_clear(&res[0]);
    edgellm_result_clear(&res[1]);
}

int main(void) {
    const char *t = getenv("EDGELLM_TMP");
    snprintf(g_tmp, sizeof g_tmp, "%s", t ? t : "/tmp/edgellm-test");
    el_mkdir_p(g_tmp);
    bool with_ref = getenv("EDGELLM_TEST_REF") != NULL;
    for (size_t i = 0; i < sizeof k_models / sizeof k_models[0]; i++) {
        check_model(k_models[i], "fp32", 1e-6, true, false);
        if (with_ref) check_model(k_models[i], "fp32", 1e-6, true, true);
        check_model(k_models[i], "bf16", 1e-3, false, false);
        check_model(k_models[i], "fp16", 1e-3, false, false);
    }
    check_batch_consistency();
    check_weight_placement();
    return t_finish("test_e2e");
}
