/* qfloat_w4dec_avx512.c - AVX-512 VNNI w4a16 decode (m <= EL_QF_MDEC rows of x), dispatched by qfloat.c.
 *
 * Activations: per chunk of 128 elements n = rne(x / d), d = max |x| / W4_LIM (error <= d / 2, 2^-16 of the
 * chunk's max |x|, as the int16 prefill activations), split into two signed bytes n = x1 * 2^8 + x0 (x0 the
 * sign-extended low byte; |n| <= 127 * 257 keeps x1 in -127..127). Per chunk 256 bytes: x0 of the 64 even
 * elements, x0 of the 64 odd ones, x1 the same (the low / high nibbles of the chunk's 64 weight bytes); then
 * f32 group sums X_g, chunk factors d and chunk sums of the represented x (layout in qfloat_impl.h).
 * Weights: a chunk's 64 bytes give the low and the high nibbles q as u8 (one and / shift each); vpdpbusd
 * sums q * x1 and then, on top of that sum times 2^8, q * x0: exact int32 sums of q * n per lane (lane l =
 * elements 8 l .. 8 l + 7: a lane never straddles a group of 8..128 elements), 4 vpdpbusd per 64 weight
 * bytes. One FMA per chunk applies the lane's group scale times d; the zero point (8 when symmetric) comes
 * in once per row as -sum_g s_g z_g X_g.
 * One token with g >= 128 (one scale per chunk): the rows two at a time, each front to back (two neighbouring
 * rows are one contiguous stretch of W; x of a chunk is loaded once for both), the per-chunk factors s_c d_c
 * of a row and its offset correction computed before its loop. Otherwise (2..4 tokens or g < 128) one row of
 * W at a time against all rows of x, the lane scales loaded per chunk. */
#include "kernels/cpu/qfloat_avx512_util.h"

#if defined(__x86_64__)
#include <string.h>

#define W4_LIM 32639.0f
#define W4_PFD 8192 /* software prefetch distance in each stream of W (bytes; from DRAM ~1.3x faster than 2048) */
#define W4_SV_MAX 256 /* chunks per row whose factors s_c d_c go through a stack buffer (one-token path) */

/* row x (k) -> xb (nch * 256 bytes), xg [G] group sums, xd [nch] factors d, xc [nch] chunk sums */
static void prep_row(const el_qf_info *q, const float *x, uint8_t *xb, float *xg, float *xd, float *xc) {
    const int64_t k = q->k, g = q->g;
    static const uint32_t ev[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const VI iev = _mm512_loadu_si512(ev), iod = _mm512_add_epi32(iev, _mm512_set1_epi32(1));
    memset(xg, 0, sizeof(float) * (size_t)q->G);
    for (int64_t c = 0; c < q->nch; c++) {
        const int64_t e0 = c * 128;
        VI n[8];
        const float d = q16_chunk(x, e0, k, W4_LIM, n) / W4_LIM;
        xd[c] = d;
        VI nsum = _mm512_setzero_si512();
        for (int t = 0; t < 8; t++) {
            nsum = _mm512_add_epi32(nsum, n[t]);
            if (g < 128 && e0 + 16 * t < q->G * g) {
                if (g >= 16) {
                    xg[(e0 + 16 * t) / g] += (float)_mm512_reduce_add_epi32(n[t]) * d;
                } else {
                    int32_t l[16];
                    _mm512_storeu_si512(l, n[t]);
                    for (int i = 0; i < 16; i++)
                        xg[(e0 + 16 * t + i) / g] += (float)l[i] * d;
                }
            }
        }
        xc[c] = (float)_mm512_reduce_add_epi32(nsum) * d; /* |sum| < 2^22: exact before * d */
        if (g >= 128 && e0 < q->G * g) xg[e0 / g] += xc[c];
        for (int p = 0; p < 4; p++) { /* elements 32 p .. 32 p + 31: even and odd halves */
            const VI h[2] = {_mm512_permutex2var_epi32(n[2 * p], iev, n[2 * p + 1]),
                             _mm512_permutex2var_epi32(n[2 * p], iod, n[2 * p + 1])};
            for (int eo = 0; eo < 2; eo++) {
                const VI x0 = _mm512_srai_epi32(_mm512_slli_epi32(h[eo], 24), 24);
                const VI x1 = _mm512_srai_epi32(_mm512_sub_epi32(h[eo], x0), 8);
                uint8_t *o = xb + c * 256 + eo * 64 + p * 16;
                _mm_storeu_si128((__m128i *)o, _mm512_cvtepi32_epi8(x0));
                _mm_storeu_si128((__m128i *)(o + 128), _mm512_cvtepi32_epi8(x1));
            }
        }
    }
}

void el_w4d_prep_avx512(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep) {
    uint8_t *xb = prep;
    float *xs = (float *)(xb + q->xb_bytes);
    for (int64_t i = i0; i < i1; i++)
        prep_row(q, x + i * q->k, xb + i * q->nch * 256, xs + i * q->G, xs + m * q->G + i * q->nch,
                 xs + m * (q->G + q->nch) + i * q->nch);
}

/* 64 weight bytes wv against the two limbs of x (xv: x0 even, x0 odd, x1 even, x1 odd): exact int32 sums of
 * q * n per lane (|sum| <= 8 * 15 * 32639) */
AI VI w4_dot(VI wv, const VI *xv) {
    const VI nm = _mm512_set1_epi8(0x0f);
    wv = in_reg(wv);
    const VI we = _mm512_and_si512(wv, nm), wo = _mm512_and_si512(_mm512_srli_epi16(wv, 4), nm);
    const VI h = dpbusd(dpbusd(_mm512_setzero_si512(), we, xv[2]), wo, xv[3]);
    return dpbusd(dpbusd(_mm512_slli_epi32(h, 8), we, xv[0]), wo, xv[1]);
}

AI void load_x(const uint8_t *xp, VI *xv) {
    for (int u = 0; u < 4; u++)
        xv[u] = in_reg(_mm512_loadu_si512(xp + 64 * u)); /* once, not once per use */
}

/* one token, g >= 128: the factors sv[c] = s_c d_c of row j and its offset correction
 * -sum_c s_c z_c X_c (X_c: chunk sums xc) in the lanes of the result */
AI VF row_factors(const el_qf_info *q, int64_t j, const float *xd, const float *xc, const int ZS, float *sv) {
    const uint16_t *s = (const uint16_t *)q->sc + j * q->G;
    const uint8_t *z = ZS ? q->zs + j * q->G : NULL;
    VF cv = _mm512_setzero_ps();
    if (q->g == 128) {
        for (int64_t c0 = 0; c0 < q->nch; c0 += 16) {
            const int64_t nv = q->nch - c0 < 16 ? q->nch - c0 : 16;
            const __mmask16 mk = (__mmask16)((1u << nv) - 1);
            const VF sc = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, s + c0));
            _mm512_store_ps(sv + c0, _mm512_mul_ps(sc, _mm512_maskz_loadu_ps(mk, xd + c0)));
            const VF zc = ZS ? _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mk, z + c0)))
                             : _mm512_set1_ps(8.0f);
            cv = _mm512_fnmadd_ps(_mm512_mul_ps(sc, zc), _mm512_maskz_loadu_ps(mk, xc + c0), cv);
        }
        return cv;
    }
    float cs = 0;
    for (int64_t c = 0; c < q->nch; c++) {
        const int64_t gi = c * 128 / q->g;
        const float sc = _cvtsh_ss(s[gi]);
        sv[c] = sc * xd[c];
        cs -= sc * (ZS ? (float)z[gi] : 8.0f) * xc[c];
    }
    return _mm512_zextps128_ps512(_mm_set_ss(cs));
}

/* the 16 lane sums of t[0..15] as the 16 lanes of one vector (a transpose-and-add tree: 45 instructions for
 * 16 rows instead of a horizontal sum each) */
AI VF sum16(const VF *t) {
    VF u[8], v[4];
    for (int i = 0; i < 8; i++) /* per 128-bit lane: t2i[0]+t2i[2], t2i+1[0]+t2i+1[2], the same for 1, 3 */
        u[i] = _mm512_add_ps(_mm512_unpacklo_ps(t[2 * i], t[2 * i + 1]), _mm512_unpackhi_ps(t[2 * i], t[2 * i + 1]));
    for (int i = 0; i < 4; i++) { /* per 128-bit lane: the lane's sums of rows 4 i .. 4 i + 3 */
        const __m512d a = _mm512_castps_pd(u[2 * i]), b = _mm512_castps_pd(u[2 * i + 1]);
        v[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    const VF w0 = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x88), _mm512_shuffle_f32x4(v[0], v[1], 0xdd));
    const VF w1 = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], 0x88), _mm512_shuffle_f32x4(v[2], v[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, 0x88), _mm512_shuffle_f32x4(w0, w1, 0xdd));
}

/* one token, g >= 128 (every chunk full): NS rows, row j[i] (i < NS) from its own stream, each row front to
 * back; x of a chunk loaded once for all of them; the row sums with their offset corrections into tt[i] */
AI void rows1(const el_qf_info *q, const uint8_t *xb, const float *xd, const float *xc, const int64_t *j,
              const int NS, const int ZS, VF *tt) {
    const int64_t nch = q->nch;
    _Alignas(64) float sv[2][W4_SV_MAX];
    const uint8_t *wr[2];
    VF t[2];
    for (int i = 0; i < NS; i++) {
        t[i] = row_factors(q, j[i], xd, xc, ZS, sv[i]);
        wr[i] = q->qs + j[i] * q->rowb;
    }
    VF u[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}; /* odd chunks: a second chain per row */
    int64_t c = 0;
    for (; c + 2 <= nch; c += 2) {
        VI xv[2][4];
        load_x(xb + c * 256, xv[0]);
        load_x(xb + c * 256 + 256, xv[1]);
        /* the 2 NS chunk dots step by step (independent chains side by side for the out-of-order core) */
        VI we[4], wo[4], a[4];
        const VI nm = _mm512_set1_epi8(0x0f);
        for (int i = 0; i < NS; i++)
            for (int h = 0; h < 2; h++) {
                const uint8_t *wp = wr[i] + c * 64 + h * 64;
                __builtin_prefetch(wp + W4_PFD, 0, 0);
                const VI wv = in_reg(_mm512_loadu_si512(wp));
                we[2 * i + h] = _mm512_and_si512(wv, nm);
                wo[2 * i + h] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), nm);
            }
        for (int e = 0; e < 2 * NS; e++)
            a[e] = dpbusd(_mm512_setzero_si512(), we[e], xv[e & 1][2]);
        for (int e = 0; e < 2 * NS; e++)
            a[e] = _mm512_slli_epi32(dpbusd(a[e], wo[e], xv[e & 1][3]), 8);
        for (int e = 0; e < 2 * NS; e++)
            a[e] = dpbusd(a[e], we[e], xv[e & 1][0]);
        for (int e = 0; e < 2 * NS; e++)
            a[e] = dpbusd(a[e], wo[e], xv[e & 1][1]);
        for (int i = 0; i < NS; i++) {
            t[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[2 * i]), _mm512_set1_ps(sv[i][c]), t[i]);
            u[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[2 * i + 1]), _mm512_set1_ps(sv[i][c + 1]), u[i]);
        }
    }
    if (c < nch) {
        VI xv[4];
        load_x(xb + c * 256, xv);
        for (int i = 0; i < NS; i++)
            t[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(w4_dot(_mm512_loadu_si512(wr[i] + c * 64), xv)),
                                   _mm512_set1_ps(sv[i][c]), t[i]);
    }
    for (int i = 0; i < NS; i++)
        tt[i] = _mm512_add_ps(t[i], u[i]);
}

/* y[j0 .. j0 + nr) (nr <= 16) from the 16 row sums tt (+ bias) */
AI void store16(const VF *tt, int64_t j0, int nr, const float *bias, float *y) {
    const __mmask16 mk = (__mmask16)((1u << nr) - 1);
    VF o = sum16(tt);
    if (bias) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(mk, bias + j0));
    _mm512_mask_storeu_ps(y + j0, mk, o);
}

/* one token, g >= 128: rows [n0, n1) as two halves walked side by side (two sequential streams through W,
 * which the hardware prefetchers follow, and x loaded once per chunk for both; the software prefetch runs
 * W4_PFD bytes ahead in each), 16 rows of each half per block; the rest one row at a time */
AI void dec1(const el_qf_info *q, const uint8_t *xb, const float *xs, int64_t n0, int64_t n1, const float *bias,
             float *y, const int ZS) {
    const float *xd = xs + q->G, *xc = xd + q->nch;
    const int64_t half = ((n1 - n0) / 2) & ~(int64_t)15, mid = n0 + half;
    for (int64_t jb = n0; jb < mid; jb += 16) {
        VF ta[16], tb[16];
        for (int r = 0; r < 16; r++) {
            const int64_t jj[2] = {jb + r, jb + r + half};
            VF t2[2];
            rows1(q, xb, xd, xc, jj, 2, ZS, t2);
            ta[r] = t2[0];
            tb[r] = t2[1];
        }
        store16(ta, jb, 16, bias, y);
        store16(tb, jb + half, 16, bias, y);
    }
    for (int64_t jb = mid + half; jb < n1; jb += 16) {
        const int nr = n1 - jb < 16 ? (int)(n1 - jb) : 16;
        VF tt[16];
        for (int r = 0; r < 16; r++) {
            const int64_t jj[1] = {jb + r};
            if (r < nr)
                rows1(q, xb, xd, xc, jj, 1, ZS, tt + r);
            else
                tt[r] = _mm512_setzero_ps();
        }
        store16(tt, jb, nr, bias, y);
    }
}

/* -sum_g s_g z_g X_g of row j for the group sums xg of one row of x */
AI float row_corr(const el_qf_info *q, int64_t j, const float *xg, const int ZS) {
    const uint16_t *s = (const uint16_t *)q->sc + j * q->G;
    VF acc = _mm512_setzero_ps();
    for (int64_t g0 = 0; g0 < q->G; g0 += 16) {
        const int64_t nv = q->G - g0 < 16 ? q->G - g0 : 16;
        const __mmask16 mk = (__mmask16)((1u << nv) - 1);
        const VF sc = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, s + g0));
        const VF zc = ZS ? _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mk, q->zs + j * q->G + g0)))
                         : _mm512_set1_ps(8.0f);
        acc = _mm512_fnmadd_ps(_mm512_mul_ps(sc, zc), _mm512_maskz_loadu_ps(mk, xg + g0), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

typedef struct lanes {
    VI sidx;                /* g < 128: lane l -> its group among the chunk's (l * 8 / g)   */
    int64_t gpc;            /* g < 128: groups per chunk, else 0                           */
    __mmask16 sfull, slast; /* g < 128: scale entries of a full and of the last chunk      */
    __mmask64 tailm;        /* weight bytes of the last chunk                              */
} lanes;

/* the group scale of each lane of chunk c of row j (f32) */
AI VF lane_scales(const el_qf_info *q, const lanes *L, int64_t j, int64_t c, bool last) {
    const uint16_t *s = (const uint16_t *)q->sc + j * q->G;
    if (L->gpc) {
        const __m256i h = _mm256_maskz_loadu_epi16(last ? L->slast : L->sfull, s + c * L->gpc);
        return _mm512_permutexvar_ps(L->sidx, _mm512_cvtph_ps(h));
    }
    return _mm512_set1_ps(_cvtsh_ss(s[c * 128 / q->g]));
}

/* MR rows of x (any group size) by NR (1, 2) rows of W from row j, each read front to back once for all
 * rows of x (NR = 2: twice the independent FMA chains, x of a chunk loaded once for both) */
AI void decm_rows(const el_qf_info *q, const lanes *L, const uint8_t *xb, const float *xs, int64_t m, int64_t j,
                  const int MR, const int NR, const int ZS, const float *bias, float *y, int64_t ldy) {
    const int64_t nch = q->nch, ldx = nch * 256;
    const float *xd = xs + m * q->G;
    VF t[2][4];
    for (int r = 0; r < NR; r++)
        for (int i = 0; i < MR; i++)
            t[r][i] = _mm512_setzero_ps();
    for (int64_t c = 0; c < nch; c++) {
        const bool last = c == nch - 1;
        VI wv[2];
        VF s[2];
        for (int r = 0; r < NR; r++) {
            const uint8_t *wp = q->qs + (j + r) * q->rowb + c * 64;
            __builtin_prefetch(wp + W4_PFD, 0, 0);
            wv[r] = last ? _mm512_maskz_loadu_epi8(L->tailm, wp) : _mm512_loadu_si512(wp);
            s[r] = lane_scales(q, L, j + r, c, last);
        }
        for (int i = 0; i < MR; i++) {
            VI xv[4];
            load_x(xb + i * ldx + c * 256, xv);
            const VF d = _mm512_set1_ps(xd[i * nch + c]);
            for (int r = 0; r < NR; r++)
                t[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(w4_dot(wv[r], xv)), _mm512_mul_ps(s[r], d), t[r][i]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int i = 0; i < MR; i++)
            y[i * ldy + j + r] = _mm512_reduce_add_ps(t[r][i]) + row_corr(q, j + r, xs + i * q->G, ZS) +
                                 (bias ? bias[j + r] : 0.0f);
}

AI void decm_mr(const el_qf_info *q, const lanes *L, const uint8_t *xb, const float *xs, int64_t m, int64_t n0,
                int64_t n1, const int MR, const int ZS, const float *bias, float *y, int64_t ldy) {
    int64_t j = n0;
    for (; j + 2 <= n1; j += 2)
        decm_rows(q, L, xb, xs, m, j, MR, 2, ZS, bias, y, ldy);
    if (j < n1) decm_rows(q, L, xb, xs, m, j, MR, 1, ZS, bias, y, ldy);
}

AI void decm(const el_qf_info *q, const uint8_t *xb, const float *xs, int64_t m, int64_t n0, int64_t n1,
             const float *bias, float *y, int64_t ldy, const int ZS) {
    lanes L;
    memset(&L, 0, sizeof L);
    L.tailm = q->tailb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << q->tailb) - 1);
    L.gpc = q->g < 128 ? 128 / q->g : 0;
    if (L.gpc) {
        uint32_t sidx[16];
        for (int l = 0; l < 16; l++)
            sidx[l] = (uint32_t)(l * 8 / q->g);
        L.sidx = _mm512_loadu_si512(sidx);
        L.sfull = (__mmask16)((1u << L.gpc) - 1);
        L.slast = (__mmask16)((1u << (q->G - (q->nch - 1) * L.gpc)) - 1);
    }
    switch (m) {
    case 4: decm_mr(q, &L, xb, xs, m, n0, n1, 4, ZS, bias, y, ldy); break;
    case 3: decm_mr(q, &L, xb, xs, m, n0, n1, 3, ZS, bias, y, ldy); break;
    case 2: decm_mr(q, &L, xb, xs, m, n0, n1, 2, ZS, bias, y, ldy); break;
    default: decm_mr(q, &L, xb, xs, m, n0, n1, 1, ZS, bias, y, ldy); break;
    }
}

void el_w4d_matmul_avx512(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1,
                          const float *bias, float *y, int64_t ldy) {
    const uint8_t *xb = prep;
    const float *xs = (const float *)(xb + q->xb_bytes);
    if (m == 1 && q->g >= 128 && q->nch <= W4_SV_MAX) {
        if (q->zs)
            dec1(q, xb, xs, n0, n1, bias, y, 1);
        else
            dec1(q, xb, xs, n0, n1, bias, y, 0);
    } else if (q->zs) {
        decm(q, xb, xs, m, n0, n1, bias, y, ldy, 1);
    } else {
        decm(q, xb, xs, m, n0, n1, bias, y, ldy, 0);
    }
}

#endif
