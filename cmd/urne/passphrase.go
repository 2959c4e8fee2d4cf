package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/term"
)

// passphrases supplies the passphrase of each person: from a folder holding one file per person
// (named after them) when --passphrase-dir is set, otherwise typed on the terminal without
// echo. Files suit rehearsals and tests; a real ceremony has each person type theirs.
type passphrases struct {
	dir string
}

// maxPassphraseFile bounds a passphrase file.
const maxPassphraseFile = 4 << 10

// get returns the passphrase of name; confirm asks twice on a terminal (a new passphrase).
func (p *passphrases) get(name, label string, confirm bool) ([]byte, error) {
	if p.dir != "" {
		return readPassphraseFile(filepath.Join(p.dir, name))
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("no terminal to ask the passphrase of %s (%v): give --passphrase-dir", name, err)
	}
	defer func() { _ = tty.Close() }()
	first, err := prompt(tty, fmt.Sprintf("Passphrase of %s: ", label))
	if err != nil || !confirm {
		return first, err
	}
	second, err := prompt(tty, fmt.Sprintf("Passphrase of %s, again: ", label))
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, second) {
		return nil, fmt.Errorf("the two passphrases typed for %s differ", name)
	}
	return first, nil
}

func prompt(tty *os.File, text string) ([]byte, error) {
	fprintf(tty, "%s", text)
	pass, err := term.ReadPassword(int(tty.Fd()))
	fprintf(tty, "\n")
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return pass, nil
}

// readPassphraseFile reads a passphrase file, without its final line break.
func readPassphraseFile(path string) ([]byte, error) {
	b, err := readBounded(path, maxPassphraseFile)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r")), nil
}

// readBounded reads a whole file, refusing one larger than limit.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// writeNew writes a file that must not exist yet: key material is never overwritten.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}
