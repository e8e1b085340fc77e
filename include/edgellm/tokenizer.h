/*
 * tokenizer.h - HF tokenizer.json compatible tokenizer and chat templates.
 *
 *   edgellm_tokenizer *tok;
 *   edgellm_tokenizer_load("model_dir", &tok);              // dir or path of tokenizer.json
 *   int32_t *ids; size_t n;
 *   edgellm_tokenizer_encode(tok, "Hello", 5, true, &ids, &n);
 *   ...
 *   edgellm_free(ids);
 *   edgellm_tokenizer_free(tok);
 *
 * Encoding and decoding give exactly the ids and text HF `tokenizers` gives.
 */
#ifndef EDGELLM_TOKENIZER_H
#define EDGELLM_TOKENIZER_H

#include "edgellm/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgellm_tokenizer edgellm_tokenizer;

/* path: a directory holding tokenizer.json (and optionally tokenizer_config.json), or the path of a
 * tokenizer.json file. Errors: IO, FORMAT (malformed JSON, bad vocab), UNSUPPORTED (model/normalizer
 * type not implemented; the message names it). */
edgellm_status edgellm_tokenizer_load(const char *path, edgellm_tokenizer **out);
void edgellm_tokenizer_free(edgellm_tokenizer *tok);

/* Encodes `len` bytes of text. add_special: apply the post-processor (BOS/EOS) as HF
 * add_special_tokens=True. *ids is allocated by the library; free with edgellm_free. */
edgellm_status edgellm_tokenizer_encode(const edgellm_tokenizer *tok, const char *text, size_t len,
                                        bool add_special, int32_t **ids, size_t *n_ids);
/* Decodes ids to NUL-terminated UTF-8 text (HF decode). *text freed with edgellm_free. */
edgellm_status edgellm_tokenizer_decode(const edgellm_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                        bool skip_special, char **text, size_t *len);

int32_t edgellm_tokenizer_vocab_size(const edgellm_tokenizer *tok); /* incl. added tokens */
/* -1 when unknown. From tokenizer_config.json (bos_token/eos_token/pad_token) when present. */
int32_t edgellm_tokenizer_bos_id(const edgellm_tokenizer *tok);
int32_t edgellm_tokenizer_eos_id(const edgellm_tokenizer *tok);
int32_t edgellm_tokenizer_pad_id(const edgellm_tokenizer *tok);
/* id of an exact token string (vocab or added token), -1 if none. */
int32_t edgellm_tokenizer_token_to_id(const edgellm_tokenizer *tok, const char *token);
/* Borrowed token string as stored in the vocab (e.g. "Ġthe"); NULL if out of range. */
const char *edgellm_tokenizer_id_to_token(const edgellm_tokenizer *tok, int32_t id);
bool edgellm_tokenizer_is_special(const edgellm_tokenizer *tok, int32_t id);

/* ---- streaming detokenizer: emits only complete UTF-8 ---------------------------------------- */
typedef struct edgellm_detok_stream edgellm_detok_stream;
edgellm_status edgellm_detok_stream_create(const edgellm_tokenizer *tok, bool skip_special,
                                           edgellm_detok_stream **out);
void edgellm_detok_stream_free(edgellm_detok_stream *st);
/* Feeds one id; *piece (borrowed, valid until the next call) receives the new complete text, possibly
 * "" when the id ends inside a multi-byte character. Concatenating all pieces + flush equals
 * edgellm_tokenizer_decode of all ids. */
edgellm_status edgellm_detok_stream_push(edgellm_detok_stream *st, int32_t id, const char **piece);
edgellm_status edgellm_detok_stream_flush(edgellm_detok_stream *st, const char **piece);

/* ---- chat templates --------------------------------------------------------------------------- */
typedef struct edgellm_chat_template edgellm_chat_template;
/* dir: reads chat_template from processed_chat_template.json (seed format, takes precedence),
 * chat_template.jinja, chat_template.json or tokenizer_config.json. EDGELLM_STATUS_UNSUPPORTED with a
 * message if the template uses a construct that is not implemented; IO if none is found. */
edgellm_status edgellm_chat_template_load(const char *dir, edgellm_chat_template **out);
edgellm_status edgellm_chat_template_from_string(const char *jinja_source, const char *bos_token,
                                                 const char *eos_token, edgellm_chat_template **out);
void edgellm_chat_template_free(edgellm_chat_template *t);
/* messages_json: a JSON array of {"role":..., "content": string | [{"type":"text","text":...}, ...]}
 * extra_json: NULL or a JSON object of extra template variables (enable_thinking, tools, ...).
 * *out: NUL-terminated rendered text, freed with edgellm_free. */
edgellm_status edgellm_chat_template_render(const edgellm_chat_template *t, const char *messages_json,
                                            bool add_generation_prompt, const char *extra_json, char **out);

#ifdef __cplusplus
}
#endif

#endif
