/* json.c - cJSON loading with clear errors and typed getters. */
#include "core.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

edgellm_status el_json_load(const char *path, size_t max_bytes, cJSON **out) {
    *out = NULL;
    char *text;
    size_t len;
    EL_TRY(el_read_file(path, max_bytes, &text, &len));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!j) {
        size_t off = end ? (size_t)(end - text) : 0;
        el_free(text);
        return el_err(EDGELLM_STATUS_FORMAT, "%s: malformed JSON near byte %zu", path, off);
    }
    el_free(text);
    *out = j;
    return EDGELLM_STATUS_OK;
}

edgellm_status el_json_save(const cJSON *j, const char *path) {
    char *text = cJSON_Print(j);
    if (!text) return el_err(EDGELLM_STATUS_NO_MEMORY, "out of memory printing JSON for %s", path);
    edgellm_status s = el_write_file(path, text, strlen(text));
    cJSON_free(text);
    return s;
}

edgellm_status el_json_save_in(const cJSON *j, const char *dir, const char *name) {
    char path[4096];
    EL_TRY(el_path_join(path, sizeof path, dir, name));
    return el_json_save(j, path);
}

edgellm_status el_json_num(const cJSON *obj, const char *key, double def, double *out, bool *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (present) *present = v && !cJSON_IsNull(v);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return EDGELLM_STATUS_OK;
    }
    if (!cJSON_IsNumber(v)) return el_err(EDGELLM_STATUS_FORMAT, "'%s' must be a number", key);
    *out = v->valuedouble;
    return EDGELLM_STATUS_OK;
}

edgellm_status el_json_int(const cJSON *obj, const char *key, int64_t def, int64_t *out, bool *present) {
    double d;
    bool p;
    EL_TRY(el_json_num(obj, key, (double)def, &d, &p));
    if (present) *present = p;
    if (p && (d != floor(d) || fabs(d) > 9.0e15))
        return el_err(EDGELLM_STATUS_FORMAT, "'%s' must be an integer (got %g)", key, d);
    *out = p ? (int64_t)d : def;
    return EDGELLM_STATUS_OK;
}

edgellm_status el_json_bool(const cJSON *obj, const char *key, bool def, bool *out, bool *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (present) *present = v && !cJSON_IsNull(v);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return EDGELLM_STATUS_OK;
    }
    if (!cJSON_IsBool(v)) return el_err(EDGELLM_STATUS_FORMAT, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return EDGELLM_STATUS_OK;
}

edgellm_status el_json_str(const cJSON *obj, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return EDGELLM_STATUS_OK;
    if (!cJSON_IsString(v)) return el_err(EDGELLM_STATUS_FORMAT, "'%s' must be a string", key);
    *out = v->valuestring;
    return EDGELLM_STATUS_OK;
}
