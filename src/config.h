/* Configuration from the environment and dotenv files. */
#ifndef SE_CONFIG_H
#define SE_CONFIG_H

#include <stddef.h>

#include "scalr_email.h"

/* Owned strings; filled by se_settings_from_env, freed by se_settings_free. */
typedef struct se_settings {
    char *host, *username, *password, *from, *helo_name;
    char *return_path; /* SMTP_RETURN_PATH as given, or NULL */
    char *proxy;       /* SMTP_PROXY as given, or NULL */
    int auth;          /* se_smtp_mech: SMTP_AUTH (0: auto) */
    /* SMTP_OAUTH_*: token sources (src/auth/oauth.h); secrets wiped on free */
    char *oauth_token, *oauth_token_cmd, *oauth_token_url, *oauth_client_id, *oauth_client_secret,
        *oauth_refresh_token, *oauth_refresh_token_file, *oauth_scope;
    unsigned port; /* resolved: 587, 465 or SMTP_PORT */
    scalr_email_tls tls;
    unsigned timeout_ms; /* resolved: 30000 or SMTP_TIMEOUT * 1000 */
} se_settings;

/* Read SMTP_* variables (see scalr_email.h).  When env_file is not NULL,
 * parse it as dotenv; a variable set in the environment wins over the file.
 * Rules: SMTP_HOST empty or unset -> ENOTCONFIGURED (stage "CONFIG").
 * Booleans: true/false/1/0/yes/no (any case), else ECONFIG naming the variable.
 * SMTP_USE_SSL=true with SMTP_USE_TLS unset -> implicit TLS; both set to
 * true explicitly -> ECONFIG.  SMTP_USE_TLS=false and SMTP_USE_SSL=false ->
 * no TLS.  SMTP_PORT: 1..65535, default 587, or 465 for implicit TLS.
 * SMTP_TIMEOUT: positive seconds, fractions allowed ("0.5"), at most 3600.
 * Empty values count as unset (compose files forward "${X:-}").
 * A malformed dotenv line -> ECONFIG "PATH:LINE: reason"; an unreadable
 * file -> ECONFIG naming it. */
scalr_email_code se_settings_from_env(se_settings *out, const char *env_file,
                                      scalr_email_error *err);
void se_settings_free(se_settings *s);

/* Sender profiles: the same, with the dotenv file overlay (a profile)
 * winning over the environment and env_file.  overlay NULL: as above. */
scalr_email_code se_settings_from_layers(se_settings *out, const char *overlay,
                                         const char *env_file, scalr_email_error *err);
scalr_email_code se_config_get_layered(const char *overlay, const char *env_file, const char *name,
                                       char **value, scalr_email_error *err);

/* The sign-in settings, from the environment or scalr_email_config (see
 * config.c): the mechanism, username, password and the OAuth2 token
 * sources, checked and copied into out (auth, oauth_*). */
enum {
    SE_A_MECH,
    SE_A_USER,
    SE_A_PASS,
    SE_A_TOKEN,
    SE_A_CMD,
    SE_A_URL,
    SE_A_ID,
    SE_A_SECRET,
    SE_A_REFRESH,
    SE_A_REFRESH_FILE,
    SE_A_SCOPE,
    SE_A_COUNT
};
scalr_email_code se_check_auth(se_settings *out, const char *const a[SE_A_COUNT],
                               const char *const names[SE_A_COUNT], scalr_email_error *err);

/* Parse dotenv text: KEY=value lines, optional "export ", single quotes
 * (literal), double quotes (\n \" \\ escapes), unquoted values end at " #",
 * comments, blank lines, CRLF tolerated.  Calls fn for each pair in order.
 * Returns 0, or the 1-based number of the first malformed line (with a
 * reason in why).  -1 out of memory. */
typedef int (*se_dotenv_fn)(void *arg, const char *key, const char *value);
int se_dotenv_parse(const char *text, size_t len, se_dotenv_fn fn, void *arg, char *why,
                    size_t whylen);

#endif
