package resources

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestIcons decodes every embedded icon, so a broken generator or a truncated
// commit is caught before a tray shows an empty square.
func TestIcons(t *testing.T) {
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, s := range States {
			b, err := Icon(goos, s)
			if err != nil {
				t.Fatal(err)
			}
			if goos == "windows" {
				checkICO(t, s, b)
				continue
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s/%s: %v", goos, s, err)
			}
			if goos == "darwin" {
				// A template image must be black: macOS uses only its alpha.
				bounds := img.Bounds()
				for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
					for x := bounds.Min.X; x < bounds.Max.X; x++ {
						if r, g, b, _ := img.At(x, y).RGBA(); r|g|b != 0 {
							t.Fatalf("darwin/%s: pixel %d,%d is not black", s, x, y)
						}
					}
				}
			}
		}
	}
	if _, err := Icon("linux", "nonsense"); err == nil {
		t.Fatal("an unknown state returned an icon")
	}
}

// checkICO walks the ICO directory and checks that each entry's bitmap header
// matches it and lies inside the file.
func checkICO(t *testing.T, s string, b []byte) {
	t.Helper()
	var hdr [3]uint16
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0 || hdr[1] != 1 || hdr[2] != 4 {
		t.Fatalf("windows/%s: header %v, want [0 1 4]", s, hdr)
	}
	for i := 0; i < int(hdr[2]); i++ {
		e := b[6+16*i:]
		w := int(e[0])
		size := binary.LittleEndian.Uint32(e[8:])
		off := binary.LittleEndian.Uint32(e[12:])
		if int(off+size) > len(b) {
			t.Fatalf("windows/%s entry %d runs past the file", s, i)
		}
		bmp := b[off:]
		if binary.LittleEndian.Uint32(bmp) != 40 || int(int32(binary.LittleEndian.Uint32(bmp[4:]))) != w || int(int32(binary.LittleEndian.Uint32(bmp[8:]))) != 2*w {
			t.Fatalf("windows/%s entry %d: bad BITMAPINFOHEADER", s, i)
		}
		want := 40 + w*w*4 + (w+31)/32*4*w
		if int(size) != want {
			t.Fatalf("windows/%s entry %d: size %d, want %d", s, i, size, want)
		}
	}
}

// TestGenerated regenerates the icons and compares them with the committed
// ones, so that the generator and the embedded files never drift apart.
func TestGenerated(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command must be on PATH to run the generator: %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(goBin, "run", "./gen", "-out", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./gen: %v\n%s", err, out)
	}
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, s := range States {
			want, _ := Icon(goos, s)
			name := map[string]string{"linux": "linux/" + s + ".png", "darwin": "darwin/" + s + "Template.png", "windows": "windows/" + s + ".ico"}[goos]
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generator's output: run go generate ./resources", name)
			}
		}
	}
}
