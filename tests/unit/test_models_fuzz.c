/* test_models_fuzz.c - deterministic mutation fuzzing of the safetensors reader and the engine
 * reader: every mutated file must open cleanly or fail with FORMAT/UNSUPPORTED/LIMIT, never crash
 * (run under EDGELLM_SANITIZE for the full value). Engine mutations re-hash the header and the
 * metadata so the JSON validation, not the checksum, is what gets exercised. */
#include "edgellm/edgellm.h"
#include "engine/engine.h"
#include "models/models.h"
#include "models_test_util.h"
#include "test.h"

#include <fcntl.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static void mutate(char *p, size_t lo, size_t hi) {
    static const char tokens[] = "{}[]\",:0123456789-e.truefalsnul \\";
    int n = 1 + (int)(rnd() % 4);
    for (int i = 0; i < n; i++) {
        size_t at = lo + rnd() % (hi - lo);
        switch (rnd() % 3) {
        case 0: p[at] = (char)rnd(); break;
        case 1: p[at] = tokens[rnd() % (sizeof tokens - 1)]; break;
        default: p[at] ^= (char)(1u << (rnd() % 8)); break;
        }
    }
}

static bool ok_status(edgellm_status s) {
    return s == EDGELLM_STATUS_OK || s == EDGELLM_STATUS_FORMAT || s == EDGELLM_STATUS_UNSUPPORTED ||
           s == EDGELLM_STATUS_LIMIT;
}

/* Rewrites only the first n bytes of an existing file (the data part never changes). */
static void write_head(const char *path, const char *data, size_t n) {
    int fd = open(path, O_WRONLY);
    if (fd < 0 || pwrite(fd, data, n, 0) != (ssize_t)n) {
        fprintf(stderr, "cannot rewrite %s\n", path);
        exit(2);
    }
    close(fd);
}

static void put_u64(char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (char)(v >> (8 * i));
}

int main(void) {
    edgellm_log_set_level(EDGELLM_LOG_LEVEL_ERROR);
    char dir[1024], p[2048];
    tu_scratch(dir, sizeof dir, "test_models_fuzz");

    /* safetensors: mutate the header of a real fixture */
    size_t n;
    char *orig = tu_read("fixtures/models/tiny-qwen3/model.safetensors", &n);
    CHECK(orig != NULL);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)orig[i];
    char *buf = malloc(n);
    snprintf(p, sizeof p, "%s/f.safetensors", dir);
    tu_write(p, orig, n);
    int bad = 0, opened = 0;
    for (int it = 0; it < 1500; it++) {
        memcpy(buf, orig, n);
        mutate(buf, it % 10 == 0 ? 0 : 8, 8 + hl);
        write_head(p, buf, 8 + hl);
        el_st_file st;
        edgellm_status s = el_st_open(p, &st);
        if (!ok_status(s)) bad++;
        if (s == EDGELLM_STATUS_OK) {
            opened++;
            /* whatever opened must be self-consistent */
            for (int64_t i = 0; i < st.n_tensors; i++) {
                const el_st_tensor *t = &st.tensors[i];
                const char *base = st.maps[t->shard].data;
                if ((const char *)t->data < base || (const char *)t->data + t->nbytes > base + st.maps[t->shard].size) bad++;
            }
            el_st_close(&st);
        }
    }
    CHECKF(bad == 0, "%d safetensors mutations gave an unexpected status or bad bounds", bad);
    fprintf(stderr, "safetensors fuzz: %d of 1500 mutants still opened\n", opened);
    free(orig);
    free(buf);

    /* engine: mutate the metadata JSON and re-hash */
    char exp[1200], eng[1200];
    snprintf(exp, sizeof exp, "%s/exp", dir);
    snprintf(eng, sizeof eng, "%s/eng", dir);
    CHECK_OK(edgellm_export("fixtures/models/tiny-qwen2", exp, NULL));
    CHECK_OK(edgellm_build(exp, eng, NULL));
    snprintf(p, sizeof p, "%s/model.engine", eng);
    orig = tu_read(p, &n);
    buf = malloc(n);
    uint64_t msize = 0;
    for (int i = 7; i >= 0; i--) msize = (msize << 8) | (unsigned char)orig[24 + i];
    bad = opened = 0;
    for (int it = 0; it < 1500; it++) {
        memcpy(buf, orig, n);
        mutate(buf, 64, 64 + msize);
        put_u64(buf + 48, el_hash64(buf + 64, msize));
        put_u64(buf + 56, el_hash64(buf, 56));
        write_head(p, buf, 64 + msize);
        el_engine *e = NULL;
        edgellm_status s = el_engine_open(eng, it % 2 == 0, &e);
        if (!ok_status(s) || (s == EDGELLM_STATUS_OK) != (e != NULL)) bad++;
        if (e) {
            opened++;
            for (int64_t i = 0; i < e->n_tensors; i++) {
                const char *b = e->map.data;
                const char *d = e->tensors[i].data;
                if (d < b || d + e->tensors[i].nbytes > b + e->map.size) bad++;
            }
            el_engine_close(e);
        }
    }
    CHECKF(bad == 0, "%d engine mutations gave an unexpected status or bad bounds", bad);
    fprintf(stderr, "engine fuzz: %d of 1500 mutants still opened\n", opened);
    free(orig);
    free(buf);
    el_rm_rf(dir);
    return t_finish("test_models_fuzz");
}
