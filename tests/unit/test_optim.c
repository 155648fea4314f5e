/* Optimizer API tests: DeepSpeed name resolution and config rules, defaults, validation
 * messages, the ZeRO compatibility rule, the spec's worked numeric examples (§4.10), error
 * paths, memory accounting, state get/set and exact checkpoint resume for every optimizer.
 * Golden comparisons against torch are in test_optim_golden.c; bitwise determinism across
 * threads and ISA paths in test_optim_determinism.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/optim.h"

static dsc_ctx_t *ctx;

/* ---- names --------------------------------------------------------------------------- */

static void expect_name(const char *name, dsc_optim_type_t want) {
    dsc_optim_type_t t = DSC_OPTIM_TYPE_COUNT;
    char err[256];
    dsc_status_t st = dsc_optim_type_from_name(name, &t, err, sizeof err);
    CHECK_MSG(st == DSC_OK && t == want, "%s -> status %d type %d (%s)", name, (int)st, (int)t, err);
}

static void expect_name_error(const char *name, dsc_status_t want, const char *needle1, const char *needle2) {
    dsc_optim_type_t t;
    char err[512];
    dsc_status_t st = dsc_optim_type_from_name(name, &t, err, sizeof err);
    CHECK_MSG(st == want, "%s -> status %d, want %d", name, (int)st, (int)want);
    CHECK_MSG(strstr(err, needle1) != NULL, "%s: message '%s' lacks '%s'", name, err, needle1);
    if (needle2) CHECK_MSG(strstr(err, needle2) != NULL, "%s: message '%s' lacks '%s'", name, err, needle2);
}

static void test_names(void) {
    expect_name("Adam", DSC_OPTIM_ADAM);
    expect_name("ADAM", DSC_OPTIM_ADAM);
    expect_name("adam", DSC_OPTIM_ADAM);
    expect_name("AdamW", DSC_OPTIM_ADAMW);
    expect_name("adamw", DSC_OPTIM_ADAMW);
    expect_name("Lamb", DSC_OPTIM_LAMB);
    expect_name("LION", DSC_OPTIM_LION);
    expect_name("AdaGrad", DSC_OPTIM_ADAGRAD);
    expect_name("SGD", DSC_OPTIM_SGD);
    expect_name("RMSprop", DSC_OPTIM_RMSPROP);
    expect_name("Adamax", DSC_OPTIM_ADAMAX);
    /* torch names are exact-case */
    expect_name_error("sgd", DSC_ERR_CONFIG, "sgd is not a supported DeepSpeed Optimizer", "did you mean 'SGD'");
    expect_name_error("rmsprop", DSC_ERR_CONFIG, "rmsprop is not a supported DeepSpeed Optimizer", "'RMSprop'");
    expect_name_error("adamax", DSC_ERR_CONFIG, "adamax is not a supported DeepSpeed Optimizer", "'Adamax'");
    expect_name_error("Foo", DSC_ERR_CONFIG, "Foo is not a supported DeepSpeed Optimizer", "Adam, AdamW, Lamb");
    expect_name_error("", DSC_ERR_CONFIG, "is not a supported DeepSpeed Optimizer", NULL);
    /* DeepSpeed names dsc does not implement */
    expect_name_error("OneBitAdam", DSC_ERR_UNSUPPORTED, "not supported by dsc", "supported: Adam, AdamW");
    expect_name_error("ZeroOneAdam", DSC_ERR_UNSUPPORTED, "ZeroOneAdam", "not supported by dsc");
    expect_name_error("OneBitLamb", DSC_ERR_UNSUPPORTED, "OneBitLamb", "not supported by dsc");
    expect_name_error("Muon", DSC_ERR_UNSUPPORTED, "MuonWithAuxAdam", "SGD, RMSprop, Adamax");
    expect_name_error("muadamw", DSC_ERR_UNSUPPORTED, "mup", NULL);
    expect_name_error("NAdam", DSC_ERR_UNSUPPORTED, "torch.optim.NAdam", "not supported by dsc");
    expect_name_error("Adadelta", DSC_ERR_UNSUPPORTED, "torch.optim.Adadelta", NULL);
    dsc_optim_type_t t;
    CHECK(dsc_optim_type_from_name(NULL, &t, NULL, 0) == DSC_ERR_INVALID);
    CHECK(dsc_optim_type_from_name("adam", NULL, NULL, 0) == DSC_ERR_INVALID);
    /* a tiny error buffer is truncated, NUL-terminated */
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(dsc_optim_type_from_name("sgd", &t, small, sizeof small) == DSC_ERR_CONFIG);
    CHECK(small[7] == '\0' && strlen(small) == 7);
    CHECK(strcmp(dsc_optim_type_name(DSC_OPTIM_SGD), "SGD") == 0);
    CHECK(strcmp(dsc_optim_type_name(DSC_OPTIM_ADAMW), "adamw") == 0);
    CHECK(strcmp(dsc_optim_type_name((dsc_optim_type_t)99), "?") == 0);
}

/* ---- defaults and config ------------------------------------------------------------- */

static void test_defaults(void) {
    dsc_optim_params_t p = dsc_optim_default_params(DSC_OPTIM_ADAM);
    CHECK(p.impl == DSC_OPTIM_IMPL_FUSED && p.lr == 1e-3 && p.beta1 == 0.9 && p.beta2 == 0.999 && p.eps == 1e-8);
    CHECK(p.weight_decay == 0.0 && p.bias_correction && p.adam_w_mode && !p.amsgrad);
    CHECK(strcmp(dsc_optim_class_name(&p), "FusedAdam") == 0);
    p = dsc_optim_default_params(DSC_OPTIM_LAMB);
    CHECK(p.max_coeff == 10.0 && p.min_coeff == 0.01 && p.eps == 1e-8 && !p.eps_inside_sqrt && p.bias_correction);
    CHECK(strcmp(dsc_optim_class_name(&p), "FusedLamb") == 0);
    p = dsc_optim_default_params(DSC_OPTIM_LION);
    CHECK(p.lr == 1e-3 && p.beta1 == 0.9 && p.beta2 == 0.999 && p.weight_decay == 0.0);
    CHECK(strcmp(dsc_optim_class_name(&p), "FusedLion") == 0);
    p = dsc_optim_default_params(DSC_OPTIM_ADAGRAD);
    CHECK(p.impl == DSC_OPTIM_IMPL_TORCH && p.lr == 1e-2 && p.eps == 1e-10 && p.lr_decay == 0.0 &&
          p.initial_accumulator_value == 0.0);
    CHECK(strcmp(dsc_optim_class_name(&p), "torch.optim.Adagrad") == 0);
    p = dsc_optim_default_params(DSC_OPTIM_SGD);
    CHECK(p.lr == 1e-3 && p.momentum == 0.0 && p.dampening == 0.0 && !p.nesterov && !p.maximize);
    p = dsc_optim_default_params(DSC_OPTIM_RMSPROP);
    CHECK(p.lr == 1e-2 && p.alpha == 0.99 && p.eps == 1e-8 && !p.centered);
    p = dsc_optim_default_params(DSC_OPTIM_ADAMAX);
    CHECK(p.lr == 2e-3 && p.eps == 1e-8);
    p = dsc_optim_default_params_impl(DSC_OPTIM_ADAMW, DSC_OPTIM_IMPL_TORCH);
    CHECK(p.weight_decay == 1e-2 && strcmp(dsc_optim_class_name(&p), "torch.optim.AdamW") == 0);
    p = dsc_optim_default_params((dsc_optim_type_t)42);
    CHECK(dsc_optim_validate_params(&p, NULL, 0) == DSC_ERR_INVALID);
    /* number of state buffers */
    p = dsc_optim_default_params(DSC_OPTIM_SGD);
    CHECK(dsc_optim_params_num_states(&p) == 0);
    p.momentum = 0.9;
    CHECK(dsc_optim_params_num_states(&p) == 1);
    p = dsc_optim_default_params(DSC_OPTIM_RMSPROP);
    p.momentum = 0.5;
    p.centered = true;
    CHECK(dsc_optim_params_num_states(&p) == 3);
    p = dsc_optim_default_params(DSC_OPTIM_ADAM);
    CHECK(dsc_optim_params_num_states(&p) == 2);
}

static dsc_status_t from_config(const char *type, const dsc_optim_kv_t *kv, size_t n, bool offload,
                                dsc_optim_params_t *out, char *err, size_t errsz) {
    return dsc_optim_params_from_config(type, kv, n, offload, out, err, errsz);
}

static void test_config(void) {
    char err[512];
    dsc_optim_params_t p;
    const double one = 1.0, zero = 0.0, lr = 3e-4, wd = 0.05, betas[2] = {0.8, 0.95}, mgn = 1.0;

    CHECK_OK(from_config("Adam", NULL, 0, false, &p, err, sizeof err));
    CHECK(p.type == DSC_OPTIM_ADAM && p.impl == DSC_OPTIM_IMPL_FUSED && p.adam_w_mode);
    CHECK(strcmp(dsc_optim_class_name(&p), "FusedAdam") == 0);

    dsc_optim_kv_t kv1[] = {{"lr", &lr, 1}, {"betas", betas, 2}, {"weight_decay", &wd, 1}, {"adam_w_mode", &zero, 1}};
    CHECK_OK(from_config("adam", kv1, 4, false, &p, err, sizeof err));
    CHECK(p.lr == lr && p.beta1 == 0.8 && p.beta2 == 0.95 && p.weight_decay == wd && !p.adam_w_mode);
    /* AdamW is always decoupled */
    CHECK_OK(from_config("AdamW", kv1, 4, false, &p, err, sizeof err));
    CHECK(p.type == DSC_OPTIM_ADAMW && p.adam_w_mode);

    /* torch_adam: torch.optim.AdamW (default wd 0.01) unless adam_w_mode false */
    dsc_optim_kv_t kv2[] = {{"torch_adam", &one, 1}};
    CHECK_OK(from_config("Adam", kv2, 1, false, &p, err, sizeof err));
    CHECK(p.impl == DSC_OPTIM_IMPL_TORCH && p.weight_decay == 1e-2);
    CHECK(strcmp(dsc_optim_class_name(&p), "torch.optim.AdamW") == 0);
    dsc_optim_kv_t kv3[] = {{"torch_adam", &one, 1}, {"adam_w_mode", &zero, 1}};
    CHECK_OK(from_config("Adam", kv3, 2, false, &p, err, sizeof err));
    CHECK(p.weight_decay == 0.0 && strcmp(dsc_optim_class_name(&p), "torch.optim.Adam") == 0);

    /* offload picks the DeepSpeedCPU classes */
    CHECK_OK(from_config("Adam", NULL, 0, true, &p, err, sizeof err));
    CHECK(strcmp(dsc_optim_class_name(&p), "DeepSpeedCPUAdam") == 0);
    CHECK_OK(from_config("adagrad", NULL, 0, true, &p, err, sizeof err));
    CHECK(strcmp(dsc_optim_class_name(&p), "DeepSpeedCPUAdagrad") == 0);
    CHECK_OK(from_config("adagrad", NULL, 0, false, &p, err, sizeof err));
    CHECK(strcmp(dsc_optim_class_name(&p), "torch.optim.Adagrad") == 0 && p.lr == 1e-2);
    CHECK_OK(from_config("Lion", NULL, 0, true, &p, err, sizeof err));
    CHECK(strcmp(dsc_optim_class_name(&p), "DeepSpeedCPULion") == 0);
    CHECK_OK(from_config("lamb", NULL, 0, true, &p, err, sizeof err));
    CHECK(strcmp(dsc_optim_class_name(&p), "FusedLamb") == 0);

    /* max_grad_norm: DeepSpeed's message, any type */
    dsc_optim_kv_t kv4[] = {{"lr", &lr, 1}, {"max_grad_norm", &mgn, 1}};
    CHECK(from_config("Lamb", kv4, 2, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strcmp(err, "'max_grad_norm' is not supported as an optimizer parameter, please switch to using the "
                      "deepspeed parameter 'gradient_clipping'") == 0);
    CHECK(from_config("SGD", kv4, 2, false, &p, err, sizeof err) == DSC_ERR_CONFIG);

    /* amsgrad */
    dsc_optim_kv_t kv5[] = {{"amsgrad", &one, 1}};
    CHECK(from_config("Adam", kv5, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strcmp(err, "FusedAdam does not support the AMSGrad variant.") == 0);
    CHECK_OK(from_config("Adam", kv5, 1, true, &p, err, sizeof err)); /* CPU Adam ignores it */
    CHECK(p.amsgrad);
    dsc_optim_kv_t kv6[] = {{"amsgrad", &one, 1}, {"torch_adam", &one, 1}};
    CHECK(from_config("Adam", kv6, 2, false, &p, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    CHECK(strstr(err, "amsgrad") != NULL);
    CHECK(from_config("Lamb", kv5, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "FusedLamb does not support the AMSGrad variant") != NULL);

    /* keys the class's constructor does not take */
    dsc_optim_kv_t kv7[] = {{"foo", &one, 1}};
    CHECK(from_config("Adam", kv7, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strcmp(err, "FusedAdam.__init__() got an unexpected keyword argument 'foo'") == 0);
    dsc_optim_kv_t kv8[] = {{"betas", betas, 2}};
    CHECK(from_config("SGD", kv8, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strcmp(err, "SGD.__init__() got an unexpected keyword argument 'betas'") == 0);
    CHECK(from_config("lamb", kv2, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "FusedLamb.__init__() got an unexpected keyword argument 'torch_adam'") != NULL);
    dsc_optim_kv_t kv9[] = {{"eps", &one, 1}};
    CHECK(from_config("lion", kv9, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "FusedLion.__init__() got an unexpected keyword argument 'eps'") != NULL);
    /* wrong value shapes */
    dsc_optim_kv_t kv10[] = {{"betas", betas, 1}};
    CHECK(from_config("Adam", kv10, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "betas") != NULL);
    dsc_optim_kv_t kv11[] = {{"lr", betas, 2}};
    CHECK(from_config("Adam", kv11, 1, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    /* no-op keys accepted */
    dsc_optim_kv_t kv12[] = {{"set_grad_none", &one, 1}};
    CHECK_OK(from_config("Adam", kv12, 1, false, &p, err, sizeof err));
    dsc_optim_kv_t kv13[] = {{"foreach", &zero, 1}, {"maximize", &one, 1}, {"momentum", &betas[0], 1}};
    CHECK_OK(from_config("SGD", kv13, 3, false, &p, err, sizeof err));
    CHECK(p.maximize && p.momentum == 0.8);

    /* torch validation messages */
    const double neg = -1.0;
    dsc_optim_kv_t kv14[] = {{"lr", &neg, 1}};
    CHECK(from_config("SGD", kv14, 1, false, &p, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(strstr(err, "Invalid learning rate: -1") != NULL);
    dsc_optim_kv_t kv15[] = {{"nesterov", &one, 1}};
    CHECK(from_config("SGD", kv15, 1, false, &p, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(strstr(err, "Nesterov momentum requires a momentum and zero dampening") != NULL);
    const double b_bad[2] = {1.0, 0.9};
    dsc_optim_kv_t kv16[] = {{"betas", b_bad, 2}};
    CHECK(from_config("Adamax", kv16, 1, false, &p, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(strstr(err, "Invalid beta parameter at index 0: 1") != NULL);
    dsc_optim_kv_t kv17[] = {{"weight_decay", &neg, 1}};
    CHECK(from_config("RMSprop", kv17, 1, false, &p, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(strstr(err, "Invalid weight_decay value: -1") != NULL);
    /* FusedAdam takes a negative weight decay as given */
    CHECK_OK(from_config("Adam", kv17, 1, false, &p, err, sizeof err));
    const double nan = NAN;
    dsc_optim_kv_t kv18[] = {{"eps", &nan, 1}};
    CHECK(from_config("Adam", kv18, 1, false, &p, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(from_config("sgd", NULL, 0, false, &p, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(from_config("OneBitAdam", NULL, 0, false, &p, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    CHECK(from_config("Adam", NULL, 1, false, &p, err, sizeof err) == DSC_ERR_INVALID);
}

static void test_zero_rule(void) {
    char err[512];
    dsc_optim_params_t p = dsc_optim_default_params(DSC_OPTIM_ADAM);
    CHECK(dsc_optim_zero_compatible(&p));
    p.impl = DSC_OPTIM_IMPL_DS_CPU;
    CHECK(dsc_optim_zero_compatible(&p));
    p.impl = DSC_OPTIM_IMPL_TORCH;
    CHECK(dsc_optim_zero_compatible(&p));
    p = dsc_optim_default_params(DSC_OPTIM_ADAGRAD);
    CHECK(dsc_optim_zero_compatible(&p));
    p = dsc_optim_default_params(DSC_OPTIM_LION);
    CHECK(dsc_optim_zero_compatible(&p));
    p = dsc_optim_default_params(DSC_OPTIM_SGD);
    CHECK(!dsc_optim_zero_compatible(&p));
    p = dsc_optim_default_params(DSC_OPTIM_RMSPROP);
    CHECK(!dsc_optim_zero_compatible(&p));
    p = dsc_optim_default_params(DSC_OPTIM_LAMB);
    CHECK(!dsc_optim_zero_compatible(&p));
    CHECK(dsc_optim_check_zero(&p, 2, false, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "You are using an untested ZeRO Optimizer. Please add <\"zero_allow_untested_optimizer\": "
                      "true> in the configuration file to use it.") != NULL);
    CHECK_OK(dsc_optim_check_zero(&p, 2, true, err, sizeof err));
    CHECK(strstr(err, "untested optimizer") != NULL);
    CHECK_OK(dsc_optim_check_zero(&p, 0, false, err, sizeof err));
    CHECK(err[0] == '\0');
    p = dsc_optim_default_params(DSC_OPTIM_ADAMW);
    CHECK_OK(dsc_optim_check_zero(&p, 3, false, err, sizeof err));
    CHECK(err[0] == '\0');
}

/* ---- worked examples (spec §4.10) ---------------------------------------------------- */

/* Runs `n_steps` steps of a one-segment optimizer of n elements; returns p after each step. */
static void run_steps(const dsc_optim_params_t *pr, size_t n, const float *p0, const float *grads, int n_steps,
                      float *p_hist, float *s0_hist, float *s1_hist) {
    dsc_optim_t *opt = NULL;
    CHECK_OK(dsc_optim_new(ctx, pr, n, NULL, 0, &opt));
    if (!opt) return;
    float p[8];
    memcpy(p, p0, n * sizeof(float));
    for (int t = 0; t < n_steps; t++) {
        CHECK_OK(dsc_optim_step(opt, p, grads + t * n, 1.0f, DSC_OPTIM_LR_DEFAULT, NULL, DSC_F32));
        memcpy(p_hist + t * n, p, n * sizeof(float));
        if (s0_hist) CHECK_OK(dsc_optim_get_state(opt, 0, 0, n, s0_hist + t * n));
        if (s1_hist) CHECK_OK(dsc_optim_get_state(opt, 1, 0, n, s1_hist + t * n));
    }
    CHECK(dsc_optim_step_count(opt) == n_steps);
    dsc_optim_free(opt);
}

#define TOL 1e-6

static void test_worked_examples(void) {
    const float one = 1.0f, g3[3] = {0.5f, -0.25f, 0.1f};
    float p[3], m[3], v[3];

    /* Adam family, lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01 */
    dsc_optim_params_t pr = dsc_optim_default_params(DSC_OPTIM_ADAMW);
    pr.weight_decay = 0.01;
    run_steps(&pr, 1, &one, g3, 3, p, m, v);
    const double adamw[3] = {0.99899000002, 0.9987136730871, 0.9983884423935};
    for (int t = 0; t < 3; t++) CHECK_MSG(check_close(p[t], adamw[t], TOL, 0), "AdamW t=%d %.10g", t + 1, p[t]);
    CHECK(check_close(m[0], 0.05, TOL, 0) && check_close(v[0], 2.5e-4, TOL, 0));
    CHECK(check_close(m[1], 0.02, TOL, 0) && check_close(v[1], 3.12250e-4, TOL, 0));
    pr = dsc_optim_default_params(DSC_OPTIM_ADAM);
    pr.weight_decay = 0.01;
    pr.adam_w_mode = false;
    run_steps(&pr, 1, &one, g3, 3, p, NULL, NULL);
    const double l2[3] = {0.9990000000196, 0.9987107702255, 0.9983688876432};
    for (int t = 0; t < 3; t++) CHECK_MSG(check_close(p[t], l2[t], TOL, 0), "L2 Adam t=%d %.10g", t + 1, p[t]);
    /* the same with DeepSpeedCPUAdam and torch semantics */
    pr.impl = DSC_OPTIM_IMPL_DS_CPU;
    run_steps(&pr, 1, &one, g3, 3, p, NULL, NULL);
    for (int t = 0; t < 3; t++) CHECK(check_close(p[t], l2[t], TOL, 0));
    pr = dsc_optim_default_params_impl(DSC_OPTIM_ADAMW, DSC_OPTIM_IMPL_TORCH);
    run_steps(&pr, 1, &one, g3, 3, p, NULL, NULL);
    for (int t = 0; t < 3; t++) CHECK(check_close(p[t], adamw[t], TOL, 0));

    /* Lion (GPU sign rule), lr 1e-3, betas (0.9, 0.99), wd 0.1 */
    const float gl[3] = {0.5f, -0.25f, 0.0f};
    pr = dsc_optim_default_params(DSC_OPTIM_LION);
    pr.beta2 = 0.99;
    pr.weight_decay = 0.1;
    run_steps(&pr, 1, &one, gl, 3, p, m, NULL);
    const double lion_p[3] = {0.9989, 0.99980011, 0.998700129989}, lion_m[3] = {0.005, 0.00245, 0.0024255};
    for (int t = 0; t < 3; t++) {
        CHECK_MSG(check_close(p[t], lion_p[t], TOL, 0), "Lion p t=%d %.10g", t + 1, p[t]);
        CHECK_MSG(check_close(m[t], lion_m[t], TOL, 0), "Lion m t=%d %.10g", t + 1, m[t]);
    }
    pr.impl = DSC_OPTIM_IMPL_DS_CPU; /* same here: no c = 0 */
    run_steps(&pr, 1, &one, gl, 3, p, m, NULL);
    for (int t = 0; t < 3; t++) CHECK(check_close(p[t], lion_p[t], TOL, 0));

    /* Adagrad, lr 1e-2, eps 1e-10, wd 0.1 */
    pr = dsc_optim_default_params(DSC_OPTIM_ADAGRAD);
    pr.weight_decay = 0.1;
    pr.impl = DSC_OPTIM_IMPL_DS_CPU;
    run_steps(&pr, 1, &one, gl, 2, p, v, NULL);
    CHECK_MSG(check_close(p[0], 0.9916666666681, TOL, 0), "%.10g", p[0]);
    CHECK_MSG(check_close(p[1], 0.9957076030659, TOL, 0), "%.10g", p[1]);
    CHECK(check_close(v[0], 0.36, TOL, 0) && check_close(v[1], 0.38275069, TOL, 0));
    pr.impl = DSC_OPTIM_IMPL_TORCH;
    run_steps(&pr, 1, &one, gl, 2, p, v, NULL);
    CHECK_MSG(check_close(p[0], 0.9900000000017, TOL, 0), "%.10g", p[0]);
    CHECK_MSG(check_close(p[1], 0.9924405652075, TOL, 0), "%.10g", p[1]);
    CHECK(check_close(v[0], 0.36, TOL, 0) && check_close(v[1], 0.382801, TOL, 0));

    /* FusedLamb, lr 1e-3, wd 0.01, p0 [1, -2], grads [0.5, 0.1] then [-0.25, 0.2] */
    pr = dsc_optim_default_params(DSC_OPTIM_LAMB);
    pr.weight_decay = 0.01;
    const float lp0[2] = {1.0f, -2.0f}, lg[4] = {0.5f, 0.1f, -0.25f, 0.2f};
    dsc_optim_t *opt = NULL;
    CHECK_OK(dsc_optim_new(ctx, &pr, 2, NULL, 0, &opt));
    if (opt) {
        float lp[2] = {lp0[0], lp0[1]}, r;
        CHECK(dsc_optim_lamb_coeffs(opt, &r, 1) == DSC_ERR_MISUSE);
        dsc_ctx_clear_error(ctx);
        CHECK_OK(dsc_optim_step(opt, lp, lg, 1.0f, DSC_OPTIM_LR_DEFAULT, NULL, DSC_F32));
        CHECK_OK(dsc_optim_lamb_coeffs(opt, &r, 1));
        CHECK_MSG(check_close(r, 0.50079, 1e-5, 0), "lamb r1 %.8g", r);
        CHECK_MSG(check_close(lp[0], 0.99949763, TOL, 0) && check_close(lp[1], -2.00049762, TOL, 0), "%.10g %.10g",
                  lp[0], lp[1]);
        CHECK_OK(dsc_optim_step(opt, lp, lg + 2, 1.0f, DSC_OPTIM_LR_DEFAULT, NULL, DSC_F32));
        CHECK_OK(dsc_optim_lamb_coeffs(opt, &r, 1));
        CHECK_MSG(check_close(r, 0.52764, 1e-5, 0), "lamb r2 %.8g", r);
        CHECK_MSG(check_close(lp[0], 0.99935586, TOL, 0) && check_close(lp[1], -2.00100440, TOL, 0), "%.10g %.10g",
                  lp[0], lp[1]);
        dsc_optim_free(opt);
    }

    /* torch SGD, lr 0.1, momentum 0.9, dampening 0.1, wd 0.01 */
    pr = dsc_optim_default_params(DSC_OPTIM_SGD);
    pr.lr = 0.1;
    pr.momentum = 0.9;
    pr.dampening = 0.1;
    pr.weight_decay = 0.01;
    run_steps(&pr, 1, &one, g3, 3, p, m, NULL);
    const double sgd_p[3] = {0.949, 0.9247459, 0.89308494}, sgd_b[3] = {0.51, 0.242541, 0.31660961};
    for (int t = 0; t < 3; t++) {
        CHECK_MSG(check_close(p[t], sgd_p[t], TOL, 0), "SGD p t=%d %.10g", t + 1, p[t]);
        CHECK_MSG(check_close(m[t], sgd_b[t], TOL, 0), "SGD buf t=%d %.10g", t + 1, m[t]);
    }
    pr.dampening = 0.0;
    pr.weight_decay = 0.0;
    pr.nesterov = true;
    run_steps(&pr, 1, &one, g3, 3, p, NULL, NULL);
    const double nest[3] = {0.905, 0.912, 0.8768};
    for (int t = 0; t < 3; t++) CHECK_MSG(check_close(p[t], nest[t], TOL, 0), "Nesterov t=%d %.10g", t + 1, p[t]);
}

/* ---- errors, memory, state ----------------------------------------------------------- */

static void test_errors(void) {
    dsc_optim_params_t pr = dsc_optim_default_params(DSC_OPTIM_ADAM);
    dsc_optim_t *opt = NULL;
    CHECK(dsc_optim_new(NULL, &pr, 4, NULL, 0, &opt) == DSC_ERR_INVALID);
    CHECK(dsc_optim_new(ctx, NULL, 4, NULL, 0, &opt) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_new(ctx, &pr, 0, NULL, 0, &opt) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "empty partition") != NULL);
    dsc_ctx_clear_error(ctx);
    dsc_optim_segment_t gap[2] = {{0, 2}, {3, 1}}, shortseg[1] = {{0, 3}}, over[2] = {{0, 3}, {2, 2}};
    CHECK(dsc_optim_new(ctx, &pr, 4, gap, 2, &opt) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "segment 1") != NULL);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_new(ctx, &pr, 4, shortseg, 1, &opt) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_new(ctx, &pr, 4, over, 2, &opt) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_new(ctx, &pr, 4, NULL, 2, &opt) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    pr.amsgrad = true;
    CHECK(dsc_optim_new(ctx, &pr, 4, NULL, 0, &opt) == DSC_ERR_CONFIG);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "AMSGrad") != NULL);
    dsc_ctx_clear_error(ctx);
    CHECK(opt == NULL);

    pr = dsc_optim_default_params(DSC_OPTIM_ADAM);
    dsc_optim_segment_t segs[3] = {{0, 1}, {1, 0}, {1, 3}};
    CHECK_OK(dsc_optim_new(ctx, &pr, 4, segs, 3, &opt));
    if (!opt) return;
    CHECK(dsc_optim_num_segments(opt) == 3 && dsc_optim_numel(opt) == 4);
    float p[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1};
    uint16_t h[4];
    CHECK(dsc_optim_step(NULL, p, g, 1, 1e-3, NULL, DSC_F32) == DSC_ERR_INVALID);
    CHECK(dsc_optim_step(opt, NULL, g, 1, 1e-3, NULL, DSC_F32) == DSC_ERR_INVALID);
    CHECK(dsc_optim_step(opt, p, NULL, 1, 1e-3, NULL, DSC_F32) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_step(opt, p, g, 1, 1e-3, h, DSC_F32) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "bf16 or f16") != NULL);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_step(opt, p, g, 1, -0.5, NULL, DSC_F32) == DSC_ERR_INVALID);
    CHECK(dsc_optim_step(opt, p, g, 1, NAN, NULL, DSC_F32) == DSC_ERR_INVALID);
    CHECK(dsc_optim_step(opt, p, g, INFINITY, 1e-3, NULL, DSC_F32) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_step_count(opt) == 0 && p[0] == 1.0f); /* nothing happened */
    float buf[4];
    CHECK(dsc_optim_get_state(opt, 2, 0, 1, buf) == DSC_ERR_INVALID);
    CHECK(dsc_optim_get_state(opt, -1, 0, 1, buf) == DSC_ERR_INVALID);
    CHECK(dsc_optim_get_state(opt, 0, 3, 2, buf) == DSC_ERR_INVALID);
    CHECK(dsc_optim_get_state(opt, 0, 5, 0, buf) == DSC_ERR_INVALID);
    CHECK(dsc_optim_get_state(opt, 0, 0, 1, NULL) == DSC_ERR_INVALID);
    CHECK(dsc_optim_set_state(opt, 1, 0, 5, buf) == DSC_ERR_INVALID);
    CHECK_OK(dsc_optim_get_state(opt, 1, 4, 0, NULL));
    CHECK(dsc_optim_set_step_count(opt, -1) == DSC_ERR_INVALID);
    CHECK(dsc_optim_set_threads(opt, -2) == DSC_ERR_INVALID);
    float r;
    CHECK(dsc_optim_lamb_coeffs(opt, &r, 1) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_optim_state_name(opt, 0) && strcmp(dsc_optim_state_name(opt, 0), "exp_avg") == 0);
    CHECK(dsc_optim_state_name(opt, 1) && strcmp(dsc_optim_state_name(opt, 1), "exp_avg_sq") == 0);
    CHECK(dsc_optim_state_name(opt, 2) == NULL && dsc_optim_state_index(opt, "exp_avg_sq") == 1);
    CHECK(dsc_optim_state_index(opt, "sum") == -1 && dsc_optim_state_data(opt, 2) == NULL);
    /* set_params: class and state layout are fixed */
    dsc_optim_params_t np = *dsc_optim_get_params(opt);
    np.beta1 = 0.85;
    CHECK_OK(dsc_optim_set_params(opt, &np));
    CHECK(dsc_optim_get_params(opt)->beta1 == 0.85);
    np.type = DSC_OPTIM_LAMB;
    CHECK(dsc_optim_set_params(opt, &np) == DSC_ERR_INVALID);
    np = *dsc_optim_get_params(opt);
    np.impl = DSC_OPTIM_IMPL_TORCH;
    CHECK(dsc_optim_set_params(opt, &np) == DSC_ERR_INVALID);
    np = *dsc_optim_get_params(opt);
    np.eps = NAN;
    CHECK(dsc_optim_set_params(opt, &np) == DSC_ERR_INVALID);
    CHECK(dsc_optim_set_params(opt, NULL) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    dsc_optim_free(opt);
    dsc_optim_free(NULL);

    pr = dsc_optim_default_params(DSC_OPTIM_SGD);
    pr.momentum = 0.9;
    CHECK_OK(dsc_optim_new(ctx, &pr, 4, NULL, 0, &opt));
    if (opt) {
        np = pr;
        np.momentum = 0.0;
        CHECK(dsc_optim_set_params(opt, &np) == DSC_ERR_INVALID);
        np.momentum = 0.5;
        CHECK_OK(dsc_optim_set_params(opt, &np));
        dsc_ctx_clear_error(ctx);
        dsc_optim_free(opt);
    }
}

static void test_memory(void) {
    const size_t n = 1000;
    dsc_mem_stats_t before = dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM);
    dsc_mem_stats_t before_other = dsc_ctx_mem_stats(ctx, DSC_MEM_OTHER);
    const dsc_optim_type_t types[] = {DSC_OPTIM_ADAM, DSC_OPTIM_LION, DSC_OPTIM_SGD, DSC_OPTIM_LAMB};
    const size_t want_states[] = {2, 1, 0, 2};
    for (int i = 0; i < 4; i++) {
        dsc_optim_params_t pr = dsc_optim_default_params(types[i]);
        dsc_optim_t *opt = NULL;
        CHECK_OK(dsc_optim_new(ctx, &pr, n, NULL, 0, &opt));
        dsc_mem_stats_t s = dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM);
        CHECK_MSG(s.live_bytes - before.live_bytes == want_states[i] * n * sizeof(float), "%s: %zu bytes",
                  dsc_optim_type_name(types[i]), s.live_bytes - before.live_bytes);
        CHECK(dsc_optim_num_states(opt) == (int)want_states[i]);
        dsc_optim_free(opt);
        CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM).live_bytes == before.live_bytes);
        CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_OTHER).live_bytes == before_other.live_bytes);
    }
    /* Adagrad's sum starts at initial_accumulator_value */
    dsc_optim_params_t pr = dsc_optim_default_params(DSC_OPTIM_ADAGRAD);
    pr.initial_accumulator_value = 0.25;
    dsc_optim_t *opt = NULL;
    CHECK_OK(dsc_optim_new(ctx, &pr, 5, NULL, 0, &opt));
    if (opt) {
        float sum[5] = {0};
        CHECK_OK(dsc_optim_get_state(opt, 0, 0, 5, sum));
        for (int i = 0; i < 5; i++) CHECK(sum[i] == 0.25f);
        CHECK(strcmp(dsc_optim_state_name(opt, 0), "sum") == 0);
        dsc_optim_free(opt);
    }
}

/* A config per kernel variant, shared by the resume test. */
static int make_config(int i, dsc_optim_params_t *pr) {
    switch (i) {
    case 0: *pr = dsc_optim_default_params(DSC_OPTIM_ADAM); pr->weight_decay = 0.01; return 1;
    case 1: *pr = dsc_optim_default_params(DSC_OPTIM_ADAM); pr->adam_w_mode = false; pr->weight_decay = 0.01; return 1;
    case 2: *pr = dsc_optim_default_params(DSC_OPTIM_LAMB); pr->weight_decay = 0.01; return 1;
    case 3: *pr = dsc_optim_default_params(DSC_OPTIM_LION); pr->weight_decay = 0.1; return 1;
    case 4: *pr = dsc_optim_default_params(DSC_OPTIM_ADAGRAD); pr->lr_decay = 0.1; return 1;
    case 5: *pr = dsc_optim_default_params(DSC_OPTIM_SGD); pr->momentum = 0.9; pr->nesterov = true; return 1;
    case 6: *pr = dsc_optim_default_params(DSC_OPTIM_RMSPROP); pr->momentum = 0.5; pr->centered = true; return 1;
    case 7: *pr = dsc_optim_default_params(DSC_OPTIM_ADAMAX); pr->weight_decay = 0.01; return 1;
    case 8: *pr = dsc_optim_default_params(DSC_OPTIM_SGD); pr->lr = 0.1; return 1;
    default: return 0;
    }
}

/* Stepping 6 times equals stepping 3 times, saving the state and step count, loading them
 * into a fresh optimizer and stepping 3 more: bitwise. */
static void test_resume(void) {
    enum { N = 37, STEPS = 6 };
    float p0[N], grads[STEPS][N];
    for (int i = 0; i < N; i++) {
        p0[i] = (float)dsc_ctx_rand_normal(ctx);
        for (int t = 0; t < STEPS; t++) grads[t][i] = (float)dsc_ctx_rand_normal(ctx);
    }
    dsc_optim_params_t pr;
    for (int c = 0; make_config(c, &pr); c++) {
        const dsc_optim_segment_t segs[2] = {{0, 20}, {20, N - 20}};
        dsc_optim_t *a = NULL, *b = NULL;
        CHECK_OK(dsc_optim_new(ctx, &pr, N, segs, 2, &a));
        CHECK_OK(dsc_optim_new(ctx, &pr, N, segs, 2, &b));
        if (!a || !b) {
            dsc_optim_free(a);
            dsc_optim_free(b);
            continue;
        }
        float pa[N], pb[N];
        memcpy(pa, p0, sizeof pa);
        for (int t = 0; t < STEPS; t++) {
            CHECK_OK(dsc_optim_step(a, pa, grads[t], 1.0f, DSC_OPTIM_LR_DEFAULT, NULL, DSC_F32));
            if (t == STEPS / 2 - 1) {
                memcpy(pb, pa, sizeof pb);
                CHECK_OK(dsc_optim_set_step_count(b, dsc_optim_step_count(a)));
                for (int s = 0; s < dsc_optim_num_states(a); s++) {
                    float tmp[N];
                    CHECK_OK(dsc_optim_get_state(a, s, 0, 10, tmp));
                    CHECK_OK(dsc_optim_get_state(a, s, 10, N - 10, tmp + 10));
                    CHECK_OK(dsc_optim_set_state(b, s, 0, 25, tmp));
                    CHECK_OK(dsc_optim_set_state(b, s, 25, N - 25, tmp + 25));
                }
            }
        }
        for (int t = STEPS / 2; t < STEPS; t++)
            CHECK_OK(dsc_optim_step(b, pb, grads[t], 1.0f, pr.lr, NULL, DSC_F32)); /* explicit lr == default */
        CHECK_MSG(memcmp(pa, pb, sizeof pa) == 0, "resume differs for %s", dsc_optim_class_name(&pr));
        for (int s = 0; s < dsc_optim_num_states(a); s++) {
            float sa[N], sb[N];
            CHECK_OK(dsc_optim_get_state(a, s, 0, N, sa));
            CHECK_OK(dsc_optim_get_state(b, s, 0, N, sb));
            CHECK_MSG(memcmp(sa, sb, N * sizeof(float)) == 0, "resume state %d differs for %s", s,
                      dsc_optim_class_name(&pr));
        }
        CHECK(dsc_optim_step_count(a) == STEPS && dsc_optim_step_count(b) == STEPS);
        dsc_optim_free(a);
        dsc_optim_free(b);
    }
}

/* Semantics corner cases that the golden files do not pin down. */
static void test_semantics(void) {
    enum { N = 40 };
    float p0[N], g[N];
    for (int i = 0; i < N; i++) {
        p0[i] = (float)dsc_ctx_rand_normal(ctx);
        g[i] = (float)dsc_ctx_rand_normal(ctx);
    }
    /* DeepSpeedCPUAdam ignores a negative weight decay; FusedAdam applies it. */
    float pa[N], pb[N], pc[N];
    dsc_optim_params_t pr = dsc_optim_default_params(DSC_OPTIM_ADAM);
    pr.impl = DSC_OPTIM_IMPL_DS_CPU;
    pr.weight_decay = -0.1;
    dsc_optim_params_t pz = pr;
    pz.weight_decay = 0.0;
    dsc_optim_params_t pf = pr;
    pf.impl = DSC_OPTIM_IMPL_FUSED;
    dsc_optim_t *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(dsc_optim_new(ctx, &pr, N, NULL, 0, &a));
    CHECK_OK(dsc_optim_new(ctx, &pz, N, NULL, 0, &b));
    CHECK_OK(dsc_optim_new(ctx, &pf, N, NULL, 0, &c));
    memcpy(pa, p0, sizeof pa);
    memcpy(pb, p0, sizeof pb);
    memcpy(pc, p0, sizeof pc);
    for (int t = 0; t < 3; t++) {
        CHECK_OK(dsc_optim_step(a, pa, g, 1.0f, 0.01, NULL, DSC_F32));
        CHECK_OK(dsc_optim_step(b, pb, g, 1.0f, 0.01, NULL, DSC_F32));
        CHECK_OK(dsc_optim_step(c, pc, g, 1.0f, 0.01, NULL, DSC_F32));
    }
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    CHECK(memcmp(pa, pc, sizeof pa) != 0);
    dsc_optim_free(a);
    dsc_optim_free(b);
    dsc_optim_free(c);

    /* Lion's sign at c == 0: FusedLion adds +lr, DeepSpeedCPULion subtracts copysign(lr, c). */
    pr = dsc_optim_default_params(DSC_OPTIM_LION);
    float pl[3] = {1.0f, 1.0f, 1.0f}, gz[3] = {0.0f, -0.0f, 1.0f};
    CHECK_OK(dsc_optim_new(ctx, &pr, 3, NULL, 0, &a));
    CHECK_OK(dsc_optim_step(a, pl, gz, 1.0f, 0.5, NULL, DSC_F32));
    CHECK(pl[0] == 1.5f && pl[1] == 1.5f && pl[2] == 0.5f);
    dsc_optim_free(a);
    pr.impl = DSC_OPTIM_IMPL_DS_CPU;
    float pm[3] = {1.0f, 1.0f, 1.0f};
    CHECK_OK(dsc_optim_new(ctx, &pr, 3, NULL, 0, &a));
    const float mneg[3] = {0.0f, -0.0f, 0.0f};
    CHECK_OK(dsc_optim_set_state(a, 0, 0, 3, mneg));
    CHECK_OK(dsc_optim_step(a, pm, gz, 1.0f, 0.5, NULL, DSC_F32));
    /* c = 0.9*m + 0.1*g: +0 + +0 = +0 -> -lr; -0 + -0 = -0 -> +lr */
    CHECK(pm[0] == 0.5f && pm[1] == 1.5f && pm[2] == 0.5f);
    dsc_optim_free(a);

    /* SGD with momentum: the first step's buffer is the gradient itself (no dampening). */
    pr = dsc_optim_default_params(DSC_OPTIM_SGD);
    pr.momentum = 0.9;
    pr.dampening = 0.5;
    CHECK_OK(dsc_optim_new(ctx, &pr, N, NULL, 0, &a));
    memcpy(pa, p0, sizeof pa);
    CHECK_OK(dsc_optim_step(a, pa, g, 2.0f, 0.1, NULL, DSC_F32));
    float buf[N];
    CHECK_OK(dsc_optim_get_state(a, 0, 0, N, buf));
    int same = 1;
    for (int i = 0; i < N; i++) same &= buf[i] == g[i] * 2.0f && pa[i] == p0[i] + (-0.1f) * (g[i] * 2.0f);
    CHECK(same);
    dsc_optim_free(a);

    /* maximize is gradient negation (torch): equal to stepping on -g. */
    pr = dsc_optim_default_params(DSC_OPTIM_RMSPROP);
    pr.maximize = true;
    pz = pr;
    pz.maximize = false;
    float gneg[N];
    for (int i = 0; i < N; i++) gneg[i] = -g[i];
    CHECK_OK(dsc_optim_new(ctx, &pr, N, NULL, 0, &a));
    CHECK_OK(dsc_optim_new(ctx, &pz, N, NULL, 0, &b));
    memcpy(pa, p0, sizeof pa);
    memcpy(pb, p0, sizeof pb);
    for (int t = 0; t < 2; t++) {
        CHECK_OK(dsc_optim_step(a, pa, g, 1.0f, DSC_OPTIM_LR_DEFAULT, NULL, DSC_F32));
        CHECK_OK(dsc_optim_step(b, pb, gneg, 1.0f, DSC_OPTIM_LR_DEFAULT, NULL, DSC_F32));
    }
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    dsc_optim_free(a);
    dsc_optim_free(b);

    /* Lamb: a zero segment (||p|| = 0) and an empty one have ratio 1; coefficients per segment. */
    pr = dsc_optim_default_params(DSC_OPTIM_LAMB);
    const dsc_optim_segment_t segs[3] = {{0, 10}, {10, 0}, {10, 30}};
    CHECK_OK(dsc_optim_new(ctx, &pr, N, segs, 3, &a));
    memcpy(pa, p0, sizeof pa);
    for (int i = 0; i < 10; i++) pa[i] = 0.0f;
    CHECK_OK(dsc_optim_step(a, pa, g, 1.0f, DSC_OPTIM_LR_DEFAULT, NULL, DSC_F32));
    float r[3] = {-1, -1, -1};
    CHECK_OK(dsc_optim_lamb_coeffs(a, r, 3));
    CHECK(r[0] == 1.0f && r[1] == 1.0f && r[2] > 0.01f && r[2] < 10.0f);
    dsc_optim_free(a);
}

int main(void) {
    ctx = check_ctx_new(7);
    test_names();
    test_defaults();
    test_config();
    test_zero_rule();
    test_worked_examples();
    test_errors();
    test_memory();
    test_resume();
    test_semantics();
    dsc_ctx_free(ctx);
    return check_finish("test_optim");
}
