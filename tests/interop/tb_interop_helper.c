/* Writes a TensorBoard event file the way the engine does (dsc_monitor from a config with
 * "tensorboard" enabled) and prints what it wrote, one "tag step value" line per scalar, for
 * tests/interop/check_tensorboard.py to compare with what TensorBoard's own reader sees.
 * usage: tb_interop_helper OUTPUT_PATH   (the file goes to OUTPUT_PATH/interop_job/) */
#include <stdio.h>
#include <string.h>

#include "dsc/dsc.h"
#include "dsc/monitor.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_PATH\n", argv[0]);
        return 2;
    }
    char json[1024], err[1024];
    snprintf(json, sizeof json,
             "{\"tensorboard\": {\"enabled\": true, \"output_path\": \"%s\", \"job_name\": \"interop_job\"}}", argv[1]);
    dsc_config_t *cfg = NULL;
    dsc_monitor_t *m = NULL;
    if (dsc_config_parse_string(json, NULL, &cfg, err, sizeof err) != DSC_OK ||
        dsc_monitor_new(cfg, 0, &m, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "tb_interop_helper: %s\n", err);
        dsc_config_free(cfg);
        return 1;
    }
    int rc = 0;
    for (int step = 0; step < 20 && rc == 0; step++) {
        const int64_t samples = 16 * (int64_t)step;
        dsc_monitor_event_t ev[3] = {{"Train/Samples/train_loss", 4.0 / (1.0 + step) + 0.125, samples},
                                     {"Train/Samples/lr", 1e-3 * (step + 1) / 20.0, samples + 16},
                                     {"Train/Samples/loss_scale", 65536.0 / (1 << (step % 3)), samples + 16}};
        if (dsc_monitor_write_events(m, ev, 3, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "tb_interop_helper: %s\n", err);
            rc = 1;
        }
        for (int i = 0; i < 3 && rc == 0; i++) printf("%s %lld %.17g\n", ev[i].name, (long long)ev[i].step, ev[i].value);
    }
    /* a step beyond 32 bits (varint encoding) and a tiny value */
    dsc_monitor_event_t big = {"Train/Samples/lr", 2.5e-9, (int64_t)1 << 40};
    if (rc == 0 && dsc_monitor_write_events(m, &big, 1, err, sizeof err) == DSC_OK)
        printf("%s %lld %.17g\n", big.name, (long long)big.step, big.value);
    printf("FILE %s\n", dsc_monitor_tensorboard_file(m));
    dsc_monitor_free(m);
    dsc_config_free(cfg);
    return rc;
}
