/* The doctor's checks, shared by `doctor` and `check`. */
#ifndef SE_CLI_DOCTOR_H
#define SE_CLI_DOCTOR_H

#include <stddef.h>

#include "doctor/doctor.h"

/* The From domain of the configuration, A-label form: 0, or -1. */
int cli_doctor_domain(const char *env_file, char *out, size_t outlen);
/* Run the four checks: 0, or -1 with why and *status (the exit status). */
int cli_doctor_findings(const char *domain, const char *env_file, const char *selector,
                        const char *key_file, int timeout_s, se_finding out[SE_DOCTOR_CHECKS],
                        char *why, size_t whylen, int *status);
/* The readable table. */
void cli_doctor_table(const char *domain, const se_finding *f);

#endif
