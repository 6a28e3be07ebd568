#define _GNU_SOURCE /* strcasestr */
/* The one place where library outcomes become exit codes and messages. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

static const struct {
    scalr_email_code code;
    int status;
} table[] = {
    {SCALR_EMAIL_OK, EX_OK},
    {SCALR_EMAIL_ENOTCONFIGURED, EX_CONFIG},
    {SCALR_EMAIL_ECONFIG, EX_CONFIG},
    {SCALR_EMAIL_EINSECURE, EX_CONFIG}, /* fixed by configuring TLS */
    {SCALR_EMAIL_EINVAL, EX_DATAERR},
    {SCALR_EMAIL_EFILE, EX_NOINPUT},
    {SCALR_EMAIL_EREJECTED, EX_UNAVAILABLE},
    {SCALR_EMAIL_ETOOBIG, EX_UNAVAILABLE},
    {SCALR_EMAIL_EUNSUPPORTED, EX_UNAVAILABLE},
    {SCALR_EMAIL_ETRANSIENT, EX_TEMPFAIL},
    {SCALR_EMAIL_ECONNECT, EX_TEMPFAIL},
    {SCALR_EMAIL_ETIMEOUT, EX_TEMPFAIL},
    {SCALR_EMAIL_EAUTH, EX_NOPERM},
    {SCALR_EMAIL_EPROTOCOL, EX_PROTOCOL},
    {SCALR_EMAIL_ETLS, EX_IOERR},
    {SCALR_EMAIL_EIO, EX_IOERR},
    {SCALR_EMAIL_ENOMEM, EX_OSERR},
    {SCALR_EMAIL_ESTORE, EX_CANTCREAT}, /* the queue database is unusable */
    {SCALR_EMAIL_ENOTFOUND, EX_NOINPUT},
};

/* The code's name in results printed as JSON ("ETIMEOUT"), by value. */
const char *cli_code_name(scalr_email_code code)
{
    static const char *const names[] = {"OK",           "ENOTCONFIGURED", "ECONFIG",    "EINVAL",
                                        "EFILE",        "EREJECTED",      "ETRANSIENT", "ETOOBIG",
                                        "EUNSUPPORTED", "ECONNECT",       "ETLS",       "EINSECURE",
                                        "EAUTH",        "ETIMEOUT",       "EPROTOCOL",  "EIO",
                                        "ENOMEM",       "ESTORE",         "ENOTFOUND"};
    return (unsigned)code < sizeof names / sizeof names[0] ? names[code] : "EUNKNOWN";
}

int cli_exit_status(scalr_email_code code)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == code)
            return table[i].status;
    return EX_SOFTWARE;
}

/* Words by which a message already says what kind of failure it is, besides
 * scalr_email_strerror()'s own text: then the kind is not added again
 * ("no queued message with id 9 (no such queued message)"). */
static const struct {
    scalr_email_code code;
    const char *words;
} said[] = {
    {SCALR_EMAIL_ENOTCONFIGURED, "not configured"},
    {SCALR_EMAIL_ECONNECT, "cannot connect"},
    {SCALR_EMAIL_ECONNECT, "cannot resolve"},
    {SCALR_EMAIL_ETLS, "TLS"},
    {SCALR_EMAIL_EINSECURE, "unencrypted"},
    {SCALR_EMAIL_EAUTH, "AUTH"}, /* also "authentication" */
    {SCALR_EMAIL_ETIMEOUT, "timed out"},
    {SCALR_EMAIL_ETRANSIENT, "temporar"},
    {SCALR_EMAIL_ENOTFOUND, "no queued message"},
};

static int names_kind(const char *message, scalr_email_code code)
{
    if (strcasestr(message, scalr_email_strerror(code)))
        return 1;
    for (size_t i = 0; i < sizeof said / sizeof said[0]; i++)
        if (said[i].code == code && strcasestr(message, said[i].words))
            return 1;
    return 0;
}

/* One line on stderr.  The library's message already names what failed; add
 * the server's reply when the message does not quote it yet. */
int cli_report(const scalr_email_error *err)
{
    char reply[700] = "";
    if (err->smtp_code) {
        char code[8];
        snprintf(code, sizeof code, "%d", err->smtp_code);
        if (!strstr(err->message, code))
            snprintf(reply, sizeof reply, " [server said: %d%s%s %s]", err->smtp_code,
                     err->enhanced[0] ? " " : "", err->enhanced, err->server_text);
    }
    const char *kind = scalr_email_strerror(err->code);
    if (names_kind(err->message, err->code))
        fprintf(stderr, "scalr-email: %s%s\n", err->message, reply);
    else
        fprintf(stderr, "scalr-email: %s%s (%s)\n", err->message, reply, kind);
    return cli_exit_status(err->code);
}
