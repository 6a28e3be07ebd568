/* scalr-email doctor: judge the sending domain's SPF, DKIM, DMARC and MX. */
#include <getopt.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "doctor.h"

/* The whole run has a deadline too: six query deadlines, so a server that
 * answers each query just in time cannot stretch 40 queries into minutes. */
typedef struct budget {
    se_dns *dns;
    struct timespec end;
    int total_s;
} budget;

static se_dns_status dns_lookup(void *arg, const char *name, int type, se_dns_answer *out,
                                char *why, size_t whylen)
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

/* The domain of SMTP_FROM ("Name <a@b.example>" or "a@b.example"). */
static int from_domain(const char *from, char *out, size_t outlen)
{
    const char *at = strrchr(from, '@');
    if (!at)
        return -1;
    size_t n = strcspn(at + 1, "> \t");
    if (!n || n >= outlen)
        return -1;
    memcpy(out, at + 1, n);
    out[n] = 0;
    return 0;
}

/* The A-label form (RFC 5890), letters, digits, '-' and '_' in each label. */
static int normalise(const char *in, char *out, size_t outlen)
{
    char *ascii = NULL;
    if (idn2_to_ascii_8z(in, &ascii, IDN2_NONTRANSITIONAL) != IDN2_OK)
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
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   ch == '-' || ch == '_') {
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

static const char *status_name(se_status s)
{
    return s == SE_PASS ? "pass" : s == SE_WARN ? "warn" : "fail";
}

static void print_json(const char *domain, const se_finding *f)
{
    json_t *checks = json_array();
    for (int i = 0; i < SE_DOCTOR_CHECKS; i++) {
        json_t *fx = json_null();
        if (f[i].has_fix)
            fx = json_pack("{s:s, s:s, s:s}", "name", f[i].fix_name, "type", f[i].fix_type,
                           "value", f[i].fix_value);
        json_array_append_new(checks, json_pack("{s:s, s:s, s:s, s:o}", "name", f[i].name,
                                                "status", status_name(f[i].status), "why",
                                                f[i].why, "fix", fx));
    }
    json_t *root = json_pack("{s:s, s:o}", "domain", domain, "checks", checks);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(root);
}

void cli_doctor_table(const char *domain, const se_finding *f)
{
    printf("domain: %s\n", domain);
    for (int i = 0; i < SE_DOCTOR_CHECKS; i++) {
        printf("  %-6s %-5s %s\n", f[i].name, status_name(f[i].status), f[i].why);
        if (f[i].has_fix)
            printf("         publish: %s %s \"%s\"\n", f[i].fix_name, f[i].fix_type,
                   f[i].fix_value);
    }
}

/* Run the checks for domain with the configuration in env_file; -1 with why
 * on a DNS failure, a bad SCALR_EMAIL_DNS or an unreadable DKIM key (*status
 * says which exit status). */
int cli_doctor_findings(const char *domain, const char *env_file, const char *selector,
                        const char *key_file, int timeout_s, se_finding out[SE_DOCTOR_CHECKS],
                        char *why, size_t whylen, int *status)
{
    scalr_email_error err;
    char *host = NULL, *server = NULL, *sel = NULL, *key = NULL, *dkim_domain = NULL;
    int rc = -1;
    se_dns *dns = NULL;
    *status = EX_CONFIG;
    if (scalr_email_config_get(env_file, "SMTP_HOST", &host, &err) ||
        scalr_email_config_get(env_file, "SCALR_EMAIL_DNS", &server, &err) ||
        scalr_email_config_get(env_file, "SMTP_DKIM_DOMAIN", &dkim_domain, &err) ||
        (!selector && scalr_email_config_get(env_file, "SMTP_DKIM_SELECTOR", &sel, &err)) ||
        (!key_file && scalr_email_config_get(env_file, "SMTP_DKIM_KEY_FILE", &key, &err))) {
        snprintf(why, whylen, "%s", err.message);
        goto out;
    }
    if (!selector)
        selector = sel;
    if (!key_file)
        key_file = key;
    char pub[1600], type[16];
    if (key_file && se_dkim_pubkey(key_file, pub, sizeof pub, type, sizeof type, why, whylen)) {
        *status = EX_NOINPUT;
        goto out;
    }
    dns = se_dns_new(server, timeout_s, why, whylen);
    if (!dns)
        goto out;
    budget b = {.dns = dns, .total_s = 6 * timeout_s};
    clock_gettime(CLOCK_MONOTONIC, &b.end);
    b.end.tv_sec += b.total_s;
    se_doctor_opts o = {
        .domain = domain,
        .smtp_host = host,
        .dkim_selector = selector,
        .dkim_domain = dkim_domain,
        .dkim_pubkey = key_file ? pub : NULL,
        .dkim_keytype = key_file ? type : NULL,
        .lookup = dns_lookup,
        .lookup_arg = &b,
    };
    *status = EX_TEMPFAIL;
    rc = se_doctor_run(&o, out, why, whylen);
out:
    se_dns_free(dns);
    free(host);
    free(server);
    free(sel);
    free(key);
    free(dkim_domain);
    return rc;
}

/* The From domain of the configuration, A-label form: 0, or -1. */
int cli_doctor_domain(const char *env_file, char *out, size_t outlen)
{
    char *from = NULL;
    scalr_email_error err;
    char raw[300];
    int rc = -1;
    if (scalr_email_config_get(env_file, "SMTP_FROM", &from, &err) == SCALR_EMAIL_OK && from &&
        from_domain(from, raw, sizeof raw) == 0 && normalise(raw, out, outlen) == 0)
        rc = 0;
    free(from);
    return rc;
}

int cli_doctor(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"env-file", required_argument, NULL, 'e'},
        {"selector", required_argument, NULL, 's'},
        {"dkim-key", required_argument, NULL, 'k'},
        {"timeout", required_argument, NULL, 't'},
        {0, 0, 0, 0},
    };
    const char *env_file = NULL, *selector = NULL, *key_file = NULL;
    int json = 0, timeout_s = 5, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'e') {
            env_file = optarg;
        } else if (c == 's') {
            selector = optarg;
        } else if (c == 'k') {
            key_file = optarg;
        } else if (c == 't') {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (end == optarg || *end || t < 1 || t > 60)
                return cli_usage_error("--timeout takes whole seconds from 1 to 60");
            timeout_s = (int)t;
        } else if (c == ':') {
            return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        } else {
            return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("unexpected argument '%s'", argv[optind + 1]);
    if (selector && (!*selector || strspn(selector, "abcdefghijklmnopqrstuvwxyz"
                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                                       strlen(selector)))
        return cli_usage_error("--selector '%s' is not a DKIM selector", selector);
    char domain[256];
    if (optind < argc) {
        if (normalise(argv[optind], domain, sizeof domain) < 0) {
            fprintf(stderr, "scalr-email: '%s' is not a domain name\n", argv[optind]);
            return EX_DATAERR;
        }
    } else if (cli_doctor_domain(env_file, domain, sizeof domain) < 0) {
        fprintf(stderr, "scalr-email: no domain to check: give one (scalr-email doctor "
                        "example.com) or set SMTP_FROM to an address\n");
        return EX_CONFIG;
    }
    se_finding f[SE_DOCTOR_CHECKS];
    char why[600];
    int status;
    if (cli_doctor_findings(domain, env_file, selector, key_file, timeout_s, f, why, sizeof why,
                            &status) < 0) {
        fprintf(stderr, "scalr-email: %s\n", why);
        return status;
    }
    int fails = 0, warns = 0;
    for (int i = 0; i < SE_DOCTOR_CHECKS; i++) {
        fails += f[i].status == SE_FAIL;
        warns += f[i].status == SE_WARN;
    }
    if (json) {
        print_json(domain, f);
    } else {
        cli_doctor_table(domain, f);
        printf("result: %d fail, %d warn, %d pass\n", fails, warns,
               SE_DOCTOR_CHECKS - fails - warns);
    }
    return fails ? 1 : EX_OK;
}
