// Package shares records the `hyperos share` processes seeding on this
// machine, so that `hyperos container boot` can point the VM at them without
// the user naming a peer: a laptop's image live-boots with no other setup.
//
// Each running share writes one small JSON file, named for its drive key, in
// a directory of the user's state; it removes the file when it stops, and a
// reader ignores (and deletes) files whose process is gone, so a crash leaves
// nothing that misleads.
package shares

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
)

// Record describes one running share.
type Record struct {
	Key  string `json:"key"`  // the drive key, 64 hex digits
	Port int    `json:"port"` // the TCP port it seeds on
	Addr string `json:"addr"` // the address it listens on, as it printed it
	Path string `json:"path"` // what it shares
	Pid  int    `json:"pid"`
}

var hexKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Announce records r (with this process's pid) in dir and returns the
// function that removes the record again.
func Announce(dir string, r Record) (remove func(), err error) {
	if !hexKey.MatchString(r.Key) {
		return nil, fmt.Errorf("announce share: key %q is not 64 hex digits", r.Key)
	}
	r.Pid = os.Getpid()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("announce share: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	// One file per share process: two shares of one drive (another port) can
	// run side by side.
	path := filepath.Join(dir, r.Key+"-"+strconv.Itoa(r.Pid)+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("announce share: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("announce share: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// Live returns the records in dir whose process still runs, ordered by key
// and port; records of processes that are gone are deleted.
func Live(dir string) ([]Record, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("running shares: %w", err)
	}
	var out []Record
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal(b, &r) != nil || !hexKey.MatchString(r.Key) || r.Port <= 0 || r.Port > 65535 {
			continue // not ours, or half-written by hand: leave it alone
		}
		if r.Pid <= 0 || !running(r.Pid) {
			os.Remove(path)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Port < out[j].Port
	})
	return out, nil
}

// Ports returns the ports of the running shares of drive key.
func Ports(dir, key string) ([]int, error) {
	live, err := Live(dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, r := range live {
		if r.Key == key {
			out = append(out, r.Port)
		}
	}
	return out, nil
}
