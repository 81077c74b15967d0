/* adebert eval: placeholder until its helper lands it. */
#include "launch/cli.h"
#include "launch/commands.h"

int cmd_eval(int argc, char **argv)
{
    cli_error("eval", "not built yet in this version");
    return CLI_USAGE;
}
