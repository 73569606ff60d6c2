# shellcheck shell=bash
# Shared helpers for the environment scripts. Sourced, not run.
#
# Everything installed is cached under $ROWFERRY_CACHE (default ~/.cache/rowferry), outside the
# clone, so a second run is fast; server data lives under $ROWFERRY_RUN (a temp dir) and is
# removed by the matching stop command.

set -euo pipefail

ROWFERRY_CACHE=${ROWFERRY_CACHE:-$HOME/.cache/rowferry}
ROWFERRY_RUN=${ROWFERRY_RUN:-${TMPDIR:-/tmp}/rowferry-env}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROWFERRY_CACHE/target}
mkdir -p "$ROWFERRY_CACHE" "$ROWFERRY_RUN"

# The one password of the local test environment's accounts (loopback only, throwaway data).
ROWFERRY_ENV_PASSWORD=rowferry

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# as_root CMD...: run as root (directly, or through sudo when not root).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

apt_install() {
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# wait_until SECONDS WHAT CMD...: poll CMD (every 0.1 s) until it succeeds or SECONDS pass.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
  log "$what"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PIDFILE WHAT: TERM, wait up to 30 s, then KILL.
stop_pid() {
  local pidfile=$1 what=$2 pid
  pid_alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  wait_until 30 "$what stopped" bash -c "! kill -0 $pid" || { log "$what did not stop in 30 s; killing"; kill -9 "$pid" 2>/dev/null || true; }
}

# make_tls DIR: a private CA (DIR/ca.pem) and a server certificate it signed for 127.0.0.1 and
# localhost (DIR/server-cert.pem, DIR/server-key.pem), unless DIR already has them. Each server
# gets its own CA, so a test can show that another server's CA is refused.
make_tls() {
  local dir=$1
  [ -f "$dir/server-cert.pem" ] && return 0
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rowferry test CA $(date +%s%N)" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 -extfile ext.cnf \
      -out server-cert.pem 2>/dev/null
  ) || die "creating TLS certificates in $dir failed"
}

# ensure_build_deps: what building rowferry needs beyond Rust (librdkafka is built with TLS/SASL
# against the system OpenSSL).
ensure_build_deps() {
  command -v pkg-config >/dev/null && pkg-config --exists openssl && command -v make >/dev/null && command -v g++ >/dev/null && return 0
  apt_install pkg-config libssl-dev make g++
}

# settle_vendored_times: gives the files of third_party/rdkafka-sys the time of the last commit
# that changed them, when the clone holds them as committed. Cargo reruns a build script that
# names no rerun-if-changed files whenever its package's newest file has another time than at the
# last run, and a fresh clone's files are all new: librdkafka's C build (~2 min on 2 cores) ran
# twice (clippy's profile and the tests') in every CI run. With the commit's time, an unchanged
# librdkafka is built once; a changed one comes with a new commit time (or, uncommitted, keeps its
# fresh times), so it is still rebuilt. Only this package: its build script's freshness is that
# time compared for equality, whereas a library's own sources (mysql_common's) are compared by age
# against its last build, where an older time could hide a change.
settle_vendored_times() {
  local dir=third_party/rdkafka-sys t
  command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 || return 0
  git diff --quiet HEAD -- "$dir" && [ -z "$(git ls-files --others --exclude-standard -- "$dir")" ] || return 0
  t=$(git log -1 --format=%ct -- "$dir") && [ -n "$t" ] || return 0
  git ls-files -z -- "$dir" | xargs -0 -r touch -m -d "@$t"
}
