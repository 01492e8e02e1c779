"""Checks charts/alustan with the real Helm engine and the official Kubernetes schemas.

1. `helm lint --strict` (helm-python-sdk); Chart.yaml's appVersion is the agent's version; the
   chart's CRD is the generated one.
2. Renders the chart with the default values and with each charts/alustan/ci/*-values.yaml
   (together they set every value of values.yaml to something else than its default); any
   render error fails.
3. Writes every rendered manifest and the chart's CRD to a temp dir and runs
   `kubernetes-validate --strict` on them for each Kubernetes version given on the command line.
   The ServiceMonitor (monitoring.coreos.com/v1) is a Prometheus Operator CRD that
   kubernetes-validate has no schema for (it would only warn "Couldn't find schema" and pass):
   it is left out of that run and checked here instead
   with a minimal structural check (required fields, known keys, selector and port matching the
   metrics Service). That check is ours, not the operator's schema.
4. Asserts what matters: no `*` in any RBAC rule; the Pod and container securityContext; every
   env name is one the agent reads (agent/src/config.rs `env = "..."`, plus POD_NAME); list and
   JSON values reach the env as strings; the schema rejects unknown keys and bad values; values.yaml
   documents every key; the README lists every value.
5. The krew manifest plugins/alustan.yaml has the shape krew expects.

Exit status 1 on any failure, with every failure listed.
"""

import json
import pathlib
import re
import subprocess
import sys
import tempfile
import tomllib

import helm_python
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import render_chart  # noqa: E402  (the shared renderer beside this file)

ROOT = render_chart.ROOT
CHART = render_chart.CHART
VENV_BIN = pathlib.Path(sys.executable).parent

# Env names the chart may pass before the agent reads them (a branch in progress). Empty: every
# env name of the chart must be one the agent reads.
PENDING_AGENT_ENV = set()

# The agent's built-in credential sources (agent/src/gather.rs `CredentialSource::defaults`, whose
# unit test compares them with values.yaml); the chart's default must equal them.
AGENT_DEFAULT_CREDENTIALS = [
    {
        "name": "argocd",
        "namespace": "argocd",
        "secrets": [
            {"name": "argocd-initial-admin-secret", "key": "password"},
            {"name": "argocd-secret", "key": "admin.password"},
        ],
        "username": "admin",
    },
    {
        "name": "grafana",
        "namespace": "monitoring",
        "secrets": [{"name": "grafana", "key": "admin-password"}],
        "usernameKey": "admin-user",
        "username": "admin",
    },
]

# Values whose content is a Kubernetes type of its own (ResourceRequirements): documented as one.
FREE_FORM = {"resources"}

REGISTRY_CONFIG_PATH = "/etc/alustan/registry/config.json"

# How plugins/alustan.yaml marks what the release process fills in.
KREW_PLACEHOLDER = "RELEASE-FILLS-IN"


class Checks:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok: {what}")
        else:
            self.failures.append(what)
            print(f"FAILED: {what}" + (f"\n  {detail}" if detail else ""))
        return ok


def agent_env_names():
    """Every env var the agent reads: clap `env = "..."` in config.rs and std::env::var("...")."""
    names = set()
    for path in (ROOT / "agent" / "src").rglob("*.rs"):
        text = path.read_text()
        names |= set(re.findall(r'\benv\s*=\s*"([A-Z0-9_]+)"', text))
        names |= set(re.findall(r'env::var(?:_os)?\("([A-Z0-9_]+)"\)', text))
    return names


def workspace_version():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    return cargo["workspace"]["package"]["version"]


def leaf_paths(values, schema, prefix=()):
    """Dotted paths of the documented values: strict schema objects are walked, the rest are leaves."""
    paths = {}
    for key, value in values.items():
        node = schema.get("properties", {}).get(key, {})
        path = prefix + (key,)
        strict = node.get("additionalProperties") is False and "properties" in node
        if isinstance(value, dict) and strict and key not in FREE_FORM:
            paths.update(leaf_paths(value, node, path))
        else:
            paths[".".join(path)] = value
    return paths


def get_path(values, dotted):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None, False
        node = node[part]
    return node, True


def undocumented_keys(text):
    """Keys of values.yaml without a comment line right above (list items and free-form blocks
    are documented by the comment above their key)."""
    missing, previous = [], ""
    list_indent = free_indent = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            previous = ""
            continue
        if free_indent is not None and indent > free_indent:
            continue
        free_indent = None
        in_list = list_indent is not None and (indent > list_indent or (indent == list_indent and stripped.startswith("- ")))
        if stripped.startswith("- ") and not in_list:
            list_indent, in_list = indent, True
        if in_list:
            previous = stripped
            continue
        list_indent = None
        match = re.match(r"([A-Za-z][\w.-]*):", stripped)
        if match and not previous.startswith("#"):
            missing.append(match.group(1))
        if match and match.group(1) in FREE_FORM:
            free_indent = indent
        previous = stripped
    return missing


def objects_by_kind(rendered):
    found = {}
    for docs in rendered.values():
        for obj in docs:
            found.setdefault(obj["kind"], []).append(obj)
    return found


def check_rbac(checks, label, kinds):
    for kind in ("ClusterRole", "Role"):
        for role in kinds.get(kind, []):
            for rule in role.get("rules", []):
                fields = [v for key in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs") for v in rule.get(key, [])]
                checks.check(
                    not any("*" in str(v) for v in fields),
                    f"{label}: {kind} {role['metadata']['name']} rule {rule.get('resources')} has no '*'",
                    str(rule),
                )
                reads_all = {"list", "watch"} & set(rule.get("verbs", []))
                if "secrets" in rule.get("resources", []) and reads_all:
                    checks.check(
                        bool(rule.get("resourceNames")),
                        f"{label}: {kind} {role['metadata']['name']} lists or watches Secrets only by name",
                        str(rule),
                    )


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_deployment(checks, label, kinds, values):
    deployments = kinds.get("Deployment", [])
    if not checks.check(len(deployments) == 1, f"{label}: exactly one Deployment"):
        return
    pod = deployments[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    checks.check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532, f"{label}: Pod runs as non-root 65532", str(psc))
    checks.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: Pod seccomp RuntimeDefault")
    checks.check(
        csc.get("runAsNonRoot") is True
        and csc.get("runAsUser") == 65532
        and csc.get("readOnlyRootFilesystem") is True
        and csc.get("allowPrivilegeEscalation") is False
        and csc.get("capabilities", {}).get("drop") == ["ALL"]
        and csc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        f"{label}: container securityContext (non-root 65532, read-only root, no escalation, drop ALL, seccomp)",
        str(csc),
    )
    probes = (container.get("livenessProbe", {}).get("httpGet", {}), container.get("readinessProbe", {}).get("httpGet", {}))
    checks.check(
        probes[0].get("path") == "/healthz" and probes[1].get("path") == "/readyz" and probes[0].get("port") == probes[1].get("port") == "metrics",
        f"{label}: liveness /healthz and readiness /readyz on the metrics port",
    )
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    checks.check(ports.get("metrics") == values["metrics"]["port"], f"{label}: metrics containerPort is metrics.port")

    env = env_of(container)
    known = agent_env_names()
    for name in sorted(PENDING_AGENT_ENV & known):
        print(f"note: the agent now reads {name}: remove it from PENDING_AGENT_ENV in {pathlib.Path(__file__).name}")
    unknown = sorted(set(env) - known - PENDING_AGENT_ENV)
    checks.check(not unknown, f"{label}: every env name is one the agent reads", f"unknown to the agent: {unknown}")
    not_strings = [n for n, e in env.items() if "valueFrom" not in e and not isinstance(e.get("value"), str)]
    checks.check(not not_strings, f"{label}: every env value is a string", str(not_strings))
    for name in ("POD_NAME", "POD_NAMESPACE"):
        checks.check("fieldRef" in env.get(name, {}).get("valueFrom", {}), f"{label}: {name} from the downward API")

    expected = {
        "SYNC_INTERVAL": values["syncInterval"],
        "REGISTRY_TIMEOUT": values["registryTimeout"],
        "JOB_ACTIVE_DEADLINE_SECONDS": str(values["job"]["activeDeadlineSeconds"]),
        "JOB_TTL_SECONDS_AFTER_FINISHED": str(values["job"]["ttlSecondsAfterFinished"]),
        "RETRY_BASE": values["retry"]["base"],
        "RETRY_MAX": values["retry"]["max"],
        "RETRY_ATTEMPTS": str(values["retry"]["attempts"]),
        "LOG_LEVEL": values["log"]["level"],
        "LOG_FORMAT": values["log"]["format"],
        "LEADER_ELECT": str(values["leaderElection"]["enabled"]).lower(),
        "LEASE_NAME": values["leaderElection"]["leaseName"],
        "METRICS_ADDR": f"0.0.0.0:{values['metrics']['port']}",
        "INSECURE_REGISTRIES": ",".join(values["insecureRegistries"]) or None,
        "JOB_SERVICE_ACCOUNT": values["job"]["serviceAccountName"] or None,
        "JOB_IMAGE_PULL_SECRETS": ",".join(values["job"]["imagePullSecrets"]) or None,
        "WATCH_NAMESPACE": values["watchNamespace"] or None,
        "REGISTRY_CONFIG": REGISTRY_CONFIG_PATH if values["containerRegistrySecret"] or values["existingSecret"] else None,
    }
    wrong = {k: (env.get(k, {}).get("value"), v) for k, v in expected.items() if env.get(k, {}).get("value") != v}
    checks.check(not wrong, f"{label}: env values match the values (name: (rendered, expected))", str(wrong))
    try:
        sources = json.loads(env["CREDENTIAL_SOURCES"]["value"])
    except (KeyError, ValueError) as error:
        sources = error
    checks.check(sources == values["credentials"], f"{label}: CREDENTIAL_SOURCES is the JSON of credentials", str(sources))

    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    checks.check(volumes.get("tmp", {}).get("emptyDir") == {} and mounts.get("tmp", {}).get("mountPath") == "/tmp", f"{label}: /tmp is an emptyDir")
    secret_name = values["existingSecret"] or (values["containerRegistrySecret"] and "registry")
    if secret_name:
        secret = volumes.get("registry", {}).get("secret", {})
        key = "config.json" if values["containerRegistrySecret"] else values["existingSecretKey"]
        checks.check(
            mounts.get("registry", {}).get("mountPath") == str(pathlib.PurePath(REGISTRY_CONFIG_PATH).parent)
            and mounts["registry"].get("readOnly") is True
            and secret.get("items") == [{"key": key, "path": "config.json"}],
            f"{label}: the registry Secret's {key} is mounted read-only at {REGISTRY_CONFIG_PATH}",
            str((mounts.get("registry"), secret)),
        )
        if values["existingSecret"]:
            checks.check(secret.get("secretName") == values["existingSecret"], f"{label}: existingSecret is the mounted Secret")
    else:
        checks.check("registry" not in volumes, f"{label}: no registry volume without a registry secret")
    checks.check(pod.get("serviceAccountName") == service_account_name(kinds, values), f"{label}: the Pod runs as the chart's ServiceAccount")


def service_account_name(kinds, values):
    accounts = kinds.get("ServiceAccount", [])
    if values["serviceAccount"]["create"]:
        return accounts[0]["metadata"]["name"] if accounts else None
    return values["serviceAccount"]["name"] or "default"


def check_service_monitor(checks, label, monitor, kinds):
    """A minimal structural check of monitoring.coreos.com/v1 ServiceMonitor (no schema available)."""
    problems = []
    if monitor.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append("apiVersion")
    if set(monitor) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"unknown top-level keys {set(monitor) - {'apiVersion', 'kind', 'metadata', 'spec'}}")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", monitor.get("metadata", {}).get("name", "")):
        problems.append("metadata.name")
    if not all(isinstance(v, str) for v in monitor.get("metadata", {}).get("labels", {}).values()):
        problems.append("labels must be strings")
    spec = monitor.get("spec", {})
    if set(spec) - {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit"}:
        problems.append(f"unknown spec keys {set(spec)}")
    services = [s for s in kinds.get("Service", []) if s["metadata"]["name"].endswith("-metrics")]
    service = services[0] if services else {"metadata": {"labels": {}}, "spec": {"ports": []}}
    match = spec.get("selector", {}).get("matchLabels", {})
    if not match or any(service["metadata"].get("labels", {}).get(k) != v for k, v in match.items()):
        problems.append("spec.selector.matchLabels does not select the metrics Service")
    port_names = {p.get("name") for p in service["spec"]["ports"]}
    endpoints = spec.get("endpoints", [])
    if not endpoints:
        problems.append("no endpoints")
    for endpoint in endpoints:
        if set(endpoint) - {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}:
            problems.append(f"unknown endpoint keys {set(endpoint)}")
        if endpoint.get("port") not in port_names:
            problems.append(f"endpoint port {endpoint.get('port')} is not a port of the metrics Service")
        if not re.fullmatch(r"(\d+(ms|s|m|h))+", str(endpoint.get("interval", "30s"))):
            problems.append("endpoint interval is not a Prometheus duration")
    checks.check(not problems, f"{label}: ServiceMonitor passes the structural check (no schema is available for it)", str(problems))


def check_credential_watch(checks, label, kinds, values):
    """The agent watches each credential source's Secret by name: RBAC allows exactly those."""
    wanted = sorted({s["name"] for source in values["credentials"] for s in source["secrets"]})
    granted = [
        sorted(rule.get("resourceNames", []))
        for role in kinds.get("ClusterRole", [])
        for rule in role.get("rules", [])
        if "secrets" in rule.get("resources", []) and {"list", "watch"} <= set(rule.get("verbs", []))
    ]
    expected = [wanted] if wanted and values["rbac"]["create"] else []
    checks.check(granted == expected, f"{label}: list/watch of exactly the credential sources' Secrets", str(granted))


def check_render(checks, label, values, rendered):
    kinds = objects_by_kind(rendered)
    check_rbac(checks, label, kinds)
    check_credential_watch(checks, label, kinds, values)
    check_deployment(checks, label, kinds, values)
    monitors = kinds.get("ServiceMonitor", [])
    checks.check(len(monitors) == int(values["metrics"]["serviceMonitor"]["enabled"]), f"{label}: ServiceMonitor only when enabled")
    for monitor in monitors:
        check_service_monitor(checks, label, monitor, kinds)
    checks.check(len(kinds.get("PodDisruptionBudget", [])) == int(values["podDisruptionBudget"]["enabled"]), f"{label}: PodDisruptionBudget only when enabled")
    secrets = kinds.get("Secret", [])
    checks.check(len(secrets) == int(bool(values["containerRegistrySecret"])), f"{label}: a registry Secret only from containerRegistrySecret")
    for secret in secrets:
        checks.check(secret.get("data", {}).get("config.json") == values["containerRegistrySecret"], f"{label}: the Secret's config.json is containerRegistrySecret as given")
    rbac_kinds = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    expected_rbac = {k: int(values["rbac"]["create"]) for k in rbac_kinds}
    if not values["leaderElection"]["enabled"]:
        expected_rbac.update(Role=0, RoleBinding=0)
    checks.check({k: len(kinds.get(k, [])) for k in rbac_kinds} == expected_rbac, f"{label}: RBAC objects as rbac.create/leaderElection say")
    account = service_account_name(kinds, values)
    subjects = [s for kind in ("ClusterRoleBinding", "RoleBinding") for b in kinds.get(kind, []) for s in b["subjects"]]
    checks.check(all(s["name"] == account and s["namespace"] == render_chart.NAMESPACE for s in subjects), f"{label}: bindings name the agent's ServiceAccount")
    leases = [r for role in kinds.get("Role", []) for r in role["rules"] if r.get("resourceNames")]
    checks.check(all(r["resourceNames"] == [values["leaderElection"]["leaseName"]] for r in leases), f"{label}: the lease Role names leaderElection.leaseName")


def validate_manifests(checks, renders, versions):
    with tempfile.TemporaryDirectory(prefix="alustan-chart-") as tmp:
        out = pathlib.Path(tmp)
        files = [out / "crds-terraform.yaml"]
        files[0].write_text((CHART / "crds" / "terraform.yaml").read_text())
        skipped = 0
        for label, rendered in renders.items():
            for template, docs in rendered.items():
                for index, obj in enumerate(docs):
                    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
                        skipped += 1
                        continue
                    path = out / f"{label}--{pathlib.PurePath(template).stem}-{index}.yaml"
                    path.write_text(yaml.safe_dump(obj, sort_keys=False))
                    files.append(path)
        print(f"wrote {len(files)} manifests to validate ({skipped} ServiceMonitors checked structurally instead)")
        for version in versions:
            result = subprocess.run(
                [str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", "-k", version, *map(str, files)],
                capture_output=True,
                text=True,
                check=False,
            )
            checks.check(
                result.returncode == 0,
                f"kubernetes-validate --strict -k {version}: {len(files)} manifests",
                (result.stdout + result.stderr).strip(),
            )


def expect_render_failure(checks, what, values, expected):
    try:
        render_chart.render(values)
    except helm_python.HelmError as error:
        checks.check(expected in str(error), f"rejected: {what}", f"error did not mention {expected!r}: {error}")
        return
    checks.check(False, f"rejected: {what}", "it rendered")


def check_krew(checks):
    path = ROOT / "plugins" / "alustan.yaml"
    manifest = yaml.safe_load(path.read_text())
    checks.check(manifest.get("apiVersion") == "krew.googlecontainertools.github.com/v1alpha2" and manifest.get("kind") == "Plugin", "krew: apiVersion and kind")
    checks.check(manifest.get("metadata", {}).get("name") == "alustan", "krew: metadata.name is alustan")
    spec = manifest.get("spec", {})
    missing = [k for k in ("version", "homepage", "shortDescription", "description", "platforms") if not spec.get(k)]
    checks.check(not missing, "krew: spec has version, homepage, shortDescription, description, platforms", str(missing))
    checks.check(spec.get("version") == f"v{workspace_version()}", "krew: spec.version is v + the workspace version", str(spec.get("version")))
    checks.check(len(spec.get("shortDescription", "")) <= 50, "krew: shortDescription is at most 50 characters")
    seen = set()
    for platform in spec.get("platforms", []):
        labels = platform.get("selector", {}).get("matchLabels", {})
        seen.add((labels.get("os"), labels.get("arch")))
        missing = [k for k in ("uri", "sha256", "bin", "files") if not platform.get(k)]
        checks.check(not missing, f"krew: platform {labels} has uri, sha256, bin, files", str(missing))
        checks.check(platform.get("bin") == "kubectl-alustan", f"krew: platform {labels} runs kubectl-alustan")
        for key, pattern in (("uri", r"https://\S+\.tar\.gz"), ("sha256", r"[0-9a-f]{64}")):
            value = str(platform.get(key, ""))
            filled = re.fullmatch(pattern, value)
            placeholder = value.startswith(KREW_PLACEHOLDER)
            checks.check(bool(filled or placeholder), f"krew: platform {labels} {key} is real or marked {KREW_PLACEHOLDER!r}", value)
        files = platform.get("files", [])
        checks.check(all(set(f) <= {"from", "to"} and f.get("from") for f in files), f"krew: platform {labels} files are from/to pairs")
    expected = {(os, arch) for os in ("linux", "darwin") for arch in ("amd64", "arm64")}
    checks.check(seen == expected, "krew: platforms are linux/darwin × amd64/arm64", str(seen))


def main():
    versions = sys.argv[1:] or ["1.30.0", "1.31.0", "1.32.0", "1.33.0"]
    checks = Checks()

    lint = helm_python.lint(str(CHART), strict=True)
    problems = lint["errors"] + [m for m in lint["messages"] if m["severity"] >= 2]
    checks.check(not problems, "helm lint --strict", str(problems))
    for message in lint["messages"]:
        if message["severity"] < 2:
            print(f"  lint info: {message['path']}: {message['error']}")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    checks.check(chart["appVersion"] == workspace_version(), "Chart.yaml appVersion is the agent version", f"{chart['appVersion']} != {workspace_version()}")
    checks.check(
        (CHART / "crds" / "terraform.yaml").read_text() == (ROOT / "crds" / "terraform.yaml").read_text(),
        "charts/alustan/crds/terraform.yaml is crds/terraform.yaml (regenerate with `make generate`)",
    )

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    checks.check(defaults["credentials"] == AGENT_DEFAULT_CREDENTIALS, "the default credentials are the agent's built-in default")
    undocumented = undocumented_keys((CHART / "values.yaml").read_text())
    checks.check(not undocumented, "values.yaml: a comment above every key", str(undocumented))
    documented = leaf_paths(defaults, schema)
    readme = (CHART / "README.md").read_text()
    missing = [p for p in documented if f"`{p}`" not in readme]
    checks.check(not missing, "README.md: the values table lists every value", str(missing))

    renders = {}
    overrides = {"default": {}}
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        overrides[path.name.removesuffix("-values.yaml")] = yaml.safe_load(path.read_text())
    covered = set()
    for label, override in overrides.items():
        values = render_chart.merged_values(override)
        try:
            renders[label] = render_chart.render(override)
        except helm_python.HelmError as error:
            checks.check(False, f"render with {label} values", str(error))
            continue
        checks.check(True, f"render with {label} values ({sum(map(len, renders[label].values()))} objects)")
        check_render(checks, label, values, renders[label])
        for path, default in documented.items():
            value, present = get_path(override, path)
            if present and value != default:
                covered.add(path)
    not_exercised = sorted(set(documented) - covered)
    checks.check(not not_exercised, "ci/*-values.yaml set every value to a non-default value", str(not_exercised))

    validate_manifests(checks, renders, versions)

    expect_render_failure(checks, "an unknown top-level key", {"replicas": 2}, "additional properties 'replicas' not allowed")
    expect_render_failure(checks, "an unknown nested key", {"job": {"activeDeadline": 5}}, "additional properties 'activeDeadline' not allowed")
    expect_render_failure(checks, "an unknown credential field", {"credentials": [{"name": "a", "namespace": "b", "secrets": [{"name": "s", "key": "k"}], "user": "x"}]}, "'user' not allowed")
    expect_render_failure(checks, "log.format xml", {"log": {"format": "xml"}}, "log/format")
    expect_render_failure(checks, "syncInterval 6 hours", {"syncInterval": "6 hours"}, "syncInterval")
    expect_render_failure(checks, "replicaCount as a string", {"replicaCount": "2"}, "replicaCount")
    expect_render_failure(checks, "two replicas without leader election", {"replicaCount": 2, "leaderElection": {"enabled": False}}, "needs leaderElection.enabled")
    expect_render_failure(checks, "both registry secret sources", {"containerRegistrySecret": "e30=", "existingSecret": "x"}, "not both")

    notes = helm_python.Chart.load(CHART).render({}, name=render_chart.RELEASE, namespace=render_chart.NAMESPACE, is_install=True)
    notes = next((text for path, text in notes.items() if path.endswith("NOTES.txt")), "")
    checks.check("kubectl alustan tui" in notes and "kubectl get altf -A" in notes, "NOTES.txt names the next steps (kubectl alustan tui, kubectl get altf -A)")

    check_krew(checks)

    print(f"chart checks: {checks.passed} passed, {len(checks.failures)} failed")
    for failure in checks.failures:
        print(f"  FAILED: {failure}")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
