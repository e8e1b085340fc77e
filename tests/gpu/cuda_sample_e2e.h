/*
 * cuda_sample_e2e.h - test_cuda_e2e cases of sampling on the device (included by test_cuda_e2e.c; uses its
 * build() and g_tmp): `generate` with seeded sampling (top-k + top-p + temperature, temperature alone,
 * top-p alone, greedy), three requests batched, on the fp32 CUDA engine (the decode steps sample inside
 * their CUDA graphs) against
 *   - the same engine with EDGELLM_HOST_SAMPLING=1 (same logits, host sampler): identical ids;
 *   - the CPU engine of the same export (host sampler): identical ids (fp32 logits agree to ~1e-7, far
 *     inside the sampler's rounding boundaries for these seeds).
 */
#include <string.h>

static int build_cpu_fp32(const char *model, char *engine, size_t cap) {
    char exp[2048];
    snprintf(exp, sizeof exp, "%s/cuda-%s-fp32.export", g_tmp, model); /* written by build() */
    snprintf(engine, cap, "%s/cpu-%s-fp32.engine", g_tmp, model);
    edgellm_build_params bp = edgellm_build_params_default();
    bp.backend = "cpu";
    bp.overwrite = true;
    bp.max_batch_size = 4;
    bp.max_input_len = 256;
    bp.max_kv_cache_capacity = 512;
    edgellm_status s = edgellm_build(exp, engine, &bp);
    CHECKF(s == EDGELLM_STATUS_OK, "build %s cpu: %s", model, edgellm_last_error());
    return s ? -1 : 0;
}

static void gen3(const char *engine, const edgellm_sampling_params *sp, edgellm_result *res) {
    static int32_t p0[] = {10, 20, 30, 40, 50}, p1[] = {7},
                   p2[] = {100, 200, 300, 400, 500, 60, 70, 80, 90, 11};
    edgellm_request reqs[3] = {
        {.prompt = p0, .n_prompt = 5, .max_new_tokens = 24, .ignore_eos = true},
        {.prompt = p1, .n_prompt = 1, .max_new_tokens = 32, .ignore_eos = true},
        {.prompt = p2, .n_prompt = 10, .max_new_tokens = 16, .ignore_eos = true},
    };
    edgellm_runtime *rt = NULL;
    CHECK_OK(edgellm_runtime_create(engine, NULL, &rt));
    if (!rt) return;
    CHECK_OK(edgellm_runtime_generate(rt, reqs, 3, sp, NULL, NULL, res));
    edgellm_runtime_free(rt);
}

static bool same_ids(const edgellm_result *a, const edgellm_result *b) {
    for (int i = 0; i < 3; i++)
        if (a[i].n_ids != b[i].n_ids ||
            (a[i].n_ids && memcmp(a[i].ids, b[i].ids, sizeof(int32_t) * (size_t)a[i].n_ids)))
            return false;
    return true;
}

static void check_sampling(const char *model) {
    char ecu[2048], ecpu[2048];
    if (build(model, "fp32", ecu, sizeof ecu) || build_cpu_fp32(model, ecpu, sizeof ecpu)) return;
    static const struct {
        float t, p;
        int32_t k;
    } cfg[4] = {{0.9f, 0.9f, 40}, {1.0f, 1.0f, 0}, {0.8f, 0.95f, 0}, {0.f, 1.0f, 0}};
    for (int c = 0; c < 4; c++) {
        edgellm_sampling_params sp = edgellm_sampling_params_default();
        sp.temperature = cfg[c].t;
        sp.top_p = cfg[c].p;
        sp.top_k = cfg[c].k;
        sp.seed = 1234 + (uint64_t)c;
        edgellm_result dev[3] = {{0}}, host[3] = {{0}}, cpu[3] = {{0}};
        unsetenv("EDGELLM_HOST_SAMPLING");
        gen3(ecu, &sp, dev);
        setenv("EDGELLM_HOST_SAMPLING", "1", 1);
        gen3(ecu, &sp, host);
        unsetenv("EDGELLM_HOST_SAMPLING");
        gen3(ecpu, &sp, cpu);
        const bool a = same_ids(dev, host), b = same_ids(dev, cpu);
        CHECKF(a, "%s T %.2f top_k %d top_p %.2f: device-sampled ids differ from host-sampled (same engine)",
               model, cfg[c].t, cfg[c].k, cfg[c].p);
        CHECKF(b, "%s T %.2f top_k %d top_p %.2f: cuda ids differ from the cpu engine's", model, cfg[c].t,
               cfg[c].k, cfg[c].p);
        printf("e2e cuda %-16s sampling T %.2f top_k %2d top_p %.2f: %d+%d+%d ids, device vs host sampler "
               "%s, vs cpu "
               "%s\n",
               model, cfg[c].t, cfg[c].k, cfg[c].p, dev[0].n_ids, dev[1].n_ids, dev[2].n_ids,
               a ? "same" : "DIFFER", b ? "same" : "DIFFER");
        for (int i = 0; i < 3; i++) {
            edgellm_result_clear(&dev[i]);
            edgellm_result_clear(&host[i]);
            edgellm_result_clear(&cpu[i]);
        }
    }
}
