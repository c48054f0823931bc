#!/usr/bin/env bash
# make-oci-layout.sh - generate deterministic OCI image layouts for tests.
#
# Usage:
#   make-oci-layout.sh DIR TAG [--layers N] [--layer-size BYTES]
#                      [--platforms OS/ARCH[/VARIANT],...] [--shared-base FILE]
#                      [--seed STRING] [--created RFC3339]
#
# Writes (or extends) an OCI image layout in DIR (oci-layout, index.json,
# blobs/sha256/<hex>) that skopeo can read as oci:DIR:TAG.
#
#   --layers N          number of layers per image (default 2). With
#                       --shared-base the shared layer is layer 1 of N.
#   --layer-size BYTES  bytes of incompressible pseudo-random data per layer
#                       (default 1048576).
#   --platforms LIST    comma separated os/arch[/variant] (default linux/amd64).
#                       One platform: TAG points at an image manifest.
#                       Several: TAG points at an OCI image index whose entries
#                       are per-platform manifests (different layer data each).
#   --shared-base FILE  use FILE (a .tar.gz layer) as the first layer of every
#                       platform image. Created (deterministically, from the
#                       layer size and FILE's basename) if it does not exist.
#   --seed STRING       seed of the layer data (default: TAG). Data is a
#                       function of seed, platform and layer index only.
#   --created TIME      the config's "created" (default 1970-01-01T00:00:00Z).
#
# Calling it again on the same DIR with another TAG adds that tag (an entry in
# index.json); calling it with an existing TAG replaces that tag's entry.
# Output is byte-for-byte reproducible. Prints the digest of the manifest (or
# index) that TAG points at on stdout; nothing else goes to stdout.
#
# Needs only bash, coreutils, gzip, tar, jq and openssl.
set -euo pipefail
shopt -s inherit_errexit

prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 1; }
usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 2 ] || usage
DIR=$1 TAG=$2
shift 2
case "$TAG" in ''|-*) usage ;; esac

layers=2
layer_size=1048576
platforms=linux/amd64
shared_base=
seed=$TAG
created=1970-01-01T00:00:00Z
layer_size_given=0

while [ $# -gt 0 ]; do
  case "$1" in
    --layers) [ $# -ge 2 ] || usage; layers=$2; shift 2 ;;
    --layers=*) layers=${1#*=}; shift ;;
    --layer-size) [ $# -ge 2 ] || usage; layer_size=$2; layer_size_given=1; shift 2 ;;
    --layer-size=*) layer_size=${1#*=}; layer_size_given=1; shift ;;
    --platforms) [ $# -ge 2 ] || usage; platforms=$2; shift 2 ;;
    --platforms=*) platforms=${1#*=}; shift ;;
    --shared-base) [ $# -ge 2 ] || usage; shared_base=$2; shift 2 ;;
    --shared-base=*) shared_base=${1#*=}; shift ;;
    --seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
    --seed=*) seed=${1#*=}; shift ;;
    --created) [ $# -ge 2 ] || usage; created=$2; shift 2 ;;
    --created=*) created=${1#*=}; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument: $1" ;;
  esac
done

[[ "$layers" =~ ^[0-9]+$ ]] && [ "$layers" -ge 1 ] || die "--layers must be a positive integer"
[[ "$layer_size" =~ ^[0-9]+$ ]] || die "--layer-size must be a non-negative integer"
[ -n "$platforms" ] || die "--platforms must not be empty"

for tool in jq openssl gzip tar sha256sum head; do
  command -v "$tool" >/dev/null 2>&1 || die "missing required tool: $tool"
done

export LC_ALL=C
umask 022

mkdir -p "$DIR/blobs/sha256"
DIR=$(cd "$DIR" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-oci-layout.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
MT_INDEX=application/vnd.oci.image.index.v1+json
MT_CONFIG=application/vnd.oci.image.config.v1+json
MT_LAYER=application/vnd.oci.image.layer.v1.tar+gzip

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# put_blob FILE: store FILE as a blob (atomically), print "sha256:<hex> <size>".
put_blob() {
  local f=$1 hex size
  hex=$(sha256_of "$f")
  size=$(size_of "$f")
  if [ ! -f "$DIR/blobs/sha256/$hex" ]; then
    cp "$f" "$DIR/blobs/sha256/.$hex.tmp.$$"
    mv -f "$DIR/blobs/sha256/.$hex.tmp.$$" "$DIR/blobs/sha256/$hex"
  fi
  echo "sha256:$hex $size"
}

# random_bytes SEEDSTRING N: N deterministic incompressible bytes on stdout.
# AES-256-CTR over zeros, key/iv derived from the seed string by SHA-256 (no
# password KDF, so no openssl warnings and identical output everywhere).
random_bytes() {
  local key iv
  key=$(printf 'key:%s' "$1" | sha256sum | cut -c1-64)
  iv=$(printf 'iv:%s' "$1" | sha256sum | cut -c1-32)
  head -c "$2" /dev/zero | openssl enc -aes-256-ctr -K "$key" -iv "$iv"
}

# make_layer_tgz SEEDSTRING SIZE FILENAME OUT: reproducible gzip'd tar holding
# one regular file FILENAME with SIZE random bytes.
make_layer_tgz() {
  local s=$1 n=$2 name=$3 out=$4 d
  d=$(mktemp -d "$tmp/layer.XXXXXX")
  random_bytes "$s" "$n" >"$d/$name"
  tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      --mode=0644 -C "$d" -cf "$d/layer.tar" "$name"
  gzip -n -9 -c "$d/layer.tar" >"$out"
  rm -rf "$d"
}

# Shared base layer, created once (atomically: parallel callers are safe).
if [ -n "$shared_base" ] && [ ! -s "$shared_base" ]; then
  base_size=1048576
  [ "$layer_size_given" = 1 ] && base_size=$layer_size
  mkdir -p "$(dirname "$shared_base")"
  base_tmp="$shared_base.tmp.$$"
  make_layer_tgz "shared-base:$(basename "$shared_base"):$base_size" "$base_size" base.bin "$base_tmp"
  mv -f "$base_tmp" "$shared_base"
fi

# build_image OS ARCH VARIANT: writes config + manifest blobs for one platform,
# prints "digest size" of the manifest.
build_image() {
  local os=$1 arch=$2 variant=$3 plat=$1/$2${3:+/$3}
  local i r digest size diff_id layers_json='[]' diff_ids='[]' tgz
  for ((i = 0; i < layers; i++)); do
    tgz="$tmp/l$i.tar.gz"
    if [ "$i" -eq 0 ] && [ -n "$shared_base" ]; then
      cp "$shared_base" "$tgz"
    else
      make_layer_tgz "$seed|$plat|$i" "$layer_size" "layer-$i.bin" "$tgz"
    fi
    diff_id="sha256:$(gzip -dc "$tgz" | sha256sum | cut -d' ' -f1)"
    r=$(put_blob "$tgz")
    read -r digest size <<<"$r"
    layers_json=$(jq -c --arg mt "$MT_LAYER" --arg d "$digest" --argjson s "$size" \
      '. + [{mediaType: $mt, digest: $d, size: $s}]' <<<"$layers_json")
    diff_ids=$(jq -c --arg d "$diff_id" '. + [$d]' <<<"$diff_ids")
    rm -f "$tgz"
  done

  jq -cnj --arg os "$os" --arg arch "$arch" --arg variant "$variant" --argjson ids "$diff_ids" --arg created "$created" '
    {architecture: $arch, os: $os}
    + (if $variant != "" then {variant: $variant} else {} end)
    + {created: $created, config: {}, rootfs: {type: "layers", diff_ids: $ids}}
  ' >"$tmp/config.json"
  r=$(put_blob "$tmp/config.json")
  read -r digest size <<<"$r"

  jq -cnj --arg mt "$MT_MANIFEST" --arg cmt "$MT_CONFIG" --arg d "$digest" --argjson s "$size" \
     --argjson layers "$layers_json" '
    {schemaVersion: 2, mediaType: $mt, config: {mediaType: $cmt, digest: $d, size: $s}, layers: $layers}
  ' >"$tmp/manifest.json"
  put_blob "$tmp/manifest.json"
}

IFS=, read -r -a plats <<<"$platforms"
entries='[]'
for p in "${plats[@]}"; do
  IFS=/ read -r os arch variant extra <<<"$p"
  [ -n "$os" ] && [ -n "$arch" ] && [ -z "${extra:-}" ] || die "bad platform '$p' (want os/arch[/variant])"
  r=$(build_image "$os" "$arch" "${variant:-}")
  read -r digest size <<<"$r"
  entries=$(jq -c --arg mt "$MT_MANIFEST" --arg d "$digest" --argjson s "$size" \
      --arg os "$os" --arg arch "$arch" --arg variant "${variant:-}" '
    . + [{mediaType: $mt, digest: $d, size: $s,
          platform: ({architecture: $arch, os: $os}
                     + (if $variant != "" then {variant: $variant} else {} end))}]
  ' <<<"$entries")
done

if [ "${#plats[@]}" -eq 1 ]; then
  top_mt=$MT_MANIFEST
  top_digest=$digest top_size=$size
else
  top_mt=$MT_INDEX
  jq -cnj --arg mt "$MT_INDEX" --argjson m "$entries" \
    '{schemaVersion: 2, mediaType: $mt, manifests: $m}' >"$tmp/index-blob.json"
  r=$(put_blob "$tmp/index-blob.json")
  read -r top_digest top_size <<<"$r"
fi

printf '{"imageLayoutVersion":"1.0.0"}' >"$DIR/oci-layout"

index="$DIR/index.json"
if [ -s "$index" ]; then
  cp "$index" "$tmp/index.json"
else
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[]}' "$MT_INDEX" >"$tmp/index.json"
fi
jq -cj --arg mt "$top_mt" --arg d "$top_digest" --argjson s "$top_size" --arg tag "$TAG" '
  .manifests = ([.manifests[]? | select(.annotations["org.opencontainers.image.ref.name"] != $tag)]
                + [{mediaType: $mt, digest: $d, size: $s,
                    annotations: {"org.opencontainers.image.ref.name": $tag}}])
' "$tmp/index.json" >"$tmp/index.new"
mv -f "$tmp/index.new" "$index"

echo "$top_digest"
