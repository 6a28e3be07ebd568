/* The refresh-token grant (RFC 6749 6) over HTTPS with libcurl: full
 * certificate verification against the CAs the SMTP connection trusts
 * (ca_file, else SSL_CERT_FILE / SSL_CERT_DIR, else the system store), a deadline, a cap on
 * the answer.  Errors name the endpoint's error code, never a secret. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "auth/oauth.h"
#include "error.h"

#define ANSWER_MAX 65536

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct answer {
    char buf[ANSWER_MAX + 1];
    size_t len;
    int over;
} answer;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    answer *a = arg;
    size_t total = size * n;
    if (a->len + total > ANSWER_MAX) {
        a->over = 1;
        return 0; /* aborts the transfer */
    }
    memcpy(a->buf + a->len, p, total);
    a->len += total;
    return total;
}

/* key=value&..., values form-encoded (RFC 6749 4.1.3 / appendix B). */
static int add_param(CURL *h, char **body, size_t *len, const char *key, const char *val)
{
    if (!val)
        return 0;
    char *enc = curl_easy_escape(h, val, 0);
    if (!enc)
        return -1;
    size_t need = *len + strlen(key) + strlen(enc) + 3;
    char *nb = malloc(need);
    if (!nb) {
        OPENSSL_cleanse(enc, strlen(enc));
        curl_free(enc);
        return -1;
    }
    int n = snprintf(nb, need, "%s%s%s=%s", *body ? *body : "", *len ? "&" : "", key, enc);
    OPENSSL_cleanse(enc, strlen(enc));
    curl_free(enc);
    if (*body) {
        OPENSSL_cleanse(*body, *len);
        free(*body);
    }
    *body = nb;
    *len = (size_t)n;
    return 0;
}

/* Printable ASCII without blanks: RFC 6750 2.1 b64token and then some.
 * Anything else could break the SASL string. */
static int token_ok(const char *t)
{
    if (!*t || strlen(t) > 8192)
        return 0;
    for (; *t; t++)
        if (*t <= ' ' || *t > '~')
            return 0;
    return 1;
}

static scalr_email_code parse(const answer *a, long status, const char *url, char **tok,
                              long *expires_in, char **new_refresh, scalr_email_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(a->buf, a->len, 0, &je);
    if (status >= 500) {
        json_decref(root);
        return se_fail(err, SCALR_EMAIL_ETRANSIENT, "OAUTH",
                       "token endpoint %s failed with HTTP %ld; try again later", url, status);
    }
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return se_fail(err, SCALR_EMAIL_EPROTOCOL, "OAUTH",
                       "token endpoint %s answered HTTP %ld with no JSON object", url, status);
    }
    scalr_email_code rc = SCALR_EMAIL_OK;
    const char *e = json_string_value(json_object_get(root, "error"));
    const char *at = json_string_value(json_object_get(root, "access_token"));
    if (e || status != 200) {
        /* RFC 6749 5.2: error and error_description are for the user. */
        const char *d = json_string_value(json_object_get(root, "error_description"));
        char desc[256] = "";
        if (d)
            for (size_t i = 0; d[i] && i < sizeof desc - 1; i++)
                desc[i] = (d[i] < ' ' || d[i] > '~') ? '?' : d[i];
        rc = se_fail(err, status >= 400 && status < 500 ? SCALR_EMAIL_EAUTH : SCALR_EMAIL_EPROTOCOL,
                     "OAUTH", "token endpoint %s refused the refresh (HTTP %ld): %s%s%s", url,
                     status, e ? e : "no error code", desc[0] ? ": " : "", desc);
    } else if (!at || !token_ok(at)) {
        rc = se_fail(err, SCALR_EMAIL_EPROTOCOL, "OAUTH",
                     "token endpoint %s answered without a usable access_token", url);
    } else {
        json_t *ex = json_object_get(root, "expires_in");
        *expires_in = json_is_integer(ex)  ? (long)json_integer_value(ex)
                      : json_is_string(ex) ? strtol(json_string_value(ex), NULL, 10)
                                           : 0;
        if (*expires_in < 0)
            *expires_in = 0;
        const char *rt = json_string_value(json_object_get(root, "refresh_token"));
        *tok = strdup(at);
        if (rt && token_ok(rt))
            *new_refresh = strdup(rt);
        if (!*tok || (rt && token_ok(rt) && !*new_refresh))
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    }
    /* The answer's strings held the tokens; wipe them before freeing. */
    const char *keys[] = {"access_token", "refresh_token", "id_token"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (json_is_string(v))
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    }
    json_decref(root);
    return rc;
}

scalr_email_code se_oauth_refresh_grant(const se_oauth_cfg *cfg, const char *refresh_token,
                                        char **tok, long *expires_in, char **new_refresh,
                                        scalr_email_error *err)
{
    *tok = NULL;
    *new_refresh = NULL;
    *expires_in = 0;
    const char *url = cfg->token_url;
    if (strncmp(url, "https://", 8) != 0)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                       "SMTP_OAUTH_TOKEN_URL must be an https:// URL");
    if (!cfg->client_id)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "OAUTH",
                       "SMTP_OAUTH_TOKEN_URL is set but SMTP_OAUTH_CLIENT_ID is empty");
    pthread_once(&curl_once, curl_init);
    CURL *h = curl_easy_init();
    answer *a = calloc(1, sizeof *a);
    if (!h || !a) {
        curl_easy_cleanup(h);
        free(a);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
    }
    char *body = NULL;
    size_t blen = 0;
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (add_param(h, &body, &blen, "grant_type", "refresh_token") ||
        add_param(h, &body, &blen, "refresh_token", refresh_token) ||
        add_param(h, &body, &blen, "client_id", cfg->client_id) ||
        add_param(h, &body, &blen, "client_secret", cfg->client_secret) ||
        add_param(h, &body, &blen, "scope", cfg->scope)) {
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "OAUTH", "out of memory");
        goto out;
    }
    const char *ca = cfg->ca_file ? cfg->ca_file : getenv("SSL_CERT_FILE");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca && *ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    /* libcurl ignores OpenSSL's SSL_CERT_DIR; the SMTP side honours it. */
    const char *dir = getenv("SSL_CERT_DIR");
    if (!cfg->ca_file && dir && *dir)
        curl_easy_setopt(h, CURLOPT_CAPATH, dir);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "scalr-email/" SCALR_EMAIL_VERSION);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = se_fail(err, SCALR_EMAIL_ETIMEOUT, "OAUTH", "token endpoint %s timed out after %u ms",
                     url, cfg->timeout_ms);
    else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
             cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CERTPROBLEM)
        rc = se_fail(err, SCALR_EMAIL_ETLS, "OAUTH", "token endpoint %s: TLS failure: %s", url,
                     curl_easy_strerror(cc));
    else if (cc == CURLE_WRITE_ERROR && a->over)
        rc = se_fail(err, SCALR_EMAIL_EPROTOCOL, "OAUTH",
                     "token endpoint %s answered more than %d bytes", url, ANSWER_MAX);
    else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
        rc = se_fail(err, SCALR_EMAIL_ECONNECT, "OAUTH", "cannot connect to token endpoint %s: %s",
                     url, curl_easy_strerror(cc));
    else if (cc != CURLE_OK)
        rc = se_fail(err, SCALR_EMAIL_EIO, "OAUTH", "token endpoint %s: %s", url,
                     curl_easy_strerror(cc));
    else
        rc = parse(a, status, url, tok, expires_in, new_refresh, err);
out:
    if (body) {
        OPENSSL_cleanse(body, blen);
        free(body);
    }
    OPENSSL_cleanse(a, sizeof *a);
    free(a);
    curl_easy_cleanup(h);
    return rc;
}
