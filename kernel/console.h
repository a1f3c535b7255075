/* The management console: serial front end and the shared command table. */
#ifndef TERN_CONSOLE_H
#define TERN_CONSOLE_H

#include <stdbool.h>
#include "lib/cmd.h"

struct cmd_ctx {
	const char *source;	/* "serial", later "tcp 10.0.0.9:51234" */
};

extern const struct cmd_def console_cmds[];
extern const size_t console_ncmds;

void console_init(const char *hostname);
void __attribute__((noreturn)) console_run(void);
const char *console_hostname(void);

#endif
