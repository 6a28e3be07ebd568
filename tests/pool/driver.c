/* A test driver for tests/pool: sends through the library the way an
 * application would, configured from SMTP_* in the environment.
 *   driver seq N [SLEEP_MS]   N scalr_email_send() calls in a row
 *   driver threads T M        T threads x M messages through one client
 *   driver fork               send; fork: child sends; parent sends again
 * Prints one line per message: "TAG CODE SMTP_CODE message". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scalr_email.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int send_tag(scalr_email_client *c, const char *tag)
{
    char body[128];
    snprintf(body, sizeof body, "id=%s\n", tag);
    scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("rcpt@example.com"),
        .subject = tag,
        .body = body,
    };
    scalr_email_error e;
    scalr_email_code rc = c ? scalr_email_client_send(c, &m, &e) : scalr_email_send(&m, &e);
    pthread_mutex_lock(&out_lock);
    printf("%s %d %d %s\n", tag, (int)rc, e.smtp_code, e.message);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    return rc != SCALR_EMAIL_OK;
}

typedef struct {
    scalr_email_client *c;
    int t, m, failed;
} job;

static void *run_thread(void *arg)
{
    job *j = arg;
    for (int i = 0; i < j->m; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "t%d-m%d", j->t, i);
        j->failed += send_tag(j->c, tag);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "seq")) {
        int n = atoi(argv[2]), sleep_ms = argc > 3 ? atoi(argv[3]) : 0, failed = 0;
        for (int i = 0; i < n; i++) {
            char tag[32];
            snprintf(tag, sizeof tag, "seq-%d", i);
            if (i && sleep_ms) {
                struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            failed += send_tag(NULL, tag);
        }
        return failed ? 1 : 0;
    }
    if (argc == 4 && !strcmp(argv[1], "threads")) {
        int t = atoi(argv[2]), m = atoi(argv[3]), failed = 0;
        scalr_email_client *c;
        scalr_email_error e;
        if (scalr_email_client_from_env(&c, NULL, NULL, NULL, &e) != SCALR_EMAIL_OK) {
            fprintf(stderr, "%s\n", e.message);
            return 2;
        }
        pthread_t th[64];
        job jobs[64];
        if (t > 64)
            t = 64;
        for (int i = 0; i < t; i++) {
            jobs[i] = (job){.c = c, .t = i, .m = m};
            pthread_create(&th[i], NULL, run_thread, &jobs[i]);
        }
        for (int i = 0; i < t; i++) {
            pthread_join(th[i], NULL);
            failed += jobs[i].failed;
        }
        scalr_email_client_free(c);
        return failed ? 1 : 0;
    }
    if (argc == 2 && !strcmp(argv[1], "fork")) {
        int failed = send_tag(NULL, "parent-1");
        pid_t pid = fork();
        if (pid == 0)
            _exit(send_tag(NULL, "child-1"));
        int st = 0;
        waitpid(pid, &st, 0);
        failed += send_tag(NULL, "parent-2");
        return failed || !WIFEXITED(st) || WEXITSTATUS(st) ? 1 : 0;
    }
    fprintf(stderr, "usage: driver seq N [SLEEP_MS] | threads T M | fork\n");
    return 2;
}
