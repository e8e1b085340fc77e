/* export.c - HF checkpoint dir -> export dir (config.json with an "edgellm_export" object,
 * model.safetensors with canonical names, tokenizer and template files). docs/export-format.md. */
#include "edgellm/edgellm.h"
#include "export_internal.h"
#include "gguf.h"
#include "models/stream.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


const char *const el_export_aux_files[] = {"tokenizer.json",         "tokenizer_config.json",
                                           "generation_config.json", "special_tokens_map.json",
                                           "chat_template.jinja",    "chat_template.json",
                                           "processed_chat_template.json", NULL};

const char *el_weight_dtype_user_name(el_dtype t) {
    switch (t) {
    case EL_DTYPE_F32: return "fp32";
    case EL_DTYPE_F16: return "fp16";
    case EL_DTYPE_BF16: return "bf16";
    default: return el_dtype_name(t);
    }
}

edgellm_status el_copy_aux_files(const char *src_dir, const char *dst_dir) {
    for (int i = 0; el_export_aux_files[i]; i++) {
        char s[4096], d[4096];
        EL_TRY(el_path_join(s, sizeof s, src_dir, el_export_aux_files[i]));
        EL_TRY(el_path_join(d, sizeof d, dst_dir, el_export_aux_files[i]));
        if (el_file_exists(s)) EL_TRY(el_copy_file(s, d));
    }
    return EDGELLM_STATUS_OK;
}

edgellm_status el_check_distinct_dirs(const char *in, const char *out) {
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(in, a) && realpath(out, b) && !strcmp(a, b))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "output directory %s is the input directory", out);
    return EDGELLM_STATUS_OK;
}

edgellm_status el_load_model_config(const char *dir, cJSON **cfg, cJSON **gen, el_hparams *hp) {
    char p[4096];
    *cfg = NULL;
    if (gen) *gen = NULL;
    EL_TRY(el_path_join(p, sizeof p, dir, "config.json"));
    if (!el_file_exists(p)) return el_err(EDGELLM_STATUS_IO, "%s has no config.json", dir);
    EL_TRY(el_json_load(p, 16u << 20, cfg));
    cJSON *g = NULL;
    EL_TRY(el_path_join(p, sizeof p, dir, "generation_config.json"));
    if (el_file_exists(p)) {
        edgellm_status s = el_json_load(p, 16u << 20, &g);
        if (s < 0) {
            cJSON_Delete(*cfg);
            *cfg = NULL;
            return s;
        }
        if (!cJSON_IsObject(g)) {
            cJSON_Delete(g);
            g = NULL;
        }
    }
    edgellm_status s = el_hparams_from_config(*cfg, g, hp);
    if (s < 0) {
        cJSON_Delete(*cfg);
        cJSON_Delete(g);
        *cfg = NULL;
        return el_err_prefix(s, "%s", dir);
    }
    if (gen) *gen = g;
    else cJSON_Delete(g);
    return EDGELLM_STATUS_OK;
}

/* ---- plan: which checkpoint tensor becomes which output tensor ---------------------------------- */
typedef struct plan_ctx {
    const el_st_file *st;
    char **canon;                  /* canonical names of the source tensors (NULL = skipped) */
    bool *used;
    el_export_item *items;
    int64_t n_items;
    const char *what; /* "checkpoint" or "export" */
} plan_ctx;

static void fmt_shape(char *out, size_t cap, int n, const int64_t *s) {
    size_t len = 0;
    len += (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (len < cap) snprintf(out + len, cap - len, "]");
}

static edgellm_status plan_visit(const char *name, int64_t rows, int64_t cols, bool required, void *user) {
    plan_ctx *c = user;
    int64_t found = -1;
    for (int64_t i = 0; i < c->st->n_tensors; i++)
        if (c->canon[i] && !strcmp(c->canon[i], name)) {
            found = i;
            break;
        }
    int64_t want[2] = {rows, cols};
    int want_dims = cols ? 2 : 1;
    char ws[64], gs[64];
    fmt_shape(ws, sizeof ws, want_dims, want);
    if (found < 0) {
        if (!required) return EDGELLM_STATUS_OK;
        return el_err(EDGELLM_STATUS_FORMAT, "%s is missing tensor '%s' (expected shape %s)", c->what, name, ws);
    }
    const el_st_tensor *t = &c->st->tensors[found];
    bool ok = t->n_dims == want_dims && t->shape[0] == rows && (want_dims == 1 || t->shape[1] == cols);
    if (!ok) {
        fmt_shape(gs, sizeof gs, t->n_dims, t->shape);
        return el_err(EDGELLM_STATUS_FORMAT, "tensor '%s' has shape %s in the %s but config.json implies %s", name, gs,
                      c->what, ws);
    }
    if (t->dtype != EL_DTYPE_F32 && t->dtype != EL_DTYPE_F16 && t->dtype != EL_DTYPE_BF16)
        return el_err(EDGELLM_STATUS_UNSUPPORTED,
                      "tensor '%s' has dtype %s; only F32/F16/BF16 checkpoints are supported", name,
                      el_dtype_st_name(t->dtype));
    c->used[found] = true;
    el_export_item *it = &c->items[c->n_items++];
    it->src = t;
    it->name = c->canon[found];
    it->n_dims = want_dims;
    return EDGELLM_STATUS_OK;
}

void el_export_plan_free(el_export_plan *p) {
    if (!p) return;
    for (int64_t i = 0; p->canon && i < p->n_src; i++) el_free(p->canon[i]);
    el_free(p->canon);
    el_free(p->items);
    memset(p, 0, sizeof *p);
}

edgellm_status el_export_plan_make(const el_hparams *hp, const el_st_file *st, const char *what, bool warn_extra,
                                   el_export_plan *plan) {
    memset(plan, 0, sizeof *plan);
    const el_arch *arch = el_arch_by_name(hp->arch);
    if (!arch) return el_err(EDGELLM_STATUS_UNSUPPORTED, "unknown architecture '%s'", hp->arch);
    edgellm_status s = EDGELLM_STATUS_OK;
    plan_ctx c = {.st = st, .what = what};
    plan->n_src = st->n_tensors;
    plan->canon = el_calloc((size_t)st->n_tensors + 1, sizeof(char *));
    c.used = el_calloc((size_t)st->n_tensors + 1, sizeof(bool));
    plan->items = el_calloc((size_t)st->n_tensors + 1, sizeof(el_export_item));
    if (!plan->canon || !c.used || !plan->items) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    c.canon = plan->canon;
    c.items = plan->items;
    for (int64_t i = 0; i < st->n_tensors; i++) {
        char name[256];
        bool skip = false;
        if ((s = arch->map_tensor(st->tensors[i].name, name, sizeof name, &skip)) < 0) goto done;
        if (skip) continue;
        for (int64_t k = 0; k < i; k++)
            if (plan->canon[k] && !strcmp(plan->canon[k], name)) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s tensors '%s' and '%s' both map to '%s'", what,
                           st->tensors[k].name, st->tensors[i].name, name);
                goto done;
            }
        plan->canon[i] = el_strdup(name);
        if (!plan->canon[i]) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto done;
        }
    }
    if ((s = el_model_visit_tensors(hp, plan_visit, &c)) < 0) goto done;
    plan->n_items = c.n_items;
    for (int64_t i = 0; i < st->n_tensors; i++) {
        if (c.used[i] || !plan->canon[i]) continue;
        if (hp->tied_embd && !strcmp(plan->canon[i], "lm_head.weight")) {
            EL_LOG_INFO("tied embeddings: ignoring the %s's lm_head.weight", what);
            continue;
        }
        if (warn_extra) EL_LOG_WARN("skipping unexpected tensor '%s' in the %s", st->tensors[i].name, what);
    }
done:
    el_free(c.used);
    if (s < 0) el_export_plan_free(plan);
    return s;
}

/* ---- export ---------------------------------------------------------------------------------------- */
edgellm_export_params edgellm_export_params_default(void) {
    edgellm_export_params p;
    memset(&p, 0, sizeof p);
    p.group_size = 128;
    p.sq_alpha = 0.5f;
    p.calib_samples = 512;
    p.calib_seq_len = 512;
    return p;
}

static edgellm_status sink_writer(const void *data, size_t n, void *user) {
    return el_st_writer_write(user, data, n);
}

edgellm_status edgellm_export(const char *hf_dir, const char *out_dir, const edgellm_export_params *params) {
    edgellm_export_params p = params ? *params : edgellm_export_params_default();
    if (!hf_dir || !out_dir) return el_err(EDGELLM_STATUS_INVALID_ARG, "export: model and output paths are required");
    if (p.format && !strcmp(p.format, "gguf")) /* --quantization, else --dtype, names the GGUF weight type */
        return el_export_gguf(hf_dir, out_dir, p.quantization ? p.quantization : p.dtype, p.overwrite, p.progress);
    if (p.format && strcmp(p.format, "hf"))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown export format '%s' (expected hf or gguf)", p.format);
    /* quantized exports and pre-quantized (GPTQ / AWQ / ModelOpt) checkpoints: quant_export.c */
    if (el_export_is_quant(hf_dir, &p)) return el_export_quant(hf_dir, out_dir, &p);
    if (p.quantization && (!strcmp(p.quantization, "fp16") || !strcmp(p.quantization, "bf16"))) {
        p.dtype = p.quantization;
        p.quantization = NULL;
    }
    if (p.quantization && strcmp(p.quantization, "none") != 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG,
                      "unknown quantization '%s' (expected none, fp16, bf16, fp8, int8_sq, int4_awq, int4_rtn, "
                      "int4_gptq or nvfp4)",
                      p.quantization);
    el_dtype want = EL_DTYPE_COUNT;
    if (p.dtype && !el_dtype_from_user_name(p.dtype, &want))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown dtype '%s' (expected fp32, fp16 or bf16)", p.dtype);
    if (!el_dir_exists(hf_dir)) return el_err(EDGELLM_STATUS_IO, "model directory %s does not exist", hf_dir);
    EL_TRY(el_check_distinct_dirs(hf_dir, out_dir));

    edgellm_status s;
    cJSON *cfg = NULL, *out_cfg = NULL;
    el_hparams hp;
    el_st_file st = {0};
    el_export_plan plan = {0};
    el_st_decl *decls = NULL;
    el_st_writer *w = NULL;
    void *buf = NULL;
    char tmp[4096] = "", path[4096];
    bool began = false;

    if ((s = el_load_model_config(hf_dir, &cfg, NULL, &hp)) < 0) goto fail;
    if ((s = el_st_open(hf_dir, &st)) < 0) goto fail;
    if ((s = el_export_plan_make(&hp, &st, "checkpoint", true, &plan)) < 0) goto fail;
    /* 2-D weights share one dtype: the requested one, else the embedding's */
    el_dtype wdt = want != EL_DTYPE_COUNT ? want : plan.items[0].src->dtype;
    size_t max_conv = 0;
    decls = el_calloc((size_t)plan.n_items + 1, sizeof *decls);
    if (!decls) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < plan.n_items; i++) {
        el_export_item *it = &plan.items[i];
        it->dst = it->n_dims == 2 ? wdt : it->src->dtype;
        decls[i].name = it->name;
        decls[i].dtype = it->dst;
        decls[i].n_dims = it->src->n_dims;
        memcpy(decls[i].shape, it->src->shape, sizeof decls[i].shape);
        size_t ne = it->src->nbytes / el_dtype_size(it->src->dtype);
        if (it->dst != it->src->dtype && ne > max_conv) max_conv = ne;
    }
    const size_t buf_bytes = el_stream_buf_size(max_conv);
    buf = el_aligned_alloc(buf_bytes);
    if (!buf) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }

    if ((s = el_outdir_begin(out_dir, p.overwrite, tmp, sizeof tmp)) < 0) goto fail;
    began = true;

    /* config.json */
    out_cfg = el_hparams_to_config(&hp);
    if (!out_cfg) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    static const char *torch_names[] = {[EL_DTYPE_F32] = "float32", [EL_DTYPE_F16] = "float16",
                                        [EL_DTYPE_BF16] = "bfloat16"};
    cJSON_AddStringToObject(out_cfg, "torch_dtype", torch_names[wdt]);
    cJSON *ex = cJSON_AddObjectToObject(out_cfg, "edgellm_export");
    cJSON_AddNumberToObject(ex, "format_version", EL_EXPORT_FORMAT_VERSION);
    cJSON_AddStringToObject(ex, "dtype", el_weight_dtype_user_name(wdt));
    cJSON_AddStringToObject(ex, "quantization", "none");
    cJSON_AddStringToObject(ex, "source_dir", hf_dir);
    cJSON_AddStringToObject(ex, "edgellm_version", edgellm_version());
    if ((s = el_json_save_in(out_cfg, tmp, "config.json")) < 0) goto fail;

    /* model.safetensors, streamed tensor by tensor */
    if ((s = el_path_join(path, sizeof path, tmp, "model.safetensors")) < 0) goto fail;
    char md[128];
    snprintf(md, sizeof md, "{\"format\":\"pt\",\"edgellm_export\":\"%d\"}", EL_EXPORT_FORMAT_VERSION);
    if ((s = el_st_writer_open(path, decls, plan.n_items, md, &w)) < 0) goto fail;
    double t0 = el_time_ms();
    for (int64_t i = 0; i < plan.n_items; i++) {
        el_export_item *it = &plan.items[i];
        if ((s = el_stream_tensor(it->src, it->dst, buf, buf_bytes, sink_writer, w)) < 0) goto fail;
        if (p.progress && (i + 1) % 16 == 0)
            EL_LOG_INFO("export: %lld/%lld tensors", (long long)(i + 1), (long long)plan.n_items);
    }
    s = el_st_writer_close(w);
    w = NULL;
    if (s < 0) goto fail;
    EL_LOG_INFO("export: wrote %lld tensors in %.0f ms", (long long)plan.n_items, el_time_ms() - t0);

    if ((s = el_copy_aux_files(hf_dir, tmp)) < 0) goto fail;
    if ((s = el_outdir_commit(tmp, out_dir, p.overwrite)) < 0) {
        began = false;
        goto fail;
    }
    s = EDGELLM_STATUS_OK;
    goto done;
fail:
    if (w) el_st_writer_abort(w);
    if (began) el_outdir_abort(tmp);
done:
    el_free_aligned(buf);
    el_free(decls);
    el_export_plan_free(&plan);
    el_st_close(&st);
    cJSON_Delete(cfg);
    cJSON_Delete(out_cfg);
    return s;
}
