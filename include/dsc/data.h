/* dsc/data.h: training data.
 *
 * A character-level text dataset: one or more text files concatenated, a vocabulary of
 * the distinct bytes that occur (sorted, so the same text always gives the same ids),
 * and a train/validation split (the last fraction of the tokens is validation).
 * Batches are windows at positions drawn from a caller-held RNG state, so a resumed
 * run that restores the state draws the same batches.
 */
#ifndef DSC_DATA_H
#define DSC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsc_text_dataset dsc_text_dataset_t;

typedef enum dsc_split { DSC_SPLIT_TRAIN = 0, DSC_SPLIT_VAL = 1 } dsc_split_t;

/* Loads and concatenates `n_paths` files. val_fraction in [0, 0.5]. On failure returns
 * DSC_ERR_IO (message names the file) or DSC_ERR_INVALID (empty text, too short) with the
 * message in err. On success *out is owned by the caller (dsc_text_dataset_free). */
dsc_status_t dsc_text_dataset_load(const char *const *paths, int n_paths, double val_fraction,
                                   dsc_text_dataset_t **out, char *err, size_t errsz);
/* The same from text in memory (copied). */
dsc_status_t dsc_text_dataset_from_text(const char *text, size_t n_bytes, double val_fraction,
                                        dsc_text_dataset_t **out, char *err, size_t errsz);
void dsc_text_dataset_free(dsc_text_dataset_t *ds);

int dsc_text_dataset_vocab_size(const dsc_text_dataset_t *ds);
/* Tokens in a split. */
int64_t dsc_text_dataset_size(const dsc_text_dataset_t *ds, dsc_split_t split);
/* The byte for token id (0 if out of range), and the id of a byte (-1 if not in vocab). */
unsigned char dsc_text_dataset_decode(const dsc_text_dataset_t *ds, int32_t id);
int32_t dsc_text_dataset_encode(const dsc_text_dataset_t *ds, unsigned char byte);

/* Fills x and y (b*t ids each; y is x shifted by one) with b random windows of the split,
 * advancing *rng_state. DSC_ERR_INVALID if the split has fewer than t+1 tokens. */
dsc_status_t dsc_text_dataset_batch(const dsc_text_dataset_t *ds, dsc_split_t split, int b, int t,
                                    uint64_t *rng_state, int32_t *x, int32_t *y);

#ifdef __cplusplus
}
#endif
#endif
