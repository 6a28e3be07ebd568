/* Transport: TCP with timeouts, and TLS over it.  The only code that calls
 * the socket API or OpenSSL's SSL functions (msmtp's tls.c model). */
#ifndef SE_NET_CONN_H
#define SE_NET_CONN_H

#include <stddef.h>
#include <sys/types.h>

#include "scalr_email.h"

typedef struct se_conn se_conn;

/* Resolve host and try every address in turn (RFC 5321 5.1), each connect
 * bounded by timeout_ms.  Non-blocking socket underneath, TCP_NODELAY.
 * Errors: ECONNECT (name not found, every address refused/unreachable:
 * the message names the host, port and the last errno), ETIMEOUT (every
 * address timed out), ENOMEM.  Stage "CONNECT". */
scalr_email_code se_conn_open(se_conn **out, const char *host, unsigned port, unsigned timeout_ms,
                              scalr_email_error *err);

/* se_conn_open, and then no wait on the connection (connect included) goes
 * past the absolute deadline `limit` (se_conn_now_ms clock; 0: none).  A wait
 * cut short by it fails ETIMEOUT saying the send's time limit (limit_ms)
 * ran out. */
scalr_email_code se_conn_open_by(se_conn **out, const char *host, unsigned port,
                                 unsigned timeout_ms, long long limit, unsigned limit_ms,
                                 scalr_email_error *err);
/* Change that limit (a pooled connection serves sends with their own). */
void se_conn_set_limit(se_conn *c, long long limit, unsigned limit_ms);

/* TLS client handshake on the open connection: TLS 1.2 or newer, SNI (not
 * for IP literals), certificate chain verified against OpenSSL's default
 * paths (SSL_CERT_FILE, SSL_CERT_DIR) plus ca_file when given, host name
 * verified (SSL_set1_host), or the IP address entry for an IP-literal host.
 * Errors: ETLS (handshake failed, untrusted chain, name mismatch: the
 * message says which, with OpenSSL's verify reason), ETIMEOUT, EIO.
 * Stage "TLS".  Never continues on a verification failure. */
scalr_email_code se_conn_start_tls(se_conn *c, const char *host, const char *ca_file,
                                   unsigned timeout_ms, scalr_email_error *err);

/* Write all n bytes (through TLS once started), each wait bounded.
 * Errors: ETIMEOUT, EIO (stage given by the caller). */
scalr_email_code se_conn_write(se_conn *c, const void *p, size_t n, unsigned timeout_ms,
                               const char *stage, scalr_email_error *err);

/* Read what is available (at least 1 byte), waiting at most timeout_ms.
 * Returns the byte count in *got; *got == 0 means the server closed.
 * Errors: ETIMEOUT, EIO, ETLS. */
scalr_email_code se_conn_read(se_conn *c, void *p, size_t n, size_t *got, unsigned timeout_ms,
                              const char *stage, scalr_email_error *err);

/* se_conn_read with an absolute deadline (se_conn_now_ms() clock), for a
 * caller that bounds a whole reply read in several calls.  timeout_ms is
 * only quoted in the error message. */
scalr_email_code se_conn_read_by(se_conn *c, void *p, size_t n, size_t *got, long long deadline,
                                 unsigned timeout_ms, const char *stage, scalr_email_error *err);

/* Monotonic milliseconds: the clock of every deadline. */
long long se_conn_now_ms(void);

int se_conn_peer_is_loopback(const se_conn *c);
/* The local address as an RFC 5321 address literal: "[127.0.0.1]" or
 * "[IPv6:::1]" (for EHLO when the host has no FQDN). */
void se_conn_local_literal(const se_conn *c, char *out, size_t outlen);

/* After se_conn_start_tls: what was negotiated. */
void se_conn_tls_info(const se_conn *c, char *version, size_t vlen, char *cipher, size_t clen,
                      char *subject, size_t slen, int *verified);

void se_conn_close(se_conn *c); /* closes and frees; NULL is fine */

/* The first address of host (4 or 16 octets into addr, *len set), for a
 * SOCKS5 proxy that wants an address.  0, or -1 (not found). */
int se_conn_resolve(const char *host, unsigned char addr[16], size_t *len);
/* The connection is a tunnel through a proxy: the peer is not the SMTP
 * server, so it never counts as loopback. */
void se_conn_via_proxy(se_conn *c);

/* The socket, for a zero-timeout poll() before a pooled connection is
 * reused; -1 when closed. */
int se_conn_fd(const se_conn *c);

/* Close and free without sending anything (no TLS close_notify): for a
 * connection inherited across fork(), which belongs to the parent. */
void se_conn_drop(se_conn *c);

#endif
