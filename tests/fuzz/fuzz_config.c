/* libFuzzer target: io_config_parse (a model's config.json) on arbitrary bytes; an
 * accepted config must pass nn_config_validate's bounds or be refused by it in one
 * line, never crash it. Seeds: tests/fuzz/config_seeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "nn/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nn_config c;
    char err[IO_ERRLEN];
    memset(err, 0, sizeof err);
    if (io_config_parse((const char *)data, size, &c, err) != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    char nerr[NN_ERRLEN];
    memset(nerr, 0, sizeof nerr);
    if (nn_config_validate(&c, nerr) != 0 && !nerr[0])
        abort();
    return 0;
}
