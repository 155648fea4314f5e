/* `dsc plot RUN_DIR`: a PNG of a run's training loss and learning rate, read from the files
 * the csv monitor writes (csv_monitor in the DeepSpeed config). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tool_text.h"
#include "dsc/monitor.h"

int dsc_cmd_plot(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc plot RUN_DIR [--out FILE] [--width W] [--height H]\n"
            "\n"
            "Draws the training loss and the learning rate of a run against the samples seen, from\n"
            "RUN_DIR/Train_Samples_train_loss.csv and RUN_DIR/Train_Samples_lr.csv (and the validation loss\n"
            "from RUN_DIR/Train_Samples_val_loss.csv, which dsc train writes, in green): the files DeepSpeed's\n"
            "csv monitor writes, and dsc's engine writes the same way when the config has\n"
            "  \"csv_monitor\": {\"enabled\": true, \"output_path\": \"runs/\", \"job_name\": \"gpt\"}\n"
            "(RUN_DIR is then runs/gpt).\n"
            "\n"
            "options:\n"
            "  --out FILE     the PNG to write (default RUN_DIR/plot.png)\n"
            "  --width W      image width in pixels (default 900)\n"
            "  --height H     image height in pixels (default 600)\n"
            "  -h, --help     this text\n"
            "\n"
            "exit status: 0 written, 1 no csv files or a bad file (the error is printed), 2 usage error\n"
            "\n"
            "example:\n"
            "  dsc plot runs/gpt --out loss.png\n");
}

static bool parse_px(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 200 || v > 8000) return false;
    *out = (int)v;
    return true;
}

int dsc_cmd_plot(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    int width = 900, height = 600;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        }
        if (k[0] != '-' || !k[1]) {
            if (dir) {
                fprintf(stderr, "dsc plot: one RUN_DIR only (got '%s' and '%s')\n", dir, k);
                return 2;
            }
            dir = k;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dsc plot: %s needs a value (dsc plot --help)\n", k);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(k, "--out")) out = v;
        else if (!strcmp(k, "--width")) ok = parse_px(v, &width);
        else if (!strcmp(k, "--height")) ok = parse_px(v, &height);
        else {
            fprintf(stderr, "dsc plot: unknown option '%s' (dsc plot --help)\n", k);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "dsc plot: invalid value '%s' for %s (pixels, 200..8000)\n", v, k);
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    char *def = NULL;
    if (!out) {
        size_t n = strlen(dir) + 16;
        def = malloc(n);
        if (!def) return 1;
        snprintf(def, n, "%s%splot.png", dir, dir[strlen(dir) - 1] == '/' ? "" : "/");
        out = def;
    }
    char err[1024];
    dsc_status_t rc = dsc_plot_run_dir(dir, out, width, height, err, sizeof err);
    if (rc == DSC_OK) printf("wrote %s (%dx%d)\n", out, width, height);
    else { /* the message may quote a line of a bad csv file: never its raw bytes */
        fputs("dsc plot: ", stderr);
        dsc_tool_fputs_escaped(err, stderr);
        fputc('\n', stderr);
    }
    free(def);
    return rc == DSC_OK ? 0 : 1;
}
