/*
 * fuzz_main.h - a main() for running a harness without libFuzzer: each
 * argument is a file whose bytes go to LLVMFuzzerTestOneInput once (to
 * replay a reproducer or a corpus under gcc, valgrind or a debugger).
 * Included at the end of a harness; compiled only with -DNUAGE_FUZZ_MAIN.
 */
#ifdef NUAGE_FUZZ_MAIN
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); continue; }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
        size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, got);
        free(buf);
        printf("%s: ok\n", argv[i]);
    }
    return 0;
}
#endif
