/* The connection pool (src/pool.c) and the batch API's argument rules
 * (src/batch.c).  Sessions here are real TCP connections to a listening
 * socket of the test, with the engine brought to IDLE by hand. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pool.h"

static int listener(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A session connected to port, its engine IDLE after greeting and EHLO. */
static se_session *idle_session(unsigned port, const unsigned char *key)
{
    se_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->pid = getpid();
    memcpy(s->key, key, SE_POOL_KEY_LEN);
    if (se_conn_open(&s->conn, "127.0.0.1", port, 2000, NULL) != SCALR_EMAIL_OK) {
        free(s);
        return NULL;
    }
    se_smtp_opts o = {.helo_name = "client.example", .tls = SCALR_EMAIL_TLS_NONE};
    s->eng = se_smtp_new(&o);
    size_t n;
    se_smtp_feed(s->eng, "220 hi\r\n", 8);
    if (se_smtp_step(s->eng) == SE_SMTP_WRITE) {
        se_smtp_out(s->eng, &n);
        se_smtp_sent(s->eng, n); /* EHLO, not really written */
    }
    se_smtp_feed(s->eng, "250 ok\r\n", 8);
    se_smtp_step(s->eng);
    return s;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

TEST(pool_key_separates_identities)
{
    unsigned char a[SE_POOL_KEY_LEN], b[SE_POOL_KEY_LEN], c[SE_POOL_KEY_LEN];
    se_pool_key(a, "smtp.example", 587, 0, "u", "p1", NULL, NULL);
    se_pool_key(b, "smtp.example", 587, 0, "u", "p1", NULL, NULL);
    se_pool_key(c, "smtp.example", 587, 0, "u", "p2", NULL, NULL);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0); /* a wrong password never rides a good session */
    se_pool_key(c, "smtp.example", 587, 1, "u", "p1", NULL, NULL);
    CHECK(memcmp(a, c, sizeof a) != 0);
    se_pool_key(c, "smtp.example", 465, 0, "u", "p1", NULL, NULL);
    CHECK(memcmp(a, c, sizeof a) != 0);
    /* fields cannot run into each other */
    se_pool_key(b, "smtp.exampleu", 587, 0, "", "p1", NULL, NULL);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

TEST(pool_reuses_idle_session_and_limits_per_key)
{
    unsigned port;
    int lfd = listener(&port);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    unsigned char k1[SE_POOL_KEY_LEN], k2[SE_POOL_KEY_LEN];
    se_pool_key(k1, "pool-test-a", port, 2, NULL, NULL, NULL, NULL);
    se_pool_key(k2, "pool-test-b", port, 2, NULL, NULL, NULL, NULL);
    se_session *s1 = idle_session(port, k1), *s2 = idle_session(port, k1);
    se_session *s3 = idle_session(port, k1);
    CHECK(s1 && s2 && s3);
    CHECK(se_pool_get(k1, 60000) == NULL);
    se_pool_put(s1, 2);
    se_pool_put(s2, 2);
    se_pool_put(s3, 2); /* a third idle one for the key: closed (QUIT unanswered) */
    CHECK(se_pool_get(k2, 60000) == NULL);
    se_session *g1 = se_pool_get(k1, 60000);
    se_session *g2 = se_pool_get(k1, 60000);
    CHECK(g1 == s2); /* most recently used first */
    CHECK(g2 == s1);
    CHECK(g1 && g1->reused);
    CHECK(se_pool_get(k1, 60000) == NULL);
    se_session_close(g1, 0, 1);
    se_session_close(g2, 0, 1);
    close(lfd);
}

TEST(pool_drops_expired_and_closed_sessions)
{
    unsigned port;
    int lfd = listener(&port);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    unsigned char k[SE_POOL_KEY_LEN];
    se_pool_key(k, "pool-test-expiry", port, 2, NULL, NULL, NULL, NULL);
    se_pool_put(idle_session(port, k), 2);
    sleep_ms(30);
    CHECK(se_pool_get(k, 10) == NULL); /* idle longer than 10 ms */

    /* The server hangs up while the session is idle: seen without I/O. */
    se_pool_put(idle_session(port, k), 2);
    int afd = accept(lfd, NULL, NULL); /* the expired one */
    close(afd);
    afd = accept(lfd, NULL, NULL);
    close(afd);
    sleep_ms(20);
    CHECK(se_pool_get(k, 5000) == NULL);

    /* A 421 sent while idle: not reusable either. */
    se_pool_put(idle_session(port, k), 2);
    afd = accept(lfd, NULL, NULL);
    CHECK(write(afd, "421 bye\r\n", 9) == 9);
    sleep_ms(20);
    CHECK(se_pool_get(k, 5000) == NULL);
    close(afd);
    close(lfd);
}

TEST(pool_refuses_session_mid_transaction)
{
    unsigned port;
    int lfd = listener(&port);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    unsigned char k[SE_POOL_KEY_LEN];
    se_pool_key(k, "pool-test-midtx", port, 2, NULL, NULL, NULL, NULL);
    se_session *s = idle_session(port, k);
    const char *rcpt[] = {"b@example.com"};
    se_smtp_envelope env = {.mail_from = "a@example.com", .rcpt = rcpt, .n_rcpt = 1};
    CHECK_INT(se_smtp_mail(s->eng, &env, "x\r\n", 3), 0);
    CHECK(!se_smtp_reusable(s->eng));
    se_pool_put(s, 2); /* closed, not kept */
    CHECK(se_pool_get(k, 5000) == NULL);
    close(lfd);
}

TEST(pool_child_after_fork_never_gets_parent_session)
{
    unsigned port;
    int lfd = listener(&port);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    unsigned char k[SE_POOL_KEY_LEN];
    se_pool_key(k, "pool-test-fork", port, 2, NULL, NULL, NULL, NULL);
    se_session *s = idle_session(port, k);
    se_pool_put(s, 2);
    pid_t pid = fork();
    if (pid == 0)
        _exit(se_pool_get(k, 5000) == NULL ? 0 : 1);
    int st = -1;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The child wrote nothing on the parent's connection. */
    int afd = accept(lfd, NULL, NULL);
    char b[16];
    CHECK(recv(afd, b, sizeof b, MSG_DONTWAIT) < 0);
    se_session *g = se_pool_get(k, 5000);
    CHECK(g == s);
    se_session_close(g, 0, 1);
    close(afd);
    close(lfd);
}

TEST(pool_session_of_other_process_is_dropped_silently)
{
    unsigned port;
    int lfd = listener(&port);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    unsigned char k[SE_POOL_KEY_LEN];
    se_pool_key(k, "pool-test-pid", port, 2, NULL, NULL, NULL, NULL);
    se_session *s = idle_session(port, k);
    s->pid = getpid() + 1; /* as if inherited without the atfork handler */
    se_pool_put(s, 2);     /* dropped: no QUIT */
    int afd = accept(lfd, NULL, NULL);
    char b[16];
    CHECK_INT(recv(afd, b, sizeof b, 0), 0); /* EOF, no byte */
    close(afd);
    close(lfd);
}

static int results_seen;
static void count_result(void *arg, size_t index, const scalr_email_error *e)
{
    (void)arg;
    (void)e;
    results_seen += (int)index + 1;
}

TEST(batch_arguments_and_per_message_results)
{
    scalr_email_error err;
    CHECK_INT(scalr_email_client_send_batch(NULL, NULL, 0, NULL, NULL, &err), SCALR_EMAIL_EINVAL);
    scalr_email_client *c = NULL;
    scalr_email_config cfg = {.host = "127.0.0.1",
                              .port = 1,
                              .tls = SCALR_EMAIL_TLS_NONE,
                              .from = "a@example.com",
                              .timeout_ms = 2000};
    CHECK_INT(scalr_email_client_new(&c, &cfg, &err), SCALR_EMAIL_OK);
    if (!c)
        return;
    CHECK_INT(scalr_email_client_send_batch(c, NULL, 0, NULL, NULL, &err), SCALR_EMAIL_OK);
    scalr_email_batch_opts bad = {.rate = -1};
    CHECK_INT(scalr_email_client_send_batch(c, NULL, 0, &bad, NULL, &err), SCALR_EMAIL_EINVAL);

    /* One bad message (never sent), one that finds nobody listening. */
    scalr_email_message m[2] = {
        {.to = SCALR_EMAIL_LIST("not an address"), .subject = "s", .body = "b"},
        {.to = SCALR_EMAIL_LIST("b@example.com"), .subject = "s", .body = "b"},
    };
    scalr_email_error res[2];
    scalr_email_batch_opts o = {.connections = 2, .max_tries = 2, .on_result = count_result};
    results_seen = 0;
    CHECK_INT(scalr_email_client_send_batch(c, m, 2, &o, res, &err), SCALR_EMAIL_EINVAL);
    CHECK_INT(res[0].code, SCALR_EMAIL_EINVAL);
    CHECK_INT(res[1].code, SCALR_EMAIL_ECONNECT);
    CHECK(res[1].message_id[0] == '<');
    CHECK_INT(results_seen, 3); /* indexes 0 and 1, once each */
    CHECK(strstr(err.message, "2 of 2 messages") != NULL);
    scalr_email_client_free(c);
}

/* SMTP_POOL_MAX slots: reserved up to max, then a wait bounded by its
 * deadline; a slot freed by closing a counted session is taken again. */
TEST(pool_max_slots_wait_and_release)
{
    unsigned char key[SE_POOL_KEY_LEN];
    se_pool_key(key, "slots.example", 25, 0, NULL, NULL, NULL, "h");
    long long now = se_pool_now_ms();
    CHECK_INT(se_pool_reserve(key, 2, now + 1000), 1);
    CHECK_INT(se_pool_reserve(key, 2, now + 1000), 1);
    long long t0 = se_pool_now_ms();
    CHECK_INT(se_pool_reserve(key, 2, t0 + 150), -1);
    long long dt = se_pool_now_ms() - t0;
    CHECK(dt >= 140 && dt < 2000);
    /* a counted session closed gives its slot back */
    unsigned port;
    int lfd = listener(&port);
    se_session *s = lfd >= 0 ? idle_session(port, key) : NULL;
    CHECK(s != NULL);
    if (s) {
        s->counted = 1;
        se_session_close(s, 0, 0);
        CHECK_INT(se_pool_reserve(key, 2, se_pool_now_ms() + 1000), 1);
        se_pool_unreserve(key);
    }
    se_pool_unreserve(key); /* the first reservation; the second went with s */
    if (lfd >= 0)
        close(lfd);
}
