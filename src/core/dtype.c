/* dtype.c - type traits and float conversions (f16 via F16C when compiled in, else exact bit math). */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static const struct {
    const char *name, *st;
    size_t size;
} k_types[EL_DTYPE_COUNT] = {
    [EL_DTYPE_F32] = {"f32", "F32", 4},  [EL_DTYPE_F16] = {"f16", "F16", 2},
    [EL_DTYPE_BF16] = {"bf16", "BF16", 2}, [EL_DTYPE_I32] = {"i32", "I32", 4},
    [EL_DTYPE_I64] = {"i64", "I64", 8},  [EL_DTYPE_I8] = {"i8", "I8", 1},
    [EL_DTYPE_U8] = {"u8", "U8", 1},     [EL_DTYPE_F8_E4M3] = {"f8_e4m3", "F8_E4M3", 1},
    /* quantized weight formats: no safetensors name, no element size */
    [EL_DTYPE_Q_W8A8] = {"w8a8", NULL, 0}, [EL_DTYPE_Q_W4A16] = {"w4a16", NULL, 0},
    [EL_DTYPE_Q_FP8] = {"fp8", NULL, 0},   [EL_DTYPE_Q_NVFP4] = {"nvfp4", NULL, 0},
    [EL_DTYPE_Q8_0] = {"q8_0", NULL, 0},   [EL_DTYPE_Q4_0] = {"q4_0", NULL, 0},
};

size_t el_dtype_size(el_dtype t) { return (unsigned)t < EL_DTYPE_COUNT ? k_types[t].size : 0; }
const char *el_dtype_name(el_dtype t) { return (unsigned)t < EL_DTYPE_COUNT ? k_types[t].name : "?"; }
const char *el_dtype_st_name(el_dtype t) {
    return (unsigned)t < EL_DTYPE_COUNT && k_types[t].st ? k_types[t].st : "?";
}
bool el_dtype_is_quant(el_dtype t) { return t >= EL_DTYPE_Q_W8A8 && t < EL_DTYPE_COUNT; }

/* Must agree with el_qhdr_init (src/kernels/ref/quant_ref.c); docs/quantization.md. */
static uint64_t pad64(uint64_t v) { return (v + 63) & ~(uint64_t)63; }
size_t el_weight_nbytes(el_dtype t, int64_t n, int64_t k, int64_t group, bool zeros) {
    if (n <= 0 || k <= 0 || n > ((int64_t)1 << 31) || k > ((int64_t)1 << 31)) return 0;
    const uint64_t N = (uint64_t)n, K = (uint64_t)k;
    switch (t) {
    case EL_DTYPE_Q_W8A8:
    case EL_DTYPE_Q_FP8: return (size_t)(64 + pad64(4 * N) + N * K);
    case EL_DTYPE_Q_W4A16: {
        if (group < 8 || group % 8 != 0 || group > (1 << 20)) return 0;
        uint64_t G = (K + (uint64_t)group - 1) / (uint64_t)group, kp = G * (uint64_t)group;
        return (size_t)(64 + pad64(2 * N * G) + (zeros ? pad64(N * G) : 0) + N * kp / 2);
    }
    case EL_DTYPE_Q_NVFP4: {
        uint64_t B = (K + 15) / 16;
        return (size_t)(64 + pad64(N * B) + N * B * 8);
    }
    case EL_DTYPE_Q8_0: return K % 32 ? 0 : (size_t)(N * (K / 32) * 34);
    case EL_DTYPE_Q4_0: return K % 32 ? 0 : (size_t)(N * (K / 32) * 18);
    default: {
        size_t es = el_dtype_size(t), a, b;
        if (!es || !el_mul_ok((size_t)n, (size_t)k, &a) || !el_mul_ok(a, es, &b)) return 0;
        return b;
    }
    }
}

bool el_dtype_from_st_name(const char *s, el_dtype *out) {
    for (int i = 0; i < EL_DTYPE_COUNT; i++)
        if (k_types[i].st && !strcmp(s, k_types[i].st)) {
            *out = (el_dtype)i;
            return true;
        }
    return false;
}

bool el_dtype_from_user_name(const char *s, el_dtype *out) {
    if (!strcmp(s, "fp32") || !strcmp(s, "f32") || !strcmp(s, "float32")) *out = EL_DTYPE_F32;
    else if (!strcmp(s, "fp16") || !strcmp(s, "f16") || !strcmp(s, "float16")) *out = EL_DTYPE_F16;
    else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *out = EL_DTYPE_BF16;
    else return false;
    return true;
}

float el_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            mant &= 0x3ff;
            u = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, overflow to inf, subnormals handled (IEEE semantics as torch's .half()). */
uint16_t el_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00); /* NaN */
    if (absu >= 0x477ff000u) {                                 /* rounds to >= 65520 -> inf */
        return (uint16_t)(sign | 0x7c00);
    }
    if (absu < 0x38800000u) { /* result subnormal or zero */
        float af;
        memcpy(&af, &absu, 4);
        /* scale so that the f16 subnormal unit (2^-24) becomes 1, then round to nearest even */
        float scaled = af * 16777216.0f; /* exact */
        uint32_t r = (uint32_t)scaled;
        float frac = scaled - (float)r;
        if (frac > 0.5f || (frac == 0.5f && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t mant = absu & 0x7fffff;
    uint32_t exp = (absu >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

#if defined(__x86_64__)
/* F16C: the hardware rounds to nearest even exactly as el_f32_to_f16 does (NaN payloads may differ). */
__attribute__((target("avx,f16c"))) static void f32_to_f16_f16c(uint16_t *d, const float *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) d[i] = el_f32_to_f16(s[i]);
}
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(float *d, const uint16_t *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) d[i] = el_f16_to_f32(s[i]);
}
static bool have_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c") && !getenv("EDGELLM_NO_F16C");
    return cached == 1;
}
#endif

void el_convert(el_dtype dt, void *dst, el_dtype st, const void *src, size_t n) {
    if (dt == st) {
        memcpy(dst, src, n * el_dtype_size(dt));
        return;
    }
#if defined(__x86_64__)
    if (dt == EL_DTYPE_F16 && st == EL_DTYPE_F32 && have_f16c()) {
        f32_to_f16_f16c(dst, src, n);
        return;
    }
    if (dt == EL_DTYPE_F32 && st == EL_DTYPE_F16 && have_f16c()) {
        f16_to_f32_f16c(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) {
        float v;
        switch (st) {
        case EL_DTYPE_F32: v = ((const float *)src)[i]; break;
        case EL_DTYPE_F16: v = el_f16_to_f32(((const uint16_t *)src)[i]); break;
        case EL_DTYPE_BF16: v = el_bf16_to_f32(((const uint16_t *)src)[i]); break;
        default: v = 0; break;
        }
        switch (dt) {
        case EL_DTYPE_F32: ((float *)dst)[i] = v; break;
        case EL_DTYPE_F16: ((uint16_t *)dst)[i] = el_f32_to_f16(v); break;
        case EL_DTYPE_BF16: ((uint16_t *)dst)[i] = el_f32_to_bf16(v); break;
        default: break;
        }
    }
}
