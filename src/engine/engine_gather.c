/* dsc_engine_gather_params / dsc_engine_release_params (dsc/engine.h): full access to
 * parameters outside forward and backward, and writing an edit back into the engine's
 * state (working copy and fp32 master) at every stage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"

/* Parameter indices of `params` (all of the model's when params is NULL) into *out. */
static dsc_status_t resolve(dsc_engine_t *e, const char *fn, dsc_tensor_t *const *params, int n, int **out, int *count) {
    const int np = dsc_model_param_count(e->model);
    *count = params ? n : np;
    if (params && n < 0) return dsc__engine_fail(e, DSC_ERR_INVALID, "%s: n = %d", fn, n);
    *out = malloc(sizeof **out * (size_t)(*count + 1));
    if (!*out) return dsc__engine_fail(e, DSC_ERR_NOMEM, "%s: out of memory", fn);
    for (int k = 0; k < *count; k++) {
        int idx = params ? -1 : k;
        for (int i = 0; params && i < np && idx < 0; i++) {
            dsc_param_info_t info;
            dsc_model_param_info(e->model, i, &info);
            if (info.tensor == params[k]) idx = i;
        }
        if (idx < 0) {
            free(*out);
            *out = NULL;
            return dsc__engine_fail(e, DSC_ERR_INVALID, "%s: tensor %d (%s) is not a parameter of the engine's model", fn,
                                    k, params[k] ? dsc_tensor_name(params[k]) : "NULL");
        }
        (*out)[k] = idx;
    }
    return DSC_OK;
}

static dsc_tensor_t *tensor_of(const dsc_engine_t *e, int i) {
    dsc_param_info_t info;
    dsc_model_param_info(e->model, i, &info);
    return info.tensor;
}

dsc_status_t dsc_engine_gather_params(dsc_engine_t *e, dsc_tensor_t *const *params, int n) {
    if (!e) return DSC_ERR_INVALID;
    if (e->plan.stage != 3) return DSC_OK; /* below stage 3 the values are always there */
    int *idx = NULL, count = 0;
    dsc_status_t rc = resolve(e, "dsc_engine_gather_params", params, n, &idx, &count);
    for (int k = 0; k < count && rc == DSC_OK; k++) {
        rc = dsc__zero_hold(e->zero, idx[k]);
        if (rc != DSC_OK) rc = dsc__engine_fail(e, rc, "dsc_engine_gather_params: %s", dsc_ctx_errmsg(e->ctx));
    }
    free(idx);
    return rc;
}

/* Rank `root`'s full values of parameter i everywhere, then into this rank's master
 * (and, below stage 3, the replicated working copy already holds them; at stage 3 the
 * local shard is refreshed). */
static dsc_status_t write_back(dsc_engine_t *e, int i, int root) { return dsc__zero_write_back(e->zero, i, root); }

dsc_status_t dsc_engine_release_params(dsc_engine_t *e, dsc_tensor_t *const *params, int n, int modifier_rank) {
    static const char fn[] = "dsc_engine_release_params";
    if (!e) return DSC_ERR_INVALID;
    if (modifier_rank < -1 || modifier_rank >= e->world_size)
        return dsc__engine_fail(e, DSC_ERR_INVALID, "%s: modifier_rank %d is not -1 or a rank of %d", fn, modifier_rank,
                                e->world_size);
    int *idx = NULL, count = 0;
    dsc_status_t rc = resolve(e, fn, params, n, &idx, &count);
    for (int k = 0; k < count && rc == DSC_OK && modifier_rank >= 0; k++) {
        if (!tensor_of(e, idx[k])->data)
            rc = dsc__engine_fail(e, DSC_ERR_MISUSE, "%s: %s is not gathered (call dsc_engine_gather_params first)", fn,
                                  dsc_tensor_name(tensor_of(e, idx[k])));
        else
            rc = write_back(e, idx[k], modifier_rank);
    }
    for (int k = 0; k < count && e->plan.stage == 3; k++) dsc__zero_unhold(e->zero, idx[k]);
    free(idx);
    return rc;
}
