// Command gen draws the HyperOS tray icons, one per state and platform, and
// writes them beside this directory: PNG for Linux (StatusNotifierItem pixmaps),
// ICO for Windows (the notification area loads .ico files only) and black
// template PNGs for the macOS menu bar (which recolours them for light and dark
// mode). The icons are drawn in code rather than by hand so that every size and
// format stays identical in shape and can be regenerated in one step:
//
//	go run ./resources/gen
//
// The outputs are committed; the build never runs this program.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"
)

// state is one icon: the ring's colour on Linux and Windows, and how much of the
// ring is drawn on macOS, where a template image carries no colour, so shape has
// to tell the states apart.
type state struct {
	name  string
	color color.NRGBA
	// arc is the fraction of the ring drawn (booting shows a partial ring).
	arc float64
	// filled draws a solid disc inside the ring (online).
	filled bool
	// cross draws an X inside the ring (failed).
	cross bool
}

var states = []state{
	{name: "offline", color: color.NRGBA{0x8a, 0x8f, 0x98, 0xff}, arc: 1},
	{name: "booting", color: color.NRGBA{0xf2, 0xa9, 0x00, 0xff}, arc: 0.7},
	{name: "online", color: color.NRGBA{0x2e, 0xb8, 0x5c, 0xff}, arc: 1, filled: true},
	{name: "failed", color: color.NRGBA{0xe0, 0x3e, 0x3e, 0xff}, arc: 1, cross: true},
}

func main() {
	out := flag.String("out", "resources", "directory to write the icons into")
	flag.Parse()
	for _, s := range states {
		// Linux: one 64 px pixmap; panels scale it to their height.
		if err := writePNG(filepath.Join(*out, "linux", s.name+".png"), draw(s, 64, false)); err != nil {
			log.Fatal(err)
		}
		// macOS: a 44 px template (22 pt at 2x), black with alpha.
		if err := writePNG(filepath.Join(*out, "darwin", s.name+"Template.png"), draw(s, 44, true)); err != nil {
			log.Fatal(err)
		}
		// Windows: 16, 24, 32 and 48 px in one ICO so that every DPI gets a
		// drawn size instead of a blurry scaled one.
		var imgs []*image.NRGBA
		for _, px := range []int{16, 24, 32, 48} {
			imgs = append(imgs, draw(s, px, false))
		}
		if err := writeFile(filepath.Join(*out, "windows", s.name+".ico"), ico(imgs)); err != nil {
			log.Fatal(err)
		}
	}
}

// draw renders state s at size px. Each pixel is supersampled 4×4 for smooth
// edges without a vector library.
func draw(s state, px int, template bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, px, px))
	c := s.color
	if template {
		c = color.NRGBA{0, 0, 0, 0xff}
	}
	const ss = 4
	r := float64(px) / 2
	outer, inner := r*0.92, r*0.62
	for y := 0; y < px; y++ {
		for x := 0; x < px; x++ {
			hits := 0
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					fx := float64(x) + (float64(sx)+0.5)/ss - r
					fy := float64(y) + (float64(sy)+0.5)/ss - r
					if inside(s, fx, fy, r, outer, inner) {
						hits++
					}
				}
			}
			if hits > 0 {
				a := uint8(int(c.A) * hits / (ss * ss))
				img.SetNRGBA(x, y, color.NRGBA{c.R, c.G, c.B, a})
			}
		}
	}
	return img
}

// inside reports whether the point (x, y), relative to the centre, is ink.
func inside(s state, x, y, r, outer, inner float64) bool {
	d := math.Hypot(x, y)
	if d <= outer && d >= inner {
		// Angle clockwise from 12 o'clock, in turns.
		t := math.Atan2(x, -y) / (2 * math.Pi)
		if t < 0 {
			t++
		}
		if t <= s.arc {
			return true
		}
	}
	switch {
	case s.filled:
		return d <= r*0.42
	case s.cross:
		w := r * 0.11
		l := r * 0.34
		return (math.Abs(x-y) <= w*math.Sqrt2 || math.Abs(x+y) <= w*math.Sqrt2) && math.Abs(x) <= l && math.Abs(y) <= l
	}
	return false
}

func writePNG(path string, img image.Image) error {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFile(path, b.Bytes())
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// ico writes an ICO container of 32-bit BMP images: the ICONDIR header, one
// ICONDIRENTRY per image, then each image as a BITMAPINFOHEADER (with the
// height doubled, counting the AND mask), bottom-up BGRA rows and a 1-bit AND
// mask padded to 32 bits per row. BMP entries rather than embedded PNGs, because
// every Windows version's LoadImage reads them.
func ico(imgs []*image.NRGBA) []byte {
	var dir, data bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&dir, le, [3]uint16{0, 1, uint16(len(imgs))})
	offset := 6 + 16*len(imgs)
	for _, img := range imgs {
		w, h := img.Rect.Dx(), img.Rect.Dy()
		var bmp bytes.Buffer
		binary.Write(&bmp, le, struct {
			Size                   uint32
			Width, Height          int32
			Planes, BitCount       uint16
			Compression, SizeImage uint32
			XPels, YPels           int32
			ClrUsed, ClrImportant  uint32
		}{Size: 40, Width: int32(w), Height: int32(2 * h), Planes: 1, BitCount: 32})
		for y := h - 1; y >= 0; y-- {
			for x := 0; x < w; x++ {
				c := img.NRGBAAt(x, y)
				bmp.Write([]byte{c.B, c.G, c.R, c.A})
			}
		}
		maskRow := (w + 31) / 32 * 4
		for y := h - 1; y >= 0; y-- {
			row := make([]byte, maskRow)
			for x := 0; x < w; x++ {
				if img.NRGBAAt(x, y).A == 0 {
					row[x/8] |= 0x80 >> (x % 8)
				}
			}
			bmp.Write(row)
		}
		dim := func(n int) uint8 {
			if n >= 256 {
				return 0
			}
			return uint8(n)
		}
		binary.Write(&dir, le, struct {
			W, H, Colors, Reserved uint8
			Planes, BitCount       uint16
			Size, Offset           uint32
		}{W: dim(w), H: dim(h), Planes: 1, BitCount: 32, Size: uint32(bmp.Len()), Offset: uint32(offset)})
		offset += bmp.Len()
		data.Write(bmp.Bytes())
	}
	return append(dir.Bytes(), data.Bytes()...)
}
