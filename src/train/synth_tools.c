/*
 * synth_tools.c - tool-use conversations and the reference tools (see
 * synth_tools.h).
 *
 * Every scenario builds its question with the numbers or names the call
 * will need written out in it, so the model's call is a copy of parts of
 * the question into a fixed argument shape (`{"expression": "A * B"}`),
 * and the final answer is a copy of the tool's result: both are things a
 * 2 M-parameter model can do reliably, where the arithmetic itself is
 * not. The tool definitions are short (a name, a few words, the parameter
 * names) because the models' context is 256 tokens; the chat template
 * renders them one per line as "name(param, param)" (the description is
 * left out of the prompt: too many tokens for the vocabulary).
 *
 * The reference tools are what the eval harness and the demo execute, so
 * training results, eval and demo agree by construction: calculator is a
 * small recursive-descent evaluator over doubles (exact for the integer
 * products up to 2^53 the data asks for), convert_units a factor table,
 * the date tools count days on the proleptic Gregorian calendar, lookup a
 * table of currencies and languages of the `facts` countries.
 */
#include "train/synth_tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"

/* ---- names -------------------------------------------------------------------------- */

static const char *const k_tt_names[NUAGE_TT_N] = {
    "tool_mul", "tool_arith", "tool_convert", "tool_date", "tool_lookup",
    "tool_direct", "tool_twostep", "tool_error", "tool_absent",
};

const char *nuage_tool_task_name(nuage_tool_task t) { return (unsigned)t < NUAGE_TT_N ? k_tt_names[t] : NULL; }

int nuage_tool_task_from_name(const char *name) {
    for (int i = 0; i < NUAGE_TT_N; i++)
        if (!strcmp(name, k_tt_names[i])) return i;
    return -1;
}

/* ---- tool definitions -------------------------------------------------------------------- */

typedef struct {
    const char *names[3];
    const char *descs[3];
    const char *params[3]; /* parameter names, NULL-terminated */
    const char *types[3];
} nuage__tooldef;

static const nuage__tooldef k_defs[NUAGE_TOOL_N] = {
    [NUAGE_TOOL_CALC] = {{"calculator", "calc", "evaluate"},
                         {"Evaluate a math expression.", "Do arithmetic.", "Compute an expression."},
                         {"expression"}, {"string"}},
    [NUAGE_TOOL_CONVERT] = {{"convert_units", "convert", "unit_converter"},
                            {"Convert a value between units.", "Unit conversion.", "Convert units."},
                            {"value", "from", "to"}, {"number", "string", "string"}},
    [NUAGE_TOOL_DATE_ADD] = {{"date_add", "add_days", "shift_date"},
                             {"Add days to a date.", "Date plus days.", "Move a date by days."},
                             {"date", "days"}, {"string", "integer"}},
    [NUAGE_TOOL_DATE_DIFF] = {{"date_diff", "days_between", "count_days"},
                              {"Days between two dates.", "Date difference in days.", "Count days."},
                              {"start", "end"}, {"string", "string"}},
    [NUAGE_TOOL_LOOKUP] = {{"lookup", "knowledge_base", "facts"},
                           {"Look up a fact about a country.", "Query the knowledge base.", "Find a fact."},
                           {"entity", "field"}, {"string", "string"}},
};

/* Irrelevant tools the lists are padded with. */
static const nuage__tooldef k_other[] = {
    {{"get_weather", "weather"}, {"Current weather in a city.", "Weather report."}, {"city"}, {"string"}},
    {{"send_email", "email"}, {"Send an email.", "Email someone."}, {"to", "body"}, {"string", "string"}},
    {{"search_web", "search"}, {"Search the web.", "Web search."}, {"query"}, {"string"}},
    {{"get_time", "clock"}, {"Current time in a timezone.", "What time it is."}, {"timezone"}, {"string"}},
    {{"translate"}, {"Translate text.", "Translate a sentence."}, {"text", "language"}, {"string", "string"}},
};
#define N_OTHER (sizeof k_other / sizeof k_other[0])

static int nuage__n_names(const nuage__tooldef *d) {
    int n = 0;
    while (n < 3 && d->names[n]) n++;
    return n;
}

/* {"type":"function","function":{"name","description","parameters"}} */
static json_t *nuage__tool_json(const nuage__tooldef *d, nuage_rng *r, const char **name_out) {
    int nn = nuage__n_names(d), nd = 0;
    while (nd < 3 && d->descs[nd]) nd++;
    const char *name = d->names[nuage_rng_below(r, (uint64_t)nn)];
    const char *desc = d->descs[nuage_rng_below(r, (uint64_t)nd)];
    json_t *props = json_object(), *req = json_array();
    for (int i = 0; i < 3 && d->params[i]; i++) {
        json_object_set_new(props, d->params[i], json_pack("{s:s}", "type", d->types[i]));
        json_array_append_new(req, json_string(d->params[i]));
    }
    if (name_out) *name_out = name;
    return json_pack("{s:s,s:{s:s,s:s,s:{s:s,s:o,s:o}}}", "type", "function", "function", "name", name,
                     "description", desc, "parameters", "type", "object", "properties", props, "required",
                     req);
}

int nuage_tool_kind_of(const json_t *tools, const char *name) {
    size_t i;
    json_t *t;
    if (!name) return -1;
    json_array_foreach(tools, i, t) {
        json_t *f = json_object_get(t, "function");
        if (!json_is_object(f)) f = (json_t *)t;
        const char *n = json_string_value(json_object_get(f, "name"));
        if (!n || strcmp(n, name)) continue;
        json_t *props = json_object_get(json_object_get(f, "parameters"), "properties");
        for (int k = 0; k < NUAGE_TOOL_N; k++) {
            bool all = true;
            int np = 0;
            for (int p = 0; p < 3 && k_defs[k].params[p]; p++, np++)
                if (!json_object_get(props, k_defs[k].params[p])) all = false;
            if (all && (int)json_object_size(props) == np) return k;
        }
        return -1;
    }
    return -1;
}

/*
 * The offered list: the needed tool (unless `need` < 0), up to `extra`
 * other tools of ours and irrelevant ones, shuffled. *need_name gets the
 * needed tool's name. `avoid` (a kind, or -1) is never added.
 */
static json_t *nuage__tools(nuage_rng *r, int need, int need2, int avoid, const char **need_name,
                            const char **need2_name) {
    json_t *arr = json_array();
    if (!arr) return NULL;
    bool used[NUAGE_TOOL_N] = {0};
    if (need >= 0) {
        json_array_append_new(arr, nuage__tool_json(&k_defs[need], r, need_name));
        used[need] = true;
    }
    if (need2 >= 0 && !used[need2]) {
        json_array_append_new(arr, nuage__tool_json(&k_defs[need2], r, need2_name));
        used[need2] = true;
    }
    if (avoid >= 0) used[avoid] = true;
    int extra = (int)nuage_rng_below(r, 3); /* 0..2 more */
    bool oused[N_OTHER] = {0};
    for (int e = 0; e < extra; e++) {
        if (nuage_rng_below(r, 2)) {
            int k = (int)nuage_rng_below(r, NUAGE_TOOL_N);
            if (used[k]) continue;
            used[k] = true;
            json_array_append_new(arr, nuage__tool_json(&k_defs[k], r, NULL));
        } else {
            int k = (int)nuage_rng_below(r, N_OTHER);
            if (oused[k]) continue;
            oused[k] = true;
            json_array_append_new(arr, nuage__tool_json(&k_other[k], r, NULL));
        }
    }
    if (json_array_size(arr) == 0) /* an empty list means "no tools" to the template */
        json_array_append_new(arr, nuage__tool_json(&k_other[nuage_rng_below(r, N_OTHER)], r, NULL));
    /* Fisher-Yates */
    for (size_t i = json_array_size(arr); i > 1; i--) {
        size_t j = (size_t)nuage_rng_below(r, i);
        json_t *a = json_incref(json_array_get(arr, i - 1)), *b = json_incref(json_array_get(arr, j));
        json_array_set_new(arr, i - 1, b);
        json_array_set_new(arr, j, a);
    }
    return arr;
}

/* ---- reference tools ------------------------------------------------------------------------ */

typedef struct {
    const char *s;
    bool err, divzero;
} nuage__calc;

static void nuage__skip(nuage__calc *c) {
    while (*c->s == ' ') c->s++;
}

static double nuage__expr(nuage__calc *c);

static double nuage__atom(nuage__calc *c) {
    nuage__skip(c);
    if (*c->s == '(') {
        c->s++;
        double v = nuage__expr(c);
        nuage__skip(c);
        if (*c->s != ')') c->err = true;
        else c->s++;
        return v;
    }
    if (*c->s == '-') {
        c->s++;
        return -nuage__atom(c);
    }
    if ((*c->s < '0' || *c->s > '9') && *c->s != '.') {
        c->err = true;
        return 0;
    }
    char *end;
    double v = strtod(c->s, &end);
    if (end == c->s) c->err = true;
    c->s = end;
    return v;
}

/* "*", "x", "×" (U+00D7) as multiplication, "/" and "÷" as division: 1, 2, or 0 */
static int nuage__mulop(nuage__calc *c) {
    nuage__skip(c);
    if (*c->s == '*' || *c->s == 'x') { c->s++; return 1; }
    if (!strncmp(c->s, "\xc3\x97", 2)) { c->s += 2; return 1; }
    if (*c->s == '/') { c->s++; return 2; }
    if (!strncmp(c->s, "\xc3\xb7", 2)) { c->s += 2; return 2; }
    return 0;
}

static double nuage__term(nuage__calc *c) {
    double v = nuage__atom(c);
    for (int op; !c->err && (op = nuage__mulop(c));) {
        double w = nuage__atom(c);
        if (op == 1) v *= w;
        else if (w == 0) { c->divzero = true; c->err = true; }
        else v /= w;
    }
    return v;
}

static double nuage__expr(nuage__calc *c) {
    double v = nuage__term(c);
    for (;;) {
        nuage__skip(c);
        if (c->err || (*c->s != '+' && *c->s != '-')) return v;
        char op = *c->s++;
        double w = nuage__term(c);
        v = op == '+' ? v + w : v - w;
    }
}

int nuage_tool_calc(const char *expr, double *out) {
    nuage__calc c = {.s = expr};
    double v = nuage__expr(&c);
    nuage__skip(&c);
    if (c.divzero) return NUAGE_E_RANGE;
    if (c.err || *c.s || !isfinite(v)) return NUAGE_E_INVAL;
    *out = v;
    return 0;
}

void nuage_tool_fmt_num(double v, char *out, size_t cap) {
    double rv = nearbyint(v);
    if (fabs(v - rv) < 1e-9 * (fabs(v) > 1 ? fabs(v) : 1) && fabs(rv) < 9e15) {
        snprintf(out, cap, "%lld", (long long)rv);
        return;
    }
    snprintf(out, cap, "%.6f", v);
    char *dot = strchr(out, '.');
    if (!dot) return;
    char *e = out + strlen(out);
    while (e > dot + 1 && e[-1] == '0') *--e = 0;
    if (e == dot + 1) *dot = 0;
}

/* unit -> (dimension, factor to the base unit); singular and plural names */
typedef struct {
    const char *one, *many;
    int dim;
    double f;
} nuage__unitdef;

static const nuage__unitdef k_udefs[] = {
    {"millimeter", "millimeters", 0, 0.001}, {"centimeter", "centimeters", 0, 0.01},
    {"meter", "meters", 0, 1}, {"kilometer", "kilometers", 0, 1000},
    {"inch", "inches", 0, 0.0254}, {"foot", "feet", 0, 0.3048}, {"yard", "yards", 0, 0.9144},
    {"mile", "miles", 0, 1609.344},
    {"gram", "grams", 1, 1}, {"kilogram", "kilograms", 1, 1000}, {"pound", "pounds", 1, 453.59237},
    {"ounce", "ounces", 1, 28.349523125},
    {"milliliter", "milliliters", 2, 0.001}, {"liter", "liters", 2, 1}, {"gallon", "gallons", 2, 3.785411784},
    {"second", "seconds", 3, 1}, {"minute", "minutes", 3, 60}, {"hour", "hours", 3, 3600},
    {"day", "days", 3, 86400}, {"week", "weeks", 3, 604800},
};
#define N_UDEFS (sizeof k_udefs / sizeof k_udefs[0])

static int nuage__unit(const char *s) {
    if (!s) return -1;
    for (size_t i = 0; i < N_UDEFS; i++)
        if (!strcmp(s, k_udefs[i].one) || !strcmp(s, k_udefs[i].many)) return (int)i;
    return -1;
}

/* Days since 1970-01-01 of y-m-d, or INT64_MIN when not a valid date. */
static long long nuage__days(const char *iso) {
    int y, m, d, n = 0;
    if (!iso || sscanf(iso, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || iso[10] || m < 1 || m > 12 ||
        d < 1 || d > nuage__days_in_month(y, m))
        return INT64_MIN;
    /* civil-from-days inverse (Howard Hinnant's algorithm, restated) */
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void nuage__iso(long long z, char *out, size_t cap) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    snprintf(out, cap, "%04lld-%02lld-%02lld", y + (m <= 2), m, d);
}

/* country, currency, main language: the lookup knowledge base */
static const char *const k_kb[][3] = {
    {"France", "Euro", "French"}, {"Germany", "Euro", "German"}, {"Italy", "Euro", "Italian"},
    {"Spain", "Euro", "Spanish"}, {"Portugal", "Euro", "Portuguese"}, {"Japan", "Yen", "Japanese"},
    {"China", "Yuan", "Chinese"}, {"Russia", "Ruble", "Russian"}, {"Egypt", "Pound", "Arabic"},
    {"Kenya", "Shilling", "Swahili"}, {"Canada", "Dollar", "English"}, {"Australia", "Dollar", "English"},
    {"Peru", "Sol", "Spanish"}, {"Chile", "Peso", "Spanish"}, {"Colombia", "Peso", "Spanish"},
    {"Cuba", "Peso", "Spanish"}, {"Norway", "Krone", "Norwegian"}, {"Sweden", "Krona", "Swedish"},
    {"Finland", "Euro", "Finnish"}, {"Denmark", "Krone", "Danish"}, {"Poland", "Zloty", "Polish"},
    {"Austria", "Euro", "German"}, {"Hungary", "Forint", "Hungarian"}, {"Greece", "Euro", "Greek"},
    {"Turkey", "Lira", "Turkish"}, {"Ireland", "Euro", "Irish"}, {"Belgium", "Euro", "Dutch"},
    {"Netherlands", "Euro", "Dutch"}, {"Switzerland", "Franc", "German"}, {"Czechia", "Koruna", "Czech"},
    {"Romania", "Leu", "Romanian"}, {"Bulgaria", "Euro", "Bulgarian"}, {"Ukraine", "Hryvnia", "Ukrainian"},
    {"Iran", "Rial", "Persian"}, {"Iraq", "Dinar", "Arabic"}, {"Thailand", "Baht", "Thai"},
    {"Vietnam", "Dong", "Vietnamese"}, {"Indonesia", "Rupiah", "Indonesian"}, {"Philippines", "Peso", "Filipino"},
    {"Nigeria", "Naira", "English"}, {"Ghana", "Cedi", "English"}, {"Morocco", "Dirham", "Arabic"},
    {"Pakistan", "Rupee", "Urdu"}, {"Nepal", "Rupee", "Nepali"}, {"Iceland", "Krona", "Icelandic"},
    {"Croatia", "Euro", "Croatian"}, {"Serbia", "Dinar", "Serbian"}, {"Qatar", "Riyal", "Arabic"},
    {"Lebanon", "Pound", "Arabic"}, {"Jordan", "Dinar", "Arabic"},
};
#define N_KB (sizeof k_kb / sizeof k_kb[0])

static char *nuage__errf(const char *msg, const char *what) {
    char buf[160];
    snprintf(buf, sizeof buf, "error: %s%s%s", msg, what ? " " : "", what ? what : "");
    return strdup(buf);
}

char *nuage_tool_exec(nuage_tool_kind kind, const json_t *args) {
    char buf[64];
    if (!json_is_object(args)) return nuage__errf("arguments must be an object", NULL);
    switch (kind) {
    case NUAGE_TOOL_CALC: {
        const char *e = json_string_value(json_object_get(args, "expression"));
        double v;
        if (!e) return nuage__errf("missing expression", NULL);
        int rc = nuage_tool_calc(e, &v);
        if (rc == NUAGE_E_RANGE) return nuage__errf("division by zero", NULL);
        if (rc) return nuage__errf("cannot parse", e);
        nuage_tool_fmt_num(v, buf, sizeof buf);
        return strdup(buf);
    }
    case NUAGE_TOOL_CONVERT: {
        json_t *jv = json_object_get(args, "value");
        const char *fs = json_string_value(json_object_get(args, "from"));
        const char *ts = json_string_value(json_object_get(args, "to"));
        if (!json_is_number(jv)) return nuage__errf("value must be a number", NULL);
        int a = nuage__unit(fs), b = nuage__unit(ts);
        if (a < 0) return nuage__errf("unknown unit", fs ? fs : "(none)");
        if (b < 0) return nuage__errf("unknown unit", ts ? ts : "(none)");
        if (k_udefs[a].dim != k_udefs[b].dim) return nuage__errf("cannot convert between these units", NULL);
        nuage_tool_fmt_num(json_number_value(jv) * k_udefs[a].f / k_udefs[b].f, buf, sizeof buf);
        return strdup(buf);
    }
    case NUAGE_TOOL_DATE_ADD: {
        long long z = nuage__days(json_string_value(json_object_get(args, "date")));
        json_t *jd = json_object_get(args, "days");
        if (z == INT64_MIN) return nuage__errf("date must be YYYY-MM-DD", NULL);
        if (!json_is_integer(jd)) return nuage__errf("days must be an integer", NULL);
        nuage__iso(z + json_integer_value(jd), buf, sizeof buf);
        return strdup(buf);
    }
    case NUAGE_TOOL_DATE_DIFF: {
        long long a = nuage__days(json_string_value(json_object_get(args, "start")));
        long long b = nuage__days(json_string_value(json_object_get(args, "end")));
        if (a == INT64_MIN || b == INT64_MIN) return nuage__errf("dates must be YYYY-MM-DD", NULL);
        snprintf(buf, sizeof buf, "%lld", b - a);
        return strdup(buf);
    }
    case NUAGE_TOOL_LOOKUP: {
        const char *e = json_string_value(json_object_get(args, "entity"));
        const char *f = json_string_value(json_object_get(args, "field"));
        int col = f && !strcmp(f, "currency") ? 1 : f && !strcmp(f, "language") ? 2 : 0;
        if (!col) return nuage__errf("unknown field", f ? f : "(none)");
        for (size_t i = 0; e && i < N_KB; i++)
            if (!strcmp(e, k_kb[i][0])) return strdup(k_kb[i][col]);
        return nuage__errf("not found:", e ? e : "(none)");
    }
    default: return nuage__errf("unknown tool", NULL);
    }
}

/* ---- conversations ---------------------------------------------------------------------------- */

static int64_t nuage__pow10i(int d) {
    int64_t p = 1;
    while (d-- > 0) p *= 10;
    return p;
}

static int64_t nuage__num(nuage_rng *r, int d) {
    return d <= 1 ? nuage_rng_range(r, 2, 9) : nuage_rng_range(r, nuage__pow10i(d - 1), nuage__pow10i(d) - 1);
}

/* Append the assistant call turn and the tool's result (computed here);
 * the result text goes to res (cap bytes). */
static int nuage__call(nuage_tool_item *it, int kind, const char *name, json_t *args, char *res, size_t cap) {
    char id[16];
    snprintf(id, sizeof id, "call_%zu", json_array_size(it->messages));
    char *out = nuage_tool_exec((nuage_tool_kind)kind, args);
    if (!out) { json_decref(args); return NUAGE_E_NOMEM; }
    snprintf(res, cap, "%s", out);
    json_t *call = json_pack("{s:s,s:s,s:[{s:s,s:s,s:{s:s,s:o}}]}", "role", "assistant", "content", "",
                             "tool_calls", "id", id, "type", "function", "function", "name", name,
                             "arguments", args);
    json_t *tool = json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", id, "content", out);
    free(out);
    if (!call || !tool) { json_decref(call); json_decref(tool); return NUAGE_E_NOMEM; }
    json_array_append_new(it->messages, call);
    json_array_append_new(it->messages, tool);
    return 0;
}

static int nuage__say(nuage_tool_item *it, const char *text) {
    return json_array_append_new(it->messages, json_pack("{s:s,s:s}", "role", "assistant", "content", text))
               ? NUAGE_E_NOMEM
               : 0;
}

/* Start the conversation: tools list and the question. */
static int nuage__begin(nuage_tool_item *it, json_t *tools, const char *question) {
    it->tools = tools;
    it->messages = json_pack("[{s:s,s:s}]", "role", "user", "content", question);
    return it->tools && it->messages ? 0 : NUAGE_E_NOMEM;
}

/* A question needing one tool call whose result is the answer. */
static int nuage__one_call(nuage_tool_item *it, nuage_rng *r, int kind, const char *question, json_t *args) {
    const char *name = NULL;
    int rc = nuage__begin(it, nuage__tools(r, kind, -1, -1, &name, NULL), question);
    if (rc) { json_decref(args); return rc; }
    it->first_tool = kind;
    it->first_args = json_deep_copy(args);
    char res[96];
    if ((rc = nuage__call(it, kind, name, args, res, sizeof res))) return rc;
    snprintf(it->answer, sizeof it->answer, "%s", res);
    return nuage__say(it, res);
}

static int nuage__gen_mul(nuage_tool_item *it, int digits, nuage_rng *r) {
    static const char *const q[] = {
        "What is %lld * %lld?", "What is %lld \xc3\x97 %lld?", "Compute %lld * %lld.",
        "Multiply %lld by %lld.", "What is the product of %lld and %lld?", "Calculate %lld times %lld.",
        "%lld \xc3\x97 %lld = ?", "What is %lld \xc3\x97 %lld, in thousands?", "What is %lld * %lld in thousands?",
    };
    int da = digits > 0 ? digits : (int)nuage_rng_range(r, 2, 6);
    int db = digits > 0 ? digits : (int)nuage_rng_range(r, 2, 6);
    int64_t a = nuage__num(r, da), b = nuage__num(r, db);
    int k = (int)nuage_rng_below(r, sizeof q / sizeof q[0]);
    bool thousands = k >= 7;
    snprintf(it->key, sizeof it->key, "tmul:%lld:%lld:%d", (long long)(a < b ? a : b), (long long)(a < b ? b : a),
             thousands);
    char question[128], expr[64];
    snprintf(question, sizeof question, q[k], (long long)a, (long long)b);
    snprintf(expr, sizeof expr, thousands ? "%lld * %lld / 1000" : "%lld * %lld", (long long)a, (long long)b);
    return nuage__one_call(it, r, NUAGE_TOOL_CALC, question, json_pack("{s:s}", "expression", expr));
}

static int nuage__gen_arith(nuage_tool_item *it, nuage_rng *r) {
    int form = (int)nuage_rng_below(r, 5);
    char question[128], expr[64];
    int64_t a, b, c;
    switch (form) {
    case 0: /* big addition */
    case 1: /* big subtraction */
        a = nuage__num(r, (int)nuage_rng_range(r, 5, 7));
        b = nuage__num(r, (int)nuage_rng_range(r, 3, 7));
        if (form == 1 && a < b) { int64_t s = a; a = b; b = s; }
        snprintf(question, sizeof question, nuage_rng_below(r, 2) ? "What is %lld %c %lld?" : "Compute %lld %c %lld.",
                 (long long)a, form ? '-' : '+', (long long)b);
        snprintf(expr, sizeof expr, "%lld %c %lld", (long long)a, form ? '-' : '+', (long long)b);
        break;
    case 2: /* division */
        a = nuage__num(r, (int)nuage_rng_range(r, 3, 6));
        b = nuage__num(r, (int)nuage_rng_range(r, 1, 3));
        snprintf(question, sizeof question, nuage_rng_below(r, 2) ? "What is %lld / %lld?" : "Divide %lld by %lld.",
                 (long long)a, (long long)b);
        snprintf(expr, sizeof expr, "%lld / %lld", (long long)a, (long long)b);
        break;
    case 3: /* a * b + c */
        a = nuage__num(r, (int)nuage_rng_range(r, 2, 4));
        b = nuage__num(r, (int)nuage_rng_range(r, 2, 4));
        c = nuage__num(r, (int)nuage_rng_range(r, 2, 4));
        snprintf(question, sizeof question, "What is %lld * %lld + %lld?", (long long)a, (long long)b, (long long)c);
        snprintf(expr, sizeof expr, "%lld * %lld + %lld", (long long)a, (long long)b, (long long)c);
        break;
    default: /* (a + b) * c */
        a = nuage__num(r, (int)nuage_rng_range(r, 2, 4));
        b = nuage__num(r, (int)nuage_rng_range(r, 2, 4));
        c = nuage__num(r, (int)nuage_rng_range(r, 2, 3));
        snprintf(question, sizeof question, "What is (%lld + %lld) * %lld?", (long long)a, (long long)b, (long long)c);
        snprintf(expr, sizeof expr, "(%lld + %lld) * %lld", (long long)a, (long long)b, (long long)c);
        break;
    }
    snprintf(it->key, sizeof it->key, "tarith:%s", expr);
    return nuage__one_call(it, r, NUAGE_TOOL_CALC, question, json_pack("{s:s}", "expression", expr));
}

/* A random convertible pair (a != b, same dimension); value v. */
static void nuage__pick_units(nuage_rng *r, int *a, int *b) {
    do {
        *a = (int)nuage_rng_below(r, N_UDEFS);
        *b = (int)nuage_rng_below(r, N_UDEFS);
    } while (*a == *b || k_udefs[*a].dim != k_udefs[*b].dim);
}

static int nuage__gen_convert(nuage_tool_item *it, nuage_rng *r) {
    static const char *const q[] = {"How many %s are in %lld %s?", "Convert %lld %s to %s.",
                                    "%lld %s is how many %s?", "What is %lld %s in %s?"};
    int a, b;
    nuage__pick_units(r, &a, &b);
    int64_t v = nuage_rng_range(r, 1, nuage__pow10i((int)nuage_rng_range(r, 1, 4)) - 1);
    const char *fu = v == 1 ? k_udefs[a].one : k_udefs[a].many, *tu = k_udefs[b].many;
    int k = (int)nuage_rng_below(r, 4);
    char question[160];
    if (k == 0) snprintf(question, sizeof question, q[0], tu, (long long)v, fu);
    else snprintf(question, sizeof question, q[k], (long long)v, fu, tu);
    snprintf(it->key, sizeof it->key, "tconv:%d:%d:%lld", a, b, (long long)v);
    return nuage__one_call(it, r, NUAGE_TOOL_CONVERT, question,
                           json_pack("{s:I,s:s,s:s}", "value", (json_int_t)v, "from", fu, "to", tu));
}

static void nuage__rand_date(nuage_rng *r, char *out, size_t cap) {
    int y = (int)nuage_rng_range(r, 1990, 2035), m = (int)nuage_rng_range(r, 1, 12);
    snprintf(out, cap, "%04d-%02d-%02d", y, m, (int)nuage_rng_range(r, 1, nuage__days_in_month(y, m)));
}

static int nuage__gen_date(nuage_tool_item *it, nuage_rng *r) {
    char d1[16], question[160];
    nuage__rand_date(r, d1, sizeof d1);
    if (nuage_rng_below(r, 2)) {
        static const char *const q[] = {"What is the date %d days after %s?", "What date comes %d days after %s?",
                                        "Add %d days to %s.", "Which date is %d days after %s?"};
        int n = (int)nuage_rng_range(r, 1, nuage_rng_below(r, 2) ? 99 : 999);
        snprintf(question, sizeof question, q[nuage_rng_below(r, 4)], n, d1);
        snprintf(it->key, sizeof it->key, "tdadd:%s:%d", d1, n);
        return nuage__one_call(it, r, NUAGE_TOOL_DATE_ADD, question,
                               json_pack("{s:s,s:i}", "date", d1, "days", n));
    }
    static const char *const q[] = {"How many days are there from %s to %s?", "How many days between %s and %s?",
                                    "Count the days from %s to %s.", "How many days is it from %s until %s?"};
    char d2[16];
    do nuage__rand_date(r, d2, sizeof d2);
    while (strcmp(d2, d1) <= 0);
    snprintf(question, sizeof question, q[nuage_rng_below(r, 4)], d1, d2);
    snprintf(it->key, sizeof it->key, "tddiff:%s:%s", d1, d2);
    return nuage__one_call(it, r, NUAGE_TOOL_DATE_DIFF, question, json_pack("{s:s,s:s}", "start", d1, "end", d2));
}

static int nuage__gen_lookup(nuage_tool_item *it, nuage_rng *r) {
    static const char *const qc[] = {"What is the currency of %s?", "Which currency does %s use?",
                                     "What currency is used in %s?", "Tell me the currency of %s."};
    static const char *const ql[] = {"What language is spoken in %s?", "What is the main language of %s?",
                                     "Which language do people speak in %s?", "Tell me the language of %s."};
    int c = (int)nuage_rng_below(r, N_KB);
    bool cur = nuage_rng_below(r, 2);
    int k = (int)nuage_rng_below(r, 4);
    char question[128];
    snprintf(question, sizeof question, cur ? qc[k] : ql[k], k_kb[c][0]);
    snprintf(it->key, sizeof it->key, "tlook:%s:%d:%d", k_kb[c][0], cur, k);
    return nuage__one_call(it, r, NUAGE_TOOL_LOOKUP, question,
                           json_pack("{s:s,s:s}", "entity", k_kb[c][0], "field", cur ? "currency" : "language"));
}

/* A question of the plain tasks, answered directly with tools offered. */
static int nuage__gen_direct(nuage_tool_item *it, nuage_rng *r, bool absent, bool heldout) {
    nuage_synth_item s;
    int rc, avoid = -1;
    if (!absent) {
        static const nuage_task ts[] = {NUAGE_TASK_ADD, NUAGE_TASK_ADD, NUAGE_TASK_SUB, NUAGE_TASK_REVERSE,
                                        NUAGE_TASK_SORT, NUAGE_TASK_COUNT, NUAGE_TASK_FACTS, NUAGE_TASK_DATE};
        nuage_task t = ts[nuage_rng_below(r, sizeof ts / sizeof ts[0])];
        nuage_synth_opts o = {.digits = t == NUAGE_TASK_ADD || t == NUAGE_TASK_SUB ? (int)nuage_rng_range(r, 1, 3) : 0,
                              .heldout = heldout};
        /* the date task's date_add questions need the tool: keep its weekday ones */
        for (int tries = 0;; tries++) {
            if ((rc = nuage_synth_gen(t, &o, r, &s))) return rc;
            if (t != NUAGE_TASK_DATE || !strncmp(s.key, "dow:", 4) || tries > 50) break;
        }
    } else {
        /* a tool question without its tool: the plain 2-digit mul / convert task */
        bool mul = nuage_rng_below(r, 2);
        nuage_synth_opts o = {.digits = mul ? 2 : 1, .heldout = heldout};
        if ((rc = nuage_synth_gen(mul ? NUAGE_TASK_MUL : NUAGE_TASK_CONVERT, &o, r, &s))) return rc;
        avoid = mul ? NUAGE_TOOL_CALC : NUAGE_TOOL_CONVERT;
    }
    snprintf(it->key, sizeof it->key, "%s", s.key); /* the plain question's split */
    snprintf(it->answer, sizeof it->answer, "%s", s.answer);
    it->first_tool = -1;
    if ((rc = nuage__begin(it, nuage__tools(r, -1, -1, avoid, NULL, NULL), s.question))) return rc;
    return nuage__say(it, s.reply);
}

static int nuage__gen_twostep(nuage_tool_item *it, nuage_rng *r) {
    int a, b;
    nuage__pick_units(r, &a, &b);
    int64_t v = nuage_rng_range(r, 2, 999), m = nuage__num(r, (int)nuage_rng_range(r, 2, 4));
    const char *fu = k_udefs[a].many, *tu = k_udefs[b].many;
    char question[192];
    snprintf(question, sizeof question, "Convert %lld %s to %s, then multiply by %lld.", (long long)v, fu, tu,
             (long long)m);
    snprintf(it->key, sizeof it->key, "ttwo:%d:%d:%lld:%lld", a, b, (long long)v, (long long)m);
    const char *n1 = NULL, *n2 = NULL;
    int rc = nuage__begin(it, nuage__tools(r, NUAGE_TOOL_CONVERT, NUAGE_TOOL_CALC, -1, &n1, &n2), question);
    if (rc) return rc;
    it->first_tool = NUAGE_TOOL_CONVERT;
    it->first_args = json_pack("{s:I,s:s,s:s}", "value", (json_int_t)v, "from", fu, "to", tu);
    char res[96], expr[128];
    if ((rc = nuage__call(it, NUAGE_TOOL_CONVERT, n1, json_deep_copy(it->first_args), res, sizeof res))) return rc;
    snprintf(expr, sizeof expr, "%s * %lld", res, (long long)m);
    if ((rc = nuage__call(it, NUAGE_TOOL_CALC, n2, json_pack("{s:s}", "expression", expr), res, sizeof res)))
        return rc;
    snprintf(it->answer, sizeof it->answer, "%s", res);
    return nuage__say(it, res);
}

static int nuage__gen_error(nuage_tool_item *it, nuage_rng *r) {
    char question[160], res[96], reply[160];
    int rc;
    if (nuage_rng_below(r, 2)) { /* division by zero */
        int64_t a = nuage__num(r, (int)nuage_rng_range(r, 2, 5));
        snprintf(question, sizeof question, "What is %lld / 0?", (long long)a);
        snprintf(it->key, sizeof it->key, "terr:div:%lld", (long long)a);
        char expr[64];
        snprintf(expr, sizeof expr, "%lld / 0", (long long)a);
        const char *name = NULL;
        if ((rc = nuage__begin(it, nuage__tools(r, NUAGE_TOOL_CALC, -1, -1, &name, NULL), question))) return rc;
        it->first_tool = NUAGE_TOOL_CALC;
        it->first_args = json_pack("{s:s}", "expression", expr);
        if ((rc = nuage__call(it, NUAGE_TOOL_CALC, name, json_deep_copy(it->first_args), res, sizeof res))) return rc;
    } else { /* a country the knowledge base does not have */
        static const char *const unknown[] = {"Atlantis", "Narnia", "Wakanda", "Genovia", "Elbonia", "Freedonia"};
        const char *c = unknown[nuage_rng_below(r, sizeof unknown / sizeof unknown[0])];
        bool cur = nuage_rng_below(r, 2);
        snprintf(question, sizeof question, cur ? "What is the currency of %s?" : "What language is spoken in %s?", c);
        snprintf(it->key, sizeof it->key, "terr:kb:%s:%d", c, cur);
        const char *name = NULL;
        if ((rc = nuage__begin(it, nuage__tools(r, NUAGE_TOOL_LOOKUP, -1, -1, &name, NULL), question))) return rc;
        it->first_tool = NUAGE_TOOL_LOOKUP;
        it->first_args = json_pack("{s:s,s:s}", "entity", c, "field", cur ? "currency" : "language");
        if ((rc = nuage__call(it, NUAGE_TOOL_LOOKUP, name, json_deep_copy(it->first_args), res, sizeof res)))
            return rc;
    }
    snprintf(reply, sizeof reply, "Sorry, the tool failed: %s", res + (strncmp(res, "error: ", 7) ? 0 : 7));
    snprintf(it->answer, sizeof it->answer, "unknown");
    return nuage__say(it, reply);
}

static int nuage__gen_tool_once(int t, int digits, bool heldout, nuage_rng *r, nuage_tool_item *it) {
    switch (t) {
    case NUAGE_TT_MUL: return nuage__gen_mul(it, digits, r);
    case NUAGE_TT_ARITH: return nuage__gen_arith(it, r);
    case NUAGE_TT_CONVERT: return nuage__gen_convert(it, r);
    case NUAGE_TT_DATE: return nuage__gen_date(it, r);
    case NUAGE_TT_LOOKUP: return nuage__gen_lookup(it, r);
    case NUAGE_TT_DIRECT: return nuage__gen_direct(it, r, false, heldout);
    case NUAGE_TT_TWOSTEP: return nuage__gen_twostep(it, r);
    case NUAGE_TT_ERROR: return nuage__gen_error(it, r);
    case NUAGE_TT_ABSENT: return nuage__gen_direct(it, r, true, heldout);
    default: return NUAGE_E_INVAL;
    }
}

void nuage_tool_item_free(nuage_tool_item *it) {
    json_decref(it->tools);
    json_decref(it->messages);
    json_decref(it->first_args);
    it->tools = it->messages = it->first_args = NULL;
}

int nuage_tool_gen(int t, int digits, bool heldout, nuage_rng *r, nuage_tool_item *it) {
    memset(it, 0, sizeof *it);
    if (t >= NUAGE_TT_N || digits < 0 || digits > 9) return NUAGE_E_INVAL;
    if (t < 0) { /* the training mixture, weights in percent */
        static const int w[NUAGE_TT_N] = {24, 10, 14, 14, 10, 18, 4, 2, 4};
        int x = (int)nuage_rng_below(r, 100);
        t = 0;
        while (x >= w[t]) x -= w[t++];
    }
    for (int tries = 0; tries < 10000; tries++) {
        memset(it, 0, sizeof *it);
        it->task = (nuage_tool_task)t;
        it->first_tool = -1;
        int rc = nuage__gen_tool_once(t, digits, heldout, r, it);
        if (rc) { nuage_tool_item_free(it); return rc; }
        if (nuage_synth_key_heldout(it->key) == heldout) return 0;
        nuage_tool_item_free(it);
    }
    return NUAGE_E_RANGE;
}

char *nuage_tool_item_jsonl(const nuage_tool_item *it) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    bool ok = true;
    for (size_t i = 1; ok && i < json_array_size(it->messages); i++) {
        if (strcmp(json_string_value(json_object_get(json_array_get(it->messages, i), "role")), "assistant"))
            continue;
        json_t *prefix = json_array();
        for (size_t k = 0; prefix && k <= i; k++) json_array_append(prefix, json_array_get(it->messages, k));
        json_t *o = prefix ? json_pack("{s:o,s:O,s:s,s:s}", "messages", prefix, "tools", it->tools, "task",
                                       nuage_tool_task_name(it->task), "answer", it->answer)
                           : NULL;
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        ok = s && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
        free(s);
    }
    if (fclose(f) != 0) ok = false;
    if (!ok) { free(out); return NULL; }
    return out;
}
