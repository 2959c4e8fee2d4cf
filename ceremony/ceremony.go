package ceremony

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/urne-vote/urne/ballot"
)

// Options tune a ceremony; the zero value is the production setting.
type Options struct {
	// ElectionID is written in every file, so a fragment of one election is never mistaken
	// for another's.
	ElectionID string
	// Suites are the ballot suites to create an election key for; nil means every suite.
	Suites []ballot.Suite
	// KDF is the argon2id setting of the locked files; the zero value means DefaultKDF.
	KDF KDFParams
}

// Result is what a ceremony produces: the public record, one locked fragment per holder the
// policy names (policy order), and one locked signing key per bureau member (list order).
// No private key and no unlocked fragment survives the ceremony.
type Result struct {
	PublicKeys  *PublicKeys
	Fragments   []*LockedFile
	SigningKeys []*LockedFile
}

// PublicKeys is the public record of a ceremony (ceremony.json): the election public keys,
// the policy, and the bureau members' signing keys. It is published and becomes part of the
// election's seal.
type PublicKeys struct {
	Format       string          `json:"format"`
	ElectionID   string          `json:"election_id,omitempty"`
	CeremonyID   ballot.Hex      `json:"ceremony_id"`
	Policy       string          `json:"policy"`
	PolicyDigest ballot.Hex      `json:"policy_digest"`
	ElectionKeys []ElectionKey   `json:"election_keys"`
	Members      []MemberKey     `json:"members"`
	KDF          KDFParams       `json:"kdf"`
	PolicyTree   json.RawMessage `json:"policy_tree"`
}

// ElectionKey is one suite's election public key in the public record.
type ElectionKey struct {
	Suite string `json:"suite"`
	KeyID string `json:"key_id"`
	PEM   string `json:"pem"`
}

// MemberKey is a bureau member's signing public key (Ed25519, PKIX PEM).
type MemberKey struct {
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	FullName  string `json:"full_name,omitempty"`
	PublicKey string `json:"public_key"`
}

// FormatCeremony is the format of the public record.
const FormatCeremony = "urne-ceremony-v1"

const ceremonyIDSize = 16

// Run holds the key ceremony: it checks the policy and the holders, creates the election key
// of each suite, wraps the private keys under a random 32-byte key, splits that key along the
// policy tree, and locks each holder's fragment and each bureau member's new signing key under
// their passphrase. passphrases maps each such person's name to their passphrase.
func Run(policy *Policy, people []Person, passphrases map[string][]byte, opts Options) (*Result, error) {
	if err := checkCeremony(policy, people, passphrases, opts); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	c := &run{policy: policy, opts: opts, id: make([]byte, ceremonyIDSize)}
	_, _ = rand.Read(c.id) // crypto/rand.Read never fails (it aborts the program instead)
	keys, err := generateKeys(opts.Suites)
	if err != nil {
		return nil, err
	}
	defer zeroKeys(keys)
	wrapKey, wrapped, err := c.wrapElectionKeys(keys)
	if err != nil {
		return nil, err
	}
	defer clear(wrapKey)
	res := &Result{PublicKeys: c.publicRecord(keys)}
	if res.Fragments, err = c.lockFragments(wrapKey, wrapped, people, passphrases); err != nil {
		return nil, err
	}
	if res.SigningKeys, res.PublicKeys.Members, err = c.signingKeys(people, passphrases); err != nil {
		return nil, err
	}
	return res, nil
}

type run struct {
	policy *Policy
	opts   Options
	id     []byte
}

func (o Options) withDefaults() Options {
	if o.Suites == nil {
		o.Suites = ballot.Suites
	}
	if o.KDF == (KDFParams{}) {
		o.KDF = DefaultKDF
	}
	return o
}

func checkCeremony(policy *Policy, people []Person, passphrases map[string][]byte, opts Options) error {
	if err := Check(policy, people, opts); err != nil {
		return err
	}
	for _, name := range Receivers(policy, people) {
		if len(passphrases[name]) < MinPassphraseLen {
			return errorf(ErrPassphrase, "%q receives a fragment or signing key but has no passphrase of at least %d characters", name, MinPassphraseLen)
		}
	}
	return nil
}

// Check runs every check of Run that needs no passphrase, so that a front end can refuse a
// bad policy or holder list before asking anyone to type a passphrase.
func Check(policy *Policy, people []Person, opts Options) error {
	if err := policy.Validate(); err != nil {
		return err
	}
	for _, h := range policy.Holders() {
		if policy.SatisfiedBy(h) {
			return errorf(ErrWeakPolicy, "holder %q alone satisfies policy %s: the election key would be in one person's hands", h, policy)
		}
	}
	if err := validatePeople(people); err != nil {
		return err
	}
	if err := checkHolders(policy, people); err != nil {
		return err
	}
	if err := checkSuites(opts.Suites); err != nil {
		return err
	}
	if opts.KDF != (KDFParams{}) {
		return opts.KDF.validate()
	}
	return nil
}

func checkSuites(suites []ballot.Suite) error {
	if suites != nil && len(suites) == 0 {
		return errorf(ErrPolicy, "no ballot suite chosen")
	}
	for i, s := range suites {
		if !s.Known() || slices.Contains(suites[:i], s) {
			return errorf(ErrPolicy, "ballot suite %s is unknown or listed twice", s)
		}
	}
	return nil
}

// Receivers are the people who get a locked file, and so need a passphrase: every holder the
// policy names, then every other bureau member.
func Receivers(policy *Policy, people []Person) []string {
	names := policy.Holders()
	for _, p := range people {
		if p.Role.IsBureau() && !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	return names
}

// generateElectionKey is a variable so that tests can reuse keys: RSA-4096 generation takes
// about a second.
var generateElectionKey = ballot.GenerateElectionKey

func generateKeys(suites []ballot.Suite) ([]*ballot.ElectionPrivateKey, error) {
	keys := make([]*ballot.ElectionPrivateKey, 0, len(suites))
	for _, s := range suites {
		k, err := generateElectionKey(s)
		if err != nil {
			zeroKeys(keys)
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func zeroKeys(keys []*ballot.ElectionPrivateKey) {
	for _, k := range keys {
		k.Zero()
	}
}

func (c *run) publicRecord(keys []*ballot.ElectionPrivateKey) *PublicKeys {
	tree, _ := c.policy.MarshalJSON() // a validated policy always encodes
	pk := &PublicKeys{
		Format: FormatCeremony, ElectionID: c.opts.ElectionID, CeremonyID: c.id,
		Policy: c.policy.String(), PolicyDigest: c.policy.Digest(), KDF: c.opts.KDF, PolicyTree: tree,
	}
	for _, k := range keys {
		pub := k.Public()
		pk.ElectionKeys = append(pk.ElectionKeys, ElectionKey{Suite: pub.Suite().String(), KeyID: pub.ID().String(), PEM: string(pub.MarshalPEM())})
	}
	return pk
}

// lockFragments splits wrapKey along the policy and locks each holder's fragment.
func (c *run) lockFragments(wrapKey, wrapped []byte, people []Person, passphrases map[string][]byte) ([]*LockedFile, error) {
	shares := map[string][]byte{}
	if err := distribute(c.policy, wrapKey, shares); err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range shares {
			clear(s)
		}
	}()
	var out []*LockedFile
	var lockErr error
	c.policy.walk(nil, func(leaf *Policy, path []byte) {
		if lockErr != nil {
			return
		}
		frag := &Fragment{ElectionID: c.opts.ElectionID, CeremonyID: c.id, Holder: leaf.Holder, Policy: c.policy.String(), path: path, share: shares[leaf.Holder], wrappedKeys: wrapped}
		plain := frag.marshal()
		defer clear(plain)
		f := c.header(FormatFragment, personNamed(people, leaf.Holder))
		f.Policy = frag.Policy
		lockErr = f.lock(c.opts.KDF, passphrases[leaf.Holder], plain)
		out = append(out, f)
	})
	return out, lockErr
}

func (c *run) header(format string, p Person) *LockedFile {
	return &LockedFile{Format: format, ElectionID: c.opts.ElectionID, CeremonyID: c.id, Owner: p.Name, Role: p.Role}
}

func personNamed(people []Person, name string) Person {
	for _, p := range people {
		if p.Name == name {
			return p
		}
	}
	return Person{Name: name}
}

// distribute shares secret down the policy tree: a gate splits what it receives among its
// members, a holder keeps it.
func distribute(p *Policy, secret []byte, out map[string][]byte) error {
	if p.IsHolder() {
		out[p.Holder] = secret
		return nil
	}
	shares, err := split(secret, p.Threshold, len(p.Members))
	if err != nil {
		return err
	}
	for i, m := range p.Members {
		if err := distribute(m, shares[i], out); err != nil {
			return err
		}
	}
	return nil
}

// signingKeys creates and locks an Ed25519 key for each bureau member.
func (c *run) signingKeys(people []Person, passphrases map[string][]byte) ([]*LockedFile, []MemberKey, error) {
	var locked []*LockedFile
	var members []MemberKey
	for _, p := range people {
		if !p.Role.IsBureau() {
			continue
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate signing key of %q: %w", p.Name, err)
		}
		f := c.header(FormatSigningKey, p)
		err = f.lock(c.opts.KDF, passphrases[p.Name], priv.Seed())
		clear(priv)
		if err != nil {
			return nil, nil, err
		}
		pubPEM, err := ballot.MarshalSigningPublicKeyPEM(pub)
		if err != nil {
			return nil, nil, err
		}
		locked = append(locked, f)
		members = append(members, MemberKey{Name: p.Name, Role: p.Role, FullName: p.FullName, PublicKey: string(pubPEM)})
	}
	return locked, members, nil
}

// maxPublicRecord bounds ParsePublicKeys.
const maxPublicRecord = 4 << 20

// ParsePublicKeys reads a ceremony's public record.
func ParsePublicKeys(data []byte) (*PublicKeys, error) {
	if len(data) > maxPublicRecord {
		return nil, errorf(ErrFileFormat, "ceremony record is %d bytes; at most %d are read", len(data), maxPublicRecord)
	}
	var pk PublicKeys
	if err := json.Unmarshal(data, &pk); err != nil {
		return nil, errorf(ErrFileFormat, "ceremony record is not valid JSON: %v", err)
	}
	if pk.Format != FormatCeremony {
		return nil, errorf(ErrFileFormat, "ceremony record has format %q; this build reads %s", pk.Format, FormatCeremony)
	}
	if _, err := ParsePolicy(pk.Policy); err != nil {
		return nil, err
	}
	return &pk, nil
}

// ElectionPublicKeys parses the election public keys of the record.
func (pk *PublicKeys) ElectionPublicKeys() ([]*ballot.ElectionPublicKey, error) {
	var pemText []byte
	for _, k := range pk.ElectionKeys {
		pemText = append(pemText, k.PEM...)
	}
	return ballot.ParseElectionPublicKeys(pemText)
}

// MemberPublicKeys maps each bureau member's name to their signing public key.
func (pk *PublicKeys) MemberPublicKeys() (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(pk.Members))
	for _, m := range pk.Members {
		pub, err := ballot.ParseSigningPublicKeyPEM([]byte(m.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("signing key of %q: %w", m.Name, err)
		}
		out[m.Name] = pub
	}
	return out, nil
}

// Marshal is the record's JSON text.
func (pk *PublicKeys) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(pk, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode ceremony record: %w", err)
	}
	return append(b, '\n'), nil
}
