/* DNS look-ups for `scalr-email doctor`: TXT and MX through glibc's
 * resolver (res_nmkquery/res_nsend/ns_parserr), one deadline per query. */
#ifndef SE_DNS_H
#define SE_DNS_H

#include <stddef.h>

#define SE_DNS_MAX_RECORDS 16
#define SE_DNS_MAX_TEXT 4096 /* one TXT record, its strings joined */

typedef enum se_dns_status {
    SE_DNS_FOUND,
    SE_DNS_NONE,  /* NXDOMAIN or no record of that type: an answer, not an error */
    SE_DNS_ERROR, /* timeout, SERVFAIL, malformed answer: why says which */
} se_dns_status;

typedef struct se_dns_answer {
    size_t n;
    /* TXT: the record's character-strings joined (RFC 7208 3.3).
     * MX: the exchange, with pref holding the preference. */
    char *rec[SE_DNS_MAX_RECORDS];
    int pref[SE_DNS_MAX_RECORDS];
} se_dns_answer;

typedef struct se_dns se_dns;

/* server: "HOST:PORT" (IPv4 literal) or NULL for /etc/resolv.conf.
 * timeout_s: the deadline of one query.  NULL with why filled on error. */
se_dns *se_dns_new(const char *server, int timeout_s, char *why, size_t whylen);
void se_dns_free(se_dns *d);

/* type: 16 (TXT) or 15 (MX).  On SE_DNS_ERROR, why says what failed. */
se_dns_status se_dns_query(se_dns *d, const char *name, int type, se_dns_answer *out, char *why,
                           size_t whylen);
void se_dns_answer_free(se_dns_answer *a);

#endif
