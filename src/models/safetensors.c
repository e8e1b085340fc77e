/* safetensors.c - mmap reader for single-file and sharded (model.safetensors.index.json) checkpoints.
 * Every header field is validated; errors name the file and the tensor. */
#include "models.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */
#define ST_MAX_SHARDS 4096

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const el_st_tensor *)a)->name, ((const el_st_tensor *)b)->name);
}

typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

/* Parses one mapped file's header and appends its tensors to st->tensors. */
static edgellm_status parse_one(el_st_file *st, int shard, const char *path, int64_t *cap) {
    const el_mmap *m = &st->maps[shard];
    const uint8_t *base = m->data;
    if (m->size < 8)
        return el_err(EDGELLM_STATUS_FORMAT, "%s: truncated safetensors file (%zu bytes, the header length needs 8)",
                      path, m->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER)
        return el_err(EDGELLM_STATUS_FORMAT, "%s: bad safetensors header length %llu", path, (unsigned long long)hlen);
    if (hlen > m->size - 8)
        return el_err(EDGELLM_STATUS_FORMAT,
                      "%s: truncated safetensors file (header length %llu but only %zu bytes follow)", path,
                      (unsigned long long)hlen, m->size - 8);
    const char *hdr = (const char *)base + 8;
    const uint64_t data_size = m->size - 8 - hlen;
    const uint8_t *data = base + 8 + hlen;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, false);
    if (!j)
        return el_err(EDGELLM_STATUS_FORMAT, "%s: safetensors header is not valid JSON (near byte %zu)", path,
                      end ? (size_t)(end - hdr) + 8 : (size_t)8);
    for (const char *p = end; p && p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(j);
            return el_err(EDGELLM_STATUS_FORMAT, "%s: trailing bytes after the safetensors header JSON", path);
        }
    edgellm_status s = EDGELLM_STATUS_OK;
    span *spans = NULL;
    int64_t n_spans = 0;
    if (!cJSON_IsObject(j)) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: safetensors header is not a JSON object", path);
        goto done;
    }
    int count = cJSON_GetArraySize(j);
    spans = el_calloc((size_t)count + 1, sizeof *spans);
    if (!spans) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *name = it->string;
        if (!name) continue;
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s: __metadata__ must be an object", path);
                goto done;
            }
            if (shard == 0 && !st->metadata) st->metadata = cJSON_Duplicate(it, true);
            continue;
        }
        if (!cJSON_IsObject(it)) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
            goto done;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        el_st_tensor t = {0};
        t.shard = shard;
        if (!cJSON_IsString(dt)) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s': missing dtype", path, name);
            goto done;
        }
        if (!el_dtype_from_st_name(dt->valuestring, &t.dtype)) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, dt->valuestring);
            goto done;
        }
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > EL_MAX_DIMS) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s': shape must be a list of at most %d sizes", path,
                       name, EL_MAX_DIMS);
            goto done;
        }
        size_t numel = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, sh) {
            uint64_t v;
            if (!json_u64(d, &v) || v > (uint64_t)INT64_MAX || !el_mul_ok(numel, (size_t)v, &numel)) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s': bad shape entry", path, name);
                goto done;
            }
            t.shape[t.n_dims++] = (int64_t)v;
        }
        uint64_t b, e;
        if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_u64(cJSON_GetArrayItem(off, 0), &b) ||
            !json_u64(cJSON_GetArrayItem(off, 1), &e)) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end]", path, name);
            goto done;
        }
        if (b > e || e > data_size) {
            s = el_err(EDGELLM_STATUS_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] out of bounds (data section is %llu bytes)", path,
                       name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_size);
            goto done;
        }
        size_t nbytes = 0;
        if (!el_mul_ok(numel, el_dtype_size(t.dtype), &nbytes) || nbytes != e - b) {
            s = el_err(EDGELLM_STATUS_FORMAT,
                       "%s: tensor '%s': shape and dtype need %zu bytes but data_offsets span %llu", path, name,
                       nbytes, (unsigned long long)(e - b));
            goto done;
        }
        t.data = data + b;
        t.nbytes = nbytes;
        if (st->n_tensors >= *cap) {
            int64_t nc = *cap ? *cap * 2 : 64;
            el_st_tensor *nt = el_realloc(st->tensors, (size_t)nc * sizeof *nt);
            if (!nt) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto done;
            }
            st->tensors = nt;
            *cap = nc;
        }
        t.name = el_strdup(name);
        if (!t.name) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto done;
        }
        st->tensors[st->n_tensors++] = t;
        spans[n_spans++] = (span){b, e, st->tensors[st->n_tensors - 1].name};
    }
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span);
    for (int64_t i = 1; i < n_spans; i++)
        if (spans[i].begin < spans[i - 1].end && spans[i].begin != spans[i].end) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensors '%s' and '%s' overlap", path, spans[i - 1].name,
                       spans[i].name);
            goto done;
        }
done:
    el_free(spans);
    cJSON_Delete(j);
    return s;
}

static edgellm_status add_map(el_st_file *st, const char *path) {
    el_mmap *nm = el_realloc(st->maps, (size_t)(st->n_maps + 1) * sizeof *nm);
    if (!nm) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    st->maps = nm;
    EL_TRY(el_mmap_open(path, &st->maps[st->n_maps]));
    st->n_maps++;
    return EDGELLM_STATUS_OK;
}

static edgellm_status open_sharded(el_st_file *st, const char *dir, const char *index_path, int64_t *cap) {
    cJSON *idx = NULL;
    EL_TRY(el_json_load(index_path, 64u << 20, &idx));
    edgellm_status s = EDGELLM_STATUS_OK;
    char **files = NULL;
    int n_files = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm)) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: missing 'weight_map' object", index_path);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strchr(it->valuestring, '/') ||
            !strcmp(it->valuestring, "..") || !strcmp(it->valuestring, ".")) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: weight_map entry for '%s' must be a file name in the same directory",
                       index_path, it->string ? it->string : "?");
            goto done;
        }
        int k;
        for (k = 0; k < n_files; k++)
            if (!strcmp(files[k], it->valuestring)) break;
        if (k == n_files) {
            if (n_files >= ST_MAX_SHARDS) {
                s = el_err(EDGELLM_STATUS_LIMIT, "%s: more than %d shards", index_path, ST_MAX_SHARDS);
                goto done;
            }
            char **nf = el_realloc(files, (size_t)(n_files + 1) * sizeof *nf);
            if (!nf) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto done;
            }
            files = nf;
            files[n_files++] = it->valuestring;
        }
    }
    if (n_files == 0) {
        s = el_err(EDGELLM_STATUS_FORMAT, "%s: weight_map is empty", index_path);
        goto done;
    }
    for (int k = 0; k < n_files; k++) {
        char p[4096];
        if ((s = el_path_join(p, sizeof p, dir, files[k])) < 0) goto done;
        if ((s = add_map(st, p)) < 0) goto done;
        int64_t first = st->n_tensors;
        if ((s = parse_one(st, st->n_maps - 1, p, cap)) < 0) goto done;
        /* each tensor of the shard must be listed for that shard */
        for (int64_t t = first; t < st->n_tensors; t++) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(wm, st->tensors[t].name);
            if (!e || strcmp(e->valuestring, files[k]) != 0) {
                s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s' is not mapped to this shard in %s", p,
                           st->tensors[t].name, index_path);
                goto done;
            }
        }
    }
    /* every mapped tensor must exist */
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    cJSON_ArrayForEach(it, wm) {
        if (!el_st_find(st, it->string)) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: tensor '%s' is listed for %s but that shard does not contain it",
                       index_path, it->string, it->valuestring);
            goto done;
        }
    }
done:
    el_free(files);
    cJSON_Delete(idx);
    return s;
}

edgellm_status el_st_open(const char *path, el_st_file *st) {
    memset(st, 0, sizeof *st);
    int64_t cap = 0;
    edgellm_status s;
    char p[4096];
    if (el_dir_exists(path)) {
        char idx[4096];
        EL_TRY(el_path_join(idx, sizeof idx, path, "model.safetensors.index.json"));
        EL_TRY(el_path_join(p, sizeof p, path, "model.safetensors"));
        if (el_file_exists(p)) {
            if ((s = add_map(st, p)) < 0 || (s = parse_one(st, 0, p, &cap)) < 0) goto fail;
        } else if (el_file_exists(idx)) {
            if ((s = open_sharded(st, path, idx, &cap)) < 0) goto fail;
        } else {
            return el_err(EDGELLM_STATUS_IO, "%s has no model.safetensors or model.safetensors.index.json", path);
        }
    } else {
        snprintf(p, sizeof p, "%s", path);
        if ((s = add_map(st, p)) < 0 || (s = parse_one(st, 0, p, &cap)) < 0) goto fail;
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    for (int64_t i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, st->tensors[i - 1].name)) {
            s = el_err(EDGELLM_STATUS_FORMAT, "%s: duplicate tensor name '%s'",
                       st->n_maps > 1 ? path : p, st->tensors[i].name);
            goto fail;
        }
    return EDGELLM_STATUS_OK;
fail:
    el_st_close(st);
    return s;
}

void el_st_close(el_st_file *st) {
    if (!st) return;
    for (int64_t i = 0; i < st->n_tensors; i++) el_free(st->tensors[i].name);
    el_free(st->tensors);
    for (int i = 0; i < st->n_maps; i++) el_mmap_close(&st->maps[i]);
    el_free(st->maps);
    if (st->metadata) cJSON_Delete(st->metadata);
    memset(st, 0, sizeof *st);
}

const el_st_tensor *el_st_find(const el_st_file *st, const char *name) {
    if (!name) return NULL;
    int64_t lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}
