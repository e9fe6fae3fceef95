/*
 * test_responses_items.c - Responses API input items into chat messages
 * (responses_items.c): the chat message list each item shape must give
 * (written out by hand from the chat-completions format the templates
 * are rendered from), and the 400s with the param naming the item.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/responses.h"
#include "test_util.h"

/* items (JSON text) -> messages, compared with want (JSON text). */
static void check(const char *items, const char *want) {
    json_t *it = json_loads(items, 0, NULL), *w = json_loads(want, 0, NULL);
    assert_non_null(it);
    assert_non_null(w);
    json_t *msgs = json_array(), *names = json_object();
    nuage__apierr e;
    memset(&e, 0, sizeof e);
    bool ok = nuage__rsp_items_to_messages(it, msgs, names, "input", &e);
    if (!ok) print_message("error: %s (%s)\n", e.message, e.param);
    assert_true(ok);
    if (!json_equal(msgs, w)) {
        char *got = json_dumps(msgs, JSON_COMPACT);
        print_message("got  %s\nwant %s\n", got, want);
        free(got);
        fail();
    }
    json_decref(it);
    json_decref(w);
    json_decref(msgs);
    json_decref(names);
}

/* items must fail with param. */
static void refuse(const char *items, const char *param, const char *in_message) {
    json_t *it = json_loads(items, 0, NULL);
    assert_non_null(it);
    json_t *msgs = json_array(), *names = json_object();
    nuage__apierr e;
    memset(&e, 0, sizeof e);
    assert_false(nuage__rsp_items_to_messages(it, msgs, names, "input", &e));
    assert_int_equal(e.status, 400);
    assert_string_equal(e.param, param);
    if (in_message && !strstr(e.message, in_message)) {
        print_message("message: %s\n", e.message);
        fail();
    }
    json_decref(it);
    json_decref(msgs);
    json_decref(names);
}

static void test_messages(void **state) {
    (void)state;
    /* the short form, string content, text parts joined with a newline */
    check("[{\"role\":\"user\",\"content\":\"hi\"},"
          " {\"type\":\"message\",\"role\":\"developer\",\"content\":[{\"type\":\"input_text\",\"text\":\"a\"},"
          "  {\"type\":\"input_text\",\"text\":\"b\"}]},"
          " {\"type\":\"message\",\"role\":\"assistant\",\"id\":\"msg_1\",\"status\":\"completed\","
          "  \"content\":[{\"type\":\"output_text\",\"text\":\"ok\",\"annotations\":[]}]}]",
          "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"developer\",\"content\":\"a\\nb\"},"
          " {\"role\":\"assistant\",\"content\":\"ok\"}]");
}

static void test_tool_loop(void **state) {
    (void)state;
    /* reasoning -> reasoning_content of the next assistant turn; calls
     * join the preceding assistant message; outputs name their function */
    check("[{\"role\":\"user\",\"content\":\"w?\"},"
          " {\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[],"
          "  \"content\":[{\"type\":\"reasoning_text\",\"text\":\"think\"}]},"
          " {\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Let me see.\"}]},"
          " {\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_a\",\"name\":\"get\",\"arguments\":\"{\\\"c\\\":1}\"},"
          " {\"type\":\"function_call\",\"id\":\"fc_2\",\"call_id\":\"call_b\",\"name\":\"put\",\"arguments\":\"{}\"},"
          " {\"type\":\"function_call_output\",\"call_id\":\"call_a\",\"output\":\"sunny\"},"
          " {\"type\":\"function_call_output\",\"call_id\":\"call_b\",\"output\":[{\"type\":\"input_text\",\"text\":\"done\"}]}]",
          "[{\"role\":\"user\",\"content\":\"w?\"},"
          " {\"role\":\"assistant\",\"content\":\"Let me see.\",\"reasoning_content\":\"think\","
          "  \"tool_calls\":[{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"c\\\":1}\"}},"
          "   {\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"put\",\"arguments\":\"{}\"}}]},"
          " {\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":\"sunny\",\"name\":\"get\"},"
          " {\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":\"done\",\"name\":\"put\"}]");
    /* a call with no assistant message before it opens one (content null),
     * carrying the reasoning */
    check("[{\"role\":\"user\",\"content\":\"x\"},"
          " {\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"s\"}]},"
          " {\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"}]",
          "[{\"role\":\"user\",\"content\":\"x\"},"
          " {\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"s\","
          "  \"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]");
}

static void test_refusals(void **state) {
    (void)state;
    refuse("[{\"role\":\"tool\",\"content\":\"x\"}]", "input[0].role", NULL);
    refuse("[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"u\"}]}]",
           "input[1].content[0]", "input_image");
    refuse("[{\"type\":\"reasoning\",\"summary\":[],\"encrypted_content\":\"zz\"}]", "input[0].encrypted_content", "ncrypted");
    refuse("[{\"type\":\"web_search_call\",\"id\":\"ws_1\"}]", "input[0].type", "web_search_call");
    refuse("[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\"}]", "input[0]", "arguments");
    refuse("[{\"type\":\"function_call_output\",\"output\":\"x\"}]", "input[0].call_id", NULL);
    refuse("[{\"content\":\"no type, no role\"}]", "input[0]", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_tool_loop),
        cmocka_unit_test(test_refusals),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
