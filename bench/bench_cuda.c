/*
 * bench_cuda.c - CUDA backend micro-benchmarks (built in every configuration; without CUDA it only says
 * so). Prints, per line, what was measured:
 *   copy   device-to-device cudaMemcpy of 1 GiB, GB/s counting bytes read + written (the ceiling)
 *   gemv   backend matmul with m = 1 and m = 8 (tensor-core "mma" and fp32-FMA "fma" kernels) on the bf16 layer shapes of Qwen3-0.6B, Llama-3.2-1B and
 *          Llama-3.1-8B: weight GB/s and % of the copy bandwidth. Weights are rotated over copies that
 *          together exceed the L2 cache; calls are captured in a CUDA graph (no launch gaps)
 *   gemm   8192^3 bf16: the backend matmul (f32 x -> bf16 convert + cuBLASLt, f32 out) and cuBLASLt alone
 *          on bf16 inputs (the library baseline), TFLOP/s
 *   attn   decode attention over an 8192-position f16 cache: GB/s of K/V read; prefill attention (one
 *          sequence of 512/2048/8192 tokens): TFLOP/s of the tensor-core and the split-KV kernels
 * Times: median of several timed repetitions after a warm-up.
 *   qgemv  (--qgemv only) quantized-weight GEMVs per format on the same shapes: GB/s of quantized bytes
 *   qgemm  prefill GEMMs (m = 2048 tokens) on the Llama-3.1-8B layer shapes: bf16 weights, and w8a8 / static fp8
 *          on the int8 / fp8 GEMMs ("codes") and on the bf16 GEMM of dequantized weights ("bf16"), TFLOP/s
 *          (2 m n k per call; activation quantization and epilogue included; also alone with --qgemm)
 * usage: bench_cuda [--copy | --gemm] [--quick] [--qgemv] [--qgemm]   (--qgemv: QB_FMT="w4a16 g128" one format, QB_SHAPE="down
 *        lm_head" shapes)
 */
#include "backend/backend.h"
#include "kernels/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EDGELLM_HAVE_CUDA
int main(void) {
    printf("bench_cuda: built without CUDA (configure with -DEDGELLM_CUDA=ON)\n");
    return 0;
}
#else
#include <cublasLt.h>
#include <cuda_runtime_api.h>

static el_backend *be;
static double g_copy_gbs;
extern int elk_gemv_tc_mode;      /* src/kernels/cuda/gemv.cu */
extern int elk_attn_stage_mode;   /* src/kernels/cuda/attention.cu */
extern int elk_qgemv_tc_mode;     /* src/kernels/cuda/qgemv.cu */
extern int elk_attn_prefill_mode; /* src/kernels/cuda/attention_prefill.cu */
extern int elk_attn_prefill_rows; /* src/kernels/cuda/attention_prefill.cu */
extern int el_cuda_qgemm_mode;    /* src/backend/cuda.cu: 1 int8 / fp8 prefill GEMMs, 0 bf16 on dequantized W */
extern unsigned long long el_cuda_qgemm_count[3]; /* src/backend/cuda.cu: prefill GEMMs run: int8, fp8, bf16 */

#define CK(x)                                                                                          \
    do {                                                                                               \
        cudaError_t e_ = (x);                                                                          \
        if (e_ != cudaSuccess) {                                                                       \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));                \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)
#define OK(x)                                                                                          \
    do {                                                                                               \
        if ((x) != EDGELLM_STATUS_OK) {                                                                \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, edgellm_last_error());                  \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

/* Fills device memory with random bf16 values in [-1, 1) (never zeros). */
static void fill_bf16(void *d, size_t n) {
    size_t chunk = (size_t)1 << 22;
    uint16_t *h = malloc(chunk * 2);
    uint64_t s = 0x12345678abcdefull ^ n;
    for (size_t i = 0; i < chunk; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = el_f32_to_bf16((float)((s >> 40) * (1.0 / 8388608.0)) - 1.f);
    }
    for (size_t o = 0; o < n; o += chunk) OK(be->iface.upload(be, (uint16_t *)d + o, h, (n - o < chunk ? n - o : chunk) * 2));
    OK(be->iface.sync(be));
    free(h);
}
static void fill_f32(void *d, size_t n) {
    float *h = malloc(n * 4);
    uint64_t s = 0x9876543ull ^ n;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = (float)((s >> 40) * (1.0 / 8388608.0)) - 1.f;
    }
    OK(be->iface.upload(be, d, h, n * 4));
    OK(be->iface.sync(be));
    free(h);
}

static void bench_copy(void) {
    size_t n = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, n));
    CK(cudaMalloc(&b, n));
    CK(cudaMemset(a, 1, n));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    double t[10];
    for (int r = 0; r < 10; r++) {
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, 0));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        t[r] = ms;
    }
    double ms = median(t, 10);
    g_copy_gbs = 2.0 * (double)n / (ms * 1e-3) / 1e9;
    printf("copy  d2d 1 GiB: %.3f ms, %.0f GB/s (read + write)\n", ms, g_copy_gbs);
    CK(cudaFree(a));
    CK(cudaFree(b));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

typedef struct shape {
    const char *model, *name;
    int64_t n, k;
} shape;

/* Times `calls` back-to-back matmuls captured as one graph; returns ms per call (median of reps). */
static double time_matmuls(const float *x, int64_t m, int64_t k, void **w, int n_copies, int64_t n, float *y,
                           int calls, int reps) {
    static int key = 1000;
    key++;
    OK(be->iface.graph_begin(be, key));
    for (int c = 0; c < calls; c++) OK(be->iface.matmul(be, x, m, k, w[c % n_copies], EL_DTYPE_BF16, n, NULL, y, n));
    OK(be->iface.graph_end(be, key));
    OK(be->iface.graph_launch(be, key)); /* warm-up */
    OK(be->iface.sync(be));
    double t[16];
    for (int r = 0; r < reps; r++) {
        double t0 = el_time_ms();
        OK(be->iface.graph_launch(be, key));
        OK(be->iface.sync(be));
        t[r] = (el_time_ms() - t0) / calls;
    }
    return median(t, reps);
}

static void bench_gemv(bool quick) {
    const shape shapes[] = {
        {"qwen3-0.6b", "q", 2048, 1024},     {"qwen3-0.6b", "k/v", 1024, 1024},   {"qwen3-0.6b", "o", 1024, 2048},
        {"qwen3-0.6b", "gate/up", 3072, 1024}, {"qwen3-0.6b", "down", 1024, 3072}, {"qwen3-0.6b", "lm_head", 151936, 1024},
        {"llama3.2-1b", "q/o", 2048, 2048},  {"llama3.2-1b", "k/v", 512, 2048},   {"llama3.2-1b", "gate/up", 8192, 2048},
        {"llama3.2-1b", "down", 2048, 8192}, {"llama3.2-1b", "lm_head", 128256, 2048},
        {"llama3.1-8b", "q/o", 4096, 4096},  {"llama3.1-8b", "k/v", 1024, 4096},  {"llama3.1-8b", "gate/up", 14336, 4096},
        {"llama3.1-8b", "down", 4096, 14336}, {"llama3.1-8b", "lm_head", 128256, 4096},
    };
    const int ns = sizeof shapes / sizeof shapes[0];
    float *x, *y;
    OK(be->iface.alloc(be, 8 * 14336 * 4, (void **)&x));
    OK(be->iface.alloc(be, 8 * 151936 * 4, (void **)&y));
    fill_f32(x, 8 * 14336);
    printf("gemv  bf16 weights, f32 x/y; GB/s of weight bytes; %% of the d2d copy bandwidth\n");
    for (int s = 0; s < ns; s++) {
        const shape *sh = &shapes[s];
        size_t bytes = (size_t)(sh->n * sh->k * 2);
        int copies = (int)(((size_t)384 << 20) / bytes) + 1; /* > 384 MB in rotation: well above L2 */
        if (copies > 64) copies = 64;
        void *w[64];
        for (int c = 0; c < copies; c++) {
            OK(be->iface.alloc(be, bytes, &w[c]));
            fill_bf16(w[c], bytes / 2);
        }
        int calls = copies < 8 ? 8 * copies : copies;
        if (quick && calls > 16) calls = 16;
        /* m = 1 and m = 8, each with the tensor-core ("mma") and the fp32-FMA ("fma") kernel */
        for (int mi = 0; mi < 4; mi++) {
            int64_t m = mi < 2 ? 1 : 8;
            elk_gemv_tc_mode = (mi & 1) ? 2 : 1;
            double t = time_matmuls(x, m, sh->k, w, copies, sh->n, y, calls, quick ? 3 : 7);
            double gbs = (double)bytes / (t * 1e-3) / 1e9;
            printf("gemv  %-11s %-8s n %6lld k %6lld m %lld %s: %8.2f us %7.0f GB/s %5.1f%% of copy\n", sh->model,
                   sh->name, (long long)sh->n, (long long)sh->k, (long long)m, (mi & 1) ? "mma" : "fma", t * 1e3, gbs,
                   100.0 * gbs / g_copy_gbs);
        }
        elk_gemv_tc_mode = 0;
        for (int c = 0; c < copies; c++) be->iface.dealloc(be, w[c]);
    }
    be->iface.dealloc(be, x);
    be->iface.dealloc(be, y);
}

/* Quantized GEMV (kernels/quant.h formats) on the same layer shapes: GB/s of the quantized weight bytes
 * (el_weight_nbytes: quants + scales) and % of copy. Contents are random codes with a valid header (speed
 * does not depend on the values); activation pre-kernels are included in the timed graph. */
typedef struct qbench {
    const char *name;
    el_dtype t;
    int64_t group;
    uint32_t flags;
    float act;
    bool all_shapes, m8;
} qbench;

static uint64_t qb_rng = 0x51ed2705u;
static uint8_t qb_byte(void) {
    qb_rng ^= qb_rng << 13, qb_rng ^= qb_rng >> 7, qb_rng ^= qb_rng << 17;
    return (uint8_t)(qb_rng >> 32);
}
/* A random host layout of format f for (n, k). */
static void *qb_make(const qbench *f, int64_t n, int64_t k, size_t *nbytes) {
    *nbytes = el_weight_nbytes(f->t, n, k, f->group, (f->flags & EL_QF_ZEROS) != 0);
    uint8_t *h = malloc(*nbytes);
    for (size_t i = 0; i < *nbytes; i++)
        h[i] = qb_byte();
    if (f->t == EL_DTYPE_Q8_0 || f->t == EL_DTYPE_Q4_0) {
        const size_t bb = f->t == EL_DTYPE_Q8_0 ? 34 : 18;
        for (size_t o = 0; o < *nbytes; o += bb)
            h[o] = 0x00, h[o + 1] = 0x20; /* d = f16 2^-7 */
        return h;
    }
    el_qhdr hd;
    OK(el_qhdr_init(&hd, f->t, n, k, f->group, f->flags));
    hd.act_scale = f->act;
    if (f->t == EL_DTYPE_Q_NVFP4) hd.global_scale = 1e-3f;
    memcpy(h, &hd, sizeof hd);
    uint8_t *sc = h + hd.scales_off, *q = h + hd.quants_off;
    if (f->t == EL_DTYPE_Q_W8A8 || f->t == EL_DTYPE_Q_FP8)
        for (int64_t j = 0; j < n; j++)
            ((float *)sc)[j] = 0.01f;
    if (f->t == EL_DTYPE_Q_W4A16)
        for (int64_t j = 0; j < n * ((k + f->group - 1) / f->group); j++)
            ((uint16_t *)sc)[j] = 0x2000;
    if (f->t == EL_DTYPE_Q_NVFP4)
        for (uint8_t *p = sc; p < q; p++)
            *p &= 0x3f; /* e4m3 scales <= 1.875 */
    if (f->t == EL_DTYPE_Q_FP8)
        for (uint8_t *p = q; p < h + *nbytes; p++)
            *p &= 0xbf; /* no NaN codes */
    return h;
}

static double time_qmatmuls(const float *x, int64_t m, int64_t k, void **w, int n_copies, el_dtype t,
                            int64_t n, float *y, int calls, int reps) {
    static int key = 5000;
    key++;
    OK(be->iface.graph_begin(be, key));
    for (int c = 0; c < calls; c++)
        OK(be->iface.matmul(be, x, m, k, w[c % n_copies], t, n, NULL, y, n));
    OK(be->iface.graph_end(be, key));
    OK(be->iface.graph_launch(be, key));
    OK(be->iface.sync(be));
    double tm[16];
    for (int r = 0; r < reps; r++) {
        double t0 = el_time_ms();
        OK(be->iface.graph_launch(be, key));
        OK(be->iface.sync(be));
        tm[r] = (el_time_ms() - t0) / calls;
    }
    return median(tm, reps);
}

static void bench_qgemv(bool quick) {
    const shape shapes[] = {
        {"qwen3-0.6b", "q", 2048, 1024},          {"qwen3-0.6b", "gate/up", 3072, 1024},
        {"qwen3-0.6b", "down", 1024, 3072},       {"qwen3-0.6b", "lm_head", 151936, 1024},
        {"llama3.2-1b", "q/o", 2048, 2048},       {"llama3.2-1b", "k/v", 512, 2048},
        {"llama3.2-1b", "gate/up", 8192, 2048},   {"llama3.2-1b", "down", 2048, 8192},
        {"llama3.1-8b", "q/o", 4096, 4096},       {"llama3.1-8b", "k/v", 1024, 4096},
        {"llama3.1-8b", "gate/up", 14336, 4096},  {"llama3.1-8b", "down", 4096, 14336},
        {"llama3.1-8b", "lm_head", 128256, 4096},
    };
    const qbench fmts[] = {
        {"w4a16 g128", EL_DTYPE_Q_W4A16, 128, 0, 0, true, true},
        {"w4a16 g128 zp", EL_DTYPE_Q_W4A16, 128, EL_QF_ZEROS, 0, false, false},
        {"fp8 static", EL_DTYPE_Q_FP8, 0, EL_QF_PER_CHANNEL, 0.01f, true, true},
        {"fp8 w-only", EL_DTYPE_Q_FP8, 0, EL_QF_PER_CHANNEL, 0, false, false},
        {"w8a8 dyn", EL_DTYPE_Q_W8A8, 0, 0, 0, true, true},
        {"nvfp4", EL_DTYPE_Q_NVFP4, 16, 0, 0, false, false},
        {"q8_0", EL_DTYPE_Q8_0, 0, 0, 0, false, false},
        {"q4_0", EL_DTYPE_Q4_0, 0, 0, 0, false, false},
    };
    const int ns = sizeof shapes / sizeof shapes[0], nf = sizeof fmts / sizeof fmts[0];
    float *x, *y;
    OK(be->iface.alloc(be, 8 * 14336 * 4, (void **)&x));
    OK(be->iface.alloc(be, 8 * 151936 * 4, (void **)&y));
    fill_f32(x, 8 * 14336);
    printf(
        "qgemv quantized weights, f32 x/y; GB/s of quantized weight bytes; %% of the d2d copy bandwidth\n");
    for (int fi = 0; fi < nf; fi++) {
        const qbench *f = &fmts[fi];
        if (getenv("QB_FMT") && strcmp(getenv("QB_FMT"), f->name)) continue; /* QB_FMT="w4a16 g128": one format */
        for (int s = 0; s < ns; s++) {
            const shape *sh = &shapes[s];
            if (!f->all_shapes && strcmp(sh->model, "llama3.1-8b")) continue;
            if (getenv("QB_SHAPE") && !strstr(getenv("QB_SHAPE"), sh->name)) continue; /* QB_SHAPE="down lm_head" */
            size_t bytes = 0;
            void *h = qb_make(f, sh->n, sh->k, &bytes);
            int copies = (int)(((size_t)384 << 20) / bytes) + 1;
            if (copies > 64) copies = 64;
            void *w[64];
            for (int c = 0; c < copies; c++) /* each through weight_map: the backend records w4a16 group sizes */
                OK(be->iface.weight_map(be, h, bytes, &w[c]));
            free(h);
            int calls = copies < 8 ? 8 * copies : copies;
            if (quick && calls > 16) calls = 16;
            /* w4a16 g128: the fp32-FMA ("fma"), the bf16 tensor-core ("mma") and at m = 1 the int8 tensor-core
             * ("imma", qmma.cu) kernel (elk_qgemv_tc_mode 1 / 2 / 0) */
            const int nmodes = f->t == EL_DTYPE_Q_W4A16 && f->group % 128 == 0 ? 3 : 1;
            static const char *const mname[3] = {"fma", "mma", "imma"};
            for (int64_t m = 1; m <= 8; m += 7)
                for (int mode = 0; mode < nmodes; mode++) {
                    if (m == 8 && (!f->m8 || mode == 2)) continue;
                    elk_qgemv_tc_mode = nmodes == 1 ? 0 : mode == 0 ? 1 : mode == 1 ? 2 : 0;
                    double t = time_qmatmuls(x, m, sh->k, w, copies, f->t, sh->n, y, calls, quick ? 3 : 7);
                    double gbs = (double)bytes / (t * 1e-3) / 1e9;
                    printf("qgemv %-13s %-11s %-8s n %6lld k %6lld m %lld %-4s: %8.2f us %7.0f GB/s %5.1f%% of copy\n",
                           f->name, sh->model, sh->name, (long long)sh->n, (long long)sh->k, (long long)m,
                           nmodes == 1 ? "   " : mname[mode], t * 1e3, gbs, 100.0 * gbs / g_copy_gbs);
                }
            elk_qgemv_tc_mode = 0;
            for (int c = 0; c < copies; c++)
                be->iface.dealloc(be, w[c]);
        }
    }
    be->iface.dealloc(be, x);
    be->iface.dealloc(be, y);
}

/* Prefill GEMMs, m = 2048: bf16 weights (the backend's bf16 GEMM), then w8a8 dynamic and static fp8 on the codes
 * (el_cuda_qgemm_mode 1) and on dequantized bf16 weights (mode 0). The path that ran is read from the backend's
 * counters (a shape or device the int8 / fp8 GEMMs do not take shows "bf16" for both). */
static void bench_qgemm(bool quick) {
    const shape shapes[] = {
        {"llama3.1-8b", "q/o", 4096, 4096},
        {"llama3.1-8b", "k/v", 1024, 4096},
        {"llama3.1-8b", "gate/up", 14336, 4096},
        {"llama3.1-8b", "down", 4096, 14336},
    };
    const qbench fmts[] = {
        {"w8a8 dyn", EL_DTYPE_Q_W8A8, 0, 0, 0, true, true},
        {"fp8 static", EL_DTYPE_Q_FP8, 0, EL_QF_PER_CHANNEL, 0.01f, true, true},
    };
    const int64_t m = 2048;
    const int calls = quick ? 2 : 4, reps = quick ? 3 : 5;
    float *x, *y;
    OK(be->iface.alloc(be, (size_t)(m * 14336 * 4), (void **)&x));
    OK(be->iface.alloc(be, (size_t)(m * 14336 * 4), (void **)&y));
    fill_f32(x, (size_t)(m * 14336));
    static const char *const pname[3] = {"int8", "fp8", "bf16"};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        const double flop = 2.0 * (double)m * (double)sh->n * (double)sh->k;
        void *wb;
        OK(be->iface.alloc(be, (size_t)(sh->n * sh->k * 2), &wb));
        fill_bf16(wb, (size_t)(sh->n * sh->k));
        double t = time_qmatmuls(x, m, sh->k, &wb, 1, EL_DTYPE_BF16, sh->n, y, calls, reps);
        printf("qgemm %-11s %-8s m %lld n %6lld k %6lld bf16 weights     : %8.3f ms %6.0f TFLOP/s\n", sh->model,
               sh->name, (long long)m, (long long)sh->n, (long long)sh->k, t, flop / (t * 1e-3) / 1e12);
        be->iface.dealloc(be, wb);
        for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
            size_t bytes = 0;
            void *h = qb_make(&fmts[fi], sh->n, sh->k, &bytes), *w;
            OK(be->iface.weight_map(be, h, bytes, &w));
            free(h);
            for (int mode = 1; mode >= 0; mode--) {
                el_cuda_qgemm_mode = mode;
                unsigned long long c0[3];
                memcpy(c0, el_cuda_qgemm_count, sizeof c0);
                t = time_qmatmuls(x, m, sh->k, &w, 1, fmts[fi].t, sh->n, y, calls, reps);
                int path = 2;
                for (int i = 0; i < 3; i++)
                    if (el_cuda_qgemm_count[i] != c0[i]) path = i;
                printf("qgemm %-11s %-8s m %lld n %6lld k %6lld %-10s %-5s: %8.3f ms %6.0f TFLOP/s (ran: %s)\n",
                       sh->model, sh->name, (long long)m, (long long)sh->n, (long long)sh->k, fmts[fi].name,
                       mode ? "codes" : "bf16", t, flop / (t * 1e-3) / 1e12, pname[path]);
            }
            el_cuda_qgemm_mode = 1;
            be->iface.dealloc(be, w);
        }
    }
    be->iface.dealloc(be, x);
    be->iface.dealloc(be, y);
}

static void bench_gemm(void) {
    const int64_t N = 8192;
    float *x, *y;
    void *w, *xb;
    OK(be->iface.alloc(be, (size_t)(N * N * 4), (void **)&x));
    OK(be->iface.alloc(be, (size_t)(N * N * 4), (void **)&y));
    OK(be->iface.alloc(be, (size_t)(N * N * 2), &w));
    OK(be->iface.alloc(be, (size_t)(N * N * 2), &xb));
    fill_bf16(w, (size_t)(N * N));
    fill_bf16(xb, (size_t)(N * N));
    for (int64_t r = 0; r < N; r += 1024) fill_f32(x + r * N, (size_t)(1024 * N));
    double flops = 2.0 * N * N * N;
    /* ours */
    OK(be->iface.matmul(be, x, N, N, w, EL_DTYPE_BF16, N, NULL, y, N));
    OK(be->iface.sync(be));
    double t[8];
    for (int r = 0; r < 5; r++) {
        double t0 = el_time_ms();
        OK(be->iface.matmul(be, x, N, N, w, EL_DTYPE_BF16, N, NULL, y, N));
        OK(be->iface.sync(be));
        t[r] = el_time_ms() - t0;
    }
    double ours = median(t, 5);
    /* cuBLASLt alone, bf16 x bf16 -> f32, same layout */
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, N, N, N);
    cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, N, N, N);
    cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, N, N, N);
    size_t wss = (size_t)32 << 20;
    void *ws;
    CK(cudaMalloc(&ws, wss));
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wss, sizeof wss);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, c, c, pref, 1, &res, &nres);
    float al = 1, be0 = 0;
    double base = 0;
    if (nres > 0) {
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        cublasLtMatmul(lt, op, &al, w, a, xb, b, &be0, y, c, y, c, &res.algo, ws, wss, 0);
        CK(cudaDeviceSynchronize());
        for (int r = 0; r < 5; r++) {
            cudaEventRecord(e0, 0);
            cublasLtMatmul(lt, op, &al, w, a, xb, b, &be0, y, c, y, c, &res.algo, ws, wss, 0);
            cudaEventRecord(e1, 0);
            cudaEventSynchronize(e1);
            float msf;
            cudaEventElapsedTime(&msf, e0, e1);
            t[r] = msf;
        }
        base = median(t, 5);
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }
    printf("gemm  8192^3 bf16 backend matmul (f32 x -> bf16 + cuBLASLt, f32 out): %.3f ms, %.0f TFLOP/s\n", ours,
           flops / (ours * 1e-3) / 1e12);
    if (base > 0)
        printf("gemm  8192^3 bf16 cuBLASLt alone (bf16 in, f32 out):               %.3f ms, %.0f TFLOP/s\n", base,
               flops / (base * 1e-3) / 1e12);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    cublasLtMatmulDescDestroy(op);
    cublasLtDestroy(lt);
    cudaFree(ws);
    be->iface.dealloc(be, x);
    be->iface.dealloc(be, y);
    be->iface.dealloc(be, w);
    be->iface.dealloc(be, xb);
}

static void bench_attention(void) {
    const int64_t nh = 32, nkv = 8, hd = 128, cap = 8192;
    for (int it = 0; it < 6; it++) {
        const int64_t batch = it & 1 ? 8 : 1;
        const int mode = (it >> 1) == 1; /* 0: cp.async-staged kernel, 1: direct loads */
        const bool fp8 = it >= 4;        /* fp8 (e4m3) cache, staged: half the bytes of bf16 */
        elk_attn_stage_mode = mode;
        size_t cbytes = (size_t)(batch * nkv * cap * hd * (fp8 ? 1 : 2));
        void *kc, *vc;
        float *q, *out;
        int32_t *slot, *pos;
        OK(be->iface.alloc(be, cbytes, &kc));
        OK(be->iface.alloc(be, cbytes, &vc));
        fill_bf16(kc, cbytes / 2);
        fill_bf16(vc, cbytes / 2);
        OK(be->iface.alloc(be, (size_t)(batch * nh * hd * 4), (void **)&q));
        OK(be->iface.alloc(be, (size_t)(batch * nh * hd * 4), (void **)&out));
        fill_f32(q, (size_t)(batch * nh * hd));
        int32_t hs[8], hp[8];
        for (int i = 0; i < 8; i++) hs[i] = i, hp[i] = (int32_t)cap - 1;
        OK(be->iface.alloc(be, 32, (void **)&slot));
        OK(be->iface.alloc(be, 32, (void **)&pos));
        OK(be->iface.upload(be, slot, hs, 32));
        OK(be->iface.upload(be, pos, hp, 32));
        int key = 5000 + (int)batch + 100 * mode + (fp8 ? 200 : 0);
        OK(be->iface.graph_begin(be, key));
        for (int c = 0; c < 20; c++)
            OK(be->iface.attention(be, q, batch, nh, nkv, hd, slot, pos, (int32_t)cap - 1, kc, vc,
                                   fp8 ? EL_DTYPE_F8_E4M3 : EL_DTYPE_BF16, 0.01f, 0.01f, cap, 0.088f, out));
        OK(be->iface.graph_end(be, key));
        OK(be->iface.graph_launch(be, key));
        OK(be->iface.sync(be));
        double t[7];
        for (int r = 0; r < 7; r++) {
            double t0 = el_time_ms();
            OK(be->iface.graph_launch(be, key));
            OK(be->iface.sync(be));
            t[r] = (el_time_ms() - t0) / 20;
        }
        double ms = median(t, 7);
        double gbs = 2.0 * (double)cbytes / (ms * 1e-3) / 1e9;
        printf("attn  decode batch %lld, 32/8 heads, hd 128, %s cache, %lld positions, %s: %.2f us, %.0f GB/s of K+V "
               "(%.1f%% of copy)\n",
               (long long)batch, fp8 ? "fp8" : "bf16", (long long)cap, mode ? "direct" : "staged", ms * 1e3, gbs,
               100.0 * gbs / g_copy_gbs);
        be->iface.dealloc(be, kc), be->iface.dealloc(be, vc), be->iface.dealloc(be, q), be->iface.dealloc(be, out);
        be->iface.dealloc(be, slot), be->iface.dealloc(be, pos);
    }
    elk_attn_stage_mode = 0;
}

/* Prefill attention: one sequence of n tokens at positions 0..n-1 over a bf16 cache of n positions,
 * 32/8 heads, hd 128; TFLOP/s counting the causal work 4 * hd * heads * n (n + 1) / 2. "tc" is the
 * tensor-core prefill kernel (attention_prefill.cu), "split-KV" the CUDA-core kernel it replaces. */
static void bench_attention_prefill(void) {
    const int64_t nh = 32, nkv = 8, hd = 128;
    const int64_t ns[3] = {512, 2048, 8192};
    for (int ni = 0; ni < 3; ni++) {
        const int64_t n = ns[ni], cap = n;
        size_t cbytes = (size_t)(nkv * cap * hd * 2);
        void *kc, *vc;
        float *q, *out;
        int32_t *slot, *pos;
        OK(be->iface.alloc(be, cbytes, &kc));
        OK(be->iface.alloc(be, cbytes, &vc));
        fill_bf16(kc, cbytes / 2);
        fill_bf16(vc, cbytes / 2);
        OK(be->iface.alloc(be, (size_t)(n * nh * hd * 4), (void **)&q));
        OK(be->iface.alloc(be, (size_t)(n * nh * hd * 4), (void **)&out));
        fill_f32(q, (size_t)(n * nh * hd));
        int32_t *hs = malloc((size_t)n * 4), *hp = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++)
            hs[i] = 0, hp[i] = (int32_t)i;
        OK(be->iface.alloc(be, (size_t)n * 4, (void **)&slot));
        OK(be->iface.alloc(be, (size_t)n * 4, (void **)&pos));
        OK(be->iface.upload(be, slot, hs, (size_t)n * 4));
        OK(be->iface.upload(be, pos, hp, (size_t)n * 4));
        const double flop = 4.0 * (double)hd * (double)nh * (double)n * (double)(n + 1) / 2.0;
        double best_tc = 0;
        /* v 0: tensor-core kernel, backend's tile choice; 1, 2: 64 / 128 query rows per CTA; 3: split-KV */
        for (int v = 0; v < 4; v++) {
            static const char *names[4] = {"tc auto", "tc 64", "tc 128", "split-KV"};
            elk_attn_prefill_mode = v < 3 ? 2 : 1;
            elk_attn_prefill_rows = v == 1 ? 64 : v == 2 ? 128 : 0;
            int calls = v < 3 ? 20 : (int)(20 * 512 * 512 / (n * n)) + 1;
            OK(be->iface.attention(be, q, n, nh, nkv, hd, slot, pos, (int32_t)n - 1, kc, vc, EL_DTYPE_BF16,
                                   1.f, 1.f, cap, 0.088f, out)); /* warm-up */
            OK(be->iface.sync(be));
            double t[5];
            for (int r = 0; r < 5; r++) {
                double t0 = el_time_ms();
                for (int c = 0; c < calls; c++)
                    OK(be->iface.attention(be, q, n, nh, nkv, hd, slot, pos, (int32_t)n - 1, kc, vc,
                                           EL_DTYPE_BF16, 1.f, 1.f, cap, 0.088f, out));
                OK(be->iface.sync(be));
                t[r] = (el_time_ms() - t0) / calls;
            }
            double ms = median(t, 5);
            if (v < 3 && (best_tc == 0 || ms < best_tc)) best_tc = ms;
            printf("attn  prefill %lld tok, 32/8 heads, hd 128, bf16 cache, %-8s: %9.3f ms, %6.1f TFLOP/s\n",
                   (long long)n, names[v], ms, flop / (ms * 1e-3) / 1e12);
            if (v == 3)
                printf("attn  prefill %lld tok: best tc %.1fx faster than split-KV\n", (long long)n,
                       ms / best_tc);
        }
        elk_attn_prefill_rows = 0;
        elk_attn_prefill_mode = 0;
        free(hs), free(hp);
        be->iface.dealloc(be, kc), be->iface.dealloc(be, vc), be->iface.dealloc(be, q),
            be->iface.dealloc(be, out);
        be->iface.dealloc(be, slot), be->iface.dealloc(be, pos);
    }
}

int main(int argc, char **argv) {
    bool quick = false, qonly = false, qgemm_only = false, copy_only = false, gemm_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--copy")) copy_only = true;
        if (!strcmp(argv[i], "--gemm")) gemm_only = true;
        if (!strcmp(argv[i], "--quick")) quick = true;
        if (!strcmp(argv[i], "--qgemv")) qonly = true;
        if (!strcmp(argv[i], "--qgemm")) qgemm_only = true;
    }
    el_backend_params p = {0};
    if (el_backend_cuda_create(&p, &be) != EDGELLM_STATUS_OK) {
        printf("bench_cuda: no CUDA device (%s)\n", edgellm_last_error());
        return 0;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, %.0f MiB L2\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1048576.0);
    bench_copy();
    if (copy_only || gemm_only) { /* the ceilings only (benchmark scripts print them beside their figures) */
        if (gemm_only) bench_gemm(); /* --gemm: copy + the bf16 8192^3 GEMM */
        be->iface.free(be);
        return 0;
    }
    if (qonly) { /* --qgemv: the quantized GEMVs only */
        bench_qgemv(quick);
        be->iface.free(be);
        return 0;
    }
    if (qgemm_only) {
        bench_qgemm(quick);
        be->iface.free(be);
        return 0;
    }
    bench_gemv(quick);
    bench_attention();
    bench_attention_prefill();
    bench_gemm();
    bench_qgemm(quick);
    be->iface.free(be);
    return 0;
}
#endif
