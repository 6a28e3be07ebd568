/* scalr-email: send transactional email from the command line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#ifdef SCALR_EMAIL_INBOX
#include "inbox.h"
#endif

static const char send_usage[] =
    "usage: scalr-email send --to ADDR [--to ADDR ...] --subject TEXT\n"
    "                        [--body TEXT | --body-file PATH] [--html TEXT | --html-file PATH]\n"
    "                        [--from SENDER] [--cc ADDR] [--bcc ADDR] [--reply-to ADDR]\n"
    "                        [--header 'Name: value'] [--attach PATH] [--env-file PATH]\n"
    "                        [--inline PATH] [--calendar FILE] [--envelope-from ADDR|<>]\n"
    "                        [--dsn-notify never|success,failure,delay] [--dsn-ret full|hdrs]\n"
    "                        [--envid ID]\n"
    "                        [--unsubscribe HTTPS-URL [--unsubscribe-mailto ADDR]]\n"
    "                        [--profile NAME] [--print] [-v]\n"
    "       scalr-email send --to ADDR ... --template NAME --data FILE|- [--locale L]\n"
    "                        [--templates DIR] [--allow-missing] [other options as above]\n"
    "\n"
    "Send one message.  The body is read from standard input when neither --body nor\n"
    "--body-file is given.  --print writes the message instead of sending it, exactly\n"
    "as it would go (DKIM-signed when configured; SMTP_HOST need not be set).\n"
    "--template renders the subject and both bodies from DIR/NAME/ (DIR: --templates,\n"
    "else $SCALR_EMAIL_TEMPLATES, else ./templates) with the JSON object in FILE; a\n"
    "variable missing from the data fails (exit 65) unless --allow-missing.\n"
    "--inline PATH embeds an image the HTML shows as <img src=\"cid:NAME\"> (NAME: the\n"
    "file's name).  --calendar FILE adds an iCalendar invite (text/calendar, its METHOD).\n"
    "--envelope-from sets the bounce address (MAIL FROM); <> is the null sender.\n"
    "--dsn-notify, --dsn-ret and --envid ask for delivery status notifications (RFC 3461)\n"
    "when the server offers DSN; otherwise the message goes without them (-v says so).\n"
    "Configuration comes from SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM,\n"
    "SMTP_USE_TLS, SMTP_USE_SSL, SMTP_TIMEOUT, SMTP_SEND_TIMEOUT, SMTP_HELO_NAME,\n"
    "SMTP_RETURN_PATH and SMTP_PROXY (socks5://, socks5h://, http://)\n"
    "(DKIM: SMTP_DKIM_*; --profile NAME: $SCALR_EMAIL_PROFILES/NAME.env over them)\n"
    "(see `man scalr-email`).  Exit status: 0 sent, 64-78 as in sysexits.h.\n";

static const char batch_usage[] =
    "usage: scalr-email send-batch [--connections K] [--rate N] [--env-file PATH] [--profile "
    "NAME]\n"
    "                              [-v] FILE\n"
    "\n"
    "Send one JSON message per line of FILE ('-': standard input) over K connections,\n"
    "at most N messages a second; prints one JSON result per message, with its line.\n"
    "A line's \"profile\": NAME sends it as that sender profile ($SCALR_EMAIL_PROFILES/\n"
    "NAME.env: its server, account, From, allowed domains, DKIM key); other lines go with\n"
    "--profile, else the SMTP_* configuration.\n";

static const char check_usage[] =
    "usage: scalr-email check [--env-file PATH] [-v]\n"
    "\n"
    "Connect, negotiate TLS and authenticate with the SMTP_* configuration, send nothing,\n"
    "and say what the server offers.  Then one line on the From domain's SPF, DKIM,\n"
    "DMARC and MX records (-v: the table of `scalr-email doctor`); a DNS finding never\n"
    "changes the exit status.\n";

static const char doctor_usage[] =
    "usage: scalr-email doctor [DOMAIN] [--json] [--selector S] [--dkim-key FILE]\n"
    "                          [--timeout SECONDS] [--env-file PATH]\n"
    "\n"
    "Check the sending domain's SPF, DKIM, DMARC and MX records and say, record by\n"
    "record, what to publish.  DOMAIN defaults to the domain of SMTP_FROM.  The provider\n"
    "comes from SMTP_HOST; the DKIM selector and key from SMTP_DKIM_SELECTOR and\n"
    "SMTP_DKIM_KEY_FILE (or --selector, --dkim-key).  SCALR_EMAIL_DNS=HOST:PORT asks that\n"
    "DNS server; --timeout bounds each query (default 5 s) and six times it the whole run.\n"
    "Exit status: 0 nothing fails, 1 a check fails, 65 bad domain, 66 unreadable key,\n"
    "75 DNS did not answer, 78 no domain to check or bad SCALR_EMAIL_DNS.\n";

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* one line for `scalr-email --help` */
    const char *usage;   /* NULL: the command answers --help itself */
} command;

static int run_sendmail(int argc, char **argv)
{
    return cli_sendmail(argc, argv, 0);
}

#ifdef SCALR_EMAIL_INBOX
static int run_inbox(int argc, char **argv)
{
    return inbox_main(argc, argv);
}
#endif

/* Adding a subcommand is one entry here. */
static const command commands[] = {
    {"send", cli_send, "send one message", send_usage},
    {"send-batch", cli_send_batch, "send many messages, one JSON line each", batch_usage},
    {"check", cli_check, "check the SMTP configuration without sending", check_usage},
    {"sendmail", run_sendmail, "read a whole message on stdin, as /usr/sbin/sendmail", NULL},
    {"template", cli_template, "check and preview templates: check, render", NULL},
    {"doctor", cli_doctor, "check the domain's SPF, DKIM, DMARC and MX records", doctor_usage},
    {"dkim", cli_dkim, "DKIM: make a signing key and its DNS record, verify a message", NULL},
    {"queue", cli_queue, "the durable queue: add, work, status, list, show, retry, ...", NULL},
#ifdef SCALR_EMAIL_INBOX
    {"inbox", run_inbox, "a local inbox that catches mail, with a web UI", NULL},
#endif
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static int top_help(void)
{
    puts("usage: scalr-email COMMAND [OPTIONS]   (scalr-email COMMAND --help for its options)\n");
    puts("commands:");
    for (size_t i = 0; i < N_COMMANDS; i++)
        printf("  %-11s %s\n", commands[i].name, commands[i].summary);
    puts("\n  --help      this text\n  --version   the version\n");
    puts("Configuration comes from the SMTP_* environment variables or --env-file (see `man\n"
         "scalr-email` and the README).");
    return EX_OK;
}

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
    /* Through a link named sendmail (or mailq): the sendmail command line. */
    const char *base = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
    base = base ? base + 1 : argc > 0 && argv[0] ? argv[0] : "";
    if (!strcmp(base, "sendmail") || !strcmp(base, "mailq"))
        return cli_sendmail(argc, argv, !strcmp(base, "mailq"));
    if (argc < 2) {
        char names[256] = "";
        for (size_t i = 0, n = 0; i < N_COMMANDS && n < sizeof names; i++)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
                                  commands[i].name);
        return cli_usage_error("missing command: %s", names);
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help"))
        return top_help();
    if (!strcmp(cmd, "--version")) {
        printf("scalr-email %s\n", SCALR_EMAIL_VERSION);
        return EX_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(cmd, commands[i].name))
            continue;
        if (commands[i].usage)
            for (int k = 2; k < argc && strcmp(argv[k], "--"); k++)
                if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                    fputs(commands[i].usage, stdout);
                    return EX_OK;
                }
        return commands[i].run(argc - 1, argv + 1);
    }
    return cli_usage_error("unknown command '%s'", cmd);
}
