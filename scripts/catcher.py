"""A throw-away local mail catcher for the demo: Debian's aiosmtpd on
127.0.0.1, every message saved as DIR/N.eml.  Usage: catcher.py PORT DIR"""
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Save:
    def __init__(self, folder):
        self.folder = folder
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.folder, f"{self.n}.eml")
        with open(path, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(path + ".rcpt", "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        return "250 2.0.0 Ok: saved"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    c = Controller(Save(folder), hostname="127.0.0.1", port=port)
    c.start()
    print(f"catcher listening on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    c.stop()


if __name__ == "__main__":
    main()
