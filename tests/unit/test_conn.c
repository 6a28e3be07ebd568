/* Transport: connect errors, timeouts, SIGPIPE safety, and TLS against a
 * real `openssl s_server` with a throw-away CA made in a temporary folder.
 * Every server started here is stopped by the same test, pass or fail. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "harness.h"
#include "net/conn.h"

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A listening socket on a loopback address; its port in *port. */
static int listen_on(int family, const char *addr, int backlog, unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, addr, &s4->sin_addr);
        len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        len = sizeof *s6;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static int listen_local(unsigned *port)
{
    int fd = listen_on(AF_INET, "127.0.0.1", 16, port);
    CHECK(fd >= 0);
    return fd;
}

/* Accept with a bound wait, so that a broken client cannot hang the run. */
static int accept_within(int lfd, int ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return -1;
    return accept(lfd, NULL, NULL);
}

/* Read exactly n bytes from fd within ms. */
static size_t recv_all(int fd, char *buf, size_t n, int ms)
{
    size_t got = 0;
    long long end = mono_ms() + ms;
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = end - mono_ms();
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            break;
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* --- plain TCP -------------------------------------------------------------- */

TEST(conn_refused)
{
    unsigned port;
    int lfd = listen_local(&port);
    close(lfd); /* nobody listens there now */
    se_conn *c = (se_conn *)1;
    scalr_email_error err;
    char want[128];
    CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 2000, &err), SCALR_EMAIL_ECONNECT);
    CHECK(c == NULL);
    CHECK_INT(err.code, SCALR_EMAIL_ECONNECT);
    CHECK_STR(err.stage, "CONNECT");
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%u (127.0.0.1): Connection refused",
             port);
    CHECK_STR(err.message, want);
}

TEST(conn_refused_ipv6)
{
    unsigned port;
    int lfd = listen_on(AF_INET6, "::1", 1, &port);
    if (lfd < 0)
        return; /* no IPv6 loopback on this machine */
    close(lfd);
    se_conn *c = NULL;
    scalr_email_error err;
    char want[128];
    CHECK_INT(se_conn_open(&c, "::1", port, 2000, &err), SCALR_EMAIL_ECONNECT);
    snprintf(want, sizeof want, "cannot connect to [::1]:%u (::1): Connection refused", port);
    CHECK_STR(err.message, want);
}

TEST(conn_unknown_host)
{
    se_conn *c = NULL;
    scalr_email_error err;
    const char *prefix = "cannot resolve nonexistent.invalid: ";
    CHECK_INT(se_conn_open(&c, "nonexistent.invalid", 587, 2000, &err), SCALR_EMAIL_ECONNECT);
    CHECK(c == NULL);
    CHECK_STR(err.stage, "CONNECT");
    CHECK(strncmp(err.message, prefix, strlen(prefix)) == 0);
    CHECK(strlen(err.message) > strlen(prefix)); /* gai_strerror's text follows */
}

/* With the accept queue full the kernel drops SYNs: connect never completes. */
TEST(conn_connect_timeout)
{
    unsigned port;
    int lfd = listen_on(AF_INET, "127.0.0.1", 0, &port);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fillers[16], n = 0, full = 0;
    while (n < 16 && !full) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        fillers[n++] = fd;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            continue;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        full = poll(&p, 1, 200) == 0;
    }
    CHECK(full);
    if (full) {
        se_conn *c = NULL;
        scalr_email_error err;
        char want[128];
        long long t0 = mono_ms();
        CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 300, &err), SCALR_EMAIL_ETIMEOUT);
        long long dt = mono_ms() - t0;
        CHECK(dt >= 250 && dt < 3000);
        CHECK_STR(err.stage, "CONNECT");
        snprintf(want, sizeof want, "connecting to 127.0.0.1:%u timed out after 0.3 s", port);
        CHECK_STR(err.message, want);
        se_conn_close(c);
    }
    for (int i = 0; i < n; i++)
        close(fillers[i]);
    close(lfd);
}

/* The kernel completes the handshake (backlog) but nobody ever answers. */
TEST(conn_read_timeout)
{
    unsigned port;
    int lfd = listen_local(&port);
    se_conn *c = NULL;
    scalr_email_error err;
    CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 2000, &err), SCALR_EMAIL_OK);
    if (c) {
        char buf[64];
        size_t got = 99;
        long long t0 = mono_ms();
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 200, "EHLO", &err), SCALR_EMAIL_ETIMEOUT);
        long long dt = mono_ms() - t0;
        CHECK(dt >= 180 && dt < 2000);
        CHECK_INT(got, 0);
        CHECK_INT(err.code, SCALR_EMAIL_ETIMEOUT);
        CHECK_STR(err.stage, "EHLO");
        CHECK_STR(err.message, "no reply from the server within 0.2 s (EHLO)");
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 250, "GREETING", &err),
                  SCALR_EMAIL_ETIMEOUT);
        CHECK_STR(err.message, "no reply from the server within 0.25 s (GREETING)");
    }
    se_conn_close(c);
    close(lfd);
}

TEST(conn_roundtrip_and_orderly_close)
{
    unsigned port;
    int lfd = listen_local(&port);
    se_conn *c = NULL;
    scalr_email_error err;
    CHECK_INT(se_conn_open(&c, "localhost", port, 2000, &err), SCALR_EMAIL_OK);
    int sfd = accept_within(lfd, 2000);
    CHECK(sfd >= 0);
    if (c && sfd >= 0) {
        char buf[64];
        size_t got = 0;
        CHECK_INT(se_conn_write(c, "EHLO client.example\r\n", 21, 1000, "EHLO", &err),
                  SCALR_EMAIL_OK);
        CHECK_INT(recv_all(sfd, buf, 21, 2000), 21);
        CHECK_MEM(buf, 21, "EHLO client.example\r\n");
        CHECK(send(sfd, "250 ok\r\n", 8, 0) == 8);
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 2000, "EHLO", &err), SCALR_EMAIL_OK);
        CHECK_MEM(buf, got, "250 ok\r\n");
        close(sfd);
        sfd = -1;
        got = 99;
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 2000, "QUIT", &err), SCALR_EMAIL_OK);
        CHECK_INT(got, 0);
    }
    if (sfd >= 0)
        close(sfd);
    se_conn_close(c);
    se_conn_close(NULL);
    close(lfd);
}

TEST(conn_addresses)
{
    unsigned port;
    int lfd = listen_local(&port);
    se_conn *c = NULL;
    scalr_email_error err;
    char lit[64], small[6];
    CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 2000, &err), SCALR_EMAIL_OK);
    CHECK_INT(se_conn_peer_is_loopback(c), 1);
    se_conn_local_literal(c, lit, sizeof lit);
    CHECK_STR(lit, "[127.0.0.1]");
    se_conn_local_literal(c, small, sizeof small);
    CHECK_STR(small, "[127.");
    se_conn_close(c);
    c = NULL;

    /* an IPv4-mapped IPv6 peer in 127/8 is loopback too (::ffff:127.0.0.0/104) */
    if (se_conn_open(&c, "::ffff:127.0.0.1", port, 2000, &err) == SCALR_EMAIL_OK) {
        CHECK_INT(se_conn_peer_is_loopback(c), 1);
        se_conn_local_literal(c, lit, sizeof lit);
        CHECK_STR(lit, "[127.0.0.1]");
    }
    se_conn_close(c);
    c = NULL;
    close(lfd);

    lfd = listen_on(AF_INET, "127.0.0.2", 4, &port);
    if (lfd >= 0) {
        CHECK_INT(se_conn_open(&c, "127.0.0.2", port, 2000, &err), SCALR_EMAIL_OK);
        CHECK_INT(se_conn_peer_is_loopback(c), 1);
        se_conn_close(c);
        c = NULL;
        close(lfd);
    }

    lfd = listen_on(AF_INET6, "::1", 4, &port);
    if (lfd >= 0) {
        CHECK_INT(se_conn_open(&c, "::1", port, 2000, &err), SCALR_EMAIL_OK);
        CHECK_INT(se_conn_peer_is_loopback(c), 1);
        se_conn_local_literal(c, lit, sizeof lit);
        CHECK_STR(lit, "[IPv6:::1]");
        se_conn_close(c);
        close(lfd);
    }
    CHECK_INT(se_conn_peer_is_loopback(NULL), 0);
}

TEST(conn_tls_info_without_tls)
{
    unsigned port;
    int lfd = listen_local(&port);
    se_conn *c = NULL;
    scalr_email_error err;
    CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 2000, &err), SCALR_EMAIL_OK);
    char v[32] = "x", ci[64] = "x", subj[128] = "x";
    int verified = 7;
    se_conn_tls_info(c, v, sizeof v, ci, sizeof ci, subj, sizeof subj, &verified);
    CHECK_STR(v, "");
    CHECK_STR(ci, "");
    CHECK_STR(subj, "");
    CHECK_INT(verified, 0);
    se_conn_close(c);
    close(lfd);
}

/* A peer that resets the connection: writes fail with EIO, and no SIGPIPE
 * reaches the process (which would kill this test run). */
TEST(conn_write_to_reset_peer_raises_no_sigpipe)
{
    struct sigaction before;
    sigaction(SIGPIPE, NULL, &before);
    unsigned port;
    int lfd = listen_local(&port);
    se_conn *c = NULL;
    scalr_email_error err;
    CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 2000, &err), SCALR_EMAIL_OK);
    int sfd = accept_within(lfd, 2000);
    CHECK(sfd >= 0);
    if (c && sfd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(sfd); /* RST */
        sfd = -1;
        scalr_email_code rc = SCALR_EMAIL_OK;
        for (int i = 0; i < 50 && rc == SCALR_EMAIL_OK; i++) {
            rc = se_conn_write(c, "DATA\r\n", 6, 1000, "DATA", &err);
            if (rc == SCALR_EMAIL_OK)
                usleep(10000);
        }
        CHECK_INT(rc, SCALR_EMAIL_EIO);
        CHECK_STR(err.stage, "DATA");
        const char *prefix = "error sending to the server (DATA): ";
        CHECK(strncmp(err.message, prefix, strlen(prefix)) == 0);
        CHECK(strstr(err.message, "Broken pipe") || strstr(err.message, "Connection reset"));
    }
    struct sigaction after;
    sigaction(SIGPIPE, NULL, &after);
    CHECK(after.sa_handler == before.sa_handler); /* disposition untouched */
    sigset_t pending;
    sigpending(&pending);
    CHECK(!sigismember(&pending, SIGPIPE));
    if (sfd >= 0)
        close(sfd);
    se_conn_close(c);
    close(lfd);
}

/* A server that reads nothing: the write blocks once the socket buffers are
 * full, and each wait is bounded. */
TEST(conn_write_timeout)
{
    unsigned port;
    int lfd = listen_local(&port);
    se_conn *c = NULL;
    scalr_email_error err;
    CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 2000, &err), SCALR_EMAIL_OK);
    size_t n = 64u << 20;
    char *big = calloc(1, n);
    CHECK(big != NULL);
    if (c && big) {
        long long t0 = mono_ms();
        CHECK_INT(se_conn_write(c, big, n, 200, "DATA", &err), SCALR_EMAIL_ETIMEOUT);
        CHECK(mono_ms() - t0 < 5000);
        CHECK_STR(err.stage, "DATA");
        CHECK_STR(err.message, "the server accepted no data within 0.2 s (DATA)");
    }
    free(big);
    se_conn_close(c);
    close(lfd);
}

/* --- TLS against in-process fake servers ------------------------------------ */

/* Connect to a fresh listener and accept; *sfd is the server side. */
static se_conn *pair_up(int *lfd, int *sfd)
{
    unsigned port;
    se_conn *c = NULL;
    scalr_email_error err;
    *sfd = -1;
    *lfd = listen_local(&port);
    CHECK_INT(se_conn_open(&c, "127.0.0.1", port, 2000, &err), SCALR_EMAIL_OK);
    *sfd = accept_within(*lfd, 2000);
    CHECK(*sfd >= 0);
    return c;
}

static void unpair(se_conn *c, int lfd, int sfd)
{
    se_conn_close(c);
    if (sfd >= 0)
        close(sfd);
    if (lfd >= 0)
        close(lfd);
}

TEST(conn_tls_plain_server_on_implicit_port)
{
    int lfd, sfd;
    se_conn *c = pair_up(&lfd, &sfd);
    if (c && sfd >= 0) {
        scalr_email_error err;
        const char *greet = "220 plain.example ESMTP ready\r\n";
        CHECK(send(sfd, greet, strlen(greet), 0) == (ssize_t)strlen(greet));
        CHECK_INT(se_conn_start_tls(c, "127.0.0.1", NULL, 2000, &err), SCALR_EMAIL_ETLS);
        CHECK_STR(err.stage, "TLS");
        CHECK_STR(err.message,
                  "TLS handshake with 127.0.0.1 failed: server did not answer TLS (it sent "
                  "\"220 plain.example ESMTP ready\"); is this a STARTTLS port? "
                  "(SMTP_USE_SSL=true expects port 465)");
        /* the connection is finished after that */
        char buf[8];
        size_t got;
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 200, "EHLO", &err), SCALR_EMAIL_EIO);
        CHECK_STR(err.message, "connection unusable after a TLS error");
        CHECK_INT(se_conn_start_tls(c, "127.0.0.1", NULL, 200, &err), SCALR_EMAIL_ETLS);
        CHECK_STR(err.message, "TLS was already started on this connection");
    }
    unpair(c, lfd, sfd);
}

TEST(conn_tls_plain_answer_after_starttls)
{
    int lfd, sfd;
    se_conn *c = pair_up(&lfd, &sfd);
    if (c && sfd >= 0) {
        scalr_email_error err;
        char buf[16];
        CHECK_INT(se_conn_write(c, "STARTTLS\r\n", 10, 1000, "TLS", &err), SCALR_EMAIL_OK);
        CHECK_INT(recv_all(sfd, buf, 10, 2000), 10);
        CHECK(send(sfd, "500 what?\r\n", 11, 0) == 11);
        CHECK_INT(se_conn_start_tls(c, "mail.example.com", NULL, 2000, &err), SCALR_EMAIL_ETLS);
        CHECK_STR(err.message, "TLS handshake with mail.example.com failed: server did not "
                               "answer TLS after STARTTLS (it sent \"500 what?\")");
    }
    unpair(c, lfd, sfd);
}

TEST(conn_tls_handshake_timeout)
{
    int lfd, sfd;
    se_conn *c = pair_up(&lfd, &sfd);
    if (c && sfd >= 0) {
        scalr_email_error err;
        long long t0 = mono_ms();
        CHECK_INT(se_conn_start_tls(c, "127.0.0.1", NULL, 200, &err), SCALR_EMAIL_ETIMEOUT);
        long long dt = mono_ms() - t0;
        CHECK(dt >= 180 && dt < 2000);
        CHECK_STR(err.stage, "TLS");
        CHECK_STR(err.message, "TLS handshake with 127.0.0.1 timed out after 0.2 s");
    }
    unpair(c, lfd, sfd);
}

TEST(conn_tls_server_hangs_up)
{
    int lfd, sfd;
    se_conn *c = pair_up(&lfd, &sfd);
    if (c && sfd >= 0) {
        scalr_email_error err;
        shutdown(sfd, SHUT_WR); /* FIN, and keep reading so that no RST follows */
        CHECK_INT(se_conn_start_tls(c, "smtp.example.com", NULL, 2000, &err), SCALR_EMAIL_ETLS);
        CHECK_STR(err.message,
                  "TLS handshake with smtp.example.com failed: the server closed the connection");
    }
    unpair(c, lfd, sfd);
}

TEST(conn_tls_bad_ca_file)
{
    int lfd, sfd;
    se_conn *c = pair_up(&lfd, &sfd);
    if (c) {
        scalr_email_error err;
        CHECK_INT(se_conn_start_tls(c, "smtp.example.com", "/nonexistent/ca.pem", 2000, &err),
                  SCALR_EMAIL_ETLS);
        CHECK_STR(err.stage, "TLS");
        CHECK_STR(err.message,
                  "cannot load CA file /nonexistent/ca.pem: No such file or directory");
        /* and nothing goes out in clear afterwards */
        CHECK_INT(se_conn_write(c, "AUTH\r\n", 6, 200, "AUTH", &err), SCALR_EMAIL_EIO);
    }
    unpair(c, lfd, sfd);

    /* a file that holds no PEM certificate */
    char path[] = "/tmp/se-conn-ca-XXXXXX", want[128];
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, "not a certificate\n", 18) == 18);
    close(fd);
    c = pair_up(&lfd, &sfd);
    if (c) {
        scalr_email_error err;
        CHECK_INT(se_conn_start_tls(c, "smtp.example.com", path, 2000, &err), SCALR_EMAIL_ETLS);
        snprintf(want, sizeof want, "cannot load CA file %s: no certificate or crl found", path);
        CHECK_STR(err.message, want);
    }
    unpair(c, lfd, sfd);
    unlink(path);
}

/* --- TLS against openssl s_server ------------------------------------------- */

static char tls_dir[64];
static int tls_state; /* 0 not made, 1 ready, -1 failed */

/* Run a command in tls_dir, quietly; its exit status, or -1. */
static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 0);
        dup2(dn, 1);
        dup2(dn, 2);
        if (chdir(tls_dir) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_text(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tls_dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void remove_tls_dir(void)
{
    DIR *d = opendir(tls_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[384];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tls_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tls_dir);
}

static int make_ca(const char *name, const char *cn)
{
    char key[32], pem[32], subj[64];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    char *argv[] = {
        "openssl", "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes",  "-keyout", key,     "-out",    pem,  "-days",    "2",
        "-subj",   subj,      NULL};
    return run(argv);
}

/* A server certificate signed by ca.pem, with the given subjectAltName. */
static int make_leaf(const char *name, const char *cn, const char *san)
{
    char key[32], csr[32], pem[32], ext[32], subj[64], text[256];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(csr, sizeof csr, "%s.csr", name);
    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(ext, sizeof ext, "%s.ext", name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    snprintf(text, sizeof text, "basicConstraints=CA:FALSE\nsubjectAltName=%s\n", san);
    if (write_text(ext, text) < 0)
        return -1;
    char *req[] = {"openssl", "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:P-256",
                   "-nodes",  "-keyout", key,       "-out", csr,        "-subj",
                   subj,      NULL};
    char *sign[] = {
        "openssl",         "x509", "-req", "-in",   csr, "-CA",      "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", pem,    "-days", "2", "-extfile", ext,      NULL};
    return run(req) || run(sign) ? -1 : 0;
}

static int tls_fixture(void)
{
    if (tls_state)
        return tls_state > 0;
    tls_state = -1;
    strcpy(tls_dir, "/tmp/se-conn-tls-XXXXXX");
    if (!mkdtemp(tls_dir))
        return 0;
    atexit(remove_tls_dir);
    if (make_ca("ca", "scalr-email test CA") || make_ca("other", "some other CA") ||
        make_leaf("srv", "mail.test.example", "DNS:mail.test.example,DNS:localhost,IP:127.0.0.1") ||
        make_leaf("wild", "wild", "DNS:*.wild.example,DNS:m*.part.example") ||
        make_leaf("cnonly", "localhost", "DNS:other.example") ||
        make_leaf("cnip", "localhost", "IP:127.0.0.1") ||
        make_leaf("noip", "localhost", "DNS:localhost"))
        return 0;
    tls_state = 1;
    return 1;
}

typedef struct tls_server {
    pid_t pid;
    int out; /* its stdout */
    int in;  /* its stdin: a socket, so that writes can use MSG_NOSIGNAL */
    unsigned port;
    char seen[8192]; /* what it printed so far */
    size_t n_seen;
} tls_server;

/* Read more of the server's stdout, waiting until end at most. */
static int server_read_more(tls_server *s, long long end)
{
    long long left = end - mono_ms();
    struct pollfd p = {.fd = s->out, .events = POLLIN};
    if (left <= 0 || s->n_seen + 1 >= sizeof s->seen || poll(&p, 1, (int)left) != 1)
        return 0;
    ssize_t r = read(s->out, s->seen + s->n_seen, sizeof s->seen - 1 - s->n_seen);
    if (r <= 0)
        return 0;
    s->n_seen += (size_t)r;
    s->seen[s->n_seen] = '\0';
    return 1;
}

/* Read the server's stdout until `want` appears or ms pass. */
static int server_expect(tls_server *s, const char *want, int ms)
{
    long long end = mono_ms() + ms;
    while (!strstr(s->seen, want))
        if (!server_read_more(s, end))
            return 0;
    return 1;
}

/* The port from "ACCEPT 127.0.0.1:PORT\n", printed once it listens. */
static int server_port(tls_server *s, int ms)
{
    long long end = mono_ms() + ms;
    for (;;) {
        const char *a = strstr(s->seen, "ACCEPT 127.0.0.1:");
        if (a && strchr(a, '\n'))
            return sscanf(a + 17, "%u", &s->port) == 1;
        if (!server_read_more(s, end))
            return 0;
    }
}

static void server_stop(tls_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s->pid = 0;
    }
    if (s->out >= 0)
        close(s->out);
    if (s->in >= 0)
        close(s->in);
    s->out = s->in = -1;
}

/* Start `openssl s_server` for one connection with certificate `leaf`, or
 * `sni_leaf` when the client asks for `sni_name` (both NULL: no SNI rule). */
static int server_start_sni(tls_server *s, const char *leaf, const char *sni_leaf,
                            const char *sni_name)
{
    memset(s, 0, sizeof *s);
    s->out = s->in = -1;
    if (!tls_fixture())
        return 0;
    int outp[2], inp[2];
    if (pipe(outp) < 0)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, inp) < 0) {
        close(outp[0]);
        close(outp[1]);
        return 0;
    }
    char cert[32], key[32], cert2[32], key2[32];
    snprintf(cert, sizeof cert, "%s.pem", leaf);
    snprintf(key, sizeof key, "%s.key", leaf);
    snprintf(cert2, sizeof cert2, "%s.pem", sni_leaf ? sni_leaf : "");
    snprintf(key2, sizeof key2, "%s.key", sni_leaf ? sni_leaf : "");
    char *argv[] = {"openssl", "s_server", "-accept",  "127.0.0.1:0", "-cert",    cert,
                    "-key",    key,        "-naccept", "1",           "-ign_eof", NULL,
                    NULL,      NULL,       NULL,       NULL,          NULL,       NULL};
    if (sni_leaf) {
        argv[11] = "-servername";
        argv[12] = (char *)sni_name;
        argv[13] = "-cert2";
        argv[14] = cert2;
        argv[15] = "-key2";
        argv[16] = key2;
    }
    s->pid = fork();
    if (s->pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test run */
#endif
        int dn = open("/dev/null", O_WRONLY);
        dup2(inp[1], 0);
        dup2(outp[1], 1);
        dup2(dn, 2);
        if (chdir(tls_dir) < 0)
            _exit(126);
        execvp("openssl", argv);
        _exit(127);
    }
    close(outp[1]);
    close(inp[1]);
    s->out = outp[0];
    s->in = inp[0];
    if (s->pid < 0) {
        server_stop(s);
        return 0;
    }
    if (!server_port(s, 5000)) {
        server_stop(s);
        return 0;
    }
    return 1;
}

static int server_start(tls_server *s, const char *leaf)
{
    return server_start_sni(s, leaf, NULL, NULL);
}

/* Start a server with `leaf`, connect and start TLS as `host`. */
static scalr_email_code tls_try(tls_server *s, se_conn **c, const char *leaf, const char *host,
                                const char *ca, scalr_email_error *err)
{
    *c = NULL;
    memset(err, 0, sizeof *err);
    int up = server_start(s, leaf);
    CHECK(up);
    if (!up)
        return SCALR_EMAIL_EIO;
    char ca_path[128];
    if (ca)
        snprintf(ca_path, sizeof ca_path, "%s/%s", tls_dir, ca);
    scalr_email_code rc = se_conn_open(c, "127.0.0.1", s->port, 3000, err);
    CHECK_INT(rc, SCALR_EMAIL_OK);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    return se_conn_start_tls(*c, host, ca ? ca_path : NULL, 5000, err);
}

/* Expect a verification failure for host with the given reason. */
static void expect_verify_failure(const char *leaf, const char *host, const char *ca,
                                  const char *reason)
{
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    char want[256];
    CHECK_INT(tls_try(&s, &c, leaf, host, ca, &err), SCALR_EMAIL_ETLS);
    CHECK_STR(err.stage, "TLS");
    snprintf(want, sizeof want, "certificate verify failed for %s: %s", host, reason);
    CHECK_STR(err.message, want);
    char v[32];
    int verified = 1;
    se_conn_tls_info(c, v, sizeof v, NULL, 0, NULL, 0, &verified);
    CHECK_INT(verified, 0);
    CHECK_STR(v, "");
    se_conn_close(c);
    server_stop(&s);
}

TEST(conn_tls_verified_session)
{
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    CHECK_INT(tls_try(&s, &c, "srv", "mail.test.example", "ca.pem", &err), SCALR_EMAIL_OK);
    if (c && s.pid > 0) {
        char v[32], ci[64], subj[128], buf[64];
        int verified = 0;
        size_t got = 0;
        se_conn_tls_info(c, v, sizeof v, ci, sizeof ci, subj, sizeof subj, &verified);
        CHECK_STR(v, "TLSv1.3");
        CHECK(strncmp(ci, "TLS_", 4) == 0);
        CHECK_STR(subj, "/CN=mail.test.example");
        CHECK_INT(verified, 1);
        /* client -> server through TLS */
        CHECK_INT(se_conn_write(c, "EHLO client.example\r\n", 21, 2000, "EHLO", &err),
                  SCALR_EMAIL_OK);
        CHECK(server_expect(&s, "EHLO client.example\r\n", 3000));
        /* server -> client through TLS */
        CHECK(send(s.in, "250 hello from s_server\n", 24, MSG_NOSIGNAL) == 24);
        char all[64];
        size_t n = 0;
        while (n < 24) {
            if (se_conn_read(c, buf, sizeof buf, &got, 3000, "EHLO", &err) != SCALR_EMAIL_OK ||
                got == 0 || n + got > sizeof all)
                break;
            memcpy(all + n, buf, got);
            n += got;
        }
        CHECK_MEM(all, n, "250 hello from s_server\n");
        /* a second start_tls is refused */
        CHECK_INT(se_conn_start_tls(c, "mail.test.example", NULL, 1000, &err), SCALR_EMAIL_ETLS);
        CHECK_STR(err.message, "TLS was already started on this connection");
        /* "Q": s_server sends close_notify and quits: an orderly close */
        CHECK(send(s.in, "Q\n", 2, MSG_NOSIGNAL) == 2);
        got = 99;
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 3000, "QUIT", &err), SCALR_EMAIL_OK);
        CHECK_INT(got, 0);
    }
    se_conn_close(c);
    server_stop(&s);
}

/* The server presents the right certificate only to a client that sent
 * SNI for mail.test.example; an address gets no SNI (RFC 6066 3). */
TEST(conn_tls_sends_sni)
{
    tls_server s;
    se_conn *c = NULL;
    scalr_email_error err;
    int up = server_start_sni(&s, "noip", "srv", "mail.test.example");
    CHECK(up);
    if (up) {
        CHECK_INT(se_conn_open(&c, "127.0.0.1", s.port, 3000, &err), SCALR_EMAIL_OK);
        char ca[128];
        snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
        if (c)
            CHECK_INT(se_conn_start_tls(c, "mail.test.example", ca, 5000, &err), SCALR_EMAIL_OK);
        se_conn_close(c);
        c = NULL;
    }
    server_stop(&s);
    up = server_start_sni(&s, "noip", "srv", "127.0.0.1");
    CHECK(up);
    if (up) {
        CHECK_INT(se_conn_open(&c, "127.0.0.1", s.port, 3000, &err), SCALR_EMAIL_OK);
        char ca[128];
        snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
        if (c)
            CHECK_INT(se_conn_start_tls(c, "127.0.0.1", ca, 5000, &err), SCALR_EMAIL_ETLS);
        CHECK_STR(err.message, "certificate verify failed for 127.0.0.1: IP address mismatch");
        se_conn_close(c);
    }
    server_stop(&s);
}

TEST(conn_tls_ip_literal)
{
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    CHECK_INT(tls_try(&s, &c, "srv", "127.0.0.1", "ca.pem", &err), SCALR_EMAIL_OK);
    int verified = 0;
    se_conn_tls_info(c, NULL, 0, NULL, 0, NULL, 0, &verified);
    CHECK_INT(verified, 1);
    se_conn_close(c);
    server_stop(&s);
    expect_verify_failure("noip", "127.0.0.1", "ca.pem", "IP address mismatch");
}

TEST(conn_tls_name_mismatch)
{
    expect_verify_failure("srv", "wrong.example", "ca.pem", "hostname mismatch");
    /* never the subject CN (RFC 9525 6.4.4): not when other SANs exist, and
     * not when there is no dNSName at all */
    expect_verify_failure("cnonly", "localhost", "ca.pem", "hostname mismatch");
    expect_verify_failure("cnip", "localhost", "ca.pem", "hostname mismatch");
}

TEST(conn_tls_wildcards)
{
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    CHECK_INT(tls_try(&s, &c, "wild", "mx.wild.example", "ca.pem", &err), SCALR_EMAIL_OK);
    se_conn_close(c);
    server_stop(&s);
    /* the wildcard covers exactly one whole left-most label */
    expect_verify_failure("wild", "a.mx.wild.example", "ca.pem", "hostname mismatch");
    expect_verify_failure("wild", "wild.example", "ca.pem", "hostname mismatch");
    /* and never part of a label ("m*") */
    expect_verify_failure("wild", "mx.part.example", "ca.pem", "hostname mismatch");
}

TEST(conn_tls_absolute_name)
{
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    CHECK_INT(tls_try(&s, &c, "srv", "mail.test.example.", "ca.pem", &err), SCALR_EMAIL_OK);
    se_conn_close(c);
    server_stop(&s);
}

TEST(conn_tls_untrusted_ca)
{
    /* Only the system store and an unrelated CA: nothing vouches for it. */
    expect_verify_failure("srv", "mail.test.example", "other.pem",
                          "unable to get local issuer certificate");
    expect_verify_failure("srv", "mail.test.example", NULL,
                          "unable to get local issuer certificate");
}

TEST(conn_tls_ssl_cert_file)
{
    if (!tls_fixture()) {
        CHECK(0);
        return;
    }
    const char *old = getenv("SSL_CERT_FILE");
    char *saved = old ? strdup(old) : NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/ca.pem", tls_dir);
    setenv("SSL_CERT_FILE", path, 1);
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    CHECK_INT(tls_try(&s, &c, "srv", "localhost", NULL, &err), SCALR_EMAIL_OK);
    se_conn_close(c);
    server_stop(&s);
    if (saved)
        setenv("SSL_CERT_FILE", saved, 1);
    else
        unsetenv("SSL_CERT_FILE");
    free(saved);
}

/* Many servers close after QUIT without close_notify: that reads as an
 * orderly close too (SMTP frames its own data). */
TEST(conn_tls_eof_without_close_notify)
{
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    CHECK_INT(tls_try(&s, &c, "srv", "mail.test.example", "ca.pem", &err), SCALR_EMAIL_OK);
    if (c && s.pid > 0) {
        /* killed before it read our Finished, it would answer with a reset */
        CHECK(server_expect(&s, "Secure Renegotiation", 3000));
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
        s.pid = 0;
        char buf[64];
        size_t got = 99;
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 3000, "QUIT", &err), SCALR_EMAIL_OK);
        CHECK_INT(got, 0);
    }
    se_conn_close(c);
    server_stop(&s);
}

/* The server dies mid-session: writes through TLS fail with EIO, no SIGPIPE. */
TEST(conn_tls_peer_gone_raises_no_sigpipe)
{
    tls_server s;
    se_conn *c;
    scalr_email_error err;
    CHECK_INT(tls_try(&s, &c, "srv", "mail.test.example", "ca.pem", &err), SCALR_EMAIL_OK);
    if (c && s.pid > 0) {
        /* killed before it read our Finished, it would answer with a reset */
        CHECK(server_expect(&s, "Secure Renegotiation", 3000));
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
        s.pid = 0;
        scalr_email_code rc = SCALR_EMAIL_OK;
        char chunk[1024] = {0};
        for (int i = 0; i < 100 && rc == SCALR_EMAIL_OK; i++) {
            rc = se_conn_write(c, chunk, sizeof chunk, 1000, "DATA", &err);
            if (rc == SCALR_EMAIL_OK)
                usleep(10000);
        }
        CHECK_INT(rc, SCALR_EMAIL_EIO);
        CHECK_STR(err.stage, "DATA");
        CHECK(strstr(err.message, "Broken pipe") || strstr(err.message, "Connection reset"));
        sigset_t pending;
        sigpending(&pending);
        CHECK(!sigismember(&pending, SIGPIPE));
    }
    se_conn_close(c);
    server_stop(&s);
}

/* One deadline for a wait read in several calls, and the send's limit. */
TEST(conn_read_by_deadline_and_send_limit)
{
    int lfd, sfd;
    se_conn *c = pair_up(&lfd, &sfd);
    if (c && sfd >= 0) {
        char buf[64];
        size_t got = 0;
        scalr_email_error err;
        long long t0 = mono_ms();
        /* a deadline already past: no wait at all, even with bytes coming */
        CHECK_INT(se_conn_read_by(c, buf, sizeof buf, &got, t0 - 1, 3000, "EHLO", &err),
                  SCALR_EMAIL_ETIMEOUT);
        CHECK_STR(err.message, "no reply from the server within 3 s (EHLO)");
        CHECK(mono_ms() - t0 < 1000);
        CHECK_INT(write(sfd, "2", 1), 1);
        CHECK_INT(se_conn_read_by(c, buf, sizeof buf, &got, mono_ms() + 2000, 2000, "EHLO", &err),
                  SCALR_EMAIL_OK);
        CHECK_INT(got, 1);
        /* the send's limit cuts a longer wait short, and says so */
        se_conn_set_limit(c, mono_ms() + 150, 1500);
        t0 = mono_ms();
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 5000, "DATA", &err), SCALR_EMAIL_ETIMEOUT);
        CHECK(mono_ms() - t0 < 2000);
        CHECK_STR(err.message, "the send did not finish within its time limit of 1.5 s (DATA)");
        se_conn_set_limit(c, 0, 0);
        CHECK_INT(se_conn_read(c, buf, sizeof buf, &got, 100, "DATA", &err), SCALR_EMAIL_ETIMEOUT);
        CHECK_STR(err.message, "no reply from the server within 0.1 s (DATA)");
    }
    unpair(c, lfd, sfd);
}
