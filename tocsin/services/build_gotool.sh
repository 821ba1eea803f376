#!/usr/bin/env bash
# Build (or reuse) a Go tool the tests need from the Go module proxy, without Docker or GitHub
# downloads:
#
#   scripts/build-gotool prometheus|helm|alertmanager [--force] [--clean]   (this file: tocsin/services/build_gotool.sh)
#
#   prometheus  prometheus + promtool (github.com/prometheus/prometheus, v0.3XX.Y = Prometheus
#               3.XX.Y), without the web UI assets (no `builtinassets` tag: the HTTP API and the
#               query API are unaffected) and with only the file/http/static service discovery
#               (`remove_all_sd`), which is all the tests use and halves the build.
#   helm        helm (helm.sh/helm/v3), for `helm lint` / `helm template` of deploy/helm/tocsin.
#   alertmanager  the Prometheus Alertmanager (github.com/prometheus/alertmanager), for the
#               notification forwarding test and for sites that want one locally.
#
# Binaries go to ${TOCSIN_CACHE:-$HOME/.cache/tocsin}/<tool>-<version>/bin/ and the bin directory
# is the last line printed on stdout. Binaries that run are reused at once. Progress on stderr.
#   --force  rebuild even if the binaries exist.
#   --clean  use Go module/build caches of the build's own under the prefix and delete them once
#            the binaries work (only the binaries stay); `.ci/run` uses it to keep disk low.
# Environment: TOCSIN_CACHE, TOCSIN_PROMETHEUS_VERSION (default v0.316.0),
# TOCSIN_HELM_VERSION (default v3.22.0), TOCSIN_ALERTMANAGER_VERSION (default v0.28.1), GOPROXY and the usual Go variables.
set -euo pipefail

tool="${1:-}"; shift || true
force=0; clean=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --clean) clean=1 ;;
    *) echo "build-gotool: unknown argument: $arg (use --force, --clean)" >&2; exit 2 ;;
  esac
done

case "$tool" in
  prometheus)
    version="${TOCSIN_PROMETHEUS_VERSION:-v0.316.0}"
    minor="${version#v0.}"; minor="${minor%%.*}"; patch="${version##*.}"
    release="${minor:0:1}.$((10#${minor:1})).$patch"       # v0.316.0 -> 3.16.0
    module=github.com/prometheus/prometheus
    pkgs=(cmd/prometheus cmd/promtool)
    bins=(prometheus promtool)
    tags="netgo,remove_all_sd"
    verarg=--version
    ldflags="-s -w -X github.com/prometheus/common/version.Version=$release \
-X github.com/prometheus/common/version.Revision=gomodproxy-$version \
-X github.com/prometheus/common/version.Branch=HEAD"
    ;;
  helm)
    version="${TOCSIN_HELM_VERSION:-v3.22.0}"
    release="${version#v}"
    module=helm.sh/helm/v3
    pkgs=(cmd/helm)
    bins=(helm)
    tags=""
    verarg=version
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version \
-X helm.sh/helm/v3/internal/version.gitCommit=gomodproxy"
    ;;
  alertmanager)
    version="${TOCSIN_ALERTMANAGER_VERSION:-v0.28.1}"
    version="v${version#v}"
    release="${version#v}"
    module=github.com/prometheus/alertmanager
    pkgs=(cmd/alertmanager)
    bins=(alertmanager)
    tags=""
    verarg=--version
    ldflags="-s -w"
    ;;
  *) echo "usage: build-gotool prometheus|helm|alertmanager [--force] [--clean]" >&2; exit 2 ;;
esac

cache_root="${TOCSIN_CACHE:-$HOME/.cache/tocsin}"
prefix="$cache_root/$tool-$release"
bindir="$prefix/bin"
start_ts=$(date +%s)
log() { echo "build-gotool $tool: [$(( $(date +%s) - start_ts ))s] $*" >&2; }

works() {
  local b
  for b in "${bins[@]}"; do
    [ -x "$bindir/$b" ] && "$bindir/$b" $verarg >/dev/null 2>&1 || return 1
  done
}

if [ "$force" = 0 ] && works; then
  log "reusing $bindir (${bins[*]})"
  echo "$bindir"; exit 0
fi
mkdir -p "$bindir"
exec 9>"$prefix/.lock"
if ! flock -n 9; then log "another build is running; waiting for it"; flock 9; fi
if [ "$force" = 0 ] && works; then log "reusing $bindir (built by the other run)"; echo "$bindir"; exit 0; fi

command -v go >/dev/null 2>&1 || { log "Go is required (go >= 1.26; https://go.dev/dl/)"; exit 1; }
export GO111MODULE=on GOWORK=off GOFLAGS="${GOFLAGS:-} -buildvcs=false"
[ "$tool" = helm ] || export CGO_ENABLED=0
if [ "$clean" = 1 ]; then
  export GOMODCACHE="$prefix/go-mod-cache" GOCACHE="$prefix/go-build-cache"
fi
if [ "$tool" = helm ]; then
  # helm's Makefile stamps the Kubernetes version of its client-go into the binary (what
  # `helm template` renders as .Capabilities.KubeVersion and checks kubeVersion against);
  # without it helm assumes v1.20. Read it from helm's go.mod.
  gomod=$(cd "$(mktemp -d)" && go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  k8s_minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -n1)
  [ -n "$k8s_minor" ] || { log "cannot read the client-go version from $gomod"; exit 1; }
  ldflags="$ldflags -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
fi
log "building $module@$version (${bins[*]}) with $(go version | awk '{print $3}') into $bindir"
logf="$prefix/build.log"
targets=()
for p in "${pkgs[@]}"; do targets+=("$module/$p@$version"); done
# Neither module has replace directives, so `go install module/cmd@version` builds them as
# released (the go.sum of the module is checked against the checksum database).
if ! GOBIN="$bindir" go install ${tags:+-tags "$tags"} -ldflags "$ldflags" "${targets[@]}" >"$logf" 2>&1; then
  log "FAILED; last lines of $logf:"; tail -n 40 "$logf" >&2; exit 1
fi
works || { log "built, but the binaries do not run"; exit 1; }
log "built in $(( $(date +%s) - start_ts ))s: $(ls "$bindir" | tr '\n' ' ')"
if [ "$clean" = 1 ]; then
  go clean -modcache >/dev/null 2>&1 || true
  rm -rf "$GOMODCACHE" "$GOCACHE"
  log "--clean: removed this build's Go caches ($(du -sh "$prefix" | cut -f1) left)"
fi
echo "$bindir"
