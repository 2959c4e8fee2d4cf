package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKeyText is a fixed KEK so that error messages can be checked for key material.
var testKeyBytes = bytes.Repeat([]byte{0xA5}, KeySize)
var testKeyText = "urne-kek-v1:kek-1:" + base64.StdEncoding.EncodeToString(testKeyBytes)

func TestParseKEK(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(testKeyBytes)
	tests := []struct {
		name   string
		text   string
		wantID string // empty: expect ErrKEKFormat
	}{
		{"plain", testKeyText, "kek-1"},
		{"trailing newline", testKeyText + "\n", "kek-1"},
		{"trailing crlf and spaces", testKeyText + " \t\r\n", "kek-1"},
		{"id with dots", "urne-kek-v1:dc1.node_2-2026:" + b64, "dc1.node_2-2026"},
		{"empty", "", ""},
		{"wrong prefix", "urne-kek-v2:kek-1:" + b64, ""},
		{"missing id", "urne-kek-v1::" + b64, ""},
		{"id with space", "urne-kek-v1:kek 1:" + b64, ""},
		{"id too long", "urne-kek-v1:" + strings.Repeat("a", 65) + ":" + b64, ""},
		{"extra field", testKeyText + ":x", ""},
		{"short key", "urne-kek-v1:kek-1:" + base64.StdEncoding.EncodeToString(testKeyBytes[:31]), ""},
		{"long key", "urne-kek-v1:kek-1:" + base64.StdEncoding.EncodeToString(append(testKeyBytes, 1)), ""},
		{"url base64", "urne-kek-v1:kek-1:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xFB}, 32)), ""},
		{"unpadded", "urne-kek-v1:kek-1:" + strings.TrimRight(b64, "="), ""},
		{"leading space", " " + testKeyText, ""},
		{"two lines", testKeyText + "\n" + testKeyText, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKEK([]byte(tt.text))
			if tt.wantID == "" {
				if !errors.Is(err, ErrKEKFormat) {
					t.Fatalf("ParseKEK = %v, %v; want ErrKEKFormat", k, err)
				}
				assertNoKeyMaterial(t, err)
				return
			}
			if err != nil || k.ID() != tt.wantID {
				t.Fatalf("ParseKEK = %v, %v; want id %q", k, err, tt.wantID)
			}
		})
	}
}

func assertNoKeyMaterial(t *testing.T, err error) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString(testKeyBytes)
	if strings.Contains(err.Error(), b64[:16]) {
		t.Fatalf("error quotes key material: %v", err)
	}
}

func TestKEKTextRoundTrip(t *testing.T) {
	k, err := GenerateKEK("kek-2026")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKEK([]byte(k.Text()))
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != k.ID() || back.key != k.key {
		t.Fatal("parsed key differs from generated key")
	}
	other, _ := GenerateKEK("kek-2026")
	if other.key == k.key {
		t.Fatal("two generated keys are equal")
	}
	if _, err := GenerateKEK("bad:id"); !errors.Is(err, ErrKEKFormat) {
		t.Fatalf("GenerateKEK with a colon = %v; want ErrKEKFormat", err)
	}
}

func TestKEKPrintingHidesMaterial(t *testing.T) {
	k, _ := ParseKEK([]byte(testKeyText))
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, testKeyText[len("urne-kek-v1:kek-1:"):][:16]) {
			t.Fatalf("formatted KEK shows its material: %s", s)
		}
	}
}

func TestLoadKEKFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(testKeyText+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile honours umask
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"mode 0600", write("ok", 0o600), ""},
		{"mode 0400", write("ro", 0o400), ""},
		{"mode 0644", write("world", 0o644), "has mode 0644; it must be a regular file of mode 0600"},
		{"mode 0640", write("group", 0o640), "has mode 0640"},
		{"missing", filepath.Join(dir, "absent"), "does not exist"},
		{"directory", dir, "must be a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadKEK(KEKSource{File: tt.path})
			if tt.wantErr == "" {
				if err != nil || k.ID() != "kek-1" {
					t.Fatalf("LoadKEK = %v, %v", k, err)
				}
				return
			}
			if !errors.Is(err, ErrKEKSource) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("LoadKEK = %v; want ErrKEKSource naming %s and %q", err, tt.path, tt.wantErr)
			}
		})
	}
}

func TestLoadKEKMalformedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kek")
	bad := strings.Replace(testKeyText, "urne-kek-v1", "urne-kek-v0", 1)
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKEK(KEKSource{File: p})
	if !errors.Is(err, ErrKEKFormat) || !strings.Contains(err.Error(), p) {
		t.Fatalf("LoadKEK = %v; want ErrKEKFormat naming the file", err)
	}
	assertNoKeyMaterial(t, err)
}

func TestWriteKEKFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kek")
	k, _ := GenerateKEK("kek-w")
	if err := WriteKEKFile(p, k); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(p)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("stat = %v, %v; want mode 0600", info, err)
	}
	back, err := LoadKEK(KEKSource{File: p})
	if err != nil || back.key != k.key {
		t.Fatalf("LoadKEK after WriteKEKFile = %v, %v", back, err)
	}
	if err := WriteKEKFile(p, k); err == nil {
		t.Fatal("WriteKEKFile overwrote an existing key file")
	}
}

func TestLoadKEKEnv(t *testing.T) {
	t.Setenv("URNE_TEST_KEK", testKeyText+"\n")
	k, err := LoadKEK(KEKSource{Env: "URNE_TEST_KEK"})
	if err != nil || k.ID() != "kek-1" {
		t.Fatalf("LoadKEK(env) = %v, %v", k, err)
	}
	t.Setenv("URNE_TEST_KEK_EMPTY", "")
	_, err = LoadKEK(KEKSource{Env: "URNE_TEST_KEK_EMPTY"})
	if !errors.Is(err, ErrKEKSource) || !strings.Contains(err.Error(), "environment variable URNE_TEST_KEK_EMPTY is empty") {
		t.Fatalf("LoadKEK(empty env) = %v", err)
	}
}

func TestLoadKEKCommand(t *testing.T) {
	k, err := LoadKEK(KEKSource{Command: "printf '%s\\n' '" + testKeyText + "'"})
	if err != nil || k.ID() != "kek-1" || !bytes.Equal(k.key[:], testKeyBytes) {
		t.Fatalf("LoadKEK(command) = %v, %v", k, err)
	}
	_, err = LoadKEK(KEKSource{Command: "echo 'kms: access denied' >&2; exit 3"})
	if !errors.Is(err, ErrKEKSource) || !strings.Contains(err.Error(), "kms: access denied") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("LoadKEK(failing command) = %v; want its stderr and status", err)
	}
	_, err = LoadKEK(KEKSource{Command: "printf 'urne-kek-v1:kek-1:%s' " + base64.StdEncoding.EncodeToString(testKeyBytes[:20])})
	if !errors.Is(err, ErrKEKFormat) || !strings.Contains(err.Error(), "command output") {
		t.Fatalf("LoadKEK(malformed output) = %v", err)
	}
}

func TestLoadKEKCommandTimeout(t *testing.T) {
	defer func(d time.Duration) { kekCommandTimeout = d }(kekCommandTimeout)
	kekCommandTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err := LoadKEK(KEKSource{Command: "sleep 30"})
	if !errors.Is(err, ErrKEKSource) || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("LoadKEK(hung command) = %v; want a timeout error", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("hung command held LoadKEK for %s", elapsed)
	}
}

func TestLoadKEKNeedsExactlyOneSource(t *testing.T) {
	for _, src := range []KEKSource{{}, {File: "a", Env: "B"}, {Env: "B", Command: "c"}, {File: "a", Env: "B", Command: "c"}} {
		if _, err := LoadKEK(src); !errors.Is(err, ErrKEKSource) || !strings.Contains(err.Error(), "exactly one") {
			t.Errorf("LoadKEK(%+v) = %v; want an exactly-one error", src, err)
		}
	}
}
