/*
 * cmd_bench.c - `edgellm bench`: prefill and decode speed on random prompts, with the bytes a decoded
 * token reads and the bandwidth that implies (compare it with bench/bench_membw).
 */
#include "cli.h"
#include "core/core.h"
#include "../../bench/membw_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static size_t dtype_bytes(const char *name) {
    if (!strcmp(name, "fp32")) return 4;
    if (!strcmp(name, "fp16") || !strcmp(name, "bf16")) return 2;
    return 1;
}

int cmd_bench(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: edgellm bench --engine DIR [--prompt-len 512] [--gen-len 128] [--batch 1] [--threads N]\n"
               "                     [--reps 3] [--json] [--membw]\n"
               "  prefill and decode tok/s (min/median/max over reps), weight bytes read per decoded token and\n"
               "  the achieved GB/s. Random prompts, greedy decoding that ignores EOS.\n"
               "  --membw: also measure the streaming-read bandwidth (1 GiB, same thread count) before and\n"
               "  after the runs and report decode as a fraction of the higher figure (CPU engines).\n");
        return 0;
    }
    const char *engine = NULL;
    int64_t pl = 512, gl = 128, batch = 1, threads = 0, reps = 3;
    bool json = false, membw = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0;
        if (cli_flag_val(argc, argv, &i, "--engine", &v, &err)) engine = v;
        else if (cli_flag_val(argc, argv, &i, "--prompt-len", &v, &err)) {
            if (!err && !cli_parse_i64(v, 1, 1 << 20, &pl)) return cli_usage_error("--prompt-len needs an integer >= 1");
        } else if (cli_flag_val(argc, argv, &i, "--gen-len", &v, &err)) {
            if (!err && !cli_parse_i64(v, 1, 1 << 20, &gl)) return cli_usage_error("--gen-len needs an integer >= 1");
        } else if (cli_flag_val(argc, argv, &i, "--batch", &v, &err)) {
            if (!err && !cli_parse_i64(v, 1, 256, &batch)) return cli_usage_error("--batch needs an integer in 1..256");
        } else if (cli_flag_val(argc, argv, &i, "--threads", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 1024, &threads)) return cli_usage_error("--threads needs an integer");
        } else if (cli_flag_val(argc, argv, &i, "--reps", &v, &err)) {
            if (!err && !cli_parse_i64(v, 1, 1000, &reps)) return cli_usage_error("--reps needs an integer >= 1");
        } else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--membw"))
            membw = true;
        else
            return cli_usage_error("unknown option %s (see edgellm bench --help)", argv[i]);
        if (err) return 2;
    }
    if (!engine) return cli_usage_error("bench needs --engine");
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = (int32_t)threads;
    rp.verify_checksums = false;
    edgellm_runtime *rt = NULL;
    const double t_load = el_time_ms();
    if (edgellm_runtime_create(engine, &rp, &rt) != EDGELLM_STATUS_OK) return cli_fail("loading the engine");
    const double load_ms = el_time_ms() - t_load;
    const uint64_t load_rss = el_peak_rss_bytes(); /* before --membw's 1 GiB buffer */
    edgellm_engine_info info;
    edgellm_runtime_get_info(rt, &info);
    int rc = 0;
    if (batch > info.max_batch_size || pl > info.max_input_len || pl + gl > info.max_kv_cache_capacity) {
        fprintf(stderr, "error: the engine's profile (max batch %d, max input %d, KV %d) is too small for batch %lld, "
                        "prompt %lld + %lld generated\n",
                info.max_batch_size, info.max_input_len, info.max_kv_cache_capacity, (long long)batch, (long long)pl,
                (long long)gl);
        edgellm_runtime_free(rt);
        return 1;
    }
    int32_t *prompts = malloc((size_t)(batch * pl) * sizeof(int32_t));
    edgellm_request *reqs = calloc((size_t)batch, sizeof *reqs);
    edgellm_result *res = calloc((size_t)batch, sizeof *res);
    double *pf = calloc((size_t)reps, sizeof(double)), *dc = calloc((size_t)reps, sizeof(double));
    double *pms = calloc((size_t)reps, sizeof(double)); /* time to first token of each rep */
    if (!prompts || !reqs || !res || !pf || !dc || !pms) {
        rc = cli_usage_error("out of memory");
        goto end;
    }
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < batch * pl; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        prompts[i] = (int32_t)(x % (uint64_t)info.n_vocab);
    }
    for (int64_t b = 0; b < batch; b++) {
        reqs[b].prompt = prompts + b * pl;
        reqs[b].n_prompt = (int32_t)pl;
        reqs[b].max_new_tokens = (int32_t)gl;
        reqs[b].ignore_eos = true;
    }
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0;
    edgellm_metrics m;
    /* warm-up: touches the weights once (page cache, caches) */
    {
        edgellm_request w = reqs[0];
        w.n_prompt = pl < 16 ? (int32_t)pl : 16;
        w.max_new_tokens = 4;
        if (edgellm_runtime_generate(rt, &w, 1, &sp, NULL, NULL, res) != EDGELLM_STATUS_OK) {
            rc = cli_fail("warm-up");
            goto end;
        }
        edgellm_result_clear(&res[0]);
    }
    double bw_before = 0, bw_after = 0;
    el_threadpool *bw_tp = NULL;
    if (membw) {
        bw_tp = el_threadpool_create(threads > 0 ? (int)threads : el_num_cpus());
        if (bw_tp) bw_before = membw_measure(bw_tp, 1024, 5);
    }
    for (int64_t r = 0; r < reps; r++) {
        edgellm_runtime_reset_metrics(rt);
        if (edgellm_runtime_generate(rt, reqs, (int32_t)batch, &sp, NULL, NULL, res) != EDGELLM_STATUS_OK) {
            rc = cli_fail("generation");
            goto end;
        }
        for (int64_t b = 0; b < batch; b++) edgellm_result_clear(&res[b]);
        edgellm_runtime_get_metrics(rt, &m);
        pf[r] = m.prefill_tokens * 1e3 / m.prefill_ms;
        pms[r] = m.ttft_ms;
        dc[r] = m.decode_ms > 0 ? m.decode_tokens * 1e3 / m.decode_ms : 0;
    }
    if (bw_tp) {
        bw_after = membw_measure(bw_tp, 1024, 5);
        el_threadpool_free(bw_tp);
    }
    double bw = bw_before > bw_after ? bw_before : bw_after;
    qsort(pf, (size_t)reps, sizeof(double), cmp_d);
    qsort(dc, (size_t)reps, sizeof(double), cmp_d);
    qsort(pms, (size_t)reps, sizeof(double), cmp_d);
    edgellm_runtime_get_metrics(rt, &m); /* peak memory over the whole run */
    /* bytes read per decode step: every weight but the embedding table (unless it doubles as the head) */
    size_t wb = dtype_bytes(info.weight_dtype);
    uint64_t embd_bytes = (uint64_t)info.n_vocab * (uint64_t)info.n_embd * wb;
    bool tied = info.tied_embeddings;
    uint64_t step_bytes = info.weight_bytes - (tied ? 0 : embd_bytes);
    double ctx_avg = pl + gl / 2.0;
    double kv_elt = !strcmp(info.kv_cache_dtype, "f32")   ? 4.0
                    : !strcmp(info.kv_cache_dtype, "fp8") ? 1.0
                                                          : 2.0;
    uint64_t kv_bytes = (uint64_t)(2.0 * info.n_layer * info.n_head_kv * info.head_dim * kv_elt * ctx_avg) * batch;
    double med_dc = dc[reps / 2];
    double steps_per_s = med_dc / (double)batch;
    double gbs = steps_per_s * (double)(step_bytes + kv_bytes) / 1e9;
    if (json) {
        printf("{\"engine\": \"%s\", \"arch\": \"%s\", \"dtype\": \"%s\", \"batch\": %lld, \"prompt_len\": %lld, "
               "\"gen_len\": %lld, \"threads\": %lld, \"prefill_tok_s\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f}, "
               "\"decode_tok_s\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f}, \"weight_bytes_per_step\": %llu, "
               "\"kv_bytes_per_step\": %llu, \"decode_gb_s\": %.2f, \"membw_gb_s\": %.2f, \"ttft_ms\": %.3f, "
               "\"peak_cpu_memory_bytes\": %llu, \"peak_device_memory_bytes\": %llu, \"load_ms\": %.1f, "
               "\"peak_rss_after_load_bytes\": %llu}\n",
               engine, info.arch, info.weight_dtype, (long long)batch, (long long)pl, (long long)gl, (long long)threads,
               pf[0], pf[reps / 2], pf[reps - 1], dc[0], med_dc, dc[reps - 1], (unsigned long long)step_bytes,
               (unsigned long long)kv_bytes, gbs, bw, pms[reps / 2], (unsigned long long)m.peak_rss_bytes,
               (unsigned long long)m.peak_device_bytes, load_ms, (unsigned long long)load_rss);
    } else {
        printf("engine %s: %s %s, %lld layers, batch %lld, prompt %lld, gen %lld, reps %lld\n", engine, info.arch,
               info.weight_dtype, (long long)info.n_layer, (long long)batch, (long long)pl, (long long)gl,
               (long long)reps);
        printf("load: %.0f ms, peak RSS after load %.1f MB\n", load_ms, load_rss / 1048576.0);
        printf("prefill: %.1f tok/s (min %.1f, max %.1f)\n", pf[reps / 2], pf[0], pf[reps - 1]);
        printf("decode:  %.2f tok/s (min %.2f, max %.2f)\n", med_dc, dc[0], dc[reps - 1]);
        printf("decode reads %.1f MB of weights + %.1f MB of KV per step: %.2f GB/s achieved\n", step_bytes / 1e6,
               kv_bytes / 1e6, gbs);
        printf("time to first token: %.2f ms; peak memory: CPU %.1f MB", pms[reps / 2],
               m.peak_rss_bytes / 1048576.0);
        if (m.peak_device_bytes) printf(", %s %.1f MB", strcmp(info.backend, "cuda") ? "runtime buffers" : "GPU",
                                        m.peak_device_bytes / 1048576.0);
        printf("\n");
        if (bw > 0)
            printf("streaming-read bandwidth %.1f GB/s (before %.1f, after %.1f): decode at %.0f%% of it\n", bw,
                   bw_before, bw_after, 100.0 * gbs / bw);
    }
end:
    free(prompts);
    free(reqs);
    free(res);
    free(pf);
    free(dc);
    free(pms);
    edgellm_runtime_free(rt);
    return rc;
}
