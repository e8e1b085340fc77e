/*
 * cmd_run.c - `edgellm run`: the TensorRT Edge-LLM llm_inference input/output JSON format
 * (REFERENCE.md §3.5): same field names, defaults, limits and batching rules.
 */
#include "cli.h"
#include "core/core.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH_JSON 16
#define MAX_MESSAGES 64
#define MAX_CONTENT_ITEMS 16
#define MAX_CONTENT_BYTES (128 * 1024)
#define MAX_INPUT_FILE (100u * 1024 * 1024)

static const char *k_help =
    "usage: edgellm run --engine DIR --input IN.json --output OUT.json [options]\n"
    "  --batch-size N            override the input's batch_size\n"
    "  --max-generate-length N   override the input's max_generate_length\n"
    "  --dump-profile            print prefill/generation metrics to stdout\n"
    "  --profile-output F.json   write the metrics as JSON\n"
    "  --warmup N                run the first batch N times before measuring\n"
    "  --threads N               CPU threads (default: all cores)\n"
    "input: {\"batch_size\":1, \"temperature\":1.0, \"top_p\":0.8, \"top_k\":50, \"max_generate_length\":256,\n"
    "        \"apply_chat_template\":true, \"add_generation_prompt\":true, \"enable_thinking\":false,\n"
    "        \"seed\":42, \"requests\":[{\"messages\":[{\"role\":\"user\",\"content\":\"...\"}]}]}\n";

typedef struct run_cfg {
    int64_t batch_size, top_k, max_gen;
    double temperature, top_p;
    int64_t seed;
    bool apply_tmpl, add_gen, thinking;
} run_cfg;

typedef struct req_in {
    cJSON *messages;  /* normalised: [{role, content:[{type:text,text}]}] (owned) */
    char *formatted;  /* full prompt text (el_malloc) */
    char *formatted_sys;
    int32_t *ids;
    size_t n_ids;
} req_in;

/* Validates one message and returns a normalised copy with content as a typed array. */
static edgellm_status norm_message(const cJSON *m, long ri, cJSON **out) {
    *out = NULL;
    if (!cJSON_IsObject(m)) return el_err(EDGELLM_STATUS_FORMAT, "request %ld: message is not an object", ri);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsString(role)) return el_err(EDGELLM_STATUS_FORMAT, "request %ld: message without a string 'role'", ri);
    if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
        strcmp(role->valuestring, "assistant"))
        return el_err(EDGELLM_STATUS_FORMAT, "unknown message role '%s' in request %ld (system, user or assistant)", role->valuestring, ri);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "role", role->valuestring);
    cJSON_AddItemToObject(o, "content", arr);
    if (cJSON_IsString(content)) {
        if (strlen(content->valuestring) > MAX_CONTENT_BYTES) {
            cJSON_Delete(o);
            return el_err(EDGELLM_STATUS_FORMAT, "request %ld: content item larger than 128 KB", ri);
        }
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "type", "text");
        cJSON_AddStringToObject(it, "text", content->valuestring);
        cJSON_AddItemToArray(arr, it);
    } else if (cJSON_IsArray(content)) {
        if (cJSON_GetArraySize(content) > MAX_CONTENT_ITEMS) {
            cJSON_Delete(o);
            return el_err(EDGELLM_STATUS_FORMAT, "request %ld: more than 16 content items in a message", ri);
        }
        const cJSON *c;
        cJSON_ArrayForEach(c, content) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
            if (!cJSON_IsString(type)) {
                cJSON_Delete(o);
                return el_err(EDGELLM_STATUS_FORMAT, "request %ld: content item without a string 'type'", ri);
            }
            if (!strcmp(type->valuestring, "text")) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
                if (!cJSON_IsString(t) || strlen(t->valuestring) > MAX_CONTENT_BYTES) {
                    cJSON_Delete(o);
                    return el_err(EDGELLM_STATUS_FORMAT, "request %ld: text item needs a string 'text' of at most 128 KB", ri);
                }
                cJSON *it = cJSON_CreateObject();
                cJSON_AddStringToObject(it, "type", "text");
                cJSON_AddStringToObject(it, "text", t->valuestring);
                cJSON_AddItemToArray(arr, it);
            } else if (!strcmp(type->valuestring, "image") || !strcmp(type->valuestring, "video") ||
                       !strcmp(type->valuestring, "audio")) {
                cJSON_Delete(o);
                return el_err(EDGELLM_STATUS_UNSUPPORTED,
                              "request %ld: '%s' content needs a multimodal engine, which this engine is not", ri,
                              type->valuestring);
            } else {
                edgellm_status st = el_err(EDGELLM_STATUS_FORMAT, "unknown content type '%s' in request %ld",
                                           type->valuestring, ri);
                cJSON_Delete(o);
                return st;
            }
        }
    } else {
        cJSON_Delete(o);
        return el_err(EDGELLM_STATUS_FORMAT, "request %ld: 'content' must be a string or an array", ri);
    }
    *out = o;
    return EDGELLM_STATUS_OK;
}

/* messages with content flattened to strings, as HF chat templates expect for text-only models */
static char *messages_for_template(const cJSON *msgs, int upto /* -1 = all */) {
    cJSON *a = cJSON_CreateArray();
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, msgs) {
        if (upto >= 0 && i >= upto) break;
        el_buf text = {0};
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "content")) {
            el_buf_append_str(&text, cJSON_GetObjectItemCaseSensitive(it, "text")->valuestring);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring);
        cJSON_AddStringToObject(o, "content", text.data ? text.data : "");
        el_buf_free(&text);
        cJSON_AddItemToArray(a, o);
        i++;
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static edgellm_status format_request(edgellm_runtime *rt, const run_cfg *cfg, req_in *r, long ri) {
    const edgellm_tokenizer *tok = edgellm_runtime_tokenizer(rt);
    const edgellm_chat_template *tmpl = edgellm_runtime_chat_template(rt);
    char extra[64];
    snprintf(extra, sizeof extra, "{\"enable_thinking\": %s}", cfg->thinking ? "true" : "false");
    bool add_special;
    if (cfg->apply_tmpl && tmpl) {
        char *mj = messages_for_template(r->messages, -1);
        edgellm_status s = edgellm_chat_template_render(tmpl, mj, cfg->add_gen, extra, &r->formatted);
        free(mj);
        if (s < 0) return el_err_prefix(s, "request %ld: chat template", ri);
        /* the system part alone, as the seed reports it */
        int n_sys = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, r->messages) {
            if (strcmp(cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring, "system")) break;
            n_sys++;
        }
        if (n_sys > 0) {
            mj = messages_for_template(r->messages, n_sys);
            s = edgellm_chat_template_render(tmpl, mj, false, extra, &r->formatted_sys);
            free(mj);
            if (s < 0) r->formatted_sys = NULL;
        }
        add_special = false; /* HF apply_chat_template(tokenize=True) adds no special tokens */
    } else {
        if (cfg->apply_tmpl)
            EL_LOG_WARN("request %ld: the engine has no chat template; using the message text as the prompt", ri);
        el_buf b = {0};
        const cJSON *m, *it;
        cJSON_ArrayForEach(m, r->messages) {
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "content")) {
                EL_TRY(el_buf_append_str(&b, cJSON_GetObjectItemCaseSensitive(it, "text")->valuestring));
            }
        }
        r->formatted = b.data ? b.data : el_strdup("");
        add_special = true;
    }
    EL_TRY(edgellm_tokenizer_encode(tok, r->formatted, strlen(r->formatted), add_special, &r->ids, &r->n_ids));
    if (r->n_ids == 0) {
        int32_t bos = edgellm_runtime_bos_id(rt);
        if (bos < 0) return el_err(EDGELLM_STATUS_INVALID_ARG, "request %ld: empty prompt and no BOS token", ri);
        edgellm_free(r->ids);
        r->ids = el_malloc(sizeof(int32_t));
        if (!r->ids) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory");
        r->ids[0] = bos;
        r->n_ids = 1;
    }
    return EDGELLM_STATUS_OK;
}

static edgellm_status parse_cfg(const cJSON *root, run_cfg *c) {
    int64_t v;
    bool p;
    EL_TRY(el_json_int(root, "batch_size", 1, &c->batch_size, NULL));
    EL_TRY(el_json_num(root, "temperature", 1.0, &c->temperature, NULL));
    EL_TRY(el_json_num(root, "top_p", 0.8, &c->top_p, NULL));
    EL_TRY(el_json_int(root, "top_k", 50, &c->top_k, NULL));
    EL_TRY(el_json_int(root, "max_generate_length", 256, &c->max_gen, NULL));
    EL_TRY(el_json_int(root, "seed", 42, &v, &p));
    c->seed = v;
    EL_TRY(el_json_bool(root, "apply_chat_template", true, &c->apply_tmpl, NULL));
    EL_TRY(el_json_bool(root, "add_generation_prompt", true, &c->add_gen, NULL));
    EL_TRY(el_json_bool(root, "enable_thinking", false, &c->thinking, NULL));
    if (c->batch_size < 1 || c->batch_size > MAX_BATCH_JSON)
        return el_err(EDGELLM_STATUS_LIMIT, "batch_size %lld out of range 1..%d", (long long)c->batch_size,
                      MAX_BATCH_JSON);
    if (c->temperature < 0) return el_err(EDGELLM_STATUS_FORMAT, "temperature must be >= 0");
    if (c->top_p <= 0 || c->top_p > 1) return el_err(EDGELLM_STATUS_FORMAT, "top_p must be in (0, 1]");
    if (c->top_k < 0) return el_err(EDGELLM_STATUS_FORMAT, "top_k must be >= 0");
    if (c->max_gen < 0) return el_err(EDGELLM_STATUS_FORMAT, "max_generate_length must be >= 0");
    if (c->seed < 0) return el_err(EDGELLM_STATUS_FORMAT, "seed must be >= 0");
    return EDGELLM_STATUS_OK;
}

static void req_free(req_in *r) {
    cJSON_Delete(r->messages);
    el_free(r->formatted);
    edgellm_free(r->formatted_sys);
    edgellm_free(r->ids);
}

static char *decode_text(const edgellm_tokenizer *tok, const int32_t *ids, int32_t n) {
    char *t = NULL;
    size_t len;
    if (edgellm_tokenizer_decode(tok, ids, (size_t)n, true, &t, &len) != EDGELLM_STATUS_OK) return NULL;
    return t;
}

typedef struct prof_acc {
    double prefill_ms, decode_ms;
    int64_t prefill_tokens, decode_tokens, runs;
} prof_acc;

int cmd_run(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(k_help, stdout);
        return 0;
    }
    const char *engine = NULL, *in = NULL, *outp = NULL, *prof_out = NULL;
    int64_t bs_over = -1, mg_over = -1, warmup = 0, threads = 0;
    bool dump = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int err = 0;
        if (cli_flag_val(argc, argv, &i, "--engine", &v, &err)) engine = v;
        else if (cli_flag_val(argc, argv, &i, "--input", &v, &err)) in = v;
        else if (cli_flag_val(argc, argv, &i, "--output", &v, &err)) outp = v;
        else if (cli_flag_val(argc, argv, &i, "--profile-output", &v, &err)) prof_out = v;
        else if (cli_flag_val(argc, argv, &i, "--batch-size", &v, &err)) {
            if (!err && !cli_parse_i64(v, 1, MAX_BATCH_JSON, &bs_over))
                return cli_usage_error("--batch-size needs an integer in 1..%d", MAX_BATCH_JSON);
        } else if (cli_flag_val(argc, argv, &i, "--max-generate-length", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 1 << 24, &mg_over))
                return cli_usage_error("--max-generate-length needs an integer >= 0");
        } else if (cli_flag_val(argc, argv, &i, "--warmup", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 1000, &warmup)) return cli_usage_error("--warmup needs an integer >= 0");
        } else if (cli_flag_val(argc, argv, &i, "--threads", &v, &err)) {
            if (!err && !cli_parse_i64(v, 0, 1024, &threads)) return cli_usage_error("--threads needs an integer >= 0");
        } else if (!strcmp(argv[i], "--dump-profile"))
            dump = true;
        else
            return cli_usage_error("unknown option %s (see edgellm run --help)", argv[i]);
        if (err) return 2;
    }
    if (!engine || !in || !outp) return cli_usage_error("run needs --engine, --input and --output");

    cJSON *root = NULL;
    if (el_json_load(in, MAX_INPUT_FILE, &root) != EDGELLM_STATUS_OK) return cli_fail("reading the input file");
    int rc = 1;
    req_in *reqs = NULL;
    int n_req = 0;
    edgellm_runtime *rt = NULL;
    cJSON *out = NULL;
    run_cfg cfg;
    if (!cJSON_IsObject(root)) {
        el_err(EDGELLM_STATUS_FORMAT, "the input must be a JSON object");
        rc = cli_fail(in);
        goto end;
    }
    if (parse_cfg(root, &cfg) < 0) {
        rc = cli_fail(in);
        goto end;
    }
    if (bs_over > 0) cfg.batch_size = bs_over;
    if (mg_over >= 0) cfg.max_gen = mg_over;
    const cJSON *jreqs = cJSON_GetObjectItemCaseSensitive(root, "requests");
    if (!cJSON_IsArray(jreqs) || cJSON_GetArraySize(jreqs) == 0) {
        fprintf(stderr, "error: %s: 'requests' must be a non-empty array\n", in);
        goto end;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "available_lora_weights") &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "available_lora_weights")) > 0)
        EL_LOG_WARN("LoRA adapters are not supported by this build yet; ignoring available_lora_weights");
    n_req = cJSON_GetArraySize(jreqs);
    reqs = calloc((size_t)n_req, sizeof *reqs);
    if (!reqs) goto end;
    {
        const cJSON *r;
        int ri = 0;
        cJSON_ArrayForEach(r, jreqs) {
            const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r, "messages");
            if (!cJSON_IsObject(r) || !cJSON_IsArray(msgs)) {
                fprintf(stderr, "error: %s: request %d needs a 'messages' array\n", in, ri);
                goto end;
            }
            if (cJSON_GetArraySize(msgs) > MAX_MESSAGES) {
                fprintf(stderr, "error: %s: request %d has more than %d messages\n", in, ri, MAX_MESSAGES);
                goto end;
            }
            reqs[ri].messages = cJSON_CreateArray();
            const cJSON *m;
            cJSON_ArrayForEach(m, msgs) {
                cJSON *nm;
                if (norm_message(m, ri, &nm) < 0) {
                    rc = cli_fail(in);
                    goto end;
                }
                cJSON_AddItemToArray(reqs[ri].messages, nm);
            }
            ri++;
        }
    }
    edgellm_runtime_params rp = edgellm_runtime_params_default();
    rp.n_threads = (int32_t)threads;
    if (edgellm_runtime_create(engine, &rp, &rt) != EDGELLM_STATUS_OK) {
        rc = cli_fail("loading the engine");
        goto end;
    }
    if (!edgellm_runtime_tokenizer(rt)) {
        fprintf(stderr, "error: engine %s has no tokenizer; `run` needs one\n", engine);
        goto end;
    }
    edgellm_engine_info info;
    edgellm_runtime_get_info(rt, &info);
    if (cfg.batch_size > info.max_batch_size) {
        fprintf(stderr, "error: batch_size %lld exceeds the engine's max batch size %d\n", (long long)cfg.batch_size,
                info.max_batch_size);
        goto end;
    }
    for (int i = 0; i < n_req; i++) {
        if (format_request(rt, &cfg, &reqs[i], i) < 0) {
            rc = cli_fail("preparing the requests");
            goto end;
        }
        if ((int64_t)reqs[i].n_ids > info.max_input_len) {
            fprintf(stderr, "error: request %d: prompt of %zu tokens exceeds the engine's max input length %d\n", i,
                    reqs[i].n_ids, info.max_input_len);
            goto end;
        }
    }
    edgellm_sampling_params sp = {(float)cfg.temperature, (int32_t)cfg.top_k, (float)cfg.top_p, (uint64_t)cfg.seed};
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "input_file", in);
    cJSON *responses = cJSON_AddArrayToObject(out, "responses");
    prof_acc acc = {0};
    bool any_failed = false;
    for (int b0 = 0, bi = 0; b0 < n_req; b0 += (int)cfg.batch_size, bi++) {
        int nb = n_req - b0 < cfg.batch_size ? n_req - b0 : (int)cfg.batch_size;
        edgellm_request br[MAX_BATCH_JSON];
        edgellm_result res[MAX_BATCH_JSON];
        memset(res, 0, sizeof res);
        for (int j = 0; j < nb; j++) {
            memset(&br[j], 0, sizeof br[j]);
            br[j].prompt = reqs[b0 + j].ids;
            br[j].n_prompt = (int32_t)reqs[b0 + j].n_ids;
            br[j].max_new_tokens = (int32_t)cfg.max_gen;
        }
        for (int64_t w = 0; bi == 0 && w < warmup; w++) {
            if (edgellm_runtime_generate(rt, br, nb, &sp, NULL, NULL, res) == EDGELLM_STATUS_OK)
                for (int j = 0; j < nb; j++) edgellm_result_clear(&res[j]);
        }
        edgellm_runtime_reset_metrics(rt);
        edgellm_status s = edgellm_runtime_generate(rt, br, nb, &sp, NULL, NULL, res);
        edgellm_metrics m;
        edgellm_runtime_get_metrics(rt, &m);
        acc.prefill_ms += m.prefill_ms;
        acc.decode_ms += m.decode_ms;
        acc.prefill_tokens += m.prefill_tokens;
        acc.decode_tokens += m.decode_tokens;
        acc.runs++;
        if (s != EDGELLM_STATUS_OK) {
            fprintf(stderr, "error: batch %d failed: %s\n", bi, edgellm_last_error());
            any_failed = true;
        }
        for (int j = 0; j < nb; j++) {
            req_in *r = &reqs[b0 + j];
            cJSON *o = cJSON_CreateObject();
            char *text = s == EDGELLM_STATUS_OK ? decode_text(edgellm_runtime_tokenizer(rt), res[j].ids, res[j].n_ids)
                                                : NULL;
            if (s == EDGELLM_STATUS_OK && !text) any_failed = true;
            cJSON_AddStringToObject(o, "output_text", text ? text : "edgellm cannot handle this request. Fails.");
            edgellm_free(text);
            cJSON_AddNumberToObject(o, "request_idx", b0 + j);
            cJSON_AddNumberToObject(o, "batch_idx", bi);
            cJSON_AddItemToObject(o, "messages", cJSON_Duplicate(r->messages, true));
            cJSON_AddStringToObject(o, "formatted_system_prompt", r->formatted_sys ? r->formatted_sys : "");
            cJSON_AddStringToObject(o, "formatted_complete_request", r->formatted);
            cJSON *ids = cJSON_AddArrayToObject(o, "output_ids");
            for (int32_t t = 0; s == EDGELLM_STATUS_OK && t < res[j].n_ids; t++)
                cJSON_AddItemToArray(ids, cJSON_CreateNumber(res[j].ids[t]));
            cJSON_AddStringToObject(o, "finish_reason",
                                    s != EDGELLM_STATUS_OK ? "error"
                                    : res[j].finish == EDGELLM_FINISH_STOP ? "stop"
                                                                          : "length");
            cJSON_AddItemToArray(responses, o);
            edgellm_result_clear(&res[j]);
        }
    }
    /* write atomically: a reader never sees a half-written output file */
    {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", outp);
        if (el_json_save(out, tmp) < 0 || rename(tmp, outp) != 0) {
            remove(tmp);
            rc = cli_fail("writing the output file");
            goto end;
        }
    }
    edgellm_metrics mm;
    edgellm_runtime_get_metrics(rt, &mm);
    double pf_tps = acc.prefill_ms > 0 ? acc.prefill_tokens * 1e3 / acc.prefill_ms : 0;
    double dc_tps = acc.decode_ms > 0 ? acc.decode_tokens * 1e3 / acc.decode_ms : 0;
    if (dump) {
        printf("=== LLM Prefill ===\n  Reused Tokens: 0\n  Computed Tokens: %lld\n  Average Tokens per Run: %.1f\n"
               "  Average Time per Run: %.3f ms\n  Tokens/Second: %.1f\n  Average Time per Token: %.3f ms\n",
               (long long)acc.prefill_tokens, acc.runs ? (double)acc.prefill_tokens / acc.runs : 0,
               acc.runs ? acc.prefill_ms / acc.runs : 0, pf_tps,
               acc.prefill_tokens ? acc.prefill_ms / acc.prefill_tokens : 0);
        printf("=== LLM Generation (Excluding sampling after prefill) ===\n  Generated Tokens: %lld\n"
               "  Average Tokens per Run: %.1f\n  Tokens/Second: %.1f\n  Average Time per Token: %.3f ms\n",
               (long long)acc.decode_tokens, acc.runs ? (double)acc.decode_tokens / acc.runs : 0, dc_tps,
               acc.decode_tokens ? acc.decode_ms / acc.decode_tokens : 0);
        printf("=== Memory Usage ===\n  Peak CPU Memory: %.1f MB\n  KV Cache dtype: %s\n",
               mm.peak_rss_bytes / 1048576.0, info.kv_cache_dtype);
        if (mm.peak_device_bytes)
            printf("  Peak %s Memory: %.1f MB\n", strcmp(info.backend, "cuda") ? "Runtime Buffer" : "GPU",
                   mm.peak_device_bytes / 1048576.0);
    }
    if (prof_out) {
        cJSON *p = cJSON_CreateObject(), *pf = cJSON_AddObjectToObject(p, "prefill"),
              *gn = cJSON_AddObjectToObject(p, "generation");
        cJSON_AddNumberToObject(pf, "total_runs", (double)acc.runs);
        cJSON_AddNumberToObject(pf, "reused_tokens", 0);
        cJSON_AddNumberToObject(pf, "computed_tokens", (double)acc.prefill_tokens);
        cJSON_AddNumberToObject(pf, "average_time_per_run_ms", acc.runs ? acc.prefill_ms / acc.runs : 0);
        cJSON_AddNumberToObject(pf, "tokens_per_second", pf_tps);
        cJSON_AddNumberToObject(gn, "total_runs", (double)acc.runs);
        cJSON_AddNumberToObject(gn, "generated_tokens", (double)acc.decode_tokens);
        cJSON_AddNumberToObject(gn, "tokens_per_second", dc_tps);
        cJSON_AddNumberToObject(gn, "average_time_per_token_ms", acc.decode_tokens ? acc.decode_ms / acc.decode_tokens : 0);
        cJSON_AddNumberToObject(p, "peak_cpu_memory_bytes", (double)mm.peak_rss_bytes);
        cJSON_AddNumberToObject(p, "peak_gpu_memory_bytes", (double)mm.peak_device_bytes);
        cJSON_AddStringToObject(p, "kv_cache_dtype", info.kv_cache_dtype);
        if (el_json_save(p, prof_out) < 0) any_failed = true;
        cJSON_Delete(p);
    }
    rc = any_failed ? 1 : 0;
end:
    for (int i = 0; reqs && i < n_req; i++) req_free(&reqs[i]);
    free(reqs);
    cJSON_Delete(out);
    cJSON_Delete(root);
    edgellm_runtime_free(rt);
    return rc;
}
