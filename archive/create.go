package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Names of the members taken from the state.
const (
	MemberElection   = "election.json"
	MemberVoters     = "voters.jsonl"
	MemberScrutins   = "scrutins.jsonl"
	MemberLists      = "lists.jsonl"
	MemberEmargement = "emargement.jsonl"
	MemberBox        = "ballots/box.jsonl"
	MemberRegister   = "register.jsonl"
)

// stateMembers maps a state bucket to the member that holds its records, in the order the
// state streams them (bucket name order). Buckets absent here (accounts, logins, sessions,
// outbox, homonyms) are authentication and delivery state whose retention ends with the vote.
var stateMembers = map[string]struct{ name, what string }{
	"box":        {MemberBox, "the encrypted ballots: fingerprint and stored value (a BoxEntry protobuf in a legal election, the opaque ballot in a test one)"},
	"emargement": {MemberEmargement, "the émargement: keyed voter (or voter and scrutin) hash and time of each vote"},
	"lists":      {MemberLists, "the candidate lists as filed"},
	"register":   {MemberRegister, "the activity register (lifecycle steps, rectifications of the roll, authentication events, operations) with its timestamp tokens, in the export format `urne audit verify` reads"},
	"scrutins":   {MemberScrutins, "the scrutins"},
	"voters":     {MemberVoters, "the final voter roll (keyed voter hash and record; secrets' hashes left out)"},
}

// File is a file added to an archive beside the state: the minutes and results of the tally.
type File struct {
	Name string // member name, e.g. "tally/pv.json"
	What string
	Path string
	// Role "minutes" or "results" ties the file to the digest the cluster recorded with the
	// tally: Create refuses a file whose SHA-256 is not that digest.
	Role string
}

// Roles of the tally's files.
const (
	RoleMinutes = "minutes"
	RoleResults = "results"
)

// MemberName turns a file name into a member name under dir: lower case, and '-' for any
// character a member name may not hold.
func MemberName(dir, base string) string {
	b := []byte(strings.ToLower(base))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), ".")
	if name == "" {
		name = "file"
	}
	return dir + "/" + name
}

// Options are what Create needs besides the state stream.
type Options struct {
	// Files are added after the state's members, in this order.
	Files []File
	// Creator is the version of the binary writing the archive.
	Creator string
}

// Created is what Create wrote.
type Created struct {
	Header   backup.Header
	Manifest *Manifest
	// Digest is the SHA-256 of the manifest's bytes: the archive's identity.
	Digest []byte
	// Bytes is the number of plaintext bytes sealed.
	Bytes uint64
}

// Create seals the election's state stream (a snapshot as the leader streams it for a
// backup) and files into an archive on dst, one member after the other as the records
// arrive: memory use is a few chunks whatever the size of the election. The archive is
// complete only when Create returns nil; dst must be thrown away otherwise.
func Create(dst io.Writer, state io.Reader, s *backup.Secret, h backup.Header, o Options) (*Created, error) {
	h.Content = backup.ContentElectionArchive
	bw, h, err := backup.NewWriter(dst, s, h)
	if err != nil {
		return nil, err
	}
	mw, err := newMemberWriter(bw)
	if err != nil {
		return nil, err
	}
	x := &extractor{mw: mw, m: &Manifest{Format: ManifestFormat, Version: ManifestVersion, ElectionID: h.ElectionID,
		Index: h.Index, TakenAt: h.TakenAt, NodeID: h.NodeID, Creator: o.Creator}}
	st, err := backup.ReadStateFunc(state, x.record)
	if err != nil {
		return nil, fmt.Errorf("the leader's state stream: %w", err)
	}
	if st.Index != h.Index {
		return nil, fmt.Errorf("%w: the stream is at index %d, the leader announced %d", backup.ErrSnapshot, st.Index, h.Index)
	}
	if err := x.closeMember(); err != nil {
		return nil, err
	}
	if x.m.Phase == "" {
		return nil, fmt.Errorf("%w: the state holds no election", ErrMismatch)
	}
	x.m.StateDigest = hex.EncodeToString(st.Digest)
	x.m.Counts = Counts{Voters: st.Voters, Emargements: st.Emargements, Ballots: st.Ballots}
	for _, f := range o.Files {
		if err := x.file(f); err != nil {
			return nil, err
		}
	}
	js, err := json.Marshal(x.m)
	if err != nil {
		return nil, err
	}
	if err := mw.manifest(js); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(js)
	sum := backup.Summary{Records: uint64(len(x.m.Members)), Digest: digest[:],
		Voters: st.Voters, Emargements: st.Emargements, Ballots: st.Ballots}
	if err := bw.Close(sum); err != nil {
		return nil, err
	}
	return &Created{Header: h, Manifest: x.m, Digest: digest[:], Bytes: bw.Size()}, nil
}

// extractor turns state records into members as they stream.
type extractor struct {
	mw       *memberWriter
	m        *Manifest
	cur      *memberSink
	curWhat  string
	register *audit.Writer
}

func (x *extractor) record(bucket, key, value []byte) error {
	if string(bucket) == "meta" {
		if err := x.closeMember(); err != nil {
			return err
		}
		return x.meta(key, value)
	}
	target, ok := stateMembers[string(bucket)]
	if !ok {
		return x.closeMember()
	}
	if x.cur == nil || x.cur.name != target.name {
		if err := x.closeMember(); err != nil {
			return err
		}
		if err := x.openMember(target.name, target.what); err != nil {
			return err
		}
	}
	return x.line(string(bucket), key, value)
}

func (x *extractor) openMember(name, what string) error {
	sink, err := x.mw.open(name)
	if err != nil {
		return err
	}
	x.cur, x.curWhat = sink, what
	if name == MemberRegister {
		x.register, err = audit.NewWriter(sink, audit.Header{Election: x.m.ElectionID, ExportedBy: "urne archive create",
			ExportedAt: x.m.TakenAt.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")})
	}
	return err
}

func (x *extractor) closeMember() error {
	if x.cur == nil {
		return nil
	}
	if x.register != nil {
		if err := x.register.Flush(); err != nil {
			return err
		}
		x.register = nil
	}
	m, err := x.cur.close()
	if err != nil {
		return err
	}
	m.What = x.curWhat
	x.m.Members = append(x.m.Members, m)
	x.cur = nil
	return nil
}

// line writes one record of the current member.
func (x *extractor) line(bucket string, key, value []byte) error {
	var out []byte
	var err error
	switch bucket {
	case "register":
		return x.registerEntry(value)
	case "box":
		out, err = json.Marshal(struct {
			Fingerprint string `json:"fingerprint"`
			Stored      string `json:"stored"`
		}{hex.EncodeToString(key), base64.StdEncoding.EncodeToString(value)})
	case "voters":
		v := &fsmpb.VoterRecord{}
		if err := proto.Unmarshal(value, v); err != nil {
			return fmt.Errorf("voter record: %w", err)
		}
		v.SecretHash = nil
		out, err = keyedLine(key, v)
	default:
		var m proto.Message
		switch bucket {
		case "emargement":
			m = &fsmpb.EmargementRecord{}
		case "lists":
			m = &fsmpb.CandidateList{}
		case "scrutins":
			m = &fsmpb.Scrutin{}
		}
		if err := proto.Unmarshal(value, m); err != nil {
			return fmt.Errorf("%s record: %w", bucket, err)
		}
		out, err = keyedLine(key, m)
	}
	if err != nil {
		return err
	}
	_, err = x.cur.Write(append(out, '\n'))
	return err
}

func keyedLine(key []byte, m proto.Message) ([]byte, error) {
	rec, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"key":%q,"record":`, hex.EncodeToString(key))
	if err := json.Compact(&b, rec); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (x *extractor) registerEntry(value []byte) error {
	e := &audit.Entry{}
	if err := e.UnmarshalBinary(value); err != nil {
		return fmt.Errorf("register entry: %w", err)
	}
	if err := x.register.Write(e); err != nil {
		return err
	}
	x.m.Register.Entries++
	x.m.Register.Head = e.Hash().String()
	if e.Stamp != nil {
		x.m.Register.Stamps++
	}
	return nil
}

// meta takes the election record (a member of its own, and the manifest's summary of it)
// and the recorded build.
func (x *extractor) meta(key, value []byte) error {
	switch string(key) {
	case "election":
		e := &fsmpb.ElectionState{}
		if err := proto.Unmarshal(value, e); err != nil {
			return fmt.Errorf("election record: %w", err)
		}
		x.describe(e)
		js, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(e)
		if err != nil {
			return err
		}
		return x.whole(MemberElection, "the election: identity, profile, configuration with the bureau's appointments, key, seal, times and digests", bytes.NewReader(append(js, '\n')))
	case "sealed_build":
		b := &fsmpb.RecordBuild{}
		if err := proto.Unmarshal(value, b); err != nil {
			return fmt.Errorf("recorded build: %w", err)
		}
		x.m.Build = &Build{SHA256: hex.EncodeToString(b.Sha256), Version: b.Version}
	}
	return nil
}

func (x *extractor) describe(e *fsmpb.ElectionState) {
	x.m.Name, x.m.Phase = e.Name, fsm.PhaseName(e.Phase)
	x.m.Profile = e.Profile
	if x.m.Profile == "" {
		x.m.Profile = fsm.ProfileTest
	}
	hexOf := func(b []byte) string { return hex.EncodeToString(b) }
	x.m.SealDigest, x.m.BoxRoot = hexOf(e.GetSeal().GetDigest()), hexOf(e.BoxRoot)
	x.m.ResultsDigest, x.m.MinutesDigest = hexOf(e.ResultsDigest), hexOf(e.MinutesDigest)
}

// whole writes one member from r.
func (x *extractor) whole(name, what string, r io.Reader) error {
	if err := x.openMember(name, what); err != nil {
		return err
	}
	if _, err := io.Copy(x.cur, r); err != nil {
		return err
	}
	return x.closeMember()
}

func (x *extractor) file(f File) error {
	fh, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer fh.Close()
	if err := x.whole(f.Name, f.What, fh); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	want := map[string]string{RoleMinutes: x.m.MinutesDigest, RoleResults: x.m.ResultsDigest}[f.Role]
	got := x.m.Members[len(x.m.Members)-1].SHA256
	if f.Role != "" && want != got {
		return fmt.Errorf("%w: %s has SHA-256 %s, but the cluster recorded %s digest %q with the tally", ErrMismatch, f.Path, got, f.Role, want)
	}
	return nil
}

// CreateFile writes the archive to path through a temporary file beside it, synced and
// renamed only once complete: path is never a partial archive. It refuses to replace a file.
func CreateFile(path string, state io.Reader, s *backup.Secret, h backup.Header, o Options) (*Created, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s exists: refusing to replace an archive", path)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	bw := bufio.NewWriterSize(tmp, 1<<20)
	c, err := Create(bw, state, s, h, o)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("archive not written: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return c, d.Sync()
}
