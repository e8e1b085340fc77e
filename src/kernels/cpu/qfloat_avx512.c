/* qfloat_avx512.c - AVX-512 (BF16, VNNI) kernels for the weight-only / float-activation quantized
 * formats nvfp4, fp8 and (prefill only) w4a16 (layouts in kernels/quant.h, prepared activations in
 * qfloat_impl.h; w4a16 decode: qfloat_w4dec_avx512.c).
 *
 * Decode (m <= EL_QF_MDEC):
 *   x split once per call into two bf16 parts, hi = bf16(x) and lo = bf16(x - hi) (~2^-16 relative; bf16
 *     alone gives an NMSE of ~5e-6, too close to 1e-5); the weight values are exact in bf16 (e2m1 from a
 *     16-entry vpermw table on the nibbles of 16-bit words, e4m3 by shifts with subnormals from an 8-entry
 *     table), so vdpbf16ps (hi and lo) gives exact products with f32 sums. fp8 with static activations
 *     needs no lo part: the e4m3 activations are exact in bf16.
 *   The f32 lanes of an nvfp4 chunk hold elements 8 l .. 8 l + 7, so a lane never straddles a block of 16:
 *   block scales are applied per lane with one FMA per chunk.
 *   Tiles of MR (<= 4) rows of x by NR (8, 4 or 1) rows of W (one W load and expansion for all MR rows).
 * Prefill (m > EL_QF_MDEC):
 *   w4a16: w4p_gemm below. x per row and chunk of 128 as int16 (rne(x * 32767 / max |x|), error <= 2^-16
 *     of the chunk's max |x|); 64 rows of W expanded once into scratch as int16 q - z, per pair of elements
 *     one dword per row (16 rows in the 16 lanes of a vector), so that one vpdpwssd with a broadcast pair of
 *     x makes 32 products for 16 rows; register tiles of 6 rows of x by 64 rows of W (24 int32 sums),
 *     converted to f32 once per group (x scale * group scale). ~86% of the vpdpwssd issue rate.
 *   fp8 / nvfp4: bfp_gemm below, the same tile scheme on vdpbf16ps: x as bf16 hi + lo per row (fp8 with
 *     static activations: the e4m3 values alone), natural order; 64 rows of W expanded once into scratch
 *     as exact bf16 values (e4m3; e2m1 x e4m3 block scale: <= 6 significant bits), per pair of elements
 *     one dword per row; register tiles of 6 rows of x by 64 rows of W: per pair 4 weight vectors and a
 *     broadcast hi (and lo) pair of x per row feed 24 (48) vdpbf16ps into 24 f32 sums; row / global scale
 *     and bias at the end. ~88% of the vdpbf16ps issue rate (16 useful MACs per instruction with lo). */
#include "kernels/cpu/qfloat_avx512_util.h"

#if defined(__x86_64__)
#include <math.h>

static uint16_t bf16_bits(float f) { /* exact values only */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* acc += pairwise bf16 dot of a and b. Inline asm: with the intrinsic GCC 12 copies the accumulator
 * before every vdpbf16ps (a register move per instruction in the hot loops). */
AI VF dp(VF acc, VI a, VI b) {
    __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* ---- prepare ------------------------------------------------------------------------------------- */

/* f32 -> the f32 value of its e4m3 rounding (RNE, saturating at 448), as el_f32_to_e4m3 */
AI VF e4m3_round(VF v) {
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-448.0f)), _mm512_set1_ps(448.0f));
    const VF a = _mm512_abs_ps(v);
    const VI b = _mm512_castps_si512(a);
    const VI lsb = _mm512_and_si512(_mm512_srli_epi32(b, 20), _mm512_set1_epi32(1));
    const VI rn = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7ffff)), lsb),
                                   _mm512_set1_epi32((int)0xfff00000u));
    const VF sub = _mm512_mul_ps(_mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(512.0f)),
                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                 _mm512_set1_ps(1.0f / 512.0f));
    const __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.015625f), _CMP_LT_OQ);
    const VF r = _mm512_mask_blend_ps(small, _mm512_castsi512_ps(rn), sub);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(r), _mm512_castps_si512(v),
                                                         _mm512_set1_epi32((int)0x80000000u), 0xf8));
}

AI VI to_bf16(VF lo, VF hi) {
    return (VI)_mm512_cvtne2ps_pbh(hi, lo);
} /* words 0..15 from lo */

/* x (32 floats from s) -> hi = bf16(x) and lo = bf16(x - hi) (x = hi + lo to ~2^-16 relative) */
AI void split32(const float *x, int64_t s, int64_t k, VI *hi, VI *lo) {
    const VF a = ld16(x, s, k), b = ld16(x, s + 16, k);
    const VI h = to_bf16(a, b);
    const VF ha =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
    const VF hb =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
    *hi = h;
    *lo = to_bf16(_mm512_sub_ps(a, ha), _mm512_sub_ps(b, hb));
}

/* v[t] word w = chunk element 32 t + w  ->  o[r] word i = chunk element 4 i + r */
AI void nib_perm(const VI *v, VI *o) {
    /* P: words rr * 16 + i (i < 16) = element 4 i + r, r = rr (a) or rr + 2 (b), from v[0..1]; Q the same
     * for i + 16 from v[2..3]; then o[r] = [first 16 of P, first 16 of Q] or the second halves */
    static const uint16_t ia[32] = {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60,
                                    1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61};
    const VI idx_a = _mm512_loadu_si512(ia), idx_b = _mm512_add_epi16(idx_a, _mm512_set1_epi16(2));
    const VI pa = _mm512_permutex2var_epi16(v[0], idx_a, v[1]),
             pb = _mm512_permutex2var_epi16(v[0], idx_b, v[1]);
    const VI qa = _mm512_permutex2var_epi16(v[2], idx_a, v[3]),
             qb = _mm512_permutex2var_epi16(v[2], idx_b, v[3]);
    o[0] = _mm512_shuffle_i64x2(pa, qa, _MM_SHUFFLE(1, 0, 1, 0));
    o[1] = _mm512_shuffle_i64x2(pa, qa, _MM_SHUFFLE(3, 2, 3, 2));
    o[2] = _mm512_shuffle_i64x2(pb, qb, _MM_SHUFFLE(1, 0, 1, 0));
    o[3] = _mm512_shuffle_i64x2(pb, qb, _MM_SHUFFLE(3, 2, 3, 2));
}

/* nvfp4, per chunk of 128: 128 hi words then 128 lo words, both permuted */
static void prep_nib_row(const el_qf_info *q, const float *x, uint16_t *xb) {
    for (int64_t c = 0; c < q->nch; c++) {
        VI vh[4], vl[4], oh[4], ol[4];
        for (int t = 0; t < 4; t++)
            split32(x, c * 128 + 32 * t, q->k, &vh[t], &vl[t]);
        nib_perm(vh, oh);
        nib_perm(vl, ol);
        uint16_t *o = xb + c * 256;
        for (int r = 0; r < 4; r++) {
            _mm512_storeu_si512(o + 32 * r, oh[r]);
            _mm512_storeu_si512(o + 128 + 32 * r, ol[r]);
        }
    }
}

/* fp8, and nvfp4 prefill: per chunk of 32 (natural order, kx / 32 chunks): static activations (fp8): the
 * e4m3 values (exact in bf16); else 32 hi then 32 lo words */
static void prep_bf16_row(const el_qf_info *q, const float *x, uint16_t *xb) {
    const int64_t k = q->k;
    const VF inv = _mm512_set1_ps(q->inv);
    for (int64_t c = 0; c < q->kx / 32; c++) {
        if (q->act) {
            const VF a = e4m3_round(_mm512_mul_ps(ld16(x, c * 32, k), inv));
            const VF b = e4m3_round(_mm512_mul_ps(ld16(x, c * 32 + 16, k), inv));
            _mm512_storeu_si512(xb + c * 32, to_bf16(a, b));
        } else {
            VI h, l;
            split32(x, c * 32, k, &h, &l);
            _mm512_storeu_si512(xb + c * 64, h);
            _mm512_storeu_si512(xb + c * 64 + 32, l);
        }
    }
}

/* w4a16 prefill: row x (k) -> int16 xq (kx, zero past k), per chunk of 128 xq = rne(x * 32767 / a) with
 * a = max |x| of the chunk (q16_chunk; saturated to +-32767) and xd[c] = a / 32767. */
static void prep_w4p_row(const el_qf_info *q, const float *x, int16_t *xq, float *xd) {
    for (int64_t c = 0; c < q->nch; c++) {
        VI n[8];
        xd[c] = q16_chunk(x, c * 128, q->k, 32767.0f, n) / 32767.0f;
        for (int t = 0; t < 8; t++)
            _mm256_storeu_si256((__m256i *)(xq + c * 128 + 16 * t), _mm512_cvtsepi32_epi16(n[t]));
    }
}

void el_qf_prep_avx512(const el_qf_info *q, const float *x, int64_t m, int64_t i0, int64_t i1, void *prep) {
    if (m > EL_QF_MDEC && q->fmt == EL_QF_FMT_W4) {
        float *xd = (float *)((char *)prep + q->xb_bytes);
        for (int64_t i = i0; i < i1; i++)
            prep_w4p_row(q, x + i * q->k, (int16_t *)prep + i * q->kx, xd + i * q->nch);
        return;
    }
    uint16_t *xb = prep;
    for (int64_t i = i0; i < i1; i++) {
        if (q->fmt == EL_QF_FMT_FP8 || m > EL_QF_MDEC)
            prep_bf16_row(q, x + i * q->k, xb + i * q->ldx);
        else
            prep_nib_row(q, x + i * q->k, xb + i * q->ldx);
    }
}

/* ---- matmul ------------------------------------------------------------------------------------- */

typedef struct kc {
    VI tab;                 /* nibble -> bf16 (nvfp4: e2m1; fp8: subnormals), duplicated to 32 entries */
    VI sidx;                /* lane l -> index of its group among the chunk's (l * 8 / g)              */
    __mmask64 tailm;        /* bytes of the last chunk                                                 */
    __mmask16 sfull, slast; /* scale entries of a full and of the last chunk                          */
} kc;

/* e4m3 codes in the low byte of each dword -> f32 (exact, subnormals included) */
AI VF e4m3_f32(VI e) {
    const VI nrm = _mm512_add_epi32(_mm512_slli_epi32(_mm512_and_si512(e, _mm512_set1_epi32(0x7f)), 20),
                                    _mm512_set1_epi32(120 << 23));
    const VF sub = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(e, _mm512_set1_epi32(7))),
                                 _mm512_set1_ps(1.0f / 512.0f));
    const __mmask16 sm = _mm512_testn_epi32_mask(e, _mm512_set1_epi32(0x78));
    const VF r = _mm512_mask_blend_ps(sm, _mm512_castsi512_ps(nrm), sub);
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(r), _mm512_slli_epi32(_mm512_and_si512(e, _mm512_set1_epi32(0x80)), 24)));
}
AI VF nv4_scale(const el_qf_info *q, const kc *K, int64_t j, int64_t c, bool last) {
    const __m128i b = _mm_maskz_loadu_epi8(last ? K->slast : K->sfull, q->sc + j * q->G + c * 8);
    const VF f = _mm512_mul_ps(e4m3_f32(_mm512_cvtepu8_epi32(b)), _mm512_set1_ps(q->gscale));
    return _mm512_permutexvar_ps(K->sidx, f);
}

/* nvfp4: one chunk c of NR rows of W against MR rows of x. LAST: the row's last chunk (masked). */
AI void nib_chunk(const el_qf_info *q, const kc *K, const uint16_t *xb, int64_t ldx, int64_t j, int64_t c,
                  const int MR, const int NR, const int PF, const int LAST, VF (*tot)[8]) {
    const int64_t rowb = q->rowb;
    const uint8_t *w0 = q->qs + j * rowb + c * 64;
    VI xv[2][8];
    if (MR <= 2)
        for (int i = 0; i < MR; i++)
            for (int u = 0; u < 8; u++)
                xv[i][u] = _mm512_loadu_si512(xb + i * ldx + c * 256 + u * 32);
    for (int r = 0; r < NR; r++) {
        const uint8_t *wp = w0 + r * rowb;
        if (PF) __builtin_prefetch(wp + 4 * NR * rowb, 0, 0); /* 4 tiles ahead (DRAM latency) */
        const VI wv = LAST ? _mm512_maskz_loadu_epi8(K->tailm, wp) : _mm512_loadu_si512(wp);
        VI t[4];
        t[0] = _mm512_permutexvar_epi16(wv, K->tab);
        t[1] = _mm512_permutexvar_epi16(_mm512_srli_epi16(wv, 4), K->tab);
        t[2] = _mm512_permutexvar_epi16(_mm512_srli_epi16(wv, 8), K->tab);
        t[3] = _mm512_permutexvar_epi16(_mm512_srli_epi16(wv, 12), K->tab);
        const VF s = nv4_scale(q, K, j + r, c, LAST);
        for (int i = 0; i < MR; i++) {
            const uint16_t *xp = xb + i * ldx + c * 256;
            VF a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
            for (int u = 0; u < 4; u++) {
                a = dp(a, t[u], MR <= 2 ? xv[i][u] : _mm512_loadu_si512(xp + 32 * u));
                b = dp(b, t[u], MR <= 2 ? xv[i][4 + u] : _mm512_loadu_si512(xp + 128 + 32 * u));
            }
            tot[i][r] = _mm512_fmadd_ps(_mm512_add_ps(a, b), s, tot[i][r]);
        }
    }
}

/* nvfp4: MR rows of x (prepared, stride ldx elements) by NR rows of W from row j: out[i * NR + r]. x of a
 * chunk is loaded once for the NR rows (MR <= 2). */
AI void nib_tile(const el_qf_info *q, const kc *K, const uint16_t *xb, int64_t ldx, int64_t j, const int MR,
                 const int NR, const int PF, float *out) {
    VF tot[4][8];
    for (int i = 0; i < MR; i++)
        for (int r = 0; r < NR; r++)
            tot[i][r] = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c < q->nch - 1; c++)
        nib_chunk(q, K, xb, ldx, j, c, MR, NR, PF, 0, tot);
    nib_chunk(q, K, xb, ldx, j, c, MR, NR, 0, 1, tot);
    for (int i = 0; i < MR; i++)
        for (int r = 0; r < NR; r++)
            out[i * NR + r] = _mm512_reduce_add_ps(tot[i][r]);
}

/* fp8 e4m3 codes (one per 16-bit word) -> bf16 */
AI VI e4m3_bf16(VI w, VI subtab) {
    VI t = _mm512_add_epi16(_mm512_and_si512(_mm512_slli_epi16(w, 4), _mm512_set1_epi16(0x7f0)),
                            _mm512_set1_epi16(0x3c00));
    const __mmask32 sm = _mm512_testn_epi16_mask(w, _mm512_set1_epi16(0x78));
    t = _mm512_mask_permutexvar_epi16(t, sm, w, subtab);
    return _mm512_ternarylogic_epi32(t, _mm512_slli_epi16(w, 8), _mm512_set1_epi16((short)0x8000), 0xf8);
}

AI void fp8_tile(const el_qf_info *q, const kc *K, const uint16_t *xb, int64_t ldx, int64_t j, const int MR,
                 const int NR, const int LO, const int PF, float *out) {
    VF tot[4][4];
    for (int i = 0; i < MR; i++)
        for (int r = 0; r < NR; r++)
            tot[i][r] = _mm512_setzero_ps();
    const int64_t nch = q->nch, rowb = q->rowb;
    const uint8_t *w0 = q->qs + j * rowb;
    for (int64_t c = 0; c < nch; c++) {
        const __mmask32 lm = c == nch - 1 ? (__mmask32)K->tailm : ~(__mmask32)0;
        for (int r = 0; r < NR; r++) {
            const uint8_t *wp = w0 + r * rowb + c * 32;
            if (PF && !(c & 1)) __builtin_prefetch(wp + NR * rowb, 0, 0);
            const VI wb = e4m3_bf16(_mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(lm, wp)), K->tab);
            for (int i = 0; i < MR; i++) {
                const uint16_t *xp = xb + i * ldx + c * (LO ? 64 : 32);
                tot[i][r] = dp(tot[i][r], wb, _mm512_loadu_si512(xp));
                if (LO) tot[i][r] = dp(tot[i][r], wb, _mm512_loadu_si512(xp + 32));
            }
        }
    }
    for (int i = 0; i < MR; i++)
        for (int r = 0; r < NR; r++)
            out[i * NR + r] = _mm512_reduce_add_ps(tot[i][r]);
}

/* LO: fp8 with lo words (weight-only) */
AI void tile(const el_qf_info *q, const kc *K, const uint16_t *xb, int64_t j, const int MR, const int NR,
             const int FMT, const int LO, const int PF, const float *bias, float *y, int64_t ldy) {
    float out[32];
    if (FMT == EL_QF_FMT_FP8)
        fp8_tile(q, K, xb, q->ldx, j, MR, NR, LO, PF, out);
    else
        nib_tile(q, K, xb, q->ldx, j, MR, NR, PF, out);
    for (int r = 0; r < NR; r++) {
        float rs = 1.0f;
        if (FMT == EL_QF_FMT_FP8) rs = ((const float *)q->sc)[j + r] * q->post;
        const float b = bias ? bias[j + r] : 0.0f;
        for (int i = 0; i < MR; i++) {
            float v = out[i * NR + r];
            if (FMT == EL_QF_FMT_FP8) v *= rs;
            y[i * ldy + j + r] = bias ? v + b : v;
        }
    }
}

AI void tile_mr(const el_qf_info *q, const kc *K, const uint16_t *xb, int64_t j, int mr, const int NR,
                const int FMT, const int LO, const int PF, const float *bias, float *y, int64_t ldy) {
    switch (mr) {
    case 4:
        tile(q, K, xb, j, 4, NR, FMT, LO, PF, bias, y, ldy);
        break;
    case 3:
        tile(q, K, xb, j, 3, NR, FMT, LO, PF, bias, y, ldy);
        break;
    case 2:
        tile(q, K, xb, j, 2, NR, FMT, LO, PF, bias, y, ldy);
        break;
    default:
        tile(q, K, xb, j, 1, NR, FMT, LO, PF, bias, y, ldy);
        break;
    }
}

/* decode (m <= EL_QF_MDEC): W streams once */
AI void mm_fmt(const el_qf_info *q, const kc *K, const uint16_t *xb, int64_t m, int64_t n0, int64_t n1,
               const float *bias, float *y, int64_t ldy, const int FMT, const int LO) {
    int64_t j = n0;
    if (m == 1 && FMT != EL_QF_FMT_FP8) /* 8 rows: more independent vdpbf16ps chains */
        for (; j + 8 <= n1; j += 8)
            tile(q, K, xb, j, 1, 8, FMT, LO, 1, bias, y, ldy);
    for (; j + 4 <= n1; j += 4)
        tile_mr(q, K, xb, j, (int)m, 4, FMT, LO, 1, bias, y, ldy);
    for (; j < n1; j++)
        tile_mr(q, K, xb, j, (int)m, 1, FMT, LO, 0, bias, y, ldy);
}

/* ---- prefill w4a16: int16 x times int16 (q - z) tiles, vpdpwssd ------------------------------------ */

/* acc += sum over pairs of int16 a times int16 b (inline asm for the same reason as dp) */
AI VI dpwssd(VI acc, VI a, VI b) {
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* r[t] = dword t of rows 0..15 (lane i: dword t of r[i] on entry): 16 x 16 dword transpose in 64 shuffles */
AI void transpose16x16_epi32(VI *r) {
    VI t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int j = 0; j < 4; j++) { /* u[4 i + j], 128-bit lane L: dword 4 L + j of rows 4 i .. 4 i + 3 */
        const VI v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee);
        const VI w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        const VI w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
        r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88);
        r[4 + j] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
        r[8 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
    }
}

/* Rows j0 .. j0 + nr - 1 (nr <= EL_QF_W4P_ROWS) of W into tile: per pair p (elements 2 p, 2 p + 1)
 * EL_QF_W4P_ROWS dwords, dword r = (q - z) of element 2 p in the low and of 2 p + 1 in the high 16 bits
 * for row j0 + r (rows >= nr: 0); sc[s][r] the f32 scale of row j0 + r for segment s. Per 16 rows, 64 bytes
 * of each row loaded and transposed: a dword (8 elements, one group: g is a multiple of 8) of the 16 rows
 * per vector, 4 pairs. (A 16-row gather per dword instead made the expansion ~7% of a prefill GEMM.) */
static void w4p_expand(const el_qf_info *q, int64_t j0, int nr, int32_t *tile, float *sc) {
    const int64_t rowb = q->rowb, G = q->G, g = q->g, seg = el_qf_w4p_seg(q), nseg = q->G * g / seg;
    const VI lo4 = _mm512_set1_epi32(0x0f), hi4 = _mm512_set1_epi32(0xf0000);
    for (int v = 0; v < EL_QF_W4P_ROWS / 16; v++) {
        const int nv = nr - 16 * v < 0 ? 0 : nr - 16 * v > 16 ? 16 : nr - 16 * v;
        const __mmask32 wm = (__mmask32)(((uint64_t)1 << 2 * nv) - 1); /* the 16-bit halves of rows < nv */
        const uint8_t *base = q->qs + (j0 + 16 * v) * rowb;
        VI zz = _mm512_set1_epi32(0x00080008);
        for (int64_t pb = 0; pb < rowb; pb += 64) {
            const int64_t nb = rowb - pb < 64 ? rowb - pb : 64;
            const __mmask64 bm = nb == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nb) - 1);
            VI r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nv ? _mm512_maskz_loadu_epi8(bm, base + i * rowb + pb) : _mm512_setzero_si512();
            transpose16x16_epi32(r);
            for (int t = 0; t < nb / 4; t++) {
                const int64_t p = pb + 4 * t;
                if (q->zs && 2 * p % g == 0) { /* the zero points of group 2 p / g, in both 16-bit halves */
                    int32_t z[16] = {0};
                    for (int i = 0; i < nv; i++)
                        z[i] = (int32_t)q->zs[(j0 + 16 * v + i) * G + 2 * p / g] * 0x10001;
                    zz = _mm512_loadu_si512(z);
                }
                for (int b = 0; b < 4; b++) {
                    const VI u = _mm512_srli_epi32(r[t], 8 * b);
                    const VI e =
                        _mm512_or_si512(_mm512_and_si512(u, lo4), _mm512_and_si512(_mm512_slli_epi32(u, 12), hi4));
                    _mm512_store_si512(tile + (p + b) * EL_QF_W4P_ROWS + 16 * v, _mm512_maskz_sub_epi16(wm, e, zz));
                }
            }
        }
    }
    if (seg != g) { /* g > 128: segment s takes the scale of group s * seg / g */
        for (int64_t s = 0; s < nseg; s++)
            for (int r = 0; r < EL_QF_W4P_ROWS; r++)
                sc[s * EL_QF_W4P_ROWS + r] =
                    r < nr ? _cvtsh_ss(((const uint16_t *)q->sc)[(j0 + r) * G + s * seg / g]) : 0.0f;
        return;
    }
    /* one scale per segment: per 16 rows and 16 groups, each row's f16 scales (contiguous) as f32 in a
     * vector, then a 16 x 16 transpose gives the 16 rows of one segment per vector */
    for (int v = 0; v < EL_QF_W4P_ROWS / 16; v++) {
        const int nv = nr - 16 * v < 0 ? 0 : nr - 16 * v > 16 ? 16 : nr - 16 * v;
        const uint16_t *base = (const uint16_t *)q->sc + (j0 + 16 * v) * G;
        for (int64_t s0 = 0; s0 < G; s0 += 16) {
            const int ns = G - s0 < 16 ? (int)(G - s0) : 16;
            VI r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nv ? _mm512_castps_si512(_mm512_cvtph_ps(
                                    _mm256_maskz_loadu_epi16((__mmask16)((1u << ns) - 1), base + i * G + s0)))
                              : _mm512_setzero_si512();
            transpose16x16_epi32(r);
            for (int t = 0; t < ns; t++)
                _mm512_store_si512(sc + (s0 + t) * EL_QF_W4P_ROWS + 16 * v, r[t]);
        }
    }
}

#define W4P_MR 6                     /* rows of x per register tile                      */
#define W4P_NV (EL_QF_W4P_ROWS / 16) /* vectors of 16 rows of W per register tile (4)    */
#define W4P_PF_TILES 2 /* tiles of W after the current one prefetched during its GEMM         */

/* MR rows of x (int16, stride kx; factors xd, stride nch) times the expanded tile of EL_QF_W4P_ROWS rows:
 * per segment exact int32 sums (|q - z| <= 15, |xq| <= 32767: < 2^31 up to 128 elements), MR * W4P_NV
 * accumulators (24 of the 32 registers), then in f32 times scale * d. y[i][j0 + r] for r < nr, plus bias. */
AI void w4p_tile(const el_qf_info *q, const int16_t *xq, const float *xd, const int32_t *tile, const float *sc,
                 const int MR, int nr, const float *bias, float *y, int64_t ldy) {
    const int64_t seg = el_qf_w4p_seg(q), nseg = q->G * q->g / seg, kx = q->kx, nch = q->nch;
    VF f[W4P_MR][W4P_NV];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < W4P_NV; v++)
            f[i][v] = _mm512_setzero_ps();
    const int32_t *x32 = (const int32_t *)xq;
    for (int64_t s = 0; s < nseg; s++) {
        VI a[W4P_MR][W4P_NV];
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < W4P_NV; v++)
                a[i][v] = _mm512_setzero_si512();
        const int32_t *tp = tile + s * (seg / 2) * EL_QF_W4P_ROWS, *xp = x32 + s * (seg / 2);
        for (int64_t p = 0; p < seg / 2; p++) {
            VI w[W4P_NV];
            for (int v = 0; v < W4P_NV; v++)
                w[v] = _mm512_load_si512(tp + p * EL_QF_W4P_ROWS + 16 * v);
            for (int i = 0; i < MR; i++) {
                const VI xv = _mm512_set1_epi32(xp[i * (kx / 2) + p]);
                for (int v = 0; v < W4P_NV; v++)
                    a[i][v] = dpwssd(a[i][v], w[v], xv);
            }
        }
        const int64_t c = s * seg / 128;
        for (int v = 0; v < W4P_NV; v++) {
            const VF sv = _mm512_load_ps(sc + s * EL_QF_W4P_ROWS + 16 * v);
            for (int i = 0; i < MR; i++)
                f[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[i][v]),
                                          _mm512_mul_ps(sv, _mm512_set1_ps(xd[i * nch + c])), f[i][v]);
        }
    }
    for (int v = 0; v < W4P_NV; v++) {
        const int nv = nr - 16 * v < 0 ? 0 : nr - 16 * v > 16 ? 16 : nr - 16 * v;
        const __mmask16 mk = (__mmask16)((1u << nv) - 1);
        const VF bv = bias ? _mm512_maskz_loadu_ps(mk, bias + 16 * v) : _mm512_setzero_ps();
        for (int i = 0; i < MR; i++)
            _mm512_mask_storeu_ps(y + i * ldy + 16 * v, mk, _mm512_add_ps(f[i][v], bv));
    }
}

/* rows [n0, n1) of y for all m rows of x: per tile of EL_QF_W4P_ROWS rows of W, expanded once into
 * scratch, all rows of x in register tiles of W4P_MR */
static void w4p_gemm(const el_qf_info *q, const void *prep, int64_t m, int64_t n0, int64_t n1, const float *bias,
                     float *y, int64_t ldy, void *scr) {
    const int16_t *xq = prep;
    const float *xd = (const float *)((const char *)prep + q->xb_bytes);
    int32_t *tile = scr;
    float *sc = (float *)(tile + EL_QF_W4P_ROWS * q->kx / 2);
    for (int64_t jb = n0; jb < n1; jb += EL_QF_W4P_ROWS) {
        const int nr = (int)(n1 - jb < EL_QF_W4P_ROWS ? n1 - jb : EL_QF_W4P_ROWS);
        w4p_expand(q, jb, nr, tile, sc);
        const float *bj = bias ? bias + jb : NULL;
        /* the quants and scales of the W4P_PF_TILES tiles after this one, a share of the quant lines before
         * each register tile of x: whichever thread grabs them next (with 2 threads usually the second one)
         * expands them from cache, not DRAM (the expansion's loads stalled on memory: ~4% of the GEMM time,
         * ~2.6% with this; 1 tile ahead was worse, prefetching only during the last quarter too) */
        const int64_t pf_want = jb + nr + W4P_PF_TILES * EL_QF_W4P_ROWS, pf_end = pf_want < q->n ? pf_want : q->n;
        const uint8_t *pf = q->qs + (jb + nr) * q->rowb, *pf_stop = q->qs + pf_end * q->rowb;
        const int64_t pf_lines = pf_stop > pf ? (pf_stop - pf + 63) / 64 : 0, nblk = m / W4P_MR;
        const int64_t pf_step = nblk ? (pf_lines + nblk - 1) / nblk * 64 : 0;
        for (const uint8_t *s = q->sc + (jb + nr) * q->G * 2; s < q->sc + pf_end * q->G * 2; s += 64)
            _mm_prefetch((const char *)s, _MM_HINT_T0);
        int64_t i = 0;
        /* blocks of W4P_MR rows of x; a remainder of 1 or 2 rows joins the last block as 4 + 3 or 4 + 4 rows
         * (a 1- or 2-row register tile reloads the W tile from L2 for few vpdpwssd) */
        for (; m - i >= W4P_MR && m - i != W4P_MR + 1 && m - i != W4P_MR + 2; i += W4P_MR) {
            for (const uint8_t *e = pf + pf_step; pf < e && pf < pf_stop; pf += 64)
                _mm_prefetch((const char *)pf, _MM_HINT_T0);
            w4p_tile(q, xq + i * q->kx, xd + i * q->nch, tile, sc, W4P_MR, nr, bj, y + i * ldy + jb, ldy);
        }
        if (m - i > W4P_MR) {
            w4p_tile(q, xq + i * q->kx, xd + i * q->nch, tile, sc, 4, nr, bj, y + i * ldy + jb, ldy);
            i += 4;
        }
        switch (m - i) {
#define W4P_TAIL(R)                                                                                          \
    case R:                                                                                                  \
        w4p_tile(q, xq + i * q->kx, xd + i * q->nch, tile, sc, R, nr, bj, y + i * ldy + jb, ldy);             \
        break;
            W4P_TAIL(5)
            W4P_TAIL(4)
            W4P_TAIL(3)
            W4P_TAIL(2)
            W4P_TAIL(1)
#undef W4P_TAIL
        default:
            break;
        }
    }
}

/* ---- prefill fp8 / nvfp4: bf16 x (hi + lo) times bf16 W tiles, vdpbf16ps ------------------------------ */

/* 16 dwords = 16 pairs of bf16 (element 2 i in the low, 2 i + 1 in the high half) of f32 e (even elements)
 * and o (odd), both exact in bf16 (the bf16 bits are the top half of the f32 bits) */
AI VI bf16_pairs(VF e, VF o) {
    return _mm512_ternarylogic_epi32(_mm512_set1_epi32((int)0xffff0000u), _mm512_castps_si512(o),
                                     _mm512_srli_epi32(_mm512_castps_si512(e), 16), 0xca); /* a ? b : c */
}

/* fp8: elements 32 c .. 32 c + 31 of row j (zero past k) -> 16 bf16 pairs (e4m3 values, exact) */
AI VI bfp_fp8_pairs(const el_qf_info *q, const kc *K, int64_t j, int64_t c) {
    const __mmask32 lm = c == q->nch - 1 ? (__mmask32)K->tailm : ~(__mmask32)0;
    return e4m3_bf16(_mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(lm, q->qs + j * q->rowb + c * 32)), K->tab);
}

/* nvfp4: 16 bytes b (byte i: elements 2 i, 2 i + 1) -> 16 bf16 pairs of the e2m1 values times the block
 * scales s (lanes 0..7: the first block of 16, 8..15: the second) */
AI VI nv4_pairs16(__m128i b, VF tab, VF s) {
    const VI d = _mm512_cvtepu8_epi32(b);
    return bf16_pairs(_mm512_mul_ps(_mm512_permutexvar_ps(d, tab), s),
                      _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), tab), s));
}

/* nvfp4: elements 128 c .. 128 c + 127 of row j (zero past k) -> 64 bf16 pairs into o: the e2m1 values
 * times their e4m3 block scale (<= 6 significant bits: exact in bf16; the global scale comes later) */
AI void bfp_nv4_pairs(const el_qf_info *q, const kc *K, int64_t j, int64_t c, VI *o) {
    static const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    static const uint32_t blk[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    const bool last = c == q->nch - 1;
    const VI wv = _mm512_maskz_loadu_epi8(last ? K->tailm : ~(__mmask64)0, q->qs + j * q->rowb + c * 64);
    const VF s8 = e4m3_f32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(last ? K->slast : K->sfull,
                                                                      q->sc + j * q->G + c * 8)));
    const VF tab = _mm512_loadu_ps(e2m1);
    const VI bi = _mm512_loadu_si512(blk); /* 16 bytes u: blocks 2 u (pairs 0..7) and 2 u + 1 (8..15) */
#define NV4_SCALES(U) _mm512_permutexvar_ps(_mm512_add_epi32(bi, _mm512_set1_epi32(2 * (U))), s8)
    o[0] = nv4_pairs16(_mm512_castsi512_si128(wv), tab, NV4_SCALES(0));
    o[1] = nv4_pairs16(_mm512_extracti32x4_epi32(wv, 1), tab, NV4_SCALES(1)); /* literal lanes: -O0 too */
    o[2] = nv4_pairs16(_mm512_extracti32x4_epi32(wv, 2), tab, NV4_SCALES(2));
    o[3] = nv4_pairs16(_mm512_extracti32x4_epi32(wv, 3), tab, NV4_SCALES(3));
#undef NV4_SCALES
}

/* Rows j0 .. j0 + nr - 1 (nr <= EL_QF_W4P_ROWS) of W into tile as bf16 pairs: per pair p (elements 2 p,
 * 2 p + 1; kx / 2 pairs) EL_QF_W4P_ROWS dwords, dword r = the pair of row j0 + r (rows >= nr: 0). Per 16
 * rows: each row expanded front to back into stage (one sequential stream at a time, as decode reads W;
 * 16 interleaved row streams stalled on memory, ~3x the time), then 16 x 16 dword transposes from stage
 * (row stride el_qf_bfp_stage(q) dwords, padded against cache set conflicts) into the tile. */
static void bfp_expand(const el_qf_info *q, const kc *K, int64_t j0, int nr, int32_t *tile, int32_t *stage) {
    const int64_t np = q->kx / 2, sp = el_qf_bfp_stage(q);
    for (int v = 0; v < EL_QF_W4P_ROWS / 16; v++) {
        const int nv = nr - 16 * v < 0 ? 0 : nr - 16 * v > 16 ? 16 : nr - 16 * v;
        for (int i = 0; i < nv; i++) {
            const int64_t j = j0 + 16 * v + i;
            int32_t *so = stage + i * sp;
            if (q->fmt == EL_QF_FMT_FP8) {
                for (int64_t c = 0; c < q->nch; c++) {
                    if (!(c & 1)) __builtin_prefetch(q->qs + j * q->rowb + c * 32 + 1024, 0, 0);
                    _mm512_store_si512(so + 16 * c, bfp_fp8_pairs(q, K, j, c));
                }
            } else {
                for (int64_t c = 0; c < q->nch; c++) {
                    VI o[4];
                    __builtin_prefetch(q->qs + j * q->rowb + c * 64 + 1024, 0, 0);
                    bfp_nv4_pairs(q, K, j, c, o);
                    for (int u = 0; u < 4; u++)
                        _mm512_store_si512(so + 64 * c + 16 * u, o[u]);
                }
            }
        }
        for (int64_t p0 = 0; p0 < np; p0 += 16) {
            VI r[16];
            for (int t = 0; t < 16; t++)
                r[t] = t < nv ? _mm512_load_si512(stage + t * sp + p0) : _mm512_setzero_si512();
            transpose16x16_epi32(r);
            for (int t = 0; t < 16; t++)
                _mm512_store_si512(tile + (p0 + t) * EL_QF_W4P_ROWS + 16 * v, r[t]);
        }
    }
}

#define BFP_MR 6 /* rows of x per register tile (by W4P_NV vectors of 16 rows of W) */

/* MR rows of x (prepared bf16, stride ldx words: per 32 elements 32 hi words, then with LO 32 lo words)
 * times the expanded tile: MR * W4P_NV f32 sums over the whole row, then times the row scale (fp8: scale x
 * activation scale; nvfp4: the global scale), plus bias: y[i][j0 + r] for r < nr. */
AI void bfp_tile(const el_qf_info *q, const uint16_t *xb, const int32_t *tile, const int MR, const int LO,
                 int64_t j0, int nr, const float *bias, float *y, int64_t ldy) {
    const int64_t ldx = q->ldx / 2, np = q->kx / 2; /* in dwords: x stride, pairs per row */
    const int32_t *x32 = (const int32_t *)xb;
    VF f[BFP_MR][W4P_NV];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < W4P_NV; v++)
            f[i][v] = _mm512_setzero_ps();
    for (int64_t p0 = 0; p0 < np; p0 += 16) {
        const int32_t *xp = x32 + (LO ? 2 * p0 : p0);
        for (int t = 0; t < 16; t++) {
            VI w[W4P_NV];
            for (int v = 0; v < W4P_NV; v++)
                w[v] = _mm512_load_si512(tile + (p0 + t) * EL_QF_W4P_ROWS + 16 * v);
            for (int i = 0; i < MR; i++) {
                const VI xh = _mm512_set1_epi32(xp[i * ldx + t]);
                for (int v = 0; v < W4P_NV; v++)
                    f[i][v] = dp(f[i][v], w[v], xh);
                if (LO) {
                    const VI xl = _mm512_set1_epi32(xp[i * ldx + 16 + t]);
                    for (int v = 0; v < W4P_NV; v++)
                        f[i][v] = dp(f[i][v], w[v], xl);
                }
            }
        }
    }
    for (int v = 0; v < W4P_NV; v++) {
        const int nv = nr - 16 * v < 0 ? 0 : nr - 16 * v > 16 ? 16 : nr - 16 * v;
        const __mmask16 mk = (__mmask16)((1u << nv) - 1);
        const VF rs = q->fmt == EL_QF_FMT_FP8
                          ? _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, (const float *)q->sc + j0 + 16 * v),
                                          _mm512_set1_ps(q->post))
                          : _mm512_set1_ps(q->gscale);
        const VF bv = bias ? _mm512_maskz_loadu_ps(mk, bias + j0 + 16 * v) : _mm512_setzero_ps();
        for (int i = 0; i < MR; i++)
            _mm512_mask_storeu_ps(y + i * ldy + j0 + 16 * v, mk, _mm512_fmadd_ps(f[i][v], rs, bv));
    }
}

AI void bfp_rows(const el_qf_info *q, const uint16_t *xb, int64_t m, const int32_t *tile, const int LO, int64_t jb,
                 int nr, const float *bias, float *y, int64_t ldy) {
    int64_t i = 0;
    for (; i + BFP_MR <= m; i += BFP_MR)
        bfp_tile(q, xb + i * q->ldx, tile, BFP_MR, LO, jb, nr, bias, y + i * ldy, ldy);
    switch (m - i) {
#define BFP_TAIL(R)                                                                                          \
    case R:                                                                                                  \
        bfp_tile(q, xb + i * q->ldx, tile, R, LO, jb, nr, bias, y + i * ldy, ldy);                           \
        break;
        BFP_TAIL(5)
        BFP_TAIL(4)
        BFP_TAIL(3)
        BFP_TAIL(2)
        BFP_TAIL(1)
#undef BFP_TAIL
    default:
        break;
    }
}

/* rows [n0, n1) of y for all m rows of x: per tile of EL_QF_W4P_ROWS rows of W, expanded once into scratch,
 * all rows of x in register tiles of BFP_MR. LO: x with lo words (all but fp8 with static activations). */
static void bfp_gemm(const el_qf_info *q, const kc *K, const void *prep, int64_t m, int64_t n0, int64_t n1,
                     const float *bias, float *y, int64_t ldy, void *scr) {
    for (int64_t jb = n0; jb < n1; jb += EL_QF_W4P_ROWS) {
        const int nr = (int)(n1 - jb < EL_QF_W4P_ROWS ? n1 - jb : EL_QF_W4P_ROWS);
        bfp_expand(q, K, jb, nr, scr, (int32_t *)scr + EL_QF_W4P_ROWS * q->kx / 2);
        if (q->act)
            bfp_rows(q, prep, m, scr, 0, jb, nr, bias, y, ldy);
        else
            bfp_rows(q, prep, m, scr, 1, jb, nr, bias, y, ldy);
    }
}

/* fp8 up to this many rows of x runs the decode tiles in passes of 4 rows over W (its prepared x is the
 * same): expanding the bf16 tile (the 16 x 16 transposes) costs about as much as ~10 rows of x on the
 * decode tiles, so for few rows the passes win (bench_qint8 1 4 8 fp8: 2.1 vs 3.1 ms per layer; m = 12
 * 3.2 vs 3.4, kept on the tiles, which read W once); nvfp4's decode x layout differs and its expansion is
 * cheaper: it takes the tiles from m = 5 */
#define FP8_DEC_MAX 8

void el_qf_matmul_avx512(const el_qf_info *q, const float *x, const void *prep, int64_t m, int64_t n0,
                         int64_t n1, const float *bias, float *y, int64_t ldy, void *scratch) {
    (void)x;
    void *scr = (void *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    if (m > EL_QF_MDEC && q->fmt == EL_QF_FMT_W4) {
        w4p_gemm(q, prep, m, n0, n1, bias, y, ldy, scr);
        return;
    }
    kc K;
    uint16_t tab[32];
    uint32_t sidx[16];
    memset(&K, 0, sizeof K);
    const uint16_t *xb = prep;
    K.tailm = q->tailb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << q->tailb) - 1);
    if (q->fmt == EL_QF_FMT_FP8) {
        for (int i = 0; i < 32; i++)
            tab[i] = bf16_bits((float)(i & 7) / 512.0f);
        K.tab = _mm512_loadu_si512(tab);
        if (m > FP8_DEC_MAX) {
            bfp_gemm(q, &K, xb, m, n0, n1, bias, y, ldy, scr);
            return;
        }
        for (int64_t i = 0; i < m; i += EL_QF_MDEC) { /* the same prepared x: the decode tiles, 4 rows a pass */
            const int64_t mi = m - i < EL_QF_MDEC ? m - i : EL_QF_MDEC;
            if (q->act)
                mm_fmt(q, &K, xb + i * q->ldx, mi, n0, n1, bias, y + i * ldy, ldy, EL_QF_FMT_FP8, 0);
            else
                mm_fmt(q, &K, xb + i * q->ldx, mi, n0, n1, bias, y + i * ldy, ldy, EL_QF_FMT_FP8, 1);
        }
        return;
    }
    /* nvfp4 (w4a16 decode: qfloat_w4dec_avx512.c) */
    for (int i = 0; i < 32; i++)
        tab[i] = bf16_bits(el_e2m1_to_f32((uint8_t)(i & 15)));
    K.tab = _mm512_loadu_si512(tab);
    for (int l = 0; l < 16; l++)
        sidx[l] = (uint32_t)(l * 8 / q->g);
    K.sidx = _mm512_loadu_si512(sidx);
    const int64_t gpc = 128 / q->g, nlast = q->G - (q->nch - 1) * gpc;
    K.sfull = (__mmask16)((1u << gpc) - 1);
    K.slast = (__mmask16)((1u << nlast) - 1);
    if (m > EL_QF_MDEC)
        bfp_gemm(q, &K, xb, m, n0, n1, bias, y, ldy, scr);
    else
        mm_fmt(q, &K, xb, m, n0, n1, bias, y, ldy, EL_QF_FMT_NV4, 0);
}

#endif
