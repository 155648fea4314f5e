/* libFuzzer target for the checkpoint manifest parser. The input is manifest text. An
 * accepted manifest must serialise, parse again, and serialise to the same text (so
 * everything parsed is kept and typed), and every query must work on it. A rejected one
 * must leave a message naming the source. No crash, leak or UB. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512] = "";
    dsc_manifest_t *m = NULL;
    dsc_status_t st = dsc_manifest_parse((const char *)data, size, "fuzz.json", &m, err, sizeof err);
    if (st != DSC_OK) {
        if (m != NULL || (st != DSC_ERR_NOMEM && strstr(err, "fuzz.json") == NULL)) abort();
        return 0;
    }
    char *text = dsc_manifest_to_json(m, err, sizeof err);
    if (!text) abort();
    dsc_manifest_t *m2 = NULL;
    if (dsc_manifest_parse(text, strlen(text), "again", &m2, err, sizeof err) != DSC_OK) abort();
    char *text2 = dsc_manifest_to_json(m2, err, sizeof err);
    if (!text2 || strcmp(text, text2) != 0) abort();
    for (int i = 0; i < dsc_manifest_tensor_count(m2); i++) {
        dsc_manifest_tensor_t t;
        if (dsc_manifest_tensor_at(m2, i, &t) != DSC_OK || dsc_manifest_find(m2, t.name) != i) abort();
        for (int k = 0; k < t.n_aliases; k++)
            if (dsc_manifest_find(m2, t.aliases[k]) != i) abort();
        int64_t expect = 0;
        for (int j = 0; j < t.n_pieces; j++) {
            dsc_manifest_piece_t p;
            if (dsc_manifest_piece_at(m2, i, j, &p) != DSC_OK || p.begin != expect) abort();
            if (dsc_manifest_find_file(m2, p.file) < 0) abort();
            expect = p.end;
        }
        if (expect != t.numel) abort();
    }
    for (int i = 0; i < dsc_manifest_rng_count(m2); i++) {
        int rank;
        const char *name;
        uint64_t s, s2;
        if (dsc_manifest_rng_at(m2, i, &rank, &name, &s) != DSC_OK) abort();
        if (dsc_manifest_rng(m2, rank, name, &s2) != DSC_OK || s != s2) abort();
    }
    dsc_manifest_counters_t c;
    dsc_manifest_counters(m2, &c);
    if (c.world_size < 1 || c.zero_stage < 0 || c.zero_stage > 3) abort();
    free(text);
    free(text2);
    dsc_manifest_free(m);
    dsc_manifest_free(m2);
    return 0;
}
