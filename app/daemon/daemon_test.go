package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/vm"
)

// fakeVM is an in-memory VM: the state machine's logic is tested here without a
// hypervisor; the e2e tests in cmd/hyperos run the same code against QEMU.
type fakeVM struct {
	mu       sync.Mutex
	running  bool
	online   bool
	pid      int
	boots    int
	bootGate chan struct{} // when set, Boot waits for it (or ctx)
	bootErr  error
	exited   chan struct{} // closed when the current "hypervisor" exits
}

func newFakeVM() *fakeVM { return &fakeVM{exited: make(chan struct{})} }

func (f *fakeVM) Boot(ctx context.Context, progress func(string)) (machine.Status, error) {
	f.mu.Lock()
	f.boots++
	f.pid = 1000 + f.boots
	f.running, f.online = true, false
	f.exited = make(chan struct{})
	gate, berr := f.bootGate, f.bootErr
	f.mu.Unlock()
	progress("booting fake")
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			f.die()
			return machine.Status{}, fmt.Errorf("boot: %w", ctx.Err())
		}
	}
	if berr != nil {
		f.die()
		return machine.Status{}, berr
	}
	f.mu.Lock()
	f.online = true
	f.mu.Unlock()
	return f.Status(), nil
}

func (f *fakeVM) bootCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.boots
}

func (f *fakeVM) Status() machine.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := machine.Status{Name: "fake-vm", State: vm.Stopped}
	if f.running {
		st.State, st.Pid = vm.Running, f.pid
		if f.online {
			st.Hostname, st.IPs = "fake-vm", []string{"10.0.2.15"}
		}
	}
	return st
}

// die ends the "hypervisor" as a crash or a kill would.
func (f *fakeVM) die() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running {
		f.running, f.online = false, false
		close(f.exited)
	}
}

func (f *fakeVM) Halt(ctx context.Context) error {
	if f.Status().State != vm.Running {
		return machine.ErrNotRunning
	}
	f.die()
	return nil
}

func (f *fakeVM) Kill() error { return f.Halt(context.Background()) }

func (f *fakeVM) Wait(ctx context.Context) error {
	f.mu.Lock()
	ch, running := f.exited, f.running
	f.mu.Unlock()
	if !running {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs a daemon until the test ends and returns it with a subscription
// opened before anything happened.
func start(t *testing.T, f *fakeVM, o Options) (*Daemon, *Sub) {
	t.Helper()
	o.Log = quiet()
	if o.RestartMinDelay == 0 {
		o.RestartMinDelay = time.Millisecond
		o.RestartMaxDelay = 4 * time.Millisecond
	}
	d := New(f, o)
	sub := d.bus.Subscribe(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		sub.Close()
	})
	return d, sub
}

// next returns the next event of type t (skipping others), failing the test if
// the stream closes. The one-minute limit only keeps a broken test from
// hanging; nothing is measured.
func next(t *testing.T, s *Sub, types ...api.EventType) api.Event {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case e, ok := <-s.C:
			if !ok {
				t.Fatal("event stream closed")
			}
			for _, ty := range types {
				if e.Type == ty {
					return e
				}
			}
		case <-timeout:
			t.Fatalf("no %v event", types)
		}
	}
}

// phases reads state events until want is seen and returns the phases in order.
func phases(t *testing.T, s *Sub, want api.Phase) []api.Phase {
	t.Helper()
	var got []api.Phase
	for {
		e := next(t, s, api.EventState)
		got = append(got, e.Phase)
		if e.Phase == want {
			return got
		}
	}
}

func eq(a, b []api.Phase) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestBootHaltLifecycleInOrder(t *testing.T) {
	f := newFakeVM()
	d, sub := start(t, f, Options{BootAtStart: false})
	if got := phases(t, sub, api.Stopped); !eq(got, []api.Phase{api.Stopped}) {
		t.Fatalf("start: %v", got)
	}
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	st, err := d.WaitBoot(context.Background())
	if err != nil || st.Phase != api.Online || st.Hostname != "fake-vm" || st.IP() != "10.0.2.15" {
		t.Fatalf("WaitBoot: %+v %v", st, err)
	}
	if got := phases(t, sub, api.Online); !eq(got, []api.Phase{api.Booting, api.Online}) {
		t.Fatalf("boot: %v", got)
	}
	if l := next(t, sub, api.EventLease); l.IP != "10.0.2.15" || l.Message != "found" || l.Hostname != "fake-vm" {
		t.Fatalf("lease event %+v", l)
	}
	if err := d.Halt(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := phases(t, sub, api.Stopped); !eq(got, []api.Phase{api.Stopping, api.Stopped}) {
		t.Fatalf("halt: %v", got)
	}
	if err := d.Halt(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("halt when stopped: %v", err)
	}
	if err := d.Kill(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("kill when stopped: %v", err)
	}
}

func TestBootPressedTwiceBootsOnce(t *testing.T) {
	f := newFakeVM()
	gate := make(chan struct{})
	f.bootGate = gate
	d, sub := start(t, f, Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.Boot(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	next(t, sub, api.EventProgress) // the boot is in the VM's hands
	close(gate)
	if _, err := d.WaitBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.bootCount() != 1 {
		t.Fatalf("%d boots for boot pressed 8 times", f.bootCount())
	}
}

func TestBootAtStartAndAdoptRunningVM(t *testing.T) {
	f := newFakeVM()
	d, sub := start(t, f, Options{BootAtStart: true})
	phases(t, sub, api.Online)
	pid := d.Status().Pid

	// A second daemon (the first "crashed") finds the VM online and does not
	// boot it again.
	d2, sub2 := start(t, f, Options{BootAtStart: true})
	if e := next(t, sub2, api.EventState); e.Phase != api.Online {
		t.Fatalf("adopted phase %s", e.Phase)
	}
	if st := d2.Status(); st.Pid != pid || f.bootCount() != 1 || st.Phase != api.Online {
		t.Fatalf("adopted %+v after %d boots", st, f.bootCount())
	}
}

func TestHalfBootedVMIsReportedAndRebooted(t *testing.T) {
	f := newFakeVM()
	f.running, f.pid = true, 999 // running, never announced itself
	_, sub := start(t, f, Options{BootAtStart: true})
	e := next(t, sub, api.EventState)
	if e.Phase != api.Failed || e.Reason == "" {
		t.Fatalf("first event %+v", e)
	}
	phases(t, sub, api.Online)
	if st := f.Status(); st.Pid == 999 {
		t.Fatal("the half-booted VM was kept")
	}
}

func TestUnexpectedExitRestartsWithBackoff(t *testing.T) {
	f := newFakeVM()
	d, sub := start(t, f, Options{BootAtStart: true, Restart: true, RestartMaxAttempts: 3})
	phases(t, sub, api.Online)
	f.die() // QEMU killed from outside
	e := next(t, sub, api.EventState)
	if e.Phase != api.Failed || e.Reason == "" || e.Hostname != "fake-vm" {
		t.Fatalf("after the VM died: %+v", e)
	}
	if r := next(t, sub, api.EventRestart); r.Message == "" {
		t.Fatalf("restart event %+v", r)
	}
	if got := phases(t, sub, api.Online); !eq(got, []api.Phase{api.Booting, api.Online}) {
		t.Fatalf("restart: %v", got)
	}
	if st := d.Status(); st.Restarts != 1 || f.bootCount() != 2 {
		t.Fatalf("after one restart: %+v, %d boots", st, f.bootCount())
	}
}

func TestRestartGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFakeVM()
	d, sub := start(t, f, Options{BootAtStart: true, Restart: true, RestartMaxAttempts: 2})
	phases(t, sub, api.Online)
	f.mu.Lock()
	f.bootErr = errors.New("the guest panicked")
	f.mu.Unlock()
	f.die()
	for {
		e := next(t, sub, api.EventError)
		if e.Reason != "" && e.Phase == api.Failed && d.Status().Restarts == 2 && e.Reason[:8] == "gave up " {
			break
		}
	}
	if f.bootCount() != 3 {
		t.Fatalf("%d boots: want the first and two restarts", f.bootCount())
	}
	// Halting a failed, stopped VM acknowledges the failure.
	if err := d.Halt(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(); st.Phase != api.Stopped {
		t.Fatalf("after acknowledging: %s", st.Phase)
	}
}

func TestRestartOffOnlyReports(t *testing.T) {
	f := newFakeVM()
	d, sub := start(t, f, Options{BootAtStart: true, Restart: false})
	phases(t, sub, api.Online)
	f.die()
	if e := next(t, sub, api.EventState); e.Phase != api.Failed {
		t.Fatalf("%+v", e)
	}
	// Nothing more happens: the next event is the one this test causes.
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	if e := next(t, sub, api.EventState, api.EventRestart); e.Type != api.EventState || e.Phase != api.Booting {
		t.Fatalf("after a failure with restart off: %+v", e)
	}
	if _, err := d.WaitBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.bootCount() != 2 {
		t.Fatalf("%d boots", f.bootCount())
	}
}

func TestHaltDuringBootKillsIt(t *testing.T) {
	f := newFakeVM()
	f.bootGate = make(chan struct{}) // never opens: the guest hangs
	d, sub := start(t, f, Options{BootAtStart: true})
	next(t, sub, api.EventProgress)
	if err := d.Halt(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := phases(t, sub, api.Stopped); !eq(got, []api.Phase{api.Stopping, api.Stopped}) {
		t.Fatalf("%v", got)
	}
	if _, err := d.WaitBoot(context.Background()); err == nil {
		t.Fatal("WaitBoot succeeded after the boot was halted")
	}
	if f.Status().State != vm.Stopped {
		t.Fatal("VM still running")
	}
}

func TestServiceStopHaltsTheVM(t *testing.T) {
	f := newFakeVM()
	d := New(f, Options{BootAtStart: true, Log: quiet()})
	sub := d.Bus().Subscribe(nil)
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	phases(t, sub, api.Online)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.Status().State != vm.Stopped {
		t.Fatal("the VM outlived the service")
	}
	if got := phases(t, sub, api.Stopped); !eq(got, []api.Phase{api.Stopping, api.Stopped}) {
		t.Fatalf("%v", got)
	}
	if _, err := d.Boot(); !errors.Is(err, ErrClosing) {
		t.Fatalf("boot after shutdown: %v", err)
	}
}

func TestSubscribeStartsWithSnapshot(t *testing.T) {
	f := newFakeVM()
	d, sub := start(t, f, Options{BootAtStart: true})
	phases(t, sub, api.Online)
	s := d.Subscribe()
	defer s.Close()
	e := <-s.C
	if !e.Snapshot || e.Phase != api.Online || e.IP != "10.0.2.15" || e.Name != "fake-vm" {
		t.Fatalf("snapshot %+v", e)
	}
}

func TestBusDropsALaggingSubscriber(t *testing.T) {
	b := NewBus()
	slow := b.Subscribe(nil)
	fast := b.Subscribe(nil)
	for i := range subBuffer + 1 {
		b.Publish(api.Event{Type: api.EventProgress, Message: fmt.Sprint(i)})
		<-fast.C
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != subBuffer || !slow.Lagged() || fast.Lagged() || b.Subscribers() != 1 {
		t.Fatalf("slow got %d, lagged %v/%v, %d subscribers", n, slow.Lagged(), fast.Lagged(), b.Subscribers())
	}
	slow.Close() // after the bus closed it: no panic
}

func TestBusOrder(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(&api.Event{Type: api.EventState})
	for range 10 {
		b.Publish(api.Event{Type: api.EventProgress})
	}
	first := <-s.C
	if !first.Snapshot {
		t.Fatal("no snapshot first")
	}
	for want := uint64(1); want <= 10; want++ {
		if e := <-s.C; e.Seq != want {
			t.Fatalf("seq %d, want %d", e.Seq, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 30 * time.Second}, {60, 30 * time.Second}} {
		if got := Backoff(c.n, time.Second, 30*time.Second); got != c.want {
			t.Errorf("Backoff(%d) = %s, want %s", c.n, got, c.want)
		}
	}
}

func TestConsoleMilestones(t *testing.T) {
	for line, want := range map[string]string{
		"[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists":                      "kernel",
		"Welcome to \x1b[1mDebian GNU/Linux 12 (bookworm)\x1b[0m!":                              "init",
		"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh.service\x1b[0m - OpenBSD Secure":     "sshd",
		"[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mnetwork.target\x1b[0m - Network.": "network",
		`HYPEROS-READY {"v":1}`:                           "ready",
		"[    4.3] systemd[1]: Mounting dev-mqueue.mount": "",
	} {
		if got := consoleMilestone(line); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

func TestAcquireLockTwice(t *testing.T) {
	path := t.TempDir() + "/daemon.lock"
	l, err := AcquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(path); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second lock: %v", err)
	}
	l.Release()
	l2, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

func TestFailureSurvivesServiceRestart(t *testing.T) {
	f := newFakeVM()
	state := filepath.Join(t.TempDir(), "daemon.json")
	d := New(f, Options{BootAtStart: true, Restart: false, StateFile: state, Log: quiet()})
	sub := d.Bus().Subscribe(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	phases(t, sub, api.Online)
	f.die()
	failed := next(t, sub, api.EventState)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sub.Close()

	d2, sub2 := start(t, f, Options{BootAtStart: false, StateFile: state})
	e := next(t, sub2, api.EventState)
	if e.Phase != api.Failed || e.Reason != failed.Reason {
		t.Fatalf("after the service restarted: %+v, want the failure %q", e, failed.Reason)
	}
	if st := d2.Status(); st.Phase != api.Failed {
		t.Fatalf("status %+v", st)
	}
}

func TestRestartHaltsThenBoots(t *testing.T) {
	f := newFakeVM()
	d, sub := start(t, f, Options{BootAtStart: true})
	phases(t, sub, api.Online)
	if _, err := d.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WaitBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := phases(t, sub, api.Online); !eq(got, []api.Phase{api.Stopping, api.Stopped, api.Booting, api.Online}) {
		t.Fatalf("restart: %v", got)
	}
	if f.bootCount() != 2 {
		t.Fatalf("%d boots", f.bootCount())
	}
}
