/* DKIM settings from the environment (SMTP_DKIM_*): keys are loaded when
 * the client is made, so a bad key is a configuration error up front. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim/dkim.h"
#include "config.h"
#include "error.h"

void se_dkim_signer_free(se_dkim_signer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        se_dkim_key_free(s->keys[i]);
    free(s);
}

scalr_email_code se_dkim_signer_from_env(se_dkim_signer **out, const char *over,
                                         const char *env_file, scalr_email_error *err)
{
    *out = NULL;
    static const char *const names[] = {"SMTP_DKIM_DOMAIN",    "SMTP_DKIM_SELECTOR",
                                        "SMTP_DKIM_KEY_FILE",  "SMTP_DKIM_SELECTOR2",
                                        "SMTP_DKIM_KEY_FILE2", "SMTP_DKIM_ALLOW_DOMAIN_MISMATCH"};
    char *v[6] = {0};
    scalr_email_code rc = SCALR_EMAIL_OK;
    for (size_t i = 0; i < 6 && rc == SCALR_EMAIL_OK; i++)
        rc = se_config_get_layered(over, env_file, names[i], &v[i], err);
    se_dkim_signer *s = NULL;
    if (rc != SCALR_EMAIL_OK)
        goto done;
    int any = 0;
    for (size_t i = 0; i < 5; i++)
        any |= v[i] != NULL;
    if (!any)
        goto done; /* not signing */
    if (!v[0] || !v[1] || !v[2]) {
        rc = se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                     "DKIM needs SMTP_DKIM_DOMAIN, SMTP_DKIM_SELECTOR and SMTP_DKIM_KEY_FILE "
                     "together; %s is not set",
                     !v[0]   ? names[0]
                     : !v[1] ? names[1]
                             : names[2]);
        goto done;
    }
    if (!v[3] != !v[4]) {
        rc = se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                     "a second DKIM signature needs both SMTP_DKIM_SELECTOR2 and "
                     "SMTP_DKIM_KEY_FILE2");
        goto done;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
        goto done;
    }
    if (v[5]) {
        if (!strcasecmp(v[5], "true") || !strcmp(v[5], "1") || !strcasecmp(v[5], "yes"))
            s->allow_mismatch = 1;
        else if (strcasecmp(v[5], "false") && strcmp(v[5], "0") && strcasecmp(v[5], "no")) {
            rc = se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                         "SMTP_DKIM_ALLOW_DOMAIN_MISMATCH must be true or false");
            goto done;
        }
    }
    for (size_t i = 0; i < 2 && rc == SCALR_EMAIL_OK; i++) {
        const char *sel = v[1 + 2 * i], *file = v[2 + 2 * i];
        if (!sel)
            break;
        int weak = 0;
        rc = se_dkim_key_load(&s->keys[s->n], file, v[0], sel, &weak, err);
        if (rc == SCALR_EMAIL_OK)
            s->n++;
        s->weak |= weak;
    }
done:
    for (size_t i = 0; i < 6; i++)
        free(v[i]);
    if (rc != SCALR_EMAIL_OK) {
        se_dkim_signer_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}
