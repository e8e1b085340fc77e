/* dispatch.c - picks the kernel table for the running CPU (cpuid + xgetbv) and exposes edgellm_cpu_*.
 * el_cpu_isa_set can force a lower ISA (tests and benchmarks compare all the ISAs available). */
#include "kernels/cpu/cpu_impl.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static el_cpu_isa detect_x86(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return EL_ISA_SCALAR;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx || !fma || !f16c) return EL_ISA_SCALAR;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return EL_ISA_SCALAR; /* SSE + AVX state enabled by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return EL_ISA_SCALAR;
    const bool avx2 = b & (1u << 5);
    if (!avx2) return EL_ISA_SCALAR;
    const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    if (f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6) return EL_ISA_AVX512; /* opmask + zmm state */
    return EL_ISA_AVX2;
}
#endif

el_cpu_isa el_cpu_isa_detect(void) {
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
#if defined(__x86_64__)
        v = (int)detect_x86();
#elif defined(__aarch64__)
        v = EL_ISA_NEON; /* Advanced SIMD is part of every ARMv8-A core */
#else
        v = EL_ISA_SCALAR;
#endif
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return (el_cpu_isa)v;
}

bool el_cpu_has(el_cpu_feat f) {
    static _Atomic int cached = -1; /* bit f set: feature f present */
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = 0;
#if defined(__x86_64__)
        unsigned a, b, c, d;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11))) v |= 1 << EL_FEAT_AVX512_VNNI;
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
            if (a & (1u << 5)) v |= 1 << EL_FEAT_AVX512_BF16;
            if (a & (1u << 4)) v |= 1 << EL_FEAT_AVX_VNNI;
        }
#elif defined(__aarch64__) && defined(__linux__)
        if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) v |= 1 << EL_FEAT_DOTPROD;
#endif
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return (v >> f) & 1;
}

const char *el_cpu_isa_name(el_cpu_isa isa) {
    switch (isa) {
    case EL_ISA_SCALAR: return "scalar";
    case EL_ISA_AVX2: return "avx2";
    case EL_ISA_AVX512: return "avx512";
    case EL_ISA_NEON: return "neon";
    }
    return "unknown";
}

static _Atomic int g_isa = -1; /* in effect; -1 = not chosen yet (the best detected) */

bool el_cpu_isa_ok(el_cpu_isa isa) {
    const el_cpu_isa best = el_cpu_isa_detect();
    if (isa == EL_ISA_SCALAR) return true;
    if (best == EL_ISA_NEON) return isa == EL_ISA_NEON;
    return isa != EL_ISA_NEON && (int)isa >= 0 && isa <= best;
}

el_cpu_isa el_cpu_isa_set(el_cpu_isa isa) {
    el_cpu_isa best = el_cpu_isa_detect();
    if ((int)isa < 0) isa = EL_ISA_SCALAR;
    if (!el_cpu_isa_ok(isa)) isa = best; /* above this CPU (x86 levels), or another architecture's */
    atomic_store(&g_isa, (int)isa);
    return isa;
}

/* First use: the best ISA detected, lowered by EDGELLM_CPU_ISA=scalar|avx2|avx512 if set (debugging and
 * benchmarking; a value above what the CPU supports is ignored). */
static int isa_default(void) {
    el_cpu_isa isa = el_cpu_isa_detect();
    const char *e = getenv("EDGELLM_CPU_ISA");
    if (e) {
        for (int i = EL_ISA_SCALAR; i < EL_ISA_COUNT; i++)
            if (!strcmp(e, el_cpu_isa_name((el_cpu_isa)i)) && el_cpu_isa_ok((el_cpu_isa)i)) isa = (el_cpu_isa)i;
    }
    return (int)isa;
}

static const el_cpu_kern *kern(void) {
    int v = atomic_load_explicit(&g_isa, memory_order_relaxed);
    if (v < 0) {
        int expect = -1;
        v = isa_default();
        if (!atomic_compare_exchange_strong(&g_isa, &expect, v)) v = expect;
    }
#if defined(__x86_64__)
    if (v == EL_ISA_AVX512) return &el_cpu_kern_avx512;
    if (v == EL_ISA_AVX2) return &el_cpu_kern_avx2;
#endif
#if defined(__aarch64__)
    if (v == EL_ISA_NEON) return &el_cpu_kern_neon;
#endif
    return &el_cpu_kern_scalar;
}

el_cpu_isa el_cpu_isa_get(void) {
    (void)kern();
    return (el_cpu_isa)atomic_load(&g_isa);
}

size_t edgellm_cpu_matmul_scratch(int64_t m, int64_t k, el_dtype wt) {
    (void)m;
    (void)k;
    (void)wt;
    return 0; /* the register-tiled kernels convert W on the fly */
}

void edgellm_cpu_matmul(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n0, int64_t n1,
                        const float *bias, float *y, int64_t ldy, void *scratch) {
    (void)scratch;
    if (m <= 0 || k <= 0 || n1 <= n0) return;
    kern()->matmul(x, m, k, w, wt, n0, n1, bias, y, ldy);
}

void edgellm_cpu_rmsnorm(const float *x, const void *w, el_dtype wt, int64_t r0, int64_t r1, int64_t dim, float eps,
                         float *y) {
    if (r1 <= r0 || dim <= 0) return;
    kern()->rmsnorm(x, w, wt, r0, r1, dim, eps, y);
}

void edgellm_cpu_attention_items(const float *q, int64_t i0, int64_t i1, int64_t n_head, int64_t n_head_kv,
                                 int64_t head_dim, const int32_t *slot, const int32_t *pos,
                                 const void *k_cache, const void *v_cache, el_dtype kv_t, float k_scale,
                                 float v_scale, int64_t cap, float scale, float *out) {
    if (i1 <= i0) return;
    kern()->attention(q, i0, i1, n_head, n_head_kv, head_dim, slot, pos, k_cache, v_cache, kv_t, k_scale,
                      v_scale, cap, scale, out);
}

void edgellm_cpu_attention(const float *q, int64_t t0, int64_t t1, int64_t n_head, int64_t n_head_kv,
                           int64_t head_dim, const int32_t *slot, const int32_t *pos, const void *k_cache,
                           const void *v_cache, el_dtype kv_t, float k_scale, float v_scale, int64_t cap,
                           float scale, float *out, float *scratch) {
    (void)scratch; /* the blocked online softmax needs no per-position buffer */
    edgellm_cpu_attention_items(q, t0 * n_head_kv, t1 * n_head_kv, n_head, n_head_kv, head_dim, slot, pos,
                                k_cache, v_cache, kv_t, k_scale, v_scale, cap, scale, out);
}

void edgellm_cpu_swiglu(const float *gate, const float *up, float *out, int64_t i0, int64_t i1) {
    if (i1 <= i0) return;
    kern()->swiglu(gate, up, out, i0, i1);
}

void edgellm_cpu_add(float *y, const float *x, int64_t i0, int64_t i1) {
    if (i1 <= i0) return;
    kern()->add(y, x, i0, i1);
}

void edgellm_cpu_rope(float *x, int64_t t0, int64_t t1, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, const float *inv_freq, float attn_scale) {
    const int64_t half = n_rot / 2;
    float cs[2][256]; /* cos / sin of up to 256 frequencies, then every head along i (contiguous) */
    for (int64_t t = t0; t < t1; t++)
        for (int64_t i0 = 0; i0 < half; i0 += 256) {
            const int64_t ni = half - i0 < 256 ? half - i0 : 256;
            for (int64_t i = 0; i < ni; i++) {
                const float a = (float)pos[t] * inv_freq[i0 + i];
                cs[0][i] = cosf(a) * attn_scale;
                cs[1][i] = sinf(a) * attn_scale;
            }
            for (int64_t h = 0; h < n_heads; h++) {
                float *xh = x + (t * n_heads + h) * head_dim + i0;
                for (int64_t i = 0; i < ni; i++) {
                    const float x1 = xh[i], x2 = xh[half + i];
                    xh[i] = x1 * cs[0][i] - x2 * cs[1][i];
                    xh[half + i] = x2 * cs[0][i] + x1 * cs[1][i];
                }
            }
        }
}
