package ready

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func hostKey(t testing.TB) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

func TestFormatMatchesContract(t *testing.T) {
	key := hostKey(t)
	line, err := Format(Info{Hostname: "hyperos", IPs: []string{"10.0.2.15", "fec0::5054:ff:fe12:3456"}, HostKeys: []string{key}, Version: "v0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := `HYPEROS-READY {"v":1,"hostname":"hyperos","ips":["10.0.2.15","fec0::5054:ff:fe12:3456"],"hostkeys":["` + key + `"],"version":"v0.1.0"}`
	if line != want {
		t.Fatalf("got  %s\nwant %s", line, want)
	}
	info, err := Parse("\x1b[0m[  3.1] " + line + "\r")
	if err != nil {
		t.Fatal(err)
	}
	if info.Hostname != "hyperos" || len(info.IPs) != 2 || info.HostKeys[0] != key {
		t.Fatalf("round trip: %+v", info)
	}
	if _, err := Format(Info{Hostname: "hyperos"}); err == nil {
		t.Fatal("a ready line without host keys was formatted")
	}
	line, _ = Format(Info{Hostname: "h", HostKeys: []string{key}})
	if !strings.Contains(line, `"ips":[]`) {
		t.Fatalf("no addresses must be an empty list: %s", line)
	}
}

func TestParseRejects(t *testing.T) {
	key := hostKey(t)
	for _, line := range []string{
		"HYPEROS-READY {",
		`HYPEROS-READY {"v":2,"hostname":"h","ips":[],"hostkeys":["` + key + `"],"version":""}`,
		`HYPEROS-READY {"v":1,"hostname":"H!","ips":[],"hostkeys":["` + key + `"],"version":""}`,
		`HYPEROS-READY {"v":1,"hostname":"h","ips":["nope"],"hostkeys":["` + key + `"],"version":""}`,
		`HYPEROS-READY {"v":1,"hostname":"h","ips":[],"hostkeys":["ssh-ed25519 AAAA"],"version":""}`,
		`HYPEROS-READY {"v":1,"hostname":"h","ips":[],"hostkeys":["` + key + `"],"version":"","extra":1}`,
		`HYPEROS-READY {"v":1,"hostname":"h","ips":[],"hostkeys":["` + key + `"],"version":""} {}`,
		"login: ",
	} {
		if _, err := Parse(line); err == nil {
			t.Errorf("accepted %q", line)
		}
	}
}

func TestScanConsole(t *testing.T) {
	key := hostKey(t)
	a, _ := Format(Info{Hostname: "one", HostKeys: []string{key}})
	b, _ := Format(Info{Hostname: "one", IPs: []string{"10.0.2.15"}, HostKeys: []string{key}})
	console := "[    0.000000] Linux version 6.1\r\n" + strings.Repeat("x", 40000) + "\n" +
		"HYPEROS-READY {broken\n" + a + "\r\n" + "Welcome\n" + b + "\n"
	var got []Info
	var bad int
	err := Scan(strings.NewReader(console), func(i Info) bool { got = append(got, i); return true },
		func(string, error) { bad++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[1].IPs) != 1 || bad != 1 {
		t.Fatalf("got %d lines (%+v), %d bad", len(got), got, bad)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`HYPEROS-READY {"v":1,"hostname":"h","ips":["10.0.2.15"],"hostkeys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"],"version":"x"}`)
	f.Fuzz(func(t *testing.T, line string) {
		info, err := Parse(line)
		if err != nil {
			return
		}
		again, err := Format(info)
		if err != nil {
			t.Fatalf("parsed info does not format: %v", err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("formatted line does not parse: %v", err)
		}
	})
}
