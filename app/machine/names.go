package machine

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// catNames make the readable random hostnames the original HyperOS gave its VMs.
var catNames = []string{
	"tiger", "smokey", "mittens", "simba", "felix", "oscar", "luna", "milo",
	"nala", "shadow", "ginger", "pepper", "whiskers", "socks", "misty", "boots",
	"cleo", "jasper", "willow", "pumpkin", "biscuit", "mochi", "olive", "pixel",
	"salem", "tofu", "ziggy", "bean", "clover", "domino", "ember", "fig",
	"hazel", "juniper", "kiki", "lemon", "marble", "nutmeg", "otis", "pippin",
	"quincy", "rusty", "sable", "thistle", "umber", "velvet", "waffles", "yuki",
}

// RandomName returns a hostname such as "smokey-mittens-42".
func RandomName() string {
	pick := func(n int) int {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		return int(v.Int64())
	}
	a, b := pick(len(catNames)), pick(len(catNames))
	for b == a {
		b = pick(len(catNames))
	}
	return fmt.Sprintf("%s-%s-%d", catNames[a], catNames[b], pick(90)+10)
}
