package service

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
)

// awkward is a path with every character the file formats must escape.
const awkward = `/opt/My Apps/hyper%os$HOME "q" & <x>'s\bin/hyperos`

func testConfig() Config {
	return Config{
		Exe:    awkward,
		Args:   []string{"daemon", "--restart", "off"},
		Env:    map[string]string{"HYPEROS_HOME": "/home/u/my home", "HYPEROS_IMAGE_DIR": "/img/%d"},
		Tray:   true,
		Home:   "/home/u",
		LogDir: "/home/u/.local/state/hyperos/logs",
	}
}

func TestSystemdUnit(t *testing.T) {
	unit, err := SystemdUnit(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ExecStart="/opt/My Apps/hyper%%os$$HOME \"q\" & <x>'s\\bin/hyperos" "daemon" "--restart" "off"`,
		`Environment="HYPEROS_HOME=/home/u/my home"`,
		`Environment="HYPEROS_IMAGE_DIR=/img/%%d"`,
		"KillMode=process",
		"Restart=on-failure",
		"WantedBy=default.target", // a user manager has no multi-user.target
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %s:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "{{") {
		t.Fatal("template braces in the unit")
	}
}

func TestRefusesBrokenConfig(t *testing.T) {
	for _, c := range []Config{
		{Exe: "hyperos"},
		{Exe: "/bin/hyperos", Args: []string{"daemon\nExecStartPre=/bin/rm"}},
		{Exe: "/bin/hyperos", Env: map[string]string{"A=B": "x"}},
		{Exe: "/bin/hyperos", Env: map[string]string{"A": "x\n[Service]"}},
	} {
		if _, err := SystemdUnit(c); err == nil {
			t.Errorf("accepted %+v", c)
		}
		if _, err := LaunchAgent(c); err == nil {
			t.Errorf("plist accepted %+v", c)
		}
	}
}

// plistValue is a parsed property-list value: string, bool, []any or
// map[string]any.
func parsePlist(t *testing.T, text string) map[string]any {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(text))
	d.Strict = true
	var root any
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plist is not XML: %v\n%s", err, text)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "plist" {
			root = plistNext(t, d)
		}
	}
	m, ok := root.(map[string]any)
	if !ok {
		t.Fatalf("plist root is %T", root)
	}
	return m
}

func plistNext(t *testing.T, d *xml.Decoder) any {
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("plist: %v", err)
		}
		switch se := tok.(type) {
		case xml.StartElement:
			return plistElem(t, d, se)
		case xml.EndElement:
			return nil
		}
	}
}

func plistElem(t *testing.T, d *xml.Decoder, se xml.StartElement) any {
	switch se.Name.Local {
	case "string", "key":
		var s string
		if err := d.DecodeElement(&s, &se); err != nil {
			t.Fatal(err)
		}
		return s
	case "true", "false":
		d.Skip()
		return se.Name.Local == "true"
	case "array":
		var out []any
		for {
			v := plistNext(t, d)
			if v == nil {
				return out
			}
			out = append(out, v)
		}
	case "dict":
		out := map[string]any{}
		for {
			k := plistNext(t, d)
			if k == nil {
				return out
			}
			key, ok := k.(string)
			if !ok {
				t.Fatalf("dict key %v", k)
			}
			out[key] = plistNext(t, d)
		}
	}
	t.Fatalf("unexpected plist element %s", se.Name.Local)
	return nil
}

func TestLaunchAgentParsesBack(t *testing.T) {
	c := testConfig()
	text, err := LaunchAgent(c)
	if err != nil {
		t.Fatal(err)
	}
	p := parsePlist(t, text)
	if p["Label"] != LaunchdLabel || p["RunAtLoad"] != true {
		t.Fatalf("label/RunAtLoad: %v", p)
	}
	if got := fmt.Sprint(p["ProgramArguments"]); got != fmt.Sprint([]any{awkward, "daemon", "--restart", "off"}) {
		t.Fatalf("ProgramArguments %s", got)
	}
	if ka, ok := p["KeepAlive"].(map[string]any); !ok || ka["SuccessfulExit"] != false {
		t.Fatalf("KeepAlive %v", p["KeepAlive"])
	}
	if env, ok := p["EnvironmentVariables"].(map[string]any); !ok || env["HYPEROS_HOME"] != "/home/u/my home" || env["HYPEROS_IMAGE_DIR"] != "/img/%d" {
		t.Fatalf("env %v", p["EnvironmentVariables"])
	}
	if _, ok := p["LimitLoadToSessionType"]; ok {
		t.Fatal("the daemon must also run outside the graphical session")
	}
	if p["StandardErrorPath"] != c.LogDir+"/launchd.err.log" {
		t.Fatalf("stderr %v", p["StandardErrorPath"])
	}

	tray, err := LaunchAgentTray(c)
	if err != nil {
		t.Fatal(err)
	}
	tp := parsePlist(t, tray)
	if tp["Label"] != LaunchdTrayLabel || tp["LimitLoadToSessionType"] != "Aqua" || fmt.Sprint(tp["ProgramArguments"]) != fmt.Sprint([]any{awkward, "tray"}) {
		t.Fatalf("tray plist %v", tp)
	}
}

func TestAutostartEntry(t *testing.T) {
	text, err := Autostart(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var exec string
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, "Exec="); ok {
			exec = v
		}
	}
	// Value unescaping (\\ → \), then Exec unquoting, must give back the path.
	v := strings.ReplaceAll(exec, `\\`, `\`)
	if !strings.HasSuffix(v, `" tray`) || !strings.HasPrefix(v, `"`) {
		t.Fatalf("Exec=%s", exec)
	}
	quoted := strings.TrimSuffix(strings.TrimPrefix(v, `"`), `" tray`)
	quoted = strings.ReplaceAll(quoted, "%%", "%")
	var b strings.Builder
	for i := 0; i < len(quoted); i++ {
		if quoted[i] == '\\' && i+1 < len(quoted) {
			i++
		}
		b.WriteByte(quoted[i])
	}
	if b.String() != awkward {
		t.Fatalf("Exec path round trip: %q", b.String())
	}
}

func TestRunCommand(t *testing.T) {
	c := Config{Exe: `C:\Program Files\HyperOS\hyperos.exe`, Args: []string{"daemon"}, Env: map[string]string{"HYPEROS_HOME": `C:\Users\a b\hy`}}
	got, err := RunCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"C:\Program Files\HyperOS\hyperos.exe" daemon --home "C:\Users\a b\hy"`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	c.Tray = true
	if got, _ := RunCommand(c); !strings.Contains(got, `.exe" tray`) {
		t.Fatalf("tray: %s", got)
	}
	for in, want := range map[string]string{
		`plain`:          `plain`,
		``:               `""`,
		`a "b"`:          `"a \"b\""`,
		`C:\dir with\`:   `"C:\dir with\\"`,
		`x\"y z`:         `"x\\\"y z"`,
		`no\trailing\\q`: `no\trailing\\q`,
	} {
		if got := windowsQuote(in); got != want {
			t.Errorf("windowsQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
