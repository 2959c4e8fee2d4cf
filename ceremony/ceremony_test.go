package ceremony

import (
	"crypto/ed25519"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/urne-vote/urne/ballot"
)

func TestArreteRuleRebuild(t *testing.T) {
	policy := arrete(t)
	res := runCeremony(t, policy, bureau(), hpkeOnly())
	frags := unlockAll(t, res)
	pubs, err := res.PublicKeys.ElectionPublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	vote := ballot.Vote{Scrutin: "cte", List: "list-a"}
	inner, err := ballot.SealBallot(pubs[0], vote)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		holders []string
		ok      bool
		why     string
	}{
		{[]string{"president", "delegate-a", "delegate-b"}, true, ""},
		{[]string{"deputy", "delegate-b", "delegate-c"}, true, ""},
		{[]string{"delegate-c", "president", "deputy", "delegate-a"}, true, ""},
		{[]string{"delegate-a", "delegate-b"}, false, "or(president, deputy) needs 1"},
		{[]string{"delegate-a", "delegate-b", "delegate-c"}, false, "or(president, deputy) needs 1"},
		{[]string{"president"}, false, "2-of(delegate-a, delegate-b, delegate-c) needs 2"},
		{[]string{"president", "deputy", "delegate-a"}, false, "2-of(delegate-a, delegate-b, delegate-c) needs 2 of its members and has 1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.holders, "+"), func(t *testing.T) {
			keys, err := Rebuild(policy, pick(frags, tt.holders...))
			if !tt.ok {
				if !errors.Is(err, ErrNotSatisfied) || !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("Rebuild = %v; want ErrNotSatisfied saying %q", err, tt.why)
				}
				return
			}
			if err != nil {
				t.Fatalf("Rebuild: %v", err)
			}
			defer keys.Zero()
			got, err := keys.OpenBallot(inner)
			if err != nil || !reflect.DeepEqual(got, vote) {
				t.Fatalf("rebuilt key opens %+v, %v", got, err)
			}
		})
	}
}

// Every subset of holders rebuilds the key exactly when it satisfies the policy, for a policy
// mixing AND, OR and thresholds at three levels.
func TestRebuildIffSatisfied(t *testing.T) {
	policy, err := ParsePolicy("or(and(a, b), 2-of(c, and(d, e), or(f, g)))")
	if err != nil {
		t.Fatal(err)
	}
	var people []Person
	for _, h := range policy.Holders() {
		people = append(people, Person{Name: h, Role: RoleMember})
	}
	frags := unlockAll(t, runCeremony(t, policy, people, hpkeOnly()))
	names := policy.Holders()
	for mask := 1; mask < 1<<len(names); mask++ {
		var subset []string
		for i, n := range names {
			if mask&(1<<i) != 0 {
				subset = append(subset, n)
			}
		}
		keys, err := Rebuild(policy, pick(frags, subset...))
		if want := policy.SatisfiedBy(subset...); want != (err == nil) {
			t.Fatalf("holders %v: satisfied=%v but Rebuild error %v", subset, want, err)
		}
		if err != nil && !errors.Is(err, ErrNotSatisfied) {
			t.Fatalf("holders %v: %v, want ErrNotSatisfied", subset, err)
		}
		keys.Zero()
	}
}

func TestThresholdKOfN(t *testing.T) {
	policy := KOfN(3, "m1", "m2", "m3", "m4", "m5")
	people := []Person{{Name: "m1", Role: RoleMember}, {Name: "m2", Role: RoleMember}, {Name: "m3", Role: RoleMember}, {Name: "m4", Role: RoleMember}, {Name: "m5", Role: RoleMember}}
	frags := unlockAll(t, runCeremony(t, policy, people, hpkeOnly()))
	if _, err := Rebuild(policy, pick(frags, "m2", "m4", "m5")); err != nil {
		t.Fatalf("3 of 5: %v", err)
	}
	if _, err := Rebuild(policy, pick(frags, "m1", "m5")); !errors.Is(err, ErrNotSatisfied) {
		t.Fatalf("2 of 5: %v", err)
	}
}

func TestBothSuites(t *testing.T) {
	opts := hpkeOnly()
	opts.Suites = nil // every suite
	res := runCeremony(t, arrete(t), bureau(), opts)
	pubs, err := res.PublicKeys.ElectionPublicKeys()
	if err != nil || len(pubs) != len(ballot.Suites) {
		t.Fatalf("public record holds %d election keys, %v", len(pubs), err)
	}
	keys, err := Rebuild(arrete(t), pick(unlockAll(t, res), "deputy", "delegate-a", "delegate-c"))
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Zero()
	for _, pub := range pubs {
		inner, _ := ballot.SealBallot(pub, ballot.BlankVote("cte"))
		if v, err := keys.OpenBallot(inner); err != nil || !v.Blank {
			t.Fatalf("%s ballot: %+v, %v", pub.Suite(), v, err)
		}
	}
}

func TestZeroedKeysOpenNothing(t *testing.T) {
	res := runCeremony(t, arrete(t), bureau(), hpkeOnly())
	keys, err := Rebuild(arrete(t), pick(unlockAll(t, res), "president", "delegate-a", "delegate-b"))
	if err != nil {
		t.Fatal(err)
	}
	pubs, _ := res.PublicKeys.ElectionPublicKeys()
	inner, _ := ballot.SealBallot(pubs[0], ballot.BlankVote("cte"))
	keys.Zero()
	if _, err := keys.OpenBallot(inner); err == nil {
		t.Fatal("zeroed keys still open a ballot")
	}
}

func TestOperatorsCannotHoldFragments(t *testing.T) {
	for _, role := range []Role{RoleOperator, RoleTechnical, RoleObserver, RoleExpert} {
		people := append(bureau(), Person{Name: "staff", Role: role})
		policy := And(Or(Holder("president"), Holder("deputy")), KOfN(2, "delegate-a", "staff"))
		_, err := Run(policy, people, passphrasesFor(people), hpkeOnly())
		if !errors.Is(err, ErrForbiddenHolder) || !strings.Contains(err.Error(), string(role)) {
			t.Fatalf("role %s in the policy: %v, want ErrForbiddenHolder", role, err)
		}
	}
}

func TestRunRefusesBadSetup(t *testing.T) {
	people := bureau()
	pass := passphrasesFor(people)
	short := passphrasesFor(people)
	short["delegate-b"] = []byte("too short")
	missingSecretary := passphrasesFor(people)
	delete(missingSecretary, "secretary")
	tests := []struct {
		name   string
		policy *Policy
		people []Person
		pass   map[string][]byte
		opts   Options
		want   error
	}{
		{"one holder satisfies the policy", Or(Holder("president"), Holder("deputy")), people, pass, hpkeOnly(), ErrWeakPolicy},
		{"holder missing from the list", KOfN(2, "president", "nobody"), people, pass, hpkeOnly(), ErrHolders},
		{"short passphrase", arrete(t), people, short, hpkeOnly(), ErrPassphrase},
		{"bureau member without passphrase", arrete(t), people, missingSecretary, hpkeOnly(), ErrPassphrase},
		{"duplicate person", arrete(t), append(bureau(), Person{Name: "president", Role: RoleDeputy}), pass, hpkeOnly(), ErrHolders},
		{"unknown role", arrete(t), append(bureau(), Person{Name: "x", Role: "king"}), pass, hpkeOnly(), ErrHolders},
		{"invalid policy", Gate(4, Holder("president")), people, pass, hpkeOnly(), ErrPolicy},
		{"unknown suite", arrete(t), people, pass, Options{Suites: []ballot.Suite{9}, KDF: testKDF}, ErrPolicy},
		{"weak kdf", arrete(t), people, pass, Options{KDF: KDFParams{Time: 1, MemoryKiB: 1, Threads: 1}}, ErrFileFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(tt.policy, tt.people, tt.pass, tt.opts); !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWrongPassphrase(t *testing.T) {
	res := runCeremony(t, arrete(t), bureau(), hpkeOnly())
	f := res.Fragments[0]
	_, err := f.UnlockFragment([]byte("correct horse battery staple of deputy"))
	if !errors.Is(err, ErrWrongPassphrase) || !strings.Contains(err.Error(), `"president"`) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := res.SigningKeys[0].UnlockSigningKey([]byte("nope nope nope nope")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase on a signing key: %v", err)
	}
}

func TestLockedFileRoundTripAndTamper(t *testing.T) {
	res := runCeremony(t, arrete(t), bureau(), hpkeOnly())
	data, err := res.Fragments[1].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseLockedFile(data)
	if err != nil {
		t.Fatalf("ParseLockedFile: %v", err)
	}
	pass := []byte("correct horse battery staple of deputy")
	if _, err := f.UnlockFragment(pass); err != nil {
		t.Fatalf("unlock after a file round trip: %v", err)
	}
	// Giving the deputy's file to the president (editing the owner) must not work.
	edited, _ := ParseLockedFile([]byte(strings.Replace(string(data), `"owner": "deputy"`, `"owner": "president"`, 1)))
	if _, err := edited.UnlockFragment(pass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("edited owner: %v", err)
	}
	if _, err := f.UnlockSigningKey(pass); !errors.Is(err, ErrFileFormat) {
		t.Fatalf("fragment unlocked as a signing key: %v", err)
	}
	for _, bad := range []string{"", "{}", `{"format":"urne-fragment-v1","owner":"x","kdf":{"algorithm":"argon2id","time":1,"memory_kib":4194304,"threads":1}}`} {
		if _, err := ParseLockedFile([]byte(bad)); !errors.Is(err, ErrFileFormat) {
			t.Fatalf("ParseLockedFile(%q) = %v", bad, err)
		}
	}
}

func TestSigningKeys(t *testing.T) {
	res := runCeremony(t, arrete(t), bureau(), hpkeOnly())
	pubs, err := res.PublicKeys.MemberPublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range res.SigningKeys {
		names = append(names, f.Owner)
		priv, err := f.UnlockSigningKey([]byte("correct horse battery staple of " + f.Owner))
		if err != nil {
			t.Fatal(err)
		}
		sig := ed25519.Sign(priv, []byte("minutes"))
		if !ed25519.Verify(pubs[f.Owner], []byte("minutes"), sig) {
			t.Fatalf("signing key of %s does not match the public record", f.Owner)
		}
	}
	if got := strings.Join(names, " "); got != "president deputy secretary delegate-a delegate-b delegate-c" {
		t.Fatalf("signing keys for %s; observers and operators get none", got)
	}
}

func TestRebuildRefusesMismatchedFragments(t *testing.T) {
	policy := arrete(t)
	a := unlockAll(t, runCeremony(t, policy, bureau(), hpkeOnly()))
	b := unlockAll(t, runCeremony(t, policy, bureau(), hpkeOnly()))
	if _, err := Rebuild(policy, []*Fragment{a["president"], b["delegate-a"], a["delegate-b"]}); !errors.Is(err, ErrMismatch) {
		t.Fatalf("fragments of two ceremonies: %v", err)
	}
	other := KOfN(2, "president", "delegate-a", "delegate-b")
	if _, err := Rebuild(other, pick(a, "president", "delegate-a", "delegate-b")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("fragments under another policy: %v", err)
	}
	if _, err := Rebuild(policy, pick(a, "president", "president", "delegate-a")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("one holder's fragment twice: %v", err)
	}
	if _, err := Rebuild(policy, nil); !errors.Is(err, ErrNotSatisfied) {
		t.Fatalf("no fragments: %v", err)
	}
}

func TestRebuildDetectsAlteredShare(t *testing.T) {
	policy := arrete(t)
	frags := unlockAll(t, runCeremony(t, policy, bureau(), hpkeOnly()))
	frags["delegate-b"].share[3] ^= 1
	if _, err := Rebuild(policy, pick(frags, "president", "delegate-a", "delegate-b")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("altered share: %v, want ErrCorrupt", err)
	}
	frags["delegate-b"].share[3] ^= 1
	frags["delegate-a"].path = []byte{2, 3}
	if _, err := Rebuild(policy, pick(frags, "president", "delegate-a", "delegate-b")); !errors.Is(err, ErrNotSatisfied) {
		t.Fatalf("fragment at the wrong place: %v", err)
	}
}

func TestPublicRecordRoundTrip(t *testing.T) {
	res := runCeremony(t, arrete(t), bureau(), hpkeOnly())
	data, err := res.PublicKeys.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePublicKeys(data)
	if err != nil {
		t.Fatalf("ParsePublicKeys: %v", err)
	}
	if back.Policy != arrete(t).String() || back.ElectionID != "cnam-2026" || len(back.Members) != 6 {
		t.Fatalf("record after round trip: %+v", back)
	}
	tree, err := ParsePolicy(string(back.PolicyTree))
	if err != nil || tree.String() != back.Policy {
		t.Fatalf("policy tree %s does not match policy %s: %v", back.PolicyTree, back.Policy, err)
	}
	if got := (Options{}).withDefaults(); got.KDF != DefaultKDF || len(got.Suites) != len(ballot.Suites) {
		t.Fatalf("zero Options default to %+v", got)
	}
}
