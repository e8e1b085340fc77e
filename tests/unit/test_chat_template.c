/* test_chat_template.c - the Jinja chat-template engine against goldens rendered by jinja2 configured as
 * HF transformers (tests/chat/gen_chat_goldens.py), plus load-time and runtime error cases. */
#include "core/core.h"
#include "edgellm/edgellm.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *k_templates[] = {"qwen3", "llama3", "llama3_1", "gemma3", "deepseek_v3", "sotu_qwen3",
                                    "tiny_qwen2_5_vl", "feature_tools", "feature_vl",
                                    "feature_alternation", "feature_macros", NULL};

static cJSON *load_json(const char *path) {
    cJSON *j = NULL;
    if (el_json_load(path, 0, &j) != EDGELLM_STATUS_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, edgellm_last_error());
        return NULL;
    }
    return j;
}

static const char *sval(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void show_diff(const char *want, const char *got) {
    size_t i = 0;
    while (want[i] && got[i] && want[i] == got[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "    first difference at byte %zu\n    want: ...%.80s\n    got:  ...%.80s\n", i, want + from, got + from);
}

/* Renders one golden case; returns true when it matches (text or expected error). */
static bool run_case(const edgellm_chat_template *t, const cJSON *c, const cJSON *doc, const char *tname) {
    const char *id = sval(c, "id");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "messages");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(c, "extra");
    if (!m && sval(c, "conversation")) { /* template goldens share conversations and extras by name */
        m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "conversations"), sval(c, "conversation"));
        ex = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "extras"), sval(c, "extra"));
    } else if (!m) { /* or one set for the whole file */
        m = cJSON_GetObjectItemCaseSensitive(doc, "messages");
        ex = cJSON_GetObjectItemCaseSensitive(doc, "extra");
    }
    if (!m) {
        fprintf(stderr, "  %s %s: golden case has no messages\n", tname, id);
        return false;
    }
    /* messages_json / extra_json: the exact JSON text (int vs float literals matter) */
    char *msgs = sval(c, "messages_json") ? el_strdup(sval(c, "messages_json")) : cJSON_PrintUnformatted(m);
    char *extra = sval(c, "extra_json") ? el_strdup(sval(c, "extra_json")) : ex ? cJSON_PrintUnformatted(ex) : NULL;
    bool agp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
    char *out = NULL;
    edgellm_status st = edgellm_chat_template_render(t, msgs, agp, extra, &out);
    const char *want = sval(c, "rendered");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
    bool ok;
    if (want) {
        ok = st == EDGELLM_STATUS_OK && out && !strcmp(out, want);
        if (!ok) {
            fprintf(stderr, "  MISMATCH %s %s: status %d %s\n", tname, id, (int)st, st ? edgellm_last_error() : "");
            if (out) show_diff(want, out);
        }
    } else {
        const char *etype = sval(err, "type"), *emsg = sval(err, "message");
        ok = st != EDGELLM_STATUS_OK;
        /* raise_exception: the message must come through */
        if (ok && etype && !strcmp(etype, "TemplateError") && emsg) ok = strstr(edgellm_last_error(), emsg) != NULL;
        if (ok && st != EDGELLM_STATUS_INVALID_ARG && st != EDGELLM_STATUS_UNSUPPORTED) ok = false;
        if (!ok)
            fprintf(stderr, "  MISMATCH %s %s: expected error %s '%s', got status %d '%s' out=%.60s\n", tname, id,
                    etype ? etype : "?", emsg ? emsg : "", (int)st, edgellm_last_error(), out ? out : "");
    }
    edgellm_free(out);
    if (sval(c, "messages_json")) el_free(msgs);
    else cJSON_free(msgs);
    if (sval(c, "extra_json")) el_free(extra);
    else cJSON_free(extra);
    return ok;
}

static void test_templates(void) {
    for (int i = 0; k_templates[i]; i++) {
        char path[512];
        snprintf(path, sizeof path, "fixtures/chat_templates/%s.json", k_templates[i]);
        cJSON *fx = load_json(path);
        snprintf(path, sizeof path, "chat/goldens/%s.json", k_templates[i]);
        cJSON *g = load_json(path);
        CHECK(fx && g);
        if (!fx || !g) {
            cJSON_Delete(fx);
            cJSON_Delete(g);
            continue;
        }
        edgellm_chat_template *t = NULL;
        CHECK_OK(edgellm_chat_template_from_string(sval(fx, "chat_template"), sval(fx, "bos_token"), sval(fx, "eos_token"), &t));
        int total = 0, same = 0, errs = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(g, "cases")) {
            total++;
            if (!t) continue;
            bool ok = run_case(t, c, g, k_templates[i]);
            same += ok;
            errs += ok && !sval(c, "rendered");
            CHECK(ok);
        }
        printf("template %-16s %3d / %3d identical (%d of them expected errors)\n", k_templates[i], same, total, errs);
        CHECK(total >= 20);
        edgellm_chat_template_free(t);
        cJSON_Delete(fx);
        cJSON_Delete(g);
    }
}

/* Engine-format goldens: each case carries its own template. EDGELLM_CHAT_EXTRA_GOLDENS adds a file
 * (e.g. from tests/chat/fuzz_engine.py); cases marked compile_error may fail at load instead. */
static void test_engine_file(const char *path, const char *label) {
    cJSON *g = load_json(path);
    CHECK(g != NULL);
    if (!g) return;
    int total = 0, same = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(g, "cases")) {
        total++;
        edgellm_chat_template *t = NULL;
        const char *bos = sval(c, "bos_token") ? sval(c, "bos_token") : sval(g, "bos_token");
        const char *eos = sval(c, "eos_token") ? sval(c, "eos_token") : sval(g, "eos_token");
        edgellm_status st = edgellm_chat_template_from_string(sval(c, "template"), bos, eos, &t);
        if (st != EDGELLM_STATUS_OK && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "compile_error"))) {
            same++;
            continue;
        }
        if (st != EDGELLM_STATUS_OK) {
            fprintf(stderr, "  engine %s: load failed: %s\n", sval(c, "id"), edgellm_last_error());
            CHECK(st == EDGELLM_STATUS_OK);
            continue;
        }
        bool ok = run_case(t, c, g, label);
        same += ok;
        CHECK(ok);
        edgellm_chat_template_free(t);
    }
    printf("%-18s %3d / %3d identical\n", label, same, total);
    cJSON_Delete(g);
}

static void test_engine(void) {
    test_engine_file("chat/goldens/engine.json", "engine features");
    test_engine_file("chat/goldens/fuzz.json", "random templates");
    const char *extra = getenv("EDGELLM_CHAT_EXTRA_GOLDENS");
    if (extra && extra[0]) test_engine_file(extra, "extra goldens");
}

static void test_errors(void) {
    static const struct {
        const char *src, *needle;
        edgellm_status st;
    } bad[] = {
        {"a\n\n{% include 'x.jinja' %}", "unsupported tag 'include' at line 3", EDGELLM_STATUS_UNSUPPORTED},
        {"{% extends 'base' %}", "unsupported tag 'extends'", EDGELLM_STATUS_UNSUPPORTED},
        {"{% import 'm' as m %}", "unsupported tag 'import'", EDGELLM_STATUS_UNSUPPORTED},
        {"{% do x.append(1) %}", "unsupported tag 'do'", EDGELLM_STATUS_UNSUPPORTED},
        {"{{ x | nosuchfilter }}", "unsupported filter 'nosuchfilter'", EDGELLM_STATUS_UNSUPPORTED},
        {"{{ x is nosuchtest }}", "unsupported test 'nosuchtest'", EDGELLM_STATUS_UNSUPPORTED},
        {"{% for x in y recursive %}{% endfor %}", "recursive", EDGELLM_STATUS_UNSUPPORTED},
        {"{% if x %}", "endif", EDGELLM_STATUS_FORMAT},
        {"{{ 'unterminated }}", "unterminated string", EDGELLM_STATUS_FORMAT},
        {"{% endfor %}", "unexpected 'endfor'", EDGELLM_STATUS_FORMAT},
        {"{{ (1 + }}", "", EDGELLM_STATUS_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        edgellm_chat_template *t = NULL;
        edgellm_status st = edgellm_chat_template_from_string(bad[i].src, NULL, NULL, &t);
        CHECKF(st == bad[i].st && strstr(edgellm_last_error(), bad[i].needle), "%s -> %d '%s'", bad[i].src, (int)st,
               edgellm_last_error());
        CHECK(t == NULL);
        edgellm_chat_template_free(t);
    }
    /* raise_exception surfaces its message; malformed messages / extra JSON */
    edgellm_chat_template *t = NULL;
    CHECK_OK(edgellm_chat_template_from_string(
        "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('bad role: ' + m.role) }}"
        "{% endif %}{{ m.content }}{% endfor %}", NULL, NULL, &t));
    char *out = NULL;
    edgellm_status st = edgellm_chat_template_render(t, "[{\"role\":\"robot\",\"content\":\"x\"}]", false, NULL, &out);
    CHECKF(st == EDGELLM_STATUS_INVALID_ARG && strstr(edgellm_last_error(), "bad role: robot"), "%d %s", (int)st, edgellm_last_error());
    CHECK(out == NULL);
    st = edgellm_chat_template_render(t, "[{\"role\":\"user\",", false, NULL, &out);
    CHECK(st == EDGELLM_STATUS_INVALID_ARG);
    st = edgellm_chat_template_render(t, "{\"role\":\"user\"}", false, NULL, &out);
    CHECK(st == EDGELLM_STATUS_INVALID_ARG);
    st = edgellm_chat_template_render(t, "[]", false, "[1]", &out);
    CHECK(st == EDGELLM_STATUS_INVALID_ARG);
    CHECK_OK(edgellm_chat_template_render(t, "[{\"role\":\"user\",\"content\":\"hi\"}]", false, "{}", &out));
    CHECK(out && !strcmp(out, "hi"));
    edgellm_free(out);
    out = NULL;
    CHECK_OK(edgellm_chat_template_render(t, "[{\"role\":\"user\",\"content\":\"hi\"}]", false, "null", &out));
    CHECK(out && !strcmp(out, "hi"));
    edgellm_free(out);
    out = NULL;
    st = edgellm_chat_template_render(t, "[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]", false, NULL, &out);
    CHECKF(st == EDGELLM_STATUS_UNSUPPORTED && !out, "%d", (int)st);
    CHECK_OK(edgellm_chat_template_render(t, "[{\"role\":\"user\",\"content\":\"C:\\\\u0000\"}]", false, NULL, &out));
    CHECKF(out && !strcmp(out, "C:\\u0000"), "%s", out ? out : "");
    edgellm_free(out);
    out = NULL;
    edgellm_chat_template_free(t);
    /* strftime_now gives today's date in the requested format */
    CHECK_OK(edgellm_chat_template_from_string("{{ strftime_now('%Y') | length }}", NULL, NULL, &t));
    CHECK_OK(edgellm_chat_template_render(t, "[]", false, NULL, &out));
    CHECK(out && !strcmp(out, "4"));
    edgellm_free(out);
    edgellm_chat_template_free(t);
    /* resource limits: deep nesting refused at load, runaway recursion and self-referencing values at render */
    {
        char deep[1024] = "{{ ";
        for (int i = 0; i < 300; i++) strcat(deep, "(");
        strcat(deep, "1");
        for (int i = 0; i < 300; i++) strcat(deep, ")");
        strcat(deep, " }}");
        st = edgellm_chat_template_from_string(deep, NULL, NULL, &t);
        CHECKF(st == EDGELLM_STATUS_FORMAT && strstr(edgellm_last_error(), "nested too deeply"), "%d %s", (int)st, edgellm_last_error());
        static const struct {
            const char *src;
            edgellm_status st;
        } rt[] = {
            {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", EDGELLM_STATUS_LIMIT},
            {"{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}", EDGELLM_STATUS_LIMIT},
            {"{{ 9223372036854775807 + 1 }}", EDGELLM_STATUS_UNSUPPORTED},
            {"{{ 3037000500 * 3037000500 }}", EDGELLM_STATUS_UNSUPPORTED},
        };
        for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) {
            t = NULL;
            CHECK_OK(edgellm_chat_template_from_string(rt[i].src, NULL, NULL, &t));
            out = NULL;
            st = t ? edgellm_chat_template_render(t, "[]", false, NULL, &out) : EDGELLM_STATUS_OK;
            CHECKF(st == rt[i].st && !out, "%s -> %d %s", rt[i].src, (int)st, edgellm_last_error());
            edgellm_chat_template_free(t);
        }
    }
}


static void write_text(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_OK(el_write_file(path, text, strlen(text)));
}

static char *render_dir(const char *dir, const char *msgs, bool agp, const char *extra, edgellm_status *st) {
    edgellm_chat_template *t = NULL;
    char *out = NULL;
    *st = edgellm_chat_template_load(dir, &t);
    if (*st == EDGELLM_STATUS_OK) *st = edgellm_chat_template_render(t, msgs, agp, extra, &out);
    edgellm_chat_template_free(t);
    return out;
}

static void test_load_dirs(void) {
    const char *tmp = getenv("EDGELLM_TMP");
    char base[512];
    snprintf(base, sizeof base, "%s/chat_template_test", tmp && tmp[0] ? tmp : "/tmp");
    el_rm_rf(base);
    char d[8][600];
    for (int i = 0; i < 8; i++) {
        snprintf(d[i], sizeof d[i], "%s/d%d", base, i);
        CHECK_OK(el_mkdir_p(d[i]));
    }
    const char *msgs = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    edgellm_status st;
    char *out;
    /* tokenizer_config.json: template string, bos as an AddedToken object */
    write_text(d[0], "tokenizer_config.json",
               "{\"bos_token\":{\"__type\":\"AddedToken\",\"content\":\"<B>\"},\"eos_token\":\"<E>\","
               "\"chat_template\":\"{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}\"}");
    out = render_dir(d[0], msgs, false, NULL, &st);
    CHECKF(st == EDGELLM_STATUS_OK && out && !strcmp(out, "<B>hi<E>"), "%d %s", (int)st, out ? out : edgellm_last_error());
    edgellm_free(out);
    /* chat_template.jinja wins over tokenizer_config.json's template; tokens still from the config */
    write_text(d[1], "tokenizer_config.json", "{\"eos_token\":\"<E>\",\"chat_template\":\"WRONG\"}");
    write_text(d[1], "chat_template.jinja", "J{{ messages[0].content }}{{ eos_token }}{{ bos_token }}\n");
    out = render_dir(d[1], msgs, false, NULL, &st);
    CHECKF(st == EDGELLM_STATUS_OK && out && !strcmp(out, "Jhi<E>"), "%d %s", (int)st, out ? out : edgellm_last_error());
    edgellm_free(out);
    /* chat_template.json */
    write_text(d[2], "chat_template.json", "{\"chat_template\":\"C{{ add_generation_prompt }}\"}");
    out = render_dir(d[2], msgs, true, NULL, &st);
    CHECKF(st == EDGELLM_STATUS_OK && out && !strcmp(out, "CTrue"), "%d %s", (int)st, out ? out : edgellm_last_error());
    edgellm_free(out);
    /* list of named templates: "default" */
    write_text(d[3], "tokenizer_config.json",
               "{\"chat_template\":[{\"name\":\"tool_use\",\"template\":\"T\"},{\"name\":\"default\",\"template\":\"D{{ x }}\"}]}");
    out = render_dir(d[3], msgs, true, "{\"x\":7}", &st);
    CHECKF(st == EDGELLM_STATUS_OK && out && !strcmp(out, "D7"), "%d %s", (int)st, out ? out : edgellm_last_error());
    edgellm_free(out);
    /* processed_chat_template.json takes precedence and concatenates */
    write_text(d[4], "chat_template.jinja", "WRONG");
    write_text(d[4], "processed_chat_template.json",
               "{\"roles\":{\"system\":{\"prefix\":\"<|im_start|>system\\n\",\"suffix\":\"<|im_end|>\\n\"},"
               "\"user\":{\"prefix\":\"<|im_start|>user\\n\",\"suffix\":\"<|im_end|>\\n\"},"
               "\"assistant\":{\"prefix\":\"<|im_start|>assistant\\n\",\"suffix\":\"<|im_end|>\\n\"}},"
               "\"content_types\":{\"image\":{\"format\":\"<|vision_start|><|image_pad|><|vision_end|>\"}},"
               "\"generation_prompt\":\"<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n\","
               "\"generation_prompt_thinking\":\"<|im_start|>assistant\\n\",\"default_system_prompt\":\"Be nice.\"}");
    out = render_dir(d[4], msgs, true, NULL, &st);
    CHECKF(st == EDGELLM_STATUS_OK && out &&
               !strcmp(out, "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                            "<|im_start|>assistant\n<think>\n\n</think>\n\n"),
           "%d %s", (int)st, out ? out : edgellm_last_error());
    edgellm_free(out);
    out = render_dir(d[4],
                     "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":[{\"type\":\"image\"},"
                     "{\"type\":\"text\",\"text\":\"what?\"}]},{\"role\":\"assistant\",\"content\":\"a\"}]",
                     true, "{\"enable_thinking\":true}", &st);
    CHECKF(st == EDGELLM_STATUS_OK && out &&
               !strcmp(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                            "what?<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n<|im_start|>assistant\n"),
           "%d %s", (int)st, out ? out : edgellm_last_error());
    edgellm_free(out);
    out = render_dir(d[4], "[{\"role\":\"robot\",\"content\":\"x\"}]", false, NULL, &st);
    CHECK(st == EDGELLM_STATUS_INVALID_ARG && !out);
    /* nothing there -> IO; unsupported construct -> UNSUPPORTED at load */
    out = render_dir(d[5], msgs, false, NULL, &st);
    CHECKF(st == EDGELLM_STATUS_IO && !out, "%d", (int)st);
    write_text(d[6], "chat_template.jinja", "ok\n{% autoescape true %}x{% endautoescape %}");
    edgellm_chat_template *t = NULL;
    st = edgellm_chat_template_load(d[6], &t);
    CHECKF(st == EDGELLM_STATUS_UNSUPPORTED && strstr(edgellm_last_error(), "unsupported tag 'autoescape' at line 2"), "%d %s",
           (int)st, edgellm_last_error());
    CHECK(t == NULL);
    /* CLI: one JSON object, then JSON lines */
    const char *cli = getenv("EDGELLM_CLI");
    if (cli && cli[0]) {
        write_text(d[7], "one.json", "{\n \"messages\": [{\"role\": \"user\", \"content\": \"h\\u00e9\\n\"}],\n"
                                     " \"add_generation_prompt\": true, \"extra\": {\"x\": 1}\n}\n");
        write_text(d[7], "lines.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}\n\n"
                                        "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],\"extra\":{\"x\":2}}\n");
        write_text(d[0], "chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}|{{ add_generation_prompt }}|{{ x }}");
        const char *inputs[] = {"one.json", "lines.jsonl"};
        const char *want[] = {"{\"rendered\":\"h\xc3\xa9\\n|True|1\"}\n", "{\"rendered\":\"a|False|\"}\n{\"rendered\":\"b|False|2\"}\n"};
        for (int i = 0; i < 2; i++) {
            char cmd[2048];
            snprintf(cmd, sizeof cmd, "'%s' chat-template --tokenizer '%s' < '%s/%s'", cli, d[0], d[7], inputs[i]);
            FILE *p = popen(cmd, "r");
            CHECK(p != NULL);
            if (!p) continue;
            char buf[4096];
            size_t n = fread(buf, 1, sizeof buf - 1, p);
            buf[n] = 0;
            int rc = pclose(p);
            CHECKF(rc == 0 && !strcmp(buf, want[i]), "cli %s: rc %d output '%s'", inputs[i], rc, buf);
        }
    } else {
        printf("EDGELLM_CLI not set: CLI checks skipped\n");
    }
    el_rm_rf(base);
}

/* One template rendered from several threads at once gives the same text (templates are read-only while
 * rendering; all render state is per call). */
typedef struct thr_arg {
    const edgellm_chat_template *t;
    const char *msgs, *want;
    int bad;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    for (int i = 0; i < 40; i++) {
        char *out = NULL;
        if (edgellm_chat_template_render(a->t, a->msgs, true, "{\"enable_thinking\":false,\"tools\":[{\"type\":\"function\","
                                         "\"function\":{\"name\":\"f\",\"parameters\":{\"x\":1.5}}}]}", &out) != EDGELLM_STATUS_OK ||
            !out || strcmp(out, a->want))
            a->bad++;
        edgellm_free(out);
    }
    return NULL;
}

static void test_threads(void) {
    cJSON *fx = load_json("fixtures/chat_templates/qwen3.json");
    CHECK(fx != NULL);
    if (!fx) return;
    edgellm_chat_template *t = NULL;
    CHECK_OK(edgellm_chat_template_from_string(sval(fx, "chat_template"), NULL, sval(fx, "eos_token"), &t));
    const char *msgs = "[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"q\"},"
                       "{\"role\":\"assistant\",\"content\":\"<think>\\nr\\n</think>\\n\\na\"},{\"role\":\"user\",\"content\":\"q2\"}]";
    char *want = NULL;
    CHECK_OK(edgellm_chat_template_render(t, msgs, true, "{\"enable_thinking\":false,\"tools\":[{\"type\":\"function\","
                                          "\"function\":{\"name\":\"f\",\"parameters\":{\"x\":1.5}}}]}", &want));
    CHECK(want && strstr(want, "\"x\": 1.5") && strstr(want, "<think>\n\n</think>"));
    if (t && want) {
        pthread_t th[4];
        thr_arg args[4];
        for (int i = 0; i < 4; i++) {
            args[i] = (thr_arg){t, msgs, want, 0};
            CHECK(pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CHECKF(args[i].bad == 0, "thread %d: %d bad renders", i, args[i].bad);
        }
    }
    edgellm_free(want);
    edgellm_chat_template_free(t);
    cJSON_Delete(fx);
}

int main(void) {
    test_templates();
    test_engine();
    test_errors();
    test_load_dirs();
    test_threads();
    return t_finish("test_chat_template");
}
