/*
 * json_schema_keys.c - object keys that match a patternProperties pattern,
 * and those that do not, for patterns simple enough to complement.
 *
 * Design. With "additionalProperties" absent (or a schema), a key that
 * matches a pattern takes the pattern's schema and every other key takes
 * additionalProperties: both the pattern's language and its complement are
 * needed, and a grammar has no complement. For three common shapes the
 * complement is easy to write directly, on decoded characters, in every
 * JSON spelling (so "\u0061" counts as "a"):
 *   universal   "", ".*", "^.*", ".*$", "^", "$": every key matches;
 *   ^C{m,n}$    one character class repeated (C a finite set of ASCII
 *               characters, \d, \w, or the complement of a finite set:
 *               "." is "not a line terminator"): a non-matching key has a
 *               character outside C, or a length outside m..n;
 *   ^prefix     a literal prefix: a non-matching key ends inside the
 *               prefix or leaves it at some character.
 * Anything else returns 0 and the caller refuses the schema.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/json_schema_internal.h"

#define KP_MAX 128

typedef struct kclass {
    bool neg;               /* the class is "not in set" */
    uint32_t set[KP_MAX];
    int n;
} kclass;

static bool add(kclass *k, uint32_t cp) {
    for (int i = 0; i < k->n; i++) if (k->set[i] == cp) return true;
    if (k->n == KP_MAX) return false;
    k->set[k->n++] = cp;
    return true;
}

static bool add_range(kclass *k, uint32_t lo, uint32_t hi) {
    for (uint32_t c = lo; c <= hi; c++) if (!add(k, c)) return false;
    return true;
}

/* an escape's set (\d \w) or literal (\. \- ...); false when unsupported */
static bool escape_into(kclass *k, char e, uint32_t *lit) {
    *lit = UINT32_MAX;
    if (e == 'd') return add_range(k, '0', '9');
    if (e == 'w') return add_range(k, 'a', 'z') && add_range(k, 'A', 'Z') && add_range(k, '0', '9') && add(k, '_');
    if (e == 'n') { *lit = '\n'; return true; }
    if (e == 't') { *lit = '\t'; return true; }
    if (e == 'r') { *lit = '\r'; return true; }
    if (e && strchr(".-_/+*?()[]{}|^$\\:@#!%&,;=<>~'\"` ", e)) { *lit = (unsigned char)e; return true; }
    return false;
}

/* [...] at p (p[0] == '['); returns the index after ']', or 0 */
static size_t parse_class(const char *p, size_t n, kclass *k) {
    size_t i = 1;
    if (i < n && p[i] == '^') { k->neg = true; i++; }
    if (i < n && p[i] == ']') return 0;
    while (i < n && p[i] != ']') {
        uint32_t lo;
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x80 || ch == '[') return 0;
        if (ch == '\\') {
            if (i + 1 >= n || !escape_into(k, p[i + 1], &lo)) return 0;
            i += 2;
            if (lo == UINT32_MAX) continue;   /* a set escape */
        } else { lo = ch; i++; }
        if (i + 1 < n && p[i] == '-' && p[i + 1] != ']') {
            unsigned char h = (unsigned char)p[i + 1];
            uint32_t hi = h;
            if (h >= 0x80 || h == '[') return 0;
            if (h == '\\') {
                kclass tmp = { 0 };
                if (i + 2 >= n || !escape_into(&tmp, p[i + 2], &hi) || hi == UINT32_MAX) return 0;
                i += 3;
            } else i += 2;
            if (hi < lo || !add_range(k, lo, hi)) return 0;
        } else if (!add(k, lo)) return 0;
    }
    return i < n ? i + 1 : 0;
}

/* quantifier at p[i..n-1) ending right before the final '$' */
static bool parse_quant(const char *p, size_t i, size_t end, uint32_t *mn, uint32_t *mx) {
    if (i + 1 == end && p[i] == '+') { *mn = 1; *mx = NCG_INF; return true; }
    if (i + 1 == end && p[i] == '*') { *mn = 0; *mx = NCG_INF; return true; }
    if (i == end) { *mn = *mx = 1; return true; }
    if (p[i] != '{') return false;
    char *e;
    unsigned long a = strtoul(p + i + 1, &e, 10), b2;
    if (e == p + i + 1 || a > 10000) return false;
    if (*e == '}') b2 = a;
    else if (*e == ',' && e[1] == '}') { b2 = NCG_INF; e++; }
    else if (*e == ',') {
        char *e2;
        b2 = strtoul(e + 1, &e2, 10);
        if (e2 == e + 1 || *e2 != '}' || b2 < a || b2 > 10000) return false;
        e = e2;
    } else return false;
    if ((size_t)(e - p) + 1 != end) return false;
    *mn = (uint32_t)a;
    *mx = (uint32_t)b2;
    return true;
}

static ncg_expr char_in(js_ctx *c, const kclass *k, bool in) {
    ncg_builder *b = c->b;
    if (k->neg == in) {
        uint32_t xs[KP_MAX];
        memcpy(xs, k->set, sizeof *xs * (size_t)k->n);
        return js_char_not(c, xs, k->n);
    }
    ncg_expr acc = ncg_nothing(b);
    for (int i = 0; i < k->n; i++) acc = ncg_alt2(b, acc, js_char_lit(c, k->set[i]));
    return acc;
}

int js_key_split(js_ctx *c, const char *pat, ncg_expr *yes, ncg_expr *no, bool *universal) {
    ncg_builder *b = c->b;
    size_t n = strlen(pat);
    ncg_expr q = ncg_str(b, "\""), any = ncg_repeat(b, js_str_char(c), 0, NCG_INF);
    *universal = false;
    static const char *const all[] = { "", ".*", "^.*", ".*$", "^", "$" };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (!strcmp(pat, all[i])) {
            *universal = true;
            *yes = ncg_seq(b, (ncg_expr[]){ q, any, q }, 3);
            *no = ncg_nothing(b);
            return 1;
        }
    if (n < 2 || pat[0] != '^') return 0;
    kclass k = { 0 };
    if (pat[n - 1] == '$' && pat[n - 2] != '\\') {
        /* ^ATOM QUANT$ */
        size_t i = 1;
        if (pat[i] == '[') {
            size_t e = parse_class(pat + i, n - 1 - i, &k);
            if (!e) return 0;
            i += e;
        } else if (pat[i] == '.') {
            k.neg = true;
            add(&k, '\n'); add(&k, '\r'); add(&k, 0x2028); add(&k, 0x2029);
            i++;
        } else if (pat[i] == '\\' && (pat[i + 1] == 'd' || pat[i + 1] == 'w')) {
            uint32_t lit;
            escape_into(&k, pat[i + 1], &lit);
            i += 2;
        } else return 0;
        uint32_t mn, mx;
        if (!parse_quant(pat, i, n - 1, &mn, &mx)) return 0;
        ncg_expr in = char_in(c, &k, true), out = char_in(c, &k, false);
        if (in < 0 || out < 0) return 0;
        *yes = ncg_seq(b, (ncg_expr[]){ q, ncg_repeat(b, in, mn, mx), q }, 3);
        ncg_expr alts[3] = {
            mn > 0 ? ncg_repeat(b, in, 0, mn - 1) : ncg_nothing(b),
            mx != NCG_INF ? ncg_repeat(b, in, mx + 1, NCG_INF) : ncg_nothing(b),
            ncg_seq(b, (ncg_expr[]){ ncg_repeat(b, in, 0, NCG_INF), out, any }, 3),
        };
        *no = ncg_seq(b, (ncg_expr[]){ q, ncg_alt(b, alts, 3), q }, 3);
        return 1;
    }
    /* ^prefix: literal characters only */
    uint32_t lit[256];
    int nl = 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char ch = (unsigned char)pat[i];
        if (nl == 256 || ch >= 0x80) return 0;
        if (ch == '\\') {
            kclass t = { 0 };
            uint32_t l;
            if (i + 1 >= n || !escape_into(&t, pat[i + 1], &l) || l == UINT32_MAX) return 0;
            lit[nl++] = l;
            i++;
        } else if (strchr(".*+?()[]{}|^$", ch)) {
            return 0;
        } else lit[nl++] = ch;
    }
    if (nl == 0) return 0;
    ncg_expr pre = ncg_empty(b);
    for (int i = 0; i < nl; i++) pre = ncg_seq2(b, pre, js_char_lit(c, lit[i]));
    *yes = ncg_seq(b, (ncg_expr[]){ q, pre, any, q }, 4);
    /* not starting with the prefix: stop inside it, or leave it */
    ncg_expr acc = ncg_nothing(b);
    for (int i = nl - 1; i >= 0; i--) {
        uint32_t x = lit[i];
        ncg_expr leave = ncg_seq2(b, js_char_not(c, &x, 1), any);
        acc = ncg_alt(b, (ncg_expr[]){ ncg_empty(b), leave, ncg_seq2(b, js_char_lit(c, lit[i]), acc) }, 3);
    }
    *no = ncg_seq(b, (ncg_expr[]){ q, acc, q }, 3);
    return 1;
}
