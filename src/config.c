/* Configuration from SMTP_* environment variables and dotenv files.
 *
 * The environment is only read (getenv), never changed: a dotenv file is
 * parsed into a private list and consulted after the environment. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "util/buf.h"

#define SE_DEFAULT_TIMEOUT_MS 30000u
#define SE_MAX_TIMEOUT_S 3600u
#define SE_MAX_ENV_FILE (4u << 20)

/* Clear memory that may have held a password; volatile so the stores are
 * not dropped as dead before free(). */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *q = p;
    while (n--)
        *q++ = 0;
}

/* --- dotenv ------------------------------------------------------------- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static int is_key_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_key_char(char c)
{
    return is_key_start(c) || (c >= '0' && c <= '9');
}

/* Parse one line (without its line end) into out: "KEY\0VALUE\0".  Returns
 * NULL and sets *key (NULL for a blank or comment line), or a reason. */
static const char *parse_line(const char *s, size_t n, char *out, const char **key,
                              const char **value)
{
    size_t i = 0;
    *key = *value = NULL;
    if (memchr(s, '\0', n))
        return "NUL byte in line";
    while (i < n && is_ws(s[i]))
        i++;
    if (i == n || s[i] == '#')
        return NULL;
    if (n - i > 6 && memcmp(s + i, "export", 6) == 0 && is_ws(s[i + 6])) {
        i += 6;
        while (i < n && is_ws(s[i]))
            i++;
    }
    const char *eq = memchr(s + i, '=', n - i);
    if (!eq)
        return "missing '=' (expected KEY=value)";
    size_t ke = (size_t)(eq - s);
    while (ke > i && is_ws(s[ke - 1]))
        ke--;
    if (ke == i || !is_key_start(s[i]))
        return "invalid variable name";
    for (size_t k = i; k < ke; k++)
        if (!is_key_char(s[k]))
            return "invalid variable name";
    memcpy(out, s + i, ke - i);
    out[ke - i] = '\0';
    char *v = out + (ke - i) + 1;
    size_t vn = 0;

    i = (size_t)(eq - s) + 1;
    size_t ws_from = i;
    while (i < n && is_ws(s[i]))
        i++;
    if (i < n && (s[i] == '\'' || s[i] == '"')) {
        if (s[i] == '\'') {
            /* 'single quotes': literal, no escapes */
            const char *q = memchr(s + i + 1, '\'', n - i - 1);
            if (!q)
                return "unterminated single quote";
            vn = (size_t)(q - (s + i + 1));
            memcpy(v, s + i + 1, vn);
            i = (size_t)(q - s) + 1;
        } else {
            /* "double quotes": \n \t \" \\; any other escape stays as written */
            i++;
            for (;;) {
                if (i >= n)
                    return "unterminated double quote";
                char ch = s[i++];
                if (ch == '"')
                    break;
                if (ch != '\\') {
                    v[vn++] = ch;
                    continue;
                }
                if (i >= n)
                    return "unterminated double quote";
                char e = s[i++];
                switch (e) {
                case 'n': v[vn++] = '\n'; break;
                case 't': v[vn++] = '\t'; break;
                case '"': v[vn++] = '"'; break;
                case '\\': v[vn++] = '\\'; break;
                default: v[vn++] = '\\'; v[vn++] = e;
                }
            }
        }
        while (i < n && is_ws(s[i]))
            i++;
        if (i < n && s[i] != '#')
            return "unexpected text after the closing quote";
    } else {
        /* Unquoted: up to the end of the line or a " #" comment. */
        size_t end = n;
        if (i < n && s[i] == '#' && i > ws_from) {
            end = i;
        } else {
            for (size_t j = i + 1; j < n; j++)
                if (s[j] == '#' && is_ws(s[j - 1])) {
                    end = j;
                    break;
                }
        }
        while (end > i && is_ws(s[end - 1]))
            end--;
        vn = end > i ? end - i : 0;
        memcpy(v, s + i, vn);
    }
    v[vn] = '\0';
    *key = out;
    *value = v;
    return NULL;
}

int se_dotenv_parse(const char *text, size_t len, se_dotenv_fn fn, void *arg, char *why,
                    size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    size_t pos = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3; /* UTF-8 byte order mark */
    /* A line's key and value together never outgrow the line. */
    char *scratch = malloc(len + 2);
    if (!scratch)
        return -1;
    int lineno = 0, rc = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n && line[n - 1] == '\r')
            n--;
        const char *key, *value;
        const char *reason = parse_line(line, n, scratch, &key, &value);
        if (reason) {
            if (why && whylen)
                snprintf(why, whylen, "%s", reason);
            rc = lineno;
            break;
        }
        if (key && fn(arg, key, value) != 0) {
            rc = -1;
            break;
        }
    }
    wipe(scratch, len + 2);
    free(scratch);
    return rc;
}

/* --- the file's variables --------------------------------------------------- */

typedef struct env_list {
    char **kv; /* key, value, key, value, ... */
    size_t n, cap;
} env_list;

static int env_list_add(void *arg, const char *key, const char *value)
{
    env_list *l = arg;
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **p = realloc(l->kv, cap * sizeof *p);
        if (!p)
            return -1;
        l->kv = p;
        l->cap = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    l->kv[l->n++] = k;
    l->kv[l->n++] = v;
    return 0;
}

static void env_list_free(env_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        wipe(l->kv[i], strlen(l->kv[i]));
        free(l->kv[i]);
    }
    free(l->kv);
    memset(l, 0, sizeof *l);
}

static scalr_email_code env_list_load(env_list *l, const char *path, scalr_email_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "cannot read env file %s: %s", path,
                       strerror(errno));
    se_buf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + got > SE_MAX_ENV_FILE) {
            fclose(f);
            se_buf_free(&b);
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                           "cannot read env file %s: larger than 4 MiB", path);
        }
        se_buf_append(&b, chunk, got);
    }
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (read_errno) {
        se_buf_free(&b);
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "cannot read env file %s: %s", path,
                       strerror(read_errno));
    }
    if (b.oom)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory reading %s", path);

    char why[128];
    int line = se_dotenv_parse(b.data, b.len, env_list_add, l, why, sizeof why);
    if (b.data)
        wipe(b.data, b.len);
    se_buf_free(&b);
    if (line < 0)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory reading %s", path);
    if (line > 0)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s:%d: %s", path, line, why);
    return SCALR_EMAIL_OK;
}

/* The environment first, then the file (its last assignment); an empty
 * value counts as unset, since compose files forward "${X:-}". */
static const char *lookup(const env_list *l, const char *name)
{
    const char *v = getenv(name);
    if (v && *v)
        return v;
    for (size_t i = l->n; i >= 2; i -= 2)
        if (strcmp(l->kv[i - 2], name) == 0)
            return *l->kv[i - 1] ? l->kv[i - 1] : NULL;
    return NULL;
}

/* --- values ------------------------------------------------------------------ */

/* Booleans, ports and timeouts tolerate surrounding blanks: copy the value
 * without them into out.  0, or -1 when it does not fit. */
static int trimmed(const char *v, char *out, size_t outlen)
{
    while (is_ws(*v))
        v++;
    size_t n = strlen(v);
    while (n && is_ws(v[n - 1]))
        n--;
    if (n >= outlen)
        return -1;
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

/* 1 true, 0 false, -1 neither. */
static int parse_bool(const char *v)
{
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    char t[8];
    if (trimmed(v, t, sizeof t) < 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(t, yes[i]) == 0)
            return 1;
        if (strcasecmp(t, no[i]) == 0)
            return 0;
    }
    return -1;
}

static int parse_port(const char *v, unsigned *port)
{
    char t[8];
    if (trimmed(v, t, sizeof t) < 0 || !t[0])
        return -1;
    unsigned p = 0;
    for (const char *s = t; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        p = p * 10 + (unsigned)(*s - '0');
    }
    if (p < 1 || p > 65535)
        return -1;
    *port = p;
    return 0;
}

/* Seconds, fractions allowed ("0.5"), in (0, 3600]; milliseconds out. */
static int parse_timeout(const char *v, unsigned *ms)
{
    char t[32];
    if (trimmed(v, t, sizeof t) < 0)
        return -1;
    const char *s = t;
    unsigned secs = 0, frac = 0, scale = 100;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        secs = secs * 10 + (unsigned)(*s - '0');
        if (secs > SE_MAX_TIMEOUT_S)
            return -1;
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, digits++) {
            frac += (unsigned)(*s - '0') * scale; /* beyond milliseconds: dropped */
            scale /= 10;
        }
    }
    if (*s || !digits)
        return -1;
    unsigned total = secs * 1000 + frac;
    if (total == 0 || total > SE_MAX_TIMEOUT_S * 1000)
        return -1;
    *ms = total;
    return 0;
}

/* RFC 5321 4.1.2: Domain (LDH labels) or an address literal (4.1.3). */
static int valid_helo(const char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '[' && v[n - 1] == ']') {
        char inner[64];
        unsigned char a[sizeof(struct in6_addr)];
        if (n - 2 >= sizeof inner)
            return 0;
        memcpy(inner, v + 1, n - 2);
        inner[n - 2] = '\0';
        if (strncasecmp(inner, "IPv6:", 5) == 0)
            return inet_pton(AF_INET6, inner + 5, a) == 1;
        return inet_pton(AF_INET, inner, a) == 1;
    }
    if (n == 0 || n > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = v[i];
        if (c == '.' || c == '\0') {
            /* 1..63 octets, no hyphen at either end (RFC 1035 2.3.1) */
            if (label == 0 || label > 63 || v[i - 1] == '-' || v[i - label] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            label++;
        } else {
            return 0;
        }
    }
    return 1;
}

static int has_line_break(const char *v)
{
    return strpbrk(v, "\r\n") != NULL; /* NUL cannot occur in a C string */
}

static scalr_email_code dup_opt(char **dst, const char *v)
{
    if (!v)
        return SCALR_EMAIL_OK;
    *dst = strdup(v);
    return *dst ? SCALR_EMAIL_OK : SCALR_EMAIL_ENOMEM;
}

enum {
    V_HOST,
    V_PORT,
    V_USERNAME,
    V_PASSWORD,
    V_FROM,
    V_USE_TLS,
    V_USE_SSL,
    V_TIMEOUT,
    V_HELO,
    V_RETURN_PATH,
    V_PROXY,
    V_AUTH,
    V_O_TOKEN,
    V_O_CMD,
    V_O_URL,
    V_O_ID,
    V_O_SECRET,
    V_O_REFRESH,
    V_O_REFRESH_FILE,
    V_O_SCOPE,
    V_COUNT
};

static const char *const var_names[V_COUNT] = {
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_FROM",
    "SMTP_USE_TLS",
    "SMTP_USE_SSL",
    "SMTP_TIMEOUT",
    "SMTP_HELO_NAME",
    "SMTP_RETURN_PATH",
    "SMTP_PROXY",
    "SMTP_AUTH",
    "SMTP_OAUTH_TOKEN",
    "SMTP_OAUTH_TOKEN_CMD",
    "SMTP_OAUTH_TOKEN_URL",
    "SMTP_OAUTH_CLIENT_ID",
    "SMTP_OAUTH_CLIENT_SECRET",
    "SMTP_OAUTH_REFRESH_TOKEN",
    "SMTP_OAUTH_REFRESH_TOKEN_FILE",
    "SMTP_OAUTH_SCOPE",
};

/* The sign-in settings (a password or an OAuth2 token source), checked
 * and kept in out the same way from the environment and from
 * scalr_email_config: a[] holds the values (NULL: unset), names[] what the
 * messages call them. */
scalr_email_code se_check_auth(se_settings *out, const char *const a[SE_A_COUNT],
                               const char *const names[SE_A_COUNT], scalr_email_error *err)
{
    /* auto (default), plain, login, xoauth2, oauthbearer: se_smtp_mech. */
    static const char *const mechs[] = {"auto", "plain", "login", "xoauth2", "oauthbearer"};
    out->auth = 0;
    if (a[SE_A_MECH]) {
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (strcasecmp(a[SE_A_MECH], mechs[i]) == 0)
                found = i;
        if (found < 0)
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                           "%s must be auto, plain, login, xoauth2 or oauthbearer, got '%s'",
                           names[SE_A_MECH], a[SE_A_MECH]);
        out->auth = found;
    }
    /* The first token source set wins: token, command, refresh grant. */
    int oauth = a[SE_A_TOKEN] || a[SE_A_CMD] || a[SE_A_URL];
    int oauth_mech = out->auth == 3 || out->auth == 4;
    if (oauth_mech && !oauth)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "%s=%s needs an access token: set %s, %s or %s", names[SE_A_MECH],
                       a[SE_A_MECH], names[SE_A_TOKEN], names[SE_A_CMD], names[SE_A_URL]);
    if (oauth && (out->auth == 1 || out->auth == 2))
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "%s=%s takes a password, but an OAuth2 token source (%s) is set",
                       names[SE_A_MECH], a[SE_A_MECH],
                       names[a[SE_A_TOKEN] ? SE_A_TOKEN
                             : a[SE_A_CMD] ? SE_A_CMD
                                           : SE_A_URL]);
    if (oauth && !a[SE_A_USER])
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "OAuth2 sign-in needs %s (the mailbox the token is for)", names[SE_A_USER]);
    if (oauth && !a[SE_A_TOKEN] && !a[SE_A_CMD]) {
        if (!a[SE_A_ID])
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s is set but %s is empty",
                           names[SE_A_URL], names[SE_A_ID]);
        if (!a[SE_A_REFRESH] && !a[SE_A_REFRESH_FILE])
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s is set but neither %s nor %s is",
                           names[SE_A_URL], names[SE_A_REFRESH], names[SE_A_REFRESH_FILE]);
        if (strncmp(a[SE_A_URL], "https://", 8) != 0)
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s must be an https:// URL",
                           names[SE_A_URL]);
    }
    /* Say so now rather than let the server answer 535. */
    if (a[SE_A_USER] && !a[SE_A_PASS] && !oauth)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s is set but %s is empty",
                       names[SE_A_USER], names[SE_A_PASS]);
    if (a[SE_A_PASS] && !a[SE_A_USER])
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s is set but %s is empty",
                       names[SE_A_PASS], names[SE_A_USER]);

    const char *o_tok = a[SE_A_TOKEN], *o_cmd = o_tok ? NULL : a[SE_A_CMD];
    const char *o_url = o_tok || o_cmd ? NULL : a[SE_A_URL];
    if (dup_opt(&out->oauth_token, o_tok) || dup_opt(&out->oauth_token_cmd, o_cmd) ||
        dup_opt(&out->oauth_token_url, o_url) ||
        (o_url && (dup_opt(&out->oauth_client_id, a[SE_A_ID]) ||
                   dup_opt(&out->oauth_client_secret, a[SE_A_SECRET]) ||
                   dup_opt(&out->oauth_refresh_token_file, a[SE_A_REFRESH_FILE]) ||
                   (!a[SE_A_REFRESH_FILE] && dup_opt(&out->oauth_refresh_token, a[SE_A_REFRESH])) ||
                   dup_opt(&out->oauth_scope, a[SE_A_SCOPE]))))
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    return SCALR_EMAIL_OK;
}

static scalr_email_code resolve(se_settings *out, const char *const *v, scalr_email_error *err)
{
    if (!v[V_HOST])
        return se_fail(err, SCALR_EMAIL_ENOTCONFIGURED, "CONFIG",
                       "SMTP is not configured: SMTP_HOST is empty");
    /* CR or LF in any value could inject SMTP commands or headers. */
    for (int i = 0; i < V_COUNT; i++)
        if (v[i] && has_line_break(v[i]))
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "%s must not contain CR, LF or NUL",
                           var_names[i]);

    int use_tls = 1, use_ssl = 0;
    if (v[V_USE_TLS] && (use_tls = parse_bool(v[V_USE_TLS])) < 0)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "SMTP_USE_TLS must be true/false/1/0/yes/no, got '%s'", v[V_USE_TLS]);
    if (v[V_USE_SSL] && (use_ssl = parse_bool(v[V_USE_SSL])) < 0)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "SMTP_USE_SSL must be true/false/1/0/yes/no, got '%s'", v[V_USE_SSL]);
    if (use_ssl && v[V_USE_TLS] && use_tls)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "SMTP_USE_TLS=true and SMTP_USE_SSL=true are exclusive: use "
                       "SMTP_USE_SSL=true for implicit TLS (port 465) or SMTP_USE_TLS=true for "
                       "STARTTLS (port 587)");
    out->tls = use_ssl   ? SCALR_EMAIL_TLS_IMPLICIT
               : use_tls ? SCALR_EMAIL_TLS_STARTTLS
                         : SCALR_EMAIL_TLS_NONE;

    /* RFC 8314 3.3: 465 for implicit TLS; RFC 6409: 587 for submission. */
    out->port = out->tls == SCALR_EMAIL_TLS_IMPLICIT ? 465 : 587;
    if (v[V_PORT] && parse_port(v[V_PORT], &out->port) < 0)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "SMTP_PORT must be a number from 1 to 65535, got '%s'", v[V_PORT]);

    out->timeout_ms = SE_DEFAULT_TIMEOUT_MS;
    if (v[V_TIMEOUT] && parse_timeout(v[V_TIMEOUT], &out->timeout_ms) < 0)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "SMTP_TIMEOUT must be a number of seconds above 0 and at most 3600, "
                       "got '%s'",
                       v[V_TIMEOUT]);

    if (v[V_HELO] && !valid_helo(v[V_HELO]))
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "SMTP_HELO_NAME must be a host name (letters, digits, hyphens, dots) or "
                       "an address literal such as [192.0.2.1], got '%s'",
                       v[V_HELO]);

    const char *const av[SE_A_COUNT] = {
        v[V_AUTH], v[V_USERNAME], v[V_PASSWORD],  v[V_O_TOKEN],        v[V_O_CMD],  v[V_O_URL],
        v[V_O_ID], v[V_O_SECRET], v[V_O_REFRESH], v[V_O_REFRESH_FILE], v[V_O_SCOPE]};
    static const char *const an[SE_A_COUNT] = {"SMTP_AUTH",
                                               "SMTP_USERNAME",
                                               "SMTP_PASSWORD",
                                               "SMTP_OAUTH_TOKEN",
                                               "SMTP_OAUTH_TOKEN_CMD",
                                               "SMTP_OAUTH_TOKEN_URL",
                                               "SMTP_OAUTH_CLIENT_ID",
                                               "SMTP_OAUTH_CLIENT_SECRET",
                                               "SMTP_OAUTH_REFRESH_TOKEN",
                                               "SMTP_OAUTH_REFRESH_TOKEN_FILE",
                                               "SMTP_OAUTH_SCOPE"};
    scalr_email_code rc = se_check_auth(out, av, an, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (dup_opt(&out->host, v[V_HOST]) || dup_opt(&out->username, v[V_USERNAME]) ||
        dup_opt(&out->password, v[V_PASSWORD]) || dup_opt(&out->from, v[V_FROM]) ||
        dup_opt(&out->helo_name, v[V_HELO]) || dup_opt(&out->return_path, v[V_RETURN_PATH]) ||
        dup_opt(&out->proxy, v[V_PROXY]))
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    return SCALR_EMAIL_OK;
}

/* A profile's file wins over the environment and env_file (its own last
 * assignment; empty counts as unset). */
static const char *lookup_layered(const env_list *over, const env_list *file, const char *name)
{
    for (size_t i = over->n; i >= 2; i -= 2)
        if (strcmp(over->kv[i - 2], name) == 0 && *over->kv[i - 1])
            return over->kv[i - 1];
    return lookup(file, name);
}

static scalr_email_code load_two(env_list *over, env_list *file, const char *overlay,
                                 const char *env_file, scalr_email_error *err)
{
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (overlay)
        rc = env_list_load(over, overlay, err);
    if (rc == SCALR_EMAIL_OK && env_file)
        rc = env_list_load(file, env_file, err);
    if (rc != SCALR_EMAIL_OK) {
        env_list_free(over);
        env_list_free(file);
    }
    return rc;
}

scalr_email_code se_settings_from_env(se_settings *out, const char *env_file,
                                      scalr_email_error *err)
{
    return se_settings_from_layers(out, NULL, env_file, err);
}

scalr_email_code se_settings_from_layers(se_settings *out, const char *overlay,
                                         const char *env_file, scalr_email_error *err)
{
    memset(out, 0, sizeof *out);
    env_list file = {0}, over = {0};
    scalr_email_code rc = load_two(&over, &file, overlay, env_file, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    const char *v[V_COUNT];
    for (int i = 0; i < V_COUNT; i++)
        v[i] = lookup_layered(&over, &file, var_names[i]);
    rc = resolve(out, v, err);
    env_list_free(&file);
    env_list_free(&over);
    if (rc != SCALR_EMAIL_OK)
        se_settings_free(out);
    return rc;
}

void se_settings_free(se_settings *s)
{
    if (!s)
        return;
    free(s->host);
    if (s->password) /* do not leave the secret in freed memory */
        wipe(s->password, strlen(s->password));
    free(s->username);
    free(s->password);
    free(s->from);
    free(s->helo_name);
    if (s->proxy) /* it may carry a password */
        wipe(s->proxy, strlen(s->proxy));
    free(s->proxy);
    free(s->return_path);
    char *secrets[] = {s->oauth_token, s->oauth_client_secret, s->oauth_refresh_token};
    for (int i = 0; i < 3; i++)
        if (secrets[i])
            wipe(secrets[i], strlen(secrets[i]));
    free(s->oauth_token);
    free(s->oauth_token_cmd);
    free(s->oauth_token_url);
    free(s->oauth_client_id);
    free(s->oauth_client_secret);
    free(s->oauth_refresh_token);
    free(s->oauth_refresh_token_file);
    free(s->oauth_scope);
    memset(s, 0, sizeof *s);
}

scalr_email_code se_config_get_layered(const char *overlay, const char *env_file, const char *name,
                                       char **value, scalr_email_error *err)
{
    if (!overlay)
        return scalr_email_config_get(env_file, name, value, err);
    se_error_clear(err);
    *value = NULL;
    env_list file = {0}, over = {0};
    scalr_email_code rc = load_two(&over, &file, overlay, env_file, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    const char *v = lookup_layered(&over, &file, name);
    if (v && !(*value = strdup(v)))
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    env_list_free(&file);
    env_list_free(&over);
    return rc;
}

scalr_email_code scalr_email_config_get(const char *env_file, const char *name, char **value,
                                        scalr_email_error *err)
{
    se_error_clear(err);
    if (!name || !value)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "config_get: NULL argument");
    *value = NULL;
    env_list l = {0};
    if (env_file) {
        scalr_email_code rc = env_list_load(&l, env_file, err);
        if (rc != SCALR_EMAIL_OK) {
            env_list_free(&l);
            return rc;
        }
    }
    const char *v = lookup(&l, name);
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (v && !(*value = strdup(v)))
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    env_list_free(&l);
    return rc;
}
