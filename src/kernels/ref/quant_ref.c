/* quant_ref.c - scalar references of the quantized weight formats (layouts in kernels/quant.h):
 * headers, fp8/fp4 conversions, round-to-nearest quantize, dequantize and the reference matmul with
 * exact activation-quantization emulation. Obvious over fast: the oracle for SIMD kernels. */
#include "kernels/quant.h"

#include <math.h>
#include <string.h>

static uint64_t pad64(uint64_t v) { return (v + 63) & ~(uint64_t)63; }

/* ---- header --------------------------------------------------------------------------------------- */

edgellm_status el_qhdr_init(el_qhdr *h, el_dtype t, int64_t n, int64_t k, int64_t group, uint32_t flags) {
    memset(h, 0, sizeof *h);
    if (n <= 0 || k <= 0 || n > ((int64_t)1 << 31) || k > ((int64_t)1 << 31))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "quantized weight: bad shape (%lld, %lld)", (long long)n, (long long)k);
    const uint64_t N = (uint64_t)n, K = (uint64_t)k;
    h->magic = EL_QHDR_MAGIC;
    h->format = (uint32_t)t;
    h->n = (uint32_t)n;
    h->k = (uint32_t)k;
    h->flags = flags;
    h->scales_off = 64;
    switch (t) {
    case EL_DTYPE_Q_W8A8:
    case EL_DTYPE_Q_FP8:
        h->quants_off = 64 + pad64(4 * N);
        break;
    case EL_DTYPE_Q_W4A16: {
        if (group < 8 || group % 8 != 0 || group > (1 << 20))
            return el_err(EDGELLM_STATUS_INVALID_ARG, "w4a16: group size %lld must be a positive multiple of 8",
                          (long long)group);
        uint64_t G = (K + (uint64_t)group - 1) / (uint64_t)group;
        h->group = (uint32_t)group;
        uint64_t o = 64 + pad64(2 * N * G);
        if (flags & EL_QF_ZEROS) {
            h->zeros_off = o;
            o += pad64(N * G);
        }
        h->quants_off = o;
        break;
    }
    case EL_DTYPE_Q_NVFP4:
        h->group = 16;
        h->quants_off = 64 + pad64(N * ((K + 15) / 16));
        break;
    default: return el_err(EDGELLM_STATUS_INVALID_ARG, "%s has no edgellm quantized layout", el_dtype_name(t));
    }
    h->nbytes = el_weight_nbytes(t, n, k, group, (flags & EL_QF_ZEROS) != 0);
    return EDGELLM_STATUS_OK;
}

size_t el_qweight_nbytes_of(const void *w, el_dtype t, int64_t n, int64_t k) {
    if (t == EL_DTYPE_Q_W4A16) {
        el_qhdr h;
        memcpy(&h, w, sizeof h);
        return el_weight_nbytes(t, n, k, h.group, (h.flags & EL_QF_ZEROS) != 0);
    }
    return el_weight_nbytes(t, n, k, 128, false);
}

edgellm_status el_qweight_check(const void *w, size_t nbytes, el_dtype t, int64_t n, int64_t k) {
    if (!el_dtype_is_quant(t)) return el_err(EDGELLM_STATUS_FORMAT, "%s is not a quantized format", el_dtype_name(t));
    if (t == EL_DTYPE_Q8_0 || t == EL_DTYPE_Q4_0) {
        size_t want = el_weight_nbytes(t, n, k, 0, false);
        if (!want || want != nbytes)
            return el_err(EDGELLM_STATUS_FORMAT, "%s weight (%lld, %lld): %zu bytes, expected %zu", el_dtype_name(t),
                          (long long)n, (long long)k, nbytes, want);
        return EDGELLM_STATUS_OK;
    }
    if (nbytes < 64) return el_err(EDGELLM_STATUS_FORMAT, "%s weight: %zu bytes is too small", el_dtype_name(t), nbytes);
    el_qhdr h, ref;
    memcpy(&h, w, sizeof h);
    if (h.magic != EL_QHDR_MAGIC || h.format != (uint32_t)t || h.n != (uint64_t)n || h.k != (uint64_t)k)
        return el_err(EDGELLM_STATUS_FORMAT, "%s weight: bad header (magic, format or shape)", el_dtype_name(t));
    if (el_qhdr_init(&ref, t, n, k, h.group, h.flags) < 0 || ref.scales_off != h.scales_off ||
        ref.zeros_off != h.zeros_off || ref.quants_off != h.quants_off || ref.nbytes != h.nbytes || h.nbytes != nbytes)
        return el_err(EDGELLM_STATUS_FORMAT, "%s weight: section offsets or size do not match the shape",
                      el_dtype_name(t));
    if (!isfinite(h.act_scale) || h.act_scale < 0 || !isfinite(h.global_scale) || h.global_scale < 0)
        return el_err(EDGELLM_STATUS_FORMAT, "%s weight: bad activation or global scale", el_dtype_name(t));
    if (t == EL_DTYPE_Q_W8A8 && (h.flags & EL_QF_STATIC_ACT) && !(h.act_scale > 0))
        return el_err(EDGELLM_STATUS_FORMAT, "w8a8 weight: static activation scale is 0");
    return EDGELLM_STATUS_OK;
}

/* ---- fp8 / fp4 ------------------------------------------------------------------------------------ */

float el_e4m3_to_f32(uint8_t v) {
    int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
    float r;
    if (e == 15 && m == 7) return NAN;
    if (e == 0) r = ldexpf((float)m, -9);
    else r = ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return s ? -r : r;
}

uint8_t el_f32_to_e4m3(float f) {
    if (isnan(f)) return 0x7f;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.0f) return sign | 0x7e;
    if (a < 0.015625f) { /* < 2^-6: subnormal, step 2^-9 (code 8 = 2^-6 is the first normal) */
        int q = (int)nearbyintf(a * 512.0f);
        return sign | (uint8_t)q;
    }
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    e -= 1;                  /* a = (2m) * 2^e, 2m in [1, 2) */
    int mant = (int)nearbyintf((2.0f * m - 1.0f) * 8.0f);
    if (mant == 8) {
        mant = 0;
        e++;
    }
    int code = ((e + 7) << 3) | mant;
    if (code > 0x7e) code = 0x7e;
    return sign | (uint8_t)code;
}

static const float k_e2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

float el_e2m1_to_f32(uint8_t v) { return (v & 8) ? -k_e2m1[v & 7] : k_e2m1[v & 7]; }

uint8_t el_f32_to_e2m1(float f) {
    uint8_t sign = signbit(f) ? 8 : 0;
    float a = fabsf(f);
    uint8_t c;
    if (!(a > 0.25f)) c = 0; /* also NaN */
    else if (a < 0.75f) c = 1;
    else if (a <= 1.25f) c = 2;
    else if (a < 1.75f) c = 3;
    else if (a <= 2.5f) c = 4;
    else if (a < 3.5f) c = 5;
    else if (a <= 5.0f) c = 6;
    else c = 7;
    return c ? (uint8_t)(sign | c) : 0;
}

/* ---- quantize --------------------------------------------------------------------------------------- */

el_qopts el_qopts_default(void) {
    el_qopts o = {128, 0.0f, false, false};
    return o;
}

static float rne(float v) { return nearbyintf(v); }
static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

static void ggml_q8_0_row(const float *x, int64_t k, uint8_t *out) {
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = el_f32_to_f16(d);
        uint8_t *o = out + b * 34;
        memcpy(o, &dh, 2);
        for (int i = 0; i < 32; i++) o[2 + i] = (uint8_t)(int8_t)roundf(xb[i] * id);
    }
}

static void ggml_q4_0_row(const float *x, int64_t k, uint8_t *out) {
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0, max = 0;
        for (int i = 0; i < 32; i++)
            if (amax < fabsf(xb[i])) {
                amax = fabsf(xb[i]);
                max = xb[i];
            }
        float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = el_f32_to_f16(d);
        uint8_t *o = out + b * 18;
        memcpy(o, &dh, 2);
        for (int i = 0; i < 16; i++) {
            float x0 = xb[i] * id, x1 = xb[16 + i] * id;
            int q0 = (int)(int8_t)(x0 + 8.5f), q1 = (int)(int8_t)(x1 + 8.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            o[2 + i] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

edgellm_status el_quantize_ref(el_dtype t, const float *w, int64_t n, int64_t k, const el_qopts *op, void *out) {
    el_qopts o = op ? *op : el_qopts_default();
    if (t == EL_DTYPE_Q8_0 || t == EL_DTYPE_Q4_0) {
        if (k % 32) return el_err(EDGELLM_STATUS_INVALID_ARG, "%s needs k %% 32 == 0 (k = %lld)", el_dtype_name(t), (long long)k);
        size_t rb = (size_t)(k / 32) * (t == EL_DTYPE_Q8_0 ? 34 : 18);
        for (int64_t j = 0; j < n; j++) {
            if (t == EL_DTYPE_Q8_0) ggml_q8_0_row(w + j * k, k, (uint8_t *)out + (size_t)j * rb);
            else ggml_q4_0_row(w + j * k, k, (uint8_t *)out + (size_t)j * rb);
        }
        return EDGELLM_STATUS_OK;
    }
    uint32_t flags = 0;
    if (t == EL_DTYPE_Q_W8A8 && o.act_scale > 0) flags |= EL_QF_STATIC_ACT;
    if (t == EL_DTYPE_Q_FP8 && !o.per_tensor) flags |= EL_QF_PER_CHANNEL;
    if (t == EL_DTYPE_Q_W4A16 && o.zeros) flags |= EL_QF_ZEROS;
    el_qhdr h;
    EL_TRY(el_qhdr_init(&h, t, n, k, o.group, flags));
    memset(out, 0, h.nbytes);
    if (t == EL_DTYPE_Q_W8A8 || t == EL_DTYPE_Q_FP8) h.act_scale = o.act_scale > 0 ? o.act_scale : 0;
    float *sc = (float *)((char *)out + h.scales_off);
    uint8_t *qs = (uint8_t *)out + h.quants_off;
    switch (t) {
    case EL_DTYPE_Q_W8A8:
        for (int64_t j = 0; j < n; j++) {
            float amax = 0;
            for (int64_t c = 0; c < k; c++) amax = fmaxf(amax, fabsf(w[j * k + c]));
            float s = amax / 127.0f;
            sc[j] = s;
            for (int64_t c = 0; c < k; c++)
                qs[j * k + c] = (uint8_t)(int8_t)(s > 0 ? clampf(rne(w[j * k + c] / s), -127, 127) : 0);
        }
        break;
    case EL_DTYPE_Q_FP8: {
        float tmax = 0;
        if (o.per_tensor)
            for (int64_t i = 0; i < n * k; i++) tmax = fmaxf(tmax, fabsf(w[i]));
        for (int64_t j = 0; j < n; j++) {
            float amax = tmax;
            if (!o.per_tensor)
                for (int64_t c = 0; c < k; c++) amax = fmaxf(amax, fabsf(w[j * k + c]));
            float s = amax / 448.0f;
            sc[j] = s;
            for (int64_t c = 0; c < k; c++)
                qs[j * k + c] = s > 0 ? el_f32_to_e4m3(clampf(w[j * k + c] / s, -448, 448)) : 0;
        }
        break;
    }
    case EL_DTYPE_Q_W4A16: {
        const int64_t g = h.group, G = (k + g - 1) / g, rb = G * g / 2;
        uint16_t *s16 = (uint16_t *)sc;
        uint8_t *zs = o.zeros ? (uint8_t *)out + h.zeros_off : NULL;
        for (int64_t j = 0; j < n; j++) {
            uint8_t *row = qs + j * rb;
            for (int64_t gi = 0; gi < G; gi++) {
                int64_t c0 = gi * g, c1 = c0 + g < k ? c0 + g : k;
                float s, z;
                if (zs) {
                    float mn = 0, mx = 0;
                    for (int64_t c = c0; c < c1; c++) {
                        mn = fminf(mn, w[j * k + c]);
                        mx = fmaxf(mx, w[j * k + c]);
                    }
                    s = el_f16_to_f32(el_f32_to_f16((mx - mn) / 15.0f));
                    z = s > 0 ? clampf(rne(-mn / s), 0, 15) : 8;
                    zs[j * G + gi] = (uint8_t)z;
                } else { /* the value of largest magnitude m maps to level -8: s = f16(m / -8) */
                    float amax = 0, mx = 0;
                    for (int64_t c = c0; c < c1; c++)
                        if (fabsf(w[j * k + c]) > amax) {
                            amax = fabsf(w[j * k + c]);
                            mx = w[j * k + c];
                        }
                    s = el_f16_to_f32(el_f32_to_f16(mx / -8.0f));
                    z = 8;
                }
                s16[j * G + gi] = el_f32_to_f16(s);
                for (int64_t c = c0; c < c0 + g; c++) {
                    float q = z;
                    if (c < c1 && s != 0) q = clampf(rne(w[j * k + c] / s) + z, 0, 15);
                    el_w4_set(row, c, (unsigned)q);
                }
            }
        }
        break;
    }
    case EL_DTYPE_Q_NVFP4: {
        const int64_t B = (k + 15) / 16;
        float tmax = 0;
        for (int64_t i = 0; i < n * k; i++) tmax = fmaxf(tmax, fabsf(w[i]));
        float gs = tmax / (6.0f * 448.0f);
        h.global_scale = gs;
        uint8_t *bs = (uint8_t *)sc;
        for (int64_t j = 0; j < n; j++) {
            uint8_t *row = qs + j * B * 8;
            for (int64_t b = 0; b < B; b++) {
                int64_t c0 = b * 16, c1 = c0 + 16 < k ? c0 + 16 : k;
                float amax = 0;
                for (int64_t c = c0; c < c1; c++) amax = fmaxf(amax, fabsf(w[j * k + c]));
                uint8_t e = gs > 0 ? el_f32_to_e4m3(amax / 6.0f / gs) : 0;
                bs[j * B + b] = e;
                float s = el_e4m3_to_f32(e) * gs;
                for (int64_t c = c0; c < c1; c++) el_w4_set(row, c, s > 0 ? el_f32_to_e2m1(w[j * k + c] / s) : 0);
            }
        }
        break;
    }
    default: return el_err(EDGELLM_STATUS_INVALID_ARG, "cannot quantize to %s", el_dtype_name(t));
    }
    memcpy(out, &h, sizeof h);
    return EDGELLM_STATUS_OK;
}

/* ---- dequantize ------------------------------------------------------------------------------------- */

void el_dequantize_ref(el_dtype t, const void *q, int64_t n, int64_t k, float *w) {
    const uint8_t *base = q;
    if (t == EL_DTYPE_Q8_0 || t == EL_DTYPE_Q4_0) {
        const size_t bb = t == EL_DTYPE_Q8_0 ? 34 : 18;
        for (int64_t j = 0; j < n; j++)
            for (int64_t b = 0; b < k / 32; b++) {
                const uint8_t *blk = base + ((size_t)j * (size_t)(k / 32) + (size_t)b) * bb;
                uint16_t dh;
                memcpy(&dh, blk, 2);
                float d = el_f16_to_f32(dh);
                float *o = w + j * k + b * 32;
                if (t == EL_DTYPE_Q8_0)
                    for (int i = 0; i < 32; i++) o[i] = (float)(int8_t)blk[2 + i] * d;
                else
                    for (int i = 0; i < 16; i++) {
                        o[i] = (float)((blk[2 + i] & 15) - 8) * d;
                        o[i + 16] = (float)((blk[2 + i] >> 4) - 8) * d;
                    }
            }
        return;
    }
    el_qhdr h;
    memcpy(&h, q, sizeof h);
    const float *sc = (const float *)(base + h.scales_off);
    const uint8_t *qs = base + h.quants_off;
    switch (t) {
    case EL_DTYPE_Q_W8A8:
        for (int64_t j = 0; j < n; j++)
            for (int64_t c = 0; c < k; c++) w[j * k + c] = (float)(int8_t)qs[j * k + c] * sc[j];
        break;
    case EL_DTYPE_Q_FP8:
        for (int64_t j = 0; j < n; j++)
            for (int64_t c = 0; c < k; c++) w[j * k + c] = el_e4m3_to_f32(qs[j * k + c]) * sc[j];
        break;
    case EL_DTYPE_Q_W4A16: {
        const int64_t g = h.group, G = (k + g - 1) / g, rb = G * g / 2;
        const uint16_t *s16 = (const uint16_t *)sc;
        const uint8_t *zs = h.zeros_off ? base + h.zeros_off : NULL;
        for (int64_t j = 0; j < n; j++)
            for (int64_t c = 0; c < k; c++) {
                int64_t gi = c / g;
                int z = zs ? zs[j * G + gi] : 8;
                w[j * k + c] = (float)((int)el_w4_get(qs + j * rb, c) - z) * el_f16_to_f32(s16[j * G + gi]);
            }
        break;
    }
    case EL_DTYPE_Q_NVFP4: {
        const int64_t B = (k + 15) / 16;
        const uint8_t *bs = (const uint8_t *)sc;
        for (int64_t j = 0; j < n; j++)
            for (int64_t c = 0; c < k; c++) {
                float s = el_e4m3_to_f32(bs[j * B + c / 16]) * h.global_scale;
                w[j * k + c] = el_e2m1_to_f32((uint8_t)el_w4_get(qs + j * B * 8, c)) * s;
            }
        break;
    }
    default: break;
    }
}

/* ---- activation emulation ---------------------------------------------------------------------------- */

/* w8a8: xq (k) int8 and the scale s_x. */
static float w8a8_act(const el_qhdr *h, const float *x, int64_t k, int8_t *xq) {
    float inv, sx;
    if (h->flags & EL_QF_STATIC_ACT) {
        sx = h->act_scale;
        inv = 1.0f / sx;
    } else {
        float a = 0;
        for (int64_t c = 0; c < k; c++) a = fmaxf(a, fabsf(x[c]));
        inv = a > 0 ? 127.0f / a : 0.0f;
        sx = a / 127.0f;
    }
    for (int64_t c = 0; c < k; c++) xq[c] = (int8_t)clampf(rne(x[c] * inv), -127, 127);
    return sx;
}

/* fp8 static: e4m3 codes of x. */
static void fp8_act(const el_qhdr *h, const float *x, int64_t k, uint8_t *xq) {
    float inv = 1.0f / h->act_scale;
    for (int64_t c = 0; c < k; c++) xq[c] = el_f32_to_e4m3(clampf(x[c] * inv, -448, 448));
}

/* ggml: x -> q8_0 blocks (d as f32 after the f16 round trip). */
static void ggml_act(const float *x, int64_t k, int8_t *xq, float *xd) {
    for (int64_t b = 0; b < k / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b * 32 + i]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        xd[b] = el_f16_to_f32(el_f32_to_f16(d));
        for (int i = 0; i < 32; i++) xq[b * 32 + i] = (int8_t)roundf(x[b * 32 + i] * id);
    }
}

void el_ref_qact_roundtrip(const void *w, el_dtype wt, float *x, int64_t k) {
    el_qhdr h;
    if (wt != EL_DTYPE_Q8_0 && wt != EL_DTYPE_Q4_0) memcpy(&h, w, sizeof h);
    if (wt == EL_DTYPE_Q_W8A8) {
        int8_t *q = el_malloc((size_t)k);
        if (!q) return;
        float s = w8a8_act(&h, x, k, q);
        for (int64_t c = 0; c < k; c++) x[c] = (float)q[c] * s;
        el_free(q);
    } else if (wt == EL_DTYPE_Q_FP8 && h.act_scale > 0) {
        uint8_t *q = el_malloc((size_t)k);
        if (!q) return;
        fp8_act(&h, x, k, q);
        for (int64_t c = 0; c < k; c++) x[c] = el_e4m3_to_f32(q[c]) * h.act_scale;
        el_free(q);
    } else if (wt == EL_DTYPE_Q8_0 || wt == EL_DTYPE_Q4_0) {
        int8_t *q = el_malloc((size_t)k);
        float *d = el_malloc((size_t)(k / 32 + 1) * sizeof(float));
        if (q && d) {
            ggml_act(x, k, q, d);
            for (int64_t c = 0; c < k / 32 * 32; c++) x[c] = (float)q[c] * d[c / 32];
        }
        el_free(q);
        el_free(d);
    }
}

/* ---- matmul ------------------------------------------------------------------------------------------ */

/* float dot with 16 independent partial sums (vectorizable, deterministic order) */
static float dot_f32(const float *a, const float *b, int64_t k) {
    float acc[16] = {0};
    int64_t c = 0;
    for (; c + 16 <= k; c += 16)
        for (int u = 0; u < 16; u++) acc[u] += a[c + u] * b[c + u];
    for (; c < k; c++) acc[c & 15] += a[c] * b[c];
    float s = 0;
    for (int u = 0; u < 16; u++) s += acc[u];
    return s;
}

static int32_t dot_i8(const int8_t *a, const int8_t *b, int64_t k) {
    int32_t acc = 0;
    for (int64_t c = 0; c < k; c++) acc += (int32_t)a[c] * (int32_t)b[c];
    return acc;
}

/* Dequantizes row j of a weight-only layout (w4a16, nvfp4, fp8 without its scale) into out (k). */
static void deq_row(const uint8_t *base, const el_qhdr *h, el_dtype wt, int64_t k, int64_t j, float *out,
                    const float *lut8) {
    const uint8_t *qs = base + h->quants_off;
    if (wt == EL_DTYPE_Q_W4A16) {
        const int64_t g = h->group, G = (k + g - 1) / g, rb = G * g / 2;
        const uint16_t *s16 = (const uint16_t *)(base + h->scales_off);
        const uint8_t *zs = h->zeros_off ? base + h->zeros_off : NULL;
        const uint8_t *wr = qs + j * rb;
        for (int64_t gi = 0; gi < G; gi++) {
            const float sc = el_f16_to_f32(s16[j * G + gi]);
            const int z = zs ? zs[j * G + gi] : 8;
            int64_t c0 = gi * g, c1 = c0 + g < k ? c0 + g : k;
            for (int64_t c = c0; c < c1; c++) out[c] = (float)((int)((wr[c >> 1] >> ((c & 1) * 4)) & 15) - z) * sc;
        }
    } else if (wt == EL_DTYPE_Q_NVFP4) {
        const int64_t B = (k + 15) / 16;
        const uint8_t *bs = base + h->scales_off, *wr = qs + j * B * 8;
        for (int64_t b = 0; b < B; b++) {
            const float sc = el_e4m3_to_f32(bs[j * B + b]) * h->global_scale;
            int64_t c0 = b * 16, c1 = c0 + 16 < k ? c0 + 16 : k;
            for (int64_t c = c0; c < c1; c++) out[c] = el_e2m1_to_f32((uint8_t)((wr[c >> 1] >> ((c & 1) * 4)) & 15)) * sc;
        }
    } else { /* fp8 */
        const uint8_t *wr = qs + j * k;
        for (int64_t c = 0; c < k; c++) out[c] = lut8[wr[c]];
    }
}

/* Row-at-a-time over W (each weight row dequantized / read once for all m rows of x): activations are
 * quantized first exactly as documented in quant.h, then every output is an exact integer dot (w8a8,
 * ggml) or an f32 dot of exactly representable products (fp8) or of the dequantized weights (w4a16,
 * nvfp4, weight-only fp8), accumulated in 16 f32 partial sums. */
void el_ref_qmatmul(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n, int64_t n0,
                    int64_t n1, const float *bias, float *y, int64_t ldy) {
    (void)n;
    if (m <= 0 || n1 <= n0) return;
    const uint8_t *base = w;
    const bool ggml = wt == EL_DTYPE_Q8_0 || wt == EL_DTYPE_Q4_0;
    el_qhdr h;
    memset(&h, 0, sizeof h);
    if (!ggml) memcpy(&h, w, sizeof h);
    const int64_t nb = k / 32;
    /* scratch: x quantized (m, k) as int8 or f32, per-row / per-block scales, one weight row */
    size_t xq_bytes = (size_t)(m * k) * 4, sc_bytes = (size_t)(m * (nb + 1)) * 4, row_bytes = (size_t)k * 4 + 64;
    uint8_t *scratch = el_malloc(xq_bytes + sc_bytes + row_bytes + 256);
    if (!scratch) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = n0; j < n1; j++) y[i * ldy + j] = NAN;
        return;
    }
    float *xsc = (float *)(scratch + xq_bytes);
    float *row = (float *)(scratch + xq_bytes + sc_bytes);
    float lut8[256];
    for (int v = 0; v < 256; v++) lut8[v] = el_e4m3_to_f32((uint8_t)v);
    switch (wt) {
    case EL_DTYPE_Q_W8A8: {
        int8_t *xq = (int8_t *)scratch;
        for (int64_t i = 0; i < m; i++) xsc[i] = w8a8_act(&h, x + i * k, k, xq + i * k);
        const float *sw = (const float *)(base + h.scales_off);
        const int8_t *qs = (const int8_t *)(base + h.quants_off);
        for (int64_t j = n0; j < n1; j++)
            for (int64_t i = 0; i < m; i++) {
                float v = ((float)dot_i8(xq + i * k, qs + j * k, k) * sw[j]) * xsc[i];
                y[i * ldy + j] = bias ? v + bias[j] : v;
            }
        break;
    }
    case EL_DTYPE_Q8_0:
    case EL_DTYPE_Q4_0: {
        int8_t *xq = (int8_t *)scratch;
        for (int64_t i = 0; i < m; i++) ggml_act(x + i * k, k, xq + i * k, xsc + i * nb);
        const size_t bb = wt == EL_DTYPE_Q8_0 ? 34 : 18;
        int8_t *wq = (int8_t *)row;
        float *wd = (float *)((uint8_t *)row + ((k + 63) & ~(int64_t)63));
        (void)wd;
        float dws[4096];
        for (int64_t j = n0; j < n1; j++) {
            /* unpack the row's quants to int8 and its block scales */
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = base + ((size_t)j * (size_t)nb + (size_t)b) * bb;
                uint16_t dh;
                memcpy(&dh, blk, 2);
                float d = el_f16_to_f32(dh);
                if (b < 4096) dws[b] = d;
                if (wt == EL_DTYPE_Q8_0)
                    memcpy(wq + b * 32, blk + 2, 32);
                else
                    for (int t = 0; t < 16; t++) {
                        wq[b * 32 + t] = (int8_t)((blk[2 + t] & 15) - 8);
                        wq[b * 32 + t + 16] = (int8_t)((blk[2 + t] >> 4) - 8);
                    }
            }
            for (int64_t i = 0; i < m; i++) {
                float acc = 0;
                for (int64_t b = 0; b < nb; b++) {
                    float d = b < 4096 ? dws[b] : 0;
                    if (b >= 4096) {
                        uint16_t dh;
                        memcpy(&dh, base + ((size_t)j * (size_t)nb + (size_t)b) * bb, 2);
                        d = el_f16_to_f32(dh);
                    }
                    acc += (float)dot_i8(xq + i * k + b * 32, wq + b * 32, 32) * (d * xsc[i * nb + b]);
                }
                y[i * ldy + j] = bias ? acc + bias[j] : acc;
            }
        }
        break;
    }
    case EL_DTYPE_Q_FP8:
    case EL_DTYPE_Q_W4A16:
    case EL_DTYPE_Q_NVFP4: {
        const bool fp8 = wt == EL_DTYPE_Q_FP8, act = fp8 && h.act_scale > 0;
        const float *xs = x;
        if (act) { /* static e4m3 activations, as their exact f32 values */
            float *xf = (float *)scratch;
            uint8_t *tmp = (uint8_t *)row;
            for (int64_t i = 0; i < m; i++) {
                fp8_act(&h, x + i * k, k, tmp);
                for (int64_t c = 0; c < k; c++) xf[i * k + c] = lut8[tmp[c]];
            }
            xs = xf;
        }
        const float *sw = (const float *)(base + h.scales_off);
        const float post = act ? h.act_scale : 1.0f;
        for (int64_t j = n0; j < n1; j++) {
            deq_row(base, &h, wt, k, j, row, lut8);
            const float rs = fp8 ? sw[j] * post : 1.0f;
            for (int64_t i = 0; i < m; i++) {
                float v = dot_f32(xs + i * k, row, k) * rs;
                y[i * ldy + j] = bias ? v + bias[j] : v;
            }
        }
        break;
    }
    default:
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = n0; j < n1; j++) y[i * ldy + j] = NAN;
        break;
    }
    el_free(scratch);
}
