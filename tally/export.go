package tally

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/urne-vote/urne/ballot"
)

// Ballot export file (JSON lines), what the cluster hands the bureau after closing:
//
//	line 1:  {"format":"urne-ballots-v1","election_id":...,"ballots":N,"emargements":E,
//	          "box_digest":"<hex>","closed_at":"<RFC 3339>","election":{...}}
//	line 2+: {"ballot":"<standard base64 of one inner ballot>"}   (N lines, box order)
//
// The header's box_digest, when present, must equal the Merkle root of the ballots, and its
// ballot count the number of ballot lines; the election description is optional.
const (
	FormatBallots = "urne-ballots-v1"
	maxExportLine = 64 << 10
	maxBallots    = 100_000_000
)

// ExportHeader is the first line of a ballot export.
type ExportHeader struct {
	Format      string     `json:"format"`
	ElectionID  string     `json:"election_id"`
	Ballots     int        `json:"ballots"`
	Emargements int        `json:"emargements"`
	BoxDigest   ballot.Hex `json:"box_digest,omitempty"`
	ClosedAt    *time.Time `json:"closed_at,omitempty"`
	Election    *Election  `json:"election,omitempty"`
	// EmargementsByScrutin splits Emargements per scrutin, in an export from the cluster:
	// the tally checks each scrutin's ballots against it (CheckScrutins).
	EmargementsByScrutin map[string]int `json:"emargements_by_scrutin,omitempty"`
	OpenedAt             *time.Time     `json:"opened_at,omitempty"`
}

type exportLine struct {
	Ballot []byte `json:"ballot"`
}

// WriteExport writes a ballot export: the header, then one line per ballot.
func WriteExport(w io.Writer, h ExportHeader, ballots [][]byte) error {
	h.Ballots = len(ballots)
	ew, err := NewExportWriter(w, h)
	if err != nil {
		return err
	}
	for _, b := range ballots {
		if err := ew.Add(b); err != nil {
			return err
		}
	}
	return ew.Close()
}

// ExportWriter writes a ballot export as the ballots arrive: the header first, then one
// line per ballot; Close checks that as many came as the header announced.
type ExportWriter struct {
	bw      *bufio.Writer
	enc     *json.Encoder
	want, n int
}

// NewExportWriter writes the header h, whose Ballots must be the number of ballots to come.
func NewExportWriter(w io.Writer, h ExportHeader) (*ExportWriter, error) {
	h.Format = FormatBallots
	bw := bufio.NewWriter(w)
	ew := &ExportWriter{bw: bw, enc: json.NewEncoder(bw), want: h.Ballots}
	if err := ew.enc.Encode(h); err != nil {
		return nil, fmt.Errorf("write ballot export header: %w", err)
	}
	return ew, nil
}

// Add writes one inner ballot.
func (ew *ExportWriter) Add(inner []byte) error {
	if len(inner) == 0 || len(inner) > ballot.MaxInnerSize {
		return errorf(ErrExport, "ballot %d is %d bytes; ballots are 1 to %d bytes", ew.n+1, len(inner), ballot.MaxInnerSize)
	}
	ew.n++
	if err := ew.enc.Encode(exportLine{Ballot: inner}); err != nil {
		return fmt.Errorf("write ballot export: %w", err)
	}
	return nil
}

// Close flushes the export and checks the count.
func (ew *ExportWriter) Close() error {
	if ew.n != ew.want {
		return errorf(ErrExport, "the box announced %d ballots but %d came", ew.want, ew.n)
	}
	if err := ew.bw.Flush(); err != nil {
		return fmt.Errorf("write ballot export: %w", err)
	}
	return nil
}

// Export is an opened ballot export: its header, and its ballots as a sequence that reads
// the file as it goes.
type Export struct {
	Header ExportHeader
	sc     *bufio.Scanner
	used   bool
}

// ReadExport reads the header of a ballot export from r.
func ReadExport(r io.Reader) (*Export, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxExportLine)
	if !sc.Scan() {
		return nil, errorf(ErrExport, "ballot export is empty or its header line is longer than %d bytes: %v", maxExportLine, sc.Err())
	}
	var h ExportHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		return nil, errorf(ErrExport, "ballot export header: %v", err)
	}
	if h.Format != FormatBallots {
		return nil, errorf(ErrExport, "ballot export has format %q; this build reads %s", h.Format, FormatBallots)
	}
	if h.Ballots < 0 || h.Ballots > maxBallots || h.Emargements < 0 || h.Emargements > maxBallots {
		return nil, errorf(ErrExport, "ballot export header counts %d ballots and %d émargements", h.Ballots, h.Emargements)
	}
	return &Export{Header: h, sc: sc}, nil
}

// Ballots yields each inner ballot, then checks that the file held as many ballots as its
// header says and that they hash to its box digest. It can be ranged over once.
func (e *Export) Ballots() iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if e.used {
			yield(nil, errorf(ErrExport, "the ballots of an export can be read once"))
			return
		}
		e.used = true
		var fps [][]byte
		for line := 2; e.sc.Scan(); line++ {
			inner, err := decodeExportLine(e.sc.Bytes(), line)
			if err == nil && len(fps) >= e.Header.Ballots {
				err = errorf(ErrExport, "ballot export holds more ballots than the %d its header announces", e.Header.Ballots)
			}
			if err != nil {
				yield(nil, err)
				return
			}
			fps = append(fps, ballot.Fingerprint(inner))
			if !yield(inner, nil) {
				return
			}
		}
		if err := e.finish(fps); err != nil {
			yield(nil, err)
		}
	}
}

func decodeExportLine(b []byte, line int) ([]byte, error) {
	var l exportLine
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, errorf(ErrExport, "ballot export line %d: %v", line, err)
	}
	if len(l.Ballot) == 0 || len(l.Ballot) > ballot.MaxInnerSize {
		return nil, errorf(ErrExport, "ballot export line %d holds a %d-byte ballot; ballots are 1 to %d bytes", line, len(l.Ballot), ballot.MaxInnerSize)
	}
	return l.Ballot, nil
}

func (e *Export) finish(fps [][]byte) error {
	if err := e.sc.Err(); err != nil {
		return errorf(ErrExport, "ballot export after %d ballots: %v", len(fps), err)
	}
	if len(fps) != e.Header.Ballots {
		return errorf(ErrExport, "ballot export header announces %d ballots but the file holds %d: it is truncated", e.Header.Ballots, len(fps))
	}
	if len(e.Header.BoxDigest) > 0 {
		if root := ballot.MerkleRoot(fps); !bytes.Equal(root, e.Header.BoxDigest) {
			return errorf(ErrBoxDigest, "the ballots of the export hash to box digest %x, not the %x recorded at close", root, []byte(e.Header.BoxDigest))
		}
	}
	return nil
}
