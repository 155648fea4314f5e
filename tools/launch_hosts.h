/* dsc launch's host list: an OpenMPI / DeepSpeed hostfile (`host slots=N`) and DeepSpeed's
 * --include / --exclude / --num_nodes / --num_gpus filters over it, reduced to what mpirun can
 * be told: which hosts, and how many ranks on each. */
#ifndef DSC_TOOLS_LAUNCH_HOSTS_H
#define DSC_TOOLS_LAUNCH_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *name;
    int slots; /* ranks this host may take; -1: not known (no slots= in the file, or no file) */
    int line;  /* line in the hostfile; 0 for the local machine without one */
} launch_host_t;

typedef struct {
    launch_host_t *v;
    int n;
} launch_hosts_t;

/* Reads PATH (blank lines and `#` comments skipped; `host [slots=N] [other OpenMPI keys]`).
 * Returns 0, or -1 with a message naming the file and line (unreadable, a duplicate host, a bad
 * slots= value). The caller frees with launch_hosts_free. */
int launch_hosts_read(const char *path, launch_hosts_t *out, char *err, size_t errsz);

/* The local machine alone, as "localhost" with an unknown slot count (no hostfile given). */
int launch_hosts_local(launch_hosts_t *out, char *err, size_t errsz);

/* DeepSpeed's --include SPEC ("host1@host2:0,1"): keeps the hosts named, in the list's order; a
 * slot list "host:0,1" gives the host that many ranks. WHERE names the list in messages. */
int launch_hosts_include(launch_hosts_t *h, const char *spec, const char *where, char *err, size_t errsz);

/* DeepSpeed's --exclude SPEC: drops the hosts named; "host:2,3" drops those slots of the host. */
int launch_hosts_exclude(launch_hosts_t *h, const char *spec, const char *where, char *err, size_t errsz);

void launch_hosts_free(launch_hosts_t *h);

#endif
