package ballot

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestVoteRoundTrip(t *testing.T) {
	long := strings.Repeat("x", MaxIDLen)
	many := make([]string, MaxCandidates)
	for i := range many {
		many[i] = long[:MaxIDLen-2] + string(rune('a'+i)) + "z"
	}
	tests := []struct {
		name string
		vote Vote
	}{
		{"list vote", Vote{Scrutin: "s1", List: "l1"}},
		{"list vote with candidates", sampleVote()},
		{"blank", BlankVote("college:cadres")},
		{"longest fields", Vote{Scrutin: long, List: long, Candidates: many}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeVote(tt.vote)
			if err != nil {
				t.Fatalf("EncodeVote: %v", err)
			}
			if len(b) != VoteSize {
				t.Fatalf("encoded vote is %d bytes, want %d", len(b), VoteSize)
			}
			got, err := DecodeVote(b)
			if err != nil {
				t.Fatalf("DecodeVote: %v", err)
			}
			if !reflect.DeepEqual(got, tt.vote) {
				t.Fatalf("round trip: got %+v, want %+v", got, tt.vote)
			}
		})
	}
}

func TestVoteRefused(t *testing.T) {
	tests := []struct {
		name string
		vote Vote
	}{
		{"no scrutin", Vote{List: "l"}},
		{"list vote without list", Vote{Scrutin: "s"}},
		{"blank naming a list", Vote{Scrutin: "s", Blank: true, List: "l"}},
		{"blank marking candidates", Vote{Scrutin: "s", Blank: true, Candidates: []string{"c"}}},
		{"space in id", Vote{Scrutin: "s 1", List: "l"}},
		{"newline in id", Vote{Scrutin: "s", List: "l\n"}},
		{"id too long", Vote{Scrutin: strings.Repeat("s", MaxIDLen+1), List: "l"}},
		{"candidate twice", Vote{Scrutin: "s", List: "l", Candidates: []string{"c", "c"}}},
		{"too many candidates", Vote{Scrutin: "s", List: "l", Candidates: strings.Split("a b c d e f g h i j k l m", " ")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := EncodeVote(tt.vote); !errors.Is(err, ErrVoteFormat) {
				t.Fatalf("EncodeVote(%+v) = %v, want ErrVoteFormat", tt.vote, err)
			}
		})
	}
}

func TestDecodeVoteRefusesNonCanonical(t *testing.T) {
	good, err := EncodeVote(sampleVote())
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"short", good[:VoteSize-1]},
		{"long", append(append([]byte(nil), good...), 0)},
		{"version", mutate(func(b []byte) []byte { b[0] = 2; return b })},
		{"kind", mutate(func(b []byte) []byte { b[1] = 7; return b })},
		{"blank kind with a list", mutate(func(b []byte) []byte { b[1] = voteKindBlank; return b })},
		{"non-zero padding", mutate(func(b []byte) []byte { b[VoteSize-1] = 1; return b })},
		{"length past the end", mutate(func(b []byte) []byte { b[2] = 0xff; return b })},
		{"candidate count past the end", mutate(func(b []byte) []byte {
			b[2+1+len("cte-2026")+1+len("list-b")] = 0xff
			return b
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := DecodeVote(tt.b); !errors.Is(err, ErrVoteFormat) {
				t.Fatalf("DecodeVote accepted %s: %+v, %v", tt.name, v, err)
			}
		})
	}
}
