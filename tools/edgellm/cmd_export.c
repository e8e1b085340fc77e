/* cmd_export.c - `edgellm export`: HF checkpoint -> export dir. */
#include "cli.h"

#include <stdio.h>
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
            "  --quantization none    quantization scheme (only 'none' for now)\n"
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
    for (int i = 1; i < argc; i++) {
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
    if (edgellm_export(model, output, &p) != EDGELLM_STATUS_OK) return cli_fail("export failed");
    fprintf(stderr, "exported %s -> %s\n", model, output);
    return 0;
}
