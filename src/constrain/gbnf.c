/*
 * gbnf.c - llama.cpp's GBNF grammar format, parsed into a builder.
 *
 * The format (written from its documentation): rules `name ::= body`,
 * names of letters, digits, '-' (and '_'); bodies of alternatives `|` of
 * sequences of items: "string" literals, character classes [a-z] and
 * [^...] over code points, `.` (any code point), (groups), rule names,
 * and token references <[id]> / <name> (a vocabulary token by id or by its
 * exact text; the latter needs the token table). Items take the postfix
 * operators * + ? {m} {m,} {m,n} {,n}. Escapes in strings and classes:
 * \n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH. `#` starts a comment to
 * the end of the line. A newline ends a rule except inside a group or
 * after `|` / `::=`. The start rule is `root`.
 *
 * Hostile input: groups nest at most 256 deep, repetition bounds are
 * parsed with overflow checks (the compiler refuses unrolled grammars that
 * are too large), and every error names its line and column.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

#define MAX_NEST 256

typedef struct gname { char *name; size_t len; ncg_rule r; bool defined; size_t first_ref; } gname;

typedef struct P {
    ncg_builder *b;
    const nuage_cg_tokens *t;
    const char *s;
    size_t n, i;
    nuage_cg_error *err;
    int rc;
    int depth;
    gname *names;
    size_t n_names, cap_names;
} P;

static void where(const P *p, size_t at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t k = 0; k < at && k < p->n; k++) {
        if (p->s[k] == '\n') { (*line)++; *col = 1; }
        else (*col)++;
    }
}

static int perr_at(P *p, size_t at, int rc, const char *fmt, ...) {
    if (p->rc) return p->rc;
    p->rc = rc;
    if (p->err) {
        int line, col;
        where(p, at, &line, &col);
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(p->err->msg, sizeof p->err->msg, "GBNF line %d, column %d: %s", line, col, msg);
        p->err->pointer[0] = 0;
    }
    return rc;
}
#define perr(p, ...) perr_at(p, (p)->i, NUAGE_E_INVAL, __VA_ARGS__)

static int peek(const P *p) { return p->i < p->n ? (unsigned char)p->s[p->i] : -1; }

static void skip_space(P *p, bool newlines) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t') p->i++;
        else if (c == '#') { while (p->i < p->n && p->s[p->i] != '\n') p->i++; }
        else if (newlines && (c == '\n' || c == '\r')) p->i++;
        else break;
    }
}

static bool word_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static gname *lookup(P *p, const char *name, size_t len, size_t at) {
    for (size_t k = 0; k < p->n_names; k++)
        if (p->names[k].len == len && !memcmp(p->names[k].name, name, len)) return &p->names[k];
    if (p->n_names == p->cap_names) {
        size_t nc = p->cap_names ? p->cap_names * 2 : 16;
        gname *q = realloc(p->names, nc * sizeof *q);
        if (!q) { perr_at(p, at, NUAGE_E_NOMEM, "out of memory"); return NULL; }
        p->names = q;
        p->cap_names = nc;
    }
    char *nm = malloc(len + 1);
    if (!nm) { perr_at(p, at, NUAGE_E_NOMEM, "out of memory"); return NULL; }
    memcpy(nm, name, len);
    nm[len] = 0;
    ncg_rule r = ncg_rule_new(p->b, nm);
    if (r < 0) { free(nm); perr_at(p, at, r, "out of memory"); return NULL; }
    p->names[p->n_names] = (gname){nm, len, r, false, at};
    return &p->names[p->n_names++];
}

/* One code point of the source (UTF-8 decoded), or -1 (error set). */
static int32_t src_char(P *p) {
    const unsigned char *u = (const unsigned char *)p->s + p->i;
    size_t left = p->n - p->i;
    if (!left) { perr(p, "unexpected end of input"); return -1; }
    int len = u[0] < 0x80 ? 1 : (u[0] >> 5) == 6 ? 2 : (u[0] >> 4) == 14 ? 3 : (u[0] >> 3) == 30 ? 4 : 0;
    if (!len || (size_t)len > left) { perr(p, "invalid UTF-8"); return -1; }
    uint32_t c = len == 1 ? u[0] : (uint32_t)(u[0] & (0x7F >> len));
    for (int k = 1; k < len; k++) {
        if ((u[k] & 0xC0) != 0x80) { perr(p, "invalid UTF-8"); return -1; }
        c = c << 6 | (u[k] & 63);
    }
    p->i += (size_t)len;
    return (int32_t)c;
}

static int32_t hexn(P *p, int n) {
    uint32_t v = 0;
    for (int k = 0; k < n; k++) {
        int c = peek(p);
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) { perr(p, "expected %d hex digits", n); return -1; }
        v = v << 4 | (uint32_t)d;
        p->i++;
    }
    if (v > 0x10FFFF) { perr(p, "code point out of range"); return -1; }
    return (int32_t)v;
}

/* A character of a literal or class, escapes decoded; -1 on error. */
static int32_t lit_char(P *p) {
    if (peek(p) != '\\') return src_char(p);
    p->i++;
    int c = peek(p);
    p->i++;
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case '\\': case '"': case '[': case ']': case '-': case '/': case '\'': return c;
    case 'x': return hexn(p, 2);
    case 'u': return hexn(p, 4);
    case 'U': return hexn(p, 8);
    default: p->i--; perr(p, "unknown escape"); return -1;
    }
}

static int utf8(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | c >> 6); o[1] = (char)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) { o[0] = (char)(0xE0 | c >> 12); o[1] = (char)(0x80 | ((c >> 6) & 63)); o[2] = (char)(0x80 | (c & 63)); return 3; }
    o[0] = (char)(0xF0 | c >> 18); o[1] = (char)(0x80 | ((c >> 12) & 63));
    o[2] = (char)(0x80 | ((c >> 6) & 63)); o[3] = (char)(0x80 | (c & 63));
    return 4;
}

static ncg_expr parse_string(P *p) {
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    if (!buf) return perr_at(p, p->i, NUAGE_E_NOMEM, "out of memory");
    p->i++;   /* opening quote */
    for (;;) {
        int c = peek(p);
        if (c < 0 || c == '\n') { free(buf); return perr(p, "unterminated string"); }
        if (c == '"') { p->i++; break; }
        int32_t ch = lit_char(p);
        if (ch < 0) { free(buf); return p->rc; }
        if (len + 4 > cap) {
            char *q = realloc(buf, cap *= 2);
            if (!q) { free(buf); return perr_at(p, p->i, NUAGE_E_NOMEM, "out of memory"); }
            buf = q;
        }
        len += (size_t)utf8((uint32_t)ch, buf + len);
    }
    ncg_expr e = ncg_bytes(p->b, buf, len);
    free(buf);
    return e;
}

static ncg_expr parse_class(P *p) {
    size_t at = p->i;
    p->i++;   /* [ */
    bool neg = peek(p) == '^';
    if (neg) p->i++;
    uint32_t *r = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        int c = peek(p);
        if (c < 0) { free(r); return perr_at(p, at, NUAGE_E_INVAL, "unterminated character class"); }
        if (c == ']') { p->i++; break; }
        int32_t lo = lit_char(p), hi;
        if (lo < 0) { free(r); return p->rc; }
        hi = lo;
        if (peek(p) == '-' && p->i + 1 < p->n && p->s[p->i + 1] != ']') {
            p->i++;
            if ((hi = lit_char(p)) < 0) { free(r); return p->rc; }
            if (hi < lo) { free(r); return perr(p, "character range out of order"); }
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            uint32_t *q = realloc(r, cap * 2 * sizeof *q);
            if (!q) { free(r); return perr_at(p, p->i, NUAGE_E_NOMEM, "out of memory"); }
            r = q;
        }
        r[2 * n] = (uint32_t)lo;
        r[2 * n + 1] = (uint32_t)hi;
        n++;
    }
    ncg_expr e = ncg_char_ranges(p->b, r, n, neg);
    free(r);
    return e;
}

static ncg_expr parse_token_ref(P *p) {
    size_t at = p->i;
    p->i++;   /* < */
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] != '>' && p->s[p->i] != '\n') p->i++;
    if (peek(p) != '>') return perr_at(p, at, NUAGE_E_INVAL, "unterminated token reference");
    const char *txt = p->s + start;
    size_t len = p->i - start;
    p->i++;
    if (len >= 2 && txt[0] == '[' && txt[len - 1] == ']') {
        long v = 0;
        if (len == 2) return perr_at(p, at, NUAGE_E_INVAL, "empty token id");
        for (size_t k = 1; k + 1 < len; k++) {
            if (txt[k] < '0' || txt[k] > '9' || v > 100000000) return perr_at(p, at, NUAGE_E_INVAL, "bad token id");
            v = v * 10 + (txt[k] - '0');
        }
        if (p->t && v >= p->t->n_vocab) return perr_at(p, at, NUAGE_E_INVAL, "token id %ld out of the vocabulary", v);
        return ncg_token(p->b, (int32_t)v);
    }
    if (!p->t || !p->t->v) return perr_at(p, at, NUAGE_E_UNSUPPORTED, "token names need a vocabulary");
    int32_t id = nuage_vocab_find_n(p->t->v, p->s + start - 1, len + 2);
    if (id < 0) return perr_at(p, at, NUAGE_E_INVAL, "no token <%.*s> in the vocabulary", (int)(len > 60 ? 60 : len), txt);
    return ncg_token(p->b, id);
}

static bool parse_uint(P *p, uint32_t *v) {
    int c = peek(p);
    if (c < '0' || c > '9') return false;
    uint64_t x = 0;
    while ((c = peek(p)) >= '0' && c <= '9') {
        x = x * 10 + (uint64_t)(c - '0');
        if (x >= NCG_INF) x = NCG_INF - 1;
        p->i++;
    }
    *v = (uint32_t)x;
    return true;
}

static ncg_expr parse_alternates(P *p, bool nested);

static ncg_expr parse_item(P *p) {
    int c = peek(p);
    size_t at = p->i;
    if (c == '"') return parse_string(p);
    if (c == '[') return parse_class(p);
    if (c == '<') return parse_token_ref(p);
    if (c == '.') {
        p->i++;
        uint32_t all[] = {0, 0x10FFFF};
        return ncg_char_ranges(p->b, all, 1, false);
    }
    if (c == '(') {
        if (++p->depth > MAX_NEST) return perr(p, "groups nested too deeply");
        p->i++;
        skip_space(p, true);
        ncg_expr e = parse_alternates(p, true);
        if (p->rc) return p->rc;
        skip_space(p, true);
        if (peek(p) != ')') return perr_at(p, at, NUAGE_E_INVAL, "unclosed group");
        p->i++;
        p->depth--;
        return e;
    }
    if (word_char(c)) {
        size_t s = p->i;
        while (p->i < p->n && word_char((unsigned char)p->s[p->i])) p->i++;
        gname *g = lookup(p, p->s + s, p->i - s, s);
        return g ? ncg_ref(p->b, g->r) : p->rc;
    }
    if (c == '!') return perr(p, "negated token references are not supported");
    return c < 0 ? perr(p, "unexpected end of input") : perr(p, "unexpected character '%c'", c);
}

static ncg_expr parse_postfix(P *p, ncg_expr e) {
    for (;;) {
        int c = peek(p);
        if (c == '*' || c == '+' || c == '?') {
            /* A run of these folds into one: (x+)+ is x+, (x?)? is x?, any
             * other mix is x*. Nesting them instead (fuzz_gbnf found
             * "x+++++++++++++++++++") blew up the compiler's subset
             * construction: refused as too large, after 22 s under ASan. */
            bool plus = false, opt = false;
            while ((c = peek(p)) == '*' || c == '+' || c == '?') {
                p->i++;
                plus |= c != '?';
                opt |= c != '+';
            }
            e = ncg_repeat(p->b, e, opt ? 0 : 1, plus ? NCG_INF : 1);
        } else if (c == '{') {
            size_t at = p->i;
            p->i++;
            skip_space(p, false);
            uint32_t lo = 0, hi;
            bool has_lo = parse_uint(p, &lo);
            skip_space(p, false);
            if (peek(p) == ',') {
                p->i++;
                skip_space(p, false);
                if (!parse_uint(p, &hi)) hi = NCG_INF;
                else if (hi < lo) return perr_at(p, at, NUAGE_E_INVAL, "repetition maximum below minimum");
                if (!has_lo && hi == NCG_INF) return perr_at(p, at, NUAGE_E_INVAL, "empty repetition bounds");
            } else {
                if (!has_lo) return perr_at(p, at, NUAGE_E_INVAL, "expected a repetition count");
                hi = lo;
            }
            skip_space(p, false);
            if (peek(p) != '}') return perr_at(p, at, NUAGE_E_INVAL, "unclosed repetition");
            p->i++;
            e = ncg_repeat(p->b, e, lo, hi);
        } else return e;
        if (e < 0) return perr_at(p, p->i, e, "cannot build the repetition");
    }
}

static ncg_expr parse_sequence(P *p, bool nested) {
    ncg_expr *items = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        int c = peek(p);
        if (c < 0 || c == '|' || c == ')' || c == '\n' || c == '\r') break;
        ncg_expr e = parse_item(p);
        if (!p->rc) e = parse_postfix(p, e);
        if (p->rc || e < 0) { free(items); return p->rc ? p->rc : perr_at(p, p->i, e, "cannot build the grammar"); }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            ncg_expr *q = realloc(items, cap * sizeof *q);
            if (!q) { free(items); return perr_at(p, p->i, NUAGE_E_NOMEM, "out of memory"); }
            items = q;
        }
        items[n++] = e;
        skip_space(p, nested);
    }
    ncg_expr e = ncg_seq(p->b, items, n);
    free(items);
    return e;
}

static ncg_expr parse_alternates(P *p, bool nested) {
    ncg_expr *alts = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        ncg_expr e = parse_sequence(p, nested);
        if (p->rc) { free(alts); return p->rc; }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            ncg_expr *q = realloc(alts, cap * sizeof *q);
            if (!q) { free(alts); return perr_at(p, p->i, NUAGE_E_NOMEM, "out of memory"); }
            alts = q;
        }
        alts[n++] = e;
        if (peek(p) != '|') break;
        p->i++;
        skip_space(p, true);
    }
    ncg_expr e = ncg_alt(p->b, alts, n);
    free(alts);
    return e;
}

int ncg_gbnf_for(ncg_builder *b, const char *src, size_t len, const nuage_cg_tokens *t, ncg_rule *root,
                 nuage_cg_error *err) {
    if (err) err->msg[0] = err->pointer[0] = 0;
    if (!b || (!src && len) || !root) return NUAGE_E_INVAL;
    P p = {.b = b, .t = t, .s = src ? src : "", .n = len, .err = err};
    skip_space(&p, true);
    while (p.i < p.n && !p.rc) {
        size_t s = p.i;
        while (p.i < p.n && word_char((unsigned char)p.s[p.i])) p.i++;
        if (p.i == s) { perr(&p, "expected a rule name"); break; }
        gname *g = lookup(&p, p.s + s, p.i - s, s);
        if (!g) break;
        if (g->defined) { perr_at(&p, s, NUAGE_E_INVAL, "rule '%s' defined twice", g->name); break; }
        g->defined = true;
        ncg_rule r = g->r;   /* g may move when names grow */
        skip_space(&p, false);
        if (p.n - p.i < 3 || memcmp(p.s + p.i, "::=", 3)) { perr(&p, "expected '::='"); break; }
        p.i += 3;
        skip_space(&p, true);
        ncg_expr body = parse_alternates(&p, false);
        if (p.rc) break;
        int c = peek(&p);
        if (c >= 0 && c != '\n' && c != '\r') { perr(&p, "unexpected '%c'", c); break; }
        int rc = ncg_rule_set(b, r, body);
        if (rc) { perr_at(&p, s, rc, "cannot build rule"); break; }
        skip_space(&p, true);
    }
    if (!p.rc)
        for (size_t k = 0; k < p.n_names; k++)
            if (!p.names[k].defined) { perr_at(&p, p.names[k].first_ref, NUAGE_E_INVAL, "undefined rule '%s'", p.names[k].name); break; }
    if (!p.rc) {
        size_t k = 0;
        while (k < p.n_names && strcmp(p.names[k].name, "root")) k++;
        if (k == p.n_names) perr_at(&p, 0, NUAGE_E_INVAL, "no 'root' rule");
        else *root = p.names[k].r;
    }
    for (size_t k = 0; k < p.n_names; k++) free(p.names[k].name);
    free(p.names);
    return p.rc;
}

int ncg_gbnf(ncg_builder *b, const char *src, size_t len, ncg_rule *root, nuage_cg_error *err) {
    return ncg_gbnf_for(b, src, len, NULL, root, err);
}
