/* OAuth2 access tokens for SMTP AUTH (XOAUTH2, OAUTHBEARER).
 *
 * A source gives tokens from one of, in order: a fixed token
 * (SMTP_OAUTH_TOKEN), a command run without a shell (SMTP_OAUTH_TOKEN_CMD),
 * or a refresh-token grant (RFC 6749 6) over HTTPS with libcurl.  Tokens are
 * cached in memory until shortly before they expire and shared by every
 * thread and pooled connection of a client: one mutex, held across a fetch,
 * so eight threads that find the token expired cause one refresh.
 * Nothing here prints; errors never quote a token or secret. */
#ifndef SE_AUTH_OAUTH_H
#define SE_AUTH_OAUTH_H

#include "scalr_email.h"

typedef struct se_oauth_cfg {
    const char *token;              /* SMTP_OAUTH_TOKEN */
    const char *token_cmd;          /* SMTP_OAUTH_TOKEN_CMD */
    const char *token_url;          /* SMTP_OAUTH_TOKEN_URL (https://) */
    const char *client_id;          /* SMTP_OAUTH_CLIENT_ID */
    const char *client_secret;      /* SMTP_OAUTH_CLIENT_SECRET, optional */
    const char *refresh_token;      /* SMTP_OAUTH_REFRESH_TOKEN */
    const char *refresh_token_file; /* SMTP_OAUTH_REFRESH_TOKEN_FILE */
    const char *scope;              /* SMTP_OAUTH_SCOPE, optional */
    const char *ca_file;            /* the CAs the SMTP connection trusts */
    unsigned timeout_ms;            /* bound on one fetch */
} se_oauth_cfg;

typedef struct se_oauth se_oauth;

/* NULL when cfg names no token source (or out of memory: *oom set). */
se_oauth *se_oauth_new(const se_oauth_cfg *cfg, int *oom);
void se_oauth_free(se_oauth *o);

/* A token: the cached one, or a new one fetched now (*fetched 1).  *tok is
 * malloc'd; the caller wipes and frees it (se_oauth_drop).
 * Errors: ECONFIG (command failed, no refresh token), EAUTH (the endpoint
 * refused: invalid_grant...), ETRANSIENT (5xx), ETIMEOUT, ETLS, EPROTOCOL
 * (not a token response), ECONNECT, ENOMEM; stage "OAUTH". */
scalr_email_code se_oauth_token(se_oauth *o, char **tok, int *fetched, scalr_email_error *err);
void se_oauth_drop(char *tok);

/* The server refused tok as expired: forget it, unless another thread has
 * already replaced it.  Returns 1 when a new token can be had (a command
 * or a refresh grant), 0 for a fixed token. */
int se_oauth_expired(se_oauth *o, const char *tok);

/* Tokens fetched so far (command runs or refresh grants). */
unsigned se_oauth_fetches(se_oauth *o);

/* Set when the latest refresh returned a rotated refresh token. */
typedef void (*se_oauth_rotated_fn)(void *arg, const char *refresh_token);
void se_oauth_on_rotate(se_oauth *o, se_oauth_rotated_fn fn, void *arg);

/* token_cmd.c: run cmd (split on blanks, '...' and "..." quoting, no
 * shell), its first output line in *tok. */
scalr_email_code se_oauth_run_cmd(const char *cmd, unsigned timeout_ms, char **tok,
                                  scalr_email_error *err);

/* token_http.c: one refresh grant.  *tok and, if rotated, *new_refresh
 * (else NULL) malloc'd; *expires_in seconds (0: not given). */
scalr_email_code se_oauth_refresh_grant(const se_oauth_cfg *cfg, const char *refresh_token,
                                        char **tok, long *expires_in, char **new_refresh,
                                        scalr_email_error *err);

#endif
