// Package daemon is the HyperOS background service's core: one state machine
// that owns the VM's lifecycle (stopped → booting → online → stopping → stopped,
// and failed from any phase), a supervisor that notices a VM dying and restarts
// it with backoff, and the event bus that the local API streams to the CLI and
// the tray. Everything that changes the VM goes through here, so a terminal and
// the tray never fight over it.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/vm"
)

// VM is what the daemon needs of a machine; *machine.Machine implements it, and
// unit tests drive the state machine with an in-memory one.
type VM interface {
	Boot(ctx context.Context, progress func(string)) (machine.Status, error)
	Status() machine.Status
	Halt(ctx context.Context) error
	Kill() error
	// Wait returns when the hypervisor has exited.
	Wait(ctx context.Context) error
}

var _ VM = (*machine.Machine)(nil)

// Options tune the daemon; OptionsFrom fills them from the settings file.
type Options struct {
	BootAtStart bool
	// Restart restarts a VM that exits unexpectedly; off, the failure is only
	// reported.
	Restart            bool
	RestartMinDelay    time.Duration
	RestartMaxDelay    time.Duration
	RestartMaxAttempts int
	// StableAfter is how long a VM must stay online for the restart backoff to
	// start again from RestartMinDelay.
	StableAfter time.Duration
	BootTimeout time.Duration
	// HaltTimeout bounds the graceful shutdown when the service stops; the VM
	// is killed after it.
	HaltTimeout time.Duration
	// ConsoleLog is followed for boot milestones and address changes ("" for
	// none).
	ConsoleLog string
	Version    string
	LogFile    string
	Log        *slog.Logger
	// StateFile, when set, keeps the phase, the failure reason and the restart
	// count across service restarts, so that a failure reported before a
	// crash of the service is still reported after it.
	StateFile string
	// ContainerEvents opens the guest's container event stream, which the
	// daemon relays onto the bus while the VM is online. Nil uses the VM's
	// SSH connection when it has one (*machine.Machine does).
	ContainerEvents ContainerStream
	// GuestCommand runs container actions in the guest; nil uses the VM's
	// SSH connection when it has one.
	GuestCommand GuestCommand
}

// saved is what StateFile holds.
type saved struct {
	Phase    api.Phase `json:"phase"`
	Reason   string    `json:"reason,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Time     time.Time `json:"time"`
}

// OptionsFrom turns the settings file's daemon section into Options with the
// defaults filled in.
func OptionsFrom(s config.DaemonSettings) Options {
	o := Options{
		BootAtStart:        !s.NoBootAtStart,
		Restart:            s.Restart != "off",
		RestartMaxDelay:    time.Duration(s.RestartMaxDelay),
		RestartMaxAttempts: s.RestartMaxAttempts,
	}
	o.defaults()
	return o
}

func (o *Options) defaults() {
	if o.RestartMinDelay == 0 {
		o.RestartMinDelay = 2 * time.Second
	}
	if o.RestartMaxDelay == 0 {
		o.RestartMaxDelay = 5 * time.Minute
	}
	if o.RestartMaxAttempts == 0 {
		o.RestartMaxAttempts = 5
	}
	if o.StableAfter == 0 {
		o.StableAfter = 10 * time.Minute
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 10 * time.Minute
	}
	if o.HaltTimeout == 0 {
		o.HaltTimeout = 2 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Errors the API maps to its codes.
var (
	// ErrNotRunning: halt or kill with no VM. Its text is the CLI's own.
	ErrNotRunning = machine.ErrNotRunning
	// ErrBusy: the request conflicts with a transition in progress.
	ErrBusy = errors.New("the VM is stopping: try again once it has stopped")
	// ErrClosing: the service is shutting down.
	ErrClosing = errors.New("the HyperOS service is shutting down")
)

// FailedError is a boot or restart that ended in the failed phase.
type FailedError struct{ Reason string }

func (e *FailedError) Error() string { return e.Reason }

// Daemon is the state machine. Its methods are safe for concurrent use.
type Daemon struct {
	vm      VM
	opts    Options
	log     *slog.Logger
	bus     *Bus
	started time.Time

	mu     sync.Mutex
	runCtx context.Context // the service's lifetime; set by Run
	phase  api.Phase
	reason string
	// gen changes on every boot and every stop, so that a goroutine of an
	// earlier boot (a watcher, a late boot result) finds out it is stale.
	gen           uint64
	bootCancel    context.CancelFunc
	bootDone      chan struct{} // closed when the current boot attempt ends
	stopDone      chan struct{} // closed when the current stop ends
	stopErr       error
	attempts      int // automatic restarts in a row
	nextRestart   time.Time
	restartCancel chan struct{}
	onlineSince   time.Time
	name          string
	ips           []string // the latest announced addresses, while online
	hostname      string
	seen          map[string]bool // console milestones published for this boot
	ready         chan struct{}   // closed once Run has taken the first look
	closing       bool            // the service is shutting down: no more boots
	containers    []api.Container // from the guest's events, while online
	relayCancel   context.CancelFunc
	wg            sync.WaitGroup
}

// New returns a daemon for v. Run starts it; the other methods wait until Run
// has taken its first look at the VM, so that no caller acts on a guess.
func New(v VM, o Options) *Daemon {
	o.defaults()
	if o.ContainerEvents == nil {
		if dv, ok := v.(sshDialer); ok {
			o.ContainerEvents = SSHContainerStream(dv.Dial)
		}
	}
	if o.GuestCommand == nil {
		if dv, ok := v.(sshDialer); ok {
			o.GuestCommand = SSHGuestCommand(dv.Dial)
		}
	}
	return &Daemon{vm: v, opts: o, log: o.Log, bus: NewBus(), phase: api.Stopped, started: time.Now(), ready: make(chan struct{}), name: v.Status().Name}
}

// Bus is the daemon's event bus.
func (d *Daemon) Bus() *Bus { return d.bus }

// Run takes over the VM (adopting one that is already online, so a restarted
// service loses nothing), boots it when configured, and serves until ctx ends.
// Then it shuts the VM down gracefully, waits for it, and returns.
func (d *Daemon) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.mu.Lock()
	d.runCtx = runCtx
	st := d.vm.Status()
	switch {
	case st.State == vm.Running && st.Hostname != "":
		d.gen++
		d.goOnline(st, "found the VM running")
	case st.State == vm.Running:
		d.setFailed(fmt.Sprintf("found a VM (pid %d) that never came online: the service may have stopped during its boot", st.Pid))
		if d.opts.BootAtStart {
			d.log.Info("killing the half-booted VM to boot it again", "pid", st.Pid)
			if err := d.vm.Kill(); err != nil && !errors.Is(err, machine.ErrNotRunning) && !errors.Is(err, vm.ErrNotRunning) {
				d.log.Warn("kill the half-booted VM", "err", err)
			}
			d.startBoot(false, "booting at service start")
		}
	default:
		if sv, ok := d.loadSaved(); ok && sv.Phase == api.Failed {
			// The VM failed before this service started; say so rather than
			// "stopped", until someone boots or halts it.
			d.attempts = sv.Attempts
			d.setFailed(sv.Reason)
		} else {
			d.setPhase(api.Stopped, "", "service started")
		}
		if d.opts.BootAtStart {
			d.startBoot(false, "booting at service start")
		}
	}
	close(d.ready)
	d.mu.Unlock()

	<-ctx.Done()
	d.log.Info("service stopping: shutting the VM down")
	d.mu.Lock()
	d.closing = true
	d.cancelRestartLocked()
	// A failure with no VM left stays on record for the next start.
	idle := d.phase == api.Failed && d.vm.Status().State != vm.Running
	d.mu.Unlock()
	if idle {
		cancel()
		d.wg.Wait()
		return nil
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), d.opts.HaltTimeout)
	defer stopCancel()
	err := d.stop(stopCtx, false, "service stopping")
	if errors.Is(err, ErrNotRunning) {
		err = nil
	}
	if err != nil {
		d.log.Warn("graceful shutdown failed; killing the VM", "err", err)
		err = d.stop(context.Background(), true, "service stopping")
		if errors.Is(err, ErrNotRunning) {
			err = nil
		}
	}
	cancel()
	d.wg.Wait()
	return err
}

// Status is the VM's status and the daemon's phase.
func (d *Daemon) Status() api.Status {
	<-d.ready
	ms := d.vm.Status()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := api.Status{
		Name: ms.Name, State: string(ms.State), Pid: ms.Pid, Hostname: ms.Hostname, IPs: ms.IPs, SSH: ms.SSH,
		Driver: ms.Driver, Accel: ms.Accel, BootedAt: ms.BootedAt, HostKeys: ms.HostKeys, Console: ms.Console,
		Phase: d.phase, Reason: d.reason, Restarts: d.attempts, NextRestart: d.nextRestart,
		Daemon: api.Daemon{Pid: os.Getpid(), Version: d.opts.Version, StartedAt: d.started, Log: d.opts.LogFile},
	}
	if d.phase == api.Online && len(d.ips) > 0 {
		st.IPs = d.ips
	}
	st.Containers = append([]api.Container{}, d.containers...)
	return st
}

// Subscribe streams events, starting with the current state.
func (d *Daemon) Subscribe() *Sub {
	<-d.ready
	d.mu.Lock()
	defer d.mu.Unlock()
	first := d.eventLocked(api.EventState)
	return d.bus.Subscribe(&first)
}

// Boot starts the VM unless it is booting or online already (pressing boot twice
// joins the boot in progress). It returns at once; WaitBoot waits for the end.
func (d *Daemon) Boot() (api.Status, error) {
	<-d.ready
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return d.Status(), ErrClosing
	}
	switch d.phase {
	case api.Stopping:
		d.mu.Unlock()
		return d.Status(), ErrBusy
	case api.Stopped, api.Failed:
		d.cancelRestartLocked()
		d.attempts = 0
		if st := d.vm.Status(); st.State == vm.Running {
			// A VM that failed mid-boot or a stale hypervisor: start clean.
			d.vm.Kill()
		}
		d.startBoot(false, "boot requested")
	}
	d.mu.Unlock()
	return d.Status(), nil
}

// WaitBoot waits until the boot in progress, if any, has ended and returns the
// status; an error when the VM is not online then.
func (d *Daemon) WaitBoot(ctx context.Context) (api.Status, error) {
	<-d.ready
	d.mu.Lock()
	done := d.bootDone
	d.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return d.Status(), ctx.Err()
		}
	}
	st := d.Status()
	switch st.Phase {
	case api.Online:
		return st, nil
	case api.Failed:
		return st, &FailedError{Reason: st.Reason}
	default:
		return st, fmt.Errorf("the VM is %s", st.Phase)
	}
}

// Halt shuts the VM down gracefully and waits until it has stopped. A VM still
// booting is killed: its guest may not handle the power button yet.
func (d *Daemon) Halt(ctx context.Context) error { return d.stop(ctx, false, "halt requested") }

// Kill ends the VM at once.
func (d *Daemon) Kill(ctx context.Context) error { return d.stop(ctx, true, "kill requested") }

// Restart halts the VM when it runs, then boots it.
func (d *Daemon) Restart(ctx context.Context) (api.Status, error) {
	if err := d.stop(ctx, false, "restart requested"); err != nil && !errors.Is(err, ErrNotRunning) {
		return d.Status(), err
	}
	return d.Boot()
}

// stop brings the VM to the stopped phase, gracefully or not.
func (d *Daemon) stop(ctx context.Context, kill bool, why string) error {
	<-d.ready
	d.mu.Lock()
	d.cancelRestartLocked()
	running := d.vm.Status().State == vm.Running
	switch d.phase {
	case api.Stopped:
		if !running {
			d.mu.Unlock()
			return ErrNotRunning
		}
	case api.Failed:
		if !running {
			// Acknowledged: the failure is over.
			d.setPhase(api.Stopped, "", why)
			d.mu.Unlock()
			return nil
		}
	case api.Stopping:
		if !kill {
			done := d.stopDone
			d.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return ctx.Err()
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.stopErr
		}
	}
	if d.phase == api.Booting {
		kill = true
	}
	d.gen++
	gen := d.gen
	bootCancel, bootDone := d.bootCancel, d.bootDone
	d.bootCancel = nil
	if d.phase != api.Stopping {
		d.stopDone = make(chan struct{})
		d.setPhase(api.Stopping, "", why)
	}
	stopDone := d.stopDone
	d.mu.Unlock()

	if bootCancel != nil {
		bootCancel()
		select {
		case <-bootDone:
		case <-ctx.Done():
		}
	}
	var err error
	if kill {
		err = d.vm.Kill()
	} else {
		err = d.vm.Halt(ctx)
	}
	if errors.Is(err, machine.ErrNotRunning) || errors.Is(err, vm.ErrNotRunning) {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("stop the VM: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen == gen {
		if err != nil {
			d.setFailed(err.Error())
		} else {
			d.setPhase(api.Stopped, "", why)
		}
		d.stopErr = err
		close(stopDone)
	}
	return err
}

// startBoot begins a boot attempt; d.mu is held. auto marks an automatic
// restart, whose failure schedules the next one.
func (d *Daemon) startBoot(auto bool, why string) {
	d.gen++
	gen := d.gen
	ctx, cancel := context.WithTimeout(d.runCtx, d.opts.BootTimeout)
	done := make(chan struct{})
	d.bootCancel, d.bootDone = cancel, done
	d.ips, d.hostname = nil, ""
	d.seen = map[string]bool{}
	// QEMU truncates the console log when it starts; removing it first keeps
	// the follower from reporting the previous boot's milestones.
	if d.opts.ConsoleLog != "" {
		if err := os.Remove(d.opts.ConsoleLog); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("remove the old console log", "err", err)
		}
	}
	d.setPhase(api.Booting, "", why)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.followConsole(gen)
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(done)
		defer cancel()
		st, err := d.vm.Boot(ctx, func(msg string) { d.progress(gen, msg) })
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen != gen {
			return // halted, killed or replaced meanwhile; the stopper set the phase
		}
		d.bootCancel = nil
		if err != nil {
			d.log.Error("boot failed", "err", err)
			d.gen++
			d.setFailed(err.Error())
			if auto {
				d.scheduleRestart()
			}
			return
		}
		// The follower polls; make sure the last milestone precedes online.
		d.milestoneLocked("ready")
		d.goOnline(st, "online")
	}()
}

// goOnline enters the online phase and starts the watcher that notices the VM
// dying; d.mu is held.
func (d *Daemon) goOnline(st machine.Status, why string) {
	gen := d.gen
	d.onlineSince = time.Now()
	d.ips, d.hostname = st.IPs, st.Hostname
	d.setPhase(api.Online, "", why)
	if open := d.opts.ContainerEvents; open != nil {
		ctx, cancel := context.WithCancel(d.runCtx)
		d.relayCancel = cancel
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.relayContainers(ctx, gen, open)
		}()
	}
	e := d.eventLocked(api.EventLease)
	e.Message = "found"
	d.bus.Publish(e)
	d.log.Info("VM online", "name", st.Name, "hostname", st.Hostname, "ip", st.IP(), "pid", st.Pid)
	if d.opts.ConsoleLog != "" && why != "online" {
		// Adopted after a service restart: follow the console for later
		// address changes too.
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.followConsole(gen)
		}()
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.watch(gen)
	}()
}

// watch waits for the hypervisor of generation gen to exit. An exit nobody asked
// for is a failure, and the VM is restarted when the policy says so.
func (d *Daemon) watch(gen uint64) {
	err := d.vm.Wait(d.runCtx)
	if d.runCtx.Err() != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return
	}
	d.gen++
	reason := "the VM exited unexpectedly"
	if err != nil {
		reason = fmt.Sprintf("lost track of the VM: %v", err)
	}
	if c := d.vm.Status().Console; c != "" {
		reason += " (see " + c + ")"
	}
	d.log.Error(reason)
	if time.Since(d.onlineSince) >= d.opts.StableAfter {
		d.attempts = 0
	}
	d.setFailed(reason)
	d.scheduleRestart()
}

// scheduleRestart arms the next automatic restart with exponential backoff;
// d.mu is held.
func (d *Daemon) scheduleRestart() {
	if !d.opts.Restart {
		return
	}
	if d.attempts >= d.opts.RestartMaxAttempts {
		e := d.eventLocked(api.EventError)
		e.Reason = fmt.Sprintf("gave up after %d restarts in a row; boot it again by hand", d.attempts)
		d.bus.Publish(e)
		d.log.Error(e.Reason)
		return
	}
	d.attempts++
	delay := Backoff(d.attempts, d.opts.RestartMinDelay, d.opts.RestartMaxDelay)
	d.nextRestart = time.Now().Add(delay)
	cancel := make(chan struct{})
	d.restartCancel = cancel
	e := d.eventLocked(api.EventRestart)
	e.Message = fmt.Sprintf("restarting in %s (attempt %d of %d)", delay, d.attempts, d.opts.RestartMaxAttempts)
	d.bus.Publish(e)
	d.log.Info(e.Message)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-cancel:
			return
		case <-d.runCtx.Done():
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.restartCancel != cancel || d.closing {
			return
		}
		d.restartCancel, d.nextRestart = nil, time.Time{}
		if st := d.vm.Status(); st.State == vm.Running {
			d.vm.Kill()
		}
		d.startBoot(true, fmt.Sprintf("automatic restart %d", d.attempts))
	}()
}

func (d *Daemon) cancelRestartLocked() {
	if d.restartCancel != nil {
		close(d.restartCancel)
		d.restartCancel, d.nextRestart = nil, time.Time{}
	}
}

// Backoff is the delay before restart attempt n (1-based): min doubled each
// time, capped at max.
func Backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return minDuration(d, max)
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func (d *Daemon) progress(gen uint64, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return
	}
	e := d.eventLocked(api.EventProgress)
	e.Message = msg
	d.bus.Publish(e)
}

// setPhase changes the phase and publishes it; d.mu is held.
func (d *Daemon) setPhase(p api.Phase, reason, why string) {
	d.phase, d.reason = p, reason
	if p != api.Online {
		d.onlineSince = time.Time{}
		// Containers live in the VM: they are gone, or out of sight, with it.
		d.containers = nil
		if d.relayCancel != nil {
			d.relayCancel()
			d.relayCancel = nil
		}
	}
	e := d.eventLocked(api.EventState)
	e.Message = why
	d.bus.Publish(e)
	d.log.Info("phase", "phase", p, "reason", reason, "why", why)
	d.save()
}

// save writes the phase to StateFile; d.mu is held.
func (d *Daemon) save() {
	if d.opts.StateFile == "" {
		return
	}
	b, _ := json.Marshal(saved{Phase: d.phase, Reason: d.reason, Attempts: d.attempts, Time: time.Now()})
	if err := config.WriteFileAtomic(d.opts.StateFile, append(b, '\n'), 0o600); err != nil {
		d.log.Warn("save the service state", "err", err)
	}
}

func (d *Daemon) loadSaved() (saved, bool) {
	var sv saved
	if d.opts.StateFile == "" {
		return sv, false
	}
	b, err := os.ReadFile(d.opts.StateFile)
	if err != nil {
		return sv, false
	}
	if err := json.Unmarshal(b, &sv); err != nil {
		d.log.Warn("ignoring a damaged service state file", "path", d.opts.StateFile, "err", err)
		return sv, false
	}
	return sv, true
}

func (d *Daemon) setFailed(reason string) {
	d.setPhase(api.Failed, reason, "")
	e := d.eventLocked(api.EventError)
	d.bus.Publish(e)
}

// eventLocked is an event of type t carrying the current state; d.mu is held.
func (d *Daemon) eventLocked(t api.EventType) api.Event {
	e := api.Event{Type: t, Phase: d.phase, Name: d.name, Reason: d.reason, Hostname: d.hostname}
	if len(d.ips) > 0 {
		e.IP = d.ips[0]
	}
	e.Containers = slices.Clone(d.containers)
	return e
}
