/* scalr-email sendmail: the sendmail command line that PHP, cron, git and
 * mail readers call, reading a whole message on standard input.  Run as
 * `scalr-email sendmail ...` or through a link named sendmail (or mailq,
 * which is `sendmail -bp`). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

/* The system-wide default configuration, read when no --env-file is given. */
#define SYSTEM_ENV_FILE "/etc/scalr-email.env"

static const char usage[] =
    "usage: scalr-email sendmail [-t] [-i] [-f SENDER] [-F NAME] [--env-file PATH]\n"
    "                            [--profile NAME] [--queue URL] [-v] [--] [RECIPIENT ...]\n"
    "       sendmail ...            (the same, through a link named sendmail)\n"
    "       scalr-email sendmail -bp | -q\n"
    "\n"
    "Read a whole message on standard input and send it with the SMTP_* configuration,\n"
    "as /usr/sbin/sendmail does.  The message is kept as it is: line endings become CRLF,\n"
    "Bcc fields are removed, and Date, Message-ID and From are added when missing.  With\n"
    "SMTP_DKIM_* set it is DKIM-signed as it goes on the wire (queued: at enqueue).\n"
    "\n"
    "  -t            recipients also from the To, Cc and Bcc fields\n"
    "  -i, -oi       a line holding only \".\" does not end the message\n"
    "  -f SENDER     envelope sender (also -fSENDER, -r SENDER; -f '<>' for none)\n"
    "  -F NAME       full name for an added From field\n"
    "  --env-file P  configuration file (default: $SCALR_EMAIL_ENV_FILE, else\n"
    "                " SYSTEM_ENV_FILE " when it exists)\n"
    "  --profile N   send as sender profile N ($SCALR_EMAIL_PROFILES/N.env; also\n"
    "                SCALR_EMAIL_PROFILE): its server, account, From, DKIM key, domains\n"
    "  --queue URL   enqueue instead of sending (also SCALR_EMAIL_QUEUE)\n"
    "  --input-timeout S  give up when standard input is silent this long (300)\n"
    "  -bp           list the queue (as mailq);  -q  send what is queued, then exit\n"
    "  -v            print the SMTP conversation on standard error\n"
    "  --help, -h    this text\n"
    "Accepted and ignored: -oem -oee -oep -oeq -oew -odi -odb -odq -om -oo -os -m -n -U\n"
    "-G -Ac -Am -bm -hN -B TYPE -N DSN -R RET -V ENVID -X LOG -L TAG -C FILE -O OPT=V.\n"
    "A recipient without '@' gets @SMTP_DEFAULT_DOMAIN.  Exit status: 0 sent (or\n"
    "queued), 64-78 as in sysexits.h.\n";

typedef struct sm_args {
    int take_rcpts, dot_ends, verbose, list_queue, run_queue;
    const char *from; /* -f, or NULL */
    const char *full_name;
    const char *env_file;
    const char *queue;
    const char *profile; /* --profile, or NULL */
    const char *input_timeout;
    const char **rcpt;
    size_t n_rcpt;
} sm_args;

static int add_rcpt(sm_args *a, const char *r)
{
    const char **v = realloc(a->rcpt, (a->n_rcpt + 2) * sizeof *v);
    if (!v)
        return -1;
    v[a->n_rcpt++] = r;
    v[a->n_rcpt] = NULL;
    a->rcpt = v;
    return 0;
}

/* Flags that take a value and are ignored (sendmail 8, Postfix). */
static int ignored_with_value(char c)
{
    return strchr("BNRVXLhCO", c) != NULL;
}

/* Flags without a value, ignored. */
static int ignored_plain(char c)
{
    return strchr("mnUG", c) != NULL;
}

/* The sendmail command line: option clusters as getopt would not take
 * them (-oi, -FName, -f addr, -odi), recipients anywhere. */
static int parse(int argc, char **argv, sm_args *a)
{
    int only_rcpts = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (only_rcpts || s[0] != '-' || !s[1]) {
            if (add_rcpt(a, s) < 0)
                return EX_OSERR;
            continue;
        }
        if (!strcmp(s, "--")) {
            only_rcpts = 1;
            continue;
        }
        if (!strncmp(s, "--", 2)) {
            const char *name = s + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const char **slot = NULL;
            if (len == 8 && !strncmp(name, "env-file", 8))
                slot = &a->env_file;
            else if (len == 5 && !strncmp(name, "queue", 5))
                slot = &a->queue;
            else if (len == 7 && !strncmp(name, "profile", 7))
                slot = &a->profile;
            else if (len == 13 && !strncmp(name, "input-timeout", 13))
                slot = &a->input_timeout;
            else if (!strcmp(name, "verbose")) {
                a->verbose = 1;
                continue;
            } else
                return cli_usage_error("sendmail: unknown option '%s'", s);
            if (eq)
                *slot = eq + 1;
            else if (i + 1 < argc)
                *slot = argv[++i];
            else
                return cli_usage_error("sendmail: option '%s' needs a value", s);
            continue;
        }
        for (size_t k = 1; s[k]; k++) {
            char c = s[k];
            const char *rest = s + k + 1;
            const char **val = NULL;
            switch (c) {
            case 't': a->take_rcpts = 1; continue;
            case 'i': a->dot_ends = 0; continue;
            case 'v': a->verbose = 1; continue;
            case 'f':
            case 'r': val = &a->from; break;
            case 'F': val = &a->full_name; break;
            case 'o':
                if (!*rest)
                    return cli_usage_error("sendmail: -o needs an option letter (-oi, -oem ...)");
                if (!strcmp(rest, "i"))
                    a->dot_ends = 0; /* -oi: as -i */
                /* -oem -oee -odi -odb ... : error and delivery modes, ignored */
                k = strlen(s) - 1;
                continue;
            case 'b':
                if (!strcmp(rest, "m")) { /* deliver: the default */
                    k = strlen(s) - 1;
                    continue;
                }
                if (!strcmp(rest, "p")) {
                    a->list_queue = 1;
                    k = strlen(s) - 1;
                    continue;
                }
                return cli_usage_error("sendmail: -b%s is not supported (only -bm and -bp)", rest);
            case 'q':
                if (*rest)
                    return cli_usage_error("sendmail: -q%s is not supported (only -q: send what "
                                           "is queued once)",
                                           rest);
                a->run_queue = 1;
                continue;
            case 'A':
                if (*rest == 'c' || *rest == 'm') {
                    k++;
                    continue;
                }
                return cli_usage_error("sendmail: unknown option '%s'", s);
            case 'e': /* -em -eq ...: the old form of -oe */ k = strlen(s) - 1; continue;
            default:
                if (ignored_plain(c))
                    continue;
                if (ignored_with_value(c)) {
                    if (!*rest && ++i >= argc)
                        return cli_usage_error("sendmail: option -%c needs a value", c);
                    k = strlen(s) - 1;
                    continue;
                }
                return cli_usage_error("sendmail: unknown option '-%c' in '%s'", c, s);
            }
            /* -f, -r, -F: the value is the rest of the cluster or the next argument. */
            if (*rest)
                *val = rest;
            else if (i + 1 < argc)
                *val = argv[++i];
            else
                return cli_usage_error("sendmail: option -%c needs a value", c);
            break;
        }
    }
    return 0;
}

/* The envelope sender as given: "<>" and "" are the null sender; <addr>
 * loses its brackets.  CR, LF, spaces and a leading '-' are refused
 * (CVE-2016-10033: a sender that smuggles arguments or commands). */
static int check_sender(const char *in, char *out, size_t len)
{
    for (const char *p = in; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return cli_usage_error("sendmail: the sender '-f' holds a space or control character");
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '<' && in[n - 1] == '>')
        in++, n -= 2;
    if (n >= len)
        return cli_usage_error("sendmail: the sender is too long");
    if (n && in[0] == '-')
        return cli_usage_error("sendmail: the sender '%s' starts with '-'", in);
    memcpy(out, in, n);
    out[n] = '\0';
    return 0;
}

static const char *pick_env_file(const char *given)
{
    if (given)
        return given;
    const char *e = getenv("SCALR_EMAIL_ENV_FILE");
    if (e && *e)
        return e;
    /* One that exists but cannot be read is reported, not skipped. */
    return access(SYSTEM_ENV_FILE, F_OK) == 0 ? SYSTEM_ENV_FILE : NULL;
}

/* A configuration value (environment first, then the file); NULL if unset. */
static char *config(const char *env_file, const char *name, int *st)
{
    char *v = NULL;
    scalr_email_error err;
    if (scalr_email_config_get(env_file, name, &v, &err) != SCALR_EMAIL_OK) {
        *st = cli_report(&err);
        return NULL;
    }
    return v;
}

/* Recipients without '@' (cron's "root") get SMTP_DEFAULT_DOMAIN. */
static int qualify(const char **in, size_t n, char ***out, const char *domain)
{
    *out = calloc(n + 1, sizeof **out);
    if (!*out)
        return EX_OSERR;
    for (size_t i = 0; i < n; i++) {
        if (strchr(in[i], '@')) {
            (*out)[i] = strdup(in[i]);
        } else if (domain && *domain) {
            size_t len = strlen(in[i]) + strlen(domain) + 2;
            if (((*out)[i] = malloc(len)))
                snprintf((*out)[i], len, "%s@%s", in[i], domain);
        } else {
            fprintf(stderr,
                    "scalr-email: recipient '%s' has no domain; set SMTP_DEFAULT_DOMAIN to send "
                    "to local names (bad input)\n",
                    in[i]);
            return EX_DATAERR;
        }
        if (!(*out)[i])
            return EX_OSERR;
    }
    return 0;
}

static void free_list(char **l)
{
    for (size_t i = 0; l && l[i]; i++)
        free(l[i]);
    free(l);
}

static void print_queued(void *arg, const scalr_email_queue_item *it)
{
    (void)arg;
    printf("%-8lld %8lld %-8s %s\n", it->id, it->size, it->state,
           it->mail_from[0] ? it->mail_from : "<>");
    const char *r = it->rcpt_to;
    while (r && *r) {
        const char *nl = strchr(r, '\n');
        int len = nl ? (int)(nl - r) : (int)strlen(r);
        printf("%18s%.*s\n", "", len, r);
        r = nl ? nl + 1 : r + len;
    }
    if (it->last_error)
        printf("%18s(%s)\n", "", it->last_error);
}

/* -bp: what is waiting, as mailq shows it. */
static int list_queue(const char *url)
{
    scalr_email_queue *q = NULL;
    scalr_email_error err;
    if (scalr_email_queue_open(&q, url, &err) != SCALR_EMAIL_OK)
        return cli_report(&err);
    static const char *const states[] = {"queued", "leased", "held", "unknown"};
    scalr_email_queue_status stt;
    int st = 0;
    if (scalr_email_queue_get_status(q, &stt, &err) != SCALR_EMAIL_OK) {
        st = cli_report(&err);
    } else {
        long long n = stt.queued + stt.leased + stt.held + stt.unknown;
        if (n == 0)
            puts("Mail queue is empty");
        else
            printf("%-8s %8s %-8s %s\n", "Id", "Size", "State", "Sender/Recipient");
        for (size_t i = 0; n && i < sizeof states / sizeof states[0] && !st; i++)
            if (scalr_email_queue_list(q, states[i], 0, print_queued, NULL, &err) != SCALR_EMAIL_OK)
                st = cli_report(&err);
        if (!st && n)
            printf("-- %lld message%s\n", n, n == 1 ? "" : "s");
    }
    scalr_email_queue_close(q);
    if (!st && fflush(stdout) != 0)
        st = EX_IOERR;
    return st;
}

/* -q: send what is queued now, then return. */
static int run_queue(const char *url, const char *env_file, int verbose)
{
    scalr_email_queue *q = NULL;
    scalr_email_client *c = NULL;
    scalr_email_error err;
    int st = 0;
    if (scalr_email_client_from_env(&c, env_file, verbose ? cli_trace : NULL, NULL, &err) !=
        SCALR_EMAIL_OK)
        return cli_report(&err);
    if (scalr_email_queue_open(&q, url, &err) != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return cli_report(&err);
    }
    const scalr_email_work_opts wo = {.drain = 1};
    if (scalr_email_queue_work(q, c, &wo, &err) != SCALR_EMAIL_OK)
        st = cli_report(&err);
    scalr_email_queue_close(q);
    scalr_email_client_free(c);
    return st;
}

/* Standard input, in pieces, into raw: memory stays flat.  A caller that
 * neither writes nor closes its end for timeout_ms gets exit 75. */
static int read_message(scalr_email_raw *raw, int timeout_ms)
{
    static char buf[65536];
    scalr_email_error err;
    for (;;) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int k = poll(&pfd, 1, timeout_ms);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0) {
            fprintf(stderr,
                    "scalr-email: timed out: no input on standard input for %d s; nothing was "
                    "sent\n",
                    timeout_ms / 1000);
            return EX_TEMPFAIL;
        }
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "scalr-email: cannot read the message from standard input: %s\n",
                    strerror(errno));
            return EX_IOERR;
        }
        if (n == 0)
            break;
        int ended = 0;
        if (scalr_email_raw_feed(raw, buf, (size_t)n, &ended, &err) != SCALR_EMAIL_OK)
            return cli_report(&err);
        if (ended)
            break;
    }
    if (scalr_email_raw_finish(raw, &err) != SCALR_EMAIL_OK)
        return cli_report(&err);
    return 0;
}

static int deliver(const sm_args *a, const char *env_file, const char *queue_url,
                   const char *profile)
{
    int st = 0;
    char sender[512];
    if (a->from && (st = check_sender(a->from, sender, sizeof sender)))
        return st;
    int timeout_ms = 300000;
    if (a->input_timeout) {
        char *e;
        errno = 0;
        double v = strtod(a->input_timeout, &e);
        if (errno || e == a->input_timeout || *e || !(v > 0) || v > 86400)
            return cli_usage_error("sendmail: --input-timeout takes seconds (0 < S <= 86400), "
                                   "not '%s'",
                                   a->input_timeout);
        timeout_ms = v * 1000 < 1 ? 1 : (int)(v * 1000);
    }
    scalr_email_error err;
    scalr_email_raw *raw = NULL;
    const scalr_email_raw_opts ro = {
        .dot_ends = a->dot_ends,
        .header_recipients = a->take_rcpts,
        .full_name = a->full_name,
    };
    if (scalr_email_raw_new(&raw, &ro, &err) != SCALR_EMAIL_OK)
        return cli_report(&err);
    char **rcpt = NULL, *domain = NULL, *from = NULL;
    const char **all = NULL;
    if ((st = read_message(raw, timeout_ms)))
        goto out;
    /* The recipients: the command line's, then (-t) the header's. */
    const char *const *hdr = NULL;
    size_t n_hdr = a->take_rcpts ? scalr_email_raw_recipients(raw, &hdr) : 0;
    size_t n = a->n_rcpt + n_hdr;
    if (n == 0) {
        st = cli_usage_error(a->take_rcpts ? "sendmail: no recipients in To, Cc, Bcc or on the "
                                             "command line"
                                           : "sendmail: no recipients (give them, or use -t)");
        goto out;
    }
    if (!(all = calloc(n + 1, sizeof *all))) {
        st = EX_OSERR;
        goto out;
    }
    for (size_t i = 0; i < a->n_rcpt; i++)
        all[i] = a->rcpt[i];
    for (size_t i = 0; i < n_hdr; i++)
        all[a->n_rcpt + i] = hdr[i];
    domain = config(env_file, "SMTP_DEFAULT_DOMAIN", &st);
    if (st || (st = qualify(all, n, &rcpt, domain)))
        goto out;
    const char *mail_from = a->from ? sender : NULL;
    if (queue_url) {
        from = config(env_file, "SMTP_FROM", &st);
        if (st)
            goto out;
        scalr_email_queue *q = NULL;
        if (scalr_email_queue_open(&q, queue_url, &err) != SCALR_EMAIL_OK) {
            st = cli_report(&err);
            goto out;
        }
        /* Signed at enqueue, so every retry sends the same bytes. */
        if (scalr_email_queue_dkim_from_env(q, env_file, &err) != SCALR_EMAIL_OK) {
            st = cli_report(&err);
            scalr_email_queue_close(q);
            goto out;
        }
        long long id = 0;
        /* With a profile: its From, domains and key, and its tenant in the queue. */
        const scalr_email_enqueue_opts qo = {.profile = profile, .env_file = env_file};
        if (scalr_email_queue_add_raw(q, raw, mail_from, (const char *const *)rcpt, from, &qo, &id,
                                      NULL, &err) != SCALR_EMAIL_OK)
            st = cli_report(&err);
        else if (a->verbose)
            fprintf(stderr, "scalr-email: queued as %lld %s\n", id, err.message_id);
        scalr_email_queue_close(q);
        goto out;
    }
    scalr_email_client *c = NULL;
    scalr_email_trace_fn trace = a->verbose ? cli_trace : NULL;
    if ((profile
             ? scalr_email_client_from_profile(&c, profile, env_file, trace, NULL, &err)
             : scalr_email_client_from_env(&c, env_file, trace, NULL, &err)) != SCALR_EMAIL_OK) {
        st = cli_report(&err);
        goto out;
    }
    if (scalr_email_client_dkim_weak(c)) /* RFC 8301 3.2: 1024 still verifies */
        fputs("scalr-email: warning: the DKIM key is RSA under 2048 bits\n", stderr);
    if (scalr_email_client_send_raw(c, raw, mail_from, (const char *const *)rcpt, &err) !=
        SCALR_EMAIL_OK)
        st = cli_report(&err);
    scalr_email_client_free(c);
out:
    free(all);
    free_list(rcpt);
    free(domain);
    free(from);
    scalr_email_raw_free(raw);
    return st;
}

int cli_sendmail(int argc, char **argv, int as_mailq)
{
    /* A bare -h is help, as for every command; -hN (a hop count) is ignored. */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return EX_OK;
        }
    sm_args a = {.dot_ends = 1, .list_queue = as_mailq};
    int st = parse(argc, argv, &a);
    if (st) {
        free(a.rcpt);
        return st;
    }
    const char *env_file = pick_env_file(a.env_file);
    char *queue = NULL;
    if (a.queue)
        queue = strdup(a.queue);
    else if (!(queue = config(env_file, "SCALR_EMAIL_QUEUE", &st)) && st) {
        free(a.rcpt);
        return st;
    }
    /* A profile from the command line, else SCALR_EMAIL_PROFILE (the env file
     * of a PHP pool or a cron job can name its tenant). */
    char *profile = NULL;
    if (a.profile)
        profile = strdup(a.profile);
    else if (!st && !(profile = config(env_file, "SCALR_EMAIL_PROFILE", &st)) && st) {
        free(queue);
        free(a.rcpt);
        return st;
    }
    if ((a.list_queue || a.run_queue) && !queue)
        st = cli_usage_error("sendmail: %s needs a queue (SCALR_EMAIL_QUEUE or --queue)",
                             a.list_queue ? "-bp" : "-q");
    else if (a.list_queue && a.run_queue)
        st = cli_usage_error("sendmail: -bp and -q are exclusive");
    else if (a.list_queue)
        st = list_queue(queue);
    else if (a.run_queue)
        st = run_queue(queue, env_file, a.verbose);
    else
        st = deliver(&a, env_file, queue, profile);
    free(profile);
    free(queue);
    free(a.rcpt);
    return st;
}
