/*
 * runtime_internal.h - hooks of the runtime for the export layer (calibration): a tap that sees the
 * input activations of every linear layer during a forward. Not part of the public API.
 */
#ifndef EL_RUNTIME_INTERNAL_H
#define EL_RUNTIME_INTERNAL_H

#include "edgellm/runtime.h"
#include "core/core.h"

typedef enum el_tap_point {
    EL_TAP_ATTN_IN = 0, /* input of q_proj, k_proj, v_proj  (n, n_embd): after input_layernorm      */
    EL_TAP_O_IN = 1,    /* input of o_proj                   (n, n_head*head_dim): attention output */
    EL_TAP_MLP_IN = 2,  /* input of gate_proj, up_proj       (n, n_embd): after post_attention_layernorm */
    EL_TAP_DOWN_IN = 3, /* input of down_proj                (n, n_ff): silu(gate)*up              */
    EL_TAP_K = 4,       /* K after RoPE, before the cache     (n, n_head_kv*head_dim)               */
    EL_TAP_V = 5,       /* V                                  (n, n_head_kv*head_dim)               */
    EL_TAP_COUNT
} el_tap_point;

/* x is a host pointer valid during the call (the runtime downloads device data when needed). */
typedef void (*el_tap_fn)(void *user, int64_t layer, el_tap_point point, const float *x, int64_t n, int64_t cols);
/* NULL fn removes the tap. Taps slow the forward down (a sync + copy per point on device backends). */
void el_runtime_set_tap(edgellm_runtime *rt, el_tap_fn fn, void *user);

#endif
