/* The device table's asynchronous copies (core/device.h: from_host_async, to_host_async with
 * an event, event_sync) on the guarded device, which checks their contract: the cases of
 * tests/common/copy_async_cases.h (a staging buffer refilled after its wait leaves the
 * device the old bytes; two buffers in turn as the offloaded optimizer uses them; refilled
 * before the wait: the wait fails). The cpu device has no asynchronous upload: the entry
 * answers DSC_ERR_UNSUPPORTED without recording an error. */
#include "check.h"
#include "copy_async_cases.h"

int main(void) {
    ca_run_device("guarded", (size_t)1 << 20, true);

    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.device = "cpu";
    dsc_ctx_t *ctx = NULL;
    CHECK_OK(dsc_ctx_new(&o, &ctx));
    unsigned char src[16] = {1, 2, 3}, dst[16] = {0};
    CHECK(!dsc__dev_has_from_host_async(ctx));
    CHECK(dsc__dev_from_host_async(ctx, dst, src, sizeof src, NULL) == DSC_ERR_UNSUPPORTED);
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_device_event_t *ev = dsc__dev_event_new(ctx);
    CHECK(ev && dsc__dev_event_sync(ctx, ev) == DSC_OK); /* work on the cpu is done when its call returns */
    dsc__dev_event_free(ctx, ev);
    dsc_ctx_free(ctx);

    printf("test_copy_async: %d device checks, %d failed\n", ca_checks, ca_failures);
    check_count += ca_checks;
    check_failures += ca_failures;
    return check_finish("test_copy_async");
}
