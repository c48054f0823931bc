# shellcheck shell=bash
# tests/integration/lib.sh - helpers for image-migrator integration tests.
#
# Source it from a bash test script, then call im_setup:
#
#   set -euo pipefail
#   source "$(dirname "$0")/lib.sh"
#   im_setup
#   start_registry src token
#   make_layout "$IM_WORK/layout" v1 --layers 2
#   seed "$IM_WORK/layout" v1 "$SRC_ADDR/app:v1"
#
# Every test gets its own $IM_WORK (mktemp -d) and its own free loopback ports,
# so tests can run in parallel. All processes started here are killed and
# $IM_WORK is removed on exit (success, failure, Ctrl-C); IM_KEEP=1 keeps it.
#
# Environment:
#   IM_BIN             image-migrator binary (default: <build>/image-migrator)
#   TOKEN_SERVER_BIN   token_server binary (default: <build>/tests/tools/token_server,
#                      <build> = $IM_BUILD_DIR or <repo>/build)
#   OCI_LAYOUT_SH      make-oci-layout.sh (default: <repo>/tests/tools/make-oci-layout.sh)
#   DOCKER_REGISTRY_BIN  (default: docker-registry from PATH)
#   TOKEN_TTL          token lifetime for token-mode registries (default 60)
#   TOKEN_EXP_SKEW     seconds taken off the JWT exp claim (default 60). docker-registry
#                      2.8 accepts tokens until 60 s after exp; with the default skew it
#                      rejects them TOKEN_TTL s after issue. expires_in is always TOKEN_TTL.
#   TOKEN_DELAY_MS     every token answer of token-mode registries started from now on waits
#                      this long: a token service far away (default 0)
#   SEED_CREDS         credentials seed uses (default: the registry's, "none" = anonymous)
#   IM_CREDS           credentials raw_digest / pull_all_platforms / im_copy /
#                      im_inspect use when none is given (default: the registry's)
#   IM_SKOPEO_TIMEOUT  seconds any one skopeo call may take (default 120)
#   IM_KEEP=1          keep $IM_WORK; IM_VERBOSE=1 echoes skopeo commands
#
# Registry modes: plain, htpasswd, token, tls, tls-htpasswd, tls-token.
# Users: htpasswd modes  alice/alicepass, bob/bobpass (both may push)
#        token modes     alice/alicepass, bob/bobpass (pull+push), reader/readerpass (pull only)

# ----------------------------------------------------------------- basics

IM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IM_REPO_ROOT=$(cd "$IM_LIB_DIR/../.." && pwd)

# pass MSG: print "PASS: MSG" on stdout.
pass() { printf 'PASS: %s\n' "$*"; }

# fail MSG: print "FAIL: MSG" on stderr and exit 1 (runs the cleanup trap).
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

# assert_eq ACTUAL EXPECTED MSG: pass MSG if equal, else fail with both values.
assert_eq() {
  if [ "$1" == "$2" ]; then
    pass "$3"
  else
    fail "$3 (got '$1', expected '$2')"
  fi
}

# im_log MSG: diagnostic line on stderr.
im_log() { printf '[im] %s\n' "$*" >&2; }

_im_die() {
  printf 'ERROR: %s\n' "$*" >&2
  return 1
}

_im_need_setup() {
  [ -n "${IM_WORK:-}" ] && [ -d "$IM_WORK" ] || _im_die "im_setup has not been called"
}

# ----------------------------------------------------------------- setup / cleanup

# im_setup: create $IM_WORK, install the cleanup trap, prepare skopeo config.
im_setup() {
  local build_dir=${IM_BUILD_DIR:-$IM_REPO_ROOT/build}
  if [ -z "${TOKEN_SERVER_BIN:-}" ]; then
    TOKEN_SERVER_BIN=$build_dir/tests/tools/token_server
  fi
  [ -z "${OCI_LAYOUT_SH:-}" ] && OCI_LAYOUT_SH=$IM_REPO_ROOT/tests/tools/make-oci-layout.sh
  DOCKER_REGISTRY_BIN=${DOCKER_REGISTRY_BIN:-docker-registry}
  IM_BIN=${IM_BIN:-$build_dir/image-migrator}
  export TOKEN_SERVER_BIN OCI_LAYOUT_SH DOCKER_REGISTRY_BIN IM_BIN

  local t
  for t in skopeo jq openssl curl htpasswd timeout "$DOCKER_REGISTRY_BIN"; do
    command -v "$t" >/dev/null 2>&1 || _im_die "required tool not found: $t" || return 1
  done

  IM_WORK=$(mktemp -d "${TMPDIR:-/tmp}/im-test.XXXXXX") || return 1
  export IM_WORK
  IM_MAIN_PID=$BASHPID
  _IM_PIDS=()
  _IM_ON_EXIT=()
  : >"$IM_WORK/.pids"
  : >"$IM_WORK/.ports"
  mkdir -p "$IM_WORK/.tmp"

  # skopeo: accept everything, never use the user's credentials or registries.
  printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$IM_WORK/policy.json"
  printf '{}\n' >"$IM_WORK/skopeo-auth.json"
  : >"$IM_WORK/registries.conf"
  mkdir -p "$IM_WORK/docker-config"
  printf '{}\n' >"$IM_WORK/docker-config/config.json"
  export REGISTRY_AUTH_FILE=$IM_WORK/skopeo-auth.json
  export CONTAINERS_REGISTRIES_CONF=$IM_WORK/registries.conf
  export DOCKER_CONFIG=$IM_WORK/docker-config
  # image-migrator keeps its auth.json encryption key under XDG_CONFIG_HOME and the tag digests it
  # saw under XDG_CACHE_HOME: never the real home.
  export XDG_CONFIG_HOME=$IM_WORK/xdg XDG_STATE_HOME=$IM_WORK/xdg-state XDG_CACHE_HOME=$IM_WORK/xdg-cache
  unset IMAGE_MIGRATOR_KEY

  trap '_im_cleanup' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  _im_start_watchdog
}

# A watchdog subshell cleans up if the test shell dies without running its
# EXIT trap (SIGKILL, e.g. a ctest timeout). It uses no external commands
# while waiting (read -t on a FIFO), and normal cleanup kills it first.
_im_start_watchdog() {
  local main=$BASHPID work=$IM_WORK keep=${IM_KEEP:-0}
  mkfifo "$work/.watchdog"
  (
    trap '' INT TERM HUP
    set +e
    exec 3<>"$work/.watchdog"
    local st
    # /proc/PID/stat field 3 is the state; the read fails once PID is gone.
    while { read -r _ _ st _ <"/proc/$main/stat"; } 2>/dev/null && [ "$st" != Z ]; do
      read -r -t 0.5 -u 3 _
    done
    if [ -f "$work/.pids" ]; then
      while read -r p; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done <"$work/.pids"
    fi
    [ "$keep" == 1 ] || rm -rf "$work"
  ) </dev/null >/dev/null 2>&1 &
  _IM_WATCHDOG=$!
}

# im_run CMD...: run CMD (e.g. image-migrator) in the background and wait for
# it; returns its status. Unlike a foreground command it lets a signal run the
# cleanup at once, and CMD is killed with the registries if the test is stopped.
im_run() {
  local pid rc=0
  "$@" &
  pid=$!
  _im_track "$pid"
  wait "$pid" || rc=$?
  _im_untrack "$pid"
  return "$rc"
}

# im_on_exit CMD...: run CMD at exit, before processes are killed.
im_on_exit() { _IM_ON_EXIT+=("$*"); }

_im_cleanup() {
  local rc=$?
  # Only the shell that called im_setup cleans up (not subshells).
  [ "${BASHPID}" == "${IM_MAIN_PID:-}" ] || return 0
  set +e
  trap - EXIT INT TERM HUP
  if [ -n "${_IM_WATCHDOG:-}" ]; then
    kill -KILL "$_IM_WATCHDOG" 2>/dev/null
    wait "$_IM_WATCHDOG" 2>/dev/null
  fi
  local c
  for c in "${_IM_ON_EXIT[@]}"; do eval "$c"; done
  _im_kill_all
  if [ -n "${IM_WORK:-}" ] && [ -d "$IM_WORK" ]; then
    if [ "${IM_KEEP:-0}" == 1 ]; then
      echo "IM_KEEP=1: keeping $IM_WORK" >&2
    else
      rm -rf "$IM_WORK"
    fi
  fi
  exit "$rc"
}

# Track a background process so cleanup kills it.
_im_track() {
  _IM_PIDS+=("$1")
  echo "$1" >>"$IM_WORK/.pids"
}

_im_untrack() {
  local p keep=()
  for p in "${_IM_PIDS[@]}"; do [ "$p" == "$1" ] || keep+=("$p"); done
  _IM_PIDS=("${keep[@]}")
  if [ -f "$IM_WORK/.pids" ]; then
    grep -vx -- "$1" "$IM_WORK/.pids" >"$IM_WORK/.pids.new" || true
    mv -f "$IM_WORK/.pids.new" "$IM_WORK/.pids"
  fi
}

# _im_kill PID...: SIGTERM, wait up to 5 s, then SIGKILL; reap our children.
_im_kill() {
  local p i alive
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for p in "$@"; do
      if kill -0 "$p" 2>/dev/null && ! _im_is_zombie "$p"; then alive=1; fi
    done
    [ "$alive" == 0 ] && break
    sleep 0.1
  done
  for p in "$@"; do
    if kill -0 "$p" 2>/dev/null && ! _im_is_zombie "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
  return 0
}

_im_is_zombie() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$st" == Z ]
}

_im_kill_all() {
  local pids=() p
  if [ -f "${IM_WORK:-}/.pids" ]; then
    while read -r p; do [ -n "$p" ] && pids+=("$p"); done <"$IM_WORK/.pids"
  fi
  for p in "${_IM_PIDS[@]}"; do pids+=("$p"); done
  [ "${#pids[@]}" -gt 0 ] || return 0
  mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -u)
  _im_kill "${pids[@]}"
  _IM_PIDS=()
  : >"$IM_WORK/.pids" 2>/dev/null
  return 0
}

# ----------------------------------------------------------------- ports

# _im_port_in_use PORT: true if any TCP socket (any state) uses local PORT.
_im_port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port: print a currently unused loopback TCP port (10000-32767, below the
# ephemeral range), never the same one twice within one test.
free_port() {
  local port i
  for ((i = 0; i < 500; i++)); do
    port=$((10000 + ${SRANDOM:-$((RANDOM * 32768 + RANDOM))} % 22768))
    if [ -n "${IM_WORK:-}" ] && [ -f "$IM_WORK/.ports" ] && grep -qx "$port" "$IM_WORK/.ports"; then
      continue
    fi
    _im_port_in_use "$port" && continue
    [ -n "${IM_WORK:-}" ] && [ -d "$IM_WORK" ] && echo "$port" >>"$IM_WORK/.ports"
    echo "$port"
    return 0
  done
  _im_die "free_port: no free port found"
}

# _im_pid_listens PID PORT: true if process PID owns a listening socket on PORT.
_im_pid_listens() {
  local hex inode
  hex=$(printf '%04X' "$2")
  for inode in $(awk -v h=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { print $10 }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    if find "/proc/$1/fd" -maxdepth 1 -lname "socket:\[$inode\]" 2>/dev/null | grep -q .; then
      return 0
    fi
  done
  return 1
}

# ----------------------------------------------------------------- certificates

_im_openssl() {
  openssl "$@" >>"$IM_WORK/.openssl.log" 2>&1 || {
    tail -n 20 "$IM_WORK/.openssl.log" >&2
    _im_die "openssl $1 failed"
  }
}

# Test CA + one server certificate (IP:127.0.0.1, DNS:localhost), once per $IM_WORK.
_im_ensure_tls() {
  local d=$IM_WORK/ca
  [ -s "$d/server.crt" ] && return 0
  mkdir -p "$d"
  _im_openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=image-migrator test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" || return 1
  _im_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" || return 1
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext"
  _im_openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$d/server.ext" -out "$d/server.crt" || return 1
}

# ----------------------------------------------------------------- registries

_im_upper() {
  local n=${1^^}
  echo "${n//-/_}"
}

_im_check_name() {
  [[ "$1" =~ ^[A-Za-z][A-Za-z0-9_-]*$ ]] || _im_die "bad registry name '$1' (letters, digits, _ and -)"
}

_im_export() {
  printf -v "$1" '%s' "$2"
  export "${1?}"
}

# _im_wait_http URL CACERT PID SECONDS: until URL answers 200 or 401.
_im_wait_http() {
  local url=$1 ca=$2 pid=$3 secs=$4 code i opts=(-s -o /dev/null -w '%{http_code}' --max-time 2 --noproxy '*')
  [ -n "$ca" ] && opts+=(--cacert "$ca")
  # A registry that requires client certificates (http.tls.clientcas): IM_CLIENT_CERT/IM_CLIENT_KEY.
  [ -n "${IM_CLIENT_CERT:-}" ] && opts+=(--cert "$IM_CLIENT_CERT" --key "$IM_CLIENT_KEY")
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null && ! _im_is_zombie "$pid" || return 2
    code=$(curl "${opts[@]}" "$url" 2>/dev/null) || code=000
    case "$code" in 200 | 401) return 0 ;; esac
    sleep 0.1
  done
  return 1
}

# _im_wait_listen PID PORT SECONDS: until PID listens on PORT (2 = PID died).
_im_wait_listen() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    kill -0 "$1" 2>/dev/null && ! _im_is_zombie "$1" || return 2
    _im_pid_listens "$1" "$2" && return 0
    sleep 0.05
  done
  return 1
}

# Token server for registry NAME (dir D). Uses the port in D/token/port if any.
_im_start_token_server() {
  local name=$1 d=$IM_WORK/$1 N pid port i tls_args=() scheme=http
  N=$(_im_upper "$name")
  [ -x "$TOKEN_SERVER_BIN" ] || _im_die "TOKEN_SERVER_BIN ($TOKEN_SERVER_BIN) is not an executable; build token_server first" || return 1
  local args=(--host 127.0.0.1 --key "$d/token/key.pem" --cert "$d/token/cert.pem" --users "$d/token/users.txt"
    --issuer test-issuer --service test-registry --ttl "$(cat "$d/token/ttl")" --log "$d/token/token.log"
    --exp-skew "$(cat "$d/token/exp-skew")" --delay-ms "$(cat "$d/token/delay-ms" 2>/dev/null || echo 0)")
  [ -f "$d/token/anonymous-pull" ] && args+=(--anonymous-pull)
  if [ -f "$d/token/tls" ]; then
    tls_args=(--tls-cert "$IM_WORK/ca/server.crt" --tls-key "$IM_WORK/ca/server.key")
    scheme=https
  fi
  if [ -s "$d/token/port" ]; then
    port=$(cat "$d/token/port")
    args+=(--port "$port")
  else
    args+=(--port 0 --port-file "$d/token/port")
  fi
  "$TOKEN_SERVER_BIN" "${args[@]}" "${tls_args[@]}" >>"$d/token/server.log" 2>&1 &
  pid=$!
  _im_track "$pid"
  for ((i = 0; i < 100; i++)); do
    [ -s "$d/token/port" ] && break
    kill -0 "$pid" 2>/dev/null && ! _im_is_zombie "$pid" || break
    sleep 0.1
  done
  [ -s "$d/token/port" ] || {
    cat "$d/token/server.log" >&2
    _im_die "token server for $name did not start"
    return 1
  }
  port=$(cat "$d/token/port")
  local ca=
  [ "$scheme" == https ] && ca=$IM_WORK/ca/ca.crt
  _im_wait_listen "$pid" "$port" 10 && _im_wait_http "$scheme://127.0.0.1:$port/healthz" "$ca" "$pid" 10 || {
    cat "$d/token/server.log" >&2
    _im_die "token server for $name is not answering on port $port"
    return 1
  }
  _im_export "${N}_TOKEN_PID" "$pid"
  _im_export "${N}_REALM" "$scheme://127.0.0.1:$port/token"
  _im_export "${N}_TOKEN_LOG" "$d/token/token.log"
  echo "$pid" >"$d/token/pid"
}

# start_registry NAME MODE [OPTION...]
#   MODE: plain | htpasswd | token | tls | tls-htpasswd | tls-token
#   OPTION: --ttl N (token modes, default $TOKEN_TTL or 60; see TOKEN_EXP_SKEW)
#           --anonymous-pull (token modes)
#           REGISTRY_X_Y=value (environment override passed to docker-registry,
#                               e.g. REGISTRY_STORAGE_MAINTENANCE_READONLY='{"enabled": true}')
# Exports NAME_ADDR (127.0.0.1:PORT), NAME_URL (http[s]://NAME_ADDR), NAME_PID,
# NAME_MODE, NAME_DIR, NAME_LOG (registry log incl. access log), NAME_CREDS
# (default credentials, empty without auth); tls modes: NAME_CA, NAME_CERTDIR;
# token modes: NAME_TOKEN_LOG, NAME_TOKEN_PID, NAME_REALM.  NAME is upper-cased,
# '-' becomes '_'.
start_registry() {
  _im_need_setup || return 1
  [ $# -ge 2 ] || _im_die "usage: start_registry NAME MODE [OPTION...]" || return 1
  local name=$1 mode=$2
  shift 2
  _im_check_name "$name" || return 1
  local N d=$IM_WORK/$name
  N=$(_im_upper "$name")
  [ ! -e "$d/mode" ] || _im_die "registry $name already exists" || return 1

  local tls=0 auth=none ttl=${TOKEN_TTL:-60} anon=0 envs=()
  case "$mode" in
    plain) ;;
    htpasswd) auth=htpasswd ;;
    token) auth=token ;;
    tls) tls=1 ;;
    tls-htpasswd) tls=1 auth=htpasswd ;;
    tls-token) tls=1 auth=token ;;
    *) _im_die "start_registry: unknown mode '$mode'" || return 1 ;;
  esac
  while [ $# -gt 0 ]; do
    case "$1" in
      --ttl) ttl=$2; shift 2 ;;
      --anonymous-pull) anon=1; shift ;;
      REGISTRY_*=*) envs+=("$1"); shift ;;
      *) _im_die "start_registry: unknown option '$1'" || return 1 ;;
    esac
  done

  mkdir -p "$d/data" "$d/certs"
  echo "$mode" >"$d/mode"
  [ "$tls" == 1 ] && { _im_ensure_tls || return 1; cp "$IM_WORK/ca/ca.crt" "$d/certs/ca.crt"; }

  local auth_yaml=
  case "$auth" in
    htpasswd)
      { htpasswd -Bbn alice alicepass && htpasswd -Bbn bob bobpass; } | grep . >"$d/htpasswd" ||
        _im_die "htpasswd failed" || return 1
      auth_yaml="auth:
  htpasswd:
    realm: test-registry
    path: $d/htpasswd"
      echo "alice:alicepass" >"$d/creds"
      ;;
    token)
      mkdir -p "$d/token"
      _im_openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$d/token/key.pem" \
        -out "$d/token/cert.pem" -subj "/CN=test-issuer" || return 1
      printf '%s\n' alice:alicepass bob:bobpass reader:readerpass:pull >"$d/token/users.txt"
      echo "$ttl" >"$d/token/ttl"
      echo "${TOKEN_EXP_SKEW:-60}" >"$d/token/exp-skew"
      echo "${TOKEN_DELAY_MS:-0}" >"$d/token/delay-ms"
      [ "$anon" == 1 ] && : >"$d/token/anonymous-pull"
      [ "$tls" == 1 ] && : >"$d/token/tls"
      : >"$d/token/token.log"
      _im_start_token_server "$name" || return 1
      local realm_var=${N}_REALM
      auth_yaml="auth:
  token:
    realm: ${!realm_var}
    service: test-registry
    issuer: test-issuer
    rootcertbundle: $d/token/cert.pem"
      echo "alice:alicepass" >"$d/creds"
      ;;
  esac

  local tls_yaml=
  [ "$tls" == 1 ] && tls_yaml="  tls:
    certificate: $IM_WORK/ca/server.crt
    key: $IM_WORK/ca/server.key"

  # Launcher (reused by restart_registry). docker-registry treats every
  # REGISTRY_* environment variable as a config override (REGISTRY_AUTH_FILE,
  # exported for skopeo, would become auth.file and break startup), so the
  # launcher drops them all and sets only the requested overrides.
  {
    echo '#!/usr/bin/env bash'
    echo 'for v in $(compgen -e); do case "$v" in REGISTRY_*) unset "$v" ;; esac; done'
    printf 'exec env'
    [ ${#envs[@]} -gt 0 ] && printf ' %q' "${envs[@]}"
    printf ' %q serve %q\n' "$DOCKER_REGISTRY_BIN" "$d/config.yml"
  } >"$d/run.sh"

  local attempt port rc
  for ((attempt = 1; attempt <= 5; attempt++)); do
    port=$(free_port) || return 1
    cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $(openssl rand -hex 16)
$tls_yaml
$auth_yaml
health:
  storagedriver:
    enabled: false
EOF
    echo "$port" >"$d/port"
    rc=0
    _im_launch_registry "$name" || rc=$?
    [ "$rc" == 0 ] && break
    [ "$rc" == 3 ] && continue # port taken meanwhile: try another one
    return 1
  done
  [ "$rc" == 0 ] || _im_die "registry $name: could not find a free port" || return 1

  local scheme=http
  [ "$tls" == 1 ] && scheme=https
  _im_export "${N}_ADDR" "127.0.0.1:$port"
  _im_export "${N}_URL" "$scheme://127.0.0.1:$port"
  _im_export "${N}_MODE" "$mode"
  _im_export "${N}_DIR" "$d"
  _im_export "${N}_LOG" "$d/registry.log"
  _im_export "${N}_CREDS" "$(cat "$d/creds" 2>/dev/null || true)"
  if [ "$tls" == 1 ]; then
    _im_export "${N}_CA" "$d/certs/ca.crt"
    _im_export "${N}_CERTDIR" "$d/certs"
  fi
  echo "127.0.0.1:$port" >"$d/addr"
}

# Starts $d/run.sh; 0 = up, 3 = port in use, 1 = other failure. Exports NAME_PID.
_im_launch_registry() {
  local name=$1 d=$IM_WORK/$1 N pid port ca= scheme=http rc
  N=$(_im_upper "$name")
  port=$(cat "$d/port")
  [ -f "$d/certs/ca.crt" ] && { ca=$d/certs/ca.crt; scheme=https; }
  echo "--- start $(date -u +%FT%TZ) port $port" >>"$d/registry.log"
  bash "$d/run.sh" >>"$d/registry.log" 2>&1 &
  pid=$!
  _im_track "$pid"
  echo "$pid" >"$d/pid"
  rc=0
  _im_wait_listen "$pid" "$port" 10 || rc=$?
  if [ "$rc" == 0 ]; then _im_wait_http "$scheme://127.0.0.1:$port/v2/" "$ca" "$pid" 10 || rc=$?; fi
  if [ "$rc" != 0 ]; then
    _im_kill "$pid"
    _im_untrack "$pid"
    if tail -n 20 "$d/registry.log" | grep -q 'address already in use'; then return 3; fi
    tail -n 20 "$d/registry.log" >&2
    _im_die "registry $name did not come up on port $port"
    return 1
  fi
  _im_export "${N}_PID" "$pid"
  return 0
}

# _im_stop_pidfile PIDFILE: stop the process PIDFILE names, forget it, remove PIDFILE.
_im_stop_pidfile() {
  local pid
  pid=$(cat "$1")
  _im_kill "$pid"
  _im_untrack "$pid"
  rm -f "$1"
}

# stop_registry NAME: stop the registry process (data, port and its token server stay).
stop_registry() {
  _im_need_setup || return 1
  [ -f "$IM_WORK/$1/pid" ] || _im_die "stop_registry: registry $1 is not running" || return 1
  _im_stop_pidfile "$IM_WORK/$1/pid"
}

# restart_registry NAME: stop (if running) and start again, same port and data.
restart_registry() {
  _im_need_setup || return 1
  local d=$IM_WORK/$1
  [ -f "$d/run.sh" ] || _im_die "restart_registry: unknown registry $1" || return 1
  [ -f "$d/pid" ] && { stop_registry "$1" || return 1; }
  _im_launch_registry "$1" || _im_die "restart_registry: $1 did not come back on port $(cat "$d/port")"
}

# stop_token_server NAME / restart_token_server NAME (same port, same key).
stop_token_server() {
  _im_need_setup || return 1
  [ -f "$IM_WORK/$1/token/pid" ] || _im_die "stop_token_server: no token server running for $1" || return 1
  _im_stop_pidfile "$IM_WORK/$1/token/pid"
}
restart_token_server() {
  _im_need_setup || return 1
  [ -d "$IM_WORK/$1/token" ] || _im_die "restart_token_server: $1 is not a token registry" || return 1
  [ -f "$IM_WORK/$1/token/pid" ] && { stop_token_server "$1" || return 1; }
  _im_start_token_server "$1"
}

# token_requests NAME [USER [STATUS]]: number of token requests logged for NAME.
token_requests() {
  local log=$IM_WORK/$1/token/token.log
  [ -f "$log" ] || { echo 0; return 0; }
  awk -v u="${2:-}" -v s="${3:-}" '(u == "" || $3 == u) && (s == "" || $5 == s) { n++ } END { print n + 0 }' "$log"
}

# ----------------------------------------------------------------- skopeo

# _im_reg_of REF: name of the registry (started here) that REF points at.
_im_reg_of() {
  local ref=${1#docker://} host port f a
  host=${ref%%/*}
  port=${host##*:}
  for f in "$IM_WORK"/*/addr; do
    [ -f "$f" ] || continue
    a=$(cat "$f")
    if [ "$a" == "$host" ] || { [ "${host%:*}" == localhost ] && [ "$a" == "127.0.0.1:$port" ]; }; then
      basename "$(dirname "$f")"
      return 0
    fi
  done
  return 1
}

# _im_flags PREFIX REF CREDS: fills _IM_FLAGS with TLS/credential options for REF.
# PREFIX is "--src-", "--dest-" or "--". CREDS: user:pass, "none", or "" (= default).
_im_flags() {
  local p=$1 ref=$2 creds=$3 reg mode
  _IM_FLAGS=()
  if ! reg=$(_im_reg_of "$ref"); then
    _IM_FLAGS+=("${p}tls-verify=false")
    [ -n "$creds" ] && [ "$creds" != none ] && _IM_FLAGS+=("${p}creds=$creds")
    return 0
  fi
  mode=$(cat "$IM_WORK/$reg/mode")
  case "$mode" in
    tls*) _IM_FLAGS+=("${p}cert-dir=$IM_WORK/$reg/certs") ;;
    *) _IM_FLAGS+=("${p}tls-verify=false") ;;
  esac
  [ -z "$creds" ] && creds=$(cat "$IM_WORK/$reg/creds" 2>/dev/null || true)
  if [ "$creds" == none ]; then
    _IM_FLAGS+=("${p}no-creds")
  elif [ -n "$creds" ]; then
    _IM_FLAGS+=("${p}creds=$creds")
  fi
}

# im_skopeo ARGS...: skopeo with the test policy, temp dir and timeout.
im_skopeo() {
  _im_need_setup || return 1
  [ "${IM_VERBOSE:-0}" == 1 ] && im_log "skopeo $*"
  timeout "${IM_SKOPEO_TIMEOUT:-120}" skopeo --policy "$IM_WORK/policy.json" --tmpdir "$IM_WORK/.tmp" "$@"
}

# layout_digest LAYOUT_DIR TAG: digest index.json records for TAG.
layout_digest() {
  jq -er --arg t "$2" '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)][0].digest' \
    "$1/index.json" || _im_die "layout_digest: no tag $2 in $1"
}

# file_digest FILE: sha256:<hex> of a file's bytes.
file_digest() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# push_blob ADDR REPO FILE: monolithic upload of FILE to the plain-HTTP registry at ADDR, with curl
# (artifacts skopeo cannot push: signatures, SBOMs).
push_blob() {
  local loc
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$1/v2/$2/blobs/uploads/" | tr -d '\r' |
    awk 'tolower($1) == "location:" { print $2 }')
  [ -n "$loc" ] || fail "no upload location for $2 on $1"
  case "$loc" in /*) loc="http://$1$loc" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$3" "$loc&digest=$(file_digest "$3")" \
    >/dev/null || fail "blob upload to $1/$2 failed"
}

# push_manifest ADDR REPO REFERENCE FILE MEDIATYPE: PUT the bytes of FILE as a manifest.
push_manifest() {
  curl -sf -X PUT -H "Content-Type: $5" --data-binary @"$4" "http://$1/v2/$2/manifests/$3" >/dev/null ||
    fail "manifest push $1/$2:$3 failed: $(curl -s -X PUT -H "Content-Type: $5" --data-binary @"$4" "http://$1/v2/$2/manifests/$3")"
}

# cosign_sign ADDR REPO DIGEST SUFFIX: a cosign-style signature (simple signing payload, OCI manifest)
# of DIGEST under the tag sha256-<hex>.SUFFIX; prints the signature manifest's digest.
cosign_sign() {
  local addr=$1 repo=$2 digest=$3 suffix=$4 n=$RANDOM$RANDOM d
  d=$(mktemp -d "$IM_WORK/.tmp/sig.XXXXXX")
  printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":{"n":"%s"}}' \
    "$addr/$repo" "$digest" "$n" >"$d/payload"
  printf '{"architecture":"","config":{},"created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$(file_digest "$d/payload")" >"$d/config"
  push_blob "$addr" "$repo" "$d/payload"
  push_blob "$addr" "$repo" "$d/config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":%s,"digest":"%s"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":%s,"digest":"%s","annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ%s"}}]}' \
    "$(stat -c %s "$d/config")" "$(file_digest "$d/config")" "$(stat -c %s "$d/payload")" "$(file_digest "$d/payload")" "$n" \
    >"$d/manifest"
  push_manifest "$addr" "$repo" "${digest/:/-}.$suffix" "$d/manifest" application/vnd.oci.image.manifest.v1+json
  file_digest "$d/manifest"
}

# make_layout DIR TAG [make-oci-layout.sh options]: builds a layout, prints the digest.
make_layout() {
  bash "$OCI_LAYOUT_SH" "$@"
}

# seed LAYOUT_DIR TAG DEST_REF [skopeo-copy-options...]
# Pushes oci:LAYOUT_DIR:TAG to docker://DEST_REF (DEST_REF = ADDR/repo:tag).
# Credentials: $SEED_CREDS, else $IM_CREDS, else the registry's default ("none" = anonymous).
# Multi-arch layouts get --multi-arch all unless a --multi-arch option is given.
seed() {
  _im_need_setup || return 1
  [ $# -ge 3 ] || _im_die "usage: seed LAYOUT_DIR TAG DEST_REF [skopeo-copy-options...]" || return 1
  local dir=$1 tag=$2 ref=${3#docker://} mt extra=() a has_ma=0 err
  shift 3
  mt=$(jq -r --arg t "$tag" \
    '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)][0].mediaType // ""' \
    "$dir/index.json" 2>/dev/null) || mt=
  [ -n "$mt" ] || _im_die "seed: no tag '$tag' in layout $dir" || return 1
  for a in "$@"; do [[ "$a" == --multi-arch* ]] && has_ma=1; done
  if [ "$has_ma" == 0 ] && [ "$mt" == application/vnd.oci.image.index.v1+json ]; then
    extra+=(--multi-arch all)
  fi
  _im_flags --dest- "$ref" "${SEED_CREDS:-${IM_CREDS:-}}"
  err=$IM_WORK/.tmp/seed.err.$$
  if ! im_skopeo copy --quiet "${_IM_FLAGS[@]}" "${extra[@]}" "$@" "oci:$dir:$tag" "docker://$ref" 2>"$err"; then
    cat "$err" >&2
    rm -f "$err"
    _im_die "seed oci:$dir:$tag -> docker://$ref failed"
    return 1
  fi
  rm -f "$err"
}

# raw_digest REF [CREDS]: prints sha256:<hex> of the exact manifest bytes at docker://REF.
raw_digest() {
  _im_need_setup || return 1
  local ref=${1#docker://} out
  _im_flags -- "$ref" "${2:-${IM_CREDS:-}}"
  out=$(mktemp "$IM_WORK/.tmp/raw.XXXXXX")
  if ! im_skopeo inspect --raw "${_IM_FLAGS[@]}" "docker://$ref" >"$out"; then
    rm -f "$out"
    _im_die "raw_digest: skopeo inspect --raw docker://$ref failed"
    return 1
  fi
  echo "sha256:$(sha256sum "$out" | cut -d' ' -f1)"
  rm -f "$out"
}

# raw_manifest REF [CREDS]: prints the exact manifest bytes at docker://REF.
raw_manifest() {
  _im_need_setup || return 1
  local ref=${1#docker://}
  _im_flags -- "$ref" "${2:-${IM_CREDS:-}}"
  im_skopeo inspect --raw "${_IM_FLAGS[@]}" "docker://$ref" || _im_die "raw_manifest: docker://$ref failed"
}

# pull_all_platforms REF [CREDS]: copies every platform of docker://REF into a new
# OCI layout (skopeo verifies every blob digest on the way); sets PULLED_DIR to it.
pull_all_platforms() {
  _im_need_setup || return 1
  local ref=${1#docker://} dir
  _im_flags --src- "$ref" "${2:-${IM_CREDS:-}}"
  dir=$(mktemp -d "$IM_WORK/pulled-XXXXXX")
  if ! im_skopeo copy --quiet --multi-arch all "${_IM_FLAGS[@]}" "docker://$ref" "oci:$dir:t"; then
    _im_die "pull_all_platforms: skopeo copy docker://$ref failed"
    return 1
  fi
  PULLED_DIR=$dir
}

# im_copy SRC DST [skopeo-copy-options...]: skopeo copy with TLS/credential
# options for every docker:// side (credentials: $IM_CREDS or the registry's).
im_copy() {
  _im_need_setup || return 1
  local src=$1 dst=$2 flags=()
  shift 2
  if [[ "$src" == docker://* ]]; then _im_flags --src- "${src#docker://}" "${IM_CREDS:-}"; flags+=("${_IM_FLAGS[@]}"); fi
  if [[ "$dst" == docker://* ]]; then _im_flags --dest- "${dst#docker://}" "${IM_CREDS:-}"; flags+=("${_IM_FLAGS[@]}"); fi
  im_skopeo copy --quiet "${flags[@]}" "$@" "$src" "$dst"
}

# im_inspect REF [skopeo-inspect-options...]: skopeo inspect docker://REF.
im_inspect() {
  _im_need_setup || return 1
  local ref=${1#docker://}
  shift
  _im_flags -- "$ref" "${IM_CREDS:-}"
  im_skopeo inspect "${_IM_FLAGS[@]}" "$@" "docker://$ref"
}

# ----------------------------------------------------------------- fault proxy

# spawn_listener LABEL DIR COMMAND...: runs a test server in the background (stderr to DIR/stderr),
# tracked like the registries (killed on exit), and waits until it has written its port to DIR/port
# (the command must be told to); fails the test if it does not.
spawn_listener() {
  local label=$1 d=$2 pid i
  shift 2
  mkdir -p "$d"
  "$@" 2>>"$d/stderr" &
  pid=$!
  _im_track "$pid"
  for ((i = 0; i < 100; i++)); do
    [ -s "$d/port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -s "$d/port" ] || { cat "$d/stderr" >&2; fail "$label did not start"; }
}

# start_proxy NAME UPSTREAM_ADDR: tests/faultproxy/fault_proxy in front of UPSTREAM_ADDR
# (binary: $FAULT_PROXY_BIN, default <build>/tests/faultproxy/fault_proxy).
# Exports NAME_ADDR, NAME_RULES (rules file), NAME_PLOG (request log), NAME_MAXFLIGHT (file: the most
# requests it has handled at once).
start_proxy() { # NAME UPSTREAM [fault_proxy options...]
  local name=$1 up=$2 d=$IM_WORK/proxy-$1 N
  shift 2
  N=$(_im_upper "$name")
  mkdir -p "$d"
  : >"$d/rules"
  : >"$d/log"
  local bin=${FAULT_PROXY_BIN:-${IM_BUILD_DIR:-$IM_REPO_ROOT/build}/tests/faultproxy/fault_proxy}
  spawn_listener "fault_proxy $name" "$d" "$bin" --upstream "$up" --port-file "$d/port" --rules "$d/rules" \
    --log "$d/log" --max-in-flight "$d/max-in-flight" "$@"
  _im_export "${N}_ADDR" "127.0.0.1:$(cat "$d/port")"
  _im_export "${N}_RULES" "$d/rules"
  _im_export "${N}_PLOG" "$d/log"
  _im_export "${N}_MAXFLIGHT" "$d/max-in-flight"
}

# set_rules RULES_FILE [RULE...]: replace the rules atomically (the proxy re-reads them, counters restart).
set_rules() {
  local f=$1
  shift
  if [ $# -gt 0 ]; then printf '%s\n' "$@" >"$f.new"; else : >"$f.new"; fi
  mv -f "$f.new" "$f"
}

# ----------------------------------------------------------------- image-migrator runs

# run_im NAME ARGS...: runs image-migrator (stdout+stderr to $IM_WORK/NAME.out); sets rc and ms.
run_im() {
  local name=$1 t0 bin=$IM_BIN
  shift
  t0=$(date +%s%N)
  rc=0
  im_run "$bin" "$@" >"$IM_WORK/$name.out" 2>&1 || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
}

# assert_absent REF MSG: REF's manifest does not exist (the registry says unknown, not some other error).
assert_absent() {
  local err=$IM_WORK/.tmp/absent.err
  if raw_digest "$1" >/dev/null 2>"$err"; then
    fail "$2 ($1 exists)"
  fi
  grep -Eqi 'manifest unknown|name unknown|not known|not found' "$err" ||
    fail "$2 (could not tell whether $1 exists: $(tail -n 2 "$err" | tr '\n' ' '))"
  pass "$2"
}

# same_digest SRC_REF DST_REF MSG: both manifests exist and have the same digest.
same_digest() {
  local s d
  s=$(raw_digest "$1")
  d=$(raw_digest "$2")
  assert_eq "$d" "$s" "$3"
}

# no_leak SECRET USER FILE...: SECRET (and its Basic form USER:SECRET, base64) is in none of FILE...
no_leak() {
  local secret=$1 user=$2 f
  shift 2
  local b64
  b64=$(printf '%s:%s' "$user" "$secret" | base64 -w0)
  for f in "$@"; do
    [ -f "$f" ] || fail "no_leak: $f does not exist"
    if grep -qF -e "$secret" -e "$b64" "$f"; then
      fail "the password of $user leaks into $(basename "$f"): $(grep -F -e "$secret" -e "$b64" "$f" | head -n 1)"
    fi
  done
}

# start_hostile NAME LAYOUT TAG [hostile_registry.py options...]: a compromised source registry of our
# own (tests/tools/hostile_registry.py) serving oci:LAYOUT:TAG; exports NAME_ADDR and NAME_HLOG.
start_hostile() {
  local name=$1 layout=$2 tag=$3 d N
  shift 3
  d=$IM_WORK/hostile-$name
  N=$(_im_upper "$name")
  mkdir -p "$d"
  : >"$d/log"
  spawn_listener "hostile registry $name" "$d" python3 "$IM_REPO_ROOT/tests/tools/hostile_registry.py" \
    --layout "$layout" --tag "$tag" --port-file "$d/port" --log "$d/log" "$@"
  _im_export "${N}_ADDR" "127.0.0.1:$(cat "$d/port")"
  _im_export "${N}_HLOG" "$d/log"
}

# start_hostile_kube NAME MODE: a compromised Kubernetes API server (tests/tools/hostile_kube.py, TLS
# with the test CA); writes $IM_WORK/NAME.kubeconfig (token auth) and exports NAME_KUBECONFIG.
start_hostile_kube() {
  local name=$1 mode=$2 d N
  d=$IM_WORK/hostile-kube-$name
  N=$(_im_upper "$name")
  _im_ensure_tls
  mkdir -p "$d"
  spawn_listener "hostile API server $name" "$d" python3 "$IM_REPO_ROOT/tests/tools/hostile_kube.py" \
    --cert "$IM_WORK/ca/server.crt" --key "$IM_WORK/ca/server.key" --port-file "$d/port" --mode "$mode" --log "$d/log"
  cat >"$IM_WORK/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: hostile
  cluster: {server: "https://127.0.0.1:$(cat "$d/port")", certificate-authority: "$IM_WORK/ca/ca.crt"}
users:
- name: hostile
  user: {token: some-token}
contexts:
- name: hostile
  context: {cluster: hostile, user: hostile, namespace: default}
current-context: hostile
KC
  _im_export "${N}_KUBECONFIG" "$IM_WORK/$name.kubeconfig"
}
