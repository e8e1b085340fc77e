/*
 * core.h - internal foundation shared by every layer: errors, logging, allocation, files, dtypes.
 * Nothing here depends on any other layer.
 */
#ifndef EL_CORE_H
#define EL_CORE_H

#include "edgellm/edgellm.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------------------------------ */
/* Sets the thread-local message and returns s, so `return el_err(EDGELLM_STATUS_IO, "...")` works. */
edgellm_status el_err(edgellm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message: "ctx: old message". Returns s. */
edgellm_status el_err_prefix(edgellm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define EL_TRY(expr)                                                                                   \
    do {                                                                                               \
        edgellm_status el_try_s_ = (expr);                                                             \
        if (el_try_s_ < 0) return el_try_s_;                                                           \
    } while (0)
/* For functions with a `fail:` label and an `edgellm_status st` variable. */
#define EL_CHECK(expr)                                                                                 \
    do {                                                                                               \
        st = (expr);                                                                                   \
        if (st < 0) goto fail;                                                                         \
    } while (0)

/* ---- logging ----------------------------------------------------------------------------------- */
void el_log(edgellm_log_level lvl, const char *func, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define EL_LOG_ERROR(...) el_log(EDGELLM_LOG_LEVEL_ERROR, __func__, __VA_ARGS__)
#define EL_LOG_WARN(...) el_log(EDGELLM_LOG_LEVEL_WARN, __func__, __VA_ARGS__)
#define EL_LOG_INFO(...) el_log(EDGELLM_LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define EL_LOG_DEBUG(...) el_log(EDGELLM_LOG_LEVEL_DEBUG, __func__, __VA_ARGS__)

/* ---- allocation (through the replaceable allocator) ------------------------------------------- */
void *el_malloc(size_t n);
void *el_calloc(size_t count, size_t size); /* overflow-checked, zeroed */
void *el_realloc(void *p, size_t n);
void el_free(void *p);
char *el_strdup(const char *s);
char *el_strndup(const char *s, size_t n);
/* 64-byte aligned, zeroed; free with el_free_aligned. */
void *el_aligned_alloc(size_t n);
void el_free_aligned(void *p);

/* Growable byte buffer. */
typedef struct el_buf {
    char *data;
    size_t len, cap;
} el_buf;
edgellm_status el_buf_reserve(el_buf *b, size_t extra);
edgellm_status el_buf_append(el_buf *b, const void *p, size_t n);
edgellm_status el_buf_appendf(el_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
edgellm_status el_buf_append_str(el_buf *b, const char *s);
void el_buf_free(el_buf *b);

/* ---- files ------------------------------------------------------------------------------------- */
typedef struct el_mmap {
    void *data;
    size_t size;
    int fd;
} el_mmap;
/* Maps a whole file read-only. IO error names the path. */
edgellm_status el_mmap_open(const char *path, el_mmap *m);
void el_mmap_close(el_mmap *m);
/* Tells the kernel the pages of [p, p + n) of a read-only private file mapping (from the page holding p to the
 * last page that ends inside the range) are no longer needed: they leave this process's RSS and fault back in
 * from the file if read again. Only for file mappings: on anonymous memory it would discard the contents. */
void el_drop_pages(const void *p, size_t n);

/* Reads a whole file (NUL-terminated); *out freed with el_free. max_bytes limits the size (0 = none). */
edgellm_status el_read_file(const char *path, size_t max_bytes, char **out, size_t *len);
edgellm_status el_write_file(const char *path, const void *data, size_t len);
bool el_file_exists(const char *path);
bool el_dir_exists(const char *path);
edgellm_status el_mkdir_p(const char *path);
edgellm_status el_rm_rf(const char *path);
edgellm_status el_copy_file(const char *src, const char *dst);
/* Joins a and b with '/', into out (cap bytes). INVALID_ARG when it does not fit. */
edgellm_status el_path_join(char *out, size_t cap, const char *a, const char *b);

/* Output directory written atomically: el_outdir_begin creates "<final>.tmp-<pid>" and returns its path
 * in tmp; el_outdir_commit renames it over `final` (replacing it only if overwrite); el_outdir_abort
 * removes it. */
edgellm_status el_outdir_begin(const char *final, bool overwrite, char *tmp, size_t cap);
edgellm_status el_outdir_commit(const char *tmp, const char *final, bool overwrite);
void el_outdir_abort(const char *tmp);

/* ---- JSON (cJSON) helpers ---------------------------------------------------------------------- */
struct cJSON;
/* Parses a JSON file; FORMAT error gives path and byte offset. Free with cJSON_Delete. */
edgellm_status el_json_load(const char *path, size_t max_bytes, struct cJSON **out);
/* Writes j pretty-printed to path (NO_MEMORY if printing fails, IO errors name the path). */
edgellm_status el_json_save(const struct cJSON *j, const char *path);
/* Same, into dir/name. */
edgellm_status el_json_save_in(const struct cJSON *j, const char *dir, const char *name);
/* Typed getters that fail with FORMAT naming `ctx.key` when the key has the wrong type. A missing key
 * returns the default (and *present=false when present != NULL). */
edgellm_status el_json_int(const struct cJSON *obj, const char *key, int64_t def, int64_t *out, bool *present);
edgellm_status el_json_num(const struct cJSON *obj, const char *key, double def, double *out, bool *present);
edgellm_status el_json_bool(const struct cJSON *obj, const char *key, bool def, bool *out, bool *present);
/* Borrowed string (NULL if absent or JSON null). */
edgellm_status el_json_str(const struct cJSON *obj, const char *key, const char **out);

/* ---- dtypes ------------------------------------------------------------------------------------ */
typedef enum el_dtype {
    EL_DTYPE_F32 = 0,
    EL_DTYPE_F16 = 1,
    EL_DTYPE_BF16 = 2,
    EL_DTYPE_I32 = 3,
    EL_DTYPE_I64 = 4,
    EL_DTYPE_I8 = 5,
    EL_DTYPE_U8 = 6,
    EL_DTYPE_F8_E4M3 = 7,
    /* Quantized weight formats (2-D weights only; byte layouts in src/kernels/quant.h and
     * docs/quantization.md). el_dtype_size() is 0 for them: use el_weight_nbytes(). */
    EL_DTYPE_Q_W8A8 = 8,   /* "w8a8":  int8 per-channel weights, int8 activations (SmoothQuant)    */
    EL_DTYPE_Q_W4A16 = 9,  /* "w4a16": int4 group-wise weights (AWQ/GPTQ/RTN), f32 activations     */
    EL_DTYPE_Q_FP8 = 10,   /* "fp8":   e4m3 weights + f32 scales, static e4m3 activations         */
    EL_DTYPE_Q_NVFP4 = 11, /* "nvfp4": e2m1 weights, e4m3 per-16 scales, f32 global scale         */
    EL_DTYPE_Q8_0 = 12,    /* "q8_0":  ggml block_q8_0 rows                                        */
    EL_DTYPE_Q4_0 = 13,    /* "q4_0":  ggml block_q4_0 rows                                        */
    EL_DTYPE_COUNT
} el_dtype;
size_t el_dtype_size(el_dtype t); /* bytes per element of plain types; 0 for quantized formats */
bool el_dtype_is_quant(el_dtype t);
/* Bytes of an (n, k) weight stored as t: n*k*size for plain types, the whole self-contained layout
 * for quantized ones. group: int4 group size (W4A16; ignored otherwise), zeros: W4A16 with a zero
 * point section. 0 when (n, k, group) is not valid for t (e.g. q8_0 with k % 32 != 0). */
size_t el_weight_nbytes(el_dtype t, int64_t n, int64_t k, int64_t group, bool zeros);
const char *el_dtype_name(el_dtype t);       /* "f32","f16","bf16",...                        */
const char *el_dtype_st_name(el_dtype t);    /* safetensors: "F32","F16","BF16","I32",...      */
bool el_dtype_from_st_name(const char *s, el_dtype *out);
/* "fp32"/"f32"/"float32", "fp16"/"f16"/"float16", "bf16"/"bfloat16" */
bool el_dtype_from_user_name(const char *s, el_dtype *out);

static inline float el_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
/* Round to nearest even; NaN stays NaN (as torch). */
static inline uint16_t el_f32_to_bf16(float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t r = v.u + 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(r >> 16);
}
float el_f16_to_f32(uint16_t h);
uint16_t el_f32_to_f16(float f);
/* Converts n elements between float types (F32/F16/BF16). */
void el_convert(el_dtype dst_t, void *dst, el_dtype src_t, const void *src, size_t n);

/* ---- hashing (xxHash XXH3-64) ------------------------------------------------------------------ */
uint64_t el_hash64(const void *p, size_t n);
typedef struct el_hasher el_hasher;
el_hasher *el_hasher_new(void);
void el_hasher_update(el_hasher *h, const void *p, size_t n);
uint64_t el_hasher_digest(el_hasher *h);
void el_hasher_free(el_hasher *h);

/* ---- misc -------------------------------------------------------------------------------------- */
double el_time_ms(void);       /* monotonic */
uint64_t el_peak_rss_bytes(void);
int el_num_cpus(void);
uint64_t el_phys_mem_bytes(void); /* physical memory of the machine (0 if unknown) */
uint64_t el_mem_available_bytes(void); /* MemAvailable of /proc/meminfo (0 if unknown) */
bool el_str_ends_with(const char *s, const char *suffix);
/* Safe multiply for sizes; false on overflow. */
static inline bool el_mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

#endif
