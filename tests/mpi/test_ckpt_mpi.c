/* Engine checkpoints under mpirun, each mode a separate job (so every resume is a new set
 * of processes), on the harness of tests/unit/test_engine_ckpt.c:
 *   save DIR    (np 4) trains 20 steps at ZeRO stage 2 twice, saving at step 10: DIR/drop
 *               (dropout 0.1, GAS 2) and DIR/nodrop (no dropout); writes the losses of the
 *               uninterrupted runs beside them;
 *   resume DIR  (np 4) resumes DIR/drop in new processes: the losses of steps 11-20 are
 *               bitwise those of the uninterrupted run, rank by rank;
 *   load DIR    (np 1 at stage 0, np 2 at stage 3, np 3 at stage 1) resumes DIR/nodrop
 *               resharded: the fp32
 *               master and the optimizer state of every rank's range equal what the
 *               checkpoint holds (read back with the storage layer), and the next 10 global
 *               losses are within 1e-5 relative of the 4-process run's. */
#define CKPT_HARNESS_ONLY
#pragma GCC diagnostic ignored "-Wunused-function" /* the harness's fake-rank helpers */
#include "../unit/test_engine_ckpt.c"

static ck_spec_t spec_for(const char *what, int world, int stage) {
    ck_spec_t s;
    memset(&s, 0, sizeof s);
    s.world = world, s.stage = stage, s.precision = "fp32", s.rows = 12, s.total_steps = 20, s.seed = 1000;
    s.load_opt = s.load_sched = true;
    bool drop = !strcmp(what, "drop");
    s.dropout = drop ? 0.1 : 0.0;
    s.gas = drop ? 2 : 1;
    return s;
}

/* Full master and optimizer states as the checkpoint holds them (by parameter name). */
static bool read_back(const char *dir, float **master, float **states, int n_states) {
    static const char *names[] = {"exp_avg", "exp_avg_sq"};
    dsc_ckpt_t *c = NULL;
    char err[1024];
    if (dsc_ckpt_open(dir, NULL, DSC_CKPT_VERIFY_ALL, &c, err, sizeof err) != DSC_OK) {
        CHECK_MSG(false, "opening %s: %s", dir, err);
        return false;
    }
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    dsc_gpt_t *gpt = NULL;
    dsc_gpt_new(ctx, &gc, &gpt);
    const int64_t numel = dsc_model_numel(gpt->model);
    bool ok = n_states <= 2;
    for (int j = -1; j < n_states && ok; j++) {
        float *full = calloc((size_t)numel, sizeof *full);
        for (int i = 0; i < dsc_model_param_count(gpt->model) && ok; i++) {
            dsc_param_info_t p;
            dsc_model_param_info(gpt->model, i, &p);
            char name[256];
            snprintf(name, sizeof name, "%s%s%s", j < 0 ? "" : names[j], j < 0 ? "" : "/", p.name);
            ok = dsc_ckpt_read(c, name, 0, p.numel, full + p.offset, DSC_F32, err, sizeof err) == DSC_OK;
            CHECK_MSG(ok, "reading %s: %s", name, err);
        }
        *(j < 0 ? master : &states[j]) = full;
    }
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    dsc_ckpt_close(c);
    return ok;
}

static void write_losses(const char *path, const double *l) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    for (int s = 0; s < 20; s++) fprintf(f, "%a\n", l[s]);
    fclose(f);
}

static bool read_losses(const char *path, double *l) {
    FILE *f = fopen(path, "r");
    bool ok = f != NULL;
    for (int s = 0; s < 20 && ok; s++) ok = fscanf(f, "%la", &l[s]) == 1;
    if (f) fclose(f);
    CHECK_MSG(ok, "cannot read %s (run the save job first)", path);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_ckpt_mpi save|resume|load DIR\n");
        return 2;
    }
    const char *mode = argv[1], *root = argv[2];
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    if (dsc_comm_new_mpi(ctx, &comm) != DSC_OK) {
        fprintf(stderr, "test_ckpt_mpi: no MPI: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    dsc_comm_set_timeout(comm, 120);
    const int n = dsc_comm_world_size(comm), rank = dsc_comm_rank(comm);
    char dir[1024], path[1200];
    ck_result_t res;
    memset(&res, 0, sizeof res);
    if (!strcmp(mode, "save")) {
        CHECK_MSG(n == 4, "the save job runs on 4 processes, not %d", n);
        for (int k = 0; k < 2; k++) {
            const char *what = k ? "nodrop" : "drop";
            ck_spec_t s = spec_for(what, n, 2);
            snprintf(dir, sizeof dir, "%s/%s", root, what);
            s.save_dir = dir, s.save_at = 10;
            ck_run(&s, comm, rank, &res);
            CHECK_MSG(res.rc == 0 && res.save_rc == DSC_OK, "save %s, rank %d: %s", what, rank, res.error);
            snprintf(path, sizeof path, "%s/%s_losses_r%d.txt", root, what, rank);
            write_losses(path, res.losses);
            snprintf(path, sizeof path, "%s/%s_global_losses.txt", root, what);
            if (rank == 0) write_losses(path, res.global_losses);
            ck_result_free(&res);
        }
    } else if (!strcmp(mode, "resume")) {
        CHECK_MSG(n == 4, "the exact resume runs on 4 processes, not %d", n);
        ck_spec_t s = spec_for("drop", n, 2);
        snprintf(dir, sizeof dir, "%s/drop", root);
        s.load_dir = dir, s.seed = 777;
        ck_run(&s, comm, rank, &res);
        double ref[20];
        snprintf(path, sizeof path, "%s/drop_losses_r%d.txt", root, rank);
        CHECK_MSG(res.rc == 0 && res.load_rc == DSC_OK, "resume, rank %d: %s", rank, res.error);
        if (res.rc == 0 && res.load_rc == DSC_OK && read_losses(path, ref))
            for (int k = 10; k < 20; k++)
                CHECK_MSG(memcmp(&res.losses[k], &ref[k], sizeof(double)) == 0,
                          "np 4 resume, rank %d: step %d loss %a vs uninterrupted %a", rank, k + 1, res.losses[k], ref[k]);
        ck_result_free(&res);
    } else if (!strcmp(mode, "load")) {
        const int stage = n == 1 ? 0 : n == 2 ? 3 : 1;
        ck_spec_t s = spec_for("nodrop", n, stage);
        snprintf(dir, sizeof dir, "%s/nodrop", root);
        s.load_dir = dir, s.seed = 4242;
        ck_run(&s, comm, rank, &res);
        CHECK_MSG(res.rc == 0 && res.load_rc == DSC_OK, "load on %d process(es), rank %d: %s", n, rank, res.error);
        float *master = NULL, *states[2] = {NULL, NULL};
        double ref[20];
        snprintf(path, sizeof path, "%s/nodrop_global_losses.txt", root);
        if (res.rc == 0 && res.load_rc == DSC_OK && read_back(dir, &master, states, res.at_load.n_states) &&
            read_losses(path, ref)) {
            char what[128];
            snprintf(what, sizeof what, "saved by 4 processes at stage 2, loaded by %d at stage %d, rank %d", n, stage,
                     rank);
            ck_check_range(what, &res.at_load, master, states, res.at_load.n_states);
            for (int k = 10; k < 20; k++) {
                double d = fabs(res.global_losses[k] - ref[k]) / fabs(ref[k]);
                CHECK_MSG(d <= 1e-5, "%s: step %d loss %.9g vs %.9g (%.2e relative)", what, k + 1, res.global_losses[k],
                          ref[k], d);
            }
        }
        free(master);
        free(states[0]);
        free(states[1]);
        ck_result_free(&res);
    } else {
        fprintf(stderr, "test_ckpt_mpi: unknown mode '%s'\n", mode);
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "test_ckpt_mpi %s rank %d/%d", mode, rank, n);
    int rc = check_finish(name);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return rc;
}
