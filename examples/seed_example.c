/* The C twin of DeepSpeed's optimizer-tutorial seed program:
 *
 *     model = Linear(10, 1)
 *     ds_config = {"train_batch_size": 8, "gradient_accumulation_steps": 2,
 *                  "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
 *                  "zero_optimization": {"stage": 1}}
 *     engine = initialize(model, ds_config)
 *     inputs = randn(8, 10); outputs = engine(inputs); loss = outputs.mean()
 *     engine.backward(loss); engine.step()
 *
 * On one rank this config means a micro batch of 4 rows and two micro-steps per update
 * (8 = 4 x 2 x 1). dsc, like DeepSpeed, does not look at how many rows a forward pass
 * gets: this forward uses all 8 rows, the loss is their mean, and backward scales its
 * gradient by 1/2 (one of two accumulation steps). So this single step() is not an
 * accumulation boundary and does not update the weights; a second forward/backward/step
 * would. The program runs both and prints what happened. */
#include <stdio.h>

#include "dsc/dsc.h"

int main(void) {
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(NULL, &ctx) != DSC_OK) return 1;
    dsc_model_t *model = NULL;
    dsc_linear_t linear;
    dsc_model_new(ctx, &model);
    dsc_linear_init(model, &linear, "linear", 10, 1, true, 0); /* torch.nn.Linear(10, 1) init */

    const char *ds_config = "{\"train_batch_size\": 8, \"gradient_accumulation_steps\": 2,"
                            " \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.001}},"
                            " \"zero_optimization\": {\"stage\": 1}}";
    dsc_engine_options_t options = DSC_ENGINE_OPTIONS_INIT;
    options.config_json = ds_config;
    dsc_initialize_result_t init;
    char err[1024];
    if (dsc_initialize(model, &options, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "seed_example: %s\n", err);
        return 1;
    }
    dsc_engine_t *engine = init.engine;
    printf("engine initialised: world_size=%d train_batch_size=%d micro_batch=%d gradient_accumulation_steps=%d\n",
           dsc_engine_world_size(engine), dsc_engine_train_batch_size(engine), dsc_engine_micro_batch_size(engine),
           dsc_engine_gradient_accumulation_steps(engine));

    /* Tensor data lives on the context's device: read it through a host copy. */
    float w_before = 0, w_after = 0;
    dsc_tensor_to_host(ctx, linear.weight, &w_before, sizeof w_before);
    for (int pass = 1; pass <= 2; pass++) {
        dsc_tensor_t *inputs = dsc_tensor_new_2d(ctx, DSC_F32, 8, 10);
        dsc_tensor_fill_normal(ctx, inputs, 1.0); /* randn(8, 10) */
        printf("pass %d: input shape (%lld, %lld)\n", pass, (long long)dsc_tensor_dim(inputs, 0),
               (long long)dsc_tensor_dim(inputs, 1));
        dsc_tensor_t *outputs = dsc_linear_forward(ctx, &linear, inputs);
        dsc_tensor_t *loss = dsc_mean(ctx, outputs);
        printf("pass %d: forward done, output shape (%lld, %lld), loss %.6f\n", pass, (long long)dsc_tensor_dim(outputs, 0),
               (long long)dsc_tensor_dim(outputs, 1), dsc_tensor_item(loss));
        int boundary = dsc_is_gradient_accumulation_boundary(engine);
        if (dsc_backward(engine, loss) != DSC_OK || dsc_step(engine) != DSC_OK) {
            fprintf(stderr, "seed_example: %s\n", dsc_engine_errmsg(engine));
            return 1;
        }
        printf("pass %d: backward and step done (accumulation boundary: %s, global_steps=%lld, micro_steps=%lld)\n",
               pass, boundary ? "yes" : "no", (long long)dsc_engine_global_steps(engine),
               (long long)dsc_engine_micro_steps(engine));
    }
    dsc_tensor_to_host(ctx, linear.weight, &w_after, sizeof w_after);
    printf("weights updated: %s (linear.weight[0] %.6f -> %.6f)\n", w_after != w_before ? "yes" : "no", w_before, w_after);
    dsc_engine_free(engine);
    dsc_model_free(model);
    dsc_ctx_free(ctx);
    return 0;
}
