package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hyperos/hyperos/guest/ready"
)

// consolePoll is how often a console log that has no new output is checked again.
// A log file gives no wake-up on growth that works on every platform, and a
// quarter second is far below a boot's duration.
const consolePoll = 250 * time.Millisecond

// WaitReady follows the console log at path from offset and returns the first
// ready line after it, or an error when ctx ends or alive reports the VM gone.
func WaitReady(ctx context.Context, path string, offset int64, alive func() bool) (ready.Info, int64, error) {
	f, err := openWait(ctx, path)
	if err != nil {
		return ready.Info{}, offset, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ready.Info{}, offset, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var partial strings.Builder
	pos := offset
	for {
		line, err := r.ReadString('\n')
		pos += int64(len(line))
		partial.WriteString(line)
		if err == nil {
			full := partial.String()
			partial.Reset()
			if strings.Contains(full, ready.Prefix) {
				if info, perr := ready.Parse(full); perr == nil {
					return info, pos, nil
				}
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return ready.Info{}, pos, fmt.Errorf("read console log: %w", err)
		}
		if partial.Len() > 64<<10 {
			partial.Reset()
		}
		if alive != nil && !alive() {
			return ready.Info{}, pos, fmt.Errorf("the VM stopped before it was ready; see %s", path)
		}
		select {
		case <-ctx.Done():
			return ready.Info{}, pos, fmt.Errorf("waiting for the ready line in %s: %w", path, ctx.Err())
		case <-time.After(consolePoll):
		}
	}
}

func openWait(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.Open(path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("console log %s never appeared: %w", path, ctx.Err())
		case <-time.After(consolePoll):
		}
	}
}

// ConsoleSize returns the console log's size: the guest made progress when it grows.
func ConsoleSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
