/* The inbox's SMTP listener (server.h): a few event loops (epoll, one per CPU)
 * drive the ib_smtpd sessions over non-blocking sockets, with OpenSSL on top
 * when TLS is on.  One loop thread serves many connections: when a load
 * generator writes to twenty sessions at once, one wake-up answers them all,
 * where a thread per connection would pay twenty context switches.
 *
 * Storing blocks (an fsync with --db; the store's lock and the parsing of the
 * message in any case), so a message goes to a pool of storer threads; their
 * concurrent ib_store_add() calls are what lets the store commit many
 * messages in one transaction.  The session stays parked until its message
 * is durable, then the loop sends the 250.  Storing in the loop itself was
 * measured slower even in memory: a loop waiting for another's commit
 * stalls all its sessions.
 *
 * Stopping: every session is told 421 and closed; sessions stuck on a client
 * that does not read are cut off after a grace period.
 *
 * The TLS side (the context, handshakes, TLS reads and writes) is in
 * server_tls.c; server_int.h holds what the two share. */
#define _GNU_SOURCE /* accept4(); this file is Linux-only (epoll) anyway */
#include "server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define READS_PER_TURN 16 /* then let the loop's other sessions run */
#define MAX_LOOPS 8
#define STOP_GRACE_MS 2000
#define LINGER_MS 500
#define STRESS_IDLE_MS 5000      /* under stress: idle between commands */
#define STRESS_IDLE_MSG_MS 15000 /* under stress: idle inside a message or AUTH */
#define EVENTS 256

int ib_server_fail(char *why, size_t whylen, const char *what, const char *detail)
{
    if (why && whylen)
        snprintf(why, whylen, "%s: %s", what, detail);
    return -1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void block_sigpipe(void)
{
    sigset_t sigs; /* OpenSSL writes with write(): EPIPE instead of a signal */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
        return;
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
}

static void wake(loop *lp)
{
    uint64_t one = 1;
    if (write(lp->efd, &one, sizeof one) < 0) {
        /* the counter is already non-zero: the loop will wake anyway */
    }
}

/* --- connection I/O ------------------------------------------------------- */

static long conn_read(conn *c, char *buf, size_t len)
{
    if (c->ssl)
        return ib_server_tls_read(c, buf, len);
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return (long)n;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_WANT_READ : IO_ERR;
    }
}

static long conn_write(conn *c, const char *p, size_t len)
{
    if (c->ssl)
        return ib_server_tls_write(c, p, len);
    for (;;) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (long)n;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_WANT_WRITE : IO_ERR;
    }
}

/* Change what epoll watches for; 0 unregisters (a parked session must not
 * be woken, not even by a reset peer's endless EPOLLHUP). */
static void set_events(conn *c, uint32_t ev)
{
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    int op = !ev ? EPOLL_CTL_DEL : c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    epoll_ctl(c->lp->ep, op, c->fd, &e);
    c->events = ev;
}

/* Per-address accounting (srv->lock held).  1: counted, 0: over the limit. */
static int client_take(ib_server *srv, const char *ip)
{
    size_t i = 0;
    for (; i < srv->n_clients; i++)
        if (!strcmp(srv->clients[i].ip, ip))
            break;
    if (i < srv->n_clients) {
        if (srv->clients[i].n >= srv->conf.max_per_client)
            return 0;
        srv->clients[i].n++;
        return 1;
    }
    struct client_count *g = realloc(srv->clients, (srv->n_clients + 1) * sizeof *g);
    if (!g)
        return 0;
    srv->clients = g;
    snprintf(g[i].ip, sizeof g[i].ip, "%s", ip);
    g[i].n = 1;
    srv->n_clients++;
    return 1;
}

static void client_give(ib_server *srv, const char *ip)
{
    for (size_t i = 0; i < srv->n_clients; i++)
        if (!strcmp(srv->clients[i].ip, ip)) {
            if (--srv->clients[i].n == 0)
                srv->clients[i] = srv->clients[--srv->n_clients];
            return;
        }
}

static void conn_close(conn *c)
{
    loop *lp = c->lp;
    ib_server *srv = lp->srv;
    set_events(c, 0);
    if (c->ssl) {
        if (!c->lingering) /* close_notify, without waiting for the peer's */
            ib_server_tls_shutdown(c);
        ib_server_tls_free(c);
    }
    close(c->fd);
    ib_smtpd_free(c->s);
    if (c->prev)
        c->prev->next = c->next;
    else
        lp->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->closed = 1;
    c->qnext = lp->grave; /* freed at the end of the loop's turn */
    lp->grave = c;
    pthread_mutex_lock(&srv->lock);
    srv->active--;
    if (c->ip[0])
        client_give(srv, c->ip);
    pthread_mutex_unlock(&srv->lock);
}

/* --- storing ---------------------------------------------------------------- */

static void *storer_main(void *arg)
{
    ib_server *srv = arg;
    block_sigpipe();
    pthread_mutex_lock(&srv->lock);
    for (;;) {
        while (!srv->sq_head && !srv->storers_stop) {
            srv->storers_idle++;
            pthread_cond_wait(&srv->work, &srv->lock);
            srv->storers_idle--;
        }
        conn *c = srv->sq_head;
        if (!c)
            break;
        srv->sq_head = c->qnext;
        if (!srv->sq_head)
            srv->sq_tail = NULL;
        srv->sq_n--;
        pthread_mutex_unlock(&srv->lock);

        /* The loop does not touch a STORING session: it is ours until handed back. */
        ib_envelope env;
        const char *raw;
        size_t len;
        int64_t id = -1;
        ib_smtpd_message(c->s, &env, &raw, &len);
        uint64_t flen;
        int fd = ib_smtpd_message_file(c->s, &flen);
        if (fd >= 0 ? ib_store_add_file(srv->conf.store, &env, fd, flen, &id, NULL, 0) < 0
                    : ib_store_add(srv->conf.store, &env, raw, len, &id, NULL, 0) < 0)
            id = -1;
        c->stored_id = id;
        loop *lp = c->lp;
        pthread_mutex_lock(&lp->lock);
        c->qnext = lp->done;
        lp->done = c;
        pthread_mutex_unlock(&lp->lock);
        wake(lp);

        pthread_mutex_lock(&srv->lock);
    }
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

static void submit(conn *c)
{
    ib_server *srv = c->lp->srv;
    pthread_mutex_lock(&srv->lock);
    c->qnext = NULL;
    if (srv->sq_tail)
        srv->sq_tail->qnext = c;
    else
        srv->sq_head = c;
    srv->sq_tail = c;
    srv->sq_n++;
    /* Enough storers that every waiting message is being written: that is
     * what lets the store batch them into one commit. */
    if (srv->storers_idle < srv->sq_n && srv->n_storers < MAX_STORERS &&
        pthread_create(&srv->storers[srv->n_storers], NULL, storer_main, srv) == 0)
        srv->n_storers++;
    pthread_cond_signal(&srv->work);
    pthread_mutex_unlock(&srv->lock);
}

/* --- driving a session ------------------------------------------------------ */

static void make_runnable(conn *c)
{
    if (c->runnable)
        return;
    c->runnable = 1;
    c->rnext = c->lp->runq;
    c->lp->runq = c;
}

static void park_delay(conn *c, unsigned ms)
{
    set_events(c, 0);
    c->parked = DELAYED;
    c->wake_ms = now_ms() + ms;
    c->tnext = c->lp->delayed;
    c->lp->delayed = c;
}

/* Run the session until it waits for the network, a storer or a timer. */
static void drive(conn *c)
{
    loop *lp = c->lp;
    int reads = 0, drained = 0;
    if (c->lingering) {
        for (;;) { /* whatever the client still sends is dropped */
            ssize_t r = recv(c->fd, lp->buf, sizeof lp->buf, 0);
            if (r > 0)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (r < 0 && errno == EINTR)
                continue;
            conn_close(c);
            return;
        }
    }
    for (;;) {
        long n = IO_ERR;
        if (c->hs) {
            long r = ib_server_tls_handshake(c);
            if (r != 1) {
                if (r == IO_WANT_READ || r == IO_WANT_WRITE) {
                    set_events(c, r == IO_WANT_READ ? EPOLLIN : EPOLLOUT);
                    return;
                }
                conn_close(c);
                return;
            }
            if (c->hs == 2)
                ib_smtpd_tls_started(c->s);
            c->hs = 0;
            c->last_ms = now_ms();
        }
        size_t len;
        const char *out;
        switch (ib_smtpd_step(c->s)) {
        case IB_SMTPD_WRITE:
            out = ib_smtpd_out(c->s, &len);
            n = conn_write(c, out, len);
            if (n > 0) {
                ib_smtpd_sent(c->s, (size_t)n);
                c->last_ms = now_ms();
                continue;
            }
            break;
        case IB_SMTPD_READ:
            if (lp->stopping) {
                ib_smtpd_shutdown(c->s);
                continue;
            }
            if (reads == READS_PER_TURN) { /* fairness: the others' turn */
                make_runnable(c);
                return;
            }
            if (drained) { /* a short read emptied the socket: skip the EAGAIN */
                set_events(c, EPOLLIN);
                return;
            }
            n = conn_read(c, lp->buf, sizeof lp->buf);
            if (n > 0) {
                reads++;
                drained = !c->ssl && (size_t)n < sizeof lp->buf;
                c->last_ms = now_ms();
                if (ib_smtpd_feed(c->s, lp->buf, (size_t)n) < 0)
                    n = IO_ERR;
                else
                    continue;
            } else if (n == 0) {
                ib_smtpd_eof(c->s);
                continue;
            }
            break;
        case IB_SMTPD_MESSAGE:
            set_events(c, 0);
            c->parked = STORING;
            submit(c);
            return;
        case IB_SMTPD_DELAY: park_delay(c, ib_smtpd_delay_ms(c->s)); return;
        case IB_SMTPD_TLS:
            if (ib_server_tls_accept(c) < 0) {
                conn_close(c);
                return;
            }
            c->hs = 2;
            continue;
        case IB_SMTPD_CLOSE:
            /* After the last reply, let the client close first: the TIME_WAIT
             * then stays on its side, where the kernel may reuse its port.
             * On ours, a fast client cycling through its ephemeral ports
             * keeps hitting our TIME_WAITs, and each hit costs it a 1 s SYN
             * retransmission. */
            if (!ib_smtpd_linger(c->s) || lp->stopping) {
                conn_close(c);
                return;
            }
            if (c->ssl)
                ib_server_tls_shutdown(c);
            c->lingering = 1;
            c->last_ms = now_ms();
            set_events(c, EPOLLIN | EPOLLRDHUP);
            drive(c);
            return;
        }
        /* An I/O call could not go on. */
        if (n == IO_WANT_READ || n == IO_WANT_WRITE) {
            set_events(c, n == IO_WANT_READ ? EPOLLIN : EPOLLOUT);
            return;
        }
        conn_close(c);
        return;
    }
}

/* --- the loop ----------------------------------------------------------------- */

static void refuse(ib_server *srv, int fd)
{
    if (!srv->conf.tls_implicit) { /* RFC 5321 3.1: 421 and close */
        char msg[160];
        int n = snprintf(msg, sizeof msg, "421 4.3.2 %s Error: too many connections, try later\r\n",
                         srv->conf.smtpd.hostname);
        if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* the client is gone already */
        }
    }
    close(fd);
}

static void refuse_client(ib_server *srv, int fd)
{
    if (!srv->conf.tls_implicit) {
        char msg[160];
        int n = snprintf(msg, sizeof msg,
                         "421 4.7.0 %s Error: too many connections from your address\r\n",
                         srv->conf.smtpd.hostname);
        if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* the client is gone already */
        }
    }
    close(fd);
}

static int is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(v6))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(v6))
            return v6->s6_addr[12] == 127;
    }
    return 0;
}

static void peer_ip(const struct sockaddr_storage *a, char *out, size_t len)
{
    const void *src = a->ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
    if (!inet_ntop(a->ss_family, src, out, (socklen_t)len))
        snprintf(out, len, "?");
}

static void accept_all(loop *lp)
{
    ib_server *srv = lp->srv;
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int fd = accept4(srv->lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: try again at the next event */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

        /* The peer's address, counted when it is not loopback (a compose
         * network gives each service its own). */
        char ip[64] = "";
        if (srv->conf.max_per_client && !is_loopback(&peer))
            peer_ip(&peer, ip, sizeof ip);
        pthread_mutex_lock(&srv->lock);
        int ok = !srv->stopping && srv->active < srv->conf.max_conn;
        int per_client_ok = !ok || !ip[0] || client_take(srv, ip);
        if (ok && per_client_ok)
            srv->active++;
        pthread_mutex_unlock(&srv->lock);
        if (!per_client_ok) {
            refuse_client(srv, fd);
            continue;
        }
        conn *c = ok ? calloc(1, sizeof *c) : NULL;
        if (!c && ok && ip[0]) {
            pthread_mutex_lock(&srv->lock);
            client_give(srv, ip);
            pthread_mutex_unlock(&srv->lock);
        }
        if (c) {
            c->lp = lp;
            c->fd = fd;
            snprintf(c->ip, sizeof c->ip, "%s", ip);
            format_addr(&peer, c->peer, sizeof c->peer);
            c->s = ib_smtpd_new(&srv->conf.smtpd, c->peer, srv->conf.tls_implicit);
            if (c->s && srv->conf.tls_implicit && ib_server_tls_accept(c) == 0)
                c->hs = 1;
            if (!c->s || (srv->conf.tls_implicit && !c->hs)) {
                ib_server_tls_free(c);
                ib_smtpd_free(c->s);
                if (c->ip[0]) {
                    pthread_mutex_lock(&srv->lock);
                    client_give(srv, c->ip);
                    pthread_mutex_unlock(&srv->lock);
                }
                free(c);
                c = NULL;
            }
        }
        if (!c) {
            if (ok) {
                pthread_mutex_lock(&srv->lock);
                srv->active--;
                pthread_mutex_unlock(&srv->lock);
            }
            refuse(srv, fd);
            continue;
        }
        c->last_ms = now_ms();
        c->next = lp->conns;
        if (lp->conns)
            lp->conns->prev = c;
        lp->conns = c;
        drive(c);
    }
}

static void take_completions(loop *lp)
{
    uint64_t n;
    if (read(lp->efd, &n, sizeof n) < 0) {
        /* nothing was pending */
    }
    pthread_mutex_lock(&lp->lock);
    conn *done = lp->done;
    lp->done = NULL;
    pthread_mutex_unlock(&lp->lock);
    while (done) {
        conn *c = done;
        done = c->qnext;
        c->parked = RUNNING;
        c->last_ms = now_ms();
        ib_smtpd_stored(c->s, c->stored_id);
        drive(c);
    }
    if (!lp->stopping) {
        pthread_mutex_lock(&lp->srv->lock);
        lp->stopping = lp->srv->stopping;
        pthread_mutex_unlock(&lp->srv->lock);
        if (lp->stopping) { /* stop accepting; tell every idle session */
            lp->stop_deadline = now_ms() + STOP_GRACE_MS;
            epoll_ctl(lp->ep, EPOLL_CTL_DEL, lp->srv->lfd, NULL);
            for (conn *c = lp->conns, *nx; c; c = nx) {
                nx = c->next;
                if (c->lingering)
                    conn_close(c);
                else if (c->parked == RUNNING && c->events == EPOLLIN)
                    make_runnable(c);
            }
            for (conn *c = lp->delayed; c; c = c->tnext)
                c->wake_ms = 0;
        }
    }
}

/* Delays that are over, idle sessions, the stop deadline; returns the
 * epoll timeout until the next of these. */
static int timers(loop *lp, int64_t *next_sweep)
{
    int64_t now = now_ms(), next = now + 1000;
    for (conn **pp = &lp->delayed; *pp;) {
        conn *c = *pp;
        if (c->wake_ms <= now) {
            *pp = c->tnext;
            c->parked = RUNNING;
            c->last_ms = now;
            make_runnable(c);
        } else {
            next = c->wake_ms < next ? c->wake_ms : next;
            pp = &c->tnext;
        }
    }
    if (now >= *next_sweep) { /* RFC 5321 4.5.3.2: the server's timeout */
        int64_t idle = (int64_t)lp->srv->conf.idle_timeout_s * 1000;
        /* Under stress (over 80% of the slots in use), as Postfix's smtpd
         * does: idle timeouts drop to seconds, shortest for sessions idle
         * between commands (or in a TLS handshake), which go first; so a
         * client that leaked its connections cannot lock others out. */
        pthread_mutex_lock(&lp->srv->lock);
        int stressed = (uint64_t)lp->srv->active * 5 > (uint64_t)lp->srv->conf.max_conn * 4;
        pthread_mutex_unlock(&lp->srv->lock);
        for (conn *c = lp->conns, *nx; c; c = nx) {
            nx = c->next;
            if (c->lingering && now - c->last_ms >= LINGER_MS) {
                conn_close(c);
                continue;
            }
            int64_t limit = idle;
            if (stressed) {
                int64_t short_ms =
                    c->hs || ib_smtpd_between_commands(c->s) ? STRESS_IDLE_MS : STRESS_IDLE_MSG_MS;
                limit = short_ms < idle ? short_ms : idle;
            }
            if (c->parked != RUNNING || c->lingering || now - c->last_ms < limit)
                continue;
            if (c->hs || c->events == EPOLLOUT) { /* nothing can be said: just hang up */
                conn_close(c);
            } else {
                ib_smtpd_timeout(c->s); /* 421, then close */
                make_runnable(c);
            }
        }
        *next_sweep = now + 250;
    }
    next = *next_sweep < next ? *next_sweep : next;
    if (lp->stopping) {
        if (now >= lp->stop_deadline) { /* clients that do not read are cut off */
            for (conn *c = lp->conns, *nx; c; c = nx) {
                nx = c->next;
                if (c->parked == RUNNING)
                    conn_close(c);
            }
        }
        next = now + 50 < next ? now + 50 : next;
    }
    return lp->runq ? 0 : (int)(next - now);
}

static void *loop_main(void *arg)
{
    loop *lp = arg;
    block_sigpipe();
    struct epoll_event ev[EVENTS];
    int64_t next_sweep = now_ms() + 250;
    while (!lp->stopping || lp->conns) {
        int timeout = timers(lp, &next_sweep);
        int n = epoll_wait(lp->ep, ev, EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &lp->srv->lfd) {
                if (!lp->stopping)
                    accept_all(lp);
            } else if (p == &lp->efd) {
                take_completions(lp);
            } else {
                conn *c = p;
                if (!c->closed && c->parked == RUNNING)
                    drive(c);
            }
        }
        conn *run = lp->runq; /* sessions that yielded or woke from a timer */
        lp->runq = NULL;
        while (run) {
            conn *c = run;
            run = c->rnext;
            c->runnable = 0;
            if (!c->closed && c->parked == RUNNING)
                drive(c);
        }
        while (lp->grave) {
            conn *c = lp->grave;
            lp->grave = c->qnext;
            free(c);
        }
    }
    return NULL;
}

/* --- starting and stopping ----------------------------------------------------- */

static int listen_on(ib_server *srv, char *why, size_t whylen)
{
    char port[16];
    snprintf(port, sizeof port, "%u", srv->conf.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(srv->conf.host, port, &hints, &res);
    if (rc != 0)
        return ib_server_fail(why, whylen, srv->conf.host, gai_strerror(rc));
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0) {
            srv->lfd = fd;
            break;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (srv->lfd < 0) {
        char what[300];
        snprintf(what, sizeof what, "SMTP listener on %s:%u", srv->conf.host, srv->conf.port);
        return ib_server_fail(why, whylen, what, strerror(err));
    }
    socklen_t al = sizeof srv->addr;
    getsockname(srv->lfd, (struct sockaddr *)&srv->addr, &al);
    return 0;
}

static int loop_start(loop *lp, ib_server *srv, char *why, size_t whylen)
{
    lp->srv = srv;
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    lp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&lp->lock, NULL);
    if (lp->ep < 0 || lp->efd < 0)
        return ib_server_fail(why, whylen, "SMTP listener", strerror(errno));
    /* EPOLLEXCLUSIVE: one loop wakes per new connection, not all of them. */
    struct epoll_event l = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &srv->lfd};
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &lp->efd};
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, srv->lfd, &l) < 0 ||
        epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->efd, &e) < 0)
        return ib_server_fail(why, whylen, "SMTP listener", strerror(errno));
    if (pthread_create(&lp->thread, NULL, loop_main, lp) != 0)
        return ib_server_fail(why, whylen, "SMTP listener", "cannot start a thread");
    lp->started = 1;
    return 0;
}

int ib_server_start(ib_server **out, const ib_server_conf *conf, char *why, size_t whylen)
{
    *out = NULL;
    ib_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ib_server_fail(why, whylen, "SMTP listener", "out of memory");
    srv->conf = *conf;
    srv->lfd = -1;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->work, NULL);
    if (!srv->conf.max_conn)
        srv->conf.max_conn = 1;
    if (!srv->conf.idle_timeout_s)
        srv->conf.idle_timeout_s = 300;
    srv->conf.smtpd.starttls = conf->tls_cert && !conf->tls_implicit;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    srv->n_loops = cpus < 1 ? 1 : cpus > MAX_LOOPS ? MAX_LOOPS : (unsigned)cpus;
    srv->loops = calloc(srv->n_loops, sizeof *srv->loops);
    if (!srv->loops) {
        ib_server_fail(why, whylen, "SMTP listener", "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < srv->n_loops; i++)
        srv->loops[i].ep = srv->loops[i].efd = -1;
    if (conf->tls_cert && ib_server_tls_setup(srv, why, whylen) < 0)
        goto fail;
    if (listen_on(srv, why, whylen) < 0)
        goto fail;
    for (unsigned i = 0; i < srv->n_loops; i++)
        if (loop_start(&srv->loops[i], srv, why, whylen) < 0)
            goto fail;
    *out = srv;
    return 0;
fail:
    ib_server_stop(srv);
    return -1;
}

void ib_server_addr(const ib_server *srv, char *buf, size_t len)
{
    format_addr(&srv->addr, buf, len);
}

unsigned ib_server_port(const ib_server *srv)
{
    if (srv->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&srv->addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&srv->addr)->sin_port);
}

void ib_server_stop(ib_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->lock);
    srv->stopping = 1;
    pthread_mutex_unlock(&srv->lock);
    /* Each loop says 421 to its sessions and ends when they are all gone. */
    for (unsigned i = 0; srv->loops && i < srv->n_loops; i++)
        if (srv->loops[i].started)
            wake(&srv->loops[i]);
    for (unsigned i = 0; srv->loops && i < srv->n_loops; i++) {
        loop *lp = &srv->loops[i];
        if (lp->started)
            pthread_join(lp->thread, NULL);
        if (lp->ep >= 0)
            close(lp->ep);
        if (lp->efd >= 0)
            close(lp->efd);
        pthread_mutex_destroy(&lp->lock);
    }
    pthread_mutex_lock(&srv->lock);
    srv->storers_stop = 1;
    pthread_cond_broadcast(&srv->work);
    pthread_mutex_unlock(&srv->lock);
    for (unsigned i = 0; i < srv->n_storers; i++)
        pthread_join(srv->storers[i], NULL);
    free(srv->loops);
    free(srv->clients);
    if (srv->lfd >= 0)
        close(srv->lfd);
    ib_server_tls_cleanup(srv);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->work);
    free(srv);
}
