/* The scalr-email command: a client of the public library only. */
#ifndef SE_CLI_H
#define SE_CLI_H

#include "scalr_email.h"

/* sysexits.h status for a library outcome (cli/exit.c). */
int cli_exit_status(scalr_email_code code);
/* Print err as one line on stderr; return its exit status. */
int cli_report(const scalr_email_error *err);

int cli_send(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_send_batch(int argc, char **argv);

/* -v: print the conversation on stderr ("C: ...", "S: ...", "* ..."). */
void cli_trace(void *arg, char dir, const char *line, size_t len);

/* Usage error: message on stderr, returns EX_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
