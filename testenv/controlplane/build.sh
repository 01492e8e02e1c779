#!/usr/bin/env bash
# Builds the real control plane (kube-apiserver, kube-controller-manager, kube-scheduler and
# etcd) from the Go modules pinned in go.mod/go.sum, into a cache outside the clone:
#   ${ALUSTAN_CONTROLPLANE_CACHE:-$HOME/.cache/alustan/controlplane}/<kubernetes version>/bin/
# and prints that directory as its last line of stdout. Nothing is built when the binaries are
# there and were built from this very go.mod/go.sum/build.sh (a stamp file holds their hash).
# Go's own caches (GOMODCACHE, GOCACHE) make a rebuild after a go.mod change incremental.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

command -v go >/dev/null || { echo "build.sh: no 'go' on the PATH (Go >= 1.24 is needed)" >&2; exit 1; }

k8s_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
cache_root="${ALUSTAN_CONTROLPLANE_CACHE:-$HOME/.cache/alustan/controlplane}"
bin="$cache_root/$k8s_version/bin"
stamp="$(cat go.mod go.sum build.sh | sha256sum | cut -d' ' -f1)"
binaries=(kube-apiserver kube-controller-manager kube-scheduler etcd)

complete() {
  [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ] || return 1
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
}

if complete; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache_root/$k8s_version"
# One build at a time per version (two test processes may both find the cache empty).
exec 9>"$cache_root/$k8s_version/.lock"
flock 9
if complete; then
  echo "$bin"
  exit 0
fi

echo "build.sh: building Kubernetes $k8s_version and etcd $etcd_version into $bin (the first build takes a while)" >&2
start=$(date +%s)
tmp="$(mktemp -d "$cache_root/$k8s_version/build.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0
# What Kubernetes' own build stamps into its binaries (hack/lib/version.sh), so /version and
# `--version` say v1.34.x rather than v0.0.0-master. The module has no commit; its date is the
# release's, from the module proxy, so builds are reproducible.
minor="${k8s_version#v1.}"
minor="${minor%%.*}"
build_date="$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit= -X $pkg.buildDate=$build_date"
done
flags=(-trimpath "-ldflags=$ldflags")
go build "${flags[@]}" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler >&2
go build "${flags[@]}" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2
echo "$stamp" > "$tmp/.stamp"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
echo "build.sh: built in $(( $(date +%s) - start )) s: $(cd "$bin" && du -sh "${binaries[@]}" | awk '{printf "%s %s  ", $2, $1}')" >&2
echo "$bin"
