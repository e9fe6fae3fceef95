/*
 * format.c - JSON Schema string formats as grammar expressions.
 *
 * Each format is written as an ECMAScript pattern (below) and compiled by
 * the regex front end in JSON-string mode, anchored at both ends. So the
 * expression is the body of a JSON string literal whose *decoded* value
 * has the format, and every character may also be written as a JSON
 * escape (\u0030 for '0', \/ for '/') - what a validator sees after
 * parsing is the same.
 *
 * Definitions (exact unless said otherwise; "refuse" = the format does
 * not admit a valid value we cannot write, and an invalid value is never
 * accepted):
 *  date       RFC 3339 full-date: YYYY-MM-DD with the day valid for the
 *             month, and Feb 29 only in Gregorian leap years (divisible by
 *             4, centuries only when divisible by 400; 0000 is leap).
 *  time       RFC 3339 full-time: hh:mm:ss[.frac](Z|z|+hh:mm|-hh:mm),
 *             hours 00-23, minutes 00-59, offset hours 00-23. Second 60
 *             (a leap second) only when the time converted to UTC is
 *             23:59:60, as the JSON Schema Test Suite expects
 *             ("15:59:60-08:00" valid, "22:59:60Z" invalid): the pairs of
 *             local minute and offset are enumerated - for offsets whose
 *             minutes are 00, 15, 30 or 45 (every real time zone). A leap
 *             second at another offset (00:00:60+00:01) is refused: all
 *             1,440 local minutes cost 40x the compile time (67 ms, not
 *             1.7 ms for date-time).
 *  date-time  date, 'T' or 't', time.
 *  duration   RFC 3339 Appendix A (ISO 8601) as JSON Schema cites it:
 *             P then date units in order Y, M, D without gaps (dur-year
 *             has an optional month, which has an optional day), optional
 *             T and time units H, M, S likewise, or nW alone. Integers
 *             only; "P", "PT", "P1YT", "P1Y2W", "P2D1Y" are invalid.
 *  email      RFC 5321 Mailbox: a dot-atom (atext runs joined by single
 *             dots) or a quoted string, '@', then a hostname (below), an
 *             IPv4 literal [1.2.3.4] or [IPv6:...]. ASCII only (non-ASCII
 *             is idn-email). The 64-octet local-part limit is not checked.
 *  hostname   RFC 1123: labels of letters, digits and inner hyphens, 1-63
 *             characters, joined by dots, no trailing dot. The 253-octet
 *             total limit is kept by under-approximation: up to 4 labels
 *             (the 4th at most 61 long), or up to 10 labels of at most 24
 *             characters. Other valid host names are refused (never an
 *             invalid one accepted): an exact automaton for both limits
 *             has ~16,000 states.
 *  ipv4       dotted quad, each 0-255 in decimal without leading zeros.
 *  ipv6       RFC 4291 / RFC 3986 IPv6address: eight groups of 1-4 hex
 *             digits, one "::" compression, optional dotted-quad tail; no
 *             zone id.
 *  uri        RFC 3986 URI (absolute, with scheme; ASCII only): scheme ':'
 *             hier-part ['?' query] ['#' fragment], authority with
 *             userinfo, IP-literal / IPv4 / reg-name host and port.
 *  uuid       RFC 4122 text form 8-4-4-4-12 hex digits (either case).
 */
#define _GNU_SOURCE   /* memmem */
#include "constrain/regex_internal.h"
#include "nuage/nuage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATE_RE \
    "[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])" \
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)" \
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))" \
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26]|00)00)-02-29"

/* Leap seconds: the local minutes listed are LEAP_MM0, +LEAP_STEP ...;
 * 14 / 15 covers the offsets whose minutes are 00, 15, 30 or 45. */
#define LEAP_MM0 14
#define LEAP_STEP 15
#define FRAC_RE "(?:\\.[0-9]+)?"
#define HM_RE "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
#define OFFSET_RE "(?:[Zz]|[+-]" HM_RE ")"

/* Sub-automata shared through rules (regex_internal.h, NCG_SUBST_BASE):
 * a format's pattern names them by a private-use code point, so e.g. the
 * 63-character label counter is one small DFA that the host name DFA
 * calls, not a product of both. */
#define S_H16 "\xF3\xB0\x80\x80"
#define S_V4 "\xF3\xB0\x80\x81"
#define S_L63 "\xF3\xB0\x80\x82"
#define S_L61 "\xF3\xB0\x80\x83"
#define S_L24 "\xF3\xB0\x80\x84"
#define S_V6 "\xF3\xB0\x80\x85"
#define S_HOST "\xF3\xB0\x80\x86"
#define N_SUB 7

#define LABEL_RE(n) "[A-Za-z0-9](?:[A-Za-z0-9-]{0," #n "}[A-Za-z0-9])?"
#define HOST_RE \
    "(?:" S_L63 "(?:\\." S_L63 "){0,2}(?:\\." S_L61 ")?" \
    "|" S_L24 "(?:\\." S_L24 "){0,9})"

#define OCTET_RE "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
#define IPV4_RE OCTET_RE "(?:\\." OCTET_RE "){3}"

#define H16 S_H16
#define LS32 "(?:" H16 ":" H16 "|" S_V4 ")"
#define IPV6_RE \
    "(?:(?:" H16 ":){6}" LS32 \
    "|::(?:" H16 ":){5}" LS32 \
    "|(?:" H16 ")?::(?:" H16 ":){4}" LS32 \
    "|(?:(?:" H16 ":){0,1}" H16 ")?::(?:" H16 ":){3}" LS32 \
    "|(?:(?:" H16 ":){0,2}" H16 ")?::(?:" H16 ":){2}" LS32 \
    "|(?:(?:" H16 ":){0,3}" H16 ")?::" H16 ":" LS32 \
    "|(?:(?:" H16 ":){0,4}" H16 ")?::" LS32 \
    "|(?:(?:" H16 ":){0,5}" H16 ")?::" H16 \
    "|(?:(?:" H16 ":){0,6}" H16 ")?::)"

#define ATEXT "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
#define EMAIL_RE \
    "(?:" ATEXT "+(?:\\." ATEXT "+)*|\"(?:[ !#-\\[\\]-~]|\\\\[ -~])*\")" \
    "@(?:" S_HOST "|\\[" S_V4 "\\]|\\[IPv6:" S_V6 "\\])"

#define PCT "%[0-9A-Fa-f]{2}"
#define PCHAR "(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|" PCT ")"
#define URI_RE \
    "[A-Za-z][A-Za-z0-9+.-]*:" \
    "(?://(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|" PCT ")*@)?" \
    "(?:\\[(?:" S_V6 "|[vV][0-9A-Fa-f]+\\.[A-Za-z0-9._~!$&'()*+,;=:-]+)\\]" \
    "|(?:[A-Za-z0-9._~!$&'()*+,;=-]|" PCT ")*)(?::[0-9]*)?(?:/" PCHAR "*)*" \
    "|/(?:" PCHAR "+(?:/" PCHAR "*)*)?" \
    "|" PCHAR "+(?:/" PCHAR "*)*" \
    "|)" \
    "(?:\\?(?:" PCHAR "|[/?])*)?(?:#(?:" PCHAR "|[/?])*)?"

#define UUID_RE "[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}"

#define DUR_TIME "T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
#define DURATION_RE \
    "P(?:(?:[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?|[0-9]+M(?:[0-9]+D)?|[0-9]+D)(?:" DUR_TIME ")?" \
    "|" DUR_TIME "|[0-9]+W)"

typedef struct { char *s; size_t n, cap; bool oom; } sbuf;

static void put(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0 || b->oom) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *q = realloc(b->s, nc);
        if (!q) { b->oom = true; return; }
        b->s = q;
        b->cap = nc;
    }
    memcpy(b->s + b->n, tmp, (size_t)k + 1);
    b->n += (size_t)k;
}

/* RFC 3339 full-time. The leap-second branch lists, for every local
 * hh:mm whose offset to 23:59 UTC is a multiple of LEAP_STEP minutes, the
 * two offsets that make it 23:59 UTC (+ offset = local - UTC). */
static void time_re(sbuf *b) {
    put(b, "(?:" HM_RE ":[0-5][0-9]" FRAC_RE OFFSET_RE);
    for (int hh = 0; hh < 24; hh++) {
        put(b, "|%02d:(?:", hh);
        for (int mm = LEAP_MM0; mm < 60; mm += LEAP_STEP) {
            int d = (hh * 60 + mm + 1) % 1440;   /* minutes ahead of UTC */
            put(b, "%s%02d:60" FRAC_RE, mm != LEAP_MM0 ? "|" : "", mm);
            if (d == 0) put(b, "(?:[Zz]|[+-]00:00)");
            else put(b, "(?:\\+%02d:%02d|-%02d:%02d)", d / 60, d % 60, (1440 - d) / 60, (1440 - d) % 60);
        }
        put(b, ")");
    }
    put(b, ")");
}

/* The shared sub-automata, in dependency order (each refers only to
 * earlier ones). */
static const char *const SUB_RE[N_SUB] = {
    "[0-9A-Fa-f]{1,4}", IPV4_RE, LABEL_RE(61), LABEL_RE(59), LABEL_RE(22), IPV6_RE, HOST_RE};

/* Compile re (a format's pattern, JSON-string body, anchored), first
 * making rules for the sub-automata it names. */
static int compile_fmt(ncg_builder *b, const char *re, size_t len, ncg_expr *out, nuage_cg_error *err) {
    ncg_expr sub[N_SUB];
    bool need[N_SUB] = {0};
    char ph[5] = "\xF3\xB0\x80\x80";
    for (int k = N_SUB - 1; k >= 0; k--) {
        ph[3] = (char)(0x80 + k);
        if (!need[k] && !memmem(re, len, ph, 4)) continue;
        need[k] = true;
        for (int j = 0; j < k; j++) {   /* what sub-automaton k needs */
            ph[3] = (char)(0x80 + j);
            if (strstr(SUB_RE[k], ph)) need[j] = true;
        }
    }
    for (int k = 0; k < N_SUB; k++) {
        sub[k] = NUAGE_E_INVAL;
        if (!need[k]) continue;
        ncg_expr body;
        int rc = ncg_regex_ex(b, SUB_RE[k], strlen(SUB_RE[k]), true, true, true, sub, (size_t)k, &body, err);
        if (rc) return rc;
        ncg_rule r = ncg_rule_new(b, "format-part");
        if (r < 0) return r;
        if ((rc = ncg_rule_set(b, r, body))) return rc;
        if ((sub[k] = ncg_ref(b, r)) < 0) return sub[k];
    }
    return ncg_regex_ex(b, re, len, true, true, true, sub, N_SUB, out, err);
}

int ncg_json_format(ncg_builder *b, const char *fmt, ncg_expr *out, nuage_cg_error *err) {
    if (err) { err->msg[0] = 0; err->pointer[0] = 0; }
    if (!b || !fmt || !out) return NUAGE_E_INVAL;
    static const struct { const char *name, *re; } FIXED[] = {
        {"date", DATE_RE}, {"duration", DURATION_RE}, {"email", EMAIL_RE},
        {"hostname", S_HOST}, {"ipv4", IPV4_RE}, {"ipv6", S_V6},
        {"uri", URI_RE}, {"uuid", UUID_RE}};
    for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++)
        if (!strcmp(fmt, FIXED[i].name)) return compile_fmt(b, FIXED[i].re, strlen(FIXED[i].re), out, err);
    bool dt = !strcmp(fmt, "date-time");
    if (!dt && strcmp(fmt, "time")) {
        if (err) snprintf(err->msg, sizeof err->msg, "format \"%.200s\" is not supported", fmt);
        return NUAGE_E_UNSUPPORTED;
    }
    sbuf s = {0};
    if (dt) put(&s, "(?:" DATE_RE ")[Tt]");
    time_re(&s);
    int rc = s.oom ? NUAGE_E_NOMEM : compile_fmt(b, s.s, s.n, out, err);
    if (rc == NUAGE_E_NOMEM && err && !err->msg[0]) snprintf(err->msg, sizeof err->msg, "out of memory");
    free(s.s);
    return rc;
}
