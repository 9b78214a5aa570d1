package shares

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const key = "0101010101010101010101010101010101010101010101010101010101010101"

func TestAnnounceLiveRemove(t *testing.T) {
	dir := t.TempDir()
	remove, err := Announce(dir, Record{Key: key, Port: 4000, Addr: "[::]:4000", Path: "/img"})
	if err != nil {
		t.Fatal(err)
	}
	live, err := Live(dir)
	if err != nil || len(live) != 1 || live[0].Port != 4000 || live[0].Pid != os.Getpid() {
		t.Fatalf("live: %+v %v", live, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, key+"-"+itoa(os.Getpid())+".json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v %v", fi, err)
	}
	ports, err := Ports(dir, key)
	if err != nil || len(ports) != 1 || ports[0] != 4000 {
		t.Fatalf("ports: %v %v", ports, err)
	}
	if ports, _ := Ports(dir, strings.Repeat("02", 32)); len(ports) != 0 {
		t.Fatalf("another key's ports: %v", ports)
	}
	remove()
	if live, _ := Live(dir); len(live) != 0 {
		t.Fatalf("after remove: %+v", live)
	}
}

// A share that died without cleaning up (killed, crashed) is not offered, and
// its record goes.
func TestDeadShareForgotten(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1)")
	}
	dead := cmd.Process.Pid // reaped: no process has it now (barring reuse within the test)
	path := filepath.Join(dir, key+"-"+itoa(dead)+".json")
	if err := os.WriteFile(path, []byte(`{"key":"`+key+`","port":4001,"pid":`+itoa(dead)+`}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if live, err := Live(dir); err != nil || len(live) != 0 {
		t.Fatalf("a dead share offered: %+v %v", live, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the dead record stays: %v", err)
	}
}

func TestRefusesBadRecords(t *testing.T) {
	dir := t.TempDir()
	if _, err := Announce(dir, Record{Key: "../../etc/passwd", Port: 1}); err == nil {
		t.Fatal("a key that is a path was accepted")
	}
	for i, body := range []string{`{"key":"x","port":1,"pid":1}`, `{"key":"` + key + `","port":0,"pid":1}`, `not json`} {
		os.WriteFile(filepath.Join(dir, "bad"+itoa(i)+".json"), []byte(body), 0o600)
	}
	if live, err := Live(dir); err != nil || len(live) != 0 {
		t.Fatalf("bad records offered: %+v %v", live, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
