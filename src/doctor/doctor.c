/* The four checks of `doctor`.  Each gives a status, one line of why and,
 * when something is missing or wrong, the record to publish. */
#define _GNU_SOURCE /* strcasestr */
#include "doctor/doctor.h"

#include <arpa/nameser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct ctx {
    const se_doctor_opts *o;
    char *why; /* DNS failure */
    size_t whylen;
} ctx;

static void set(se_finding *f, se_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set(se_finding *f, se_status st, const char *fmt, ...)
{
    va_list ap;
    f->status = st;
    va_start(ap, fmt);
    vsnprintf(f->why, sizeof f->why, fmt, ap);
    va_end(ap);
}

static void fix(se_finding *f, const char *name, const char *type, const char *value)
{
    f->has_fix = 1;
    snprintf(f->fix_name, sizeof f->fix_name, "%s", name);
    snprintf(f->fix_type, sizeof f->fix_type, "%s", type);
    snprintf(f->fix_value, sizeof f->fix_value, "%s", value);
}

/* The TXT records of name that pass keep(): -1 on a DNS error. */
static int txt(ctx *c, const char *name, int (*keep)(const char *), se_dns_answer *out)
{
    se_dns_answer a;
    se_dns_status st = c->o->lookup(c->o->lookup_arg, name, ns_t_txt, &a, c->why, c->whylen);
    memset(out, 0, sizeof *out);
    if (st == SE_DNS_ERROR)
        return -1;
    for (size_t i = 0; i < a.n; i++) {
        if (keep(a.rec[i]))
            out->rec[out->n++] = a.rec[i];
        else
            free(a.rec[i]);
    }
    return 0;
}

/* --- SPF ---------------------------------------------------------------------- */

typedef struct walk {
    int lookups;
    char names[900]; /* the DNS-querying terms, in order */
    int found_provider;
    char error[400]; /* a permanent error further down */
    int queries;     /* a cap on our own DNS traffic */
    char final_all;  /* the "all" of the record a redirect= chain ends in */
} walk;

static void note(walk *w, const char *what)
{
    size_t n = strlen(w->names);
    if (n + strlen(what) + 3 < sizeof w->names)
        snprintf(w->names + n, sizeof w->names - n, "%s%s", n ? ", " : "", what);
    else if (n + 5 < sizeof w->names && !strstr(w->names, "..."))
        snprintf(w->names + n, sizeof w->names - n, ", ...");
}

static int is_spf(const char *t)
{
    return se_spf_is_record(t);
}

static int same_domain(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '.')
        la--;
    if (lb && b[lb - 1] == '.')
        lb--;
    return la == lb && !strncasecmp(a, b, la);
}

/* Follow includes and redirects (RFC 7208 5.2, 6.1), counting every
 * DNS-querying term; depth and query caps stop loops. */
static int spf_walk(ctx *c, walk *w, const se_spf *spf, const char *provider, int depth)
{
    for (size_t i = 0; i <= spf->n; i++) {
        const char *mech, *arg;
        char label[300];
        if (i < spf->n) {
            mech = spf->t[i].mech;
            arg = spf->t[i].arg;
            if (!strcmp(mech, "all") || !strcmp(mech, "ip4") || !strcmp(mech, "ip6"))
                continue;
        } else {
            if (!spf->redirect[0] || spf->all_qual)
                break;
            mech = "redirect";
            arg = spf->redirect;
        }
        w->lookups++;
        snprintf(label, sizeof label, "%s%s%s", mech, *arg ? (i < spf->n ? ":" : "=") : "", arg);
        note(w, label);
        if (strcmp(mech, "include") && strcmp(mech, "redirect"))
            continue;
        if (provider && same_domain(arg, provider))
            w->found_provider = 1;
        if (strchr(arg, '%'))
            continue; /* a macro: expanded per message, cannot be followed here */
        if (depth >= 10 || w->queries >= 40 || w->lookups > 20)
            continue;
        w->queries++;
        se_dns_answer a;
        if (txt(c, arg, is_spf, &a) < 0)
            return -1;
        if (a.n != 1) {
            if (!w->error[0])
                snprintf(w->error, sizeof w->error, "%s:%s has %s SPF record", mech, arg,
                         a.n ? "more than one" : "no");
        } else {
            se_spf *sub = malloc(sizeof *sub);
            char why[200];
            if (sub && se_spf_parse(a.rec[0], sub, why, sizeof why) == 0) {
                if (!strcmp(mech, "redirect") && sub->all_qual)
                    w->final_all = sub->all_qual;
                if (spf_walk(c, w, sub, provider, depth + 1) < 0) {
                    free(sub);
                    se_dns_answer_free(&a);
                    return -1;
                }
            } else if (!w->error[0]) {
                snprintf(w->error, sizeof w->error, "the SPF record of %s: %s", arg,
                         sub ? why : "out of memory");
            }
            free(sub);
        }
        se_dns_answer_free(&a);
    }
    return 0;
}

/* The record with include:PROVIDER before its "all" (or ~all added). */
static void with_include(const char *record, const char *provider, char *out, size_t outlen)
{
    const char *p = record + 6;
    size_t o = (size_t)snprintf(out, outlen, "v=spf1");
    int added = 0;
    while (*p && o < outlen) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (!n)
            break;
        const char *m = strchr("+-~?", *p) ? p + 1 : p;
        if (!added && ((size_t)(m - p) + 3 == n && !strncasecmp(m, "all", 3))) {
            o += (size_t)snprintf(out + o, outlen - o, " include:%s", provider);
            added = 1;
        }
        if (o < outlen)
            o += (size_t)snprintf(out + o, outlen - o, " %.*s", (int)n, p);
        p += n;
    }
    if (!added && o < outlen)
        snprintf(out + o, outlen - o, " include:%s ~all", provider);
}

static void spf_check(ctx *c, se_finding *f, const se_provider *prov)
{
    const char *d = c->o->domain;
    const char *inc = prov ? prov->spf_include : NULL;
    char value[1024];
    se_dns_answer a;
    if (txt(c, d, is_spf, &a) < 0)
        return;
    if (a.n == 0) {
        snprintf(value, sizeof value, "v=spf1 %s%s ~all", inc ? "include:" : "mx", inc ? inc : "");
        set(f, SE_FAIL, "%s has no SPF record: receivers cannot tell which servers may send for it",
            d);
        fix(f, d, "TXT", value);
        return;
    }
    if (a.n > 1) {
        /* RFC 7208 4.5: more than one record is a permanent error. */
        set(f, SE_FAIL, "%s has %zu SPF records; RFC 7208 allows one, so receivers treat SPF as "
                        "broken: merge them",
            d, a.n);
        /* The merge: the first record's terms, then the others' without their "all". */
        size_t o = (size_t)snprintf(value, sizeof value, "v=spf1");
        const char *allterm = NULL;
        for (size_t r = 0; r < a.n; r++) {
            const char *p = a.rec[r] + 6;
            while (*p) {
                while (*p == ' ')
                    p++;
                size_t n = strcspn(p, " ");
                if (!n)
                    break;
                const char *m = strchr("+-~?", *p) ? p + 1 : p;
                int is_all = (size_t)(m - p) + 3 == n && !strncasecmp(m, "all", 3);
                char term[300];
                snprintf(term, sizeof term, " %.*s", (int)n, p);
                if (is_all) {
                    if (!allterm)
                        allterm = p;
                } else if (!strstr(value, term) && o < sizeof value) {
                    o += (size_t)snprintf(value + o, sizeof value - o, "%s", term);
                }
                p += n;
            }
        }
        if (o < sizeof value)
            snprintf(value + o, sizeof value - o, " %s",
                     allterm && *allterm != '+' && *allterm != '?' && strncasecmp(allterm, "all", 3)
                         ? (*allterm == '-' ? "-all" : "~all")
                         : "~all");
        fix(f, d, "TXT", value);
        se_dns_answer_free(&a);
        return;
    }
    const char *rec = a.rec[0];
    se_spf spf;
    char why[300];
    if (se_spf_parse(rec, &spf, why, sizeof why) < 0) {
        set(f, SE_FAIL, "the SPF record of %s does not parse: %s", d, why);
        snprintf(value, sizeof value, "v=spf1 %s%s ~all", inc ? "include:" : "mx", inc ? inc : "");
        fix(f, d, "TXT", value);
        se_dns_answer_free(&a);
        return;
    }
    walk *w = calloc(1, sizeof *w);
    if (!w) {
        set(f, SE_FAIL, "out of memory");
        se_dns_answer_free(&a);
        return;
    }
    if (spf_walk(c, w, &spf, inc, 0) < 0) {
        free(w);
        se_dns_answer_free(&a);
        return;
    }
    /* RFC 7208 6.1: without "all", a redirect= hands the verdict to its target. */
    char allq = spf.all_qual ? spf.all_qual : w->final_all;
    if (w->error[0]) {
        set(f, SE_FAIL, "SPF does not evaluate: %s", w->error);
    } else if (w->lookups > SE_SPF_MAX_LOOKUPS) {
        /* RFC 7208 4.6.4: more than 10 is a permanent error. */
        set(f, SE_FAIL, "%d DNS lookups, more than the 10 RFC 7208 allows, so SPF fails: %s; "
                        "drop includes or use ip4:/ip6: terms",
            w->lookups, w->names);
    } else if (allq == '+') {
        set(f, SE_FAIL, "the record%s ends in +all: it lets every server on the internet send as %s",
            spf.all_qual ? "" : " its redirect= leads to", d);
        char *v = spf.all_qual ? strdup(rec) : NULL; /* else the fix is in the other domain */
        if (v) {
            char *p = strcasestr(v, "+all");
            if (p)
                *p = '~';
            fix(f, d, "TXT", v);
            free(v);
        }
    } else if (inc && !w->found_provider) {
        with_include(rec, inc, value, sizeof value);
        set(f, SE_FAIL, "the SPF record does not authorise %s (include:%s is missing)", prov->name,
            inc);
        fix(f, d, "TXT", value);
    } else if (!allq) {
        set(f, SE_WARN, "the record has no ~all or -all, so mail from other servers is neutral "
                        "(%d lookups)",
            w->lookups);
        snprintf(value, sizeof value, "%s ~all", rec);
        fix(f, d, "TXT", value);
    } else if (allq == '?') {
        set(f, SE_WARN, "the record%s ends in ?all: mail from other servers is neutral; use ~all "
                        "or -all (%d lookups)",
            spf.all_qual ? "" : " its redirect= leads to", w->lookups);
        char *v = spf.all_qual ? strdup(rec) : NULL;
        if (v) {
            char *p = strcasestr(v, "?all");
            if (p)
                *p = '~';
            fix(f, d, "TXT", v);
            free(v);
        }
    } else {
        set(f, SE_PASS, "one valid record, %d of 10 DNS lookups%s%s%s", w->lookups,
            w->lookups ? " (" : "", w->names, w->lookups ? ")" : "");
        if (inc) {
            size_t n = strlen(f->why);
            snprintf(f->why + n, sizeof f->why - n, ", authorises %s", prov->name);
        }
    }
    free(w);
    se_dns_answer_free(&a);
}

/* --- DKIM ----------------------------------------------------------------------- */

static int is_any(const char *t)
{
    (void)t;
    return 1;
}

static void strip_ws(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 1 < outlen; in++)
        if (*in != ' ' && *in != '\t' && *in != '\r' && *in != '\n')
            out[o++] = *in;
    out[o] = 0;
}

static void dkim_check(ctx *c, se_finding *f, const se_provider *prov)
{
    const se_doctor_opts *o = c->o;
    const char *d = o->dkim_domain ? o->dkim_domain : o->domain;
    if (!o->dkim_selector) {
        if (prov)
            set(f, SE_WARN, "no SMTP_DKIM_SELECTOR configured: signing is %s's. %s; check that "
                            "it signs as %s, not as its own domain",
                prov->name, prov->dkim, o->domain);
        else
            set(f, SE_WARN, "no SMTP_DKIM_SELECTOR configured and the provider is not one we know: "
                            "set SMTP_DKIM_SELECTOR (and SMTP_DKIM_KEY_FILE) to check the record, "
                            "or ask the provider which selector it signs with");
        return;
    }
    char name[300], want[1600] = "";
    snprintf(name, sizeof name, "%s._domainkey.%s", o->dkim_selector, d);
    if (o->dkim_pubkey)
        snprintf(want, sizeof want, "v=DKIM1; k=%s; p=%s", o->dkim_keytype, o->dkim_pubkey);
    se_dns_answer a;
    if (txt(c, name, is_any, &a) < 0)
        return;
    if (a.n == 0) {
        set(f, SE_FAIL, "no DKIM key record at %s: receivers cannot verify signatures with "
                        "selector '%s'",
            name, o->dkim_selector);
        if (want[0])
            fix(f, name, "TXT", want);
        return;
    }
    if (a.n > 1) {
        set(f, SE_FAIL, "%zu TXT records at %s: a DKIM key record must be the only one", a.n, name);
        if (want[0])
            fix(f, name, "TXT", want);
        se_dns_answer_free(&a);
        return;
    }
    se_tags t;
    char why[300];
    const char *v, *p, *k;
    if (se_tags_parse(a.rec[0], &t, why, sizeof why) < 0) {
        set(f, SE_FAIL, "the DKIM record at %s does not parse: %s", name, why);
    } else if ((v = se_tags_get(&t, "v")) && (strcmp(v, "DKIM1") || strcmp(t.name[0], "v"))) {
        /* RFC 6376 3.6.1: v=, if present, is first and DKIM1. */
        set(f, SE_FAIL, "the DKIM record at %s has v=%s; it must start with v=DKIM1", name, v);
    } else if (!(p = se_tags_get(&t, "p"))) {
        set(f, SE_FAIL, "the DKIM record at %s has no p= public key", name);
    } else if (!*p) {
        set(f, SE_FAIL, "the DKIM key at %s is revoked (empty p=)", name);
    } else if ((k = se_tags_get(&t, "k")) && strcmp(k, "rsa") && strcmp(k, "ed25519")) {
        set(f, SE_FAIL, "the DKIM record at %s has k=%s; receivers know rsa and ed25519", name, k);
    } else if (o->dkim_pubkey) {
        char got[2048];
        strip_ws(p, got, sizeof got);
        const char *kt = k ? k : "rsa";
        if (strcmp(kt, o->dkim_keytype)) {
            set(f, SE_FAIL, "the DKIM record at %s is k=%s but SMTP_DKIM_KEY_FILE is an %s key",
                name, kt, o->dkim_keytype);
        } else if (strcmp(got, o->dkim_pubkey)) {
            set(f, SE_FAIL, "the public key at %s does not match SMTP_DKIM_KEY_FILE: signatures "
                            "would fail",
                name);
        } else {
            set(f, SE_PASS, "the key at %s matches SMTP_DKIM_KEY_FILE (%s)", name, kt);
            se_dns_answer_free(&a);
            return;
        }
    } else {
        set(f, SE_PASS, "a valid %s key at %s (no SMTP_DKIM_KEY_FILE to compare it with)",
            k ? k : "rsa", name);
        se_dns_answer_free(&a);
        return;
    }
    if (want[0])
        fix(f, name, "TXT", want);
    se_dns_answer_free(&a);
}

/* --- DMARC ---------------------------------------------------------------------- */

static int is_dmarc(const char *t)
{
    /* RFC 7489 6.6.3: records not starting with v=DMARC1 are discarded. */
    return !strncmp(t, "v=DMARC1", 8) && (t[8] == ';' || t[8] == ' ' || t[8] == 0);
}

static void dmarc_check(ctx *c, se_finding *f, const se_provider *prov)
{
    const char *d = c->o->domain;
    char name[300], value[1200];
    snprintf(name, sizeof name, "_dmarc.%s", d);
    se_dns_answer a;
    if (txt(c, name, is_dmarc, &a) < 0)
        return;
    const char *org = se_org_domain(d);
    char where[300];
    snprintf(where, sizeof where, "%s", name);
    if (a.n == 0 && strcmp(org, d)) {
        /* RFC 7489 6.6.3: fall back to the organisational domain's policy. */
        snprintf(where, sizeof where, "_dmarc.%s", org);
        if (txt(c, where, is_dmarc, &a) < 0)
            return;
    }
    char rua_default[400];
    snprintf(rua_default, sizeof rua_default, "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@%s",
             d);
    if (a.n == 0) {
        set(f, SE_FAIL, "no DMARC record at %s: Gmail and Yahoo junk or reject bulk mail from "
                        "domains without one",
            name);
        fix(f, name, "TXT", rua_default);
        return;
    }
    if (a.n > 1) {
        set(f, SE_FAIL, "%zu DMARC records at %s: receivers ignore them all; keep one", a.n,
            where);
        fix(f, where, "TXT", rua_default);
        se_dns_answer_free(&a);
        return;
    }
    se_tags t;
    char why[300];
    if (se_tags_parse(a.rec[0], &t, why, sizeof why) < 0) {
        set(f, SE_FAIL, "the DMARC record at %s does not parse: %s", where, why);
        fix(f, where, "TXT", rua_default);
        se_dns_answer_free(&a);
        return;
    }
    const char *p = se_tags_get(&t, "p"), *rua = se_tags_get(&t, "rua");
    const char *aspf = se_tags_get(&t, "aspf"), *adkim = se_tags_get(&t, "adkim");
    if (!p || (strcmp(p, "none") && strcmp(p, "quarantine") && strcmp(p, "reject"))) {
        set(f, SE_FAIL, "the DMARC record at %s has %s%s: p= must be none, quarantine or reject",
            where, p ? "p=" : "no p= policy", p ? p : "");
        fix(f, where, "TXT", rua_default);
        se_dns_answer_free(&a);
        return;
    }
    char warns[900] = "";
    if (!strcmp(p, "none"))
        snprintf(warns + strlen(warns), sizeof warns - strlen(warns), "%sp=none only monitors: "
                 "mail that fails DMARC is still delivered", warns[0] ? "; " : "");
    if (!rua)
        snprintf(warns + strlen(warns), sizeof warns - strlen(warns), "%sno rua=: nobody "
                 "receives the aggregate reports", warns[0] ? "; " : "");
    if (aspf && !strcmp(aspf, "s") && prov)
        snprintf(warns + strlen(warns), sizeof warns - strlen(warns), "%saspf=s: %s sends with "
                 "its own or a subdomain's envelope sender, which strict SPF alignment fails, so "
                 "DKIM must align", warns[0] ? "; " : "", prov->name);
    if (adkim && !strcmp(adkim, "s") && c->o->dkim_domain && strcasecmp(c->o->dkim_domain, d))
        snprintf(warns + strlen(warns), sizeof warns - strlen(warns), "%sadkim=s: signatures "
                 "with d=%s do not align strictly with %s", warns[0] ? "; " : "",
                 c->o->dkim_domain, d);
    if (!warns[0]) {
        set(f, SE_PASS, "p=%s at %s, reports to %s", p, where, rua);
        se_dns_answer_free(&a);
        return;
    }
    set(f, SE_WARN, "%s", warns);
    /* The same record with p=quarantine and a rua= added; other tags kept. */
    size_t o = (size_t)snprintf(value, sizeof value, "v=DMARC1; p=%s",
                                strcmp(p, "none") ? p : "quarantine");
    for (size_t i = 0; i < t.n && o < sizeof value; i++)
        if (strcmp(t.name[i], "v") && strcmp(t.name[i], "p"))
            o += (size_t)snprintf(value + o, sizeof value - o, "; %s=%s", t.name[i], t.value[i]);
    if (!rua && o < sizeof value)
        snprintf(value + o, sizeof value - o, "; rua=mailto:dmarc-reports@%s", d);
    fix(f, where, "TXT", value);
    se_dns_answer_free(&a);
}

/* --- MX ------------------------------------------------------------------------- */

static void mx_check(ctx *c, se_finding *f)
{
    const char *d = c->o->domain;
    se_dns_answer a;
    char value[400];
    snprintf(value, sizeof value, "10 mail.%s.", d);
    if (c->o->lookup(c->o->lookup_arg, d, ns_t_mx, &a, c->why, c->whylen) == SE_DNS_ERROR)
        return;
    if (a.n == 0) {
        set(f, SE_FAIL, "%s has no MX record: bounces and replies to it have nowhere to go; "
                        "point it at the server that receives your mail",
            d);
        fix(f, d, "MX", value);
        return;
    }
    /* RFC 7505: a single MX of "." with preference 0 says "no mail here". */
    if (a.n == 1 && (!strcmp(a.rec[0], "") || !strcmp(a.rec[0], "."))) {
        set(f, SE_FAIL, "%s publishes a null MX (RFC 7505): it accepts no mail, so bounces and "
                        "replies are lost",
            d);
        fix(f, d, "MX", value);
        se_dns_answer_free(&a);
        return;
    }
    size_t best = 0;
    for (size_t i = 1; i < a.n; i++)
        if (a.pref[i] < a.pref[best])
            best = i;
    set(f, SE_PASS, "%zu MX record%s, first %s (preference %d)", a.n, a.n == 1 ? "" : "s",
        a.rec[best], a.pref[best]);
    se_dns_answer_free(&a);
}

int se_doctor_run(const se_doctor_opts *o, se_finding out[SE_DOCTOR_CHECKS], char *why,
                  size_t whylen)
{
    ctx c = {o, why, whylen};
    memset(out, 0, sizeof(se_finding) * SE_DOCTOR_CHECKS);
    static const char *const names[] = {"spf", "dkim", "dmarc", "mx"};
    for (int i = 0; i < SE_DOCTOR_CHECKS; i++)
        snprintf(out[i].name, sizeof out[i].name, "%s", names[i]);
    why[0] = 0;
    const se_provider *prov = se_provider_for_host(o->smtp_host);
    spf_check(&c, &out[0], prov);
    if (!why[0])
        dkim_check(&c, &out[1], prov);
    if (!why[0])
        dmarc_check(&c, &out[2], prov);
    if (!why[0])
        mx_check(&c, &out[3]);
    return why[0] ? -1 : 0;
}
