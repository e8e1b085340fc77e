/*
 * cmd_serve.c - `edgellm serve`: an OpenAI-compatible HTTP server for one engine, on libmicrohttpd.
 *
 * Threads: libmicrohttpd runs one thread per connection; those threads parse and validate requests and
 * put generation jobs on a FIFO queue. One worker thread owns the runtime and runs the jobs one at a time
 * in arrival order (v1: no batching of concurrent requests). A handler waits until its job's prompt is
 * accepted (or refused: 400) and then answers with the whole result, or streams Server-Sent Events that
 * the worker appends to the job while it generates. One mutex and one condition variable guard the queue
 * and every job. The main thread waits for SIGINT / SIGTERM and then shuts everything down.
 */
#include "cli.h"
#include "core/core.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_ret;
#else
typedef int mhd_ret;
#endif

#define MAX_BODY_BYTES (1u << 20) /* request bodies above this get 413 */
#define MAX_STOP 4                /* stop strings per request, as OpenAI */
#define MAX_CONNECTIONS 64
#define MAX_MESSAGES 1024

static const char *k_help =
    "usage: edgellm serve --engine DIR [options]\n"
    "  OpenAI-compatible HTTP server: GET /health, GET /v1/models, POST /v1/completions,\n"
    "  POST /v1/chat/completions (JSON or streamed as Server-Sent Events). Requests run one at a time\n"
    "  in arrival order. Stop with Ctrl-C / SIGTERM. See docs/serve.md.\n"
    "  --engine DIR              engine directory (required)\n"
    "  --host ADDR               address to listen on (default 127.0.0.1; 0.0.0.0 = all IPv4)\n"
    "  --port N                  TCP port (default 8080; 0 = any free port, printed at start)\n"
    "  --threads N               CPU threads of the runtime (default: all cores)\n"
    "  --max-tokens-default N    max_tokens of requests that give none (default 256)\n"
    "  --api-key KEY             require \"Authorization: Bearer KEY\" on /v1/* (default: no key)\n"
    "  --model-id NAME           model id reported by the API (default: the engine directory's name)\n";

typedef enum job_kind { JOB_COMPLETION, JOB_CHAT } job_kind;
typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;

typedef struct server server;

typedef struct job {
    /* the request, fixed once queued */
    server *srv;
    job_kind kind;
    char *input; /* completion: the prompt text; chat: the messages as JSON [{role, content}] */
    char *extra; /* chat: template variables as JSON */
    edgellm_sampling_params sp;
    int32_t max_tokens;
    bool ignore_eos, stream, include_usage;
    char *stop[MAX_STOP];
    int n_stop;
    size_t max_stop_len;
    char id[40];
    long long created;
    /* progress, under srv->mu */
    job_state state;
    bool ready;     /* the prompt was accepted or refused: the handler may answer */
    bool cancelled; /* the client of a stream went away */
    bool stop_hit;  /* a stop string ended the text */
    int err_status; /* != 0: the request failed with this HTTP status and err_msg */
    char *err_msg;
    el_buf text;    /* generated text, cut at a stop string */
    size_t emitted; /* bytes of text already sent as stream chunks */
    el_buf sse;     /* stream: event bytes for the client */
    size_t sse_sent;
    const char *finish;
    int64_t prompt_tokens, completion_tokens;
    int refs;
    struct job *next;
} job;

struct server {
    edgellm_runtime *rt;
    char model_id[256];
    const char *api_key;
    int32_t max_tokens_default, max_input_len, kv_capacity;
    long long started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change of the queue or of a job */
    job *head, *tail;
    bool stopping;
    uint64_t n_jobs;
};

/* ---- jobs ----------------------------------------------------------------------------------------- */

static void job_unref_locked(job *j) {
    if (--j->refs > 0) return;
    el_free(j->input);
    el_free(j->extra);
    for (int i = 0; i < j->n_stop; i++)
        el_free(j->stop[i]);
    el_free(j->err_msg);
    el_buf_free(&j->text);
    el_buf_free(&j->sse);
    el_free(j);
}

static void job_unref(job *j) {
    pthread_mutex_t *mu = &j->srv->mu;
    pthread_mutex_lock(mu);
    job_unref_locked(j);
    pthread_mutex_unlock(mu);
}

/* Marks j failed (before or after it was accepted); caller holds the lock. */
static void job_fail_locked(job *j, int status, const char *msg) {
    if (!j->err_status) {
        j->err_status = status;
        j->err_msg = el_strdup(msg && msg[0] ? msg : "internal error");
    }
}

/* {"id", "object", "created", "model", "choices": [{"index": 0}]}; returns the object, *choice the choice */
static cJSON *response_base(const job *j, const char *object, cJSON **choice) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->srv->model_id);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(*choice, "index", 0);
    cJSON_AddItemToArray(choices, *choice);
    return o;
}

static void add_usage(cJSON *o, const job *j) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)j->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(j->prompt_tokens + j->completion_tokens));
}

static void add_finish(cJSON *choice, const char *finish) {
    cJSON_AddNullToObject(choice, "logprobs");
    if (finish)
        cJSON_AddStringToObject(choice, "finish_reason", finish);
    else
        cJSON_AddNullToObject(choice, "finish_reason");
}

/* The non-streamed answer of a finished job. */
static char *job_response_json(const job *j) {
    cJSON *choice, *o;
    const char *text = j->text.data ? j->text.data : "";
    if (j->kind == JOB_CHAT) {
        o = response_base(j, "chat.completion", &choice);
        cJSON *m = cJSON_AddObjectToObject(choice, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        o = response_base(j, "text_completion", &choice);
        cJSON_AddStringToObject(choice, "text", text);
    }
    add_finish(choice, j->finish);
    add_usage(o, j);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void sse_append_obj(job *j, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return;
    el_buf_append_str(&j->sse, "data: ");
    el_buf_append_str(&j->sse, s);
    el_buf_append_str(&j->sse, "\n\n");
    cJSON_free(s);
}

/* One stream chunk: text (may be NULL: none), finish reason (NULL: not yet); chat's first chunk has the role.
 */
static void sse_chunk(job *j, const char *text, size_t len, const char *finish, bool role) {
    cJSON *choice, *o;
    char *t = text ? el_strndup(text, len) : NULL;
    if (j->kind == JOB_CHAT) {
        o = response_base(j, "chat.completion.chunk", &choice);
        cJSON *d = cJSON_AddObjectToObject(choice, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (t || role) cJSON_AddStringToObject(d, "content", t ? t : "");
    } else {
        o = response_base(j, "text_completion", &choice);
        cJSON_AddStringToObject(choice, "text", t ? t : "");
    }
    el_free(t);
    add_finish(choice, finish);
    sse_append_obj(j, o);
}

/* Length of the longest tail of text (shorter than the longest stop string) that starts a stop string:
 * held back from the stream until it is known not to be one. */
static size_t stop_holdback(const job *j) {
    size_t n = j->text.len, best = 0;
    for (int i = 0; i < j->n_stop; i++) {
        size_t sl = strlen(j->stop[i]);
        for (size_t k = sl - 1 < n ? sl - 1 : n; k > best; k--)
            if (!memcmp(j->text.data + n - k, j->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* cli_generate_text callback (worker thread): adds a piece, cuts at a stop string, streams what is safe. */
static bool on_piece(const char *piece, void *user) {
    job *j = user;
    server *s = j->srv;
    pthread_mutex_lock(&s->mu);
    size_t old = j->text.len;
    bool go = el_buf_append_str(&j->text, piece) == EDGELLM_STATUS_OK;
    if (go && j->n_stop) {
        size_t from = old >= j->max_stop_len ? old - j->max_stop_len + 1 : 0, cut = SIZE_MAX;
        for (int i = 0; i < j->n_stop; i++) {
            const char *m = memmem(j->text.data + from, j->text.len - from, j->stop[i], strlen(j->stop[i]));
            if (m && (size_t)(m - j->text.data) < cut) cut = (size_t)(m - j->text.data);
        }
        if (cut != SIZE_MAX) {
            j->text.len = cut;
            j->text.data[cut] = 0;
            j->stop_hit = true;
            go = false;
        }
    }
    if (j->stream) {
        size_t safe = j->stop_hit ? j->text.len : j->text.len - stop_holdback(j);
        if (safe > j->emitted) {
            sse_chunk(j, j->text.data + j->emitted, safe - j->emitted, NULL, false);
            j->emitted = safe;
            pthread_cond_broadcast(&s->cv);
        }
    }
    go = go && !j->cancelled && !s->stopping;
    pthread_mutex_unlock(&s->mu);
    return go;
}

/* Tokenizes j's prompt and checks its length; false (and j failed) when it is refused. */
static bool job_prepare(job *j, int32_t **ids, size_t *n_ids) {
    server *s = j->srv;
    edgellm_status st = j->kind == JOB_CHAT ? cli_chat_ids(s->rt, j->input, j->extra, ids, n_ids)
                                            : cli_prompt_ids(s->rt, j->input, true, ids, n_ids);
    char msg[256];
    int status = 0;
    if (st != EDGELLM_STATUS_OK) {
        snprintf(msg, sizeof msg, "%s", edgellm_last_error());
        status = st == EDGELLM_STATUS_NO_MEMORY ? 500 : 400;
    } else if (*n_ids > (size_t)s->max_input_len) {
        snprintf(msg, sizeof msg,
                 "the prompt has %zu tokens; this engine's maximum input length is %d tokens", *n_ids,
                 s->max_input_len);
        status = 400;
    } else if (*n_ids >= (size_t)s->kv_capacity) {
        snprintf(msg, sizeof msg, "the prompt has %zu tokens and leaves no room in the %d-token context",
                 *n_ids, s->kv_capacity);
        status = 400;
    }
    pthread_mutex_lock(&s->mu);
    if (status) job_fail_locked(j, status, msg);
    j->prompt_tokens = (int64_t)*n_ids;
    j->ready = true;
    if (!status && j->stream && j->kind == JOB_CHAT) sse_chunk(j, NULL, 0, NULL, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return status == 0;
}

static void job_run(job *j) {
    server *s = j->srv;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!job_prepare(j, &ids, &n_ids)) {
        edgellm_free(ids);
        return;
    }
    int32_t room =
        s->kv_capacity - (int32_t)n_ids; /* no clamping warning from the runtime: finish "length" */
    cli_gen_req gr = {.ids = ids,
                      .n_ids = n_ids,
                      .max_new_tokens = j->max_tokens < room ? j->max_tokens : room,
                      .ignore_eos = j->ignore_eos,
                      .prime = j->kind == JOB_COMPLETION};
    edgellm_result res;
    edgellm_status st = cli_generate_text(s->rt, &gr, &j->sp, on_piece, j, &res);
    pthread_mutex_lock(&s->mu);
    j->completion_tokens = res.n_ids;
    j->finish = j->stop_hit || res.finish == EDGELLM_FINISH_STOP ? "stop" : "length";
    if (st != EDGELLM_STATUS_OK) {
        job_fail_locked(j, 500, edgellm_last_error());
    } else if (res.finish == EDGELLM_FINISH_ABORTED && !j->stop_hit) {
        job_fail_locked(j, 503, j->cancelled ? "the client went away" : "the server is shutting down");
    }
    if (j->stream) {
        if (j->err_status) {
            cJSON *e = cJSON_CreateObject(), *eo = cJSON_AddObjectToObject(e, "error");
            cJSON_AddStringToObject(eo, "message", j->err_msg ? j->err_msg : "internal error");
            cJSON_AddStringToObject(eo, "type", "server_error");
            sse_append_obj(j, e);
        } else {
            if (j->text.len > j->emitted)
                sse_chunk(j, j->text.data + j->emitted, j->text.len - j->emitted, NULL, false);
            j->emitted = j->text.len;
            sse_chunk(j, NULL, 0, j->finish, false);
            if (j->include_usage) {
                cJSON *choice,
                    *o = response_base(j, j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion",
                                       &choice);
                cJSON_DeleteItemFromObject(o, "choices");
                cJSON_AddArrayToObject(o, "choices");
                add_usage(o, j);
                sse_append_obj(j, o);
            }
        }
        el_buf_append_str(&j->sse, "data: [DONE]\n\n");
    }
    pthread_mutex_unlock(&s->mu);
    edgellm_result_clear(&res);
    edgellm_free(ids);
}

static void *worker_main(void *arg) {
    server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) break;
        job *j = s->head;
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&s->mu);
        job_run(j);
        pthread_mutex_lock(&s->mu);
        j->state = JOB_DONE;
        pthread_cond_broadcast(&s->cv);
        job_unref_locked(j);
    }
    /* refuse what is still queued */
    while (s->head) {
        job *j = s->head;
        s->head = j->next;
        job_fail_locked(j, 503, "the server is shutting down");
        j->ready = true;
        j->state = JOB_DONE;
        job_unref_locked(j);
    }
    s->tail = NULL;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- HTTP ----------------------------------------------------------------------------------------- */

typedef struct req_ctx {
    double t0;
    char method[16], path[128];
    el_buf body;
    bool too_large;
    int status;        /* of the answer, for the log line */
    const char *allow; /* the method the path takes, for a 405 */
    job *job;
} req_ctx;

static mhd_ret send_body(struct MHD_Connection *c, req_ctx *r, int status, const char *body) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (status == 405 && r->allow) MHD_add_response_header(resp, "Allow", r->allow);
    mhd_ret ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    return ret;
}

/* OpenAI's error shape: {"error": {"message", "type", "param", "code"}} */
static mhd_ret send_error(struct MHD_Connection *c, req_ctx *r, int status, const char *param,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static mhd_ret send_error(struct MHD_Connection *c, req_ctx *r, int status, const char *param,
                          const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status >= 500 ? "server_error" : "invalid_request_error";
    const char *code = status == 401 ? "invalid_api_key" : status == 404 ? "not_found" : NULL;
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    mhd_ret ret = send_body(c, r, status, s ? s : "{}");
    cJSON_free(s);
    return ret;
}

/* ---- request parameters --------------------------------------------------------------------------- */

typedef struct perr {
    const char *param;
    char msg[256];
} perr;

static bool bad(perr *e, const char *param, const char *msg) {
    e->param = param;
    snprintf(e->msg, sizeof e->msg, "'%s' %s", param, msg);
    return false;
}

/* A number member in [lo, hi] (integral if integer); absent or null keeps *out. */
static bool get_num(const cJSON *o, const char *key, double lo, double hi, bool integer, double *out,
                    perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v)) return bad(e, key, integer ? "must be an integer" : "must be a number");
    double d = v->valuedouble;
    if (integer && d != (double)(int64_t)d) return bad(e, key, "must be an integer");
    if (!(d >= lo && d <= hi)) {
        e->param = key;
        snprintf(e->msg, sizeof e->msg, integer ? "'%s' must be in [%.0f, %.0f]" : "'%s' must be in [%g, %g]",
                 key, lo, hi);
        return false;
    }
    *out = d;
    return true;
}

static bool get_bool(const cJSON *o, const char *key, bool *out, perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsBool(v)) return bad(e, key, "must be a boolean");
    *out = cJSON_IsTrue(v);
    return true;
}

/* Flattens OpenAI messages to [{role, content: string}] JSON for the chat template. */
static bool parse_messages(const cJSON *msgs, char **out, perr *e) {
    if (!cJSON_IsArray(msgs)) return bad(e, "messages", "must be an array of messages");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0 || n > MAX_MESSAGES) return bad(e, "messages", "must hold 1 to 1024 messages");
    cJSON *flat = cJSON_CreateArray();
    const cJSON *m;
    bool ok = true;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        static const char *const k_roles[] = {"system", "developer", "user", "assistant", "tool"};
        int ri = -1;
        for (int i = 0; cJSON_IsString(role) && i < 5; i++)
            if (!strcmp(role->valuestring, k_roles[i])) ri = i;
        if (!cJSON_IsObject(m) || ri < 0) {
            ok = bad(e, "messages", "entries need a 'role' of system, developer, user, assistant or tool");
            break;
        }
        el_buf text = {0};
        if (cJSON_IsString(content)) {
            el_buf_append_str(&text, content->valuestring);
        } else if (cJSON_IsArray(content)) { /* content parts: only text */
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(t)) {
                    ok = bad(e, "messages", "content parts must be {\"type\": \"text\", \"text\": string}");
                    break;
                }
                el_buf_append_str(&text, t->valuestring);
            }
        } else if (!(cJSON_IsNull(content) && ri == 3)) {
            ok = bad(e, "messages", "entries need a 'content' string (or an array of text parts)");
        }
        if (ok) {
            cJSON *fm = cJSON_CreateObject();
            cJSON_AddStringToObject(fm, "role", ri == 1 ? "system" : k_roles[ri]);
            cJSON_AddStringToObject(fm, "content", text.data ? text.data : "");
            cJSON_AddItemToArray(flat, fm);
        }
        el_buf_free(&text);
        if (!ok) break;
    }
    char *s = ok ? cJSON_PrintUnformatted(flat) : NULL;
    cJSON_Delete(flat);
    *out = s ? el_strdup(s) : NULL;
    cJSON_free(s);
    return ok;
}

static bool parse_stop(const cJSON *v, job *j, perr *e) {
    if (!v || cJSON_IsNull(v)) return true;
    const cJSON *items[MAX_STOP];
    int n = 0;
    if (cJSON_IsString(v)) {
        items[n++] = v;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) <= MAX_STOP) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v) items[n++] = it;
    } else {
        return bad(e, "stop", "must be a string or an array of at most 4 strings");
    }
    for (int i = 0; i < n; i++) {
        if (!cJSON_IsString(items[i]) || !items[i]->valuestring[0])
            return bad(e, "stop", "entries must be non-empty strings");
        j->stop[j->n_stop++] = el_strdup(items[i]->valuestring);
        size_t l = strlen(items[i]->valuestring);
        if (l > j->max_stop_len) j->max_stop_len = l;
    }
    return true;
}

/* Fills a job from the request body object; false with e set for a 400. */
static bool parse_job(server *s, const cJSON *req, job *j, perr *e) {
    double temperature = 1.0, top_p = 1.0, top_k = 0, seed = -1, n = 1;
    double max_tokens = s->max_tokens_default;
    if (!get_num(req, "temperature", 0, 2, false, &temperature, e) ||
        !get_num(req, "top_p", 0, 1, false, &top_p, e) ||
        !get_num(req, "top_k", 0, 1 << 30, true, &top_k, e) ||
        !get_num(req, "seed", 0, 9007199254740991.0, true, &seed, e) ||
        !get_num(req, "n", 1, 1, true, &n, e) ||
        !get_num(req, "max_tokens", 1, 1 << 24, true, &max_tokens, e) ||
        (j->kind == JOB_CHAT && !get_num(req, "max_completion_tokens", 1, 1 << 24, true, &max_tokens, e)) ||
        !get_bool(req, "stream", &j->stream, e) || !get_bool(req, "ignore_eos", &j->ignore_eos, e) ||
        !parse_stop(cJSON_GetObjectItemCaseSensitive(req, "stop"), j, e))
        return false;
    if (top_p <= 0) return bad(e, "top_p", "must be in (0, 1]");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) return bad(e, "stream_options", "must be an object");
        if (!get_bool(so, "include_usage", &j->include_usage, e)) return false;
    }
    j->sp.temperature = (float)temperature;
    j->sp.top_p = (float)top_p;
    j->sp.top_k = (int32_t)top_k;
    j->max_tokens = (int32_t)max_tokens;
    pthread_mutex_lock(&s->mu);
    uint64_t k = ++s->n_jobs;
    pthread_mutex_unlock(&s->mu);
    /* no seed: a fresh one per request (splitmix64 of the clock, the pid and the request number) */
    uint64_t z = ((uint64_t)(el_time_ms() * 1e3) ^ (uint64_t)getpid() << 40) * 0x9e3779b97f4a7c15ull +
                 k * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
    z ^= z >> 29;
    j->sp.seed = seed >= 0 ? (uint64_t)seed : z;
    snprintf(j->id, sizeof j->id, "%s-%016llx", j->kind == JOB_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)z);
    j->created = (long long)time(NULL);
    if (j->kind == JOB_COMPLETION) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
        if (!cJSON_IsString(p)) return bad(e, "prompt", "is required and must be a string");
        j->input = el_strdup(p->valuestring);
        return true;
    }
    if (!parse_messages(cJSON_GetObjectItemCaseSensitive(req, "messages"), &j->input, e)) return false;
    /* template variables: chat_template_kwargs (as vLLM), enable_thinking false unless given (as `edgellm
     * chat`) */
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(req, "chat_template_kwargs");
    if (kw && !cJSON_IsNull(kw) && !cJSON_IsObject(kw))
        return bad(e, "chat_template_kwargs", "must be an object");
    cJSON *x = kw && cJSON_IsObject(kw) ? cJSON_Duplicate(kw, true) : cJSON_CreateObject();
    if (!cJSON_GetObjectItemCaseSensitive(x, "enable_thinking")) cJSON_AddFalseToObject(x, "enable_thinking");
    char *xs = cJSON_PrintUnformatted(x);
    cJSON_Delete(x);
    j->extra = xs ? el_strdup(xs) : NULL;
    cJSON_free(xs);
    return j->input && j->extra;
}

/* ---- streaming response --------------------------------------------------------------------------- */

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    server *s = j->srv;
    pthread_mutex_lock(&s->mu);
    while (j->sse_sent == j->sse.len && j->state != JOB_DONE)
        pthread_cond_wait(&s->cv, &s->mu);
    size_t n = j->sse.len - j->sse_sent;
    if (n > max) n = max;
    if (n) memcpy(buf, j->sse.data + j->sse_sent, n);
    j->sse_sent += n;
    pthread_mutex_unlock(&s->mu);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void sse_free(void *cls) {
    job *j = cls;
    server *s = j->srv;
    pthread_mutex_lock(&s->mu);
    if (j->state != JOB_DONE) j->cancelled = true;
    job_unref_locked(j);
    pthread_mutex_unlock(&s->mu);
}

/* ---- endpoints ------------------------------------------------------------------------------------ */

static mhd_ret handle_generate(server *s, struct MHD_Connection *c, req_ctx *r, job_kind kind) {
    cJSON *req = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!req || !cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return send_error(c, r, 400, NULL, "the request body must be a JSON object");
    }
    job *j = el_calloc(1, sizeof *j);
    if (!j) {
        cJSON_Delete(req);
        return send_error(c, r, 500, NULL, "out of memory");
    }
    j->srv = s;
    j->kind = kind;
    j->refs = 1;
    perr e = {0};
    bool ok = parse_job(s, req, j, &e);
    cJSON_Delete(req);
    if (!ok) {
        job_unref(j);
        return e.param ? send_error(c, r, 400, e.param, "%s", e.msg)
                       : send_error(c, r, 500, NULL, "out of memory");
    }
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        job_unref_locked(j);
        pthread_mutex_unlock(&s->mu);
        return send_error(c, r, 503, NULL, "the server is shutting down");
    }
    j->refs = 2; /* this request and the worker */
    r->job = j;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_broadcast(&s->cv);
    while (!j->ready || (!j->stream && j->state != JOB_DONE))
        pthread_cond_wait(&s->cv, &s->mu);
    if (j->err_status) {
        int st = j->err_status;
        char *msg = el_strdup(j->err_msg);
        pthread_mutex_unlock(&s->mu);
        mhd_ret ret = send_error(c, r, st, st == 400 ? (kind == JOB_CHAT ? "messages" : "prompt") : NULL,
                                 "%s", msg ? msg : "internal error");
        el_free(msg);
        return ret;
    }
    if (!j->stream) {
        char *body = job_response_json(j);
        pthread_mutex_unlock(&s->mu);
        mhd_ret ret = body ? send_body(c, r, 200, body) : send_error(c, r, 500, NULL, "out of memory");
        cJSON_free(body);
        return ret;
    }
    j->refs++; /* the stream reader */
    pthread_mutex_unlock(&s->mu);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, j, sse_free);
    if (!resp) {
        sse_free(j);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    mhd_ret ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->status = 200;
    return ret;
}

static mhd_ret handle_models(server *s, struct MHD_Connection *c, req_ctx *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->started);
    cJSON_AddStringToObject(m, "owned_by", "edgellm");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    mhd_ret ret = body ? send_body(c, r, 200, body) : MHD_NO;
    cJSON_free(body);
    return ret;
}

typedef enum route { R_NONE, R_HEALTH, R_MODELS, R_COMPLETIONS, R_CHAT } route;

static route find_route(const char *path, bool *post) {
    static const struct {
        const char *path;
        route r;
        bool post;
    } k_routes[] = {{"/health", R_HEALTH, false},
                    {"/v1/models", R_MODELS, false},
                    {"/v1/completions", R_COMPLETIONS, true},
                    {"/v1/chat/completions", R_CHAT, true}};
    for (size_t i = 0; i < sizeof k_routes / sizeof k_routes[0]; i++)
        if (!strcmp(path, k_routes[i].path)) {
            *post = k_routes[i].post;
            return k_routes[i].r;
        }
    return R_NONE;
}

static bool authorized(const server *s, struct MHD_Connection *c) {
    if (!s->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    h += 7;
    size_t n = strlen(h), k = strlen(s->api_key);
    unsigned diff = n != k; /* compare every byte: no early exit */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)h[i] ^ (unsigned char)s->api_key[i < k ? i : 0];
    return diff == 0 && k > 0;
}

static mhd_ret on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                          const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    req_ctx *r = *con_cls;
    bool post = false;
    route rt = find_route(url, &post);
    if (!r) { /* first call: the headers are in; answer at once what needs no body */
        r = el_calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->t0 = el_time_ms();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        *con_cls = r;
        if (rt == R_NONE) return send_error(c, r, 404, NULL, "unknown path %s", r->path);
        r->allow = post ? "POST" : "GET";
        if (strcmp(method, r->allow) && (post || strcmp(method, "HEAD"))) /* HEAD: GET without the body */
            return send_error(c, r, 405, NULL, "%s %s: use %s", method, r->path, r->allow);
        if (rt != R_HEALTH && !authorized(s, c))
            return send_error(c, r, 401, NULL, "missing or incorrect API key (Authorization: Bearer KEY)");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > MAX_BODY_BYTES)
            return send_error(c, r, 413, NULL, "the request body is larger than %u bytes", MAX_BODY_BYTES);
        if (rt == R_HEALTH) return send_body(c, r, 200, "{\"status\":\"ok\"}");
        if (rt == R_MODELS) return handle_models(s, c, r);
        return MHD_YES; /* read the body */
    }
    if (r->status) { /* answered on the first call: drop whatever body still comes */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->body.len + *upload_size > MAX_BODY_BYTES)
            r->too_large = true;
        else if (el_buf_append(&r->body, upload, *upload_size) != EDGELLM_STATUS_OK)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_large)
        return send_error(c, r, 413, NULL, "the request body is larger than %u bytes", MAX_BODY_BYTES);
    return handle_generate(s, c, r, rt == R_CHAT ? JOB_CHAT : JOB_COMPLETION);
}

/* One log line per request, when it is over. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    req_ctx *r = *con_cls;
    if (!r) return;
    char addr[INET6_ADDRSTRLEN] = "?";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr, sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr,
                      sizeof addr);
    }
    char tokens[96] = "";
    if (r->job) {
        pthread_mutex_lock(&s->mu);
        if (r->job->state == JOB_DONE && !r->job->err_status)
            snprintf(tokens, sizeof tokens, " prompt %lld + completion %lld tokens, %s",
                     (long long)r->job->prompt_tokens, (long long)r->job->completion_tokens, r->job->finish);
        job_unref_locked(r->job);
        pthread_mutex_unlock(&s->mu);
    }
    fprintf(stderr, "edgellm serve: %s \"%s %s\" %d %.1f ms%s%s\n", addr, r->method, r->path, r->status,
            el_time_ms() - r->t0, tokens,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed)");
    el_buf_free(&r->body);
    el_free(r);
    *con_cls = NULL;
}

/* ---- start and stop ------------------------------------------------------------------------------- */

/* A listening socket on host:port; -1 with one "error:" line printed. */
static int listen_on(const char *host, int port) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc) {
        fprintf(stderr, "error: cannot listen on %s:%d: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 64)) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) fprintf(stderr, "error: cannot listen on %s:%d: %s\n", host, port, strerror(err));
    return fd;
}

static int bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void engine_name(const char *dir, char *out, size_t cap) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    snprintf(out, cap, "%.*s", (int)(n - b), dir + b);
}

int cmd_serve(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(k_help, stdout);
        return 0;
    }
    const char *engine = NULL, *host = "127.0.0.1", *api_key = NULL, *model_id = NULL;
    int64_t port = 8080, threads = 0, max_default = 256;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int err = 0;
        if (cli_flag_val(argc, argv, &i, "--engine", &v, &err))
            engine = v;
        else if (cli_flag_val(argc, argv, &i, "--host", &v, &err))
            host = v;
        else if (cli_flag_val(argc, argv, &i, "--api-key", &v, &err))
            api_key = v;
        else if (cli_flag_val(argc, argv, &i, "--model-id", &v, &err))
            model_id = v;
        else if (cli_flag_val(argc, argv, &i, "--port", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 65535, &port))
                return cli_usage_error("--port needs an integer in 0..65535");
        } else if (cli_flag_val(argc, argv, &i, "--threads", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 1024, &threads))
                return cli_usage_error("--threads needs an integer >= 0");
        } else if (cli_flag_val(argc, argv, &i, "--max-tokens-default", &v, &err)) {
            if (!err && !cli_parse_i64(v, 1, 1 << 24, &max_default))
                return cli_usage_error("--max-tokens-default needs an integer >= 1");
        } else
            return cli_usage_error("unknown option %s (see edgellm serve --help)", argv[i]);
        if (err) return 2;
    }
    if (!engine) return cli_usage_error("serve needs --engine DIR");
    if (api_key && !api_key[0]) return cli_usage_error("--api-key must not be empty");

    /* signals go to the main thread's sigwait only: block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    server s = {
        .api_key = api_key, .max_tokens_default = (int32_t)max_default, .started = (long long)time(NULL)};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    int rc = cli_open_runtime(engine, threads, &s.rt);
    if (rc) return rc;
    edgellm_engine_info info;
    edgellm_runtime_get_info(s.rt, &info);
    s.max_input_len = info.max_input_len;
    s.kv_capacity = info.max_kv_cache_capacity;
    if (model_id)
        snprintf(s.model_id, sizeof s.model_id, "%s", model_id);
    else
        engine_name(engine, s.model_id, sizeof s.model_id);

    int fd = listen_on(host, (int)port);
    pthread_t worker;
    struct MHD_Daemon *d = NULL;
    if (fd < 0) {
        rc = 1;
        goto done;
    }
    if (pthread_create(&worker, NULL, worker_main, &s)) {
        fprintf(stderr, "error: cannot start the worker thread\n");
        close(fd);
        rc = 1;
        goto done;
    }
    d = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, &s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "error: cannot start the HTTP server on %s:%d\n", host, bound_port(fd));
        rc = 1;
    } else {
        fprintf(stderr, "edgellm serve: listening on http://%s:%d (model %s; requests run one at a time)\n",
                host, bound_port(fd), s.model_id);
        int sig = 0;
        sigwait(&sigs, &sig);
        fprintf(stderr, "edgellm serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    /* stop: abort the running job, refuse the queued ones, close the connections, join the worker */
    pthread_mutex_lock(&s.mu);
    s.stopping = true;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    if (d) MHD_stop_daemon(d); /* closes the listening socket too */
    pthread_join(worker, NULL);
done:
    edgellm_runtime_free(s.rt);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return rc;
}
