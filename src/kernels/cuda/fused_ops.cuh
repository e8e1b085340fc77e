/*
 * fused_ops.cuh - what the kernels of elk_fused_gemv share (fused.cu for float weights, qmma.cu for w4a16):
 * the argument block, its filling and tile ranges on the host, and on the device the tile -> matrix map and
 * the output epilogue (bias, then store / residual add / SwiGLU). Internal to src/kernels/cuda.
 */
#ifndef EL_CUDA_FUSED_OPS_CUH
#define EL_CUDA_FUSED_OPS_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/cuda_kernels.cuh" /* elk_pdl_late */
#include "kernels/cuda/fused.cuh"

struct elk_fg_ops {
    const float *x, *g; /* g: norm weight or NULL */
    float eps;
    int64_t k;
    const void *w[3];
    const float *b[3];
    float *y[3];
    int64_t n[3];         /* SWIGLU: n[0] only */
    unsigned tile_end[3]; /* tiles [tile_end[i-1], tile_end[i]) belong to matrix i (STORE/ACCUM) */
    int late_trig;        /* 1: the next kernel is launched after this one's PDL wait, not at its start */
};

/* a from elk_fused_gemv's arguments; false for bad ones (k, n_w, mode, an n outside [0, 2^31)). */
static inline bool elk_fg_fill(elk_fg_ops &a, const float *x, int64_t k, const float *norm_w, float eps, int n_w,
                               const void *const *w, const int64_t *n, const float *const *bias, float *const *y,
                               int mode) {
    if (k <= 0 || n_w < 1 || n_w > 3 || (mode == ELK_FG_SWIGLU && n_w != 2)) return false;
    memset(&a, 0, sizeof a);
    a.x = x;
    a.g = norm_w;
    a.eps = eps;
    a.k = k;
    a.late_trig = (elk_pdl_late & 2) != 0; /* elk_fused_w4a16 sets its own bit */
    for (int i = 0; i < n_w; i++) {
        if (n[i] < 0 || n[i] > 0x7fffffff) return false;
        a.w[i] = w[i];
        a.b[i] = bias ? bias[i] : NULL;
        if (mode != ELK_FG_SWIGLU || i == 0) {
            a.y[i] = y[i];
            a.n[i] = n[i];
        }
    }
    return true;
}

/* a.tile_end for tiles of `rows` rows; the number of tiles, or -1 when it does not fit a grid. */
static inline int64_t elk_fg_tiles(elk_fg_ops &a, int64_t rows, int mode) {
    const int nm = mode == ELK_FG_SWIGLU ? 1 : 3;
    int64_t tiles = 0;
    for (int i = 0; i < 3; i++) {
        if (i < nm) tiles += (a.n[i] + rows - 1) / rows;
        if (tiles > 0x7fffffff) return -1;
        a.tile_end[i] = (unsigned)tiles;
    }
    return tiles;
}

/* Tile `tile` of the launch -> its matrix mi and the tile index within that matrix. */
template <int MODE>
static __device__ __forceinline__ unsigned elk_fg_tile(const elk_fg_ops &a, unsigned tile, int &mi) {
    mi = 0;
    if (MODE != ELK_FG_SWIGLU && tile >= a.tile_end[0]) {
        mi = tile >= a.tile_end[1] ? 2 : 1;
        tile -= mi == 1 ? a.tile_end[0] : a.tile_end[1];
    }
    return tile;
}

/* What the epilogue of row `row` of matrix mi reads besides the dot products: (bias or 0, the residual y[row]
 * for ACCUM or 0); a kernel may load it early (after the programmatic dependent launch wait) to take the
 * load latency off its tail. */
template <int MODE> static __device__ __forceinline__ float2 elk_fg_pre(const elk_fg_ops &a, int mi, int64_t row) {
    const float *b0 = mi == 0 ? a.b[0] : mi == 1 ? a.b[1] : a.b[2];
    const float *y = mi == 0 ? a.y[0] : mi == 1 ? a.y[1] : a.y[2];
    return make_float2(b0 ? b0[row] : 0.f, MODE == ELK_FG_ACCUM ? y[row] : 0.f);
}

/* Row `row` of matrix mi from its finished (norm-scaled) dot product s, and up's for SWIGLU; pre from
 * elk_fg_pre for the same row. */
template <int MODE>
static __device__ __forceinline__ void elk_fg_store(const elk_fg_ops &a, int mi, int64_t row, float s, float up,
                                                    float2 pre) {
    float *y = mi == 0 ? a.y[0] : mi == 1 ? a.y[1] : a.y[2];
    s += pre.x;
    if (MODE == ELK_FG_SWIGLU) {
        if (a.b[1]) up += a.b[1][row];
        y[row] = s / (1.f + expf(-s)) * up;
    } else if (MODE == ELK_FG_ACCUM) {
        y[row] = pre.y + s;
    } else {
        y[row] = s;
    }
}
template <int MODE>
static __device__ __forceinline__ void elk_fg_store(const elk_fg_ops &a, int mi, int64_t row, float s, float up) {
    elk_fg_store<MODE>(a, mi, row, s, up, elk_fg_pre<MODE>(a, mi, row));
}

#endif
