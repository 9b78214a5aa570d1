package qemu

import (
	"context"
	"runtime"
	"time"
)

func hostArch() string { return runtime.GOARCH }

// pollExit is the fallback where the platform has no exit notification for a
// process that is not our child.
func pollExit(ctx context.Context, alive func() bool) error {
	for alive() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}
