package backup

import (
	"bytes"
	"fmt"
	"io"
)

// Save seals the state stream src into an archive on dst, checking the stream as it passes:
// the archive is completed (and so readable) only when src was a whole, valid snapshot at
// h.Index. Nothing is held in memory beyond one chunk.
func Save(dst io.Writer, src io.Reader, s *Secret, h Header) (Header, Summary, error) {
	w, h, err := NewWriter(dst, s, h)
	if err != nil {
		return h, Summary{}, err
	}
	st, err := ReadState(io.TeeReader(src, w))
	if err != nil {
		return h, Summary{}, fmt.Errorf("the leader's state stream: %w", err)
	}
	if st.Index != h.Index {
		return h, Summary{}, fmt.Errorf("%w: the stream is at index %d, the leader announced %d", ErrSnapshot, st.Index, h.Index)
	}
	sum := summaryOf(st)
	if err := w.Close(sum); err != nil {
		return h, Summary{}, err
	}
	sum.Size = w.Size()
	return h, sum, nil
}

func summaryOf(st State) Summary {
	return Summary{Size: st.Size, Records: st.Records, Digest: st.Digest,
		Voters: st.Voters, Emargements: st.Emargements, Ballots: st.Ballots}
}

// Verified is what Verify checked.
type Verified struct {
	Header  Header
	Summary Summary
	// Bytes is the size of the archive file.
	Bytes int64
}

// Verify reads a whole archive with s without restoring it: framing, key, every chunk, the
// summary, the checksum, and the state stream inside (its trailer, and a digest and counts
// equal to those sealed at the end).
func Verify(r io.Reader, s *Secret) (Verified, error) {
	cr := &countingReader{r: r}
	br, err := NewReader(cr, s)
	if err != nil {
		return Verified{}, err
	}
	v := Verified{Header: br.Header()}
	if _, err := Extract(io.Discard, br); err != nil {
		return v, err
	}
	v.Summary, v.Bytes = br.Summary(), cr.n
	return v, nil
}

// Extract copies the state stream of br to dst and checks it against the archive's header and
// summary. dst has received a whole, valid state only when Extract returns nil: a caller
// building something from it must throw it away on error.
func Extract(dst io.Writer, br *Reader) (State, error) {
	if c := br.Header().Content; c != "" {
		return State{}, errorf(ErrNotArchive, "the file seals %q, not a state backup", c)
	}
	st, err := ReadState(io.TeeReader(br, dst))
	if err != nil {
		return st, err
	}
	return st, checkSummary(br.Header(), br.Summary(), st)
}

// checkSummary compares what the reader found with what the writer sealed.
func checkSummary(h Header, sum Summary, st State) error {
	switch {
	case st.Index != h.Index:
		return fmt.Errorf("%w: the state is at index %d, the header says %d", ErrSnapshot, st.Index, h.Index)
	case st.Records != sum.Records || st.Size != sum.Size:
		return fmt.Errorf("%w: %d records in %d bytes, the summary says %d in %d", ErrSnapshot, st.Records, st.Size, sum.Records, sum.Size)
	case !bytes.Equal(st.Digest, sum.Digest):
		return fmt.Errorf("%w: the state digest is %x, the summary says %x", ErrSnapshot, st.Digest, sum.Digest)
	case st.Voters != sum.Voters || st.Emargements != sum.Emargements || st.Ballots != sum.Ballots:
		return fmt.Errorf("%w: the counts differ from the summary", ErrSnapshot)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
