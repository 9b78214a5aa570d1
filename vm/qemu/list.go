package qemu

// Process is a HyperOS VM found running on this host.
type Process struct {
	Pid   int    `json:"pid"`
	Name  string `json:"name"`
	Dir   string `json:"dir,omitempty"` // its VM directory, which names its HyperOS home
	Accel string `json:"accel,omitempty"`
}
