/* The process-wide connection pool (see pool.h and scalr_email.h).
 *
 * One mutex guards one list of idle sessions; sessions in use belong to
 * their thread alone.  Nothing is done on the wire while the lock is held
 * except closing sessions that are already out of the list. */
#include "pool.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "scalr_email.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static se_session *idle_list;

/* Connection slots per key (SMTP_POOL_MAX): sessions opened with a
 * reservation, in use or idle.  A waiter sleeps on `released`, signalled
 * when a session is given back or a slot freed. */
typedef struct slot_count {
    unsigned char key[SE_POOL_KEY_LEN];
    int n;
    struct slot_count *next;
} slot_count;
static slot_count *slots;
static pthread_cond_t released;
static pthread_once_t cond_once = PTHREAD_ONCE_INIT;

static void cond_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC); /* deadlines are monotonic */
    pthread_cond_init(&released, &a);
    pthread_condattr_destroy(&a);
}

long long se_pool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void se_session_trace(void *arg, char dir, const char *line, size_t len)
{
    se_session *s = arg;
    if (s->trace)
        s->trace(s->trace_arg, dir, line, len);
}

/* fork() while another thread holds the lock would leave the child's copy
 * locked forever: hold it across fork, and in the child forget the
 * parent's sessions without touching them (their sockets are shared with
 * the parent: no QUIT, no TLS close_notify, not even a free of the SSL
 * objects' state is needed beyond our memory). */
static void before_fork(void)
{
    pthread_mutex_lock(&lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&lock);
}

static void after_fork_child(void)
{
    se_session *s = idle_list;
    idle_list = NULL;
    /* The parent's slots are not the child's (its sessions are dropped). */
    while (slots) {
        slot_count *n = slots->next;
        free(slots);
        slots = n;
    }
    pthread_mutex_unlock(&lock);
    while (s) {
        se_session *next = s->next;
        se_session_close(s, 0, 0); /* pid differs: dropped silently */
        s = next;
    }
}

static void register_atfork(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

void se_pool_key(unsigned char key[SE_POOL_KEY_LEN], const char *host, unsigned port, int tls,
                 const char *user, const char *password, const char *ca_file, const char *helo)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    char num[32];
    memset(key, 0, SE_POOL_KEY_LEN);
    if (!md)
        return; /* an all-zero key: still only equal to itself */
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    const char *parts[] = {host, user, password, ca_file, helo};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *p = parts[i] ? parts[i] : "";
        EVP_DigestUpdate(md, p, strlen(p) + 1); /* with the NUL: no ambiguity */
    }
    int n_num = snprintf(num, sizeof num, "%u/%d", port, tls);
    EVP_DigestUpdate(md, num, (size_t)n_num + 1);
    EVP_DigestFinal_ex(md, key, &n);
    EVP_MD_CTX_free(md);
}

/* A zero-timeout check that costs no round trip: a server that closed or
 * sent something (421) while we were idle shows as readable at once.  A
 * readable TLS socket may only carry session tickets: a 1 ms read tells. */
static int alive(se_session *s)
{
    if (!se_smtp_reusable(s->eng))
        return 0;
    struct pollfd p = {.fd = se_conn_fd(s->conn), .events = POLLIN};
    if (p.fd < 0)
        return 0;
    int r = poll(&p, 1, 0);
    if (r == 0)
        return 1;
    if (r < 0 || (p.revents & (POLLERR | POLLNVAL)))
        return 0;
    char b[512];
    size_t got = 0;
    scalr_email_error e;
    scalr_email_code rc = se_conn_read(s->conn, b, sizeof b, &got, 1, "", &e);
    if (rc == SCALR_EMAIL_ETIMEOUT)
        return 1; /* TLS records without data */
    if (rc == SCALR_EMAIL_OK && got > 0)
        se_smtp_feed(s->eng, b, got); /* shows in the trace; the session is done */
    return 0;
}

se_session *se_pool_get(const unsigned char key[SE_POOL_KEY_LEN], unsigned idle_ms)
{
    pthread_once(&atfork_once, register_atfork);
    pid_t me = getpid();
    long long now = se_pool_now_ms();
    se_session *found = NULL, *dead = NULL;
    pthread_mutex_lock(&lock);
    se_session **pp = &idle_list;
    while (*pp) {
        se_session *s = *pp;
        int other_process = s->pid != me;
        int expired = now - s->idle_since > (long long)idle_ms;
        if (other_process || expired) {
            *pp = s->next;
            s->next = dead;
            dead = s;
            continue;
        }
        /* The most recently used session comes first (put pushes in front). */
        if (!found && memcmp(s->key, key, SE_POOL_KEY_LEN) == 0) {
            *pp = s->next;
            found = s;
            continue;
        }
        pp = &s->next;
    }
    pthread_mutex_unlock(&lock);
    while (dead) {
        se_session *next = dead->next;
        se_session_close(dead, 1000, 0); /* QUIT, no waiting: a send is waiting */
        dead = next;
    }
    if (found && !alive(found)) {
        se_session_close(found, 0, 0);
        found = NULL;
    }
    if (found) {
        found->next = NULL;
        found->reused = 1;
    }
    return found;
}

void se_pool_put(se_session *s, int max_idle)
{
    if (!s)
        return;
    pthread_once(&atfork_once, register_atfork);
    pthread_once(&cond_once, cond_init);
    if (max_idle <= 0 || s->pid != getpid() || !se_smtp_reusable(s->eng)) {
        /* The message was accepted at its 250: QUIT goes out, its reply is
         * not worth a round trip of the caller's time. */
        se_session_close(s, 5000, 0);
        return;
    }
    int n = 0;
    pthread_mutex_lock(&lock);
    for (se_session *t = idle_list; t; t = t->next)
        n += memcmp(t->key, s->key, SE_POOL_KEY_LEN) == 0;
    int keep = n < max_idle;
    if (keep) {
        s->trace = NULL;
        s->trace_arg = NULL;
        s->idle_since = se_pool_now_ms();
        s->next = idle_list;
        idle_list = s;
    }
    if (keep)
        pthread_cond_broadcast(&released);
    pthread_mutex_unlock(&lock);
    if (!keep)
        se_session_close(s, 1000, 0);
}

static slot_count *slot_find(const unsigned char *key)
{
    for (slot_count *c = slots; c; c = c->next)
        if (memcmp(c->key, key, SE_POOL_KEY_LEN) == 0)
            return c;
    return NULL;
}

static int idle_for(const unsigned char *key)
{
    for (se_session *t = idle_list; t; t = t->next)
        if (memcmp(t->key, key, SE_POOL_KEY_LEN) == 0 && t->pid == getpid())
            return 1;
    return 0;
}

int se_pool_reserve(const unsigned char key[SE_POOL_KEY_LEN], int max, long long deadline)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_once(&cond_once, cond_init);
    int rc;
    pthread_mutex_lock(&lock);
    for (;;) {
        slot_count *c = slot_find(key);
        if (!c || c->n < max) {
            if (!c && (c = calloc(1, sizeof *c)) != NULL) {
                memcpy(c->key, key, SE_POOL_KEY_LEN);
                c->next = slots;
                slots = c;
            }
            if (c)
                c->n++;
            rc = 1; /* out of memory: not counted, but never stuck */
            break;
        }
        if (idle_for(key)) {
            rc = 0;
            break;
        }
        long long left = deadline - se_pool_now_ms();
        if (left <= 0) {
            rc = -1;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&released, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void se_pool_unreserve(const unsigned char key[SE_POOL_KEY_LEN])
{
    pthread_once(&cond_once, cond_init);
    pthread_mutex_lock(&lock);
    slot_count **pp = &slots;
    while (*pp && memcmp((*pp)->key, key, SE_POOL_KEY_LEN) != 0)
        pp = &(*pp)->next;
    if (*pp && --(*pp)->n <= 0) {
        slot_count *dead = *pp;
        *pp = dead->next;
        free(dead);
    }
    pthread_cond_broadcast(&released);
    pthread_mutex_unlock(&lock);
}

void se_session_close(se_session *s, unsigned quit_ms, int wait_reply)
{
    if (!s)
        return;
    if (s->pid != getpid()) {
        /* Inherited across fork(): the parent still uses this connection. */
        se_conn_drop(s->conn);
        se_smtp_free(s->eng);
        free(s);
        return;
    }
    /* Only a session in step says goodbye: an idle one, or one that failed
     * cleanly (the engine decides); never flush a half-written command. */
    if (quit_ms && s->eng && s->conn &&
        (se_smtp_reusable(s->eng) || se_smtp_step(s->eng) == SE_SMTP_FAILED)) {
        se_smtp_quit(s->eng);
        char buf[512];
        scalr_email_error e;
        /* One deadline for the reply, however it trickles in. */
        long long end = se_conn_now_ms() + quit_ms;
        for (int steps = 0; steps < 8; steps++) {
            se_smtp_want w = se_smtp_step(s->eng);
            if (w == SE_SMTP_WRITE) {
                size_t n;
                const char *p = se_smtp_out(s->eng, &n);
                if (se_conn_write(s->conn, p, n, quit_ms, "QUIT", &e) != SCALR_EMAIL_OK)
                    break;
                se_smtp_sent(s->eng, n);
            } else if (w == SE_SMTP_READ && wait_reply) {
                size_t got = 0;
                if (se_conn_read_by(s->conn, buf, sizeof buf, &got, end, quit_ms, "QUIT", &e) !=
                    SCALR_EMAIL_OK)
                    break;
                if (got == 0)
                    se_smtp_eof(s->eng);
                else
                    se_smtp_feed(s->eng, buf, got);
            } else {
                break;
            }
        }
    }
    se_conn_close(s->conn);
    se_smtp_free(s->eng);
    if (s->counted)
        se_pool_unreserve(s->key);
    free(s);
}

void se_pool_close_idle(void)
{
    pthread_mutex_lock(&lock);
    se_session *s = idle_list;
    idle_list = NULL;
    pthread_mutex_unlock(&lock);
    while (s) {
        se_session *next = s->next;
        se_session_close(s, 1000, 1);
        s = next;
    }
}

void scalr_email_pool_close_idle(void)
{
    se_pool_close_idle();
}

/* At exit (and dlclose): say goodbye to the idle connections. */
__attribute__((destructor)) static void pool_fini(void)
{
    se_pool_close_idle();
}
