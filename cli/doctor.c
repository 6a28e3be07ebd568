/* scalr-email doctor: judge the sending domain's SPF, DKIM, DMARC and MX. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>

#include "cli.h"
#include "doctor.h"

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

static const char *status_name(scalr_email_check_status s)
{
    return s == SCALR_EMAIL_CHECK_PASS ? "pass" : s == SCALR_EMAIL_CHECK_WARN ? "warn" : "fail";
}

static void print_json(const char *domain, const scalr_email_finding *f)
{
    json_t *checks = json_array();
    for (int i = 0; i < SCALR_EMAIL_DOCTOR_CHECKS; i++) {
        json_t *fx = json_null();
        if (f[i].has_fix)
            fx = json_pack("{s:s, s:s, s:s}", "name", f[i].fix_name, "type", f[i].fix_type, "value",
                           f[i].fix_value);
        json_array_append_new(checks,
                              json_pack("{s:s, s:s, s:s, s:o}", "name", f[i].name, "status",
                                        status_name(f[i].status), "why", f[i].why, "fix", fx));
    }
    json_t *root = json_pack("{s:s, s:o}", "domain", domain, "checks", checks);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(root);
}

void cli_doctor_table(const char *domain, const scalr_email_finding *f)
{
    printf("domain: %s\n", domain);
    for (int i = 0; i < SCALR_EMAIL_DOCTOR_CHECKS; i++) {
        printf("  %-6s %-5s %s\n", f[i].name, status_name(f[i].status), f[i].why);
        if (f[i].has_fix)
            printf("         publish: %s %s \"%s\"\n", f[i].fix_name, f[i].fix_type,
                   f[i].fix_value);
    }
}

/* Run the checks for domain with the configuration in env_file (SMTP_HOST,
 * SMTP_DKIM_*, SCALR_EMAIL_DNS); selector and key_file win when not NULL. */
scalr_email_code cli_doctor_findings(const char *domain, const char *env_file, const char *selector,
                                     const char *key_file, int timeout_s,
                                     scalr_email_finding out[SCALR_EMAIL_DOCTOR_CHECKS],
                                     scalr_email_error *err)
{
    static const char *const names[] = {"SMTP_HOST", "SCALR_EMAIL_DNS", "SMTP_DKIM_DOMAIN",
                                        "SMTP_DKIM_SELECTOR", "SMTP_DKIM_KEY_FILE"};
    char *v[5] = {0};
    scalr_email_code rc = SCALR_EMAIL_OK;
    for (int i = 0; i < 5 && rc == SCALR_EMAIL_OK; i++)
        rc = scalr_email_config_get(env_file, names[i], &v[i], err);
    if (rc == SCALR_EMAIL_OK) {
        scalr_email_doctor_opts o = {
            .smtp_host = v[0],
            .dns_server = v[1],
            .dkim_domain = v[2],
            .dkim_selector = selector ? selector : v[3],
            .dkim_key_file = key_file ? key_file : v[4],
            .timeout_s = timeout_s,
        };
        rc = scalr_email_doctor(domain, &o, out, err);
    }
    for (int i = 0; i < 5; i++)
        free(v[i]);
    return rc;
}

/* The domain of the configuration's From address: 0, or -1. */
int cli_doctor_domain(const char *env_file, char *out, size_t outlen)
{
    char *from = NULL;
    scalr_email_error err;
    int rc = -1;
    if (scalr_email_config_get(env_file, "SMTP_FROM", &from, &err) == SCALR_EMAIL_OK && from &&
        from_domain(from, out, outlen) == 0)
        rc = 0;
    free(from);
    return rc;
}

int cli_doctor(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},           {"env-file", required_argument, NULL, 'e'},
        {"selector", required_argument, NULL, 's'}, {"dkim-key", required_argument, NULL, 'k'},
        {"timeout", required_argument, NULL, 't'},  {0, 0, 0, 0},
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
        snprintf(domain, sizeof domain, "%s", argv[optind]);
    } else if (cli_doctor_domain(env_file, domain, sizeof domain) < 0) {
        fprintf(stderr, "scalr-email: no domain to check: give one (scalr-email doctor "
                        "example.com) or set SMTP_FROM to an address\n");
        return EX_CONFIG;
    }
    size_t dl = strlen(domain);
    if (dl > 1 && domain[dl - 1] == '.')
        domain[dl - 1] = 0;
    scalr_email_finding f[SCALR_EMAIL_DOCTOR_CHECKS];
    scalr_email_error err;
    if (cli_doctor_findings(domain, env_file, selector, key_file, timeout_s, f, &err) !=
        SCALR_EMAIL_OK)
        return cli_report(&err);
    int fails = 0, warns = 0;
    for (int i = 0; i < SCALR_EMAIL_DOCTOR_CHECKS; i++) {
        fails += f[i].status == SCALR_EMAIL_CHECK_FAIL;
        warns += f[i].status == SCALR_EMAIL_CHECK_WARN;
    }
    if (json) {
        print_json(domain, f);
    } else {
        cli_doctor_table(domain, f);
        printf("result: %d fail, %d warn, %d pass\n", fails, warns,
               SCALR_EMAIL_DOCTOR_CHECKS - fails - warns);
    }
    return fails ? 1 : EX_OK;
}
