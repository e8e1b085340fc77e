/* gguf.h - HF checkpoint -> one GGUF v3 file that llama.cpp loads (architectures llama, qwen2, qwen3).
 *
 * Tensor types: "f32", "f16" (default), "bf16", "q8_0", "q4_0" for the 2-D weights (ggml block layouts,
 * bit-exact with ggml's reference quantizers); norms, biases and rope_freqs are F32. A 2-D weight whose row
 * length is not a multiple of 32 falls back to F16 for q8_0/q4_0 (logged). For the "llama" architecture
 * the rows of q_proj/k_proj are permuted from HF's rotate-half layout to ggml's interleaved pairs, as
 * llama.cpp's convert_hf_to_gguf.py does; qwen2/qwen3 run NEOX RoPE and need none. Llama-3 rope scaling
 * becomes a rope_freqs.weight tensor. The tokenizer (tokenizer.json) becomes tokenizer.ggml.* metadata:
 * "gpt2" for byte-level BPE, "llama" for SentencePiece-style BPE with byte fallback or Unigram; a checkpoint
 * without tokenizer.json gets a placeholder vocabulary ("<tok_ID>"; llama.cpp cannot run "none"). Written to "<out>.tmp-<pid>" and renamed. */
#ifndef EL_EXPORT_GGUF_H
#define EL_EXPORT_GGUF_H

#include "core/core.h"

/* ggml type ids (ggml.h) */
enum {
    EL_GGML_F32 = 0,
    EL_GGML_F16 = 1,
    EL_GGML_Q4_0 = 2,
    EL_GGML_Q8_0 = 8,
    EL_GGML_BF16 = 30,
};

#define EL_GGML_QK 32
/* Bytes of one row of n elements of a ggml type (n % 32 == 0 for the block types). */
size_t el_ggml_row_size(int type, int64_t n);
/* ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref: n % 32 == 0; out holds n/32 blocks. */
void el_ggml_quantize_q8_0(const float *x, void *out, int64_t n);
void el_ggml_quantize_q4_0(const float *x, void *out, int64_t n);
/* Dequantization (ggml's dequantize_row_*), for tests. */
void el_ggml_dequantize_q8_0(const void *in, float *y, int64_t n);
void el_ggml_dequantize_q4_0(const void *in, float *y, int64_t n);

/* quant: NULL/"none" (= f16), "f32"/"fp32", "f16"/"fp16", "bf16", "q8_0", "q4_0". */
edgellm_status el_export_gguf(const char *hf_dir, const char *out_file, const char *quant, bool overwrite,
                              bool progress);

#endif
