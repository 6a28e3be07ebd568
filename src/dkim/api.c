/* The public DKIM functions: key generation, verification, a client's
 * signing keys. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_int.h"
#include "dkim/dkim.h"
#include "error.h"
#include "queue/queue_int.h"

scalr_email_code scalr_email_dkim_keygen(const char *path, const char *domain, const char *selector,
                                         int ed25519, char **record, scalr_email_error *err)
{
    se_error_clear(err);
    if (!path || !domain || !selector || !record)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "dkim_keygen: NULL argument");
    *record = NULL;
    EVP_PKEY *pk = ed25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                           : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!pk)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "key generation failed");
    /* 0600 from the start: the key is never readable by others. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        EVP_PKEY_free(pk);
        return se_fail(err, SCALR_EMAIL_EFILE, "CONFIG", "cannot create '%s': %s", path,
                       strerror(e));
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1;
    if (f)
        ok = (fclose(f) == 0) && ok;
    else
        close(fd);
    EVP_PKEY_free(pk);
    if (!ok) {
        unlink(path);
        return se_fail(err, SCALR_EMAIL_EFILE, "CONFIG", "cannot write '%s'", path);
    }
    se_dkim_key *k = NULL;
    scalr_email_code rc = se_dkim_key_load(&k, path, domain, selector, NULL, err);
    if (rc != SCALR_EMAIL_OK) {
        unlink(path);
        return rc;
    }
    se_buf rec = {0};
    if (se_dkim_key_record(k, &rec) < 0 || se_buf_append(&rec, "", 1) < 0) {
        se_dkim_key_free(k);
        se_buf_free(&rec);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    }
    se_dkim_key_free(k);
    *record = se_buf_steal(&rec, NULL);
    return SCALR_EMAIL_OK;
}

int scalr_email_dkim_verify(const char *msg, size_t len, scalr_email_dkim_lookup_fn lookup,
                            void *arg, scalr_email_dkim_result *res, size_t max)
{
    if (!msg)
        return -1;
    return se_dkim_verify(msg, len, lookup, arg, res, max);
}

scalr_email_code scalr_email_client_dkim(scalr_email_client *c, const char *domain,
                                         const char *selector, const char *key_file,
                                         const char *selector2, const char *key_file2,
                                         int allow_mismatch, int *weak, scalr_email_error *err)
{
    se_error_clear(err);
    if (!c)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "client_dkim: NULL argument");
    if (weak)
        *weak = 0;
    if (!domain) {
        se_dkim_signer_free(c->dkim);
        c->dkim = NULL;
        return SCALR_EMAIL_OK;
    }
    if (!selector || !key_file || (!selector2 != !key_file2))
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "DKIM needs a selector and a key file for each signature");
    se_dkim_signer *s = calloc(1, sizeof *s);
    if (!s)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    s->allow_mismatch = allow_mismatch;
    const char *sel[2] = {selector, selector2}, *file[2] = {key_file, key_file2};
    for (size_t i = 0; i < 2 && sel[i]; i++) {
        int w = 0;
        scalr_email_code rc = se_dkim_key_load(&s->keys[s->n], file[i], domain, sel[i], &w, err);
        if (rc != SCALR_EMAIL_OK) {
            se_dkim_signer_free(s);
            return rc;
        }
        s->n++;
        s->weak |= w;
    }
    if (weak)
        *weak = s->weak;
    se_dkim_signer_free(c->dkim);
    c->dkim = s;
    return SCALR_EMAIL_OK;
}

int scalr_email_client_dkim_weak(const scalr_email_client *c)
{
    return c && c->dkim && c->dkim->weak;
}

scalr_email_code se_client_dkim_sign(const scalr_email_client *c, se_composed *comp,
                                     scalr_email_error *err)
{
    if (!c->dkim)
        return SCALR_EMAIL_OK;
    return se_dkim_sign_composed(c->dkim->keys, c->dkim->n, c->dkim->allow_mismatch, comp,
                                 time(NULL), err);
}

scalr_email_code scalr_email_queue_dkim_from_env(scalr_email_queue *q, const char *env_file,
                                                 scalr_email_error *err)
{
    se_error_clear(err);
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "queue_dkim_from_env: NULL argument");
    se_dkim_signer *s = NULL;
    scalr_email_code rc = se_dkim_signer_from_env(&s, NULL, env_file, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    se_dkim_signer_free(q->dkim);
    q->dkim = s;
    return SCALR_EMAIL_OK;
}
