/* The start-up agreement (dsc_comm_agree) on the fake backend, and dsc_initialize's use of
 * it: a rank that fails before its first collective stops the others with its own
 * message; ranks whose fields, models or configs differ all fail naming the first field
 * that differs and which ranks hold which value; a reduce_scatter_v whose ranks pass
 * different counts fails instead of writing past a buffer. Every message is compared in
 * full where it is short. Every wait has a timeout and every join a deadline. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dsc/dsc.h"

static void quiet(dsc_log_level_t level, const char *message, void *user) {
    (void)level, (void)message, (void)user;
}

/* ---- the world harness: one thread per rank, each with its own context ------------- */

#define MAX_RANKS 4

typedef struct rank_out {
    dsc_status_t status;
    char msg[2048];
    uint64_t seq;
} rank_out_t;

typedef void (*rank_fn)(dsc_comm_t *c, int rank, void *arg, rank_out_t *out);

typedef struct thread_arg {
    dsc_comm_fake_world_t *world;
    int rank;
    rank_fn fn;
    void *arg;
    rank_out_t *out;
} thread_arg_t;

static void *rank_main(void *p) {
    thread_arg_t *t = p;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.log_fn = quiet;
    co.seed = 7 + (uint64_t)t->rank;
    dsc_ctx_t *ctx = NULL;
    dsc_comm_t *c = NULL;
    if (dsc_ctx_new(&co, &ctx) == DSC_OK && dsc_comm_new_fake(ctx, t->world, t->rank, &c) == DSC_OK) {
        dsc_comm_set_timeout(c, 10.0); /* a bug shows as a timeout, never as a hang */
        t->fn(c, t->rank, t->arg, t->out);
        t->out->seq = dsc_comm_seq(c);
    } else {
        t->out->status = DSC_ERR_NOMEM;
    }
    dsc_comm_free(c);
    dsc_ctx_free(ctx);
    return NULL;
}

static void run_world(int n, rank_fn fn, void *arg, rank_out_t *out) {
    dsc_comm_fake_world_t *w = NULL;
    CHECK_OK(dsc_comm_fake_world_new(n, &w));
    if (!w) return;
    thread_arg_t ta[MAX_RANKS];
    memset(out, 0, sizeof *out * (size_t)n);
    for (int r = 0; r < n; r++) ta[r] = (thread_arg_t){w, r, fn, arg, &out[r]};
    check_run_threads(n, rank_main, ta, sizeof ta[0]);
    dsc_comm_fake_world_free(w);
}

/* Every rank returned `st` with exactly `msg` (NULL: any message). */
static void expect_all(const char *what, int n, const rank_out_t *out, dsc_status_t st, const char *msg) {
    for (int r = 0; r < n; r++) {
        CHECK_MSG(out[r].status == st, "%s: rank %d returned %s, want %s (%s)", what, r,
                  dsc_status_string(out[r].status), dsc_status_string(st), out[r].msg);
        if (msg) CHECK_MSG(strcmp(out[r].msg, msg) == 0, "%s: rank %d said \"%s\", want \"%s\"", what, r, out[r].msg, msg);
    }
}

/* ---- dsc_comm_agree ------------------------------------------------------------------ */

/* Per rank: its status, message and fields. */
typedef struct agree_case {
    dsc_status_t status[MAX_RANKS];
    const char *error[MAX_RANKS];
    dsc_comm_field_t fields[MAX_RANKS][4];
    size_t n_fields[MAX_RANKS];
    bool debug_check[MAX_RANKS];
} agree_case_t;

static void agree_rank(dsc_comm_t *c, int rank, void *arg, rank_out_t *out) {
    const agree_case_t *k = arg;
    dsc_comm_set_debug_check(c, k->debug_check[rank]);
    out->status = dsc_comm_agree(c, k->status[rank], k->error[rank], k->fields[rank], k->n_fields[rank]);
    snprintf(out->msg, sizeof out->msg, "%s", out->status == DSC_OK ? "" : dsc_comm_errmsg(c));
}

static void fill(agree_case_t *k, int n, const char *b_of_last) {
    memset(k, 0, sizeof *k);
    for (int r = 0; r < n; r++) {
        k->fields[r][0] = (dsc_comm_field_t){"a", "1"};
        k->fields[r][1] = (dsc_comm_field_t){"b", r == n - 1 ? b_of_last : "2"};
        k->fields[r][2] = (dsc_comm_field_t){"c", "x"};
        k->n_fields[r] = 3;
    }
}

static void test_agree(void) {
    agree_case_t k;
    rank_out_t out[MAX_RANKS];

    fill(&k, 3, "2");
    run_world(3, agree_rank, &k, out);
    expect_all("all agree", 3, out, DSC_OK, "");
    for (int r = 0; r < 3; r++) CHECK_MSG(out[r].seq == 1, "one allgather when all agree: seq %llu", (unsigned long long)out[r].seq);

    /* The first differing field is named, with who has what. */
    fill(&k, 3, "3");
    k.fields[0][2].value = "y"; /* c differs too, later in the list: b is reported */
    run_world(3, agree_rank, &k, out);
    expect_all("b differs", 3, out, DSC_ERR_CONFIG, "ranks disagree on b: ranks 0 and 1 have 2, rank 2 has 3");

    fill(&k, 4, "3");
    k.fields[1][1].value = "3";
    run_world(4, agree_rank, &k, out);
    expect_all("two groups", 4, out, DSC_ERR_CONFIG, "ranks disagree on b: ranks 0 and 2 have 2, ranks 1 and 3 have 3");

    /* A rank with one more field. */
    fill(&k, 3, "2");
    k.fields[2][3] = (dsc_comm_field_t){"d", "4"};
    k.n_fields[2] = 4;
    run_world(3, agree_rank, &k, out);
    expect_all("extra field", 3, out, DSC_ERR_CONFIG,
               "ranks disagree on setting #4 (their lists of settings differ): ranks 0 and 1 have no such setting, "
               "rank 2 has d = 4");

    /* A rank that failed locally: the others stop with its message and status. */
    fill(&k, 3, "2");
    k.status[1] = DSC_ERR_IO;
    k.error[1] = "missing.json: cannot open the config file";
    run_world(3, agree_rank, &k, out);
    CHECK(out[1].status == DSC_ERR_IO);
    for (int r = 0; r < 3; r += 2) {
        CHECK_MSG(out[r].status == DSC_ERR_IO, "rank %d: %s", r, dsc_status_string(out[r].status));
        CHECK_MSG(!strcmp(out[r].msg, "rank 1 of 3 failed: missing.json: cannot open the config file"), "rank %d: %s", r,
                  out[r].msg);
    }
    /* Two failing ranks: the lowest is named, the count of the others said. */
    k.status[2] = DSC_ERR_CONFIG;
    k.error[2] = "bad key";
    run_world(3, agree_rank, &k, out);
    CHECK(!strcmp(out[0].msg, "rank 1 of 3 failed (and 1 more rank failed): missing.json: cannot open the config file"));
    CHECK(out[0].status == DSC_ERR_IO && out[2].status == DSC_ERR_CONFIG);

    /* The debug check on one rank only: the agreement never runs it, so it cannot hang or
     * mismatch (a caller puts the setting among the fields to refuse it). */
    fill(&k, 2, "2");
    k.debug_check[0] = true;
    run_world(2, agree_rank, &k, out);
    expect_all("debug check on one rank", 2, out, DSC_OK, "");

    /* World 1: no collective, the local status. */
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *self = NULL;
    CHECK_OK(dsc_comm_new_self(ctx, &self));
    CHECK(dsc_comm_agree(self, DSC_OK, NULL, NULL, 0) == DSC_OK);
    CHECK(dsc_comm_agree(self, DSC_ERR_IO, "x", NULL, 0) == DSC_ERR_IO);
    CHECK(dsc_comm_seq(self) == 0);
    dsc_comm_free(self);
    dsc_ctx_free(ctx);
}

/* ---- bounds: reduce_scatter_v with counts that differ across ranks ------------------ */

static void rsv_rank(dsc_comm_t *c, int rank, void *arg, rank_out_t *out) {
    dsc_comm_set_debug_check(c, arg != NULL);
    /* Rank 1 believes it owns 2 elements; rank 0 believes rank 1 owns 6. */
    const int64_t counts0[2] = {2, 6}, counts1[2] = {6, 2};
    const int64_t *counts = rank == 0 ? counts0 : counts1;
    float send[8], *recv = calloc(16, sizeof *recv);
    for (int i = 0; i < 8; i++) send[i] = (float)(i + 1);
    for (int i = 0; i < 16; i++) recv[i] = -1.0f; /* guard past counts[rank] */
    out->status = dsc_comm_reduce_scatter_v(c, send, recv, counts, DSC_F32);
    snprintf(out->msg, sizeof out->msg, "%s", dsc_comm_errmsg(c));
    int touched = 0;
    for (int i = (int)counts[rank]; i < 16; i++) touched += recv[i] != -1.0f;
    TCHECK_MSG(touched == 0, "rank %d: %d elements written past its %lld", rank, touched, (long long)counts[rank]);
    free(recv);
}

static void test_bounds(void) {
    rank_out_t out[MAX_RANKS];
    run_world(2, rsv_rank, NULL, out);
    for (int r = 0; r < 2; r++) {
        CHECK_MSG(out[r].status == DSC_ERR_COMM, "rank %d: %s", r, dsc_status_string(out[r].status));
        CHECK_MSG(strstr(out[r].msg, "ranks disagree on collective #1") != NULL, "rank %d: %s", r, out[r].msg);
    }
    /* The debug check (what DSC_COMM_DEBUG=1 runs under MPI) sees the counts differ too. */
    run_world(2, rsv_rank, "debug", out);
    for (int r = 0; r < 2; r++) {
        CHECK_MSG(out[r].status == DSC_ERR_COMM, "rank %d: %s", r, dsc_status_string(out[r].status));
        CHECK_MSG(strstr(out[r].msg, "debug check on rank") && strstr(out[r].msg, "rank 1 called reduce_scatter_v(8 f32, counts "),
                  "rank %d: %s", r, out[r].msg);
    }
}

/* ---- dsc_initialize ------------------------------------------------------------------ */

typedef struct init_case {
    int n_layer[MAX_RANKS], block_size[MAX_RANKS], stage[MAX_RANKS];
    const char *config_path[MAX_RANKS]; /* NULL: the JSON below with stage[] */
    const char *save[MAX_RANKS];        /* a caller fingerprint field, NULL: none */
    bool debug[MAX_RANKS];
    bool bad_scheduler[MAX_RANKS]; /* a client scheduler without lr_fn: fails after the state */
} init_case_t;

static double const_lr(int64_t step, size_t group, void *user) {
    (void)step, (void)group, (void)user;
    return 1e-3;
}

static void init_rank(dsc_comm_t *c, int rank, void *arg, rank_out_t *out) {
    const init_case_t *k = arg;
    dsc_ctx_t *ctx = NULL;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.log_fn = quiet;
    dsc_ctx_new(&co, &ctx);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.n_layer = k->n_layer[rank] ? k->n_layer[rank] : 1;
    gc.block_size = k->block_size[rank] ? k->block_size[rank] : 16;
    dsc_gpt_t *gpt = NULL;
    dsc_gpt_new(ctx, &gc, &gpt);
    char json[512];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 2, \"zero_optimization\": {\"stage\": %d}, %s"
             "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}",
             k->stage[rank], k->debug[rank] ? "\"dsc\": {\"comm_debug_check\": true}, " : "");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_path = k->config_path[rank];
    o.config_json = k->config_path[rank] ? NULL : json;
    o.comm = c;
    dsc_comm_field_t field = {"--save", k->save[rank]};
    if (k->save[rank]) o.fingerprint = &field, o.n_fingerprint = 1;
    dsc_client_lr_scheduler_t sched = {k->bad_scheduler[rank] ? NULL : const_lr, NULL, NULL};
    if (k->bad_scheduler[0] || k->bad_scheduler[1]) o.client_lr_scheduler = &sched;
    dsc_initialize_result_t init = {0};
    out->status = gpt ? dsc_initialize(gpt->model, &o, &init, out->msg, sizeof out->msg) : DSC_ERR_NOMEM;
    if (out->status == DSC_OK) out->msg[0] = '\0';
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
}

/* Tensors and elements of the GPT the tests build. */
static void gpt_size(int n_layer, int block_size, int *tensors, long long *numel) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.n_layer = n_layer;
    gc.block_size = block_size;
    dsc_gpt_t *gpt = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
    *tensors = gpt ? dsc_model_param_count(gpt->model) : -1;
    *numel = gpt ? (long long)dsc_model_numel(gpt->model) : -1;
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
}

static void test_initialize(void) {
    init_case_t k;
    rank_out_t out[MAX_RANKS];
    char want[2600];

    memset(&k, 0, sizeof k);
    run_world(2, init_rank, &k, out);
    expect_all("same model and config", 2, out, DSC_OK, "");
    CHECK_MSG(out[0].seq >= 3, "agreement, broadcast, end agreement: seq %llu", (unsigned long long)out[0].seq);

    /* One more layer on rank 1 (each layer adds 12 tensors to the tiny GPT). */
    int t1, t2;
    long long n1, n2, n16, n32;
    gpt_size(1, 16, &t1, &n1);
    gpt_size(2, 16, &t2, &n2);
    CHECK(t2 == t1 + 12);
    memset(&k, 0, sizeof k);
    k.n_layer[1] = 2;
    run_world(2, init_rank, &k, out);
    snprintf(want, sizeof want, "ranks disagree on model.parameters: rank 0 has %d tensors, rank 1 has %d tensors", t1, t2);
    expect_all("layers", 2, out, DSC_ERR_CONFIG, want);

    /* A longer context on rank 0: same tensors, more elements (wpe has block_size rows). */
    gpt_size(1, 16, &t1, &n16);
    gpt_size(1, 32, &t1, &n32);
    CHECK(n32 - n16 == 16 * 64); /* 16 more rows of width 64 */
    memset(&k, 0, sizeof k);
    k.block_size[0] = 32;
    run_world(2, init_rank, &k, out);
    snprintf(want, sizeof want, "ranks disagree on model.numel: rank 0 has %lld, rank 1 has %lld", n32, n16);
    expect_all("context", 2, out, DSC_ERR_CONFIG, want);

    memset(&k, 0, sizeof k);
    k.stage[0] = 1;
    k.stage[1] = 2;
    k.stage[2] = 1;
    run_world(3, init_rank, &k, out);
    expect_all("ZeRO stage", 3, out, DSC_ERR_CONFIG,
               "ranks disagree on zero_optimization.stage: ranks 0 and 2 have 1, rank 1 has 2");

    memset(&k, 0, sizeof k);
    k.save[0] = k.save[1] = "ck";
    k.save[2] = "(none)";
    run_world(3, init_rank, &k, out);
    expect_all("caller field", 3, out, DSC_ERR_CONFIG, "ranks disagree on --save: ranks 0 and 1 have ck, rank 2 has (none)");

    memset(&k, 0, sizeof k);
    k.debug[1] = true;
    run_world(2, init_rank, &k, out);
    expect_all("debug check on one rank", 2, out, DSC_ERR_CONFIG,
               "ranks disagree on dsc.comm_debug_check (or DSC_COMM_DEBUG): rank 0 has off, rank 1 has on");

    /* A missing config on rank 1: rank 0 stops with rank 1's error, no collective after. */
    memset(&k, 0, sizeof k);
    k.config_path[1] = "tests/configs/no_such_config.json";
    run_world(2, init_rank, &k, out);
    CHECK_MSG(out[1].status == DSC_ERR_IO, "rank 1: %s %s", dsc_status_string(out[1].status), out[1].msg);
    CHECK_MSG(out[0].status == DSC_ERR_IO, "rank 0: %s %s", dsc_status_string(out[0].status), out[0].msg);
    snprintf(want, sizeof want, "rank 1 of 2 failed: %s", out[1].msg);
    CHECK_MSG(!strcmp(out[0].msg, want), "rank 0 said \"%s\"", out[0].msg);
    CHECK(strstr(out[1].msg, "no_such_config.json: cannot open the config file") != NULL);
    CHECK_MSG(out[0].seq == 1 && out[1].seq == 1, "only the agreement ran: seq %llu %llu",
              (unsigned long long)out[0].seq, (unsigned long long)out[1].seq);

    /* A failure after the state is built (a client scheduler without lr_fn on rank 1): the
     * end agreement tells rank 0. */
    memset(&k, 0, sizeof k);
    k.bad_scheduler[1] = true;
    run_world(2, init_rank, &k, out);
    CHECK_MSG(out[1].status == DSC_ERR_INVALID, "rank 1: %s", out[1].msg);
    CHECK_MSG(out[0].status == DSC_ERR_INVALID && !strcmp(out[0].msg, "rank 1 of 2 failed: client_lr_scheduler.lr_fn is NULL"),
              "rank 0: %s %s", dsc_status_string(out[0].status), out[0].msg);
}

int main(void) {
    test_agree();
    test_bounds();
    test_initialize();
    return check_finish("test_comm_agree");
}
