package cmdline

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func testKey(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

func TestBuildParseRoundTrip(t *testing.T) {
	key := testKey(t) + " me@laptop"
	line, err := Build(Params{Host: "simon-mittens-3", SSHKey: key})
	if err != nil {
		t.Fatal(err)
	}
	full := "console=ttyS0 panic=1 " + line + " quiet"
	p, problems := Parse(full)
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if p.Host != "simon-mittens-3" || p.SSHKey != key {
		t.Fatalf("got %+v", p)
	}
}

func TestHostValidation(t *testing.T) {
	good := []string{"a", "hyperos", "simon-mittens-42", "a.b.c", strings.Repeat("a", 63)}
	bad := []string{"", "-a", "a-", "A", "a_b", "a b", "$(reboot)", "a;b", strings.Repeat("a", 64), "a..b", "a\nb", "`id`"}
	for _, h := range good {
		if err := ValidHost(h); err != nil {
			t.Errorf("ValidHost(%q) = %v", h, err)
		}
	}
	for _, h := range bad {
		if err := ValidHost(h); err == nil {
			t.Errorf("ValidHost(%q) accepted", h)
		}
	}
}

func TestBadValuesIgnored(t *testing.T) {
	key := testKey(t)
	cases := map[string]string{
		"quote in key":         `host=ok sshkey="` + key + `\" evil"`,
		"options in key":       `host=ok sshkey="command=/bin/sh ` + key + `"`,
		"command substitution": `host=ok sshkey="$(reboot)"`,
		"truncated key":        `host=ok sshkey="` + key[:30] + `"`,
		"two keys":             `host=ok sshkey="` + key + `" sshkey="` + key + `"`,
		"type mismatch":        `host=ok sshkey="ssh-rsa ` + strings.Fields(key)[1] + `"`,
		"newline":              "host=ok sshkey=\"" + key + "\nssh-ed25519 AAAA\"",
	}
	for name, line := range cases {
		t.Run(name, func(t *testing.T) {
			p, problems := Parse(line)
			if p.SSHKey != "" {
				t.Errorf("key accepted: %q", p.SSHKey)
			}
			if len(problems) == 0 {
				t.Error("no problem reported")
			}
			if strings.HasPrefix(line, "host=ok") && p.Host != "ok" && name != "two keys" {
				t.Errorf("good host lost: %+v", p)
			}
		})
	}
	p, problems := Parse(`host=$(touch$IFS/pwned) sshkey="` + key + `"`)
	if p.Host != "" || p.SSHKey != key || len(problems) != 1 {
		t.Errorf("bad host with good key: %+v %v", p, problems)
	}
	if _, err := Build(Params{Host: "ok", SSHKey: "not a key"}); err == nil {
		t.Error("Build accepted a bad key")
	}
	if _, err := Build(Params{Host: "Bad Host", SSHKey: key}); err == nil {
		t.Error("Build accepted a bad host")
	}
}

func TestSplitLikeKernel(t *testing.T) {
	got := Split(`a=1  b="x y"  c "d e"=f` + "\t")
	want := []string{"a=1", "b=x y", "c", "d e=f"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Split = %q, want %q", got, want)
	}
}

func TestConsoles(t *testing.T) {
	got := Consoles("console=tty0 console=ttyS0,115200n8 console=../etc console=hvc0")
	if strings.Join(got, ",") != "tty0,ttyS0,hvc0" {
		t.Fatalf("Consoles = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`host=a sshkey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x"`)
	f.Add(`host=$(id) sshkey="'"`)
	f.Fuzz(func(t *testing.T, line string) {
		p, _ := Parse(line)
		if p.Host != "" && ValidHost(p.Host) != nil {
			t.Fatalf("invalid host returned: %q", p.Host)
		}
		if p.SSHKey != "" {
			if strings.ContainsAny(p.SSHKey, "\"'$`\n\\;") {
				t.Fatalf("unsafe key returned: %q", p.SSHKey)
			}
			if again, err := CanonicalKey(p.SSHKey); err != nil || again != p.SSHKey {
				t.Fatalf("returned key is not canonical: %q (%v)", p.SSHKey, err)
			}
		}
	})
}
