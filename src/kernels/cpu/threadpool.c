/* threadpool.c - persistent worker threads for the CPU backend.
 *
 * el_threadpool_run may be called from any thread; while one run is in progress, another caller (or a
 * task that runs the pool again) executes its task alone on its own thread, fn(ctx, 0, 1).
 *
 * A run publishes (fn, ctx) under a new generation; workers spin on the generation for a while (a decode
 * step issues ~200 back-to-back runs, so they are normally still spinning), then yield, then sleep on a
 * futex. A worker *joins* the run with a CAS on the run state and takes the next thread index. When the
 * caller has finished its own share (ith = 0) it closes the run: indices that no worker joined for are
 * run by the caller itself, and it waits only for the workers that did join. So a worker that lost its
 * core to another process never stalls an op, and nothing is allocated per run. */
#include "kernels/kernels.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TP_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define TP_PAUSE() __asm__ __volatile__("yield")
#else
#define TP_PAUSE() ((void)0)
#endif

/* Waiting: TP_SPIN pause iterations (~10-60 ns each on current x86), then TP_YIELD sched_yield()s
 * (so that an oversubscribed pool still makes progress), then sleep on the futex. */
#define TP_SPIN 4000
#define TP_YIELD 200

#define ST_CLOSED 0x80000000ull /* run state: gen << 32 | CLOSED | joined workers */
#define ST_JOINED 0x7fffffffull

struct el_threadpool {
    int n; /* threads including the caller */
    pthread_t *threads;
    el_task_fn fn;
    void *ctx;
    uint32_t gen_main;                  /* caller's generation counter */
    _Alignas(64) _Atomic uint32_t gen;  /* futex word: bumped once per run (and at shutdown) */
    _Atomic int n_sleep;                /* workers sleeping on gen */
    _Atomic int stop;
    _Alignas(64) _Atomic uint64_t st;   /* run state */
    _Alignas(64) _Atomic uint32_t done; /* joined workers finished with the current run */
    _Atomic int main_sleep;
    _Atomic int busy; /* a run is in progress (a second caller, or a nested run, goes serial) */
};

static void tp_wait(_Atomic uint32_t *addr, uint32_t val) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    (void)addr;
    (void)val;
    sched_yield();
#endif
}
static void tp_wake(_Atomic uint32_t *addr) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

/* Returns false once the caller should go to sleep. */
static inline bool tp_backoff(int *spins) {
    int s = ++*spins;
    if (s < TP_SPIN) {
        TP_PAUSE();
        return true;
    }
    if (s < TP_SPIN + TP_YIELD) {
        sched_yield();
        return true;
    }
    return false;
}

static void *tp_worker(void *p) {
    el_threadpool *tp = p;
    uint32_t seen = 0; /* gen at creation: a worker that starts late still sees run 1 */
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen) {
            if (tp_backoff(&spins)) continue;
            atomic_fetch_add(&tp->n_sleep, 1);
            tp_wait(&tp->gen, seen); /* returns at once if gen moved on */
            atomic_fetch_sub(&tp->n_sleep, 1);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&tp->stop)) break;
        uint64_t s = atomic_load(&tp->st);
        while ((uint32_t)(s >> 32) == g && !(s & ST_CLOSED)) {
            if (atomic_compare_exchange_weak(&tp->st, &s, s + 1)) {
                /* joined: the caller cannot start another run before we count as done */
                int ith = (int)(s & ST_JOINED) + 1;
                tp->fn(tp->ctx, ith, tp->n);
                atomic_fetch_add(&tp->done, 1);
                if (atomic_load(&tp->main_sleep)) tp_wake(&tp->done);
                break;
            }
        }
    }
    return NULL;
}

el_threadpool *el_threadpool_create(int n_threads) {
    if (n_threads <= 0) n_threads = el_num_cpus();
    if (n_threads > 1024) n_threads = 1024;
    el_threadpool *tp = el_aligned_alloc(sizeof *tp);
    if (!tp) return NULL;
    tp->n = n_threads;
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->n_sleep, 0);
    atomic_init(&tp->stop, 0);
    atomic_init(&tp->st, ST_CLOSED);
    atomic_init(&tp->done, 0);
    atomic_init(&tp->main_sleep, 0);
    atomic_init(&tp->busy, 0);
    if (n_threads > 1) {
        tp->threads = el_calloc((size_t)n_threads, sizeof *tp->threads);
        if (!tp->threads) {
            el_free_aligned(tp);
            return NULL;
        }
        for (int i = 1; i < n_threads; i++) {
            if (pthread_create(&tp->threads[i], NULL, tp_worker, tp) != 0) {
                tp->n = i; /* shut down the ones started */
                el_threadpool_free(tp);
                return NULL;
            }
        }
    }
    return tp;
}

void el_threadpool_free(el_threadpool *tp) {
    if (!tp) return;
    if (tp->n > 1) {
        atomic_store(&tp->stop, 1);
        atomic_fetch_add(&tp->gen, 1);
        tp_wake(&tp->gen);
        for (int i = 1; i < tp->n; i++) pthread_join(tp->threads[i], NULL);
    }
    el_free(tp->threads);
    el_free_aligned(tp);
}

int el_threadpool_size(const el_threadpool *tp) { return tp ? tp->n : 1; }

void el_threadpool_run(el_threadpool *tp, el_task_fn fn, void *ctx) {
    if (!tp || tp->n <= 1 || atomic_exchange_explicit(&tp->busy, 1, memory_order_acquire)) {
        fn(ctx, 0, 1); /* no pool, or the pool is in use by another caller (or this is a nested run) */
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->done, 0, memory_order_relaxed);
    const uint32_t g = ++tp->gen_main;
    atomic_store(&tp->st, (uint64_t)g << 32); /* open, nobody joined */
    atomic_store(&tp->gen, g);                /* seq_cst: ordered before the n_sleep load */
    if (atomic_load(&tp->n_sleep) > 0) tp_wake(&tp->gen);
    fn(ctx, 0, tp->n);
    /* close the run; do the shares nobody joined for */
    const uint32_t joined = (uint32_t)(atomic_fetch_or(&tp->st, ST_CLOSED) & ST_JOINED);
    for (int ith = (int)joined + 1; ith < tp->n; ith++) fn(ctx, ith, tp->n);
    uint32_t d;
    int spins = 0;
    while ((d = atomic_load_explicit(&tp->done, memory_order_acquire)) != joined) {
        if (tp_backoff(&spins)) continue;
        atomic_store(&tp->main_sleep, 1);
        d = atomic_load(&tp->done);
        if (d != joined) tp_wait(&tp->done, d);
        atomic_store(&tp->main_sleep, 0);
        spins = 0;
    }
    atomic_store_explicit(&tp->busy, 0, memory_order_release);
}
