/* The doctor's checks, shared by `doctor` and `check`. */
#ifndef SE_CLI_DOCTOR_H
#define SE_CLI_DOCTOR_H

#include <stddef.h>

#include "scalr_email.h"

/* The domain of the configuration's From address: 0, or -1. */
int cli_doctor_domain(const char *env_file, char *out, size_t outlen);
/* scalr_email_doctor() with the configuration of env_file (SMTP_HOST,
 * SMTP_DKIM_*, SCALR_EMAIL_DNS); selector and key_file win when not NULL. */
scalr_email_code cli_doctor_findings(const char *domain, const char *env_file, const char *selector,
                                     const char *key_file, int timeout_s,
                                     scalr_email_finding out[SCALR_EMAIL_DOCTOR_CHECKS],
                                     scalr_email_error *err);
/* The readable table. */
void cli_doctor_table(const char *domain, const scalr_email_finding *f);

#endif
