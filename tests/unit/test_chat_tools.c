/*
 * test_chat_tools.c - tool conversations through the real chat templates.
 *
 * An OpenAI client's second turn of a tool loop (an assistant message with
 * content null and tool_calls whose arguments are a JSON string, then a
 * tool message) goes through request validation and the per-template
 * shaping (chat_prep.c) and is rendered with every vendor template of
 * ../shared/templates: it must render, show the call's name and
 * arguments and the tool's answer, and never the text "None". Also: the
 * traits read from template sources, developer -> system, and the
 * validation errors of malformed tool fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "server/http.h"
#include "test_util.h"

static json_t *parse(const char *s) {
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j) fail_msg("bad test JSON %s: %s", s, je.text);
    return j;
}

static const char *const tools_json =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather of a city\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";

/* system, user, assistant(null content + call), tool, as the openai SDK sends them. */
static const char *const loop_json =
    "{\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"abc123XYZ\",\"type\":\"function\","
    "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"abc123XYZ\",\"content\":\"sunny, 21 C\"}]}";

static char *render(nuage_template *t, const char *body_json, bool with_tools, char *err, size_t errlen, int *rc) {
    json_t *body = parse(body_json);
    nuage__apierr e;
    memset(&e, 0, sizeof e);
    json_t *msgs = nuage__parse_messages(body, &e);
    if (!msgs) fail_msg("validation refused the conversation: %s", e.message);
    assert_int_equal(nuage__messages_for_template(msgs, nuage_template_traits_of(t)), 0);
    json_t *tools = with_tools ? parse(tools_json) : NULL;
    nuage_template_input in = {.add_generation_prompt = true, .bos_token = "<s>", .eos_token = "</s>", .now = 0};
    char *out = NULL;
    size_t n = 0;
    *rc = nuage_template_render_json(t, msgs, tools, NULL, &in, &out, &n, err, errlen);
    json_decref(tools);
    json_decref(msgs);
    json_decref(body);
    return out;
}

static void test_tool_loop_every_template(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    static const char *const files[] = {
        "Qwen-Qwen3-0.6B.jinja", "Qwen-Qwen2.5-7B-Instruct.jinja",
        "meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja",
        "Mistral-Small-3.2-24B-Instruct-2506.jinja", "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", "deepseek-ai-DeepSeek-V3.1.jinja",
        "openai-gpt-oss-120b.jinja", "moonshotai-Kimi-K2.jinja", "google-gemma-4-31B-it.jinja",
        NULL, /* the built-in ChatML */
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char rel[256], err[512];
        const char *name = files[i] ? files[i] : "chatml";
        char *src;
        size_t len = 0;
        if (files[i]) {
            snprintf(rel, sizeof rel, "templates/%s", files[i]);
            src = nuage_test_read_file(nuage_test_shared_path(rel), &len);
        } else {
            src = strdup(nuage_template_chatml());
            len = strlen(src);
        }
        assert_non_null(src);
        nuage_template *t = NULL;
        assert_int_equal(nuage_template_parse(src, len, &t, err, sizeof err), 0);
        free(src);
        int rc;
        char *out = render(t, loop_json, files[i] != NULL, err, sizeof err, &rc);
        if (rc) {
            print_message("FAIL %s: %s\n", name, err);
            failures++;
        } else {
            bool ok = strstr(out, "sunny, 21 C") && !strstr(out, "None");
            /* ChatML renders no tool syntax; every vendor template shows the call */
            if (files[i]) ok = ok && strstr(out, "get_weather") && strstr(out, "Paris");
            if (files[i] && strstr(out, "\\\"city\\\"")) ok = false; /* arguments encoded twice */
            if (!ok) {
                print_message("FAIL %s: rendering lacks the call or the answer:\n%s\n", name, out);
                failures++;
            }
        }
        free(out);
        nuage_template_free(t);
    }
    assert_int_equal(failures, 0);
}

static void test_traits(void **state) {
    (void)state;
    const char *ds = "{% if message['content'] is none %}x{% endif %}{{ tool['function']['arguments'] + '\\n' }}";
    nuage_template_traits tr = nuage_template_traits_scan(ds, strlen(ds));
    assert_true(tr.content_none);
    assert_true(tr.args_string);
    assert_false(tr.developer_role);
    const char *qw = "{% if message.reasoning_content is not none %}{{ tool_call.arguments | tojson }}{% endif %}";
    tr = nuage_template_traits_scan(qw, strlen(qw));
    assert_false(tr.content_none); /* reasoning_content is another field */
    assert_false(tr.args_string);
    const char *dv = "{% if message.role == 'developer' %}{% endif %}";
    assert_true(nuage_template_traits_scan(dv, strlen(dv)).developer_role);
    assert_false(tr.thinking_field);
    assert_false(tr.effort_var);
    /* DeepSeek V3.1's `thinking` is a variable, not a message field */
    const char *v31 = "{% if thinking %}<think>{% endif %}";
    assert_false(nuage_template_traits_scan(v31, strlen(v31)).thinking_field);
}

static void test_shaping(void **state) {
    (void)state;
    /* developer -> system without a developer role; null -> "" unless the
     * template tests for none; arguments object unless concatenated */
    json_t *body = parse("{\"messages\":[{\"role\":\"developer\",\"content\":\"Be brief.\"},"
                         "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\","
                         "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]}]}");
    nuage__apierr e;
    json_t *m = nuage__parse_messages(body, &e);
    assert_non_null(m);
    nuage_template_traits plain = {0};
    assert_int_equal(nuage__messages_for_template(m, &plain), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "role")), "system");
    json_t *a = json_array_get(m, 1);
    assert_string_equal(json_string_value(json_object_get(a, "content")), "");
    json_t *args = json_object_get(json_object_get(json_array_get(json_object_get(a, "tool_calls"), 0), "function"), "arguments");
    assert_true(json_is_object(args));
    assert_int_equal(json_integer_value(json_object_get(args, "x")), 1);
    /* the request body is untouched */
    json_t *orig = json_object_get(json_object_get(json_array_get(json_object_get(json_array_get(
        json_object_get(body, "messages"), 1), "tool_calls"), 0), "function"), "arguments");
    assert_true(json_is_string(orig));
    json_decref(m);

    m = nuage__parse_messages(body, &e);
    nuage_template_traits ds = {.content_none = true, .args_string = true, .developer_role = true};
    assert_int_equal(nuage__messages_for_template(m, &ds), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "role")), "developer");
    a = json_array_get(m, 1);
    assert_true(json_is_null(json_object_get(a, "content")));
    args = json_object_get(json_object_get(json_array_get(json_object_get(a, "tool_calls"), 0), "function"), "arguments");
    assert_string_equal(json_string_value(args), "{\"x\":1}");
    json_decref(m);
    json_decref(body);
}

static void test_tool_field_errors(void **state) {
    (void)state;
    static const struct { const char *body; const char *param; } cases[] = {
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages[0].tool_call_id"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\",\"tool_call_id\":5}]}", "messages[0].tool_call_id"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":{}}]}", "messages[0].tool_calls"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]}", "messages[0].tool_calls"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\"}]}]}",
         "messages[0].tool_calls[0].function"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\",\"function\":{\"arguments\":\"{}\"}}]}]}",
         "messages[0].tool_calls[0].function.name"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":3}}]}]}",
         "messages[0].tool_calls[0].function.arguments"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"code\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
         "messages[0].tool_calls[0].type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *b = parse(cases[i].body);
        nuage__apierr e;
        memset(&e, 0, sizeof e);
        json_t *m = nuage__parse_messages(b, &e);
        if (m) fail_msg("accepted: %s", cases[i].body);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.param, cases[i].param);
        json_decref(b);
    }
}

/* gpt-oss: what an OpenAI client sends (reasoning in `reasoning_content`,
 * reasoning_effort as a request field) renders exactly as the reference
 * renders the template's own inputs (`thinking`, the reasoning_effort
 * variable): the cases reasoning_tool_call and reasoning_effort_high of
 * ../shared/templates, through chat_prep.c. */
static json_t *find_case(const char *file, const char *name) {
    json_error_t je;
    char rel[128];
    snprintf(rel, sizeof rel, "templates/%s", file);
    json_t *all = json_load_file(nuage_test_shared_path(rel), 0, &je);
    if (!all) fail_msg("cannot load %s: %s", rel, je.text);
    size_t i;
    json_t *c;
    json_array_foreach(all, i, c) {
        if (!strcmp(json_string_value(json_object_get(c, "template")), "openai-gpt-oss-120b.jinja") &&
            !strcmp(json_string_value(json_object_get(c, "case")), name)) {
            json_incref(c);
            json_decref(all);
            return c;
        }
    }
    json_decref(all);
    fail_msg("no case %s", name);
    return NULL;
}

static void test_harmony_openai_shape(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    size_t len = 0;
    char *src = nuage_test_read_file(nuage_test_shared_path("templates/openai-gpt-oss-120b.jinja"), &len);
    assert_non_null(src);
    nuage_template *t = NULL;
    char err[512];
    assert_int_equal(nuage_template_parse(src, len, &t, err, sizeof err), 0);
    free(src);
    const nuage_template_traits *tr = nuage_template_traits_of(t);
    assert_true(tr->thinking_field);
    assert_true(tr->effort_var);
    static const char *const cases[][2] = {{"cases.json", "reasoning_tool_call"},
                                           {"cases.json", "reasoning_history"},
                                           {"cases_variables.json", "reasoning_effort_high"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        json_t *c = find_case(cases[k][0], cases[k][1]);
        /* the client's shape: thinking -> reasoning_content; the effort
         * from the request, the other variables as chat_template_kwargs */
        json_t *body = json_pack("{s:O}", "messages", json_object_get(c, "messages"));
        json_t *msgs_in = json_object_get(body, "messages");
        size_t i;
        json_t *m;
        json_array_foreach(msgs_in, i, m) {
            json_t *th = json_object_get(m, "thinking");
            if (!th) continue;
            json_t *copy = json_deep_copy(m);
            json_object_set(copy, "reasoning_content", th);
            json_object_del(copy, "thinking");
            json_array_set_new(msgs_in, i, copy);
        }
        json_t *vars = json_deep_copy(json_object_get(c, "variables"));
        const char *effort = NULL;
        char effort_buf[16] = "";
        if (vars && json_is_string(json_object_get(vars, "reasoning_effort"))) {
            snprintf(effort_buf, sizeof effort_buf, "%s", json_string_value(json_object_get(vars, "reasoning_effort")));
            effort = effort_buf;
            json_object_del(vars, "reasoning_effort");
        }
        nuage__apierr e;
        memset(&e, 0, sizeof e);
        json_t *msgs = nuage__parse_messages(body, &e);
        assert_non_null(msgs);
        assert_int_equal(nuage__messages_for_template(msgs, tr), 0);
        json_t *kw = NULL;
        assert_int_equal(nuage__template_kwargs(vars, effort, tr, &kw), 0);
        json_t *tools = json_object_get(c, "tools");
        nuage_template_input in = {.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt")),
                                   .bos_token = json_string_value(json_object_get(c, "bos_token")),
                                   .eos_token = json_string_value(json_object_get(c, "eos_token")),
                                   .now = 1795910400 /* 2026-11-29 00:00:00 UTC, as the references */};
        char *out = NULL;
        size_t n = 0;
        int rc = nuage_template_render_json(t, msgs, json_is_array(tools) ? tools : NULL, kw, &in, &out, &n, err,
                                            sizeof err);
        if (rc) fail_msg("%s: %s", cases[k][1], err);
        const char *want = json_string_value(json_object_get(c, "expected"));
        if (strcmp(out, want)) fail_msg("%s renders\n%s\nnot\n%s", cases[k][1], out, want);
        free(out);
        json_decref(kw);
        json_decref(vars);
        json_decref(msgs);
        json_decref(body);
        json_decref(c);
    }
    /* "minimal" is gpt-oss's "low"; a kwarg the client set wins */
    json_t *kw = NULL, *mine = json_pack("{s:s}", "reasoning_effort", "medium");
    assert_int_equal(nuage__template_kwargs(NULL, "minimal", tr, &kw), 0);
    assert_string_equal(json_string_value(json_object_get(kw, "reasoning_effort")), "low");
    json_decref(kw);
    assert_int_equal(nuage__template_kwargs(mine, "high", tr, &kw), 0);
    assert_string_equal(json_string_value(json_object_get(kw, "reasoning_effort")), "medium");
    json_decref(kw);
    json_decref(mine);
    /* templates that do not read the variable get nothing */
    nuage_template_traits plain = {0};
    assert_int_equal(nuage__template_kwargs(NULL, "high", &plain, &kw), 0);
    assert_null(kw);
    nuage_template_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits),
        cmocka_unit_test(test_shaping),
        cmocka_unit_test(test_tool_field_errors),
        cmocka_unit_test(test_tool_loop_every_template),
        cmocka_unit_test(test_harmony_openai_shape),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
