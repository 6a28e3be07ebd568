/* glibc's resolver: a stub resolver every Debian system has, speaking UDP
 * with a TCP retry on truncation, and ns_parserr to walk the answer. */
#include "doctor/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct se_dns {
    struct __res_state rs;
    char server[64]; /* for messages: "127.0.0.1:5353" or "the system resolver" */
    int timeout_s;
};

se_dns *se_dns_new(const char *server, int timeout_s, char *why, size_t whylen)
{
    se_dns *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (res_ninit(&d->rs) != 0) {
        snprintf(why, whylen, "cannot initialise the DNS resolver");
        free(d);
        return NULL;
    }
    d->timeout_s = timeout_s > 0 ? timeout_s : 5;
    /* One attempt per query, bounded by the deadline; no search list. */
    d->rs.retrans = d->timeout_s;
    d->rs.retry = 1;
    d->rs.options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
    d->rs.options |= RES_USE_EDNS0;
    snprintf(d->server, sizeof d->server, "the system resolver");
    if (server) {
        char host[48];
        const char *colon = strrchr(server, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        size_t hl = colon ? (size_t)(colon - server) : 0;
        struct in_addr a;
        if (!colon || hl == 0 || hl >= sizeof host || !end || *end || port < 1 || port > 65535) {
            snprintf(why, whylen, "SCALR_EMAIL_DNS must be HOST:PORT, e.g. 127.0.0.1:53");
            se_dns_free(d);
            return NULL;
        }
        memcpy(host, server, hl);
        host[hl] = 0;
        if (inet_pton(AF_INET, host, &a) != 1) {
            snprintf(why, whylen, "SCALR_EMAIL_DNS: '%s' is not an IPv4 address", host);
            se_dns_free(d);
            return NULL;
        }
        d->rs.nscount = 1;
        d->rs.nsaddr_list[0].sin_family = AF_INET;
        d->rs.nsaddr_list[0].sin_addr = a;
        d->rs.nsaddr_list[0].sin_port = htons((unsigned short)port);
        snprintf(d->server, sizeof d->server, "%s:%ld", host, port);
    }
    return d;
}

void se_dns_free(se_dns *d)
{
    if (!d)
        return;
    res_nclose(&d->rs);
    free(d);
}

void se_dns_answer_free(se_dns_answer *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->rec[i]);
    memset(a, 0, sizeof *a);
}

/* RFC 1035 3.3.14: TXT RDATA is one or more <character-string>s, each a
 * length octet and that many octets; RFC 7208 3.3 joins them without spaces. */
static char *txt_join(const unsigned char *p, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    while (i < len) {
        size_t n = p[i++];
        if (n > len - i) {
            free(out);
            return NULL;
        }
        for (size_t k = 0; k < n; k++)
            out[o++] = p[i + k] ? (char)p[i + k] : ' '; /* a NUL would cut the text short */
        i += n;
    }
    out[o] = 0;
    return out;
}

se_dns_status se_dns_query(se_dns *d, const char *name, int type, se_dns_answer *out, char *why,
                           size_t whylen)
{
    memset(out, 0, sizeof *out);
    const char *tname = type == ns_t_mx ? "MX" : "TXT";
    unsigned char q[NS_PACKETSZ];
    /* 64 KiB: the largest DNS message, so a TCP answer is never cut. */
    static __thread unsigned char ans[65536];
    int qlen = res_nmkquery(&d->rs, ns_o_query, name, ns_c_in, type, NULL, 0, NULL, q, sizeof q);
    if (qlen < 0) {
        snprintf(why, whylen, "'%s' is not a valid DNS name", name);
        return SE_DNS_ERROR;
    }
    errno = 0;
    int alen = res_nsend(&d->rs, q, qlen, ans, sizeof ans);
    if (alen < 0) {
        if (errno == ECONNREFUSED)
            snprintf(why, whylen, "DNS query %s %s: %s refused the connection", tname, name,
                     d->server);
        else
            snprintf(why, whylen, "DNS query %s %s: no answer from %s within %d s", tname, name,
                     d->server, d->timeout_s);
        return SE_DNS_ERROR;
    }
    ns_msg msg;
    if (ns_initparse(ans, alen, &msg) < 0) {
        snprintf(why, whylen, "DNS query %s %s: malformed answer from %s", tname, name, d->server);
        return SE_DNS_ERROR;
    }
    int rcode = ns_msg_getflag(msg, ns_f_rcode);
    if (rcode == ns_r_nxdomain)
        return SE_DNS_NONE;
    if (rcode != ns_r_noerror) {
        snprintf(why, whylen, "DNS query %s %s: %s answered %s", tname, name, d->server,
                 rcode == ns_r_servfail ? "SERVFAIL" : rcode == ns_r_refused ? "REFUSED"
                                                                           : "an error");
        return SE_DNS_ERROR;
    }
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) {
            snprintf(why, whylen, "DNS query %s %s: malformed record in the answer", tname, name);
            se_dns_answer_free(out);
            return SE_DNS_ERROR;
        }
        /* CNAMEs on the way are followed by the server; keep only the type asked. */
        if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
            continue;
        if (out->n == SE_DNS_MAX_RECORDS)
            break; /* a cap: more than 16 TXT or MX records is judged on the first 16 */
        char *rec = NULL;
        if (type == ns_t_txt) {
            if (ns_rr_rdlen(rr) > SE_DNS_MAX_TEXT)
                continue;
            rec = txt_join(ns_rr_rdata(rr), ns_rr_rdlen(rr));
        } else {
            char host[NS_MAXDNAME];
            if (ns_rr_rdlen(rr) < 3 ||
                dn_expand(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr) + 2, host,
                          sizeof host) < 0) {
                snprintf(why, whylen, "DNS query MX %s: malformed MX record", name);
                se_dns_answer_free(out);
                return SE_DNS_ERROR;
            }
            out->pref[out->n] = ns_get16(ns_rr_rdata(rr));
            rec = strdup(host);
        }
        if (!rec) {
            snprintf(why, whylen, "DNS query %s %s: malformed TXT record", tname, name);
            se_dns_answer_free(out);
            return SE_DNS_ERROR;
        }
        out->rec[out->n++] = rec;
    }
    return out->n ? SE_DNS_FOUND : SE_DNS_NONE;
}
