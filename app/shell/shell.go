// Package shell runs SSH sessions for the CLI: an interactive shell with a PTY in
// raw mode that follows the local window size, and plain commands whose standard
// streams and exit status pass straight through.
package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// Interactive runs command (a login shell when empty) with a PTY when stdin is a
// terminal, and returns the remote exit status.
func Interactive(ctx context.Context, c *ssh.Client, command string, stdin *os.File, stdout, stderr io.Writer) (int, error) {
	s, err := c.NewSession()
	if err != nil {
		return 0, fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	fd := int(stdin.Fd())
	if term.IsTerminal(fd) {
		w, h, err := term.GetSize(fd)
		if err != nil {
			w, h = 80, 24
		}
		termType := os.Getenv("TERM")
		if termType == "" {
			termType = "xterm-256color"
		}
		if err := s.RequestPty(termType, h, w, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return 0, fmt.Errorf("request pty: %w", err)
		}
		old, err := term.MakeRaw(fd)
		if err != nil {
			return 0, fmt.Errorf("raw terminal: %w", err)
		}
		defer term.Restore(fd, old)
		stop := followSize(fd, func(w, h int) { s.WindowChange(h, w) })
		defer stop()
	}
	if command == "" {
		err = s.Shell()
	} else {
		err = s.Start(command)
	}
	if err != nil {
		return 0, fmt.Errorf("start: %w", err)
	}
	return exitStatus(ctx, s)
}

// Run runs command with the given streams, without a PTY, and returns the remote
// exit status.
func Run(ctx context.Context, c *ssh.Client, command string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	s, err := c.NewSession()
	if err != nil {
		return 0, fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	if err := s.Start(command); err != nil {
		return 0, fmt.Errorf("start: %w", err)
	}
	return exitStatus(ctx, s)
}

func exitStatus(ctx context.Context, s *ssh.Session) (int, error) {
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGTERM)
		s.Close()
		return 130, ctx.Err()
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), nil
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return 255, errors.New("the connection closed without an exit status")
	}
	if err != nil {
		return 255, err
	}
	return 0, nil
}

// Quote joins args into one POSIX shell command line that runs them as given.
func Quote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+%") == "" {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
