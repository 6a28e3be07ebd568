/* The message composer: scalr_email_message -> RFC 5322 / MIME bytes. */
#ifndef SE_COMPOSE_H
#define SE_COMPOSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "scalr_email.h"
#include "util/buf.h"

typedef struct se_compose_opts {
    /* For reproducible tests: 0 means "now". */
    time_t now;
    /* For reproducible tests: when non-NULL, fills buf with n "random" bytes
     * instead of OpenSSL's RAND_bytes (boundaries, Message-ID). */
    void (*random)(void *arg, unsigned char *buf, size_t n);
    void *random_arg;
    /* Streaming: attachments given by path and larger than this many bytes
     * are not read now but while sending (se_composed.parts, se_reader).
     * 0: never; everything is in se_composed.data. */
    size_t defer_over;
} se_compose_opts;

/* An attachment whose base64 body is produced while sending: its place in
 * the message, and what the file looked like when the message was sized. */
typedef struct se_compose_part {
    size_t at;      /* offset in data where the base64 goes */
    size_t encoded; /* its length: base64 lines, no final CRLF */
    char *path;
    unsigned long long size, ino, dev;
    long long mtime_sec, mtime_nsec;
} se_compose_part;

typedef struct se_composed {
    se_buf data;     /* the message: headers + body, CRLF line
                        endings, not dot-stuffed, ends with CRLF */
    char *mail_from; /* envelope sender (addr-spec) */
    char **rcpt;     /* envelope recipients: to, cc, bcc (deduplicated,
                        in that order), each an addr-spec */
    size_t n_rcpt;
    int needs_smtputf8;     /* an envelope address is non-ASCII */
    int is_8bit;            /* the data contains bytes >= 0x80 (then BODY=8BITMIME) */
    char message_id[256];   /* "<...@domain>" */
    se_compose_part *parts; /* deferred attachments, in order (defer_over) */
    size_t n_parts;
    size_t size; /* the whole message: data + every part */
    /* RFC 3461, sent only when the server offers DSN: */
    int dsn;          /* any DSN field given: ORCPT on every RCPT */
    char *dsn_notify; /* "SUCCESS,DELAY" or "NEVER", or NULL */
    char *dsn_ret;    /* "FULL" or "HDRS", or NULL */
    char *dsn_envid;  /* xtext-encoded, or NULL */
} se_composed;

/* Validate and compose msg.  default_from is used when msg->sender is NULL
 * (NULL too: ENOTCONFIGURED, stage "CONFIG").  Bad input: EINVAL with a
 * one-line reason naming the field (stage "COMPOSE"); unreadable attachment:
 * EFILE.  On success out must be released with se_composed_free. */
scalr_email_code se_compose(const scalr_email_message *msg, const char *default_from,
                            const se_compose_opts *opts, se_composed *out, scalr_email_error *err);
void se_composed_free(se_composed *c);

/* Append "Date: ...\r\n" for now, local time (RFC 5322 3.3). */
void se_compose_put_date(se_buf *b, time_t now);

/* Reads a composed message in pieces (each attachment block is
 * SE_READER_BLOCK file octets, 1024 base64 lines of 78 octets):
 * the in-memory text as is, each deferred attachment read and
 * base64-encoded block by block, so memory stays flat whatever the file
 * size.  A file whose size, mtime or inode changed since se_compose fails
 * with EFILE (the message would not match its announced size). */
#define SE_READER_BLOCK (57 * 1024) /* RFC 2045 6.8: 57 octets make one 76-char line */

typedef struct se_reader {
    const se_composed *c;
    size_t pos;              /* next octet of c->data */
    size_t part;             /* next part */
    int fd;                  /* the part being read, or -1 */
    unsigned long long left; /* its octets still to read */
    se_buf piece;
} se_reader;

void se_reader_init(se_reader *r, const se_composed *c); /* also restarts */
/* se_smtp_source's next(): arg is the se_reader. */
int se_reader_next(void *arg, const char **p, size_t *n, scalr_email_error *err);
void se_reader_free(se_reader *r);

/* Read every deferred part into data (for callers that need the bytes). */
scalr_email_code se_composed_flatten(se_composed *c, scalr_email_error *err);

#endif
