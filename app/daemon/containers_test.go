package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/guest/container"
	"github.com/hyperos/hyperos/guest/lazyimage"
)

// guestLine is one line of the guest's log as the guest itself writes it, so
// that the decoder is tested against the real format.
func guestLine(t *testing.T, e container.Event) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestDecodeContainerEvent(t *testing.T) {
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	line := guestLine(t, container.Event{Time: at, Type: "booted", Container: "web", Stats: &lazyimage.Stats{Size: 800 << 20, Fetched: 42 << 20, Cached: 1}, BootSeconds: 3.5})
	e, err := DecodeContainerEvent([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := api.ContainerEvent{Name: "web", Type: "booted", Fetched: 42 << 20, Size: 800 << 20, BootSeconds: 3.5, Time: at}
	if e != want {
		t.Fatalf("got %+v, want %+v", e, want)
	}
	e, err = DecodeContainerEvent([]byte(guestLine(t, container.Event{Type: "failed", Container: "db", Reason: "no peers"})))
	if err != nil || e.Reason != "no peers" || e.Size != 0 {
		t.Fatalf("failed event: %+v %v", e, err)
	}
	for _, bad := range []string{"not json\n", `{"type":"booted"}`, `{"container":"web"}`} {
		if _, err := DecodeContainerEvent([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestApplyContainerEvent(t *testing.T) {
	var l []api.Container
	l = ApplyContainerEvent(l, api.ContainerEvent{Name: "web", Type: "booting", Size: 100})
	l = ApplyContainerEvent(l, api.ContainerEvent{Name: "db", Type: "running"})
	l = ApplyContainerEvent(l, api.ContainerEvent{Name: "web", Type: "booted", Fetched: 10, Size: 100, BootSeconds: 2})
	l = ApplyContainerEvent(l, api.ContainerEvent{Name: "web", Type: "new-version", Fetched: 12, Size: 100})
	want := []api.Container{
		{Name: "db", State: "running"},
		{Name: "web", State: "booted", Fetched: 12, Size: 100, BootSeconds: 2},
	}
	if fmt.Sprint(l) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", l, want)
	}
}

// fakeStreams is a ContainerStream whose connections the test writes to: each
// open hands the writing end of a pipe to the test.
// closed is signalled each time the relay closes a connection.
type fakeStreams struct {
	conns  chan *io.PipeWriter
	closed chan struct{}
}

func (f *fakeStreams) open(ctx context.Context) (io.ReadCloser, error) {
	r, w := io.Pipe()
	context.AfterFunc(ctx, func() { w.CloseWithError(ctx.Err()) })
	select {
	case f.conns <- w:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &closeSignal{r, f.closed}, nil
}

type closeSignal struct {
	*io.PipeReader
	closed chan struct{}
}

func (c *closeSignal) Close() error {
	err := c.PipeReader.Close()
	c.closed <- struct{}{}
	return err
}

func (f *fakeStreams) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-f.closed:
	case <-time.After(time.Minute):
		t.Fatal("the relay did not close its stream")
	}
}

func (f *fakeStreams) next(t *testing.T) *io.PipeWriter {
	t.Helper()
	select {
	case w := <-f.conns:
		return w
	case <-time.After(time.Minute):
		t.Fatal("the relay did not connect")
		return nil
	}
}

func write(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatalf("write to the relay: %v", err)
	}
}

func names(l []api.Container) string {
	var s []string
	for _, c := range l {
		s = append(s, c.Name+"="+c.State)
	}
	return strings.Join(s, ",")
}

func TestRelayContainerEvents(t *testing.T) {
	f := newFakeVM()
	streams := &fakeStreams{conns: make(chan *io.PipeWriter), closed: make(chan struct{}, 4)}
	d, sub := start(t, f, Options{BootAtStart: true, ContainerEvents: streams.open})
	if _, err := d.WaitBoot(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The first connection: two lines of history, then news.
	history := guestLine(t, container.Event{Type: "booting", Container: "web"}) +
		guestLine(t, container.Event{Type: "booted", Container: "web", Stats: &lazyimage.Stats{Size: 1000, Fetched: 100}, BootSeconds: 1})
	w := streams.next(t)
	write(t, w, fmt.Sprintf("%d\n", len(history))+history)
	e := next(t, sub, api.EventContainer)
	if e.Container != nil || names(e.Containers) != "web=booted" {
		t.Fatalf("history should rebuild the list without announcing: %+v", e)
	}
	news := guestLine(t, container.Event{Type: "booted", Container: "db", Stats: &lazyimage.Stats{Size: 2000, Fetched: 300}, BootSeconds: 4.5})
	write(t, w, "garbage\n"+news)
	e = next(t, sub, api.EventContainer)
	if c := e.Container; c == nil || c.Name != "db" || c.Type != "booted" || c.Fetched != 300 || c.Size != 2000 || c.BootSeconds != 4.5 {
		t.Fatalf("news: %+v", e.Container)
	}
	if names(e.Containers) != "db=booted,web=booted" || e.Phase != api.Online {
		t.Fatalf("list on the event: %+v", e)
	}
	if st := d.Status(); names(st.Containers) != "db=booted,web=booted" {
		t.Fatalf("status containers: %+v", st.Containers)
	}

	// The stream ends while the VM is online: the relay reconnects, and the
	// replayed log is not announced again, but what follows is.
	w.Close()
	streams.waitClosed(t)
	w = streams.next(t)
	all := history + "garbage\n" + news
	stopped := guestLine(t, container.Event{Type: "stopped", Container: "web"})
	write(t, w, fmt.Sprintf("%d\n", len(all))+all+stopped)
	e = next(t, sub, api.EventContainer)
	if e.Container == nil || e.Container.Name != "web" || e.Container.Type != "stopped" || names(e.Containers) != "db=booted,web=stopped" {
		t.Fatalf("after a reconnection: %+v", e)
	}

	// Offline: the stream is closed and the list emptied.
	if err := d.Halt(context.Background()); err != nil {
		t.Fatal(err)
	}
	streams.waitClosed(t)
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("the relay's stream is still open after the halt")
	}
	if st := d.Status(); st.Containers == nil || len(st.Containers) != 0 {
		t.Fatalf("containers after halt: %#v", st.Containers)
	}
}

func TestStopContainer(t *testing.T) {
	f := newFakeVM()
	var got []string
	fail := false
	run := func(ctx context.Context, command string, stdout, stderr io.Writer) error {
		got = append(got, command)
		if fail {
			io.WriteString(stderr, "no container db\n")
			return errors.New("exited with status 1")
		}
		return nil
	}
	d, _ := start(t, f, Options{GuestCommand: run})
	ctx := context.Background()
	if err := d.StopContainer(ctx, "web"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stopped VM: %v", err)
	}
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WaitBoot(ctx); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "-rf", "a b", "x;reboot"} {
		if err := d.StopContainer(ctx, bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if err := d.StopContainer(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := d.StopContainer(ctx, "db"); err == nil || !strings.Contains(err.Error(), "no container db") {
		t.Fatalf("the guest's complaint is lost: %v", err)
	}
	if want := []string{"hyperos-guest container stop web", "hyperos-guest container stop db"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("guest commands %q, want %q", got, want)
	}
}

// bootedVM is a daemon whose VM is online, with run as its guest.
func bootedVM(t *testing.T, run GuestCommand) *Daemon {
	t.Helper()
	d, _ := start(t, newFakeVM(), Options{GuestCommand: run})
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WaitBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBootContainer(t *testing.T) {
	const key = "0101010101010101010101010101010101010101010101010101010101010101"
	var got string
	phase := "running"
	d := bootedVM(t, func(ctx context.Context, command string, stdout, stderr io.Writer) error {
		got = command
		io.WriteString(stderr, "deb: booting  (0 KB of 256 MB fetched)\ndeb: running ")
		io.WriteString(stderr, " (30 MB of 256 MB fetched)\n")
		fmt.Fprintf(stdout, `{"name":"deb","link":"hyper://%s/debian.img","boot":true,"phase":%q,"reason":"nspawn exited","stats":{"fetched":31457280,"size":268435456},"peers_connected":1,"boot_seconds":4.2}`+"\n", key, phase)
		return nil
	})
	var progress []string
	c, err := d.BootContainer(context.Background(), []string{"-k", key, "-i", "debian.img", "-b", "--peer", "_gateway:4000"}, func(s string) { progress = append(progress, s) })
	if err != nil {
		t.Fatal(err)
	}
	// The guest gets the canonical spelling, quoted for its shell.
	if want := "hyperos-guest container boot hyper://" + key + "/debian.img --name debian --peer _gateway:4000 --boot --json"; got != want {
		t.Fatalf("guest command\n%s\nwant\n%s", got, want)
	}
	if c.Name != "deb" || c.State != "running" || c.Fetched != 31457280 || c.Size != 268435456 || c.Peers != 1 || c.BootSeconds != 4.2 {
		t.Fatalf("container %+v", c)
	}
	if len(progress) != 2 || progress[1] != "deb: running  (30 MB of 256 MB fetched)" {
		t.Fatalf("progress %q", progress)
	}
	phase = "failed"
	if _, err := d.BootContainer(context.Background(), []string{"hyper://" + key + "/debian.img"}, nil); err == nil || !strings.Contains(err.Error(), "nspawn exited") {
		t.Fatalf("a failed boot: %v", err)
	}
	for _, bad := range [][]string{{"hyper://" + key + "/a.img", "--name", "x;reboot"}, {"--frob"}, {}} {
		if _, err := d.BootContainer(context.Background(), bad, nil); !errors.Is(err, ErrInvalidBoot) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestContainersAndRemove(t *testing.T) {
	var got []string
	d := bootedVM(t, func(ctx context.Context, command string, stdout, stderr io.Writer) error {
		got = append(got, command)
		if strings.HasSuffix(command, "ls --json") {
			io.WriteString(stdout, `[{"name":"a","link":"hyper://k/a.img","phase":"stopped","version":3,"stats":{"fetched":1,"cached":2,"size":3}}]`)
		}
		return nil
	})
	cs, err := d.Containers(context.Background())
	if err != nil || len(cs) != 1 || cs[0].Name != "a" || cs[0].State != "stopped" || cs[0].Version != 3 || cs[0].Cached != 2 {
		t.Fatalf("%+v %v", cs, err)
	}
	if err := d.RemoveContainer(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveContainer(context.Background(), "../a"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	if want := "[hyperos-guest container ls --json hyperos-guest container rm a]"; fmt.Sprint(got) != want {
		t.Fatalf("guest commands %q", got)
	}
}
