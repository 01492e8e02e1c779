#!/usr/bin/env bash
# `make demo`: alustan in a local sandbox, no cluster needed.
#
# Builds the binaries, starts `alustan-testenv serve` (a Kubernetes-API-compatible server with
# our CRD, a process kubelet running Jobs under bubblewrap, and a real OCI registry, all on
# loopback), pushes the sample IaC image in demo/image under several semver tags, starts
# `alustan-agent` against it, applies the sample resources in demo/terraforms and opens
# `kubectl alustan tui`. Quitting the TUI (q or Ctrl-C) stops everything this script started.
#
#   NO_TUI=1  no TUI: wait until every sample reaches the state its
#             `demo.alustan.io/expected-state` annotation names, print `kubectl alustan get -A`
#             and a describe of each, approve prod-database's plan (Planned -> Success), change
#             reporting-db's real state (Drifted=True), delete dev/dev-sandbox (its destroy
#             script must run), and exit non-zero naming any check that failed. What CI runs.
#   KEEP=1    keep the work dir (logs, kubeconfig, the kubelet's pod dirs) instead of removing it.
#   DEMO_TIMEOUT=SECONDS  how long NO_TUI=1 waits for the samples (default 240).
#   CONTROL_PLANE=real  the same demo on the real Kubernetes control plane (etcd, kube-apiserver,
#             controller-manager, scheduler; built once by testenv/controlplane/build.sh, which
#             `make demo CONTROL_PLANE=real` runs first) instead of the embedded API server.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NO_TUI=${NO_TUI:-}
KEEP=${KEEP:-}
DEMO_TIMEOUT=${DEMO_TIMEOUT:-240}
CONTROL_PLANE=${CONTROL_PLANE:-embedded}
case "$CONTROL_PLANE" in
  embedded) READY_WITHIN=60 ;;
  # etcd, kube-apiserver, the controllers electing themselves: slower on a small machine.
  real) READY_WITHIN=300 ;;
  *) printf 'demo: CONTROL_PLANE=%s: expected embedded or real\n' "$CONTROL_PLANE" >&2; exit 2 ;;
esac
REPO=alustan/infrastructure
# Semver tags, and build tags (version.buildtime.commit) for nightly-build's filterTags.
TAGS=(v0.9.0 v1.0.0 v1.0.1 v1.1.0 v2.0.0-rc.1 v2.0.0 latest
  v1.2.2.2022-01-15t161730814Z.9eabf5b5 v1.2.2.2022-01-16t090000000Z.1c2d3e4f v1.3.0.2022-01-17t090000000Z.aaaaaaaa)
# The sample whose deletion NO_TUI=1 checks (its destroy script must run first).
DESTROY_SAMPLE=(dev dev-sandbox)
# The samples whose plan NO_TUI=1 approves, and whose real state it changes (default namespace).
APPROVAL_SAMPLE=prod-database
DRIFT_SAMPLE=reporting-db

if [[ -t 2 ]]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
log() { printf '%s\n' "${BOLD}demo:${PLAIN} $*" >&2; }
die() { log "$*"; exit 1; }
truthy() { [[ -n "$1" && "$1" != 0 && "$1" != false && "$1" != no ]]; }

for tool in cargo kubectl bwrap docker-registry; do
  command -v "$tool" >/dev/null || die "$tool is not installed (make demo installs the Debian packages; cargo comes from rustup)"
done

# The debug profile: nothing in the demo is CPU-bound (the sample scripts sleep on purpose),
# a release build takes several times longer on a small machine, and debug reuses what
# `make test` already built into the same target dir.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building alustan-testenv, alustan-agent and kubectl-alustan (debug profile)"
cargo build --locked -q -p alustan-testenv -p alustan-agent -p kubectl-alustan --bins
BIN=$CARGO_TARGET_DIR/debug
# kubectl finds the plugin (kubectl-alustan) on PATH.
export PATH="$BIN:$PATH"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/alustan-demo.XXXX")
mkdir -p "$WORK/tmp" "$WORK/kube-cache"
SERVE_PID=""
AGENT_PID=""

# Stops a process this script started (in its own session, see below): TERM, then KILL after
# $3 seconds, to the whole process group so the registry and the containers go too.
stop() {
  local pid=$1 what=$2 grace=$3
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$what did not stop within ${grace}s: killing it"
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

leftovers() {
  {
    [[ -z "$SERVE_PID" ]] || pgrep -s "$SERVE_PID" || true
    [[ -z "$AGENT_PID" ]] || pgrep -s "$AGENT_PID" || true
    [[ "$WORK" != *alustan-demo.* ]] || pgrep -f -- "$WORK" || true
  } | sort -u
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$AGENT_PID" alustan-agent 10
  stop "$SERVE_PID" "alustan-testenv serve" 15
  # Nothing may be left: not in the servers' sessions (the registry), nor anything running
  # with paths under $WORK (bubblewrap's containers, which get sessions of their own and die
  # with their parent a moment after it, hence the short wait).
  local left=""
  for ((i = 0; i < 50; i++)); do
    left=$(leftovers)
    [[ -n "$left" ]] || break
    sleep 0.1
  done
  if [[ -n "$left" ]]; then
    log "still running 5 s after the stop, killing: $(ps -o pid=,args= -p "$(echo "$left" | paste -sd,)" | cut -c1-150)"
    # shellcheck disable=SC2086 # one PID per word
    kill -KILL $left 2>/dev/null || true
    rc=1
  fi
  if truthy "$KEEP"; then
    log "kept the work dir: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

k() { kubectl --cache-dir "$WORK/kube-cache" "$@"; }

# setsid: each server in its own session and process group, so the terminal's Ctrl-C reaches
# only this script (whose trap stops them in order) and the group can be killed as a whole.
log "starting alustan-testenv serve --control-plane $CONTROL_PLANE (API server, process kubelet, registry) in $WORK"
: >"$WORK/env.sh"
# TMPDIR: temp dirs that would otherwise land in /tmp go under $WORK too.
TMPDIR="$WORK/tmp" setsid alustan-testenv serve --control-plane "$CONTROL_PLANE" --work-dir "$WORK/env" >"$WORK/env.sh" 2>"$WORK/testenv.log" &
SERVE_PID=$!
# Ready once it has printed both exports (it does so only after everything is up).
for ((i = 0; ; i++)); do
  [[ $(wc -l <"$WORK/env.sh") -ge 2 ]] && break
  kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/testenv.log" >&2; die "alustan-testenv serve exited"; }
  ((i < READY_WITHIN * 10)) || die "alustan-testenv serve was not ready within $READY_WITHIN s (log: $WORK/testenv.log)"
  sleep 0.1
done
# shellcheck disable=SC1091 # written above
source "$WORK/env.sh"
export KUBECONFIG ALUSTAN_REGISTRY
k get crd terraforms.alustan.io >/dev/null || die "the Terraform CRD is not installed"

log "pushing demo/image to $ALUSTAN_REGISTRY/$REPO as ${TAGS[*]}"
tag_args=()
for tag in "${TAGS[@]}"; do tag_args+=(--tag "$tag"); done
alustan-testenv push --repo "$REPO" "${tag_args[@]}" --workdir / demo/image >/dev/null

log "starting alustan-agent (log: $WORK/agent.log)"
setsid alustan-agent --insecure-registry "$ALUSTAN_REGISTRY" --sync-interval 10m \
  --retry-base 2s --retry-max 10s --retry-attempts 2 --metrics-addr 127.0.0.1:0 \
  >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for ((i = 0; ; i++)); do
  grep -q '"alustan-agent started"' "$WORK/agent.log" && break
  kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log" >&2; die "alustan-agent exited"; }
  ((i < 300)) || die "alustan-agent did not start within 30 s (log: $WORK/agent.log)"
  sleep 0.1
done

log "applying demo/rbac.yaml (the ServiceAccount the staging-cluster sample's Jobs run as)"
k apply -f demo/rbac.yaml >&2

log "applying the samples in demo/terraforms"
for file in demo/terraforms/*.yaml; do
  sed "s|\${ALUSTAN_REGISTRY}|$ALUSTAN_REGISTRY|g" "$file" | k apply -f - >&2
done

if ! truthy "$NO_TUI"; then
  log "opening kubectl alustan tui (q or Ctrl-C quits and stops the sandbox)"
  log "meanwhile, in another terminal: export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH"
  sleep 1
  ALUSTAN_LOG_FILE="$WORK/tui.log" kubectl alustan tui -A
  exit 0
fi

# NO_TUI=1: "ns/name|expected state|state|Reconciling status" for every sample.
samples() {
  k get terraforms.alustan.io -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}|{.metadata.annotations.demo\.alustan\.io/expected-state}|{.status.state}|{.status.conditions[?(@.type=="Reconciling")].status}{"\n"}{end}'
}
# Settled: in the expected state with no run or retry pending (Reconciling not True; a plan
# waiting for approval stays Reconciling, as kstatus wants, and is settled as Planned).
unsettled() {
  samples | awk -F'|' '$2 == "" || $2 != $3 || ($4 == "True" && $3 != "Planned") { print $1 " (expected " ($2 == "" ? "?" : $2) ", is " ($3 == "" ? "not started" : $3) ($4 == "True" ? ", still reconciling" : "") ")" }'
}

log "waiting up to ${DEMO_TIMEOUT}s for every sample to reach its expected state"
deadline=$((SECONDS + DEMO_TIMEOUT))
last=""
while :; do
  now=$(samples | awk -F'|' '{ print $1 "=" ($3 == "" ? "-" : $3) }' | tr '\n' ' ')
  [[ "$now" != "$last" ]] && log "states: $now"
  last=$now
  wrong=$(unsettled)
  [[ -z "$wrong" ]] && break
  ((SECONDS < deadline)) || break
  sleep 1
done

echo
echo "\$ kubectl alustan get -A"
kubectl alustan get -A
while IFS='|' read -r ns_name _; do
  echo
  echo "\$ kubectl alustan describe -n ${ns_name%%/*} ${ns_name#*/}"
  kubectl alustan describe -n "${ns_name%%/*}" "${ns_name#*/}"
done < <(samples)
echo

# The closing line CI reads: one check per sample, one each for the approval, the drift and the destroy.
total=$(samples | grep -c . || true)
summary() { echo "demo: $1 passed, $2 failed"; }
if [[ -n "$wrong" ]]; then
  failed=$(grep -c . <<<"$wrong")
  summary $((total - failed)) "$failed"
  log "samples not in their expected state after ${DEMO_TIMEOUT}s:"
  awk '{ print "  " $0 }' <<<"$wrong" >&2
  log "agent log tail:"
  tail -n 40 "$WORK/agent.log" >&2
  exit 1
fi

# check_failed WHY: the closing line for one failed check, why, the agent's log tail; exit 1.
check_failed() {
  summary "$total" 1
  log "$1; agent log tail:"
  tail -n 40 "$WORK/agent.log" >&2
  exit 1
}

# wait_for NS/NAME JSONPATH VALUE WHAT: until the resource's JSONPATH is VALUE (60 s).
wait_for() {
  local ns=${1%%/*} name=${1#*/} deadline=$((SECONDS + 60))
  until [[ "$(k get terraforms.alustan.io -n "$ns" "$name" -o jsonpath="$2")" == "$3" ]]; do
    ((SECONDS < deadline)) || check_failed "$1: $4 did not happen within 60 s"
    sleep 1
  done
}

# approval: Manual — the plan waits; approving its id applies exactly that plan.
log "default/${APPROVAL_SAMPLE}: Planned; showing and approving its plan"
echo "\$ kubectl alustan show-plan ${APPROVAL_SAMPLE}"
kubectl alustan show-plan "$APPROVAL_SAMPLE"
echo "\$ kubectl alustan approve ${APPROVAL_SAMPLE}"
kubectl alustan approve "$APPROVAL_SAMPLE"
wait_for "default/$APPROVAL_SAMPLE" '{.status.state}' Success "the approved plan's deploy"
wait_for "default/$APPROVAL_SAMPLE" '{.status.plan.decision}' Applied "the plan marked Applied"
log "default/${APPROVAL_SAMPLE}: Planned -> approved -> Success, the approved plan applied"

# drift: Detect — change the "real infrastructure" behind alustan's back.
log "default/${DRIFT_SAMPLE}: changing its real state by hand; the next drift check must report it"
k patch configmap "tfstate-$DRIFT_SAMPLE" --type merge -p '{"data":{"instance_class":"db.t3.nano"}}' >&2
wait_for "default/$DRIFT_SAMPLE" '{.status.conditions[?(@.type=="Drifted")].status}' True "Drifted=True"
echo "\$ kubectl alustan get ${DRIFT_SAMPLE}"
kubectl alustan get "$DRIFT_SAMPLE"
log "default/${DRIFT_SAMPLE}: drift detected and left alone (drift: Detect)"

ns=${DESTROY_SAMPLE[0]} name=${DESTROY_SAMPLE[1]}
log "deleting $ns/$name: the agent runs its destroy script, then releases it"
k delete terraforms.alustan.io -n "$ns" "$name" --wait=false >&2
deadline=$((SECONDS + 60))
while k get terraforms.alustan.io -n "$ns" "$name" >/dev/null 2>&1; do
  ((SECONDS < deadline)) || check_failed "$ns/$name was not released within 60 s"
  sleep 1
done
reasons=$(k get events -n "$ns" --field-selector "involvedObject.name=$name" -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}')
if ! grep -qx Destroyed <<<"$reasons"; then
  check_failed "$ns/$name is gone but no Destroyed Event was recorded (Events: $(echo "$reasons" | tr '\n' ' '))"
fi
log "$ns/$name: destroy ran and the resource was released"
log "every sample reached its expected state"
summary $((total + 3)) 0
