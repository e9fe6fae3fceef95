/*
 * toolmarkup.h - the DeepSeek tool-call markup, spelled once for the
 * parser, the grammar and their tests. DeepSeek's special tokens use
 * U+FF5C (full-width vertical bar, EF BD 9C) and U+2581 (lower one eighth
 * block, E2 96 81) where other vocabularies use | and _.
 */
#ifndef NUAGE_CONSTRAIN_TOOLMARKUP_H
#define NUAGE_CONSTRAIN_TOOLMARKUP_H

#define DS_TOKEN(x) "<\xef\xbd\x9c" x "\xef\xbd\x9c>"
#define DS_CALLS_BEGIN DS_TOKEN("tool\xe2\x96\x81" "calls\xe2\x96\x81" "begin")
#define DS_CALLS_END DS_TOKEN("tool\xe2\x96\x81" "calls\xe2\x96\x81" "end")
#define DS_CALL_BEGIN DS_TOKEN("tool\xe2\x96\x81" "call\xe2\x96\x81" "begin")
#define DS_CALL_END DS_TOKEN("tool\xe2\x96\x81" "call\xe2\x96\x81" "end")
#define DS_SEP DS_TOKEN("tool\xe2\x96\x81" "sep")

#endif
