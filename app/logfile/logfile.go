// Package logfile is the service's log on disk: a file that rotates by size
// (hyperos.log, hyperos.log.1, … up to Keep old ones), so that a service that
// runs for months never fills the disk, and `hyperos logs` has one place to
// look on every platform, journald or not.
package logfile

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Default limits: 5 MB per file, 3 old files.
const (
	DefaultMaxSize = 5 << 20
	DefaultKeep    = 3
)

// File is an io.Writer that appends to Path and rotates it once it would grow
// past MaxSize. Writes are whole: one slog record never straddles two files.
type File struct {
	Path    string
	MaxSize int64
	Keep    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (appending) or creates the log at path, mode 0600 in a 0700 dir.
func Open(path string, maxSize int64, keep int) (*File, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if keep < 0 {
		keep = DefaultKeep
	}
	l := &File{Path: path, MaxSize: maxSize, Keep: keep}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first when p would take the file past MaxSize.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.MaxSize {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotate shifts hyperos.log.N-1 to .N (dropping the oldest) and starts afresh.
func (l *File) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	l.f = nil
	if l.Keep == 0 {
		os.Remove(l.Path)
	} else {
		os.Remove(fmt.Sprintf("%s.%d", l.Path, l.Keep))
		for i := l.Keep - 1; i >= 1; i-- {
			os.Rename(fmt.Sprintf("%s.%d", l.Path, i), fmt.Sprintf("%s.%d", l.Path, i+1))
		}
		if err := os.Rename(l.Path, l.Path+".1"); err != nil {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	return l.open()
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Files returns the log's files, oldest first, that exist.
func Files(path string, keep int) []string {
	var out []string
	for i := keep; i >= 1; i-- {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return out
}

// Logger returns a text slog.Logger writing to w and, when also is not nil, to
// also (the service's stderr, which the service manager keeps too).
func Logger(w io.Writer, also io.Writer, level slog.Level) *slog.Logger {
	if also != nil {
		w = io.MultiWriter(w, also)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
