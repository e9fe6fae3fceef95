/*
 * tojson.c - values to JSON text as Python's json.dumps writes it, and
 * JSON (jansson) to values.
 *
 * Hugging Face replaces Jinja2's |tojson with
 * json.dumps(x, ensure_ascii=False, indent=None, separators=None,
 * sort_keys=False), so this is a byte-exact json.dumps: separators ", " and
 * ": " (item separator "," when indenting), each nesting level on its own
 * lines indented by `indent`, empty containers as [] and {}, keys in
 * insertion order (or sorted), non-string keys converted like Python
 * (1 -> "1", True -> "true", None -> "null"), floats as repr() with
 * NaN/Infinity, strings escaping only ", \ and control characters (plus
 * everything outside printable ASCII, as lowercase \uXXXX with surrogate
 * pairs, when ensure_ascii is true). Undefined, namespaces and macros are
 * "not JSON serializable" errors, as in Python.
 *
 * From JSON, integers stay ints, reals stay floats, objects keep their key
 * order (jansson iterates objects in insertion order).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

static int put(jctx *c, int line, jbuf *b, const char *s, size_t n) {
    int rc = nuage__jbuf_put(b, s, n);
    return rc ? nuage__jfail_code(c, line, rc) : 0;
}

static int jstring_out(jctx *c, int line, jbuf *b, const char *s, size_t n, bool ascii) {
    if (put(c, line, b, "\"", 1) < 0) return -1;
    size_t run = 0;   /* start of a run of bytes copied verbatim */
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        char esc[16];
        const char *e = NULL;
        size_t el = 0, adv = 1;
        if (ch == '"') e = "\\\"";
        else if (ch == '\\') e = "\\\\";
        else if (ch == '\n') e = "\\n";
        else if (ch == '\r') e = "\\r";
        else if (ch == '\t') e = "\\t";
        else if (ch == '\b') e = "\\b";
        else if (ch == '\f') e = "\\f";
        else if (ch < 0x20 || (ascii && ch == 0x7F)) { snprintf(esc, sizeof esc, "\\u%04x", ch); e = esc; }
        else if (ascii && ch >= 0x80) {
            uint32_t cp = nuage__utf8_dec(s + i, n - i, &adv);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
            }
            e = esc;
        }
        if (e) {
            el = strlen(e);
            if (put(c, line, b, s + run, i - run) < 0 || put(c, line, b, e, el) < 0) return -1;
            i += adv;
            run = i;
        } else {
            i++;
        }
    }
    if (put(c, line, b, s + run, n - run) < 0) return -1;
    return put(c, line, b, "\"", 1);
}

static int json_float(jctx *c, int line, jbuf *b, double f) {
    char tmp[40];
    if (isnan(f)) strcpy(tmp, "NaN");
    else if (isinf(f)) strcpy(tmp, f < 0 ? "-Infinity" : "Infinity");
    else nuage__jfloat_repr(f, tmp);
    return put(c, line, b, tmp, strlen(tmp));
}

static int newline_indent(jctx *c, int line, jbuf *b, const jjson_opts *o, int level) {
    if (put(c, line, b, "\n", 1) < 0) return -1;
    for (int i = 0; i < level; i++)
        if (put(c, line, b, o->indent, o->indent_len) < 0) return -1;
    return 0;
}

/* JSON text of a dict key (Python converts int/float/bool/None keys). */
static int json_key(jctx *c, int line, jbuf *b, jval k, const jjson_opts *o) {
    char tmp[40];
    switch (k.t) {
    case JV_STR: return jstring_out(c, line, b, k.u.s->s, k.u.s->len, o->ensure_ascii);
    case JV_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)k.u.i); break;
    case JV_BOOL: strcpy(tmp, k.u.b ? "true" : "false"); break;
    case JV_NONE: strcpy(tmp, "null"); break;
    case JV_FLOAT:
        if (isnan(k.u.f)) strcpy(tmp, "NaN");
        else if (isinf(k.u.f)) strcpy(tmp, k.u.f < 0 ? "-Infinity" : "Infinity");
        else nuage__jfloat_repr(k.u.f, tmp);
        break;
    default:
        return nuage__jfail(c, line, "keys must be str, int, float, bool or None, not %s", nuage__jv_typename(k));
    }
    return jstring_out(c, line, b, tmp, strlen(tmp), false);
}

static int to_json(jctx *c, int line, jbuf *b, jval v, const jjson_opts *o, int level) {
    char tmp[40];
    if (level > NUAGE__J_MAX_NEST * 4) return nuage__jfail(c, line, "JSON nesting too deep");
    switch (v.t) {
    case JV_NONE: return put(c, line, b, "null", 4);
    case JV_BOOL: return v.u.b ? put(c, line, b, "true", 4) : put(c, line, b, "false", 5);
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        return put(c, line, b, tmp, strlen(tmp));
    case JV_FLOAT: return json_float(c, line, b, v.u.f);
    case JV_STR: return jstring_out(c, line, b, v.u.s->s, v.u.s->len, o->ensure_ascii);
    case JV_LIST: {
        const jlist *l = v.u.l;
        if (l->lazy) return nuage__jfail(c, line, "Object of type %s is not JSON serializable", nuage__jv_typename(v));
        if (l->n == 0) return put(c, line, b, "[]", 2);
        if (put(c, line, b, "[", 1) < 0) return -1;
        if (o->has_indent && newline_indent(c, line, b, o, level + 1) < 0) return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (i) {
                if (put(c, line, b, o->item_sep, o->item_sep_len) < 0) return -1;
                if (o->has_indent && newline_indent(c, line, b, o, level + 1) < 0) return -1;
            }
            if (to_json(c, line, b, l->v[i], o, level + 1) < 0) return -1;
        }
        if (o->has_indent && newline_indent(c, line, b, o, level) < 0) return -1;
        return put(c, line, b, "]", 1);
    }
    case JV_DICT: {
        const jdict *d = v.u.d;
        if (d->n == 0) return put(c, line, b, "{}", 2);
        size_t *order = malloc(d->n * sizeof *order);
        if (!order) return nuage__jfail_code(c, line, NUAGE_E_NOMEM);
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) {   /* insertion sort: stable, fallible compare */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    int r;
                    if (nuage__jv_cmp(d->k[x], d->k[order[j - 1]], &r) < 0) {
                        jval other = d->k[order[j - 1]];
                        free(order);
                        return nuage__jfail(c, line, "'<' not supported between instances of '%s' and '%s'",
                                            nuage__jv_typename(d->k[x]), nuage__jv_typename(other));
                    }
                    if (r >= 0) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        int rc = put(c, line, b, "{", 1);
        if (rc == 0 && o->has_indent) rc = newline_indent(c, line, b, o, level + 1);
        for (size_t i = 0; rc == 0 && i < d->n; i++) {
            size_t k = order[i];
            if (i) {
                rc = put(c, line, b, o->item_sep, o->item_sep_len);
                if (rc == 0 && o->has_indent) rc = newline_indent(c, line, b, o, level + 1);
            }
            if (rc == 0) rc = json_key(c, line, b, d->k[k], o);
            if (rc == 0) rc = put(c, line, b, o->key_sep, o->key_sep_len);
            if (rc == 0) rc = to_json(c, line, b, d->v[k], o, level + 1);
        }
        free(order);
        if (rc == 0 && o->has_indent) rc = newline_indent(c, line, b, o, level);
        if (rc == 0) rc = put(c, line, b, "}", 1);
        return rc;
    }
    default:
        return nuage__jfail(c, line, "Object of type %s is not JSON serializable", nuage__jv_typename(v));
    }
}

int nuage__jv_to_json(jctx *c, int line, jbuf *b, jval v, const jjson_opts *o) {
    size_t before = b->n;
    if (to_json(c, line, b, v, o, 0) < 0) return -1;
    return nuage__jwork(c, line, b->n - before);
}

static int from_json(const json_t *j, jval *out, int depth) {
    if (depth > 4096) return NUAGE_E_INVAL;
    switch (json_typeof(j)) {
    case JSON_NULL: *out = jv_none(); return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_INTEGER: *out = jv_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        if (!nuage__utf8_valid(s, n)) return NUAGE_E_INVAL;
        *out = nuage__jv_str(s, n);
        return out->t == JV_MISSING ? NUAGE_E_NOMEM : 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        jlist *l = nuage__jlist_new(n);
        if (!l) return NUAGE_E_NOMEM;
        for (size_t i = 0; i < n; i++) {
            int rc = from_json(json_array_get(j, i), &l->v[l->n], depth + 1);
            if (rc) { jv_unref(jv_list(l)); return rc; }
            l->n++;
        }
        *out = jv_list(l);
        return 0;
    }
    case JSON_OBJECT: {
        jdict *d = nuage__jdict_new(json_object_size(j));
        if (!d) return NUAGE_E_NOMEM;
        const char *key;
        size_t klen;
        json_t *val;
        json_object_keylen_foreach((json_t *)j, key, klen, val) {
            jval k = nuage__jv_str(key, klen), v;
            if (k.t == JV_MISSING) { jv_unref(jv_dict(d)); return NUAGE_E_NOMEM; }
            int rc = from_json(val, &v, depth + 1);
            if (rc) { jv_unref(k); jv_unref(jv_dict(d)); return rc; }
            if ((rc = nuage__jdict_append(d, k, v))) { jv_unref(jv_dict(d)); return rc; }
        }
        *out = jv_dict(d);
        return 0;
    }
    }
    return NUAGE_E_INVAL;
}

int nuage__jv_from_json(const void *json, jval *out) { return from_json(json, out, 0); }
