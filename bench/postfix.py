#!/usr/bin/python3
"""Run Debian's Postfix as a discard-only MTA from its unpacked package, as root, without
installing it or touching /etc/postfix: its own config and queue directories, listening on
one 127.0.0.1 port only, relaying nothing (every transport is `discard`).

  postfix.py ROOT BASE PORT [CERT KEY]   writes BASE/conf and BASE/queue and prints the
                                         command that runs it in the foreground

ROOT is where `dpkg-deb -x postfix_*.deb ROOT` unpacked the package. The daemons need
LD_LIBRARY_PATH=ROOT/usr/lib/postfix (their RUNPATH is /usr/lib/postfix) and find their
config through MAIL_CONFIG; `master -c CONF -d` stays in the foreground and SIGTERM stops
it with all its children. mail_owner is `nobody` and setgid_group `mail`, both present in
Debian's base system, so no user or group is created.
"""
import os
import shutil
import sys
from pathlib import Path


def write_config(root, base, port, certs=None):
    """Create BASE/{conf,queue,data}; returns the config directory."""
    root, base = Path(root), Path(base)
    if base.exists():
        shutil.rmtree(base)
    conf, queue, data = base / "conf", base / "queue", base / "data"
    for d in (conf, queue, data):
        d.mkdir(parents=True)
    tls = ""
    if certs:
        tls = ("smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\nsmtpd_tls_security_level = may\n"
               "smtpd_tls_loglevel = 0\n" % tuple(certs))
    (conf / "main.cf").write_text("""\
compatibility_level = 3.6
queue_directory = {q}
data_directory = {data}
daemon_directory = {root}/usr/lib/postfix/sbin
command_directory = {root}/usr/sbin
shlib_directory = {root}/usr/lib/postfix
meta_directory = {conf}
mail_owner = nobody
setgid_group = mail
default_privs = daemon
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localdomain
myorigin = $myhostname
mydestination =
local_recipient_maps =
relay_domains =
relayhost =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = discard
relay_transport = discard
local_transport = discard
virtual_transport = discard
alias_maps =
alias_database =
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
maillog_file = {base}/postfix.log
maillog_file_prefixes = {base}
biff = no
message_size_limit = 104857600
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 32
{tls}""".format(q=queue, data=data, root=root, conf=conf, base=base, tls=tls))
    (conf / "master.cf").write_text("""\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
discard   unix - - n - - discard
error     unix - - n - - error
retry     unix - - n - - error
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
""".format(port=port))
    (conf / "dynamicmaps.cf").write_text("")
    for d in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
              "private", "saved", "trace"):
        (queue / d).mkdir()
        shutil.chown(queue / d, "nobody")
        os.chmod(queue / d, 0o700)
    for d, mode in (("public", 0o710), ("maildrop", 0o730)):
        (queue / d).mkdir()
        shutil.chown(queue / d, "nobody", "mail")
        os.chmod(queue / d, mode)
    (queue / "pid").mkdir()
    shutil.chown(data, "nobody")
    return conf




def command(root, conf):
    """The environment and argv that run the configured Postfix in the foreground."""
    root = Path(root)
    env = {"LD_LIBRARY_PATH": str(root / "usr/lib/postfix"), "MAIL_CONFIG": str(conf),
           "PATH": "/usr/bin:/bin"}
    return env, [str(root / "usr/lib/postfix/sbin/master"), "-c", str(conf), "-d"]


if __name__ == "__main__":
    if len(sys.argv) not in (4, 6):
        sys.exit(__doc__)
    conf = write_config(sys.argv[1], sys.argv[2], int(sys.argv[3]),
                        sys.argv[4:6] if len(sys.argv) == 6 else None)
    env, argv = command(sys.argv[1], conf)
    print(" ".join("%s=%s" % kv for kv in env.items() if kv[0] != "PATH"), " ".join(argv))
