/*
 * edgellm.h - the public C API of libedgellm (include this one header).
 *
 *   common.h     status codes + edgellm_last_error(), logging, allocator, version
 *   model.h      export (HF checkpoint -> export dir) and engine build (export -> engine dir)
 *   tokenizer.h  HF-exact tokenizer, streaming detokenizer, chat templates
 *   runtime.h    runtime: batched eval, generation with sampling, metrics
 */
#ifndef EDGELLM_EDGELLM_H
#define EDGELLM_EDGELLM_H

#include "edgellm/common.h"
#include "edgellm/model.h"
#include "edgellm/tokenizer.h"
#include "edgellm/runtime.h"

#endif
