"""Replaces the README's CR reference (between the crd-reference markers) with stdin."""

import sys

START, END = "<!-- crd-reference:start -->\n", "<!-- crd-reference:end -->"
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
try:
    head, tail = text[: text.index(START) + len(START)], text[text.index(END):]
except ValueError:
    sys.exit(f"{path}: the crd-reference markers are missing")
open(path, "w", encoding="utf-8").write(head + sys.stdin.read() + tail)
