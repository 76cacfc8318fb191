#!/usr/bin/env bash
# Delta benchmark (issue 13), one run on real binaries: Debian 12's libssl3, openssl, libcurl4 and
# curl at two neighbouring releases (apt-get download), laid out as Nix store paths
# <hash>-<pname>-<version> whose ELF files carry Nix-like interpreter and RUNPATH strings
# (patchelf) naming their dependencies by hash. Two closure updates:
#   rebuild  same binaries, every embedded hash changed (a dependency was rebuilt)
#   bump     the next release of every package (new hashes too)
# and one image update: an xz squashfs of the old store and one with a tenth of it replaced by the
# next releases. Bytes on the wire: `find | cpio -H newc | gzip -6` of the new paths (what
# Liminix's min-copy-closure sends over `ssh -C`), `zstd -19` and `zstd -19 --patch-from=<old>`
# per path (NARs), and ours: what update.sh sends (per path the smallest of the bundle's zstd -19
# entry, an LXD1 delta and an LXP1 patch, entry framing included) and, for the image, what
# `liminix-pack bundle --delta-base` stores. Decoding is timed with GNU time (seconds, peak RSS)
# through the agent's own decoder (bench-delta decode, release build, x86_64 host).
# Needs: apt-get (network), patchelf, cpio, gzip, zstd, mksquashfs. Not a test: nothing here asserts.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
nice cargo build --release -q -p liminix-bench --bin bench-delta
BD="$CARGO_TARGET_DIR/release/bench-delta"
W="${BENCH_DIR:-$CARGO_TARGET_DIR/bench-delta}"
mkdir -p "$W/debs"
rm -rf "$W/run"
mkdir -p "$W/run"
R="$W/run"

# pname  old-version  new-version  (Debian versions; store names drop what Nix names cannot hold)
PKGS=(
  "libssl3 3.0.17-1~deb12u2 3.0.20-1~deb12u2"
  "openssl 3.0.17-1~deb12u2 3.0.20-1~deb12u2"
  "libcurl4 7.88.1-10+deb12u5 7.88.1-10+deb12u15"
  "curl 7.88.1-10+deb12u5 7.88.1-10+deb12u15"
)

nixname() { echo "$1" | tr '~+' '__'; }
# A 32-character nix32 digest for a label (sha256 hex has no e/o/u/t... but has e: map it).
digest() { printf '%s' "$1" | sha256sum | head -c 32 | tr 'e' 'x'; }

fetch() { # pname version -> the .deb (apt-get download keeps ~ and + in the file name)
  local f="$W/debs/${1}_${2}_amd64.deb"
  if [ ! -f "$f" ]; then
    (cd "$W/debs" && apt-get download -q "$1=$2" >/dev/null 2>&1)
  fi
  [ -f "$f" ] || { echo "apt-get download $1=$2 made no $f" >&2; exit 1; }
  echo "$f"
}

# store STORE_ROOT SALT VERSION-COLUMN: lays out every package; prints nothing.
store() {
  local root=$1 salt=$2 col=$3
  mkdir -p "$root/nix/store"
  local glibc="/nix/store/$(digest "glibc$salt")-glibc-2.36"
  for line in "${PKGS[@]}"; do
    set -- $line
    local pname=$1 ver=${!col}
    local name="$pname-$(nixname "$ver")"
    local dir="$root/nix/store/$(digest "$name$salt")-$name"
    dpkg-deb -x "$(fetch "$pname" "$ver")" "$dir"
    local rpath="$glibc/lib:/nix/store/$(digest "deps$salt$pname")-openssl-3.0-lib/lib"
    find "$dir" -type f | while read -r f; do
      if head -c 4 "$f" | grep -q ELF; then
        patchelf --set-rpath "$rpath" "$f" 2>/dev/null || true
        patchelf --set-interpreter "$glibc/lib/ld-linux-x86-64.so.2" "$f" 2>/dev/null || true
      fi
    done
  done
}

store "$R/old" 1 2         # the device's system
store "$R/rebuild" 2 2     # same releases, every hash changed
store "$R/bump" 3 3        # next releases

pair() { # old-root new-root pname -> "old-dir new-dir"
  echo "$(ls -d "$1/nix/store/"*"-$3-"[0-9]*) $(ls -d "$2/nix/store/"*"-$3-"[0-9]*)"
}

row() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@"; }

closure_case() { # label new-root
  local label=$1 new=$2 gz z19=0 pf=0 ours=0
  gz=$(cd "$new" && find nix/store -mindepth 1 | sort | cpio -o -H newc --quiet | gzip -6 | wc -c)
  echo
  echo "### $label"
  echo
  echo "| path | NAR bytes | zstd -19 | zstd -19 --patch-from | ours | encoding | decode s / peak RSS KiB |"
  echo "|---|---|---|---|---|---|---|"
  for line in "${PKGS[@]}"; do
    set -- $line
    read -r a b <<<"$(pair "$R/old" "$new" "$1")"
    "$BD" nar "$a" "$R/a.nar"; "$BD" nar "$b" "$R/b.nar"
    local n z p o kind dec="-"
    n=$(stat -c %s "$R/b.nar")
    z=$(zstd -q -19 -c "$R/b.nar" | wc -c)
    p=$(zstd -q -19 2>/dev/null --patch-from="$R/a.nar" -c "$R/b.nar" | wc -c)
    read -r o kind <<<"$("$BD" encode "$a" "$b" "$R/patch")"
    if [ "$kind" = lxp1 ]; then
      rm -rf "$R/out"
      dec=$( { /usr/bin/time -f "%M" "$BD" decode "$a" "$R/patch" "$R/out" >"$R/t"; } 2>&1 | tail -1)
      dec="$(cat "$R/t") / $dec"
      cmp <("$BD" nar "$R/out" /dev/stdout) "$R/b.nar"
    fi
    row "$(basename "$b")" "$n" "$z" "$p" "$o" "$kind" "$dec"
    z19=$((z19 + z)); pf=$((pf + p)); ours=$((ours + o))
  done
  row "**sum**" "" "$z19" "$pf" "$ours" "" ""
  echo
  echo "cpio | gzip -6 of the new paths: $gz bytes. Ours: $(awk "BEGIN{printf \"%.2f\", 100*$ours/$gz}") % of gzip -6," \
    "$(awk "BEGIN{printf \"%.2f\", $ours/$pf}") x the --patch-from sum."
}

echo "## Deltas on real binaries ($(date -u +%F), $(nproc) cores)"
closure_case "Dependency rebuild (same releases, every store hash changed)" "$R/rebuild"
closure_case "Version bump (next Debian release of every package)" "$R/bump"

# Image: the old store as an xz squashfs (as Liminix builds them), and the same tree with libcurl4
# and curl replaced by their next releases.
mkdir -p "$R/img-old" "$R/img-new"
cp -a "$R/old/nix" "$R/img-old/"
cp -a "$R/old/nix" "$R/img-new/"
for p in libcurl4 curl; do
  read -r a b <<<"$(pair "$R/old" "$R/bump" "$p")"
  rm -rf "$R/img-new/nix/store/$(basename "$a")"
  cp -a "$b" "$R/img-new/nix/store/"
done
sq() { mksquashfs "$1" "$2" -comp xz -noappend -all-root -no-xattrs -mkfs-time 0 -quiet >/dev/null; }
sq "$R/img-old" "$R/old.sqsh"
sq "$R/img-new" "$R/new.sqsh"
total=$(du -sb "$R/img-new" | cut -f1)
changed=0
for p in libcurl4 curl; do
  read -r a b <<<"$(pair "$R/old" "$R/bump" "$p")"
  changed=$((changed + $(du -sb "$b" | cut -f1)))
done
n=$(stat -c %s "$R/new.sqsh")
z=$(zstd -q -19 -c "$R/new.sqsh" | wc -c)
p=$(zstd -q -19 2>/dev/null --patch-from="$R/old.sqsh" -c "$R/new.sqsh" | wc -c)
read -r o kind <<<"$("$BD" encode "$R/old.sqsh" "$R/new.sqsh" "$R/patch")"
dec=$( { /usr/bin/time -f "%M" "$BD" decode "$R/old.sqsh" "$R/patch" "$R/out.sqsh" >"$R/t"; } 2>&1 | tail -1)
cmp "$R/out.sqsh" "$R/new.sqsh"
echo
echo "### Image (xz squashfs, $(awk "BEGIN{printf \"%.1f\", 100*$changed/$total}") % of its files' bytes replaced)"
echo
echo "| image | bytes | zstd -19 | zstd -19 --patch-from | ours | encoding | decode s / peak RSS KiB |"
echo "|---|---|---|---|---|---|---|"
row "new.sqsh" "$n" "$z" "$p" "$o" "$kind" "$(cat "$R/t") / $dec"
echo
echo "Ours: $(awk "BEGIN{printf \"%.2f\", $o/$p}") x --patch-from."
