/* A harness with three planted bugs: the negative control of tests/fuzz/ci.sh, which
 * must report each (so a fuzz stage that ignored crashes, leaks or UBSan reports would
 * fail itself). Not a reader of adebert's and never fuzzed:
 *   input "READ..."   a heap over-read (ASan)
 *   input "LEAK..."   64 bytes never freed (LeakSanitizer)
 *   input "SHIFT..."  1 << 40 on an int (UBSan) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *volatile sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && !memcmp(data, "READ", 4)) {
        char *p = calloc(8, 1);
        volatile size_t i = 8;
        volatile char c = p[i];
        (void)c;
        free(p);
    } else if (size >= 4 && !memcmp(data, "LEAK", 4)) {
        sink = malloc(64);
        sink = NULL;
    } else if (size >= 5 && !memcmp(data, "SHIFT", 5)) {
        volatile int s = 40;
        volatile int x = 1 << s;
        (void)x;
    }
    return 0;
}
