/* bench_membw.c - streaming read bandwidth of this machine: a buffer much larger than the last-level
 * cache is read with wide loads by 1 thread and by all threads (the same thread pool the CPU backend
 * uses); best of N passes, GB/s = 1e9 bytes/s. The runtime reports decode speed as a fraction of the
 * all-threads number.
 *
 * usage: bench_membw [MiB (default 1024)] [passes (default 10)] [threads (default all cores)] */
#include "membw_common.h"

static void spin_run(void *c, int ith, int nth) {
    (void)c;
    (void)ith;
    (void)nth;
    double t0 = el_time_ms();
    while (el_time_ms() - t0 < 0.005) {
    }
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    int passes = argc > 2 ? atoi(argv[2]) : 10;
    int nth = argc > 3 ? atoi(argv[3]) : el_num_cpus();
    if (mib < 64) mib = 64;
    if (passes < 1) passes = 1;
    if (nth < 1) nth = 1;
    rd_task t = {.size = mib << 20, .isa = el_cpu_isa_detect()};
    char *buf = el_aligned_alloc(t.size);
    if (!buf) {
        fprintf(stderr, "bench_membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    membw_fill_random(buf, t.size); /* incompressible, every page faulted in */
    t.buf = buf;
    el_threadpool *tp1 = el_threadpool_create(1), *tpn = el_threadpool_create(nth);
    if (!tp1 || !tpn) return 1;
    printf("bench_membw: buffer %zu MiB, best of %d passes, loads %s\n", mib, passes, el_cpu_isa_name(t.isa));
    double g1 = measure(tp1, &t, passes);
    printf("membw 1 thread : %6.1f GB/s\n", g1);
    double gn = measure(tpn, &t, passes);
    printf("membw %d threads: %6.1f GB/s\n", nth, gn);
    /* thread-pool dispatch overhead: a task where every thread busy-waits 5 us; overhead = run time - 5 us
     * (a worker that has not joined by the time the caller is done makes the caller run its share too) */
    enum { N_RUNS = 20000 };
    static double lat[N_RUNS];
    for (int i = 0; i < N_RUNS; i++) {
        double t0 = el_time_ms();
        el_threadpool_run(tpn, spin_run, NULL);
        lat[i] = (el_time_ms() - t0) * 1000.0 - 5.0;
    }
    qsort(lat, N_RUNS, sizeof lat[0], cmp_double);
    printf("threadpool dispatch overhead (%d threads, 5 us task): min %.2f us, median %.2f us, p90 %.2f us\n", nth,
           lat[0], lat[N_RUNS / 2], lat[N_RUNS * 9 / 10]);
    el_threadpool_free(tp1);
    el_threadpool_free(tpn);
    el_free_aligned(buf);
    return t.sink[0] == 12345.678 ? 2 : 0;
}
