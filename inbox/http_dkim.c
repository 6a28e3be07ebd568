/* GET /api/scalr/messages/{id}/dkim: does each DKIM signature verify
 * against the key records given with --dkim-record (lines as in DNS), and
 * if not, why.  A developer sees a broken signature before production. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "scalr_email.h"

#define MAX_RECORDS 256
#define LINE_MAX_LEN 8192

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

int ib_http_dkim_records(const char *path, char *why, size_t whylen)
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

void ib_http_dkim_free(void)
{
    for (size_t i = 0; i < n_records; i++) {
        free(records[i].name);
        free(records[i].value);
    }
    n_records = 0;
}

static char *lookup(void *arg, const char *name)
{
    (void)arg;
    for (size_t i = 0; i < n_records; i++)
        if (!strcasecmp(records[i].name, name))
            return strdup(records[i].value);
    return NULL;
}

enum MHD_Result ib_http_scalr_dkim(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    scalr_email_dkim_result res[8];
    int n = scalr_email_dkim_verify(l.raw, l.len, lookup, NULL, res, 8);
    ib_http_unload(&l);
    if (n < 0)
        return ib_http_send_error(c, 500, "out of memory");
    json_t *sigs = json_array();
    for (int i = 0; i < n && i < 8; i++)
        json_array_append_new(sigs, json_pack("{s:s,s:s,s:s,s:b,s:s?}", "domain", res[i].domain,
                                              "selector", res[i].selector, "algorithm",
                                              res[i].alg, "ok", res[i].ok, "why",
                                              res[i].ok ? NULL : res[i].why));
    return ib_http_send_json(c, 200,
                             json_pack("{s:I,s:b,s:o}", "id", (json_int_t)id, "records",
                                       configured, "signatures", sigs));
}
