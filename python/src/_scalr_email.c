/*
 * _scalr_email.c - scalr_email._native, the thin C layer under the Python
 * package.  scalr_email/__init__.py normalises the arguments (lists become
 * tuples, paths become bytes, bytearrays become bytes) and turns the result
 * tuple into a return value or an exception; this file only converts the
 * normalised objects into a scalr_email_message and calls the library.
 *
 * Everything is converted while the GIL is held.  The C strings point into
 * the str/bytes objects of the argument tuples, which the caller keeps
 * alive (and which are immutable) for the whole call; then the GIL is
 * released for the network part of the send only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "mime/compose.h" /* the library is compiled in: se_compose gives the envelope */
#include "scalr_email.h"

/* Names of scalr_email_code as Python sees them (EmailError.code). */
static const char *code_name(scalr_email_code code)
{
    switch (code) {
    case SCALR_EMAIL_OK: return "OK";
    case SCALR_EMAIL_ENOTCONFIGURED: return "ENOTCONFIGURED";
    case SCALR_EMAIL_ECONFIG: return "ECONFIG";
    case SCALR_EMAIL_EINVAL: return "EINVAL";
    case SCALR_EMAIL_EFILE: return "EFILE";
    case SCALR_EMAIL_EREJECTED: return "EREJECTED";
    case SCALR_EMAIL_ETRANSIENT: return "ETRANSIENT";
    case SCALR_EMAIL_ETOOBIG: return "ETOOBIG";
    case SCALR_EMAIL_EUNSUPPORTED: return "EUNSUPPORTED";
    case SCALR_EMAIL_ECONNECT: return "ECONNECT";
    case SCALR_EMAIL_ETLS: return "ETLS";
    case SCALR_EMAIL_EINSECURE: return "EINSECURE";
    case SCALR_EMAIL_EAUTH: return "EAUTH";
    case SCALR_EMAIL_ETIMEOUT: return "ETIMEOUT";
    case SCALR_EMAIL_EPROTOCOL: return "EPROTOCOL";
    case SCALR_EMAIL_EIO: return "EIO";
    case SCALR_EMAIL_ENOMEM: return "ENOMEM";
    case SCALR_EMAIL_ESTORE: return "ESTORE";
    case SCALR_EMAIL_ENOTFOUND: return "ENOTFOUND";
    }
    return "EUNKNOWN";
}

/* The C arrays built from the arguments.  Free with message_free. */
typedef struct conv {
    scalr_email_message msg;
    const char **to, **cc, **bcc;
    scalr_email_header *headers;
    scalr_email_attachment *attachments;
    int check_body_nul; /* 0 only in tests of the library's own NUL check */
} conv;

static void conv_free(conv *c)
{
    free(c->to);
    free(c->cc);
    free(c->bcc);
    free(c->headers);
    free(c->attachments);
    memset(c, 0, sizeof *c);
}

/*
 * An input the library cannot take (a NUL inside a string): fill err as the
 * library would for EINVAL, so Python raises InvalidMessageError.
 */
static int refuse(scalr_email_error *err, const char *field)
{
    memset(err, 0, sizeof *err);
    err->code = SCALR_EMAIL_EINVAL;
    snprintf(err->stage, sizeof err->stage, "COMPOSE");
    snprintf(err->message, sizeof err->message, "%s contains a NUL character", field);
    return -1;
}

/*
 * str (or None when allowed) -> UTF-8 pointer owned by the object.
 * Returns 0, -1 with err filled (EINVAL), or -2 with a Python exception set.
 */
static int text(PyObject *o, const char *field, int nul_ok, const char **out, size_t *len,
                scalr_email_error *err)
{
    *out = NULL;
    if (len)
        *len = 0;
    if (o == Py_None)
        return 0;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.80s", field, Py_TYPE(o)->tp_name);
        return -2;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) {
        /* Lone surrogates cannot be UTF-8: a bad input, not a crash. */
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -2;
        PyErr_Clear();
        memset(err, 0, sizeof *err);
        err->code = SCALR_EMAIL_EINVAL;
        snprintf(err->stage, sizeof err->stage, "COMPOSE");
        snprintf(err->message, sizeof err->message, "%s is not valid Unicode (lone surrogate)",
                 field);
        return -1;
    }
    if (!nul_ok && memchr(s, '\0', (size_t)n))
        return refuse(err, field);
    *out = s;
    if (len)
        *len = (size_t)n;
    return 0;
}

/* bytes (or None) -> pointer owned by the object. */
static int bytes(PyObject *o, const char *field, int nul_ok, const char **out, size_t *len,
                 scalr_email_error *err)
{
    *out = NULL;
    *len = 0;
    if (o == Py_None)
        return 0;
    if (!PyBytes_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.80s", field, Py_TYPE(o)->tp_name);
        return -2;
    }
    const char *s = PyBytes_AS_STRING(o);
    size_t n = (size_t)PyBytes_GET_SIZE(o);
    if (!nul_ok && memchr(s, '\0', n))
        return refuse(err, field);
    *out = s;
    *len = n;
    return 0;
}

/* tuple of str (or None) -> NULL-terminated array, or NULL for None. */
static int str_list(PyObject *o, const char *field, const char ***out, scalr_email_error *err)
{
    *out = NULL;
    if (o == Py_None)
        return 0;
    if (!PyTuple_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple", field);
        return -2;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(o);
    const char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return -2;
    }
    *out = v;
    for (Py_ssize_t i = 0; i < n; i++) {
        int rc = text(PyTuple_GET_ITEM(o, i), field, 0, &v[i], NULL, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* tuple of (name, value) -> array ending with a NULL name. */
static int header_list(PyObject *o, conv *c, scalr_email_error *err)
{
    if (o == Py_None)
        return 0;
    if (!PyTuple_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "headers must be a tuple");
        return -2;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(o);
    c->headers = calloc((size_t)n + 1, sizeof *c->headers);
    if (!c->headers) {
        PyErr_NoMemory();
        return -2;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(o, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair");
            return -2;
        }
        int rc = text(PyTuple_GET_ITEM(pair, 0), "header name", 0, &c->headers[i].name, NULL, err);
        if (!rc)
            rc =
                text(PyTuple_GET_ITEM(pair, 1), "header value", 0, &c->headers[i].value, NULL, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* tuple of (path bytes|None, data bytes|None, filename|None, content_type|None
 * [, content_id|None]): a content ID makes the part inline. */
static int attachment_list(PyObject *o, conv *c, scalr_email_error *err)
{
    if (o == Py_None)
        return 0;
    if (!PyTuple_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "attachments must be a tuple");
        return -2;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(o);
    c->attachments = calloc((size_t)n + 1, sizeof *c->attachments);
    if (!c->attachments) {
        PyErr_NoMemory();
        return -2;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = PyTuple_GET_ITEM(o, i);
        if (!PyTuple_Check(a) || (PyTuple_GET_SIZE(a) != 4 && PyTuple_GET_SIZE(a) != 5)) {
            PyErr_SetString(PyExc_TypeError, "each attachment must be (path, data, filename, "
                                             "content_type[, content_id])");
            return -2;
        }
        scalr_email_attachment *at = &c->attachments[i];
        const char *data;
        size_t size, ignored;
        int rc = bytes(PyTuple_GET_ITEM(a, 0), "attachment path", 0, &at->path, &ignored, err);
        if (!rc)
            rc = bytes(PyTuple_GET_ITEM(a, 1), "attachment data", 1, &data, &size, err);
        if (!rc)
            rc = text(PyTuple_GET_ITEM(a, 2), "attachment filename", 0, &at->filename, NULL, err);
        if (!rc)
            rc = text(PyTuple_GET_ITEM(a, 3), "attachment content type", 0, &at->content_type, NULL,
                      err);
        if (!rc && PyTuple_GET_SIZE(a) == 5)
            rc = text(PyTuple_GET_ITEM(a, 4), "inline content ID", 0, &at->content_id, NULL, err);
        if (rc)
            return rc;
        at->data = data;
        at->size = size;
        if (!at->path && !at->data) {
            PyErr_SetString(PyExc_TypeError, "an attachment needs a path or data");
            return -2;
        }
    }
    return 0;
}

/* None, or (calendar, envelope_from, dsn_notify, dsn_ret, dsn_envid),
 * each str or None. */
static int options(PyObject *o, scalr_email_message *m, scalr_email_error *err)
{
    if (o == Py_None)
        return 0;
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 5) {
        PyErr_SetString(PyExc_TypeError, "options must be a 5-tuple");
        return -2;
    }
    static const char *const names[] = {"calendar", "envelope_from", "dsn_notify", "dsn_ret",
                                        "dsn_envid"};
    const char **dst[] = {&m->calendar, &m->envelope_from, &m->dsn_notify, &m->dsn_ret,
                          &m->dsn_envid};
    for (int i = 0; i < 5; i++) {
        int rc = text(PyTuple_GET_ITEM(o, i), names[i], 0, dst[i], NULL, err);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * Fill c from the eleven normalised arguments.  0: ready; -1: err says why
 * (EINVAL); -2: a Python exception is set.
 */
static int convert(PyObject *const *a, conv *c, scalr_email_error *err)
{
    scalr_email_message *m = &c->msg;
    size_t body_len, html_len;
    int rc;
    if ((rc = str_list(a[0], "to", &c->to, err)) ||
        (rc = text(a[1], "subject", 0, &m->subject, NULL, err)) ||
        (rc = text(a[2], "body", !c->check_body_nul, &m->body, &body_len, err)) ||
        (rc = text(a[3], "body_html", !c->check_body_nul, &m->body_html, &html_len, err)) ||
        (rc = text(a[4], "sender", 0, &m->sender, NULL, err)) ||
        (rc = str_list(a[5], "cc", &c->cc, err)) || (rc = str_list(a[6], "bcc", &c->bcc, err)) ||
        (rc = text(a[7], "reply_to", 0, &m->reply_to, NULL, err)) ||
        (rc = header_list(a[8], c, err)) || (rc = attachment_list(a[9], c, err)) ||
        (rc = options(a[10], m, err)))
        return rc;
    m->to = c->to;
    m->cc = c->cc;
    m->bcc = c->bcc;
    m->headers = c->headers;
    m->attachments = c->attachments;
    /* Lengths let the library see (and refuse) a NUL we let through. */
    m->body_len = body_len;
    m->body_html_len = html_len;
    return 0;
}

static PyObject *decode(const char *s)
{
    /* Server text may be any bytes; truncation may split a character. */
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strnlen(s, 1024), "replace");
}

/* (code, smtp_code, enhanced, stage, recipient, server_text, message, message_id) */
static PyObject *result(scalr_email_code rc, const scalr_email_error *e)
{
    return Py_BuildValue("(siNNNNNN)", code_name(rc), e->smtp_code, decode(e->enhanced),
                         decode(e->stage), decode(e->recipient), decode(e->server_text),
                         decode(e->message), decode(e->message_id));
}

static const char *const arg_names[] = {"to",  "subject",  "body",    "body_html",   "sender", "cc",
                                        "bcc", "reply_to", "headers", "attachments", "options"};
#define N_ARGS 11 /* the last, options, may be left out */

/* Parse the ten arguments (positional or keyword) plus one extra keyword. */
static int parse(PyObject *args, PyObject *kw, const char *fn, const char *extra, PyObject **a,
                 PyObject **extra_val)
{
    char *names[N_ARGS + 2];
    for (int i = 0; i < N_ARGS; i++)
        names[i] = (char *)arg_names[i];
    names[N_ARGS] = (char *)extra;
    names[N_ARGS + 1] = NULL;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "OOOOOOOOOO|O$O:%s", fn);
    a[10] = Py_None;
    return PyArg_ParseTupleAndKeywords(args, kw, fmt, names, &a[0], &a[1], &a[2], &a[3], &a[4],
                                       &a[5], &a[6], &a[7], &a[8], &a[9], &a[10], extra_val);
}

PyDoc_STRVAR(
    send_doc,
    "send(to, subject, body, body_html, sender, cc, bcc, reply_to, headers, attachments,\n"
    "     options=None, *, check_body_nul=True, profile=None, config=None) -> tuple\n\n"
    "Internal: send one message configured from the SMTP_* environment variables,\n"
    "a sender profile (profile=NAME), or config=(host, port, username, password, from,\n"
    "tls, timeout_ms).\n"
    "Arguments must already be normalised by scalr_email.send().  Returns\n"
    "(code, smtp_code, enhanced, stage, recipient, server_text, message, message_id);\n"
    "code is 'OK' on success.  The GIL is released while the library talks to the server.");

/*
 * config=(host, port, username, password, from, tls, timeout_ms): a
 * configuration given by the caller (the Django backend's EMAIL_* settings)
 * in place of the SMTP_* variables.  tls is "starttls", "implicit" or
 * "none".  -1 with an exception set on bad types.
 */

static int config_from_tuple(PyObject *o, scalr_email_config *cfg)
{
    const char *tls = NULL;
    unsigned int port = 0, timeout_ms = 0;
    memset(cfg, 0, sizeof *cfg);
    if (!PyArg_ParseTuple(o, "zIzzzsI:config", &cfg->host, &port, &cfg->username, &cfg->password,
                          &cfg->from, &tls, &timeout_ms))
        return -1;
    cfg->port = port;
    cfg->timeout_ms = timeout_ms;
    if (!strcmp(tls, "starttls"))
        cfg->tls = SCALR_EMAIL_TLS_STARTTLS;
    else if (!strcmp(tls, "implicit"))
        cfg->tls = SCALR_EMAIL_TLS_IMPLICIT;
    else if (!strcmp(tls, "none"))
        cfg->tls = SCALR_EMAIL_TLS_NONE;
    else {
        PyErr_SetString(PyExc_ValueError, "config tls must be starttls, implicit or none");
        return -1;
    }
    return 0;
}
static int parse_extras(PyObject *args, PyObject *kw, const char *fn, const char *const *extra,
                        int n, PyObject **a, PyObject **vals);

static PyObject *native_send(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static const char *const extra[] = {"check_body_nul", "profile", "config"};
    PyObject *a[N_ARGS];
    PyObject *v[3] = {Py_True, Py_None, Py_None};
    if (!parse_extras(args, kw, "send", extra, 3, a, v))
        return NULL;
    PyObject *check = v[0], *config = v[2];
    const char *profile = NULL;
    if (v[1] != Py_None) {
        if (!PyUnicode_Check(v[1])) {
            PyErr_SetString(PyExc_TypeError, "profile must be str or None");
            return NULL;
        }
        profile = PyUnicode_AsUTF8(v[1]);
        if (!profile)
            return NULL;
    }
    conv c = {0};
    c.check_body_nul = PyObject_IsTrue(check);
    if (c.check_body_nul < 0)
        return NULL;

    scalr_email_error err;
    memset(&err, 0, sizeof err);
    scalr_email_code rc;
    int cr = convert(a, &c, &err);
    if (cr == -2) {
        conv_free(&c);
        return NULL;
    }
    if (cr == -1) {
        conv_free(&c);
        return result(err.code, &err);
    }

    /* The environment is read with the GIL held, so that a Python thread
     * changing os.environ cannot race with getenv(); only the conversation
     * with the server runs without it. */
    scalr_email_client *client = NULL;
    if (config != Py_None) {
        scalr_email_config cfg;
        if (profile) {
            conv_free(&c);
            PyErr_SetString(PyExc_TypeError, "profile and config cannot go together");
            return NULL;
        }
        if (config_from_tuple(config, &cfg) < 0) {
            conv_free(&c);
            return NULL;
        }
        rc = scalr_email_client_new(&client, &cfg, &err);
    } else if (profile) {
        rc = scalr_email_client_from_profile(&client, profile, NULL, NULL, NULL, &err);
    } else {
        rc = scalr_email_client_from_env(&client, NULL, NULL, NULL, &err);
    }
    if (rc == SCALR_EMAIL_OK) {
        Py_BEGIN_ALLOW_THREADS rc = scalr_email_client_send(client, &c.msg, &err);
        Py_END_ALLOW_THREADS scalr_email_client_free(client);
    }
    conv_free(&c);
    return result(rc, &err);
}

PyDoc_STRVAR(
    compose_doc,
    "compose(to, subject, body, body_html, sender, cc, bcc, reply_to, headers, attachments,\n"
    "        options=None, *, default_from=None, profile=None) -> tuple\n\n"
    "Internal: compose the message bytes without sending, exactly as send() would send\n"
    "them: the configuration's (or profile=NAME's) SMTP_FROM, allowed domains and DKIM\n"
    "signature (SMTP_DKIM_*).  default_from without profile: that From, nothing read\n"
    "from the configuration, unsigned.  Returns (result_tuple, data) where data is\n"
    "bytes, or None on failure.");

static PyObject *native_compose(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static const char *const extra[] = {"default_from", "profile"};
    PyObject *a[N_ARGS];
    PyObject *v[2] = {Py_None, Py_None};
    if (!parse_extras(args, kw, "compose", extra, 2, a, v))
        return NULL;
    conv c = {0};
    c.check_body_nul = 1;
    scalr_email_error err;
    memset(&err, 0, sizeof err);
    const char *from = NULL, *profile = NULL;
    int cr = convert(a, &c, &err);
    if (!cr)
        cr = text(v[0], "default_from", 0, &from, NULL, &err);
    if (!cr && v[1] != Py_None) {
        if (!PyUnicode_Check(v[1])) {
            PyErr_SetString(PyExc_TypeError, "profile must be str or None");
            cr = -2;
        } else if (!(profile = PyUnicode_AsUTF8(v[1]))) {
            cr = -2;
        }
    }
    if (cr == -2) {
        conv_free(&c);
        return NULL;
    }
    if (cr == -1) {
        conv_free(&c);
        return Py_BuildValue("(NO)", result(err.code, &err), Py_None);
    }
    char *out = NULL;
    size_t out_len = 0;
    scalr_email_code rc;
    if (from && !profile) {
        Py_BEGIN_ALLOW_THREADS /* attachments may be read from disk */
            rc = scalr_email_compose(&c.msg, from, &out, &out_len, &err);
        Py_END_ALLOW_THREADS
    } else {
        /* As it would be sent.  The configuration is read from the
         * environment, so the GIL stays held (as native_send makes its
         * client): no Python thread changes os.environ meanwhile. */
        rc = scalr_email_compose_configured(&c.msg, profile, NULL, &out, &out_len, &err);
    }
    conv_free(&c);
    PyObject *data = Py_None;
    Py_INCREF(data);
    if (rc == SCALR_EMAIL_OK) {
        Py_DECREF(data);
        data = PyBytes_FromStringAndSize(out, (Py_ssize_t)out_len);
        free(out);
        if (!data)
            return NULL;
    }
    return Py_BuildValue("(NN)", result(rc, &err), data);
}

PyDoc_STRVAR(render_doc, "render(name, data_json, locale, root, allow_missing) -> tuple\n\n"
                         "Internal: scalr_email_template_render.  Returns (result_tuple, subject,\n"
                         "body, body_html), the three None on failure.");

static PyObject *native_render(PyObject *self, PyObject *args)
{
    (void)self;
    const char *name, *data, *locale, *root;
    Py_ssize_t data_len;
    int allow_missing;
    if (!PyArg_ParseTuple(args, "sy#zzp:render", &name, &data, &data_len, &locale, &root,
                          &allow_missing))
        return NULL;
    scalr_email_error err;
    memset(&err, 0, sizeof err);
    scalr_email_rendered r;
    scalr_email_template_opts o = {.root = root, .locale = locale, .allow_missing = allow_missing};
    scalr_email_code rc;
    Py_BEGIN_ALLOW_THREADS /* template files are read from disk */
        rc = scalr_email_template_render(name, data, (size_t)data_len, &o, &r, &err);
    Py_END_ALLOW_THREADS if (rc != SCALR_EMAIL_OK) return Py_BuildValue("(NOOO)", result(rc, &err),
                                                                        Py_None, Py_None, Py_None);
    PyObject *out =
        Py_BuildValue("(NNNN)", result(rc, &err),
                      PyUnicode_DecodeUTF8(r.subject, (Py_ssize_t)strlen(r.subject), "replace"),
                      PyUnicode_DecodeUTF8(r.body, (Py_ssize_t)r.body_len, "replace"),
                      PyUnicode_DecodeUTF8(r.body_html, (Py_ssize_t)r.body_html_len, "replace"));
    scalr_email_rendered_free(&r);
    return out;
}

/* Parse the ten arguments plus n keyword-only extras (all optional). */
static int parse_extras(PyObject *args, PyObject *kw, const char *fn, const char *const *extra,
                        int n, PyObject **a, PyObject **vals)
{
    enum { MAX_EXTRA = 9 };
    if (n > MAX_EXTRA) {
        PyErr_SetString(PyExc_SystemError, "too many keyword arguments");
        return 0;
    }
    char *names[N_ARGS + MAX_EXTRA + 1];
    for (int i = 0; i < N_ARGS; i++)
        names[i] = (char *)arg_names[i];
    for (int i = 0; i < n; i++)
        names[N_ARGS + i] = (char *)extra[i];
    names[N_ARGS + n] = NULL;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "OOOOOOOOOO|O$%.*s:%s", n, "OOOOOOOOO", fn);
    a[10] = Py_None;
    PyObject **p[N_ARGS + MAX_EXTRA];
    for (int i = 0; i < N_ARGS; i++)
        p[i] = &a[i];
    for (int i = 0; i < n; i++)
        p[N_ARGS + i] = &vals[i];
    for (int i = n; i < MAX_EXTRA; i++)
        p[N_ARGS + i] = NULL;
    return PyArg_ParseTupleAndKeywords(args, kw, fmt, names, p[0], p[1], p[2], p[3], p[4], p[5],
                                       p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14],
                                       p[15], p[16], p[17], p[18], p[19]);
}

PyDoc_STRVAR(
    envelope_doc,
    "envelope(to, subject, body, body_html, sender, cc, bcc, reply_to, headers, attachments,\n"
    "         *, default_from=None) -> tuple\n\n"
    "Internal: compose the message as the queue stores it.  Returns\n"
    "(result_tuple, data, message_id, mail_from, rcpt) where data is the exact\n"
    "bytes (CRLF, not dot-stuffed), rcpt a tuple of addr-specs (to, cc, bcc);\n"
    "data is None on failure.");

static PyObject *native_envelope(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static const char *const extra[] = {"default_from"};
    PyObject *a[N_ARGS];
    PyObject *from_obj = Py_None;
    if (!parse_extras(args, kw, "envelope", extra, 1, a, &from_obj))
        return NULL;
    conv c = {0};
    c.check_body_nul = 1;
    scalr_email_error err;
    memset(&err, 0, sizeof err);
    const char *from = NULL;
    int cr = convert(a, &c, &err);
    if (!cr)
        cr = text(from_obj, "default_from", 0, &from, NULL, &err);
    if (cr == -2) {
        conv_free(&c);
        return NULL;
    }
    if (cr == -1) {
        conv_free(&c);
        return Py_BuildValue("(NOOOO)", result(err.code, &err), Py_None, Py_None, Py_None, Py_None);
    }
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc;
    /* No deferred parts (defer_over 0): every attachment is read now, so
     * the stored bytes are the whole message. */
    Py_BEGIN_ALLOW_THREADS rc = se_compose(&c.msg, from, NULL, &comp, &err);
    Py_END_ALLOW_THREADS conv_free(&c);
    if (rc != SCALR_EMAIL_OK) {
        se_composed_free(&comp);
        return Py_BuildValue("(NOOOO)", result(rc, &err), Py_None, Py_None, Py_None, Py_None);
    }
    snprintf(err.message_id, sizeof err.message_id, "%s", comp.message_id);
    PyObject *rcpt = PyTuple_New((Py_ssize_t)comp.n_rcpt);
    PyObject *out = NULL;
    if (rcpt) {
        size_t i;
        for (i = 0; i < comp.n_rcpt; i++) {
            PyObject *r = PyUnicode_FromString(comp.rcpt[i]);
            if (!r)
                break;
            PyTuple_SET_ITEM(rcpt, (Py_ssize_t)i, r);
        }
        if (i == comp.n_rcpt)
            out = Py_BuildValue("(Ny#ssO)", result(rc, &err), comp.data.data,
                                (Py_ssize_t)comp.data.len, comp.message_id, comp.mail_from, rcpt);
        Py_DECREF(rcpt);
    }
    se_composed_free(&comp);
    return out;
}

/* A long long from an int or None (0). */
static int ll_arg(PyObject *o, const char *field, long long *out)
{
    *out = 0;
    if (o == Py_None)
        return 0;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be int, not %.80s", field, Py_TYPE(o)->tp_name);
        return -2;
    }
    *out = PyLong_AsLongLong(o);
    return (*out == -1 && PyErr_Occurred()) ? -2 : 0;
}

PyDoc_STRVAR(
    enqueue_doc,
    "enqueue(to, subject, body, body_html, sender, cc, bcc, reply_to, headers, attachments,\n"
    "        *, default_from=None, queue=None, send_at_ms=None, lane=0, tenant=None,\n"
    "        key=None, expire_in_ms=None, max_attempts=None, profile=None) -> tuple\n\n"
    "Internal: scalr_email_queue_add on the queue named by the URL queue (None:\n"
    "$SCALR_EMAIL_QUEUE, else sqlite:scalr-email-queue.db).  Returns\n"
    "(result_tuple, id, existed); id is None on failure.  The GIL is released\n"
    "while the queue is opened and written.");

static PyObject *native_enqueue(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static const char *const extra[] = {"default_from", "queue",        "send_at_ms",
                                        "lane",         "tenant",       "key",
                                        "expire_in_ms", "max_attempts", "profile"};
    PyObject *a[N_ARGS];
    PyObject *v[9] = {Py_None, Py_None, Py_None, Py_None, Py_None,
                      Py_None, Py_None, Py_None, Py_None};
    if (!parse_extras(args, kw, "enqueue", extra, 9, a, v))
        return NULL;
    conv c = {0};
    c.check_body_nul = 1;
    scalr_email_error err;
    memset(&err, 0, sizeof err);
    const char *from = NULL, *url = NULL;
    scalr_email_enqueue_opts o;
    memset(&o, 0, sizeof o);
    long long lane = 0, max_att = 0;
    int cr = convert(a, &c, &err);
    if (!cr)
        cr = text(v[0], "default_from", 0, &from, NULL, &err);
    if (!cr)
        cr = text(v[1], "queue", 0, &url, NULL, &err);
    if (!cr)
        cr = ll_arg(v[2], "send_at_ms", &o.send_at_ms);
    if (!cr)
        cr = ll_arg(v[3], "lane", &lane);
    if (!cr)
        cr = text(v[4], "tenant", 0, &o.tenant, NULL, &err);
    if (!cr)
        cr = text(v[5], "idempotency_key", 0, &o.idempotency_key, NULL, &err);
    if (!cr)
        cr = ll_arg(v[6], "expire_in_ms", &o.expire_in_ms);
    if (!cr)
        cr = ll_arg(v[7], "max_attempts", &max_att);
    if (!cr)
        cr = text(v[8], "profile", 0, &o.profile, NULL, &err);
    if (cr == -2) {
        conv_free(&c);
        return NULL;
    }
    if (cr == -1) {
        conv_free(&c);
        return Py_BuildValue("(NOi)", result(err.code, &err), Py_None, 0);
    }
    o.lane = lane ? SCALR_EMAIL_LANE_BULK : SCALR_EMAIL_LANE_TRANSACTIONAL;
    o.max_attempts = max_att > 0 && max_att < 1000000 ? (unsigned)max_att : 0;

    scalr_email_code rc;
    long long id = 0;
    int existed = 0;
    /* url NULL: the library reads $SCALR_EMAIL_QUEUE.  Read it here, with
     * the GIL held, so a thread changing os.environ cannot race getenv(). */
    char *url_copy = NULL;
    if (!url) {
        const char *e = getenv("SCALR_EMAIL_QUEUE");
        url_copy = strdup(e && *e ? e : "sqlite:scalr-email-queue.db");
        if (!url_copy) {
            conv_free(&c);
            return PyErr_NoMemory();
        }
        url = url_copy;
    }
    Py_BEGIN_ALLOW_THREADS scalr_email_queue *q = NULL;
    rc = scalr_email_queue_open(&q, url, &err);
    if (rc == SCALR_EMAIL_OK) {
        rc = scalr_email_queue_add(q, &c.msg, from, &o, &id, &existed, &err);
        scalr_email_queue_close(q);
    }
    Py_END_ALLOW_THREADS free(url_copy);
    conv_free(&c);
    if (rc != SCALR_EMAIL_OK)
        return Py_BuildValue("(NOi)", result(rc, &err), Py_None, 0);
    return Py_BuildValue("(NLi)", result(rc, &err), id, existed);
}

PyDoc_STRVAR(queue_init_doc, "queue_init(url) -> tuple\n\n"
                             "Internal: open the queue named by url (creating or migrating its\n"
                             "tables) and close it.  Returns the result tuple.");

static PyObject *native_queue_init(PyObject *self, PyObject *arg)
{
    (void)self;
    scalr_email_error err;
    memset(&err, 0, sizeof err);
    const char *url;
    int cr = text(arg, "queue", 0, &url, NULL, &err);
    if (cr == -2)
        return NULL;
    if (cr == -1)
        return result(err.code, &err);
    char *copy = strdup(url);
    if (!copy)
        return PyErr_NoMemory();
    scalr_email_code rc;
    Py_BEGIN_ALLOW_THREADS scalr_email_queue *q = NULL;
    rc = scalr_email_queue_open(&q, copy, &err);
    if (rc == SCALR_EMAIL_OK)
        scalr_email_queue_close(q);
    Py_END_ALLOW_THREADS free(copy);
    return result(rc, &err);
}

/* The queue URL: the argument, else $SCALR_EMAIL_QUEUE (read with the GIL
 * held), else the default.  malloc'd; NULL with a Python exception set. */
static char *queue_url(PyObject *arg)
{
    const char *url = NULL;
    if (arg != Py_None) {
        if (!PyUnicode_Check(arg)) {
            PyErr_SetString(PyExc_TypeError, "queue must be a URL str");
            return NULL;
        }
        url = PyUnicode_AsUTF8(arg);
        if (!url)
            return NULL;
    } else {
        url = getenv("SCALR_EMAIL_QUEUE");
        if (!url || !*url)
            url = "sqlite:scalr-email-queue.db";
    }
    char *copy = strdup(url);
    if (!copy)
        PyErr_NoMemory();
    return copy;
}

static PyObject *none_ref(void)
{
    Py_RETURN_NONE;
}

static PyObject *opt_str(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return decode(s);
}

static PyObject *opt_ms(long long v)
{
    if (v <= 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(v);
}

/* One row as a dict; NULL with an exception set. */
static PyObject *item_dict(const scalr_email_queue_item *it)
{
    PyObject *rcpt = PyList_New(0);
    if (!rcpt)
        return NULL;
    const char *p = it->rcpt_to ? it->rcpt_to : "";
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        PyObject *r = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "replace");
        if (!r || PyList_Append(rcpt, r) < 0) {
            Py_XDECREF(r);
            Py_DECREF(rcpt);
            return NULL;
        }
        Py_DECREF(r);
        p += n + (nl != NULL);
    }
    return Py_BuildValue(
        "{s:L,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:L,s:i,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "id",
        it->id, "state", opt_str(it->state), "lane", opt_str(it->lane), "tenant",
        opt_str(it->tenant), "provider", opt_str(it->provider), "idempotency_key",
        opt_str(it->idempotency_key), "mail_from", opt_str(it->mail_from), "rcpt_to", rcpt,
        "message_id", opt_str(it->message_id), "size", it->size, "attempts", it->attempts,
        "max_attempts", it->max_attempts ? PyLong_FromLong(it->max_attempts) : none_ref(),
        "created_at", opt_ms(it->created_at), "run_at", opt_ms(it->run_at), "expire_at",
        opt_ms(it->expire_at), "updated_at", opt_ms(it->updated_at), "finished_at",
        opt_ms(it->finished_at), "lease_owner", opt_str(it->lease_owner), "lease_until",
        opt_ms(it->lease_until), "last_error", opt_str(it->last_error));
}

typedef struct shown {
    PyObject *item, *attempts;
    int failed; /* a Python exception is set */
} shown;

static void show_item(void *arg, const scalr_email_queue_item *it)
{
    shown *s = arg;
    if (s->failed)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(s->item);
    s->item = item_dict(it);
    if (!s->item)
        s->failed = 1;
    PyGILState_Release(g);
}

static void show_attempt(void *arg, const scalr_email_queue_attempt *a)
{
    shown *s = arg;
    if (s->failed)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *d = Py_BuildValue(
        "{s:i,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "n", a->n, "at", opt_ms(a->at), "worker",
        opt_str(a->worker), "outcome", opt_str(a->outcome), "stage", opt_str(a->stage), "smtp_code",
        a->smtp_code ? PyLong_FromLong(a->smtp_code) : none_ref(), "enhanced", opt_str(a->enhanced),
        "recipient", opt_str(a->recipient), "server_text", opt_str(a->server_text), "message",
        opt_str(a->message));
    if (!d || PyList_Append(s->attempts, d) < 0)
        s->failed = 1;
    Py_XDECREF(d);
    PyGILState_Release(g);
}

PyDoc_STRVAR(queue_show_doc,
             "queue_show(id, queue=None) -> tuple\n\n"
             "Internal: scalr_email_queue_show.  Returns (result_tuple, item_dict or None,\n"
             "attempts list).");

static PyObject *native_queue_show(PyObject *self, PyObject *args)
{
    (void)self;
    long long id;
    PyObject *qarg = Py_None;
    if (!PyArg_ParseTuple(args, "L|O:queue_show", &id, &qarg))
        return NULL;
    char *url = queue_url(qarg);
    if (!url)
        return NULL;
    shown s = {NULL, PyList_New(0), 0};
    if (!s.attempts) {
        free(url);
        return NULL;
    }
    scalr_email_error err;
    memset(&err, 0, sizeof err);
    scalr_email_code rc;
    /* The callbacks take the GIL back for the moment they build objects. */
    Py_BEGIN_ALLOW_THREADS scalr_email_queue *q = NULL;
    rc = scalr_email_queue_open(&q, url, &err);
    if (rc == SCALR_EMAIL_OK) {
        rc = scalr_email_queue_show(q, id, show_item, show_attempt, &s, &err);
        scalr_email_queue_close(q);
    }
    Py_END_ALLOW_THREADS free(url);
    if (s.failed) {
        Py_XDECREF(s.item);
        Py_DECREF(s.attempts);
        return NULL;
    }
    if (rc != SCALR_EMAIL_OK || !s.item) {
        Py_XDECREF(s.item);
        Py_DECREF(s.attempts);
        return Py_BuildValue("(NOO)", result(rc ? rc : SCALR_EMAIL_ENOTFOUND, &err), Py_None,
                             Py_None);
    }
    return Py_BuildValue("(NNN)", result(rc, &err), s.item, s.attempts);
}

PyDoc_STRVAR(queue_status_doc, "queue_status(queue=None) -> tuple\n\n"
                               "Internal: scalr_email_queue_get_status.  Returns (result_tuple,\n"
                               "dict or None).");

static PyObject *native_queue_status(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *qarg = Py_None;
    if (!PyArg_ParseTuple(args, "|O:queue_status", &qarg))
        return NULL;
    char *url = queue_url(qarg);
    if (!url)
        return NULL;
    scalr_email_error err;
    memset(&err, 0, sizeof err);
    scalr_email_queue_status st;
    memset(&st, 0, sizeof st);
    scalr_email_code rc;
    Py_BEGIN_ALLOW_THREADS scalr_email_queue *q = NULL;
    rc = scalr_email_queue_open(&q, url, &err);
    if (rc == SCALR_EMAIL_OK) {
        rc = scalr_email_queue_get_status(q, &st, &err);
        scalr_email_queue_close(q);
    }
    Py_END_ALLOW_THREADS free(url);
    if (rc != SCALR_EMAIL_OK)
        return Py_BuildValue("(NO)", result(rc, &err), Py_None);
    return Py_BuildValue("(N{s:{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L},s:L,s:N,s:L,s:L})",
                         result(rc, &err), "counts", "queued", st.queued, "leased", st.leased,
                         "sent", st.sent, "failed", st.failed, "expired", st.expired, "cancelled",
                         st.cancelled, "held", st.held, "unknown", st.unknown, "oldest_queued_ms",
                         st.oldest_queued_ms, "next_run_at", opt_ms(st.next_run_at),
                         "sent_last_minute", st.sent_last_minute, "now", st.now);
}

PyDoc_STRVAR(strerror_doc, "strerror(code: str) -> str\n\n"
                           "The library's short description of a code name ('EREJECTED').");

static PyObject *native_strerror(PyObject *self, PyObject *arg)
{
    (void)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    for (int i = SCALR_EMAIL_OK; i <= SCALR_EMAIL_ENOTFOUND; i++) {
        if (!strcmp(name, code_name((scalr_email_code)i)))
            return PyUnicode_FromString(scalr_email_strerror((scalr_email_code)i));
    }
    PyErr_Format(PyExc_ValueError, "unknown code %R", arg);
    return NULL;
}

static PyMethodDef methods[] = {
    {"send", (PyCFunction)(void (*)(void))native_send, METH_VARARGS | METH_KEYWORDS, send_doc},
    {"compose", (PyCFunction)(void (*)(void))native_compose, METH_VARARGS | METH_KEYWORDS,
     compose_doc},
    {"envelope", (PyCFunction)(void (*)(void))native_envelope, METH_VARARGS | METH_KEYWORDS,
     envelope_doc},
    {"enqueue", (PyCFunction)(void (*)(void))native_enqueue, METH_VARARGS | METH_KEYWORDS,
     enqueue_doc},
    {"queue_init", native_queue_init, METH_O, queue_init_doc},
    {"queue_status", native_queue_status, METH_VARARGS, queue_status_doc},
    {"queue_show", native_queue_show, METH_VARARGS, queue_show_doc},
    {"strerror", native_strerror, METH_O, strerror_doc},
    {"render", native_render, METH_VARARGS, render_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "scalr_email._native",
    "Internal C layer of scalr_email over libscalr-email; use scalr_email instead.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddStringConstant(m, "LIBRARY_VERSION", SCALR_EMAIL_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
