package tray

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
)

// decodeNRGBA decodes a PNG into non-premultiplied RGBA, the layout the
// notification image-data hint wants.
func decodeNRGBA(b []byte) (*image.NRGBA, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode icon: %w", err)
	}
	out := image.NewNRGBA(img.Bounds())
	draw.Draw(out, out.Rect, img, img.Bounds().Min, draw.Src)
	return out, nil
}
