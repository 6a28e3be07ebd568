/* `scalr-email inbox`: option parsing, then the store, the fault rules, the
 * SMTP listener and the web side; runs until SIGINT or SIGTERM. */
#include "inbox.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "chaos.h"
#include "dkimcheck.h"
#include "http.h"
#include "http_queue.h"
#include "http_templates.h"
#include "release.h"
#include "server.h"
#include "store.h"

#define DEFAULT_MAX_SIZE (25u * 1024 * 1024)
#define LIMIT_MAX_SIZE (512u * 1024 * 1024) /* under SQLite's 1e9-byte blob limit */
#define MAX_RULES 64

static const char usage[] =
    "usage: scalr-email inbox [--smtp HOST:PORT] [--http HOST:PORT] [--db PATH]\n"
    "                         [--tls-cert PEM --tls-key PEM] [--tls-implicit]\n"
    "                         [--auth any|USER:PASS|token:TOKEN] [--auth-expired TOKEN]\n"
    "                         [--max-size BYTES] [--max-conn N]\n"
    "                         [--idle-timeout SECONDS] [--chaos RULE ...] [--queue URL]\n"
    "                         [--templates DIR]\n"
    "                         [--dkim-record FILE]\n"
    "                         [--allow-host NAME ...] [--max-conn-per-client N]\n"
    "                         [--max-memory SIZE]\n"
    "                         [--release-env FILE --release-allow PATTERN ...]\n"
    "\n"
    "A local mail catcher: SMTP on 127.0.0.1:1025, web UI and API on 127.0.0.1:8025.\n"
    "  --smtp, --http   where to listen; port 0 picks a free port (printed when ready)\n"
    "  --db PATH        keep messages in this SQLite file (default: in memory)\n"
    "  --tls-cert/key   offer STARTTLS with this certificate; --tls-implicit: TLS from\n"
    "                   the first byte instead\n"
    "  --auth           require AUTH: `any` accepts every credential and token;\n"
    "                   USER:PASS for PLAIN/LOGIN; token:TOKEN for XOAUTH2/OAUTHBEARER\n"
    "  --auth-expired TOKEN  answer this OAuth2 access token as expired (test a refresh)\n"
    "  --max-size       message size limit (default 26214400)\n"
    "  --max-conn       simultaneous SMTP connections (default 500); over 80% in use,\n"
    "                   idle sessions are closed after 5 s (15 s inside a message)\n"
    "  --max-conn-per-client  connections from one non-loopback address (default: no limit)\n"
    "  --max-memory SIZE  without --db, keep at most this much mail (default 256M; 0: no\n"
    "                   limit), dropping the oldest first; --db keeps everything\n"
    "  --chaos RULE     fault injection, e.g. 'rcpt:550 5.1.1 no such user:match=bad@',\n"
    "                   'data:451 4.3.0 try later:p=0.5', 'mail:disconnect', 'ehlo:delay=2000'\n"
    "  --allow-host NAME  also answer web requests for this Host name, no port (e.g. a\n"
    "                   compose service name, or [fd00::5]); names other than localhost,\n"
    "                   127.0.0.1, [::1] and the --http host get 403 (DNS rebinding)\n"
    "  --release-env FILE  relay for releasing caught messages to real mailboxes (UI\n"
    "                   button, POST /api/scalr/messages/ID/release): SMTP_HOST, SMTP_PORT,\n"
    "                   SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM... as for `scalr-email send`\n"
    "  --release-allow PATTERN  who a message may be released to: 'me@example.com',\n"
    "                   '*@example.com' ('*' only before the @), or '*' for anyone; needed\n"
    "                   with --release-env, repeatable (at most 32)\n"
    "  --queue URL      also show this durable queue (sqlite:PATH or postgresql://...)\n"
    "                   read-only, in the UI's Queue view and under /api/scalr/queue\n"
    "  --templates DIR  preview every template of DIR rendered with its sample.json in the\n"
    "                   UI's Templates view (and /api/scalr/templates), fresh on each look\n"
    "  --dkim-record FILE  DKIM key records ('S._domainkey.D TXT \"v=DKIM1; ...\"' lines, as\n"
    "                   `scalr-email dkim keygen` prints them; repeatable): the UI's DKIM badge\n"
    "                   and view, and GET /api/scalr/messages/ID/dkim, say whether each\n"
    "                   signature verifies and why not\n";

typedef struct opts {
    char smtp_host[256], http_host[256];
    unsigned smtp_port, http_port;
    const char *db, *cert, *key, *auth, *auth_expired, *queue, *templates, *release_env;
    int n_allow;
    int implicit;
    unsigned long max_size, max_conn, idle, max_per_client;
    unsigned long long max_memory;
    const char *rules[MAX_RULES];
    size_t n_rules;
} opts;

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("scalr-email inbox: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(see scalr-email inbox --help)\n", stderr);
    return EX_USAGE;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "HOST:PORT", "[V6]:PORT" or "PORT". */
static int parse_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
    const char *colon = strrchr(s, ':');
    const char *p = colon ? colon + 1 : s;
    const char *h = s;
    size_t hl = colon ? (size_t)(colon - s) : 0;
    unsigned long v;
    if (parse_ulong(p, 0, 65535, &v) < 0)
        return -1;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0)
        h = "127.0.0.1", hl = strlen(h);
    if (hl >= hostlen || memchr(h, '[', hl) || memchr(h, ']', hl))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)v;
    return 0;
}

/* "268435456", "256M", "2G", "512k"; 0 means no limit. */
static int parse_size(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *v == '-')
        return -1;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift)
        end++;
    if ((*end == 'B' || *end == 'b') && shift)
        end++;
    if (*end || (shift && n > (~0ull >> shift)))
        return -1;
    *out = n << shift;
    return 0;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    strcpy(o->smtp_host, "127.0.0.1");
    strcpy(o->http_host, "127.0.0.1");
    o->smtp_port = 1025;
    o->http_port = 8025;
    o->max_size = DEFAULT_MAX_SIZE;
    o->max_conn = 500;
    o->max_memory = 256ull << 20;
    o->idle = 300;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return -1;
        }
        if (!strcmp(a, "--tls-implicit")) {
            o->implicit = 1;
            continue;
        }
        /* Every other option takes a value: "--opt VALUE" or "--opt=VALUE". */
        const char *eq = strchr(a, '=');
        char name[32];
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (strncmp(a, "--", 2) || nl >= sizeof name)
            return bad("unknown argument '%s'", a);
        memcpy(name, a, nl);
        name[nl] = '\0';
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v)
            return bad("%s needs a value", name);
        if (!strcmp(name, "--smtp")) {
            if (parse_hostport(v, o->smtp_host, sizeof o->smtp_host, &o->smtp_port) < 0)
                return bad("--smtp wants HOST:PORT, not '%s'", v);
        } else if (!strcmp(name, "--http")) {
            if (parse_hostport(v, o->http_host, sizeof o->http_host, &o->http_port) < 0)
                return bad("--http wants HOST:PORT, not '%s'", v);
        } else if (!strcmp(name, "--db")) {
            o->db = v;
        } else if (!strcmp(name, "--tls-cert")) {
            o->cert = v;
        } else if (!strcmp(name, "--tls-key")) {
            o->key = v;
        } else if (!strcmp(name, "--auth")) {
            if (strcmp(v, "any") && (!strchr(v, ':') || *v == ':' || !strcmp(v, "token:")))
                return bad("--auth wants 'any', USER:PASS or token:TOKEN, not '%s'", v);
            o->auth = v;
        } else if (!strcmp(name, "--auth-expired")) {
            if (!*v)
                return bad("--auth-expired wants an access token");
            o->auth_expired = v;
        } else if (!strcmp(name, "--max-size")) {
            if (parse_ulong(v, 1, LIMIT_MAX_SIZE, &o->max_size) < 0)
                return bad("--max-size wants 1..536870912 bytes, not '%s'", v);
        } else if (!strcmp(name, "--max-conn")) {
            if (parse_ulong(v, 1, 100000, &o->max_conn) < 0)
                return bad("--max-conn wants 1..100000, not '%s'", v);
        } else if (!strcmp(name, "--max-memory")) {
            if (parse_size(v, &o->max_memory) < 0)
                return bad("--max-memory wants a size (bytes, or 256M, 2G; 0: no limit), not '%s'",
                           v);
        } else if (!strcmp(name, "--max-conn-per-client")) {
            if (parse_ulong(v, 1, 100000, &o->max_per_client) < 0)
                return bad("--max-conn-per-client wants 1..100000, not '%s'", v);
        } else if (!strcmp(name, "--idle-timeout")) {
            if (parse_ulong(v, 1, 86400, &o->idle) < 0)
                return bad("--idle-timeout wants 1..86400 seconds, not '%s'", v);
        } else if (!strcmp(name, "--release-env")) {
            o->release_env = v;
        } else if (!strcmp(name, "--release-allow")) {
            char why[400];
            if (ib_release_allow(v, why, sizeof why) < 0)
                return bad("%s", why);
            o->n_allow++;
        } else if (!strcmp(name, "--dkim-record")) {
            char why[256];
            if (ib_dkim_records(v, why, sizeof why) < 0)
                return bad("%s", why);
        } else if (!strcmp(name, "--queue")) {
            o->queue = v;
        } else if (!strcmp(name, "--templates")) {
            o->templates = v;
        } else if (!strcmp(name, "--allow-host")) {
            /* a name or an address as a Host header has it: no port ("[v6]") */
            int v6 = v[0] == '[' && v[strlen(v) - 1] == ']' && !strpbrk(v + 1, "[/ ");
            if ((!v6 && strpbrk(v, ":/[] ")) || ib_http_allow_host(v) < 0)
                return bad("--allow-host wants a host name without a port (at most 32), not '%s'",
                           v);
        } else if (!strcmp(name, "--chaos")) {
            if (o->n_rules == MAX_RULES)
                return bad("at most 64 --chaos rules");
            o->rules[o->n_rules++] = v;
        } else {
            return bad("unknown option '%s'", name);
        }
    }
    if (!o->cert != !o->key)
        return bad("--tls-cert and --tls-key go together");
    if (o->release_env && !o->n_allow)
        return bad("--release-env needs at least one --release-allow PATTERN (e.g. "
                   "'*@example.com'), so the inbox is not an open relay");
    if (o->n_allow && !o->release_env)
        return bad("--release-allow needs --release-env FILE (the relay)");
    if (o->implicit && !o->cert)
        return bad("--tls-implicit needs --tls-cert and --tls-key");
    return 0;
}

static void print_http(const char *host, unsigned port)
{
    int v6 = strchr(host, ':') != NULL;
    printf("http: http://%s%s%s:%u\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

int inbox_main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? EX_OK : rc;

    /* Signals: SIGINT/SIGTERM are taken by sigwait() below, so block them
     * before any thread starts (threads inherit the mask). */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    signal(SIGPIPE, SIG_IGN);

    char why[512];
    ib_store *st = NULL;
    ib_chaos *chaos = NULL;
    ib_server *srv = NULL;
    ib_http *http = NULL;
    rc = EX_OK;
    if (ib_store_open(&st, o.db, why, sizeof why) < 0) {
        fprintf(stderr, "scalr-email inbox: %s\n", why);
        rc = EX_CANTCREAT;
        goto out;
    }
    /* Every message gets its DKIM verdict as it arrives (the records are
     * fixed from here on), so the UI's list never verifies. */
    ib_store_set_dkim_check(st, ib_dkim_check_text, ib_dkim_generation());
    if (!o.db) /* a file keeps everything; memory is capped */
        ib_store_set_cap(st, o.max_memory);
    if (!(chaos = ib_chaos_new())) {
        rc = EX_OSERR;
        goto out;
    }
    for (size_t i = 0; i < o.n_rules; i++) {
        if (ib_chaos_add(chaos, o.rules[i], why, sizeof why) < 0) {
            fprintf(stderr, "scalr-email inbox: --chaos '%s': %s\n", o.rules[i], why);
            rc = EX_USAGE;
            goto out;
        }
    }
    ib_server_conf sc = {
        .host = o.smtp_host,
        .port = o.smtp_port,
        .smtpd = {.hostname = "inbox.localhost",
                  .max_size = o.max_size,
                  .auth = o.auth,
                  .auth_expired = o.auth_expired,
                  .chaos = chaos},
        .tls_cert = o.cert,
        .tls_key = o.key,
        .tls_implicit = o.implicit,
        .max_conn = (unsigned)o.max_conn,
        .max_per_client = (unsigned)o.max_per_client,
        .idle_timeout_s = (unsigned)o.idle,
        .store = st,
    };
    if (ib_server_start(&srv, &sc, why, sizeof why) < 0) {
        fprintf(stderr, "scalr-email inbox: %s\n", why);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if (o.queue) {
        scalr_email_code qc = ib_http_queue_init(o.queue, why, sizeof why);
        if (qc != SCALR_EMAIL_OK) {
            fprintf(stderr, "scalr-email inbox: %s\n", why);
            rc = qc == SCALR_EMAIL_ECONFIG ? EX_CONFIG : EX_CANTCREAT; /* as cli/exit.c */
            goto out;
        }
    }
    if (o.templates && ib_http_templates_init(o.templates, why, sizeof why) < 0) {
        fprintf(stderr, "scalr-email inbox: %s\n", why);
        rc = EX_NOINPUT;
        goto out;
    }
    if (o.release_env) {
        scalr_email_code qc =
            ib_release_init(o.release_env, o.smtp_host, o.smtp_port, why, sizeof why);
        if (qc != SCALR_EMAIL_OK) {
            fprintf(stderr, "scalr-email inbox: %s\n", why);
            rc = EX_CONFIG;
            goto out;
        }
    }
    if (ib_http_start(&http, o.http_host, o.http_port, st, chaos, why, sizeof why) < 0) {
        fprintf(stderr, "scalr-email inbox: %s\n", why);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    char addr[128];
    ib_server_addr(srv, addr, sizeof addr);
    printf("smtp: %s\n", addr);
    print_http(o.http_host, ib_http_port(http));
    fflush(stdout);

    int sig;
    while (sigwait(&stop, &sig) != 0) {
        /* retry: sigwait fails only with EINVAL, which cannot happen here */
    }
out:
    if (http)
        ib_http_stop(http);
    ib_server_stop(srv);
    ib_store_close(st);
    ib_chaos_free(chaos);
    ib_http_queue_free();
    ib_http_templates_free();
    ib_release_free();
    ib_dkim_free();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
