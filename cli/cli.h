/* The scalr-email command: a client of the public library only. */
#ifndef SE_CLI_H
#define SE_CLI_H

#include "scalr_email.h"

/* sysexits.h status for a library outcome (cli/exit.c). */
int cli_exit_status(scalr_email_code code);
/* "ETIMEOUT" for SCALR_EMAIL_ETIMEOUT: the code's name in JSON results. */
const char *cli_code_name(scalr_email_code code);
/* Print err as one line on stderr; return its exit status. */
int cli_report(const scalr_email_error *err);

int cli_send(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_send_batch(int argc, char **argv);

/* -v: print the conversation on stderr ("C: ...", "S: ...", "* ..."). */
void cli_trace(void *arg, char dir, const char *line, size_t len);

/* Usage error: message on stderr, returns EX_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <jansson.h>

/* One input line: the parsed message, or why it is not one. */
typedef struct cli_item {
    size_t line;
    json_t *json; /* owns every string the message points to */
    scalr_email_message m;
    const char **lists[3]; /* to, cc, bcc */
    scalr_email_header *headers;
    scalr_email_attachment *att;
    scalr_email_rendered r;           /* a "template" line's parts */
    const char *unsub, *unsub_mailto; /* "unsubscribe", "unsubscribe_mailto" */
    const char *profile;              /* "profile": a sender profile, or NULL */
    char unsub_value[1024];
    char why[800]; /* non-empty: malformed, nothing sent */
} cli_item;

/* Parse one JSON line into it: 0, or -1 with it->why saying why it is not a message. */
int cli_item_parse(cli_item *it, const char *text, size_t len);
void cli_item_free(cli_item *it);

int cli_queue(int argc, char **argv);
/* sendmail mode; as_mailq: run as `mailq` (-bp). */
int cli_sendmail(int argc, char **argv, int as_mailq);
int cli_template(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_dkim(int argc, char **argv);

/* Parse `send`-style options into a message (shared by send and queue add).
 * extra: further long options the caller handles with on_extra (returns 0,
 * or an exit status). */
typedef struct cli_msg cli_msg;
int cli_msg_parse(int argc, char **argv, const void *extra_opts, size_t n_extra,
                  int (*on_extra)(void *arg, int opt, const char *val), void *arg, cli_msg **out);
const scalr_email_message *cli_msg_message(const cli_msg *m);
const char *cli_msg_env_file(const cli_msg *m);
const char *cli_msg_profile(const cli_msg *m); /* --profile, or NULL */
int cli_msg_verbose(const cli_msg *m);
void cli_msg_free(cli_msg *m);
#endif
