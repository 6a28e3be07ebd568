/* The glue: a client handle, and the driver loop that connects the SMTP
 * engine (src/smtp) to the transport (src/net) for one session. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config.h"
#include "error.h"
#include "mime/compose.h"
#include "net/conn.h"
#include "smtp/engine.h"

struct scalr_email_client {
    se_settings s;
    char *ca_file;
    scalr_email_trace_fn trace;
    void *trace_arg;
};

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

void scalr_email_client_free(scalr_email_client *c)
{
    if (!c)
        return;
    if (c->s.password)
        OPENSSL_cleanse(c->s.password, strlen(c->s.password));
    se_settings_free(&c->s);
    free(c->ca_file);
    free(c);
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
    } strs[] = {{"host", cfg->host},           {"username", cfg->username},
                {"password", cfg->password},   {"from", cfg->from},
                {"helo_name", cfg->helo_name}, {"ca_file", cfg->ca_file}};
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
    int has_pass = cfg->password && *cfg->password;
    if (has_user != has_pass)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       has_user ? "a username is set but the password is empty"
                                : "a password is set but the username is empty");

    scalr_email_client *c = calloc(1, sizeof *c);
    if (!c)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    c->s.host = strdup(cfg->host);
    c->s.username = dup_or_null(cfg->username);
    c->s.password = dup_or_null(cfg->password);
    c->s.from = dup_or_null(cfg->from);
    c->s.helo_name = dup_or_null(cfg->helo_name);
    c->ca_file = dup_or_null(cfg->ca_file);
    c->s.tls = cfg->tls;
    c->s.port = cfg->port ? cfg->port : (cfg->tls == SCALR_EMAIL_TLS_IMPLICIT ? 465 : 587);
    c->s.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
    c->trace = cfg->trace;
    c->trace_arg = cfg->trace_arg;
    if (!c->s.host || (has_user && (!c->s.username || !c->s.password)) ||
        (cfg->from && *cfg->from && !c->s.from) || (cfg->ca_file && *cfg->ca_file && !c->ca_file) ||
        (cfg->helo_name && *cfg->helo_name && !c->s.helo_name)) {
        scalr_email_client_free(c);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
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
    *out = NULL;
    scalr_email_client *c = calloc(1, sizeof *c);
    if (!c)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    scalr_email_code rc = se_settings_from_env(&c->s, env_file, err);
    if (rc != SCALR_EMAIL_OK) {
        scalr_email_client_free(c);
        return rc;
    }
    c->trace = trace;
    c->trace_arg = trace_arg;
    *out = c;
    return SCALR_EMAIL_OK;
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

/* One session: connect, run the engine to IDLE, send `comp` if given (else
 * just fill `rep`), QUIT.  The outcome of the message decides the result:
 * once the server has accepted it, a failing QUIT changes nothing. */
static scalr_email_code run_session(scalr_email_client *c, const se_composed *comp,
                                    scalr_email_report *rep, scalr_email_error *err)
{
    const se_settings *s = &c->s;
    unsigned to = s->timeout_ms;
    se_conn *conn = NULL;
    se_smtp *eng = NULL;
    scalr_email_code rc;

    note(c, "connecting to %s:%u (%s)", s->host, s->port, tls_mode_name(s->tls));
    rc = se_conn_open(&conn, s->host, s->port, to, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    int tls_on = 0;
    if (s->tls == SCALR_EMAIL_TLS_IMPLICIT) {
        rc = se_conn_start_tls(conn, s->host, c->ca_file, to, err);
        if (rc != SCALR_EMAIL_OK)
            goto out;
        tls_on = 1;
    }

    char helo[300];
    pick_helo(c, conn, helo, sizeof helo);
    se_smtp_opts o = {
        .helo_name = helo,
        .tls = s->tls,
        .username = s->username,
        .password = s->password,
        .peer_is_loopback = se_conn_peer_is_loopback(conn),
        .trace = c->trace,
        .trace_arg = c->trace_arg,
    };
    eng = se_smtp_new(&o);
    if (!eng) {
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "out of memory");
        goto out;
    }
    if (tls_on) {
        se_smtp_tls_started(eng);
        char v[32], ci[64], subj[256];
        int ok;
        se_conn_tls_info(conn, v, sizeof v, ci, sizeof ci, subj, sizeof subj, &ok);
        note(c, "TLS %s %s, certificate %s (%s)", v, ci, ok ? "verified" : "NOT verified", subj);
    }

    int mail_started = 0, finished = 0, quitting = 0, failed = 0;
    /* Waiting long for a goodbye helps nobody once the outcome is known. */
    unsigned quit_to = to < 5000 ? to : 5000;
    scalr_email_code result = SCALR_EMAIL_OK;
    scalr_email_error result_err, fail_err;
    se_error_clear(&result_err);
    se_error_clear(&fail_err);
    char buf[16384];

    for (;;) {
        se_smtp_want w = se_smtp_step(eng);
        if (w == SE_SMTP_WRITE) {
            size_t n;
            const char *p = se_smtp_out(eng, &n);
            rc = se_conn_write(conn, p, n, quitting ? quit_to : to, se_smtp_stage(eng), err);
            if (rc != SCALR_EMAIL_OK)
                break;
            se_smtp_sent(eng, n);
        } else if (w == SE_SMTP_READ) {
            size_t got = 0;
            const char *st = se_smtp_stage(eng);
            rc = se_conn_read(conn, buf, sizeof buf, &got, quitting ? quit_to : to, st, err);
            if (rc == SCALR_EMAIL_ETIMEOUT && !strcmp(st, "CONNECT") && !tls_on && err) {
                /* The classic mismatch: a plain client on an implicit-TLS
                 * port waits for a greeting that never comes. */
                size_t l = strlen(err->message);
                snprintf(err->message + l, sizeof err->message - l,
                         "; no SMTP greeting: if port %u expects TLS from the first byte "
                         "(usually 465), set SMTP_USE_SSL=true",
                         s->port);
            }
            if (rc != SCALR_EMAIL_OK)
                break;
            if (got == 0)
                se_smtp_eof(eng);
            else if (se_smtp_feed(eng, buf, got) < 0) {
                rc = se_fail(err, SCALR_EMAIL_ENOMEM, se_smtp_stage(eng), "out of memory");
                break;
            }
        } else if (w == SE_SMTP_TLS) {
            rc = se_conn_start_tls(conn, s->host, c->ca_file, to, err);
            if (rc != SCALR_EMAIL_OK)
                break;
            char v[32], ci[64], subj[256];
            int ok;
            se_conn_tls_info(conn, v, sizeof v, ci, sizeof ci, subj, sizeof subj, &ok);
            note(c, "TLS %s %s, certificate %s (%s)", v, ci, ok ? "verified" : "NOT verified", subj);
            se_smtp_tls_started(eng);
        } else if (w == SE_SMTP_IDLE) {
            if (quitting) {
                rc = se_fail(err, SCALR_EMAIL_EPROTOCOL, "QUIT", "engine idle after QUIT");
                break;
            }
            if (comp && !mail_started) {
                const se_smtp_envelope env = {
                    .mail_from = comp->mail_from,
                    .rcpt = (const char *const *)comp->rcpt,
                    .n_rcpt = comp->n_rcpt,
                    .needs_smtputf8 = comp->needs_smtputf8,
                    .is_8bit = comp->is_8bit,
                };
                mail_started = 1;
                if (se_smtp_mail(eng, &env, comp->data.data, comp->data.len) < 0) {
                    rc = se_fail(err, SCALR_EMAIL_ENOMEM, "MAIL", "cannot start the transaction");
                    break;
                }
                continue;
            }
            if (comp) {
                /* The transaction is over: keep its outcome, then QUIT. */
                finished = 1;
                result = se_smtp_last_ok(eng) ? SCALR_EMAIL_OK : se_smtp_error(eng)->code;
                result_err = *se_smtp_error(eng);
            } else if (rep) {
                finished = 1;
                snprintf(rep->extensions, sizeof rep->extensions, "%s", se_smtp_extensions(eng));
                rep->auth_attempted = s->username != NULL;
                rep->auth_ok = se_smtp_authenticated(eng);
                snprintf(rep->auth_mechanism, sizeof rep->auth_mechanism, "%s",
                         se_smtp_auth_used(eng));
            }
            quitting = 1;
            se_smtp_quit(eng);
        } else if (w == SE_SMTP_DONE) {
            rc = SCALR_EMAIL_OK;
            break;
        } else { /* SE_SMTP_FAILED */
            if (!failed) {
                failed = 1;
                fail_err = *se_smtp_error(eng);
                if (fail_err.code == SCALR_EMAIL_OK)
                    fail_err.code = SCALR_EMAIL_EPROTOCOL;
                if (!quitting) {
                    /* A clean refusal (535, no STARTTLS...) still says
                     * goodbye; the engine keeps the first error. */
                    quitting = 1;
                    se_smtp_quit(eng);
                    continue;
                }
            }
            break;
        }
    }
    if (failed) {
        set_err(err, &fail_err);
        rc = fail_err.code;
    }

    if (rep) {
        snprintf(rep->greeting, sizeof rep->greeting, "%s", se_smtp_greeting(eng));
        if (rep->extensions[0] == '\0')
            snprintf(rep->extensions, sizeof rep->extensions, "%s", se_smtp_extensions(eng));
    }
    if (finished) {
        /* The message's fate was decided before QUIT: a QUIT failure after
         * the server accepted the message must not turn into an error (the
         * caller would send it again). */
        if (err) {
            set_err(err, &result_err);
            err->code = result;
            if (result == SCALR_EMAIL_OK && comp)
                snprintf(err->message, sizeof err->message, "sent %s", comp->message_id);
        }
        rc = result;
    }
out:
    if (rep && conn) {
        se_conn_tls_info(conn, rep->tls_version, sizeof rep->tls_version, rep->tls_cipher,
                         sizeof rep->tls_cipher, rep->cert_subject, sizeof rep->cert_subject,
                         &rep->cert_verified);
    }
    se_smtp_free(eng);
    se_conn_close(conn);
    return rc;
}

scalr_email_code scalr_email_client_send(scalr_email_client *c, const scalr_email_message *msg,
                                         scalr_email_error *err)
{
    se_error_clear(err);
    if (!c || !msg)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send: NULL argument");
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc = se_compose(msg, c->s.from, NULL, &comp, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (err)
        snprintf(err->message_id, sizeof err->message_id, "%s", comp.message_id);
    rc = run_session(c, &comp, NULL, err);
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
    return run_session(c, NULL, rep, err);
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
