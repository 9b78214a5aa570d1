package main

import (
	"context"
	"fmt"

	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/app/shell"
	"github.com/hyperos/hyperos/guest/cmdline"
)

func init() {
	commands["container"] = containerCmd
}

// containerCmd runs `hyperos-guest container ...` in the VM over the pinned SSH
// connection, streams and exit status passing through, so that the guest alone
// owns container state.
func containerCmd(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		return fmt.Errorf("%w: hyperos container boot|ls|stop|rm ... (see 'hyperos container help')", errUsage)
	}
	switch e.args[0] {
	case "boot", "ls", "stop", "rm", "help":
	default:
		return fmt.Errorf("%w: unknown container command %q", errUsage, e.args[0])
	}
	m, err := machine.Open(e.paths)
	if err != nil {
		return err
	}
	c, err := m.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	code, err := shell.Run(ctx, c, shell.Quote(append([]string{"hyperos-guest", "container"}, e.args...)), e.stdin, e.stdout, e.stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

// containerShell is the remote command of `hyperos ssh --container NAME`: a login
// shell inside the running container, through machined.
func containerShell(name string) (string, error) {
	if err := cmdline.ValidHost(name); err != nil {
		return "", fmt.Errorf("container name: %w", err)
	}
	return shell.Quote([]string{"machinectl", "shell", "--quiet", "root@" + name}), nil
}
