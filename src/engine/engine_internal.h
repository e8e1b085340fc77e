/* engine_internal.h - constants and helpers shared by the engine builder and reader. */
#ifndef EL_ENGINE_INTERNAL_H
#define EL_ENGINE_INTERNAL_H

#include "engine.h"

#define EL_ENGINE_HEADER_SIZE 64u
#define EL_ENGINE_DATA_ALIGN 4096u  /* data_offset alignment (page)   */
#define EL_ENGINE_TENSOR_ALIGN 64u  /* tensor offset alignment        */
#define EL_ENGINE_MAX_META (256u << 20)

/* 1 <= max_batch <= 256, 1 <= max_input_len <= kv capacity <= 1<<20, backend cpu|cuda. */
edgellm_status el_profile_validate(const el_profile *p);

#endif
