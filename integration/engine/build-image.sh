#!/usr/bin/env bash
# Builds the reference engine image galaxy/game:TAG on a Docker daemon that
# cannot pull anything: a fully static galaxy-engine binary on `FROM scratch`.
#
#   integration/engine/build-image.sh TAG
#
# The static build uses its own target directory so it never waits on (or
# invalidates) the workspace's debug builds.
set -euo pipefail
TAG="${1:?usage: build-image.sh TAG}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET_DIR="${GALAXY_ENGINE_TARGET_DIR:-$ROOT/target/engine-static}"
TRIPLE=x86_64-unknown-linux-gnu

cd "$ROOT"
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --target "$TRIPLE" --target-dir "$TARGET_DIR" -p galaxy-engine
BIN="$TARGET_DIR/$TRIPLE/release/galaxy-engine"

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$BIN" "$CONTEXT/galaxy-engine"
cp "$HERE/Dockerfile" "$CONTEXT/Dockerfile"
# `scratch` has no shell to chown with: /data is copied in with its owner set
# by COPY --chown, so a fresh named volume inherits the non-root owner.
mkdir "$CONTEXT/data"

# The legacy builder works on every daemon here (BuildKit may be absent).
DOCKER_BUILDKIT=0 docker build --quiet -t "galaxy/game:$TAG" "$CONTEXT" >/dev/null
echo "built galaxy/game:$TAG"
