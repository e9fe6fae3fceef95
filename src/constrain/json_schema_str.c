/*
 * json_schema_str.c - JSON strings as grammar expressions: any string of
 * bounded length, a given string in every spelling JSON allows, and any
 * string *except* a given set (object keys not declared in "properties").
 *
 * Design. A string body is a sequence of characters, each written raw
 * (any code point but '"', '\\' and the controls U+0000-U+001F), as a
 * short escape (\" \\ \/ \b \f \n \r \t) or as \uXXXX (hex digits in either
 * case; a character above U+FFFF as a surrogate pair). Lone surrogates
 * (\uD800 alone) are not produced: they are not Unicode characters and
 * every JSON library either refuses or mangles them. minLength/maxLength
 * count characters (code points), so a length bound is a bounded
 * repetition of one character expression.
 *
 * A literal (enum, const, property names) is matched on its decoded value:
 * each character may be written in any of its spellings, so "a/b" and
 * "a\/b" and "\u0061/b" all match "a/b", as JSON equality requires.
 *
 * The complement of a finite set of names is built on a trie of the names'
 * code points: at each trie node the next character is either one of the
 * node's children (in any spelling; continue in that child) or any other
 * character (any spelling; then anything may follow), and the closing
 * quote is allowed unless a name ends at that node. "Any other character"
 * is a raw code point outside the set, a short escape outside the set, or
 * a \uXXXX whose 4 hex digits (case-insensitive) spell no code point in
 * the set, built nibble by nibble. Most of "any other character, then the
 * rest" does not depend on the node: when the node's characters are ASCII
 * without short escapes, only the raw byte and the \u00XX spellings are
 * built per node and the rest is one shared rule (str_other_rest, and the
 * hex tails str_hexK_rest): the DFA of a key set then has a few states per
 * trie node instead of ~20, which was most of the compile time of big
 * schemas whose objects allow undeclared keys.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/json_schema_internal.h"

/* one hex nibble in [lo, hi] (0..15), letters in either case */
static ncg_expr nibbles(js_ctx *c, unsigned mask) {
    uint8_t set[32] = { 0 };
    for (int v = 0; v < 16; v++) {
        if (!(mask & (1u << v))) continue;
        unsigned ch[2] = { v < 10 ? '0' + (unsigned)v : 'a' + (unsigned)v - 10,
                           v < 10 ? '0' + (unsigned)v : 'A' + (unsigned)v - 10 };
        for (int i = 0; i < 2; i++) set[ch[i] >> 3] |= (uint8_t)(1u << (ch[i] & 7));
    }
    return ncg_byteset(c->b, set);
}
static unsigned nib_range(int lo, int hi) {
    unsigned m = 0;
    for (int v = lo; v <= hi; v++) m |= 1u << v;
    return m;
}
static ncg_expr hex_n(js_ctx *c, uint32_t n) { return ncg_repeat(c->b, nibbles(c, 0xFFFF), n, n); }

/* \uXXXX spelling of one 16-bit unit */
static ncg_expr u_unit(js_ctx *c, unsigned u) {
    ncg_expr p[5] = { ncg_str(c->b, "\\u") };
    for (int i = 0; i < 4; i++) p[1 + i] = nibbles(c, 1u << ((u >> (12 - 4 * i)) & 15));
    return ncg_seq(c->b, p, 5);
}

ncg_expr js_str_char(js_ctx *c) {
    ncg_builder *b = c->b;
    static const uint32_t raw[] = { 0x20, 0x21, 0x23, 0x5B, 0x5D, 0x10FFFF };
    ncg_expr esc1 = ncg_seq2(b, ncg_str(b, "\\"), ncg_byteset(b, (const uint8_t[32]){
        ['"' >> 3] = 1u << ('"' & 7), ['/' >> 3] = 1u << ('/' & 7),
        ['\\' >> 3] = 1u << ('\\' & 7),
        ['b' >> 3] = (1u << ('b' & 7)) | (1u << ('f' & 7)),
        ['n' >> 3] = (1u << ('n' & 7)), ['r' >> 3] = (1u << ('r' & 7)) | (1u << ('t' & 7)) }));
    /* non-surrogate BMP: first nibble not D, or D then 0-7 */
    ncg_expr bmp = ncg_alt2(b, ncg_seq2(b, nibbles(c, 0xFFFF & ~(1u << 13)), hex_n(c, 3)),
                            ncg_seq(b, (ncg_expr[]){ nibbles(c, 1u << 13), nibbles(c, nib_range(0, 7)), hex_n(c, 2) }, 3));
    ncg_expr high = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "\\u"), nibbles(c, 1u << 13), nibbles(c, nib_range(8, 11)), hex_n(c, 2) }, 4);
    ncg_expr low = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "\\u"), nibbles(c, 1u << 13), nibbles(c, nib_range(12, 15)), hex_n(c, 2) }, 4);
    ncg_expr alts[4] = { ncg_char_ranges(b, raw, 3, false), esc1, ncg_seq2(b, ncg_str(b, "\\u"), bmp),
                         ncg_seq2(b, high, low) };
    return ncg_alt(b, alts, 4);
}

ncg_expr js_string(js_ctx *c, uint32_t min, uint32_t max) {
    ncg_builder *b = c->b;
    ncg_expr q = ncg_str(b, "\"");
    ncg_expr ch;
    bool big = (max != NCG_INF && max > 64) || min > 64;
    if (big) {
        /* a long counted string is a big automaton: one rule per bounds */
        for (int i = 0; i < c->n_lenc; i++)
            if (c->lenc[i].min == min && c->lenc[i].max == max) return ncg_ref(b, c->lenc[i].rule);
    }
    if ((max != NCG_INF && max > 8) || min > 8) {
        /* a long bounded run: the engine unrolls repetitions, so repeat a
         * call of one shared character rule rather than its automaton */
        if (c->str_char_rule < 0) {
            ncg_rule r = ncg_rule_new(b, "str_char");
            if (r < 0) return r;
            int rc = ncg_rule_set(b, r, js_str_char(c));
            if (rc < 0) return rc;
            c->str_char_rule = r;
        }
        ch = ncg_ref(b, c->str_char_rule);
    } else ch = js_str_char(c);
    ncg_expr e = ncg_seq(b, (ncg_expr[]){ q, ncg_repeat(b, ch, min, max), q }, 3);
    if (!big || c->n_lenc == (int)(sizeof c->lenc / sizeof *c->lenc)) return e;
    ncg_rule r = ncg_rule_new(b, "str_counted");
    if (r < 0) return r;
    int rc = ncg_rule_set(b, r, e);
    if (rc < 0) return rc;
    c->lenc[c->n_lenc].min = min;
    c->lenc[c->n_lenc].max = max;
    c->lenc[c->n_lenc].rule = r;
    c->n_lenc++;
    return ncg_ref(b, r);
}

/* decode one UTF-8 code point at s[*i]; advances *i */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    uint32_t cp = s[*i];
    int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
    if (cp >= 0x80) cp &= (uint32_t)(0x3F >> extra);
    (*i)++;
    for (int k = 0; k < extra && *i < n; k++, (*i)++) cp = (cp << 6) | (s[*i] & 0x3F);
    return cp;
}

static int short_escape(uint32_t cp) {
    switch (cp) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 8: return 'b';
    case 12: return 'f';
    case 10: return 'n';
    case 13: return 'r';
    case 9: return 't';
    default: return 0;
    }
}

static ncg_expr char_lit(js_ctx *c, uint32_t cp);

/* every spelling of one code point */
ncg_expr js_char_lit(js_ctx *c, uint32_t cp) { return char_lit(c, cp); }

static ncg_expr char_lit(js_ctx *c, uint32_t cp) {
    ncg_builder *b = c->b;
    ncg_expr alts[3];
    int na = 0;
    if (cp >= 0x20 && cp != '"' && cp != '\\') {
        uint32_t r[2] = { cp, cp };
        alts[na++] = ncg_char_ranges(b, r, 1, false);
    }
    int se = short_escape(cp);
    if (se) { char e[3] = { '\\', (char)se, 0 }; alts[na++] = ncg_str(b, e); }
    if (cp < 0x10000) alts[na++] = u_unit(c, cp);
    else {
        uint32_t v = cp - 0x10000;
        alts[na++] = ncg_seq2(b, u_unit(c, 0xD800 + (v >> 10)), u_unit(c, 0xDC00 + (v & 0x3FF)));
    }
    return ncg_alt(b, alts, (size_t)na);
}

ncg_expr js_string_lit(js_ctx *c, const char *s, size_t n) {
    ncg_builder *b = c->b;
    ncg_expr acc = ncg_str(b, "\"");
    for (size_t i = 0; i < n;) acc = ncg_seq2(b, acc, char_lit(c, utf8_next((const unsigned char *)s, n, &i)));
    return ncg_seq2(b, acc, ncg_str(b, "\""));
}

/* \uXXXX (non-surrogate) spelling no code point of xs[0..n) (sorted BMP
 * values). level: nibbles fixed so far; prefix: their value. */
static ncg_expr hex_not(js_ctx *c, const uint32_t *xs, int n, int level, uint32_t prefix) {
    ncg_builder *b = c->b;
    int lo = 0, hi = 15;
    if (level == 1 && prefix == 0xD) hi = 7;     /* no surrogates */
    unsigned free_mask = 0;
    ncg_expr alts[17];
    int na = 0;
    for (int v = lo; v <= hi; v++) {
        uint32_t p = (prefix << 4) | (uint32_t)v;
        int shift = 4 * (3 - level);
        int first = -1, cnt = 0;
        for (int i = 0; i < n; i++)
            if ((xs[i] >> shift) == p) { if (first < 0) first = i; cnt++; }
        if (cnt == 0) { free_mask |= 1u << v; continue; }
        if (level == 3) continue;                 /* exactly an excluded value */
        alts[na++] = ncg_seq2(b, nibbles(c, 1u << v), hex_not(c, xs + first, cnt, level + 1, p));
    }
    if (free_mask) {
        ncg_expr rest;
        if (level == 0 && (free_mask & (1u << 13))) {
            /* D... free: second nibble 0-7 only */
            alts[na++] = ncg_seq(b, (ncg_expr[]){ nibbles(c, 1u << 13), nibbles(c, nib_range(0, 7)), hex_n(c, 2) }, 3);
            free_mask &= ~(1u << 13);
        }
        if (free_mask) {
            rest = hex_n(c, (uint32_t)(3 - level));
            alts[na++] = ncg_seq2(b, nibbles(c, free_mask), rest);
        }
    }
    return ncg_alt(b, alts, (size_t)na);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* any one character (any spelling) whose code point is not in xs[0..n) */
static ncg_expr char_not(js_ctx *c, uint32_t *xs, int n) {
    ncg_builder *b = c->b;
    qsort(xs, (size_t)n, sizeof *xs, cmp_u32);
    for (int i = 0; i < n; i++) if (xs[i] > 0xFFFF) return NUAGE_E_UNSUPPORTED;
    uint32_t *r = malloc(sizeof *r * (size_t)(2 * n + 6));
    if (!r) return NUAGE_E_NOMEM;
    int nr = 0;
    r[nr++] = 0; r[nr++] = 0x1F; r[nr++] = '"'; r[nr++] = '"'; r[nr++] = '\\'; r[nr++] = '\\';
    for (int i = 0; i < n; i++) { r[nr++] = xs[i]; r[nr++] = xs[i]; }
    ncg_expr raw = ncg_char_ranges(b, r, (size_t)nr / 2, true);
    free(r);
    uint8_t set[32] = { 0 };
    static const char se[] = "\"\\/bfnrt";
    static const uint32_t secp[] = { '"', '\\', '/', 8, 12, 10, 13, 9 };
    bool any_se = false;
    for (int k = 0; k < 8; k++) {
        bool ex = false;
        for (int i = 0; i < n; i++) if (xs[i] == secp[k]) ex = true;
        if (!ex) { set[(unsigned char)se[k] >> 3] |= (uint8_t)(1u << (se[k] & 7)); any_se = true; }
    }
    ncg_expr high = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "\\u"), nibbles(c, 1u << 13), nibbles(c, nib_range(8, 11)), hex_n(c, 2) }, 4);
    ncg_expr low = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "\\u"), nibbles(c, 1u << 13), nibbles(c, nib_range(12, 15)), hex_n(c, 2) }, 4);
    ncg_expr alts[4] = { raw, any_se ? ncg_seq2(b, ncg_str(b, "\\"), ncg_byteset(b, set)) : ncg_nothing(b),
                         ncg_seq2(b, ncg_str(b, "\\u"), hex_not(c, xs, n, 0, 0)), ncg_seq2(b, high, low) };
    return ncg_alt(b, alts, 4);
}

ncg_expr js_char_not(js_ctx *c, uint32_t *xs, int n) { return char_not(c, xs, n); }

/* The rest of any string body and its closing quote: a shared rule. */
static ncg_expr str_rest(js_ctx *c) {
    ncg_builder *b = c->b;
    if (c->str_rest_rule < 0) {
        ncg_rule r = ncg_rule_new(b, "str_rest");
        if (r < 0) return r;
        int rc = ncg_rule_set(b, r, ncg_seq2(b, ncg_repeat(b, js_str_char(c), 0, NCG_INF), ncg_str(b, "\"")));
        if (rc < 0) return rc;
        c->str_rest_rule = r;
    }
    return ncg_ref(b, c->str_rest_rule);
}

/* Shared tails of the "any other character" branches of the key trie
 * below: k = 1..3 hex digits then str_rest, and (k = 0) the rest of a
 * surrogate pair after "\u" (D[89AB]XX\uD[C-F]XX) then str_rest. They do
 * not depend on the trie node, so as rules the DFA of a key set holds
 * them once instead of once per node (most of its states: a set of N
 * names had ~11 DFA states per trie node). */
static ncg_expr str_tail(js_ctx *c, int k) {
    ncg_builder *b = c->b;
    if (c->str_tail_rule[k] < 0) {
        static const char *const names[4] = { "str_pair_rest", "str_hex1_rest", "str_hex2_rest", "str_hex3_rest" };
        ncg_expr rest = str_rest(c);
        if (rest < 0) return rest;
        ncg_expr body;
        if (k == 0)
            body = ncg_seq(b, (ncg_expr[]){ nibbles(c, 1u << 13), nibbles(c, nib_range(8, 11)), hex_n(c, 2),
                                            ncg_str(b, "\\u"), nibbles(c, 1u << 13), nibbles(c, nib_range(12, 15)),
                                            hex_n(c, 2), rest }, 8);
        else body = ncg_seq2(b, hex_n(c, (uint32_t)k), rest);
        ncg_rule r = ncg_rule_new(b, names[k]);
        if (r < 0) return r;
        int rc = ncg_rule_set(b, r, body);
        if (rc < 0) return rc;
        c->str_tail_rule[k] = r;
    }
    return ncg_ref(b, c->str_tail_rule[k]);
}

/* Any string character that is not raw ASCII and not spelled \u00XX (a
 * raw multi-byte character, a short escape, \u of a code point >= 0x100
 * or a surrogate pair), then str_rest: a shared rule (the part of "any
 * other character" that is the same at every node of a key trie whose
 * names are ASCII without short-escaped characters). */
static ncg_expr str_other_rest(js_ctx *c) {
    ncg_builder *b = c->b;
    if (c->str_tail_rule[4] >= 0) return ncg_ref(b, c->str_tail_rule[4]);
    ncg_expr rest = str_rest(c);
    if (rest < 0) return rest;
    static const uint8_t se[32] = { ['"' >> 3] = 1u << ('"' & 7), ['/' >> 3] = 1u << ('/' & 7),
                                    ['\\' >> 3] = 1u << ('\\' & 7),
                                    ['b' >> 3] = (1u << ('b' & 7)) | (1u << ('f' & 7)),
                                    ['n' >> 3] = 1u << ('n' & 7),
                                    ['r' >> 3] = (1u << ('r' & 7)) | (1u << ('t' & 7)) };   /* r, t: one byte */
    ncg_expr mb = ncg_char_ranges(b, (const uint32_t[]){ 0, 0x7F }, 1, true);   /* cp >= 0x80, raw */
    ncg_expr u_alts[4] = {
        ncg_seq2(b, nibbles(c, 0xFFFF & ~(1u << 0) & ~(1u << 13)), hex_n(c, 3)),             /* 1XXX-FXXX but D */
        ncg_seq(b, (ncg_expr[]){ nibbles(c, 1u << 13), nibbles(c, nib_range(0, 7)), hex_n(c, 2) }, 3),
        ncg_seq(b, (ncg_expr[]){ nibbles(c, 1), nibbles(c, 0xFFFE), hex_n(c, 2) }, 3),         /* 01XX-0FXX */
        ncg_seq(b, (ncg_expr[]){ nibbles(c, 1u << 13), nibbles(c, nib_range(8, 11)), hex_n(c, 2), ncg_str(b, "\\u"),
                                 nibbles(c, 1u << 13), nibbles(c, nib_range(12, 15)), hex_n(c, 2) }, 7),
    };
    ncg_expr alts[3] = { mb, ncg_seq2(b, ncg_str(b, "\\"), ncg_byteset(b, se)),
                         ncg_seq2(b, ncg_str(b, "\\u"), ncg_alt(b, u_alts, 4)) };
    ncg_rule r = ncg_rule_new(b, "str_other_rest");
    if (r < 0) return r;
    int rc = ncg_rule_set(b, r, ncg_seq2(b, ncg_alt(b, alts, 3), rest));
    if (rc < 0) return rc;
    c->str_tail_rule[4] = r;
    return ncg_ref(b, r);
}

/* hex_not followed by str_rest, with the node-independent tails shared
 * (free nibbles continue into str_tail). Same language as
 * hex_not(xs, n, level, prefix) str_rest. */
static ncg_expr hex_not_rest(js_ctx *c, const uint32_t *xs, int n, int level, uint32_t prefix) {
    ncg_builder *b = c->b;
    int hi = (level == 1 && prefix == 0xD) ? 7 : 15;     /* no surrogates */
    unsigned free_mask = 0;
    ncg_expr alts[18];
    int na = 0;
    for (int v = 0; v <= hi; v++) {
        uint32_t p = (prefix << 4) | (uint32_t)v;
        int shift = 4 * (3 - level);
        int first = -1, cnt = 0;
        for (int i = 0; i < n; i++)
            if ((xs[i] >> shift) == p) { if (first < 0) first = i; cnt++; }
        if (cnt == 0) { free_mask |= 1u << v; continue; }
        if (level == 3) continue;                 /* exactly an excluded value */
        alts[na++] = ncg_seq2(b, nibbles(c, 1u << v), hex_not_rest(c, xs + first, cnt, level + 1, p));
    }
    if (level == 0 && (free_mask & (1u << 13))) {
        /* D... free: second nibble 0-7 only */
        alts[na++] = ncg_seq(b, (ncg_expr[]){ nibbles(c, 1u << 13), nibbles(c, nib_range(0, 7)), str_tail(c, 2) }, 3);
        free_mask &= ~(1u << 13);
    }
    if (free_mask) alts[na++] = ncg_seq2(b, nibbles(c, free_mask), level == 3 ? str_rest(c) : str_tail(c, 3 - level));
    return ncg_alt(b, alts, (size_t)na);
}

/* char_not(xs) followed by str_rest (any one character, in any spelling,
 * whose code point is not in xs, then the rest of the string), sharing
 * the tails that do not depend on xs. */
static ncg_expr char_not_rest(js_ctx *c, uint32_t *xs, int n) {
    ncg_builder *b = c->b;
    qsort(xs, (size_t)n, sizeof *xs, cmp_u32);
    for (int i = 0; i < n; i++) if (xs[i] > 0xFFFF) return NUAGE_E_UNSUPPORTED;
    bool plain = true;   /* every excluded character ASCII, none with a short escape */
    for (int i = 0; i < n && plain; i++) plain = xs[i] >= 0x20 && xs[i] < 0x80 && !short_escape(xs[i]);
    if (plain) {
        /* Only the raw ASCII byte and the \u00XX spellings depend on xs;
         * everything else is one shared rule. */
        uint8_t set[32] = { 0 };
        for (unsigned x = 0x20; x < 0x80; x++)
            if (x != '"' && x != '\\') set[x >> 3] |= (uint8_t)(1u << (x & 7));
        for (int i = 0; i < n; i++) set[xs[i] >> 3] &= (uint8_t)~(1u << (xs[i] & 7));
        ncg_expr rest = str_rest(c), other = str_other_rest(c);
        ncg_expr alts[3] = { ncg_seq2(b, ncg_byteset(b, set), rest), other,
                             ncg_seq2(b, ncg_str(b, "\\u00"), hex_not_rest(c, xs, n, 2, 0)) };
        return ncg_alt(b, alts, 3);
    }
    uint32_t *r = malloc(sizeof *r * (size_t)(2 * n + 6));
    if (!r) return NUAGE_E_NOMEM;
    int nr = 0;
    r[nr++] = 0; r[nr++] = 0x1F; r[nr++] = '"'; r[nr++] = '"'; r[nr++] = '\\'; r[nr++] = '\\';
    for (int i = 0; i < n; i++) { r[nr++] = xs[i]; r[nr++] = xs[i]; }
    ncg_expr raw = ncg_char_ranges(b, r, (size_t)nr / 2, true);
    free(r);
    uint8_t set[32] = { 0 };
    static const char se[] = "\"\\/bfnrt";
    static const uint32_t secp[] = { '"', '\\', '/', 8, 12, 10, 13, 9 };
    bool any_se = false;
    for (int k = 0; k < 8; k++) {
        bool ex = false;
        for (int i = 0; i < n; i++) if (xs[i] == secp[k]) ex = true;
        if (!ex) { set[(unsigned char)se[k] >> 3] |= (uint8_t)(1u << (se[k] & 7)); any_se = true; }
    }
    ncg_expr rest = str_rest(c);
    ncg_expr u = ncg_alt2(b, hex_not_rest(c, xs, n, 0, 0), str_tail(c, 0));
    ncg_expr alts[3] = { ncg_seq2(b, raw, rest),
                         any_se ? ncg_seq(b, (ncg_expr[]){ ncg_str(b, "\\"), ncg_byteset(b, set), rest }, 3) : ncg_nothing(b),
                         ncg_seq2(b, ncg_str(b, "\\u"), u) };
    return ncg_alt(b, alts, 3);
}

typedef struct name_ref {
    const unsigned char *s;
    size_t n;
    size_t pos;     /* byte offset of the next code point */
} name_ref;

/* the rest of a string body (and closing quote) after the trie node whose
 * names are v[0..n) (all sharing the code points consumed so far) */
static ncg_expr not_in_node(js_ctx *c, name_ref *v, int n, int depth) {
    ncg_builder *b = c->b;
    if (depth > 4096) return NUAGE_E_UNSUPPORTED;
    bool terminal = false;
    uint32_t *kids = malloc(sizeof *kids * (size_t)(n + 1));
    if (!kids) return NUAGE_E_NOMEM;
    int nk = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].pos >= v[i].n) { terminal = true; continue; }
        size_t p = v[i].pos;
        uint32_t cp = utf8_next(v[i].s, v[i].n, &p);
        bool seen = false;
        for (int k = 0; k < nk; k++) if (kids[k] == cp) seen = true;
        if (!seen) kids[nk++] = cp;
    }
    ncg_expr acc = terminal ? ncg_nothing(b) : ncg_str(b, "\"");
    for (int k = 0; k < nk; k++) {
        /* names continuing with kids[k], advanced past it */
        name_ref *sub = malloc(sizeof *sub * (size_t)n);
        if (!sub) { free(kids); return NUAGE_E_NOMEM; }
        int ns = 0;
        for (int i = 0; i < n; i++) {
            if (v[i].pos >= v[i].n) continue;
            size_t p = v[i].pos;
            uint32_t cp = utf8_next(v[i].s, v[i].n, &p);
            if (cp == kids[k]) { sub[ns] = v[i]; sub[ns].pos = p; ns++; }
        }
        acc = ncg_alt2(b, acc, ncg_seq2(b, char_lit(c, kids[k]), not_in_node(c, sub, ns, depth + 1)));
        free(sub);
    }
    ncg_expr other = char_not_rest(c, kids, nk);
    free(kids);
    return ncg_alt2(b, acc, other);
}

ncg_expr js_string_not_in(js_ctx *c, const char *const *names, const size_t *lens, int n) {
    if (n == 0) return js_string(c, 0, NCG_INF);
    name_ref *v = malloc(sizeof *v * (size_t)n);
    if (!v) return NUAGE_E_NOMEM;
    for (int i = 0; i < n; i++) { v[i].s = (const unsigned char *)names[i]; v[i].n = lens[i]; v[i].pos = 0; }
    ncg_expr body = not_in_node(c, v, n, 0);
    free(v);
    return ncg_seq2(c->b, ncg_str(c->b, "\""), body);
}
