/* builder.c - export dir -> engine dir (model.engine per engine.h + tokenizer/template files).
 * Tensors are streamed through one fixed buffer with pwrite, and consumed source pages are dropped,
 * so the resident set stays far below the weight size. */
#include "edgellm/edgellm.h"
#include "engine.h"
#include "engine_internal.h"
#include "export/export_internal.h"
#include "export/qformat.h"
#include "models/stream.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>


edgellm_build_params edgellm_build_params_default(void) {
    edgellm_build_params p = {"cpu", 4, 1024, 4096, false, "auto"};
    return p;
}

edgellm_status el_profile_validate(const el_profile *p) {
    if (strcmp(p->backend, "cpu") != 0 && strcmp(p->backend, "cuda") != 0)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown backend '%s' (expected cpu or cuda)", p->backend);
    if (p->max_batch_size < 1 || p->max_batch_size > 256)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "max batch size must be in 1..256 (got %d)", (int)p->max_batch_size);
    if (p->max_kv_cache_capacity < 1 || p->max_kv_cache_capacity > (1 << 20))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "max KV cache capacity must be in 1..%d (got %d)", 1 << 20,
                      (int)p->max_kv_cache_capacity);
    if (p->max_input_len < 1 || p->max_input_len > p->max_kv_cache_capacity)
        return el_err(EDGELLM_STATUS_INVALID_ARG,
                      "max input length must be in 1..max KV cache capacity (%d) (got %d)",
                      (int)p->max_kv_cache_capacity, (int)p->max_input_len);
    return EDGELLM_STATUS_OK;
}

/* ---- one engine tensor: streamed from a float source, or a quantized layout (qformat.h) ------------ */
typedef struct bitem {
    const char *name;
    const el_st_tensor *src; /* plain: the source tensor; quantized: NULL */
    int n_dims;
    int64_t shape[2];
    el_dtype dst;
    size_t nbytes;
    bool quant;
} bitem;

typedef struct bq_plan_t {
    bitem *items;
    char **names;
    int64_t n, cap;
    const el_st_file *st;
    const el_qconfig *qc;
} bq_plan_t;

static void bq_free(bq_plan_t *b) {
    for (int64_t i = 0; i < b->n; i++) el_free(b->names[i]);
    el_free(b->names);
    el_free(b->items);
    memset(b, 0, sizeof *b);
}

static edgellm_status bq_visit(const char *name, int64_t rows, int64_t cols, bool required, void *user) {
    bq_plan_t *b = user;
    if (b->n == b->cap) return el_err(EDGELLM_STATUS_FORMAT, "too many tensors");
    bitem *it = &b->items[b->n];
    memset(it, 0, sizeof *it);
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s", name);
    if (cols && el_str_ends_with(prefix, ".weight") && strcmp(name, "model.embed_tokens.weight") != 0) {
        prefix[strlen(prefix) - 7] = 0;
        if (el_qweight_present(b->st, prefix)) {
            bool found = false;
            void *buf = NULL;
            EL_TRY(el_qweight_import(b->st, prefix, rows, cols, b->qc, &found, &it->dst, &buf, &it->nbytes));
            el_free_aligned(buf);
            it->quant = true;
        }
    }
    if (!it->quant) {
        const el_st_tensor *t = el_st_find(b->st, name);
        if (!t) {
            if (!required) return EDGELLM_STATUS_OK;
            return el_err(EDGELLM_STATUS_FORMAT, "export is missing tensor '%s'", name);
        }
        int dims = cols ? 2 : 1;
        if (t->n_dims != dims || t->shape[0] != rows || (dims == 2 && t->shape[1] != cols))
            return el_err(EDGELLM_STATUS_FORMAT, "tensor '%s' has the wrong shape in the export", name);
        if (t->dtype != EL_DTYPE_F32 && t->dtype != EL_DTYPE_F16 && t->dtype != EL_DTYPE_BF16)
            return el_err(EDGELLM_STATUS_UNSUPPORTED, "tensor '%s' has dtype %s", name, el_dtype_st_name(t->dtype));
        it->src = t;
    }
    b->names[b->n] = el_strdup(name);
    if (!b->names[b->n]) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    it->name = b->names[b->n];
    it->n_dims = cols ? 2 : 1;
    it->shape[0] = rows;
    it->shape[1] = cols;
    b->n++;
    return EDGELLM_STATUS_OK;
}

static edgellm_status bq_plan(const el_hparams *hp, const el_st_file *st, const el_qconfig *qc, bq_plan_t *b) {
    memset(b, 0, sizeof *b);
    b->cap = 32 + 24 * hp->n_layer;
    b->items = el_calloc((size_t)b->cap, sizeof *b->items);
    b->names = el_calloc((size_t)b->cap, sizeof *b->names);
    b->st = st;
    b->qc = qc;
    if (!b->items || !b->names) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    edgellm_status s = el_model_visit_tensors(hp, bq_visit, b);
    if (s >= 0 && (b->n == 0 || b->items[0].quant || strcmp(b->items[0].name, "model.embed_tokens.weight")))
        s = el_err(EDGELLM_STATUS_FORMAT, "export: the embedding table must be a float tensor");
    return s;
}

static edgellm_status bq_write(const el_st_file *st, const el_qconfig *qc, const bitem *it, el_sink_fn sink,
                               void *user) {
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s", it->name);
    prefix[strlen(prefix) - 7] = 0;
    bool found = false;
    el_dtype dt;
    void *buf = NULL;
    size_t nb = 0;
    EL_TRY(el_qweight_import(st, prefix, it->shape[0], it->shape[1], qc, &found, &dt, &buf, &nb));
    edgellm_status s = EDGELLM_STATUS_OK;
    if (!found || dt != it->dst || nb != it->nbytes)
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: quantized tensor changed while building", it->name);
    else
        s = sink(buf, nb, user);
    el_free_aligned(buf);
    return s;
}

/* The export's per-layer fp8 KV cache scales (model.layers.N.self_attn.k_scale / v_scale, F32 scalars,
 * --kv-cache-quantization fp8) as *out = {k0, v0, k1, v1, ...}; *out = NULL when the export has none.
 * FORMAT when only some are present or one is not a positive finite f32. */
static edgellm_status kv_scales_read(const el_st_file *st, const el_hparams *hp, float **out) {
    *out = NULL;
    int64_t found = 0;
    float *sc = el_calloc((size_t)(2 * hp->n_layer) + 1, sizeof(float));
    if (!sc) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < 2 * hp->n_layer; i++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%lld.self_attn.%s", (long long)(i / 2),
                 i % 2 ? "v_scale" : "k_scale");
        const el_st_tensor *t = el_st_find(st, name);
        if (!t) continue;
        float v = 0;
        if (t->dtype == EL_DTYPE_F32 && t->nbytes == 4) memcpy(&v, t->data, 4);
        if (!(v > 0 && v < INFINITY)) {
            el_free(sc);
            return el_err(EDGELLM_STATUS_FORMAT, "export tensor %s must be one positive F32 value", name);
        }
        sc[i] = v;
        found++;
    }
    if (found == 0) {
        el_free(sc);
        return EDGELLM_STATUS_OK;
    }
    if (found != 2 * hp->n_layer) {
        el_free(sc);
        return el_err(EDGELLM_STATUS_FORMAT,
                      "export has K/V cache scales for some layers only (%lld of %lld)", (long long)found,
                      (long long)(2 * hp->n_layer));
    }
    *out = sc;
    return EDGELLM_STATUS_OK;
}

/* Progress line with ETA on stderr. */
static void el_progress(const char *what, int64_t done, int64_t total, double t0) {
    double el = (el_time_ms() - t0) / 1000.0, eta = done > 0 ? el * (double)(total - done) / (double)done : 0;
    fprintf(stderr, "\r%s: %lld/%lld  %.1fs elapsed, ETA %.1fs   %s", what, (long long)done, (long long)total, el, eta,
            done == total ? "\n" : "");
}

typedef struct wctx {
    int fd;
    uint64_t pos; /* absolute file offset */
    el_hasher *h;
    const char *path;
} wctx;

static edgellm_status pwrite_all(int fd, const void *data, size_t n, uint64_t off, const char *path) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return el_err(EDGELLM_STATUS_IO, "write to %s failed: %s", path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status sink_pwrite(const void *data, size_t n, void *user) {
    wctx *w = user;
    el_hasher_update(w->h, data, n);
    EL_TRY(pwrite_all(w->fd, data, n, w->pos, w->path));
    w->pos += n;
    return EDGELLM_STATUS_OK;
}

static void hex16(char *out, uint64_t v) { snprintf(out, 17, "%016llx", (unsigned long long)v); }

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

edgellm_status edgellm_build(const char *export_dir, const char *engine_dir, const edgellm_build_params *params) {
    edgellm_build_params bp = params ? *params : edgellm_build_params_default();
    if (!export_dir || !engine_dir) return el_err(EDGELLM_STATUS_INVALID_ARG, "build: input and engine paths are required");
    el_profile prof = {{0}, bp.max_batch_size, bp.max_input_len, bp.max_kv_cache_capacity, EL_DTYPE_F32};
    const char *backend = bp.backend ? bp.backend : "cpu";
    if (strlen(backend) >= sizeof prof.backend)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown backend '%s' (expected cpu or cuda)", backend);
    snprintf(prof.backend, sizeof prof.backend, "%s", backend);
    EL_TRY(el_profile_validate(&prof));
    if (bp.kv_cache_dtype && strcmp(bp.kv_cache_dtype, "auto") && strcmp(bp.kv_cache_dtype, "f32") &&
        strcmp(bp.kv_cache_dtype, "f16") && strcmp(bp.kv_cache_dtype, "bf16") &&
        strcmp(bp.kv_cache_dtype, "fp8"))
        return el_err(EDGELLM_STATUS_INVALID_ARG,
                      "unknown KV cache dtype '%s' (expected auto, f32, f16, bf16 or fp8)",
                      bp.kv_cache_dtype);
    if (!el_dir_exists(export_dir)) return el_err(EDGELLM_STATUS_IO, "export directory %s does not exist", export_dir);
    EL_TRY(el_check_distinct_dirs(export_dir, engine_dir));

    edgellm_status s;
    cJSON *cfg = NULL, *meta = NULL;
    el_hparams hp;
    el_st_file st = {0};
    el_export_plan plan = {0};
    bq_plan_t bq = {0};
    bitem *items = NULL;
    int64_t n_items = 0;
    const bool p_progress = false;
    const double t_build0 = el_time_ms();
    uint64_t *offs = NULL, *hashes = NULL;
    float *kv_sc = NULL;
    el_hasher *h = NULL;
    void *buf = NULL;
    char *text = NULL;
    int fd = -1;
    char tmp[4096] = "", path[4096];
    bool began = false;

    if ((s = el_load_model_config(export_dir, &cfg, NULL, &hp)) < 0) goto fail;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(cfg, "edgellm_export");
    if (!cJSON_IsObject(ex)) {
        s = el_err(EDGELLM_STATUS_FORMAT,
                   "%s is not an edgellm export (config.json has no edgellm_export object); run `edgellm export` first",
                   export_dir);
        goto fail;
    }
    int64_t fv = 0;
    if ((s = el_json_int(ex, "format_version", 0, &fv, NULL)) < 0) goto fail;
    if (fv != EL_EXPORT_FORMAT_VERSION) {
        s = el_err(EDGELLM_STATUS_UNSUPPORTED, "%s: export format version %lld is not supported (expected %d)",
                   export_dir, (long long)fv, EL_EXPORT_FORMAT_VERSION);
        goto fail;
    }
    el_qconfig qc;
    if ((s = el_qconfig_read(cfg, &qc)) < 0) goto fail;
    if ((s = el_path_join(path, sizeof path, export_dir, "model.safetensors")) < 0) goto fail;
    if ((s = el_st_open(path, &st)) < 0) goto fail;
    if (!qc.quantized) {
        if ((s = el_export_plan_make(&hp, &st, "export", true, &plan)) < 0) goto fail;
        n_items = plan.n_items;
    } else {
        if ((s = bq_plan(&hp, &st, &qc, &bq)) < 0) goto fail;
        n_items = bq.n;
    }
    items = el_calloc((size_t)n_items + 1, sizeof *items);
    if (!items) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < n_items; i++) {
        if (!qc.quantized) {
            items[i].name = plan.items[i].name;
            items[i].src = plan.items[i].src;
            items[i].n_dims = plan.items[i].n_dims;
            items[i].shape[0] = plan.items[i].src->shape[0];
            items[i].shape[1] = plan.items[i].n_dims == 2 ? plan.items[i].src->shape[1] : 0;
        } else {
            items[i] = bq.items[i];
        }
    }

    const el_dtype wdt = items[0].src->dtype;
    offs = el_calloc((size_t)n_items + 1, sizeof *offs);
    hashes = el_calloc((size_t)n_items + 1, sizeof *hashes);
    if (!offs || !hashes) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    uint64_t data_size = 0, weight_bytes = 0;
    size_t max_conv = 0;
    for (int64_t i = 0; i < n_items; i++) {
        bitem *it = &items[i];
        if (it->quant) {
            /* dst and nbytes set by bq_plan */
        } else if (it->n_dims == 2) {
            if (it->src->dtype != wdt) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s' is %s but the other weights are %s", path, it->name,
                           el_dtype_name(it->src->dtype), el_dtype_name(wdt));
                goto fail;
            }
            it->dst = wdt;
        } else {
            it->dst = EL_DTYPE_F32;
        }
        if (!it->quant) {
            size_t ne = it->src->nbytes / el_dtype_size(it->src->dtype);
            it->nbytes = ne * el_dtype_size(it->dst);
            if (it->dst != it->src->dtype && ne > max_conv) max_conv = ne;
        }
        offs[i] = data_size;
        data_size = (data_size + it->nbytes + EL_ENGINE_TENSOR_ALIGN - 1) & ~(uint64_t)(EL_ENGINE_TENSOR_ALIGN - 1);
        weight_bytes += it->nbytes;
    }

    const size_t buf_bytes = el_stream_buf_size(max_conv);
    buf = el_aligned_alloc(buf_bytes);
    if (!buf) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }

    /* metadata; hashes are fixed-width hex so the size is known before the data is written */
    meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "edgellm-engine");
    cJSON_AddNumberToObject(meta, "version", EL_ENGINE_VERSION);
    cJSON *jc = el_hparams_to_config(&hp);
    if (!jc) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    cJSON_AddItemToObject(meta, "config", jc);
    cJSON *jp = cJSON_AddObjectToObject(meta, "profile");
    cJSON_AddStringToObject(jp, "backend", prof.backend);
    cJSON_AddNumberToObject(jp, "max_batch_size", prof.max_batch_size);
    cJSON_AddNumberToObject(jp, "max_input_len", prof.max_input_len);
    cJSON_AddNumberToObject(jp, "max_kv_cache_capacity", prof.max_kv_cache_capacity);
    {
        /* KV cache precision: an export with calibrated K/V scales (--kv-cache-quantization fp8) gets fp8;
         * otherwise fp32 engines keep fp32 (exact parity) and others default to f16 */
        const bool auto_kv = !bp.kv_cache_dtype || !strcmp(bp.kv_cache_dtype, "auto");
        if ((s = kv_scales_read(&st, &hp, &kv_sc)) < 0) goto fail;
        const char *kvd = !auto_kv ? bp.kv_cache_dtype : kv_sc ? "fp8" : wdt == EL_DTYPE_F32 ? "f32" : "f16";
        if (!strcmp(kvd, "fp8") && !kv_sc) {
            s = el_err(
                EDGELLM_STATUS_INVALID_ARG,
                "%s: an fp8 KV cache needs the export's calibrated K/V scales "
                "(model.layers.N.self_attn.k_scale / v_scale); export with --kv-cache-quantization fp8",
                export_dir);
            goto fail;
        }
        cJSON_AddStringToObject(jp, "kv_cache_dtype", kvd);
        if (!strcmp(kvd, "fp8")) {
            cJSON *js = cJSON_AddObjectToObject(jp, "kv_cache_scales");
            cJSON *jk = cJSON_AddArrayToObject(js, "k_scale"), *jv = cJSON_AddArrayToObject(js, "v_scale");
            for (int64_t l = 0; l < hp.n_layer; l++) {
                cJSON_AddItemToArray(jk, cJSON_CreateNumber((double)kv_sc[2 * l]));
                cJSON_AddItemToArray(jv, cJSON_CreateNumber((double)kv_sc[2 * l + 1]));
            }
        }
    }
    cJSON_AddStringToObject(meta, "weight_dtype", el_dtype_name(wdt));
    cJSON_AddItemToObject(meta, "export", cJSON_Duplicate(ex, true));
    cJSON_AddNumberToObject(meta, "weight_bytes", (double)weight_bytes);
    cJSON *jt = cJSON_AddArrayToObject(meta, "tensors");
    for (int64_t i = 0; i < n_items; i++) {
        bitem *it = &items[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(jt, o);
        cJSON_AddStringToObject(o, "name", it->name);
        cJSON_AddStringToObject(o, "dtype", el_dtype_name(it->dst));
        cJSON_AddStringToObject(o, "layout", "rowmajor");
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int k = 0; k < it->n_dims; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)it->shape[k]));
        cJSON_AddNumberToObject(o, "offset", (double)offs[i]);
        cJSON_AddNumberToObject(o, "nbytes", (double)it->nbytes);
        cJSON_AddStringToObject(o, "xxh3", "0000000000000000");
    }
    text = cJSON_PrintUnformatted(meta);
    if (!text) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    const uint64_t meta_size = strlen(text);
    cJSON_free(text);
    text = NULL;
    const uint64_t data_off = (EL_ENGINE_HEADER_SIZE + meta_size + EL_ENGINE_DATA_ALIGN - 1) &
                              ~(uint64_t)(EL_ENGINE_DATA_ALIGN - 1);

    if ((s = el_outdir_begin(engine_dir, bp.overwrite, tmp, sizeof tmp)) < 0) goto fail;
    began = true;
    if ((s = el_path_join(path, sizeof path, tmp, EL_ENGINE_FILE)) < 0) goto fail;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = el_err(EDGELLM_STATUS_IO, "cannot create %s: %s", path, strerror(errno));
        goto fail;
    }
    h = el_hasher_new();
    if (!h) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < n_items; i++) {
        bitem *it = &items[i];
        el_hasher_free(h);
        h = el_hasher_new();
        if (!h) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
        wctx w = {fd, data_off + offs[i], h, path};
        if (it->quant) {
            if ((s = bq_write(&st, &qc, it, sink_pwrite, &w)) < 0) goto fail;
        } else if ((s = el_stream_tensor(it->src, it->dst, buf, buf_bytes, sink_pwrite, &w)) < 0) {
            goto fail;
        }
        if (p_progress) el_progress("build", i + 1, n_items, t_build0);
        hashes[i] = el_hasher_digest(h);
        char hx[17];
        hex16(hx, hashes[i]);
        cJSON *o = cJSON_GetArrayItem(jt, (int)i);
        cJSON_ReplaceItemInObjectCaseSensitive(o, "xxh3", cJSON_CreateString(hx));
    }
    text = cJSON_PrintUnformatted(meta);
    if (!text || strlen(text) != meta_size) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "engine metadata changed size while building");
        goto fail;
    }
    if ((s = pwrite_all(fd, text, meta_size, EL_ENGINE_HEADER_SIZE, path)) < 0) goto fail;
    uint8_t hdr[EL_ENGINE_HEADER_SIZE] = {0};
    memcpy(hdr, EL_ENGINE_MAGIC, 8);
    put_u32(hdr + 8, EL_ENGINE_VERSION);
    put_u32(hdr + 12, 0);
    put_u64(hdr + 16, EL_ENGINE_HEADER_SIZE);
    put_u64(hdr + 24, meta_size);
    put_u64(hdr + 32, data_off);
    put_u64(hdr + 40, data_size);
    put_u64(hdr + 48, el_hash64(text, meta_size));
    put_u64(hdr + 56, el_hash64(hdr, 56));
    if ((s = pwrite_all(fd, hdr, sizeof hdr, 0, path)) < 0) goto fail;
    if (ftruncate(fd, (off_t)(data_off + data_size)) != 0) {
        s = el_err(EDGELLM_STATUS_IO, "cannot size %s: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        s = el_err(EDGELLM_STATUS_IO, "closing %s failed: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if ((s = el_copy_aux_files(export_dir, tmp)) < 0) goto fail;
    if ((s = el_outdir_commit(tmp, engine_dir, bp.overwrite)) < 0) {
        began = false;
        goto fail;
    }
    EL_LOG_INFO("built %s: %lld tensors, %.1f MB weights", engine_dir, (long long)n_items, weight_bytes / 1e6);
    s = EDGELLM_STATUS_OK;
    goto done;
fail:
    if (fd >= 0) close(fd);
    if (began) el_outdir_abort(tmp);
done:
    cJSON_free(text);
    el_hasher_free(h);
    el_free_aligned(buf);
    el_free(offs);
    el_free(hashes);
    el_free(kv_sc);
    el_export_plan_free(&plan);
    bq_free(&bq);
    el_free(items);
    el_st_close(&st);
    cJSON_Delete(cfg);
    cJSON_Delete(meta);
    return s;
}
