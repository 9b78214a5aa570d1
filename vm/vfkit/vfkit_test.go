package vfkit

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/vm"
)

// vfkit cannot run off macOS, so these tests check what the driver hands it
// (argv) and how it talks to it (REST) against vfkit's documented flags and API:
// they are named _NoMac because nothing here starts a real vfkit.

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr5RrzIhBpLrvVpkIgFVjuC0OqcNU3wF2Lvd4Kz1a4E test@hyperos"

func testSpec(t *testing.T) vm.Spec {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	initrd := filepath.Join(dir, "initrd.img")
	for _, p := range []string{kernel, initrd} {
		if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	line, err := vm.BuildCmdline(Console, "hyperos", testKey)
	if err != nil {
		t.Fatal(err)
	}
	return vm.Spec{
		Name: "hyperos", Arch: "amd64", Kernel: kernel, Initrd: initrd, Cmdline: line,
		MemoryMB: 2048, CPUs: 2, DataDisk: filepath.Join(dir, "data.img"), Dir: filepath.Join(dir, "vm"),
	}
}

// documented lists vfkit's flags (pkg/cmdline/cmdline.go) and, for --device, the
// options of each device kind this driver uses (doc/usage.md, pkg/config/virtio.go).
var documented = map[string][]string{
	"--cpus": nil, "--memory": nil, "--kernel": nil, "--initrd": nil, "--kernel-cmdline": nil,
	"--restful-uri": nil, "--pidfile": nil,
	"--device": nil,
}
var deviceOptions = map[string][]string{
	"virtio-net":    {"nat", "mac"},
	"virtio-serial": {"logFilePath"},
	"virtio-blk":    {"path", "deviceId"},
	"virtio-rng":    {},
}

// TestArgs_NoMac pins the argument list. This exact list was also fed once, by
// hand, to vfkit's own parser (pkg/cmdline and pkg/config of crc-org/vfkit
// b2bc27e5, built on Linux; the module cannot be a dependency, the Go proxy
// refuses it): it accepted every flag and device and kept the command line
// verbatim, quotes included, while the --bootloader linux,cmdline="…" form
// dropped sshkey's closing quote.
func TestArgs_NoMac(t *testing.T) {
	spec := testSpec(t)
	d := New(spec)
	args, err := d.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--cpus", "2",
		"--memory", "2048",
		"--kernel", spec.Kernel,
		"--initrd", spec.Initrd,
		"--kernel-cmdline", spec.Cmdline,
		"--device", "virtio-net,nat,mac=" + vm.MACFor("hyperos"),
		"--device", "virtio-serial,logFilePath=" + spec.ConsoleLog(),
		"--device", "virtio-blk,path=" + spec.DataDisk + ",deviceId=hyperos-data",
		"--device", "virtio-rng",
		"--restful-uri", "unix://" + filepath.Join(spec.Dir, "vfkit.sock"),
		"--pidfile", spec.PidFile(),
	}
	if !slices.Equal(args, want) {
		t.Fatalf("args\n%q\nwant\n%q", args, want)
	}
	// The command line is one argv element with sshkey's quotes intact.
	i := slices.Index(args, "--kernel-cmdline")
	if !strings.HasSuffix(args[i+1], `sshkey="`+testKey+`"`) || !strings.HasPrefix(args[i+1], "console=hvc0 ") {
		t.Fatalf("cmdline %q", args[i+1])
	}
	// Every flag and device option is one vfkit documents, flags come in
	// flag/value pairs (except none here), and no value is empty.
	for i := 0; i < len(args); i += 2 {
		if _, ok := documented[args[i]]; !ok {
			t.Fatalf("undocumented flag %q", args[i])
		}
		if i+1 >= len(args) || args[i+1] == "" {
			t.Fatalf("flag %s has no value", args[i])
		}
		if args[i] != "--device" {
			continue
		}
		parts := strings.Split(args[i+1], ",")
		opts, ok := deviceOptions[parts[0]]
		if !ok {
			t.Fatalf("unknown device %q", parts[0])
		}
		for _, p := range parts[1:] {
			k, _, _ := strings.Cut(p, "=")
			if !slices.Contains(opts, k) {
				t.Fatalf("device %s: undocumented option %q", parts[0], k)
			}
		}
	}
	if _, ok := vmMAC(t, args); !ok {
		t.Fatal("no mac")
	}

	// No data disk, a fixed MAC, and a relative directory made absolute.
	spec.DataDisk = ""
	spec.Net.MAC = "02:00:00:00:00:07"
	spec.Dir = "rel/vm"
	args, err = New(spec).Args()
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "virtio-blk") }) {
		t.Fatalf("data disk without one: %q", args)
	}
	if mac, _ := vmMAC(t, args); mac != "02:00:00:00:00:07" {
		t.Fatalf("mac %q", mac)
	}
	i = slices.Index(args, "--pidfile")
	if !filepath.IsAbs(args[i+1]) {
		t.Fatalf("relative pid file %q", args[i+1])
	}
}

// TestRestURI_NoMac parses the --restful-uri value back the way vfkit does
// (url.ParseRequestURI, then the path), for directories that need escaping.
func TestRestURI_NoMac(t *testing.T) {
	for _, dir := range []string{
		"/Users/me/Library/Application Support/hyperos/vms/default",
		"/tmp/100%/a?b#c",
		"/tmp/plain",
	} {
		spec := testSpec(t)
		spec.Dir = dir
		args, err := New(spec).Args()
		if err != nil {
			t.Fatal(err)
		}
		raw := args[slices.Index(args, "--restful-uri")+1]
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if u.Scheme != "unix" || u.Host != "" || u.Path != filepath.Join(dir, "vfkit.sock") {
			t.Fatalf("%s parses as scheme %q host %q path %q", raw, u.Scheme, u.Host, u.Path)
		}
	}
}

func vmMAC(t *testing.T, args []string) (string, bool) {
	for _, a := range args {
		if m, ok := strings.CutPrefix(a, "virtio-net,nat,mac="); ok {
			return m, true
		}
	}
	return "", false
}

func TestArgsRefused_NoMac(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*vm.Spec)
		want string
	}{
		{"serial console", func(s *vm.Spec) { s.Cmdline = strings.Replace(s.Cmdline, "console=hvc0", "console=ttyS0", 1) }, "console=hvc0"},
		{"no console", func(s *vm.Spec) { s.Cmdline = strings.Replace(s.Cmdline, "console=hvc0 ", "", 1) }, "console=hvc0"},
		{"bridge", func(s *vm.Spec) { s.Net.Mode = "bridge" }, "NAT only"},
		{"comma in disk", func(s *vm.Spec) { s.DataDisk = filepath.Join(filepath.Dir(s.DataDisk), "a,b.img") }, "comma"},
		{"comma in dir", func(s *vm.Spec) { s.Dir = filepath.Join(s.Dir, "a,b") }, "comma"},
		{"long socket path", func(s *vm.Spec) {
			s.Dir = "/Users/someone/Library/Application Support/hyperos/" + strings.Repeat("x", 60)
		}, "103"},
	} {
		spec := testSpec(t)
		c.edit(&spec)
		_, err := New(spec).Args()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	// The limit itself: 103 bytes pass, 104 do not.
	if err := checkSocketPath("/" + strings.Repeat("s", 102)); err != nil {
		t.Fatal(err)
	}
	if err := checkSocketPath("/" + strings.Repeat("s", 103)); err == nil {
		t.Fatal("accepted a 104-byte socket path")
	}
}

func TestCheckKernel_NoMac(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	image := make([]byte, 4096) // the arm64 Image header: magic at 0x38
	copy(image[0x38:], "ARM\x64")
	gz := append([]byte{0x1f, 0x8b, 8, 0}, make([]byte, 100)...)
	zboot := append([]byte("MZ\x00\x00zimg"), make([]byte, 100)...)
	cases := []struct {
		path, arch, want string
	}{
		{write("Image", image), "arm64", ""},
		{write("vmlinuz.gz", gz), "arm64", "gzip"},
		{write("vmlinuz.efi", zboot), "arm64", "zboot"},
		{write("short", []byte("ARM")), "arm64", "too short"},
		{write("other", make([]byte, 4096)), "arm64", "ARM\\x64"},
		{filepath.Join(dir, "missing"), "arm64", "no such file"},
		{write("bzImage", gz), "amd64", ""}, // x86 kernels are booted as they are
	}
	for _, c := range cases {
		err := CheckKernel(c.path, c.arch)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.path, err, c.want)
		}
	}
}

func TestPreflight_NoMac(t *testing.T) {
	defer func(a string) { hostArch = a }(hostArch)
	spec := testSpec(t)
	if err := os.WriteFile(spec.DataDisk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	hostArch = "arm64"
	if err := New(spec).preflight(); err == nil || !strings.Contains(err.Error(), "architecture") {
		t.Fatalf("amd64 guest on arm64: %v", err)
	}
	spec.Arch = "arm64"
	if err := New(spec).preflight(); err == nil || !strings.Contains(err.Error(), "uncompressed") {
		t.Fatalf("compressed arm64 kernel: %v", err)
	}
	image := make([]byte, 4096)
	copy(image[0x38:], "ARM\x64")
	if err := os.WriteFile(spec.Kernel, image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := New(spec).preflight(); err != nil {
		t.Fatal(err)
	}
	os.Remove(spec.DataDisk)
	if err := New(spec).preflight(); err == nil || !strings.Contains(err.Error(), "CreateDisk") {
		t.Fatalf("missing data disk: %v", err)
	}
}

func TestOffMac_NoMac(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("this is the behaviour off macOS")
	}
	spec := testSpec(t)
	d := New(spec)
	err := d.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "only on macOS") {
		t.Fatalf("Start: %v", err)
	}
	if err := d.Stop(context.Background()); !errors.Is(err, vm.ErrNotRunning) {
		t.Fatalf("Stop: %v", err)
	}
	if st, err := d.State(); err != nil || st != vm.Stopped {
		t.Fatalf("State: %v %v", st, err)
	}
}

// fakeVfkit serves vfkit's REST API (pkg/rest: GET and POST /vm/state, gin's
// JSON binding, 202 on success, {"error": …} otherwise) on a unix socket.
type fakeVfkit struct {
	mu      sync.Mutex
	state   string
	changes []string
}

func (f *fakeVfkit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/vm/state" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch r.Method {
	case http.MethodGet:
		json.NewEncoder(w).Encode(map[string]any{
			"state": f.state, "canStart": false, "canPause": true, "canResume": false, "canStop": true, "canHardStop": true,
		})
	case http.MethodPost:
		var s struct {
			State string `json:"state"`
		}
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		switch s.State {
		case "Stop", "HardStop":
			f.changes = append(f.changes, s.State)
			f.state = "VirtualMachineStateStopped"
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid new VMState: " + s.State})
		}
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func TestREST_NoMac(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vfkit.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeVfkit{state: "VirtualMachineStateRunning"}
	srv := httptest.NewUnstartedServer(fake)
	srv.Listener = l
	srv.Start()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newRESTClient(sock)
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running() || st.Stopped() || !st.CanStop || !st.CanHardStop || !st.CanPause || st.CanStart {
		t.Fatalf("state %+v", st)
	}
	if err := c.SetState(ctx, Stop); err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx); err != nil || !st.Stopped() {
		t.Fatalf("after stop: %+v %v", st, err)
	}
	if err := c.SetState(ctx, HardStop); err != nil {
		t.Fatal(err)
	}
	err = c.SetState(ctx, "Explode")
	if err == nil || !strings.Contains(err.Error(), "invalid new VMState: Explode") || !strings.Contains(err.Error(), "500") {
		t.Fatalf("bad change: %v", err)
	}
	fake.mu.Lock()
	changes := slices.Clone(fake.changes)
	fake.mu.Unlock()
	if !slices.Equal(changes, []string{"Stop", "HardStop"}) {
		t.Fatalf("changes %q", changes)
	}

	// Error states read as stopped; no vfkit at all is an error naming the socket.
	fake.mu.Lock()
	fake.state = "VirtualMachineStateError"
	fake.mu.Unlock()
	if st, err := c.State(ctx); err != nil || !st.Stopped() {
		t.Fatalf("error state: %+v %v", st, err)
	}
	gone := newRESTClient(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := gone.State(ctx); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("no socket: %v", err)
	}
}
