package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/tally"
)

// ceremonyFixture is a ceremony folder made by `urne keys ceremony`, with the passphrase files
// it was run with.
type ceremonyFixture struct {
	dir, passDir string
	report       ceremonyReport
}

var testHolders = `[
  {"name": "president", "role": "president", "full_name": "Claire Martin"},
  {"name": "deputy", "role": "deputy"},
  {"name": "secretary", "role": "secretary"},
  {"name": "delegate-a", "role": "delegate"},
  {"name": "delegate-b", "role": "delegate"},
  {"name": "delegate-c", "role": "delegate"},
  {"name": "ops", "role": "operator"}
]`

const testPolicy = "and(or(president, deputy), 2-of(delegate-a, delegate-b, delegate-c))\n"

// cheapKDF keeps argon2id fast in tests.
var cheapKDF = []string{"--kdf-time", "1", "--kdf-memory-kib", "64", "--kdf-threads", "1"}

func writeTestFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runKeysCeremony(t *testing.T, policy string) (ceremonyFixture, string, int) {
	t.Helper()
	root := t.TempDir()
	fx := ceremonyFixture{dir: filepath.Join(root, "ceremony"), passDir: filepath.Join(root, "pass")}
	for _, n := range []string{"president", "deputy", "secretary", "delegate-a", "delegate-b", "delegate-c", "ops"} {
		writeTestFile(t, filepath.Join(fx.passDir, n), "passphrase of "+n+" in tests\n")
	}
	args := append([]string{"keys", "ceremony", "-o", "json", "--election", "cnam-2026", "--suites", "hpke",
		"--policy", writeTestFile(t, filepath.Join(root, "policy.txt"), policy),
		"--holders", writeTestFile(t, filepath.Join(root, "holders.json"), testHolders),
		"--out", fx.dir, "--passphrase-dir", fx.passDir}, cheapKDF...)
	stdout, stderr, code := runCLI(t, args...)
	if code == 0 {
		decodeOne(t, stdout, &fx.report)
	}
	return fx, stderr, code
}

func (fx ceremonyFixture) fragment(name string) string {
	return filepath.Join(fx.dir, fragmentsDir, name+".json")
}

// writeBallots seals votes to the ceremony's public key and writes a ballot export.
func (fx ceremonyFixture) writeBallots(t *testing.T, votes []ballot.Vote, emargements int) (string, [][]byte) {
	t.Helper()
	pemText, err := os.ReadFile(filepath.Join(fx.dir, electionKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := ballot.ParseElectionPublicKeys(pemText)
	if err != nil {
		t.Fatal(err)
	}
	var ballots [][]byte
	for _, v := range votes {
		inner, err := ballot.SealBallot(pubs[0], v)
		if err != nil {
			t.Fatal(err)
		}
		ballots = append(ballots, inner)
	}
	var buf bytes.Buffer
	if err := tally.WriteExport(&buf, tally.ExportHeader{ElectionID: "cnam-2026", Emargements: emargements}, ballots); err != nil {
		t.Fatal(err)
	}
	return writeTestFile(t, filepath.Join(t.TempDir(), "ballots.jsonl"), buf.String()), ballots
}

func testVotes() []ballot.Vote {
	var votes []ballot.Vote
	for i := range 30 {
		switch {
		case i%10 == 0:
			votes = append(votes, ballot.BlankVote("cte"))
		case i%3 == 0:
			votes = append(votes, ballot.Vote{Scrutin: "cte", List: "list-b"})
		default:
			votes = append(votes, ballot.Vote{Scrutin: "cte", List: "list-a"})
		}
	}
	return votes // 3 blank, 9 list-b, 18 list-a
}

func TestKeysCeremonyTallyAndVerifyPV(t *testing.T) {
	fx, stderr, code := runKeysCeremony(t, testPolicy)
	if code != 0 {
		t.Fatalf("keys ceremony exited %d: %s", code, stderr)
	}
	if len(fx.report.Fragments) != 5 || len(fx.report.SigningKeys) != 6 {
		t.Fatalf("ceremony wrote %d fragments and %d signing keys, want 5 and 6", len(fx.report.Fragments), len(fx.report.SigningKeys))
	}
	if st, err := os.Stat(fx.fragment("president")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("fragment file mode: %v %v", st, err)
	}
	ballotsFile, ballots := fx.writeBallots(t, testVotes(), 30)
	out := filepath.Join(t.TempDir(), "pv")
	stdout, stderr, code := runCLI(t, "tally", "offline", "-o", "json", "--ballots", ballotsFile, "--out", out,
		"--fragments", fx.fragment("president")+","+fx.fragment("delegate-a"), "--fragments", fx.fragment("delegate-c"),
		"--ceremony", filepath.Join(fx.dir, ceremonyRecordFile), "--passphrase-dir", fx.passDir,
		"--signatories", "president,secretary")
	if code != 0 {
		t.Fatalf("tally offline exited %d: %s", code, stderr)
	}
	var rep tallyReport
	decodeOne(t, stdout, &rep)
	sc := rep.Result.Scrutins[0]
	if sc.Blank != 3 || sc.Lists[0].ID != "list-a" || sc.Lists[0].Votes != 18 || sc.Lists[1].Votes != 9 {
		t.Fatalf("count %+v, want 3 blank, list-a 18, list-b 9", sc)
	}
	checkFingerprintList(t, filepath.Join(out, fingerprintsFile), ballots)
	checkVoteList(t, filepath.Join(out, votesFile), map[string]int{"blank": 3, "list-a": 18, "list-b": 9})
	pv := filepath.Join(out, minutesJSONFile)
	checkReceipts(t, out, pv, ballots[7])
	var sigs []string
	for _, member := range []string{"president", "secretary"} {
		_, stderr, code := runCLI(t, "keys", "sign", "--key", filepath.Join(fx.dir, signingDir, member+".json"), "--file", pv, "--passphrase-dir", fx.passDir)
		if code != 0 {
			t.Fatalf("keys sign by %s exited %d: %s", member, code, stderr)
		}
		sigs = append(sigs, pv+"."+member+".sig")
	}
	members := filepath.Join(fx.dir, ceremonyRecordFile)
	if _, stderr, code := runCLI(t, "verify", "pv", "--pv", pv, "--sig", strings.Join(sigs, ","), "--members", members); code != 0 {
		t.Fatalf("verify pv exited %d: %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "verify", "pv", "--pv", pv, "--sig", sigs[0], "--members", members); code != 1 || !strings.Contains(stderr, "not signed by secretary") {
		t.Fatalf("verify pv with a missing signature exited %d: %s", code, stderr)
	}
	raw, _ := os.ReadFile(pv)
	if err := os.WriteFile(pv, bytes.Replace(raw, []byte(`"votes": 18`), []byte(`"votes": 19`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "verify", "pv", "--pv", pv, "--sig", strings.Join(sigs, ","), "--members", members); code != 1 || !strings.Contains(stderr, "altered") {
		t.Fatalf("verify pv of tampered minutes exited %d: %s", code, stderr)
	}
}

// checkReceipts runs `verify receipt` on a genuine receipt, then on receipts of a ballot
// that is not in the box, signed and unsigned.
func checkReceipts(t *testing.T, out, pv string, inner []byte) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pubPEM, _ := ballot.MarshalSigningPublicKeyPEM(pub)
	key := writeTestFile(t, filepath.Join(t.TempDir(), "receipt-key.pem"), string(pubPEM))
	receiptFile := func(fp []byte) string {
		r := ballot.Receipt{ElectionID: "cnam-2026", Fingerprint: fp, EmargedAt: time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)}
		sig, err := ballot.SignReceipt(priv, r)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(ballot.SignedReceipt{Receipt: r, Signature: sig})
		return writeTestFile(t, filepath.Join(t.TempDir(), "receipt.json"), string(js))
	}
	fps := filepath.Join(out, fingerprintsFile)
	stdout, stderr, code := runCLI(t, "verify", "receipt", "-o", "json", "--receipt", receiptFile(ballot.Fingerprint(inner)), "--fingerprints", fps, "--pv", pv, "--key", key)
	if code != 0 {
		t.Fatalf("verify receipt exited %d: %s", code, stderr)
	}
	var check receiptCheck
	decodeOne(t, stdout, &check)
	if !check.InBox || check.SignatureValid == nil || check.Proof == nil || check.Proof.Size != 30 {
		t.Fatalf("verify receipt: %+v", check)
	}
	absent := receiptFile(ballot.Fingerprint([]byte("a ballot never cast")))
	if _, stderr, code := runCLI(t, "verify", "receipt", "--receipt", absent, "--fingerprints", fps, "--pv", pv); code != 1 || !strings.Contains(stderr, "NOT in the counted box") {
		t.Fatalf("receipt of an absent ballot: exit %d: %s", code, stderr)
	}
	forged := writeTestFile(t, filepath.Join(t.TempDir(), "forged.json"), strings.Replace(readTestFile(t, receiptFile(ballot.Fingerprint(inner))), "2026-12-02", "2026-12-03", 1))
	if _, stderr, code := runCLI(t, "verify", "receipt", "--receipt", forged, "--fingerprints", fps, "--pv", pv, "--key", key); code != 1 || !strings.Contains(stderr, "does not verify") {
		t.Fatalf("altered receipt: exit %d: %s", code, stderr)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkFingerprintList: every ballot's receipt fingerprint (sha256 of the ballot) is in the
// published list, which is sorted.
func checkFingerprintList(t *testing.T, path string, ballots [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	listed := map[string]bool{}
	prev := ""
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if sc.Text() <= prev {
			t.Fatalf("fingerprint list is not sorted at %s", sc.Text())
		}
		prev = sc.Text()
		listed[prev] = true
	}
	for _, b := range ballots {
		if !listed[hex.EncodeToString(ballot.Fingerprint(b))] {
			t.Fatalf("ballot %x is missing from the published fingerprints", ballot.Fingerprint(b))
		}
	}
	if len(listed) != len(ballots) {
		t.Fatalf("%d fingerprints published for %d ballots", len(listed), len(ballots))
	}
}

func TestTallyOfflineRefusals(t *testing.T) {
	fx, stderr, code := runKeysCeremony(t, testPolicy)
	if code != 0 {
		t.Fatalf("keys ceremony exited %d: %s", code, stderr)
	}
	ballotsFile, _ := fx.writeBallots(t, testVotes(), 29)
	tallyWith := func(passDir string, frags ...string) (string, int) {
		var paths []string
		for _, f := range frags {
			paths = append(paths, fx.fragment(f))
		}
		_, stderr, code := runCLI(t, "tally", "offline", "--ballots", ballotsFile, "--out", filepath.Join(t.TempDir(), "pv"),
			"--fragments", strings.Join(paths, ","), "--passphrase-dir", passDir)
		return stderr, code
	}
	if stderr, code := tallyWith(fx.passDir, "delegate-a", "delegate-b"); code != 1 || !strings.Contains(stderr, "or(president, deputy) needs 1") {
		t.Fatalf("two delegates without the president: exit %d: %s", code, stderr)
	}
	if stderr, code := tallyWith(fx.passDir, "president"); code != 1 || !strings.Contains(stderr, "do not satisfy") {
		t.Fatalf("the president alone: exit %d: %s", code, stderr)
	}
	wrong := t.TempDir()
	writeTestFile(t, filepath.Join(wrong, "deputy"), "not the deputy's passphrase")
	if stderr, code := tallyWith(wrong, "deputy"); code != 1 || !strings.Contains(stderr, "passphrase does not open the fragment of \"deputy\"") {
		t.Fatalf("wrong passphrase: exit %d: %s", code, stderr)
	}
	// 30 ballots, 29 émargements: minutes written with the anomaly, exit code 3.
	if stderr, code := tallyWith(fx.passDir, "deputy", "delegate-b", "delegate-c"); code != exitMismatch || !strings.Contains(stderr, "30 ballots but the émargement list has 29") {
		t.Fatalf("ballots ≠ émargements: exit %d: %s", code, stderr)
	}
}

func TestKeysCeremonyRefusesOperatorHolder(t *testing.T) {
	_, stderr, code := runKeysCeremony(t, "and(or(president, deputy), 2-of(delegate-a, ops))")
	if code != 1 || !strings.Contains(stderr, `"ops", whose role is "operator"`) {
		t.Fatalf("operator holding a fragment: exit %d: %s", code, stderr)
	}
}

// checkVoteList reads the decrypted ballots a tally wrote: one vote per line, sorted, as many
// per list as the count says, and no fingerprint.
func checkVoteList(t *testing.T, path string, want map[string]int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	key := func(v ballot.Vote) string { return fmt.Sprintf("%s\x00%t\x00%s", v.Scrutin, !v.Blank, v.List) }
	prev := ""
	for line := range bytes.Lines(data) {
		var v ballot.Vote
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		if bytes.Contains(line, []byte("fingerprint")) {
			t.Fatalf("%s names a fingerprint: %q", path, line)
		}
		if k := key(v); k < prev {
			t.Fatalf("%s is not sorted: %q comes late", path, line)
		} else {
			prev = k
		}
		if v.Blank {
			got["blank"]++
		} else {
			got[v.List]++
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%s holds %v, want %v", path, got, want)
	}
}
