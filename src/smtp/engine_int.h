/* Internals of the SMTP client engine, shared by engine.c (session, I/O),
 * ehlo.c (capabilities), auth.c (RFC 4954) and mail.c (the transaction).
 * Not for other modules. */
#ifndef SE_SMTP_ENGINE_INT_H
#define SE_SMTP_ENGINE_INT_H

#include <stdarg.h>

#include "smtp/engine.h"

/* RFC 4954 4: AUTH lines may reach 12288 octets with CRLF. */
#define SE_AUTH_LINE_MAX 12286

typedef enum se_st {
    ST_GREETING, /* waiting for 220 */
    ST_EHLO,     /* EHLO sent */
    ST_STARTTLS, /* STARTTLS sent */
    ST_TLS,      /* the driver does the handshake */
    ST_AUTH,     /* an AUTH exchange is under way (auth_step) */
    ST_IDLE,
    ST_TX,   /* a transaction is under way (tx.*) */
    ST_RSET, /* RSET sent to end a failed transaction */
    ST_NOOP, /* NOOP sent to probe an idle session */
    ST_QUIT, /* QUIT sent */
    ST_DONE,
    ST_FAILED
} se_st;

/* What the next transaction reply answers (see mail.c). */
typedef enum se_txph {
    PH_FRONT, /* MAIL, RCPT..., then DATA / BDAT (and more chunks) */
    PH_BODY,  /* after 354: the body goes out piece by piece */
    PH_DOT,   /* the reply to the end of data */
    PH_LAST   /* the reply to "BDAT 0 LAST" */
} se_txph;

typedef enum se_final {
    FIN_DATA,      /* DATA, 354, body, "." */
    FIN_BDAT_LAST, /* BDAT n LAST + payload */
    FIN_BDAT_MORE  /* BDAT n + payload, then BDAT 0 LAST */
} se_final;

struct se_smtp {
    se_st state;
    se_st after_quit; /* DONE, or FAILED for a QUIT after a failure */

    /* options (copies) */
    char *helo;
    char *user;
    char *pass;
    char *token; /* OAuth access token, or NULL */
    se_smtp_mech mech;
    scalr_email_tls tls;
    int peer_is_loopback;
    scalr_email_trace_fn trace;
    void *trace_arg;

    /* bytes */
    se_buf in, out;
    size_t in_tail; /* bytes after the last LF in `in` */
    int in_ready;   /* `in` may hold a complete reply */
    int eof;
    int out_secret;   /* `out` held credentials: wipe it */
    unsigned pending; /* commands sent whose reply has not come */
    int extra;        /* bytes followed the last awaited reply */
    int idle_told;    /* step() has reported IDLE once */
    /* Replies parsed so far: the driver's per-reply deadline. */
    unsigned long n_replies;

    /* session */
    int tls_active;
    int sync; /* FAILED, but the stream is still in step */
    unsigned caps, mechs;
    unsigned long size_limit;
    se_buf ext;     /* EHLO keywords */
    se_buf offered; /* AUTH mechanisms as advertised */
    se_buf greeting;
    const char *auth_used;
    int auth_step;
    int authenticated;
    int oauth_expired;

    /* transaction */
    struct se_tx {
        char *from;
        char **rcpt;
        size_t n_rcpt;
        int smtputf8, is8bit;
        char *dsn_mail; /* " RET=.. ENVID=.." or "" (RFC 3461) */
        char *notify;   /* NOTIFY value, or NULL */
        int orcpt;
        se_smtp_source src; /* where the message comes from */
        const char *msg;    /* se_smtp_mail's whole message */
        size_t len;
        int msg_given;                      /* the one piece of msg was handed out */
        size_t size;                        /* SIZE= value (RFC 1870) */
        size_t consumed;                    /* octets taken from src */
        int bol, cr;                        /* canonicalisation state across pieces */
        size_t chunks_sent, chunks_replied; /* BDAT commands */
        int all_sent;                       /* the end of the message is queued */
        int pipelining;
        se_final final;
        se_txph phase;
        size_t sent;    /* front commands written: MAIL=0, RCPT 1..n, final n+1 */
        size_t replied; /* front replies read */
        int failed;     /* saved holds the first MAIL/RCPT failure */
        scalr_email_error saved;
    } tx, next; /* next: queued behind tx's end of data (se_smtp_mail_next) */
    int has_next;
    int done_ready, done_ok; /* a transaction finished while another was queued */
    scalr_email_error done_err;
    int last_ok;
    int handed; /* the message's content was queued for writing (see engine.h) */
    int eod;    /* the end of data was queued for writing (see engine.h) */

    scalr_email_error err;
};

/* engine.c */
int se_smtp_cmd(se_smtp *s, const char *shown, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void se_smtp_trace(se_smtp *s, char dir, const char *line, size_t len);
void se_smtp_fail(se_smtp *s, int sync, scalr_email_code code, const char *stage, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
void se_smtp_fail_reply(se_smtp *s, int sync, scalr_email_code code, const char *stage,
                        const se_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void se_smtp_error_reply(scalr_email_error *e, scalr_email_code code, const char *stage,
                         const se_reply *r, const char *what);
void se_smtp_go_idle(se_smtp *s);

/* ehlo.c */
void se_smtp_forget_caps(se_smtp *s);
int se_smtp_parse_ehlo(se_smtp *s, const se_reply *r); /* 0, or -1 failed (ENOMEM) */

/* auth.c */
void se_smtp_auth_start(se_smtp *s);
void se_smtp_auth_reply(se_smtp *s, const se_reply *r);
void se_smtp_wipe(void *p, size_t n);

/* mail.c */
void se_smtp_tx_reply(se_smtp *s, const se_reply *r);
void se_smtp_rset_reply(se_smtp *s, const se_reply *r);
void se_smtp_tx_clear(se_smtp *s);
int se_smtp_tx_fill(se_smtp *s); /* 1: output queued or state changed */
const char *se_smtp_tx_stage(const se_smtp *s);

#endif
