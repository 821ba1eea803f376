#!/usr/bin/env bash
# Build a real InfluxDB 2.x server (influxd, Flux enabled, no UI assets) from the Go module proxy
# and crates.io, without Docker or GitHub downloads.
#
#   scripts/build-influxd [--verify] [--force] [--clean]   (this file: tocsin/services/build_influxd.sh)
#
# The binary goes to ${TOCSIN_CACHE:-$HOME/.cache/tocsin}/influxdb-<version>/bin/influxd and its
# path is the last line printed on stdout. An existing binary that runs is reused at once.
# Progress goes to stderr; a failing step prints the tail of its log and exits non-zero.
#
#   --verify  after building (or reusing), start influxd on a free 127.0.0.1 port with a temp data
#             dir, onboard it (POST /api/v2/setup), write a point (POST /api/v2/write) and read it
#             back with Flux (POST /api/v2/query), then stop it.
#   --force   rebuild from scratch (sources, libflux, influxd) even if the binary exists.
#   --clean   build with Go module and build caches of its own under the prefix and, once the
#             binary works, delete them with the sources and libflux (about 3 GB; only the
#             binary stays, a later rebuild starts over); `.ci/run` uses it to keep disk low.
#
# Environment: TOCSIN_CACHE (cache root), TOCSIN_INFLUXDB_VERSION (default v2.7.12),
# TOCSIN_RUST_TOOLCHAIN (rustup toolchain to build libflux with; default: stable, else the default
# toolchain), GOPROXY and the usual Go/cargo variables.
#
# How: influxdb's go.mod has replace directives, so `go install module@version` is refused; the
# module is downloaded with `go mod download`, copied somewhere writable, and built there.
# Flux's Rust library (libflux, in the flux module the influxdb go.mod pins) is built with cargo
# using the installed toolchain (flux pins Rust 1.72 in rust-toolchain.toml; RUSTUP_TOOLCHAIN
# overrides it, and a RUSTC_WORKSPACE_WRAPPER adds --cap-lints=warn because newer rustc adds
# lints that flux's deny(warnings) would turn into errors). A flux.pc file pointing at the built
# static library is written, and cgo finds it through the ordinary pkg-config (PKG_CONFIG_PATH);
# this replaces InfluxData's pkg-config wrapper, which does the same steps inside the go build.
# Build tags are upstream's minus `assets` (the embedded UI): the HTTP API is unaffected.
set -euo pipefail

verify=0
force=0
clean=0
for arg in "$@"; do
  case "$arg" in
    --verify) verify=1 ;;
    --force) force=1 ;;
    --clean) clean=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-influxd: unknown argument: $arg (use --verify, --force, --clean)" >&2; exit 2 ;;
  esac
done

version="${TOCSIN_INFLUXDB_VERSION:-v2.7.12}"
version="v${version#v}"
module="github.com/influxdata/influxdb/v2"
cache_root="${TOCSIN_CACHE:-$HOME/.cache/tocsin}"
prefix="$cache_root/influxdb-${version#v}"
bin="$prefix/bin/influxd"
logs="$prefix/logs"
build_tags="sqlite_foreign_keys,sqlite_json"

start_ts=$(date +%s)
step_ts=$start_ts
log() { echo "build-influxd: [$(( $(date +%s) - start_ts ))s] $*" >&2; }

current_log=""
fail() {
  log "FAILED: $*"
  if [ -n "$current_log" ] && [ -s "$current_log" ]; then
    echo "----- last 60 lines of $current_log -----" >&2
    tail -n 60 "$current_log" >&2
    echo "-----" >&2
  fi
  exit 1
}

# run_step NAME CMD...: run CMD with output to $logs/NAME.log, report elapsed time, fail with tail.
run_step() {
  local name="$1"; shift
  current_log="$logs/$name.log"
  step_ts=$(date +%s)
  log "step $name: started (log: $current_log)"
  # In the background (not in an `if`), so that set -e applies inside the step's function.
  ( "$@" ) >"$current_log" 2>&1 </dev/null &
  if ! wait $!; then
    fail "step $name (after $(( $(date +%s) - step_ts ))s)"
  fi
  log "step $name: done in $(( $(date +%s) - step_ts ))s"
  current_log=""
}

binary_works() {
  [ -x "$bin" ] && "$bin" version >/dev/null 2>&1
}

# ---------------------------------------------------------------- verification (--verify)
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
  else
    echo $(( 20000 + RANDOM % 20000 ))
  fi
}

verify_binary() {
  command -v curl >/dev/null 2>&1 || fail "--verify needs curl (apt-get install -y curl)"
  local tmp port base pid token="tocsin-verify-token" t0 ready code out
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/tocsin-influxd-verify.XXXXXX")
  port=$(free_port)
  base="http://127.0.0.1:$port"
  log "verify: starting $bin on 127.0.0.1:$port (data: $tmp)"
  t0=$(date +%s.%N)
  # An empty INFLUXD_CONFIG_PATH dir and cwd keep any config.{toml,yaml,json} out of the way.
  ( cd "$tmp" && exec env INFLUXD_CONFIG_PATH="$tmp" "$bin" \
      --http-bind-address "127.0.0.1:$port" \
      --bolt-path "$tmp/influxd.bolt" \
      --sqlite-path "$tmp/influxd.sqlite" \
      --engine-path "$tmp/engine" \
      --reporting-disabled \
      --log-level warn ) >"$tmp/influxd.log" 2>&1 &
  pid=$!
  # shellcheck disable=SC2064
  trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf '$tmp'" EXIT
  ready=0
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      current_log="$tmp/influxd.log"; fail "verify: influxd exited during startup"
    fi
    if curl -fsS -o /dev/null "$base/health" 2>/dev/null; then ready=1; break; fi
    sleep 0.1
  done
  [ "$ready" = 1 ] || { current_log="$tmp/influxd.log"; fail "verify: influxd not ready after 30s"; }
  log "verify: ready after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s: $(curl -fsS "$base/health")"

  out=$(curl -sS -w '\n%{http_code}' -XPOST "$base/api/v2/setup" -H 'Content-Type: application/json' \
    -d "{\"username\":\"tocsin\",\"password\":\"tocsin-password\",\"org\":\"tocsin\",\"bucket\":\"tocsin\",\"token\":\"$token\"}")
  code=${out##*$'\n'}
  [ "$code" = 201 ] || { current_log="$tmp/influxd.log"; fail "verify: POST /api/v2/setup -> $code: ${out%$'\n'*}"; }
  log "verify: POST /api/v2/setup -> $code"

  local ts line
  ts="$(date +%s)000000000"
  line="tocsin_verify,source=build-influxd value=42.5 $ts"
  code=$(curl -sS -o "$tmp/write.out" -w '%{http_code}' -XPOST \
    "$base/api/v2/write?org=tocsin&bucket=tocsin&precision=ns" \
    -H "Authorization: Token $token" -H 'Content-Type: text/plain; charset=utf-8' --data-binary "$line")
  [ "$code" = 204 ] || { current_log="$tmp/influxd.log"; fail "verify: POST /api/v2/write -> $code: $(cat "$tmp/write.out")"; }
  log "verify: POST /api/v2/write ($line) -> $code"

  local flux='from(bucket: "tocsin") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "tocsin_verify")'
  code=$(curl -sS -o "$tmp/query.out" -w '%{http_code}' -XPOST "$base/api/v2/query?org=tocsin" \
    -H "Authorization: Token $token" -H 'Content-Type: application/vnd.flux' -H 'Accept: application/csv' \
    --data-binary "$flux")
  [ "$code" = 200 ] || { current_log="$tmp/influxd.log"; fail "verify: POST /api/v2/query -> $code: $(cat "$tmp/query.out")"; }
  log "verify: POST /api/v2/query ($flux) -> $code:"
  tr -d '\r' <"$tmp/query.out" | sed '/^$/d; s/^/    /' >&2
  grep -q ',42.5,value,tocsin_verify,build-influxd' <(tr -d '\r' <"$tmp/query.out") \
    || fail "verify: the written point was not read back"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  trap - EXIT
  rm -rf "$tmp"
  log "verify: OK (write/read round trip through Flux), influxd stopped"
}

finish() {
  if [ "$verify" = 1 ]; then verify_binary; fi
  echo "$bin"
  exit 0
}

# ---------------------------------------------------------------- reuse
if [ "$force" = 0 ] && binary_works; then
  log "reusing $bin ($("$bin" version 2>/dev/null | head -n1))"
  finish
fi

mkdir -p "$prefix/bin" "$logs"

# One build at a time per version; a second caller waits and then reuses the result.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$prefix/.lock"
  if ! flock -n 9; then
    log "another build of influxdb-${version#v} is running; waiting for it"
    flock 9
  fi
  if [ "$force" = 0 ] && binary_works; then
    log "reusing $bin (built by the other run)"
    finish
  fi
fi

if [ "$force" = 1 ]; then
  log "--force: removing cached sources, libflux and binary under $prefix"
  rm -rf "$prefix/src" "$prefix"/flux-* "$prefix/lib" "$prefix/pkgconfig" "$prefix"/.libflux-*-complete "$bin"
  mkdir -p "$prefix/bin"
fi
log "building InfluxDB $version (influxd, Flux enabled, no UI) into $prefix"

# ---------------------------------------------------------------- prerequisites
apt_missing=()
command -v pkg-config >/dev/null 2>&1 || apt_missing+=(pkg-config)
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || apt_missing+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || apt_missing+=(make)
[ "$verify" = 1 ] && ! command -v curl >/dev/null 2>&1 && apt_missing+=(curl)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    current_log="$logs/apt-get.log"
    log "installing ${apt_missing[*]} with apt-get"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${apt_missing[@]}"; } \
      >"$current_log" 2>&1 || fail "apt-get install ${apt_missing[*]}"
    current_log=""
  else
    fail "missing build prerequisites; install them with: sudo apt-get install -y ${apt_missing[*]}"
  fi
fi
command -v go >/dev/null 2>&1 || fail "Go is required (go >= 1.23; https://go.dev/dl/); 'go' is not on PATH"
command -v cargo >/dev/null 2>&1 || fail "Rust is required (cargo/rustc >= 1.72, e.g. via rustup); 'cargo' is not on PATH"

export GO111MODULE=on CGO_ENABLED=1 GOWORK=off
if [ "$clean" = 1 ]; then
  # caches of this build's own, deleted with the sources once the binary works
  export GOMODCACHE="$prefix/go-mod-cache" GOCACHE="$prefix/go-build-cache"
fi

# Rust toolchain: flux pins 1.72 in rust-toolchain.toml, which is usually not installed and cannot be
# fetched here; RUSTUP_TOOLCHAIN overrides the pin.
rust_toolchain="${TOCSIN_RUST_TOOLCHAIN:-}"
if [ -z "$rust_toolchain" ] && command -v rustup >/dev/null 2>&1; then
  toolchains=$(rustup toolchain list 2>/dev/null | awk '{print $1}')
  if grep -q '^stable-' <<<"$toolchains"; then
    rust_toolchain=stable
  else
    rust_toolchain=$(rustup toolchain list 2>/dev/null | awk '/default/{print $1; exit}')
    [ -n "$rust_toolchain" ] || rust_toolchain=$(head -n1 <<<"$toolchains")
  fi
fi
if [ -n "$rust_toolchain" ]; then export RUSTUP_TOOLCHAIN="$rust_toolchain"; fi
log "go: $(go version | awk '{print $3}'), rustc: $(rustc --version 2>/dev/null || echo '?')${RUSTUP_TOOLCHAIN:+ (RUSTUP_TOOLCHAIN=$RUSTUP_TOOLCHAIN)}"

# ---------------------------------------------------------------- step: fetch sources
src="$prefix/src"
if [ ! -f "$src/.tocsin-complete" ]; then
  fetch_sources() {
    local json dir tmpd
    tmpd=$(mktemp -d)   # outside any go.mod, so this is a plain module download
    json=$(cd "$tmpd" && go mod download -json "$module@$version")
    rmdir "$tmpd"
    echo "$json"
    dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json" | head -n1)
    [ -n "$dir" ] && [ -f "$dir/go.mod" ] || { echo "no module dir in go mod download output"; return 1; }
    rm -rf "$src" "$src.tmp"
    cp -R "$dir" "$src.tmp"
    chmod -R u+w "$src.tmp"
    mv "$src.tmp" "$src"
    (cd "$src" && go mod download)
    touch "$src/.tocsin-complete"
  }
  run_step fetch-sources fetch_sources
else
  log "step fetch-sources: already done ($src)"
fi

# ---------------------------------------------------------------- step: libflux (Rust)
read -r flux_version flux_dir < <(cd "$src" && go list -m -f '{{.Version}} {{.Dir}}' github.com/influxdata/flux) \
  || fail "cannot find the flux module of $module@$version"
[ -n "$flux_dir" ] && [ -d "$flux_dir/libflux" ] || fail "flux module dir not found (flux $flux_version: '$flux_dir')"
flux_src="$prefix/flux-$flux_version"
pcdir="$prefix/pkgconfig"
lib_stamp="$prefix/.libflux-$flux_version-complete"
if [ ! -f "$lib_stamp" ] || [ ! -f "$pcdir/flux.pc" ]; then
  build_libflux() {
    if [ ! -f "$flux_src/.tocsin-copied" ]; then
      rm -rf "$flux_src"
      cp -R "$flux_dir" "$flux_src"   # libflux's build.rs reads ../../stdlib, so copy the module
      chmod -R u+w "$flux_src"
      touch "$flux_src/.tocsin-copied"
    fi
    local wrapper="$prefix/rustc-cap-lints"
    printf '#!/bin/sh\n# RUSTC_WORKSPACE_WRAPPER: warn instead of deny for lints newer rustc adds.\nexec "$@" --cap-lints=warn\n' >"$wrapper"
    chmod +x "$wrapper"
    # `strict` (deny(warnings, missing_docs)) is left out; cffi is the C API Go uses.
    (cd "$flux_src/libflux" && \
      RUSTC_WORKSPACE_WRAPPER="$wrapper" CARGO_TARGET_DIR="$flux_src/libflux/target" \
      cargo build --release --locked -p flux --no-default-features --features cffi)
    local a="$flux_src/libflux/target/release/libflux.a" sum
    [ -f "$a" ] || { echo "cargo did not produce $a"; return 1; }
    # A content-addressed name makes go's build cache relink when the library changes.
    sum=$(sha256sum "$a" | cut -c1-16)
    mkdir -p "$prefix/lib" "$pcdir"
    rm -f "$prefix"/lib/libflux-*.a
    cp "$a" "$prefix/lib/libflux-$sum.a"
    cat >"$pcdir/flux.pc" <<EOF
prefix=$flux_src/libflux
libdir=$prefix/lib
includedir=\${prefix}/include

Name: Flux
Version: ${flux_version#v}
Description: Library for the InfluxData Flux engine (built by tocsin scripts/build-influxd)
Libs: -L\${libdir} -lflux-$sum -ldl -lpthread -lm
Cflags: -I\${includedir}
EOF
    cat "$pcdir/flux.pc"
    touch "$lib_stamp"
    rm -rf "$flux_src/libflux/target"   # ~450 MB of intermediates; the library is in $prefix/lib
  }
  run_step libflux build_libflux
else
  log "step libflux: already done ($flux_version)"
fi

# ---------------------------------------------------------------- step: influxd (Go)
build_influxd() {
  local date
  date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(go env GOMODCACHE)/cache/download/$module/@v/$version.info" 2>/dev/null || true)
  [ -n "$date" ] || date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  cd "$src"
  PKG_CONFIG=pkg-config PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
    go build -v -tags "$build_tags" \
      -ldflags "-s -w -X main.version=$version -X main.commit=gomodproxy -X main.date=$date" \
      -o "$bin.tmp" ./cmd/influxd
  "$bin.tmp" version
  mv -f "$bin.tmp" "$bin"
}
run_step influxd build_influxd

binary_works || fail "built $bin but '$bin version' fails"
log "built $bin ($("$bin" version | head -n1)) in $(( $(date +%s) - start_ts ))s"
if [ "$clean" = 1 ]; then
  go clean -modcache >/dev/null 2>&1 || chmod -R u+w "$GOMODCACHE" 2>/dev/null || true
  # the built libflux too: its flux.pc points into the removed copy (a rebuild starts over)
  rm -rf "$GOMODCACHE" "$GOCACHE" "$src" "$prefix"/flux-* "$prefix/lib" "$pcdir" \
    "$prefix"/.libflux-*-complete
  log "--clean: removed the sources and the Go caches of this build ($(du -sh "$prefix" | cut -f1) left in $prefix)"
fi
finish
