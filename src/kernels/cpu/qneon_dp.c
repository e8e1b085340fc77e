/* qneon_dp.c - the ARMv8.2 dot-product build of the quantized-format kernels (qneon_impl.h), compiled with
 * -march=armv8.2-a+dotprod (CMakeLists.txt); called only where el_qn_dotprod() (HWCAP_ASIMDDP). */
#include "kernels/cpu/qneon.h"

#if defined(__aarch64__)
#define QN_DP 1
#include "kernels/cpu/qneon_impl.h"
#endif
