/* bench_qint8.c - the quantized matmuls (int8 activations: w8a8, q8_0, q4_0; and float activations: w4a16
 * g128 symmetric, fp8 per-channel weight-only, nvfp4) through the CPU backend on
 * the linears of a Qwen3-0.6B-shaped layer (q 2048x1024, k/v 1024x1024, o 1024x2048, gate/up 3072x1024,
 * down 1024x3072; or with "llama" as 5th argument Llama-3.2-1B's: q/o 2048x2048, k/v 512x2048, gate/up
 * 8192x2048, down 2048x8192), copied into L layers so the weights do not fit in the cache:
 *   decode  m = 1 over all layers: GB/s of weights read (compare with bench_membw)
 *   prefill m = P over one layer (weights in cache or not, the x side dominates): GMAC/s
 * With 1 thread the times are the thread's CPU time (less disturbed on a shared machine).
 * EDGELLM_CPU_ISA=scalar|avx2|avx512 picks the kernels (scalar: el_ref_qmatmul).
 * usage: bench_qint8 [threads (2)] [layers (16)] [prefill m (512)] [formats (w8a8,q8_0,q4_0): any of those and
 *        w4a16,fp8,nvfp4] [shapes: qwen (default) or llama] */
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* with 1 thread: this thread's CPU time (robust to other processes on a shared machine), else wall time */
static int g_cpu_clock;
static double now_ms(void) {
    if (!g_cpu_clock) return el_time_ms();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

enum { NLIN = 7 };
static const int64_t SH_QWEN[NLIN][2] = {{2048, 1024}, {1024, 1024}, {1024, 1024}, {1024, 2048},
                                         {3072, 1024}, {3072, 1024}, {1024, 3072}}; /* (n, k) */
static const int64_t SH_LLAMA[NLIN][2] = {{2048, 2048}, {512, 2048},  {512, 2048}, {2048, 2048},
                                          {8192, 2048}, {8192, 2048}, {2048, 8192}}; /* Llama-3.2-1B */

static uint64_t g_rng = 88172645463325252ull;
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

int main(int argc, char **argv) {
    const int nth = argc > 1 ? atoi(argv[1]) : 2, L = argc > 2 ? atoi(argv[2]) : 16;
    const int64_t P = argc > 3 ? atol(argv[3]) : 512;
    const char *fmts = argc > 4 ? argv[4] : "w8a8,q8_0,q4_0";
    const int64_t(*SH)[2] = argc > 5 && !strcmp(argv[5], "llama") ? SH_LLAMA : SH_QWEN;
    int64_t kmax = 0, wmax = 0; /* the largest k and n x k */
    for (int i = 0; i < NLIN; i++) {
        kmax = SH[i][1] > kmax ? SH[i][1] : kmax;
        kmax = SH[i][0] > kmax ? SH[i][0] : kmax;
        wmax = SH[i][0] * SH[i][1] > wmax ? SH[i][0] * SH[i][1] : wmax;
    }
    g_cpu_clock = nth == 1 && !getenv("BENCH_WALL");
    el_backend_params bp = {0};
    bp.n_threads = nth;
    el_backend *be = NULL;
    if (el_backend_cpu_create(&bp, &be) != EDGELLM_STATUS_OK) return 1;
    float *x = malloc((size_t)(P * kmax) * 4), *y = malloc((size_t)(P * kmax) * 4), *wf = malloc((size_t)wmax * 4);
    if (!x || !y || !wf) return 1;
    for (int64_t i = 0; i < P * kmax; i++)
        x[i] = frand();
    const el_dtype all[6] = {EL_DTYPE_Q_W8A8,  EL_DTYPE_Q8_0, EL_DTYPE_Q4_0,
                             EL_DTYPE_Q_W4A16, EL_DTYPE_Q_FP8, EL_DTYPE_Q_NVFP4};
    for (int f = 0; f < 6; f++) {
        const el_dtype wt = all[f];
        if (!strstr(fmts, el_dtype_name(wt))) continue;
        void *w[NLIN];
        size_t nb[NLIN], total = 0;
        el_qopts o = el_qopts_default();
        for (int i = 0; i < NLIN; i++) {
            nb[i] = el_weight_nbytes(wt, SH[i][0], SH[i][1], o.group, false);
            total += nb[i];
        }
        char *buf = el_aligned_alloc(total * (size_t)L + 64 * NLIN * (size_t)L);
        if (!buf) return 1;
        size_t off = 0;
        char *lw[64][NLIN];
        for (int i = 0; i < NLIN; i++) {
            for (int64_t c = 0; c < SH[i][0] * SH[i][1]; c++)
                wf[c] = frand();
            w[i] = buf + off;
            if (el_quantize_ref(wt, wf, SH[i][0], SH[i][1], &o, w[i]) != EDGELLM_STATUS_OK) return 1;
            off += (nb[i] + 63) & ~(size_t)63;
        }
        const size_t layer = off;
        for (int l = 0; l < L && l < 64; l++) {
            if (l) memcpy(buf + (size_t)l * layer, buf, layer);
            for (int i = 0; i < NLIN; i++)
                lw[l][i] = (char *)w[i] + (size_t)l * layer;
        }
        /* decode */
        double best = 1e30;
        for (int rep = 0; rep < 8; rep++) {
            double t0 = now_ms();
            for (int l = 0; l < L && l < 64; l++)
                for (int i = 0; i < NLIN; i++)
                    be->iface.matmul(be, x, 1, SH[i][1], lw[l][i], wt, SH[i][0], NULL, y, SH[i][0]);
            double t = now_ms() - t0;
            if (t < best) best = t;
        }
        printf("%-5s decode  m=1  : %7.3f ms for %d layers, %6.1f GB/s of weights (%zu MB)\n",
               el_dtype_name(wt), best, L, (double)total * L / best / 1e6, total * (size_t)L >> 20);
        /* prefill */
        best = 1e30;
        double macs = 0;
        for (int i = 0; i < NLIN; i++)
            macs += (double)P * (double)SH[i][0] * (double)SH[i][1];
        double lbest[NLIN]; /* per linear: best time */
        for (int i = 0; i < NLIN; i++)
            lbest[i] = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_ms();
            for (int i = 0; i < NLIN; i++) {
                const double ti = now_ms();
                be->iface.matmul(be, x, P, SH[i][1], lw[0][i], wt, SH[i][0], NULL, y, SH[i][0]);
                const double d = now_ms() - ti;
                if (d < lbest[i]) lbest[i] = d;
            }
            double t = now_ms() - t0;
            if (t < best) best = t;
        }
        printf("%-5s prefill m=%lld: %7.3f ms per layer, %6.1f GMAC/s; per linear (n x k: GMAC/s):",
               el_dtype_name(wt), (long long)P, best, macs / best / 1e6);
        for (int i = 0; i < NLIN; i++)
            printf(" %lldx%lld: %.0f", (long long)SH[i][0], (long long)SH[i][1],
                   (double)P * (double)SH[i][0] * (double)SH[i][1] / lbest[i] / 1e6);
        printf("\n");
        el_free_aligned(buf);
    }
    be->iface.free(be);
    free(x);
    free(y);
    free(wf);
    return 0;
}
