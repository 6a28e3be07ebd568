/* Fault injection rules (inbox/chaos.c): parsing, verdicts, JSON. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../inbox/chaos.h"
#include "harness.h"

TEST(chaos_reply_rule_with_match)
{
    ib_chaos *c = ib_chaos_new();
    char why[128] = "";
    CHECK_INT(ib_chaos_add(c, "rcpt:550 5.1.1 no such user:match=bad@", why, sizeof why), 0);
    ib_verdict v = ib_chaos_check(c, IB_STAGE_RCPT, "Bad@example.com"); /* case-insensitive */
    CHECK_INT(v.act, 1);
    CHECK_INT(v.code, 550);
    CHECK_STR(v.text, "5.1.1 no such user");
    CHECK_INT(v.delay_ms, 0);
    v = ib_chaos_check(c, IB_STAGE_RCPT, "good@example.com");
    CHECK_INT(v.act, 0);
    v = ib_chaos_check(c, IB_STAGE_MAIL, "bad@example.com"); /* other stage */
    CHECK_INT(v.act, 0);
    v = ib_chaos_check(c, IB_STAGE_RCPT, NULL);
    CHECK_INT(v.act, 0);
    ib_chaos_free(c);
}

TEST(chaos_text_keeps_colons_and_defaults)
{
    ib_chaos *c = ib_chaos_new();
    CHECK_INT(ib_chaos_add(c, "mail:451 4.3.0 wait: later:p=1", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "DATA:552", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "bdat:disconnect", NULL, 0), 0); /* BDAT LAST is the data stage */
    ib_verdict v = ib_chaos_check(c, IB_STAGE_MAIL, "a@b");
    CHECK_STR(v.text, "4.3.0 wait: later");
    v = ib_chaos_check(c, IB_STAGE_DATA, NULL);
    CHECK_INT(v.act, 1);
    CHECK_INT(v.code, 552);
    CHECK_STR(v.text, "5.0.0 injected by a chaos rule");
    ib_chaos_clear(c);
    CHECK_INT(ib_chaos_add(c, "bdat:disconnect", NULL, 0), 0);
    v = ib_chaos_check(c, IB_STAGE_DATA, NULL);
    CHECK_INT(v.act, 2);
    ib_chaos_free(c);
}

TEST(chaos_delays_add_up_first_reply_wins)
{
    ib_chaos *c = ib_chaos_new();
    CHECK_INT(ib_chaos_add(c, "ehlo:delay=100", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "ehlo:delay=50", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "ehlo:421 4.4.5 busy:delay=10", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "ehlo:554 never reached:delay=1000", NULL, 0), 0);
    ib_verdict v = ib_chaos_check(c, IB_STAGE_EHLO, NULL);
    CHECK_INT(v.act, 1);
    CHECK_INT(v.code, 421);
    CHECK_STR(v.text, "4.4.5 busy");
    CHECK_INT(v.delay_ms, 160);
    v = ib_chaos_check(c, IB_STAGE_CONNECT, NULL);
    CHECK_INT(v.act, 0);
    CHECK_INT(v.delay_ms, 0);
    ib_chaos_free(c);
}

TEST(chaos_probability)
{
    ib_chaos *c = ib_chaos_new();
    CHECK_INT(ib_chaos_add(c, "mail:451:p=0", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "rcpt:451:p=0.5", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "data:451:p=1.0", NULL, 0), 0);
    int mail = 0, rcpt = 0, data = 0;
    for (int i = 0; i < 2000; i++) {
        mail += ib_chaos_check(c, IB_STAGE_MAIL, "a@b").act;
        rcpt += ib_chaos_check(c, IB_STAGE_RCPT, "a@b").act;
        data += ib_chaos_check(c, IB_STAGE_DATA, NULL).act;
    }
    CHECK_INT(mail, 0);
    CHECK_INT(data, 2000);
    CHECK(rcpt > 800 && rcpt < 1200); /* 1000 expected; sigma is about 22 */
    ib_chaos_free(c);
}

TEST(chaos_rejects_bad_rules)
{
    static const char *const bad[] = {
        "",
        "rcpt",
        "smtp:451",
        "rcpt:",
        "rcpt:99 x",
        "rcpt:600 x",
        "rcpt:451x",
        "rcpt:451 a\r\n250 b",
        "ehlo:451:match=x",
        "rcpt:451:p=2",
        "rcpt:451:p=abc",
        "rcpt:451:p=",
        "rcpt:451:foo=1",
        "ehlo:delay=700000",
        "ehlo:delay=-1",
        "rcpt:451 \xff",
        "rcpt:451:delay=1x",
        "connect:explode",
    };
    ib_chaos *c = ib_chaos_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[128] = "";
        int rc = ib_chaos_add(c, bad[i], why, sizeof why);
        if (rc != -1 || !why[0])
            th_fail(__FILE__, __LINE__, "rule \"%s\" accepted (why \"%s\")", bad[i], why);
    }
    char *j = ib_chaos_json(c);
    CHECK_STR(j, "[]");
    free(j);
    CHECK_INT(ib_chaos_add(c, NULL, NULL, 0), -1);
    ib_chaos_free(c);
}

TEST(chaos_rule_limit)
{
    ib_chaos *c = ib_chaos_new();
    for (int i = 0; i < 64; i++)
        CHECK_INT(ib_chaos_add(c, "rcpt:451", NULL, 0), 0);
    char why[64];
    CHECK_INT(ib_chaos_add(c, "rcpt:451", why, sizeof why), -1);
    CHECK_STR(why, "too many rules (64)");
    ib_chaos_free(c);
}

TEST(chaos_json_lists_rules)
{
    ib_chaos *c = ib_chaos_new();
    CHECK_INT(ib_chaos_add(c, "rcpt:550 5.1.1 \"no\" user:match=bad@:p=0.25", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "ehlo:delay=2000", NULL, 0), 0);
    CHECK_INT(ib_chaos_add(c, "mail:disconnect", NULL, 0), 0);
    char *j = ib_chaos_json(c);
    CHECK_STR(j,
              "[{\"rule\":\"rcpt:550 5.1.1 \\\"no\\\" user:match=bad@:p=0.25\",\"stage\":\"rcpt\","
              "\"action\":\"reply\",\"p\":0.25,\"delay_ms\":0,\"code\":550,"
              "\"text\":\"5.1.1 \\\"no\\\" user\",\"match\":\"bad@\"},"
              "{\"rule\":\"ehlo:delay=2000\",\"stage\":\"ehlo\",\"action\":\"delay\",\"p\":1.0,"
              "\"delay_ms\":2000},"
              "{\"rule\":\"mail:disconnect\",\"stage\":\"mail\",\"action\":\"disconnect\","
              "\"p\":1.0,\"delay_ms\":0}]");
    free(j);
    ib_chaos_clear(c);
    j = ib_chaos_json(c);
    CHECK_STR(j, "[]");
    free(j);
    CHECK_INT(ib_chaos_check(c, IB_STAGE_MAIL, "a@b").act, 0);
    ib_chaos_free(c);
}

TEST(chaos_without_rules_or_handle)
{
    ib_verdict v = ib_chaos_check(NULL, IB_STAGE_CONNECT, NULL);
    CHECK_INT(v.act, 0);
    CHECK_INT(v.delay_ms, 0);
    ib_chaos_free(NULL);
}

static void *hammer(void *arg)
{
    ib_chaos *c = arg;
    long fired = 0;
    for (int i = 0; i < 20000; i++)
        fired += ib_chaos_check(c, IB_STAGE_RCPT, "x@y").act;
    return (void *)fired;
}

TEST(chaos_threads_share_rules)
{
    ib_chaos *c = ib_chaos_new();
    CHECK_INT(ib_chaos_add(c, "rcpt:451:p=0.5", NULL, 0), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, c);
    for (int i = 0; i < 200; i++) { /* rewritten at run time, as the web API does */
        ib_chaos_clear(c);
        CHECK_INT(ib_chaos_add(c, "rcpt:451:p=0.5", NULL, 0), 0);
    }
    long total = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (long)r;
    }
    CHECK(total > 30000 && total < 50000);
    ib_chaos_free(c);
}
