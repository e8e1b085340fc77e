/* test_dtype.c - float conversions: the vectorised el_convert paths (F16C) against the scalar
 * round-to-nearest-even converters, over random values, subnormals, overflow and specials. */
#include "core/core.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void) { return (uint32_t)(t_xorshift(&rng) >> 11); }

int main(void) {
    enum { N = 1 << 16 };
    static float f[N], back[N];
    static uint16_t h[N], href[N];
    /* random bit patterns (all exponents), plus hand-picked edge cases */
    for (int i = 0; i < N; i++) {
        uint32_t u = next_u32();
        memcpy(&f[i], &u, 4);
        if (isnan(f[i])) f[i] = 1.0f; /* NaN payloads may legitimately differ */
    }
    const float edge[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e-8f, 5.96e-8f, 2.98e-8f,
                          2.99e-8f, 6.1035e-5f, 6.1e-5f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 4096, INFINITY, -INFINITY};
    memcpy(f, edge, sizeof edge);
    for (int i = 0; i < N; i++) href[i] = el_f32_to_f16(f[i]);
    el_convert(EL_DTYPE_F16, h, EL_DTYPE_F32, f, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (h[i] != href[i] && bad++ < 5) fprintf(stderr, "f32->f16 %a: got %04x want %04x\n", f[i], h[i], href[i]);
    CHECKF(bad == 0, "%d of %d f32->f16 conversions differ from the scalar reference", bad, N);
    /* f16 -> f32: every one of the 65536 bit patterns (NaNs compared as NaN) */
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    el_convert(EL_DTYPE_F32, back, EL_DTYPE_F16, h, N);
    bad = 0;
    for (int i = 0; i < N; i++) {
        float want = el_f16_to_f32((uint16_t)i);
        bool same = isnan(want) ? isnan(back[i]) : memcmp(&want, &back[i], 4) == 0;
        if (!same && bad++ < 5) fprintf(stderr, "f16->f32 %04x: got %a want %a\n", i, back[i], want);
    }
    CHECKF(bad == 0, "%d of 65536 f16->f32 conversions differ", bad);
    /* known values */
    CHECK(el_f32_to_f16(1.0f) == 0x3c00 && el_f32_to_f16(-2.0f) == 0xc000 && el_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(el_f32_to_f16(5.960464477539063e-08f) == 0x0001 && el_f16_to_f32(0x0001) == 5.960464477539063e-08f);
    CHECK(el_f32_to_bf16(1.0f) == 0x3f80 && el_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(el_f32_to_bf16(1.00390625f) == 0x3f80); /* tie to even */
    return t_finish("test_dtype");
}
