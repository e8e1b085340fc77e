/* cmd_export.c - `edgellm export`: HF checkpoint -> export dir. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: edgellm export --model HF_DIR --output EXPORT_DIR [options]\n"
            "\n"
            "Converts a HuggingFace checkpoint (config.json + safetensors, single or sharded) into an\n"
            "exported model directory (canonical tensor names, chosen dtype, tokenizer files).\n"
            "\n"
            "  --model DIR            HuggingFace checkpoint directory (required)\n"
            "  --output DIR           export directory to create (required)\n"
            "  --dtype fp32|fp16|bf16 weight dtype (default: keep the checkpoint's)\n"
            "  --quantization Q       none (default), fp16, bf16, fp8, int8_sq, int4_awq, int4_rtn,\n"
            "                         int4_gptq, nvfp4 (docs/quantization.md); a pre-quantized GPTQ /\n"
            "                         AWQ / ModelOpt checkpoint is imported as it is\n"
            "  --group-size N         int4 group size 32, 64 or 128 (default 128)\n"
            "  --sq-alpha A           SmoothQuant migration strength in [0, 1] (default 0.5)\n"
            "  --lm-head-quantization none|fp8|int8|int4_awq|nvfp4   (default none)\n"
            "  --exclude GLOB         keep matching tensors unquantized (repeatable)\n"
            "  --kv-cache-quantization fp8   write per-layer K/V scales from calibration\n"
            "  --calib-file F         calibration text or JSONL (default: data/calib slice)\n"
            "  --calib-samples N      calibration sequences (default 512)\n"
            "  --calib-seq-len N      tokens per calibration sequence (default 512)\n"
            "  --calib-algorithm max|percentile   activation range (default max)\n"
            "  --calib-backend cpu|cuda   where the calibration forward runs (default cpu)\n"
            "  --format hf|gguf       hf: export directory (default); gguf: one llama.cpp GGUF file at\n"
            "                         --output, --quantization f16 (default), bf16, f32, q8_0 or q4_0\n"
            "  --overwrite            replace an existing output directory\n"
            "  --progress             log progress to stderr\n"
            "  -h, --help             this help\n");
}

int cmd_export(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model = NULL, *output = NULL, *dtype = NULL, *quant = NULL;
    edgellm_export_params p = edgellm_export_params_default();
    int err = 0;
    const char *gs = NULL, *alpha = NULL, *ns = NULL, *sl = NULL;
    const char *excl[64];
    int n_excl = 0;
    for (int i = 1; i < argc; i++) {
        const char *ev = NULL;
        if (cli_flag_val(argc, argv, &i, "--exclude", &ev, &err)) {
            if (err) return 2;
            if (n_excl == 64) return cli_usage_error("export: at most 64 --exclude patterns");
            excl[n_excl++] = ev;
            continue;
        }
        if (cli_flag_val(argc, argv, &i, "--group-size", &gs, &err) ||
            cli_flag_val(argc, argv, &i, "--sq-alpha", &alpha, &err) ||
            cli_flag_val(argc, argv, &i, "--lm-head-quantization", &p.lm_head_quantization, &err) ||
            cli_flag_val(argc, argv, &i, "--kv-cache-quantization", &p.kv_cache_quantization, &err) ||
            cli_flag_val(argc, argv, &i, "--calib-file", &p.calib_file, &err) ||
            cli_flag_val(argc, argv, &i, "--calib-samples", &ns, &err) ||
            cli_flag_val(argc, argv, &i, "--calib-seq-len", &sl, &err) ||
            cli_flag_val(argc, argv, &i, "--calib-algorithm", &p.calib_algorithm, &err) ||
            cli_flag_val(argc, argv, &i, "--calib-backend", &p.calib_backend, &err)) {
            if (err) return 2;
            continue;
        }
        if (cli_flag_val(argc, argv, &i, "--model", &model, &err) ||
            cli_flag_val(argc, argv, &i, "--output", &output, &err) ||
            cli_flag_val(argc, argv, &i, "--dtype", &dtype, &err) ||
            cli_flag_val(argc, argv, &i, "--quantization", &quant, &err) ||
            cli_flag_val(argc, argv, &i, "--format", &p.format, &err)) {
            if (err) return 2;
        } else if (!strcmp(argv[i], "--overwrite")) {
            p.overwrite = true;
        } else if (!strcmp(argv[i], "--progress")) {
            p.progress = true;
        } else {
            return cli_usage_error("export: unknown option '%s' (see edgellm export --help)", argv[i]);
        }
    }
    if (!model || !output) {
        return cli_usage_error("export: --model and --output are required");
    }
    if (dtype && strcmp(dtype, "fp32") && strcmp(dtype, "fp16") && strcmp(dtype, "bf16"))
        return cli_usage_error("export: --dtype must be fp32, fp16 or bf16 (got '%s')", dtype);
    if (p.progress) edgellm_log_set_level(EDGELLM_LOG_LEVEL_INFO);
    p.dtype = dtype;
    p.quantization = quant;
    p.exclude = excl;
    p.n_exclude = n_excl;
    char *end;
    if (gs) {
        long v = strtol(gs, &end, 10);
        if (*end || (v != 32 && v != 64 && v != 128))
            return cli_usage_error("export: --group-size must be 32, 64 or 128 (got '%s')", gs);
        p.group_size = (int32_t)v;
    }
    if (alpha) {
        double v = strtod(alpha, &end);
        if (*end || !(v >= 0 && v <= 1)) return cli_usage_error("export: --sq-alpha must be in [0, 1] (got '%s')", alpha);
        p.sq_alpha = (float)v;
    }
    if (ns) {
        long v = strtol(ns, &end, 10);
        if (*end || v < 1 || v > 1000000) return cli_usage_error("export: --calib-samples must be a positive integer");
        p.calib_samples = (int32_t)v;
    }
    if (sl) {
        long v = strtol(sl, &end, 10);
        if (*end || v < 1 || v > 65536) return cli_usage_error("export: --calib-seq-len must be in 1..65536");
        p.calib_seq_len = (int32_t)v;
    }
    if (edgellm_export(model, output, &p) != EDGELLM_STATUS_OK) return cli_fail("export failed");
    fprintf(stderr, "exported %s -> %s\n", model, output);
    return 0;
}
