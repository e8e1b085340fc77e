/* test_tokenizer.c - HF-exact tokenizer: unit cases, goldens from HF tokenizers 0.22 for 8 real tokenizers
 * (ids with/without special tokens, decode with/without skip_special, decode of cut sequences), the
 * streaming detokenizer on every golden line, bad input, and the tokenize/detokenize CLI.
 *
 * Fixtures: tests/fixtures/tokenizers/<name>/{tokenizer.json.xz,tokenizer_config.json,goldens.jsonl.xz}
 * and texts.jsonl.xz, decompressed with `xz -dc` into $EDGELLM_TMP. Regenerate with
 * scripts/gen_tokenizer_goldens.mjs. */
#include "core/core.h"
#include "edgellm/tokenizer.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[512];

/* ---- helpers -------------------------------------------------------------------------------------- */
static bool utf8_ok(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else return false;
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n) return false;
            unsigned char d = u[i + k];
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return false;
        }
        i += need + 1;
    }
    return true;
}

static bool sh(const char *cmd) { return system(cmd) == 0; }

/* xz -dc src > dst */
static bool unxz(const char *src, const char *dst) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "xz -dc '%s' > '%s'", src, dst);
    return sh(cmd);
}

static char **read_lines(const char *path, size_t *n) {
    char *data;
    size_t len;
    *n = 0;
    if (el_read_file(path, 0, &data, &len) != EDGELLM_STATUS_OK) return NULL;
    size_t cnt = 0;
    for (size_t i = 0; i < len; i++) cnt += data[i] == '\n';
    char **lines = calloc(cnt + 1, sizeof *lines);
    size_t k = 0;
    char *p = data;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            data[i] = 0;
            lines[k++] = strdup(p);
            p = data + i + 1;
        }
    }
    el_free(data);
    *n = k;
    return lines;
}

static void free_lines(char **l, size_t n) {
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

static int32_t *json_ids(const cJSON *a, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(a);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) ids[i++] = (int32_t)v->valuedouble;
    return ids;
}

static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

static void print_ids(const char *what, const int32_t *a, size_t n) {
    fprintf(stderr, "    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", a[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

static char *decode_str(const edgellm_tokenizer *t, const int32_t *ids, size_t n, bool skip) {
    char *s = NULL;
    size_t l;
    if (edgellm_tokenizer_decode(t, ids, n, skip, &s, &l) != EDGELLM_STATUS_OK) return NULL;
    return s;
}

/* streaming: concatenation of pieces == full decode, every piece valid UTF-8 */
static bool stream_ok(const edgellm_tokenizer *t, const int32_t *ids, size_t n, bool skip, const char *want) {
    edgellm_detok_stream *st;
    if (edgellm_detok_stream_create(t, skip, &st) != EDGELLM_STATUS_OK) return false;
    el_buf acc = {0};
    bool ok = true;
    for (size_t i = 0; i <= n && ok; i++) {
        const char *piece;
        edgellm_status s = i < n ? edgellm_detok_stream_push(st, ids[i], &piece) : edgellm_detok_stream_flush(st, &piece);
        if (s != EDGELLM_STATUS_OK || !utf8_ok(piece, strlen(piece))) ok = false;
        else el_buf_append_str(&acc, piece);
    }
    if (ok) ok = strlen(want) == acc.len && !memcmp(want, acc.data ? acc.data : "", acc.len);
    el_buf_free(&acc);
    edgellm_detok_stream_free(st);
    return ok;
}

/* ---- goldens ---------------------------------------------------------------------------------------- */
typedef struct golden_tok {
    const char *name;
    const char *json; /* plain or .xz */
    const char *config_dir;
    const char *goldens; /* NULL: fixtures/tokenizers/<name>/goldens.jsonl.xz */
} golden_tok;

static const golden_tok k_tokenizers[] = {
    {"stories260K", "fixtures/models/stories260K-hf/tokenizer.json", "fixtures/models/stories260K-hf", NULL},
    {"sotu-qwen3", "fixtures/models/sotu-qwen3/tokenizer.json", "fixtures/models/sotu-qwen3", NULL},
    {"qwen3", "fixtures/tokenizers/qwen3/tokenizer.json.xz", "fixtures/tokenizers/qwen3", NULL},
    {"llama3", "fixtures/tokenizers/llama3/tokenizer.json.xz", "fixtures/tokenizers/llama3", NULL},
    {"llama3_1", "fixtures/tokenizers/llama3_1/tokenizer.overlay.json", "fixtures/tokenizers/llama3_1", NULL},
    {"gemma3", "fixtures/tokenizers/gemma3/tokenizer.json.xz", "fixtures/tokenizers/gemma3", NULL},
    {"deepseek_v3", "fixtures/tokenizers/deepseek_v3/tokenizer.json.xz", "fixtures/tokenizers/deepseek_v3", NULL},
    {"llama2", "fixtures/tokenizers/llama2/tokenizer.json.xz", "fixtures/tokenizers/llama2", NULL},
};

/* Materializes a tokenizer dir in tmp; returns its path in out. */
static bool materialize(const golden_tok *g, char *out, size_t cap) {
    snprintf(out, cap, "%s/tok-%s", g_tmp, g->name);
    mkdir(out, 0755);
    char dst[2048], cfg[2048], cmd[4096];
    snprintf(dst, sizeof dst, "%s/tokenizer.json", out);
    size_t jl = strlen(g->json);
    if (jl > 13 && !strcmp(g->json + jl - 13, ".overlay.json")) {
        /* {"base": name, key: value...}: the base fixture's tokenizer.json with top-level keys replaced */
        cJSON *ov = NULL, *base = NULL;
        char bsrc[1024], *text = NULL;
        size_t tl;
        bool ok = el_json_load(g->json, 0, &ov) == EDGELLM_STATUS_OK;
        const cJSON *bn = ok ? cJSON_GetObjectItem(ov, "base") : NULL;
        ok = ok && cJSON_IsString(bn);
        if (ok) {
            snprintf(bsrc, sizeof bsrc, "fixtures/tokenizers/%s/tokenizer.json.xz", bn->valuestring);
            ok = unxz(bsrc, dst) && el_read_file(dst, 0, &text, &tl) == EDGELLM_STATUS_OK;
        }
        if (ok) ok = (base = cJSON_ParseWithLength(text, tl)) != NULL;
        el_free(text);
        for (cJSON *it = ok ? ov->child : NULL; it; it = it->next) {
            if (!strcmp(it->string, "base")) continue;
            cJSON_ReplaceItemInObjectCaseSensitive(base, it->string, cJSON_Duplicate(it, true));
        }
        char *out_json = ok ? cJSON_PrintUnformatted(base) : NULL;
        ok = out_json && el_write_file(dst, out_json, strlen(out_json)) == EDGELLM_STATUS_OK;
        cJSON_free(out_json);
        cJSON_Delete(base);
        cJSON_Delete(ov);
        if (!ok) return false;
    } else if (jl > 3 && !strcmp(g->json + jl - 3, ".xz")) {
        if (!unxz(g->json, dst)) return false;
    } else {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", g->json, dst);
        if (!sh(cmd)) return false;
    }
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", g->config_dir);
    if (el_file_exists(cfg)) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/'", cfg, out);
        if (!sh(cmd)) return false;
    }
    return true;
}

static char **g_texts;
static size_t g_ntexts;

/* concurrent encodes on one shared tokenizer (word cache, scratch buffers) */
typedef struct thr_arg {
    const edgellm_tokenizer *t;
    char **gl;
    size_t start, step, n, ok, total;
} thr_arg;

static int32_t *json_ids(const cJSON *a, size_t *n);
static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb);

static void *thr_encode(void *p) {
    thr_arg *a = p;
    for (size_t i = a->start; i < a->n; i += a->step) {
        cJSON *gj = cJSON_Parse(a->gl[i]), *tj = cJSON_Parse(g_texts[i]);
        if (gj && cJSON_IsString(tj)) {
            size_t nw, ng;
            int32_t *want = json_ids(cJSON_GetObjectItem(gj, "ids"), &nw), *got = NULL;
            a->ok += edgellm_tokenizer_encode(a->t, tj->valuestring, strlen(tj->valuestring), false, &got, &ng) ==
                         EDGELLM_STATUS_OK && ids_eq(got, ng, want, nw);
            edgellm_free(got);
            free(want);
        }
        a->total++;
        cJSON_Delete(gj);
        cJSON_Delete(tj);
    }
    return NULL;
}

static void test_golden(const golden_tok *g) {
    char dir[1024], gpath[2048], gsrc[512];
    CHECKF(materialize(g, dir, sizeof dir), "%s: cannot materialize fixtures", g->name);
    if (g->goldens) snprintf(gsrc, sizeof gsrc, "%s", g->goldens);
    else snprintf(gsrc, sizeof gsrc, "fixtures/tokenizers/%s/goldens.jsonl.xz", g->name);
    snprintf(gpath, sizeof gpath, "%s/goldens-%s.jsonl", g_tmp, g->name);
    CHECKF(unxz(gsrc, gpath), "%s: cannot decompress goldens", g->name);
    size_t ng;
    char **gl = read_lines(gpath, &ng);
    CHECKF(gl && ng >= g_ntexts, "%s: golden lines %zu < texts %zu", g->name, ng, g_ntexts);
    if (!gl || ng < g_ntexts) return;
    edgellm_tokenizer *t = NULL;
    double t0 = el_time_ms();
    edgellm_status st = edgellm_tokenizer_load(dir, &t);
    double t_load = el_time_ms() - t0;
    CHECKF(st == EDGELLM_STATUS_OK, "%s: load: %s", g->name, edgellm_last_error());
    if (st != EDGELLM_STATUS_OK) {
        free_lines(gl, ng);
        return;
    }
    /* vocab size (HF get_vocab_size(true)) and special ids from tokenizer_config.json */
    static const struct {
        const char *name;
        int32_t vocab, bos, eos, pad;
    } k_ids[] = {{"stories260K", 512, 1, 2, -1},          {"sotu-qwen3", 4096, -1, 4093, 4093},
                 {"qwen3", 151669, -1, 151645, 151643},    {"llama3", 128256, 128000, 128001, -1},
                 {"llama3_1", 128256, 128000, 128009, -1}, {"gemma3", 262145, 2, 106, 0},
                 {"deepseek_v3", 128815, 0, 1, 1},         {"llama2", 32000, 1, 2, -1}};
    for (size_t k = 0; k < sizeof k_ids / sizeof k_ids[0]; k++)
        if (!strcmp(k_ids[k].name, g->name))
            CHECKF(edgellm_tokenizer_vocab_size(t) == k_ids[k].vocab && edgellm_tokenizer_bos_id(t) == k_ids[k].bos &&
                       edgellm_tokenizer_eos_id(t) == k_ids[k].eos && edgellm_tokenizer_pad_id(t) == k_ids[k].pad,
                   "%s: vocab/bos/eos/pad %d/%d/%d/%d", g->name, edgellm_tokenizer_vocab_size(t),
                   edgellm_tokenizer_bos_id(t), edgellm_tokenizer_eos_id(t), edgellm_tokenizer_pad_id(t));
    size_t ok_ids = 0, ok_sp = 0, n_sp = 0, ok_dec = 0, ok_dsk = 0, ok_cut = 0, n_cut = 0, ok_stream = 0;
    int shown = 0;
    t0 = el_time_ms();
    size_t ng_all = ng, n_rnd = ng - g_ntexts, ok_rnd = 0;
    for (size_t i = g_ntexts; i < ng; i++) { /* random id sequences: decode vs HF */
        cJSON *gj = cJSON_Parse(gl[i]);
        const cJSON *rid = cJSON_GetObjectItem(gj, "rid"), *rdec = cJSON_GetObjectItem(gj, "rdec"),
                    *rdsk = cJSON_GetObjectItem(gj, "rdsk");
        if (!cJSON_IsArray(rid) || !cJSON_IsString(rdec) || !cJSON_IsString(rdsk)) {
            cJSON_Delete(gj);
            continue;
        }
        size_t nr;
        int32_t *r = json_ids(rid, &nr);
        char *a = decode_str(t, r, nr, false), *b = decode_str(t, r, nr, true);
        bool ok = a && b && !strcmp(a, rdec->valuestring) && !strcmp(b, rdsk->valuestring);
        ok_rnd += ok;
        if (!ok && shown < 4) {
            shown++;
            fprintf(stderr, "  %s random decode %zu differs:\n    want: %s\n    got:  %s\n", g->name, i - g_ntexts,
                    rdec->valuestring, a ? a : "(error)");
        }
        edgellm_free(a);
        edgellm_free(b);
        free(r);
        cJSON_Delete(gj);
    }
    ng = g_ntexts;
    for (size_t i = 0; i < ng; i++) {
        cJSON *gj = cJSON_Parse(gl[i]);
        cJSON *tj = cJSON_Parse(g_texts[i]);
        if (!gj || !tj || !cJSON_IsString(tj)) {
            CHECKF(0, "%s: golden line %zu unreadable", g->name, i + 1);
            cJSON_Delete(gj);
            cJSON_Delete(tj);
            continue;
        }
        const char *text = tj->valuestring;
        size_t nw;
        int32_t *want = json_ids(cJSON_GetObjectItem(gj, "ids"), &nw);
        int32_t *got = NULL;
        size_t ngot = 0;
        edgellm_tokenizer_encode(t, text, strlen(text), false, &got, &ngot);
        bool ok = got && ids_eq(got, ngot, want, nw);
        ok_ids += ok;
        if (!ok && shown < 3) {
            shown++;
            fprintf(stderr, "  %s line %zu ids differ: %s\n", g->name, i + 1, g_texts[i]);
            print_ids("want", want, nw);
            print_ids("got ", got, ngot);
        }
        edgellm_free(got);
        if (i % 10 == 0) {
            n_sp++;
            const cJSON *spj = cJSON_GetObjectItem(gj, "sp");
            size_t nsp = nw;
            int32_t *sp = spj ? json_ids(spj, &nsp) : NULL;
            edgellm_tokenizer_encode(t, text, strlen(text), true, &got, &ngot);
            bool k = got && ids_eq(got, ngot, sp ? sp : want, nsp);
            ok_sp += k;
            if (!k && shown < 6) {
                shown++;
                fprintf(stderr, "  %s line %zu special ids differ\n", g->name, i + 1);
            }
            edgellm_free(got);
            free(sp);
        }
        const cJSON *decj = cJSON_GetObjectItem(gj, "dec"), *dskj = cJSON_GetObjectItem(gj, "dsk");
        const char *dec_want = decj ? decj->valuestring : text;
        const char *dsk_want = dskj ? dskj->valuestring : dec_want;
        char *dec = decode_str(t, want, nw, false);
        bool dk = dec && !strcmp(dec, dec_want);
        ok_dec += dk;
        if (!dk && shown < 6) {
            shown++;
            fprintf(stderr, "  %s line %zu decode differs:\n    want: %s\n    got:  %s\n", g->name, i + 1, dec_want,
                    dec ? dec : "(error)");
        }
        edgellm_free(dec);
        char *dsk = decode_str(t, want, nw, true);
        ok_dsk += dsk && !strcmp(dsk, dsk_want);
        edgellm_free(dsk);
        const cJSON *cutj = cJSON_GetObjectItem(gj, "cut");
        if (cutj) {
            n_cut++;
            char *cut = decode_str(t, want, nw - 1, false);
            bool ck = cut && !strcmp(cut, cutj->valuestring);
            ok_cut += ck;
            if (!ck && shown < 6) {
                shown++;
                fprintf(stderr, "  %s line %zu cut decode differs:\n    want: %s\n    got:  %s\n", g->name, i + 1,
                        cutj->valuestring, cut ? cut : "(error)");
            }
            edgellm_free(cut);
        }
        bool sk = stream_ok(t, want, nw, false, dec_want) && stream_ok(t, want, nw, true, dsk_want);
        if (cutj) sk = sk && stream_ok(t, want, nw - 1, false, cutj->valuestring);
        ok_stream += sk;
        if (!sk && shown < 8) {
            shown++;
            fprintf(stderr, "  %s line %zu streaming decode differs\n", g->name, i + 1);
        }
        free(want);
        cJSON_Delete(gj);
        cJSON_Delete(tj);
    }
    /* fuzz: random bytes (often invalid UTF-8) encode without error; random id sequences stream exactly
     * as they decode (random byte tokens, partial characters, specials) */
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)strlen(g->name);
    size_t fz_enc = 0, fz_stream = 0;
    const int n_fuzz = 400;
    for (int f = 0; f < n_fuzz; f++) {
        char buf[64];
        size_t bl = 1 + (size_t)(f % 63);
        for (size_t k = 0; k < bl; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint8_t b = (uint8_t)(rng >> 56);
            buf[k] = (char)((rng >> 40) % 3 == 0 ? (char)(b | 0x80) : (char)(b & 0x7f ? b & 0x7f : ' '));
        }
        int32_t *ids = NULL;
        size_t nid = 0;
        fz_enc += edgellm_tokenizer_encode(t, buf, bl, f % 2 == 0, &ids, &nid) == EDGELLM_STATUS_OK;
        edgellm_free(ids);
        int32_t rid[48];
        size_t nr = 1 + (size_t)(f % 47);
        for (size_t k = 0; k < nr; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t v = (uint32_t)(rng >> 33);
            /* bias towards low ids (bytes, specials) half of the time */
            rid[k] = (int32_t)(v % 2 ? (v >> 1) % 300 : (v >> 1) % (uint32_t)edgellm_tokenizer_vocab_size(t));
        }
        for (int sk = 0; sk < 2; sk++) {
            char *d = NULL;
            size_t dl = 0;
            bool ok = edgellm_tokenizer_decode(t, rid, nr, sk, &d, &dl) == EDGELLM_STATUS_OK;
            /* pieces are C strings: a decoded U+0000 cannot be streamed through them, skip those */
            if (ok && strlen(d) == dl) ok = stream_ok(t, rid, nr, sk, d);
            fz_stream += ok;
            if (!ok && shown < 10) {
                shown++;
                fprintf(stderr, "  %s fuzz %d skip %d: stream != decode\n", g->name, f, sk);
                if (getenv("TK_DEBUG")) {
                    print_ids("ids", rid, nr);
                    edgellm_detok_stream *ds;
                    edgellm_detok_stream_create(t, sk, &ds);
                    fprintf(stderr, "    decode: [%s]\n    pieces:", d ? d : "");
                    for (size_t k = 0; k <= nr; k++) {
                        const char *pc = "";
                        if (k < nr) edgellm_detok_stream_push(ds, rid[k], &pc);
                        else edgellm_detok_stream_flush(ds, &pc);
                        fprintf(stderr, " [%s]", pc);
                    }
                    fprintf(stderr, "\n");
                    edgellm_detok_stream_free(ds);
                }
            }
            edgellm_free(d);
        }
    }
    CHECKF(fz_enc == (size_t)n_fuzz, "%s: fuzz encode %zu/%d", g->name, fz_enc, n_fuzz);
    CHECKF(fz_stream == 2 * (size_t)n_fuzz, "%s: fuzz stream %zu/%d", g->name, fz_stream, 2 * n_fuzz);
    /* 4 threads on the same tokenizer, every 7th line */
    thr_arg ta[4];
    pthread_t th[4];
    size_t thr_ok = 0, thr_total = 0;
    for (int k = 0; k < 4; k++) {
        ta[k] = (thr_arg){t, gl, (size_t)k * 7, 28, ng, 0, 0};
        pthread_create(&th[k], NULL, thr_encode, &ta[k]);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        thr_ok += ta[k].ok;
        thr_total += ta[k].total;
    }
    CHECKF(thr_ok == thr_total && thr_total > 0, "%s: threaded encode %zu/%zu", g->name, thr_ok, thr_total);
    double t_run = el_time_ms() - t0;
    printf("golden %-12s ids %zu/%zu  special %zu/%zu  decode %zu/%zu  skip_special %zu/%zu  cut %zu/%zu  "
           "stream %zu/%zu  random-decode %zu/%zu  fuzz %zu+%zu/%d  (load %.0f ms, check %.0f ms)\n",
           g->name, ok_ids, ng, ok_sp, n_sp, ok_dec, ng, ok_dsk, ng, ok_cut, n_cut, ok_stream, ng, ok_rnd, n_rnd, fz_enc, fz_stream,
           3 * n_fuzz, t_load, t_run);
    CHECKF(ok_ids == ng, "%s: ids %zu/%zu", g->name, ok_ids, ng);
    CHECKF(ok_sp == n_sp, "%s: special %zu/%zu", g->name, ok_sp, n_sp);
    CHECKF(ok_dec == ng, "%s: decode %zu/%zu", g->name, ok_dec, ng);
    CHECKF(ok_dsk == ng, "%s: skip_special decode %zu/%zu", g->name, ok_dsk, ng);
    CHECKF(ok_cut == n_cut, "%s: cut decode %zu/%zu", g->name, ok_cut, n_cut);
    CHECKF(ok_stream == ng, "%s: stream %zu/%zu", g->name, ok_stream, ng);
    CHECKF(n_rnd > 0 && ok_rnd == n_rnd, "%s: random decode %zu/%zu", g->name, ok_rnd, n_rnd);
    edgellm_tokenizer_free(t);
    free_lines(gl, ng_all);
}

/* ---- special ids / API ------------------------------------------------------------------------------- */
static void test_api(void) {
    edgellm_tokenizer *t = NULL;
    CHECK_OK(edgellm_tokenizer_load("fixtures/models/stories260K-hf", &t));
    if (!t) return;
    CHECK(edgellm_tokenizer_vocab_size(t) == 512);
    CHECK(edgellm_tokenizer_bos_id(t) == 1);
    CHECK(edgellm_tokenizer_eos_id(t) == 2);
    CHECK(edgellm_tokenizer_pad_id(t) == -1);
    CHECK(edgellm_tokenizer_token_to_id(t, "<s>") == 1);
    CHECK(edgellm_tokenizer_token_to_id(t, "no such token") == -1);
    CHECK(edgellm_tokenizer_id_to_token(t, 1) && !strcmp(edgellm_tokenizer_id_to_token(t, 1), "<s>"));
    CHECK(edgellm_tokenizer_id_to_token(t, 512) == NULL);
    CHECK(edgellm_tokenizer_id_to_token(t, -1) == NULL);
    CHECK(edgellm_tokenizer_is_special(t, 1));
    CHECK(!edgellm_tokenizer_is_special(t, 300));
    int32_t *ids;
    size_t n;
    CHECK_OK(edgellm_tokenizer_encode(t, "", 0, false, &ids, &n));
    CHECK(n == 0);
    edgellm_free(ids);
    CHECK_OK(edgellm_tokenizer_encode(t, "", 0, true, &ids, &n));
    CHECK(n == 1 && ids[0] == 1);
    edgellm_free(ids);
    /* byte fallback + streaming holds back incomplete characters */
    CHECK_OK(edgellm_tokenizer_encode(t, "\xe4\xbd\xa0!", 4, false, &ids, &n));
    if (n >= 4) {
        edgellm_detok_stream *st;
        CHECK_OK(edgellm_detok_stream_create(t, false, &st));
        const char *p;
        CHECK_OK(edgellm_detok_stream_push(st, ids[0], &p)); /* "▁" */
        CHECK_OK(edgellm_detok_stream_push(st, ids[1], &p));
        CHECK(!strcmp(p, ""));
        CHECK_OK(edgellm_detok_stream_push(st, ids[2], &p));
        CHECK(!strcmp(p, ""));
        edgellm_detok_stream_free(st);
    }
    edgellm_free(ids);
    /* invalid UTF-8 input: read as U+FFFD per maximal subpart, never a crash */
    int32_t *a, *b;
    size_t na, nb;
    CHECK_OK(edgellm_tokenizer_encode(t, "a\xff\xe4\xbd" "b", 5, false, &a, &na));
    CHECK_OK(edgellm_tokenizer_encode(t, "a\xef\xbf\xbd\xef\xbf\xbd" "b", 8, false, &b, &nb));
    CHECK(ids_eq(a, na, b, nb));
    edgellm_free(a);
    edgellm_free(b);
    edgellm_tokenizer_free(t);

    CHECK_OK(edgellm_tokenizer_load("fixtures/models/sotu-qwen3/tokenizer.json", &t));
    if (!t) return;
    CHECK(edgellm_tokenizer_bos_id(t) == -1);
    CHECK(edgellm_tokenizer_eos_id(t) == 4093);
    CHECK(edgellm_tokenizer_pad_id(t) == 4093);
    CHECK(edgellm_tokenizer_vocab_size(t) == 4096);
    /* unknown ids are dropped by decode (as HF) */
    int32_t bad[] = {39, 99999, -5, 1552};
    char *s = decode_str(t, bad, 4, false);
    CHECK(s && !strcmp(s, "Hell"));
    edgellm_free(s);
    edgellm_tokenizer_free(t);
}

/* ---- synthetic tokenizers: features the real ones do not use ----------------------------------------- */
static edgellm_tokenizer *load_json(const char *name, const char *json) {
    char dir[1200], path[1400];
    snprintf(dir, sizeof dir, "%s/syn-%s", g_tmp, name);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    el_write_file(path, json, strlen(json));
    edgellm_tokenizer *t = NULL;
    if (edgellm_tokenizer_load(path, &t) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "  %s: %s\n", name, edgellm_last_error());
        return NULL;
    }
    return t;
}

static bool enc_is(const edgellm_tokenizer *t, const char *text, bool special, const int32_t *want, size_t nw) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (!t || edgellm_tokenizer_encode(t, text, strlen(text), special, &ids, &n) != EDGELLM_STATUS_OK) return false;
    bool ok = ids_eq(ids, n, want, nw);
    if (!ok) {
        fprintf(stderr, "  encode(\"%s\")\n", text);
        print_ids("want", want, nw);
        print_ids("got ", ids, n);
    }
    edgellm_free(ids);
    return ok;
}

static bool dec_is(const edgellm_tokenizer *t, const int32_t *ids, size_t n, bool skip, const char *want) {
    char *s = t ? decode_str(t, ids, n, skip) : NULL;
    bool ok = s && !strcmp(s, want);
    if (!ok) fprintf(stderr, "  decode: want \"%s\" got \"%s\"\n", want, s ? s : "(error)");
    edgellm_free(s);
    return ok;
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

static void test_synthetic(void) {
    /* WordPiece + BertNormalizer + BertPreTokenizer + BertProcessing + WordPiece decoder */
    edgellm_tokenizer *t = load_json(
        "wordpiece",
        "{\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
        "\"strip_accents\":null,\"lowercase\":true},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
        "\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",3],\"cls\":[\"[CLS]\",2]},"
        "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true},"
        "\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false},"
        "{\"id\":2,\"content\":\"[CLS]\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false},"
        "{\"id\":3,\"content\":\"[SEP]\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false}],"
        "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
        "\"max_input_chars_per_word\":100,\"vocab\":{\"[UNK]\":0,\"[PAD]\":1,\"[CLS]\":2,\"[SEP]\":3,\"hello\":4,"
        "\"world\":5,\"un\":6,\"##aff\":7,\"##able\":8,\"!\":9,\"cafe\":10,\"中\":11,\",\":12}}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "Hello, WORLD! unaffable", false, IDS(4, 12, 5, 9, 6, 7, 8)));
    CHECK(enc_is(t, "Café 中x", true, IDS(2, 10, 11, 0, 3)));
    CHECK(dec_is(t, IDS(2, 4, 12, 5, 9, 6, 7, 8, 3), true, "hello, world! unaffable"));
    edgellm_tokenizer_free(t);

    /* Unigram + Metaspace (prepend_scheme first) + Metaspace decoder */
    t = load_json("unigram",
                  "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
                  "\"prepend_scheme\":\"always\",\"split\":true},\"decoder\":{\"type\":\"Metaspace\","
                  "\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\",\"split\":true},"
                  "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false}],"
                  "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":false,\"vocab\":[[\"<unk>\",0.0],"
                  "[\"\\u2581\",-2.0],[\"\\u2581he\",-3.0],[\"llo\",-3.5],[\"\\u2581hello\",-4.0],[\"h\",-5.0],"
                  "[\"e\",-5.0],[\"l\",-5.0],[\"o\",-5.0],[\"\\u2581w\",-4.0],[\"or\",-4.0],[\"ld\",-4.0],"
                  "[\"\\u2581world\",-9.5]]}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "hello world", false, IDS(4, 12)));
    CHECK(enc_is(t, "hello zz", false, IDS(4, 1, 0)));
    CHECK(dec_is(t, IDS(4, 9, 10, 11), false, "hello world"));
    edgellm_tokenizer_free(t);

    /* Split behaviors, Digits, lstrip/rstrip/single_word added tokens, Lowercase, Strip, NFKC.
     * Expected values of all synthetic cases come from HF tokenizers 0.22 on the same JSON. */
    t = load_json("split",
                  "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"},"
                  "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}]},"
                  "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\","
                  "\"individual_digits\":false},{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},"
                  "\"behavior\":\"MergedWithNext\",\"invert\":false},{\"type\":\"WhitespaceSplit\"}]},"
                  "\"added_tokens\":[{\"id\":20,\"content\":\"<m>\",\"special\":true,\"normalized\":false,"
                  "\"lstrip\":true,\"rstrip\":true,\"single_word\":false},{\"id\":21,\"content\":\"cat\",\"special\":false,"
                  "\"normalized\":true,\"single_word\":true,\"lstrip\":false,\"rstrip\":false}],"
                  "\"model\":{\"type\":\"BPE\",\"unk_token\":\"?\",\"fuse_unk\":true,\"vocab\":{\"?\":0,\"a\":1,"
                  "\"b\":2,\"c\":3,\"-\":4,\"1\":5,\"2\":6,\"12\":7,\"ab\":8,\"-a\":9,\"t\":10,\"fi\":11,\"f\":12,"
                  "\"i\":13},\"merges\":[\"a b\",\"1 2\",\"- a\",\"f i\"]}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "  AB-ab12 <m>  ab cat cats ﬁ  ", false, IDS(8, 4, 8, 7, 14, 8, 15, 3, 1, 10, 0, 11)));
    /* HF re-assigns ids of added tokens missing from the vocab: 20 -> 14, 21 -> 15 */
    CHECK(dec_is(t, IDS(8, 14, 8), true, "ab ab"));
    edgellm_tokenizer_free(t);

    /* WordLevel + Lowercase + Sequence[Whitespace, Punctuation, CharDelimiterSplit], no decoder (join " ") */
    t = load_json("wordlevel",
                  "{\"normalizer\":{\"type\":\"Lowercase\"},\"pre_tokenizer\":{\"type\":\"Sequence\","
                  "\"pretokenizers\":[{\"type\":\"Whitespace\"},{\"type\":\"Punctuation\",\"behavior\":\"Isolated\"},"
                  "{\"type\":\"CharDelimiterSplit\",\"delimiter\":\"x\"}]},\"added_tokens\":[],"
                  "\"model\":{\"type\":\"WordLevel\",\"unk_token\":\"[U]\",\"vocab\":{\"[U]\":0,\"hello\":1,"
                  "\"world\":2,\"!\":3,\"a\":4,\"b\":5,\",\":6,\"...\":7,\".\":8}}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "Hello, WORLD!! axb... zz", false, IDS(1, 6, 2, 3, 3, 4, 5, 8, 8, 8, 0)));
    CHECK(dec_is(t, IDS(1, 6, 2, 3), false, "hello , world !"));
    edgellm_tokenizer_free(t);

    /* \w: the Whitespace pre-tokenizer uses Rust regex (Join_Control is a word char), Split uses Oniguruma
     * (no Join_Control; Latin-1 superscripts/fractions are word chars; circled digits are not) */
    t = load_json("word-ws",
                  "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"added_tokens\":[],\"model\":{\"type\":\"WordLevel\","
                  "\"unk_token\":\"[U]\",\"vocab\":{\"[U]\":0,\"a\\u200db\":1,\"\\ud83d\\udc69\":2,\"\\u200d\":3,"
                  "\"\\ud83d\\udcbb\":4}}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "a\u200db \U0001F469\u200d\U0001F4BB", false, IDS(1, 2, 3, 4)));
    edgellm_tokenizer_free(t);
    t = load_json("word-split",
                  "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Removed\","
                  "\"invert\":true},\"added_tokens\":[],\"model\":{\"type\":\"WordLevel\",\"unk_token\":\"[U]\","
                  "\"vocab\":{\"[U]\":0,\"a\":1,\"b\":2,\"\\u00b2\":3,\"\\u216b\":4,\"e\\u0301\":5}}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "a\u200db \u2460 \u00b2 \u216b e\u0301", false, IDS(1, 2, 3, 4, 5)));
    edgellm_tokenizer_free(t);

    /* GPT-2 style: ByteLevel pre-tokenizer with prefix space and regex, RobertaProcessing, ByteLevel decoder */
    t = load_json("gpt2",
                  "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
                  "\"use_regex\":true},\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",2],"
                  "\"cls\":[\"<s>\",0],\"trim_offsets\":true,\"add_prefix_space\":true},\"decoder\":{\"type\":"
                  "\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
                  "\"added_tokens\":[{\"id\":0,\"content\":\"<s>\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false},{\"id\":1,\"content\":\"<pad>\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false},{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false}],"
                  "\"model\":{\"type\":\"BPE\",\"vocab\":{\"<s>\":0,\"<pad>\":1,\"</s>\":2,\"\\u0120\":3,"
                  "\"h\":4,\"e\":5,\"l\":6,\"o\":7,\"\\u0120h\":8,\"\\u0120he\":9,\"ll\":10,\"llo\":11,"
                  "\"\\u0120hello\":12,\"w\":13,\"r\":14,\"d\":15,\"!\":16,\"\\u0120w\":17,\"'\":18,\"s\":19,"
                  "\"'s\":20,\"\\u00c3\":21,\"\\u00a9\":22},\"merges\":[\"\\u0120 h\",\"\\u0120h e\",\"l l\","
                  "\"ll o\",\"\\u0120he llo\",\"\\u0120 w\",\"' s\"]}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "hello world's  hello!\u00e9", true, IDS(0, 12, 17, 7, 14, 6, 15, 20, 3, 12, 16, 21, 22, 2)));
    CHECK(dec_is(t, IDS(0, 12, 17, 21, 22, 2), true, " hello w\u00e9"));
    CHECK(dec_is(t, IDS(12, 21), false, " hello\xef\xbf\xbd"));
    edgellm_tokenizer_free(t);

    /* BPE with continuing_subword_prefix + end_of_word_suffix, Replace (regex) + Prepend normalizers,
     * WhitespaceSplit, BPEDecoder */
    t = load_json("suffix",
                  "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Replace\",\"pattern\":"
                  "{\"Regex\":\"[0-9]+\"},\"content\":\"#\"},{\"type\":\"Prepend\",\"prepend\":\"x \"}]},"
                  "\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"},\"decoder\":{\"type\":\"BPEDecoder\","
                  "\"suffix\":\"</w>\"},\"added_tokens\":[],"
                  "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":\"##\","
                  "\"end_of_word_suffix\":\"</w>\",\"vocab\":{\"<unk>\":0,\"x</w>\":1,\"a\":2,\"##b\":3,"
                  "\"##c</w>\":4,\"ab\":5,\"abc</w>\":6,\"#</w>\":7,\"##b</w>\":8,\"a</w>\":9},"
                  "\"merges\":[\"a ##b\",\"ab ##c</w>\"]}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "abc ab 12 a q", false, IDS(1, 6, 2, 8, 7, 9, 0)));
    CHECK(dec_is(t, IDS(1, 6, 5, 8), false, "x abc ab##b"));
    edgellm_tokenizer_free(t);

    /* Metaspace prepend_scheme "first" (no prefix after an added token), ByteFallback + Fuse decoders */
    t = load_json("metafirst",
                  "{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":"
                  "\"first\",\"split\":false},\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":"
                  "\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\",\"split\":false},"
                  "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false},{\"id\":1,\"content\":\"<x>\",\"special\":true,\"normalized\":false,\"lstrip\":false,\"rstrip\":false,\"single_word\":false}],"
                  "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
                  "\"vocab\":{\"<unk>\":0,\"<x>\":1,\"\\u2581\":2,\"a\":3,\"b\":4,\"\\u2581a\":5,\"<0xC3>\":6,"
                  "\"<0xA9>\":7},\"merges\":[\"\\u2581 a\"]}}");
    CHECK(t != NULL);
    CHECK(enc_is(t, "a b<x>a \u00e9\u00e8", false, IDS(5, 2, 4, 1, 3, 2, 6, 7, 0)));
    CHECK(dec_is(t, IDS(5, 2, 4, 1, 3, 6, 7), false, "a b<x>a\u00e9"));
    edgellm_tokenizer_free(t);
}

/* ---- bad input ------------------------------------------------------------------------------------ */
static void test_bad_input(void) {
    edgellm_tokenizer *t = NULL;
    CHECK(edgellm_tokenizer_load("fixtures/no/such/tokenizer.json", &t) == EDGELLM_STATUS_IO);
    CHECK(strstr(edgellm_last_error(), "no/such") != NULL);
    CHECK(edgellm_tokenizer_load("fixtures/no_such_dir", &t) == EDGELLM_STATUS_IO);
    char path[1200];
    snprintf(path, sizeof path, "%s/bad-json.json", g_tmp);
    el_write_file(path, "{\"model\": {\"type\": \"BPE\", ", 26);
    CHECK(edgellm_tokenizer_load(path, &t) == EDGELLM_STATUS_FORMAT);
    CHECK(t == NULL);
    const char *wl = "{\"model\":{\"type\":\"CharLevel\",\"vocab\":{\"a\":0},\"unk_token\":\"a\"}}";
    snprintf(path, sizeof path, "%s/bad-model.json", g_tmp);
    el_write_file(path, wl, strlen(wl));
    CHECK(edgellm_tokenizer_load(path, &t) == EDGELLM_STATUS_UNSUPPORTED);
    CHECK(strstr(edgellm_last_error(), "CharLevel") != NULL);
    const char *pc = "{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"},"
                     "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    snprintf(path, sizeof path, "%s/bad-norm.json", g_tmp);
    el_write_file(path, pc, strlen(pc));
    CHECK(edgellm_tokenizer_load(path, &t) == EDGELLM_STATUS_UNSUPPORTED);
    CHECK(strstr(edgellm_last_error(), "Precompiled") != NULL);
    const char *bm = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}";
    snprintf(path, sizeof path, "%s/bad-merge.json", g_tmp);
    el_write_file(path, bm, strlen(bm));
    CHECK(edgellm_tokenizer_load(path, &t) == EDGELLM_STATUS_FORMAT);
    CHECK(strstr(edgellm_last_error(), "merge 1") != NULL);
    const char *mv = "{\"model\":{\"type\":\"BPE\",\"vocab\":[1,2],\"merges\":[]}}";
    snprintf(path, sizeof path, "%s/bad-vocab.json", g_tmp);
    el_write_file(path, mv, strlen(mv));
    CHECK(edgellm_tokenizer_load(path, &t) == EDGELLM_STATUS_FORMAT);
}

/* ---- CLI ---------------------------------------------------------------------------------------------- */
static void test_cli(void) {
    const char *cli = getenv("EDGELLM_CLI");
    if (!cli) {
        printf("EDGELLM_CLI not set: CLI checks skipped\n");
        return;
    }
    char in[1200], out[1200], err[1200], cmd[6000];
    snprintf(in, sizeof in, "%s/cli-in.jsonl", g_tmp);
    snprintf(out, sizeof out, "%s/cli-out.jsonl", g_tmp);
    snprintf(err, sizeof err, "%s/cli-err.txt", g_tmp);
    const char *lines = "{\"text\": \"Hello world! Once upon a time\"}\n{\"text\": \"\\u4f60\\u597d\"}\n";
    el_write_file(in, lines, strlen(lines));
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer fixtures/models/stories260K-hf --add-special-tokens < '%s' > '%s'",
             cli, in, out);
    CHECK(sh(cmd));
    char *o = NULL;
    size_t ol;
    CHECK_OK(el_read_file(out, 0, &o, &ol));
    CHECK(o && !strcmp(o, "{\"ids\": [1, 346, 306, 414, 263, 304, 341, 443, 403, 407, 261, 378]}\n"
                           "{\"ids\": [1, 410, 231, 192, 163, 232, 168, 192]}\n"));
    el_free(o);
    const char *dl = "{\"ids\": [1, 346, 306, 414, 263, 231, 192]}\n{\"ids\": []}\n";
    el_write_file(in, dl, strlen(dl));
    snprintf(cmd, sizeof cmd, "'%s' detokenize --tokenizer fixtures/models/stories260K-hf < '%s' > '%s'", cli, in, out);
    CHECK(sh(cmd));
    CHECK_OK(el_read_file(out, 0, &o, &ol));
    CHECK(o && !strcmp(o, "{\"text\": \"<s> Hello w\xef\xbf\xbd\xef\xbf\xbd\"}\n{\"text\": \"\"}\n"));
    el_free(o);
    snprintf(cmd, sizeof cmd, "'%s' detokenize --tokenizer fixtures/models/stories260K-hf --skip-special-tokens < '%s' > '%s'",
             cli, in, out);
    CHECK(sh(cmd));
    CHECK_OK(el_read_file(out, 0, &o, &ol));
    CHECK(o && !strcmp(o, "{\"text\": \"Hello w\xef\xbf\xbd\xef\xbf\xbd\"}\n{\"text\": \"\"}\n"));
    el_free(o);
    /* "\u0000" survives the JSON layer (HF: [64, 188, 65]) */
    const char *nul = "{\"text\": \"a\\u0000b\"}\n";
    el_write_file(in, nul, strlen(nul));
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer fixtures/models/sotu-qwen3 < '%s' > '%s'", cli, in, out);
    CHECK(sh(cmd));
    CHECK_OK(el_read_file(out, 0, &o, &ol));
    CHECK(o && !strcmp(o, "{\"ids\": [64, 188, 65]}\n"));
    el_free(o);
    /* malformed line -> error naming the line, exit 1 */
    const char *bad = "{\"text\": \"ok\"}\n{\"text\": \"broken\n";
    el_write_file(in, bad, strlen(bad));
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer fixtures/models/sotu-qwen3 < '%s' > '%s' 2> '%s'", cli, in, out, err);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    CHECK_OK(el_read_file(err, 0, &o, &ol));
    CHECK(o && strstr(o, "line 2") != NULL);
    el_free(o);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer fixtures/no-such-dir < '%s' > '%s' 2> '%s'", cli, in, out, err);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
}

int main(void) {
    const char *tmp = getenv("EDGELLM_TMP");
    snprintf(g_tmp, sizeof g_tmp, "%s/tokenizer", tmp && *tmp ? tmp : "/tmp/edgellm-test");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g_tmp);
    CHECK(sh(cmd));
    test_api();
    test_synthetic();
    test_bad_input();
    test_cli();
    char tpath[1200];
    snprintf(tpath, sizeof tpath, "%s/texts.jsonl", g_tmp);
    CHECKF(unxz("fixtures/tokenizers/texts.jsonl.xz", tpath), "cannot decompress texts (is xz installed?)");
    g_texts = read_lines(tpath, &g_ntexts);
    CHECK(g_texts && g_ntexts >= 20000);
    const char *only = getenv("EDGELLM_TOKENIZER_ONLY");
    for (size_t i = 0; g_texts && i < sizeof k_tokenizers / sizeof k_tokenizers[0]; i++)
        if (!only || strstr(only, k_tokenizers[i].name)) test_golden(&k_tokenizers[i]);
    /* EDGELLM_TOKENIZER_EXTRA="name=DIR,...": more tokenizers (DIR/tokenizer.json, DIR/goldens.jsonl.xz from
     * scripts/gen_tokenizer_goldens.mjs name=DIR), for checking tokenizers that are not fixtures */
    const char *extra = getenv("EDGELLM_TOKENIZER_EXTRA");
    char *ex = extra ? strdup(extra) : NULL, *save = NULL;
    for (char *tok = ex ? strtok_r(ex, ",", &save) : NULL; tok && g_texts; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        static char js[16][600], gd[16][600];
        static int ne = 0;
        if (ne >= 16) break;
        snprintf(js[ne], sizeof js[ne], "%s/tokenizer.json", eq + 1);
        snprintf(gd[ne], sizeof gd[ne], "%s/goldens.jsonl.xz", eq + 1);
        golden_tok g = {tok, js[ne], eq + 1, gd[ne]};
        ne++;
        test_golden(&g);
    }
    free(ex);
    if (g_texts) free_lines(g_texts, g_ntexts);
    return t_finish("test_tokenizer");
}
