//go:build !linux

package qemu

import "errors"

// List is not available here: this platform offers no portable way to read other
// processes' arguments. Callers fall back to the current home's VM.
func List() ([]Process, error) {
	return nil, errors.ErrUnsupported
}
