/* Storage of a parsed config: the arena that owns its strings and arrays, the sources of
 * the values that are not defaults, and the warnings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

/* ---- arena -------------------------------------------------------------------------------- */

struct cfg_block {
    cfg_block_t *next;
    size_t used, cap;
    max_align_t data[];
};

void *cfg_alloc(cfg_arena_t *a, size_t n) {
    const size_t align = sizeof(max_align_t);
    if (n > SIZE_MAX / 2) {
        a->failed = true;
        return NULL;
    }
    n = (n + align - 1) / align * align;
    if (n == 0) n = align;
    cfg_block_t *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        b = malloc(sizeof *b + cap);
        if (!b) {
            a->failed = true;
            return NULL;
        }
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *cfg_strndup(cfg_arena_t *a, const char *s, size_t n) {
    char *d = cfg_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *cfg_strdup(cfg_arena_t *a, const char *s) { return s ? cfg_strndup(a, s, strlen(s)) : NULL; }

char *cfg_printf(cfg_arena_t *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *d = cfg_alloc(a, (size_t)n + 1);
    if (!d) return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void cfg_arena_free(cfg_arena_t *a) {
    cfg_block_t *b = a->head;
    while (b) {
        cfg_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

const char cfg_note_null[] = "null";

/* ---- sources and warnings ---------------------------------------------------------------- */

bool cfg_set_source(cfg_impl_t *impl, const char *path, dsc_config_origin_t origin, int line, int col,
                    const char *note) {
    for (size_t i = 0; i < impl->n_src; i++) {
        if (strcmp(impl->src[i].path, path) == 0) {
            impl->src[i].src = (dsc_config_source_t){origin, line, col, note};
            return true;
        }
    }
    if (impl->n_src == impl->cap_src) {
        size_t cap = impl->cap_src ? impl->cap_src * 2 : 32;
        cfg_srcent_t *s = realloc(impl->src, cap * sizeof *s);
        if (!s) return false;
        impl->src = s;
        impl->cap_src = cap;
    }
    const char *copy = cfg_strdup(&impl->arena, path);
    if (!copy) return false;
    impl->src[impl->n_src++] = (cfg_srcent_t){copy, {origin, line, col, note}};
    return true;
}

const dsc_config_source_t *cfg_find_source(const cfg_impl_t *impl, const char *path) {
    for (size_t i = 0; i < impl->n_src; i++)
        if (strcmp(impl->src[i].path, path) == 0) return &impl->src[i].src;
    return NULL;
}

dsc_config_source_t cfg_source_of(const cfg_impl_t *impl, const char *path) {
    const dsc_config_source_t *s = cfg_find_source(impl, path);
    if (s) return *s;
    return (dsc_config_source_t){DSC_CONFIG_DEFAULT, 0, 0, NULL};
}

bool cfg_add_warning(cfg_impl_t *impl, const char *msg) {
    if (impl->pub.n_warnings == impl->cap_warn) {
        size_t cap = impl->cap_warn ? impl->cap_warn * 2 : 8;
        const char **w = realloc(impl->warn, cap * sizeof *w);
        if (!w) return false;
        impl->warn = w;
        impl->cap_warn = cap;
    }
    const char *copy = cfg_strdup(&impl->arena, msg);
    if (!copy) return false;
    impl->warn[impl->pub.n_warnings++] = copy;
    impl->pub.warnings = impl->warn;
    return true;
}
