/* dsc/ckpt.h: the checkpoint storage layer (docs/checkpoint-format.md is the byte-level spec).
 *
 * Four pieces, usable on their own:
 *   1. safetensors files (Hugging Face's format): a streaming writer (declare every tensor,
 *      then append the bytes in order, possibly in many calls; memory stays bounded) and a
 *      validating reader that reads any element range of a tensor with pread, converting
 *      dtypes on the way.
 *   2. The manifest (manifest.json): training counters, loss scaler, LR scheduler / data
 *      loader / optimizer / client state (opaque JSON), RNG states, the config text, and the list of
 *      named tensors (dtype, shape, kind, frozen flag, tied aliases) with, for each, the
 *      element ranges ("pieces") held by which file, and every file's size and checksum.
 *   3. Atomic checkpoint directories: <save_dir>/<tag>/ is written as a temporary directory,
 *      fsynced, renamed into place, and <save_dir>/latest is replaced atomically.
 *   4. Readers over a committed checkpoint (any element range of any named tensor, from
 *      whichever files hold it) and a streaming consolidator to one safetensors file.
 *
 * Topology independence: a checkpoint stores tensors by name and element range, never by
 * rank partition. Each rank writes the ranges it owns to its own range file
 * (dsc_st_writer_declare_range); any later rank, under any world size or ZeRO stage, reads
 * the ranges it needs with dsc_ckpt_read.
 *
 * Errors: every fallible call returns a dsc_status_t and writes a one-line message naming the
 * file (and the tensor or manifest field) into `err` (`errsz` bytes, NUL-terminated,
 * truncated if longer; err may be NULL). DSC_ERR_IO: a file is missing or an OS call failed;
 * DSC_ERR_CORRUPT: a file is malformed, truncated or fails its checksum; DSC_ERR_INVALID: a
 * bad argument; DSC_ERR_MISUSE: calls in the wrong order; DSC_ERR_UNSUPPORTED: a valid file
 * using something dsc cannot convert (a U8 tensor read as f32, more than 8 dims).
 * Nothing here aborts or exits on any input; the readers are fuzzed.
 *
 * Threads: no global state. Each handle (writer, reader, manifest, checkpoint) is used by
 * one thread at a time; distinct handles may be used concurrently (e.g. a background
 * writer thread per rank).
 */
#ifndef DSC_CKPT_H
#define DSC_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"
#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DSC_ST_MAX_DIMS 8
/* The largest JSON header accepted or written (the reference implementation's limit). */
#define DSC_ST_MAX_HEADER 100000000u

/* ---- Checksums --------------------------------------------------------------------------- */

/* XXH3-64 (seed 0) of `n` bytes: the checksum recorded for every checkpoint file
 * (`xxhsum -H3` prints the same value). */
uint64_t dsc_ckpt_checksum(const void *data, size_t n);

/* Size and XXH3-64 of a whole file. */
typedef struct dsc_st_file_info {
    uint64_t size;
    uint64_t xxh3;
} dsc_st_file_info_t;

/* Reads `path` once and fills *info. DSC_ERR_IO if it cannot be opened or read. */
dsc_status_t dsc_ckpt_checksum_file(const char *path, dsc_st_file_info_t *info, char *err, size_t errsz);

/* ---- Atomic files ------------------------------------------------------------------------ */
/* Every file dsc writes for a user (safetensors files, manifests, `latest`, exported
 * configs) is written to a temporary file beside `path` and renamed over it only once every
 * byte is written (and, when durable, fsynced, with the directory fsynced after the
 * rename). Any failure -- a full disk, a bad tensor, a killed process -- leaves the file
 * previously at `path` untouched (a killed process leaves a hidden ".<name>.tmp-*-<pid>").
 * A replaced file keeps its permissions; a symbolic link at `path` is replaced, not
 * followed. */
typedef struct dsc_atomic_file dsc_atomic_file_t;
/* Creates the temporary file. *out is owned by the caller, who ends it with commit or
 * abort. DSC_ERR_IO: `path` is a directory, or its directory is missing or not writable. */
dsc_status_t dsc_atomic_file_open(const char *path, dsc_atomic_file_t **out, char *err, size_t errsz);
/* The temporary file's descriptor (write to it; do not close it), and the destination. */
int dsc_atomic_file_fd(const dsc_atomic_file_t *f);
const char *dsc_atomic_file_path(const dsc_atomic_file_t *f);
/* fsync (when durable), close, rename over the destination, fsync its directory (when
 * durable). Always frees f; on failure the temporary file is removed and the message says
 * what failed (DSC_ERR_IO). */
dsc_status_t dsc_atomic_file_commit(dsc_atomic_file_t *f, bool durable, char *err, size_t errsz);
/* Removes the temporary file and frees f; the destination is untouched. NULL: no-op. */
void dsc_atomic_file_abort(dsc_atomic_file_t *f);
/* The whole of `data` as the new content of `path`, durably. */
dsc_status_t dsc_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errsz);

/* ---- safetensors: names of dtypes ------------------------------------------------------- */

/* The safetensors name of a dsc dtype ("F32", "F16", "BF16", "I32", "F64"); NULL if invalid. */
const char *dsc_st_dtype_name(dsc_dtype_t dtype);
/* The dsc dtype of a safetensors dtype name; DSC_DTYPE_COUNT when the name is a valid
 * safetensors dtype without a dsc equivalent (U8, I64, ...) or unknown. */
dsc_dtype_t dsc_st_dtype_from_name(const char *name);

/* The key of a range piece: "<name>@<begin>:<end>" (decimal, half-open element range).
 * DSC_ERR_INVALID if it does not fit in `n` bytes or the range is invalid. */
dsc_status_t dsc_ckpt_range_key(const char *name, int64_t begin, int64_t end, char *buf, size_t n);

/* ---- safetensors writer ------------------------------------------------------------------ */

typedef struct dsc_st_writer dsc_st_writer_t;

/* Flags for dsc_st_writer_open. */
#define DSC_ST_NO_FSYNC 1u /* skip the fsync at close (scratch files, tests) */

/* Starts writing `path` as an atomic file (see "Atomic files"): the bytes go to a
 * temporary file beside it, which replaces `path` only at a successful close; until then,
 * and after any failure, a previous file at `path` is untouched. Nothing is written until
 * the first dsc_st_write (or close). On success *out is owned by the caller, who must end it with
 * dsc_st_writer_close or dsc_st_writer_abort. DSC_ERR_IO if the file cannot be created. */
dsc_status_t dsc_st_writer_open(const char *path, unsigned flags, dsc_st_writer_t **out, char *err, size_t errsz);

/* Adds a "__metadata__" string entry (both copied). Before the first write only.
 * DSC_ERR_INVALID for a duplicate key or text that is not valid UTF-8; DSC_ERR_MISUSE after
 * the first write. */
dsc_status_t dsc_st_writer_set_metadata(dsc_st_writer_t *w, const char *key, const char *value, char *err,
                                        size_t errsz);

/* Declares the next tensor: `name` (copied, UTF-8, unique, not "__metadata__"), `dtype` a dsc
 * dtype, `ndim` 0..DSC_ST_MAX_DIMS dims (0 = a scalar of 1 element; a dim may be 0). Tensors
 * are laid out in declaration order, contiguous, row-major. Before the first write only.
 * DSC_ERR_INVALID (bad name, dtype, shape or size overflow), DSC_ERR_MISUSE (after a write). */
dsc_status_t dsc_st_writer_declare(dsc_st_writer_t *w, const char *name, dsc_dtype_t dtype, int ndim,
                                   const int64_t *shape, char *err, size_t errsz);
/* Declares a range piece: the 1-D tensor named dsc_ckpt_range_key(name, begin, end) of
 * end - begin elements, holding elements [begin, end) of the row-major flattening of the
 * tensor `name`. 0 <= begin < end. */
dsc_status_t dsc_st_writer_declare_range(dsc_st_writer_t *w, const char *name, dsc_dtype_t dtype, int64_t begin,
                                         int64_t end, char *err, size_t errsz);

/* Appends `n_elems` elements of the current tensor (the first declared tensor whose bytes
 * are not all written yet), converting from `src_dtype` to the tensor's dtype when they
 * differ (dsc_convert). A call writes at most the rest of the current tensor; tensors of
 * 0 elements are skipped automatically. The first call writes the header. The XXH3-64 of
 * the file is computed on the way, so nothing is read back.
 * DSC_ERR_INVALID: n_elems exceeds what is left of the current tensor (the message names
 * it), src NULL with n_elems > 0, or a bad src_dtype. DSC_ERR_MISUSE: every tensor is
 * already complete. DSC_ERR_IO: a write failed. After any error the writer is failed:
 * later calls return the same status, and close removes the file. */
dsc_status_t dsc_st_write(dsc_st_writer_t *w, const void *src, dsc_dtype_t src_dtype, size_t n_elems, char *err,
                          size_t errsz);

/* Name of the tensor the next dsc_st_write goes to, and how many of its elements are
 * already written; NULL when every tensor is complete. */
const char *dsc_st_writer_current(const dsc_st_writer_t *w, int64_t *elems_done);

/* Finishes the file: checks every tensor is complete, flushes, fsyncs (unless
 * DSC_ST_NO_FSYNC) and closes it, and fills *info (may be NULL) with its size and XXH3-64.
 * Always frees the writer; on any failure the temporary file is removed and a previous
 * file at `path` is left as it was.
 * DSC_ERR_MISUSE: a tensor is incomplete (named); DSC_ERR_IO: flush, fsync or close failed. */
dsc_status_t dsc_st_writer_close(dsc_st_writer_t *w, dsc_st_file_info_t *info, char *err, size_t errsz);
/* Removes the temporary file (`path` is untouched), frees the writer. NULL is a no-op. */
void dsc_st_writer_abort(dsc_st_writer_t *w);

/* ---- safetensors reader ------------------------------------------------------------------ */

typedef struct dsc_st_reader dsc_st_reader_t;

/* One tensor of a file. Pointers stay valid while the reader is open. */
typedef struct dsc_st_tensor_info {
    const char *name;
    const char *dtype_name; /* as in the file: "F32", "BF16", "U8", ... */
    dsc_dtype_t dtype; /* DSC_DTYPE_COUNT when not a dsc dtype (then only raw reads) */
    size_t elem_size; /* bytes per element */
    int ndim;
    int64_t shape[DSC_ST_MAX_DIMS];
    int64_t numel;
    uint64_t file_offset; /* absolute byte offset of the data in the file */
    uint64_t nbytes;
} dsc_st_tensor_info_t;

/* Opens and validates `path`: the 8-byte little-endian header length N (N <= DSC_ST_MAX_HEADER,
 * 8 + N <= file size), the header (a JSON object starting with '{', no duplicate keys,
 * only whitespace after it), every entry (exactly "dtype", "shape", "data_offsets"; a known
 * dtype; non-negative dims; offsets consistent with dtype and shape), the data layout (the
 * entries tile the data section exactly: no overlap, no gap, nothing past or after the end)
 * and "__metadata__" (string values). Only the header is read.
 * DSC_ERR_IO (cannot open/read), DSC_ERR_CORRUPT (the message names the file and tensor),
 * DSC_ERR_UNSUPPORTED (an unknown dtype name or more than DSC_ST_MAX_DIMS dims). */
dsc_status_t dsc_st_reader_open(const char *path, dsc_st_reader_t **out, char *err, size_t errsz);
/* The same over an open file descriptor (dup'ed; the caller keeps `fd`), with `name` used
 * in messages. For memory files (memfd) and the fuzzer. */
dsc_status_t dsc_st_reader_open_fd(int fd, const char *name, dsc_st_reader_t **out, char *err, size_t errsz);
void dsc_st_reader_close(dsc_st_reader_t *r);

const char *dsc_st_reader_path(const dsc_st_reader_t *r);
/* Tensors in file (header) order. */
int dsc_st_reader_count(const dsc_st_reader_t *r);
dsc_status_t dsc_st_reader_info(const dsc_st_reader_t *r, int index, dsc_st_tensor_info_t *out);
/* Index of the tensor named `name`, or -1. */
int dsc_st_reader_find(const dsc_st_reader_t *r, const char *name);
/* The "__metadata__" value of `key`, or NULL; and the entries in file order. */
const char *dsc_st_reader_metadata(const dsc_st_reader_t *r, const char *key);
int dsc_st_reader_metadata_count(const dsc_st_reader_t *r);
dsc_status_t dsc_st_reader_metadata_at(const dsc_st_reader_t *r, int i, const char **key, const char **value);

/* Reads elements [begin, begin + n) of tensor `index` (row-major flattening) into `dst` as
 * `dst_dtype`, converting from the stored dtype when they differ (bf16 -> f32 etc.), with
 * pread in bounded chunks. DSC_ERR_INVALID (bad index or range, NULL dst), DSC_ERR_UNSUPPORTED
 * (stored dtype has no dsc equivalent and differs from dst_dtype), DSC_ERR_IO (short read:
 * the file shrank). */
dsc_status_t dsc_st_read(dsc_st_reader_t *r, int index, int64_t begin, int64_t n, void *dst, dsc_dtype_t dst_dtype,
                         char *err, size_t errsz);
/* Raw bytes of elements [begin, begin + n), any stored dtype. */
dsc_status_t dsc_st_read_raw(dsc_st_reader_t *r, int index, int64_t begin, int64_t n, void *dst, char *err,
                             size_t errsz);

/* ---- Manifest ------------------------------------------------------------------------------ */

typedef struct dsc_manifest dsc_manifest_t;

/* DeepSpeed's DynamicLossScaler state (spec 3.2); static scaler: dynamic false. */
typedef struct dsc_ckpt_loss_scaler {
    bool dynamic;
    double scale; /* current scale, finite > 0 (1 without fp16) */
    int64_t iter; /* cur_iter: updates so far */
    int64_t last_overflow_iter; /* -1 when none */
    int hysteresis; /* cur_hysteresis (remaining) */
} dsc_ckpt_loss_scaler_t;

/* Training counters and the run's shape at save time. */
typedef struct dsc_manifest_counters {
    int64_t global_steps;
    int64_t global_samples;
    int64_t skipped_steps;
    int64_t micro_steps;
    int world_size; /* data-parallel ranks at save time (>= 1) */
    int zero_stage; /* 0..3 at save time */
    dsc_ckpt_loss_scaler_t loss_scaler;
} dsc_manifest_counters_t;
/* clang-format off */
#define DSC_MANIFEST_COUNTERS_INIT {0, 0, 0, 0, 1, 0, {false, 1.0, 0, -1, 1}}
/* clang-format on */

/* A named tensor. For dsc_manifest_add_tensor fill the inputs; dsc_manifest_tensor_at fills
 * everything (pointers valid until the manifest is changed or freed). */
typedef struct dsc_manifest_tensor {
    const char *name; /* unique over names and aliases */
    const char *kind; /* caller's role label, non-empty: "param", "exp_avg", ... */
    dsc_dtype_t dtype; /* dtype stored in the files */
    int ndim; /* 0..DSC_ST_MAX_DIMS */
    int64_t shape[DSC_ST_MAX_DIMS];
    bool frozen; /* requires_grad false */
    int n_aliases; /* tied names that share this tensor's data (stored once) */
    const char *const *aliases;
    int64_t numel; /* output only */
    int n_pieces; /* output only */
} dsc_manifest_tensor_t;

/* Elements [begin, end) of a tensor, stored as the 1-D (or whole) tensor `key` of `file`. */
typedef struct dsc_manifest_piece {
    const char *file;
    const char *key;
    int64_t begin, end;
} dsc_manifest_piece_t;

typedef struct dsc_manifest_file {
    const char *name; /* a plain file name inside the checkpoint directory */
    uint64_t size;
    uint64_t xxh3;
} dsc_manifest_file_t;

/* Opaque JSON sections, stored as given. */
typedef enum dsc_manifest_blob {
    DSC_MANIFEST_LR_SCHEDULER = 0, /* a JSON object (the scheduler's state dict) or absent */
    DSC_MANIFEST_DATA_LOADER, /* a JSON object (loader / sampler position) or absent */
    DSC_MANIFEST_CLIENT_STATE, /* any JSON value (the caller's client_state) or absent */
    DSC_MANIFEST_OPTIMIZER, /* a JSON object (optimizer type, step count, hyper-parameters) or absent */
    DSC_MANIFEST_BLOB_COUNT
} dsc_manifest_blob_t;

dsc_status_t dsc_manifest_new(dsc_manifest_t **out);
void dsc_manifest_free(dsc_manifest_t *m);

/* DSC_ERR_INVALID for negative counters, world_size < 1, zero_stage outside 0..3, or a
 * non-finite / non-positive scale. */
dsc_status_t dsc_manifest_set_counters(dsc_manifest_t *m, const dsc_manifest_counters_t *c, char *err, size_t errsz);
void dsc_manifest_counters(const dsc_manifest_t *m, dsc_manifest_counters_t *out);

/* The config text as given (any text, copied; NULL clears). Read back: NULL when absent. */
dsc_status_t dsc_manifest_set_config(dsc_manifest_t *m, const char *text, char *err, size_t errsz);
const char *dsc_manifest_config(const dsc_manifest_t *m);

/* Sets an opaque section from JSON text (NULL clears it). DSC_ERR_INVALID when the text is
 * not JSON or not an object where one is required. The getter returns the section as compact
 * JSON text owned by the manifest (valid until the section changes), or NULL when absent. */
dsc_status_t dsc_manifest_set_blob(dsc_manifest_t *m, dsc_manifest_blob_t which, const char *json_text, char *err,
                                   size_t errsz);
const char *dsc_manifest_blob(const dsc_manifest_t *m, dsc_manifest_blob_t which);

/* RNG states by (rank, name), e.g. (r, "ctx") for rank r's dsc_ctx_rng_state.
 * DSC_ERR_INVALID for a duplicate pair, rank < 0 or an empty name. The getter returns
 * DSC_ERR_INVALID when the pair is absent. */
dsc_status_t dsc_manifest_add_rng(dsc_manifest_t *m, int rank, const char *name, uint64_t state, char *err,
                                  size_t errsz);
dsc_status_t dsc_manifest_rng(const dsc_manifest_t *m, int rank, const char *name, uint64_t *state);
int dsc_manifest_rng_count(const dsc_manifest_t *m);
dsc_status_t dsc_manifest_rng_at(const dsc_manifest_t *m, int i, int *rank, const char **name, uint64_t *state);

/* Adds a tensor (everything copied). DSC_ERR_INVALID for a duplicate name or alias, bad
 * dtype/shape/kind. */
dsc_status_t dsc_manifest_add_tensor(dsc_manifest_t *m, const dsc_manifest_tensor_t *t, char *err, size_t errsz);
/* Records that elements [begin, end) of `tensor` (a name, not an alias) are stored in `file`
 * under `key` (NULL: dsc_ckpt_range_key(tensor, begin, end), what declare_range writes).
 * 0 <= begin < end <= numel. Overlaps are found by dsc_manifest_validate. */
dsc_status_t dsc_manifest_add_piece(dsc_manifest_t *m, const char *tensor, const char *file, int64_t begin, int64_t end,
                                    const char *key, char *err, size_t errsz);
/* Records a file of the checkpoint (a plain name: no '/', not starting with '.', not
 * "manifest.json") with the size and checksum its writer returned. */
dsc_status_t dsc_manifest_add_file(dsc_manifest_t *m, const char *file, const dsc_st_file_info_t *info, char *err,
                                   size_t errsz);

int dsc_manifest_tensor_count(const dsc_manifest_t *m);
dsc_status_t dsc_manifest_tensor_at(const dsc_manifest_t *m, int index, dsc_manifest_tensor_t *out);
/* Index of the tensor with this name or alias, or -1. */
int dsc_manifest_find(const dsc_manifest_t *m, const char *name_or_alias);
/* Piece j of tensor `index`, sorted by begin once the manifest is validated (written or read). */
dsc_status_t dsc_manifest_piece_at(const dsc_manifest_t *m, int index, int j, dsc_manifest_piece_t *out);
int dsc_manifest_file_count(const dsc_manifest_t *m);
dsc_status_t dsc_manifest_file_at(const dsc_manifest_t *m, int i, dsc_manifest_file_t *out);
int dsc_manifest_find_file(const dsc_manifest_t *m, const char *name);

/* Checks completeness: every tensor's pieces tile [0, numel) exactly (no gap, no overlap),
 * every piece's file is listed. Sorts pieces. DSC_ERR_INVALID naming the tensor. */
dsc_status_t dsc_manifest_validate(dsc_manifest_t *m, char *err, size_t errsz);
/* Validates and serialises; returns malloc'ed NUL-terminated JSON (caller frees), or NULL
 * with the message in err. */
char *dsc_manifest_to_json(dsc_manifest_t *m, char *err, size_t errsz);
/* Parses and strictly validates manifest JSON (every field present and typed, no unknown
 * field; completeness as dsc_manifest_validate). `source` names the text in messages.
 * DSC_ERR_CORRUPT naming the source and the field ("tensors[3].pieces[0].end"). */
dsc_status_t dsc_manifest_parse(const char *text, size_t len, const char *source, dsc_manifest_t **out, char *err,
                                size_t errsz);
/* Writes (and fsyncs) the manifest to `path`, not atomically (dsc_ckpt_save_commit is). */
dsc_status_t dsc_manifest_write(dsc_manifest_t *m, const char *path, char *err, size_t errsz);
/* Reads `path`: DSC_ERR_IO when missing/unreadable, else as dsc_manifest_parse. */
dsc_status_t dsc_manifest_read(const char *path, dsc_manifest_t **out, char *err, size_t errsz);

/* ---- Atomic checkpoint directories --------------------------------------------------------- */

#define DSC_CKPT_MANIFEST_NAME "manifest.json"
#define DSC_CKPT_LATEST_NAME "latest"
#define DSC_CKPT_TAG_MAX 200

/* "global_step<N>", DeepSpeed's default tag. */
dsc_status_t dsc_ckpt_default_tag(int64_t global_steps, char *buf, size_t n);
/* The recommended per-rank file name "rank<RRRRR>.safetensors" (5 digits, zero-padded). */
dsc_status_t dsc_ckpt_rank_file_name(int rank, char *buf, size_t n);
/* A tag is 1..DSC_CKPT_TAG_MAX bytes of printable ASCII without '/', '\\' or a leading '.',
 * and not "latest"/"latest.tmp". DSC_ERR_INVALID otherwise. */
dsc_status_t dsc_ckpt_check_tag(const char *tag, char *err, size_t errsz);

typedef struct dsc_ckpt_save dsc_ckpt_save_t;

/* Starts a save: creates `save_dir` (and parents) if needed, removes stale temporary
 * directories (".tmp-*", ".old-*", ".del-*" left by processes that no longer exist on this
 * host), and creates the empty temporary directory <save_dir>/.tmp-<tag>-<pid>, where the
 * caller (all ranks) writes the checkpoint's files. Call on one rank only; share
 * dsc_ckpt_save_dir() with the others. */
dsc_status_t dsc_ckpt_save_begin(const char *save_dir, const char *tag, dsc_ckpt_save_t **out, char *err, size_t errsz);
/* The temporary directory the files go into, and the tag. */
const char *dsc_ckpt_save_dir(const dsc_ckpt_save_t *s);
const char *dsc_ckpt_save_tag(const dsc_ckpt_save_t *s);
/* Commits once every rank has closed its files: validates the manifest, checks that every
 * file it lists exists in the temporary directory with the recorded size (error names the
 * file), fsyncs every file, writes and fsyncs manifest.json, fsyncs the directory, renames
 * it to <save_dir>/<tag> (atomically replacing an existing one), fsyncs save_dir, and if
 * `save_latest` replaces <save_dir>/latest (the tag, no newline) via latest.tmp + fsync +
 * rename + fsync of save_dir. Always frees `s`; on failure the temporary directory is
 * removed and the previous checkpoint and latest are untouched. */
dsc_status_t dsc_ckpt_save_commit(dsc_ckpt_save_t *s, dsc_manifest_t *m, bool save_latest, char *err, size_t errsz);
/* Removes the temporary directory and frees `s`. NULL is a no-op. */
void dsc_ckpt_save_abort(dsc_ckpt_save_t *s);

/* Reads <save_dir>/latest (surrounding whitespace stripped) into tag[n]. *found is false
 * (and DSC_OK returned) when the file does not exist; DSC_ERR_CORRUPT when it does not hold a
 * valid tag, DSC_ERR_IO when it cannot be read. */
dsc_status_t dsc_ckpt_latest_tag(const char *save_dir, char *tag, size_t n, bool *found, char *err, size_t errsz);
/* Deletes checkpoint <save_dir>/<tag> (renamed away atomically, then removed). Refuses
 * (DSC_ERR_INVALID) the tag `latest` names. DSC_ERR_IO when it does not exist. */
dsc_status_t dsc_ckpt_remove_tag(const char *save_dir, const char *tag, char *err, size_t errsz);

/* ---- Reading a committed checkpoint -------------------------------------------------------- */

typedef struct dsc_ckpt dsc_ckpt_t;

/* When file checksums are verified. */
typedef enum dsc_ckpt_verify {
    DSC_CKPT_VERIFY_LAZY = 0, /* each file when first read from (default; reads it once more) */
    DSC_CKPT_VERIFY_ALL, /* every file at open */
    DSC_CKPT_VERIFY_NONE /* sizes only (a resharding reader touching every file) */
} dsc_ckpt_verify_t;

/* Opens <load_dir>/<tag> (tag NULL: the tag `latest` names). Reads and validates
 * manifest.json and checks that every listed file exists with its recorded size; with
 * DSC_CKPT_VERIFY_ALL also every checksum. Errors name the file: DSC_ERR_IO (no latest, the
 * tag's directory, manifest or a listed file missing), DSC_ERR_CORRUPT (malformed manifest,
 * wrong size = truncated, checksum mismatch). */
dsc_status_t dsc_ckpt_open(const char *load_dir, const char *tag, dsc_ckpt_verify_t verify, dsc_ckpt_t **out, char *err,
                           size_t errsz);
/* Opens a checkpoint directory given directly (<save_dir>/<tag>). */
dsc_status_t dsc_ckpt_open_dir(const char *dir, dsc_ckpt_verify_t verify, dsc_ckpt_t **out, char *err, size_t errsz);
void dsc_ckpt_close(dsc_ckpt_t *c);

const dsc_manifest_t *dsc_ckpt_manifest(const dsc_ckpt_t *c);
/* The checkpoint directory and its tag (the directory's base name). */
const char *dsc_ckpt_dir(const dsc_ckpt_t *c);
const char *dsc_ckpt_tag(const dsc_ckpt_t *c);

/* Reads elements [begin, end) of the tensor named `name` (or an alias) into `dst` as
 * `dst_dtype`, gathering from whichever pieces hold them (pread, bounded memory). Each file
 * is opened (and, under VERIFY_LAZY, checksummed) the first time it is needed; its entry
 * for the piece must exist with the manifest's dtype and element count.
 * DSC_ERR_INVALID (unknown name, bad range), DSC_ERR_IO / DSC_ERR_CORRUPT naming the file. */
dsc_status_t dsc_ckpt_read(dsc_ckpt_t *c, const char *name, int64_t begin, int64_t end, void *dst,
                           dsc_dtype_t dst_dtype, char *err, size_t errsz);
/* Verifies the checksum of every file not verified yet. DSC_ERR_CORRUPT naming the file. */
dsc_status_t dsc_ckpt_verify_files(dsc_ckpt_t *c, char *err, size_t errsz);

/* ---- Consolidation (dsc zero-to-fp32) ------------------------------------------------------- */

typedef struct dsc_ckpt_consolidate_options {
    const char *kind; /* only tensors of this kind (NULL: every tensor) */
    dsc_dtype_t dtype; /* output dtype; DSC_DTYPE_COUNT keeps each stored dtype */
    bool include_frozen; /* default true */
    bool write_aliases; /* also write each tied alias as its own copy (default false) */
    size_t chunk_bytes; /* memory bound of the copy buffer; 0: 8 MiB */
    unsigned writer_flags; /* DSC_ST_* flags for the output */
} dsc_ckpt_consolidate_options_t;
/* clang-format off */
#define DSC_CKPT_CONSOLIDATE_OPTIONS_INIT {NULL, DSC_DTYPE_COUNT, true, false, 0, 0}
/* clang-format on */

/* DSC_ERR_INVALID (the message names both) when writing a file at `path` would overwrite
 * part of the checkpoint `c` reads: `path`, with symbolic links resolved in its directory
 * and, when it exists, in itself, lies inside c's directory (its manifest, range files,
 * anything) or is the `latest` file of the save directory holding it. DSC_OK otherwise
 * (also when `path`'s directory does not exist: writing it fails with its own message). */
dsc_status_t dsc_ckpt_check_output_path(const dsc_ckpt_t *c, const char *path, char *err, size_t errsz);

/* Writes the selected tensors, full-shaped under their names in manifest order, into one
 * safetensors file at `out_path` (metadata {"format": "pt"}), tensor by tensor in chunks of
 * opts->chunk_bytes, converting to opts->dtype. `opts` NULL: defaults. *info (may be NULL)
 * receives the output's size and checksum. `out_path` is refused inside the checkpoint
 * (dsc_ckpt_check_output_path) and written atomically: on any failure, a full disk
 * included, a previous file at `out_path` is untouched. */
dsc_status_t dsc_ckpt_consolidate(dsc_ckpt_t *c, const char *out_path, const dsc_ckpt_consolidate_options_t *opts,
                                  dsc_st_file_info_t *info, char *err, size_t errsz);

/* ---- Export layouts (dsc zero-to-fp32 --layout) ---------------------------------------------- */

typedef enum dsc_ckpt_layout {
    DSC_CKPT_LAYOUT_STORED = 0,  /* every tensor as stored (dsc's Linear weights are [out, in]) */
    DSC_CKPT_LAYOUT_HF_GPT2 = 1, /* Hugging Face GPT-2: see dsc_ckpt_consolidate_layout */
} dsc_ckpt_layout_t;

/* The shape of the built-in GPT (dsc/gpt.h) as far as its parameters tell it (n_head is not
 * visible in the weights). */
typedef struct dsc_ckpt_gpt2_shape {
    int n_layer;
    int64_t n_embd, vocab_size, n_positions;
} dsc_ckpt_gpt2_shape_t;

/* True for the 2-D weights that Hugging Face's GPT-2 keeps in Conv1D modules, stored as
 * [in, out] (the transpose of dsc's [out, in]): "h.<l>.attn.c_attn.weight",
 * "h.<l>.attn.c_proj.weight", "h.<l>.mlp.c_fc.weight" and "h.<l>.mlp.c_proj.weight". */
bool dsc_ckpt_hf_gpt2_is_conv1d(const char *name);

/* Checks that the tensors of kind `kind` (NULL: every tensor) are exactly the built-in
 * GPT's parameters: wte.weight [V, C], wpe.weight [P, C], ln_f.{weight,bias} [C] and, for
 * l in 0..L-1, h.<l>.ln_1/ln_2 {weight,bias} [C], attn.c_attn {weight [3C, C], bias [3C]},
 * attn.c_proj {[C, C], [C]}, mlp.c_fc {[4C, C], [4C]}, mlp.c_proj {[C, 4C], [C]}; the only
 * alias allowed is lm_head.weight on wte.weight (the tied LM head). Fills *shape (may be
 * NULL). DSC_ERR_INVALID naming the checkpoint and the first tensor that is missing,
 * unexpected or misshapen. */
dsc_status_t dsc_ckpt_gpt2_shape(dsc_ckpt_t *c, const char *kind, dsc_ckpt_gpt2_shape_t *shape, char *err,
                                 size_t errsz);

/* dsc_ckpt_consolidate with a choice of layout. DSC_CKPT_LAYOUT_STORED is
 * dsc_ckpt_consolidate. DSC_CKPT_LAYOUT_HF_GPT2 first checks the selected tensors with
 * dsc_ckpt_gpt2_shape (opts->include_frozen must be true: the layout needs every
 * parameter), then writes them under the same names, which are those of Hugging Face's
 * GPT2Model state dict and of its published model.safetensors files, with every weight for
 * which dsc_ckpt_hf_gpt2_is_conv1d holds transposed to [in, out]: element [j][i] of the
 * output is element [i][j] of the checkpoint. No alias is written (transformers ties
 * lm_head.weight to wte.weight itself), so opts->write_aliases is ignored. The transpose
 * streams too, a band of output rows at a time through the same buffer, so memory stays
 * within opts->chunk_bytes (plus two output rows when one row is more than half of it). */
dsc_status_t dsc_ckpt_consolidate_layout(dsc_ckpt_t *c, const char *out_path,
                                         const dsc_ckpt_consolidate_options_t *opts, dsc_ckpt_layout_t layout,
                                         dsc_st_file_info_t *info, char *err, size_t errsz);

#ifdef __cplusplus
}
#endif
#endif
