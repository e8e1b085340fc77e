/*
 * test_cuda_e2e.c - HF checkpoint -> export -> engine built for the CUDA backend -> runtime, checked
 * against the HF transformers logits of each fixture (reference.safetensors):
 *   fp32 engine: worst per-position logits NMSE <= 1e-6 and greedy ids identical (exercises prefill,
 *                the decode steps and their CUDA graphs)
 *   bf16 / fp16 engines: NMSE <= 1e-3
 *   quantized exports (int4_rtn/int4_awq/fp8/int8_sq/nvfp4): the CUDA engine against the CPU engine of the
 *                same export (prefill NMSE <= 1e-3, single-token decode steps <= 1e-4); "kvfp8": float
 *                weights with calibrated K/V scales, so both engines run an fp8 (e4m3) KV cache
 * Skips (exit 77) when the CUDA backend cannot be created (no device).
 */
#include "backend/backend.h"
#include "edgellm/edgellm.h"
#include "models/models.h"
#include "test.h"

#include <stdlib.h>

static const char *k_models[] = {"stories260K-hf", "sotu-qwen3", "tiny-llama", "tiny-qwen2", "tiny-qwen3"};
static char g_tmp[512];

static int build(const char *model, const char *dtype, char *engine, size_t cap) {
    char hf[1024], exp[2048];
    snprintf(hf, sizeof hf, "fixtures/models/%s", model);
    snprintf(exp, sizeof exp, "%s/cuda-%s-%s.export", g_tmp, model, dtype);
    snprintf(engine, cap, "%s/cuda-%s-%s.engine", g_tmp, model, dtype);
    edgellm_export_params ep = edgellm_export_params_default();
    ep.dtype = dtype;
    ep.overwrite = true;
    edgellm_build_params bp = edgellm_build_params_default();
    bp.backend = "cuda";
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

static void check_model(const char *model, const char *dtype, double tol, bool greedy) {
    char engine[2048], path[1024];
    if (build(model, dtype, engine, sizeof engine)) return;
    edgellm_runtime *rt = NULL;
    edgellm_status s = edgellm_runtime_create(engine, NULL, &rt);
    CHECKF(s == EDGELLM_STATUS_OK, "runtime %s: %s", engine, edgellm_last_error());
    if (s) return;
    snprintf(path, sizeof path, "fixtures/models/%s/reference.safetensors", model);
    el_st_file ref;
    if (el_st_open(path, &ref) != EDGELLM_STATUS_OK) {
        CHECKF(0, "%s: %s", path, edgellm_last_error());
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
        if (!tl || !tg) break;
        int32_t n = (int32_t)ti->shape[0];
        const int32_t *ids = ti->data;
        float *lg = malloc(sizeof(float) * (size_t)n * (size_t)V);
        int32_t *pos = malloc(sizeof(int32_t) * (size_t)n), *slot = malloc(sizeof(int32_t) * (size_t)n);
        int8_t *want = malloc((size_t)n);
        for (int32_t i = 0; i < n; i++) pos[i] = i, slot[i] = 1, want[i] = 1;
        edgellm_runtime_kv_clear(rt, 1, 0);
        edgellm_batch b = {n, ids, pos, slot, want};
        s = edgellm_runtime_eval(rt, &b, lg);
        CHECKF(s == EDGELLM_STATUS_OK, "eval: %s", edgellm_last_error());
        if (s == EDGELLM_STATUS_OK) {
            double worst = 0;
            for (int32_t i = 0; i < n; i++) {
                double e = t_nmse((const float *)tl->data + (size_t)i * V, lg + (size_t)i * V, (size_t)V);
                if (e > worst) worst = e;
            }
            CHECKF(worst <= tol, "%s %s prompt%d: worst per-position NMSE %.3e > %.0e", model, dtype, p, worst, tol);
            printf("e2e cuda %-16s %-4s prompt%d (%3d tokens): worst-position logits NMSE %.2e %s\n", model, dtype, p,
                   n, worst, worst <= tol ? "ok" : "FAIL");
        }
        free(lg), free(pos), free(slot), free(want);
        if (greedy) {
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
                printf("e2e cuda %-16s %-4s prompt%d: greedy %d ids %s\n", model, dtype, p, ng, same ? "same" : "DIFFER");
            }
            edgellm_result_clear(&res);
        }
    }
    el_st_close(&ref);
    edgellm_runtime_free(rt);
}

/* Quantized export (kernels/quant.h formats) built for cuda and for cpu: the CUDA engine's logits against
 * the CPU engine's (same export) for whole prompts (prefill: dequantized-bf16 GEMMs, NMSE <= 1e-3) and for
 * single-token steps at positions 0..11 (decode GEMVs that emulate the CPU's activation rounding, 1e-4). */
static int build_q(const char *model, const char *q, const char *backend, bool do_export, char *engine,
                   size_t cap) {
    char hf[1024], exp[2048];
    snprintf(hf, sizeof hf, "fixtures/models/%s", model);
    snprintf(exp, sizeof exp, "%s/q-%s-%s.export", g_tmp, model, q);
    snprintf(engine, cap, "%s/q-%s-%s-%s.engine", g_tmp, model, q, backend);
    edgellm_status s = EDGELLM_STATUS_OK;
    if (do_export) {
        edgellm_export_params ep = edgellm_export_params_default();
        ep.quantization = q;
        static const char *all_linears[] = {"model.layers.*"};
        if (!strcmp(q, "kvfp8")) { /* fp8 KV cache only (the builder picks it from the scales) */
            ep.quantization = "fp8";
            ep.exclude = all_linears;
            ep.n_exclude = 1;
            ep.kv_cache_quantization = "fp8";
        }
        ep.calib_samples = 16;
        ep.calib_seq_len = 128;
        ep.overwrite = true;
        s = edgellm_export(hf, exp, &ep);
        CHECKF(s == EDGELLM_STATUS_OK, "export %s %s: %s", model, q, edgellm_last_error());
        if (s) return -1;
    }
    edgellm_build_params bp = edgellm_build_params_default();
    bp.backend = backend;
    bp.overwrite = true;
    bp.max_batch_size = 4;
    bp.max_input_len = 256;
    bp.max_kv_cache_capacity = 512;
    s = edgellm_build(exp, engine, &bp);
    CHECKF(s == EDGELLM_STATUS_OK, "build %s %s %s: %s", model, q, backend, edgellm_last_error());
    return s ? -1 : 0;
}

static void check_quant(const char *model, const char *q) {
    char ecu[2048], ecpu[2048], path[1024];
    if (build_q(model, q, "cuda", true, ecu, sizeof ecu) ||
        build_q(model, q, "cpu", false, ecpu, sizeof ecpu))
        return;
    edgellm_runtime *rg = NULL, *rc = NULL;
    edgellm_status s = edgellm_runtime_create(ecu, NULL, &rg);
    CHECKF(s == EDGELLM_STATUS_OK, "runtime %s: %s", ecu, edgellm_last_error());
    if (s == EDGELLM_STATUS_OK) {
        s = edgellm_runtime_create(ecpu, NULL, &rc);
        CHECKF(s == EDGELLM_STATUS_OK, "runtime %s: %s", ecpu, edgellm_last_error());
    }
    snprintf(path, sizeof path, "fixtures/models/%s/reference.safetensors", model);
    el_st_file ref;
    if (s != EDGELLM_STATUS_OK || el_st_open(path, &ref) != EDGELLM_STATUS_OK) {
        CHECKF(s != EDGELLM_STATUS_OK, "%s: %s", path, edgellm_last_error());
        if (rg) edgellm_runtime_free(rg);
        if (rc) edgellm_runtime_free(rc);
        return;
    }
    const int32_t V = edgellm_runtime_vocab_size(rg);
    for (int p = 0; p < 2; p++) {
        char name[64];
        snprintf(name, sizeof name, "prompt%d.input_ids", p);
        const el_st_tensor *ti = el_st_find(&ref, name);
        if (!ti) break;
        const int32_t n = (int32_t)ti->shape[0];
        const int32_t *ids = ti->data;
        float *lg = malloc(sizeof(float) * (size_t)n * (size_t)V),
              *lc = malloc(sizeof(float) * (size_t)n * (size_t)V);
        int32_t *pos = malloc(sizeof(int32_t) * (size_t)n), *slot = malloc(sizeof(int32_t) * (size_t)n);
        int8_t *want = malloc((size_t)n);
        for (int32_t i = 0; i < n; i++)
            pos[i] = i, slot[i] = 1, want[i] = 1;
        edgellm_runtime_kv_clear(rg, 1, 0);
        edgellm_runtime_kv_clear(rc, 1, 0);
        edgellm_batch b = {n, ids, pos, slot, want};
        s = edgellm_runtime_eval(rg, &b, lg);
        CHECKF(s == EDGELLM_STATUS_OK, "eval cuda: %s", edgellm_last_error());
        edgellm_status s2 = edgellm_runtime_eval(rc, &b, lc);
        CHECKF(s2 == EDGELLM_STATUS_OK, "eval cpu: %s", edgellm_last_error());
        if (s == EDGELLM_STATUS_OK && s2 == EDGELLM_STATUS_OK) {
            double worst = 0;
            for (int32_t i = 0; i < n; i++) {
                double e = t_nmse(lc + (size_t)i * V, lg + (size_t)i * V, (size_t)V);
                if (e > worst) worst = e;
            }
            CHECKF(worst <= 1e-3, "%s %s prompt%d prefill: worst NMSE vs cpu %.3e > 1e-3", model, q, p,
                   worst);
            printf("e2e cuda-vs-cpu %-12s %-9s prompt%d prefill (%3d tokens): worst-position logits NMSE "
                   "%.2e %s\n",
                   model, q, p, n, worst, worst <= 1e-3 ? "ok" : "FAIL");
        }
        /* decode: one token per eval (m = 1 GEMVs), slot 2 */
        edgellm_runtime_kv_clear(rg, 2, 0);
        edgellm_runtime_kv_clear(rc, 2, 0);
        double worst = 0;
        const int32_t steps = n < 12 ? n : 12;
        for (int32_t i = 0; i < steps && s == EDGELLM_STATUS_OK; i++) {
            int32_t ps = i, sl = 2;
            int8_t wt = 1;
            edgellm_batch b1 = {1, ids + i, &ps, &sl, &wt};
            s = edgellm_runtime_eval(rg, &b1, lg);
            CHECKF(s == EDGELLM_STATUS_OK, "eval cuda step: %s", edgellm_last_error());
            s2 = edgellm_runtime_eval(rc, &b1, lc);
            CHECKF(s2 == EDGELLM_STATUS_OK, "eval cpu step: %s", edgellm_last_error());
            if (s != EDGELLM_STATUS_OK || s2 != EDGELLM_STATUS_OK) break;
            double e = t_nmse(lc, lg, (size_t)V);
            if (e > worst) worst = e;
        }
        if (s == EDGELLM_STATUS_OK) {
            CHECKF(worst <= 1e-4, "%s %s prompt%d decode: worst NMSE vs cpu %.3e > 1e-4", model, q, p, worst);
            printf("e2e cuda-vs-cpu %-12s %-9s prompt%d decode (%2d steps): worst-step logits NMSE %.2e %s\n",
                   model, q, p, steps, worst, worst <= 1e-4 ? "ok" : "FAIL");
        }
        free(lg), free(lc), free(pos), free(slot), free(want);
    }
    el_st_close(&ref);
    edgellm_runtime_free(rg);
    edgellm_runtime_free(rc);
}

#include "gpu/cuda_sample_e2e.h" /* check_sampling: generate with device sampling */

int main(void) {
    el_backend *be = NULL;
    el_backend_params bp = {0};
    if (el_backend_cuda_create(&bp, &be) != EDGELLM_STATUS_OK) {
        printf("test_cuda_e2e: skipped (%s)\n", edgellm_last_error());
        return 77;
    }
    be->iface.free(be);
    const char *t = getenv("EDGELLM_TMP");
    snprintf(g_tmp, sizeof g_tmp, "%s", t ? t : "/tmp/edgellm-test");
    el_mkdir_p(g_tmp);
    /* E2E_ONLY=sampling: only the device-sampling and lookahead cases (a short device run) */
    const char *only = getenv("E2E_ONLY");
    const bool all = !only || strcmp(only, "sampling") != 0;
    for (size_t i = 0; all && i < sizeof k_models / sizeof k_models[0]; i++) {
        check_model(k_models[i], "fp32", 1e-6, true);
        check_model(k_models[i], "bf16", 1e-3, false);
        check_model(k_models[i], "fp16", 1e-3, false);
    }
    static const char *k_quant[] = {"int4_rtn", "int4_awq", "fp8", "int8_sq", "nvfp4", "kvfp8"};
    for (size_t i = 0; all && i < sizeof k_quant / sizeof k_quant[0]; i++) {
        check_quant("tiny-llama", k_quant[i]);
        check_quant("tiny-qwen3", k_quant[i]);
    }
    check_sampling("stories260K-hf");
    check_sampling("tiny-qwen3");
    check_lookahead("stories260K-hf");
    check_lookahead("tiny-qwen3");
    return t_finish("test_cuda_e2e");
}
