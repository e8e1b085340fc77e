/* main.c - `edgellm <command> ...` dispatcher. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* Commands are defined in their own files; weak references let the tree build while one is missing
 * (the dispatcher then reports it instead of crashing). */
#pragma weak cmd_export
#pragma weak cmd_build
#pragma weak cmd_run
#pragma weak cmd_generate
#pragma weak cmd_chat
#pragma weak cmd_perplexity
#pragma weak cmd_logits
#pragma weak cmd_bench
#pragma weak cmd_tokenize
#pragma weak cmd_detokenize
#pragma weak cmd_chat_template
#pragma weak cmd_synth
#pragma weak cmd_info
#pragma weak cmd_serve

static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *help;
} k_cmds[] = {
    {"export", cmd_export, "convert a HuggingFace checkpoint into an exported model directory"},
    {"build", cmd_build, "build an engine directory from an export for a backend and profile"},
    {"run", cmd_run, "run requests from a JSON input file (TensorRT Edge-LLM llm_inference format)"},
    {"generate", cmd_generate, "generate text from a prompt, streamed to stdout"},
    {"chat", cmd_chat, "interactive chat using the model's chat template"},
    {"perplexity", cmd_perplexity, "perplexity of a text file"},
    {"logits", cmd_logits, "write the logits of every position of a token-id sequence to safetensors"},
    {"bench", cmd_bench, "prefill and decode speed"},
    {"tokenize", cmd_tokenize, "JSON lines {\"text\":...} on stdin -> {\"ids\":[...]}"},
    {"detokenize", cmd_detokenize, "JSON lines {\"ids\":[...]} on stdin -> {\"text\":...}"},
    {"chat-template", cmd_chat_template, "render a chat template: JSON on stdin -> {\"rendered\":...}"},
    {"synth", cmd_synth, "write a random-weight HF checkpoint of a given shape (for benchmarks)"},
    {"info", cmd_info, "print an engine's configuration and build profile"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server for one engine (docs/serve.md)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: edgellm <command> [options]   (edgellm <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        fprintf(f, "  %-14s %s\n", k_cmds[i].name, k_cmds[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("edgellm %s\n", edgellm_version());
        return 0;
    }
    cli_setup_logging();
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) {
        if (!strcmp(argv[1], k_cmds[i].name)) {
            if (!k_cmds[i].fn) {
                /* serve is left out of builds without libmicrohttpd (CMakeLists.txt) */
                fprintf(stderr, "error: command '%s' is not available in this build%s\n", argv[1],
                        strcmp(argv[1], "serve") ? ""
                                                 : " (it needs libmicrohttpd: apt-get install libmicrohttpd-dev, "
                                                   "then rebuild)");
                return 2;
            }
            return k_cmds[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
