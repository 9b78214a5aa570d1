//go:build !linux

package imagecreate

import (
	"context"
	"errors"
)

// Create needs Linux (mmdebstrap and mkfs.ext4). On macOS and Windows, make the
// image inside the HyperOS VM, or on a Linux machine.
func Create(ctx context.Context, o Options) (int64, error) {
	if err := o.validate(); err != nil {
		return 0, err
	}
	return 0, errors.New("making an image needs Linux (mmdebstrap): run it inside HyperOS with 'hyperos ssh', or on a Linux machine")
}
