/* The README's first example, built against the installed shared library
 * through pkg-config.  Sends one message from the environment's SMTP_*. */
#include <stdio.h>

#include <scalr_email.h>

int main(int argc, char **argv)
{
    const char *attach = argc > 1 ? argv[1] : NULL;
    scalr_email_error err;
    scalr_email_code rc = scalr_email_send(
        &(scalr_email_message){
            .to = SCALR_EMAIL_LIST("user@example.com"),
            .subject = "Your invoice is ready",
            .body = "Plain-text body here.",
            .body_html = "<p>HTML body here.</p>",
            .attachments = (scalr_email_attachment[]){{.path = attach}, {0}},
        },
        &err);
    if (rc == SCALR_EMAIL_ENOTCONFIGURED) {
        printf("not configured: %s\n", err.message);
        return 3;
    }
    if (rc != SCALR_EMAIL_OK) {
        fprintf(stderr, "email failed: %s (%s)\n", err.message, scalr_email_strerror(rc));
        return 1;
    }
    printf("sent %s\n", err.message_id);
    return 0;
}
