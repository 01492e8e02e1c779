"""Renders charts/alustan with the real Helm engine (PyPI helm-python-sdk), offline.

    render_chart.py [--values FILE]... [--show-only NAME]... [--json]

--show-only keeps the templates whose file name (without .yaml) is NAME, e.g. `rbac`; the
agent's end-to-end tests load `--show-only rbac --show-only serviceaccount --json` into
testenv's RBAC mode. Without --json the output is a multi-document YAML stream.
The release is named `alustan` in namespace `alustan-system`, as the README installs it.
"""

import argparse
import json
import pathlib
import sys

import helm_python
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "alustan"
RELEASE = "alustan"
NAMESPACE = "alustan-system"


def render(values=None, show_only=()):
    """{template path: [object, ...]} of the rendered chart (empty documents dropped).

    Raises helm_python.HelmError on a schema violation or a template error.
    """
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = {}
    for path, text in sorted(rendered.items()):
        if not path.endswith(".yaml"):
            continue
        if show_only and pathlib.PurePath(path).stem not in show_only:
            continue
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
        if docs:
            objects[path] = docs
    return objects


def merged_values(values=None):
    """The values a release would use: the chart's defaults coalesced with `values`, as Helm does."""
    return helm_python.Chart.load(CHART).merge_values(values or {})


def load_values(paths):
    values = {}
    for path in paths:
        values.update(yaml.safe_load(pathlib.Path(path).read_text()) or {})
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", action="append", default=[], help="a values file (repeatable)")
    parser.add_argument("--show-only", action="append", default=[], help="a template name, e.g. rbac (repeatable)")
    parser.add_argument("--json", action="store_true", help="print a JSON array of the objects")
    args = parser.parse_args()
    try:
        objects = render(load_values(args.values), args.show_only)
    except helm_python.HelmError as error:
        print(f"render_chart: {error}", file=sys.stderr)
        return 1
    flat = [obj for docs in objects.values() for obj in docs]
    if args.show_only and not flat:
        print(f"render_chart: no template rendered for --show-only {args.show_only}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(flat, sys.stdout)
    else:
        sys.stdout.write(yaml.safe_dump_all(flat, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
