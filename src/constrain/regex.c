/*
 * regex.c - ECMAScript regular expressions as grammar expressions.
 *
 * Design. A pattern is parsed (recursive descent over code points, the
 * ECMA-262 Pattern grammar plus the Annex B leniencies real JSON Schemas
 * rely on: a '{' that starts no quantifier, a lone ']' or '}', identity
 * escapes such as \- \_ \/) into a small tree: code point sets, sequences,
 * alternations, repeats and the two anchors ^ and $. Every character
 * matcher (a literal, '.', a class, \d ...) becomes one sorted set of code
 * point ranges, so the tree has a single kind of leaf.
 *
 * The tree is then lowered into builder expressions (grammar.h).
 *  - Plain mode: a set is ncg_char_ranges (UTF-8 bytes).
 *  - JSON-string mode: a set is every way JSON may write one of its code
 *    points inside a string literal: raw when JSON allows it (not '"', '\'
 *    or a control character), a short escape (\" \\ \/ \b \f \n \r \t),
 *    \uXXXX with hex digits of either case, or a \uD8xx\uDCxx surrogate
 *    pair for code points above FFFF. The language is therefore exactly
 *    the JSON spellings of the strings the pattern matches. The escapes
 *    of each distinct set go into a rule of their own ("json-escape"),
 *    so a set costs its DFA one call edge rather than the \uXXXX
 *    automaton (compile time is dominated by DFA size).
 *  - Anchors are exact wherever they appear. Each anchored node is lowered
 *    under two facts about its surroundings: "the position before me is
 *    the start of the string" and "the position after me is the end". A
 *    sequence AB splits into four cases (A empty or not, B empty or not)
 *    that pass those facts on; a star splits its non-empty iterations into
 *    first / middle / last. Sub-trees without anchors ignore the facts and
 *    are lowered once (memoised), so the common ^...$ costs nothing extra.
 *    Bounded repeats of anchored sub-trees are unrolled (capped).
 *  - anchored=false (JSON Schema "pattern": a search) puts any string
 *    before and after the match: S*RS* without anchors, and the four
 *    start/end cases with them, so "^a" is a prefix test, "b$" a suffix
 *    test, "^a$|b" both.
 *  - Two rewrites keep the engine's automata small without changing the
 *    language: a search drops what the surrounding any-string absorbs at
 *    a free end (X{m,n} -> X{m}, X* -> nothing), and an alternation of
 *    literal strings becomes a trie (shared prefixes, shared states).
 * Lazy quantifiers match the same language as greedy ones; capturing and
 * named groups are plain groups (no captures are reported).
 *
 * Refused with NUAGE_E_UNSUPPORTED (message names the feature): lookahead
 * and lookbehind, backreferences (\1, \k<n>), word boundaries \b \B,
 * Unicode property escapes \p{..}, inline flags (?i), and patterns whose
 * expansion (bounded repeats multiplied out) exceeds a cap. Syntax errors
 * are NUAGE_E_INVAL. The pattern is UTF-8; invalid UTF-8 is NUAGE_E_INVAL.
 *
 * Character classes follow ECMA-262: \d = [0-9], \w = [A-Za-z0-9_], \s =
 * WhiteSpace and LineTerminator (including U+00A0, U+1680, U+2000-200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF); '.' is any code point
 * but \n \r U+2028 U+2029. Matching is by code point (as with the u flag);
 * \uD83D\uDE00 written as a pair is the one code point U+1F600; a lone
 * surrogate matches nothing.
 */
#include "constrain/regex_internal.h"
#include "nuage/nuage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_MAX_DEPTH 200         /* group nesting */
#define RX_MAX_LEN (256u << 10)  /* pattern bytes */
#define RX_MAX_WEIGHT 40000.0    /* leaves after multiplying out repeats */
#define RX_MAX_UNROLL 1000       /* copies when unrolling an anchored repeat */
#define RX_MAX_COUNT 100000u     /* largest {m,n} bound */

enum { K_EMPTY, K_SET, K_SEQ, K_ALT, K_REP, K_BOL, K_EOL };
enum { F_START = 1, F_END = 2 };

/* A lowered language: e (valid unless none), nul = contains the empty
 * string, none = the empty language (e unused). */
typedef struct { ncg_expr e; bool nul, none; } lres;

typedef struct {
    uint8_t kind;
    bool anch;            /* contains ^ or $ */
    uint32_t min, max;    /* K_REP */
    uint32_t k0, nk;      /* K_SEQ/K_ALT: kids[k0..k0+nk); K_REP: kids[k0]; K_SET: rng pairs */
    double weight;
    uint8_t have;         /* bit (fl * 2 + ne) set = memo valid */
    lres memo[4][2];
} rnode;

typedef struct {
    const unsigned char *p, *end;
    rnode *nodes; size_t nn, cn;
    uint32_t *kids; size_t nkids, ckids;
    uint32_t *stack; size_t nstack, cstack;
    uint32_t *rng; size_t nrng, crng;   /* pairs, 2 words each */
    int depth;
    bool json, nocap;
    ncg_builder *b;
    nuage_cg_error *err;
    int rc;
    ncg_expr any_e; bool any_done;
    struct { uint32_t *r; size_t n; ncg_expr e; } *jmemo;   /* json_set (r owned) */
    size_t n_jmemo, cjmemo;
    const ncg_expr *subst; size_t n_subst;   /* NCG_SUBST_BASE + k -> subst[k] */
} rx;

static int fail(rx *x, int rc, const char *fmt, ...) {
    if (x->rc == 0) {
        x->rc = rc;
        if (x->err) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(x->err->msg, sizeof x->err->msg, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elt) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elt);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

/* ---- code point sets ---------------------------------------------------- */

int ncg_cset_add(ncg_cset *s, uint32_t lo, uint32_t hi) {
    if (lo > hi) return 0;
    if (!grow((void **)&s->v, &s->cap, s->n * 2 + 2, sizeof(uint32_t))) return NUAGE_E_NOMEM;
    s->v[s->n * 2] = lo;
    s->v[s->n * 2 + 1] = hi;
    s->n++;
    return 0;
}

static int cmp_pair(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

void ncg_cset_norm(ncg_cset *s) {
    if (s->n < 2) return;
    qsort(s->v, s->n, 2 * sizeof(uint32_t), cmp_pair);
    size_t o = 0;
    for (size_t i = 1; i < s->n; i++) {
        if (s->v[i * 2] <= s->v[o * 2 + 1] + 1 && s->v[o * 2 + 1] != UINT32_MAX) {
            if (s->v[i * 2 + 1] > s->v[o * 2 + 1]) s->v[o * 2 + 1] = s->v[i * 2 + 1];
        } else {
            o++;
            s->v[o * 2] = s->v[i * 2];
            s->v[o * 2 + 1] = s->v[i * 2 + 1];
        }
    }
    s->n = o + 1;
}

/* Complement within [0, 10FFFF]; s must be normalised. */
int ncg_cset_negate(ncg_cset *s) {
    ncg_cset t = {0};
    uint32_t next = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i * 2] > next && ncg_cset_add(&t, next, s->v[i * 2] - 1)) goto fail_nomem;
        next = s->v[i * 2 + 1] + 1;
    }
    if (next <= 0x10FFFF && ncg_cset_add(&t, next, 0x10FFFF)) goto fail_nomem;
    free(s->v);
    *s = t;
    return 0;
fail_nomem:
    free(t.v);
    return NUAGE_E_NOMEM;
}

static const uint32_t SPACE_RANGES[] = {
    0x09, 0x0D, 0x20, 0x20, 0xA0, 0xA0, 0x1680, 0x1680, 0x2000, 0x200A,
    0x2028, 0x2029, 0x202F, 0x202F, 0x205F, 0x205F, 0x3000, 0x3000, 0xFEFF, 0xFEFF};
static const uint32_t DIGIT_RANGES[] = {'0', '9'};
static const uint32_t WORD_RANGES[] = {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'};
static const uint32_t NOT_DOT[] = {0x0A, 0x0A, 0x0D, 0x0D, 0x2028, 0x2029};

/* Add class escape letter c (d D s S w W) to s. */
static int cset_add_class(ncg_cset *s, char c) {
    const uint32_t *r;
    size_t n;
    switch (c | 0x20) {
    case 'd': r = DIGIT_RANGES; n = 1; break;
    case 'w': r = WORD_RANGES; n = 4; break;
    default: r = SPACE_RANGES; n = 10; break;
    }
    ncg_cset t = {0};
    for (size_t i = 0; i < n; i++)
        if (ncg_cset_add(&t, r[2 * i], r[2 * i + 1])) goto fail_nomem;
    if (c >= 'A' && c <= 'Z' && ncg_cset_negate(&t)) goto fail_nomem;
    for (size_t i = 0; i < t.n; i++)
        if (ncg_cset_add(s, t.v[2 * i], t.v[2 * i + 1])) goto fail_nomem;
    free(t.v);
    return 0;
fail_nomem:
    free(t.v);
    return NUAGE_E_NOMEM;
}

/* ---- JSON-string spelling of a code point set ---------------------------- */

static ncg_expr hex_digits(ncg_builder *b, unsigned lo, unsigned hi) {
    uint8_t set[32] = {0};
    for (unsigned d = lo; d <= hi; d++) {
        unsigned c1 = d < 10 ? '0' + d : 'a' + d - 10, c2 = d < 10 ? c1 : 'A' + d - 10;
        set[c1 >> 3] |= (uint8_t)(1u << (c1 & 7));
        set[c2 >> 3] |= (uint8_t)(1u << (c2 & 7));
    }
    return ncg_byteset(b, set);
}

/* nd hex digits (either case) spelling a value in [lo, hi]. */
static ncg_expr hex_range(ncg_builder *b, uint32_t lo, uint32_t hi, int nd) {
    if (nd == 0) return ncg_empty(b);
    uint32_t w = 1u << (4 * (nd - 1));
    uint32_t lt = lo / w, ht = hi / w, lr = lo % w, hr = hi % w;
    if (lt == ht) return ncg_seq2(b, hex_digits(b, lt, lt), hex_range(b, lr, hr, nd - 1));
    ncg_expr parts[3];
    size_t n = 0;
    uint32_t from = lr == 0 ? lt : lt + 1, to = hr == w - 1 ? ht : ht - 1;
    if (lr != 0) parts[n++] = ncg_seq2(b, hex_digits(b, lt, lt), hex_range(b, lr, w - 1, nd - 1));
    if (from <= to)
        parts[n++] = ncg_seq2(b, hex_digits(b, from, to),
                              ncg_repeat(b, hex_digits(b, 0, 15), (uint32_t)nd - 1, (uint32_t)nd - 1));
    if (hr != w - 1) parts[n++] = ncg_seq2(b, hex_digits(b, ht, ht), hex_range(b, 0, hr, nd - 1));
    return ncg_alt(b, parts, n);
}

/* "D8xx" "\u" "DCxx" for the astral code points [lo, hi]. */
static ncg_expr pair_range(ncg_builder *b, uint32_t lo, uint32_t hi) {
    uint32_t a = lo - 0x10000, z = hi - 0x10000;
    uint32_t ha = a >> 10, hz = z >> 10, la = a & 0x3FF, lz = z & 0x3FF;
    ncg_expr bu = ncg_str(b, "\\u");
#define PAIR(h1, h2, l1, l2) \
    ncg_seq(b, (ncg_expr[]){hex_range(b, 0xD800 + (h1), 0xD800 + (h2), 4), bu, \
                            hex_range(b, 0xDC00 + (l1), 0xDC00 + (l2), 4)}, 3)
    if (ha == hz) return PAIR(ha, ha, la, lz);
    ncg_expr parts[3];
    size_t n = 0;
    uint32_t from = la == 0 ? ha : ha + 1, to = lz == 0x3FF ? hz : hz - 1;
    if (la != 0) parts[n++] = PAIR(ha, ha, la, 0x3FF);
    if (from <= to) parts[n++] = PAIR(from, to, 0, 0x3FF);
    if (lz != 0x3FF) parts[n++] = PAIR(hz, hz, 0, lz);
#undef PAIR
    return ncg_alt(b, parts, n);
}

int ncg_json_parts(ncg_builder *b, const uint32_t *r, size_t n, ncg_expr *raw_out, ncg_expr *esc_out) {
    static const struct { uint32_t cp; char esc; } SHORT[] = {
        {0x22, '"'}, {0x5C, '\\'}, {0x2F, '/'}, {0x08, 'b'},
        {0x0C, 'f'}, {0x0A, 'n'}, {0x0D, 'r'}, {0x09, 't'}};
    ncg_cset raw = {0};
    uint8_t shortset[32] = {0};
    bool any_short = false;
    ncg_expr *uh = NULL;
    size_t nu = 0;
    int res = NUAGE_E_NOMEM;
    if (!(uh = malloc((3 * n + 1) * sizeof *uh))) goto done;
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = r[2 * i], hi = r[2 * i + 1] > 0x10FFFF ? 0x10FFFF : r[2 * i + 1];
        if (lo > hi) continue;
        /* raw: everything but controls, '"' and '\' (surrogates are dropped
         * by ncg_char_ranges) */
        uint32_t cuts[][2] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0xD7FF}, {0xE000, 0x10FFFF}};
        for (int k = 0; k < 4; k++) {
            uint32_t a = lo > cuts[k][0] ? lo : cuts[k][0], z = hi < cuts[k][1] ? hi : cuts[k][1];
            if (a <= z && ncg_cset_add(&raw, a, z)) goto done;
        }
        for (size_t k = 0; k < sizeof SHORT / sizeof SHORT[0]; k++)
            if (SHORT[k].cp >= lo && SHORT[k].cp <= hi) {
                unsigned c = (unsigned char)SHORT[k].esc;
                shortset[c >> 3] |= (uint8_t)(1u << (c & 7));
                any_short = true;
            }
        /* \uXXXX for the BMP outside the surrogates, pairs above */
        uint32_t bm[][2] = {{0, 0xD7FF}, {0xE000, 0xFFFF}};
        for (int k = 0; k < 2; k++) {
            uint32_t a = lo > bm[k][0] ? lo : bm[k][0], z = hi < bm[k][1] ? hi : bm[k][1];
            if (a <= z) uh[nu++] = hex_range(b, a, z, 4);
        }
        if (hi >= 0x10000) uh[nu++] = pair_range(b, lo > 0x10000 ? lo : 0x10000, hi);
    }
    *raw_out = raw.n ? ncg_char_ranges(b, raw.v, raw.n, false) : ncg_nothing(b);
    ncg_expr esc[2];
    size_t ne = 0;
    if (any_short) esc[ne++] = ncg_byteset(b, shortset);
    if (nu) esc[ne++] = ncg_seq2(b, ncg_str(b, "u"), ncg_alt(b, uh, nu));
    *esc_out = ne ? ncg_seq2(b, ncg_str(b, "\\"), ncg_alt(b, esc, ne)) : ncg_nothing(b);
    res = *raw_out < 0 ? *raw_out : *esc_out < 0 ? *esc_out : 0;
done:
    free(raw.v);
    free(uh);
    return res;
}

/* JSON spelling of a set inside one regex: raw bytes inline, the escapes
 * (a backslash and what follows) in a rule of their own, one per distinct
 * set. Escapes are rare in output, and a call edge instead of the \uXXXX
 * automaton keeps every DFA that uses the set small. */
static ncg_expr json_set(rx *x, const uint32_t *r, size_t n) {
    for (size_t i = 0; i < x->n_jmemo; i++)
        if (x->jmemo[i].n == n && !memcmp(x->jmemo[i].r, r, n * 2 * sizeof *r)) return x->jmemo[i].e;
    ncg_expr raw, esc;
    int rc = ncg_json_parts(x->b, r, n, &raw, &esc);
    if (rc) return rc;
    ncg_rule rule = ncg_rule_new(x->b, "json-escape");
    if (rule < 0) return rule;
    if ((rc = ncg_rule_set(x->b, rule, esc))) return rc;
    ncg_expr e = ncg_alt2(x->b, raw, ncg_ref(x->b, rule));
    if (e < 0) return e;
    uint32_t *copy = malloc(n * 2 * sizeof *copy);
    if (!copy || !grow((void **)&x->jmemo, &x->cjmemo, x->n_jmemo + 1, sizeof *x->jmemo)) {
        free(copy);
        return NUAGE_E_NOMEM;
    }
    memcpy(copy, r, n * 2 * sizeof *copy);
    x->jmemo[x->n_jmemo].r = copy;
    x->jmemo[x->n_jmemo].n = n;
    x->jmemo[x->n_jmemo++].e = e;
    return e;
}

/* ---- parser -------------------------------------------------------------- */

static int32_t new_node(rx *x, int kind) {
    if (!grow((void **)&x->nodes, &x->cn, x->nn + 1, sizeof(rnode))) return fail(x, NUAGE_E_NOMEM, "out of memory");
    rnode *n = &x->nodes[x->nn];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->weight = kind == K_SET ? 1 : 0;
    n->anch = kind == K_BOL || kind == K_EOL;
    return (int32_t)x->nn++;
}

static int push(rx *x, uint32_t id) {
    if (!grow((void **)&x->stack, &x->cstack, x->nstack + 1, sizeof(uint32_t)))
        return fail(x, NUAGE_E_NOMEM, "out of memory");
    x->stack[x->nstack++] = id;
    return 0;
}

/* A K_SEQ or K_ALT node of the stack entries from base up (popped). */
static int32_t collect(rx *x, int kind, size_t base) {
    size_t n = x->nstack - base;
    if (n == 1) { x->nstack = base; return (int32_t)x->stack[base]; }
    if (n == 0) { x->nstack = base; return new_node(x, kind == K_SEQ ? K_EMPTY : K_EMPTY); }
    int32_t id = new_node(x, kind);
    if (id < 0) return id;
    if (!grow((void **)&x->kids, &x->ckids, x->nkids + n, sizeof(uint32_t)))
        return fail(x, NUAGE_E_NOMEM, "out of memory");
    rnode *nd = &x->nodes[id];
    nd->k0 = (uint32_t)x->nkids;
    nd->nk = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        rnode *c = &x->nodes[x->stack[base + i]];
        x->kids[x->nkids++] = x->stack[base + i];
        nd->anch |= c->anch;
        if (kind == K_SEQ || kind == K_ALT) nd->weight += c->weight;
    }
    x->nstack = base;
    return id;
}

/* Decode one UTF-8 code point; -1 at a malformed sequence. */
static int32_t next_cp(rx *x) {
    const unsigned char *p = x->p;
    if (p >= x->end) return -1;
    uint32_t c = p[0];
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || x->end - p < len) return -1;
    if (len > 1) {
        c &= 0x3Fu >> (len - 1);
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return -1;
            c = (c << 6) | (p[i] & 0x3F);
        }
        static const uint32_t MINV[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (c < MINV[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1;
    }
    x->p += len;
    return (int32_t)c;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int32_t read_hex(rx *x, int n) {
    int32_t v = 0;
    if (x->end - x->p < n) return -1;
    for (int i = 0; i < n; i++) {
        int h = hexval(x->p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    x->p += n;
    return v;
}

/* After a backslash: a character escape (not a class escape). Returns the
 * code point (a lone surrogate may be returned), or a negative error. In a
 * class, \b is backspace and '-' may be escaped. */
static int32_t char_escape(rx *x, bool in_class) {
    if (x->p >= x->end) return fail(x, NUAGE_E_INVAL, "pattern ends with a backslash");
    int c = *x->p;
    switch (c) {
    case 'f': x->p++; return 0x0C;
    case 'n': x->p++; return 0x0A;
    case 'r': x->p++; return 0x0D;
    case 't': x->p++; return 0x09;
    case 'v': x->p++; return 0x0B;
    case 'b':
        if (in_class) { x->p++; return 0x08; }
        return fail(x, NUAGE_E_UNSUPPORTED, "word boundary \\b is not supported in regular expressions");
    case 'B': return fail(x, NUAGE_E_UNSUPPORTED, "word boundary \\B is not supported in regular expressions");
    case 'c':
        if (x->end - x->p >= 2 && ((x->p[1] | 0x20) >= 'a' && (x->p[1] | 0x20) <= 'z')) {
            int v = x->p[1] % 32;
            x->p += 2;
            return v;
        }
        return fail(x, NUAGE_E_INVAL, "invalid control escape \\c");
    case '0':
        if (x->end - x->p >= 2 && x->p[1] >= '0' && x->p[1] <= '9')
            return fail(x, NUAGE_E_UNSUPPORTED, "octal escapes are not supported in regular expressions");
        x->p++;
        return 0;
    case 'x': {
        x->p++;
        int32_t v = read_hex(x, 2);
        return v < 0 ? fail(x, NUAGE_E_INVAL, "\\x needs two hex digits") : v;
    }
    case 'u': {
        x->p++;
        if (x->p < x->end && *x->p == '{') {
            const unsigned char *q = x->p + 1;
            uint32_t v = 0;
            int nd = 0;
            while (q < x->end && hexval(*q) >= 0 && v <= 0x10FFFF) { v = v * 16 + (uint32_t)hexval(*q++); nd++; }
            if (!nd || q >= x->end || *q != '}' || v > 0x10FFFF) return fail(x, NUAGE_E_INVAL, "invalid \\u{...} escape");
            x->p = q + 1;
            return (int32_t)v;
        }
        int32_t v = read_hex(x, 4);
        if (v < 0) return fail(x, NUAGE_E_INVAL, "\\u needs four hex digits");
        if (v >= 0xD800 && v <= 0xDBFF && x->end - x->p >= 6 && x->p[0] == '\\' && x->p[1] == 'u') {
            const unsigned char *save = x->p;
            x->p += 2;
            int32_t lo = read_hex(x, 4);
            if (lo >= 0xDC00 && lo <= 0xDFFF) return 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            x->p = save;
        }
        return v;
    }
    case 'p': case 'P':
        return fail(x, NUAGE_E_UNSUPPORTED, "Unicode property escapes \\%c{...} are not supported", c);
    case 'k':
        return fail(x, NUAGE_E_UNSUPPORTED, "named backreferences \\k<...> are not supported");
    default:
        break;
    }
    if (c >= '1' && c <= '9')
        return fail(x, NUAGE_E_UNSUPPORTED, "backreferences (\\%c) are not supported in regular expressions", c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return fail(x, NUAGE_E_INVAL, "unknown escape \\%c", c);
    int32_t cp = next_cp(x);   /* identity escape */
    return cp < 0 ? fail(x, NUAGE_E_INVAL, "invalid UTF-8 in pattern") : cp;
}

static int32_t set_node(rx *x, ncg_cset *s) {
    ncg_cset_norm(s);
    int32_t id = new_node(x, K_SET);
    if (id < 0) return id;
    if (!grow((void **)&x->rng, &x->crng, (x->nrng + s->n) * 2, sizeof(uint32_t)))
        return fail(x, NUAGE_E_NOMEM, "out of memory");
    if (s->n) memcpy(x->rng + x->nrng * 2, s->v, s->n * 2 * sizeof(uint32_t));
    x->nodes[id].k0 = (uint32_t)x->nrng;
    x->nodes[id].nk = (uint32_t)s->n;
    x->nrng += s->n;
    return id;
}

static int32_t parse_class(rx *x) {
    ncg_cset s = {0};
    bool neg = false;
    int32_t rc;
    if (x->p < x->end && *x->p == '^') { neg = true; x->p++; }
    for (;;) {
        if (x->p >= x->end) { rc = fail(x, NUAGE_E_INVAL, "unterminated character class"); goto fail_set; }
        if (*x->p == ']') { x->p++; break; }
        /* one class atom: a code point, or a class escape (cls != 0) */
        int32_t lo;
        char cls = 0;
        if (*x->p == '\\') {
            x->p++;
            if (x->p < x->end && strchr("dDsSwW", *x->p) && *x->p) { cls = (char)*x->p++; lo = -1; }
            else if (x->p < x->end && *x->p == '-') { x->p++; lo = '-'; }
            else if ((lo = char_escape(x, true)) < 0) { rc = lo; goto fail_set; }
        } else if ((lo = next_cp(x)) < 0) { rc = fail(x, NUAGE_E_INVAL, "invalid UTF-8 in pattern"); goto fail_set; }
        if (cls) {
            if (cset_add_class(&s, cls)) { rc = fail(x, NUAGE_E_NOMEM, "out of memory"); goto fail_set; }
            continue;   /* Annex B: a following '-' is a literal */
        }
        int32_t hi = lo;
        if (x->end - x->p >= 2 && x->p[0] == '-' && x->p[1] != ']') {
            const unsigned char *save = x->p;
            x->p++;
            if (*x->p == '\\' && x->end - x->p >= 2 && strchr("dDsSwW", x->p[1]) && x->p[1]) {
                x->p = save;   /* [a-\d]: '-' literal (Annex B) */
            } else {
                if (*x->p == '\\') {
                    x->p++;
                    if (x->p < x->end && *x->p == '-') { x->p++; hi = '-'; }
                    else if ((hi = char_escape(x, true)) < 0) { rc = hi; goto fail_set; }
                } else if ((hi = next_cp(x)) < 0) { rc = fail(x, NUAGE_E_INVAL, "invalid UTF-8 in pattern"); goto fail_set; }
                if (hi < lo) { rc = fail(x, NUAGE_E_INVAL, "character class range out of order"); goto fail_set; }
            }
        }
        if (ncg_cset_add(&s, (uint32_t)lo, (uint32_t)hi)) { rc = fail(x, NUAGE_E_NOMEM, "out of memory"); goto fail_set; }
    }
    ncg_cset_norm(&s);
    if (neg && ncg_cset_negate(&s)) { rc = fail(x, NUAGE_E_NOMEM, "out of memory"); goto fail_set; }
    rc = set_node(x, &s);
fail_set:
    free(s.v);
    return rc;
}

static int32_t single_set(rx *x, uint32_t lo, uint32_t hi) {
    ncg_cset s = {0};
    if (ncg_cset_add(&s, lo, hi)) return fail(x, NUAGE_E_NOMEM, "out of memory");
    int32_t id = set_node(x, &s);
    free(s.v);
    return id;
}

static int32_t parse_alt(rx *x);

/* {m}, {m,}, {m,n} at x->p ('{' already seen): true and the bounds when it
 * is a quantifier; false (x->p unchanged) when it is a literal '{'. */
static bool parse_braces(rx *x, uint32_t *mn, uint32_t *mx) {
    const unsigned char *q = x->p + 1;
    uint64_t a = 0, b2 = 0;
    int na = 0, nb = 0;
    while (q < x->end && *q >= '0' && *q <= '9') { if (a < 1u << 30) a = a * 10 + (*q - '0'); q++; na++; }
    if (!na) return false;
    bool comma = false;
    if (q < x->end && *q == ',') {
        comma = true;
        q++;
        while (q < x->end && *q >= '0' && *q <= '9') { if (b2 < 1u << 30) b2 = b2 * 10 + (*q - '0'); q++; nb++; }
    }
    if (q >= x->end || *q != '}') return false;
    x->p = q + 1;
    *mn = (uint32_t)a;
    *mx = !comma ? (uint32_t)a : nb ? (uint32_t)b2 : NCG_INF;
    return true;
}

static int32_t parse_atom(rx *x) {
    int c = *x->p;
    switch (c) {
    case '(': {
        x->p++;
        if (++x->depth > RX_MAX_DEPTH) return fail(x, NUAGE_E_UNSUPPORTED, "groups nested deeper than %d", RX_MAX_DEPTH);
        if (x->p < x->end && *x->p == '?') {
            x->p++;
            int d = x->p < x->end ? *x->p : 0;
            if (d == ':') x->p++;
            else if (d == '=' || d == '!') return fail(x, NUAGE_E_UNSUPPORTED, "lookahead (?%c...) is not supported", d);
            else if (d == '<' && x->end - x->p >= 2 && (x->p[1] == '=' || x->p[1] == '!'))
                return fail(x, NUAGE_E_UNSUPPORTED, "lookbehind (?<%c...) is not supported", x->p[1]);
            else if (d == '<') {
                const unsigned char *q = x->p + 1;
                while (q < x->end && *q != '>' && *q != ')') q++;
                if (q >= x->end || *q != '>' || q == x->p + 1) return fail(x, NUAGE_E_INVAL, "invalid group name");
                x->p = q + 1;
            } else
                return fail(x, NUAGE_E_UNSUPPORTED, "group syntax (?%c...) is not supported", d ? d : ' ');
        }
        int32_t id = parse_alt(x);
        if (id < 0) return id;
        if (x->p >= x->end || *x->p != ')') return fail(x, NUAGE_E_INVAL, "missing ')'");
        x->p++;
        x->depth--;
        return id;
    }
    case '.': {
        x->p++;
        ncg_cset s = {0};
        for (int i = 0; i < 3; i++)
            if (ncg_cset_add(&s, NOT_DOT[2 * i], NOT_DOT[2 * i + 1])) { free(s.v); return fail(x, NUAGE_E_NOMEM, "out of memory"); }
        int32_t id = ncg_cset_negate(&s) ? fail(x, NUAGE_E_NOMEM, "out of memory") : set_node(x, &s);
        free(s.v);
        return id;
    }
    case '[': x->p++; return parse_class(x);
    case '^': x->p++; return new_node(x, K_BOL);
    case '$': x->p++; return new_node(x, K_EOL);
    case '\\': {
        x->p++;
        if (x->p < x->end && *x->p && strchr("dDsSwW", *x->p)) {
            ncg_cset s = {0};
            int32_t id = cset_add_class(&s, (char)*x->p++) ? fail(x, NUAGE_E_NOMEM, "out of memory") : set_node(x, &s);
            free(s.v);
            return id;
        }
        int32_t cp = char_escape(x, false);
        if (cp < 0) return cp;
        return single_set(x, (uint32_t)cp, (uint32_t)cp);
    }
    case '*': case '+': case '?':
        return fail(x, NUAGE_E_INVAL, "nothing to repeat before '%c'", c);
    case '{': {
        uint32_t a, b2;
        const unsigned char *save = x->p;
        if (parse_braces(x, &a, &b2)) { x->p = save; return fail(x, NUAGE_E_INVAL, "nothing to repeat before '{'"); }
        x->p++;
        return single_set(x, '{', '{');
    }
    default: {
        int32_t cp = next_cp(x);
        if (cp < 0) return fail(x, NUAGE_E_INVAL, "invalid UTF-8 in pattern");
        return single_set(x, (uint32_t)cp, (uint32_t)cp);
    }
    }
}

static int32_t parse_seq(rx *x) {
    size_t base = x->nstack;
    while (x->p < x->end && *x->p != '|' && *x->p != ')') {
        bool assertion = *x->p == '^' || *x->p == '$';
        int32_t id = parse_atom(x);
        if (id < 0) return id;
        /* quantifiers */
        while (x->p < x->end) {
            uint32_t mn, mx;
            int q = *x->p;
            if (q == '*') { mn = 0; mx = NCG_INF; x->p++; }
            else if (q == '+') { mn = 1; mx = NCG_INF; x->p++; }
            else if (q == '?') { mn = 0; mx = 1; x->p++; }
            else if (q == '{' && parse_braces(x, &mn, &mx)) {}
            else break;
            if (mx != NCG_INF && mx < mn) return fail(x, NUAGE_E_INVAL, "numbers out of order in {} quantifier");
            if (mn > RX_MAX_COUNT || (mx != NCG_INF && mx > RX_MAX_COUNT))
                return fail(x, NUAGE_E_UNSUPPORTED, "repeat count above %u", RX_MAX_COUNT);
            if (x->p < x->end && *x->p == '?') x->p++;   /* lazy: same language */
            rnode *c = &x->nodes[id];
            if (assertion)
                return fail(x, NUAGE_E_INVAL, "nothing to repeat before '%c'", q);
            int32_t r = new_node(x, K_REP);
            if (r < 0) return r;
            if (!grow((void **)&x->kids, &x->ckids, x->nkids + 1, sizeof(uint32_t)))
                return fail(x, NUAGE_E_NOMEM, "out of memory");
            rnode *rn = &x->nodes[r];
            c = &x->nodes[id];
            rn->k0 = (uint32_t)x->nkids;
            x->kids[x->nkids++] = (uint32_t)id;
            rn->nk = 1;
            rn->min = mn;
            rn->max = mx;
            rn->anch = c->anch;
            rn->weight = c->weight * (mx == NCG_INF ? (mn > 1 ? mn : 1) : (mx > 1 ? mx : 1));
            id = r;
            break;   /* a second quantifier is "nothing to repeat" */
        }
        if (x->p < x->end && (*x->p == '*' || *x->p == '+' || *x->p == '?'))
            return fail(x, NUAGE_E_INVAL, "nothing to repeat before '%c'", *x->p);
        if (x->p < x->end && *x->p == '{') {
            uint32_t a, b2;
            const unsigned char *save = x->p;
            if (parse_braces(x, &a, &b2)) { x->p = save; return fail(x, NUAGE_E_INVAL, "nothing to repeat before '{'"); }
        }
        if (x->nodes[id].weight > RX_MAX_WEIGHT && !x->nocap)
            return fail(x, NUAGE_E_UNSUPPORTED, "regular expression too large once repeats are expanded");
        if (push(x, (uint32_t)id)) return x->rc;
    }
    return collect(x, K_SEQ, base);
}

static int32_t parse_alt(rx *x) {
    size_t base = x->nstack;
    for (;;) {
        int32_t id = parse_seq(x);
        if (id < 0) return id;
        if (push(x, (uint32_t)id)) return x->rc;
        if (x->p < x->end && *x->p == '|') { x->p++; continue; }
        break;
    }
    int32_t id = collect(x, K_ALT, base);
    if (id >= 0 && x->nodes[id].weight > RX_MAX_WEIGHT && !x->nocap)
        return fail(x, NUAGE_E_UNSUPPORTED, "regular expression too large once repeats are expanded");
    return id;
}

/* ---- lowering ------------------------------------------------------------ */

static lres R_NONE = {0, false, true};

static lres mk(ncg_expr e, bool nul) { return (lres){e, nul, false}; }

static lres low(rx *x, uint32_t id, int fl, int ne);

/* x's language plus the empty string when nul (L from NE). */
static lres with_eps(rx *x, lres r, bool nul) {
    if (!nul) return r;
    if (r.none) return mk(ncg_empty(x->b), true);
    if (r.nul) return r;
    return mk(ncg_opt(x->b, r.e), true);
}

static lres u2(rx *x, lres a, lres b) {
    if (a.none) return b;
    if (b.none) return a;
    return mk(ncg_alt2(x->b, a.e, b.e), a.nul || b.nul);
}

static lres c2(rx *x, lres a, lres b) {
    if (a.none || b.none) return R_NONE;
    return mk(ncg_seq2(x->b, a.e, b.e), a.nul && b.nul);
}

static lres lower_set(rx *x, const rnode *n) {
    if (n->nk == 0) return R_NONE;   /* [] (x->rng may still be NULL) */
    const uint32_t *r = x->rng + (size_t)n->k0 * 2;
    if (n->nk == 1 && r[0] == r[1] && r[0] >= NCG_SUBST_BASE && r[0] - NCG_SUBST_BASE < x->n_subst) {
        ncg_expr e = x->subst[r[0] - NCG_SUBST_BASE];
        return mk(e, false);
    }
    if (x->json) return mk(json_set(x, r, n->nk), false);
    /* ncg_char_ranges never produces surrogates; a set of only surrogates
     * is the empty language */
    bool real = false;
    for (uint32_t i = 0; i < n->nk; i++)
        if (r[2 * i] < 0xD800 || r[2 * i + 1] > 0xDFFF) real = true;
    if (!real) return R_NONE;
    return mk(ncg_char_ranges(x->b, r, n->nk, false), false);
}

/* Sequence kids[i..] of node n (anchor-free): the whole language. */
static lres plain_suffix(rx *x, const rnode *n, uint32_t i) {
    uint32_t cnt = n->nk - i;
    ncg_expr *it = malloc((cnt ? cnt : 1) * sizeof *it);
    if (!it) { fail(x, NUAGE_E_NOMEM, "out of memory"); return mk(NUAGE_E_NOMEM, false); }
    bool nul = true;
    size_t m = 0;
    for (uint32_t k = i; k < n->nk; k++) {
        lres c = low(x, x->kids[n->k0 + k], 0, 0);
        if (c.none) { free(it); return R_NONE; }
        nul = nul && c.nul;
        it[m++] = c.e;
    }
    lres r = mk(ncg_seq(x->b, it, m), nul);
    free(it);
    return r;
}

static lres lower_seq(rx *x, const rnode *n, int fl, int ne) {
    if (!n->anch) {
        if (!ne) return plain_suffix(x, n, 0);
        /* non-empty part: the first non-empty item is item i */
        lres acc = R_NONE;
        for (uint32_t i = 0; i < n->nk; i++) {
            lres head = low(x, x->kids[n->k0 + i], 0, 1);
            acc = u2(x, acc, c2(x, head, plain_suffix(x, n, i + 1)));
            lres whole = low(x, x->kids[n->k0 + i], 0, 0);
            if (!whole.nul) break;
        }
        return acc;
    }
    /* anchored: n is binary (head, rest), see binarise() */
    uint32_t a = x->kids[n->k0], r = x->kids[n->k0 + 1];
    int s = fl & F_START, e = fl & F_END;
    lres res = R_NONE;
    /* x empty, y non-empty */
    if (low(x, a, s, 0).nul) res = u2(x, res, low(x, r, s | e, 1));
    /* x non-empty, y empty */
    if (low(x, r, e, 0).nul) res = u2(x, res, low(x, a, s | e, 1));
    /* both non-empty */
    res = u2(x, res, c2(x, low(x, a, s, 1), low(x, r, e, 1)));
    bool nul = low(x, a, s | e, 0).nul && low(x, r, s | e, 0).nul;
    return ne ? res : with_eps(x, res, nul);
}

static lres lower_rep(rx *x, const rnode *n, int fl, int ne) {
    uint32_t c = x->kids[n->k0];
    if (!n->anch) {
        lres whole = low(x, c, 0, 0);
        if (whole.none) return n->min == 0 && !ne ? mk(ncg_empty(x->b), true) : R_NONE;
        if (!ne) return mk(ncg_repeat(x->b, whole.e, n->min, n->max), n->min == 0 || whole.nul);
        if (n->max == 0) return R_NONE;
        if (!whole.nul && n->min >= 1) return whole.e >= 0 ? mk(ncg_repeat(x->b, whole.e, n->min, n->max), false) : whole;
        lres one = low(x, c, 0, 1);
        if (one.none) return R_NONE;
        return mk(ncg_repeat(x->b, one.e, 1, n->max), false);
    }
    /* anchored: only ?, * and + (others were unrolled) */
    int s = fl & F_START, e = fl & F_END;
    if (n->max == 1) {
        lres r = low(x, c, fl, ne);
        return ne ? r : with_eps(x, r, n->min == 0);
    }
    /* non-empty iterations: one, or first middle* last */
    lres res = low(x, c, s | e, 1);
    lres mid = low(x, c, 0, 1);
    lres midstar = mid.none ? mk(ncg_empty(x->b), true) : mk(ncg_repeat(x->b, mid.e, 0, NCG_INF), true);
    res = u2(x, res, c2(x, c2(x, low(x, c, s, 1), midstar), low(x, c, e, 1)));
    if (ne) return res;
    bool nul = n->min == 0 || low(x, c, s | e, 0).nul;
    return with_eps(x, res, nul);
}

/* An alternation of literal strings ("(GET|GETS|POST|PUT)") as a trie:
 * branches that share a prefix share its automaton states, so the NFA the
 * engine determinises stays small for long enum-like lists. Strings are
 * code point runs; ts[i] is string i (offset, length) in cps. */
typedef struct { const uint32_t *cps; const uint32_t (*ts)[2]; } trie_ctx;

static int cmp_str(const trie_ctx *t, uint32_t a, uint32_t b) {
    const uint32_t *x = t->ts[a], *y = t->ts[b];
    for (uint32_t i = 0; i < x[1] && i < y[1]; i++) {
        uint32_t c1 = t->cps[x[0] + i], c2 = t->cps[y[0] + i];
        if (c1 != c2) return c1 < c2 ? -1 : 1;
    }
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Merge sort of idx[0..n) by string (tmp: n scratch entries); qsort has
 * no context argument and a global would not be thread-safe. */
static void sort_strs(const trie_ctx *t, uint32_t *idx, uint32_t *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    sort_strs(t, idx, tmp, h);
    sort_strs(t, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp_str(t, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static ncg_expr one_cp(rx *x, uint32_t cp) {
    uint32_t r[2] = {cp, cp};
    return x->json ? json_set(x, r, 1) : ncg_char_ranges(x->b, r, 1, false);
}

/* The strings idx[lo..hi) (sorted, all sharing their first depth code
 * points) with those depth code points removed. */
static ncg_expr trie_build(rx *x, const trie_ctx *t, const uint32_t *idx, size_t lo, size_t hi, uint32_t depth) {
    size_t i = lo;
    bool eps = false;
    while (i < hi && t->ts[idx[i]][1] == depth) { eps = true; i++; }
    size_t cnt = 0;
    for (size_t j = i; j < hi;) {
        uint32_t cp = t->cps[t->ts[idx[j]][0] + depth];
        while (j < hi && t->cps[t->ts[idx[j]][0] + depth] == cp) j++;
        cnt++;
    }
    ncg_expr *alts = malloc((cnt + 1) * sizeof *alts);
    if (!alts) return NUAGE_E_NOMEM;
    size_t na = 0;
    while (i < hi) {
        uint32_t cp = t->cps[t->ts[idx[i]][0] + depth];
        size_t j = i;
        while (j < hi && t->cps[t->ts[idx[j]][0] + depth] == cp) j++;
        alts[na++] = ncg_seq2(x->b, one_cp(x, cp), trie_build(x, t, idx, i, j, depth + 1));
        i = j;
    }
    ncg_expr e = na == 0 ? ncg_empty(x->b) : ncg_alt(x->b, alts, na);
    free(alts);
    return eps && na ? ncg_opt(x->b, e) : e;
}

/* The trie form of anchor-free alternation n when every branch is a
 * literal string (at least 4 branches, none longer than 512 code points);
 * none = not applicable. */
static lres lower_literal_alt(rx *x, const rnode *n) {
    lres res = R_NONE;
    if (n->nk < 4) return res;
    size_t total = 0;
    for (uint32_t i = 0; i < n->nk; i++) {
        const rnode *k = &x->nodes[x->kids[n->k0 + i]];
        uint32_t len = k->kind == K_SET ? 1 : k->kind == K_SEQ ? k->nk : k->kind == K_EMPTY ? 0 : UINT32_MAX;
        if (len > 512) return res;
        for (uint32_t j = 0; j < len; j++) {
            const rnode *c = k->kind == K_SET ? k : &x->nodes[x->kids[k->k0 + j]];
            if (c->kind != K_SET || c->nk != 1) return res;
            const uint32_t *r = x->rng + (size_t)c->k0 * 2;
            if (r[0] != r[1] || (r[0] >= 0xD800 && r[0] <= 0xDFFF) ||
                (x->n_subst && r[0] >= NCG_SUBST_BASE))
                return res;
        }
        total += len;
    }
    uint32_t *cps = malloc((total + 1) * sizeof *cps);
    uint32_t (*ts)[2] = malloc(n->nk * sizeof *ts);
    uint32_t *idx = malloc(n->nk * 2 * sizeof *idx);
    if (!cps || !ts || !idx) { fail(x, NUAGE_E_NOMEM, "out of memory"); goto done; }
    uint32_t at = 0;
    for (uint32_t i = 0; i < n->nk; i++) {
        const rnode *k = &x->nodes[x->kids[n->k0 + i]];
        uint32_t len = k->kind == K_SET ? 1 : k->kind == K_SEQ ? k->nk : 0;
        ts[i][0] = at;
        ts[i][1] = len;
        for (uint32_t j = 0; j < len; j++) {
            const rnode *c = k->kind == K_SET ? k : &x->nodes[x->kids[k->k0 + j]];
            cps[at++] = x->rng[(size_t)c->k0 * 2];
        }
        idx[i] = i;
    }
    trie_ctx t = {cps, (const uint32_t (*)[2])ts};
    sort_strs(&t, idx, idx + n->nk, n->nk);
    res = mk(trie_build(x, &t, idx, 0, n->nk, 0), ts[idx[0]][1] == 0);
done:
    free(cps);
    free(ts);
    free(idx);
    return res;
}

static lres low(rx *x, uint32_t id, int fl, int ne) {
    rnode *n = &x->nodes[id];
    if (!n->anch) fl = 0;
    int bit = 1 << (fl * 2 + ne);
    if (n->have & bit) return n->memo[fl][ne];
    if (x->rc) return R_NONE;
    lres r;
    switch (n->kind) {
    case K_EMPTY: r = ne ? R_NONE : mk(ncg_empty(x->b), true); break;
    case K_SET: r = lower_set(x, n); break;
    case K_BOL: r = ne || !(fl & F_START) ? R_NONE : mk(ncg_empty(x->b), true); break;
    case K_EOL: r = ne || !(fl & F_END) ? R_NONE : mk(ncg_empty(x->b), true); break;
    case K_ALT:
        r = !n->anch && !ne ? lower_literal_alt(x, n) : R_NONE;
        if (!r.none || x->rc) break;
        for (uint32_t i = 0; i < n->nk; i++) r = u2(x, r, low(x, x->kids[n->k0 + i], fl, ne));
        break;
    case K_SEQ: r = lower_seq(x, n, fl, ne); break;
    default: r = lower_rep(x, n, fl, ne); break;
    }
    if (!r.none && r.e < 0) fail(x, r.e, "grammar builder error %d", (int)r.e);
    n = &x->nodes[id];
    n->memo[fl][ne] = r;
    n->have |= (uint8_t)bit;
    return r;
}

/* Rewrite anchored sequences as right-nested pairs and unroll anchored
 * bounded repeats, so lowering only sees binary sequences and ?, *, +. */
static int binarise(rx *x, uint32_t id) {
    rnode *n = &x->nodes[id];
    if (!n->anch || n->have) return 0;
    n->have = 0x80;   /* visited (cleared below) */
    if (n->kind == K_SEQ || n->kind == K_ALT)
        for (uint32_t i = 0; i < x->nodes[id].nk; i++)
            if (binarise(x, x->kids[x->nodes[id].k0 + i])) return x->rc;
    n = &x->nodes[id];
    if (n->kind == K_REP) {
        uint32_t c = x->kids[n->k0];
        if (binarise(x, c)) return x->rc;
        n = &x->nodes[id];
        uint32_t mn = n->min, mx = n->max;
        bool simple = (mn <= 1 && (mx == 1 || mx == NCG_INF));
        if (!simple) {
            uint64_t copies = (uint64_t)mn + (mx == NCG_INF ? 1 : mx - mn);
            if (copies > RX_MAX_UNROLL) return fail(x, NUAGE_E_UNSUPPORTED, "anchor inside a repeat too large to unroll");
            int32_t tail = -1;
            if (mx == NCG_INF || mx > mn) {
                tail = new_node(x, K_REP);
                if (tail < 0) return x->rc;
                if (!grow((void **)&x->kids, &x->ckids, x->nkids + 1, sizeof(uint32_t))) return fail(x, NUAGE_E_NOMEM, "out of memory");
                rnode *t = &x->nodes[tail];
                t->k0 = (uint32_t)x->nkids;
                x->kids[x->nkids++] = c;
                t->nk = 1; t->min = 0; t->max = mx == NCG_INF ? NCG_INF : 1; t->anch = true;
            }
            size_t base = x->nstack;
            for (uint32_t i = 0; i < mn; i++) if (push(x, c)) return x->rc;
            if (mx != NCG_INF) for (uint32_t i = mn; i < mx; i++) if (push(x, (uint32_t)tail)) return x->rc;
            if (mx == NCG_INF && push(x, (uint32_t)tail)) return x->rc;
            int32_t seq = collect(x, K_SEQ, base);
            if (seq < 0) return x->rc;
            /* turn node id into a one-kid alternation of the unrolled sequence */
            if (!grow((void **)&x->kids, &x->ckids, x->nkids + 1, sizeof(uint32_t))) return fail(x, NUAGE_E_NOMEM, "out of memory");
            n = &x->nodes[id];
            n->kind = K_ALT;
            n->k0 = (uint32_t)x->nkids;
            n->nk = 1;
            x->kids[x->nkids++] = (uint32_t)seq;
            if (binarise(x, (uint32_t)seq)) return x->rc;
        }
    }
    n = &x->nodes[id];
    if (n->kind == K_SEQ && n->nk > 2) {
        /* runs of anchor-free items become one plain sequence each */
        size_t base = x->nstack;
        uint32_t k0 = n->k0, nk = n->nk;
        for (uint32_t i = 0; i < nk;) {
            uint32_t j = i;
            while (j < nk && !x->nodes[x->kids[k0 + j]].anch) j++;
            if (j - i >= 2) {
                size_t b2 = x->nstack;
                for (uint32_t k = i; k < j; k++) if (push(x, x->kids[k0 + k])) return x->rc;
                int32_t run = collect(x, K_SEQ, b2);
                if (run < 0 || push(x, (uint32_t)run)) return x->rc;
                i = j;
            } else if (push(x, x->kids[k0 + i++])) return x->rc;
        }
        nk = (uint32_t)(x->nstack - base);
        if (!grow((void **)&x->kids, &x->ckids, x->nkids + nk, sizeof(uint32_t))) return fail(x, NUAGE_E_NOMEM, "out of memory");
        k0 = (uint32_t)x->nkids;
        memcpy(x->kids + k0, x->stack + base, nk * sizeof(uint32_t));
        x->nkids += nk;
        x->nstack = base;
        n = &x->nodes[id];
        n->k0 = k0;
        n->nk = nk;
    }
    if (n->kind == K_SEQ && n->nk > 2) {
        /* head + (rest as a new sequence), built from the tail so the
         * lowering recursion stays shallow (each pair memoised in turn) */
        uint32_t k0 = n->k0, nk = n->nk;
        uint32_t right = x->kids[k0 + nk - 1];
        for (uint32_t i = nk - 1; i-- > 1;) {
            int32_t p = new_node(x, K_SEQ);
            if (p < 0) return x->rc;
            if (!grow((void **)&x->kids, &x->ckids, x->nkids + 2, sizeof(uint32_t))) return fail(x, NUAGE_E_NOMEM, "out of memory");
            rnode *pn = &x->nodes[p];
            pn->k0 = (uint32_t)x->nkids;
            pn->nk = 2;
            x->kids[x->nkids++] = x->kids[k0 + i];
            x->kids[x->nkids++] = right;
            pn->anch = x->nodes[x->kids[k0 + i]].anch || x->nodes[right].anch;
            if (!pn->anch) { pn->kind = K_SEQ; }
            right = (uint32_t)p;
        }
        if (!grow((void **)&x->kids, &x->ckids, x->nkids + 2, sizeof(uint32_t))) return fail(x, NUAGE_E_NOMEM, "out of memory");
        n = &x->nodes[id];
        uint32_t head = x->kids[k0];
        n->k0 = (uint32_t)x->nkids;
        n->nk = 2;
        x->kids[x->nkids++] = head;
        x->kids[x->nkids++] = right;
    }
    x->nodes[id].have = 0x80;
    return 0;
}

/* Search semantics let any string surround the match, which absorbs
 * whatever a match may or may not carry at its free end: S*(A X{m,n})S*
 * = S*(A X{m})S*, a trailing X* or X? vanishes, X+ becomes X, and an
 * alternation is trimmed branch by branch. The language is unchanged and
 * the automaton much smaller (e.g. "[a-z]{1,40}" becomes "[a-z]").
 * Returns the (possibly new) node; right selects the end trimmed. Only
 * for anchor-free trees. */
static int32_t trim(rx *x, uint32_t id, bool right, int depth) {
    rnode *n = &x->nodes[id];
    if (depth > RX_MAX_DEPTH * 3 || x->rc) return (int32_t)id;
    if (n->kind == K_REP) {
        uint32_t c = x->kids[n->k0], mn = n->min;
        if (mn == 0) return new_node(x, K_EMPTY);
        if (mn == 1) return trim(x, c, right, depth + 1);
        if (n->max == mn) return (int32_t)id;
        int32_t r = new_node(x, K_REP);
        if (r < 0) return r;
        rnode *rn = &x->nodes[r];
        n = &x->nodes[id];
        *rn = *n;
        rn->max = mn;
        return r;
    }
    if (n->kind == K_ALT || n->kind == K_SEQ) {
        size_t base = x->nstack;
        uint32_t k0 = n->k0, nk = n->nk;
        bool changed = false;
        for (uint32_t i = 0; i < nk; i++)
            if (push(x, x->kids[k0 + i])) return x->rc;
        if (n->kind == K_ALT) {
            for (uint32_t i = 0; i < nk; i++) {
                int32_t t = trim(x, x->stack[base + i], right, depth + 1);
                if (t < 0) return t;
                changed |= (uint32_t)t != x->stack[base + i];
                x->stack[base + i] = (uint32_t)t;
            }
        } else {
            /* trim the free end; when that item trims to nothing, go on */
            for (uint32_t k = 0; k < nk; k++) {
                size_t at = right ? base + nk - 1 - k : base + k;
                int32_t t = trim(x, x->stack[at], right, depth + 1);
                if (t < 0) return t;
                changed |= (uint32_t)t != x->stack[at];
                x->stack[at] = (uint32_t)t;
                if (x->nodes[t].kind != K_EMPTY) break;
            }
        }
        if (!changed) { x->nstack = base; return (int32_t)id; }
        return collect(x, x->nodes[id].kind, base);
    }
    return (int32_t)id;
}

/* Lower the suffix pairs of an anchored sequence bottom-up, so the
 * recursion in low() finds them memoised (a long sequence stays shallow). */
static void prelower(rx *x) {
    for (size_t id = 0; id < x->nn; id++) {
        rnode *n = &x->nodes[id];
        if (n->kind == K_SEQ && n->anch && n->nk == 2)
            for (int fl = 0; fl < 4 && !x->rc; fl++)
                for (int ne = 0; ne < 2; ne++) low(x, (uint32_t)id, fl, ne);
    }
}

/* Any one code point (JSON-spelled in json mode). */
static ncg_expr any_char(rx *x) {
    if (!x->any_done) {
        static const uint32_t all[2] = {0, 0x10FFFF};
        x->any_e = x->json ? json_set(x, all, 1) : ncg_char_ranges(x->b, all, 1, false);
        x->any_done = true;
    }
    return x->any_e;
}

int ncg_regex_ex(ncg_builder *b, const char *re, size_t len, bool anchored, bool json_string,
                 bool nocap, const ncg_expr *subst, size_t n_subst, ncg_expr *out, nuage_cg_error *err) {
    rx x = {0};
    x.subst = subst;
    x.n_subst = n_subst;
    x.b = b;
    x.json = json_string;
    x.nocap = nocap;
    x.err = err;
    if (err) { err->msg[0] = 0; err->pointer[0] = 0; }
    if (!b || !out || (!re && len)) return fail(&x, NUAGE_E_INVAL, "invalid argument");
    if (len > RX_MAX_LEN && !nocap) return fail(&x, NUAGE_E_UNSUPPORTED, "regular expression longer than %u bytes", RX_MAX_LEN);
    x.p = (const unsigned char *)re;
    x.end = x.p + len;
    int32_t root = parse_alt(&x);
    if (root >= 0 && x.p < x.end) fail(&x, NUAGE_E_INVAL, "unmatched ')' at offset %zu", (size_t)(x.p - (const unsigned char *)re));
    if (x.rc) goto done;
    if (!anchored && !x.nodes[root].anch) {
        root = trim(&x, (uint32_t)root, true, 0);
        if (root >= 0) root = trim(&x, (uint32_t)root, false, 0);
        if (x.rc || root < 0) goto done;
    }
    if (binarise(&x, (uint32_t)root)) goto done;
    for (size_t i = 0; i < x.nn; i++) x.nodes[i].have = 0;
    prelower(&x);
    if (x.rc) goto done;
    lres res;
    if (anchored) {
        res = low(&x, (uint32_t)root, F_START | F_END, 0);
    } else if (!x.nodes[root].anch) {
        lres r = low(&x, (uint32_t)root, 0, 0);
        ncg_expr star = ncg_repeat(b, any_char(&x), 0, NCG_INF);
        if (r.none) res = R_NONE;
        else if (r.nul) res = mk(star, true);
        else res = mk(ncg_seq(b, (ncg_expr[]){star, r.e, star}, 3), false);
    } else {
        lres plus = mk(ncg_repeat(b, any_char(&x), 1, NCG_INF), false);
        res = low(&x, (uint32_t)root, F_START | F_END, 0);
        res = u2(&x, res, c2(&x, plus, low(&x, (uint32_t)root, F_END, 0)));
        res = u2(&x, res, c2(&x, low(&x, (uint32_t)root, F_START, 0), plus));
        res = u2(&x, res, c2(&x, c2(&x, plus, low(&x, (uint32_t)root, 0, 0)), plus));
    }
    if (x.rc) goto done;
    *out = res.none ? ncg_nothing(b) : res.e;
    if (*out < 0) fail(&x, *out, "grammar builder error %d", (int)*out);
done:
    free(x.nodes);
    free(x.kids);
    free(x.stack);
    free(x.rng);
    for (size_t i = 0; i < x.n_jmemo; i++) free(x.jmemo[i].r);
    free(x.jmemo);
    return x.rc;
}

int ncg_regex(ncg_builder *b, const char *re, size_t len, bool anchored, bool json_string,
              ncg_expr *out, nuage_cg_error *err) {
    return ncg_regex_ex(b, re, len, anchored, json_string, false, NULL, 0, out, err);
}
