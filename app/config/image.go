package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Image is a kernel and initrd to boot.
type Image struct {
	Kernel, Initrd string
	From           string // where it was found, for messages
}

// KernelName is the kernel file in an image directory for arch.
func KernelName(arch string) string {
	if arch == "arm64" {
		return "Image"
	}
	return "vmlinuz"
}

// FindImage looks for the image in order: explicit paths, $HYPEROS_IMAGE_DIR, the
// installed location beside the binary (../share/hyperos/<arch>/), then
// build/hyperos-<arch>/ in the source checkout around the working directory.
func FindImage(s Settings, exe, wd string) (Image, error) {
	if s.Kernel != "" || s.Initrd != "" {
		if s.Kernel == "" || s.Initrd == "" {
			return Image{}, errors.New("give both --kernel and --initrd")
		}
		return checkImage(Image{Kernel: s.Kernel, Initrd: s.Initrd, From: "settings"})
	}
	var tried []string
	try := func(dir, from string) (Image, bool) {
		tried = append(tried, dir)
		img := Image{Kernel: filepath.Join(dir, KernelName(s.Arch)), Initrd: filepath.Join(dir, "initrd.img"), From: from}
		if _, err := checkImage(img); err == nil {
			return img, true
		}
		return Image{}, false
	}
	if d := os.Getenv("HYPEROS_IMAGE_DIR"); d != "" {
		if img, ok := try(d, "HYPEROS_IMAGE_DIR"); ok {
			return img, nil
		}
		return Image{}, fmt.Errorf("HYPEROS_IMAGE_DIR=%s holds no %s and initrd.img", d, KernelName(s.Arch))
	}
	if exe != "" {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		if img, ok := try(filepath.Join(filepath.Dir(exe), "..", "share", "hyperos", s.Arch), "installed"); ok {
			return img, nil
		}
	}
	for dir := wd; dir != ""; {
		if _, err := os.Stat(filepath.Join(dir, "image", "build.sh")); err == nil {
			if img, ok := try(filepath.Join(dir, "build", "hyperos-"+s.Arch), "source checkout"); ok {
				return img, nil
			}
			return Image{}, fmt.Errorf("no HyperOS image for %s in this checkout: build it with 'make image ARCH=%s' in %s", s.Arch, s.Arch, dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return Image{}, fmt.Errorf("no HyperOS image found (looked in %v): reinstall HyperOS, set HYPEROS_IMAGE_DIR, or build one with 'make image' in a source checkout", tried)
}

func checkImage(img Image) (Image, error) {
	for _, p := range []string{img.Kernel, img.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return Image{}, fmt.Errorf("image file: %w", err)
		}
	}
	return img, nil
}
