/* adebert predict: placeholder until its helper lands it. */
#include "launch/cli.h"
#include "launch/commands.h"

int cmd_predict(int argc, char **argv)
{
    cli_error("predict", "not built yet in this version");
    return CLI_USAGE;
}
