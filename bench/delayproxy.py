#!/usr/bin/python3
"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed time each way and
counts the client's flights.

A flight is a burst of client->server bytes sent after the client last received
something from the server: bytes the client writes without having waited for an
answer belong to the same flight.  A client that pipelines MAIL, RCPT and DATA
makes one flight; one that waits for each reply makes three.  Because the
server's bytes are handed to the client only after the delay, a client chunk
that arrives before that hand-over cannot be a reaction to it.

Usage: delayproxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS LOGFILE [--quickack]
With --quickack the proxy ACKs the server's bytes at once (TCP_QUICKACK), as a
client that does so would; without it, Linux's delayed ACK in the proxy itself
holds a server with Nagle on (Postfix answering EHLO behind its TLS 1.3 session
ticket) for up to 40 ms, whatever the client does.
Each closed connection appends one JSON line to LOGFILE:
  {"flights": N, "labels": [...], "c2s": bytes, "s2c": bytes, "open": t, "close": t}
where labels name each flight by its first bytes ("EHLO", "MAIL", "<tls>", "<data>").
The proxy listens only on 127.0.0.1 and connects only to 127.0.0.1.
"""
import asyncio
import json
import socket
import sys
import time

QUICKACK = "--quickack" in sys.argv[5:]


def quick_ack(writer):
    """Re-arm TCP_QUICKACK (Linux leaves quick-ACK mode on its own)."""
    sock = writer.get_extra_info("socket")
    if QUICKACK and sock is not None and hasattr(socket, "TCP_QUICKACK"):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass


CMDS = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP",
        "QUIT", "VRFY"}


def label(chunk, in_data):
    """Name a flight by the commands in its first chunk; returns (label, in_data after it)."""
    if chunk[:1] in (b"\x16", b"\x17", b"\x14", b"\x15"):
        return "<tls>", in_data
    parts = []
    if in_data:
        parts.append("<data>")
        end = chunk.find(b"\r\n.\r\n")
        if end < 0:
            return "<data>", True
        chunk = chunk[end + 5:]
        in_data = False
    for line in chunk.split(b"\r\n"):
        word = line.split(b" ", 1)[0].upper().decode("latin-1")
        if word not in CMDS:
            break
        if not parts or parts[-1].split("x")[0] != word:
            parts.append(word)
        else:  # RCPT x3
            n = int(parts[-1].split("x")[1]) if "x" in parts[-1] else 1
            parts[-1] = "%sx%d" % (word, n + 1)
        if word == "DATA":
            in_data = True
            break
        if word == "BDAT":
            break
    return "+".join(parts) or "<data>", in_data


class Conn:
    def __init__(self):
        self.flights = 0
        self.labels = []
        self.sizes = []   # client bytes per flight
        self.c2s = 0
        self.s2c = 0
        self.server_spoke = True  # the greeting is what the client waits for first
        self.opened = time.time()


async def pump(reader, writer, delay, on_read, on_deliver, upstream_writer):
    """Copy reader to writer, each chunk delivered `delay` seconds after it was read."""
    q = asyncio.Queue()

    async def deliver():
        while True:
            due, chunk = await q.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if chunk is None:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            on_deliver(chunk)
            writer.write(chunk)
            try:
                await writer.drain()
            except OSError:
                return
            quick_ack(upstream_writer)

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            quick_ack(upstream_writer)
            on_read(chunk)
            await q.put((time.monotonic() + delay, chunk))
    except OSError:
        pass
    await q.put((time.monotonic() + delay, None))
    await task


async def handle(creader, cwriter, upstream, delay, logfile):
    c = Conn()
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", upstream)
    except OSError:
        cwriter.close()
        return
    state = {"in_data": False, "tail": b""}

    def client_read(chunk):
        # The end of data may straddle two chunks of one flight: look at the tail too.
        if not c.server_spoke and state["in_data"] and b"\r\n.\r\n" in state["tail"] + chunk:
            state["in_data"] = False
        tail = state["tail"] + chunk
        state["tail"] = tail[-4:]
        c.c2s += len(chunk)
        if not c.server_spoke and c.sizes:
            c.sizes[-1] += len(chunk)
        if c.server_spoke:
            c.sizes.append(len(chunk))
            c.flights += 1
            name, state["in_data"] = label(chunk, state["in_data"])
            c.labels.append(name)
            c.server_spoke = False

    def server_deliver(chunk):
        c.s2c += len(chunk)
        c.server_spoke = True

    await asyncio.gather(
        pump(creader, swriter, delay, client_read, lambda ch: None, swriter),
        pump(sreader, cwriter, delay, lambda ch: None, server_deliver, swriter),
    )
    for w in (swriter, cwriter):
        try:
            w.close()
        except OSError:
            pass
    rec = {"flights": c.flights, "labels": c.labels, "sizes": c.sizes, "c2s": c.c2s, "s2c": c.s2c,
           "open": c.opened, "close": time.time()}
    with open(logfile, "a") as f:
        f.write(json.dumps(rec) + "\n")


async def main():
    listen, upstream, delay_ms, logfile = (int(sys.argv[1]), int(sys.argv[2]),
                                           float(sys.argv[3]), sys.argv[4])
    delay = delay_ms / 1000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, upstream, delay, logfile), "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
