/* The record parsers of `doctor`: SPF terms, tag=value lists, the provider
 * table, and the public half of a DKIM key.  Strings in, structs out. */
#include "doctor/doctor.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One table: adding a provider is one line.  Suffixes match the end of SMTP_HOST. */
static const se_provider providers[] = {
    {"Amazon SES", "amazonaws.com", "amazonses.com",
     "Easy DKIM signs with three selectors that the SES console lists (CNAMEs at TOKEN._domainkey)"},
    {"Resend", "resend.com resend.dev", "amazonses.com",
     "Resend signs with selector 'resend' (a TXT record its dashboard shows)"},
    {"Postmark", "postmarkapp.com", "spf.mtasv.net",
     "Postmark signs with a dated selector like 20240101000000pm that its dashboard shows"},
    {"SendGrid", "sendgrid.net", "sendgrid.net",
     "SendGrid signs with selectors s1 and s2 (CNAMEs its dashboard shows)"},
    {"Mailgun", "mailgun.org", "mailgun.org",
     "Mailgun signs with the selector its dashboard shows (often smtp, mx or k1)"},
    {"Google", "gmail.com google.com googlemail.com", "_spf.google.com",
     "Google Workspace signs with selector 'google' once DKIM is turned on in the admin console"},
    {"Microsoft 365", "office365.com outlook.com", "spf.protection.outlook.com",
     "Microsoft 365 signs with selectors selector1 and selector2 (CNAMEs the Defender portal shows)"},
};

static int ends_with_label(const char *host, const char *suffix, size_t sl)
{
    size_t hl = strlen(host);
    if (hl && host[hl - 1] == '.')
        hl--;
    if (hl < sl || strncasecmp(host + hl - sl, suffix, sl))
        return 0;
    return hl == sl || host[hl - sl - 1] == '.';
}

const se_provider *se_provider_for_host(const char *host)
{
    if (!host)
        return NULL;
    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++) {
        const char *s = providers[i].host_suffixes;
        while (*s) {
            size_t n = strcspn(s, " ");
            if (ends_with_label(host, s, n))
                return &providers[i];
            s += n;
            s += *s == ' ';
        }
    }
    return NULL;
}

/* Without the Public Suffix List: the last two labels (example.co.uk is
 * then wrong, a documented limit). */
const char *se_org_domain(const char *domain)
{
    const char *last = strrchr(domain, '.');
    if (!last)
        return domain;
    const char *p = last;
    while (p > domain && p[-1] != '.')
        p--;
    return p;
}

int se_spf_is_record(const char *text)
{
    return strncasecmp(text, "v=spf1", 6) == 0 && (text[6] == ' ' || text[6] == 0);
}

static int valid_domain_spec(const char *s)
{
    /* RFC 7208 7.1: macros are allowed; check only for the visible
     * characters and a non-empty value. */
    if (!*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int valid_ip(const char *arg, int v6)
{
    char a[64];
    const char *slash = strchr(arg, '/');
    size_t n = slash ? (size_t)(slash - arg) : strlen(arg);
    if (n == 0 || n >= sizeof a)
        return 0;
    memcpy(a, arg, n);
    a[n] = 0;
    unsigned char buf[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, a, buf) != 1)
        return 0;
    if (slash) {
        char *end;
        long cidr = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || cidr < 0 || cidr > (v6 ? 128 : 32))
            return 0;
    }
    return 1;
}

/* RFC 7208 4.6.1 and 12: terms, mechanisms, modifiers. */
int se_spf_parse(const char *text, se_spf *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (!se_spf_is_record(text)) {
        snprintf(why, whylen, "does not start with v=spf1");
        return -1;
    }
    const char *p = text + 6;
    int seen_exp = 0;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, " ");
        char term[300];
        if (n >= sizeof term) {
            snprintf(why, whylen, "a term is longer than %zu characters", sizeof term - 1);
            return -1;
        }
        memcpy(term, p, n);
        term[n] = 0;
        p += n;
        /* A modifier is name=value where name is ALPHA *(ALPHA/DIGIT/-/_/.). */
        size_t nl = strspn(term, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
        if (term[nl] == '=' && nl > 0 && isalpha((unsigned char)term[0])) {
            const char *val = term + nl + 1;
            if (nl == 8 && !strncasecmp(term, "redirect", 8)) {
                if (out->redirect[0]) {
                    snprintf(why, whylen, "redirect= appears twice");
                    return -1;
                }
                if (!valid_domain_spec(val) || strlen(val) >= sizeof out->redirect) {
                    snprintf(why, whylen, "'%s' has no valid domain", term);
                    return -1;
                }
                snprintf(out->redirect, sizeof out->redirect, "%s", val);
            } else if (nl == 3 && !strncasecmp(term, "exp", 3)) {
                if (seen_exp++) {
                    snprintf(why, whylen, "exp= appears twice");
                    return -1;
                }
            }
            continue; /* unknown modifiers are ignored (RFC 7208 6) */
        }
        if (out->n == SE_SPF_MAX_TERMS) {
            snprintf(why, whylen, "more than %d mechanisms", SE_SPF_MAX_TERMS);
            return -1;
        }
        se_spf_term *t = &out->t[out->n];
        const char *m = term;
        t->qual = '+';
        if (strchr("+-~?", *m))
            t->qual = *m++;
        size_t ml = strcspn(m, ":/");
        if (ml == 0 || ml >= sizeof t->mech) {
            snprintf(why, whylen, "unknown term '%s'", term);
            return -1;
        }
        for (size_t i = 0; i < ml; i++)
            t->mech[i] = (char)tolower((unsigned char)m[i]);
        const char *arg = m[ml] == ':' ? m + ml + 1 : m + ml;
        int has_colon = m[ml] == ':';
        snprintf(t->arg, sizeof t->arg, "%s", arg);
        const char *mech = t->mech;
        int ok;
        if (!strcmp(mech, "all"))
            ok = !*arg;
        else if (!strcmp(mech, "include") || !strcmp(mech, "exists"))
            ok = has_colon && valid_domain_spec(arg) && !strchr(arg, '/');
        else if (!strcmp(mech, "ip4"))
            ok = has_colon && valid_ip(arg, 0);
        else if (!strcmp(mech, "ip6"))
            ok = has_colon && valid_ip(arg, 1);
        else if (!strcmp(mech, "a") || !strcmp(mech, "mx") || !strcmp(mech, "ptr"))
            ok = !has_colon || valid_domain_spec(arg);
        else {
            snprintf(why, whylen, "unknown mechanism '%s'", term);
            return -1;
        }
        if (!ok) {
            snprintf(why, whylen, "malformed term '%s'", term);
            return -1;
        }
        if (!strcmp(mech, "all") && !out->all_qual)
            out->all_qual = t->qual;
        out->n++;
    }
    return 0;
}

int se_spf_lookups(const se_spf *spf)
{
    int n = 0;
    static const char *const q[] = {"include", "a", "mx", "ptr", "exists"};
    for (size_t i = 0; i < spf->n; i++)
        for (size_t k = 0; k < sizeof q / sizeof q[0]; k++)
            n += !strcmp(spf->t[i].mech, q[k]);
    /* RFC 7208 6.1: redirect is ignored when the record has "all". */
    return n + (spf->redirect[0] && !spf->all_qual);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

/* RFC 7489 6.4 / RFC 6376 3.2: tag-list = tag-spec *( ";" tag-spec ) [ ";" ]. */
int se_tags_parse(const char *text, se_tags *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    char buf[SE_DNS_MAX_TEXT + 1];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *spec = strtok_r(buf, ";", &save); spec; spec = strtok_r(NULL, ";", &save)) {
        char *s = trim(spec);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(why, whylen, "'%s' is not tag=value", s);
            return -1;
        }
        *eq = 0;
        char *name = trim(s), *value = trim(eq + 1);
        if (!*name || strlen(name) >= sizeof out->name[0] || strlen(value) >= sizeof out->value[0]) {
            snprintf(why, whylen, "tag '%s' is empty or too long", name);
            return -1;
        }
        for (size_t i = 0; i < out->n; i++)
            if (!strcmp(out->name[i], name)) {
                snprintf(why, whylen, "tag '%s' appears twice", name);
                return -1;
            }
        if (out->n == sizeof out->name / sizeof out->name[0]) {
            snprintf(why, whylen, "too many tags");
            return -1;
        }
        snprintf(out->name[out->n], sizeof out->name[0], "%s", name);
        snprintf(out->value[out->n], sizeof out->value[0], "%s", value);
        out->n++;
    }
    return 0;
}

const char *se_tags_get(const se_tags *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->name[i], name))
            return t->value[i];
    return NULL;
}

/* RFC 6376 3.6.1: p= is the base64 SubjectPublicKeyInfo for RSA;
 * RFC 8463 4.2: the raw 32-byte key for Ed25519. */
int se_dkim_pubkey(const char *path, char *b64, size_t b64len, char *type, size_t typelen,
                   char *why, size_t whylen)
{
    why[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "cannot read the DKIM key %s", path);
        return -1;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) {
        snprintf(why, whylen, "%s is not a PEM private key", path);
        return -1;
    }
    unsigned char *der = NULL;
    size_t dlen = 0;
    int rc = -1;
    if (EVP_PKEY_base_id(k) == EVP_PKEY_ED25519) {
        der = malloc(32);
        dlen = 32;
        if (der && EVP_PKEY_get_raw_public_key(k, der, &dlen) == 1)
            rc = 0;
        snprintf(type, typelen, "ed25519");
    } else if (EVP_PKEY_base_id(k) == EVP_PKEY_RSA) {
        int n = i2d_PUBKEY(k, &der);
        if (n > 0) {
            dlen = (size_t)n;
            rc = 0;
        }
        snprintf(type, typelen, "rsa");
    } else {
        snprintf(why, whylen, "%s: DKIM keys are RSA or Ed25519", path);
    }
    if (rc == 0) {
        if (b64len < 4 * ((dlen + 2) / 3) + 1) {
            snprintf(why, whylen, "%s: the key is too large", path);
            rc = -1;
        } else {
            EVP_EncodeBlock((unsigned char *)b64, der, (int)dlen);
        }
    } else if (!why[0]) {
        snprintf(why, whylen, "%s: cannot derive the public key", path);
    }
    if (EVP_PKEY_base_id(k) == EVP_PKEY_ED25519)
        free(der);
    else
        OPENSSL_free(der);
    EVP_PKEY_free(k);
    return rc;
}
