/* st_writer.c - streaming safetensors writer: the header declares every tensor up front, then the
 * data is appended in declaration order, so no tensor ever has to be held in memory whole. */
#include "models.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct el_st_writer {
    FILE *f;
    char *path;
    size_t *sizes; /* bytes per declared tensor */
    char **names;
    int64_t n, cur;
    size_t cur_written;
    char *iobuf;
};

static void writer_free(el_st_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    for (int64_t i = 0; w->names && i < w->n; i++) el_free(w->names[i]);
    el_free(w->names);
    el_free(w->sizes);
    el_free(w->path);
    el_free(w->iobuf);
    el_free(w);
}

edgellm_status el_st_writer_open(const char *path, const el_st_decl *decls, int64_t n, const char *metadata_json,
                                 el_st_writer **out) {
    *out = NULL;
    edgellm_status s = EDGELLM_STATUS_OK;
    cJSON *hdr = cJSON_CreateObject();
    char *text = NULL;
    el_st_writer *w = el_calloc(1, sizeof *w);
    if (!hdr || !w) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    w->n = n;
    w->sizes = el_calloc((size_t)(n ? n : 1), sizeof *w->sizes);
    w->names = el_calloc((size_t)(n ? n : 1), sizeof *w->names);
    w->path = el_strdup(path);
    if (!w->sizes || !w->names || !w->path) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    if (metadata_json) {
        cJSON *md = cJSON_Parse(metadata_json);
        if (!cJSON_IsObject(md)) {
            cJSON_Delete(md);
            s = el_err(EDGELLM_STATUS_INVALID_ARG, "safetensors metadata must be a JSON object");
            goto fail;
        }
        cJSON_AddItemToObject(hdr, "__metadata__", md);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const el_st_decl *d = &decls[i];
        size_t numel = 1, nb;
        if (d->n_dims < 0 || d->n_dims > EL_MAX_DIMS || el_dtype_size(d->dtype) == 0) {
            s = el_err(EDGELLM_STATUS_INVALID_ARG, "tensor '%s': bad declaration", d->name);
            goto fail;
        }
        cJSON *t = cJSON_CreateObject();
        cJSON_AddItemToObject(hdr, d->name, t);
        cJSON_AddStringToObject(t, "dtype", el_dtype_st_name(d->dtype));
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int k = 0; k < d->n_dims; k++) {
            if (d->shape[k] < 0 || !el_mul_ok(numel, (size_t)d->shape[k], &numel)) {
                s = el_err(EDGELLM_STATUS_INVALID_ARG, "tensor '%s': bad shape", d->name);
                goto fail;
            }
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)d->shape[k]));
        }
        if (!el_mul_ok(numel, el_dtype_size(d->dtype), &nb)) {
            s = el_err(EDGELLM_STATUS_INVALID_ARG, "tensor '%s': too large", d->name);
            goto fail;
        }
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
        w->sizes[i] = nb;
        w->names[i] = el_strdup(d->name);
        if (!w->names[i]) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
    }
    text = cJSON_PrintUnformatted(hdr);
    if (!text) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    size_t tl = strlen(text);
    size_t padded = (tl + 7) & ~(size_t)7; /* data starts 8-byte aligned */
    w->f = fopen(path, "wb");
    if (!w->f) {
        s = el_err(EDGELLM_STATUS_IO, "cannot create %s: %s", path, strerror(errno));
        goto fail;
    }
    w->iobuf = el_malloc(1 << 20);
    if (w->iobuf) setvbuf(w->f, w->iobuf, _IOFBF, 1 << 20);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    if (fwrite(len8, 1, 8, w->f) != 8 || fwrite(text, 1, tl, w->f) != tl) {
        s = el_err(EDGELLM_STATUS_IO, "write to %s failed: %s", path, strerror(errno));
        goto fail;
    }
    for (size_t i = tl; i < padded; i++)
        if (fputc(' ', w->f) == EOF) {
            s = el_err(EDGELLM_STATUS_IO, "write to %s failed: %s", path, strerror(errno));
            goto fail;
        }
    while (w->cur < w->n && w->sizes[w->cur] == 0) w->cur++;
    cJSON_free(text);
    cJSON_Delete(hdr);
    *out = w;
    return EDGELLM_STATUS_OK;
fail:
    cJSON_free(text);
    cJSON_Delete(hdr);
    if (w && w->f) {
        fclose(w->f);
        w->f = NULL;
        unlink(path);
    }
    writer_free(w);
    return s;
}

edgellm_status el_st_writer_write(el_st_writer *w, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        if (w->cur >= w->n)
            return el_err(EDGELLM_STATUS_INVALID_ARG, "%s: more data written than the declared tensors hold", w->path);
        size_t left = w->sizes[w->cur] - w->cur_written;
        size_t k = n < left ? n : left;
        if (fwrite(p, 1, k, w->f) != k)
            return el_err(EDGELLM_STATUS_IO, "write to %s failed: %s", w->path, strerror(errno));
        p += k;
        n -= k;
        w->cur_written += k;
        if (w->cur_written == w->sizes[w->cur]) {
            w->cur++;
            w->cur_written = 0;
            while (w->cur < w->n && w->sizes[w->cur] == 0) w->cur++;
        }
    }
    return EDGELLM_STATUS_OK;
}

edgellm_status el_st_writer_close(el_st_writer *w) {
    if (!w) return EDGELLM_STATUS_OK;
    edgellm_status s = EDGELLM_STATUS_OK;
    if (w->cur < w->n) {
        s = el_err(EDGELLM_STATUS_INVALID_ARG, "%s: tensor '%s' is incomplete (%zu of %zu bytes written)", w->path,
                   w->names[w->cur], w->cur_written, w->sizes[w->cur]);
        el_st_writer_abort(w);
        return s;
    }
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) {
        s = el_err(EDGELLM_STATUS_IO, "closing %s failed: %s", w->path, strerror(errno));
        unlink(w->path);
    }
    writer_free(w);
    return s;
}

void el_st_writer_abort(el_st_writer *w) {
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    unlink(w->path);
    writer_free(w);
}
