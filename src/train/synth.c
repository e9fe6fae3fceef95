/*
 * synth.c - the random generator, the split, the task table and the
 * numeric generators (add, sub, mul, convert, date) of the synthetic data
 * (see synth.h; the word/list tasks are in synth_text.c).
 *
 * Arithmetic work is written column by column from the right, one line
 * per column with the same shape every time ("4+8+0=2 c1 -> 2": digits,
 * carry in, digit out, carry out, and the result digits so far), so the
 * answer can be read off the last line instead of being reversed. The
 * direct reply restates the operands ("1234 + 5678 = 6912"), which gives
 * the model the operands right before the digits it must produce.
 */
#include "train/synth.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "nuage/nuage.h"

/* ---- random numbers ----------------------------------------------------------- */

/* The engine's generator (engine/rng.h): same sequences as the sampler's. */
void nuage_rng_seed(nuage_rng *r, uint64_t seed) { nuage__xoshiro_seed(r->s, seed); }

uint64_t nuage_rng_next(nuage_rng *r) { return nuage__xoshiro_next(r->s); }

uint64_t nuage_rng_below(nuage_rng *r, uint64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = nuage_rng_next(r);
        if (x < lim) return x % n;
    }
}

int64_t nuage_rng_range(nuage_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)nuage_rng_below(r, (uint64_t)(hi - lo) + 1);
}

double nuage_rng_uniform(nuage_rng *r) { return (double)(nuage_rng_next(r) >> 11) * 0x1.0p-53; }

double nuage_rng_normal(nuage_rng *r) {
    double u1 = nuage_rng_uniform(r), u2 = nuage_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t nuage_hash64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- tasks, split ---------------------------------------------------------------- */

static const char *const k_task_names[NUAGE_TASK_N] = {
    "add", "sub", "mul", "convert", "date", "reverse", "sort", "count", "facts",
};

const char *nuage_task_name(nuage_task t) {
    return (unsigned)t < NUAGE_TASK_N ? k_task_names[t] : NULL;
}

int nuage_task_from_name(const char *name) {
    for (int i = 0; i < NUAGE_TASK_N; i++)
        if (!strcmp(name, k_task_names[i])) return i;
    return -1;
}

bool nuage_synth_key_heldout(const char *key) {
    uint64_t h = nuage_hash64(key);
    h ^= h >> 29; /* FNV's low bits are weak on short keys: mix first */
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h % 10 == 0;
}

static int nuage__default_digits(nuage_task t) {
    switch (t) {
    case NUAGE_TASK_REVERSE: case NUAGE_TASK_SORT: case NUAGE_TASK_COUNT: case NUAGE_TASK_FACTS:
        return 1;
    default: return 2;
    }
}

static int nuage__max_digits(nuage_task t) {
    switch (t) {
    case NUAGE_TASK_ADD: case NUAGE_TASK_SUB: return 9;
    case NUAGE_TASK_MUL: return 4;
    default: return 3;
    }
}

static int nuage__gen_once(nuage_task t, int d, nuage_rng *r, nuage_synth_item *it) {
    memset(it, 0, sizeof *it);
    it->task = t;
    switch (t) {
    case NUAGE_TASK_ADD: case NUAGE_TASK_SUB: case NUAGE_TASK_MUL:
        return nuage__synth_arith(t, d, r, it);
    case NUAGE_TASK_CONVERT: return nuage__synth_convert(d, r, it);
    case NUAGE_TASK_DATE: return nuage__synth_date(d, r, it);
    case NUAGE_TASK_REVERSE: case NUAGE_TASK_SORT: return nuage__synth_list(t, d, r, it);
    case NUAGE_TASK_COUNT: return nuage__synth_count(d, r, it);
    case NUAGE_TASK_FACTS: return nuage__synth_facts(d, r, it);
    default: return NUAGE_E_INVAL;
    }
}

int nuage_synth_gen(nuage_task t, const nuage_synth_opts *o, nuage_rng *r, nuage_synth_item *it) {
    if ((unsigned)t >= NUAGE_TASK_N) return NUAGE_E_INVAL;
    int d = o && o->digits > 0 ? o->digits : nuage__default_digits(t);
    if (d > nuage__max_digits(t)) return NUAGE_E_INVAL;
    bool want = o && o->heldout;
    for (int tries = 0; tries < 10000; tries++) {
        int rc = nuage__gen_once(t, d, r, it);
        if (rc) return rc;
        if (nuage_synth_key_heldout(it->key) == want) return 0;
    }
    return NUAGE_E_RANGE;
}

int nuage_synth_gen_mix(int max_digits, bool heldout, nuage_rng *r, nuage_synth_item *it) {
    /* weights in percent, in nuage_task order */
    static const int w[NUAGE_TASK_N] = {30, 10, 8, 10, 10, 7, 7, 8, 10};
    if (max_digits <= 0) max_digits = 4;
    int x = (int)nuage_rng_below(r, 100), t = 0;
    while (x >= w[t]) x -= w[t++];
    int dmax;
    switch (t) {
    case NUAGE_TASK_ADD: case NUAGE_TASK_SUB: dmax = max_digits < 9 ? max_digits : 9; break;
    case NUAGE_TASK_MUL: case NUAGE_TASK_CONVERT: case NUAGE_TASK_REVERSE: case NUAGE_TASK_SORT:
        dmax = max_digits < 2 ? max_digits : 2;
        break;
    default: dmax = 1;
    }
    nuage_synth_opts o = {.digits = (int)nuage_rng_range(r, 1, dmax), .heldout = heldout};
    if (t == NUAGE_TASK_DATE) o.digits = 2;
    return nuage_synth_gen((nuage_task)t, &o, r, it);
}

/* ---- output ------------------------------------------------------------------------ */

size_t nuage_synth_content(const nuage_synth_item *it, bool reasoning, char *out, size_t cap) {
    int n = reasoning ? snprintf(out, cap, "<think>\n%s</think>\n%s", it->think, it->reply)
                      : snprintf(out, cap, "%s", it->reply);
    return n < 0 ? cap : (size_t)n;
}

size_t nuage_synth_final_answer(const char *reply, char *out, size_t cap) {
    const char *s = reply, *p;
    while ((p = strstr(s, "</think>"))) s = p + 8;
    if (s == reply && strstr(reply, "<think>")) s = reply + strlen(reply); /* unclosed */
    const char *e = s + strlen(s);
    static const char *const trail = ".,!?;:'\"`)]} \t\r\n";
    while (e > s && strchr(trail, e[-1])) e--;
    const char *b = e;
    while (b > s && !strchr(" \t\r\n", b[-1])) b--;
    while (b < e && strchr("'\"`([{", *b)) b++;
    size_t n = (size_t)(e - b);
    if (cap == 0) return 0;
    if (n >= cap) n = cap - 1;
    memcpy(out, b, n);
    out[n] = 0;
    return n;
}

/* ---- arithmetic --------------------------------------------------------------------- */

static int64_t nuage__pow10(int d) {
    int64_t p = 1;
    while (d-- > 0) p *= 10;
    return p;
}

static int64_t nuage__operand(int d, nuage_rng *r) {
    return d == 1 ? nuage_rng_range(r, 0, 9) : nuage_rng_range(r, nuage__pow10(d - 1), nuage__pow10(d) - 1);
}

/* Append printf output to buf (cap bytes), keeping it NUL-terminated. */
static void nuage__cat(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void nuage__cat(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    if (n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* Column lines of a + b (add) or a - b (sub, a >= b). */
static void nuage__columns(char *th, size_t cap, int64_t a, int64_t b, bool add) {
    char res[32] = {0}; /* result digits so far, most significant first */
    int c = 0;
    int64_t x = a, y = b;
    do {
        int da = (int)(x % 10), db = (int)(y % 10), v, out;
        if (add) {
            v = da + db + c;
            out = v >= 10;
            v %= 10;
        } else {
            v = da - db - c;
            out = v < 0;
            if (out) v += 10;
        }
        memmove(res + 1, res, strlen(res) + 1);
        res[0] = (char)('0' + v);
        nuage__cat(th, cap, "%d%c%d%c%d=%d %c%d -> %s\n", da, add ? '+' : '-', db, add ? '+' : '-', c,
                   v, add ? 'c' : 'b', out, res);
        c = out;
        x /= 10;
        y /= 10;
    } while (x || y);
    if (add && c) {
        memmove(res + 1, res, strlen(res) + 1);
        res[0] = '1';
        nuage__cat(th, cap, "0+0+1=1 c0 -> %s\n", res);
    }
}

int nuage__synth_arith(nuage_task t, int d, nuage_rng *r, nuage_synth_item *it) {
    static const char *const q_add[] = {
        "What is %lld + %lld?", "Compute %lld + %lld.", "%lld + %lld = ?", "Add %lld and %lld.",
        "What is the sum of %lld and %lld?", "Calculate %lld plus %lld.",
    };
    static const char *const q_sub[] = {
        "What is %lld - %lld?", "Compute %lld - %lld.", "%lld - %lld = ?", "Subtract %lld from %lld.",
        "What is the difference between %lld and %lld?", "Calculate %lld minus %lld.",
    };
    static const char *const q_mul[] = {
        "What is %lld * %lld?", "Compute %lld * %lld.", "%lld * %lld = ?", "Multiply %lld by %lld.",
        "What is the product of %lld and %lld?", "Calculate %lld times %lld.",
    };
    int64_t a = nuage__operand(d, r), b = nuage__operand(d, r);
    int k = (int)nuage_rng_below(r, 6);
    if (t == NUAGE_TASK_SUB && a < b) { int64_t s = a; a = b; b = s; }
    int64_t lo = a < b ? a : b, hi = a < b ? b : a;
    const char *op = t == NUAGE_TASK_ADD ? "+" : t == NUAGE_TASK_SUB ? "-" : "*";
    if (t == NUAGE_TASK_SUB) snprintf(it->key, sizeof it->key, "sub:%lld:%lld", (long long)a, (long long)b);
    else snprintf(it->key, sizeof it->key, "%s:%lld:%lld", t == NUAGE_TASK_ADD ? "add" : "mul", (long long)lo, (long long)hi);
    const char *fmt = t == NUAGE_TASK_ADD ? q_add[k] : t == NUAGE_TASK_SUB ? q_sub[k] : q_mul[k];
    if (t == NUAGE_TASK_SUB && k == 3) /* "Subtract b from a" */
        snprintf(it->question, sizeof it->question, fmt, (long long)b, (long long)a);
    else
        snprintf(it->question, sizeof it->question, fmt, (long long)a, (long long)b);
    int64_t res = t == NUAGE_TASK_ADD ? a + b : t == NUAGE_TASK_SUB ? a - b : a * b;
    snprintf(it->answer, sizeof it->answer, "%lld", (long long)res);
    snprintf(it->reply, sizeof it->reply, "%lld %s %lld = %lld", (long long)a, op, (long long)b, (long long)res);
    char *th = it->think;
    size_t cap = sizeof it->think;
    nuage__cat(th, cap, "%lld%s%lld\n", (long long)a, op, (long long)b);
    if (t != NUAGE_TASK_MUL) {
        nuage__columns(th, cap, a, b, t == NUAGE_TASK_ADD);
        return 0;
    }
    if (b == 0) {
        nuage__cat(th, cap, "%lld*0=0\n", (long long)a);
        return 0;
    }
    /* long multiplication: a times each digit of b (with its place value), then running sums */
    int64_t parts[8];
    int np = 0;
    int64_t place = 1;
    for (int64_t y = b; y; y /= 10, place *= 10) {
        int64_t m = (y % 10) * place;
        parts[np++] = a * m;
        nuage__cat(th, cap, "%lld*%lld=%lld\n", (long long)a, (long long)m, (long long)(a * m));
    }
    int64_t acc = parts[0];
    for (int i = 1; i < np; i++) {
        nuage__cat(th, cap, "%lld+%lld=%lld\n", (long long)acc, (long long)parts[i], (long long)(acc + parts[i]));
        acc += parts[i];
    }
    return 0;
}

/* ---- unit conversion ------------------------------------------------------------------ */

typedef struct {
    const char *big, *bigs, *small, *smalls;
    int factor;
} nuage__unit;

static const nuage__unit k_units[] = {
    {"kilometer", "kilometers", "meter", "meters", 1000},
    {"meter", "meters", "centimeter", "centimeters", 100},
    {"centimeter", "centimeters", "millimeter", "millimeters", 10},
    {"kilogram", "kilograms", "gram", "grams", 1000},
    {"liter", "liters", "milliliter", "milliliters", 1000},
    {"hour", "hours", "minute", "minutes", 60},
    {"minute", "minutes", "second", "seconds", 60},
    {"day", "days", "hour", "hours", 24},
    {"week", "weeks", "day", "days", 7},
    {"foot", "feet", "inch", "inches", 12},
    {"yard", "yards", "foot", "feet", 3},
    {"year", "years", "month", "months", 12},
};

int nuage__synth_convert(int d, nuage_rng *r, nuage_synth_item *it) {
    int nu = (int)(sizeof k_units / sizeof k_units[0]);
    int ui = (int)nuage_rng_below(r, (uint64_t)nu);
    const nuage__unit *u = &k_units[ui];
    int64_t v = nuage_rng_range(r, 1, nuage__pow10(d) - 1);
    int64_t w = v * u->factor;
    bool inverse = nuage_rng_below(r, 3) == 0;
    int k = (int)nuage_rng_below(r, 3);
    snprintf(it->key, sizeof it->key, "convert:%d:%d:%lld", ui, inverse, (long long)v);
    const char *bn = v == 1 ? u->big : u->bigs;
    if (!inverse) {
        if (k == 0) snprintf(it->question, sizeof it->question, "How many %s are in %lld %s?", u->smalls, (long long)v, bn);
        else if (k == 1) snprintf(it->question, sizeof it->question, "Convert %lld %s to %s.", (long long)v, bn, u->smalls);
        else snprintf(it->question, sizeof it->question, "%lld %s is how many %s?", (long long)v, bn, u->smalls);
        snprintf(it->answer, sizeof it->answer, "%lld", (long long)w);
        snprintf(it->think, sizeof it->think, "1 %s = %d %s\n%lld*%d=%lld\n", u->big, u->factor, u->smalls,
                 (long long)v, u->factor, (long long)w);
    } else {
        if (k == 0) snprintf(it->question, sizeof it->question, "How many %s is %lld %s?", u->bigs, (long long)w, u->smalls);
        else if (k == 1) snprintf(it->question, sizeof it->question, "Convert %lld %s to %s.", (long long)w, u->smalls, u->bigs);
        else snprintf(it->question, sizeof it->question, "%lld %s is how many %s?", (long long)w, u->smalls, u->bigs);
        snprintf(it->answer, sizeof it->answer, "%lld", (long long)v);
        snprintf(it->think, sizeof it->think, "1 %s = %d %s\n%lld/%d=%lld\n", u->big, u->factor, u->smalls,
                 (long long)w, u->factor, (long long)v);
    }
    snprintf(it->reply, sizeof it->reply, "%s", it->answer);
    return 0;
}

/* ---- dates ------------------------------------------------------------------------------ */

static const char *const k_weekdays[7] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};
static const char *const k_months[12] = {"January", "February", "March", "April", "May", "June",
                                         "July", "August", "September", "October", "November",
                                         "December"};

int nuage__days_in_month(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

static int nuage__synth_weekday(int d, nuage_rng *r, nuage_synth_item *it) {
    int w = (int)nuage_rng_below(r, 7);
    int n = (int)nuage_rng_range(r, 1, d == 1 ? 9 : 60);
    bool after = nuage_rng_below(r, 2) == 0;
    int k = (int)nuage_rng_below(r, 2);
    snprintf(it->key, sizeof it->key, "dow:%d:%d:%d", w, n, after);
    if (after) {
        if (k == 0) snprintf(it->question, sizeof it->question, "If today is %s, what day of the week will it be in %d days?", k_weekdays[w], n);
        else snprintf(it->question, sizeof it->question, "What day of the week is %d days after %s?", n, k_weekdays[w]);
    } else {
        if (k == 0) snprintf(it->question, sizeof it->question, "If today is %s, what day of the week was it %d days ago?", k_weekdays[w], n);
        else snprintf(it->question, sizeof it->question, "What day of the week is %d days before %s?", n, k_weekdays[w]);
    }
    int m = n % 7, res = after ? (w + m) % 7 : (w - m + 7) % 7;
    snprintf(it->answer, sizeof it->answer, "%s", k_weekdays[res]);
    snprintf(it->reply, sizeof it->reply, "%s", k_weekdays[res]);
    snprintf(it->think, sizeof it->think, "%d mod 7 = %d\n%s %c %d = %s\n", n, m, k_weekdays[w],
             after ? '+' : '-', m, k_weekdays[res]);
    return 0;
}

static int nuage__synth_dateadd(int d, nuage_rng *r, nuage_synth_item *it) {
    int y = (int)nuage_rng_range(r, 2000, 2030), mo = (int)nuage_rng_range(r, 1, 12);
    int day = (int)nuage_rng_range(r, 1, nuage__days_in_month(y, mo));
    int n = (int)nuage_rng_range(r, 1, d == 1 ? 9 : 40);
    int k = (int)nuage_rng_below(r, 3);
    char iso[16];
    snprintf(iso, sizeof iso, "%04d-%02d-%02d", y, mo, day);
    snprintf(it->key, sizeof it->key, "date:%s:%d", iso, n);
    if (k == 0) snprintf(it->question, sizeof it->question, "What is the date %d days after %s?", n, iso);
    else if (k == 1) snprintf(it->question, sizeof it->question, "What date comes %d days after %s?", n, iso);
    else snprintf(it->question, sizeof it->question, "Add %d days to %s.", n, iso);
    char *th = it->think;
    size_t cap = sizeof it->think;
    int v = day + n;
    nuage__cat(th, cap, "%s plus %d days\nday %d+%d=%d\n", iso, n, day, n, v);
    for (;;) {
        int dm = nuage__days_in_month(y, mo);
        nuage__cat(th, cap, "%s has %d days\n", k_months[mo - 1], dm);
        if (v <= dm) {
            nuage__cat(th, cap, "%d <= %d\n", v, dm);
            break;
        }
        int nv = v - dm;
        if (++mo > 12) { mo = 1; y++; }
        nuage__cat(th, cap, "%d-%d=%d, now %04d-%02d\n", v, dm, nv, y, mo);
        v = nv;
    }
    snprintf(it->answer, sizeof it->answer, "%04d-%02d-%02d", y, mo, v);
    snprintf(it->reply, sizeof it->reply, "%s", it->answer);
    return 0;
}

int nuage__synth_date(int d, nuage_rng *r, nuage_synth_item *it) {
    return nuage_rng_below(r, 2) == 0 ? nuage__synth_weekday(d, r, it) : nuage__synth_dateadd(d, r, it);
}
