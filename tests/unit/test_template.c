/* The Mustache engine with byte strings: conformance cases written from the
 * mustache/spec modules (interpolation, sections, inverted, comments,
 * partials, delimiters, ~inheritance), then our own rules: escaping by part,
 * HTML context checks, strict variables, and the derived text part. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "template/mustache.h"

typedef struct mcase {
    const char *name, *tmpl, *data, *partials, *want;
} mcase;

static json_t *partials;

static char *load(void *arg, const char *name, int parent, size_t *len, const char **label,
                  char *why, size_t whylen)
{
    (void)arg, (void)parent, (void)why, (void)whylen;
    json_t *p = json_object_get(partials, name);
    if (!json_is_string(p))
        return NULL;
    *len = json_string_length(p);
    *label = name;
    return strndup(json_string_value(p), *len);
}

/* Render in mode; returns the output (malloc'd) or NULL with why. */
static char *run(mu_mode mode, int allow_missing, const char *tmpl, const char *data,
                 const char *parts, char *why, size_t whylen)
{
    json_error_t je;
    json_t *d = json_loads(data ? data : "{}", JSON_DECODE_ANY, &je);
    partials = parts ? json_loads(parts, 0, &je) : NULL;
    if (!d || (parts && !partials)) {
        snprintf(why, whylen, "bad test JSON: %s", je.text);
        json_decref(d);
        return NULL;
    }
    mu_opts o = {.mode = mode, .allow_missing = allow_missing, .load = load, .label = "t"};
    char *out = NULL;
    size_t n;
    if (mu_render(tmpl, strlen(tmpl), d, &o, &out, &n, why, whylen))
        out = NULL;
    json_decref(d);
    json_decref(partials);
    partials = NULL;
    return out;
}

static void run_cases(const mcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char why[300] = "";
        char *out = run(MU_SPEC, 1, c[i].tmpl, c[i].data, c[i].partials, why, sizeof why);
        if (!out) {
            th_fail(__FILE__, __LINE__, "%s: render failed: %s", c[i].name, why);
            continue;
        }
        if (strcmp(out, c[i].want))
            th_fail(__FILE__, __LINE__, "%s", c[i].name);
        CHECK_STR(out, c[i].want);
        free(out);
    }
}
#define RUN(cases) run_cases(cases, sizeof cases / sizeof cases[0])

TEST(mustache_spec_interpolation)
{
    static const mcase c[] = {
        {"no tags", "Hello from {Mustache}!\n", "{}", NULL, "Hello from {Mustache}!\n"},
        {"basic", "Hi {{name}}!", "{\"name\":\"Ana\"}", NULL, "Hi Ana!"},
        {"escaped", "{{x}}", "{\"x\":\"& \\\" < >\"}", NULL, "&amp; &quot; &lt; &gt;"},
        {"triple", "{{{x}}}", "{\"x\":\"& \\\" < >\"}", NULL, "& \" < >"},
        {"ampersand", "{{&x}}", "{\"x\":\"& \\\" < >\"}", NULL, "& \" < >"},
        {"integer", "{{n}} apples", "{\"n\":85}", NULL, "85 apples"},
        {"decimal", "{{p}}", "{\"p\":1.210}", NULL, "1.21"},
        {"triple decimal", "{{{p}}}", "{\"p\":1.21}", NULL, "1.21"},
        {"null", "[{{x}}]", "{\"x\":null}", NULL, "[]"},
        {"missing", "[{{x}}]", "{}", NULL, "[]"},
        {"missing triple", "[{{{x}}}]", "{}", NULL, "[]"},
        {"dotted", "{{a.b.c}}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}", NULL, "deep"},
        {"dotted triple", "{{{a.b}}}", "{\"a\":{\"b\":\"<i>\"}}", NULL, "<i>"},
        {"dotted broken chain", "[{{a.x.c}}]", "{\"a\":{}}", NULL, "[]"},
        {"dotted broken resolution", "[{{a.b.c}}]",
         "{\"a\":{\"b\":{}},\"b\":{\"c\":\"ERROR\"}}", NULL, "[]"},
        {"dotted initial resolution", "{{#a}}{{b.c}}{{/a}}",
         "{\"a\":{\"b\":{\"c\":\"yes\"}},\"b\":{\"c\":\"no\"}}", NULL, "yes"},
        {"dotted context precedence", "{{#a}}{{b.c}}{{/a}}", "{\"a\":{\"b\":{}},\"b\":{\"c\":\"ERROR\"}}",
         NULL, ""},
        {"implicit iterator string", "{{.}}", "\"world\"", NULL, "world"},
        {"implicit iterator escaped", "{{.}}", "\"<b>\"", NULL, "&lt;b&gt;"},
        {"implicit iterator triple", "{{{.}}}", "\"<b>\"", NULL, "<b>"},
        {"implicit iterator integer", "{{.}}", "85", NULL, "85"},
        {"surrounding whitespace", "| {{x}} |", "{\"x\":\"-\"}", NULL, "| - |"},
        {"standalone is not special", "  {{x}}\n", "{\"x\":\"-\"}", NULL, "  -\n"},
        {"padding", "|{{ x }}|{{{ x }}}|{{& x }}|", "{\"x\":\"-\"}", NULL, "|-|-|-|"},
    };
    RUN(c);
}

TEST(mustache_spec_sections)
{
    static const mcase c[] = {
        {"truthy", "[{{#b}}yes{{/b}}]", "{\"b\":true}", NULL, "[yes]"},
        {"falsey", "[{{#b}}yes{{/b}}]", "{\"b\":false}", NULL, "[]"},
        {"null falsey", "[{{#b}}yes{{/b}}]", "{\"b\":null}", NULL, "[]"},
        {"missing falsey", "[{{#b}}yes{{/b}}]", "{}", NULL, "[]"},
        {"empty list", "[{{#l}}yes{{/l}}]", "{\"l\":[]}", NULL, "[]"},
        {"context", "{{#c}}Hi {{name}}.{{/c}}", "{\"c\":{\"name\":\"Joe\"}}", NULL, "Hi Joe."},
        {"parent contexts", "{{#s}}{{a}}, {{b}}, {{s.c}}{{/s}}",
         "{\"a\":\"foo\",\"b\":\"wrong\",\"s\":{\"b\":\"bar\",\"c\":\"baz\"}}", NULL,
         "foo, bar, baz"},
        {"variable test", "{{#foo}}{{.}} is {{foo}}{{/foo}}", "{\"foo\":\"bar\"}", NULL,
         "bar is bar"},
        {"list", "{{#l}}{{i}}{{/l}}", "{\"l\":[{\"i\":1},{\"i\":2},{\"i\":3}]}", NULL, "123"},
        {"implicit iterator", "({{#l}}({{.}}){{/l}})", "{\"l\":[\"a\",\"b\"]}", NULL, "((a)(b))"},
        {"nested lists", "{{#l}}{{#.}}{{.}}{{/.}}|{{/l}}", "{\"l\":[[1,2],[3]]}", NULL, "12|3|"},
        {"nested truthy", "| A {{#b}}B {{#b}}C{{/b}} D{{/b}} E |", "{\"b\":true}", NULL,
         "| A B C D E |"},
        {"nested falsey", "| A {{#b}}B {{#b}}C{{/b}} D{{/b}} E |", "{\"b\":false}", NULL,
         "| A  E |"},
        {"doubled", "{{#b}}1{{/b}}{{#b}}2{{/b}}", "{\"b\":true}", NULL, "12"},
        {"deeply nested contexts",
         "{{#a}}{{one}}{{#b}}{{one}}{{two}}{{#c}}{{one}}{{two}}{{three}}{{/c}}{{/b}}{{/a}}",
         "{\"a\":{\"one\":1},\"b\":{\"two\":2},\"c\":{\"three\":3}}", NULL, "112123"},
        {"dotted truthy", "{{#a.b}}yes{{/a.b}}", "{\"a\":{\"b\":true}}", NULL, "yes"},
        {"dotted broken chain", "[{{#a.x}}yes{{/a.x}}]", "{\"a\":{}}", NULL, "[]"},
        {"surrounding whitespace", " | {{#b}}\t|\t{{/b}} | \n", "{\"b\":true}", NULL,
         " | \t|\t | \n"},
        {"internal whitespace", " | {{#b}} {{! c }}\n {{/b}} | \n", "{\"b\":true}", NULL,
         " |  \n  | \n"},
        {"indented inline", " {{#b}}YES{{/b}}\n {{#b}}GOOD{{/b}}\n", "{\"b\":true}", NULL,
         " YES\n GOOD\n"},
        {"standalone lines", "| This\n{{#b}}\n|\n{{/b}}\n| A Line\n", "{\"b\":true}", NULL,
         "| This\n|\n| A Line\n"},
        {"indented standalone", "|\n  {{#b}}\n|\n  {{/b}}\n|\n", "{\"b\":true}", NULL,
         "|\n|\n|\n"},
        {"CRLF standalone", "|\r\n{{#b}}\r\n{{/b}}\r\n|", "{\"b\":true}", NULL, "|\r\n|"},
        {"standalone without previous line", "  {{#b}}\n#{{/b}}\n/", "{\"b\":true}", NULL,
         "#\n/"},
        {"standalone without newline", "#{{#b}}\n/\n  {{/b}}", "{\"b\":true}", NULL, "#\n/\n"},
        {"zero is falsey here (as in mustache.js and pystache)", "[{{#n}}x{{/n}}]", "{\"n\":0}",
         NULL, "[]"},
    };
    RUN(c);
}

TEST(mustache_spec_inverted)
{
    static const mcase c[] = {
        {"falsey", "[{{^b}}no{{/b}}]", "{\"b\":false}", NULL, "[no]"},
        {"truthy", "[{{^b}}no{{/b}}]", "{\"b\":true}", NULL, "[]"},
        {"null", "[{{^b}}no{{/b}}]", "{\"b\":null}", NULL, "[no]"},
        {"missing", "[{{^b}}no{{/b}}]", "{}", NULL, "[no]"},
        {"context", "[{{^c}}no{{/c}}]", "{\"c\":{\"x\":1}}", NULL, "[]"},
        {"list", "[{{^l}}{{n}}{{/l}}]", "{\"l\":[{\"n\":1}]}", NULL, "[]"},
        {"empty list", "[{{^l}}none{{/l}}]", "{\"l\":[]}", NULL, "[none]"},
        {"doubled", "{{^b}}1{{/b}}{{^b}}2{{/b}}", "{\"b\":false}", NULL, "12"},
        {"standalone lines", "| This\n{{^b}}\n|\n{{/b}}\n| A Line\n", "{\"b\":false}", NULL,
         "| This\n|\n| A Line\n"},
        {"padding", "|{{^ b }}={{/ b }}|", "{\"b\":false}", NULL, "|=|"},
    };
    RUN(c);
}

TEST(mustache_spec_comments)
{
    static const mcase c[] = {
        {"inline", "12345{{! Comment Block! }}67890", "{}", NULL, "1234567890"},
        {"multiline", "12345{{!\n  This is a\n  multi-line comment...\n}}67890\n", "{}", NULL,
         "1234567890\n"},
        {"standalone", "Begin.\n{{! Comment Block! }}\nEnd.\n", "{}", NULL, "Begin.\nEnd.\n"},
        {"indented standalone", "Begin.\n  {{! Indented }}\nEnd.\n", "{}", NULL,
         "Begin.\nEnd.\n"},
        {"CRLF standalone", "|\r\n{{! Standalone }}\r\n|", "{}", NULL, "|\r\n|"},
        {"standalone without previous line", "  {{! I'm Still Standalone }}\n!", "{}", NULL, "!"},
        {"standalone without newline", "!\n  {{! I'm Still Standalone }}", "{}", NULL, "!\n"},
        {"multiline standalone", "Begin.\n{{!\nSomething's going on here...\n}}\nEnd.\n", "{}",
         NULL, "Begin.\nEnd.\n"},
        {"indented inline", "  12 {{! 34 }}\n", "{}", NULL, "  12 \n"},
        {"surrounding whitespace", "12345 {{! Comment Block! }} 67890", "{}", NULL,
         "12345  67890"},
        {"variable name collision", "comments never render: '{{! comment }}'",
         "{\"! comment\":1,\"comment\":2}", NULL, "comments never render: ''"},
    };
    RUN(c);
}

TEST(mustache_spec_delimiters)
{
    static const mcase c[] = {
        {"pair with padding", "{{= | | =}}(|text|)", "{\"text\":\"Hey!\"}", NULL, "(Hey!)"},
        {"special characters", "({{=[ ]=}}[text])", "{\"text\":\"It worked!\"}", NULL,
         "(It worked!)"},
        {"sections", "[\n{{#s}}\n  {{d}}\n  |d|\n{{/s}}\n{{= | | =}}\n|#s|\n  {{d}}\n  |d|\n|/s|\n]\n",
         "{\"s\":true,\"d\":\"I got interpolated.\"}", NULL,
         "[\n  I got interpolated.\n  |d|\n  {{d}}\n  I got interpolated.\n]\n"},
        {"inverted", "{{=| |=}}|^b|no|/b|", "{\"b\":false}", NULL, "no"},
        {"partial inheritance", "[ {{>p}} ]\n{{= | | =}}\n[ |>p| ]\n", "{\"v\":\"yes\"}",
         "{\"p\":\".{{v}}.\"}", "[ .yes. ]\n[ .yes. ]\n"},
        {"post-partial behavior", "[ {{>p}} ]\n[ .{{v}}.  .|v|. ]\n", "{\"v\":\"yes\"}",
         "{\"p\":\".{{v}}.  {{= | | =}}.|v|.\"}", "[ .yes.  .yes. ]\n[ .yes.  .|v|. ]\n"},
        {"surrounding whitespace", "| {{=@ @=}} |", "{}", NULL, "|  |"},
        {"outlying whitespace inline", " | {{=@ @=}}\n", "{}", NULL, " | \n"},
        {"standalone", "Begin.\n{{=@ @=}}\nEnd.\n", "{}", NULL, "Begin.\nEnd.\n"},
        {"indented standalone", "Begin.\n  {{=@ @=}}\nEnd.\n", "{}", NULL, "Begin.\nEnd.\n"},
        {"CRLF standalone", "|\r\n{{= @ @ =}}\r\n|", "{}", NULL, "|\r\n|"},
        {"standalone without previous line", "  {{=@ @=}}\n=", "{}", NULL, "="},
        {"standalone without newline", "=\n  {{=@ @=}}", "{}", NULL, "=\n"},
        {"pair with padding and triple", "{{=<% %>=}}<%{x}%>|<%& x%>", "{\"x\":\"<\"}", NULL,
         "<|<"},
    };
    RUN(c);
}

TEST(mustache_spec_partials)
{
    static const mcase c[] = {
        {"basic", "\"{{>t}}\"", "{}", "{\"t\":\"from partial\"}", "\"from partial\""},
        {"failed lookup renders empty (spec mode)", "\"{{>t}}\"", "{}", "{}", "\"\""},
        {"context", "\"{{>t}}\"", "{\"text\":\"content\"}", "{\"t\":\"*{{text}}*\"}",
         "\"*content*\""},
        {"recursion", "{{>node}}", "{\"content\":\"X\",\"nodes\":[{\"content\":\"Y\",\"nodes\":[]}]}",
         "{\"node\":\"{{content}}<{{#nodes}}{{>node}}{{/nodes}}>\"}", "X<Y<>>"},
        {"nested", "{{>outer}}", "{\"a\":\"hello\",\"b\":\"world\"}",
         "{\"outer\":\"*{{a}} {{>inner}}*\",\"inner\":\"{{b}}!\"}", "*hello world!*"},
        {"surrounding whitespace", "| {{>p}} |", "{}", "{\"p\":\"\\t|\\t\"}", "| \t|\t |"},
        {"inline indentation", "  {{d}}  {{>p}}\n", "{\"d\":\"|\"}", "{\"p\":\">\\n>\"}",
         "  |  >\n>\n"},
        {"CRLF standalone", "|\r\n{{>p}}\r\n|", "{}", "{\"p\":\">\"}", "|\r\n>|"},
        {"standalone without previous line", "  {{>p}}\n>", "{}", "{\"p\":\">\\n>\"}",
         "  >\n  >>"},
        {"standalone without newline", ">\n  {{>p}}", "{}", "{\"p\":\">\\n>\"}", ">\n  >\n  >"},
        {"standalone indentation", "\\\n {{>p}}\n/\n", "{\"c\":\"<\\n->\"}",
         "{\"p\":\"|\\n{{{c}}}\\n|\\n\"}", "\\\n |\n <\n->\n |\n/\n"},
        {"padding whitespace", "|{{> p }}|", "{\"b\":true}", "{\"p\":\"[]\"}", "|[]|"},
    };
    RUN(c);
}

TEST(mustache_spec_inheritance)
{
    static const mcase c[] = {
        {"default", "{{$t}}Default title{{/t}}\n", "{}", NULL, "Default title\n"},
        {"variable in default", "{{$f}}{{bar}}{{/f}}", "{\"bar\":\"baz\"}", NULL, "baz"},
        {"section in default", "{{$f}}{{#b}}{{x}}{{/b}}{{/f}}", "{\"b\":{\"x\":\"y\"}}", NULL,
         "y"},
        {"negative section in default", "{{$f}}{{^b}}n{{/b}}{{/f}}", "{\"b\":false}", NULL, "n"},
        {"mustache injection", "{{$f}}{{x}}{{/f}}", "{\"x\":\"{{b}}\"}", NULL, "{{b}}"},
        {"parent default", "{{<p}}{{/p}}", "{}", "{\"p\":\"{{$f}}default{{/f}}\"}", "default"},
        {"overridden content", "{{<p}}{{$s}}...{{/s}}{{/p}}", "{}",
         "{\"p\":\"<{{$s}}default{{/s}}>\"}", "<...>"},
        {"data does not override block", "{{<p}}{{$v}}var in include{{/v}}{{/p}}",
         "{\"v\":\"var in data\"}", "{\"p\":\"{{$v}}x{{/v}}\"}", "var in include"},
        {"data does not override block default", "{{<p}}{{/p}}", "{\"v\":\"data\"}",
         "{\"p\":\"{{$v}}var in template{{/v}}\"}", "var in template"},
        {"overridden parent", "test {{<p}}{{$s}}override{{/s}}{{/p}}", "{}",
         "{\"p\":\"{{$s}}...{{/s}}\"}", "test override"},
        {"two overridden parents", "{{<p}}{{$s}}1{{/s}}{{/p}} {{<p}}{{$s}}2{{/s}}{{/p}}", "{}",
         "{\"p\":\"|{{$s}}...{{/s}}{{$d}} d{{/d}}|\"}", "|1 d| |2 d|"},
        {"inherit indentation", "{{<p}}{{$n}}hammer time{{/n}}{{/p}}", "{}",
         "{\"p\":\"stop:\\n  {{$n}}collaborate{{/n}}\\n\"}", "stop:\n  hammer time\n"},
        {"only one override", "{{<p}}{{$b}}two{{/b}}{{/p}}", "{}",
         "{\"p\":\"{{$a}}one{{/a}}, {{$b}}default two{{/b}}\"}", "one, two"},
        {"parent is a partial without overrides", "{{>p}}|{{<p}}{{/p}}", "{}",
         "{\"p\":\"{{$f}}default{{/f}}\"}", "default|default"},
        {"recursion", "{{<p}}{{$foo}}override{{/foo}}{{/p}}", "{}",
         "{\"p\":\"{{$foo}}default{{/foo}} {{$bar}}{{<p2}}{{/p2}}{{/bar}}\","
         "\"p2\":\"{{$foo}}p2{{/foo}} {{<p}}{{$bar}}stop{{/bar}}{{/p}}\"}",
         "override override override stop"},
        {"multi-level: the top wins", "{{<p}}{{$a}}c{{/a}}{{/p}}", "{}",
         "{\"p\":\"{{<o}}{{$a}}p{{/a}}{{/o}}\",\"o\":\"{{<g}}{{$a}}o{{/a}}{{/g}}\","
         "\"g\":\"{{$a}}g{{/a}}\"}",
         "c"},
        {"multi-level without child override", "{{<p}}{{/p}}", "{}",
         "{\"p\":\"{{<o}}{{$a}}p{{/a}}{{/o}}\",\"o\":\"{{<g}}{{$a}}o{{/a}}{{/g}}\","
         "\"g\":\"{{$a}}g{{/a}}\"}",
         "p"},
        {"text inside parent is ignored", "{{<p}} junk {{$f}}hmm{{/f}} junk {{/p}}", "{}",
         "{\"p\":\"{{$f}}default{{/f}}\"}", "hmm"},
        {"block scope is the parent's", "{{<p}}{{$b}}I say {{fruit}}.{{/b}}{{/p}}",
         "{\"fruit\":\"apples\",\"nested\":{\"fruit\":\"bananas\"}}",
         "{\"p\":\"{{#nested}}{{$b}}You say {{fruit}}.{{/b}}{{/nested}}\"}", "I say bananas."},
        {"layout with standalone blocks", "{{<base}}\n{{$body}}\n<p>Hi</p>\n{{/body}}\n{{/base}}\n",
         "{}", "{\"base\":\"<html>\\n{{$body}}{{/body}}\\n</html>\\n\"}",
         "<html>\n<p>Hi</p>\n</html>\n"},
        {"a parent and its end on one line are standalone together", "{{<p}}{{/p}}\n", "{}",
         "{\"p\":\"{{$f}}default{{/f}}\"}", "default"},
        {"override after a parent tag on the same line", "{{<p}}{{$b}}\nnew\n\n:)\n{{/b}}{{/p}}", "{}",
         "{\"p\":\"{{$b}}old{{/b}}\"}", "new\n\n:)\n"},
        {"standalone parent is indented", "Hi,\n  {{<p}}{{/p}}\n", "{}", "{\"p\":\"one\\ntwo\\n\"}",
         "Hi,\n  one\n  two\n"},
        {"a block and its end on one line are standalone", "{{<p}}{{$b}}\nx\ny{{/b}}\n{{/p}}\n", "{}",
         "{\"p\":\"Hi,\\n  {{$b}}{{/b}}\\n\"}", "Hi,\n  x\n  y\n"},
        {"override loses its indentation, takes the slot's", "{{<p}}{{$b}}\n    x\n    y\n{{/b}}{{/p}}\n",
         "{}", "{\"p\":\"Hi,\\n  {{$b}}\\n  {{/b}}\\n\"}", "Hi,\n  x\n  y\n"},
        {"slot indentation from its default content", "{{<p}}{{$b}}\nx\ny\n{{/b}}{{/p}}\n", "{}",
         "{\"p\":\"Hi,\\n{{$b}}\\n  default\\n{{/b}}\\n\"}", "Hi,\n  x\n  y\n"},
        {"nested blocks re-indented relative to theirs", "{{<p}}{{$n}}\nthree\n{{/n}}{{/p}}\n", "{}",
         "{\"p\":\"{{<g}}{{$b}}\\n  one\\n  {{$n}}\\n    two\\n  {{/n}}\\n{{/b}}{{/g}}\\n\","
         "\"g\":\"{{$b}}default{{/b}}\"}",
         "one\n  three\n"},
    };
    RUN(c);
}

/* ---- our rules ---------------------------------------------------------- */

static void expect_ok(mu_mode mode, const char *tmpl, const char *data, const char *want)
{
    char why[300] = "";
    char *out = run(mode, 0, tmpl, data, NULL, why, sizeof why);
    if (!out) {
        th_fail(__FILE__, __LINE__, "'%s' failed: %s", tmpl, why);
        return;
    }
    CHECK_STR(out, want);
    free(out);
}

static void expect_err(mu_mode mode, const char *tmpl, const char *data, const char *why_has)
{
    char why[300] = "";
    char *out = run(mode, 0, tmpl, data, NULL, why, sizeof why);
    if (out) {
        th_fail(__FILE__, __LINE__, "'%s' rendered \"%s\", want an error", tmpl, out);
        free(out);
        return;
    }
    if (!strstr(why, why_has))
        th_fail(__FILE__, __LINE__, "'%s': error \"%s\" lacks \"%s\"", tmpl, why, why_has);
}

TEST(template_escaping_is_by_part)
{
    const char *d = "{\"x\":\"<b>Tom & 'Jerry' \\\"T\\\"</b>\"}";
    expect_ok(MU_HTML, "<p>{{x}}</p>", d,
              "<p>&lt;b&gt;Tom &amp; &#39;Jerry&#39; &quot;T&quot;&lt;/b&gt;</p>");
    expect_ok(MU_HTML, "<p>{{{x}}}</p>", d, "<p><b>Tom & 'Jerry' \"T\"</b></p>");
    expect_ok(MU_TEXT, "Hi {{x}}", d, "Hi <b>Tom & 'Jerry' \"T\"</b>");
    expect_err(MU_TEXT, "Hi {{{x}}}", d, "only allowed in the HTML part");
    expect_err(MU_TEXT, "Hi {{& x}}", d, "only allowed in the HTML part");
    /* already-escaped data is escaped again: it is text, not markup */
    expect_ok(MU_HTML, "{{x}}", "{\"x\":\"&amp;\"}", "&amp;amp;");
    expect_ok(MU_TEXT, "{{x}}", "{\"x\":\"&amp; <\"}", "&amp; <");
}

TEST(template_strict_variables)
{
    expect_err(MU_TEXT, "line one\nHi {{user.name}}", "{\"user\":{}}",
               "t:2: missing variable 'user.name'");
    expect_err(MU_HTML, "{{x}}", "{}", "missing variable 'x'");
    expect_ok(MU_HTML, "[{{x}}]", "{\"x\":null}", "[]"); /* present, null */
    expect_ok(MU_TEXT, "{{#opt}}never{{/opt}}ok", "{}", "ok"); /* sections may be absent */
    expect_err(MU_TEXT, "{{o}}", "{\"o\":{}}", "is an object, not a value");
    expect_err(MU_TEXT, "{{#a}}", "{}", "'a' is never closed");
    expect_err(MU_TEXT, "{{#a}}{{/b}}", "{}", "does not match");
    expect_err(MU_TEXT, "{{a", "{}", "unclosed tag");
    expect_err(MU_TEXT, "{{=a=}}", "{}", "bad set-delimiter");
    char why[200];
    char *out = run(MU_TEXT, 1, "[{{x}}]", "{}", NULL, why, sizeof why);
    CHECK_STR(out, "[]");
    free(out);
}

TEST(template_html_contexts)
{
    const char *u = "{\"u\":\"https://e.example/?a=1&b=2\",\"j\":\"javascript:alert(1)\","
                    "\"J\":\" JaVaScRiPt:alert(1)\",\"m\":\"mailto:a@e.example\","
                    "\"d\":\"data:text/html,x\",\"id\":\"42\",\"q\":\"\\\"><img src=x onerror=alert(1)>\"}";
    expect_ok(MU_HTML, "<a href=\"{{u}}\">x</a>", u,
              "<a href=\"https://e.example/?a=1&amp;b=2\">x</a>");
    expect_ok(MU_HTML, "<a href='{{m}}'>x</a>", u, "<a href='mailto:a@e.example'>x</a>");
    expect_err(MU_HTML, "<a href=\"{{j}}\">x</a>", u, "must give an http, https or mailto URL");
    expect_err(MU_HTML, "<a href=\"{{J}}\">x</a>", u, "must give an http, https or mailto URL");
    expect_err(MU_HTML, "<img src=\"{{d}}\">", u, "must give an http, https or mailto URL");
    expect_err(MU_HTML, "<a href=\"java{{id}}\">x</a>", "{\"id\":\"script:x\"}",
               "must give an http");
    /* the template's own scheme, path or query before the value is fine */
    expect_ok(MU_HTML, "<a href=\"https://e.example/u/{{id}}\">x</a>", u,
              "<a href=\"https://e.example/u/42\">x</a>");
    expect_ok(MU_HTML, "<a href=\"/orders/{{id}}\">x</a>", u, "<a href=\"/orders/42\">x</a>");
    expect_ok(MU_HTML, "<a title=\"{{q}}\">x</a>", u,
              "<a title=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\">x</a>");
    expect_err(MU_HTML, "<a href={{u}}>x</a>", u, "unquoted attribute");
    expect_err(MU_HTML, "<td class=x{{id}}>", u, "unquoted attribute");
    expect_err(MU_HTML, "<a {{id}}>x</a>", u, "inside a tag");
    expect_err(MU_HTML, "<{{id}}>", u, "inside a tag");
    expect_err(MU_HTML, "<a onclick=\"go({{id}})\">x</a>", u, "onclick attribute");
    expect_err(MU_HTML, "<p style=\"color: {{id}}\">x</p>", u, "style attribute");
    expect_err(MU_HTML, "<script>var a = '{{id}}';</script>", u, "inside <script>");
    expect_err(MU_HTML, "<style>p { color: {{id}} }</style>", u, "inside <style>");
    expect_ok(MU_HTML, "<script>1</script><p>{{id}}</p>", u, "<script>1</script><p>42</p>");
    expect_ok(MU_HTML, "<!-- {{id}} --><p>{{id}}</p>", u, "<!-- 42 --><p>42</p>");
    expect_err(MU_HTML, "<a title=\"{{{q}}}\">x</a>", u, "unescaped output");
    expect_err(MU_HTML, "<a href=\"{{u}}\" {{{id}}}>", u, "inside a tag");
    /* raw HTML between tags is followed: a value after it is still checked */
    expect_err(MU_HTML, "{{{r}}}{{id}}\">", "{\"r\":\"<a href=\\\"\",\"id\":\"x\"}",
               "must give an http");
    expect_ok(MU_HTML, "<p class=\"a {{id}}\">{{{r}}}</p>", "{\"r\":\"<b>b</b>\",\"id\":\"1\"}",
              "<p class=\"a 1\"><b>b</b></p>");
    /* every branch is checked, also those the data leaves out */
    expect_err(MU_HTML, "<p>\n{{#never}}<a href={{u}}>x</a>{{/never}}</p>", "{}",
               "t:2: {{u}} is inside an unquoted attribute value");
    expect_err(MU_HTML, "{{^shown}}<script>{{x}}</script>{{/shown}}", "{\"shown\":true}",
               "inside <script>");
    expect_ok(MU_HTML, "<p class=\"{{#a}}on{{/a}}{{^a}}off{{/a}}\">{{#l}}<i>{{.}}</i>{{/l}}</p>",
              "{\"a\":true,\"l\":[1]}", "<p class=\"on\"><i>1</i></p>");
    expect_ok(MU_HTML, "{{#u}}<a href=\"{{u}}\">x</a>{{/u}}", "{}", ""); /* URLs: with data only */
}

TEST(template_limits)
{
    /* nesting, recursion and output are bounded */
    char deep[64 * 8 + 64 * 8 + 8] = "";
    for (int i = 0; i < 70; i++)
        strcat(deep, "{{#a}}");
    expect_err(MU_SPEC, deep, "{}", "nested deeper");
    char why[300];
    char *out = run(MU_SPEC, 1, "{{>p}}", "{}", "{\"p\":\"x{{>p}}\"}", why, sizeof why);
    CHECK(out == NULL);
    CHECK(strstr(why, "partials nested deeper") != NULL);
    free(out);
    /* an override holding a block of its own name does not recurse forever */
    out = run(MU_SPEC, 1, "{{<p}}{{$b}}x{{$b}}y{{/b}}{{/b}}{{/p}}", "{}", "{\"p\":\"{{$b}}{{/b}}\"}", why,
              sizeof why);
    CHECK(out == NULL);
    CHECK(strstr(why, "blocks nested deeper") != NULL);
    free(out);
}

static void text_is(const char *html, const char *want)
{
    size_t n;
    char *t = mu_html_to_text(html, strlen(html), &n);
    CHECK_STR(t, want);
    CHECK_INT(n, strlen(want));
    free(t);
}

TEST(template_html_to_text)
{
    text_is("<html><head><title>T</title><style>p{}</style></head><body><p>Hello</p></body>",
            "Hello\n");
    text_is("<script>x()</script><p>a</p><p>b</p>", "a\n\nb\n");
    text_is("one<br>two<br/>three", "one\ntwo\nthree\n");
    text_is("<ul><li>One</li><li>Two</li></ul>", "- One\n- Two\n");
    text_is("<a href=\"https://e.example/x\">Open</a>", "Open (https://e.example/x)\n");
    text_is("<a href=\"https://e.example/\">https://e.example/</a>", "https://e.example/\n");
    text_is("<a href=\"mailto:a@e.example\">a@e.example</a>", "a@e.example\n");
    text_is("<a href=\"#top\">Top</a>", "Top\n");
    text_is("<img src=\"x.png\" alt=\"Acme logo\"> <img src=\"s.gif\">", "Acme logo\n");
    text_is("&lt;b&gt; &amp; &quot;q&quot; &#233;&#xe9; &euro;&nbsp;5 &copy; &bogus;",
            "<b> & \"q\" \xc3\xa9\xc3\xa9 \xe2\x82\xac 5 \xc2\xa9 &bogus;\n");
    text_is("<div>a</div><div>b</div>", "a\nb\n");
    text_is("<table><tr><td>Widget</td><td>2</td></tr><tr><td>Gadget</td><td>1</td></tr></table>",
            "Widget 2\nGadget 1\n");
    text_is("<h1>Title</h1>text\n  with   spaces", "Title\n\ntext with spaces\n");
    text_is("<!-- hidden --><p>shown</p>", "shown\n");
    text_is("", "");
    /* wrapped at 76; a long word stays whole */
    text_is("<p>aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp "
            "qqqq</p>",
            "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo\n"
            "pppp qqqq\n");
    text_is("<li>aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo "
            "pppp</li>",
            "- aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo\n"
            "  pppp\n");
    text_is("<pre>a\n  b</pre>", "a\n  b\n");
    text_is("D&eacute;j&agrave; &Eacute;t&eacute; &szlig;", "D\xc3\xa9j\xc3\xa0 \xc3\x89t\xc3\xa9 \xc3\x9f\n");
}
