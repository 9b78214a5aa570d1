#!/usr/bin/env bash
# Checks that the image build is reproducible: a second build in a fresh tree,
# from the same downloaded packages and SOURCE_DATE_EPOCH, must give byte-identical
# kernel and initrd. Only package downloads are shared; the root file system,
# modules, guest binary and archive are all made again.
set -euo pipefail
ARCH=${1:-amd64}
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
A=$BUILD/hyperos-$ARCH
B=$BUILD/repro
[ -f "$A/manifest.txt" ] || { echo "repro: build the image first (make image)" >&2; exit 1; }
epoch=$(sed -n 's/^source_date_epoch: //p' "$A/manifest.txt")
version=$(sed -n 's/^version: //p' "$A/manifest.txt")
rm -rf "$B"
echo "==> second build in $B (SOURCE_DATE_EPOCH=$epoch)" >&2
SOURCE_DATE_EPOCH=$epoch HYPEROS_VERSION=$version BUILD=$B DEB_CACHE=$BUILD/cache/$ARCH/debs \
	"$TOP/image/build.sh" "$ARCH" >"$B.log" 2>&1 || { tail -20 "$B.log"; exit 1; }
if diff <(grep '^sha256:' "$A/manifest.txt") <(grep '^sha256:' "$B/hyperos-$ARCH/manifest.txt"); then
	echo "repro: identical: $(grep '^sha256:' "$A/manifest.txt" | tr '\n' ' ')"
	rm -rf "$B"
else
	echo "repro: the two builds differ (kept in $B for diffoscope)" >&2
	exit 1
fi
