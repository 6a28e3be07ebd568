/* Internals of the inbox's SMTP server session (smtpd.h), shared by
 * smtpd.c (the state machine, command dispatch, the driver's interface),
 * smtpd_addr.c (MAIL and RCPT: paths and parameters), smtpd_auth.c
 * (AUTH PLAIN and LOGIN) and smtpd_data.c (DATA, BDAT, the end of a message).
 * Not for other modules. */
#ifndef IB_SMTPD_INT_H
#define IB_SMTPD_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtpd.h"
#include "util/buf.h"

#define CMD_MAX 512            /* RFC 5321 4.5.3.1.4: command line, CRLF included */
#define AUTH_MAX (512 + 12288) /* RFC 4954 4: AUTH command and responses */
#define RCPT_MAX 1000

typedef enum ib_smtpd_state {
    S_GREETING,
    S_CMD,
    S_REFUSED,        /* greeting was 554: only QUIT (RFC 5321 3.1) */
    S_AUTH_PLAIN,     /* waiting for the PLAIN response */
    S_AUTH_USER,      /* LOGIN: user name */
    S_AUTH_PASS,      /* LOGIN: password */
    S_AUTH_OAUTH,     /* XOAUTH2/OAUTHBEARER: waiting for the initial response */
    S_AUTH_OAUTH_ERR, /* after the error challenge: the client's dummy reply */
    S_DATA,
    S_BDAT,
    S_MSG_END, /* message complete: verdict, then store */
    S_DEAD
} ib_smtpd_state;

enum { DONE, HELD }; /* a command handler's outcome */

struct ib_smtpd {
    const ib_smtpd_conf *conf;
    char *peer;
    ib_smtpd_state st;
    int in_tls;
    se_buf in;
    size_t in_off;
    se_buf out;
    int closing, abrupt, tls_pending, msg_ready, discard_input, skipping, errors;
    unsigned delay_ms, delay_out;
    ib_verdict held;
    int have_held;

    char *helo;
    int esmtp, authed;
    char *login_user; /* AUTH LOGIN between its two steps */
    int oauth_bearer; /* the OAuth exchange is OAUTHBEARER (else XOAUTH2) */

    /* the transaction */
    int in_mail, smtputf8, used_bdat;
    char *mail_from;
    char **rcpt;
    size_t n_rcpt, rcpt_tried;
    se_buf msg;
    int spill_fd; /* past SPILL_AT the message goes to a temporary file */
    uint64_t spill_len;
    uint64_t msg_size;
    int too_big, msg_oom, bol;
    unsigned char prev;
    size_t bare_lf, bare_cr; /* bare line endings seen in the message */
    uint64_t chunk_left;
    int chunk_last;
    char chunk_refusal[96]; /* a refused BDAT's reply, sent after its bytes */
};

#define SPILL_AT (1u << 20) /* in memory up to 1 MiB per session */

static inline int ci_eq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(a, lit, n);
}

static inline int ci_prefix(const char *a, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && !strncasecmp(a, lit, l);
}

/* smtpd.c */
void ib_smtpd_reply(ib_smtpd *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A 5xx for bad input; too many and the session hangs up. */
void ib_smtpd_error(ib_smtpd *s, const char *text);
void ib_smtpd_reset(ib_smtpd *s); /* the transaction, as RSET */
/* The chaos verdict for a stage: DONE, or HELD when a delay comes first. */
int ib_smtpd_chaos(ib_smtpd *s, ib_stage stage, const char *arg, ib_verdict *v);
/* Carry out a reply or a disconnect; 1 if the verdict answered the command. */
int ib_smtpd_chaos_acts(ib_smtpd *s, const ib_verdict *v);

/* smtpd_addr.c */
int ib_smtpd_valid_utf8(const unsigned char *p, size_t n);
size_t ib_smtpd_next_word(const char *a, size_t n, size_t *i, const char **w);
int ib_smtpd_parse_u64(const char *p, size_t n, uint64_t *out);
int ib_smtpd_cmd_mail(ib_smtpd *s, const char *args, size_t n);
int ib_smtpd_cmd_rcpt(ib_smtpd *s, const char *args, size_t n);

/* smtpd_auth.c */
int ib_smtpd_cmd_auth(ib_smtpd *s, const char *args, size_t n);
void ib_smtpd_auth_response(ib_smtpd *s, const char *line, size_t n);

/* smtpd_data.c */
void ib_smtpd_cmd_data(ib_smtpd *s, size_t n);
void ib_smtpd_cmd_bdat(ib_smtpd *s, const char *args, size_t n);
int ib_smtpd_data_input(ib_smtpd *s);
int ib_smtpd_bdat_input(ib_smtpd *s);
int ib_smtpd_msg_end(ib_smtpd *s);

#endif
