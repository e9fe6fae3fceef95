/*
 * tooljson.c - JSON scanning for the tool-call parser (see tooljson.h).
 *
 * A byte-at-a-time recognizer (a state machine with an explicit stack of
 * open containers) whose only output is a verdict (OK / MORE / BAD) and an
 * end offset. "MORE" is precise: it is returned only when every byte so
 * far is a valid prefix of some JSON value, so the streaming parser can
 * wait without ever waiting for text that cannot become a call. Its state
 * can be kept between pieces of output (nuage__tj_scan), so a long
 * argument is scanned once, not once per token. Nesting is bounded by
 * TJ_MAX_DEPTH (deeper is BAD).
 *
 * Decoding of strings (names, the generic envelope's "content") goes
 * through jansson on the single string literal: that is a small, valid
 * JSON text, which jansson always represents.
 */
#include "constrain/tooljson.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t nuage__tj_ws(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && is_ws(s[i])) i++;
    return i;
}

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

enum {
    Z_VAL0, Z_VAL, Z_OBJ1, Z_KEY, Z_COLON, Z_AFTER, Z_ARR1,
    Z_STR, Z_ESC, Z_HEX, Z_UTF8, Z_NUM, Z_LIT, Z_DONE, Z_BAD,
};
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

void nuage__tj_scan_init(tj_scan *z) {
    memset(z, 0, sizeof *z);
    z->st = Z_VAL0;
}

/* A value ended at byte offset `at`: the whole text when at top level. */
static void value_end(tj_scan *z, size_t at) {
    if (z->depth == 0) { z->st = Z_DONE; z->end = at; }
    else z->st = Z_AFTER;
}

/* c starts a value at offset i. */
static void start_value(tj_scan *z, unsigned char c, size_t i) {
    switch (c) {
    case '{': case '[':
        if (z->depth >= TJ_MAX_DEPTH) { z->st = Z_BAD; return; }
        z->stack[z->depth++] = (char)c;
        z->st = c == '{' ? Z_OBJ1 : Z_ARR1;
        return;
    case '"': z->key = false; z->st = Z_STR; return;
    case 't': z->lit = "true"; break;
    case 'f': z->lit = "false"; break;
    case 'n': z->lit = "null"; break;
    default:
        if (c == '-') { z->num = N_MINUS; z->st = Z_NUM; }
        else if (c == '0') { z->num = N_ZERO; z->st = Z_NUM; }
        else if (is_digit((char)c)) { z->num = N_INT; z->st = Z_NUM; }
        else z->st = Z_BAD;
        (void)i;
        return;
    }
    z->lit_i = 1;
    z->st = Z_LIT;
}

/* One more byte of a number: false when c ends it (c not consumed). */
static bool num_byte(tj_scan *z, char c) {
    switch (z->num) {
    case N_MINUS:
        if (c == '0') z->num = N_ZERO;
        else if (is_digit(c)) z->num = N_INT;
        else z->st = Z_BAD;
        return true;
    case N_ZERO: case N_INT: case N_FRAC:
        if (is_digit(c) && z->num != N_ZERO) return true;
        if (c == '.' && z->num != N_FRAC) { z->num = N_DOT; return true; }
        if (c == 'e' || c == 'E') { z->num = N_E; return true; }
        return false;
    case N_DOT:
        if (is_digit(c)) z->num = N_FRAC;
        else z->st = Z_BAD;
        return true;
    case N_E:
        if (c == '+' || c == '-') z->num = N_ESIGN;
        else if (is_digit(c)) z->num = N_EXP;
        else z->st = Z_BAD;
        return true;
    case N_ESIGN:
        if (is_digit(c)) z->num = N_EXP;
        else z->st = Z_BAD;
        return true;
    default:   /* N_EXP */
        return is_digit(c);
    }
}

tj_status nuage__tj_scan(tj_scan *z, const char *s, size_t n, size_t *end) {
    size_t i = z->pos;
    while (i < n && z->st != Z_DONE && z->st != Z_BAD) {
        unsigned char c = (unsigned char)s[i];
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        switch (z->st) {
        case Z_VAL0: start_value(z, c, i); break;
        case Z_VAL: if (!ws) start_value(z, c, i); break;
        case Z_OBJ1:
            if (ws) break;
            if (c == '}') { z->depth--; value_end(z, i + 1); }
            else if (c == '"') { z->key = true; z->st = Z_STR; }
            else z->st = Z_BAD;
            break;
        case Z_KEY:
            if (ws) break;
            if (c == '"') { z->key = true; z->st = Z_STR; }
            else z->st = Z_BAD;
            break;
        case Z_COLON:
            if (ws) break;
            z->st = c == ':' ? Z_VAL : Z_BAD;
            break;
        case Z_ARR1:
            if (ws) break;
            if (c == ']') { z->depth--; value_end(z, i + 1); }
            else start_value(z, c, i);
            break;
        case Z_AFTER: {
            if (ws) break;
            char top = z->stack[z->depth - 1];
            if (c == ',') z->st = top == '{' ? Z_KEY : Z_VAL;
            else if (c == (top == '{' ? '}' : ']')) { z->depth--; value_end(z, i + 1); }
            else z->st = Z_BAD;
            break;
        }
        case Z_STR:
            if (c == '"') {
                if (z->key) z->st = Z_COLON;
                else value_end(z, i + 1);
            } else if (c == '\\') z->st = Z_ESC;
            else if (c < 0x20) z->st = Z_BAD;
            else if (c >= 0x80) {
                /* a UTF-8 lead byte: how many continuation bytes, and the
                 * range of the first (no overlongs, surrogates, > 10FFFF) */
                z->lo = 0x80;
                z->hi = 0xBF;
                if (c >= 0xC2 && c <= 0xDF) z->left = 1;
                else if (c >= 0xE0 && c <= 0xEF) {
                    z->left = 2;
                    if (c == 0xE0) z->lo = 0xA0;
                    if (c == 0xED) z->hi = 0x9F;
                } else if (c >= 0xF0 && c <= 0xF4) {
                    z->left = 3;
                    if (c == 0xF0) z->lo = 0x90;
                    if (c == 0xF4) z->hi = 0x8F;
                } else { z->st = Z_BAD; break; }
                z->st = Z_UTF8;
            }
            break;
        case Z_UTF8:
            if (c < z->lo || c > z->hi) { z->st = Z_BAD; break; }
            z->lo = 0x80;
            z->hi = 0xBF;
            if (--z->left == 0) z->st = Z_STR;
            break;
        case Z_ESC:
            if (c == 'u') { z->st = Z_HEX; z->left = 4; }
            else if (c && strchr("\"\\/bfnrt", (char)c)) z->st = Z_STR;
            else z->st = Z_BAD;
            break;
        case Z_HEX:
            if (!is_hex((char)c)) z->st = Z_BAD;
            else if (--z->left == 0) z->st = Z_STR;
            break;
        case Z_LIT:
            if (c != (unsigned char)z->lit[z->lit_i]) { z->st = Z_BAD; break; }
            if (!z->lit[++z->lit_i]) value_end(z, i + 1);
            break;
        case Z_NUM:
            if (!num_byte(z, (char)c)) {
                value_end(z, i);
                continue;   /* c belongs to what follows the number */
            }
            break;
        }
        i++;
    }
    z->pos = i;
    if (z->st == Z_DONE) { *end = z->end; return TJ_OK; }
    return z->st == Z_BAD ? TJ_BAD : TJ_MORE;
}

tj_status nuage__tj_value(const char *s, size_t n, size_t *end) {
    tj_scan z;
    nuage__tj_scan_init(&z);
    return nuage__tj_scan(&z, s, n, end);
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
        size_t k0 = i, e;
        if (nuage__tj_value(s + i, n - i, &e) != TJ_OK) return;
        i += e;
        size_t kl = i - k0;
        i += nuage__tj_ws(s + i, n - i);
        i++;   /* ':' */
        i += nuage__tj_ws(s + i, n - i);
        size_t v0 = i;
        if (nuage__tj_value(s + i, n - i, &e) != TJ_OK) return;
        i += e;
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
