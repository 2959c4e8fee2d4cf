package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urne-vote/urne/transport/urnepb"
)

// Limits on one voter row. The server has its own; these catch a wrong file early and name the line.
const (
	maxVoterIDLen    = 256
	maxVoterFieldLen = 1024
	maxSecretLen     = 64
	// maxRowBytes bounds one CSV line or one JSON object, so a broken file cannot make the
	// reader buffer without end.
	maxRowBytes = 1 << 20
)

// Voter file formats accepted by `urne election import`.
const (
	formatAuto      = "auto"
	formatCSV       = "csv"
	formatJSONL     = "jsonl"
	formatJSONArray = "json"
)

// errVoterFile marks every problem found in a voter file; the message names the line.
var errVoterFile = errors.New("bad voter file")

// voterReader yields voters one at a time from a file that may be far larger than memory.
// Next returns io.EOF after the last voter.
type voterReader interface {
	Next() (*urnepb.Voter, error)
}

// newVoterReader picks the reader for format; "auto" looks at the first byte that is not
// white space: '[' or '{' is JSON (an array or JSON lines), anything else CSV.
func newVoterReader(r io.Reader, format string) (voterReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	skipBOM(br)
	first := firstSignificant(br)
	if format == formatAuto || format == "" {
		format = formatCSV
		if first == '[' || first == '{' {
			format = formatJSONArray
		}
	}
	switch format {
	case formatCSV:
		return newCSVVoters(&lineLimiter{r: br, limit: maxRowBytes})
	case formatJSONL, formatJSONArray:
		return newJSONVoters(br, first == '['), nil
	default:
		return nil, fmt.Errorf("voter file format %q: want auto, csv, jsonl or json", format)
	}
}

// skipBOM drops the UTF-8 byte order mark that spreadsheet exports put first.
func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
}

// firstSignificant returns the first byte that is not white space, without consuming it, or 0
// when the buffer's first 64 KiB are all white space.
func firstSignificant(br *bufio.Reader) byte {
	b, _ := br.Peek(br.Size())
	for _, c := range b {
		if !isSpace(c) {
			return c
		}
	}
	return 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// voterColumns are the columns (CSV) and fields (JSON) of a voter row; only voter_id is
// required. "collège" is accepted for college.
var voterColumns = []string{"voter_id", "name", "email", "date_of_birth", "secret", "composante", "college", "secteur", "secret_bcrypt"}

// voterField returns a pointer to the field of v a column fills.
func voterField(v *urnepb.Voter, column string) *string {
	switch column {
	case "voter_id":
		return &v.VoterId
	case "name":
		return &v.Name
	case "email":
		return &v.Email
	case "date_of_birth":
		return &v.DateOfBirth
	case "secret":
		return &v.Secret
	case "secret_bcrypt":
		return &v.SecretBcrypt
	case "composante":
		return &v.Composante
	case "college":
		return &v.College
	case "secteur":
		return &v.Secteur
	}
	return nil
}

// checkVoter applies the row rules shared by every format, and writes a date of birth given
// as DD/MM/YYYY (spreadsheets) as YYYY-MM-DD.
func checkVoter(v *urnepb.Voter) error {
	switch {
	case v.VoterId == "":
		return errors.New("voter_id is empty")
	case len(v.VoterId) > maxVoterIDLen:
		return fmt.Errorf("voter_id is %d bytes long, at most %d allowed", len(v.VoterId), maxVoterIDLen)
	case strings.TrimSpace(v.VoterId) != v.VoterId:
		return fmt.Errorf("voter_id %q has leading or trailing spaces", v.VoterId)
	case len(v.Secret) > maxSecretLen:
		return fmt.Errorf("voter %q: the secret is %d bytes long, at most %d allowed", v.VoterId, len(v.Secret), maxSecretLen)
	}
	for _, column := range voterColumns {
		s := *voterField(v, column)
		if len(s) > maxVoterFieldLen {
			return fmt.Errorf("voter %q: %s may be at most %d bytes", v.VoterId, column, maxVoterFieldLen)
		}
		if !utf8.ValidString(s) {
			return fmt.Errorf("voter %q: %s is not valid UTF-8", v.VoterId, column)
		}
	}
	return normalizeBirthDate(v)
}

// normalizeBirthDate accepts YYYY-MM-DD or DD/MM/YYYY and keeps YYYY-MM-DD.
func normalizeBirthDate(v *urnepb.Voter) error {
	if v.DateOfBirth == "" {
		return nil
	}
	for _, layout := range []string{time.DateOnly, "02/01/2006"} {
		if d, err := time.Parse(layout, strings.TrimSpace(v.DateOfBirth)); err == nil {
			v.DateOfBirth = d.Format(time.DateOnly)
			return nil
		}
	}
	return fmt.Errorf("voter %q: date_of_birth %q is neither YYYY-MM-DD nor DD/MM/YYYY", v.VoterId, v.DateOfBirth)
}

// csvVoters reads a CSV file whose header names its columns among voterColumns; voter_id is required.
type csvVoters struct {
	r    *csv.Reader
	cols map[string]int
}

func newCSVVoters(r io.Reader) (*csvVoters, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the file is empty; the first line must be a header such as voter_id,name,email", errVoterFile)
	}
	if err != nil {
		return nil, csvError(err)
	}
	cols, err := csvColumns(header)
	if err != nil {
		return nil, err
	}
	cr.FieldsPerRecord = len(header)
	return &csvVoters{r: cr, cols: cols}, nil
}

func csvColumns(header []string) (map[string]int, error) {
	cols := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if name == "collège" {
			name = "college"
		}
		if !slices.Contains(voterColumns, name) {
			return nil, fmt.Errorf("%w: line 1: unknown column %q; the header may name %s", errVoterFile, h, strings.Join(voterColumns, ", "))
		}
		if _, dup := cols[name]; dup {
			return nil, fmt.Errorf("%w: line 1: column %q appears twice", errVoterFile, name)
		}
		cols[name] = i
	}
	if _, ok := cols["voter_id"]; !ok {
		return nil, fmt.Errorf("%w: line 1: the header has no voter_id column", errVoterFile)
	}
	return cols, nil
}

func (c *csvVoters) Next() (*urnepb.Voter, error) {
	rec, err := c.r.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, csvError(err)
	}
	v := &urnepb.Voter{}
	for column, i := range c.cols {
		*voterField(v, column) = rec[i]
	}
	if err := checkVoter(v); err != nil {
		line, _ := c.r.FieldPos(0)
		return nil, fmt.Errorf("%w: line %d: %v", errVoterFile, line, err)
	}
	return v, nil
}

// csvError rewords encoding/csv errors so that they lead with the line.
func csvError(err error) error {
	if errors.Is(err, errVoterFile) {
		return err
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: line %d: %v", errVoterFile, pe.Line, pe.Err)
	}
	return fmt.Errorf("%w: %v", errVoterFile, err)
}

// lineLimiter fails a read once a line grows past limit bytes.
type lineLimiter struct {
	r     io.Reader
	limit int
	run   int // bytes since the last newline
	line  int // lines completed
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, c := range p[:n] {
		l.run++
		if c == '\n' {
			l.run = 0
			l.line++
		} else if l.run > l.limit {
			return 0, fmt.Errorf("%w: line %d is longer than %d bytes", errVoterFile, l.line+1, l.limit)
		}
	}
	return n, err
}

// jsonVoter is one voter as written in JSON files; unknown fields are refused.
type jsonVoter struct {
	VoterID     string `json:"voter_id"`
	Name        string `json:"name"`
	Email       string `json:"email"`
	DateOfBirth string `json:"date_of_birth"`
	Secret      string `json:"secret"`
	Composante  string `json:"composante"`
	College     string `json:"college"`
	Secteur     string `json:"secteur"`
	// The secret's bcrypt hash, as `urne election prepare` writes it, instead of secret.
	SecretBcrypt string `json:"secret_bcrypt"`
}

// jsonVoters reads either a JSON array of voter objects or a stream of objects (JSON lines),
// decoding one object at a time.
type jsonVoters struct {
	lines   *lineCounter
	dec     *json.Decoder
	array   bool
	started bool
	done    bool
}

func newJSONVoters(r io.Reader, array bool) *jsonVoters {
	lc := &lineCounter{r: r, limit: maxRowBytes}
	dec := json.NewDecoder(lc)
	dec.DisallowUnknownFields()
	return &jsonVoters{lines: lc, dec: dec, array: array}
}

func (j *jsonVoters) Next() (*urnepb.Voter, error) {
	if j.done {
		return nil, io.EOF
	}
	if !j.started {
		j.started = true
		if err := j.open(); err != nil {
			return nil, err
		}
	}
	if !j.dec.More() {
		return nil, j.finish()
	}
	line := j.lines.lineAt(j.valueStart())
	var jv jsonVoter
	if err := j.dec.Decode(&jv); err != nil {
		return nil, j.fail(line, err)
	}
	v := &urnepb.Voter{VoterId: jv.VoterID, Name: jv.Name, Email: jv.Email, DateOfBirth: jv.DateOfBirth,
		Secret: jv.Secret, Composante: jv.Composante, College: jv.College, Secteur: jv.Secteur, SecretBcrypt: jv.SecretBcrypt}
	if err := checkVoter(v); err != nil {
		j.done = true
		return nil, fmt.Errorf("%w: line %d: %v", errVoterFile, line, err)
	}
	return v, nil
}

// open consumes the '[' of an array.
func (j *jsonVoters) open() error {
	if !j.array {
		return nil
	}
	if _, err := j.dec.Token(); err != nil {
		return j.fail(1, err)
	}
	return nil
}

// valueStart is the offset of the next value: the decoder's offset is the end of the previous
// one, so skip the white space and the array comma that More has already buffered.
func (j *jsonVoters) valueStart() int64 {
	off := j.dec.InputOffset()
	rest, _ := io.ReadAll(io.LimitReader(j.dec.Buffered(), 4096))
	for _, c := range rest {
		if !isSpace(c) && c != ',' {
			break
		}
		off++
	}
	return off
}

// finish checks what follows the last voter: the closing ']' of an array, then nothing.
func (j *jsonVoters) finish() error {
	j.done = true
	if j.array {
		if _, err := j.dec.Token(); err != nil {
			return j.fail(j.lines.lineAt(j.valueStart()), err)
		}
	}
	tok, err := j.dec.Token()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return j.fail(j.lines.lineAt(j.valueStart()), err)
	}
	return fmt.Errorf("%w: line %d: unexpected %v after the last voter", errVoterFile, j.lines.lineAt(j.dec.InputOffset()), tok)
}

// fail turns a decoder error into one that names the line where the problem is.
func (j *jsonVoters) fail(line int, err error) error {
	j.done = true
	if errors.Is(err, errVoterFile) {
		return err
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line = j.lines.lineAt(se.Offset)
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = errors.New("the file ends in the middle of a value")
	}
	return fmt.Errorf("%w: line %d: %v", errVoterFile, line, err)
}

// lineCounter passes bytes through and remembers where lines start, so that a decoder offset
// can be turned into a line number. It forgets the line starts the decoder has moved past, so
// it holds only those of the decoder's read-ahead buffer. It also fails once the decoder has
// read more than limit bytes past the last offset asked about: one voter is never that big.
type lineCounter struct {
	r       io.Reader
	limit   int64
	read    int64   // bytes handed out so far
	mark    int64   // last offset passed to lineAt
	dropped int     // line starts forgotten
	starts  []int64 // offsets just after each '\n' not yet forgotten
}

func (lc *lineCounter) Read(p []byte) (int, error) {
	if lc.read-lc.mark > lc.limit {
		return 0, fmt.Errorf("%w: line %d: a value is longer than %d bytes", errVoterFile, lc.lineAt(lc.mark), lc.limit)
	}
	n, err := lc.r.Read(p)
	for i, c := range p[:n] {
		if c == '\n' {
			lc.starts = append(lc.starts, lc.read+int64(i)+1)
		}
	}
	lc.read += int64(n)
	return n, err
}

// lineAt returns the 1-based line holding offset. Offsets must not go backwards.
func (lc *lineCounter) lineAt(offset int64) int {
	i := 0
	for i < len(lc.starts) && lc.starts[i] <= offset {
		i++
	}
	lc.dropped += i
	lc.starts = lc.starts[i:]
	lc.mark = max(lc.mark, offset)
	return lc.dropped + 1
}
