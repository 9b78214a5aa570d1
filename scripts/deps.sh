#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages HyperOS needs to build, run and test, when
# they are missing. Safe to run again: it installs nothing when all is there.
set -euo pipefail

# command-or-path  package
need=(
	"mmdebstrap mmdebstrap"
	"qemu-system-x86_64 qemu-system-x86"
	"qemu-system-aarch64 qemu-system-arm"
	"qemu-img qemu-utils"
	"zstd zstd"
	"cpio cpio"
	"mkfs.ext4 e2fsprogs"
	"depmod kmod"
	"ssh-keygen openssh-client"
	"git git"
	"dnsmasq dnsmasq-base"
	"ip iproute2"
	"dbus-daemon dbus"
	"systemd-analyze systemd"
	"desktop-file-validate desktop-file-utils"
	"unshare util-linux"
	"curl curl"
	"/usr/share/keyrings/debian-archive-keyring.gpg debian-archive-keyring"
	"node nodejs"
	"npm npm"
)
missing=()
for entry in "${need[@]}"; do
	what=${entry% *}
	pkg=${entry#* }
	if [[ $what == /* ]]; then
		[ -e "$what" ] || missing+=("$pkg")
	else
		command -v "$what" >/dev/null 2>&1 || missing+=("$pkg")
	fi
done
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	echo "deps: Go is not installed: install Go 1.26 or newer (https://go.dev/doc/install), then run this again" >&2
	exit 1
fi
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then
	SUDO=
else
	SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
