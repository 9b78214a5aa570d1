//go:build !darwin || cgo

package tray

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"fyne.io/systray"
	"github.com/hyperos/hyperos/resources"
)

// menu is the systray menu and the last view drawn on it, so that only what
// changed is sent (each change is a D-Bus signal on Linux).
type menu struct {
	status, boot, stop, restart, terminal  *systray.MenuItem
	containers, noContainers, startService *systray.MenuItem
	login, logs, about, quitItem           *systray.MenuItem

	mu    sync.Mutex
	last  *View
	icons map[string][]byte
	end   context.CancelFunc
	// slots are the Containers submenu's items, made as the list first grows
	// that long and hidden when it shrinks: systray cannot remove an item.
	slots []*containerSlot
	ctx   context.Context
	c     *controller
}

// containerSlot is one container's item and its submenu; name is the
// container it shows now (guarded by menu.mu), which its clicks act on.
type containerSlot struct {
	item, terminal, stop *systray.MenuItem
	name                 string
}

// Run shows the tray until ctx ends or Quit is clicked. On macOS it must be
// called from the main goroutine (fyne.io/systray locks it to the main thread
// at init); `hyperos tray` does so.
func Run(ctx context.Context, o Options) error {
	if err := platformCheck(); err != nil {
		return err
	}
	icons := map[string][]byte{}
	for _, s := range resources.States {
		b, err := resources.Icon(goos, s)
		if err != nil {
			return err
		}
		icons[s] = b
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := &menu{icons: icons, end: cancel, ctx: ctx}
	c := newController(o, m)
	m.c = c
	runLoop(ctx, cancel, func() { m.build(ctx, c) }, func() { go c.follow(ctx) })
	return nil
}

// build makes the items, in their final order, and starts their click loops.
// It runs once, before the menu is first served.
func (m *menu) build(ctx context.Context, c *controller) {
	if goos != "darwin" {
		// The item's name for panels that list items; on macOS a title
		// would be drawn as text beside the icon in the menu bar.
		systray.SetTitle("HyperOS")
	}
	m.status = systray.AddMenuItem("HyperOS", "")
	m.status.Disable()
	systray.AddSeparator()
	m.boot = systray.AddMenuItem("Boot", "Boot the HyperOS VM")
	m.stop = systray.AddMenuItem("Stop", "Shut the HyperOS VM down")
	m.restart = systray.AddMenuItem("Restart", "Shut the HyperOS VM down and boot it again")
	systray.AddSeparator()
	m.terminal = systray.AddMenuItem("Open Terminal", "Open a shell in the VM (hyperos ssh)")
	m.containers = systray.AddMenuItem("Containers", "Containers running in the VM")
	m.noContainers = m.containers.AddSubMenuItem("No containers", "")
	m.noContainers.Disable()
	systray.AddSeparator()
	m.startService = systray.AddMenuItem("Start HyperOS service", "The tray needs the HyperOS service")
	m.startService.Hide()
	if c.opts.StartService == nil {
		m.startService.Disable()
	}
	if c.opts.Login != nil {
		on, err := c.opts.Login.Enabled(ctx)
		if err != nil {
			c.log.Warn("cannot tell whether HyperOS starts at login", "err", err)
		}
		m.login = systray.AddMenuItemCheckbox("Start at Login", "Start the HyperOS service when you log in", on)
	}
	m.logs = systray.AddMenuItem("Open Logs", "The HyperOS service's log")
	m.about = systray.AddMenuItem("About HyperOS", "Versions")
	systray.AddSeparator()
	m.quitItem = systray.AddMenuItem("Quit", "Quit the tray; the VM keeps running under the service")

	clicks := []struct {
		item *systray.MenuItem
		a    action
	}{
		{m.boot, actBoot}, {m.stop, actStop}, {m.restart, actRestart}, {m.terminal, actTerminal},
		{m.startService, actStartService}, {m.login, actLogin}, {m.logs, actLogs}, {m.about, actAbout}, {m.quitItem, actQuit},
	}
	for _, k := range clicks {
		if k.item == nil {
			continue
		}
		// systray drops a click when nobody is receiving, so every item has
		// its own receiver that never does anything slow.
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-k.item.ClickedCh:
					if !ok {
						return
					}
					c.do(ctx, k.a, k.item.Checked())
				}
			}
		}()
	}
}

func (m *menu) show(v View) {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.last
	if last == nil {
		last = &View{Icon: "-", Boot: !v.Boot, Stop: !v.Stop, Restart: !v.Restart, Terminal: !v.Terminal, StartService: !v.StartService}
	}
	if v.Icon != last.Icon {
		if goos == "darwin" {
			systray.SetTemplateIcon(m.icons[v.Icon], m.icons[v.Icon])
		} else {
			systray.SetIcon(m.icons[v.Icon])
		}
	}
	if v.Tooltip != last.Tooltip {
		systray.SetTooltip(v.Tooltip)
	}
	if v.Status != last.Status {
		m.status.SetTitle(v.Status)
	}
	enable(m.boot, v.Boot, last.Boot)
	enable(m.stop, v.Stop, last.Stop)
	enable(m.restart, v.Restart, last.Restart)
	enable(m.terminal, v.Terminal, last.Terminal)
	if v.StartService != last.StartService {
		if v.StartService {
			m.startService.Show()
		} else {
			m.startService.Hide()
		}
	}
	if !slices.Equal(v.Containers, last.Containers) {
		m.showContainers(v.Containers)
	}
	m.last = &v
}

// showContainers fills the Containers submenu; m.mu is held.
func (m *menu) showContainers(items []ContainerItem) {
	if len(items) == 0 {
		m.noContainers.Show()
	} else {
		m.noContainers.Hide()
	}
	for i, it := range items {
		if i == len(m.slots) {
			m.slots = append(m.slots, m.addSlot())
		}
		s := m.slots[i]
		s.name = it.Name
		s.item.SetTitle(it.Label)
		enable(s.terminal, it.Terminal, !it.Terminal)
		enable(s.stop, it.Stop, !it.Stop)
		s.item.Show()
	}
	for _, s := range m.slots[len(items):] {
		s.item.Hide()
	}
}

// addSlot makes one more container item, with Open Terminal and Stop, and
// their click loops; m.mu is held.
func (m *menu) addSlot() *containerSlot {
	s := &containerSlot{item: m.containers.AddSubMenuItem("", "")}
	s.terminal = s.item.AddSubMenuItem("Open Terminal", "Open a shell in this container (hyperos ssh --container)")
	s.stop = s.item.AddSubMenuItem("Stop", "Stop this container")
	for _, k := range []struct {
		item *systray.MenuItem
		a    action
	}{{s.terminal, actTerminal}, {s.stop, actStop}} {
		go func() {
			for {
				select {
				case <-m.ctx.Done():
					return
				case _, ok := <-k.item.ClickedCh:
					if !ok {
						return
					}
					m.mu.Lock()
					name := s.name
					m.mu.Unlock()
					m.c.containerDo(m.ctx, k.a, name)
				}
			}
		}()
	}
	return s
}

func enable(item *systray.MenuItem, on, was bool) {
	if on == was {
		return
	}
	if on {
		item.Enable()
	} else {
		item.Disable()
	}
}

func (m *menu) setLogin(on bool) {
	if m.login == nil {
		return
	}
	if on {
		m.login.Check()
	} else {
		m.login.Uncheck()
	}
}

// quit ends Run, which then takes the tray down.
func (m *menu) quit() { m.end() }

// errNoTray wraps platform errors that keep the tray from starting.
func errNoTray(err error) error { return fmt.Errorf("cannot show the HyperOS tray: %w", err) }
