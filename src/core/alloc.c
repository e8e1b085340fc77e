/* alloc.c - every host allocation goes through a replaceable allocator (OOM tests use it). */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t n, void *u) { (void)u; return malloc(n); }
static void *libc_realloc(void *p, size_t n, void *u) { (void)u; return realloc(p, n); }
static void libc_free(void *p, void *u) { (void)u; free(p); }

static edgellm_allocator g_alloc = {libc_malloc, libc_realloc, libc_free, NULL};

void edgellm_set_allocator(const edgellm_allocator *a) {
    if (a)
        g_alloc = *a;
    else
        g_alloc = (edgellm_allocator){libc_malloc, libc_realloc, libc_free, NULL};
}

void *el_malloc(size_t n) { return g_alloc.malloc_fn(n ? n : 1, g_alloc.user); }
void *el_realloc(void *p, size_t n) { return g_alloc.realloc_fn(p, n ? n : 1, g_alloc.user); }
void el_free(void *p) {
    if (p) g_alloc.free_fn(p, g_alloc.user);
}
void edgellm_free(void *p) { el_free(p); }

void *el_calloc(size_t count, size_t size) {
    size_t n;
    if (!el_mul_ok(count, size, &n)) return NULL;
    void *p = el_malloc(n);
    if (p) memset(p, 0, n);
    return p;
}

char *el_strndup(const char *s, size_t n) {
    char *p = el_malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
char *el_strdup(const char *s) { return s ? el_strndup(s, strlen(s)) : NULL; }

/* Aligned blocks: over-allocate, store the original pointer just before the aligned address. */
void *el_aligned_alloc(size_t n) {
    size_t total;
    if (n > SIZE_MAX - 64 - sizeof(void *)) return NULL;
    total = n + 64 + sizeof(void *);
    char *raw = el_malloc(total);
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    memset((void *)a, 0, n);
    return (void *)a;
}
void el_free_aligned(void *p) {
    if (p) el_free(((void **)p)[-1]);
}

edgellm_status el_buf_reserve(el_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return EDGELLM_STATUS_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return el_err(EDGELLM_STATUS_NO_MEMORY, "buffer too large");
        cap *= 2;
    }
    char *d = el_realloc(b->data, cap);
    if (!d) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory growing a buffer to %zu bytes", cap);
    b->data = d;
    b->cap = cap;
    return EDGELLM_STATUS_OK;
}
edgellm_status el_buf_append(el_buf *b, const void *p, size_t n) {
    EL_TRY(el_buf_reserve(b, n));
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return EDGELLM_STATUS_OK;
}
edgellm_status el_buf_append_str(el_buf *b, const char *s) { return el_buf_append(b, s, strlen(s)); }
edgellm_status el_buf_appendf(el_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return el_err(EDGELLM_STATUS_INVALID_ARG, "bad format");
    }
    edgellm_status s = el_buf_reserve(b, (size_t)n);
    if (s < 0) {
        va_end(ap2);
        return s;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return EDGELLM_STATUS_OK;
}
void el_buf_free(el_buf *b) {
    el_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
