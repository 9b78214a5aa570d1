package logfile

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestRotatesBySizeAndKeepsN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "hyperos.log")
	l, err := Open(path, 1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.Repeat([]byte("x"), 99)
	line = append(line, '\n')
	for i := range 45 { // 4500 bytes: the live file and two old ones survive
		if _, err := l.Write(line); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	l.Close()
	files := Files(path, 5)
	if len(files) != 3 || files[0] != path+".2" || files[2] != path {
		t.Fatalf("files %v", files)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.Size() > 1000 || fi.Size()%100 != 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("kept more than 2 old files")
	}
}

func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hyperos.log")
	for i := range 2 {
		l, err := Open(path, 0, DefaultKeep)
		if err != nil {
			t.Fatal(err)
		}
		Logger(l, nil, slog.LevelInfo).Info("hello", "n", i)
		l.Close()
	}
	b, _ := os.ReadFile(path)
	if bytes.Count(b, []byte("msg=hello")) != 2 {
		t.Fatalf("%s", b)
	}
}

func TestRecordNeverSplit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hyperos.log")
	l, _ := Open(path, 300, 3)
	log := Logger(l, nil, slog.LevelInfo)
	for i := range 20 {
		log.Info(fmt.Sprintf("record %02d", i))
	}
	l.Close()
	for _, f := range Files(path, 3) {
		b, _ := os.ReadFile(f)
		if len(b) == 0 || b[len(b)-1] != '\n' || !bytes.HasPrefix(b, []byte("time=")) {
			t.Fatalf("%s is cut mid-record: %q", f, b)
		}
	}
}
