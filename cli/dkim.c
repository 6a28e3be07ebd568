/* scalr-email dkim keygen | verify: make a signing key and its DNS record;
 * check a saved message's signatures offline. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <getopt.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

#define MSG_MAX (64u * 1024 * 1024) /* a message larger than this is not read */
#define RECORDS_MAX 64

static const char dkim_usage[] =
    "usage: scalr-email dkim keygen --domain D --selector S [--type rsa|ed25519] [--out PATH]\n"
    "       scalr-email dkim verify FILE.eml (--key-record RECORD | --key-file PATH... | --dns)\n"
    "\n"
    "keygen writes a new private key (PEM PKCS#8, mode 0600; default PATH S.D.key,\n"
    "never overwritten) and prints the TXT record to publish at S._domainkey.D.\n"
    "verify checks every DKIM-Signature of a saved message against the key records\n"
    "given: RECORD is 'v=DKIM1; k=...; p=...' (used for any selector) or\n"
    "'S._domainkey.D TXT \"v=DKIM1; ...\"' as in a zone file; --key-file reads such\n"
    "lines from a file.  Prints one line per signature; exit 0 when all verify,\n"
    "65 when one does not, 66 when the message has no signature or cannot be read.\n"
    "--dns asks the resolver for S._domainkey.D TXT instead (SCALR_EMAIL_DNS=IP:PORT\n"
    "picks the server; default /etc/resolv.conf).\n";

typedef struct rec {
    char *name; /* NULL: any */
    char *value;
} rec;

typedef struct records {
    rec r[RECORDS_MAX];
    size_t n;
} records;

/* A line: a bare record, or NAME [TTL] [IN] TXT "quoted" "strings". */
static int add_record(records *rs, const char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    if (!*line || *line == '#' || *line == ';')
        return 0;
    if (rs->n >= RECORDS_MAX)
        return -1;
    const char *txt = strstr(line, " TXT ");
    if (!txt)
        txt = strstr(line, "\tTXT\t");
    rec *r = &rs->r[rs->n];
    if (!txt) {
        r->name = NULL;
        r->value = strdup(line);
    } else {
        size_t nl = strcspn(line, " \t");
        r->name = strndup(line, nl && line[nl - 1] == '.' ? nl - 1 : nl);
        const char *v = txt + 5;
        size_t cap = strlen(v) + 1, m = 0;
        r->value = malloc(cap);
        if (r->value) {
            int quoted = strchr(v, '"') != NULL, in = 0;
            for (; *v; v++) {
                if (quoted && *v == '"') {
                    in = !in;
                    continue;
                }
                if (quoted && !in)
                    continue; /* between strings: they join */
                r->value[m++] = *v;
            }
            r->value[m] = 0;
        }
    }
    if (!r->value)
        return -1;
    size_t l = strlen(r->value);
    while (l && (r->value[l - 1] == '\n' || r->value[l - 1] == '\r'))
        r->value[--l] = 0;
    rs->n++;
    return 0;
}

static char *lookup(void *arg, const char *name)
{
    const records *rs = arg;
    for (size_t i = 0; i < rs->n; i++)
        if (rs->r[i].name && !strcasecmp(rs->r[i].name, name))
            return strdup(rs->r[i].value);
    for (size_t i = 0; i < rs->n; i++)
        if (!rs->r[i].name)
            return strdup(rs->r[i].value);
    return NULL;
}

/* --dns: the TXT record from the resolver (SCALR_EMAIL_DNS=IP:PORT picks
 * one, else /etc/resolv.conf); bounded: 3 s a try, 2 tries. */
static char *dns_lookup(void *arg, const char *name)
{
    (void)arg;
    unsigned char ans[8192];
    int n = res_query(name, ns_c_in, ns_t_txt, ans, sizeof ans);
    if (n < 0)
        return NULL;
    ns_msg h;
    if (ns_initparse(ans, n, &h) < 0)
        return NULL;
    for (int i = 0; i < ns_msg_count(h, ns_s_an); i++) {
        ns_rr rr;
        if (ns_parserr(&h, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_txt)
            continue;
        /* RFC 6376 3.6.2.2: the character-strings of one record join. */
        const unsigned char *p = ns_rr_rdata(rr), *end = p + ns_rr_rdlen(rr);
        char *out = malloc((size_t)ns_rr_rdlen(rr) + 1);
        if (!out)
            return NULL;
        size_t m = 0;
        while (p < end) {
            size_t l = *p++;
            if (l > (size_t)(end - p))
                l = (size_t)(end - p);
            memcpy(out + m, p, l);
            m += l;
            p += l;
        }
        out[m] = 0;
        return out;
    }
    return NULL;
}

static int dns_setup(void)
{
    if (res_init() != 0)
        return -1;
    _res.retrans = 3;
    _res.retry = 2;
    const char *srv = getenv("SCALR_EMAIL_DNS");
    if (srv && *srv) {
        char host[64];
        const char *colon = strrchr(srv, ':');
        size_t hl = colon ? (size_t)(colon - srv) : strlen(srv);
        long port = colon ? strtol(colon + 1, NULL, 10) : 53;
        if (hl >= sizeof host || port <= 0 || port > 65535)
            return -1;
        memcpy(host, srv, hl);
        host[hl] = 0;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
            return -1;
        _res.nsaddr_list[0] = sa;
        _res.nscount = 1;
    }
    return 0;
}

static int keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"domain", required_argument, NULL, 'd'}, {"selector", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'},   {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *domain = NULL, *selector = NULL, *type = "rsa", *out = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': domain = optarg; break;
        case 's': selector = optarg; break;
        case 't': type = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(dkim_usage, stdout); return EX_OK;
        default: return cli_usage_error("dkim keygen: bad option");
        }
    }
    if (!domain || !selector)
        return cli_usage_error("dkim keygen needs --domain and --selector");
    if (strcmp(type, "rsa") && strcmp(type, "ed25519"))
        return cli_usage_error("dkim keygen: --type is rsa or ed25519, not '%s'", type);
    char path[1024];
    if (!out) {
        snprintf(path, sizeof path, "%s.%s.key", selector, domain);
        out = path;
    }
    char *record = NULL;
    scalr_email_error err;
    if (scalr_email_dkim_keygen(out, domain, selector, !strcmp(type, "ed25519"), &record, &err) !=
        SCALR_EMAIL_OK)
        return cli_report(&err);
    fprintf(stderr, "scalr-email: wrote the private key to %s (mode 0600); publish:\n", out);
    /* A TXT string holds at most 255 octets (RFC 1035 3.3.14): split it. */
    printf("%s._domainkey.%s. TXT", selector, domain);
    for (size_t i = 0, n = strlen(record); i < n; i += 250)
        printf(" \"%.250s\"", record + i);
    putchar('\n');
    free(record);
    return EX_OK;
}

static int verify(int argc, char **argv)
{
    static const struct option opts[] = {{"key-record", required_argument, NULL, 'r'},
                                         {"key-file", required_argument, NULL, 'f'},
                                         {"dns", no_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    records rs = {0};
    int o, rc = EX_OK, use_dns = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') {
            fputs(dkim_usage, stdout);
            goto out;
        }
        if (o == 'n') {
            if (dns_setup() < 0) {
                rc = cli_usage_error("dkim verify --dns: SCALR_EMAIL_DNS must be IPv4:PORT");
                goto out;
            }
            use_dns = 1;
            continue;
        }
        if (o == 'r' && add_record(&rs, optarg) < 0) {
            rc = cli_usage_error("dkim verify: too many key records");
            goto out;
        }
        if (o == 'f') {
            FILE *f = fopen(optarg, "r");
            if (!f) {
                fprintf(stderr, "scalr-email: cannot read key file '%s'\n", optarg);
                rc = EX_NOINPUT;
                goto out;
            }
            char line[8192];
            while (fgets(line, sizeof line, f))
                if (add_record(&rs, line) < 0) {
                    fclose(f);
                    rc = cli_usage_error("dkim verify: too many key records");
                    goto out;
                }
            fclose(f);
        }
        if (o != 'r' && o != 'f') {
            rc = cli_usage_error("dkim verify: bad option");
            goto out;
        }
    }
    if (optind + 1 != argc) {
        rc = cli_usage_error("dkim verify needs one message file");
        goto out;
    }
    if (!rs.n && !use_dns) {
        rc = cli_usage_error("dkim verify needs --key-record, --key-file or --dns");
        goto out;
    }
    FILE *f = fopen(argv[optind], "rb");
    if (!f) {
        fprintf(stderr, "scalr-email: cannot read '%s'\n", argv[optind]);
        rc = EX_NOINPUT;
        goto out;
    }
    char *msg = malloc(MSG_MAX + 1);
    size_t len = msg ? fread(msg, 1, MSG_MAX + 1, f) : 0;
    fclose(f);
    if (!msg || len > MSG_MAX) {
        fprintf(stderr, "scalr-email: '%s' is larger than %u bytes\n", argv[optind], MSG_MAX);
        free(msg);
        rc = EX_NOINPUT;
        goto out;
    }
    scalr_email_dkim_result res[8];
    int n = scalr_email_dkim_verify(msg, len, use_dns ? dns_lookup : lookup, &rs, res, 8);
    free(msg);
    if (n < 0) {
        fprintf(stderr, "scalr-email: out of memory\n");
        rc = EX_OSERR;
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "scalr-email: '%s' has no DKIM-Signature\n", argv[optind]);
        rc = EX_NOINPUT;
        goto out;
    }
    for (int i = 0; i < n && i < 8; i++) {
        printf("%s d=%s s=%s a=%s%s%s\n", res[i].ok ? "pass" : "fail", res[i].domain,
               res[i].selector, res[i].alg, res[i].ok ? "" : ": ", res[i].why);
        if (!res[i].ok)
            rc = EX_DATAERR;
    }
out:
    for (size_t i = 0; i < rs.n; i++) {
        free(rs.r[i].name);
        free(rs.r[i].value);
    }
    return rc;
}

int cli_dkim(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("dkim needs a command: keygen or verify");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(dkim_usage, stdout);
        return EX_OK;
    }
    if (!strcmp(argv[1], "keygen"))
        return keygen(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify"))
        return verify(argc - 1, argv + 1);
    return cli_usage_error("dkim: unknown command '%s' (keygen or verify)", argv[1]);
}
