/* The README's library example, complete: a tiny GPT trained through the engine with a
 * DeepSpeed config given as text (pass a file path as argv[1] to use a file instead). */
#include <stdio.h>

#include "dsc/dsc.h"

int main(int argc, char **argv) {
    dsc_ctx_t *ctx;
    if (dsc_ctx_new(NULL, &ctx) != DSC_OK) return 1;
    dsc_gpt_config_t cfg = DSC_GPT_CONFIG_TINY;
    dsc_gpt_t *gpt;
    if (dsc_gpt_new(ctx, &cfg, &gpt) != DSC_OK) return 1;

    dsc_engine_options_t opts = DSC_ENGINE_OPTIONS_INIT;
    if (argc > 1)
        opts.config_path = argv[1];
    else
        opts.config_json = "{\"train_batch_size\": 8, \"gradient_accumulation_steps\": 2, \"bf16\": {\"enabled\": true},"
                           " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.003}}}";
    dsc_initialize_result_t init;
    char err[1024];
    if (dsc_initialize(gpt->model, &opts, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    enum { B = 4, T = 32 };
    int32_t tokens[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) { /* a sequence with structure to learn: next = 3 * token + 1 mod 65 */
        tokens[i] = (i * 7) % 65;
        targets[i] = (tokens[i] * 3 + 1) % 65;
    }
    double first = 0, last = 0;
    for (int micro = 0; micro < 60; micro++) { /* per micro-batch */
        dsc_tensor_t *loss;
        if (dsc_gpt_forward(ctx, gpt, tokens, targets, B, T, NULL, &loss) != DSC_OK ||
            dsc_backward(init.engine, loss) != DSC_OK || dsc_step(init.engine) != DSC_OK) {
            fprintf(stderr, "%s\n", dsc_engine_errmsg(init.engine));
            return 1;
        }
        last = dsc_engine_last_loss(init.engine);
        if (micro == 0) first = last;
    }
    printf("train_gpt: %lld optimizer steps, loss %.4f -> %.4f\n", (long long)dsc_engine_global_steps(init.engine), first,
           last);
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    return last < first / 2 ? 0 : 1;
}
