/* The glue: a client handle, and the driver loop that connects the SMTP
 * engine (src/smtp) to the transport (src/net) for one session. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "client_int.h"
#include "config.h"
#include "error.h"
#include "mime/address.h"
#include "mime/compose.h"
#include "net/conn.h"
#include "smtp/engine.h"

static char *dup_or_null(const char *s)
{
    return (s && *s) ? strdup(s) : NULL;
}

/* Configuration strings end up in SMTP commands: no control characters. */
static int has_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Empty counts as unset, as in the environment. */
static const char *nz(const char *s)
{
    return s && *s ? s : NULL;
}

/* Attachment files larger than this are streamed (read while sending). */
const se_compose_opts se_client_compose_opts = {.defer_over = 64 * 1024};

#define DEFAULT_POOL_SIZE 2
#define DEFAULT_POOL_IDLE_MS 5000 /* SES drops idle clients after about 10 s */
/* A connection idle longer than this is probed with NOOP before reuse: NATs
 * and providers drop idle connections silently (no FIN). */
#define DEFAULT_PROBE_MS 2000

static void make_key(scalr_email_client *c)
{
    /* A connection through a proxy is another destination. */
    char helo_proxy[1200];
    snprintf(helo_proxy, sizeof helo_proxy, "%s%c%s", c->s.helo_name ? c->s.helo_name : "", 1,
             c->s.proxy ? c->s.proxy : "");
    se_pool_key(c->key, c->s.host, c->s.port, (int)c->s.tls, c->s.username, c->s.password,
                c->ca_file, helo_proxy);
    OPENSSL_cleanse(helo_proxy, sizeof helo_proxy);
    /* A profile's connections are its own, even to the same server and
     * account: one tenant never gets a connection made for another.  So are
     * those signed in with another OAuth2 token source (the account a token
     * stands for is not in the username alone). */
    const char *extra[] = {c->profile,
                           c->s.oauth_token,
                           c->s.oauth_token_cmd,
                           c->s.oauth_token_url,
                           c->s.oauth_client_id,
                           c->s.oauth_refresh_token,
                           c->s.oauth_refresh_token_file};
    int any = 0;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        any |= extra[i] != NULL;
    if (any) {
        unsigned char mixed[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
                 EVP_DigestUpdate(md, c->key, SE_POOL_KEY_LEN);
        for (size_t i = 0; ok && i < sizeof extra / sizeof extra[0]; i++) {
            unsigned char tag[2] = {(unsigned char)i, extra[i] ? 1 : 0};
            ok = EVP_DigestUpdate(md, tag, sizeof tag) &&
                 (!extra[i] || EVP_DigestUpdate(md, extra[i], strlen(extra[i]) + 1));
        }
        if (ok && EVP_DigestFinal_ex(md, mixed, &len))
            memcpy(c->key, mixed, len < SE_POOL_KEY_LEN ? len : SE_POOL_KEY_LEN);
        OPENSSL_cleanse(mixed, sizeof mixed);
        EVP_MD_CTX_free(md);
    }
}

/* Check and keep the proxy and the return path (ECONFIG). */
static scalr_email_code finish_client(scalr_email_client *c, scalr_email_error *err)
{
    if (c->s.proxy) {
        char why[160], shown[600];
        if (se_proxy_parse(c->s.proxy, &c->proxy, why, sizeof why) < 0) {
            se_proxy_redact(c->s.proxy, shown, sizeof shown);
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "proxy '%.300s' %s", shown, why);
        }
        c->has_proxy = 1;
    }
    if (c->s.return_path) {
        const char *rp = c->s.return_path;
        if (strcmp(rp, "<>") == 0) {
            c->return_path = strdup("");
        } else {
            se_address a = {0};
            char why[160];
            if (se_address_parse(rp, &a, why, sizeof why) < 0)
                return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "return path '%.300s': %s", rp,
                               why);
            c->return_path = strdup(a.addr);
            se_address_free(&a);
        }
        if (!c->return_path)
            return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    }
    make_key(c);
    return SCALR_EMAIL_OK;
}

int se_client_apply_return_path(const scalr_email_client *c, const scalr_email_message *msg,
                                se_composed *comp)
{
    if (msg->envelope_from || !c->return_path)
        return 0;
    char *rp = strdup(c->return_path);
    if (!rp)
        return -1;
    free(comp->mail_from);
    comp->mail_from = rp;
    comp->needs_smtputf8 |= se_address_needs_utf8(rp);
    return 0;
}

/* An integer 0..max from the environment; unset leaves *out alone. */
static scalr_email_code int_from_env(const char *over, const char *env_file, const char *name,
                                     long max, int *out, scalr_email_error *err)
{
    char *v = NULL;
    scalr_email_code rc = se_config_get_layered(over, env_file, name, &v, err);
    if (rc != SCALR_EMAIL_OK || !v)
        return rc;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 0 || n > max)
        rc = se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                     "%s must be a number from 0 to %ld, got '%.40s'", name, max, v);
    else
        *out = (int)n;
    free(v);
    return rc;
}

/* Seconds (fractions allowed) 0..3600 from the environment, as ms; unset
 * leaves *ms alone. */
static scalr_email_code secs_from_env(const char *over, const char *env_file, const char *name,
                                      unsigned *ms, scalr_email_error *err)
{
    char *v = NULL;
    scalr_email_code rc = se_config_get_layered(over, env_file, name, &v, err);
    if (rc != SCALR_EMAIL_OK || !v)
        return rc;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0 && d <= 3600))
        rc = se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                     "%s must be a number of seconds from 0 to 3600, got '%.40s'", name, v);
    else
        *ms = (unsigned)(d * 1000 + 0.5);
    free(v);
    return rc;
}

/* SMTP_POOL_SIZE, SMTP_POOL_MAX: 0..1000; SMTP_POOL_IDLE, SMTP_POOL_PROBE,
 * SMTP_SEND_TIMEOUT: seconds.  Unset: the defaults. */
static scalr_email_code pool_from_env(scalr_email_client *c, const char *over, const char *env_file,
                                      scalr_email_error *err)
{
    scalr_email_code rc;
    c->pool_size = DEFAULT_POOL_SIZE;
    c->pool_idle_ms = DEFAULT_POOL_IDLE_MS;
    c->probe_ms = DEFAULT_PROBE_MS;
    if ((rc = int_from_env(over, env_file, "SMTP_POOL_SIZE", 1000, &c->pool_size, err)) ||
        (rc = int_from_env(over, env_file, "SMTP_POOL_MAX", 1000, &c->pool_max, err)) ||
        (rc = secs_from_env(over, env_file, "SMTP_POOL_IDLE", &c->pool_idle_ms, err)) ||
        (rc = secs_from_env(over, env_file, "SMTP_POOL_PROBE", &c->probe_ms, err)) ||
        (rc = secs_from_env(over, env_file, "SMTP_SEND_TIMEOUT", &c->send_timeout_ms, err)))
        return rc;
    return SCALR_EMAIL_OK;
}

void scalr_email_client_free(scalr_email_client *c)
{
    if (!c)
        return;
    if (c->s.password)
        OPENSSL_cleanse(c->s.password, strlen(c->s.password));
    se_oauth_free(c->oauth);
    se_settings_free(&c->s);
    se_dkim_signer_free(c->dkim);
    free(c->profile);
    free(c->allowed);
    free(c->ca_file);
    free(c->return_path);
    OPENSSL_cleanse(&c->proxy, sizeof c->proxy);
    free(c);
}

/* The OAuth2 token source of c->s (none: c->oauth stays NULL). */
static scalr_email_code make_oauth(scalr_email_client *c, scalr_email_error *err)
{
    se_oauth_cfg oc = {
        .token = c->s.oauth_token,
        .token_cmd = c->s.oauth_token_cmd,
        .token_url = c->s.oauth_token_url,
        .client_id = c->s.oauth_client_id,
        .client_secret = c->s.oauth_client_secret,
        .refresh_token = c->s.oauth_refresh_token,
        .refresh_token_file = c->s.oauth_refresh_token_file,
        .scope = c->s.oauth_scope,
        .ca_file = c->ca_file,
        .timeout_ms = c->s.timeout_ms,
    };
    int oom = 0;
    c->oauth = se_oauth_new(&oc, &oom);
    return oom ? se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory") : SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_client_new(scalr_email_client **out, const scalr_email_config *cfg,
                                        scalr_email_error *err)
{
    se_error_clear(err);
    if (!out || !cfg)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "client_new: NULL argument");
    *out = NULL;
    if (!cfg->host || !*cfg->host)
        return se_fail(err, SCALR_EMAIL_ENOTCONFIGURED, "CONFIG",
                       "SMTP is not configured: no host given");
    const struct {
        const char *name, *value;
    } strs[] = {{"host", cfg->host},
                {"username", cfg->username},
                {"password", cfg->password},
                {"from", cfg->from},
                {"helo_name", cfg->helo_name},
                {"ca_file", cfg->ca_file},
                {"return_path", cfg->return_path},
                {"proxy", cfg->proxy}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (has_ctl(strs[i].value))
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s contains a control character",
                           strs[i].name);
    if (cfg->port > 65535)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "port %u is out of range", cfg->port);
    if (cfg->tls != SCALR_EMAIL_TLS_STARTTLS && cfg->tls != SCALR_EMAIL_TLS_IMPLICIT &&
        cfg->tls != SCALR_EMAIL_TLS_NONE)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "unknown TLS mode %d", (int)cfg->tls);
    int has_user = cfg->username && *cfg->username;
    static const char *const mechs[] = {NULL, "plain", "login", "xoauth2", "oauthbearer"};
    if ((unsigned)cfg->auth > SCALR_EMAIL_AUTH_OAUTHBEARER)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "unknown auth mechanism %d",
                       (int)cfg->auth);
    const char *const av[SE_A_COUNT] = {mechs[cfg->auth],
                                        nz(cfg->username),
                                        nz(cfg->password),
                                        nz(cfg->oauth_token),
                                        nz(cfg->oauth_token_cmd),
                                        nz(cfg->oauth_token_url),
                                        nz(cfg->oauth_client_id),
                                        nz(cfg->oauth_client_secret),
                                        nz(cfg->oauth_refresh_token),
                                        nz(cfg->oauth_refresh_token_file),
                                        nz(cfg->oauth_scope)};
    static const char *const an[SE_A_COUNT] = {"auth",
                                               "username",
                                               "password",
                                               "oauth_token",
                                               "oauth_token_cmd",
                                               "oauth_token_url",
                                               "oauth_client_id",
                                               "oauth_client_secret",
                                               "oauth_refresh_token",
                                               "oauth_refresh_token_file",
                                               "oauth_scope"};
    for (int i = 1; i < SE_A_COUNT; i++)
        if (has_ctl(av[i]))
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s contains a control character",
                           an[i]);

    scalr_email_client *c = calloc(1, sizeof *c);
    if (!c)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    scalr_email_code arc = se_check_auth(&c->s, av, an, err);
    if (arc != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return arc;
    }
    c->s.host = strdup(cfg->host);
    c->s.username = dup_or_null(cfg->username);
    c->s.password = dup_or_null(cfg->password);
    c->s.from = dup_or_null(cfg->from);
    c->s.helo_name = dup_or_null(cfg->helo_name);
    c->ca_file = dup_or_null(cfg->ca_file);
    c->s.return_path = dup_or_null(cfg->return_path);
    c->s.proxy = dup_or_null(cfg->proxy);
    c->s.tls = cfg->tls;
    c->s.port = cfg->port ? cfg->port : (cfg->tls == SCALR_EMAIL_TLS_IMPLICIT ? 465 : 587);
    c->s.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
    c->trace = cfg->trace;
    c->trace_arg = cfg->trace_arg;
    c->pool_size = cfg->pool_size < 0 ? 0 : cfg->pool_size ? cfg->pool_size : DEFAULT_POOL_SIZE;
    c->pool_idle_ms = cfg->pool_idle_ms ? cfg->pool_idle_ms : DEFAULT_POOL_IDLE_MS;
    c->pool_max = cfg->pool_max > 0 ? cfg->pool_max : 0;
    c->probe_ms = cfg->pool_probe_ms ? cfg->pool_probe_ms : DEFAULT_PROBE_MS;
    c->send_timeout_ms = cfg->send_timeout_ms;
    if (!c->s.host || (has_user && !c->s.username) ||
        (cfg->password && *cfg->password && !c->s.password) ||
        (cfg->from && *cfg->from && !c->s.from) || (cfg->ca_file && *cfg->ca_file && !c->ca_file) ||
        (cfg->helo_name && *cfg->helo_name && !c->s.helo_name) ||
        (cfg->return_path && *cfg->return_path && !c->s.return_path) ||
        (cfg->proxy && *cfg->proxy && !c->s.proxy)) {
        scalr_email_client_free(c);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    }
    scalr_email_code frc = make_oauth(c, err);
    if (frc == SCALR_EMAIL_OK)
        frc = finish_client(c, err);
    if (frc != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return frc;
    }
    *out = c;
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_client_from_env(scalr_email_client **out, const char *env_file,
                                             scalr_email_trace_fn trace, void *trace_arg,
                                             scalr_email_error *err)
{
    se_error_clear(err);
    if (!out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "client_from_env: NULL argument");
    return se_client_from_layers(out, NULL, NULL, env_file, trace, trace_arg, err);
}

scalr_email_code se_client_from_layers(scalr_email_client **out, const char *profile,
                                       const char *over, const char *env_file,
                                       scalr_email_trace_fn trace, void *trace_arg,
                                       scalr_email_error *err)
{
    *out = NULL;
    scalr_email_client *c = calloc(1, sizeof *c);
    if (!c)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    scalr_email_code rc = se_settings_from_layers(&c->s, over, env_file, err);
    if (rc != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return rc;
    }
    c->trace = trace;
    c->trace_arg = trace_arg;
    if ((rc = make_oauth(c, err)) != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return rc;
    }
    if ((rc = pool_from_env(c, over, env_file, err)) != SCALR_EMAIL_OK ||
        (rc = se_dkim_signer_from_env(&c->dkim, over, env_file, err)) != SCALR_EMAIL_OK ||
        (rc = se_config_get_layered(over, env_file, "SMTP_ALLOWED_FROM_DOMAINS", &c->allowed,
                                    err)) != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return rc;
    }
    if (profile && !(c->profile = strdup(profile))) {
        scalr_email_client_free(c);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    }
    /* after the profile: the pool key is made here */
    if ((rc = finish_client(c, err)) != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return rc;
    }
    *out = c;
    return SCALR_EMAIL_OK;
}

void scalr_email_client_on_refresh_token(scalr_email_client *c, scalr_email_refresh_token_fn fn,
                                         void *arg)
{
    if (c && c->oauth)
        se_oauth_on_rotate(c->oauth, fn, arg);
}

static void note(const scalr_email_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(const scalr_email_client *c, const char *fmt, ...)
{
    if (!c->trace)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    c->trace(c->trace_arg, '*', line, strlen(line));
}

/* RFC 5321 4.1.1.1: the EHLO argument is our FQDN, else an address literal. */
static void pick_helo(const scalr_email_client *c, const se_conn *conn, char *out, size_t len)
{
    if (c->s.helo_name) {
        snprintf(out, len, "%s", c->s.helo_name);
        return;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0 && strchr(host, '.')) {
        int ok = 1;
        for (const char *p = host; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
                ok = 0;
        if (ok && host[0] != '.' && host[0] != '-') {
            snprintf(out, len, "%s", host);
            return;
        }
    }
    se_conn_local_literal(conn, out, len);
}

/* Copy an engine outcome, keeping the Message-ID already recorded. */
static void set_err(scalr_email_error *err, const scalr_email_error *src)
{
    if (!err)
        return;
    char id[sizeof err->message_id];
    memcpy(id, err->message_id, sizeof id);
    *err = *src;
    memcpy(err->message_id, id, sizeof id);
}

static const char *tls_mode_name(scalr_email_tls t)
{
    return t == SCALR_EMAIL_TLS_IMPLICIT ? "implicit TLS"
           : t == SCALR_EMAIL_TLS_NONE   ? "no TLS"
                                         : "STARTTLS";
}

/* A timeout while a reply was arriving: say what arrived (a server that
 * stopped mid-line is not an implicit-TLS port). */
static void explain_timeout(const scalr_email_client *c, se_session *ss, const char *stage,
                            scalr_email_error *err)
{
    size_t n, l = strlen(err->message);
    const char *p = se_smtp_partial(ss->eng, &n);
    int greeting = !strcmp(stage, "CONNECT");
    if (n) {
        char said[96];
        se_copy_line(said, sizeof said, p, n < 80 ? n : 80);
        snprintf(err->message + l, sizeof err->message - l,
                 "; the server sent only part of %s (%zu bytes: \"%s%s\")",
                 greeting ? "a greeting" : "a reply", n, said, n > 80 ? "..." : "");
    } else if (greeting && c->s.tls != SCALR_EMAIL_TLS_IMPLICIT) {
        /* The classic mismatch: a plain client on an implicit-TLS port
         * waits for a greeting that never comes. */
        snprintf(err->message + l, sizeof err->message - l,
                 "; no SMTP greeting: if port %u expects TLS from the first byte "
                 "(usually 465), set SMTP_USE_SSL=true",
                 c->s.port);
    }
}

/* Run the engine until it wants a transaction (IDLE), has finished
 * (DONE) or failed.  I/O errors abort the engine, so the session is never
 * reused after them.  *flights counts the times the driver waited for the
 * server after writing: round trips.  Each reply has one deadline, `to`
 * from when the wait for it began (after our last write or the reply
 * before it), however slowly its bytes trickle in. */
static scalr_email_code pump(const scalr_email_client *c, se_session *ss, unsigned to,
                             unsigned *flights, se_smtp_want *end, const se_pipeline *pl,
                             scalr_email_error *err)
{
    char buf[16384];
    int wrote = 0, eod_told = 0;
    long long wait_end = 0;
    unsigned long seen = 0;
    scalr_email_code rc;
    for (;;) {
        se_smtp_want w = se_smtp_step(ss->eng);
        int done_ok;
        scalr_email_error done;
        if (pl && pl->done && se_smtp_take_done(ss->eng, &done_ok, &done))
            pl->done(pl->arg, done_ok, &done);
        if (w == SE_SMTP_WRITE) {
            /* A batch's next message joins this flight when it may. */
            if (pl && pl->queue && se_smtp_can_queue(ss->eng))
                pl->queue(pl->arg, ss->eng);
            int eod_now = pl && !eod_told && se_smtp_eod_queued(ss->eng);
            if (eod_now && pl->before_eod && pl->before_eod(pl->arg, err)) {
                rc = err && err->code != SCALR_EMAIL_OK ? err->code : SCALR_EMAIL_EIO;
                break;
            }
            size_t n;
            const char *p = se_smtp_out(ss->eng, &n);
            rc = se_conn_write(ss->conn, p, n, to, se_smtp_stage(ss->eng), err);
            if (rc != SCALR_EMAIL_OK)
                break;
            se_smtp_sent(ss->eng, n);
            wrote = 1;
            wait_end = 0;
            if (eod_now) {
                eod_told = 1;
                if (pl->after_eod)
                    pl->after_eod(pl->arg);
            }
        } else if (w == SE_SMTP_READ) {
            if (wrote && flights)
                (*flights)++;
            if (wrote && pl && pl->idle)
                pl->idle(pl->arg);
            wrote = 0;
            size_t got = 0;
            const char *st = se_smtp_stage(ss->eng);
            /* The queue waits longer for the reply to the end of data. */
            unsigned rto = eod_told && pl->eod_timeout_ms ? pl->eod_timeout_ms : to;
            unsigned long nr = se_smtp_replies(ss->eng);
            if (!wait_end || nr != seen) {
                wait_end = se_conn_now_ms() + rto;
                seen = nr;
            }
            rc = se_conn_read_by(ss->conn, buf, sizeof buf, &got, wait_end, rto, st, err);
            if (rc == SCALR_EMAIL_ETIMEOUT && err)
                explain_timeout(c, ss, st, err);
            if (rc != SCALR_EMAIL_OK)
                break;
            if (got == 0)
                se_smtp_eof(ss->eng);
            else if (se_smtp_feed(ss->eng, buf, got) < 0) {
                rc = se_fail(err, SCALR_EMAIL_ENOMEM, se_smtp_stage(ss->eng), "out of memory");
                break;
            }
        } else if (w == SE_SMTP_TLS) {
            rc = se_conn_start_tls(ss->conn, c->s.host, c->ca_file, to, err);
            if (rc != SCALR_EMAIL_OK)
                break;
            char v[32], ci[64], subj[256];
            int ok;
            se_conn_tls_info(ss->conn, v, sizeof v, ci, sizeof ci, subj, sizeof subj, &ok);
            note(c, "TLS %s %s, certificate %s (%s)", v, ci, ok ? "verified" : "NOT verified",
                 subj);
            se_smtp_tls_started(ss->eng);
        } else {
            *end = w;
            if (w != SE_SMTP_FAILED)
                return SCALR_EMAIL_OK;
            scalr_email_error e = *se_smtp_error(ss->eng);
            if (e.code == SCALR_EMAIL_OK)
                e.code = SCALR_EMAIL_EPROTOCOL;
            set_err(err, &e);
            return e.code;
        }
    }
    /* The transport failed: the engine must never be used again. */
    se_smtp_abort(ss->eng, rc, err ? err->message : NULL);
    *end = SE_SMTP_FAILED;
    return rc;
}

/* Connect, TLS, EHLO, AUTH: a new session ready for a transaction.  rep,
 * when given, is filled as far as the session got; no wait goes past
 * limit (0: none). */
static scalr_email_code open_once(scalr_email_client *c, se_session **out, long long limit,
                                  scalr_email_report *rep, const char *token, int *expired,
                                  scalr_email_error *err)
{
    const se_settings *s = &c->s;
    unsigned to = s->timeout_ms;
    *out = NULL;
    se_session *ss = calloc(1, sizeof *ss);
    if (!ss)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "out of memory");
    ss->pid = getpid();
    ss->trace = c->trace;
    ss->trace_arg = c->trace_arg;
    memcpy(ss->key, c->key, sizeof ss->key);

    scalr_email_code rc;
    if (c->has_proxy) {
        char shown[600];
        se_proxy_redact(s->proxy, shown, sizeof shown);
        note(c, "connecting to %s:%u (%s) through proxy %s", s->host, s->port,
             tls_mode_name(s->tls), shown);
        rc = se_proxy_connect(&ss->conn, &c->proxy, s->host, s->port, to, limit, c->send_timeout_ms,
                              err);
    } else {
        note(c, "connecting to %s:%u (%s)", s->host, s->port, tls_mode_name(s->tls));
        rc = se_conn_open_by(&ss->conn, s->host, s->port, to, limit, c->send_timeout_ms, err);
    }
    if (rc != SCALR_EMAIL_OK) {
        free(ss);
        return rc;
    }
    int tls_on = 0;
    if (s->tls == SCALR_EMAIL_TLS_IMPLICIT) {
        rc = se_conn_start_tls(ss->conn, s->host, c->ca_file, to, err);
        if (rc != SCALR_EMAIL_OK)
            goto fail;
        tls_on = 1;
    }
    char helo[300];
    pick_helo(c, ss->conn, helo, sizeof helo);
    se_smtp_opts o = {
        .helo_name = helo,
        .tls = s->tls,
        .username = s->username,
        .password = s->password,
        .mech = (se_smtp_mech)s->auth,
        .oauth_token = token,
        .peer_is_loopback = se_conn_peer_is_loopback(ss->conn),
        .trace = se_session_trace,
        .trace_arg = ss,
    };
    ss->eng = se_smtp_new(&o);
    if (!ss->eng) {
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "out of memory");
        goto fail;
    }
    if (tls_on) {
        se_smtp_tls_started(ss->eng);
        char v[32], ci[64], subj[256];
        int ok;
        se_conn_tls_info(ss->conn, v, sizeof v, ci, sizeof ci, subj, sizeof subj, &ok);
        note(c, "TLS %s %s, certificate %s (%s)", v, ci, ok ? "verified" : "NOT verified", subj);
    }
    se_smtp_want end;
    unsigned flights = 0;
    rc = pump(c, ss, to, &flights, &end, NULL, err);
    if (rc == SCALR_EMAIL_OK && end == SE_SMTP_IDLE) {
        /* Round trips as a latency budget: TCP connect, waiting for the
         * greeting, every wait after a write, and the TLS handshake (one
         * round trip with TLS 1.3, two before). */
        char v[32] = "";
        if (s->tls != SCALR_EMAIL_TLS_NONE)
            se_conn_tls_info(ss->conn, v, sizeof v, NULL, 0, NULL, 0, NULL);
        unsigned hs = !v[0] ? 0 : strcmp(v, "TLSv1.3") == 0 ? 1 : 2;
        note(c, "session ready after %u round trips", 2 + flights + hs);
    }
    if (rc == SCALR_EMAIL_OK && end != SE_SMTP_IDLE)
        rc = se_fail(err, SCALR_EMAIL_EPROTOCOL, se_smtp_stage(ss->eng),
                     "session ended before it was ready");
    if (rc != SCALR_EMAIL_OK)
        goto fail;
    if (rep) {
        snprintf(rep->extensions, sizeof rep->extensions, "%s", se_smtp_extensions(ss->eng));
        rep->auth_attempted = s->username != NULL;
        rep->oauth_attempted = token != NULL;
        rep->auth_ok = se_smtp_authenticated(ss->eng);
        snprintf(rep->auth_mechanism, sizeof rep->auth_mechanism, "%s", se_smtp_auth_used(ss->eng));
        snprintf(rep->greeting, sizeof rep->greeting, "%s", se_smtp_greeting(ss->eng));
    }
    *out = ss;
    return SCALR_EMAIL_OK;
fail:
    if (rep) {
        if (ss->eng) {
            snprintf(rep->greeting, sizeof rep->greeting, "%s", se_smtp_greeting(ss->eng));
            snprintf(rep->extensions, sizeof rep->extensions, "%s", se_smtp_extensions(ss->eng));
            snprintf(rep->auth_mechanism, sizeof rep->auth_mechanism, "%s",
                     se_smtp_auth_used(ss->eng));
            rep->auth_attempted = c->s.username != NULL;
            rep->oauth_attempted = token != NULL;
        }
        if (ss->conn)
            se_conn_tls_info(ss->conn, rep->tls_version, sizeof rep->tls_version, rep->tls_cipher,
                             sizeof rep->tls_cipher, rep->cert_subject, sizeof rep->cert_subject,
                             &rep->cert_verified);
    }
    if (ss->eng && expired)
        *expired = se_smtp_oauth_expired(ss->eng);
    /* A clean refusal (535, no STARTTLS...) still says goodbye; the engine
     * sends nothing when the stream is out of step. */
    se_session_close(ss, to < 5000 ? to : 5000, 1);
    return rc;
}

/* A session, signed in with an OAuth2 token when one is configured: the
 * shared cached token, and when the server says it expired (error
 * challenge + 535) one new token and one more try.  AUTH comes before any
 * message, so nothing can have been handed over. */
static scalr_email_code open_session(scalr_email_client *c, se_session **out, long long limit,
                                     scalr_email_report *rep, scalr_email_error *err)
{
    if (!c->oauth)
        return open_once(c, out, limit, rep, NULL, NULL, err);
    const char *state = "cached";
    for (int attempt = 0;; attempt++) {
        char *tok = NULL;
        int fetched = 0, expired = 0;
        scalr_email_code rc = se_oauth_token(c->oauth, &tok, &fetched, err);
        if (rc != SCALR_EMAIL_OK) {
            if (rep)
                snprintf(rep->oauth_token, sizeof rep->oauth_token, "failed");
            return rc;
        }
        if (!c->s.oauth_token_cmd && !c->s.oauth_token_url)
            state = "fixed";
        else if (fetched)
            state = attempt ? "refreshed" : "fetched";
        if (fetched)
            note(c, "OAuth2 access token %s", attempt ? "refreshed" : "fetched");
        rc = open_once(c, out, limit, rep, tok, &expired, err);
        if (rc != SCALR_EMAIL_OK && expired && attempt == 0 && se_oauth_expired(c->oauth, tok)) {
            se_oauth_drop(tok);
            note(c, "the server refused the access token as expired; getting a new one");
            state = "refreshed";
            continue;
        }
        se_oauth_drop(tok);
        if (rep)
            snprintf(rep->oauth_token, sizeof rep->oauth_token, "%s", state);
        if (rc != SCALR_EMAIL_OK && expired && err) {
            size_t l = strlen(err->message);
            snprintf(err->message + l, sizeof err->message - l, "%s",
                     attempt ? "; a new token was refused too"
                             : "; SMTP_OAUTH_TOKEN is fixed and cannot be refreshed");
        }
        return rc;
    }
}

/* A pooled session idle for long: NOOP and its reply before anything of
 * a message is written.  0: alive; -1: closed (a fresh one is needed). */
static int probe(scalr_email_client *c, se_session *ss, long long idle)
{
    unsigned to = c->s.timeout_ms / 4;
    to = to > 2000 ? 2000 : to < 100 ? 100 : to;
    scalr_email_error e;
    se_error_clear(&e);
    se_smtp_want end;
    note(c, "the connection was idle %lld ms: probing it with NOOP", idle);
    if (se_smtp_noop(ss->eng) == 0 && pump(c, ss, to, NULL, &end, NULL, &e) == SCALR_EMAIL_OK &&
        end == SE_SMTP_IDLE && se_smtp_reusable(ss->eng))
        return 0;
    note(c, "the idle connection did not answer NOOP (%s); opening a new one", e.message);
    se_session_close(ss, 0, 0);
    return -1;
}

scalr_email_code se_client_session_until(scalr_email_client *c, se_session **out, long long limit,
                                         scalr_email_error *err)
{
    *out = NULL;
    int reserved = 0;
    long long slot_wait = se_conn_now_ms() + c->s.timeout_ms;
    if (limit && limit < slot_wait)
        slot_wait = limit;
    while (!reserved) {
        se_session *ss = c->pool_size > 0 ? se_pool_get(c->key, c->pool_idle_ms) : NULL;
        if (ss) {
            ss->trace = c->trace;
            ss->trace_arg = c->trace_arg;
            se_conn_set_limit(ss->conn, limit, c->send_timeout_ms);
            long long idle = se_conn_now_ms() - ss->idle_since;
            if (idle > (long long)c->probe_ms && probe(c, ss, idle) < 0)
                continue;
            note(c, "reusing a connection to %s:%u", c->s.host, c->s.port);
            *out = ss;
            return SCALR_EMAIL_OK;
        }
        if (c->pool_max <= 0)
            break;
        int r = se_pool_reserve(c->key, c->pool_max, slot_wait);
        if (r < 0) {
            char secs[32];
            snprintf(secs, sizeof secs, "%.3g", c->s.timeout_ms / 1000.0);
            return se_fail(err, SCALR_EMAIL_ETIMEOUT, "CONNECT",
                           "all %d connections to %s:%u (SMTP_POOL_MAX) stayed in use for %s s",
                           c->pool_max, c->s.host, c->s.port, secs);
        }
        reserved = r == 1;
    }
    scalr_email_code rc = open_session(c, out, limit, NULL, err);
    if (reserved && rc == SCALR_EMAIL_OK)
        (*out)->counted = 1;
    else if (reserved)
        se_pool_unreserve(c->key);
    return rc;
}

scalr_email_code se_client_session(scalr_email_client *c, se_session **out, scalr_email_error *err)
{
    return se_client_session_until(c, out, 0, err);
}

void se_client_release(scalr_email_client *c, se_session *ss)
{
    if (!ss)
        return;
    se_conn_set_limit(ss->conn, 0, 0); /* the limit was this send's */
    /* Without a pool: QUIT is written, its reply not awaited (the message
     * was accepted at the 250; the caller need not wait one more round
     * trip). */
    se_pool_put(ss, c->pool_size);
}

int se_client_conn_failure(const scalr_email_error *e)
{
    return e->code == SCALR_EMAIL_EIO || e->code == SCALR_EMAIL_ECONNECT ||
           e->code == SCALR_EMAIL_ETIMEOUT || e->smtp_code == 421;
}

/* One transaction: from src when given, else the whole message msg/len. */
static scalr_email_code transact(scalr_email_client *c, se_session *ss, const se_smtp_envelope *env,
                                 const se_smtp_source *src, const char *msg, size_t len,
                                 const char *message_id, scalr_email_error *err, int *handed,
                                 const se_pipeline *pl)
{
    unsigned flights = 0;
    scalr_email_code rc;
    *handed = 0;
    int started =
        src ? se_smtp_mail_source(ss->eng, env, src) : se_smtp_mail(ss->eng, env, msg, len);
    if (started < 0) {
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "MAIL", "cannot start the transaction");
        se_smtp_abort(ss->eng, rc, "cannot start the transaction");
        return rc;
    }
    se_smtp_want end;
    rc = pump(c, ss, c->s.timeout_ms, &flights, &end, pl, err);
    *handed = se_smtp_handed_over(ss->eng);
    if (rc == SCALR_EMAIL_OK && end == SE_SMTP_IDLE) {
        rc = se_smtp_last_ok(ss->eng) ? SCALR_EMAIL_OK : se_smtp_error(ss->eng)->code;
        set_err(err, se_smtp_error(ss->eng));
        if (err)
            err->code = rc;
        if (rc == SCALR_EMAIL_OK && err)
            snprintf(err->message, sizeof err->message, "sent %s", message_id);
    } else if (rc == SCALR_EMAIL_OK) {
        rc = se_fail(err, SCALR_EMAIL_EPROTOCOL, "DATA", "session ended during the transaction");
    }
    if (rc != SCALR_EMAIL_OK && *handed && err && se_client_conn_failure(err)) {
        /* After the message was handed over, a lost or late reply says
         * nothing about delivery: never a success, never resent. */
        size_t l = strlen(err->message);
        snprintf(err->message + l, sizeof err->message - l,
                 "; the message was handed over, so the outcome is unknown: the server may or "
                 "may not have it (not resent)");
    }
    note(c, "%u round trip%s for %s", flights, flights == 1 ? "" : "s",
         pl && pl->queue ? "these pipelined messages" : "this message");
    return rc;
}

scalr_email_code se_client_transact(scalr_email_client *c, se_session *ss, const se_composed *comp,
                                    scalr_email_error *err, int *handed, const se_pipeline *pl)
{
    const se_smtp_envelope env = {
        .mail_from = comp->mail_from,
        .rcpt = (const char *const *)comp->rcpt,
        .n_rcpt = comp->n_rcpt,
        .needs_smtputf8 = comp->needs_smtputf8,
        .is_8bit = comp->is_8bit,
        .dsn = comp->dsn,
        .dsn_notify = comp->dsn_notify,
        .dsn_ret = comp->dsn_ret,
        .dsn_envid = comp->dsn_envid,
    };
    /* Attachments read while sending: the reader restarts for every try. */
    se_reader rd = {0};
    se_reader_init(&rd, comp);
    const se_smtp_source src = {.next = se_reader_next, .arg = &rd, .size = comp->size};
    scalr_email_code rc = transact(c, ss, &env, comp->n_parts ? &src : NULL, comp->data.data,
                                   comp->data.len, comp->message_id, err, handed, pl);
    se_reader_free(&rd);
    return rc;
}

scalr_email_code se_client_transact_source(scalr_email_client *c, se_session *ss,
                                           const se_smtp_envelope *env, const se_smtp_source *src,
                                           const char *message_id, scalr_email_error *err,
                                           int *handed)
{
    return transact(c, ss, env, src, NULL, 0, message_id, err, handed, NULL);
}

/* Send a composed message: a pooled connection when there is one, retried
 * once on a fresh connection when the reused one was dead before the
 * message was handed over (never after). */
static scalr_email_code send_composed(scalr_email_client *c, const se_composed *comp,
                                      scalr_email_error *err)
{
    long long limit = c->send_timeout_ms ? se_conn_now_ms() + c->send_timeout_ms : 0;
    for (int attempt = 0;; attempt++) {
        se_session *ss = NULL;
        scalr_email_code rc = se_client_session_until(c, &ss, limit, err);
        if (rc != SCALR_EMAIL_OK)
            return rc;
        int handed = 0, reused = ss->reused;
        rc = se_client_transact(c, ss, comp, err, &handed, NULL);
        se_client_release(c, ss);
        if (rc != SCALR_EMAIL_OK && reused && !handed && attempt == 0 && err &&
            se_client_conn_failure(err)) {
            note(c, "the reused connection failed before the message was handed over; "
                    "retrying on a new connection");
            continue;
        }
        return rc;
    }
}

scalr_email_code scalr_email_client_send(scalr_email_client *c, const scalr_email_message *msg,
                                         scalr_email_error *err)
{
    se_error_clear(err);
    if (!c || !msg)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send: NULL argument");
    /* The retry needs the outcome even when the caller passed no err. */
    scalr_email_error local;
    if (!err)
        err = &local;
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc = se_compose(msg, c->s.from, &se_client_compose_opts, &comp, err);
    if (rc == SCALR_EMAIL_OK && se_client_apply_return_path(c, msg, &comp) < 0)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    if (rc == SCALR_EMAIL_OK)
        rc = se_client_check_from(c, &comp, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_client_dkim_sign(c, &comp, err);
    if (rc != SCALR_EMAIL_OK) {
        se_composed_free(&comp);
        return rc;
    }
    snprintf(err->message_id, sizeof err->message_id, "%s", comp.message_id);
    rc = send_composed(c, &comp, err);
    se_composed_free(&comp);
    return rc;
}

/* One envelope address as the API takes it, into *out (an addr-spec). */
static scalr_email_code raw_addr(const char *in, const char *what, char **out,
                                 scalr_email_error *err)
{
    se_address a;
    char why[256];
    if (se_address_parse(in, &a, why, sizeof why) < 0)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "%s: %s", what, why);
    *out = a.addr;
    a.addr = NULL;
    se_address_free(&a);
    return *out ? SCALR_EMAIL_OK : se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
}

scalr_email_code scalr_email_client_send_data(scalr_email_client *c, const char *mail_from,
                                              const char *const *rcpt, const char *data, size_t len,
                                              scalr_email_error *err)
{
    se_error_clear(err);
    scalr_email_error local;
    if (!err)
        err = &local;
    if (!c || !mail_from || !rcpt || !data)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send_raw: NULL argument");
    if (!rcpt[0])
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send_raw: no recipient");
    if (len == 0)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send_raw: empty message");
    if (memchr(data, '\0', len))
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE",
                       "send_raw: the message contains a NUL octet");
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc = SCALR_EMAIL_OK;
    size_t n = 0;
    while (rcpt[n])
        n++;
    if (!(comp.rcpt = calloc(n, sizeof *comp.rcpt)))
        return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    if (*mail_from)
        rc = raw_addr(mail_from, "sender", &comp.mail_from, err);
    else if (!(comp.mail_from = strdup("")))
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    for (size_t i = 0; i < n && rc == SCALR_EMAIL_OK; i++, comp.n_rcpt++)
        rc = raw_addr(rcpt[i], "recipient", &comp.rcpt[i], err);
    /* RFC 5322 2.3: CR and LF only together, as CRLF. */
    for (size_t i = 0; i < len && rc == SCALR_EMAIL_OK; i++) {
        int r;
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            r = se_buf_append(&comp.data, "\r\n", 2), i++;
        else if (data[i] == '\r' || data[i] == '\n')
            r = se_buf_append(&comp.data, "\r\n", 2);
        else
            r = se_buf_append(&comp.data, data + i, 1);
        if (r < 0)
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    }
    if (rc == SCALR_EMAIL_OK && comp.data.data[comp.data.len - 1] != '\n' &&
        se_buf_append(&comp.data, "\r\n", 2) < 0)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    if (rc == SCALR_EMAIL_OK) {
        for (size_t i = 0; i < comp.data.len && !comp.is_8bit; i++)
            comp.is_8bit = (unsigned char)comp.data.data[i] >= 0x80;
        comp.needs_smtputf8 = se_address_needs_utf8(comp.mail_from);
        for (size_t i = 0; i < comp.n_rcpt; i++)
            comp.needs_smtputf8 |= se_address_needs_utf8(comp.rcpt[i]);
        comp.size = comp.data.len;
        rc = send_composed(c, &comp, err);
    }
    se_composed_free(&comp);
    return rc;
}

scalr_email_code scalr_email_client_check(scalr_email_client *c, scalr_email_report *rep,
                                          scalr_email_error *err)
{
    se_error_clear(err);
    scalr_email_report dummy;
    if (!rep)
        rep = &dummy;
    memset(rep, 0, sizeof *rep);
    if (!c)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "check: NULL client");
    se_session *ss = NULL;
    scalr_email_code rc = open_session(c, &ss, 0, rep, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    se_conn_tls_info(ss->conn, rep->tls_version, sizeof rep->tls_version, rep->tls_cipher,
                     sizeof rep->tls_cipher, rep->cert_subject, sizeof rep->cert_subject,
                     &rep->cert_verified);
    unsigned to = c->s.timeout_ms;
    se_session_close(ss, to < 5000 ? to : 5000, 1); /* a check never pools */
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_send(const scalr_email_message *msg, scalr_email_error *err)
{
    scalr_email_client *c = NULL;
    scalr_email_code rc = scalr_email_client_from_env(&c, NULL, NULL, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    rc = scalr_email_client_send(c, msg, err);
    scalr_email_client_free(c);
    return rc;
}

scalr_email_code scalr_email_compose(const scalr_email_message *msg, const char *default_from,
                                     char **out, size_t *out_len, scalr_email_error *err)
{
    se_error_clear(err);
    if (!msg || !out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "compose: NULL argument");
    *out = NULL;
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc = se_compose(msg, default_from, NULL, &comp, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (err)
        snprintf(err->message_id, sizeof err->message_id, "%s", comp.message_id);
    *out = se_buf_steal(&comp.data, out_len);
    se_composed_free(&comp);
    if (!*out)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    return SCALR_EMAIL_OK;
}
