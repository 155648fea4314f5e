/* `dsc zero-to-fp32 CKPT_DIR OUT.safetensors [--tag TAG] [--dtype fp32|bf16|fp16]`: the
 * model weights of a checkpoint written by dsc_save_checkpoint (any world size, any ZeRO
 * stage) as one Hugging Face safetensors file, streamed tensor by tensor with bounded memory
 * (DeepSpeed's zero_to_fp32.py, without the offline merge: dsc checkpoints store tensors by
 * name and range). Exit status: 0 written, 1 error (message on stderr), 2 usage. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsc/ckpt.h"

int dsc_cmd_zero_to_fp32(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc zero-to-fp32 CKPT_DIR OUT.safetensors [--tag TAG] [--dtype fp32|bf16|fp16]\n"
            "\n"
            "Writes the fp32 master weights of every parameter of a dsc checkpoint, full-shaped under the\n"
            "parameter's name (tied names as copies), to one safetensors file (metadata {\"format\": \"pt\"}),\n"
            "reading each tensor from the range files of whichever ranks saved it, through one 8 MiB buffer.\n"
            "Optimizer state is left out. Every file read is checked against its checksum.\n"
            "\n"
            "  CKPT_DIR        a save directory (the checkpoint its 'latest' file names, or --tag), or one\n"
            "                  checkpoint directory (the one holding manifest.json)\n"
            "  --tag TAG       the checkpoint <CKPT_DIR>/TAG instead of the latest\n"
            "  --dtype D       fp32 (default), bf16 or fp16 (round to nearest even; bf16 gives exactly the\n"
            "                  working copy a bf16 run trains with)\n"
            "  -h, --help      this text\n"
            "\n"
            "exit status: 0 written, 1 error (printed on stderr), 2 usage error\n"
            "\n"
            "example:\n"
            "  dsc zero-to-fp32 checkpoints/ model.safetensors --dtype bf16\n");
}

/* manifest.xxh3 (written by dsc_save_checkpoint) must match manifest.json when present. */
static int check_sidecar(const char *dir, char *err, size_t errsz) {
    char spath[4200], mpath[4200], line[128] = "";
    snprintf(spath, sizeof spath, "%s/manifest.xxh3", dir);
    snprintf(mpath, sizeof mpath, "%s/%s", dir, DSC_CKPT_MANIFEST_NAME);
    FILE *f = fopen(spath, "rb");
    if (!f) {
        fprintf(stderr, "dsc zero-to-fp32: warning: '%s' not found: the manifest is not verified\n", spath);
        return 0;
    }
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* Exactly "<16 lower-case hex digits>  manifest.json\n". */
    unsigned long long want = 0;
    bool ok = n == 16 + 2 + strlen(DSC_CKPT_MANIFEST_NAME) + 1 && !strncmp(line + 16, "  ", 2) &&
              !strncmp(line + 18, DSC_CKPT_MANIFEST_NAME, strlen(DSC_CKPT_MANIFEST_NAME)) && line[n - 1] == '\n';
    for (int i = 0; ok && i < 16; i++) {
        char ch = line[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        ok = v >= 0;
        want = want << 4 | (unsigned long long)(v & 15);
    }
    dsc_st_file_info_t info;
    if (!ok) {
        snprintf(err, errsz, "checkpoint file '%.1900s' is corrupt", spath);
        return 1;
    }
    if (dsc_ckpt_checksum_file(mpath, &info, err, errsz) != DSC_OK) return 1;
    if (info.xxh3 != want) {
        snprintf(err, errsz, "checkpoint file '%.1900s' fails its checksum (xxh3_64 %016llx, manifest.xxh3 records %016llx)",
                 mpath, (unsigned long long)info.xxh3, want);
        return 1;
    }
    return 0;
}

int dsc_cmd_zero_to_fp32(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *tag = NULL, *dtype_s = "fp32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tag") || !strcmp(a, "--dtype")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dsc zero-to-fp32: %s needs a value\n\n", a);
                usage(stderr);
                return 2;
            }
            *(a[2] == 't' ? &tag : &dtype_s) = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dsc zero-to-fp32: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            fprintf(stderr, "dsc zero-to-fp32: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!in || !out) {
        usage(stderr);
        return 2;
    }
    dsc_dtype_t dtype = !strcmp(dtype_s, "fp32") ? DSC_F32
                        : !strcmp(dtype_s, "bf16") ? DSC_BF16
                        : !strcmp(dtype_s, "fp16") ? DSC_F16
                                                   : DSC_DTYPE_COUNT;
    if (dtype == DSC_DTYPE_COUNT) {
        fprintf(stderr, "dsc zero-to-fp32: --dtype must be fp32, bf16 or fp16, got '%s'\n", dtype_s);
        return 2;
    }
    char err[2048] = "";
    dsc_ckpt_t *c = NULL;
    dsc_status_t st;
    char probe[4200];
    struct stat sb;
    snprintf(probe, sizeof probe, "%s/%s", in, DSC_CKPT_MANIFEST_NAME);
    if (!tag && stat(probe, &sb) == 0)
        st = dsc_ckpt_open_dir(in, DSC_CKPT_VERIFY_LAZY, &c, err, sizeof err);
    else
        st = dsc_ckpt_open(in, tag, DSC_CKPT_VERIFY_LAZY, &c, err, sizeof err);
    if (st == DSC_OK && check_sidecar(dsc_ckpt_dir(c), err, sizeof err)) st = DSC_ERR_CORRUPT;
    dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
    o.kind = "param";
    o.dtype = dtype;
    o.write_aliases = true;
    dsc_st_file_info_t info = {0, 0};
    if (st == DSC_OK) st = dsc_ckpt_consolidate(c, out, &o, &info, err, sizeof err);
    if (st != DSC_OK) {
        fprintf(stderr, "dsc zero-to-fp32: %s\n", err);
        dsc_ckpt_close(c);
        return 1;
    }
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    long long tensors = 0, elements = 0;
    for (int i = 0; i < dsc_manifest_tensor_count(m); i++) {
        dsc_manifest_tensor_t t;
        dsc_manifest_tensor_at(m, i, &t);
        if (strcmp(t.kind, "param") != 0) continue;
        tensors += 1 + t.n_aliases;
        elements += t.numel;
    }
    dsc_manifest_counters_t k;
    dsc_manifest_counters(m, &k);
    printf("%s: %lld tensors, %lld parameters (%s) from %s (step %lld, %d rank(s), ZeRO stage %d); %llu bytes, "
           "xxh3_64 %016llx\n",
           out, tensors, elements, dtype_s, dsc_ckpt_dir(c), (long long)k.global_steps, k.world_size, k.zero_stage,
           (unsigned long long)info.size, (unsigned long long)info.xxh3);
    dsc_ckpt_close(c);
    return 0;
}
