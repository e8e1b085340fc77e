/* qneon.c - the ARMv8.0 NEON build of the quantized-format kernels (qneon_impl.h): vmull_s8 / vpadalq_s16
 * integer dot products and the activation quantization; every aarch64 core runs it. */
#include "kernels/cpu/qneon.h"

#if defined(__aarch64__)
#define QN_DP 0
#include "kernels/cpu/qneon_impl.h"
#endif
