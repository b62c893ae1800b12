#!/usr/bin/env bash
# Builds galaxy/backend:TAG, galaxy/gateway:TAG and galaxy/game:TAG on a
# Docker daemon that cannot pull anything (docs/deployment.md).
#
#   deploy/build-images.sh TAG
#
# The release binaries are built once by cargo on this host (a no-op when
# they are fresh, so CI builds them before and this reuses them). Each image
# is `FROM scratch` with a root filesystem deploy/rootfs.sh assembles here
# (the binary, its glibc, the NSS modules for name resolution, users, CA
# bundle); no shell, no package manager; the process runs as uid 65532.
#
# Environment: CARGO_TARGET_DIR (default ./target); GALAXY_IMAGE_MAX_MB
# (default 80): a bigger image fails the build.
set -euo pipefail
TAG="${1:?usage: deploy/build-images.sh TAG}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
MAX_MB="${GALAXY_IMAGE_MAX_MB:-80}"
NONROOT=65532

say() { printf 'build-images: %s\n' "$*" >&2; }

command -v docker >/dev/null || { say "docker is required"; exit 1; }

cd "$ROOT"
started=$SECONDS
cargo build --release --locked -p galaxy-backend -p galaxy-gateway-bin
say "release binaries ready in $((SECONDS - started))s"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# image NAME PORTS: galaxy/<NAME without galaxy->:TAG around the release
# binary NAME. The Dockerfile's instructions after its build stage are the
# ones deploy/Dockerfile.<name> has, so both paths give the same image.
image() {
  local name="$1" ports="$2" short="${1#galaxy-}" ctx="$WORK/$1"
  "$HERE/rootfs.sh" "$name" "$TARGET_DIR/release/$name" "$ctx/rootfs"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
USER $NONROOT:$NONROOT
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE $ports
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\
  CMD ["/usr/local/bin/$name", "healthcheck"]
LABEL org.opencontainers.image.title="$name" org.opencontainers.image.version="$TAG"
ENTRYPOINT ["/usr/local/bin/$name"]
CMD ["serve"]
DOCKERFILE
  local t=$SECONDS
  # The legacy builder works on every daemon here (BuildKit may be absent);
  # scratch is never pulled.
  # Its output (a deprecation notice) is shown only when the build fails.
  if ! DOCKER_BUILDKIT=0 docker build --quiet -t "galaxy/$short:$TAG" "$ctx" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    exit 1
  fi
  local bytes
  bytes="$(docker image inspect -f '{{.Size}}' "galaxy/$short:$TAG")"
  say "galaxy/$short:$TAG $((bytes / 1000000)) MB in $((SECONDS - t))s"
  if [ "$bytes" -gt $((MAX_MB * 1000000)) ]; then
    say "galaxy/$short:$TAG is larger than $MAX_MB MB"
    exit 1
  fi
}

image galaxy-backend "8080 9090"
image galaxy-gateway "8000"

t=$SECONDS
GALAXY_ENGINE_TARGET_DIR="${GALAXY_ENGINE_TARGET_DIR:-$TARGET_DIR/engine-static}" \
  "$ROOT/integration/engine/build-image.sh" "$TAG" >/dev/null 2>"$WORK/engine.log" || {
  cat "$WORK/engine.log" >&2
  exit 1
}
say "galaxy/game:$TAG $(($(docker image inspect -f '{{.Size}}' "galaxy/game:$TAG") / 1000000)) MB in $((SECONDS - t))s"
say "done in $((SECONDS - started))s"
