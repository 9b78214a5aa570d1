#!/usr/bin/env bash
# Renders the HyperOS tray and its open menu to a PNG for the README: a virtual
# X display (Xvfb), a private D-Bus session bus, xfce4-panel with its
# StatusNotifierItem tray, dunst for notifications, the HyperOS service booting
# the real image, and `hyperos tray`; xdotool opens the menu, ImageMagick's
# import grabs the screen.
#
#   tray/screenshot.sh HYPEROS_BINARY OUT.png
#
# Needs: xvfb xfce4-panel dunst dbus xdotool imagemagick x11-utils (make deps,
# or apt-get install them), and the built image (make image).
set -euo pipefail
bin=$(realpath "$1")
out=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	HYPEROS_HOME=$work/home "$bin" kill >/dev/null 2>&1 || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

for tool in Xvfb xfce4-panel dunst dbus-daemon xdotool import xwininfo; do
	command -v "$tool" >/dev/null || { echo "screenshot: $tool is missing (apt-get install xvfb xfce4-panel dunst dbus xdotool imagemagick x11-utils)" >&2; exit 1; }
done

# A display number nobody uses.
disp=90
while [ -e /tmp/.X11-unix/X$disp ] || [ -e /tmp/.X$disp-lock ]; do disp=$((disp + 1)); done
export DISPLAY=:$disp
Xvfb "$DISPLAY" -screen 0 640x440x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

export XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache XDG_DATA_HOME=$work/data
mkdir -p "$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml" "$XDG_CONFIG_HOME/dunst"
cp "$here/screenshot-panel.xml" "$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml"
cat >"$XDG_CONFIG_HOME/dunst/dunstrc" <<'DUNST'
[global]
    origin = bottom-right
    offset = 8x8
    width = 300
    font = Sans 10
    frame_width = 1
    frame_color = "#5e6470"
[urgency_normal]
    background = "#2b2f36"
    foreground = "#e8e8e8"
    timeout = 0
DUNST
eval "$(dbus-daemon --session --fork --print-address=1 --print-pid=1 | { read -r a; read -r p; echo "export DBUS_SESSION_BUS_ADDRESS='$a'; buspid=$p"; })"
pids+=("$buspid")

xsetroot -solid '#3b4252' 2>/dev/null || true
xfce4-panel >"$work/panel.log" 2>&1 &
pids+=($!)
dunst >"$work/dunst.log" 2>&1 &
pids+=($!)

export HYPEROS_HOME=$work/home
"$bin" init --name hyperos-demo >/dev/null
# The tray first, so it sees the boot and says "online" in a notification.
"$bin" tray >"$work/tray.log" 2>&1 &
pids+=($!)
"$bin" daemon >"$work/daemon.log" 2>&1 &
pids+=($!)

echo "screenshot: waiting for the VM to boot…" >&2
for _ in $(seq 600); do
	"$bin" status >/dev/null 2>&1 && grep -q 'VM online' "$work/daemon.log" && break
	sleep 0.5
done
"$bin" status >&2 || { echo "screenshot: the VM did not come online; logs in $work" >&2; cat "$work/daemon.log" >&2; exit 1; }
sleep 2 # let the panel and the notification draw

# The tray icon: the online icon is the only green on the panel; find its
# leftmost column and click a little to the right of it.
read -r W _ < <(xdpyinfo | awk '/dimensions/{split($2,a,"x"); print a[1], a[2]}')
import -window root "$work/panel.png"
convert "$work/panel.png" -crop "${W}x30+0+0" +repage txt:- >"$work/panel.txt"
x=$(awk -F'[,: ]+' 'tolower($0) ~ /#2eb85c/ {print $1; exit}' "$work/panel.txt")
if [ -z "$x" ]; then echo "screenshot: no tray icon found on the panel; logs in $work" >&2; cat "$work/panel.log" "$work/tray.log" >&2; exit 1; fi
xdotool mousemove $((x + 8)) 15 click 1
sleep 1
import -window root "$out"
echo "screenshot: wrote $out" >&2
