/* Optimizer configuration: DeepSpeed's name resolution, the class each config selects, the
 * class defaults, the `params` keys each class's constructor takes, validation with torch's
 * messages, and the ZeRO compatibility rule (spec §1.4, §4.1). No state: pure functions. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "optim/optim_internal.h"

#define SUPPORTED_LIST                                                                        \
    "Adam, AdamW, Lamb, Lion, Adagrad (any case), SGD, RMSprop, Adamax (torch.optim names, exact case)"

static dsc_status_t fail(char *err, size_t errsz, dsc_status_t st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static dsc_status_t fail(char *err, size_t errsz, dsc_status_t st, const char *fmt, ...) {
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return st;
}

static void clear_err(char *err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
}

const char *dsc_optim_type_name(dsc_optim_type_t type) {
    switch (type) {
    case DSC_OPTIM_ADAM: return "adam";
    case DSC_OPTIM_ADAMW: return "adamw";
    case DSC_OPTIM_LAMB: return "lamb";
    case DSC_OPTIM_LION: return "lion";
    case DSC_OPTIM_ADAGRAD: return "adagrad";
    case DSC_OPTIM_SGD: return "SGD";
    case DSC_OPTIM_RMSPROP: return "RMSprop";
    case DSC_OPTIM_ADAMAX: return "Adamax";
    default: return "?";
    }
}

static bool is_adam(dsc_optim_type_t t) { return t == DSC_OPTIM_ADAM || t == DSC_OPTIM_ADAMW; }

/* The classes a type may have. */
static bool impl_valid(dsc_optim_type_t type, dsc_optim_impl_t impl) {
    switch (type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
        return impl == DSC_OPTIM_IMPL_FUSED || impl == DSC_OPTIM_IMPL_DS_CPU || impl == DSC_OPTIM_IMPL_TORCH;
    case DSC_OPTIM_LAMB: return impl == DSC_OPTIM_IMPL_FUSED;
    case DSC_OPTIM_LION: return impl == DSC_OPTIM_IMPL_FUSED || impl == DSC_OPTIM_IMPL_DS_CPU;
    case DSC_OPTIM_ADAGRAD: return impl == DSC_OPTIM_IMPL_TORCH || impl == DSC_OPTIM_IMPL_DS_CPU;
    case DSC_OPTIM_SGD:
    case DSC_OPTIM_RMSPROP:
    case DSC_OPTIM_ADAMAX: return impl == DSC_OPTIM_IMPL_TORCH;
    default: return false;
    }
}

static dsc_optim_impl_t default_impl(dsc_optim_type_t type) {
    switch (type) {
    case DSC_OPTIM_ADAGRAD:
    case DSC_OPTIM_SGD:
    case DSC_OPTIM_RMSPROP:
    case DSC_OPTIM_ADAMAX: return DSC_OPTIM_IMPL_TORCH;
    default: return DSC_OPTIM_IMPL_FUSED;
    }
}

dsc_optim_params_t dsc_optim_default_params_impl(dsc_optim_type_t type, dsc_optim_impl_t impl) {
    dsc_optim_params_t p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.impl = impl;
    p.lr = 1e-3;
    p.beta1 = 0.9;
    p.beta2 = 0.999;
    p.eps = 1e-8;
    p.weight_decay = 0.0;
    p.bias_correction = true;
    p.adam_w_mode = true;
    p.max_coeff = 10.0;
    p.min_coeff = 0.01;
    p.alpha = 0.99;
    switch (type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
        /* torch_adam with effective_w_mode -> torch.optim.AdamW, whose default wd is 0.01. */
        if (impl == DSC_OPTIM_IMPL_TORCH) p.weight_decay = 1e-2;
        break;
    case DSC_OPTIM_ADAGRAD:
        p.lr = 1e-2;
        p.eps = 1e-10;
        break;
    case DSC_OPTIM_RMSPROP:
        p.lr = 1e-2;
        break;
    case DSC_OPTIM_ADAMAX:
        p.lr = 2e-3;
        break;
    default: break;
    }
    return p;
}

dsc_optim_params_t dsc_optim_default_params(dsc_optim_type_t type) {
    if ((unsigned)type >= DSC_OPTIM_TYPE_COUNT) {
        dsc_optim_params_t p = dsc_optim_default_params_impl(DSC_OPTIM_ADAM, DSC_OPTIM_IMPL_FUSED);
        p.type = type;
        return p;
    }
    return dsc_optim_default_params_impl(type, default_impl(type));
}

const char *dsc_optim_class_name(const dsc_optim_params_t *p) {
    if (!p || !impl_valid(p->type, p->impl)) return "?";
    switch (p->type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
        if (p->impl == DSC_OPTIM_IMPL_FUSED) return "FusedAdam";
        if (p->impl == DSC_OPTIM_IMPL_DS_CPU) return "DeepSpeedCPUAdam";
        return (p->type == DSC_OPTIM_ADAMW || p->adam_w_mode) ? "torch.optim.AdamW" : "torch.optim.Adam";
    case DSC_OPTIM_LAMB: return "FusedLamb";
    case DSC_OPTIM_LION: return p->impl == DSC_OPTIM_IMPL_FUSED ? "FusedLion" : "DeepSpeedCPULion";
    case DSC_OPTIM_ADAGRAD: return p->impl == DSC_OPTIM_IMPL_TORCH ? "torch.optim.Adagrad" : "DeepSpeedCPUAdagrad";
    case DSC_OPTIM_SGD: return "torch.optim.SGD";
    case DSC_OPTIM_RMSPROP: return "torch.optim.RMSprop";
    case DSC_OPTIM_ADAMAX: return "torch.optim.Adamax";
    default: return "?";
    }
}

/* ---- name resolution ----------------------------------------------------------------- */

/* DeepSpeed's own (case-insensitive) names, and what dsc makes of them. */
static const struct {
    const char *name;
    int type; /* -1: accepted by DeepSpeed, not implemented by dsc */
    const char *ds_class;
} ds_names[] = {
    {"adagrad", DSC_OPTIM_ADAGRAD, NULL},        {"adam", DSC_OPTIM_ADAM, NULL},
    {"adamw", DSC_OPTIM_ADAMW, NULL},            {"lamb", DSC_OPTIM_LAMB, NULL},
    {"onebitadam", -1, "OnebitAdam"},            {"zerooneadam", -1, "ZeroOneAdam"},
    {"onebitlamb", -1, "OnebitLamb"},            {"muadam", -1, "MuAdam (mup)"},
    {"muadamw", -1, "MuAdamW (mup)"},            {"musgd", -1, "MuSGD (mup)"},
    {"lion", DSC_OPTIM_LION, NULL},              {"muon", -1, "MuonWithAuxAdam"},
};

/* torch.optim classes (exact case). */
static const struct {
    const char *name;
    int type;
} torch_names[] = {
    {"SGD", DSC_OPTIM_SGD},   {"RMSprop", DSC_OPTIM_RMSPROP}, {"Adamax", DSC_OPTIM_ADAMAX}, {"NAdam", -1},
    {"RAdam", -1},            {"Adadelta", -1},               {"ASGD", -1},                 {"Rprop", -1},
    {"LBFGS", -1},            {"SparseAdam", -1},
};

dsc_status_t dsc_optim_type_from_name(const char *name, dsc_optim_type_t *out, char *err, size_t errsz) {
    clear_err(err, errsz);
    if (!name || !out) return fail(err, errsz, DSC_ERR_INVALID, "optimizer type: NULL %s", name ? "out" : "name");
    char lower[64];
    size_t len = strlen(name);
    if (len < sizeof lower) {
        for (size_t i = 0; i <= len; i++) lower[i] = (char)tolower((unsigned char)name[i]);
        for (size_t i = 0; i < sizeof ds_names / sizeof ds_names[0]; i++) {
            if (strcmp(lower, ds_names[i].name) != 0) continue;
            if (ds_names[i].type < 0)
                return fail(err, errsz, DSC_ERR_UNSUPPORTED,
                            "optimizer type '%s' (DeepSpeed's %s) is not supported by dsc; supported: " SUPPORTED_LIST,
                            name, ds_names[i].ds_class);
            *out = (dsc_optim_type_t)ds_names[i].type;
            return DSC_OK;
        }
    }
    for (size_t i = 0; i < sizeof torch_names / sizeof torch_names[0]; i++) {
        if (strcmp(name, torch_names[i].name) != 0) continue;
        if (torch_names[i].type < 0)
            return fail(err, errsz, DSC_ERR_UNSUPPORTED,
                        "optimizer type '%s' (torch.optim.%s) is accepted by DeepSpeed but not supported by dsc; "
                        "supported: " SUPPORTED_LIST,
                        name, name);
        *out = (dsc_optim_type_t)torch_names[i].type;
        return DSC_OK;
    }
    for (size_t i = 0; i < sizeof torch_names / sizeof torch_names[0]; i++) {
        if (strcasecmp(name, torch_names[i].name) == 0)
            return fail(err, errsz, DSC_ERR_CONFIG,
                        "%s is not a supported DeepSpeed Optimizer (torch.optim names are case-sensitive: did you "
                        "mean '%s'?); supported: " SUPPORTED_LIST,
                        name, torch_names[i].name);
    }
    return fail(err, errsz, DSC_ERR_CONFIG, "%s is not a supported DeepSpeed Optimizer; supported: " SUPPORTED_LIST,
                name);
}

/* ---- validation ---------------------------------------------------------------------- */

int dsc_optim_params_num_states(const dsc_optim_params_t *p) {
    if (!p || !impl_valid(p->type, p->impl)) return -1;
    switch (p->type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
    case DSC_OPTIM_LAMB:
    case DSC_OPTIM_ADAMAX: return 2;
    case DSC_OPTIM_LION:
    case DSC_OPTIM_ADAGRAD: return 1;
    case DSC_OPTIM_SGD: return p->momentum != 0.0 ? 1 : 0;
    case DSC_OPTIM_RMSPROP: return 1 + (p->momentum > 0.0) + (p->centered ? 1 : 0);
    default: return -1;
    }
}

#define CHECK_FINITE(field)                                                                   \
    do {                                                                                      \
        if (!isfinite(p->field))                                                              \
            return fail(err, errsz, DSC_ERR_INVALID, "%s: %s must be finite, got %g", cls, #field, p->field); \
    } while (0)

dsc_status_t dsc_optim_validate_params(const dsc_optim_params_t *p, char *err, size_t errsz) {
    clear_err(err, errsz);
    if (!p) return fail(err, errsz, DSC_ERR_INVALID, "optimizer params: NULL");
    if ((unsigned)p->type >= DSC_OPTIM_TYPE_COUNT)
        return fail(err, errsz, DSC_ERR_INVALID, "optimizer params: invalid type %d", (int)p->type);
    if (!impl_valid(p->type, p->impl))
        return fail(err, errsz, DSC_ERR_INVALID, "optimizer params: type %s has no implementation class %d",
                    dsc_optim_type_name(p->type), (int)p->impl);
    const char *cls = dsc_optim_class_name(p);
    const dsc_optim_type_t t = p->type;
    const bool torch = p->impl == DSC_OPTIM_IMPL_TORCH;
    CHECK_FINITE(lr);
    CHECK_FINITE(weight_decay);
    if (is_adam(t) || t == DSC_OPTIM_LAMB || t == DSC_OPTIM_LION || t == DSC_OPTIM_ADAMAX) {
        CHECK_FINITE(beta1);
        CHECK_FINITE(beta2);
    }
    if (t != DSC_OPTIM_LION && t != DSC_OPTIM_SGD) CHECK_FINITE(eps);
    if (t == DSC_OPTIM_LAMB) {
        CHECK_FINITE(max_coeff);
        CHECK_FINITE(min_coeff);
        if (p->amsgrad) return fail(err, errsz, DSC_ERR_CONFIG, "FusedLamb does not support the AMSGrad variant.");
    }
    if (t == DSC_OPTIM_SGD || t == DSC_OPTIM_RMSPROP) CHECK_FINITE(momentum);
    if (t == DSC_OPTIM_SGD) CHECK_FINITE(dampening);
    if (t == DSC_OPTIM_RMSPROP) CHECK_FINITE(alpha);
    if (t == DSC_OPTIM_ADAGRAD) {
        CHECK_FINITE(lr_decay);
        CHECK_FINITE(initial_accumulator_value);
    }
    if (is_adam(t) && p->amsgrad) {
        if (p->impl == DSC_OPTIM_IMPL_FUSED)
            return fail(err, errsz, DSC_ERR_CONFIG, "FusedAdam does not support the AMSGrad variant.");
        if (torch)
            return fail(err, errsz, DSC_ERR_UNSUPPORTED, "%s: amsgrad=True is not implemented by dsc", cls);
        /* DeepSpeedCPUAdam accepts and ignores it. */
    }
    /* The DeepSpeed classes do not range-check; lr must still be usable. */
    if (p->lr < 0.0) return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid learning rate: %g", cls, p->lr);
    if (!torch) return DSC_OK;
    /* torch.optim's constructor checks, with its messages. */
    if (p->eps < 0.0 && t != DSC_OPTIM_SGD)
        return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid epsilon value: %g", cls, p->eps);
    if (is_adam(t) || t == DSC_OPTIM_ADAMAX) {
        if (!(p->beta1 >= 0.0 && p->beta1 < 1.0))
            return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid beta parameter at index 0: %g", cls, p->beta1);
        if (!(p->beta2 >= 0.0 && p->beta2 < 1.0))
            return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid beta parameter at index 1: %g", cls, p->beta2);
    }
    if (p->weight_decay < 0.0)
        return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid weight_decay value: %g", cls, p->weight_decay);
    if (t == DSC_OPTIM_ADAGRAD) {
        if (p->lr_decay < 0.0)
            return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid lr_decay value: %g", cls, p->lr_decay);
        if (p->initial_accumulator_value < 0.0)
            return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid initial_accumulator_value value: %g", cls,
                        p->initial_accumulator_value);
    }
    if ((t == DSC_OPTIM_SGD || t == DSC_OPTIM_RMSPROP) && p->momentum < 0.0)
        return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid momentum value: %g", cls, p->momentum);
    if (t == DSC_OPTIM_SGD && p->nesterov && (p->momentum <= 0.0 || p->dampening != 0.0))
        return fail(err, errsz, DSC_ERR_INVALID, "%s: Nesterov momentum requires a momentum and zero dampening", cls);
    if (t == DSC_OPTIM_RMSPROP && p->alpha < 0.0)
        return fail(err, errsz, DSC_ERR_INVALID, "%s: Invalid alpha value: %g", cls, p->alpha);
    return DSC_OK;
}

/* ---- config keys --------------------------------------------------------------------- */

enum key_kind { K_NUM, K_BOOL, K_PAIR, K_NOOP_BOOL };

/* Constructor keyword arguments, with a bit per class that takes them. */
enum {
    C_FADAM = 1 << 0,   /* FusedAdam */
    C_CADAM = 1 << 1,   /* DeepSpeedCPUAdam */
    C_TADAM = 1 << 2,   /* torch.optim.Adam / AdamW */
    C_LAMB = 1 << 3,    /* FusedLamb */
    C_FLION = 1 << 4,   /* FusedLion */
    C_CLION = 1 << 5,   /* DeepSpeedCPULion */
    C_TADAGRAD = 1 << 6,
    C_CADAGRAD = 1 << 7,
    C_SGD = 1 << 8,
    C_RMSPROP = 1 << 9,
    C_ADAMAX = 1 << 10,
};
#define C_TORCH (C_TADAM | C_TADAGRAD | C_SGD | C_RMSPROP | C_ADAMAX)

static const struct {
    const char *key;
    enum key_kind kind;
    unsigned classes;
    size_t off; /* offsetof the field (K_PAIR: beta1, beta2 consecutive) */
} keys[] = {
    {"lr", K_NUM, ~0u, offsetof(dsc_optim_params_t, lr)},
    {"betas", K_PAIR, C_FADAM | C_CADAM | C_TADAM | C_LAMB | C_FLION | C_CLION | C_ADAMAX,
     offsetof(dsc_optim_params_t, beta1)},
    {"eps", K_NUM, ~0u & ~(unsigned)(C_FLION | C_CLION | C_SGD), offsetof(dsc_optim_params_t, eps)},
    {"weight_decay", K_NUM, ~0u, offsetof(dsc_optim_params_t, weight_decay)},
    {"bias_correction", K_BOOL, C_FADAM | C_CADAM | C_LAMB, offsetof(dsc_optim_params_t, bias_correction)},
    {"amsgrad", K_BOOL, C_FADAM | C_CADAM | C_TADAM | C_LAMB | C_CADAGRAD, offsetof(dsc_optim_params_t, amsgrad)},
    {"eps_inside_sqrt", K_BOOL, C_LAMB, offsetof(dsc_optim_params_t, eps_inside_sqrt)},
    {"max_coeff", K_NUM, C_LAMB, offsetof(dsc_optim_params_t, max_coeff)},
    {"min_coeff", K_NUM, C_LAMB, offsetof(dsc_optim_params_t, min_coeff)},
    {"momentum", K_NUM, C_SGD | C_RMSPROP, offsetof(dsc_optim_params_t, momentum)},
    {"dampening", K_NUM, C_SGD, offsetof(dsc_optim_params_t, dampening)},
    {"nesterov", K_BOOL, C_SGD, offsetof(dsc_optim_params_t, nesterov)},
    {"alpha", K_NUM, C_RMSPROP, offsetof(dsc_optim_params_t, alpha)},
    {"centered", K_BOOL, C_RMSPROP, offsetof(dsc_optim_params_t, centered)},
    {"lr_decay", K_NUM, C_TADAGRAD, offsetof(dsc_optim_params_t, lr_decay)},
    {"initial_accumulator_value", K_NUM, C_TADAGRAD, offsetof(dsc_optim_params_t, initial_accumulator_value)},
    {"maximize", K_BOOL, C_TORCH, offsetof(dsc_optim_params_t, maximize)},
    /* Accepted and without effect here. */
    {"set_grad_none", K_NOOP_BOOL, C_FADAM | C_LAMB | C_FLION, 0},
    {"fp32_optimizer_states", K_NOOP_BOOL, C_CADAM | C_CLION | C_CADAGRAD, 0},
    {"foreach", K_NOOP_BOOL, C_TORCH, 0},
    {"differentiable", K_NOOP_BOOL, C_TORCH, 0},
    {"capturable", K_NOOP_BOOL, C_TADAM, 0},
    {"fused", K_NOOP_BOOL, C_TADAM, 0},
};

static unsigned class_bit(const dsc_optim_params_t *p) {
    switch (p->type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
        return p->impl == DSC_OPTIM_IMPL_FUSED ? C_FADAM : p->impl == DSC_OPTIM_IMPL_DS_CPU ? C_CADAM : C_TADAM;
    case DSC_OPTIM_LAMB: return C_LAMB;
    case DSC_OPTIM_LION: return p->impl == DSC_OPTIM_IMPL_FUSED ? C_FLION : C_CLION;
    case DSC_OPTIM_ADAGRAD: return p->impl == DSC_OPTIM_IMPL_TORCH ? C_TADAGRAD : C_CADAGRAD;
    case DSC_OPTIM_SGD: return C_SGD;
    case DSC_OPTIM_RMSPROP: return C_RMSPROP;
    case DSC_OPTIM_ADAMAX: return C_ADAMAX;
    default: return 0;
    }
}

/* The Python class name as it appears in a TypeError. */
static const char *py_class(const dsc_optim_params_t *p) {
    const char *c = dsc_optim_class_name(p);
    return strncmp(c, "torch.optim.", 12) == 0 ? c + 12 : c;
}

static const dsc_optim_kv_t *find_kv(const dsc_optim_kv_t *kv, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (kv[i].key && strcmp(kv[i].key, key) == 0) return &kv[i];
    return NULL;
}

static dsc_status_t kv_bool(const dsc_optim_kv_t *e, bool *out, char *err, size_t errsz) {
    if (e->n_values != 1 || !e->values || !isfinite(e->values[0]))
        return fail(err, errsz, DSC_ERR_CONFIG, "optimizer.params.%s must be a boolean", e->key);
    *out = e->values[0] != 0.0;
    return DSC_OK;
}

dsc_status_t dsc_optim_params_from_config(const char *type_name, const dsc_optim_kv_t *kv, size_t n_kv, bool offload,
                                          dsc_optim_params_t *out, char *err, size_t errsz) {
    clear_err(err, errsz);
    if (!out || (n_kv && !kv)) return fail(err, errsz, DSC_ERR_INVALID, "dsc_optim_params_from_config: NULL argument");
    dsc_optim_type_t type;
    dsc_status_t st = dsc_optim_type_from_name(type_name, &type, err, errsz);
    if (st != DSC_OK) return st;
    for (size_t i = 0; i < n_kv; i++) {
        if (!kv[i].key) return fail(err, errsz, DSC_ERR_INVALID, "optimizer.params: NULL key");
        if (strcmp(kv[i].key, "max_grad_norm") == 0)
            return fail(err, errsz, DSC_ERR_CONFIG,
                        "'max_grad_norm' is not supported as an optimizer parameter, please switch to using the "
                        "deepspeed parameter 'gradient_clipping'");
    }
    /* Adam/AdamW: torch_adam and adam_w_mode are popped by the engine. */
    bool torch_adam = false, w_mode = true;
    if (is_adam(type)) {
        const dsc_optim_kv_t *e = find_kv(kv, n_kv, "torch_adam");
        if (e && (st = kv_bool(e, &torch_adam, err, errsz)) != DSC_OK) return st;
        e = find_kv(kv, n_kv, "adam_w_mode");
        if (e && (st = kv_bool(e, &w_mode, err, errsz)) != DSC_OK) return st;
        w_mode = type == DSC_OPTIM_ADAMW || w_mode;
    }
    dsc_optim_impl_t impl = default_impl(type);
    if (is_adam(type)) impl = torch_adam ? DSC_OPTIM_IMPL_TORCH : offload ? DSC_OPTIM_IMPL_DS_CPU : DSC_OPTIM_IMPL_FUSED;
    if ((type == DSC_OPTIM_ADAGRAD || type == DSC_OPTIM_LION) && offload) impl = DSC_OPTIM_IMPL_DS_CPU;
    dsc_optim_params_t p = dsc_optim_default_params_impl(type, impl);
    p.adam_w_mode = w_mode;
    if (is_adam(type) && impl == DSC_OPTIM_IMPL_TORCH) p.weight_decay = w_mode ? 1e-2 : 0.0;
    const unsigned cbit = class_bit(&p);
    for (size_t i = 0; i < n_kv; i++) {
        const dsc_optim_kv_t *e = &kv[i];
        if (is_adam(type) && (strcmp(e->key, "torch_adam") == 0 || strcmp(e->key, "adam_w_mode") == 0)) continue;
        size_t k = 0;
        const size_t nkeys = sizeof keys / sizeof keys[0];
        while (k < nkeys && strcmp(keys[k].key, e->key) != 0) k++;
        if (k == nkeys || !(keys[k].classes & cbit))
            return fail(err, errsz, DSC_ERR_CONFIG, "%s.__init__() got an unexpected keyword argument '%s'", py_class(&p),
                        e->key);
        char *field = (char *)&p + keys[k].off;
        switch (keys[k].kind) {
        case K_NUM:
            if (e->n_values != 1 || !e->values)
                return fail(err, errsz, DSC_ERR_CONFIG, "optimizer.params.%s must be a number", e->key);
            memcpy(field, &e->values[0], sizeof(double));
            break;
        case K_PAIR:
            if (e->n_values != 2 || !e->values)
                return fail(err, errsz, DSC_ERR_CONFIG, "optimizer.params.%s must be a list of 2 numbers", e->key);
            memcpy(field, &e->values[0], sizeof(double));
            memcpy(field + sizeof(double), &e->values[1], sizeof(double));
            break;
        case K_BOOL:
        case K_NOOP_BOOL: {
            bool b = false;
            if ((st = kv_bool(e, &b, err, errsz)) != DSC_OK) return st;
            if (keys[k].kind == K_BOOL) memcpy(field, &b, sizeof b);
            break;
        }
        }
    }
    if ((st = dsc_optim_validate_params(&p, err, errsz)) != DSC_OK) return st;
    *out = p;
    return DSC_OK;
}

/* ---- ZeRO ---------------------------------------------------------------------------- */

bool dsc_optim_zero_compatible(const dsc_optim_params_t *p) {
    if (!p || !impl_valid(p->type, p->impl)) return false;
    switch (p->type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
    case DSC_OPTIM_ADAGRAD:
    case DSC_OPTIM_LION: return true;
    default: return false;
    }
}

dsc_status_t dsc_optim_check_zero(const dsc_optim_params_t *p, int zero_stage, bool allow_untested, char *err,
                                  size_t errsz) {
    clear_err(err, errsz);
    if (!p) return fail(err, errsz, DSC_ERR_INVALID, "dsc_optim_check_zero: NULL params");
    if (zero_stage <= 0 || dsc_optim_zero_compatible(p)) return DSC_OK;
    if (allow_untested) {
        fail(err, errsz, DSC_OK, "**** You are using ZeRO with an untested optimizer (%s), proceed with caution *****",
             dsc_optim_class_name(p));
        return DSC_OK;
    }
    return fail(err, errsz, DSC_ERR_CONFIG,
                "You are using an untested ZeRO Optimizer. Please add <\"zero_allow_untested_optimizer\": true> in "
                "the configuration file to use it. (optimizer class: %s)",
                dsc_optim_class_name(p));
}
