/* `dsc launch -n N COMMAND ...`: the `deepspeed` launcher's job for dsc. Runs `dsc COMMAND`
 * as N data-parallel ranks under mpirun (dsc takes ranks from MPI), with OMP_NUM_THREADS set
 * to the CPUs per rank when the user has not set it, so the ranks do not oversubscribe the
 * node. --dry-run prints the mpirun command instead of running it. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc launch [-n N] [--hostfile FILE] [--mpirun PATH] [--dry-run] COMMAND [ARGS...]\n"
            "\n"
            "Runs `dsc COMMAND ARGS...` as N data-parallel ranks under mpirun (what DeepSpeed's\n"
            "`deepspeed --num_gpus N` launcher does; dsc takes rank and world size from MPI, so no\n"
            "--local_rank is passed). Without OMP_NUM_THREADS in the environment each rank gets the\n"
            "CPUs available here divided by the ranks per node (at least 1), exported with -x.\n"
            "\n"
            "options:\n"
            "  -n N, --np N, --num_gpus N, --num_procs N   ranks (default 1)\n"
            "  --hostfile FILE    an OpenMPI hostfile (ranks over several machines; OMP_NUM_THREADS is\n"
            "                     then computed for N / (hosts in FILE) ranks per node)\n"
            "  --mpirun PATH      the launcher (default: $DSC_MPIRUN, else mpirun)\n"
            "  --dry-run          print the command instead of running it\n"
            "  -h, --help         this text\n"
            "\n"
            "examples:\n"
            "  dsc launch -n 2 train --config configs/ds_zero2.json --steps 100\n"
            "  dsc launch -n 8 --hostfile configs/hostfile train --model d12 --data 'shards/train_*.bin'\n");
}

/* Lines of a hostfile naming a host (not blank, not a comment); 0 when unreadable. */
static int hostfile_hosts(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *s = line + strspn(line, " \t");
        if (*s && *s != '#' && *s != '\n') n++;
    }
    fclose(f);
    return n;
}

int dsc_cmd_launch(int argc, char **argv) {
    long np = 1;
    const char *hostfile = NULL, *mpirun = getenv("DSC_MPIRUN");
    bool dry = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(k, "--dry-run")) {
            dry = true;
            continue;
        }
        if (!strcmp(k, "--")) {
            i++;
            break;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dsc launch: %s needs a value (dsc launch --help)\n", k);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(k, "-n") || !strcmp(k, "--np") || !strcmp(k, "--num_gpus") || !strcmp(k, "--num_procs")) {
            char *end;
            errno = 0;
            np = strtol(v, &end, 10);
            if (errno || end == v || *end || np < 1 || np > 100000) {
                fprintf(stderr, "dsc launch: invalid value '%s' for %s (a number of ranks >= 1)\n", v, k);
                return 2;
            }
        } else if (!strcmp(k, "--hostfile")) {
            hostfile = v;
        } else if (!strcmp(k, "--mpirun")) {
            mpirun = v;
        } else {
            fprintf(stderr, "dsc launch: unknown option %s (dsc launch --help)\n", k);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "dsc launch: no command (e.g. dsc launch -n 2 train --steps 100)\n");
        return 2;
    }
    if (!strcmp(argv[i], "launch")) {
        fprintf(stderr, "dsc launch: the command cannot be launch itself\n");
        return 2;
    }
    if (!mpirun || !*mpirun) mpirun = "mpirun";
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "dsc launch: cannot find the dsc executable (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    /* OMP_NUM_THREADS per rank: the CPUs here over the ranks that share a node. */
    char omp[64] = "";
    if (!getenv("OMP_NUM_THREADS")) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
        int hosts = hostfile ? hostfile_hosts(hostfile) : 1;
        long per_node = hosts > 1 ? (np + hosts - 1) / hosts : np;
        long per_rank = cpus / per_node > 0 ? cpus / per_node : 1;
        snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%ld", per_rank);
    }
    char np_text[32];
    snprintf(np_text, sizeof np_text, "%ld", np);
    const char **args = calloc((size_t)(argc - i) + 12, sizeof *args);
    if (!args) {
        fprintf(stderr, "dsc launch: out of memory\n");
        return 1;
    }
    int a = 0;
    args[a++] = mpirun;
    args[a++] = "-np";
    args[a++] = np_text;
    if (hostfile) args[a++] = "--hostfile", args[a++] = hostfile;
    if (omp[0]) args[a++] = "-x", args[a++] = omp;
    args[a++] = self;
    for (int k = i; k < argc; k++) args[a++] = argv[k];
    args[a] = NULL;
    if (dry) {
        for (int k = 0; k < a; k++) printf("%s%s", k ? " " : "", args[k]);
        printf("\n");
        free(args);
        return 0;
    }
    fflush(stdout);
    execvp(mpirun, (char *const *)args);
    fprintf(stderr, "dsc launch: cannot run %s: %s (install OpenMPI's mpirun, e.g. apt-get install openmpi-bin, or "
            "name it with --mpirun PATH)\n", mpirun, strerror(errno));
    free(args);
    return 1;
}
