/* `dsc launch -np N COMMAND ...`: the `deepspeed` launcher's job for dsc. Runs `dsc COMMAND`
 * as data-parallel ranks under mpirun (dsc takes ranks from MPI), with OMP_NUM_THREADS set to
 * the CPUs per rank when the user has not set it, so the ranks do not oversubscribe the node.
 * DeepSpeed's launcher options map onto mpirun's -np / --hostfile / --host (launch_hosts.c);
 * what mpirun cannot be told is refused, not ignored. --dry-run prints the mpirun command. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "launch_hosts.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc launch [-np N | --num_gpus N] [--hostfile FILE] [--num_nodes N]\n"
            "                  [--include SPEC | --exclude SPEC] [--mpirun PATH] [--dry-run] COMMAND [ARGS...]\n"
            "\n"
            "Runs `dsc COMMAND ARGS...` as data-parallel ranks under mpirun (what DeepSpeed's `deepspeed`\n"
            "launcher does; dsc takes rank and world size from MPI, so no --local_rank is passed) and\n"
            "prints the mpirun line first. Without OMP_NUM_THREADS in the environment each rank gets the\n"
            "CPUs available here divided by the ranks per node (at least 1), exported with -x.\n"
            "\n"
            "options (DeepSpeed's launcher options; what mpirun is told in brackets):\n"
            "  -n N, -np N, --np N, --num_procs N   ranks in all [-np N]\n"
            "  --num_gpus N       ranks per node, as DeepSpeed's: N x the nodes used [-np]\n"
            "  --hostfile FILE    an OpenMPI / DeepSpeed hostfile, one `host slots=N` line per node. Without\n"
            "                     -n or --num_gpus every slot of the hosts used gets a rank [--hostfile FILE]\n"
            "  --num_nodes N      the first N hosts of the hostfile (after --include/--exclude) [--host]\n"
            "  --include SPEC     only these hosts / slots: host1@host2 or host1:0,1@host2 [--host h:slots,...]\n"
            "  --exclude SPEC     all hosts but these / these slots: host1@host2:2,3 [--host h:slots,...]\n"
            "  --master_addr A, --master_port P   accepted and ignored, with a note: MPI connects the ranks\n"
            "  --mpirun PATH      the launcher (default: $DSC_MPIRUN, else mpirun)\n"
            "  --dry-run          print the mpirun command instead of running it\n"
            "  -h, --help         this text\n"
            "Options also take the form --option=VALUE.\n"
            "\n"
            "Slot lists are honoured as a number of ranks per host, not as device ids: each rank picks\n"
            "its device itself, so host:0,1 gives host 2 ranks (ids 0 and 1), --exclude host:2,3 on a\n"
            "slots=4 host leaves 2 (ids 0, 1), and a list that is not the first / last ids of the host\n"
            "(host:1,3) is refused. Without --hostfile the one host is localhost (slots unknown, so only\n"
            "--include localhost[:0,..,k-1] and --num_nodes 1 apply). --include with --exclude, or -n\n"
            "with --num_gpus, is an error, as is asking for more ranks than the selected hosts' slots.\n"
            "\n"
            "examples:\n"
            "  dsc launch -np 2 train --config configs/ds_zero2.json --steps 100\n"
            "  dsc launch --hostfile configs/hostfile train --config configs/ds_zero3.json   # every slot\n"
            "  dsc launch --hostfile hosts --num_nodes 2 --num_gpus 4 train --model d12 --data 'shards/*.bin'\n");
}

/* ARG as a shell reads it back: bare when it has only safe characters, else in single quotes
 * (so a printed glob pattern can be pasted without the shell expanding it). */
static void print_shell_word(FILE *out, const char *arg) {
    if (*arg && strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=:,@%+-") == strlen(arg)) {
        fputs(arg, out);
        return;
    }
    fputc('\'', out);
    for (const char *c = arg; *c; c++)
        if (*c == '\'') fputs("'\\''", out);
        else fputc(*c, out);
    fputc('\'', out);
}

static int bad(const char *msg) {
    fprintf(stderr, "dsc launch: %s (dsc launch --help)\n", msg);
    return 2;
}

static bool parse_count(const char *k, const char *v, long *out) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > 100000) {
        fprintf(stderr, "dsc launch: invalid value '%s' for %s (a number >= 1)\n", v, k);
        return false;
    }
    *out = n;
    return true;
}

int dsc_cmd_launch(int argc, char **argv) {
    long np = 0, per_node = 0, num_nodes = 0; /* 0: not given */
    const char *hostfile = NULL, *include = NULL, *exclude = NULL, *mpirun = getenv("DSC_MPIRUN");
    const char *master_addr = NULL, *master_port = NULL;
    bool dry = false;
    char key[64];
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *k = argv[i], *v = NULL;
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
        const char *eq = !strncmp(k, "--", 2) ? strchr(k, '=') : NULL;
        if (eq && (size_t)(eq - k) < sizeof key) { /* --option=VALUE */
            memcpy(key, k, (size_t)(eq - k));
            key[eq - k] = '\0';
            k = key, v = eq + 1;
        } else if (i + 1 >= argc) {
            fprintf(stderr, "dsc launch: %s needs a value (dsc launch --help)\n", k);
            return 2;
        } else {
            v = argv[++i];
        }
        if (!strcmp(k, "-n") || !strcmp(k, "-np") || !strcmp(k, "--np") || !strcmp(k, "--num_procs")) {
            if (!parse_count(k, v, &np)) return 2;
        } else if (!strcmp(k, "--num_gpus")) {
            if (!parse_count(k, v, &per_node)) return 2;
        } else if (!strcmp(k, "--num_nodes")) {
            if (!parse_count(k, v, &num_nodes)) return 2;
        } else if (!strcmp(k, "--hostfile")) {
            hostfile = v;
        } else if (!strcmp(k, "--include")) {
            include = v;
        } else if (!strcmp(k, "--exclude")) {
            exclude = v;
        } else if (!strcmp(k, "--master_addr")) {
            master_addr = v;
        } else if (!strcmp(k, "--master_port")) {
            master_port = v;
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
    if (include && exclude) return bad("--include and --exclude cannot be used together (as in DeepSpeed)");
    if (np && per_node) return bad("give -n N (ranks in all) or --num_gpus N (ranks per node), not both");
    if (!mpirun || !*mpirun) mpirun = "mpirun";
    if (master_addr || master_port)
        fprintf(stderr, "dsc launch: note: --master_addr/--master_port ignored: mpirun starts the ranks and MPI "
                "connects them, there is no TCP rendezvous to point at\n");
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "dsc launch: cannot find the dsc executable (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';

    /* The hosts: the hostfile's, or this machine; then DeepSpeed's filters, in its order
     * (include / exclude, then the first --num_nodes, then --num_gpus per node). */
    const bool filtered = include || exclude || num_nodes || (per_node && hostfile); /* mpirun gets --host */
    const char *where = hostfile ? hostfile : "this machine (no --hostfile)";
    char err[1024];
    launch_hosts_t hosts;
    if ((hostfile ? launch_hosts_read(hostfile, &hosts, err, sizeof err) : launch_hosts_local(&hosts, err, sizeof err)))
        return bad(err);
    int rc = 2;
    const char **args = NULL;
    char *host_list = NULL;
    if ((include && launch_hosts_include(&hosts, include, where, err, sizeof err)) ||
        (exclude && launch_hosts_exclude(&hosts, exclude, where, err, sizeof err))) {
        bad(err);
        goto out;
    }
    if (num_nodes > hosts.n) {
        snprintf(err, sizeof err, "--num_nodes %ld, but %s has %d host(s)%s", num_nodes, where, hosts.n,
                 include || exclude ? " after --include/--exclude" : "");
        bad(err);
        goto out;
    }
    if (num_nodes) {
        for (int h = (int)num_nodes; h < hosts.n; h++) free(hosts.v[h].name);
        hosts.n = (int)num_nodes;
    }
    long slots = 0; /* the selected hosts' slots; -1 when one is not known */
    for (int h = 0; h < hosts.n; h++) {
        launch_host_t *host = &hosts.v[h];
        if (per_node && host->slots >= 0 && per_node > host->slots) {
            snprintf(err, sizeof err, "--num_gpus %ld, but %s has slots=%d in %s", per_node, host->name, host->slots,
                     where);
            bad(err);
            goto out;
        }
        if (per_node) host->slots = (int)per_node;
        slots = slots < 0 || host->slots < 0 ? -1 : slots + host->slots;
    }
    if (filtered && slots < 0 && hostfile) { /* mpirun --host h would give h 1 slot */
        for (int h = 0; h < hosts.n; h++)
            if (hosts.v[h].slots < 0) {
                snprintf(err, sizeof err, "%s:%d: host %s has no slots=N, which --include/--exclude/--num_nodes "
                         "need (or give --num_gpus N)", hostfile, hosts.v[h].line, hosts.v[h].name);
                break;
            }
        bad(err);
        goto out;
    }
    if (per_node) {
        np = per_node * hosts.n;
    } else if (!np && (hostfile || filtered)) { /* DeepSpeed's default: every slot of the hosts used */
        if (slots < 0 && hostfile) {
            for (int h = 0; h < hosts.n; h++)
                if (hosts.v[h].slots < 0) {
                    snprintf(err, sizeof err, "%s:%d: host %s has no slots=N, so the ranks are not known; give -n N "
                             "or slots=N", hostfile, hosts.v[h].line, hosts.v[h].name);
                    break;
                }
            bad(err);
            goto out;
        }
        np = slots < 0 ? 1 : slots; /* this machine alone, no slot list: 1 */
    } else if (!np) {
        np = 1;
    }
    if (filtered && slots >= 0 && np > slots) {
        snprintf(err, sizeof err, "%ld ranks asked, but the hosts selected from %s have %ld slot(s)", np, where, slots);
        bad(err);
        goto out;
    }
    /* mpirun --host h1:s1,h2:s2 for a selection, else the hostfile as it is. */
    if (filtered) {
        size_t len = 1;
        for (int h = 0; h < hosts.n; h++) len += strlen(hosts.v[h].name) + 16;
        host_list = malloc(len);
        if (!host_list) {
            bad("out of memory");
            goto out;
        }
        size_t at = 0;
        for (int h = 0; h < hosts.n; h++) {
            at += (size_t)snprintf(host_list + at, len - at, "%s%s", h ? "," : "", hosts.v[h].name);
            /* slots known, or this machine alone: as many as the ranks */
            long count = hosts.v[h].slots >= 0 ? hosts.v[h].slots : np;
            at += (size_t)snprintf(host_list + at, len - at, ":%ld", count);
        }
    }
    /* OMP_NUM_THREADS per rank: the CPUs here over the ranks that share a node. */
    char omp[64] = "";
    if (!getenv("OMP_NUM_THREADS")) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
        int nodes = hostfile || filtered ? hosts.n : 1;
        long ranks_here = (np + nodes - 1) / nodes;
        long per_rank = cpus / ranks_here > 0 ? cpus / ranks_here : 1;
        snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%ld", per_rank);
    }
    char np_text[32];
    snprintf(np_text, sizeof np_text, "%ld", np);
    args = calloc((size_t)(argc - i) + 12, sizeof *args);
    if (!args) {
        bad("out of memory");
        goto out;
    }
    int a = 0;
    args[a++] = mpirun;
    args[a++] = "-np";
    args[a++] = np_text;
    if (host_list) args[a++] = "--host", args[a++] = host_list;
    else if (hostfile) args[a++] = "--hostfile", args[a++] = hostfile;
    if (omp[0]) args[a++] = "-x", args[a++] = omp;
    args[a++] = self;
    for (int k = i; k < argc; k++) args[a++] = argv[k];
    args[a] = NULL;
    FILE *line = dry ? stdout : stderr;
    if (!dry) fprintf(line, "dsc launch: ");
    for (int k = 0; k < a; k++) {
        if (k) fputc(' ', line);
        print_shell_word(line, args[k]);
    }
    fprintf(line, "\n");
    if (dry) {
        rc = 0;
        goto out;
    }
    fflush(stdout);
    fflush(stderr);
    execvp(mpirun, (char *const *)args);
    fprintf(stderr, "dsc launch: cannot run %s: %s (install OpenMPI's mpirun, e.g. apt-get install openmpi-bin, or "
            "name it with --mpirun PATH)\n", mpirun, strerror(errno));
    rc = 1;
out:
    free(args);
    free(host_list);
    launch_hosts_free(&hosts);
    return rc;
}
