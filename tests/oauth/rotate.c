/* A test program for tests/oauth: one client from SMTP_* in the
 * environment, scalr_email_client_on_refresh_token() set, N sends.  Prints
 * "rotated <token>" for each rotation it is handed (the test endpoint's
 * refresh tokens are throw-away) and "send <code>" for each send. */
#include <stdio.h>
#include <stdlib.h>

#include "scalr_email.h"

static void on_rotate(void *arg, const char *refresh_token)
{
    (*(int *)arg)++;
    printf("rotated %s\n", refresh_token);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1, calls = 0;
    scalr_email_client *c;
    scalr_email_error e;
    if (scalr_email_client_from_env(&c, NULL, NULL, NULL, &e) != SCALR_EMAIL_OK) {
        fprintf(stderr, "%s\n", e.message);
        return 2;
    }
    scalr_email_client_on_refresh_token(c, on_rotate, &calls);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        scalr_email_message m = {
            .to = SCALR_EMAIL_LIST("rcpt@example.com"), .subject = "rotate", .body = "hi\n"};
        scalr_email_code rc = scalr_email_client_send(c, &m, &e);
        printf("send %d %s\n", (int)rc, rc ? e.message : "");
        failed += rc != SCALR_EMAIL_OK;
    }
    printf("calls %d\n", calls);
    scalr_email_client_free(c);
    return failed ? 1 : 0;
}
