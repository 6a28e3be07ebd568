"""Build scalr_email: one extension module holding the whole C library.

The library's sources (include/ and src/ of the scalr-email repository) are
looked for, in order, in:

  1. $SCALR_EMAIL_SRC (a directory holding include/scalr_email.h and src/),
  2. the directory above this file (a checkout of the repository),
  3. ./csrc (a copy vendored by `python3 setup.py sdist`).

They are copied under build/csrc/ (setuptools wants sources inside the
project directory) and compiled together with src/_scalr_email.c into
scalr_email._native, linked with OpenSSL.  Only PyInit__native is exported,
so the embedded library never clashes with a system libscalr-email.

No package index is needed:  pip install --no-build-isolation ./python
"""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_CSRC = os.path.join("build", "csrc")
VENDOR = "csrc"


def is_c_root(path):
    return bool(path) and os.path.isfile(os.path.join(path, "include", "scalr_email.h")) \
        and os.path.isdir(os.path.join(path, "src"))


def find_c_root():
    for cand in (os.environ.get("SCALR_EMAIL_SRC"), os.path.dirname(HERE),
                 os.path.join(HERE, VENDOR)):
        if cand and is_c_root(os.path.abspath(cand)):
            return os.path.abspath(cand)
    sys.exit("scalr_email: cannot find the C library (include/scalr_email.h and src/): "
             "build from a checkout of the repository, or set SCALR_EMAIL_SRC")


def library_files(root):
    """Relative paths of the library's C sources and headers under root."""
    out = ["include/scalr_email.h"]
    for pattern in ("src/*.c", "src/*.h", "src/*/*.c", "src/*/*.h"):
        out += [os.path.relpath(p, root) for p in glob.glob(os.path.join(root, pattern))]
    return sorted(set(out))


def mirror(root, dest):
    """Make dest an exact copy of the library files under root.  Unchanged
    files keep their timestamps, so rebuilds stay incremental."""
    dest = os.path.join(HERE, dest)
    wanted = set(library_files(root))
    for dirpath, _, files in os.walk(dest):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), dest)
            if rel not in wanted:
                os.remove(os.path.join(dirpath, f))
    for rel in wanted:
        src, dst = os.path.join(root, rel), os.path.join(dest, rel)
        if os.path.abspath(src) == os.path.abspath(dst):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            with open(src, "rb") as a, open(dst, "rb") as b:
                if a.read() == b.read():
                    continue
        except OSError:
            pass
        shutil.copy2(src, dst)


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, "openssl"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.split()


C_ROOT = find_c_root()
mirror(C_ROOT, BUILD_CSRC)
LIB_SOURCES = sorted(
    os.path.relpath(p, HERE)
    for pattern in ("src/*.c", "src/*/*.c")
    for p in glob.glob(os.path.join(HERE, BUILD_CSRC, pattern)))
HEADERS = sorted(
    os.path.relpath(p, HERE)
    for pattern in ("include/*.h", "src/*.h", "src/*/*.h")
    for p in glob.glob(os.path.join(HERE, BUILD_CSRC, pattern)))

ssl_cflags = pkg_config("--cflags") or []
ssl_libs = pkg_config("--libs") or ["-lssl", "-lcrypto"]


def uses(header):
    """Whether a library source includes header (the queue's store backends)."""
    for src in LIB_SOURCES:
        with open(os.path.join(HERE, src), encoding="utf-8", errors="replace") as f:
            if header in f.read():
                return True
    return False


# The durable queue's stores: SQLite (libsqlite3-dev) and PostgreSQL (libpq-dev).
QUEUE_LIBS, QUEUE_INCLUDES = [], []
if uses("<sqlite3.h>"):
    QUEUE_LIBS.append("sqlite3")
if uses("<libpq-fe.h>"):
    QUEUE_LIBS.append("pq")
    try:
        QUEUE_INCLUDES.append(subprocess.run(["pg_config", "--includedir"], check=True,
                                             capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        QUEUE_INCLUDES.append("/usr/include/postgresql")


class BuildExt(build_ext):
    """Export only the module's init function from the shared object."""

    def build_extension(self, ext):
        os.makedirs(self.build_temp, exist_ok=True)
        script = os.path.join(self.build_temp, "native.map")
        with open(script, "w") as f:
            f.write("{ global: PyInit__native; local: *; };\n")
        ext.extra_link_args = list(ext.extra_link_args or []) + [
            "-Wl,--version-script=" + script]
        super().build_extension(ext)


class Sdist(sdist):
    """Vendor the C library into csrc/ so the sdist builds on its own."""

    def run(self):
        if os.path.abspath(C_ROOT) != os.path.join(HERE, VENDOR):
            mirror(C_ROOT, VENDOR)
        super().run()


native = Extension(
    "scalr_email._native",
    sources=["src/_scalr_email.c"] + LIB_SOURCES,
    depends=HEADERS,
    include_dirs=[os.path.join(BUILD_CSRC, "include"), os.path.join(BUILD_CSRC, "src")] +
    QUEUE_INCLUDES,
    define_macros=[("_DEFAULT_SOURCE", None), ("_POSIX_C_SOURCE", "200809L")],
    extra_compile_args=["-std=c11", "-fvisibility=hidden"] + ssl_cflags,
    extra_link_args=[a for a in ssl_libs if not a.startswith("-l")],
    libraries=[a[2:] for a in ssl_libs if a.startswith("-l")] + ["idn2", "curl", "jansson", "pthread", "resolv"] +
    QUEUE_LIBS,
)

setup(
    name="scalr-email",
    version="0.1.0",
    description="Send transactional email through an SMTP provider (binding to libscalr-email)",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    packages=["scalr_email"],
    package_data={"scalr_email": ["py.typed", "*.pyi"]},
    ext_modules=[native],
    cmdclass={"build_ext": BuildExt, "sdist": Sdist},
    # `mail_inbox` for every pytest run where the package is installed.
    entry_points={"pytest11": ["scalr_email = scalr_email.pytest_plugin"]},
    extras_require={"django": ["Django>=3.2"], "pytest": ["pytest>=6"]},
    zip_safe=False,
)
