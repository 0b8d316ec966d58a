#!/usr/bin/env bash
# Make sure a Docker Engine with compose v2 answers.
#
# - An engine that already answers is never touched (Docker Desktop, a system dockerd, a remote DOCKER_HOST).
# - On Debian as root with no engine: install Engine + compose v2 from Debian trixie (pinned at priority 100
#   so nothing else is upgraded), start dockerd in the background and wait for its socket.
# - Anywhere else: one clear message and exit 1.
# The Debian mirror is read from this machine's own apt configuration; no host name is written here.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*"; }
die() { printf 'ensure-docker: %s\n' "$*" >&2; exit 1; }

engine_ok() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }
compose_ok() { docker compose version --short >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_ok; then
  compose_ok || die "Docker Engine $(docker info --format '{{.ServerVersion}}') answers but 'docker compose' (v2) is missing. Hint: install the compose plugin (docker-compose-plugin or Debian's docker-compose >= 2.20)."
  log "Docker Engine $(docker info --format '{{.ServerVersion}}') with compose $(docker compose version --short) already reachable; nothing to do."
  exit 0
fi

if [ -n "${DOCKER_HOST:-}" ]; then
  die "Docker Engine not reachable at DOCKER_HOST=$DOCKER_HOST. Hint: start that engine or unset DOCKER_HOST; see README 'Setup'."
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  die "Docker Engine not reachable. Hint: start Docker Desktop or your Docker Engine (and check 'docker info'); see README 'Setup'."
fi

# --- install (only when dockerd or compose v2 is missing) -------------------------------------------------
need_install=0
command -v dockerd >/dev/null 2>&1 || need_install=1
if command -v docker >/dev/null 2>&1; then compose_ok || need_install=1; else need_install=1; fi
if [ "$(dockerd --version 2>/dev/null | sed -E 's/^Docker version ([0-9]+).*/\1/')" = 20 ]; then need_install=1; fi

if [ "$need_install" = 1 ]; then
  mirror=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # first URIs of a stanza that is not the security archive
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
    [ -n "$mirror" ] && break
  done
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$mirror" ] || die "cannot find a Debian mirror in /etc/apt/sources.list.d/*.sources. Hint: install Docker Engine + compose v2 by hand."
  log "installing Docker Engine + compose v2 from Debian trixie (pinned, priority 100) ..."
  cat > /etc/apt/sources.list.d/devenv-trixie.sources <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat > /etc/apt/preferences.d/devenv-trixie <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Options::=--force-confold \
    docker.io/trixie docker-cli/trixie docker-compose/trixie docker-buildx/trixie >/tmp/devenv-docker-install.log 2>&1 \
    || { tail -20 /tmp/devenv-docker-install.log >&2; die "apt-get install of Docker Engine failed (log: /tmp/devenv-docker-install.log)."; }
  log "installed: $(dockerd --version)"
fi

# --- start --------------------------------------------------------------------------------------------------
if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd in the background (log: /var/log/devenv-dockerd.log) ..."
  # containerd is started by dockerd itself when no system containerd runs.
  # setsid + no stdin: the daemon must not hold the caller's terminal, pipes or process group.
  setsid nohup dockerd --host=unix:///var/run/docker.sock </dev/null >/var/log/devenv-dockerd.log 2>&1 &
  echo $! >/var/run/devenv-dockerd.pid  # .ci/run stops the engine it started when it is done
fi
for _ in $(seq 1 120); do
  engine_ok && break
  sleep 0.25
done
engine_ok || { tail -20 /var/log/devenv-dockerd.log >&2; die "dockerd did not answer within 30 s (log: /var/log/devenv-dockerd.log)."; }
compose_ok || die "Docker Engine answers but 'docker compose' (v2) is missing."
log "Docker Engine $(docker info --format '{{.ServerVersion}}') with compose $(docker compose version --short) is up."
