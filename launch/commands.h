/* The subcommands of the adebert program. Each takes argv with argv[0] = its name. */
#ifndef ADEBERT_COMMANDS_H
#define ADEBERT_COMMANDS_H

int cmd_data(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
