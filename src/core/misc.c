/* misc.c - hashing (xxHash), clocks, memory and CPU queries. */
#include "core.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

uint64_t el_hash64(const void *p, size_t n) { return (uint64_t)XXH3_64bits(p, n); }

bool el_str_ends_with(const char *s, const char *suffix) {
    const size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

struct el_hasher {
    XXH3_state_t *st;
};
el_hasher *el_hasher_new(void) {
    el_hasher *h = el_calloc(1, sizeof *h);
    if (!h) return NULL;
    h->st = XXH3_createState();
    if (!h->st) {
        el_free(h);
        return NULL;
    }
    XXH3_64bits_reset(h->st);
    return h;
}
void el_hasher_update(el_hasher *h, const void *p, size_t n) { XXH3_64bits_update(h->st, p, n); }
uint64_t el_hasher_digest(el_hasher *h) { return (uint64_t)XXH3_64bits_digest(h->st); }
void el_hasher_free(el_hasher *h) {
    if (!h) return;
    XXH3_freeState(h->st);
    el_free(h);
}

double el_time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

uint64_t el_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}

uint64_t el_phys_mem_bytes(void) {
    const long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

uint64_t el_mem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024u;
}

int el_num_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
