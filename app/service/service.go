// Package service installs the HyperOS background service for the current user,
// so that HyperOS boots at login: a systemd user unit on Linux (plus an XDG
// autostart entry for the tray), a LaunchAgent on macOS (plus one for the tray
// in the Aqua session), and a per-user Run key on Windows. The files are
// generated here, as plain functions, so that each platform's output is tested
// on every platform; github.com/kardianos/service installs and controls them
// where it can.
package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Names of what gets installed.
const (
	// SystemdName is the unit's name (hyperos.service).
	SystemdName = "hyperos"
	// LaunchdLabel and LaunchdTrayLabel are the LaunchAgents' labels and file
	// names.
	LaunchdLabel     = "org.hyperos.daemon"
	LaunchdTrayLabel = "org.hyperos.tray"
	// RunValue is the value under HKCU\Software\Microsoft\Windows\CurrentVersion\Run.
	RunValue = "HyperOS"
	// AutostartFile is the tray's XDG autostart entry.
	AutostartFile = "hyperos-tray.desktop"
	description   = "HyperOS: boots the HyperOS VM and serves the local API"
)

// Config is what to install.
type Config struct {
	// Exe is the absolute path of the hyperos binary.
	Exe string
	// Args are the daemon's arguments ("daemon" and its flags).
	Args []string
	// Env is passed to the daemon (HYPEROS_HOME, HYPEROS_IMAGE_DIR), so that the
	// service serves the same home the installing shell uses.
	Env map[string]string
	// Tray also starts the tray ("hyperos tray") in the graphical session. Only
	// set when this binary has a tray.
	Tray bool
	// Home is the user's home directory; ConfigHome is $XDG_CONFIG_HOME or
	// ~/.config.
	Home, ConfigHome string
	// LogDir receives launchd's stdout and stderr files on macOS.
	LogDir string
}

// ErrAlreadyInstalled and ErrNotInstalled give install and uninstall clear
// answers for the second time.
var (
	ErrAlreadyInstalled = errors.New("HyperOS is already installed as a service: run 'hyperos service uninstall' first to reinstall it")
	ErrNotInstalled     = errors.New("HyperOS is not installed as a service (install it with 'hyperos service install')")
)

// State is what `hyperos service status` reports.
type State struct {
	Installed bool
	Running   bool
	Detail    string   // the service manager's own word, when there is one
	Files     []string // what is installed
}

func (s State) String() string {
	switch {
	case !s.Installed:
		return "not installed"
	case s.Running:
		return "installed, running"
	default:
		return "installed, not running"
	}
}

// check refuses a Config that could not produce a working service.
func (c Config) check() error {
	// Files for every platform are generated (and tested) everywhere, so a
	// Windows drive path counts as absolute too.
	winAbs := len(c.Exe) > 3 && c.Exe[1] == ':' && (c.Exe[2] == '\\' || c.Exe[2] == '/')
	if !filepath.IsAbs(c.Exe) && !winAbs {
		return fmt.Errorf("service binary %q: need an absolute path", c.Exe)
	}
	for _, s := range append([]string{c.Exe}, c.Args...) {
		if strings.ContainsAny(s, "\n\r\x00") {
			return fmt.Errorf("service argument %q has a newline or NUL", s)
		}
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\n\r\x00 ") || strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("service environment %q=%q: not a valid variable", k, v)
		}
	}
	return nil
}

// ---- systemd ----

// SystemdUnit is the user unit. KillMode=process leaves QEMU alone when the
// daemon itself dies (it runs detached, in its own session): the restarted
// daemon then finds the running VM instead of a killed one. On a normal stop the
// daemon halts the VM itself, which is why TimeoutStopSec exceeds its 90 s halt.
func SystemdUnit(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("[Unit]\n")
	b.WriteString("Description=" + description + "\n")
	b.WriteString("Documentation=https://github.com/hyperos/hyperos\n")
	b.WriteString("StartLimitIntervalSec=600\nStartLimitBurst=5\n\n")
	b.WriteString("[Service]\nType=simple\n")
	b.WriteString("ExecStart=" + systemdQuote(c.Exe))
	for _, a := range c.Args {
		b.WriteString(" " + systemdQuote(a))
	}
	b.WriteString("\n")
	for _, k := range sortedKeys(c.Env) {
		b.WriteString("Environment=" + systemdQuoteEnv(k+"="+c.Env[k]) + "\n")
	}
	b.WriteString("Restart=on-failure\nRestartSec=5\nKillMode=process\nTimeoutStopSec=150\n\n")
	b.WriteString("[Install]\nWantedBy=default.target\n")
	return b.String(), nil
}

// systemdQuote quotes one word of ExecStart= or Environment=: in double quotes,
// with backslash, quote, and the specifier and variable characters escaped.
func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	return `"` + r.Replace(s) + `"`
}

// systemdQuoteEnv quotes an Environment= assignment, where $ is literal.
func systemdQuoteEnv(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

// Autostart is the XDG autostart entry that starts the tray when the graphical
// session starts. The tray runs there, not as a systemd unit: a unit can start
// before the desktop's tray host exists, and the icon then never shows
// (tailscale#17656, #17109).
func Autostart(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	exec := desktopExecQuote(c.Exe) + " tray"
	var b strings.Builder
	b.WriteString("[Desktop Entry]\nType=Application\nName=HyperOS\n")
	b.WriteString("Comment=HyperOS tray: the VM's state, and a terminal into it\n")
	b.WriteString("Exec=" + desktopEscape(exec) + "\n")
	b.WriteString("TryExec=" + desktopEscape(c.Exe) + "\n")
	b.WriteString("Terminal=false\nNoDisplay=true\nX-GNOME-Autostart-enabled=true\n")
	return b.String(), nil
}

// desktopExecQuote quotes an Exec= argument as the Desktop Entry spec says:
// double quotes, with ", `, $ and \ escaped by a backslash, and % doubled.
func desktopExecQuote(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`).Replace(s)
	return `"` + strings.ReplaceAll(s, "%", "%%") + `"`
}

// desktopEscape escapes a string value of a desktop entry (\ is itself escaped
// there, before the Exec rules apply).
func desktopEscape(s string) string { return strings.ReplaceAll(s, `\`, `\\`) }

// ---- launchd ----

// LaunchAgent is the daemon's LaunchAgent: started at login (RunAtLoad) in the
// user's session and restarted when it crashes (KeepAlive SuccessfulExit=false),
// but not when it exits cleanly after `hyperos service stop`.
func LaunchAgent(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	return plist(LaunchdLabel, append([]string{c.Exe}, c.Args...), c.Env, "",
		filepath.Join(c.LogDir, "launchd.out.log"), filepath.Join(c.LogDir, "launchd.err.log")), nil
}

// LaunchAgentTray starts the tray in the Aqua (graphical) session only.
func LaunchAgentTray(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	return plist(LaunchdTrayLabel, []string{c.Exe, "tray"}, c.Env, "Aqua",
		filepath.Join(c.LogDir, "tray.out.log"), filepath.Join(c.LogDir, "tray.err.log")), nil
}

func plist(label string, args []string, env map[string]string, session, stdout, stderr string) string {
	x := xmlEscape
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
`)
	b.WriteString("\t<key>Label</key>\n\t<string>" + x(label) + "</string>\n")
	b.WriteString("\t<key>ProgramArguments</key>\n\t<array>\n")
	for _, a := range args {
		b.WriteString("\t\t<string>" + x(a) + "</string>\n")
	}
	b.WriteString("\t</array>\n")
	if len(env) > 0 {
		b.WriteString("\t<key>EnvironmentVariables</key>\n\t<dict>\n")
		for _, k := range sortedKeys(env) {
			b.WriteString("\t\t<key>" + x(k) + "</key>\n\t\t<string>" + x(env[k]) + "</string>\n")
		}
		b.WriteString("\t</dict>\n")
	}
	b.WriteString("\t<key>RunAtLoad</key>\n\t<true/>\n")
	b.WriteString("\t<key>KeepAlive</key>\n\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>\n")
	if session != "" {
		b.WriteString("\t<key>LimitLoadToSessionType</key>\n\t<string>" + x(session) + "</string>\n")
	}
	b.WriteString("\t<key>ProcessType</key>\n\t<string>Interactive</string>\n")
	b.WriteString("\t<key>StandardOutPath</key>\n\t<string>" + x(stdout) + "</string>\n")
	b.WriteString("\t<key>StandardErrorPath</key>\n\t<string>" + x(stderr) + "</string>\n")
	b.WriteString("</dict>\n</plist>\n")
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

// ---- Windows ----

// RunCommand is the command line stored in the Run key: the tray when this
// binary has one (it runs the service in-process), else the service itself.
// Arguments are quoted the way CommandLineToArgvW splits them.
func RunCommand(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	args := []string{c.Exe}
	if c.Tray {
		args = append(args, "tray")
	} else {
		args = append(args, c.Args...)
	}
	// The Run key cannot carry an environment: the home goes as a flag.
	if h := c.Env["HYPEROS_HOME"]; h != "" {
		args = append(args, "--home", h)
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = windowsQuote(a)
	}
	return strings.Join(q, " "), nil
}

// windowsQuote quotes one argument for CommandLineToArgvW: backslashes are
// literal except before a quote, where they are doubled.
func windowsQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for _, r := range s {
		switch r {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, slashes+1)) // the n already written, doubled, plus one
			slashes = 0
			b.WriteRune(r)
			continue
		default:
			slashes = 0
		}
		b.WriteRune(r)
	}
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// FromEnvironment builds a Config for this user: the running binary, the
// daemon's arguments, and the HyperOS variables of this shell.
func FromEnvironment(args []string, tray bool, logDir string) (Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return Config{}, fmt.Errorf("find the hyperos binary: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Config{}, fmt.Errorf("find your home directory: %w", err)
	}
	cfgHome := os.Getenv("XDG_CONFIG_HOME")
	if cfgHome == "" {
		cfgHome = filepath.Join(home, ".config")
	}
	env := map[string]string{}
	for _, k := range []string{"HYPEROS_HOME", "HYPEROS_IMAGE_DIR"} {
		if v := os.Getenv(k); v != "" {
			if abs, err := filepath.Abs(v); err == nil {
				v = abs
			}
			env[k] = v
		}
	}
	if runtime.GOOS == "darwin" {
		// launchd starts agents with PATH=/usr/bin:/bin:/usr/sbin:/sbin, where
		// Homebrew's qemu and vfkit are not; keep the installing shell's.
		if p := os.Getenv("PATH"); p != "" {
			env["PATH"] = p
		}
	}
	return Config{Exe: exe, Args: args, Env: env, Tray: tray, Home: home, ConfigHome: cfgHome, LogDir: logDir}, nil
}
