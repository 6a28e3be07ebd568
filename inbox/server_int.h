/* Internals of the inbox's SMTP listener (server.h), shared by server.c (the
 * event loops, the storers, starting and stopping) and server_tls.c (the TLS
 * side, the only file that calls OpenSSL).  Not for other modules. */
#ifndef IB_SERVER_INT_H
#define IB_SERVER_INT_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server.h"

#define READ_CHUNK 32768
#define MAX_STORERS 64

enum { IO_ERR = -1, IO_WANT_READ = -2, IO_WANT_WRITE = -3 };
enum { RUNNING, STORING, DELAYED };

typedef struct loop loop;

typedef struct conn {
    struct conn *prev, *next; /* the loop's connections */
    struct conn *qnext;       /* storer queue, completions, the grave */
    struct conn *rnext;       /* the loop's run queue */
    struct conn *tnext;       /* the loop's delayed sessions */
    loop *lp;
    int fd;
    SSL *ssl;
    ib_smtpd *s;
    int hs;     /* TLS handshake: 1 implicit, 2 STARTTLS */
    int parked; /* RUNNING, STORING or DELAYED */
    int runnable, closed;
    int lingering;   /* replied and waiting for the client to close */
    uint32_t events; /* epoll interest; 0: not registered */
    int64_t last_ms; /* last I/O, for the idle timeout */
    int64_t wake_ms; /* end of a chaos delay */
    int64_t stored_id;
    char peer[64];
    char ip[64]; /* counted against max_per_client when non-empty */
} conn;

struct loop {
    ib_server *srv;
    pthread_t thread;
    int started;
    int ep, efd; /* epoll; eventfd for completions and stop */
    conn *conns, *delayed;
    conn *runq, *grave;
    pthread_mutex_t lock; /* `done` */
    conn *done;           /* messages back from the storers */
    int stopping;
    int64_t stop_deadline;
    char buf[READ_CHUNK];
};

struct ib_server {
    ib_server_conf conf;
    SSL_CTX *ctx;
    int lfd;
    struct sockaddr_storage addr;
    loop *loops;
    unsigned n_loops;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t work;  /* the store queue, or storers_stop */
    unsigned active;
    struct client_count { /* connections per non-loopback address */
        char ip[64];
        unsigned n;
    } *clients;
    size_t n_clients;
    int stopping, storers_stop;
    conn *sq_head, *sq_tail;
    unsigned sq_n, n_storers, storers_idle;
    pthread_t storers[MAX_STORERS];
};

/* server.c */
/* Fills why with "what: detail"; returns -1. */
int ib_server_fail(char *why, size_t whylen, const char *what, const char *detail);

/* server_tls.c.  The I/O calls return a byte count, 0 at the end of the
 * stream, or IO_ERR, IO_WANT_READ, IO_WANT_WRITE. */
int ib_server_tls_setup(ib_server *srv, char *why, size_t whylen); /* 0 or -1 and why */
void ib_server_tls_cleanup(ib_server *srv);
/* A server-side TLS object on c->fd in c->ssl: 0, or -1 (c->ssl may be set). */
int ib_server_tls_accept(conn *c);
long ib_server_tls_handshake(conn *c); /* 1 when done */
long ib_server_tls_read(conn *c, char *buf, size_t len);
long ib_server_tls_write(conn *c, const char *p, size_t len);
void ib_server_tls_shutdown(conn *c); /* send close_notify */
void ib_server_tls_free(conn *c);

#endif
