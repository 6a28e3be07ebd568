#!/usr/bin/python3
"""Sign the message on stdin with Debian's dkimpy (python3-dkim) and write the
DKIM-Signature field (CRLF line ends, no final CRLF) to stdout:

    dkimpy_sign.py KEY.pem SELECTOR DOMAIN [--headers from,to] [--expired]

--headers lists the fields h= names (dkimpy's default otherwise);
--expired signs as if in 2023 with x= ten minutes later (RFC 6376 3.5), so
the signature verifies except for its expiry.  relaxed/relaxed."""
import sys
import time

import dkim


def main(argv):
    key, selector, domain = argv[1], argv[2].encode(), argv[3].encode()
    headers = None
    expired = "--expired" in argv
    if "--headers" in argv:
        headers = [h.encode() for h in argv[argv.index("--headers") + 1].split(",")]
    msg = sys.stdin.buffer.read()

    class Signer(dkim.DKIM):
        def gen_header(self, fields, *args, **kw):
            if expired:
                t = dict(fields)[b"t"]
                at = [k for k, _ in fields].index(b"h")
                fields = fields[:at] + [(b"x", str(int(t) + 600).encode())] + fields[at:]
            return super().gen_header(fields, *args, **kw)

    real_time = time.time
    if expired:
        time.time = lambda: 1700000000.0
    try:
        d = Signer(msg)
        sig = d.sign(selector, domain, open(key, "rb").read(),
                     canonicalize=(b"relaxed", b"relaxed"), include_headers=headers)
    finally:
        time.time = real_time
    sys.stdout.buffer.write(sig.rstrip(b"\r\n").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
