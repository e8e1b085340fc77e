/* reader.c - maps model.engine and validates it (docs/engine-format.md); edgellm_engine_info_read. */
#include "edgellm/edgellm.h"
#include "engine_internal.h"
#include "kernels/quant.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const el_engine_tensor *)a)->name, ((const el_engine_tensor *)b)->name);
}
static int cmp_off(const void *a, const void *b) {
    const el_engine_tensor *x = *(el_engine_tensor *const *)a, *y = *(el_engine_tensor *const *)b;
    const char *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static bool dtype_from_name(const char *s, el_dtype *out) {
    for (int i = 0; i < EL_DTYPE_COUNT; i++)
        if (!strcmp(s, el_dtype_name((el_dtype)i))) {
            *out = (el_dtype)i;
            return true;
        }
    return false;
}

typedef struct check_ctx {
    const el_engine *e;
    const char *path;
} check_ctx;

static edgellm_status check_visit(const char *name, int64_t rows, int64_t cols, bool required, void *user) {
    check_ctx *c = user;
    const el_engine_tensor *t = el_engine_find(c->e, name);
    if (!t) {
        if (!required) return EDGELLM_STATUS_OK;
        return el_err(EDGELLM_STATUS_FORMAT, "%s: engine is missing tensor '%s'", c->path, name);
    }
    int dims = cols ? 2 : 1;
    if (t->n_dims != dims || t->shape[0] != rows || (dims == 2 && t->shape[1] != cols))
        return el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s' has the wrong shape for the model config", c->path, name);
    el_dtype want = dims == 2 ? c->e->weight_dtype : EL_DTYPE_F32;
    if (dims == 2 && el_dtype_is_quant(t->dtype) && strcmp(name, "model.embed_tokens.weight") != 0) {
        /* quantized linear (kernels/quant.h): the layout must match the shape */
        edgellm_status s = el_qweight_check(t->data, t->nbytes, t->dtype, rows, cols);
        if (s < 0) return el_err_prefix(s, "%s: tensor '%s'", c->path, name);
        return EDGELLM_STATUS_OK;
    }
    if (t->dtype != want)
        return el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s' is %s, expected %s", c->path, name,
                      el_dtype_name(t->dtype), el_dtype_name(want));
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_profile(const cJSON *jp, el_profile *p, const char *path) {
    if (!cJSON_IsObject(jp)) return el_err(EDGELLM_STATUS_FORMAT, "%s: engine metadata has no profile", path);
    const char *b = NULL;
    int64_t v;
    EL_TRY(el_json_str(jp, "backend", &b));
    if (!b || strlen(b) >= sizeof p->backend) return el_err(EDGELLM_STATUS_FORMAT, "%s: bad profile backend", path);
    snprintf(p->backend, sizeof p->backend, "%s", b);
    EL_TRY(el_json_int(jp, "max_batch_size", 0, &v, NULL));
    p->max_batch_size = (int32_t)v;
    EL_TRY(el_json_int(jp, "max_input_len", 0, &v, NULL));
    p->max_input_len = (int32_t)v;
    EL_TRY(el_json_int(jp, "max_kv_cache_capacity", 0, &v, NULL));
    p->max_kv_cache_capacity = (int32_t)v;
    const char *kvd = NULL;
    EL_TRY(el_json_str(jp, "kv_cache_dtype", &kvd));
    if (!kvd || !strcmp(kvd, "f32")) p->kv_dtype = EL_DTYPE_F32;
    else if (!strcmp(kvd, "f16")) p->kv_dtype = EL_DTYPE_F16;
    else if (!strcmp(kvd, "bf16")) p->kv_dtype = EL_DTYPE_BF16;
    else if (!strcmp(kvd, "fp8"))
        p->kv_dtype = EL_DTYPE_F8_E4M3;
    else return el_err(EDGELLM_STATUS_FORMAT, "%s: unknown kv_cache_dtype '%s' in the build profile", path, kvd);
    edgellm_status s = el_profile_validate(p);
    if (s < 0) return el_err(EDGELLM_STATUS_FORMAT, "%s: bad build profile: %s", path, edgellm_last_error());
    return EDGELLM_STATUS_OK;
}

/* profile.kv_cache_scales {"k_scale": [n_layer], "v_scale": [n_layer]} of an fp8 KV cache: finite, > 0 */
static edgellm_status parse_kv_scales(const cJSON *jp, el_engine *e, const char *path) {
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(jp, "kv_cache_scales");
    const int64_t nl = e->hp.n_layer;
    e->kv_k_scale = el_calloc((size_t)nl + 1, sizeof(float));
    e->kv_v_scale = el_calloc((size_t)nl + 1, sizeof(float));
    if (!e->kv_k_scale || !e->kv_v_scale) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    for (int w = 0; w < 2; w++) {
        const char *key = w ? "v_scale" : "k_scale";
        const cJSON *ja = cJSON_GetObjectItemCaseSensitive(js, key);
        if (!cJSON_IsArray(ja) || cJSON_GetArraySize(ja) != nl)
            return el_err(EDGELLM_STATUS_FORMAT,
                          "%s: fp8 KV cache without profile.kv_cache_scales.%s (%lld layer scales expected)",
                          path, key, (long long)nl);
        float *dst = w ? e->kv_v_scale : e->kv_k_scale;
        int64_t l = 0;
        const cJSON *jv;
        cJSON_ArrayForEach(jv, ja) {
            double v = cJSON_IsNumber(jv) ? jv->valuedouble : -1;
            if (!(v > 0 && v < 3.0e38))
                return el_err(EDGELLM_STATUS_FORMAT,
                              "%s: profile.kv_cache_scales.%s[%lld] is not a positive number", path, key,
                              (long long)l);
            dst[l++] = (float)v;
        }
    }
    return EDGELLM_STATUS_OK;
}

edgellm_status el_engine_open(const char *dir, bool verify, el_engine **out) {
    *out = NULL;
    if (!dir) return el_err(EDGELLM_STATUS_INVALID_ARG, "engine directory is NULL");
    char path[4096];
    EL_TRY(el_path_join(path, sizeof path, dir, EL_ENGINE_FILE));
    if (!el_dir_exists(dir)) return el_err(EDGELLM_STATUS_IO, "engine directory %s does not exist", dir);
    if (!el_file_exists(path)) return el_err(EDGELLM_STATUS_IO, "%s not found (not an engine directory?)", path);
    el_engine *e = el_calloc(1, sizeof *e);
    if (!e) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    e->map.fd = -1;
    edgellm_status s;
    el_engine_tensor **by_off = NULL;
    e->dir = el_strdup(dir);
    if (!e->dir) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    if ((s = el_mmap_open(path, &e->map)) < 0) goto fail;
    const uint8_t *base = e->map.data;
    const size_t size = e->map.size;
    if (size < EL_ENGINE_HEADER_SIZE) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s is truncated (%zu bytes; the header alone is %u)", path, size,
                   EL_ENGINE_HEADER_SIZE);
        goto fail;
    }
    if (memcmp(base, EL_ENGINE_MAGIC, 8) != 0) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s is not an edgellm engine (bad magic)", path);
        goto fail;
    }
    uint32_t version = get_u32(base + 8);
    if (version != EL_ENGINE_VERSION) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: engine format version %u is not supported (expected %u); rebuild the engine",
                   path, version, EL_ENGINE_VERSION);
        goto fail;
    }
    if (el_hash64(base, 56) != get_u64(base + 56)) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: header checksum mismatch: engine file is corrupt", path);
        goto fail;
    }
    uint32_t flags = get_u32(base + 12);
    uint64_t meta_off = get_u64(base + 16), meta_size = get_u64(base + 24);
    uint64_t data_off = get_u64(base + 32), data_size = get_u64(base + 40);
    if (flags != 0) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: unknown header flags 0x%x", path, flags);
        goto fail;
    }
    if (meta_off != EL_ENGINE_HEADER_SIZE || meta_size == 0 || meta_size > EL_ENGINE_MAX_META ||
        data_off % EL_ENGINE_DATA_ALIGN != 0 || data_off < meta_off + meta_size) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: inconsistent header (meta %llu+%llu, data at %llu)", path,
                   (unsigned long long)meta_off, (unsigned long long)meta_size, (unsigned long long)data_off);
        goto fail;
    }
    if (data_off > size || data_size > size - data_off) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s is truncated (%zu bytes, the header says %llu)", path, size,
                   (unsigned long long)(data_off + data_size));
        goto fail;
    }
    const char *mtext = (const char *)base + meta_off;
    if (el_hash64(mtext, meta_size) != get_u64(base + 48)) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: metadata checksum mismatch: engine file is corrupt", path);
        goto fail;
    }
    e->meta = cJSON_ParseWithLength(mtext, meta_size);
    if (!cJSON_IsObject(e->meta)) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: engine metadata is not a JSON object", path);
        goto fail;
    }
    const char *fmt = NULL;
    if ((s = el_json_str(e->meta, "format", &fmt)) < 0) goto fail;
    int64_t mv = 0;
    if ((s = el_json_int(e->meta, "version", 0, &mv, NULL)) < 0) goto fail;
    if (!fmt || strcmp(fmt, "edgellm-engine") != 0 || mv != EL_ENGINE_VERSION) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: metadata format/version mismatch", path);
        goto fail;
    }
    if ((s = el_hparams_from_config(cJSON_GetObjectItemCaseSensitive(e->meta, "config"), NULL, &e->hp)) < 0) {
        s = el_err_prefix(s, "%s", path);
        goto fail;
    }
    if ((s = parse_profile(cJSON_GetObjectItemCaseSensitive(e->meta, "profile"), &e->profile, path)) < 0) goto fail;
    if (e->profile.kv_dtype == EL_DTYPE_F8_E4M3 &&
        (s = parse_kv_scales(cJSON_GetObjectItemCaseSensitive(e->meta, "profile"), e, path)) < 0)
        goto fail;
    const char *wd = NULL;
    if ((s = el_json_str(e->meta, "weight_dtype", &wd)) < 0) goto fail;
    if (!wd || !dtype_from_name(wd, &e->weight_dtype) ||
        (e->weight_dtype != EL_DTYPE_F32 && e->weight_dtype != EL_DTYPE_F16 && e->weight_dtype != EL_DTYPE_BF16)) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: bad weight_dtype", path);
        goto fail;
    }

    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(e->meta, "tensors");
    if (!cJSON_IsArray(jt)) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: engine metadata has no tensor list", path);
        goto fail;
    }
    int n = cJSON_GetArraySize(jt);
    e->tensors = el_calloc((size_t)n + 1, sizeof *e->tensors);
    by_off = el_calloc((size_t)n + 1, sizeof *by_off);
    if (!e->tensors || !by_off) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    const uint8_t *data = base + data_off;
    const cJSON *jo;
    cJSON_ArrayForEach(jo, jt) {
        el_engine_tensor *t = &e->tensors[e->n_tensors];
        const cJSON *jn = cJSON_GetObjectItemCaseSensitive(jo, "name");
        const char *tn = cJSON_IsString(jn) ? jn->valuestring : "?";
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(jo, "dtype");
        const cJSON *jl = cJSON_GetObjectItemCaseSensitive(jo, "layout");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(jo, "shape");
        const cJSON *jh = cJSON_GetObjectItemCaseSensitive(jo, "xxh3");
        uint64_t off, nb;
        if (!cJSON_IsString(jn) || !cJSON_IsString(jd) || !dtype_from_name(jd->valuestring, &t->dtype) ||
            !cJSON_IsString(jl) || strcmp(jl->valuestring, "rowmajor") != 0 || !cJSON_IsArray(js) ||
            cJSON_GetArraySize(js) < 1 || cJSON_GetArraySize(js) > EL_MAX_DIMS ||
            !json_u64(cJSON_GetObjectItemCaseSensitive(jo, "offset"), &off) ||
            !json_u64(cJSON_GetObjectItemCaseSensitive(jo, "nbytes"), &nb) || !cJSON_IsString(jh) ||
            strlen(jh->valuestring) != 16) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: bad metadata for tensor '%s'", path, tn);
            goto fail;
        }
        char *endp;
        t->hash = strtoull(jh->valuestring, &endp, 16);
        if (*endp) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: bad xxh3 for tensor '%s'", path, tn);
            goto fail;
        }
        size_t numel = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, js) {
            uint64_t v;
            if (!json_u64(d, &v) || v < 1 || !el_mul_ok(numel, (size_t)v, &numel)) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s: bad shape for tensor '%s'", path, tn);
                goto fail;
            }
            t->shape[t->n_dims++] = (int64_t)v;
        }
        size_t want;
        if (el_dtype_is_quant(t->dtype)) {
            want = nb; /* a quantized layout: validated against the model shape by check_visit */
        } else if (!el_mul_ok(numel, el_dtype_size(t->dtype), &want) || want != nb) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s': nbytes %llu does not match its shape and dtype", path,
                       tn, (unsigned long long)nb);
            goto fail;
        }
        if (off % EL_ENGINE_TENSOR_ALIGN != 0 || off > data_size || nb > data_size - off) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s' is misaligned or out of bounds", path, tn);
            goto fail;
        }
        t->name = el_strdup(tn);
        if (!t->name) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
        t->layout = EL_LAYOUT_ROWMAJOR;
        t->data = data + off;
        t->nbytes = (size_t)nb;
        e->weight_bytes += nb;
        by_off[e->n_tensors] = t;
        e->n_tensors++;
    }
    /* overlap check in file order, then sort by name */
    qsort(by_off, (size_t)e->n_tensors, sizeof *by_off, cmp_off);
    for (int64_t i = 1; i < e->n_tensors; i++)
        if ((const char *)by_off[i]->data < (const char *)by_off[i - 1]->data + by_off[i - 1]->nbytes) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensors '%s' and '%s' overlap", path, by_off[i - 1]->name,
                       by_off[i]->name);
            goto fail;
        }
    el_free(by_off);
    by_off = NULL;
    qsort(e->tensors, (size_t)e->n_tensors, sizeof *e->tensors, cmp_tensor);
    for (int64_t i = 1; i < e->n_tensors; i++)
        if (!strcmp(e->tensors[i].name, e->tensors[i - 1].name)) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: duplicate tensor '%s'", path, e->tensors[i].name);
            goto fail;
        }
    check_ctx cc = {e, path};
    if ((s = el_model_visit_tensors(&e->hp, check_visit, &cc)) < 0) goto fail;
    if (verify) {
        for (int64_t i = 0; i < e->n_tensors; i++)
            if (el_hash64(e->tensors[i].data, e->tensors[i].nbytes) != e->tensors[i].hash) {
                s = el_err(EDGELLM_STATUS_FORMAT, "checksum mismatch in tensor %s: engine file is corrupt",
                           e->tensors[i].name);
                goto fail;
            }
    }
    *out = e;
    return EDGELLM_STATUS_OK;
fail:
    el_free(by_off);
    el_engine_close(e);
    return s;
}

void el_engine_close(el_engine *e) {
    if (!e) return;
    for (int64_t i = 0; i < e->n_tensors; i++) el_free(e->tensors[i].name);
    el_free(e->tensors);
    el_free(e->kv_k_scale);
    el_free(e->kv_v_scale);
    el_mmap_close(&e->map);
    cJSON_Delete(e->meta);
    el_free(e->dir);
    el_free(e);
}

const el_engine_tensor *el_engine_find(const el_engine *e, const char *name) {
    if (!e || !name) return NULL;
    int64_t lo = 0, hi = e->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->tensors[mid].name, name);
        if (c == 0) return &e->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *el_kv_dtype_name(el_dtype t) {
    return t == EL_DTYPE_F8_E4M3 ? "fp8" : el_dtype_name(t);
}

static const char *user_dtype(el_dtype t) {
    switch (t) {
    case EL_DTYPE_F32: return "fp32";
    case EL_DTYPE_F16: return "fp16";
    case EL_DTYPE_BF16: return "bf16";
    default: return el_dtype_name(t);
    }
}

edgellm_status edgellm_engine_info_read(const char *engine_dir, edgellm_engine_info *out) {
    if (!out) return el_err(EDGELLM_STATUS_INVALID_ARG, "engine info: out is NULL");
    memset(out, 0, sizeof *out);
    el_engine *e;
    EL_TRY(el_engine_open(engine_dir, false, &e));
    snprintf(out->arch, sizeof out->arch, "%s", e->hp.arch);
    snprintf(out->backend, sizeof out->backend, "%s", e->profile.backend);
    snprintf(out->weight_dtype, sizeof out->weight_dtype, "%s", user_dtype(e->weight_dtype));
    /* a quantized engine reports its linears' format ("w4a16", "fp8", ...), the embedding stays float */
    const el_engine_tensor *q0 = el_engine_find(e, "model.layers.0.self_attn.q_proj.weight");
    if (q0 && el_dtype_is_quant(q0->dtype))
        snprintf(out->weight_dtype, sizeof out->weight_dtype, "%s", el_dtype_name(q0->dtype));
    out->n_vocab = e->hp.n_vocab;
    out->n_embd = e->hp.n_embd;
    out->n_layer = e->hp.n_layer;
    out->n_head = e->hp.n_head;
    out->n_head_kv = e->hp.n_head_kv;
    out->head_dim = e->hp.head_dim;
    out->n_ff = e->hp.n_ff;
    out->max_batch_size = e->profile.max_batch_size;
    out->max_input_len = e->profile.max_input_len;
    out->max_kv_cache_capacity = e->profile.max_kv_cache_capacity;
    snprintf(out->kv_cache_dtype, sizeof out->kv_cache_dtype, "%s", el_kv_dtype_name(e->profile.kv_dtype));
    out->weight_bytes = e->weight_bytes;
    out->file_bytes = e->map.size;
    char p[4096];
    out->has_tokenizer = el_path_join(p, sizeof p, engine_dir, "tokenizer.json") == 0 && el_file_exists(p);
    el_engine_close(e);
    return EDGELLM_STATUS_OK;
}
