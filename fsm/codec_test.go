package fsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of testdata/")

// goldenCommands are fixed commands whose encoding must never change by accident.
func goldenCommands(t *testing.T) map[string]*fsmpb.Command {
	cmds := map[string]*fsmpb.Command{}
	add := func(name string, typ fsmpb.CommandType, p proto.Message, flags uint32) {
		c, err := NewCommand(typ, p)
		if err != nil {
			t.Fatal(err)
		}
		c.Flags = flags
		c.StampedAtUnixNano = baseTime.UnixNano()
		cmds[name] = c
	}
	add("create_election", typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "CSE 2026", IndexKey: fixedIndexKey}, 0)
	add("import_voters", typeImport, voters("alice", "bob"), 0)
	add("open_election", typeOpen, &fsmpb.Transition{ElectionId: electionID}, 0)
	add("cast", typeCast, &fsmpb.Cast{RequestId: "req-1", VoterId: "alice", Ballot: []byte{0xba, 0x11, 0x07}, ElectionId: electionID}, 0)
	add("noop_ignorable", typeNoop, nil, uint32(fsmpb.CommandFlag_FLAG_IGNORE_UNKNOWN))
	add("seal_election", typeSeal, &fsmpb.SealElection{ElectionId: electionID, BuildDigest: build}, 0)
	add("tick", typeTick, &fsmpb.Tick{}, 0)
	add("cast_session", typeCast, &fsmpb.Cast{RequestId: "req-2", SessionHash: tokenHash("s"), ScrutinId: "ct",
		Ballot: []byte{0xba, 0x11, 0x07}, EnvelopeNonce: bytes.Repeat([]byte{7}, EnvelopeNonceSize)}, 0)
	return cmds
}

func TestGoldenCommandBytes(t *testing.T) {
	for name, c := range goldenCommands(t) {
		t.Run(name, func(t *testing.T) {
			got := encode(t, c)
			path := filepath.Join("testdata", "command_v1_"+name+".hex")
			if *updateGolden {
				if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if hex.EncodeToString(got) != strings.TrimSpace(string(want)) {
				t.Fatalf("wire encoding of %s changed:\n got %x\nwant %s", name, got, want)
			}
			decoded, err := Decode(got)
			if err != nil || !proto.Equal(decoded, c) {
				t.Fatalf("golden bytes decode to %v, %v", decoded, err)
			}
		})
	}
}

func TestDecodeRefusals(t *testing.T) {
	valid := encode(t, command(t, typeNoop, nil, 1))
	v2 := &fsmpb.Command{Version: 2, Type: typeNoop}
	v2bytes, _ := proto.Marshal(v2)
	v0bytes, _ := proto.Marshal(&fsmpb.Command{Type: typeNoop})
	cases := map[string][]byte{
		"empty":      nil,
		"too large":  append(bytes.Clone(valid), make([]byte, MaxCommandSize)...),
		"garbage":    {0xff, 0xff, 0xff},
		"version 2":  v2bytes,
		"no version": v0bytes,
		"truncated":  valid[:len(valid)-1],
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Decode = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := Decode(valid); err != nil {
		t.Fatalf("valid command refused: %v", err)
	}
}

func TestEncodeRefusals(t *testing.T) {
	if _, err := Encode(&fsmpb.Command{Type: typeNoop}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Encode without version = %v", err)
	}
	big := &fsmpb.Command{Version: CommandVersion, Type: typeNoop, Payload: make([]byte, MaxCommandSize)}
	if _, err := Encode(big); !errors.Is(err, ErrInvalid) {
		t.Errorf("Encode of an oversized command = %v", err)
	}
}

func TestMaxImportFitsInACommand(t *testing.T) {
	p := &fsmpb.ImportVoters{ElectionId: strings.Repeat("e", MaxIDSize)}
	for i := range MaxVotersPerCommand {
		id := strings.Repeat("v", MaxIDSize-5) + fmt.Sprintf("%05d", i)
		p.Voters = append(p.Voters, &fsmpb.VoterRecord{VoterId: id,
			Name: strings.Repeat("n", MaxTextSize), Email: strings.Repeat("m", MaxTextSize)})
	}
	c := command(t, typeImport, p, 1)
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	if _, err := Encode(c); err != nil {
		t.Fatalf("the largest valid import does not encode: %v", err)
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("x", MaxIDSize+1)
	tooMany := &fsmpb.ImportVoters{}
	for range MaxVotersPerCommand + 1 {
		tooMany.Voters = append(tooMany.Voters, &fsmpb.VoterRecord{VoterId: "v"})
	}
	key := bytes.Repeat([]byte{1}, 32)
	claims := func(c ...*fsmpb.HomonymClaim) *fsmpb.ImportVoters { return &fsmpb.ImportVoters{Claims: c} }
	tooManyClaims := &fsmpb.ImportVoters{}
	for range MaxVotersPerCommand + 1 {
		tooManyClaims.Claims = append(tooManyClaims.Claims, &fsmpb.HomonymClaim{Key: key, VoterId: "v"})
	}
	cases := []struct {
		name    string
		typ     fsmpb.CommandType
		payload proto.Message
		want    error
	}{
		{"claims ok", typeImport, claims(&fsmpb.HomonymClaim{Key: key, VoterId: "v"}), nil},
		{"claim short key", typeImport, claims(&fsmpb.HomonymClaim{Key: key[:31], VoterId: "v"}), ErrInvalid},
		{"claim without voter", typeImport, claims(&fsmpb.HomonymClaim{Key: key}), ErrInvalid},
		{"claims too many", typeImport, tooManyClaims, ErrInvalid},
		{"create ok", typeCreate, &fsmpb.CreateElection{ElectionId: "e"}, nil},
		{"create without id", typeCreate, &fsmpb.CreateElection{}, ErrInvalid},
		{"create long id", typeCreate, &fsmpb.CreateElection{ElectionId: long}, ErrInvalid},
		{"create short key", typeCreate, &fsmpb.CreateElection{ElectionId: "e", IndexKey: []byte{1}}, ErrInvalid},
		{"create control in name", typeCreate, &fsmpb.CreateElection{ElectionId: "e", Name: "a\x00b"}, ErrInvalid},
		{"import empty", typeImport, &fsmpb.ImportVoters{}, ErrInvalid},
		{"import too many", typeImport, tooMany, ErrInvalid},
		{"import unprintable id", typeImport, voters("a\tb"), ErrInvalid},
		{"import long email", typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{{VoterId: "a", Email: strings.Repeat("m", MaxTextSize+1)}}}, ErrInvalid},
		{"transition ok", typeOpen, &fsmpb.Transition{}, nil},
		{"transition long id", typeClose, &fsmpb.Transition{ElectionId: long}, ErrInvalid},
		{"cast ok", typeCast, cast("r", "v", "b"), nil},
		{"cast long request", typeCast, cast(long, "v", "b"), ErrInvalid},
		{"cast without voter", typeCast, cast("r", "", "b"), ErrInvalid},
		{"cast max ballot", typeCast, cast("r", "v", strings.Repeat("b", MaxBallotSize)), nil},
		{"cast ballot too large", typeCast, cast("r", "v", strings.Repeat("b", MaxBallotSize+1)), ErrBallotTooLarge},
		{"noop", typeNoop, nil, nil},
		{"unknown type", fsmpb.CommandType(999), nil, ErrUnknownCommand},
		{"type zero", fsmpb.CommandType_COMMAND_UNKNOWN, nil, ErrUnknownCommand},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCommand(tc.typ, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			err = Validate(c)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
	if err := Validate(&fsmpb.Command{Type: typeNoop}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate without version = %v", err)
	}
}

func TestStamp(t *testing.T) {
	c, _ := NewCommand(typeCreate, &fsmpb.CreateElection{ElectionId: "e"})
	if err := Stamp(c, baseTime, bytes.NewReader(fixedIndexKey)); err != nil {
		t.Fatal(err)
	}
	p := &fsmpb.CreateElection{}
	if err := proto.Unmarshal(c.Payload, p); err != nil {
		t.Fatal(err)
	}
	if c.StampedAtUnixNano != baseTime.UnixNano() || !bytes.Equal(p.IndexKey, fixedIndexKey) {
		t.Fatalf("stamped command = %v, key %x", c, p.IndexKey)
	}
	// A retried proposal keeps its key.
	if err := Stamp(c, baseTime.Add(time.Second), bytes.NewReader(make([]byte, 32))); err != nil {
		t.Fatal(err)
	}
	proto.Unmarshal(c.Payload, p)
	if !bytes.Equal(p.IndexKey, fixedIndexKey) {
		t.Fatal("Stamp replaced an index key already drawn")
	}
	if err := Stamp(&fsmpb.Command{Type: typeCreate}, baseTime, bytes.NewReader(nil)); err == nil {
		t.Fatal("Stamp succeeded without randomness")
	}
	for _, bad := range []time.Time{{}, time.Unix(0, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if err := Stamp(c, bad, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Stamp with time %s = %v", bad, err)
		}
	}
}
