/* `dsc doctor`: what this machine gives dsc (CPU SIMD features, OpenBLAS, MPI, OpenMP) and
 * every setting that would slow training down or break it, each with its fix. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <cblas.h>
#include <dlfcn.h>
#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "commands.h"
#include "dsc/dsc.h"

int dsc_cmd_doctor(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc doctor\n"
            "\n"
            "Reports the CPU's SIMD features (and which kernels dsc picked), the OpenBLAS build and its\n"
            "threads, the MPI library, the OpenMP thread count, the GPUs (driver, CUDA runtime, cuBLASLt,\n"
            "cuDNN and NCCL versions), and every setting that would slow dsc down\n"
            "or break a run, each with its fix. Run it the way you run training (under mpirun for several\n"
            "ranks: the checks then know how many ranks share the node).\n"
            "\n"
            "`dsc report` is the same command (DeepSpeed's ds_report).\n"
            "\n"
            "exit status: 0 no problem found (notes do not count), 1 problems found (listed with fixes),\n"
            "2 usage error\n"
            "\n"
            "examples:\n"
            "  dsc doctor\n"
            "  mpirun -np 4 --hostfile hosts dsc doctor     # as the training job will run\n");
}

typedef struct {
    int n;
} problems_t;

static void problem(problems_t *p, const char *what, const char *fix) {
    p->n++;
    printf("  problem: %s\n      fix: %s\n", what, fix);
}

/* Worth knowing, but nothing is wrong for the run as launched: not counted in the exit status. */
static void note(const char *what, const char *fix) { printf("  note: %s\n      for several ranks: %s\n", what, fix); }

/* The version a shared library reports, when it is installed (dlopen: dsc does not link
 * cuDNN or NCCL yet, so their absence is not an error). */
static void library_version(const char *label, const char *const *sonames, const char *symbol, bool int_out,
                            const char *use) {
    void *h = NULL;
    for (int i = 0; sonames[i] && !h; i++) h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("  %s: not found (%s)\n", label, use);
        return;
    }
    long v = -1;
    void *fn = dlsym(h, symbol);
    if (fn && int_out) {
        int iv = 0;
        if (((int (*)(int *))fn)(&iv) == 0) v = iv;
    } else if (fn) {
        v = (long)((size_t (*)(void))fn)();
    }
    if (v >= 0) printf("  %s: %ld (%s)\n", label, v, use);
    else printf("  %s: installed, version unknown (%s)\n", label, use);
    dlclose(h);
}

static void gpu_section(problems_t *p) {
    printf("\nGPUs (--device cuda:N)\n");
    const bool nvidia_node = access("/dev/nvidia0", F_OK) == 0 || access("/proc/driver/nvidia/version", F_OK) == 0;
    if (!dsc_gpu_compiled()) {
        printf("  this build of dsc has no CUDA device (configure found no nvcc and cuBLASLt, or DSC_CUDA=OFF)\n");
        if (nvidia_node)
            problem(p, "this machine has an NVIDIA driver but dsc was built without CUDA",
                    "install the CUDA toolkit (nvcc, cuBLASLt) and rebuild: cmake -S . -B build -DDSC_CUDA=ON");
        return;
    }
    const int n = dsc_gpu_count();
    if (n == 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        printf("  no CUDA device visible%s%s%s\n", vis ? " (CUDA_VISIBLE_DEVICES=\"" : "", vis ? vis : "",
               vis ? "\")" : "");
        if (nvidia_node)
            problem(p, "the NVIDIA driver is loaded but no GPU is visible to this process",
                    vis ? "check CUDA_VISIBLE_DEVICES, or run nvidia-smi to see the driver's state"
                        : "run nvidia-smi: the driver may not match the GPU, or the device files lack permission");
    }
    for (int i = 0; i < n; i++) {
        dsc_gpu_info_t g;
        char err[256];
        if (dsc_gpu_info(i, &g, err, sizeof err) != DSC_OK) {
            problem(p, err, "run nvidia-smi; a GPU the driver cannot query cannot train");
            continue;
        }
        printf("  cuda:%d %s: compute capability %d.%d, %d SMs, %.1f GiB (%.1f GiB free)\n", i, g.name, g.cc_major,
               g.cc_minor, g.sm_count, g.total_bytes / 1073741824.0, g.free_bytes / 1073741824.0);
        if (i == 0)
            printf("  driver supports CUDA %d.%d, dsc's runtime is CUDA %d.%d, cuBLASLt %zu\n",
                   g.driver_version / 1000, g.driver_version % 1000 / 10, g.runtime_version / 1000,
                   g.runtime_version % 1000 / 10, g.cublaslt_version);
        if (g.cc_major < 9) {
            char what[384];
            snprintf(what, sizeof what,
                     "cuda:%d (%s) has compute capability %d.%d; dsc's CUDA kernels are built for 9.0 "
                     "(H100/H200) and newer",
                     i, g.name, g.cc_major, g.cc_minor);
            problem(p, what, "train on a Hopper-class GPU, or rebuild with -DCMAKE_CUDA_ARCHITECTURES=<yours>");
        }
        if (i == 0 && g.driver_version < g.runtime_version) {
            char what[256];
            snprintf(what, sizeof what, "the driver supports CUDA %d.%d, older than dsc's runtime %d.%d",
                     g.driver_version / 1000, g.driver_version % 1000 / 10, g.runtime_version / 1000,
                     g.runtime_version % 1000 / 10);
            problem(p, what, "update the NVIDIA driver");
        }
    }
    static const char *const cudnn[] = {"libcudnn.so.9", "libcudnn.so", NULL};
    static const char *const nccl[] = {"libnccl.so.2", "libnccl.so", NULL};
    library_version("cuDNN", cudnn, "cudnnGetVersion", false, "not used yet: attention is dsc's own flash kernel");
    library_version("NCCL", nccl, "ncclGetVersion", true, "not used yet: multi-GPU collectives are the next step");
}

/* CPU features: __builtin_cpu_supports where the compiler knows the name (it also checks
 * that the OS saves the registers); clang does not know f16c and avx512bf16, read cpuid. */
static bool cpuid_bit(unsigned leaf, unsigned sub, int reg, int bit) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned r[4];
    if ((unsigned)__get_cpuid_max(0, NULL) < leaf) return false;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    return (r[reg] >> bit) & 1u;
#else
    (void)leaf, (void)sub, (void)reg, (void)bit;
    return false;
#endif
}

typedef struct {
    bool avx2, fma, f16c, avx512f, avx512bf16;
} simd_t;

static simd_t detect_simd(void) {
    simd_t s = {false, false, false, false, false};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    s.avx2 = __builtin_cpu_supports("avx2");
    s.fma = __builtin_cpu_supports("fma");
    s.avx512f = __builtin_cpu_supports("avx512f");
#if defined(__clang__)
    s.f16c = cpuid_bit(1, 0, 2, 29);
    s.avx512bf16 = s.avx512f && cpuid_bit(7, 1, 0, 5);
#else
    s.f16c = __builtin_cpu_supports("f16c");
    s.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
#endif
    (void)cpuid_bit;
    return s;
}

static void cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) break;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = '\0';
        snprintf(buf, n, "%s", c);
        break;
    }
    fclose(f);
}

/* A positive integer environment variable, 0 when unset, -1 when not a positive integer. */
static long env_count(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    /* OMP_NUM_THREADS may list the threads of nested levels ("8,2"): the first counts */
    if (end == v || (*end && *end != ',') || n < 1) return -1;
    return n;
}

int dsc_cmd_doctor(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "dsc doctor: unknown option '%s' (dsc doctor --help)\n", argv[i]);
        return 2;
    }
    problems_t p = {0};
    char buf[1024], fix[512], what[512];

    /* ---- CPU ---- */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int avail = (int)online;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) avail = CPU_COUNT(&set);
    cpu_model(buf, sizeof buf);
    printf("dsc %s doctor\n\nCPU\n  %s: %ld logical CPUs online, %d available to this process\n", DSC_VERSION_STRING, buf,
           online, avail);
    simd_t s = detect_simd();
    printf("  AVX2 %s, FMA %s, F16C %s, AVX-512F %s, AVX-512 BF16 %s\n", s.avx2 ? "yes" : "no", s.fma ? "yes" : "no",
           s.f16c ? "yes" : "no", s.avx512f ? "yes" : "no", s.avx512bf16 ? "yes" : "no");
    printf("  dsc's mixed-precision and optimizer kernels use: %s\n", dsc_amp_isa_name());
    if (!s.avx2 || !s.f16c)
        problem(&p, "no AVX2+F16C: dsc's conversion and optimizer kernels run their scalar path (several times slower)",
                "run on an x86-64-v3 CPU (Haswell / Zen or newer), or enable AVX2 in the VM's CPU model");

    /* ---- launch ---- */
    long local_ranks = env_count("OMPI_COMM_WORLD_LOCAL_SIZE");
    long world = env_count("OMPI_COMM_WORLD_SIZE");
    if (local_ranks < 1) local_ranks = 1;
    if (world > 0) printf("\nLaunch\n  under mpirun: %ld ranks, %ld on this node\n", world, local_ranks);
    else printf("\nLaunch\n  not under mpirun: one rank (several: mpirun -np N dsc train ...)\n");
    const long per_rank = avail / local_ranks > 0 ? avail / local_ranks : 1;

    /* ---- OpenMP ---- */
    long omp_env = env_count("OMP_NUM_THREADS");
    int omp = omp_get_max_threads();
    printf("\nOpenMP (dsc's elementwise, norm, attention and optimizer kernels)\n  %d threads per process "
           "(OMP_NUM_THREADS=%s, OMP_PROC_BIND=%s, OMP_WAIT_POLICY=%s)\n",
           omp, getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "unset",
           getenv("OMP_PROC_BIND") ? getenv("OMP_PROC_BIND") : "unset",
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "unset");
    if (omp_env == 0 && local_ranks > 1) {
        snprintf(what, sizeof what, "OMP_NUM_THREADS is not set: every process starts one OpenMP thread per CPU (%d), "
                 "so the %ld ranks of this node oversubscribe it", omp, local_ranks);
        snprintf(fix, sizeof fix, "export OMP_NUM_THREADS=%ld (the CPUs available / ranks per node: %d / %ld)", per_rank,
                 avail, local_ranks);
        problem(&p, what, fix);
    } else if (omp_env == 0) { /* one process: one thread per CPU is what it should use */
        snprintf(what, sizeof what, "OMP_NUM_THREADS is not set: this one process uses one OpenMP thread per CPU (%d), "
                 "right for one rank; ranks launched together would oversubscribe the node", omp);
        snprintf(fix, sizeof fix, "export OMP_NUM_THREADS=<CPUs / ranks per node> (%d CPUs here)", avail);
        note(what, fix);
    } else if (omp_env < 0) {
        snprintf(what, sizeof what, "OMP_NUM_THREADS=\"%s\" is not a positive integer", getenv("OMP_NUM_THREADS"));
        snprintf(fix, sizeof fix, "export OMP_NUM_THREADS=%ld", per_rank);
        problem(&p, what, fix);
    } else if (omp_env * local_ranks > avail) {
        snprintf(what, sizeof what, "OMP_NUM_THREADS=%ld x %ld rank%s on this node = %ld threads > %d available CPUs: "
                 "threads time-share cores and every parallel loop waits for the slowest",
                 omp_env, local_ranks, local_ranks > 1 ? "s" : "", omp_env * local_ranks, avail);
        snprintf(fix, sizeof fix, "export OMP_NUM_THREADS=%ld", per_rank);
        problem(&p, what, fix);
    }

    /* ---- OpenBLAS ---- */
    int blas_threads = openblas_get_num_threads(), par = openblas_get_parallel();
    printf("\nOpenBLAS (matrix multiplies)\n  %s\n  core %s, %d threads, %s\n", openblas_get_config(),
           openblas_get_corename(), blas_threads,
           par == 0 ? "sequential build" : par == 1 ? "pthreads build" : par == 2 ? "OpenMP build" : "unknown threading");
    long blas_env = env_count("OPENBLAS_NUM_THREADS");
    if (blas_env < 0) {
        snprintf(what, sizeof what, "OPENBLAS_NUM_THREADS=\"%s\" is not a positive integer", getenv("OPENBLAS_NUM_THREADS"));
        snprintf(fix, sizeof fix, "export OPENBLAS_NUM_THREADS=%ld", per_rank);
        problem(&p, what, fix);
    } else if (par != 0 && (long)blas_threads * local_ranks > avail) {
        snprintf(what, sizeof what, "OpenBLAS runs %d threads x %ld rank%s on this node > %d available CPUs",
                 blas_threads, local_ranks, local_ranks > 1 ? "s" : "", avail);
        snprintf(fix, sizeof fix, "export OPENBLAS_NUM_THREADS=%ld (or OMP_NUM_THREADS, which OpenBLAS also reads)",
                 per_rank);
        problem(&p, what, fix);
    }

    /* ---- MPI (MPI_Get_library_version may be called before MPI_Init) ---- */
    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, "\n")] = '\0';
    int major = 0, minor = 0;
    MPI_Get_version(&major, &minor);
    printf("\nMPI (data-parallel collectives)\n  %s (MPI %d.%d)\n", lib[0] ? lib : "unknown library", major, minor);

    /* ---- GPUs ---- */
    gpu_section(&p);

    /* ---- data ---- */
    if (access("/usr/share/games/fortunes/fortunes", R_OK) != 0)
        problem(&p, "the fortunes corpus `dsc train` uses by default is not installed (/usr/share/games/fortunes)",
                "apt-get install fortunes-min (scripts/deps.sh installs it), or give dsc train --data FILE");

    if (p.n == 0) printf("\nno problems found\n");
    else printf("\n%d problem%s found (fixes above)\n", p.n, p.n > 1 ? "s" : "");
    return p.n ? 1 : 0;
}
