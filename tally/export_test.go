package tally

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/ballot"
)

func exportOf(t *testing.T, h ExportHeader, ballots [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteExport(&buf, h, ballots); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func boxDigest(ballots [][]byte) []byte {
	fps := make([][]byte, len(ballots))
	for i, b := range ballots {
		fps[i] = ballot.Fingerprint(b)
	}
	return ballot.MerkleRoot(fps)
}

func TestExportRoundTripAndCount(t *testing.T) {
	s := newSetup(t)
	box := generateBox(t, s.pub, 40)
	closed := time.Date(2026, 12, 8, 17, 0, 0, 0, time.UTC)
	e := testElection()
	data := exportOf(t, ExportHeader{ElectionID: "cnam-2026", Emargements: 40, BoxDigest: boxDigest(box.ballots), ClosedAt: &closed, Election: &e}, box.ballots)
	if lines := bytes.Count(data, []byte("\n")); lines != 41 {
		t.Fatalf("export has %d lines, want a header and 40 ballots", lines)
	}
	exp, err := ReadExport(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("ReadExport: %v", err)
	}
	if exp.Header.Ballots != 40 || exp.Header.Election == nil || !exp.Header.ClosedAt.Equal(closed) {
		t.Fatalf("header %+v", exp.Header)
	}
	res, err := Count(s.rebuild(t), *exp.Header.Election, exp.Ballots(), exp.Header.Emargements)
	if err != nil {
		t.Fatalf("Count over an export: %v", err)
	}
	if !bytes.Equal(res.BoxDigest, exp.Header.BoxDigest) {
		t.Fatal("count's box digest differs from the export's")
	}
}

func TestExportRefused(t *testing.T) {
	s := newSetup(t)
	box := generateBox(t, s.pub, 5)
	good := exportOf(t, ExportHeader{ElectionID: "e", Emargements: 5, BoxDigest: boxDigest(box.ballots)}, box.ballots)
	lines := strings.SplitAfter(string(good), "\n")
	otherDigest := boxDigest(box.ballots[1:])
	tests := []struct {
		name string
		data string
		want error
	}{
		{"empty", "", ErrExport},
		{"not json", "hello\n", ErrExport},
		{"other format", `{"format":"csv"}` + "\n", ErrExport},
		{"negative count", `{"format":"urne-ballots-v1","ballots":-1}` + "\n", ErrExport},
		{"truncated", strings.Join(lines[:4], ""), ErrExport},
		{"extra ballot", string(good) + lines[1], ErrExport},
		{"bad line", strings.Join(lines[:3], "") + "{\"ballot\":\"!!\"}\n" + strings.Join(lines[4:], ""), ErrExport},
		{"empty ballot", strings.Join(lines[:3], "") + "{\"ballot\":\"\"}\n" + strings.Join(lines[4:], ""), ErrExport},
		{"swapped ballot", string(exportOf(t, ExportHeader{ElectionID: "e", Emargements: 5, BoxDigest: otherDigest}, box.ballots)), ErrBoxDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp, err := ReadExport(strings.NewReader(tt.data))
			if err == nil {
				for _, err = range exp.Ballots() {
					if err != nil {
						break
					}
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// A count over a corrupt export stops with the export's error instead of returning a result.
func TestCountStopsOnExportError(t *testing.T) {
	s := newSetup(t)
	box := generateBox(t, s.pub, 5)
	data := exportOf(t, ExportHeader{ElectionID: "e", Emargements: 5, BoxDigest: boxDigest(box.ballots[1:])}, box.ballots)
	exp, err := ReadExport(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Count(s.rebuild(t), testElection(), exp.Ballots(), 5); !errors.Is(err, ErrBoxDigest) || res != nil {
		t.Fatalf("Count over an export with a wrong digest: %v, %v", res, err)
	}
}
