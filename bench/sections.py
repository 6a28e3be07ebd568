"""RESULTS.md sections that parts of the benchmark write on their own."""
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(md, begin, end, path=RESULTS):
    """Put md between its begin/end markers in RESULTS.md (appended the first time)."""
    text = path.read_text() if path.exists() else ""
    block = "%s\n%s\n%s\n" % (begin, md.rstrip(), end)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block
    path.write_text(text)
