/* log.c - log callback; the default writes to stderr, never stdout. */
#include "core.h"

#include <stdio.h>

static edgellm_log_cb g_cb;
static void *g_user;
static edgellm_log_level g_level = EDGELLM_LOG_LEVEL_WARN;

void edgellm_log_set(edgellm_log_cb cb, void *user) {
    g_cb = cb;
    g_user = user;
}

void edgellm_log_set_level(edgellm_log_level max_level) { g_level = max_level; }

void el_log(edgellm_log_level lvl, const char *func, const char *fmt, ...) {
    if (lvl > g_level) return;
    char msg[2048];
    static const char *names[] = {"error", "warn", "info", "debug"};
    int n = snprintf(msg, sizeof msg, "%s: ", func);
    if (n < 0) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (g_cb)
        g_cb(lvl, msg, g_user);
    else
        fprintf(stderr, "edgellm %s: %s\n", names[lvl], msg);
}
