//go:build !linux && !darwin && !windows

package service

import (
	"context"
	"fmt"
	"runtime"
)

// Manager is not implemented on this platform.
type Manager struct{}

var errUnsupported = fmt.Errorf("installing HyperOS as a service is not implemented on %s: start 'hyperos daemon' from your session's startup programs", runtime.GOOS)

// New says what is missing.
func New(Config) (*Manager, error) { return nil, errUnsupported }

func (*Manager) Install(context.Context) error         { return errUnsupported }
func (*Manager) Uninstall(context.Context) error       { return errUnsupported }
func (*Manager) Start(context.Context) error           { return errUnsupported }
func (*Manager) Stop(context.Context) error            { return errUnsupported }
func (*Manager) Status(context.Context) (State, error) { return State{}, errUnsupported }
