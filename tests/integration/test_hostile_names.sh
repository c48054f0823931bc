#!/usr/bin/env bash
# Security, class 1 (issue 17): names from a source are data, never path. A compromised source lists
# tags such as "../../victim/manifests/latest" (tags/list, an OCI layout's index.json, a cosign-style
# "sha256-<hex>.sig/..." tag); libcurl would resolve the dot segments, so that a PUT meant for
# org/app landed on org/victim. Every such name is reported (the rule's key, the name escaped) and
# skipped; the rest of the rule is copied; the destination (a real docker-registry with htpasswd)
# keeps everything the rules do not name. (The attack shown: org/victim:latest rolled back to the
# older image org/victim:old, whose blobs the repository has, by the source's copy of that image.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry dst htpasswd
L=$IM_WORK/layout
make_layout "$L" v1 --layers 1 --layer-size 2048 --seed good >/dev/null
make_layout "$L" victim --layers 1 --layer-size 2048 --seed victim >/dev/null
seed "$L" victim "$DST_ADDR/org/victim:latest"
seed "$L" victim "$DST_ADDR/org/victim:sig"
seed "$L" victim "$DST_ADDR/org/victim:layout"
seed "$L" v1 "$DST_ADDR/org/victim:old" # its blobs are in org/victim: a manifest naming them is accepted there
victim=$(raw_digest "$DST_ADDR/org/victim:latest")
good=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="v1") | .digest' "$L/index.json")
hex=${good#sha256:}

# What the compromised registry lists for any repository.
printf '%s' '{"name":"team/app","tags":["v1","../../victim/manifests/latest","%2e%2e/%2e%2e/victim/manifests/latest",' \
  '"a?b","a#b","bad\u001b[31mred","x\r\ny","sha256-'"$hex"'.sig/../../../victim/manifests/sig"]}' >"$IM_WORK/tags.json"
start_hostile src "$L" v1 --tags "$IM_WORK/tags.json" --any-manifest

cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON
cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/team/app": "$DST_ADDR/org/app"}
JSON
run_im names --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" --digest-cache "" \
  --report "$IM_WORK/report.json"
cat "$IM_WORK/names.out"
assert_eq "$rc" 1 "a source that lists bad tag names fails the rule's generation (exit 1)"
assert_eq "$(raw_digest "$DST_ADDR/org/victim:latest")" "$victim" "org/victim:latest is untouched"
assert_eq "$(raw_digest "$DST_ADDR/org/victim:sig")" "$victim" "org/victim:sig is untouched (cosign-style tag)"
assert_eq "$(raw_digest "$DST_ADDR/org/app:v1")" "$good" "the rule's valid tag is copied all the same"
for shown in '../../victim/manifests/latest' '%2e%2e/%2e%2e/victim/manifests/latest' 'a?b' 'a#b' \
  'bad\x1b[31mred' 'x\r\ny' "sha256-$hex.sig/../../../victim/manifests/sig"; do
  grep -F "rule \"$SRC_ADDR/team/app\"" "$IM_WORK/names.out" | grep -qF "lists the tag \"$shown\"" ||
    fail "the bad tag $shown is not reported with the rule's key"
done
pass "each bad tag reported once with the rule's key, control characters escaped"
if grep -q $'\x1b' "$IM_WORK/names.out" || grep -q $'\r' "$IM_WORK/names.out"; then
  fail "a raw control character from the registry reached the output"
fi
pass "no raw control character from the registry in the output"
if grep -E '^(GET|HEAD) ' "$SRC_HLOG" | grep -v '/v2/team/app/' | grep -qv '^GET /v2/$'; then
  fail "a request left team/app on the source: $(grep -v '/v2/team/app/' "$SRC_HLOG" | head -n 2)"
fi
pass "every request to the source stayed in team/app"
assert_eq "$(jq -r '[.images[] | .destination] | join(" ")' "$IM_WORK/report.json")" "$DST_ADDR/org/app:v1" \
  "the report names only the one image copied"

# The same names as an OCI layout's ref names (index.json), copied into the registry.
LO=$IM_WORK/hostile-layout
cp -r "$L" "$LO"
jq --arg d "$good" '.manifests += [
   {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":$d,"size":1,
    "annotations":{"org.opencontainers.image.ref.name":"../../victim/manifests/layout"}},
   {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":$d,"size":1,
    "annotations":{"org.opencontainers.image.ref.name":"ok\u0007bell"}}]' "$L/index.json" >"$LO/index.json"
cat >"$IM_WORK/images-layout.json" <<JSON
{"oci:$LO": "$DST_ADDR/org/fromlayout"}
JSON
run_im layout --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-layout.json" --log "" --digest-cache ""
cat "$IM_WORK/layout.out"
assert_eq "$rc" 1 "bad ref names in a layout fail the rule's generation (exit 1)"
assert_eq "$(raw_digest "$DST_ADDR/org/victim:layout")" "$victim" "org/victim:layout is untouched by the layout's names"
assert_eq "$(raw_digest "$DST_ADDR/org/fromlayout:v1")" "$good" "the layout's valid tags are copied"
grep -qF 'lists the tag "../../victim/manifests/layout"' "$IM_WORK/layout.out" || fail "the layout's bad name is not reported"
grep -qF 'lists the tag "ok\x07bell"' "$IM_WORK/layout.out" || fail "the layout's name with a control byte is not reported escaped"
pass "bad layout ref names reported and skipped"

# The same from a hostile Kubernetes API server: object, namespace, container and pull secret names
# with shell text and control bytes, an image with a terminal escape, and a pull secret's password
# that reads as a variable. Names go into API paths, kubectl commands, annotations and reports: one
# that cannot be a Kubernetes name is reported escaped and left out (exit 3: the file is incomplete);
# a pull secret's "${HOME}" is written so that it is read back as itself, never expanded.
# (c4e1e45 printed `kubectl -n default; touch /tmp/im-pwned pod/evil set image ...` and a raw ESC
# from rewrite, and wrote "password": "${HOME}" into the auth file, which then read $HOME.)
start_hostile_kube nameskube names
krc=0
"$IM_BIN" config -k "$NAMESKUBE_KUBECONFIG" -t swr.example.com/org -o "$IM_WORK/k-images.json" --audit-table \
  --with-pull-secrets "$IM_WORK/k-auth.json" >"$IM_WORK/k-config.out" 2>&1 || krc=$?
cat "$IM_WORK/k-config.out"
assert_eq "$krc" 3 "config with names that cannot be names: exit 3 (incomplete)"
for bad in 'web\x1b[31m; touch /tmp/im-pwned' 'c\nkubectl delete namespace prod' 'default; touch /tmp/im-pwned/evil' '../../secrets/x'; do
  grep -qF "$bad" "$IM_WORK/k-config.out" || fail "the bad name $bad is not reported escaped"
done
pass "every bad name reported, escaped"
if grep -q $'\x1b' "$IM_WORK/k-config.out" || grep -q '^kubectl' "$IM_WORK/k-config.out"; then
  fail "a raw control character or a forged line from the API server reached config's output"
fi
assert_eq "$(jq -r 'keys | join(" ")' "$IM_WORK/k-images.json")" "reg.example.com/team/c:1" \
  "images.json holds only the image of the well-named pod"
assert_eq "$(jq -r '.["reg.example.com"].password' "$IM_WORK/k-auth.json")" '$${HOME}' \
  "the pull secret's \${HOME} is written escaped (\$\${HOME})"
assert_eq "$(jq -r '.["reg.example.com"].username' "$IM_WORK/k-auth.json")" '$$USER' "... and its \$USER"
cat >"$IM_WORK/k-map.json" <<'JSON'
{"reg.example.com/team/a:1": "swr.example.com/org/a:1", "reg.example.com/team/b:1": "swr.example.com/org/b:1",
 "reg.example.com/team/c:1": "swr.example.com/org/c:1"}
JSON
krc=0
"$IM_BIN" rewrite -k "$NAMESKUBE_KUBECONFIG" --images "$IM_WORK/k-map.json" --format kubectl >"$IM_WORK/k-rewrite.out" \
  2>"$IM_WORK/k-rewrite.err" || krc=$?
cat "$IM_WORK/k-rewrite.out"
assert_eq "$(grep -c '^kubectl' "$IM_WORK/k-rewrite.out")" 1 "rewrite prints one command, for the well-named pod (exit $krc)"
grep -q '^kubectl -n default set image pod/good good=swr.example.com/org/c:1$' "$IM_WORK/k-rewrite.out" ||
  fail "the well-named pod's command: $(cat "$IM_WORK/k-rewrite.out")"
if grep -q 'pwned\|delete namespace' "$IM_WORK/k-rewrite.out" || grep -q $'\x1b' "$IM_WORK/k-rewrite.out" "$IM_WORK/k-rewrite.err"; then
  fail "rewrite printed the API server's shell text or a raw control character"
fi
pass "rewrite: no command built from a name that cannot be one, no raw control character"
