/* scalr_email_doctor(): the public entry to the checks.  Validates the
 * domain, derives the DKIM public key, asks DNS with a deadline per query
 * and one for the whole run. */
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doctor/doctor.h"
#include "error.h"

/* The A-label form (RFC 5890); letters, digits, '-' and '_' in each label. */
static int normalise(const char *in, char *out, size_t outlen)
{
    char *ascii = NULL;
    if (!in || idn2_to_ascii_8z(in, &ascii, IDN2_NONTRANSITIONAL) != IDN2_OK)
        return -1;
    size_t n = strlen(ascii);
    if (n && ascii[n - 1] == '.')
        ascii[--n] = 0;
    int ok = n > 0 && n <= 253 && n < outlen && strchr(ascii, '.');
    for (size_t i = 0, label = 0; ok && i <= n; i++) {
        char ch = ascii[i];
        if (ch == '.' || ch == 0) {
            ok = label > 0 && label <= 63;
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
            label++;
        } else {
            ok = 0;
        }
    }
    if (ok)
        memcpy(out, ascii, n + 1);
    idn2_free(ascii);
    return ok ? 0 : -1;
}

/* Six query deadlines for the whole run, so a server that answers each
 * query just in time cannot stretch 40 queries into minutes. */
typedef struct budget {
    se_dns *dns;
    struct timespec end;
    int total_s;
} budget;

static se_dns_status lookup(void *arg, const char *name, int type, se_dns_answer *out, char *why,
                            size_t whylen)
{
    budget *b = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > b->end.tv_sec ||
        (now.tv_sec == b->end.tv_sec && now.tv_nsec >= b->end.tv_nsec)) {
        memset(out, 0, sizeof *out);
        snprintf(why, whylen, "the DNS look-ups did not finish within %d s (at %s)", b->total_s,
                 name);
        return SE_DNS_ERROR;
    }
    return se_dns_query(b->dns, name, type, out, why, whylen);
}

scalr_email_code scalr_email_doctor(const char *domain, const scalr_email_doctor_opts *opts,
                                    scalr_email_finding out[SCALR_EMAIL_DOCTOR_CHECKS],
                                    scalr_email_error *err)
{
    static const scalr_email_doctor_opts none = {0};
    const scalr_email_doctor_opts *o = opts ? opts : &none;
    char d[256], why[600] = "";
    memset(out, 0, sizeof(scalr_email_finding) * SCALR_EMAIL_DOCTOR_CHECKS);
    if (err)
        se_error_clear(err);
    if (normalise(domain, d, sizeof d) < 0)
        return se_fail(err, SCALR_EMAIL_EINVAL, "DNS", "'%s' is not a domain name",
                       domain ? domain : "(none)");
    const char *sel = o->dkim_selector;
    if (sel && (!*sel || strspn(sel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789-_.") != strlen(sel)))
        return se_fail(err, SCALR_EMAIL_EINVAL, "DNS", "'%s' is not a DKIM selector", sel);
    char pub[1600], type[16];
    if (o->dkim_key_file &&
        se_dkim_pubkey(o->dkim_key_file, pub, sizeof pub, type, sizeof type, why, sizeof why))
        return se_fail(err, SCALR_EMAIL_EFILE, "DNS", "%s", why);
    int timeout_s = o->timeout_s > 0 ? o->timeout_s : 5;
    se_dns *dns = se_dns_new(o->dns_server, timeout_s, why, sizeof why);
    if (!dns)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "DNS", "%s", why);
    budget b = {.dns = dns, .total_s = 6 * timeout_s};
    clock_gettime(CLOCK_MONOTONIC, &b.end);
    b.end.tv_sec += b.total_s;
    se_doctor_opts so = {
        .domain = d,
        .smtp_host = o->smtp_host,
        .dkim_selector = sel,
        .dkim_domain = o->dkim_domain,
        .dkim_pubkey = o->dkim_key_file ? pub : NULL,
        .dkim_keytype = o->dkim_key_file ? type : NULL,
        .lookup = lookup,
        .lookup_arg = &b,
    };
    int rc = se_doctor_run(&so, out, why, sizeof why);
    se_dns_free(dns);
    if (rc < 0)
        return se_fail(err, SCALR_EMAIL_ETRANSIENT, "DNS", "%s", why);
    return SCALR_EMAIL_OK;
}
