package tray

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/resources"
)

func TestRender(t *testing.T) {
	tests := []struct {
		s                             State
		icon, status                  string
		boot, stop, restart, terminal bool
		startService                  bool
	}{
		{s: State{Link: Connecting}, icon: resources.Offline, status: "HyperOS: connecting to the service…"},
		{s: State{Link: NoService}, icon: resources.Offline, status: "HyperOS: service not running", startService: true},
		{s: State{Link: Connected, Phase: api.Stopped}, icon: resources.Offline, status: "HyperOS: Offline", boot: true},
		{s: State{Link: Connected, Phase: api.Booting}, icon: resources.Booting, status: "HyperOS: Booting…", stop: true},
		{s: State{Link: Connected, Phase: api.Online}, icon: resources.Online, status: "HyperOS: Online", stop: true, restart: true, terminal: true},
		{
			s:    State{Link: Connected, Phase: api.Online, IP: "192.168.64.5", Hostname: "simon-mittens-gazelle-0123"},
			icon: resources.Online, status: "HyperOS: Online — 192.168.64.5 (simon-mittens-gazel…)", stop: true, restart: true, terminal: true,
		},
		{s: State{Link: Connected, Phase: api.Stopping}, icon: resources.Booting, status: "HyperOS: Stopping…"},
		{s: State{Link: Connected, Phase: api.Failed, Reason: "qemu exited"}, icon: resources.Failed, status: "HyperOS: Failed: qemu exited", boot: true},
		{s: State{Link: Connected, Phase: api.Failed, Reason: "x", NextRestart: true}, icon: resources.Failed, status: "HyperOS: Failed: x", boot: true, stop: true},
	}
	for _, tt := range tests {
		v := Render(tt.s)
		if v.Icon != tt.icon || v.Status != tt.status || v.Boot != tt.boot || v.Stop != tt.stop || v.Restart != tt.restart || v.Terminal != tt.terminal || v.StartService != tt.startService {
			t.Errorf("Render(%+v) = %+v", tt.s, v)
		}
		if !strings.HasPrefix(v.Tooltip, "HyperOS") {
			t.Errorf("tooltip %q", v.Tooltip)
		}
	}
	long := Render(State{Link: Connected, Phase: api.Failed, Reason: strings.Repeat("é", 200)})
	if n := len([]rune(long.Status)); n != maxLabel || !strings.HasSuffix(long.Status, "…") {
		t.Errorf("a long reason is not cut to %d runes: %d %q", maxLabel, n, long.Status)
	}
	if !strings.Contains(long.Tooltip, strings.Repeat("é", 200)) {
		t.Error("the tooltip should carry the whole reason")
	}
}

// TestNotices walks a boot, an address change, a crash, a failed restart and
// a reconnect through Apply and Notices, as the event stream delivers them.
func TestNotices(t *testing.T) {
	steps := []struct {
		e    api.Event
		want string // "" for no notice
	}{
		{api.Event{Type: api.EventState, Phase: api.Stopped, Snapshot: true}, ""},
		{api.Event{Type: api.EventState, Phase: api.Booting}, ""},
		{api.Event{Type: api.EventProgress, Phase: api.Booting, Message: "waiting for the ready line"}, ""},
		{api.Event{Type: api.EventState, Phase: api.Online}, ""},
		{api.Event{Type: api.EventLease, Phase: api.Online, IP: "10.0.2.15", Message: "found"}, "HyperOS is online at 10.0.2.15"},
		{api.Event{Type: api.EventConsole, Phase: api.Online, IP: "10.0.2.15"}, ""},
		{api.Event{Type: api.EventLease, Phase: api.Online, IP: "10.0.2.16", Message: "changed"}, "HyperOS is online at 10.0.2.16"},
		{api.Event{Type: api.EventState, Phase: api.Failed, Reason: "qemu exited with status 1"}, "HyperOS stopped unexpectedly: qemu exited with status 1"},
		{api.Event{Type: api.EventError, Phase: api.Failed, Reason: "qemu exited with status 1"}, ""},
		{api.Event{Type: api.EventRestart, Phase: api.Failed, Message: "restarting in 2s"}, ""},
		{api.Event{Type: api.EventState, Phase: api.Booting}, ""},
		{api.Event{Type: api.EventState, Phase: api.Failed, Reason: "no ready line"}, "Boot failed: no ready line"},
		// A reconnect: the snapshot repeats the state and says nothing new.
		{api.Event{Type: api.EventState, Phase: api.Online, IP: "10.0.2.15", Snapshot: true}, ""},
	}
	s := State{Link: Connecting}
	for i, st := range steps {
		next := s.Apply(st.e)
		got := Notices(s, next, st.e)
		switch {
		case st.want == "" && len(got) != 0:
			t.Errorf("step %d (%s %s): unexpected notice %q", i, st.e.Type, st.e.Phase, got[0].Body)
		case st.want != "" && (len(got) != 1 || got[0].Body != st.want):
			t.Errorf("step %d (%s %s): notices %v, want %q", i, st.e.Type, st.e.Phase, got, st.want)
		}
		s = next
	}
}

type recordNotifier struct {
	mu   sync.Mutex
	got  []string
	done chan struct{}
}

func (r *recordNotifier) Notify(ctx context.Context, title, body string) error {
	r.mu.Lock()
	r.got = append(r.got, body)
	r.mu.Unlock()
	r.done <- struct{}{}
	return nil
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(nil, slog.Default())
	l.now = func() time.Time { return now }
	n := func(k string) Notice { return Notice{Key: k, Body: k} }
	if !l.Allow(n("a")) {
		t.Fatal("first notice dropped")
	}
	if l.Allow(n("a")) {
		t.Fatal("a duplicate within the window passed")
	}
	if !l.Allow(n("b")) || !l.Allow(n("c")) {
		t.Fatal("distinct notices within the burst dropped")
	}
	if l.Allow(n("d")) {
		t.Fatal("a fourth notice within a minute passed the burst of three")
	}
	now = now.Add(time.Minute)
	if !l.Allow(n("a")) {
		t.Fatal("the same event after the window was dropped")
	}

	// Send delivers through the Notifier.
	r := &recordNotifier{done: make(chan struct{}, 1)}
	l2 := NewLimiter(r, slog.Default())
	l2.Send(context.Background(), n("hello"))
	<-r.done
	if len(r.got) != 1 || r.got[0] != "hello" {
		t.Fatalf("got %v", r.got)
	}
}

func TestTerminalCommand(t *testing.T) {
	have := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			for _, h := range names {
				if h == n {
					return "/usr/bin/" + n, nil
				}
			}
			return "", fs.ErrNotExist
		}
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	ssh := []string{"/opt/hyperos/bin/hyperos", "ssh"}
	tests := []struct {
		name   string
		e      TerminalEnv
		argv   []string
		want   string
		script string
		err    error
	}{
		{name: "TERMINAL first", e: TerminalEnv{GOOS: "linux", Getenv: env("TERMINAL", "alacritty"), LookPath: have("alacritty", "x-terminal-emulator")},
			want: "/usr/bin/alacritty -e /opt/hyperos/bin/hyperos ssh"},
		{name: "TERMINAL missing falls through", e: TerminalEnv{GOOS: "linux", Getenv: env("TERMINAL", "nope"), LookPath: have("x-terminal-emulator")},
			want: "/usr/bin/x-terminal-emulator -e /opt/hyperos/bin/hyperos ssh"},
		{name: "gnome-terminal takes --", e: TerminalEnv{GOOS: "linux", Getenv: env(), LookPath: have("gnome-terminal", "xterm")},
			want: "/usr/bin/gnome-terminal -- /opt/hyperos/bin/hyperos ssh"},
		{name: "xfce4-terminal takes -x", e: TerminalEnv{GOOS: "freebsd", Getenv: env(), LookPath: have("xfce4-terminal")},
			want: "/usr/bin/xfce4-terminal -x /opt/hyperos/bin/hyperos ssh"},
		{name: "HYPEROS_HOME passed through env", e: TerminalEnv{GOOS: "linux", Getenv: env("HYPEROS_HOME", "/tmp/h h"), LookPath: have("xterm")},
			want: "/usr/bin/xterm -e env HYPEROS_HOME=/tmp/h h /opt/hyperos/bin/hyperos ssh"},
		{name: "container", e: TerminalEnv{GOOS: "linux", Getenv: env(), LookPath: have("kitty")}, argv: []string{"hyperos", "ssh", "--container", "web"},
			want: "/usr/bin/kitty hyperos ssh --container web"},
		{name: "no terminal", e: TerminalEnv{GOOS: "linux", Getenv: env(), LookPath: have()}, err: ErrNoTerminal},
		{name: "macOS .command", e: TerminalEnv{GOOS: "darwin", Getenv: env("HYPEROS_HOME", "/Users/a b/h"), LookPath: have(), Dir: "/tmp/x"},
			want:   "open -a Terminal /tmp/x/hyperos-ssh.command",
			script: "#!/bin/sh\n# Written by the HyperOS tray for Terminal to run.\nexport HYPEROS_HOME='/Users/a b/h'\nexec /opt/hyperos/bin/hyperos ssh\n"},
		{name: "Windows Terminal", e: TerminalEnv{GOOS: "windows", Getenv: env(), LookPath: have("wt.exe")}, argv: []string{`C:\hyperos.exe`, "ssh", "--", "echo a;b"},
			want: `/usr/bin/wt.exe -w 0 new-tab --title HyperOS C:\hyperos.exe ssh -- echo a\;b`},
		{name: "Windows console fallback", e: TerminalEnv{GOOS: "windows", Getenv: env(), LookPath: have()}, argv: []string{`C:\hyperos.exe`, "ssh"},
			want: `C:\hyperos.exe ssh`},
	}
	for _, tt := range tests {
		argv := tt.argv
		if argv == nil {
			argv = ssh
		}
		l, err := TerminalCommand(tt.e, argv)
		if tt.err != nil {
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), "/opt/hyperos/bin/hyperos ssh") {
				t.Errorf("%s: err %v, want %v naming the command", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := strings.Join(l.Argv, " "); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
		if l.Script != tt.script {
			t.Errorf("%s: script\n%q\nwant\n%q", tt.name, l.Script, tt.script)
		}
		if tt.name == "Windows console fallback" && !l.NewConsole {
			t.Errorf("%s: the fallback must open a console of its own", tt.name)
		}
	}
}

func TestShellLine(t *testing.T) {
	if got := ShellLine([]string{"hyperos", "ssh", "--", "echo it's"}); got != `hyperos ssh -- 'echo it'\''s'` {
		t.Errorf("got %s", got)
	}
}

func TestOpenCommand(t *testing.T) {
	for goos, want := range map[string]string{
		"linux":   "xdg-open /l",
		"darwin":  "open /l",
		"windows": "rundll32.exe url.dll,FileProtocolHandler /l",
	} {
		if got := strings.Join(OpenCommand(goos, "/l"), " "); got != want {
			t.Errorf("%s: %s, want %s", goos, got, want)
		}
	}
}
