/*
 * test_serve.c - `edgellm serve` end to end: the CLI runs as a child process on an ephemeral port and the
 * test talks raw HTTP/1.1 over sockets. Checks health, models, greedy completions against the runtime's own
 * greedy ids and `edgellm generate`, chat against `edgellm chat`, streaming, stop strings, max_tokens, every
 * error status, API keys, two concurrent clients, start errors and a clean SIGTERM shutdown. Skipped (exit
 * 77) when the build has no `serve` (no libmicrohttpd).
 */
#include "edgellm/edgellm.h"
#include "core/core.h"
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char g_tmp[512], g_cli[512];

/* ---- processes ------------------------------------------------------------------------------------ */

/* Starts `edgellm serve ARGS...` with stderr in log; NULL-terminated args after the subcommand. */
static pid_t spawn_cli(const char *const *args, const char *log) {
    const char *argv[32];
    int n = 0;
    argv[n++] = g_cli;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    if (posix_spawn(&pid, g_cli, &fa, NULL, (char *const *)argv, environ)) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static char *slurp(const char *path) {
    char *s = NULL;
    size_t n;
    if (el_read_file(path, 0, &s, &n) != EDGELLM_STATUS_OK) return NULL;
    return s;
}

/* Waits up to timeout_s for pid; its exit code, 128 + signal, or -1 (killed after the timeout). */
static int wait_exit(pid_t pid, double timeout_s) {
    int st;
    for (double t = 0; t < timeout_s; t += 0.02) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Starts a server; returns its port (0 on failure) and pid. */
static int start_server(const char *const *args, const char *log, pid_t *pid) {
    *pid = spawn_cli(args, log);
    if (*pid < 0) return 0;
    for (int i = 0; i < 1500; i++) { /* 30 s: sanitizer builds load slowly */
        char *s = slurp(log);
        const char *p = s ? strstr(s, "listening on http://127.0.0.1:") : NULL;
        int port = p ? atoi(p + strlen("listening on http://127.0.0.1:")) : 0;
        free(s);
        if (port > 0) return port;
        int st;
        if (waitpid(*pid, &st, WNOHANG) == *pid) break;
        usleep(20000);
    }
    return 0;
}

/* Runs a command line with stdin from in_text (may be NULL); stdout into out, exit code returned. */
static int run_capture(const char *cmd, const char *in_text, char *out, size_t cap) {
    char full[4096], inf[600], of[600];
    snprintf(inf, sizeof inf, "%s/cmd.in", g_tmp);
    snprintf(of, sizeof of, "%s/cmd.out", g_tmp);
    el_write_file(inf, in_text ? in_text : "", in_text ? strlen(in_text) : 0);
    snprintf(full, sizeof full, "%s < '%s' > '%s'", cmd, inf, of);
    int st = system(full);
    char *s = slurp(of);
    snprintf(out, cap, "%s", s ? s : "");
    free(s);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* fixtures/models/<model> exported as fp32 and built into engine; true on success. */
static bool make_engine(const char *model, const char *engine, int max_input, int kv) {
    char cmd[4096];
    snprintf(
        cmd, sizeof cmd,
        "'%s' export --model 'fixtures/models/%s' --output '%s.export' --dtype fp32 >/dev/null && '%s' build "
        "--input '%s.export' --engine '%s' --max-input-len %d --max-kv-cache-capacity %d >/dev/null",
        g_cli, model, engine, g_cli, engine, engine, max_input, kv);
    return system(cmd) == 0;
}

/* ---- HTTP ----------------------------------------------------------------------------------------- */

typedef struct resp {
    int status;
    char head[4096];
    char *body; /* de-chunked, NUL-terminated (free) */
} resp;

/* A connected socket to 127.0.0.1:port (60 s receive timeout), or -1. */
static int connect_local(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 60};
    if (fd >= 0 && !setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) &&
        !connect(fd, (struct sockaddr *)&a, sizeof a))
        return fd;
    if (fd >= 0) close(fd);
    return -1;
}

/* One request on a fresh connection (Connection: close). body NULL: no body and no Content-Length. */
static bool http(int port, const char *method, const char *path, const char *headers, const char *body,
                 resp *r) {
    memset(r, 0, sizeof *r);
    int fd = connect_local(port);
    if (fd < 0) return false;
    el_buf req = {0};
    el_buf_appendf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                   headers ? headers : "");
    if (body) el_buf_appendf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    el_buf_append_str(&req, "\r\n");
    if (body) el_buf_append_str(&req, body);
    for (size_t off = 0; off < req.len;) {
        ssize_t k = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
        if (k <= 0) break; /* the server may answer (413) and close before reading everything */
        off += (size_t)k;
    }
    el_buf_free(&req);
    el_buf in = {0};
    char buf[8192];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0)
        el_buf_append(&in, buf, (size_t)k);
    close(fd);
    const char *sep = in.data ? strstr(in.data, "\r\n\r\n") : NULL;
    if (!sep || sscanf(in.data, "HTTP/1.%*d %d", &r->status) != 1) {
        el_buf_free(&in);
        return false;
    }
    snprintf(r->head, sizeof r->head, "%.*s", (int)(sep - in.data), in.data);
    const char *p = sep + 4;
    el_buf b = {0};
    el_buf_append(&b, "", 0);
    if (strcasestr(r->head, "transfer-encoding: chunked")) {
        for (;;) {
            char *end;
            unsigned long n = strtoul(p, &end, 16);
            const char *data = strstr(end, "\r\n");
            if (!n || !data) break;
            el_buf_append(&b, data + 2, n);
            p = data + 2 + n + 2;
        }
    } else {
        el_buf_append_str(&b, p);
    }
    r->body = b.data;
    el_buf_free(&in);
    return true;
}

static cJSON *post_json(int port, const char *path, const char *headers, const char *body, int *status) {
    resp r;
    *status = 0;
    if (!http(port, "POST", path, headers, body, &r)) return NULL;
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    el_free(r.body);
    return j;
}

static const char *jstr(const cJSON *o, const char *path) { /* "a.b.0.c" */
    char key[64];
    const cJSON *cur = o;
    for (const char *p = path; cur && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(key))
                                 : cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n + (p[n] == '.');
    }
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, obj), key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A request that must fail with status and an OpenAI error body (type invalid_request_error unless 5xx). */
static void expect_status(int port, const char *method, const char *path, const char *headers,
                          const char *body, int status, const char *needle) {
    resp r;
    bool ok = http(port, method, path, headers, body, &r);
    CHECKF(ok && r.status == status, "%s %s %.60s: status %d, want %d", method, path, body ? body : "",
           r.status, status);
    cJSON *j = ok ? cJSON_Parse(r.body) : NULL;
    const char *msg = jstr(j, "error.message"), *type = jstr(j, "error.type");
    CHECKF(msg && type && !strcmp(type, "invalid_request_error"), "%s %s: not an OpenAI error body: %s",
           method, path, r.body ? r.body : "");
    if (needle)
        CHECKF(msg && strstr(msg, needle), "%s %s: error '%s' lacks '%s'", method, path, msg ? msg : "",
               needle);
    cJSON_Delete(j);
    el_free(r.body);
}

/* Concatenated text of an SSE body (completion text or chat delta content); false if malformed. */
static bool sse_text(const char *body, bool chat, el_buf *text, char *finish, size_t fcap, bool *done,
                     bool *role) {
    *done = false;
    *role = false;
    finish[0] = 0;
    el_buf_append(text, "", 0);
    int n = 0;
    for (const char *p = body; *p;) {
        const char *e = strstr(p, "\n\n");
        if (!e || strncmp(p, "data: ", 6)) return false;
        if (*done) return false; /* nothing after [DONE] */
        if (!strncmp(p + 6, "[DONE]", 6)) {
            *done = true;
        } else {
            char *ev = el_strndup(p + 6, (size_t)(e - p - 6));
            cJSON *j = cJSON_Parse(ev);
            el_free(ev);
            const char *obj = jstr(j, "object");
            if (!obj || strcmp(obj, chat ? "chat.completion.chunk" : "text_completion")) {
                cJSON_Delete(j);
                return false;
            }
            const char *t = jstr(j, chat ? "choices.0.delta.content" : "choices.0.text");
            if (t) el_buf_append_str(text, t);
            if (chat && n == 0)
                *role =
                    jstr(j, "choices.0.delta.role") && !strcmp(jstr(j, "choices.0.delta.role"), "assistant");
            const char *f = jstr(j, "choices.0.finish_reason");
            if (f) snprintf(finish, fcap, "%s", f);
            cJSON_Delete(j);
            n++;
        }
        p = e + 2;
    }
    return true;
}

/* Sends a request, reads the first bytes of the answer and hangs up; true if something came back. */
static bool abandon(int port, const char *headers, const char *body) {
    int fd = connect_local(port);
    if (fd < 0) return false;
    char req[2048], buf[256];
    int n = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n%s",
                     headers, strlen(body), body);
    bool ok = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n && recv(fd, buf, sizeof buf, 0) > 0;
    close(fd);
    return ok;
}

/* ---- concurrent clients --------------------------------------------------------------------------- */

typedef struct client {
    int port;
    const char *body;
    const char *path, *headers; /* NULL: /v1/completions, none */
    int status;
    char text[8192];
} client;

static void *client_main(void *arg) {
    client *c = arg;
    bool chat = c->path && strstr(c->path, "chat");
    cJSON *j = post_json(c->port, c->path ? c->path : "/v1/completions", c->headers, c->body, &c->status);
    const char *t = jstr(j, chat ? "choices.0.message.content" : "choices.0.text");
    snprintf(c->text, sizeof c->text, "%s", t ? t : "(none)");
    cJSON_Delete(j);
    return NULL;
}

/* ---- the runtime's own answer --------------------------------------------------------------------- */

/* Greedy generation in-process; returns the number of ids, appends the decoded text of the generated ids
 * (with_prompt: of prompt + generated ids, which is what `edgellm generate` prints) to text. */
static int32_t greedy_ref(edgellm_runtime *rt, const int32_t *ids, size_t n, int32_t max_new,
                          bool with_prompt, el_buf *text) {
    edgellm_request rq = {.prompt = ids, .n_prompt = (int32_t)n, .max_new_tokens = max_new};
    edgellm_sampling_params sp = edgellm_sampling_params_default();
    sp.temperature = 0;
    edgellm_result res = {0};
    CHECK_OK(edgellm_runtime_generate(rt, &rq, 1, &sp, NULL, NULL, &res));
    size_t np = with_prompt ? n : 0, nall = np + (size_t)res.n_ids;
    int32_t *all = el_malloc((nall + 1) * sizeof(int32_t));
    if (np) memcpy(all, ids, np * sizeof(int32_t));
    if (res.n_ids) memcpy(all + np, res.ids, (size_t)res.n_ids * sizeof(int32_t));
    char *t = NULL;
    size_t tl = 0;
    CHECK_OK(edgellm_tokenizer_decode(edgellm_runtime_tokenizer(rt), all, nall, true, &t, &tl));
    el_buf_append(text, t ? t : "", t ? tl : 0);
    edgellm_free(t);
    el_free(all);
    int32_t k = res.n_ids;
    edgellm_result_clear(&res);
    return k;
}

static int count_str(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

int main(void) {
#ifndef EDGELLM_HAVE_SERVE
    printf("SKIP: this build has no `edgellm serve` (libmicrohttpd not found)\n");
    return 77;
#endif
    if (!t_cli_paths("serve", g_cli, sizeof g_cli, g_tmp, sizeof g_tmp)) return 1;
    el_rm_rf(g_tmp);
    el_mkdir_p(g_tmp);
    char cmd[8192], out[16384], st_eng[600], sq_eng[600], log_a[600], log_b[600], log_c[600];
    snprintf(st_eng, sizeof st_eng, "%s/st.engine", g_tmp);
    snprintf(sq_eng, sizeof sq_eng, "%s/sq.engine", g_tmp);
    snprintf(log_a, sizeof log_a, "%s/a.log", g_tmp);
    snprintf(log_b, sizeof log_b, "%s/b.log", g_tmp);
    snprintf(log_c, sizeof log_c, "%s/c.log", g_tmp);
    /* stories260K (no chat template; max input 64 tokens) and sotu-qwen3 (chat template) engines */
    CHECK(make_engine("stories260K-hf", st_eng, 64, 256));
    CHECK(make_engine("sotu-qwen3", sq_eng, 256, 512));

    /* ---- server A: completions on stories260K ---- */
    pid_t pa;
    const char *args_a[] = {
        "serve", "--engine", st_eng, "--port", "0", "--threads", "1", "--max-tokens-default", "16", NULL};
    int port = start_server(args_a, log_a, &pa);
    CHECKF(port > 0, "server A did not start");
    if (port <= 0) return t_finish("test_serve");

    resp r;
    CHECK(http(port, "GET", "/health", NULL, NULL, &r) && r.status == 200 &&
          !strcmp(r.body, "{\"status\":\"ok\"}"));
    el_free(r.body);
    CHECK(http(port, "HEAD", "/health", NULL, NULL, &r) && r.status == 200 && !r.body[0]);
    el_free(r.body);
    CHECK(http(port, "GET", "/v1/models", NULL, NULL, &r) && r.status == 200);
    cJSON *j = cJSON_Parse(r.body);
    CHECKF(jstr(j, "data.0.id") && !strcmp(jstr(j, "data.0.id"), "st.engine"), "models: %s", r.body);
    CHECK(jstr(j, "object") && !strcmp(jstr(j, "object"), "list"));
    cJSON_Delete(j);
    el_free(r.body);

    /* greedy completion == the runtime's greedy ids and text == `edgellm generate` */
    const char *prompt = "Once upon a time";
    int status;
    j = post_json(
        port, "/v1/completions", NULL,
        "{\"model\": \"x\", \"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0}",
        &status);
    CHECK(status == 200);
    char text[4096] = "";
    snprintf(text, sizeof text, "%s", jstr(j, "choices.0.text") ? jstr(j, "choices.0.text") : "");
    CHECK(jstr(j, "object") && !strcmp(jstr(j, "object"), "text_completion"));
    CHECK(jstr(j, "id") && !strncmp(jstr(j, "id"), "cmpl-", 5));
    CHECK(jstr(j, "model") && !strcmp(jstr(j, "model"), "st.engine"));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "created")));
    CHECK(jstr(j, "choices.0.finish_reason") && !strcmp(jstr(j, "choices.0.finish_reason"), "length"));
    double pt = jnum(j, "usage", "prompt_tokens"), ct = jnum(j, "usage", "completion_tokens");
    CHECK(jnum(j, "usage", "total_tokens") == pt + ct);
    cJSON_Delete(j);
    edgellm_runtime *rt = NULL;
    CHECK_OK(edgellm_runtime_create(st_eng, NULL, &rt));
    if (rt) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(
            edgellm_tokenizer_encode(edgellm_runtime_tokenizer(rt), prompt, strlen(prompt), true, &ids, &n));
        el_buf ref = {0};
        int32_t k = greedy_ref(rt, ids, n, 40, true, &ref);
        CHECKF(pt == (double)n && ct == k && k == 40, "usage %g + %g, runtime %zu + %d", pt, ct, n, k);
        char both[8192];
        snprintf(both, sizeof both, "%s%s", prompt, text);
        CHECKF(ref.data && !strcmp(ref.data, both), "prompt + server text '%s' != runtime greedy text '%s'",
               both, ref.data);
        el_buf_free(&ref);
        edgellm_free(ids);
        edgellm_runtime_free(rt);
    }
    snprintf(cmd, sizeof cmd, "'%s' generate --engine '%s' --temperature 0 -n 40 '%s' 2>/dev/null", g_cli,
             st_eng, prompt);
    CHECK(run_capture(cmd, NULL, out, sizeof out) == 0);
    char want[8192];
    snprintf(want, sizeof want, "%s%s\n", prompt, text);
    CHECKF(!strcmp(out, want), "generate printed '%s', server '%s'", out, want);
    printf("  greedy completion: '%s'\n", text);

    /* default max_tokens (16), ignore_eos extension; max_tokens 5 -> "length" */
    j = post_json(port, "/v1/completions", NULL,
                  "{\"prompt\": \"Once\", \"temperature\": 0, \"ignore_eos\": true}", &status);
    CHECK(status == 200 && jnum(j, "usage", "completion_tokens") == 16);
    cJSON_Delete(j);
    j = post_json(port, "/v1/completions", NULL,
                  "{\"prompt\": [\"Once upon a time\"], \"max_tokens\": 5, \"top_k\": 1}", &status);
    CHECK(status == 200 && jnum(j, "usage", "completion_tokens") == 5);
    CHECK(jstr(j, "choices.0.finish_reason") && !strcmp(jstr(j, "choices.0.finish_reason"), "length"));
    cJSON_Delete(j);
    /* sampling: the same seed gives the same text */
    char s1[4096] = "", s2[4096] = "";
    const char *seeded =
        "{\"prompt\": \"Once\", \"max_tokens\": 24, \"temperature\": 1, \"top_p\": 0.9, \"seed\": 7}";
    j = post_json(port, "/v1/completions", NULL, seeded, &status);
    snprintf(s1, sizeof s1, "%s", jstr(j, "choices.0.text") ? jstr(j, "choices.0.text") : "a");
    cJSON_Delete(j);
    j = post_json(port, "/v1/completions", NULL, seeded, &status);
    snprintf(s2, sizeof s2, "%s", jstr(j, "choices.0.text") ? jstr(j, "choices.0.text") : "b");
    cJSON_Delete(j);
    CHECKF(!strcmp(s1, s2), "seed 7 twice: '%s' vs '%s'", s1, s2);

    /* streaming: chunks concatenate to the same text, end with [DONE] */
    el_buf st = {0};
    char fin[32];
    bool done, role;
    CHECK(http(port, "POST", "/v1/completions", NULL,
               "{\"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0, \"stream\": true}",
               &r));
    CHECK(r.status == 200 && strcasestr(r.head, "content-type: text/event-stream"));
    CHECKF(sse_text(r.body, false, &st, fin, sizeof fin, &done, &role), "bad SSE body: %s", r.body);
    CHECKF(st.data && !strcmp(st.data, text), "stream '%s' != '%s'", st.data, text);
    CHECK(done && !strcmp(fin, "length"));
    CHECK(count_str(r.body, "data: ") > 3);
    el_free(r.body);
    el_buf_free(&st);

    /* stop strings: the text ends before the first occurrence, finish "stop", streamed or not */
    const char *word = strstr(text, " Lily") ? " Lily" : " girl";
    const char *hit = strstr(text, word);
    CHECKF(hit != NULL, "the greedy story lacks '%s': %s", word, text);
    char cut[4096];
    snprintf(cut, sizeof cut, "%.*s", hit ? (int)(hit - text) : 0, text);
    CHECK(cut[0] && strlen(cut) < strlen(text));
    char body[1024];
    snprintf(body, sizeof body,
             "{\"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0, \"stop\": [\"zzz\", "
             "\"%s\"]}",
             word);
    j = post_json(port, "/v1/completions", NULL, body, &status);
    CHECKF(jstr(j, "choices.0.text") && !strcmp(jstr(j, "choices.0.text"), cut), "stop: '%s', want '%s'",
           jstr(j, "choices.0.text"), cut);
    CHECK(jstr(j, "choices.0.finish_reason") && !strcmp(jstr(j, "choices.0.finish_reason"), "stop"));
    cJSON_Delete(j);
    snprintf(body, sizeof body,
             "{\"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0, \"stop\": \"%s\", "
             "\"stream\": true, \"stream_options\": {\"include_usage\": true}}",
             word);
    CHECK(http(port, "POST", "/v1/completions", NULL, body, &r) && r.status == 200);
    CHECKF(sse_text(r.body, false, &st, fin, sizeof fin, &done, &role), "bad SSE body: %s", r.body);
    CHECKF(st.data && !strcmp(st.data, cut), "streamed stop: '%s', want '%s'", st.data, cut);
    CHECK(done && !strcmp(fin, "stop") && strstr(r.body, "\"usage\":{\"prompt_tokens\":"));
    el_free(r.body);
    el_buf_free(&st);

    /* errors */
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\",", 400, "JSON");
    expect_status(port, "POST", "/v1/completions", NULL, "[1, 2]", 400, "JSON object");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"max_tokens\": 3}", 400, "prompt");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": 5}", 400, "prompt");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\", \"max_tokens\": \"x\"}", 400,
                  "max_tokens");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\", \"max_tokens\": 2.5}", 400,
                  "max_tokens");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\", \"temperature\": -1}", 400,
                  "temperature");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\", \"top_p\": 0}", 400, "top_p");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\", \"stream\": \"yes\"}", 400,
                  "stream");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\", \"stop\": 5}", 400, "stop");
    expect_status(port, "POST", "/v1/completions", NULL,
                  "{\"prompt\": \"a\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop");
    expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\", \"n\": 2}", 400, "'n'");
    el_buf big = {0};
    el_buf_append_str(&big, "{\"prompt\": \"");
    for (int i = 0; i < 60; i++)
        el_buf_append_str(&big, "Lily ran. ");
    el_buf_append_str(&big, "\"}");
    expect_status(port, "POST", "/v1/completions", NULL, big.data, 400, "maximum input length");
    el_buf_free(&big);
    expect_status(port, "POST", "/v1/chat/completions", NULL,
                  "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}", 400, "chat template");
    expect_status(port, "GET", "/v1/nothing", NULL, NULL, 404, "/v1/nothing");
    expect_status(port, "GET", "/v1/completions", NULL, NULL, 405, "POST");
    expect_status(port, "POST", "/health", NULL, "{}", 405, "GET");
    expect_status(port, "POST", "/v1/completions", "Content-Length: 2000000\r\n", NULL, 413, "larger");
    {
        /* a body over the limit that comes without Content-Length (chunked): read, dropped, 413 */
        el_buf b = {0};
        el_buf_append_str(&b, "Transfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 20; i++) {
            el_buf_appendf(&b, "10000\r\n");
            for (int k = 0; k < 0x10000; k++)
                el_buf_append(&b, " ", 1);
            el_buf_append_str(&b, "\r\n");
        }
        el_buf_append_str(&b, "0\r\n"); /* the final CRLF comes from http() */
        expect_status(port, "POST", "/v1/completions", b.data, NULL, 413, "larger");
        el_buf_free(&b);
    }
    /* the server survived all of that */
    CHECK(http(port, "GET", "/health", NULL, NULL, &r) && r.status == 200);
    el_free(r.body);

    /* two concurrent clients (one streaming) get the answers they get alone */
    client ca = {.port = port,
                 .body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0}"};
    client cb = {.port = port, .body = "{\"prompt\": \"Lily\", \"max_tokens\": 30, \"temperature\": 0}"};
    client_main(&cb);
    char alone_b[8192];
    snprintf(alone_b, sizeof alone_b, "%s", cb.text);
    for (int round = 0; round < 2; round++) {
        pthread_t ta, tb;
        pthread_create(&ta, NULL, client_main, &ca);
        pthread_create(&tb, NULL, client_main, &cb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        CHECKF(ca.status == 200 && !strcmp(ca.text, text), "concurrent A: %d '%s'", ca.status, ca.text);
        CHECKF(cb.status == 200 && !strcmp(cb.text, alone_b), "concurrent B: %d '%s' vs '%s'", cb.status,
               cb.text, alone_b);
    }

    /* start errors: the port in use, a missing engine */
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *args_busy[] = {"serve", "--engine", st_eng, "--port", port_s, NULL};
    pid_t pb = spawn_cli(args_busy, log_c);
    CHECK(wait_exit(pb, 30) == 1);
    char *le = slurp(log_c);
    CHECKF(le && count_str(le, "error:") == 1 && strstr(le, "in use"), "port in use: %s", le ? le : "");
    free(le);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/none.engine", g_tmp);
    const char *args_missing[] = {"serve", "--engine", missing, "--port", "0", NULL};
    pb = spawn_cli(args_missing, log_c);
    CHECK(wait_exit(pb, 30) == 1);
    le = slurp(log_c);
    CHECKF(le && count_str(le, "error:") == 1 && strstr(le, "none.engine"), "missing engine: %s",
           le ? le : "");
    free(le);

    /* clean shutdown, one log line per request */
    kill(pa, SIGTERM);
    CHECK(wait_exit(pa, 30) == 0);
    char *log = slurp(log_a);
    CHECKF(log && count_str(log, "\"GET /health\" 200") == 2, "log: %s", log ? log : "");
    CHECK(log && count_str(log, "\"GET /v1/nothing\" 404") == 1 &&
          count_str(log, "\"POST /v1/completions\" 413") == 2);
    CHECK(log && strstr(log, "shutting down"));
    free(log);

    /* ---- server B: chat on sotu-qwen3 with an API key ---- */
    const char *args_b[] = {"serve", "--engine",  sq_eng,   "--port",     "0",    "--threads",
                            "1",     "--api-key", "sekrit", "--model-id", "sotu", NULL};
    port = start_server(args_b, log_b, &pa);
    CHECKF(port > 0, "server B did not start");
    if (port <= 0) return t_finish("test_serve");
    const char *auth = "Authorization: Bearer sekrit\r\n";
    const char *chat = "{\"messages\": [{\"role\": \"system\", \"content\": \"You are brief.\"}, "
                       "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hello\"}]}], "
                       "\"max_tokens\": 12, \"temperature\": 0}";
    expect_status(port, "POST", "/v1/chat/completions", NULL, chat, 401, "API key");
    expect_status(port, "POST", "/v1/chat/completions", "Authorization: Bearer sekriT\r\n", chat, 401,
                  "API key");
    expect_status(port, "GET", "/v1/models", "Authorization: Bearer\r\n", NULL, 401, "API key");
    CHECK(http(port, "GET", "/health", NULL, NULL, &r) && r.status == 200);
    el_free(r.body);
    CHECK(http(port, "GET", "/v1/models", auth, NULL, &r) && r.status == 200 &&
          strstr(r.body, "\"id\":\"sotu\""));
    el_free(r.body);
    j = post_json(port, "/v1/chat/completions", auth, chat, &status);
    CHECK(status == 200);
    char reply[4096];
    snprintf(reply, sizeof reply, "%s",
             jstr(j, "choices.0.message.content") ? jstr(j, "choices.0.message.content") : "(none)");
    CHECK(jstr(j, "object") && !strcmp(jstr(j, "object"), "chat.completion"));
    CHECK(jstr(j, "id") && !strncmp(jstr(j, "id"), "chatcmpl-", 9));
    CHECK(jstr(j, "choices.0.message.role") && !strcmp(jstr(j, "choices.0.message.role"), "assistant"));
    pt = jnum(j, "usage", "prompt_tokens");
    ct = jnum(j, "usage", "completion_tokens");
    cJSON_Delete(j);
    CHECK(reply[0] && ct > 0);
    printf("  greedy chat reply: '%s'\n", reply);
    /* the same chat through `edgellm chat` and through the runtime with the template rendered here */
    snprintf(cmd, sizeof cmd,
             "'%s' chat --engine '%s' --system 'You are brief.' --temperature 0 -n 12 2>/dev/null", g_cli,
             sq_eng);
    CHECK(run_capture(cmd, "Hello\n", out, sizeof out) == 0);
    snprintf(want, sizeof want, "%s\n", reply);
    CHECKF(!strcmp(out, want), "edgellm chat replied '%s', server '%s'", out, want);
    rt = NULL;
    CHECK_OK(edgellm_runtime_create(sq_eng, NULL, &rt));
    if (rt) {
        char *rendered = NULL;
        CHECK_OK(edgellm_chat_template_render(edgellm_runtime_chat_template(rt),
                                              "[{\"role\":\"system\",\"content\":\"You are brief.\"},"
                                              "{\"role\":\"user\",\"content\":\"Hello\"}]",
                                              true, "{\"enable_thinking\":false}", &rendered));
        int32_t *ids = NULL;
        size_t n = 0;
        if (rendered)
            CHECK_OK(edgellm_tokenizer_encode(edgellm_runtime_tokenizer(rt), rendered, strlen(rendered),
                                              false, &ids, &n));
        el_buf ref = {0};
        int32_t k = greedy_ref(rt, ids, n, 12, false, &ref);
        CHECKF(pt == (double)n && ct == k, "chat usage %g + %g, runtime %zu + %d", pt, ct, n, k);
        CHECKF(ref.data && !strcmp(ref.data, reply), "chat '%s' != runtime '%s'", reply, ref.data);
        el_buf_free(&ref);
        edgellm_free(ids);
        edgellm_free(rendered);
        edgellm_runtime_free(rt);
    }
    /* streamed chat: a role chunk first, the same content, [DONE] */
    char chat_stream[1024];
    snprintf(chat_stream, sizeof chat_stream, "%.*s, \"stream\": true}", (int)strlen(chat) - 1, chat);
    CHECK(http(port, "POST", "/v1/chat/completions", auth, chat_stream, &r) && r.status == 200);
    CHECKF(sse_text(r.body, true, &st, fin, sizeof fin, &done, &role), "bad SSE body: %s", r.body);
    CHECKF(st.data && !strcmp(st.data, reply), "streamed chat '%s' != '%s'", st.data, reply);
    CHECK(done && role && fin[0]);
    el_free(r.body);
    el_buf_free(&st);
    /* three clients at once, one of them long: each gets what it gets alone */
    {
        const char *long_chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me everything\"}], "
                                "\"max_tokens\": 150, \"temperature\": 0, \"ignore_eos\": true}";
        client cl = {.port = port, .body = long_chat, .path = "/v1/chat/completions", .headers = auth};
        client_main(&cl);
        char alone[8192];
        snprintf(alone, sizeof alone, "%s", cl.text);
        CHECK(cl.status == 200 && alone[0]);
        client cs[3] = {
            cl, {.port = port, .body = chat, .path = "/v1/chat/completions", .headers = auth}, cl};
        cs[2].body = chat;
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            pthread_create(&th[i], NULL, client_main, &cs[i]);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        CHECKF(cs[0].status == 200 && !strcmp(cs[0].text, alone), "concurrent long chat: %d '%s'",
               cs[0].status, cs[0].text);
        for (int i = 1; i < 3; i++)
            CHECKF(cs[i].status == 200 && !strcmp(cs[i].text, reply), "concurrent chat %d: %d '%s'", i,
                   cs[i].status, cs[i].text);
    }
    /* a streaming client that hangs up early: the server goes on serving */
    CHECK(abandon(port, auth,
                  "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 400, "
                  "\"ignore_eos\": true, \"stream\": true}"));
    j = post_json(port, "/v1/chat/completions", auth, chat, &status);
    CHECKF(status == 200 && jstr(j, "choices.0.message.content") &&
               !strcmp(jstr(j, "choices.0.message.content"), reply),
           "after an abandoned stream: %d", status);
    cJSON_Delete(j);
    expect_status(port, "POST", "/v1/chat/completions", auth, "{\"messages\": []}", 400, "messages");
    expect_status(port, "POST", "/v1/chat/completions", auth, "{\"messages\": \"hi\"}", 400, "messages");
    expect_status(port, "POST", "/v1/chat/completions", auth,
                  "{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", 400, "role");
    expect_status(port, "POST", "/v1/chat/completions", auth,
                  "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}", 400, "content");
    kill(pa, SIGINT);
    CHECK(wait_exit(pa, 30) == 0);
    log = slurp(log_b);
    CHECKF(log && count_str(log, "\"POST /v1/chat/completions\" 200") == 8, "log: %s", log ? log : "");
    free(log);
    return t_finish("test_serve");
}
