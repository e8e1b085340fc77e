/*
 * runtime.c - the inference runtime: engine + backend + KV cache + the decoder graph + generation.
 *
 * The decoder is the one generic Llama-style graph; architecture differences are flags in el_hparams
 * (q/k/v bias, q/k norm, tied head, rope type). Every buffer is allocated at creation from the build
 * profile; eval and generate allocate nothing per token.
 *
 * A forward runs over a "ubatch" of up to max_ubatch (token, pos, slot) entries. K/V of every entry
 * are written to the cache before attention, and attention reads only the cache, so prefill, decode
 * and mixed batches are the same code path.
 */
#include "backend/backend.h"
#include "engine/engine.h"
#include "runtime/runtime_internal.h"
#include "runtime/sampler.h"

#include "edgellm/model.h"
#include "edgellm/runtime.h"
#include "edgellm/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIT_ROWS_MAX 32 /* rows of logits computed per lm_head call */

typedef struct layer_w {
    const void *attn_norm, *q, *k, *v, *o, *q_b, *k_b, *v_b, *o_b, *q_norm, *k_norm;
    const void *ffn_norm, *gate, *up, *down, *gate_b, *up_b, *down_b;
    /* dtype of each linear's weight: a quantized export may keep some linears float (--exclude) */
    el_dtype q_t, k_t, v_t, o_t, gate_t, up_t, down_t;
    el_dtype nt; /* dtype of 1-D tensors (norms, biases) */
    void *k_cache, *v_cache;
    float k_scale, v_scale; /* fp8 KV cache: the layer's calibrated scales (1 for float caches) */
} layer_w;

struct edgellm_runtime {
    el_engine *eng;
    el_backend *be;
    el_hparams hp;
    el_profile prof;
    edgellm_runtime_params params;
    /* weights */
    layer_w *layers;
    const void *tok_embd, *out_norm, *lm_head;
    el_dtype embd_t, head_t, out_norm_t;
    void **mapped; /* weight_map results to dealloc (NULL when zero-copy) */
    int64_t n_mapped;
    /* rope */
    int64_t n_rot;
    float *inv_freq_dev;
    float attn_scale;
    /* KV */
    el_dtype kv_t;
    int64_t kv_cap;
    int32_t *seq_len; /* (max_batch) host: tokens in each slot */
    /* compute buffers (device) */
    int64_t ubatch;
    float *x, *h, *q, *k, *v, *att, *g, *u, *hsel, *logits_dev;
    int32_t *ids_dev, *pos_dev, *slot_dev, *sel_dev;
    /* host staging */
    int32_t *sel_host; /* (ubatch) */
    float *bias_scratch;
    /* generation */
    el_sampler_scratch samp;
    float *logits_host; /* (max_batch, vocab) */
    el_rng *rngs;       /* (max_batch) */
    /* text */
    edgellm_tokenizer *tok;
    edgellm_chat_template *tmpl;
    edgellm_metrics metrics;
    el_tap_fn tap;
    void *tap_user;
    float *tap_buf; /* host copy for device backends, (ubatch, max(n_ff, n_head*head_dim, n_embd)) */
    bool use_graphs; /* capture decode steps (backends with graph support; EDGELLM_NO_GRAPHS=1 disables) */
    /* generate samples on the device (backends with a sample op; EDGELLM_HOST_SAMPLING=1 disables): per-row
     * parameters staged in samp_host, uploaded to samp_par_dev, ids in samp_ids_dev, all (max_batch) */
    bool dev_sampling;
    el_sample_row *samp_host, *samp_par_dev;
    int32_t *samp_ids_dev;
    /* decode lookahead (graphs + device sampling + the backend's download_begin / download_end / feed_tokens;
     * EDGELLM_NO_LOOKAHEAD=1 disables): generate queues step n + 1, fed on the device with step n's ids, before
     * it waits for step n's ids, so the device does not idle while the host reads them and launches the next */
    bool lookahead;
};

edgellm_runtime_params edgellm_runtime_params_default(void) {
    edgellm_runtime_params p = {0};
    p.n_threads = 0;
    p.device = 0;
    p.verify_checksums = true;
    p.use_reference = false;
    p.max_ubatch = 0;
    return p;
}

edgellm_sampling_params edgellm_sampling_params_default(void) {
    edgellm_sampling_params s = {1.0f, 50, 0.8f, 42};
    return s;
}

void edgellm_result_clear(edgellm_result *r) {
    if (!r) return;
    el_free(r->ids);
    r->ids = NULL;
    r->n_ids = 0;
}

/* ---- weights ------------------------------------------------------------------------------------ */

/* rows: ops only gather rows of this weight (weight_map_rows where the backend has it) */
static edgellm_status map_tensor_ex(edgellm_runtime *rt, const char *name, bool required, bool rows, const void **out,
                                    el_dtype *dt) {
    *out = NULL;
    const el_engine_tensor *t = el_engine_find(rt->eng, name);
    if (!t) {
        if (required) return el_err(EDGELLM_STATUS_FORMAT, "engine is missing tensor %s", name);
        return EDGELLM_STATUS_OK;
    }
    void *dev = NULL;
    const el_backend_i *B = &rt->be->iface;
    EL_TRY((rows && B->weight_map_rows ? B->weight_map_rows : B->weight_map)(rt->be, t->data, t->nbytes, &dev));
    if (dev != t->data) {
        rt->mapped[rt->n_mapped++] = dev;
        /* the backend works from its copy: drop this process's mapping of the source pages so RSS does not
         * count the weights twice. The engine file is mapped read-only and private, so this frees nothing
         * that a read could miss (it would fault the page back in from the file; nothing reads t->data again) */
        el_drop_pages(t->data, t->nbytes);
    }
    *out = dev;
    if (dt) *dt = t->dtype;
    return EDGELLM_STATUS_OK;
}

static edgellm_status map_tensor(edgellm_runtime *rt, const char *name, bool required, const void **out,
                                 el_dtype *dt) {
    return map_tensor_ex(rt, name, required, false, out, dt);
}

static edgellm_status map_weights(edgellm_runtime *rt) {
    const el_hparams *hp = &rt->hp;
    rt->mapped = el_calloc((size_t)rt->eng->n_tensors + 1, sizeof(void *));
    rt->layers = el_calloc((size_t)hp->n_layer, sizeof(layer_w));
    if (!rt->mapped || !rt->layers) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    /* an embedding table that is not also the head is read a few rows per token */
    EL_TRY(map_tensor_ex(rt, "model.embed_tokens.weight", true, !hp->tied_embd, &rt->tok_embd, &rt->embd_t));
    EL_TRY(map_tensor(rt, "model.norm.weight", true, &rt->out_norm, &rt->out_norm_t));
    if (hp->tied_embd) {
        rt->lm_head = rt->tok_embd;
        rt->head_t = rt->embd_t;
    } else {
        EL_TRY(map_tensor(rt, "lm_head.weight", true, &rt->lm_head, &rt->head_t));
    }
    char name[256];
#define MAPL(field, suffix, req, dtp)                                                                  \
    do {                                                                                               \
        snprintf(name, sizeof name, "model.layers.%d.%s", (int)l, suffix);                             \
        EL_TRY(map_tensor(rt, name, req, &L->field, dtp));                                             \
    } while (0)
    for (int64_t l = 0; l < hp->n_layer; l++) {
        layer_w *L = &rt->layers[l];
        MAPL(attn_norm, "input_layernorm.weight", true, &L->nt);
        MAPL(q, "self_attn.q_proj.weight", true, &L->q_t);
        MAPL(k, "self_attn.k_proj.weight", true, &L->k_t);
        MAPL(v, "self_attn.v_proj.weight", true, &L->v_t);
        MAPL(o, "self_attn.o_proj.weight", true, &L->o_t);
        MAPL(q_b, "self_attn.q_proj.bias", hp->qkv_bias, NULL);
        MAPL(k_b, "self_attn.k_proj.bias", hp->qkv_bias, NULL);
        MAPL(v_b, "self_attn.v_proj.bias", hp->qkv_bias, NULL);
        MAPL(o_b, "self_attn.o_proj.bias", hp->o_bias, NULL);
        MAPL(q_norm, "self_attn.q_norm.weight", hp->qk_norm, NULL);
        MAPL(k_norm, "self_attn.k_norm.weight", hp->qk_norm, NULL);
        MAPL(ffn_norm, "post_attention_layernorm.weight", true, NULL);
        MAPL(gate, "mlp.gate_proj.weight", true, &L->gate_t);
        MAPL(up, "mlp.up_proj.weight", true, &L->up_t);
        MAPL(down, "mlp.down_proj.weight", true, &L->down_t);
        MAPL(gate_b, "mlp.gate_proj.bias", hp->mlp_bias, NULL);
        MAPL(up_b, "mlp.up_proj.bias", hp->mlp_bias, NULL);
        MAPL(down_b, "mlp.down_proj.bias", hp->mlp_bias, NULL);
        if (L->nt != EL_DTYPE_F32)
            return el_err(EDGELLM_STATUS_FORMAT, "engine stores norm weights as %s, expected f32",
                          el_dtype_name(L->nt));
    }
#undef MAPL
    return EDGELLM_STATUS_OK;
}

/* ---- creation ----------------------------------------------------------------------------------- */

static edgellm_status alloc_dev(edgellm_runtime *rt, size_t n, void **out) {
    return rt->be->iface.alloc(rt->be, n ? n : 64, out);
}

void edgellm_runtime_free(edgellm_runtime *rt) {
    if (!rt) return;
    el_backend *be = rt->be;
    if (be) {
        void **bufs[] = {(void **)&rt->x,      (void **)&rt->h,       (void **)&rt->q,       (void **)&rt->k,
                         (void **)&rt->v,      (void **)&rt->att,     (void **)&rt->g,       (void **)&rt->u,
                         (void **)&rt->hsel,   (void **)&rt->logits_dev, (void **)&rt->ids_dev,
                         (void **)&rt->pos_dev, (void **)&rt->slot_dev, (void **)&rt->sel_dev,
                         (void **)&rt->inv_freq_dev};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (*bufs[i]) be->iface.dealloc(be, *bufs[i]);
        if (rt->layers)
            for (int64_t l = 0; l < rt->hp.n_layer; l++) {
                if (rt->layers[l].k_cache) be->iface.dealloc(be, rt->layers[l].k_cache);
                if (rt->layers[l].v_cache) be->iface.dealloc(be, rt->layers[l].v_cache);
            }
        for (int64_t i = 0; i < rt->n_mapped; i++) be->iface.dealloc(be, rt->mapped[i]);
        if (rt->samp_par_dev) be->iface.dealloc(be, rt->samp_par_dev);
        if (rt->samp_ids_dev) be->iface.dealloc(be, rt->samp_ids_dev);
        el_backend_free(be);
    }
    el_free(rt->mapped);
    el_free(rt->layers);
    el_free(rt->seq_len);
    el_free(rt->sel_host);
    el_free(rt->logits_host);
    el_free(rt->rngs);
    el_free(rt->samp_host);
    el_free(rt->tap_buf);
    el_sampler_scratch_free(&rt->samp);
    edgellm_tokenizer_free(rt->tok);
    edgellm_chat_template_free(rt->tmpl);
    el_engine_close(rt->eng);
    el_free(rt);
}

edgellm_status edgellm_runtime_create(const char *engine_dir, const edgellm_runtime_params *p,
                                      edgellm_runtime **out) {
    if (!out) return el_err(EDGELLM_STATUS_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!engine_dir) return el_err(EDGELLM_STATUS_INVALID_ARG, "engine_dir is NULL");
    edgellm_status st = EDGELLM_STATUS_OK;
    edgellm_runtime *rt = el_calloc(1, sizeof *rt);
    if (!rt) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    rt->params = p ? *p : edgellm_runtime_params_default();
    EL_CHECK(el_engine_open(engine_dir, rt->params.verify_checksums, &rt->eng));
    rt->hp = rt->eng->hp;
    rt->prof = rt->eng->profile;
    const el_hparams *hp = &rt->hp;

    /* the engine reader always maps the engine file read-only and private (el_mmap_open) */
    el_backend_params bp = {rt->params.n_threads, rt->params.device, rt->params.use_reference, rt->eng->weight_bytes,
                            true};
    EL_CHECK(el_backend_create(rt->prof.backend, &bp, &rt->be));
    EL_CHECK(map_weights(rt));
    rt->use_graphs = rt->be->iface.graph_begin != NULL && !getenv("EDGELLM_NO_GRAPHS");
    rt->dev_sampling = rt->be->iface.sample != NULL && !getenv("EDGELLM_HOST_SAMPLING");
    rt->lookahead = rt->use_graphs && rt->dev_sampling && rt->be->iface.download_begin &&
                    rt->be->iface.download_end && rt->be->iface.feed_tokens && !getenv("EDGELLM_NO_LOOKAHEAD");

    /* rope table */
    rt->n_rot = el_rope_n_rot(hp);
    {
        float inv[1024];
        if (rt->n_rot / 2 > 1024) {
            st = el_err(EDGELLM_STATUS_UNSUPPORTED, "rotary dimension %lld too large", (long long)rt->n_rot);
            goto fail;
        }
        el_rope_inv_freq(hp, inv, &rt->attn_scale);
        EL_CHECK(alloc_dev(rt, sizeof(float) * (size_t)(rt->n_rot / 2 + 1), (void **)&rt->inv_freq_dev));
        EL_CHECK(rt->be->iface.upload(rt->be, rt->inv_freq_dev, inv, sizeof(float) * (size_t)(rt->n_rot / 2)));
    }

    /* KV cache element type from the build profile (f32 for fp32 engines by default) */
    rt->kv_t = rt->prof.kv_dtype;
    rt->kv_cap = rt->prof.max_kv_cache_capacity;
    int64_t nb = rt->prof.max_batch_size;
    size_t kv_bytes = (size_t)nb * (size_t)hp->n_head_kv * (size_t)rt->kv_cap * (size_t)hp->head_dim *
                      el_dtype_size(rt->kv_t);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        EL_CHECK(alloc_dev(rt, kv_bytes, &rt->layers[l].k_cache));
        EL_CHECK(alloc_dev(rt, kv_bytes, &rt->layers[l].v_cache));
        const bool fp8 = rt->kv_t == EL_DTYPE_F8_E4M3; /* the reader guarantees the scales */
        rt->layers[l].k_scale = fp8 ? rt->eng->kv_k_scale[l] : 1.0f;
        rt->layers[l].v_scale = fp8 ? rt->eng->kv_v_scale[l] : 1.0f;
    }
    rt->seq_len = el_calloc((size_t)nb, sizeof(int32_t));
    if (!rt->seq_len) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }

    /* compute buffers */
    int64_t U = rt->params.max_ubatch > 0 ? rt->params.max_ubatch : 512;
    int64_t need = (int64_t)rt->prof.max_batch_size * rt->prof.max_input_len;
    if (U > need) U = need;
    if (U < nb) U = nb;
    rt->ubatch = U;
    size_t E = (size_t)hp->n_embd, QD = (size_t)(hp->n_head * hp->head_dim),
           KD = (size_t)(hp->n_head_kv * hp->head_dim), F = (size_t)hp->n_ff, V = (size_t)hp->n_vocab;
    size_t Uz = (size_t)U;
    EL_CHECK(alloc_dev(rt, Uz * E * 4, (void **)&rt->x));
    EL_CHECK(alloc_dev(rt, Uz * (E > QD ? E : QD) * 4, (void **)&rt->h));
    EL_CHECK(alloc_dev(rt, Uz * QD * 4, (void **)&rt->q));
    EL_CHECK(alloc_dev(rt, Uz * KD * 4, (void **)&rt->k));
    EL_CHECK(alloc_dev(rt, Uz * KD * 4, (void **)&rt->v));
    EL_CHECK(alloc_dev(rt, Uz * QD * 4, (void **)&rt->att));
    EL_CHECK(alloc_dev(rt, Uz * F * 4, (void **)&rt->g));
    EL_CHECK(alloc_dev(rt, Uz * F * 4, (void **)&rt->u));
    EL_CHECK(alloc_dev(rt, Uz * E * 4, (void **)&rt->hsel));
    EL_CHECK(alloc_dev(rt, (size_t)LOGIT_ROWS_MAX * V * 4, (void **)&rt->logits_dev));
    EL_CHECK(alloc_dev(rt, Uz * 4, (void **)&rt->ids_dev));
    EL_CHECK(alloc_dev(rt, Uz * 4, (void **)&rt->pos_dev));
    EL_CHECK(alloc_dev(rt, Uz * 4, (void **)&rt->slot_dev));
    EL_CHECK(alloc_dev(rt, Uz * 4, (void **)&rt->sel_dev));
    rt->sel_host = el_malloc(Uz * sizeof(int32_t));
    rt->logits_host = el_malloc((size_t)nb * V * sizeof(float));
    rt->rngs = el_calloc((size_t)nb, sizeof(el_rng));
    if (!rt->sel_host || !rt->logits_host || !rt->rngs) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    EL_CHECK(el_sampler_scratch_init(&rt->samp, (int64_t)V));
    if (rt->dev_sampling) {
        EL_CHECK(alloc_dev(rt, (size_t)nb * sizeof(el_sample_row), (void **)&rt->samp_par_dev));
        EL_CHECK(alloc_dev(rt, (size_t)nb * sizeof(int32_t), (void **)&rt->samp_ids_dev));
        rt->samp_host = el_calloc((size_t)nb, sizeof(el_sample_row));
        if (!rt->samp_host) {
            st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
    }

    /* text layer (optional) */
    {
        char path[4096];
        EL_CHECK(el_path_join(path, sizeof path, engine_dir, "tokenizer.json"));
        if (el_file_exists(path)) EL_CHECK(edgellm_tokenizer_load(engine_dir, &rt->tok));
        edgellm_status ts = edgellm_chat_template_load(engine_dir, &rt->tmpl);
        if (ts == EDGELLM_STATUS_UNSUPPORTED) {
            EL_LOG_WARN("chat template not usable: %s", edgellm_last_error());
            rt->tmpl = NULL;
        } else if (ts == EDGELLM_STATUS_NO_MEMORY) {
            st = ts; /* not "no template": the engine has one that could not be loaded */
            goto fail;
        } else if (ts < 0) {
            rt->tmpl = NULL; /* no template in this engine */
        }
        edgellm_clear_error();
    }
    *out = rt;
    return EDGELLM_STATUS_OK;
fail:
    edgellm_runtime_free(rt);
    return st;
}

/* ---- accessors ---------------------------------------------------------------------------------- */

const edgellm_tokenizer *edgellm_runtime_tokenizer(const edgellm_runtime *rt) { return rt ? rt->tok : NULL; }
const edgellm_chat_template *edgellm_runtime_chat_template(const edgellm_runtime *rt) {
    return rt ? rt->tmpl : NULL;
}
int32_t edgellm_runtime_vocab_size(const edgellm_runtime *rt) { return rt ? (int32_t)rt->hp.n_vocab : 0; }
int32_t edgellm_runtime_bos_id(const edgellm_runtime *rt) { return rt ? rt->hp.bos_id : -1; }
int32_t edgellm_runtime_eos_ids(const edgellm_runtime *rt, int32_t *ids, int32_t cap) {
    int32_t n = 0;
    if (!rt || !ids) return 0;
    for (int32_t i = 0; i < rt->hp.n_eos && n < cap; i++) ids[n++] = rt->hp.eos_ids[i];
    return n;
}

edgellm_status edgellm_runtime_get_info(const edgellm_runtime *rt, edgellm_engine_info *o) {
    if (!rt || !o) return el_err(EDGELLM_STATUS_INVALID_ARG, "NULL argument");
    memset(o, 0, sizeof *o);
    const el_hparams *hp = &rt->hp;
    snprintf(o->arch, sizeof o->arch, "%s", hp->arch);
    snprintf(o->backend, sizeof o->backend, "%s", rt->prof.backend);
    snprintf(o->weight_dtype, sizeof o->weight_dtype, "%s",
             rt->eng->weight_dtype == EL_DTYPE_F32   ? "fp32"
             : rt->eng->weight_dtype == EL_DTYPE_F16 ? "fp16"
             : rt->eng->weight_dtype == EL_DTYPE_BF16 ? "bf16"
                                                     : el_dtype_name(rt->eng->weight_dtype));
    o->n_vocab = hp->n_vocab;
    o->n_embd = hp->n_embd;
    o->n_layer = hp->n_layer;
    o->n_head = hp->n_head;
    o->n_head_kv = hp->n_head_kv;
    o->head_dim = hp->head_dim;
    o->n_ff = hp->n_ff;
    o->max_batch_size = rt->prof.max_batch_size;
    o->max_input_len = rt->prof.max_input_len;
    o->max_kv_cache_capacity = rt->prof.max_kv_cache_capacity;
    o->weight_bytes = rt->eng->weight_bytes;
    o->file_bytes = rt->eng->map.size;
    o->has_tokenizer = rt->tok != NULL;
    o->tied_embeddings = hp->tied_embd;
    snprintf(o->kv_cache_dtype, sizeof o->kv_cache_dtype, "%s", el_kv_dtype_name(rt->kv_t));
    return EDGELLM_STATUS_OK;
}

void edgellm_runtime_get_metrics(const edgellm_runtime *rt, edgellm_metrics *m) {
    if (!m) return;
    if (!rt) {
        memset(m, 0, sizeof *m);
        return;
    }
    *m = rt->metrics;
    m->peak_rss_bytes = el_peak_rss_bytes();
    if (rt->be->iface.peak_memory) m->peak_device_bytes = rt->be->iface.peak_memory(rt->be);
}
void edgellm_runtime_reset_metrics(edgellm_runtime *rt) {
    if (rt) memset(&rt->metrics, 0, sizeof rt->metrics);
}

edgellm_status edgellm_runtime_kv_clear(edgellm_runtime *rt, int32_t slot, int32_t from) {
    if (!rt || slot < 0 || slot >= rt->prof.max_batch_size)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "KV slot %d out of range (max batch %d)", slot,
                      rt ? rt->prof.max_batch_size : 0);
    if (from < 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "negative position");
    if (from < rt->seq_len[slot]) rt->seq_len[slot] = from;
    return EDGELLM_STATUS_OK;
}

/* ---- forward -------------------------------------------------------------------------------------- */

void el_runtime_set_tap(edgellm_runtime *rt, el_tap_fn fn, void *user) {
    rt->tap = fn;
    rt->tap_user = user;
}

static edgellm_status tap(edgellm_runtime *rt, int64_t layer, el_tap_point pt, const float *x, int64_t n, int64_t cols) {
    if (!rt->tap) return EDGELLM_STATUS_OK;
    if (!strcmp(rt->prof.backend, "cpu")) {
        rt->tap(rt->tap_user, layer, pt, x, n, cols);
        return EDGELLM_STATUS_OK;
    }
    if (!rt->tap_buf) {
        int64_t w = rt->hp.n_ff;
        if (rt->hp.n_head * rt->hp.head_dim > w) w = rt->hp.n_head * rt->hp.head_dim;
        if (rt->hp.n_embd > w) w = rt->hp.n_embd;
        rt->tap_buf = el_malloc((size_t)(rt->ubatch * w) * sizeof(float));
        if (!rt->tap_buf) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory for the activation tap");
    }
    EL_TRY(rt->be->iface.download(rt->be, rt->tap_buf, x, (size_t)(n * cols) * sizeof(float)));
    rt->tap(rt->tap_user, layer, pt, rt->tap_buf, n, cols);
    return EDGELLM_STATUS_OK;
}

/* ---- one decoder layer in steps: each step runs a fused backend op where it applies (one token, no
 * tap, the backend has the op, the weights' dtypes allow: one float dtype per fused group) and
 * otherwise the op chain it replaces. Fused ops save kernel launches; the results agree with the chain
 * up to float rounding order. ---- */

static bool float_dtype(el_dtype t) { return t == EL_DTYPE_F32 || t == EL_DTYPE_F16 || t == EL_DTYPE_BF16; }
/* whether the backend's fused ops take weight w of dtype t: the float types, and the quantized ones it says */
static bool fused_w(const edgellm_runtime *rt, const void *w, el_dtype t) {
    return float_dtype(t) || (rt->be->iface.fused_quant && rt->be->iface.fused_quant(rt->be, w, t));
}

/* x -> input_layernorm -> q, k, v */
static edgellm_status step_qkv(edgellm_runtime *rt, const layer_w *L, int64_t l, int64_t n) {
    el_backend *be = rt->be;
    const el_backend_i *B = &be->iface;
    const el_hparams *hp = &rt->hp;
    const int64_t E = hp->n_embd, QD = hp->n_head * hp->head_dim, KD = hp->n_head_kv * hp->head_dim;
    if (n == 1 && !rt->tap && B->norm_matmul && L->q_t == L->k_t && L->q_t == L->v_t &&
        fused_w(rt, L->q, L->q_t) && fused_w(rt, L->k, L->k_t) && fused_w(rt, L->v, L->v_t)) {
        const void *w[3] = {L->q, L->k, L->v};
        const int64_t nn[3] = {QD, KD, KD};
        const float *b[3] = {L->q_b, L->k_b, L->v_b};
        float *y[3] = {rt->q, rt->k, rt->v};
        return B->norm_matmul(be, rt->x, E, L->attn_norm, hp->norm_eps, 3, w, L->q_t, nn, b, y, false);
    }
    EL_TRY(B->rmsnorm(be, rt->x, L->attn_norm, L->nt, n, E, hp->norm_eps, rt->h));
    if (rt->tap) EL_TRY(tap(rt, l, EL_TAP_ATTN_IN, rt->h, n, E));
    EL_TRY(B->matmul(be, rt->h, n, E, L->q, L->q_t, QD, L->q_b, rt->q, QD));
    EL_TRY(B->matmul(be, rt->h, n, E, L->k, L->k_t, KD, L->k_b, rt->k, KD));
    return B->matmul(be, rt->h, n, E, L->v, L->v_t, KD, L->v_b, rt->v, KD);
}

/* q/k norm (Qwen3), RoPE of q and k, k and v into the cache */
static edgellm_status step_rope_kv(edgellm_runtime *rt, const layer_w *L, int64_t l, int64_t n) {
    el_backend *be = rt->be;
    const el_backend_i *B = &be->iface;
    const el_hparams *hp = &rt->hp;
    const int64_t D = hp->head_dim, Hq = hp->n_head, Hk = hp->n_head_kv;
    const float eps = hp->norm_eps;
    if (!rt->tap && B->qk_rope_kv && float_dtype(rt->kv_t))
        return B->qk_rope_kv(be, rt->q, rt->k, rt->v, n, Hq, Hk, D, hp->qk_norm ? L->q_norm : NULL,
                             hp->qk_norm ? L->k_norm : NULL, eps, rt->n_rot, rt->pos_dev, rt->inv_freq_dev,
                             rt->attn_scale, rt->slot_dev, L->k_cache, L->v_cache, rt->kv_t, rt->kv_cap);
    if (hp->qk_norm) {
        EL_TRY(B->rmsnorm(be, rt->q, L->q_norm, L->nt, n * Hq, D, eps, rt->q));
        EL_TRY(B->rmsnorm(be, rt->k, L->k_norm, L->nt, n * Hk, D, eps, rt->k));
    }
    EL_TRY(B->rope(be, rt->q, n, Hq, D, rt->n_rot, rt->pos_dev, rt->inv_freq_dev, rt->attn_scale));
    EL_TRY(B->rope(be, rt->k, n, Hk, D, rt->n_rot, rt->pos_dev, rt->inv_freq_dev, rt->attn_scale));
    if (rt->tap) {
        EL_TRY(tap(rt, l, EL_TAP_K, rt->k, n, Hk * D));
        EL_TRY(tap(rt, l, EL_TAP_V, rt->v, n, Hk * D));
    }
    return B->kv_store(be, rt->k, rt->v, n, Hk, D, rt->slot_dev, rt->pos_dev, L->k_cache, L->v_cache, rt->kv_t,
                       L->k_scale, L->v_scale, rt->kv_cap);
}

/* x += o_proj(att) */
static edgellm_status step_o(edgellm_runtime *rt, const layer_w *L, int64_t l, int64_t n) {
    el_backend *be = rt->be;
    const el_backend_i *B = &be->iface;
    const int64_t E = rt->hp.n_embd, QD = rt->hp.n_head * rt->hp.head_dim;
    if (rt->tap) EL_TRY(tap(rt, l, EL_TAP_O_IN, rt->att, n, QD));
    if (n == 1 && B->norm_matmul && fused_w(rt, L->o, L->o_t)) {
        const void *w = L->o;
        const float *b = L->o_b;
        float *y = rt->x;
        return B->norm_matmul(be, rt->att, QD, NULL, 0.f, 1, &w, L->o_t, &E, &b, &y, true);
    }
    EL_TRY(B->matmul(be, rt->att, n, QD, L->o, L->o_t, E, L->o_b, rt->h, E));
    return B->add(be, rt->x, rt->h, n * E);
}

/* x += down(silu(gate(h)) * up(h)), h = post_attention_layernorm(x) */
static edgellm_status step_mlp(edgellm_runtime *rt, const layer_w *L, int64_t l, int64_t n) {
    el_backend *be = rt->be;
    const el_backend_i *B = &be->iface;
    const int64_t E = rt->hp.n_embd, F = rt->hp.n_ff;
    const float eps = rt->hp.norm_eps;
    if (n == 1 && !rt->tap && B->norm_swiglu && L->gate_t == L->up_t &&
        fused_w(rt, L->gate, L->gate_t) && fused_w(rt, L->up, L->up_t)) {
        EL_TRY(B->norm_swiglu(be, rt->x, E, L->ffn_norm, eps, L->gate, L->up, L->gate_t, F, L->gate_b, L->up_b,
                              rt->g));
    } else {
        EL_TRY(B->rmsnorm(be, rt->x, L->ffn_norm, L->nt, n, E, eps, rt->h));
        if (rt->tap) EL_TRY(tap(rt, l, EL_TAP_MLP_IN, rt->h, n, E));
        EL_TRY(B->matmul(be, rt->h, n, E, L->gate, L->gate_t, F, L->gate_b, rt->g, F));
        EL_TRY(B->matmul(be, rt->h, n, E, L->up, L->up_t, F, L->up_b, rt->u, F));
        EL_TRY(B->swiglu(be, rt->g, rt->u, rt->g, n * F));
    }
    if (rt->tap) EL_TRY(tap(rt, l, EL_TAP_DOWN_IN, rt->g, n, F));
    if (n == 1 && B->norm_matmul && fused_w(rt, L->down, L->down_t)) {
        const void *w = L->down;
        const float *b = L->down_b;
        float *y = rt->x;
        return B->norm_matmul(be, rt->g, F, NULL, 0.f, 1, &w, L->down_t, &E, &b, &y, true);
    }
    EL_TRY(B->matmul(be, rt->g, n, F, L->down, L->down_t, E, L->down_b, rt->h, E));
    return B->add(be, rt->x, rt->h, n * E);
}

/* logits_dev (nr, V) = lm_head(norm(hidden (nr, E))); hsel: (nr, E) scratch for the normed rows */
static edgellm_status lm_head_rows(edgellm_runtime *rt, const float *hidden, int64_t nr, float *hsel) {
    el_backend *be = rt->be;
    const int64_t E = rt->hp.n_embd, V = rt->hp.n_vocab;
    if (nr == 1 && be->iface.norm_matmul && fused_w(rt, rt->lm_head, rt->head_t) && rt->out_norm_t == EL_DTYPE_F32) {
        const void *w = rt->lm_head;
        float *y = rt->logits_dev;
        return be->iface.norm_matmul(be, hidden, E, rt->out_norm, rt->hp.norm_eps, 1, &w, rt->head_t, &V, NULL, &y,
                                     false);
    }
    EL_TRY(be->iface.rmsnorm(be, hidden, rt->out_norm, rt->out_norm_t, nr, E, rt->hp.norm_eps, hsel));
    return be->iface.matmul(be, hsel, nr, E, rt->lm_head, rt->head_t, V, NULL, rt->logits_dev, V);
}

/* Runs the decoder over n entries already uploaded to ids/pos/slot_dev; leaves the final hidden
 * states (before the output norm) in rt->x. */
static edgellm_status forward_layers(edgellm_runtime *rt, int64_t n, int32_t max_pos) {
    el_backend *be = rt->be;
    const el_backend_i *B = &be->iface;
    const el_hparams *hp = &rt->hp;
    const int64_t E = hp->n_embd, D = hp->head_dim, Hq = hp->n_head, Hk = hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)D);
    EL_TRY(B->embed(be, rt->ids_dev, n, rt->tok_embd, rt->embd_t, E, rt->x));
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const layer_w *L = &rt->layers[l];
        EL_TRY(step_qkv(rt, L, l, n));
        if (n == 1 && !rt->tap && B->rope_attention && float_dtype(rt->kv_t)) { /* one launch (decode) */
            EL_TRY(B->rope_attention(be, rt->q, rt->k, rt->v, n, Hq, Hk, D, hp->qk_norm ? L->q_norm : NULL,
                                     hp->qk_norm ? L->k_norm : NULL, hp->norm_eps, rt->n_rot, rt->pos_dev,
                                     rt->inv_freq_dev, rt->attn_scale, rt->slot_dev, L->k_cache, L->v_cache,
                                     rt->kv_t, rt->kv_cap, scale, rt->att));
        } else {
            EL_TRY(step_rope_kv(rt, L, l, n));
            EL_TRY(B->attention(be, rt->q, n, Hq, Hk, D, rt->slot_dev, rt->pos_dev, max_pos, L->k_cache,
                                L->v_cache, rt->kv_t, L->k_scale, L->v_scale, rt->kv_cap, scale, rt->att));
        }
        EL_TRY(step_o(rt, L, l, n));
        EL_TRY(step_mlp(rt, L, l, n));
    }
    return EDGELLM_STATUS_OK;
}

/* Output norm + lm_head for n_sel rows of `hidden` (device, (n_sel, E)), written to host out. */
/* srow >= 0: sample the rows on the device instead (params / ids rows srow + r of samp_*_dev). */
static edgellm_status compute_logits(edgellm_runtime *rt, const float *hidden, int64_t n_sel, float *out,
                                     int64_t srow) {
    el_backend *be = rt->be;
    const int64_t E = rt->hp.n_embd, V = rt->hp.n_vocab;
    for (int64_t r0 = 0; r0 < n_sel; r0 += LOGIT_ROWS_MAX) {
        int64_t nr = n_sel - r0 < LOGIT_ROWS_MAX ? n_sel - r0 : LOGIT_ROWS_MAX;
        EL_TRY(lm_head_rows(rt, hidden + r0 * E, nr, rt->hsel + r0 * E));
        if (srow >= 0)
            EL_TRY(be->iface.sample(be, rt->logits_dev, nr, V, V, rt->samp_par_dev + srow + r0,
                                    rt->samp_ids_dev + srow + r0));
        else
            EL_TRY(be->iface.download(be, out + r0 * V, rt->logits_dev, (size_t)(nr * V) * sizeof(float)));
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status validate_batch(edgellm_runtime *rt, const edgellm_batch *b) {
    if (!b || b->n_tokens <= 0 || !b->tokens || !b->pos || !b->slot)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "empty or incomplete batch");
    int32_t nb = rt->prof.max_batch_size;
    int32_t expect[256];
    int32_t nb_c = nb < 256 ? nb : 256;
    for (int32_t s = 0; s < nb_c; s++) expect[s] = rt->seq_len[s];
    for (int32_t i = 0; i < b->n_tokens; i++) {
        int32_t t = b->tokens[i], p = b->pos[i], s = b->slot[i];
        if (t < 0 || t >= rt->hp.n_vocab)
            return el_err(EDGELLM_STATUS_INVALID_ARG, "token id %d out of range (vocab %lld)", t,
                          (long long)rt->hp.n_vocab);
        if (s < 0 || s >= nb_c)
            return el_err(EDGELLM_STATUS_INVALID_ARG, "KV slot %d out of range (max batch %d)", s, nb);
        if (p >= rt->kv_cap)
            return el_err(EDGELLM_STATUS_LIMIT, "position %d exceeds the KV cache capacity %lld", p,
                          (long long)rt->kv_cap);
        if (p != expect[s])
            return el_err(EDGELLM_STATUS_INVALID_ARG, "slot %d: position %d does not continue its sequence (length %d)",
                          s, p, expect[s]);
        expect[s]++;
    }
    return EDGELLM_STATUS_OK;
}

/* A decode step (every entry wants logits, one chunk) on a backend with graphs is captured once per
 * batch size and replayed: the dynamic inputs live in device buffers uploaded before the launch. The
 * attention bound is the KV capacity so the captured launch configuration fits every later step. */
static edgellm_status eval_graph(edgellm_runtime *rt, int64_t n, float *logits_out) {
    el_backend *be = rt->be;
    const int64_t V = rt->hp.n_vocab;
    int key = logits_out ? (int)n : -(int)n; /* logits_out NULL: the step samples on the device */
    if (!be->iface.graph_has(be, key)) {
        EL_TRY(be->iface.graph_begin(be, key));
        edgellm_status s = forward_layers(rt, n, (int32_t)(rt->kv_cap - 1));
        if (s >= 0) s = lm_head_rows(rt, rt->x, n, rt->hsel);
        if (s >= 0 && !logits_out)
            s = be->iface.sample(be, rt->logits_dev, n, V, V, rt->samp_par_dev, rt->samp_ids_dev);
        edgellm_status e = be->iface.graph_end(be, key);
        EL_TRY(s);
        EL_TRY(e);
    }
    EL_TRY(be->iface.graph_launch(be, key));
    if (!logits_out) return EDGELLM_STATUS_OK;
    return be->iface.download(be, logits_out, rt->logits_dev, (size_t)(n * V) * sizeof(float));
}

static edgellm_status eval_impl(edgellm_runtime *rt, const edgellm_batch *b, float *logits_out,
                                int32_t *ids_out, int tag, bool *pending);
edgellm_status edgellm_runtime_eval(edgellm_runtime *rt, const edgellm_batch *b, float *logits_out) {
    return eval_impl(rt, b, logits_out, NULL, -1, NULL);
}
/* ids_out: sample every wanted row on the device (rt->dev_sampling; parameters uploaded to samp_par_dev, one
 * per wanted row in batch order) and download only the ids (one download); logits_out is then unused.
 * tag >= 0 (with ids_out): when the batch ran as one graph launch, the ids are only queued for download into
 * the backend's slot tag and *pending is set (download_end fetches them); otherwise they are in ids_out. */
static edgellm_status eval_impl(edgellm_runtime *rt, const edgellm_batch *b, float *logits_out,
                                int32_t *ids_out, int tag, bool *pending) {
    if (!rt) return el_err(EDGELLM_STATUS_INVALID_ARG, "runtime is NULL");
    EL_TRY(validate_batch(rt, b));
    el_backend *be = rt->be;
    const int64_t E = rt->hp.n_embd, V = rt->hp.n_vocab;
    int64_t out_row = 0;
    bool graphed = false; /* the whole batch was one graph launch */
    if (pending) *pending = false;
    for (int64_t c0 = 0; c0 < b->n_tokens; c0 += rt->ubatch) {
        int64_t n = b->n_tokens - c0 < rt->ubatch ? b->n_tokens - c0 : rt->ubatch;
        int32_t max_pos = 0;
        int64_t n_sel = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = c0 + i;
            if (b->pos[j] > max_pos) max_pos = b->pos[j];
            bool want = b->logits ? b->logits[j] != 0 : (j == b->n_tokens - 1);
            if (want) rt->sel_host[n_sel++] = (int32_t)i;
        }
        EL_TRY(be->iface.upload(be, rt->ids_dev, b->tokens + c0, (size_t)n * 4));
        EL_TRY(be->iface.upload(be, rt->pos_dev, b->pos + c0, (size_t)n * 4));
        EL_TRY(be->iface.upload(be, rt->slot_dev, b->slot + c0, (size_t)n * 4));
        for (int64_t i = 0; i < n; i++) rt->seq_len[b->slot[c0 + i]] = b->pos[c0 + i] + 1;
        if (be->iface.graph_begin && (logits_out || ids_out) && n_sel == n && n == b->n_tokens &&
            n <= rt->prof.max_batch_size && n <= LOGIT_ROWS_MAX && rt->use_graphs && !rt->tap) {
            EL_TRY(eval_graph(rt, n, ids_out ? NULL : logits_out));
            out_row += n_sel;
            graphed = c0 == 0;
            continue;
        }
        EL_TRY(forward_layers(rt, n, max_pos));
        if (n_sel == 0 || (!logits_out && !ids_out)) continue;
        const float *hidden = rt->x;
        if (n_sel != n) { /* gather the selected rows */
            EL_TRY(be->iface.upload(be, rt->sel_dev, rt->sel_host, (size_t)n_sel * 4));
            EL_TRY(be->iface.embed(be, rt->sel_dev, n_sel, rt->x, EL_DTYPE_F32, E, rt->h));
            hidden = rt->h;
        }
        EL_TRY(compute_logits(rt, hidden, n_sel, ids_out ? NULL : logits_out + out_row * V,
                              ids_out ? out_row : -1));
        out_row += n_sel;
    }
    if (ids_out && tag >= 0 && graphed && pending && rt->lookahead) {
        EL_TRY(be->iface.download_begin(be, rt->samp_ids_dev, (size_t)out_row * sizeof(int32_t), tag));
        *pending = true;
        return EDGELLM_STATUS_OK;
    }
    if (ids_out) return be->iface.download(be, ids_out, rt->samp_ids_dev, (size_t)out_row * sizeof(int32_t));
    return be->iface.sync(be);
}

/* ---- generation ------------------------------------------------------------------------------------ */

static bool is_stop(const edgellm_runtime *rt, const edgellm_request *r, int32_t id) {
    if (!r->ignore_eos)
        for (int32_t i = 0; i < rt->hp.n_eos; i++)
            if (rt->hp.eos_ids[i] == id) return true;
    for (int32_t i = 0; i < r->n_stop_ids; i++)
        if (r->stop_ids[i] == id) return true;
    return false;
}

/* The device sampling parameters of rows r < n (request map[r], or r when map is NULL), uploaded: the uniform
 * is drawn here from the request's own RNG exactly when el_sample would draw it. */
static edgellm_status upload_sample_params(edgellm_runtime *rt, int32_t n, const int32_t *map,
                                           const edgellm_sampling_params *sp) {
    for (int32_t r = 0; r < n; r++) {
        el_sample_row *p = &rt->samp_host[r];
        p->temperature = sp->temperature;
        p->top_k = sp->top_k;
        p->top_p = sp->top_p;
        p->reserved = 0;
        p->u =
            el_sample_draws(sp->temperature, sp->top_k) ? el_rng_uniform(&rt->rngs[map ? map[r] : r]) : 0.0;
    }
    return rt->be->iface.upload(rt->be, rt->samp_par_dev, rt->samp_host, (size_t)n * sizeof(el_sample_row));
}

/* eval_impl with device sampling of rows r < n (upload_sample_params); tag / pending as eval_impl */
static edgellm_status eval_sample(edgellm_runtime *rt, const edgellm_batch *b, int32_t n, const int32_t *map,
                                  const edgellm_sampling_params *sp, int32_t *ids, int tag, bool *pending) {
    EL_TRY(upload_sample_params(rt, n, map, sp));
    return eval_impl(rt, b, NULL, ids, tag, pending);
}

/* Lookahead: queues the decode step that follows the queued step of the same n rows (map), its inputs fed on
 * the device from that step's sampled ids (positions + 1, same slots), and the download of its ids into slot
 * tag. The graph of n sampled rows exists: the step before ran as one. */
static edgellm_status queue_next_step(edgellm_runtime *rt, int32_t n, const int32_t *map,
                                      const edgellm_sampling_params *sp, int tag) {
    el_backend *be = rt->be;
    EL_TRY(upload_sample_params(rt, n, map, sp));
    EL_TRY(be->iface.feed_tokens(be, rt->samp_ids_dev, rt->ids_dev, rt->pos_dev, n));
    EL_TRY(be->iface.graph_launch(be, -(int)n));
    return be->iface.download_begin(be, rt->samp_ids_dev, (size_t)n * sizeof(int32_t), tag);
}

edgellm_status edgellm_runtime_generate(edgellm_runtime *rt, const edgellm_request *reqs, int32_t n_req,
                                        const edgellm_sampling_params *spp, edgellm_token_cb cb, void *user,
                                        edgellm_result *results) {
    if (!rt || !reqs || !results) return el_err(EDGELLM_STATUS_INVALID_ARG, "NULL argument");
    if (n_req <= 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "no requests");
    if (n_req > rt->prof.max_batch_size)
        return el_err(EDGELLM_STATUS_LIMIT, "batch of %d requests exceeds the engine's max batch size %d", n_req,
                      rt->prof.max_batch_size);
    edgellm_sampling_params sp = spp ? *spp : edgellm_sampling_params_default();
    const int64_t V = rt->hp.n_vocab;
    int64_t total = 0;
    int32_t max_new[256], sids[256]; /* sids: ids sampled on the device */
    for (int32_t i = 0; i < n_req; i++) {
        const edgellm_request *r = &reqs[i];
        results[i].ids = NULL;
        results[i].n_ids = 0;
        results[i].finish = EDGELLM_FINISH_LENGTH;
        if (r->n_prompt <= 0 || !r->prompt)
            return el_err(EDGELLM_STATUS_INVALID_ARG, "request %d has an empty prompt", i);
        if (r->n_prompt > rt->prof.max_input_len)
            return el_err(EDGELLM_STATUS_LIMIT, "request %d: prompt of %d tokens exceeds max input length %d", i,
                          r->n_prompt, rt->prof.max_input_len);
        if (r->max_new_tokens < 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "request %d: negative max_new_tokens", i);
        for (int32_t j = 0; j < r->n_prompt; j++)
            if (r->prompt[j] < 0 || r->prompt[j] >= V)
                return el_err(EDGELLM_STATUS_INVALID_ARG, "request %d: token id %d out of range (vocab %lld)", i,
                              r->prompt[j], (long long)V);
        max_new[i] = r->max_new_tokens;
        if ((int64_t)r->n_prompt + max_new[i] > rt->kv_cap) {
            max_new[i] = (int32_t)(rt->kv_cap - r->n_prompt);
            EL_LOG_WARN("request %d: prompt + max_new_tokens exceeds the KV capacity %lld; generating at most %d", i,
                        (long long)rt->kv_cap, max_new[i]);
        }
        total += r->n_prompt;
    }
    for (int32_t i = 0; i < n_req; i++) {
        results[i].ids = el_malloc((size_t)(max_new[i] > 0 ? max_new[i] : 1) * sizeof(int32_t));
        if (!results[i].ids) {
            for (int32_t j = 0; j <= i; j++) edgellm_result_clear(&results[j]);
            return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        }
        el_rng_seed(&rt->rngs[i], sp.seed);
        rt->seq_len[i] = 0;
    }
    /* prefill: all prompts in one batch (chunked internally), logits for each last token */
    int32_t *tok = el_malloc((size_t)total * 4), *pos = el_malloc((size_t)total * 4),
            *slot = el_malloc((size_t)total * 4);
    int8_t *want = el_malloc((size_t)total);
    edgellm_status st = EDGELLM_STATUS_OK;
    /* decode lookahead: the steps whose ids are queued for download into backend slot 0 / 1 */
    bool inflight[2] = {false, false};
    int32_t n = 0, map[256];
    int tag = 0;
    if (!tok || !pos || !slot || !want) {
        st = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    int64_t k = 0;
    for (int32_t i = 0; i < n_req; i++)
        for (int32_t j = 0; j < reqs[i].n_prompt; j++, k++) {
            tok[k] = reqs[i].prompt[j];
            pos[k] = j;
            slot[k] = i;
            want[k] = j == reqs[i].n_prompt - 1;
        }
    double t0 = el_time_ms();
    edgellm_batch b = {(int32_t)total, tok, pos, slot, want};
    st = rt->dev_sampling ? eval_sample(rt, &b, n_req, NULL, &sp, sids, -1, NULL)
                          : edgellm_runtime_eval(rt, &b, rt->logits_host);
    if (st < 0) goto done;
    bool active[256] = {0};
    int32_t n_active = 0;
    int32_t last[256];
    for (int32_t i = 0; i < n_req; i++) {
        if (max_new[i] <= 0) continue;
        int32_t id = rt->dev_sampling ? sids[i]
                                      : el_sample(rt->logits_host + (int64_t)i * V, V, sp.temperature,
                                                  sp.top_k, sp.top_p, &rt->rngs[i], &rt->samp);
        last[i] = id;
        if (is_stop(rt, &reqs[i], id)) {
            results[i].finish = EDGELLM_FINISH_STOP;
            continue;
        }
        results[i].ids[results[i].n_ids++] = id;
        if (cb && !cb(i, id, user)) {
            results[i].finish = EDGELLM_FINISH_ABORTED;
            continue;
        }
        if (results[i].n_ids < max_new[i]) {
            active[i] = true;
            n_active++;
        }
    }
    double t1 = el_time_ms();
    rt->metrics.prefill_tokens += total;
    rt->metrics.prefill_runs++;
    rt->metrics.prefill_ms += t1 - t0;
    rt->metrics.ttft_ms = t1 - t0;
    /* decode. Lookahead (rt->lookahead): while step n runs, step n + 1 is queued when every row of step n
     * needs another token after it (as far as the host knows before reading step n's ids); when a row then stops,
     * step n + 1's ids of the other rows are what a fresh step would have given them (same tokens, positions
     * and uniforms), and the stopped row's are dropped (its extra KV entry lies past its sequence length). */
    while (n_active > 0) {
        double d0 = el_time_ms();
        if (!inflight[tag]) { /* a fresh step (no lookahead step of these rows is queued) */
            n = 0;
            for (int32_t i = 0; i < n_req; i++)
                if (active[i]) {
                    tok[n] = last[i];
                    pos[n] = rt->seq_len[i];
                    slot[n] = i;
                    want[n] = 1;
                    map[n] = i;
                    n++;
                }
            edgellm_batch db = {n, tok, pos, slot, want};
            st = rt->dev_sampling ? eval_sample(rt, &db, n, map, &sp, sids, tag, &inflight[tag])
                                  : edgellm_runtime_eval(rt, &db, rt->logits_host);
            if (st < 0) goto done;
        }
        bool ahead = inflight[tag];
        for (int32_t r = 0; r < n && ahead; r++)
            ahead = active[map[r]] && results[map[r]].n_ids + 1 < max_new[map[r]];
        if (ahead) {
            st = queue_next_step(rt, n, map, &sp, tag ^ 1);
            if (st < 0) goto done;
            inflight[tag ^ 1] = true;
        }
        if (inflight[tag]) {
            inflight[tag] = false;
            st = rt->be->iface.download_end(rt->be, tag, sids, (size_t)n * sizeof(int32_t));
            if (st < 0) goto done;
        }
        int32_t n_done = 0;
        for (int32_t r = 0; r < n; r++) {
            int32_t i = map[r];
            if (!active[i]) continue; /* stopped a step ago: a lookahead step's row */
            n_done++;
            int32_t id = rt->dev_sampling ? sids[r]
                                          : el_sample(rt->logits_host + (int64_t)r * V, V, sp.temperature,
                                                      sp.top_k, sp.top_p, &rt->rngs[i], &rt->samp);
            last[i] = id;
            if (is_stop(rt, &reqs[i], id)) {
                results[i].finish = EDGELLM_FINISH_STOP;
                active[i] = false;
                n_active--;
                continue;
            }
            results[i].ids[results[i].n_ids++] = id;
            if (cb && !cb(i, id, user)) {
                results[i].finish = EDGELLM_FINISH_ABORTED;
                active[i] = false;
                n_active--;
                continue;
            }
            if (results[i].n_ids >= max_new[i]) {
                active[i] = false;
                n_active--;
            }
        }
        if (ahead) { /* the queued step is next: its rows that go on have one more token in the cache */
            for (int32_t r = 0; r < n; r++)
                if (active[map[r]]) rt->seq_len[map[r]]++;
            tag ^= 1;
        }
        rt->metrics.decode_ms += el_time_ms() - d0;
        rt->metrics.decode_tokens += n_done;
        rt->metrics.decode_steps++;
    }
done:
    for (int t = 0; t < 2; t++) /* a lookahead step whose rows all stopped (or an error): wait for it */
        if (inflight[t]) {
            edgellm_status e = rt->be->iface.download_end(rt->be, t, sids, (size_t)n * sizeof(int32_t));
            if (st >= 0 && e < 0) st = e;
        }
    el_free(tok);
    el_free(pos);
    el_free(slot);
    el_free(want);
    if (st < 0)
        for (int32_t i = 0; i < n_req; i++) edgellm_result_clear(&results[i]);
    return st;
}
