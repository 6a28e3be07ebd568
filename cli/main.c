/* scalr-email: send transactional email from the command line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#ifdef SCALR_EMAIL_INBOX
#include "inbox.h"
#endif

static const char usage[] =
    "usage: scalr-email send --to ADDR [--to ADDR ...] --subject TEXT\n"
    "                        [--body TEXT | --body-file PATH] [--html TEXT | --html-file PATH]\n"
    "                        [--from SENDER] [--cc ADDR] [--bcc ADDR] [--reply-to ADDR]\n"
    "                        [--header 'Name: value'] [--attach PATH] [--env-file PATH]\n"
    "                        [--print] [-v]\n"
    "       scalr-email send-batch [--connections K] [--rate N] [--env-file PATH] [-v] FILE\n"
    "       scalr-email check [--env-file PATH] [-v]\n"
    "       scalr-email queue add|work|status|list|show|retry|cancel|hold|release|purge ...\n"
    "       scalr-email --help | --version\n"
    "\n"
    "The body is read from standard input when neither --body nor --body-file is given.\n"
    "send-batch reads one JSON message per line (FILE, or '-' for standard input) and prints\n"
    "one JSON result per message.\n"
    "Configuration comes from SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM,\n"
    "SMTP_USE_TLS, SMTP_USE_SSL, SMTP_TIMEOUT and SMTP_HELO_NAME (see `man scalr-email`).\n";

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("scalr-email: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (try 'scalr-email --help')\n", stderr);
    return EX_USAGE;
}

void cli_trace(void *arg, char dir, const char *line, size_t len)
{
    (void)arg;
    fprintf(stderr, "%c: %.*s\n", dir, (int)len, line);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("missing command: send, send-batch or check");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EX_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("scalr-email %s\n", SCALR_EMAIL_VERSION);
        return EX_OK;
    }
    if (!strcmp(cmd, "send"))
        return cli_send(argc - 1, argv + 1);
    if (!strcmp(cmd, "send-batch"))
        return cli_send_batch(argc - 1, argv + 1);
    if (!strcmp(cmd, "check"))
        return cli_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "queue"))
        return cli_queue(argc - 1, argv + 1);
#ifdef SCALR_EMAIL_INBOX
    if (!strcmp(cmd, "inbox"))
        return inbox_main(argc - 1, argv + 1);
#endif
    return cli_usage_error("unknown command '%s'", cmd);
}
