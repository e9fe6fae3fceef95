/*
 * fuzz_gguf.c - libFuzzer harness for the GGUF reader.
 *
 * Feeds arbitrary bytes to nuage_gguf_open_buffer. The input is copied into
 * a malloc of exactly its size, so AddressSanitizer reports any read past
 * the end. When a file is accepted, every metadata value (nested arrays,
 * string terminators), every lookup and the first and last byte of every
 * tensor's data are touched, so a wrong bound anywhere shows up as a crash.
 *
 * Not built by CMake. Build and run (from the repository root; -march=native
 * lets the *_avx2.c / *_avx512.c kernel files that the type table links in
 * compile in one command on a machine that has those instruction sets):
 *
 *   clang -g -O1 -march=native -fsanitize=fuzzer,address,undefined \
 *       -DNUAGE_X86=1 -Iinclude -Isrc tests/fuzz/fuzz_gguf.c \
 *       src/engine/gguf.c src/engine/quant*.c src/engine/cpu.c \
 *       src/engine/errors.c -lm -pthread -o fuzz_gguf
 *   mkdir -p corpus && cp ../shared/models/stories260K.gguf corpus/   # seeds
 *   ./fuzz_gguf -max_len=65536 -timeout=10 corpus
 *
 * Without clang, `gcc -c` of this file checks that it compiles; defining
 * NUAGE_FUZZ_MAIN adds a main() that runs the harness over files given on
 * the command line (to replay a crash with gcc):
 *
 *   gcc -DNUAGE_FUZZ_MAIN -fsanitize=address -Iinclude -Isrc tests/fuzz/fuzz_gguf.c ...
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"

static volatile uint64_t sink;

static uint64_t touch_value(const nuage_gguf_value *v, int depth) {
    uint64_t h = (uint64_t)v->type;
    if (depth > 64) return h; /* the reader caps nesting well below this */
    switch (v->type) {
    case NUAGE_GGUF_STRING:
        h += v->v.str.len + (uint8_t)v->v.str.ptr[v->v.str.len];
        break;
    case NUAGE_GGUF_ARRAY: {
        uint64_t n = v->v.arr.n;
        if (v->v.arr.type == NUAGE_GGUF_STRING) {
            const nuage_gguf_str *s = v->v.arr.data;
            for (uint64_t i = 0; i < n; i++) h += (uint8_t)s[i].ptr[s[i].len] + s[i].len;
        } else if (v->v.arr.type == NUAGE_GGUF_ARRAY) {
            const nuage_gguf_value *e = v->v.arr.data;
            for (uint64_t i = 0; i < n; i++) h += touch_value(&e[i], depth + 1);
        } else if (n) {
            const uint8_t *d = v->v.arr.data;
            h += d[0];
        }
        break;
    }
    default:
        h += v->v.u64;
        break;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    nuage_gguf *g = NULL;
    char err[256];
    int rc = nuage_gguf_open_buffer(copy, size, &g, err, sizeof err);
    if (rc == 0) {
        uint64_t h = 0;
        for (uint64_t i = 0; i < nuage_gguf_n_kv(g); i++) {
            const nuage_gguf_kv *kv = nuage_gguf_kv_at(g, i);
            h += touch_value(&kv->value, 0);
            h += (uintptr_t)nuage_gguf_get(g, kv->key.ptr);
            uint32_t u;
            int64_t i64;
            float f;
            bool b;
            h += nuage_gguf_get_u32(g, kv->key.ptr, &u) + nuage_gguf_get_i64(g, kv->key.ptr, &i64) +
                 nuage_gguf_get_f32(g, kv->key.ptr, &f) + nuage_gguf_get_bool(g, kv->key.ptr, &b);
        }
        for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++) {
            const nuage_gguf_tensor *t = nuage_gguf_tensor_at(g, i);
            const uint8_t *d = t->data;
            h += d[0] + d[t->nbytes - 1];
            h += (uintptr_t)nuage_gguf_find_tensor(g, t->name);
        }
        sink = h;
        nuage_gguf_close(g);
    } else if (rc >= 0 || err[0] == 0) {
        abort(); /* a failure must be negative and explained */
    }
    free(copy);
    return 0;
}

#include "fuzz_main.h"
