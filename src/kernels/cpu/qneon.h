/* qneon.h - the AArch64 NEON kernels of the quantized formats (kernels/quant.h), declared for the dispatch in
 * qint8.c (w8a8, q8_0, q4_0) and qfloat.c (w4a16, nvfp4, fp8). The kernel bodies (qneon_impl.h) are compiled
 * twice: qneon.c for every ARMv8.0 core (plain NEON: vmull_s8 / vmlal_high_s8 / vpadalq_s16, names *_neon)
 * and qneon_dp.c with -march=armv8.2-a+dotprod (SDOT: vdotq_s32, names *_neondp), which runs only where
 * el_qn_dotprod() says so (HWCAP_ASIMDDP). docs/quantization.md ("ARM") describes the kernels. */
#ifndef EL_QNEON_H
#define EL_QNEON_H

#include "kernels/cpu/qfloat_impl.h"
#include "kernels/cpu/qint8.h"

#include <stdlib.h>
#include <string.h>

/* the SDOT kernels: the CPU has them (HWCAP_ASIMDDP) and EDGELLM_CPU_DOTPROD is not 0 (read on every call:
 * tests compare both paths under one emulator) */
static inline bool el_qn_dotprod(void) {
    const char *e = getenv("EDGELLM_CPU_DOTPROD");
    return el_cpu_has(EL_FEAT_DOTPROD) && !(e && !strcmp(e, "0"));
}

#if defined(__aarch64__)
/* int8-activation matmuls: same contracts as el_qi8_quantize_avx2 / el_qi8_matmul_avx2 (bit-exact with
 * el_ref_qmatmul); the activation quantization has no dot products (one version). */
void el_qi8_quantize_neon(const void *w, el_dtype wt, const float *x, int64_t m, int64_t k, int64_t i0,
                          int64_t i1, void *act);
void el_qi8_matmul_neon(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);
void el_qi8_matmul_neondp(const void *act, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                          int64_t n0, int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch);

/* weight-only / float-activation formats (qfloat.c): w4a16 and nvfp4 with x as two int8 limbs
 * per element (SDOT / vmull on the nibbles, resp. their e2m1 values), fp8 with x in f32 (qneon_impl.h). */
size_t el_qn_prep_size(const el_qf_info *q, int64_t m);
void el_qn_prep_neon(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep);
void el_qn_matmul_neon(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1,
                       const float *bias, float *y, int64_t ldy);
void el_qn_matmul_neondp(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1,
                         const float *bias, float *y, int64_t ldy);
#endif

#endif
