#!/usr/bin/env python3
"""Docs as tests (issue 18): runs every code block of README.md and docs/*.md
marked `doctest` against a freshly made small archive (docs/doctest.md).

    tests/test_docs.py --tunebench BUILD/tunebench --source SRC [--cc CC] [FILE.md ...]
    tests/test_docs.py --self-test --source SRC         # the runner on tests/fixtures/doctest/

A block is marked by the word `doctest` right after its language in the
fence's info string (```sh doctest, ```python doctest, ```c doctest,
```r doctest), optionally followed by options (docs/doctest.md):

    continue          run the file's previous marked block of the same language first,
                      in the same process (a later snippet using an earlier one's names)
    requires=A,B      Python modules (python blocks) or commands (other blocks) the block
                      needs beyond its own imports; missing: skipped, with the reason printed
    exit=N            the exit status the block must end with (default 0)

Each file's blocks run in order, in a directory of their own under one scratch
directory prepared once per run (setup() below: a simulated study archive, a
run file, an export, CSV tables), so the docs' paths work as written. A
failure prints the file, the line of the block, the block and its output; the
exit status is 1 when any block failed, 0 otherwise (skips are listed with
their reason, never silent). Only the Python standard library is used here;
Python blocks run with an interpreter that has h5py and pandas
(TB_DOCS_PYTHON, this one, python3 or /usr/bin/python3).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

LANGS = {"sh": "sh", "bash": "sh", "shell": "sh", "console": None,
         "python": "python", "py": "python", "c": "c", "r": "r"}
OPTIONS = ("continue", "requires", "exit")
BLOCK_TIMEOUT = int(os.environ.get("TB_DOCS_BLOCK_TIMEOUT", "120"))


class Block:
    def __init__(self, path, line, lang, opts, code):
        self.path, self.line, self.lang, self.opts, self.code = path, line, lang, opts, code
        self.requires = [r for r in opts.get("requires", "").split(",") if r]
        self.exit = int(opts.get("exit", "0"))


def parse(path, display):
    """Every fenced block of a markdown file: (marked blocks, count of unmarked, errors)."""
    marked, unmarked, errors = [], 0, []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        start = i + 1  # 1-based line of the opening fence
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*" + re.escape(fence[0]) + "{%d,}\\s*$" % len(fence), lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            errors.append(f"{display}:{start}: the block is never closed")
        i += 1
        words = info.split()
        if "doctest" not in words:
            unmarked += 1
            continue
        where = f"{display}:{start}"
        if len(words) < 2 or words[1] != "doctest":
            errors.append(f"{where}: `doctest` must come right after the language (```sh doctest), got ```{info}")
            continue
        lang = LANGS.get(words[0].lower())
        if lang is None:
            errors.append(f"{where}: `{words[0]}` blocks cannot run; doctest runs sh, bash, python, c and r blocks")
            continue
        opts = {}
        for w in words[2:]:
            k, _, v = w.partition("=")
            if k not in OPTIONS:
                errors.append(f"{where}: unknown doctest option `{w}`; options: continue, requires=A,B, exit=N")
                continue
            if k == "exit" and not v.isdigit():
                errors.append(f"{where}: exit={v}: expected a number")
                continue
            opts[k] = v
        marked.append(Block(display, start, lang, opts, "\n".join(body) + "\n"))
    return marked, unmarked, errors


def run(cmd, cwd, env, timeout=BLOCK_TIMEOUT, stdin=None):
    """(exit status, combined output) of a command; 124 and a note when it timed out."""
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin)
        return p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        return 124, out + f"\n(timed out after {timeout} s)\n"


def has_modules(python, mods):
    """Whether python finds every module (found, not imported: an import of pandas takes a second)."""
    probe = "import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in sys.argv[1:]) else 1)"
    return subprocess.run([python, "-c", probe, *mods], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def find_python():
    """(interpreter, None) with h5py and pandas, or (a python, why the blocks are skipped)."""
    if os.environ.get("TB_DOCS_PYTHON"):  # this one or none
        cands = [os.environ["TB_DOCS_PYTHON"]]
    else:
        cands = [sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    seen = []
    for c in cands:
        if c and c not in seen and os.access(c, os.X_OK):
            seen.append(c)
    for c in seen:
        if has_modules(c, ["h5py", "pandas"]):
            return c, None
    return (seen[0] if seen else None), ("no python3 with h5py and pandas (tried " + (", ".join(seen) or
                                         ", ".join(c for c in cands if c)) +
                                         "; apt-get install python3-h5py python3-pandas, as scripts/deps.sh does)")


def python_imports(code):
    """Top-level module names a Python block imports."""
    mods = []
    for line in code.split("\n"):
        m = re.match(r"^\s*import\s+(.+)$", line)
        if m:
            for part in m.group(1).split(","):
                mods.append(part.strip().split()[0].split(".")[0])
        m = re.match(r"^\s*from\s+([\w.]+)\s+import\b", line)
        if m and not m.group(1).startswith("."):
            mods.append(m.group(1).split(".")[0])
    return [m for m in dict.fromkeys(mods) if m]


class Runner:
    def __init__(self, args, scratch):
        self.args, self.scratch = args, scratch
        self.python, self.python_missing = find_python()
        self.module_ok = {}
        self.failed, self.passed, self.skipped = [], 0, []

    def env(self, workdir):
        e = dict(os.environ)
        e["PATH"] = os.path.join(self.scratch, "bin") + os.pathsep + e.get("PATH", "")
        e["HOME"] = os.path.join(self.scratch, "home")
        e["TB_DOCS_SCRATCH"] = self.scratch
        e["TB_DOCS_SOURCE"] = self.args.source
        if self.args.tunebench:
            e["TUNEBENCH"] = self.args.tunebench
        e["PWD"] = workdir
        if self.args.cmake:
            e["PKG_CONFIG_PATH"] = os.path.join(e["HOME"], ".local", "lib", "pkgconfig")
        e.pop("TUNEBENCH_PLUGIN_PATH", None)
        e.setdefault("OMP_NUM_THREADS", "1")
        return e

    def has_module(self, mod):
        if mod not in self.module_ok:
            self.module_ok[mod] = self.python is not None and has_modules(self.python, [mod])
        return self.module_ok[mod]

    def skip_reason(self, b, code):
        if b.lang == "python":
            if self.python_missing:
                return self.python_missing
            missing = [m for m in python_imports(code) + b.requires if not self.has_module(m)]
            if missing:
                return "python module(s) missing: " + ", ".join(missing)
            return None
        need = list(b.requires)
        if b.lang == "r":
            need.insert(0, "Rscript")
        if b.lang == "c":
            need.insert(0, self.args.cc)
        missing = [c for c in need if not shutil.which(c)]
        return ("command(s) missing: " + ", ".join(missing)) if missing else None

    def run_block(self, b, code, workdir, n):
        base = os.path.join(workdir, f".doctest-{n:02d}")
        env = self.env(workdir)
        if b.lang == "sh":
            with open(base + ".sh", "w") as f:
                f.write(code)
            return run(["bash", "-e", "-o", "pipefail", base + ".sh"], workdir, env)
        if b.lang == "python":
            with open(base + ".py", "w") as f:
                f.write(code)
            return run([self.python, base + ".py"], workdir, env)
        if b.lang == "r":
            with open(base + ".R", "w") as f:
                f.write(code)
            return run(["Rscript", base + ".R"], workdir, env)
        # C: a plugin (it defines the entry) is built as a shared object as docs/plugins.md
        # says and loaded with tunebench plugins --plugin-path; anything else is a program
        with open(base + ".c", "w") as f:
            f.write(code)
        inc = ["-I" + os.path.join(self.args.source, "include", "tunebench")]
        flags = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
        if "TB_PLUGIN_DEFINE_ENTRY" in code or "tunebench_plugin_entry" in code:
            # NAME.so after the descriptor's .name, so later blocks of the file can load it
            m = re.search(r'\.name\s*=\s*"([a-z0-9_]+)"', code)
            name = m.group(1) if m else None
            so = os.path.join(workdir, (name or f".doctest-{n:02d}") + ".so")
            rc, out = run([self.args.cc, "-shared", "-fPIC", "-fvisibility=hidden", *flags, *inc,
                           base + ".c", "-o", so, "-Wl,--no-undefined"], workdir, env)
            if rc != 0:
                return rc, "compiling the plugin:\n" + out
            rc, out = run(["tunebench", "plugins", "--plugin-path", so], workdir, env)
            out = f"$ tunebench plugins --plugin-path {os.path.basename(so)}\n" + out
            if rc == 0 and name and not re.search(r"\b%s\b" % name, out):
                return 1, out + f"\n(test_docs: the plugin {name} is not listed)\n"
            return rc, out
        exe = base + ".out"
        rc, out = run([self.args.cc, *flags, *inc, base + ".c", "-o", exe, "-lm"], workdir, env)
        if rc != 0:
            return rc, "compiling:\n" + out
        return run([exe], workdir, env)

    def run_file(self, display, blocks):
        """Runs one file's blocks in order in a directory of its own."""
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", display)
        workdir = os.path.join(self.scratch, "work", stem)
        os.makedirs(workdir)
        prepared = os.path.join(self.scratch, "prepared")
        for name in os.listdir(prepared):
            src = os.path.join(prepared, name)
            if os.path.isdir(src) and not os.path.islink(src):
                # runs/, studies/: a folder of this file's own, so what a block makes there
                # (studies/simulated) is not seen by another file's blocks
                os.makedirs(os.path.join(workdir, name))
                for child in os.listdir(src):
                    os.symlink(os.path.join(src, child), os.path.join(workdir, name, child))
            else:
                os.symlink(src, os.path.join(workdir, name))
        last = {}  # language -> code of the previous marked block (with what it continued)
        for n, b in enumerate(blocks):
            code = b.code
            if "continue" in b.opts:
                if b.lang not in last:
                    self.fail(b, b.code, 2, "`continue`: no earlier marked block of this language in the file")
                    continue
                code = last[b.lang] + code
            last[b.lang] = code
            why = self.skip_reason(b, code)
            if why:
                self.skipped.append(f"{b.path}:{b.line} ({b.lang}): {why}")
                print(f"SKIP {b.path}:{b.line} ({b.lang}): {why}", flush=True)
                continue
            t0 = time.monotonic()
            rc, out = self.run_block(b, code, workdir, n)
            dt = time.monotonic() - t0
            if rc != b.exit:
                self.fail(b, code, rc, out)
            else:
                self.passed += 1
                print(f"ok   {b.path}:{b.line} ({b.lang}, {dt:.1f} s)", flush=True)
                if self.args.verbose:
                    print("".join("  | " + l + "\n" for l in out.rstrip("\n").split("\n")), end="", flush=True)

    def fail(self, b, code, rc, out):
        self.failed.append(f"{b.path}:{b.line}")
        numbered = "".join(f"  {b.line + 1 + i:4d} | {l}\n" for i, l in enumerate(b.code.rstrip("\n").split("\n")))
        want = f" (expected {b.exit})" if b.exit else ""
        print(f"FAIL {b.path}:{b.line} ({b.lang}): exit status {rc}{want}\n"
              f"--- the block ({b.path}, from line {b.line + 1}"
              f"{', after the blocks it continues' if code != b.code else ''}):\n{numbered}"
              f"--- its output:\n" + "".join("  " + l + "\n" for l in out.rstrip("\n").split("\n")) +
              "---", flush=True)


def setup(scratch, args):
    """The scratch directory every file's blocks see (docs/doctest.md lists it)."""
    tb = os.path.abspath(args.tunebench)
    p = os.path.join(scratch, "prepared")
    for d in (p, os.path.join(scratch, "bin"), os.path.join(scratch, "home"), os.path.join(p, "runs"),
              os.path.join(p, "studies")):
        os.makedirs(d, exist_ok=True)
    # tunebench on PATH (the link resolves to the build, so its plugins are found next to it);
    # build/tunebench, configs/ and docs/ as in the source tree
    os.symlink(tb, os.path.join(scratch, "bin", "tunebench"))
    os.symlink(os.path.dirname(tb), os.path.join(p, "build"))
    for name in ("configs", "docs", "include"):
        os.symlink(os.path.join(args.source, name), os.path.join(p, name))
    # a browser stand-in: the docs open the report with one; it checks the page is there
    for name in ("xdg-open", "chromium"):
        stub = os.path.join(scratch, "bin", name)
        with open(stub, "w") as f:
            f.write('#!/bin/sh\n# test_docs: stands in for a browser; the page must exist\n'
                    'for a; do case "$a" in -*) ;; *) test -s "$a" || { echo "$0: $a: no such page" >&2; exit 1; } ;;'
                    ' esac; done\necho "(test_docs: would open $*)"\n')
        os.chmod(stub, 0o755)
    env = dict(os.environ, OMP_NUM_THREADS="1", TUNEBENCH_LOG_LEVEL="warn")
    env.pop("TUNEBENCH_PLUGIN_PATH", None)
    study = "studies/fashion_mnist"
    steps = [
        # a study: 3 scripted participants, one final seed, a random search (sweeps/s0001-random.h5)
        [tb, "simulate", study, "--participants", "3", "--final-seeds", "1", "--random-search", "4", "--quiet"],
        # 2-fold cross-validation of its preset configuration (sweeps/s0002-folds.h5)
        [tb, "train", f"{study}/simulate.ini", "--folds", "2", "--set", "train.epochs=1", "--quiet"],
        # a run file of tunebench train, where the docs keep the quickstart's
        [tb, "train", f"{study}/simulate.ini", "--out", "runs/quickstart.h5"],
        [tb, "export", study, "--single-file", "export.h5"],
        [tb, "export", study, "--csv", "tables"],
    ]
    if args.cmake:
        # an installed tunebench in ~/.local, as docs/plugins.md builds against it
        steps.insert(0, [args.cmake, "--install", os.path.dirname(tb), "--prefix",
                         os.path.join(scratch, "home", ".local")])
    for cmd in steps:
        rc, out = run(cmd, p, env, timeout=300)
        if rc != 0:
            print("test_docs: preparing the scratch directory failed: " + " ".join(cmd) + f" (exit {rc})\n" + out)
            return False
    return True


def self_test(args):
    """The runner must fail on broken blocks, name them and show their output."""
    fixtures = os.path.join(args.source, "tests", "fixtures", "doctest")
    me = [sys.executable, os.path.abspath(__file__), "--source", args.source, "--no-setup", "--root", fixtures]
    ok = True

    def check(name, cond, out):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + "self-test: " + name, flush=True)
        if not cond:
            ok = False
            print("".join("    " + l + "\n" for l in out.rstrip("\n").split("\n")))

    rc, out = run(me + ["good.md"], None, None)
    check("good.md passes (exit 0)", rc == 0, out)
    check("good.md: continue sees the earlier block", "ok   good.md:7 (sh" in out, out)
    check("good.md: a C program is compiled and run", "ok   good.md:23 (c" in out, out)
    check("good.md: exit=3 is what the block must end with", "ok   good.md:11 (sh" in out, out)
    check("good.md: a missing module is a skip with its reason",
          "SKIP good.md:" in out and "no_such_module_tb" in out, out)
    rc, out = run(me + ["good.md"], None, dict(os.environ, TB_DOCS_PYTHON="/nonexistent/python3"))
    check("without h5py and pandas, Python blocks are skipped with the reason",
          rc == 0 and "SKIP good.md:15 (python): no python3 with h5py and pandas" in out, out)
    rc, out = run(me + ["broken.md"], None, None)
    check("broken.md fails (exit 1)", rc == 1, out)
    check("broken.md: the failing sh block is named with its line", "FAIL broken.md:5 (sh)" in out, out)
    check("broken.md: its output is shown", "the snippet drifted" in out, out)
    check("broken.md: the block itself is shown", "| false" in out, out)
    check("broken.md: a failing python block is named", "FAIL broken.md:10 (python)" in out or
          "SKIP broken.md:10 (python)" in out, out)
    check("broken.md: exit=2 with exit 0 fails", "FAIL broken.md:16 (sh): exit status 0 (expected 2)" in out, out)
    check("broken.md: the blocks after a failure still run", "ok   broken.md:20" in out, out)
    check("broken.md: a C block that does not compile fails", "FAIL broken.md:26 (c)" in out and
          "renamed_function" in out, out)
    rc, out = run(me + ["malformed.md"], None, None)
    check("malformed.md: a misplaced doctest and an unknown option are errors (exit 1)",
          rc == 1 and "malformed.md:1: `doctest` must come right after the language" in out and
          "unknown doctest option `contineu`" in out and "malformed.md:9: the block is never closed" in out, out)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunebench", help="the tunebench executable to test (build/tunebench)")
    ap.add_argument("--source", required=True, help="the source tree (README.md, docs/)")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"), help="C compiler for c blocks")
    ap.add_argument("--cmake", default=shutil.which("cmake"), help="cmake, to install the build into ~/.local (docs/plugins.md)")
    ap.add_argument("--self-test", action="store_true", help="run the runner on tests/fixtures/doctest first")
    ap.add_argument("--no-setup", action="store_true", help="no scratch archive (the self-test's fixtures)")
    ap.add_argument("--root", help="read FILES relative to this folder (default: --source)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the output of passing blocks too")
    ap.add_argument("files", nargs="*", help="markdown files (default: README.md docs/*.md)")
    args = ap.parse_args()
    args.source = os.path.abspath(args.source)
    t_start = time.monotonic()

    if args.self_test and not self_test(args):
        print("test_docs: the runner's self-test failed")
        return 1
    root = os.path.abspath(args.root or args.source)
    files = args.files or (["README.md"] + sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md"))))
    parsed, errors = [], []
    for rel in files:
        blocks, unmarked, errs = parse(os.path.join(root, rel), rel)
        parsed.append((rel, blocks, unmarked))
        errors += errs
    for e in errors:
        print("ERROR " + e)
    if not any(blocks for _, blocks, _ in parsed):
        args.no_setup = True  # nothing to run: no archive to make
    if not args.no_setup and not args.tunebench:
        print("test_docs: --tunebench is required to prepare the scratch directory")
        return 2

    # tmpfs when there is one: the archive fsyncs every epoch, which tmpfs makes free
    # (with room to spare: the blocks' archives take some 80 MB; Docker's /dev/shm has 64 MiB)
    base = os.environ.get("TB_DOCS_TMPDIR")
    if not base and os.access("/dev/shm", os.W_OK):
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 512 << 20:
            base = "/dev/shm"
    scratch = tempfile.mkdtemp(prefix="tunebench-docs.", dir=base)
    try:
        if args.no_setup:
            os.makedirs(os.path.join(scratch, "prepared"))
            os.makedirs(os.path.join(scratch, "bin"))
            os.makedirs(os.path.join(scratch, "home"))
        else:
            t0 = time.monotonic()
            if not setup(scratch, args):
                return 1
            print(f"prepared {scratch}/prepared in {time.monotonic() - t0:.1f} s", flush=True)
        r = Runner(args, scratch)
        print("python blocks: " + (f"skipped: {r.python_missing}" if r.python_missing else r.python))
        for rel, blocks, _ in parsed:
            if blocks:
                r.run_file(rel, blocks)
        print("blocks per file (marked / not marked):")
        for rel, blocks, unmarked in parsed:
            print(f"  {rel}: {len(blocks)} / {unmarked}")
        print(f"test_docs: {r.passed} passed, {len(r.failed)} failed, {len(r.skipped)} skipped, "
              f"{len(errors)} errors in {time.monotonic() - t_start:.1f} s")
        for s in r.skipped:
            print("  skipped " + s)
        for f in r.failed:
            print("  FAILED " + f)
        return 1 if r.failed or errors else 0
    finally:
        if args.keep:
            print("kept " + scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
