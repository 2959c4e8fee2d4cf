package ceremony

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func arrete(t testing.TB) *Policy {
	t.Helper()
	p, err := ArretePolicy("president", "deputy", "delegate-a", "delegate-b", "delegate-c")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyText(t *testing.T) {
	tests := []struct {
		in, canonical string
	}{
		{"and(or(president, deputy), 2-of(delegate-a, delegate-b, delegate-c))", "and(or(president, deputy), 2-of(delegate-a, delegate-b, delegate-c))"},
		{" and ( or(p,d) ,2-of( a , b,c ) ) ", "and(or(p, d), 2-of(a, b, c))"},
		{"3-of(a, b, c)", "and(a, b, c)"},
		{"1-of(a, b)", "or(a, b)"},
		{"2-of(a, b, c, d)", "2-of(a, b, c, d)"},
		{"or(and(a, b), and(c, 2-of(d, e, f)))", "or(and(a, b), and(c, 2-of(d, e, f)))"},
	}
	for _, tt := range tests {
		p, err := ParsePolicy(tt.in)
		if err != nil {
			t.Fatalf("ParsePolicy(%q): %v", tt.in, err)
		}
		if got := p.String(); got != tt.canonical {
			t.Fatalf("ParsePolicy(%q).String() = %q, want %q", tt.in, got, tt.canonical)
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePolicy(string(js))
		if err != nil || back.String() != tt.canonical {
			t.Fatalf("JSON round trip of %s: %s, %v (%s)", tt.canonical, back, err, js)
		}
	}
	if got := arrete(t).String(); got != "and(or(president, deputy), 2-of(delegate-a, delegate-b, delegate-c))" {
		t.Fatalf("ArretePolicy = %s", got)
	}
}

func TestPolicyJSONForm(t *testing.T) {
	js, _ := json.Marshal(arrete(t))
	want := `{"threshold":2,"of":[{"threshold":1,"of":["president","deputy"]},{"threshold":2,"of":["delegate-a","delegate-b","delegate-c"]}]}`
	if string(js) != want {
		t.Fatalf("policy JSON:\n%s\nwant\n%s", js, want)
	}
}

func TestPolicyRefused(t *testing.T) {
	deep := strings.Repeat("and(", maxDepth+1) + "a" + strings.Repeat(")", maxDepth+1)
	tests := []string{
		"", "and()", "and(a,)", "and(a, b", "and(a, b))", "xor(a, b)", "0-of(a)", "3-of(a, b)",
		"and(a, a)", "and(a, or(b, a))", "and(a b)", "and(a, b c)", "and(a, 'b')", "and(and, b)",
		"and(a, 2-of)", "02-of(a, b, c)", deep, `{"threshold":0,"of":["a"]}`, `{"threshold":1,"of":[""]}`,
		`{"threshold":1,"of":[]}`, `{"threshold":1}`, `{"of":["a"]}`, `{"threshold":1,"of":["a b"]}`,
	}
	for _, in := range tests {
		if p, err := ParsePolicy(in); !errors.Is(err, ErrPolicy) {
			t.Fatalf("ParsePolicy(%q) = %v, %v; want ErrPolicy", in, p, err)
		}
	}
	if _, err := ArretePolicy("p", "d", "only-one"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("arrêté rule with one delegate: %v", err)
	}
	if err := Gate(2, Holder("a"), nil).Validate(); !errors.Is(err, ErrPolicy) {
		t.Fatalf("gate with a nil member: %v", err)
	}
}

func TestArreteSatisfiedBy(t *testing.T) {
	p := arrete(t)
	tests := []struct {
		holders []string
		want    bool
	}{
		{[]string{"president", "delegate-a", "delegate-b"}, true},
		{[]string{"deputy", "delegate-b", "delegate-c"}, true},
		{[]string{"president", "deputy", "delegate-a", "delegate-b", "delegate-c"}, true},
		{[]string{"delegate-a", "delegate-b"}, false},
		{[]string{"delegate-a", "delegate-b", "delegate-c"}, false},
		{[]string{"president"}, false},
		{[]string{"president", "deputy"}, false},
		{[]string{"president", "delegate-a"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := p.SatisfiedBy(tt.holders...); got != tt.want {
			t.Fatalf("SatisfiedBy(%v) = %v, want %v", tt.holders, got, tt.want)
		}
	}
}

func TestPolicyHoldersInTreeOrder(t *testing.T) {
	got := strings.Join(arrete(t).Holders(), " ")
	if got != "president deputy delegate-a delegate-b delegate-c" {
		t.Fatalf("Holders() = %s", got)
	}
}
