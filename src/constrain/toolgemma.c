/*
 * toolgemma.c - reading Gemma 4's tool calls into JSON arguments (see
 * toolgemma.h; the grammar side is toolgemma_grammar.c).
 *
 * Gemma 4's template does not write JSON: keys are bare, strings sit
 * between <|"|> markers with no escaping, None is null, and the members of
 * every object come in sorted key order. Reading converts that to compact
 * JSON as it goes (escaping strings), answering "wait" for anything cut
 * by the end of the input, so the streaming parser treats Gemma blocks
 * like every other family's. Nesting is bounded (MAX_DEPTH).
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/toolgemma.h"
#include "constrain/tooljson.h"
#include "nuage/nuage.h"

#define MAX_KEY 256
#define MAX_DEPTH 64

/* ---- reading ---- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} jbuf;

static void jb_put(jbuf *o, const char *s, size_t n) {
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 128;
        while (nc < o->n + n + 1) nc *= 2;
        char *np = realloc(o->p, nc);
        if (!np) { o->oom = true; return; }
        o->p = np;
        o->cap = nc;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = 0;
}

/* 1 full, -1 proper prefix (input ends), 0 neither. */
static int pm(const char *s, size_t n, const char *lit) {
    size_t l = strlen(lit);
    if (n >= l) return memcmp(s, lit, l) == 0 ? 1 : 0;
    return memcmp(s, lit, n) == 0 ? -1 : 0;
}

static bool utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t l = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!l || i + l > n) return false;
        for (size_t k = 1; k < l; k++)
            if ((s[i + k] & 0xC0) != 0x80) return false;
        if (l == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F))) return false;
        if (l == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))) return false;
        i += l;
    }
    return true;
}

/* JSON string literal of the raw text s[0..n). */
static void put_json_string(jbuf *o, const char *s, size_t n) {
    jb_put(o, "\"", 1);
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jb_put(o, s + a, i - a);
        char e[8];
        if (c == '"' || c == '\\') snprintf(e, sizeof e, "\\%c", c);
        else if (c == '\n') snprintf(e, sizeof e, "\\n");
        else if (c == '\t') snprintf(e, sizeof e, "\\t");
        else if (c == '\r') snprintf(e, sizeof e, "\\r");
        else snprintf(e, sizeof e, "\\u%04x", c);
        jb_put(o, e, strlen(e));
        a = i + 1;
    }
    jb_put(o, s + a, n - a);
    jb_put(o, "\"", 1);
}

/* 1 value read (*i past it), 0 input ends inside it, -1 not one. */
static int g_value(const char *s, size_t n, size_t *i, jbuf *o, int depth);

static int g_string(const char *s, size_t n, size_t *i, jbuf *o) {
    size_t a = *i + strlen(GEMMA_QUOTE);
    const char *e = memmem(s + a, n - a, GEMMA_QUOTE, strlen(GEMMA_QUOTE));
    if (!e) return 0;
    size_t b = (size_t)(e - s);
    if (!utf8_ok((const unsigned char *)s + a, b - a)) return -1;
    put_json_string(o, s + a, b - a);
    *i = b + strlen(GEMMA_QUOTE);
    return 1;
}

bool nuage__gemma_key_char(char c) {
    return c != ':' && c != ',' && c != '{' && c != '}' && c != '[' && c != ']' && c != '<' && c != ' ' &&
           c != '\n' && c != '\t' && c != '\r' && c != '"' && c != '\\' && (unsigned char)c >= 0x20;
}

static int g_container(const char *s, size_t n, size_t *i, jbuf *o, int depth) {
    if (depth >= MAX_DEPTH) return -1;
    bool obj = s[*i] == '{';
    char close = obj ? '}' : ']';
    jb_put(o, obj ? "{" : "[", 1);
    size_t k = *i + 1;
    if (k >= n) return 0;
    if (s[k] == close) { jb_put(o, obj ? "}" : "]", 1); *i = k + 1; return 1; }
    for (;;) {
        if (obj) {
            int q = pm(s + k, n - k, GEMMA_QUOTE);
            if (q == -1) return 0;
            if (q == 1) {
                int r = g_string(s, n, &k, o);
                if (r != 1) return r;
            } else {
                size_t a = k;
                while (k < n && nuage__gemma_key_char(s[k]) && k - a <= MAX_KEY) k++;
                if (k - a > MAX_KEY) return -1;
                if (k >= n) return 0;
                if (k == a || !utf8_ok((const unsigned char *)s + a, k - a)) return -1;
                put_json_string(o, s + a, k - a);
            }
            if (k >= n) return 0;
            if (s[k] != ':') return -1;
            jb_put(o, ":", 1);
            k++;
        }
        int r = g_value(s, n, &k, o, depth + 1);
        if (r != 1) return r;
        if (k >= n) return 0;
        if (s[k] == close) { jb_put(o, obj ? "}" : "]", 1); *i = k + 1; return 1; }
        if (s[k] != ',') return -1;
        jb_put(o, ",", 1);
        k++;
        if (k >= n) return 0;
    }
}

static int g_value(const char *s, size_t n, size_t *i, jbuf *o, int depth) {
    if (*i >= n) return 0;
    char c = s[*i];
    if (c == '{' || c == '[') return g_container(s, n, i, o, depth);
    int q = pm(s + *i, n - *i, GEMMA_QUOTE);
    if (q == 1) return g_string(s, n, i, o);
    static const struct { const char *in, *out; } lits[] = {
        {"true", "true"}, {"false", "false"}, {"null", "null"},
        {"True", "true"}, {"False", "false"}, {"None", "null"},
    };
    bool partial = q == -1;
    for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
        int m = pm(s + *i, n - *i, lits[k].in);
        if (m == 1) { jb_put(o, lits[k].out, strlen(lits[k].out)); *i += strlen(lits[k].in); return 1; }
        if (m == -1) partial = true;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t end;
        tj_status st = nuage__tj_value(s + *i, n - *i, &end);
        if (st == TJ_MORE) return 0;
        if (st == TJ_BAD) return -1;
        jb_put(o, s + *i, end);
        *i += end;
        return 1;
    }
    return partial ? 0 : -1;
}

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
}

int nuage__gemma_call(const char *s, size_t n, bool final, size_t *used, const char **name, size_t *nl,
                      char **json, size_t *jl) {
    size_t i = strlen(GEMMA_CALL_OPEN);
    int m = pm(s + i, n - i, "call:");
    if (m != 1) return m == -1 ? 0 : -1;
    i += 5;
    size_t a = i;
    while (i < n && name_char(s[i]) && i - a <= MAX_KEY) i++;
    if (i - a > MAX_KEY) return -1;
    if (i >= n) return 0;
    if (s[i] != '{' || i == a) return -1;
    size_t name_len = i - a;
    jbuf o = {0};
    int r = g_container(s, n, &i, &o, 0);
    if (r == 1 && o.oom) r = -1;
    if (r == 1) {
        m = pm(s + i, n - i, GEMMA_CALL_CLOSE);
        if (m == 1) *used = i + strlen(GEMMA_CALL_CLOSE);
        else if (m == -1 && final) *used = n;
        else r = m == -1 ? 0 : -1;
    }
    if (r != 1) { free(o.p); return r; }
    *name = s + a;
    *nl = name_len;
    *json = o.p;
    *jl = o.n;
    return 1;
}

