/*
 * tokenizer_impl.h - internals of the HF tokenizer.json implementation (tokenizers 0.22 semantics).
 *
 * Pipeline (encode): added tokens (non-normalized, leftmost-longest, lstrip/rstrip/single_word) split ->
 * normalizer per remaining piece -> added tokens (normalized) split -> pre-tokenizer -> model ->
 * post-processor (only when add_special). Decode: ids -> token strings (unknown ids dropped, specials
 * skipped on request) -> decoder chain -> join. Offsets are not tracked: only ids and text.
 *
 * Supported (anything else is refused with UNSUPPORTED naming the type):
 *   models          BPE (merges "a b" or ["a","b"], ignore_merges, byte_fallback, unk/fuse_unk,
 *                   continuing_subword_prefix, end_of_word_suffix; dropout must be null/0), WordPiece,
 *                   Unigram (Viterbi, byte_fallback), WordLevel
 *   normalizers     Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace (String/Regex),
 *                   Prepend, BertNormalizer, ByteLevel, Nmt       (not: Precompiled)
 *   pre-tokenizers  Sequence, Split (all behaviors, invert), ByteLevel, Metaspace, Digits, Punctuation,
 *                   Whitespace, WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit (not: UnicodeScripts)
 *   post-processors Sequence, TemplateProcessing (single), ByteLevel, RobertaProcessing, BertProcessing
 *   decoders        Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, WordPiece, BPEDecoder
 *                   (not: CTC)
 * Added-token ids are assigned as AddedVocabulary::add_tokens does (vocab id, else after the vocab).
 * Regexes are Oniguruma patterns run with PCRE2 (UTF, UCP, JIT); \s and \S are widened to U+0085 as
 * Oniguruma's. Invalid UTF-8 input is read with U+FFFD per maximal subpart (as a JS/Rust lossy decode).
 * truncation/padding in tokenizer.json are ignored.
 */
#ifndef EL_TOKENIZER_IMPL_H
#define EL_TOKENIZER_IMPL_H

#include "core/core.h"
#include "edgellm/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

/* ---- string -> int32 hash map (keys copied into one arena) ------------------------------------ */
typedef struct tk_map_entry {
    uint64_t hash;
    size_t off; /* key offset in the arena */
    uint32_t klen;
    int32_t val;
} tk_map_entry;
typedef struct tk_map {
    int32_t *slots; /* entry index or -1 */
    size_t mask;
    tk_map_entry *e;
    size_t n, cap;
    el_buf arena; /* NUL-terminated keys back to back */
} tk_map;
static inline const char *tk_map_key(const tk_map *m, size_t i) { return m->arena.data + m->e[i].off; }
void tk_map_free(tk_map *m);
edgellm_status tk_map_reserve(tk_map *m, size_t n, size_t key_bytes);
edgellm_status tk_map_put(tk_map *m, const char *k, size_t klen, int32_t val); /* overwrites */
int32_t tk_map_get(const tk_map *m, const char *k, size_t klen);               /* -1 if absent */

/* ---- piece lists: strings stored back to back in an arena ------------------------------------- */
typedef struct tk_pieces {
    el_buf arena;
    size_t *off, *len;
    uint8_t *first; /* piece starts at original offset 0 (Metaspace prepend_scheme "first") */
    size_t n, cap;
} tk_pieces;
void tk_pieces_free(tk_pieces *p);
void tk_pieces_clear(tk_pieces *p);
edgellm_status tk_pieces_add(tk_pieces *p, const char *s, size_t len, bool first);
/* Like tk_pieces_add but keeps empty strings (decoders). */
edgellm_status tk_pieces_add_any(tk_pieces *p, const char *s, size_t len, bool first);
/* Adds a piece built from two parts (prefix + s). */
edgellm_status tk_pieces_add2(tk_pieces *p, const char *a, size_t alen, const char *s, size_t len, bool first);
static inline const char *tk_piece(const tk_pieces *p, size_t i) { return p->arena.data + p->off[i]; }

/* ---- regex (PCRE2, UTF + UCP, JIT) ------------------------------------------------------------ */
typedef struct tk_regex {
    pcre2_code *code;
    char *literal; /* for String patterns: plain substring search instead of a regex */
    size_t literal_len;
} tk_regex;
/* is_literal: pattern given as {"String": ...}. Translates Oniguruma-only syntax where needed. */
edgellm_status tk_regex_init(tk_regex *r, const char *pattern, bool is_literal);
void tk_regex_free(tk_regex *r);
/* Finds the next match at or after `from`: 1 found, 0 none, <0 error (status set: e.g. a PCRE2 match
 * limit). Empty matches are reported. */
int tk_regex_next(const tk_regex *r, pcre2_match_data *md, const char *s, size_t len, size_t from, size_t *ms,
                  size_t *me);

/* ---- utf8 helpers --------------------------------------------------------------------------------- */
/* Decodes one code point of valid UTF-8 at s (n bytes available); returns its length (>=1). */
int tk_utf8_decode(const char *s, size_t n, int32_t *cp);
int tk_utf8_encode(int32_t cp, char *out);
bool tk_is_whitespace(int32_t cp);   /* Rust char::is_whitespace */
bool tk_is_alnum(int32_t cp);        /* Rust char::is_alphanumeric */
bool tk_is_numeric(int32_t cp);      /* Rust char::is_numeric (Nd, Nl, No) */
bool tk_is_punctuation(int32_t cp);  /* ascii punctuation or Unicode P* */
/* Appends s with invalid UTF-8 replaced by U+FFFD per maximal subpart (Rust from_utf8_lossy). */
edgellm_status tk_utf8_lossy(el_buf *out, const char *s, size_t n);
bool tk_utf8_valid(const char *s, size_t n);

/* ---- normalizers ---------------------------------------------------------------------------------- */
typedef enum {
    TK_NORM_SEQUENCE,
    TK_NORM_NFC,
    TK_NORM_NFD,
    TK_NORM_NFKC,
    TK_NORM_NFKD,
    TK_NORM_LOWERCASE,
    TK_NORM_STRIP,
    TK_NORM_STRIP_ACCENTS,
    TK_NORM_REPLACE,
    TK_NORM_PREPEND,
    TK_NORM_BERT,
    TK_NORM_BYTELEVEL,
    TK_NORM_NMT,
} tk_norm_type;

typedef struct tk_norm {
    tk_norm_type type;
    struct tk_norm *children;
    size_t n_children;
    tk_regex re;          /* Replace */
    char *content;        /* Replace content, Prepend string */
    bool left, right;     /* Strip */
    bool clean_text, handle_chinese, strip_accents, lowercase; /* Bert */
} tk_norm;

/* ---- pre-tokenizers ----------------------------------------------------------------------------- */
typedef enum {
    TK_PRE_SEQUENCE,
    TK_PRE_SPLIT,
    TK_PRE_BYTELEVEL,
    TK_PRE_METASPACE,
    TK_PRE_DIGITS,
    TK_PRE_PUNCTUATION,
    TK_PRE_WHITESPACE,
    TK_PRE_WHITESPACE_SPLIT,
    TK_PRE_BERT,
    TK_PRE_CHAR_DELIMITER,
} tk_pre_type;

typedef enum {
    TK_SPLIT_REMOVED,
    TK_SPLIT_ISOLATED,
    TK_SPLIT_MERGED_PREV,
    TK_SPLIT_MERGED_NEXT,
    TK_SPLIT_CONTIGUOUS,
} tk_split_behavior;

typedef enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER } tk_prepend_scheme;

typedef struct tk_pre {
    tk_pre_type type;
    struct tk_pre *children;
    size_t n_children;
    tk_regex re;                 /* Split pattern, ByteLevel GPT-2 regex, Whitespace regex */
    tk_split_behavior behavior;  /* Split, Punctuation */
    bool invert;                 /* Split */
    bool add_prefix_space, use_regex; /* ByteLevel */
    char replacement[8];         /* Metaspace */
    int32_t replacement_cp;
    tk_prepend_scheme prepend_scheme;
    bool split;                  /* Metaspace */
    bool individual_digits;      /* Digits */
    int32_t delimiter;           /* CharDelimiterSplit */
} tk_pre;

/* ---- decoders ------------------------------------------------------------------------------------- */
typedef enum {
    TK_DEC_SEQUENCE,
    TK_DEC_BYTELEVEL,
    TK_DEC_METASPACE,
    TK_DEC_REPLACE,
    TK_DEC_BYTEFALLBACK,
    TK_DEC_FUSE,
    TK_DEC_STRIP,
    TK_DEC_WORDPIECE,
    TK_DEC_BPE,
} tk_dec_type;

typedef struct tk_dec {
    tk_dec_type type;
    struct tk_dec *children;
    size_t n_children;
    tk_regex re;       /* Replace */
    char *content;     /* Replace content; WordPiece prefix; BPE suffix */
    int32_t strip_cp;  /* Strip content */
    int64_t start, stop;
    bool cleanup;      /* WordPiece */
    int32_t replacement_cp; /* Metaspace */
    tk_prepend_scheme prepend_scheme;
} tk_dec;

/* ---- post-processors ------------------------------------------------------------------------------ */
typedef enum { TK_POST_SEQUENCE, TK_POST_TEMPLATE, TK_POST_NOOP, TK_POST_WRAP } tk_post_type;

typedef struct tk_post {
    tk_post_type type;
    struct tk_post *children;
    size_t n_children;
    /* TEMPLATE single: ids to emit; -2 marks "sequence A". WRAP: prefix ids, sequence, suffix ids. */
    int32_t *ids;
    size_t n_ids;
} tk_post;

/* ---- models ----------------------------------------------------------------------------------------- */
typedef enum { TK_MODEL_BPE, TK_MODEL_WORDPIECE, TK_MODEL_UNIGRAM, TK_MODEL_WORDLEVEL } tk_model_type;

typedef struct tk_merge_map {
    uint64_t *keys; /* (a << 32 | b) + 1; 0 = empty */
    uint32_t *rank, *new_id;
    size_t mask, n;
} tk_merge_map;

typedef struct tk_cache_slot {
    char *key;
    uint32_t klen, n;
    int32_t *ids;
} tk_cache_slot;

typedef struct tk_model {
    tk_model_type type;
    tk_map vocab;
    char **id_to_tok; /* size n_ids, NULL for holes */
    uint32_t *id_len;
    int32_t n_ids;
    /* BPE */
    tk_merge_map merges;
    int32_t unk_id;
    bool fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix (NULL = none) */
    int32_t byte_ids[256];  /* <0xXX> ids, -1 if absent */
    bool split_meta;        /* no vocab token has U+2581 right after another char: words may be cut
                             * before each U+2581 that follows another char without changing the result */
    /* WordPiece */
    int64_t max_input_chars_per_word;
    /* Unigram */
    double *scores;
    double min_score;
    /* word cache (BPE) */
    tk_cache_slot *cache;
    size_t cache_mask;
    pthread_mutex_t cache_lock;
} tk_model;

typedef struct tk_added {
    char *content;
    uint32_t len;
    int32_t id;
    bool special, lstrip, rstrip, normalized, single_word;
    char *norm_content; /* content after the normalizer (normalized tokens) */
    uint32_t norm_len;
} tk_added;

/* byte trie for leftmost-longest matching of added tokens (nodes 1..n; 0 = none) */
typedef struct tk_trie_node {
    int32_t child, sibling, term; /* term: added index or -1 */
    uint8_t byte;
} tk_trie_node;
typedef struct tk_trie {
    tk_trie_node *nodes;
    size_t n, cap;
    int32_t root[256];
} tk_trie;

struct edgellm_tokenizer {
    tk_model model;
    tk_added *added;
    size_t n_added;
    tk_map added_map; /* content -> index into added */
    int32_t *added_by_id; /* id -> index into added (-1), size n_total */
    int32_t n_total;
    tk_trie trie_raw, trie_norm;
    bool has_norm, has_pre, has_post, has_dec;
    tk_norm norm;
    tk_pre pre;
    tk_post post;
    tk_dec dec;
    int32_t bos_id, eos_id, pad_id;
    bool dec_is_bytelevel_only; /* decoder is exactly ByteLevel (stream fast path) */
    bool dec_has_bytefallback;
};

/* loading (tok_load.c) */
edgellm_status tk_norm_apply(const tk_norm *n, el_buf *s, el_buf *tmp);
void tk_norm_free(tk_norm *n);
void tk_pre_free(tk_pre *p);
void tk_dec_free(tk_dec *d);
void tk_post_free(tk_post *p);
/* pre-tokenize: in -> out (out cleared first) */
edgellm_status tk_pre_apply(const tk_pre *p, const tk_pieces *in, tk_pieces *out, pcre2_match_data *md);

/* model (tok_model.c) */
edgellm_status tk_model_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, size_t *n,
                                 size_t *cap);
edgellm_status tk_model_prepare(tk_model *m);
void tk_model_free(tk_model *m);

/* decode helpers (tok_decode.c) */
edgellm_status tk_decode_tokens(const edgellm_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                                el_buf *out);
const char *tk_token_str(const edgellm_tokenizer *t, int32_t id, uint32_t *len);

/* ids vector helper */
static inline edgellm_status tk_ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t v) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *p = el_realloc(*ids, nc * sizeof **ids);
        if (!p) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        *ids = p;
        *cap = nc;
    }
    (*ids)[(*n)++] = v;
    return EDGELLM_STATUS_OK;
}

#endif
