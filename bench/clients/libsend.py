#!/usr/bin/python3
"""The library's one-call send, scalr_email_send(), called in a loop from one process
through ctypes, so that successive calls may reuse the library's pooled connection.

  libsend.py LIBRARY COUNT THREADS BODY_FILE

scalr_email_send() reads the SMTP_* environment itself.  THREADS threads share the
COUNT sends (ctypes releases the GIL during each call).  Exits 0 only when every
message was accepted; the first failure is printed on stderr.
"""
import ctypes
import os
import sys
import threading

c_char_pp = ctypes.POINTER(ctypes.c_char_p)


class Message(ctypes.Structure):
    # include/scalr_email.h: scalr_email_message
    _fields_ = [("to", c_char_pp), ("subject", ctypes.c_char_p), ("body", ctypes.c_char_p),
                ("body_html", ctypes.c_char_p), ("sender", ctypes.c_char_p),
                ("cc", c_char_pp), ("bcc", c_char_pp), ("reply_to", ctypes.c_char_p),
                ("headers", ctypes.c_void_p), ("attachments", ctypes.c_void_p),
                ("body_len", ctypes.c_size_t), ("body_html_len", ctypes.c_size_t),
                # added later (issue 17); zero keeps the default
                ("calendar", ctypes.c_char_p), ("envelope_from", ctypes.c_char_p),
                ("dsn_notify", ctypes.c_char_p), ("dsn_ret", ctypes.c_char_p),
                ("dsn_envid", ctypes.c_char_p)]


def main():
    lib = ctypes.CDLL(sys.argv[1])
    count, threads = int(sys.argv[2]), int(sys.argv[3])
    with open(sys.argv[4], "rb") as f:
        body = f.read()
    lib.scalr_email_send.argtypes = [ctypes.POINTER(Message), ctypes.c_void_p]
    lib.scalr_email_send.restype = ctypes.c_int
    rcpt = (ctypes.c_char_p * 2)(os.environ.get("BENCH_TO", "rcpt@example.com").encode(), None)
    failures = []

    def work(first, n):
        err = ctypes.create_string_buffer(16384)  # scalr_email_error is ~1.9 KB
        for i in range(first, first + n):
            msg = Message(to=ctypes.cast(rcpt, c_char_pp),
                          subject=b"Benchmark message %d" % i, body=body)
            rc = lib.scalr_email_send(ctypes.byref(msg), err)
            if rc != 0:
                # scalr_email_error.message: after code, smtp_code, enhanced[16], stage[16],
                # recipient[320], server_text[512]
                off = 4 + 4 + 16 + 16 + 320 + 512
                failures.append("message %d: code %d: %s" % (
                    i, rc, err.raw[off:off + 768].split(b"\0", 1)[0].decode(errors="replace")))

    shares = [count // threads + (1 if t < count % threads else 0) for t in range(threads)]
    ts, first = [], 0
    for n in shares:
        ts.append(threading.Thread(target=work, args=(first, n)))
        first += n
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if hasattr(lib, "scalr_email_pool_close_idle"):
        lib.scalr_email_pool_close_idle()
    if failures:
        print("%d of %d failed; %s" % (len(failures), count, failures[0]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
