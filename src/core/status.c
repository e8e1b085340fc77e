/* status.c - status strings and the thread-local error message. */
#include "core.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char g_err[1024];

const char *edgellm_status_str(edgellm_status s) {
    switch (s) {
#define EDGELLM_XX_(name, value, str)                                                                  \
    case EDGELLM_STATUS_##name:                                                                        \
        return str;
        EDGELLM_STATUS_MAP(EDGELLM_XX_)
#undef EDGELLM_XX_
    }
    return "unknown status";
}

const char *edgellm_last_error(void) { return g_err; }
void edgellm_clear_error(void) { g_err[0] = 0; }

edgellm_status el_err(edgellm_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return s;
}

edgellm_status el_err_prefix(edgellm_status s, const char *fmt, ...) {
    char prefix[512], old[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    const char *rest = old[0] ? old : edgellm_status_str(s);
    size_t pl = strlen(prefix);
    memcpy(g_err, prefix, pl);
    size_t pos = pl;
    if (pos + 2 < sizeof g_err) {
        g_err[pos++] = ':';
        g_err[pos++] = ' ';
    }
    size_t rl = strlen(rest);
    if (rl > sizeof g_err - 1 - pos) rl = sizeof g_err - 1 - pos;
    memcpy(g_err + pos, rest, rl);
    g_err[pos + rl] = 0;
    return s;
}

const char *edgellm_version(void) { return "0.1.0"; }
