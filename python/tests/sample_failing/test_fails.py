"""A test that fails while its inbox runs: the inbox must still be stopped."""
import os


def test_fails_with_inbox_running(mail_inbox):
    with open(os.environ["SAMPLE_PID_LOG"], "a") as f:
        f.write(f"{mail_inbox._proc.pid}\n")
    assert False, "failing on purpose"
