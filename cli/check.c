/* scalr-email check: connect, negotiate, authenticate, send nothing. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "doctor.h"

static void print_report(const scalr_email_report *r)
{
    if (r->greeting[0])
        printf("greeting: %s\n", r->greeting);
    if (r->tls_version[0]) {
        printf("tls: %s %s\n", r->tls_version, r->tls_cipher);
        printf("certificate: %s (%s)\n", r->cert_verified ? "verified" : "NOT verified",
               r->cert_subject);
    } else {
        printf("tls: none\n");
    }
    if (r->extensions[0])
        printf("extensions: %s\n", r->extensions);
    if (!r->auth_attempted)
        printf("auth: not configured\n");
    else if (r->auth_ok)
        printf("auth: ok (%s)\n", r->auth_mechanism);
    else if (r->auth_mechanism[0])
        printf("auth: failed (%s)\n", r->auth_mechanism);
    else
        printf("auth: failed\n");
    /* Never the token itself: only where it came from. */
    if (r->oauth_token[0])
        printf("oauth token: %s\n", r->oauth_token);
    fflush(stdout);
}

/* One line on what the From domain's DNS says (the table with -v); a DNS
 * finding never fails the connection check. */
static void deliverability(const char *env_file, int verbose)
{
    char domain[256];
    scalr_email_finding f[SCALR_EMAIL_DOCTOR_CHECKS];
    scalr_email_error err;
    if (cli_doctor_domain(env_file, domain, sizeof domain) < 0) {
        printf("deliverability: not checked (SMTP_FROM has no domain)\n");
        return;
    }
    if (cli_doctor_findings(domain, env_file, NULL, NULL, 2, f, &err) != SCALR_EMAIL_OK) {
        printf("deliverability: not checked (%s)\n", err.message);
        return;
    }
    int fails = 0, warns = 0;
    for (int i = 0; i < SCALR_EMAIL_DOCTOR_CHECKS; i++) {
        fails += f[i].status == SCALR_EMAIL_CHECK_FAIL;
        warns += f[i].status == SCALR_EMAIL_CHECK_WARN;
    }
    printf("deliverability: %s: %d fail, %d warn, %d pass%s%s\n", domain, fails, warns,
           SCALR_EMAIL_DOCTOR_CHECKS - fails - warns,
           fails + warns ? "; run scalr-email doctor " : "", fails + warns ? domain : "");
    if (verbose)
        cli_doctor_table(domain, f);
}

int cli_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"env-file", required_argument, NULL, 'e'},
        {"verbose", no_argument, NULL, 'v'},
        {0, 0, 0, 0},
    };
    const char *env_file = NULL;
    int verbose = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":v", opts, NULL)) != -1) {
        if (c == 'e')
            env_file = optarg;
        else if (c == 'v')
            verbose = 1;
        else if (c == ':')
            return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        else
            return cli_usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);

    scalr_email_client *client = NULL;
    scalr_email_error err;
    if (scalr_email_client_from_env(&client, env_file, verbose ? cli_trace : NULL, NULL, &err) !=
        SCALR_EMAIL_OK)
        return cli_report(&err);
    scalr_email_report rep;
    scalr_email_code rc = scalr_email_client_check(client, &rep, &err);
    scalr_email_client_free(client);
    print_report(&rep);
    if (rc != SCALR_EMAIL_OK)
        return cli_report(&err);
    printf("result: ok\n");
    deliverability(env_file, verbose);
    return EX_OK;
}
