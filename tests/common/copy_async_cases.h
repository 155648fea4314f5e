/* The device table's asynchronous copies (src/core/device.h: from_host_async, to_host_async
 * with an event, event_sync), one set of cases for every device that has them: included by
 * tests/unit/test_copy_async.c (the guarded device) and tests/cuda/test_cuda_copy_async.c
 * (a GPU, and the CPU emulator as test_cuda_copy_async_emu). Header-only, with its own
 * counters, because the CUDA test programs link without the test library.
 *
 * early_reuse_caught: the device checks the contract (the guarded device, the emulator): a
 * host source refilled before the host waited for its copy makes that wait fail. On a GPU
 * the same mistake corrupts the device's bytes instead, which the first case would see. */
#ifndef DSC_TEST_COPY_ASYNC_CASES_H
#define DSC_TEST_COPY_ASYNC_CASES_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "dsc/dsc.h"

static int ca_checks, ca_failures;

#define CA_EXPECT(cond, ...)                                        \
    do {                                                            \
        ca_checks++;                                                \
        if (!(cond)) {                                              \
            ca_failures++;                                          \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            printf(__VA_ARGS__);                                    \
            printf("\n");                                           \
        }                                                           \
    } while (0)

/* Host memory the device copies from asynchronously at full speed when it offers it
 * (page-locked on CUDA: the copy engine reads it after the call returns). */
static void *ca_host_alloc(dsc_ctx_t *ctx, size_t n) {
    dsc_device_t *dev = dsc__ctx_device(ctx);
    if (dev->table->host_alloc_pinned) return dev->table->host_alloc_pinned(dev, n);
    return malloc(n);
}
static void ca_host_free(dsc_ctx_t *ctx, void *p, size_t n) {
    dsc_device_t *dev = dsc__ctx_device(ctx);
    if (dev->table->host_free_pinned) dev->table->host_free_pinned(dev, p, n);
    else free(p);
}

/* Byte i of pattern `seed`: different for every seed and position. */
static unsigned char ca_byte(int seed, size_t i) { return (unsigned char)((i * 131u + (size_t)seed * 97u + (i >> 11)) & 0xFF); }
static void ca_fill(unsigned char *p, size_t n, int seed) {
    for (size_t i = 0; i < n; i++) p[i] = ca_byte(seed, i);
}
/* The first position where p differs from pattern seed, or n. */
static size_t ca_first_diff(const unsigned char *p, size_t n, int seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ca_byte(seed, i)) return i;
    return n;
}

/* Upload, wait, refill at once: the device holds the bytes of before the refill (a wait
 * that returned early lets the copy engine read the new ones), later stream work sees them,
 * and the copy lands after earlier stream work that wrote its destination. Then the same
 * bytes come back through to_host_async and its event. */
static void ca_reuse_after_wait(dsc_ctx_t *ctx, const char *device, size_t n) {
    unsigned char *host = ca_host_alloc(ctx, n), *back = malloc(n);
    void *dst = dsc__dev_alloc(ctx, DSC_MEM_OTHER, n), *dst2 = dsc__dev_alloc(ctx, DSC_MEM_OTHER, n);
    dsc_device_event_t *ev = dsc__dev_event_new(ctx);
    CA_EXPECT(host && back && dst && dst2 && ev, "%s: allocations", device);
    if (!host || !back || !dst || !dst2 || !ev) goto done;
    ca_fill(host, n, 3);
    CA_EXPECT(dsc__dev_from_host(ctx, dst2, host, n) == DSC_OK, "%s", dsc_ctx_errmsg(ctx));
    CA_EXPECT(dsc__dev_copy(ctx, dst, dst2, n) == DSC_OK, "%s", dsc_ctx_errmsg(ctx)); /* queued before the upload */
    ca_fill(host, n, 1);
    CA_EXPECT(dsc__dev_from_host_async(ctx, dst, host, n, ev) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    CA_EXPECT(dsc__dev_event_sync(ctx, ev) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    memset(host, 0x5A, n); /* the staging buffer refilled once the wait returned */
    CA_EXPECT(dsc__dev_copy(ctx, dst2, dst, n) == DSC_OK, "%s", dsc_ctx_errmsg(ctx)); /* ordered after the upload */
    memset(back, 0, n);
    CA_EXPECT(dsc__dev_to_host(ctx, back, dst2, n) == DSC_OK, "%s", dsc_ctx_errmsg(ctx));
    size_t at = ca_first_diff(back, n, 1);
    CA_EXPECT(at == n, "%s: upload of %zu bytes, then the source refilled after its event: device byte %zu is %d, "
              "expected %d", device, n, at, at < n ? back[at] : 0, at < n ? ca_byte(1, at) : 0);
    /* back through to_host_async with its event into the (refilled) host buffer */
    CA_EXPECT(dsc__dev_to_host_async_ev(ctx, host, dst, n, ev) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    CA_EXPECT(dsc__dev_event_sync(ctx, ev) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    at = ca_first_diff(host, n, 1);
    CA_EXPECT(at == n, "%s: to_host_async + event_sync: host byte %zu differs", device, at);
    CA_EXPECT(dsc_ctx_status(ctx) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
done:
    dsc__dev_event_free(ctx, ev);
    dsc__dev_free(ctx, DSC_MEM_OTHER, dst, n);
    dsc__dev_free(ctx, DSC_MEM_OTHER, dst2, n);
    if (host) ca_host_free(ctx, host, n);
    free(back);
}

/* The offloaded optimizer's pattern: parts of `part` bytes filled into two staging buffers
 * in turn, each uploaded without waiting, a buffer's previous upload waited for only before
 * it is refilled, nothing waited for after the last. A wait that does not wait lets a later
 * fill overwrite a part still being read. */
static void ca_double_buffer(dsc_ctx_t *ctx, const char *device, size_t part, int parts) {
    const size_t n = part * (size_t)parts;
    unsigned char *stage = ca_host_alloc(ctx, 2 * part), *back = malloc(n);
    void *dst = dsc__dev_alloc(ctx, DSC_MEM_OTHER, n);
    dsc_device_event_t *ev[2] = {dsc__dev_event_new(ctx), dsc__dev_event_new(ctx)};
    CA_EXPECT(stage && back && dst && ev[0] && ev[1], "%s: allocations", device);
    if (!stage || !back || !dst || !ev[0] || !ev[1]) goto done;
    for (int j = 0; j < parts; j++) {
        unsigned char *buf = stage + (size_t)(j % 2) * part;
        CA_EXPECT(dsc__dev_event_sync(ctx, ev[j % 2]) == DSC_OK, "%s part %d: %s", device, j, dsc_ctx_errmsg(ctx));
        ca_fill(buf, part, 10 + j);
        CA_EXPECT(dsc__dev_from_host_async(ctx, (char *)dst + (size_t)j * part, buf, part, ev[j % 2]) == DSC_OK,
                  "%s part %d: %s", device, j, dsc_ctx_errmsg(ctx));
    }
    memset(back, 0, n);
    CA_EXPECT(dsc__dev_to_host(ctx, back, dst, n) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx)); /* stream order */
    for (int j = 0; j < parts; j++) {
        const size_t at = ca_first_diff(back + (size_t)j * part, part, 10 + j);
        CA_EXPECT(at == part, "%s: double-buffered upload, part %d of %d: byte %zu differs", device, j, parts, at);
    }
    CA_EXPECT(dsc__dev_sync(ctx) == DSC_OK && dsc_ctx_status(ctx) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
done:
    dsc__dev_event_free(ctx, ev[0]);
    dsc__dev_event_free(ctx, ev[1]);
    dsc__dev_free(ctx, DSC_MEM_OTHER, dst, n);
    if (stage) ca_host_free(ctx, stage, 2 * part);
    free(back);
}

/* A device that checks the contract: a source refilled before the wait fails that wait
 * (its event, or a sync for a copy without one), naming it; the event of a later copy
 * covers an earlier one (stream order), so refilling the earlier one's source after waiting
 * for it is no error; an empty copy still records its event. */
static void ca_early_reuse(dsc_ctx_t *ctx, const char *device, size_t n) {
    unsigned char *a = ca_host_alloc(ctx, n), *b = ca_host_alloc(ctx, n);
    void *dst = dsc__dev_alloc(ctx, DSC_MEM_OTHER, 2 * n);
    dsc_device_event_t *ev = dsc__dev_event_new(ctx);
    CA_EXPECT(a && b && dst && ev, "%s: allocations", device);
    if (!a || !b || !dst || !ev) goto done;
    ca_fill(a, n, 5);
    CA_EXPECT(dsc__dev_from_host_async(ctx, dst, a, n, ev) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    a[n / 2] ^= 0xFF; /* refilled before the wait: the mistake */
    CA_EXPECT(dsc__dev_event_sync(ctx, ev) != DSC_OK, "%s: a source changed before event_sync went unnoticed", device);
    CA_EXPECT(dsc_ctx_status(ctx) != DSC_OK, "%s: no error recorded", device);
    dsc_ctx_clear_error(ctx);
    ca_fill(a, n, 6);
    CA_EXPECT(dsc__dev_from_host_async(ctx, dst, a, n, NULL) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    a[0] ^= 0xFF;
    CA_EXPECT(dsc__dev_sync(ctx) != DSC_OK, "%s: a source changed before sync went unnoticed", device);
    dsc_ctx_clear_error(ctx);
    /* two copies, the second's event waited for: both done, both sources free again */
    ca_fill(a, n, 7);
    ca_fill(b, n, 8);
    CA_EXPECT(dsc__dev_from_host_async(ctx, dst, a, n, NULL) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    CA_EXPECT(dsc__dev_from_host_async(ctx, (char *)dst + n, b, n, ev) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    CA_EXPECT(dsc__dev_event_sync(ctx, ev) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
    memset(a, 0, n);
    memset(b, 0, n);
    CA_EXPECT(dsc__dev_sync(ctx) == DSC_OK, "%s: sources refilled after a later copy's event: %s", device,
              dsc_ctx_errmsg(ctx));
    CA_EXPECT(dsc__dev_from_host_async(ctx, dst, a, 0, ev) == DSC_OK && dsc__dev_event_sync(ctx, ev) == DSC_OK,
              "%s: an empty copy: %s", device, dsc_ctx_errmsg(ctx));
    CA_EXPECT(dsc_ctx_status(ctx) == DSC_OK, "%s: %s", device, dsc_ctx_errmsg(ctx));
done:
    dsc__dev_event_free(ctx, ev);
    dsc__dev_free(ctx, DSC_MEM_OTHER, dst, 2 * n);
    if (a) ca_host_free(ctx, a, n);
    if (b) ca_host_free(ctx, b, n);
}

/* Every case on `device` (a context of its own); n: bytes of the single copies (large on a
 * GPU, so that a wait that returns early is overtaken by the refill). */
static void ca_run_device(const char *device, size_t n, bool early_reuse_caught) {
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.device = device;
    o.log_level = DSC_LOG_WARN;
    dsc_ctx_t *ctx = NULL;
    CA_EXPECT(dsc_ctx_new(&o, &ctx) == DSC_OK, "context on %s", device);
    if (!ctx) return;
    CA_EXPECT(dsc__dev_has_from_host_async(ctx) && dsc__dev_has_to_host_async(ctx), "%s: no asynchronous copies",
              device);
    if (dsc__dev_has_from_host_async(ctx)) {
        ca_reuse_after_wait(ctx, device, n);
        ca_double_buffer(ctx, device, n / 4 + 3, 7);
        if (early_reuse_caught) ca_early_reuse(ctx, device, 4099);
    }
    dsc_ctx_free(ctx);
}

#endif
