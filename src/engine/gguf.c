/*
 * gguf.c - the GGUF reader: parse, validate, map.
 *
 * Design. A GGUF file is read in one forward pass over a byte buffer (the
 * read-only mmap of the file, or a caller's buffer). Every read goes through
 * a cursor that first checks how many bytes remain, so no read can leave the
 * buffer, whatever the file says. The file is treated as hostile:
 *
 *   - Counts (metadata entries, tensors, array elements) are checked against
 *     the bytes that remain before anything is allocated for them: an entry
 *     needs at least a fixed number of bytes on disk, so a count larger than
 *     remaining / that minimum cannot be honest. Hence every allocation is
 *     bounded by a small multiple of the file size.
 *   - String lengths are checked against the remaining bytes before copying.
 *   - Arrays may nest (arrays of arrays), but only NUAGE_GGUF_MAX_DEPTH deep,
 *     so recursion is bounded.
 *   - Tensor shapes: 1..4 dims, each dim in 1..INT64_MAX, every product
 *     (element count, row bytes, tensor bytes) checked for overflow; the
 *     type must be one the type table knows (quant.h) and the row length a
 *     multiple of its block size; offsets aligned to `general.alignment`
 *     (a non-zero power of two, 32 by default); data inside the file.
 *   - Duplicate keys and tensor names are rejected. They are found with an
 *     open-addressing hash table (also used for lookups), so opening a file
 *     with tens of thousands of entries stays linear.
 *
 * Overlapping tensor data is accepted (as llama.cpp does): it cannot cause
 * an out-of-bounds read, only odd weights.
 *
 * Metadata (keys, strings, arrays) is copied into an arena owned by the
 * handle, strings NUL-terminated, so it survives independently of the
 * mapping's page cache behaviour and callers get plain C strings. Tensor
 * data is never copied: `data` points into the mapping.
 *
 * Errors: the first failure wins; its message names the entry being read
 * ("metadata key 'general.name': ...", "tensor blk.0.attn_q.weight: ...")
 * with names escaped (non-printable bytes as \xNN) and shortened, since
 * they come from the file. Codes: NUAGE_E_FORMAT for malformed files,
 * NUAGE_E_UNSUPPORTED for valid files we do not read (GGUF v1, big-endian,
 * future versions), NUAGE_E_IO / NUAGE_E_NOMEM / NUAGE_E_INVAL otherwise.
 *
 * The reader assumes a little-endian host (as does the rest of the engine).
 */
#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/quant.h"
#include "nuage/nuage.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define NUAGE_GGUF_MAGIC "GGUF"
#define NUAGE_GGUF_DEFAULT_ALIGNMENT 32
/* Deepest nesting of arrays inside arrays that we accept. Real files use
 * at most one level (arrays of scalars or strings). */
#define NUAGE_GGUF_MAX_DEPTH 8
/* Hard caps on entry counts, beyond the remaining-bytes check. */
#define NUAGE_GGUF_MAX_KV (1u << 24)
#define NUAGE_GGUF_MAX_TENSORS (1u << 24)
/* Keys and tensor names are identifiers; the spec caps keys at 65535. */
#define NUAGE_GGUF_MAX_NAME 65535
/* Smallest on-disk sizes of entries that can be parsed at all (so that a
 * malformed entry gets its specific message, not a count error): a
 * metadata entry is key length (8) + value type (4) + smallest value (1);
 * a tensor info is name length (8) + n_dims (4) + type (4) + offset (8). */
#define NUAGE_GGUF_MIN_KV_BYTES 13
#define NUAGE_GGUF_MIN_TENSOR_BYTES 24

/* ---- arena: all metadata copies live here ------------------------------ */

typedef struct nuage__arena_block {
    struct nuage__arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} nuage__arena_block;

typedef struct {
    nuage__arena_block *head;
} nuage__arena;

/* Returns 16-byte aligned, uninitialised memory of n bytes that lives until
 * nuage__arena_free, or NULL when out of memory. */
static void *nuage__arena_alloc(nuage__arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    nuage__arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (size_t)1 << 16 ? n : (size_t)1 << 16;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0;
        b->cap = cap;
        /* A block made for one large request goes behind the current one so
         * the current block's free space is still used. */
        if (a->head && n > (size_t)1 << 15) {
            b->next = a->head->next;
            a->head->next = b;
            b->used = n;
            return b->data;
        }
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static void nuage__arena_free(nuage__arena *a) {
    nuage__arena_block *b = a->head;
    while (b) {
        nuage__arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- the handle --------------------------------------------------------- */

struct nuage_gguf {
    const uint8_t *base;   /* file bytes (mapping or caller's buffer) */
    size_t size;
    void *map;             /* non-NULL when we own an mmap of `size` bytes */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;  /* start of the tensor data section */
    uint64_t n_kv;
    nuage_gguf_kv *kv;
    uint64_t n_tensors;
    nuage_gguf_tensor *tensors;
    /* Open-addressing hash tables of indices + 1 (0 = empty slot);
     * capacities are powers of two, at least twice the entry count. */
    uint32_t *kv_hash;
    size_t kv_hash_cap;
    uint32_t *t_hash;
    size_t t_hash_cap;
    nuage__arena arena;
};

static uint64_t gguf_name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t nuage__hash_cap(uint64_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

/* Insert index i (name `name`) into a table; returns false when an entry of
 * the same name is already there. `name_of` reads the name of an index. */
static bool nuage__hash_insert(uint32_t *tab, size_t cap, const char *name, uint32_t i,
                               const char *(*name_of)(const nuage_gguf *, uint32_t),
                               const nuage_gguf *g) {
    size_t mask = cap - 1;
    for (size_t h = (size_t)gguf_name_hash(name) & mask;; h = (h + 1) & mask) {
        if (tab[h] == 0) {
            tab[h] = i + 1;
            return true;
        }
        if (!strcmp(name_of(g, tab[h] - 1), name)) return false;
    }
}

/* Index of `name` in a table, or -1. */
static int64_t nuage__hash_find(const uint32_t *tab, size_t cap, const char *name,
                                const char *(*name_of)(const nuage_gguf *, uint32_t),
                                const nuage_gguf *g) {
    if (!tab || !name) return -1;
    size_t mask = cap - 1;
    for (size_t h = (size_t)gguf_name_hash(name) & mask;; h = (h + 1) & mask) {
        if (tab[h] == 0) return -1;
        if (!strcmp(name_of(g, tab[h] - 1), name)) return (int64_t)tab[h] - 1;
    }
}

static const char *nuage__kv_name(const nuage_gguf *g, uint32_t i) { return g->kv[i].key.ptr; }
static const char *nuage__t_name(const nuage_gguf *g, uint32_t i) { return g->tensors[i].name; }

/* ---- the reader: a bounds-checked cursor with error reporting ----------- */

typedef struct {
    const uint8_t *buf;
    size_t size;
    size_t pos;
    nuage_gguf *g;
    char *err;
    size_t errlen;
    bool failed;
    char ctx[256];   /* what is being read, prefixed to messages */
} nuage__rd;

/* Record the first error (prefixed with the context) and return code. */
static int nuage__fail(nuage__rd *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int nuage__fail(nuage__rd *r, int code, const char *fmt, ...) {
    if (r->failed) return code;
    r->failed = true;
    if (!r->err || r->errlen == 0) return code;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->ctx[0])
        snprintf(r->err, r->errlen, "%s: %s", r->ctx, msg);
    else
        snprintf(r->err, r->errlen, "%s", msg);
    return code;
}

/* Escape a name from the file for messages: printable ASCII as is, other
 * bytes as \xNN, at most ~80 characters shown. */
static void nuage__escape(char *dst, size_t dstlen, const char *s, uint64_t len) {
    size_t o = 0;
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 >= dstlen || o >= 80) {
            snprintf(dst + o, dstlen - o, "...");
            return;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\')
            dst[o++] = (char)c;
        else
            o += (size_t)snprintf(dst + o, dstlen - o, "\\x%02x", c);
    }
    dst[o] = 0;
}

static uint64_t nuage__left(const nuage__rd *r) { return (uint64_t)(r->size - r->pos); }

/* Fixed-size little-endian reads; false (without message) when truncated. */
static bool nuage__get(nuage__rd *r, void *out, size_t n) {
    if (nuage__left(r) < n) return false;
    memcpy(out, r->buf + r->pos, n);
    r->pos += n;
    return true;
}

static bool nuage__u32(nuage__rd *r, uint32_t *v) { return nuage__get(r, v, 4); }
static bool nuage__u64(nuage__rd *r, uint64_t *v) { return nuage__get(r, v, 8); }

/*
 * Read a GGUF string (u64 length + bytes) and copy it, NUL-terminated, into
 * the arena. `what` names the length in messages ("key length", "string
 * length", ...). Returns 0 or a negative code (message written).
 */
static int nuage__str(nuage__rd *r, const char *what, nuage_gguf_str *out) {
    uint64_t len;
    if (!nuage__u64(r, &len))
        return nuage__fail(r, NUAGE_E_FORMAT, "%s runs past end of file", what);
    if (len > nuage__left(r))
        return nuage__fail(r, NUAGE_E_FORMAT, "%s %llu runs past end of file", what,
                           (unsigned long long)len);
    char *p = nuage__arena_alloc(&r->g->arena, (size_t)len + 1);
    if (!p) return nuage__fail(r, NUAGE_E_NOMEM, "out of memory copying a %llu-byte string",
                               (unsigned long long)len);
    memcpy(p, r->buf + r->pos, (size_t)len);
    p[len] = 0;
    r->pos += (size_t)len;
    out->ptr = p;
    out->len = len;
    return 0;
}

/* Keys and tensor names: a string that is non-empty, short enough, and
 * without NUL bytes (it is looked up as a C string). */
static int nuage__name(nuage__rd *r, const char *what, nuage_gguf_str *out) {
    char lenwhat[64];
    snprintf(lenwhat, sizeof lenwhat, "%s length", what);
    int rc = nuage__str(r, lenwhat, out);
    if (rc) return rc;
    if (out->len == 0) return nuage__fail(r, NUAGE_E_FORMAT, "empty %s", what);
    if (out->len > NUAGE_GGUF_MAX_NAME)
        return nuage__fail(r, NUAGE_E_FORMAT, "%s length %llu exceeds %u", what,
                           (unsigned long long)out->len, NUAGE_GGUF_MAX_NAME);
    if (memchr(out->ptr, 0, (size_t)out->len))
        return nuage__fail(r, NUAGE_E_FORMAT, "%s contains a NUL byte", what);
    return 0;
}

/* ---- metadata values ---------------------------------------------------- */

/* On-disk width of a scalar value type; 0 for STRING/ARRAY/unknown. */
static size_t nuage__scalar_width(uint32_t t) {
    switch (t) {
    case NUAGE_GGUF_UINT8: case NUAGE_GGUF_INT8: case NUAGE_GGUF_BOOL: return 1;
    case NUAGE_GGUF_UINT16: case NUAGE_GGUF_INT16: return 2;
    case NUAGE_GGUF_UINT32: case NUAGE_GGUF_INT32: case NUAGE_GGUF_FLOAT32: return 4;
    case NUAGE_GGUF_UINT64: case NUAGE_GGUF_INT64: case NUAGE_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Smallest on-disk size of one value of type t (t must be known). */
static size_t nuage__min_value_bytes(uint32_t t) {
    if (t == NUAGE_GGUF_STRING) return 8;   /* length */
    if (t == NUAGE_GGUF_ARRAY) return 12;   /* element type + count */
    return nuage__scalar_width(t);
}

/* Decode a scalar of type t from raw little-endian bytes into *out. */
static void nuage__scalar(uint32_t t, const uint8_t *p, nuage_gguf_value *out) {
    out->type = (nuage_gguf_vtype)t;
    switch (t) {
    case NUAGE_GGUF_UINT8: out->v.u64 = p[0]; break;
    case NUAGE_GGUF_INT8: out->v.i64 = (int8_t)p[0]; break;
    case NUAGE_GGUF_BOOL: out->v.b = p[0] != 0; break;
    case NUAGE_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); out->v.u64 = x; break; }
    case NUAGE_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); out->v.i64 = x; break; }
    case NUAGE_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); out->v.u64 = x; break; }
    case NUAGE_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); out->v.i64 = x; break; }
    case NUAGE_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); out->v.f64 = x; break; }
    case NUAGE_GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); out->v.u64 = x; break; }
    case NUAGE_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); out->v.i64 = x; break; }
    case NUAGE_GGUF_FLOAT64: { double x; memcpy(&x, p, 8); out->v.f64 = x; break; }
    default: break;
    }
}

static int nuage__value(nuage__rd *r, uint32_t type, nuage_gguf_value *out, int depth);

/* Read an array value (element type, count, elements) at nesting `depth`
 * (1 = an array directly under a key). */
static int nuage__array(nuage__rd *r, nuage_gguf_value *out, int depth) {
    uint32_t et;
    uint64_t n;
    if (!nuage__u32(r, &et) || !nuage__u64(r, &n))
        return nuage__fail(r, NUAGE_E_FORMAT, "array header runs past end of file");
    if (depth > NUAGE_GGUF_MAX_DEPTH)
        return nuage__fail(r, NUAGE_E_FORMAT, "arrays nested more than %d deep",
                           NUAGE_GGUF_MAX_DEPTH);
    if (et >= NUAGE_GGUF_VTYPE_COUNT)
        return nuage__fail(r, NUAGE_E_FORMAT, "array element type %u is unknown", et);
    size_t min = nuage__min_value_bytes(et);
    if (n > nuage__left(r) / min)
        return nuage__fail(r, NUAGE_E_FORMAT,
                           "array of %llu %s elements runs past end of file",
                           (unsigned long long)n, nuage_gguf_vtype_name((nuage_gguf_vtype)et));
    out->type = NUAGE_GGUF_ARRAY;
    out->v.arr.type = (nuage_gguf_vtype)et;
    out->v.arr.n = n;
    out->v.arr.data = NULL;
    if (n == 0) return 0;

    size_t w = nuage__scalar_width(et);
    if (w) { /* packed scalars: copied as they are on disk */
        uint8_t *d = nuage__arena_alloc(&r->g->arena, (size_t)n * w);
        if (!d) return nuage__fail(r, NUAGE_E_NOMEM, "out of memory for an array of %llu values",
                                   (unsigned long long)n);
        memcpy(d, r->buf + r->pos, (size_t)n * w);
        if (et == NUAGE_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (d[i] > 1)
                    return nuage__fail(r, NUAGE_E_FORMAT, "element %llu: bad bool value %u",
                                       (unsigned long long)i, d[i]);
        r->pos += (size_t)n * w;
        out->v.arr.data = d;
        return 0;
    }
    if (et == NUAGE_GGUF_STRING) {
        nuage_gguf_str *s = nuage__arena_alloc(&r->g->arena, (size_t)n * sizeof *s);
        if (!s) return nuage__fail(r, NUAGE_E_NOMEM, "out of memory for an array of %llu strings",
                                   (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            char what[64];
            snprintf(what, sizeof what, "element %llu: string length", (unsigned long long)i);
            int rc = nuage__str(r, what, &s[i]);
            if (rc) return rc;
        }
        out->v.arr.data = s;
        return 0;
    }
    /* Nested arrays: each element is a full value with its own header. */
    nuage_gguf_value *v = nuage__arena_alloc(&r->g->arena, (size_t)n * sizeof *v);
    if (!v) return nuage__fail(r, NUAGE_E_NOMEM, "out of memory for an array of %llu arrays",
                               (unsigned long long)n);
    size_t ctxlen = strlen(r->ctx);
    for (uint64_t i = 0; i < n; i++) {
        snprintf(r->ctx + ctxlen, sizeof r->ctx - ctxlen, ": element %llu", (unsigned long long)i);
        int rc = nuage__value(r, NUAGE_GGUF_ARRAY, &v[i], depth + 1);
        if (rc) return rc;
    }
    r->ctx[ctxlen] = 0;
    out->v.arr.data = v;
    return 0;
}

/* Read one value of the (already validated) type. */
static int nuage__value(nuage__rd *r, uint32_t type, nuage_gguf_value *out, int depth) {
    if (type == NUAGE_GGUF_STRING) {
        out->type = NUAGE_GGUF_STRING;
        return nuage__str(r, "string length", &out->v.str);
    }
    if (type == NUAGE_GGUF_ARRAY) return nuage__array(r, out, depth);
    size_t w = nuage__scalar_width(type);
    if (nuage__left(r) < w)
        return nuage__fail(r, NUAGE_E_FORMAT, "%s value runs past end of file",
                           nuage_gguf_vtype_name((nuage_gguf_vtype)type));
    const uint8_t *p = r->buf + r->pos;
    if (type == NUAGE_GGUF_BOOL && p[0] > 1)
        return nuage__fail(r, NUAGE_E_FORMAT, "bad bool value %u", p[0]);
    nuage__scalar(type, p, out);
    r->pos += w;
    return 0;
}

/* ---- header, metadata, tensor infos ------------------------------------- */

static int nuage__header(nuage__rd *r, uint64_t *n_tensors, uint64_t *n_kv) {
    if (r->size < 4)
        return nuage__fail(r, NUAGE_E_FORMAT, "file too small (%zu bytes) to be a GGUF file",
                           r->size);
    if (memcmp(r->buf, NUAGE_GGUF_MAGIC, 4)) {
        const uint8_t *m = r->buf;
        return nuage__fail(r, NUAGE_E_FORMAT, "bad magic 0x%02x%02x%02x%02x (not a GGUF file)",
                           m[0], m[1], m[2], m[3]);
    }
    r->pos = 4;
    uint32_t version;
    if (!nuage__u32(r, &version))
        return nuage__fail(r, NUAGE_E_FORMAT, "truncated header: no version");
    r->g->version = version;
    if (version == 1)
        return nuage__fail(r, NUAGE_E_UNSUPPORTED,
                           "unsupported GGUF version 1 (supported: 2 and 3)");
    if (version != 0 && (version & 0xffff) == 0 && __builtin_bswap32(version) <= 3)
        return nuage__fail(r, NUAGE_E_UNSUPPORTED,
                           "big-endian GGUF file (version %u byte-swapped) is not supported",
                           __builtin_bswap32(version));
    if (version == 0)
        return nuage__fail(r, NUAGE_E_FORMAT, "bad GGUF version 0");
    if (version > 3)
        return nuage__fail(r, NUAGE_E_UNSUPPORTED,
                           "unsupported GGUF version %u (supported: 2 and 3)", version);
    if (!nuage__u64(r, n_tensors) || !nuage__u64(r, n_kv))
        return nuage__fail(r, NUAGE_E_FORMAT, "truncated header (%zu bytes)", r->size);
    return 0;
}

static int nuage__metadata(nuage__rd *r, uint64_t n_kv) {
    nuage_gguf *g = r->g;
    if (n_kv > NUAGE_GGUF_MAX_KV)
        return nuage__fail(r, NUAGE_E_FORMAT, "metadata count %llu exceeds the limit of %u",
                           (unsigned long long)n_kv, NUAGE_GGUF_MAX_KV);
    if (n_kv > nuage__left(r) / NUAGE_GGUF_MIN_KV_BYTES)
        return nuage__fail(r, NUAGE_E_FORMAT,
                           "metadata count %llu is too large for the %llu bytes left in the file",
                           (unsigned long long)n_kv, (unsigned long long)nuage__left(r));
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->kv_hash_cap = nuage__hash_cap(n_kv);
    g->kv_hash = calloc(g->kv_hash_cap, sizeof *g->kv_hash);
    if (!g->kv || !g->kv_hash) return nuage__fail(r, NUAGE_E_NOMEM, "out of memory");

    for (uint64_t i = 0; i < n_kv; i++) {
        nuage_gguf_kv *kv = &g->kv[i];
        snprintf(r->ctx, sizeof r->ctx, "metadata entry %llu (of %llu)",
                 (unsigned long long)i, (unsigned long long)n_kv);
        int rc = nuage__name(r, "key", &kv->key);
        if (rc) return rc;
        char esc[128];
        nuage__escape(esc, sizeof esc, kv->key.ptr, kv->key.len);
        snprintf(r->ctx, sizeof r->ctx, "metadata key '%s'", esc);
        g->n_kv = i + 1; /* the hash may now look at this entry's key */
        if (!nuage__hash_insert(g->kv_hash, g->kv_hash_cap, kv->key.ptr, (uint32_t)i,
                                nuage__kv_name, g)) {
            r->ctx[0] = 0;
            return nuage__fail(r, NUAGE_E_FORMAT, "duplicate metadata key '%s'", esc);
        }
        uint32_t type;
        if (!nuage__u32(r, &type))
            return nuage__fail(r, NUAGE_E_FORMAT, "value type runs past end of file");
        if (type >= NUAGE_GGUF_VTYPE_COUNT)
            return nuage__fail(r, NUAGE_E_FORMAT, "unknown value type %u", type);
        rc = nuage__value(r, type, &kv->value, 1);
        if (rc) return rc;
    }
    r->ctx[0] = 0;

    /* general.alignment: an integer, a non-zero power of two. */
    g->alignment = NUAGE_GGUF_DEFAULT_ALIGNMENT;
    const nuage_gguf_value *a = nuage_gguf_get(g, "general.alignment");
    if (a) {
        uint64_t v;
        switch (a->type) {
        case NUAGE_GGUF_UINT8: case NUAGE_GGUF_UINT16: case NUAGE_GGUF_UINT32:
        case NUAGE_GGUF_UINT64:
            v = a->v.u64;
            break;
        case NUAGE_GGUF_INT8: case NUAGE_GGUF_INT16: case NUAGE_GGUF_INT32:
        case NUAGE_GGUF_INT64:
            if (a->v.i64 <= 0)
                return nuage__fail(r, NUAGE_E_FORMAT,
                                   "general.alignment must be a non-zero power of two, got %lld",
                                   (long long)a->v.i64);
            v = (uint64_t)a->v.i64;
            break;
        default:
            return nuage__fail(r, NUAGE_E_FORMAT,
                               "general.alignment has type %s, expected uint32",
                               nuage_gguf_vtype_name(a->type));
        }
        if (v == 0 || (v & (v - 1)) || v > ((uint64_t)1 << 30))
            return nuage__fail(r, NUAGE_E_FORMAT,
                               "general.alignment must be a non-zero power of two "
                               "(at most 2^30), got %llu", (unsigned long long)v);
        g->alignment = v;
    }
    return 0;
}

/* Read one tensor info and check its shape and type (not yet its place in
 * the file: the data section starts after the last info). */
static int nuage__tensor_info(nuage__rd *r, uint64_t i, uint64_t n) {
    nuage_gguf *g = r->g;
    nuage_gguf_tensor *t = &g->tensors[i];
    snprintf(r->ctx, sizeof r->ctx, "tensor info %llu (of %llu)",
             (unsigned long long)i, (unsigned long long)n);
    nuage_gguf_str name;
    int rc = nuage__name(r, "name", &name);
    if (rc) return rc;
    t->name = name.ptr;
    char esc[128];
    nuage__escape(esc, sizeof esc, name.ptr, name.len);
    snprintf(r->ctx, sizeof r->ctx, "tensor %s", esc);

    if (!nuage__u32(r, &t->n_dims))
        return nuage__fail(r, NUAGE_E_FORMAT, "n_dims runs past end of file");
    if (t->n_dims < 1 || t->n_dims > NUAGE_GGUF_MAX_DIMS)
        return nuage__fail(r, NUAGE_E_FORMAT, "n_dims %u out of range 1..%d", t->n_dims,
                           NUAGE_GGUF_MAX_DIMS);
    for (int d = 0; d < NUAGE_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if (!nuage__u64(r, &v))
            return nuage__fail(r, NUAGE_E_FORMAT, "dimensions run past end of file");
        if (v == 0)
            return nuage__fail(r, NUAGE_E_FORMAT, "dimension %u is 0", d);
        if (v > (uint64_t)INT64_MAX)
            return nuage__fail(r, NUAGE_E_FORMAT, "dimension %u is negative (%lld)", d,
                               (long long)v);
        t->ne[d] = (int64_t)v;
    }
    if (!nuage__u32(r, &t->type) || !nuage__u64(r, &t->offset))
        return nuage__fail(r, NUAGE_E_FORMAT, "type/offset run past end of file");

    const nuage_type_traits *tt = nuage_type_get(t->type);
    if (!tt || !tt->name)
        return nuage__fail(r, NUAGE_E_FORMAT, "unknown tensor type id %u", t->type);
    if (t->ne[0] % tt->blck_size)
        return nuage__fail(r, NUAGE_E_FORMAT,
                           "row length %lld is not a multiple of the %s block size %d",
                           (long long)t->ne[0], tt->name, tt->blck_size);
    /* Element count and byte size, every product checked. */
    int64_t nel = t->ne[0];
    uint64_t bytes = (uint64_t)(t->ne[0] / tt->blck_size);
    bool ovf = __builtin_mul_overflow(bytes, (uint64_t)tt->type_size, &bytes);
    for (int d = 1; d < NUAGE_GGUF_MAX_DIMS; d++) {
        ovf |= __builtin_mul_overflow(nel, t->ne[d], &nel);
        ovf |= __builtin_mul_overflow(bytes, (uint64_t)t->ne[d], &bytes);
    }
    if (ovf || bytes > (uint64_t)SIZE_MAX)
        return nuage__fail(r, NUAGE_E_FORMAT,
                           "shape %lld x %lld x %lld x %lld overflows the element or byte count",
                           (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                           (long long)t->ne[3]);
    /* Cross-check with the type table's own row size. */
    if (nuage_row_size(t->type, t->ne[0]) * (uint64_t)(nel / t->ne[0]) != bytes)
        return nuage__fail(r, NUAGE_E_FORMAT, "inconsistent size for type %s", tt->name);
    t->nbytes = bytes;
    if (t->offset % g->alignment)
        return nuage__fail(r, NUAGE_E_FORMAT,
                           "offset %llu is not a multiple of the alignment %llu",
                           (unsigned long long)t->offset, (unsigned long long)g->alignment);
    return 0;
}

static int nuage__tensors(nuage__rd *r, uint64_t n) {
    nuage_gguf *g = r->g;
    if (n > NUAGE_GGUF_MAX_TENSORS)
        return nuage__fail(r, NUAGE_E_FORMAT, "tensor count %llu exceeds the limit of %u",
                           (unsigned long long)n, NUAGE_GGUF_MAX_TENSORS);
    if (n > nuage__left(r) / NUAGE_GGUF_MIN_TENSOR_BYTES)
        return nuage__fail(r, NUAGE_E_FORMAT,
                           "tensor count %llu is too large for the %llu bytes left in the file",
                           (unsigned long long)n, (unsigned long long)nuage__left(r));
    g->tensors = calloc(n ? n : 1, sizeof *g->tensors);
    g->t_hash_cap = nuage__hash_cap(n);
    g->t_hash = calloc(g->t_hash_cap, sizeof *g->t_hash);
    if (!g->tensors || !g->t_hash) return nuage__fail(r, NUAGE_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        int rc = nuage__tensor_info(r, i, n);
        if (rc) return rc;
        g->n_tensors = i + 1;
        if (!nuage__hash_insert(g->t_hash, g->t_hash_cap, g->tensors[i].name, (uint32_t)i,
                                nuage__t_name, g)) {
            r->ctx[0] = 0;
            char esc[128];
            nuage__escape(esc, sizeof esc, g->tensors[i].name, strlen(g->tensors[i].name));
            return nuage__fail(r, NUAGE_E_FORMAT, "duplicate tensor name %s", esc);
        }
    }
    r->ctx[0] = 0;

    /* The data section starts at the next multiple of the alignment. */
    uint64_t pos = r->pos, data = pos + (g->alignment - 1 - (pos + g->alignment - 1) % g->alignment);
    g->data_offset = data;
    uint64_t avail = data <= r->size ? r->size - data : 0;
    for (uint64_t i = 0; i < n; i++) {
        nuage_gguf_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            char esc[128];
            nuage__escape(esc, sizeof esc, t->name, strlen(t->name));
            return nuage__fail(r, NUAGE_E_FORMAT,
                               "tensor %s: data runs past end of file (offset %llu + %llu bytes, "
                               "data section holds %llu bytes)",
                               esc, (unsigned long long)t->offset,
                               (unsigned long long)t->nbytes, (unsigned long long)avail);
        }
        t->data = r->buf + data + t->offset;
    }
    return 0;
}

/* ---- open / close ------------------------------------------------------- */

static int nuage__parse(nuage_gguf *g, char *err, size_t errlen) {
    nuage__rd r = {.buf = g->base, .size = g->size, .g = g, .err = err, .errlen = errlen};
    uint64_t n_tensors = 0, n_kv = 0;
    int rc = nuage__header(&r, &n_tensors, &n_kv);
    if (!rc) rc = nuage__metadata(&r, n_kv);
    if (!rc) rc = nuage__tensors(&r, n_tensors);
    return rc;
}

static void nuage__free(nuage_gguf *g) {
    if (!g) return;
    nuage__arena_free(&g->arena);
    free(g->kv);
    free(g->kv_hash);
    free(g->tensors);
    free(g->t_hash);
    if (g->map) munmap(g->map, g->size);
    free(g);
}

static void nuage__seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void nuage__seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int nuage_gguf_open_buffer(const void *buf, size_t size, nuage_gguf **out,
                           char *err, size_t errlen) {
    if (!out) return NUAGE_E_INVAL;
    *out = NULL;
    if (!buf && size) {
        nuage__seterr(err, errlen, "NULL buffer");
        return NUAGE_E_INVAL;
    }
    nuage_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        nuage__seterr(err, errlen, "out of memory");
        return NUAGE_E_NOMEM;
    }
    g->base = buf;
    g->size = size;
    int rc = nuage__parse(g, err, errlen);
    if (rc) {
        nuage__free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int nuage_gguf_open(const char *path, nuage_gguf **out, char *err, size_t errlen) {
    if (!out) return NUAGE_E_INVAL;
    *out = NULL;
    if (!path) {
        nuage__seterr(err, errlen, "no file name");
        return NUAGE_E_INVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nuage__seterr(err, errlen, "cannot open: %s", strerror(errno));
        return NUAGE_E_IO;
    }
    int rc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        nuage__seterr(err, errlen, "cannot stat: %s", strerror(errno));
        rc = NUAGE_E_IO;
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        nuage__seterr(err, errlen, "not a regular file");
        rc = NUAGE_E_IO;
        goto fail_fd;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        nuage__seterr(err, errlen, "file too large to map");
        rc = NUAGE_E_IO;
        goto fail_fd;
    }
    nuage_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        nuage__seterr(err, errlen, "out of memory");
        rc = NUAGE_E_NOMEM;
        goto fail_fd;
    }
    g->size = (size_t)st.st_size;
    if (g->size > 0) { /* mmap of 0 bytes fails; an empty file fails parsing */
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            nuage__seterr(err, errlen, "cannot map %zu bytes: %s", g->size, strerror(errno));
            rc = NUAGE_E_IO;
            goto fail_g;
        }
        g->map = m;
        g->base = m;
    }
    close(fd);
    fd = -1;
    rc = nuage__parse(g, err, errlen);
    if (rc) goto fail_g;
    *out = g;
    return 0;

fail_g:
    nuage__free(g);
fail_fd:
    if (fd >= 0) close(fd);
    return rc;
}

void nuage_gguf_close(nuage_gguf *g) { nuage__free(g); }

/* ---- accessors ---------------------------------------------------------- */

uint32_t nuage_gguf_version(const nuage_gguf *g) { return g->version; }
uint64_t nuage_gguf_n_kv(const nuage_gguf *g) { return g->n_kv; }
uint64_t nuage_gguf_n_tensors(const nuage_gguf *g) { return g->n_tensors; }
uint64_t nuage_gguf_alignment(const nuage_gguf *g) { return g->alignment; }
uint64_t nuage_gguf_file_size(const nuage_gguf *g) { return g->size; }
uint64_t nuage_gguf_data_offset(const nuage_gguf *g) { return g->data_offset; }

const nuage_gguf_kv *nuage_gguf_kv_at(const nuage_gguf *g, uint64_t i) {
    return i < g->n_kv ? &g->kv[i] : NULL;
}

const nuage_gguf_tensor *nuage_gguf_tensor_at(const nuage_gguf *g, uint64_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const nuage_gguf_value *nuage_gguf_get(const nuage_gguf *g, const char *key) {
    int64_t i = nuage__hash_find(g->kv_hash, g->kv_hash_cap, key, nuage__kv_name, g);
    return i < 0 ? NULL : &g->kv[i].value;
}

const nuage_gguf_tensor *nuage_gguf_find_tensor(const nuage_gguf *g, const char *name) {
    int64_t i = nuage__hash_find(g->t_hash, g->t_hash_cap, name, nuage__t_name, g);
    return i < 0 ? NULL : &g->tensors[i];
}

static bool nuage__is_uint(nuage_gguf_vtype t) {
    return t == NUAGE_GGUF_UINT8 || t == NUAGE_GGUF_UINT16 || t == NUAGE_GGUF_UINT32 ||
           t == NUAGE_GGUF_UINT64;
}

static bool nuage__is_sint(nuage_gguf_vtype t) {
    return t == NUAGE_GGUF_INT8 || t == NUAGE_GGUF_INT16 || t == NUAGE_GGUF_INT32 ||
           t == NUAGE_GGUF_INT64;
}

bool nuage_gguf_get_u32(const nuage_gguf *g, const char *key, uint32_t *out) {
    const nuage_gguf_value *v = nuage_gguf_get(g, key);
    if (!v) return false;
    if (nuage__is_uint(v->type) && v->v.u64 <= UINT32_MAX) {
        *out = (uint32_t)v->v.u64;
        return true;
    }
    if (nuage__is_sint(v->type) && v->v.i64 >= 0 && v->v.i64 <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)v->v.i64;
        return true;
    }
    return false;
}

bool nuage_gguf_get_i64(const nuage_gguf *g, const char *key, int64_t *out) {
    const nuage_gguf_value *v = nuage_gguf_get(g, key);
    if (!v) return false;
    if (nuage__is_uint(v->type) && v->v.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->v.u64;
        return true;
    }
    if (nuage__is_sint(v->type)) {
        *out = v->v.i64;
        return true;
    }
    return false;
}

bool nuage_gguf_get_f32(const nuage_gguf *g, const char *key, float *out) {
    const nuage_gguf_value *v = nuage_gguf_get(g, key);
    if (!v) return false;
    if (nuage__is_uint(v->type)) *out = (float)v->v.u64;
    else if (nuage__is_sint(v->type)) *out = (float)v->v.i64;
    else if (v->type == NUAGE_GGUF_FLOAT32 || v->type == NUAGE_GGUF_FLOAT64) {
        /* A finite double beyond float range would become infinity. */
        if (isfinite(v->v.f64) && (v->v.f64 > FLT_MAX || v->v.f64 < -FLT_MAX)) return false;
        *out = (float)v->v.f64;
    } else {
        return false;
    }
    return true;
}

bool nuage_gguf_get_bool(const nuage_gguf *g, const char *key, bool *out) {
    const nuage_gguf_value *v = nuage_gguf_get(g, key);
    if (!v || v->type != NUAGE_GGUF_BOOL) return false;
    *out = v->v.b;
    return true;
}

const char *nuage_gguf_get_str(const nuage_gguf *g, const char *key, uint64_t *len) {
    const nuage_gguf_value *v = nuage_gguf_get(g, key);
    if (!v || v->type != NUAGE_GGUF_STRING) return NULL;
    if (len) *len = v->v.str.len;
    return v->v.str.ptr;
}

const nuage_gguf_value *nuage_gguf_get_arr(const nuage_gguf *g, const char *key,
                                           nuage_gguf_vtype elem_type) {
    const nuage_gguf_value *v = nuage_gguf_get(g, key);
    if (!v || v->type != NUAGE_GGUF_ARRAY || v->v.arr.type != elem_type) return NULL;
    return v;
}

const char *nuage_gguf_vtype_name(nuage_gguf_vtype t) {
    static const char *const names[NUAGE_GGUF_VTYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64",
    };
    return (unsigned)t < NUAGE_GGUF_VTYPE_COUNT ? names[t] : "unknown";
}
