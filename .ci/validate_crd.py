"""Independent check of crds/terraform.yaml with Python's jsonschema (beside kubernetes-validate,
which validates the CRD object itself but cannot validate custom resources).

The CRD's openAPIV3Schema is turned into a strict JSON Schema (unknown fields rejected where
the apiserver would prune them, `nullable` honoured), then:
- every example under examples/ must validate;
- the bad specs of the foundation issue must fail, each for the expected field.
Exit code 1 on any surprise.
"""

import copy
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def strict(node):
    """OpenAPI v3 (Kubernetes dialect) -> strict JSON Schema."""
    node = copy.deepcopy(node)
    if node.get("nullable") and "type" in node:
        node["type"] = [node["type"], "null"]
    if "properties" in node:
        node["properties"] = {k: strict(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        node["items"] = strict(node["items"])
    return node


def main():
    crd = yaml.safe_load((ROOT / "crds/terraform.yaml").read_text())
    schema = strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are the apiserver's own fields.
    for field in ("apiVersion", "kind"):
        schema["properties"][field] = {"type": "string"}
    schema["properties"]["metadata"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    checks = failures = 0

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
            status = "ok" if not errors else "FAILED"
            print(f"{status}: {path.relative_to(ROOT)} ({doc['metadata']['name']}) validates against the CRD schema")
            for error in errors:
                print(f"  {error}")
            checks += 1
            failures += bool(errors)

    original = yaml.safe_load((ROOT / "examples/staging-cluster.yaml").read_text())
    bad_cases = {
        "spec without containerRegistry": (lambda d: d["spec"].pop("containerRegistry"), "'containerRegistry' is a required property"),
        "spec without scripts.deploy": (lambda d: d["spec"]["scripts"].pop("deploy"), "'deploy' is a required property"),
        "unknown spec field": (lambda d: d["spec"].update(colour="blue"), "Additional properties are not allowed ('colour'"),
        "unknown provider": (lambda d: d["spec"]["containerRegistry"].update(provider="quay"), "'quay' is not one of"),
    }
    for name, (mutate, expected) in bad_cases.items():
        doc = copy.deepcopy(original)
        mutate(doc)
        messages = [e.message for e in validator.iter_errors(doc)]
        rejected = any(expected in m for m in messages)
        print(f"{'ok' if rejected else 'FAILED'}: {name} is rejected ({expected})")
        checks += 1
        failures += not rejected

    print(f"crd schema checks: {checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
