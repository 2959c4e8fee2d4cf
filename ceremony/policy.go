package ceremony

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Policy is an access policy: a tree of threshold gates whose leaves are named holders. A
// gate is satisfied when at least Threshold of its members are; a holder is satisfied when
// their fragment is present. AND is n-of-n, OR is 1-of-n.
//
// A node is either a holder (Holder set, nothing else) or a gate (Threshold and Members).
type Policy struct {
	Holder    string
	Threshold int
	Members   []*Policy
}

// Limits on a policy: x coordinates of the secret sharing are one byte per gate level.
const (
	maxGateMembers = 255
	maxDepth       = 8
	maxHolders     = 255
	maxPolicyText  = 16 << 10
	maxNameLen     = 64
)

// Holder is the leaf naming one holder.
func Holder(name string) *Policy { return &Policy{Holder: name} }

// Gate is satisfied by any k of its members.
func Gate(k int, members ...*Policy) *Policy { return &Policy{Threshold: k, Members: members} }

// And is satisfied when every member is.
func And(members ...*Policy) *Policy { return Gate(len(members), members...) }

// Or is satisfied when any one member is.
func Or(members ...*Policy) *Policy { return Gate(1, members...) }

// KOfN is satisfied by any k of the named holders.
func KOfN(k int, holders ...string) *Policy {
	members := make([]*Policy, len(holders))
	for i, h := range holders {
		members[i] = Holder(h)
	}
	return Gate(k, members...)
}

// ArretePolicy is the rule of the French arrêtés on electronic voting in professional
// elections: "the key of the president or of the deputy, and two keys among those of the list
// delegates", that is and(or(president, deputy), 2-of(delegates...)).
func ArretePolicy(president, deputy string, delegates ...string) (*Policy, error) {
	if len(delegates) < 2 {
		return nil, errorf(ErrPolicy, "the arrêté rule needs at least two list delegates; %d given", len(delegates))
	}
	p := And(Or(Holder(president), Holder(deputy)), KOfN(2, delegates...))
	return p, p.Validate()
}

// IsHolder reports whether p is a leaf.
func (p *Policy) IsHolder() bool { return p.Holder != "" }

// Validate checks thresholds, names, uniqueness of holders, and size limits.
func (p *Policy) Validate() error {
	if p == nil {
		return errorf(ErrPolicy, "no policy")
	}
	seen := map[string]bool{}
	if err := p.validate(1, seen); err != nil {
		return err
	}
	if len(seen) > maxHolders {
		return errorf(ErrPolicy, "policy names %d holders; at most %d", len(seen), maxHolders)
	}
	return nil
}

func (p *Policy) validate(depth int, seen map[string]bool) error {
	if depth > maxDepth {
		return errorf(ErrPolicy, "policy nests deeper than %d gates", maxDepth)
	}
	if p.IsHolder() {
		if p.Threshold != 0 || len(p.Members) > 0 {
			return errorf(ErrPolicy, "holder %q cannot also be a gate", p.Holder)
		}
		if err := checkName(p.Holder); err != nil {
			return err
		}
		if seen[p.Holder] {
			return errorf(ErrPolicy, "holder %q appears twice in the policy", p.Holder)
		}
		seen[p.Holder] = true
		return nil
	}
	n := len(p.Members)
	if n == 0 || n > maxGateMembers {
		return errorf(ErrPolicy, "a gate needs 1 to %d members; this one has %d", maxGateMembers, n)
	}
	if p.Threshold < 1 || p.Threshold > n {
		return errorf(ErrPolicy, "gate %s: threshold %d must be between 1 and its %d members", p, p.Threshold, n)
	}
	for _, m := range p.Members {
		if m == nil {
			return errorf(ErrPolicy, "gate %s has an empty member", p)
		}
		if err := m.validate(depth+1, seen); err != nil {
			return err
		}
	}
	return nil
}

// checkName accepts holder names of letters, digits and ._@- ; the words of the text form
// (and, or, k-of) are reserved.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return errorf(ErrPolicy, "holder name %q must have 1 to %d characters", name, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return errorf(ErrPolicy, "holder name %q: character %q is not a letter, digit or one of ._@-", name, name[i])
		}
	}
	if name == "and" || name == "or" || thresholdWord(name) > 0 {
		return errorf(ErrPolicy, "holder name %q is a reserved word of the policy syntax", name)
	}
	return nil
}

func nameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-'
}

// thresholdWord returns k for a word "k-of", or 0.
func thresholdWord(w string) int {
	num, ok := strings.CutSuffix(w, "-of")
	if !ok {
		return 0
	}
	k, err := strconv.Atoi(num)
	if err != nil || k < 1 || strconv.Itoa(k) != num {
		return 0
	}
	return k
}

// String is the canonical text form: holders by name, gates as and(...) when k = n, or(...)
// when k = 1 < n, and k-of(...) otherwise, members joined by ", ". Two policies are the same
// policy exactly when their canonical texts are equal.
func (p *Policy) String() string {
	var b strings.Builder
	p.writeText(&b)
	return b.String()
}

func (p *Policy) writeText(b *strings.Builder) {
	if p.IsHolder() {
		b.WriteString(p.Holder)
		return
	}
	switch n := len(p.Members); {
	case p.Threshold == n:
		b.WriteString("and(")
	case p.Threshold == 1:
		b.WriteString("or(")
	default:
		fmt.Fprintf(b, "%d-of(", p.Threshold)
	}
	for i, m := range p.Members {
		if i > 0 {
			b.WriteString(", ")
		}
		if m != nil {
			m.writeText(b)
		}
	}
	b.WriteByte(')')
}

// Digest is the SHA-256 of the canonical text: what fragments and the seal record.
func (p *Policy) Digest() []byte {
	sum := sha256.Sum256([]byte(p.String()))
	return sum[:]
}

// Holders lists the holders in tree order (depth first, members in order).
func (p *Policy) Holders() []string {
	var out []string
	p.walk(nil, func(leaf *Policy, _ []byte) { out = append(out, leaf.Holder) })
	return out
}

// walk calls fn on each holder with its path: the 1-based member index at each gate from the
// root down, which is also the holder's x coordinate at each level of the secret sharing.
func (p *Policy) walk(path []byte, fn func(leaf *Policy, path []byte)) {
	if p.IsHolder() {
		fn(p, slices.Clone(path))
		return
	}
	for i, m := range p.Members {
		m.walk(append(path, byte(i+1)), fn)
	}
}

// SatisfiedBy reports whether the named holders together satisfy the policy.
func (p *Policy) SatisfiedBy(holders ...string) bool {
	if p.IsHolder() {
		return slices.Contains(holders, p.Holder)
	}
	have := 0
	for _, m := range p.Members {
		if m.SatisfiedBy(holders...) {
			have++
		}
	}
	return have >= p.Threshold
}

// ParsePolicy reads a policy in its text form ("and(or(president, deputy), 2-of(d1, d2, d3))")
// or its JSON form (text starting with "{", or a JSON string for a lone holder).
func ParsePolicy(text string) (*Policy, error) {
	if len(text) > maxPolicyText {
		return nil, errorf(ErrPolicy, "policy text is %d bytes; at most %d", len(text), maxPolicyText)
	}
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "{") || strings.HasPrefix(t, `"`) {
		var p Policy
		if err := json.Unmarshal([]byte(t), &p); err != nil {
			return nil, errorf(ErrPolicy, "policy JSON: %v", err)
		}
		return &p, p.Validate()
	}
	ps := policyParser{text: text}
	p, err := ps.policy(1)
	if err != nil {
		return nil, err
	}
	if ps.skipSpace(); ps.pos != len(ps.text) {
		return nil, ps.fail("unexpected text after the policy")
	}
	return p, p.Validate()
}

type policyParser struct {
	text string
	pos  int
}

func (ps *policyParser) fail(what string) error {
	return errorf(ErrPolicy, "policy text, at character %d: %s", ps.pos+1, what)
}

func (ps *policyParser) skipSpace() {
	for ps.pos < len(ps.text) && strings.IndexByte(" \t\r\n", ps.text[ps.pos]) >= 0 {
		ps.pos++
	}
}

func (ps *policyParser) word() string {
	ps.skipSpace()
	start := ps.pos
	for ps.pos < len(ps.text) && nameChar(ps.text[ps.pos]) {
		ps.pos++
	}
	return ps.text[start:ps.pos]
}

func (ps *policyParser) peek(c byte) bool {
	ps.skipSpace()
	return ps.pos < len(ps.text) && ps.text[ps.pos] == c
}

func (ps *policyParser) policy(depth int) (*Policy, error) {
	if depth > maxDepth {
		return nil, ps.fail(fmt.Sprintf("gates nest deeper than %d", maxDepth))
	}
	w := ps.word()
	if w == "" {
		return nil, ps.fail("expected a holder name or a gate")
	}
	if !ps.peek('(') {
		return Holder(w), nil
	}
	k := thresholdWord(w)
	if w != "and" && w != "or" && k == 0 {
		return nil, ps.fail(fmt.Sprintf("%q is not a gate: use and(...), or(...) or k-of(...)", w))
	}
	ps.pos++ // the '('
	members, err := ps.members(depth)
	if err != nil {
		return nil, err
	}
	switch w {
	case "and":
		return And(members...), nil
	case "or":
		return Or(members...), nil
	}
	return Gate(k, members...), nil
}

func (ps *policyParser) members(depth int) ([]*Policy, error) {
	var members []*Policy
	for {
		m, err := ps.policy(depth + 1)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
		switch {
		case ps.peek(','):
			ps.pos++
		case ps.peek(')'):
			ps.pos++
			return members, nil
		default:
			return nil, ps.fail("expected ',' or ')'")
		}
	}
}

// policyJSON is the JSON form of a gate: {"threshold": k, "of": [members]}; a holder is a
// JSON string.
type policyJSON struct {
	Threshold int               `json:"threshold"`
	Of        []json.RawMessage `json:"of"`
}

// MarshalJSON writes a holder as a string and a gate as {"threshold": k, "of": [...]}.
func (p *Policy) MarshalJSON() ([]byte, error) {
	if p.IsHolder() {
		return json.Marshal(p.Holder)
	}
	out := policyJSON{Threshold: p.Threshold, Of: make([]json.RawMessage, len(p.Members))}
	for i, m := range p.Members {
		b, err := m.MarshalJSON()
		if err != nil {
			return nil, err
		}
		out.Of[i] = b
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes. It checks structure only; call Validate.
func (p *Policy) UnmarshalJSON(data []byte) error {
	return p.unmarshal(data, 1)
}

func (p *Policy) unmarshal(data []byte, depth int) error {
	if depth > maxDepth {
		return errorf(ErrPolicy, "policy nests deeper than %d gates", maxDepth)
	}
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		*p = Policy{}
		return json.Unmarshal(data, &p.Holder)
	}
	var g policyJSON
	if err := json.Unmarshal(data, &g); err != nil {
		return err
	}
	*p = Policy{Threshold: g.Threshold, Members: make([]*Policy, len(g.Of))}
	for i, raw := range g.Of {
		p.Members[i] = new(Policy)
		if err := p.Members[i].unmarshal(raw, depth+1); err != nil {
			return err
		}
	}
	return nil
}
