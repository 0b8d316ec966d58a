#!/usr/bin/env bash
# A second Docker Engine on this machine that behaves like a remote one: the test bed for DOCKER_HOST=tcp://…,
# ssh://… and docker contexts. The integration tests start and stop it themselves (tests/integration/remote.py);
# a person can do the same:
#
#   sudo scripts/remote-engine.sh up          # or: make remote-up
#   eval "$(scripts/remote-engine.sh env)"    # DEVENV_REMOTE_TCP, DEVENV_REMOTE_SSH, …
#   DOCKER_HOST=$DEVENV_REMOTE_TCP docker info
#   DOCKER_HOST=ssh://dvbox docker ps
#   DOCKER_CONFIG=$DEVENV_REMOTE_DOCKER_CONFIG docker --context devenv-remote ps
#   sudo scripts/remote-engine.sh down [--purge]   # or: make remote-down
#
# What `up` builds (root only, Linux with iproute2):
#   - network namespace devenv-remote; veth dvr-host 10.213.47.1/30 (this side) <-> dvr-eng 10.213.47.2/30 (inside)
#   - dockerd inside it: own data-root (/var/lib/devenv-remote/docker, kept by `down` as an image cache), exec-root,
#     pidfile, containerd namespace and managed containerd (never the host engine's), unix socket
#     /run/devenv-remote/docker.sock and tcp://10.213.47.2:2375 (no TLS: the address exists only on this machine)
#   - sshd inside it on 10.213.47.2:22: own config, host key, key auth only, DOCKER_HOST set for its sessions, so
#     `ssh root@10.213.47.2 docker system dial-stdio` reaches this engine, not the host's
#   - ssh client config (Host dvbox and 10.213.47.2) hooked into root's ~/.ssh/config by one marked Include line
#     (ssh reads the passwd home, not $HOME, so there is no other way to make ssh://dvbox resolve)
#   - a docker config folder of its own with the context devenv-remote (the user's ~/.docker is never touched)
#   - the offline images (DEVENV_REMOTE_IMAGES) copied from the host engine with docker save | docker load,
#     only those missing or different there
# `up` is idempotent (a second `up` checks and returns) and cleans the remains of a crashed run first.
# `down` stops everything (bounded waits), removes the netns, the veth and the Include line; it succeeds when nothing
# is up. `down --purge` also deletes /var/lib/devenv-remote (the engine's images and volumes, the keys).
# `env` prints the export lines the tests read.
#
# Overrides (environment): DEVENV_REMOTE_NETNS, DEVENV_REMOTE_HOST_IF, DEVENV_REMOTE_NS_IF,
# DEVENV_REMOTE_HOST_ADDR, DEVENV_REMOTE_ADDR, DEVENV_REMOTE_HOSTNAME, DEVENV_REMOTE_STATE_DIR, DEVENV_REMOTE_RUN_DIR,
# DEVENV_REMOTE_IMAGES.
# Nothing leaves this machine: the namespace has no default route; openssh-server, when missing, comes from apt
# as this machine configures it.
set -euo pipefail

NS=${DEVENV_REMOTE_NETNS:-devenv-remote}
HOST_IF=${DEVENV_REMOTE_HOST_IF:-dvr-host}
NS_IF=${DEVENV_REMOTE_NS_IF:-dvr-eng}
HOST_ADDR=${DEVENV_REMOTE_HOST_ADDR:-10.213.47.1}
ADDR=${DEVENV_REMOTE_ADDR:-10.213.47.2}
PREFIX=30
TCP_PORT=2375
STATE=${DEVENV_REMOTE_STATE_DIR:-/var/lib/devenv-remote}  # kept between runs: images, keys, logs
RUN=${DEVENV_REMOTE_RUN_DIR:-/run/devenv-remote}          # gone after down: sockets, pids, exec-root
IMAGES=${DEVENV_REMOTE_IMAGES:-devenv-local/debian:bookworm devenv-local/postgres:15 devenv-local/redis:7 devenv-local/node:20}
ALIAS=dvbox
BOX_HOSTNAME=${DEVENV_REMOTE_HOSTNAME:-dvbox}  # what the second engine and its sshd see as their host name
CONTEXT=devenv-remote
CTR_NS=devenv-remote  # containerd namespace: the host engine's is "moby"

DATA_ROOT=$STATE/docker
EXEC_ROOT=$RUN/exec
SOCK=$RUN/docker.sock
PIDFILE=$RUN/dockerd.pid
DAEMON_JSON=$RUN/daemon.json
LOGS=$STATE/log
SSH_DIR=$STATE/ssh
SSHD_CONFIG=$SSH_DIR/sshd_config
SSHD_PID=$RUN/sshd.pid
CLIENT_KEY=$SSH_DIR/id_ed25519
HOST_KEY=$SSH_DIR/ssh_host_ed25519_key
AUTH_KEYS=$SSH_DIR/authorized_keys
KNOWN_HOSTS=$SSH_DIR/known_hosts
SSH_CLIENT_CONFIG=$SSH_DIR/config
DOCKER_CFG=$STATE/docker-config
MARK="# devenv-remote: added by scripts/remote-engine.sh up, removed by its down"
INCLUDE="Include $SSH_CLIENT_CONFIG"

log() { printf 'remote-engine: %s\n' "$*" >&2; }
die() { printf 'remote-engine: %s\n' "$*" >&2; exit 1; }

# wait_for SECONDS CMD…: poll CMD every 0.2 s, bounded. CMD's status 0 = ready, 1 = not yet, 2 = a final state
# (stop polling at once); wait_for returns 0, 1 (timed out) or 2.
wait_for() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds)) rc
  while :; do
    rc=0; "$@" || rc=$?
    case "$rc" in 0) return 0 ;; 2) return 2 ;; esac
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

bed_docker() { env -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH docker -H "unix://$SOCK" "$@"; }
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
netns_exists() { [ -e "/run/netns/$NS" ]; }
engine_answers() { bed_docker info --format '{{.ID}}' >/dev/null 2>&1; }
tcp_answers() { env -u DOCKER_CONTEXT docker -H "tcp://$ADDR:$TCP_PORT" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
sshd_answers() { ssh -F "$SSH_CLIENT_CONFIG" "$ALIAS" true >/dev/null 2>&1; }
gone() { ! kill -0 "$1" 2>/dev/null; }
user_home() { getent passwd "$(id -un)" | cut -d: -f6; }

stop_pid() {  # stop_pid PID SECONDS: TERM, wait, then KILL
  local pid=$1 seconds=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  wait_for "$seconds" gone "$pid" && return 0
  log "pid $pid still running after ${seconds}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait_for 5 gone "$pid" || die "pid $pid survived SIGKILL"
}

# --- down ---------------------------------------------------------------------------------------------------
remove_include() {
  local cfg
  cfg="$(user_home)/.ssh/config"
  [ -f "$cfg" ] || return 0
  grep -qxF "$INCLUDE" "$cfg" || grep -qxF "$MARK" "$cfg" || return 0
  grep -vxF -e "$MARK" -e "$INCLUDE" "$cfg" >"$cfg.devenv-remote.tmp" || true
  chmod 600 "$cfg.devenv-remote.tmp"
  if [ -s "$cfg.devenv-remote.tmp" ]; then mv "$cfg.devenv-remote.tmp" "$cfg"; else rm -f "$cfg.devenv-remote.tmp" "$cfg"; fi
}

# processes of this bed that outlive dockerd: shims talking to its containerd, anything left in its netns
bed_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd=$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue  # the process may be gone meanwhile
    case "$cmd" in *containerd-shim*"$EXEC_ROOT/containerd/"*) echo "${p#/proc/}" ;; esac
  done
  if netns_exists; then ip netns pids "$NS" 2>/dev/null || true; fi
  # container processes of a dockerd that died: by the cgroups of this data-root's container IDs
  local dir id cg
  for dir in "$DATA_ROOT"/containers/*/; do
    [ -d "$dir" ] || continue
    id=$(basename "$dir")
    for cg in /sys/fs/cgroup/docker/"$id" /sys/fs/cgroup/pids/docker/"$id" /sys/fs/cgroup/unified/docker/"$id" \
      /sys/fs/cgroup/system.slice/docker-"$id".scope; do
      [ -f "$cg/cgroup.procs" ] && cat "$cg/cgroup.procs"
    done
  done
  return 0
}

do_down() {
  local purge=${1:-0} pid
  if [ -s "$SSHD_PID" ]; then stop_pid "$(cat "$SSHD_PID")" 10; fi
  if [ -s "$PIDFILE" ]; then
    # dockerd stops its containers (up to 15 s each, in parallel) and its containerd before it exits
    stop_pid "$(cat "$PIDFILE")" 40
  fi
  for pid in $(bed_pids | sort -u); do stop_pid "$pid" 10; done
  # dockerd runs in a mount namespace of its own, so its mounts normally die with it; a dockerd started some
  # other way leaves them here
  if [ -d "$RUN" ]; then
    findmnt -rn -o TARGET | awk -v run="$RUN" 'index($0, run "/") == 1' | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  if [ -d "$DATA_ROOT" ]; then
    findmnt -rn -o TARGET | awk -v dr="$DATA_ROOT" 'index($0, dr "/") == 1' | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  if ip link show "$HOST_IF" >/dev/null 2>&1; then ip link delete "$HOST_IF"; fi
  if netns_exists; then ip netns delete "$NS"; fi
  remove_include
  rm -rf "$RUN"
  if [ "$purge" = 1 ]; then rm -rf "$STATE"; fi
}

# --- up -----------------------------------------------------------------------------------------------------
ensure_sshd_installed() {
  [ -x /usr/sbin/sshd ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "sshd is missing and this is not a Debian machine. Hint: install openssh-server."
  log "installing openssh-server (apt, as this machine configures it) ..."
  # keep the package from starting a host-wide sshd on port 22: policy-rc.d 101 = "do not start services"
  local policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; added=1; fi
  local rc=0
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server \
      >"$LOGS/apt-openssh.log" 2>&1 \
    || { apt-get update -qq >>"$LOGS/apt-openssh.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server \
              >>"$LOGS/apt-openssh.log" 2>&1; }; } || rc=$?
  if [ "$added" = 1 ]; then rm -f "$policy"; fi
  [ "$rc" = 0 ] || { tail -20 "$LOGS/apt-openssh.log" >&2; die "apt-get install openssh-server failed (log: $LOGS/apt-openssh.log)."; }
}

make_netns() {
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
  ip addr add "$HOST_ADDR/$PREFIX" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip -n "$NS" link set lo up
  ip -n "$NS" addr add "$ADDR/$PREFIX" dev "$NS_IF"
  ip -n "$NS" link set "$NS_IF" up
}

# 0 once the engine answers, 2 when the dockerd just started has exited (a final state), else 1
dockerd_starting() {
  engine_answers && return 0
  kill -0 "$DOCKERD_PID" 2>/dev/null || return 2
  return 1
}

start_dockerd() {
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$LOGS"
  # a config file of its own: /etc/docker/daemon.json is the host engine's
  printf '{}\n' >"$DAEMON_JSON"
  # No --containerd: dockerd starts its own containerd under the exec-root. Should a system containerd exist
  # (/run/containerd/containerd.sock) dockerd would use that one; the namespaces keep it apart even then.
  # --tls=false said explicitly: plain tcp on an address only this machine has (--tlsverify=false would turn
  # TLS on and ask for certificates).
  # Not `ip netns exec`: it remounts /sys for the namespace and so hides /sys/fs/cgroup ("Devices cgroup isn't
  # mounted"). unshare gives dockerd a mount namespace of its own (a slave of this one: host mounts still reach
  # it, its overlay and netns mounts never show here and go away with it); nsenter only switches the network.
  log "starting dockerd in netns $NS (log: $LOGS/dockerd.log) ..."
  # --uts: the engine reports its own Name (the hostname), as a second machine would.
  unshare --mount --uts --propagation slave -- nsenter --net="/run/netns/$NS" -- \
    sh -c 'hostname "$0" && exec setsid "$@"' "$BOX_HOSTNAME" dockerd \
    --config-file "$DAEMON_JSON" \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$PIDFILE" \
    --containerd-namespace "$CTR_NS" \
    --containerd-plugins-namespace "$CTR_NS-plugins" \
    --host "unix://$SOCK" \
    --host "tcp://$ADDR:$TCP_PORT" \
    --tls=false \
    </dev/null >>"$LOGS/dockerd.log" 2>&1 9>&- &  # 9>&-: the lock (serialize) is this script's, not dockerd's
  DOCKERD_PID=$!
  if ! wait_for 60 dockerd_starting; then
    tail -30 "$LOGS/dockerd.log" >&2
    die "the second dockerd did not answer on $SOCK within 60 s or exited (log: $LOGS/dockerd.log)."
  fi
  wait_for 10 pid_alive "$PIDFILE" || die "dockerd answers but wrote no pidfile $PIDFILE."
  wait_for 20 tcp_answers || die "dockerd answers on $SOCK but not on tcp://$ADDR:$TCP_PORT."
  # published ports need docker's NAT chain inside the namespace (nf_tables or legacy, whichever iptables is)
  ip netns exec "$NS" iptables -t nat -n -L DOCKER >/dev/null 2>&1 \
    || die "no DOCKER nat chain inside netns $NS: published ports would not work (log: $LOGS/dockerd.log). Hint: check that iptables works in a network namespace (modprobe nf_tables / ip_tables)."
  local host_id bed_id
  host_id=$(env -u DOCKER_HOST -u DOCKER_CONTEXT docker info --format '{{.ID}}' 2>/dev/null || true)
  bed_id=$(bed_docker info --format '{{.ID}}')
  [ "$host_id" != "$bed_id" ] || die "the second dockerd reports the host engine's ID $bed_id; data-root shared?"
}

write_ssh_files() {
  mkdir -p "$SSH_DIR" "$LOGS"
  chmod 700 "$SSH_DIR"
  [ -s "$HOST_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "devenv-remote host key" -f "$HOST_KEY"
  [ -s "$CLIENT_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "devenv-remote client key" -f "$CLIENT_KEY"
  cp "$CLIENT_KEY.pub" "$AUTH_KEYS"
  chmod 600 "$AUTH_KEYS"
  printf '%s %s\n' "$ADDR" "$(cut -d' ' -f1,2 "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
  cat >"$SSHD_CONFIG" <<EOF
# sshd of the devenv remote engine bed (scripts/remote-engine.sh); runs inside netns $NS only.
ListenAddress $ADDR:22
HostKey $HOST_KEY
PidFile $SSHD_PID
AuthorizedKeysFile $AUTH_KEYS
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers root
UsePAM no
PermitUserEnvironment no
AcceptEnv LANG LC_*
# What makes 'docker system dial-stdio' (DOCKER_HOST=ssh://…) reach the second engine, not the host's.
SetEnv DOCKER_HOST=unix://$SOCK
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
EOF
  cat >"$SSH_CLIENT_CONFIG" <<EOF
# ssh client side of the devenv remote engine bed (scripts/remote-engine.sh).
Host $ALIAS $ADDR
  HostName $ADDR
  User root
  IdentityFile $CLIENT_KEY
  IdentitiesOnly yes
  UserKnownHostsFile $KNOWN_HOSTS
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
EOF
}

add_include() {
  local home cfg
  home=$(user_home)
  cfg="$home/.ssh/config"
  mkdir -p "$home/.ssh"
  chmod 700 "$home/.ssh"
  [ -f "$cfg" ] && grep -qxF "$INCLUDE" "$cfg" && return 0
  # at the top: an Include after a Host line would belong to that Host
  { printf '%s\n%s\n' "$MARK" "$INCLUDE"; [ -f "$cfg" ] && cat "$cfg"; } >"$cfg.devenv-remote.tmp"
  chmod 600 "$cfg.devenv-remote.tmp"
  mv "$cfg.devenv-remote.tmp" "$cfg"
}

start_sshd() {
  pid_alive "$SSHD_PID" && sshd_answers && return 0
  if [ -s "$SSHD_PID" ]; then stop_pid "$(cat "$SSHD_PID")" 10; fi
  mkdir -p /run/sshd  # sshd's privilege separation directory
  /usr/sbin/sshd -t -f "$SSHD_CONFIG" || die "sshd rejects $SSHD_CONFIG."
  unshare --uts -- nsenter --net="/run/netns/$NS" -- sh -c 'hostname "$0" && exec "$@"' "$BOX_HOSTNAME" \
    /usr/sbin/sshd -f "$SSHD_CONFIG" -E "$LOGS/sshd.log" </dev/null >>"$LOGS/sshd.log" 2>&1 9>&-
  if ! wait_for 20 sshd_answers; then
    tail -20 "$LOGS/sshd.log" >&2
    die "sshd in netns $NS does not accept the bed's key at $ADDR:22 (log: $LOGS/sshd.log)."
  fi
}

write_docker_config() {
  mkdir -p "$DOCKER_CFG"
  [ -f "$DOCKER_CFG/config.json" ] || printf '{}\n' >"$DOCKER_CFG/config.json"
  # plugins the user installed under ~/.docker (the system folders are found with any DOCKER_CONFIG)
  local plugins
  plugins="$(user_home)/.docker/cli-plugins"
  if [ -d "$plugins" ]; then
    mkdir -p "$DOCKER_CFG/cli-plugins"
    cp -a "$plugins/." "$DOCKER_CFG/cli-plugins/"
  fi
  local dc=(env -u DOCKER_HOST -u DOCKER_CONTEXT DOCKER_CONFIG="$DOCKER_CFG" docker)
  if "${dc[@]}" context inspect "$CONTEXT" >/dev/null 2>&1; then
    "${dc[@]}" context update --docker "host=tcp://$ADDR:$TCP_PORT" "$CONTEXT" >/dev/null 2>&1
  else
    "${dc[@]}" context create --description "devenv remote engine bed" \
      --docker "host=tcp://$ADDR:$TCP_PORT" "$CONTEXT" >/dev/null 2>&1
  fi
  "${dc[@]}" compose version --short >/dev/null 2>&1 \
    || die "docker compose is not found with DOCKER_CONFIG=$DOCKER_CFG. Hint: install the compose plugin system-wide or under ~/.docker/cli-plugins."
}

load_images() {
  local image want have missing=()
  for image in $IMAGES; do
    want=$(env -u DOCKER_HOST -u DOCKER_CONTEXT docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) \
      || { log "warning: $image is not on the host engine; not copied (run 'make images')"; continue; }
    have=$(bed_docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    [ "$want" = "$have" ] || missing+=("$image")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  log "copying ${missing[*]} into the second engine ..."
  env -u DOCKER_HOST -u DOCKER_CONTEXT docker save "${missing[@]}" | bed_docker load -q >/dev/null
}

do_up() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, a second dockerd). Hint: sudo $0 up"
  command -v ip >/dev/null 2>&1 || die "ip (iproute2) is missing."
  command -v dockerd >/dev/null 2>&1 || die "dockerd is missing. Hint: make engine."
  mkdir -p "$LOGS"
  if netns_exists && pid_alive "$PIDFILE" && engine_answers; then
    log "already up; checking the rest"
  else
    if netns_exists || [ -e "$RUN" ] || ip link show "$HOST_IF" >/dev/null 2>&1; then
      log "cleaning the remains of an earlier run ..."
      do_down 0
    fi
    make_netns
    start_dockerd
  fi
  ensure_sshd_installed
  write_ssh_files
  start_sshd
  add_include
  write_docker_config
  load_images
  log "up: tcp://$ADDR:$TCP_PORT, ssh://$ALIAS, context $CONTEXT (DOCKER_CONFIG=$DOCKER_CFG)"
}

do_env() {
  cat <<EOF
export DEVENV_REMOTE_ADDR=$ADDR
export DEVENV_REMOTE_TCP=tcp://$ADDR:$TCP_PORT
export DEVENV_REMOTE_SSH=ssh://root@$ADDR
export DEVENV_REMOTE_ALIAS=ssh://$ALIAS
export DEVENV_REMOTE_SOCK=unix://$SOCK
export DEVENV_REMOTE_DOCKER_CONFIG=$DOCKER_CFG
export DEVENV_REMOTE_CONTEXT=$CONTEXT
EOF
}

# one up/down at a time (two test sessions starting together); outside $RUN, which down removes
serialize() {
  exec 9>"$RUN.lock"
  flock -w 600 9 || die "another remote-engine.sh up/down has held $RUN.lock for 10 minutes."
}

case "${1:-}" in
  up) serialize; do_up ;;
  down)
    [ "$(id -u)" = 0 ] || die "needs root. Hint: sudo $0 down"
    purge=0
    case "${2:-}" in --purge) purge=1 ;; "") ;; *) die "usage: $0 down [--purge]" ;; esac
    serialize
    do_down "$purge"
    log "down${2:+ $2}"
    ;;
  env) do_env ;;
  *) die "usage: $0 up | down [--purge] | env" ;;
esac
