/* qformat.c - HF quantized checkpoint tensors <-> edgellm layouts (qformat.h). */
#include "qformat.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const int k_awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

int64_t el_int4_np(int64_t n) { return (n + 7) / 8 * 8; }

edgellm_status el_int4_alloc(el_int4_mat *m, int64_t n, int64_t k, int64_t g) {
    memset(m, 0, sizeof *m);
    if (n <= 0 || k <= 0 || g < 8 || g % 8)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "int4: bad shape (%lld, %lld) or group %lld", (long long)n,
                      (long long)k, (long long)g);
    m->n = n;
    m->k = k;
    m->g = g;
    m->G = (k + g - 1) / g;
    m->kp = m->G * g;
    m->q = el_calloc((size_t)(n * m->kp), 1);
    m->z = el_calloc((size_t)(n * m->G), 1);
    m->s = el_calloc((size_t)(n * m->G), sizeof(uint16_t));
    if (!m->q || !m->z || !m->s) {
        el_int4_free(m);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    }
    return EDGELLM_STATUS_OK;
}

void el_int4_free(el_int4_mat *m) {
    el_free(m->q);
    el_free(m->z);
    el_free(m->s);
    memset(m, 0, sizeof *m);
}

void el_int4_pack_gptq(const el_int4_mat *m, int32_t *qweight, int32_t *qzeros, uint16_t *scales, int32_t *g_idx) {
    const int64_t np = el_int4_np(m->n), kp = m->kp;
    for (int64_t r = 0; r < kp / 8; r++)
        for (int64_t j = 0; j < np; j++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++) v |= (uint32_t)(j < m->n ? m->q[j * kp + 8 * r + i] : 8) << (4 * i);
            qweight[r * np + j] = (int32_t)v;
        }
    for (int64_t g = 0; g < m->G; g++) {
        for (int64_t c = 0; c < np / 8; c++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++) {
                int64_t j = 8 * c + i;
                unsigned z = j < m->n ? m->z[j * m->G + g] : 8;
                v |= (uint32_t)((z - 1) & 15) << (4 * i);
            }
            qzeros[g * (np / 8) + c] = (int32_t)v;
        }
        for (int64_t j = 0; j < np; j++) scales[g * np + j] = j < m->n ? m->s[j * m->G + g] : 0;
    }
    if (g_idx)
        for (int64_t c = 0; c < kp; c++) g_idx[c] = (int32_t)(c / m->g);
}

void el_int4_pack_awq(const el_int4_mat *m, int32_t *qweight, int32_t *qzeros, uint16_t *scales) {
    const int64_t np = el_int4_np(m->n), kp = m->kp;
    for (int64_t c = 0; c < kp; c++)
        for (int64_t col = 0; col < np / 8; col++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++) {
                int64_t j = 8 * col + k_awq_order[i];
                v |= (uint32_t)(j < m->n ? m->q[j * kp + c] : 8) << (4 * i);
            }
            qweight[c * (np / 8) + col] = (int32_t)v;
        }
    for (int64_t g = 0; g < m->G; g++) {
        for (int64_t col = 0; col < np / 8; col++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++) {
                int64_t j = 8 * col + k_awq_order[i];
                v |= (uint32_t)(j < m->n ? m->z[j * m->G + g] : 8) << (4 * i);
            }
            qzeros[g * (np / 8) + col] = (int32_t)v;
        }
        for (int64_t j = 0; j < np; j++) scales[g * np + j] = j < m->n ? m->s[j * m->G + g] : 0;
    }
}

/* ---- config -------------------------------------------------------------------------------------- */

edgellm_status el_qconfig_read(const cJSON *cfg, el_qconfig *qc) {
    memset(qc, 0, sizeof *qc);
    qc->group_size = 128;
    snprintf(qc->int4_method, sizeof qc->int4_method, "gptq");
    qc->gptq_zeros_minus1 = true;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    if (!cJSON_IsObject(q)) return EDGELLM_STATUS_OK;
    qc->quantized = true;
    const char *m = NULL, *fmt = NULL, *ver = NULL, *as = NULL;
    EL_TRY(el_json_str(q, "quant_method", &m));
    EL_TRY(el_json_str(q, "checkpoint_format", &fmt));
    EL_TRY(el_json_str(q, "version", &ver));
    EL_TRY(el_json_str(q, "activation_scheme", &as));
    if (m && !strcmp(m, "awq")) {
        snprintf(qc->int4_method, sizeof qc->int4_method, "awq");
        if (ver && strcmp(ver, "gemm") && strcmp(ver, "GEMM"))
            return el_err(EDGELLM_STATUS_UNSUPPORTED, "AWQ version '%s' is not supported (only gemm)", ver);
    }
    if (fmt && !strcmp(fmt, "gptq_v2")) qc->gptq_zeros_minus1 = false;
    int64_t bits = 4;
    EL_TRY(el_json_int(q, "bits", 4, &bits, NULL));
    if (bits == 4) {
        EL_TRY(el_json_int(q, "w_bit", 4, &bits, NULL));
    }
    if ((m && (!strcmp(m, "gptq") || !strcmp(m, "awq"))) && bits != 4)
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "%s checkpoints with %lld bits are not supported (only 4)", m,
                      (long long)bits);
    bool present = false;
    EL_TRY(el_json_int(q, "group_size", 128, &qc->group_size, &present));
    if (!present) EL_TRY(el_json_int(q, "q_group_size", 128, &qc->group_size, NULL));
    EL_TRY(el_json_bool(q, "desc_act", false, &qc->desc_act, NULL));
    qc->static_act = as && !strcmp(as, "static");
    const cJSON *go = cJSON_GetObjectItemCaseSensitive(q, "edgellm_group_size_overrides");
    qc->group_overrides = cJSON_IsObject(go) ? go : NULL;
    return EDGELLM_STATUS_OK;
}

/* ---- import --------------------------------------------------------------------------------------- */

static const el_st_tensor *find_sfx(const el_st_file *st, const char *prefix, const char *sfx) {
    char name[512];
    snprintf(name, sizeof name, "%s.%s", prefix, sfx);
    return el_st_find(st, name);
}

static size_t numel(const el_st_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= (size_t)t->shape[i];
    return n;
}

static float ld_f(const el_st_tensor *t, size_t i) {
    switch (t->dtype) {
    case EL_DTYPE_F32: {
        float v;
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        return v;
    }
    case EL_DTYPE_F16: {
        uint16_t v;
        memcpy(&v, (const char *)t->data + 2 * i, 2);
        return el_f16_to_f32(v);
    }
    case EL_DTYPE_BF16: {
        uint16_t v;
        memcpy(&v, (const char *)t->data + 2 * i, 2);
        return el_bf16_to_f32(v);
    }
    case EL_DTYPE_F8_E4M3: return el_e4m3_to_f32(((const uint8_t *)t->data)[i]);
    default: return 0;
    }
}
static bool is_float(el_dtype t) { return t == EL_DTYPE_F32 || t == EL_DTYPE_F16 || t == EL_DTYPE_BF16; }

static uint32_t ld_u32(const el_st_tensor *t, size_t i) {
    uint32_t v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    return v;
}

bool el_qweight_present(const el_st_file *st, const char *prefix) {
    if (find_sfx(st, prefix, "qweight")) return true;
    const el_st_tensor *w = find_sfx(st, prefix, "weight");
    return w && !is_float(w->dtype);
}

static edgellm_status int4_layout(const el_int4_mat *m, void **out, size_t *nbytes) {
    bool sym = true;
    for (int64_t i = 0; i < m->n * m->G && sym; i++) sym = m->z[i] == 8;
    el_qhdr h;
    EL_TRY(el_qhdr_init(&h, EL_DTYPE_Q_W4A16, m->n, m->k, m->g, sym ? 0 : EL_QF_ZEROS));
    uint8_t *b = el_aligned_alloc(h.nbytes);
    if (!b) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    memcpy(b, &h, sizeof h);
    memcpy(b + h.scales_off, m->s, (size_t)(m->n * m->G) * 2);
    if (!sym) memcpy(b + h.zeros_off, m->z, (size_t)(m->n * m->G));
    for (int64_t j = 0; j < m->n; j++) {
        uint8_t *row = b + h.quants_off + j * m->kp / 2;
        for (int64_t c = 0; c < m->kp; c++) el_w4_set(row, c, c < m->k ? m->q[j * m->kp + c] : m->z[j * m->G + c / m->g]);
    }
    *out = b;
    *nbytes = h.nbytes;
    return EDGELLM_STATUS_OK;
}

static edgellm_status import_int4(const el_st_file *st, const char *prefix, int64_t n, int64_t k,
                                  const el_qconfig *qc, void **out, size_t *nbytes) {
    const el_st_tensor *qw = find_sfx(st, prefix, "qweight"), *qz = find_sfx(st, prefix, "qzeros"),
                       *sc = find_sfx(st, prefix, "scales"), *gi = find_sfx(st, prefix, "g_idx");
    const bool awq = !strcmp(qc->int4_method, "awq");
    if (!qz || !sc || qw->dtype != EL_DTYPE_I32 || qz->dtype != EL_DTYPE_I32 || sc->dtype != EL_DTYPE_F16 ||
        qw->n_dims != 2 || qz->n_dims != 2 || sc->n_dims != 2)
        return el_err(EDGELLM_STATUS_FORMAT, "%s: int4 weight needs qweight/qzeros (I32) and scales (F16), 2-D", prefix);
    const int64_t np = sc->shape[1], G = sc->shape[0];
    const int64_t kp_ck = awq ? qw->shape[0] : qw->shape[0] * 8;
    if (np < n || np % 8 || kp_ck < k || (awq ? qw->shape[1] * 8 : qw->shape[1]) != np || qz->shape[0] != G ||
        qz->shape[1] * 8 != np || G < 1)
        return el_err(EDGELLM_STATUS_FORMAT, "%s: qweight/qzeros/scales shapes do not fit (%lld, %lld)", prefix,
                      (long long)n, (long long)k);
    int64_t g = qc->group_size > 0 ? qc->group_size : kp_ck;
    const cJSON *go = qc->group_overrides ? cJSON_GetObjectItemCaseSensitive(qc->group_overrides, prefix) : NULL;
    if (cJSON_IsNumber(go)) g = (int64_t)go->valuedouble;
    if (g % 8 || (G - 1) * g >= k || G * g < k)
        return el_err(EDGELLM_STATUS_FORMAT, "%s: %lld groups of %lld do not cover %lld inputs", prefix, (long long)G,
                      (long long)g, (long long)k);
    if (gi) {
        if (gi->dtype != EL_DTYPE_I32 || (int64_t)numel(gi) < k)
            return el_err(EDGELLM_STATUS_FORMAT, "%s: g_idx must be I32 with >= %lld entries", prefix, (long long)k);
        for (int64_t c = 0; c < k; c++)
            if ((int64_t)(int32_t)ld_u32(gi, (size_t)c) != c / g)
                return el_err(EDGELLM_STATUS_UNSUPPORTED,
                              "%s: act-order GPTQ (desc_act with g_idx not c / group_size) cannot be converted "
                              "exactly to contiguous groups; re-quantize without desc_act or use group_size -1",
                              prefix);
    }
    el_int4_mat m;
    EL_TRY(el_int4_alloc(&m, n, k, g));
    const int64_t kp = m.kp;
    for (int64_t j = 0; j < n; j++) {
        for (int64_t gg = 0; gg < G; gg++) {
            int64_t col = awq ? j / 8 : j / 8;
            int nib = j % 8;
            if (awq)
                for (int i = 0; i < 8; i++)
                    if (k_awq_order[i] == j % 8) nib = i;
            unsigned z = (ld_u32(qz, (size_t)(gg * (np / 8) + col)) >> (4 * nib)) & 15;
            if (!awq && qc->gptq_zeros_minus1) z = (z + 1) & 15;
            m.z[j * G + gg] = (uint8_t)z;
            uint16_t s;
            memcpy(&s, (const char *)sc->data + 2 * (size_t)(gg * np + j), 2);
            m.s[j * G + gg] = s;
        }
        for (int64_t c = 0; c < kp; c++) {
            unsigned q;
            if (c >= k) q = m.z[j * G + c / g];
            else if (awq) {
                int nib = 0;
                for (int i = 0; i < 8; i++)
                    if (k_awq_order[i] == j % 8) nib = i;
                q = (ld_u32(qw, (size_t)(c * (np / 8) + j / 8)) >> (4 * nib)) & 15;
            } else {
                q = (ld_u32(qw, (size_t)((c / 8) * np + j)) >> (4 * (c % 8))) & 15;
            }
            m.q[j * kp + c] = (uint8_t)q;
        }
    }
    edgellm_status s = int4_layout(&m, out, nbytes);
    el_int4_free(&m);
    return s;
}

edgellm_status el_qweight_import(const el_st_file *st, const char *prefix, int64_t n, int64_t k,
                                 const el_qconfig *qc, bool *found, el_dtype *dt, void **out, size_t *nbytes) {
    *found = false;
    *out = NULL;
    if (find_sfx(st, prefix, "qweight")) {
        *found = true;
        *dt = EL_DTYPE_Q_W4A16;
        return import_int4(st, prefix, n, k, qc, out, nbytes);
    }
    const el_st_tensor *w = find_sfx(st, prefix, "weight");
    if (!w || is_float(w->dtype)) return EDGELLM_STATUS_OK;
    *found = true;
    const el_st_tensor *ws = find_sfx(st, prefix, "weight_scale"), *is = find_sfx(st, prefix, "input_scale");
    if (!ws) return el_err(EDGELLM_STATUS_FORMAT, "%s: quantized weight without weight_scale", prefix);
    if (is && numel(is) != 1) return el_err(EDGELLM_STATUS_FORMAT, "%s: input_scale must have one element", prefix);
    float in_scale = is && is_float(is->dtype) ? ld_f(is, 0) : 0;
    el_qhdr h;
    uint8_t *b = NULL;
    if (w->dtype == EL_DTYPE_F8_E4M3 || w->dtype == EL_DTYPE_I8) {
        const bool fp8 = w->dtype == EL_DTYPE_F8_E4M3;
        *dt = fp8 ? EL_DTYPE_Q_FP8 : EL_DTYPE_Q_W8A8;
        size_t ns = numel(ws);
        if (w->n_dims != 2 || w->shape[0] != n || w->shape[1] != k || (ns != 1 && ns != (size_t)n) ||
            !is_float(ws->dtype))
            return el_err(EDGELLM_STATUS_FORMAT, "%s: %s weight must be (%lld, %lld) with 1 or %lld float scales",
                          prefix, fp8 ? "fp8" : "int8", (long long)n, (long long)k, (long long)n);
        uint32_t flags = 0;
        if (fp8 && ns > 1) flags |= EL_QF_PER_CHANNEL;
        if (!fp8 && qc->static_act && in_scale > 0) flags |= EL_QF_STATIC_ACT;
        EL_TRY(el_qhdr_init(&h, *dt, n, k, 0, flags));
        if (fp8) h.act_scale = in_scale;
        else if (flags & EL_QF_STATIC_ACT) h.act_scale = in_scale;
        b = el_aligned_alloc(h.nbytes);
        if (!b) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        float *s = (float *)(b + h.scales_off);
        for (int64_t j = 0; j < n; j++) s[j] = ld_f(ws, ns == 1 ? 0 : (size_t)j);
        memcpy(b + h.quants_off, w->data, (size_t)(n * k));
    } else if (w->dtype == EL_DTYPE_U8) {
        *dt = EL_DTYPE_Q_NVFP4;
        const el_st_tensor *ws2 = find_sfx(st, prefix, "weight_scale_2");
        const int64_t B = (k + 15) / 16;
        if (!ws2 || numel(ws2) != 1 || !is_float(ws2->dtype) || w->n_dims != 2 || w->shape[0] != n ||
            w->shape[1] * 2 < k || ws->dtype != EL_DTYPE_F8_E4M3 || ws->n_dims != 2 || ws->shape[0] != n ||
            ws->shape[1] < B || ws->shape[1] * 8 != w->shape[1])
            return el_err(EDGELLM_STATUS_FORMAT,
                          "%s: nvfp4 weight needs weight U8 (%lld, >=%lld), weight_scale F8_E4M3 (%lld, >=%lld) and "
                          "a scalar weight_scale_2",
                          prefix, (long long)n, (long long)(B * 8), (long long)n, (long long)B);
        EL_TRY(el_qhdr_init(&h, *dt, n, k, 16, 0));
        h.global_scale = ld_f(ws2, 0);
        b = el_aligned_alloc(h.nbytes);
        if (!b) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        const int64_t cb = ws->shape[1];
        for (int64_t j = 0; j < n; j++) {
            memcpy(b + h.scales_off + j * B, (const uint8_t *)ws->data + j * cb, (size_t)B);
            memcpy(b + h.quants_off + j * B * 8, (const uint8_t *)w->data + j * cb * 8, (size_t)(B * 8));
            /* elements past k inside the last block must read as 0 */
            for (int64_t c = k; c < B * 16; c++) el_w4_set(b + h.quants_off + j * B * 8, c, 0);
        }
    } else {
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "%s: weight dtype %s is not a supported quantized storage", prefix,
                      el_dtype_st_name(w->dtype));
    }
    memcpy(b, &h, sizeof h);
    *out = b;
    *nbytes = h.nbytes;
    return EDGELLM_STATUS_OK;
}
