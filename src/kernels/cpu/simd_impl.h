/* simd_impl.h - ISA-generic kernel bodies, included once per ISA by kernels_{scalar,avx2,avx512}.c.
 *
 * The includer defines the vector type V with VW float lanes and these helpers:
 *   vzero vld vst vset1 vfma(a,b,c)=a*b+c vadd vsub vmul vdiv vhsum vexp vld_f16 vld_bf16 vld_e4m3
 * plus MR_MAX / NR_MAX (matmul register tile: rows of x x rows of W) and FN(name) (name suffix).
 *
 * Matmul is the dot-product form y[i,j] = <x[i,:], W[j,:]>: a tile of MR rows of x and NR rows of W
 * keeps MR*NR vector accumulators along k, so each W vector is converted to f32 once per MR rows and
 * each x vector is loaded once per NR rows of W. Loops are blocked so that a block of W (~128 KiB)
 * stays in L2 while all rows of a block of x pass over it: for m <= MR_MAX (decode, small batches)
 * the weights are streamed from memory exactly once. */
#ifndef FN
#error "define FN and the vector helpers before including simd_impl.h"
#endif

#include "kernels/e4m3.h"

#include <math.h>

#define EL_AI static inline __attribute__((always_inline))

EL_AI V FN(ldw)(const void *w, el_dtype wt, int64_t i) {
    if (wt == EL_DTYPE_F32) return vld((const float *)w + i);
    if (wt == EL_DTYPE_F16) return vld_f16((const uint16_t *)w + i);
    if (wt == EL_DTYPE_F8_E4M3) return vld_e4m3((const uint8_t *)w + i); /* fp8 KV cache: value / 256 */
    return vld_bf16((const uint16_t *)w + i);
}
EL_AI float FN(lds)(const void *w, el_dtype wt, int64_t i) {
    if (wt == EL_DTYPE_F32) return ((const float *)w)[i];
    if (wt == EL_DTYPE_F16) return el_f16_to_f32(((const uint16_t *)w)[i]);
    if (wt == EL_DTYPE_F8_E4M3) return el_e4m3_to_f32_fast(((const uint8_t *)w)[i]) * 0.00390625f;
    return el_bf16_to_f32(((const uint16_t *)w)[i]);
}

/* ---- matmul ---------------------------------------------------------------------------------- */

#ifndef EL_MM_PREFETCH
#define EL_MM_PREFETCH 1
#endif

/* PF: the weights stream from memory (few rows of x): prefetch each W row of the next tile (NR rows
 * further on, i.e. the next stretch of the contiguous W block) while this tile runs, so that short rows
 * (k * 2 bytes) do not leave the hardware prefetcher starting over on every row. */
EL_AI void FN(tile)(const float *x, int64_t ldx, const void *w, const el_dtype wt, int64_t ldw, int64_t kl,
                    int64_t j, const int MR, const int NR, const float *bias, float *y, int64_t ldy, const int PF,
                    int accum) {
    /* x: MR rows of stride ldx; W rows j.. of stride ldw (elements); kl: the stretch of k to sum over.
     * accum: add to y (a later k block) instead of storing sum + bias. */
    V acc[MR_MAX][NR_MAX];
    const int64_t wsz = wt == EL_DTYPE_F32 ? 4 : 2;
    const char *pf = (const char *)w + (j + NR) * ldw * wsz;
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++) acc[r][c] = vzero();
    const int64_t kv = kl - kl % VW, wo = j * ldw;
    for (int64_t kk = 0; kk < kv; kk += VW) {
        V xv[MR_MAX];
        for (int r = 0; r < MR; r++) xv[r] = vld(x + r * ldx + kk);
        if (EL_MM_PREFETCH && PF && VW > 1)
            for (int c = 0; c < NR; c++) __builtin_prefetch(pf + (c * ldw + kk) * wsz, 0, 0);
        for (int c = 0; c < NR; c++) {
            V wv = FN(ldw)(w, wt, wo + c * ldw + kk);
            for (int r = 0; r < MR; r++) acc[r][c] = vfma(xv[r], wv, acc[r][c]);
        }
    }
    for (int r = 0; r < MR; r++) {
        for (int c = 0; c < NR; c++) {
            float s = vhsum(acc[r][c]);
            for (int64_t kt = kv; kt < kl; kt++) s += x[r * ldx + kt] * FN(lds)(w, wt, wo + c * ldw + kt);
            if (accum)
                y[r * ldy + j + c] += s;
            else
                y[r * ldy + j + c] = bias ? s + bias[j + c] : s;
        }
    }
}

EL_AI void FN(tile_rows)(const float *x, int64_t ldx, const void *w, const el_dtype wt, int64_t ldw, int64_t kl,
                         int64_t j, int mr, const int NR, const float *bias, float *y, int64_t ldy, const int PF,
                         int accum) {
    switch (mr) {
#if MR_MAX >= 4
    case 4: FN(tile)(x, ldx, w, wt, ldw, kl, j, 4, NR, bias, y, ldy, PF, accum); break;
#endif
#if MR_MAX >= 3
    case 3: FN(tile)(x, ldx, w, wt, ldw, kl, j, 3, NR, bias, y, ldy, PF, accum); break;
#endif
#if MR_MAX >= 2
    case 2: FN(tile)(x, ldx, w, wt, ldw, kl, j, 2, NR, bias, y, ldy, PF, accum); break;
#endif
    default: FN(tile)(x, ldx, w, wt, ldw, kl, j, 1, NR, bias, y, ldy, PF, accum); break;
    }
}

#ifndef EL_MM_KC_BYTES
#define EL_MM_KC_BYTES 4096 /* longest stretch of a W row a register tile sums over (longer k: blocks) */
#endif
#ifndef EL_MM_ROWSTREAM
#define EL_MM_ROWSTREAM 1
#endif
#ifndef EL_MM_PF_BYTES
#define EL_MM_PF_BYTES 4096 /* decode GEMV: software prefetch distance in the W stream */
#endif
/* m = 1, 2 (decode): W rows one after the other, i.e. the matrix read once as a single
 * sequential stream (what hardware prefetchers handle best, plus a software prefetch EL_MM_PF_BYTES
 * ahead, which starts each next 4 KiB page before the loads reach it; a fixed distance, not a number of
 * rows: 4 rows ahead, as before, was 16-64 KiB at k = 2048..8192 and read a bf16 matrix from DRAM
 * 5% (k = 2048) to 25% (k = 8192) slower, 1 thread), each W vector used for all MR rows of x; U
 * independent accumulators per row along k. */
EL_AI void FN(gemv_t)(const float *x, int64_t k, const void *w, const el_dtype wt, int64_t n0, int64_t n1,
                      const float *bias, float *y, int64_t ldy, const int MR, const int U) {
    const int64_t wsz = wt == EL_DTYPE_F32 ? 4 : 2;
    const int64_t ku = k - k % (U * VW), kv = k - k % VW;
    for (int64_t j = n0; j < n1; j++) {
        const int64_t wo = j * k;
        const char *pf = (const char *)w + wo * wsz + EL_MM_PF_BYTES;
        V a[4][4];
        for (int r = 0; r < MR; r++)
            for (int u = 0; u < U; u++) a[r][u] = vzero();
        int64_t kk = 0;
        for (; kk < ku; kk += U * VW) {
            if (VW > 1)
                for (int64_t o = 0; o < U * VW * wsz; o += 64) __builtin_prefetch(pf + kk * wsz + o, 0, 0);
            for (int u = 0; u < U; u++) {
                const V wv = FN(ldw)(w, wt, wo + kk + u * VW);
                for (int r = 0; r < MR; r++) a[r][u] = vfma(vld(x + r * k + kk + u * VW), wv, a[r][u]);
            }
        }
        for (; kk < kv; kk += VW) {
            const V wv = FN(ldw)(w, wt, wo + kk);
            for (int r = 0; r < MR; r++) a[r][0] = vfma(vld(x + r * k + kk), wv, a[r][0]);
        }
        for (int r = 0; r < MR; r++) {
            V t = a[r][0];
            for (int u = 1; u < U; u++) t = vadd(t, a[r][u]);
            float s = vhsum(t);
            for (int64_t kt = kv; kt < k; kt++) s += x[r * k + kt] * FN(lds)(w, wt, wo + kt);
            y[r * ldy + j] = bias ? s + bias[j] : s;
        }
    }
}

EL_AI void FN(matmul_t)(const float *x, int64_t m, int64_t k, const void *w, const el_dtype wt, int64_t n0,
                        int64_t n1, const float *bias, float *y, int64_t ldy) {
    /* m = 1, 2: one sequential stream; m = 3..4 and more: register tiles (x reuse matters more) */
    if (EL_MM_ROWSTREAM && m == 1) {
        FN(gemv_t)(x, k, w, wt, n0, n1, bias, y, ldy, 1, 4);
        return;
    }
    if (EL_MM_ROWSTREAM && m == 2) {
        FN(gemv_t)(x, k, w, wt, n0, n1, bias, y, ldy, 2, 2);
        return;
    }
    const int64_t wsz = wt == EL_DTYPE_F32 ? 4 : 2;
    /* k in blocks of <= EL_MM_KC_BYTES of W row so that a group of x rows and a tile of W stay in L1 */
    /* (small m: x is tiny, and whole W rows keep the weight stream sequential) */
    const int64_t kcmax = m <= 8 ? k : EL_MM_KC_BYTES / wsz, nkb = (k + kcmax - 1) / kcmax,
                  kc = (k + nkb - 1) / nkb;
    int64_t nb = (int64_t)(128 * 1024) / (kc * wsz);
    nb = nb / NR_MAX * NR_MAX;
    if (nb < NR_MAX) nb = NR_MAX;
    int64_t mb = (int64_t)(256 * 1024) / (kc * 4);
    mb = mb / MR_MAX * MR_MAX;
    if (mb < MR_MAX) mb = MR_MAX;
    for (int64_t i0 = 0; i0 < m; i0 += mb) {
        const int64_t i1 = i0 + mb < m ? i0 + mb : m;
        for (int64_t kb = 0; kb < k; kb += kc) {
            const int64_t kl = kb + kc < k ? kc : k - kb;
            const void *wk = (const char *)w + kb * wsz;
            const int accum = kb > 0;
            for (int64_t jb = n0; jb < n1; jb += nb) {
                const int64_t je = jb + nb < n1 ? jb + nb : n1;
                for (int64_t i = i0; i < i1; i += MR_MAX) {
                    const int mr = (int)(i1 - i < MR_MAX ? i1 - i : MR_MAX);
                    const float *xi = x + i * k + kb;
                    float *yi = y + i * ldy;
                    int64_t j = jb;
                    if (i == i0) /* first pass over this W block: it streams from memory, prefetch it */
                        for (; j + NR_MAX <= je; j += NR_MAX)
                            FN(tile_rows)(xi, k, wk, wt, k, kl, j, mr, NR_MAX, bias, yi, ldy, 1, accum);
                    else
                        for (; j + NR_MAX <= je; j += NR_MAX)
                            FN(tile_rows)(xi, k, wk, wt, k, kl, j, mr, NR_MAX, bias, yi, ldy, 0, accum);
                    for (; j < je; j++) FN(tile_rows)(xi, k, wk, wt, k, kl, j, mr, 1, bias, yi, ldy, 0, accum);
                }
            }
        }
    }
}

static void FN(matmul)(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n0, int64_t n1,
                       const float *bias, float *y, int64_t ldy) {
    switch (wt) {
    case EL_DTYPE_F32: FN(matmul_t)(x, m, k, w, EL_DTYPE_F32, n0, n1, bias, y, ldy); break;
    case EL_DTYPE_F16: FN(matmul_t)(x, m, k, w, EL_DTYPE_F16, n0, n1, bias, y, ldy); break;
    case EL_DTYPE_BF16: FN(matmul_t)(x, m, k, w, EL_DTYPE_BF16, n0, n1, bias, y, ldy); break;
    default: break;
    }
}

/* ---- rmsnorm, swiglu, add ---------------------------------------------------------------------- */

EL_AI void FN(rmsnorm_t)(const float *x, const void *w, const el_dtype wt, int64_t r0, int64_t r1, int64_t dim,
                         float eps, float *y) {
    const int64_t dv = dim - dim % VW;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        V s0 = vzero(), s1 = vzero();
        int64_t i = 0;
        for (; i + 2 * VW <= dv; i += 2 * VW) {
            V a = vld(xr + i), b = vld(xr + i + VW);
            s0 = vfma(a, a, s0);
            s1 = vfma(b, b, s1);
        }
        for (; i < dv; i += VW) {
            V a = vld(xr + i);
            s0 = vfma(a, a, s0);
        }
        float ss = vhsum(vadd(s0, s1));
        for (i = dv; i < dim; i++) ss += xr[i] * xr[i];
        const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
        const V vi = vset1(inv);
        for (i = 0; i < dv; i += VW) vst(yr + i, vmul(vmul(vld(xr + i), vi), FN(ldw)(w, wt, i)));
        for (i = dv; i < dim; i++) yr[i] = xr[i] * inv * FN(lds)(w, wt, i);
    }
}

static void FN(rmsnorm)(const float *x, const void *w, el_dtype wt, int64_t r0, int64_t r1, int64_t dim, float eps,
                        float *y) {
    switch (wt) {
    case EL_DTYPE_F32: FN(rmsnorm_t)(x, w, EL_DTYPE_F32, r0, r1, dim, eps, y); break;
    case EL_DTYPE_F16: FN(rmsnorm_t)(x, w, EL_DTYPE_F16, r0, r1, dim, eps, y); break;
    case EL_DTYPE_BF16: FN(rmsnorm_t)(x, w, EL_DTYPE_BF16, r0, r1, dim, eps, y); break;
    default: break;
    }
}

static void FN(swiglu)(const float *gate, const float *up, float *out, int64_t i0, int64_t i1) {
    int64_t i = i0;
    const V one = vset1(1.0f), zero = vzero();
    for (; i + VW <= i1; i += VW) {
        V g = vld(gate + i);
        V e = vexp(vsub(zero, g));
        vst(out + i, vmul(vdiv(g, vadd(one, e)), vld(up + i)));
    }
    for (; i < i1; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void FN(add)(float *y, const float *x, int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + VW <= i1; i += VW) vst(y + i, vadd(vld(y + i), vld(x + i)));
    for (; i < i1; i++) y[i] += x[i];
}

/* ---- attention --------------------------------------------------------------------------------- */

#ifndef EL_ATT_PAIRS
#define EL_ATT_PAIRS 1
#endif
#define ATT_BLOCK 64 /* positions per online-softmax block */
#define ATT_GMAX 8   /* q heads of one kv head processed together (K/V rows read once for all) */

EL_AI float FN(dot)(const float *q, const void *kc, const el_dtype kt, int64_t off, int64_t hd) {
    V a0 = vzero(), a1 = vzero();
    int64_t i = 0;
    for (; i + 2 * VW <= hd; i += 2 * VW) {
        a0 = vfma(vld(q + i), FN(ldw)(kc, kt, off + i), a0);
        a1 = vfma(vld(q + i + VW), FN(ldw)(kc, kt, off + i + VW), a1);
    }
    for (; i + VW <= hd; i += VW) a0 = vfma(vld(q + i), FN(ldw)(kc, kt, off + i), a0);
    float s = vhsum(vadd(a0, a1));
    for (; i < hd; i++) s += q[i] * FN(lds)(kc, kt, off + i);
    return s;
}

EL_AI void FN(axpy)(float *acc, float p, const void *vc, const el_dtype kt, int64_t off, int64_t hd) {
    const V pv = vset1(p);
    int64_t i = 0;
    for (; i + VW <= hd; i += VW) vst(acc + i, vfma(pv, FN(ldw)(vc, kt, off + i), vld(acc + i)));
    for (; i < hd; i++) acc[i] += p * FN(lds)(vc, kt, off + i);
}

EL_AI void FN(scale_vec)(float *a, float s, int64_t n) {
    const V sv = vset1(s);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) vst(a + i, vmul(vld(a + i), sv));
    for (; i < n; i++) a[i] *= s;
}

/* HDC: head_dim known at compile time (a multiple of VW, at most 16 vectors), so one q head or one
 * output accumulator lives in registers across a block of positions; 0: any head_dim. */
#define ATT_HDC_OK(h) ((h) % VW == 0 && (h) / VW <= 16)
#define ATT_NV(HDC) ((HDC) > 0 && ATT_HDC_OK(HDC) ? (HDC) / VW : 1)

/* sc[b] = scale * <q, K[p0 + b]> for b < nb */
EL_AI void FN(scores)(const float *q, const void *kc, const el_dtype kt, int64_t off0, int64_t hd, const int HDC,
                      int64_t nb, float scale, float *sc) {
    if (HDC > 0 && ATT_HDC_OK(HDC)) {
        V qv[ATT_NV(HDC)];
        for (int c = 0; c < HDC / VW; c++) qv[c] = vld(q + c * VW);
        int64_t b = 0;
#ifdef HAVE_VHSUM_N
        /* VW positions at once, their VW horizontal sums done by one reduction tree */
        const V vs = vset1(scale);
        for (; b + VW <= nb; b += VW) {
            V a[VW];
            for (int i = 0; i < VW; i++) a[i] = vzero();
            for (int c = 0; c < HDC / VW; c++)
                for (int i = 0; i < VW; i++) a[i] = vfma(qv[c], FN(ldw)(kc, kt, off0 + (b + i) * HDC + c * VW), a[i]);
            vst(sc + b, vmul(vhsum_n(a), vs));
        }
#endif
        for (; b < nb; b++) {
            const int64_t off = off0 + b * HDC;
            V a0 = vzero(), a1 = vzero();
            for (int c = 0; c + 1 < HDC / VW; c += 2) {
                a0 = vfma(qv[c], FN(ldw)(kc, kt, off + c * VW), a0);
                a1 = vfma(qv[c + 1], FN(ldw)(kc, kt, off + (c + 1) * VW), a1);
            }
            if ((HDC / VW) % 2) a0 = vfma(qv[HDC / VW - 1], FN(ldw)(kc, kt, off + (HDC / VW - 1) * VW), a0);
            sc[b] = vhsum(vadd(a0, a1)) * scale;
        }
    } else {
        for (int64_t b = 0; b < nb; b++) sc[b] = FN(dot)(q, kc, kt, off0 + b * hd, hd) * scale;
    }
}

/* acc += sum_b p[b] * V[p0 + b] */
EL_AI void FN(pv)(float *acc, const float *p, const void *vc, const el_dtype kt, int64_t off0, int64_t hd,
                  const int HDC, int64_t nb) {
    if (HDC > 0 && ATT_HDC_OK(HDC)) {
        V a[ATT_NV(HDC)];
        for (int c = 0; c < HDC / VW; c++) a[c] = vld(acc + c * VW);
        for (int64_t b = 0; b < nb; b++) {
            const V pb = vset1(p[b]);
            const int64_t off = off0 + b * HDC;
            for (int c = 0; c < HDC / VW; c++) a[c] = vfma(pb, FN(ldw)(vc, kt, off + c * VW), a[c]);
        }
        for (int c = 0; c < HDC / VW; c++) vst(acc + c * VW, a[c]);
    } else {
        for (int64_t b = 0; b < nb; b++) FN(axpy)(acc, p[b], vc, kt, off0 + b * hd, hd);
    }
}

/* Two q heads of one kv head at once (GQA): every K / V vector is loaded and converted once for both. */
#define ATT_PAIR_OK(HDC) ((HDC) > 0 && ATT_HDC_OK(HDC) && 2 * (HDC) / VW <= 16)
/* the lane-wise products of both heads with K row off, summed over the row's vectors (not reduced) */
EL_AI void FN(dot2)(const V *qa, const V *qb, const void *kc, const el_dtype kt, int64_t off, const int HDC, V *ra,
                    V *rb) {
    V a0 = vzero(), a1 = vzero(), b0 = vzero(), b1 = vzero();
    for (int c = 0; c + 1 < HDC / VW; c += 2) {
        const V k0 = FN(ldw)(kc, kt, off + c * VW), k1 = FN(ldw)(kc, kt, off + (c + 1) * VW);
        a0 = vfma(qa[c], k0, a0);
        b0 = vfma(qb[c], k0, b0);
        a1 = vfma(qa[c + 1], k1, a1);
        b1 = vfma(qb[c + 1], k1, b1);
    }
    if ((HDC / VW) % 2) {
        const V k0 = FN(ldw)(kc, kt, off + (HDC / VW - 1) * VW);
        a0 = vfma(qa[HDC / VW - 1], k0, a0);
        b0 = vfma(qb[HDC / VW - 1], k0, b0);
    }
    *ra = vadd(a0, a1);
    *rb = vadd(b0, b1);
}
EL_AI void FN(scores2)(const float *q0, const float *q1, const void *kc, const el_dtype kt, int64_t off0,
                       const int HDC, int64_t nb, float scale, float *sc0, float *sc1) {
    V qa[ATT_NV(HDC)], qb[ATT_NV(HDC)];
    for (int c = 0; c < HDC / VW; c++) {
        qa[c] = vld(q0 + c * VW);
        qb[c] = vld(q1 + c * VW);
    }
    int64_t b = 0;
#ifdef HAVE_VHSUM_N
    /* VW positions at once, the VW horizontal sums of each head by one reduction tree (instead of one
     * reduction per position and head): prefill attention 1 thread +18% */
    const V vs = vset1(scale);
    for (; b + VW <= nb; b += VW) {
        V ta[VW], tb[VW];
        for (int i = 0; i < VW; i++) FN(dot2)(qa, qb, kc, kt, off0 + (b + i) * HDC, HDC, &ta[i], &tb[i]);
        vst(sc0 + b, vmul(vhsum_n(ta), vs));
        vst(sc1 + b, vmul(vhsum_n(tb), vs));
    }
#endif
    for (; b < nb; b++) {
        V ra, rb;
        FN(dot2)(qa, qb, kc, kt, off0 + b * HDC, HDC, &ra, &rb);
        sc0[b] = vhsum(ra) * scale;
        sc1[b] = vhsum(rb) * scale;
    }
}
EL_AI void FN(pv2)(float *acc0, float *acc1, const float *p0, const float *p1, const void *vc, const el_dtype kt,
                   int64_t off0, const int HDC, int64_t nb) {
    V a[ATT_NV(HDC)], c2[ATT_NV(HDC)];
    for (int c = 0; c < HDC / VW; c++) {
        a[c] = vld(acc0 + c * VW);
        c2[c] = vld(acc1 + c * VW);
    }
    for (int64_t b = 0; b < nb; b++) {
        const V pa = vset1(p0[b]), pb = vset1(p1[b]);
        const int64_t off = off0 + b * HDC;
        for (int c = 0; c < HDC / VW; c++) {
            const V v = FN(ldw)(vc, kt, off + c * VW);
            a[c] = vfma(pa, v, a[c]);
            c2[c] = vfma(pb, v, c2[c]);
        }
    }
    for (int c = 0; c < HDC / VW; c++) {
        vst(acc0 + c * VW, a[c]);
        vst(acc1 + c * VW, c2[c]);
    }
}

#if VW >= 8
/* Prefill tiles: the G q heads of one kv head for up to VW / G consecutive tokens of one slot sit in the VW
 * lanes (lane l: token t0 + l / G, head g = l % G). The scores of a position are one vector (q transposed
 * once per tile, each K element broadcast: no horizontal sums), the online softmax runs lane-wise, and P V
 * broadcasts each V element against the lanes' probabilities. Per block of positions, K and V rows are
 * converted to f32 once for up to ATT_TILES tiles (VW * ATT_TILES q heads). Positions past a lane's own
 * (causal) get probability 0. */
#define ATT_PT (VW >= 16 ? 16 : 8) /* positions (scores) / head dims (P V) per register tile */
#define ATT_TILE_HD 128            /* largest head_dim of the tiles (stack buffers) */
#define ATT_TILES 4                /* tiles sharing each converted block of K / V */
#define ATT_TB 32                  /* positions per block (a multiple of ATT_PT) */
typedef struct FN(att_tile) {
    float qt[ATT_TILE_HD * VW], ot[ATT_TILE_HD * VW]; /* q and the output sums, transposed: [d][lane] */
    V mrun, lrun;
    int32_t lim[VW], minp, maxp;
} FN(att_tile);

/* one block (positions p0 .. p0 + nbp - 1, kf / vf rows, zero past the block) of tile T */
EL_AI void FN(att_tile_block)(FN(att_tile) * T, const float *kf, const float *vf, int64_t p0, int64_t nbp, V vs,
                              const int HDC) {
    float s[ATT_TB * VW];
    for (int64_t b0 = 0; b0 < nbp; b0 += ATT_PT) { /* scores of ATT_PT positions for all lanes */
        V a[ATT_PT];
        for (int i = 0; i < ATT_PT; i++) a[i] = vzero();
        const float *kp = kf + b0 * HDC;
        for (int d = 0; d < HDC; d++, kp++) {
            const V qd = vld(T->qt + d * VW);
            for (int i = 0; i < ATT_PT; i++) a[i] = vfma(vset1(kp[i * HDC]), qd, a[i]);
        }
        for (int i = 0; i < ATT_PT; i++) vst(s + (b0 + i) * VW, vmul(a[i], vs));
    }
    const int64_t mb = T->minp + 1 - p0 > 0 ? T->minp + 1 - p0 : 0;
    for (int64_t b = mb; b < nbp; b++) /* causal: past a lane's position (and the padding) */
        for (int l = 0; l < VW; l++)
            if (p0 + b > T->lim[l]) s[b * VW + l] = -INFINITY;
    V m = T->mrun; /* a NaN score is skipped, as by the scalar compare */
    for (int64_t b = 0; b < nbp; b++) m = vmax(vld(s + b * VW), m);
    const V corr = vexp(vsub(T->mrun, m)); /* first block: ~0 times the zero sums */
    for (int64_t b = 0; b < nbp; b++) vst(s + b * VW, vexp(vsub(vld(s + b * VW), m)));
    for (int64_t b = mb; b < nbp; b++)
        for (int l = 0; l < VW; l++)
            if (p0 + b > T->lim[l]) s[b * VW + l] = 0.0f;
    V sum = vzero();
    for (int64_t b = 0; b < nbp; b++) sum = vadd(sum, vld(s + b * VW));
    T->lrun = vfma(T->lrun, corr, sum);
    T->mrun = m;
    for (int d0 = 0; d0 < HDC; d0 += ATT_PT) { /* ot[d] = ot[d] * corr + sum_b p[b] V[b][d] */
        V a[ATT_PT];
        for (int i = 0; i < ATT_PT; i++) a[i] = vmul(vld(T->ot + (d0 + i) * VW), corr);
        const float *vp = vf + d0;
        for (int64_t b = 0; b < nbp; b++, vp += HDC) {
            const V pb = vld(s + b * VW);
            for (int i = 0; i < ATT_PT; i++) a[i] = vfma(vset1(vp[i]), pb, a[i]);
        }
        for (int i = 0; i < ATT_PT; i++) vst(T->ot + (d0 + i) * VW, a[i]);
    }
}

/* tokens t0 .. t0 + nt - 1 (one slot, nt <= ATT_TILES * (VW / G)) for kv head kvh */
EL_AI void FN(attn_tiles)(const float *q, int64_t t0, int64_t nt, int64_t n_head, int64_t n_head_kv, int64_t G,
                          int64_t kvh, const int32_t *slot, const int32_t *pos, const void *kc, const void *vc,
                          const el_dtype kt, int64_t cap, float scale, float vscale, float *out, const int HDC) {
    FN(att_tile) T[ATT_TILES];
    float kf[ATT_TB * ATT_TILE_HD], vf[ATT_TB * ATT_TILE_HD];
    const int64_t tpt = VW / G, ntile = (nt + tpt - 1) / tpt;
    int32_t maxp = 0;
    for (int64_t j = 0; j < ntile; j++) {
        FN(att_tile) *P = &T[j];
        const int64_t tj = t0 + j * tpt, nl = (nt - j * tpt < tpt ? nt - j * tpt : tpt) * G;
        P->maxp = 0;
        P->minp = INT32_MAX;
        for (int l = 0; l < VW; l++) { /* unused lanes: q = 0, position 0 only */
            P->lim[l] = l < nl ? pos[tj + l / G] : 0;
            P->maxp = P->lim[l] > P->maxp ? P->lim[l] : P->maxp;
            if (l < nl) P->minp = P->lim[l] < P->minp ? P->lim[l] : P->minp;
            const float *ql = q + ((tj + l / G) * n_head + kvh * G + l % G) * HDC;
            for (int d = 0; d < HDC; d++) P->qt[d * VW + l] = l < nl ? ql[d] : 0.0f;
        }
        for (int i = 0; i < HDC * VW; i++) P->ot[i] = 0.0f;
        P->mrun = vset1(-INFINITY);
        P->lrun = vzero();
        maxp = P->maxp > maxp ? P->maxp : maxp;
    }
    const V vs = vset1(scale);
    const int64_t base = ((int64_t)slot[t0] * n_head_kv + kvh) * cap * HDC;
    for (int64_t p0 = 0; p0 <= maxp; p0 += ATT_TB) {
        const int64_t nb = maxp + 1 - p0 < ATT_TB ? maxp + 1 - p0 : ATT_TB;
        const int64_t nbp = (nb + ATT_PT - 1) / ATT_PT * ATT_PT;
        for (int64_t b = 0; b < nbp; b++)
            for (int c = 0; c < HDC / VW; c++) {
                const int64_t off = base + (p0 + b) * HDC + c * VW;
                vst(kf + b * HDC + c * VW, b < nb ? FN(ldw)(kc, kt, off) : vzero());
                vst(vf + b * HDC + c * VW, b < nb ? FN(ldw)(vc, kt, off) : vzero());
            }
        for (int64_t j = 0; j < ntile; j++) {
            if (T[j].maxp < p0) continue;
            const int64_t nbj = T[j].maxp + 1 - p0 < nb ? T[j].maxp + 1 - p0 : nb;
            FN(att_tile_block)(&T[j], kf, vf, p0, (nbj + ATT_PT - 1) / ATT_PT * ATT_PT, vs, HDC);
        }
    }
    for (int64_t j = 0; j < ntile; j++) {
        const int64_t tj = t0 + j * tpt, nl = (nt - j * tpt < tpt ? nt - j * tpt : tpt) * G;
        float inv[VW];
        vst(inv, vdiv(vset1(vscale), T[j].lrun));
        for (int l = 0; l < nl; l++) {
            float *o = out + ((tj + l / G) * n_head + kvh * G + l % G) * HDC;
            for (int d = 0; d < HDC; d++) o[d] = T[j].ot[d * VW + l] * inv[l];
        }
    }
}
#endif

/* vscale: multiplies the output (the fp8 cache's v_scale, 1 for float caches); the k_scale of an fp8
 * cache is folded into scale by the caller. */
EL_AI void FN(attn_items)(const float *q, int64_t i0, int64_t i1, int64_t n_head, int64_t n_head_kv, int64_t hd,
                      const int32_t *slot, const int32_t *pos, const void *kc, const void *vc,
                      const el_dtype kt, int64_t cap, float scale, float vscale, float *out, const int HDC) {
    float acc[EL_ATTN_ACC_FLOATS];
    float sc[ATT_GMAX][ATT_BLOCK];
    float mrun[ATT_GMAX], lrun[ATT_GMAX];
    const int64_t G = n_head / n_head_kv;
    int64_t gchunk = EL_ATTN_ACC_FLOATS / hd;
    if (gchunk > ATT_GMAX) gchunk = ATT_GMAX;
    if (gchunk > G) gchunk = G;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t t = it / n_head_kv, kvh = it % n_head_kv;
        const int64_t np = (int64_t)pos[t] + 1;
        const int64_t base = ((int64_t)slot[t] * n_head_kv + kvh) * cap * hd;
        for (int64_t g0 = 0; g0 < G; g0 += gchunk) {
            const int64_t ng = G - g0 < gchunk ? G - g0 : gchunk;
            const int64_t h0 = kvh * G + g0;
            const float *qg = q + (t * n_head + h0) * hd;
            for (int64_t i = 0; i < ng * hd; i++) acc[i] = 0.0f;
            for (int64_t g = 0; g < ng; g++) {
                mrun[g] = -INFINITY;
                lrun[g] = 0.0f;
            }
            for (int64_t p0 = 0; p0 < np; p0 += ATT_BLOCK) {
                const int64_t nb = np - p0 < ATT_BLOCK ? np - p0 : ATT_BLOCK;
                int64_t g = 0;
                if (ATT_PAIR_OK(HDC) && EL_ATT_PAIRS)
                    for (; g + 2 <= ng; g += 2)
                        FN(scores2)(qg + g * hd, qg + (g + 1) * hd, kc, kt, base + p0 * hd, HDC, nb, scale, sc[g],
                                    sc[g + 1]);
                for (; g < ng; g++) FN(scores)(qg + g * hd, kc, kt, base + p0 * hd, hd, HDC, nb, scale, sc[g]);
                for (int64_t g = 0; g < ng; g++) {
                    /* block max: VW lanes at a time (a NaN score is skipped, as by the scalar compare) */
                    V bmv = vset1(sc[g][0]);
                    int64_t b0 = 0;
                    for (; b0 + VW <= nb; b0 += VW) bmv = vmax(vld(&sc[g][b0]), bmv);
                    float lanes[VW], bm = sc[g][0];
                    vst(lanes, bmv);
                    for (int i = 0; i < VW; i++) bm = lanes[i] > bm ? lanes[i] : bm;
                    for (; b0 < nb; b0++) bm = sc[g][b0] > bm ? sc[g][b0] : bm;
                    const float mnew = bm > mrun[g] ? bm : mrun[g];
                    if (mrun[g] != -INFINITY && mnew != mrun[g]) {
                        const float corr = expf(mrun[g] - mnew);
                        lrun[g] *= corr;
                        FN(scale_vec)(acc + g * hd, corr, hd);
                    }
                    mrun[g] = mnew;
                    const V mv = vset1(mnew);
                    V sum = vzero();
                    int64_t b = 0;
                    for (; b + VW <= nb; b += VW) {
                        V e = vexp(vsub(vld(&sc[g][b]), mv));
                        vst(&sc[g][b], e);
                        sum = vadd(sum, e);
                    }
                    float l = vhsum(sum);
                    for (; b < nb; b++) {
                        sc[g][b] = expf(sc[g][b] - mnew);
                        l += sc[g][b];
                    }
                    lrun[g] += l;
                }
                g = 0;
                if (ATT_PAIR_OK(HDC) && EL_ATT_PAIRS)
                    for (; g + 2 <= ng; g += 2)
                        FN(pv2)(acc + g * hd, acc + (g + 1) * hd, sc[g], sc[g + 1], vc, kt, base + p0 * hd, HDC, nb);
                for (; g < ng; g++) FN(pv)(acc + g * hd, sc[g], vc, kt, base + p0 * hd, hd, HDC, nb);
            }
            for (int64_t g = 0; g < ng; g++) {
                float *o = out + (t * n_head + h0 + g) * hd;
                const float inv = vscale / lrun[g];
                const V iv = vset1(inv);
                int64_t i = 0;
                for (; i + VW <= hd; i += VW) vst(o + i, vmul(vld(acc + g * hd + i), iv));
                for (; i < hd; i++) o[i] = acc[g * hd + i] * inv;
            }
        }
    }
}

/* items [i0, i1) as prefill tiles where whole tokens of one slot follow each other, else one by one */
EL_AI void FN(attn_t)(const float *q, int64_t i0, int64_t i1, int64_t n_head, int64_t n_head_kv, int64_t hd,
                      const int32_t *slot, const int32_t *pos, const void *kc, const void *vc,
                      const el_dtype kt, int64_t cap, float scale, float vscale, float *out, const int HDC) {
#if VW >= 8
    const int64_t G = n_head / n_head_kv;
    if (HDC > 0 && HDC <= ATT_TILE_HD && HDC % ATT_PT == 0 && HDC % VW == 0 && G <= VW / 2 &&
        i0 % n_head_kv == 0 && i1 % n_head_kv == 0) {
        const int64_t te = i1 / n_head_kv;
        for (int64_t t = i0 / n_head_kv; t < te;) {
            int64_t nt = 1;
            while (nt < ATT_TILES * (VW / G) && t + nt < te && slot[t + nt] == slot[t]) nt++;
            if (nt == 1)
                FN(attn_items)(q, t * n_head_kv, (t + 1) * n_head_kv, n_head, n_head_kv, hd, slot, pos, kc, vc, kt,
                               cap, scale, vscale, out, HDC);
            else
                for (int64_t kvh = 0; kvh < n_head_kv; kvh++)
                    FN(attn_tiles)(q, t, nt, n_head, n_head_kv, G, kvh, slot, pos, kc, vc, kt, cap, scale, vscale,
                                   out, HDC);
            t += nt;
        }
        return;
    }
#endif
    FN(attn_items)(q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, kt, cap, scale, vscale, out, HDC);
}

EL_AI void FN(attn_hd)(const float *q, int64_t i0, int64_t i1, int64_t n_head, int64_t n_head_kv, int64_t hd,
                       const int32_t *slot, const int32_t *pos, const void *kc, const void *vc,
                       const el_dtype kt, int64_t cap, float scale, float vscale, float *out) {
    if (hd == 128 && ATT_HDC_OK(128))
        FN(attn_t)(q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, kt, cap, scale, vscale, out, 128);
    else if (hd == 64 && ATT_HDC_OK(64))
        FN(attn_t)(q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, kt, cap, scale, vscale, out, 64);
    else
        FN(attn_t)(q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, kt, cap, scale, vscale, out, 0);
}

static void FN(attention)(const float *q, int64_t i0, int64_t i1, int64_t n_head, int64_t n_head_kv,
                          int64_t hd, const int32_t *slot, const int32_t *pos, const void *kc, const void *vc,
                          el_dtype kt, float k_scale, float v_scale, int64_t cap, float scale, float *out) {
    if (hd <= 0 || hd > EL_ATTN_MAX_HEAD_DIM || n_head_kv <= 0 || n_head % n_head_kv) return;
    switch (kt) {
    case EL_DTYPE_F32:
        FN(attn_hd)(q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, EL_DTYPE_F32, cap, scale, 1.0f, out);
        break;
    case EL_DTYPE_F16:
        FN(attn_hd)(q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, EL_DTYPE_F16, cap, scale, 1.0f, out);
        break;
    case EL_DTYPE_BF16:
        FN(attn_hd)
        (q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, EL_DTYPE_BF16, cap, scale, 1.0f, out);
        break;
    /* fp8: scores = <q, e4m3(k)> * (scale * k_scale), out = (sum p e4m3(v)) / l * v_scale; the loads
     * return e4m3 / 256 (vld_e4m3), the exact factor 256 goes into both scales */
    case EL_DTYPE_F8_E4M3:
        FN(attn_hd)
        (q, i0, i1, n_head, n_head_kv, hd, slot, pos, kc, vc, EL_DTYPE_F8_E4M3, cap, scale * k_scale * 256.0f,
         v_scale * 256.0f, out);
        break;
    default: break;
    }
}

const el_cpu_kern FN(el_cpu_kern) = {FN(matmul), FN(rmsnorm), FN(attention), FN(swiglu), FN(add)};
