/*
 * test_constrain_jsonschema_keywords.c - the JSON Schema compiler keyword by
 * keyword, without ../shared: each case compiles a schema against a small
 * byte-level token table and checks instances that must be accepted (a
 * complete sentence) and instances that must be refused (the bytes leave
 * the grammar, or the end is not accepting), plus refusals with their
 * keyword and JSON pointer. The shared-data yardstick is
 * test_constrain_jsonschema.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "test_util.h"

#include "constrain/cg_internal.h"
#include "constrain/grammar.h"
#include "nuage/nuage.h"

static nuage_cg_tokens *T;

static int setup(void **st) {
    (void)st;
    static char bytes[256];
    const char *p[257];
    size_t l[257];
    uint8_t k[257];
    for (int i = 0; i < 256; i++) { bytes[i] = (char)i; p[i] = bytes + i; l[i] = 1; k[i] = 0; }
    p[256] = "</s>"; l[256] = 4; k[256] = 2;
    return ncg_tokens_from_strings(p, l, k, 257, &T);
}
static int teardown(void **st) { (void)st; nuage_cg_tokens_free(T); return 0; }

/* Compile; 0 and *g, or the error code with err filled. */
static int compile(const char *schema, int max_ws, nuage_grammar **g, nuage_cg_error *err) {
    json_error_t je;
    json_t *s = json_loads(schema, JSON_DECODE_ANY, &je);
    if (!s) fail_msg("bad test schema %s: %s", schema, je.text);
    ncg_builder *b = ncg_builder_new();
    assert_non_null(b);
    nuage_cg_json_opts o = { .max_ws = max_ws };
    ncg_expr e;
    int rc = ncg_json_schema(b, s, &o, &e, err);
    if (rc == 0) {
        ncg_rule r = ncg_rule_new(b, "root");
        assert_int_equal(ncg_rule_set(b, r, e), 0);
        rc = ncg_builder_finish(b, r, T, g, err);
    }
    ncg_builder_free(b);
    json_decref(s);
    return rc;
}

static bool accepts(nuage_grammar *g, const char *text) {
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    bool ok = nuage_matcher_accept_bytes(m, text, strlen(text)) == 0 && nuage_matcher_is_accepting(m);
    nuage_matcher_free(m);
    return ok;
}

/* yes / no: NULL-terminated lists of instances */
static void check(const char *schema, const char *const *yes, const char *const *no) {
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    int rc = compile(schema, 4, &g, &err);
    if (rc) fail_msg("schema %s refused: %s at %s", schema, err.msg, err.pointer);
    for (int i = 0; yes && yes[i]; i++)
        if (!accepts(g, yes[i])) fail_msg("schema %s: valid %s refused", schema, yes[i]);
    for (int i = 0; no && no[i]; i++)
        if (accepts(g, no[i])) fail_msg("schema %s: invalid %s accepted", schema, no[i]);
    nuage_grammar_free(g);
}
#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void refused(const char *schema, const char *pointer, const char *word) {
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    int rc = compile(schema, 4, &g, &err);
    if (rc != NUAGE_E_UNSUPPORTED) fail_msg("schema %s: expected a refusal, got %d", schema, rc);
    assert_string_equal(err.pointer, pointer);
    if (!strstr(err.msg, word)) fail_msg("schema %s: message '%s' does not name %s", schema, err.msg, word);
}

static void test_types(void **st) {
    (void)st;
    check("{\"type\":\"null\"}", L("null"), L("nul", "0", "\"null\""));
    check("{\"type\":\"boolean\"}", L("true", "false"), L("null", "1", "tru"));
    check("{\"type\":[\"string\",\"null\"]}", L("\"a\"", "null"), L("1", "[]"));
    check("{\"type\":\"integer\"}", L("0", "-7", "123", "1.0", "-2.000"), L("1.5", "01", "-", "1e2", "+1"));
    check("{\"$schema\":\"http://json-schema.org/draft-04/schema#\",\"type\":\"integer\"}", L("3", "-3"), L("1.0"));
    check("{\"type\":\"number\"}", L("0", "-0", "1.5", "1e5", "1E+5", "-2.5e-3", "0.0"), L("01", ".5", "1.", "1e", "--1", "NaN"));
    check("{}", L("null", "{\"a\":[1,{\"b\":\"c\"}]}", "[]", "-1.5e3", "\"x\""), L("{", "[1,]", "{\"a\"}"));
    check("true", L("1", "\"s\""), L("tru"));
    check("{\"type\":\"array\"}", L("[]", "[1,\"a\",null]"), L("{}"));
    check("{\"type\":\"object\"}", L("{}", "{\"a\":1,\"b\":[]}"), L("[]", "{\"a\":1,}"));
    check("{\"title\":\"t\",\"description\":\"d\",\"examples\":[1],\"x-unknown\":5,\"type\":\"null\"}", L("null"), L("1"));
}

static void test_numbers(void **st) {
    (void)st;
    check("{\"type\":\"integer\",\"minimum\":-5,\"maximum\":12}", L("-5", "0", "-0", "12", "7", "12.0"),
          L("-6", "13", "100", "-10", "12.5"));
    check("{\"type\":\"integer\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":100}", L("1", "99", "50"),
          L("0", "-0", "100", "-1"));
    check("{\"type\":\"number\",\"minimum\":0.5,\"maximum\":2.25}",
          L("0.5", "0.50", "1", "2.25", "2.2", "5e-1", "2.25e0", "1.0e+0"), L("0.49", "2.26", "3", "-1", "2.250001", "5e-2", "3e0"));
    check("{\"type\":\"number\",\"exclusiveMinimum\":0}", L("0.0001", "1e-300", "5", "1e300"), L("0", "-0", "0.0", "-1e-9", "0e5"));
    check("{\"type\":\"number\",\"maximum\":-1.5}", L("-1.5", "-2", "-1e10", "-1.5e0"), L("-1.4", "0", "1", "-1"));
    check("{\"$schema\":\"http://json-schema.org/draft-04/schema#\",\"type\":\"number\",\"minimum\":1,\"exclusiveMinimum\":true}",
          L("1.01", "2"), L("1", "1.0", "0.5"));
    check("{\"type\":\"number\",\"minimum\":100}", L("100", "1e2", "1.5e2", "1000", "100.0"), L("99.99", "9.9e1", "-100"));
    check("{\"type\":\"integer\",\"multipleOf\":3}", L("0", "3", "-9", "300", "12.0"), L("1", "10", "3.5", "-4"));
    check("{\"type\":\"number\",\"multipleOf\":1}", L("1", "1.0", "-4"), L("1.5"));
    check("{\"const\":1}", L("1", "1.0", "1e0", "1.00e+0"), L("2", "true", "\"1\""));
    check("{\"enum\":[0.1,-2]}", L("0.1", "1e-1", "-2", "-2.0"), L("0.10000001", "2"));
    refused("{\"type\":\"number\",\"multipleOf\":0.01}", "/multipleOf", "multipleOf");
}

static void test_strings(void **st) {
    (void)st;
    check("{\"type\":\"string\"}",
          L("\"\"", "\"a b\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\\u00E9\"", "\"\xc3\xa9\"", "\"\\ud83d\\ude00\"",
            "\"\xf0\x9f\x98\x80\""),
          L("\"a", "\"\x01\"", "\"\\x\"", "\"\\u12\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\xc3\"", "'a'"));
    check("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
          L("\"ab\"", "\"abc\"", "\"\xc3\xa9\xc3\xa9\"", "\"\\n\\t\"", "\"\xf0\x9f\x98\x80x\"", "\"\\ud83d\\ude00ab\""),
          L("\"a\"", "\"abcd\"", "\"\xc3\xa9\"", "\"\\ud83d\\ude00\""));
    check("{\"const\":\"a/b\\\"\"}", L("\"a/b\\\"\"", "\"a\\/b\\u0022\"", "\"\\u0061/b\\\"\""), L("\"a/b\"", "\"A/b\\\"\""));
    /* container enum values checked against the container keywords */
    check("{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":2,\"enum\":[[\"a\"],[1],[\"a\",\"b\",\"c\"],[]]}",
          L("[\"a\"]", "[]"), L("[1]", "[\"a\",\"b\",\"c\"]"));
    check("{\"type\":\"object\",\"properties\":{\"k\":{\"enum\":[1,2]}},\"required\":[\"k\"],"
          "\"additionalProperties\":false,\"enum\":[{\"k\":1},{\"k\":3},{\"j\":1},{\"k\":2,\"x\":0}]}",
          L("{\"k\":1}"), L("{\"k\":3}", "{\"j\":1}", "{\"k\":2,\"x\":0}"));
    check("{\"enum\":[\"x\",\"y\",null]}", L("\"x\"", "\"y\"", "null"), L("\"z\"", "\"xy\""));
    check("{\"type\":\"string\",\"enum\":[\"x\",1]}", L("\"x\""), L("1"));
}

static void test_objects(void **st) {
    (void)st;
    const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"},"
                    "\"c\":{\"type\":\"boolean\"}},\"required\":[\"b\"],\"additionalProperties\":false}";
    check(s, L("{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\",\"c\":true}", "{\"b\":\"x\",\"c\":false}",
               "{ \"a\" : 1 , \"b\" : \"x\" }", "{\n  \"b\": \"x\"\n}"),
          L("{}", "{\"a\":1}", "{\"b\":1}", "{\"b\":\"x\",\"d\":1}", "{\"a\":1,,\"b\":\"x\"}", "{,\"b\":\"x\"}",
            "{\"b\":\"x\",}", "{\"a\":1.5,\"b\":\"x\"}"));
    /* optional only: comma placement */
    check("{\"properties\":{\"a\":{},\"b\":{},\"c\":{}},\"additionalProperties\":false}",
          L("{}", "{\"a\":1}", "{\"b\":1}", "{\"c\":1}", "{\"a\":1,\"c\":2}", "{\"a\":1,\"b\":2,\"c\":3}"),
          L("{,}", "{\"a\":1,}", "{,\"a\":1}", "{\"a\":1\"b\":2}"));
    /* extras: any other key, any value; a declared key keeps its schema
     * whatever its spelling */
    check("{\"properties\":{\"a\":{\"type\":\"integer\"}}}",
          L("{\"a\":1}", "{\"x\":\"y\"}", "{\"x\":1,\"a\":2,\"ab\":[]}", "{\"\":0}", "{\"\\u0062\":true}"),
          L("{\"a\":\"s\"}", "{\"\\u0061\":\"s\"}", "{\"\\u0061\":1.5}"));
    check("{\"properties\":{\"a\":{}},\"additionalProperties\":{\"type\":\"integer\"}}",
          L("{\"a\":\"s\",\"b\":1}", "{\"b\":2}"), L("{\"b\":\"s\"}"));
    check("{\"type\":\"object\",\"minProperties\":1,\"maxProperties\":2}", L("{\"a\":1}", "{\"a\":1,\"b\":2}"),
          L("{}", "{\"a\":1,\"b\":2,\"c\":3}"));
    check("{\"type\":\"object\",\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}},\"additionalProperties\":false}",
          L("{}", "{\"x-a\":1,\"x-\":2}"), L("{\"a\":1}", "{\"x-a\":\"s\"}"));
    /* patterns without additionalProperties false: non-matching keys take
     * additionalProperties (any value when absent) */
    check("{\"type\":\"object\",\"patternProperties\":{\"^[a-z]{1,3}$\":{\"type\":\"integer\"}}}",
          L("{}", "{\"ab\":1}", "{\"abcd\":\"s\"}", "{\"A\":\"s\"}", "{\"\":null}", "{\"a\":1,\"B\":[]}"),
          L("{\"ab\":\"s\"}", "{\"\\u0061\":\"s\"}"));
    check("{\"patternProperties\":{\"^x-\":{\"type\":\"string\"}},\"additionalProperties\":{\"type\":\"boolean\"}}",
          L("{\"x-a\":\"s\",\"y\":true,\"x\":false}"), L("{\"x-a\":true}", "{\"y\":\"s\"}"));
    check("{\"patternProperties\":{\".*\":{\"type\":\"number\"}},\"maxProperties\":1}",
          L("{\"a\":1}", "{}"), L("{\"a\":\"s\"}", "{\"a\":1,\"b\":2}"));
    /* required names matching a pattern take its schema */
    check("{\"properties\":{\"city\":{\"type\":\"string\"}},\"patternProperties\":{\"^line[1-3]$\":{\"type\":\"string\"}},"
          "\"additionalProperties\":false,\"required\":[\"city\",\"line1\"]}",
          L("{\"city\":\"a\",\"line1\":\"b\"}", "{\"city\":\"a\",\"line1\":\"b\",\"line3\":\"c\"}"),
          L("{\"city\":\"a\"}", "{\"city\":\"a\",\"line1\":1}", "{\"city\":\"a\",\"line1\":\"b\",\"line4\":\"c\"}"));
    refused("{\"properties\":{\"xa\":{}},\"patternProperties\":{\"^x\":{}},\"additionalProperties\":false}",
            "/patternProperties", "patternProperties");
    /* strict: no extra keys without additionalProperties */
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    json_t *j = json_loads("{\"type\":\"object\",\"properties\":{\"a\":{}}}", 0, NULL);
    ncg_builder *b = ncg_builder_new();
    nuage_cg_json_opts o = { .max_ws = 0, .strict = true };
    ncg_expr e;
    assert_int_equal(ncg_json_schema(b, j, &o, &e, &err), 0);
    ncg_rule r = ncg_rule_new(b, "root");
    assert_int_equal(ncg_rule_set(b, r, e), 0);
    assert_int_equal(ncg_builder_finish(b, r, T, &g, &err), 0);
    assert_true(accepts(g, "{\"a\":1}"));
    assert_false(accepts(g, "{\"b\":1}"));
    assert_false(accepts(g, "{ \"a\":1}"));   /* max_ws 0 */
    nuage_grammar_free(g);
    ncg_builder_free(b);
    json_decref(j);
}

/* Undeclared keys in every JSON spelling: a key is "declared" by its
 * decoded value, however it is written (json_schema_str.c builds the
 * not-in-names trie with shared tails when the names are plain ASCII, and
 * per node otherwise; both must agree with the decoded comparison). */
static void test_extra_key_spellings(void **st) {
    (void)st;
    const char *plain = "{\"type\":\"object\",\"properties\":{\"ab\":{\"type\":\"string\"},\"ac\":{\"type\":\"string\"},"
                        "\"b\":{\"type\":\"string\"}},\"additionalProperties\":{\"type\":\"integer\"}}";
    check(plain,
          L("{\"ab\":\"x\"}", "{\"\\u0061b\":\"x\"}", "{\"a\\u0063\":\"x\"}", "{\"\\u0062\":\"x\"}", "{\"ad\":1}",
            "{\"a\\u0064\":1}", "{\"a\":1}", "{\"abc\":1}", "{\"ab\\u0063\":1}", "{\"AB\":1}", "{\"\\u0041B\":1}",
            "{\"\xc3\xa9\":1}", "{\"a\xc3\xa9\":1}", "{\"\\u00e9\":1}", "{\"\\u00E9b\":1}", "{\"\\u0100\":1}",
            "{\"a\\u0AbC\":1}", "{\"\\uD7FF\":1}", "{\"\\ud83d\\ude00\":1}", "{\"a\\ud83d\\ude00\":1}",
            "{\"a\\/\":1}", "{\"\\n\":1}", "{\"a\\\"\":1}", "{\"\\u0000\":1}", "{\"\":1}", "{\"b\\t\":1}",
            "{\"\xe2\x82\xac\":1}", "{\"\xf0\x9f\x98\x80\":1}"),
          L("{\"ab\":1}", "{\"\\u0061b\":1}", "{\"a\\u0062\":1}", "{\"\\u0061\\u0063\":1}", "{\"\\u0062\":1}",
            "{\"\\u0041\\u0042\":\"x\"}", "{\"ad\":\"x\"}", "{\"\\ud83d\":1}", "{\"\\udc00\":1}",
            "{\"a\\ud83d\":1}", "{\"a\\x\":1}", "{\"a\\u00\":1}", "{\"a\x01\":1}"));
    /* names with a short-escaped or non-ASCII character: the per-node path */
    const char *other = "{\"type\":\"object\",\"properties\":{\"a/b\":{\"type\":\"string\"},\"\xc3\xa9\":{\"type\":\"string\"}},"
                        "\"additionalProperties\":{\"type\":\"integer\"}}";
    check(other,
          L("{\"a/b\":\"x\"}", "{\"a\\/b\":\"x\"}", "{\"\\u00e9\":\"x\"}", "{\"\xc3\xa9\":\"x\"}", "{\"\\u00ea\":1}",
            "{\"a/c\":1}", "{\"a\\/\":1}", "{\"\\u00e9\\u00e9\":1}"),
          L("{\"a\\/b\":1}", "{\"a\\u002fb\":1}", "{\"\\u00E9\":1}", "{\"\xc3\xa9\":1}"));
}

/* Identical inline copies share one rule (json_schema.c memoizes on the
 * schemas' serialization); copies that differ only in property order or
 * in number type must not be conflated. */
static void test_identical_copies(void **st) {
    (void)st;
    const char *ab = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},"
                     "\"required\":[\"a\",\"b\"],\"additionalProperties\":false}";
    const char *ba = "{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"string\"},\"a\":{\"type\":\"integer\"}},"
                     "\"required\":[\"a\",\"b\"],\"additionalProperties\":false}";
    char schema[1024];
    snprintf(schema, sizeof schema,
             "{\"type\":\"object\",\"properties\":{\"x\":%s,\"y\":%s,\"z\":%s,"
             "\"p\":{\"type\":\"array\",\"items\":{\"enum\":[1]}},\"q\":{\"type\":\"array\",\"items\":{\"enum\":[1.5]}}},"
             "\"additionalProperties\":false}", ab, ba, ab);
    check(schema,
          L("{\"x\":{\"a\":1,\"b\":\"s\"}}", "{\"y\":{\"b\":\"s\",\"a\":1}}", "{\"z\":{\"a\":1,\"b\":\"s\"}}",
            "{\"x\":{\"a\":1,\"b\":\"s\"},\"y\":{\"b\":\"s\",\"a\":1},\"z\":{\"a\":2,\"b\":\"t\"}}",
            "{\"p\":[1,1]}", "{\"q\":[1.5]}"),
          L("{\"x\":{\"b\":\"s\",\"a\":1}}", "{\"y\":{\"a\":1,\"b\":\"s\"}}", "{\"z\":{\"b\":\"s\",\"a\":1}}",
            "{\"p\":[1.5]}", "{\"q\":[1]}"));
}

static void test_arrays(void **st) {
    (void)st;
    check("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3}",
          L("[1]", "[1,2,3]", "[ 1 , 2 ]"), L("[]", "[1,2,3,4]", "[\"a\"]", "[1,]"));
    check("{\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}",
          L("[]", "[\"a\"]", "[\"a\",1]"), L("[1]", "[\"a\",1,2]", "[\"a\",\"b\"]"));
    check("{\"items\":[{\"type\":\"string\"}],\"additionalItems\":{\"type\":\"boolean\"}}",
          L("[]", "[\"a\"]", "[\"a\",true,false]"), L("[true]", "[\"a\",1]"));
    check("{\"prefixItems\":[{\"const\":1}],\"minItems\":2}", L("[1,\"x\"]", "[1,2,3]"), L("[1]", "[]", "[2,2]"));
}

static void test_combinators_and_refs(void **st) {
    (void)st;
    check("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}]}", L("1", "\"a\""), L("\"ab\"", "1.5"));
    check("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", L("1", "\"a\""), L("null"));
    check("{\"oneOf\":[{\"properties\":{\"k\":{\"const\":\"a\"},\"x\":{\"type\":\"integer\"}},\"required\":[\"k\"],\"type\":\"object\"},"
          "{\"properties\":{\"k\":{\"const\":\"b\"}},\"required\":[\"k\"],\"type\":\"object\"}]}",
          L("{\"k\":\"a\",\"x\":1}", "{\"k\":\"b\",\"x\":\"s\"}"), L("{\"k\":\"a\",\"x\":\"s\"}", "{\"k\":\"c\"}"));
    /* overlapping branches: exactly one must hold */
    check("{\"oneOf\":[{\"type\":\"number\"},{\"minimum\":2}]}", L("1", "1.5", "\"s\"", "-3", "null"), L("2", "7"));
    check("{\"type\":\"object\",\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}",
          L("{\"a\":1}", "{\"b\":1}"), L("{}", "{\"a\":1,\"b\":2}"));
    refused("{\"oneOf\":[{\"pattern\":\"a\"},{\"minLength\":2}]}", "/oneOf", "oneOf");
    check("{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
          "{\"properties\":{\"a\":{\"minimum\":5},\"b\":{}},\"additionalProperties\":false}]}",
          L("{\"a\":5}", "{\"a\":7,\"b\":null}"), L("{\"a\":4}", "{\"b\":1}", "{\"a\":5,\"c\":1}"));
    check("{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
          "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"additionalProperties\":false}},"
          "\"$ref\":\"#/$defs/node\"}",
          L("{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"kids\":[{\"v\":3}]}]}"),
          L("{\"v\":1,\"kids\":[{\"v\":\"x\"}]}", "{\"kids\":[1]}"));
    check("{\"definitions\":{\"a/b\":{\"type\":\"integer\"}},\"properties\":{\"x\":{\"$ref\":\"#/definitions/a~1b\"}}}",
          L("{\"x\":1}"), L("{\"x\":\"s\"}"));
    /* draft 7: siblings of $ref are ignored */
    check("{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"definitions\":{\"i\":{\"type\":\"integer\"}},"
          "\"$ref\":\"#/definitions/i\",\"maximum\":3}", L("1", "10"), L("\"s\""));
    check("{\"definitions\":{\"i\":{\"type\":\"integer\"}},\"$ref\":\"#/definitions/i\",\"maximum\":3}", L("1"), L("10"));
}

static void test_not(void **st) {
    (void)st;
    check("{\"not\":{\"type\":\"null\"}}", L("1", "\"a\"", "[]", "{}", "true"), L("null"));
    check("{\"type\":\"integer\",\"not\":{\"minimum\":3}}", L("2", "-5"), L("3", "10"));
    check("{\"not\":{\"enum\":[1,\"a\",null,true,[]]}}", L("2", "0.5", "\"b\"", "false", "[1]", "{}", "\"\\u0062\""),
          L("1", "1.0", "\"a\"", "\"\\u0061\"", "null", "true", "[]"));
    check("{\"type\":\"string\",\"not\":{\"maxLength\":2}}", L("\"abc\""), L("\"ab\"", "\"\""));
    check("{\"type\":\"object\",\"not\":{\"required\":[\"a\"]}}", L("{}", "{\"b\":1}"), L("{\"a\":1}"));
    check("{\"not\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"number\"}]}}", L("null", "[]"), L("1", "\"s\""));
    check("{\"not\":{\"not\":{\"type\":\"boolean\"}}}", L("true"), L("1"));
    check("{\"type\":\"object\",\"not\":{\"properties\":{\"a\":{\"type\":\"string\"}}}}",
          L("{\"a\":1}", "{\"a\":null,\"b\":\"x\"}"), L("{}", "{\"a\":\"s\"}", "{\"b\":1}"));
    refused("{\"not\":{\"pattern\":\"a\"}}", "/not/pattern", "pattern");
    refused("{\"not\":{\"type\":\"integer\"}}", "/not/type", "integer");
}

static void test_conditionals(void **st) {
    (void)st;
    check("{\"if\":{\"type\":\"string\"},\"then\":{\"maxLength\":1},\"else\":{\"type\":\"integer\"}}",
          L("\"a\"", "5"), L("\"ab\"", "1.5", "null"));
    check("{\"$schema\":\"http://json-schema.org/draft-06/schema#\",\"if\":{\"type\":\"string\"},\"then\":false}",
          L("\"a\""), NULL);   /* unknown before draft 7 */
    check("{\"dependencies\":{\"a\":[\"b\"],\"c\":{\"required\":[\"d\"]}}}",
          L("{}", "{\"b\":1}", "{\"a\":1,\"b\":2}", "{\"c\":1,\"d\":2}", "5"),
          L("{\"a\":1}", "{\"c\":1}", "{\"a\":1,\"c\":2,\"d\":3}"));
    check("{\"dependentRequired\":{\"a\":[\"b\"]}}", L("{\"a\":1,\"b\":2}"), L("{\"a\":1}"));
}

static void test_refusals(void **st) {
    (void)st;
    refused("{\"properties\":{\"a\":{\"uniqueItems\":true}}}", "/properties/a/uniqueItems", "uniqueItems");
    refused("{\"items\":{\"if\":{\"pattern\":\"a\"},\"then\":{}}}", "/items/if/pattern", "pattern");
    refused("{\"contains\":{}}", "/contains", "contains");
    refused("{\"$ref\":\"http://example.com/s.json\"}", "/$ref", "$ref");
    refused("{\"type\":\"string\",\"pattern\":\"a\",\"maxLength\":3}", "/pattern", "pattern");
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    assert_int_equal(compile("{\"$ref\":\"#/nope\"}", 4, &g, &err), NUAGE_E_INVAL);
    assert_int_equal(compile("{\"type\":5}", 4, &g, &err), NUAGE_E_INVAL);
    /* uniqueItems false constrains nothing */
    check("{\"uniqueItems\":false,\"items\":{\"type\":\"integer\"}}", L("[1,1]"), L("[\"a\"]"));
}

static void test_whitespace_bound(void **st) {
    (void)st;
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    assert_int_equal(compile("{\"type\":\"array\"}", 3, &g, &err), 0);
    assert_true(accepts(g, "[   1,   2   ]"));
    assert_false(accepts(g, "[    1]"));
    assert_false(accepts(g, " [1]"));   /* no whitespace around the value */
    nuage_grammar_free(g);
}

static void test_pattern_and_format(void **st) {
    (void)st;
    check("{\"type\":\"string\",\"pattern\":\"^[a-c]+$\"}", L("\"abc\"", "\"a\""), L("\"\"", "\"abd\""));
    check("{\"type\":\"string\",\"pattern\":\"b\"}", L("\"abc\"", "\"b\""), L("\"ac\""));
    /* a one-character class repeated: the length bounds narrow its repeat */
    check("{\"type\":\"string\",\"pattern\":\"^[a-c\\\\-]+$\",\"minLength\":2,\"maxLength\":3}",
          L("\"ab\"", "\"a-c\"", "\"\\u0061b\""), L("\"a\"", "\"abca\"", "\"ad\""));
    check("{\"type\":\"string\",\"pattern\":\"^\\\\d{2,8}$\",\"maxLength\":3}", L("\"12\"", "\"123\""), L("\"1\"", "\"1234\""));
    check("{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9_]*[a-z0-9]$\",\"minLength\":3,\"maxLength\":4}",
          L("\"ab1\"", "\"a_b1\""), L("\"ab\"", "\"abcde\"", "\"1ab\"", "\"ab_\""));
    check("{\"type\":\"string\",\"pattern\":\"^x-[0-9]{4}$\",\"maxLength\":6}", L("\"x-1234\""), L("\"x-123\""));
    check("{\"type\":\"string\",\"pattern\":\"^x-[0-9]{4}$\",\"maxLength\":5}", NULL, L("\"x-1234\""));
    check("{\"type\":\"string\",\"format\":\"date\"}", L("\"2024-02-29\""), L("\"2024-13-01\"", "\"x\""));
    /* enum values filtered by pattern and format */
    check("{\"enum\":[\"ab\",\"b\",\"2024-01-01\"],\"pattern\":\"^[a-z]\"}", L("\"ab\"", "\"b\""), L("\"2024-01-01\""));
    check("{\"enum\":[\"ab\",\"2024-01-01\",5],\"format\":\"date\"}", L("\"2024-01-01\"", "5"), L("\"ab\""));
    check("{\"type\":\"string\",\"format\":\"date\",\"minLength\":1}", L("\"2024-02-29\""), L("\"\""));
    refused("{\"type\":\"string\",\"format\":\"date\",\"maxLength\":5}", "/format", "format");
    check("{\"type\":\"string\",\"format\":\"not-a-known-format\"}", L("\"anything\""), L("1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_extra_key_spellings),
        cmocka_unit_test(test_identical_copies),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_combinators_and_refs),
        cmocka_unit_test(test_not),
        cmocka_unit_test(test_conditionals),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_whitespace_bound),
        cmocka_unit_test(test_pattern_and_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
