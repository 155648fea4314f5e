/* The scheduler section (spec 1.5, 2): DeepSpeed's five schedulers and the
 * torch.optim.lr_scheduler classes, with their keyword arguments and defaults. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

/* ---- schedulers ------------------------------------------------------------------------------ */

#define WARMUP_TYPE CP_STR("warmup_type", "log", "log|linear")
#define LAST_BATCH CP_INT("last_batch_iteration", -1, PF_GEM1)
#define LAST_EPOCH CP_INT("last_epoch", -1, PF_GEM1)
static const cfg_prm_t lrrange_params[] = {CP_LIST("lr_range_test_min_lr", 1e-3, PF_GE0),
                                       CP_PYINT("lr_range_test_step_size", 2000, PF_GT0),
                                       CP_NUM("lr_range_test_step_rate", 1.0, PF_GE0),
                                       CP_BOOL("lr_range_test_staircase", 0),
                                       LAST_BATCH,
                                       CP_END};
static const cfg_prm_t onecycle_params[] = {CP_LIST("cycle_min_lr", 0, PF_GE0 | PF_REQ),
                                        CP_LIST("cycle_max_lr", 0, PF_GE0 | PF_REQ),
                                        CP_NUM("decay_lr_rate", 0, PF_GE0),
                                        CP_INT("cycle_first_step_size", 2000, PF_GT0),
                                        {"cycle_second_step_size", PK_INT, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        CP_INT("cycle_first_stair_count", 0, PF_GE0),
                                        {"cycle_second_stair_count", PK_INT, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        CP_INT("decay_step_size", 0, PF_GE0),
                                        CP_BOOL("cycle_momentum", 1),
                                        CP_LIST("cycle_min_mom", 0.8, PF_GE0),
                                        CP_LIST("cycle_max_mom", 0.9, PF_GE0),
                                        CP_NUM("decay_mom_rate", 0, PF_GE0),
                                        LAST_BATCH,
                                        CP_END};
static const cfg_prm_t warmuplr_params[] = {CP_LIST("warmup_min_lr", 0, PF_GE0),
                                        {"warmup_max_lr", PK_NUMLIST, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        CP_PYINT("warmup_num_steps", 1000, PF_GT0),
                                        WARMUP_TYPE,
                                        LAST_BATCH,
                                        CP_END};
static const cfg_prm_t warmupdecay_params[] = {CP_INT("total_num_steps", 0, PF_GT0 | PF_REQ),
                                           CP_LIST("warmup_min_lr", 0, PF_GE0),
                                           CP_LIST("warmup_max_lr", 0.001, PF_GE0),
                                           CP_PYINT("warmup_num_steps", 1000, PF_GT0),
                                           WARMUP_TYPE,
                                           LAST_BATCH,
                                           CP_END};
static const cfg_prm_t warmupcosine_params[] = {CP_INT("total_num_steps", 0, PF_GT0 | PF_REQ),
                                            CP_NUM("warmup_min_ratio", 0, PF_UNIT),
                                            CP_PYINT("warmup_num_steps", 1000, PF_GT0),
                                            CP_NUM("cos_min_ratio", 1e-4, PF_UNIT),
                                            WARMUP_TYPE,
                                            LAST_BATCH,
                                            CP_END};
static const cfg_prm_t steplr_params[] = {CP_INT("step_size", 0, PF_GT0 | PF_REQ), CP_NUM("gamma", 0.1, PF_GE0), LAST_EPOCH,
                                      CP_END};
static const cfg_prm_t multisteplr_params[] = {{"milestones", PK_INTLIST, PF_REQ | PF_GE0, {0, 0}, NULL, NULL},
                                           CP_NUM("gamma", 0.1, PF_GE0), LAST_EPOCH, CP_END};
static const cfg_prm_t constantlr_params[] = {CP_NUM("factor", 1.0 / 3, PF_UNIT), CP_INT("total_iters", 5, PF_GE0), LAST_EPOCH,
                                          CP_END};
static const cfg_prm_t linearlr_params[] = {CP_NUM("start_factor", 1.0 / 3, PF_GT0), CP_NUM("end_factor", 1.0, PF_GE0),
                                        CP_INT("total_iters", 5, PF_GE0), LAST_EPOCH, CP_END};
static const cfg_prm_t exponentiallr_params[] = {CP_NUM("gamma", 0, PF_GE0 | PF_REQ), LAST_EPOCH, CP_END};
static const cfg_prm_t polynomiallr_params[] = {CP_INT("total_iters", 5, PF_GE0), CP_NUM("power", 1.0, 0), LAST_EPOCH, CP_END};
static const cfg_prm_t cosinelr_params[] = {CP_INT("T_max", 0, PF_GT0 | PF_REQ), CP_NUM("eta_min", 0, PF_GE0), LAST_EPOCH,
                                        CP_END};
static const cfg_prm_t cosinewr_params[] = {CP_INT("T_0", 0, PF_GT0 | PF_REQ), CP_INT("T_mult", 1, PF_GT0),
                                        CP_NUM("eta_min", 0, PF_GE0), LAST_EPOCH, CP_END};
static const cfg_prm_t cycliclr_params[] = {CP_LIST("base_lr", 0, PF_GE0 | PF_REQ),
                                        CP_LIST("max_lr", 0, PF_GE0 | PF_REQ),
                                        CP_INT("step_size_up", 2000, PF_GT0),
                                        {"step_size_down", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        CP_STR("mode", "triangular", "triangular|triangular2|exp_range"),
                                        CP_NUM("gamma", 1.0, PF_GE0),
                                        CP_STR("scale_mode", "cycle", "cycle|iterations"),
                                        CP_BOOL("cycle_momentum", 1),
                                        CP_LIST("base_momentum", 0.8, PF_GE0),
                                        CP_LIST("max_momentum", 0.9, PF_GE0),
                                        LAST_EPOCH,
                                        CP_END};
static const cfg_prm_t onecyclelr_params[] = {CP_LIST("max_lr", 0, PF_GE0 | PF_REQ),
                                          {"total_steps", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                          {"epochs", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                          {"steps_per_epoch", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                          CP_NUM("pct_start", 0.3, PF_UNIT),
                                          CP_STR("anneal_strategy", "cos", "cos|linear"),
                                          CP_BOOL("cycle_momentum", 1),
                                          CP_LIST("base_momentum", 0.85, PF_GE0),
                                          CP_LIST("max_momentum", 0.95, PF_GE0),
                                          CP_NUM("div_factor", 25.0, PF_GT0),
                                          CP_NUM("final_div_factor", 1e4, PF_GT0),
                                          CP_BOOL("three_phase", 0),
                                          LAST_EPOCH,
                                          CP_END};
static const cfg_prm_t plateau_params[] = {CP_STR("mode", "min", "min|max"),
                                       CP_NUM("factor", 0.1, PF_BETA),
                                       CP_INT("patience", 10, PF_GE0),
                                       CP_NUM("threshold", 1e-4, PF_GE0),
                                       CP_STR("threshold_mode", "rel", "rel|abs"),
                                       CP_INT("cooldown", 0, PF_GE0),
                                       CP_LIST("min_lr", 0, PF_GE0),
                                       CP_NUM("eps", 1e-8, PF_GE0),
                                       CP_END};

typedef struct scheddesc {
    const char *name;
    dsc_config_scheduler_kind_t kind;
    const cfg_prm_t *params; /* NULL: needs Python objects, not expressible in JSON */
} scheddesc_t;

static const scheddesc_t schedulers[] = {
    {"LRRangeTest", DSC_CONFIG_SCHED_LR_RANGE_TEST, lrrange_params},
    {"OneCycle", DSC_CONFIG_SCHED_ONE_CYCLE, onecycle_params},
    {"WarmupLR", DSC_CONFIG_SCHED_WARMUP_LR, warmuplr_params},
    {"WarmupDecayLR", DSC_CONFIG_SCHED_WARMUP_DECAY_LR, warmupdecay_params},
    {"WarmupCosineLR", DSC_CONFIG_SCHED_WARMUP_COSINE_LR, warmupcosine_params},
    {"StepLR", DSC_CONFIG_SCHED_TORCH, steplr_params},
    {"MultiStepLR", DSC_CONFIG_SCHED_TORCH, multisteplr_params},
    {"ConstantLR", DSC_CONFIG_SCHED_TORCH, constantlr_params},
    {"LinearLR", DSC_CONFIG_SCHED_TORCH, linearlr_params},
    {"ExponentialLR", DSC_CONFIG_SCHED_TORCH, exponentiallr_params},
    {"PolynomialLR", DSC_CONFIG_SCHED_TORCH, polynomiallr_params},
    {"CosineAnnealingLR", DSC_CONFIG_SCHED_TORCH, cosinelr_params},
    {"CosineAnnealingWarmRestarts", DSC_CONFIG_SCHED_TORCH, cosinewr_params},
    {"CyclicLR", DSC_CONFIG_SCHED_TORCH, cycliclr_params},
    {"OneCycleLR", DSC_CONFIG_SCHED_TORCH, onecyclelr_params},
    {"ReduceLROnPlateau", DSC_CONFIG_SCHED_TORCH, plateau_params},
    {"LambdaLR", DSC_CONFIG_SCHED_TORCH, NULL},
    {"MultiplicativeLR", DSC_CONFIG_SCHED_TORCH, NULL},
    {"SequentialLR", DSC_CONFIG_SCHED_TORCH, NULL},
    {"ChainedScheduler", DSC_CONFIG_SCHED_TORCH, NULL},
};
#define N_SCHEDULERS (sizeof schedulers / sizeof schedulers[0])

const cfg_prm_t *cfg_scheduler_table(const char *type) {
    for (size_t i = 0; type && i < N_SCHEDULERS; i++)
        if (strcmp(schedulers[i].name, type) == 0) return schedulers[i].params;
    return NULL;
}

int cfg_parse_scheduler(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos, const char *shown) {
    (void)key;
    if (!json_is_object(v)) return cfg_fail(p, pos, false, shown, "expected an object, got %s", dsc__json_kind(v));
    p->sched_json = v;
    p->sched_pos = pos;
    return 0;
}

int cfg_finish_scheduler_section(cfg_parser_t *p) {
    dsc_config_scheduler_t *s = &p->cfg->scheduler;
    json_t *obj = p->sched_json;
    const char *name;
    json_t *v;
    cfg_pos_t *hint = NULL;
    json_t *type = NULL, *params = NULL;
    const cfg_pos_t *tpos = NULL, *ppos = NULL;
    bool params_given = false;
    json_object_foreach(obj, name, v) {
        const cfg_pos_t *pos = cfg_pos_member(p->sched_pos, name, &hint);
        char path[CFG_PATH_MAX];
        cfg_path_join(path, sizeof path, "scheduler", name);
        if (cfg_is_auto(v)) return cfg_fail_auto(p, pos, path, NULL);
        if (strcmp(name, "type") == 0) {
            if (!json_is_string(v) && !json_is_null(v))
                return cfg_fail(p, pos, false, path, "expected a string (the scheduler name), got %s", dsc__json_kind(v));
            type = v;
            tpos = pos;
        } else if (strcmp(name, "params") == 0) {
            if (!json_is_object(v))
                return cfg_fail(p, pos, false, path, "expected an object of keyword arguments, got %s", dsc__json_kind(v));
            params = v;
            ppos = pos;
            params_given = true;
        } else {
            static const char *const cands[] = {"type", "params", NULL};
            if (cfg_unknown_dict_key(p, pos, path, name, cands) < 0) return -1;
        }
    }
    if (!type || json_is_null(type)) {
        if (params_given && json_object_size(params) > 0)
            return cfg_fail(p, ppos, true, "scheduler.params",
                            "given without scheduler.type: DeepSpeed would build no scheduler and ignore them");
        return 0;
    }
    const char *t = json_string_value(type);
    const scheddesc_t *d = NULL;
    for (size_t i = 0; i < N_SCHEDULERS && !d; i++)
        if (strcmp(t, schedulers[i].name) == 0) d = &schedulers[i];
    if (!d) {
        const char *best = NULL;
        int bd = 1000;
        for (size_t i = 0; i < N_SCHEDULERS; i++) {
            int dd = cfg_edit_distance(t, schedulers[i].name);
            if (dd < bd) {
                bd = dd;
                best = schedulers[i].name;
            }
        }
        bool close = best && bd <= 3;
        return cfg_fail(p, tpos, false, "scheduler.type",
                        "DeepSpeed does not recognize LR scheduler %s%s%s%s (names are case-sensitive: LRRangeTest, "
                        "OneCycle, WarmupLR, WarmupDecayLR, WarmupCosineLR, or a torch.optim.lr_scheduler class)",
                        t, close ? "; did you mean \"" : "", close ? best : "", close ? "\"?" : "");
    }
    if (!d->params)
        return cfg_fail(p, tpos, false, "scheduler.type",
                        "%s needs Python objects (functions or other schedulers) as arguments, which a JSON config "
                        "cannot express",
                        t);
    if (!params_given)
        return cfg_fail(p, tpos, false, "scheduler.params",
                        "missing: DeepSpeed constructs the scheduler as %s(optimizer, **params) and fails without a "
                        "params object (write \"params\": {} for all defaults)",
                        t);
    s->kind = d->kind;
    s->type = d->name;
    cfg_set_source(p->impl, "scheduler.type", DSC_CONFIG_FILE, tpos ? tpos->line : 0, tpos ? tpos->col : 0, NULL);
    if (cfg_read_params(p, params, ppos, "scheduler.params", d->params, d->name, &s->params) < 0) return -1;
    const dsc_config_params_t *ps = &s->params;
    s->warmup_min_lr = cfg_pnum(ps, "warmup_min_lr", 0);
    const dsc_config_param_t *wmax = dsc_config_param_find(ps, "warmup_max_lr");
    s->warmup_max_lr_set = wmax && wmax->kind != DSC_CONFIG_PARAM_NULL;
    s->warmup_max_lr = cfg_pnum(ps, "warmup_max_lr", 0.001);
    s->warmup_num_steps = (int64_t)cfg_pnum(ps, "warmup_num_steps", 1000);
    const dsc_config_param_t *wt = dsc_config_param_find(ps, "warmup_type");
    s->warmup_type = wt && wt->string && strcmp(wt->string, "linear") == 0 ? DSC_CONFIG_WARMUP_LINEAR : DSC_CONFIG_WARMUP_LOG;
    s->total_num_steps = (int64_t)cfg_pnum(ps, "total_num_steps", 0);
    s->warmup_min_ratio = cfg_pnum(ps, "warmup_min_ratio", 0);
    s->cos_min_ratio = cfg_pnum(ps, "cos_min_ratio", 1e-4);
    s->lr_range_test_min_lr = cfg_pnum(ps, "lr_range_test_min_lr", 1e-3);
    s->lr_range_test_step_size = (int64_t)cfg_pnum(ps, "lr_range_test_step_size", 2000);
    s->lr_range_test_step_rate = cfg_pnum(ps, "lr_range_test_step_rate", 1.0);
    s->lr_range_test_staircase = cfg_pbool(ps, "lr_range_test_staircase", false);
    s->cycle_min_lr = cfg_pnum(ps, "cycle_min_lr", 0);
    s->cycle_max_lr = cfg_pnum(ps, "cycle_max_lr", 0);
    s->decay_lr_rate = cfg_pnum(ps, "decay_lr_rate", 0);
    s->cycle_first_step_size = (int64_t)cfg_pnum(ps, "cycle_first_step_size", 2000);
    const dsc_config_param_t *c2 = dsc_config_param_find(ps, "cycle_second_step_size");
    s->cycle_second_step_size =
        c2 && c2->kind == DSC_CONFIG_PARAM_NUMBER ? (int64_t)c2->number : s->cycle_first_step_size;
    s->cycle_first_stair_count = (int64_t)cfg_pnum(ps, "cycle_first_stair_count", 0);
    const dsc_config_param_t *sc2 = dsc_config_param_find(ps, "cycle_second_stair_count");
    s->cycle_second_stair_count =
        sc2 && sc2->kind == DSC_CONFIG_PARAM_NUMBER ? (int64_t)sc2->number : s->cycle_first_stair_count;
    s->decay_step_size = (int64_t)cfg_pnum(ps, "decay_step_size", 0);
    s->cycle_momentum = cfg_pbool(ps, "cycle_momentum", true);
    s->cycle_min_mom = cfg_pnum(ps, "cycle_min_mom", 0.8);
    s->cycle_max_mom = cfg_pnum(ps, "cycle_max_mom", 0.9);
    s->decay_mom_rate = cfg_pnum(ps, "decay_mom_rate", 0);
    s->last_batch_iteration = (int64_t)cfg_pnum(ps, "last_batch_iteration", -1);
    if ((d->kind == DSC_CONFIG_SCHED_WARMUP_DECAY_LR || d->kind == DSC_CONFIG_SCHED_WARMUP_COSINE_LR) &&
        s->total_num_steps < s->warmup_num_steps) {
        const dsc_config_param_t *q = dsc_config_param_find(ps, "total_num_steps");
        cfg_pos_t at = {.line = q ? q->source.line : 0, .col = q ? q->source.col : 0};
        cfg_warn(p, &at, false, "scheduler.params.total_num_steps", "total_num_steps %lld is less than warmup_num_steps %lld",
                 (long long)s->total_num_steps, (long long)s->warmup_num_steps);
    }
    return 0;
}
