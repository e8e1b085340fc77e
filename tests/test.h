/* test.h - minimal test helpers: CHECK macros that count failures, and the closing summary line. */
#ifndef EL_TEST_H
#define EL_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failed, t_passed;

/* xorshift64 step of the seeded generator *s (tests' reproducible random inputs); the new state */
static inline uint64_t t_xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
/* uniform float in [-1, 1) from *s (24 random bits) */
static inline float t_frand(uint64_t *s) {
    return (float)((t_xorshift(s) >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (cond) {                                                                                    \
            t_passed++;                                                                                \
        } else {                                                                                       \
            t_failed++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                   \
        }                                                                                              \
    } while (0)

#define CHECKF(cond, ...)                                                                              \
    do {                                                                                               \
        if (cond) {                                                                                    \
            t_passed++;                                                                                \
        } else {                                                                                       \
            t_failed++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                                              \
            fprintf(stderr, "\n");                                                                     \
        }                                                                                              \
    } while (0)

/* Asserts an edgellm call returns OK, printing edgellm_last_error() otherwise. */
#define CHECK_OK(expr)                                                                                 \
    do {                                                                                               \
        edgellm_status t_s_ = (expr);                                                                  \
        CHECKF(t_s_ == EDGELLM_STATUS_OK, "%s -> %d (%s)", #expr, (int)t_s_, edgellm_last_error());    \
    } while (0)

/* nmse = mse(a, b) / mse(a, 0) */
static inline double t_nmse(const float *ref, const float *got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)ref[i] - (double)got[i];
        if (isnan(got[i])) return INFINITY;
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? num / den : num;
}

/* The CLI under test ($EDGELLM_CLI, set by tests/CMakeLists.txt) into cli, and the scratch dir
 * $EDGELLM_TMP/<name> into tmp; false (with a message) when EDGELLM_CLI is not set. */
static inline bool t_cli_paths(const char *name, char *cli, size_t cli_cap, char *tmp, size_t tmp_cap) {
    const char *t = getenv("EDGELLM_TMP"), *c = getenv("EDGELLM_CLI");
    if (!c) {
        fprintf(stderr, "EDGELLM_CLI is not set\n");
        return false;
    }
    snprintf(tmp, tmp_cap, "%s/%s", t ? t : "/tmp/edgellm-test", name);
    snprintf(cli, cli_cap, "%s", c);
    return true;
}

static inline int t_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
