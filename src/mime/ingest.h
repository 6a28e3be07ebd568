/* Reading a message the caller composed (sendmail mode): a state machine
 * over input bytes.  It normalises line endings to CRLF, stops at a line
 * holding only "." when asked to (sendmail without -i), keeps the header
 * fields in memory (capped) and the body in memory up to a limit, then in
 * an unlinked spool file, so a message of any size costs flat memory.  It
 * never touches a socket; feed it bytes in pieces of any size. */
#ifndef SE_INGEST_H
#define SE_INGEST_H

#include <stddef.h>

#include "scalr_email.h"
#include "util/buf.h"

typedef struct se_ingest_opts {
    int dot_ends;          /* a line holding only "." ends the input */
    int header_rcpts;      /* collect To, Cc and Bcc addresses (-t) */
    size_t max_header;     /* cap on the header block; 0: 1 MiB */
    size_t mem_body;       /* body octets kept in memory before spooling; 0: 256 KiB */
    const char *spool_dir; /* where the spool file goes; NULL: $TMPDIR or /tmp */
} se_ingest_opts;

typedef struct se_ifield {
    size_t off, len; /* in head: "Name: value\r\n" with its folds */
    size_t name_len; /* the name, without the colon */
    int removed;     /* Bcc: never sent */
    int non_ascii;   /* has a byte >= 0x80 */
} se_ifield;

typedef struct se_ingest {
    se_ingest_opts o;
    int in_body, ended, finished, cr, dot_held, bol, skipped_first;
    se_buf line; /* the header line being read */
    se_buf head; /* the header fields as read */
    se_ifield *f;
    size_t n_f, cap_f;
    se_buf body; /* the body (or its tail not yet spooled) */
    int fd;      /* spool file, or -1 */
    unsigned long long body_len;
    int head_8bit, body_8bit;
    int has_date, has_msgid, has_from;
    char **rcpt; /* addr-specs from To, Cc, Bcc (header_rcpts) */
    size_t n_rcpt;
    scalr_email_error err; /* the first failure, sticky */
} se_ingest;

void se_ingest_init(se_ingest *r, const se_ingest_opts *opts);
/* Feed input.  0, or -1 with r->err filled (header too big, spool write
 * failed, out of memory).  Once r->ended is set, the rest is ignored. */
int se_ingest_feed(se_ingest *r, const void *data, size_t n);
/* End of input: the last line, the header's fields examined.  0 or -1. */
int se_ingest_finish(se_ingest *r);
void se_ingest_free(se_ingest *r);

/* One address of an address-list field, as found (group names and
 * comments dropped; the display name decoded from quotes). */
typedef struct se_iaddr {
    char *display; /* or NULL */
    char *addr;    /* addr-spec as written (may be empty for "<>") */
} se_iaddr;
/* Parse an RFC 5322 address-list value (folds allowed), leniently: groups,
 * comments, quoted display names.  Returns the count, or -1 out of memory;
 * *out freed with se_iaddr_free. */
long se_ingest_addresses(const char *value, size_t n, se_iaddr **out);
void se_iaddr_free(se_iaddr *a, long n);

/* The header block to send: `add` (complete fields, CRLF-terminated; may be
 * NULL) first, then every field read except Bcc, then the empty line.
 * utf8: the server takes raw UTF-8 (SMTPUTF8); otherwise unstructured
 * fields and display names holding non-ASCII are RFC 2047-encoded, and a
 * non-ASCII local part is EINVAL.  0, or -1 with err filled. */
int se_ingest_header(const se_ingest *r, int utf8, const char *add, se_buf *out,
                     scalr_email_error *err);

/* 1 for a field name whose value se_ingest_header leaves as it is even
 * without SMTPUTF8 (Received, Message-ID, Content-*...): encoding would
 * change its meaning. */
int se_ingest_kept_raw(const char *name, size_t n);

/* Reading the body back, in pieces (restartable with se_ingest_rewind). */
typedef struct se_ibody {
    const se_ingest *r;
    unsigned long long pos;
    char *buf;
} se_ibody;
int se_ingest_rewind(se_ibody *b, const se_ingest *r);
/* Next piece (*n 0 at the end); 0, or -1 with err filled. */
int se_ingest_body_next(se_ibody *b, const char **p, size_t *n, scalr_email_error *err);
void se_ibody_free(se_ibody *b);

#endif
