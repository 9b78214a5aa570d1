//go:build linux || darwin

package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/vm"
)

// instantVM boots at once; the API's logic is tested over a real socket here,
// and against the real VM in cmd/hyperos's e2e tests.
type instantVM struct {
	mu      sync.Mutex
	running bool
	exited  chan struct{}
	boots   int
}

func (v *instantVM) Boot(ctx context.Context, progress func(string)) (machine.Status, error) {
	v.mu.Lock()
	v.running, v.exited = true, make(chan struct{})
	v.boots++
	v.mu.Unlock()
	progress("booting")
	return v.Status(), nil
}

func (v *instantVM) Status() machine.Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running {
		return machine.Status{Name: "api-test", State: vm.Stopped}
	}
	return machine.Status{Name: "api-test", State: vm.Running, Pid: 4242, Hostname: "api-test", IPs: []string{"10.0.2.15"}}
}

func (v *instantVM) Halt(context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running {
		return machine.ErrNotRunning
	}
	v.running = false
	close(v.exited)
	return nil
}

func (v *instantVM) Kill() error { return v.Halt(context.Background()) }

func (v *instantVM) Wait(ctx context.Context) error {
	v.mu.Lock()
	ch, running := v.exited, v.running
	v.mu.Unlock()
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

// serve runs a daemon and its API on a socket in a fresh directory.
func serve(t *testing.T) (string, *instantVM) {
	t.Helper()
	return serveWith(t, daemon.Options{Log: quiet()})
}

// serveWith is serve with the daemon's options.
func serveWith(t *testing.T, o daemon.Options) (string, *instantVM) {
	t.Helper()
	dir, err := os.MkdirTemp("", "hapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "run", "hyperos.sock")
	v := &instantVM{}
	d := daemon.New(v, o)
	l, err := Listen(sock, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- New(d, quiet()).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-runDone
		<-srvDone
	})
	return sock, v
}

// raw sends a request with the given headers over the socket.
func raw(t *testing.T, sock, method, target string, hdr map[string]string) (int, api.Error) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := http.NewRequest(method, target, nil)
	req.Host = api.Host
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

func TestStatusOverSocketIsPrivate(t *testing.T) {
	sock, _ := serve(t)
	c := &client.Client{Socket: sock}
	st, err := c.Status(context.Background())
	if err != nil || st.Name != "api-test" || st.Phase != api.Stopped || st.Daemon.Pid != os.Getpid() {
		t.Fatalf("status %+v %v", st, err)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(sock))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode %v %v", di.Mode(), err)
	}
}

func TestRefusesWebPagesAndOtherHosts(t *testing.T) {
	sock, v := serve(t)
	for _, h := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Referer": "http://evil.example/page"},
		{"Origin": "null"},
		{"Host": "localhost"},
		{"Host": "127.0.0.1:8080"},
		{"Host": "evil.example"},
	} {
		code, e := raw(t, sock, "POST", api.PathBoot, h)
		if code != http.StatusForbidden || e.Code != "access_denied" {
			t.Errorf("%v: %d %+v", h, code, e)
		}
	}
	if v.boots != 0 {
		t.Fatal("a refused request booted the VM")
	}
	if code, _ := raw(t, sock, "GET", api.PathStatus, nil); code != http.StatusOK {
		t.Fatalf("plain request: %d", code)
	}
}

func TestValidatesInput(t *testing.T) {
	sock, _ := serve(t)
	for _, c := range []struct {
		method, target string
		code           int
	}{
		{"POST", api.PathBoot + "?wait=maybe", http.StatusBadRequest},
		{"POST", api.PathBoot + "?wait=true&wait=false", http.StatusBadRequest},
		{"POST", api.PathBoot + "?force=1", http.StatusBadRequest},
		{"GET", api.PathStatus + "?x=1", http.StatusBadRequest},
		{"GET", api.PathBoot, http.StatusMethodNotAllowed},
		{"POST", api.PathStatus, http.StatusMethodNotAllowed},
		{"GET", "/v2/status", http.StatusNotFound},
		{"POST", api.PathHalt, http.StatusConflict}, // not running
		{"POST", api.PathShutdown, http.StatusNotImplemented},
		{"POST", api.PathContainerStop, http.StatusBadRequest},
		{"POST", api.PathContainerStop + "?name=-rf", http.StatusBadRequest},
		{"POST", api.PathContainerStop + "?name=web&force=1", http.StatusBadRequest},
		{"POST", api.PathContainerStop + "?name=web&name=db", http.StatusBadRequest},
		{"GET", api.PathContainerStop + "?name=web", http.StatusMethodNotAllowed},
		{"POST", api.PathContainerStop + "?name=web", http.StatusConflict}, // not running
	} {
		if code, e := raw(t, sock, c.method, c.target, nil); code != c.code {
			t.Errorf("%s %s: %d %+v, want %d", c.method, c.target, code, e, c.code)
		}
	}
}

func TestEventsFollowBootAndHaltInOrder(t *testing.T) {
	sock, _ := serve(t)
	c := &client.Client{Socket: sock}
	ctx := context.Background()
	ev, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if st, err := c.Boot(ctx, true); err != nil || st.Phase != api.Online {
		t.Fatalf("boot: %+v %v", st, err)
	}
	if _, err := c.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 5 {
		e, err := ev.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == api.EventState {
			got = append(got, string(e.Phase))
		}
	}
	if strings.Join(got, " ") != "stopped booting online stopping stopped" {
		t.Fatalf("phases %v", got)
	}
	if _, err := c.Kill(ctx); !client.IsCode(err, "not_running") || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("kill when stopped: %v", err)
	}
}

func TestManyClientsAtOnce(t *testing.T) {
	sock, v := serve(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c := &client.Client{Socket: sock}
			if _, err := c.Boot(ctx, i%2 == 0); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			c := &client.Client{Socket: sock}
			if _, err := c.Status(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := &client.Client{Socket: sock}
	if st, err := c.Boot(ctx, true); err != nil || st.Phase != api.Online {
		t.Fatalf("%+v %v", st, err)
	}
	if v.boots != 1 {
		t.Fatalf("%d boots for 20 boot requests", v.boots)
	}
}

func TestStaleSocketIsReplacedLiveOneIsNot(t *testing.T) {
	dir, _ := os.MkdirTemp("", "hapi")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	// A crashed service leaves its socket file behind.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatal("no stale socket to test with")
	}
	l, err := Listen(sock, quiet())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(sock, quiet()); !errors.Is(err, ErrInUse) {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Fatal("the live socket was unlinked")
	}
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	if _, err := Listen(plain, quiet()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	dir := t.TempDir()
	c := &client.Client{Socket: filepath.Join(dir, "none.sock")}
	_, err := c.Status(context.Background())
	if !errors.Is(err, client.ErrNotRunning) || client.IsAccessDenied(err) {
		t.Fatalf("no service: %v", err)
	}
	// The zero value finds the socket of HYPEROS_HOME.
	home := t.TempDir()
	t.Setenv("HYPEROS_HOME", home)
	var zero client.Client
	if _, err := zero.Status(context.Background()); !errors.Is(err, client.ErrNotRunning) || !strings.Contains(err.Error(), home) {
		t.Fatalf("zero client: %v", err)
	}
}

// The other-user test runs this test binary again as nobody, as a client.
const helperEnv = "HYPEROS_LOCALAPI_HELPER_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		c := &client.Client{Socket: sock}
		_, err := c.Boot(context.Background(), false)
		switch {
		case err == nil:
			os.Stdout.WriteString("ALLOWED\n")
		case client.IsAccessDenied(err):
			os.Stdout.WriteString("DENIED " + err.Error() + "\n")
		default:
			os.Stdout.WriteString("ERROR " + err.Error() + "\n")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// asNobody runs the helper client as uid/gid 65534 against sock.
func asNobody(t *testing.T, sock string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary sits in a private build dir: copy it where nobody may run it.
	dir, _ := os.MkdirTemp("", "hapi-bin")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "helper")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{helperEnv + "=" + sock, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	return string(out)
}

// TestAnotherUserIsRefused runs a client as nobody. With the directory private
// (the default) the kernel refuses the connection; with the directory and the
// socket opened up by mistake, the peer-credential check still refuses it.
func TestAnotherUserIsRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching to another uid needs root")
	}
	sock, v := serve(t)
	if out := asNobody(t, sock); !strings.HasPrefix(out, "DENIED") {
		t.Fatalf("private dir: %s", out)
	}
	os.Chmod(filepath.Dir(filepath.Dir(sock)), 0o755)
	os.Chmod(filepath.Dir(sock), 0o755)
	os.Chmod(sock, 0o666)
	out := asNobody(t, sock)
	if !strings.HasPrefix(out, "DENIED") || !strings.Contains(out, "uid 65534 is not the owner") {
		t.Fatalf("open socket: %s", out)
	}
	if v.boots != 0 {
		t.Fatal("nobody booted the VM")
	}
	// Root (us) is still served.
	if _, err := (&client.Client{Socket: sock}).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStatus is one GET /v1/status over the socket on a kept-alive
// connection, as the CLI and the tray make it.
func BenchmarkStatus(b *testing.B) {
	dir, _ := os.MkdirTemp("", "hapi")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	d := daemon.New(&instantVM{}, daemon.Options{Log: quiet()})
	l, err := Listen(sock, quiet())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	go New(d, quiet()).Serve(ctx, l)
	c := &client.Client{Socket: sock}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Status(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventDelivery is one event from the state machine to a client
// reading the stream.
func BenchmarkEventDelivery(b *testing.B) {
	dir, _ := os.MkdirTemp("", "hapi")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	v := &instantVM{}
	d := daemon.New(v, daemon.Options{Log: quiet()})
	l, err := Listen(sock, quiet())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	go New(d, quiet()).Serve(ctx, l)
	c := &client.Client{Socket: sock}
	ev, err := c.Events(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer ev.Close()
	ev.Next() // snapshot
	b.ResetTimer()
	for b.Loop() {
		d.Bus().Publish(api.Event{Type: api.EventProgress})
		if _, err := ev.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestShutdownThroughAPI(t *testing.T) {
	dir, _ := os.MkdirTemp("", "hapi")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	v := &instantVM{}
	d := daemon.New(v, daemon.Options{BootAtStart: true, Log: quiet()})
	l, err := Listen(sock, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := New(d, quiet())
	srv.Shutdown = cancel
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	srvCtx, srvStop := context.WithCancel(context.Background())
	defer srvStop()
	go srv.Serve(srvCtx, l)
	c := &client.Client{Socket: sock}
	if _, err := c.Boot(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if v.Status().State != vm.Stopped {
		t.Fatal("the VM outlived the service")
	}
}

// TestContainerCalls boots, lists and removes a container through the client
// and the API; the guest is a function standing in for the VM's shell.
func TestContainerCalls(t *testing.T) {
	const key = "0101010101010101010101010101010101010101010101010101010101010101"
	var mu sync.Mutex
	var got []string
	guest := func(ctx context.Context, command string, stdout, stderr io.Writer) error {
		mu.Lock()
		got = append(got, command)
		mu.Unlock()
		switch {
		case strings.Contains(command, " boot "):
			io.WriteString(stderr, "web: booting  (0 KB of 8 MB fetched)\n")
			io.WriteString(stdout, `{"name":"web","link":"hyper://`+key+`/web.img","phase":"running","stats":{"fetched":1048576,"size":8388608},"boot_seconds":1.5}`)
		case strings.HasSuffix(command, "ls --json"):
			io.WriteString(stdout, `[{"name":"web","phase":"running","stats":{"size":8388608}}]`)
		}
		return nil
	}
	sock, _ := serveWith(t, daemon.Options{Log: quiet(), GuestCommand: guest})
	c := &client.Client{Socket: sock}
	ctx := context.Background()
	if _, err := c.BootContainer(ctx, []string{"hyper://" + key + "/web.img"}, nil); !client.IsCode(err, "not_running") {
		t.Fatalf("boot with the VM stopped: %v", err)
	}
	if _, err := c.Boot(ctx, true); err != nil {
		t.Fatal(err)
	}
	var progress []string
	ctr, err := c.BootContainer(ctx, []string{"hyper://" + key + "/web.img", "--peer", "_gateway:4000"}, func(s string) { progress = append(progress, s) })
	if err != nil {
		t.Fatal(err)
	}
	if ctr.Name != "web" || ctr.State != "running" || ctr.Fetched != 1<<20 || len(progress) != 1 {
		t.Fatalf("%+v %q", ctr, progress)
	}
	if _, err := c.BootContainer(ctx, []string{"hyper://" + key + "/web.img", "--name", "$(reboot)"}, nil); !client.IsCode(err, "bad_request") {
		t.Fatalf("a bad name: %v", err)
	}
	cs, err := c.Containers(ctx)
	if err != nil || len(cs) != 1 || cs[0].Size != 8388608 {
		t.Fatalf("%+v %v", cs, err)
	}
	if _, err := c.RemoveContainer(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	want := "[hyperos-guest container boot hyper://" + key + "/web.img --name web --peer _gateway:4000 --boot --json hyperos-guest container ls --json hyperos-guest container rm web]"
	if fmt.Sprint(got) != want {
		t.Fatalf("guest commands\n%q\nwant\n%s", got, want)
	}
}
