/*
 * cuda_sample_e2e.h - test_cuda_e2e cases of sampling on the device (included by test_cuda_e2e.c; uses its
 * build() and g_tmp): `generate` with seeded sampling (top-k + top-p + temperature, temperature alone,
 * top-p alone, greedy), three requests batched, on the fp32 CUDA engine (the decode steps sample inside
 * their CUDA graphs) against
 *   - the same engine with EDGELLM_HOST_SAMPLING=1 (same logits, host sampler): identical ids;
 *   - the CPU engine of the same export (host sampler): identical ids (fp32 logits agree to ~1e-7, far
 *     inside the sampler's rounding boundaries for these seeds).
 * check_lookahead: decode lookahead (step n + 1 queued before step n's ids are read) against
 * EDGELLM_NO_LOOKAHEAD=1 on the same engine, with rows that end while a lookahead step is in flight: a stop id
 * (taken from a first run, so it is hit mid-sequence), a callback that aborts a row, max_new_tokens; then a
 * batch of one (every step but the last queued ahead). Same ids, same finish reasons.
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

/* the callback of check_lookahead: aborts request g_abort_req at its g_abort_after-th token */
static int32_t g_abort_req = -1, g_abort_after = 0, g_seen[3];
static bool la_cb(int32_t req, int32_t id, void *user) {
    (void)id, (void)user;
    if (req < 0 || req > 2) return true;
    g_seen[req]++;
    return !(req == g_abort_req && g_seen[req] >= g_abort_after);
}

static void gen_la(const char *engine, bool lookahead, const edgellm_sampling_params *sp, edgellm_request *reqs,
                   int32_t n_req, edgellm_result *res) {
    if (lookahead) unsetenv("EDGELLM_NO_LOOKAHEAD");
    else setenv("EDGELLM_NO_LOOKAHEAD", "1", 1);
    edgellm_runtime *rt = NULL;
    CHECK_OK(edgellm_runtime_create(engine, NULL, &rt));
    unsetenv("EDGELLM_NO_LOOKAHEAD");
    if (!rt) return;
    memset(g_seen, 0, sizeof g_seen);
    CHECK_OK(edgellm_runtime_generate(rt, reqs, n_req, sp, la_cb, NULL, res));
    edgellm_runtime_free(rt);
}

static void check_lookahead(const char *model) {
    char ecu[2048];
    if (build(model, "fp32", ecu, sizeof ecu)) return;
    static int32_t p0[] = {10, 20, 30, 40, 50}, p1[] = {7}, p2[] = {100, 200, 300, 400, 500, 60, 70, 80, 90, 11};
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0.9f, sp.top_p = 0.95f, sp.top_k = 40, sp.seed = 99;
    edgellm_request reqs[3] = {
        {.prompt = p0, .n_prompt = 5, .max_new_tokens = 40, .ignore_eos = true},
        {.prompt = p1, .n_prompt = 1, .max_new_tokens = 40, .ignore_eos = true},
        {.prompt = p2, .n_prompt = 10, .max_new_tokens = 23, .ignore_eos = true},
    };
    edgellm_result r0[3] = {{0}}, on[3] = {{0}}, off[3] = {{0}};
    g_abort_req = -1;
    gen_la(ecu, false, &sp, reqs, 3, r0); /* stop id: request 0's 9th token, where it first occurs */
    int32_t stop = r0[0].n_ids > 8 ? r0[0].ids[8] : 0;
    for (int i = 0; i < 3; i++) edgellm_result_clear(&r0[i]);
    reqs[0].stop_ids = &stop, reqs[0].n_stop_ids = 1;
    g_abort_req = 1, g_abort_after = 13;
    gen_la(ecu, true, &sp, reqs, 3, on);
    gen_la(ecu, false, &sp, reqs, 3, off);
    bool same = same_ids(on, off);
    for (int i = 0; i < 3; i++) same = same && on[i].finish == off[i].finish;
    CHECKF(same, "%s: lookahead ids / finish differ from EDGELLM_NO_LOOKAHEAD=1", model);
    CHECKF(off[0].finish == EDGELLM_FINISH_STOP && off[1].finish == EDGELLM_FINISH_ABORTED &&
               off[2].finish == EDGELLM_FINISH_LENGTH && off[1].n_ids == 13 && off[2].n_ids == 23,
           "%s: rows did not end as set up (finish %d %d %d, %d %d %d ids)", model, (int)off[0].finish,
           (int)off[1].finish, (int)off[2].finish, off[0].n_ids, off[1].n_ids, off[2].n_ids);
    printf("e2e cuda %-16s lookahead, 3 rows ending by stop id / abort / length: %d+%d+%d ids, %s\n", model,
           on[0].n_ids, on[1].n_ids, on[2].n_ids, same ? "same" : "DIFFER");
    /* one row, greedy, run to its length */
    edgellm_sampling_params g = edgellm_sampling_params_default();
    g.temperature = 0.f;
    g_abort_req = -1;
    edgellm_request one = {.prompt = p2, .n_prompt = 10, .max_new_tokens = 48, .ignore_eos = true};
    edgellm_result a = {0}, b = {0};
    gen_la(ecu, true, &g, &one, 1, &a);
    gen_la(ecu, false, &g, &one, 1, &b);
    const bool same1 = a.n_ids == 48 && a.n_ids == b.n_ids && !memcmp(a.ids, b.ids, sizeof(int32_t) * 48);
    CHECKF(same1, "%s: greedy batch-1 lookahead ids differ (%d vs %d ids)", model, a.n_ids, b.n_ids);
    printf("e2e cuda %-16s lookahead, greedy batch of 1: %d ids, %s\n", model, a.n_ids, same1 ? "same" : "DIFFER");
    edgellm_result_clear(&a);
    edgellm_result_clear(&b);
    for (int i = 0; i < 3; i++) {
        edgellm_result_clear(&on[i]);
        edgellm_result_clear(&off[i]);
    }
}
