//go:build linux || darwin

package service

import (
	"fmt"
	"strings"

	ks "github.com/kardianos/service"
)

// program satisfies kardianos/service's Interface. The daemon does not run
// through kardianos's Run (the CLI's `hyperos daemon` handles its own signals),
// so Start and Stop are never called for real.
type program struct{}

func (program) Start(ks.Service) error { return nil }
func (program) Stop(ks.Service) error  { return nil }

// newKardianos returns a kardianos service whose file is exactly text (passed as
// its custom template; text holds no template actions, which is checked).
func newKardianos(name string, c Config, args []string, optKey, text string) (ks.Service, error) {
	if strings.Contains(text, "{{") {
		return nil, fmt.Errorf("service file for %s would contain template braces (from a path?): refusing", name)
	}
	return ks.New(program{}, &ks.Config{
		Name:        name,
		DisplayName: "HyperOS",
		Description: description,
		Executable:  c.Exe,
		Arguments:   args,
		Option:      ks.KeyValue{"UserService": true, optKey: text},
	})
}
