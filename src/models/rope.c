/* rope.c - RoPE inverse frequencies, following HF transformers' ROPE_INIT_FUNCTIONS
 * (modeling_rope_utils: default, linear, llama3, yarn). Computed in double, stored as float. */
#include "models.h"

#include <math.h>

int64_t el_rope_n_rot(const el_hparams *hp) {
    /* HF: dim = int(head_dim * partial_rotary_factor) */
    int64_t n = (int64_t)((double)hp->head_dim * (double)hp->partial_rotary_factor);
    if (n > hp->head_dim) n = hp->head_dim;
    return n & ~(int64_t)1;
}

static double yarn_get_mscale(double scale, double mscale) {
    if (scale <= 1) return 1.0;
    return 0.1 * mscale * log(scale) + 1.0;
}

static double yarn_correction_dim(double num_rot, double dim, double base, double max_pos) {
    return (dim * log(max_pos / (num_rot * 2 * M_PI))) / (2 * log(base));
}

void el_rope_inv_freq(const el_hparams *hp, float *inv_freq, float *attn_scale) {
    const int64_t dim = el_rope_n_rot(hp);
    const int64_t half = dim / 2;
    const double base = hp->rope_theta;
    const double factor = hp->rope_factor;
    double scale = 1.0;
    switch (hp->rope_type) {
    case EL_ROPE_DEFAULT:
    case EL_ROPE_LINEAR:
        for (int64_t i = 0; i < half; i++) {
            double f = 1.0 / pow(base, (double)(2 * i) / (double)dim);
            if (hp->rope_type == EL_ROPE_LINEAR) f /= factor;
            inv_freq[i] = (float)f;
        }
        break;
    case EL_ROPE_LLAMA3: {
        const double low = hp->rope_low_freq_factor, high = hp->rope_high_freq_factor;
        const double old_ctx = (double)hp->rope_orig_max_pos;
        const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
        for (int64_t i = 0; i < half; i++) {
            double f = 1.0 / pow(base, (double)(2 * i) / (double)dim);
            double wavelen = 2 * M_PI / f;
            double fl = wavelen > low_wavelen ? f / factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                double smooth = (old_ctx / wavelen - low) / (high - low);
                fl = (1 - smooth) * fl / factor + smooth * fl;
            }
            inv_freq[i] = (float)fl;
        }
        break;
    }
    case EL_ROPE_YARN: {
        if (hp->yarn_attn_factor > 0) scale = hp->yarn_attn_factor;
        else if (hp->yarn_mscale != 0 && hp->yarn_mscale_all_dim != 0)
            scale = yarn_get_mscale(factor, hp->yarn_mscale) / yarn_get_mscale(factor, hp->yarn_mscale_all_dim);
        else scale = yarn_get_mscale(factor, 1.0);
        const double max_pos = (double)hp->rope_orig_max_pos;
        double lo = yarn_correction_dim(hp->yarn_beta_fast, (double)dim, base, max_pos);
        double hi = yarn_correction_dim(hp->yarn_beta_slow, (double)dim, base, max_pos);
        if (hp->yarn_truncate) {
            lo = floor(lo);
            hi = ceil(hi);
        }
        if (lo < 0) lo = 0;
        if (hi > (double)(dim - 1)) hi = (double)(dim - 1);
        if (lo == hi) hi += 0.001;
        for (int64_t i = 0; i < half; i++) {
            double pos_freq = pow(base, (double)(2 * i) / (double)dim);
            double extra = 1.0 / pos_freq, inter = 1.0 / (factor * pos_freq);
            double ramp = ((double)i - lo) / (hi - lo);
            if (ramp < 0) ramp = 0;
            if (ramp > 1) ramp = 1;
            double extra_factor = 1 - ramp;
            inv_freq[i] = (float)(inter * (1 - extra_factor) + extra * extra_factor);
        }
        break;
    }
    }
    if (attn_scale) *attn_scale = (float)scale;
}
