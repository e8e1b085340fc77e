/*
 * ktrace.c - a CUPTI injection library: every kernel a process runs (CUDA graph nodes included) as one CSV
 * line `start_ns,end_ns,grid,block,name` in $EDGELLM_KTRACE (default ktrace.csv). For machines without Nsight
 * Systems: Nsight Compute serializes kernels and flushes caches, so it cannot show what a kernel costs inside
 * a graph with programmatic dependent launch; these timestamps can (tests/gpu/ktrace.sh turns them into each
 * kernel's share of the critical path).
 *
 * Build: cc -O2 -shared -fPIC -o libktrace.so tests/gpu/ktrace.c -I$CUDA/include -L$CUDA/lib64 -lcupti
 * Use:   CUDA_INJECTION64_PATH=$PWD/libktrace.so EDGELLM_KTRACE=out.csv edgellm bench ...
 * (the CUDA driver calls InitializeInjection when it initializes; records are written as CUPTI hands buffers
 * back and at exit.)
 */
#include <cupti.h>

#include <stdio.h>
#include <stdlib.h>

#define KT_BUF (8u << 20)

static FILE *kt_out;

static void CUPTIAPI kt_request(uint8_t **buf, size_t *size, size_t *max_records) {
    *buf = aligned_alloc(8, KT_BUF);
    *size = *buf ? KT_BUF : 0;
    *max_records = 0;
}

static void CUPTIAPI kt_complete(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size, size_t valid) {
    (void)ctx, (void)stream, (void)size;
    CUpti_Activity *rec = NULL;
    while (kt_out && cuptiActivityGetNextRecord(buf, valid, &rec) == CUPTI_SUCCESS) {
        if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL)
            continue;
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)rec;
        fprintf(kt_out, "%llu,%llu,%dx%dx%d,%dx%dx%d,\"%s\"\n", (unsigned long long)k->start,
                (unsigned long long)k->end, k->gridX, k->gridY, k->gridZ, k->blockX, k->blockY, k->blockZ,
                k->name ? k->name : "?");
    }
    free(buf);
}

static void kt_exit(void) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    if (kt_out) fclose(kt_out);
    kt_out = NULL;
}

int InitializeInjection(void);
int InitializeInjection(void) {
    const char *path = getenv("EDGELLM_KTRACE");
    kt_out = fopen(path && *path ? path : "ktrace.csv", "w");
    if (!kt_out) return 0;
    if (cuptiActivityRegisterCallbacks(kt_request, kt_complete) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
        fprintf(stderr, "ktrace: CUPTI activity tracing unavailable\n");
        return 0;
    }
    atexit(kt_exit);
    return 1;
}
