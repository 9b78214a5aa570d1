package daemon

import (
	"bufio"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/guest/ready"
)

// consolePoll is how often the console log is checked for growth: a plain file
// gives no portable wake-up, and a quarter second is far below a boot.
const consolePoll = 250 * time.Millisecond

// milestone is a console line that marks a stage of the boot. They are the
// lines of the HyperOS image's kernel and units, in the order they appear.
type milestone struct {
	name, match string
}

var milestones = []milestone{
	{"kernel", "Linux version "},
	{"init", "Welcome to "},
	{"datadisk", "Finished hyperos-datadisk"},
	{"network", "Reached target network.target"},
	{"sshd", "Started ssh.service"},
	{"ready", ready.Prefix},
}

// ansi matches the colour escapes systemd puts on the console.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// consoleMilestone returns the milestone a console line marks, or "".
func consoleMilestone(line string) string {
	line = ansi.ReplaceAllString(line, "")
	for _, m := range milestones {
		if strings.Contains(line, m.match) {
			return m.name
		}
	}
	return ""
}

// followConsole reads the console log of boot generation gen until the
// generation ends: it publishes each milestone once per boot and, once online,
// the addresses of later ready lines when they change. A log that shrinks (QEMU
// restarted under TCG truncates it) is read again from the start.
func (d *Daemon) followConsole(gen uint64) {
	path := d.opts.ConsoleLog
	d.mu.Lock()
	fromEnd := d.phase == api.Online // adopted: the boot is history
	d.mu.Unlock()
	var (
		f       *os.File
		r       *bufio.Reader
		pos     int64
		partial strings.Builder
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if !d.current(gen) {
			return
		}
		if f == nil {
			var err error
			f, err = os.Open(path)
			if err == nil {
				if fromEnd {
					pos, _ = f.Seek(0, io.SeekEnd)
				}
				r = bufio.NewReaderSize(f, 64<<10)
			}
		}
		if f != nil {
			if fi, err := f.Stat(); err == nil && fi.Size() < pos {
				f.Seek(0, io.SeekStart)
				r.Reset(f)
				pos = 0
				partial.Reset()
				d.mu.Lock()
				if d.gen == gen {
					clear(d.seen)
				}
				d.mu.Unlock()
			}
			for {
				line, err := r.ReadString('\n')
				pos += int64(len(line))
				partial.WriteString(line)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						d.log.Warn("read the console log", "err", err)
					}
					if partial.Len() > 64<<10 {
						partial.Reset()
					}
					break
				}
				full := partial.String()
				partial.Reset()
				d.consoleLine(gen, full)
			}
		}
		select {
		case <-d.runCtx.Done():
			return
		case <-time.After(consolePoll):
		}
	}
}

func (d *Daemon) current(gen uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gen == gen
}

// consoleLine handles one complete console line.
func (d *Daemon) consoleLine(gen uint64, line string) {
	name := consoleMilestone(line)
	if name == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return
	}
	if name == "ready" && d.phase == api.Online {
		info, err := ready.Parse(strings.TrimRight(line, "\r\n"))
		if err != nil || len(info.IPs) == 0 || slices.Equal(info.IPs, d.ips) {
			return
		}
		d.ips = info.IPs
		e := d.eventLocked(api.EventLease)
		e.Message = "changed"
		d.bus.Publish(e)
		d.log.Info("VM address changed", "ips", info.IPs)
		return
	}
	if d.phase == api.Booting {
		d.milestoneLocked(name)
	}
}

// milestoneLocked publishes a boot milestone once per boot; d.mu is held.
func (d *Daemon) milestoneLocked(name string) {
	if d.seen[name] {
		return
	}
	d.seen[name] = true
	e := d.eventLocked(api.EventConsole)
	e.Milestone = name
	d.bus.Publish(e)
}
