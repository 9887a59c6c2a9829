#!/usr/bin/env bash
# Build the real OpenTelemetry Collector (from builder-config.yaml) or Jaeger v2 (from jaeger/go.mod)
# with Go, once, into a cache outside the clone, and print the binary's path on stdout.
#
#   collector-config/build.sh otelcol   # -> ~/.cache/llm-telemetry/otelcol/<manifest hash>/otelcol-llm-telemetry
#   collector-config/build.sh jaeger    # -> ~/.cache/llm-telemetry/jaeger/<go.mod+go.sum hash>/jaeger
#
# The cache key is the hash of the inputs, so editing the manifest (or jaeger/go.mod) builds anew and an
# unchanged one returns at once. Progress and timings go to stderr; the full log sits beside the binary.
# Environment: GO (the go command; default: go on PATH, else /usr/local/go/bin/go), XDG_CACHE_HOME
# (default ~/.cache), NICE (default 19: the build yields the CPU to everything else on a shared machine).
#
# Why a shell script and not a CLI subcommand: building Go programs is not the monitoring library's
# job, and a Collector user can read and run this next to the manifest without installing our package.
# Exit codes: 0 built or cached, 2 usage, 3 no Go toolchain, 1 build failed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
KIND="${1:-}"
case "$KIND" in
  otelcol|jaeger) ;;
  *) echo "usage: $0 otelcol|jaeger" >&2; exit 2 ;;
esac

if [ -z "${GO:-}" ]; then GO="$(command -v go || true)"; fi
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
if [ -z "$GO" ] || ! "$GO" version >/dev/null 2>&1; then
  echo "build.sh: no Go toolchain found (set GO=/path/to/go or put go on PATH)" >&2
  exit 3
fi
export PATH="$(dirname "$GO"):$PATH"
# Never download another toolchain; the modules come from the Go module proxy as configured.
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"
NICE="${NICE:-19}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/llm-telemetry"

if [ "$KIND" = otelcol ]; then
  INPUTS=("$HERE/builder-config.yaml")
  NAME=otelcol-llm-telemetry
else
  INPUTS=("$HERE/jaeger/go.mod" "$HERE/jaeger/go.sum")
  NAME=jaeger
fi
HASH="$(cat "${INPUTS[@]}" | sha256sum | cut -c1-16)"
DEST="$CACHE/$KIND/$HASH"
BIN="$DEST/$NAME"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE/$KIND"
# One build per key at a time: a second caller (another test run, CI) waits and then finds the binary.
exec 9>"$CACHE/$KIND/$HASH.lock"
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

WORK="$(mktemp -d "$CACHE/$KIND/$HASH.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/build.log"
START=$SECONDS
echo "build.sh: building $KIND ($HASH) with $("$GO" version | cut -d' ' -f3) under nice -n $NICE; log: $DEST/build.log" >&2

run() {  # run a build step, its output into the log; on failure show the log's tail
  if ! nice -n "$NICE" "$@" >>"$LOG" 2>&1; then
    echo "build.sh: failed: $*" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

if [ "$KIND" = otelcol ]; then
  # The builder version is the one the manifest's own instructions name, so the two cannot drift.
  BUILDER_VERSION="$(sed -n 's/.*go\.opentelemetry\.io\/collector\/cmd\/builder@\(v[0-9.]*\).*/\1/p' "$HERE/builder-config.yaml" | head -n1)"
  [ -n "$BUILDER_VERSION" ] || { echo "build.sh: builder-config.yaml names no cmd/builder@vX.Y.Z" >&2; exit 1; }
  BUILDER="$CACHE/tools/builder-$BUILDER_VERSION/builder"
  if [ ! -x "$BUILDER" ]; then
    run env GOBIN="$(dirname "$BUILDER")" "$GO" install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
  fi
  cp "$HERE/builder-config.yaml" "$WORK/builder-config.yaml"
  cd "$WORK"
  # Generate, resolve, compile as three steps instead of one: the builder's own `go mod tidy` also
  # resolves the components' *test* imports, and some of those module versions are not served by
  # every proxy; `tidy -e` records every module the binary needs and skips test-only ones it can't get.
  run "$BUILDER" --config builder-config.yaml --skip-compilation --skip-get-modules
  (cd "$NAME" && run "$GO" mod tidy -e)
  run "$BUILDER" --config builder-config.yaml --skip-generate --skip-get-modules
  mv "$NAME/$NAME" "$WORK/$NAME.bin"
else
  cp "${INPUTS[@]}" "$WORK/"
  cd "$WORK"
  VERSION="$(sed -n 's/^\tgithub\.com\/jaegertracing\/jaeger \(v[0-9.]*\).*/\1/p' go.mod)"
  run "$GO" build -trimpath -ldflags="-s -w" -o "$WORK/$NAME.bin" github.com/jaegertracing/jaeger/cmd/jaeger
  echo "jaeger $VERSION" >>"$LOG"
fi

mkdir -p "$DEST"
cp "$LOG" "$DEST/build.log"
mv "$WORK/$NAME.bin" "$BIN"
echo "build.sh: built $KIND in $((SECONDS - START)) s" >&2
echo "$BIN"
