/* adebert export: placeholder until its helper lands it. */
#include "launch/cli.h"
#include "launch/commands.h"

int cmd_export(int argc, char **argv)
{
    cli_error("export", "not built yet in this version");
    return CLI_USAGE;
}
