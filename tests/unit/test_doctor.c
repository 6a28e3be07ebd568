/* doctor: the record parsers and the checks, against a zone of strings. */
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor/doctor.h"
#include "harness.h"

/* A zone: "name TYPE value" lines; MX values are "PREF HOST". */
static const char *const *zone;

static se_dns_status fake(void *arg, const char *name, int type, se_dns_answer *out, char *why,
                          size_t whylen)
{
    (void)arg;
    memset(out, 0, sizeof *out);
    for (const char *const *z = zone; *z; z++) {
        size_t nl = strcspn(*z, " ");
        if (nl == 4 && !strncmp(*z, "FAIL", 4) && !strcmp(*z + 5, name)) {
            snprintf(why, whylen, "no answer for %s", name);
            return SE_DNS_ERROR;
        }
        if (strlen(name) != nl || strncmp(*z, name, nl))
            continue;
        const char *t = *z + nl + 1;
        const char *want = type == ns_t_mx ? "MX " : "TXT ";
        if (strncmp(t, want, strlen(want)))
            continue;
        const char *v = t + strlen(want);
        if (type == ns_t_mx) {
            out->pref[out->n] = atoi(v);
            v = strchr(v, ' ') + 1;
        }
        out->rec[out->n++] = strdup(v);
    }
    return out->n ? SE_DNS_FOUND : SE_DNS_NONE;
}

static int run(const char *const *z, const char *domain, const char *host, se_finding *f)
{
    zone = z;
    se_doctor_opts o = {.domain = domain, .smtp_host = host, .lookup = fake};
    char why[300];
    return se_doctor_run(&o, f, why, sizeof why);
}

TEST(doctor_spf_parse_terms)
{
    se_spf s;
    char why[200];
    CHECK_INT(se_spf_parse("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mx.example.com "
                           "include:_spf.example.net ?exists:%{i}.x.example -all exp=e.example",
                           &s, why, sizeof why),
              0);
    CHECK_INT(s.n, 7);
    CHECK_STR(s.t[4].mech, "include");
    CHECK_STR(s.t[4].arg, "_spf.example.net");
    CHECK_INT(s.t[5].qual, '?');
    CHECK_INT(s.all_qual, '-');
    CHECK_INT(se_spf_lookups(&s), 4); /* a, mx, include, exists */
    CHECK_INT(se_spf_parse("v=spf1 redirect=_spf.example.com", &s, why, sizeof why), 0);
    CHECK_INT(se_spf_lookups(&s), 1);
    /* RFC 7208 6.1: with "all" present, redirect is not followed. */
    CHECK_INT(se_spf_parse("v=spf1 ~all redirect=x.example", &s, why, sizeof why), 0);
    CHECK_INT(se_spf_lookups(&s), 0);
}

TEST(doctor_spf_parse_refuses)
{
    se_spf s;
    char why[200];
    CHECK(se_spf_is_record("v=spf1"));
    CHECK(!se_spf_is_record("v=spf10 -all"));
    CHECK_INT(se_spf_parse("v=spf1 include -all", &s, why, sizeof why), -1);
    CHECK_INT(se_spf_parse("v=spf1 ip4:300.1.1.1 -all", &s, why, sizeof why), -1);
    CHECK_INT(se_spf_parse("v=spf1 ip4:192.0.2.1/33", &s, why, sizeof why), -1);
    CHECK_INT(se_spf_parse("v=spf1 allow:x -all", &s, why, sizeof why), -1);
    CHECK(strstr(why, "allow:x") != NULL);
    CHECK_INT(se_spf_parse("v=spf1 redirect=a.example redirect=b.example", &s, why, sizeof why),
              -1);
    CHECK_INT(se_spf_parse("v=spf1 all:x", &s, why, sizeof why), -1);
}

TEST(doctor_dmarc_tags)
{
    se_tags t;
    char why[200];
    CHECK_INT(se_tags_parse("v=DMARC1; p=none ;rua=mailto:a@b.example;", &t, why, sizeof why), 0);
    CHECK_INT(t.n, 3);
    CHECK_STR(se_tags_get(&t, "p"), "none");
    CHECK_STR(se_tags_get(&t, "rua"), "mailto:a@b.example");
    CHECK(se_tags_get(&t, "sp") == NULL);
    CHECK_INT(se_tags_parse("v=DMARC1; p", &t, why, sizeof why), -1);
    CHECK_INT(se_tags_parse("v=DMARC1; p=none; p=reject", &t, why, sizeof why), -1);
}

TEST(doctor_provider_table)
{
    CHECK_STR(se_provider_for_host("email-smtp.eu-west-1.amazonaws.com")->spf_include,
              "amazonses.com");
    CHECK_STR(se_provider_for_host("smtp.resend.com")->spf_include, "amazonses.com");
    CHECK_STR(se_provider_for_host("smtp.postmarkapp.com")->spf_include, "spf.mtasv.net");
    CHECK_STR(se_provider_for_host("smtp.gmail.com")->spf_include, "_spf.google.com");
    CHECK_STR(se_provider_for_host("smtp.office365.com")->spf_include,
              "spf.protection.outlook.com");
    CHECK(se_provider_for_host("notsendgrid.net") == NULL);
    CHECK(se_provider_for_host("mail.example.com") == NULL);
    CHECK_STR(se_org_domain("mail.news.example.com"), "example.com");
    CHECK_STR(se_org_domain("example.com"), "example.com");
}

static const char *const good_zone[] = {
    "ok.example TXT v=spf1 include:amazonses.com -all",
    "ok.example TXT google-site-verification=abc",
    "amazonses.com TXT v=spf1 ip4:199.255.192.0/22 -all",
    "_dmarc.ok.example TXT v=DMARC1; p=reject; rua=mailto:d@ok.example",
    "ok.example MX 10 in.ok.example",
    NULL,
};

TEST(doctor_all_good)
{
    se_finding f[SE_DOCTOR_CHECKS];
    CHECK_INT(run(good_zone, "ok.example", "email-smtp.us-east-1.amazonaws.com", f), 0);
    CHECK_INT(f[0].status, SE_PASS);
    CHECK(strstr(f[0].why, "1 of 10") != NULL);
    CHECK_INT(f[1].status, SE_WARN); /* no selector: the provider signs */
    CHECK(strstr(f[1].why, "Easy DKIM") != NULL);
    CHECK_INT(f[2].status, SE_PASS);
    CHECK_INT(f[3].status, SE_PASS);
}

/* Eleven lookups through nested includes: RFC 7208 4.6.4 permerror, all named. */
static const char *const deep_zone[] = {
    "deep.example TXT v=spf1 include:a.deep.example a mx -all",
    "a.deep.example TXT v=spf1 include:b.deep.example a:x.deep.example mx:y.deep.example ~all",
    "b.deep.example TXT v=spf1 include:c.deep.example exists:z.deep.example ptr ~all",
    "c.deep.example TXT v=spf1 a mx ip4:192.0.2.1 ~all",
    NULL,
};

TEST(doctor_spf_lookup_count)
{
    se_finding f[SE_DOCTOR_CHECKS];
    CHECK_INT(run(deep_zone, "deep.example", NULL, f), 0);
    CHECK_INT(f[0].status, SE_FAIL);
    CHECK(strstr(f[0].why, "11 DNS lookups") != NULL);
    CHECK(strstr(f[0].why, "include:c.deep.example") != NULL);
    CHECK(strstr(f[0].why, "exists:z.deep.example") != NULL);
}

static const char *const bad_zone[] = {
    "two.example TXT v=spf1 ip4:192.0.2.1 -all",
    "two.example TXT v=spf1 include:sendgrid.net ~all",
    "sendgrid.net TXT v=spf1 ip4:198.51.100.0/24 -all",
    "plus.example TXT v=spf1 +all",
    "noinc.example TXT v=spf1 ip4:192.0.2.1 -all",
    "_dmarc.noinc.example TXT v=DMARC1; p=none",
    "loop.example TXT v=spf1 include:loop.example -all",
    "FAIL _dmarc.dead.example",
    "dead.example TXT v=spf1 -all",
    NULL,
};

TEST(doctor_failures)
{
    se_finding f[SE_DOCTOR_CHECKS];
    CHECK_INT(run(bad_zone, "two.example", NULL, f), 0);
    CHECK_INT(f[0].status, SE_FAIL);
    CHECK(strstr(f[0].why, "2 SPF records") != NULL);
    CHECK_STR(f[0].fix_value, "v=spf1 ip4:192.0.2.1 include:sendgrid.net -all");

    CHECK_INT(run(bad_zone, "plus.example", NULL, f), 0);
    CHECK_INT(f[0].status, SE_FAIL);
    CHECK_STR(f[0].fix_value, "v=spf1 ~all");

    CHECK_INT(run(bad_zone, "noinc.example", "smtp.sendgrid.net", f), 0);
    CHECK_INT(f[0].status, SE_FAIL);
    CHECK_STR(f[0].fix_value, "v=spf1 ip4:192.0.2.1 include:sendgrid.net -all");
    CHECK(strstr(f[1].why, "s1 and s2") != NULL);
    CHECK_INT(f[2].status, SE_WARN);
    CHECK(strstr(f[2].why, "p=none") != NULL && strstr(f[2].why, "rua") != NULL);
    CHECK_STR(f[2].fix_value, "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@noinc.example");
    CHECK_INT(f[3].status, SE_FAIL);
    CHECK_STR(f[3].fix_type, "MX");

    /* An include loop ends at the caps and fails the count. */
    CHECK_INT(run(bad_zone, "loop.example", NULL, f), 0);
    CHECK_INT(f[0].status, SE_FAIL);

    /* A DNS failure stops the run; it is not a missing record. */
    CHECK_INT(run(bad_zone, "dead.example", NULL, f), -1);
}

TEST(doctor_dmarc_org_fallback)
{
    static const char *const z[] = {
        "_dmarc.example.com TXT v=DMARC1; p=reject; rua=mailto:r@example.com",
        NULL,
    };
    se_finding f[SE_DOCTOR_CHECKS];
    CHECK_INT(run(z, "mail.example.com", NULL, f), 0);
    CHECK_INT(f[2].status, SE_PASS);
    CHECK(strstr(f[2].why, "_dmarc.example.com") != NULL);
}

TEST(doctor_spf_redirect_all)
{
    static const char *const z[] = {
        "r.example TXT v=spf1 redirect=_spf.r.example",
        "_spf.r.example TXT v=spf1 ip4:192.0.2.1 +all",
        "s.example TXT v=spf1 redirect=_spf.s.example",
        "_spf.s.example TXT v=spf1 ip4:192.0.2.1 -all",
        NULL,
    };
    se_finding f[SE_DOCTOR_CHECKS];
    CHECK_INT(run(z, "r.example", NULL, f), 0);
    CHECK_INT(f[0].status, SE_FAIL); /* the redirect target's +all counts */
    CHECK(strstr(f[0].why, "+all") != NULL);
    CHECK(!f[0].has_fix); /* the record to change is _spf.r.example's, not ours */
    CHECK_INT(run(z, "s.example", NULL, f), 0);
    CHECK_INT(f[0].status, SE_PASS);
    CHECK(strstr(f[0].why, "redirect=_spf.s.example") != NULL);
}

/* The public entry refuses bad input before any DNS query. */
TEST(doctor_api_refusals)
{
    scalr_email_finding f[SCALR_EMAIL_DOCTOR_CHECKS];
    scalr_email_error err;
    CHECK_INT(scalr_email_doctor("not a domain", NULL, f, &err), SCALR_EMAIL_EINVAL);
    CHECK(strstr(err.message, "not a domain") != NULL);
    CHECK_INT(scalr_email_doctor("localhost", NULL, f, &err), SCALR_EMAIL_EINVAL);
    CHECK_INT(scalr_email_doctor(NULL, NULL, f, &err), SCALR_EMAIL_EINVAL);
    scalr_email_doctor_opts o = {.dkim_selector = "a b"};
    CHECK_INT(scalr_email_doctor("example.com", &o, f, &err), SCALR_EMAIL_EINVAL);
    o = (scalr_email_doctor_opts){.dkim_key_file = "/nonexistent/dkim.pem"};
    CHECK_INT(scalr_email_doctor("example.com", &o, f, &err), SCALR_EMAIL_EFILE);
    o = (scalr_email_doctor_opts){.dns_server = "127.0.0.1"};
    CHECK_INT(scalr_email_doctor("example.com", &o, f, &err), SCALR_EMAIL_ECONFIG);
    o = (scalr_email_doctor_opts){.dns_server = "example.com:53"};
    CHECK_INT(scalr_email_doctor("example.com", &o, f, &err), SCALR_EMAIL_ECONFIG);
    /* A closed loopback port: refused at once, a transient failure. */
    o = (scalr_email_doctor_opts){.dns_server = "127.0.0.1:1", .timeout_s = 1};
    CHECK_INT(scalr_email_doctor("example.com", &o, f, &err), SCALR_EMAIL_ETRANSIENT);
    CHECK(strstr(err.message, "127.0.0.1:1") != NULL);
}
