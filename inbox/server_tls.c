/* The TLS side of the inbox's SMTP listener (server_int.h): the server
 * context with its certificate and key, and each connection's OpenSSL object
 * for the handshake (implicit TLS or STARTTLS), reads, writes and the close. */
#include "server_int.h"

#include <errno.h>
#include <openssl/err.h>

static int tls_fail(char *why, size_t whylen, const char *what)
{
    char err[200] = "unknown error";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, err, sizeof err);
    ERR_clear_error();
    return ib_server_fail(why, whylen, what, err);
}

static long ssl_result(conn *c, int n)
{
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ: return IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: return n == 0 || errno == 0 ? 0 : IO_ERR; /* EOF without close_notify */
    default: return IO_ERR;
    }
}

int ib_server_tls_setup(ib_server *srv, char *why, size_t whylen)
{
    srv->ctx = SSL_CTX_new(TLS_server_method());
    if (!srv->ctx)
        return tls_fail(why, whylen, "TLS");
    SSL_CTX_set_min_proto_version(srv->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(srv->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(srv->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(srv->ctx, srv->conf.tls_cert) != 1)
        return tls_fail(why, whylen, srv->conf.tls_cert);
    if (SSL_CTX_use_PrivateKey_file(srv->ctx, srv->conf.tls_key, SSL_FILETYPE_PEM) != 1)
        return tls_fail(why, whylen, srv->conf.tls_key);
    if (SSL_CTX_check_private_key(srv->ctx) != 1)
        return tls_fail(why, whylen, "TLS key does not match the certificate");
    return 0;
}

void ib_server_tls_cleanup(ib_server *srv)
{
    SSL_CTX_free(srv->ctx);
}

int ib_server_tls_accept(conn *c)
{
    c->ssl = SSL_new(c->lp->srv->ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd))
        return -1;
    SSL_set_accept_state(c->ssl);
    return 0;
}

long ib_server_tls_handshake(conn *c)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    return r == 1 ? 1 : ssl_result(c, r);
}

long ib_server_tls_read(conn *c, char *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(c->ssl, buf, (int)len);
    return n > 0 ? n : ssl_result(c, n);
}

long ib_server_tls_write(conn *c, const char *p, size_t len)
{
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(c->ssl, p, (int)(len > 1u << 30 ? 1u << 30 : len));
    long r = n > 0 ? n : ssl_result(c, n);
    return r == 0 ? IO_ERR : r;
}

void ib_server_tls_shutdown(conn *c)
{
    SSL_shutdown(c->ssl);
}

void ib_server_tls_free(conn *c)
{
    SSL_free(c->ssl);
}
