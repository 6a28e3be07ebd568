/* The inbox's SMTP server session: a state machine over byte buffers, like
 * the client engine (src/smtp/engine.h), with no sockets.  The listener
 * (inbox/server.c) feeds it bytes and writes what it produces:
 *
 *     for (;;) switch (ib_smtpd_step(s)) {
 *     case IB_SMTPD_WRITE:   write ib_smtpd_out(), then ib_smtpd_sent(n); break;
 *     case IB_SMTPD_READ:    read, then ib_smtpd_feed() (ib_smtpd_eof() at EOF,
 *                            ib_smtpd_timeout() when idle too long); break;
 *     case IB_SMTPD_MESSAGE: store ib_smtpd_message(), then ib_smtpd_stored(); break;
 *     case IB_SMTPD_DELAY:   wait ib_smtpd_delay_ms() (a chaos rule); break;
 *     case IB_SMTPD_TLS:     TLS handshake, then ib_smtpd_tls_started(); break;
 *     case IB_SMTPD_CLOSE:   close the connection; stop;
 *     }
 *
 * Replies to pipelined commands (RFC 2920) accumulate and come out in one
 * WRITE once every complete command read so far is answered; MESSAGE, DELAY,
 * TLS and CLOSE are returned only after pending output was written.  Memory
 * per session is bounded: a command line (512 octets, 12800 in AUTH), the
 * message up to the size limit, at most 1000 recipients; the driver feeds at
 * most one read's worth of input per READ. */
#ifndef IB_SMTPD_H
#define IB_SMTPD_H

#include <stddef.h>
#include <stdint.h>

#include "chaos.h"
#include "store.h"

typedef struct ib_smtpd_conf {
    const char *hostname;     /* in the greeting and the EHLO reply */
    size_t max_size;          /* message size limit in octets (RFC 1870 SIZE) */
    int starttls;             /* a certificate is loaded: offer STARTTLS */
    const char *auth;         /* NULL: no AUTH; "any"; "user:pass"; or "token:T"
                                 (XOAUTH2/OAUTHBEARER with access token T) */
    const char *auth_expired; /* an access token answered as expired, or NULL */
    ib_chaos *chaos;          /* fault rules, or NULL */
} ib_smtpd_conf;

typedef enum ib_smtpd_want {
    IB_SMTPD_READ,
    IB_SMTPD_WRITE,
    IB_SMTPD_MESSAGE,
    IB_SMTPD_DELAY,
    IB_SMTPD_TLS,
    IB_SMTPD_CLOSE
} ib_smtpd_want;

typedef struct ib_smtpd ib_smtpd;

/* conf must outlive the session; peer ("127.0.0.1:43210") is copied.
 * in_tls: the connection is already TLS (implicit TLS): no STARTTLS.
 * NULL on out of memory. */
ib_smtpd *ib_smtpd_new(const ib_smtpd_conf *conf, const char *peer, int in_tls);
void ib_smtpd_free(ib_smtpd *s);

ib_smtpd_want ib_smtpd_step(ib_smtpd *s);

/* Input.  0 ok, -1 out of memory (then the session only wants to CLOSE). */
int ib_smtpd_feed(ib_smtpd *s, const void *p, size_t n);
void ib_smtpd_eof(ib_smtpd *s);                   /* the peer closed: no reply, CLOSE */
void ib_smtpd_timeout(ib_smtpd *s);               /* idle: 421 4.4.2, then CLOSE */
int ib_smtpd_between_commands(const ib_smtpd *s); /* not inside DATA or BDAT */
void ib_smtpd_shutdown(ib_smtpd *s);              /* server stopping: 421 4.3.2, CLOSE */

/* Output: the bytes to send; ib_smtpd_sent() drops the first n of them. */
const char *ib_smtpd_out(const ib_smtpd *s, size_t *len);
void ib_smtpd_sent(ib_smtpd *s, size_t n);

/* With IB_SMTPD_MESSAGE: the envelope and the raw message, valid until
 * ib_smtpd_stored().  Store it, then report: id >= 0 stored (250), -1 failed
 * (451, the message is not accepted). */
void ib_smtpd_message(const ib_smtpd *s, ib_envelope *env, const char **raw, size_t *len);
/* A big message is not in memory but in a temporary file: its descriptor
 * (or -1: use ib_smtpd_message's raw) and its length.  The file is the
 * session's. */
int ib_smtpd_message_file(const ib_smtpd *s, uint64_t *len);
void ib_smtpd_stored(ib_smtpd *s, int64_t id);

unsigned ib_smtpd_delay_ms(const ib_smtpd *s);

/* With IB_SMTPD_CLOSE: 1 when the session ended with a reply the client
 * should read (QUIT's 221, a 421), so the driver may wait briefly for the
 * client to close first; 0 to drop the connection at once (the peer left,
 * a chaos disconnect). */
int ib_smtpd_linger(const ib_smtpd *s);
void ib_smtpd_tls_started(ib_smtpd *s);

#endif
