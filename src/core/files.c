/* files.c - mmap, whole-file reads and writes, directories, atomic output directories. */
#include "core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

edgellm_status el_mmap_open(const char *path, el_mmap *m) {
    m->data = NULL;
    m->size = 0;
    m->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return el_err(EDGELLM_STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return el_err(EDGELLM_STATUS_IO, "%s is not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size == 0) {
        m->fd = fd;
        return EDGELLM_STATUS_OK;
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return el_err(EDGELLM_STATUS_IO, "cannot map %s: %s", path, strerror(errno));
    }
    m->data = p;
    m->fd = fd;
    return EDGELLM_STATUS_OK;
}

void el_drop_pages(const void *p, size_t n) {
    static size_t page;
    if (!page) {
        long ps = sysconf(_SC_PAGESIZE);
        page = ps > 0 ? (size_t)ps : 4096;
    }
    uintptr_t b = (uintptr_t)p & ~(uintptr_t)(page - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(page - 1);
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}

void el_mmap_close(el_mmap *m) {
    if (m->data) munmap(m->data, m->size);
    if (m->fd >= 0) close(m->fd);
    m->data = NULL;
    m->size = 0;
    m->fd = -1;
}

edgellm_status el_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return el_err(EDGELLM_STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return el_err(EDGELLM_STATUS_IO, "%s is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    if (max_bytes && n > max_bytes) {
        fclose(f);
        return el_err(EDGELLM_STATUS_LIMIT, "%s is %zu bytes, more than the limit of %zu", path, n, max_bytes);
    }
    char *buf = el_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory reading %s", path);
    }
    if (n && fread(buf, 1, n, f) != n) {
        fclose(f);
        el_free(buf);
        return el_err(EDGELLM_STATUS_IO, "short read on %s", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return EDGELLM_STATUS_OK;
}

edgellm_status el_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return el_err(EDGELLM_STATUS_IO, "cannot create %s: %s", path, strerror(errno));
    if (len && fwrite(data, 1, len, f) != len) {
        fclose(f);
        return el_err(EDGELLM_STATUS_IO, "write to %s failed: %s", path, strerror(errno));
    }
    if (fclose(f) != 0) return el_err(EDGELLM_STATUS_IO, "closing %s failed: %s", path, strerror(errno));
    return EDGELLM_STATUS_OK;
}

bool el_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
bool el_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

edgellm_status el_mkdir_p(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return el_err(EDGELLM_STATUS_INVALID_ARG, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return el_err(EDGELLM_STATUS_IO, "cannot create directory %s: %s", tmp, strerror(errno));
            tmp[i] = c;
        }
    }
    if (!el_dir_exists(path)) return el_err(EDGELLM_STATUS_IO, "%s exists and is not a directory", path);
    return EDGELLM_STATUS_OK;
}

edgellm_status el_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return EDGELLM_STATUS_OK;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return el_err(EDGELLM_STATUS_IO, "cannot open directory %s", path);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[4096];
            if (el_path_join(sub, sizeof sub, path, e->d_name) < 0) continue;
            el_rm_rf(sub);
        }
        closedir(d);
        if (rmdir(path) != 0) return el_err(EDGELLM_STATUS_IO, "cannot remove %s: %s", path, strerror(errno));
    } else if (unlink(path) != 0) {
        return el_err(EDGELLM_STATUS_IO, "cannot remove %s: %s", path, strerror(errno));
    }
    return EDGELLM_STATUS_OK;
}

edgellm_status el_copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return el_err(EDGELLM_STATUS_IO, "cannot open %s: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return el_err(EDGELLM_STATUS_IO, "cannot create %s: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    edgellm_status s = EDGELLM_STATUS_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            s = el_err(EDGELLM_STATUS_IO, "write to %s failed: %s", dst, strerror(errno));
            break;
        }
    }
    if (ferror(in)) s = el_err(EDGELLM_STATUS_IO, "read of %s failed", src);
    fclose(in);
    if (fclose(out) != 0 && s == EDGELLM_STATUS_OK) s = el_err(EDGELLM_STATUS_IO, "closing %s failed", dst);
    return s;
}

edgellm_status el_path_join(char *out, size_t cap, const char *a, const char *b) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) return el_err(EDGELLM_STATUS_INVALID_ARG, "path too long: %s/%s", a, b);
    return EDGELLM_STATUS_OK;
}

edgellm_status el_outdir_begin(const char *final, bool overwrite, char *tmp, size_t cap) {
    struct stat st;
    if (stat(final, &st) == 0 && !overwrite)
        return el_err(EDGELLM_STATUS_INVALID_ARG, "output %s already exists (use --overwrite)", final);
    int n = snprintf(tmp, cap, "%s.tmp-%d", final, (int)getpid());
    if (n < 0 || (size_t)n >= cap) return el_err(EDGELLM_STATUS_INVALID_ARG, "output path too long: %s", final);
    el_rm_rf(tmp);
    return el_mkdir_p(tmp);
}

edgellm_status el_outdir_commit(const char *tmp, const char *final, bool overwrite) {
    if (overwrite) {
        if (rename(tmp, final) == 0) return EDGELLM_STATUS_OK;
        el_rm_rf(final);
    }
    if (rename(tmp, final) != 0) {
        edgellm_status s = el_err(EDGELLM_STATUS_IO, "cannot move %s to %s: %s", tmp, final, strerror(errno));
        el_rm_rf(tmp);
        return s;
    }
    return EDGELLM_STATUS_OK;
}

void el_outdir_abort(const char *tmp) {
    if (tmp && tmp[0]) el_rm_rf(tmp);
}
