#!/usr/bin/python3
"""Golden RoPE inverse frequencies for tests/unit/test_config.c.

Replicates HF transformers' modeling_rope_utils ROPE_INIT_FUNCTIONS (default, linear, llama3, yarn)
with numpy float32 arithmetic, the dtype torch uses there. Run: /usr/bin/python3 tests/scripts/rope_golden.py
and paste the output into test_config.c.
"""
import math

import numpy as np

f32 = np.float32


def default(base, dim):
    return (f32(1.0) / (f32(base) ** (np.arange(0, dim, 2, dtype=np.int64).astype(f32) / f32(dim)))).astype(f32)


def linear(base, dim, factor):
    return (default(base, dim) / f32(factor)).astype(f32)


def llama3(base, dim, factor, low_freq_factor, high_freq_factor, old_context_len):
    inv_freq = default(base, dim)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = (f32(2 * math.pi) / inv_freq).astype(f32)
    inv_freq_llama = np.where(wavelen > low_freq_wavelen, inv_freq / f32(factor), inv_freq).astype(f32)
    smooth_factor = ((f32(old_context_len) / wavelen - f32(low_freq_factor)) /
                     f32(high_freq_factor - low_freq_factor)).astype(f32)
    smoothed = ((f32(1) - smooth_factor) * inv_freq_llama / f32(factor) + smooth_factor * inv_freq_llama).astype(f32)
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, inv_freq_llama).astype(f32), 1.0


def yarn(base, dim, factor, orig_max_pos, beta_fast=32, beta_slow=1, mscale=None, mscale_all_dim=None,
         attention_factor=None, truncate=True):
    def get_mscale(scale, m=1):
        if scale <= 1:
            return 1.0
        return 0.1 * m * math.log(scale) + 1.0

    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = get_mscale(factor)

    def find_correction_dim(num_rotations):
        return (dim * math.log(orig_max_pos / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low = find_correction_dim(beta_fast)
    high = find_correction_dim(beta_slow)
    if truncate:
        low = math.floor(low)
        high = math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    pos_freqs = (f32(base) ** (np.arange(0, dim, 2).astype(f32) / f32(dim))).astype(f32)
    inv_extra = (f32(1.0) / pos_freqs).astype(f32)
    inv_inter = (f32(1.0) / (f32(factor) * pos_freqs)).astype(f32)
    ramp = np.clip((np.arange(dim // 2, dtype=f32) - f32(low)) / f32(high - low), 0, 1).astype(f32)
    extra_factor = (f32(1) - ramp).astype(f32)
    inv = (inv_inter * (f32(1) - extra_factor) + inv_extra * extra_factor).astype(f32)
    return inv, attention_factor


CASES = [
    ("llama32_1b", llama3(500000.0, 64, 32.0, 1.0, 4.0, 8192)),
    ("tiny_llama", llama3(500000.0, 32, 8.0, 1.0, 4.0, 256)),
    ("yarn_qwen", yarn(1000000.0, 128, 4.0, 32768)),
    ("yarn_mscale", yarn(10000.0, 64, 40.0, 4096, 32, 1, 1.0, 0.707, None, False)),
    ("linear", (linear(10000.0, 16, 2.0), 1.0)),
    ("partial", (default(10000.0, 32), 1.0)),
]

for name, (inv, att) in CASES:
    print(f"/* {name}: attention factor */ static const float g_{name}_attn = {att:.9e}f;")
    vals = ", ".join(f"{v:.9e}f" for v in inv)
    print(f"static const float g_{name}[{len(inv)}] = {{{vals}}};")
