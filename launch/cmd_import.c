/* adebert import: placeholder until its helper lands it. */
#include "launch/cli.h"
#include "launch/commands.h"

int cmd_import(int argc, char **argv)
{
    cli_error("import", "not built yet in this version");
    return CLI_USAGE;
}
