/*
 * test_toolparse_util.h - collecting a tool-call parse for the tests: the
 * content, reasoning and calls the events add up to, with the event
 * contract checked on the way (CALL_START before the arguments, the
 * CALL_ARGS fragments concatenating to exactly CALL_END's arguments,
 * call indices 0, 1, ...).
 */
#ifndef TEST_TOOLPARSE_UTIL_H
#define TEST_TOOLPARSE_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/toolcall.h"

#define TP_MAX_CALLS 16

typedef struct {
    char content[8192];
    size_t content_len;
    char reasoning[4096];
    size_t reasoning_len;
    int n_calls;
    char name[TP_MAX_CALLS][64];
    char args[TP_MAX_CALLS][4096];
    char frag[TP_MAX_CALLS][4096];   /* concatenated CALL_ARGS */
    bool open;                       /* between CALL_START and CALL_END */
    bool bad;                        /* the event contract was broken */
    char why[128];
} tp_result;

static void tp_append(char *dst, size_t *len, size_t cap, const char *s, size_t n, tp_result *r) {
    if (*len + n >= cap) { r->bad = true; snprintf(r->why, sizeof r->why, "overflow"); return; }
    memcpy(dst + *len, s, n);
    *len += n;
    dst[*len] = 0;
}

static int tp_collect(const nuage_tp_event *ev, void *ud) {
    tp_result *r = ud;
    switch (ev->kind) {
    case NUAGE_TP_CONTENT:
        if (r->open) { r->bad = true; snprintf(r->why, sizeof r->why, "content inside a call"); }
        tp_append(r->content, &r->content_len, sizeof r->content, ev->text, ev->len, r);
        break;
    case NUAGE_TP_REASONING:
        tp_append(r->reasoning, &r->reasoning_len, sizeof r->reasoning, ev->text, ev->len, r);
        break;
    case NUAGE_TP_CALL_START:
        if (r->open || ev->index != r->n_calls || r->n_calls >= TP_MAX_CALLS || !ev->name) {
            r->bad = true;
            snprintf(r->why, sizeof r->why, "bad CALL_START %d", ev->index);
            break;
        }
        snprintf(r->name[r->n_calls], sizeof r->name[0], "%s", ev->name);
        r->frag[r->n_calls][0] = 0;
        r->open = true;
        break;
    case NUAGE_TP_CALL_ARGS: {
        if (!r->open || ev->index != r->n_calls) { r->bad = true; snprintf(r->why, sizeof r->why, "stray ARGS"); break; }
        size_t l = strlen(r->frag[r->n_calls]);
        tp_append(r->frag[r->n_calls], &l, sizeof r->frag[0], ev->text, ev->len, r);
        break;
    }
    case NUAGE_TP_CALL_END:
        if (!r->open || ev->index != r->n_calls || !ev->name || strcmp(ev->name, r->name[r->n_calls]) ||
            ev->len != strlen(r->frag[r->n_calls]) || memcmp(ev->text, r->frag[r->n_calls], ev->len)) {
            r->bad = true;
            snprintf(r->why, sizeof r->why, "CALL_END does not match its ARGS");
            break;
        }
        snprintf(r->args[r->n_calls], sizeof r->args[0], "%.*s", (int)ev->len, ev->text);
        r->n_calls++;
        r->open = false;
        break;
    }
    return 0;
}

/* Parse text fed as pieces cut at the offsets cuts[0..ncut) (increasing). */
static void tp_parse_cuts(nuage_toolfmt fmt, const char *const *names, size_t nn, const char *text,
                          size_t len, const size_t *cuts, size_t ncut, tp_result *r) {
    memset(r, 0, sizeof *r);
    nuage_toolparse *p = nuage_toolparse_new(fmt, names, nn);
    if (!p) { r->bad = true; return; }
    size_t at = 0;
    for (size_t i = 0; i <= ncut; i++) {
        size_t to = i < ncut ? cuts[i] : len;
        if (nuage_toolparse_feed(p, text + at, to - at, i == ncut, tp_collect, r) != 0) r->bad = true;
        at = to;
    }
    if (r->open) { r->bad = true; snprintf(r->why, sizeof r->why, "call left open"); }
    if (nuage_toolparse_n_calls(p) != r->n_calls) { r->bad = true; snprintf(r->why, sizeof r->why, "n_calls"); }
    nuage_toolparse_free(p);
}

static void tp_parse(nuage_toolfmt fmt, const char *const *names, size_t nn, const char *text, tp_result *r) {
    tp_parse_cuts(fmt, names, nn, text, strlen(text), NULL, 0, r);
}

/* Same content, reasoning and calls? */
static bool tp_same(const tp_result *a, const tp_result *b) {
    if (a->bad || b->bad) return false;
    if (strcmp(a->content, b->content) || strcmp(a->reasoning, b->reasoning) || a->n_calls != b->n_calls)
        return false;
    for (int i = 0; i < a->n_calls; i++)
        if (strcmp(a->name[i], b->name[i]) || strcmp(a->args[i], b->args[i])) return false;
    return true;
}

/* Parsing whole, cut in two at every offset, and byte by byte all agree.
 * Returns the offset of the first disagreement, or -1. */
__attribute__((unused)) static long tp_split_invariant(nuage_toolfmt fmt, const char *const *names, size_t nn, const char *text) {
    size_t len = strlen(text);
    tp_result whole, part;
    tp_parse(fmt, names, nn, text, &whole);
    if (whole.bad) return 0;
    for (size_t k = 0; k <= len; k++) {
        tp_parse_cuts(fmt, names, nn, text, len, &k, 1, &part);
        if (!tp_same(&whole, &part)) return (long)k;
    }
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    if (!cuts) return 0;
    for (size_t k = 0; k < len; k++) cuts[k] = k + 1;
    tp_parse_cuts(fmt, names, nn, text, len, cuts, len ? len - 1 : 0, &part);
    free(cuts);
    return tp_same(&whole, &part) ? -1 : (long)len + 1;
}

#endif
