/*
 * synth_text.c - the list and word tasks of the synthetic data (reverse,
 * sort, count, facts) and the JSONL form of an item (see synth.h).
 *
 * Lists are shown as "3, 8, 1, 5" in questions and answered as "5,1,8,3"
 * so that the whole answer is one word. The reasoning for reverse first
 * labels the items ("1:3 2:8 3:1 4:5") and then reads them back by
 * descending label, which turns reversal into label look-ups; sort is a
 * selection sort, one minimum per line; count spells the word with a
 * running count after each matching letter ("s t r(1) a w b e r(2) r(3)
 * y"). Facts are capital cities, asked both ways in several phrasings;
 * the held-out split holds out (country, phrasing) pairs, so it tests
 * known facts in phrasings the model has not seen for that country.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "train/synth.h"

/* ---- reverse, sort ---------------------------------------------------------------- */

int nuage__synth_list(nuage_task t, int d, nuage_rng *r, nuage_synth_item *it) {
    static const char *const q_rev[] = {"Reverse the list %s.", "Write %s in reverse order.",
                                        "What is the list %s reversed?"};
    static const char *const q_sort[] = {"Sort %s in ascending order.",
                                         "Sort the numbers %s from smallest to largest.",
                                         "Put %s in increasing order."};
    int n = (int)nuage_rng_range(r, 3, 6);
    int hi = d == 1 ? 9 : d == 2 ? 99 : 999;
    int v[6];
    for (int i = 0; i < n; i++) v[i] = (int)nuage_rng_range(r, 0, hi);
    int k = (int)nuage_rng_below(r, 3);
    char shown[64] = {0}, canon[64] = {0};
    for (int i = 0; i < n; i++) {
        size_t s = strlen(shown), c = strlen(canon);
        snprintf(shown + s, sizeof shown - s, "%s%d", i ? ", " : "", v[i]);
        snprintf(canon + c, sizeof canon - c, "%s%d", i ? "," : "", v[i]);
    }
    snprintf(it->key, sizeof it->key, "%s:%s", t == NUAGE_TASK_REVERSE ? "reverse" : "sort", canon);
    snprintf(it->question, sizeof it->question, t == NUAGE_TASK_REVERSE ? q_rev[k] : q_sort[k], shown);
    char *th = it->think, *ans = it->answer;
    size_t cap = sizeof it->think;
    if (t == NUAGE_TASK_REVERSE) {
        for (int i = 0; i < n; i++) {
            size_t s = strlen(th);
            snprintf(th + s, cap - s, "%s%d:%d", i ? " " : "", i + 1, v[i]);
        }
        strncat(th, "\n", cap - strlen(th) - 1);
        for (int i = n - 1; i >= 0; i--) {
            size_t s = strlen(th), a = strlen(ans);
            snprintf(th + s, cap - s, "%d:%d%s", i + 1, v[i], i ? " " : "\n");
            snprintf(ans + a, sizeof it->answer - a, "%s%d", i < n - 1 ? "," : "", v[i]);
        }
    } else {
        int left[6], nl = n;
        memcpy(left, v, sizeof v);
        for (int i = 0; i < n; i++) {
            size_t s = strlen(th);
            snprintf(th + s, cap - s, "%s%d", i ? " " : "", v[i]);
        }
        strncat(th, "\n", cap - strlen(th) - 1);
        for (int step = 0; step < n; step++) {
            int mi = 0;
            for (int i = 1; i < nl; i++)
                if (left[i] < left[mi]) mi = i;
            int mv = left[mi];
            memmove(left + mi, left + mi + 1, (size_t)(nl - mi - 1) * sizeof *left);
            nl--;
            size_t s = strlen(th), a = strlen(ans);
            snprintf(ans + a, sizeof it->answer - a, "%s%d", step ? "," : "", mv);
            snprintf(th + s, cap - s, "min %d", mv);
            if (nl) {
                strncat(th, ", left", cap - strlen(th) - 1);
                for (int i = 0; i < nl; i++) {
                    s = strlen(th);
                    snprintf(th + s, cap - s, " %d", left[i]);
                }
            }
            strncat(th, "\n", cap - strlen(th) - 1);
        }
    }
    snprintf(it->reply, sizeof it->reply, "%s", it->answer);
    return 0;
}

/* ---- count letters -------------------------------------------------------------------- */

static const char *const k_words[] = {
    "apple", "banana", "cherry", "strawberry", "orange", "lemon", "grape", "melon", "peach",
    "pear", "mango", "papaya", "coconut", "tomato", "potato", "carrot", "pepper", "onion",
    "garlic", "bread", "butter", "cheese", "coffee", "letter", "button", "balloon", "bottle",
    "window", "garden", "kitten", "puppy", "rabbit", "giraffe", "elephant", "monkey", "turtle",
    "dolphin", "parrot", "penguin", "squirrel", "mississippi", "committee", "success",
    "address", "assessment", "bookkeeper", "balance", "library", "computer", "keyboard", "mirror",
    "pillow", "blanket", "kettle", "hammer", "ladder", "paddle", "pebble", "river", "mountain",
    "valley", "forest", "desert", "island", "ocean", "thunder", "rainbow", "summer", "winter",
    "autumn", "spring", "morning", "evening", "midnight", "yellow", "purple", "silver", "golden",
    "scissors", "umbrella", "pizza", "pasta", "noodle", "cookie", "muffin", "waffle", "popcorn",
    "teacher", "student", "doctor", "engineer", "farmer", "sailor", "pilot", "painter", "singer",
    "dancer", "football", "baseball", "tennis", "hockey", "soccer", "rocket", "planet", "galaxy",
    "comet", "meteor", "science", "history", "language", "grammar", "sentence", "paragraph",
    "chocolate", "vanilla", "cinnamon", "barrel", "tunnel", "bridge", "castle", "village",
    "cottage", "hospital", "airport", "station", "harbor", "museum", "theater", "concert",
    "trumpet", "violin", "guitar", "drummer", "piano", "zebra", "kangaroo", "koala", "llama",
    "alpaca", "hippopotamus", "crocodile", "octopus", "jellyfish", "butterfly", "dragonfly",
    "bumblebee", "grasshopper", "caterpillar", "raccoon", "possum", "beaver", "otter",
};

int nuage__synth_count(int d, nuage_rng *r, nuage_synth_item *it) {
    (void)d;
    static const char *const q[] = {"How many times does the letter '%c' appear in '%s'?",
                                    "How many %c's are in the word %s?",
                                    "Count the letter %c in %s."};
    int nw = (int)(sizeof k_words / sizeof k_words[0]);
    const char *w = k_words[nuage_rng_below(r, (uint64_t)nw)];
    size_t n = strlen(w);
    char c = nuage_rng_below(r, 4) ? w[nuage_rng_below(r, n)] : (char)('a' + nuage_rng_below(r, 26));
    int k = (int)nuage_rng_below(r, 3);
    snprintf(it->key, sizeof it->key, "count:%s:%c", w, c);
    snprintf(it->question, sizeof it->question, q[k], c, w);
    int cnt = 0;
    char *th = it->think;
    size_t cap = sizeof it->think;
    for (size_t i = 0; i < n; i++) {
        size_t s = strlen(th);
        if (w[i] == c) snprintf(th + s, cap - s, "%s%c(%d)", i ? " " : "", w[i], ++cnt);
        else snprintf(th + s, cap - s, "%s%c", i ? " " : "", w[i]);
    }
    size_t s = strlen(th);
    snprintf(th + s, cap - s, "\n%c: %d\n", c, cnt);
    snprintf(it->answer, sizeof it->answer, "%d", cnt);
    snprintf(it->reply, sizeof it->reply, "%d", cnt);
    return 0;
}

/* ---- facts ------------------------------------------------------------------------------ */

static const char *const k_capitals[][2] = {
    {"France", "Paris"}, {"Germany", "Berlin"}, {"Italy", "Rome"}, {"Spain", "Madrid"},
    {"Portugal", "Lisbon"}, {"Japan", "Tokyo"}, {"China", "Beijing"}, {"Russia", "Moscow"},
    {"Egypt", "Cairo"}, {"Kenya", "Nairobi"}, {"Canada", "Ottawa"}, {"Australia", "Canberra"},
    {"Peru", "Lima"}, {"Chile", "Santiago"}, {"Colombia", "Bogota"}, {"Cuba", "Havana"},
    {"Norway", "Oslo"}, {"Sweden", "Stockholm"}, {"Finland", "Helsinki"}, {"Denmark", "Copenhagen"},
    {"Poland", "Warsaw"}, {"Austria", "Vienna"}, {"Hungary", "Budapest"}, {"Greece", "Athens"},
    {"Turkey", "Ankara"}, {"Ireland", "Dublin"}, {"Belgium", "Brussels"}, {"Netherlands", "Amsterdam"},
    {"Switzerland", "Bern"}, {"Czechia", "Prague"}, {"Romania", "Bucharest"}, {"Bulgaria", "Sofia"},
    {"Ukraine", "Kyiv"}, {"Iran", "Tehran"}, {"Iraq", "Baghdad"}, {"Thailand", "Bangkok"},
    {"Vietnam", "Hanoi"}, {"Indonesia", "Jakarta"}, {"Philippines", "Manila"}, {"Nigeria", "Abuja"},
    {"Ghana", "Accra"}, {"Morocco", "Rabat"}, {"Pakistan", "Islamabad"}, {"Nepal", "Kathmandu"},
    {"Iceland", "Reykjavik"}, {"Croatia", "Zagreb"}, {"Serbia", "Belgrade"}, {"Qatar", "Doha"},
    {"Lebanon", "Beirut"}, {"Jordan", "Amman"},
};

int nuage__synth_facts(int d, nuage_rng *r, nuage_synth_item *it) {
    (void)d;
    static const char *const q_cap[] = {
        "What is the capital of %s?", "Which city is the capital of %s?",
        "Name the capital city of %s.", "What city is the capital of %s?",
        "The capital of %s is which city?", "Tell me the capital of %s.",
        "What's the capital city of %s?", "Capital of %s?",
    };
    static const char *const q_cty[] = {
        "%s is the capital of which country?", "Which country has %s as its capital?",
        "Of which country is %s the capital?", "%s is the capital city of what country?",
    };
    int nc = (int)(sizeof k_capitals / sizeof k_capitals[0]);
    int ci = (int)nuage_rng_below(r, (uint64_t)nc);
    bool rev = nuage_rng_below(r, 3) == 0;
    int k = (int)nuage_rng_below(r, rev ? 4 : 8);
    const char *country = k_capitals[ci][0], *city = k_capitals[ci][1];
    snprintf(it->key, sizeof it->key, "facts:%s:%d:%d", country, rev, k);
    if (!rev) {
        snprintf(it->question, sizeof it->question, q_cap[k], country);
        snprintf(it->answer, sizeof it->answer, "%s", city);
    } else {
        snprintf(it->question, sizeof it->question, q_cty[k], city);
        snprintf(it->answer, sizeof it->answer, "%s", country);
    }
    snprintf(it->think, sizeof it->think, "The capital of %s is %s.\n", country, city);
    snprintf(it->reply, sizeof it->reply, "%s", it->answer);
    return 0;
}

/* ---- JSONL -------------------------------------------------------------------------------- */

char *nuage_synth_json(const nuage_synth_item *it, bool reasoning) {
    char content[NUAGE_SYNTH_THINK + 256];
    nuage_synth_content(it, reasoning, content, sizeof content);
    json_t *o = json_pack("{s:[{s:s,s:s},{s:s,s:s}],s:s,s:s}", "messages", "role", "user", "content",
                          it->question, "role", "assistant", "content", content, "task",
                          nuage_task_name(it->task), "answer", it->answer);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}
