/* The dsc command line: dispatches to one subcommand per tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include <cblas.h>
#include <stdlib.h>

#include "commands.h"
#include "dsc/dsc.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"train", dsc_cmd_train, "train a GPT on text with a DeepSpeed JSON config"},
    {"config", dsc_cmd_config, "validate a DeepSpeed config and print the effective values"},
    {"estimate", dsc_cmd_estimate, "per-rank memory by ZeRO stage, beside DeepSpeed's estimators"},
    {"plot", dsc_cmd_plot, "PNG of a run's loss and lr from its csv monitor files"},
    {"sample", dsc_cmd_sample, "generate text from a checkpoint of a text-trained GPT"},
    {"zero-to-fp32", dsc_cmd_zero_to_fp32, "write a checkpoint's fp32 weights as one safetensors file"},
    {"doctor", dsc_cmd_doctor, "check CPU features, OpenBLAS, MPI and OpenMP settings, with fixes"},
    {"report", dsc_cmd_doctor, "the same as doctor (DeepSpeed's ds_report)"},
    {"launch", dsc_cmd_launch, "run a dsc command as N ranks under mpirun (DeepSpeed's launcher)"},
};

static void usage(FILE *out) {
    fprintf(out,
            "dsc %s: DeepSpeed-class training in C\n\n"
            "usage: dsc <command> [options]   (dsc <command> --help for details)\n\ncommands:\n",
            DSC_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexamples:\n  dsc train                      # the built-in corpus and config\n"
                 "  dsc config check ds_config.json --world-size 8\n");
}

int main(int argc, char **argv) {
    /* Debian's default OpenBLAS runs its own pthreads beside dsc's OpenMP threads; with both
     * at the core count they oversubscribe the machine (measured on 2 cores: a 0.8M-parameter
     * step 2.4x slower, d6 1.09x slower than with OpenBLAS on one thread). Unless the user
     * chose, OpenBLAS gets one thread and OpenMP the cores. */
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(1);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("dsc %s\n", DSC_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dsc: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
