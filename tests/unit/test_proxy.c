/* Proxy handshakes (src/net/proxy.c): byte strings in, byte strings out. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "net/proxy.h"

static se_proxy_url url(const char *s)
{
    se_proxy_url u;
    char why[160];
    CHECK_INT(se_proxy_parse(s, &u, why, sizeof why), 0);
    return u;
}

/* Expect the handshake to write exactly `want` (len n) next. */
static void expect_out(se_proxy_hs *h, const void *want, size_t n)
{
    CHECK_INT(se_proxy_step(h), SE_PROXY_WRITE);
    size_t len;
    const char *o = se_proxy_out(h, &len);
    CHECK_INT(len, n);
    if (len == n)
        CHECK(memcmp(o, want, n) == 0);
    se_proxy_sent(h, len);
}

/* Feed `data` the way a driver would: never more than se_proxy_need(). */
static size_t feed(se_proxy_hs *h, const void *data, size_t n)
{
    size_t used = 0;
    while (used < n && se_proxy_step(h) == SE_PROXY_READ) {
        size_t k = se_proxy_need(h);
        CHECK(k >= 1);
        if (k > n - used)
            k = n - used;
        CHECK_INT(se_proxy_feed(h, (const char *)data + used, k), 0);
        used += k;
    }
    return used;
}

TEST(proxy_parse_forms)
{
    se_proxy_url u = url("socks5h://us%40er:p%3Ass@proxy.example:1081");
    CHECK_INT(u.kind, SE_PROXY_SOCKS5H);
    CHECK_STR(u.host, "proxy.example");
    CHECK_INT(u.port, 1081);
    CHECK_STR(u.user, "us@er");
    CHECK_STR(u.pass, "p:ss");
    u = url("http://[::1]:3128/");
    CHECK_INT(u.kind, SE_PROXY_HTTP);
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, 3128);
    CHECK_STR(u.user, "");
    u = url("socks5://10.0.0.1");
    CHECK_INT(u.port, 1080);
    char why[160];
    const char *bad[] = {"ftp://x:1", "socks5://", "socks5://h:0", "socks5://h:70000",
                         "http://h:1/path", "socks5://u:p@", "http://h :1", "socks5://%zz@h:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(se_proxy_parse(bad[i], &u, why, sizeof why), -1);
    CHECK(strstr(why, "%zz") == NULL);
}

TEST(proxy_redact_hides_the_password)
{
    char out[200];
    se_proxy_redact("socks5://user:secret@h:1080", out, sizeof out);
    CHECK_STR(out, "socks5://user:***@h:1080");
    se_proxy_redact("http://h:3128", out, sizeof out);
    CHECK_STR(out, "http://h:3128");
    se_proxy_redact("http://user@h:3128", out, sizeof out);
    CHECK_STR(out, "http://user@h:3128");
    /* A password with '/', '@' or '#' unescaped: still hidden, still parsed. */
    se_proxy_redact("socks5://u:p/a@s#s@h:1", out, sizeof out);
    CHECK_STR(out, "socks5://u:***@h:1");
    se_proxy_url u = url("socks5://u:p/a@s#s@h:1");
    CHECK_STR(u.pass, "p/a@s#s");
    CHECK_STR(u.host, "h");
    CHECK_INT(u.port, 1);
}

TEST(proxy_socks5_no_auth_by_address)
{
    se_proxy_url u = url("socks5://127.0.0.1:1080");
    se_proxy_hs h;
    const unsigned char addr[4] = {192, 0, 2, 7};
    CHECK_INT(se_proxy_start(&h, &u, "mail.example", 587, addr, 4), 0);
    expect_out(&h, "\x05\x01\x00", 3);
    feed(&h, "\x05\x00", 2);
    expect_out(&h, "\x05\x01\x00\x01\xc0\x00\x02\x07\x02\x4b", 10);
    /* The reply, then the SMTP greeting in the same segment: not taken. */
    static const char rep[] = "\x05\x00\x00\x01\x7f\x00\x00\x01\x30\x39"
                              "220 mx ready\r\n";
    CHECK_INT(feed(&h, rep, sizeof rep - 1), 10);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_DONE);
    se_proxy_free(&h);
}

TEST(proxy_socks5h_user_password_by_name)
{
    se_proxy_url u = url("socks5h://ab:xyz@127.0.0.1:1080");
    se_proxy_hs h;
    CHECK_INT(se_proxy_start(&h, &u, "mx.test", 25, NULL, 0), 0);
    expect_out(&h, "\x05\x02\x00\x02", 4);
    feed(&h, "\x05\x02", 2);
    expect_out(&h, "\x01\x02" "ab" "\x03" "xyz", 8);
    feed(&h, "\x01\x00", 2);
    expect_out(&h, "\x05\x01\x00\x03\x07" "mx.test" "\x00\x19", 14);
    /* A bound address given as a domain name. */
    static const char rep[] = "\x05\x00\x00\x03\x04" "host" "\x00\x19";
    CHECK_INT(feed(&h, rep, sizeof rep - 1), sizeof rep - 1);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_DONE);
    se_proxy_free(&h);
}

TEST(proxy_socks5_refusals_say_why)
{
    se_proxy_url u = url("socks5h://ab:xyz@127.0.0.1:1080");
    se_proxy_hs h;
    se_proxy_start(&h, &u, "mx.test", 25, NULL, 0);
    expect_out(&h, "\x05\x02\x00\x02", 4);
    feed(&h, "\x05\x02", 2);
    expect_out(&h, "\x01\x02" "ab" "\x03" "xyz", 8);
    feed(&h, "\x01\x01", 2);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_FAILED);
    CHECK(strstr(se_proxy_why(&h), "refused the user name and password") != NULL);
    CHECK(strstr(se_proxy_why(&h), "xyz") == NULL);
    se_proxy_free(&h);

    se_proxy_start(&h, &u, "mx.test", 25, NULL, 0);
    expect_out(&h, "\x05\x02\x00\x02", 4);
    feed(&h, "\x05\xff", 2);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_FAILED);
    CHECK(strstr(se_proxy_why(&h), "authentication methods") != NULL);
    se_proxy_free(&h);

    se_proxy_url n = url("socks5h://127.0.0.1:1080");
    se_proxy_start(&h, &n, "mx.test", 25, NULL, 0);
    expect_out(&h, "\x05\x01\x00", 3);
    feed(&h, "\x05\x00", 2);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_WRITE);
    se_proxy_sent(&h, 14);
    feed(&h, "\x05\x04\x00\x01\x00", 5);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_FAILED);
    CHECK(strstr(se_proxy_why(&h), "host unreachable (SOCKS5 reply 4)") != NULL);
    se_proxy_free(&h);

    se_proxy_start(&h, &n, "mx.test", 25, NULL, 0);
    expect_out(&h, "\x05\x01\x00", 3);
    CHECK_INT(se_proxy_feed(&h, "", 0), 0); /* the proxy hung up */
    CHECK_INT(se_proxy_step(&h), SE_PROXY_FAILED);
    CHECK(strstr(se_proxy_why(&h), "closed") != NULL);
    se_proxy_free(&h);
}

TEST(proxy_http_connect)
{
    se_proxy_url u = url("http://Aladdin:open%20sesame@127.0.0.1:3128");
    se_proxy_hs h;
    CHECK_INT(se_proxy_start(&h, &u, "mx.test", 587, NULL, 0), 0);
    static const char req[] = "CONNECT mx.test:587 HTTP/1.1\r\nHost: mx.test:587\r\n"
                              "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n";
    expect_out(&h, req, sizeof req - 1);
    /* Headers and the SMTP greeting in one segment: stops at the blank line. */
    static const char rep[] = "HTTP/1.1 200 Connection established\r\nX-A: b\r\n\r\n"
                              "220 mx ready\r\n";
    CHECK_INT(feed(&h, rep, sizeof rep - 1), sizeof rep - 1 - 14);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_DONE);
    se_proxy_free(&h);
}

TEST(proxy_http_refused_and_v6)
{
    se_proxy_url u = url("http://127.0.0.1:3128");
    se_proxy_hs h;
    se_proxy_start(&h, &u, "2001:db8::1", 25, NULL, 0);
    static const char req[] = "CONNECT [2001:db8::1]:25 HTTP/1.1\r\nHost: [2001:db8::1]:25\r\n\r\n";
    expect_out(&h, req, sizeof req - 1);
    static const char rep[] = "HTTP/1.0 403 Access violation\r\n\r\n";
    feed(&h, rep, sizeof rep - 1);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_FAILED);
    CHECK(strstr(se_proxy_why(&h), "CONNECT refused: HTTP/1.0 403 Access violation") != NULL);
    se_proxy_free(&h);

    /* Not HTTP at all, and an endless header: refused, bounded. */
    se_proxy_start(&h, &u, "mx", 25, NULL, 0);
    expect_out(&h, "CONNECT mx:25 HTTP/1.1\r\nHost: mx:25\r\n\r\n", 39);
    feed(&h, "SSH-2.0-x\r\n\r\n", 13);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_FAILED);
    se_proxy_free(&h);
    se_proxy_start(&h, &u, "mx", 25, NULL, 0);
    expect_out(&h, "CONNECT mx:25 HTTP/1.1\r\nHost: mx:25\r\n\r\n", 39);
    char junk[SE_PROXY_HTTP_MAX + 100];
    memset(junk, 'a', sizeof junk);
    feed(&h, junk, sizeof junk);
    CHECK_INT(se_proxy_step(&h), SE_PROXY_FAILED);
    CHECK(strstr(se_proxy_why(&h), "longer than") != NULL);
    se_proxy_free(&h);
}
