package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func writeRoll(t *testing.T, path string, n int) map[string]string {
	t.Helper()
	secrets := map[string]string{}
	var b strings.Builder
	b.WriteString("voter_id,name,secret\n")
	for i := range n {
		id, secret := "v"+string(rune('a'+i)), "secret-"+string(rune('a'+i))
		secrets[id] = secret
		b.WriteString(id + ",Name " + id + "," + secret + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return secrets
}

// checkPrepared reads a prepared roll as the import does and checks every hash.
func checkPrepared(t *testing.T, path string, secrets map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	voters, err := readAllVoters(t, string(data), formatAuto)
	if err != nil {
		t.Fatal(err)
	}
	if len(voters) != len(secrets) {
		t.Fatalf("%d voters prepared, want %d", len(voters), len(secrets))
	}
	for _, v := range voters {
		if v.Secret != "" || bcrypt.CompareHashAndPassword([]byte(v.SecretBcrypt), []byte(secrets[v.VoterId])) != nil {
			t.Fatalf("voter %s prepared as %q / %q", v.VoterId, v.Secret, v.SecretBcrypt)
		}
		if strings.Contains(string(data), secrets[v.VoterId]) {
			t.Fatalf("the prepared roll holds the secret of %s", v.VoterId)
		}
	}
}

// TestPrepareRollResumes: the prepared roll holds a bcrypt hash per secret and no secret; cut
// by a crash in the middle of a row, a second run keeps the rows written and finishes.
func TestPrepareRollResumes(t *testing.T) {
	dir := t.TempDir()
	roll, out := filepath.Join(dir, "roll.csv"), filepath.Join(dir, "prepared.csv")
	secrets := writeRoll(t, roll, 6)
	a := newApp(io.Discard, io.Discard)
	r, err := a.prepareRoll(roll, out, formatAuto, bcrypt.MinCost, 2)
	if err != nil || r.Voters != 6 || r.Hashed != 6 || r.Resumed != 0 {
		t.Fatalf("prepare = %+v, %v", r, err)
	}
	checkPrepared(t, out, secrets)

	data, _ := os.ReadFile(out)
	cut := strings.LastIndex(strings.TrimSuffix(string(data), "\n"), "\n") + 20 // inside the last row
	if err := os.WriteFile(out, data[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = a.prepareRoll(roll, out, formatAuto, bcrypt.MinCost, 2)
	if err != nil || r.Voters != 6 || r.Resumed != 5 || r.Hashed != 1 {
		t.Fatalf("resumed prepare = %+v, %v", r, err)
	}
	checkPrepared(t, out, secrets)

	if err := os.WriteFile(filepath.Join(dir, "other.csv"), []byte("voter_id,secret\nzz,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.prepareRoll(filepath.Join(dir, "other.csv"), out, formatAuto, bcrypt.MinCost, 1); err == nil || !strings.Contains(err.Error(), "not a preparation of this roll") {
		t.Fatalf("resuming with another roll: %v", err)
	}
	if _, err := a.prepareRoll(roll, roll, formatAuto, bcrypt.MinCost, 1); err == nil || !strings.Contains(err.Error(), "not a prepared roll") {
		t.Fatalf("writing over the roll itself: %v", err)
	}
}

// FuzzPreparedRows: whatever a prepared roll being resumed holds, reading it never panics and
// keeps only whole rows within the file.
func FuzzPreparedRows(f *testing.F) {
	f.Add([]byte("voter_id,name,email,date_of_birth,secret_bcrypt,composante,college,secteur\nv1,,,,h,,,\nv2,,,,h"))
	f.Add([]byte("voter_id,name,email,date_of_birth,secret_bcrypt,composante,college,secteur"))
	f.Add([]byte("voter_id,secret\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "prepared.csv")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		ids, end, err := preparedRows(file)
		if err != nil {
			return
		}
		if end < 0 || end > int64(len(data)) || (end > 0 && data[end-1] != '\n') {
			t.Fatalf("kept %d bytes of %d (%d rows)", end, len(data), len(ids))
		}
	})
}
