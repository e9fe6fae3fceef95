/*
 * lexer.c - template text to tokens, as Jinja2's lexer does it.
 *
 * The text has already been normalised (chat.c: every \r\n and \r became
 * \n, one trailing newline dropped). The lexer alternates between "data"
 * (plain text up to the next `{{`, `{%` or `{#`) and "tag" states. The
 * whitespace rules of the reference environment are applied here, where
 * Jinja2 applies them:
 *
 *  - a `-` right after an opening delimiter strips all whitespace before it
 *    (Python str.rstrip, so Unicode spaces too); `-` before a closing
 *    delimiter strips all whitespace after it;
 *  - lstrip_blocks: with no `+`/`-` sign, spaces and tabs between the start
 *    of a line and `{%` / `{#` are removed (not before `{{`); "start of a
 *    line" includes the position right after a tag that consumed a newline;
 *  - trim_blocks: a plain `%}` or `#}` swallows one following newline
 *    (not `}}`, and not the `%}` of `{% raw %}`, a quirk we reproduce);
 *  - `+` on either side of a block tag disables these.
 *
 * Inside tags, tokens are names, numbers (with `_` separators; floats need
 * a fraction or an exponent), string literals (unescaped like Python's
 * unicode-escape, may span lines) and operators. Brackets are balanced: a
 * `}}` or `%}` inside an open `{`/`(`/`[` does not end the tag. `{% raw %}`
 * blocks become plain data. Comments are dropped.
 *
 * Tokens and their strings are allocated in the template's arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

/* ---- arena ---------------------------------------------------------------------- */
struct jchunk { struct jchunk *next; size_t used, size; _Alignas(16) unsigned char data[]; };

void *nuage__jarena_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    struct jchunk *c = a->head;
    if (!c || c->used + n > c->size) {
        size_t size = n > 32768 ? n : 32768;
        c = malloc(sizeof *c + size);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->size = size;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *nuage__jarena_strdup(jarena *a, const char *s, size_t n) {
    char *p = nuage__jarena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void nuage__jarena_free(jarena *a) {
    struct jchunk *c = a->head;
    while (c) {
        struct jchunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- lexer state ---------------------------------------------------------------- */
typedef struct {
    jarena *arena;
    const char *src;
    size_t n, pos;
    int line;
    jtoken *toks;
    size_t ntoks, cap;
    char *err;
    size_t errlen;
    int rc;
    char bal[256];   /* expected closing brackets */
    int nbal;
} lexer;

static int lfail(lexer *L, int line, const char *msg, const char *arg) {
    if (L->rc == 0) {
        if (L->err && L->errlen)
            snprintf(L->err, L->errlen, "line %d: %s%s", line, msg, arg ? arg : "");
        L->rc = NUAGE_E_TEMPLATE;
    }
    return -1;
}

static jtoken *push(lexer *L, int type, int line) {
    if (L->ntoks == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtoken *t = realloc(L->toks, cap * sizeof *t);
        if (!t) { if (!L->rc) L->rc = NUAGE_E_NOMEM; return NULL; }
        L->toks = t;
        L->cap = cap;
    }
    jtoken *t = &L->toks[L->ntoks++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->line = line;
    return t;
}

static void advance(lexer *L, size_t to) {
    for (size_t i = L->pos; i < to; i++)
        if (L->src[i] == '\n') L->line++;
    L->pos = to;
}

/* Code point starting at byte i is whitespace (Python \s); sets *adv. */
static bool ws_at(const lexer *L, size_t i, size_t *adv) {
    uint32_t cp = nuage__utf8_dec(L->src + i, L->n - i, adv);
    return nuage__u_isspace(cp);
}

static size_t skip_ws(const lexer *L, size_t i) {
    size_t adv;
    while (i < L->n && ws_at(L, i, &adv)) i += adv;
    return i;
}

/* Emit src[a, b) as data, applying the strip rules of the tag that follows:
 * sign is '-', '+' or 0; lstrip says whether lstrip_blocks applies to it. */
static int emit_data(lexer *L, size_t a, size_t b, char sign, bool lstrip, bool line_starting) {
    size_t end = b;
    if (sign == '-') {
        /* rstrip Unicode whitespace: walk back over code points */
        while (end > a) {
            size_t s = end - 1;
            while (s > a && ((unsigned char)L->src[s] & 0xC0) == 0x80) s--;
            size_t adv;
            if (!ws_at(L, s, &adv)) break;
            end = s;
        }
    } else if (sign != '+' && lstrip) {
        size_t l = b;
        while (l > a && L->src[l - 1] != '\n') l--;
        bool at_nl = l > a;
        if ((at_nl || line_starting) && l < b) {
            size_t i = l, adv;
            bool all = true;
            while (i < b) {
                if (!ws_at(L, i, &adv)) { all = false; break; }
                i += adv;
            }
            if (all) end = l;
        }
    }
    if (end > a) {
        jtoken *t = push(L, TK_DATA, L->line);
        if (!t) return -1;
        t->s = nuage__jarena_strdup(L->arena, L->src + a, end - a);
        if (!t->s) { L->rc = NUAGE_E_NOMEM; return -1; }
        t->len = end - a;
    }
    advance(L, b);
    return 0;
}

/* Python unicode-escape decoding of a string literal body. */
static int unescape(lexer *L, const char *s, size_t n, jtoken *t) {
    char *o = nuage__jarena_alloc(L->arena, n + 1);
    if (!o) { L->rc = NUAGE_E_NOMEM; return -1; }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) { o[k++] = s[i]; continue; }
        char c = s[++i];
        uint32_t cp;
        int nhex = 0;
        switch (c) {
        case '\n': continue;
        case '\\': o[k++] = '\\'; continue;
        case '\'': o[k++] = '\''; continue;
        case '"': o[k++] = '"'; continue;
        case 'a': o[k++] = '\a'; continue;
        case 'b': o[k++] = '\b'; continue;
        case 'f': o[k++] = '\f'; continue;
        case 'n': o[k++] = '\n'; continue;
        case 'r': o[k++] = '\r'; continue;
        case 't': o[k++] = '\t'; continue;
        case 'v': o[k++] = '\v'; continue;
        case 'x': nhex = 2; break;
        case 'u': nhex = 4; break;
        case 'U': nhex = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int d = 0; d < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(s[++i] - '0');
                k += nuage__utf8_enc(cp, o + k);
                continue;
            }
            o[k++] = '\\';
            o[k++] = c;
            continue;
        }
        cp = 0;
        for (int d = 0; d < nhex; d++) {
            char h = (i + 1 < n) ? s[i + 1] : 0;
            int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 :
                    (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (v < 0) return lfail(L, t->line, "truncated \\x/\\u escape in string literal", NULL);
            cp = cp * 16 + (uint32_t)v;
            i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return lfail(L, t->line, "invalid code point in string literal", NULL);
        /* 4-byte output never exceeds the 6+ input bytes of \uXXXX / \UXXXXXXXX;
         * \xHH (4 bytes in) gives at most 2. */
        k += nuage__utf8_enc(cp, o + k);
    }
    o[k] = 0;
    t->s = o;
    t->len = k;
    return 0;
}

static bool isdig(char c) { return c >= '0' && c <= '9'; }
static bool isname0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool isname(char c) { return isname0(c) || isdig(c); }

/* digits ("_" digits)* starting at i; returns end or i when none */
static size_t scan_digits(const lexer *L, size_t i) {
    if (i >= L->n || !isdig(L->src[i])) return i;
    while (i < L->n && isdig(L->src[i])) i++;
    while (i + 1 < L->n && L->src[i] == '_' && isdig(L->src[i + 1])) {
        i++;
        while (i < L->n && isdig(L->src[i])) i++;
    }
    return i;
}

static size_t scan_exponent(const lexer *L, size_t i) {
    if (i < L->n && (L->src[i] == 'e' || L->src[i] == 'E')) {
        size_t j = i + 1;
        if (j < L->n && (L->src[j] == '+' || L->src[j] == '-')) j++;
        size_t k = scan_digits(L, j);
        if (k > j) return k;
    }
    return i;
}

static char *strip_underscores(lexer *L, size_t a, size_t b) {
    char *s = nuage__jarena_alloc(L->arena, b - a + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = a; i < b; i++)
        if (L->src[i] != '_') s[k++] = L->src[i];
    s[k] = 0;
    return s;
}

static const struct { const char *s; uint8_t op; } OPS[] = {
    {"//", OP_FDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {">=", OP_GE}, {"<=", OP_LE},
    {"+", OP_ADD}, {"-", OP_SUB}, {"/", OP_DIV}, {"*", OP_MUL}, {"%", OP_MOD}, {"~", OP_TILDE},
    {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"(", OP_LPAREN}, {")", OP_RPAREN},
    {"{", OP_LBRACE}, {"}", OP_RBRACE}, {">", OP_GT}, {"<", OP_LT}, {"=", OP_ASSIGN},
    {".", OP_DOT}, {":", OP_COLON}, {"|", OP_PIPE}, {",", OP_COMMA}, {";", OP_SEMICOLON},
};

/* Tokens of one `{{ }}` (block=false) or `{% %}` tag, from L->pos (just after
 * the opening delimiter and its sign) to the closing one. Sets *line_starting. */
static int lex_tag(lexer *L, bool block, int open_line, bool *line_starting) {
    L->nbal = 0;
    for (;;) {
        size_t p = L->pos;
        const char *s = L->src;
        if (L->nbal == 0) {
            size_t end = 0;
            if (block) {
                if (p + 3 <= L->n && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') end = p + 3;
                else if (p + 3 <= L->n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}')
                    end = skip_ws(L, p + 3);
                else if (p + 2 <= L->n && s[p] == '%' && s[p + 1] == '}') {
                    end = p + 2;
                    if (end < L->n && s[end] == '\n') end++;
                }
            } else {
                if (p + 3 <= L->n && s[p] == '-' && s[p + 1] == '}' && s[p + 2] == '}')
                    end = skip_ws(L, p + 3);
                else if (p + 2 <= L->n && s[p] == '}' && s[p + 1] == '}') end = p + 2;
            }
            if (end) {
                if (!push(L, block ? TK_BEND : TK_VEND, L->line)) return -1;
                *line_starting = s[end - 1] == '\n';
                advance(L, end);
                return 0;
            }
        }
        if (p >= L->n)
            return lfail(L, open_line, block ? "unexpected end of template, expected end of block tag ('%}')"
                                              : "unexpected end of template, expected end of print statement ('}}')", NULL);
        size_t adv;
        if (ws_at(L, p, &adv)) { advance(L, skip_ws(L, p)); continue; }
        char c = s[p];
        /* float: (?<!\.) digits (. digits)? exponent | digits . digits */
        if (isdig(c)) {
            size_t e = scan_digits(L, p);
            size_t fe = 0;
            if (p == 0 || s[p - 1] != '.') {
                if (e < L->n && s[e] == '.') {
                    size_t f = scan_digits(L, e + 1);
                    if (f > e + 1) fe = scan_exponent(L, f);
                }
                if (!fe) {
                    size_t x = scan_exponent(L, e);
                    if (x > e) fe = x;
                }
            }
            jtoken *t = push(L, fe ? TK_FLOAT : TK_INT, L->line);
            if (!t) return -1;
            char *num = strip_underscores(L, p, fe ? fe : e);
            if (!num) { L->rc = NUAGE_E_NOMEM; return -1; }
            if (fe) {
                t->f = strtod(num, NULL);
            } else {
                unsigned long long v = 0;
                for (const char *q = num; *q; q++) {
                    if (v > (unsigned long long)(INT64_MAX - (*q - '0')) / 10)
                        return lfail(L, L->line, "integer literal too large", NULL);
                    v = v * 10 + (unsigned long long)(*q - '0');
                }
                t->i = (int64_t)v;
            }
            advance(L, fe ? fe : e);
            continue;
        }
        if (isname0(c)) {
            size_t e = p;
            while (e < L->n && isname(s[e])) e++;
            jtoken *t = push(L, TK_NAME, L->line);
            if (!t) return -1;
            t->s = nuage__jarena_strdup(L->arena, s + p, e - p);
            if (!t->s) { L->rc = NUAGE_E_NOMEM; return -1; }
            t->len = e - p;
            advance(L, e);
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t e = p + 1;
            while (e < L->n && s[e] != c) e += (s[e] == '\\' && e + 1 < L->n) ? 2 : 1;
            if (e >= L->n) return lfail(L, L->line, "unterminated string literal", NULL);
            jtoken *t = push(L, TK_STRING, L->line);
            if (!t) return -1;
            if (unescape(L, s + p + 1, e - p - 1, t) < 0) return -1;
            advance(L, e + 1);
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
            size_t ol = strlen(OPS[k].s);
            if (p + ol <= L->n && memcmp(s + p, OPS[k].s, ol) == 0) break;
        }
        if (k == sizeof OPS / sizeof OPS[0]) {
            char what[8];
            size_t cl;
            nuage__utf8_dec(s + p, L->n - p, &cl);
            snprintf(what, sizeof what, "%.*s'", (int)cl, s + p);
            return lfail(L, L->line, "unexpected char '", what);
        }
        uint8_t op = OPS[k].op;
        if (op == OP_LBRACE || op == OP_LPAREN || op == OP_LBRACKET) {
            if (L->nbal >= (int)sizeof L->bal) return lfail(L, L->line, "brackets nested too deeply", NULL);
            L->bal[L->nbal++] = op == OP_LBRACE ? '}' : op == OP_LPAREN ? ')' : ']';
        } else if (op == OP_RBRACE || op == OP_RPAREN || op == OP_RBRACKET) {
            char want = op == OP_RBRACE ? '}' : op == OP_RPAREN ? ')' : ']';
            char got[4] = {'\'', want, '\'', 0};
            if (L->nbal == 0) return lfail(L, L->line, "unexpected ", got);
            if (L->bal[--L->nbal] != want) return lfail(L, L->line, "unexpected ", got);
        }
        jtoken *t = push(L, TK_OP, L->line);
        if (!t) return -1;
        t->op = op;
        advance(L, p + strlen(OPS[k].s));
    }
}

/* `{%` [sign] \s* NAME \s* then a block end; returns the end offset and the
 * close sign or 0 when the text at p is not that tag. */
static size_t match_named_tag(const lexer *L, size_t p, const char *name, char *sign_open,
                              bool trim_suffix) {
    const char *s = L->src;
    if (p + 2 > L->n || s[p] != '{' || s[p + 1] != '%') return 0;
    size_t i = p + 2;
    *sign_open = 0;
    if (i < L->n && (s[i] == '-' || s[i] == '+')) *sign_open = s[i++];
    i = skip_ws(L, i);
    size_t nl = strlen(name);
    if (i + nl > L->n || memcmp(s + i, name, nl) != 0) return 0;
    i = skip_ws(L, i + nl);
    if (i + 3 <= L->n && s[i] == '-' && s[i + 1] == '%' && s[i + 2] == '}') return skip_ws(L, i + 3);
    if (trim_suffix && i + 3 <= L->n && s[i] == '+' && s[i + 1] == '%' && s[i + 2] == '}') return i + 3;
    if (i + 2 <= L->n && s[i] == '%' && s[i + 1] == '}') {
        i += 2;
        if (trim_suffix && i < L->n && s[i] == '\n') i++;
        return i;
    }
    return 0;
}

int nuage__jlex(jarena *a, const char *src, size_t n, jtoken **toks, size_t *ntoks,
                char *err, size_t errlen) {
    lexer L = {.arena = a, .src = src, .n = n, .line = 1, .err = err, .errlen = errlen};
    bool line_starting = true;
    while (L.pos < n && L.rc == 0) {
        size_t i = L.pos;
        while (i + 1 < n && !(src[i] == '{' && (src[i + 1] == '{' || src[i + 1] == '%' || src[i + 1] == '#')))
            i++;
        if (i + 1 >= n) {   /* no more tags */
            emit_data(&L, L.pos, n, 0, false, false);
            break;
        }
        char kind = src[i + 1];
        char sign = (i + 2 < n && (src[i + 2] == '-' || src[i + 2] == '+')) ? src[i + 2] : 0;
        if (kind == '%') {
            char rs;
            size_t rend = match_named_tag(&L, i, "raw", &rs, false);
            if (rend) {
                if (emit_data(&L, L.pos, i, sign, true, line_starting) < 0) break;
                int open_line = L.line;
                bool raw_ls = src[rend - 1] == '\n';
                advance(&L, rend);
                /* find {% endraw %} */
                size_t q = L.pos, eend = 0;
                char es = 0;
                for (; q + 1 < n; q++) {
                    if (src[q] == '{' && src[q + 1] == '%' &&
                        (eend = match_named_tag(&L, q, "endraw", &es, true)) != 0)
                        break;
                }
                if (!eend) { lfail(&L, open_line, "missing end of raw directive", NULL); break; }
                if (emit_data(&L, L.pos, q, es, true, raw_ls) < 0) break;
                line_starting = src[eend - 1] == '\n';
                advance(&L, eend);
                continue;
            }
        }
        if (emit_data(&L, L.pos, i, sign, kind != '{', line_starting) < 0) break;
        int open_line = L.line;
        advance(&L, i + 2 + (sign ? 1 : 0));
        if (kind == '#') {
            size_t q = L.pos, end = 0;
            for (; q + 1 < n; q++) {
                if (src[q] == '#' && src[q + 1] == '}') {
                    if (q > L.pos && src[q - 1] == '-') end = skip_ws(&L, q + 2);
                    else if (q > L.pos && src[q - 1] == '+') end = q + 2;
                    else { end = q + 2; if (end < n && src[end] == '\n') end++; }
                    break;
                }
            }
            if (!end) { lfail(&L, open_line, "missing end of comment tag", NULL); break; }
            line_starting = src[end - 1] == '\n';
            advance(&L, end);
            continue;
        }
        if (!push(&L, kind == '%' ? TK_BBEGIN : TK_VBEGIN, open_line)) break;
        if (lex_tag(&L, kind == '%', open_line, &line_starting) < 0) break;
    }
    if (L.rc == 0 && !push(&L, TK_EOF, L.line)) { /* rc set */ }
    if (L.rc != 0) {
        free(L.toks);
        if (L.rc == NUAGE_E_NOMEM && err && errlen) snprintf(err, errlen, "out of memory");
        return L.rc;
    }
    /* move tokens into the arena so the template owns them */
    jtoken *t = nuage__jarena_alloc(a, L.ntoks * sizeof *t);
    if (!t) { free(L.toks); return NUAGE_E_NOMEM; }
    memcpy(t, L.toks, L.ntoks * sizeof *t);
    free(L.toks);
    *toks = t;
    *ntoks = L.ntoks;
    return 0;
}
