/* ZeRO partition arithmetic and the per-rank memory plan (see dsc/zero.h, docs/zero.md). */
#include "zero/zero.h"

dsc_status_t dsc_zero_plan_make(int stage, int world, int rank, int64_t numel, dsc_zero_plan_t *out) {
    if (!out || stage < 0 || stage > 3 || world < 1 || rank < 0 || rank >= world || numel < 1) return DSC_ERR_INVALID;
    const int64_t align = 2 * (int64_t)world;
    out->stage = stage;
    out->world = world;
    out->rank = rank;
    out->numel = numel;
    out->padded = (numel + align - 1) / align * align;
    out->part = out->padded / world;
    out->begin = (int64_t)rank * out->part;
    out->padding = dsc_zero_plan_padding_of(out, rank);
    return DSC_OK;
}

int64_t dsc_zero_plan_padding_of(const dsc_zero_plan_t *p, int q) {
    const int64_t left = (int64_t)q * p->part;
    if (p->numel <= left) return p->part;
    if (p->numel < left + p->part) return left + p->part - p->numel;
    return 0;
}

int64_t dsc_zero_plan_overlap(const dsc_zero_plan_t *p, int q, int64_t offset, int64_t n, int64_t *first) {
    const int64_t lo = (int64_t)q * p->part, hi = lo + p->part;
    int64_t a = offset > lo ? offset : lo, b = offset + n < hi ? offset + n : hi;
    if (b <= a) return 0;
    if (first) *first = a;
    return b - a;
}

int64_t dsc_zero3_shard(int64_t numel, int world) { return world < 1 || numel < 1 ? 0 : (numel + world - 1) / world; }

bool dsc__zero_slice(const dsc_zero_plan_t *p, int q, int64_t offset, int64_t numel, int64_t *a, int64_t *b) {
    if (p->stage == 3) {
        const int64_t s = dsc_zero3_shard(numel, p->world), lo = (int64_t)q * s;
        *a = lo < numel ? lo : numel;
        *b = lo + s < numel ? lo + s : numel;
        return *b > *a;
    }
    int64_t first = offset;
    const int64_t n = dsc_zero_plan_overlap(p, q, offset, numel, &first);
    *a = first - offset;
    *b = *a + n;
    return n > 0;
}

bool dsc__zero3_persists(int64_t numel, int64_t param_threshold, int64_t model_threshold, int64_t *total) {
    if (numel > param_threshold || *total + numel > model_threshold) return false;
    *total += numel;
    return true;
}

dsc_zero_memory_t dsc_zero_plan_memory(const dsc_zero_plan_t *p, int param_bytes, int optimizer_states,
                                       bool accumulate_fp32, int64_t reduce_bucket_size) {
    dsc_zero_memory_t m = {0};
    const bool mixed = param_bytes != 4;
    const int64_t P = p->padded, k = p->part;
    m.params = P * param_bytes;
    /* The autograd target: full size at stages 0-1; at stages 2-3 only the layer in
     * backward has gradient buffers (transient). */
    m.grads = p->stage >= 2 ? 0 : P * param_bytes;
    if (p->stage == 3) m.params = k * param_bytes;
    if (p->stage == 0) {
        /* Replicated: a separate fp32 master only under mixed precision. */
        m.optim = (mixed ? 4 * P : 0) + 4 * (int64_t)optimizer_states * P;
        m.grad_accum = mixed ? 4 * P : 0;
    } else {
        /* fp32 master (at stage 3 in fp32 it is the working copy itself) + states */
        m.optim = (p->stage == 3 && !mixed ? 0 : 4 * k) + 4 * (int64_t)optimizer_states * k;
        /* The fp32 gradient of the own partition, plus (stage 1 with fp32 accumulation of
         * 16-bit gradients) the full fp32 accumulation buffer. */
        m.grad_accum = 4 * k + (p->stage == 1 && mixed && accumulate_fp32 ? 4 * P : 0);
        if (p->stage == 1 && p->world > 1) { /* staging for bucketed reduce-scatter of the reduced buffer's dtype */
            const int rs_bytes = p->stage == 1 && mixed && accumulate_fp32 ? 4 : param_bytes;
            int64_t c = reduce_bucket_size / p->world;
            if (c < 1) c = 1;
            if (c < k) m.comm = c * p->world * rs_bytes;
        }
    }
    return m;
}
