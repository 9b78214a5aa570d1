#!/usr/bin/env bash
# Builds the HyperOS kernel and initrd from Debian packages.
#
#   image/build.sh [amd64|arm64]     (or: make image ARCH=...)
#
# Stages, each cached under build/cache/<arch>/ so that a rebuild with no change
# takes seconds:
#   1. rootfs   mmdebstrap of image/packages.txt, stripped of apt, dpkg's database,
#               perl, docs, man pages and locales. Keyed on the recipe's hash.
#   2. kernel   Debian's linux-image-<arch> package, downloaded with the rootfs.
#   3. assemble rootfs + the kernel modules of image/modules.txt (with their
#               dependencies) + include/ + hyperos-guest, packed by image/mkinitrd
#               into a reproducible zstd cpio.
# Environment: SOURCE_DATE_EPOCH (default: the last commit touching the recipe),
# HYPEROS_SUITE (default bookworm), BUILD (default build/), GUEST_BIN (the
# hyperos-guest binary for the arch; built here when unset), DEB_CACHE (where
# downloaded packages are kept; default build/cache/<arch>/debs).
set -euo pipefail

ARCH=${1:-${ARCH:-amd64}}
SUITE=${HYPEROS_SUITE:-bookworm}
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
CACHE=$BUILD/cache/$ARCH
OUT=$BUILD/hyperos-$ARCH
cd "$TOP"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'image: %s\n' "$*" >&2; exit 1; }

case $ARCH in
amd64) KFLAVOUR=amd64; KOUT=vmlinuz ;;
# Debian's cloud flavour for arm64: built for VMs, its uncompressed Image (which
# Apple's Virtualization framework requires) is 6 MB smaller than the generic one.
arm64) KFLAVOUR=cloud-arm64; KOUT=Image ;;
*) die "unknown ARCH '$ARCH' (amd64 or arm64)" ;;
esac

[ "$(id -u)" = 0 ] || die "building the root file system needs root (mmdebstrap --mode=root): run 'sudo make image'"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct -- image include cmd/hyperos-guest guest 2>/dev/null || true)
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}
fi
export SOURCE_DATE_EPOCH
VERSION=${HYPEROS_VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}

# --- tools -----------------------------------------------------------------
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v zstd >/dev/null || need+=(zstd)
command -v depmod >/dev/null || need+=(kmod)
command -v systemctl >/dev/null || need+=(systemd)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
	command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
	[ -e /usr/sbin/update-binfmts ] || need+=(binfmt-support)
fi
if [ ${#need[@]} -gt 0 ]; then
	say "installing build tools: ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$ARCH" != "$(dpkg --print-architecture)" ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
	mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
	[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "binfmt_misc has no qemu-aarch64 handler: cannot run arm64 package scripts"
fi

# The package sources: this host's own when it runs the same Debian release (so
# security updates come along), else mmdebstrap's default Debian mirror.
SOURCES=()
if [ -f /etc/apt/sources.list.d/debian.sources ] && grep -q "^Suites:.*\b$SUITE\b" /etc/apt/sources.list.d/debian.sources; then
	SOURCES=(/etc/apt/sources.list.d/debian.sources)
elif [ -f /etc/apt/sources.list ] && grep -q "^deb .*debian.* $SUITE " /etc/apt/sources.list; then
	SOURCES=(/etc/apt/sources.list)
fi

DEBS=${DEB_CACHE:-$CACHE/debs}
mkdir -p "$DEBS" "$OUT"

# --- 1+2. rootfs and kernel package -----------------------------------------
packages=$(grep -v '^#' image/packages.txt | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
key=$( (echo "$ARCH $SUITE $KFLAVOUR"; cat image/packages.txt; sed -n '/^# --- 1+2/,/^# --- 3/p' "$0"; cat "${SOURCES[@]}" 2>/dev/null) | sha256sum | cut -c1-16)
ROOTFS=$CACHE/rootfs
if [ "$(cat "$CACHE/rootfs.key" 2>/dev/null)" != "$key" ] || [ ! -d "$ROOTFS" ]; then
	say "building the $SUITE/$ARCH root file system (mmdebstrap; packages cached in $DEBS)"
	rm -rf "$ROOTFS" "$ROOTFS.new" "$CACHE/rootfs.key"
	mkdir -p "$CACHE/kernel"
	# Hooks run on the host with the chroot's apt configuration in
	# MMDEBSTRAP_APT_CONFIG: that is how the kernel package for the target
	# architecture is found and downloaded without installing it (installing it
	# would run initramfs-tools for nothing).
	mmdebstrap --mode=root --variant=essential --arch="$ARCH" \
		--include="$packages" \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/lintian/*' \
		--skip=download/empty \
		--setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
		--setup-hook="sync-in '$DEBS' /var/cache/apt/archives/" \
		--customize-hook="sync-out /var/cache/apt/archives '$DEBS'" \
		--customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version}\n" > "$1/.hyperos-packages"' \
		--customize-hook="cd '$CACHE/kernel' && rm -f *.deb && pkg=\$(APT_CONFIG=\"\$MMDEBSTRAP_APT_CONFIG\" apt-cache depends --important linux-image-$KFLAVOUR | awk '/Depends: linux-image-/{print \$2; exit}') && APT_CONFIG=\"\$MMDEBSTRAP_APT_CONFIG\" apt-get download -q \"\$pkg\" >/dev/null 2>&1" \
		"$SUITE" "$ROOTFS.new" "${SOURCES[@]}" >&2
	r=$ROOTFS.new
	mv "$r/.hyperos-packages" "$CACHE/packages.txt"
	# What the image never needs at run time.
	rm -rf "$r"/var/lib/dpkg "$r"/var/lib/apt "$r"/var/cache/* "$r"/var/log/* \
		"$r"/usr/share/doc "$r"/usr/share/man "$r"/usr/share/info "$r"/usr/share/locale \
		"$r"/usr/share/lintian "$r"/usr/share/bug "$r"/usr/share/common-licenses \
		"$r"/usr/share/perl* "$r"/usr/lib/*/perl* "$r"/usr/bin/perl* "$r"/etc/perl \
		"$r"/usr/share/zsh "$r"/usr/share/bash-completion "$r"/usr/share/pam-configs \
		"$r"/usr/share/i18n "$r"/usr/lib/locale "$r"/usr/share/zoneinfo \
		"$r"/usr/lib/udev/hwdb.bin "$r"/usr/lib/udev/hwdb.d "$r"/etc/udev/hwdb.d \
		"$r"/usr/bin/dpkg* "$r"/usr/sbin/dpkg* "$r"/usr/share/dpkg "$r"/etc/dpkg \
		"$r"/usr/lib/*/gconv "$r"/usr/share/debconf "$r"/var/cache/debconf \
		"$r"/usr/share/polkit-1 "$r"/usr/share/gcc "$r"/usr/share/gdb \
		"$r"/etc/ssh/ssh_host_* "$r"/etc/machine-id "$r"/var/lib/dbus/machine-id \
		"$r"/etc/init.d "$r"/etc/rc?.d "$r"/etc/update-motd.d "$r"/etc/cron.daily "$r"/etc/apt "$r"/tmp/* "$r"/dev/*
	: >"$r/etc/machine-id"
	mv "$ROOTFS.new" "$ROOTFS"
	echo "$key" >"$CACHE/rootfs.key"
fi
KDEB=$(ls "$CACHE"/kernel/linux-image-*.deb 2>/dev/null | head -1)
[ -n "$KDEB" ] || die "the kernel package was not downloaded; remove $CACHE/rootfs.key and retry"

# --- 3. assemble --------------------------------------------------------------
KDIR=$CACHE/kernel/x
if [ "$(cat "$KDIR/.deb" 2>/dev/null)" != "$(basename "$KDEB")" ]; then
	say "unpacking $(basename "$KDEB")"
	rm -rf "$KDIR"
	mkdir -p "$KDIR"
	dpkg-deb -x "$KDEB" "$KDIR"
	# The package leaves modules.dep to its postinst; make it here.
	depmod -b "$KDIR" "$(ls "$KDIR/lib/modules" | head -1)"
	basename "$KDEB" >"$KDIR/.deb"
fi
KVER=$(ls "$KDIR/lib/modules" | head -1)
[ -n "$KVER" ] || die "no modules in $KDEB"

if [ -z "${GUEST_BIN:-}" ]; then
	GUEST_BIN=$BUILD/bin/linux-$ARCH/hyperos-guest
	say "building hyperos-guest for linux/$ARCH"
	CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go build -trimpath \
		-ldflags "-s -w -buildid= -X main.version=$VERSION" -o "$GUEST_BIN" ./cmd/hyperos-guest
fi

STAGE=$OUT/.root
rm -rf "$STAGE"
cp -a "$ROOTFS" "$STAGE"

# Kernel modules: the closure of image/modules.txt over modules.dep.
MODSRC=$KDIR/lib/modules/$KVER
MODDST=$STAGE/usr/lib/modules/$KVER
mkdir -p "$MODDST"
cp "$MODSRC"/modules.order "$MODSRC"/modules.builtin "$MODSRC"/modules.builtin.modinfo "$MODDST"/ 2>/dev/null || true
: >"$CACHE/modules.missing"
load=()
wanted=()
while read -r m; do
	m=${m%%#*}
	m=$(echo "$m" | tr -d ' ')
	[ -n "$m" ] || continue
	case $m in '!'*) m=${m#!} ;; *) load+=("$m") ;; esac
	wanted+=("$m")
done <image/modules.txt
declare -A seen=()
resolve() {
	local name=$1 path deps d
	name=${name//-/_}
	path=$(awk -v n="$name" -F: '{f=$1; sub(/.*\//,"",f); sub(/\.ko.*$/,"",f); gsub(/-/,"_",f); if (f==n) {print $0; exit}}' "$MODSRC/modules.dep")
	if [ -z "$path" ]; then
		if grep -qE "/${name//_/[-_]}\.ko" "$MODSRC/modules.builtin"; then return 0; fi
		echo "$name" >>"$CACHE/modules.missing"
		return 0
	fi
	local file=${path%%:*}
	[ -n "${seen[$file]:-}" ] && return 0
	seen[$file]=1
	mkdir -p "$MODDST/$(dirname "$file")"
	cp "$MODSRC/$file" "$MODDST/$file"
	for d in ${path#*:}; do
		d=$(basename "$d")
		resolve "${d%%.ko*}"
	done
}
for m in "${wanted[@]}"; do resolve "$m"; done
depmod -b "$STAGE/usr" "$KVER" 2>/dev/null || depmod -b "$STAGE" "$KVER"
if [ -s "$CACHE/modules.missing" ]; then
	say "modules not in this kernel (skipped): $(tr '\n' ' ' <"$CACHE/modules.missing")"
fi
mkdir -p "$STAGE/etc/modules-load.d"
printf '%s\n' "# Written by image/build.sh from image/modules.txt." "${load[@]}" >"$STAGE/etc/modules-load.d/hyperos.conf"

# include/ goes last and wins, as in the original HyperOS.
cp -a --no-preserve=ownership include/. "$STAGE"/
install -m 0755 "$GUEST_BIN" "$STAGE/usr/bin/hyperos-guest"
echo "$VERSION" >"$STAGE/etc/hyperos-release"
ln -sf usr/lib/systemd/systemd "$STAGE/init"
rm -rf "$STAGE"/etc/init.d "$STAGE"/etc/rc?.d
export SYSTEMCTL_SKIP_SYSV=1
systemctl --root="$STAGE" --quiet enable systemd-networkd.service set-ssh-auth-key.service \
	hyperos-datadisk.service hyperos-hostkeys.service hyperos-ready.service ssh.service
systemctl --root="$STAGE" --quiet disable systemd-networkd-wait-online.service 2>/dev/null || true
systemctl --root="$STAGE" --quiet mask systemd-networkd-wait-online.service e2scrub_all.timer \
	e2scrub_reap.service systemd-remount-fs.service apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
chmod 0700 "$STAGE/root"
# Programs the image does not use whose libraries are large (libcurl and its TLS,
# LDAP and HTTP/2 stack come with systemd-pull alone), then every library nothing
# links against. Libraries loaded with dlopen by soname are kept by name.
rm -f "$STAGE"/usr/lib/systemd/systemd-pull "$STAGE"/usr/lib/systemd/systemd-import* \
	"$STAGE"/usr/lib/systemd/systemd-export "$STAGE"/usr/sbin/arpd \
	"$STAGE"/usr/bin/ssh-agent "$STAGE"/usr/bin/ssh-add "$STAGE"/usr/bin/ssh-keyscan \
	"$STAGE"/usr/lib/openssh/ssh-sk-helper "$STAGE"/usr/lib/openssh/ssh-pkcs11-helper
rm -rf "$STAGE"/usr/lib/*/sasl2 "$STAGE"/usr/lib/*/security/pam_userdb.so
go run ./image/prune -root "$STAGE" -keep libgcc_s.so -keep libnss_ -keep libpthread.so -keep libdl.so \
	-keep librt.so -keep libutil.so -keep libresolv.so -keep libm.so -keep libanl.so | tail -1 >&2
# useradd stamps "last password change" with the build day; use SOURCE_DATE_EPOCH's
# day instead, here rather than in the cached rootfs, so the cache outlives commits.
days=$((SOURCE_DATE_EPOCH / 86400))
awk -F: -v OFS=: -v d="$days" '$3 != "" { $3 = d } 1' "$STAGE/etc/shadow" >"$STAGE/etc/shadow.new"
chmod --reference="$STAGE/etc/shadow" "$STAGE/etc/shadow.new"
chown --reference="$STAGE/etc/shadow" "$STAGE/etc/shadow.new"
mv "$STAGE/etc/shadow.new" "$STAGE/etc/shadow"
rm -f "$STAGE"/etc/*-
# Every mtime is SOURCE_DATE_EPOCH in the archive; ownership comes from the tree.

# --- pack -------------------------------------------------------------------------
say "packing initrd.img"
go run ./image/mkinitrd -root "$STAGE" -out "$OUT/initrd.img" -epoch "$SOURCE_DATE_EPOCH" -top 10
case $ARCH in
amd64) cp "$KDIR/boot/vmlinuz-$KVER" "$OUT/$KOUT.tmp" ;;
arm64) zcat -f "$KDIR/boot/vmlinuz-$KVER" >"$OUT/$KOUT.tmp" ;; # Apple's VZ boots only an uncompressed Image
esac
touch -d "@$SOURCE_DATE_EPOCH" "$OUT/$KOUT.tmp"
mv "$OUT/$KOUT.tmp" "$OUT/$KOUT"
rm -rf "$STAGE"

# --- manifest -----------------------------------------------------------------------
{
	echo "# HyperOS image manifest"
	echo "version: $VERSION"
	echo "arch: $ARCH"
	echo "suite: $SUITE"
	echo "source_date_epoch: $SOURCE_DATE_EPOCH"
	echo "kernel: $(basename "$KDEB" .deb) ($KVER)"
	echo "sha256: $(sha256sum "$OUT/$KOUT" | cut -d' ' -f1)  $KOUT"
	echo "sha256: $(sha256sum "$OUT/initrd.img" | cut -d' ' -f1)  initrd.img"
	echo "modules: ${wanted[*]}"
	[ -s "$CACHE/modules.missing" ] && echo "modules_missing: $(tr '\n' ' ' <"$CACHE/modules.missing")"
	echo "packages:"
	sed 's/^/  /' "$CACHE/packages.txt"
} >"$OUT/manifest.txt"

ksize=$(stat -c %s "$OUT/$KOUT")
isize=$(stat -c %s "$OUT/initrd.img")
awk -v k="$ksize" -v i="$isize" -v kn="$KOUT" 'BEGIN { printf "%-12s %6.1f MB\n%-12s %6.1f MB\n%-12s %6.1f MB (limit 50 MB)\n", kn, k/1e6, "initrd.img", i/1e6, "total", (k+i)/1e6 }'
echo "image: $OUT"
