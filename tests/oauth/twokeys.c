/* A test program for tests/oauth: two clients in one process, each from its
 * own env file (the same server and username, another OAuth2 token source),
 * sending in turns.  Prints "send <client> <code>" for each send. */
#include <stdio.h>
#include <stdlib.h>

#include "scalr_email.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: twokeys ENV_A ENV_B ROUNDS\n");
        return 2;
    }
    scalr_email_client *c[2];
    scalr_email_error e;
    for (int i = 0; i < 2; i++)
        if (scalr_email_client_from_env(&c[i], argv[1 + i], NULL, NULL, &e) != SCALR_EMAIL_OK) {
            fprintf(stderr, "%s\n", e.message);
            return 2;
        }
    int failed = 0, rounds = atoi(argv[3]);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < 2; i++) {
            scalr_email_message m = {.to = SCALR_EMAIL_LIST("rcpt@example.com"),
                                     .subject = i ? "B" : "A",
                                     .body = "hi\n"};
            scalr_email_code rc = scalr_email_client_send(c[i], &m, &e);
            printf("send %c %d %s\n", 'A' + i, (int)rc, rc ? e.message : "");
            failed += rc != SCALR_EMAIL_OK;
        }
    scalr_email_client_free(c[0]);
    scalr_email_client_free(c[1]);
    return failed ? 1 : 0;
}
