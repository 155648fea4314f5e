/* The character-level text dataset: vocabulary, split, batches and their determinism. */
#include <string.h>

#include "check.h"

int main(void) {
    const char *text = "hello world, hello dsc!\n";
    size_t n = strlen(text);
    dsc_text_dataset_t *ds = NULL;
    char err[256];
    CHECK_OK(dsc_text_dataset_from_text(text, n, 0.25, &ds, err, sizeof err));
    /* Distinct bytes: "\n !,cdehlorsw" = 13, sorted. */
    CHECK(dsc_text_dataset_vocab_size(ds) == 13);
    CHECK(dsc_text_dataset_decode(ds, 0) == '\n' && dsc_text_dataset_decode(ds, 1) == ' ');
    CHECK(dsc_text_dataset_encode(ds, 'w') == 12 && dsc_text_dataset_encode(ds, 'z') == -1);
    CHECK(dsc_text_dataset_size(ds, DSC_SPLIT_TRAIN) == 18 && dsc_text_dataset_size(ds, DSC_SPLIT_VAL) == 6);
    int32_t x[3 * 4], y[3 * 4], x2[3 * 4], y2[3 * 4];
    uint64_t st = 42, st2 = 42;
    CHECK_OK(dsc_text_dataset_batch(ds, DSC_SPLIT_TRAIN, 3, 4, &st, x, y));
    CHECK_OK(dsc_text_dataset_batch(ds, DSC_SPLIT_TRAIN, 3, 4, &st2, x2, y2));
    CHECK(memcmp(x, x2, sizeof x) == 0 && memcmp(y, y2, sizeof y) == 0);
    /* y is x shifted by one inside the text: decode both and find them. */
    for (int r = 0; r < 3; r++) {
        char xs[5] = {0}, ys[5] = {0};
        for (int i = 0; i < 4; i++) {
            xs[i] = (char)dsc_text_dataset_decode(ds, x[r * 4 + i]);
            ys[i] = (char)dsc_text_dataset_decode(ds, y[r * 4 + i]);
        }
        const char *at = strstr(text, xs);
        CHECK_MSG(at && at - text + 4 < 18 && strncmp(at + 1, ys, 4) == 0, "window %s / %s", xs, ys);
    }
    /* The validation split is too short for a window of 6 (needs 7 tokens). */
    CHECK(dsc_text_dataset_batch(ds, DSC_SPLIT_VAL, 1, 6, &st, x, y) == DSC_ERR_INVALID);
    dsc_text_dataset_free(ds);

    const char *missing = "/nonexistent/corpus.txt";
    CHECK(dsc_text_dataset_load(&missing, 1, 0.1, &ds, err, sizeof err) == DSC_ERR_IO);
    CHECK(strstr(err, "/nonexistent/corpus.txt") != NULL);
    CHECK(dsc_text_dataset_from_text("a", 1, 0.1, &ds, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_text_dataset_from_text(text, n, 0.9, &ds, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(strstr(err, "val_fraction") != NULL);
    return check_finish("test_data");
}
