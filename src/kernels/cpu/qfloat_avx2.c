/* qfloat_avx2.c - AVX2 + FMA + F16C kernels of the weight-only / float-activation quantized formats w4a16,
 * nvfp4 and fp8 (layouts in kernels/quant.h) for CPUs without AVX-512 BF16 (qfloat.c dispatches).
 *
 * Decode (m <= EL_QF_MDEC), W read once, each row front to back, all m rows of x per row of W:
 *   w4a16 and nvfp4: x prepared per chunk of 128 elements as a 22-bit integer times a power of 2 d (exact
 *     scaling; error <= 2^-22 of the chunk's max |x|) in three signed 8-bit limbs, each limb stored as the
 *     64 even elements then the 64 odd ones (the low / high nibbles of the chunk's 64 weight bytes), so the
 *     same layout as the AVX-512 kernel: [m][nch][3 limbs][even 64 | odd 64] bytes. A weight byte gives
 *     two nibbles as u8 with one and / shift each (nvfp4: then vpshufb to 2 e2m1 + 12, 0..24), vpmaddubsw
 *     (u8 x s8, pairs <= 2 * 24 * 128, no saturation) and vpmaddwd by ones (or AVX-VNNI vpdpbusd where
 *     cpuid has it) give exact int32 sums per limb of 8 consecutive elements per lane, the limbs are
 *     combined in f32 and multiplied by the per-lane group scale times d. The offset of the unsigned
 *     weights (the zero point z, 8 when symmetric; nvfp4: 12) comes in once per row as -sum_g s_g z_g X_g
 *     from group sums X_g of the represented x that come with the prepared activations:
 *       prep = int8 limbs [m][ldx = nch * 384] | f32 X [m][G] | f32 d [m][nch]
 *   fp8: the e4m3 codes become f16 bit patterns (value / 256, exact) and F16C converts them to f32; FMA
 *     with x as f32 (weight-only: no prepared x; static activations: x's e4m3 round trip, f32 [m][k], the
 *     products then exact as the reference's).
 * Prefill (m > EL_QF_MDEC), each weight expanded once into per-thread scratch for all m rows of x:
 *   w4a16: x as int16 per chunk of 128 (x / d, d = 2^(e - 15) from the chunk's max |x|; error <= d / 2)
 *     [m][kx] | f32 d [m][nch]; tiles of 16 rows of W as int16 q - z, each pair of elements (one weight
 *     byte) of the 16 rows side by side, and register tiles of 6 tokens x 16 rows: vpmaddwd (+ vpaddd) or
 *     AVX-VNNI vpdpwssd on a broadcast pair of x, exact int32 per segment (one group within one chunk),
 *     then f32 times the 16 rows' group scales and d.
 *   nvfp4: the same kernel with 2 e2m1 (-12..12) as the int16 weights and e4m3(block scale) * global / 2
 *     as the group scales (g = 16).
 *   fp8: tiles of 16 rows of W as their e4m3 values in f32 (exact; the row scales applied to the outputs),
 *     rows side by side per element, and 6 x 16 register tiles of f32 FMAs on broadcast x. */
#include "kernels/cpu/qfloat_avx2.h"

#if defined(__x86_64__)
#include "kernels/cpu/avx2_util.h"

#include <math.h>

#define AI EL_AVX2_AI

static size_t pad64(size_t v) {
    return (v + 63) & ~(size_t)63;
}

size_t el_qf_sizes_avx2(el_qf_info *q, int64_t m) {
    q->xb_bytes = 64;
    q->xs_bytes = 0;
    q->ldx = 0;
    if (q->fmt == EL_QF_FMT_FP8) {
        q->ldx = q->k;
        if (q->act) q->xb_bytes = pad64((size_t)(m * q->k) * 4);
    } else if (m <= EL_QF_MDEC) {
        q->ldx = q->nch * 384;
        q->xb_bytes = pad64((size_t)(m * q->ldx));
        q->xs_bytes = (size_t)(m * (q->G + q->nch)) * 4;
    } else { /* w4a16 / nvfp4 prefill: int16 x */
        q->ldx = q->kx;
        q->xb_bytes = pad64((size_t)(m * q->kx) * 2);
        q->xs_bytes = (size_t)(m * q->nch) * 4;
    }
    return q->xb_bytes + q->xs_bytes;
}

/* w4a16 prefill: elements per segment (one exact int32 sum per row and token: one group, one chunk of x) */
static int64_t w4p_seg(const el_qf_info *q) {
    return q->g < 128 ? q->g : 128;
}
#define W4P_ROWS 16 /* rows of W per expanded int16 tile (two vectors of 8) */

size_t el_qf_scratch_avx2(const el_qf_info *q, int64_t m) {
    if (m <= EL_QF_MDEC) return 0;
    if (q->fmt != EL_QF_FMT_FP8) /* the int16 tile, then f32 scales [segments][16 rows] */
        return (size_t)(W4P_ROWS * q->kx) * 2 + (size_t)(q->kx / w4p_seg(q)) * W4P_ROWS * 4 + 128;
    return (size_t)(W4P_ROWS * ((q->k + 7) & ~(int64_t)7)) * 4 + 64; /* fp8: the f32 tile */
}

/* ---- prepare ------------------------------------------------------------------------------------- */

/* f32 -> the f32 value of its e4m3 rounding (RNE, saturating at 448), as el_f32_to_e4m3 */
AI __m256 e4m3_round(__m256 v) {
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-448.0f)), _mm256_set1_ps(448.0f));
    const __m256 a = el_avx2_abs_ps(v);
    const __m256i b = _mm256_castps_si256(a);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 20), _mm256_set1_epi32(1));
    const __m256i rn =
        _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7ffff)), lsb),
                         _mm256_set1_epi32((int)0xfff00000u));
    const __m256 sub = _mm256_mul_ps(_mm256_round_ps(_mm256_mul_ps(a, _mm256_set1_ps(512.0f)),
                                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                     _mm256_set1_ps(1.0f / 512.0f));
    const __m256 small = _mm256_cmp_ps(a, _mm256_set1_ps(0.015625f), _CMP_LT_OQ);
    const __m256 r = _mm256_blendv_ps(_mm256_castsi256_ps(rn), sub, small);
    return _mm256_or_ps(r, _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
}

/* 4 vectors of 8 int32 (32 consecutive elements, each in -128..127) -> 16 bytes of the even elements to
 * ev, 16 of the odd ones to od */
AI void store_even_odd(const __m256i *l, uint8_t *ev, uint8_t *od) {
    const __m256i ab = _mm256_packs_epi32(l[0], l[1]), cd = _mm256_packs_epi32(l[2], l[3]);
    __m256i v = _mm256_packs_epi16(ab, cd); /* dwords: a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)); /* elements in order */
    const __m256i eo = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8,
                                        10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    v = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, eo), _MM_SHUFFLE(3, 1, 2, 0));
    _mm_storeu_si128((__m128i *)ev, _mm256_castsi256_si128(v));
    _mm_storeu_si128((__m128i *)od, _mm256_extracti128_si256(v, 1));
}

/* the chunk of 128 elements of x from e0 (zero past k) as x / d in v, d = 2^(e - bits) with max |x| < 2^e, so
 * |x / d| <= 2^bits; two exact power-of-2 steps (no overflow even for tiny x). Returns d (0: all zero). */
static float load_chunk(const float *x, int64_t e0, int64_t k, int bits, __m256 *v) {
    __m256 mx = _mm256_setzero_ps();
    for (int t = 0; t < 16; t++) {
        v[t] = el_avx2_load_ps_n(x + e0 + 8 * t, k - e0 - 8 * t);
        mx = _mm256_max_ps(mx, el_avx2_abs_ps(v[t]));
    }
    const float a = el_avx2_hmax_ps(mx);
    int ex = 0;
    if (a > 0) frexpf(a, &ex);
    const int sh = bits - ex;
    const __m256 s1 = _mm256_set1_ps(ldexpf(1.0f, sh / 2)), s2 = _mm256_set1_ps(ldexpf(1.0f, sh - sh / 2));
    for (int t = 0; t < 16; t++)
        v[t] = _mm256_mul_ps(_mm256_mul_ps(v[t], s1), s2);
    return a > 0 ? ldexpf(1.0f, -sh) : 0.0f;
}

/* one row of x -> limbs xb (nch * 384 bytes), group sums xg (G), chunk factors xd (nch) */
static void prep_limb_row(const el_qf_info *q, const float *x, uint8_t *xb, float *xg, float *xd) {
    const int64_t k = q->k, g = q->g, kg = q->G * q->g;
    memset(xg, 0, sizeof(float) * (size_t)q->G);
    for (int64_t c = 0; c < q->nch; c++) {
        const int64_t e0 = c * 128;
        __m256 v[16];
        const float d = load_chunk(x, e0, k, 22, v); /* 0: the chunk is all zero */
        xd[c] = d;
        __m256i n[16], gs = _mm256_setzero_si256();
        for (int t = 0; t < 16; t++) {
            n[t] = _mm256_cvtps_epi32(v[t]); /* RNE */
            if (d > 0 && e0 + 8 * t < kg) {  /* g is a multiple of 8 */
                gs = _mm256_add_epi32(gs, n[t]);
                if ((8 * t + 8) % g == 0 || t == 15) {
                    xg[(e0 + 8 * t) / g] += (float)el_avx2_hsum_epi32(gs) * d;
                    gs = _mm256_setzero_si256();
                }
            }
        }
        for (int p = 0; p < 4; p++) { /* elements 32 p .. 32 p + 31 */
            __m256i l0[4], l1[4], l2[4];
            for (int i = 0; i < 4; i++) {
                const __m256i h = n[4 * p + i];
                l0[i] = _mm256_srai_epi32(_mm256_slli_epi32(h, 24), 24);
                const __m256i r1 = _mm256_srai_epi32(_mm256_sub_epi32(h, l0[i]), 8);
                l1[i] = _mm256_srai_epi32(_mm256_slli_epi32(r1, 24), 24);
                l2[i] = _mm256_srai_epi32(_mm256_sub_epi32(r1, l1[i]), 8);
            }
            uint8_t *o = xb + c * 384 + p * 16;
            store_even_odd(l0, o, o + 64);
            store_even_odd(l1, o + 128, o + 192);
            store_even_odd(l2, o + 256, o + 320);
        }
    }
}

/* e4m3 round trip of x / act_scale for n values */
static void prep_e4m3(const el_qf_info *q, const float *x, int64_t n, float *out) {
    const __m256 inv = _mm256_set1_ps(q->inv);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, e4m3_round(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv)));
    if (i < n) {
        float t[8];
        _mm256_storeu_ps(t, e4m3_round(_mm256_mul_ps(el_avx2_load_ps_n(x + i, n - i), inv)));
        memcpy(out + i, t, sizeof(float) * (size_t)(n - i));
    }
}

/* w4a16 prefill: x per chunk of 128 as int16 rne(x / d) (zero past k), d = 2^(e - 15) from the chunk's
 * max |x| < 2^e (error <= d / 2 per element, about 2^-16 of the max) */
static void prep_w4p_row(const el_qf_info *q, const float *x, int16_t *xq, float *xd) {
    for (int64_t c = 0; c < q->nch; c++) {
        __m256 v[16];
        xd[c] = load_chunk(x, c * 128, q->k, 15, v);
        for (int t = 0; t < 16; t += 2) { /* |x / d| <= 2^15: the saturating pack clips 2^15 to 2^15 - 1 */
            const __m256i lo = _mm256_cvtps_epi32(v[t]), hi = _mm256_cvtps_epi32(v[t + 1]);
            const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
            _mm256_storeu_si256((__m256i *)(xq + c * 128 + 8 * t), p);
        }
    }
}

void el_qf_prep_avx2(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep) {
    if (q->fmt == EL_QF_FMT_FP8) {
        if (q->act) prep_e4m3(q, x + i0 * q->k, (i1 - i0) * q->k, (float *)prep + i0 * q->k);
        return;
    }
    if (m > EL_QF_MDEC) {
        for (int64_t i = i0; i < i1; i++)
            prep_w4p_row(q, x + i * q->k, (int16_t *)prep + i * q->kx,
                         (float *)((uint8_t *)prep + q->xb_bytes) + i * q->nch);
        return;
    }
    uint8_t *xb = prep;
    float *xs = (float *)(xb + q->xb_bytes);
    for (int64_t i = i0; i < i1; i++)
        prep_limb_row(q, x + i * q->k, xb + i * q->ldx, xs + i * q->G, xs + m * q->G + i * q->nch);
}

/* ---- decode: w4a16 / nvfp4 --------------------------------------------------------------------- */

typedef struct kc {
    __m256i nvtab;   /* nvfp4: code -> 2 e2m1 + 12 (bytes, both 128-bit halves)      */
    __m256i sidx[2]; /* per-lane group scales (g <= 64): lane l of half h -> entry    */
    float sfac;      /* nvfp4: the global scale * 256 / 2 (e4m3 via f16; 2 e2m1), else 1 */
    int64_t gpc;     /* groups per chunk (g <= 128), else 0                             */
    int64_t cpg;     /* chunks per group (g >= 128), else 0                             */
} kc;

/* 8 scale entries of row j from entry e (w4a16 f16, nvfp4 e4m3 * sfac), zero past the row's G */
AI __m256 scales8(const el_qf_info *q, const kc *K, int64_t j, int64_t e, const int FMT, const int SAFE) {
    /* SAFE = 0: 8 entries read as they are (those past the chunk's own are not used: the caller's chunk is
     * not the row's last, and the reads stay inside the layout, whose quants follow the scales); SAFE = 1:
     * through a zero-padded copy (no function call in the hot loop otherwise: it would spill the tile) */
    const int64_t nv = SAFE ? q->G - e : 8;
    if (FMT == EL_QF_FMT_NV4) {
        const uint8_t *s = q->sc + j * q->G + e;
        __m128i b;
        if (nv >= 8) {
            b = _mm_loadl_epi64((const __m128i *)s);
        } else {
            uint8_t t[8] = {0};
            memcpy(t, s, (size_t)nv);
            b = _mm_loadl_epi64((const __m128i *)t);
        }
        return _mm256_mul_ps(el_avx2_e4m3x8(b), _mm256_set1_ps(K->sfac));
    }
    const uint16_t *s = (const uint16_t *)q->sc + j * q->G + e;
    if (nv >= 8) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)s));
    uint16_t t[8] = {0};
    memcpy(t, s, sizeof(uint16_t) * (size_t)nv);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t));
}

/* -sum_g s_g z_g X_g for row j and MR rows of x (group sums xg, stride G) */
AI void zero_corr(const el_qf_info *q, const kc *K, int64_t j, const float *xg, const int MR, const int FMT,
                  float *corr) {
    const int64_t G = q->G;
    const uint8_t *zs = q->zs ? q->zs + j * G : NULL;
    __m256 acc[4];
    for (int i = 0; i < MR; i++)
        acc[i] = _mm256_setzero_ps();
    for (int64_t e = 0; e < G; e += 8) {
        __m256 sz = scales8(q, K, j, e, FMT, 1);
        if (FMT == EL_QF_FMT_NV4)
            sz = _mm256_mul_ps(sz, _mm256_set1_ps(12.0f));
        else if (!zs)
            sz = _mm256_mul_ps(sz, _mm256_set1_ps(8.0f));
        else {
            uint8_t t[8] = {0};
            memcpy(t, zs + e, (size_t)(G - e < 8 ? G - e : 8));
            sz = _mm256_mul_ps(sz,
                               _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)t))));
        }
        for (int i = 0; i < MR; i++)
            acc[i] = _mm256_fmadd_ps(sz, el_avx2_load_ps_n(xg + i * G + e, G - e), acc[i]);
    }
    for (int i = 0; i < MR; i++)
        corr[i] = -el_avx2_hsum_ps(acc[i]);
}

/* exact int32 limb sums -> f32: a0 + 2^8 a1 + 2^16 a2 */
AI __m256 limbs_f32(__m256i a0, __m256i a1, __m256i a2) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(a2), _mm256_set1_ps(65536.0f),
                           _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_slli_epi32(a1, 8), a0)));
}

/* int32 lane l = sum over the n (2 or 4) pairs p of the products of the bytes 4 l .. 4 l + 3 of w[p] (u8)
 * and of the 32 bytes at x + xo[p] (s8): vpdpbusd (VN) or vpmaddubsw + vpmaddwd, whose int16 sums stay
 * below 4 * 2 * 24 * 128 < 2^15 here (exact either way) */
AI __m256i limb_dot(const int VN, const int n, const __m256i *w, const uint8_t *x, const int *xo) {
    if (VN) {
        __m256i a = _mm256_setzero_si256();
        for (int p = 0; p < n; p++)
            a = el_avx2_dpbusd(a, w[p], _mm256_loadu_si256((const __m256i *)(x + xo[p])));
        return a;
    }
    __m256i s = _mm256_maddubs_epi16(w[0], _mm256_loadu_si256((const __m256i *)(x + xo[0])));
    for (int p = 1; p < n; p++)
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[p], _mm256_loadu_si256((const __m256i *)(x + xo[p]))));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

/* chunk c of row j (wr: its weights, s16: its w4a16 scales) against MR rows of x, into tot. SM: 0 one scale
 * per chunk (g >= 128), 1 per-lane scales (g <= 64, nvfp4). VN: AVX-VNNI. LAST: the row's last chunk (through
 * zero-padded copies; the other chunks load directly, with no function call in the loop). */
AI void limb_chunk(const el_qf_info *q, const kc *K, const uint8_t *xb, const float *xd, const uint8_t *wr,
                   const uint16_t *s16, int64_t j, int64_t c, const int MR, const int FMT, const int SM,
                   const int VN, const int LAST, __m256 *tot) {
    const int64_t nch = q->nch, ldx = q->ldx;
    const __m256i nm = _mm256_set1_epi8(0x0f);
    const uint8_t *wp = wr + c * 64;
    __builtin_prefetch(wp + 2048, 0, 0); /* the stream through W, ahead of the hardware prefetcher */
    __m256i w0, w1;
    if (!LAST) {
        w0 = _mm256_loadu_si256((const __m256i *)wp);
        w1 = _mm256_loadu_si256((const __m256i *)(wp + 32));
    } else {
        uint8_t t[64] = {0};
        memcpy(t, wp, (size_t)q->tailb);
        w0 = _mm256_loadu_si256((const __m256i *)t);
        w1 = _mm256_loadu_si256((const __m256i *)(t + 32));
    }
    __m256i we[2] = {_mm256_and_si256(w0, nm), _mm256_and_si256(w1, nm)};
    __m256i wo[2] = {_mm256_and_si256(_mm256_srli_epi16(w0, 4), nm),
                     _mm256_and_si256(_mm256_srli_epi16(w1, 4), nm)};
    if (FMT == EL_QF_FMT_NV4)
        for (int h = 0; h < 2; h++) {
            we[h] = _mm256_shuffle_epi8(K->nvtab, we[h]);
            wo[h] = _mm256_shuffle_epi8(K->nvtab, wo[h]);
        }
    __m256 sv[2];
    if (SM == 0) {
        sv[0] = _mm256_set1_ps(_cvtsh_ss(s16[K->cpg == 1 ? c : c / K->cpg])); /* no idiv for g = 128 */
    } else if (K->gpc == 16) {
        sv[0] = scales8(q, K, j, c * 16, FMT, LAST);
        sv[1] = scales8(q, K, j, c * 16 + 8, FMT, LAST);
    } else {
        const __m256 s = scales8(q, K, j, c * K->gpc, FMT, LAST);
        sv[0] = _mm256_permutevar8x32_ps(s, K->sidx[0]);
        sv[1] = _mm256_permutevar8x32_ps(s, K->sidx[1]);
    }
    for (int i = 0; i < MR; i++) {
        const uint8_t *xp = xb + i * ldx + c * 384;
        const __m256 d = _mm256_set1_ps(xd[i * nch + c]);
        if (SM == 0) { /* both halves in one group */
            const __m256i wv[4] = {we[0], we[1], wo[0], wo[1]};
            const int xo[4] = {0, 32, 64, 96};
            __m256i a[3];
            for (int l = 0; l < 3; l++)
                a[l] = limb_dot(VN, 4, wv, xp + 128 * l, xo);
            tot[i] = _mm256_fmadd_ps(limbs_f32(a[0], a[1], a[2]), _mm256_mul_ps(sv[0], d), tot[i]);
        } else {
            for (int h = 0; h < 2; h++) {
                const __m256i wv[2] = {we[h], wo[h]};
                const int xo[2] = {32 * h, 64 + 32 * h};
                __m256i a[3];
                for (int l = 0; l < 3; l++)
                    a[l] = limb_dot(VN, 2, wv, xp + 128 * l, xo);
                tot[i] = _mm256_fmadd_ps(limbs_f32(a[0], a[1], a[2]), _mm256_mul_ps(sv[h], d), tot[i]);
            }
        }
    }
}

/* one row j of W against MR rows of x: out[i] = sum_c W[j, c] x[i, c] (+ bias) */
AI void limb_row(const el_qf_info *q, const kc *K, const uint8_t *xb, const float *xs, int64_t m, int64_t j,
                 const int MR, const int FMT, const int SM, const int VN, const float *bias, float *y,
                 int64_t ldy) {
    const int64_t nch = q->nch;
    const float *xg = xs, *xd = xs + m * q->G;
    const uint8_t *wr = q->qs + j * q->rowb;
    const uint16_t *s16 = (const uint16_t *)q->sc + j * q->G;
    __m256 tot[4];
    for (int i = 0; i < MR; i++)
        tot[i] = _mm256_setzero_ps();
    for (int64_t c = 0; c < nch - 1; c++)
        limb_chunk(q, K, xb, xd, wr, s16, j, c, MR, FMT, SM, VN, 0, tot);
    limb_chunk(q, K, xb, xd, wr, s16, j, nch - 1, MR, FMT, SM, VN, 1, tot);
    float corr[4];
    zero_corr(q, K, j, xg, MR, FMT, corr);
    for (int i = 0; i < MR; i++) {
        const float v = el_avx2_hsum_ps(tot[i]) + corr[i];
        y[i * ldy + j] = bias ? v + bias[j] : v;
    }
}

AI void limb_rows(const el_qf_info *q, const kc *K, const uint8_t *xb, const float *xs, int64_t m, int64_t n0,
                  int64_t n1, const int MR, const int VN, const float *bias, float *y, int64_t ldy) {
    const bool sm0 = q->fmt == EL_QF_FMT_W4 && q->g >= 128;
    for (int64_t j = n0; j < n1; j++) {
        if (q->fmt == EL_QF_FMT_NV4)
            limb_row(q, K, xb, xs, m, j, MR, EL_QF_FMT_NV4, 1, VN, bias, y, ldy);
        else if (sm0)
            limb_row(q, K, xb, xs, m, j, MR, EL_QF_FMT_W4, 0, VN, bias, y, ldy);
        else
            limb_row(q, K, xb, xs, m, j, MR, EL_QF_FMT_W4, 1, VN, bias, y, ldy);
    }
}

AI void limb_rows_m(const el_qf_info *q, const kc *K, const uint8_t *xb, const float *xs, int64_t m,
                    int64_t n0, int64_t n1, const int VN, const float *bias, float *y, int64_t ldy) {
    switch (m) {
    case 4:
        limb_rows(q, K, xb, xs, m, n0, n1, 4, VN, bias, y, ldy);
        break;
    case 3:
        limb_rows(q, K, xb, xs, m, n0, n1, 3, VN, bias, y, ldy);
        break;
    case 2:
        limb_rows(q, K, xb, xs, m, n0, n1, 2, VN, bias, y, ldy);
        break;
    default:
        limb_rows(q, K, xb, xs, m, n0, n1, 1, VN, bias, y, ldy);
        break;
    }
}

static void limb_matmul(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1,
                        const float *bias, float *y, int64_t ldy) {
    kc K;
    memset(&K, 0, sizeof K);
    uint8_t tab[32];
    for (int i = 0; i < 32; i++)
        tab[i] = (uint8_t)(2.0f * el_e2m1_to_f32((uint8_t)(i & 15)) + 12.0f);
    K.nvtab = _mm256_loadu_si256((const __m256i *)tab);
    K.sfac = q->fmt == EL_QF_FMT_NV4 ? q->gscale * 128.0f : 1.0f;
    K.gpc = q->g <= 128 ? 128 / q->g : 0;
    K.cpg = q->g >= 128 ? q->g / 128 : 0;
    if (K.gpc && K.gpc < 16) {
        int32_t ix[2][8];
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 8; l++)
                ix[h][l] = (int32_t)((h * 64 + 8 * l) / q->g);
        K.sidx[0] = _mm256_loadu_si256((const __m256i *)ix[0]);
        K.sidx[1] = _mm256_loadu_si256((const __m256i *)ix[1]);
    }
    const uint8_t *xb = prep;
    const float *xs = (const float *)(xb + q->xb_bytes);
    if (el_avx2_vnni())
        limb_rows_m(q, &K, xb, xs, m, n0, n1, 1, bias, y, ldy);
    else
        limb_rows_m(q, &K, xb, xs, m, n0, n1, 0, bias, y, ldy);
}

/* ---- decode: fp8 -------------------------------------------------------------------------------- */

/* 16 e4m3 codes -> two vectors of f32 values / 256 */
AI void e4m3x16(__m128i b, __m256 *lo, __m256 *hi) { /* el_avx2_e4m3x8 on 16 codes at once */
    const __m256i h =
        _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7), _mm256_set1_epi16((short)0xbf80));
    *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
}

/* acc[i][u % NA] += 16 e4m3 codes (b, as value / 256) x 16 floats of x row i (stride k; n valid, <= 16) */
AI void fp8_fma16(__m128i b, const float *x, int64_t k, int64_t n, const int MR, const int NA, const int u0,
                  __m256 (*acc)[4]) {
    __m256 lo, hi;
    e4m3x16(b, &lo, &hi);
    for (int i = 0; i < MR; i++) {
        const __m256 x0 = n >= 16 ? _mm256_loadu_ps(x + i * k) : el_avx2_load_ps_n(x + i * k, n);
        const __m256 x1 = n >= 16 ? _mm256_loadu_ps(x + i * k + 8) : el_avx2_load_ps_n(x + i * k + 8, n - 8);
        acc[i][u0 % NA] = _mm256_fmadd_ps(lo, x0, acc[i][u0 % NA]);
        acc[i][(u0 + 1) % NA] = _mm256_fmadd_ps(hi, x1, acc[i][(u0 + 1) % NA]);
    }
}

/* NA independent FMA chains per row of x (4 for m <= 2: one chain's latency would bound the loop) */
AI void fp8_row(const el_qf_info *q, const float *x, int64_t j, const int MR, const float *bias, float *y,
                int64_t ldy) {
    const int NA = MR <= 2 ? 4 : 2;
    const int64_t k = q->k;
    const uint8_t *wr = q->qs + j * q->rowb;
    __m256 acc[4][4];
    for (int i = 0; i < MR; i++)
        for (int u = 0; u < 4; u++)
            acc[i][u] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 32 <= k; c += 32) {
        fp8_fma16(_mm_loadu_si128((const __m128i *)(wr + c)), x + c, k, 16, MR, NA, 0, acc);
        fp8_fma16(_mm_loadu_si128((const __m128i *)(wr + c + 16)), x + c + 16, k, 16, MR, NA, 2, acc);
    }
    for (; c < k; c += 16) {
        const int64_t n = k - c < 16 ? k - c : 16;
        uint8_t t[16] = {0};
        memcpy(t, wr + c, (size_t)n);
        fp8_fma16(_mm_loadu_si128((const __m128i *)t), x + c, k, n, MR, NA, 0, acc);
    }
    const float rs = ((const float *)q->sc)[j] * q->post * 256.0f;
    for (int i = 0; i < MR; i++) {
        __m256 s = acc[i][0];
        for (int u = 1; u < NA; u++)
            s = _mm256_add_ps(s, acc[i][u]);
        const float v = el_avx2_hsum_ps(s) * rs;
        y[i * ldy + j] = bias ? v + bias[j] : v;
    }
}

static void fp8_matmul(const el_qf_info *q, const float *x, int64_t m, int64_t n0, int64_t n1,
                       const float *bias, float *y, int64_t ldy) {
    for (int64_t j = n0; j < n1; j++) {
        switch (m) {
        case 4:
            fp8_row(q, x, j, 4, bias, y, ldy);
            break;
        case 3:
            fp8_row(q, x, j, 3, bias, y, ldy);
            break;
        case 2:
            fp8_row(q, x, j, 2, bias, y, ldy);
            break;
        default:
            fp8_row(q, x, j, 1, bias, y, ldy);
            break;
        }
    }
}

/* ---- prefill: dequantize blocks of rows, then the dense kernel -------------------------------------- */

/* Rows j0 .. j0 + 15 of W (zero rows past n1) expanded to the int16 tile: per pair p of elements (weight
 * byte p of each row) 16 dwords (q0 - z) | (q1 - z) << 16 (nvfp4: 2 e2m1 each), rows side by side; sc: per
 * segment the 16 rows' f32 group scales (0 past the row's groups and for the zero rows). */
static void w4p_expand(const el_qf_info *q, int64_t j0, int64_t n1, int32_t *tile, float *sc) {
    const int64_t np = q->kx / 2, S = w4p_seg(q), nseg = q->kx / S, bpg = q->g / 2;
    const bool nv = q->fmt == EL_QF_FMT_NV4; /* 2 e2m1 (-12..12) with scale e4m3 * global / 2, no offset */
    int val[16];
    for (int i = 0; i < 16; i++)
        val[i] = nv ? (int)(2.0f * el_e2m1_to_f32((uint8_t)i)) : i;
    for (int r = 0; r < W4P_ROWS; r++) {
        const int64_t j = j0 + r;
        if (j >= n1) {
            for (int64_t p = 0; p < np; p++)
                tile[p * W4P_ROWS + r] = 0;
            for (int64_t s = 0; s < nseg; s++)
                sc[s * W4P_ROWS + r] = 0.0f;
            continue;
        }
        const uint8_t *wr = q->qs + j * q->rowb, *zs = q->zs ? q->zs + j * q->G : NULL;
        const uint16_t *s16 = (const uint16_t *)q->sc + j * q->G;
        for (int64_t gi = 0; gi < q->G; gi++) {
            const int z = nv ? 0 : zs ? zs[gi] : 8;
            const int64_t p1 = (gi + 1) * bpg;
            for (int64_t p = gi * bpg; p < p1; p++) {
                const int lo = val[wr[p] & 15] - z, hi = val[wr[p] >> 4] - z;
                tile[p * W4P_ROWS + r] = (int32_t)((uint32_t)(uint16_t)(int16_t)lo | ((uint32_t)hi << 16));
            }
        }
        for (int64_t p = q->rowb; p < np; p++)
            tile[p * W4P_ROWS + r] = 0;
        for (int64_t s = 0; s < nseg; s++) {
            const int64_t gi = s * S / q->g;
            const float f = nv ? el_e4m3_to_f32(q->sc[j * q->G + gi]) * q->gscale * 0.5f : _cvtsh_ss(s16[gi]);
            sc[s * W4P_ROWS + r] = gi < q->G ? f : 0.0f;
        }
    }
}

/* acc += pairwise int16 products of a and b summed per dword (AVX-VNNI vpdpwssd when VN, VEX encoded) */
AI __m256i dpwssd(const int VN, __m256i acc, __m256i a, __m256i b) {
    if (VN) {
        __asm__("%{vex%} vpdpwssd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
        return acc;
    }
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

/* T (<= 6) tokens from t0 over the expanded tile: y[t, j0 + r] for r < nr */
AI void w4p_tokens(const el_qf_info *q, const int32_t *tile, const float *sc, const int16_t *xq,
                   const float *xd, int64_t t0, const int T, const int VN, int64_t j0, int nr,
                   const float *bias, float *y, int64_t ldy) {
    const int64_t S = w4p_seg(q), nseg = q->kx / S, kx = q->kx;
    float facc[6][W4P_ROWS];
    for (int t = 0; t < T; t++)
        for (int r = 0; r < W4P_ROWS; r++)
            facc[t][r] = 0.0f;
    for (int64_t s = 0; s < nseg; s++) {
        __m256i acc[6][2];
        for (int t = 0; t < T; t++)
            acc[t][0] = acc[t][1] = _mm256_setzero_si256();
        const int64_t p0 = s * S / 2, p1 = p0 + S / 2;
        for (int64_t p = p0; p < p1; p++) {
            const __m256i w0 = _mm256_load_si256((const __m256i *)(tile + p * W4P_ROWS)),
                          w1 = _mm256_load_si256((const __m256i *)(tile + p * W4P_ROWS + 8));
            for (int t = 0; t < T; t++) {
                int32_t xv;
                memcpy(&xv, xq + (t0 + t) * kx + 2 * p, 4);
                const __m256i xb = _mm256_set1_epi32(xv);
                acc[t][0] = dpwssd(VN, acc[t][0], w0, xb);
                acc[t][1] = dpwssd(VN, acc[t][1], w1, xb);
            }
        }
        const int64_t c = s * S / 128;
        const __m256 s0 = _mm256_loadu_ps(sc + s * W4P_ROWS), s1 = _mm256_loadu_ps(sc + s * W4P_ROWS + 8);
        for (int t = 0; t < T; t++) {
            const __m256 d = _mm256_set1_ps(xd[(t0 + t) * q->nch + c]);
            _mm256_storeu_ps(facc[t], _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][0]), _mm256_mul_ps(s0, d),
                                                      _mm256_loadu_ps(facc[t])));
            _mm256_storeu_ps(facc[t] + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][1]), _mm256_mul_ps(s1, d),
                                                          _mm256_loadu_ps(facc[t] + 8)));
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < nr; r++)
            y[(t0 + t) * ldy + j0 + r] = bias ? facc[t][r] + bias[j0 + r] : facc[t][r];
}

AI void w4p_run(const el_qf_info *q, const int32_t *tile, const float *sc, const int16_t *xq, const float *xd,
                int64_t m, const int VN, int64_t j0, int nr, const float *bias, float *y, int64_t ldy) {
    int64_t t = 0; /* 6 tokens x 16 rows: 12 accumulators (4 tokens without AVX-VNNI measured no faster) */
    for (; t + 6 <= m; t += 6)
        w4p_tokens(q, tile, sc, xq, xd, t, 6, VN, j0, nr, bias, y, ldy);
    switch (m - t) {
    case 5:
        w4p_tokens(q, tile, sc, xq, xd, t, 5, VN, j0, nr, bias, y, ldy);
        break;
    case 4:
        w4p_tokens(q, tile, sc, xq, xd, t, 4, VN, j0, nr, bias, y, ldy);
        break;
    case 3:
        w4p_tokens(q, tile, sc, xq, xd, t, 3, VN, j0, nr, bias, y, ldy);
        break;
    case 2:
        w4p_tokens(q, tile, sc, xq, xd, t, 2, VN, j0, nr, bias, y, ldy);
        break;
    case 1:
        w4p_tokens(q, tile, sc, xq, xd, t, 1, VN, j0, nr, bias, y, ldy);
        break;
    default:
        break;
    }
}

/* w4a16 prefill: tiles of 16 rows of W expanded once to int16 (q - z), exact int32 sums per segment
 * (vpmaddwd / vpdpwssd: 16 MACs per instruction) over all m tokens, f32 scales per group and chunk */
static void w4p_gemm(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1,
                     const float *bias, float *y, int64_t ldy, void *scr) {
    int32_t *tile = scr;
    float *sc = (float *)(tile + W4P_ROWS * q->kx / 2);
    const int16_t *xq = prep;
    const float *xd = (const float *)((const uint8_t *)prep + q->xb_bytes);
    const bool vn = el_avx2_vnni();
    for (int64_t j = n0; j < n1; j += W4P_ROWS) {
        const int nr = n1 - j < W4P_ROWS ? (int)(n1 - j) : W4P_ROWS;
        w4p_expand(q, j, n1, tile, sc);
        if (vn)
            w4p_run(q, tile, sc, xq, xd, m, 1, j, nr, bias, y, ldy);
        else
            w4p_run(q, tile, sc, xq, xd, m, 0, j, nr, bias, y, ldy);
    }
}

/* fp8 prefill: rows j0 .. j0 + 15 of W (zero rows past n1) as f32 e4m3 values / 256 (exact), per element
 * c the 16 rows side by side (8 x 8 transposes of the converted rows) */
static void fp8p_expand(const el_qf_info *q, int64_t j0, int64_t n1, float *tile) {
    const int64_t k = q->k, k8 = (k + 7) & ~(int64_t)7;
    for (int rb = 0; rb < W4P_ROWS; rb += 8)
        for (int64_t c = 0; c < k8; c += 8) {
            __m256i rows[8], o[8];
            for (int r = 0; r < 8; r++) {
                const int64_t j = j0 + rb + r;
                uint8_t t[8] = {0};
                if (j < n1) memcpy(t, q->qs + j * q->rowb + c, (size_t)(k - c < 8 ? k - c : 8));
                rows[r] = _mm256_castps_si256(el_avx2_e4m3x8(_mm_loadl_epi64((const __m128i *)t)));
            }
            el_avx2_transpose8x8(rows, o);
            for (int i = 0; i < 8; i++)
                _mm256_store_si256((__m256i *)(void *)(tile + (c + i) * W4P_ROWS + rb), o[i]);
        }
}

/* T (<= 6) rows of x from t0 over the tile: 12 f32 FMA chains along k, then the row scales (x 256) */
AI void fp8p_tokens(const el_qf_info *q, const float *tile, const float *x, int64_t t0, const int T,
                    int64_t j0, int nr, const float *bias, float *y, int64_t ldy) {
    const int64_t k = q->k;
    const float *x0 = x + t0 * k;
    /* named accumulators: with an array GCC 12 stored all 12 to the stack on every step (2x slower) */
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00,
           a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
#define FP8P_STEP(t, v0, v1)                                                                                 \
    if (T > t) {                                                                                             \
        const __m256 xb = _mm256_broadcast_ss(x0 + t * k + c);                                               \
        v0 = _mm256_fmadd_ps(w0, xb, v0);                                                                    \
        v1 = _mm256_fmadd_ps(w1, xb, v1);                                                                    \
    }
    for (int64_t c = 0; c < k; c++) {
        const __m256 w0 = _mm256_load_ps(tile + c * W4P_ROWS), w1 = _mm256_load_ps(tile + c * W4P_ROWS + 8);
        FP8P_STEP(0, a00, a01)
        FP8P_STEP(1, a10, a11)
        FP8P_STEP(2, a20, a21)
        FP8P_STEP(3, a30, a31)
        FP8P_STEP(4, a40, a41)
        FP8P_STEP(5, a50, a51)
    }
#undef FP8P_STEP
    const __m256 acc[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
    float rs[W4P_ROWS], o[W4P_ROWS];
    for (int r = 0; r < W4P_ROWS; r++)
        rs[r] = r < nr ? ((const float *)q->sc)[j0 + r] * q->post * 256.0f : 0.0f;
    for (int t = 0; t < T; t++) {
        _mm256_storeu_ps(o, _mm256_mul_ps(acc[t][0], _mm256_loadu_ps(rs)));
        _mm256_storeu_ps(o + 8, _mm256_mul_ps(acc[t][1], _mm256_loadu_ps(rs + 8)));
        float *yt = y + (t0 + t) * ldy + j0;
        for (int r = 0; r < nr; r++)
            yt[r] = bias ? o[r] + bias[j0 + r] : o[r];
    }
}

/* fp8 prefill: tiles of 16 rows of W expanded once to f32, register tiles of 6 rows of x x 16 rows of W */
static void fp8_gemm(const el_qf_info *q, const float *x, int64_t m, int64_t n0, int64_t n1,
                     const float *bias, float *y, int64_t ldy, float *tile) {
    for (int64_t j = n0; j < n1; j += W4P_ROWS) {
        const int nr = n1 - j < W4P_ROWS ? (int)(n1 - j) : W4P_ROWS;
        fp8p_expand(q, j, n1, tile);
        int64_t t = 0;
        for (; t + 6 <= m; t += 6)
            fp8p_tokens(q, tile, x, t, 6, j, nr, bias, y, ldy);
        switch (m - t) {
        case 5:
            fp8p_tokens(q, tile, x, t, 5, j, nr, bias, y, ldy);
            break;
        case 4:
            fp8p_tokens(q, tile, x, t, 4, j, nr, bias, y, ldy);
            break;
        case 3:
            fp8p_tokens(q, tile, x, t, 3, j, nr, bias, y, ldy);
            break;
        case 2:
            fp8p_tokens(q, tile, x, t, 2, j, nr, bias, y, ldy);
            break;
        case 1:
            fp8p_tokens(q, tile, x, t, 1, j, nr, bias, y, ldy);
            break;
        default:
            break;
        }
    }
}

void el_qf_matmul_avx2(const el_qf_info *q, const float *x, const void *prep, int64_t m, int64_t n0,
                       int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    const float *xf = q->fmt == EL_QF_FMT_FP8 && q->act ? (const float *)prep : x;
    void *scr = (void *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    if (m > EL_QF_MDEC && q->fmt != EL_QF_FMT_FP8)
        w4p_gemm(q, prep, m, n0, n1, bias, y, ldy, scr);
    else if (m > EL_QF_MDEC)
        fp8_gemm(q, xf, m, n0, n1, bias, y, ldy, scr);
    else if (q->fmt == EL_QF_FMT_FP8)
        fp8_matmul(q, xf, m, n0, n1, bias, y, ldy);
    else
        limb_matmul(q, prep, m, n0, n1, bias, y, ldy);
}

#endif
