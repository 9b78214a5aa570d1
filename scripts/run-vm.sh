#!/usr/bin/env bash
# Boots the built image with its console on this terminal (Ctrl-A X quits QEMU).
# State (SSH key, data disk) is kept in build/run/ so that a second run finds the
# same VM. Prints how to SSH in once the guest announces itself.
set -euo pipefail
ARCH=${1:-amd64}
TOP=$(cd "$(dirname "$0")/.." && pwd)
IMG=$TOP/build/hyperos-$ARCH
RUN=$TOP/build/run
mkdir -p "$RUN"
chmod 700 "$RUN"
[ -f "$RUN/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hyperos -f "$RUN/id_ed25519"
[ -f "$RUN/data.img" ] || truncate -s 20G "$RUN/data.img"
KEY=$(cut -d' ' -f1,2 "$RUN/id_ed25519.pub")
PORT=${HYPEROS_SSH_PORT:-2222}
case $ARCH in
amd64) QEMU=qemu-system-x86_64 KERNEL=$IMG/vmlinuz CONSOLE=ttyS0 MACHINE=q35 ;;
arm64) QEMU=qemu-system-aarch64 KERNEL=$IMG/Image CONSOLE=ttyAMA0 MACHINE=virt ;;
esac
ACCEL=${HYPEROS_ACCEL:-}
if [ -z "$ACCEL" ]; then
	ACCEL=tcg
	[ -w /dev/kvm ] && [ "$ARCH" = "$(dpkg --print-architecture)" ] && ACCEL=kvm:tcg
fi
cat <<MSG
Booting HyperOS ($ARCH, $ACCEL). When the HYPEROS-READY line appears, in another terminal:
  ssh -i $RUN/id_ed25519 -p $PORT root@127.0.0.1
Quit with Ctrl-A X.
MSG
exec "$QEMU" -machine $MACHINE,accel=$ACCEL -cpu max -m 1024 -smp 2 -nodefaults -no-user-config \
	-display none -serial mon:stdio \
	-kernel "$KERNEL" -initrd "$IMG/initrd.img" \
	-append "console=$CONSOLE panic=-1 host=hyperos sshkey=\"$KEY\"" \
	-netdev user,id=net0,hostfwd=tcp:127.0.0.1:$PORT-:22 -device virtio-net-pci,netdev=net0 \
	-drive if=none,id=data,format=raw,file="$RUN/data.img" -device virtio-blk-pci,drive=data,serial=hyperos-data \
	-device virtio-rng-pci
