package ballot

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func sampleReceipt() Receipt {
	fp := Fingerprint([]byte("a ballot"))
	return Receipt{ElectionID: "cnam-2026", Fingerprint: fp, EmargedAt: time.Date(2026, 12, 1, 8, 0, 3, 120000000, time.FixedZone("CET", 3600))}
}

func TestReceiptMessageGolden(t *testing.T) {
	msg, err := sampleReceipt().Message()
	if err != nil {
		t.Fatal(err)
	}
	want := "urne-receipt-v1\n" +
		"election: cnam-2026\n" +
		"fingerprint: 0d8a941944d47d1faccd45b016c65f7a090740032fb4b5124d9a8d7bb017a1ff\n" +
		"emarged-at: 2026-12-01T07:00:03.12Z\n"
	if string(msg) != want {
		t.Fatalf("receipt message:\n%s\nwant:\n%s", msg, want)
	}
}

func TestReceiptSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := sampleReceipt()
	sig, err := SignReceipt(priv, r)
	if err != nil {
		t.Fatalf("SignReceipt: %v", err)
	}
	if err := VerifyReceipt(pub, r, sig); err != nil {
		t.Fatalf("VerifyReceipt: %v", err)
	}
	// A receipt that went through JSON (as the voter keeps it) still verifies.
	var back Receipt
	js, _ := json.Marshal(r)
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if err := VerifyReceipt(pub, back, sig); err != nil {
		t.Fatalf("receipt after JSON round trip: %v (%s)", err, js)
	}
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	tampered := []struct {
		name string
		r    Receipt
		pub  ed25519.PublicKey
		sig  []byte
	}{
		{"election", Receipt{ElectionID: "cnam-2027", Fingerprint: r.Fingerprint, EmargedAt: r.EmargedAt}, pub, sig},
		{"fingerprint", Receipt{ElectionID: r.ElectionID, Fingerprint: flip(r.Fingerprint, 0), EmargedAt: r.EmargedAt}, pub, sig},
		{"time", Receipt{ElectionID: r.ElectionID, Fingerprint: r.Fingerprint, EmargedAt: r.EmargedAt.Add(time.Nanosecond)}, pub, sig},
		{"signature", r, pub, flip(sig, 10)},
		{"key", r, otherPub, sig},
	}
	for _, tt := range tampered {
		if err := VerifyReceipt(tt.pub, tt.r, tt.sig); !errors.Is(err, ErrReceipt) {
			t.Fatalf("tampered %s: VerifyReceipt = %v, want ErrReceipt", tt.name, err)
		}
	}
}

func TestReceiptRefusesBadInput(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := SignReceipt(ec, sampleReceipt()); !errors.Is(err, ErrKeyFormat) {
		t.Fatalf("SignReceipt with ECDSA = %v, want ErrKeyFormat", err)
	}
	bad := []Receipt{
		{ElectionID: "", Fingerprint: make([]byte, 32), EmargedAt: time.Unix(1, 0)},
		{ElectionID: "a\nfingerprint: x", Fingerprint: make([]byte, 32), EmargedAt: time.Unix(1, 0)},
		{ElectionID: "e", Fingerprint: make([]byte, 31), EmargedAt: time.Unix(1, 0)},
		{ElectionID: "e", Fingerprint: make([]byte, 32)},
	}
	for _, r := range bad {
		if _, err := SignReceipt(priv, r); !errors.Is(err, ErrReceipt) {
			t.Fatalf("SignReceipt(%+v) = %v, want ErrReceipt", r, err)
		}
	}
}

// The docs promise that openssl alone verifies a receipt; this runs that recipe.
func TestReceiptVerifiesWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := sampleReceipt()
	sig, _ := SignReceipt(priv, r)
	msg, _ := r.Message()
	pubPEM, err := MarshalSigningPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{"pkeyutl", "-verify", "-pubin", "-inkey", write("receipt-key.pem", pubPEM), "-rawin",
		"-in", write("receipt.txt", msg), "-sigfile", write("receipt.sig", sig)}
	if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl refused a genuine receipt: %v\n%s", err, out)
	}
	write("receipt.txt", bytes.Replace(msg, []byte("cnam-2026"), []byte("cnam-2027"), 1))
	if err := exec.Command(openssl, args...).Run(); err == nil {
		t.Fatal("openssl accepted a tampered receipt")
	}
}

func TestSigningPublicKeyPEM(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	b, err := MarshalSigningPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSigningPublicKeyPEM(b)
	if err != nil || !back.Equal(pub) {
		t.Fatalf("ParseSigningPublicKeyPEM = %x, %v", back, err)
	}
	ks := testKeys(t)
	envPEM, _ := MarshalEnvelopePublicKeyPEM(&ks.envelope.PublicKey)
	if _, err := ParseSigningPublicKeyPEM(envPEM); !errors.Is(err, ErrKeyFormat) {
		t.Fatalf("an RSA key parsed as a signing key: %v", err)
	}
}

func TestSignedReceiptJSON(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := sampleReceipt()
	sig, _ := SignReceipt(priv, r)
	js, err := json.Marshal(SignedReceipt{Receipt: r, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	var back SignedReceipt
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if err := VerifyReceipt(pub, back.Receipt, back.Signature); err != nil {
		t.Fatalf("signed receipt after JSON: %v\n%s", err, js)
	}
	if !bytes.Contains(js, []byte(`"fingerprint":"`+Hex(r.Fingerprint).String()+`"`)) {
		t.Fatalf("receipt JSON does not show the fingerprint in hex: %s", js)
	}
}
