// Command mkinitrd packs a root file system tree into a reproducible, compressed
// newc cpio archive for the kernel to unpack as its initramfs.
//
// Reproducibility comes from sorted entries, sequential inode numbers, one fixed
// modification time, and no host device numbers. The uncompressed archive's hash is
// kept beside the output so that an unchanged tree skips the slow compression step.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hyperos/hyperos/image/cpio"
)

func main() {
	root := flag.String("root", "", "root file system tree to pack")
	out := flag.String("out", "", "compressed initrd to write")
	epoch := flag.Int64("epoch", 0, "modification time of every entry (SOURCE_DATE_EPOCH)")
	level := flag.Int("level", 19, "zstd compression level")
	top := flag.Int("top", 10, "print this many of the largest files")
	flag.Parse()
	if *root == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkinitrd -root DIR -out FILE [-epoch N] [-level N]")
		os.Exit(2)
	}
	if err := run(*root, *out, *epoch, *level, *top); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitrd:", err)
		os.Exit(1)
	}
}

func run(root, out string, epoch int64, level, top int) error {
	var archive bytes.Buffer
	w := cpio.NewWriter(&archive, time.Unix(epoch, 0))
	// The kernel opens /dev/console for PID 1 before any devtmpfs exists.
	if err := w.AddDevice("dev/console", 0o600, cpio.CharDevice, 5, 1); err != nil {
		return err
	}
	sizes, err := w.AddTree(root, func(p string) bool { return p == "dev/console" })
	if err != nil {
		return fmt.Errorf("pack %s: %w", root, err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	sum := sha256.Sum256(archive.Bytes())
	stamp := out + ".cpio-sha256"
	if old, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(old)) == hex.EncodeToString(sum[:]) {
		if _, err := os.Stat(out); err == nil {
			slog.Info("initrd unchanged, kept", "path", out)
			report(sizes, archive.Len(), top)
			return nil
		}
	}
	if err := compress(archive.Bytes(), out, level); err != nil {
		return err
	}
	if err := os.WriteFile(stamp, []byte(hex.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", stamp, err)
	}
	report(sizes, archive.Len(), top)
	return nil
}

// compress runs the zstd binary: its output is byte-identical for the same input,
// level and version, and the kernel's decompressor unpacks it quickly even under TCG.
func compress(data []byte, out string, level int) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer os.Remove(tmp)
	cmd := exec.Command("zstd", "-q", "-c", "-T1", fmt.Sprintf("-%d", level))
	cmd.Stdin = bytes.NewReader(data)
	cmd.Stdout = f
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		f.Close()
		return fmt.Errorf("zstd: %w (install the zstd package)", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("rename to %s: %w", out, err)
	}
	return nil
}

func report(sizes map[string]int64, total int, top int) {
	type entry struct {
		path string
		size int64
	}
	var all []entry
	for p, s := range sizes {
		all = append(all, entry{p, s})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].size != all[j].size {
			return all[i].size > all[j].size
		}
		return all[i].path < all[j].path
	})
	fmt.Printf("initrd: %d files, %.1f MB uncompressed; largest:\n", len(all), float64(total)/1e6)
	for i := 0; i < top && i < len(all); i++ {
		fmt.Printf("  %8.2f MB  /%s\n", float64(all[i].size)/1e6, filepath.ToSlash(all[i].path))
	}
}
