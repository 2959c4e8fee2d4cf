package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"
)

const (
	kekPrefix = "urne-kek-v1"
	// KeySize is the size in bytes of every key: the KEK and each data key (AES-256).
	KeySize = 32
	// maxKEKIDLen keeps the id short enough to sit in a one-byte length field of the keyring header.
	maxKEKIDLen = 64
	// maxKEKText bounds what is read from a file or a command: the line is about 70 bytes.
	maxKEKText = 4096
)

// kekCommandTimeout bounds an external key command (a KMS client) so a hung one cannot hold a
// node's start forever. A variable only so tests can shorten it.
var kekCommandTimeout = 10 * time.Second

// KEK is a key-encryption key: it seals a node's keyring and lives outside the data directory.
type KEK struct {
	id  string
	key [KeySize]byte
}

// KEKSource says where the key-encryption key comes from; exactly one field is set.
type KEKSource struct {
	// File is a path to a file of mode 0600 holding the key text.
	File string
	// Env names an environment variable holding the key text.
	Env string
	// Command is run with /bin/sh -c; its standard output is the key text.
	Command string
}

// GenerateKEK returns a new random key-encryption key with the given id.
func GenerateKEK(id string) (*KEK, error) {
	if err := validateKEKID(id); err != nil {
		return nil, err
	}
	k := &KEK{id: id}
	if _, err := rand.Read(k.key[:]); err != nil {
		return nil, fmt.Errorf("generate key-encryption key: %w", err)
	}
	return k, nil
}

// ID returns the key's short identifier, which is stored in clear next to what it seals.
func (k *KEK) ID() string { return k.id }

// Text returns the key in its text form: urne-kek-v1:<id>:<base64 of 32 bytes>.
func (k *KEK) Text() string {
	return kekPrefix + ":" + k.id + ":" + base64.StdEncoding.EncodeToString(k.key[:])
}

// String names the key without its material, so a KEK printed by mistake leaks nothing.
func (k *KEK) String() string { return fmt.Sprintf("key-encryption key %q", k.id) }

// GoString keeps %#v from printing the key material.
func (k *KEK) GoString() string { return k.String() }

// ParseKEK reads the text form of a key-encryption key. Trailing whitespace is ignored. Errors
// never quote the text, which may hold key material.
func ParseKEK(text []byte) (*KEK, error) {
	parts := strings.Split(strings.TrimRight(string(text), " \t\r\n"), ":")
	if len(parts) != 3 || parts[0] != kekPrefix {
		return nil, errorf(ErrKEKFormat, "malformed key-encryption key: expected one line %s:<id>:<base64 of %d bytes>", kekPrefix, KeySize)
	}
	if err := validateKEKID(parts[1]); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(raw) != KeySize {
		return nil, errorf(ErrKEKFormat, "malformed key-encryption key %q: the key must be standard base64 of exactly %d bytes", parts[1], KeySize)
	}
	k := &KEK{id: parts[1]}
	copy(k.key[:], raw)
	return k, nil
}

// validateKEKID accepts 1 to 64 characters from [A-Za-z0-9._-]: ids appear in file headers,
// error messages and configuration, so they stay printable and colon-free.
func validateKEKID(id string) error {
	if id == "" || len(id) > maxKEKIDLen {
		return errorf(ErrKEKFormat, "malformed key-encryption key: the id must be 1 to %d characters", maxKEKIDLen)
	}
	for _, c := range []byte(id) {
		if !isIDChar(c) {
			return errorf(ErrKEKFormat, "malformed key-encryption key: the id may only hold letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// WriteKEKFile writes the key's text to a new file of mode 0600 and syncs it. It refuses to
// overwrite an existing file: losing a KEK loses every keyring it sealed.
func WriteKEKFile(path string, k *KEK) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key-encryption key file: %w", err)
	}
	_, err = f.WriteString(k.Text() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key-encryption key file %s: %w", path, err)
	}
	return syncDir(path)
}

// LoadKEK reads the key-encryption key from the one source that is set.
func LoadKEK(src KEKSource) (*KEK, error) {
	switch {
	case countSet(src.File, src.Env, src.Command) != 1:
		return nil, errorf(ErrKEKSource, "key-encryption key source: set exactly one of file, env and command")
	case src.File != "":
		return loadKEKFile(src.File)
	case src.Env != "":
		return loadKEKEnv(src.Env)
	default:
		return loadKEKCommand(src.Command)
	}
}

func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

// loadKEKFile refuses a file that group or others may read: a key readable by other accounts
// is no longer under the operator's control.
func loadKEKFile(path string) (*KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errorf(ErrKEKSource, "key-encryption key file %s does not exist", path)
		}
		return nil, fmt.Errorf("%w: %w", ErrKEKSource, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEKSource, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 || !info.Mode().IsRegular() {
		return nil, errorf(ErrKEKSource, "key-encryption key file %s has mode %04o; it must be a regular file of mode 0600 (chmod 600 %s)", path, perm, path)
	}
	text, err := readBounded(f)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file %s: %w", path, err)
	}
	return parseFrom(text, "file "+path)
}

func loadKEKEnv(name string) (*KEK, error) {
	text := os.Getenv(name)
	if text == "" {
		return nil, errorf(ErrKEKSource, "key-encryption key: environment variable %s is empty", name)
	}
	return parseFrom([]byte(text), "environment variable "+name)
}

// loadKEKCommand runs an external key command (typically a KMS client). Its stderr goes into
// the error so an operator sees why it failed; its stdout, the key, never does.
func loadKEKCommand(command string) (*KEK, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kekCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitedBuffer{buf: &stdout}, &limitedBuffer{buf: &stderr}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s", kekCommandTimeout)
		}
		return nil, errorf(ErrKEKSource, "key-encryption key command failed: %v; stderr: %q", err, strings.TrimSpace(stderr.String()))
	}
	return parseFrom(stdout.Bytes(), "command output")
}

func parseFrom(text []byte, origin string) (*KEK, error) {
	k, err := ParseKEK(text)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key from %s: %w", origin, err)
	}
	return k, nil
}

func readBounded(f *os.File) ([]byte, error) {
	text, err := io.ReadAll(io.LimitReader(f, maxKEKText+1))
	if err != nil {
		return nil, err
	}
	if len(text) > maxKEKText {
		return nil, errorf(ErrKEKFormat, "malformed key-encryption key: longer than %d bytes", maxKEKText)
	}
	return text, nil
}

// limitedBuffer keeps at most maxKEKText bytes so a chatty command cannot exhaust memory.
type limitedBuffer struct{ buf *bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxKEKText + 1 - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
