/* cli.h - the edgellm CLI: one binary, one cmd_*.c file per subcommand. */
#ifndef EDGELLM_CLI_H
#define EDGELLM_CLI_H

#include "edgellm/edgellm.h"
#include "edgellm/model.h"

#include <stdbool.h>
#include <stdint.h>

typedef int (*cli_cmd_fn)(int argc, char **argv); /* argv[0] is the subcommand name */

int cmd_export(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_chat_template(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* ---- helpers (cli_util.c) ---- */
/* Prints "error: <what>: <edgellm_last_error()>" to stderr and returns 1. */
int cli_fail(const char *what);
/* Prints "error: <formatted>" and returns 2 (usage errors). */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Strict integer/float parsing: false if s is not entirely a number in range. */
bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
bool cli_parse_f64(const char *s, double *out);
/* True when argv[i] is flag; stores argv[i+1] in *val (error if missing) and advances *i. */
bool cli_flag_val(int argc, char **argv, int *i, const char *flag, const char **val, int *err);
bool cli_wants_help(int argc, char **argv);
/* Installs a log callback honoring EDGELLM_LOG (error|warn|info|debug). */
void cli_setup_logging(void);
/* Directory of the bundled default model's engine, building it on first use (cache dir
 * $XDG_CACHE_HOME/edgellm or ~/.cache/edgellm). Writes the path into out. */
int cli_default_engine(char *out, size_t cap);

/* ---- generation shared by generate, chat and serve (cli_gen.c) ---- */
/* Opens the engine (NULL = the bundled default) with `threads` CPU threads (0 = all cores); it must have a
 * tokenizer. Prints one "error:" line and returns non-zero on failure. */
int cli_open_runtime(const char *engine, int64_t threads, edgellm_runtime **rt);
/* Tokenizes text (add_special: BOS / post-processor); an empty result becomes [BOS]. *ids: edgellm_free. */
edgellm_status cli_prompt_ids(edgellm_runtime *rt, const char *text, bool add_special, int32_t **ids, size_t *n);
/* Renders messages_json ([{"role":..,"content":..}, ...]) with the engine's chat template and a generation
 * prompt (extra_json: template variables such as {"enable_thinking": false}, may be NULL), then tokenizes
 * it without adding special tokens, as `edgellm chat` does. UNSUPPORTED when the engine has no template. */
edgellm_status cli_chat_ids(edgellm_runtime *rt, const char *messages_json, const char *extra_json, int32_t **ids,
                            size_t *n);

/* Receives each complete UTF-8 piece of generated text; false stops the generation (finish ABORTED). */
typedef bool (*cli_piece_fn)(const char *piece, void *user);
typedef struct cli_gen_req {
    const int32_t *ids; /* prompt ids (n_ids >= 1) */
    size_t n_ids;
    int32_t max_new_tokens;
    bool ignore_eos;
    bool prime;       /* pass the prompt through the detokenizer first, so the first piece decodes in context */
    bool emit_prompt; /* with prime: hand the prompt's own pieces to the callback too */
} cli_gen_req;
/* Generates one request, streaming its text to fn; res gets the ids (edgellm_result_clear). */
edgellm_status cli_generate_text(edgellm_runtime *rt, const cli_gen_req *r, const edgellm_sampling_params *sp,
                                 cli_piece_fn fn, void *user, edgellm_result *res);

#endif
