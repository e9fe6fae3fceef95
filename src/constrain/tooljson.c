/*
 * tooljson.c - JSON scanning for the tool-call parser (see tooljson.h).
 *
 * A recursive-descent recognizer whose only output is a verdict (OK /
 * MORE / BAD) and an end offset. "MORE" is precise: it is returned only
 * when every byte so far is a valid prefix of some JSON value, so the
 * streaming parser can wait without ever waiting for text that cannot
 * become a call. Recursion is bounded by TJ_MAX_DEPTH (deeper is BAD), so
 * hostile output cannot exhaust the stack.
 *
 * Decoding of strings (names, the generic envelope's "content") goes
 * through jansson on the single string literal: that is a small, valid
 * JSON text, which jansson always represents.
 */
#include "constrain/tooljson.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t nuage__tj_ws(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && is_ws(s[i])) i++;
    return i;
}

/* One UTF-8 sequence at s[i] (first byte >= 0x80): its length, 0 if
 * invalid, or SIZE_MAX if cut by the end of the input (valid so far). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t i) {
    unsigned char c = s[i];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    for (size_t k = 1; k < len; k++) {
        if (i + k >= n) return SIZE_MAX;
        unsigned char b = s[i + k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    }
    return len;
}

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static tj_status scan_string(const char *s, size_t n, size_t *pos) {
    size_t i = *pos + 1;   /* past the opening quote */
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') { *pos = i + 1; return TJ_OK; }
        if (c < 0x20) return TJ_BAD;
        if (c == '\\') {
            if (i + 1 >= n) return TJ_MORE;
            char e = s[i + 1];
            if (e == 'u') {
                for (size_t k = 2; k < 6; k++) {
                    if (i + k >= n) return TJ_MORE;
                    if (!is_hex(s[i + k])) return TJ_BAD;
                }
                i += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                i += 2;
            } else {
                return TJ_BAD;
            }
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_seq((const unsigned char *)s, n, i);
            if (l == SIZE_MAX) return TJ_MORE;
            if (l == 0) return TJ_BAD;
            i += l;
            continue;
        }
        i++;
    }
    return TJ_MORE;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static tj_status scan_number(const char *s, size_t n, size_t *pos) {
    size_t i = *pos;
    if (s[i] == '-') { i++; if (i >= n) return TJ_MORE; }
    if (s[i] == '0') i++;
    else if (is_digit(s[i])) { while (i < n && is_digit(s[i])) i++; }
    else return TJ_BAD;
    if (i >= n) return TJ_MORE;
    if (s[i] == '.') {
        i++;
        if (i >= n) return TJ_MORE;
        if (!is_digit(s[i])) return TJ_BAD;
        while (i < n && is_digit(s[i])) i++;
        if (i >= n) return TJ_MORE;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (i >= n) return TJ_MORE;
        if (s[i] == '+' || s[i] == '-') { i++; if (i >= n) return TJ_MORE; }
        if (!is_digit(s[i])) return TJ_BAD;
        while (i < n && is_digit(s[i])) i++;
        if (i >= n) return TJ_MORE;
    }
    *pos = i;
    return TJ_OK;
}

static tj_status scan_value(const char *s, size_t n, size_t *pos, int depth);

/* Object or array at s[*pos] ('{' or '['). */
static tj_status scan_container(const char *s, size_t n, size_t *pos, int depth) {
    if (depth >= TJ_MAX_DEPTH) return TJ_BAD;
    bool obj = s[*pos] == '{';
    char close = obj ? '}' : ']';
    size_t i = *pos + 1;
    i += nuage__tj_ws(s + i, n - i);
    if (i >= n) return TJ_MORE;
    if (s[i] == close) { *pos = i + 1; return TJ_OK; }
    for (;;) {
        if (obj) {
            if (s[i] != '"') return TJ_BAD;
            tj_status st = scan_string(s, n, &i);
            if (st != TJ_OK) return st;
            i += nuage__tj_ws(s + i, n - i);
            if (i >= n) return TJ_MORE;
            if (s[i] != ':') return TJ_BAD;
            i++;
            i += nuage__tj_ws(s + i, n - i);
            if (i >= n) return TJ_MORE;
        }
        tj_status st = scan_value(s, n, &i, depth + 1);
        if (st != TJ_OK) return st;
        i += nuage__tj_ws(s + i, n - i);
        if (i >= n) return TJ_MORE;
        if (s[i] == close) { *pos = i + 1; return TJ_OK; }
        if (s[i] != ',') return TJ_BAD;
        i++;
        i += nuage__tj_ws(s + i, n - i);
        if (i >= n) return TJ_MORE;
    }
}

static tj_status scan_literal(const char *s, size_t n, size_t *pos, const char *lit) {
    size_t l = strlen(lit);
    for (size_t k = 0; k < l; k++) {
        if (*pos + k >= n) return TJ_MORE;
        if (s[*pos + k] != lit[k]) return TJ_BAD;
    }
    *pos += l;
    return TJ_OK;
}

static tj_status scan_value(const char *s, size_t n, size_t *pos, int depth) {
    if (*pos >= n) return TJ_MORE;
    char c = s[*pos];
    switch (c) {
    case '{': case '[': return scan_container(s, n, pos, depth);
    case '"': return scan_string(s, n, pos);
    case 't': return scan_literal(s, n, pos, "true");
    case 'f': return scan_literal(s, n, pos, "false");
    case 'n': return scan_literal(s, n, pos, "null");
    default:
        if (c == '-' || is_digit(c)) return scan_number(s, n, pos);
        return TJ_BAD;
    }
}

tj_status nuage__tj_value(const char *s, size_t n, size_t *end) {
    size_t pos = 0;
    tj_status st = scan_value(s, n, &pos, 0);
    if (st == TJ_OK) *end = pos;
    return st;
}

char *nuage__tj_compact(const char *s, size_t n, size_t *out_len) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < n) out[o++] = s[++i];
            else if (c == '"') in_str = false;
        } else if (!is_ws(c)) {
            out[o++] = c;
            if (c == '"') in_str = true;
        }
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

char *nuage__tj_string(const char *s, size_t n, size_t *out_len) {
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j || !json_is_string(j)) { json_decref(j); return NULL; }
    size_t l = json_string_length(j);
    char *out = malloc(l + 1);
    if (out) {
        memcpy(out, json_string_value(j), l);
        out[l] = 0;
        if (out_len) *out_len = l;
    }
    json_decref(j);
    return out;
}

/* Walk the members of a valid object: calls visit(key span, value span);
 * stops when visit returns true. */
typedef bool (*member_fn)(const char *k, size_t kl, const char *v, size_t vl, void *ud);

static void each_member(const char *s, size_t n, member_fn fn, void *ud) {
    size_t i = 1;
    i += nuage__tj_ws(s + i, n - i);
    while (i < n && s[i] == '"') {
        size_t k0 = i;
        if (scan_string(s, n, &i) != TJ_OK) return;
        size_t kl = i - k0;
        i += nuage__tj_ws(s + i, n - i);
        i++;   /* ':' */
        i += nuage__tj_ws(s + i, n - i);
        size_t v0 = i;
        if (scan_value(s, n, &i, 1) != TJ_OK) return;
        if (fn(s + k0, kl, s + v0, i - v0, ud)) return;
        i += nuage__tj_ws(s + i, n - i);
        if (i < n && s[i] == ',') i++;
        i += nuage__tj_ws(s + i, n - i);
    }
}

/* Does the key literal k[0..kl) decode to want? Plain keys compare
 * directly; keys with escapes are decoded. */
static bool key_is(const char *k, size_t kl, const char *want) {
    size_t wl = strlen(want);
    if (!memchr(k, '\\', kl)) return kl == wl + 2 && memcmp(k + 1, want, wl) == 0;
    size_t dl;
    char *d = nuage__tj_string(k, kl, &dl);
    bool eq = d && dl == wl && memcmp(d, want, wl) == 0;
    free(d);
    return eq;
}

struct find_ud { const char *key; const char *v; size_t vl; bool found; };

static bool find_visit(const char *k, size_t kl, const char *v, size_t vl, void *ud) {
    struct find_ud *f = ud;
    if (!key_is(k, kl, f->key)) return false;
    f->v = v;
    f->vl = vl;
    f->found = true;
    return true;
}

bool nuage__tj_member(const char *s, size_t n, const char *key, const char **v, size_t *vlen) {
    struct find_ud f = {key, NULL, 0, false};
    each_member(s, n, find_visit, &f);
    if (f.found) { *v = f.v; *vlen = f.vl; }
    return f.found;
}

struct count_ud { const char *const *allowed; size_t n, other; };

static bool count_visit(const char *k, size_t kl, const char *v, size_t vl, void *ud) {
    (void)v; (void)vl;
    struct count_ud *c = ud;
    c->n++;
    bool ok = false;
    for (size_t a = 0; c->allowed && c->allowed[a]; a++)
        if (key_is(k, kl, c->allowed[a])) { ok = true; break; }
    if (!ok) c->other++;
    return false;
}

size_t nuage__tj_count_members(const char *s, size_t n, const char *const *allowed,
                               size_t *n_other) {
    struct count_ud c = {allowed, 0, 0};
    each_member(s, n, count_visit, &c);
    if (n_other) *n_other = c.other;
    return c.n;
}
