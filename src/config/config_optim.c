/* The optimizer section (spec 1.4, 4). DeepSpeed passes "params" as keyword arguments to
 * the class it builds, so the accepted keys and the defaults depend on the type and, for
 * Adam, Adagrad and Lion, on whether the optimizer is offloaded to the CPU or built from
 * torch. The tables list each class's keyword arguments with the class's defaults; unknown
 * keys are errors (DeepSpeed fails with a constructor TypeError). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

#define TORCH_FLAGS CP_NBOOL("foreach"), CP_BOOL("maximize", 0), CP_BOOL("differentiable", 0)

/* ---- optimizers ------------------------------------------------------------------------------ */

static const cfg_prm_t adam_params[] = {
    CP_NUM("lr", 1e-3, PF_GE0), CP_PAIR("betas", 0.9, 0.999, PF_BETA), CP_NUM("eps", 1e-8, PF_GT0),
    CP_NUM("weight_decay", 0, PF_GE0), CP_BOOL("bias_correction", 1), CP_BOOL("amsgrad", 0), CP_BOOL("adam_w_mode", 1),
    CP_BOOL("torch_adam", 0), CP_BOOL("set_grad_none", 1), CP_BOOL("fp32_optimizer_states", 1), TORCH_FLAGS,
    CP_BOOL("capturable", 0), CP_NBOOL("fused"), CP_END};
static const cfg_prm_t adagrad_params[] = {
    CP_NUM("lr", 1e-2, PF_GE0), CP_NUM("lr_decay", 0, PF_GE0), CP_NUM("weight_decay", 0, PF_GE0),
    CP_NUM("initial_accumulator_value", 0, PF_GE0), CP_NUM("eps", 1e-10, PF_GT0), CP_BOOL("amsgrad", 0),
    CP_BOOL("fp32_optimizer_states", 1), TORCH_FLAGS, CP_NBOOL("fused"), CP_END};
static const cfg_prm_t lamb_params[] = {
    CP_NUM("lr", 1e-3, PF_GE0), CP_BOOL("bias_correction", 1), CP_PAIR("betas", 0.9, 0.999, PF_BETA),
    CP_NUM("eps", 1e-8, PF_GT0), CP_BOOL("eps_inside_sqrt", 0), CP_NUM("weight_decay", 0, PF_GE0),
    CP_NUM("max_coeff", 10.0, PF_GE0), CP_NUM("min_coeff", 0.01, PF_GE0), CP_BOOL("amsgrad", 0), CP_END};
static const cfg_prm_t lion_params[] = {CP_NUM("lr", 1e-3, PF_GE0), CP_PAIR("betas", 0.9, 0.999, PF_BETA),
                                    CP_NUM("weight_decay", 0, PF_GE0), CP_BOOL("set_grad_none", 1),
                                    CP_BOOL("fp32_optimizer_states", 1), CP_END};
#define ONEBIT_COMMON                                                                                           \
    CP_NUM("lr", 1e-3, PF_GE0), CP_BOOL("bias_correction", 1), CP_PAIR("betas", 0.9, 0.999, PF_BETA),              \
        CP_NUM("eps", 1e-8, PF_GT0), CP_BOOL("eps_inside_sqrt", 0), CP_NUM("weight_decay", 0, PF_GE0),             \
        CP_BOOL("amsgrad", 0), CP_BOOL("cuda_aware", 0), CP_STR("comm_backend_name", "nccl", NULL)
static const cfg_prm_t onebitadam_params[] = {ONEBIT_COMMON, CP_INT("freeze_step", 100000, PF_GE0), CP_END};
static const cfg_prm_t zerooneadam_params[] = {ONEBIT_COMMON,
                                           CP_INT("var_freeze_step", 100000, PF_GE0),
                                           CP_INT("var_update_scaler", 16, PF_GT0),
                                           CP_INT("local_step_scaler", 32678, PF_GT0),
                                           CP_INT("local_step_clipper", 16, PF_GT0),
                                           CP_END};
static const cfg_prm_t onebitlamb_params[] = {ONEBIT_COMMON,
                                          CP_INT("freeze_step", 100000, PF_GE0),
                                          CP_NUM("max_coeff", 10.0, PF_GE0),
                                          CP_NUM("min_coeff", 0.01, PF_GE0),
                                          CP_NUM("coeff_beta", 0.9, PF_UNIT),
                                          CP_NUM("factor_max", 4.0, PF_GT0),
                                          CP_NUM("factor_min", 0.5, PF_GT0),
                                          CP_NUM("factor_threshold", 0.1, PF_GE0),
                                          CP_END};
static const cfg_prm_t muadam_params[] = {CP_NUM("lr", 1e-3, PF_GE0),    CP_PAIR("betas", 0.9, 0.999, PF_BETA),
                                      CP_NUM("eps", 1e-8, PF_GT0),    CP_NUM("weight_decay", 0, PF_GE0),
                                      CP_BOOL("amsgrad", 0),          CP_BOOL("decoupled_wd", 0),
                                      TORCH_FLAGS,                   CP_BOOL("capturable", 0),
                                      CP_NBOOL("fused"),              CP_END};
static const cfg_prm_t muadamw_params[] = {CP_NUM("lr", 1e-3, PF_GE0),   CP_PAIR("betas", 0.9, 0.999, PF_BETA),
                                       CP_NUM("eps", 1e-8, PF_GT0),   CP_NUM("weight_decay", 1e-2, PF_GE0),
                                       CP_BOOL("amsgrad", 0),         CP_BOOL("decoupled_wd", 0),
                                       TORCH_FLAGS,                  CP_BOOL("capturable", 0),
                                       CP_NBOOL("fused"),             CP_END};
static const cfg_prm_t sgd_params[] = {CP_NUM("lr", 1e-3, PF_GE0), CP_NUM("momentum", 0, PF_GE0), CP_NUM("dampening", 0, 0),
                                   CP_NUM("weight_decay", 0, PF_GE0), CP_BOOL("nesterov", 0), TORCH_FLAGS,
                                   CP_NBOOL("fused"), CP_END};
static const cfg_prm_t musgd_params[] = {CP_NUM("lr", 1e-3, PF_GE0), CP_NUM("momentum", 0, PF_GE0), CP_NUM("dampening", 0, 0),
                                     CP_NUM("weight_decay", 0, PF_GE0), CP_BOOL("nesterov", 0), CP_BOOL("decoupled_wd", 0),
                                     TORCH_FLAGS, CP_END};
static const cfg_prm_t muon_params[] = {{"lr", PK_NUM, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                    CP_NUM("momentum", 0.95, PF_GE0),
                                    CP_NUM("weight_decay", 0, PF_GE0),
                                    {"muon_lr", PK_NUM, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                    {"adam_lr", PK_NUM, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                    CP_STR("ns_method", "gram", "standard|gram"),
                                    CP_PAIR("betas", 0.9, 0.95, PF_BETA),
                                    CP_NUM("eps", 1e-10, PF_GT0),
                                    CP_END};
static const cfg_prm_t adamax_params[] = {CP_NUM("lr", 2e-3, PF_GE0), CP_PAIR("betas", 0.9, 0.999, PF_BETA),
                                      CP_NUM("eps", 1e-8, PF_GT0), CP_NUM("weight_decay", 0, PF_GE0), TORCH_FLAGS,
                                      CP_BOOL("capturable", 0), CP_END};
static const cfg_prm_t nadam_params[] = {CP_NUM("lr", 2e-3, PF_GE0), CP_PAIR("betas", 0.9, 0.999, PF_BETA),
                                     CP_NUM("eps", 1e-8, PF_GT0), CP_NUM("weight_decay", 0, PF_GE0),
                                     CP_NUM("momentum_decay", 4e-3, PF_GE0), CP_BOOL("decoupled_weight_decay", 0),
                                     TORCH_FLAGS, CP_BOOL("capturable", 0), CP_END};
static const cfg_prm_t radam_params[] = {CP_NUM("lr", 1e-3, PF_GE0), CP_PAIR("betas", 0.9, 0.999, PF_BETA),
                                     CP_NUM("eps", 1e-8, PF_GT0), CP_NUM("weight_decay", 0, PF_GE0),
                                     CP_BOOL("decoupled_weight_decay", 0), TORCH_FLAGS, CP_BOOL("capturable", 0), CP_END};
static const cfg_prm_t rmsprop_params[] = {CP_NUM("lr", 1e-2, PF_GE0), CP_NUM("alpha", 0.99, PF_GE0),
                                       CP_NUM("eps", 1e-8, PF_GT0), CP_NUM("weight_decay", 0, PF_GE0),
                                       CP_NUM("momentum", 0, PF_GE0), CP_BOOL("centered", 0), TORCH_FLAGS,
                                       CP_BOOL("capturable", 0), CP_END};
static const cfg_prm_t rprop_params[] = {CP_NUM("lr", 1e-2, PF_GE0), CP_PAIR("etas", 0.5, 1.2, PF_GT0),
                                     CP_PAIR("step_sizes", 1e-6, 50, PF_GT0), TORCH_FLAGS, CP_BOOL("capturable", 0),
                                     CP_END};
static const cfg_prm_t adadelta_params[] = {CP_NUM("lr", 1.0, PF_GE0), CP_NUM("rho", 0.9, PF_UNIT), CP_NUM("eps", 1e-6, PF_GT0),
                                        CP_NUM("weight_decay", 0, PF_GE0), TORCH_FLAGS, CP_BOOL("capturable", 0), CP_END};
static const cfg_prm_t asgd_params[] = {CP_NUM("lr", 1e-2, PF_GE0), CP_NUM("lambd", 1e-4, PF_GE0), CP_NUM("alpha", 0.75, PF_GE0),
                                    CP_NUM("t0", 1e6, PF_GE0), CP_NUM("weight_decay", 0, PF_GE0), TORCH_FLAGS,
                                    CP_BOOL("capturable", 0), CP_END};
static const cfg_prm_t lbfgs_params[] = {CP_NUM("lr", 1, PF_GE0),
                                     CP_INT("max_iter", 20, PF_GT0),
                                     {"max_eval", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                     CP_NUM("tolerance_grad", 1e-7, PF_GE0),
                                     CP_NUM("tolerance_change", 1e-9, PF_GE0),
                                     CP_INT("history_size", 100, PF_GT0),
                                     {"line_search_fn", PK_STR, PF_NULL | PF_DEFNULL, {0, 0}, NULL, "strong_wolfe"},
                                     CP_END};
static const cfg_prm_t sparseadam_params[] = {CP_NUM("lr", 1e-3, PF_GE0), CP_PAIR("betas", 0.9, 0.999, PF_BETA),
                                          CP_NUM("eps", 1e-8, PF_GT0), CP_BOOL("maximize", 0), CP_END};
static const cfg_prm_t adafactor_params[] = {CP_NUM("lr", 1e-2, PF_GE0), CP_NUM("beta2_decay", -0.8, 0),
                                         CP_PAIR("eps", NAN, 1e-3, PF_NULL), CP_NUM("d", 1.0, PF_GT0),
                                         CP_NUM("weight_decay", 0, PF_GE0), CP_NBOOL("foreach"),
                                         CP_BOOL("maximize", 0), CP_END};

typedef struct optdesc {
    const char *name; /* DeepSpeed's lower-case name, or the exact torch.optim class name */
    dsc_config_optimizer_kind_t kind;
    const cfg_prm_t *params;
    bool zero_tested; /* in DeepSpeed's ZeRO-compatible list (spec 4.1) */
} optdesc_t;

static const optdesc_t optimizers[] = {
    {"adagrad", DSC_CONFIG_OPTIM_ADAGRAD, adagrad_params, true},
    {"adam", DSC_CONFIG_OPTIM_ADAM, adam_params, true},
    {"adamw", DSC_CONFIG_OPTIM_ADAMW, adam_params, true},
    {"lamb", DSC_CONFIG_OPTIM_LAMB, lamb_params, false},
    {"onebitadam", DSC_CONFIG_OPTIM_ONEBITADAM, onebitadam_params, false},
    {"zerooneadam", DSC_CONFIG_OPTIM_ZEROONEADAM, zerooneadam_params, false},
    {"onebitlamb", DSC_CONFIG_OPTIM_ONEBITLAMB, onebitlamb_params, false},
    {"muadam", DSC_CONFIG_OPTIM_MUADAM, muadam_params, true},
    {"muadamw", DSC_CONFIG_OPTIM_MUADAMW, muadamw_params, true},
    {"musgd", DSC_CONFIG_OPTIM_MUSGD, musgd_params, false},
    {"lion", DSC_CONFIG_OPTIM_LION, lion_params, true},
    {"muon", DSC_CONFIG_OPTIM_MUON, muon_params, true},
    /* torch.optim classes, exact case */
    {"SGD", DSC_CONFIG_OPTIM_TORCH, sgd_params, false},
    {"Adamax", DSC_CONFIG_OPTIM_TORCH, adamax_params, false},
    {"NAdam", DSC_CONFIG_OPTIM_TORCH, nadam_params, false},
    {"RAdam", DSC_CONFIG_OPTIM_TORCH, radam_params, false},
    {"RMSprop", DSC_CONFIG_OPTIM_TORCH, rmsprop_params, false},
    {"Rprop", DSC_CONFIG_OPTIM_TORCH, rprop_params, false},
    {"Adadelta", DSC_CONFIG_OPTIM_TORCH, adadelta_params, false},
    {"ASGD", DSC_CONFIG_OPTIM_TORCH, asgd_params, false},
    {"LBFGS", DSC_CONFIG_OPTIM_TORCH, lbfgs_params, false},
    {"SparseAdam", DSC_CONFIG_OPTIM_TORCH, sparseadam_params, false},
    {"Adafactor", DSC_CONFIG_OPTIM_TORCH, adafactor_params, false},
};
#define N_OPTIMIZERS (sizeof optimizers / sizeof optimizers[0])
#define N_DS_OPTIMIZERS 12 /* the first 12 match case-insensitively */

const cfg_prm_t *cfg_optimizer_table(const char *type) {
    for (size_t i = 0; type && i < N_OPTIMIZERS; i++)
        if (strcmp(optimizers[i].name, type) == 0) return optimizers[i].params;
    return NULL;
}

/* The walk only records the object: its defaults depend on zero_optimization, which may
 * come later in the file. */
int cfg_parse_optimizer(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos, const char *shown) {
    (void)key;
    if (!json_is_object(v)) return cfg_fail(p, pos, false, shown, "expected an object, got %s", dsc__json_kind(v));
    p->opt_json = v;
    p->opt_pos = pos;
    return 0;
}

static int reject_for_class(cfg_parser_t *p, const dsc_config_params_t *ps, const char *name, const char *cls,
                            const char *why) {
    const dsc_config_param_t *q = dsc_config_param_find(ps, name);
    if (!q || q->source.origin != DSC_CONFIG_FILE) return 0;
    char path[CFG_PATH_MAX];
    snprintf(path, sizeof path, "optimizer.params.%s", name);
    cfg_pos_t at = {.line = q->source.line, .col = q->source.col};
    return cfg_fail(p, &at, false, path, "%s does not take this parameter (%s)", cls, why);
}

/* Drops rows the class does not take from the effective list (after rejecting given ones). */
static void drop_params(dsc_config_params_t *ps, const char *const *names) {
    dsc_config_param_t *items = (dsc_config_param_t *)(uintptr_t)ps->items;
    size_t o = 0;
    for (size_t i = 0; i < ps->count; i++) {
        bool drop = false;
        for (size_t k = 0; names[k]; k++)
            if (strcmp(items[i].name, names[k]) == 0) drop = true;
        if (!drop) items[o++] = items[i];
    }
    ps->count = o;
}

static int reject_list(cfg_parser_t *p, dsc_config_params_t *ps, const char *const *names, const char *cls,
                       const char *why) {
    for (size_t k = 0; names[k]; k++)
        if (reject_for_class(p, ps, names[k], cls, why) < 0) return -1;
    drop_params(ps, names);
    return 0;
}

static const char *const torch_only[] = {"foreach", "maximize", "differentiable", "capturable", "fused", NULL};

/* Picks the class DeepSpeed builds and removes the parameters it does not take. */
static int resolve_optimizer_class(cfg_parser_t *p, dsc_config_optimizer_t *o, bool offload) {
    dsc_config_params_t *ps = &o->params;
    switch (o->kind) {
    case DSC_CONFIG_OPTIM_ADAM:
    case DSC_CONFIG_OPTIM_ADAMW: {
        o->torch_adam = cfg_pbool(ps, "torch_adam", false);
        bool w = o->kind == DSC_CONFIG_OPTIM_ADAMW || cfg_pbool(ps, "adam_w_mode", true);
        o->adam_w_mode = w;
        const dsc_config_param_t *wm = dsc_config_param_find(ps, "adam_w_mode");
        if (o->kind == DSC_CONFIG_OPTIM_ADAMW && wm && wm->source.origin == DSC_CONFIG_FILE && !wm->boolean) {
            cfg_pos_t at = {.line = wm->source.line, .col = wm->source.col};
            cfg_warn(p, &at, false, "optimizer.params.adam_w_mode",
                     "false has no effect with type \"adamw\", which always decays weights decoupled (AdamW); "
                     "use type \"adam\" for L2 decay");
        }
        if (o->torch_adam) {
            o->implementation = w ? "torch.optim.AdamW" : "torch.optim.Adam";
            static const char *const no[] = {"bias_correction", "set_grad_none", "fp32_optimizer_states", NULL};
            if (reject_list(p, ps, no, o->implementation, "torch_adam is true") < 0) return -1;
            if (w && !cfg_pgiven(ps, "weight_decay")) {
                dsc_config_param_t *wd = (dsc_config_param_t *)(uintptr_t)dsc_config_param_find(ps, "weight_decay");
                if (wd) wd->number = 1e-2; /* torch.optim.AdamW's default */
            }
        } else if (offload) {
            o->implementation = "DeepSpeedCPUAdam";
            static const char *const no[] = {"set_grad_none", NULL};
            if (reject_list(p, ps, no, o->implementation, "the optimizer is offloaded to the CPU") < 0 ||
                reject_list(p, ps, torch_only, o->implementation, "it is not a torch optimizer") < 0)
                return -1;
            const dsc_config_param_t *a = dsc_config_param_find(ps, "amsgrad");
            if (a && a->boolean) {
                cfg_pos_t at = {.line = a->source.line, .col = a->source.col};
                return cfg_fail(p, &at, false, "optimizer.params.amsgrad",
                                "DeepSpeedCPUAdam ignores amsgrad (DeepSpeed accepts and silently ignores it); "
                                "dsc rejects it");
            }
        } else {
            o->implementation = "FusedAdam";
            static const char *const no[] = {"fp32_optimizer_states", NULL};
            if (reject_list(p, ps, no, o->implementation, "it is only for CPU-offloaded optimizers") < 0 ||
                reject_list(p, ps, torch_only, o->implementation, "it is not a torch optimizer; set torch_adam") < 0)
                return -1;
            const dsc_config_param_t *a = dsc_config_param_find(ps, "amsgrad");
            if (a && a->boolean) {
                cfg_pos_t at = {.line = a->source.line, .col = a->source.col};
                return cfg_fail(p, &at, false, "optimizer.params.amsgrad",
                                "FusedAdam does not support the AMSGrad variant.");
            }
        }
        return 0;
    }
    case DSC_CONFIG_OPTIM_ADAGRAD:
        if (offload) {
            o->implementation = "DeepSpeedCPUAdagrad";
            static const char *const no[] = {"lr_decay", "initial_accumulator_value", "foreach", "maximize",
                                             "differentiable", "fused", NULL};
            return reject_list(p, ps, no, o->implementation, "the optimizer is offloaded to the CPU");
        } else {
            o->implementation = "torch.optim.Adagrad";
            static const char *const no[] = {"amsgrad", "fp32_optimizer_states", NULL};
            return reject_list(p, ps, no, o->implementation, "it is only for the CPU-offloaded DeepSpeedCPUAdagrad");
        }
    case DSC_CONFIG_OPTIM_LAMB: {
        o->implementation = "FusedLamb";
        const dsc_config_param_t *a = dsc_config_param_find(ps, "amsgrad");
        if (a && a->boolean) {
            cfg_pos_t at = {.line = a->source.line, .col = a->source.col};
            return cfg_fail(p, &at, false, "optimizer.params.amsgrad", "FusedLamb does not support the AMSGrad variant.");
        }
        return 0;
    }
    case DSC_CONFIG_OPTIM_LION:
        if (offload) {
            o->implementation = "DeepSpeedCPULion";
            static const char *const no[] = {"set_grad_none", NULL};
            return reject_list(p, ps, no, o->implementation, "the optimizer is offloaded to the CPU");
        } else {
            o->implementation = "FusedLion";
            static const char *const no[] = {"fp32_optimizer_states", NULL};
            return reject_list(p, ps, no, o->implementation, "it is only for CPU-offloaded optimizers");
        }
    case DSC_CONFIG_OPTIM_ONEBITADAM:
    case DSC_CONFIG_OPTIM_ZEROONEADAM:
    case DSC_CONFIG_OPTIM_ONEBITLAMB: {
        o->implementation = o->kind == DSC_CONFIG_OPTIM_ONEBITADAM    ? "OnebitAdam"
                            : o->kind == DSC_CONFIG_OPTIM_ZEROONEADAM ? "ZeroOneAdam"
                                                                      : "OnebitLamb";
        const dsc_config_param_t *a = dsc_config_param_find(ps, "amsgrad");
        if (a && a->boolean) {
            cfg_pos_t at = {.line = a->source.line, .col = a->source.col};
            return cfg_fail(p, &at, false, "optimizer.params.amsgrad", "%s does not support the AMSGrad variant.",
                            o->implementation);
        }
        return 0;
    }
    case DSC_CONFIG_OPTIM_MUADAM: o->implementation = "mup.MuAdam"; return 0;
    case DSC_CONFIG_OPTIM_MUADAMW: o->implementation = "mup.MuAdamW"; return 0;
    case DSC_CONFIG_OPTIM_MUSGD: o->implementation = "mup.MuSGD"; return 0;
    case DSC_CONFIG_OPTIM_MUON: o->implementation = "MuonWithAuxAdam"; return 0;
    default: return 0;
    }
}

int cfg_finish_optimizer_section(cfg_parser_t *p) {
    dsc_config_t *cfg = p->cfg;
    dsc_config_optimizer_t *o = &cfg->optimizer;
    json_t *obj = p->opt_json;
    const char *name;
    json_t *v;
    cfg_pos_t *hint = NULL;
    json_t *type = NULL, *params = NULL;
    const cfg_pos_t *tpos = NULL, *ppos = NULL;
    json_object_foreach(obj, name, v) {
        const cfg_pos_t *pos = cfg_pos_member(p->opt_pos, name, &hint);
        char path[CFG_PATH_MAX];
        cfg_path_join(path, sizeof path, "optimizer", name);
        if (cfg_is_auto(v)) return cfg_fail_auto(p, pos, path, NULL);
        if (strcmp(name, "type") == 0) {
            if (!json_is_string(v) && !json_is_null(v))
                return cfg_fail(p, pos, false, path, "expected a string (the optimizer name), got %s", dsc__json_kind(v));
            type = v;
            tpos = pos;
        } else if (strcmp(name, "params") == 0) {
            if (!json_is_object(v) && !json_is_null(v))
                return cfg_fail(p, pos, false, path, "expected an object of keyword arguments, got %s", dsc__json_kind(v));
            params = json_is_object(v) ? v : NULL;
            ppos = pos;
        } else if (strcmp(name, "legacy_fusion") == 0) {
            if (cfg_read_bool(p, v, pos, path, &o->legacy_fusion) < 0) return -1;
            cfg_set_source(p->impl, "optimizer.legacy_fusion", DSC_CONFIG_FILE, pos ? pos->line : 0, pos ? pos->col : 0,
                           NULL);
        } else {
            static const char *const cands[] = {"type", "params", "legacy_fusion", NULL};
            if (cfg_unknown_dict_key(p, pos, path, name, cands) < 0) return -1;
        }
    }
    if (!type || json_is_null(type)) {
        if (params && json_object_size(params) > 0)
            return cfg_fail(p, ppos, true, "optimizer.params",
                            "given without optimizer.type: DeepSpeed would build no optimizer and ignore them");
        return 0;
    }
    const char *t = json_string_value(type);
    const optdesc_t *d = NULL;
    for (size_t i = 0; i < N_OPTIMIZERS && !d; i++) {
        bool ds = i < N_DS_OPTIMIZERS;
        if (ds ? strcasecmp(t, optimizers[i].name) == 0 : strcmp(t, optimizers[i].name) == 0) d = &optimizers[i];
    }
    if (!d) {
        const char *cands[N_OPTIMIZERS + 1];
        for (size_t i = 0; i < N_OPTIMIZERS; i++) cands[i] = optimizers[i].name;
        cands[N_OPTIMIZERS] = NULL;
        const char *best = NULL;
        int bd = 1000;
        for (size_t i = 0; i < N_OPTIMIZERS; i++) {
            int dd = cfg_edit_distance(t, cands[i]);
            if (dd < bd) {
                bd = dd;
                best = cands[i];
            }
        }
        bool close = best && bd <= 2;
        return cfg_fail(p, tpos, false, "optimizer.type",
                        "%s is not a supported DeepSpeed Optimizer%s%s%s (DeepSpeed's names match in any case: adam, "
                        "adamw, adagrad, lamb, lion, onebitadam, zerooneadam, onebitlamb, muadam, muadamw, musgd, "
                        "muon; other names must be torch.optim classes in exact case, e.g. SGD, RMSprop)",
                        t, close ? "; did you mean \"" : "", close ? best : "", close ? "\"?" : "");
    }
    o->kind = d->kind;
    o->type = d->name;
    if (d->kind == DSC_CONFIG_OPTIM_TORCH) o->implementation = cfg_printf(&p->impl->arena, "torch.optim.%s", d->name);
    cfg_set_source(p->impl, "optimizer.type", DSC_CONFIG_FILE, tpos ? tpos->line : 0, tpos ? tpos->col : 0, NULL);
    const dsc_config_zero_t *z = &cfg->zero_optimization;
    bool offload = z->stage > 0 && z->offload_optimizer.device != DSC_CONFIG_OFFLOAD_NONE;
    if (cfg_read_params(p, params, ppos, "optimizer.params", d->params, NULL, &o->params) < 0) return -1;
    if (resolve_optimizer_class(p, o, offload) < 0) return -1;
    /* the class's name is the note of every defaulted parameter */
    for (size_t i = 0; i < o->params.count; i++) {
        dsc_config_param_t *q = (dsc_config_param_t *)(uintptr_t)&o->params.items[i];
        if (q->source.origin == DSC_CONFIG_DEFAULT) q->source.note = o->implementation;
    }
    const dsc_config_params_t *ps = &o->params;
    o->lr = cfg_pnum(ps, "lr", 1e-3);
    const dsc_config_param_t *b = dsc_config_param_find(ps, "betas");
    o->betas[0] = b && b->kind == DSC_CONFIG_PARAM_LIST && b->list_len == 2 ? b->list[0] : 0.9;
    o->betas[1] = b && b->kind == DSC_CONFIG_PARAM_LIST && b->list_len == 2 ? b->list[1] : 0.999;
    o->eps = cfg_pnum(ps, "eps", 1e-8);
    o->weight_decay = cfg_pnum(ps, "weight_decay", 0);
    o->bias_correction = cfg_pbool(ps, "bias_correction", true);
    o->amsgrad = cfg_pbool(ps, "amsgrad", false);
    if (o->kind != DSC_CONFIG_OPTIM_ADAM && o->kind != DSC_CONFIG_OPTIM_ADAMW) o->adam_w_mode = false;
    o->fp32_optimizer_states = cfg_pbool(ps, "fp32_optimizer_states", true);
    o->momentum = cfg_pnum(ps, "momentum", 0);
    o->dampening = cfg_pnum(ps, "dampening", 0);
    o->nesterov = cfg_pbool(ps, "nesterov", false);
    o->max_coeff = cfg_pnum(ps, "max_coeff", 10.0);
    o->min_coeff = cfg_pnum(ps, "min_coeff", 0.01);
    o->eps_inside_sqrt = cfg_pbool(ps, "eps_inside_sqrt", false);
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0)) {
        const dsc_config_param_t *q = dsc_config_param_find(ps, "nesterov");
        cfg_pos_t at = {.line = q ? q->source.line : 0, .col = q ? q->source.col : 0};
        return cfg_fail(p, &at, false, "optimizer.params.nesterov", "Nesterov momentum requires a momentum and zero dampening");
    }
    if (o->max_coeff < o->min_coeff && (o->kind == DSC_CONFIG_OPTIM_LAMB || o->kind == DSC_CONFIG_OPTIM_ONEBITLAMB)) {
        const dsc_config_param_t *q = dsc_config_param_find(ps, "max_coeff");
        cfg_pos_t at = {.line = q ? q->source.line : 0, .col = q ? q->source.col : 0};
        return cfg_fail(p, &at, false, "optimizer.params.max_coeff", "must be >= min_coeff");
    }
    /* ZeRO compatibility (spec 4.1) */
    if (z->stage > 0) {
        bool onebit = d->kind == DSC_CONFIG_OPTIM_ONEBITADAM || d->kind == DSC_CONFIG_OPTIM_ZEROONEADAM ||
                      d->kind == DSC_CONFIG_OPTIM_ONEBITLAMB;
        if (onebit)
            return cfg_fail(p, tpos, false, "optimizer.type", "%s is not compatible with ZeRO (zero_optimization.stage = %d)",
                            o->implementation, z->stage);
        if (!d->zero_tested && !cfg->zero_allow_untested_optimizer)
            return cfg_fail(p, tpos, false, "optimizer.type",
                            "You are using an untested ZeRO Optimizer (%s with zero_optimization.stage = %d). Please "
                            "add <\"zero_allow_untested_optimizer\": true> in the configuration file to use it.",
                            o->implementation, z->stage);
        if (!d->zero_tested)
            cfg_warn(p, tpos, false, "optimizer.type", "untested ZeRO optimizer %s allowed by zero_allow_untested_optimizer",
                     o->implementation);
    }
    if ((d->kind == DSC_CONFIG_OPTIM_LAMB || d->kind == DSC_CONFIG_OPTIM_ONEBITLAMB) && cfg->fp16.enabled &&
        cfg->fp16.loss_scale != 0)
        return cfg_fail(p, tpos, false, "optimizer.type",
                        "DeepSpeed lamb optimizer requires dynamic loss scaling (fp16.loss_scale is %g)", cfg->fp16.loss_scale);
    return 0;
}
