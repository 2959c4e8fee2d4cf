package ceremony

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/urne-vote/urne/ballot"
)

// PrivateKeys are the election private keys rebuilt for the tally. They must be zeroed as soon
// as the count is done.
type PrivateKeys struct {
	ElectionID string
	CeremonyID []byte
	keys       []*ballot.ElectionPrivateKey
}

// Rebuild combines unlocked fragments into the election private keys. It fails, naming the
// gates that are short, when the fragments do not satisfy policy; and it fails when the
// fragments come from another ceremony or were made under another policy than the one given.
func Rebuild(policy *Policy, fragments []*Fragment) (*PrivateKeys, error) {
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	byHolder, err := checkFragments(policy, fragments)
	if err != nil {
		return nil, err
	}
	wrapKey, reasons := rebuildGate(policy, nil, byHolder)
	if wrapKey == nil {
		return nil, errorf(ErrNotSatisfied, "the fragments of %s do not satisfy the policy %s: %s",
			strings.Join(sortedKeys(byHolder), ", "), policy, strings.Join(reasons, "; "))
	}
	defer clear(wrapKey)
	first := fragments[0]
	keys, err := unwrapElectionKeys(wrapKey, first.wrappedKeys, first.CeremonyID, policy.Digest())
	if err != nil {
		return nil, err
	}
	return &PrivateKeys{ElectionID: first.ElectionID, CeremonyID: bytes.Clone(first.CeremonyID), keys: keys}, nil
}

// checkFragments checks that the fragments belong together and to policy, and indexes them
// by holder.
func checkFragments(policy *Policy, fragments []*Fragment) (map[string]*Fragment, error) {
	if len(fragments) == 0 {
		return nil, errorf(ErrNotSatisfied, "no fragment given for policy %s", policy)
	}
	first, want := fragments[0], policy.String()
	byHolder := map[string]*Fragment{}
	for _, f := range fragments {
		switch {
		case f.Policy != want:
			return nil, errorf(ErrMismatch, "the fragment of %q was made under policy %s, not %s", f.Holder, f.Policy, want)
		case !bytes.Equal(f.CeremonyID, first.CeremonyID) || f.ElectionID != first.ElectionID:
			return nil, errorf(ErrMismatch, "the fragment of %q comes from ceremony %x of election %q, the fragment of %q from ceremony %x of election %q",
				f.Holder, f.CeremonyID, f.ElectionID, first.Holder, first.CeremonyID, first.ElectionID)
		case !bytes.Equal(f.wrappedKeys, first.wrappedKeys):
			return nil, errorf(ErrCorrupt, "the fragments of %q and %q carry different wrapped keys: one was altered", f.Holder, first.Holder)
		case byHolder[f.Holder] != nil:
			return nil, errorf(ErrMismatch, "two fragments of %q were given", f.Holder)
		}
		byHolder[f.Holder] = f
	}
	return byHolder, nil
}

// rebuildGate rebuilds the secret a policy node received at the ceremony, or returns nil and
// the reasons it cannot: the innermost gates that are short of fragments.
func rebuildGate(p *Policy, path []byte, byHolder map[string]*Fragment) ([]byte, []string) {
	if p.IsHolder() {
		f := byHolder[p.Holder]
		if f == nil {
			return nil, nil
		}
		if !bytes.Equal(f.path, path) || len(f.share) != keySize {
			return nil, []string{fmt.Sprintf("the fragment of %q does not sit where the policy puts that holder", p.Holder)}
		}
		return bytes.Clone(f.share), nil
	}
	var xs []byte
	var ys [][]byte
	var inner []string
	for i, m := range p.Members {
		if len(xs) == p.Threshold {
			break
		}
		y, why := rebuildGate(m, append(slices.Clip(path), byte(i+1)), byHolder)
		if y == nil {
			inner = append(inner, why...)
			continue
		}
		xs, ys = append(xs, byte(i+1)), append(ys, y)
	}
	defer func() {
		for _, y := range ys {
			clear(y)
		}
	}()
	if len(xs) < p.Threshold {
		if len(inner) == 0 {
			inner = []string{fmt.Sprintf("%s needs %d of its members and has %d", p, p.Threshold, len(xs))}
		}
		return nil, inner
	}
	return combine(xs, ys), nil
}

func sortedKeys(m map[string]*Fragment) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// OpenBallot decrypts an inner ballot with the rebuilt key of its suite.
func (k *PrivateKeys) OpenBallot(inner []byte) (ballot.Vote, error) {
	info, err := ballot.InspectBallot(inner)
	if err != nil {
		return ballot.Vote{}, err
	}
	for _, key := range k.keys {
		if key.Public().Suite() == info.Suite {
			return ballot.OpenBallot(key, inner)
		}
	}
	return ballot.Vote{}, fmt.Errorf("ballot sealed to %s key %s, but the rebuilt keys hold no %s key: %w", info.Suite, info.KeyID, info.Suite, ballot.ErrWrongKey)
}

// PublicKeys are the public halves of the rebuilt keys.
func (k *PrivateKeys) PublicKeys() []*ballot.ElectionPublicKey {
	out := make([]*ballot.ElectionPublicKey, len(k.keys))
	for i, key := range k.keys {
		out[i] = key.Public()
	}
	return out
}

// Zero destroys the rebuilt keys (see ballot.ElectionPrivateKey.Zero for what that can and
// cannot promise); afterwards OpenBallot fails.
func (k *PrivateKeys) Zero() {
	if k == nil {
		return
	}
	zeroKeys(k.keys)
}
