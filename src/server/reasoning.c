/*
 * reasoning.c - streaming text filters applied to generated text before it
 * reaches the client: stop sequences and the <think>...</think> splitter.
 *
 * Both work on text as it arrives, a token's worth at a time, and must give
 * exactly the result of processing the whole text at once, whatever the
 * token boundaries are. The common difficulty is a marker split across
 * tokens ("</th" + "ink>"): each filter holds back the longest tail of what
 * it has seen that is still a prefix of a marker, and releases it as soon
 * as the next text proves it is not one (or at the end). The held tail is
 * always shorter than the longest marker, so the work per token is bounded
 * by the markers' lengths, not by the length of the output.
 *
 * Stop sequences (nuage__stopper): the output ends at the first stop
 * string to be completed (generation stops right there, so a longer stop
 * string that started earlier but would complete later never gets the
 * chance); the stop string itself and everything after it are never
 * emitted. This depends only on the text, never on how it was cut into
 * tokens. Because a held tail starts where a stop string would
 * start, and stop strings are valid UTF-8, emitted text never ends inside
 * a UTF-8 character that the detokenizer completed.
 *
 * Reasoning (nuage__think): models of the DeepSeek-R1 / Qwen3 family write
 * their chain of thought between <think> and </think> at the start of the
 * answer, or the chat template opens the <think> itself at the end of the
 * prompt. Text inside goes to `reasoning_content`, the rest to `content`;
 * leading whitespace before <think> and right after </think> is dropped,
 * as llama.cpp's server does. A <think> that does not open the answer is
 * ordinary content.
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "server/http.h"

/* Longest k < len(marker) such that text ends with marker[0..k). */
static size_t nuage__partial_suffix(const char *text, size_t n, const char *marker, size_t mlen) {
    size_t k = mlen - 1 < n ? mlen - 1 : n;
    for (; k > 0; k--)
        if (!memcmp(text + n - k, marker, k)) return k;
    return 0;
}

static const char *nuage__find(const char *hay, size_t n, const char *needle, size_t m) {
    if (m == 0 || m > n) return NULL;
    return memmem(hay, n, needle, m);
}

/* ---- stop sequences ----------------------------------------------------- */

void nuage__stopper_init(nuage__stopper *s, char *const *stops, int n_stops) {
    memset(s, 0, sizeof *s);
    s->stops = stops;
    s->n = n_stops;
}

bool nuage__stopper_feed(nuage__stopper *s, const char *t, size_t n, nuage__sb *out) {
    if (s->matched) return true;
    if (s->n == 0) {
        nuage__sb_put(out, t, n);
        return false;
    }
    nuage__sb_put(&s->pend, t, n);
    if (s->pend.oom) {
        out->oom = true;
        return false;
    }
    const char *p = s->pend.p;
    size_t len = s->pend.n;
    /* The stop sequence that completes first wins (ties: the one that
     * starts first), as if the text had arrived one byte at a time. */
    const char *best = NULL;
    size_t best_end = 0;
    for (int i = 0; i < s->n; i++) {
        size_t sl = strlen(s->stops[i]);
        const char *f = nuage__find(p, len, s->stops[i], sl);
        if (!f) continue;
        size_t end = (size_t)(f - p) + sl;
        if (!best || end < best_end || (end == best_end && f < best)) {
            best = f;
            best_end = end;
        }
    }
    if (best) {
        nuage__sb_put(out, p, (size_t)(best - p));
        nuage__sb_free(&s->pend);
        s->matched = true;
        return true;
    }
    size_t hold = 0;
    for (int i = 0; i < s->n; i++) {
        size_t k = nuage__partial_suffix(p, len, s->stops[i], strlen(s->stops[i]));
        if (k > hold) hold = k;
    }
    nuage__sb_put(out, p, len - hold);
    nuage__sb_consume(&s->pend, len - hold);
    return false;
}

void nuage__stopper_flush(nuage__stopper *s, nuage__sb *out) {
    if (!s->matched && s->pend.n) nuage__sb_put(out, s->pend.p, s->pend.n);
    nuage__sb_free(&s->pend);
}

void nuage__stopper_free(nuage__stopper *s) { nuage__sb_free(&s->pend); }

/* ---- <think> splitter ----------------------------------------------------- */

static const char nuage__open_tag[] = "<think>";
static const char nuage__close_tag[] = "</think>";

enum { NUAGE__THINK_START = 0, NUAGE__THINK_IN = 1, NUAGE__THINK_TRIM = 2, NUAGE__THINK_OUT = 3 };

void nuage__think_init(nuage__think *t, bool open) {
    memset(t, 0, sizeof *t);
    t->state = open ? NUAGE__THINK_IN : NUAGE__THINK_START;
}

bool nuage__think_inside(const nuage__think *t) { return t->state == NUAGE__THINK_IN; }

static bool nuage__is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

void nuage__think_feed(nuage__think *t, const char *s, size_t n, nuage__sb *content,
                       nuage__sb *reasoning) {
    while (n > 0 || t->state == NUAGE__THINK_START || t->state == NUAGE__THINK_IN) {
        switch (t->state) {
        case NUAGE__THINK_START: {
            nuage__sb_put(&t->hold, s, n);
            n = 0;
            if (t->hold.oom) {
                content->oom = true;
                return;
            }
            size_t i = 0;
            while (i < t->hold.n && nuage__is_space(t->hold.p[i])) i++;
            size_t rest = t->hold.n - i;
            const size_t tl = sizeof nuage__open_tag - 1;
            if (rest >= tl && !memcmp(t->hold.p + i, nuage__open_tag, tl)) {
                /* Opening tag: what follows is reasoning. */
                nuage__sb_consume(&t->hold, i + tl);
                t->state = NUAGE__THINK_IN;
                continue;
            }
            if (rest < tl && !memcmp(t->hold.p + i, nuage__open_tag, rest)) return; /* maybe */
            nuage__sb_put(content, t->hold.p, t->hold.n);
            nuage__sb_free(&t->hold);
            t->state = NUAGE__THINK_OUT;
            return;
        }
        case NUAGE__THINK_IN: {
            nuage__sb_put(&t->hold, s, n);
            n = 0;
            if (t->hold.oom) {
                reasoning->oom = true;
                return;
            }
            const size_t tl = sizeof nuage__close_tag - 1;
            const char *f = nuage__find(t->hold.p, t->hold.n, nuage__close_tag, tl);
            if (f) {
                size_t before = (size_t)(f - t->hold.p);
                nuage__sb_put(reasoning, t->hold.p, before);
                size_t after = before + tl;
                /* The text after the tag continues in TRIM. */
                nuage__sb rest = t->hold;
                t->hold = (nuage__sb){0};
                t->state = NUAGE__THINK_TRIM;
                nuage__think_feed(t, rest.p + after, rest.n - after, content, reasoning);
                nuage__sb_free(&rest);
                return;
            }
            size_t k = nuage__partial_suffix(t->hold.p, t->hold.n, nuage__close_tag, tl);
            nuage__sb_put(reasoning, t->hold.p, t->hold.n - k);
            nuage__sb_consume(&t->hold, t->hold.n - k);
            return;
        }
        case NUAGE__THINK_TRIM:
            while (n > 0 && nuage__is_space(*s)) {
                s++;
                n--;
            }
            if (n > 0) t->state = NUAGE__THINK_OUT;
            break;
        default:
            nuage__sb_put(content, s, n);
            n = 0;
            break;
        }
    }
}

void nuage__think_flush(nuage__think *t, nuage__sb *content, nuage__sb *reasoning) {
    if (t->hold.n) {
        if (t->state == NUAGE__THINK_IN) nuage__sb_put(reasoning, t->hold.p, t->hold.n);
        else nuage__sb_put(content, t->hold.p, t->hold.n);
    }
    nuage__sb_free(&t->hold);
    if (t->state == NUAGE__THINK_START) t->state = NUAGE__THINK_OUT;
}

void nuage__think_free(nuage__think *t) { nuage__sb_free(&t->hold); }

bool nuage__prompt_opens_think(const char *prompt, size_t n) {
    while (n > 0 && nuage__is_space(prompt[n - 1])) n--;
    const size_t tl = sizeof nuage__open_tag - 1;
    return n >= tl && !memcmp(prompt + n - tl, nuage__open_tag, tl);
}
