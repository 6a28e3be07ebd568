/* The process-wide connection pool: idle, authenticated SMTP sessions kept
 * for reuse, keyed by destination and identity (see scalr_email.h,
 * "Connection pool").  Thread-safe; fork-safe (a child drops what it
 * inherited without a byte on the wire). */
#ifndef SE_POOL_H
#define SE_POOL_H

#include <sys/types.h>

#include "net/conn.h"
#include "smtp/engine.h"

#define SE_POOL_KEY_LEN 32 /* SHA-256 */

/* One live SMTP session: a connection and the engine driving it. */
typedef struct se_session {
    se_conn *conn;
    se_smtp *eng;
    unsigned char key[SE_POOL_KEY_LEN];
    long long idle_since; /* monotonic ms, while in the pool */
    pid_t pid;            /* the process that opened it */
    int reused;           /* came from the pool: may have gone stale */
    int counted;          /* holds one of its key's slots (se_pool_reserve) */
    /* The engine traces through the session: set while a caller uses it,
     * NULL while idle (a pooled session outlives its client). */
    scalr_email_trace_fn trace;
    void *trace_arg;
    struct se_session *next;
} se_session;

long long se_pool_now_ms(void);

/* The engine's trace function; its argument is the se_session. */
void se_session_trace(void *arg, char dir, const char *line, size_t len);

/* Key of a destination and identity: a digest, so no password is kept. */
void se_pool_key(unsigned char key[SE_POOL_KEY_LEN], const char *host, unsigned port, int tls,
                 const char *user, const char *password, const char *ca_file, const char *helo);

/* An idle session for key, checked alive (zero-timeout poll), or NULL.
 * Expired and dead sessions met on the way are closed. */
se_session *se_pool_get(const unsigned char key[SE_POOL_KEY_LEN], unsigned idle_ms);

/* Give back a session after a transaction.  Kept when it is reusable and
 * fewer than max_idle are idle for its key; otherwise closed (QUIT when
 * the stream is in step, its reply not awaited). */
void se_pool_put(se_session *s, int max_idle);

/* Close a session: QUIT when quit_ms > 0 and the stream is in step (each
 * write, and the wait for the reply when wait_reply, bounded by quit_ms),
 * else just close.  Sessions of another process are dropped silently
 * (no byte written, no TLS close_notify).  NULL is fine. */
void se_session_close(se_session *s, unsigned quit_ms, int wait_reply);

/* SMTP_POOL_MAX: reserve one of max connection slots (in use and idle)
 * for key, waiting until deadline (se_pool_now_ms clock) for one to be
 * released.  1: reserved (the session opened with it sets counted; else
 * give it back with se_pool_unreserve); 0: an idle session for key came
 * back meanwhile, try se_pool_get again; -1: timed out. */
int se_pool_reserve(const unsigned char key[SE_POOL_KEY_LEN], int max, long long deadline);
void se_pool_unreserve(const unsigned char key[SE_POOL_KEY_LEN]);

/* Close every idle session of this process. */
void se_pool_close_idle(void);

#endif
