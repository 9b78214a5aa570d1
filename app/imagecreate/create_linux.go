package imagecreate

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Create builds the image. It needs root (mmdebstrap in root mode, and files
// owned by the container's users).
func Create(ctx context.Context, o Options) (int64, error) {
	if err := o.validate(); err != nil {
		return 0, err
	}
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("making an image needs root: run it with sudo")
	}
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			return 0, fmt.Errorf("%s not found: install it with 'sudo apt-get install mmdebstrap e2fsprogs'", tool)
		}
	}
	if _, err := os.Stat(o.Out); err == nil {
		return 0, fmt.Errorf("%s exists: refusing to overwrite it", o.Out)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(o.Out), ".hyperos-image-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	args := []string{"--mode=root", "--variant=minbase", "--include=" + joinPkgs(o.Include),
		"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*"}
	if o.Arch != "" {
		args = append(args, "--arch="+o.Arch)
	}
	if o.DebCache != "" {
		if err := os.MkdirAll(o.DebCache, 0o755); err != nil {
			return 0, err
		}
		args = append(args, "--skip=download/empty",
			`--setup-hook=mkdir -p "$1/var/cache/apt/archives"`,
			"--setup-hook=sync-in "+o.DebCache+" /var/cache/apt/archives/",
			"--customize-hook=sync-out /var/cache/apt/archives "+o.DebCache)
	}
	host := o.Hostname
	if host == "" {
		host = strings.TrimSuffix(filepath.Base(o.Out), filepath.Ext(o.Out))
	}
	args = append(args, o.Suite, root)
	// The host's own package sources when it runs the same release (security
	// updates come along); mmdebstrap's default otherwise.
	if b, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources"); err == nil && strings.Contains(string(b), o.Suite) {
		args = append(args, "/etc/apt/sources.list.d/debian.sources")
	}
	o.Progress(fmt.Sprintf("installing Debian %s with mmdebstrap", o.Suite))
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("mmdebstrap: %w\n%s", err, tail(out))
	}
	// A container gets a fresh machine id on each boot, and the name asked for.
	os.WriteFile(filepath.Join(root, "etc", "machine-id"), nil, 0o444)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte(host+"\n"), 0o644)
	os.RemoveAll(filepath.Join(root, "var", "cache", "apt", "archives"))
	os.MkdirAll(filepath.Join(root, "var", "cache", "apt", "archives", "partial"), 0o755)
	used, err := treeSize(root)
	if err != nil {
		return 0, err
	}
	size := SizeFor(used, o.ExtraMB)
	o.Progress(fmt.Sprintf("packing %d MB of files into a %d MB ext4 image", used>>20, size>>20))
	f, err := os.OpenFile(o.Out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(o.Out)
		return 0, err
	}
	f.Close()
	// 4 KiB blocks even when mkfs would pick 1 KiB for a small file system:
	// the lazy image's overlay and the guest's pages are 4 KiB, so a
	// container's writes are whole pages and none waits for the rest of its
	// page to be fetched from peers first.
	cmd = exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "root", "-m", "0", "-b", "4096", "-d", root, o.Out)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(o.Out)
		return 0, fmt.Errorf("mkfs.ext4: %w\n%s", err, tail(out))
	}
	return size, nil
}

func treeSize(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Round each file up to a block, as ext4 stores it.
		total += (info.Size() + 4095) &^ 4095
		if d.IsDir() || info.Mode()&fs.ModeSymlink != 0 {
			total += 4096
		}
		return nil
	})
	return total, err
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
