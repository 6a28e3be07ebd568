/* Inside the queue's store: the queue logic (store.c) is written once, in
 * SQL that both backends speak, over a small driver interface that each
 * backend implements (store_sqlite.c, store_pg.c).  A driver rewrites two
 * things in the SQL it is given: "?" placeholders (PostgreSQL: $1, $2...)
 * and the token NOW_MS (the database clock in milliseconds). */
#ifndef SE_QUEUE_STORE_INT_H
#define SE_QUEUE_STORE_INT_H

#include "queue/store.h"

typedef enum se_qtype { SE_QNULL, SE_QINT, SE_QTEXT, SE_QBLOB } se_qtype;

/* A parameter, or a cell of a result. */
typedef struct se_qval {
    se_qtype t;
    int64_t i;
    const char *s; /* TEXT (NUL-terminated) or BLOB bytes */
    size_t n;      /* BLOB length */
} se_qval;

#define QI(v) ((se_qval){.t = SE_QINT, .i = (v)})
#define QT(v) ((v) ? (se_qval){.t = SE_QTEXT, .s = (v)} : (se_qval){.t = SE_QNULL})
#define QB(p, len) ((se_qval){.t = SE_QBLOB, .s = (const char *)(p), .n = (len)})
#define QN ((se_qval){.t = SE_QNULL})

/* A whole result, copied out of the driver: rows x cols cells.  Text and
 * blob cells own a malloc'd copy (text NUL-terminated). */
typedef struct se_qres {
    size_t rows, cols;
    se_qval *cells;
} se_qres;

void se_qres_free(se_qres *r);
static inline const se_qval *se_qcell(const se_qres *r, size_t row, size_t col)
{
    return &r->cells[row * r->cols + col];
}
int64_t se_qres_int(const se_qres *r, size_t row, size_t col);      /* NULL: 0 */
const char *se_qres_text(const se_qres *r, size_t row, size_t col); /* NULL: NULL */

typedef struct se_qdriver {
    const char *name;
    int skip_locked;       /* claims may say FOR UPDATE SKIP LOCKED */
    int atomic_statements; /* one statement needs no BEGIN (PostgreSQL autocommit) */
    scalr_email_code (*open)(se_qstore *st, const char *url, scalr_email_error *err);
    void (*close)(se_qstore *st);
    /* Run one statement.  res may be NULL when no rows are wanted; *changes
     * (may be NULL) gets the rows it modified. */
    scalr_email_code (*exec)(se_qstore *st, const char *sql, const se_qval *p, int np, se_qres *res,
                             int64_t *changes, scalr_email_error *err);
    scalr_email_code (*begin)(se_qstore *st, scalr_email_error *err); /* a write transaction */
    scalr_email_code (*commit)(se_qstore *st, scalr_email_error *err);
    void (*rollback)(se_qstore *st);
    /* Sleep until woken (NOTIFY) or timeout_ms. */
    scalr_email_code (*wait)(se_qstore *st, int64_t timeout_ms, scalr_email_error *err);
    const char *const *schema;  /* statements creating schema version 1 */
    const char *const *schema2; /* version 1 -> 2: profiles, the unsubscribe flag */
    const char *migrate_lock;   /* run first in the migration transaction, or NULL */
} se_qdriver;

struct se_qstore {
    const se_qdriver *drv;
    void *db;                 /* the driver's handle */
    char *where;              /* what to name in errors (the path, or host/db) */
    char last_tenant[2][256]; /* round-robin position per lane */
    int in_tx;
};

extern const se_qdriver se_qdriver_sqlite;
extern const se_qdriver se_qdriver_pg;

#define SE_QUEUE_SCHEMA_VERSION 2

/* For queue.c (the admin API): statements and transactions. */
scalr_email_code se_qstore_exec(se_qstore *st, const char *sql, const se_qval *p, int np,
                                se_qres *res, int64_t *changes, scalr_email_error *err);
scalr_email_code se_qstore_begin(se_qstore *st, scalr_email_error *err);
scalr_email_code se_qstore_commit(se_qstore *st, scalr_email_error *err);
scalr_email_code se_qstore_abort(se_qstore *st, scalr_email_code rc); /* rollback, returns rc */
const char *se_qstore_where(const se_qstore *st);

#endif
