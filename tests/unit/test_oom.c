/*
 * test_oom.c - allocation failure injection through edgellm_set_allocator.
 *
 * For each operation, a clean run first counts its allocations M (and gives the reference result).
 * Then the N-th allocation fails, for N = 1..min(M, 200) and every k-th N after that (about 100 more
 * runs), and finally N = M + 1 (must succeed). A run with a failed allocation must return a negative
 * status with a non-empty edgellm_last_error() (or, if the library tolerates that allocation failing,
 * succeed with the reference result), leak nothing (allocator live count, open file descriptors; ASan
 * in the sanitizer build), leave no half-written output directory, and leave shared objects usable.
 *
 * cJSON allocates through its own hooks (the library does not route it through el_malloc): those
 * allocations are neither counted nor failed here.
 *
 * EDGELLM_OOM_TRACE=1 records a backtrace per live block and prints those of leaked blocks
 * (addr2line -f -e test_oom OFFSET names the functions).
 *
 * Operations: tokenizer load (sotu-qwen3, stories260K), encode + decode + streaming detokenizer, chat
 * template load + render, Jinja templates from source + golden renders (qwen3, deepseek_v3, gemma3), GGUF export, runtime create (sotu-qwen3 fp32 engine), generate, export and build
 * (tiny-qwen3).
 */
#include "edgellm/edgellm.h"
#include "core/core.h"
#include "test.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <execinfo.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* ---- the failing allocator ---------------------------------------------------------------------- */
static atomic_long g_count;   /* allocations so far (malloc + realloc)              */
static atomic_long g_fail_at; /* absolute allocation index that fails; 0 = never    */
static atomic_long g_live;    /* blocks currently allocated through the allocator   */
static atomic_int g_injected; /* a failure was injected in this run                 */

/* optional tracing of live blocks (EDGELLM_OOM_TRACE=1) */
typedef struct trace_rec {
    void *p;
    long idx;
    size_t size;
    int depth;
    void *bt[10];
} trace_rec;
static bool g_trace;
static pthread_mutex_t g_trace_mu = PTHREAD_MUTEX_INITIALIZER;
static trace_rec *g_recs;
static size_t g_n_recs, g_cap_recs;

static void trace_add(void *p, long idx, size_t size) {
    if (!g_trace || !p) return;
    trace_rec r = {p, idx, size, 0, {0}};
    r.depth = backtrace(r.bt, 10);
    pthread_mutex_lock(&g_trace_mu);
    if (g_n_recs == g_cap_recs) {
        g_cap_recs = g_cap_recs ? g_cap_recs * 2 : 4096;
        g_recs = realloc(g_recs, g_cap_recs * sizeof *g_recs);
    }
    g_recs[g_n_recs++] = r;
    pthread_mutex_unlock(&g_trace_mu);
}
static void trace_del(uintptr_t p) { /* an address, possibly of a block already reallocated */
    if (!g_trace || !p) return;
    pthread_mutex_lock(&g_trace_mu);
    for (size_t i = g_n_recs; i-- > 0;)
        if ((uintptr_t)g_recs[i].p == p) {
            g_recs[i] = g_recs[--g_n_recs];
            break;
        }
    pthread_mutex_unlock(&g_trace_mu);
}
/* prints the blocks allocated at index >= from that are still live, and forgets them */
static void trace_dump(long from) {
    if (!g_trace) return;
    for (size_t i = 0; i < g_n_recs;) {
        if (g_recs[i].idx >= from) {
            fprintf(stderr, "  leaked block: allocation #%ld (%zu bytes), allocated at:\n", g_recs[i].idx - from + 1,
                    g_recs[i].size);
            backtrace_symbols_fd(g_recs[i].bt, g_recs[i].depth, 2);
            g_recs[i] = g_recs[--g_n_recs];
        } else {
            i++;
        }
    }
}

static void *t_malloc(size_t n, void *u) {
    (void)u;
    long i = atomic_fetch_add(&g_count, 1) + 1;
    if (i == atomic_load(&g_fail_at)) {
        atomic_store(&g_injected, 1);
        return NULL;
    }
    void *p = malloc(n);
    if (p) atomic_fetch_add(&g_live, 1);
    trace_add(p, i, n);
    return p;
}
static void *t_realloc(void *p, size_t n, void *u) {
    if (!p) return t_malloc(n, u);
    long i = atomic_fetch_add(&g_count, 1) + 1;
    if (i == atomic_load(&g_fail_at)) {
        atomic_store(&g_injected, 1);
        return NULL;
    }
    /* malloc + copy + free instead of realloc (moves every block, so stale pointers show up) */
    void *q = malloc(n);
    if (!q) return NULL;
    size_t old = malloc_usable_size(p);
    memcpy(q, p, old < n ? old : n);
    trace_del((uintptr_t)p);
    free(p);
    trace_add(q, i, n);
    return q;
}
static void t_free(void *p, void *u) {
    (void)u;
    if (p) atomic_fetch_sub(&g_live, 1);
    trace_del((uintptr_t)p);
    free(p);
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* ---- the driver --------------------------------------------------------------------------------- */
typedef struct op {
    const char *name;
    edgellm_status (*run)(void *ctx);     /* the operation; on success leaves its result in ctx       */
    bool (*verify)(void *ctx);            /* the result equals the reference (NULL: nothing to check) */
    void (*cleanup)(void *ctx);           /* frees what run created, success or not                   */
    void *ctx;
} op;

static long g_total_runs;

static void run_oom(const op *o) {
    /* reference run: counts the allocations */
    atomic_store(&g_fail_at, 0);
    long live0 = atomic_load(&g_live);
    int fds0 = count_fds();
    long c0 = atomic_load(&g_count);
    edgellm_status s = o->run(o->ctx);
    long M = atomic_load(&g_count) - c0;
    CHECKF(s == EDGELLM_STATUS_OK, "%s: reference run failed: %s", o->name, edgellm_last_error());
    if (s == EDGELLM_STATUS_OK && o->verify) CHECKF(o->verify(o->ctx), "%s: reference run result is wrong", o->name);
    o->cleanup(o->ctx);
    CHECKF(atomic_load(&g_live) == live0, "%s: reference run leaks %ld blocks", o->name, atomic_load(&g_live) - live0);
    if (s != EDGELLM_STATUS_OK) return;

    long step = M > 200 ? (M - 200) / 100 + 1 : 1;
    int runs = 0, n_nomem = 0, n_other = 0, n_tolerated = 0, leaks = 0, fd_leaks = 0, bad_status = 0;
    char other_msg[512] = "", tol_msg[256] = "";
    for (long N = 1; N <= M + 1; N = N < 200 ? N + 1 : (N + step > M && N <= M ? M + 1 : N + step)) {
        edgellm_clear_error();
        atomic_store(&g_injected, 0);
        long start = atomic_load(&g_count) + 1;
        atomic_store(&g_fail_at, start - 1 + N);
        s = o->run(o->ctx);
        atomic_store(&g_fail_at, 0);
        bool injected = atomic_load(&g_injected);
        bool ok_result = s == EDGELLM_STATUS_OK && (!o->verify || o->verify(o->ctx));
        o->cleanup(o->ctx);
        runs++;
        if (atomic_load(&g_live) != live0) {
            fprintf(stderr, "%s: N=%ld (status %d): %ld blocks leaked\n", o->name, N, (int)s, atomic_load(&g_live) - live0);
            trace_dump(start);
            leaks++;
            atomic_store(&g_live, live0); /* report once per leak, not for every later run */
        }
        if (count_fds() != fds0) {
            if (!fd_leaks) fprintf(stderr, "%s: N=%ld: %d file descriptors leaked\n", o->name, N, count_fds() - fds0);
            fd_leaks++;
            fds0 = count_fds();
        }
        if (!injected) {
            /* no allocation failed (N beyond this run's allocations): must be the normal result */
            CHECKF(ok_result, "%s: N=%ld: no failure injected but status %d (%s)", o->name, N, (int)s, edgellm_last_error());
            if (N <= M) continue;
            break;
        }
        if (s < 0) {
            const char *e = edgellm_last_error();
            if (!e[0]) {
                if (!bad_status) fprintf(stderr, "%s: N=%ld: status %d with an empty error message\n", o->name, N, (int)s);
                bad_status++;
            }
            if (s == EDGELLM_STATUS_NO_MEMORY) {
                n_nomem++;
            } else {
                if (!n_other) snprintf(other_msg, sizeof other_msg, "N=%ld status %d (%s): %s", N, (int)s,
                                       edgellm_status_str(s), e);
                n_other++;
            }
        } else if (ok_result) {
            /* the failed allocation was optional (e.g. a cache or a fallback path); the result is intact */
            size_t tl = strlen(tol_msg);
            if (tl < sizeof tol_msg - 16) snprintf(tol_msg + tl, sizeof tol_msg - tl, " N=%ld", N);
            n_tolerated++;
        } else {
            if (!bad_status)
                fprintf(stderr, "%s: N=%ld: a failed allocation gave status %d and a wrong result\n", o->name, N, (int)s);
            bad_status++;
        }
    }
    CHECKF(leaks == 0, "%s: %d runs leaked memory", o->name, leaks);
    CHECKF(fd_leaks == 0, "%s: %d runs leaked file descriptors", o->name, fd_leaks);
    CHECKF(bad_status == 0, "%s: %d runs failed without a message or returned a wrong result", o->name, bad_status);
    CHECKF(n_nomem + n_other > 0, "%s: no injected failure was reported", o->name);
    g_total_runs += runs;
    printf("  %-28s %6ld allocations, %4d runs: %d NO_MEMORY, %d other errors, %d tolerated%s%s%s\n", o->name, M,
           runs, n_nomem, n_other, n_tolerated, tol_msg, n_other ? "; first other: " : "", other_msg);
}

/* ---- operations --------------------------------------------------------------------------------- */
typedef struct tok_ctx {
    const char *path;
    int32_t ref_vocab;
    edgellm_tokenizer *tok;
} tok_ctx;
static edgellm_status tok_run(void *c) {
    tok_ctx *t = c;
    return edgellm_tokenizer_load(t->path, &t->tok);
}
static bool tok_verify(void *c) {
    tok_ctx *t = c;
    return t->tok && edgellm_tokenizer_vocab_size(t->tok) == t->ref_vocab;
}
static void tok_cleanup(void *c) {
    tok_ctx *t = c;
    edgellm_tokenizer_free(t->tok);
    t->tok = NULL;
}

typedef struct text_ctx {
    const edgellm_tokenizer *tok;
    const char *text;
    int32_t *ref_ids;
    size_t n_ref;
    int32_t *ids;
    size_t n;
    char *dec;
    char *streamed;
} text_ctx;
static edgellm_status text_run(void *c) {
    text_ctx *t = c;
    size_t len;
    EL_TRY(edgellm_tokenizer_encode(t->tok, t->text, strlen(t->text), true, &t->ids, &t->n));
    EL_TRY(edgellm_tokenizer_decode(t->tok, t->ids, t->n, true, &t->dec, &len));
    edgellm_detok_stream *ds = NULL;
    EL_TRY(edgellm_detok_stream_create(t->tok, true, &ds));
    el_buf b = {0};
    edgellm_status st = EDGELLM_STATUS_OK;
    const char *piece;
    for (size_t i = 0; i < t->n && st >= 0; i++) {
        st = edgellm_detok_stream_push(ds, t->ids[i], &piece);
        if (st >= 0) st = el_buf_append_str(&b, piece);
    }
    if (st >= 0) st = edgellm_detok_stream_flush(ds, &piece);
    if (st >= 0) st = el_buf_append(&b, piece, strlen(piece) + 1);
    edgellm_detok_stream_free(ds);
    if (st < 0) {
        el_buf_free(&b);
        return st;
    }
    t->streamed = b.data;
    return EDGELLM_STATUS_OK;
}
static bool text_verify(void *c) {
    text_ctx *t = c;
    return t->n == t->n_ref && !memcmp(t->ids, t->ref_ids, t->n * sizeof(int32_t)) && t->dec && t->streamed &&
           !strcmp(t->dec, t->streamed) && strstr(t->text, t->dec + (t->dec[0] == ' '));
}
static void text_cleanup(void *c) {
    text_ctx *t = c;
    edgellm_free(t->ids);
    edgellm_free(t->dec);
    el_free(t->streamed);
    t->ids = NULL;
    t->dec = NULL;
    t->streamed = NULL;
}

typedef struct tmpl_ctx {
    const char *dir;
    char *ref;
    edgellm_chat_template *t;
    char *out;
} tmpl_ctx;
static edgellm_status tmpl_run(void *c) {
    tmpl_ctx *t = c;
    EL_TRY(edgellm_chat_template_load(t->dir, &t->t));
    return edgellm_chat_template_render(
        t->t, "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hello there\"}]",
        true, "{\"enable_thinking\": false}", &t->out);
}
static bool tmpl_verify(void *c) {
    tmpl_ctx *t = c;
    return t->out && (!t->ref || !strcmp(t->out, t->ref));
}
static void tmpl_cleanup(void *c) {
    tmpl_ctx *t = c;
    edgellm_chat_template_free(t->t);
    edgellm_free(t->out);
    t->t = NULL;
    t->out = NULL;
}

/* Jinja: a fixture template from source + renders of golden cases (tools, multi-turn, unicode...) */
#define JINJA_CASES 6
typedef struct jinja_ctx {
    const char *src, *bos, *eos;
    char *msgs[JINJA_CASES], *extra[JINJA_CASES];
    const char *want[JINJA_CASES];
    bool agp[JINJA_CASES];
    int n;
    edgellm_chat_template *t;
    char *out[JINJA_CASES];
} jinja_ctx;
static edgellm_status jinja_run(void *c) {
    jinja_ctx *j = c;
    EL_TRY(edgellm_chat_template_from_string(j->src, j->bos, j->eos, &j->t));
    for (int i = 0; i < j->n; i++) EL_TRY(edgellm_chat_template_render(j->t, j->msgs[i], j->agp[i], j->extra[i], &j->out[i]));
    return EDGELLM_STATUS_OK;
}
static bool jinja_verify(void *c) {
    jinja_ctx *j = c;
    for (int i = 0; i < j->n; i++)
        if (!j->out[i] || strcmp(j->out[i], j->want[i])) return false;
    return true;
}
static void jinja_cleanup(void *c) {
    jinja_ctx *j = c;
    edgellm_chat_template_free(j->t);
    j->t = NULL;
    for (int i = 0; i < j->n; i++) {
        edgellm_free(j->out[i]);
        j->out[i] = NULL;
    }
}
static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
/* the golden cases `ids` of chat/goldens/<name>.json with their fixture template */
static void jinja_op(const char *name, const char *const *ids) {
    char path[512];
    snprintf(path, sizeof path, "fixtures/chat_templates/%s.json", name);
    cJSON *fx = NULL, *g = NULL;
    CHECK_OK(el_json_load(path, 0, &fx));
    snprintf(path, sizeof path, "chat/goldens/%s.json", name);
    CHECK_OK(el_json_load(path, 0, &g));
    jinja_ctx j = {0};
    if (fx && g) {
        j.src = jstr(fx, "chat_template");
        j.bos = jstr(fx, "bos_token");
        j.eos = jstr(fx, "eos_token");
        for (int k = 0; ids[k] && j.n < JINJA_CASES; k++) {
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(g, "cases")) {
                const char *id = jstr(c, "id");
                if (!id || strcmp(id, ids[k]) || !jstr(c, "rendered")) continue;
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "conversations"),
                                                                  jstr(c, "conversation"));
                const cJSON *ex = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "extras"),
                                                                   jstr(c, "extra"));
                j.msgs[j.n] = cJSON_PrintUnformatted(m);
                j.extra[j.n] = ex && cJSON_IsObject(ex) ? cJSON_PrintUnformatted(ex) : NULL;
                j.agp[j.n] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
                j.want[j.n] = jstr(c, "rendered");
                j.n++;
                break;
            }
        }
        CHECKF(j.src && j.n >= 3, "%s: template or golden cases missing (%d found)", name, j.n);
        char opname[64];
        snprintf(opname, sizeof opname, "jinja %s (%d renders)", name, j.n);
        if (j.src && j.n) run_oom(&(op){opname, jinja_run, jinja_verify, jinja_cleanup, &j});
    }
    for (int i = 0; i < j.n; i++) {
        cJSON_free(j.msgs[i]);
        cJSON_free(j.extra[i]);
    }
    cJSON_Delete(fx);
    cJSON_Delete(g);
}

typedef struct rt_ctx {
    const char *engine;
    edgellm_runtime *rt;
} rt_ctx;
static edgellm_status rt_run(void *c) {
    rt_ctx *r = c;
    edgellm_runtime_params p = edgellm_runtime_params_default();
    p.n_threads = 2;
    return edgellm_runtime_create(r->engine, &p, &r->rt);
}
static bool rt_verify(void *c) {
    rt_ctx *r = c;
    /* the text layer must be complete: a failed allocation must not silently drop it */
    return r->rt && edgellm_runtime_tokenizer(r->rt) && edgellm_runtime_chat_template(r->rt) &&
           edgellm_runtime_vocab_size(r->rt) == 4096;
}
static void rt_cleanup(void *c) {
    rt_ctx *r = c;
    edgellm_runtime_free(r->rt);
    r->rt = NULL;
}

typedef struct gen_ctx {
    edgellm_runtime *rt;
    edgellm_result ref[2], res[2];
} gen_ctx;
static const int32_t k_p0[] = {10, 20, 30, 40, 50}, k_p1[] = {7, 8};
static edgellm_status gen_run(void *c) {
    gen_ctx *g = c;
    edgellm_request reqs[2] = {{.prompt = k_p0, .n_prompt = 5, .max_new_tokens = 8, .ignore_eos = true},
                               {.prompt = k_p1, .n_prompt = 2, .max_new_tokens = 6, .ignore_eos = true}};
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.seed = 3;
    return edgellm_runtime_generate(g->rt, reqs, 2, &sp, NULL, NULL, g->res);
}
static bool gen_verify(void *c) {
    gen_ctx *g = c;
    for (int i = 0; i < 2; i++)
        if (g->res[i].n_ids != g->ref[i].n_ids ||
            memcmp(g->res[i].ids, g->ref[i].ids, sizeof(int32_t) * (size_t)g->ref[i].n_ids))
            return false;
    return true;
}
static void gen_cleanup(void *c) {
    gen_ctx *g = c;
    edgellm_result_clear(&g->res[0]);
    edgellm_result_clear(&g->res[1]);
}

static char g_tmp[512];

/* only `keep` (or nothing) may exist in dir: no temporary or half-written outputs */
static bool dir_clean(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    if (!d) return true;
    struct dirent *e;
    bool clean = true;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (keep && !strcmp(e->d_name, keep)) continue;
        fprintf(stderr, "left behind: %s/%s\n", dir, e->d_name);
        clean = false;
    }
    closedir(d);
    return clean;
}

static uint64_t file_hash(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t h = 1469598103934665603ull;
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) h = h * 1099511628211ull ^ el_hash64(buf, k);
    fclose(f);
    return h;
}

/* hash of every file under dir (names and contents, in name order); 0 when unreadable */
static uint64_t dir_hash(const char *dir) {
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) return 0;
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        if (ents[i]->d_name[0] != '.') {
            h = h * 1099511628211ull ^ el_hash64(ents[i]->d_name, strlen(ents[i]->d_name));
            if (el_dir_exists(path)) {
                h = h * 1099511628211ull ^ dir_hash(path);
            } else {
                FILE *f = fopen(path, "rb");
                char buf[65536];
                size_t k;
                while (f && (k = fread(buf, 1, sizeof buf, f)) > 0) h = h * 1099511628211ull ^ el_hash64(buf, k);
                if (f) fclose(f);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return h;
}

typedef struct eb_ctx {
    char dir[1024], exp[1100], eng[1100];
    int mode; /* 0 export, 1 build, 2 GGUF export (a file) */
    bool dirty;
    uint64_t ref_hash; /* of the output of the reference run (0 = not yet known) */
} eb_ctx;
static edgellm_status eb_run(void *c) {
    eb_ctx *x = c;
    edgellm_status s;
    if (x->mode == 0) {
        edgellm_export_params ep = edgellm_export_params_default();
        ep.dtype = "fp32";
        s = edgellm_export("fixtures/models/tiny-qwen3", x->exp, &ep);
        if (s < 0 && !dir_clean(x->dir, NULL)) x->dirty = true;
    } else if (x->mode == 2) {
        edgellm_export_params ep = edgellm_export_params_default();
        ep.format = "gguf";
        ep.quantization = "q8_0";
        s = edgellm_export("fixtures/models/stories260K-hf", x->eng, &ep);
        if (s < 0 && !dir_clean(x->dir, "oom.export")) x->dirty = true;
    } else {
        edgellm_build_params bp = edgellm_build_params_default();
        bp.max_batch_size = 2;
        bp.max_input_len = 64;
        bp.max_kv_cache_capacity = 64;
        s = edgellm_build(x->exp, x->eng, &bp);
        if (s < 0 && !dir_clean(x->dir, "oom.export")) x->dirty = true;
    }
    return s;
}
static bool eb_verify(void *c) {
    eb_ctx *x = c;
    /* the output must be byte-identical to the reference run's */
    uint64_t h = x->mode == 2 ? file_hash(x->eng) : dir_hash(x->mode == 0 ? x->exp : x->eng);
    if (!x->ref_hash) x->ref_hash = h;
    if (!h || h != x->ref_hash) return false;
    if (x->mode != 1) return true;
    edgellm_engine_info info;
    return edgellm_engine_info_read(x->eng, &info) == EDGELLM_STATUS_OK && !strcmp(info.arch, "qwen3") &&
           info.max_kv_cache_capacity == 64;
}
static void eb_cleanup(void *c) {
    eb_ctx *x = c;
    if (x->mode == 2) remove(x->eng);
    else el_rm_rf(x->mode == 0 ? x->exp : x->eng);
}

static void *body(void *arg) {
    (void)arg;
    /* the engine for runtime_create / generate (built without failures) */
    char hf_exp[1024], engine[1024];
    snprintf(hf_exp, sizeof hf_exp, "%s/sq.export", g_tmp);
    snprintf(engine, sizeof engine, "%s/sq.engine", g_tmp);
    edgellm_export_params ep = edgellm_export_params_default();
    ep.dtype = "fp32";
    edgellm_build_params bp = edgellm_build_params_default();
    bp.max_batch_size = 2;
    bp.max_input_len = 64;
    bp.max_kv_cache_capacity = 64;
    CHECK_OK(edgellm_export("fixtures/models/sotu-qwen3", hf_exp, &ep));
    CHECK_OK(edgellm_build(hf_exp, engine, &bp));

    tok_ctx tq = {"fixtures/models/sotu-qwen3", 0, NULL}, ts = {"fixtures/models/stories260K-hf", 0, NULL};
    CHECK_OK(edgellm_tokenizer_load(tq.path, &tq.tok));
    CHECK_OK(edgellm_tokenizer_load(ts.path, &ts.tok));
    tq.ref_vocab = edgellm_tokenizer_vocab_size(tq.tok);
    ts.ref_vocab = edgellm_tokenizer_vocab_size(ts.tok);
    edgellm_tokenizer *qtok = tq.tok, *stok = ts.tok; /* kept for the text ops */
    tq.tok = ts.tok = NULL;

    run_oom(&(op){"tokenizer_load sotu-qwen3", tok_run, tok_verify, tok_cleanup, &tq});
    run_oom(&(op){"tokenizer_load stories260K", tok_run, tok_verify, tok_cleanup, &ts});

    text_ctx tx[2] = {
        {.tok = qtok, .text = "The state of the Union is strong, and our economy — growing at 3% — creates jobs."},
        {.tok = stok, .text = "Once upon a time, Lily saw a big red ball in the park. \xc3\xa9t\xc3\xa9!"}};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(edgellm_tokenizer_encode(tx[i].tok, tx[i].text, strlen(tx[i].text), true, &tx[i].ref_ids, &tx[i].n_ref));
        run_oom(&(op){i ? "encode/decode/stream stories" : "encode/decode/stream sotu", text_run, text_verify,
                      text_cleanup, &tx[i]});
        edgellm_free(tx[i].ref_ids);
    }

    tmpl_ctx tc = {.dir = "fixtures/models/sotu-qwen3"};
    CHECK_OK(tmpl_run(&tc));
    tc.ref = tc.out ? el_strdup(tc.out) : NULL;
    tmpl_cleanup(&tc);
    run_oom(&(op){"chat_template_load+render", tmpl_run, tmpl_verify, tmpl_cleanup, &tc});
    el_free(tc.ref);

    static const char *const k_cases[] = {"tool_calls/gen/tools", "multi_turn/gen/think_on", "unicode/gen",
                                          "system_multi_turn/gen", "tool_response_user/gen", "long/gen", NULL};
    jinja_op("qwen3", k_cases);
    jinja_op("deepseek_v3", k_cases);
    jinja_op("gemma3", k_cases);

    rt_ctx rc = {engine, NULL};
    run_oom(&(op){"runtime_create sotu fp32", rt_run, rt_verify, rt_cleanup, &rc});

    gen_ctx gc = {0};
    CHECK_OK(rt_run(&rc));
    gc.rt = rc.rt;
    if (gc.rt) {
        /* the reference ids (kept through the runs) */
        CHECK_OK(gen_run(&gc));
        gc.ref[0] = gc.res[0];
        gc.ref[1] = gc.res[1];
        gc.res[0] = gc.res[1] = (edgellm_result){0};
        CHECK(gc.ref[0].n_ids == 8 && gc.ref[1].n_ids == 6);
        run_oom(&(op){"runtime_generate", gen_run, gen_verify, gen_cleanup, &gc});
        /* the runtime still works after all those failures */
        CHECK_OK(gen_run(&gc));
        CHECKF(gen_verify(&gc), "generate after the failure runs differs from the reference");
        gen_cleanup(&gc);
        edgellm_result_clear(&gc.ref[0]);
        edgellm_result_clear(&gc.ref[1]);
        rt_cleanup(&rc);
    }

    eb_ctx ex = {.mode = 0};
    snprintf(ex.dir, sizeof ex.dir, "%s/eb", g_tmp);
    snprintf(ex.exp, sizeof ex.exp, "%s/oom.export", ex.dir);
    snprintf(ex.eng, sizeof ex.eng, "%s/oom.engine", ex.dir);
    el_mkdir_p(ex.dir);
    run_oom(&(op){"export tiny-qwen3", eb_run, eb_verify, eb_cleanup, &ex});
    CHECKF(!ex.dirty, "a failed export left files behind");
    ex.mode = 0;
    CHECK_OK(eb_run(&ex));
    ex.mode = 1;
    ex.ref_hash = 0;
    run_oom(&(op){"build tiny-qwen3", eb_run, eb_verify, eb_cleanup, &ex});
    CHECKF(!ex.dirty, "a failed build left files behind");
    /* GGUF export (q8_0) of stories260K: a single file, written atomically too */
    ex.mode = 2;
    ex.ref_hash = 0;
    snprintf(ex.eng, sizeof ex.eng, "%s/oom.gguf", ex.dir);
    run_oom(&(op){"export gguf q8_0 stories260K", eb_run, eb_verify, eb_cleanup, &ex});
    CHECKF(!ex.dirty, "a failed GGUF export left files behind");

    edgellm_tokenizer_free(qtok);
    edgellm_tokenizer_free(stok);
    return NULL;
}

int main(void) {
    const char *t = getenv("EDGELLM_TMP");
    snprintf(g_tmp, sizeof g_tmp, "%s/oom", t ? t : "/tmp/edgellm-test");
    el_rm_rf(g_tmp);
    el_mkdir_p(g_tmp);
    edgellm_log_set_level(EDGELLM_LOG_LEVEL_ERROR);
    g_trace = getenv("EDGELLM_OOM_TRACE") != NULL;
    /* install before creating any object, keep for the whole test */
    edgellm_allocator a = {t_malloc, t_realloc, t_free, NULL};
    edgellm_set_allocator(&a);
    /* the body runs on its own thread: the tokenizer's per-thread scratch is freed when it exits, so
     * everything must be freed after the join */
    pthread_t th;
    CHECK(pthread_create(&th, NULL, body, NULL) == 0);
    pthread_join(th, NULL);
    CHECKF(atomic_load(&g_live) == 0, "%ld blocks still allocated at the end", atomic_load(&g_live));
    if (atomic_load(&g_live) != 0) trace_dump(0);
    edgellm_set_allocator(NULL);
    free(g_recs);
    printf("  %ld failure-injection runs\n", g_total_runs);
    return t_finish("test_oom");
}
