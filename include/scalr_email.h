/*
 * scalr_email.h - send transactional email through an SMTP provider.
 *
 * The whole public API is in this file.  Two ways to send:
 *
 *   1. One call, configured from the SMTP_* environment variables
 *      (the same ones Authentik reads):
 *
 *        scalr_email_error err;
 *        scalr_email_code rc = scalr_email_send(&(scalr_email_message){
 *            .to = SCALR_EMAIL_LIST("user@example.com"),
 *            .subject = "Your invoice is ready",
 *            .body = "Plain-text body here.",
 *            .body_html = "<p>HTML body here.</p>",
 *        }, &err);
 *        if (rc != SCALR_EMAIL_OK) fprintf(stderr, "%s\n", err.message);
 *
 *   2. An explicit client built from a scalr_email_config, for programs that
 *      talk to several providers: scalr_email_client_new() once,
 *      scalr_email_client_send() many times, from any number of threads.
 *
 * Conventions
 *   - Every function returns a scalr_email_code; SCALR_EMAIL_OK is 0.
 *   - Every `err` argument may be NULL.  When given it is always filled:
 *     on failure with the details, on success with the server's final reply
 *     and the Message-ID.
 *   - Strings are UTF-8 and NUL-terminated unless a length is given.
 *   - The library copies what it needs: the caller keeps ownership of every
 *     pointer it passes and may free it as soon as the call returns.
 *   - The library never prints, never exits and never changes the process's
 *     environment or signal handlers.
 *   - Structs are filled with designated initializers; a zero field means
 *     "the default", so new fields never break callers.
 */
#ifndef SCALR_EMAIL_H
#define SCALR_EMAIL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCALR_EMAIL_VERSION "0.1.0"

/* Outcomes.  Each one a caller has to handle differently has its own code. */
typedef enum scalr_email_code {
    SCALR_EMAIL_OK = 0,
    SCALR_EMAIL_ENOTCONFIGURED, /* SMTP_HOST empty, or no sender anywhere */
    SCALR_EMAIL_ECONFIG,        /* configuration present but invalid */
    SCALR_EMAIL_EINVAL,         /* bad message input; nothing was sent */
    SCALR_EMAIL_EFILE,          /* an attachment or input file is unreadable */
    SCALR_EMAIL_EREJECTED,      /* permanent rejection (5xx) */
    SCALR_EMAIL_ETRANSIENT,     /* temporary rejection (4xx); retry later */
    SCALR_EMAIL_ETOOBIG,        /* larger than the server accepts (SIZE, 552) */
    SCALR_EMAIL_EUNSUPPORTED,   /* needs an extension the server lacks
                                   (SMTPUTF8 for a non-ASCII address) */
    SCALR_EMAIL_ECONNECT,       /* no address of the host accepted a connection */
    SCALR_EMAIL_ETLS,           /* TLS refused: STARTTLS missing, handshake,
                                   untrusted certificate, wrong host name */
    SCALR_EMAIL_EINSECURE,      /* credentials would cross an unencrypted
                                   connection to a non-loopback host */
    SCALR_EMAIL_EAUTH,          /* authentication failed or impossible */
    SCALR_EMAIL_ETIMEOUT,       /* a wait exceeded the timeout */
    SCALR_EMAIL_EPROTOCOL,      /* the server broke the SMTP protocol */
    SCALR_EMAIL_EIO,            /* read/write failed, or the server hung up */
    SCALR_EMAIL_ENOMEM,         /* out of memory */
    SCALR_EMAIL_ESTORE,         /* the queue's database cannot be opened,
                                   read or written (corrupt, unwritable,
                                   unreachable, locked past the timeout) */
    SCALR_EMAIL_ENOTFOUND       /* no queued message with that id */
} scalr_email_code;

/* A short, static, English description of a code ("permanent rejection"). */
const char *scalr_email_strerror(scalr_email_code code);

/* Details of an outcome.  Fixed-size buffers: nothing to free. */
typedef struct scalr_email_error {
    scalr_email_code code;
    int smtp_code;         /* the server's reply code (550), or 0 */
    char enhanced[16];     /* RFC 3463 status ("5.1.1"), or "" */
    char stage[16];        /* "CONNECT" "TLS" "EHLO" "AUTH" "MAIL" "RCPT"
                              "DATA" "QUIT" "COMPOSE" "CONFIG", or "" */
    char recipient[320];   /* the recipient the server refused, or "" */
    char server_text[512]; /* the server's reply text, lines joined by " " */
    char message[768];     /* one line for a human, never a password */
    char message_id[256];  /* Message-ID of the message, once composed */
} scalr_email_error;

/* A NULL-terminated list of strings, for .to, .cc and .bcc:
 *   .to = SCALR_EMAIL_LIST("a@example.com", "Bob <b@example.com>") */
#define SCALR_EMAIL_LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

/* An extra header.  Arrays of them end with an entry whose name is NULL. */
typedef struct scalr_email_header {
    const char *name;  /* printable ASCII, no ':' or space */
    const char *value; /* UTF-8; no CR, LF or other control chars */
} scalr_email_header;

/* An attachment.  Arrays of them end with an entry whose path and data are
 * both NULL.  Either `path` (read when sending) or `data`/`size`. */
typedef struct scalr_email_attachment {
    const char *path;         /* file to attach; a large one is read, encoded
                                 and sent in blocks (memory stays flat) and
                                 must not change meanwhile (else EFILE) */
    const void *data;         /* or bytes in memory ... */
    size_t size;              /* ... and their length */
    const char *filename;     /* name shown; default: basename of path */
    const char *content_type; /* default: guessed from the file name */
    /* Added later; zero keeps the default. */
    const char *content_id; /* set: an inline part (Content-ID: <ID>,
                               Content-Disposition: inline) shown by the
                               HTML as <img src="cid:ID">; it goes in a
                               multipart/related with the HTML part.
                               Needs body_html; printable ASCII, no
                               space, '<' or '>' */
} scalr_email_attachment;

/* A message.  Addresses are "user@example.com" or "Name <user@example.com>";
 * display names may be any UTF-8 text.  At least one of to/cc/bcc. */
typedef struct scalr_email_message {
    const char *const *to;                     /* NULL-terminated list (SCALR_EMAIL_LIST) */
    const char *subject;                       /* UTF-8; NULL means empty */
    const char *body;                          /* text/plain, UTF-8; NULL means empty */
    const char *body_html;                     /* optional text/html alternative */
    const char *sender;                        /* optional From: overrides SMTP_FROM */
    const char *const *cc;                     /* optional */
    const char *const *bcc;                    /* optional; envelope only, never a header */
    const char *reply_to;                      /* optional */
    const scalr_email_header *headers;         /* optional */
    const scalr_email_attachment *attachments; /* optional */
    size_t body_len;                           /* length of body, 0: strlen(body) */
    size_t body_html_len;                      /* length of body_html, 0: strlen(body_html) */
    /* Added later; zero keeps the default. */
    const char *calendar;      /* iCalendar text (UTF-8) added as the last
                                  alternative, text/calendar; method=<its
                                  METHOD line> (refused without one); the
                                  library places it, it does not write it */
    const char *envelope_from; /* MAIL FROM (the bounce address) apart from
                                  From; "<>" or "" after setting it: the
                                  null sender; NULL: the client's
                                  return_path, else the From address */
    const char *dsn_notify;    /* RFC 3461: "never", or any of "success",
                                  "failure", "delay" joined by ','; NULL:
                                  the server's default */
    const char *dsn_ret;       /* "full" or "hdrs"; NULL: server default */
    const char *dsn_envid;     /* envelope ID (printable ASCII, at most 100
                                  characters; xtext-encoded on the wire).
                                  With any DSN field every RCPT also gets
                                  ORCPT=rfc822;ADDR (utf-8;ADDR when needed).
                                  DSN fields are sent only when the server
                                  advertises DSN; otherwise the message goes
                                  without them and the trace says so */
} scalr_email_message;

/* How the connection is protected. */
typedef enum scalr_email_tls {
    SCALR_EMAIL_TLS_STARTTLS = 0, /* plain connect, STARTTLS required (587) */
    SCALR_EMAIL_TLS_IMPLICIT,     /* TLS from the first byte (465) */
    SCALR_EMAIL_TLS_NONE          /* no TLS: local catchers only; AUTH is
                                     then refused unless the peer is loopback */
} scalr_email_tls;

/* Called with each line of the SMTP conversation, for -v style logging.
 * dir is 'C' (client to server), 'S' (server to client) or '*' (a note from
 * the library: connected, TLS negotiated).  Credentials are already
 * redacted.  Called from the sending thread. */
typedef void (*scalr_email_trace_fn)(void *arg, char dir, const char *line, size_t len);

/* A client's configuration.  Every string is copied by scalr_email_client_new. */
/* The AUTH mechanism: auto picks OAUTHBEARER, else XOAUTH2 with an OAuth2
 * token source, PLAIN, else LOGIN with a password (whichever is offered). */
typedef enum scalr_email_auth {
    SCALR_EMAIL_AUTH_AUTO = 0,
    SCALR_EMAIL_AUTH_PLAIN,
    SCALR_EMAIL_AUTH_LOGIN,
    SCALR_EMAIL_AUTH_XOAUTH2,
    SCALR_EMAIL_AUTH_OAUTHBEARER
} scalr_email_auth;

typedef struct scalr_email_config {
    const char *host;     /* required */
    unsigned port;        /* 0: 587, or 465 with SCALR_EMAIL_TLS_IMPLICIT */
    const char *username; /* optional; AUTH PLAIN or LOGIN when set */
    const char *password;
    const char *from; /* default sender, "Name <addr>" or "addr" */
    scalr_email_tls tls;
    unsigned timeout_ms;   /* bound on every wait, from its start: connect
                              (per address), TLS handshake, each whole
                              reply however it trickles in; 0: 30000 */
    const char *helo_name; /* 0: this host's FQDN, or its address literal */
    const char *ca_file;   /* extra trust anchors (PEM); 0: OpenSSL's
                              default paths (SSL_CERT_FILE, SSL_CERT_DIR) */
    scalr_email_trace_fn trace;
    void *trace_arg;
    int pool_size;         /* idle connections kept per destination for
                              reuse (see "Connection pool" below); 0: 2;
                              -1: no pooling, one connection per message */
    unsigned pool_idle_ms; /* how long an idle connection is kept; 0: 5000 */
    /* Added later; zero keeps the default. */
    unsigned send_timeout_ms; /* bound on one whole send, from taking a
                                 connection to the reply to the end of
                                 data (for callers inside a request with
                                 their own budget); 0: none, only the
                                 per-wait timeout_ms */
    int pool_max;             /* connections per destination, in use and
                                 idle; a send needing one more waits up to
                                 timeout_ms for one to be released; 0: no cap */
    unsigned pool_probe_ms;   /* a pooled connection idle longer than this
                                 is probed with NOOP before reuse; 0: 2000 */
    const char *return_path;  /* MAIL FROM of every message without its
                                 own envelope_from; "<>": null sender;
                                 NULL: the From address */
    const char *proxy;        /* "socks5://[user:pass@]host:port" (this
                                 host resolves the SMTP host),
                                 "socks5h://..." (the proxy resolves it)
                                 or "http://[user:pass@]host:port"
                                 (CONNECT); NULL: direct.  TLS runs
                                 through it unchanged and is checked
                                 against `host`, never the proxy; AUTH
                                 without TLS is refused through a proxy.
                                 A proxy that refuses: ECONNECT with its
                                 answer; its password is never shown */
    /* OAuth2 sign-in (XOAUTH2, OAUTHBEARER) instead of a password, as the
     * SMTP_AUTH and SMTP_OAUTH_* variables of scalr_email_client_from_env():
     * username names the mailbox; the first token source set is used:
     * oauth_token, oauth_token_cmd (run without a shell, bounded by
     * timeout_ms), or the refresh-token grant at oauth_token_url (https)
     * with oauth_client_id and oauth_refresh_token or
     * oauth_refresh_token_file (rewritten when the endpoint rotates it; see
     * also scalr_email_client_on_refresh_token()).  Checked like the
     * variables (ECONFIG); copied, and wiped when the client is freed. */
    scalr_email_auth auth; /* 0: auto */
    const char *oauth_token;
    const char *oauth_token_cmd;
    const char *oauth_token_url;
    const char *oauth_client_id;
    const char *oauth_client_secret; /* optional */
    const char *oauth_refresh_token;
    const char *oauth_refresh_token_file;
    const char *oauth_scope; /* optional */
} scalr_email_config;

typedef struct scalr_email_client scalr_email_client;

/* Make a client.  Validates the configuration (ECONFIG, ENOTCONFIGURED when
 * host is empty).  *out is set only on success; free it with
 * scalr_email_client_free().  A client may be used by many threads at once. */
scalr_email_code scalr_email_client_new(scalr_email_client **out, const scalr_email_config *cfg,
                                        scalr_email_error *err);

/* Make a client from the SMTP_* environment variables: SMTP_HOST, SMTP_PORT,
 * SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM, SMTP_USE_TLS, SMTP_USE_SSL,
 * SMTP_TIMEOUT, SMTP_HELO_NAME, SMTP_SEND_TIMEOUT (seconds for one whole
 * send; default none), SMTP_POOL_SIZE (idle connections kept per
 * destination, 0 turns pooling off; default 2), SMTP_POOL_IDLE (seconds
 * an idle connection is kept, fractions allowed; default 5), SMTP_POOL_MAX
 * (connections per destination in use and idle; default no cap) and
 * SMTP_POOL_PROBE (seconds of idle after which a reused connection is
 * probed with NOOP first; default 2), SMTP_RETURN_PATH (the bounce
 * address, return_path) and SMTP_PROXY (proxy).  OAuth2 sign-in: SMTP_AUTH
 * (auto, plain, login, xoauth2, oauthbearer) and a token source, in order
 * SMTP_OAUTH_TOKEN, SMTP_OAUTH_TOKEN_CMD, or the refresh-token grant
 * (SMTP_OAUTH_TOKEN_URL, SMTP_OAUTH_CLIENT_ID, SMTP_OAUTH_CLIENT_SECRET,
 * SMTP_OAUTH_REFRESH_TOKEN or SMTP_OAUTH_REFRESH_TOKEN_FILE,
 * SMTP_OAUTH_SCOPE); the token is cached in the client and shared by its
 * threads (README, "OAuth2 sign-in").  Token endpoint errors have stage
 * "OAUTH": EAUTH (refused: invalid_grant...), ETRANSIENT (5xx), ETIMEOUT,
 * ETLS, EPROTOCOL, ECONNECT; a failing token command is ECONFIG.
 * When env_file is not NULL it is read as a dotenv file first; variables
 * already in the environment win over it.  trace/trace_arg may be NULL. */
scalr_email_code scalr_email_client_from_env(scalr_email_client **out, const char *env_file,
                                             scalr_email_trace_fn trace, void *trace_arg,
                                             scalr_email_error *err);

/* Sender profiles (one per tenant): a client from the env file
 * $SCALR_EMAIL_PROFILES/NAME.env (SCALR_EMAIL_PROFILES from the environment
 * or env_file), whose variables win over the platform-wide ones (the
 * environment, then env_file); what it lacks comes from them.  The pool
 * keeps the profile's connections apart from every other profile's.
 * SMTP_ALLOWED_FROM_DOMAINS (comma-separated; subdomains count) makes a
 * send whose envelope sender, From or Sender is elsewhere EINVAL before
 * anything is sent (it applies without profiles too).  ECONFIG for an
 * unknown profile or a name that is not 1-64 of [A-Za-z0-9._-]. */
scalr_email_code scalr_email_client_from_profile(scalr_email_client **out, const char *profile,
                                                 const char *env_file, scalr_email_trace_fn trace,
                                                 void *trace_arg, scalr_email_error *err);

void scalr_email_client_free(scalr_email_client *client);

/* OAuth2 refresh-token rotation: fn(arg, refresh_token) is called when the
 * token endpoint returns a new refresh token (Microsoft rotates them and
 * the old one stops working), so the application can store it; with
 * SMTP_OAUTH_REFRESH_TOKEN_FILE the file is rewritten as well.  Called on
 * the sending thread while the client's token lock is held: keep it short,
 * do not send from it.  The string is valid only during the call and is
 * wiped afterwards.  A client without a refresh grant never calls it.
 * fn NULL removes it.  Set it before sending from several threads. */
typedef void (*scalr_email_refresh_token_fn)(void *arg, const char *refresh_token);
void scalr_email_client_on_refresh_token(scalr_email_client *client,
                                         scalr_email_refresh_token_fn fn, void *arg);

/* Send one message: validate and compose it (EINVAL, EFILE before any
 * connection), take a pooled connection or connect and authenticate,
 * deliver to every recipient or to none, and give the connection back to
 * the pool (or QUIT when pooling is off).  Blocks for at most a few
 * timeouts.
 *
 * Connection pool.  Process-wide and shared by every client and thread;
 * connections are keyed by host, port, TLS mode, user (and password, CA
 * file and EHLO name), so a connection is only reused for the same
 * destination and identity.  At most pool_size idle connections are kept
 * per key (threads that find none open their own), each for at most
 * pool_idle_ms; expired ones are closed when next looked at and at exit
 * (or by scalr_email_pool_close_idle).  A connection is discarded after any
 * timeout, I/O, TLS or protocol error and is never handed out in the middle
 * of a transaction.  Before reuse a zero-timeout poll() detects a server
 * that has closed or spoken (421) meanwhile, costing no round trip; one idle
 * longer than pool_probe_ms is first probed with NOOP (one round trip, its
 * reply awaited for a quarter of timeout_ms, at most 2 s), and a failed
 * probe means a fresh connection, nothing of the message written.  With
 * pool_max, at most that many connections per key exist at once.
 *
 * Never sent twice.  A message is "handed over" once the library has begun
 * writing its content (the bytes after DATA's 354, or the BDAT payload)
 * to the connection: from then on the server may have the whole message.
 * If a reused connection turns out dead (the server closed it, or answered
 * 421) BEFORE the message was handed over, the send is retried once on a
 * fresh connection; after it was handed over it is never retried, and the
 * error is returned (EIO, ETIMEOUT...): the caller cannot know whether it
 * was delivered.
 *
 * fork().  A child never uses, closes politely or QUITs its parent's
 * connections: they are dropped silently (the parent's keep working), and
 * the child opens its own. */
scalr_email_code scalr_email_client_send(scalr_email_client *client, const scalr_email_message *msg,
                                         scalr_email_error *err);

/* Send a message that is already composed (a whole RFC 5322 message:
 * header fields, an empty line, the body) as it is, for passing on a
 * message caught elsewhere.  mail_from is the envelope sender ("" for <>),
 * rcpt a NULL-terminated list of envelope recipients ("addr" or
 * "Name <addr>").  Bare LF and CR line endings become CRLF; the bytes are
 * otherwise sent unchanged.  EINVAL before any connection for a bad
 * address, no recipient, empty data or a NUL octet.  Pooling, retries and
 * "never sent twice" as scalr_email_client_send. */
scalr_email_code scalr_email_client_send_data(scalr_email_client *client, const char *mail_from,
                                              const char *const *rcpt, const char *data, size_t len,
                                              scalr_email_error *err);

/* The seed's send(): scalr_email_client_from_env() + send + free.  The
 * connection stays in the process-wide pool for the next call. */
scalr_email_code scalr_email_send(const scalr_email_message *msg, scalr_email_error *err);

/* QUIT and close every idle pooled connection of this process (also done
 * automatically at exit).  Connections in use are not affected. */
void scalr_email_pool_close_idle(void);

/* Options of a batch; zero fields are defaults. */
typedef struct scalr_email_batch_opts {
    unsigned connections; /* parallel connections (threads); 0: 1 */
    double rate;          /* at most this many messages per second over
                             all connections; 0: no limit */
    unsigned max_tries;   /* tries per message for a 421 or a lost
                             connection before hand-over; 0: 3 */
    /* Called once per message as soon as its outcome is known, from one of
     * the batch's threads, never two at a time; index is into msgs. */
    void (*on_result)(void *arg, size_t index, const scalr_email_error *result);
    void *on_result_arg;
    size_t expected; /* messages known to come (caps the connections); 0: unknown */
    /* Added later; zero keeps the default. */
    const char *env_file; /* for the sender profiles src->profile names, as
                             scalr_email_client_from_profile reads them;
                             NULL: the environment alone */
} scalr_email_batch_opts;

/* Send n messages over up to opts->connections pooled connections.  On
 * each connection the next message's MAIL, RCPT and DATA follow the
 * previous message's end of data in the same write (PIPELINING), so even
 * a server without CHUNKING costs about one round trip per message.  One
 * message's refusal does not stop the others.  A 421 or a connection
 * failure is retried with backoff (100 ms, doubling) on another connection,
 * up to max_tries, but only for a message not yet handed over (see above):
 * no message is ever sent twice.  results (may be NULL) gets one outcome
 * per message, as scalr_email_client_send would have filled err.  Returns
 * OK when every message was accepted; otherwise the code of the first
 * message (by index) that failed, with err saying how many failed. */
scalr_email_code scalr_email_client_send_batch(scalr_email_client *client,
                                               const scalr_email_message *msgs, size_t n,
                                               const scalr_email_batch_opts *opts,
                                               scalr_email_error *results, scalr_email_error *err);

/* Where a stream of messages comes from.  next() fills *msg with message
 * number index (0, 1, 2, ...) and returns 1, or returns 0 at the end; the
 * message's strings must stay valid until release() is called for that
 * index (right after it is composed; release may be NULL).  next,
 * release and opts->on_result are called one at a time, never
 * concurrently with one another, from the batch's threads, so the three
 * may share state without a lock of their own. */
typedef struct scalr_email_source {
    int (*next)(void *arg, size_t index, const scalr_email_message **msg);
    void (*release)(void *arg, size_t index, const scalr_email_message *msg);
    void *arg;
    /* Added later; NULL keeps the default.  The sender profile of the
     * message next() just gave (called right after it, under the same
     * one-at-a-time rule; the name stays valid until release), or NULL for
     * the batch's client.  A profile's client is made once per batch, the
     * first time a message names it (scalr_email_client_from_profile with
     * opts->env_file and the batch client's trace), and kept for the rest:
     * its messages go on its own connections (never one made for another
     * profile), with its From, allowed domains and DKIM keys.  A profile
     * that cannot be made (unknown, bad key: ECONFIG) fails only the
     * messages naming it; at most 1024 profiles per batch. */
    const char *(*profile)(void *arg, size_t index, const scalr_email_message *msg);
} scalr_email_source;

/* scalr_email_client_send_batch for messages read one at a time: at most
 * about two messages per connection are in memory, however many the
 * source yields; each outcome goes to opts->on_result with its index.
 * client may be NULL when src->profile is set (a platform without SMTP of
 * its own): a message naming no profile then fails with ENOTCONFIGURED.
 * Returns OK when every message was accepted; otherwise the code of the
 * first failure (by index), err saying how many failed. */
scalr_email_code scalr_email_client_send_stream(scalr_email_client *client,
                                                const scalr_email_source *src,
                                                const scalr_email_batch_opts *opts,
                                                scalr_email_error *err);

/* Compose msg into the exact bytes that would be sent (CRLF line endings,
 * not dot-stuffed) without sending anything.  default_from is used when
 * msg->sender is NULL.  On success *out is malloc'd and the caller frees it. */
scalr_email_code scalr_email_compose(const scalr_email_message *msg, const char *default_from,
                                     char **out, size_t *out_len, scalr_email_error *err);

/* The exact bytes client would send for msg, sending nothing: composed
 * with the client's From and return path, refused outside its allowed
 * domains and DKIM-signed with its keys, as scalr_email_client_send does
 * (the same errors).  The signature's t= is now, so a later send of the
 * same message carries another signature.  *out is malloc'd. */
scalr_email_code scalr_email_client_compose(scalr_email_client *client,
                                            const scalr_email_message *msg, char **out,
                                            size_t *out_len, scalr_email_error *err);

/* The same from the configuration, without a client and without needing
 * SMTP_HOST (a preview: `send --print`, Python compose()): SMTP_FROM,
 * SMTP_RETURN_PATH, SMTP_ALLOWED_FROM_DOMAINS and SMTP_DKIM_* from the
 * environment and env_file (NULL: none), under the sender profile's
 * ($SCALR_EMAIL_PROFILES/NAME.env; NULL: none).  ECONFIG for an unknown
 * profile or an unusable key. */
scalr_email_code scalr_email_compose_configured(const scalr_email_message *msg, const char *profile,
                                                const char *env_file, char **out, size_t *out_len,
                                                scalr_email_error *err);

/* What scalr_email_client_check() found. */
typedef struct scalr_email_report {
    char greeting[512];   /* the server's 220 text */
    char tls_version[32]; /* "TLSv1.3", or "" without TLS */
    char tls_cipher[64];
    int cert_verified;       /* 1: chain and host name verified */
    char cert_subject[256];  /* the server certificate's subject */
    char extensions[1024];   /* EHLO keywords after TLS, space-separated */
    int auth_attempted;      /* 1 if credentials were configured */
    int auth_ok;             /* 1 if the server accepted them */
    char auth_mechanism[32]; /* "PLAIN", "LOGIN", "XOAUTH2" or "OAUTHBEARER" */
    int oauth_attempted;     /* 1 if an OAuth2 access token was offered */
    /* Where the access token came from: "fixed" (SMTP_OAUTH_TOKEN),
     * "cached" (still fresh in memory), "fetched" (command or refresh grant
     * now), "refreshed" (fetched again after the server said it expired),
     * "failed", or "" without OAuth2. */
    char oauth_token[16];
} scalr_email_report;

/* Connect, negotiate TLS, authenticate and QUIT, sending no message.
 * report is filled as far as the session got, also on failure. */
scalr_email_code scalr_email_client_check(scalr_email_client *client, scalr_email_report *report,
                                          scalr_email_error *err);

/* Read one configuration variable the way scalr_email_client_from_env
 * does: the environment first (empty counts as unset), then env_file when
 * not NULL.  *value is malloc'd, or NULL when unset; the caller frees it.
 * ECONFIG when env_file is unreadable or malformed. */
scalr_email_code scalr_email_config_get(const char *env_file, const char *name, char **value,
                                        scalr_email_error *err);

/* ------------------------------------------------------------------------
 * Messages the caller composed (sendmail mode, `scalr-email sendmail`).
 * The bytes are kept as they are (the message may be signed): line endings
 * become CRLF, the sent copy has no Bcc field, and Date, Message-ID and
 * From are added when missing.  Raw UTF-8 in header fields goes as it is
 * when the server offers SMTPUTF8; otherwise unstructured fields and
 * display names are RFC 2047-encoded, and only a non-ASCII local part is
 * refused (EINVAL, nothing sent).  An 8-bit message goes with
 * BODY=8BITMIME.  The body is held in memory up to 256 KiB, beyond that
 * in an unlinked file in $TMPDIR (or /tmp): memory stays flat whatever
 * the message size.
 * ---------------------------------------------------------------------- */
typedef struct scalr_email_raw scalr_email_raw;

typedef struct scalr_email_raw_opts {
    int dot_ends;          /* a line holding only "." ends the input
                              (sendmail without -i / -oi) */
    int header_recipients; /* collect To, Cc and Bcc addresses (-t) */
    const char *full_name; /* display name of an added From (-F); NULL:
                              the one in the configured sender */
    size_t max_header;     /* cap on the header block; 0: 1 MiB */
} scalr_email_raw_opts;

/* Start reading a message.  *out is freed with scalr_email_raw_free. */
scalr_email_code scalr_email_raw_new(scalr_email_raw **out, const scalr_email_raw_opts *opts,
                                     scalr_email_error *err);
/* Feed the next bytes (any split).  *ended (may be NULL) becomes 1 once a
 * "." line ended the message (dot_ends): stop feeding then.  EINVAL for
 * a header over the cap, EFILE when the spool cannot be written. */
scalr_email_code scalr_email_raw_feed(scalr_email_raw *raw, const void *data, size_t n, int *ended,
                                      scalr_email_error *err);
/* The end of the input; the header is examined.  Called by the send and
 * enqueue functions when the caller has not. */
scalr_email_code scalr_email_raw_finish(scalr_email_raw *raw, scalr_email_error *err);
/* The recipients of To, Cc and Bcc (header_recipients), addr-specs in
 * order, de-duplicated, as written (not validated).  Valid until
 * scalr_email_raw_free. */
size_t scalr_email_raw_recipients(scalr_email_raw *raw, const char *const **list);
void scalr_email_raw_free(scalr_email_raw *raw);

/* Send raw to rcpt (NULL-terminated addr-specs, at least one).  mail_from
 * is the envelope sender: an addr-spec, "" for the null sender <>, or NULL
 * for the configured sender's address (none configured: the message's
 * From address).  An added From uses mail_from (else
 * the configured sender) with the full name.  Bad addresses: EINVAL before
 * anything is sent.  Otherwise as scalr_email_client_send. */
scalr_email_code scalr_email_client_send_raw(scalr_email_client *client, scalr_email_raw *raw,
                                             const char *mail_from, const char *const *rcpt,
                                             scalr_email_error *err);

/* ------------------------------------------------------------------------
 * Domain checks (`scalr-email doctor`): the sending domain's SPF, DKIM,
 * DMARC and MX records, judged against the provider and key you send
 * with.  Each finding says pass/warn/fail, why in one line, and, when a
 * record is missing or wrong, the record to publish. */

typedef enum scalr_email_check_status {
    SCALR_EMAIL_CHECK_PASS,
    SCALR_EMAIL_CHECK_WARN,
    SCALR_EMAIL_CHECK_FAIL,
} scalr_email_check_status;

typedef struct scalr_email_finding {
    char name[8]; /* "spf", "dkim", "dmarc", "mx" */
    scalr_email_check_status status;
    char why[1024];
    int has_fix; /* then publish fix_name fix_type fix_value */
    char fix_name[300];
    char fix_type[8]; /* "TXT" or "MX" */
    char fix_value[2048];
} scalr_email_finding;

#define SCALR_EMAIL_DOCTOR_CHECKS 4

typedef struct scalr_email_doctor_opts {
    const char *smtp_host;     /* names the provider (SES, Postmark, ...); NULL: unknown */
    const char *dkim_selector; /* NULL: the DKIM check only says who signs */
    const char *dkim_domain;   /* NULL: the checked domain */
    const char *dkim_key_file; /* PEM private key to compare the record with; NULL: none */
    const char *dns_server;    /* "HOST:PORT" (IPv4); NULL: /etc/resolv.conf */
    int timeout_s;             /* per DNS query; 0: 5.  The whole run: six times it */
} scalr_email_doctor_opts;

/* Check domain (UTF-8 or A-labels).  Fills out[0..3] (spf, dkim, dmarc,
 * mx) and returns OK whatever the findings.  EINVAL: not a domain name;
 * EFILE: the key file unreadable or not an RSA/Ed25519 key; ECONFIG: a
 * malformed dns_server; ETRANSIENT: DNS did not answer (timeout, refused,
 * SERVFAIL), the message names the query and the server. */
scalr_email_code scalr_email_doctor(const char *domain, const scalr_email_doctor_opts *opts,
                                    scalr_email_finding out[SCALR_EMAIL_DOCTOR_CHECKS],
                                    scalr_email_error *err);

/* ------------------------------------------------------------------------
 * The durable queue.  Messages are composed once at enqueue (Message-ID
 * and Date fixed then) and stored with their envelope, so every retry is
 * byte-identical; workers (scalr_email_queue_work, `scalr-email queue
 * work`) send them.  The store is named by a URL: "sqlite:PATH" (one host,
 * any number of worker processes) or "postgresql://..." (several
 * machines); NULL means $SCALR_EMAIL_QUEUE, else
 * "sqlite:scalr-email-queue.db".  The tables are a public contract
 * (docs/queue-schema.md).  Delivery is at-least-once: the only duplicate
 * window is one message per connection, from writing its end of data until
 * its "sent" mark is durable.
 * ---------------------------------------------------------------------- */
typedef struct scalr_email_queue scalr_email_queue;

typedef enum scalr_email_lane {
    SCALR_EMAIL_LANE_TRANSACTIONAL = 0, /* always claimed first */
    SCALR_EMAIL_LANE_BULK
} scalr_email_lane;

/* Open (creating or migrating the schema).  ECONFIG for a bad URL,
 * ESTORE when the database cannot be used.  One handle per thread. */
scalr_email_code scalr_email_queue_open(scalr_email_queue **out, const char *url,
                                        scalr_email_error *err);
void scalr_email_queue_close(scalr_email_queue *q);

/* Options of one enqueued message; zero fields are defaults. */
typedef struct scalr_email_enqueue_opts {
    long long send_at_ms;        /* not before this (ms since the epoch); 0: now */
    scalr_email_lane lane;       /* 0: transactional */
    const char *tenant;          /* fairness key inside the lane; NULL: "" */
    const char *idempotency_key; /* same key again: the existing id, nothing new */
    long long expire_in_ms;      /* give up after this long; 0: 24 h */
    unsigned max_attempts;       /* 0: the worker's default (20) */
    const char *provider;        /* NULL: the worker's own configuration */
    /* A sender profile (scalr_email_client_from_profile): the message is
     * composed with the profile's SMTP_FROM as default sender, checked
     * against its SMTP_ALLOWED_FROM_DOMAINS (EINVAL) and signed with its
     * DKIM key now; a worker sends it with that profile's client.  The
     * tenant is the profile: tenant NULL means the profile, another tenant
     * is EINVAL.  An unknown profile, a bad key: ECONFIG.  Nothing is
     * stored on any error.  NULL: none (the worker's own client). */
    const char *profile;
    const char *env_file; /* the platform configuration under the profile; NULL: the environment */
} scalr_email_enqueue_opts;

/* Validate and compose msg exactly as scalr_email_client_send would
 * (EINVAL, EFILE, ENOTCONFIGURED: nothing stored), then store it durably.
 * Whether it carries List-Unsubscribe is stored with it (for
 * scalr_email_queue_unsubscribe_missing).
 * The envelope sender (envelope_from) is kept; DSN fields are not, so a
 * message with any of them is refused (EINVAL).
 * default_from is used when msg->sender is NULL.  *id gets the queue id;
 * *existed (may be NULL) is 1 when the idempotency key was already known. */
scalr_email_code scalr_email_queue_add(scalr_email_queue *q, const scalr_email_message *msg,
                                       const char *default_from,
                                       const scalr_email_enqueue_opts *opts, long long *id,
                                       int *existed, scalr_email_error *err);

/* Store raw in the queue instead (sendmail mode, see scalr_email_raw_new): as
 * scalr_email_queue_add, default_from standing for the configured sender (with opts->profile: the
 * profile's SMTP_FROM, allowed domains and DKIM key).  The server is not
 * known yet, so non-ASCII header fields are always RFC 2047-encoded, and
 * the message is read into memory to be stored. */
scalr_email_code scalr_email_queue_add_raw(scalr_email_queue *q, scalr_email_raw *raw,
                                           const char *mail_from, const char *const *rcpt,
                                           const char *default_from,
                                           const scalr_email_enqueue_opts *opts, long long *id,
                                           int *existed, scalr_email_error *err);

/* Several adds in one transaction (a file of messages): they become
 * durable, and visible to workers, together at commit; rollback drops
 * them all.  Without begin, each add is its own transaction. */
scalr_email_code scalr_email_queue_begin(scalr_email_queue *q, scalr_email_error *err);
scalr_email_code scalr_email_queue_commit(scalr_email_queue *q, scalr_email_error *err);
void scalr_email_queue_rollback(scalr_email_queue *q);

/* One row, as status/list/show report it.  Strings live until the
 * callback returns. */
typedef struct scalr_email_queue_item {
    long long id;
    const char *state; /* queued leased sent failed expired cancelled held unknown */
    const char *lane, *tenant, *provider, *idempotency_key; /* key may be NULL */
    const char *mail_from;
    const char *rcpt_to; /* recipients separated by "\n" */
    const char *message_id;
    long long size;
    int attempts, max_attempts; /* max_attempts 0: worker default */
    long long created_at, run_at, expire_at, updated_at, finished_at; /* ms; 0: none */
    const char *lease_owner;                                          /* or NULL */
    long long lease_until;
    const char *last_error; /* or NULL */
    const char *profile;    /* the sender profile, "" when none */
} scalr_email_queue_item;

typedef struct scalr_email_queue_attempt {
    int n;
    long long at;
    const char *worker, *outcome, *stage;
    int smtp_code;
    const char *enhanced, *recipient, *server_text, *message;
} scalr_email_queue_attempt;

typedef struct scalr_email_queue_status {
    long long queued, leased, sent, failed, expired, cancelled, held, unknown;
    long long oldest_queued_ms; /* age of the oldest queued message; 0: none */
    long long next_run_at;      /* earliest run_at of a queued message; 0: none */
    long long sent_last_minute; /* for the send rate */
    long long now;              /* the database's clock */
} scalr_email_queue_status;

scalr_email_code scalr_email_queue_get_status(scalr_email_queue *q, scalr_email_queue_status *st,
                                              scalr_email_error *err);
/* Held providers, each with its reason (for `queue status`). */
scalr_email_code scalr_email_queue_providers(scalr_email_queue *q,
                                             void (*fn)(void *arg, const char *provider, int held,
                                                        long long paused_until, const char *reason),
                                             void *arg, scalr_email_error *err);
/* Sender profiles that wait: held (a fault of the profile's own server or
 * configuration: auth, TLS, a bad key; until released) or paused until
 * paused_until (it throttled), each with its reason.  Other profiles keep
 * sending. */
scalr_email_code scalr_email_queue_profiles(scalr_email_queue *q,
                                            void (*fn)(void *arg, const char *profile, int held,
                                                       long long paused_until, const char *reason),
                                            void *arg, scalr_email_error *err);
/* Per tenant, bulk-lane messages waiting to be sent (queued, leased, held)
 * without List-Unsubscribe (what Gmail and Yahoo penalise); tenants with
 * none are not reported.  Messages enqueued before the queue recorded it
 * are not counted. */
scalr_email_code scalr_email_queue_unsubscribe_missing(scalr_email_queue *q,
                                                       void (*fn)(void *arg, const char *tenant,
                                                                  long long count),
                                                       void *arg, scalr_email_error *err);
/* Let a held or paused profile send again (ENOTFOUND when it is neither).
 * scalr_email_queue_release(q, 0, ...) releases every profile too. */
scalr_email_code scalr_email_queue_release_profile(scalr_email_queue *q, const char *profile,
                                                   scalr_email_error *err);
/* How many rows per state, lane and tenant (for metrics). */
scalr_email_code scalr_email_queue_depth(scalr_email_queue *q,
                                         void (*fn)(void *arg, const char *state, const char *lane,
                                                    const char *tenant, long long count),
                                         void *arg, scalr_email_error *err);
/* Rows in state (NULL: all), oldest first, at most limit (0: all). */
scalr_email_code scalr_email_queue_list(scalr_email_queue *q, const char *state, size_t limit,
                                        void (*fn)(void *arg, const scalr_email_queue_item *it),
                                        void *arg, scalr_email_error *err);
/* One row and every attempt; ENOTFOUND when there is none. */
scalr_email_code scalr_email_queue_show(scalr_email_queue *q, long long id,
                                        void (*item)(void *arg, const scalr_email_queue_item *it),
                                        void (*attempt)(void *arg,
                                                        const scalr_email_queue_attempt *a),
                                        void *arg, scalr_email_error *err);

/* Operator actions.  id > 0 acts on one row (ENOTFOUND, or EINVAL when its
 * state does not allow it); id == 0 acts on every row in state (retry,
 * purge) or on all (hold, release).  *changed (may be NULL) counts rows.
 *   retry:   failed/expired/held/unknown/queued -> queued, due now
 *   cancel:  queued/held/unknown -> cancelled (a leased row cannot be)
 *   hold:    queued -> held;  release: held -> queued (and clears held
 *            providers when id == 0)
 *   purge:   delete terminal rows in state finished before older_than_ms ago */
scalr_email_code scalr_email_queue_retry(scalr_email_queue *q, long long id, const char *state,
                                         long long *changed, scalr_email_error *err);
scalr_email_code scalr_email_queue_cancel(scalr_email_queue *q, long long id,
                                          scalr_email_error *err);
scalr_email_code scalr_email_queue_hold(scalr_email_queue *q, long long id, long long *changed,
                                        scalr_email_error *err);
scalr_email_code scalr_email_queue_release(scalr_email_queue *q, long long id, long long *changed,
                                           scalr_email_error *err);
scalr_email_code scalr_email_queue_purge(scalr_email_queue *q, const char *state,
                                         long long older_than_ms, long long *removed,
                                         scalr_email_error *err);

/* A worker's options; zero fields are defaults. */
typedef struct scalr_email_work_opts {
    unsigned connections;      /* parallel connections; 0: 1 */
    double rate;               /* messages per second at the send; 0: none */
    int drain;                 /* return once nothing is queued, leased or due */
    long long backoff_base_ms; /* 0: 30 s; doubles per attempt, with jitter */
    long long backoff_cap_ms;  /* 0: 1 h */
    unsigned max_attempts;     /* 0: 20 */
    int on_ambiguous_hold;     /* 1: an ambiguous message goes to unknown */
    long long lease_ms;        /* 0: 60 s */
    long long retention_ms;    /* terminal rows kept; 0: 7 days */
    long long data_timeout_ms; /* wait for the reply to the end of data; 0: 600 s */
    long long expire_ms;       /* default age limit of a message; 0: 24 h */
    const char *provider;      /* serve this provider's messages; NULL: "" */
    /* Called for each outcome (one line, e.g. for logs), never two at a time. */
    /* outcome: sent retry failed expired held unknown released; age_ms:
     * from enqueue to this outcome. */
    void (*on_event)(void *arg, long long id, const char *outcome, long long age_ms,
                     const scalr_email_error *e);
    void *arg;
    /* Rows with a sender profile are sent with a client from
     * scalr_email_client_from_profile(profile, env_file, trace, trace_arg),
     * made once per profile for the worker's life (its own pooled
     * connections).  The profile's SCALR_EMAIL_QUEUE_RATE (messages per
     * second, over the platform's; none: no limit) caps it on top of
     * rate: a row over its rate goes back to the queue uncounted
     * ("deferred", no event) and the profile is passed over in claims
     * until its next slot, so other tenants never wait behind it.
     * Throttling replies and faults (auth, TLS, configuration) of a
     * profile pause or hold that profile only. */
    const char *env_file;
    scalr_email_trace_fn trace;
    void *trace_arg;
} scalr_email_work_opts;

/* Send queued messages through client until scalr_email_queue_stop (or,
 * with drain, until nothing is left).  Returns OK after a graceful stop. */
scalr_email_code scalr_email_queue_work(scalr_email_queue *q, scalr_email_client *client,
                                        const scalr_email_work_opts *opts, scalr_email_error *err);
/* Async-signal-safe.  immediate 0: stop claiming, finish what is in flight,
 * give back unclaimed leases; 1: give back every lease and return now. */
void scalr_email_queue_stop(scalr_email_queue *q, int immediate);

/* ------------------------------------------------------------------------
 * Templates.  A template is a folder ROOT/NAME/ holding subject.txt,
 * body.html and optionally body.txt, written in Mustache (partials from
 * ROOT/_partials/, layouts from ROOT/_layouts/ through {{< layout}} and
 * {{$block}}).  Escaping follows the part, not the tag: in body.html {{x}}
 * escapes & < > " ', and {{{x}}} / {{& x}} are allowed only there; the
 * subject and the text part are never escaped.  A value placed in href or
 * src must be an http, https or mailto URL; a value inside an unquoted
 * attribute, a tag, <script>, <style>, an on* or style attribute is
 * refused.  A subject containing CR, LF or NUL is refused.  Without
 * body.txt the text part is derived from the HTML.  A locale "fr-CA" picks
 * body.fr-CA.html, then body.fr.html, then body.html (the same for every
 * file, partials and layouts included).  Partials and layouts resolve only
 * inside ROOT (no "..", no absolute paths, no symbolic links out).
 * ---------------------------------------------------------------------- */
typedef struct scalr_email_template_opts {
    const char *root;   /* the templates folder; NULL: $SCALR_EMAIL_TEMPLATES,
                           else "./templates" */
    const char *locale; /* "fr-CA", "fr"; NULL: the default files */
    int allow_missing;  /* 0: a variable missing from the data fails the
                           render (EINVAL, naming it, its file and line);
                           1: it renders empty.  Extra data is always fine. */
} scalr_email_template_opts;

/* A rendered template; free with scalr_email_rendered_free().  Fill a
 * message with .subject = r.subject, .body = r.body, .body_len =
 * r.body_len, .body_html = r.body_html, .body_html_len = r.body_html_len. */
typedef struct scalr_email_rendered {
    char *subject;   /* one line, never HTML-escaped */
    char *body;      /* text/plain: body.txt, or derived from the HTML */
    char *body_html; /* text/html */
    size_t body_len, body_html_len;
} scalr_email_rendered;

/* Render template name with data_json (a JSON object, data_len bytes; NULL
 * means {}).  Sends and prints nothing.  EINVAL: bad name, locale or data,
 * a template error, a missing variable, an unsafe URL, a header injection or
 * a path leaving the root (err->message says which, with file and line);
 * EFILE: no such template or folder, or an unreadable file. */
scalr_email_code scalr_email_template_render(const char *name, const char *data_json,
                                             size_t data_len, const scalr_email_template_opts *opts,
                                             scalr_email_rendered *out, scalr_email_error *err);
void scalr_email_rendered_free(scalr_email_rendered *r);

/* Render one template string (no partials): html 1 applies the HTML
 * part's rules, 0 the text part's.  *out is malloc'd, NUL-terminated. */
scalr_email_code scalr_email_template_render_string(const char *tmpl, size_t len,
                                                    const char *data_json, size_t data_len,
                                                    int html, int allow_missing, char **out,
                                                    size_t *out_len, scalr_email_error *err);

/* scalr_email_compose with a fixed Date (2026-01-01 00:00:00 +0000),
 * Message-ID and MIME boundaries: the same message gives the same bytes
 * (golden files, `scalr-email template render --fixed`). */
scalr_email_code scalr_email_compose_fixed(const scalr_email_message *msg, const char *default_from,
                                           char **out, size_t *out_len, scalr_email_error *err);
/* One-click unsubscribe for bulk mail (RFC 8058): fills out with the
 * List-Unsubscribe value "<URL>" or "<URL>, <mailto:ADDR>" (mailto may be
 * NULL).  url must be https://; EINVAL otherwise.  Send it with the header
 * "List-Unsubscribe-Post: List-Unsubscribe=One-Click"; a signing client
 * DKIM-signs both.  out: 1024 bytes are enough. */
scalr_email_code scalr_email_unsubscribe_value(const char *url, const char *mailto, char *out,
                                               size_t outlen, scalr_email_error *err);

/* ------------------------------------------------------------------------
 * DKIM (RFC 6376, RFC 8463).  A client made by scalr_email_client_from_env
 * signs every message when SMTP_DKIM_DOMAIN, SMTP_DKIM_SELECTOR and
 * SMTP_DKIM_KEY_FILE are set (a second signature with SMTP_DKIM_SELECTOR2 +
 * SMTP_DKIM_KEY_FILE2): rsa-sha256 or ed25519-sha256 by the key's type,
 * c=relaxed/relaxed, t=, never l=, From/To/Cc/Subject/Date/Message-ID/
 * Reply-To oversigned.  An unreadable key is ECONFIG when the client is
 * made; a From domain that is not d= (or under it) is ECONFIG before
 * anything is sent, unless SMTP_DKIM_ALLOW_DOMAIN_MISMATCH=true. */

/* Use the key in key_file (PEM PKCS#8/PKCS#1, or an Ed25519 seed in base64)
 * for client's sends; key_file2/selector2 may be NULL (else a second
 * signature).  Replaces any signing set before; domain NULL turns it off.
 * *weak (may be NULL) is set for RSA under 2048 bits. */
scalr_email_code scalr_email_client_dkim(scalr_email_client *client, const char *domain,
                                         const char *selector, const char *key_file,
                                         const char *selector2, const char *key_file2,
                                         int allow_mismatch, int *weak, scalr_email_error *err);
/* Nonzero when client's configuration had an RSA key under 2048 bits. */
int scalr_email_client_dkim_weak(const scalr_email_client *client);

/* Sign the messages q's scalr_email_queue_add stores from now on with the
 * SMTP_DKIM_* settings (env_file as in scalr_email_client_from_env); none
 * set: not signed.  Signed at enqueue, so every retry sends the same bytes. */
scalr_email_code scalr_email_queue_dkim_from_env(scalr_email_queue *q, const char *env_file,
                                                 scalr_email_error *err);

/* Make a key (ed25519 nonzero: Ed25519, else RSA-2048), write it to path as
 * PEM PKCS#8 with mode 0600 (an existing file is not replaced: EFILE), and
 * return in *record (malloc'd) the TXT record value to publish at
 * selector._domainkey.domain. */
scalr_email_code scalr_email_dkim_keygen(const char *path, const char *domain, const char *selector,
                                         int ed25519, char **record, scalr_email_error *err);

/* One signature's verdict. */
typedef struct scalr_email_dkim_result {
    char domain[256], selector[64], alg[32];
    int ok;
    char why[160]; /* why not, when !ok */
} scalr_email_dkim_result;

/* Returns the TXT record (malloc'd) for a name "selector._domainkey.domain",
 * or NULL. */
typedef char *(*scalr_email_dkim_lookup_fn)(void *arg, const char *name);

/* Verify every DKIM-Signature of the message msg[0..len) (CRLF or LF line
 * ends).  Returns how many there are (res holds the first max), -1 when out
 * of memory. */
int scalr_email_dkim_verify(const char *msg, size_t len, scalr_email_dkim_lookup_fn lookup,
                            void *arg, scalr_email_dkim_result *res, size_t max);

#ifdef __cplusplus
}
#endif
#endif
