/* cmd_chat_template.c - `edgellm chat-template`: renders a model's chat template for JSON requests on stdin. */
#include "cli.h"
#include "edgellm/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: edgellm chat-template --tokenizer PATH\n"
               "  reads one JSON object {\"messages\": [...], \"add_generation_prompt\": bool, \"extra\": {...}}\n"
               "  on stdin (or JSON lines, one object per line) and writes {\"rendered\": \"...\"} per object.\n"
               "  PATH: a model directory (processed_chat_template.json, chat_template.jinja, chat_template.json\n"
               "  or tokenizer_config.json), or a .jinja file.\n"
               "  A request that fails to render prints {\"error\": \"...\"} and the exit status is 1.\n");
    return rc;
}

static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                return NULL;
            }
            b = nb;
        }
        size_t k = fread(b + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    b[n] = 0;
    *len = n;
    return b;
}

static void print_obj(const char *key, const char *val) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, key, cJSON_CreateString(val ? val : ""));
    char *s = cJSON_PrintUnformatted(o);
    if (s) puts(s);
    cJSON_free(s);
    cJSON_Delete(o);
}

/* Skips one JSON value starting at p (already validated by cJSON); returns the end. */
static const char *skip_value(const char *p) {
    int depth = 0;
    do {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
        } else if (*p == '[' || *p == '{') {
            depth++;
            p++;
        } else if (*p == ']' || *p == '}') {
            depth--;
            p++;
        } else if (*p == ',' || *p == ':') {
            p++;
        } else if (*p) {
            while (*p && !strchr(" \t\r\n,:]}", *p)) p++;
        }
    } while (depth > 0 && *p);
    return p;
}

/* Copies the exact text of the top-level member `key` of the object text obj (NULL if absent), so that
 * number literals keep their form (1.0 stays a float, as Python's json reads it). */
static char *member_text(const char *obj, const char *key) {
    const char *p = obj;
    while (*p && *p != '{') p++;
    if (!*p) return NULL;
    p++;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (*p != '"') return NULL;
        const char *ks = p;
        p = skip_value(p);
        const char *ke = p;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (*p != ':') return NULL;
        p++;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        const char *vs = p;
        p = skip_value(p);
        /* compare the decoded key through cJSON (keys may hold escapes) */
        char *kjson = strndup(ks, (size_t)(ke - ks));
        cJSON *k = kjson ? cJSON_Parse(kjson) : NULL;
        bool match = cJSON_IsString(k) && !strcmp(k->valuestring, key);
        cJSON_Delete(k);
        free(kjson);
        if (match) return strndup(vs, (size_t)(p - vs));
        if (!*p) return NULL;
    }
}

/* Renders one request object (text: its JSON source); returns 0 on success. */
static int render_one(const edgellm_chat_template *t, const cJSON *req, const char *text) {
    if (!cJSON_IsObject(req)) {
        print_obj("error", "request must be a JSON object");
        return 1;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const cJSON *agp = cJSON_GetObjectItemCaseSensitive(req, "add_generation_prompt");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(req, "extra");
    if (!cJSON_IsArray(m)) {
        print_obj("error", "\"messages\" must be a JSON array");
        return 1;
    }
    if (agp && !cJSON_IsBool(agp)) {
        print_obj("error", "\"add_generation_prompt\" must be a boolean");
        return 1;
    }
    char *ms = member_text(text, "messages");
    char *es = (ex && !cJSON_IsNull(ex)) ? member_text(text, "extra") : NULL;
    if (!ms || (ex && !cJSON_IsNull(ex) && !es)) { /* duplicate keys or the like: re-print */
        free(ms);
        free(es);
        ms = cJSON_PrintUnformatted(m);
        es = (ex && !cJSON_IsNull(ex)) ? cJSON_PrintUnformatted(ex) : NULL;
    }
    char *out = NULL;
    edgellm_status st = edgellm_chat_template_render(t, ms, cJSON_IsTrue(agp), es, &out);
    free(ms);
    free(es);
    if (st != EDGELLM_STATUS_OK) {
        print_obj("error", edgellm_last_error());
        fprintf(stderr, "error: render: %s\n", edgellm_last_error());
        return 1;
    }
    print_obj("rendered", out);
    edgellm_free(out);
    return 0;
}

int cmd_chat_template(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return usage(stdout, 0);
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        int err = 0;
        if (cli_flag_val(argc, argv, &i, "--tokenizer", &path, &err)) {
            if (err) return 2;
        } else {
            fprintf(stderr, "error: unknown option '%s'\n", argv[i]);
            return usage(stderr, 2);
        }
    }
    if (!path) return cli_usage_error("--tokenizer PATH is required");
    edgellm_chat_template *t = NULL;
    struct stat sb;
    size_t pl = strlen(path);
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && pl > 6 && !strcmp(path + pl - 6, ".jinja")) {
        FILE *f = fopen(path, "rb");
        if (!f) return cli_usage_error("cannot open %s", path);
        size_t n;
        char *src = read_all(f, &n);
        fclose(f);
        if (!src) return cli_usage_error("cannot read %s", path);
        edgellm_status st = edgellm_chat_template_from_string(src, NULL, NULL, &t);
        free(src);
        if (st != EDGELLM_STATUS_OK) return cli_fail("load");
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) { /* a file inside the model dir */
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            else snprintf(dir, sizeof dir, ".");
        }
        if (edgellm_chat_template_load(dir, &t) != EDGELLM_STATUS_OK) return cli_fail("load");
    }
    size_t n;
    char *in = read_all(stdin, &n);
    if (!in) {
        edgellm_chat_template_free(t);
        return cli_usage_error("cannot read stdin");
    }
    int rc = 0;
    /* one JSON object (possibly pretty-printed over several lines), else JSON lines */
    const char *end = NULL;
    cJSON *one = cJSON_ParseWithOpts(in, &end, true);
    if (one) {
        rc |= render_one(t, one, in);
        cJSON_Delete(one);
    } else {
        char *save = NULL;
        int lineno = 0, nreq = 0;
        for (char *line = strtok_r(in, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            lineno++;
            const char *p = line;
            while (*p == ' ' || *p == '\t' || *p == '\r') p++;
            if (!*p) continue;
            nreq++;
            cJSON *req = cJSON_Parse(p);
            if (!req) {
                char msg[128];
                snprintf(msg, sizeof msg, "line %d: malformed JSON", lineno);
                print_obj("error", msg);
                fprintf(stderr, "error: %s\n", msg);
                rc = 1;
                continue;
            }
            rc |= render_one(t, req, p);
            cJSON_Delete(req);
        }
        if (!nreq) {
            fprintf(stderr, "error: no request on stdin\n");
            rc = 1;
        }
    }
    free(in);
    edgellm_chat_template_free(t);
    return rc;
}
