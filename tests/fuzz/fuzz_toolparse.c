/*
 * fuzz_toolparse.c - libFuzzer harness for the streaming tool-call parser.
 *
 * Input: byte 0 picks the family, byte 1 seeds where the output is cut,
 * the rest is model output. The output is parsed whole, then again in
 * pieces cut at pseudo-random offsets, then byte by byte; the harness
 * aborts when the three disagree (content, reasoning, calls), when the
 * events break their contract (CALL_ARGS not adding up to CALL_END's
 * arguments, indices out of order), when arguments are not one valid
 * JSON object, or when content plus the calls' raw text loses bytes (with
 * no tool declared, the content must be the output itself). Then once
 * more byte by byte in eager mode (nuage_toolparse_set_eager), where a call
 * may be announced and later dropped when its markup fails: the events
 * keep their contract (fragments add up to CALL_END's arguments, indices
 * count dropped calls too), and when no call was dropped the content and
 * calls equal the default mode's; with calls forced from the first token
 * (seed odd) a block cut before its head is dropped without an event, so
 * there the content is a prefix of the default mode's and no extra call
 * appears.
 *
 * Not built by CMake. Build and run (from the repository root):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *       tests/fuzz/fuzz_toolparse.c src/constrain/toolparse.c \
 *       src/constrain/tooljson.c src/constrain/toolfmt.c src/constrain/toolgemma.c -ljansson -o fuzz_toolparse
 *   ./fuzz_toolparse -max_len=4096 -timeout=10 tests/fuzz/corpus/toolparse
 *
 * With gcc, -DNUAGE_FUZZ_MAIN adds a main() that replays the files given
 * on the command line.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/toolcall.h"
#include "constrain/tooljson.h"

typedef struct {
    char *text[3];        /* content, reasoning, calls ("name\0args\0" ...) */
    size_t len[3], cap[3];
    int n_calls;
    bool open;
    bool eager;           /* a call may be dropped: content or a new call may follow it */
    int dropped;
    char *frag;           /* current call's CALL_ARGS */
    size_t frag_len, frag_cap;
} acc;

static void add(char **b, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 64);
        while (nc < *len + n + 1) nc *= 2;
        *b = realloc(*b, nc);
        if (!*b) abort();
        *cap = nc;
    }
    if (n) memcpy(*b + *len, s, n);
    *len += n;
}

static int on_event(const nuage_tp_event *ev, void *ud) {
    acc *a = ud;
    switch (ev->kind) {
    case NUAGE_TP_CONTENT:
        if (a->open && a->eager) { a->open = false; a->dropped++; }
        if (a->open) abort();
        add(&a->text[0], &a->len[0], &a->cap[0], ev->text, ev->len);
        break;
    case NUAGE_TP_REASONING:
        add(&a->text[1], &a->len[1], &a->cap[1], ev->text, ev->len);
        break;
    case NUAGE_TP_CALL_START:
        if (a->open && a->eager) { a->open = false; a->dropped++; }
        if (a->open || ev->index != a->n_calls + a->dropped || !ev->name) abort();
        a->open = true;
        a->frag_len = 0;
        break;
    case NUAGE_TP_CALL_ARGS:
        if (!a->open || ev->index != a->n_calls + a->dropped) abort();
        add(&a->frag, &a->frag_len, &a->frag_cap, ev->text, ev->len);
        break;
    case NUAGE_TP_CALL_END: {
        if (!a->open || ev->index != a->n_calls + a->dropped || ev->len != a->frag_len ||
            (ev->len && memcmp(ev->text, a->frag, ev->len)))
            abort();
        size_t end;
        if (ev->len == 0 || ev->text[0] != '{' || nuage__tj_value(ev->text, ev->len, &end) != TJ_OK ||
            end != ev->len)
            abort();
        add(&a->text[2], &a->len[2], &a->cap[2], ev->name, strlen(ev->name) + 1);
        add(&a->text[2], &a->len[2], &a->cap[2], ev->text, ev->len);
        add(&a->text[2], &a->len[2], &a->cap[2], "", 1);
        a->n_calls++;
        a->open = false;
        break;
    }
    }
    return 0;
}

static void acc_free(acc *a) {
    for (int i = 0; i < 3; i++) free(a->text[i]);
    free(a->frag);
}

static bool same(const acc *x, const acc *y) {
    if (x->n_calls != y->n_calls) return false;
    for (int i = 0; i < 3; i++)
        if (x->len[i] != y->len[i] || (x->len[i] && memcmp(x->text[i], y->text[i], x->len[i]))) return false;
    return true;
}

static const char *const NAMES[] = {"get_weather", "search_docs", "f"};

/* Parse data[0..n) cut every `step` bytes (0: whole), pseudo-randomly
 * jittered by seed. */
static void parse(nuage_toolfmt fmt, const char *const *names, size_t nn, const char *data, size_t n,
                  size_t step, uint32_t seed, acc *a, bool eager) {
    memset(a, 0, sizeof *a);
    a->eager = eager;
    nuage_toolparse *p = nuage_toolparse_new(fmt, names, nn);
    if (!p) abort();
    nuage_toolparse_set_eager(p, eager, eager && (seed & 1));
    size_t at = 0;
    while (at < n || at == 0) {
        size_t k = n - at;
        if (step) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % step;
            if (k > n - at) k = n - at;
        }
        bool last = at + k == n;
        if (nuage_toolparse_feed(p, data + at, k, last, on_event, a) != 0) abort();
        at += k;
        if (last) break;
    }
    if (a->open && eager) { a->open = false; a->dropped++; }
    if (a->open || nuage_toolparse_n_calls(p) != a->n_calls) abort();
    nuage_toolparse_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const nuage_toolfmt fams[] = {NUAGE_TOOLFMT_HERMES, NUAGE_TOOLFMT_LLAMA3, NUAGE_TOOLFMT_MISTRAL,
                                         NUAGE_TOOLFMT_DEEPSEEK, NUAGE_TOOLFMT_HARMONY, NUAGE_TOOLFMT_GENERIC,
                                         NUAGE_TOOLFMT_KIMI, NUAGE_TOOLFMT_GEMMA4};
    nuage_toolfmt fmt = fams[data[0] % (sizeof fams / sizeof fams[0])];
    uint32_t seed = data[1];
    const char *text = (const char *)data + 2;
    size_t n = size - 2;
    acc whole, cut, bytes;
    parse(fmt, NAMES, 3, text, n, 0, 0, &whole, false);
    parse(fmt, NAMES, 3, text, n, 1 + seed % 16, seed, &cut, false);
    parse(fmt, NAMES, 3, text, n, 1, 0, &bytes, false);
    if (!same(&whole, &cut) || !same(&whole, &bytes)) abort();
    acc_free(&cut);
    acc_free(&bytes);
    acc eager;
    parse(fmt, NAMES, 3, text, n, 1, seed, &eager, true);
    if (eager.dropped == 0 && (seed & 1)) {
        /* calls forced from the first token (tool_choice required /
         * named): a block cut before its head is dropped without an event,
         * so the content is a prefix of the default mode's and no call
         * appears that the default parse lacks */
        if (eager.len[0] > whole.len[0] || (eager.len[0] && memcmp(eager.text[0], whole.text[0], eager.len[0])) ||
            eager.n_calls > whole.n_calls)
            abort();
    } else if (eager.dropped == 0 && !same(&whole, &eager)) {
        abort();
    }
    acc_free(&eager);
    acc_free(&whole);
    /* nothing declared: no calls, and (outside harmony and the generic
     * envelope, which read structure) the content is the output */
    parse(fmt, NULL, 0, text, n, 0, 0, &whole, false);
    if (whole.n_calls) abort();
    if (fmt != NUAGE_TOOLFMT_HARMONY && fmt != NUAGE_TOOLFMT_GENERIC &&
        (whole.len[0] != n || (n && memcmp(whole.text[0], text, n))))
        abort();
    acc_free(&whole);
    return 0;
}

#include "fuzz_main.h"
