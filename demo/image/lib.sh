# Shared by the demo image's scripts (POSIX sh; sourced, not run).
#
# API access: the Job's Pod gets its ServiceAccount token the way every Kubernetes Pod does
# (automountServiceAccountToken): /var/run/secrets/kubernetes.io/serviceaccount/{token,namespace}
# plus KUBERNETES_SERVICE_HOST/PORT. So this image needs no credentials in the Terraform
# resource (a token in spec.variables would sit in plain text in git and in the API), and the
# same scripts work on a real cluster, where the ServiceAccount named by spec.serviceAccountName
# (or the agent's --job-service-account) needs RBAC for namespaces, secrets and ingresses.
# On a real cluster the API speaks HTTPS and ca.crt sits beside the token; the demo's test API
# server speaks plain HTTP on loopback and mounts no ca.crt, hence the http:// fallback.

SA_DIR=/var/run/secrets/kubernetes.io/serviceaccount

say() { printf '%s\n' "$*"; }

# Pauses between steps so the TUI shows the run in progress (DEMO_STEP_SECONDS=0 to skip).
pause() { sleep "${DEMO_STEP_SECONDS:-1}"; }

# api_ready: true when this Pod can call the API server; otherwise says why (once) and fails.
api_ready() {
  if ! command -v curl >/dev/null 2>&1; then
    say "note: curl is not installed: skipping the Kubernetes API calls"
    return 1
  fi
  if [ ! -r "$SA_DIR/token" ] || [ -z "${KUBERNETES_SERVICE_HOST:-}" ] || [ -z "${KUBERNETES_SERVICE_PORT:-}" ]; then
    say "note: no ServiceAccount token in $SA_DIR (automountServiceAccountToken: false?): skipping the Kubernetes API calls"
    return 1
  fi
  return 0
}

# api METHOD PATH [JSON]: prints the HTTP status code; the response body goes to /tmp/api-body.
api() {
  set -- "$1" "$2" "${3:-}" -H "Authorization: Bearer $(cat "$SA_DIR/token")"
  if [ -r "$SA_DIR/ca.crt" ]; then
    set -- "$@" --cacert "$SA_DIR/ca.crt" --url "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT$2"
  else
    set -- "$@" --url "http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT$2"
  fi
  if [ -n "$3" ]; then set -- "$@" -H 'Content-Type: application/json' --data "$3"; fi
  _method=$1
  shift 3
  curl -sS -o /tmp/api-body -w '%{http_code}' -X "$_method" "$@"
}

# ensure PATH JSON WHAT: creates the object unless it exists (409), like `kubectl create`.
ensure() {
  _code=$(api POST "$1" "$2") || { say "  $3: API call failed"; return 1; }
  case "$_code" in
    201) say "  $3: created" ;;
    409) say "  $3: already there" ;;
    *) say "  $3: HTTP $_code: $(head -c 300 /tmp/api-body)"; return 1 ;;
  esac
}

# remove PATH WHAT: deletes the object; a missing one is fine.
remove() {
  _code=$(api DELETE "$1") || { say "  $2: API call failed"; return 1; }
  case "$_code" in
    200|202) say "  $2: deleted" ;;
    404) say "  $2: already gone" ;;
    *) say "  $2: HTTP $_code: $(head -c 300 /tmp/api-body)"; return 1 ;;
  esac
}
