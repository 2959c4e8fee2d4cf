package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Export format: JSON lines. The first line is a Header; each further line is one entry,
// in register order, with the hash the exporting node computed for it.
const (
	exportFormat  = "urne-activity-register"
	exportVersion = 1
	// maxLineSize bounds one line: the largest entry, base64 and JSON escaping included.
	maxLineSize = 1 << 20
)

// Header opens an export.
type Header struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	Election   string `json:"election,omitempty"`
	ExportedBy string `json:"exported_by,omitempty"`
	ExportedAt string `json:"exported_at,omitempty"`
}

type jsonEntry struct {
	Seq              uint64          `json:"seq"`
	Hash             string          `json:"hash"`
	Prev             string          `json:"prev"`
	Time             string          `json:"time"`
	RaftIndex        uint64          `json:"raft_index,omitempty"`
	Actor            string          `json:"actor"`
	Action           string          `json:"action"`
	Object           string          `json:"object"`
	Outcome          string          `json:"outcome"`
	Detail           string          `json:"detail,omitempty"`
	ConnectionDigest string          `json:"connection_digest,omitempty"`
	Connection       *jsonConnection `json:"connection,omitempty"`
	Stamp            *jsonStamp      `json:"stamp,omitempty"`
}

type jsonConnection struct {
	IP          string `json:"ip"`
	ConnectedAt string `json:"connected_at"`
	Retention   string `json:"retention"`
	Salt        string `json:"salt"`
}

type jsonStamp struct {
	Seq       uint64 `json:"seq"`
	Head      string `json:"head"`
	Authority string `json:"authority"`
	Token     string `json:"token"`
}

// Writer writes an export.
type Writer struct {
	w *bufio.Writer
}

// NewWriter writes the header; h.Format and h.Version are filled in.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format, h.Version = exportFormat, exportVersion
	ew := &Writer{w: bufio.NewWriter(w)}
	return ew, ew.line(h)
}

// Write appends one entry.
func (w *Writer) Write(e *Entry) error {
	if err := e.Check(); err != nil {
		return fmt.Errorf("export entry %d: %w", e.Seq, err)
	}
	return w.line(toJSON(e))
}

// Flush writes what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

func (w *Writer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.w.Write(append(b, '\n'))
	return err
}

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func toJSON(e *Entry) *jsonEntry {
	j := &jsonEntry{Seq: e.Seq, Hash: e.Hash().String(), Prev: e.Prev.String(), Time: formatTime(e.Time),
		RaftIndex: e.RaftIndex, Actor: e.Actor, Action: e.Action, Object: e.Object, Outcome: e.Outcome, Detail: e.Detail}
	if e.HasConnection {
		j.ConnectionDigest = e.ConnectionDigest.String()
	}
	if c := e.Connection; c != nil {
		j.Connection = &jsonConnection{IP: c.IP, ConnectedAt: formatTime(c.ConnectedAt), Retention: c.Retention,
			Salt: hex.EncodeToString(c.Salt)}
	}
	if s := e.Stamp; s != nil {
		j.Stamp = &jsonStamp{Seq: s.Seq, Head: s.Head.String(), Authority: s.Authority,
			Token: base64.StdEncoding.EncodeToString(s.Token)}
	}
	return j
}

// Reader reads an export line by line.
type Reader struct {
	s      *bufio.Scanner
	line   int
	Header Header
}

// NewReader reads and checks the header line.
func NewReader(r io.Reader) (*Reader, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), maxLineSize)
	er := &Reader{s: s}
	raw, err := er.next()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: empty export", ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	if err := strictJSON(raw, &er.Header); err != nil {
		return nil, fmt.Errorf("%w: line 1 is not an export header: %v", ErrFormat, err)
	}
	if er.Header.Format != exportFormat || er.Header.Version != exportVersion {
		return nil, fmt.Errorf("%w: export format %q version %d, this build reads %q version %d",
			ErrFormat, er.Header.Format, er.Header.Version, exportFormat, exportVersion)
	}
	return er, nil
}

// Line is the line number of the entry Next returned last.
func (r *Reader) Line() int { return r.line }

// Next returns the next entry and the hash the export states for it; io.EOF at the end.
func (r *Reader) Next() (*Entry, Hash, error) {
	raw, err := r.next()
	if err != nil {
		return nil, Hash{}, err
	}
	var j jsonEntry
	if err := strictJSON(raw, &j); err != nil {
		return nil, Hash{}, fmt.Errorf("%w: line %d: %v", ErrFormat, r.line, err)
	}
	e, stated, err := fromJSON(&j)
	if err != nil {
		return nil, Hash{}, fmt.Errorf("line %d (entry %d): %w", r.line, j.Seq, err)
	}
	return e, stated, nil
}

// next returns the next non-empty line.
func (r *Reader) next() ([]byte, error) {
	for r.s.Scan() {
		r.line++
		if line := bytes.TrimSpace(r.s.Bytes()); len(line) > 0 {
			return line, nil
		}
	}
	if err := r.s.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, r.line+1, err)
	}
	return nil, io.EOF
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

func parseTime(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1678 || t.Year() > 2261 {
		return 0, fmt.Errorf("%w: time %q is not an RFC 3339 time between 1678 and 2261", ErrFormat, s)
	}
	return t.UnixNano(), nil
}

// fromJSON rebuilds the entry and returns the hash the export states for it.
func fromJSON(j *jsonEntry) (*Entry, Hash, error) {
	e := &Entry{Seq: j.Seq, RaftIndex: j.RaftIndex, Actor: j.Actor, Action: j.Action, Object: j.Object,
		Outcome: j.Outcome, Detail: j.Detail}
	stated, err := ParseHash(j.Hash)
	if err == nil {
		e.Prev, err = ParseHash(j.Prev)
	}
	if err == nil {
		e.Time, err = parseTime(j.Time)
	}
	if err == nil && j.ConnectionDigest != "" {
		e.HasConnection = true
		e.ConnectionDigest, err = ParseHash(j.ConnectionDigest)
	}
	if err == nil && j.Connection != nil {
		e.Connection, err = connectionFromJSON(j.Connection)
	}
	if err == nil && j.Stamp != nil {
		e.Stamp, err = stampFromJSON(j.Stamp)
	}
	if err == nil {
		err = e.Check()
	}
	return e, stated, err
}

func connectionFromJSON(j *jsonConnection) (*Connection, error) {
	at, err := parseTime(j.ConnectedAt)
	if err != nil {
		return nil, err
	}
	salt, err := hex.DecodeString(j.Salt)
	if err != nil || len(salt) > maxSaltSize {
		return nil, fmt.Errorf("%w: connection salt is not hex of at most %d bytes", ErrFormat, maxSaltSize)
	}
	return &Connection{IP: j.IP, ConnectedAt: at, Retention: j.Retention, Salt: salt}, nil
}

func stampFromJSON(j *jsonStamp) (*Stamp, error) {
	head, err := ParseHash(j.Head)
	if err != nil {
		return nil, err
	}
	token, err := base64.StdEncoding.DecodeString(j.Token)
	if err != nil || len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: stamp token is not base64 of at most %d bytes", ErrFormat, MaxTokenSize)
	}
	return &Stamp{Seq: j.Seq, Head: head, Authority: j.Authority, Token: token}, nil
}
