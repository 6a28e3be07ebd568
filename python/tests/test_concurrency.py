"""Threads, the GIL and asyncio."""
import asyncio
import threading
import time
import unittest

import scalr_email
from scalr_email import NotConfiguredError, PermanentError, send, send_async

from base import EnvTestCase


class Counter(threading.Thread):
    """Counts as fast as it can in pure Python (needs the GIL to advance)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.n = 0
        self.stop = False

    def run(self):
        while not self.stop:
            self.n += 1


class Threads(EnvTestCase):
    def test_eight_threads_send_at_once(self):
        srv = self.smtp_server()
        barrier = threading.Barrier(8)
        results, errors = {}, []

        def worker(i):
            try:
                barrier.wait(5)
                results[i] = send(f"user{i}@example.com", f"message {i}", f"body {i}")
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        got = srv.wait_messages(8)
        self.assertEqual(sorted(m.message["Subject"] for m in got),
                         sorted(f"message {i}" for i in range(8)))
        for m in got:
            i = int(m.message["Subject"].split()[1])
            self.assertEqual(m.rcpt_tos, [f"user{i}@example.com"])
            self.assertEqual(m.message["Message-ID"], results[i])
        self.assertEqual(len(set(results.values())), 8)

    def test_gil_is_released_during_the_send(self):
        srv = self.smtp_server(data_delay=1.0)
        counter = Counter()
        samples = []

        def sample_during_data():
            # Runs while the server holds back its DATA reply, i.e. while
            # the main thread is inside send().
            srv.data_started.wait(10)
            samples.append(counter.n)
            time.sleep(0.6)
            samples.append(counter.n)

        sampler = threading.Thread(target=sample_during_data, daemon=True)
        counter.start()
        sampler.start()
        try:
            t0 = time.monotonic()
            send("user@example.com", "slow", "b")
            elapsed = time.monotonic() - t0
        finally:
            counter.stop = True
            counter.join(5)
            sampler.join(5)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertEqual(len(samples), 2)
        self.assertGreater(samples[1] - samples[0], 1000,
                           "the counter thread stood still while send() waited")
        self.assertEqual(len(srv.wait_messages(1)), 1)


class Async(EnvTestCase):
    def test_send_async_keeps_the_loop_responsive(self):
        srv = self.smtp_server(data_delay=1.0)

        async def main():
            ticks = 0
            done = False

            async def ticker():
                nonlocal ticks
                while not done:
                    await asyncio.sleep(0.02)
                    ticks += 1

            tick_task = asyncio.create_task(ticker())
            t0 = time.monotonic()
            mid = await send_async(to="user@example.com", subject="async", body="b",
                                   body_html="<p>b</p>")
            elapsed = time.monotonic() - t0
            done = True
            await tick_task
            return mid, ticks, elapsed

        mid, ticks, elapsed = asyncio.run(main())
        self.assertGreaterEqual(elapsed, 0.9)
        # ~50 ticks of 20 ms fit in one second when the loop is never blocked.
        self.assertGreater(ticks, 20)
        [got] = srv.wait_messages(1)
        self.assertEqual(got.message["Message-ID"], mid)

    def test_send_async_concurrent_gather(self):
        srv = self.smtp_server()

        async def main():
            return await asyncio.gather(*(
                send_async([f"u{i}@example.com"], f"s{i}", "b") for i in range(5)))

        mids = asyncio.run(main())
        self.assertEqual(len(set(mids)), 5)
        self.assertEqual(len(srv.wait_messages(5)), 5)

    def test_send_async_raises_the_same_exceptions(self):
        async def unconfigured():
            await send_async("user@example.com", "s", "b")

        with self.assertRaises(NotConfiguredError):
            asyncio.run(unconfigured())

        self.smtp_server(replies={"RCPT": "550 5.1.1 unknown"})

        async def rejected():
            await send_async("user@example.com", "s", "b")

        with self.assertRaises(PermanentError) as cm:
            asyncio.run(rejected())
        self.assertEqual(cm.exception.smtp_code, 550)

    def test_send_async_checks_types_at_once(self):
        async def main():
            coro = send_async("user@example.com", 3, "b")
            await coro

        with self.assertRaises(TypeError):
            asyncio.run(main())
        self.assertTrue(asyncio.iscoroutinefunction(scalr_email.send_async))


if __name__ == "__main__":
    unittest.main()
