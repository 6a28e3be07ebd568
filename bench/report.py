#!/usr/bin/python3
"""Turn bench/work/results.json into bench/RESULTS.md (tables and verdicts).

  report.py [results.json]     re-renders RESULTS.md from a previous run's raw results.
"""
import json
import sys
from pathlib import Path

KS = [1, 4, 8]


def rate(r):
    if not r or r.get("fail") or r.get("timed_out") or not r.get("wall"):
        return None
    return r["messages"] / r["wall"]


def f0(x):
    return "-" if x is None else "%.0f" % x


def f1(x):
    return "-" if x is None else "%.1f" % x


def f2(x):
    return "-" if x is None else "%.2f" % x


def ratio(a, b):
    return a / b if a is not None and b else None


def verdict(ok, text):
    return ("**met**: " if ok else "**missed**: ") + text


def render(res, delay_ms):
    out = []
    w = out.append
    m = res["machine"]
    w("# Benchmark results\n")
    w("Made by `bash bench/run.sh` on %s in %.0f s. Do not edit: run it again.\n"
      % (res["started"], res.get("duration", 0)))
    w("## Machine and versions\n")
    w("| | |\n|---|---|")
    w("| CPU | %s, nproc = %s |" % (m["cpu"], m["nproc"]))
    w("| memory | %s |" % m["mem"])
    w("| system | %s, Linux %s |" % (m["os"], m["kernel"]))
    w("| binary measured | `%s`%s |" % (
        res["bin"], "" if res["has_batch"] else " (no `send-batch` in it)"))
    w("| library measured | `%s`%s |" % (
        res.get("lib", "-"), "" if res.get("has_lib") else " (scalr_email_send not callable)"))
    w("| inbox measured | `%s`%s |" % (
        res.get("inbox_bin", res["bin"]), "" if res["has_inbox"] else " (no `inbox` in it)"))
    for k, v in res["versions"].items():
        w("| %s | %s |" % (k, v))
    w("")
    lb, la = res.get("load_before"), res.get("load_after")
    if lb:
        w("Load average (1, 5, 15 min) before the run: %s; after: %s.%s\n" % (
            " ".join(lb), " ".join(la or []),
            " **The machine was busy with other work: rates are lower and noisier than on an "
            "idle machine.**" if float(lb[0]) > 0.5 * int(m["nproc"]) else ""))
    w("Everything runs on this one machine over 127.0.0.1, clients and sinks sharing its %s "
      "cores, so absolute rates are bounded by the slowest side; compare the rows with each "
      "other. CPU is user+sys of the client processes (from `wait4`), summed over every "
      "process of a contender; the sink's CPU is its whole process tree's over the same "
      "period. RSS is the largest `ru_maxrss` of any client process.\n" % m["nproc"])

    w("## Sinks\n")
    w("| sink | PIPELINING | CHUNKING | EHLO keywords |\n|---|---|---|---|")
    for name, caps in res["sinks"].items():
        w("| %s | %s | %s | %s |" % (name, "yes" if "PIPELINING" in caps else "no",
                                    "yes" if "CHUNKING" in caps else "no", " ".join(caps)))
    w("")
    w("smtp-sink is Postfix's test server (one process, event-driven, discards). The "
      "Postfix MTA is Debian's postfix run from the unpacked package with its own "
      "config and queue directories under bench/work/, listening only on a loopback "
      "port, `default_transport = discard`, started and stopped by the run: it is the "
      "real server that offers CHUNKING. `scalr-email inbox` stores what it gets "
      "(SQLite).\n")
    for note in res.get("notes", []):
        w("- %s" % note)
    if res.get("notes"):
        w("")

    # ---- throughput
    rows = res.get("throughput", [])
    by = {(r["name"], r["k"]): r for r in rows}
    names = []
    for r in rows:
        if r["name"] not in names:
            names.append(r["name"])
    w("## Messages per second, 1 and K connections (sink: %s)\n" % res.get("throughput_sink"))
    w("One ~1 KB text message to one recipient per send (smtp-source: 1024 bytes of payload "
      "plus its headers). K connections means K parallel sessions: K processes for "
      "`scalr-email send` and smtplib, K threads of one process for `scalr_email_send()` "
      "(Python ctypes, `clients/libsend.py`), the pool's maxConnections for nodemailer, "
      "`--connections K` for send-batch, `-s K` for smtp-source. Each row is the fastest of "
      "%d runs (BENCH_REPEAT).\n"
      % res.get("repeat", 1))
    w("| contender | K | messages | seconds | msg/s | client CPU ms/msg | client max RSS MB "
      "| sink CPU ms/msg | sink CPU % of a core |")
    w("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for k in KS:
            r = by.get((name, k))
            if not r:
                continue
            msgs = r["messages"]
            cpu = r["cpu"] * 1000 / msgs if msgs else None
            scpu = r["sink_cpu"] * 1000 / msgs if r.get("sink_cpu") is not None else None
            util = 100 * r["sink_cpu"] / r["wall"] if r.get("sink_cpu") is not None else None
            rs = rate(r)
            w("| %s | %d | %d | %.2f | %s | %s | %.1f | %s | %s |" % (
                name, k, msgs, r["wall"], f0(rs) if rs else "FAILED (%d): %s" % (
                    r["fail"], r.get("err", "")), f2(cpu), r["rss_kb"] / 1024, f2(scpu),
                f0(util)))
    w("")

    # ---- round trips
    rtt = res.get("rtt", [])
    w("## Round trips per send (delay proxy, %g ms each way)\n" % delay_ms)
    w("`bench/delayproxy.py` sits between client and sink, delays every chunk by %g ms each "
      "way and counts the client's *flights*: bursts of client bytes separated by waiting "
      "for the server. A pipelined MAIL+RCPT+DATA is one flight. The TCP handshake is not "
      "delayed (the proxy accepts locally) and is not counted; the greeting is. *cold* is "
      "one message on a new connection, all flights including QUIT; *warm* is the extra "
      "flights per message when %s messages share one connection: (flights(N) - flights(1)) "
      "/ (N - 1). The *time* columns are the wall time divided by the round-trip time "
      "(%g ms): cold includes process start-up, warm is (t(N) - t(1)) / (N - 1) / RTT.\n"
      % (delay_ms, 6, 2 * delay_ms))
    w("*to 250* leaves out the flights after the message's acceptance: QUIT and, over TLS, the "
      "close_notify alert (recognised by size, 28 and 24 bytes with TLS 1.3 and AES-GCM); add 1 "
      "for the TCP handshake to get the cold send's round trips.\n")
    w("| contender | sink | cold flights: to 250 / all | cold time/RTT | warm flights/msg "
      "| warm time/RTT | cold sequence (client bytes of TLS flights) | warm sequence (one message) |")
    w("|---|---|---|---|---|---|---|---|")
    for r in rtt:
        if r.get("fail"):
            w("| %s | %s | FAILED: %s | | | | | |" % (r["name"], r["sink"], r.get("err", "")))
            continue
        warm = f1(r.get("warm")) if "warm" in r else r.get("warm_note", "n/a")
        cold = "%s / %s" % (r.get("cold_accept", "?"), r["cold"]) if "cold" in r else "-"
        w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], r["sink"], cold, f1(r.get("cold_time")), warm,
            f1(r.get("warm_time")), " › ".join(r.get("cold_labels", [])),
            " › ".join(r.get("warm_labels", []))))
    w("")

    # ---- throughput under latency
    lat = res.get("latency", [])
    if lat:
        w("## Messages per second through the delay proxy (%g ms each way, sink: %s)\n"
          % (delay_ms, res.get("latency_sink")))
        w("The same contenders with a round trip of %g ms, as to a provider that far away: here "
          "round trips, not CPU, set the rate. *SMTP seconds* runs from the first connection's "
          "opening to the last one's close as the proxy saw them, leaving out process start-up "
          "(*seconds* includes it); msg/s is messages / SMTP seconds. *connections* and "
          "*flights* are what the proxy saw; flights per message include each connection's "
          "greeting, EHLO and QUIT.\n" % (2 * delay_ms))
        w("| contender | K | messages | seconds | SMTP seconds | msg/s | connections "
          "| flights per message |")
        w("|---|---|---|---|---|---|---|---|")
        for r in lat:
            ok = not r["fail"] and not r.get("timed_out") and r.get("span")
            w("| %s | %d | %d | %.2f | %.2f | %s | %d | %s |" % (
                r["name"], r["k"], r["messages"], r["wall"], r.get("span", 0),
                f1(r["messages"] / r["span"]) if ok else "FAILED (%d): %s" % (
                    r["fail"], r.get("err", "")),
                r["conns"], f2(r["flights"] / r["messages"]) if r["messages"] else "-"))
        w("")

    # ---- memory
    mem = res.get("memory", [])
    w("## Peak memory (max RSS) of one send\n")
    w("| contender | message | max RSS MB | CPU ms | seconds | result |\n|---|---|---|---|---|---|")
    for r in mem:
        w("| %s | %s | %.1f | %.0f | %.2f | %s |" % (
            r["name"], r["what"], r["rss_kb"] / 1024, r["cpu"] * 1000, r["wall"],
            "ok" if not r["fail"] else "FAILED: %s" % r.get("err", "")))
    w("")

    # ---- inbox
    w("## Inbox: messages stored per second (issue 4 item 7)\n")
    inbox = res.get("inbox", [])
    if not res["has_inbox"]:
        w("not measured: scalr-email inbox not built (`%s inbox --help` fails; build with "
          "`make INBOX=1`). maildev alone, for reference:\n" % res.get("inbox_bin", res["bin"]))
    w("Load: smtp-source with 8 parallel sessions, each session reusing its connection "
      "(`-d`), 1024-byte payloads. *stored* is what the sink's API lists afterwards.\n")
    w("| inbox | sessions | messages | seconds | msg/s | stored | sink CPU ms/msg "
      "| RSS MB before → after | PIPELINING | CHUNKING |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for r in inbox:
        if "wall" not in r:
            w("| %s | | | | FAILED: %s | | | | | |" % (r["name"], r.get("err", "")))
            continue
        scpu = r["sink_cpu"] * 1000 / r["messages"] if r.get("sink_cpu") is not None else None
        rs = rate(r)
        w("| %s | %d | %d | %.2f | %s | %s | %s | %.1f → %.1f | %s | %s |" % (
            r["name"], r["sessions"], r["messages"], r["wall"],
            f0(rs) if rs else "FAILED (%d): %s" % (r["fail"], r.get("err", "")),
            r.get("stored"), f2(scpu), r["rss0"], r["rss"],
            "yes" if "PIPELINING" in r["caps"] else "no",
            "yes" if "CHUNKING" in r["caps"] else "no"))
    w("")
    src8 = next((r for r in res.get("throughput", []) if r["name"].startswith("smtp-source")
                 and r["k"] == 8), None)
    mem = next((r for r in inbox if r["name"] == "scalr-email inbox (in memory)"), None)
    if rate(src8) and rate(mem):
        w("Which sink is faster: under smtp-source with 8 sessions, smtp-sink took %s msg/s "
          "(above) and `scalr-email inbox` in memory %s msg/s, so the throughput table uses %s.\n"
          % (f0(rate(src8)), f0(rate(mem)),
             "smtp-sink" if rate(src8) >= rate(mem) else
             "smtp-sink all the same (it discards, so it measures the clients alone)"))
    growth = res.get("inbox_growth", [])
    if growth:
        w("RSS of `scalr-email inbox --db` as the stored mail grows:\n")
        w("| messages sent | stored | RSS MB |\n|---|---|---|")
        for sent, rss, stored in growth:
            w("| %d | %s | %.1f |" % (sent, stored, rss))
        w("")

    # ---- verdicts
    w("## Targets\n")
    for line in verdicts(res, by):
        w("- " + line)
    w("")
    w("Raw numbers: bench/work/results.json; logs of every server and client: "
      "bench/work/logs/.\n")
    return "\n".join(out)


BATCH = "scalr-email send-batch"
LOOP = "scalr_email_send() in a loop (library, K threads)"
LOOP_RTT = "scalr_email_send() in a loop"
SEND = "scalr-email send (1 process per message)"


def verdicts(res, by):
    v = []
    ours_list = [x for x in (BATCH, LOOP) if (x, 1) in by] or [SEND]
    nm = "nodemailer pool"
    reused = "smtplib, reused connection"
    src = "smtp-source (Postfix load generator)"
    chunking_sinks = ("Postfix MTA (discard)", "scalr-email inbox")

    # round trips
    rtt = res.get("rtt", [])
    warm = [r for r in rtt if r["name"] in (BATCH, LOOP_RTT) and not r.get("tls") and "warm" in r]
    chunk_rows = [r for r in warm if r["sink"] in chunking_sinks]
    if chunk_rows:
        worst = max(r["warm"] for r in chunk_rows)
        v.append(verdict(worst <= 1.0, "warm send with PIPELINING + CHUNKING: %s flight(s) per "
                         "message at worst (target 1; %s)." % (f1(worst), "; ".join(
                             "%s → %s: %s" % (r["name"], r["sink"], f1(r["warm"]))
                             for r in chunk_rows))))
    else:
        v.append("**not measured**: warm send with PIPELINING + CHUNKING (target 1 round trip): "
                 "this binary has no `send-batch`, the library's `scalr_email_send()` could not "
                 "be called in a loop, and `send` is one process per message, so no message went "
                 "over a warm connection.")
    for r in warm:
        if r["sink"] != "smtp-sink":
            continue
        if r["name"] == LOOP_RTT:
            v.append(verdict(r["warm"] <= 2.0, "warm one-call send with PIPELINING alone "
                             "(smtp-sink): %s flights per message (target 2)." % f1(r["warm"])))
        else:
            v.append(verdict(r["warm"] <= 1.5, "send-batch with PIPELINING alone (smtp-sink): "
                             "%s flights per message (issue 6 item 3: about 1, the next message's "
                             "MAIL+RCPT+DATA following the previous end of data in one flight)%s."
                             % (f1(r["warm"]), "" if r["warm"] <= 1.5 else
                                "; the sequence shows the next MAIL waits for the previous "
                                "message's 250")))
    tls = [r for r in rtt if r.get("tls") and r["name"] == "scalr-email send" and "cold" in r]
    auth = [r for r in tls if "+ AUTH" in r["sink"]]
    if auth:
        r = auth[0]
        c = r.get("cold_accept", r["cold"]) + 1
        v.append(verdict(c <= 8, "cold send over STARTTLS with AUTH: %d round trips up to the "
                         "message's acceptance (the TCP handshake + %d flights; %d flights in all "
                         "with QUIT and close_notify; target at most 8) against %s."
                         % (c, c - 1, r["cold"], r["sink"])))
    elif tls:
        r = tls[0]
        c = r.get("cold_accept", r["cold"]) + 2
        v.append(verdict(c <= 8, "cold send over STARTTLS: the TCP handshake + %d flights up to "
                         "the message's acceptance without AUTH (Postfix here has no SASL), so "
                         "%d round trips with AUTH PLAIN's one flight added (target at most 8); "
                         "measured against %s." % (c - 2, c, r["sink"])))
    else:
        v.append("**not measured**: cold send over STARTTLS + AUTH (no TLS sink could be started).")

    why = ""
    if ours_list == [SEND]:
        why = (" Why: this binary has no send-batch and its library could not be driven in a "
               "loop; each message is a new process (dynamic linking, OpenSSL start-up) and a "
               "new session, which is what the pool and batches of issue 6 remove.")
    n1, r1, s1 = rate(by.get((nm, 1))), rate(by.get((reused, 1))), rate(by.get((src, 1)))
    for ours in ours_list:
        # throughput over one connection
        o1 = rate(by.get((ours, 1)))
        if not o1:
            v.append("**missed**: %s failed over one connection; see the table." % ours)
            continue
        a, b = ratio(o1, n1), ratio(o1, r1)
        v.append(verdict(a is not None and a >= 3, "%s, one connection: %s msg/s = %s× "
                         "nodemailer's pool with maxConnections 1 (%s msg/s; target ≥ 3×).%s"
                         % (ours, f0(o1), f2(a), f0(n1), why if a is None or a < 3 else "")))
        v.append(verdict(b is not None and b >= 5, "%s, one connection: %s× smtplib on a reused "
                         "connection (%s msg/s; target ≥ 5×).%s"
                         % (ours, f2(b), f0(r1), why if b is None or b < 5 else "")))
        text = ("%s, one connection: %s× smtp-source over one session (%s msg/s; target > 1×, "
                "smtp-source does not pipeline)." % (ours, f2(ratio(o1, s1)), f0(s1)))
        if s1 is not None and o1 <= s1:
            ro, rs = by[(ours, 1)], by[(src, 1)]
            text += (" Why: over one loopback connection the work is serial, so each message "
                     "costs the client's CPU + the sink's CPU + a wake-up per flight: %.3f ms in "
                     "our client vs %.3f in smtp-source, which composes nothing (sink: %.3f vs "
                     "%.3f)." % (1000 * ro["cpu"] / ro["messages"], 1000 * rs["cpu"] / rs["messages"],
                                 1000 * (ro.get("sink_cpu") or 0) / ro["messages"],
                                 1000 * (rs.get("sink_cpu") or 0) / rs["messages"]))
            wb = [r for r in res.get("rtt", []) if r["sink"] == "smtp-sink" and "warm" in r
                  and r["name"] in (BATCH, LOOP_RTT) and ours.startswith(r["name"][:12])]
            if wb:
                text += (" Flights per message over smtp-sink: %s (smtp-source: 4)."
                         % f1(wb[0]["warm"]))
        v.append(verdict(s1 is not None and o1 > s1, text))

        # K connections: the sink's ceiling
        best = {}
        for (name, k), r in by.items():
            if k > 1 and rate(r):
                best[k] = max(best.get(k, 0), rate(r))
        for k in sorted(best):
            r = by.get((ours, k))
            o = rate(r)
            if o is None:
                continue
            util = 100 * r["sink_cpu"] / r["wall"] if r.get("sink_cpu") is not None else None
            text = ("%s, K=%d: %s msg/s, %.0f%% of the fastest contender at K=%d (%s msg/s, the "
                    "best observed ceiling of sink + machine); sink CPU %s%% of one core "
                    "(smtp-sink is one process: 100%% is its ceiling; the %s cores are shared by "
                    "clients and sink)." % (ours, k, f0(o), 100 * o / best[k], k, f0(best[k]),
                                            f0(util), res["machine"]["nproc"]))
            if o < 0.9 * best[k] and r.get("sink_cpu") is not None:
                per = (r["cpu"] + r["sink_cpu"]) / r["messages"]
                o1k = rate(by.get((ours, 1)))
                text += (" Why: client + sink spend %.3f ms of CPU per message, so %s cores "
                         "would allow about %.0f msg/s if nothing else ran; the sink was far from "
                         "busy, so the limit was the shared, loaded machine (load average %s) and "
                         "latency%s." % (1000 * per, res["machine"]["nproc"],
                                         int(res["machine"]["nproc"]) / per,
                                         " ".join(res.get("load_before") or ["?"]),
                                         "" if not o1k or o > 1.1 * o1k else
                                         "; it did not scale past K=1 (%s msg/s)" % f0(o1k)))
            v.append(verdict(o >= 0.9 * best[k], text))

        # CPU per message
        ro, rn = by.get((ours, 1)), by.get((nm, 1))
        if rate(ro) and rate(rn):
            co, cn = ro["cpu"] / ro["messages"], rn["cpu"] / rn["messages"]
            v.append(verdict(co <= cn / 5, "%s, CPU per message: %.3f ms vs nodemailer's %.3f ms "
                             "= %.2f of it (target ≤ 0.20).%s" % (
                                 ours, co * 1000, cn * 1000, co / cn,
                                 why if co > cn / 5 else "")))

    # throughput over one connection with a real round-trip time
    lat = {(r["name"], r["k"]): r for r in res.get("latency", [])}

    def lrate(r):
        if not r or r["fail"] or r.get("timed_out") or not r.get("span"):
            return None
        return r["messages"] / r["span"]

    def fpm(r):
        return r["flights"] / r["messages"] if r and r["messages"] else None

    for ours in [x for x in (BATCH, LOOP) if (x, 1) in lat]:
        o = lrate(lat[(ours, 1)])
        if o is None:
            continue
        parts, ok = [], True
        for other, need in ((nm, 3), (reused, 5), (src, 1)):
            x = lrate(lat.get((other, 1)))
            if x is None:
                continue
            rt = o / x
            good = rt >= need if need > 1 else rt > 1
            ok = ok and good
            bound = ratio(fpm(lat.get((other, 1))), fpm(lat[(ours, 1)]))
            parts.append("%.2f× %s (target %s%d×%s)" % (
                rt, other, "≥ " if need > 1 else "> ", need,
                "" if good or bound is None else
                "; with round trips setting the rate the ratio cannot exceed the flights ratio, "
                "%.2f / %.2f = %.1f×" % (fpm(lat.get((other, 1))), fpm(lat[(ours, 1)]), bound)))
        v.append(verdict(ok, "%s, one connection through the delay proxy (%g ms round trip): "
                         "%.1f msg/s = %s." % (ours, 2 * res.get("delay_ms", 25), o,
                                                ", ".join(parts))))

    # memory
    big = [r for r in res.get("memory", []) if r["name"] == "scalr-email send"
           and r["what"].startswith("50 MB")]
    if big:
        r = big[0]
        mb = r["rss_kb"] / 1024
        ok = mb < 16 and not r["fail"]
        text = "`scalr-email send` with a 50 MB attachment: max RSS %.1f MB (target < 16 MB)" % mb
        if r["fail"]:
            text += "; the send FAILED: %s" % r.get("err", "")
        elif not ok:
            text += (", %.1f× the target. Why: this binary reads the attachment whole and "
                     "composes the whole encoded message in memory before sending "
                     "(streaming is issue 6 item 4)" % (mb / 16))
        v.append(verdict(ok, text + "."))

    # inbox
    rows = {r["name"].split(" (")[0].split(" 3")[0]: r for r in res.get("inbox", [])}
    md = next((r for r in res.get("inbox", []) if r["name"].startswith("maildev")), None)
    mem = next((r for r in res.get("inbox", []) if r["name"] == "scalr-email inbox (in memory)"), None)
    db = next((r for r in res.get("inbox", []) if r["name"] == "scalr-email inbox --db"), None)
    del rows
    if not res["has_inbox"]:
        v.append("**not measured**: scalr-email inbox not built (store rate ≥ 5× maildev in "
                 "memory, ≥ 2× with --db; flat memory with --db).")
    else:
        mdr = rate(md)
        for r, need, label in ((mem, 5, "in memory"), (db, 2, "with --db")):
            x = rate(r)
            if x is None or mdr is None:
                v.append("**missed**: inbox %s: a run failed (see the table)." % label)
                continue
            text = "inbox %s: %s msg/s = %.1f× maildev's %s msg/s (target ≥ %d×)." % (
                label, f0(x), x / mdr, f0(mdr), need)
            if x < need * mdr and r.get("sink_cpu") is not None and md.get("sink_cpu"):
                util = 100 * r["sink_cpu"] / r["wall"]
                cpu_ratio = (md["sink_cpu"] / md["messages"]) / (r["sink_cpu"] / r["messages"])
                text += (" Why: the inbox used %.0f%% of one core during the run, so its rate "
                         "was set by the load generator (smtp-source does not pipeline) sharing "
                         "the machine's %s cores, not by the inbox; per message it spent %.1f× "
                         "less CPU than maildev." % (util, res["machine"]["nproc"], cpu_ratio))
            v.append(verdict(x >= need * mdr, text))
        g = res.get("inbox_growth", [])
        if len(g) >= 2:
            (n0, r0, _), (n1_, r1_, _) = g[0], g[-1]
            flat = r1_ <= r0 * 1.25 + 8
            v.append(verdict(flat, "inbox --db memory: RSS %.1f MB after %d messages, %.1f MB "
                             "after %d (flat means at most +25%% + 8 MB)." % (r0, n0, r1_, n1_)))
    return v


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "work" / "results.json"
    data = json.loads(path.read_text())
    (here / "RESULTS.md").write_text(render(data, float(data.get("delay_ms", 25))))
