#!/usr/bin/python3
"""Python smtplib contender, configured like scalr-email from SMTP_* variables.

  smtplib_client.py per-message|reused COUNT BODY_FILE [ATTACHMENT]

per-message: a new connection for every message, as the seed's send() does
             (connect, STARTTLS and login when configured, send, QUIT).
reused:      one connection for all COUNT messages (the best smtplib can do).
Exits 0 only when every message was accepted.
"""
import os
import smtplib
import ssl
import sys
from email.message import EmailMessage


def env_bool(name, default):
    v = os.environ.get(name, "").strip().lower()
    return default if not v else v in ("1", "true", "yes")


def make_message(i, body, attachment):
    msg = EmailMessage()
    msg["From"] = os.environ.get("SMTP_FROM", "bench@scalr.local")
    msg["To"] = os.environ.get("BENCH_TO", "rcpt@example.com")
    msg["Subject"] = "Benchmark message %d" % i
    msg.set_content(body)
    if attachment:
        with open(attachment, "rb") as f:
            msg.add_attachment(f.read(), maintype="application", subtype="octet-stream",
                               filename=os.path.basename(attachment))
    return msg


def connect():
    host = os.environ["SMTP_HOST"]
    port = int(os.environ.get("SMTP_PORT", "587"))
    s = smtplib.SMTP(host, port, timeout=float(os.environ.get("SMTP_TIMEOUT", "30")))
    if env_bool("SMTP_USE_TLS", True):
        ctx = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
        s.starttls(context=ctx)
    user = os.environ.get("SMTP_USERNAME")
    if user:
        s.login(user, os.environ.get("SMTP_PASSWORD", ""))
    return s


def main():
    mode, count, body_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    attachment = sys.argv[4] if len(sys.argv) > 4 else None
    with open(body_file) as f:
        body = f.read()
    if mode == "reused":
        s = connect()
        for i in range(count):
            s.send_message(make_message(i, body, attachment))
        s.quit()
    elif mode == "per-message":
        for i in range(count):
            s = connect()
            s.send_message(make_message(i, body, attachment))
            s.quit()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
