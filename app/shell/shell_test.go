package shell

import (
	"os/exec"
	"testing"
)

func TestQuoteSurvivesAShell(t *testing.T) {
	args := []string{"printf", "%s|", "plain", "with space", "it's", "$(id)", "`x`", "", "a\nb", "semi;colon"}
	out, err := exec.Command("sh", "-c", Quote(args)).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "plain|with space|it's|$(id)|`x`||a\nb|semi;colon|"
	if string(out) != want {
		t.Fatalf("got %q want %q", out, want)
	}
}
