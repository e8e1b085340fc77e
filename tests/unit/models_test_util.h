/* models_test_util.h - scratch directories and small file helpers for the models/export/engine tests. */
#ifndef MODELS_TEST_UTIL_H
#define MODELS_TEST_UTIL_H

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* $EDGELLM_TMP/<name>-<pid>, created empty. */
static inline void tu_scratch(char *out, size_t cap, const char *name) {
    const char *t = getenv("EDGELLM_TMP");
    if (!t || !*t) t = "/tmp";
    el_mkdir_p(t);
    snprintf(out, cap, "%s/%s-%d", t, name, (int)getpid());
    el_rm_rf(out);
    el_mkdir_p(out);
}

static inline void tu_write(const char *path, const void *data, size_t n) {
    if (el_write_file(path, data, n) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "cannot write %s: %s\n", path, edgellm_last_error());
        exit(2);
    }
}

static inline char *tu_read(const char *path, size_t *n) {
    char *d = NULL;
    if (el_read_file(path, 0, &d, n) != EDGELLM_STATUS_OK) return NULL;
    return d;
}

/* A safetensors file from a header string and `data_len` bytes of data (byte i = i & 0xff). */
static inline void tu_write_st(const char *path, const char *header, size_t data_len) {
    size_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    unsigned char *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (unsigned char)i;
    tu_write(path, b, n);
    free(b);
}

static inline bool tu_contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

#endif
