/* cpu_impl.h - the per-ISA kernel table behind edgellm_cpu_* (dispatch.c picks one at run time). */
#ifndef EL_CPU_IMPL_H
#define EL_CPU_IMPL_H

#include "kernels/kernels.h"

typedef struct el_cpu_kern {
    void (*matmul)(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n0, int64_t n1,
                   const float *bias, float *y, int64_t ldy);
    void (*rmsnorm)(const float *x, const void *w, el_dtype wt, int64_t r0, int64_t r1, int64_t dim, float eps,
                    float *y);
    /* work items [i0, i1) over (token, kv head) pairs: item = t * n_head_kv + kv_head */
    void (*attention)(const float *q, int64_t i0, int64_t i1, int64_t n_head, int64_t n_head_kv, int64_t hd,
                      const int32_t *slot, const int32_t *pos, const void *kc, const void *vc, el_dtype kt,
                      float k_scale, float v_scale, int64_t cap, float scale, float *out);
    void (*swiglu)(const float *gate, const float *up, float *out, int64_t i0, int64_t i1);
    void (*add)(float *y, const float *x, int64_t i0, int64_t i1);
} el_cpu_kern;

extern const el_cpu_kern el_cpu_kern_scalar;
#if defined(__x86_64__)
extern const el_cpu_kern el_cpu_kern_avx2;
extern const el_cpu_kern el_cpu_kern_avx512;
#endif
#if defined(__aarch64__)
extern const el_cpu_kern el_cpu_kern_neon;
#endif

/* Largest head_dim * (q heads processed together) the attention kernels keep on the stack. */
#define EL_ATTN_ACC_FLOATS 4096
#define EL_ATTN_MAX_HEAD_DIM 4096

#endif
