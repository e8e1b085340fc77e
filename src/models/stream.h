/* stream.h - chunked tensor conversion used by export and the engine builder: converts a mapped
 * safetensors tensor to another float dtype through a fixed buffer, handing each converted chunk to a
 * sink, and drops the consumed pages of the source mapping so the resident set stays small. */
#ifndef EL_MODELS_STREAM_H
#define EL_MODELS_STREAM_H

#include "models.h"

typedef edgellm_status (*el_sink_fn)(const void *data, size_t n, void *user);

/* buf: scratch of buf_bytes (>= 64 KiB, 64-byte aligned). src must be F32/F16/BF16 unless dst == src. */
edgellm_status el_stream_tensor(const el_st_tensor *t, el_dtype dst, void *buf, size_t buf_bytes, el_sink_fn sink,
                                void *user);
/* Scratch size for converting tensors of at most max_elems elements (clamped to 64 KiB..8 MiB). */
size_t el_stream_buf_size(size_t max_elems);

#endif
