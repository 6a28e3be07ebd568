/* The inbox's SMTP listener: event loops that accept connections and drive
 * ib_smtpd sessions over the sockets (plain, STARTTLS or implicit TLS with
 * OpenSSL), store messages (durably before the 250) and obey chaos delays. */
#ifndef IB_SERVER_H
#define IB_SERVER_H

#include <stddef.h>

#include "smtpd.h"
#include "store.h"

typedef struct ib_server_conf {
    const char *host;     /* "127.0.0.1", "::1", "localhost" */
    unsigned port;        /* 0: any free port */
    ib_smtpd_conf smtpd;  /* the sessions' settings (starttls is set
                             here from tls_cert and tls_implicit) */
    const char *tls_cert; /* PEM chain and key, or NULL for no TLS */
    const char *tls_key;
    int tls_implicit;        /* TLS from the first byte (RFC 8314) */
    unsigned max_conn;       /* 421 4.3.2 above it */
    unsigned idle_timeout_s; /* 421 4.4.2 after this long without input */
    unsigned max_per_client; /* connections from one non-loopback address; 0: no limit */
    ib_store *store;
} ib_server_conf;

typedef struct ib_server ib_server;

/* Binds and starts accepting.  Strings in conf (and conf->smtpd's) must
 * outlive the server.  0 ok, -1 with a reason in why. */
int ib_server_start(ib_server **out, const ib_server_conf *conf, char *why, size_t whylen);

/* The bound address as "127.0.0.1:1025" or "[::1]:1025". */
void ib_server_addr(const ib_server *srv, char *buf, size_t len);
unsigned ib_server_port(const ib_server *srv);

/* Stops accepting, says 421 to every session, waits for them, frees. */
void ib_server_stop(ib_server *srv);

#endif
