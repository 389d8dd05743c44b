#!/usr/bin/env bash
# Builds the control-plane programs burner runs as its local cluster under test:
# kube-apiserver, kube-controller-manager and kube-scheduler from k8s.io/kubernetes,
# and etcd from go.etcd.io/etcd/server/v3. Each family has its own Go tool module
# (tools/k8s, tools/etcd) whose go.mod and go.sum pin every dependency, so the
# build needs only the Go module proxy.
#
# Binaries go to a per-version cache outside the repository:
#   $BURNER_CACHE_DIR/k8s/<version>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler}
#   $BURNER_CACHE_DIR/etcd/<version>/bin/etcd
# (BURNER_CACHE_DIR defaults to ~/.cache/burner). A program already built is skipped.
#
# Usage: tools/build-control-plane.sh [--print-dirs]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${BURNER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/burner}
k8s_bin=$cache/k8s/$K8S_VERSION/bin
etcd_bin=$cache/etcd/$ETCD_VERSION/bin

if [ "${1:-}" = "--print-dirs" ]; then
  echo "$k8s_bin"
  echo "$etcd_bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-control-plane: Go is not installed; install Go >= 1.26 and run again" >&2; exit 1; }

# Build in isolation: no toolchain downloads, no workspace, no inherited flags, static binaries.
export GOTOOLCHAIN=local GOWORK=off GOFLAGS= CGO_ENABLED=0

log() { printf '[build-control-plane] %s\n' "$*" >&2; }

# The tool modules pin the versions too; refuse to build something other than what burner expects.
grep -q "k8s.io/kubernetes $K8S_VERSION" "$here/k8s/go.mod" ||
  { log "tools/k8s/go.mod does not require k8s.io/kubernetes $K8S_VERSION"; exit 1; }
grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$here/etcd/go.mod" ||
  { log "tools/etcd/go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_VERSION"; exit 1; }

# One build at a time per cache, even when several test binaries or shells ask at once.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9

build_k8s() {
  local missing=() p
  for p in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$k8s_bin/$p" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "kubernetes $K8S_VERSION: already built in $k8s_bin"
    return
  fi
  # The version is stamped in as Kubernetes' own release build does, so
  # `kube-apiserver --version` and the /version endpoint report the real release.
  local minor ldflags pkg
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$k8s_bin"
  local start=$SECONDS
  for p in "${missing[@]}"; do
    log "kubernetes $K8S_VERSION: building $p (about 5 minutes on 2 cores when nothing is cached)"
    (cd "$here/k8s" && go build -trimpath -buildvcs=false -ldflags "$ldflags" \
      -o "$k8s_bin/$p.tmp" "k8s.io/kubernetes/cmd/$p")
    mv "$k8s_bin/$p.tmp" "$k8s_bin/$p"
  done
  log "kubernetes $K8S_VERSION: built ${missing[*]} in $((SECONDS - start)) s"
}

build_etcd() {
  if [ -x "$etcd_bin/etcd" ]; then
    log "etcd $ETCD_VERSION: already built in $etcd_bin"
    return
  fi
  mkdir -p "$etcd_bin"
  local start=$SECONDS
  log "etcd $ETCD_VERSION: building etcd"
  (cd "$here/etcd" && go build -trimpath -buildvcs=false -ldflags "-s -w" \
    -o "$etcd_bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$etcd_bin/etcd.tmp" "$etcd_bin/etcd"
  log "etcd $ETCD_VERSION: built in $((SECONDS - start)) s"
}

build_etcd
build_k8s
