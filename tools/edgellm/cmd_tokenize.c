/* cmd_tokenize.c - `edgellm tokenize` and `edgellm detokenize`: JSON lines on stdin, JSON lines on stdout. */
#include "cli.h"
#include "edgellm/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void json_escape(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        fwrite(s + run, 1, i - run, f);
        run = i + 1;
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default: fprintf(f, "\\u%04x", c); break;
        }
    }
    fwrite(s + run, 1, n - run, f);
    fputc('"', f);
}

/* cJSON strings are NUL-terminated, so "\u0000" would cut the text. When the line holds no U+10FFFF,
 * each "\u0000" escape is rewritten to the escape of U+10FFFF before parsing and mapped back to a NUL
 * byte afterwards. Returns the rewritten line (malloc) or NULL when nothing needs rewriting. */
static const char k_sentinel[] = "\xF4\x8F\xBF\xBF";

static bool has_sentinel_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++)
        if (s[i] == '\\' && (s[i + 1] == 'u' || s[i + 1] == 'U') && !strncasecmp(s + i + 2, "dbff", 4)) return true;
    return memmem(s, n, k_sentinel, 4) != NULL;
}

static char *protect_nuls(const char *line, size_t len, size_t *out_len) {
    if (!memmem(line, len, "\\u0000", 6) || has_sentinel_escape(line, len)) return NULL;
    char *out = malloc(len * 2 + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\\' && i + 1 < len) {
            if (line[i + 1] == 'u' && i + 6 <= len && !memcmp(line + i + 2, "0000", 4)) {
                memcpy(out + k, "\\udbff\\udfff", 12);
                k += 12;
                i += 5;
            } else {
                out[k++] = line[i++];
                out[k++] = line[i];
            }
            continue;
        }
        out[k++] = line[i];
    }
    out[k] = 0;
    *out_len = k;
    return out;
}

/* Maps the sentinels back to NUL bytes in place; returns the new length. */
static size_t restore_nuls(char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 4 <= n && !memcmp(s + i, k_sentinel, 4)) {
            s[k++] = 0;
            i += 3;
        } else {
            s[k++] = s[i];
        }
    }
    return k;
}

static int tok_usage(const char *cmd, FILE *f, int rc) {
    if (!strcmp(cmd, "tokenize"))
        fprintf(f, "usage: edgellm tokenize --tokenizer PATH [--add-special-tokens]\n"
                   "  reads JSON lines {\"text\": \"...\"} on stdin, writes {\"ids\": [...]} per line.\n"
                   "  PATH: a tokenizer.json file or a directory holding one.\n");
    else
        fprintf(f, "usage: edgellm detokenize --tokenizer PATH [--skip-special-tokens]\n"
                   "  reads JSON lines {\"ids\": [...]} on stdin, writes {\"text\": \"...\"} per line.\n"
                   "  PATH: a tokenizer.json file or a directory holding one.\n");
    return rc;
}

static int run(int argc, char **argv, bool encode) {
    const char *cmd = argv[0];
    if (cli_wants_help(argc, argv)) return tok_usage(cmd, stdout, 0);
    const char *path = NULL;
    bool flag = false;
    for (int i = 1; i < argc; i++) {
        int err = 0;
        if (cli_flag_val(argc, argv, &i, "--tokenizer", &path, &err)) {
            if (err) return 2;
        } else if (encode && !strcmp(argv[i], "--add-special-tokens")) {
            flag = true;
        } else if (!encode && !strcmp(argv[i], "--skip-special-tokens")) {
            flag = true;
        } else {
            fprintf(stderr, "error: unknown option '%s'\n", argv[i]);
            return tok_usage(cmd, stderr, 2);
        }
    }
    if (!path) {
        fprintf(stderr, "error: --tokenizer is required\n");
        return tok_usage(cmd, stderr, 2);
    }
    edgellm_tokenizer *tok = NULL;
    if (edgellm_tokenizer_load(path, &tok) != EDGELLM_STATUS_OK) return cli_fail("cannot load tokenizer");
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    long lineno = 0;
    int rc = 0;
    int32_t *ids = NULL;
    size_t ids_cap = 0;
    while ((got = getline(&line, &lcap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) continue; /* blank line */
        size_t plen = 0;
        char *prot = encode ? protect_nuls(line, len, &plen) : NULL;
        bool nul_protected = prot != NULL;
        cJSON *j = prot ? cJSON_ParseWithLength(prot, plen) : cJSON_ParseWithLength(line, len);
        free(prot);
        if (!j || !cJSON_IsObject(j)) {
            fprintf(stderr, "error: line %ld: malformed JSON (expected an object)\n", lineno);
            cJSON_Delete(j);
            rc = 1;
            break;
        }
        if (encode) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
            if (!cJSON_IsString(t)) {
                fprintf(stderr, "error: line %ld: missing string field \"text\"\n", lineno);
                cJSON_Delete(j);
                rc = 1;
                break;
            }
            int32_t *out;
            size_t n, tl = strlen(t->valuestring);
            if (nul_protected) tl = restore_nuls(t->valuestring, tl);
            if (edgellm_tokenizer_encode(tok, t->valuestring, tl, flag, &out, &n) != EDGELLM_STATUS_OK) {
                fprintf(stderr, "error: line %ld: encode: %s\n", lineno, edgellm_last_error());
                cJSON_Delete(j);
                rc = 1;
                break;
            }
            fputs("{\"ids\": [", stdout);
            for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", out[i]);
            fputs("]}\n", stdout);
            edgellm_free(out);
        } else {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "ids");
            if (!cJSON_IsArray(a)) {
                fprintf(stderr, "error: line %ld: missing array field \"ids\"\n", lineno);
                cJSON_Delete(j);
                rc = 1;
                break;
            }
            size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
            if (n + 1 > ids_cap) {
                ids_cap = n + 1;
                int32_t *p = realloc(ids, ids_cap * sizeof *p);
                if (!p) {
                    fprintf(stderr, "error: out of memory\n");
                    cJSON_Delete(j);
                    rc = 1;
                    break;
                }
                ids = p;
            }
            const cJSON *v;
            bool bad = false;
            cJSON_ArrayForEach(v, a) {
                if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble || v->valuedouble < 0 ||
                    v->valuedouble > 2147483647.0) {
                    bad = true;
                    break;
                }
                ids[i++] = (int32_t)v->valuedouble;
            }
            if (bad) {
                fprintf(stderr, "error: line %ld: \"ids\" must hold non-negative integers\n", lineno);
                cJSON_Delete(j);
                rc = 1;
                break;
            }
            char *text;
            size_t tl;
            if (edgellm_tokenizer_decode(tok, ids, n, flag, &text, &tl) != EDGELLM_STATUS_OK) {
                fprintf(stderr, "error: line %ld: decode: %s\n", lineno, edgellm_last_error());
                cJSON_Delete(j);
                rc = 1;
                break;
            }
            fputs("{\"text\": ", stdout);
            json_escape(stdout, text, tl);
            fputs("}\n", stdout);
            edgellm_free(text);
        }
        cJSON_Delete(j);
    }
    free(line);
    free(ids);
    edgellm_tokenizer_free(tok);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write to stdout\n");
        rc = 1;
    }
    return rc;
}

int cmd_tokenize(int argc, char **argv) { return run(argc, argv, true); }
int cmd_detokenize(int argc, char **argv) { return run(argc, argv, false); }
