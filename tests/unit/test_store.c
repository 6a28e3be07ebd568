/* The inbox's message store (inbox/store.c): SQLite in memory and in a file. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../inbox/store.h"
#include "harness.h"

static const char msg1[] = "From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: first\r\n"
                           "\r\nhello 100% there\r\n";
static const char msg2[] =
    "From: =?UTF-8?Q?J=C3=B6rg?= <jorg@c.test>\r\nTo: carol@b.test\r\n"
    "Cc: dave@d.test\r\nSubject: =?UTF-8?B?Y2Fmw6k=?=\r\n\r\nsecond body\r\n";
static const char msg3[] =
    "From: eve@e.test\r\nTo: bob@b.test\r\nSubject: with file\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
    "see attached\r\n--b1\r\nContent-Type: application/pdf\r\n"
    "Content-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
    "\r\nJVBERi0=\r\n--b1--\r\n";

static int64_t add(ib_store *st, const char *from, const char *rcpt1, const char *rcpt2,
                   const char *raw)
{
    const char *rcpt[] = {rcpt1, rcpt2};
    ib_envelope env = {.mail_from = from,
                       .rcpt = rcpt,
                       .n_rcpt = rcpt2 ? 2 : 1,
                       .helo = "client.test",
                       .peer = "127.0.0.1:5555"};
    int64_t id = -1;
    char why[256] = "";
    CHECK_INT(ib_store_add(st, &env, raw, strlen(raw), &id, why, sizeof why), 0);
    CHECK_STR(why, "");
    return id;
}

/* Summaries collected by a listing, as one line each. */
typedef struct rows {
    char text[4096];
    int n;
} rows;

static int collect(void *arg, const ib_summary *s)
{
    rows *r = arg;
    size_t l = strlen(r->text);
    snprintf(r->text + l, sizeof r->text - l, "%lld|%zu|%s|%s|%s|%s|%s|%s|%d\n", (long long)s->id,
             s->size, s->mail_from, s->rcpt, s->from, s->to, s->subject, s->helo,
             s->has_attachments);
    r->n++;
    return 0;
}

static void fill(ib_store *st)
{
    CHECK_INT(add(st, "alice@a.test", "bob@b.test", NULL, msg1), 1);
    CHECK_INT(add(st, "", "carol@b.test", "dave@d.test", msg2), 2);
    CHECK_INT(add(st, "eve@e.test", "bob@b.test", NULL, msg3), 3);
}

TEST(store_add_list_get_in_memory)
{
    ib_store *st;
    char why[256];
    CHECK_INT(ib_store_open(&st, NULL, why, sizeof why), 0);
    uint64_t v0 = ib_store_version(st);
    fill(st);
    CHECK(ib_store_version(st) > v0);
    CHECK_INT(ib_store_count(st), 3);
    rows r = {{0}, 0};
    int64_t total = -1;
    CHECK_INT(ib_store_list(st, NULL, NULL, 0, 50, collect, &r, &total), 0);
    CHECK_INT(total, 3);
    char want[2048];
    snprintf(want, sizeof want,
             "3|%zu|eve@e.test|bob@b.test|eve@e.test|bob@b.test|with file|client.test|1\n"
             "2|%zu||carol@b.test, dave@d.test|J\xc3\xb6rg <jorg@c.test>|carol@b.test|caf\xc3\xa9|"
             "client.test|0\n"
             "1|%zu|alice@a.test|bob@b.test|Alice <alice@a.test>|bob@b.test|first|client.test|0\n",
             strlen(msg3), strlen(msg2), strlen(msg1));
    CHECK_STR(r.text, want);

    char *raw = NULL;
    size_t len = 0;
    rows one = {{0}, 0};
    CHECK_INT(ib_store_get(st, 2, &raw, &len, collect, &one), 1);
    CHECK_MEM(raw, len, msg2);
    CHECK_INT(one.n, 1);
    CHECK(!strncmp(one.text, "2|", 2));
    free(raw);
    CHECK_INT(ib_store_get(st, 99, &raw, &len, NULL, NULL), 0);
    CHECK(raw == NULL);
    ib_store_close(st);
}

TEST(store_search_kinds)
{
    ib_store *st;
    CHECK_INT(ib_store_open(&st, NULL, NULL, 0), 0);
    fill(st);
    struct {
        const char *kind, *query;
        int n;
        const char *first_id;
    } cases[] = {
        {"from", "ALICE", 1, "1|"}, /* header, case-insensitive */
        {"from", "eve@e", 1, "3|"},
        {"from", "j\xc3\xb6rg", 1, "2|"}, /* the decoded header */
        {"to", "dave", 1, "2|"},          /* Cc and envelope */
        {"to", "bob@b.test", 2, "3|"},
        {"containing", "second body", 1, "2|"},
        {"containing", "100%", 1, "1|"},
        {"containing", "100_", 0, ""}, /* LIKE wildcards are literal */
        {"containing", "%", 1, "1|"},
        {"containing", "JVBERi0", 1, "3|"},
        {"from", "nobody", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rows r = {{0}, 0};
        int64_t total = -1;
        CHECK_INT(ib_store_list(st, cases[i].kind, cases[i].query, 0, 10, collect, &r, &total), 0);
        if (total != cases[i].n || r.n != cases[i].n ||
            strncmp(r.text, cases[i].first_id, strlen(cases[i].first_id)))
            th_fail(__FILE__, __LINE__, "%s=%s: total %lld, rows \"%s\"", cases[i].kind,
                    cases[i].query, (long long)total, r.text);
    }
    CHECK_INT(ib_store_list(st, "subject", "x", 0, 10, collect, NULL, NULL), -1);
    ib_store_close(st);
}

static int stop_after_one(void *arg, const ib_summary *s)
{
    (void)s;
    ++*(int *)arg;
    return 1;
}

TEST(store_paging)
{
    ib_store *st;
    CHECK_INT(ib_store_open(&st, NULL, NULL, 0), 0);
    fill(st);
    rows r = {{0}, 0};
    int64_t total = 0;
    CHECK_INT(ib_store_list(st, NULL, NULL, 1, 1, collect, &r, &total), 0);
    CHECK_INT(total, 3);
    CHECK_INT(r.n, 1);
    CHECK(!strncmp(r.text, "2|", 2));
    r = (rows){{0}, 0};
    CHECK_INT(ib_store_list(st, NULL, NULL, 2, -1, collect, &r, NULL), 0);
    CHECK_INT(r.n, 1);
    CHECK(!strncmp(r.text, "1|", 2));
    int seen = 0;
    CHECK_INT(ib_store_list(st, NULL, NULL, 0, 10, stop_after_one, &seen, NULL), 0);
    CHECK_INT(seen, 1);
    ib_store_close(st);
}

TEST(store_delete)
{
    ib_store *st;
    CHECK_INT(ib_store_open(&st, NULL, NULL, 0), 0);
    fill(st);
    uint64_t v = ib_store_version(st);
    CHECK_INT(ib_store_delete(st, 2), 1);
    CHECK(ib_store_version(st) > v);
    CHECK_INT(ib_store_delete(st, 2), 0);
    CHECK_INT(ib_store_get(st, 2, NULL, NULL, NULL, NULL), 0);
    CHECK_INT(ib_store_count(st), 2);
    CHECK_INT(ib_store_delete_all(st), 0);
    CHECK_INT(ib_store_count(st), 0);
    /* Ids are never reused: a client holding an old id cannot open a new message. */
    CHECK_INT(add(st, "a@a.test", "b@b.test", NULL, msg1), 4);
    ib_store_close(st);
}

static void temp_path(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/inbox-store-test-%d-%ld.db", (int)getpid(), (long)time(NULL));
}

static void remove_db(const char *path)
{
    char p[300];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

TEST(store_file_persists_across_reopen)
{
    char path[200], why[256] = "";
    temp_path(path, sizeof path);
    ib_store *st;
    CHECK_INT(ib_store_open(&st, path, why, sizeof why), 0);
    fill(st);
    CHECK_INT(ib_store_delete(st, 3), 1);
    ib_store_close(st);
    CHECK_INT(ib_store_open(&st, path, why, sizeof why), 0);
    CHECK_INT(ib_store_count(st), 2);
    char *raw;
    size_t len;
    CHECK_INT(ib_store_get(st, 1, &raw, &len, NULL, NULL), 1);
    CHECK_MEM(raw, len, msg1);
    free(raw);
    CHECK_INT(add(st, "a@a.test", "b@b.test", NULL, msg1), 4);
    ib_store_close(st);
    remove_db(path);
}

TEST(store_refuses_a_foreign_database)
{
    char path[200], why[256] = "";
    temp_path(path, sizeof path);
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ib_store *st = (ib_store *)1;
    CHECK_INT(ib_store_open(&st, path, why, sizeof why), -1);
    CHECK(st == NULL);
    CHECK(strstr(why, "not an inbox database") != NULL);
    remove_db(path);
    CHECK_INT(ib_store_open(&st, "/nonexistent-dir/x.db", why, sizeof why), -1);
    CHECK(why[0] != '\0');
}

typedef struct adder {
    ib_store *st;
    int64_t ids[50];
} adder;

static void *add_many(void *arg)
{
    adder *a = arg;
    const char *rcpt[] = {"r@b.test"};
    ib_envelope env = {
        .mail_from = "s@a.test", .rcpt = rcpt, .n_rcpt = 1, .helo = "h", .peer = "p"};
    for (int i = 0; i < 50; i++)
        if (ib_store_add(a->st, &env, msg1, strlen(msg1), &a->ids[i], NULL, 0) < 0)
            a->ids[i] = -1;
    return NULL;
}

/* Group commit: concurrent adds to a durable file all land, each with its own id. */
TEST(store_concurrent_adds_to_a_file)
{
    char path[200];
    temp_path(path, sizeof path);
    ib_store *st;
    CHECK_INT(ib_store_open(&st, path, NULL, 0), 0);
    adder a[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        a[i].st = st;
        pthread_create(&t[i], NULL, add_many, &a[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(ib_store_count(st), 400);
    static char seen[401];
    memset(seen, 0, sizeof seen);
    int bad = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 50; j++) {
            int64_t id = a[i].ids[j];
            if (id < 1 || id > 400 || seen[id]++)
                bad++;
        }
    CHECK_INT(bad, 0);
    ib_store_close(st);
    remove_db(path);
}

static void *add_later(void *arg)
{
    usleep(50000);
    add(arg, "a@a.test", "b@b.test", NULL, msg1);
    return NULL;
}

TEST(store_wait_wakes_on_change)
{
    ib_store *st;
    CHECK_INT(ib_store_open(&st, NULL, NULL, 0), 0);
    uint64_t v = ib_store_version(st);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_INT(ib_store_wait(st, v, 30), v); /* times out unchanged */
    pthread_t t;
    pthread_create(&t, NULL, add_later, st);
    uint64_t v2 = ib_store_wait(st, v, 10000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    CHECK(v2 != v);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(secs >= 0.07 && secs < 5.0);
    ib_store_close(st);
}

TEST(store_binary_and_empty_messages)
{
    ib_store *st;
    CHECK_INT(ib_store_open(&st, NULL, NULL, 0), 0);
    static const char bin[] = "Subject: x\r\n\r\n\0\xff\x01 binary";
    ib_envelope env = {.mail_from = "", .rcpt = NULL, .n_rcpt = 0, .helo = "", .peer = ""};
    int64_t id;
    CHECK_INT(ib_store_add(st, &env, bin, sizeof bin - 1, &id, NULL, 0), 0);
    char *raw;
    size_t len;
    CHECK_INT(ib_store_get(st, id, &raw, &len, NULL, NULL), 1);
    CHECK_INT(len, sizeof bin - 1);
    CHECK(len == sizeof bin - 1 && !memcmp(raw, bin, len));
    free(raw);
    CHECK_INT(ib_store_add(st, &env, "", 0, &id, NULL, 0), 0);
    CHECK_INT(ib_store_get(st, id, &raw, &len, NULL, NULL), 1);
    CHECK_INT(len, 0);
    free(raw);
    ib_store_close(st);
}

static int bare_counts(void *arg, const ib_summary *s)
{
    size_t *out = arg;
    out[0] = s->bare_lf;
    out[1] = s->bare_cr;
    return 0;
}

TEST(store_keeps_the_bare_line_ending_counts)
{
    ib_store *st;
    char why[256];
    CHECK_INT(ib_store_open(&st, NULL, why, sizeof why), 0);
    const char *rcpt[] = {"b@b.test"};
    ib_envelope env = {.mail_from = "a@a.test",
                       .rcpt = rcpt,
                       .n_rcpt = 1,
                       .helo = "h",
                       .peer = "p",
                       .bare_lf = 3,
                       .bare_cr = 1};
    int64_t id;
    CHECK_INT(ib_store_add(st, &env, "a\n.\nb\r\n", 8, &id, NULL, 0), 0);
    size_t got[2] = {9, 9};
    CHECK_INT(ib_store_get(st, id, NULL, NULL, bare_counts, got), 1);
    CHECK_INT(got[0], 3);
    CHECK_INT(got[1], 1);
    env.bare_lf = env.bare_cr = 0;
    CHECK_INT(ib_store_add(st, &env, "ok\r\n", 4, &id, NULL, 0), 0);
    CHECK_INT(ib_store_list(st, NULL, NULL, 0, 1, bare_counts, got, NULL), 0);
    CHECK_INT(got[0], 0); /* the newest, clean */
    CHECK_INT(got[1], 0);
    ib_store_close(st);
}

static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int64_t v = -1;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* A file from an earlier version (user_version 1, made without auto-vacuum)
 * opens, keeps its mail, gets the new columns, and gives its pages back once
 * it is emptied. */
TEST(store_upgrades_a_version_1_file)
{
    char path[200], why[256] = "";
    temp_path(path, sizeof path);
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "PRAGMA auto_vacuum=NONE; PRAGMA journal_mode=WAL;"
                           "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                           " created_ms INTEGER NOT NULL, size INTEGER NOT NULL,"
                           " mail_from TEXT NOT NULL, rcpt TEXT NOT NULL, helo TEXT NOT NULL,"
                           " peer TEXT NOT NULL, hdr_from TEXT NOT NULL, hdr_to TEXT NOT NULL,"
                           " hdr_cc TEXT NOT NULL, subject TEXT NOT NULL,"
                           " has_attachments INTEGER NOT NULL);"
                           "CREATE TABLE raw (id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
                           "INSERT INTO messages VALUES (1, 0, 4, 'a', 'b', 'h', 'p', 'f', 't',"
                           " '', 'old', 0);"
                           "INSERT INTO raw VALUES (1, zeroblob(4000000));"
                           "PRAGMA user_version = 1;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    ib_store *st;
    CHECK_INT(ib_store_open(&st, path, why, sizeof why), 0);
    CHECK_INT(ib_store_count(st), 1);
    size_t got[2] = {9, 9};
    CHECK_INT(ib_store_get(st, 1, NULL, NULL, bare_counts, got), 1);
    CHECK_INT(got[0], 0);
    CHECK_INT(add(st, "a@a.test", "b@b.test", NULL, msg1), 2);
    CHECK_INT(ib_store_delete_all(st), 0);
    ib_store_close(st);
    CHECK_INT(sql_int(path, "PRAGMA user_version"), 4);
    CHECK_INT(sql_int(path, "PRAGMA auto_vacuum"), 2); /* incremental from now on */
    CHECK(sql_int(path, "PRAGMA page_count") < 20);
    remove_db(path);
}

static int seen_tags(void *arg, const ib_summary *s)
{
    char *out = arg;
    snprintf(out, 200, "%d%s", s->seen, s->tags);
    return 0;
}

static int count_rows(void *arg, const ib_summary *s)
{
    (void)s;
    (*(int *)arg)++;
    return 0;
}

/* Messages start unread; X-Tags sets tags at delivery; both can be
 * changed; a tag search matches whole tags only. */
TEST(store_read_state_and_tags)
{
    ib_store *st;
    char why[256] = "", got[200];
    CHECK_INT(ib_store_open(&st, NULL, why, sizeof why), 0);
    int64_t a = add(st, "a@a.test", "b@b.test", NULL,
                    "From: a@a.test\r\nX-Tags: invoice, Welcome ,,invoice,welcome\r\n"
                    "Subject: t\r\n\r\nhi\r\n");
    int64_t b = add(st, "a@a.test", "b@b.test", NULL, msg1);
    CHECK_INT(ib_store_get(st, a, NULL, NULL, seen_tags, got), 1);
    CHECK_STR(got, "0,invoice,Welcome,");
    CHECK_INT(ib_store_get(st, b, NULL, NULL, seen_tags, got), 1);
    CHECK_STR(got, "0");
    CHECK_INT(ib_store_unseen(st), 2);
    uint64_t v = ib_store_version(st);
    CHECK_INT(ib_store_set_seen(st, a, 1), 1);
    CHECK(ib_store_version(st) != v);
    CHECK_INT(ib_store_set_seen(st, 999, 1), 0);
    CHECK_INT(ib_store_unseen(st), 1);
    int n = 0;
    int64_t total = 0;
    CHECK_INT(ib_store_list(st, "tag", "WELCOME", 0, 10, count_rows, &n, &total), 0);
    CHECK_INT(total, 1);
    CHECK_INT(ib_store_list(st, "tag", "invo", 0, 10, NULL, NULL, &total), 0);
    CHECK_INT(total, 0); /* whole tags only */
    CHECK_INT(ib_store_list(st, "tag", "%", 0, 10, NULL, NULL, &total), 0);
    CHECK_INT(total, 0);
    CHECK_INT(ib_store_list(st, "unread", "", 0, 10, NULL, NULL, &total), 0);
    CHECK_INT(total, 1);
    CHECK_INT(ib_store_set_tags(st, b, ",urgent,"), 1);
    CHECK_INT(ib_store_list(st, "tag", "urgent", 0, 10, NULL, NULL, &total), 0);
    CHECK_INT(total, 1);
    ib_store_close(st);
}

/* The DKIM verdict: made by the hook when a message is added, read back with
 * its summary, stale under another generation (other --dkim-record records on
 * the same --db), kept when made later without waking the UI (no version
 * bump), and the list never calls the hook. */
static int hook_calls;
static char *fake_verdict(const char *raw, size_t len)
{
    hook_calls++;
    char *s = malloc(64);
    snprintf(s, 64, "{\"status\":\"%s\",\"len\":%zu}", strstr(raw, "DKIM") ? "pass" : "none", len);
    return s;
}

static int copy_dkim(void *arg, const ib_summary *s)
{
    snprintf(arg, 200, "%s", s->dkim ? s->dkim : "(null)");
    return 0;
}

TEST(store_keeps_the_dkim_verdict)
{
    char path[200], why[256] = "", got[200];
    temp_path(path, sizeof path);
    ib_store *st;
    CHECK_INT(ib_store_open(&st, path, why, sizeof why), 0);
    ib_store_set_dkim_check(st, fake_verdict, 42);
    hook_calls = 0;
    int64_t a =
        add(st, "a@a.test", "b@b.test", NULL, "DKIM-Signature: x\r\nFrom: a@a.test\r\n\r\nhi\r\n");
    int64_t b = add(st, "a@a.test", "b@b.test", NULL, msg1);
    CHECK_INT(hook_calls, 2);
    CHECK_INT(ib_store_get(st, a, NULL, NULL, copy_dkim, got), 1);
    CHECK_STR(got, "{\"status\":\"pass\",\"len\":41}");
    CHECK_INT(ib_store_list(st, NULL, NULL, 0, 1, copy_dkim, got, NULL), 0);
    CHECK_STR(got, "{\"status\":\"none\",\"len\":80}");
    CHECK_INT(hook_calls, 2); /* listing never verifies */
    ib_store_close(st);

    CHECK_INT(ib_store_open(&st, path, why, sizeof why), 0);
    ib_store_set_dkim_check(st, fake_verdict, 43); /* other records */
    CHECK_INT(ib_store_get(st, a, NULL, NULL, copy_dkim, got), 1);
    CHECK_STR(got, "(null)");
    uint64_t v = ib_store_version(st);
    int64_t ids[2] = {a, 999};
    const char *verdicts[2] = {"{\"status\":\"fail\"}", "{}"};
    CHECK_INT(ib_store_set_dkim(st, ids, verdicts, 2), 1);
    CHECK_INT(ib_store_version(st), v);
    CHECK_INT(ib_store_get(st, a, NULL, NULL, copy_dkim, got), 1);
    CHECK_STR(got, "{\"status\":\"fail\"}");
    CHECK_INT(ib_store_get(st, b, NULL, NULL, copy_dkim, got), 1);
    CHECK_STR(got, "(null)");
    ib_store_close(st);
    remove_db(path);
}
