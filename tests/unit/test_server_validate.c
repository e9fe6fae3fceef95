/*
 * test_server_validate.c - OpenAI request validation: every violation is
 * a 400 naming the field, valid values land in the sampler parameters,
 * messages are normalised for the template.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "runtime/validate.h"
#include "test_util.h"

static json_t *parse(const char *s) {
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j) fail_msg("bad test JSON %s: %s", s, je.text);
    return j;
}

/* Parse chat params; returns e.param on failure or NULL on success. */
static const char *chat_param_error(const char *body, bool chat, nuage__apierr *e) {
    json_t *j = parse(body);
    nuage__gen_params g;
    bool ok = nuage__parse_gen_params(j, chat, 512, 4, &g, e);
    nuage__gen_params_free(&g);
    json_decref(j);
    if (!ok) assert_int_equal(e->status, 400);
    return ok ? NULL : e->param;
}

static void test_gen_param_violations_name_the_field(void **state) {
    (void)state;
    static const struct { const char *body; bool chat; const char *param; } cases[] = {
        {"{\"temperature\": 2.5}", true, "temperature"},
        {"{\"temperature\": -1}", true, "temperature"},
        {"{\"temperature\": \"1\"}", true, "temperature"},
        {"{\"temperature\": true}", true, "temperature"},
        {"{\"top_p\": 1.01}", true, "top_p"},
        {"{\"top_p\": -0.01}", true, "top_p"},
        {"{\"presence_penalty\": 2.01}", true, "presence_penalty"},
        {"{\"frequency_penalty\": -2.01}", true, "frequency_penalty"},
        {"{\"n\": 0}", true, "n"},
        {"{\"n\": 5}", true, "n"},              /* max_n = 4 */
        {"{\"n\": 1.5}", true, "n"},
        {"{\"max_tokens\": 0}", true, "max_tokens"},
        {"{\"max_tokens\": \"10\"}", true, "max_tokens"},
        {"{\"max_completion_tokens\": 0}", true, "max_completion_tokens"},
        {"{\"max_completion_tokens\": 0}", false, NULL}, /* not a completions field: ignored */
        {"{\"logprobs\": 1}", true, "logprobs"},
        {"{\"logprobs\": true}", false, "logprobs"},
        {"{\"logprobs\": 21}", false, "logprobs"},
        {"{\"top_logprobs\": 2}", true, "top_logprobs"},
        {"{\"logprobs\": true, \"top_logprobs\": 21}", true, "top_logprobs"},
        {"{\"logprobs\": true, \"top_logprobs\": -1}", true, "top_logprobs"},
        {"{\"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", true, "stop"},
        {"{\"stop\": [\"a\", 3]}", true, "stop[1]"},
        {"{\"stop\": {}}", true, "stop"},
        {"{\"logit_bias\": []}", true, "logit_bias"},
        {"{\"logit_bias\": {\"512\": 1}}", true, "logit_bias.512"},
        {"{\"logit_bias\": {\"-1\": 1}}", true, "logit_bias.-1"},
        {"{\"logit_bias\": {\"7x\": 1}}", true, "logit_bias.7x"},
        {"{\"logit_bias\": {\"7\": -100.5}}", true, "logit_bias.7"},
        {"{\"logit_bias\": {\"7\": \"1\"}}", true, "logit_bias.7"},
        {"{\"seed\": 1.5}", true, "seed"},
        {"{\"stream\": 1}", true, "stream"},
        {"{\"stream_options\": {\"include_usage\": true}}", true, "stream_options"},
        {"{\"stream\": true, \"stream_options\": {\"include_usage\": 1}}", true, "stream_options.include_usage"},
        {"{\"stream\": true, \"stream_options\": 3}", true, "stream_options"},
        {"{\"user\": 3}", true, "user"},
        {"{\"echo\": \"yes\"}", false, "echo"},
        {"{\"min_p\": 1.5}", true, "min_p"},
        {"{\"repetition_penalty\": 0}", true, "repetition_penalty"},
        {"{\"top_k\": \"5\"}", true, "top_k"},
        {"{\"unknown_field\": [1, {\"x\": 2}], \"temperature\": null}", true, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nuage__apierr e = {0};
        const char *got = chat_param_error(cases[i].body, cases[i].chat, &e);
        if (!cases[i].param) {
            if (got) fail_msg("case %zu (%s): unexpected error on %s: %s", i, cases[i].body, got, e.message);
            continue;
        }
        if (!got || strcmp(got, cases[i].param))
            fail_msg("case %zu (%s): want param %s, got %s", i, cases[i].body, cases[i].param, got ? got : "(ok)");
        assert_string_equal(e.type, "invalid_request_error");
        assert_true(strlen(e.message) > 10);
    }
}

static void test_gen_params_values(void **state) {
    (void)state;
    json_t *j = parse("{\"temperature\": 0.7, \"top_p\": 0.9, \"n\": 3, \"max_tokens\": 10,"
                      " \"max_completion_tokens\": 12, \"presence_penalty\": 0.5, \"frequency_penalty\": -0.25,"
                      " \"seed\": 42, \"stop\": [\"x\", \"\", \"yz\"], \"logit_bias\": {\"5\": -100, \"9\": 2.5},"
                      " \"logprobs\": true, \"top_logprobs\": 4, \"stream\": true,"
                      " \"stream_options\": {\"include_usage\": true}, \"top_k\": 40, \"min_p\": 0.05,"
                      " \"repetition_penalty\": 1.1, \"ignore_eos\": true}");
    nuage__gen_params g;
    nuage__apierr e = {0};
    assert_true(nuage__parse_gen_params(j, true, 512, 4, &g, &e));
    assert_true(fabsf(g.sp.temperature - 0.7f) < 1e-6f);
    assert_true(fabsf(g.sp.top_p - 0.9f) < 1e-6f);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.max_tokens, 12); /* max_completion_tokens wins */
    assert_true(fabsf(g.sp.presence_penalty - 0.5f) < 1e-6f);
    assert_true(fabsf(g.sp.frequency_penalty + 0.25f) < 1e-6f);
    assert_true(g.seed_given);
    assert_int_equal(g.sp.seed, 42);
    assert_int_equal(g.n_stops, 2); /* the empty string is dropped */
    assert_string_equal(g.stops[0], "x");
    assert_string_equal(g.stops[1], "yz");
    assert_int_equal(g.sp.n_bias, 2);
    float b5 = 0, b9 = 0;
    for (int i = 0; i < 2; i++) {
        if (g.sp.bias_tokens[i] == 5) b5 = g.sp.bias_values[i];
        if (g.sp.bias_tokens[i] == 9) b9 = g.sp.bias_values[i];
    }
    assert_true(b5 == -100.0f && b9 == 2.5f);
    assert_int_equal(g.top_logprobs, 4);
    assert_true(g.stream && g.include_usage && g.ignore_eos);
    assert_int_equal(g.sp.top_k, 40);
    assert_true(fabsf(g.sp.min_p - 0.05f) < 1e-6f);
    assert_true(fabsf(g.sp.repetition_penalty - 1.1f) < 1e-6f);
    nuage__gen_params_free(&g);
    json_decref(j);

    /* Defaults: OpenAI's (temperature 1, top_p 1), no logprobs, n 1. */
    j = parse("{}");
    assert_true(nuage__parse_gen_params(j, false, 512, 4, &g, &e));
    assert_true(g.sp.temperature == 1.0f && g.sp.top_p == 1.0f);
    assert_int_equal(g.top_logprobs, -1);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.max_tokens, -1);
    assert_false(g.seed_given);
    nuage__gen_params_free(&g);
    json_decref(j);

    /* top_p 0 is allowed and means "the top token only". */
    j = parse("{\"top_p\": 0, \"logprobs\": 0}");
    assert_true(nuage__parse_gen_params(j, false, 512, 4, &g, &e));
    assert_true(g.sp.top_p > 0 && g.sp.top_p < 1e-6f);
    assert_int_equal(g.top_logprobs, 0);
    nuage__gen_params_free(&g);
    json_decref(j);
}

static void test_messages(void **state) {
    (void)state;
    static const struct { const char *body; const char *param; } bad[] = {
        {"{}", "messages"},
        {"{\"messages\": []}", "messages"},
        {"{\"messages\": \"hi\"}", "messages"},
        {"{\"messages\": [3]}", "messages[0]"},
        {"{\"messages\": [{\"content\": \"a\"}]}", "messages[0].role"},
        {"{\"messages\": [{\"role\": 1, \"content\": \"a\"}]}", "messages[0].role"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"robot\", \"content\": \"b\"}]}", "messages[1].role"},
        {"{\"messages\": [{\"role\": \"user\"}]}", "messages[0].content"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": null}]}", "messages[0].content"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": {}}]}", "messages[0].content"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [\"a\"]}]}", "messages[0].content[0]"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", "messages[0].content[0].type"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 1}]}]}", "messages[0].content[0].text"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"name\": 5}]}", "messages[0].name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = parse(bad[i].body);
        nuage__apierr e = {0};
        json_t *m = nuage__parse_messages(j, &e);
        if (m) fail_msg("case %zu (%s) accepted", i, bad[i].body);
        assert_int_equal(e.status, 400);
        if (strcmp(e.param, bad[i].param)) fail_msg("case %zu: want %s got %s", i, bad[i].param, e.param);
        json_decref(j);
    }
    json_t *j = parse("{\"messages\": [{\"role\": \"developer\", \"content\": \"be nice\"},"
                      " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}], \"extra\": 1},"
                      " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": []}, {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"r\"}]}");
    nuage__apierr e = {0};
    json_t *m = nuage__parse_messages(j, &e);
    assert_non_null(m);
    assert_int_equal(json_array_size(m), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")), "a\nb");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 1), "extra")), 1);
    assert_true(json_is_null(json_object_get(json_array_get(m, 2), "content")));
    assert_non_null(json_object_get(json_array_get(m, 2), "tool_calls"));
    /* the request body is not modified */
    assert_true(json_is_array(json_object_get(json_array_get(json_object_get(j, "messages"), 1), "content")));
    json_decref(m);
    json_decref(j);
}

static void test_model_and_error_json(void **state) {
    (void)state;
    const char *names[] = {"stories", "/path/stories.gguf"};
    nuage__apierr e = {0};
    json_t *j = parse("{\"model\": \"stories\"}");
    assert_true(nuage__check_model(j, names, 2, &e));
    json_decref(j);
    j = parse("{}");
    assert_true(nuage__check_model(j, names, 2, &e));
    json_decref(j);
    j = parse("{\"model\": \"gpt-4\"}");
    assert_false(nuage__check_model(j, names, 2, &e));
    assert_int_equal(e.status, 404);
    assert_string_equal(e.code, "model_not_found");
    json_t *ej = nuage__err_json(&e);
    json_t *o = json_object_get(ej, "error");
    assert_string_equal(json_string_value(json_object_get(o, "code")), "model_not_found");
    assert_string_equal(json_string_value(json_object_get(o, "param")), "model");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "invalid_request_error");
    assert_non_null(strstr(json_string_value(json_object_get(o, "message")), "gpt-4"));
    json_decref(ej);
    json_decref(j);
    /* A null param and code serialise as JSON null. */
    nuage__err400(&e, NULL, "x");
    ej = nuage__err_json(&e);
    assert_true(json_is_null(json_object_get(json_object_get(ej, "error"), "param")));
    assert_true(json_is_null(json_object_get(json_object_get(ej, "error"), "code")));
    json_decref(ej);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gen_param_violations_name_the_field),
        cmocka_unit_test(test_gen_params_values),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_model_and_error_json),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
