/* ref.c - reference kernels: plain scalar C with double accumulation, no SIMD. They are the oracle
 * every optimised kernel is tested against, so they favour obviousness over speed. */
#include "kernels/kernels.h"
#include "kernels/quant.h"

#include <math.h>

static inline double ref_ld(const void *p, el_dtype t, int64_t i) {
    switch (t) {
    case EL_DTYPE_F32: return ((const float *)p)[i];
    case EL_DTYPE_F16: return el_f16_to_f32(((const uint16_t *)p)[i]);
    case EL_DTYPE_BF16: return el_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return NAN;
    }
}

static inline void ref_st(void *p, el_dtype t, int64_t i, float v) {
    switch (t) {
    case EL_DTYPE_F32: ((float *)p)[i] = v; break;
    case EL_DTYPE_F16: ((uint16_t *)p)[i] = el_f32_to_f16(v); break;
    case EL_DTYPE_BF16: ((uint16_t *)p)[i] = el_f32_to_bf16(v); break;
    default: break;
    }
}

void edgellm_ref_matmul(const float *x, int64_t m, int64_t k, const void *w, el_dtype wt, int64_t n,
                        const float *bias, float *y) {
    if (el_dtype_is_quant(wt)) { /* quantized formats: kernels/ref/quant_ref.c */
        el_ref_qmatmul(x, m, k, w, wt, n, 0, n, bias, y, n);
        return;
    }
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t kk = 0; kk < k; kk++) s += (double)x[i * k + kk] * ref_ld(w, wt, j * k + kk);
            if (bias) s += bias[j];
            y[i * n + j] = (float)s;
        }
    }
}

void edgellm_ref_rmsnorm(const float *x, const void *w, el_dtype wt, int64_t rows, int64_t dim, float eps,
                         float *y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double ss = 0;
        for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        double inv = 1.0 / sqrt(ss / (double)dim + (double)eps);
        for (int64_t i = 0; i < dim; i++) yr[i] = (float)((double)xr[i] * inv * ref_ld(w, wt, i));
    }
}

void edgellm_ref_embed(const int32_t *ids, int64_t n, const void *table, el_dtype tt, int64_t dim, float *out) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < dim; i++) out[t * dim + i] = (float)ref_ld(table, tt, (int64_t)ids[t] * dim + i);
}

void edgellm_ref_rope(float *x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, const float *inv_freq, float attn_scale) {
    int64_t half = n_rot / 2;
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t i = 0; i < half; i++) {
            float a = (float)pos[t] * inv_freq[i]; /* fp32 as HF */
            double c = cos((double)a) * attn_scale, s = sin((double)a) * attn_scale;
            for (int64_t h = 0; h < n_heads; h++) {
                float *xh = x + (t * n_heads + h) * head_dim;
                double x1 = xh[i], x2 = xh[i + half];
                xh[i] = (float)(x1 * c - x2 * s);
                xh[i + half] = (float)(x2 * c + x1 * s);
            }
        }
    }
}

/* fp8 KV cache element: e4m3(x / scale) on store, e4m3 * scale on load (quant.h conversions) */
static inline void ref_st_kv(void *p, el_dtype t, int64_t i, float x, float scale) {
    if (t == EL_DTYPE_F8_E4M3)
        ((uint8_t *)p)[i] = el_f32_to_e4m3(x / scale);
    else
        ref_st(p, t, i, x);
}
static inline double ref_ld_kv(const void *p, el_dtype t, int64_t i, float scale) {
    if (t == EL_DTYPE_F8_E4M3) return (double)el_e4m3_to_f32(((const uint8_t *)p)[i]) * (double)scale;
    return ref_ld(p, t, i);
}

void edgellm_ref_kv_store(const float *k, const float *v, int64_t n_tok, int64_t n_head_kv, int64_t head_dim,
                          const int32_t *slot, const int32_t *pos, void *k_cache, void *v_cache,
                          el_dtype kv_t, float k_scale, float v_scale, int64_t cap) {
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t h = 0; h < n_head_kv; h++) {
            int64_t dst = (((int64_t)slot[t] * n_head_kv + h) * cap + pos[t]) * head_dim;
            int64_t src = (t * n_head_kv + h) * head_dim;
            for (int64_t i = 0; i < head_dim; i++) {
                ref_st_kv(k_cache, kv_t, dst + i, k[src + i], k_scale);
                ref_st_kv(v_cache, kv_t, dst + i, v[src + i], v_scale);
            }
        }
    }
}

#define REF_MAX_HEAD_DIM 4096

void edgellm_ref_attention(const float *q, int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                           const int32_t *slot, const int32_t *pos, const void *k_cache, const void *v_cache,
                           el_dtype kv_t, float k_scale, float v_scale, int64_t cap, float scale,
                           float *out) {
    double acc[REF_MAX_HEAD_DIM];
    int64_t group = n_head / n_head_kv;
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t h = 0; h < n_head; h++) {
            const float *qh = q + (t * n_head + h) * head_dim;
            float *oh = out + (t * n_head + h) * head_dim;
            if (head_dim > REF_MAX_HEAD_DIM) {
                for (int64_t i = 0; i < head_dim; i++) oh[i] = NAN;
                continue;
            }
            int64_t base = ((int64_t)slot[t] * n_head_kv + h / group) * cap * head_dim;
            int64_t np = (int64_t)pos[t] + 1;
            /* pass 1: max score */
            double mx = -INFINITY;
            for (int64_t p = 0; p < np; p++) {
                double s = 0;
                for (int64_t i = 0; i < head_dim; i++)
                    s += (double)qh[i] * ref_ld_kv(k_cache, kv_t, base + p * head_dim + i, k_scale);
                s *= scale;
                if (s > mx) mx = s;
            }
            /* pass 2: softmax-weighted sum of v */
            double den = 0;
            for (int64_t i = 0; i < head_dim; i++) acc[i] = 0;
            for (int64_t p = 0; p < np; p++) {
                double s = 0;
                for (int64_t i = 0; i < head_dim; i++)
                    s += (double)qh[i] * ref_ld_kv(k_cache, kv_t, base + p * head_dim + i, k_scale);
                double e = exp(s * scale - mx);
                den += e;
                for (int64_t i = 0; i < head_dim; i++)
                    acc[i] += e * ref_ld_kv(v_cache, kv_t, base + p * head_dim + i, v_scale);
            }
            for (int64_t i = 0; i < head_dim; i++) oh[i] = (float)(acc[i] / den);
        }
    }
}

void edgellm_ref_swiglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * (double)up[i]);
    }
}

void edgellm_ref_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)((double)y[i] + (double)x[i]);
}
