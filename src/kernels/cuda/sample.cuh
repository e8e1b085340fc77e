/*
 * sample.cuh - token sampling on the device (sample.cu): greedy / temperature / top-k / top-p, one id per
 * row of logits, with the semantics of el_sample_exact (src/runtime/sampler.h): the CPU sampler's
 * candidate set and order, softmax mass as exact integer fixed-point weights, the uniform drawn on the
 * host from the request's RNG. Enqueues one or two kernels (below); no allocation, no host sync, so it
 * can be captured in a graph when the parameters live in device memory.
 */
#ifndef EL_CUDA_SAMPLE_CUH
#define EL_CUDA_SAMPLE_CUH

#include <cuda_runtime.h>
#include <stdint.h>

/* Per-row parameters (device memory). Same layout as el_sample_row of backend/backend.h. */
typedef struct elk_sample_row {
    float temperature; /* < 1e-3 (or NaN): greedy */
    int32_t top_k;     /* <= 0 or >= n: off; 1: greedy */
    float top_p;       /* in (0, 1): on */
    int32_t reserved;
    double u; /* the uniform in [0, 1) el_sample would draw (unused when greedy) */
} elk_sample_row;

/* ids[r] = sampled id of logits row r (row stride ld floats), r < rows; 1 <= n <= INT32_MAX.
 * scratch (device, elk_sample_scratch_bytes(scratch_rows) bytes, or NULL): rows r < scratch_rows that are
 * greedy, have 2 <= top_k <= 512, top-p without top-k, or temperature alone are split over up to 32 CTAs
 * (chunk argmax / sorted chunk lists / exact chunk weight sums, then one CTA merges them; n >= 4096), the
 * other rows take one CTA each; the ids are the same either way. Two kernels then. */
cudaError_t elk_sample(cudaStream_t st, const float *logits, int64_t rows, int64_t n, int64_t ld,
                       const elk_sample_row *par, int32_t *ids, void *scratch, int64_t scratch_rows);
size_t elk_sample_scratch_bytes(int64_t rows);
/* Tests: 1 = never use the shared-memory candidate path (every sampled row takes the radix-select path
 * over the whole row; both paths give identical ids). Default 0. */
extern "C" int elk_sample_global_only;

#endif
