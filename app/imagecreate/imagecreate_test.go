package imagecreate

import "testing"

func TestValidate(t *testing.T) {
	for _, o := range []Options{
		{},
		{Out: "x.img", Suite: "bookworm; rm -rf /"},
		{Out: "x.img", Include: []string{"vim", "$(id)"}},
		{Out: "x.img", ExtraMB: -5},
	} {
		if err := o.validate(); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
	o := Options{Out: "x.img", Include: []string{"curl", "libc6-dev"}}
	if err := o.validate(); err != nil || o.Suite != "bookworm" || o.ExtraMB != 64 {
		t.Fatalf("%+v %v", o, err)
	}
	if got := joinPkgs(o.Include); got != "systemd,systemd-sysv,dbus,iproute2,curl,libc6-dev" {
		t.Fatal(got)
	}
}

func TestSizeFor(t *testing.T) {
	s := SizeFor(200<<20, 64)
	if s < 200<<20+64<<20 || s%(1<<20) != 0 || s > 320<<20 {
		t.Fatalf("SizeFor(200 MB) = %d MB", s>>20)
	}
}
