/* Fault injection rules for the inbox's SMTP side (see chaos.h for the
 * syntax).  A short list of rules behind one mutex; the SMTP sessions read
 * it at every stage, the web API rewrites it at run time. */
#include "chaos.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_RULES 64
#define MAX_DELAY_MS 600000u
#define MAX_MATCH 256

typedef struct rule {
    ib_stage stage;
    int act; /* as in ib_verdict */
    int code;
    char text[256];
    double p; /* 1.0: always */
    char match[MAX_MATCH];
    unsigned delay_ms;
    char *spec; /* the rule as given, for the API */
} rule;

struct ib_chaos {
    pthread_mutex_t lock;
    rule rules[MAX_RULES];
    size_t n;
    uint64_t rng; /* xorshift64* state, under lock */
};

static const char *const stage_names[IB_STAGE_COUNT] = {"connect", "ehlo", "auth",
                                                        "mail",    "rcpt", "data"};

ib_chaos *ib_chaos_new(void)
{
    ib_chaos *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return NULL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->rng = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9e3779b97f4a7c15u;
    return c;
}

void ib_chaos_clear(ib_chaos *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++)
        free(c->rules[i].spec);
    c->n = 0;
    pthread_mutex_unlock(&c->lock);
}

void ib_chaos_free(ib_chaos *c)
{
    if (!c)
        return;
    ib_chaos_clear(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int fail(char *why, size_t whylen, const char *msg, const char *detail)
{
    if (why && whylen)
        snprintf(why, whylen, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
    return -1;
}

/* Reply text goes onto the wire after the code: no control bytes, or a rule
 * could inject extra reply lines (RFC 5321 4.2: one line per reply line). */
static int text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

static int parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_prob(const char *s, size_t n, double *out)
{
    char tmp[32];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!((tmp[i] >= '0' && tmp[i] <= '9') || tmp[i] == '.'))
            return -1;
    char *end;
    double v = strtod(tmp, &end);
    if (*end || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

/* "p=", "match=" or "delay=": an option segment rather than part of the text. */
static int is_option(const char *s, size_t n)
{
    return (n >= 2 && !strncmp(s, "p=", 2)) || (n >= 6 && !strncmp(s, "match=", 6)) ||
           (n >= 6 && !strncmp(s, "delay=", 6));
}

static int parse_action(rule *r, const char *s, size_t n, char *why, size_t whylen)
{
    unsigned long v;
    if (n == 10 && !strncasecmp(s, "disconnect", 10)) {
        r->act = 2;
        return 0;
    }
    if (n > 6 && !strncasecmp(s, "delay=", 6)) {
        if (parse_uint(s + 6, n - 6, MAX_DELAY_MS, &v) < 0)
            return fail(why, whylen, "delay must be 0..600000 ms", NULL);
        r->act = 0;
        r->delay_ms = (unsigned)v;
        return 0;
    }
    if (n < 3 || parse_uint(s, 3, 599, &v) < 0 || v < 200 || (n > 3 && s[3] != ' '))
        return fail(why, whylen, "action must be CODE[ TEXT] (200..599), disconnect or delay=MS",
                    NULL);
    r->act = 1;
    r->code = (int)v;
    const char *t = n > 3 ? s + 4 : "";
    size_t tl = n > 3 ? n - 4 : 0;
    if (!text_ok(t, tl))
        return fail(why, whylen, "reply text has control characters", NULL);
    if (tl >= sizeof r->text)
        return fail(why, whylen, "reply text too long", NULL);
    if (tl == 0) /* RFC 3463: the class digit of the enhanced code follows the reply code */
        snprintf(r->text, sizeof r->text, "%d.0.0 injected by a chaos rule", (int)(v / 100));
    else
        memcpy(r->text, t, tl);
    return 0;
}

int ib_chaos_add(ib_chaos *c, const char *spec, char *why, size_t whylen)
{
    rule r;
    memset(&r, 0, sizeof r);
    r.p = 1.0;
    if (!spec)
        return fail(why, whylen, "empty rule", NULL);
    size_t len = strlen(spec);
    if (len > 1024)
        return fail(why, whylen, "rule too long", NULL);
    if (!text_ok(spec, len))
        return fail(why, whylen, "rule has control characters", NULL);
    json_t *utf8 = json_stringn(spec, len); /* NULL unless valid UTF-8 */
    if (!utf8)
        return fail(why, whylen, "rule is not valid UTF-8", NULL);
    json_decref(utf8);

    const char *colon = strchr(spec, ':');
    if (!colon)
        return fail(why, whylen, "rule must be STAGE:ACTION[:opt=value...]", spec);
    size_t sl = (size_t)(colon - spec);
    int stage = -1;
    for (int i = 0; i < IB_STAGE_COUNT; i++)
        if (strlen(stage_names[i]) == sl && !strncasecmp(spec, stage_names[i], sl))
            stage = i;
    if (sl == 4 && !strncasecmp(spec, "bdat", 4))
        stage = IB_STAGE_DATA;
    if (stage < 0)
        return fail(why, whylen, "unknown stage (connect, ehlo, auth, mail, rcpt, data)", NULL);
    r.stage = (ib_stage)stage;

    /* The action runs up to the first ":opt=" segment; any other colon belongs
     * to the reply text ("550 5.1.1 no: such user"). */
    const char *act = colon + 1;
    const char *p = act;
    const char *act_end = spec + len;
    while ((p = strchr(p, ':')) != NULL) {
        const char *seg = p + 1;
        const char *next = strchr(seg, ':');
        size_t segl = next ? (size_t)(next - seg) : strlen(seg);
        if (is_option(seg, segl)) {
            act_end = p;
            break;
        }
        p = seg;
    }
    if (parse_action(&r, act, (size_t)(act_end - act), why, whylen) < 0)
        return -1;

    for (p = act_end; *p == ':';) {
        const char *seg = p + 1;
        const char *next = strchr(seg, ':');
        size_t segl = next ? (size_t)(next - seg) : strlen(seg);
        unsigned long v;
        if (segl > 2 && !strncmp(seg, "p=", 2)) {
            if (parse_prob(seg + 2, segl - 2, &r.p) < 0)
                return fail(why, whylen, "p must be a number from 0 to 1", NULL);
        } else if (segl > 6 && !strncmp(seg, "match=", 6)) {
            if (r.stage != IB_STAGE_MAIL && r.stage != IB_STAGE_RCPT)
                return fail(why, whylen, "match= applies to the mail and rcpt stages only", NULL);
            if (segl - 6 >= MAX_MATCH)
                return fail(why, whylen, "match= value too long", NULL);
            memcpy(r.match, seg + 6, segl - 6);
        } else if (segl > 6 && !strncmp(seg, "delay=", 6)) {
            if (parse_uint(seg + 6, segl - 6, MAX_DELAY_MS, &v) < 0)
                return fail(why, whylen, "delay must be 0..600000 ms", NULL);
            r.delay_ms = (unsigned)v;
        } else {
            return fail(why, whylen, "unknown option (p=, match=, delay=)", NULL);
        }
        p = seg + segl;
    }

    r.spec = strdup(spec);
    if (!r.spec)
        return fail(why, whylen, "out of memory", NULL);
    pthread_mutex_lock(&c->lock);
    if (c->n == MAX_RULES) {
        pthread_mutex_unlock(&c->lock);
        free(r.spec);
        return fail(why, whylen, "too many rules (64)", NULL);
    }
    c->rules[c->n++] = r;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* xorshift64*: a uniform double in [0, 1).  Called with the lock held. */
static double next_uniform(ib_chaos *c)
{
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return (double)((x * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, nl))
            return 1;
    return nl == 0;
}

/* Rules are tried in order: delays add up, the first reply or disconnect wins. */
ib_verdict ib_chaos_check(ib_chaos *c, ib_stage stage, const char *arg)
{
    ib_verdict v;
    memset(&v, 0, sizeof v);
    if (!c)
        return v;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        const rule *r = &c->rules[i];
        if (r->stage != stage)
            continue;
        if (r->match[0] && (!arg || !contains_ci(arg, r->match)))
            continue;
        if (r->p < 1.0 && !(next_uniform(c) < r->p))
            continue;
        v.delay_ms =
            v.delay_ms + r->delay_ms > MAX_DELAY_MS ? MAX_DELAY_MS : v.delay_ms + r->delay_ms;
        if (r->act) {
            v.act = r->act;
            v.code = r->code;
            memcpy(v.text, r->text, sizeof v.text);
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return v;
}

char *ib_chaos_json(ib_chaos *c)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    int bad = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n && !bad; i++) {
        const rule *r = &c->rules[i];
        const char *action = r->act == 2 ? "disconnect" : r->act == 1 ? "reply" : "delay";
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:f, s:i}", "rule", r->spec, "stage", stage_names[r->stage],
                      "action", action, "p", r->p, "delay_ms", (json_int_t)r->delay_ms);
        if (o && r->act == 1) {
            bad |= json_object_set_new(o, "code", json_integer(r->code));
            bad |= json_object_set_new(o, "text", json_string(r->text));
        }
        if (o && r->match[0])
            bad |= json_object_set_new(o, "match", json_string(r->match));
        if (!o || json_array_append_new(arr, o) != 0)
            bad = 1;
    }
    pthread_mutex_unlock(&c->lock);
    char *out = bad ? NULL : json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return out;
}
