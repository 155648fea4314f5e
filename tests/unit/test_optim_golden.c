/* Golden tests of the optimizers: every tests/golden/optim/<case>.optg file (written by
 * tools/gen_optim_golden.py, whose docstring documents the format) is replayed for 200 steps
 * and p plus every state buffer are compared after each snapshot step with
 *     |got - want| <= tolerance * max(|got|, |want|, floor_frac * max|want|)
 * (tolerance 1e-6 against torch.optim, 2e-5 against the float64 spec formulas; the file says
 * which reference it holds). Each case runs on every ISA path this CPU has, which must also
 * agree bitwise with one another. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/optim.h"
#include "optim/optim_internal.h"

#define GOLDEN_DIR "tests/golden/optim"
#define MAX_SNAP 16
#define MAX_SEG 64
#define MAX_STATES 3

typedef struct gcase {
    char name[128], optimizer[32], impl[16], reference[128], schedule[16];
    size_t n;
    int steps, seed, grad_exp;
    double grad_scale, tolerance, floor_frac;
    dsc_optim_params_t params;
    size_t n_seg;
    dsc_optim_segment_t seg[MAX_SEG];
    int n_snap, snap[MAX_SNAP];
    int n_states;
    char states[MAX_STATES][32];
    float *p0;    /* n */
    float *want;  /* n_snap x (1 + n_states) x n */
} gcase_t;

/* ---- the generator's gradient hash (see tools/gen_optim_golden.py) ---- */

static uint64_t mix64(uint64_t z) {
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ull;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z;
}

static uint64_t hash3(uint64_t seed, uint64_t t, uint64_t i) {
    return mix64(seed * 0x9E3779B97F4A7C15ull + t * 0xD1B54A32D192ED03ull + 0x9E3779B97F4A7C15ull +
                 i * 0xABC98388FB8FAC03ull);
}

static void gen_grad(const gcase_t *c, int t, float *g) {
    for (size_t i = 0; i < c->n; i++) {
        uint64_t h = hash3((uint64_t)c->seed, (uint64_t)t, i);
        int64_t u = (int64_t)(h >> 40);
        double v = (double)(u - (1 << 23)) * 0x1p-23 * ldexp(1.0, -(int)(i % 4)) * ldexp(1.0, c->grad_exp);
        g[i] = (h & 63) == 0 ? 0.0f : (float)v;
    }
}

static double lr_at(const gcase_t *c, int t) {
    if (strcmp(c->schedule, "saw10") == 0) return c->params.lr * (1.0 - 0.5 * ((t - 1) % 10) / 10.0);
    return c->params.lr;
}

/* ---- parsing ---- */

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int set_field(gcase_t *c, const char *k, const char *v) {
    dsc_optim_params_t *p = &c->params;
    const double d = strtod(v, NULL);
    const int b = atoi(v) != 0;
#define NUM(key, dst)                                                                         \
    if (strcmp(k, key) == 0) {                                                                \
        dst = d;                                                                              \
        return 1;                                                                             \
    }
#define BOOL(key, dst)                                                                        \
    if (strcmp(k, key) == 0) {                                                                \
        dst = b;                                                                              \
        return 1;                                                                             \
    }
#define STR(key, dst)                                                                         \
    if (strcmp(k, key) == 0) {                                                                \
        snprintf(dst, sizeof dst, "%s", v);                                                   \
        return 1;                                                                             \
    }
    STR("case", c->name);
    STR("optimizer", c->optimizer);
    STR("impl", c->impl);
    STR("reference", c->reference);
    STR("lr_schedule", c->schedule);
    if (strcmp(k, "n") == 0) return c->n = (size_t)atol(v), 1;
    if (strcmp(k, "steps") == 0) return c->steps = atoi(v), 1;
    if (strcmp(k, "seed") == 0) return c->seed = atoi(v), 1;
    if (strcmp(k, "grad_exp") == 0) return c->grad_exp = atoi(v), 1;
    NUM("grad_scale", c->grad_scale);
    NUM("tolerance", c->tolerance);
    NUM("floor_frac", c->floor_frac);
    NUM("lr", p->lr);
    NUM("beta1", p->beta1);
    NUM("beta2", p->beta2);
    NUM("eps", p->eps);
    NUM("weight_decay", p->weight_decay);
    BOOL("bias_correction", p->bias_correction);
    BOOL("adam_w_mode", p->adam_w_mode);
    BOOL("eps_inside_sqrt", p->eps_inside_sqrt);
    NUM("max_coeff", p->max_coeff);
    NUM("min_coeff", p->min_coeff);
    NUM("momentum", p->momentum);
    NUM("dampening", p->dampening);
    BOOL("nesterov", p->nesterov);
    NUM("alpha", p->alpha);
    BOOL("centered", p->centered);
    NUM("lr_decay", p->lr_decay);
    NUM("initial_accumulator_value", p->initial_accumulator_value);
    BOOL("maximize", p->maximize);
#undef NUM
#undef BOOL
#undef STR
    if (strcmp(k, "segments") == 0) {
        int sizes[MAX_SEG];
        int ns = parse_list(v, sizes, MAX_SEG);
        size_t off = 0;
        for (int i = 0; i < ns; i++) {
            c->seg[i] = (dsc_optim_segment_t){off, (size_t)sizes[i]};
            off += (size_t)sizes[i];
        }
        c->n_seg = (size_t)ns;
        return 1;
    }
    if (strcmp(k, "snapshots") == 0) return c->n_snap = parse_list(v, c->snap, MAX_SNAP), 1;
    if (strcmp(k, "states") == 0) {
        c->n_states = 0;
        const char *s = v;
        while (*s && c->n_states < MAX_STATES) {
            size_t len = strcspn(s, ",");
            snprintf(c->states[c->n_states++], sizeof c->states[0], "%.*s", (int)len, s);
            s += len + (s[len] == ',');
        }
        return 1;
    }
    return 0;
}

/* Loads one .optg file; returns 0 on a malformed file (after a failed CHECK). */
static int load_case(const char *path, gcase_t *c) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    int ok = buf && got == (size_t)len && len >= 12 && memcmp(buf, "DSCOPTG1", 8) == 0;
    uint32_t hlen = 0;
    if (ok) {
        memcpy(&hlen, buf + 8, 4);
        ok = (size_t)hlen <= (size_t)len - 12;
    }
    CHECK_MSG(ok, "%s: bad magic or header", path);
    if (!ok) {
        free(buf);
        return 0;
    }
    char *hdr = malloc(hlen + 1);
    memcpy(hdr, buf + 12, hlen);
    hdr[hlen] = '\0';
    /* Start from the class's defaults; every field is then set from the header. */
    c->params = dsc_optim_default_params(DSC_OPTIM_ADAM);
    char *save = NULL;
    for (char *line = strtok_r(hdr, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = '\0';
        CHECK_MSG(set_field(c, line, eq + 1), "%s: unknown header key %s", path, line);
    }
    free(hdr);
    dsc_optim_type_t type;
    char err[256];
    CHECK_OK(dsc_optim_type_from_name(c->optimizer, &type, err, sizeof err));
    c->params.type = type;
    c->params.impl = strcmp(c->impl, "torch") == 0    ? DSC_OPTIM_IMPL_TORCH
                     : strcmp(c->impl, "ds_cpu") == 0 ? DSC_OPTIM_IMPL_DS_CPU
                                                      : DSC_OPTIM_IMPL_FUSED;
    const size_t per = (size_t)(1 + c->n_states) * c->n;
    const size_t need = 12 + hlen + (c->n + (size_t)c->n_snap * per) * sizeof(float);
    ok = c->n > 0 && c->steps > 0 && c->n_snap > 0 && c->tolerance > 0 && (size_t)len == need;
    CHECK_MSG(ok, "%s: size %ld, expected %zu", path, len, need);
    if (ok) {
        c->p0 = malloc(c->n * sizeof(float));
        c->want = malloc((size_t)c->n_snap * per * sizeof(float));
        memcpy(c->p0, buf + 12 + hlen, c->n * sizeof(float));
        memcpy(c->want, buf + 12 + hlen + c->n * sizeof(float), (size_t)c->n_snap * per * sizeof(float));
    }
    free(buf);
    return ok;
}

/* The golden bound; returns the worst |err| / scale and fails the check when above tol. */
static double compare(const gcase_t *c, const char *what, int step, const float *got, const float *want) {
    double maxw = 0.0;
    for (size_t i = 0; i < c->n; i++) maxw = fmax(maxw, fabs((double)want[i]));
    const double floor = c->floor_frac * maxw;
    double worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < c->n; i++) {
        const double a = got[i], b = want[i];
        double scale = fmax(fmax(fabs(a), fabs(b)), floor);
        double e = scale > 0 ? fabs(a - b) / scale : fabs(a - b);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            wi = i;
        }
    }
    CHECK_MSG(worst <= c->tolerance, "%s: %s after step %d: worst %.3e at [%zu] got %.9g want %.9g (tol %.0e, %s)",
              c->name, what, step, worst, wi, got[wi], want[wi], c->tolerance, c->reference);
    return worst;
}

/* Runs a case on one ISA; returns the worst error; leaves the final p and states in *out. */
static double run_case(dsc_ctx_t *ctx, const gcase_t *c, dsc_optim_isa_t isa, float *final_out) {
    dsc_optim_t *opt = NULL;
    CHECK_OK(dsc_optim_new(ctx, &c->params, c->n, c->seg, c->n_seg, &opt));
    if (!opt) return INFINITY;
    CHECK_OK(dsc__optim_force_isa(opt, isa));
    CHECK_MSG(dsc_optim_num_states(opt) == c->n_states, "%s: %d states, file has %d", c->name,
              dsc_optim_num_states(opt), c->n_states);
    int idx[MAX_STATES];
    for (int s = 0; s < c->n_states; s++) {
        idx[s] = dsc_optim_state_index(opt, c->states[s]);
        CHECK_MSG(idx[s] >= 0, "%s: no state named %s", c->name, c->states[s]);
        if (idx[s] < 0) {
            dsc_optim_free(opt);
            return INFINITY;
        }
    }
    float *p = malloc(c->n * sizeof(float)), *g = malloc(c->n * sizeof(float));
    memcpy(p, c->p0, c->n * sizeof(float));
    double worst = 0.0;
    int snap = 0;
    const size_t per = (size_t)(1 + c->n_states) * c->n;
    for (int t = 1; t <= c->steps; t++) {
        gen_grad(c, t, g);
        CHECK_OK(dsc_optim_step(opt, p, g, (float)c->grad_scale, lr_at(c, t), NULL, DSC_F32));
        if (snap < c->n_snap && c->snap[snap] == t) {
            const float *w = c->want + (size_t)snap * per;
            worst = fmax(worst, compare(c, "p", t, p, w));
            for (int s = 0; s < c->n_states; s++)
                worst = fmax(worst, compare(c, c->states[s], t, dsc_optim_state_data(opt, idx[s]), w + (size_t)(s + 1) * c->n));
            snap++;
        }
    }
    CHECK_MSG(snap == c->n_snap, "%s: snapshot steps beyond %d", c->name, c->steps);
    memcpy(final_out, p, c->n * sizeof(float));
    for (int s = 0; s < c->n_states; s++)
        memcpy(final_out + (size_t)(s + 1) * c->n, dsc_optim_state_data(opt, idx[s]), c->n * sizeof(float));
    free(p);
    free(g);
    dsc_optim_free(opt);
    return worst;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    DIR *d = opendir(GOLDEN_DIR);
    CHECK_MSG(d != NULL, "cannot open %s (run from the source root)", GOLDEN_DIR);
    char *names[256];
    int n_files = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && n_files < 256) {
            size_t len = strlen(e->d_name);
            if (len > 5 && strcmp(e->d_name + len - 5, ".optg") == 0) names[n_files++] = strdup(e->d_name);
        }
        closedir(d);
    }
    qsort(names, (size_t)n_files, sizeof names[0], cmp_str);
    CHECK_MSG(n_files >= 26, "only %d golden files in %s", n_files, GOLDEN_DIR);
    int seen[DSC_OPTIM_TYPE_COUNT] = {0};
    for (int f = 0; f < n_files; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, names[f]);
        gcase_t c;
        if (!load_case(path, &c)) continue;
        seen[c.params.type]++;
        const size_t per = (size_t)(1 + c.n_states) * c.n;
        float *ref = malloc(per * sizeof(float)), *other = malloc(per * sizeof(float));
        double worst = run_case(ctx, &c, DSC_OPTIM_ISA_SCALAR, ref);
        char paths[64] = "scalar";
        for (int isa = DSC_OPTIM_ISA_AVX2; isa <= DSC_OPTIM_ISA_AVX512; isa++) {
            if (!dsc__optim_isa_supported((dsc_optim_isa_t)isa)) continue;
            worst = fmax(worst, run_case(ctx, &c, (dsc_optim_isa_t)isa, other));
            CHECK_MSG(memcmp(ref, other, per * sizeof(float)) == 0, "%s: %s differs from scalar", c.name,
                      dsc__optim_isa_name((dsc_optim_isa_t)isa));
            strcat(paths, isa == DSC_OPTIM_ISA_AVX2 ? ",avx2" : ",avx512");
        }
        printf("  %-36s %-20s worst %.2e (tol %.0e) vs %s [%s]\n", c.name, dsc_optim_class_name(&c.params), worst,
               c.tolerance, c.reference, paths);
        free(ref);
        free(other);
        free(c.p0);
        free(c.want);
    }
    for (int f = 0; f < n_files; f++) free(names[f]);
    for (int t = 0; t < DSC_OPTIM_TYPE_COUNT; t++)
        CHECK_MSG(seen[t] > 0, "no golden case for %s", dsc_optim_type_name((dsc_optim_type_t)t));
    dsc_ctx_free(ctx);
    return check_finish("test_optim_golden");
}
