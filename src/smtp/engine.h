/* The SMTP client engine: a state machine over byte buffers.
 *
 * It never touches a socket.  The driver (src/client.c, tests) loops:
 *
 *     for (;;) switch (se_smtp_step(s)) {
 *     case SE_SMTP_WRITE:  write se_smtp_out() fully, then se_smtp_sent(); break;
 *     case SE_SMTP_READ:   read bytes, se_smtp_feed() them (or se_smtp_eof()); break;
 *     case SE_SMTP_TLS:    do the TLS handshake, then se_smtp_tls_started(); break;
 *     case SE_SMTP_IDLE:   start a transaction (se_smtp_mail) or se_smtp_quit(); break;
 *     case SE_SMTP_DONE:   finished: close the connection; stop;
 *     case SE_SMTP_FAILED: se_smtp_error() says why; close; stop;
 *     }
 *
 * se_smtp_step() returns SE_SMTP_WRITE whenever output is pending, so the
 * driver always flushes before it reads.  Every wait is bounded by the driver.
 *
 * Session: greeting -> EHLO -> [STARTTLS -> TLS -> EHLO] -> [AUTH] -> IDLE.
 * Transaction from IDLE: MAIL, RCPT..., then DATA + dot-stuffed body, or BDAT
 * with the payload.  With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go
 * in one flight; with CHUNKING (RFC 3030) too the payload follows at once.
 * Recipients are all or nothing: if any RCPT is refused no message is
 * committed (RSET, or the connection is dropped before end of data).
 */
#ifndef SE_SMTP_ENGINE_H
#define SE_SMTP_ENGINE_H

#include <stddef.h>

#include "scalr_email.h"
#include "smtp/reply.h"
#include "util/buf.h"

typedef enum se_smtp_want {
    SE_SMTP_WRITE,
    SE_SMTP_READ,
    SE_SMTP_TLS,
    SE_SMTP_IDLE,
    SE_SMTP_DONE,
    SE_SMTP_FAILED
} se_smtp_want;

/* EHLO capabilities (RFC 5321 4.1.1.1 and the extension RFCs). */
enum {
    SE_CAP_PIPELINING = 1 << 0, /* RFC 2920 */
    SE_CAP_CHUNKING = 1 << 1,   /* RFC 3030 */
    SE_CAP_8BITMIME = 1 << 2,   /* RFC 6152 */
    SE_CAP_SMTPUTF8 = 1 << 3,   /* RFC 6531 */
    SE_CAP_STARTTLS = 1 << 4,   /* RFC 3207 */
    SE_CAP_SIZE = 1 << 5,       /* RFC 1870 */
    SE_CAP_ENHANCED = 1 << 6,   /* RFC 2034 ENHANCEDSTATUSCODES */
    SE_CAP_AUTH = 1 << 7,       /* RFC 4954 */
    SE_CAP_DSN = 1 << 8         /* RFC 3461 */
};
enum {
    SE_AUTH_PLAIN = 1 << 0,
    SE_AUTH_LOGIN = 1 << 1,
    SE_AUTH_XOAUTH2 = 1 << 2,    /* Google / Microsoft */
    SE_AUTH_OAUTHBEARER = 1 << 3 /* RFC 7628 */
};

/* Which mechanism to use (SMTP_AUTH).  AUTO: with a token the OAuth one the
 * server offers (OAUTHBEARER first, the standard), else PLAIN, then LOGIN. */
typedef enum se_smtp_mech {
    SE_MECH_AUTO = 0,
    SE_MECH_PLAIN,
    SE_MECH_LOGIN,
    SE_MECH_XOAUTH2,
    SE_MECH_OAUTHBEARER
} se_smtp_mech;

typedef struct se_smtp_opts {
    const char *helo_name; /* EHLO argument: FQDN or address literal */
    scalr_email_tls tls;   /* STARTTLS required, implicit, or none */
    const char *username;  /* NULL or "": no AUTH */
    const char *password;
    se_smtp_mech mech;
    const char *oauth_token;    /* an access token: OAuth instead of password */
    int peer_is_loopback;       /* AUTH allowed without TLS only then */
    scalr_email_trace_fn trace; /* optional; lines with credentials redacted */
    void *trace_arg;
} se_smtp_opts;

typedef struct se_smtp_envelope {
    const char *mail_from;   /* addr-spec ("" for the null sender) */
    const char *const *rcpt; /* addr-specs */
    size_t n_rcpt;
    int needs_smtputf8; /* MAIL FROM:<..> SMTPUTF8 */
    int is_8bit;        /* MAIL FROM:<..> BODY=8BITMIME */
    /* RFC 3461, only when the server offers DSN (else a trace note): */
    int dsn;                /* ORCPT on every RCPT */
    const char *dsn_notify; /* NOTIFY= value, or NULL */
    const char *dsn_ret;    /* RET= value, or NULL */
    const char *dsn_envid;  /* ENVID= value (xtext), or NULL */
} se_smtp_envelope;

typedef struct se_smtp se_smtp; /* opaque; see engine.c */

/* NULL on out of memory.  Strings in opts are copied. */
se_smtp *se_smtp_new(const se_smtp_opts *opts);
void se_smtp_free(se_smtp *s);

se_smtp_want se_smtp_step(se_smtp *s);

/* Output the driver must write. */
const char *se_smtp_out(se_smtp *s, size_t *len);
void se_smtp_sent(se_smtp *s, size_t n);

/* Input from the server; returns 0, or -1 out of memory. */
int se_smtp_feed(se_smtp *s, const char *data, size_t n);
void se_smtp_eof(se_smtp *s); /* the server closed */

/* The driver finished the TLS handshake it was asked for (or, with
 * SCALR_EMAIL_TLS_IMPLICIT, before the greeting: call it right after
 * se_smtp_new, so the engine knows the channel is encrypted). */
void se_smtp_tls_started(se_smtp *s);

/* Start a transaction; only valid in SE_SMTP_IDLE.  msg/len is the composed
 * message (CRLF line endings, not dot-stuffed); it must stay valid until
 * the engine is IDLE, DONE or FAILED again.  Returns 0, or -1 when not idle
 * (or out of memory).  A refusal decided before anything is sent (EINVAL,
 * ETOOBIG from SIZE, EUNSUPPORTED) also returns 0: the next step is IDLE
 * with se_smtp_last_ok() 0 and the session still reusable.  env is copied. */
int se_smtp_mail(se_smtp *s, const se_smtp_envelope *env, const char *msg, size_t len);

/* A message delivered in pieces (streaming: memory flat whatever its
 * size).  next() gives the next piece of the message (CRLF line endings,
 * not dot-stuffed) in *p and *n, valid until the next call; pieces add up to
 * exactly `size` octets.  It returns 0, or -1 with err filled (an
 * attachment changed or became unreadable): the engine then fails with
 * that error without ever ending the data, so nothing is committed, and
 * the driver must drop the connection.  With CHUNKING each piece goes as
 * one BDAT (the last one LAST), so a message that fits one piece still
 * costs one round trip; with DATA the dot-stuffing state is carried
 * across pieces. */
typedef struct se_smtp_source {
    int (*next)(void *arg, const char **p, size_t *n, scalr_email_error *err);
    void *arg;
    size_t size;
} se_smtp_source;

/* se_smtp_mail with the message from src (copied; src->arg must stay
 * valid until the engine is IDLE, DONE or FAILED again). */
int se_smtp_mail_source(se_smtp *s, const se_smtp_envelope *env, const se_smtp_source *src);

/* Batches (RFC 2920 3.1): while a transaction's end of data is queued but
 * not yet answered, the next message's MAIL, RCPT... and DATA may follow
 * it in the same flight, so a server without CHUNKING still costs about
 * one round trip per message.  se_smtp_can_queue() is 1 exactly then (DATA
 * path, PIPELINING, nothing queued yet): call it before writing
 * se_smtp_out() so both go in one write.  se_smtp_mail_next() queues msg
 * (kept by the caller until that transaction ends); 0 queued, 1 refused
 * before anything was sent (*why filled: EINVAL, ETOOBIG, EUNSUPPORTED),
 * -1 not possible now or out of memory.  The queued message's content is
 * only sent after its own 354, so if the session fails before the first
 * transaction ends, the queued one was not handed over.  When the first
 * ends, the engine goes on with the queued one and se_smtp_take_done()
 * returns 1 once with the first's outcome. */
int se_smtp_can_queue(const se_smtp *s);
int se_smtp_mail_next(se_smtp *s, const se_smtp_envelope *env, const char *msg, size_t len,
                      scalr_email_error *why);
int se_smtp_take_done(se_smtp *s, int *ok, scalr_email_error *e);

/* Send QUIT and wait for its reply (DONE; a server that just closes is fine).
 * Also allowed in FAILED after a clean refusal (greeting 554, EHLO 5xx,
 * STARTTLS missing/refused, AUTH 535...): QUIT is sent and the engine ends
 * FAILED again with the original error.  Otherwise (stream out of step)
 * nothing is sent. */
void se_smtp_quit(se_smtp *s);

/* Probe an idle session (RFC 5321 4.1.1.9): NOOP, then IDLE again on a 2xx;
 * anything else (421, EOF, garbage) fails the session.  Only when
 * se_smtp_reusable(); returns 0, or -1. */
int se_smtp_noop(se_smtp *s);

/* The driver hit a timeout or I/O error: engine goes FAILED with this. */
void se_smtp_abort(se_smtp *s, scalr_email_code code, const char *what);

/* After a transaction: 1 if the last one was accepted (IDLE again). */
int se_smtp_last_ok(const se_smtp *s);
/* Outcome details of the last failure, or of the last accepted message
 * (smtp_code 250 and the server's text). */
const scalr_email_error *se_smtp_error(const se_smtp *s);

/* 1 once the current (or last) transaction's message content has been
 * queued in se_smtp_out(): from then on the driver must assume the server
 * may hold the whole message, and never send it again on another
 * connection ("handed over").  Reset by se_smtp_mail. */
int se_smtp_handed_over(const se_smtp *s);

/* 1 once the current transaction's end of data ("." or the BDAT LAST
 * chunk) has been queued in se_smtp_out(): the write that carries it
 * opens the duplicate window (the queue records that before it). */
int se_smtp_eod_queued(const se_smtp *s);

/* Complete replies parsed so far: a driver restarts its per-reply
 * deadline when this grows (or after it wrote), never while a reply
 * trickles in. */
unsigned long se_smtp_replies(const se_smtp *s);
/* Bytes received that do not yet make a complete reply (for an error that
 * says what arrived before a timeout). */
const char *se_smtp_partial(const se_smtp *s, size_t *len);

/* What the server said about itself. */
unsigned se_smtp_caps(const se_smtp *s);            /* SE_CAP_* bits */
unsigned se_smtp_auth_mechs(const se_smtp *s);      /* SE_AUTH_* bits */
unsigned long se_smtp_size_limit(const se_smtp *s); /* SIZE n, 0: none */
const char *se_smtp_greeting(const se_smtp *s);     /* 220 text */
const char *se_smtp_extensions(const se_smtp *s);   /* EHLO keywords, space-separated */
const char *se_smtp_auth_used(const se_smtp *s);    /* "PLAIN", "LOGIN", or "" */
int se_smtp_authenticated(const se_smtp *s);
/* 1 when an OAuth AUTH failed after the server's error challenge (334 with
 * a JSON status, then 535): the token expired or was revoked, and a fresh
 * one is worth one more try. */
int se_smtp_oauth_expired(const se_smtp *s);
/* The step the session is at, for errors the driver reports ("CONNECT" while
 * waiting for the greeting, "EHLO", "TLS", "AUTH", "MAIL", "RCPT", "DATA",
 * "QUIT"). */
const char *se_smtp_stage(const se_smtp *s);
/* 1 while it is safe to start another transaction on this session
 * (IDLE, nothing half-done, no error that desynchronised the stream). */
int se_smtp_reusable(const se_smtp *s);

#endif
