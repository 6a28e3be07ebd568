/* The token cache shared by a client's threads and pooled connections, and
 * the refresh token file written back when the endpoint rotates it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/oauth.h"
#include "error.h"

#define SE_REFRESH_TOKEN_MAX 16384

struct se_oauth {
    se_oauth_cfg cfg; /* strings owned (copies) */
    pthread_mutex_t mu;
    char *token;         /* cached access token, or NULL */
    time_t valid_until;  /* 0: until the server says it expired */
    char *refresh_token; /* the latest one (rotated ones replace it) */
    unsigned fetches;
    se_oauth_rotated_fn rotated;
    void *rotated_arg;
};

static void wipe_free(char *p)
{
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

void se_oauth_drop(char *tok)
{
    wipe_free(tok);
}

static int dup_field(const char **dst, const char *src)
{
    *dst = NULL;
    if (!src || !*src)
        return 0;
    return (*dst = strdup(src)) ? 0 : -1;
}

se_oauth *se_oauth_new(const se_oauth_cfg *cfg, int *oom)
{
    *oom = 0;
    if (!cfg->token && !cfg->token_cmd && !cfg->token_url)
        return NULL;
    se_oauth *o = calloc(1, sizeof *o);
    if (!o || pthread_mutex_init(&o->mu, NULL) != 0) {
        free(o);
        *oom = 1;
        return NULL;
    }
    o->cfg.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
    if (dup_field(&o->cfg.token, cfg->token) || dup_field(&o->cfg.token_cmd, cfg->token_cmd) ||
        dup_field(&o->cfg.token_url, cfg->token_url) ||
        dup_field(&o->cfg.client_id, cfg->client_id) ||
        dup_field(&o->cfg.client_secret, cfg->client_secret) ||
        dup_field(&o->cfg.refresh_token, cfg->refresh_token) ||
        dup_field(&o->cfg.refresh_token_file, cfg->refresh_token_file) ||
        dup_field(&o->cfg.scope, cfg->scope) || dup_field(&o->cfg.ca_file, cfg->ca_file)) {
        se_oauth_free(o);
        *oom = 1;
        return NULL;
    }
    return o;
}

void se_oauth_free(se_oauth *o)
{
    if (!o)
        return;
    wipe_free((char *)o->cfg.token);
    free((char *)o->cfg.token_cmd);
    free((char *)o->cfg.token_url);
    free((char *)o->cfg.client_id);
    wipe_free((char *)o->cfg.client_secret);
    wipe_free((char *)o->cfg.refresh_token);
    free((char *)o->cfg.refresh_token_file);
    free((char *)o->cfg.scope);
    free((char *)o->cfg.ca_file);
    wipe_free(o->token);
    wipe_free(o->refresh_token);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

void se_oauth_on_rotate(se_oauth *o, se_oauth_rotated_fn fn, void *arg)
{
    pthread_mutex_lock(&o->mu);
    o->rotated = fn;
    o->rotated_arg = arg;
    pthread_mutex_unlock(&o->mu);
}

/* The refresh token: the latest rotated one, else the file's first line
 * (read at every refresh: another process may have rotated it), else the
 * variable. */
static scalr_email_code current_refresh(se_oauth *o, char **out, scalr_email_error *err)
{
    *out = NULL;
    if (o->refresh_token)
        return (*out = strdup(o->refresh_token))
                   ? SCALR_EMAIL_OK
                   : se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    if (o->cfg.refresh_token_file) {
        FILE *f = fopen(o->cfg.refresh_token_file, "r");
        if (!f)
            return se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                           "cannot read SMTP_OAUTH_REFRESH_TOKEN_FILE %s: %s",
                           o->cfg.refresh_token_file, strerror(errno));
        char *line = calloc(1, SE_REFRESH_TOKEN_MAX + 2);
        if (!line) {
            fclose(f);
            return se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
        }
        if (!fgets(line, SE_REFRESH_TOKEN_MAX + 2, f))
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) {
            free(line);
            return se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                           "SMTP_OAUTH_REFRESH_TOKEN_FILE %s is empty", o->cfg.refresh_token_file);
        }
        *out = line;
        return SCALR_EMAIL_OK;
    }
    if (o->cfg.refresh_token)
        return (*out = strdup(o->cfg.refresh_token))
                   ? SCALR_EMAIL_OK
                   : se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    return se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                   "SMTP_OAUTH_TOKEN_URL is set but neither SMTP_OAUTH_REFRESH_TOKEN nor "
                   "SMTP_OAUTH_REFRESH_TOKEN_FILE is");
}

/* Write the rotated refresh token back: a temporary file in the same
 * directory, mode 0600, fsync'd, then renamed over the old one, so a crash
 * leaves the old token or the new one, never half of either. */
static scalr_email_code write_back(const char *path, const char *tok, scalr_email_error *err)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 32);
    if (!tmp)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    snprintf(tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0;
    size_t len = strlen(tok);
    if (ok)
        ok = write(fd, tok, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        saved = errno;
    }
    if (!ok)
        unlink(tmp);
    free(tmp);
    if (!ok)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                       "cannot write the rotated refresh token back to %s: %s", path,
                       strerror(saved));
    return SCALR_EMAIL_OK;
}

/* Called with the mutex held. */
static scalr_email_code fetch(se_oauth *o, scalr_email_error *err)
{
    char *tok = NULL;
    long expires_in = 0;
    scalr_email_code rc;
    if (o->cfg.token_cmd) {
        rc = se_oauth_run_cmd(o->cfg.token_cmd, o->cfg.timeout_ms, &tok, err);
    } else {
        char *refresh = NULL, *rotated = NULL;
        rc = current_refresh(o, &refresh, err);
        if (rc == SCALR_EMAIL_OK)
            rc = se_oauth_refresh_grant(&o->cfg, refresh, &tok, &expires_in, &rotated, err);
        if (rc == SCALR_EMAIL_OK && rotated && strcmp(rotated, refresh) != 0) {
            /* Microsoft rotates refresh tokens and the old one dies. */
            if (o->cfg.refresh_token_file)
                rc = write_back(o->cfg.refresh_token_file, rotated, err);
            if (o->rotated)
                o->rotated(o->rotated_arg, rotated);
            wipe_free(o->refresh_token);
            o->refresh_token = rotated;
            rotated = NULL;
        }
        wipe_free(rotated);
        wipe_free(refresh);
    }
    if (rc != SCALR_EMAIL_OK) {
        wipe_free(tok);
        return rc;
    }
    wipe_free(o->token);
    o->token = tok;
    o->fetches++;
    /* Renew a little before the end: a minute, or a tenth of a short life. */
    if (expires_in > 0) {
        long margin = expires_in / 10 < 60 ? expires_in / 10 : 60;
        o->valid_until = time(NULL) + expires_in - margin;
    } else {
        o->valid_until = 0;
    }
    return SCALR_EMAIL_OK;
}

scalr_email_code se_oauth_token(se_oauth *o, char **tok, int *fetched, scalr_email_error *err)
{
    *tok = NULL;
    *fetched = 0;
    if (o->cfg.token)
        return (*tok = strdup(o->cfg.token))
                   ? SCALR_EMAIL_OK
                   : se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    pthread_mutex_lock(&o->mu);
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (!o->token || (o->valid_until && time(NULL) >= o->valid_until)) {
        rc = fetch(o, err);
        *fetched = rc == SCALR_EMAIL_OK;
    }
    if (rc == SCALR_EMAIL_OK && !(*tok = strdup(o->token)))
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    pthread_mutex_unlock(&o->mu);
    return rc;
}

int se_oauth_expired(se_oauth *o, const char *tok)
{
    if (o->cfg.token)
        return 0;
    pthread_mutex_lock(&o->mu);
    if (o->token && tok && strcmp(o->token, tok) == 0) {
        wipe_free(o->token);
        o->token = NULL;
    }
    pthread_mutex_unlock(&o->mu);
    return 1;
}

unsigned se_oauth_fetches(se_oauth *o)
{
    pthread_mutex_lock(&o->mu);
    unsigned n = o->fetches;
    pthread_mutex_unlock(&o->mu);
    return n;
}
