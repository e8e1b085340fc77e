/* cli_util.c - argument parsing and error printing shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *what) {
    const char *e = edgellm_last_error();
    if (e && e[0])
        fprintf(stderr, "error: %s: %s\n", what, e);
    else
        fprintf(stderr, "error: %s\n", what);
    return 1;
}

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_parse_f64(const char *s, double *out) {
    if (!s || !*s) return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool cli_flag_val(int argc, char **argv, int *i, const char *flag, const char **val, int *err) {
    if (strcmp(argv[*i], flag) != 0) return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "error: %s needs a value\n", flag);
        *err = 1;
        return true;
    }
    *val = argv[++*i];
    return true;
}

bool cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
    return false;
}

static void log_cb(edgellm_log_level lvl, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "edgellm %s: %s\n", names[lvl], msg);
}

void cli_setup_logging(void) {
    const char *e = getenv("EDGELLM_LOG");
    edgellm_log_level lvl = EDGELLM_LOG_LEVEL_WARN;
    if (e) {
        if (!strcmp(e, "error")) lvl = EDGELLM_LOG_LEVEL_ERROR;
        else if (!strcmp(e, "info")) lvl = EDGELLM_LOG_LEVEL_INFO;
        else if (!strcmp(e, "debug")) lvl = EDGELLM_LOG_LEVEL_DEBUG;
    }
    edgellm_log_set(log_cb, NULL);
    edgellm_log_set_level(lvl);
}
