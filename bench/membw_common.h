/* membw_common.h - streaming-read bandwidth measurement shared by bench_membw and bench_ops. */
#ifndef EL_BENCH_MEMBW_COMMON_H
#define EL_BENCH_MEMBW_COMMON_H

#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct rd_task {
    const char *buf;
    size_t size;
    double sink[64];
    el_cpu_isa isa;
} rd_task;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double read_avx512(const char *p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (double)_mm512_reduce_add_epi32(a0);
}
__attribute__((target("avx2"))) static double read_avx2(const char *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (double)_mm256_extract_epi32(a0, 0);
}
#endif
static double read_scalar(const char *p, size_t n) {
    const uint64_t *q = (const uint64_t *)p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        a0 ^= q[i];
        a1 ^= q[i + 1];
        a2 ^= q[i + 2];
        a3 ^= q[i + 3];
    }
    return (double)(a0 ^ a1 ^ a2 ^ a3);
}

static void rd_run(void *c, int ith, int nth) {
    rd_task *t = c;
    size_t per = (t->size / (size_t)nth) & ~(size_t)4095;
    const char *p = t->buf + per * (size_t)ith;
    size_t n = ith == nth - 1 ? t->size - per * (size_t)ith : per;
    double s;
#if defined(__x86_64__)
    if (t->isa == EL_ISA_AVX512)
        s = read_avx512(p, n);
    else if (t->isa == EL_ISA_AVX2)
        s = read_avx2(p, n);
    else
#endif
        s = read_scalar(p, n);
    t->sink[ith % 64] += s;
}

/* Reads the buffer in slices of 128 MiB (each far larger than the LLC, taken in rotation so none is
 * cached), timing every slice: the best slice is the bandwidth. Short timed units keep the figure
 * honest on a shared machine, where a long pass is likely to lose a core to another process. */
#define MEMBW_SLICE ((size_t)128 << 20)
static double measure(el_threadpool *tp, rd_task *t, int passes) {
    double best = 1e30;
    rd_task s = *t;
    const size_t n_slices = t->size / MEMBW_SLICE ? t->size / MEMBW_SLICE : 1;
    s.size = t->size < MEMBW_SLICE ? t->size : MEMBW_SLICE;
    el_threadpool_run(tp, rd_run, t); /* warm-up */
    for (int i = 0; i < passes; i++) {
        for (size_t j = 0; j < n_slices; j++) {
            s.buf = t->buf + j * s.size;
            double t0 = el_time_ms();
            el_threadpool_run(tp, rd_run, &s);
            double dt = el_time_ms() - t0;
            if (dt < best) best = dt;
        }
    }
    t->sink[0] += s.sink[0];
    return (double)s.size / (best * 1e-3) / 1e9;
}

/* Random contents: on some hosts (this VM included) mostly-zero or periodic memory streams measurably
 * faster than real data, which would inflate the figure. */
static inline void membw_fill_random(char *buf, size_t size) {
    uint64_t r = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i + 8 <= size; i += 8) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        memcpy(buf + i, &r, 8);
    }
}

/* GB/s of reading a fresh buffer of mib MiB with the threads of tp, best of passes. */
static inline double membw_measure(el_threadpool *tp, size_t mib, int passes) {
    rd_task t = {.size = mib << 20, .isa = el_cpu_isa_detect()};
    char *buf = el_aligned_alloc(t.size);
    if (!buf) return 0;
    membw_fill_random(buf, t.size);
    t.buf = buf;
    double g = measure(tp, &t, passes);
    el_free_aligned(buf);
    return g + (t.sink[0] == 12345.678 ? 1e-9 : 0);
}

#endif
