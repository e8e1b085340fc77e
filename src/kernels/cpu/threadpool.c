/* threadpool.c - persistent worker threads for the CPU backend.
 *
 * el_threadpool_run publishes (fn, ctx) by bumping a generation counter; workers spin on it for a
 * short while (a decode step issues ~200 back-to-back runs, so they are usually still spinning) and
 * then sleep on a futex. Completion is a counter the caller spins on (then sleeps on). No allocation
 * happens per run. */
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
#else
#define TP_PAUSE() ((void)0)
#endif

/* Waiting: TP_SPIN pause iterations (~10-60 ns each on current x86), then TP_YIELD sched_yield()s
 * (so that an oversubscribed pool still makes progress), then sleep on the futex. */
#define TP_SPIN 4000
#define TP_YIELD 200

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

struct el_threadpool {
    int n;                              /* threads including the caller */
    pthread_t *threads;
    el_task_fn fn;
    void *ctx;
    _Alignas(64) _Atomic uint32_t gen;  /* bumped once per run (and at shutdown) */
    _Atomic int n_sleep;                /* workers sleeping on gen */
    _Alignas(64) _Atomic uint32_t done; /* workers finished with the current run */
    _Atomic int main_sleep;
    _Atomic int stop;
    struct tp_arg {
        el_threadpool *tp;
        int ith;
    } *args;
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

static void *tp_worker(void *p) {
    struct tp_arg *a = p;
    el_threadpool *tp = a->tp;
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
        tp->fn(tp->ctx, a->ith, tp->n);
        if ((int)atomic_fetch_add(&tp->done, 1) + 1 == tp->n - 1 &&
            atomic_load(&tp->main_sleep))
            tp_wake(&tp->done);
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
    atomic_init(&tp->done, 0);
    atomic_init(&tp->main_sleep, 0);
    atomic_init(&tp->stop, 0);
    if (n_threads > 1) {
        tp->threads = el_calloc((size_t)n_threads, sizeof *tp->threads);
        tp->args = el_calloc((size_t)n_threads, sizeof *tp->args);
        if (!tp->threads || !tp->args) goto fail;
        for (int i = 1; i < n_threads; i++) {
            tp->args[i].tp = tp;
            tp->args[i].ith = i;
            if (pthread_create(&tp->threads[i], NULL, tp_worker, &tp->args[i]) != 0) {
                tp->n = i; /* shut down the ones started */
                el_threadpool_free(tp);
                return NULL;
            }
        }
    }
    return tp;
fail:
    el_free(tp->threads);
    el_free(tp->args);
    el_free_aligned(tp);
    return NULL;
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
    el_free(tp->args);
    el_free_aligned(tp);
}

int el_threadpool_size(const el_threadpool *tp) { return tp ? tp->n : 1; }

void el_threadpool_run(el_threadpool *tp, el_task_fn fn, void *ctx) {
    if (!tp || tp->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->done, 0, memory_order_relaxed);
    atomic_fetch_add(&tp->gen, 1); /* seq_cst: publishes fn/ctx/done, ordered before the n_sleep load */
    if (atomic_load(&tp->n_sleep) > 0) tp_wake(&tp->gen);
    fn(ctx, 0, tp->n);
    uint32_t want = (uint32_t)(tp->n - 1), d;
    int spins = 0;
    while ((d = atomic_load_explicit(&tp->done, memory_order_acquire)) != want) {
        if (tp_backoff(&spins)) continue;
        atomic_store(&tp->main_sleep, 1);
        d = atomic_load(&tp->done);
        if (d != want) tp_wait(&tp->done, d);
        atomic_store(&tp->main_sleep, 0);
        spins = 0;
    }
}
