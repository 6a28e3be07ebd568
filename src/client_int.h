/* Internals shared by client.c (the client, one-message sends) and
 * batch.c (many messages over parallel connections). */
#ifndef SE_CLIENT_INT_H
#define SE_CLIENT_INT_H

#include "auth/oauth.h"
#include "config.h"
#include "dkim/dkim.h"
#include "mime/compose.h"
#include "net/proxy.h"
#include "pool.h"
#include "scalr_email.h"

struct scalr_email_client {
    se_settings s;
    char *ca_file;
    scalr_email_trace_fn trace;
    void *trace_arg;
    int pool_size; /* idle connections kept per key; 0: no pool */
    unsigned pool_idle_ms;
    int pool_max;             /* connections per key, in use and idle; 0: no cap */
    unsigned probe_ms;        /* idle longer than this: NOOP before reuse */
    unsigned send_timeout_ms; /* bound on one whole send; 0: none */
    unsigned char key[SE_POOL_KEY_LEN];
    int has_proxy;
    se_proxy_url proxy;
    char *return_path;    /* addr-spec, "" for the null sender, or NULL */
    se_oauth *oauth;      /* OAuth2 token source, shared by threads; or NULL */
    se_dkim_signer *dkim; /* NULL: messages are not DKIM-signed */
    char *profile;        /* the sender profile, or NULL; part of the pool key */
    char *allowed;        /* SMTP_ALLOWED_FROM_DOMAINS, comma-separated, or NULL */
};

/* The client's return path as MAIL FROM of a message without its own
 * envelope_from.  0, or -1 out of memory. */
int se_client_apply_return_path(const scalr_email_client *c, const scalr_email_message *msg,
                                se_composed *comp);

/* A client from the configuration, with over (a profile's env file, may be
 * NULL) winning over the environment and env_file. */
scalr_email_code se_client_from_layers(scalr_email_client **out, const char *profile,
                                       const char *over, const char *env_file,
                                       scalr_email_trace_fn trace, void *trace_arg,
                                       scalr_email_error *err);

/* The env file of profile: $SCALR_EMAIL_PROFILES/NAME.env (ECONFIG for a
 * bad name, an unset folder or a missing file). */
scalr_email_code se_profile_path(const char *profile, const char *env_file, char *path, size_t len,
                                 scalr_email_error *err);

/* EINVAL unless the envelope sender and the From and Sender addresses are
 * in c's allowed domains (when it has a list). */
scalr_email_code se_client_check_from(const scalr_email_client *c, const se_composed *comp,
                                      scalr_email_error *err);

/* The same for an envelope sender and a header block d[0..lim) (fields,
 * then the empty line or the body). */
scalr_email_code se_client_check_sender(const scalr_email_client *c, const char *mail_from,
                                        const char *d, size_t lim, scalr_email_error *err);
/* A variable as a profile's client sees it: the profile's file, then the
 * environment, then env_file (ECONFIG for an unknown profile). */
scalr_email_code se_profile_get(const char *profile, const char *env_file, const char *name,
                                char **value, scalr_email_error *err);

/* Sign a freshly composed message with c's DKIM keys (none: nothing to do). */
scalr_email_code se_client_dkim_sign(const scalr_email_client *c, se_composed *comp,
                                     scalr_email_error *err);

/* How sends compose: big attachment files are streamed. */
extern const se_compose_opts se_client_compose_opts;

/* A session for c: an idle pooled one, or a new one (connect, TLS, EHLO,
 * AUTH).  On failure err says why and *out is NULL. */
scalr_email_code se_client_session(scalr_email_client *c, se_session **out, scalr_email_error *err);
/* The same, and no wait on the session goes past `limit` (se_conn_now_ms
 * clock; 0: none) until it is released: a whole-send bound. */
scalr_email_code se_client_session_until(scalr_email_client *c, se_session **out, long long limit,
                                         scalr_email_error *err);

/* Batches: queue(arg, eng) is called when the next message may join the
 * flight (se_smtp_can_queue); done(arg, ok, e) when a transaction ends
 * while the one queued behind it goes on. */
typedef struct se_pipeline {
    void (*queue)(void *arg, se_smtp *eng);
    void (*done)(void *arg, int ok, const scalr_email_error *e);
    void *arg;
    /* The queue's duplicate window: before_eod is called once, just before
     * the write that carries the end of data (nonzero: that write is not
     * made, the transaction fails with err filled and the message was not
     * delivered); after_eod once that write is made.  Either may be NULL. */
    int (*before_eod)(void *arg, scalr_email_error *err);
    void (*after_eod)(void *arg);
    unsigned eod_timeout_ms; /* the wait for the reply to the end of data; 0: the timeout */
    /* Called once per flight, after our write and before the wait for the
     * server: work done here (composing and signing the next message)
     * overlaps the round trip instead of adding to it.  May be NULL. */
    void (*idle)(void *arg);
} se_pipeline;

/* One transaction on ss (with pl, more may follow it; the outcome then is
 * that of the last).  *handed is set to 1 once the message was handed
 * over (scalr_email.h, "Never sent twice"): it must not be sent again. */
scalr_email_code se_client_transact(scalr_email_client *c, se_session *ss, const se_composed *comp,
                                    scalr_email_error *err, int *handed, const se_pipeline *pl);

/* The same for a message read from src (sendmail mode): env and src as
 * se_smtp_mail_source takes them; message_id for the success text. */
scalr_email_code se_client_transact_source(scalr_email_client *c, se_session *ss,
                                           const se_smtp_envelope *env, const se_smtp_source *src,
                                           const char *message_id, scalr_email_error *err,
                                           int *handed);

/* Back to the pool (or closed with QUIT when pooling is off or the
 * session is not reusable).  NULL is fine. */
void se_client_release(scalr_email_client *c, se_session *ss);

/* A reused connection found dead, a lost connection or a 421: worth
 * another try on a fresh connection when not handed over. */
int se_client_conn_failure(const scalr_email_error *e);

#endif
