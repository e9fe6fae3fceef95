/*
 * cmd_inspect.c - `nuage inspect MODEL [--all]`: what is inside a GGUF file.
 *
 * Prints the header facts (version, alignment, where the data starts), one
 * line per metadata entry, typed:
 *
 *     uint32   llama.context_length = 2048
 *     string   tokenizer.chat_template = "{% for message in messages %}\n..." (1234 bytes)
 *     array    tokenizer.ggml.tokens = [string x 512] "<unk>", "<s>", ... (504 more)
 *
 * then the tensor table (name, type, shape innermost first, bytes, offset in
 * the data section) and the totals. Long strings and arrays are shortened
 * unless --all is given; strings are shown escaped (\n, \t, \", \xNN for
 * control bytes) so every entry stays on one line.
 *
 * It uses only the GGUF reader and the type table (nuage_base), so it works
 * on any GGUF file, whether or not the engine can run the model; it is also
 * the quickest way to see why a file is rejected: errors print as
 * "nuage inspect: FILE: MESSAGE" (exit 1). Usage errors exit 2.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nuage/nuage.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#define INSPECT_MAX_STR 80   /* characters of a string shown without --all */
#define INSPECT_MAX_ELEMS 8  /* array elements shown without --all */

typedef struct {
    FILE *f;
    bool all;
} inspect_opts;

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: nuage inspect MODEL [--all]\n"
            "  print a GGUF file's version, metadata and tensor table\n"
            "  --all   show every array element and long strings in full\n");
    return code;
}

/* Print s (len bytes) quoted and escaped; at most INSPECT_MAX_STR source
 * bytes unless o->all, then "..." and the full length. UTF-8 bytes (>= 0x80)
 * pass through so non-ASCII text stays readable. */
static void print_str(const inspect_opts *o, const char *s, uint64_t len) {
    uint64_t shown = len;
    if (!o->all && shown > INSPECT_MAX_STR) {
        shown = INSPECT_MAX_STR;
        /* do not cut a UTF-8 sequence in the middle */
        while (shown > 0 && ((unsigned char)s[shown] & 0xc0) == 0x80) shown--;
    }
    fputc('"', o->f);
    for (uint64_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n': fputs("\\n", o->f); break;
        case '\t': fputs("\\t", o->f); break;
        case '\r': fputs("\\r", o->f); break;
        case '"': fputs("\\\"", o->f); break;
        case '\\': fputs("\\\\", o->f); break;
        default:
            if (c < 0x20 || c == 0x7f) fprintf(o->f, "\\x%02x", c);
            else fputc(c, o->f);
        }
    }
    fputc('"', o->f);
    if (shown < len) fprintf(o->f, "... (%" PRIu64 " bytes)", len);
}

/* Copy a key or tensor name for display: control bytes as \xNN, at most
 * ~200 characters. Returns buf. */
static const char *display_name(char *buf, size_t len, const char *s) {
    size_t o = 0;
    for (; *s && o + 8 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        else buf[o++] = (char)c;
    }
    if (*s) o += (size_t)snprintf(buf + o, len - o, "...");
    buf[o] = 0;
    return buf;
}

/* A float32 in the fewest digits that read back as the same float. */
static void print_f32(FILE *f, float x) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x || x != x) break;
    }
    fputs(buf, f);
}

/* One packed array element of scalar type t at index i. */
static void print_elem(const inspect_opts *o, nuage_gguf_vtype t, const void *data, uint64_t i) {
    const unsigned char *p = data;
    switch (t) {
    case NUAGE_GGUF_UINT8: fprintf(o->f, "%u", p[i]); break;
    case NUAGE_GGUF_INT8: fprintf(o->f, "%d", ((const int8_t *)data)[i]); break;
    case NUAGE_GGUF_UINT16: fprintf(o->f, "%u", ((const uint16_t *)data)[i]); break;
    case NUAGE_GGUF_INT16: fprintf(o->f, "%d", ((const int16_t *)data)[i]); break;
    case NUAGE_GGUF_UINT32: fprintf(o->f, "%" PRIu32, ((const uint32_t *)data)[i]); break;
    case NUAGE_GGUF_INT32: fprintf(o->f, "%" PRId32, ((const int32_t *)data)[i]); break;
    case NUAGE_GGUF_UINT64: fprintf(o->f, "%" PRIu64, ((const uint64_t *)data)[i]); break;
    case NUAGE_GGUF_INT64: fprintf(o->f, "%" PRId64, ((const int64_t *)data)[i]); break;
    case NUAGE_GGUF_FLOAT32: print_f32(o->f, ((const float *)data)[i]); break;
    case NUAGE_GGUF_FLOAT64: fprintf(o->f, "%.17g", ((const double *)data)[i]); break;
    case NUAGE_GGUF_BOOL: fputs(p[i] ? "true" : "false", o->f); break;
    default: fputs("?", o->f); break;
    }
}

static void print_value(const inspect_opts *o, const nuage_gguf_value *v) {
    switch (v->type) {
    case NUAGE_GGUF_UINT8: case NUAGE_GGUF_UINT16: case NUAGE_GGUF_UINT32:
    case NUAGE_GGUF_UINT64:
        fprintf(o->f, "%" PRIu64, v->v.u64);
        break;
    case NUAGE_GGUF_INT8: case NUAGE_GGUF_INT16: case NUAGE_GGUF_INT32:
    case NUAGE_GGUF_INT64:
        fprintf(o->f, "%" PRId64, v->v.i64);
        break;
    case NUAGE_GGUF_FLOAT32: print_f32(o->f, (float)v->v.f64); break;
    case NUAGE_GGUF_FLOAT64: fprintf(o->f, "%.17g", v->v.f64); break;
    case NUAGE_GGUF_BOOL: fputs(v->v.b ? "true" : "false", o->f); break;
    case NUAGE_GGUF_STRING: print_str(o, v->v.str.ptr, v->v.str.len); break;
    case NUAGE_GGUF_ARRAY: {
        uint64_t n = v->v.arr.n;
        uint64_t shown = (!o->all && n > INSPECT_MAX_ELEMS) ? INSPECT_MAX_ELEMS : n;
        fprintf(o->f, "[%s x %" PRIu64 "]", nuage_gguf_vtype_name(v->v.arr.type), n);
        for (uint64_t i = 0; i < shown; i++) {
            fputs(i ? ", " : " ", o->f);
            if (v->v.arr.type == NUAGE_GGUF_STRING) {
                const nuage_gguf_str *s = v->v.arr.data;
                print_str(o, s[i].ptr, s[i].len);
            } else if (v->v.arr.type == NUAGE_GGUF_ARRAY) {
                fputc('(', o->f);
                print_value(o, &((const nuage_gguf_value *)v->v.arr.data)[i]);
                fputc(')', o->f);
            } else {
                print_elem(o, v->v.arr.type, v->v.arr.data, i);
            }
        }
        if (shown < n) fprintf(o->f, ", ... (%" PRIu64 " more)", n - shown);
        break;
    }
    default: fputs("?", o->f); break;
    }
}

/* "1.23 MiB" style size. */
static void human_bytes(char *buf, size_t len, uint64_t b) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)b;
    int u = 0;
    while (x >= 1024 && u < 4) { x /= 1024; u++; }
    snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", x, units[u]);
}

static void human_count(char *buf, size_t len, uint64_t n) {
    if (n >= 1000000000ull) snprintf(buf, len, "%.2f B", (double)n / 1e9);
    else if (n >= 1000000) snprintf(buf, len, "%.2f M", (double)n / 1e6);
    else if (n >= 1000) snprintf(buf, len, "%.2f K", (double)n / 1e3);
    else snprintf(buf, len, "%" PRIu64, n);
}

static void print_shape(char *buf, size_t len, const nuage_gguf_tensor *t) {
    size_t o = 0;
    buf[0] = 0;
    for (uint32_t d = 0; d < t->n_dims && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? " x %" PRId64 : "%" PRId64, t->ne[d]);
}

static void print_file(const inspect_opts *o, const char *path, const nuage_gguf *g) {
    FILE *f = o->f;
    char hb[64];
    human_bytes(hb, sizeof hb, nuage_gguf_file_size(g));
    fprintf(f, "file:      %s\n", path);
    fprintf(f, "size:      %" PRIu64 " bytes (%s)\n", nuage_gguf_file_size(g), hb);
    fprintf(f, "version:   GGUF v%" PRIu32 "\n", nuage_gguf_version(g));
    fprintf(f, "alignment: %" PRIu64 "\n", nuage_gguf_alignment(g));
    fprintf(f, "data:      at offset %" PRIu64 "\n", nuage_gguf_data_offset(g));

    uint64_t n_kv = nuage_gguf_n_kv(g);
    fprintf(f, "\nmetadata (%" PRIu64 " entries):\n", n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(g, i);
        char name[256];
        fprintf(f, "  %-8s %s = ", nuage_gguf_vtype_name(kv->value.type),
                display_name(name, sizeof name, kv->key.ptr));
        print_value(o, &kv->value);
        fputc('\n', f);
    }

    uint64_t n_t = nuage_gguf_n_tensors(g);
    int wname = 4, wshape = 5;
    char shape[128], name[256];
    for (uint64_t i = 0; i < n_t; i++) {
        const nuage_gguf_tensor *t = nuage_gguf_tensor_at(g, i);
        int nl = (int)strlen(display_name(name, sizeof name, t->name));
        if (nl > wname) wname = nl > 60 ? 60 : nl;
        print_shape(shape, sizeof shape, t);
        if ((int)strlen(shape) > wshape) wshape = (int)strlen(shape);
    }
    fprintf(f, "\ntensors (%" PRIu64 "):\n", n_t);
    if (n_t)
        fprintf(f, "  %-*s  %-7s  %-*s  %12s  %12s\n", wname, "name", "type", wshape, "shape",
                "bytes", "offset");
    uint64_t params = 0, bytes = 0;
    for (uint64_t i = 0; i < n_t; i++) {
        const nuage_gguf_tensor *t = nuage_gguf_tensor_at(g, i);
        print_shape(shape, sizeof shape, t);
        fprintf(f, "  %-*s  %-7s  %-*s  %12" PRIu64 "  %12" PRIu64 "\n", wname,
                display_name(name, sizeof name, t->name), nuage_type_get(t->type)->name, wshape, shape, t->nbytes, t->offset);
        params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        bytes += t->nbytes;
    }
    char hp[64];
    human_count(hp, sizeof hp, params);
    human_bytes(hb, sizeof hb, bytes);
    fprintf(f, "\ntotal: %" PRIu64 " tensors, %" PRIu64 " parameters (%s), %" PRIu64
               " bytes (%s)\n", n_t, params, hp, bytes, hb);
}

/* What the engine makes of the file: architecture, shape and the KV-cache
 * memory one token costs per sequence (all layers), or why it cannot run
 * it. Vocabulary-only files just say so. */
static void print_engine_view(inspect_opts *o, const char *path) {
    nuage_model *m = NULL;
    char err[512] = "";
    int rc = nuage_model_load(path, NULL, &m, err, sizeof err);
    if (rc) {
        fprintf(o->f, "\nengine: cannot run this file: %s\n", err);
        return;
    }
    fprintf(o->f, "\nengine: arch %s, %d layers, n_embd %d, n_vocab %d, context %d, %.2f M params, %.2f MiB weights\n",
            nuage_model_arch(m), nuage_model_n_layer(m), nuage_model_n_embd(m), nuage_model_n_vocab(m),
            nuage_model_n_ctx_train(m), nuage_model_n_params(m) / 1e6,
            nuage_model_size_bytes(m) / 1048576.0);
    fprintf(o->f, "engine: KV cache per token per sequence: %llu bytes (f16), %llu bytes (f32)\n",
            (unsigned long long)nuage_model_kv_bytes_per_token(m, 2),
            (unsigned long long)nuage_model_kv_bytes_per_token(m, 4));
    /* Sliding-window layers keep only their last W positions (in 16-token
     * blocks, the default), so past the window a token costs only the
     * global layers. */
    int32_t n_win = 0, W = nuage_model_n_swa(m, &n_win);
    if (W > 0) {
        int32_t nl = nuage_model_n_layer(m);
        fprintf(o->f, "engine: sliding window %d tokens on %d of %d layers; past it a token costs %llu bytes (f16), %llu bytes (f32)\n",
                W, n_win, nl,
                (unsigned long long)(nuage_model_kv_bytes_per_token(m, 2) / (uint64_t)nl * (uint64_t)(nl - n_win)),
                (unsigned long long)(nuage_model_kv_bytes_per_token(m, 4) / (uint64_t)nl * (uint64_t)(nl - n_win)));
    }
    static const int ctxs[] = {4096, 32768};
    for (int i = 0; i < 2; i++) {
        char b16[32], b32[32];
        human_bytes(b16, sizeof b16, nuage_model_kv_bytes_per_seq(m, 2, ctxs[i], 16));
        human_bytes(b32, sizeof b32, nuage_model_kv_bytes_per_seq(m, 4, ctxs[i], 16));
        fprintf(o->f, "engine: KV cache per sequence of %d tokens: %s (f16), %s (f32)%s\n", ctxs[i], b16, b32,
                W > 0 ? ", window counted" : "");
    }
    nuage_model_free(m);
}

int nuage_cmd_inspect(int argc, char **argv) {
    inspect_opts o = {.f = stdout, .all = false};
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (!strcmp(a, "--all")) {
            o.all = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "nuage inspect: unknown option '%s'\n", a);
            return usage(stderr, 2);
        } else if (path) {
            fprintf(stderr, "nuage inspect: one MODEL at a time ('%s' and '%s')\n", path, a);
            return usage(stderr, 2);
        } else {
            path = a;
        }
    }
    if (!path) return usage(stderr, 2);

    nuage_gguf *g = NULL;
    char err[512] = "";
    if (nuage_gguf_open(path, &g, err, sizeof err) != 0) {
        fprintf(stderr, "nuage inspect: %s: %s\n", path, err);
        return 1;
    }
    print_file(&o, path, g);
    nuage_gguf_close(g);
    print_engine_view(&o, path);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "nuage inspect: error writing output\n");
        return 1;
    }
    return 0;
}
