/* SOCKS5 and HTTP CONNECT handshakes as a state machine over buffers (see
 * proxy.h).  Every answer is read with exact lengths (SOCKS5) or up to its
 * blank line (HTTP), so no byte of the tunnelled stream is taken. */
#include "net/proxy.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

enum {
    ST_S5_GREET, /* waiting for VER METHOD */
    ST_S5_AUTH,  /* waiting for the RFC 1929 status */
    ST_S5_REPLY, /* waiting for the CONNECT reply's head */
    ST_S5_ADDR,  /* its bound address and port */
    ST_HTTP,     /* waiting for the status line and headers */
    ST_DONE,
    ST_FAILED
};

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* %XX-decode [s, s+n) into dst (cap dstlen); -1 when bad or too long. */
static int pct_decode(char *dst, size_t dstlen, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= dstlen)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

int se_proxy_parse(const char *url, se_proxy_url *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    const char *rest;
    if (strncasecmp(url, "socks5://", 9) == 0) {
        out->kind = SE_PROXY_SOCKS5;
        rest = url + 9;
        out->port = 1080;
    } else if (strncasecmp(url, "socks5h://", 10) == 0) {
        out->kind = SE_PROXY_SOCKS5H;
        rest = url + 10;
        out->port = 1080;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        out->kind = SE_PROXY_HTTP;
        rest = url + 7;
        out->port = 8080;
    } else {
        snprintf(why, whylen, "must start with socks5://, socks5h:// or http://");
        return -1;
    }
    for (const char *p = rest; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            snprintf(why, whylen, "contains a space or control character");
            return -1;
        }
    /* The last '@' ends the user information (a password may hold '@',
     * '/' or '#' unescaped; curl reads it the same way). */
    const char *at = strrchr(rest, '@');
    const char *hp = at ? at + 1 : rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t ul = colon ? (size_t)(colon - rest) : (size_t)(at - rest);
        if (pct_decode(out->user, sizeof out->user, rest, ul) < 0 || !out->user[0] ||
            (colon && pct_decode(out->pass, sizeof out->pass, colon + 1,
                                 (size_t)(at - colon - 1)) < 0)) {
            snprintf(why, whylen, "has a bad or too long user name or password");
            return -1;
        }
    }
    size_t len = strcspn(hp, "/?#");
    if (hp[len] && strcmp(hp + len, "/") != 0) {
        snprintf(why, whylen, "must be scheme://[user:password@]host:port with no path");
        return -1;
    }
    const char *port = NULL;
    size_t hl;
    if (hp[0] == '[') {
        const char *close = memchr(hp, ']', len);
        if (!close) {
            snprintf(why, whylen, "has an unclosed [ in its host");
            return -1;
        }
        hl = (size_t)(close - hp - 1);
        memcpy(out->host, hp + 1, hl < sizeof out->host ? hl : 0);
        if (close + 1 < hp + len) {
            if (close[1] != ':') {
                snprintf(why, whylen, "has junk after its host");
                return -1;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', len);
        hl = colon ? (size_t)(colon - hp) : len;
        if (hl < sizeof out->host)
            memcpy(out->host, hp, hl);
        if (colon)
            port = colon + 1;
    }
    if (!hl || hl >= sizeof out->host) {
        snprintf(why, whylen, "has no host, or too long a host");
        return -1;
    }
    out->host[hl] = '\0';
    if (port) {
        size_t pl = (size_t)(hp + len - port);
        unsigned v = 0;
        for (size_t i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)port[i]) || (v = v * 10 + (unsigned)(port[i] - '0')) > 65535) {
                v = 0;
                break;
            }
        }
        if (!pl || !v) {
            snprintf(why, whylen, "has a port that is not 1 to 65535");
            return -1;
        }
        out->port = v;
    }
    /* RFC 1929 2: one octet for each length. */
    if (strlen(out->user) > 255 || strlen(out->pass) > 255) {
        snprintf(why, whylen, "has a user name or password over 255 bytes");
        return -1;
    }
    return 0;
}

void se_proxy_redact(const char *url, char *out, size_t outlen)
{
    const char *scheme = strstr(url, "://");
    const char *start = scheme ? scheme + 3 : url;
    const char *at = strrchr(start, '@'); /* as se_proxy_parse reads it */
    const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
    if (!colon) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
}

static const char *socks_reply_text(int rep)
{
    /* RFC 1928 6 */
    static const char *const t[] = {"succeeded",
                                    "general SOCKS server failure",
                                    "connection not allowed by ruleset",
                                    "network unreachable",
                                    "host unreachable",
                                    "connection refused",
                                    "TTL expired",
                                    "command not supported",
                                    "address type not supported"};
    return rep >= 0 && rep < 9 ? t[rep] : "unknown reply code";
}

static void fail(se_proxy_hs *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(se_proxy_hs *h, const char *fmt, ...)
{
    int n = snprintf(h->why, sizeof h->why, "proxy %.200s:%u: ", h->p->host, h->p->port);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof h->why)
        vsnprintf(h->why + n, sizeof h->why - (size_t)n, fmt, ap);
    va_end(ap);
    h->state = ST_FAILED;
}

int se_proxy_start(se_proxy_hs *h, const se_proxy_url *p, const char *host, unsigned port,
                   const unsigned char *addr, size_t addr_len)
{
    memset(h, 0, sizeof *h);
    h->p = p;
    if (p->kind == SE_PROXY_HTTP) {
        /* RFC 9110 9.3.6: authority-form; an IPv6 literal in brackets. */
        int v6 = strchr(host, ':') != NULL;
        se_buf_printf(&h->out, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n",
                      v6 ? "[" : "", host, v6 ? "]" : "", port, v6 ? "[" : "", host,
                      v6 ? "]" : "", port);
        if (p->user[0]) { /* RFC 7617: Basic user:password */
            char plain[520], enc[700];
            int n = snprintf(plain, sizeof plain, "%s:%s", p->user, p->pass);
            EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)plain, n);
            se_buf_printf(&h->out, "Proxy-Authorization: Basic %s\r\n", enc);
            OPENSSL_cleanse(plain, sizeof plain);
            OPENSSL_cleanse(enc, sizeof enc);
        }
        se_buf_puts(&h->out, "\r\n");
        h->state = ST_HTTP;
        h->need = 4; /* at least "\r\n\r\n" */
    } else {
        if (strlen(host) > 255)
            return -1;
        /* RFC 1928 3: offer no authentication, and user/password when given. */
        if (p->user[0])
            se_buf_append(&h->out, "\x05\x02\x00\x02", 4);
        else
            se_buf_append(&h->out, "\x05\x01\x00", 3);
        h->state = ST_S5_GREET;
        h->need = 2;
    }
    h->target_port = port;
    snprintf(h->target_host, sizeof h->target_host, "%s", host);
    if (addr && addr_len <= sizeof h->target_addr) {
        memcpy(h->target_addr, addr, addr_len);
        h->target_addr_len = addr_len;
    }
    return h->out.oom ? -1 : 0;
}

se_proxy_want se_proxy_step(se_proxy_hs *h)
{
    if (h->out_pos < h->out.len)
        return SE_PROXY_WRITE;
    if (h->state == ST_DONE)
        return SE_PROXY_DONE;
    if (h->state == ST_FAILED)
        return SE_PROXY_FAILED;
    return SE_PROXY_READ;
}

const char *se_proxy_out(se_proxy_hs *h, size_t *len)
{
    *len = h->out.len - h->out_pos;
    return h->out.data + h->out_pos;
}

void se_proxy_sent(se_proxy_hs *h, size_t n)
{
    h->out_pos += n;
    if (h->out_pos >= h->out.len) {
        OPENSSL_cleanse(h->out.data, h->out.len); /* it may carry the password */
        se_buf_reset(&h->out);
        h->out_pos = 0;
    }
}

size_t se_proxy_need(const se_proxy_hs *h)
{
    return h->need;
}

/* RFC 1928 4: CONNECT to the address (socks5) or the name (socks5h). */
static void socks_connect(se_proxy_hs *h)
{
    unsigned char req[4 + 1 + 255 + 2];
    size_t n = 0;
    req[n++] = 5;
    req[n++] = 1; /* CONNECT */
    req[n++] = 0;
    if (h->p->kind == SE_PROXY_SOCKS5H || !h->target_addr_len) {
        size_t l = strlen(h->target_host);
        req[n++] = 3;
        req[n++] = (unsigned char)l;
        memcpy(req + n, h->target_host, l);
        n += l;
    } else {
        req[n++] = h->target_addr_len == 4 ? 1 : 4;
        memcpy(req + n, h->target_addr, h->target_addr_len);
        n += h->target_addr_len;
    }
    req[n++] = (unsigned char)(h->target_port >> 8);
    req[n++] = (unsigned char)(h->target_port & 0xff);
    se_buf_append(&h->out, req, n);
    h->state = ST_S5_REPLY;
    h->need = 5; /* VER REP RSV ATYP and the address's first octet */
}

/* The HTTP answer is complete: "HTTP/1.x 2xx" opens the tunnel. */
static void http_done(se_proxy_hs *h)
{
    const char *s = h->in.data;
    size_t line = strcspn(s, "\r\n");
    if (line > 150)
        line = 150;
    char status[160];
    memcpy(status, s, line);
    status[line] = '\0';
    for (char *c = status; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    if (strncmp(s, "HTTP/1.", 7) != 0 || line < 12 || s[9] < '1' || s[9] > '5') {
        fail(h, "not an HTTP proxy answer: '%s'", status);
        return;
    }
    if (s[9] != '2') {
        fail(h, "CONNECT refused: %s", status);
        return;
    }
    h->state = ST_DONE;
    h->need = 0;
}

static void got_answer(se_proxy_hs *h)
{
    const unsigned char *b = (const unsigned char *)h->in.data;
    switch (h->state) {
    case ST_S5_GREET:
        if (b[0] != 5) {
            fail(h, "not a SOCKS5 proxy (answered version %d)", b[0]);
        } else if (b[1] == 2 && h->p->user[0]) { /* RFC 1929 2 */
            size_t ul = strlen(h->p->user), pl = strlen(h->p->pass);
            unsigned char u = (unsigned char)ul, p = (unsigned char)pl;
            se_buf_append(&h->out, "\x01", 1);
            se_buf_append(&h->out, &u, 1);
            se_buf_append(&h->out, h->p->user, ul);
            se_buf_append(&h->out, &p, 1);
            se_buf_append(&h->out, h->p->pass, pl);
            h->state = ST_S5_AUTH;
            h->need = 2;
        } else if (b[1] == 0) {
            socks_connect(h);
        } else {
            fail(h, "accepts none of our authentication methods%s (method %d)",
                 h->p->user[0] ? "" : " (it may need a user and password)", b[1]);
        }
        break;
    case ST_S5_AUTH:
        if (b[1] != 0)
            fail(h, "refused the user name and password (status %d)", b[1]);
        else
            socks_connect(h);
        break;
    case ST_S5_REPLY:
        if (b[0] != 5 || b[1] != 0) {
            if (b[0] != 5)
                fail(h, "CONNECT failed: bad answer (version %d)", b[0]);
            else
                fail(h, "CONNECT failed: %s (SOCKS5 reply %d)", socks_reply_text(b[1]), b[1]);
        } else if (b[3] == 1 || b[3] == 4 || b[3] == 3) {
            h->state = ST_S5_ADDR;
            h->need = b[3] == 1 ? 5 : b[3] == 4 ? 17 : (size_t)b[4] + 2;
            h->in.len = 0;
            return;
        } else {
            fail(h, "CONNECT answer has an unknown address type %d", b[3]);
        }
        break;
    case ST_S5_ADDR:
        h->state = ST_DONE;
        break;
    }
    h->in.len = 0;
    if (h->state == ST_DONE || h->state == ST_FAILED)
        h->need = 0;
}

int se_proxy_feed(se_proxy_hs *h, const void *data, size_t n)
{
    if (h->state == ST_DONE || h->state == ST_FAILED)
        return 0;
    if (n == 0) {
        fail(h, "closed the connection during the handshake");
        return 0;
    }
    if (n > h->need)
        n = h->need;
    if (se_buf_append(&h->in, data, n) < 0)
        return -1;
    h->need -= n;
    if (h->state == ST_HTTP) {
        const char *s = h->in.data;
        size_t l = h->in.len;
        if (l >= 4 && memcmp(s + l - 4, "\r\n\r\n", 4) == 0) {
            http_done(h);
            return 0;
        }
        if (l >= SE_PROXY_HTTP_MAX) {
            fail(h, "answer to CONNECT longer than %d bytes", SE_PROXY_HTTP_MAX);
            return 0;
        }
        /* Never past the blank line: as many bytes as could complete it. */
        h->need = l >= 3 && memcmp(s + l - 3, "\r\n\r", 3) == 0   ? 1
                  : l >= 2 && memcmp(s + l - 2, "\r\n", 2) == 0 ? 2
                  : l >= 1 && s[l - 1] == '\r'                  ? 3
                                                                : 4;
        return 0;
    }
    if (h->need == 0)
        got_answer(h);
    return 0;
}

const char *se_proxy_why(const se_proxy_hs *h)
{
    return h->why;
}

void se_proxy_free(se_proxy_hs *h)
{
    if (h->out.data)
        OPENSSL_cleanse(h->out.data, h->out.len);
    se_buf_free(&h->out);
    se_buf_free(&h->in);
}

#include "error.h"
#include "net/conn.h"

scalr_email_code se_proxy_connect(se_conn **out, const se_proxy_url *p, const char *host,
                                  unsigned port, unsigned timeout_ms, long long limit,
                                  unsigned limit_ms, scalr_email_error *err)
{
    *out = NULL;
    unsigned char addr[16];
    size_t alen = 0;
    if (p->kind == SE_PROXY_SOCKS5 && se_conn_resolve(host, addr, &alen) < 0)
        return se_fail(err, SCALR_EMAIL_ECONNECT, "CONNECT",
                       "cannot resolve %s (socks5h:// lets the proxy resolve it)", host);
    se_conn *c = NULL;
    scalr_email_code rc = se_conn_open_by(&c, p->host, p->port, timeout_ms, limit, limit_ms, err);
    if (rc != SCALR_EMAIL_OK) {
        if (err) { /* say it was the proxy that could not be reached */
            char m[sizeof err->message];
            snprintf(m, sizeof m, "proxy: %.700s", err->message);
            snprintf(err->message, sizeof err->message, "%s", m);
        }
        return rc;
    }
    se_proxy_hs h;
    if (se_proxy_start(&h, p, host, port, alen ? addr : NULL, alen) < 0) {
        se_proxy_free(&h);
        se_conn_close(c);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "out of memory");
    }
    /* The whole handshake is one wait of timeout_ms: the proxy answers
     * only once it has reached the server (or given up). */
    long long deadline = se_conn_now_ms() + (timeout_ms ? timeout_ms : 30000);
    for (;;) {
        se_proxy_want w = se_proxy_step(&h);
        if (w == SE_PROXY_WRITE) {
            size_t n;
            const char *o = se_proxy_out(&h, &n);
            rc = se_conn_write(c, o, n, timeout_ms, "CONNECT", err);
            if (rc != SCALR_EMAIL_OK)
                break;
            se_proxy_sent(&h, n);
        } else if (w == SE_PROXY_READ) {
            char buf[SE_PROXY_HTTP_MAX];
            size_t want = se_proxy_need(&h), got = 0;
            rc = se_conn_read_by(c, buf, want < sizeof buf ? want : sizeof buf, &got, deadline,
                                 timeout_ms, "CONNECT", err);
            if (rc != SCALR_EMAIL_OK)
                break;
            if (se_proxy_feed(&h, buf, got) < 0) {
                rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "out of memory");
                break;
            }
        } else if (w == SE_PROXY_DONE) {
            break;
        } else {
            rc = se_fail(err, SCALR_EMAIL_ECONNECT, "CONNECT", "%s", se_proxy_why(&h));
            break;
        }
    }
    se_proxy_free(&h);
    if (rc != SCALR_EMAIL_OK) {
        se_conn_close(c);
        return rc;
    }
    se_conn_via_proxy(c);
    *out = c;
    return SCALR_EMAIL_OK;
}
