/* The inbox's message store (store.h): SQLite, in memory or in a file.
 *
 * Two tables: `messages` holds the small summary row that listings read,
 * `raw` holds the bytes, so that listing and counting never page message
 * bodies in.  With a file, a second connection serves readers (WAL lets them
 * run while a commit is under way) and the page caches are bounded, so memory
 * stays flat however large the inbox grows.
 *
 * Adds use group commit: callers queue their message; whichever finds no
 * commit running becomes the leader and writes everything queued so far in
 * one transaction (one fsync with synchronous=FULL), then wakes the others.
 * Each caller returns only once its own message is committed. */
#include "store.h"
#include "tags.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include "mimeparse.h"
#include "util/buf.h"

#define BATCH_MAX 512
#define CACHE_KIB 4096 /* per connection, file mode only */

typedef struct pending {
    struct pending *next;
    const ib_envelope *env;
    const char *raw; /* the message; for a file, its head (for the summary) */
    size_t len;      /* the whole message's length */
    int fd;          /* or -1: the message is in a file, stored in pieces */
    int64_t created_ms;
    char *from, *to, *cc, *subject; /* decoded headers, or NULL */
    char *rcpt;                     /* envelope recipients joined by ", " */
    char *tags;                     /* from X-Tags (tags.h), or NULL */
    char *dkim;                     /* the DKIM verdict (JSON), or NULL: not made yet */
    int has_attachments;
    int done;
    int rc;
    int64_t id;
    char err[160];
} pending;

struct ib_store {
    sqlite3 *w;                /* writer; also the reader in memory mode   */
    sqlite3 *r;                /* reader (== w in memory mode)             */
    pthread_mutex_t wlock;     /* serialises every use of w                */
    pthread_mutex_t rlock_own; /* serialises r when r != w                 */
    pthread_mutex_t *rlock;
    sqlite3_stmt *ins_msg, *ins_raw;

    pthread_mutex_t qlock; /* the group commit queue                   */
    pthread_cond_t qcond;
    pending *head, *tail;
    int committing;

    pthread_mutex_t vlock;
    pthread_cond_t vcond;
    uint64_t version;

    /* Under wlock: the raw octets stored, and the in-memory cap. */
    uint64_t bytes, cap;
    uint64_t dropped, dropped_bytes; /* messages dropped to stay under the cap */
    int file;                        /* --db: a file, else in memory */
    /* Set before the servers start, then read only. */
    ib_store_check_fn dkim_fn;
    int64_t dkim_gen;
    int legacy_vacuum; /* a file without auto-vacuum: VACUUM when empty */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS messages ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT," /* ids are never reused */
    " created_ms INTEGER NOT NULL, size INTEGER NOT NULL,"
    " mail_from TEXT NOT NULL, rcpt TEXT NOT NULL, helo TEXT NOT NULL, peer TEXT NOT NULL,"
    " hdr_from TEXT NOT NULL, hdr_to TEXT NOT NULL, hdr_cc TEXT NOT NULL,"
    " subject TEXT NOT NULL, has_attachments INTEGER NOT NULL,"
    " bare_lf INTEGER NOT NULL DEFAULT 0, bare_cr INTEGER NOT NULL DEFAULT 0,"
    " seen INTEGER NOT NULL DEFAULT 0, tags TEXT NOT NULL DEFAULT '',"
    " dkim TEXT, dkim_gen INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    "PRAGMA user_version = 4;";
/* Version 1 had no count of bare line endings. */
static const char from_v1[] = "BEGIN;"
                              "ALTER TABLE messages ADD COLUMN bare_lf INTEGER NOT NULL DEFAULT 0;"
                              "ALTER TABLE messages ADD COLUMN bare_cr INTEGER NOT NULL DEFAULT 0;"
                              "PRAGMA user_version = 2; COMMIT;";
/* Version 2 had no read state and no tags (tags.h: ",a,b,"). */
static const char from_v2[] = "BEGIN;"
                              "ALTER TABLE messages ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;"
                              "ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT '';"
                              "PRAGMA user_version = 3; COMMIT;";
/* Version 3 kept no DKIM verdict (made again when listed or opened). */
static const char from_v3[] = "BEGIN;"
                              "ALTER TABLE messages ADD COLUMN dkim TEXT;"
                              "ALTER TABLE messages ADD COLUMN dkim_gen INTEGER NOT NULL DEFAULT 0;"
                              "PRAGMA user_version = 4; COMMIT;";

#define SUMMARY_COLS                                                                               \
    "m.id, m.created_ms, m.size, m.mail_from, m.rcpt, m.hdr_from, m.hdr_to, m.subject, "           \
    "m.helo, m.has_attachments, m.bare_lf, m.bare_cr, m.seen, m.tags, m.dkim, m.dkim_gen"
#define RAW_COL 16 /* r.data after SUMMARY_COLS */

static void set_why(char *why, size_t whylen, const char *what, sqlite3 *db)
{
    if (why && whylen)
        snprintf(why, whylen, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static uint64_t sum_bytes(ib_store *st)
{
    sqlite3_stmt *q = NULL;
    uint64_t n = 0;
    if (sqlite3_prepare_v2(st->w, "SELECT coalesce(sum(size), 0) FROM messages", -1, &q, NULL) ==
            SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* After deletes (wlock held): free pages go back to the file or the heap,
 * and the heap's free memory to the system.  A file made before auto-vacuum
 * was on is converted once it is empty (VACUUM costs nothing then); a WAL
 * grown by big messages is cut back. */
static void give_back(ib_store *st)
{
    if (st->legacy_vacuum && st->bytes == 0 &&
        sqlite3_exec(st->w, "VACUUM;", NULL, NULL, NULL) == SQLITE_OK)
        st->legacy_vacuum = 0;
    sqlite3_exec(st->w, "PRAGMA incremental_vacuum;", NULL, NULL, NULL);
    if (st->file)
        sqlite3_exec(st->w, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    sqlite3_db_release_memory(st->w);
    malloc_trim(0);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bump_version(ib_store *st)
{
    pthread_mutex_lock(&st->vlock);
    st->version++;
    pthread_cond_broadcast(&st->vcond);
    pthread_mutex_unlock(&st->vlock);
}

static int open_db(sqlite3 **db, const char *path, int flags, char *why, size_t whylen)
{
    /* NOMUTEX: each connection is serialised by our own lock. */
    int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_why(why, whylen, path, *db);
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, 10000);
    sqlite3_extended_result_codes(*db, 1);
    return 0;
}

static int exec(sqlite3 *db, const char *sql, char *why, size_t whylen)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        set_why(why, whylen, "sqlite", db);
        return -1;
    }
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q;
    int v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return v;
}

int ib_store_open(ib_store **out, const char *path, char *why, size_t whylen)
{
    *out = NULL;
    ib_store *st = calloc(1, sizeof *st);
    if (!st) {
        set_why(why, whylen, "store", NULL);
        return -1;
    }
    pthread_mutex_init(&st->wlock, NULL);
    pthread_mutex_init(&st->rlock_own, NULL);
    pthread_mutex_init(&st->qlock, NULL);
    pthread_cond_init(&st->qcond, NULL);
    pthread_mutex_init(&st->vlock, NULL);
    pthread_cond_init(&st->vcond, NULL);
    st->rlock = &st->wlock;

    int rw = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (open_db(&st->w, path ? path : ":memory:", rw, why, whylen) < 0)
        goto fail;
    int v = pragma_int(st->w, "PRAGMA user_version");
    if (v < 0 || v > 4) {
        if (why && whylen)
            snprintf(why, whylen, "%s: not an inbox database (user_version %d)", path, v);
        goto fail;
    }
    /* In memory, big pages: a 4 KiB page costs about 5% more in the page
     * cache's headers.  Deleting gives pages back (to the file, or to the
     * heap in memory); a file made without auto-vacuum is converted when it
     * is next emptied (give_back).  Freed pages are not zeroed: in a file that
     * would write every deleted byte again (Debian's SQLite has secure_delete
     * on). */
    st->file = path != NULL;
    if (!path && exec(st->w, "PRAGMA page_size=65536;", why, whylen) < 0)
        goto fail;
    if (exec(st->w, "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA secure_delete=FAST;", why, whylen) < 0)
        goto fail;
    if (path) {
        /* Durable before the 250: WAL with an fsync at every commit; a WAL
         * that big messages made large is cut back to 64 MiB when reset. */
        char sql[200];
        snprintf(sql, sizeof sql,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-%d;"
                 " PRAGMA journal_size_limit=67108864;",
                 CACHE_KIB);
        if (exec(st->w, sql, why, whylen) < 0)
            goto fail;
    }
    if ((v == 1 && exec(st->w, from_v1, why, whylen) < 0) ||
        ((v == 1 || v == 2) && exec(st->w, from_v2, why, whylen) < 0) ||
        ((v >= 1 && v <= 3) && exec(st->w, from_v3, why, whylen) < 0)) {
        sqlite3_exec(st->w, "ROLLBACK", NULL, NULL, NULL); /* all or nothing */
        goto fail;
    }
    if (exec(st->w, schema, why, whylen) < 0)
        goto fail;
    st->legacy_vacuum = pragma_int(st->w, "PRAGMA auto_vacuum") == 0;
    st->bytes = sum_bytes(st);
    if (path) {
        if (open_db(&st->r, path, SQLITE_OPEN_READONLY, why, whylen) < 0)
            goto fail;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA cache_size=-%d;", CACHE_KIB);
        if (exec(st->r, sql, why, whylen) < 0)
            goto fail;
        st->rlock = &st->rlock_own;
    } else {
        st->r = st->w;
    }
    if (sqlite3_prepare_v3(
            st->w,
            "INSERT INTO messages (created_ms, size, mail_from, rcpt, helo, peer,"
            " hdr_from, hdr_to, hdr_cc, subject, has_attachments, bare_lf, bare_cr, tags,"
            " dkim, dkim_gen)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            -1, SQLITE_PREPARE_PERSISTENT, &st->ins_msg, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(st->w, "INSERT INTO raw (id, data) VALUES (?,?)", -1,
                           SQLITE_PREPARE_PERSISTENT, &st->ins_raw, NULL) != SQLITE_OK) {
        set_why(why, whylen, "sqlite", st->w);
        goto fail;
    }
    *out = st;
    return 0;
fail:
    ib_store_close(st);
    return -1;
}

void ib_store_close(ib_store *st)
{
    if (!st)
        return;
    sqlite3_finalize(st->ins_msg);
    sqlite3_finalize(st->ins_raw);
    if (st->r && st->r != st->w)
        sqlite3_close(st->r);
    sqlite3_close(st->w);
    pthread_mutex_destroy(&st->wlock);
    pthread_mutex_destroy(&st->rlock_own);
    pthread_mutex_destroy(&st->qlock);
    pthread_cond_destroy(&st->qcond);
    pthread_mutex_destroy(&st->vlock);
    pthread_cond_destroy(&st->vcond);
    free(st);
}

static void bind_text(sqlite3_stmt *q, int i, const char *s)
{
    sqlite3_bind_text(q, i, s ? s : "", -1, SQLITE_STATIC);
}

/* A message in a file goes into its (zero-filled) blob piece by piece
 * (SQLite's incremental blob I/O): never whole in memory.  wlock held. */
#define PIECE (256 * 1024)
static int copy_file(ib_store *st, pending *p)
{
    sqlite3_blob *b = NULL;
    if (sqlite3_blob_open(st->w, "main", "raw", "data", p->id, 1, &b) != SQLITE_OK)
        return -1;
    char *buf = malloc(PIECE);
    int ok = buf != NULL;
    size_t at = 0;
    while (ok && at < p->len) {
        size_t want = p->len - at < PIECE ? p->len - at : PIECE;
        ssize_t got = pread(p->fd, buf, want, (off_t)at);
        if (got <= 0) {
            ok = 0;
            break;
        }
        ok = sqlite3_blob_write(b, buf, (int)got, (int)at) == SQLITE_OK;
        at += (size_t)got;
    }
    free(buf);
    sqlite3_blob_close(b);
    return ok ? 0 : -1;
}

/* One INSERT pair inside the caller's transaction; wlock held. */
static int insert_one(ib_store *st, pending *p)
{
    sqlite3_stmt *m = st->ins_msg, *r = st->ins_raw;
    sqlite3_bind_int64(m, 1, p->created_ms);
    sqlite3_bind_int64(m, 2, (sqlite3_int64)p->len);
    bind_text(m, 3, p->env->mail_from);
    bind_text(m, 4, p->rcpt);
    bind_text(m, 5, p->env->helo);
    bind_text(m, 6, p->env->peer);
    bind_text(m, 7, p->from);
    bind_text(m, 8, p->to);
    bind_text(m, 9, p->cc);
    bind_text(m, 10, p->subject);
    sqlite3_bind_int(m, 11, p->has_attachments);
    sqlite3_bind_int64(m, 12, (sqlite3_int64)p->env->bare_lf);
    sqlite3_bind_int64(m, 13, (sqlite3_int64)p->env->bare_cr);
    bind_text(m, 14, p->tags ? p->tags : "");
    if (p->dkim) {
        sqlite3_bind_text(m, 15, p->dkim, -1, SQLITE_STATIC);
        sqlite3_bind_int64(m, 16, st->dkim_gen);
    } else {
        sqlite3_bind_null(m, 15);
        sqlite3_bind_int64(m, 16, 0);
    }
    int rc = sqlite3_step(m);
    sqlite3_reset(m);
    sqlite3_clear_bindings(m);
    if (rc != SQLITE_DONE)
        return -1;
    p->id = sqlite3_last_insert_rowid(st->w);
    sqlite3_bind_int64(r, 1, p->id);
    if (p->fd >= 0)
        sqlite3_bind_zeroblob64(r, 2, p->len);
    else
        sqlite3_bind_blob64(r, 2, p->len ? p->raw : "", p->len, SQLITE_STATIC);
    rc = sqlite3_step(r);
    sqlite3_reset(r);
    sqlite3_clear_bindings(r);
    if (rc != SQLITE_DONE)
        return -1;
    return p->fd >= 0 ? copy_file(st, p) : 0;
}

/* Before `incoming` octets are added over the in-memory cap: drop the oldest
 * messages until they fit (all of them if one message alone is over the
 * cap); counted for the UI and the API.  Their pages stay on SQLite's free
 * list, where the insert right after takes them: the store does not grow
 * past the cap and no page is copied.  wlock held. */
static void evict(ib_store *st, uint64_t incoming)
{
    sqlite3_stmt *q = NULL;
    int64_t last = -1;
    uint64_t freed = 0, n = 0;
    if (sqlite3_prepare_v2(st->w, "SELECT id, size FROM messages ORDER BY id", -1, &q, NULL) !=
        SQLITE_OK)
        return;
    while (st->bytes - freed + incoming > st->cap && sqlite3_step(q) == SQLITE_ROW) {
        last = sqlite3_column_int64(q, 0);
        freed += (uint64_t)sqlite3_column_int64(q, 1);
        n++;
    }
    sqlite3_finalize(q);
    if (last < 0)
        return;
    q = NULL;
    if (sqlite3_exec(st->w, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return;
    int ok = 1;
    static const char *const del[] = {"DELETE FROM messages WHERE id <= ?",
                                      "DELETE FROM raw WHERE id <= ?"};
    for (int i = 0; i < 2 && ok; i++) {
        ok = sqlite3_prepare_v2(st->w, del[i], -1, &q, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_int64(q, 1, last);
            ok = sqlite3_step(q) == SQLITE_DONE;
        }
        sqlite3_finalize(q);
        q = NULL;
    }
    if (!ok || sqlite3_exec(st->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(st->w, "ROLLBACK", NULL, NULL, NULL);
        return;
    }
    st->bytes -= freed;
    st->dropped += n;
    st->dropped_bytes += freed;
}

/* Write `n` messages in one transaction; 0 ok, -1 (all rolled back). */
static int commit_batch(ib_store *st, pending **items, size_t n)
{
    if (sqlite3_exec(st->w, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (insert_one(st, items[i]) < 0) {
            sqlite3_exec(st->w, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    if (sqlite3_exec(st->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(st->w, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

/* The leader's work: one transaction for the batch; if it fails, each message
 * alone, so one bad message cannot fail its neighbours. */
static void run_batch(ib_store *st, pending **items, size_t n)
{
    pthread_mutex_lock(&st->wlock);
    uint64_t incoming = 0;
    for (size_t i = 0; i < n; i++)
        incoming += items[i]->len;
    if (st->cap && st->bytes + incoming > st->cap)
        evict(st, incoming);
    int ok = commit_batch(st, items, n) == 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok && commit_batch(st, &items[i], 1) < 0) {
            items[i]->rc = -1;
            snprintf(items[i]->err, sizeof items[i]->err, "store: %s", sqlite3_errmsg(st->w));
        } else {
            st->bytes += items[i]->len;
        }
    }
    pthread_mutex_unlock(&st->wlock);
}

static int fill_summary(ib_store *st, pending *p, int whole)
{
    /* The DKIM verdict needs the whole message: one spooled to a file is
     * checked later, when it is first listed or opened. */
    if (whole && st->dkim_fn)
        p->dkim = st->dkim_fn(p->raw, p->len);
    p->from = ib_header_get(p->raw, p->len, "From");
    p->to = ib_header_get(p->raw, p->len, "To");
    p->cc = ib_header_get(p->raw, p->len, "Cc");
    p->subject = ib_header_get(p->raw, p->len, "Subject");
    char *xt = ib_header_get(p->raw, p->len, "X-Tags");
    if (xt) {
        p->tags = ib_tags_normalize(xt);
        free(xt);
    }
    ib_part *parts = NULL;
    size_t n = 0;
    if (ib_mime_parts(p->raw, p->len, &parts, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            p->has_attachments |= parts[i].is_attachment != 0;
        ib_mime_parts_free(parts, n);
    }
    se_buf b = {0};
    for (size_t i = 0; i < p->env->n_rcpt; i++) {
        if (i)
            se_buf_puts(&b, ", ");
        se_buf_puts(&b, p->env->rcpt[i]);
    }
    se_buf_append(&b, "", 0);
    if (b.oom) {
        se_buf_free(&b);
        return -1;
    }
    p->rcpt = se_buf_steal(&b, NULL);
    return 0;
}

static void free_summary(pending *p)
{
    free(p->from);
    free(p->to);
    free(p->cc);
    free(p->subject);
    free(p->rcpt);
    free(p->tags);
    free(p->dkim);
}

static int add(ib_store *st, pending *pme, int64_t *id_out, char *why, size_t whylen);

int ib_store_add(ib_store *st, const ib_envelope *env, const char *raw, size_t len, int64_t *id_out,
                 char *why, size_t whylen)
{
    pending me;
    memset(&me, 0, sizeof me);
    me.env = env;
    me.raw = raw;
    me.len = len;
    me.fd = -1;
    /* Parsing runs here, in the caller's thread, outside every lock. */
    if (fill_summary(st, &me, 1) < 0) {
        free_summary(&me);
        if (why && whylen)
            snprintf(why, whylen, "store: out of memory");
        return -1;
    }
    return add(st, &me, id_out, why, whylen);
}

#define HEAD (1u << 20) /* the summary is read from the first MiB */

int ib_store_add_file(ib_store *st, const ib_envelope *env, int fd, uint64_t len, int64_t *id_out,
                      char *why, size_t whylen)
{
    pending me;
    memset(&me, 0, sizeof me);
    me.env = env;
    me.fd = fd;
    /* The summary from the head of the file. */
    size_t head = len < HEAD ? (size_t)len : HEAD;
    char *buf = malloc(head + 1);
    ssize_t got = buf ? pread(fd, buf, head, 0) : -1;
    if (!buf || got != (ssize_t)head) {
        free(buf);
        if (why && whylen)
            snprintf(why, whylen, "store: cannot read the spooled message");
        return -1;
    }
    buf[head] = 0;
    me.raw = buf;
    me.len = head;
    int rc = fill_summary(st, &me, 0);
    me.len = (size_t)len;
    if (rc < 0) {
        free_summary(&me);
        free(buf);
        if (why && whylen)
            snprintf(why, whylen, "store: out of memory");
        return -1;
    }
    rc = add(st, &me, id_out, why, whylen);
    free(buf);
    return rc;
}

static int add(ib_store *st, pending *pme, int64_t *id_out, char *why, size_t whylen)
{
    pme->created_ms = now_ms();

    pthread_mutex_lock(&st->qlock);
    if (st->tail)
        st->tail->next = pme;
    else
        st->head = pme;
    st->tail = pme;
    while (!pme->done) {
        if (st->committing) {
            pthread_cond_wait(&st->qcond, &st->qlock);
            continue;
        }
        st->committing = 1;
        pending *batch[BATCH_MAX];
        size_t n = 0;
        while (st->head && n < BATCH_MAX) {
            batch[n++] = st->head;
            st->head = st->head->next;
        }
        if (!st->head)
            st->tail = NULL;
        pthread_mutex_unlock(&st->qlock);

        run_batch(st, batch, n);
        bump_version(st); /* before anyone replies 250: the event stream sees it first */

        pthread_mutex_lock(&st->qlock);
        for (size_t i = 0; i < n; i++)
            batch[i]->done = 1;
        st->committing = 0;
        pthread_cond_broadcast(&st->qcond);
    }
    pthread_mutex_unlock(&st->qlock);

    free_summary(pme);
    if (pme->rc < 0) {
        if (why && whylen)
            snprintf(why, whylen, "%s", pme->err);
        return -1;
    }
    if (id_out)
        *id_out = pme->id;
    return 0;
}

/* "%query%" for LIKE (with tag: "%,query,%"), with the wildcards of the
 * query itself escaped. */
static char *like_pattern(const char *q, int tag)
{
    size_t n = strlen(q);
    char *p = malloc(2 * n + 5);
    if (!p)
        return NULL;
    char *o = p;
    *o++ = '%';
    if (tag)
        *o++ = ',';
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
            *o++ = '\\';
        *o++ = q[i];
    }
    if (tag)
        *o++ = ',';
    *o++ = '%';
    *o = '\0';
    return p;
}

static const char *filter_sql(const char *kind)
{
    if (!kind)
        return "";
    if (!strcmp(kind, "from"))
        return " WHERE (m.hdr_from LIKE ?1 ESCAPE '\\' OR m.mail_from LIKE ?1 ESCAPE '\\')";
    if (!strcmp(kind, "to"))
        return " WHERE (m.hdr_to LIKE ?1 ESCAPE '\\' OR m.hdr_cc LIKE ?1 ESCAPE '\\'"
               " OR m.rcpt LIKE ?1 ESCAPE '\\')";
    if (!strcmp(kind, "tag")) /* the pattern is "%,TAG,%" (tags.h) */
        return " WHERE m.tags LIKE ?1 ESCAPE '\\'";
    if (!strcmp(kind, "unread"))
        return " WHERE m.seen = 0";
    if (!strcmp(kind, "containing"))
        return " WHERE (m.subject LIKE ?1 ESCAPE '\\' OR m.hdr_from LIKE ?1 ESCAPE '\\'"
               " OR m.hdr_to LIKE ?1 ESCAPE '\\' OR EXISTS (SELECT 1 FROM raw r"
               " WHERE r.id = m.id AND CAST(r.data AS TEXT) LIKE ?1 ESCAPE '\\'))";
    return NULL;
}

static const char *col_text(sqlite3_stmt *q, int i)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    return s ? (const char *)s : "";
}

static void read_summary(const ib_store *st, sqlite3_stmt *q, ib_summary *s)
{
    s->id = sqlite3_column_int64(q, 0);
    s->created_ms = sqlite3_column_int64(q, 1);
    s->size = (size_t)sqlite3_column_int64(q, 2);
    s->mail_from = col_text(q, 3);
    s->rcpt = col_text(q, 4);
    s->from = col_text(q, 5);
    s->to = col_text(q, 6);
    s->subject = col_text(q, 7);
    s->helo = col_text(q, 8);
    s->has_attachments = sqlite3_column_int(q, 9);
    s->bare_lf = (size_t)sqlite3_column_int64(q, 10);
    s->bare_cr = (size_t)sqlite3_column_int64(q, 11);
    s->seen = sqlite3_column_int(q, 12);
    s->tags = col_text(q, 13);
    /* A verdict made under other records (or rules) is stale. */
    s->dkim =
        sqlite3_column_type(q, 14) == SQLITE_TEXT && sqlite3_column_int64(q, 15) == st->dkim_gen
            ? col_text(q, 14)
            : NULL;
}

int ib_store_list(ib_store *st, const char *kind, const char *query, int64_t start, int64_t limit,
                  ib_summary_fn fn, void *arg, int64_t *total)
{
    const char *where = filter_sql(kind);
    if (!where)
        return -1;
    char *pat = NULL;
    if (kind && strcmp(kind, "unread") != 0 &&
        !(pat = like_pattern(query ? query : "", strcmp(kind, "tag") == 0)))
        return -1;
    char count_sql[512], list_sql[640];
    snprintf(count_sql, sizeof count_sql, "SELECT count(*) FROM messages m%s", where);
    snprintf(list_sql, sizeof list_sql,
             "SELECT " SUMMARY_COLS " FROM messages m%s ORDER BY m.id DESC LIMIT ?2 OFFSET ?3",
             where);

    int rc = -1;
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(st->rlock);
    /* One read transaction, so the total and the rows agree. */
    if (sqlite3_exec(st->r, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    if (total) {
        if (sqlite3_prepare_v2(st->r, count_sql, -1, &q, NULL) != SQLITE_OK)
            goto out;
        if (pat)
            sqlite3_bind_text(q, 1, pat, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_ROW)
            goto out;
        *total = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        q = NULL;
    }
    if (sqlite3_prepare_v2(st->r, list_sql, -1, &q, NULL) != SQLITE_OK)
        goto out;
    if (pat)
        sqlite3_bind_text(q, 1, pat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, limit < 0 ? -1 : limit);
    sqlite3_bind_int64(q, 3, start < 0 ? 0 : start);
    int s;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        ib_summary sum;
        read_summary(st, q, &sum);
        if (fn && fn(arg, &sum))
            break;
    }
    rc = (s == SQLITE_ROW || s == SQLITE_DONE) ? 0 : -1;
out:
    sqlite3_finalize(q);
    sqlite3_exec(st->r, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(st->rlock);
    free(pat);
    return rc;
}

int ib_store_get(ib_store *st, int64_t id, char **raw, size_t *len, ib_summary_fn fn, void *arg)
{
    if (raw)
        *raw = NULL;
    if (len)
        *len = 0;
    sqlite3_stmt *q = NULL;
    int rc = -1;
    pthread_mutex_lock(st->rlock);
    if (sqlite3_prepare_v2(st->r,
                           "SELECT " SUMMARY_COLS ", r.data FROM messages m JOIN raw r"
                           " ON r.id = m.id WHERE m.id = ?",
                           -1, &q, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(q, 1, id);
    int s = sqlite3_step(q);
    if (s == SQLITE_DONE) {
        rc = 0;
        goto out;
    }
    if (s != SQLITE_ROW)
        goto out;
    if (raw) {
        size_t n = (size_t)sqlite3_column_bytes(q, RAW_COL);
        const void *p = sqlite3_column_blob(q, RAW_COL);
        char *copy = malloc(n + 1);
        if (!copy)
            goto out;
        if (n)
            memcpy(copy, p, n);
        copy[n] = '\0';
        *raw = copy;
        if (len)
            *len = n;
    }
    if (fn) {
        ib_summary sum;
        read_summary(st, q, &sum);
        fn(arg, &sum);
    }
    rc = 1;
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(st->rlock);
    return rc;
}

static int delete_where(ib_store *st, const char *sql, int64_t id)
{
    sqlite3_stmt *q = NULL;
    int rc = -1;
    pthread_mutex_lock(&st->wlock);
    if (sqlite3_exec(st->w, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    /* The second statement reuses the first one's WHERE on the raw table. */
    if (sqlite3_prepare_v2(st->w, sql, -1, &q, NULL) != SQLITE_OK)
        goto rollback;
    if (id >= 0)
        sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto rollback;
    int n = sqlite3_changes(st->w);
    sqlite3_finalize(q);
    q = NULL;
    const char *raw_sql = id >= 0 ? "DELETE FROM raw WHERE id = ?" : "DELETE FROM raw";
    if (sqlite3_prepare_v2(st->w, raw_sql, -1, &q, NULL) != SQLITE_OK)
        goto rollback;
    if (id >= 0)
        sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto rollback;
    if (sqlite3_exec(st->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto rollback;
    rc = n > 0 ? 1 : 0;
    sqlite3_finalize(q);
    q = NULL;
    st->bytes = sum_bytes(st);
    give_back(st);
    goto out;
rollback:
    sqlite3_exec(st->w, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->wlock);
    if (rc > 0)
        bump_version(st);
    return rc;
}

int ib_store_delete(ib_store *st, int64_t id)
{
    if (id < 0)
        return 0;
    return delete_where(st, "DELETE FROM messages WHERE id = ?", id);
}

int ib_store_delete_all(ib_store *st)
{
    int rc = delete_where(st, "DELETE FROM messages", -1);
    return rc < 0 ? -1 : 0;
}

/* One UPDATE of one message; 1 changed, 0 no such message, -1 error. */
static int update_one(ib_store *st, const char *sql, int64_t id, int ival, const char *sval)
{
    sqlite3_stmt *q = NULL;
    int rc = -1;
    pthread_mutex_lock(&st->wlock);
    if (sqlite3_prepare_v2(st->w, sql, -1, &q, NULL) == SQLITE_OK) {
        if (sval)
            sqlite3_bind_text(q, 1, sval, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int(q, 1, ival);
        sqlite3_bind_int64(q, 2, id);
        if (sqlite3_step(q) == SQLITE_DONE)
            rc = sqlite3_changes(st->w) > 0;
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->wlock);
    if (rc > 0)
        bump_version(st);
    return rc;
}

int ib_store_set_seen(ib_store *st, int64_t id, int seen)
{
    return update_one(st, "UPDATE messages SET seen = ?1 WHERE id = ?2", id, seen != 0, NULL);
}

int ib_store_set_tags(ib_store *st, int64_t id, const char *tags)
{
    return update_one(st, "UPDATE messages SET tags = ?1 WHERE id = ?2", id, 0, tags ? tags : "");
}

void ib_store_set_dkim_check(ib_store *st, ib_store_check_fn fn, int64_t generation)
{
    st->dkim_fn = fn;
    st->dkim_gen = generation;
}

int ib_store_set_dkim(ib_store *st, const int64_t *ids, const char *const *verdicts, size_t n)
{
    /* No version bump: nothing a reader sees changed but a cache, and a bump
     * would make every open UI list again.  One transaction (one fsync). */
    sqlite3_stmt *q = NULL;
    int rc = -1, changed = 0;
    pthread_mutex_lock(&st->wlock);
    if (sqlite3_exec(st->w, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_prepare_v2(st->w, "UPDATE messages SET dkim = ?1, dkim_gen = ?2 WHERE id = ?3", -1,
                           &q, NULL) != SQLITE_OK)
        goto rollback;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(q, 1, verdicts[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, st->dkim_gen);
        sqlite3_bind_int64(q, 3, ids[i]);
        if (sqlite3_step(q) != SQLITE_DONE)
            goto rollback;
        changed += sqlite3_changes(st->w);
        sqlite3_reset(q);
    }
    if (sqlite3_exec(st->w, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
        rc = changed;
        goto out;
    }
rollback:
    sqlite3_exec(st->w, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->wlock);
    return rc;
}

int64_t ib_store_unseen(ib_store *st)
{
    sqlite3_stmt *q = NULL;
    int64_t n = -1;
    pthread_mutex_lock(st->rlock);
    if (sqlite3_prepare_v2(st->r, "SELECT count(*) FROM messages WHERE seen = 0", -1, &q, NULL) ==
            SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    pthread_mutex_unlock(st->rlock);
    return n;
}

int64_t ib_store_count(ib_store *st)
{
    sqlite3_stmt *q = NULL;
    int64_t n = -1;
    pthread_mutex_lock(st->rlock);
    if (sqlite3_prepare_v2(st->r, "SELECT count(*) FROM messages", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    pthread_mutex_unlock(st->rlock);
    return n;
}

uint64_t ib_store_version(ib_store *st)
{
    pthread_mutex_lock(&st->vlock);
    uint64_t v = st->version;
    pthread_mutex_unlock(&st->vlock);
    return v;
}

uint64_t ib_store_wait(ib_store *st, uint64_t seen, unsigned timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->vlock);
    while (st->version == seen)
        if (pthread_cond_timedwait(&st->vcond, &st->vlock, &dl) != 0)
            break;
    uint64_t v = st->version;
    pthread_mutex_unlock(&st->vlock);
    return v;
}

void ib_store_set_cap(ib_store *st, uint64_t max_bytes)
{
    pthread_mutex_lock(&st->wlock);
    st->cap = max_bytes;
    pthread_mutex_unlock(&st->wlock);
}

void ib_store_usage(ib_store *st, ib_store_use *u)
{
    pthread_mutex_lock(&st->wlock);
    u->bytes = st->bytes;
    u->cap = st->cap;
    u->dropped = st->dropped;
    u->dropped_bytes = st->dropped_bytes;
    pthread_mutex_unlock(&st->wlock);
}
