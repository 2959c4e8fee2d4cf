package fakeurne

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"sort"

	"github.com/urne-vote/urne/transport/urnepb"
)

// State is the replicated state of the fake election.
type State struct {
	ElectionID string
	Name       string
	Phase      urnepb.ElectionPhase
	Voters     map[string]*urnepb.Voter
	Emarged    map[string]int64 // voter id -> émargement time
	Box        [][]byte         // ballot fingerprints
	ByRequest  map[string]*urnepb.CastResponse
	Index      uint64
}

func newState() *State {
	return &State{Voters: map[string]*urnepb.Voter{}, Emarged: map[string]int64{}, ByRequest: map[string]*urnepb.CastResponse{}}
}

func (s *State) clone() *State {
	c := *s
	c.Voters = maps.Clone(s.Voters)
	c.Emarged = maps.Clone(s.Emarged)
	c.ByRequest = maps.Clone(s.ByRequest)
	c.Box = slices.Clone(s.Box)
	return &c
}

// Digest hashes the election, the roll, the émargements and the box.
func (s *State) Digest() []byte {
	h := sha256.New()
	h.Write([]byte(s.ElectionID + "\x00" + s.Name + "\x00"))
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(s.Phase)))
	for _, id := range slices.Sorted(maps.Keys(s.Voters)) {
		h.Write([]byte("v" + id + "\x00"))
	}
	for _, id := range slices.Sorted(maps.Keys(s.Emarged)) {
		h.Write([]byte("e" + id + "\x00"))
	}
	box := slices.Clone(s.Box)
	sort.Slice(box, func(i, j int) bool { return string(box[i]) < string(box[j]) })
	for _, fp := range box {
		h.Write(fp)
	}
	return h.Sum(nil)
}

// HasFingerprint reports whether the box holds fp.
func (s *State) HasFingerprint(fp []byte) bool {
	return slices.ContainsFunc(s.Box, func(b []byte) bool { return string(b) == string(fp) })
}
