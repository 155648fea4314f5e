/* The runtime context: memory counters, RNG, modes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/philox.h"
#include "ops/backend.h"

dsc_status_t dsc_ctx_new(const dsc_ctx_options_t *opts, dsc_ctx_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    dsc_ctx_options_t defaults = DSC_CTX_OPTIONS_INIT;
    if (!opts) opts = &defaults;
    dsc_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return DSC_ERR_NOMEM;
    ctx->log_fn = opts->log_fn;
    ctx->log_user = opts->log_user;
    ctx->log_level = opts->log_level;
    ctx->training = true;
    char err[640] = "";
    dsc_status_t st = dsc__device_init(ctx, opts->device, err, sizeof err);
    if (st != DSC_OK) {
        /* No context to hold the message: log it where the context would have. */
        if (opts->log_fn)
            opts->log_fn(DSC_LOG_ERROR, err, opts->log_user);
        else
            fprintf(stderr, "dsc: error: %s\n", err);
        free(ctx);
        return st;
    }
    ctx->backend = ctx->device.table->ops;
    dsc_ctx_seed(ctx, opts->seed);
    *out = ctx;
    return DSC_OK;
}

void dsc_ctx_free(dsc_ctx_t *ctx) {
    if (!ctx) return;
    dsc__arena_free(ctx);
    free(ctx->tape);
    for (int c = 0; c < DSC_MEM_CATEGORY_COUNT; c++) {
        if (c != DSC_MEM_ACTIVATIONS && ctx->mem[c].live_bytes)
            dsc_ctx_log(ctx, DSC_LOG_WARN, "context freed with %zu bytes still live in memory category %d",
                        ctx->mem[c].live_bytes, c);
    }
    dsc__dev_free_parked(ctx);
    dsc__device_destroy(ctx);
    free(ctx);
}

void dsc__mem_add(dsc_ctx_t *ctx, dsc_mem_category_t cat, size_t n_bytes) {
    dsc_mem_stats_t *m = &ctx->mem[cat];
    m->live_bytes += n_bytes;
    if (m->live_bytes > m->peak_bytes) m->peak_bytes = m->live_bytes;
}

void dsc__mem_sub(dsc_ctx_t *ctx, dsc_mem_category_t cat, size_t n_bytes) {
    dsc_mem_stats_t *m = &ctx->mem[cat];
    m->live_bytes = n_bytes > m->live_bytes ? 0 : m->live_bytes - n_bytes;
}

dsc_mem_stats_t dsc_ctx_mem_stats(const dsc_ctx_t *ctx, dsc_mem_category_t category) {
    dsc_mem_stats_t none = {0, 0};
    if (!ctx || (unsigned)category >= DSC_MEM_CATEGORY_COUNT) return none;
    return ctx->mem[category];
}

void dsc_ctx_mem_reset_peaks(dsc_ctx_t *ctx) {
    if (!ctx) return;
    for (int c = 0; c < DSC_MEM_CATEGORY_COUNT; c++) ctx->mem[c].peak_bytes = ctx->mem[c].live_bytes;
}

void *dsc_ctx_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes) {
    if (!ctx) return NULL;
    if ((unsigned)category >= DSC_MEM_CATEGORY_COUNT)
        return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_ctx_alloc: unknown memory category %d", (int)category);
    void *p = dsc__dev_alloc_raw(ctx, n_bytes);
    if (!p)
        return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory allocating %zu bytes on device %s", n_bytes,
                         ctx->device.name);
    /* The table directly: a sticky error from earlier must not fail this allocation. */
    if (n_bytes && ctx->device.table->memset(&ctx->device, p, 0, n_bytes) != 0) {
        dsc__dev_free_raw(ctx, p, n_bytes);
        return dsc__fail(ctx, DSC_ERR_INVALID, "device %s: zero fill of %zu bytes failed", ctx->device.name, n_bytes);
    }
    dsc__mem_add(ctx, category, n_bytes);
    return p;
}

void dsc_ctx_release(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes) {
    if (!ptr || !ctx) return;
    dsc__dev_free_raw(ctx, ptr, n_bytes);
    if ((unsigned)category < DSC_MEM_CATEGORY_COUNT) dsc__mem_sub(ctx, category, n_bytes);
}

void *dsc__host_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes) {
    void *p = calloc(1, n_bytes ? n_bytes : 1);
    if (!p) return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory allocating %zu host bytes", n_bytes);
    dsc__mem_add(ctx, category, n_bytes);
    return p;
}

void dsc__host_free(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes) {
    if (!ptr) return;
    free(ptr);
    dsc__mem_sub(ctx, category, n_bytes);
}

dsc_status_t dsc_ctx_to_host(dsc_ctx_t *ctx, void *host_dst, const void *device_src, size_t n_bytes) {
    if (!ctx) return DSC_ERR_INVALID;
    if (n_bytes && (!host_dst || !device_src))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_ctx_to_host: NULL pointer");
    return dsc__dev_to_host(ctx, host_dst, device_src, n_bytes);
}

dsc_status_t dsc_ctx_from_host(dsc_ctx_t *ctx, void *device_dst, const void *host_src, size_t n_bytes) {
    if (!ctx) return DSC_ERR_INVALID;
    if (n_bytes && (!device_dst || !host_src))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_ctx_from_host: NULL pointer");
    return dsc__dev_from_host(ctx, device_dst, host_src, n_bytes);
}

/* splitmix64: a 64-bit state whose every value is valid, so the whole RNG state can be
 * saved in a checkpoint as one integer. */
static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull); /* SPLITMIX_GAMMA */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void dsc_ctx_seed(dsc_ctx_t *ctx, uint64_t seed) {
    if (!ctx) return;
    ctx->rng_state = seed;
    ctx->drop_seed = seed;
    ctx->drop_offset = 0;
}

void dsc_ctx_dropout_stream(const dsc_ctx_t *ctx, uint64_t *seed, uint64_t *offset) {
    if (seed) *seed = ctx ? ctx->drop_seed : 0;
    if (offset) *offset = ctx ? ctx->drop_offset : 0;
}
void dsc_ctx_set_dropout_stream(dsc_ctx_t *ctx, uint64_t seed, uint64_t offset) {
    if (!ctx) return;
    ctx->drop_seed = seed;
    ctx->drop_offset = offset;
}
uint64_t dsc__ctx_dropout_draw(dsc_ctx_t *ctx, uint64_t n) {
    uint64_t at = ctx->drop_offset;
    ctx->drop_offset += dsc_philox_advance(n);
    return at;
}
uint64_t dsc_ctx_rng_state(const dsc_ctx_t *ctx) { return ctx ? ctx->rng_state : 0; }
void dsc_ctx_set_rng_state(dsc_ctx_t *ctx, uint64_t state) {
    if (ctx) ctx->rng_state = state;
}

/* splitmix64 adds a constant to its state per draw, so draw k after state s0 is known
 * without the k before it: fills split over threads give the sequential values, bit for
 * bit (dsc__rng_*_at). */
#define SPLITMIX_GAMMA 0x9E3779B97F4A7C15ull
static uint64_t draw_at(uint64_t s0, uint64_t k) {
    uint64_t st = s0 + k * SPLITMIX_GAMMA;
    return next_u64(&st);
}
double dsc__rng_uniform_at(uint64_t s0, uint64_t k) {
    return (double)(draw_at(s0, k) >> 11) * (1.0 / 9007199254740992.0);
}
double dsc__rng_normal_at(uint64_t s0, uint64_t i) {
    double u1 = dsc__rng_uniform_at(s0, 2 * i), u2 = dsc__rng_uniform_at(s0, 2 * i + 1);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
void dsc__rng_skip(dsc_ctx_t *ctx, uint64_t n_draws) { ctx->rng_state += n_draws * SPLITMIX_GAMMA; }

double dsc_ctx_rand_uniform(dsc_ctx_t *ctx) {
    return (double)(next_u64(&ctx->rng_state) >> 11) * (1.0 / 9007199254740992.0);
}

double dsc_ctx_rand_normal(dsc_ctx_t *ctx) {
    /* Box-Muller without a cached second value, so the state stays one integer. */
    double u1 = dsc_ctx_rand_uniform(ctx), u2 = dsc_ctx_rand_uniform(ctx);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void dsc_ctx_set_training(dsc_ctx_t *ctx, bool training) {
    if (ctx) ctx->training = training;
}
bool dsc_ctx_training(const dsc_ctx_t *ctx) { return ctx && ctx->training; }

void dsc_ctx_no_grad_begin(dsc_ctx_t *ctx) {
    if (ctx) ctx->no_grad_depth++;
}
void dsc_ctx_no_grad_end(dsc_ctx_t *ctx) {
    if (ctx && ctx->no_grad_depth > 0) ctx->no_grad_depth--;
}
bool dsc_ctx_grad_enabled(const dsc_ctx_t *ctx) { return ctx && ctx->no_grad_depth == 0; }

void dsc_ctx_end_step(dsc_ctx_t *ctx) {
    if (!ctx) return;
    ctx->tape_len = 0;
    ctx->backward_done = false;
    dsc__arena_reset(ctx);
}
