/* tp_shim.c - LD_PRELOAD helper for llamacpp_bench.mjs: gives every llama_context that node-llama-cpp
 * creates a persistent ggml CPU thread pool, attached as llama-bench / llama-cli do (default pool params).
 * node-llama-cpp attaches none, so ggml would create and join its worker threads inside every
 * llama_decode, which costs llama.cpp milliseconds per token on a 2-core machine.
 *
 * Hook: node-llama-cpp calls llama_state_get_size(ctx) right after it creates a context. This file
 * defines that symbol; the first time it sees a ctx it creates a pool of llama_n_threads(ctx) threads
 * (ggml_threadpool_new from the CPU backend registry) and calls llama_attach_threadpool, then forwards
 * to the real function. The addon loads libllama/libggml with RTLD_LOCAL, so the real symbols are found
 * by walking the loaded objects (dl_iterate_phdr) and dlopen(RTLD_NOLOAD) on the matching one.
 * Not part of libedgellm (built by bench/run_cpu_bench.sh):
 *   cc -O2 -shared -fPIC -o tp_shim.so bench/llamacpp/tp_shim.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lookup {
    const char *part;
    char path[4096];
} lookup;

static int on_object(struct dl_phdr_info *info, size_t size, void *user) {
    (void)size;
    lookup *l = user;
    if (info->dlpi_name && strstr(info->dlpi_name, l->part)) {
        snprintf(l->path, sizeof l->path, "%s", info->dlpi_name);
        return 1;
    }
    return 0;
}

static void *find_sym(const char *lib_part, const char *name) {
    lookup l = {lib_part, ""};
    dl_iterate_phdr(on_object, &l);
    void *h = l.path[0] ? dlopen(l.path, RTLD_NOLOAD | RTLD_LAZY) : NULL;
    void *p = h ? dlsym(h, name) : NULL;
    if (!p) fprintf(stderr, "[tp_shim] %s not found in *%s*\n", name, lib_part);
    return p;
}

#define MAX_CTX 64
static void *g_done[MAX_CTX];

static void attach_pool(void *ctx) {
    int (*n_threads)(void *) = (int (*)(void *))find_sym("/libllama.", "llama_n_threads");
    void (*attach)(void *, void *, void *) = (void (*)(void *, void *, void *))find_sym("/libllama.", "llama_attach_threadpool");
    void (*params_init)(void *, int) = (void (*)(void *, int))find_sym("/libggml-base", "ggml_threadpool_params_init");
    void *(*reg_by_name)(const char *) = (void *(*)(const char *))find_sym("/libggml.", "ggml_backend_reg_by_name");
    void *(*get_proc)(void *, const char *) =
        (void *(*)(void *, const char *))find_sym("/libggml-base", "ggml_backend_reg_get_proc_address");
    if (!n_threads || !attach || !params_init || !reg_by_name || !get_proc) return;
    void *cpu = reg_by_name("CPU");
    void *(*pool_new)(void *) = cpu ? (void *(*)(void *))get_proc(cpu, "ggml_threadpool_new") : NULL;
    if (!pool_new) return;
    _Alignas(64) unsigned char params[4096]; /* struct ggml_threadpool_params (~530 bytes) */
    int n = n_threads(ctx);
    params_init(params, n);
    void *pool = pool_new(params);
    if (!pool) {
        fprintf(stderr, "[tp_shim] ggml_threadpool_new failed\n");
        return;
    }
    attach(ctx, pool, NULL);
    char v[16];
    snprintf(v, sizeof v, "%d", n);
    setenv("EDGELLM_TP_SHIM_ATTACHED", v, 1);
    fprintf(stderr, "[tp_shim] persistent threadpool attached, %d threads\n", n);
}

size_t llama_state_get_size(void *ctx) {
    static size_t (*real)(void *);
    if (!real) real = (size_t (*)(void *))find_sym("/libllama.", "llama_state_get_size");
    int seen = 0, slot = -1;
    for (int i = 0; i < MAX_CTX; i++) {
        if (g_done[i] == ctx) seen = 1;
        if (!g_done[i] && slot < 0) slot = i;
    }
    if (!seen && slot >= 0) {
        g_done[slot] = ctx;
        attach_pool(ctx);
    }
    return real ? real(ctx) : 0;
}
