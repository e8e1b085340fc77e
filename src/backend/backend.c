/* backend.c - backend factory. */
#include "backend/backend.h"

#include <string.h>

edgellm_status el_backend_create(const char *name, const el_backend_params *p, el_backend **out) {
    if (!out) return el_err(EDGELLM_STATUS_INVALID_ARG, "backend: NULL output pointer");
    *out = NULL;
    el_backend_params def = {0};
    if (!p) p = &def;
    if (!name || !strcmp(name, "cpu")) return el_backend_cpu_create(p, out);
    if (!strcmp(name, "cuda")) {
#ifdef EDGELLM_HAVE_CUDA
        return el_backend_cuda_create(p, out);
#else
        return el_err(EDGELLM_STATUS_UNSUPPORTED, "this build has no CUDA backend (configure with -DEDGELLM_CUDA=ON)");
#endif
    }
    return el_err(EDGELLM_STATUS_INVALID_ARG, "unknown backend '%s' (expected cpu or cuda)", name);
}

void el_backend_free(el_backend *be) {
    if (be && be->iface.free) be->iface.free(be);
}
