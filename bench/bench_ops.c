/* bench_ops.c - GEMV / small-batch / GEMM / decode-attention throughput of the CPU backend (through its
 * vtable, so thread dispatch is included) for Qwen3-0.6B shapes, per ISA and weight dtype.
 *
 * GEMV reports GB/s of weights streamed and % of the machine's streaming-read bandwidth (measured
 * here with all threads, as bench_membw). Small weight matrices are replicated so that the set of
 * copies (>= 256 MiB) cannot sit in the last-level cache: every call streams from memory.
 *
 * usage: bench_ops [threads (default all cores)] [quick | gemv | gemm] */
#include "backend/backend.h"
#include "membw_common.h"

/* Random, incompressible contents (periodic test data was measured streaming ~40% faster than random data
 * on this VM, so benchmarks must not use it). Values are finite and of moderate size. */
static void fill(void *p, el_dtype t, size_t n, unsigned seed) {
    uint64_t r = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0xbf58476d1ce4e5b9ull);
    for (size_t i = 0; i < n; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        const uint32_t b = (uint32_t)(r >> 20);
        if (t == EL_DTYPE_F32) {
            uint32_t u = (b & 0x807fffffu) | ((120u + ((b >> 23) & 7u)) << 23);
            memcpy((float *)p + i, &u, 4);
        } else if (t == EL_DTYPE_BF16) {
            ((uint16_t *)p)[i] = (uint16_t)((b & 0x807fu) | ((120u + ((b >> 7) & 7u)) << 7));
        } else if (t == EL_DTYPE_F8_E4M3) {
            ((uint8_t *)p)[i] = (uint8_t)((b & 0x87u) | ((4u + ((b >> 3) & 3u)) << 3));
        } else {
            ((uint16_t *)p)[i] = (uint16_t)((b & 0x83ffu) | ((12u + ((b >> 10) & 3u)) << 10));
        }
    }
}

typedef struct shape {
    const char *name;
    int64_t k, n;
} shape;

static const shape k_gemv[] = {{"qkv/o k1024 n2048", 1024, 2048}, {"k/v   k1024 n1024", 1024, 1024},
                               {"up    k1024 n3072", 1024, 3072}, {"down  k3072 n1024", 3072, 1024},
                               {"lm_head n151936", 1024, 151936}};

static double g_membw;

/* seconds per matmul call: every call is timed (copies of W are cycled, so each call streams a cold
 * matrix) and the best one counts, which keeps the figure meaningful on a shared, busy machine */
static double time_matmul(el_backend *be, const float *x, int64_t m, int64_t k, void **ws, int copies, el_dtype wt,
                          int64_t n, float *y, int rounds) {
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        for (int c = 0; c < copies; c++) {
            double t0 = el_time_ms();
            be->iface.matmul(be, x, m, k, ws[c], wt, n, NULL, y, n);
            double dt = (el_time_ms() - t0) / 1e3;
            if (dt < best) best = dt;
        }
    }
    return best;
}

static void bench_gemv(el_backend *be, el_cpu_isa isa, el_dtype wt, bool quick, int nth) {
    const size_t es = el_dtype_size(wt);
    for (size_t si = 0; si < sizeof k_gemv / sizeof k_gemv[0]; si++) {
        const shape *s = &k_gemv[si];
        size_t wbytes = (size_t)(s->k * s->n) * es;
        int copies = (int)((256u << 20) / wbytes + 1);
        if (copies > 128) copies = 128;
        void **ws = calloc((size_t)copies, sizeof *ws);
        for (int c = 0; c < copies; c++) {
            ws[c] = el_aligned_alloc(wbytes);
            fill(ws[c], wt, (size_t)(s->k * s->n), (unsigned)c);
        }
        float *x = el_aligned_alloc((size_t)(8 * s->k) * 4), *y = el_aligned_alloc((size_t)(8 * s->n) * 4);
        fill(x, EL_DTYPE_F32, (size_t)(8 * s->k), 7);
        const int rounds = quick ? 3 : (isa == EL_ISA_SCALAR ? 3 : 20);
        time_matmul(be, x, 1, s->k, ws, copies, wt, s->n, y, 1); /* warm-up */
        double t = time_matmul(be, x, 1, s->k, ws, copies, wt, s->n, y, rounds);
        double gbs = (double)wbytes / t / 1e9;
        printf("  gemv m=1 %-18s %-4s %-6s %2dT: %8.1f us %7.1f GB/s %5.1f%% of membw\n", s->name, el_dtype_name(wt),
               el_cpu_isa_name(isa), nth, t * 1e6, gbs, 100.0 * gbs / g_membw);
        if (si == 2 && isa != EL_ISA_SCALAR) { /* small batches read W once for all rows */
            static const int64_t ms[] = {2, 4, 8};
            for (int mi = 0; mi < 3; mi++) {
                double tm = time_matmul(be, x, ms[mi], s->k, ws, copies, wt, s->n, y, rounds);
                double gm = (double)wbytes / tm / 1e9;
                printf("  gemv m=%lld %-18s %-4s %-6s %2dT: %8.1f us %7.1f GB/s %5.1f%% of membw (%.2fx m=1 time)\n",
                       (long long)ms[mi], s->name, el_dtype_name(wt), el_cpu_isa_name(isa), nth, tm * 1e6, gm,
                       100.0 * gm / g_membw, tm / t);
            }
        }
        for (int c = 0; c < copies; c++) el_free_aligned(ws[c]);
        free(ws);
        el_free_aligned(x);
        el_free_aligned(y);
        if (quick && si >= 1 && si < 4) continue;
    }
}

static void bench_gemm(el_backend *be, el_cpu_isa isa, el_dtype wt, int nth, bool quick) {
    static const shape gs[] = {{"k1024 n2048", 1024, 2048}, {"k1024 n3072", 1024, 3072}, {"k3072 n1024", 3072, 1024}};
    const int64_t m = 512;
    for (size_t si = 0; si < (quick ? 1u : 3u); si++) {
        const shape *s = &gs[si];
        void *w = el_aligned_alloc((size_t)(s->k * s->n) * el_dtype_size(wt));
        fill(w, wt, (size_t)(s->k * s->n), 1);
        float *x = el_aligned_alloc((size_t)(m * s->k) * 4), *y = el_aligned_alloc((size_t)(m * s->n) * 4);
        fill(x, EL_DTYPE_F32, (size_t)(m * s->k), 3);
        time_matmul(be, x, m, s->k, &w, 1, wt, s->n, y, 1);
        double t = time_matmul(be, x, m, s->k, &w, 1, wt, s->n, y, quick ? 2 : 5);
        double gf = 2.0 * (double)m * (double)s->k * (double)s->n / t / 1e9;
        printf("  gemm m=512 %-12s %-4s %-6s %2dT: %8.2f ms %7.1f GFLOP/s\n", s->name, el_dtype_name(wt),
               el_cpu_isa_name(isa), nth, t * 1e3, gf);
        el_free_aligned(w);
        el_free_aligned(x);
        el_free_aligned(y);
    }
}

static void bench_attention(el_backend *be, el_cpu_isa isa, el_dtype kt, int nth) {
    const int64_t nh = 16, nkv = 8, hd = 128, cap = 4096;
    const size_t es = el_dtype_size(kt), nc = (size_t)(nkv * cap * hd);
    void *kc = el_aligned_alloc(nc * es), *vc = el_aligned_alloc(nc * es);
    fill(kc, kt, nc, 1);
    fill(vc, kt, nc, 2);
    float *q = el_aligned_alloc((size_t)(nh * hd) * 4), *o = el_aligned_alloc((size_t)(nh * hd) * 4);
    fill(q, EL_DTYPE_F32, (size_t)(nh * hd), 3);
    static const int32_t ctxs[] = {512, 4095};
    for (int ci = 0; ci < 2; ci++) {
        int32_t slot = 0, pos = ctxs[ci];
        double best = 1e30;
        for (int r = 0; r < 20; r++) {
            double t0 = el_time_ms();
            be->iface.attention(be, q, 1, nh, nkv, hd, &slot, &pos, pos, kc, vc, kt, 1.f, 1.f, cap, 0.088f,
                                o);
            double dt = el_time_ms() - t0;
            if (dt < best) best = dt;
        }
        double bytes = 2.0 * (double)(pos + 1) * (double)(nkv * hd) * (double)es;
        printf("  attention decode ctx=%-5d 16/8 heads hd128 kv=%-4s %-6s %2dT: %8.1f us %7.1f GB/s of KV\n", pos + 1,
               el_dtype_name(kt), el_cpu_isa_name(isa), nth, best * 1e3, bytes / (best * 1e-3) / 1e9);
    }
    el_free_aligned(kc);
    el_free_aligned(vc);
    el_free_aligned(q);
    el_free_aligned(o);
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : el_num_cpus();
    bool quick = argc > 2 && !strcmp(argv[2], "quick");
    bool gemv_only = argc > 2 && !strcmp(argv[2], "gemv");
    bool gemm_only = argc > 2 && !strcmp(argv[2], "gemm");
    if (nth < 1) nth = 1;
    el_threadpool *tp = el_threadpool_create(nth);
    g_membw = membw_measure(tp, 1024, quick ? 3 : 8);
    el_threadpool_free(tp);
    printf("bench_ops: %d threads, membw (all threads) %.1f GB/s, best ISA %s\n", nth, g_membw,
           el_cpu_isa_name(el_cpu_isa_detect()));
    el_backend *be1 = NULL, *ben = NULL;
    el_backend_params p1 = {.n_threads = 1}, pn = {.n_threads = nth};
    if (el_backend_create("cpu", &p1, &be1) || el_backend_create("cpu", &pn, &ben)) {
        fprintf(stderr, "bench_ops: %s\n", edgellm_last_error());
        return 1;
    }
    const el_dtype dts[3] = {EL_DTYPE_BF16, EL_DTYPE_F16, EL_DTYPE_F32};
    el_cpu_isa best = el_cpu_isa_detect();
    for (int isa = (int)best; isa >= (quick || gemv_only ? (int)best : gemm_only ? 1 : 0); isa--) {
        el_cpu_isa_set((el_cpu_isa)isa);
        printf("[%s]\n", el_cpu_isa_name((el_cpu_isa)isa));
        for (int d = 0; d < 3 && !gemm_only; d++) {
            bench_gemv(ben, (el_cpu_isa)isa, dts[d], quick, nth);
            if (isa == (int)best && nth > 1) bench_gemv(be1, (el_cpu_isa)isa, dts[d], true, 1);
        }
        if (gemv_only) continue;
        if (isa != EL_ISA_SCALAR)
            for (int d = 0; d < 3; d++) bench_gemm(ben, (el_cpu_isa)isa, dts[d], nth, quick);
        if (isa != EL_ISA_SCALAR)
            for (int d = 0; d < 4; d++) /* and the fp8 KV cache */
                bench_attention(ben, (el_cpu_isa)isa, d < 3 ? dts[d] : EL_DTYPE_F8_E4M3, nth);
    }
    el_cpu_isa_set(best);
    el_backend_free(be1);
    el_backend_free(ben);
    return 0;
}
