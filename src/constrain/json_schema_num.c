/*
 * json_schema_num.c - JSON numbers within bounds, as grammar expressions.
 *
 * Design. A bound (minimum, exclusiveMaximum, ...) is kept as an exact
 * decimal (js_dec: digits and a point position), taken from the schema's
 * text value: integers exactly, reals by their shortest round-trip decimal
 * (what the schema author wrote for any bound up to 17 digits). The
 * number x is split by sign: x >= 0 is compared directly, x < 0 as "-"
 * followed by y = -x with the bounds negated and swapped (so "-0" is the
 * value 0 and is allowed exactly when 0 is in range).
 *
 * A non-negative decimal "I(.F)?" (I without leading zeros) is compared
 * with a bound digit by digit: the length of I decides most of it (longer
 * is larger); at equal length a digit automaton walks the aligned digits
 * of x and of each bound with a "still equal to the bound" flag per bound
 * (the classic digit-DP), so both bounds are handled in one pass with no
 * intersection. Once a flag drops the rest is free ([0-9]*). Fraction
 * digits past the end of a bound compare against zeros, which ends the
 * recursion (x's rest must be zeros, or must contain a non-zero digit).
 *
 * Exponents: a number with an exponent can have arbitrarily many leading
 * zeros compensating its exponent ("0.000001e6"), which no regular
 * language can bound exactly. So a bounded number accepts the plain
 * decimal form, the normalized scientific form d.ddd[eE][+-]ddd with d in
 * 1-9 (Python's and C's %e output: comparing such a number is comparing
 * its exponent, then its mantissa, both regular), and zero with any
 * exponent. Unbounded numbers accept the whole JSON number syntax. The
 * accepted strings are always exactly valid; only non-normalized exponent
 * spellings of bounded numbers are not produced.
 *
 * Integers (type "integer") are plain -?(0|[1-9][0-9]*), plus ".0+" from
 * draft 6 on (1.0 is an integer there). multipleOf k is a mod-k automaton
 * written as k right-linear rules.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/json_schema_internal.h"

/* ---- decimals ---------------------------------------------------------- */

/* Parse JSON number text into a js_dec. 0, or -1 (bad text / too many
 * significant digits). */
static int dec_parse(const char *s, js_dec *out) {
    memset(out, 0, sizeof *out);
    const char *p = s;
    if (*p == '-') { out->neg = true; p++; }
    int ip = 0;          /* digits before the point, counting leading zeros away */
    bool seen_point = false, any = false;
    char buf[JS_MAX_DIGITS * 2];
    int nb = 0;
    int skipped_lead = 0; /* leading zeros after the point (before first digit) */
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            any = true;
            if (nb == 0 && *p == '0') {            /* leading zero */
                if (seen_point) skipped_lead++;
                continue;
            }
            if (nb >= (int)sizeof buf) return -1;
            buf[nb++] = *p;
            if (!seen_point) ip++;
        } else if (*p == '.' && !seen_point) {
            seen_point = true;
        } else break;
    }
    if (!any) return -1;
    long e = 0;
    if (*p == 'e' || *p == 'E') {
        char *end;
        e = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end) return -1;
        if (e > 100000 || e < -100000) return -1;
    } else if (*p) return -1;
    while (nb > 0 && buf[nb - 1] == '0') nb--;
    if (nb == 0) { out->neg = false; out->nd = 0; out->ip = 0; return 0; }
    if (nb > JS_MAX_DIGITS) return -1;
    memcpy(out->d, buf, (size_t)nb);
    out->nd = nb;
    /* integer digits counted in ip; if none, the point position is minus
     * the leading fraction zeros */
    out->ip = (ip > 0 ? ip : -skipped_lead) + (int)e;
    return 0;
}

int js_dec_from_json(const json_t *v, js_dec *out) {
    char buf[64];
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return dec_parse(buf, out);
    }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        if (!isfinite(x)) return -1;
        for (int prec = 0; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*e", prec, x);
            if (strtod(buf, NULL) == x) break;
        }
        return dec_parse(buf, out);
    }
    return -1;
}

static int dec_cmp_abs(const js_dec *a, const js_dec *b) {
    if (a->nd == 0 || b->nd == 0) return (a->nd != 0) - (b->nd != 0);
    if (a->ip != b->ip) return a->ip < b->ip ? -1 : 1;
    int n = a->nd > b->nd ? a->nd : b->nd;
    for (int i = 0; i < n; i++) {
        char x = i < a->nd ? a->d[i] : '0', y = i < b->nd ? b->d[i] : '0';
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

int js_dec_cmp(const js_dec *a, const js_dec *b) {
    bool an = a->neg && a->nd, bn = b->neg && b->nd;
    if (an != bn) return an ? -1 : 1;
    int r = dec_cmp_abs(a, b);
    return an ? -r : r;
}

bool js_dec_is_int(const js_dec *a) { return a->nd == 0 || a->ip >= a->nd; }

static bool dec_is_zero(const js_dec *a) { return a->nd == 0; }

/* ---- expression helpers ------------------------------------------------ */

static ncg_expr rng(js_ctx *c, int lo, int hi) {
    return ncg_byte_range(c->b, (uint8_t)('0' + lo), (uint8_t)('0' + hi));
}
static ncg_expr digits(js_ctx *c, uint32_t min, uint32_t max) {
    return ncg_repeat(c->b, rng(c, 0, 9), min, max);
}
/* "." [0-9]+ */
static ncg_expr frac_any(js_ctx *c) { return ncg_seq2(c->b, ncg_str(c->b, "."), digits(c, 1, NCG_INF)); }

/* ---- the aligned digit automaton --------------------------------------- */

/* Comparison of a non-negative x whose integer part has exactly L digits
 * against non-negative bounds lo / hi (NULL = none). */
typedef struct cmpspec {
    const js_bound *lo, *hi;
    int L;
    int first_min;    /* smallest first digit (1 when L > 1 or a mantissa) */
    bool allow_frac;
} cmpspec;

/* bound digit at aligned position pos (0 = most significant integer digit
 * of an L-digit integer part); exhausted: this and all later digits 0. */
static int bdig(const js_dec *v, int L, int pos) {
    int k = v->ip - L + pos;
    return (k >= 0 && k < v->nd) ? v->d[k] - '0' : 0;
}
static bool bexh(const js_dec *v, int L, int pos) { return v->ip - L + pos >= v->nd; }

static ncg_expr cmp_at(js_ctx *c, const cmpspec *sp, int pos, bool infrac, bool tlo, bool thi);

/* Free remainder from state (pos, infrac). */
static ncg_expr free_tail(js_ctx *c, const cmpspec *sp, int pos, bool infrac) {
    ncg_builder *b = c->b;
    if (infrac) return digits(c, pos > sp->L ? 0 : 1, NCG_INF);
    ncg_expr ip;
    if (pos < sp->L) {
        ncg_expr first = pos == 0 ? rng(c, sp->first_min, 9) : rng(c, 0, 9);
        ip = ncg_seq2(b, first, digits(c, (uint32_t)(sp->L - pos - 1), (uint32_t)(sp->L - pos - 1)));
    } else ip = ncg_empty(b);
    return sp->allow_frac ? ncg_seq2(b, ip, ncg_opt(b, frac_any(c))) : ip;
}

/* May x end at this state (x's remaining digits all zero)? */
static bool end_ok(const cmpspec *sp, int pos, bool tlo, bool thi) {
    if (tlo && (!bexh(&sp->lo->v, sp->L, pos) || sp->lo->excl)) return false;
    if (thi && sp->hi->excl && bexh(&sp->hi->v, sp->L, pos)) return false;
    return true;
}

static ncg_expr cmp_digit_step(js_ctx *c, const cmpspec *sp, int pos, bool infrac, bool tlo, bool thi) {
    ncg_builder *b = c->b;
    int amin = (!infrac && pos == 0) ? sp->first_min : 0;
    int lod = tlo ? bdig(&sp->lo->v, sp->L, pos) : 0;
    int hid = thi ? bdig(&sp->hi->v, sp->L, pos) : 9;
    ncg_expr alts[3];
    int na = 0;
    int d = amin > lod ? amin : lod;
    while (d <= hid) {
        bool nlo = tlo && d == lod, nhi = thi && d == hid;
        int e = d;
        while (e + 1 <= hid && (tlo && e + 1 == lod) == nlo && (thi && e + 1 == hid) == nhi) e++;
        ncg_expr next = infrac ? cmp_at(c, sp, pos + 1, true, nlo, nhi)
                               : cmp_at(c, sp, pos + 1, false, nlo, nhi);
        if (na < 3) alts[na++] = ncg_seq2(b, rng(c, d, e), next);
        d = e + 1;
    }
    return ncg_alt(b, alts, (size_t)na);
}

/* States: pos < L: next integer digit; pos == L && !infrac: end or ".";
 * infrac: pos - L fraction digits written, next fraction digit or end. */
static ncg_expr cmp_at(js_ctx *c, const cmpspec *sp, int pos, bool infrac, bool tlo, bool thi) {
    ncg_builder *b = c->b;
    if (!tlo && !thi) return free_tail(c, sp, pos, infrac);
    if (pos < sp->L) return cmp_digit_step(c, sp, pos, false, tlo, thi);
    if (!infrac) {
        ncg_expr e = end_ok(sp, pos, tlo, thi) ? ncg_empty(b) : ncg_nothing(b);
        if (!sp->allow_frac) return e;
        return ncg_alt2(b, e, ncg_seq2(b, ncg_str(b, "."), cmp_at(c, sp, pos, true, tlo, thi)));
    }
    /* in the fraction: handle exhausted bounds, which would recurse forever */
    bool lo_exh = tlo && bexh(&sp->lo->v, sp->L, pos);
    bool hi_exh = thi && bexh(&sp->hi->v, sp->L, pos);
    bool first = pos == sp->L;   /* no fraction digit yet: one is required */
    if (lo_exh && !sp->lo->excl) return cmp_at(c, sp, pos, true, false, thi);
    if (hi_exh) {
        /* x's rest <= 0: zeros only; with tlo (lo's rest >= 0) also rest >= lo's rest */
        if (sp->hi->excl) return ncg_nothing(b);
        if (tlo && !(lo_exh && !sp->lo->excl)) return ncg_nothing(b);
        return ncg_repeat(b, ncg_str(b, "0"), first ? 1 : 0, NCG_INF);
    }
    if (lo_exh && !thi) {  /* exclusive, lo's rest is 0: x's rest must be > 0 */
        ncg_expr parts[3] = { digits(c, 0, NCG_INF), rng(c, 1, 9), digits(c, 0, NCG_INF) };
        return ncg_seq(b, parts, 3);
    }
    ncg_expr step = cmp_digit_step(c, sp, pos, true, tlo, thi);
    if (!first && end_ok(sp, pos, tlo, thi)) return ncg_alt2(b, ncg_empty(b), step);
    return step;
}

/* A non-negative plain decimal (integer part without leading zeros, then
 * a fraction when allow_frac) within lo/hi (non-negative bounds or NULL). */
static ncg_expr plain_nonneg(js_ctx *c, const js_bound *lo, const js_bound *hi, bool allow_frac) {
    ncg_builder *b = c->b;
    int Llo = (lo && lo->v.ip > 1) ? lo->v.ip : 1;
    int Lhi = hi ? (hi->v.ip > 1 ? hi->v.ip : 1) : INT32_MAX;
    if (Llo > Lhi) return ncg_nothing(b);
    ncg_expr alts[3];
    int na = 0;
    cmpspec s1 = { lo, (hi && Lhi == Llo) ? hi : NULL, Llo, Llo > 1 ? 1 : 0, allow_frac };
    alts[na++] = cmp_at(c, &s1, 0, false, s1.lo != NULL, s1.hi != NULL);
    if (Lhi > Llo + 1) {
        /* integer parts of Llo+1 .. Lhi-1 digits: anything */
        uint32_t mx = Lhi == INT32_MAX ? NCG_INF : (uint32_t)(Lhi - 2);
        ncg_expr ip = ncg_seq2(b, rng(c, 1, 9), digits(c, (uint32_t)Llo, mx));
        alts[na++] = allow_frac ? ncg_seq2(b, ip, ncg_opt(b, frac_any(c))) : ip;
    }
    if (Lhi != INT32_MAX && Lhi > Llo) {
        cmpspec s2 = { NULL, hi, Lhi, 1, allow_frac };
        alts[na++] = cmp_at(c, &s2, 0, false, false, true);
    }
    return ncg_alt(b, alts, (size_t)na);
}

/* [eE] then an integer exponent in [a, b] (INT32_MIN / INT32_MAX = open),
 * with optional sign and leading zeros. */
static ncg_expr exponent(js_ctx *c, long a, long bnd) {
    ncg_builder *b = c->b;
    if (a > bnd) return ncg_nothing(b);
    ncg_expr zeros = ncg_repeat(b, ncg_str(b, "0"), 0, NCG_INF);
    ncg_expr alts[2];
    int na = 0;
    char buf[32];
    if (bnd >= 0) {   /* e = m >= 0 */
        js_bound lo = { 0 }, hi = { 0 };
        if (a > 0) { lo.set = true; snprintf(buf, sizeof buf, "%ld", a); dec_parse(buf, &lo.v); }
        if (bnd != INT32_MAX) { hi.set = true; snprintf(buf, sizeof buf, "%ld", bnd); dec_parse(buf, &hi.v); }
        ncg_expr m = plain_nonneg(c, lo.set ? &lo : NULL, hi.set ? &hi : NULL, false);
        alts[na++] = ncg_seq(b, (ncg_expr[]){ ncg_opt(b, ncg_str(b, "+")), zeros, m }, 3);
    }
    if (a < 0 || a == 0) {   /* e = -m, m in [max(-bnd,0), -a]; "-0" when 0 is in range */
        js_bound lo = { 0 }, hi = { 0 };
        if (bnd < 0) { lo.set = true; snprintf(buf, sizeof buf, "%ld", -bnd); dec_parse(buf, &lo.v); }
        if (a != INT32_MIN) { hi.set = true; snprintf(buf, sizeof buf, "%ld", -a); dec_parse(buf, &hi.v); }
        ncg_expr m = plain_nonneg(c, lo.set ? &lo : NULL, hi.set ? &hi : NULL, false);
        alts[na++] = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "-"), zeros, m }, 3);
    }
    ncg_expr eE = ncg_byteset(b, (const uint8_t[32]){ [8] = 0x20, [12] = 0x20 }); /* 'E' 0x45, 'e' 0x65 */
    return ncg_seq2(b, eE, ncg_alt(b, alts, (size_t)na));
}

/* Normalized scientific forms of positive y in [lo, hi] (non-negative
 * bounds or NULL; a zero lower bound is no constraint here). */
static ncg_expr sci_nonneg(js_ctx *c, const js_bound *lo, const js_bound *hi) {
    ncg_builder *b = c->b;
    if (hi && dec_is_zero(&hi->v)) return ncg_nothing(b);
    if (lo && dec_is_zero(&lo->v)) lo = NULL;
    js_bound ml, mh;
    long elo = 0, ehi = 0;
    if (lo) { ml = *lo; ml.v.ip = 1; elo = lo->v.ip - 1; }
    if (hi) { mh = *hi; mh.v.ip = 1; ehi = hi->v.ip - 1; }
    ncg_expr any_m = ncg_seq2(b, rng(c, 1, 9), ncg_opt(b, frac_any(c)));
    cmpspec sl = { lo ? &ml : NULL, NULL, 1, 1, true }, sh = { NULL, hi ? &mh : NULL, 1, 1, true };
    if (!lo && !hi) return ncg_seq2(b, any_m, exponent(c, INT32_MIN, INT32_MAX));
    if (!lo) {
        return ncg_alt2(b, ncg_seq2(b, cmp_at(c, &sh, 0, false, false, true), exponent(c, ehi, ehi)),
                        ncg_seq2(b, any_m, exponent(c, INT32_MIN, ehi - 1)));
    }
    if (!hi) {
        return ncg_alt2(b, ncg_seq2(b, cmp_at(c, &sl, 0, false, true, false), exponent(c, elo, elo)),
                        ncg_seq2(b, any_m, exponent(c, elo + 1, INT32_MAX)));
    }
    if (elo > ehi) return ncg_nothing(b);
    if (elo == ehi) {
        cmpspec s = { &ml, &mh, 1, 1, true };
        return ncg_seq2(b, cmp_at(c, &s, 0, false, true, true), exponent(c, elo, elo));
    }
    ncg_expr alts[3] = {
        ncg_seq2(b, cmp_at(c, &sl, 0, false, true, false), exponent(c, elo, elo)),
        ncg_seq2(b, any_m, exponent(c, elo + 1, ehi - 1)),
        ncg_seq2(b, cmp_at(c, &sh, 0, false, false, true), exponent(c, ehi, ehi)),
    };
    return ncg_alt(b, alts, 3);
}

static bool zero_in(const js_bound *lo, const js_bound *hi) {
    js_dec z = { 0 };
    if (lo) { int r = js_dec_cmp(&z, &lo->v); if (r < 0 || (r == 0 && lo->excl)) return false; }
    if (hi) { int r = js_dec_cmp(&z, &hi->v); if (r > 0 || (r == 0 && hi->excl)) return false; }
    return true;
}

/* Non-negative numbers (no sign) within non-negative bounds. */
static ncg_expr nonneg(js_ctx *c, const js_bound *lo, const js_bound *hi, bool integer, bool int_frac0) {
    ncg_builder *b = c->b;
    ncg_expr plain = plain_nonneg(c, lo, hi, !integer);
    if (integer) {
        if (int_frac0) plain = ncg_seq2(b, plain, ncg_opt(b, ncg_seq2(b, ncg_str(b, "."),
                                                                   ncg_repeat(b, ncg_str(b, "0"), 1, NCG_INF))));
        return plain;
    }
    ncg_expr alts[3] = { plain, sci_nonneg(c, lo, hi), ncg_nothing(b) };
    if (zero_in(lo, hi)) {
        ncg_expr z = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "0"),
            ncg_opt(b, ncg_seq2(b, ncg_str(b, "."), ncg_repeat(b, ncg_str(b, "0"), 1, NCG_INF))),
            exponent(c, INT32_MIN, INT32_MAX) }, 3);
        alts[2] = z;
    }
    return ncg_alt(b, alts, 3);
}

static void negate_bound(const js_bound *in, js_bound *out) {
    *out = *in;
    out->v.neg = !in->v.neg;
    if (out->v.nd == 0) out->v.neg = false;
}

ncg_expr js_number(js_ctx *c, const js_bound *lo, const js_bound *hi, bool integer, bool int_frac0) {
    ncg_builder *b = c->b;
    if (lo && !lo->set) lo = NULL;
    if (hi && !hi->set) hi = NULL;
    if (lo && hi) {
        int r = js_dec_cmp(&lo->v, &hi->v);
        if (r > 0 || (r == 0 && (lo->excl || hi->excl))) return ncg_nothing(b);
    }
    if (!lo && !hi) {
        ncg_expr ip = ncg_alt2(b, ncg_str(b, "0"), ncg_seq2(b, rng(c, 1, 9), digits(c, 0, NCG_INF)));
        ncg_expr tail;
        if (integer)
            tail = int_frac0 ? ncg_opt(b, ncg_seq2(b, ncg_str(b, "."), ncg_repeat(b, ncg_str(b, "0"), 1, NCG_INF)))
                             : ncg_empty(b);
        else
            tail = ncg_seq2(b, ncg_opt(b, frac_any(c)), ncg_opt(b, exponent(c, INT32_MIN, INT32_MAX)));
        return ncg_seq(b, (ncg_expr[]){ ncg_opt(b, ncg_str(b, "-")), ip, tail }, 3);
    }
    ncg_expr alts[2];
    int na = 0;
    /* x >= 0 */
    if (!hi || !hi->v.neg || dec_is_zero(&hi->v)) {
        const js_bound *nl = (lo && (!lo->v.neg || dec_is_zero(&lo->v))) ? lo : NULL;
        alts[na++] = nonneg(c, nl, hi, integer, int_frac0);
    }
    /* x <= 0 as "-" y, y = -x: y <= -lo, y >= -hi */
    if (!lo || lo->v.neg || dec_is_zero(&lo->v)) {
        js_bound yl, yh;
        const js_bound *pl = NULL, *ph = NULL;
        if (lo) { negate_bound(lo, &yh); ph = &yh; }
        if (hi && hi->v.neg && !dec_is_zero(&hi->v)) { negate_bound(hi, &yl); pl = &yl; }
        alts[na++] = ncg_seq2(b, ncg_str(b, "-"), nonneg(c, pl, ph, integer, int_frac0));
    }
    return ncg_alt(b, alts, (size_t)na);
}

/* ---- multipleOf ---------------------------------------------------------- */

ncg_expr js_multiple_of(js_ctx *c, uint64_t k, bool int_frac0) {
    ncg_builder *b = c->b;
    if (k == 0) return ncg_nothing(b);
    if (k > 1000) return NUAGE_E_UNSUPPORTED;
    ncg_expr body;
    if (k == 1) {
        body = ncg_alt2(b, ncg_str(b, "0"), ncg_seq2(b, rng(c, 1, 9), digits(c, 0, NCG_INF)));
    } else {
        /* R_r: the digits still to come, given value-so-far mod k == r */
        ncg_rule *r = malloc(sizeof *r * (size_t)k);
        if (!r) return NUAGE_E_NOMEM;
        for (uint64_t i = 0; i < k; i++) {
            char name[48];
            snprintf(name, sizeof name, "mult%llu_%llu", (unsigned long long)k, (unsigned long long)i);
            r[i] = ncg_rule_new(b, name);
        }
        int rc = 0;
        for (uint64_t i = 0; i < k && rc == 0; i++) {
            ncg_expr alts[11];
            int na = 0;
            for (int d = 0; d <= 9; d++)
                alts[na++] = ncg_seq2(b, rng(c, d, d), ncg_ref(b, r[(i * 10 + (uint64_t)d) % k]));
            if (i == 0) alts[na++] = ncg_empty(b);
            rc = ncg_rule_set(b, r[i], ncg_alt(b, alts, (size_t)na));
        }
        ncg_expr first[10];
        for (int d = 1; d <= 9; d++) first[d - 1] = ncg_seq2(b, rng(c, d, d), ncg_ref(b, r[(uint64_t)d % k]));
        body = ncg_alt2(b, ncg_str(b, "0"), ncg_alt(b, first, 9));
        free(r);
        if (rc < 0) return rc;
    }
    ncg_expr tail = int_frac0 ? ncg_opt(b, ncg_seq2(b, ncg_str(b, "."), ncg_repeat(b, ncg_str(b, "0"), 1, NCG_INF)))
                              : ncg_empty(b);
    return ncg_seq(b, (ncg_expr[]){ ncg_opt(b, ncg_str(b, "-")), body, tail }, 3);
}
