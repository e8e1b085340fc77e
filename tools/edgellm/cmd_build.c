/* cmd_build.c - `edgellm build`: export dir -> engine dir for a backend and profile. */
#include "cli.h"
#include "core/core.h"
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: edgellm build --input EXPORT_DIR --engine ENGINE_DIR [options]\n"
            "\n"
            "Builds an engine directory (model.engine + tokenizer files) from an exported model.\n"
            "\n"
            "  --input DIR                  export directory (from `edgellm export`, required)\n"
            "  --engine DIR                 engine directory to create (required)\n"
            "  --backend cpu|cuda           target backend (default cpu)\n"
            "  --max-batch-size N           1..256 (default 4)\n"
            "  --max-input-len N            1..max KV cache capacity (default 1024)\n"
            "  --max-kv-cache-capacity N    tokens per sequence, up to 1048576 (default 4096)\n"
            "  --kv-cache-dtype T           auto|f32|f16|bf16|fp8 (auto: fp8 when the export has K/V\n"
            "                               scales (--kv-cache-quantization fp8), else f32 for fp32\n"
            "                               weights, else f16; fp8 needs those scales)\n"
            "  --overwrite                  replace an existing engine directory\n"
            "  -h, --help                   this help\n");
}

int cmd_build(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *input = NULL, *engine = NULL, *backend = NULL, *mb = NULL, *mi = NULL, *mk = NULL;
    edgellm_build_params p = edgellm_build_params_default();
    int err = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_flag_val(argc, argv, &i, "--input", &input, &err) ||
            cli_flag_val(argc, argv, &i, "--engine", &engine, &err) ||
            cli_flag_val(argc, argv, &i, "--backend", &backend, &err) ||
            cli_flag_val(argc, argv, &i, "--max-batch-size", &mb, &err) ||
            cli_flag_val(argc, argv, &i, "--max-input-len", &mi, &err) ||
            cli_flag_val(argc, argv, &i, "--max-kv-cache-capacity", &mk, &err) ||
            cli_flag_val(argc, argv, &i, "--kv-cache-dtype", &p.kv_cache_dtype, &err)) {
            if (err) return 2;
        } else if (!strcmp(argv[i], "--overwrite")) {
            p.overwrite = true;
        } else {
            return cli_usage_error("build: unknown option '%s' (see edgellm build --help)", argv[i]);
        }
    }
    if (!input || !engine) {
        return cli_usage_error("build: --input and --engine are required");
    }
    int64_t v;
    if (backend) {
        if (strcmp(backend, "cpu") && strcmp(backend, "cuda"))
            return cli_usage_error("build: --backend must be cpu or cuda (got '%s')", backend);
        p.backend = backend;
    }
    if (mb) {
        if (!cli_parse_i64(mb, 1, 256, &v)) return cli_usage_error("build: --max-batch-size must be in 1..256");
        p.max_batch_size = (int32_t)v;
    }
    if (mk) {
        if (!cli_parse_i64(mk, 1, 1 << 20, &v))
            return cli_usage_error("build: --max-kv-cache-capacity must be in 1..1048576");
        p.max_kv_cache_capacity = (int32_t)v;
    }
    if (mi) {
        if (!cli_parse_i64(mi, 1, 1 << 20, &v)) return cli_usage_error("build: --max-input-len must be a positive integer");
        p.max_input_len = (int32_t)v;
    }
    if (p.max_input_len > p.max_kv_cache_capacity)
        return cli_usage_error("build: --max-input-len (%d) must not exceed --max-kv-cache-capacity (%d)",
                               (int)p.max_input_len, (int)p.max_kv_cache_capacity);
    double t0 = el_time_ms();
    if (edgellm_build(input, engine, &p) != EDGELLM_STATUS_OK) return cli_fail("build failed");
    double ms = el_time_ms() - t0;
    edgellm_engine_info info;
    if (edgellm_engine_info_read(engine, &info) != EDGELLM_STATUS_OK) return cli_fail("reading the built engine failed");
    el_engine *e = NULL;
    int64_t n_tensors = 0;
    if (el_engine_open(engine, false, &e) == EDGELLM_STATUS_OK) {
        n_tensors = e->n_tensors;
        el_engine_close(e);
    }
    fprintf(stderr, "built %s: %lld tensors, %.1f MB weights, peak RSS %.1f MB (%.0f ms)\n", engine,
            (long long)n_tensors, info.weight_bytes / 1e6, el_peak_rss_bytes() / 1e6, ms);
    return 0;
}
