package archive

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

func destroyed() *fsmpb.Destruction {
	return &fsmpb.Destruction{RequestedBy: "client:operator", RequestedAtUnixNano: 10, AuthorizedBy: "client:organizer",
		AuthorizedAtUnixNano: 20, DueAtUnixNano: 5, Destroyed: []string{"voters: 3 records"}, Kept: []string{"candidate lists: 1"},
		Erasures: []*fsmpb.RecordErasure{{NodeId: "b", Keys: []string{"data key 1"}, ErasedAtUnixNano: 30}, {NodeId: "a", ErasedAtUnixNano: 31}}}
}

func TestCertificateSignedAndComplete(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	if _, err := NewCertificate("e", nil, destroyed(), []string{"a", "b", "c"}); !errors.Is(err, ErrCertificate) {
		t.Fatalf("a certificate without node c's erasure: %v", err)
	}
	cert, err := NewCertificate("e", []byte{1, 2}, destroyed(), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NewCertificate("e", []byte{1, 2}, destroyed(), []string{"b", "a"})
	if !bytes.Equal(cert, again) {
		t.Fatal("two nodes build different certificates from one record")
	}
	sig := SignCertificate(priv, cert)
	c, err := VerifyCertificate(pub, cert, sig)
	if err != nil || len(c.Nodes) != 2 || c.Nodes[0].NodeID != "a" || c.ArchiveDigest != "0102" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err := VerifyCertificate(pub, bytes.Replace(cert, []byte("3 records"), []byte("2 records"), 1), sig); !errors.Is(err, ErrCertificate) {
		t.Fatalf("altered certificate: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := VerifyCertificate(other, cert, sig); !errors.Is(err, ErrCertificate) {
		t.Fatalf("another cluster's key: %v", err)
	}
	one := destroyed()
	one.AuthorizedBy = one.RequestedBy
	self, _ := NewCertificate("e", nil, one, []string{"a"})
	if _, err := VerifyCertificate(pub, self, SignCertificate(priv, self)); !errors.Is(err, ErrCertificate) {
		t.Fatalf("one principal for both steps: %v", err)
	}
}

func FuzzVerifyCertificate(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	cert, _ := NewCertificate("e", nil, destroyed(), []string{"a"})
	f.Add(cert, SignCertificate(priv, cert))
	f.Fuzz(func(t *testing.T, cert, sig []byte) {
		_, _ = VerifyCertificate(pub, cert, sig)
	})
}

// TestCreateChecksTallyDigests: minutes whose digest is not the one recorded with the tally
// are refused (a test election records none, so any minutes file mismatches the empty one).
func TestCreateChecksTallyDigests(t *testing.T) {
	pv := filepath.Join(t.TempDir(), "pv.json")
	if err := os.WriteFile(pv, []byte("minutes"), 0o600); err != nil {
		t.Fatal(err)
	}
	state, index := closedElection(t, 3, 1)
	var out bytes.Buffer
	_, err := Create(&out, bytes.NewReader(state), testKey(t, "k"), header(index),
		Options{Files: []File{{Name: MemberName(TallyMinutesDir, "PV final.json"), Path: pv, Role: RoleMinutes}}})
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("minutes that the tally did not record: %v", err)
	}
	if got := MemberName(TallyMinutesDir, "PV final.json"); got != "tally/minutes/pv-final.json" {
		t.Fatalf("member name %q", got)
	}
}
