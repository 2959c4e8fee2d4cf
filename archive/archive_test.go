package archive

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/backup"
)

func TestCreateVerifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pv := filepath.Join(dir, "pv.json")
	if err := os.WriteFile(pv, []byte(`{"minutes":"signed"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	file, c := makeArchive(t, Options{Files: []File{{Name: "tally/pv.json", What: "minutes", Path: pv}}, Creator: "test"})
	got := map[string][]byte{}
	v, err := Verify(bytes.NewReader(file), testKey(t, "archive-key"), nil, func(name string, r io.Reader) error {
		b, err := io.ReadAll(r)
		got[name] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Digest, c.Digest) || v.Bytes != int64(len(file)) {
		t.Fatalf("digest %x (want %x), bytes %d (want %d)", v.Digest, c.Digest, v.Bytes, len(file))
	}
	m := v.Manifest
	if m.Phase != "closed" || m.Counts.Voters != 20 || m.Counts.Ballots != 12 || m.Counts.Emargements != 12 {
		t.Fatalf("manifest: %+v", m)
	}
	for _, name := range []string{MemberElection, MemberVoters, MemberEmargement, MemberBox, MemberRegister, "tally/pv.json"} {
		if len(got[name]) == 0 {
			t.Errorf("member %s missing or empty (members: %v)", name, m.Members)
		}
	}
	if n := bytes.Count(got[MemberBox], []byte("\n")); n != 12 {
		t.Errorf("%d ballots in the box member, want 12", n)
	}
	if n := bytes.Count(got[MemberVoters], []byte("\n")); n != 20 {
		t.Errorf("%d voters in the roll member, want 20", n)
	}
	if bytes.Contains(got[MemberVoters], []byte("secret_hash")) {
		t.Error("the roll member holds the secrets' hashes")
	}
	// The register member is an export `urne audit verify` reads.
	rep, err := audit.Verify(bytes.NewReader(got[MemberRegister]), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries == 0 || rep.Entries != m.Register.Entries || rep.Head.String() != m.Register.Head {
		t.Fatalf("register %d entries up to %s; manifest %+v", rep.Entries, rep.Head, m.Register)
	}
	if string(got["tally/pv.json"]) != `{"minutes":"signed"}` {
		t.Fatalf("pv member %q", got["tally/pv.json"])
	}
}

// TestCreateStreams feeds the state one byte at a time: members are cut as records arrive,
// whatever the reads look like.
func TestCreateStreams(t *testing.T) {
	state, index := closedElection(t, 5, 3)
	var out bytes.Buffer
	if _, err := Create(&out, iotest.OneByteReader(bytes.NewReader(state)), testKey(t, "k"), header(index), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(iotest.OneByteReader(bytes.NewReader(out.Bytes())), testKey(t, "k"), nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefusesDamage(t *testing.T) {
	file, _ := makeArchive(t, Options{})
	key := testKey(t, "archive-key")
	for _, at := range []int{len(file) / 3, len(file) / 2, len(file) - 40, len(file) - 1} {
		bad := bytes.Clone(file)
		bad[at] ^= 0x20
		_, err := Verify(bytes.NewReader(bad), key, nil, nil)
		if !errors.Is(err, backup.ErrDecrypt) && !errors.Is(err, backup.ErrCorrupt) {
			t.Errorf("byte %d flipped: %v, want a decrypt or corrupt error", at, err)
		}
	}
	for _, n := range []int{len(file) - 1, len(file) / 2, 30} {
		_, err := Verify(bytes.NewReader(file[:n]), key, nil, nil)
		if !errors.Is(err, backup.ErrTruncated) {
			t.Errorf("cut at %d: %v, want truncated", n, err)
		}
	}
	_, err := Verify(bytes.NewReader(file), testKey(t, "other-key"), nil, nil)
	if !errors.Is(err, backup.ErrWrongKey) || !strings.Contains(err.Error(), "archive-key") {
		t.Errorf("wrong key: %v", err)
	}
}

// TestArchiveAndBackupAreNotConfused: a backup restore refuses an archive, archive verify
// refuses a backup.
func TestArchiveAndBackupAreNotConfused(t *testing.T) {
	file, _ := makeArchive(t, Options{})
	key := testKey(t, "archive-key")
	if _, err := backup.Verify(bytes.NewReader(file), key); !errors.Is(err, backup.ErrNotArchive) {
		t.Fatalf("backup verify of an archive: %v", err)
	}
	state, index := closedElection(t, 3, 1)
	var bak bytes.Buffer
	if _, _, err := backup.Save(&bak, bytes.NewReader(state), key, header(index)); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(bytes.NewReader(bak.Bytes()), key, nil, nil); !errors.Is(err, backup.ErrNotArchive) {
		t.Fatalf("archive verify of a backup: %v", err)
	}
}

// TestVerifyCatchesRewrittenRegister reseals an archive whose register had one entry changed:
// every chunk authenticates and every member matches the manifest, yet the chain breaks.
func TestVerifyCatchesRewrittenRegister(t *testing.T) {
	file, _ := makeArchive(t, Options{})
	key := testKey(t, "archive-key")
	forged := reseal(t, file, key, func(name string, b []byte) []byte {
		if name != MemberRegister {
			return b
		}
		return bytes.Replace(b, []byte(`"action":"import voters"`), []byte(`"action":"import votes!"`), 1)
	})
	_, err := Verify(bytes.NewReader(forged), key, nil, nil)
	if !errors.Is(err, ErrMismatch) || !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("rewritten register: %v", err)
	}
	// And a member changed without its manifest line fails on the manifest.
	forged = reseal(t, file, key, func(name string, b []byte) []byte {
		if name == MemberVoters {
			return bytes.Replace(b, []byte("Voter v000001"), []byte("Voter X000001"), 1)
		}
		return b
	})
	if _, err := Verify(bytes.NewReader(forged), key, nil, nil); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), MemberVoters) {
		t.Fatalf("changed member: %v", err)
	}
}

// reseal reads every member of file, lets edit change it, and seals the result under the
// original manifest, as a forger holding the key would.
func reseal(t *testing.T, file []byte, key *backup.Secret, edit func(string, []byte) []byte) []byte {
	t.Helper()
	br, err := backup.NewReader(bytes.NewReader(file), key)
	if err != nil {
		t.Fatal(err)
	}
	type member struct {
		name string
		body []byte
	}
	var ms []member
	_, js, err := readMembers(br, func(name string, r io.Reader) error {
		b, err := io.ReadAll(r)
		ms = append(ms, member{name, edit(name, b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	bw, _, err := backup.NewWriter(&out, key, br.Header())
	if err != nil {
		t.Fatal(err)
	}
	mw, err := newMemberWriter(bw)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		sink, err := mw.open(m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(bytes.NewReader(m.body)).WriteTo(sink); err != nil {
			t.Fatal(err)
		}
		if _, err := sink.close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.manifest(js); err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(br.Summary()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
