/* A message exactly as it would be sent, without sending it: composed,
 * checked and DKIM-signed as a send would (`send --print`, Python
 * compose()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "config.h"
#include "error.h"
#include "mime/address.h"

/* As scalr_email_client_send composes, checks and signs; all in memory. */
static scalr_email_code compose_as(const scalr_email_client *c, const scalr_email_message *msg,
                                   char **out, size_t *out_len, scalr_email_error *err)
{
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc = se_compose(msg, c->s.from, NULL, &comp, err);
    if (rc == SCALR_EMAIL_OK && se_client_apply_return_path(c, msg, &comp) < 0)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    if (rc == SCALR_EMAIL_OK)
        rc = se_client_check_from(c, &comp, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_client_dkim_sign(c, &comp, err);
    if (rc == SCALR_EMAIL_OK) {
        if (err)
            snprintf(err->message_id, sizeof err->message_id, "%s", comp.message_id);
        if (!(*out = se_buf_steal(&comp.data, out_len)))
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    }
    se_composed_free(&comp);
    return rc;
}

scalr_email_code scalr_email_client_compose(scalr_email_client *client,
                                            const scalr_email_message *msg, char **out,
                                            size_t *out_len, scalr_email_error *err)
{
    se_error_clear(err);
    if (!client || !msg || !out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "client_compose: NULL argument");
    *out = NULL;
    return compose_as(client, msg, out, out_len, err);
}

/* The parts of a client that shape the message (From, return path, allowed
 * domains, DKIM keys), read as se_client_from_layers reads them, but
 * without the server settings: a preview needs no SMTP_HOST. */
static scalr_email_code shaping_client(scalr_email_client **out, const char *profile,
                                       const char *over, const char *env_file,
                                       scalr_email_error *err)
{
    scalr_email_client *c = calloc(1, sizeof *c);
    if (!c)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    char *rp = NULL;
    scalr_email_code rc = se_config_get_layered(over, env_file, "SMTP_FROM", &c->s.from, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_config_get_layered(over, env_file, "SMTP_RETURN_PATH", &rp, err);
    if (rc == SCALR_EMAIL_OK && rp) {
        if (!strcmp(rp, "<>")) {
            if (!(c->return_path = strdup("")))
                rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
        } else {
            se_address a = {0};
            char why[160];
            if (se_address_parse(rp, &a, why, sizeof why) < 0)
                rc = se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "return path '%.300s': %s", rp,
                             why);
            else if (!(c->return_path = strdup(a.addr)))
                rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
            se_address_free(&a);
        }
    }
    free(rp);
    if (rc == SCALR_EMAIL_OK)
        rc = se_dkim_signer_from_env(&c->dkim, over, env_file, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_config_get_layered(over, env_file, "SMTP_ALLOWED_FROM_DOMAINS", &c->allowed, err);
    if (rc == SCALR_EMAIL_OK && profile && !(c->profile = strdup(profile)))
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    if (rc != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return rc;
    }
    *out = c;
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_compose_configured(const scalr_email_message *msg, const char *profile,
                                                const char *env_file, char **out, size_t *out_len,
                                                scalr_email_error *err)
{
    se_error_clear(err);
    if (!msg || !out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "compose_configured: NULL argument");
    *out = NULL;
    char path[4096];
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (profile &&
        (rc = se_profile_path(profile, env_file, path, sizeof path, err)) != SCALR_EMAIL_OK)
        return rc;
    scalr_email_client *c = NULL;
    if ((rc = shaping_client(&c, profile, profile ? path : NULL, env_file, err)) != SCALR_EMAIL_OK)
        return rc;
    rc = compose_as(c, msg, out, out_len, err);
    scalr_email_client_free(c);
    return rc;
}
