/* cli.h: subcommands of the tunebench executable that live outside main.c. */
#ifndef TB_CLI_H
#define TB_CLI_H

/* `tunebench plugins [--plugin-path P] [--help]`: lists every plugin found
 * (kind, name, version, licence, file, description, options) and the
 * problems met while scanning. argv holds the arguments after "plugins".
 * Returns the exit code: 0 listed, 1 an explicit plugin path failed, 2 bad usage. */
int tb_cli_plugins(int argc, char **argv);

#endif
