/*
 * gguf.h - reading GGUF files (the llama.cpp ecosystem's model format).
 *
 * A GGUF file is: a header (magic "GGUF", version, tensor count, metadata
 * count), metadata key/value pairs, tensor infos (name, dims, type, offset),
 * padding to `general.alignment`, then the tensor data section. We map the
 * whole file read-only with mmap and never copy weights: a tensor's `data`
 * points into the mapping. Metadata (keys, strings, arrays) is copied into
 * heap memory owned by the nuage_gguf handle, with every string
 * NUL-terminated, so callers may use it as C strings.
 *
 * Everything in the file is validated before use (see gguf.c): a hostile or
 * truncated file yields NUAGE_E_FORMAT and a message naming the problem,
 * never an out-of-bounds read.
 */
#ifndef NUAGE_GGUF_H
#define NUAGE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGUF metadata value types (numbering as in the GGUF specification). */
typedef enum {
    NUAGE_GGUF_UINT8 = 0, NUAGE_GGUF_INT8 = 1, NUAGE_GGUF_UINT16 = 2,
    NUAGE_GGUF_INT16 = 3, NUAGE_GGUF_UINT32 = 4, NUAGE_GGUF_INT32 = 5,
    NUAGE_GGUF_FLOAT32 = 6, NUAGE_GGUF_BOOL = 7, NUAGE_GGUF_STRING = 8,
    NUAGE_GGUF_ARRAY = 9, NUAGE_GGUF_UINT64 = 10, NUAGE_GGUF_INT64 = 11,
    NUAGE_GGUF_FLOAT64 = 12,
    NUAGE_GGUF_VTYPE_COUNT
} nuage_gguf_vtype;

typedef struct {
    const char *ptr;   /* NUL-terminated copy (may also contain inner NULs) */
    uint64_t len;      /* length in bytes, without the terminator */
} nuage_gguf_str;

typedef struct nuage_gguf_value nuage_gguf_value;
struct nuage_gguf_value {
    nuage_gguf_vtype type;
    union {
        uint64_t u64;      /* UINT8/16/32/64 (zero-extended) */
        int64_t  i64;      /* INT8/16/32/64 (sign-extended) */
        double   f64;      /* FLOAT32/FLOAT64 */
        bool     b;        /* BOOL */
        nuage_gguf_str str;/* STRING */
        struct {
            nuage_gguf_vtype type; /* element type */
            uint64_t n;            /* element count */
            /* Elements: for numeric and bool types a packed array in the
             * file's element width (uint8_t, int16_t, float, ... ; BOOL as
             * uint8_t 0/1); for STRING an array of nuage_gguf_str; for ARRAY
             * (nested) an array of nuage_gguf_value. */
            const void *data;
        } arr;
    } v;
};

typedef struct {
    nuage_gguf_str key;
    nuage_gguf_value value;
} nuage_gguf_kv;

/* Maximum number of dimensions GGUF allows a tensor. */
#define NUAGE_GGUF_MAX_DIMS 4

typedef struct {
    const char *name;        /* NUL-terminated */
    uint32_t type;           /* ggml type id, see quant.h (nuage_type) */
    uint32_t n_dims;
    int64_t ne[NUAGE_GGUF_MAX_DIMS]; /* dims, innermost first; unused = 1 */
    uint64_t offset;         /* relative to the data section */
    uint64_t nbytes;         /* bytes of data, computed from type and dims */
    const void *data;        /* points into the mapping */
} nuage_gguf_tensor;

typedef struct nuage_gguf nuage_gguf;

/*
 * Open and validate a GGUF file. On success returns 0 and sets *out (caller
 * owns it; free with nuage_gguf_close). On failure returns a negative
 * NUAGE_E_* code (NUAGE_E_IO, NUAGE_E_FORMAT, NUAGE_E_UNSUPPORTED,
 * NUAGE_E_NOMEM), sets *out to NULL, and writes a one-line message naming
 * the problem into err (if err != NULL), e.g.
 * "tensor blk.3.attn_q.weight: data runs past end of file".
 */
int nuage_gguf_open(const char *path, nuage_gguf **out, char *err, size_t errlen);

/* Same, over a caller-owned memory buffer (used by tests and fuzzers). The
 * buffer must outlive the handle. */
int nuage_gguf_open_buffer(const void *buf, size_t size, nuage_gguf **out,
                           char *err, size_t errlen);

void nuage_gguf_close(nuage_gguf *g);

uint32_t nuage_gguf_version(const nuage_gguf *g);
uint64_t nuage_gguf_n_kv(const nuage_gguf *g);
const nuage_gguf_kv *nuage_gguf_kv_at(const nuage_gguf *g, uint64_t i);
uint64_t nuage_gguf_n_tensors(const nuage_gguf *g);
const nuage_gguf_tensor *nuage_gguf_tensor_at(const nuage_gguf *g, uint64_t i);
uint64_t nuage_gguf_alignment(const nuage_gguf *g);
uint64_t nuage_gguf_file_size(const nuage_gguf *g);
/* Byte offset of the tensor data section from the start of the file. */
uint64_t nuage_gguf_data_offset(const nuage_gguf *g);

/* Lookup by exact key / name; NULL when absent. */
const nuage_gguf_value *nuage_gguf_get(const nuage_gguf *g, const char *key);
const nuage_gguf_tensor *nuage_gguf_find_tensor(const nuage_gguf *g, const char *name);

/*
 * Typed getters. Each returns true and stores the value when the key exists
 * and converts without loss (any integer type to an integer within range;
 * any integer or float type to a float); false otherwise (out untouched).
 */
bool nuage_gguf_get_u32(const nuage_gguf *g, const char *key, uint32_t *out);
bool nuage_gguf_get_i64(const nuage_gguf *g, const char *key, int64_t *out);
bool nuage_gguf_get_f32(const nuage_gguf *g, const char *key, float *out);
bool nuage_gguf_get_bool(const nuage_gguf *g, const char *key, bool *out);
/* Returns the NUL-terminated string or NULL; *len (if non-NULL) its length. */
const char *nuage_gguf_get_str(const nuage_gguf *g, const char *key, uint64_t *len);
/* Array of the given element type: returns the array value or NULL when the
 * key is missing, not an array, or of another element type. */
const nuage_gguf_value *nuage_gguf_get_arr(const nuage_gguf *g, const char *key,
                                           nuage_gguf_vtype elem_type);

/* Name of a metadata value type ("uint32", "string", ...). */
const char *nuage_gguf_vtype_name(nuage_gguf_vtype t);

#endif
