/* Sender profiles: one env file per tenant (SCALR_EMAIL_PROFILES/NAME.env)
 * over the platform configuration, and the From domains a client may use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client_int.h"
#include "error.h"

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || (c == '.' && i > 0)))
            return 0;
    }
    return 1;
}

scalr_email_code se_profile_path(const char *profile, const char *env_file, char *path, size_t len,
                                 scalr_email_error *err)
{
    /* The name becomes a path: no '/', no "..". */
    if (!valid_name(profile))
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "profile name '%.64s' must be 1-64 letters, digits, '-', '_' or '.'",
                       profile);
    char *dir = NULL;
    scalr_email_code rc = scalr_email_config_get(env_file, "SCALR_EMAIL_PROFILES", &dir, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (!dir)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "profile '%s' asked for but SCALR_EMAIL_PROFILES (the profiles folder) "
                       "is not set",
                       profile);
    int n = snprintf(path, len, "%s/%s.env", dir, profile);
    free(dir);
    if (n < 0 || (size_t)n >= len)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "SCALR_EMAIL_PROFILES is too long");
    if (access(path, R_OK) != 0)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "no sender profile '%s' (%s)", profile,
                       path);
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_client_from_profile(scalr_email_client **out, const char *profile,
                                                 const char *env_file, scalr_email_trace_fn trace,
                                                 void *trace_arg, scalr_email_error *err)
{
    se_error_clear(err);
    if (!out || !profile)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "client_from_profile: NULL argument");
    *out = NULL;
    char path[4096];
    scalr_email_code rc = se_profile_path(profile, env_file, path, sizeof path, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    return se_client_from_layers(out, profile, path, env_file, trace, trace_arg, err);
}

scalr_email_code se_profile_get(const char *profile, const char *env_file, const char *name,
                                char **value, scalr_email_error *err)
{
    *value = NULL;
    char path[4096];
    scalr_email_code rc = se_profile_path(profile, env_file, path, sizeof path, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    return se_config_get_layered(path, env_file, name, value, err);
}

/* The domain of an address as the composer writes it ("a@b" or "N <a@b>"). */
static int domain_of(const char *s, size_t n, char *out, size_t outlen)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '@')
            at = s + i;
    if (!at)
        return -1;
    size_t k = 0;
    for (const char *p = at + 1; p < s + n && *p != '>' && *p != ' ' && *p != '\r'; p++)
        if (k + 1 < outlen)
            out[k++] = *p;
    out[k] = 0;
    return 0;
}

static int allowed(const char *list, const char *dom)
{
    size_t dl = strlen(dom);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (n && n == dl && !strncasecmp(p, dom, n))
            return 1;
        /* a subdomain of an allowed domain (mail.acme.example for acme.example) */
        if (n && dl > n && dom[dl - n - 1] == '.' && !strncasecmp(dom + dl - n, p, n))
            return 1;
        p += n;
    }
    return 0;
}

scalr_email_code se_client_check_from(const scalr_email_client *c, const se_composed *comp,
                                      scalr_email_error *err)
{
    /* The header block is always in memory: deferred parts come later. */
    return se_client_check_sender(c, comp->mail_from, comp->data.data,
                                  comp->n_parts ? comp->parts[0].at : comp->data.len, err);
}

scalr_email_code se_client_check_sender(const scalr_email_client *c, const char *mail_from,
                                        const char *d, size_t lim, scalr_email_error *err)
{
    if (!c->allowed)
        return SCALR_EMAIL_OK;
    char dom[256];
    if (mail_from && *mail_from &&
        (domain_of(mail_from, strlen(mail_from), dom, sizeof dom) < 0 || !allowed(c->allowed, dom)))
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE",
                       "sender %.200s is outside the allowed domains (%.200s)%s%s; nothing was "
                       "sent",
                       mail_from, c->allowed, c->profile ? " of profile " : "",
                       c->profile ? c->profile : "");
    /* From and Sender in the header block. */
    for (size_t i = 0; i < lim;) {
        size_t e = i;
        while (e + 1 < lim && !(d[e] == '\r' && d[e + 1] == '\n' &&
                                !(e + 2 < lim && (d[e + 2] == ' ' || d[e + 2] == '\t'))))
            e++;
        if (e == i)
            break; /* the blank line */
        if ((e - i > 5 && !strncasecmp(d + i, "From:", 5)) ||
            (e - i > 7 && !strncasecmp(d + i, "Sender:", 7))) {
            if (domain_of(d + i, e - i, dom, sizeof dom) < 0 || !allowed(c->allowed, dom))
                return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE",
                               "%.*s is outside the allowed domains (%.200s)%s%s; nothing was "
                               "sent",
                               (int)((e - i) > 200 ? 200 : e - i), d + i, c->allowed,
                               c->profile ? " of profile " : "", c->profile ? c->profile : "");
        }
        i = e + 2;
    }
    return SCALR_EMAIL_OK;
}
