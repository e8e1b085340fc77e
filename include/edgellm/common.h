/*
 * common.h - status codes, logging, allocator and version, shared by every public header.
 * Include <edgellm/edgellm.h> to get the whole API.
 *
 * Every fallible call returns edgellm_status. A negative value is an error, 0 is success and a
 * positive value means "nothing changed, you may retry". After an error, edgellm_last_error() gives a
 * one-line, thread-local description naming the problem (file, tensor, field...).
 *
 *   edgellm_runtime *rt = NULL;
 *   if (edgellm_runtime_create("engine_dir", NULL, &rt) != EDGELLM_STATUS_OK) {
 *       fprintf(stderr, "error: %s\n", edgellm_last_error());
 *       return 1;
 *   }
 *
 * The library never writes to stdout and never aborts on bad input.
 */
#ifndef EDGELLM_COMMON_H
#define EDGELLM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGELLM_VERSION_MAJOR 0
#define EDGELLM_VERSION_MINOR 1
#define EDGELLM_VERSION_PATCH 0

/* ---- status ---------------------------------------------------------------------------------- */
#define EDGELLM_STATUS_MAP(XX)                                                                       \
    XX(OK, 0, "ok")                                                                                  \
    XX(KV_FULL, 1, "no KV slot; batch not consumed")                                                 \
    XX(ABORTED, 2, "aborted by callback")                                                            \
    XX(INVALID_ARG, -1, "invalid argument")                                                          \
    XX(NO_MEMORY, -2, "out of memory")                                                               \
    XX(IO, -3, "i/o error")                                                                          \
    XX(FORMAT, -4, "bad file format")                                                                \
    XX(UNSUPPORTED, -5, "unsupported")                                                               \
    XX(DEVICE, -6, "device error")                                                                   \
    XX(LIMIT, -7, "limit exceeded")

typedef enum edgellm_status {
#define EDGELLM_XX_(name, value, str) EDGELLM_STATUS_##name = value,
    EDGELLM_STATUS_MAP(EDGELLM_XX_)
#undef EDGELLM_XX_
} edgellm_status;

/* Static string for a status, never NULL. */
const char *edgellm_status_str(edgellm_status s);
/* Thread-local detail of the last error set on this thread ("" if none). Borrowed; valid until the
 * next failing call on this thread. */
const char *edgellm_last_error(void);
void edgellm_clear_error(void);

/* ---- logging --------------------------------------------------------------------------------- */
typedef enum edgellm_log_level {
    EDGELLM_LOG_LEVEL_ERROR = 0,
    EDGELLM_LOG_LEVEL_WARN = 1,
    EDGELLM_LOG_LEVEL_INFO = 2,
    EDGELLM_LOG_LEVEL_DEBUG = 3,
} edgellm_log_level;

typedef void (*edgellm_log_cb)(edgellm_log_level level, const char *msg, void *user);
/* cb == NULL restores the default (stderr). Messages above `max_level` are dropped. */
void edgellm_log_set(edgellm_log_cb cb, void *user);
void edgellm_log_set_level(edgellm_log_level max_level);

/* ---- allocator (every host allocation of the library goes through it) ------------------------ */
typedef struct edgellm_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *ptr, size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} edgellm_allocator;
/* NULL restores the libc allocator. Set it before creating any object. */
void edgellm_set_allocator(const edgellm_allocator *a);
/* Frees memory that the library returned to the caller (token arrays, strings). NULL is a no-op. */
void edgellm_free(void *p);

const char *edgellm_version(void);

#ifdef __cplusplus
}
#endif

#endif
