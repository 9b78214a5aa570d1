package dbustest

import (
	"context"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Item is one entry of a com.canonical.dbusmenu layout.
type Item struct {
	ID       int32
	Label    string
	Enabled  bool
	Visible  bool
	Type     string // "separator" or ""
	Toggle   string // "checkmark" for checkboxes
	Checked  bool
	Children []Item
}

// Find returns the first item, depth first, whose label starts with prefix.
func (it Item) Find(prefix string) (Item, bool) {
	for _, c := range it.Children {
		if c.Type != "separator" && strings.HasPrefix(c.Label, prefix) {
			return c, true
		}
		if f, ok := c.Find(prefix); ok {
			return f, true
		}
	}
	return Item{}, false
}

// String draws the menu as a panel would, one line per visible item, with
// disabled items in brackets; test failures print it.
func (it Item) String() string {
	var b strings.Builder
	var walk func(Item, string)
	walk = func(i Item, indent string) {
		for _, c := range i.Children {
			if !c.Visible {
				continue
			}
			switch {
			case c.Type == "separator":
				b.WriteString(indent + "----\n")
				continue
			case !c.Enabled:
				b.WriteString(indent + "[" + c.Label + "]")
			default:
				b.WriteString(indent + c.Label)
			}
			if c.Toggle == "checkmark" {
				fmt.Fprintf(&b, " (checked=%v)", c.Checked)
			}
			b.WriteString("\n")
			walk(c, indent+"  ")
		}
	}
	walk(it, "")
	return b.String()
}

// Menu reads and clicks the menu of the item at dest (a unique bus name).
type Menu struct {
	Conn *dbus.Conn
	Dest string
	Path dbus.ObjectPath
}

// Layout reads the whole menu, as a panel does when it opens it.
func (m Menu) Layout(ctx context.Context) (Item, error) {
	var rev uint32
	var root layout
	call := m.Conn.Object(m.Dest, m.Path).CallWithContext(ctx, "com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return Item{}, fmt.Errorf("GetLayout: %w", call.Err)
	}
	if err := call.Store(&rev, &root); err != nil {
		return Item{}, fmt.Errorf("GetLayout reply: %w", err)
	}
	return convert(root)
}

type layout struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []dbus.Variant
}

func convert(l layout) (Item, error) {
	it := Item{ID: l.ID, Enabled: true, Visible: true}
	for k, v := range l.Props {
		switch k {
		case "label":
			it.Label, _ = v.Value().(string)
		case "enabled":
			it.Enabled, _ = v.Value().(bool)
		case "visible":
			it.Visible, _ = v.Value().(bool)
		case "type":
			it.Type, _ = v.Value().(string)
		case "toggle-type":
			it.Toggle, _ = v.Value().(string)
		case "toggle-state":
			n, _ := v.Value().(int32)
			it.Checked = n == 1
		}
	}
	for _, c := range l.Children {
		var cl layout
		if err := dbus.Store([]any{c.Value()}, &cl); err != nil {
			return Item{}, fmt.Errorf("menu item %d: %w", l.ID, err)
		}
		ci, err := convert(cl)
		if err != nil {
			return Item{}, err
		}
		it.Children = append(it.Children, ci)
	}
	return it, nil
}

// Click sends the "clicked" event to item id, as a panel does.
func (m Menu) Click(ctx context.Context, id int32) error {
	call := m.Conn.Object(m.Dest, m.Path).CallWithContext(ctx, "com.canonical.dbusmenu.Event", 0, id, "clicked", dbus.MakeVariant(int32(0)), uint32(0))
	if call.Err != nil {
		return fmt.Errorf("Event clicked %d: %w", id, call.Err)
	}
	return nil
}

// Wait re-reads the menu on every LayoutUpdated and ItemsPropertiesUpdated
// signal until ok accepts it; it returns the last menu seen with the error
// when ctx ends first.
func (m Menu) Wait(ctx context.Context, ok func(Item) bool) (Item, error) {
	sigs := make(chan *dbus.Signal, 64)
	m.Conn.Signal(sigs)
	defer m.Conn.RemoveSignal(sigs)
	match := []dbus.MatchOption{dbus.WithMatchSender(m.Dest), dbus.WithMatchObjectPath(m.Path), dbus.WithMatchInterface("com.canonical.dbusmenu")}
	if err := m.Conn.AddMatchSignalContext(ctx, match...); err != nil {
		return Item{}, fmt.Errorf("watch the menu: %w", err)
	}
	defer m.Conn.RemoveMatchSignal(match...)
	var last Item
	for {
		it, err := m.Layout(ctx)
		if err == nil {
			last = it
			if ok(it) {
				return it, nil
			}
		}
		select {
		case <-sigs:
		case <-ctx.Done():
			return last, fmt.Errorf("the menu never reached the expected state (last read error: %v): %w", err, ctx.Err())
		}
	}
}

// Properties reads the item's org.kde.StatusNotifierItem properties.
func Properties(ctx context.Context, conn *dbus.Conn, dest string) (map[string]dbus.Variant, error) {
	var props map[string]dbus.Variant
	err := conn.Object(dest, "/StatusNotifierItem").CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, "org.kde.StatusNotifierItem").Store(&props)
	if err != nil {
		return nil, fmt.Errorf("read the item's properties: %w", err)
	}
	return props, nil
}
