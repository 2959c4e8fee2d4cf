package archive

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/backup"
)

// Verified is what Verify checked.
type Verified struct {
	Header   backup.Header
	Manifest *Manifest
	// Digest is the SHA-256 of the manifest: compare it with the digest the cluster recorded
	// when the election was archived.
	Digest []byte
	// Register is the verification report of the activity register member.
	Register *audit.Report
	// Bytes is the size of the archive file.
	Bytes int64
}

// Verify reads a whole archive offline with s: the backup framing (key, every sealed chunk,
// summary, file checksum), every member against its own SHA-256 and the manifest, and the
// activity register's chain and timestamp tokens (against trusted, the authorities'
// certificates). fn, if not nil, receives each member as it is read; what it wrote is
// valid only if Verify returns nil.
func Verify(r io.Reader, s *backup.Secret, trusted []*x509.Certificate, fn MemberFunc) (*Verified, error) {
	cr := &countingReader{r: r}
	br, err := backup.NewReader(cr, s)
	if err != nil {
		return nil, err
	}
	v := &Verified{Header: br.Header()}
	if c := v.Header.Content; c != backup.ContentElectionArchive {
		return v, fmt.Errorf("%w: the file is a state backup, not an election archive (use urne backup verify)", backup.ErrNotArchive)
	}
	members, js, err := readMembers(br, func(name string, body io.Reader) error {
		if name == MemberRegister {
			body = v.checkRegister(body, trusted)
		}
		if fn != nil {
			if err := fn(name, body); err != nil {
				return err
			}
		}
		_, err := io.Copy(io.Discard, body) // what fn left, through the register's check
		return err
	})
	if err != nil {
		return v, err
	}
	// The member stream ended at its manifest; the backup reader checks the rest of the file.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return v, err
	}
	v.Bytes = cr.n
	return v, v.check(br.Summary(), members, js)
}

// checkRegister verifies the register export as it passes to the member's consumer.
func (v *Verified) checkRegister(body io.Reader, trusted []*x509.Certificate) io.Reader {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	tee := &teeChecker{r: body, pw: pw, done: done}
	go func() {
		defer close(done)
		rep, err := audit.Verify(pr, trusted)
		if err != nil {
			tee.err = fmt.Errorf("%w: %s: %w", ErrMismatch, MemberRegister, err)
			_ = pr.CloseWithError(err)
			return
		}
		_, _ = io.Copy(io.Discard, pr)
		v.Register = rep
	}()
	return tee
}

// teeChecker feeds what it reads to the register's verifier and reports its verdict at the
// member's end.
type teeChecker struct {
	r    io.Reader
	pw   *io.PipeWriter
	done chan struct{}
	err  error
	end  bool
}

func (t *teeChecker) Read(p []byte) (int, error) {
	if t.end {
		return 0, io.EOF
	}
	n, err := t.r.Read(p)
	if n > 0 {
		_, _ = t.pw.Write(p[:n]) // a verifier that stopped has its error in t.err
	}
	if errors.Is(err, io.EOF) {
		_ = t.pw.Close()
		<-t.done
		t.end = true
		if t.err != nil {
			return n, t.err
		}
	} else if err != nil {
		_ = t.pw.CloseWithError(err)
		<-t.done
	}
	return n, err
}

// check compares the members read with the manifest, the sealed summary and the register.
func (v *Verified) check(sum backup.Summary, members []Member, js []byte) error {
	m, err := decodeManifest(js)
	if err != nil {
		return err
	}
	v.Manifest = m
	d := sha256.Sum256(js)
	v.Digest = d[:]
	if !bytes.Equal(sum.Digest, d[:]) || sum.Records != uint64(len(members)) {
		return fmt.Errorf("%w: the sealed summary names another manifest or %d members, not %d", ErrMismatch, sum.Records, len(members))
	}
	if m.ElectionID != v.Header.ElectionID || m.Index != v.Header.Index {
		return fmt.Errorf("%w: the manifest is of election %q at index %d, the header of %q at %d", ErrMismatch, m.ElectionID, m.Index, v.Header.ElectionID, v.Header.Index)
	}
	if len(m.Members) != len(members) {
		return fmt.Errorf("%w: the manifest lists %d members, the archive holds %d", ErrMismatch, len(m.Members), len(members))
	}
	for i, got := range members {
		want := m.Members[i]
		if want.Name != got.Name || want.Bytes != got.Bytes || want.SHA256 != got.SHA256 {
			return fmt.Errorf("%w: member %d is %s (%d bytes, sha256 %s), the manifest lists %s (%d bytes, sha256 %s)",
				ErrMismatch, i+1, got.Name, got.Bytes, got.SHA256, want.Name, want.Bytes, want.SHA256)
		}
	}
	if err := v.checkTallyDigests(); err != nil {
		return err
	}
	return v.checkRegisterExtent()
}

// checkTallyDigests ties the minutes and results members to the digests the cluster
// recorded with the tally (election.json, summarized in the manifest).
func (v *Verified) checkTallyDigests() error {
	m := v.Manifest
	for _, mem := range m.Members {
		want := ""
		switch {
		case strings.HasPrefix(mem.Name, TallyMinutesDir+"/"):
			want = m.MinutesDigest
		case strings.HasPrefix(mem.Name, TallyResultsDir+"/"):
			want = m.ResultsDigest
		default:
			continue
		}
		if mem.SHA256 != want {
			return fmt.Errorf("%w: %s has SHA-256 %s, the tally recorded %q", ErrMismatch, mem.Name, mem.SHA256, want)
		}
	}
	return nil
}

// Folders of the tally's members: the minutes and the results are checked against the
// digests recorded with the tally, the other files are kept as they are.
const (
	TallyMinutesDir = "tally/minutes"
	TallyResultsDir = "tally/results"
	TallyFilesDir   = "tally/files"
)

func (v *Verified) checkRegisterExtent() error {
	m := v.Manifest
	if v.Register == nil {
		if m.Register.Entries != 0 {
			return fmt.Errorf("%w: the manifest counts %d register entries, the archive holds no register", ErrMismatch, m.Register.Entries)
		}
		return nil
	}
	if v.Register.Entries != m.Register.Entries || v.Register.Head.String() != m.Register.Head {
		return fmt.Errorf("%w: the register holds %d entries up to %s, the manifest says %d up to %s",
			ErrMismatch, v.Register.Entries, v.Register.Head, m.Register.Entries, m.Register.Head)
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
