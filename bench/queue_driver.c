/* The queue benchmark's C driver (bench/queue_bench.py builds and runs it).
 *
 *   queue_driver lib URL N BODYFILE       N x scalr_email_queue_add, one transaction each
 *   queue_driver raw URL N BODYFILE       the ceiling: the same rows INSERTed with plain
 *                                         SQL into the same table (SQLite: the same
 *                                         pragmas, BEGIN IMMEDIATE .. COMMIT per row;
 *                                         PostgreSQL: one autocommit INSERT per row)
 *   queue_driver latency URL N BODYFILE GAP_MS
 *                                         N enqueues GAP_MS apart; prints "T_MS" (the
 *                                         wall clock just before each add) per line
 *
 * Prints one JSON line: {"n":N,"secs":S,"size":BYTES}.  The message is the same
 * in both modes: the body file as text/plain to one recipient. */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalr_email.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static const char *const TO[] = {"rcpt@example.com", NULL};

static void message(scalr_email_message *m, const char *body, int i)
{
    static char subject[64];
    snprintf(subject, sizeof subject, "Benchmark message %d", i);
    memset(m, 0, sizeof *m);
    m->to = TO;
    m->subject = subject;
    m->body = body;
}

static int die(const char *what, const char *why)
{
    fprintf(stderr, "queue_driver: %s: %s\n", what, why);
    return 1;
}

static int lib(const char *url, int n, const char *body, int gap_ms)
{
    scalr_email_queue *q;
    scalr_email_error err;
    if (scalr_email_queue_open(&q, url, &err) != SCALR_EMAIL_OK)
        return die("open", err.message);
    scalr_email_message m;
    long long id, size = 0;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        message(&m, body, i);
        if (gap_ms) {
            struct timespec ts = {gap_ms / 1000, (gap_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            printf("%lld\n", wall_ms());
            fflush(stdout);
        }
        if (scalr_email_queue_add(q, &m, "bench@scalr.local", NULL, &id, NULL, &err) !=
            SCALR_EMAIL_OK) {
            scalr_email_queue_close(q);
            return die("add", err.message);
        }
    }
    double secs = now_s() - t0;
    char *out;
    size_t len;
    message(&m, body, 0);
    if (scalr_email_compose(&m, "bench@scalr.local", &out, &len, &err) == SCALR_EMAIL_OK) {
        size = (long long)len;
        free(out);
    }
    scalr_email_queue_close(q);
    if (!gap_ms)
        printf("{\"n\":%d,\"secs\":%.6f,\"size\":%lld}\n", n, secs, size);
    return 0;
}

#define NOW_SQLITE "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
#define NOW_PG "(extract(epoch from clock_timestamp()) * 1000)::bigint"

static int raw_sqlite(const char *path, int n, const char *data, size_t len)
{
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        return die("sqlite3_open", sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    char *e = NULL;
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &e)) {
        int rc = die("pragma", e);
        sqlite3_free(e);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_stmt *ins, *begin, *commit;
    const char *sql = "INSERT INTO scalr_email_queue (mail_from, rcpt_to, message_id, body, size, "
                      "created_at, run_at, updated_at, expire_at) VALUES (?, ?, ?, ?, ?, " NOW_SQLITE
                      ", " NOW_SQLITE ", " NOW_SQLITE ", " NOW_SQLITE " + 86400000)";
    if (sqlite3_prepare_v2(db, sql, -1, &ins, NULL) ||
        sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) ||
        sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL))
        return die("prepare", sqlite3_errmsg(db));
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        char mid[64];
        snprintf(mid, sizeof mid, "<raw%d@scalr.local>", i);
        sqlite3_bind_text(ins, 1, "bench@scalr.local", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, "rcpt@example.com", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, mid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 4, data, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, (sqlite3_int64)len);
        if (sqlite3_step(begin) != SQLITE_DONE || sqlite3_step(ins) != SQLITE_DONE ||
            sqlite3_step(commit) != SQLITE_DONE)
            return die("insert", sqlite3_errmsg(db));
        sqlite3_reset(begin);
        sqlite3_reset(ins);
        sqlite3_reset(commit);
    }
    double secs = now_s() - t0;
    sqlite3_finalize(ins);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    printf("{\"n\":%d,\"secs\":%.6f,\"size\":%zu}\n", n, secs, len);
    return 0;
}

static int raw_pg(const char *url, int n, const char *data, size_t len)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK)
        return die("connect", PQerrorMessage(pg));
    PGresult *r = PQprepare(pg, "ins",
                            "INSERT INTO scalr_email_queue (mail_from, rcpt_to, message_id, body, "
                            "size, created_at, run_at, updated_at, expire_at) VALUES ($1, $2, $3, "
                            "$4, $5, " NOW_PG ", " NOW_PG ", " NOW_PG ", " NOW_PG " + 86400000)",
                            5, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return die("prepare", PQerrorMessage(pg));
    PQclear(r);
    char size[32];
    snprintf(size, sizeof size, "%zu", len);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        char mid[64];
        snprintf(mid, sizeof mid, "<raw%d@scalr.local>", i);
        const char *v[5] = {"bench@scalr.local", "rcpt@example.com", mid, data, size};
        int lens[5] = {0, 0, 0, (int)len, 0};
        int fmts[5] = {0, 0, 0, 1, 0};
        r = PQexecPrepared(pg, "ins", 5, v, lens, fmts, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return die("insert", PQerrorMessage(pg));
        PQclear(r);
    }
    double secs = now_s() - t0;
    PQfinish(pg);
    printf("{\"n\":%d,\"secs\":%.6f,\"size\":%zu}\n", n, secs, len);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return die("usage", "queue_driver lib|raw|latency URL N BODYFILE [GAP_MS]");
    const char *mode = argv[1], *url = argv[2];
    int n = atoi(argv[3]);
    const char *body = slurp(argv[4]);
    if (!body)
        return die(argv[4], "cannot read");
    if (!strcmp(mode, "lib"))
        return lib(url, n, body, 0);
    if (!strcmp(mode, "latency"))
        return lib(url, n, body, argc > 5 ? atoi(argv[5]) : 100);
    if (strcmp(mode, "raw"))
        return die("mode", mode);
    /* The tables exist (created by the library); the row is the message the
     * library would store. */
    scalr_email_queue *q;
    scalr_email_error err;
    if (scalr_email_queue_open(&q, url, &err) != SCALR_EMAIL_OK)
        return die("open", err.message);
    scalr_email_queue_close(q);
    scalr_email_message m;
    message(&m, body, 0);
    char *data;
    size_t len;
    if (scalr_email_compose(&m, "bench@scalr.local", &data, &len, &err) != SCALR_EMAIL_OK)
        return die("compose", err.message);
    int rc = strncmp(url, "sqlite:", 7) == 0 ? raw_sqlite(url + 7, n, data, len)
                                             : raw_pg(url, n, data, len);
    free(data);
    return rc;
}
