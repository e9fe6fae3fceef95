/*
 * test_gguf_writer.h - a tiny GGUF writer for the GGUF reader's tests.
 *
 * Independent of the reader: it follows the GGUF layout (header, metadata,
 * tensor infos, padding to the alignment, data) byte by byte, and lets a
 * test write hostile bytes anywhere (raw counts, lengths, type ids) to
 * check the reader's validation. Everything is little-endian.
 *
 * Usage: gw_init(&w, version); add metadata with gw_kv_* (or gw_key +
 * gw_raw_* for hand-made values), tensors with gw_tensor (data appended and
 * aligned) or gw_tensor_info (any offset); gw_finish returns a malloc'd file.
 */
#ifndef NUAGE_TEST_GGUF_WRITER_H
#define NUAGE_TEST_GGUF_WRITER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gw_buf;

typedef struct {
    uint32_t version;
    uint64_t alignment;     /* used to place tensor data and pad the file */
    gw_buf kv, ti, data;
    uint64_t n_kv, n_ti;
    /* When set, the header carries these counts instead of the real ones. */
    int override_counts;
    uint64_t hdr_n_kv, hdr_n_ti;
} gw;

static inline void gw_put(gw_buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static inline void gw_u8(gw_buf *b, uint8_t v) { gw_put(b, &v, 1); }
static inline void gw_u16(gw_buf *b, uint16_t v) { gw_put(b, &v, 2); }
static inline void gw_u32(gw_buf *b, uint32_t v) { gw_put(b, &v, 4); }
static inline void gw_u64(gw_buf *b, uint64_t v) { gw_put(b, &v, 8); }
static inline void gw_f32(gw_buf *b, float v) { gw_put(b, &v, 4); }
static inline void gw_f64(gw_buf *b, double v) { gw_put(b, &v, 8); }
static inline void gw_strn(gw_buf *b, const char *s, size_t n) { gw_u64(b, n); gw_put(b, s, n); }
static inline void gw_str(gw_buf *b, const char *s) { gw_strn(b, s, strlen(s)); }

static inline void gw_init(gw *w, uint32_t version) {
    memset(w, 0, sizeof *w);
    w->version = version;
    w->alignment = 32;
}

static inline void gw_free(gw *w) {
    free(w->kv.p);
    free(w->ti.p);
    free(w->data.p);
}

/* Start a metadata entry: key and value type; the caller writes the value
 * into w->kv. */
static inline void gw_key(gw *w, const char *key, uint32_t vtype) {
    gw_str(&w->kv, key);
    gw_u32(&w->kv, vtype);
    w->n_kv++;
}

static inline void gw_kv_u32(gw *w, const char *k, uint32_t v) { gw_key(w, k, 4); gw_u32(&w->kv, v); }
static inline void gw_kv_str(gw *w, const char *k, const char *v) { gw_key(w, k, 8); gw_str(&w->kv, v); }

/* A tensor info with explicit offset (no data written). */
static inline void gw_tensor_info(gw *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                                  uint32_t type, uint64_t offset) {
    gw_str(&w->ti, name);
    gw_u32(&w->ti, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) gw_u64(&w->ti, dims[d]);
    gw_u32(&w->ti, type);
    gw_u64(&w->ti, offset);
    w->n_ti++;
}

/* A tensor whose data (nbytes from src) is appended to the data section at
 * the next aligned offset; returns that offset. */
static inline uint64_t gw_tensor(gw *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                                 uint32_t type, const void *src, size_t nbytes) {
    static const uint8_t zeros[4096];
    while (w->data.n % w->alignment) gw_u8(&w->data, 0);
    uint64_t off = w->data.n;
    gw_tensor_info(w, name, n_dims, dims, type, off);
    if (src) gw_put(&w->data, src, nbytes);
    else
        for (size_t done = 0; done < nbytes;) {
            size_t k = nbytes - done < sizeof zeros ? nbytes - done : sizeof zeros;
            gw_put(&w->data, zeros, k);
            done += k;
        }
    return off;
}

/* The complete file (malloc'd, caller frees); *len its size. The data
 * section starts at the first multiple of w->alignment after the infos. */
static inline uint8_t *gw_finish(gw *w, size_t *len) {
    gw_buf f = {0};
    gw_put(&f, "GGUF", 4);
    gw_u32(&f, w->version);
    gw_u64(&f, w->override_counts ? w->hdr_n_ti : w->n_ti);
    gw_u64(&f, w->override_counts ? w->hdr_n_kv : w->n_kv);
    gw_put(&f, w->kv.p, w->kv.n);
    gw_put(&f, w->ti.p, w->ti.n);
    if (w->data.n) {
        while (f.n % w->alignment) gw_u8(&f, 0);
        gw_put(&f, w->data.p, w->data.n);
    }
    *len = f.n;
    return f.p;
}

#endif
