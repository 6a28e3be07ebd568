/* `scalr-email doctor`: judge a sending domain's SPF, DKIM, DMARC and MX.
 * The record parsers work on strings; the checks ask DNS through a
 * callback, so both are unit-tested without a server. */
#ifndef SE_DOCTOR_H
#define SE_DOCTOR_H

#include <stddef.h>

#include "doctor/dns.h"
#include "scalr_email.h"

/* --- SPF (RFC 7208) -------------------------------------------------------- */
#define SE_SPF_MAX_TERMS 48
#define SE_SPF_MAX_LOOKUPS 10 /* RFC 7208 4.6.4 */

typedef struct se_spf_term {
    char qual;      /* '+', '-', '~', '?' */
    char mech[12];  /* "all", "include", ... lower case */
    char arg[256];  /* the domain-spec or address, "" when none */
} se_spf_term;

typedef struct se_spf {
    size_t n;
    se_spf_term t[SE_SPF_MAX_TERMS];
    char redirect[256]; /* "" when none */
    char all_qual;      /* 0: no "all" term */
} se_spf;

/* 1 when text is an SPF record ("v=spf1" then a space or the end). */
int se_spf_is_record(const char *text);
/* Parse a v=spf1 record: 0, or -1 with why naming the bad term. */
int se_spf_parse(const char *text, se_spf *out, char *why, size_t whylen);
/* The DNS-querying terms of one record (include, a, mx, ptr, exists, redirect). */
int se_spf_lookups(const se_spf *spf);

/* --- DMARC (RFC 7489) and DKIM key records (RFC 6376 3.6.1) --------------- */
typedef struct se_tags {
    size_t n;
    char name[24][16];
    char value[24][1024];
} se_tags;

/* "tag=value; tag=value": 0, or -1 with why. */
int se_tags_parse(const char *text, se_tags *out, char *why, size_t whylen);
const char *se_tags_get(const se_tags *t, const char *name);

/* --- providers --------------------------------------------------------------- */
typedef struct se_provider {
    const char *name;
    const char *host_suffixes; /* space-separated suffixes of SMTP_HOST */
    const char *spf_include;
    const char *dkim; /* how the provider signs, one sentence */
} se_provider;

/* The provider whose SMTP host this is, or NULL. */
const se_provider *se_provider_for_host(const char *host);

/* --- the checks ---------------------------------------------------------------- */
/* The public finding (include/scalr_email.h), under short names. */
typedef scalr_email_check_status se_status;
#define SE_PASS SCALR_EMAIL_CHECK_PASS
#define SE_WARN SCALR_EMAIL_CHECK_WARN
#define SE_FAIL SCALR_EMAIL_CHECK_FAIL
typedef scalr_email_finding se_finding;

/* How the checks ask DNS: SE_DNS_ERROR aborts the run with why. */
typedef se_dns_status (*se_lookup_fn)(void *arg, const char *name, int type, se_dns_answer *out,
                                      char *why, size_t whylen);

typedef struct se_doctor_opts {
    const char *domain;        /* A-label form, no trailing dot */
    const char *smtp_host;     /* NULL: provider unknown */
    const char *dkim_selector; /* NULL: none configured */
    const char *dkim_domain;   /* NULL: domain */
    const char *dkim_pubkey;   /* base64 p= value derived from the key, NULL: no key */
    const char *dkim_keytype;  /* "rsa" or "ed25519" with dkim_pubkey */
    se_lookup_fn lookup;
    void *lookup_arg;
} se_doctor_opts;

#define SE_DOCTOR_CHECKS SCALR_EMAIL_DOCTOR_CHECKS
/* Fill out[0..3] (spf, dkim, dmarc, mx): 0, or -1 when DNS failed (why). */
int se_doctor_run(const se_doctor_opts *o, se_finding out[SE_DOCTOR_CHECKS], char *why,
                  size_t whylen);

/* The DKIM p= value of a PEM private key file: 0, or -1 with why. */
int se_dkim_pubkey(const char *path, char *b64, size_t b64len, char *type, size_t typelen,
                   char *why, size_t whylen);

/* The organisational domain used for DMARC: the last two labels. */
const char *se_org_domain(const char *domain);

#endif
