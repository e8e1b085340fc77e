/* cmd_info.c - `edgellm info`: an engine's config and build profile as JSON on stdout. */
#include "cli.h"
#include "engine/engine.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: edgellm info --engine ENGINE_DIR [--verify]\n"
            "\n"
            "Prints the engine's model config, build profile and weight summary as JSON.\n"
            "\n"
            "  --engine DIR   engine directory (required)\n"
            "  --verify       also check every tensor's checksum\n"
            "  -h, --help     this help\n");
}

int cmd_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *engine = NULL;
    bool verify = false;
    int err = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_flag_val(argc, argv, &i, "--engine", &engine, &err)) {
            if (err) return 2;
        } else if (!strcmp(argv[i], "--verify")) {
            verify = true;
        } else {
            return cli_usage_error("info: unknown option '%s' (see edgellm info --help)", argv[i]);
        }
    }
    if (!engine) {
        return cli_usage_error("info: --engine is required");
    }
    el_engine *e = NULL;
    if (el_engine_open(engine, verify, &e) != EDGELLM_STATUS_OK) return cli_fail("cannot open engine");
    edgellm_engine_info info;
    if (edgellm_engine_info_read(engine, &info) != EDGELLM_STATUS_OK) {
        el_engine_close(e);
        return cli_fail("cannot read engine info");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "engine", engine);
    cJSON_AddStringToObject(o, "arch", info.arch);
    cJSON_AddItemToObject(o, "config", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e->meta, "config"), true));
    cJSON_AddItemToObject(o, "profile", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e->meta, "profile"), true));
    cJSON_AddStringToObject(o, "weight_dtype", info.weight_dtype);
    cJSON_AddStringToObject(o, "kv_cache_dtype", info.kv_cache_dtype);
    cJSON_AddNumberToObject(o, "n_tensors", (double)e->n_tensors);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)info.weight_bytes);
    cJSON_AddNumberToObject(o, "file_bytes", (double)info.file_bytes);
    cJSON_AddBoolToObject(o, "has_tokenizer", info.has_tokenizer);
    cJSON_AddBoolToObject(o, "verified", verify);
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(e->meta, "export");
    if (ex) cJSON_AddItemToObject(o, "export", cJSON_Duplicate(ex, true));
    char *text = cJSON_Print(o);
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
    el_engine_close(e);
    return 0;
}
