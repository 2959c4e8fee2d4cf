package ceremony

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestGFArithmetic(t *testing.T) {
	// 0x57 * 0x83 = 0xc1 is the worked example of FIPS 197, section 4.2.
	if got := gfMul(0x57, 0x83); got != 0xc1 {
		t.Fatalf("0x57*0x83 = %#x, want 0xc1", got)
	}
	for a := 1; a < 256; a++ {
		if gfMul(byte(a), gfInv(byte(a))) != 1 {
			t.Fatalf("%#x * inverse != 1", a)
		}
	}
}

func TestShamirEveryKSubsetRebuilds(t *testing.T) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	const k, n = 3, 5
	shares, err := split(secret, k, n)
	if err != nil {
		t.Fatal(err)
	}
	for mask := 0; mask < 1<<n; mask++ {
		var xs []byte
		var ys [][]byte
		for i := range n {
			if mask&(1<<i) != 0 {
				xs, ys = append(xs, byte(i+1)), append(ys, shares[i])
			}
		}
		if len(xs) == 0 {
			continue
		}
		got := combine(xs, ys)
		if len(xs) >= k && !bytes.Equal(got, secret) {
			t.Fatalf("shares %v do not rebuild the secret", xs)
		}
		if len(xs) < k && bytes.Equal(got, secret) {
			t.Fatalf("only %d shares %v rebuilt the secret", len(xs), xs)
		}
	}
}

func TestShamirOneOfNGivesEachTheSecret(t *testing.T) {
	secret := []byte("a 32-byte secret for the test!!!")
	shares, _ := split(secret, 1, 3)
	for i, s := range shares {
		if !bytes.Equal(s, secret) {
			t.Fatalf("1-of-3 share %d is not the secret", i)
		}
	}
}
