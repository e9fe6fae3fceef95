/*
 * test_template_gemma3.c - Gemma 3's chat template against reference
 * renderings.
 *
 * ../shared/templates has Gemma 2's and Gemma 4's templates but not Gemma
 * 3's, so this test carries it: GEMMA3_TEMPLATE is the `chat_template` of
 * google/gemma-3-*-it's tokenizer_config.json (the one llama.cpp's
 * converter copies into gemma3 GGUFs). What sets it apart from Gemma 2's,
 * which rejects a system message: the system prompt (a string, or the text
 * of its first content part) is folded into the first user turn followed by
 * a blank line; "assistant" is rendered as "model"; content parts may be
 * text or images (<start_of_image>); roles must alternate.
 *
 * Every `expected` string is the byte-exact output of the reference engine
 * the shared cases use (Jinja2 3.1.6 in an ImmutableSandboxedEnvironment
 * with trim_blocks, lstrip_blocks and loopcontrols, as Hugging Face's
 * apply_chat_template sets it up; bos_token "<bos>", eos_token "<eos>"),
 * or the message raise_exception gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "nuage/template.h"

typedef struct {
    const char *name;
    bool add_generation_prompt;
    const char *messages_json;
    const char *expected;      /* NULL: an error is expected */
    const char *error_message; /* raise_exception's message */
} gemma3_case;

static const char GEMMA3_TEMPLATE[] =
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n";

static const gemma3_case CASES[] = {
    {"system_folded", true,
     "[{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"}, {\"role\": \"user\", \"content\": \"Hello\"}, {\"role\": \"assistant\", \"content\": \"Hi there\"}, {\"role\": \"user\", \"content\": \"Who are you?\"}]",
     "<bos><start_of_turn>user\n"
     "You are a helpful assistant.\n"
     "\n"
     "Hello<end_of_turn>\n"
     "<start_of_turn>model\n"
     "Hi there<end_of_turn>\n"
     "<start_of_turn>user\n"
     "Who are you?<end_of_turn>\n"
     "<start_of_turn>model\n",
     NULL},
    {"no_system", false,
     "[{\"role\": \"user\", \"content\": \"  What is 2+2?\\n\"}, {\"role\": \"assistant\", \"content\": \"4\"}]",
     "<bos><start_of_turn>user\n"
     "What is 2+2?<end_of_turn>\n"
     "<start_of_turn>model\n"
     "4<end_of_turn>\n",
     NULL},
    {"system_parts", true,
     "[{\"role\": \"system\", \"content\": [{\"type\": \"text\", \"text\": \"Be brief.\"}]}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \" Describe \"}, {\"type\": \"image\"}, {\"type\": \"text\", \"text\": \"this.\"}]}]",
     "<bos><start_of_turn>user\n"
     "Be brief.\n"
     "\n"
     "Describe<start_of_image>this.<end_of_turn>\n"
     "<start_of_turn>model\n",
     NULL},
    {"not_alternating", true,
     "[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]",
     NULL,
     "Conversation roles must alternate user/assistant/user/assistant/..."},
    {"system_only", true,
     "[{\"role\": \"system\", \"content\": \"Only a system prompt.\"}]",
     "<bos><start_of_turn>model\n",
     NULL},
};

static void test_cases(void **state) {
    (void)state;
    char err[512];
    nuage_template *tp = NULL;
    int rc = nuage_template_parse(GEMMA3_TEMPLATE, strlen(GEMMA3_TEMPLATE), &tp, err, sizeof err);
    if (rc) print_message("parse: %s\n", err);
    assert_int_equal(rc, 0);
    int failures = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const gemma3_case *cs = &CASES[i];
        nuage_template_input in = {
            .messages_json = cs->messages_json,
            .add_generation_prompt = cs->add_generation_prompt,
            .bos_token = "<bos>",
            .eos_token = "<eos>",
            .now = 0,
        };
        char *out = NULL;
        size_t olen = 0;
        err[0] = 0;
        rc = nuage_template_render(tp, &in, &out, &olen, err, sizeof err);
        bool ok;
        if (!cs->expected) {
            ok = rc == NUAGE_E_TEMPLATE && strstr(err, cs->error_message);
            if (!ok) print_message("FAIL %s: expected error '%s', got rc=%d err='%s'\n", cs->name,
                                   cs->error_message, rc, err);
        } else {
            ok = rc == 0 && olen == strlen(cs->expected) && !memcmp(out, cs->expected, olen);
            if (!ok) print_message("FAIL %s: rc=%d err='%s'\n got : '%s'\n want: '%s'\n", cs->name, rc, err,
                                   out ? out : "", cs->expected);
        }
        failures += !ok;
        free(out);
    }
    nuage_template_free(tp);
    print_message("gemma3 template: %d / %zu cases passed\n",
                  (int)(sizeof CASES / sizeof CASES[0]) - failures, sizeof CASES / sizeof CASES[0]);
    assert_int_equal(failures, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
    };
    return cmocka_run_group_tests_name("template_gemma3", tests, NULL, NULL);
}
