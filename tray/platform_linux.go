package tray

import (
	"fmt"

	"github.com/godbus/dbus/v5"
)

// platformCheck makes sure a session bus is reachable before systray starts:
// fyne.io/systray only logs a failed connection and then crashes when it shuts
// down, and it would try to autolaunch a bus through X11. Nothing else is
// needed on Linux: no DISPLAY, no XDG_RUNTIME_DIR when DBUS_SESSION_BUS_ADDRESS
// is set.
func platformCheck() error {
	conn, err := dbus.SessionBusPrivateNoAutoStartup()
	if err != nil {
		return errNoTray(fmt.Errorf("no D-Bus session bus (is DBUS_SESSION_BUS_ADDRESS set?): %w", err))
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return errNoTray(fmt.Errorf("authenticate on the D-Bus session bus: %w", err))
	}
	if err := conn.Hello(); err != nil {
		return errNoTray(fmt.Errorf("D-Bus session bus hello: %w", err))
	}
	return nil
}
