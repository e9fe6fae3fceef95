/*
 * gguf_write.c - the GGUF v3 writer (see gguf_write.h).
 *
 * Design: every metadata pair is serialised into its own small byte
 * buffer as soon as it is set (type tag + value, exactly as it will sit in
 * the file), so serialising the file is only concatenation, and replacing
 * a key swaps one buffer. Tensors keep a copy of their data; their offsets
 * are assigned at serialisation time, each rounded up to the alignment.
 * The only value we have to look at again when writing is
 * general.alignment, which decides the padding.
 */
#include "engine/gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/quant.h"
#include "nuage/nuage.h"

typedef struct {
    uint8_t *p;
    size_t n, cap;
} nuage__wbuf;

typedef struct {
    char *key;
    nuage__wbuf val;      /* type tag (u32) + value bytes */
} nuage__wkv;

typedef struct {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[NUAGE_GGUF_MAX_DIMS];
    void *data;
    size_t nbytes;
} nuage__wtensor;

struct nuage_gguf_writer {
    nuage__wkv *kv;
    size_t n_kv, cap_kv;
    nuage__wtensor *t;
    size_t n_t, cap_t;
};

/* ---- byte buffers ------------------------------------------------------- */

static bool wb_put(nuage__wbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    return true;
}

static bool wb_u32(nuage__wbuf *b, uint32_t v) { return wb_put(b, &v, 4); }
static bool wb_u64(nuage__wbuf *b, uint64_t v) { return wb_put(b, &v, 8); }
static bool wb_str(nuage__wbuf *b, const char *s, size_t n) { return wb_u64(b, n) && wb_put(b, s, n); }
static bool wb_zeros(nuage__wbuf *b, size_t n) {
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        if (!wb_put(b, z, k)) return false;
        n -= k;
    }
    return true;
}

/* ---- writer ------------------------------------------------------------- */

nuage_gguf_writer *nuage_gguf_writer_new(void) { return calloc(1, sizeof(nuage_gguf_writer)); }

void nuage_gguf_writer_free(nuage_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* Install a serialised value under key (replacing an existing one). Takes
 * ownership of val->p on success and on failure. */
static int nuage__set(nuage_gguf_writer *w, const char *key, nuage__wbuf *val) {
    if (!key || strlen(key) > 65535) {
        free(val->p);
        return NUAGE_E_INVAL;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].val.p);
            w->kv[i].val = *val;
            return 0;
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        nuage__wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) { free(val->p); return NUAGE_E_NOMEM; }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) { free(val->p); return NUAGE_E_NOMEM; }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].val = *val;
    w->n_kv++;
    return 0;
}

static size_t nuage__vtype_size(nuage_gguf_vtype t) {
    switch (t) {
    case NUAGE_GGUF_UINT8: case NUAGE_GGUF_INT8: case NUAGE_GGUF_BOOL: return 1;
    case NUAGE_GGUF_UINT16: case NUAGE_GGUF_INT16: return 2;
    case NUAGE_GGUF_UINT32: case NUAGE_GGUF_INT32: case NUAGE_GGUF_FLOAT32: return 4;
    case NUAGE_GGUF_UINT64: case NUAGE_GGUF_INT64: case NUAGE_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static int nuage__set_scalar(nuage_gguf_writer *w, const char *key, nuage_gguf_vtype t, const void *v) {
    nuage__wbuf b = {0};
    if (!wb_u32(&b, t) || !wb_put(&b, v, nuage__vtype_size(t))) {
        free(b.p);
        return NUAGE_E_NOMEM;
    }
    return nuage__set(w, key, &b);
}

int nuage_gguf_writer_set_u8(nuage_gguf_writer *w, const char *k, uint8_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_UINT8, &v); }
int nuage_gguf_writer_set_i8(nuage_gguf_writer *w, const char *k, int8_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_INT8, &v); }
int nuage_gguf_writer_set_u16(nuage_gguf_writer *w, const char *k, uint16_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_UINT16, &v); }
int nuage_gguf_writer_set_i16(nuage_gguf_writer *w, const char *k, int16_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_INT16, &v); }
int nuage_gguf_writer_set_u32(nuage_gguf_writer *w, const char *k, uint32_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_UINT32, &v); }
int nuage_gguf_writer_set_i32(nuage_gguf_writer *w, const char *k, int32_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_INT32, &v); }
int nuage_gguf_writer_set_u64(nuage_gguf_writer *w, const char *k, uint64_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_UINT64, &v); }
int nuage_gguf_writer_set_i64(nuage_gguf_writer *w, const char *k, int64_t v) { return nuage__set_scalar(w, k, NUAGE_GGUF_INT64, &v); }
int nuage_gguf_writer_set_f32(nuage_gguf_writer *w, const char *k, float v) { return nuage__set_scalar(w, k, NUAGE_GGUF_FLOAT32, &v); }
int nuage_gguf_writer_set_f64(nuage_gguf_writer *w, const char *k, double v) { return nuage__set_scalar(w, k, NUAGE_GGUF_FLOAT64, &v); }
int nuage_gguf_writer_set_bool(nuage_gguf_writer *w, const char *k, bool v) {
    uint8_t b = v ? 1 : 0;
    return nuage__set_scalar(w, k, NUAGE_GGUF_BOOL, &b);
}

int nuage_gguf_writer_set_strn(nuage_gguf_writer *w, const char *key, const char *s, size_t n) {
    nuage__wbuf b = {0};
    if (!s) return NUAGE_E_INVAL;
    if (!wb_u32(&b, NUAGE_GGUF_STRING) || !wb_str(&b, s, n)) {
        free(b.p);
        return NUAGE_E_NOMEM;
    }
    return nuage__set(w, key, &b);
}

int nuage_gguf_writer_set_str(nuage_gguf_writer *w, const char *key, const char *s) {
    return s ? nuage_gguf_writer_set_strn(w, key, s, strlen(s)) : NUAGE_E_INVAL;
}

int nuage_gguf_writer_set_arr(nuage_gguf_writer *w, const char *key, nuage_gguf_vtype elem,
                              const void *data, size_t n) {
    size_t es = nuage__vtype_size(elem);
    if (!es || (n && !data)) return NUAGE_E_INVAL;
    nuage__wbuf b = {0};
    if (!wb_u32(&b, NUAGE_GGUF_ARRAY) || !wb_u32(&b, elem) || !wb_u64(&b, n) ||
        !wb_put(&b, data, n * es)) {
        free(b.p);
        return NUAGE_E_NOMEM;
    }
    return nuage__set(w, key, &b);
}

int nuage_gguf_writer_set_arr_str(nuage_gguf_writer *w, const char *key,
                                  const char *const *strs, size_t n) {
    nuage__wbuf b = {0};
    bool ok = wb_u32(&b, NUAGE_GGUF_ARRAY) && wb_u32(&b, NUAGE_GGUF_STRING) && wb_u64(&b, n);
    for (size_t i = 0; ok && i < n; i++) {
        if (!strs[i]) { free(b.p); return NUAGE_E_INVAL; }
        ok = wb_str(&b, strs[i], strlen(strs[i]));
    }
    if (!ok) { free(b.p); return NUAGE_E_NOMEM; }
    return nuage__set(w, key, &b);
}

/* Serialise v (without its type tag when `tag` is false: array elements). */
static bool nuage__put_value(nuage__wbuf *b, const nuage_gguf_value *v, bool tag) {
    if (tag && !wb_u32(b, v->type)) return false;
    switch (v->type) {
    case NUAGE_GGUF_UINT8: case NUAGE_GGUF_UINT16: case NUAGE_GGUF_UINT32: case NUAGE_GGUF_UINT64:
        return wb_put(b, &v->v.u64, nuage__vtype_size(v->type)); /* little-endian: low bytes */
    case NUAGE_GGUF_INT8: case NUAGE_GGUF_INT16: case NUAGE_GGUF_INT32: case NUAGE_GGUF_INT64:
        return wb_put(b, &v->v.i64, nuage__vtype_size(v->type));
    case NUAGE_GGUF_FLOAT32: {
        float f = (float)v->v.f64;
        return wb_put(b, &f, 4);
    }
    case NUAGE_GGUF_FLOAT64: return wb_put(b, &v->v.f64, 8);
    case NUAGE_GGUF_BOOL: {
        uint8_t x = v->v.b ? 1 : 0;
        return wb_put(b, &x, 1);
    }
    case NUAGE_GGUF_STRING: return wb_str(b, v->v.str.ptr, v->v.str.len);
    case NUAGE_GGUF_ARRAY: {
        nuage_gguf_vtype et = v->v.arr.type;
        if (!wb_u32(b, et) || !wb_u64(b, v->v.arr.n)) return false;
        if (et == NUAGE_GGUF_STRING) {
            const nuage_gguf_str *s = v->v.arr.data;
            for (uint64_t i = 0; i < v->v.arr.n; i++)
                if (!wb_str(b, s[i].ptr, s[i].len)) return false;
            return true;
        }
        if (et == NUAGE_GGUF_ARRAY) {
            const nuage_gguf_value *e = v->v.arr.data;
            for (uint64_t i = 0; i < v->v.arr.n; i++)
                if (!nuage__put_value(b, &e[i], false)) return false;
            return true;
        }
        size_t es = nuage__vtype_size(et);
        return es && wb_put(b, v->v.arr.data, (size_t)v->v.arr.n * es);
    }
    default: return false;
    }
}

int nuage_gguf_writer_set_value(nuage_gguf_writer *w, const char *key, const nuage_gguf_value *v) {
    if (!v || v->type >= NUAGE_GGUF_VTYPE_COUNT) return NUAGE_E_INVAL;
    nuage__wbuf b = {0};
    if (!nuage__put_value(&b, v, true)) {
        free(b.p);
        return NUAGE_E_NOMEM;
    }
    return nuage__set(w, key, &b);
}

int nuage_gguf_writer_add_tensor(nuage_gguf_writer *w, const char *name, uint32_t type,
                                 int n_dims, const int64_t *ne, const void *data, size_t nbytes) {
    if (!name || strlen(name) > 65535 || n_dims < 1 || n_dims > NUAGE_GGUF_MAX_DIMS) return NUAGE_E_INVAL;
    const nuage_type_traits *tt = nuage_type_get(type);
    if (!tt || !tt->name) return NUAGE_E_INVAL;
    size_t want = nuage_row_size(type, ne[0]);
    for (int d = 0; d < n_dims; d++)
        if (ne[d] <= 0) return NUAGE_E_INVAL;
    for (int d = 1; d < n_dims; d++) want *= (size_t)ne[d];
    if (!want || want != nbytes || !data) return NUAGE_E_INVAL;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return NUAGE_E_INVAL;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        nuage__wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t) return NUAGE_E_NOMEM;
        w->t = t;
        w->cap_t = cap;
    }
    nuage__wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return NUAGE_E_NOMEM;
    }
    memcpy(t->data, data, nbytes);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < NUAGE_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    w->n_t++;
    return 0;
}

/* ---- serialisation ---------------------------------------------------------- */

static uint64_t nuage__align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

int nuage_gguf_writer_to_buffer(const nuage_gguf_writer *w, void **out, size_t *len) {
    *out = NULL;
    *len = 0;
    uint64_t align = 32;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        uint32_t type, v;
        memcpy(&type, w->kv[i].val.p, 4);
        if (type != NUAGE_GGUF_UINT32) return NUAGE_E_INVAL;
        memcpy(&v, w->kv[i].val.p + 4, 4);
        if (!v || (v & (v - 1))) return NUAGE_E_INVAL;
        align = v;
    }
    nuage__wbuf b = {0};
    bool ok = wb_put(&b, "GGUF", 4) && wb_u32(&b, 3) && wb_u64(&b, w->n_t) && wb_u64(&b, w->n_kv);
    for (size_t i = 0; ok && i < w->n_kv; i++)
        ok = wb_str(&b, w->kv[i].key, strlen(w->kv[i].key)) &&
             wb_put(&b, w->kv[i].val.p, w->kv[i].val.n);
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const nuage__wtensor *t = &w->t[i];
        ok = wb_str(&b, t->name, strlen(t->name)) && wb_u32(&b, (uint32_t)t->n_dims);
        for (int d = 0; ok && d < t->n_dims; d++) ok = wb_u64(&b, (uint64_t)t->ne[d]);
        ok = ok && wb_u32(&b, t->type) && wb_u64(&b, off);
        off = nuage__align_up(off + t->nbytes, align);
    }
    if (ok && w->n_t) ok = wb_zeros(&b, nuage__align_up(b.n, align) - b.n);
    for (size_t i = 0; ok && i < w->n_t; i++) {
        ok = wb_put(&b, w->t[i].data, w->t[i].nbytes);
        /* pad between tensors (and the last one too, as llama.cpp does) */
        if (ok) ok = wb_zeros(&b, nuage__align_up(w->t[i].nbytes, align) - w->t[i].nbytes);
    }
    if (!ok) {
        free(b.p);
        return NUAGE_E_NOMEM;
    }
    *out = b.p;
    *len = b.n;
    return 0;
}

int nuage_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    size_t plen = strlen(path) + 32;
    char *tmp = malloc(plen);
    if (!tmp) return NUAGE_E_NOMEM;
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return NUAGE_E_IO;
    }
    const uint8_t *p = data;
    size_t left = len;
    while (left) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        p += k;
        left -= (size_t)k;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return NUAGE_E_IO;
}

int nuage_gguf_writer_write_file(const nuage_gguf_writer *w, const char *path, char *err, size_t errlen) {
    void *buf;
    size_t len;
    int rc = nuage_gguf_writer_to_buffer(w, &buf, &len);
    if (rc) {
        if (err) snprintf(err, errlen, "cannot serialise GGUF: %s", nuage_strerror(rc));
        return rc;
    }
    rc = nuage_write_file_atomic(path, buf, len, err, errlen);
    free(buf);
    return rc;
}
