package vfkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// StateChange is a state vfkit's REST API can be asked to move the VM to.
type StateChange string

const (
	// Stop asks the guest to power off (ACPI-like request).
	Stop StateChange = "Stop"
	// HardStop ends the VM at once.
	HardStop StateChange = "HardStop"
	Pause    StateChange = "Pause"
	Resume   StateChange = "Resume"
)

// VMState is vfkit's answer to GET /vm/state. State is Virtualization.framework's
// state name, e.g. "VirtualMachineStateRunning".
type VMState struct {
	State       string `json:"state"`
	CanStart    bool   `json:"canStart"`
	CanPause    bool   `json:"canPause"`
	CanResume   bool   `json:"canResume"`
	CanStop     bool   `json:"canStop"`
	CanHardStop bool   `json:"canHardStop"`
}

// Running reports whether the VM runs (not paused, starting or stopping).
func (s VMState) Running() bool {
	return s.State == "VirtualMachineStateRunning"
}

// Stopped reports whether the VM is gone: stopped or failed.
func (s VMState) Stopped() bool {
	return s.State == "VirtualMachineStateStopped" || s.State == "VirtualMachineStateError"
}

// restClient talks HTTP to vfkit's --restful-uri unix socket.
type restClient struct {
	sock string
	http *http.Client
}

func newRESTClient(sock string) *restClient {
	return &restClient{sock: sock, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}}
}

// The host part is ignored: every request goes to the socket.
const restBase = "http://vfkit"

// State asks for the VM's state.
func (c *restClient) State(ctx context.Context) (VMState, error) {
	var st VMState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, restBase+"/vm/state", nil)
	if err != nil {
		return st, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("vfkit REST %s: %w", c.sock, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return st, fmt.Errorf("vfkit REST state: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("vfkit REST state: %s: %s", resp.Status, restError(body))
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("vfkit REST state: %w", err)
	}
	if st.State == "" {
		return st, fmt.Errorf("vfkit REST state: no state in %q", body)
	}
	return st, nil
}

// SetState asks vfkit to change the VM's state; vfkit answers 202 Accepted.
func (c *restClient) SetState(ctx context.Context, to StateChange) error {
	b, err := json.Marshal(map[string]string{"state": string(to)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, restBase+"/vm/state", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("vfkit REST %s: %w", c.sock, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("vfkit REST %s: %s: %s", to, resp.Status, restError(body))
	}
	return nil
}

// restError extracts vfkit's {"error": "..."} message, or the raw body.
func restError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}
