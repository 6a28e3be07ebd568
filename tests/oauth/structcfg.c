/* A test program for tests/oauth: a client from scalr_email_config (not the
 * environment) signing in with OAuth2.
 *   structcfg PORT CA_FILE MODE [ARG]
 * MODE: grant URL       (refresh-token grant, refresh token in ARG's file)
 *       token TOKEN     (a fixed token, SCALR_EMAIL_AUTH_XOAUTH2)
 *       plain-token     (auth=PLAIN with a token: refused)
 *       http-url        (an http:// endpoint: refused)
 * Prints "new <code> <message>" and "send <code> <message>" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalr_email.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: structcfg PORT CA_FILE MODE [ARG]\n");
        return 2;
    }
    const char *mode = argv[3], *arg = argc > 4 ? argv[4] : NULL;
    scalr_email_config cfg = {
        .host = "127.0.0.1",
        .port = (unsigned)atoi(argv[1]),
        .tls = SCALR_EMAIL_TLS_NONE,
        .username = "alice@example.com",
        .from = "sender@example.com",
        .ca_file = argv[2],
        .timeout_ms = 5000,
    };
    if (!strcmp(mode, "grant")) {
        cfg.oauth_token_url = arg;
        cfg.oauth_client_id = "client-id-123";
        cfg.oauth_client_secret = "client-secret-XYZ";
        cfg.oauth_refresh_token_file = argc > 5 ? argv[5] : NULL;
    } else if (!strcmp(mode, "token")) {
        cfg.auth = SCALR_EMAIL_AUTH_XOAUTH2;
        cfg.oauth_token = arg;
    } else if (!strcmp(mode, "plain-token")) {
        cfg.auth = SCALR_EMAIL_AUTH_PLAIN;
        cfg.oauth_token = "tok";
    } else if (!strcmp(mode, "http-url")) {
        cfg.oauth_token_url = "http://127.0.0.1:1/token";
        cfg.oauth_client_id = "id";
        cfg.oauth_refresh_token = "rt";
    }
    scalr_email_client *c;
    scalr_email_error e;
    scalr_email_code rc = scalr_email_client_new(&c, &cfg, &e);
    printf("new %d %s\n", (int)rc, rc ? e.message : "");
    if (rc != SCALR_EMAIL_OK)
        return 1;
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        scalr_email_message m = {
            .to = SCALR_EMAIL_LIST("rcpt@example.com"), .subject = "struct", .body = "hi\n"};
        rc = scalr_email_client_send(c, &m, &e);
        printf("send %d %s\n", (int)rc, rc ? e.message : "");
        failed += rc != SCALR_EMAIL_OK;
    }
    scalr_email_client_free(c);
    return failed ? 1 : 0;
}
