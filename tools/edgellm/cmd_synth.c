/* cmd_synth.c - `edgellm synth`: a random-weight HF checkpoint of a real model's shape, streamed to
 * disk (for benchmarks and build-memory tests without downloading weights). */
#include "cli.h"
#include "core/core.h"
#include "models/models.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: edgellm synth --output DIR [options]\n"
            "\n"
            "Writes a random-weight HuggingFace checkpoint (config.json + model.safetensors) with the\n"
            "shape of a real model. Weights ~ uniform with std 0.02, norm weights 1.\n"
            "\n"
            "  --output DIR                                   directory to create (required)\n"
            "  --shape qwen3-0.6b|llama3.2-1b|llama3.1-8b     model shape (default qwen3-0.6b)\n"
            "  --dtype fp32|fp16|bf16                         weight dtype (default bf16)\n"
            "  --seed N                                       PRNG seed (default 1)\n"
            "  --layers N                                     override the number of layers\n"
            "  --overwrite                                    replace an existing directory\n"
            "  -h, --help                                     this help\n");
}

static void shape_hparams(const char *shape, el_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->norm_eps = 1e-5f;
    hp->act = EL_ACT_SILU;
    hp->partial_rotary_factor = 1.0f;
    hp->rope_factor = 1.0f;
    hp->pad_id = -1;
    if (!strcmp(shape, "qwen3-0.6b")) {
        snprintf(hp->arch, sizeof hp->arch, "qwen3");
        snprintf(hp->hf_arch, sizeof hp->hf_arch, "Qwen3ForCausalLM");
        hp->n_vocab = 151936, hp->n_embd = 1024, hp->n_layer = 28, hp->n_head = 16, hp->n_head_kv = 8;
        hp->head_dim = 128, hp->n_ff = 3072, hp->max_pos = 40960, hp->norm_eps = 1e-6f;
        hp->tied_embd = true, hp->qk_norm = true;
        hp->rope_type = EL_ROPE_DEFAULT, hp->rope_theta = 1e6f, hp->rope_orig_max_pos = hp->max_pos;
        hp->bos_id = 151643, hp->eos_ids[0] = 151645, hp->n_eos = 1;
    } else {
        snprintf(hp->arch, sizeof hp->arch, "llama");
        snprintf(hp->hf_arch, sizeof hp->hf_arch, "LlamaForCausalLM");
        hp->n_vocab = 128256, hp->n_head = 32, hp->n_head_kv = 8, hp->max_pos = 131072;
        hp->rope_type = EL_ROPE_LLAMA3, hp->rope_theta = 500000.0f, hp->rope_low_freq_factor = 1.0f;
        hp->rope_high_freq_factor = 4.0f, hp->rope_orig_max_pos = 8192;
        hp->bos_id = 128000, hp->eos_ids[0] = 128001, hp->eos_ids[1] = 128008, hp->eos_ids[2] = 128009, hp->n_eos = 3;
        if (!strcmp(shape, "llama3.2-1b")) {
            hp->n_embd = 2048, hp->n_layer = 16, hp->head_dim = 64, hp->n_ff = 8192, hp->tied_embd = true;
            hp->rope_factor = 32.0f;
        } else { /* llama3.1-8b */
            hp->n_embd = 4096, hp->n_layer = 32, hp->head_dim = 128, hp->n_ff = 14336, hp->tied_embd = false;
            hp->rope_factor = 8.0f;
        }
    }
}

typedef struct decl_list {
    el_st_decl *d;
    char (*names)[128];
    int64_t n, cap;
} decl_list;

static edgellm_status collect(const char *name, int64_t rows, int64_t cols, bool required, void *user) {
    (void)required;
    decl_list *l = user;
    if (l->n >= l->cap) return el_err(EDGELLM_STATUS_LIMIT, "too many tensors");
    snprintf(l->names[l->n], 128, "%s", name);
    el_st_decl *d = &l->d[l->n];
    d->name = l->names[l->n];
    d->n_dims = cols ? 2 : 1;
    d->shape[0] = rows;
    d->shape[1] = cols;
    l->n++;
    return EDGELLM_STATUS_OK;
}

static edgellm_status write_synth(const char *dir, const el_hparams *hp, el_dtype dt, uint64_t seed) {
    char path[4096];
    cJSON *cfg = el_hparams_to_config(hp);
    if (!cfg) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
    static const char *tn[] = {[EL_DTYPE_F32] = "float32", [EL_DTYPE_F16] = "float16", [EL_DTYPE_BF16] = "bfloat16"};
    cJSON_AddStringToObject(cfg, "torch_dtype", tn[dt]);
    edgellm_status s = el_json_save_in(cfg, dir, "config.json");
    cJSON_Delete(cfg);
    EL_TRY(s);

    decl_list l = {0};
    l.cap = 32 + hp->n_layer * 20;
    l.d = el_calloc((size_t)l.cap, sizeof *l.d);
    l.names = el_calloc((size_t)l.cap, sizeof *l.names);
    const size_t chunk = 1 << 20;
    void *buf = el_aligned_alloc(chunk * 4);
    float *fb = el_aligned_alloc(chunk * 4);
    el_st_writer *w = NULL;
    if (!l.d || !l.names || !buf || !fb) {
        s = el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    if ((s = el_model_visit_tensors(hp, collect, &l)) < 0) goto done;
    for (int64_t i = 0; i < l.n; i++) l.d[i].dtype = dt;
    if ((s = el_path_join(path, sizeof path, dir, "model.safetensors")) < 0) goto done;
    if ((s = el_st_writer_open(path, l.d, l.n, "{\"format\":\"pt\"}", &w)) < 0) goto done;
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    const float a = 0.02f * 1.7320508f; /* uniform(-a, a) has std 0.02 */
    for (int64_t i = 0; i < l.n; i++) {
        const el_st_decl *d = &l.d[i];
        size_t n = (size_t)d->shape[0] * (size_t)(d->n_dims == 2 ? d->shape[1] : 1);
        for (size_t off = 0; off < n; off += chunk) {
            size_t k = n - off < chunk ? n - off : chunk;
            if (d->n_dims == 1) {
                for (size_t j = 0; j < k; j++) fb[j] = 1.0f;
                el_convert(dt, buf, EL_DTYPE_F32, fb, k);
            } else if (dt == EL_DTYPE_BF16) {
                /* straight to bf16: a float in [1, 2) from 23 random bits, centred and scaled,
                 * truncated to its top 16 bits */
                uint16_t *o = buf;
                for (size_t j = 0; j < k; j++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
                    union { uint32_t u; float f; } v = {.u = 0x3f800000u | (uint32_t)(x >> 41)};
                    v.f = (v.f - 1.5f) * (2.0f * a);
                    o[j] = (uint16_t)(v.u >> 16);
                }
            } else {
                for (size_t j = 0; j < k; j++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    fb[j] = ((float)(uint32_t)(x >> 40) * (1.0f / 8388608.0f) - 1.0f) * a;
                }
                el_convert(dt, buf, EL_DTYPE_F32, fb, k);
            }
            s = el_st_writer_write(w, buf, k * el_dtype_size(dt));
            if (s < 0) goto done;
        }
    }
    s = el_st_writer_close(w);
    w = NULL;
done:
    if (w) el_st_writer_abort(w);
    el_free(l.d);
    el_free(l.names);
    el_free_aligned(buf);
    el_free_aligned(fb);
    return s;
}

int cmd_synth(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *output = NULL, *shape = "qwen3-0.6b", *dtype = "bf16", *seed_s = NULL, *layers_s = NULL;
    bool overwrite = false;
    int err = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_flag_val(argc, argv, &i, "--output", &output, &err) ||
            cli_flag_val(argc, argv, &i, "--shape", &shape, &err) ||
            cli_flag_val(argc, argv, &i, "--dtype", &dtype, &err) ||
            cli_flag_val(argc, argv, &i, "--seed", &seed_s, &err) ||
            cli_flag_val(argc, argv, &i, "--layers", &layers_s, &err)) {
            if (err) return 2;
        } else if (!strcmp(argv[i], "--overwrite")) {
            overwrite = true;
        } else {
            return cli_usage_error("synth: unknown option '%s' (see edgellm synth --help)", argv[i]);
        }
    }
    if (!output) {
        return cli_usage_error("synth: --output is required");
    }
    if (strcmp(shape, "qwen3-0.6b") && strcmp(shape, "llama3.2-1b") && strcmp(shape, "llama3.1-8b"))
        return cli_usage_error("synth: unknown --shape '%s' (qwen3-0.6b, llama3.2-1b, llama3.1-8b)", shape);
    el_dtype dt;
    if (!el_dtype_from_user_name(dtype, &dt)) return cli_usage_error("synth: --dtype must be fp32, fp16 or bf16");
    int64_t seed = 1, layers = 0;
    if (seed_s && !cli_parse_i64(seed_s, 0, INT64_MAX, &seed)) return cli_usage_error("synth: bad --seed '%s'", seed_s);
    if (layers_s && !cli_parse_i64(layers_s, 1, 4096, &layers))
        return cli_usage_error("synth: --layers must be in 1..4096");
    el_hparams hp;
    shape_hparams(shape, &hp);
    if (layers) hp.n_layer = layers;
    char tmp[4096];
    if (el_outdir_begin(output, overwrite, tmp, sizeof tmp) != EDGELLM_STATUS_OK) return cli_fail("synth failed");
    double t0 = el_time_ms();
    if (write_synth(tmp, &hp, dt, (uint64_t)seed) != EDGELLM_STATUS_OK) {
        int rc = cli_fail("synth failed");
        el_outdir_abort(tmp);
        return rc;
    }
    if (el_outdir_commit(tmp, output, overwrite) != EDGELLM_STATUS_OK) return cli_fail("synth failed");
    fprintf(stderr, "wrote %s (%s, %lld layers, %s) in %.0f ms\n", output, shape, (long long)hp.n_layer, dtype,
            el_time_ms() - t0);
    return 0;
}
