// Package resources holds the HyperOS icons, drawn by ./gen and embedded here so
// that the binary needs no files beside it. go:embed cannot reach outside its
// package's directory, which is why the bytes live in this package rather than
// in tray/.
package resources

import (
	"embed"
	"fmt"
)

//go:generate go run ./gen -out .

//go:embed linux/*.png darwin/*.png windows/*.ico
var files embed.FS

// Icon states, one image each per platform.
const (
	Offline = "offline"
	Booting = "booting"
	Online  = "online"
	Failed  = "failed"
)

// States lists every icon state.
var States = []string{Offline, Booting, Online, Failed}

// Icon returns the icon for state on goos: an ICO on windows, a black template
// PNG on darwin (the menu bar tints it), a coloured PNG elsewhere.
func Icon(goos, state string) ([]byte, error) {
	var name string
	switch goos {
	case "windows":
		name = "windows/" + state + ".ico"
	case "darwin":
		name = "darwin/" + state + "Template.png"
	default:
		name = "linux/" + state + ".png"
	}
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("icon %q for %s: %w", state, goos, err)
	}
	return b, nil
}
