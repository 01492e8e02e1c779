#!/usr/bin/env python3
"""The differential conformance run: every test of testenv's API-server conformance suites on the
embedded server and on the real Kubernetes control plane, printed side by side.

Fails when a test fails on the embedded server, when a test fails on the real one without being
listed (with its reason) in testenv/tests/conformance-divergences.txt, or when a listed test passes
there (the list is stale). Needs ALUSTAN_CONTROLPLANE_BIN (see `make test-real`).
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = ["apiserver_kube", "apiserver_kubectl"]
DIVERGENCES = ROOT / "testenv/tests/conformance-divergences.txt"
NEXTEST = re.compile(r"^\s*(PASS|FAIL|SIGKILL|SIGSEGV|SIGABRT|TIMEOUT)\s+\[[^\]]*\]\s+(?:\(\s*\d+/\d+\)\s+)?\S+\s+(\S+)\s*$")
LIBTEST = re.compile(r"^test (\S+) \.\.\. (ok|FAILED)$")


def run(backend: str) -> dict[str, str]:
    """Runs the suites with ALUSTAN_CONTROL_PLANE=backend: {test: 'pass' | 'FAIL'}."""
    env = dict(os.environ, ALUSTAN_CONTROL_PLANE=backend)
    targets = [arg for suite in SUITES for arg in ("--test", suite)]
    has_nextest = subprocess.run(["cargo", "nextest", "--version"], capture_output=True).returncode == 0
    if has_nextest:
        command = ["cargo", "nextest", "run", "-p", "alustan-testenv", "--locked", "--no-fail-fast", *targets]
    else:
        # A hung test must still end: the whole run is bounded.
        command = ["timeout", "--signal=KILL", "900", "cargo", "test", "-p", "alustan-testenv", "--locked",
                   "--no-fail-fast", *targets]
    start = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    results: dict[str, str] = {}
    for line in (done.stdout + done.stderr).splitlines():
        if m := NEXTEST.match(line):
            results[m.group(2)] = "pass" if m.group(1) == "PASS" else "FAIL"
        elif m := LIBTEST.match(line):
            results[m.group(1)] = "pass" if m.group(2) == "ok" else "FAIL"
    print(f"{backend}: {len(results)} tests in {time.monotonic() - start:.0f} s", file=sys.stderr)
    if not results:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
    return results


def divergences() -> dict[str, str]:
    listed = {}
    for line in DIVERGENCES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.strip().partition(" ")
            listed[name] = reason.strip()
    return listed


def main() -> int:
    if not os.environ.get("ALUSTAN_CONTROLPLANE_BIN"):
        print("ALUSTAN_CONTROLPLANE_BIN is not set: run `make test-real` (it builds the control plane)", file=sys.stderr)
        return 2
    embedded, real, listed = run("embedded"), run("real"), divergences()
    names = sorted(set(embedded) | set(real))
    if not names:
        print("no test ran", file=sys.stderr)
        return 1
    width = max(len(n) for n in names)
    print(f"{'test':<{width}}  embedded  real  note")
    problems = []
    for name in names:
        e, r = embedded.get(name, "-"), real.get(name, "-")
        note = ""
        if e != "pass":
            note = "FAILS ON THE EMBEDDED SERVER"
        elif name in listed:
            note = f"divergence: {listed[name]}" if r == "FAIL" else "LISTED AS A DIVERGENCE BUT PASSES: remove it from the list"
        elif r != "pass":
            note = "FAILS ON THE REAL CONTROL PLANE: fix testenv (or list it with its reason)"
        if note.isupper() or note.startswith(("FAILS", "LISTED")):
            problems.append(name)
        print(f"{name:<{width}}  {e:<8}  {r:<4}  {note}")
    for name in sorted(set(listed) - set(names)):
        problems.append(name)
        print(f"{name:<{width}}  -         -     LISTED BUT NO SUCH TEST")
    agree = sum(1 for n in names if embedded.get(n) == real.get(n) == "pass")
    print(f"\n{agree} of {len(names)} tests pass on both; {len(listed)} documented divergences; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    shutil.which("cargo") or sys.exit("cargo is not on PATH")
    sys.exit(main())
