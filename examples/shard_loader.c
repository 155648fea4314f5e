/* Reads batches from llm.c token shards the way a training loop does, saves the position
 * after a few steps and resumes from it in a new loader (docs/data.md).
 * Usage: shard_loader 'data/tiny_train_*.bin' [B T] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/shards.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATTERN [B T]\n", argv[0]);
        return 2;
    }
    int B = argc > 3 ? atoi(argv[2]) : 2, T = argc > 3 ? atoi(argv[3]) : 8;
    char err[512];
    dsc_shard_loader_t *train = NULL;
    if (dsc_shard_loader_new(argv[1], B, T, 0, 1, 1337, &train, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int32_t max = 0;
    if (dsc_shards_check_vocab(dsc_shard_loader_shards(train), 50257, &max, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "%s\n", err);
        dsc_shard_loader_free(train);
        return 1;
    }
    printf("%d shards, %lld tokens, %lld windows, %lld batches per epoch, max token %d\n",
           dsc_shards_count(dsc_shard_loader_shards(train)), (long long)dsc_shards_tokens(dsc_shard_loader_shards(train)),
           (long long)dsc_shard_loader_windows(train), (long long)dsc_shard_loader_batches_per_epoch(train), max);
    int32_t *x = malloc(sizeof(int32_t) * B * T), *y = malloc(sizeof(int32_t) * B * T);
    int32_t *x2 = malloc(sizeof(int32_t) * B * T), *y2 = malloc(sizeof(int32_t) * B * T);
    dsc_sampler_state_t st;
    int rc = 0;
    for (int step = 0; step < 3 && x && y; step++) {
        if (dsc_shard_loader_next(train, x, y) != DSC_OK) {
            fprintf(stderr, "%s\n", dsc_shard_loader_errmsg(train));
            rc = 1;
            break;
        }
        printf("step %d: x[0] = %d, y[0] = %d\n", step, x[0], y[0]);
    }
    dsc_shard_loader_state_get(train, &st); /* what a checkpoint stores */
    printf("position: epoch %lld, index %lld\n", (long long)st.epoch, (long long)st.index);
    dsc_shard_loader_t *resumed = NULL;
    if (rc == 0 && x2 && y2 && dsc_shard_loader_new(argv[1], B, T, 0, 1, 1337, &resumed, err, sizeof err) == DSC_OK &&
        dsc_shard_loader_state_set(resumed, &st) == DSC_OK && dsc_shard_loader_next(train, x, y) == DSC_OK &&
        dsc_shard_loader_next(resumed, x2, y2) == DSC_OK)
        printf("resumed batch %s the uninterrupted one\n", memcmp(x, x2, sizeof(int32_t) * B * T) ? "differs from" : "equals");
    dsc_shard_loader_free(resumed);
    dsc_shard_loader_free(train);
    free(x), free(y), free(x2), free(y2);
    return rc;
}
