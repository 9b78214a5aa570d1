package tray

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/hyperos/hyperos/resources"
)

// dbusNotifier calls org.freedesktop.Notifications.Notify itself, on a private
// session-bus connection opened per notification, instead of going through
// beeep. beeep uses the process's shared session-bus connection, the one
// fyne.io/systray registers its item on; the notification server's signals
// (NotificationClosed has two arguments) then reach systray's watcher loop,
// which takes any signal with fewer than three arguments as malformed and
// stops watching, so after a panel restart the icon never came back. beeep also
// calls without a timeout, so a hung notification server hung the tray. A
// private connection receives no signal at all (it adds no match rule), and the
// call takes ctx.
type dbusNotifier struct {
	// icon is sent as the image-data hint so the bubble shows the HyperOS
	// icon without a file on disk.
	icon imageData
}

// imageData is the (iiibiiay) struct of the image-data hint.
type imageData struct {
	Width, Height, RowStride int32
	HasAlpha                 bool
	BitsPerSample, Channels  int32
	Data                     []byte
}

func newPlatformNotifier() Notifier {
	n := &dbusNotifier{}
	if b, err := resources.Icon("linux", resources.Online); err == nil {
		if img, err := decodeNRGBA(b); err == nil {
			n.icon = imageData{
				Width: int32(img.Rect.Dx()), Height: int32(img.Rect.Dy()), RowStride: int32(img.Stride),
				HasAlpha: true, BitsPerSample: 8, Channels: 4, Data: img.Pix,
			}
		}
	}
	return n
}

func (n *dbusNotifier) Notify(ctx context.Context, title, body string) error {
	conn, err := dbus.SessionBusPrivateNoAutoStartup(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connect to the session bus for a notification: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return fmt.Errorf("authenticate on the session bus: %w", errors.Join(err, ctx.Err()))
	}
	if err := conn.Hello(); err != nil {
		return fmt.Errorf("session bus hello: %w", errors.Join(err, ctx.Err()))
	}
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(byte(1))}
	if n.icon.Data != nil {
		hints["image-data"] = dbus.MakeVariant(n.icon)
	}
	obj := conn.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications")
	call := obj.CallWithContext(ctx, "org.freedesktop.Notifications.Notify", 0,
		"HyperOS", uint32(0), "", title, body, []string{}, hints, int32(-1))
	if call.Err != nil {
		if ctx.Err() != nil {
			// godbus closes the connection when ctx ends, and the call may
			// report that instead of the context: say why it really ended.
			return fmt.Errorf("org.freedesktop.Notifications.Notify: no answer: %w", ctx.Err())
		}
		return fmt.Errorf("org.freedesktop.Notifications.Notify: %w", call.Err)
	}
	return nil
}
