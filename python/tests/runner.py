"""Run every python/tests/test_*.py with unittest; write "passed failed
skipped" to the file named by argv[1] (run.sh adds the counts up)."""
import faulthandler
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out = sys.argv[1]
    pattern = sys.argv[2] if len(sys.argv) > 2 else "test_*.py"
    faulthandler.dump_traceback_later(240, exit=True)  # never hang CI
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import scalr_email
    print(f"python {sys.version.split()[0]} ({sys.executable}); "
          f"scalr_email from {os.path.dirname(scalr_email.__file__)}", flush=True)
    suite = unittest.defaultTestLoader.discover(HERE, pattern=pattern, top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    with open(out, "w") as f:
        f.write(f"{passed} {failed} {skipped}\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
