/* Proxies for the SMTP connection: SOCKS5 (RFC 1928, RFC 1929 user and
 * password) and HTTP CONNECT (RFC 9110 9.3.6).  The handshake is a state
 * machine over byte buffers, like the SMTP engine: it never touches a
 * socket, and never asks for a byte past the proxy's answer, so what
 * follows (the SMTP greeting, the TLS handshake) is left for the caller. */
#ifndef SE_NET_PROXY_H
#define SE_NET_PROXY_H

#include <stddef.h>

#include "scalr_email.h"
#include "util/buf.h"

typedef enum se_proxy_kind { SE_PROXY_SOCKS5, SE_PROXY_SOCKS5H, SE_PROXY_HTTP } se_proxy_kind;

typedef struct se_proxy_url {
    se_proxy_kind kind;
    char host[256];
    unsigned port;
    char user[256], pass[256]; /* "" when none */
} se_proxy_url;

/* Parse "socks5://[user:pass@]host:port", "socks5h://..." or
 * "http://[user:pass@]host[:port]" (port default 1080, or 8080 for http;
 * %XX escapes in user and password; [v6] hosts).  0, or -1 with a reason
 * in why that never contains the password. */
int se_proxy_parse(const char *url, se_proxy_url *out, char *why, size_t whylen);

/* The URL as it may be shown: the password replaced by "***". */
void se_proxy_redact(const char *url, char *out, size_t outlen);

typedef enum se_proxy_want {
    SE_PROXY_WRITE, /* write se_proxy_out(), then se_proxy_sent() */
    SE_PROXY_READ,  /* read at most se_proxy_need() bytes, se_proxy_feed() them */
    SE_PROXY_DONE,  /* the tunnel to host:port is open */
    SE_PROXY_FAILED /* se_proxy_why() says what the proxy answered */
} se_proxy_want;

#define SE_PROXY_HTTP_MAX 8192 /* cap on the proxy's HTTP answer */

typedef struct se_proxy_hs {
    const se_proxy_url *p;
    int state;
    se_buf out;       /* pending output */
    size_t out_pos;   /* written so far */
    se_buf in;        /* the current answer */
    size_t need;      /* bytes the current answer still needs */
    char why[300];    /* the failure, for ECONNECT */
    char target_host[256];
    unsigned target_port;
    unsigned char target_addr[16];
    size_t target_addr_len;
} se_proxy_hs;

/* Start a handshake to reach host:port through p.  For SE_PROXY_SOCKS5
 * addr/addr_len is the target's address as resolved here (4 or 16 bytes);
 * otherwise the proxy resolves host.  0, or -1 out of memory. */
int se_proxy_start(se_proxy_hs *h, const se_proxy_url *p, const char *host, unsigned port,
                   const unsigned char *addr, size_t addr_len);
se_proxy_want se_proxy_step(se_proxy_hs *h);
const char *se_proxy_out(se_proxy_hs *h, size_t *len);
void se_proxy_sent(se_proxy_hs *h, size_t n);
size_t se_proxy_need(const se_proxy_hs *h); /* >= 1 while READ */
/* Feed n <= se_proxy_need() bytes; 0, or -1 out of memory.  n == 0: the
 * proxy closed. */
int se_proxy_feed(se_proxy_hs *h, const void *data, size_t n);
const char *se_proxy_why(const se_proxy_hs *h);
void se_proxy_free(se_proxy_hs *h); /* wipes the credentials it wrote */

struct se_conn;
/* The driver: connect to the proxy (se_conn_open_by), run the handshake
 * for host:port with each wait bounded by timeout_ms, and hand back the
 * tunnel as the connection.  Errors: ECONNECT (the proxy refused or
 * failed: its answer in the message; socks5 cannot resolve host),
 * ETIMEOUT, EIO.  Stage "CONNECT". */
scalr_email_code se_proxy_connect(struct se_conn **out, const se_proxy_url *p, const char *host,
                                  unsigned port, unsigned timeout_ms, long long limit,
                                  unsigned limit_ms, scalr_email_error *err);

#endif
