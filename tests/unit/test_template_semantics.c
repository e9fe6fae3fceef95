/*
 * test_template_semantics.c - the Jinja2 semantics the chat-template engine
 * must reproduce, independent of the shared reference data.
 *
 * The table below pairs small templates with the output of the reference
 * engine: Jinja2 3.1.6 configured as Hugging Face's apply_chat_template
 * configures it (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
 * loopcontrols, the generation tag, json.dumps as |tojson, clock pinned to
 * 2026-11-29). Each expected string was produced by running that Jinja2 on
 * the template (variables: messages=[{role: user, content: hi}],
 * tools=documents=none, add_generation_prompt=true, bos_token="<s>",
 * eos_token="</s>", plus the case's JSON). Error cases carry a substring of
 * the message Jinja2 raises (or the line number of a syntax error).
 *
 * The other tests check the sandbox (recursion, loop, output and nesting
 * bombs end in errors, not crashes or hangs), the API contract (bad JSON,
 * invalid UTF-8, variables, the clock) and concurrent rendering of one
 * parsed template.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "nuage/template.h"
#include "test_util.h"

#define PINNED_NOW 1795910400   /* 2026-11-29T00:00:00Z */

typedef struct { const char *name, *tmpl, *vars, *expected; } sem_case;
typedef struct { const char *name, *tmpl, *vars, *errsub; } err_case;

static const sem_case SEM_CASES[] = {
    {"trim_lstrip",
     "  {% if true %}\n  yes\n  {% endif %}\n  {{ 'v' }}\n  {# comment #}\nend",
     NULL,
     "  yes\n  v\nend"},
    {"minus_strips",
     "{%- if true -%}   a   {%- endif -%}   b   {{- ' c ' -}}   d",
     NULL,
     "ab c d"},
    {"plus_keeps",
     "  {%+ if true %}x{% endif +%}\ny",
     NULL,
     "  x\ny"},
    {"comment_signs",
     "a {#- c -#} b {#+ c +#} c\n  {# x #}\nz",
     NULL,
     "ab  c\nz"},
    {"var_no_lstrip",
     "  {{ 'x' }}\n  {% set y = 1 %}\nq",
     NULL,
     "  x\nq"},
    {"raw_block",
     "{% raw %}{{ not rendered }}{% endraw %}\n{%- raw -%}  {{ x }}  {%- endraw %}|",
     NULL,
     "{{ not rendered }}{{ x }}|"},
    {"crlf_and_cr",
     "a\r\n{% if true %}\r\nb\rc\r\n{% endif %}\r\n",
     NULL,
     "a\nb\nc\n"},
    {"trailing_newline_dropped",
     "x\n",
     NULL,
     "x"},
    {"unicode_space_rstrip",
     "a\343\200\200 {{- 'b' }}",
     NULL,
     "ab"},
    {"string_escapes",
     "{{ '\\t\\x41\\u00e9\\\\' }}|{{ \"a\\\"b\" }}|{{ 'it\\'s' }}|{{ 'a' 'b' \"c\" }}",
     NULL,
     "\tA\303\251\\|a\"b|it's|abc"},
    {"multiline_string",
     "{{ \"multi\nline\" }}",
     NULL,
     "multi\nline"},
    {"python_printing",
     "{{ [none, true, 1.0, 'it\\'s', \"a\\\"b'c\", (1,), {'a': (1, 'b')}] }}|{{ n }}|{{ d }}|{{ () }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "[None, True, 1.0, \"it's\", 'a\"b\\'c', (1,), {'a': (1, 'b')}]|None|{'b': 2, 'a': 1, 'items': [1, 2]}|()"},
    {"float_repr",
     "{{ 0.1 + 0.2 }} {{ 1/3 }} {{ 2.0 }} {{ 1e-7 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 10 / 4 }} {{ 1.5e300 * 1e10 }}",
     NULL,
     "0.30000000000000004 0.3333333333333333 2.0 1e-07 1e+16 1000000000000000.0 0.0001 1e-05 -0.0 2.5 inf"},
    {"repr_escapes",
     "{{ ['\\n\\t', '\\x01', 'caf\303\251', '\\u00a0', '\\\\'] }}",
     NULL,
     "['\\n\\t', '\\x01', 'caf\303\251', '\\xa0', '\\\\']"},
    {"arithmetic",
     "{{ 1 + 2 }} {{ 1 - 2.5 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ 3 * 'ab' }} {{ [1] * 2 }} {{ true + 1 }} {{ -(3) }} {{ - 2 ** 2 }}",
     NULL,
     "3 -1.5 3.5 2.0 3 -4 1 2 -2 1024 0.5 64 ababab [1, 1] 2 -3 4"},
    {"concat_tilde",
     "{{ 'a' ~ 1 ~ none ~ [1] ~ undefined_v }}",
     NULL,
     "a1None[1]"},
    {"comparisons",
     "{{ 1 == 1.0 }} {{ 1 == '1' }} {{ true == 1 }} {{ [1,2] == [1,2] }} {{ (1,2) == [1,2] }} {{ none == none }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }}",
     NULL,
     "True False True True False True True False True True"},
    {"membership",
     "{{ 'ell' in s }} {{ 'a' in d }} {{ 3 in l }} {{ 'x' not in l }} {{ 'x' in undefined_v }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "True True True True False"},
    {"and_or_not",
     "{{ not true }} {{ not none }} {{ none or 'x' }} {{ 0 and 1 }} {{ 1 and 'y' }} {{ [] or {} }}",
     NULL,
     "False True x 0 y {}"},
    {"inline_if",
     "{{ 'x' if true }}|{{ 'x' if false }}|{{ 'a' if false else 'b' }}",
     NULL,
     "x||b"},
    {"str_percent_format",
     "{{ '%s and %d' % ('a', 3) }} {{ '%05.2f' % 3.14159 }} {{ '%-5s|' % 'ab' }} {{ '%(x)s' % {'x': 1} }} {{ '{} {}'.format(1, 'x') }} {{ '{0}-{a}'.format(5, a='q') }}",
     NULL,
     "a and 3 03.14 ab   | 1 1 x 5-q"},
    {"attr_vs_item",
     "{{ d.items is defined }} {{ d['items'] }} {{ d.items()|list }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {{ d.zz is defined }} {{ d['zz'] is defined }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "True [1, 2] [('b', 2), ('a', 1), ('items', [1, 2])] 1 None 5 False False"},
    {"slices",
     "{{ l[0] }}{{ l[-1] }}{{ l[1:] }}{{ l[::-1] }}{{ s[:-1] }}{{ s[::2] }}{{ u[::-1] }}{{ u[2:5] }}{{ l[10] is defined }}{{ 'abc'[-1] }}{{ [1,2,3][:-5] }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "32[1, 2][2, 1, 3]Hello WorlHloWrd\360\237\230\200 \342\230\203 oll\303\251hlloFalsec[]"},
    {"iterate_dict_keys",
     "{% for k in d %}{{ k }},{% endfor %}{{ d|length }} {{ s|length }} {{ u|length }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "b,a,items,3 11 9"},
    {"for_scope",
     "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% for j in [1] %}{{ x }}{% set x = 3 %}{{ x }}{% endfor %}{{ x }}{% endfor %}{{ x }}",
     NULL,
     "2321"},
    {"for_fresh_each_iteration",
     "{% for i in [1,2,3] %}{% if i > 1 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}{{ x }}",
     NULL,
     "[][]"},
    {"if_scope_leaks",
     "{% if true %}{% set y = 3 %}{% endif %}{{ y }}",
     NULL,
     "3"},
    {"namespace",
     "{% set ns = namespace(a=1, b=[]) %}{% for x in l %}{% set ns.a = ns.a + x %}{% endfor %}{{ ns.a }} {{ ns.b }} {{ ns }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "7 [] <Namespace {'a': 7, 'b': []}>"},
    {"macro_late_binding",
     "{% macro m() %}{{ z }}{% endmacro %}{% set z = 1 %}{{ m() }}{% set z = 2 %}{{ m() }}{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}B{% endmacro %}{{ a() }}",
     NULL,
     "12B"},
    {"macro_args",
     "{% macro m(a, b=2, c='x') %}[{{ a }}{{ b }}{{ c }}]{% endmacro %}{{ m(1) }}{{ m(1, 3) }}{{ m(1, c='z') }}{{ m() }}",
     NULL,
     "[12x][13x][12z][2x]"},
    {"macro_varargs_kwargs",
     "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}",
     NULL,
     "1(2, 3){'x': 4}"},
    {"macro_recursion",
     "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
     NULL,
     "54321"},
    {"macro_scope",
     "{% macro m(x) %}{% set y = 5 %}{{ x }}{{ y }}{% endmacro %}{{ m(1) }}[{{ y }}]",
     NULL,
     "15[]"},
    {"call_block",
     "{% macro m(xs) %}{% for x in xs %}<{{ caller(x) }}>{% endfor %}{% endmacro %}{% call(y) m([1,2]) %}v{{ y }}{% endcall %}",
     NULL,
     "<v1><v2>"},
    {"filter_block",
     "{% filter upper %}hello {{ s }}{% endfilter %}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "HELLO HELLO WORLD"},
    {"set_block",
     "{% set x %}block {{ s }}{% endset %}{{ x }}|{% set y | upper %}abc{% endset %}{{ y }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "block Hello World|ABC"},
    {"with_block",
     "{% set x = 5 %}{% with x = x + 1, z = 2 %}{{ x }}{{ z }}{% endwith %}{{ x }}",
     NULL,
     "625"},
    {"tuple_unpacking",
     "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% for k, v in [('x', 1), ('y', 2)] %}{{ k }}={{ v }};{% endfor %}{% for k, v in d.items() %}{{ k }}:{{ v }},{% endfor %}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "12x=1;y=2;b:2,a:1,items:[1, 2],"},
    {"generation_tag",
     "{% generation %}gen {{ s }}{% set zz = 1 %}{% endgeneration %}[{{ zz }}]",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "gen Hello World[]"},
    {"loop_vars",
     "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}-{{ loop.nextitem }}{{ loop.cycle('a','b') }};{% endfor %}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "1032TrueFalse3-1a;2121FalseFalse33-2b;3210FalseTrue31-a;"},
    {"loop_filter",
     "{% for x in l if x > 1 %}{{ loop.index }}/{{ loop.length }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "1/2:3,2/2:2"},
    {"loop_else",
     "{% for x in [] %}a{% else %}empty{% endfor %}{% for x in [1] %}a{% else %}empty{% endfor %}",
     NULL,
     "emptya"},
    {"loop_else_quirk",
     "{% for x in [1,2] %}{% continue %}{% else %}E1{% endfor %}{% for x in [1,2] %}{% if x == 2 %}{% continue %}{% endif %}{% else %}E2{% endfor %}{% for x in [1,2] %}{% break %}{% else %}E3{% endfor %}",
     NULL,
     "E1E3"},
    {"continue_in_filter_block",
     "{% for x in [1,2] %}{% filter upper %}a{{ x }}{% if x == 1 %}{% continue %}{% endif %}b{% endfilter %};{% endfor %}",
     NULL,
     "A2B;"},
    {"unknown_filter_in_if",
     "{% if false %}{{ x|nosuch }}{% endif %}{{ 1 if true else x|nosuch }}ok",
     NULL,
     "1ok"},
    {"callable_undefined",
     "{% set a = [] %}{{ a.append is defined }}{{ a.append is callable }}{{ nothing is callable }}",
     NULL,
     "FalseTrueTrue"},
    {"gen_truthiness",
     "{% if 1|map('upper') %}L{% endif %}{% if [1]|select('none') %}T{% endif %}{% if {}.items() %}F{% else %}V{% endif %}{{ ['a','b']|map('upper')|first }}",
     NULL,
     "LTVA"},
    {"break_continue",
     "{% for x in l %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "3|32"},
    {"nested_loops",
     "{% for i in [1,2] %}{% for j in [3,4] %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }}|{% endfor %}",
     NULL,
     "113 214 1|123 224 2|"},
    {"recursive_loop",
     "{% for x in [[1,[2]],[3]] recursive %}[{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}@{{ loop.depth }}{% endif %}]{% endfor %}",
     NULL,
     "[[1@2][[2@3]]][[3@2]]"},
    {"loop_changed",
     "{% for x in [1,1,2,2,1] %}{{ loop.changed(x) }}{% endfor %}",
     NULL,
     "TrueFalseTrueFalseTrue"},
    {"range",
     "{{ range(5)|list }} {{ range(2, 5)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }}",
     NULL,
     "[0, 1, 2, 3, 4] [2, 3, 4] [10, 7, 4, 1] []"},
    {"filters_strings",
     "{{ s|upper }} {{ s|lower }} {{ 'hello wORLD-x(y'|title }} {{ 'hello World'|capitalize }} {{ '  a  '|trim }} {{ 'xxa'|trim('x') }} {{ s|replace('l','L') }} {{ s|replace('l','L', 1) }} {{ 'abc'|center(9) }}| {{ 'a b c'|wordcount }} {{ 'hello world foo'|truncate(9) }} {{ '<a href=\"x\">'|e }} {{ 1|string }}{{ none|string }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "HELLO WORLD hello world Hello World-X(Y Hello world a a HeLLo WorLd HeLlo World    abc   | 3 hello... &lt;a href=&#34;x&#34;&gt; 1None"},
    {"filters_unicode_trim",
     "[{{ '\\u3000 x\\u00a0 '|trim }}] {{ ' a\\u3000b '.split() }} {{ 'stra\303\237e'.upper() }} {{ '\303\211COLE'.lower() }}",
     NULL,
     "[x] ['a', 'b'] STRASSE \303\251cole"},
    {"filters_lists",
     "{{ l|join(',') }} {{ l|join }} {{ l|sort }} {{ l|sort(reverse=true) }} {{ l|first }} {{ l|last }} {{ l|min }} {{ l|max }} {{ l|sum }} {{ l|reverse|list }} {{ [1,1,2]|unique|list }} {{ ['b','A','c']|sort }} {{ [{'n':2},{'n':1}]|sort(attribute='n') }} {{ s|list }} {{ d|list }} {{ [1,2,3,4,5]|batch(2)|list }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "3,1,2 312 [1, 2, 3] [3, 2, 1] 3 2 1 3 6 [2, 1, 3] [1, 2] ['A', 'b', 'c'] [{'n': 1}, {'n': 2}] ['H', 'e', 'l', 'l', 'o', ' ', 'W', 'o', 'r', 'l', 'd'] ['b', 'a', 'items'] [[1, 2], [3, 4], [5]]"},
    {"filters_default",
     "{{ undefined_v|default('x') }} {{ n|default('x') }} {{ n|default('x', true) }} {{ ''|default('y', true) }} {{ e|default([1], true) }} {{ undefined_v|d('z') }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "x None x y [1] z"},
    {"filters_dicts",
     "{{ d|dictsort }} {{ {'B':1,'a':2}|dictsort }} {{ {'B':1,'a':2}|dictsort(true) }} {{ {'b':1,'a':2}|dictsort(by='value') }} {{ d|items|list }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "[('a', 1), ('b', 2), ('items', [1, 2])] [('a', 2), ('B', 1)] [('B', 1), ('a', 2)] [('b', 1), ('a', 2)] [('b', 2), ('a', 1), ('items', [1, 2])]"},
    {"filters_map_select",
     "{{ ['a','b']|map('upper')|list }} {{ [{'r':'x'},{'r':'y'}]|map(attribute='r')|list }} {{ [{'r':'x'},{'r':'y'}]|selectattr('r','equalto','x')|list }} {{ [1,2,3]|reject('equalto',2)|list }} {{ [1,2,3,4]|select('odd')|list }} {{ [{'r':1},{'q':2}]|rejectattr('r','defined')|list }} {% if [1]|select('none') %}gen-is-true{% endif %}",
     NULL,
     "['A', 'B'] ['x', 'y'] [{'r': 'x'}] [1, 3] [1, 3] [{'q': 2}] gen-is-true"},
    {"filters_indent",
     "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb\\n\\nc'|indent(2, true) }}|{{ 'a\\nb\\n\\nc'|indent(first=true, blank=true) }}|{{ 'a\\nb'|indent('--') }}",
     NULL,
     "a\n    b\n\n    c|  a\n  b\n\n  c|    a\n    b\n    \n    c|a\n--b"},
    {"filters_numbers",
     "{{ -3|abs }} {{ 2.5|round }} {{ 3.14159|round(2) }} {{ 3.1|round(0, 'ceil') }} {{ '42'|int }} {{ 'x'|int(7) }} {{ '3.5'|float }} {{ 3.9|int }} {{ '1.5e3'|int }} {{ 1|float }}",
     NULL,
     "3 2.0 3.14 4.0 42 7 3.5 3 1500 1.0"},
    {"tojson",
     "{{ d|tojson }} {{ l|tojson }} {{ u|tojson }} {{ u|tojson(ensure_ascii=true) }} {{ f|tojson }} {{ 1e100|tojson }} {{ d|tojson(sort_keys=true) }} {{ d|tojson(separators=(',',':')) }} {{ '\\x01\\x7f\"\\\\'|tojson }} {{ {1: 'a', true: 'c', none: 'd'}|tojson }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "{\"b\": 2, \"a\": 1, \"items\": [1, 2]} [3, 1, 2] \"h\303\251llo \342\230\203 \360\237\230\200\" \"h\\u00e9llo \\u2603 \\ud83d\\ude00\" 0.5 1e+100 {\"a\": 1, \"b\": 2, \"items\": [1, 2]} {\"b\":2,\"a\":1,\"items\":[1,2]} \"\\u0001\177\\\"\\\\\" {\"1\": \"c\", \"null\": \"d\"}"},
    {"tojson_indent",
     "{{ d|tojson(indent=2) }}\n{{ {'a':[1,{'b':none}], 'c': [], 'e': {}}|tojson(indent=4) }}\n{{ [1]|tojson(indent='\\t') }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "{\n  \"b\": 2,\n  \"a\": 1,\n  \"items\": [\n    1,\n    2\n  ]\n}\n{\n    \"a\": [\n        1,\n        {\n            \"b\": null\n        }\n    ],\n    \"c\": [],\n    \"e\": {}\n}\n[\n\t1\n]"},
    {"tests",
     "{{ x is defined }} {{ d is mapping }} {{ l is sequence }} {{ s is string }} {{ 1 is number }} {{ true is number }} {{ true is boolean }} {{ false is false }} {{ 0 is false }} {{ n is none }} {{ s is iterable }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ 'a' is in 'abc' }} {{ 2 is eq 2 }} {{ undefined_v is sequence }} {{ undefined_v is iterable }} {{ d is iterable }} {{ d is sequence }} {{ 'abc' is lower }} {{ range is callable }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "False True True True True True True True False True True True True True True False True True True True True True True True True"},
    {"str_methods",
     "{{ s.upper() }} {{ s.split() }} {{ s.split('o') }} {{ s.split('o', 1) }} {{ s.rsplit('o', 1) }} {{ '  x y  '.strip() }} {{ 'xxhixx'.strip('x') }} {{ 'xxhixx'.lstrip('x') }} {{ 'xxhixx'.rstrip('x') }} {{ s.startswith('He') }} {{ s.endswith(('x','ld')) }} {{ s.replace('o','0') }} {{ s.find('W') }} {{ s.title() }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'a-b-c'.partition('-') }} {{ ','.join(['a','b']) }} {{ 'abc'.zfill(5) }}",
     "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}",
     "HELLO WORLD ['Hello', 'World'] ['Hell', ' W', 'rld'] ['Hell', ' World'] ['Hello W', 'rld'] x y hi hixx xxhi True True Hell0 W0rld 6 Hello World ['a', 'b', 'c'] ('a', '-', 'b-c') a,b 00abc"},
    {"strftime_now",
     "{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%A %H:%M') }}",
     NULL,
     "29 Nov 2026 2026-11-29 Sunday 00:00"},
    {"special_vars",
     "{{ tools is none }}{{ documents is none }}{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}{{ messages[0].content }}",
     NULL,
     "TrueTrue<s></s>Truehi"},
};
static const err_case ERR_CASES[] = {
    {"raise_exception", "{{ raise_exception('Conversation roles must alternate') }}", NULL, "Conversation roles must alternate"},
    {"str_plus_int", "{{ 'a' + 1 }}", NULL, "can only concatenate str"},
    {"str_lt_int", "{{ 1 < 'a' }}", NULL, "not supported between instances of 'int' and 'str'"},
    {"undefined_attr", "{{ undefined_v.x }}", NULL, "'undefined_v' is undefined"},
    {"undefined_arith", "{{ undefined_v + 1 }}", NULL, "'undefined_v' is undefined"},
    {"undefined_call", "{{ undefined_v() }}", NULL, "'undefined_v' is undefined"},
    {"list_append", "{{ l.append(4) }}", "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}", "unsafe"},
    {"dict_update", "{{ d.update({'c': 3}) }}", "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}", "unsafe"},
    {"dict_pop", "{{ d.pop('a') }}", "{\"d\": {\"b\": 2, \"a\": 1, \"items\": [1, 2]}, \"l\": [3, 1, 2], \"s\": \"Hello World\", \"f\": 0.5, \"n\": null, \"e\": [], \"u\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\"}", "unsafe"},
    {"macro_too_many_args", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", NULL, "takes not more than 1 argument"},
    {"unpack_mismatch", "{% for a, b in [(1,2,3)] %}{{ a }}{% endfor %}", NULL, "too many values to unpack"},
    {"tojson_undefined", "{{ undefined_v|tojson }}", NULL, "not JSON serializable"},
    {"huge_range", "{{ range(1000000)|length }}", NULL, "Range too big"},
    {"division_by_zero", "{{ 1 / 0 }}", NULL, "division by zero"},
    {"set_attr_non_namespace", "{% set y = 1 %}{% set y.b = 2 %}", NULL, "non-namespace"},
    {"unknown_filter", "{{ 1|nosuchfilter }}", NULL, "No filter named 'nosuchfilter'"},
    {"unknown_test", "{{ 1 is nosuchtest }}", NULL, "No test named 'nosuchtest'"},
    {"unknown_tag", "a\n{% frobnicate %}", NULL, "line 2"},
    {"missing_endif", "{% if true %}\nx\n", NULL, "endif"},
    {"stray_endfor", "x\n\n{% endfor %}", NULL, "line 3"},
    {"unterminated_string", "{{ 'abc }}", NULL, "line 1"},
    {"bad_char", "\n{{ 1 ! 2 }}", NULL, "line 2"},
    {"missing_comment_end", "a {# b", NULL, "comment"},
    {"break_outside_loop", "{% break %}", NULL, "loop"},
    {"lazy_error_on_consume", "{% set g = 1|map('upper') %}{% if g %}{{ g|list }}{% endif %}", NULL, "not iterable"},
    {"assign_loop", "{% for x in [1] %}{% set loop = 2 %}{% endfor %}", NULL, "special loop variable"},
    {"unknown_filter_runs_in_if", "{% if true %}{{ 1|nosuch }}{% endif %}", NULL, "No filter named 'nosuch'"},
};


/* Parse and render; returns the rc, *out (malloc'd) on success, err filled. */
static int render(const char *tmpl, const char *vars, const char *messages, char **out, size_t *olen,
                  char *err, size_t errlen) {
    nuage_template *t = NULL;
    *out = NULL;
    int rc = nuage_template_parse(tmpl, strlen(tmpl), &t, err, errlen);
    if (rc) return rc;
    nuage_template_input in = {
        .messages_json = messages ? messages : "[{\"role\": \"user\", \"content\": \"hi\"}]",
        .vars_json = vars,
        .add_generation_prompt = true,
        .bos_token = "<s>",
        .eos_token = "</s>",
        .now = PINNED_NOW,
    };
    rc = nuage_template_render(t, &in, out, olen, err, errlen);
    nuage_template_free(t);
    return rc;
}

static void test_semantics_table(void **state) {
    (void)state;
    int fails = 0;
    for (size_t i = 0; i < sizeof SEM_CASES / sizeof SEM_CASES[0]; i++) {
        const sem_case *k = &SEM_CASES[i];
        char err[512] = "", *out = NULL;
        size_t olen = 0;
        int rc = render(k->tmpl, k->vars, NULL, &out, &olen, err, sizeof err);
        if (rc) {
            print_message("FAIL %s: error %d: %s\n", k->name, rc, err);
            fails++;
        } else if (olen != strlen(k->expected) || memcmp(out, k->expected, olen) != 0) {
            print_message("FAIL %s:\n  got : [%s]\n  want: [%s]\n", k->name, out, k->expected);
            fails++;
        }
        free(out);
    }
    print_message("%zu semantic cases, %d failed\n", sizeof SEM_CASES / sizeof SEM_CASES[0], fails);
    assert_int_equal(fails, 0);
}

static void test_error_table(void **state) {
    (void)state;
    int fails = 0;
    for (size_t i = 0; i < sizeof ERR_CASES / sizeof ERR_CASES[0]; i++) {
        const err_case *k = &ERR_CASES[i];
        char err[512] = "", *out = NULL;
        size_t olen = 0;
        int rc = render(k->tmpl, k->vars, NULL, &out, &olen, err, sizeof err);
        if (rc != NUAGE_E_TEMPLATE || !strstr(err, k->errsub)) {
            print_message("FAIL %s: rc=%d err=[%s], want error containing [%s]\n", k->name, rc, err, k->errsub);
            fails++;
        }
        free(out);
    }
    assert_int_equal(fails, 0);
}

/* raise_exception's message comes back exactly, without decoration. */
static void test_raise_exception_exact(void **state) {
    (void)state;
    char err[256], *out;
    size_t n;
    int rc = render("a\n{% if true %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}",
                    NULL, NULL, &out, &n, err, sizeof err);
    assert_int_equal(rc, NUAGE_E_TEMPLATE);
    assert_null(out);
    assert_string_equal(err, "Only user and assistant roles are supported!");
}

/* A runtime error names the line of the failing statement. */
static void test_runtime_error_line(void **state) {
    (void)state;
    char err[256], *out;
    size_t n;
    int rc = render("{% for m in messages %}\n{{ m.content }}\n{{ m.content + 1 }}\n{% endfor %}", NULL, NULL,
                    &out, &n, err, sizeof err);
    assert_int_equal(rc, NUAGE_E_TEMPLATE);
    assert_non_null(strstr(err, "line 3"));
}

static void expect_sandbox_error(const char *tmpl, const char *what) {
    char err[256] = "", *out = NULL;
    size_t n;
    int rc = render(tmpl, NULL, NULL, &out, &n, err, sizeof err);
    if (rc != NUAGE_E_TEMPLATE) print_message("%s: rc=%d err=%s\n", what, rc, err);
    assert_int_equal(rc, NUAGE_E_TEMPLATE);
    assert_null(out);
    assert_true(err[0] != 0);
}

static void test_sandbox_limits(void **state) {
    (void)state;
    /* infinite recursion of a macro */
    expect_sandbox_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion");
    /* recursion with a deep body */
    expect_sandbox_error("{% macro f(n) %}{% for i in [1] %}{% if true %}{{ f(n) }}{% endif %}{% endfor %}"
                         "{% endmacro %}{{ f(0) }}", "recursion in loops");
    /* huge range, and loops that multiply */
    expect_sandbox_error("{% for i in range(100000000) %}{% endfor %}", "range");
    expect_sandbox_error("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                         "nested loops");
    /* output and string bombs */
    expect_sandbox_error("{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}", "output");
    expect_sandbox_error("{% set ns = namespace(s='xx') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}"
                         "{% endfor %}{{ ns.s|length }}", "doubling");
    expect_sandbox_error("{{ 'x' * 10000000000 }}", "repeat");
    expect_sandbox_error("{% for i in range(100000) %}{% set x = 'y' * 60000000 %}{% endfor %}", "work");
    /* a namespace that contains itself */
    expect_sandbox_error("{% set ns = namespace() %}{% set ns.x = ns %}{{ ns }}", "cycle print");
    expect_sandbox_error("{% set ns = namespace() %}{% set ns.x = [ns] %}{{ ns.x|tojson }}", "cycle json");
}

static void test_nesting_bombs(void **state) {
    (void)state;
    size_t depth = 5000;
    char *s = malloc(depth * 24 + 64);
    assert_non_null(s);
    /* deep parentheses */
    strcpy(s, "{{ ");
    for (size_t i = 0; i < depth; i++) strcat(s, "(");
    strcat(s, "1");
    for (size_t i = 0; i < depth; i++) strcat(s, ")");
    strcat(s, " }}");
    expect_sandbox_error(s, "parens");
    /* deep blocks */
    s[0] = 0;
    for (size_t i = 0; i < depth; i++) strcat(s, "{% if 1 %}");
    for (size_t i = 0; i < depth; i++) strcat(s, "{% endif %}");
    char err[256];
    nuage_template *t = NULL;
    int rc = nuage_template_parse(s, strlen(s), &t, err, sizeof err);
    assert_int_equal(rc, NUAGE_E_TEMPLATE);
    /* deep unary minus and not */
    s[0] = 0;
    strcat(s, "{{ ");
    for (size_t i = 0; i < depth; i++) strcat(s, "not -");
    strcat(s, "1 }}");
    expect_sandbox_error(s, "unary");
    free(s);
}

/* Hostile and random text never crashes the parser. */
static void test_garbage_templates(void **state) {
    (void)state;
    static const char *const bad[] = {
        "{{", "{%", "{#", "{{ }}", "{% %}", "{% if %}", "{% for %}", "{% for x in %}{% endfor %}",
        "{{ ) }}", "{{ ] }}", "{{ (1 }}", "{{ [1, }}", "{{ {1: }}", "{{ x. }}", "{{ x[ }}", "{{ x| }}",
        "{{ x is }}", "{% set %}", "{% set x %}", "{% macro %}", "{% macro m( %}", "{% endif %}",
        "{% raw %}", "{{ 'a }}", "{% if 1 %}{% elif %}{% endif %}", "{% call %}{% endcall %}",
        "{{ 1 if }}", "{{ *x }}", "{{ f(**) }}", "{% with x %}{% endwith %}", "{{ x.1.2 }}",
        "{%- -%}", "{{- -}}", "{{ 99999999999999999999999 }}", "{{ '\\x4' }}", "{{ '\\u12' }}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "", *out = NULL;
        size_t n;
        int rc = render(bad[i], NULL, NULL, &out, &n, err, sizeof err);
        assert_true(rc == 0 || rc == NUAGE_E_TEMPLATE);
        if (rc) assert_true(err[0] != 0);
        free(out);
    }
    /* pseudo-random byte soup from the template alphabet */
    const char alphabet[] = "{}%#-+ ()[]|.,:'\"\\\nabifnorx01=~*/<>!";
    uint32_t seed = 12345;
    char buf[200];
    for (int round = 0; round < 3000; round++) {
        size_t len = 1 + (seed % 150);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        buf[len] = 0;
        char err[256], *out = NULL;
        size_t n;
        int rc = render(buf, NULL, NULL, &out, &n, err, sizeof err);
        assert_true(rc == 0 || rc == NUAGE_E_TEMPLATE);
        free(out);
    }
}

static void test_api_contract(void **state) {
    (void)state;
    nuage_template *t = NULL;
    char err[256], *out = NULL;
    size_t n;
    const char *src = "{{ messages|length }}{{ x }}";
    assert_int_equal(nuage_template_parse(src, strlen(src), &t, err, sizeof err), 0);
    nuage_template_input in = {.messages_json = "[1, 2", .now = PINNED_NOW};
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), NUAGE_E_INVAL);
    assert_null(out);
    in.messages_json = "{\"a\": 1}";
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), NUAGE_E_INVAL);
    in.messages_json = "[1, 2, 3]";
    in.vars_json = "[]";
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), NUAGE_E_INVAL);
    in.vars_json = "{\"x\": \"X\"}";
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), 0);
    assert_string_equal(out, "3X");
    assert_int_equal(n, 2);
    free(out);
    nuage_template_free(t);
    /* invalid UTF-8 in the template */
    assert_int_equal(nuage_template_parse("a\xff", 2, &t, err, sizeof err), NUAGE_E_TEMPLATE);
    assert_null(t);
    /* explicit length: bytes past len are ignored */
    assert_int_equal(nuage_template_parse("ab{{ oops", 2, &t, err, sizeof err), 0);
    in.vars_json = NULL;
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), 0);
    assert_string_equal(out, "ab");
    free(out);
    nuage_template_free(t);
    /* empty output is an empty string, not NULL */
    assert_int_equal(nuage_template_parse("", 0, &t, err, sizeof err), 0);
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), 0);
    assert_non_null(out);
    assert_int_equal(n, 0);
    free(out);
    nuage_template_free(t);
}

/* Numbers keep their JSON kind; object keys keep their order; \r in data stays. */
static void test_json_values(void **state) {
    (void)state;
    char err[256], *out;
    size_t n;
    int rc = render("{% for m in messages %}{{ m.n }} {{ m.f }} {{ m|tojson }}|{% endfor %}", NULL,
                    "[{\"z\": 1, \"n\": 2, \"f\": 2.0, \"a\": \"x\\r\\ny\"}, {\"n\": 3, \"f\": 0.93}]",
                    &out, &n, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "2 2.0 {\"z\": 1, \"n\": 2, \"f\": 2.0, \"a\": \"x\\r\\ny\"}|3 0.93 {\"n\": 3, \"f\": 0.93}|");
    free(out);
}

/* strftime_now: the pinned time, and $SOURCE_DATE_EPOCH when none is given. */
static void test_clock(void **state) {
    (void)state;
    nuage_template *t = NULL;
    char err[256], *out = NULL;
    size_t n;
    const char *src = "{{ strftime_now('%d %b %Y %H:%M:%S') }}";
    assert_int_equal(nuage_template_parse(src, strlen(src), &t, err, sizeof err), 0);
    nuage_template_input in = {.messages_json = "[]", .now = PINNED_NOW};
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), 0);
    assert_string_equal(out, "29 Nov 2026 00:00:00");
    free(out);
    setenv("SOURCE_DATE_EPOCH", "1795910400", 1);
    in.now = -1;
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), 0);
    assert_string_equal(out, "29 Nov 2026 00:00:00");
    free(out);
    unsetenv("SOURCE_DATE_EPOCH");
    nuage_template_free(t);
}

/* The ChatML fallback renders Hugging Face's default ChatML format. */
static void test_chatml(void **state) {
    (void)state;
    const char *src = nuage_template_chatml();
    nuage_template *t = NULL;
    char err[256], *out = NULL;
    size_t n;
    assert_int_equal(nuage_template_parse(src, strlen(src), &t, err, sizeof err), 0);
    nuage_template_input in = {
        .messages_json = "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}]",
        .add_generation_prompt = true,
        .now = PINNED_NOW,
    };
    assert_int_equal(nuage_template_render(t, &in, &out, &n, err, sizeof err), 0);
    assert_string_equal(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                             "<|im_start|>assistant\n");
    free(out);
    nuage_template_free(t);
}

typedef struct { const nuage_template *t; char *out; int rc; } thread_job;

static void *render_thread(void *arg) {
    thread_job *j = arg;
    char err[256];
    size_t n;
    nuage_template_input in = {
        .messages_json = "[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]",
        .add_generation_prompt = true,
        .now = PINNED_NOW,
    };
    for (int i = 0; i < 50 && j->rc == 0; i++) {
        free(j->out);
        j->out = NULL;
        j->rc = nuage_template_render(j->t, &in, &j->out, &n, err, sizeof err);
    }
    return NULL;
}

/* One parsed template rendered by several threads at once. */
static void test_concurrent_renders(void **state) {
    (void)state;
    const char *src = "{% set ns = namespace(n=0) %}{% macro m(x) %}[{{ x|upper }}]{% endmacro %}"
                      "{% for msg in messages %}{% set ns.n = ns.n + 1 %}{{ m(msg.content) }}{{ 'sep' }}{% endfor %}"
                      "{{ ns.n }}{{ {'k': [1, 2.5, 'x']}|tojson }}";
    nuage_template *t = NULL;
    char err[256];
    assert_int_equal(nuage_template_parse(src, strlen(src), &t, err, sizeof err), 0);
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){t, NULL, 0};
        assert_int_equal(pthread_create(&th[i], NULL, render_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_string_equal(jobs[i].out, "[A]sep[B]sep2{\"k\": [1, 2.5, \"x\"]}");
        free(jobs[i].out);
    }
    nuage_template_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_semantics_table),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_raise_exception_exact),
        cmocka_unit_test(test_runtime_error_line),
        cmocka_unit_test(test_sandbox_limits),
        cmocka_unit_test(test_nesting_bombs),
        cmocka_unit_test(test_garbage_templates),
        cmocka_unit_test(test_api_contract),
        cmocka_unit_test(test_json_values),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_chatml),
        cmocka_unit_test(test_concurrent_renders),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
