/*
 * test_constrain_regex.c - the regex front end (ncg_regex) against PCRE2,
 * and the JSON Schema formats (ncg_json_format) against examples.
 *
 * Reference: PCRE2 in UTF mode with ECMAScript-like options (ALT_BSUX for
 * \uXXXX / \u{...}, DOLLAR_ENDONLY, ALLOW_EMPTY_CLASS), after rewriting
 * the few constructs whose meaning differs ('.', \s, \S, \v become explicit
 * ECMA-262 classes). For every pattern (a built-in list that always runs,
 * plus every "pattern" and "patternProperties" key of the shared JSON
 * Schema cases when ../shared is present) and many strings - random ones
 * over the pattern's own characters, positive examples grown one code
 * point at a time under PCRE2's partial matching, and one-edit mutations
 * of those - the grammar must accept a string iff PCRE2 matches it:
 * whole-string for anchored=true, a search for anchored=false. In JSON-
 * string mode the grammar must accept every JSON spelling of the string
 * (minimal escaping, all-\u upper case, a random mix with surrogate pairs)
 * iff PCRE2 matches, and never a raw '"' or control character.
 *
 * Formats: valid and invalid values per format (JSON Schema Test Suite
 * style), each in several JSON spellings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include "constrain/cg_internal.h"
#include "constrain/grammar.h"
#include "nuage/nuage.h"

/* Sanitizer builds run a sample (the grammars are the same; ASan makes
 * the engine's DFA construction several times slower). */
#if defined(__SANITIZE_ADDRESS__)
#define ROUNDS_SCALE 3
#else
#define ROUNDS_SCALE 1
#endif

/* ---- engine glue: compile an expression, test strings ------------------- */

#ifdef NCG_TEST_MOCK
bool mock_accepts(ncg_builder *b, ncg_expr e, const char *s, size_t n);
typedef struct { ncg_builder *b; ncg_expr e; } cg;
static int cg_regex(cg *c, const char *re, size_t len, bool anchored, bool json, nuage_cg_error *err) {
    c->b = ncg_builder_new();
    return ncg_regex(c->b, re, len, anchored, json, &c->e, err);
}
static int cg_format(cg *c, const char *fmt, nuage_cg_error *err) {
    c->b = ncg_builder_new();
    return ncg_json_format(c->b, fmt, &c->e, err);
}
static bool cg_accepts(cg *c, const char *s, size_t n) {
    if (n > 63) return true;   /* the mock cannot say; callers skip */
    return mock_accepts(c->b, c->e, s, n);
}
static bool cg_can(size_t n) { return n <= 63; }
static void cg_free(cg *c) { ncg_builder_free(c->b); c->b = NULL; }
#else
/* The real engine: a token table of the 256 single bytes and an EOS, the
 * expression compiled as one rule, one matcher per grammar that accepts
 * the string's bytes and rolls back. */
static nuage_cg_tokens *T;

static int setup_table(void **st) {
    (void)st;
    static char bytes[256];
    const char *p[257];
    size_t l[257];
    uint8_t k[257];
    for (int i = 0; i < 256; i++) { bytes[i] = (char)i; p[i] = bytes + i; l[i] = 1; k[i] = 0; }
    p[256] = "</s>"; l[256] = 4; k[256] = 2;
    return ncg_tokens_from_strings(p, l, k, 257, &T);
}
static int free_table(void **st) { (void)st; nuage_cg_tokens_free(T); return 0; }

typedef struct { nuage_grammar *g; nuage_matcher *m; } cg;

static int cg_finish(cg *c, ncg_builder *b, int rc, ncg_expr e, nuage_cg_error *err) {
    if (rc == 0) {
        ncg_rule r = ncg_rule_new(b, "root");
        rc = ncg_rule_set(b, r, e);
        if (rc == 0) rc = ncg_builder_finish(b, r, T, &c->g, err);
        if (rc == 0) rc = nuage_matcher_new(c->g, &c->m);
    }
    ncg_builder_free(b);
    return rc;
}
static int cg_regex(cg *c, const char *re, size_t len, bool anchored, bool json, nuage_cg_error *err) {
    ncg_builder *b = ncg_builder_new();
    ncg_expr e = -1;
    int rc = ncg_regex(b, re, len, anchored, json, &e, err);
    return cg_finish(c, b, rc, e, err);
}
static int cg_format(cg *c, const char *fmt, nuage_cg_error *err) {
    ncg_builder *b = ncg_builder_new();
    ncg_expr e = -1;
    int rc = ncg_json_format(b, fmt, &e, err);
    return cg_finish(c, b, rc, e, err);
}
static bool cg_accepts(cg *c, const char *s, size_t n) {
    if (nuage_matcher_accept_bytes(c->m, s, n)) return false;
    bool ok = nuage_matcher_is_accepting(c->m);
    assert_int_equal(nuage_matcher_rollback(c->m, 1), 0);
    return ok;
}
static bool cg_can(size_t n) { (void)n; return true; }
static void cg_free(cg *c) {
    nuage_matcher_free(c->m);
    nuage_grammar_free(c->g);
    c->m = NULL;
    c->g = NULL;
}
#endif

/* ---- UTF-8 and JSON spelling -------------------------------------------- */

typedef struct { char *s; size_t n, cap; } buf;

static void bput(buf *b, const void *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void bprintf(buf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    bput(b, tmp, (size_t)k);
}

static size_t enc_utf8(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12); o[1] = (char)(0x80 | ((c >> 6) & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Decode valid UTF-8 into code points (n <= cap); returns the count. */
static size_t dec_utf8(const char *s, size_t n, uint32_t *cp, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap;) {
        unsigned char c = (unsigned char)s[i];
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        uint32_t v = len == 1 ? c : c & (0x3Fu >> (len - 1));
        for (int j = 1; j < len && i + (size_t)j < n; j++) v = (v << 6) | ((unsigned char)s[i + (size_t)j] & 0x3F);
        cp[k++] = v;
        i += (size_t)len;
    }
    return k;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return n ? (uint32_t)(rng_state % n) : 0;
}

/* JSON spelling of code points: mode 0 minimal, 1 every char \u upper,
 * 2 random mix. */
static void json_spell(buf *o, const uint32_t *cp, size_t n, int mode) {
    o->n = 0;
    bput(o, "", 0);
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp[i];
        int how = mode == 0 ? 0 : mode == 1 ? 2 : (int)rnd(4);
        const char *sh = NULL;
        switch (c) {
        case '"': sh = "\\\""; break; case '\\': sh = "\\\\"; break; case '\b': sh = "\\b"; break;
        case '\f': sh = "\\f"; break; case '\n': sh = "\\n"; break; case '\r': sh = "\\r"; break;
        case '\t': sh = "\\t"; break; case '/': if (how == 1) sh = "\\/"; break;
        default: break;
        }
        bool must = c == '"' || c == '\\' || c < 0x20;
        if (how == 0 || how == 1) {
            if (sh && (how == 1 || must)) { bput(o, sh, strlen(sh)); continue; }
            if (!must) { char u[4]; bput(o, u, enc_utf8(c, u)); continue; }
        }
        const char *fmt = (how == 3) ? "\\u%04x" : "\\u%04X";
        if (c >= 0x10000) {
            uint32_t v = c - 0x10000;
            bprintf(o, fmt, 0xD800 + (v >> 10));
            bprintf(o, fmt, 0xDC00 + (v & 0x3FF));
        } else
            bprintf(o, fmt, c);
    }
}

/* ---- the PCRE2 reference ------------------------------------------------ */

#define ECMA_SPACE "\\t\\n\\u{0b}\\f\\r \\u{a0}\\u{1680}\\u{2000}-\\u{200a}\\u{2028}\\u{2029}\\u{202f}\\u{205f}\\u{3000}\\u{feff}"
#define ECMA_NONSPACE "\\u{0}-\\u{8}\\u{e}-\\u{1f}\\u{21}-\\u{9f}\\u{a1}-\\u{167f}\\u{1681}-\\u{1fff}\\u{200b}-\\u{2027}" \
    "\\u{202a}-\\u{202e}\\u{2030}-\\u{205e}\\u{2060}-\\u{2fff}\\u{3001}-\\u{d7ff}\\u{e000}-\\u{fefe}\\u{ff00}-\\u{10ffff}"

/* The pattern with '.', \s, \S, \v given their ECMA-262 meaning. */
static void to_pcre(buf *o, const char *re, size_t len) {
    bool cls = false;
    o->n = 0;
    bput(o, "", 0);
    for (size_t i = 0; i < len; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < len) {
            char d = re[++i];
            if (d == 's') bput(o, cls ? ECMA_SPACE : "[" ECMA_SPACE "]", strlen(cls ? ECMA_SPACE : "[" ECMA_SPACE "]"));
            else if (d == 'S') bput(o, cls ? ECMA_NONSPACE : "[" ECMA_NONSPACE "]", strlen(cls ? ECMA_NONSPACE : "[" ECMA_NONSPACE "]"));
            else if (d == 'v') bput(o, "\\u{0b}", 6);
            else { bput(o, "\\", 1); bput(o, &d, 1); }
            continue;
        }
        if (!cls && c == '[') {
            cls = true;
            bput(o, "[", 1);
            if (i + 1 < len && re[i + 1] == '^') { bput(o, "^", 1); i++; }
            continue;
        }
        if (cls && c == ']') { cls = false; bput(o, "]", 1); continue; }
        if (!cls && c == '.') { const char *dot = "[^\\n\\r\\u{2028}\\u{2029}]"; bput(o, dot, strlen(dot)); continue; }
        bput(o, &c, 1);
    }
}

typedef struct { pcre2_code *code; pcre2_match_data *md; bool anchored; } ref;

static bool ref_compile(ref *r, const char *re, size_t len, bool anchored) {
    buf p = {0};
    to_pcre(&p, re, len);
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
    int e;
    PCRE2_SIZE off;
    r->code = pcre2_compile((PCRE2_SPTR)p.s, p.n,
                            PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY | PCRE2_ALLOW_EMPTY_CLASS |
                            PCRE2_NO_AUTO_CAPTURE, &e, &off, cc);
    pcre2_compile_context_free(cc);
    free(p.s);
    r->anchored = anchored;
    if (!r->code) return false;
    r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
    return true;
}

static void ref_free(ref *r) {
    pcre2_match_data_free(r->md);
    pcre2_code_free(r->code);
}

/* 1 match, 0 no match, 2 (partial) the string can still be extended to a
 * match; -1 error (e.g. invalid UTF-8: no match). */
static int ref_match(ref *r, const char *s, size_t n, bool partial) {
    uint32_t opt = r->anchored ? PCRE2_ANCHORED | PCRE2_ENDANCHORED : 0;
    if (partial) opt |= PCRE2_PARTIAL_HARD;
    int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, 0, opt, r->md, NULL);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_PARTIAL) return 2;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* ---- differential check of one pattern ------------------------------------ */

typedef struct { size_t patterns, refused, strings, positives, skipped; } stats;

#define MAXCP 48

/* The grammar (plain or JSON) against the reference for one string. */
static void check_string(cg *plain, cg *json, ref *r, const char *re, const uint32_t *cp, size_t n, stats *st) {
    char s[MAXCP * 4 + 1];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += enc_utf8(cp[i], s + len);
    s[len] = 0;
    int want = ref_match(r, s, len, false);
    if (want < 0) return;
    st->strings++;
    st->positives += want == 1;
    if (plain && cg_can(len)) {
        bool got = cg_accepts(plain, s, len);
        if (got != (want == 1)) fail_msg("pattern /%s/ (anchored=%d) on \"%s\": grammar %d, PCRE2 %d", re, r->anchored, s, got, want);
    }
    if (!json) return;
    buf j = {0};
    for (int mode = 0; mode < 3; mode++) {
        json_spell(&j, cp, n, mode);
        if (!cg_can(j.n)) { st->skipped++; continue; }
        bool got = cg_accepts(json, j.s, j.n);
        if (got != (want == 1)) fail_msg("pattern /%s/ (json, anchored=%d) on JSON \"%s\": grammar %d, PCRE2 %d", re, r->anchored, j.s, got, want);
    }
    /* raw '"' or a control character is never a JSON string body */
    bool bad = false, bs = false;
    for (size_t i = 0; i < n; i++) { bad |= cp[i] == '"' || cp[i] < 0x20; bs |= cp[i] == '\\'; }
    if (bad && !bs && cg_can(len) && cg_accepts(json, s, len)) fail_msg("pattern /%s/: raw JSON-forbidden characters accepted in \"%s\"", re, s);
    free(j.s);
}

static const uint32_t EXTRA_CP[] = {'a', 'Z', '0', '9', '-', '_', '.', ' ', '\n', '\t', '"', '\\', '/', 0xE9, 0x20AC,
                                    0x1F600, 0x7F, ':', '@', 0x2028, 0xA0, 0x0B, 'x', '1'};

static void check_pattern(const char *re, bool anchored, bool with_plain, stats *st, int rounds) {
    size_t len = strlen(re);
    ref r;
    if (!ref_compile(&r, re, len, anchored)) return;   /* not comparable */
    nuage_cg_error err;
    cg plain = {0}, json = {0};
    int rc1 = with_plain ? cg_regex(&plain, re, len, anchored, false, &err) : 0;
    int rc2 = rc1 ? rc1 : cg_regex(&json, re, len, anchored, true, &err);
    st->patterns++;
    if (rc1 || rc2) {
        /* PCRE2 compiled it: only a feature refusal is acceptable */
        if ((rc1 ? rc1 : rc2) != NUAGE_E_UNSUPPORTED || !err.msg[0])
            fail_msg("pattern /%s/ refused with %d (%s)", re, rc1 ? rc1 : rc2, err.msg);
        st->refused++;
        cg_free(&plain);
        cg_free(&json);
        ref_free(&r);
        return;
    }
    /* alphabet: the pattern's code points and a few extras */
    uint32_t alpha[256];
    size_t na = dec_utf8(re, len, alpha, 200);
    for (size_t i = 0; i < sizeof EXTRA_CP / sizeof EXTRA_CP[0]; i++) alpha[na++] = EXTRA_CP[i];
    uint32_t cp[MAXCP];
    cg *pp = with_plain ? &plain : NULL;
    for (int k = 0; k < rounds; k++) {
        size_t n = rnd(9);
        for (size_t i = 0; i < n; i++) cp[i] = alpha[rnd((uint32_t)na)];
        check_string(pp, &json, &r, re, cp, n, st);
    }
    /* grow positives under partial matching, then mutate them */
    for (int k = 0; k < rounds / 4; k++) {
        size_t n = 0;
        char s[MAXCP * 4 + 1];
        size_t sl = 0;
        bool full = ref_match(&r, "", 0, false) == 1;
        while (n < MAXCP - 2 && !(full && rnd(4) == 0)) {
            bool ext = false;
            for (int t = 0; t < 12 && !ext; t++) {
                uint32_t c = alpha[rnd((uint32_t)na)];
                char u[4];
                size_t ul = enc_utf8(c, u);
                memcpy(s + sl, u, ul);
                int m = ref_match(&r, s, sl + ul, true);
                if (m >= 1) { cp[n++] = c; sl += ul; ext = true; full = ref_match(&r, s, sl, false) == 1; }
            }
            if (!ext) break;
        }
        check_string(pp, &json, &r, re, cp, n, st);
        for (int m = 0; m < 3 && n; m++) {
            uint32_t mut[MAXCP];
            size_t mn = n, at = rnd((uint32_t)n);
            memcpy(mut, cp, n * sizeof *cp);
            switch (rnd(3)) {
            case 0: mut[at] = alpha[rnd((uint32_t)na)]; break;
            case 1: memmove(mut + at, mut + at + 1, (n - at - 1) * sizeof *mut); mn--; break;
            default: memmove(mut + at + 1, mut + at, (n - at) * sizeof *mut); mut[at] = alpha[rnd((uint32_t)na)]; mn++; break;
            }
            check_string(pp, &json, &r, re, mut, mn, st);
        }
    }
    cg_free(&plain);
    cg_free(&json);
    ref_free(&r);
}

/* Patterns covering the syntax; each checked anchored and as a search. */
static const char *const BUILTIN[] = {
    "", "a", "abc", "a|b|", "a*", "a+b?", "(ab)*c", "(?:ab|a)+b", "a{3}", "a{2,}", "a{1,3}b", "(a|bc){0,2}$",
    "[a-c]+", "[^a-c]", "[\\d.]+", "\\w+@\\w+\\.com", "\\D\\W\\S", "\\s+", "[\\s\\S]", "[^\\s]", ".", ".*x.*",
    "^a", "a$", "^$", "^a$|b", "(^a|b$)c?", "x^", "$x", "(a^)?b", "(^|x)y", "y($|z)", "(^a)*b", "(a$)*",
    "(^a|b)+c", "(a|^)+b$", "^(a$|b)*$", "(?:^ab|c$){2}", "^(?:a|$)+", "[]", "[^]", "[^]*a", "a{,2}", "x{a}",
    "]", "}", "\\]\\}\\{", "\\x41\\u0042\\u{43}", "\\uD83D\\uDE00|\\u00e9", "😀+é", "[😀-😂]x", "[\\u0000-\\uffff]",
    "\\t\\n\\r\\f\\v", "\\0", "\\cJ", "[\\b]", "[a-]", "[-a]", "[\\-a]", "[\\d-z]", "a\\.b", "\\/\\-\\_", "(?<n>ab)c",
    "a*?b+?c??d{1,2}?", "((a|b)(c|d)){1,3}", "\\\\\"", "\"", "[\"\\\\]", "[\\x00-\\x1f]", "^[^\"]*$", "\\u2028",
    "^\\d{4}-\\d{2}-\\d{2}$", "^[A-Z]{2}[0-9]{2}(?: ?[0-9A-Z]{4}){2,6}? ?[0-9A-Z]{0,4}$", "(\\w|-){12}",
    "^(([0-9]|[a-f]){2}){4}$", "a{0}", "(a{0})*b", "(|a)+", "(a*)*", "(a|b*)+$", "^(?:\\S+\\s+){0,3}\\S+$",
    /* literal alternations (lowered as tries) */
    "(GET|GETS|POST|PUT|)x", "^(ab|abc|a|b|bc|ab)$", "(é|éa|ü|😀|😀x|\"|\\\\)+", "x(a|b|c|d)*y", "(aa|a|aaa|b)$",
};

/* Refused patterns and the code expected. */
static const struct { const char *re; int rc; } REFUSED[] = {
    {"(?=a)", NUAGE_E_UNSUPPORTED}, {"(?!a)b", NUAGE_E_UNSUPPORTED}, {"(?<=a)b", NUAGE_E_UNSUPPORTED},
    {"(?<!a)b", NUAGE_E_UNSUPPORTED}, {"(a)\\1", NUAGE_E_UNSUPPORTED}, {"(?<n>a)\\k<n>", NUAGE_E_UNSUPPORTED},
    {"\\bword\\b", NUAGE_E_UNSUPPORTED}, {"\\B", NUAGE_E_UNSUPPORTED}, {"\\p{L}", NUAGE_E_UNSUPPORTED},
    {"(?i)a", NUAGE_E_UNSUPPORTED}, {"(a{1000}){1000}", NUAGE_E_UNSUPPORTED}, {"(^a){5000}", NUAGE_E_UNSUPPORTED},
    {"a{2,1}", NUAGE_E_INVAL}, {"*a", NUAGE_E_INVAL}, {"a**", NUAGE_E_INVAL}, {"(a", NUAGE_E_INVAL},
    {"a)", NUAGE_E_INVAL}, {"[a", NUAGE_E_INVAL}, {"[z-a]", NUAGE_E_INVAL}, {"\\", NUAGE_E_INVAL},
    {"\\x4", NUAGE_E_INVAL}, {"\\u12", NUAGE_E_INVAL}, {"\\q", NUAGE_E_INVAL}, {"^*", NUAGE_E_INVAL},
    {"a{1}{2}", NUAGE_E_INVAL}, {"\xff", NUAGE_E_INVAL}, {"(?<>a)", NUAGE_E_INVAL}, {"\\u{110000}", NUAGE_E_INVAL},
};

static void test_refusals(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof REFUSED / sizeof REFUSED[0]; i++)
        for (int json = 0; json < 2; json++) {
            nuage_cg_error err = {{0}, {0}};
            cg c = {0};
            int rc = cg_regex(&c, REFUSED[i].re, strlen(REFUSED[i].re), json, json, &err);
            if (rc != REFUSED[i].rc) fail_msg("/%s/: %d, expected %d (%s)", REFUSED[i].re, rc, REFUSED[i].rc, err.msg);
            assert_true(err.msg[0] != 0);
            cg_free(&c);
        }
    /* the message names the feature */
    nuage_cg_error err;
    cg c = {0};
    assert_int_equal(cg_regex(&c, "x(?=y)", 6, true, false, &err), NUAGE_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "lookahead"));
    cg_free(&c);
    assert_int_equal(cg_regex(&c, "(x)\\1", 5, true, false, &err), NUAGE_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "backreference"));
    cg_free(&c);
}

static void test_builtin_vs_pcre2(void **state) {
    (void)state;
    stats st = {0};
    for (size_t i = 0; i < sizeof BUILTIN / sizeof BUILTIN[0]; i++)
        for (int anch = 0; anch < 2; anch++) check_pattern(BUILTIN[i], anch, true, &st, 120 / ROUNDS_SCALE);
    print_message("builtin: %zu pattern runs, %zu refused, %zu strings (%zu matching), %zu JSON spellings too long for the checker\n",
                  st.patterns, st.refused, st.strings, st.positives, st.skipped);
    assert_true(st.refused == 0);
    assert_true(st.positives > st.strings / 8);
}

/* Every pattern / patternProperties key in the shared schemas. */
static void collect_patterns(json_t *v, json_t *out) {
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (!strcmp(k, "pattern") && json_is_string(x)) json_object_set_new(out, json_string_value(x), json_true());
            if (!strcmp(k, "patternProperties") && json_is_object(x)) {
                const char *pk;
                json_t *px;
                json_object_foreach(x, pk, px) json_object_set_new(out, pk, json_true());
            }
            collect_patterns(x, out);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) collect_patterns(x, out);
    }
}

static void test_shared_patterns_vs_pcre2(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_path("jsonschema/cases");
    DIR *d = opendir(dir);
    assert_non_null(d);
    json_t *pats = json_object();
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".json")) continue;
        char path[4800];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        json_t *j = json_load_file(path, 0, NULL);
        if (j) collect_patterns(json_object_get(j, "schema"), pats);
        json_decref(j);
    }
    closedir(d);
    stats st = {0};
    const char *k;
    json_t *x;
    size_t i = 0;
    json_object_foreach(pats, k, x) {
        if (i++ % ROUNDS_SCALE) continue;
        check_pattern(k, false, false, &st, 40);   /* JSON Schema: search, JSON string */
        check_pattern(k, true, true, &st, 16);     /* vLLM regex: whole string */
    }
    print_message("shared: %zu distinct patterns, %zu pattern runs, %zu refused, %zu strings (%zu matching)\n",
                  json_object_size(pats), st.patterns, st.refused, st.strings, st.positives);
    assert_true(json_object_size(pats) > 100);
    assert_true(st.refused * 20 < st.patterns);   /* lookaround etc. are rare */
    json_decref(pats);
}

/* ---- formats -------------------------------------------------------------- */

static const struct { const char *fmt; const char *const valid[24]; const char *const invalid[32]; } FORMATS[] = {
    {"date",
     {"1963-06-19", "2020-01-31", "2021-02-28", "2020-02-29", "2000-02-29", "2400-02-29", "0000-02-29", "1996-02-29",
      "2021-04-30", "2021-12-31", "9999-11-30"},
     {"", "06/19/1963", "2013-350", "1998-1-20", "1998-01-1", "1998-13-01", "1998-04-31", "2020-11-31", "2021-02-29",
      "1900-02-29", "2100-02-29", "2020-02-30", "1963-06-1\xe0\xa7\xaa", "1963-06-19T08:30:06Z", "20200101",
      "2020-00-10", "2020-01-00", "2020-01-32", " 2020-01-01", "1963-06-19 "}},
    {"time",
     {"08:30:06Z", "08:30:06.283185Z", "08:30:06+00:20", "08:30:06-08:00", "08:30:06z", "23:59:60Z",
      "23:59:60+00:00", "15:59:60-08:00", "01:29:60+01:30", "05:29:60+05:30", "05:44:60+05:45", "23:20:50.52Z", "12:00:00.5-23:59",
      "00:59:60+01:00"},
     {"", "08:30:06", "8:30:06Z", "08:3:06Z", "24:00:00Z", "08:60:00Z", "08:30:61Z", "22:59:60Z", "23:58:60Z",
      "23:59:60+01:00", "23:59:60-00:01", "08:30:06 PST", "01:01:01,1111", "08:30:06-24:00", "08:30:06+00:60",
      "08:30:06.Z", "08:30:06+0800", "08:30:06Z ", "12:00:00.52", "1\xd9\xa2:00:00Z", "00:59:60+00:59"}},
    {"date-time",
     {"1963-06-19T08:30:06.283185Z", "1963-06-19T08:30:06Z", "1937-01-01T12:00:27.87+00:20", "1990-12-31T15:59:50.123-08:00",
      "1998-12-31T23:59:60Z", "1998-12-31T15:59:60.123-08:00", "1963-06-19t08:30:06.283185z", "2020-02-29T00:00:00Z"},
     {"", "1990-02-31T15:59:59.123-08:00", "1990-12-31T15:59:59-24:00", "1998-12-31T23:58:60Z", "1998-12-31T22:59:60Z",
      "06/19/1963 08:30:06 PST", "2013-350T01:01:01", "1963-06-19 08:30:06Z", "1963-06-19T08:30:06.28123+01:00Z",
      "1963-06-19", "2021-02-29T00:00:00Z", "1963-06-19T08:30:06"}},
    {"duration",
     {"P4DT12H30M5S", "P4Y", "PT0S", "P0D", "P1M", "PT1M", "PT36H", "P1DT12H", "P2W", "P1Y2M", "P1Y2M3D",
      "PT1H2M3S", "PT2M3S", "P10Y10M10DT10H10M10S"},
     {"", "PT1D", "4DT12H30M5S", "P", "P1YT", "PT", "P2D1Y", "P1D2H", "P2S", "P1Y2W", "P1", "P1.5Y", "p1d", "P1Y2D",
      "PT1H2S", "P\xe0\xa7\xa8Y", "P1W2D", " P1D"}},
    {"email",
     {"joe.bloggs@example.com", "te~st@example.com", "~test@example.com", "test~@example.com",
      "\"joe bloggs\"@example.com", "\"joe..bloggs\"@example.com", "joe.bloggs@[127.0.0.1]", "joe.bloggs@[IPv6:::1]",
      "te.s.t@example.com", "a@b", "x+tag@sub.example.org", "\"a\\\"b\"@example.com"},
     {"", "2962", ".test@example.com", "test.@example.com", "te..st@example.com", "joe.bloggs@invalid=domain.com",
      "joe.bloggs@[127.0.0.300]", "@example.com", "joe@", "a b@example.com", "joe@-example.com", "joe@example-.com",
      "a@@b", "jo\xc3\xa9@example.com", "joe@example.com."}},
    {"hostname",
     {"www.example.com", "hostname", "host-name", "h0stn4me", "1host", "hostnam3", "xn--4gbwdl.xn--wgbh1c",
      "a.b.c.d.e.f.g.h", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"},
     {"", "-a-host-name-that-starts-with--", "not_a_valid_host_name", "-hostname", "hostname-", "_hostname",
      "hostname_", "host_name", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", ".", "a..b",
      ".example.com", "example.com.", "ex ample.com", "h\xc3\xa9llo.com"}},
    {"ipv4",
     {"192.168.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.4", "10.0.0.10"},
     {"", "127.0.0.0.1", "256.256.256.256", "127.0", "0x7f000001", "2130706433", "087.10.0.1", "1\xe0\xa7\xa8" "7.0.0.1",
      "192.168.1.0/24", "1.2.3.04", "1.2.3.", "01.2.3.4"}},
    {"ipv6",
     {"::1", "::abef", "::", "1:2:3:4:5:6:7:8", "100:100:0:0:0:0:0:1", "::42:ff:1", "d6::", "1::2:192.168.255.1",
      "::ffff:192.168.0.1", "1:2:3:4:5:6:1.2.3.4", "ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "fe80::1", "1::8"},
     {"", "12345::", "1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1", "::laptop", ":2:3:4:5:6:7:8", "1:2:3:4:5:6:7:", "1::d6::42",
      "1::2:192.168.256.1", "1:2:3:4:5:::8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:1.2.3.4", "1:2:3:4:5:6:7", "fe80::a%eth1",
      " ::1", "::1 ", "1:2:3:4:5:6:7:8:1.2.3.4", ":::", "1:::2", "::1.2.3"}},
    {"uri",
     {"http://foo.bar/?baz=qux#quux", "http://foo.com/blah_(wiki)#cite-1", "http://foo.bar/?q=Test%20URL-encoded%20stuff",
      "http://xn--nw2a.xn--j6w193g/", "http://-.~_!$&'()*+,;=:%40:80%2f::::::@example.com", "http://223.255.255.254",
      "ftp://ftp.is.co.za/rfc/rfc1808.txt", "http://www.ietf.org/rfc/rfc2396.txt", "ldap://[2001:db8::7]/c=GB?objectClass?one",
      "mailto:John.Doe@example.com", "news:comp.infosystems.www.servers.unix", "tel:+1-816-555-1212",
      "urn:oasis:names:specification:docbook:dtd:xml:4.1.2", "http://[::1]:8080/", "a:", "file:///etc/passwd"},
     {"", "//foo.bar/?baz=qux#quux", "/abc", "\\\\WINDOWS\\fileshare", "abc", "http:// shouldfail.com", ":// should fail",
      "bar,baz:foo", "http://example.com/\xc3\xa9", "1http://x", "http://a b", "http://x/%zz", "http://[::1", "http://x#a#b"}},
    {"uuid",
     {"2EB8AA08-AA98-11EA-B4AA-73B441D16380", "2eb8aa08-aa98-11ea-b4aa-73b441d16380", "2eb8aa08-AA98-11ea-B4Aa-73B441D16380",
      "00000000-0000-0000-0000-000000000000", "98d80576-482e-427f-8434-7f86890ab222"},
     {"", "2eb8aa08-aa98-11ea-b4aa-73b441d1638", "2eb8aa08-aa98-11ea-b7aa-73b441d16380F", "2eb8aa08-aa98-11ea-b4ga-73b441d16380",
      "2eb8aa08aa9811eab4aa73b441d16380", "2eb8aa08-aa98-11eab4aa73b441d16380", "2eb8aa08-aa98-11ea-b4aa73b441d16380",
      "2eb8-aa08-aa98-11ea-b4aa73b44-1d16380", "{2eb8aa08-aa98-11ea-b4aa-73b441d16380}"}},
};

static void check_format_value(cg *c, const char *fmt, const char *v, bool want) {
    uint32_t cp[256];
    size_t n = dec_utf8(v, strlen(v), cp, 256);
    buf j = {0};
    for (int mode = 0; mode < 4; mode++) {
        json_spell(&j, cp, n, mode > 2 ? 2 : mode);
        if (!cg_can(j.n)) continue;
        bool got = cg_accepts(c, j.s, j.n);
        if (got != want) fail_msg("format %s: \"%s\" (JSON \"%s\"): grammar %d, expected %d", fmt, v, j.s, got, want);
    }
    free(j.s);
}

static void test_formats(void **state) {
    (void)state;
    size_t checked = 0;
    for (size_t f = 0; f < sizeof FORMATS / sizeof FORMATS[0]; f++) {
        nuage_cg_error err;
        cg c = {0};
        int rc = cg_format(&c, FORMATS[f].fmt, &err);
        if (rc) fail_msg("format %s: %d (%s)", FORMATS[f].fmt, rc, err.msg);
        for (size_t i = 0; i < 24 && FORMATS[f].valid[i]; i++, checked++) check_format_value(&c, FORMATS[f].fmt, FORMATS[f].valid[i], true);
        for (size_t i = 0; i < 32 && FORMATS[f].invalid[i]; i++, checked++) check_format_value(&c, FORMATS[f].fmt, FORMATS[f].invalid[i], false);
        cg_free(&c);
    }
    assert_true(checked > 200);
    nuage_cg_error err;
    cg c = {0};
    assert_int_equal(cg_format(&c, "idn-email", &err), NUAGE_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "idn-email"));
    cg_free(&c);
}

/* Every leap second the time format accepts converts to 23:59:60 UTC, and
 * every such local time / quarter-hour offset pair is accepted (sampled). */
static void test_time_leap_seconds(void **state) {
    (void)state;
    nuage_cg_error err;
    cg c = {0};
    assert_int_equal(cg_format(&c, "time", &err), 0);
    for (int k = 0; k < 400; k++) {
        int hh = (int)rnd(24), mm = (int)rnd(60), oh = (int)rnd(24), om = (int)rnd(60), sign = rnd(2) ? 1 : -1;
        if (k % 2 == 0) om = 15 * (int)rnd(4);
        if (k % 4 == 0) {   /* make it a real leap second */
            int local = (23 * 60 + 59 + sign * (oh * 60 + om) + 2880) % 1440;
            hh = local / 60;
            mm = local % 60;
        }
        int utc = ((hh * 60 + mm - sign * (oh * 60 + om)) % 1440 + 1440) % 1440;
        char v[40];
        snprintf(v, sizeof v, "%02d:%02d:60%c%02d:%02d", hh, mm, sign > 0 ? '+' : '-', oh, om);
        /* exact for quarter-hour offsets; others refused (format.c) */
        check_format_value(&c, "time", v, utc == 23 * 60 + 59 && om % 15 == 0);
    }
    cg_free(&c);
}

#ifndef NCG_TEST_MOCK
/* The public entry point: whole-output match, plain UTF-8. */
static void test_public_api(void **state) {
    (void)state;
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    const char *re = "(yes|no)-\\d{2}\\.\\w+é";
    assert_int_equal(nuage_grammar_from_regex(T, re, strlen(re), &g, &err), 0);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    assert_int_equal(nuage_matcher_accept_bytes(m, "yes-42.", 7), 0);
    assert_false(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_accept_bytes(m, "ab\xc3", 3), 0);   /* half a code point */
    assert_false(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_accept_bytes(m, "\xa9", 1), 0);
    assert_true(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_accept_bytes(m, "\n", 1), NUAGE_E_INVAL);
    nuage_matcher_free(m);
    nuage_grammar_free(g);
    /* refusals come back through the API with the message */
    assert_int_equal(nuage_grammar_from_regex(T, "a(?=b)", 6, &g, &err), NUAGE_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "lookahead"));
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_builtin_vs_pcre2),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_time_leap_seconds),
        cmocka_unit_test(test_shared_patterns_vs_pcre2),
#ifndef NCG_TEST_MOCK
        cmocka_unit_test(test_public_api),
#endif
    };
#ifdef NCG_TEST_MOCK
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
#else
    return nuage_test_exit(cmocka_run_group_tests(tests, setup_table, free_table));
#endif
}
