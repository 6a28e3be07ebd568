/* Release (see release.h): the allow list and the relay's client.  The
 * HTTP side is in http_release.c. */
#include "release.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mime/address.h"
#include "util/buf.h"

#define MAX_PATTERNS 32
#define MAX_PATTERN_LEN 320

static const char *patterns[MAX_PATTERNS];
static size_t n_patterns;
static scalr_email_client *relay;
static char *relay_from; /* SMTP_FROM's addr-spec, or NULL */

int ib_release_allow(const char *p, char *why, size_t whylen)
{
    const char *at = strrchr(p, '@');
    if (n_patterns == MAX_PATTERNS) {
        snprintf(why, whylen, "at most %d --release-allow patterns", MAX_PATTERNS);
        return -1;
    }
    /* "*" alone, or LOCAL@DOMAIN with "*" only left of the '@': a pattern
     * can never open a whole domain by accident ("*@*"). */
    int ok = strcmp(p, "*") == 0 ||
             (at && at != p && at[1] && strlen(p) <= MAX_PATTERN_LEN && !strchr(at + 1, '*') &&
              !strpbrk(p, " \t\r\n<>,;\"") && strchr(p, '@') == at);
    if (!ok) {
        snprintf(why, whylen,
                 "--release-allow wants LOCAL@DOMAIN, '*' only in the local part "
                 "('*@example.com'), or '*' alone, not '%.200s'",
                 p);
        return -1;
    }
    patterns[n_patterns++] = p;
    return 0;
}

size_t ib_release_patterns(const char *const **out)
{
    *out = patterns;
    return n_patterns;
}

/* Glob with '*' only, case-insensitive (ASCII: domains and most local parts). */
static int glob_ci(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (*p == '*') {
            while (p[1] == '*')
                p++;
            for (const char *t = s;; t++) {
                if (glob_ci(p + 1, t))
                    return 1;
                if (!*t)
                    return 0;
            }
        }
        if (!*s || tolower((unsigned char)*p) != tolower((unsigned char)*s))
            return 0;
    }
    return *s == '\0';
}

int ib_release_allowed(const char *addr)
{
    for (size_t i = 0; i < n_patterns; i++)
        if (glob_ci(patterns[i], addr))
            return 1;
    return 0;
}

static int is_loopback(const char *h)
{
    return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 ||
           strcmp(h, "[::1]") == 0;
}

scalr_email_code ib_release_init(const char *env_file, const char *self_host, unsigned self_port,
                                 char *why, size_t whylen)
{
    scalr_email_error e;
    scalr_email_code rc = scalr_email_client_from_env(&relay, env_file, NULL, NULL, &e);
    if (rc != SCALR_EMAIL_OK) {
        snprintf(why, whylen, "--release-env %s: %s", env_file, e.message);
        return rc;
    }
    char *host = NULL, *port = NULL, *from = NULL;
    scalr_email_config_get(env_file, "SMTP_HOST", &host, NULL);
    scalr_email_config_get(env_file, "SMTP_PORT", &port, NULL);
    scalr_email_config_get(env_file, "SMTP_FROM", &from, NULL);
    /* Releasing into ourselves would only catch the message again. */
    int self = host && port && (unsigned)atoi(port) == self_port &&
               (strcmp(host, self_host) == 0 || (is_loopback(host) && is_loopback(self_host)));
    if (self) {
        snprintf(why, whylen, "--release-env %s: SMTP_HOST:SMTP_PORT is this inbox itself",
                 env_file);
        rc = SCALR_EMAIL_ECONFIG;
    }
    if (rc == SCALR_EMAIL_OK && from) {
        se_address a;
        char w[256];
        if (se_address_parse(from, &a, w, sizeof w) < 0) {
            snprintf(why, whylen, "--release-env %s: SMTP_FROM: %s", env_file, w);
            rc = SCALR_EMAIL_ECONFIG;
        } else {
            relay_from = a.addr;
            a.addr = NULL;
            se_address_free(&a);
        }
    }
    free(host);
    free(port);
    free(from);
    if (rc != SCALR_EMAIL_OK)
        ib_release_free();
    return rc;
}

int ib_release_enabled(void)
{
    return relay != NULL;
}

void ib_release_free(void)
{
    scalr_email_client_free(relay);
    relay = NULL;
    free(relay_from);
    relay_from = NULL;
}

scalr_email_code ib_release_send(long long id, const char *env_from, const char *const *rcpt,
                                 const char *raw, size_t len, scalr_email_error *err)
{
    /* RFC 5321 4.4: each relay adds its Received line at the top. */
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    se_buf b = {0};
    se_buf_printf(&b,
                  "Received: by inbox.localhost (scalr-email inbox, released message %lld);\r\n"
                  "\t%s\r\n",
                  id, date);
    se_buf_append(&b, raw, len);
    if (b.oom) {
        se_buf_free(&b);
        scalr_email_error e = {.code = SCALR_EMAIL_ENOMEM};
        snprintf(e.message, sizeof e.message, "out of memory");
        if (err)
            *err = e;
        return SCALR_EMAIL_ENOMEM;
    }
    scalr_email_code rc = scalr_email_client_send_data(relay, relay_from ? relay_from : env_from,
                                                       rcpt, b.data, b.len, err);
    se_buf_free(&b);
    return rc;
}
