//go:build !windows

package cpio

import (
	"io/fs"
	"syscall"
)

// owner returns the file's uid and gid, which the image keeps as built.
func owner(info fs.FileInfo) (uint32, uint32) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid
	}
	return 0, 0
}
