/* dsc launch's host list: an OpenMPI / DeepSpeed hostfile and DeepSpeed's --include / --exclude
 * filters over it (launch_hosts.h). mpirun can be told which hosts and how many ranks each
 * takes, not which device a rank uses (each rank picks its own), so a slot list is honoured
 * only when it is the first ids of the host (0..k-1, the ids its k ranks take); any other
 * list is refused with a message rather than run on other devices. */
#include "launch_hosts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDS 4096

static int fail(char *err, size_t errsz, const char *msg) {
    snprintf(err, errsz, "%s", msg);
    return -1;
}

static int find(const launch_hosts_t *h, const char *name) {
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->v[i].name, name)) return i;
    return -1;
}

static int push(launch_hosts_t *h, const char *name, size_t len, int slots, int line) {
    launch_host_t *v = realloc(h->v, (size_t)(h->n + 1) * sizeof *v);
    if (!v) return -1;
    h->v = v;
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, name, len);
    copy[len] = '\0';
    h->v[h->n++] = (launch_host_t){copy, slots, line};
    return 0;
}

void launch_hosts_free(launch_hosts_t *h) {
    for (int i = 0; i < h->n; i++) free(h->v[i].name);
    free(h->v);
    h->v = NULL;
    h->n = 0;
}

int launch_hosts_local(launch_hosts_t *out, char *err, size_t errsz) {
    *out = (launch_hosts_t){0};
    if (push(out, "localhost", 9, -1, 0)) return fail(err, errsz, "out of memory");
    return 0;
}

int launch_hosts_read(const char *path, launch_hosts_t *out, char *err, size_t errsz) {
    *out = (launch_hosts_t){0};
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "cannot read the hostfile %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = line + strspn(line, " \t\r\n");
        if (!*s) continue;
        size_t len = strcspn(s, " \t\r\n");
        int slots = -1;
        char *kv = strstr(s + len, "slots=");
        if (kv) {
            char *end;
            errno = 0;
            long v = strtol(kv + 6, &end, 10);
            if (errno || end == kv + 6 || v < 1 || v > 1000000 || (*end && !strchr(" \t\r\n", *end))) {
                snprintf(err, errsz, "%s:%d: slots= wants a number >= 1", path, ln);
                goto bad;
            }
            slots = (int)v;
        }
        s[len] = '\0';
        if (find(out, s) >= 0) {
            snprintf(err, errsz, "%s:%d: host %s is listed twice", path, ln, s);
            goto bad;
        }
        if (push(out, s, len, slots, ln)) {
            snprintf(err, errsz, "out of memory");
            goto bad;
        }
    }
    fclose(f);
    if (out->n == 0) {
        snprintf(err, errsz, "the hostfile %s names no host", path);
        launch_hosts_free(out);
        return -1;
    }
    return 0;
bad:
    fclose(f);
    launch_hosts_free(out);
    return -1;
}

/* "host:a,b,...,c": ids first..first+k-1 of NAME, for a message. */
static void id_list(char *out, size_t n, const char *name, int first, int k) {
    size_t at = (size_t)snprintf(out, n, "%s:", name);
    for (int j = 0; j < k && at < n; j++) at += (size_t)snprintf(out + at, n - at, "%s%d", j ? "," : "", first + j);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Parses "0,1,3" into ids (sorted); -1 with a message on a non-number or a repeat. */
static int parse_ids(const char *text, size_t len, int *ids, int *k, const char *opt, const char *item, char *err,
                     size_t errsz) {
    *k = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        char *stop;
        errno = 0;
        long v = strtol(p, &stop, 10);
        if (errno || stop == p || v < 0 || v >= 1000000 || (stop < end && *stop != ',') || *k >= MAX_IDS) {
            snprintf(err, errsz, "%s '%s': a slot list is comma-separated ids >= 0 (host:0,1)", opt, item);
            return -1;
        }
        ids[(*k)++] = (int)v;
        p = stop < end ? stop + 1 : stop;
        if (stop < end && p == end) {
            snprintf(err, errsz, "%s '%s': a slot list is comma-separated ids >= 0 (host:0,1)", opt, item);
            return -1;
        }
    }
    if (*k == 0) {
        snprintf(err, errsz, "%s '%s': empty slot list after ':'", opt, item);
        return -1;
    }
    qsort(ids, (size_t)*k, sizeof *ids, cmp_int);
    for (int j = 1; j < *k; j++)
        if (ids[j] == ids[j - 1]) {
            snprintf(err, errsz, "%s '%s': slot %d is listed twice", opt, item, ids[j]);
            return -1;
        }
    return 0;
}

/* Walks SPEC's '@'-separated items; for each, checks the host is in h and named once and its
 * slot ids exist, then calls fn with the host's index, the item and its sorted ids (k = 0
 * without a list), which sets the host's new slot count. */
typedef int (*item_fn)(launch_hosts_t *h, int idx, const char *item, const int *ids, int k, int *slots,
                       const char *where, char *err, size_t errsz);

static int walk(launch_hosts_t *h, const char *spec, const char *opt, const char *where, bool *named, int *new_slots,
                item_fn fn, char *err, size_t errsz) {
    int ids[MAX_IDS];
    const char *p = spec;
    if (!*spec) {
        snprintf(err, errsz, "%s: empty host list", opt);
        return -1;
    }
    for (;;) {
        size_t len = strcspn(p, "@");
        char item[512];
        if (len == 0 || len >= sizeof item) {
            snprintf(err, errsz, "%s '%s': items are host or host:ids, separated by '@' (host1@host2:0,1)", opt, spec);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        size_t nlen = strcspn(item, ":");
        int k = 0;
        if (item[nlen] == ':' && parse_ids(item + nlen + 1, len - nlen - 1, ids, &k, opt, item, err, errsz)) return -1;
        char name[512];
        memcpy(name, item, nlen);
        name[nlen] = '\0';
        int idx = find(h, name);
        if (idx < 0) {
            char known[256] = "";
            for (int i = 0; i < h->n && strlen(known) < 200; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", h->v[i].name);
            snprintf(err, errsz, "%s names host '%s', which is not in %s (hosts: %s)", opt, name, where, known);
            return -1;
        }
        if (named[idx]) {
            snprintf(err, errsz, "%s names host '%s' twice", opt, name);
            return -1;
        }
        named[idx] = true;
        const launch_host_t *host = &h->v[idx];
        for (int j = 0; j < k; j++)
            if (host->slots >= 0 && ids[j] >= host->slots) {
                snprintf(err, errsz, "%s '%s': %s has slots 0..%d (slots=%d in %s)", opt, item, name, host->slots - 1,
                         host->slots, where);
                return -1;
            }
        if (fn(h, idx, item, ids, k, &new_slots[idx], where, err, errsz)) return -1;
        p += len;
        if (!*p) break;
        p++;
    }
    return 0;
}

static int include_item(launch_hosts_t *h, int idx, const char *item, const int *ids, int k, int *slots,
                        const char *where, char *err, size_t errsz) {
    (void)where;
    *slots = h->v[idx].slots;
    if (k == 0) return 0;
    for (int j = 0; j < k; j++)
        if (ids[j] != j) {
            char first[256];
            id_list(first, sizeof first, h->v[idx].name, 0, k);
            snprintf(err, errsz, "--include '%s': dsc launch can give %s %d rank(s), not pin them to these ids: "
                     "each rank picks its device itself, so they would take the first %d. List those (%s) or "
                     "the host alone", item, h->v[idx].name, k, k, first);
            return -1;
        }
    *slots = k;
    return 0;
}

static int exclude_item(launch_hosts_t *h, int idx, const char *item, const int *ids, int k, int *slots,
                        const char *where, char *err, size_t errsz) {
    (void)where;
    const launch_host_t *host = &h->v[idx];
    if (k == 0) {
        *slots = 0;
        return 0;
    }
    if (host->slots < 0) {
        snprintf(err, errsz, "--exclude '%s': the slots of %s are not known (%s); give it slots=N in a --hostfile",
                 item, host->name, host->line ? "no slots= on its line" : "no --hostfile");
        return -1;
    }
    for (int j = 0; j < k; j++)
        if (ids[j] != host->slots - k + j) {
            char last[256];
            id_list(last, sizeof last, host->name, host->slots - k, k);
            snprintf(err, errsz, "--exclude '%s': dsc launch can give %s fewer ranks, not skip particular ids: "
                     "each rank picks its device itself, so its %d rank(s) would take the first %d ids. Exclude "
                     "the last ones (%s) or the host", item, host->name, host->slots - k, host->slots - k, last);
            return -1;
        }
    *slots = host->slots - k;
    return 0;
}

/* Keeps the hosts with keep[i] and gives them new_slots[i]. */
static void apply(launch_hosts_t *h, const bool *keep, const int *new_slots) {
    int m = 0;
    for (int i = 0; i < h->n; i++) {
        if (keep[i]) {
            h->v[m] = h->v[i];
            h->v[m++].slots = new_slots[i];
        } else {
            free(h->v[i].name);
        }
    }
    h->n = m;
}

static int filter(launch_hosts_t *h, const char *spec, const char *where, bool include, char *err, size_t errsz) {
    bool *named = calloc((size_t)h->n, sizeof *named);
    int *slots = calloc((size_t)h->n, sizeof *slots);
    bool *keep = calloc((size_t)h->n, sizeof *keep);
    int rc = -1;
    if (!named || !slots || !keep) {
        fail(err, errsz, "out of memory");
        goto out;
    }
    for (int i = 0; i < h->n; i++) slots[i] = h->v[i].slots;
    if (walk(h, spec, include ? "--include" : "--exclude", where, named, slots, include ? include_item : exclude_item,
             err, errsz))
        goto out;
    int left = 0;
    for (int i = 0; i < h->n; i++) {
        keep[i] = include ? named[i] : slots[i] != 0;
        left += keep[i];
    }
    if (left == 0) {
        snprintf(err, errsz, "--exclude '%s' leaves no host of %s", spec, where);
        goto out;
    }
    apply(h, keep, slots);
    rc = 0;
out:
    free(named), free(slots), free(keep);
    return rc;
}

int launch_hosts_include(launch_hosts_t *h, const char *spec, const char *where, char *err, size_t errsz) {
    return filter(h, spec, where, true, err, errsz);
}

int launch_hosts_exclude(launch_hosts_t *h, const char *spec, const char *where, char *err, size_t errsz) {
    return filter(h, spec, where, false, err, errsz);
}
