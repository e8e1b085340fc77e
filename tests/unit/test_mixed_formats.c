/* test_mixed_formats.c - per-linear weight formats in one engine.
 *
 * tiny-llama (untied head) exported int4_rtn with --exclude '*down_proj*' and --lm-head-quantization fp8:
 * every layer mixes w4a16 linears with a float down_proj, and the head is fp8. Both formats are
 * weight-only (no activation quantization in the format), so the engine must compute the float model whose
 * weights are the dequantized engine weights: that reference checkpoint is written here (every engine tensor
 * dequantized / converted to F32), exported, built with an f32 KV cache and run on the same tokens.
 * The two differ only by f32 summation order and the w4a16 prefill's int16 activations (2^-16 of a chunk's
 * max, tolerance below); running a linear with another linear's
 * format (the runtime before per-linear dtypes) gives garbage far outside it. The original float model
 * is also compared to show that the quantization is in effect (the test can fail). */
#include "edgellm/edgellm.h"
#include "engine/engine.h"
#include "kernels/quant.h"
#include "models/models.h"
#include "models_test_util.h"
#include "test.h"

#include <math.h>

static char g_dir[1024];

#define N_TOK 24

/* Logits (N_TOK, V) of a fixed token sequence. */
static float *run_logits(const char *engine, int64_t *V) {
    edgellm_runtime *rt = NULL;
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = 2;
    if (edgellm_runtime_create(engine, &rp, &rt) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "runtime %s: %s\n", engine, edgellm_last_error());
        return NULL;
    }
    *V = edgellm_runtime_vocab_size(rt);
    int32_t tok[N_TOK], pos[N_TOK], slot[N_TOK] = {0};
    int8_t want[N_TOK];
    for (int i = 0; i < N_TOK; i++) {
        tok[i] = (int32_t)((i * 37 + 11) % *V);
        pos[i] = i;
        want[i] = 1;
    }
    float *lg = malloc(sizeof(float) * (size_t)(N_TOK * *V));
    edgellm_batch b = {N_TOK, tok, pos, slot, want};
    if (edgellm_runtime_eval(rt, &b, lg) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "eval: %s\n", edgellm_last_error());
        free(lg);
        lg = NULL;
    }
    edgellm_runtime_free(rt);
    return lg;
}

static edgellm_build_params bparams(void) {
    edgellm_build_params bp = edgellm_build_params_default();
    bp.max_batch_size = 1;
    bp.max_input_len = 64;
    bp.max_kv_cache_capacity = 64;
    bp.kv_cache_dtype = "f32";
    return bp;
}

/* Writes every tensor of an engine as F32 (quantized layouts dequantized) into dir/model.safetensors. */
static bool write_dequantized(const el_engine *e, const char *dir) {
    el_st_decl *d = calloc((size_t)e->n_tensors, sizeof *d);
    for (int64_t i = 0; i < e->n_tensors; i++) {
        const el_engine_tensor *t = &e->tensors[i];
        d[i].name = t->name;
        d[i].dtype = EL_DTYPE_F32;
        d[i].n_dims = t->n_dims;
        for (int k = 0; k < t->n_dims; k++)
            d[i].shape[k] = t->shape[k];
    }
    char path[1300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    el_st_writer *w = NULL;
    bool ok = el_st_writer_open(path, d, e->n_tensors, NULL, &w) == EDGELLM_STATUS_OK;
    for (int64_t i = 0; ok && i < e->n_tensors; i++) {
        const el_engine_tensor *t = &e->tensors[i];
        int64_t ne = 1;
        for (int k = 0; k < t->n_dims; k++)
            ne *= t->shape[k];
        float *f = malloc(sizeof(float) * (size_t)ne);
        if (el_dtype_is_quant(t->dtype))
            el_dequantize_ref(t->dtype, t->data, t->shape[0], t->shape[1], f);
        else
            el_convert(EL_DTYPE_F32, f, t->dtype, t->data, (size_t)ne);
        ok = el_st_writer_write(w, f, sizeof(float) * (size_t)ne) == EDGELLM_STATUS_OK;
        free(f);
    }
    if (w) ok = el_st_writer_close(w) == EDGELLM_STATUS_OK && ok;
    free(d);
    return ok;
}

/* max |a - b| over max |a| */
static double rel_maxdiff(const float *a, const float *b, size_t n) {
    double md = 0, ma = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d; /* NaN propagates */
        if (fabs((double)a[i]) > ma) ma = fabs((double)a[i]);
    }
    return ma > 0 ? md / ma : md;
}

static void test_mixed(void) {
    const char *model = "fixtures/models/tiny-llama";
    char x[1200], e[1200], rdir[1200], rx[1200], re[1200], fx[1200], fe[1200], p[1300];
    snprintf(x, sizeof x, "%s/x-mixed", g_dir);
    snprintf(e, sizeof e, "%s/e-mixed", g_dir);
    snprintf(rdir, sizeof rdir, "%s/hf-ref", g_dir);
    snprintf(rx, sizeof rx, "%s/x-ref", g_dir);
    snprintf(re, sizeof re, "%s/e-ref", g_dir);
    snprintf(fx, sizeof fx, "%s/x-float", g_dir);
    snprintf(fe, sizeof fe, "%s/e-float", g_dir);

    edgellm_export_params ep = edgellm_export_params_default();
    ep.quantization = "int4_rtn";
    ep.lm_head_quantization = "fp8";
    const char *ex[] = {"*down_proj*"};
    ep.exclude = ex;
    ep.n_exclude = 1;
    CHECK_OK(edgellm_export(model, x, &ep));
    edgellm_build_params bp = bparams();
    CHECK_OK(edgellm_build(x, e, &bp));

    /* the engine really mixes formats: w4a16 q..up, float down_proj, fp8 head */
    el_engine *eng = NULL;
    CHECK_OK(el_engine_open(e, true, &eng));
    if (!eng) return;
    const el_engine_tensor *tq = el_engine_find(eng, "model.layers.1.self_attn.q_proj.weight");
    const el_engine_tensor *tu = el_engine_find(eng, "model.layers.1.mlp.up_proj.weight");
    const el_engine_tensor *td = el_engine_find(eng, "model.layers.1.mlp.down_proj.weight");
    const el_engine_tensor *th = el_engine_find(eng, "lm_head.weight");
    CHECK(tq && tq->dtype == EL_DTYPE_Q_W4A16);
    CHECK(tu && tu->dtype == EL_DTYPE_Q_W4A16);
    CHECK(td && !el_dtype_is_quant(td->dtype));
    CHECK(th && th->dtype == EL_DTYPE_Q_FP8);
    if (th && th->dtype == EL_DTYPE_Q_FP8) { /* weight-only fp8 (no calibrated input scale for the head) */
        el_qhdr h;
        memcpy(&h, th->data, sizeof h);
        CHECK(h.act_scale == 0);
    }

    /* the float model with the dequantized weights */
    el_mkdir_p(rdir);
    char src[1300];
    snprintf(src, sizeof src, "%s/config.json", model);
    snprintf(p, sizeof p, "%s/config.json", rdir);
    CHECK_OK(el_copy_file(src, p));
    CHECK(write_dequantized(eng, rdir));
    el_engine_close(eng);
    edgellm_export_params fp = edgellm_export_params_default();
    fp.dtype = "fp32";
    CHECK_OK(edgellm_export(rdir, rx, &fp));
    CHECK_OK(edgellm_build(rx, re, &bp));
    /* and the original float model */
    CHECK_OK(edgellm_export(model, fx, &fp));
    CHECK_OK(edgellm_build(fx, fe, &bp));

    int64_t V = 0, V2 = 0, V3 = 0;
    float *got = run_logits(e, &V), *ref = run_logits(re, &V2), *orig = run_logits(fe, &V3);
    CHECK(got && ref && orig && V == V2 && V == V3);
    if (got && ref && orig && V == V2 && V == V3) {
        const size_t n = (size_t)(N_TOK * V);
        double d_ref = rel_maxdiff(ref, got, n), d_orig = rel_maxdiff(orig, got, n);
        /* f32 dots of 128..384 terms in another order, 3 layers: observed ~1e-6 in decode; the 24-token
         * prefill runs the w4a16 linears on int16 activations (2^-16 of each chunk's max |x|): 6.3e-5 */
        CHECKF(d_ref < 1e-4, "mixed engine vs dequantized float model: max rel diff %.3g", d_ref);
        /* int4 + fp8 head do change the logits by far more than that */
        CHECKF(d_orig > 1e-3, "mixed engine vs original float model: max rel diff %.3g", d_orig);
        printf("mixed formats: max rel logit diff vs dequantized reference %.3g, vs original float %.3g\n",
               d_ref, d_orig);
    }
    free(got);
    free(ref);
    free(orig);
}

int main(void) {
    tu_scratch(g_dir, sizeof g_dir, "mixed");
    test_mixed();
    el_rm_rf(g_dir);
    return t_finish("test_mixed_formats");
}
