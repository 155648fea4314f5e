/* optimizer and scheduler sections. DeepSpeed passes their "params" as keyword arguments
 * to the class it builds, so the accepted keys and the defaults depend on the type (and,
 * for Adam, Adagrad and Lion, on whether the optimizer is offloaded to the CPU or built
 * from torch). The tables below list each class's keyword arguments with the class's
 * defaults; unknown keys are errors (DeepSpeed fails with a constructor TypeError). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/config_internal.h"

enum { PK_NUM, PK_INT, PK_PYINT, PK_BOOL, PK_STR, PK_PAIR, PK_NUMLIST, PK_INTLIST };
enum {
    PF_REQ = 1 << 0,     /* no default: must be given */
    PF_NULL = 1 << 1,    /* null accepted */
    PF_DEFNULL = 1 << 2, /* the default is null */
    PF_GE0 = 1 << 3,     /* >= 0 */
    PF_GT0 = 1 << 4,     /* > 0 */
    PF_BETA = 1 << 5,    /* in [0, 1) */
    PF_UNIT = 1 << 6,    /* in [0, 1] */
    PF_GEM1 = 1 << 7     /* >= -1 */
};

typedef struct prm {
    const char *name;
    unsigned char kind;
    unsigned short flags;
    double def[2];       /* the default (PK_PAIR: both elements) */
    const char *sdef;    /* PK_STR default */
    const char *choices; /* PK_STR: accepted values separated by '|' */
} prm_t;

#define P_NUM(n, d, f) {n, PK_NUM, (f), {(d), 0}, NULL, NULL}
#define P_INT(n, d, f) {n, PK_INT, (f), {(d), 0}, NULL, NULL}
#define P_PYINT(n, d, f) {n, PK_PYINT, (f), {(d), 0}, NULL, NULL}
#define P_BOOL(n, d) {n, PK_BOOL, 0, {(d), 0}, NULL, NULL}
#define P_NBOOL(n) {n, PK_BOOL, PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL}
#define P_STR(n, d, ch) {n, PK_STR, 0, {0, 0}, (d), (ch)}
#define P_PAIR(n, a, b, f) {n, PK_PAIR, (f), {(a), (b)}, NULL, NULL}
#define P_LIST(n, d, f) {n, PK_NUMLIST, (f), {(d), 0}, NULL, NULL}
#define P_END {NULL, 0, 0, {0, 0}, NULL, NULL}

#define TORCH_FLAGS P_NBOOL("foreach"), P_BOOL("maximize", 0), P_BOOL("differentiable", 0)

/* ---- optimizers ------------------------------------------------------------------------------ */

static const prm_t adam_params[] = {
    P_NUM("lr", 1e-3, PF_GE0), P_PAIR("betas", 0.9, 0.999, PF_BETA), P_NUM("eps", 1e-8, PF_GT0),
    P_NUM("weight_decay", 0, PF_GE0), P_BOOL("bias_correction", 1), P_BOOL("amsgrad", 0), P_BOOL("adam_w_mode", 1),
    P_BOOL("torch_adam", 0), P_BOOL("set_grad_none", 1), P_BOOL("fp32_optimizer_states", 1), TORCH_FLAGS,
    P_BOOL("capturable", 0), P_NBOOL("fused"), P_END};
static const prm_t adagrad_params[] = {
    P_NUM("lr", 1e-2, PF_GE0), P_NUM("lr_decay", 0, PF_GE0), P_NUM("weight_decay", 0, PF_GE0),
    P_NUM("initial_accumulator_value", 0, PF_GE0), P_NUM("eps", 1e-10, PF_GT0), P_BOOL("amsgrad", 0),
    P_BOOL("fp32_optimizer_states", 1), TORCH_FLAGS, P_NBOOL("fused"), P_END};
static const prm_t lamb_params[] = {
    P_NUM("lr", 1e-3, PF_GE0), P_BOOL("bias_correction", 1), P_PAIR("betas", 0.9, 0.999, PF_BETA),
    P_NUM("eps", 1e-8, PF_GT0), P_BOOL("eps_inside_sqrt", 0), P_NUM("weight_decay", 0, PF_GE0),
    P_NUM("max_coeff", 10.0, PF_GE0), P_NUM("min_coeff", 0.01, PF_GE0), P_BOOL("amsgrad", 0), P_END};
static const prm_t lion_params[] = {P_NUM("lr", 1e-3, PF_GE0), P_PAIR("betas", 0.9, 0.999, PF_BETA),
                                    P_NUM("weight_decay", 0, PF_GE0), P_BOOL("set_grad_none", 1),
                                    P_BOOL("fp32_optimizer_states", 1), P_END};
#define ONEBIT_COMMON                                                                                           \
    P_NUM("lr", 1e-3, PF_GE0), P_BOOL("bias_correction", 1), P_PAIR("betas", 0.9, 0.999, PF_BETA),              \
        P_NUM("eps", 1e-8, PF_GT0), P_BOOL("eps_inside_sqrt", 0), P_NUM("weight_decay", 0, PF_GE0),             \
        P_BOOL("amsgrad", 0), P_BOOL("cuda_aware", 0), P_STR("comm_backend_name", "nccl", NULL)
static const prm_t onebitadam_params[] = {ONEBIT_COMMON, P_INT("freeze_step", 100000, PF_GE0), P_END};
static const prm_t zerooneadam_params[] = {ONEBIT_COMMON,
                                           P_INT("var_freeze_step", 100000, PF_GE0),
                                           P_INT("var_update_scaler", 16, PF_GT0),
                                           P_INT("local_step_scaler", 32678, PF_GT0),
                                           P_INT("local_step_clipper", 16, PF_GT0),
                                           P_END};
static const prm_t onebitlamb_params[] = {ONEBIT_COMMON,
                                          P_INT("freeze_step", 100000, PF_GE0),
                                          P_NUM("max_coeff", 10.0, PF_GE0),
                                          P_NUM("min_coeff", 0.01, PF_GE0),
                                          P_NUM("coeff_beta", 0.9, PF_UNIT),
                                          P_NUM("factor_max", 4.0, PF_GT0),
                                          P_NUM("factor_min", 0.5, PF_GT0),
                                          P_NUM("factor_threshold", 0.1, PF_GE0),
                                          P_END};
static const prm_t muadam_params[] = {P_NUM("lr", 1e-3, PF_GE0),    P_PAIR("betas", 0.9, 0.999, PF_BETA),
                                      P_NUM("eps", 1e-8, PF_GT0),    P_NUM("weight_decay", 0, PF_GE0),
                                      P_BOOL("amsgrad", 0),          P_BOOL("decoupled_wd", 0),
                                      TORCH_FLAGS,                   P_BOOL("capturable", 0),
                                      P_NBOOL("fused"),              P_END};
static const prm_t muadamw_params[] = {P_NUM("lr", 1e-3, PF_GE0),   P_PAIR("betas", 0.9, 0.999, PF_BETA),
                                       P_NUM("eps", 1e-8, PF_GT0),   P_NUM("weight_decay", 1e-2, PF_GE0),
                                       P_BOOL("amsgrad", 0),         P_BOOL("decoupled_wd", 0),
                                       TORCH_FLAGS,                  P_BOOL("capturable", 0),
                                       P_NBOOL("fused"),             P_END};
static const prm_t sgd_params[] = {P_NUM("lr", 1e-3, PF_GE0), P_NUM("momentum", 0, PF_GE0), P_NUM("dampening", 0, 0),
                                   P_NUM("weight_decay", 0, PF_GE0), P_BOOL("nesterov", 0), TORCH_FLAGS,
                                   P_NBOOL("fused"), P_END};
static const prm_t musgd_params[] = {P_NUM("lr", 1e-3, PF_GE0), P_NUM("momentum", 0, PF_GE0), P_NUM("dampening", 0, 0),
                                     P_NUM("weight_decay", 0, PF_GE0), P_BOOL("nesterov", 0), P_BOOL("decoupled_wd", 0),
                                     TORCH_FLAGS, P_END};
static const prm_t muon_params[] = {{"lr", PK_NUM, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                    P_NUM("momentum", 0.95, PF_GE0),
                                    P_NUM("weight_decay", 0, PF_GE0),
                                    {"muon_lr", PK_NUM, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                    {"adam_lr", PK_NUM, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                    P_STR("ns_method", "gram", "standard|gram"),
                                    P_PAIR("betas", 0.9, 0.95, PF_BETA),
                                    P_NUM("eps", 1e-10, PF_GT0),
                                    P_END};
static const prm_t adamax_params[] = {P_NUM("lr", 2e-3, PF_GE0), P_PAIR("betas", 0.9, 0.999, PF_BETA),
                                      P_NUM("eps", 1e-8, PF_GT0), P_NUM("weight_decay", 0, PF_GE0), TORCH_FLAGS,
                                      P_BOOL("capturable", 0), P_END};
static const prm_t nadam_params[] = {P_NUM("lr", 2e-3, PF_GE0), P_PAIR("betas", 0.9, 0.999, PF_BETA),
                                     P_NUM("eps", 1e-8, PF_GT0), P_NUM("weight_decay", 0, PF_GE0),
                                     P_NUM("momentum_decay", 4e-3, PF_GE0), P_BOOL("decoupled_weight_decay", 0),
                                     TORCH_FLAGS, P_BOOL("capturable", 0), P_END};
static const prm_t radam_params[] = {P_NUM("lr", 1e-3, PF_GE0), P_PAIR("betas", 0.9, 0.999, PF_BETA),
                                     P_NUM("eps", 1e-8, PF_GT0), P_NUM("weight_decay", 0, PF_GE0),
                                     P_BOOL("decoupled_weight_decay", 0), TORCH_FLAGS, P_BOOL("capturable", 0), P_END};
static const prm_t rmsprop_params[] = {P_NUM("lr", 1e-2, PF_GE0), P_NUM("alpha", 0.99, PF_GE0),
                                       P_NUM("eps", 1e-8, PF_GT0), P_NUM("weight_decay", 0, PF_GE0),
                                       P_NUM("momentum", 0, PF_GE0), P_BOOL("centered", 0), TORCH_FLAGS,
                                       P_BOOL("capturable", 0), P_END};
static const prm_t rprop_params[] = {P_NUM("lr", 1e-2, PF_GE0), P_PAIR("etas", 0.5, 1.2, PF_GT0),
                                     P_PAIR("step_sizes", 1e-6, 50, PF_GT0), TORCH_FLAGS, P_BOOL("capturable", 0),
                                     P_END};
static const prm_t adadelta_params[] = {P_NUM("lr", 1.0, PF_GE0), P_NUM("rho", 0.9, PF_UNIT), P_NUM("eps", 1e-6, PF_GT0),
                                        P_NUM("weight_decay", 0, PF_GE0), TORCH_FLAGS, P_BOOL("capturable", 0), P_END};
static const prm_t asgd_params[] = {P_NUM("lr", 1e-2, PF_GE0), P_NUM("lambd", 1e-4, PF_GE0), P_NUM("alpha", 0.75, PF_GE0),
                                    P_NUM("t0", 1e6, PF_GE0), P_NUM("weight_decay", 0, PF_GE0), TORCH_FLAGS,
                                    P_BOOL("capturable", 0), P_END};
static const prm_t lbfgs_params[] = {P_NUM("lr", 1, PF_GE0),
                                     P_INT("max_iter", 20, PF_GT0),
                                     {"max_eval", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                     P_NUM("tolerance_grad", 1e-7, PF_GE0),
                                     P_NUM("tolerance_change", 1e-9, PF_GE0),
                                     P_INT("history_size", 100, PF_GT0),
                                     {"line_search_fn", PK_STR, PF_NULL | PF_DEFNULL, {0, 0}, NULL, "strong_wolfe"},
                                     P_END};
static const prm_t sparseadam_params[] = {P_NUM("lr", 1e-3, PF_GE0), P_PAIR("betas", 0.9, 0.999, PF_BETA),
                                          P_NUM("eps", 1e-8, PF_GT0), P_BOOL("maximize", 0), P_END};
static const prm_t adafactor_params[] = {P_NUM("lr", 1e-2, PF_GE0), P_NUM("beta2_decay", -0.8, 0),
                                         P_PAIR("eps", NAN, 1e-3, PF_NULL), P_NUM("d", 1.0, PF_GT0),
                                         P_NUM("weight_decay", 0, PF_GE0), P_NBOOL("foreach"),
                                         P_BOOL("maximize", 0), P_END};

typedef struct optdesc {
    const char *name; /* DeepSpeed's lower-case name, or the exact torch.optim class name */
    dsc_config_optimizer_kind_t kind;
    const prm_t *params;
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

/* ---- schedulers ------------------------------------------------------------------------------ */

#define WARMUP_TYPE P_STR("warmup_type", "log", "log|linear")
#define LAST_BATCH P_INT("last_batch_iteration", -1, PF_GEM1)
#define LAST_EPOCH P_INT("last_epoch", -1, PF_GEM1)
static const prm_t lrrange_params[] = {P_LIST("lr_range_test_min_lr", 1e-3, PF_GE0),
                                       P_PYINT("lr_range_test_step_size", 2000, PF_GT0),
                                       P_NUM("lr_range_test_step_rate", 1.0, PF_GE0),
                                       P_BOOL("lr_range_test_staircase", 0),
                                       LAST_BATCH,
                                       P_END};
static const prm_t onecycle_params[] = {P_LIST("cycle_min_lr", 0, PF_GE0 | PF_REQ),
                                        P_LIST("cycle_max_lr", 0, PF_GE0 | PF_REQ),
                                        P_NUM("decay_lr_rate", 0, PF_GE0),
                                        P_INT("cycle_first_step_size", 2000, PF_GT0),
                                        {"cycle_second_step_size", PK_INT, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        P_INT("cycle_first_stair_count", 0, PF_GE0),
                                        {"cycle_second_stair_count", PK_INT, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        P_INT("decay_step_size", 0, PF_GE0),
                                        P_BOOL("cycle_momentum", 1),
                                        P_LIST("cycle_min_mom", 0.8, PF_GE0),
                                        P_LIST("cycle_max_mom", 0.9, PF_GE0),
                                        P_NUM("decay_mom_rate", 0, PF_GE0),
                                        LAST_BATCH,
                                        P_END};
static const prm_t warmuplr_params[] = {P_LIST("warmup_min_lr", 0, PF_GE0),
                                        {"warmup_max_lr", PK_NUMLIST, PF_GE0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        P_PYINT("warmup_num_steps", 1000, PF_GT0),
                                        WARMUP_TYPE,
                                        LAST_BATCH,
                                        P_END};
static const prm_t warmupdecay_params[] = {P_INT("total_num_steps", 0, PF_GT0 | PF_REQ),
                                           P_LIST("warmup_min_lr", 0, PF_GE0),
                                           P_LIST("warmup_max_lr", 0.001, PF_GE0),
                                           P_PYINT("warmup_num_steps", 1000, PF_GT0),
                                           WARMUP_TYPE,
                                           LAST_BATCH,
                                           P_END};
static const prm_t warmupcosine_params[] = {P_INT("total_num_steps", 0, PF_GT0 | PF_REQ),
                                            P_NUM("warmup_min_ratio", 0, PF_UNIT),
                                            P_PYINT("warmup_num_steps", 1000, PF_GT0),
                                            P_NUM("cos_min_ratio", 1e-4, PF_UNIT),
                                            WARMUP_TYPE,
                                            LAST_BATCH,
                                            P_END};
static const prm_t steplr_params[] = {P_INT("step_size", 0, PF_GT0 | PF_REQ), P_NUM("gamma", 0.1, PF_GE0), LAST_EPOCH,
                                      P_END};
static const prm_t multisteplr_params[] = {{"milestones", PK_INTLIST, PF_REQ | PF_GE0, {0, 0}, NULL, NULL},
                                           P_NUM("gamma", 0.1, PF_GE0), LAST_EPOCH, P_END};
static const prm_t constantlr_params[] = {P_NUM("factor", 1.0 / 3, PF_UNIT), P_INT("total_iters", 5, PF_GE0), LAST_EPOCH,
                                          P_END};
static const prm_t linearlr_params[] = {P_NUM("start_factor", 1.0 / 3, PF_GT0), P_NUM("end_factor", 1.0, PF_GE0),
                                        P_INT("total_iters", 5, PF_GE0), LAST_EPOCH, P_END};
static const prm_t exponentiallr_params[] = {P_NUM("gamma", 0, PF_GE0 | PF_REQ), LAST_EPOCH, P_END};
static const prm_t polynomiallr_params[] = {P_INT("total_iters", 5, PF_GE0), P_NUM("power", 1.0, 0), LAST_EPOCH, P_END};
static const prm_t cosinelr_params[] = {P_INT("T_max", 0, PF_GT0 | PF_REQ), P_NUM("eta_min", 0, PF_GE0), LAST_EPOCH,
                                        P_END};
static const prm_t cosinewr_params[] = {P_INT("T_0", 0, PF_GT0 | PF_REQ), P_INT("T_mult", 1, PF_GT0),
                                        P_NUM("eta_min", 0, PF_GE0), LAST_EPOCH, P_END};
static const prm_t cycliclr_params[] = {P_LIST("base_lr", 0, PF_GE0 | PF_REQ),
                                        P_LIST("max_lr", 0, PF_GE0 | PF_REQ),
                                        P_INT("step_size_up", 2000, PF_GT0),
                                        {"step_size_down", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                        P_STR("mode", "triangular", "triangular|triangular2|exp_range"),
                                        P_NUM("gamma", 1.0, PF_GE0),
                                        P_STR("scale_mode", "cycle", "cycle|iterations"),
                                        P_BOOL("cycle_momentum", 1),
                                        P_LIST("base_momentum", 0.8, PF_GE0),
                                        P_LIST("max_momentum", 0.9, PF_GE0),
                                        LAST_EPOCH,
                                        P_END};
static const prm_t onecyclelr_params[] = {P_LIST("max_lr", 0, PF_GE0 | PF_REQ),
                                          {"total_steps", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                          {"epochs", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                          {"steps_per_epoch", PK_INT, PF_GT0 | PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL},
                                          P_NUM("pct_start", 0.3, PF_UNIT),
                                          P_STR("anneal_strategy", "cos", "cos|linear"),
                                          P_BOOL("cycle_momentum", 1),
                                          P_LIST("base_momentum", 0.85, PF_GE0),
                                          P_LIST("max_momentum", 0.95, PF_GE0),
                                          P_NUM("div_factor", 25.0, PF_GT0),
                                          P_NUM("final_div_factor", 1e4, PF_GT0),
                                          P_BOOL("three_phase", 0),
                                          LAST_EPOCH,
                                          P_END};
static const prm_t plateau_params[] = {P_STR("mode", "min", "min|max"),
                                       P_NUM("factor", 0.1, PF_BETA),
                                       P_INT("patience", 10, PF_GE0),
                                       P_NUM("threshold", 1e-4, PF_GE0),
                                       P_STR("threshold_mode", "rel", "rel|abs"),
                                       P_INT("cooldown", 0, PF_GE0),
                                       P_LIST("min_lr", 0, PF_GE0),
                                       P_NUM("eps", 1e-8, PF_GE0),
                                       P_END};

typedef struct scheddesc {
    const char *name;
    dsc_config_scheduler_kind_t kind;
    const prm_t *params; /* NULL: needs Python objects, not expressible in JSON */
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

/* ---- deferral: the walk only records the objects ----------------------------------------------- */

int cfg_parse_optimizer(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos, const char *shown) {
    (void)key;
    if (!json_is_object(v)) return cfg_fail(p, pos, false, shown, "expected an object, got %s", cfg_json_kind(v));
    p->opt_json = v;
    p->opt_pos = pos;
    return 0;
}

int cfg_parse_scheduler(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos, const char *shown) {
    (void)key;
    if (!json_is_object(v)) return cfg_fail(p, pos, false, shown, "expected an object, got %s", cfg_json_kind(v));
    p->sched_json = v;
    p->sched_pos = pos;
    return 0;
}

/* ---- parameters --------------------------------------------------------------------------------- */

static const prm_t *find_prm(const prm_t *t, const char *name) {
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

static bool choice_ok(const char *choices, const char *s) {
    size_t n = strlen(s);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return true;
        c = bar ? bar + 1 : NULL;
    }
    return false;
}

static const char *range_words(unsigned flags) {
    if (flags & PF_GT0) return "> 0";
    if (flags & PF_GE0) return ">= 0";
    if (flags & PF_BETA) return "in [0, 1)";
    if (flags & PF_UNIT) return "in [0, 1]";
    if (flags & PF_GEM1) return ">= -1";
    return NULL;
}

static bool in_range(unsigned flags, double x) {
    if (isnan(x)) return false;
    if ((flags & PF_GT0) && !(x > 0)) return false;
    if ((flags & PF_GE0) && !(x >= 0)) return false;
    if ((flags & PF_BETA) && !(x >= 0 && x < 1)) return false;
    if ((flags & PF_UNIT) && !(x >= 0 && x <= 1)) return false;
    if ((flags & PF_GEM1) && !(x >= -1)) return false;
    return true;
}

static int check_num(cfg_parser_t *p, const prm_t *d, double x, const cfg_pos_t *at, const char *path) {
    if (in_range(d->flags, x)) return 0;
    char num[64];
    cfg_format_num(x, num, sizeof num);
    return cfg_fail(p, at, false, path, "must be %s, got %s", range_words(d->flags), num);
}

static void format_prm_default(const prm_t *d, char *buf, size_t n) {
    char a[64], b[64];
    if (d->flags & PF_REQ) {
        snprintf(buf, n, "none: it is required");
        return;
    }
    if (d->flags & PF_DEFNULL) {
        snprintf(buf, n, "null");
        return;
    }
    switch (d->kind) {
    case PK_BOOL: snprintf(buf, n, "%s", d->def[0] != 0 ? "true" : "false"); break;
    case PK_STR: snprintf(buf, n, "\"%s\"", d->sdef ? d->sdef : ""); break;
    case PK_INT:
    case PK_PYINT: snprintf(buf, n, "%lld", (long long)d->def[0]); break;
    case PK_PAIR:
        cfg_format_double(d->def[0], a, sizeof a);
        cfg_format_double(d->def[1], b, sizeof b);
        snprintf(buf, n, "[%s, %s]", isnan(d->def[0]) ? "null" : a, b);
        break;
    default: cfg_format_double(d->def[0], buf, n); break;
    }
}

/* Validates one given parameter and stores it in *out. */
static int read_param(cfg_parser_t *p, const prm_t *d, json_t *v, const cfg_pos_t *at, const char *path,
                      dsc_config_param_t *out) {
    out->name = d->name;
    out->source = (dsc_config_source_t){DSC_CONFIG_FILE, at ? at->line : 0, at ? at->col : 0, NULL};
    if (cfg_is_auto(v)) {
        char def[160];
        format_prm_default(d, def, sizeof def);
        return cfg_fail_auto(p, at, path, def);
    }
    if (json_is_null(v)) {
        if (!(d->flags & PF_NULL)) return cfg_fail(p, at, false, path, "null is not accepted here");
        out->kind = DSC_CONFIG_PARAM_NULL;
        return 0;
    }
    switch (d->kind) {
    case PK_BOOL:
        out->kind = DSC_CONFIG_PARAM_BOOL;
        return cfg_read_bool(p, v, at, path, &out->boolean);
    case PK_STR:
        if (!json_is_string(v)) return cfg_fail(p, at, false, path, "expected a string, got %s", cfg_json_kind(v));
        if (d->choices && !choice_ok(d->choices, json_string_value(v))) {
            char list[256];
            size_t o = 0;
            for (const char *c = d->choices; *c && o + 4 < sizeof list; c++) {
                if (c == d->choices) list[o++] = '"';
                if (*c == '|') {
                    o += (size_t)snprintf(list + o, sizeof list - o, "\", \"");
                } else {
                    list[o++] = *c;
                }
            }
            if (o + 2 < sizeof list) list[o++] = '"';
            list[o] = '\0';
            return cfg_fail(p, at, false, path, "invalid value \"%s\"; expected one of %s", json_string_value(v), list);
        }
        out->kind = DSC_CONFIG_PARAM_STRING;
        out->string = cfg_strdup(&p->impl->arena, json_string_value(v));
        return out->string ? 0 : cfg_fail(p, at, false, path, "out of memory");
    case PK_INT:
    case PK_PYINT: {
        int64_t x;
        if (cfg_read_int(p, v, at, path, d->kind == PK_PYINT, &x) < 0) return -1;
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        out->number = (double)x;
        out->is_integer = true;
        return check_num(p, d, (double)x, at, path);
    }
    case PK_NUM:
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        if (cfg_read_number(p, v, at, path, &out->number) < 0) return -1;
        out->is_integer = json_is_integer(v);
        return check_num(p, d, out->number, at, path);
    default: break;
    }
    /* lists: PK_PAIR (exactly 2), PK_NUMLIST (a number or a non-empty list), PK_INTLIST */
    if (d->kind == PK_NUMLIST && json_is_number(v)) {
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        if (cfg_read_number(p, v, at, path, &out->number) < 0) return -1;
        out->is_integer = json_is_integer(v);
        return check_num(p, d, out->number, at, path);
    }
    const char *want = d->kind == PK_PAIR ? "a list of 2 numbers"
                       : d->kind == PK_INTLIST ? "a list of integers"
                                               : "a number or a list of numbers (one per parameter group)";
    if (!json_is_array(v)) return cfg_fail(p, at, false, path, "expected %s, got %s", want, cfg_json_kind(v));
    size_t n = json_array_size(v);
    if ((d->kind == PK_PAIR && n != 2) || (d->kind == PK_NUMLIST && n == 0))
        return cfg_fail(p, at, false, path, "expected %s, got a list of %zu", want, n);
    double *list = cfg_alloc(&p->impl->arena, (n ? n : 1) * sizeof *list);
    if (!list) return cfg_fail(p, at, false, path, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        const cfg_pos_t *epos = cfg_pos_element(at, i);
        char ep[CFG_PATH_MAX + 32];
        snprintf(ep, sizeof ep, "%s[%zu]", path, i);
        if (json_is_null(e) && (d->flags & PF_NULL)) {
            list[i] = NAN;
            continue;
        }
        if (d->kind == PK_INTLIST) {
            int64_t x;
            if (cfg_read_int(p, e, epos, ep, false, &x) < 0) return -1;
            list[i] = (double)x;
        } else if (cfg_read_number(p, e, epos, ep, &list[i]) < 0) {
            return -1;
        }
        if (check_num(p, d, list[i], epos, ep) < 0) return -1;
    }
    out->kind = DSC_CONFIG_PARAM_LIST;
    out->list = list;
    out->list_len = n;
    return 0;
}

static void default_param(const prm_t *d, const char *note, dsc_config_param_t *out) {
    out->name = d->name;
    out->source = (dsc_config_source_t){DSC_CONFIG_DEFAULT, 0, 0, note};
    if (d->flags & (PF_DEFNULL | PF_REQ)) {
        out->kind = DSC_CONFIG_PARAM_NULL;
        return;
    }
    switch (d->kind) {
    case PK_BOOL:
        out->kind = DSC_CONFIG_PARAM_BOOL;
        out->boolean = d->def[0] != 0;
        break;
    case PK_STR:
        out->kind = DSC_CONFIG_PARAM_STRING;
        out->string = d->sdef;
        break;
    case PK_PAIR:
        out->kind = DSC_CONFIG_PARAM_LIST;
        out->list = d->def;
        out->list_len = 2;
        break;
    default:
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        out->number = d->def[0];
        out->is_integer = d->kind == PK_INT || d->kind == PK_PYINT;
        break;
    }
}

/* Reads the "params" object of the optimizer or scheduler against `table`, filling `out`
 * with one entry per table row (given or default). */
static int read_params(cfg_parser_t *p, json_t *params, const cfg_pos_t *ppos, const char *base, const prm_t *table,
                       const char *class_note, dsc_config_params_t *out) {
    size_t n = 0;
    while (table[n].name) n++;
    dsc_config_param_t *items = cfg_alloc(&p->impl->arena, (n ? n : 1) * sizeof *items);
    if (!items) return cfg_fail(p, ppos, false, base, "out of memory");
    for (size_t i = 0; i < n; i++) default_param(&table[i], class_note, &items[i]);
    if (params) {
        const char *name;
        json_t *v;
        cfg_pos_t *hint = NULL;
        json_object_foreach(params, name, v) {
            const cfg_pos_t *pos = cfg_pos_member(ppos, name, &hint);
            char path[CFG_PATH_MAX];
            cfg_path_join(path, sizeof path, base, name);
            if (strcmp(name, "max_grad_norm") == 0 && strncmp(base, "optimizer", 9) == 0)
                return cfg_fail(p, pos, true, path,
                                "'max_grad_norm' is not supported as an optimizer parameter, please switch to using "
                                "the deepspeed parameter 'gradient_clipping'");
            const prm_t *d = find_prm(table, name);
            if (!d) {
                const char *cands[64];
                size_t c = 0;
                for (size_t i = 0; i < n && c + 1 < 64; i++) cands[c++] = table[i].name;
                cands[c] = NULL;
                cfg_unknown_key(p, pos, path, name, cands, false,
                                "not a parameter of this class: DeepSpeed passes params as keyword arguments and "
                                "the constructor would fail");
                return -1;
            }
            if (read_param(p, d, v, pos, path, &items[d - table]) < 0) return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((table[i].flags & PF_REQ) && items[i].source.origin == DSC_CONFIG_DEFAULT) {
            char path[CFG_PATH_MAX];
            cfg_path_join(path, sizeof path, base, table[i].name);
            return cfg_fail(p, ppos ? ppos : NULL, false, path, "required parameter missing (it has no default)");
        }
    }
    *out = (dsc_config_params_t){n, items};
    return 0;
}

const dsc_config_param_t *dsc_config_param_find(const dsc_config_params_t *params, const char *name) {
    if (!params || !name) return NULL;
    for (size_t i = 0; i < params->count; i++)
        if (strcmp(params->items[i].name, name) == 0) return &params->items[i];
    return NULL;
}

static double pnum(const dsc_config_params_t *ps, const char *name, double dflt) {
    const dsc_config_param_t *q = dsc_config_param_find(ps, name);
    if (!q) return dflt;
    if (q->kind == DSC_CONFIG_PARAM_NUMBER) return q->number;
    if (q->kind == DSC_CONFIG_PARAM_LIST && q->list_len) return q->list[0];
    return dflt;
}

static bool pbool(const dsc_config_params_t *ps, const char *name, bool dflt) {
    const dsc_config_param_t *q = dsc_config_param_find(ps, name);
    return q && q->kind == DSC_CONFIG_PARAM_BOOL ? q->boolean : dflt;
}

static bool given(const dsc_config_params_t *ps, const char *name) {
    const dsc_config_param_t *q = dsc_config_param_find(ps, name);
    return q && q->source.origin == DSC_CONFIG_FILE;
}

/* A parameter the chosen class does not take (DeepSpeed: constructor TypeError). */
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
        o->torch_adam = pbool(ps, "torch_adam", false);
        bool w = o->kind == DSC_CONFIG_OPTIM_ADAMW || pbool(ps, "adam_w_mode", true);
        o->adam_w_mode = w;
        if (o->torch_adam) {
            o->implementation = w ? "torch.optim.AdamW" : "torch.optim.Adam";
            static const char *const no[] = {"bias_correction", "set_grad_none", "fp32_optimizer_states", NULL};
            if (reject_list(p, ps, no, o->implementation, "torch_adam is true") < 0) return -1;
            if (w && !given(ps, "weight_decay")) {
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

static int finish_optimizer(cfg_parser_t *p) {
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
                return cfg_fail(p, pos, false, path, "expected a string (the optimizer name), got %s", cfg_json_kind(v));
            type = v;
            tpos = pos;
        } else if (strcmp(name, "params") == 0) {
            if (!json_is_object(v) && !json_is_null(v))
                return cfg_fail(p, pos, false, path, "expected an object of keyword arguments, got %s", cfg_json_kind(v));
            params = json_is_object(v) ? v : NULL;
            ppos = pos;
        } else if (strcmp(name, "legacy_fusion") == 0) {
            if (cfg_read_bool(p, v, pos, path, &o->legacy_fusion) < 0) return -1;
            cfg_set_source(p->impl, "optimizer.legacy_fusion", DSC_CONFIG_FILE, pos ? pos->line : 0, pos ? pos->col : 0,
                           NULL);
        } else {
            static const char *const cands[] = {"type", "params", "legacy_fusion", NULL};
            if (cfg_unknown_key(p, pos, path, name, cands, p->opts.unknown_section_keys_warn,
                                "DeepSpeed ignores unknown keys in this section; dsc rejects them") < 0)
                return -1;
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
    if (read_params(p, params, ppos, "optimizer.params", d->params, NULL, &o->params) < 0) return -1;
    if (resolve_optimizer_class(p, o, offload) < 0) return -1;
    /* the class's name is the note of every defaulted parameter */
    for (size_t i = 0; i < o->params.count; i++) {
        dsc_config_param_t *q = (dsc_config_param_t *)(uintptr_t)&o->params.items[i];
        if (q->source.origin == DSC_CONFIG_DEFAULT) q->source.note = o->implementation;
    }
    const dsc_config_params_t *ps = &o->params;
    o->lr = pnum(ps, "lr", 1e-3);
    const dsc_config_param_t *b = dsc_config_param_find(ps, "betas");
    o->betas[0] = b && b->kind == DSC_CONFIG_PARAM_LIST && b->list_len == 2 ? b->list[0] : 0.9;
    o->betas[1] = b && b->kind == DSC_CONFIG_PARAM_LIST && b->list_len == 2 ? b->list[1] : 0.999;
    o->eps = pnum(ps, "eps", 1e-8);
    o->weight_decay = pnum(ps, "weight_decay", 0);
    o->bias_correction = pbool(ps, "bias_correction", true);
    o->amsgrad = pbool(ps, "amsgrad", false);
    if (o->kind != DSC_CONFIG_OPTIM_ADAM && o->kind != DSC_CONFIG_OPTIM_ADAMW) o->adam_w_mode = false;
    o->fp32_optimizer_states = pbool(ps, "fp32_optimizer_states", true);
    o->momentum = pnum(ps, "momentum", 0);
    o->dampening = pnum(ps, "dampening", 0);
    o->nesterov = pbool(ps, "nesterov", false);
    o->max_coeff = pnum(ps, "max_coeff", 10.0);
    o->min_coeff = pnum(ps, "min_coeff", 0.01);
    o->eps_inside_sqrt = pbool(ps, "eps_inside_sqrt", false);
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

static int finish_scheduler(cfg_parser_t *p) {
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
                return cfg_fail(p, pos, false, path, "expected a string (the scheduler name), got %s", cfg_json_kind(v));
            type = v;
            tpos = pos;
        } else if (strcmp(name, "params") == 0) {
            if (!json_is_object(v))
                return cfg_fail(p, pos, false, path, "expected an object of keyword arguments, got %s", cfg_json_kind(v));
            params = v;
            ppos = pos;
            params_given = true;
        } else {
            static const char *const cands[] = {"type", "params", NULL};
            if (cfg_unknown_key(p, pos, path, name, cands, p->opts.unknown_section_keys_warn,
                                "DeepSpeed ignores unknown keys in this section; dsc rejects them") < 0)
                return -1;
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
    if (read_params(p, params, ppos, "scheduler.params", d->params, d->name, &s->params) < 0) return -1;
    const dsc_config_params_t *ps = &s->params;
    s->warmup_min_lr = pnum(ps, "warmup_min_lr", 0);
    const dsc_config_param_t *wmax = dsc_config_param_find(ps, "warmup_max_lr");
    s->warmup_max_lr_set = wmax && wmax->kind != DSC_CONFIG_PARAM_NULL;
    s->warmup_max_lr = pnum(ps, "warmup_max_lr", 0.001);
    s->warmup_num_steps = (int64_t)pnum(ps, "warmup_num_steps", 1000);
    const dsc_config_param_t *wt = dsc_config_param_find(ps, "warmup_type");
    s->warmup_type = wt && wt->string && strcmp(wt->string, "linear") == 0 ? DSC_CONFIG_WARMUP_LINEAR : DSC_CONFIG_WARMUP_LOG;
    s->total_num_steps = (int64_t)pnum(ps, "total_num_steps", 0);
    s->warmup_min_ratio = pnum(ps, "warmup_min_ratio", 0);
    s->cos_min_ratio = pnum(ps, "cos_min_ratio", 1e-4);
    s->lr_range_test_min_lr = pnum(ps, "lr_range_test_min_lr", 1e-3);
    s->lr_range_test_step_size = (int64_t)pnum(ps, "lr_range_test_step_size", 2000);
    s->lr_range_test_step_rate = pnum(ps, "lr_range_test_step_rate", 1.0);
    s->lr_range_test_staircase = pbool(ps, "lr_range_test_staircase", false);
    s->cycle_min_lr = pnum(ps, "cycle_min_lr", 0);
    s->cycle_max_lr = pnum(ps, "cycle_max_lr", 0);
    s->decay_lr_rate = pnum(ps, "decay_lr_rate", 0);
    s->cycle_first_step_size = (int64_t)pnum(ps, "cycle_first_step_size", 2000);
    const dsc_config_param_t *c2 = dsc_config_param_find(ps, "cycle_second_step_size");
    s->cycle_second_step_size =
        c2 && c2->kind == DSC_CONFIG_PARAM_NUMBER ? (int64_t)c2->number : s->cycle_first_step_size;
    s->cycle_first_stair_count = (int64_t)pnum(ps, "cycle_first_stair_count", 0);
    const dsc_config_param_t *sc2 = dsc_config_param_find(ps, "cycle_second_stair_count");
    s->cycle_second_stair_count =
        sc2 && sc2->kind == DSC_CONFIG_PARAM_NUMBER ? (int64_t)sc2->number : s->cycle_first_stair_count;
    s->decay_step_size = (int64_t)pnum(ps, "decay_step_size", 0);
    s->cycle_momentum = pbool(ps, "cycle_momentum", true);
    s->cycle_min_mom = pnum(ps, "cycle_min_mom", 0.8);
    s->cycle_max_mom = pnum(ps, "cycle_max_mom", 0.9);
    s->decay_mom_rate = pnum(ps, "decay_mom_rate", 0);
    s->last_batch_iteration = (int64_t)pnum(ps, "last_batch_iteration", -1);
    if ((d->kind == DSC_CONFIG_SCHED_WARMUP_DECAY_LR || d->kind == DSC_CONFIG_SCHED_WARMUP_COSINE_LR) &&
        s->total_num_steps < s->warmup_num_steps) {
        const dsc_config_param_t *q = dsc_config_param_find(ps, "total_num_steps");
        cfg_pos_t at = {.line = q ? q->source.line : 0, .col = q ? q->source.col : 0};
        cfg_warn(p, &at, false, "scheduler.params.total_num_steps", "total_num_steps %lld is less than warmup_num_steps %lld",
                 (long long)s->total_num_steps, (long long)s->warmup_num_steps);
    }
    return 0;
}

int cfg_finish_optimizer(cfg_parser_t *p) {
    if (p->opt_json && finish_optimizer(p) < 0) return -1;
    if (p->sched_json && finish_scheduler(p) < 0) return -1;
    return 0;
}

void cfg_format_param(const dsc_config_param_t *prm, char *buf, size_t bufsz) {
    switch (prm->kind) {
    case DSC_CONFIG_PARAM_NULL: snprintf(buf, bufsz, "null"); break;
    case DSC_CONFIG_PARAM_BOOL: snprintf(buf, bufsz, "%s", prm->boolean ? "true" : "false"); break;
    case DSC_CONFIG_PARAM_STRING: snprintf(buf, bufsz, "\"%s\"", prm->string ? prm->string : ""); break;
    case DSC_CONFIG_PARAM_NUMBER:
        if (prm->is_integer && fabs(prm->number) < 9e15) snprintf(buf, bufsz, "%lld", (long long)prm->number);
        else cfg_format_double(prm->number, buf, bufsz);
        break;
    case DSC_CONFIG_PARAM_LIST: {
        size_t o = (size_t)snprintf(buf, bufsz, "[");
        for (size_t i = 0; i < prm->list_len && o < bufsz; i++) {
            char num[64];
            if (isnan(prm->list[i])) snprintf(num, sizeof num, "null");
            else cfg_format_double(prm->list[i], num, sizeof num);
            o += (size_t)snprintf(buf + o, bufsz - o, "%s%s", i ? ", " : "", num);
        }
        if (o < bufsz) snprintf(buf + o, bufsz - o, "]");
        break;
    }
    }
}

/* The default row for `prm` in the table of the config's optimizer or scheduler. */
static const prm_t *param_row(const dsc_config_t *cfg, bool scheduler, const char *name) {
    if (scheduler) {
        for (size_t i = 0; i < N_SCHEDULERS; i++)
            if (cfg->scheduler.type && strcmp(schedulers[i].name, cfg->scheduler.type) == 0 && schedulers[i].params)
                return find_prm(schedulers[i].params, name);
        return NULL;
    }
    for (size_t i = 0; i < N_OPTIMIZERS; i++)
        if (cfg->optimizer.type && strcmp(optimizers[i].name, cfg->optimizer.type) == 0)
            return find_prm(optimizers[i].params, name);
    return NULL;
}

bool cfg_param_is_default(const dsc_config_t *cfg, bool scheduler, const dsc_config_param_t *prm) {
    if (prm->source.origin == DSC_CONFIG_DEFAULT) return true;
    const prm_t *d = param_row(cfg, scheduler, prm->name);
    if (!d || (d->flags & PF_REQ)) return false;
    dsc_config_param_t def = {0};
    default_param(d, NULL, &def);
    if (!scheduler && strcmp(prm->name, "weight_decay") == 0 && cfg->optimizer.implementation &&
        strcmp(cfg->optimizer.implementation, "torch.optim.AdamW") == 0)
        def.number = 1e-2;
    if (def.kind != prm->kind) return false;
    switch (prm->kind) {
    case DSC_CONFIG_PARAM_NULL: return true;
    case DSC_CONFIG_PARAM_BOOL: return def.boolean == prm->boolean;
    case DSC_CONFIG_PARAM_NUMBER: return def.number == prm->number;
    case DSC_CONFIG_PARAM_STRING: return def.string && prm->string && strcmp(def.string, prm->string) == 0;
    case DSC_CONFIG_PARAM_LIST:
        if (def.list_len != prm->list_len) return false;
        for (size_t i = 0; i < def.list_len; i++)
            if (!(def.list[i] == prm->list[i] || (isnan(def.list[i]) && isnan(prm->list[i])))) return false;
        return true;
    }
    return false;
}
