/* test_chat_template.c - the Jinja chat-template engine against goldens rendered by jinja2 configured as
 * HF transformers (tests/chat/gen_chat_goldens.py), plus load-time and runtime error cases. */
#include "core/core.h"
#include "edgellm/edgellm.h"
#include "test.h"

#include <cjson/cJSON.h>
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
    if (!m) { /* template goldens share conversations and extras by name */
        m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "conversations"), sval(c, "conversation"));
        ex = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "extras"), sval(c, "extra"));
    }
    if (!m) {
        fprintf(stderr, "  %s %s: golden case has no messages\n", tname, id);
        return false;
    }
    char *msgs = cJSON_PrintUnformatted(m);
    char *extra = ex ? cJSON_PrintUnformatted(ex) : NULL;
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
    cJSON_free(msgs);
    cJSON_free(extra);
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

static void test_engine(void) {
    cJSON *g = load_json("chat/goldens/engine.json");
    CHECK(g != NULL);
    if (!g) return;
    int total = 0, same = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(g, "cases")) {
        total++;
        edgellm_chat_template *t = NULL;
        edgellm_status st = edgellm_chat_template_from_string(sval(c, "template"), sval(c, "bos_token"), sval(c, "eos_token"), &t);
        if (st != EDGELLM_STATUS_OK) {
            fprintf(stderr, "  engine %s: load failed: %s\n", sval(c, "id"), edgellm_last_error());
            CHECK(st == EDGELLM_STATUS_OK);
            continue;
        }
        bool ok = run_case(t, c, g, "engine");
        same += ok;
        CHECK(ok);
        edgellm_chat_template_free(t);
    }
    printf("engine features    %3d / %3d identical\n", same, total);
    cJSON_Delete(g);
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
    edgellm_chat_template_free(t);
    /* strftime_now gives today's date in the requested format */
    CHECK_OK(edgellm_chat_template_from_string("{{ strftime_now('%Y') | length }}", NULL, NULL, &t));
    CHECK_OK(edgellm_chat_template_render(t, "[]", false, NULL, &out));
    CHECK(out && !strcmp(out, "4"));
    edgellm_free(out);
    edgellm_chat_template_free(t);
}

int main(void) {
    test_templates();
    test_engine();
    test_errors();
    return t_finish("test_chat_template");
}
