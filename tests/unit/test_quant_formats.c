/* test_quant_formats.c - quantized weight formats (kernels/quant.h): fp8/fp4 conversions, bit-exact
 * packing on hand-made blocks, quantize -> dequantize error bounds, the reference matmul against an f32
 * matmul on the dequantized weights with the same activation emulation, header validation and the CPU
 * backend routing. */
#include "backend/backend.h"
#include "export/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static void test_fp8_fp4(void) {
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7f) == 0x7f) continue; /* NaN */
        float f = el_e4m3_to_f32((uint8_t)c);
        if (el_f32_to_e4m3(f) != (uint8_t)c) bad++;
    }
    CHECKF(bad == 0, "%d e4m3 codes do not round-trip", bad);
    CHECK(el_e4m3_to_f32(0x7e) == 448.0f);
    CHECK(el_e4m3_to_f32(0x38) == 1.0f);
    CHECK(el_e4m3_to_f32(0x01) == 0.001953125f);
    CHECK(el_f32_to_e4m3(1000.0f) == 0x7e);
    CHECK(el_f32_to_e4m3(-1000.0f) == 0xfe);
    CHECK(el_f32_to_e4m3(1.0625f) == 0x38);  /* tie -> even mantissa */
    CHECK(el_f32_to_e4m3(1.1875f) == 0x3a);
    CHECK(el_f32_to_e4m3(0.0009765625f) == 0x00); /* half of the smallest subnormal: tie to 0 */
    CHECK(el_f32_to_e4m3(0.0029296875f) == 0x02); /* 1.5 * 2^-9: tie to even (2) */
    for (int c = 0; c < 16; c++) {
        if (c == 8) continue; /* -0 */
        CHECK(el_f32_to_e2m1(el_e2m1_to_f32((uint8_t)c)) == c);
    }
    CHECK(el_f32_to_e2m1(0.25f) == 0);
    CHECK(el_f32_to_e2m1(0.75f) == 2);
    CHECK(el_f32_to_e2m1(2.5f) == 4);
    CHECK(el_f32_to_e2m1(5.0f) == 6);
    CHECK(el_f32_to_e2m1(-100.0f) == 15);
}

static void test_packing(void) {
    /* q4_0: x[i] = i - 16 -> max = -16, d = 2, q = (int8)(x / -2... ) as ggml */
    float x[32];
    uint8_t b[18];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16);
    CHECK_OK(el_quantize_ref(EL_DTYPE_Q4_0, x, 1, 32, NULL, b));
    uint16_t d;
    memcpy(&d, b, 2);
    CHECK(el_f16_to_f32(d) == 2.0f);
    /* id = 0.5: x0 = -16 -> -8 + 8.5 -> 0; x16 = 0 -> 8; x31 = 15 -> 16 -> 15 (clamped) */
    CHECK(b[2] == (0 | (8 << 4)));
    CHECK(b[2 + 15] == 0xf8); /* x15 = -1 -> 8, x31 -> 15 */
    /* q8_0 */
    uint8_t b8[34];
    CHECK_OK(el_quantize_ref(EL_DTYPE_Q8_0, x, 1, 32, NULL, b8));
    memcpy(&d, b8, 2);
    CHECK(fabsf(el_f16_to_f32(d) - 16.0f / 127.0f) < 1e-4f);
    CHECK((int8_t)b8[2] == -127 && (int8_t)b8[2 + 31] == (int8_t)roundf(15 * 127.0f / 16.0f));
    /* w4a16: symmetric, one group of 8: m = 7 -> s = 7 / -8, q = rne(v / s) + 8, low nibble first */
    const float w4[8] = {1, -1, 0, 0, 0, 0, 0, 7};
    el_qopts o = el_qopts_default();
    o.group = 8;
    size_t nb = el_weight_nbytes(EL_DTYPE_Q_W4A16, 1, 8, 8, false);
    uint8_t *q = el_aligned_alloc(nb);
    CHECK_OK(el_quantize_ref(EL_DTYPE_Q_W4A16, w4, 1, 8, &o, q));
    el_qhdr h;
    memcpy(&h, q, sizeof h);
    CHECK(h.magic == EL_QHDR_MAGIC && h.group == 8 && h.scales_off == 64 && h.quants_off == 128 && h.nbytes == nb);
    uint16_t s16;
    memcpy(&s16, q + 64, 2);
    CHECK(el_f16_to_f32(s16) == -0.875f);
    CHECK(q[128] == 0x97 && q[129] == 0x88 && q[130] == 0x88 && q[131] == 0x08);
    el_free_aligned(q);
    /* nvfp4: global = 6 / (6 * 448); block scale e4m3(448) = 0x7e; codes 6 -> 7, -6 -> 15, 0.5 -> 1 */
    float w16[16] = {6, -6, 0.5f};
    nb = el_weight_nbytes(EL_DTYPE_Q_NVFP4, 1, 16, 0, false);
    q = el_aligned_alloc(nb);
    CHECK_OK(el_quantize_ref(EL_DTYPE_Q_NVFP4, w16, 1, 16, NULL, q));
    memcpy(&h, q, sizeof h);
    CHECK(fabsf(h.global_scale - 1.0f / 448.0f) < 1e-9f);
    CHECK(q[h.scales_off] == 0x7e);
    CHECK(q[h.quants_off] == 0xf7 && q[h.quants_off + 1] == 0x01);
    el_free_aligned(q);
}

typedef struct fmt_case {
    el_dtype t;
    int64_t k;
    el_qopts o;
    double max_nmse; /* of the dequantized weights */
} fmt_case;

static void test_roundtrip_and_matmul(void) {
    fmt_case cases[] = {
        {EL_DTYPE_Q_W8A8, 96, {128, 0, false, false}, 1e-4},
        {EL_DTYPE_Q_W8A8, 100, {128, 0.02f, false, false}, 1e-4}, /* static act scale */
        {EL_DTYPE_Q_FP8, 96, {128, 0.01f, false, false}, 2e-3},
        {EL_DTYPE_Q_FP8, 100, {128, 0.0f, true, false}, 2e-3},   /* per-tensor, weight only */
        {EL_DTYPE_Q_W4A16, 256, {128, 0, false, false}, 3e-2},
        {EL_DTYPE_Q_W4A16, 100, {32, 0, false, false}, 2e-2},    /* ragged last group */
        {EL_DTYPE_Q_W4A16, 96, {32, 0, false, true}, 2e-2},      /* asymmetric with zeros */
        {EL_DTYPE_Q_NVFP4, 96, {0}, 3e-2},
        {EL_DTYPE_Q_NVFP4, 172, {0}, 3e-2},
        {EL_DTYPE_Q8_0, 96, {0}, 1e-4},
        {EL_DTYPE_Q4_0, 96, {0}, 2e-2},
    };
    const int64_t n = 40, m = 3;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        fmt_case *c = &cases[ci];
        const int64_t k = c->k;
        float *w = malloc(sizeof(float) * (size_t)(n * k)), *wd = malloc(sizeof(float) * (size_t)(n * k));
        float *x = malloc(sizeof(float) * (size_t)(m * k)), *xe = malloc(sizeof(float) * (size_t)(m * k));
        float y[3 * 40], yr[3 * 40], bias[40];
        for (int64_t i = 0; i < n * k; i++) w[i] = frand() * 0.1f * (1 + (i % 7 == 0) * 3);
        for (int64_t i = 0; i < m * k; i++) x[i] = frand() * ((i % 13) ? 1.0f : 4.0f);
        for (int64_t j = 0; j < n; j++) bias[j] = frand();
        size_t nb = el_weight_nbytes(c->t, n, k, c->o.group, c->o.zeros);
        CHECKF(nb > 0, "%s k=%lld: size", el_dtype_name(c->t), (long long)k);
        void *q = el_aligned_alloc(nb);
        CHECK_OK(el_quantize_ref(c->t, w, n, k, &c->o, q));
        CHECK_OK(el_qweight_check(q, nb, c->t, n, k));
        if (c->t != EL_DTYPE_Q8_0 && c->t != EL_DTYPE_Q4_0) CHECK(el_qweight_nbytes_of(q, c->t, n, k) == nb);
        el_dequantize_ref(c->t, q, n, k, wd);
        double e = t_nmse(w, wd, (size_t)(n * k));
        CHECKF(e < c->max_nmse && e > 0, "%s k=%lld: weight nmse %g", el_dtype_name(c->t), (long long)k, e);
        /* per-element bound for the integer formats: |w - dq| <= scale / 2 (+ f16 scale rounding) */
        if (c->t == EL_DTYPE_Q_W8A8) {
            el_qhdr h;
            memcpy(&h, q, sizeof h);
            const float *sc = (const float *)((const char *)q + h.scales_off);
            int over = 0;
            for (int64_t j = 0; j < n; j++)
                for (int64_t i = 0; i < k; i++)
                    if (fabsf(w[j * k + i] - wd[j * k + i]) > sc[j] * 0.5001f) over++;
            CHECKF(over == 0, "w8a8: %d elements beyond half a step", over);
        }
        /* reference matmul == f32 matmul on dequantized weights with the same activation emulation */
        el_ref_qmatmul(x, m, k, q, c->t, n, 0, n, bias, y, n);
        memcpy(xe, x, sizeof(float) * (size_t)(m * k));
        for (int64_t i = 0; i < m; i++) el_ref_qact_roundtrip(q, c->t, xe + i * k, k);
        edgellm_ref_matmul(xe, m, k, wd, EL_DTYPE_F32, n, bias, yr);
        double em = t_nmse(yr, y, (size_t)(m * n));
        CHECKF(em < 1e-11, "%s k=%lld: matmul nmse %g vs dequantized", el_dtype_name(c->t), (long long)k, em);
        /* and against the unquantized product: the quantization error is small but not zero */
        float yf[3 * 40];
        edgellm_ref_matmul(x, m, k, w, EL_DTYPE_F32, n, bias, yf);
        double ef = t_nmse(yf, y, (size_t)(m * n));
        CHECKF(ef < 0.05, "%s k=%lld: matmul nmse %g vs f32", el_dtype_name(c->t), (long long)k, ef);
        /* edgellm_ref_matmul routes quantized dtypes, and a range of rows writes only those rows */
        float y2[3 * 40];
        for (int i = 0; i < 3 * 40; i++) y2[i] = 12345.0f;
        el_ref_qmatmul(x, m, k, q, c->t, n, 8, 24, bias, y2, n);
        int bad = 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                if ((j >= 8 && j < 24) ? y2[i * n + j] != y[i * n + j] : y2[i * n + j] != 12345.0f) bad++;
        CHECKF(bad == 0, "%s: row range wrote %d wrong values", el_dtype_name(c->t), bad);
        edgellm_ref_matmul(x, m, k, q, c->t, n, bias, y2);
        CHECK(memcmp(y, y2, sizeof(float) * (size_t)(m * n)) == 0);
        /* CPU backend (2 threads): the reference, or the SIMD kernels (bit-identical for the int8-activation
         * formats; NMSE < 1e-6 for w4a16 / fp8 / nvfp4, test_qkernels_float.c) */
        el_backend *be = NULL;
        el_backend_params bp = {.n_threads = 2};
        CHECK_OK(el_backend_cpu_create(&bp, &be));
        if (be) {
            float y3[3 * 40];
            CHECK_OK(be->iface.matmul(be, x, m, k, q, c->t, n, bias, y3, n));
            const bool wq = c->t == EL_DTYPE_Q_W4A16 || c->t == EL_DTYPE_Q_FP8 || c->t == EL_DTYPE_Q_NVFP4;
            if (wq)
                CHECKF(t_nmse(y, y3, (size_t)(m * n)) < 1e-6, "%s: backend nmse %g", el_dtype_name(c->t),
                       t_nmse(y, y3, (size_t)(m * n)));
            else
                CHECK(memcmp(y, y3, sizeof(float) * (size_t)(m * n)) == 0);
            el_backend_free(be);
        }
        /* a corrupted header is refused */
        if (c->t != EL_DTYPE_Q8_0 && c->t != EL_DTYPE_Q4_0) {
            ((uint8_t *)q)[8] ^= 1; /* n */
            CHECK(el_qweight_check(q, nb, c->t, n, k) == EDGELLM_STATUS_FORMAT);
            ((uint8_t *)q)[8] ^= 1;
            CHECK(el_qweight_check(q, nb - 64, c->t, n, k) == EDGELLM_STATUS_FORMAT);
        }
        el_free_aligned(q);
        free(w);
        free(wd);
        free(x);
        free(xe);
    }
    CHECK(el_weight_nbytes(EL_DTYPE_Q8_0, 4, 100, 0, false) == 0);
    CHECK(el_weight_nbytes(EL_DTYPE_BF16, 4, 100, 0, false) == 800);
    CHECK(el_dtype_size(EL_DTYPE_Q_W4A16) == 0 && el_dtype_is_quant(EL_DTYPE_Q4_0) && !el_dtype_is_quant(EL_DTYPE_BF16));
    el_dtype t;
    CHECK(!el_dtype_from_st_name("w8a8", &t));
}

/* Integer formats: the int dot is exact, so the result equals the hand-computed formula. */
static void test_w8a8_exact(void) {
    const int64_t n = 2, k = 4;
    const float w[8] = {1.27f, -0.5f, 0.25f, 0, 0, 0, 0, -2.54f};
    const float x[4] = {1, 2, -4, 0.5f};
    size_t nb = el_weight_nbytes(EL_DTYPE_Q_W8A8, n, k, 0, false);
    void *q = el_aligned_alloc(nb);
    CHECK_OK(el_quantize_ref(EL_DTYPE_Q_W8A8, w, n, k, NULL, q));
    float y[2];
    el_ref_qmatmul(x, 1, k, q, EL_DTYPE_Q_W8A8, n, 0, n, NULL, y, n);
    /* row 0: s_w = 0.01, q = 127, -50, 25, 0; x: s_x = 4/127, xq = rne(x*127/4) = 32, 64, -127, 16 */
    int32_t isum = 127 * 32 + (-50) * 64 + 25 * (-127) + 0;
    float want = ((float)isum * (1.27f / 127.0f)) * (4.0f / 127.0f);
    CHECKF(y[0] == want, "w8a8 row 0: %.9g vs %.9g", y[0], want);
    el_free_aligned(q);
}

/* q8_0 / q4_0 blocks are bit-identical to the GGUF writer's ggml quantizers (one layout for both). */
static void test_ggml_same_as_gguf(void) {
    const int64_t k = 256;
    float x[256];
    for (int i = 0; i < k; i++) x[i] = frand() * (i % 17 == 0 ? 5.0f : 1.0f);
    x[5] = 0; /* a zero block would give d = 0 */
    uint8_t a[256 / 32 * 34], b[256 / 32 * 34];
    CHECK_OK(el_quantize_ref(EL_DTYPE_Q8_0, x, 1, k, NULL, a));
    el_ggml_quantize_q8_0(x, b, k);
    CHECK(memcmp(a, b, (size_t)(k / 32 * 34)) == 0);
    CHECK_OK(el_quantize_ref(EL_DTYPE_Q4_0, x, 1, k, NULL, a));
    el_ggml_quantize_q4_0(x, b, k);
    CHECK(memcmp(a, b, (size_t)(k / 32 * 18)) == 0);
    float d1[256], d2[256];
    el_dequantize_ref(EL_DTYPE_Q4_0, a, 1, k, d1);
    el_ggml_dequantize_q4_0(a, d2, k);
    CHECK(memcmp(d1, d2, sizeof d1) == 0);
}

int main(void) {
    test_ggml_same_as_gguf();
    test_fp8_fp4();
    test_packing();
    test_roundtrip_and_matmul();
    test_w8a8_exact();
    return t_finish("test_quant_formats");
}
