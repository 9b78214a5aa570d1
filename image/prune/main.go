// Command prune removes shared libraries that nothing in a root file system links
// against. Package dependencies are coarse (a library pulls in all of its optional
// back-ends), so the image keeps only what its programs actually load.
//
// Roots are every ELF file outside the top level of the library directories
// (programs, and plugins such as PAM modules that are loaded by path), plus the
// libraries named with -keep (loaded with dlopen by soname). Works on any
// architecture's tree: it reads ELF headers, it runs nothing.
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type keepList []string

func (k *keepList) String() string     { return strings.Join(*k, ",") }
func (k *keepList) Set(v string) error { *k = append(*k, v); return nil }

func main() {
	root := flag.String("root", "", "root file system")
	dryRun := flag.Bool("n", false, "only list what would be removed")
	var keep keepList
	flag.Var(&keep, "keep", "soname prefix to keep even when unreferenced (repeatable)")
	flag.Parse()
	if *root == "" {
		fmt.Fprintln(os.Stderr, "usage: prune -root DIR [-keep SONAME-PREFIX]... [-n]")
		os.Exit(2)
	}
	removed, freed, err := prune(*root, keep, *dryRun)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prune:", err)
		os.Exit(1)
	}
	for _, r := range removed {
		fmt.Println("removed", r)
	}
	fmt.Printf("prune: %d libraries, %.1f MB\n", len(removed), float64(freed)/1e6)
}

// libDirs returns the directories the dynamic loader searches in root.
func libDirs(root string) []string {
	var dirs []string
	for _, pattern := range []string{"usr/lib/*-linux-gnu*", "usr/lib", "usr/lib64", "lib/*-linux-gnu*"} {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, d := range m {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func prune(root string, keep []string, dryRun bool) ([]string, int64, error) {
	dirs := libDirs(root)
	inLibTop := func(p string) bool {
		for _, d := range dirs {
			if filepath.Dir(p) == d {
				return true
			}
		}
		return false
	}
	// Every library file at the top of a library directory, by name.
	libs := map[string]string{} // name (file or symlink) -> real path
	var roots []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			if rel == "proc" || rel == "sys" || rel == "dev" {
				return filepath.SkipDir
			}
			return nil
		}
		if inLibTop(p) && strings.Contains(d.Name(), ".so") {
			real, err := resolve(root, p)
			if err == nil {
				libs[d.Name()] = real
			}
			return nil
		}
		if d.Type().IsRegular() && isELF(p) {
			roots = append(roots, p)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	used := map[string]bool{} // real paths
	var visit func(path string) error
	visit = func(path string) error {
		if used[path] {
			return nil
		}
		used[path] = true
		needed, err := neededOf(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, n := range needed {
			real, ok := libs[n]
			if !ok {
				continue // provided elsewhere (e.g. the vDSO) or absent: not ours to judge
			}
			if err := visit(real); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := visit(r); err != nil {
			return nil, 0, err
		}
	}
	for name, real := range libs {
		for _, k := range keep {
			if strings.HasPrefix(name, k) {
				if err := visit(real); err != nil {
					return nil, 0, err
				}
			}
		}
	}
	// The dynamic loader itself is never named in DT_NEEDED of most programs.
	for name, real := range libs {
		if strings.HasPrefix(name, "ld-linux") {
			used[real] = true
		}
	}
	var removed []string
	var freed int64
	seen := map[string]bool{}
	for _, real := range libs {
		if used[real] || seen[real] || !isELF(real) {
			continue
		}
		seen[real] = true
		fi, err := os.Stat(real)
		if err != nil {
			continue
		}
		freed += fi.Size()
		rel, _ := filepath.Rel(root, real)
		removed = append(removed, "/"+rel)
	}
	sort.Strings(removed)
	if dryRun {
		return removed, freed, nil
	}
	for _, r := range removed {
		if err := os.Remove(filepath.Join(root, r)); err != nil {
			return nil, 0, err
		}
	}
	// Symlinks left pointing at removed files go too.
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if e.Type()&fs.ModeSymlink != 0 && strings.Contains(e.Name(), ".so") {
				if _, err := resolve(root, p); err != nil {
					os.Remove(p)
				}
			}
		}
	}
	return removed, freed, nil
}

// resolve follows symlinks inside root, treating absolute targets as relative to
// root (the tree is not the running system).
func resolve(root, p string) (string, error) {
	for i := 0; i < 40; i++ {
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(t) {
			p = filepath.Join(root, t)
		} else {
			p = filepath.Join(filepath.Dir(p), t)
		}
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = f.Read(magic[:])
	return err == nil && string(magic[:]) == elf.ELFMAG
}

func neededOf(p string) ([]string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, nil // not a well-formed ELF (a firmware blob, say): it links nothing
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, nil
	}
	return libs, nil
}
