package ceremony

import (
	"os"
	"sync"
	"testing"

	"github.com/urne-vote/urne/ballot"
)

// testKDF keeps argon2id cheap in tests; the production setting is DefaultKDF.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// Election keys are generated once per suite and handed out as fresh copies (Run zeroes the
// keys it used), because RSA-4096 generation takes about a second, more under -race.
var (
	keyCacheMu sync.Mutex
	keyCache   = map[ballot.Suite][]byte{}
)

func cachedElectionKey(s ballot.Suite) (*ballot.ElectionPrivateKey, error) {
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	if b, ok := keyCache[s]; ok {
		return ballot.ParseElectionPrivateKey(b)
	}
	k, err := ballot.GenerateElectionKey(s)
	if err != nil {
		return nil, err
	}
	b, err := k.MarshalBinary()
	if err != nil {
		return nil, err
	}
	keyCache[s] = b
	return ballot.ParseElectionPrivateKey(b)
}

func TestMain(m *testing.M) {
	generateElectionKey = cachedElectionKey
	os.Exit(m.Run())
}

func bureau() []Person {
	return []Person{
		{Name: "president", Role: RolePresident, FullName: "Claire Martin"},
		{Name: "deputy", Role: RoleDeputy, FullName: "Paul Durand"},
		{Name: "secretary", Role: RoleSecretary, FullName: "Inès Petit"},
		{Name: "delegate-a", Role: RoleDelegate, FullName: "Liste A"},
		{Name: "delegate-b", Role: RoleDelegate, FullName: "Liste B"},
		{Name: "delegate-c", Role: RoleDelegate, FullName: "Liste C"},
		{Name: "observer", Role: RoleObserver},
		{Name: "ops", Role: RoleOperator},
	}
}

func passphrasesFor(people []Person) map[string][]byte {
	out := map[string][]byte{}
	for _, p := range people {
		out[p.Name] = []byte("correct horse battery staple of " + p.Name)
	}
	return out
}

func hpkeOnly() Options {
	return Options{ElectionID: "cnam-2026", Suites: []ballot.Suite{ballot.SuiteHPKE}, KDF: testKDF}
}

func runCeremony(t testing.TB, policy *Policy, people []Person, opts Options) *Result {
	t.Helper()
	res, err := Run(policy, people, passphrasesFor(people), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// unlockAll unlocks every fragment of res, by holder name.
func unlockAll(t testing.TB, res *Result) map[string]*Fragment {
	t.Helper()
	out := map[string]*Fragment{}
	for _, f := range res.Fragments {
		frag, err := f.UnlockFragment([]byte("correct horse battery staple of " + f.Owner))
		if err != nil {
			t.Fatalf("unlock fragment of %s: %v", f.Owner, err)
		}
		out[f.Owner] = frag
	}
	return out
}

func pick(all map[string]*Fragment, names ...string) []*Fragment {
	out := make([]*Fragment, 0, len(names))
	for _, n := range names {
		out = append(out, all[n])
	}
	return out
}
