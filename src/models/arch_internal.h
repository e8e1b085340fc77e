/* arch_internal.h - helpers shared by the per-architecture files (llama.c, qwen2.c, qwen3.c). */
#ifndef EL_ARCH_INTERNAL_H
#define EL_ARCH_INTERNAL_H

#include "models.h"

/* Canonical name = checkpoint name; "*.rotary_emb.inv_freq" is skipped. */
edgellm_status el_map_tensor_identity(const char *hf_name, char *out, size_t cap, bool *skip);

#endif
