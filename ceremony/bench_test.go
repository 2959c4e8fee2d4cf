package ceremony

import "testing"

// BenchmarkUnlockDefaultKDF is the cost of one passphrase check with the production argon2id
// setting: what a holder waits for, and what each guess costs an attacker.
func BenchmarkUnlockDefaultKDF(b *testing.B) {
	people := []Person{{Name: "a", Role: RoleMember}, {Name: "b", Role: RoleMember}}
	opts := hpkeOnly()
	opts.KDF = DefaultKDF
	res, err := Run(KOfN(2, "a", "b"), people, passphrasesFor(people), opts)
	if err != nil {
		b.Fatal(err)
	}
	pass := []byte("correct horse battery staple of a")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := res.Fragments[0].UnlockFragment(pass); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRebuildArrete(b *testing.B) {
	res := runCeremony(b, arrete(b), bureau(), hpkeOnly())
	frags := pick(unlockAll(b, res), "president", "delegate-a", "delegate-b")
	b.ReportAllocs()
	for b.Loop() {
		keys, err := Rebuild(arrete(b), frags)
		if err != nil {
			b.Fatal(err)
		}
		keys.Zero()
	}
}
