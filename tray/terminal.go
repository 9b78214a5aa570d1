package tray

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Launch is how to open a terminal running a command: the argv to start, and
// for macOS the .command script that argv opens.
type Launch struct {
	Argv []string
	// Script, when set, is written to ScriptPath (mode 0700) before Argv runs.
	Script     string
	ScriptPath string
	// NewConsole starts Argv in a console window of its own (the Windows
	// fallback when Windows Terminal is missing).
	NewConsole bool
}

// TerminalEnv is what choosing a terminal looks at, passed in so that every
// platform's choice can be tested on any platform.
type TerminalEnv struct {
	GOOS     string
	Getenv   func(string) string
	LookPath func(string) (string, error)
	// Dir receives the macOS .command script.
	Dir string
}

// ErrNoTerminal means no terminal emulator was found; the error's text carries
// the command to run by hand.
var ErrNoTerminal = errors.New("no terminal emulator found")

// knownTerminals are tried on Linux after $TERMINAL and x-terminal-emulator, in
// order, each with the arguments that make it run a command (argv, no shell).
var knownTerminals = []struct {
	name string
	args []string
}{
	{"gnome-terminal", []string{"--"}},
	{"konsole", []string{"-e"}},
	{"xfce4-terminal", []string{"-x"}},
	{"kitty", nil},
	{"alacritty", []string{"-e"}},
	{"foot", nil},
	{"wezterm", []string{"start", "--"}},
	{"terminator", []string{"-x"}},
	{"tilix", []string{"-e"}},
	{"lxterminal", []string{"-e"}},
	{"mate-terminal", []string{"-x"}},
	{"xterm", []string{"-e"}},
}

// TerminalCommand chooses how to open a terminal running argv on e.GOOS:
//   - macOS: an executable .command file opened with `open -a Terminal`, which
//     goes through LaunchServices and so needs no Apple Events permission;
//   - Windows: Windows Terminal (wt.exe) in a new tab, else a console window;
//   - elsewhere: $TERMINAL -e, x-terminal-emulator -e (Debian policy: argv, no
//     shell), then the known terminals.
func TerminalCommand(e TerminalEnv, argv []string) (Launch, error) {
	switch e.GOOS {
	case "darwin":
		path := filepath.Join(e.Dir, "hyperos-ssh.command")
		var b strings.Builder
		b.WriteString("#!/bin/sh\n# Written by the HyperOS tray for Terminal to run.\n")
		if h := e.Getenv("HYPEROS_HOME"); h != "" {
			fmt.Fprintf(&b, "export HYPEROS_HOME=%s\n", shQuote(h))
		}
		b.WriteString("exec")
		for _, a := range argv {
			b.WriteString(" " + shQuote(a))
		}
		b.WriteString("\n")
		return Launch{Argv: []string{"open", "-a", "Terminal", path}, Script: b.String(), ScriptPath: path}, nil
	case "windows":
		if wt, err := e.LookPath("wt.exe"); err == nil {
			// wt splits its own command line at every ';', even inside
			// an argument; escaped, it is passed through.
			out := []string{wt, "-w", "0", "new-tab", "--title", "HyperOS"}
			for _, a := range argv {
				out = append(out, strings.ReplaceAll(a, ";", `\;`))
			}
			return Launch{Argv: out}, nil
		}
		return Launch{Argv: argv, NewConsole: true}, nil
	}
	argv = withHome(e, argv)
	if t := e.Getenv("TERMINAL"); t != "" {
		if p, err := e.LookPath(t); err == nil {
			return Launch{Argv: append([]string{p, "-e"}, argv...)}, nil
		}
	}
	if p, err := e.LookPath("x-terminal-emulator"); err == nil {
		return Launch{Argv: append([]string{p, "-e"}, argv...)}, nil
	}
	for _, k := range knownTerminals {
		if p, err := e.LookPath(k.name); err == nil {
			out := append([]string{p}, k.args...)
			return Launch{Argv: append(out, argv...)}, nil
		}
	}
	return Launch{}, fmt.Errorf("%w: open one and run %s", ErrNoTerminal, ShellLine(argv))
}

// withHome passes HYPEROS_HOME on through env(1): terminals that are servers
// (gnome-terminal, kitty with a single instance) start the command with their
// own environment, not the tray's.
func withHome(e TerminalEnv, argv []string) []string {
	h := e.Getenv("HYPEROS_HOME")
	if h == "" {
		return argv
	}
	return append([]string{"env", "HYPEROS_HOME=" + h}, argv...)
}

// ShellLine renders argv for a person to paste into a POSIX shell.
func ShellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shQuote(a)
	}
	return strings.Join(q, " ")
}

// shQuote quotes s for a POSIX shell when it needs quoting.
func shQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// OpenTerminal opens a terminal running argv on this machine.
func OpenTerminal(argv []string) error {
	env := TerminalEnv{GOOS: goos, Getenv: os.Getenv, LookPath: exec.LookPath}
	if goos == "darwin" {
		dir, err := os.MkdirTemp("", "hyperos-term-")
		if err != nil {
			return fmt.Errorf("make a directory for the terminal script: %w", err)
		}
		env.Dir = dir
	}
	l, err := TerminalCommand(env, argv)
	if err != nil {
		return err
	}
	if l.Script != "" {
		if err := os.WriteFile(l.ScriptPath, []byte(l.Script), 0o700); err != nil {
			return fmt.Errorf("write the terminal script: %w", err)
		}
	}
	return start(l)
}

// start runs l detached from the tray: the terminal outlives any menu click,
// and its exit status is not ours to wait for beyond reaping it.
func start(l Launch) error {
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	setNewConsole(cmd, l.NewConsole)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", l.Argv[0], err)
	}
	go cmd.Wait()
	return nil
}

// OpenCommand is the argv that opens path (a file or a URL) in the user's
// default application for it.
func OpenCommand(goos, path string) []string {
	switch goos {
	case "darwin":
		return []string{"open", path}
	case "windows":
		// rundll32 opens through the file's association without a console
		// window and without cmd's quoting rules.
		return []string{"rundll32.exe", "url.dll,FileProtocolHandler", path}
	}
	return []string{"xdg-open", path}
}
