/* The inbox's message store: SQLite, in memory or in a file (--db).
 * Thread-safe: every function may be called from any thread. */
#ifndef IB_STORE_H
#define IB_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ib_store ib_store;

typedef struct ib_envelope {
    const char *mail_from;   /* MAIL FROM addr-spec ("" for <>) */
    const char *const *rcpt; /* RCPT TO addr-specs */
    size_t n_rcpt;
    const char *helo; /* EHLO argument */
    const char *peer; /* "127.0.0.1:43210" */
    /* Bare line endings in the data (a LF without CR, a CR without LF):
     * stored with the message, shown as a warning. */
    size_t bare_lf, bare_cr;
} ib_envelope;

/* One row of a listing.  Strings owned by the store's callback scope:
 * copy what you keep. */
typedef struct ib_summary {
    int64_t id;
    int64_t created_ms;    /* Unix time in milliseconds */
    size_t size;           /* raw size in octets */
    const char *mail_from; /* envelope sender */
    const char *rcpt;      /* envelope recipients joined by ", " */
    const char *from;      /* From header, decoded to UTF-8 */
    const char *to;        /* To header, decoded */
    const char *subject;   /* Subject, decoded */
    const char *helo;
    int has_attachments;
    size_t bare_lf, bare_cr; /* as in ib_envelope */
    int seen;                /* opened in the UI (or marked read) */
    const char *tags;        /* ",a,b," or "" (tags.h) */
    const char *dkim;        /* the DKIM verdict (dkimcheck.h, JSON), NULL: not made yet */
} ib_summary;

typedef int (*ib_summary_fn)(void *arg, const ib_summary *s); /* nonzero stops */

/* path NULL: in memory.  With a path, ib_store_add returns only after the
 * message is durable (WAL, synchronous=FULL), so a 250 never loses mail. */
int ib_store_open(ib_store **out, const char *path, char *why, size_t whylen);
void ib_store_close(ib_store *st);

/* Store one message; *id_out gets its id.  0 ok, -1 error (why filled). */
int ib_store_add(ib_store *st, const ib_envelope *env, const char *raw, size_t len, int64_t *id_out,
                 char *why, size_t whylen);

/* Store a message that is in a file (fd, len octets, read with pread):
 * copied into the store in pieces, never whole in memory. */
int ib_store_add_file(ib_store *st, const ib_envelope *env, int fd, uint64_t len, int64_t *id_out,
                      char *why, size_t whylen);

/* Newest first.  kind NULL lists everything; "from", "to" or "containing"
 * filters like MailHog's search (case-insensitive substring of the From
 * header or envelope sender / To, Cc or envelope recipients / headers and
 * body); "tag" lists messages with exactly that tag (ASCII case-insensitive),
 * "unread" the unread ones (query unused).  *total gets the number of matches. */
int ib_store_list(ib_store *st, const char *kind, const char *query, int64_t start, int64_t limit,
                  ib_summary_fn fn, void *arg, int64_t *total);

/* The raw message and its summary: *raw is malloc'd.  1 found, 0 not, -1 error. */
int ib_store_get(ib_store *st, int64_t id, char **raw, size_t *len, ib_summary_fn fn, void *arg);

int ib_store_delete(ib_store *st, int64_t id); /* 1 deleted, 0 not found, -1 error */
int ib_store_delete_all(ib_store *st);
int64_t ib_store_count(ib_store *st);
int64_t ib_store_unseen(ib_store *st); /* unread messages, -1 error */

/* Read state and tags (",a,b," from ib_tags_normalize).  Both bump the
 * version.  1 changed, 0 no such message, -1 error. */
int ib_store_set_seen(ib_store *st, int64_t id, int seen);
int ib_store_set_tags(ib_store *st, int64_t id, const char *tags);

/* The DKIM verdict: fn is called when a message is added (in the adding
 * thread, outside every lock) on the whole message held in memory, and its
 * malloc'd result is stored with the message; generation marks verdicts made
 * with these settings (others read back as NULL).  Call before adding. */
typedef char *(*ib_store_check_fn)(const char *raw, size_t len);
void ib_store_set_dkim_check(ib_store *st, ib_store_check_fn fn, int64_t generation);
/* Keep verdicts made later (messages spooled to a file, or stored under
 * another generation), in one transaction.  Does not bump the version.
 * Returns how many messages were found, -1 on error. */
int ib_store_set_dkim(ib_store *st, const int64_t *ids, const char *const *verdicts, size_t n);

/* In memory: keep at most max_bytes of raw messages, dropping the oldest
 * (0: no limit).  Memory and disk are given back after every delete. */
void ib_store_set_cap(ib_store *st, uint64_t max_bytes);
typedef struct ib_store_use {
    uint64_t bytes, cap;             /* raw octets stored; the cap (0: none) */
    uint64_t dropped, dropped_bytes; /* dropped to stay under the cap */
} ib_store_use;
void ib_store_usage(ib_store *st, ib_store_use *u);

/* Increases on every add and delete: the web UI's event stream waits on it. */
uint64_t ib_store_version(ib_store *st);
/* Block until the version differs from `seen` or timeout_ms passes; returns
 * the current version. */
uint64_t ib_store_wait(ib_store *st, uint64_t seen, unsigned timeout_ms);

#endif
