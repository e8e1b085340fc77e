#!/usr/bin/env python3
# normalizer_probes.py - writes probe tokenizers: byte-level ones (BPE, byte_fallback, no merges: ids =
# normalized bytes) with various normalizers, and WordLevel ones (one id per piece) with pre-tokenizers, under /tmp/normt/<name>/ and prints NAME=DIR arguments.
# Validate the C normalizers against HF tokenizers 0.22:
#   ARGS=$(/usr/bin/python3 scripts/tokenizer-ref/normalizer_probes.py); node scripts/gen_tokenizer_goldens.mjs $ARGS
#   cd tests && EDGELLM_TOKENIZER_EXTRA=$(echo $ARGS | tr " " ",") ../build/tests/test_tokenizer
import json, os
vocab = {"<unk>": 0}
for b in range(256): vocab["<0x%02X>" % b] = len(vocab)
vocab["\u2581"] = len(vocab)
def tok(normalizer, pre=None):
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 0, "content": "<unk>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
            "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": None,
            "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": []}}
cases = {
 "n-nfkc": {"type": "NFKC"},
 "n-nfd-strip-lower": {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]},
 "n-bert": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
 "n-bert2": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": False, "strip_accents": False, "lowercase": False},
 "n-nmt": {"type": "Nmt"},
 "n-nfd": {"type": "NFD"},
 "n-misc": {"type": "Sequence", "normalizers": [{"type": "Strip", "strip_left": True, "strip_right": True}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "Prepend", "prepend": "\u2581"}, {"type": "Lowercase"}]},
}
pres = {
 "p-ws": {"type": "Whitespace"},
 "p-wss": {"type": "WhitespaceSplit"},
 "p-bert": {"type": "BertPreTokenizer"},
 "p-meta": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
 "p-removed": {"type": "Split", "pattern": {"Regex": "\\p{P}+"}, "behavior": "Removed", "invert": False},
}
for n, norm in cases.items():
    os.makedirs(f"/tmp/normt/{n}", exist_ok=True)
    json.dump(tok(norm), open(f"/tmp/normt/{n}/tokenizer.json", "w"))
for n, pre in pres.items():
    os.makedirs(f"/tmp/normt/{n}", exist_ok=True)
    json.dump(tok(None, pre), open(f"/tmp/normt/{n}/tokenizer.json", "w"))
# WordLevel probes: every pre-tokenizer piece becomes one id, so piece boundaries show
def tok_wl(pre, normalizer=None):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": {"[U]": 0, "a": 1, " ": 2, "\u2581": 3, "1": 4, ",": 5}, "unk_token": "[U]"}}
pres2 = {
 "w-ws": {"type": "Whitespace"},
 "w-wss": {"type": "WhitespaceSplit"},
 "w-bert": {"type": "BertPreTokenizer"},
 "w-punct": {"type": "Punctuation", "behavior": "Isolated"},
 "w-punct-mp": {"type": "Punctuation", "behavior": "MergedWithPrevious"},
 "w-digits": {"type": "Digits", "individual_digits": False},
 "w-digits1": {"type": "Digits", "individual_digits": True},
 "w-meta": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
 "w-bl": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
 "w-mp": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": False},
 "w-mn": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithNext", "invert": False},
 "w-cont": {"type": "Split", "pattern": {"Regex": "\\w"}, "behavior": "Contiguous", "invert": False},
 "w-inv": {"type": "Split", "pattern": {"Regex": "\\w+|\\h"}, "behavior": "Removed", "invert": True},
 "w-str": {"type": "Split", "pattern": {"String": "a"}, "behavior": "MergedWithNext", "invert": True},
 "w-qwen": {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": False},
 "w-o200k": {"type": "Split", "pattern": {"Regex": "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": False},
}
for n, pre in pres2.items():
    os.makedirs(f"/tmp/normt/{n}", exist_ok=True)
    json.dump(tok_wl(pre), open(f"/tmp/normt/{n}/tokenizer.json", "w"))

print(" ".join(f"{n}=/tmp/normt/{n}" for n in list(cases) + list(pres) + list(pres2)))
