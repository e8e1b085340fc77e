/* stream.c - see stream.h. */
#include "stream.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

size_t el_stream_buf_size(size_t max_elems) {
    const size_t lo = 64u << 10, hi = 8u << 20;
    size_t want = max_elems > hi / 8 ? hi : max_elems * 8 + 128; /* f32 copy + f32 output */
    if (want < lo) want = lo;
    if (want > hi) want = hi;
    return (want + 127) & ~(size_t)127;
}

static bool is_float(el_dtype t) { return t == EL_DTYPE_F32 || t == EL_DTYPE_F16 || t == EL_DTYPE_BF16; }

edgellm_status el_stream_tensor(const el_st_tensor *t, el_dtype dst, void *buf, size_t buf_bytes, el_sink_fn sink,
                                void *user) {
    const char *src = t->data;
    if (dst == t->dtype) {
        /* straight from the mapping; 1 MiB at a time so few source pages are resident at once */
        const size_t step = 1u << 20;
        size_t off = 0;
        while (off < t->nbytes) {
            size_t k = t->nbytes - off < step ? t->nbytes - off : step;
            EL_TRY(sink(src + off, k, user));
            el_drop_pages(src + off, k);
            off += k;
        }
        return EDGELLM_STATUS_OK;
    }
    if (!is_float(t->dtype) || !is_float(dst))
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "tensor '%s': cannot convert %s to %s", t->name,
                      el_dtype_name(t->dtype), el_dtype_name(dst));
    const size_t ss = el_dtype_size(t->dtype), ds = el_dtype_size(dst);
    /* first half: aligned copy of the source chunk; second half: converted output */
    const size_t half = (buf_bytes / 2) & ~(size_t)63;
    const size_t chunk = half / (ss > ds ? ss : ds);
    char *tmp = buf, *out = (char *)buf + half;
    const size_t n = t->nbytes / ss;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        memcpy(tmp, src + i * ss, k * ss);
        el_convert(dst, out, t->dtype, tmp, k);
        EL_TRY(sink(out, k * ds, user));
        el_drop_pages(src + i * ss, k * ss);
    }
    return EDGELLM_STATUS_OK;
}
