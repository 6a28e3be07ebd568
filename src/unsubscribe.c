/* One-click unsubscribe (RFC 8058): the List-Unsubscribe value, checked. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "scalr_email.h"

#define URL_MAX 900 /* the field stays under RFC 5322's 998 octets a line */

/* Printable ASCII without space, '<', '>' or ',' (they would end the URI). */
static int uri_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '<' || *s == '>' ||
            *s == ',')
            return 0;
    return 1;
}

scalr_email_code scalr_email_unsubscribe_value(const char *url, const char *mailto, char *out,
                                               size_t outlen, scalr_email_error *err)
{
    se_error_clear(err);
    if (!url || !out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "unsubscribe: NULL argument");
    /* RFC 8058 3.1: one-click needs an HTTPS URI. */
    if (strncmp(url, "https://", 8) || strlen(url) <= 8 || strlen(url) > URL_MAX || !uri_ok(url))
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE",
                       "unsubscribe URL must be an https:// URL of at most %d printable "
                       "characters without spaces, '<', '>' or ','",
                       URL_MAX);
    if (mailto && *mailto) {
        const char *at = strchr(mailto, '@');
        if (!at || at == mailto || !at[1] || strlen(mailto) > 254 || !uri_ok(mailto) ||
            strchr(mailto, '?'))
            return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE",
                           "unsubscribe mailto '%.80s' is not an address", mailto);
    }
    int n = mailto && *mailto ? snprintf(out, outlen, "<%s>, <mailto:%s>", url, mailto)
                              : snprintf(out, outlen, "<%s>", url);
    if (n < 0 || (size_t)n >= outlen)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "unsubscribe value too long");
    return SCALR_EMAIL_OK;
}
