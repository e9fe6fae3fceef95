/*
 * gguf_write.h - writing GGUF v3 files (the counterpart of gguf.h).
 *
 * A writer collects metadata key/value pairs and tensors in memory, in the
 * order they are added, and serialises them in one go: header, metadata,
 * tensor infos, padding to `general.alignment` (32 unless the caller sets
 * that key, which must then be a uint32 power of two), tensor data, each
 * tensor starting at a multiple of the alignment. Setting a key that
 * already exists replaces its value in place (so the order stays stable).
 *
 * Files are written atomically: to "PATH.tmp.<pid>", flushed, then renamed
 * over PATH, so a reader (or a resumed training run) never sees a half
 * written file, even if the process is killed in the middle.
 *
 * Tensor data is copied when added, so the caller's buffers may be freed
 * at once. Everything is little-endian (as GGUF is; we run on x86-64 and
 * aarch64 only).
 */
#ifndef NUAGE_GGUF_WRITE_H
#define NUAGE_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

typedef struct nuage_gguf_writer nuage_gguf_writer;

/* A new, empty writer; NULL on out-of-memory. */
nuage_gguf_writer *nuage_gguf_writer_new(void);
void nuage_gguf_writer_free(nuage_gguf_writer *w);

/*
 * Metadata setters. Each returns 0, NUAGE_E_NOMEM, or NUAGE_E_INVAL (NULL
 * key, key longer than 65535 bytes, bad element type). Strings are copied.
 */
int nuage_gguf_writer_set_u8(nuage_gguf_writer *w, const char *key, uint8_t v);
int nuage_gguf_writer_set_i8(nuage_gguf_writer *w, const char *key, int8_t v);
int nuage_gguf_writer_set_u16(nuage_gguf_writer *w, const char *key, uint16_t v);
int nuage_gguf_writer_set_i16(nuage_gguf_writer *w, const char *key, int16_t v);
int nuage_gguf_writer_set_u32(nuage_gguf_writer *w, const char *key, uint32_t v);
int nuage_gguf_writer_set_i32(nuage_gguf_writer *w, const char *key, int32_t v);
int nuage_gguf_writer_set_u64(nuage_gguf_writer *w, const char *key, uint64_t v);
int nuage_gguf_writer_set_i64(nuage_gguf_writer *w, const char *key, int64_t v);
int nuage_gguf_writer_set_f32(nuage_gguf_writer *w, const char *key, float v);
int nuage_gguf_writer_set_f64(nuage_gguf_writer *w, const char *key, double v);
int nuage_gguf_writer_set_bool(nuage_gguf_writer *w, const char *key, bool v);
int nuage_gguf_writer_set_str(nuage_gguf_writer *w, const char *key, const char *s);
int nuage_gguf_writer_set_strn(nuage_gguf_writer *w, const char *key, const char *s, size_t n);
/* Array of n numeric or bool elements of type elem (packed, in the type's
 * width: uint8_t, int16_t, float, ...; BOOL as uint8_t 0/1). */
int nuage_gguf_writer_set_arr(nuage_gguf_writer *w, const char *key, nuage_gguf_vtype elem,
                              const void *data, size_t n);
/* Array of n strings (NUL-terminated). */
int nuage_gguf_writer_set_arr_str(nuage_gguf_writer *w, const char *key,
                                  const char *const *strs, size_t n);
/* Copy any value read by the GGUF reader (nested arrays included). */
int nuage_gguf_writer_set_value(nuage_gguf_writer *w, const char *key, const nuage_gguf_value *v);

/*
 * Add a tensor: name (unique, < 64 KiB), ggml type (quant.h), n_dims (1..4)
 * dims ne[] innermost first, and its data (nuage_row_size(type, ne[0]) *
 * the other dims bytes; copied). Returns 0, NUAGE_E_INVAL (bad shape or
 * type, duplicate name, size mismatch with nbytes) or NUAGE_E_NOMEM.
 */
int nuage_gguf_writer_add_tensor(nuage_gguf_writer *w, const char *name, uint32_t type,
                                 int n_dims, const int64_t *ne, const void *data, size_t nbytes);

/* Serialise to a malloc'd buffer (*out, *len; caller frees). 0 or
 * NUAGE_E_NOMEM / NUAGE_E_INVAL (general.alignment set to a bad value). */
int nuage_gguf_writer_to_buffer(const nuage_gguf_writer *w, void **out, size_t *len);

/* Serialise to a file atomically (see above). 0, or NUAGE_E_IO with the
 * reason in err, or the codes of _to_buffer. */
int nuage_gguf_writer_write_file(const nuage_gguf_writer *w, const char *path, char *err,
                                 size_t errlen);

/* Write len bytes to path atomically (temp file + fsync + rename). 0 or
 * NUAGE_E_IO with the reason in err. Used for checkpoints as well. */
int nuage_write_file_atomic(const char *path, const void *data, size_t len, char *err,
                            size_t errlen);

#endif
