/*
 * default_model.c - the bundled default model (stories260K, MIT, Copyright (c) 2023 Andrej Karpathy),
 * embedded in the binary and exported + built into a cache dir on first use.
 */
#include "cli.h"
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STR2(x) #x
#define STR(x) STR2(x)

/* .incbin embeds each file; symbols <name>_start / <name>_end. */
#define EMBED(sym, file)                                                                               \
    __asm__(".section .rodata\n.global " #sym "_start\n.global " #sym "_end\n.balign 64\n" #sym       \
            "_start:\n.incbin \"" EDGELLM_SOURCE_DIR "/models/stories260K/" file "\"\n" #sym "_end:\n"   \
            ".byte 0\n.previous\n");                                                                   \
    extern const char sym##_start[], sym##_end[];

EMBED(el_dm_config, "config.json")
EMBED(el_dm_model, "model.safetensors")
EMBED(el_dm_tokenizer, "tokenizer.json")
EMBED(el_dm_tokcfg, "tokenizer_config.json")
EMBED(el_dm_license, "LICENSE")

static int write_all(const char *dir, const char *name, const char *start, const char *end) {
    char path[4096];
    if (el_path_join(path, sizeof path, dir, name) < 0) return -1;
    return el_write_file(path, start, (size_t)(end - start)) < 0 ? -1 : 0;
}

int cli_default_engine(char *out, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char cache[3072];
    if (xdg && xdg[0])
        snprintf(cache, sizeof cache, "%s/edgellm", xdg);
    else if (home && home[0])
        snprintf(cache, sizeof cache, "%s/.cache/edgellm", home);
    else
        snprintf(cache, sizeof cache, "/tmp/edgellm-cache-%d", (int)getuid());
    /* the key changes whenever the embedded model or the engine format changes */
    char engine[3584], hf[3584], exp[3584];
    snprintf(engine, sizeof engine, "%s/stories260K-v%s-%zx.engine", cache, edgellm_version(),
             (size_t)(el_dm_model_end - el_dm_model_start));
    if ((size_t)snprintf(out, cap, "%s", engine) >= cap) return cli_usage_error("cache path too long");
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/model.engine", engine);
    struct stat st;
    if (stat(probe, &st) == 0) return 0;
    if (el_mkdir_p(cache) < 0) return cli_fail("creating the cache directory");
    fprintf(stderr, "edgellm: building the bundled stories260K model into %s (first use)\n", engine);
    snprintf(hf, sizeof hf, "%s/stories260K-hf.tmp-%d", cache, (int)getpid());
    snprintf(exp, sizeof exp, "%s/stories260K-export.tmp-%d", cache, (int)getpid());
    if (el_mkdir_p(hf) < 0 || write_all(hf, "config.json", el_dm_config_start, el_dm_config_end) ||
        write_all(hf, "model.safetensors", el_dm_model_start, el_dm_model_end) ||
        write_all(hf, "tokenizer.json", el_dm_tokenizer_start, el_dm_tokenizer_end) ||
        write_all(hf, "tokenizer_config.json", el_dm_tokcfg_start, el_dm_tokcfg_end) ||
        write_all(hf, "LICENSE", el_dm_license_start, el_dm_license_end)) {
        return cli_fail("writing the bundled model to the cache");
    }
    edgellm_export_params ep = edgellm_export_params_default();
    ep.overwrite = true;
    edgellm_build_params bp = edgellm_build_params_default();
    bp.overwrite = true;
    bp.max_input_len = 512;
    bp.max_kv_cache_capacity = 512;
    int rc = 0;
    if (edgellm_export(hf, exp, &ep) != EDGELLM_STATUS_OK)
        rc = cli_fail("exporting the bundled model");
    else if (edgellm_build(exp, engine, &bp) != EDGELLM_STATUS_OK)
        rc = cli_fail("building the bundled model");
    /* clean up the temporaries (best effort) */
    const char *names[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "LICENSE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(probe, sizeof probe, "%s/%s", hf, names[i]);
        unlink(probe);
    }
    rmdir(hf);
    el_rm_rf(exp); /* the export dir is not needed once the engine exists */
    return rc;
}
