/* Devices in the core: choosing the device by option (cpu, guarded, cuda:N refused in a
 * build without CUDA, unknown names refused), host copies of tensor data through
 * dsc_tensor_to_host / dsc_tensor_from_host and their bounds, and dsc_tensor_f32's refusal
 * on memory the host cannot read (the guarded device). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"

static void quiet(dsc_log_level_t level, const char *msg, void *user) { (void)level, (void)msg, (void)user; }

static dsc_ctx_t *ctx_on(const char *device, dsc_status_t *rc) {
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.device = device;
    o.log_fn = quiet;
    dsc_ctx_t *ctx = NULL;
    *rc = dsc_ctx_new(&o, &ctx);
    return ctx;
}

static void test_choice(void) {
    dsc_status_t rc;
    dsc_ctx_t *ctx = ctx_on("cpu", &rc);
    CHECK(rc == DSC_OK && ctx && strcmp(dsc_ctx_device_name(ctx), "cpu") == 0);
    dsc_ctx_free(ctx);
    ctx = ctx_on("cuda:0", &rc);
    CHECK(rc == DSC_ERR_UNSUPPORTED && !ctx);
    ctx = ctx_on("cuda:x", &rc);
    CHECK(rc == DSC_ERR_INVALID && !ctx);
    ctx = ctx_on("tpu", &rc);
    CHECK(rc == DSC_ERR_INVALID && !ctx);
}

/* Round trip and bounds on one device. */
static void test_copies(const char *device) {
    dsc_status_t rc;
    dsc_ctx_t *ctx = ctx_on(device, &rc);
    CHECK_MSG(rc == DSC_OK, "device %s", device);
    if (!ctx) return;
    dsc_tensor_t *t = dsc_tensor_new_2d(ctx, DSC_F32, 2, 3);
    dsc_tensor_set_name(t, "probe");
    CHECK(dsc_tensor_nbytes(t) == 24);
    const float in[6] = {1, -2, 3.5f, 4, 5, 6};
    float out[6] = {0};
    CHECK_OK(dsc_tensor_from_host(ctx, t, in, sizeof in));
    CHECK_OK(dsc_tensor_to_host(ctx, t, out, sizeof out));
    CHECK(memcmp(in, out, sizeof in) == 0);
    /* a scaled copy computed on the device comes back exactly */
    dsc_tensor_t *y = dsc_scale(ctx, t, 2.0);
    CHECK_OK(dsc_tensor_to_host(ctx, y, out, sizeof out));
    CHECK(out[2] == 7.0f && out[1] == -4.0f);
    CHECK(dsc_tensor_to_host(ctx, t, out, 28) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "probe") != NULL);
    dsc_ctx_clear_error(ctx);
    /* the typed host pointer: fine on cpu, refused (naming the tensor) where the host cannot read */
    float *p = dsc_tensor_f32(t);
    if (strcmp(device, "cpu") == 0) {
        CHECK(p && p[2] == 3.5f && dsc_tensor_is_host(t));
    } else {
        CHECK(!p && !dsc_tensor_is_host(t) && dsc_ctx_status(ctx) == DSC_ERR_MISUSE);
        CHECK(strstr(dsc_ctx_errmsg(ctx), "probe") && strstr(dsc_ctx_errmsg(ctx), device));
        dsc_ctx_clear_error(ctx);
    }
    /* buffers from dsc_ctx_alloc are zeroed device memory */
    float *buf = dsc_ctx_alloc(ctx, DSC_MEM_OTHER, 4 * sizeof(float));
    float host[4] = {9, 9, 9, 9};
    CHECK_OK(dsc_ctx_to_host(ctx, host, buf, sizeof host));
    CHECK(host[0] == 0 && host[3] == 0);
    dsc_ctx_release(ctx, DSC_MEM_OTHER, buf, 4 * sizeof(float));
    CHECK(dsc_tensor_item(dsc_sum(ctx, t)) == 17.5);
    dsc_ctx_free(ctx);
}

/* Random fills run in chunks over threads, each value taken at its position in the context
 * RNG's sequence: bit for bit the values (and the RNG state after) of drawing them one by
 * one with dsc_ctx_rand_normal / dsc_ctx_rand_uniform, on any device and dtype. */
static void test_fill_sequence(const char *device, dsc_dtype_t dt, bool normal) {
    dsc_status_t rc;
    dsc_ctx_t *ctx = ctx_on(device, &rc), *ref = ctx_on("cpu", &rc);
    if (!ctx || !ref) return;
    dsc_ctx_seed(ctx, 1234);
    dsc_ctx_seed(ref, 1234);
    (void)dsc_ctx_rand_uniform(ctx), (void)dsc_ctx_rand_uniform(ref); /* a state that is not the seed */
    const int64_t n = 100003; /* chunks of 4096 and a partial one */
    dsc_tensor_t *t = dsc_tensor_new(ctx, dt, 1, &n);
    CHECK(t && (normal ? dsc_tensor_fill_normal(ctx, t, 0.02) : dsc_tensor_fill_uniform(ctx, t, -0.5, 0.25)) == DSC_OK);
    const size_t es = dsc_dtype_size(dt);
    unsigned char *got = malloc((size_t)n * es), *want = malloc((size_t)n * es);
    CHECK(dsc_tensor_to_host(ctx, t, got, (size_t)n * es) == DSC_OK);
    for (int64_t i = 0; i < n; i++) {
        double v = normal ? 0.02 * dsc_ctx_rand_normal(ref) : -0.5 + 0.75 * dsc_ctx_rand_uniform(ref);
        dsc_convert(want + (size_t)i * es, dt, &v, DSC_F64, 1);
    }
    CHECK_MSG(memcmp(got, want, (size_t)n * es) == 0, "%s %s %s fill differs from the sequential draws", device,
              dsc_dtype_name(dt), normal ? "normal" : "uniform");
    CHECK_MSG(dsc_ctx_rng_state(ctx) == dsc_ctx_rng_state(ref), "%s: RNG state after the fill differs", device);
    free(got), free(want);
    dsc_ctx_free(ctx);
    dsc_ctx_free(ref);
}

int main(void) {
    test_choice();
    test_fill_sequence("cpu", DSC_F32, true);
    test_fill_sequence("cpu", DSC_BF16, false);
    test_fill_sequence("guarded", DSC_F32, false);
    test_fill_sequence("guarded", DSC_F16, true);
    test_copies("cpu");
    test_copies("guarded");
    return check_finish("test_device");
}
