/* The dev inbox's DKIM check (dkimcheck.h): the --dkim-record key records,
 * and per message each signature's verdict (scalr_email_dkim_verify) with
 * the weaknesses a receiver would not report but a developer wants to see:
 * important header fields the signature does not cover, and a From that is
 * not oversigned. */
#include "dkimcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mimeparse.h"
#include "scalr_email.h"

#define MAX_RECORDS 256
#define LINE_MAX_LEN 8192
#define MAX_SIGS 8
#define MAX_FIELDS 512
/* Bumped when the verdict's rules or shape change: stored verdicts made by
 * an older build are then made again. */
#define RULES_VERSION 1

typedef struct record {
    char *name, *value;
} record;

static record records[MAX_RECORDS];
static size_t n_records;
static int configured;

/* "S._domainkey.D[.] [TTL] [IN] TXT "v=DKIM1; ..." "...",": quoted strings
 * join (RFC 1035 3.3.14); "S._domainkey.D v=DKIM1; ..." is accepted too. */
static int parse_line(char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    size_t l = strlen(line);
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' '))
        line[--l] = 0;
    if (!*line || *line == '#' || *line == ';')
        return 0;
    if (n_records == MAX_RECORDS)
        return -1;
    size_t nl = strcspn(line, " \t");
    if (!line[nl])
        return -1;
    char *rest = line + nl;
    char *txt = strstr(rest, " TXT ");
    if (!txt)
        txt = strstr(rest, "\tTXT\t");
    const char *v = txt ? txt + 5 : rest;
    char *value = malloc(strlen(v) + 1);
    if (!value)
        return -1;
    size_t m = 0;
    int quoted = strchr(v, '"') != NULL, in = 0;
    for (; *v; v++) {
        if (quoted && *v == '"') {
            in = !in;
            continue;
        }
        if (quoted && !in)
            continue;
        if (!quoted && m == 0 && (*v == ' ' || *v == '\t'))
            continue;
        value[m++] = *v;
    }
    value[m] = 0;
    if (nl && line[nl - 1] == '.')
        nl--;
    records[n_records].name = strndup(line, nl);
    records[n_records].value = value;
    if (!records[n_records].name) {
        free(value);
        return -1;
    }
    n_records++;
    return 0;
}

int ib_dkim_records(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "cannot read --dkim-record file %s", path);
        return -1;
    }
    char line[LINE_MAX_LEN];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (parse_line(line) < 0) {
            fclose(f);
            snprintf(why, whylen, "%s:%d: not 'NAME TXT \"v=DKIM1; ...\"' (or too many records)",
                     path, lineno);
            return -1;
        }
    }
    fclose(f);
    configured = 1;
    return 0;
}

int ib_dkim_configured(void)
{
    return configured;
}

void ib_dkim_free(void)
{
    for (size_t i = 0; i < n_records; i++) {
        free(records[i].name);
        free(records[i].value);
    }
    n_records = 0;
    configured = 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *u = p;
    for (size_t i = 0; i < n; i++) {
        h ^= u[i];
        h *= 1099511628211ull;
    }
    return h;
}

int64_t ib_dkim_generation(void)
{
    uint64_t h = 14695981039346656037ull;
    int v = RULES_VERSION;
    h = fnv(h, &v, sizeof v);
    for (size_t i = 0; i < n_records; i++) {
        h = fnv(h, records[i].name, strlen(records[i].name) + 1);
        h = fnv(h, records[i].value, strlen(records[i].value) + 1);
    }
    int64_t g = (int64_t)(h >> 1); /* positive: SQLite's INTEGER, and never 0 */
    return g ? g : 1;
}

static char *lookup(void *arg, const char *name)
{
    (void)arg;
    for (size_t i = 0; i < n_records; i++)
        if (!strcasecmp(records[i].name, name))
            return strdup(records[i].value);
    return NULL;
}

/* ---- the header fields the signatures cover ---------------------------- */

typedef struct hfield {
    const char *name, *value; /* value: up to the end of the field, folded */
    size_t name_len, value_len;
} hfield;

/* The fields of the header block, in order (LF or CRLF line ends). */
static size_t header_fields(const char *p, size_t n, hfield *f, size_t max)
{
    size_t nf = 0, i = 0;
    while (i < n) {
        if (p[i] == '\n' || (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n'))
            break; /* the empty line */
        size_t start = i;
        for (;;) {
            const char *nl = memchr(p + i, '\n', n - i);
            i = nl ? (size_t)(nl - p) + 1 : n;
            if (i >= n || (p[i] != ' ' && p[i] != '\t'))
                break;
        }
        size_t end = i;
        while (end > start && (p[end - 1] == '\n' || p[end - 1] == '\r'))
            end--;
        const char *colon = memchr(p + start, ':', end - start);
        if (!colon || nf == max)
            continue;
        size_t nl = (size_t)(colon - (p + start));
        while (nl && (p[start + nl - 1] == ' ' || p[start + nl - 1] == '\t'))
            nl--;
        f[nf++] = (hfield){p + start, colon + 1, nl, (size_t)(p + end - (colon + 1))};
    }
    return nf;
}

static int name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && !strncasecmp(p, name, n);
}

/* The h= of a DKIM-Signature value, whitespace (folding) removed; malloc'd
 * "" when absent. */
static char *h_tag(const char *v, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t m = 0;
    size_t i = 0;
    while (i < n) {
        size_t ts = i;
        while (i < n && v[i] != ';')
            i++;
        size_t te = i++;
        size_t a = ts;
        while (a < te && strchr(" \t\r\n", v[a]))
            a++;
        if (te - a >= 1 && v[a] == 'h') { /* tag names are case-sensitive (RFC 6376 3.2) */
            size_t b = a + 1;
            while (b < te && strchr(" \t\r\n", v[b]))
                b++;
            if (b < te && v[b] == '=') {
                m = 0;
                for (b++; b < te; b++)
                    if (!strchr(" \t\r\n", v[b]))
                        out[m++] = v[b];
            }
        }
    }
    out[m] = 0;
    return out;
}

static int count_in_list(const char *list, const char *name)
{
    int k = 0;
    size_t nl = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        k += n == nl && !strncasecmp(p, name, n);
        p += n + (e ? 1 : 0);
    }
    return k;
}

/* Fields a relay or an attacker could change or add unnoticed when the
 * signature leaves them out (the signer's list, issue 12). */
static const char *const WATCH[] = {
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
};

static json_t *warnings(const hfield *f, size_t nf, const char *h)
{
    json_t *w = json_array();
    if (!w)
        return NULL;
    char line[200];
    for (size_t k = 0; k < sizeof WATCH / sizeof *WATCH; k++) {
        int present = 0;
        for (size_t i = 0; i < nf; i++)
            present += name_is(f[i].name, f[i].name_len, WATCH[k]);
        int signed_n = count_in_list(h, WATCH[k]);
        if (present && !signed_n) {
            snprintf(line, sizeof line, "%s is not signed: it could be changed after signing",
                     WATCH[k]);
            json_array_append_new(w, json_string(line));
        } else if (!strcmp(WATCH[k], "From") && present && signed_n <= present) {
            /* RFC 6376 8.15: only h= naming From once more than it occurs
             * stops a second From from being prepended. */
            json_array_append_new(w, json_string("From is not oversigned: a second From could be "
                                                 "added above it and the signature would still "
                                                 "verify"));
        }
    }
    return w;
}

/* ---- the verdict ------------------------------------------------------------ */

static size_t header_len(const char *raw, size_t len)
{
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(raw + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - raw) : len;
        if (end == i || (end == i + 1 && raw[i] == '\r'))
            return i;
        i = nl ? end + 1 : len;
    }
    return len;
}

/* Does "dkim-signature" occur anywhere (ASCII case-insensitive)?  When it
 * does not, the verifier cannot find a signature: unsigned mail (most of it)
 * skips the verifier's copy of the message. */
static int mentions_dkim(const char *p, size_t n)
{
    static const char word[] = "dkim-signature";
    const size_t wl = sizeof word - 1;
    for (size_t i = 0; i + wl <= n; i++)
        if ((p[i] | 0x20) == 'd' && !strncasecmp(p + i, word, wl))
            return 1;
    return 0;
}

/* A JSON string from bytes the message chose: invalid UTF-8 becomes U+FFFD
 * (jansson refuses it, and the signature would be lost). */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    size_t m = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = ib_utf8_seq((const unsigned char *)s + i, n - i);
        if (k) {
            memcpy(out + m, s + i, k);
            m += k;
        } else {
            memcpy(out + m, "\xef\xbf\xbd", 3);
            m += 3;
        }
    }
    out[m] = 0;
    j = json_string(out);
    free(out);
    return j;
}

json_t *ib_dkim_check(const char *raw, size_t len)
{
    json_t *sigs = json_array();
    if (!sigs)
        return NULL;
    const char *status = "none";
    if (mentions_dkim(raw, len)) {
        scalr_email_dkim_result res[MAX_SIGS];
        int n = scalr_email_dkim_verify(raw, len, lookup, NULL, res, MAX_SIGS);
        hfield *f = calloc(MAX_FIELDS, sizeof *f);
        if (n < 0 || !f) {
            free(f);
            json_decref(sigs);
            return NULL;
        }
        /* Our reading of the fields gives each signature its h=; should it
         * ever count the signatures otherwise than the verifier, no warnings
         * rather than another signature's. */
        size_t nf = header_fields(raw, header_len(raw, len), f, MAX_FIELDS), nsig = 0;
        for (size_t i = 0; i < nf; i++)
            nsig += name_is(f[i].name, f[i].name_len, "DKIM-Signature");
        int aligned = nsig == (size_t)n;
        int failed = 0, nokey = 0;
        size_t i = 0;
        for (size_t k = 0; k < (size_t)n && k < MAX_SIGS; k++) {
            const scalr_email_dkim_result *r = &res[k];
            json_t *warn = NULL;
            if (aligned) {
                while (!name_is(f[i].name, f[i].name_len, "DKIM-Signature"))
                    i++;
                char *h = h_tag(f[i].value, f[i].value_len);
                warn = h ? warnings(f, nf, h) : NULL;
                free(h);
                i++;
            }
            int missing = !r->ok && !strncmp(r->why, "no key record", 13);
            failed += !r->ok && !missing;
            nokey += missing;
            json_t *o = json_pack("{s:o*,s:o*,s:o*,s:b,s:o*,s:o*}", "domain", jstr(r->domain),
                                  "selector", jstr(r->selector), "algorithm", jstr(r->alg), "ok",
                                  r->ok, "why", r->ok ? json_null() : jstr(r->why), "warnings",
                                  warn ? warn : json_array());
            if (!o || json_array_append_new(sigs, o) < 0) {
                free(f);
                json_decref(sigs);
                return NULL;
            }
        }
        free(f);
        status = failed ? "fail" : nokey ? "nokey" : n ? "pass" : "none";
    }
    return json_pack("{s:s,s:o}", "status", status, "signatures", sigs);
}
char *ib_dkim_check_text(const char *raw, size_t len)
{
    json_t *j = ib_dkim_check(raw, len);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}
