// Package api is the wire format of the local API between the HyperOS service
// and its clients (the CLI and the tray): paths, the status, the events. It
// imports nothing of the VM, so that the tray can depend on it without pulling
// in the hypervisor code.
package api

import "time"

// Host is the only Host header the service accepts. Requests come over a unix
// socket or a named pipe, never over TCP, so a browser can only produce another
// Host (through DNS rebinding to a TCP port, for instance); refusing those keeps
// a web page from driving the VM.
const Host = "local-hyperos.sock"

// Paths of the local API, versioned so that an older tray keeps working with a
// newer service.
const (
	PathStatus   = "/v1/status"
	PathEvents   = "/v1/events"
	PathBoot     = "/v1/vm/boot"
	PathHalt     = "/v1/vm/halt"
	PathKill     = "/v1/vm/kill"
	PathRestart  = "/v1/vm/restart"
	PathShutdown = "/v1/daemon/shutdown"
	// PathContainers lists the guest's containers, asking the guest (GET).
	PathContainers = "/v1/containers"
	// PathContainerBoot boots a container (POST a ContainerBoot); the answer
	// streams ContainerProgress lines until the container runs or fails.
	PathContainerBoot = "/v1/containers/boot"
	// PathContainerStop stops the in-guest container named by ?name=.
	PathContainerStop = "/v1/containers/stop"
	// PathContainerRemove stops the container named by ?name= and deletes its
	// cache and overlay.
	PathContainerRemove = "/v1/containers/rm"
)

// Phase is where the VM is in its lifecycle, as the service sees it:
// stopped → booting → online → stopping → stopped, and failed from any phase.
type Phase string

const (
	Stopped  Phase = "stopped"
	Booting  Phase = "booting"
	Online   Phase = "online"
	Stopping Phase = "stopping"
	Failed   Phase = "failed"
)

// Status is what GET /v1/status returns. Its first fields are those of
// `hyperos status --json` without a service, so scripts read both alike.
type Status struct {
	Name     string    `json:"name"`
	State    string    `json:"state"` // the hypervisor process: "running" or "stopped"
	Pid      int       `json:"pid,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	IPs      []string  `json:"ips,omitempty"`
	SSH      string    `json:"ssh,omitempty"`
	Driver   string    `json:"driver,omitempty"`
	Accel    string    `json:"accel,omitempty"`
	BootedAt time.Time `json:"booted_at,omitzero"`
	HostKeys []string  `json:"hostkeys,omitempty"`
	Console  string    `json:"console_log,omitempty"`

	Phase  Phase  `json:"phase"`
	Reason string `json:"reason,omitempty"` // why the phase is failed
	// Restarts counts the automatic restarts since the VM last stayed up.
	Restarts int `json:"restarts,omitempty"`
	// NextRestart is when the next automatic restart is due, when one is.
	NextRestart time.Time `json:"next_restart,omitzero"`
	Daemon      Daemon    `json:"daemon"`
	// Containers are the VM's containers as the guest's event stream last
	// described them; empty while the VM is not online.
	Containers []Container `json:"containers"`
}

// Container is one in-guest container as the service last heard of it. It is
// built from the guest's events, so it is as fresh as the last event: the
// service never polls the guest for it.
type Container struct {
	Name string `json:"name"`
	// State is the guest's last lifecycle event for it: booting, waiting,
	// running, booted, stopped or failed.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Fetched and Size are the bytes of its image fetched so far and in all.
	Fetched     int64     `json:"fetched,omitempty"`
	Size        int64     `json:"size,omitempty"`
	BootSeconds float64   `json:"boot_seconds,omitempty"`
	Time        time.Time `json:"time,omitzero"`

	// The rest is known only when the guest was asked (GET /v1/containers, a
	// boot's answer), not from events.
	Link    string `json:"link,omitempty"`
	Version uint64 `json:"version,omitempty"` // the drive version it booted
	// NewVersion is a newer version of the drive, seen while it runs.
	NewVersion uint64 `json:"new_version,omitempty"`
	Cached     int64  `json:"cached,omitempty"` // bytes of the image held in the VM
	Peers      int    `json:"peers,omitempty"`  // peers connected
}

// ContainerBoot is the body of POST /v1/containers/boot: the arguments of
// `hyperos-guest container boot`, which the service checks with the guest's
// own parser before anything runs.
type ContainerBoot struct {
	Args []string `json:"args"`
}

// ContainerProgress is one line of a container boot's answer: progress
// messages, then one line with the container (it runs) or an error.
type ContainerProgress struct {
	Message   string     `json:"message,omitempty"`
	Container *Container `json:"container,omitempty"`
	Error     *Error     `json:"error,omitempty"`
}

// ContainerEvent is what one EventContainer reports: one line of the guest's
// event log (`hyperos-guest events`).
type ContainerEvent struct {
	Name string `json:"name"`
	// Type is the guest's event: booting, waiting, running, booted, stopped,
	// failed or new-version.
	Type        string    `json:"type"`
	Reason      string    `json:"reason,omitempty"`
	Fetched     int64     `json:"fetched,omitempty"`
	Size        int64     `json:"size,omitempty"`
	BootSeconds float64   `json:"boot_seconds,omitempty"`
	Time        time.Time `json:"time,omitzero"` // the guest's clock
	// Version and NewVersion are the drive version running and the newer one
	// published (new-version events).
	Version    uint64 `json:"version,omitempty"`
	NewVersion uint64 `json:"new_version,omitempty"`
}

// IP is the address to show a user.
func (s Status) IP() string {
	if len(s.IPs) > 0 {
		return s.IPs[0]
	}
	return ""
}

// Daemon describes the service process.
type Daemon struct {
	Pid       int       `json:"pid"`
	Version   string    `json:"version,omitempty"`
	StartedAt time.Time `json:"started_at"`
	Log       string    `json:"log,omitempty"`
}

// EventType says what an Event reports.
type EventType string

const (
	// EventState is a phase change; the first event of every stream is one too
	// (with Snapshot set), so a client needs no separate status call.
	EventState EventType = "state"
	// EventLease is an address found at boot (Message "found") or changed later
	// (Message "changed").
	EventLease EventType = "lease"
	// EventConsole is a boot milestone seen on the VM's console (Milestone).
	EventConsole EventType = "console"
	// EventProgress is a human-readable boot message (Message).
	EventProgress EventType = "progress"
	// EventError is an error the service met (Reason); the phase may not change.
	EventError EventType = "error"
	// EventRestart announces an automatic restart (Message says when).
	EventRestart EventType = "restart"
	// EventContainer relays an event of the guest's containers (Container).
	// One without Container says the list (Containers) was rebuilt from the
	// guest's log after a connection: nothing new happened.
	EventContainer EventType = "container"
	// EventLagged ends a stream whose reader fell too far behind; the client
	// reconnects and gets a fresh snapshot.
	EventLagged EventType = "lagged"
)

// Event is one line of GET /v1/events. Every event carries the phase and the
// VM's identity at the time, so a client can render itself from any one event.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Type      EventType `json:"type"`
	Phase     Phase     `json:"phase"`
	Name      string    `json:"name,omitempty"`
	Hostname  string    `json:"hostname,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Message   string    `json:"message,omitempty"`
	Milestone string    `json:"milestone,omitempty"`
	Snapshot  bool      `json:"snapshot,omitempty"`
	// Container is set on EventContainer events.
	Container *ContainerEvent `json:"container,omitempty"`
	// Containers is the current container list, so that a client renders its
	// container menu from any one event, like the phase.
	Containers []Container `json:"containers,omitempty"`
}

// Error is the body of every response with a status of 400 or more.
type Error struct {
	Error string `json:"error"`
	// Code is a stable word clients branch on: "not_running", "busy",
	// "access_denied", "bad_request", "not_initialized", "failed".
	Code string `json:"code,omitempty"`
}
