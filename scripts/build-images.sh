#!/usr/bin/env bash
# Build the offline stand-in images (no registry needed) and print the variables that point devenv at them.
#
#   devenv-local/debian:bookworm   debootstrap --variant=minbase, docker import
#   devenv-local/postgres:15       Debian's postgresql-15 with the official image's entrypoint contract
#   devenv-local/redis:7           Debian's redis-server 7
#   devenv-local/node:20           Node 20 + npm from the npm registry's packages
#
# Cached: each image carries a label with the hash of its inputs; an image whose label matches is not rebuilt,
# so a second run costs about the time of four `docker image inspect`.
# The Debian mirror is read from this machine's apt configuration; no host name is written in this repository.
# Usage: scripts/build-images.sh [--quiet]   (--quiet: print only the export lines)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
images_dir="$here/tests/images"
quiet=0; [ "${1:-}" = --quiet ] && quiet=1
log() { [ "$quiet" = 1 ] || printf 'build-images: %s\n' "$*" >&2; }
die() { printf 'build-images: %s\n' "$*" >&2; exit 1; }

BASE=devenv-local/debian:bookworm
POSTGRES=devenv-local/postgres:15
REDIS=devenv-local/redis:7
NODE=devenv-local/node:20
NODE_VERSION=20.20.2
NPM_VERSION=10.8.2
BASE_RECIPE="debootstrap-minbase-bookworm-v1"

docker info >/dev/null 2>&1 || die "Docker Engine not reachable. Hint: run 'make engine' (or start Docker) first."

label_of() { docker image inspect --format "{{ index .Config.Labels \"devenv.recipe\" }}" "$1" 2>/dev/null || true; }

mirror() {
  local m=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f"); [ -n "$m" ] && break
  done
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list."
  printf '%s' "$m"
}

build_base() {
  if [ "$(label_of "$BASE")" = "$BASE_RECIPE" ]; then log "$BASE: cached"; return; fi
  command -v debootstrap >/dev/null 2>&1 || {
    [ "$(id -u)" = 0 ] || die "debootstrap is missing. Hint: apt-get install debootstrap (as root)."
    log "installing debootstrap ..."; apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  }
  [ "$(id -u)" = 0 ] || die "building $BASE needs root (debootstrap). Hint: on a machine with a registry, use the real images instead (see docs/offline.md)."
  local root; root=$(mktemp -d /var/tmp/devenv-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  log "$BASE: debootstrap --variant=minbase bookworm (about 25 s) ..."
  debootstrap --variant=minbase bookworm "$root" "$(mirror)" >/tmp/devenv-debootstrap.log 2>&1 \
    || { tail -20 /tmp/devenv-debootstrap.log >&2; die "debootstrap failed (log: /tmp/devenv-debootstrap.log)"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    --change "LABEL devenv.recipe=$BASE_RECIPE" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$BASE" >/dev/null
  log "$BASE: imported"
}

inputs_hash() {  # hash of an image directory's files, the base image id and extra words
  local dir=$1; shift
  { (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    docker image inspect --format '{{.Id}}' "$BASE"; printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}

build_one() {  # name dir [extra words for the hash]
  local image=$1 dir=$2; shift 2
  local want; want=$(inputs_hash "$dir" "$@")
  if [ "$(label_of "$image")" = "$want" ]; then log "$image: cached"; return; fi
  log "$image: building ..."
  docker build -q --label "devenv.recipe=$want" --build-arg "BASE_IMAGE=$BASE" -t "$image" "$dir" >"/tmp/devenv-build-${image//[\/:]/_}.log" 2>&1 \
    || { tail -30 "/tmp/devenv-build-${image//[\/:]/_}.log" >&2; die "building $image failed"; }
  log "$image: built"
}

node_context() {  # stage node + npm tarballs from the npm registry into a cached build context
  local arch
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) die "no Node package for $(uname -m)";; esac
  local ctx="${XDG_CACHE_HOME:-$HOME/.cache}/devenv/node-context-$NODE_VERSION-$arch"
  if [ ! -s "$ctx/node.tgz" ] || [ ! -s "$ctx/npm.tgz" ]; then
    log "fetching node-linux-$arch@$NODE_VERSION and npm@$NPM_VERSION from the npm registry ..."
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) \
      || die "npm pack failed. Hint: the npm registry must be reachable once to build $NODE."
    mkdir -p "$ctx"
    mv "$tmp/node-linux-$arch-$NODE_VERSION.tgz" "$ctx/node.tgz"
    mv "$tmp/npm-$NPM_VERSION.tgz" "$ctx/npm.tgz"
    rm -rf "$tmp"
  fi
  cp "$images_dir/node/Dockerfile" "$ctx/Dockerfile"
  printf '%s' "$ctx"
}

build_base
pids=()
build_one "$POSTGRES" "$images_dir/postgres" & pids+=($!)
build_one "$REDIS" "$images_dir/redis" & pids+=($!)
ctx=$(node_context)
build_one "$NODE" "$ctx" "$NODE_VERSION" "$NPM_VERSION" & pids+=($!)
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "$status" = 0 ] || die "some images failed to build (see above)"

[ "$quiet" = 1 ] || echo "# Point devenv at the offline stand-ins (see docs/offline.md):"
echo "export DEVENV_POSTGRES_IMAGE=$POSTGRES"
echo "export DEVENV_REDIS_IMAGE=$REDIS"
echo "export DEVENV_BUILD_ARG_NODE_IMAGE=$NODE"
# Behind a TLS-intercepting proxy, npm inside a build trusts only what the host trusts: hand the host's CA bundle
# to Dockerfiles that mount the `npm_ca` build secret (the example's does; it is never stored in a layer).
ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
if [ -s "$ca" ]; then echo "export DEVENV_BUILD_SECRET_NPM_CA=$ca"; fi
