/* quant_export.c - quantized exports: calibration through our own runtime (activation tap), SmoothQuant
 * and AWQ scale search folded into the preceding norm / linear, GPTQ, round-to-nearest fp8 / int8 /
 * int4 / nvfp4, written as an HF-style quantized checkpoint (GPTQ / AutoAWQ / ModelOpt tensors, see
 * docs/export-format.md and docs/quantization.md); and import of pre-quantized GPTQ / AWQ / ModelOpt
 * checkpoints (tensors copied as they are). */
#include "edgellm/edgellm.h"
#include "export_internal.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "models/stream.h"
#include "qformat.h"
#include "runtime/runtime_internal.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum qscheme {
    QS_FP8,
    QS_INT8_SQ,
    QS_INT4_AWQ,
    QS_INT4_RTN,
    QS_INT4_GPTQ,
    QS_NVFP4,
    QS_COUNT
} qscheme;
static const char *const k_scheme_names[QS_COUNT] = {"fp8",      "int8_sq",   "int4_awq",
                                                     "int4_rtn", "int4_gptq", "nvfp4"};

static bool parse_scheme(const char *s, qscheme *out) {
    for (int i = 0; s && i < QS_COUNT; i++)
        if (!strcmp(s, k_scheme_names[i])) {
            *out = (qscheme)i;
            return true;
        }
    return false;
}

static bool config_is_prequantized(const char *hf_dir) {
    char p[4096];
    if (el_path_join(p, sizeof p, hf_dir, "config.json") < 0) return false;
    cJSON *c = NULL;
    if (el_json_load(p, 16u << 20, &c) < 0) {
        edgellm_clear_error();
        return false;
    }
    bool q = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c, "quantization_config"));
    cJSON_Delete(c);
    return q;
}

bool el_export_is_quant(const char *hf_dir, const edgellm_export_params *p) {
    qscheme q;
    if (parse_scheme(p->quantization, &q)) return true;
    return config_is_prequantized(hf_dir);
}

/* ---- output tensor list --------------------------------------------------------------------------- */

typedef struct otensor {
    char *name;
    el_dtype dt;
    int nd;
    int64_t shape[2];
    void *data; /* owned bytes, or NULL: stream src converted to dt */
    size_t nbytes;
    const el_st_tensor *src;
} otensor;

typedef struct olist {
    otensor *t;
    int64_t n, cap;
} olist;

static void olist_free(olist *l) {
    for (int64_t i = 0; i < l->n; i++) {
        el_free(l->t[i].name);
        el_free(l->t[i].data);
    }
    el_free(l->t);
    memset(l, 0, sizeof *l);
}

/* Adds a tensor; data (may be NULL when src is given) is owned by the list from here on. */
static edgellm_status olist_add(olist *l, const char *name, el_dtype dt, int nd, int64_t d0, int64_t d1,
                                void *data, const el_st_tensor *src) {
    if (l->n == l->cap) {
        int64_t nc = l->cap ? l->cap * 2 : 256;
        otensor *t = el_realloc(l->t, (size_t)nc * sizeof *t);
        if (!t) {
            el_free(data);
            return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        }
        l->t = t;
        l->cap = nc;
    }
    otensor *o = &l->t[l->n];
    memset(o, 0, sizeof *o);
    o->name = el_strdup(name);
    if (!o->name) {
        el_free(data);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    }
    o->dt = dt;
    o->nd = nd;
    o->shape[0] = d0;
    o->shape[1] = d1;
    o->data = data;
    o->src = src;
    size_t ne = nd == 0 ? 1 : nd == 1 ? (size_t)d0 : (size_t)d0 * (size_t)d1;
    o->nbytes = ne * el_dtype_size(dt);
    l->n++;
    return EDGELLM_STATUS_OK;
}

static edgellm_status add_f32(olist *l, const char *name, int nd, int64_t d0, int64_t d1, const float *v) {
    size_t ne = nd == 0 ? 1 : nd == 1 ? (size_t)d0 : (size_t)d0 * (size_t)d1;
    float *c = el_malloc(ne * sizeof(float));
    if (!c) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    memcpy(c, v, ne * sizeof(float));
    return olist_add(l, name, EL_DTYPE_F32, nd, d0, d1, c, NULL);
}

/* "prefix.sfx" into out; INVALID_ARG when the name does not fit. */
static edgellm_status qname(char *out, size_t cap, const char *prefix, const char *sfx) {
    int n = snprintf(out, cap, "%s.%s", prefix, sfx);
    if (n < 0 || (size_t)n >= cap)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "tensor name too long: %s.%s", prefix, sfx);
    return EDGELLM_STATUS_OK;
}

static edgellm_status add_scalar(olist *l, const char *prefix, const char *sfx, float v) {
    char name[512];
    EL_TRY(qname(name, sizeof name, prefix, sfx));
    return add_f32(l, name, 0, 0, 0, &v);
}

static edgellm_status sink_writer(const void *data, size_t n, void *user) {
    return el_st_writer_write(user, data, n);
}

static edgellm_status olist_write(const olist *l, const char *path) {
    el_st_decl *d = el_calloc((size_t)l->n + 1, sizeof *d);
    if (!d) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    size_t max_conv = 0;
    for (int64_t i = 0; i < l->n; i++) {
        d[i].name = l->t[i].name;
        d[i].dtype = l->t[i].dt;
        d[i].n_dims = l->t[i].nd;
        d[i].shape[0] = l->t[i].shape[0];
        d[i].shape[1] = l->t[i].shape[1];
        if (!l->t[i].data) {
            size_t ne = l->t[i].src->nbytes / el_dtype_size(l->t[i].src->dtype);
            if (ne > max_conv) max_conv = ne;
        }
    }
    char md[128];
    snprintf(md, sizeof md, "{\"format\":\"pt\",\"edgellm_export\":\"%d\"}", EL_EXPORT_FORMAT_VERSION);
    el_st_writer *w = NULL;
    size_t bb = el_stream_buf_size(max_conv);
    void *buf = el_aligned_alloc(bb);
    edgellm_status s =
        buf ? el_st_writer_open(path, d, l->n, md, &w) : el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    for (int64_t i = 0; s >= 0 && i < l->n; i++) {
        const otensor *o = &l->t[i];
        if (o->data)
            s = el_st_writer_write(w, o->data, o->nbytes);
        else
            s = el_stream_tensor(o->src, o->dt, buf, bb, sink_writer, w);
    }
    if (w) {
        if (s >= 0)
            s = el_st_writer_close(w);
        else
            el_st_writer_abort(w);
    }
    el_free_aligned(buf);
    el_free(d);
    return s;
}

/* Writes config.json, model.safetensors and the tokenizer/aux files into the staging dir tmp and commits it
 * as out_dir. *began turns false once the commit has consumed tmp (no abort needed then). */
static edgellm_status write_outdir(const cJSON *cfg, const olist *out, const char *hf_dir, const char *tmp,
                                   const char *out_dir, bool overwrite, bool *began) {
    char path[4096];
    EL_TRY(el_json_save_in(cfg, tmp, "config.json"));
    EL_TRY(el_path_join(path, sizeof path, tmp, "model.safetensors"));
    EL_TRY(olist_write(out, path));
    EL_TRY(el_copy_aux_files(hf_dir, tmp));
    edgellm_status s = el_outdir_commit(tmp, out_dir, overwrite);
    if (s < 0) *began = false;
    return s;
}

/* ---- helpers ---------------------------------------------------------------------------------------- */

static float *load_f32(const el_st_tensor *t) {
    size_t ne = t->nbytes / el_dtype_size(t->dtype);
    float *f = el_malloc(ne * sizeof(float) + 64);
    if (f) el_convert(EL_DTYPE_F32, f, t->dtype, t->data, ne);
    return f;
}

static void progress(bool on, const char *what, int64_t done, int64_t total, double t0) {
    if (!on) return;
    double el = (el_time_ms() - t0) / 1000.0, eta = done > 0 ? el * (double)(total - done) / (double)done : 0;
    int w = 30, f = total > 0 ? (int)(w * done / total) : w;
    char bar[64];
    for (int i = 0; i < w; i++)
        bar[i] = i < f ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r%-12s [%s] %lld/%lld  %.1fs, ETA %.1fs ", what, bar, (long long)done, (long long)total,
            el, eta);
    if (done >= total) fprintf(stderr, "\n");
    fflush(stderr);
}

/* ---- calibration ------------------------------------------------------------------------------------- */

enum { TP_ATTN = 0, TP_O = 1, TP_MLP = 2, TP_DOWN = 3, TP_N = 4 };

typedef struct tapstat {
    int64_t cols;
    float *amax;  /* per channel max |x| */
    double *asum; /* per channel sum |x| */
    int64_t rows; /* rows seen */
    float *samp;  /* (cap_samp, cols) sampled rows for AWQ */
    int64_t n_samp;
    double *H;       /* (cols, cols) X^T X for GPTQ, or NULL */
    double *Hd;      /* AWQ clipping: the diagonal blocks of X^T X, (ceil(cols / gd), gd, gd), or NULL */
    int64_t gd;
    float *tok_amax; /* per-row max |x| (for the percentile algorithm) */
    int64_t n_tok, cap_tok;
    float *seq; /* attention input only: (n_seq, seq_t, cols) whole calibration sequences (AWQ q/k/v loss) */
    int64_t n_seq, seq_t, seq_pos, seq_chunk;
} tapstat;

typedef struct calib {
    int64_t n_layer;
    tapstat *ts; /* [layer * TP_N + point] */
    float *kamax, *vamax;
    int64_t stride, cap_samp;
    int64_t chunk, cap_seq, seq_t; /* the chunk being evaluated; sequences kept for the attention loss */
    int64_t gram_group;            /* > 0: collect Hd with the int4 group size of each tap (pick_group) */
    bool h_only;                   /* a later GPTQ pass: only the Hessians (of the layers that have one) */
    bool failed;
} calib;

/* The calibration engine and token chunks, kept for further Hessian passes (GPTQ over the memory budget). */
typedef struct calib_run {
    edgellm_runtime *rt;
    int32_t *ids, *pos, *slot;
    int8_t *want;
    int64_t n_chunks, seq;
    char edir[4096];
} calib_run;

static void calib_run_free(calib_run *r) {
    edgellm_runtime_free(r->rt);
    edgellm_free(r->ids);
    el_free(r->pos);
    el_free(r->slot);
    el_free(r->want);
    if (r->edir[0]) el_rm_rf(r->edir);
    memset(r, 0, sizeof *r);
}

static void calib_free(calib *c) {
    if (c->ts)
        for (int64_t i = 0; i < c->n_layer * TP_N; i++) {
            el_free(c->ts[i].amax);
            el_free(c->ts[i].asum);
            el_free(c->ts[i].samp);
            el_free(c->ts[i].H);
            el_free(c->ts[i].Hd);
            el_free(c->ts[i].tok_amax);
            el_free(c->ts[i].seq);
        }
    el_free(c->ts);
    el_free(c->kamax);
    el_free(c->vamax);
    memset(c, 0, sizeof *c);
}

/* Group size for a row length k: the requested one when it divides k, else the largest of 128/64/32
 * (not above the request) that does, else 32 with the row padded to whole groups. */
static int64_t pick_group(int64_t req, int64_t k) {
    if (k % req == 0) return req;
    for (int64_t g = req / 2; g >= 32; g /= 2)
        if (k % g == 0) return g;
    return 32;
}

/* H += X^T X (or its diagonal blocks of gd): SIMD f32 matmuls on X^T, f64 sums */
static void tap_gram(calib *c, tapstat *t, const float *x, int64_t n, int64_t cols) {
    const int64_t bw = t->H ? cols : t->gd;
    float *xt = el_malloc((size_t)(n * cols) * sizeof(float)), *y = el_malloc((size_t)(bw * bw) * sizeof(float));
    if (!xt || !y) {
        el_free(xt);
        el_free(y);
        c->failed = true;
        return;
    }
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < cols; j++)
            xt[j * n + r] = x[r * cols + j];
    for (int64_t c0 = 0; c0 < cols; c0 += bw) {
        const int64_t gl = c0 + bw < cols ? bw : cols - c0;
        double *d = t->H ? t->H : t->Hd + c0 * bw; /* block c0 / bw of bw x bw */
        edgellm_cpu_matmul(xt + c0 * n, gl, n, xt + c0 * n, EL_DTYPE_F32, 0, gl, NULL, y, gl, NULL);
        for (int64_t i = 0; i < gl; i++)
            for (int64_t j = i; j < gl; j++)
                d[i * bw + j] += (double)y[i * gl + j];
    }
    el_free(xt);
    el_free(y);
}

static void calib_tap(void *user, int64_t layer, el_tap_point pt, const float *x, int64_t n, int64_t cols) {
    calib *c = user;
    if (c->failed || layer < 0 || layer >= c->n_layer) return;
    if (c->h_only) { /* statistics done in the first pass */
        tapstat *t = (int)pt < TP_N ? &c->ts[layer * TP_N + (int)pt] : NULL;
        if (t && t->H) tap_gram(c, t, x, n, cols);
        return;
    }
    if (pt == EL_TAP_K || pt == EL_TAP_V) {
        float *a = pt == EL_TAP_K ? &c->kamax[layer] : &c->vamax[layer];
        for (int64_t i = 0; i < n * cols; i++)
            *a = fmaxf(*a, fabsf(x[i]));
        return;
    }
    if ((int)pt >= TP_N) return;
    tapstat *t = &c->ts[layer * TP_N + (int)pt];
    if (!t->amax) {
        t->cols = cols;
        t->amax = el_calloc((size_t)cols, sizeof(float));
        t->asum = el_calloc((size_t)cols, sizeof(double));
        t->samp = el_calloc((size_t)(c->cap_samp * cols), sizeof(float));
        t->cap_tok = 1024;
        t->tok_amax = el_malloc((size_t)t->cap_tok * sizeof(float));
        if (c->gram_group > 0 && !t->H) {
            t->gd = pick_group(c->gram_group, cols);
            t->Hd = el_calloc((size_t)((cols + t->gd - 1) / t->gd * t->gd * t->gd), sizeof(double));
        }
        if (!t->amax || !t->asum || !t->samp || !t->tok_amax || (c->gram_group > 0 && !t->H && !t->Hd)) {
            c->failed = true;
            return;
        }
    }
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * cols;
        float m = 0;
        for (int64_t j = 0; j < cols; j++) {
            float a = fabsf(xr[j]);
            if (a > t->amax[j]) t->amax[j] = a;
            t->asum[j] += a;
            if (a > m) m = a;
        }
        if (t->n_tok == t->cap_tok) {
            float *nt = el_realloc(t->tok_amax, (size_t)t->cap_tok * 2 * sizeof(float));
            if (!nt) {
                c->failed = true;
                return;
            }
            t->tok_amax = nt;
            t->cap_tok *= 2;
        }
        t->tok_amax[t->n_tok++] = m;
        if (t->rows % c->stride == 0 && t->n_samp < c->cap_samp)
            memcpy(t->samp + t->n_samp++ * cols, xr, (size_t)cols * sizeof(float));
        t->rows++;
    }
    if (pt == EL_TAP_ATTN_IN && c->cap_seq > 0) { /* the first seq_t tokens of the first cap_seq chunks */
        if (!t->seq) {
            t->seq = el_malloc((size_t)(c->cap_seq * c->seq_t * cols) * sizeof(float));
            t->seq_chunk = -1;
            t->seq_t = c->seq_t;
            if (!t->seq) {
                c->failed = true;
                return;
            }
        }
        if (t->seq_chunk != c->chunk) { /* a new sequence starts */
            t->seq_chunk = c->chunk;
            t->seq_pos = 0;
            if (t->n_seq < c->cap_seq)
                t->n_seq++;
            else
                t->seq_pos = c->seq_t; /* full: store nothing */
        }
        for (int64_t r = 0; r < n && t->seq_pos < c->seq_t; r++, t->seq_pos++)
            memcpy(t->seq + ((t->n_seq - 1) * c->seq_t + t->seq_pos) * cols, x + r * cols,
                   (size_t)cols * sizeof(float));
    }
    if (t->H || t->Hd) tap_gram(c, t, x, n, cols);
}

static int cmp_f32(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Per-tensor activation amax: max, or the 99.99th percentile of the per-token maxima. */
static float act_amax(const tapstat *t, bool percentile) {
    float m = 0;
    if (!percentile || t->n_tok == 0) {
        for (int64_t j = 0; j < t->cols; j++)
            m = fmaxf(m, t->amax[j]);
        return m;
    }
    float *v = el_malloc((size_t)t->n_tok * sizeof(float));
    if (!v) return act_amax(t, false);
    memcpy(v, t->tok_amax, (size_t)t->n_tok * sizeof(float));
    qsort(v, (size_t)t->n_tok, sizeof(float), cmp_f32);
    int64_t idx = (int64_t)ceil(0.9999 * (double)t->n_tok) - 1;
    if (idx < 0) idx = 0;
    m = v[idx];
    el_free(v);
    return m;
}

static edgellm_status read_calib_text(const char *path, char **out, size_t *len) {
    char *raw = NULL;
    size_t n = 0;
    EL_TRY(el_read_file(path, 512u << 20, &raw, &n));
    /* JSONL: every line that is a JSON object contributes its "text" field */
    if (n > 0 && raw[0] == '{') {
        el_buf b = {0};
        char *line = raw;
        while (line && *line) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            cJSON *o = cJSON_Parse(line);
            const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
            if (cJSON_IsString(t)) {
                if (b.len) el_buf_append_str(&b, "\n\n");
                el_buf_append_str(&b, t->valuestring);
            }
            cJSON_Delete(o);
            line = nl ? nl + 1 : NULL;
        }
        el_free(raw);
        if (!b.data) return el_err(EDGELLM_STATUS_FORMAT, "%s: no {\"text\": ...} lines", path);
        *out = b.data;
        *len = b.len;
        return EDGELLM_STATUS_OK;
    }
    *out = raw;
    *len = n;
    return EDGELLM_STATUS_OK;
}

/* The calibration text shipped with the sources (data/calib/, see its NOTICE). */
static void default_calib_path(char *out, size_t cap) {
    const char *env = getenv("EDGELLM_CALIB_FILE");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char src[3072];
    snprintf(src, sizeof src, "%s", __FILE__); /* .../src/export/quant_export.c */
    for (int i = 0; i < 3; i++) {
        char *sl = strrchr(src, '/');
        if (sl) *sl = 0;
    }
    el_buf b = {0};
    el_buf_appendf(&b, "%s/data/calib/sotu_1790_1825.txt", src);
    snprintf(out, cap, "%s", b.data ? b.data : "");
    el_buf_free(&b);
}

/* Width of the linear input at each tap (TP_ATTN, TP_O, TP_MLP, TP_DOWN). */
static void tap_cols(const el_hparams *hp, int64_t cols[TP_N]) {
    cols[TP_ATTN] = hp->n_embd;
    cols[TP_O] = hp->n_head * hp->head_dim;
    cols[TP_MLP] = hp->n_embd;
    cols[TP_DOWN] = hp->n_ff;
}

/* Bytes of the GPTQ Hessians (X^T X in doubles) of every layer's four linear inputs, all held at once. */
static double hessian_bytes(const el_hparams *hp) {
    int64_t cols[TP_N];
    tap_cols(hp, cols);
    double hb = 0;
    for (int t = 0; t < TP_N; t++)
        hb += (double)cols[t] * (double)cols[t] * 8.0 * (double)hp->n_layer;
    return hb;
}

/* Memory the Hessians may take: 60% of the machine's physical memory (EDGELLM_CALIB_MEM_MB overrides). */
static double hessian_budget(void) {
    const char *e = getenv("EDGELLM_CALIB_MEM_MB");
    if (e && *e) return atof(e) * 1e6;
    const double phys = (double)el_phys_mem_bytes();
    return phys > 0 ? 0.6 * phys : 1e300;
}

/* GPTQ Hessians of layers [l0, l1) allocated (zero), those of every other layer freed. */
static edgellm_status hessians_window(calib *c, const el_hparams *hp, int64_t l0, int64_t l1) {
    int64_t cols[TP_N];
    tap_cols(hp, cols);
    for (int64_t l = 0; l < hp->n_layer; l++)
        for (int t = 0; t < TP_N; t++) {
            tapstat *ts = &c->ts[l * TP_N + t];
            if (l < l0 || l >= l1) {
                el_free(ts->H);
                ts->H = NULL;
            } else if (!ts->H && !(ts->H = el_calloc((size_t)(cols[t] * cols[t]), sizeof(double))))
                return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory for GPTQ Hessians");
        }
    return EDGELLM_STATUS_OK;
}

/* Runs the calibration chunks of r through its engine once (c's tap installed). */
static edgellm_status calib_chunks(calib_run *r, calib *c, bool progress_on, const char *what) {
    edgellm_status s;
    double t0 = el_time_ms();
    for (int64_t ch = 0; ch < r->n_chunks; ch++) {
        if ((s = edgellm_runtime_kv_clear(r->rt, 0, 0)) < 0) return s;
        edgellm_batch b = {(int32_t)r->seq, r->ids + ch * r->seq, r->pos, r->slot, r->want};
        c->chunk = ch;
        if ((s = edgellm_runtime_eval(r->rt, &b, NULL)) < 0) return s;
        if (c->failed) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory collecting calibration statistics");
        progress(progress_on, what, ch + 1, r->n_chunks, t0);
    }
    EL_LOG_INFO("%s: %lld tokens in %.1f s", what, (long long)(r->n_chunks * r->seq), (el_time_ms() - t0) / 1000.0);
    return EDGELLM_STATUS_OK;
}

/* A further GPTQ pass: the Hessians of layers [l0, l1) from the same calibration chunks (the other
 * statistics came from the first pass). */
static edgellm_status calib_h_pass(calib_run *r, calib *c, const el_hparams *hp, int64_t l0, int64_t l1,
                                   bool progress_on) {
    EL_TRY(hessians_window(c, hp, l0, l1));
    EL_LOG_INFO("GPTQ: Hessians of layers %lld..%lld", (long long)l0, (long long)(l1 - 1));
    c->h_only = true;
    return calib_chunks(r, c, progress_on, "calibrate (GPTQ)");
}

/* Exports the float model to a temporary dir, builds an engine, runs the calibration text through it
 * with the tap installed: all statistics, and the GPTQ Hessians of the first h_layers layers. keep: when
 * not NULL, the engine and chunks are handed over for more passes (calib_h_pass, then calib_run_free). */
static edgellm_status run_calibration(const char *hf_dir, const char *tmp_root, const el_hparams *hp,
                                      const edgellm_export_params *p, int64_t h_layers, bool want_seq, calib *c,
                                      calib_run *keep) {
    edgellm_status s;
    char xdir[4096], edir[4096], cpath[4096];
    snprintf(xdir, sizeof xdir, "%s/calib-export", tmp_root);
    snprintf(edir, sizeof edir, "%s/calib-engine", tmp_root);
    const int64_t seq = p->calib_seq_len > 0 ? p->calib_seq_len : 512;
    const int64_t nsamp = p->calib_samples > 0 ? p->calib_samples : 512;
    edgellm_runtime *rt = NULL;
    edgellm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    char *text = NULL;
    size_t tlen = 0;
    int32_t *pos = NULL, *slot = NULL;
    int8_t *want = NULL;

    edgellm_export_params ep = edgellm_export_params_default();
    ep.overwrite = true;
    if ((s = edgellm_export(hf_dir, xdir, &ep)) < 0) return el_err_prefix(s, "calibration export");
    edgellm_build_params bp = edgellm_build_params_default();
    bp.max_batch_size = 1;
    bp.max_input_len = (int32_t)seq;
    bp.max_kv_cache_capacity = (int32_t)seq;
    bp.overwrite = true;
    bp.backend = p->calib_backend ? p->calib_backend : "cpu"; /* validated by el_export_quant */
    if ((s = edgellm_build(xdir, edir, &bp)) < 0) /* tmp_root goes with the export's el_outdir_abort */
        return el_err_prefix(s, "calibration build (--calib-backend %s)", bp.backend);
    el_rm_rf(xdir);

    if (p->calib_file)
        snprintf(cpath, sizeof cpath, "%s", p->calib_file);
    else
        default_calib_path(cpath, sizeof cpath);
    if ((s = read_calib_text(cpath, &text, &tlen)) < 0) {
        s = el_err_prefix(s, "calibration data (use --calib-file)");
        goto done;
    }
    {
        char tp[4096];
        if ((s = el_path_join(tp, sizeof tp, hf_dir, "tokenizer.json")) < 0) goto done;
        if (el_file_exists(tp)) {
            if ((s = edgellm_tokenizer_load(hf_dir, &tok)) < 0) goto done;
            if ((s = edgellm_tokenizer_encode(tok, text, tlen, false, &ids, &n_ids)) < 0) goto done;
        } else {
            /* no tokenizer (random-weight benchmark checkpoints): deterministic pseudo-random token ids */
            EL_LOG_WARN("calibration: %s has no tokenizer.json; calibrating on pseudo-random token ids",
                        hf_dir);
            n_ids = (size_t)(seq * nsamp);
            ids = el_malloc(n_ids * sizeof(int32_t));
            if (!ids) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto done;
            }
            uint64_t r = 0x9e3779b97f4a7c15ull;
            for (size_t i = 0; i < n_ids; i++) {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                ids[i] = (int32_t)((r >> 33) % (uint64_t)hp->n_vocab);
            }
        }
    }
    int64_t n_chunks = (int64_t)n_ids / seq;
    if (n_chunks > nsamp) n_chunks = nsamp;
    if (n_chunks < 1) {
        s = el_err(EDGELLM_STATUS_INVALID_ARG,
                   "calibration text %s has %zu tokens, fewer than --calib-seq-len %lld", cpath, n_ids,
                   (long long)seq);
        goto done;
    }
    if (n_chunks < nsamp)
        EL_LOG_INFO("calibration: %s has %zu tokens: %lld samples of %lld (asked %lld)", cpath, n_ids,
                    (long long)n_chunks, (long long)seq, (long long)nsamp);
    c->n_layer = hp->n_layer;
    c->ts = el_calloc((size_t)(hp->n_layer * TP_N), sizeof(tapstat));
    c->kamax = el_calloc((size_t)hp->n_layer, sizeof(float));
    c->vamax = el_calloc((size_t)hp->n_layer, sizeof(float));
    c->cap_samp = 256;
    c->seq_t = seq < 256 ? seq : 256; /* AWQ attention loss: the first 256 tokens of the first 4 sequences */
    c->cap_seq = want_seq ? (n_chunks < 4 ? n_chunks : 4) : 0;
    c->stride = n_chunks * seq / c->cap_samp > 1 ? n_chunks * seq / c->cap_samp : 1;
    if (!c->ts || !c->kamax || !c->vamax) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    if (h_layers > 0) {
        const double hb = hessian_bytes(hp) * (double)h_layers / (double)hp->n_layer;
        if (hb > 2e9)
            EL_LOG_WARN("GPTQ: the Hessians of %lld layers take %.1f GB", (long long)h_layers, hb / 1e9);
        else
            EL_LOG_INFO("GPTQ: Hessians %.1f MB", hb / 1e6);
        if ((s = hessians_window(c, hp, 0, h_layers)) < 0) goto done;
    }
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    if ((s = edgellm_runtime_create(edir, &rp, &rt)) < 0) {
        s = el_err_prefix(s, "calibration on the %s backend (--calib-backend)", bp.backend);
        goto done;
    }
    el_runtime_set_tap(rt, calib_tap, c);
    pos = el_malloc((size_t)seq * 4);
    slot = el_calloc((size_t)seq, 4);
    want = el_calloc((size_t)seq, 1);
    if (!pos || !slot || !want) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < seq; i++)
        pos[i] = (int32_t)i;
    calib_run r = {rt, ids, pos, slot, want, n_chunks, seq, ""};
    if ((s = calib_chunks(&r, c, p->progress, "calibrate")) < 0) goto done;
    if (keep) { /* hand the engine over: freed by calib_run_free */
        *keep = r;
        snprintf(keep->edir, sizeof keep->edir, "%s", edir);
        rt = NULL, ids = NULL, pos = NULL, slot = NULL, want = NULL;
        edir[0] = 0;
    }
    s = EDGELLM_STATUS_OK;
done:
    edgellm_runtime_free(rt);
    edgellm_tokenizer_free(tok);
    edgellm_free(ids);
    el_free(text);
    el_free(pos);
    el_free(slot);
    el_free(want);
    if (edir[0]) el_rm_rf(edir);
    return s;
}

/* ---- int4 algorithms ------------------------------------------------------------------------------------
 */

/* Vector types and AVX2 clones shared by int4 RTN, the AWQ search and clip, and GPTQ: vector code that computes
 * each element by the operations of the scalar loops in the same order, so exports stay bit-identical. The
 * clones: the hot loops also built for AVX2 (picked at load time; no FMA: the same roundings; nearbyintf inlined
 * as vroundps). */
typedef double gq_v4d __attribute__((vector_size(32)));
typedef float q4_v8f __attribute__((vector_size(32)));
typedef int32_t q4_v8i __attribute__((vector_size(32)));
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define GQ_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GQ_CLONES
#endif

/* The value of largest magnitude in w[c0, c1), the first of them (0 when all are 0 or NaN), as the scalar scan
 * "if (|w| > amax) amax = |w|, m = w" finds it: the maximum magnitude from 8 running maxima (max is exact and
 * skips NaN, so the order does not matter), then the first element of that magnitude. */
static float int4_maxval(const float *w, int64_t c0, int64_t c1) {
    q4_v8f am = {0};
    int64_t c = c0;
    for (; c + 8 <= c1; c += 8) {
        q4_v8i x;
        memcpy(&x, w + c, sizeof x);
        const q4_v8f v = (q4_v8f)(x & 0x7fffffff);
        const q4_v8i gt = v > am;
        am = (q4_v8f)(((q4_v8i)v & gt) | ((q4_v8i)am & ~gt));
    }
    float amax = 0;
    for (; c < c1; c++)
        amax = fabsf(w[c]) > amax ? fabsf(w[c]) : amax;
    for (int l = 0; l < 8; l++)
        amax = am[l] > amax ? am[l] : amax;
    if (!(amax > 0)) return 0;
    for (c = c0; fabsf(w[c]) != amax; c++)
        ;
    return w[c];
}

/* Symmetric int4 scale of w[c0, c1) (ggml q4_0 style, all 16 levels used): the value of largest
 * magnitude m (times shrink) maps to level -8, s = f16(m / -8) (the sign of s follows -m), levels
 * q = clamp(rne(w / s), -8, 7), w ~ q * s. */
static float int4_scale(const float *w, int64_t c0, int64_t c1, float shrink, uint16_t *sh) {
    const float m = int4_maxval(w, c0, c1);
    uint16_t h = el_f32_to_f16(m * shrink / -8.0f);
    if (sh) *sh = h;
    return el_f16_to_f32(h);
}

static float int4_level(float w, float s) {
    float q = s != 0 ? nearbyintf(w / s) : 0;
    return q < -8 ? -8 : q > 7 ? 7 : q;
}

/* Symmetric RTN of W (n, k) into m (z = 8). */
static void int4_rtn(const float *w, int64_t n, int64_t k, el_int4_mat *m) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t g = 0; g < m->G; g++) {
            int64_t c0 = g * m->g, c1 = c0 + m->g < k ? c0 + m->g : k;
            uint16_t sh;
            float s = int4_scale(w + j * k, c0, c1, 1.0f, &sh);
            m->s[j * m->G + g] = sh;
            m->z[j * m->G + g] = 8;
            for (int64_t c = c0; c < c0 + m->g; c++)
                m->q[j * m->kp + c] = (uint8_t)(c < c1 ? int4_level(w[j * k + c], s) + 8 : 8);
        }
}

/* Dequantized (fake-quantized) copy of W through int4 RTN. */
GQ_CLONES static void int4_fake(const float *w, int64_t n, int64_t k, int64_t g, float *out) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t c0 = 0; c0 < k; c0 += g) {
            int64_t c1 = c0 + g < k ? c0 + g : k;
            float s = int4_scale(w + j * k, c0, c1, 1.0f, NULL);
            for (int64_t c = c0; c < c1; c++)
                out[j * k + c] = int4_level(w[j * k + c], s) * s;
        }
}

/* Asymmetric (zero point) int4 over [lo, hi] (lo <= 0 <= hi), as AutoAWQ's zero_point=True:
 * s = f16((hi - lo) / 15), z = clamp(rne(-lo / s), 0, 15), q = clamp(rne(w / s) + z, 0, 15). */
static float int4_asym(float lo, float hi, int *z, uint16_t *sh) {
    lo = fminf(lo, 0);
    hi = fmaxf(hi, 0);
    uint16_t h = el_f32_to_f16((hi - lo) / 15.0f);
    float s = el_f16_to_f32(h);
    int zz = s > 0 ? (int)nearbyintf(-lo / s) : 8;
    *z = zz < 0 ? 0 : zz > 15 ? 15 : zz;
    if (sh) *sh = h;
    return s;
}
static float int4_asym_level(float w, float s, int z) {
    float q = s > 0 ? nearbyintf(w / s) + (float)z : (float)z;
    return q < 0 ? 0 : q > 15 ? 15 : q;
}
static void group_minmax(const float *w, int64_t c0, int64_t c1, float *lo, float *hi) {
    float a = 0, b = 0;
    for (int64_t c = c0; c < c1; c++) {
        a = fminf(a, w[c]);
        b = fmaxf(b, w[c]);
    }
    *lo = a;
    *hi = b;
}

static void int4_rtn_asym(const float *w, int64_t n, int64_t k, el_int4_mat *m) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t g = 0; g < m->G; g++) {
            int64_t c0 = g * m->g, c1 = c0 + m->g < k ? c0 + m->g : k;
            float lo, hi;
            int z;
            uint16_t sh;
            group_minmax(w + j * k, c0, c1, &lo, &hi);
            float s = int4_asym(lo, hi, &z, &sh);
            m->s[j * m->G + g] = sh;
            m->z[j * m->G + g] = (uint8_t)z;
            for (int64_t c = c0; c < c0 + m->g; c++)
                m->q[j * m->kp + c] = (uint8_t)(c < c1 ? int4_asym_level(w[j * k + c], s, z) : (float)z);
        }
}

GQ_CLONES static void int4_fake_asym(const float *w, int64_t n, int64_t k, int64_t g, float *out) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t c0 = 0; c0 < k; c0 += g) {
            int64_t c1 = c0 + g < k ? c0 + g : k;
            float lo, hi;
            int z;
            group_minmax(w + j * k, c0, c1, &lo, &hi);
            float s = int4_asym(lo, hi, &z, NULL);
            for (int64_t c = c0; c < c1; c++)
                out[j * k + c] = (int4_asym_level(w[j * k + c], s, z) - (float)z) * s;
        }
}

/* ---- nvfp4 (ModelOpt): e2m1 values, e4m3 scale per 16, f32 global scale ----------------------------------
 */

static float nvfp4_global(const float *w, int64_t n, int64_t k) {
    float amax = 0;
    for (int64_t i = 0; i < n * k; i++)
        amax = fmaxf(amax, fabsf(w[i]));
    return amax / (6.0f * 448.0f);
}

/* One block w[0, len) (len <= 16) at global scale gs: the e4m3 block scale code and the e2m1 codes.
 * ModelOpt's scale is e4m3(amax / 6 / gs); with gram (len x len symmetric, row stride 16: X^T X of the block's
 * calibration inputs) the codes from that one down to 8 steps smaller (the block max then clips to 6)
 * and one step larger are tried, keeping the one with the least output error dw^T G dw (ties: the
 * larger scale). */
static uint8_t nvfp4_block(const float *w, int64_t len, float gs, const float *gram, uint8_t *q,
                           double *err_out) {
    float amax = 0;
    for (int64_t c = 0; c < len; c++)
        amax = fmaxf(amax, fabsf(w[c]));
    const uint8_t e0 = gs > 0 ? el_f32_to_e4m3(amax / 6.0f / gs) : 0;
    int lo = e0, hi = e0;
    if (gram && e0 > 0) {
        lo = e0 > 9 ? e0 - 8 : 1;
        hi = e0 < 0x7e ? e0 + 1 : e0;
    }
    double best = INFINITY;
    uint8_t be = e0;
    for (int e = hi; e >= lo; e--) {
        const float sc = el_e4m3_to_f32((uint8_t)e) * gs;
        float dw[16];
        for (int64_t c = 0; c < len; c++)
            dw[c] = sc > 0 ? w[c] - el_e2m1_to_f32(el_f32_to_e2m1(w[c] / sc)) * sc : w[c];
        double err = 0;
        if (gram) { /* r = G dw, each r[i] summed over j in order; G is symmetric: row j read for column j */
            double r[16] = {0};
            for (int64_t j = 0; j < len; j++) {
                const double dj = dw[j];
                for (int64_t i = 0; i < len; i++)
                    r[i] += (double)gram[j * 16 + i] * dj;
            }
            for (int64_t i = 0; i < len; i++)
                err += r[i] * dw[i];
        }
        if (err < best) {
            best = err;
            be = (uint8_t)e;
        }
    }
    const float sc = el_e4m3_to_f32(be) * gs;
    for (int64_t c = 0; c < len; c++)
        q[c] = sc > 0 ? el_f32_to_e2m1(w[c] / sc) : 0;
    *err_out += best;
    return be;
}

/* nvfp4 of W (n, k) as ModelOpt (RTN): scales u8 (n, B), quants u8 (n, B * 8) low nibble first (either may
 * be NULL), the dequantized W into deq when not NULL (may alias w). */
static double nvfp4_quant(const float *w, int64_t n, int64_t k, float gs, uint8_t *scales, uint8_t *quants,
                          float *deq) {
    const int64_t B = (k + 15) / 16;
    double err = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t b = 0; b < B; b++) {
            const int64_t c0 = b * 16, len = c0 + 16 < k ? 16 : k - c0;
            uint8_t q[16] = {0};
            const uint8_t e = nvfp4_block(w + j * k + c0, len, gs, NULL, q, &err);
            if (scales) scales[j * B + b] = e;
            if (quants)
                for (int64_t c = 0; c < 16; c += 2)
                    quants[j * B * 8 + b * 8 + c / 2] =
                        (uint8_t)((c < len ? q[c] : 0) | ((c + 1 < len ? q[c + 1] : 0) << 4));
            if (deq) {
                const float sc = el_e4m3_to_f32(e) * gs;
                for (int64_t c = 0; c < len; c++)
                    deq[j * k + c0 + c] = el_e2m1_to_f32(q[c]) * sc;
            }
        }
    return err;
}

/* Fake quantizers of the AWQ search. */
enum { FQ_INT4 = 0, FQ_INT4_ASYM = 1, FQ_NVFP4 = 2 };
static void fake_quant(int fmt, float *w, int64_t n, int64_t k, int64_t g) {
    if (fmt == FQ_NVFP4)
        nvfp4_quant(w, n, k, nvfp4_global(w, n, k), NULL, NULL, w);
    else if (fmt == FQ_INT4_ASYM)
        int4_fake_asym(w, n, k, g, w);
    else
        int4_fake(w, n, k, g, w);
}

/* y (m, n) = x (m, k) W^T, f32 (SIMD kernel, single thread). */
static void mm(const float *x, int64_t m, int64_t k, const float *w, int64_t n, float *y) {
    edgellm_cpu_matmul(x, m, k, w, EL_DTYPE_F32, 0, n, NULL, y, n, NULL);
}

typedef struct lin {
    const char *name; /* canonical weight name */
    float *w;         /* (n, k) f32, owned by the caller */
    int64_t n, k;
    float *bias;   /* (n) or NULL */
    bool quantize; /* false: excluded (kept as float) */
} lin;

/* AWQ: s = mean|x|^alpha (normalized), alpha on a 20-point grid in [0, 1), minimizing the output MSE of
 * the int4 fake-quantized linears on the sampled activations. Returns the scales in s (k). */
/* The attention block for the AWQ q/k/v loss (AutoAWQ inspects the whole self_attn module): q/k/v
 * (+ bias), q/k RMSNorm (Qwen3), RoPE, causal softmax attention per calibration sequence, o_proj in
 * float. */
typedef struct attn_blk {
    int64_t Hq, Hk, D, n_rot, n_seq, T;
    float eps, attn_scale;
    const float *inv_freq, *qn, *kn; /* qn/kn: q/k norm weights or NULL */
    const float *bias[3];            /* q/k/v biases or NULL */
    const lin *o;                    /* float o_proj */
    const int32_t *pos;              /* 0..T-1 */
} attn_blk;

/* y (n_seq * T, Hq * D) = causal attention of q (n_seq * T, Hq, D) over k, v (n_seq * T, Hk, D). */
static void attn_causal(const attn_blk *b, const float *q, const float *k, const float *v, float *y,
                        float *p) {
    const int64_t T = b->T, D = b->D, Hq = b->Hq, Hk = b->Hk, rep = Hq / Hk;
    const float sc = 1.0f / sqrtf((float)D);
    for (int64_t sq = 0; sq < b->n_seq; sq++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < Hq; h++) {
                const float *qr = q + ((sq * T + t) * Hq + h) * D;
                float mx = -INFINITY;
                for (int64_t u = 0; u <= t; u++) {
                    const float *kr = k + ((sq * T + u) * Hk + h / rep) * D;
                    float d = 0;
                    for (int64_t e = 0; e < D; e++)
                        d += qr[e] * kr[e];
                    p[u] = d * sc;
                    mx = fmaxf(mx, p[u]);
                }
                float sum = 0;
                for (int64_t u = 0; u <= t; u++)
                    sum += p[u] = expf(p[u] - mx);
                float *yr = y + ((sq * T + t) * Hq + h) * D;
                for (int64_t e = 0; e < D; e++)
                    yr[e] = 0;
                for (int64_t u = 0; u <= t; u++) {
                    const float *vr = v + ((sq * T + u) * Hk + h / rep) * D, w = p[u] / sum;
                    for (int64_t e = 0; e < D; e++)
                        yr[e] += w * vr[e];
                }
            }
}

typedef struct awq_task {
    const tapstat *t;
    const lin *ls;
    int nl;
    int64_t g, k, S, maxn;
    const float *ref, *wmean;
    const lin *down;     /* gate/up: the loss is on the MLP output down(silu(gate) * up) (down in float) */
    const attn_blk *att; /* q/k/v: the loss is on the attention block output (inputs: t->seq) */
    double loss[40];
    bool failed;
    int fmt; /* FQ_* */
} awq_task;

/* candidate gi: alpha = (gi % 20) / 20, duo scaling for gi >= 20; normalized by sqrt(max min) */
static void awq_candidate(const awq_task *a, int gi, float *cand) {
    const bool duo = gi >= 20;
    const float alpha = (float)(gi % 20) / 20.0f;
    float mx = 0, mn = INFINITY;
    for (int64_t c = 0; c < a->k; c++) {
        float mean = (float)(a->t->asum[c] / (double)(a->t->rows > 0 ? a->t->rows : 1));
        float v = powf(fmaxf(mean, 1e-8f), alpha);
        if (duo) v /= powf(a->wmean[c], 1.0f - alpha) + 1e-4f;
        if (v < 1e-4f) v = 1e-4f;
        cand[c] = v;
        mx = fmaxf(mx, v);
        mn = fminf(mn, v);
    }
    float norm = sqrtf(mx * mn);
    for (int64_t c = 0; c < a->k; c++)
        cand[c] /= norm;
}

/* The outputs the AWQ loss compares: per linear y_i = x W_i^T (out: nl blocks of S * maxn floats, each
 * (S, n_i) contiguous), or for gate/up with a->down the MLP output down(silu(y_0) * y_1) (S, down->n)
 * in the first block. */
static void awq_outputs(const awq_task *a, const float *x, const float *const *w, float *out, float *h) {
    const int64_t S = a->S, maxn = a->maxn;
    for (int i = 0; i < a->nl; i++)
        mm(x, S, a->k, w[i], a->ls[i].n, out + (size_t)i * (size_t)(S * maxn));
    if (a->att) { /* h: (S, maxn) attention output, then S * T scores scratch after it */
        const attn_blk *b = a->att;
        float *q = out, *k = out + S * maxn, *v = out + 2 * S * maxn;
        for (int i = 0; i < 3; i++)
            if (b->bias[i])
                for (int64_t r = 0; r < S; r++)
                    for (int64_t j = 0; j < a->ls[i].n; j++)
                        out[(size_t)i * (size_t)(S * maxn) + r * a->ls[i].n + j] += b->bias[i][j];
        if (b->qn) {
            edgellm_ref_rmsnorm(q, b->qn, EL_DTYPE_F32, S * b->Hq, b->D, b->eps, q);
            edgellm_ref_rmsnorm(k, b->kn, EL_DTYPE_F32, S * b->Hk, b->D, b->eps, k);
        }
        for (int64_t sq = 0; sq < b->n_seq; sq++) {
            edgellm_ref_rope(q + sq * b->T * b->Hq * b->D, b->T, b->Hq, b->D, b->n_rot, b->pos, b->inv_freq,
                             b->attn_scale);
            edgellm_ref_rope(k + sq * b->T * b->Hk * b->D, b->T, b->Hk, b->D, b->n_rot, b->pos, b->inv_freq,
                             b->attn_scale);
        }
        attn_causal(b, q, k, v, h, h + S * maxn);
        mm(h, S, b->Hq * b->D, b->o->w, b->o->n, out);
        if (b->o->bias)
            for (int64_t r = 0; r < S; r++)
                for (int64_t j = 0; j < b->o->n; j++)
                    out[r * b->o->n + j] += b->o->bias[j];
    } else if (a->down) {
        const int64_t F = a->ls[0].n;
        edgellm_ref_swiglu(out, out + S * maxn, h, S * F);
        mm(h, S, F, a->down->w, a->down->n, out);
    }
}

static double awq_loss(const awq_task *a, const float *out) {
    double loss = 0;
    const int64_t S = a->S, maxn = a->maxn;
    const int64_t n_out = a->att ? a->att->o->n : a->down ? a->down->n : 0;
    for (int i = 0; i < (n_out ? 1 : a->nl); i++) {
        const int64_t n = n_out ? n_out : a->ls[i].n;
        const float *o = out + (size_t)i * (size_t)(S * maxn), *rf = a->ref + (size_t)i * (size_t)(S * maxn);
        for (int64_t e = 0; e < S * n; e++) {
            double d = (double)o[e] - rf[e];
            loss += d * d;
        }
    }
    return loss;
}

static void awq_run(void *ctx, int ith, int nth) {
    awq_task *a = ctx;
    const int64_t k = a->k, S = a->S, maxn = a->maxn;
    float *out = el_malloc((size_t)(S * maxn * a->nl) * sizeof(float)),
          *ws = el_malloc((size_t)(maxn * k * a->nl) * sizeof(float));
    float *cand = el_malloc((size_t)k * sizeof(float)), *xs = el_malloc((size_t)(S * k) * sizeof(float));
    float *h = a->down || a->att ? el_malloc((size_t)(S * maxn + S) * sizeof(float)) : NULL;
    const float *x = a->att ? a->t->seq : a->t->samp;
    if (!out || !ws || !cand || !xs || ((a->down || a->att) && !h)) {
        a->failed = true;
    } else {
        const float *wp[3];
        for (int gi = ith; gi < 40; gi += nth) {
            awq_candidate(a, gi, cand);
            /* x / s feeds W * s: the float product is unchanged; only the quantization differs */
            for (int64_t r = 0; r < S; r++)
                for (int64_t c = 0; c < k; c++)
                    xs[r * k + c] = x[r * k + c] / cand[c];
            for (int i = 0; i < a->nl; i++) {
                const int64_t n = a->ls[i].n;
                float *wi = ws + (size_t)i * (size_t)(maxn * k);
                for (int64_t j = 0; j < n; j++)
                    for (int64_t c = 0; c < k; c++)
                        wi[j * k + c] = a->ls[i].w[j * k + c] * cand[c];
                fake_quant(a->fmt, wi, n, k, a->g);
                wp[i] = wi;
            }
            awq_outputs(a, xs, wp, out, h);
            a->loss[gi] = awq_loss(a, out);
        }
    }
    el_free(out);
    el_free(ws);
    el_free(cand);
    el_free(xs);
    el_free(h);
}

static void pool_run(el_threadpool *tp, el_task_fn fn, void *ctx) {
    if (tp)
        el_threadpool_run(tp, fn, ctx);
    else
        fn(ctx, 0, 1);
}

/* AWQ: 40 candidate scales (mean|x|^alpha and AutoAWQ's duo scaling mean|x|^alpha / w_mean^(1-alpha),
 * alpha on a 20-point grid in [0, 1)) scored by the output MSE of the int4 fake-quantized linears on the
 * sampled activations; candidates are spread over the thread pool, the choice does not depend on it. */
static edgellm_status awq_search(el_threadpool *tp, int fmt, const tapstat *t, lin *ls, int nl,
                                 const lin *down, const attn_blk *att, int64_t g, float *s,
                                 float *best_alpha) {
    const int64_t k = t->cols, S = att ? att->n_seq * att->T : t->n_samp;
    for (int64_t c = 0; c < k; c++)
        s[c] = 1;
    *best_alpha = 0;
    if (S == 0) return EDGELLM_STATUS_OK;
    int64_t maxn = 0;
    for (int i = 0; i < nl; i++)
        maxn = ls[i].n > maxn ? ls[i].n : maxn;
    if (down && down->n > maxn) maxn = down->n;
    if (att && att->o->n > maxn) maxn = att->o->n;
    float *ref = el_malloc((size_t)(S * maxn) * sizeof(float) * (size_t)nl);
    float *wmean = el_calloc((size_t)k, sizeof(float)),
          *h = el_malloc((size_t)(S * maxn + S) * sizeof(float));
    edgellm_status st = EDGELLM_STATUS_OK;
    awq_task a = {t, ls, nl, g, k, S, maxn, ref, NULL, down, att, {0}, false, fmt};
    if (!ref || !wmean || !h) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory in the AWQ search");
        goto done;
    }
    {
        const float *wp[3];
        for (int i = 0; i < nl; i++)
            wp[i] = ls[i].w;
        awq_outputs(&a, att ? t->seq : t->samp, wp, ref, h);
    }
    /* w_mean (AutoAWQ duo scaling): mean over rows of |w| / max|w| of its group */
    {
        int64_t rows = 0;
        for (int i = 0; i < nl; i++) {
            for (int64_t j = 0; j < ls[i].n; j++)
                for (int64_t c0 = 0; c0 < k; c0 += g) {
                    int64_t c1 = c0 + g < k ? c0 + g : k;
                    float am = 0;
                    for (int64_t c = c0; c < c1; c++)
                        am = fmaxf(am, fabsf(ls[i].w[j * k + c]));
                    for (int64_t c = c0; c < c1; c++)
                        wmean[c] += am > 0 ? fabsf(ls[i].w[j * k + c]) / am : 0;
                }
            rows += ls[i].n;
        }
        for (int64_t c = 0; c < k; c++)
            wmean[c] /= (float)rows;
    }
    a.wmean = wmean;
    pool_run(tp, awq_run, &a);
    if (a.failed) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory in the AWQ search");
        goto done;
    }
    int best = 0;
    for (int gi = 1; gi < 40; gi++)
        if (a.loss[gi] < a.loss[best]) best = gi;
    awq_candidate(&a, best, s);
    *best_alpha = best >= 20 ? -(float)(best % 20) / 20.0f : (float)best / 20.0f; /* negative: duo scaling */
done:
    el_free(ref);
    el_free(wmean);
    el_free(h);
    return st;
}

/* AWQ weight clipping (AutoAWQ auto_clip): per output row and group, the max |w| shrunk by
 * 0..45% (10 steps) that minimizes the group's output error over the calibration tokens, sum_x (x dw)^2 =
 * dw^T (X^T X) dw with the group's diagonal block of X^T X (all tokens; without it: 64 sampled inputs);
 * W is clamped. Rows are split over the thread pool. */
typedef struct clip_task {
    lin *L;
    const tapstat *t;
    int64_t g, S;
    bool failed, asym;
    const double *G; /* X^T X (full: k x k, else the g x g diagonal blocks; upper triangles) or NULL */
    bool full;
} clip_task;

/* shrink candidates; vectors of 4 lanes holding them; rows summed at once (3 x 3 accumulators: no spills) */
enum { CLIP_NC = 10, CLIP_NV = (CLIP_NC + 3) / 4, CLIP_R = 3 };

/* Rows r0 .. r0 + R - 1 of the clip errors dw^T G dw of all candidates at once (lane i: candidate i; d[c]: the
 * CLIP_NV vectors of dw[c]): per lane the operations of the scalar form in its order, e_r = (0.5 G[r][r]) dw[r],
 * then e_r += G[r][c] dw[c] for c = r + 1 .. gl - 1, then err += (2 e_r) dw[r] in order of r (each product
 * rounded before its add). The R rows are independent sums, run together to hide the add latency. */
static inline __attribute__((always_inline)) void clip_rows(const double *G, int64_t ld, const gq_v4d *d,
                                                            int64_t gl, int64_t r0, int R, gq_v4d *err) {
    gq_v4d e[CLIP_R][CLIP_NV];
    for (int q = 0; q < R; q++) {
        const double h = 0.5 * G[(r0 + q) * ld + r0 + q];
        const gq_v4d hv = {h, h, h, h};
        for (int v = 0; v < CLIP_NV; v++)
            e[q][v] = hv * d[(r0 + q) * CLIP_NV + v];
    }
    for (int q = 0; q + 1 < R; q++) /* the columns inside the block */
        for (int64_t c = r0 + q + 1; c < r0 + R; c++) {
            const double gc = G[(r0 + q) * ld + c];
            const gq_v4d gv = {gc, gc, gc, gc};
            for (int v = 0; v < CLIP_NV; v++) {
                const gq_v4d p = gv * d[c * CLIP_NV + v];
                e[q][v] += p;
            }
        }
    for (int64_t c = r0 + R; c < gl; c++)
        for (int q = 0; q < R; q++) {
            const double gc = G[(r0 + q) * ld + c];
            const gq_v4d gv = {gc, gc, gc, gc};
            for (int v = 0; v < CLIP_NV; v++) {
                const gq_v4d p = gv * d[c * CLIP_NV + v];
                e[q][v] += p;
            }
        }
    const gq_v4d two = {2, 2, 2, 2};
    for (int q = 0; q < R; q++)
        for (int v = 0; v < CLIP_NV; v++) {
            const gq_v4d p = two * e[q][v] * d[(r0 + q) * CLIP_NV + v];
            err[v] += p;
        }
}

/* err[v] (lane i of vector v: candidate 4 v + i) = dw^T G dw over the group's gl columns (G: its upper triangle,
 * row stride ld) */
GQ_CLONES static void clip_gerr(const double *G, int64_t ld, const gq_v4d *d, int64_t gl, gq_v4d *err) {
    for (int v = 0; v < CLIP_NV; v++)
        err[v] = (gq_v4d){0, 0, 0, 0};
    int64_t r0 = 0;
    for (; r0 + CLIP_R <= gl; r0 += CLIP_R)
        clip_rows(G, ld, d, gl, r0, CLIP_R, err);
    for (; r0 < gl; r0++)
        clip_rows(G, ld, d, gl, r0, 1, err);
}

GQ_CLONES static void clip_run(void *ctx, int ith, int nth) {
    clip_task *a = ctx;
    const int64_t k = a->L->k, g = a->g, S = a->S;
    float *dw = el_malloc((size_t)(CLIP_NC * g) * sizeof(float)); /* candidate i: dw + i * g */
    gq_v4d *d = el_aligned_alloc((size_t)(g * CLIP_NV) * sizeof(gq_v4d)); /* dw transposed, in doubles */
    if (!dw || !d) {
        a->failed = true;
        el_free(dw);
        el_free_aligned(d);
        return;
    }
    for (int64_t j = ith; j < a->L->n; j += nth) {
        float *wr = a->L->w + j * k;
        for (int64_t c0 = 0; c0 < k; c0 += g) {
            const int64_t c1 = c0 + g < k ? c0 + g : k, gl = c1 - c0;
            float csc[CLIP_NC], clo[CLIP_NC] = {0}, chi[CLIP_NC] = {0}, glo, ghi;
            group_minmax(wr, c0, c1, &glo, &ghi);
            const float gam = fmaxf(-glo, ghi);
            int nc = 0; /* the candidates before the first without a scale */
            for (; nc < CLIP_NC; nc++) {
                float *dwi = dw + nc * g;
                if (a->asym) { /* AutoAWQ: clamp to +-max_val, then min/max quantization */
                    float mv = gam * (1.0f - (float)nc / 20.0f);
                    const float lo = fmaxf(glo, -mv), hi = fminf(ghi, mv);
                    int z;
                    const float sc = int4_asym(lo, hi, &z, NULL);
                    if (!(sc > 0)) break;
                    for (int64_t c = 0; c < gl; c++) {
                        float v = fminf(fmaxf(wr[c0 + c], lo), hi);
                        dwi[c] = wr[c0 + c] - (int4_asym_level(v, sc, z) - (float)z) * sc;
                    }
                    csc[nc] = sc;
                    clo[nc] = lo;
                    chi[nc] = hi;
                } else {
                    const float sc = int4_scale(wr, c0, c1, 1.0f - (float)nc / 20.0f, NULL);
                    if (sc == 0) break;
                    for (int64_t c = 0; c < gl; c++)
                        dwi[c] = wr[c0 + c] - int4_level(wr[c0 + c], sc) * sc;
                    csc[nc] = sc;
                }
            }
            if (nc == 0) continue;
            double err[CLIP_NC] = {0};
            if (a->G) {
                for (int64_t c = 0; c < gl; c++)
                    for (int i = 0; i < CLIP_NV * 4; i++)
                        d[c * CLIP_NV + i / 4][i % 4] = i < nc ? (double)dw[i * g + c] : 0;
                gq_v4d ev[CLIP_NV];
                clip_gerr(a->G + (a->full ? c0 * k + c0 : c0 * g), a->full ? k : g, d, gl, ev);
                for (int i = 0; i < nc; i++)
                    err[i] = ev[i / 4][i % 4];
            } else {
                for (int i = 0; i < nc; i++)
                    for (int64_t r = 0; r < S; r++) {
                        const float *xr = a->t->samp + r * k + c0;
                        float e = 0;
                        for (int64_t c = 0; c < gl; c++)
                            e += xr[c] * dw[i * g + c];
                        err[i] += (double)e * e;
                    }
            }
            double best = INFINITY;
            float best_sc = 0, best_lo = 0, best_hi = 0;
            for (int i = 0; i < nc; i++)
                if (err[i] < best) {
                    best = err[i];
                    best_sc = csc[i];
                    best_lo = clo[i];
                    best_hi = chi[i];
                }
            if (best_sc == 0) continue;
            /* clamp to the range of the chosen scale: RTN then finds the same scale again */
            const float lo = a->asym ? best_lo : fminf(-8 * best_sc, 7 * best_sc),
                        hi = a->asym ? best_hi : fmaxf(-8 * best_sc, 7 * best_sc);
            for (int64_t c = c0; c < c1; c++)
                wr[c] = wr[c] > hi ? hi : wr[c] < lo ? lo : wr[c];
        }
    }
    el_free(dw);
    el_free_aligned(d);
}

static edgellm_status awq_clip(el_threadpool *tp, bool asym, lin *L, const tapstat *t, int64_t g) {
    const bool blk = t->Hd && t->gd == g;
    clip_task a = {L, t, g, t->n_samp < 64 ? t->n_samp : 64, false, asym, t->H ? t->H : blk ? t->Hd : NULL,
                   t->H != NULL};
    if (a.S == 0) return EDGELLM_STATUS_OK;
    pool_run(tp, clip_run, &a);
    return a.failed ? el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory in the AWQ clip search")
                    : EDGELLM_STATUS_OK;
}

/* ---- GPTQ ---------------------------------------------------------------------------------------------------
 * The dense algebra runs blocked, vectorized (vector extensions) and over the thread pool, but each element is
 * still computed by the operations of the plain scalar loops in the same order: every sum runs over p in
 * increasing order from the same start value (the terms it skips or adds in addition are exact zeros added to
 * +0), so the result depends neither on the blocking nor on the number of threads (bit-identical exports). */

/* Tiles: the AVX2 / default clones compute 4 rows x 8 columns (2 vectors of 4 doubles a row, 8 accumulators), the
 * AVX-512 variant (picked at run time where the CPU has it) 8 rows x 16 columns (2 vectors of 8 doubles a row, 16
 * accumulators: more independent sums in flight per step of p). Both read B from a panel packed into a thread's
 * scratch (GQ_SCRATCH doubles, (GQ_PT, GQ_NT) rows), so the matrices' power-of-two row strides (k doubles) do not
 * alias in the caches; a transposed A comes packed too (gq_gemm.band), else A's rows are read in place. Packing
 * copies values; the operations per element are the same. */
enum { GQ_NT = 128, GQ_PT = 256, GQ_RMAX = 8 };
#define GQ_SCRATCH ((size_t)GQ_PT * GQ_NT)
typedef double gq_v8d __attribute__((vector_size(64)));
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define GQ_AVX512 1
#define GQ_FN(f) (__builtin_cpu_supports("avx512f") ? f##512 : f)
#else
#define GQ_AVX512 0
#define GQ_FN(f) (f)
#endif

/* One tile of R rows of NV vectors VT: acc = C (or +0 when tow), acc -= (sub) or += a(r, p) * b(p, c) for p = 0 ..
 * np - 1 in order with a(r, p) = ap[r * lda + p] (or ap[p * lda + r] when at), b(p, c) = bp[p * ldb + c]; then
 * C = acc, or w[r * ldw + c] -= (float)acc (tow). */
#define GQ_TILE_DEF(VT)                                                                                          \
    static inline __attribute__((always_inline)) void gq_tile_##VT(double *C, int64_t ldc, float *w, int64_t ldw, \
                                                                    int R, int NV, const double *ap, int64_t lda, \
                                                                    bool at, const double *bp, int64_t ldb,       \
                                                                    int64_t np, bool sub, bool tow) {             \
        enum { L = sizeof(VT) / sizeof(double) };                                                                \
        VT acc[GQ_RMAX][2], b[2];                                                                                \
        for (int r = 0; r < R; r++)                                                                              \
            for (int v = 0; v < NV; v++)                                                                         \
                if (tow)                                                                                         \
                    acc[r][v] = (VT){0};                                                                         \
                else                                                                                             \
                    memcpy(&acc[r][v], C + r * ldc + v * L, sizeof(VT));                                         \
        for (int64_t p = 0; p < np; p++) {                                                                       \
            for (int v = 0; v < NV; v++)                                                                         \
                memcpy(&b[v], bp + p * ldb + v * L, sizeof(VT));                                                 \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                               \
                const double a = at ? ap[p * lda + r] : ap[r * lda + p];                                         \
                for (int v = 0; v < NV; v++)                                                                     \
                    acc[r][v] = sub ? acc[r][v] - a * b[v] : acc[r][v] + a * b[v];                               \
            }                                                                                                    \
        }                                                                                                        \
        for (int r = 0; r < R; r++)                                                                              \
            for (int v = 0; v < NV; v++)                                                                         \
                if (tow)                                                                                         \
                    for (int q = 0; q < L; q++)                                                                  \
                        w[r * ldw + v * L + q] -= (float)acc[r][v][q];                                           \
                else                                                                                             \
                    memcpy(C + r * ldc + v * L, &acc[r][v], sizeof(VT));                                         \
    }
GQ_TILE_DEF(gq_v4d)
GQ_TILE_DEF(gq_v8d)

/* the tile of vectors of L doubles, sub and at constants (the kernel without branches) */
#define GQ_TILE_CALL(f, s, t) f(C, ldc, w, ldw, R, NV, ap, lda, t, bp, ldb, np, s, tow)
static inline __attribute__((always_inline)) void gq_tile(int L, double *C, int64_t ldc, float *w, int64_t ldw, int R,
                                                          int NV, const double *ap, int64_t lda, bool at,
                                                          const double *bp, int64_t ldb, int64_t np, bool sub,
                                                          bool tow) {
    if (L == 8 && sub)
        at ? GQ_TILE_CALL(gq_tile_gq_v8d, true, true) : GQ_TILE_CALL(gq_tile_gq_v8d, true, false);
    else if (L == 8)
        at ? GQ_TILE_CALL(gq_tile_gq_v8d, false, true) : GQ_TILE_CALL(gq_tile_gq_v8d, false, false);
    else if (sub)
        at ? GQ_TILE_CALL(gq_tile_gq_v4d, true, true) : GQ_TILE_CALL(gq_tile_gq_v4d, true, false);
    else
        at ? GQ_TILE_CALL(gq_tile_gq_v4d, false, true) : GQ_TILE_CALL(gq_tile_gq_v4d, false, false);
}

/* the same for one element (row r, column c), A(r, p) = A[r * lda + p], or A[p * lda + r] when at */
static inline double gq_dot1(double v, const double *A, int64_t lda, bool at, int64_t r, const double *B,
                             int64_t ldb, int64_t c, int64_t p0, int64_t p1, bool sub) {
    for (int64_t p = p0; p < p1; p++) {
        const double t = (at ? A[p * lda + r] : A[r * lda + p]) * B[p * ldb + c];
        v = sub ? v - t : v + t;
    }
    return v;
}

/* B rows [p0, p1), columns [c0, c0 + nc) into bp (rows of GQ_NT) */
static void gq_pack_b(double *bp, const double *B, int64_t ldb, int64_t p0, int64_t p1, int64_t c0, int64_t nc) {
    for (int64_t p = p0; p < p1; p++)
        memcpy(bp + (p - p0) * GQ_NT, B + p * ldb + c0, (size_t)nc * sizeof(double));
}

#define GQ_ALL (INT64_MIN / 4)
/* C (M, N) -= (sub) or += A (M, P) B (P, N), each element's sum in order of p. The sum of C[r][c] may start
 * at p = max(r + prow, c + pcol) (GQ_ALL: 0) when the terms below are zeros; lower: only c <= r is needed.
 * scr: GQ_SCRATCH doubles per thread. The p tiles run outermost; when at, a thread packs its row blocks of A into
 * band once per p tile (row by row of A, so the strided rows are read in order). */
typedef struct gq_gemm {
    double *C;
    const double *A, *B;
    int64_t ldc, lda, ldb, M, N, P, prow, pcol;
    bool at, sub, lower;
    double *scr, *band; /* band (at): A's rows packed per p tile, (M + GQ_RMAX) * GQ_PT doubles */
} gq_gemm;

static inline __attribute__((always_inline)) void gq_gemm_body(const gq_gemm *g, int ith, int nth, int R, int L,
                                                               int NV) {
    const int64_t W = (int64_t)L * NV;
    double *bp = g->scr + (size_t)ith * GQ_SCRATCH;
    const int64_t r00 = R * (int64_t)ith, rs = R * (int64_t)nth;
    for (int64_t pt = 0; pt < g->P; pt += GQ_PT) {
        const int64_t p1t = pt + GQ_PT < g->P ? pt + GQ_PT : g->P;
        for (int64_t p = pt; g->at && p < p1t; p++)
            for (int64_t r0 = r00; r0 < g->M && r0 + g->prow <= p; r0 += rs)
                for (int64_t r = 0; r < R && r0 + r < g->M; r++)
                    g->band[r0 * GQ_PT + (p - pt) * R + r] = g->A[p * g->lda + r0 + r];
        for (int64_t ct = 0; ct < g->N; ct += GQ_NT) {
            const int64_t c1t = ct + GQ_NT < g->N ? ct + GQ_NT : g->N;
            if (ct + g->pcol >= p1t) continue; /* every tile's sum starts at or after p1t */
            gq_pack_b(bp, g->B, g->ldb, pt, p1t, ct, c1t - ct);
            for (int64_t r0 = r00; r0 < g->M; r0 += rs) {
                const int64_t nr = g->M - r0 < R ? g->M - r0 : R, pa = r0 + g->prow > pt ? r0 + g->prow : pt;
                if (pa >= p1t || (g->lower && ct > r0 + R - 1)) continue;
                const int64_t lda = g->at ? R : g->lda; /* A(r, p): the band (at), else A's rows in place */
                for (int64_t c0 = ct; c0 < c1t && !(g->lower && c0 > r0 + R - 1); c0 += W) {
                    const int64_t pb = c0 + g->pcol > pa ? c0 + g->pcol : pa;
                    if (pb >= p1t) continue;
                    double *C = g->C + r0 * g->ldc + c0;
                    const double *a = g->at ? g->band + r0 * GQ_PT + (pb - pt) * R : g->A + r0 * g->lda + pb,
                                 *b = bp + (pb - pt) * GQ_NT + (c0 - ct);
                    if (nr == R && c0 + W <= c1t)
                        gq_tile(L, C, g->ldc, NULL, 0, R, NV, a, lda, g->at, b, GQ_NT, p1t - pb, g->sub, false);
                    else
                        for (int64_t r = 0; r < nr; r++)
                            for (int64_t c = 0; c < W && c0 + c < c1t; c++)
                                C[r * g->ldc + c] =
                                    gq_dot1(C[r * g->ldc + c], a, lda, g->at, r, b, GQ_NT, c, 0, p1t - pb, g->sub);
                }
            }
        }
    }
}

GQ_CLONES static void gq_gemm_run(void *ctx, int ith, int nth) {
    gq_gemm_body(ctx, ith, nth, 4, 4, 2);
}
#if GQ_AVX512
__attribute__((target("avx512f"))) static void gq_gemm_run512(void *ctx, int ith, int nth) {
    gq_gemm_body(ctx, ith, nth, 8, 8, 2);
}
#endif

/* Cholesky, the panel's rows at and below J1: a[i][j] for j in [J0, J1) from the updated sums */
typedef struct gq_chol {
    double *a;
    int64_t n, J0, J1;
} gq_chol;

static void gq_chol_run(void *ctx, int ith, int nth) {
    const gq_chol *c = ctx;
    const int64_t n = c->n;
    double *a = c->a;
    for (int64_t i = c->J1 + ith; i < n; i += nth)
        for (int64_t j = c->J0; j < c->J1; j++) {
            double v = a[i * n + j];
            for (int64_t p = c->J0; p < j; p++)
                v -= a[i * n + p] * a[j * n + p];
            a[i * n + j] = v / a[j * n + j];
        }
}

/* Cholesky of the symmetric positive definite A (n, n) in place: lower L with A = L L^T (the upper triangle
 * zeroed). Left-looking in panels of 32 columns: a[i][j] = (a[i][j] - sum_{p<j} a[i][p] a[j][p]) / a[j][j], the
 * part p < J0 as a product with the panel rows transposed into pt (n * 32 doubles). */
static bool cholesky(el_threadpool *tp, double *a, int64_t n, double *pt, double *scr, double *band) {
    enum { NB = 32 };
    for (int64_t J0 = 0; J0 < n; J0 += NB) {
        const int64_t J1 = J0 + NB < n ? J0 + NB : n, nb = J1 - J0;
        if (J0 > 0) {
            for (int64_t jj = 0; jj < nb; jj++)
                for (int64_t p = 0; p < J0; p++)
                    pt[p * nb + jj] = a[(J0 + jj) * n + p];
            gq_gemm g = {a + J0 * n + J0, a + J0 * n, pt, n, n, nb, n - J0, nb, J0, GQ_ALL, GQ_ALL,
                         false, true, false, scr, band};
            pool_run(tp, GQ_FN(gq_gemm_run), &g);
        }
        for (int64_t j = J0; j < J1; j++) {
            double d = a[j * n + j];
            for (int64_t p = J0; p < j; p++)
                d -= a[j * n + p] * a[j * n + p];
            if (!(d > 0)) return false;
            d = sqrt(d);
            a[j * n + j] = d;
            for (int64_t i = j + 1; i < J1; i++) {
                double v = a[i * n + j];
                for (int64_t p = J0; p < j; p++)
                    v -= a[i * n + p] * a[j * n + p];
                a[i * n + j] = v / d;
            }
        }
        gq_chol c = {a, n, J0, J1};
        pool_run(tp, gq_chol_run, &c);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            a[i * n + j] = 0;
    return true;
}

/* Li = L^-1 (lower; Li zeroed on entry), rows [I0, I1) once the sums over p < I0 are in: Li[i][j] =
 * -sum_{p=j}^{i-1} L[i][p] Li[p][j] / L[i][i], Li[i][i] = 1 / L[i][i]; the columns are independent (threads). */
typedef struct gq_linv {
    const double *L;
    double *Li;
    int64_t k, I0, I1;
} gq_linv;

static void gq_linv_run(void *ctx, int ith, int nth) {
    const gq_linv *c = ctx;
    const int64_t k = c->k, c0 = c->I1 * ith / nth, c1 = c->I1 * (ith + 1) / nth;
    double *Li = c->Li;
    for (int64_t i = c->I0; i < c->I1; i++) {
        double *li = Li + i * k;
        for (int64_t p = c->I0; p < i; p++) {
            const double lp = c->L[i * k + p], *lr = Li + p * k;
            const int64_t e = p + 1 < c1 ? p + 1 : c1;
            for (int64_t j = c0; j < e; j++)
                li[j] -= lp * lr[j];
        }
        const double d = c->L[i * k + i];
        for (int64_t j = c0; j < (i < c1 ? i : c1); j++)
            li[j] = li[j] / d;
        if (i >= c0 && i < c1) li[i] = 1.0 / d;
    }
}

/* The grid GPTQ rounds to: int4 (m: symmetric levels, one f16 scale per group of m->g, as RTN) or, with
 * m NULL, nvfp4 (one e4m3 scale per block of 16 at global scale gs, chosen by nvfp4_block with the block's
 * Hessian; e2m1 codes, one per element, into fp4_codes (n, k); scale codes into fp4_scales (n, B)). */
typedef struct gptq_grid {
    el_int4_mat *m;
    float gs;
    uint8_t *fp4_scales, *fp4_codes;
} gptq_grid;

/* Group / block start at column c0 of row j (the weights as updated so far): the row's scale. gram: the
 * block's 16 x 16 Hessian (nvfp4). */
static float gptq_group(const gptq_grid *q, const float *w, int64_t j, int64_t k, int64_t c0, const float *gram) {
    if (q->m) {
        const int64_t c1 = c0 + q->m->g < k ? c0 + q->m->g : k;
        uint16_t sh;
        const float s = int4_scale(w + j * k, c0, c1, 1.0f, &sh);
        q->m->s[j * q->m->G + c0 / q->m->g] = sh;
        q->m->z[j * q->m->G + c0 / q->m->g] = 8;
        return s;
    }
    const int64_t len = c0 + 16 < k ? 16 : k - c0, B = (k + 15) / 16;
    uint8_t codes[16];
    double e = 0;
    const uint8_t sc = nvfp4_block(w + j * k + c0, len, q->gs, gram, codes, &e);
    q->fp4_scales[j * B + c0 / 16] = sc;
    return el_e4m3_to_f32(sc) * q->gs;
}

/* Rounds w[j][c] = x on the grid at the row's current scale s; returns the dequantized value. */
static float gptq_round(const gptq_grid *q, int64_t j, int64_t c, int64_t k, float x, float s) {
    if (q->m) {
        const float l = int4_level(x, s);
        q->m->q[j * q->m->kp + c] = (uint8_t)(l + 8);
        return l * s;
    }
    const uint8_t code = s > 0 ? el_f32_to_e2m1(x / s) : 0;
    q->fp4_codes[j * k + c] = code;
    return el_e2m1_to_f32(code) * s;
}

/* dst[i][j] = src[j][i] (k, k) for all i, j (part 0), j > i (part 1) or j < i (part -1), in blocks of 32 x 32 */
static void gq_transpose(double *dst, const double *src, int64_t k, int part) {
    enum { TB = 32 };
    for (int64_t i0 = 0; i0 < k; i0 += TB)
        for (int64_t j0 = part > 0 ? i0 : 0; j0 < (part < 0 ? i0 + TB : k); j0 += TB)
            for (int64_t i = i0; i < i0 + TB && i < k; i++)
                for (int64_t j = j0; j < j0 + TB && j < k; j++)
                    if (part == 0 || (part > 0 ? j > i : j < i)) dst[i * k + j] = src[j * k + i];
}

/* U (k, k, row-major upper) with H^-1 = U^T U for the dampened Hessian of Hsym (upper triangle used), as
 * GPTQ: H = L L^T, H^-1 = L^-T L^-1, U = the transposed lower Cholesky factor of H^-1. */
static edgellm_status gptq_inverse(el_threadpool *tp, const double *Hsym, int64_t k, double **U_out) {
    enum { IB = 64 };
    double *H = el_malloc((size_t)(k * k) * sizeof(double)), *Hi = el_calloc((size_t)(k * k), sizeof(double)),
           *pt = el_malloc((size_t)(k * 32) * sizeof(double)),
           *scr = el_aligned_alloc((size_t)(tp ? el_threadpool_size(tp) : 1) * GQ_SCRATCH * sizeof(double)),
           *band = el_aligned_alloc((size_t)(k + GQ_RMAX) * GQ_PT * sizeof(double));
    edgellm_status st = EDGELLM_STATUS_OK;
    if (!H || !Hi || !pt || !scr || !band) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory in GPTQ");
        goto done;
    }
    for (int64_t i = 0; i < k; i++)
        memcpy(H + i * k + i, Hsym + i * k + i, (size_t)(k - i) * sizeof(double));
    gq_transpose(H, Hsym, k, -1);
    double mean = 0;
    for (int64_t i = 0; i < k; i++) {
        if (H[i * k + i] == 0) H[i * k + i] = 1; /* dead input: never active */
        mean += H[i * k + i];
    }
    double damp = 0.01 * mean / (double)k;
    for (int64_t i = 0; i < k; i++)
        H[i * k + i] += damp;
    /* H^-1 via Cholesky: H = L L^T, H^-1 = L^-T L^-1 */
    if (!cholesky(tp, H, k, pt, scr, band)) {
        st = el_err(EDGELLM_STATUS_FORMAT, "GPTQ: Hessian is not positive definite");
        goto done;
    }
    /* Hi = L^-1 (lower), in blocks of IB rows: the sums over the rows above the block as a product */
    for (int64_t I0 = 0; I0 < k; I0 += IB) {
        const int64_t I1 = I0 + IB < k ? I0 + IB : k;
        if (I0 > 0) {
            gq_gemm g = {Hi + I0 * k, H + I0 * k, Hi, k, k, k, I1 - I0, I0, I0, GQ_ALL, 0, false, true, false,
                         scr, band};
            pool_run(tp, GQ_FN(gq_gemm_run), &g);
        }
        gq_linv c = {H, Hi, k, I0, I1};
        pool_run(tp, gq_linv_run, &c);
    }
    /* H = L^-T L^-1 (full inverse): H[i][j] = sum_{p>=i} Hi[p][i] Hi[p][j] for j <= i, mirrored */
    memset(H, 0, (size_t)(k * k) * sizeof(double));
    gq_gemm g = {H, Hi, Hi, k, k, k, k, k, k, 0, GQ_ALL, true, false, true, scr, band};
    pool_run(tp, GQ_FN(gq_gemm_run), &g);
    gq_transpose(H, H, k, 1);
    /* upper Cholesky factor of H^-1: U = L'^T with H^-1 = L' L'^T */
    if (!cholesky(tp, H, k, pt, scr, band)) {
        st = el_err(EDGELLM_STATUS_FORMAT, "GPTQ: inverse Hessian is not positive definite");
        goto done;
    }
    gq_transpose(Hi, H, k, 0);
    *U_out = Hi;
    Hi = NULL;
done:
    el_free(H);
    el_free(Hi);
    el_free(pt);
    el_free_aligned(scr);
    el_free_aligned(band);
    return st;
}

/* GPTQ over rows [j0, j1) of a thread (the rows are independent once U is known). */
typedef struct gq_rows {
    const gptq_grid *gq;
    float *w, *scale;
    const double *U;
    const float *gram; /* (k / 16) blocks of 16 x 16 (nvfp4) */
    double *err;       /* (n, 128) */
    int64_t n, k, g;
    double *scr; /* GQ_SCRATCH doubles per thread */
} gq_rows;

static inline __attribute__((always_inline)) void gq_rows_body(const gq_rows *c, int ith, int nth, int R, int L,
                                                               int NV) {
    const int64_t n = c->n, k = c->k, nq = (n + R - 1) / R, W = (int64_t)L * NV;
    const int64_t j0 = R * (nq * ith / nth), j1e = R * (nq * (ith + 1) / nth), j1 = j1e < n ? j1e : n;
    const double *U = c->U;
    float *w = c->w;
    double *bp = c->scr + (size_t)ith * GQ_SCRATCH;
    for (int64_t b0 = 0; b0 < k; b0 += 128) {
        const int64_t b1 = b0 + 128 < k ? b0 + 128 : k;
        for (int64_t j = j0; j < j1; j++) {
            float *wr = w + j * k, s = c->scale[j];
            double *er = c->err + j * 128;
            for (int64_t i = b0; i < b1; i++) {
                if (i % c->g == 0) s = gptq_group(c->gq, w, j, k, i, c->gram ? c->gram + (i / 16) * 256 : NULL);
                const double d = U[i * k + i];
                const float x = wr[i];
                const float e = (float)((x - gptq_round(c->gq, j, i, k, x, s)) / d);
                er[i - b0] = e;
                const double *u = U + i * k;
                for (int64_t cc = i + 1; cc < b1; cc++)
                    wr[cc] -= e * (float)u[cc];
            }
            c->scale[j] = s;
        }
        /* lazy batch: propagate the block's errors to the remaining columns, w -= (float)(err U) */
        const int64_t P = b1 - b0;
        for (int64_t ct = b1; ct < k; ct += GQ_NT) {
            const int64_t c1t = ct + GQ_NT < k ? ct + GQ_NT : k;
            gq_pack_b(bp, U, k, b0, b1, ct, c1t - ct);
            for (int64_t r0 = j0; r0 < j1; r0 += R) {
                const int64_t nr = j1 - r0 < R ? j1 - r0 : R;
                const double *ap = c->err + r0 * 128;
                for (int64_t c0 = ct; c0 < c1t; c0 += W) {
                    float *wt = w + r0 * k + c0;
                    const double *b = bp + (c0 - ct);
                    if (nr == R && c0 + W <= c1t)
                        gq_tile(L, NULL, 0, wt, k, R, NV, ap, 128, false, b, GQ_NT, P, false, true);
                    else
                        for (int64_t r = 0; r < nr; r++)
                            for (int64_t q = 0; q < W && c0 + q < c1t; q++)
                                wt[r * k + q] -= (float)gq_dot1(0, ap, 128, false, r, b, GQ_NT, q, 0, P, false);
                }
            }
        }
    }
}

GQ_CLONES static void gq_rows_run(void *ctx, int ith, int nth) {
    gq_rows_body(ctx, ith, nth, 4, 4, 2);
}
#if GQ_AVX512
__attribute__((target("avx512f"))) static void gq_rows_run512(void *ctx, int ith, int nth) {
    gq_rows_body(ctx, ith, nth, 8, 8, 2);
}
#endif

/* GPTQ (Frantar et al.): H = X^T X (+ 1% mean-diagonal dampening), U = upper Cholesky factor of H^-1
 * (gptq_inverse; U may come from a previous linear with the same Hessian), columns quantized in order with
 * the OBS error update, lazy batches of 128 columns, group / block scales taken from the updated weights when a
 * group starts (gptq_group). Rows are spread over the thread pool. W is modified. */
static edgellm_status gptq_quantize(el_threadpool *tp, float *w, int64_t n, int64_t k, const double *Hsym,
                                    const double *U, const gptq_grid *gq) {
    for (int64_t i = 0; i < k; i++)
        if (Hsym[i * k + i] == 0) /* dead input: never active */
            for (int64_t j = 0; j < n; j++)
                w[j * k + i] = 0;
    const int64_t nb = (k + 15) / 16;
    double *err = el_malloc((size_t)(n * 128) * sizeof(double)),
           *scr = el_aligned_alloc((size_t)(tp ? el_threadpool_size(tp) : 1) * GQ_SCRATCH * sizeof(double));
    float *scale = el_calloc((size_t)n, sizeof(float)),
          *gram = gq->m ? NULL : el_malloc((size_t)(nb * 256) * sizeof(float));
    if (!err || !scr || !scale || (!gq->m && !gram)) {
        el_free(err);
        el_free_aligned(scr);
        el_free(scale);
        el_free(gram);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory in GPTQ");
    }
    for (int64_t b = 0; gram && b < nb; b++) {
        const int64_t c0 = b * 16, len = c0 + 16 < k ? 16 : k - c0;
        for (int64_t a = 0; a < len; a++)
            for (int64_t e = 0; e < len; e++)
                gram[b * 256 + a * 16 + e] =
                    (float)(a <= e ? Hsym[(c0 + a) * k + c0 + e] : Hsym[(c0 + e) * k + c0 + a]);
    }
    gq_rows r = {gq, w, scale, U, gram, err, n, k, gq->m ? gq->m->g : 16, scr};
    pool_run(tp, GQ_FN(gq_rows_run), &r);
    for (int64_t j = 0; gq->m && j < n; j++)
        for (int64_t c = k; c < gq->m->kp; c++)
            gq->m->q[j * gq->m->kp + c] = 8;
    el_free(err);
    el_free_aligned(scr);
    el_free(scale);
    el_free(gram);
    return EDGELLM_STATUS_OK;
}

/* ---- per-linear writers -----------------------------------------------------------------------------------
 */

typedef struct qctx {
    qscheme scheme;
    const edgellm_export_params *p;
    const calib *cal;
    olist *out;
    cJSON *group_overrides; /* {"prefix": g} */
    cJSON *excluded;        /* ["prefix", ...] */
    bool percentile;
    el_threadpool *tp; /* AWQ search / clip, GPTQ (NULL: one thread) */
    bool awq_asym;     /* int4_awq with zero points (AutoAWQ zero_point=True) */
    const double *gptq_h; /* the Hessian whose GPTQ factor gptq_u (gptq_k columns) is: q/k/v, gate/up share it */
    double *gptq_u;
    int64_t gptq_k;
} qctx;

static void prefix_of(const char *wname, char *out, size_t cap) {
    snprintf(out, cap, "%s", wname);
    size_t l = strlen(out);
    if (l > 7 && !strcmp(out + l - 7, ".weight")) out[l - 7] = 0;
}

static edgellm_status write_int4(qctx *q, const char *prefix, const el_int4_mat *m, bool awq_fmt) {
    const int64_t np = el_int4_np(m->n), kp = m->kp, G = m->G;
    char name[512];
    int32_t *qw = el_malloc((size_t)(kp * np / 8) * 4), *qz = el_malloc((size_t)(G * np / 8) * 4),
            *gi = awq_fmt ? NULL : el_malloc((size_t)kp * 4);
    uint16_t *sc = el_malloc((size_t)(G * np) * 2);
    if (!qw || !qz || !sc || (!awq_fmt && !gi)) {
        el_free(qw);
        el_free(qz);
        el_free(gi);
        el_free(sc);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    }
    if (awq_fmt)
        el_int4_pack_awq(m, qw, qz, sc);
    else
        el_int4_pack_gptq(m, qw, qz, sc, gi);
    EL_TRY(qname(name, sizeof name, prefix, "qweight"));
    EL_TRY(olist_add(q->out, name, EL_DTYPE_I32, 2, awq_fmt ? kp : kp / 8, awq_fmt ? np / 8 : np, qw, NULL));
    EL_TRY(qname(name, sizeof name, prefix, "qzeros"));
    EL_TRY(olist_add(q->out, name, EL_DTYPE_I32, 2, G, np / 8, qz, NULL));
    EL_TRY(qname(name, sizeof name, prefix, "scales"));
    EL_TRY(olist_add(q->out, name, EL_DTYPE_F16, 2, G, np, sc, NULL));
    if (!awq_fmt) {
        EL_TRY(qname(name, sizeof name, prefix, "g_idx"));
        EL_TRY(olist_add(q->out, name, EL_DTYPE_I32, 1, kp, 0, gi, NULL));
    }
    return EDGELLM_STATUS_OK;
}

/* The GPTQ factor U of the Hessian H (k columns): computed, or the one of the previous linear with H. */
static edgellm_status gptq_factor(qctx *q, const double *H, int64_t k, const double **U) {
    if (q->gptq_h != H || q->gptq_k != k || !q->gptq_u) {
        el_free(q->gptq_u);
        q->gptq_u = NULL;
        q->gptq_h = NULL;
        EL_TRY(gptq_inverse(q->tp, H, k, &q->gptq_u));
        q->gptq_h = H;
        q->gptq_k = k;
    }
    *U = q->gptq_u;
    return EDGELLM_STATUS_OK;
}

/* Quantizes one linear per the scheme. t: its input statistics (NULL for the lm_head). H for GPTQ. */
static edgellm_status quant_linear(qctx *q, qscheme sch, lin *L, const tapstat *t, const double *H) {
    char prefix[512], name[640];
    prefix_of(L->name, prefix, sizeof prefix);
    const int64_t n = L->n, k = L->k;
    if (!L->quantize) {
        cJSON_AddItemToArray(q->excluded, cJSON_CreateString(prefix));
        EL_TRY(add_f32(q->out, L->name, 2, n, k, L->w));
    } else if (sch == QS_NVFP4) {
        /* ModelOpt NVFP4; with the calibration Hessian, GPTQ on the nvfp4 grid (block scales searched) */
        const int64_t B = (k + 15) / 16;
        uint8_t *wq = el_malloc((size_t)(n * B * 8)), *ws = el_malloc((size_t)(n * B)),
                *codes = H ? el_malloc((size_t)(n * k)) : NULL;
        if (!wq || !ws || (H && !codes)) {
            el_free(wq);
            el_free(ws);
            el_free(codes);
            return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        }
        const float gs = nvfp4_global(L->w, n, k);
        edgellm_status s = EDGELLM_STATUS_OK;
        if (H) {
            const gptq_grid gq = {NULL, gs, ws, codes};
            const double *U = NULL;
            s = gptq_factor(q, H, k, &U);
            if (s >= 0) s = gptq_quantize(q->tp, L->w, n, k, H, U, &gq);
            for (int64_t j = 0; s >= 0 && j < n; j++)
                for (int64_t c = 0; c < B * 16; c += 2)
                    wq[j * B * 8 + c / 2] = (uint8_t)((c < k ? codes[j * k + c] : 0) |
                                                      ((c + 1 < k ? codes[j * k + c + 1] : 0) << 4));
            el_free(codes);
        } else {
            nvfp4_quant(L->w, n, k, gs, ws, wq, NULL);
        }
        if (s < 0) {
            el_free(wq);
            el_free(ws);
            return s;
        }
        s = olist_add(q->out, L->name, EL_DTYPE_U8, 2, n, B * 8, wq, NULL);
        if (s >= 0) s = qname(name, sizeof name, prefix, "weight_scale");
        if (s < 0) {
            el_free(ws);
            return s;
        }
        s = olist_add(q->out, name, EL_DTYPE_F8_E4M3, 2, n, B, ws, NULL);
        if (s >= 0) s = add_scalar(q->out, prefix, "weight_scale_2", gs);
        const float amax = t ? act_amax(t, q->percentile) : 0;
        if (s >= 0 && amax > 0) s = add_scalar(q->out, prefix, "input_scale", amax / (6.0f * 448.0f));
        EL_TRY(s);
    } else if (sch == QS_FP8 || sch == QS_INT8_SQ) {
        el_dtype dt = sch == QS_FP8 ? EL_DTYPE_Q_FP8 : EL_DTYPE_Q_W8A8;
        el_qopts o = el_qopts_default();
        o.per_tensor = true; /* ModelOpt FP8: per-tensor weight scale */
        size_t nb = el_weight_nbytes(dt, n, k, 0, false);
        uint8_t *b = el_aligned_alloc(nb);
        if (!b) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        edgellm_status s = el_quantize_ref(dt, L->w, n, k, &o, b);
        if (s < 0) {
            el_free_aligned(b);
            return s;
        }
        el_qhdr h;
        memcpy(&h, b, sizeof h);
        const float *sc = (const float *)(b + h.scales_off);
        float amax = t ? act_amax(t, q->percentile) : 0;
        uint8_t *wq = el_malloc((size_t)(n * k));
        if (!wq)
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        else {
            memcpy(wq, b + h.quants_off, (size_t)(n * k));
            s = olist_add(q->out, L->name, sch == QS_FP8 ? EL_DTYPE_F8_E4M3 : EL_DTYPE_I8, 2, n, k, wq, NULL);
            if (s >= 0) s = qname(name, sizeof name, prefix, "weight_scale");
            if (s >= 0 && sch == QS_FP8)
                s = add_scalar(q->out, prefix, "weight_scale", sc[0]);
            else if (s >= 0)
                s = add_f32(q->out, name, 1, n, 0, sc);
            if (s >= 0 && amax > 0)
                s = add_scalar(q->out, prefix, "input_scale", amax / (sch == QS_FP8 ? 448.0f : 127.0f));
        }
        el_free_aligned(b);
        EL_TRY(s);
    } else { /* int4 */
        int64_t g = pick_group(q->p->group_size > 0 ? q->p->group_size : 128, k);
        if (g != q->p->group_size) {
            EL_LOG_INFO("%s: in_features %lld is not a multiple of group size %d: using group size %lld%s",
                        prefix, (long long)k, (int)q->p->group_size, (long long)g,
                        k % g ? " (row padded)" : "");
            cJSON_AddNumberToObject(q->group_overrides, prefix, (double)g);
        }
        el_int4_mat m;
        EL_TRY(el_int4_alloc(&m, n, k, g));
        edgellm_status s = EDGELLM_STATUS_OK;
        const gptq_grid gq = {&m, 0, NULL, NULL};
        if (sch == QS_INT4_GPTQ && H) {
            const double *U = NULL;
            s = gptq_factor(q, H, k, &U);
            if (s >= 0) s = gptq_quantize(q->tp, L->w, n, k, H, U, &gq);
        } else if (sch == QS_INT4_AWQ && q->awq_asym)
            int4_rtn_asym(L->w, n, k, &m);
        else
            int4_rtn(L->w, n, k, &m);
        /* one int4 layout per checkpoint: an int4 head of a GPTQ-layout export (int4_rtn / int4_gptq) is
         * written in the GPTQ layout too, since readers pick the layout from quant_method */
        const bool main_int4 =
            q->scheme == QS_INT4_AWQ || q->scheme == QS_INT4_RTN || q->scheme == QS_INT4_GPTQ;
        if (s >= 0) s = write_int4(q, prefix, &m, main_int4 ? q->scheme == QS_INT4_AWQ : sch == QS_INT4_AWQ);
        el_int4_free(&m);
        EL_TRY(s);
    }
    if (L->bias) {
        char bn[640];
        EL_TRY(qname(bn, sizeof bn, prefix, "bias"));
        EL_TRY(add_f32(q->out, bn, 1, n, 0, L->bias));
    }
    return EDGELLM_STATUS_OK;
}

/* ---- smoothing (SmoothQuant / AWQ) ----------------------------------------------------------------------
 */

static void scale_cols(lin *L, const float *s) {
    for (int64_t j = 0; j < L->n; j++)
        for (int64_t c = 0; c < L->k; c++)
            L->w[j * L->k + c] *= s[c];
}

/* SmoothQuant: s_j = max|x_j|^a / max|W_j|^(1-a) over the linears sharing the input. */
static void sq_scales(const tapstat *t, lin *ls, int nl, float alpha, float *s) {
    for (int64_t c = 0; c < t->cols; c++) {
        float wm = 0;
        for (int i = 0; i < nl; i++)
            for (int64_t j = 0; j < ls[i].n; j++)
                wm = fmaxf(wm, fabsf(ls[i].w[j * ls[i].k + c]));
        float xm = t->amax[c];
        float v = (xm > 0 && wm > 0) ? powf(xm, alpha) / powf(wm, 1.0f - alpha) : 1.0f;
        s[c] = v < 1e-5f ? 1e-5f : v;
    }
}

/* Applies input-channel scales s to a group: W *= s (columns), the producer of the input /= s
 * (norm weight, or the rows of the previous linear and its bias). Smoothed stats follow. */
static void apply_smooth(lin *ls, int nl, float *norm, lin *prev, const float *s, tapstat *t) {
    for (int i = 0; i < nl; i++)
        scale_cols(&ls[i], s);
    const int64_t k = ls[0].k;
    if (norm)
        for (int64_t c = 0; c < k; c++)
            norm[c] /= s[c];
    if (prev) {
        for (int64_t j = 0; j < prev->n; j++) {
            for (int64_t c = 0; c < prev->k; c++)
                prev->w[j * prev->k + c] /= s[j];
            if (prev->bias) prev->bias[j] /= s[j];
        }
    }
    if (t && t->amax) {
        for (int64_t c = 0; c < k; c++) {
            t->amax[c] /= s[c];
            t->asum[c] /= s[c];
        }
        for (int64_t r = 0; r < t->n_samp; r++)
            for (int64_t c = 0; c < k; c++)
                t->samp[r * k + c] /= s[c];
        for (int64_t r = 0; t->seq && r < t->n_seq * t->seq_t; r++)
            for (int64_t c = 0; c < k; c++)
                t->seq[r * k + c] /= s[c];
        if (t->H)
            for (int64_t i = 0; i < k; i++)
                for (int64_t j = i; j < k; j++)
                    t->H[i * k + j] /= (double)s[i] * (double)s[j];
        for (int64_t c0 = 0; t->Hd && c0 < k; c0 += t->gd) /* diagonal blocks of gd */
            for (int64_t i = c0; i < c0 + t->gd && i < k; i++)
                for (int64_t j = i; j < c0 + t->gd && j < k; j++)
                    t->Hd[c0 * t->gd + (i - c0) * t->gd + (j - c0)] /= (double)s[i] * (double)s[j];
        /* per-token maxima are no longer exact after smoothing: recompute from the bound */
        t->n_tok = 0;
    }
}

/* ---- the quantized export
 * ---------------------------------------------------------------------------------- */

static const el_st_tensor *plan_find(const el_export_plan *pl, const char *nm) {
    for (int64_t i = 0; i < pl->n_items; i++)
        if (!strcmp(pl->items[i].name, nm)) return pl->items[i].src;
    return NULL;
}

static bool excluded(const edgellm_export_params *p, const char *name) {
    for (int i = 0; i < p->n_exclude; i++)
        if (p->exclude && p->exclude[i] && fnmatch(p->exclude[i], name, 0) == 0) return true;
    return false;
}

static edgellm_status export_scheme(const char *hf_dir, const char *out_dir, const edgellm_export_params *p,
                                    qscheme sch) {
    edgellm_status s;
    cJSON *cfg = NULL, *out_cfg = NULL;
    el_hparams hp;
    el_st_file st = {0};
    el_export_plan plan = {0};
    olist out = {0};
    calib cal = {0};
    calib_run crun = {0};
    char tmp[4096] = "";
    bool began = false;
    float *fw[7] = {0}, *fb[7] = {0}, *n1 = NULL, *n2 = NULL, *inv = NULL, *qkn[2] = {NULL, NULL};
    int32_t *apos = NULL;
    qctx q = {sch, p, &cal, &out, NULL, NULL, false, NULL, false, NULL, NULL, 0};
    /* experiment switch: AutoAWQ's zero-point variant (on sotu-qwen3 it is worse than the symmetric
     * signed-max scale: +2.97% vs +2.58%, so symmetric is the default) */
    q.awq_asym = getenv("EDGELLM_AWQ_ZERO_POINT") != NULL;
    const char *lmq =
        p->lm_head_quantization && strcmp(p->lm_head_quantization, "none") ? p->lm_head_quantization : NULL;
    qscheme lm_sch = QS_COUNT;
    if (lmq) {
        if (!strcmp(lmq, "fp8"))
            lm_sch = QS_FP8;
        else if (!strcmp(lmq, "int8"))
            lm_sch = QS_INT8_SQ;
        else if (!strcmp(lmq, "int4_awq"))
            lm_sch = QS_INT4_AWQ;
        else if (!strcmp(lmq, "nvfp4"))
            lm_sch = QS_NVFP4;
        else
            return el_err(EDGELLM_STATUS_INVALID_ARG,
                          "unknown --lm-head-quantization '%s' (none, fp8, int8, int4_awq, nvfp4)", lmq);
    }
    if (p->calib_algorithm && strcmp(p->calib_algorithm, "max") && strcmp(p->calib_algorithm, "percentile"))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown --calib-algorithm '%s' (max or percentile)",
                      p->calib_algorithm);
    q.percentile = p->calib_algorithm && !strcmp(p->calib_algorithm, "percentile");
    if (p->calib_backend && strcmp(p->calib_backend, "cpu") && strcmp(p->calib_backend, "cuda"))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown --calib-backend '%s' (cpu or cuda)", p->calib_backend);
    const bool kv_fp8 = p->kv_cache_quantization && !strcmp(p->kv_cache_quantization, "fp8");
    if (p->kv_cache_quantization && !kv_fp8 && strcmp(p->kv_cache_quantization, "none"))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown --kv-cache-quantization '%s' (none or fp8)",
                      p->kv_cache_quantization);
    if (p->group_size != 32 && p->group_size != 64 && p->group_size != 128)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "--group-size must be 32, 64 or 128 (got %d)",
                      (int)p->group_size);
    if (!(p->sq_alpha >= 0 && p->sq_alpha <= 1))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "--sq-alpha must be in [0, 1]");
    if (!el_dir_exists(hf_dir)) return el_err(EDGELLM_STATUS_IO, "model directory %s does not exist", hf_dir);
    EL_TRY(el_check_distinct_dirs(hf_dir, out_dir));

    q.group_overrides = cJSON_CreateObject();
    q.excluded = cJSON_CreateArray();
    if (!q.group_overrides || !q.excluded) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    if ((s = el_load_model_config(hf_dir, &cfg, NULL, &hp)) < 0) goto fail;
    if ((s = el_st_open(hf_dir, &st)) < 0) goto fail;
    if ((s = el_export_plan_make(&hp, &st, "checkpoint", true, &plan)) < 0) goto fail;
    if ((s = el_outdir_begin(out_dir, p->overwrite, tmp, sizeof tmp)) < 0) goto fail;
    began = true;

    /* AWQ-style scale search: int4_awq; for nvfp4 only as an experiment (EDGELLM_NVFP4_AWQ=1: ModelOpt's
     * nvfp4_awq idea, folded so the checkpoint stays NVFP4, before GPTQ): on sotu-qwen3 +1.13% vs +1.81%
     * without it, on stories260K +6.59% vs +4.97% (docs/quantization.md) */
    const bool awq = sch == QS_INT4_AWQ || (sch == QS_NVFP4 && getenv("EDGELLM_NVFP4_AWQ") != NULL);
    const int afmt = sch == QS_NVFP4 ? FQ_NVFP4 : q.awq_asym ? FQ_INT4_ASYM : FQ_INT4;
    const bool need_cal = sch != QS_INT4_RTN || kv_fp8;
    cal.gram_group = sch == QS_INT4_AWQ ? p->group_size : 0; /* the AWQ clip loss */
    /* GPTQ (int4_gptq, nvfp4) needs each layer's Hessian: as many layers' as the memory allowed takes per
     * pass over the calibration data (one pass when all fit; the exports are the same). When not even one
     * layer's fit, int4_gptq stops with a clear error, nvfp4 quantizes with the block-scale search alone. */
    bool want_h = sch == QS_INT4_GPTQ || sch == QS_NVFP4;
    const double hb = want_h ? hessian_bytes(&hp) / 1e6 : 0, bud = want_h ? hessian_budget() / 1e6 : 0;
    const double hb_layer = hb / (double)hp.n_layer;
    int64_t h_win = want_h ? hp.n_layer : 0; /* layers per pass */
    if (want_h && hb > bud) {
        if (hb_layer > bud) {
            if (sch == QS_INT4_GPTQ) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY,
                           "int4_gptq: the GPTQ Hessians of one layer need %.0f MB, more than the %.0f MB allowed "
                           "(60%% of physical memory, EDGELLM_CALIB_MEM_MB); use int4_awq",
                           hb_layer, bud);
                goto fail;
            }
            EL_LOG_INFO("nvfp4: the GPTQ Hessians of one layer would need %.0f MB (allowed %.0f MB): block-scale "
                        "search without GPTQ", hb_layer, bud);
            want_h = false;
            h_win = 0;
        } else {
            h_win = (int64_t)(bud / hb_layer);
            EL_LOG_INFO("GPTQ: the Hessians of all %lld layers need %.0f MB (allowed %.0f MB): %lld passes over the "
                        "calibration data, %lld layers each", (long long)hp.n_layer, hb, bud,
                        (long long)((hp.n_layer + h_win - 1) / h_win), (long long)h_win);
        }
    }
    if (need_cal && (s = run_calibration(hf_dir, tmp, &hp, p, h_win, awq, &cal, h_win < hp.n_layer ? &crun : NULL)) <
                        0)
        goto fail;
    int64_t h_hi = h_win; /* the Hessians held: layers [h_hi - h_win, h_hi) */
    if ((awq || want_h) && el_num_cpus() > 1) q.tp = el_threadpool_create(el_num_cpus());

    /* index the plan by canonical name */
    const el_dtype wdt = plan.items[0].src->dtype; /* the embedding dtype: unquantized 2-D weights keep it */
#define FIND(nm) plan_find(&plan, nm)
    double t0 = el_time_ms();
    float rope_scale = 1.0f;
    if ((s = olist_add(&out, "model.embed_tokens.weight", wdt, 2, hp.n_vocab, hp.n_embd, NULL,
                       FIND("model.embed_tokens.weight"))) < 0)
        goto fail;
    static const char *lnames[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                    "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                    "mlp.down_proj"};
    const int64_t E = hp.n_embd, QD = hp.n_head * hp.head_dim, KD = hp.n_head_kv * hp.head_dim, F = hp.n_ff;
    const int64_t ln_n[7] = {QD, KD, KD, E, F, F, E}, ln_k[7] = {E, E, E, QD, E, E, F};
    const int ln_tap[7] = {TP_ATTN, TP_ATTN, TP_ATTN, TP_O, TP_MLP, TP_MLP, TP_DOWN};
    for (int64_t l = 0; l < hp.n_layer; l++) {
        char nm[256];
        lin L[7];
        if (want_h && l == h_hi) { /* the next window of Hessians: one more pass over the calibration data */
            el_free(q.gptq_u); /* the cached factor belongs to a Hessian about to be freed */
            q.gptq_u = NULL;
            q.gptq_h = NULL;
            h_hi = l + h_win < hp.n_layer ? l + h_win : hp.n_layer;
            if ((s = calib_h_pass(&crun, &cal, &hp, l, h_hi, p->progress)) < 0) goto fail;
        }
        for (int i = 0; i < 7; i++) {
            snprintf(nm, sizeof nm, "model.layers.%lld.%s.weight", (long long)l, lnames[i]);
            const el_st_tensor *t = FIND(nm);
            fw[i] = t ? load_f32(t) : NULL;
            snprintf(nm, sizeof nm, "model.layers.%lld.%s.bias", (long long)l, lnames[i]);
            const el_st_tensor *tb = FIND(nm);
            fb[i] = tb ? load_f32(tb) : NULL;
            if (!fw[i] || (tb && !fb[i])) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory loading layer %lld", (long long)l);
                goto fail;
            }
            snprintf(nm, sizeof nm, "model.layers.%lld.%s.weight", (long long)l, lnames[i]);
            L[i] = (lin){NULL, fw[i], ln_n[i], ln_k[i], fb[i], !excluded(p, nm)};
        }
        snprintf(nm, sizeof nm, "model.layers.%lld.input_layernorm.weight", (long long)l);
        const el_st_tensor *tn1 = FIND(nm);
        snprintf(nm, sizeof nm, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        const el_st_tensor *tn2 = FIND(nm);
        n1 = load_f32(tn1);
        n2 = load_f32(tn2);
        if (!n1 || !n2) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
        tapstat *ts = cal.ts ? &cal.ts[l * TP_N] : NULL;
        bool all_q = true;
        for (int i = 0; i < 7; i++)
            all_q = all_q && L[i].quantize;
        /* activation-aware smoothing (all linears of a group quantized, else the fold would be wasted) */
        if (ts && all_q && (sch == QS_INT8_SQ || awq)) {
            float *sv = el_malloc((size_t)(F > E ? (F > QD ? F : QD) : (E > QD ? E : QD)) * sizeof(float));
            if (!sv) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto fail;
            }
            const int64_t g = sch == QS_NVFP4 ? 16 : pick_group(p->group_size, E);
            float a1 = 0, a2 = 0, a3 = 0, a4 = -1;
            attn_blk ab = {hp.n_head,
                           hp.n_head_kv,
                           hp.head_dim,
                           el_rope_n_rot(&hp),
                           ts[TP_ATTN].n_seq,
                           cal.seq_t,
                           hp.norm_eps,
                           1.0f,
                           NULL,
                           NULL,
                           NULL,
                           {fb[0], fb[1], fb[2]},
                           &L[3],
                           NULL};
            if (awq && ts[TP_ATTN].n_seq > 0) {
                if (!inv) {
                    inv = el_malloc((size_t)(ab.n_rot / 2 + 1) * sizeof(float));
                    apos = el_malloc((size_t)cal.seq_t * sizeof(int32_t));
                    if (!inv || !apos)
                        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                    else {
                        el_rope_inv_freq(&hp, inv, &rope_scale);
                        for (int64_t i = 0; i < cal.seq_t; i++)
                            apos[i] = (int32_t)i;
                    }
                }
                for (int qn = 0; s >= 0 && hp.qk_norm && qn < 2; qn++) {
                    snprintf(nm, sizeof nm, "model.layers.%lld.self_attn.%s_norm.weight", (long long)l,
                             qn ? "k" : "q");
                    const el_st_tensor *tq = FIND(nm);
                    el_free(qkn[qn]);
                    qkn[qn] = tq ? load_f32(tq) : NULL;
                    if (!qkn[qn]) s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory loading %s", nm);
                }
                ab.inv_freq = inv;
                ab.attn_scale = rope_scale;
                ab.pos = apos;
                ab.qn = hp.qk_norm ? qkn[0] : NULL;
                ab.kn = hp.qk_norm ? qkn[1] : NULL;
            }
            /* q/k/v <- input_layernorm */
            if (s < 0) {
            } else if (sch == QS_INT8_SQ)
                sq_scales(&ts[TP_ATTN], &L[0], 3, p->sq_alpha, sv);
            else
                s = awq_search(q.tp, afmt, &ts[TP_ATTN], &L[0], 3, NULL, ts[TP_ATTN].n_seq ? &ab : NULL, g,
                               sv, &a1);
            if (s >= 0) apply_smooth(&L[0], 3, n1, NULL, sv, &ts[TP_ATTN]);
            /* gate/up <- post_attention_layernorm */
            if (s >= 0) {
                if (sch == QS_INT8_SQ)
                    sq_scales(&ts[TP_MLP], &L[4], 2, p->sq_alpha, sv);
                else
                    s = awq_search(q.tp, afmt, &ts[TP_MLP], &L[4], 2, &L[6], NULL, g, sv, &a2);
                if (s >= 0) apply_smooth(&L[4], 2, n2, NULL, sv, &ts[TP_MLP]);
            }
            /* down <- up (rows) */
            if (s >= 0) {
                if (sch == QS_INT8_SQ)
                    sq_scales(&ts[TP_DOWN], &L[6], 1, p->sq_alpha, sv);
                else
                    s = awq_search(q.tp, afmt, &ts[TP_DOWN], &L[6], 1, NULL, NULL,
                                   sch == QS_NVFP4 ? 16 : pick_group(p->group_size, F), sv, &a3);
                if (s >= 0) apply_smooth(&L[6], 1, NULL, &L[5], sv, &ts[TP_DOWN]);
            }
            /* o <- v only without GQA (each o input channel is one v output channel) */
            if (s >= 0 && QD == KD) {
                if (sch == QS_INT8_SQ)
                    sq_scales(&ts[TP_O], &L[3], 1, p->sq_alpha, sv);
                else
                    s = awq_search(q.tp, afmt, &ts[TP_O], &L[3], 1, NULL, NULL,
                                   sch == QS_NVFP4 ? 16 : pick_group(p->group_size, QD), sv, &a4);
                if (s >= 0) apply_smooth(&L[3], 1, NULL, &L[2], sv, &ts[TP_O]);
            }
            el_free(sv);
            if (s < 0) goto fail;
            if (sch == QS_INT4_AWQ) /* clipping, except q/k (as AutoAWQ: attention logits are sensitive) */
                for (int i = 2; i < 7 && s >= 0; i++)
                    s = awq_clip(q.tp, q.awq_asym, &L[i], &ts[ln_tap[i]], pick_group(p->group_size, L[i].k));
            if (s < 0) goto fail;
            if (awq)
                EL_LOG_INFO("awq layer %lld: alpha qkv %.2f, gate/up %.2f, down %.2f, o %.2f", (long long)l,
                            a1, a2, a3, a4);
        }
        /* norms (possibly smoothed: f32) */
        snprintf(nm, sizeof nm, "model.layers.%lld.input_layernorm.weight", (long long)l);
        if ((s = add_f32(&out, nm, 1, E, 0, n1)) < 0) goto fail;
        q.gptq_h = NULL; /* a layer's Hessians are unchanged while its linears are quantized */
        for (int i = 0; i < 7; i++) {
            snprintf(nm, sizeof nm, "model.layers.%lld.%s.weight", (long long)l, lnames[i]);
            L[i].name = nm;
            if (i == 4) { /* post_attention_layernorm (and q/k norms) come before the mlp in visit order */
                char n2n[256];
                if (hp.qk_norm) {
                    for (int qn = 0; qn < 2; qn++) {
                        snprintf(n2n, sizeof n2n, "model.layers.%lld.self_attn.%s_norm.weight", (long long)l,
                                 qn ? "k" : "q");
                        const el_st_tensor *tq = FIND(n2n);
                        if ((s = olist_add(&out, n2n, tq->dtype, 1, tq->shape[0], 0, NULL, tq)) < 0)
                            goto fail;
                    }
                }
                snprintf(n2n, sizeof n2n, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
                if ((s = add_f32(&out, n2n, 1, E, 0, n2)) < 0) goto fail;
            }
            const tapstat *t = ts ? &ts[ln_tap[i]] : NULL;
            const double *H = t ? t->H : NULL;
            if (!L[i].quantize) {
                /* excluded: keep the float weight in the checkpoint dtype (f32 when smoothing changed it) */
            }
            if ((s = quant_linear(&q, sch, &L[i], t && t->amax ? t : NULL, H)) < 0) goto fail;
        }
        for (int i = 0; i < 7; i++) {
            el_free(fw[i]);
            el_free(fb[i]);
            fw[i] = fb[i] = NULL;
        }
        el_free(n1);
        el_free(n2);
        n1 = n2 = NULL;
        if (kv_fp8 && cal.kamax) {
            snprintf(nm, sizeof nm, "model.layers.%lld.self_attn", (long long)l);
            if ((s = add_scalar(&out, nm, "k_scale", cal.kamax[l] / 448.0f)) < 0) goto fail;
            if ((s = add_scalar(&out, nm, "v_scale", cal.vamax[l] / 448.0f)) < 0) goto fail;
        }
        progress(p->progress, "quantize", l + 1, hp.n_layer, t0);
    }
    calib_run_free(&crun); /* its engine lies in the output's staging directory */
    {
        const el_st_tensor *tn = FIND("model.norm.weight");
        if ((s = olist_add(&out, "model.norm.weight", tn->dtype, 1, tn->shape[0], 0, NULL, tn)) < 0)
            goto fail;
    }
    /* A tied model with --lm-head-quantization gets its own quantized lm_head.weight (a copy of the
     * embedding table in the head's format; the embedding stays float) and is written untied, as a
     * checkpoint with a separate head is: decode then streams the quantized head, not the float table. */
    const bool untie = hp.tied_embd && lmq && lm_sch != QS_COUNT && !excluded(p, "lm_head.weight");
    if (!hp.tied_embd || untie) {
        const el_st_tensor *th = untie ? FIND("model.embed_tokens.weight") : FIND("lm_head.weight");
        if (lm_sch == QS_COUNT || excluded(p, "lm_head.weight")) {
            if ((s = olist_add(&out, "lm_head.weight", wdt, 2, hp.n_vocab, E, NULL, th)) < 0) goto fail;
        } else {
            float *w = load_f32(th);
            if (!w) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto fail;
            }
            lin L = {"lm_head.weight", w, hp.n_vocab, E, NULL, true};
            /* int4_awq for the head: no calibration tap at the final norm, so plain RTN in AWQ format */
            s = quant_linear(&q, lm_sch, &L, NULL, NULL);
            el_free(w);
            if (s < 0) goto fail;
        }
        if (untie) {
            hp.tied_embd = false;
            EL_LOG_INFO("tied embeddings: lm_head.weight written as a quantized copy of the embedding table "
                        "(config tie_word_embeddings false)");
        }
    } else if (lmq) {
        EL_LOG_WARN("tied embeddings: --exclude keeps the output head as the unquantized embedding table");
    }
    /* excluded linears keep float weights: store them in the embedding dtype */
    for (int64_t i = 0; i < out.n; i++) {
        otensor *o = &out.t[i];
        if (o->data && o->dt == EL_DTYPE_F32 && o->nd == 2 && wdt != EL_DTYPE_F32) {
            size_t ne = (size_t)(o->shape[0] * o->shape[1]);
            void *c = el_malloc(ne * el_dtype_size(wdt));
            if (!c) {
                s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
                goto fail;
            }
            el_convert(wdt, c, EL_DTYPE_F32, o->data, ne);
            el_free(o->data);
            o->data = c;
            o->dt = wdt;
            o->nbytes = ne * el_dtype_size(wdt);
        }
    }
#undef FIND

    /* config.json */
    out_cfg = el_hparams_to_config(&hp);
    if (!out_cfg) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    static const char *torch_names[] = {
        [EL_DTYPE_F32] = "float32", [EL_DTYPE_F16] = "float16", [EL_DTYPE_BF16] = "bfloat16"};
    cJSON_AddStringToObject(out_cfg, "torch_dtype", torch_names[wdt]);
    cJSON *qj = cJSON_AddObjectToObject(out_cfg, "quantization_config");
    const bool int4 = sch == QS_INT4_AWQ || sch == QS_INT4_RTN || sch == QS_INT4_GPTQ;
    if (sch == QS_INT4_AWQ) {
        cJSON_AddStringToObject(qj, "quant_method", "awq");
        cJSON_AddStringToObject(qj, "version", "gemm");
        cJSON_AddNumberToObject(qj, "bits", 4);
        cJSON_AddNumberToObject(qj, "group_size", p->group_size);
        cJSON_AddBoolToObject(qj, "zero_point", true);
        cJSON_AddItemToObject(qj, "modules_to_not_convert", cJSON_Duplicate(q.excluded, true));
    } else if (int4) {
        cJSON_AddStringToObject(qj, "quant_method", "gptq");
        cJSON_AddNumberToObject(qj, "bits", 4);
        cJSON_AddNumberToObject(qj, "group_size", p->group_size);
        cJSON_AddBoolToObject(qj, "desc_act", false);
        cJSON_AddBoolToObject(qj, "sym", true);
        cJSON_AddStringToObject(qj, "checkpoint_format", "gptq");
        cJSON_AddItemToObject(qj, "modules_to_not_convert", cJSON_Duplicate(q.excluded, true));
    } else {
        cJSON_AddStringToObject(qj, "quant_method", "modelopt");
        cJSON_AddStringToObject(qj, "quant_algo",
                                sch == QS_FP8     ? "FP8"
                                : sch == QS_NVFP4 ? "NVFP4"
                                                  : "W8A8_SQ_PER_CHANNEL");
        if (sch == QS_NVFP4) cJSON_AddNumberToObject(qj, "group_size", 16);
        cJSON_AddStringToObject(qj, "activation_scheme", sch == QS_FP8 ? "static" : "dynamic");
        if (sch == QS_INT8_SQ) cJSON_AddNumberToObject(qj, "smoothquant_alpha", p->sq_alpha);
        cJSON_AddItemToObject(qj, "exclude_modules", cJSON_Duplicate(q.excluded, true));
    }
    if (kv_fp8) cJSON_AddStringToObject(qj, "kv_cache_quant_algo", "FP8");
    if (lmq) cJSON_AddStringToObject(qj, "edgellm_lm_head", lmq);
    if (cJSON_GetArraySize(q.group_overrides) > 0)
        cJSON_AddItemToObject(qj, "edgellm_group_size_overrides", cJSON_Duplicate(q.group_overrides, true));
    cJSON *ex = cJSON_AddObjectToObject(out_cfg, "edgellm_export");
    cJSON_AddNumberToObject(ex, "format_version", EL_EXPORT_FORMAT_VERSION);
    cJSON_AddStringToObject(ex, "dtype", el_weight_dtype_user_name(wdt));
    cJSON_AddStringToObject(ex, "quantization", k_scheme_names[sch]);
    if (need_cal) {
        cJSON *cj = cJSON_AddObjectToObject(ex, "calibration");
        cJSON_AddStringToObject(cj, "file", p->calib_file ? p->calib_file : "data/calib (shipped)");
        cJSON_AddNumberToObject(cj, "samples", p->calib_samples);
        cJSON_AddNumberToObject(cj, "seq_len", p->calib_seq_len);
        cJSON_AddStringToObject(cj, "algorithm", q.percentile ? "percentile" : "max");
    }
    cJSON_AddStringToObject(ex, "source_dir", hf_dir);
    cJSON_AddStringToObject(ex, "edgellm_version", edgellm_version());
    if ((s = write_outdir(out_cfg, &out, hf_dir, tmp, out_dir, p->overwrite, &began)) < 0) goto fail;
    EL_LOG_INFO("export: %s, %lld tensors in %.1f s", k_scheme_names[sch], (long long)out.n,
                (el_time_ms() - t0) / 1000.0);
    s = EDGELLM_STATUS_OK;
    goto done;
fail:
    if (began) el_outdir_abort(tmp);
done:
    for (int i = 0; i < 7; i++) {
        el_free(fw[i]);
        el_free(fb[i]);
    }
    el_free(n1);
    el_free(n2);
    el_free(inv);
    el_free(apos);
    el_free(qkn[0]);
    el_free(qkn[1]);
    calib_free(&cal);
    calib_run_free(&crun);
    olist_free(&out);
    el_export_plan_free(&plan);
    el_st_close(&st);
    cJSON_Delete(cfg);
    cJSON_Delete(out_cfg);
    cJSON_Delete(q.group_overrides);
    cJSON_Delete(q.excluded);
    el_threadpool_free(q.tp);
    el_free(q.gptq_u);
    return s;
}

/* ---- import of pre-quantized checkpoints
 * -------------------------------------------------------------------- */

typedef struct exp_t {
    char name[256];
    int64_t rows, cols;
    bool required;
} exp_t;
typedef struct collect_ctx {
    exp_t *ex;
    int64_t n, cap;
} collect_ctx;
static edgellm_status collect_expected(const char *name, int64_t rows, int64_t cols, bool required,
                                       void *user) {
    collect_ctx *c = user;
    if (c->n == c->cap) return el_err(EDGELLM_STATUS_FORMAT, "too many tensors");
    exp_t *e = &c->ex[c->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->rows = rows;
    e->cols = cols;
    e->required = required;
    return EDGELLM_STATUS_OK;
}

static const char *const k_aux_sfx[] = {"qweight",      "qzeros",      "scales",         "g_idx", "weight",
                                        "weight_scale", "input_scale", "weight_scale_2", NULL};

static edgellm_status export_import(const char *hf_dir, const char *out_dir, const edgellm_export_params *p) {
    edgellm_status s;
    cJSON *cfg = NULL, *out_cfg = NULL;
    el_hparams hp;
    el_st_file st = {0};
    olist out = {0};
    el_qconfig qc;
    char tmp[4096] = "";
    bool began = false;
    char **canon = NULL;
    if (p->quantization && strcmp(p->quantization, "none"))
        return el_err(
            EDGELLM_STATUS_INVALID_ARG,
            "%s is already quantized (quantization_config in config.json): export it without --quantization",
            hf_dir);
    EL_TRY(el_check_distinct_dirs(hf_dir, out_dir));
    if ((s = el_load_model_config(hf_dir, &cfg, NULL, &hp)) < 0) goto fail;
    if ((s = el_qconfig_read(cfg, &qc)) < 0) goto fail;
    if ((s = el_st_open(hf_dir, &st)) < 0) goto fail;
    const el_arch *arch = el_arch_by_name(hp.arch);
    canon = el_calloc((size_t)st.n_tensors + 1, sizeof(char *));
    if (!arch || !canon) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    /* canonical names of every source tensor (aux suffixes map like the weight of the same module) */
    for (int64_t i = 0; i < st.n_tensors; i++) {
        char nm[512], base[512], mapped[512];
        snprintf(nm, sizeof nm, "%s", st.tensors[i].name);
        const char *dot = strrchr(nm, '.');
        if (!dot) continue;
        snprintf(base, sizeof base, "%.*s.weight", (int)(dot - nm), nm);
        bool skip = false;
        if ((s = arch->map_tensor(base, mapped, sizeof mapped, &skip)) < 0) goto fail;
        if (skip) continue;
        mapped[strlen(mapped) - 7] = 0;
        char full[600];
        snprintf(full, sizeof full, "%s%s", mapped, dot);
        canon[i] = el_strdup(full);
    }
    /* walk the expected tensors: float ones as usual, quantized linears as their aux tensors */
    {
        exp_t *ex = el_calloc((size_t)(32 + 24 * hp.n_layer), sizeof(exp_t));
        collect_ctx cc = {ex, 0, 32 + 24 * hp.n_layer};
        if (!ex) {
            s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
        s = el_model_visit_tensors(&hp, collect_expected, &cc);
        const int64_t nex = cc.n;
        if (s < 0) {
            el_free(ex);
            goto fail;
        }
        for (int64_t e = 0; e < nex && s >= 0; e++) {
            char prefix[256];
            prefix_of(ex[e].name, prefix, sizeof prefix);
            bool quant = false;
            for (int64_t i = 0; i < st.n_tensors && ex[e].cols; i++) {
                if (!canon[i]) continue;
                char want[300];
                if (qname(want, sizeof want, prefix, "qweight") == EDGELLM_STATUS_OK &&
                    !strcmp(canon[i], want))
                    quant = true;
                if (qname(want, sizeof want, prefix, "weight") == EDGELLM_STATUS_OK &&
                    !strcmp(canon[i], want) && st.tensors[i].dtype != EL_DTYPE_F32 &&
                    st.tensors[i].dtype != EL_DTYPE_F16 && st.tensors[i].dtype != EL_DTYPE_BF16)
                    quant = true;
            }
            bool found_any = false;
            for (int64_t i = 0; i < st.n_tensors && s >= 0; i++) {
                if (!canon[i]) continue;
                const char *cn = canon[i];
                bool ok =
                    !strcmp(cn, ex[e].name); /* plain tensors (embedding, norms, biases, float weights) */
                if (quant) { /* a quantized linear: its aux tensors, not its bias (an entry of its own) */
                    size_t pl = strlen(prefix);
                    ok = false;
                    if (!strncmp(cn, prefix, pl) && cn[pl] == '.')
                        for (int a = 0; k_aux_sfx[a]; a++)
                            ok = ok || !strcmp(cn + pl + 1, k_aux_sfx[a]);
                }
                if (!ok) continue;
                const el_st_tensor *t = &st.tensors[i];
                found_any = true;
                s = olist_add(&out, cn, t->dtype, t->n_dims, t->shape[0], t->n_dims > 1 ? t->shape[1] : 0,
                              NULL, t);
            }
            if (s >= 0 && !found_any && ex[e].required)
                s = el_err(EDGELLM_STATUS_FORMAT, "checkpoint is missing tensor '%s'", ex[e].name);
            if (s >= 0 && quant) { /* convertible by the builder? (act-order, shapes) */
                bool f = false;
                el_dtype dt;
                void *b = NULL;
                size_t nb;
                s = el_qweight_import(&st, prefix, ex[e].rows, ex[e].cols, &qc, &f, &dt, &b, &nb);
                el_free_aligned(b);
            }
        }
        el_free(ex);
        if (s < 0) goto fail;
    }
    if ((s = el_outdir_begin(out_dir, p->overwrite, tmp, sizeof tmp)) < 0) goto fail;
    began = true;
    out_cfg = el_hparams_to_config(&hp);
    cJSON_AddItemToObject(
        out_cfg, "quantization_config",
        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config"), true));
    cJSON *exj = cJSON_AddObjectToObject(out_cfg, "edgellm_export");
    cJSON_AddNumberToObject(exj, "format_version", EL_EXPORT_FORMAT_VERSION);
    cJSON_AddStringToObject(exj, "dtype", el_weight_dtype_user_name(out.t[0].dt));
    char qn[64];
    snprintf(qn, sizeof qn, "imported_%s", qc.int4_method);
    {
        const cJSON *qj = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
        const char *m = NULL;
        el_json_str(qj, "quant_method", &m);
        if (m) snprintf(qn, sizeof qn, "imported_%s", m);
    }
    cJSON_AddStringToObject(exj, "quantization", qn);
    cJSON_AddStringToObject(exj, "source_dir", hf_dir);
    cJSON_AddStringToObject(exj, "edgellm_version", edgellm_version());
    if ((s = write_outdir(out_cfg, &out, hf_dir, tmp, out_dir, p->overwrite, &began)) < 0) goto fail;
    EL_LOG_INFO("imported pre-quantized %s checkpoint: %lld tensors", qn, (long long)out.n);
    s = EDGELLM_STATUS_OK;
    goto done;
fail:
    if (began) el_outdir_abort(tmp);
done:
    if (canon)
        for (int64_t i = 0; i < st.n_tensors; i++)
            el_free(canon[i]);
    el_free(canon);
    olist_free(&out);
    el_st_close(&st);
    cJSON_Delete(cfg);
    cJSON_Delete(out_cfg);
    return s;
}

edgellm_status el_export_quant(const char *hf_dir, const char *out_dir, const edgellm_export_params *p) {
    qscheme q;
    if (config_is_prequantized(hf_dir)) return export_import(hf_dir, out_dir, p);
    if (!parse_scheme(p->quantization, &q))
        return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown quantization '%s'",
                      p->quantization ? p->quantization : "");
    return export_scheme(hf_dir, out_dir, p, q);
}
