package tray

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/resources"
)

// Link is the tray's connection to the service.
type Link int

const (
	// Connecting: the first connection attempt has not ended yet.
	Connecting Link = iota
	// Connected: the event stream is open and State reflects it.
	Connected
	// NoService: the service is not running (or not reachable); the tray
	// retries with backoff.
	NoService
)

// State is everything the menu is drawn from. It is built only from the
// service's events (and one status read per connection), never by polling.
type State struct {
	Link     Link
	Phase    api.Phase
	Name     string
	Hostname string
	IP       string
	Reason   string
	// NextRestart is set while the service waits to restart a failed VM.
	NextRestart bool
	// Service is the service's version, when connected.
	Service string
	// Containers are the VM's containers, as the service's last event listed
	// them.
	Containers []api.Container
}

// Apply folds one event into the state. Every event carries the phase and the
// VM's identity, so the state never depends on having seen earlier events.
func (s State) Apply(e api.Event) State {
	s.Link = Connected
	s.Phase = e.Phase
	if e.Name != "" {
		s.Name = e.Name
	}
	s.Hostname, s.IP = e.Hostname, e.IP
	s.Reason = e.Reason
	// Every event carries the whole list, as it carries the phase.
	s.Containers = e.Containers
	if e.Type == api.EventRestart {
		s.NextRestart = true
	} else if e.Type == api.EventState {
		s.NextRestart = false
	}
	return s
}

// FromStatus is the state a fresh status read gives.
func FromStatus(st api.Status) State {
	return State{
		Link:        Connected,
		Phase:       st.Phase,
		Name:        st.Name,
		Hostname:    st.Hostname,
		IP:          st.IP(),
		Reason:      st.Reason,
		NextRestart: !st.NextRestart.IsZero(),
		Service:     st.Daemon.Version,
		Containers:  st.Containers,
	}
}

// View is what the menu shows for a State: one value per widget, so that the
// platform code only copies fields and holds no logic of its own.
type View struct {
	Icon    string // one of resources.States
	Tooltip string
	Status  string // the first, disabled, menu line
	// Which actions make sense now.
	Boot, Stop, Restart, Terminal bool
	// StartService shows "Start HyperOS service" (the service is not running).
	StartService bool
	// Containers fill the Containers submenu, one item each; none shows "No
	// containers".
	Containers []ContainerItem
}

// ContainerItem is one container's item in the Containers submenu, with its
// own submenu of actions.
type ContainerItem struct {
	Name  string
	Label string // name, state, and the image bytes fetched of all
	// Terminal opens a shell in it; Stop stops it.
	Terminal, Stop bool
}

// maxLabel keeps menu lines readable: panels draw the menu as wide as its
// longest line.
const maxLabel = 60

// Render turns a state into a view.
func Render(s State) View {
	var v View
	switch s.Link {
	case Connecting:
		v.Icon, v.Status = resources.Offline, "HyperOS: connecting to the service…"
		v.Tooltip = v.Status
		return v
	case NoService:
		v.Icon, v.Status = resources.Offline, "HyperOS: service not running"
		v.Tooltip = "HyperOS — the service is not running"
		v.StartService = true
		return v
	}
	switch s.Phase {
	case api.Booting:
		v.Icon, v.Status = resources.Booting, "HyperOS: Booting…"
		v.Stop = true // cancels the boot
	case api.Online:
		v.Icon, v.Status = resources.Online, "HyperOS: Online"
		if s.IP != "" {
			v.Status += " — " + s.IP
			if s.Hostname != "" {
				v.Status += " (" + shorten(s.Hostname, 20) + ")"
			}
		}
		v.Stop, v.Restart, v.Terminal = true, true, true
		for _, c := range s.Containers {
			v.Containers = append(v.Containers, containerItem(c))
		}
	case api.Stopping:
		v.Icon, v.Status = resources.Booting, "HyperOS: Stopping…"
	case api.Failed:
		v.Icon, v.Status = resources.Failed, "HyperOS: Failed"
		if s.Reason != "" {
			v.Status += ": " + s.Reason
		}
		v.Boot = true
		// Stop cancels a pending automatic restart.
		v.Stop = s.NextRestart
	default:
		v.Icon, v.Status = resources.Offline, "HyperOS: Offline"
		v.Boot = true
	}
	v.Tooltip = strings.Replace(v.Status, "HyperOS: ", "HyperOS — ", 1)
	v.Status = shorten(v.Status, maxLabel)
	return v
}

// containerItem is the menu line of one container: "web — booted, 42 MB of
// 800 MB", so the lazy fetch's progress shows at a glance.
func containerItem(c api.Container) ContainerItem {
	label := c.Name + " — " + c.State
	if c.State == "failed" && c.Reason != "" {
		label += ": " + c.Reason
	}
	if c.Size > 0 {
		label += ", " + megabytes(c.Fetched) + " of " + megabytes(c.Size)
	}
	live := c.State != "stopped" && c.State != "failed"
	return ContainerItem{Name: c.Name, Label: shorten(label, maxLabel), Terminal: live, Stop: live}
}

// megabytes renders a byte count for people: decimal megabytes, with a
// decimal place only where it carries information.
func megabytes(n int64) string {
	mb := float64(n) / 1e6
	if mb < 10 && n%1e6 != 0 {
		return fmt.Sprintf("%.1f MB", mb)
	}
	return fmt.Sprintf("%.0f MB", mb)
}

// shorten cuts s to n runes, ending it with an ellipsis when cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Notice is one notification to show.
type Notice struct {
	// Key identifies the event (its kind and the service's sequence number),
	// so the same event delivered twice is shown once; a second boot or
	// failure is a new event and is shown, within the rate limit.
	Key   string
	Title string
	Body  string
}

// Notices returns the notifications that the step from prev to next deserves.
// Snapshots (the first event of every stream) never notify: a tray that starts
// or reconnects has not seen anything happen.
func Notices(prev, next State, e api.Event) []Notice {
	if e.Snapshot || prev.Link != Connected {
		return nil
	}
	var out []Notice
	if c := e.Container; e.Type == api.EventContainer && c != nil {
		// Keyed by the service's sequence number: a replayed or re-delivered
		// event is the same event.
		body := ""
		switch c.Type {
		case "booted":
			body = ContainerBooted(*c)
		case "failed":
			body = fmt.Sprintf("Container %s failed: %s", c.Name, orUnknown(c.Reason))
		case "new-version":
			body = fmt.Sprintf("A new version of container %s's image is published (version %d; it runs %d). Restart it to use it.", c.Name, c.NewVersion, c.Version)
		}
		if body != "" {
			out = append(out, Notice{Key: fmt.Sprintf("container-%s:%s:%d", c.Type, c.Name, e.Seq), Title: "HyperOS", Body: body})
		}
	}
	switch {
	case next.Phase == api.Online && next.IP != "" && (prev.Phase != api.Online || prev.IP != next.IP):
		out = append(out, Notice{
			Key:   fmt.Sprintf("online:%s:%d", next.IP, e.Seq),
			Title: "HyperOS",
			Body:  fmt.Sprintf("HyperOS is online at %s", next.IP),
		})
	case next.Phase == api.Failed && prev.Phase == api.Booting:
		out = append(out, Notice{
			Key:   fmt.Sprintf("boot-failed:%d", e.Seq),
			Title: "HyperOS",
			Body:  "Boot failed: " + orUnknown(next.Reason),
		})
	case next.Phase == api.Failed && prev.Phase == api.Online:
		out = append(out, Notice{
			Key:   fmt.Sprintf("stopped:%d", e.Seq),
			Title: "HyperOS",
			Body:  "HyperOS stopped unexpectedly: " + orUnknown(next.Reason),
		})
	}
	return out
}

// ContainerBooted is the notification of a live boot: how long it took and how
// little of the image it needed.
func ContainerBooted(c api.ContainerEvent) string {
	s := fmt.Sprintf("Container %s live-booted in %s s", c.Name, strconv.FormatFloat(c.BootSeconds, 'f', 1, 64))
	if c.Size > 0 {
		s += fmt.Sprintf(" (%s of %s fetched)", megabytes(c.Fetched), megabytes(c.Size))
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "no reason given (see the logs)"
	}
	return s
}
