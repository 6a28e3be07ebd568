/* Transport: a non-blocking TCP socket with poll()-bounded waits, and
 * OpenSSL on top of it once TLS starts.  Nothing else in the library calls
 * the socket API or SSL_* (msmtp's tls.c model).
 *
 * SIGPIPE: the library must not change signal dispositions, so every write
 * uses send(..., MSG_NOSIGNAL).  OpenSSL's own socket BIO uses write(), which
 * raises SIGPIPE on a reset connection, so TLS records go through a small
 * BIO of ours that calls send()/recv() directly. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "error.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* BSD/macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

#define SE_CONN_DEFAULT_TIMEOUT_MS 30000u

struct se_conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    int tls_ok;   /* handshake done, chain and name verified       */
    int tls_dead; /* fatal TLS error: no close_notify on close     */
    int plain_io; /* bytes went either way before TLS (STARTTLS)   */
    int in_handshake;
    int io_errno;            /* errno of the last failed send/recv in the BIO */
    int eof;                 /* the BIO read end of stream                    */
    unsigned char first[64]; /* first bytes of the handshake answer, to   */
    size_t n_first;          /* recognise a plain-text server             */
    struct sockaddr_storage peer, local;
    socklen_t peer_len, local_len;
    long long limit;   /* no wait goes past this (se_conn_set_limit); 0: none */
    unsigned limit_ms; /* the limit as configured, for messages          */
};

/* --- time and waiting ------------------------------------------------ */

long long se_conn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline.  1: ready (or an error condition the
 * next I/O call will report), 0: timed out, -1: poll failed (errno). */
static int wait_until(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - se_conn_now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > 0 ? (int)left : 0);
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* "30", "0.2", "1.25": seconds for messages. */
static void fmt_secs(char *out, size_t outlen, unsigned ms)
{
    if (ms % 1000 == 0) {
        snprintf(out, outlen, "%u", ms / 1000);
        return;
    }
    snprintf(out, outlen, "%u.%03u", ms / 1000, ms % 1000);
    size_t n = strlen(out);
    while (n && out[n - 1] == '0')
        out[--n] = '\0';
}

/* The wait's own deadline, or the connection's limit when that is sooner
 * (*by_limit then 1). */
static long long clamp(const se_conn *c, long long deadline, int *by_limit)
{
    *by_limit = c && c->limit && c->limit < deadline;
    return *by_limit ? c->limit : deadline;
}

static scalr_email_code limit_failed(const se_conn *c, const char *stage, scalr_email_error *err)
{
    char secs[32];
    fmt_secs(secs, sizeof secs, c->limit_ms);
    return se_fail(err, SCALR_EMAIL_ETIMEOUT, stage,
                   "the send did not finish within its time limit of %s s (%s)", secs, stage);
}

void se_conn_set_limit(se_conn *c, long long deadline, unsigned limit_ms)
{
    if (c) {
        c->limit = deadline;
        c->limit_ms = limit_ms;
    }
}

static void fmt_hostport(char *out, size_t outlen, const char *host, unsigned port)
{
    if (strchr(host, ':'))
        snprintf(out, outlen, "[%s]:%u", host, port);
    else
        snprintf(out, outlen, "%s:%u", host, port);
}

static void fmt_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
    const void *a = NULL;
    if (sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (!a || !inet_ntop(sa->sa_family, a, out, (socklen_t)outlen))
        snprintf(out, outlen, "?");
}

/* --- TCP ---------------------------------------------------------------- */

/* Connect one address.  0 and *fdp set, or an errno (ETIMEDOUT when the
 * wait ran out). */
static int connect_one(const struct addrinfo *ai, long long deadline, int *fdp)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return errno;
    int one = 1;
    /* SMTP is request/response: Nagle would only add latency. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef SO_NOSIGPIPE
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        *fdp = fd;
        return 0;
    }
    /* EINTR on a non-blocking connect: it goes on asynchronously. */
    if (errno != EINPROGRESS && errno != EINTR) {
        int e = errno;
        close(fd);
        return e;
    }
    int r = wait_until(fd, POLLOUT, deadline);
    int e = 0;
    if (r == 0) {
        e = ETIMEDOUT;
    } else if (r < 0) {
        e = errno;
    } else {
        socklen_t len = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
            e = errno;
    }
    if (e) {
        close(fd);
        return e;
    }
    *fdp = fd;
    return 0;
}

scalr_email_code se_conn_open(se_conn **out, const char *host, unsigned port, unsigned timeout_ms,
                              scalr_email_error *err)
{
    return se_conn_open_by(out, host, port, timeout_ms, 0, 0, err);
}

scalr_email_code se_conn_open_by(se_conn **out, const char *host, unsigned port,
                                 unsigned timeout_ms, long long limit, unsigned limit_ms,
                                 scalr_email_error *err)
{
    *out = NULL;
    if (!timeout_ms)
        timeout_ms = SE_CONN_DEFAULT_TIMEOUT_MS;
    char hp[300], portstr[16], secs[32];
    fmt_hostport(hp, sizeof hp, host, port);
    snprintf(portstr, sizeof portstr, "%u", port);

    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc == EAI_MEMORY)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "out of memory resolving %s", host);
    if (rc)
        return se_fail(err, SCALR_EMAIL_ECONNECT, "CONNECT", "cannot resolve %s: %s", host,
                       rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));

    se_conn *c = calloc(1, sizeof *c);
    if (!c) {
        freeaddrinfo(res);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "out of memory");
    }
    c->fd = -1;
    c->limit = limit;
    c->limit_ms = limit_ms;

    /* RFC 5321 5.1: try each address of the host in turn, each for up to
     * timeout_ms (never past the send's limit). */
    int tried = 0, timed_out = 0, last_errno = 0, by_limit = 0;
    char last_addr[INET6_ADDRSTRLEN] = "?";
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        tried++;
        long long dl = clamp(c, se_conn_now_ms() + timeout_ms, &by_limit);
        int e = connect_one(ai, dl, &c->fd);
        if (e == 0)
            break;
        if (e == ETIMEDOUT) {
            timed_out++;
        } else {
            last_errno = e;
            fmt_addr(ai->ai_addr, last_addr, sizeof last_addr);
        }
    }
    freeaddrinfo(res);

    if (c->fd < 0) {
        if (by_limit && timed_out) {
            scalr_email_code lc = limit_failed(c, "CONNECT", err);
            free(c);
            return lc;
        }
        free(c);
        fmt_secs(secs, sizeof secs, timeout_ms);
        if (!tried)
            return se_fail(err, SCALR_EMAIL_ECONNECT, "CONNECT",
                           "cannot resolve %s: no IPv4 or IPv6 address", host);
        if (timed_out == tried)
            return se_fail(err, SCALR_EMAIL_ETIMEOUT, "CONNECT",
                           "connecting to %s timed out after %s s", hp, secs);
        return se_fail(err, SCALR_EMAIL_ECONNECT, "CONNECT", "cannot connect to %s (%s): %s", hp,
                       last_addr, strerror(last_errno));
    }
    c->peer_len = sizeof c->peer;
    if (getpeername(c->fd, (struct sockaddr *)&c->peer, &c->peer_len) < 0)
        c->peer_len = 0;
    c->local_len = sizeof c->local;
    if (getsockname(c->fd, (struct sockaddr *)&c->local, &c->local_len) < 0)
        c->local_len = 0;
    *out = c;
    return SCALR_EMAIL_OK;
}

/* ACK what arrives while we wait at once.  A TLS 1.3 server sends its
 * session ticket right after the handshake; a server with Nagle on
 * (Postfix) then holds its answer to our EHLO until that ticket is ACKed,
 * and a delayed ACK costs 40 ms (Linux).  Linux leaves quick-ACK mode on
 * its own, so it is asked for before each wait. */
static void quick_ack(se_conn *c)
{
#ifdef TCP_QUICKACK
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
    (void)c;
#endif
}

/* --- the socket BIO ------------------------------------------------------ */

static int sbio_write(BIO *b, const char *p, int n)
{
    se_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    do
        r = send(c->fd, p, (size_t)n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r >= 0)
        return (int)r;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_write(b);
    else
        c->io_errno = errno;
    return -1;
}

static int sbio_read(BIO *b, char *p, int n)
{
    se_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    do
        r = recv(c->fd, p, (size_t)n, 0);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
        if (c->in_handshake && c->n_first < sizeof c->first) {
            size_t k = sizeof c->first - c->n_first;
            if (k > (size_t)r)
                k = (size_t)r;
            memcpy(c->first + c->n_first, p, k);
            c->n_first += k;
        }
        return (int)r;
    }
    if (r == 0) {
        c->eof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_read(b);
    else
        c->io_errno = errno;
    return -1;
}

static int sbio_puts(BIO *b, const char *s)
{
    return sbio_write(b, s, (int)strlen(s));
}

static long sbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    if (cmd == BIO_CTRL_FLUSH)
        return 1;
    if (cmd == BIO_CTRL_EOF) /* how OpenSSL tells EOF from a failed read */
        return ((se_conn *)BIO_get_data(b))->eof;
    return 0;
}

static BIO_METHOD *sbio_method;
static pthread_once_t sbio_once = PTHREAD_ONCE_INIT;

static void sbio_init(void)
{
    int idx = BIO_get_new_index();
    if (idx < 0)
        return;
    BIO_METHOD *m = BIO_meth_new(idx | BIO_TYPE_SOURCE_SINK, "scalr-email socket");
    if (m && BIO_meth_set_write(m, sbio_write) && BIO_meth_set_read(m, sbio_read) &&
        BIO_meth_set_puts(m, sbio_puts) && BIO_meth_set_ctrl(m, sbio_ctrl)) {
        sbio_method = m; /* kept for the life of the process */
        return;
    }
    BIO_meth_free(m);
}

/* --- TLS ------------------------------------------------------------------- */

static int is_ip_literal(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The reason of the first queued OpenSSL error, or NULL. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r;
}

static scalr_email_code handshake_failed(se_conn *c, const char *host, int ssl_err,
                                         scalr_email_error *err)
{
    scalr_email_code rc;
    long vr = SSL_get_verify_result(c->ssl);
    const char *reason = ssl_reason();
    unsigned long first_err = ERR_peek_error();

    if (vr != X509_V_OK) {
        rc = se_fail(err, SCALR_EMAIL_ETLS, "TLS", "certificate verify failed for %s: %s", host,
                     X509_verify_cert_error_string(vr));
    } else if (c->n_first && (c->first[0] < 20 || c->first[0] > 24)) {
        /* A TLS record starts with content type 20..24; "220 ..." does not.
         * OpenSSL read only a record header: fetch the rest of the line
         * that is already here, to quote it. */
        char said[64];
        size_t n = 0;
        while (c->n_first < sizeof c->first && !memchr(c->first, '\n', c->n_first)) {
            ssize_t r =
                recv(c->fd, c->first + c->n_first, sizeof c->first - c->n_first, MSG_DONTWAIT);
            if (r <= 0)
                break;
            c->n_first += (size_t)r;
        }
        while (n < c->n_first && n < sizeof said - 1 && c->first[n] != '\r' && c->first[n] != '\n')
            n++;
        se_copy_line(said, sizeof said, (const char *)c->first, n);
        if (c->plain_io)
            rc = se_fail(err, SCALR_EMAIL_ETLS, "TLS",
                         "TLS handshake with %s failed: server did not answer TLS after "
                         "STARTTLS (it sent \"%s\")",
                         host, said);
        else
            rc = se_fail(err, SCALR_EMAIL_ETLS, "TLS",
                         "TLS handshake with %s failed: server did not answer TLS (it sent "
                         "\"%s\"); is this a STARTTLS port? (SMTP_USE_SSL=true expects port 465)",
                         host, said);
    } else if (ssl_err == SSL_ERROR_SSL && reason &&
               ERR_GET_REASON(first_err) != SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        rc =
            se_fail(err, SCALR_EMAIL_ETLS, "TLS", "TLS handshake with %s failed: %s", host, reason);
    } else if (c->io_errno) {
        rc = se_fail(err, SCALR_EMAIL_ETLS, "TLS", "TLS handshake with %s failed: %s", host,
                     strerror(c->io_errno));
    } else if (c->eof || ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN) {
        rc = se_fail(err, SCALR_EMAIL_ETLS, "TLS",
                     "TLS handshake with %s failed: the server closed the connection", host);
    } else {
        rc = se_fail(err, SCALR_EMAIL_ETLS, "TLS", "TLS handshake with %s failed: %s", host,
                     reason ? reason : "unknown error");
    }
    c->tls_dead = 1;
    ERR_clear_error();
    return rc;
}

/* Set up the SSL object: trust store, SNI and the identity to verify. */
static scalr_email_code tls_setup(se_conn *c, const char *host, const char *ca_file,
                                  scalr_email_error *err)
{
    pthread_once(&sbio_once, sbio_init);
    if (!sbio_method)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "TLS", "cannot create the TLS socket layer");

    /* One context per connection: no shared mutable state between threads,
     * and ca_file may differ between clients. */
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "TLS", "cannot create a TLS context: %s",
                       ssl_reason() ? ssl_reason() : "out of memory");
    /* RFC 8314 4.1: TLS 1.2 or newer. */
    if (!SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION))
        return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "cannot require TLS 1.2");
    /* SMTP delimits its own data (QUIT, "."); many servers close without
     * close_notify, which is then an orderly close, not an error. */
    SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    /* Honours SSL_CERT_FILE / SSL_CERT_DIR.  A missing system bundle is not
     * fatal here: verification then fails with a precise reason. */
    if (!SSL_CTX_set_default_verify_paths(c->ctx))
        ERR_clear_error();
    if (ca_file && *ca_file) {
        /* OpenSSL's reason for an unreadable file is vague: ask first. */
        FILE *f = fopen(ca_file, "r");
        if (!f)
            return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "cannot load CA file %s: %s", ca_file,
                           strerror(errno));
        fclose(f);
    }
    if (ca_file && *ca_file && !SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL)) {
        const char *r = ssl_reason();
        scalr_email_code rc = se_fail(err, SCALR_EMAIL_ETLS, "TLS", "cannot load CA file %s: %s",
                                      ca_file, r ? r : "no certificate found");
        ERR_clear_error();
        return rc;
    }

    c->ssl = SSL_new(c->ctx);
    BIO *bio = c->ssl ? BIO_new(sbio_method) : NULL;
    if (!bio)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "TLS", "out of memory starting TLS");
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    /* RFC 7817 / RFC 9525: the reference identity is the configured host.
     * A trailing dot (absolute name) is not part of it, nor of SNI. */
    char name[256];
    size_t hl = strlen(host);
    if (hl && host[hl - 1] == '.')
        hl--;
    if (hl == 0 || hl >= sizeof name)
        return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "cannot verify host name '%s'", host);
    memcpy(name, host, hl);
    name[hl] = '\0';

    if (is_ip_literal(name)) {
        /* RFC 6066 3: no SNI for addresses; the iPAddress SAN must match. */
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name))
            return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "cannot verify address %s", name);
    } else {
        if (!SSL_set_tlsext_host_name(c->ssl, name))
            return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "cannot send SNI for %s", name);
        /* RFC 9525 6.3: wildcard only as the whole left-most label; 6.4: no
         * CN-ID, the subjectAltName dNSName entries decide. */
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                      X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        if (!SSL_set1_host(c->ssl, name))
            return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "cannot verify host name %s", name);
    }
    return SCALR_EMAIL_OK;
}

scalr_email_code se_conn_start_tls(se_conn *c, const char *host, const char *ca_file,
                                   unsigned timeout_ms, scalr_email_error *err)
{
    if (c->ctx) /* also after a failed attempt: the connection is spent */
        return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "TLS was already started on this connection");
    if (!timeout_ms)
        timeout_ms = SE_CONN_DEFAULT_TIMEOUT_MS;
    ERR_clear_error();
    scalr_email_code rc = tls_setup(c, host, ca_file, err);
    if (rc != SCALR_EMAIL_OK) {
        c->tls_dead = 1;
        ERR_clear_error();
        return rc;
    }

    int by_limit;
    long long deadline = clamp(c, se_conn_now_ms() + timeout_ms, &by_limit);
    c->in_handshake = 1;
    c->n_first = 0;
    c->eof = 0;
    for (;;) {
        ERR_clear_error();
        c->io_errno = 0;
        int r = SSL_connect(c->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(c->ssl, r);
        short ev;
        if (e == SSL_ERROR_WANT_READ) {
            ev = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            ev = POLLOUT;
        } else {
            c->in_handshake = 0;
            return handshake_failed(c, host, e, err);
        }
        int w = wait_until(c->fd, ev, deadline);
        if (w <= 0) {
            char secs[32];
            fmt_secs(secs, sizeof secs, timeout_ms);
            c->in_handshake = 0;
            c->tls_dead = 1;
            if (w == 0 && by_limit)
                return limit_failed(c, "TLS", err);
            if (w == 0)
                return se_fail(err, SCALR_EMAIL_ETIMEOUT, "TLS",
                               "TLS handshake with %s timed out after %s s", host, secs);
            return se_fail(err, SCALR_EMAIL_EIO, "TLS", "TLS handshake with %s: poll: %s", host,
                           strerror(errno));
        }
    }
    c->in_handshake = 0;

    /* Belt and braces: SSL_VERIFY_PEER already aborts on failure. */
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK || !SSL_get0_peer_certificate(c->ssl)) {
        c->tls_dead = 1;
        return se_fail(err, SCALR_EMAIL_ETLS, "TLS", "certificate verify failed for %s: %s", host,
                       vr != X509_V_OK ? X509_verify_cert_error_string(vr)
                                       : "no certificate presented");
    }
    c->tls_ok = 1;
    return SCALR_EMAIL_OK;
}

/* A failed SSL_read/SSL_write: map it to a code and message. */
static scalr_email_code tls_io_failed(se_conn *c, int ssl_err, const char *what, const char *stage,
                                      scalr_email_error *err)
{
    scalr_email_code rc;
    const char *reason = ssl_reason();
    c->tls_dead = 1;
    if (c->io_errno)
        rc = se_fail(err, SCALR_EMAIL_EIO, stage, "error %s the server (%s): %s", what, stage,
                     strerror(c->io_errno));
    else if (ssl_err == SSL_ERROR_SSL)
        rc = se_fail(err, SCALR_EMAIL_ETLS, stage, "TLS error %s the server (%s): %s", what, stage,
                     reason ? reason : "unknown error");
    else
        rc = se_fail(err, SCALR_EMAIL_EIO, stage, "error %s the server (%s): connection closed",
                     what, stage);
    ERR_clear_error();
    return rc;
}

/* --- reading and writing --------------------------------------------------- */

scalr_email_code se_conn_write(se_conn *c, const void *p, size_t n, unsigned timeout_ms,
                               const char *stage, scalr_email_error *err)
{
    const char *s = p;
    size_t off = 0;
    if (!stage)
        stage = "";
    if (!timeout_ms)
        timeout_ms = SE_CONN_DEFAULT_TIMEOUT_MS;
    if (c->tls_dead)
        return se_fail(err, SCALR_EMAIL_EIO, stage, "connection unusable after a TLS error");
    if (!c->ssl)
        c->plain_io = 1;
    while (off < n) {
        short ev = POLLOUT;
        if (c->ssl) {
            size_t w = 0;
            ERR_clear_error();
            c->io_errno = 0;
            if (SSL_write_ex(c->ssl, s + off, n - off, &w)) {
                off += w;
                continue;
            }
            int e = SSL_get_error(c->ssl, 0);
            if (e == SSL_ERROR_WANT_READ)
                ev = POLLIN;
            else if (e != SSL_ERROR_WANT_WRITE)
                return tls_io_failed(c, e, "sending to", stage, err);
        } else {
            ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
            if (w >= 0) {
                off += (size_t)w;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return se_fail(err, SCALR_EMAIL_EIO, stage, "error sending to the server (%s): %s",
                               stage, strerror(errno));
        }
        /* Each wait is bounded, not the whole write: a large message on a
         * slow link is fine as long as it makes progress. */
        int by_limit;
        int r = wait_until(c->fd, ev, clamp(c, se_conn_now_ms() + timeout_ms, &by_limit));
        if (r <= 0) {
            char secs[32];
            fmt_secs(secs, sizeof secs, timeout_ms);
            if (r == 0 && by_limit)
                return limit_failed(c, stage, err);
            if (r == 0)
                return se_fail(err, SCALR_EMAIL_ETIMEOUT, stage,
                               "the server accepted no data within %s s (%s)", secs, stage);
            return se_fail(err, SCALR_EMAIL_EIO, stage, "error sending to the server (%s): %s",
                           stage, strerror(errno));
        }
    }
    return SCALR_EMAIL_OK;
}

scalr_email_code se_conn_read(se_conn *c, void *p, size_t n, size_t *got, unsigned timeout_ms,
                              const char *stage, scalr_email_error *err)
{
    if (!timeout_ms)
        timeout_ms = SE_CONN_DEFAULT_TIMEOUT_MS;
    return se_conn_read_by(c, p, n, got, se_conn_now_ms() + timeout_ms, timeout_ms, stage, err);
}

scalr_email_code se_conn_read_by(se_conn *c, void *p, size_t n, size_t *got, long long deadline,
                                 unsigned timeout_ms, const char *stage, scalr_email_error *err)
{
    *got = 0;
    if (!stage)
        stage = "";
    if (c->tls_dead)
        return se_fail(err, SCALR_EMAIL_EIO, stage, "connection unusable after a TLS error");
    if (n == 0)
        return SCALR_EMAIL_OK;
    if (!c->ssl)
        c->plain_io = 1;
    /* One deadline: TLS records without application data (session
     * tickets, key updates) must not extend it. */
    int by_limit;
    deadline = clamp(c, deadline, &by_limit);
    for (;;) {
        short ev = POLLIN;
        if (c->ssl) {
            size_t r = 0;
            ERR_clear_error();
            c->io_errno = 0;
            /* SSL_read first: data already decrypted (SSL_pending) needs no poll. */
            if (SSL_read_ex(c->ssl, p, n, &r)) {
                *got = r;
                return SCALR_EMAIL_OK;
            }
            int e = SSL_get_error(c->ssl, 0);
            if (e == SSL_ERROR_ZERO_RETURN)
                return SCALR_EMAIL_OK; /* close_notify, or EOF (IGNORE_UNEXPECTED_EOF) */
            if (e == SSL_ERROR_WANT_WRITE)
                ev = POLLOUT;
            else if (e != SSL_ERROR_WANT_READ)
                return tls_io_failed(c, e, "reading from", stage, err);
        } else {
            ssize_t r = recv(c->fd, p, n, 0);
            if (r >= 0) {
                *got = (size_t)r;
                return SCALR_EMAIL_OK;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return se_fail(err, SCALR_EMAIL_EIO, stage,
                               "error reading from the server (%s): %s", stage, strerror(errno));
        }
        if (c->ssl)
            quick_ack(c);
        int w = wait_until(c->fd, ev, deadline);
        if (w <= 0) {
            char secs[32];
            fmt_secs(secs, sizeof secs, timeout_ms);
            if (w == 0 && by_limit)
                return limit_failed(c, stage, err);
            if (w == 0)
                return se_fail(err, SCALR_EMAIL_ETIMEOUT, stage,
                               "no reply from the server within %s s (%s)", secs, stage);
            return se_fail(err, SCALR_EMAIL_EIO, stage, "error reading from the server (%s): %s",
                           stage, strerror(errno));
        }
    }
}

/* --- addresses and TLS details --------------------------------------------- */

int se_conn_peer_is_loopback(const se_conn *c)
{
    if (!c || !c->peer_len)
        return 0;
    if (c->peer.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)&c->peer;
        return (ntohl(s->sin_addr.s_addr) >> 24) == 127; /* 127.0.0.0/8 */
    }
    if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)&c->peer;
        if (IN6_IS_ADDR_LOOPBACK(&s->sin6_addr))
            return 1;
        /* ::ffff:127.0.0.0/104 */
        return IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) && s->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

void se_conn_local_literal(const se_conn *c, char *out, size_t outlen)
{
    char a[INET6_ADDRSTRLEN];
    if (!outlen)
        return;
    out[0] = '\0';
    if (!c || !c->local_len)
        return;
    if (c->local.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)&c->local;
        if (inet_ntop(AF_INET, &s->sin_addr, a, sizeof a))
            snprintf(out, outlen, "[%s]", a); /* RFC 5321 4.1.3 */
    } else if (c->local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)&c->local;
        if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
            if (inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], a, sizeof a))
                snprintf(out, outlen, "[%s]", a);
        } else if (inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a)) {
            snprintf(out, outlen, "[IPv6:%s]", a); /* RFC 5321 4.1.3 */
        }
    }
}

static void set_str(char *dst, size_t dstlen, const char *src)
{
    if (dstlen)
        snprintf(dst, dstlen, "%s", src ? src : "");
}

void se_conn_tls_info(const se_conn *c, char *version, size_t vlen, char *cipher, size_t clen,
                      char *subject, size_t slen, int *verified)
{
    int ok = c && c->ssl && c->tls_ok;
    set_str(version, vlen, ok ? SSL_get_version(c->ssl) : "");
    set_str(cipher, clen, ok ? SSL_get_cipher_name(c->ssl) : "");
    set_str(subject, slen, "");
    X509 *peer = ok ? SSL_get0_peer_certificate(c->ssl) : NULL;
    if (peer && slen) {
        char tmp[1024];
        if (X509_NAME_oneline(X509_get_subject_name(peer), tmp, (int)sizeof tmp))
            se_copy_line(subject, slen, tmp, strlen(tmp));
    }
    if (verified)
        *verified = ok;
}

void se_conn_close(se_conn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        /* Best effort close_notify: one non-blocking attempt, no waiting. */
        if (c->tls_ok && !c->tls_dead)
            (void)SSL_shutdown(c->ssl);
        SSL_free(c->ssl); /* frees the BIO */
        ERR_clear_error();
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

int se_conn_resolve(const char *host, unsigned char addr[16], size_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    int rc = -1;
    for (const struct addrinfo *ai = res; ai && rc < 0; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            memcpy(addr, &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr, 4);
            *len = 4;
            rc = 0;
        } else if (ai->ai_family == AF_INET6) {
            memcpy(addr, &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr, 16);
            *len = 16;
            rc = 0;
        }
    }
    freeaddrinfo(res);
    return rc;
}

void se_conn_via_proxy(se_conn *c)
{
    c->peer_len = 0;
}

int se_conn_fd(const se_conn *c)
{
    return c ? c->fd : -1;
}

void se_conn_drop(se_conn *c)
{
    if (c)
        c->tls_dead = 1; /* se_conn_close then skips SSL_shutdown */
    se_conn_close(c);
}
