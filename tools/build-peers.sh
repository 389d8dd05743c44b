#!/usr/bin/env bash
# Builds the tools burner is benchmarked against, side by side on the same local cluster
# (bench/peers.rs): kube-burner (github.com/kube-burner/kube-burner/v2) and kwok
# (sigs.k8s.io/kwok). Each has its own Go tool module under tools/peers/ whose go.mod and
# go.sum pin every dependency, so the build needs only the Go module proxy.
#
# kube-burner's own go.mod has replace directives (k8s.io/api, apimachinery, client-go and
# kube-openapi), which `go install pkg@version` refuses; the wrapper module repeats them,
# so the binary is built from the same dependency versions as kube-burner's release.
#
# Binaries go to a per-version cache outside the repository:
#   $BURNER_CACHE_DIR/peers/kube-burner/<version>/bin/kube-burner
#   $BURNER_CACHE_DIR/peers/kwok/<version>/bin/kwok
#   $BURNER_CACHE_DIR/peers/kwok/<version>/stages.yaml  (kwok's default node and pod stages,
#     as kwokctl configures them, taken from the kwok module of that version)
# (BURNER_CACHE_DIR defaults to ~/.cache/burner). A program already built is skipped.
# Nothing in CI's default path runs this script.
#
# Usage: tools/build-peers.sh [--print-paths]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=peers/versions.env
. "$here/peers/versions.env"
cache=${BURNER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/burner}
kube_burner=$cache/peers/kube-burner/$KUBE_BURNER_VERSION/bin/kube-burner
kwok=$cache/peers/kwok/$KWOK_VERSION/bin/kwok
kwok_stages=$cache/peers/kwok/$KWOK_VERSION/stages.yaml

if [ "${1:-}" = "--print-paths" ]; then
  echo "$kube_burner"
  echo "$kwok"
  echo "$kwok_stages"
  exit 0
fi

command -v go >/dev/null || { echo "build-peers: Go is not installed; install Go >= 1.26 and run again" >&2; exit 1; }
export GOTOOLCHAIN=local GOWORK=off GOFLAGS= CGO_ENABLED=0

log() { printf '[build-peers] %s\n' "$*" >&2; }

grep -q "github.com/kube-burner/kube-burner/v2 $KUBE_BURNER_VERSION" "$here/peers/kube-burner/go.mod" ||
  { log "tools/peers/kube-burner/go.mod does not require kube-burner $KUBE_BURNER_VERSION"; exit 1; }
grep -q "sigs.k8s.io/kwok $KWOK_VERSION" "$here/peers/kwok/go.mod" ||
  { log "tools/peers/kwok/go.mod does not require kwok $KWOK_VERSION"; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9

# build NAME VERSION MODULE_DIR PACKAGE OUTPUT LDFLAGS
build() {
  local name=$1 version=$2 module=$3 package=$4 output=$5 ldflags=$6
  if [ -x "$output" ]; then
    log "$name $version: already built at $output"
    return
  fi
  mkdir -p "$(dirname "$output")"
  local start=$SECONDS
  log "$name $version: building (a few minutes on 2 cores when nothing is cached)"
  (cd "$here/peers/$module" && go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$output.tmp" "$package")
  mv "$output.tmp" "$output"
  log "$name $version: built in $((SECONDS - start)) s"
}

build kube-burner "$KUBE_BURNER_VERSION" kube-burner github.com/kube-burner/kube-burner/v2/cmd/kube-burner \
  "$kube_burner" "-s -w -X github.com/cloud-bulldozer/go-commons/v2/version.Version=$KUBE_BURNER_VERSION"
build kwok "$KWOK_VERSION" kwok sigs.k8s.io/kwok/cmd/kwok "$kwok" "-s -w"

# kwok only acts through Stage objects and has none built in; kwokctl hands it the "fast"
# node and pod stages and the lease heartbeat. The same files, from the kwok module itself.
if [ ! -s "$kwok_stages" ]; then
  kwok_dir=$(cd "$here/peers/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  stage=$kwok_dir/kustomize/stage
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$stage/$f"
  done >"$kwok_stages.tmp"
  mv "$kwok_stages.tmp" "$kwok_stages"
  log "kwok $KWOK_VERSION: default stages in $kwok_stages"
fi
