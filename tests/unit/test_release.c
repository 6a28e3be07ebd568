/* The inbox's release allow list (inbox/release.c), the dark-mode preview
 * rewrite (inbox/preview.c) and scalr_email_client_send_data's refusals
 * before any connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../inbox/preview.h"
#include "../../inbox/release.h"
#include "../../inbox/tags.h"
#include "harness.h"
#include "scalr_email.h"

TEST(release_allow_list_patterns)
{
    char why[400];
    CHECK_INT(ib_release_allow("*@*", why, sizeof why), -1);
    CHECK_INT(ib_release_allow("example.com", why, sizeof why), -1);
    CHECK_INT(ib_release_allow("@example.com", why, sizeof why), -1);
    CHECK_INT(ib_release_allow("a@b@example.com", why, sizeof why), -1);
    CHECK_INT(ib_release_allow("me@", why, sizeof why), -1);
    CHECK_INT(ib_release_allow("*@mycompany.test", why, sizeof why), 0);
    CHECK_INT(ib_release_allow("boss@partner.test", why, sizeof why), 0);
    CHECK_INT(ib_release_allowed("dev@mycompany.test"), 1);
    CHECK_INT(ib_release_allowed("Dev@MyCompany.TEST"), 1);
    CHECK_INT(ib_release_allowed("dev@sub.mycompany.test"), 0);
    CHECK_INT(ib_release_allowed("dev@mycompany.test.evil.test"), 0);
    CHECK_INT(ib_release_allowed("@mycompany.test"), 1); /* only parsed addresses reach it */
    CHECK_INT(ib_release_allowed("boss@partner.test"), 1);
    CHECK_INT(ib_release_allowed("boss2@partner.test"), 0);
    CHECK_INT(ib_release_allowed("xboss@partner.test"), 0);
}

static char *dark(const char *in)
{
    se_buf b = {0};
    se_buf_puts(&b, in);
    if (ib_preview_dark(&b) < 0)
        return NULL;
    return se_buf_steal(&b, NULL);
}

TEST(preview_dark_rewrites_color_scheme_queries)
{
    char *s =
        dark("<style>@media (prefers-color-scheme: dark){a{}} @media (PREFERS-COLOR-SCHEME :\n"
             "light){b{}} @media (prefers-color-scheme){c{}}</style>prefers-color-scheme");
    CHECK_STR(s, "<style>@media (min-width: 0px){a{}} @media (max-width: 0px){b{}} "
                 "@media (prefers-color-scheme){c{}}</style>prefers-color-scheme");
    free(s);
    s = dark("no queries here");
    CHECK_STR(s, "no queries here");
    free(s);
    s = dark("x prefers-color-scheme:dark");
    CHECK_STR(s, "x min-width: 0px");
    free(s);
}

TEST(send_data_refuses_bad_input_before_connecting)
{
    scalr_email_client *c = NULL;
    scalr_email_error e;
    /* port 1 on loopback: a connection attempt would fail with ECONNECT */
    CHECK_INT(
        scalr_email_client_new(
            &c, &(scalr_email_config){.host = "127.0.0.1", .port = 1, .tls = SCALR_EMAIL_TLS_NONE},
            &e),
        SCALR_EMAIL_OK);
    const char msg[] = "Subject: x\r\n\r\nhi\r\n";
    CHECK_INT(scalr_email_client_send_data(c, "a@b.test", SCALR_EMAIL_LIST("x@y.test\r\nDATA"), msg,
                                           sizeof msg - 1, &e),
              SCALR_EMAIL_EINVAL);
    CHECK_INT(scalr_email_client_send_data(c, "a@b.test", (const char *const[]){NULL}, msg,
                                           sizeof msg - 1, &e),
              SCALR_EMAIL_EINVAL);
    CHECK_INT(
        scalr_email_client_send_data(c, "a@b.test", SCALR_EMAIL_LIST("x@y.test"), "a\0b", 3, &e),
        SCALR_EMAIL_EINVAL);
    CHECK_INT(scalr_email_client_send_data(c, "bad sender", SCALR_EMAIL_LIST("x@y.test"), msg,
                                           sizeof msg - 1, &e),
              SCALR_EMAIL_EINVAL);
    CHECK_INT(
        scalr_email_client_send_data(c, "", SCALR_EMAIL_LIST("x@y.test"), msg, sizeof msg - 1, &e),
        SCALR_EMAIL_ECONNECT);
    scalr_email_client_free(c);
}

TEST(tags_normalize_and_validate)
{
    char *t = ib_tags_normalize(" a ,b,,A, c\x01"
                                "d ,");
    CHECK_STR(t, ",a,b,cd,");
    free(t);
    t = ib_tags_normalize("");
    CHECK_STR(t, "");
    free(t);
    t = ib_tags_normalize("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22");
    CHECK_STR(t, ",1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,");
    free(t);
    CHECK_INT(ib_tag_valid("ok tag"), 1);
    CHECK_INT(ib_tag_valid(""), 0);
    CHECK_INT(ib_tag_valid(" lead"), 0);
    CHECK_INT(ib_tag_valid("a,b"), 0);
    CHECK_INT(ib_tag_valid("a\nb"), 0);
}
