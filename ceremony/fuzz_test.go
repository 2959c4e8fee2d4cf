package ceremony

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParsePolicy: the policy parser never panics, and what it accepts prints to a canonical
// text that parses back to itself.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		"and(or(president, deputy), 2-of(delegate-a, delegate-b, delegate-c))",
		"or(and(a, b), 2-of(c, and(d, e), or(f, g)))", "a", "2-of(a,b", `{"threshold":1,"of":["a","b"]}`,
		`{"threshold":1,"of":[{"threshold":2,"of":["a","b"]},"c"]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParsePolicy(text)
		if err != nil {
			return
		}
		again, err := ParsePolicy(p.String())
		if err != nil || again.String() != p.String() {
			t.Fatalf("canonical text %q does not parse back: %v", p.String(), err)
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if fromJSON, err := ParsePolicy(string(js)); err != nil || fromJSON.String() != p.String() {
			t.Fatalf("JSON form %s does not parse back: %v", js, err)
		}
	})
}

// lockedFixture is a fragment of alice under 2-of(alice, bob, carol), locked with
// "correct horse battery staple of alice" and testKDF. It is a constant, not generated in the
// fuzz target, because fuzzing workers are separate processes: each would make its own.
const lockedFixture = `{
  "format": "urne-fragment-v1",
  "election_id": "cnam-2026",
  "ceremony_id": "584c0b4d275c1cbfbc9b155aabddeea8",
  "owner": "alice",
  "role": "member",
  "policy": "2-of(alice, bob, carol)",
  "kdf": {
    "algorithm": "argon2id",
    "time": 1,
    "memory_kib": 64,
    "threads": 1,
    "salt": "16ef8530b0ff9bba678034826272d597"
  },
  "nonce": "ec3b75966c86dddd087e0209",
  "ciphertext": "cDfXgkQJPbR6IL1DDYSCRbFA8Fe8a/3bOyniXPrS8VPp68QU//kKIZ9wvXkeyv7FY+UL6TFdNK4OQ5Jl82ikMw2/h9Cv5UJqhu+mCFIXGKe/QOXjZCF4cc5FJE9cej0Oz70dNmBM9ibfkvUHPrjzCewubyEn6P+QoQ=="
}
`

// FuzzParseLockedFile: the locked-file reader never panics, and nothing but the genuine file
// opens with the right passphrase.
func FuzzParseLockedFile(f *testing.F) {
	res := runCeremony(f, arrete(f), bureau(), hpkeOnly())
	signing, _ := res.SigningKeys[0].Marshal()
	f.Add([]byte(lockedFixture))
	f.Add(signing)
	f.Add([]byte(`{"format":"urne-fragment-v1"}`))
	pass := []byte("correct horse battery staple of alice")
	genuine, err := ParseLockedFile([]byte(lockedFixture))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := genuine.UnlockFragment(pass); err != nil {
		f.Fatalf("fixture does not open: %v", err)
	}
	want, _ := genuine.Marshal()
	f.Fuzz(func(t *testing.T, data []byte) {
		lf, err := ParseLockedFile(data)
		if err != nil {
			return
		}
		if lf.KDF.MemoryKiB > 1<<12 || lf.KDF.Time > 4 {
			return // valid but slow: not what this target measures
		}
		if _, err := lf.UnlockFragment(pass); err == nil {
			if again, _ := lf.Marshal(); !bytes.Equal(again, want) {
				t.Fatalf("a file other than the genuine one opened:\n%s", again)
			}
		}
		_, _ = lf.UnlockSigningKey(pass)
	})
}

// FuzzDecodeFragment: the fragment plaintext decoder never panics.
func FuzzDecodeFragment(f *testing.F) {
	frag := &Fragment{Holder: "h", path: []byte{1, 2}, share: make([]byte, keySize), wrappedKeys: []byte("wrapped")}
	f.Add(frag.marshal())
	f.Add([]byte{fragmentVersion, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Fragment
		if got.unmarshal(data) == nil && !bytes.Equal(got.marshal(), data) {
			t.Fatalf("fragment decoding is not canonical")
		}
	})
}

// FuzzParseHolders: the holder list reader never panics.
func FuzzParseHolders(f *testing.F) {
	js, _ := json.Marshal(bureau())
	f.Add(js)
	f.Add([]byte(`[{"name":"a","role":"king"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		people, err := ParseHolders(data)
		if err != nil {
			return
		}
		for _, p := range people {
			if !p.Role.Known() {
				t.Fatalf("accepted unknown role %q", p.Role)
			}
		}
	})
}

// FuzzParsePublicKeys: the ceremony record reader never panics.
func FuzzParsePublicKeys(f *testing.F) {
	res := runCeremony(f, arrete(f), bureau(), hpkeOnly())
	data, _ := res.PublicKeys.Marshal()
	f.Add(data)
	f.Add([]byte(`{"format":"urne-ceremony-v1","policy":"and(a,b)"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pk, err := ParsePublicKeys(data)
		if err != nil {
			return
		}
		_, _ = pk.ElectionPublicKeys()
		_, _ = pk.MemberPublicKeys()
	})
}
