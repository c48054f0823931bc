# shellcheck shell=bash
# tests/kubeapi/kube_lib.sh - run the test Kubernetes API server (kube_api_server)
# from bash tests. Source it, then:
#
#   source "$REPO/tests/kubeapi/kube_lib.sh"
#   kube_setup "$WORK/kube"                      # CA, server and client certs
#   start_kube_api K --objects "$FIXTURES" --generate 100
#   kubectl --kubeconfig "$KUBE_DIR/K-token.kubeconfig" get pods -A
#   image-migrator config --kubeconfig "$K_CERT_KUBECONFIG" ...
#
# Functions
#   kube_setup DIR            certificates in DIR (reused if already there); sets KUBE_DIR
#   start_kube_api NAME ARGS  start a server (ARGS are extra kube_api_server flags)
#   stop_kube_api NAME        stop that server (SIGTERM, then SIGKILL after 3 s)
#   kube_cleanup              stop every server started here (call it from your own
#                             EXIT trap if you have one)
#   kube_write_kubeconfig FILE URL MODE [VALUE]
#                             write a kubeconfig: MODE token|tokenfile|cert|data|basic
#
# Files in DIR: ca.pem ca-key.pem (server CA), server.pem server-key.pem
# (127.0.0.1, localhost), client-ca.pem client-ca-key.pem, client.pem
# client-key.pem (CN=test-user, O=system:masters), and per server NAME:
#   NAME-token.kubeconfig      bearer token inline, certificate-authority path
#   NAME-tokenfile.kubeconfig  tokenFile: NAME.token (the file the server re-reads
#                              at every request: rewrite it to rotate the token)
#   NAME-cert.kubeconfig       client-certificate/client-key paths
#   NAME-data.kubeconfig       certificate-authority-data, client-certificate-data,
#                              client-key-data (base64)
#   NAME.token NAME.port NAME.log (request log) NAME.stderr (server errors)
#
# Exported after start_kube_api NAME:
#   NAME_URL (https://127.0.0.1:PORT) NAME_PORT NAME_PID NAME_LOG NAME_TOKEN_FILE
#   NAME_TOKEN_KUBECONFIG NAME_TOKENFILE_KUBECONFIG NAME_CERT_KUBECONFIG
#   NAME_DATA_KUBECONFIG
# Exported by kube_setup: KUBE_DIR KUBE_CA KUBE_SERVER_CERT KUBE_SERVER_KEY
#   KUBE_CLIENT_CA KUBE_CLIENT_CERT KUBE_CLIENT_KEY
#
# Environment
#   KUBE_API_SERVER_BIN  server binary (default <build>/tests/kubeapi/kube_api_server,
#                        <build> = $IM_BUILD_DIR or <repo>/build)
#   KUBE_TOKEN           accepted bearer token (default test-token-123). The server
#                        gets it through --token-file NAME.token; pass --token X for more.
#   KUBE_API_MAX_SECONDS the server exits by itself after this long (default 900),
#                        a safety net should a test be killed with SIGKILL.
#
# Cleanup: the first start_kube_api installs "trap kube_cleanup EXIT" only if no
# EXIT trap is set; a script with its own EXIT trap must call kube_cleanup in it.
# Call start_kube_api in the current shell (not in $(...)), so that its variables
# and the PID list survive.

KUBE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBE_LIB_REPO_ROOT=$(cd "$KUBE_LIB_DIR/../.." && pwd)
declare -p KUBE_API_PIDS &>/dev/null || KUBE_API_PIDS=()

_kube_err() { printf 'kube_lib: %s\n' "$*" >&2; }

# _kube_yq STRING: STRING as a single-quoted YAML scalar.
_kube_yq() { printf "'%s'" "${1//\'/\'\'}"; }

_kube_b64() { base64 -w0 <"$1"; }

kube_setup() {
  local dir=${1:?kube_setup DIR}
  mkdir -p "$dir" || return 1
  dir=$(cd "$dir" && pwd) || return 1
  export KUBE_DIR=$dir
  export KUBE_CA=$dir/ca.pem KUBE_SERVER_CERT=$dir/server.pem KUBE_SERVER_KEY=$dir/server-key.pem
  export KUBE_CLIENT_CA=$dir/client-ca.pem KUBE_CLIENT_CERT=$dir/client.pem
  export KUBE_CLIENT_KEY=$dir/client-key.pem
  if [ -s "$dir/ca.pem" ] && [ -s "$dir/server.pem" ] && [ -s "$dir/client.pem" ] &&
    [ -s "$dir/client-ca.pem" ]; then
    return 0
  fi
  cat >"$dir/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
  local out
  out=$(
    set -e
    cd "$dir"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>&1; }
    serial() { printf '0x%s' "$(openssl rand -hex 8)"; }
    # $1 name, $2 subject
    ca() {
      key "$1-key.pem"
      openssl req -new -x509 -config openssl.cnf -extensions ca -key "$1-key.pem" \
        -subj "$2" -days 3650 -set_serial "$(serial)" -out "$1.pem" 2>&1
    }
    # $1 name, $2 subject, $3 CA name, $4 extensions section
    leaf() {
      key "$1-key.pem"
      openssl req -new -config openssl.cnf -key "$1-key.pem" -subj "$2" -out "$1.csr" 2>&1
      openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3-key.pem" -days 3650 \
        -set_serial "$(serial)" -extfile openssl.cnf -extensions "$4" -out "$1.pem" 2>&1
      rm -f "$1.csr"
    }
    ca ca "/CN=kube-test-ca"
    leaf server "/CN=kube-apiserver" ca server
    ca client-ca "/CN=kube-test-client-ca"
    leaf client "/O=system:masters/CN=test-user" client-ca client
  ) || {
    _kube_err "certificate generation failed: $out"
    return 1
  }
  chmod 600 "$dir"/*-key.pem
}

# kube_write_kubeconfig FILE URL MODE [VALUE]
#   token VALUE        inline bearer token         tokenfile VALUE  tokenFile path
#   cert               client cert/key paths       data             everything inline (base64)
#   basic VALUE        user:pass
kube_write_kubeconfig() {
  local file=$1 url=$2 mode=$3 value=${4:-} cluster user
  local name
  name=$(basename "$file" .kubeconfig)
  if [ "$mode" = data ]; then
    cluster="    certificate-authority-data: $(_kube_b64 "$KUBE_CA")"
  else
    cluster="    certificate-authority: $(_kube_yq "$KUBE_CA")"
  fi
  case $mode in
  token) user="    token: $(_kube_yq "$value")" ;;
  tokenfile) user="    tokenFile: $(_kube_yq "$value")" ;;
  cert) user="    client-certificate: $(_kube_yq "$KUBE_CLIENT_CERT")
    client-key: $(_kube_yq "$KUBE_CLIENT_KEY")" ;;
  data) user="    client-certificate-data: $(_kube_b64 "$KUBE_CLIENT_CERT")
    client-key-data: $(_kube_b64 "$KUBE_CLIENT_KEY")" ;;
  basic) user="    username: $(_kube_yq "${value%%:*}")
    password: $(_kube_yq "${value#*:}")" ;;
  *)
    _kube_err "kube_write_kubeconfig: unknown mode $mode"
    return 1
    ;;
  esac
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $(_kube_yq "$url")
$cluster
users:
- name: $name
  user:
$user
contexts:
- name: $name
  context:
    cluster: $name
    user: $name
current-context: $name
preferences: {}
EOF
  chmod 600 "$file"
}

start_kube_api() {
  local name=${1:?start_kube_api NAME [server flags...]}
  shift
  if ! [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    _kube_err "start_kube_api: NAME must be a shell identifier (it names \$${name}_URL): $name"
    return 1
  fi
  if [ -z "${KUBE_DIR:-}" ] || [ ! -s "$KUBE_DIR/ca.pem" ]; then
    _kube_err "start_kube_api: call kube_setup DIR first"
    return 1
  fi
  local bin=${KUBE_API_SERVER_BIN:-${IM_BUILD_DIR:-$KUBE_LIB_REPO_ROOT/build}/tests/kubeapi/kube_api_server}
  if [ ! -x "$bin" ]; then
    _kube_err "start_kube_api: no server binary at $bin (build target kube_api_server or set KUBE_API_SERVER_BIN)"
    return 1
  fi
  local dir=$KUBE_DIR token=${KUBE_TOKEN-test-token-123}
  local log=$dir/$name.log prev="" a
  for a in "$@"; do
    [ "$prev" = --log ] && log=$a
    prev=$a
  done
  printf '%s\n' "$token" >"$dir/$name.token"
  rm -f "$dir/$name.port"
  "$bin" --port 0 --port-file "$dir/$name.port" \
    --cert "$KUBE_SERVER_CERT" --key "$KUBE_SERVER_KEY" --client-ca "$KUBE_CLIENT_CA" \
    --token-file "$dir/$name.token" --log "$log" \
    --exit-after "${KUBE_API_MAX_SECONDS:-900}" "$@" 2>"$dir/$name.stderr" &
  local pid=$!
  KUBE_API_PIDS+=("$pid")
  if [ -z "$(trap -p EXIT)" ]; then
    trap kube_cleanup EXIT
  fi

  local i port=""
  for ((i = 0; i < 400; i++)); do
    if [ -s "$dir/$name.port" ]; then
      port=$(cat "$dir/$name.port")
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      _kube_err "kube_api_server $name exited at startup: $(cat "$dir/$name.stderr")"
      return 1
    fi
    sleep 0.025
  done
  if [ -z "$port" ]; then
    _kube_err "kube_api_server $name did not start within 10 s: $(cat "$dir/$name.stderr")"
    return 1
  fi
  local url=https://127.0.0.1:$port
  local up=""
  for ((i = 0; i < 200; i++)); do
    if curl -sf -o /dev/null --max-time 2 --cacert "$KUBE_CA" \
      --cert "$KUBE_CLIENT_CERT" --key "$KUBE_CLIENT_KEY" "$url/version"; then
      up=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$up" ]; then
    _kube_err "kube_api_server $name: $url/version does not answer: $(cat "$dir/$name.stderr")"
    return 1
  fi

  kube_write_kubeconfig "$dir/$name-token.kubeconfig" "$url" token "$token" || return 1
  kube_write_kubeconfig "$dir/$name-tokenfile.kubeconfig" "$url" tokenfile "$dir/$name.token" || return 1
  kube_write_kubeconfig "$dir/$name-cert.kubeconfig" "$url" cert || return 1
  kube_write_kubeconfig "$dir/$name-data.kubeconfig" "$url" data || return 1

  export "${name}_URL=$url" "${name}_PORT=$port" "${name}_PID=$pid" "${name}_LOG=$log"
  export "${name}_TOKEN_FILE=$dir/$name.token"
  export "${name}_TOKEN_KUBECONFIG=$dir/$name-token.kubeconfig"
  export "${name}_TOKENFILE_KUBECONFIG=$dir/$name-tokenfile.kubeconfig"
  export "${name}_CERT_KUBECONFIG=$dir/$name-cert.kubeconfig"
  export "${name}_DATA_KUBECONFIG=$dir/$name-data.kubeconfig"
}

# _kube_stop_pids PID...: SIGTERM, wait up to 3 s, then SIGKILL.
_kube_stop_pids() {
  local pid i alive
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 60; i++)); do
    alive=""
    for pid in "$@"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ -z "$alive" ] && break
    sleep 0.05
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

stop_kube_api() {
  local name=${1:?stop_kube_api NAME} var pid p
  var=${name}_PID
  pid=${!var:-}
  [ -n "$pid" ] || return 0
  _kube_stop_pids "$pid"
  local keep=()
  for p in "${KUBE_API_PIDS[@]}"; do
    [ "$p" = "$pid" ] || keep+=("$p")
  done
  KUBE_API_PIDS=("${keep[@]}")
  unset "$var"
}

kube_cleanup() {
  if [ "${#KUBE_API_PIDS[@]}" -gt 0 ]; then
    _kube_stop_pids "${KUBE_API_PIDS[@]}"
  fi
  KUBE_API_PIDS=()
}
