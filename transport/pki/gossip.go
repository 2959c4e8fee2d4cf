package pki

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
)

// GossipKeySize is the length of the memberlist encryption key: AES-256.
const GossipKeySize = 32

// maxGossipKeyText bounds what ParseGossipKey reads: one base64 line plus generous whitespace.
const maxGossipKeyText = 256

// GenerateGossipKey returns a fresh random gossip key.
func GenerateGossipKey() ([]byte, error) {
	key := make([]byte, GossipKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate gossip key: %w", err)
	}
	return key, nil
}

// EncodeGossipKey is the text of a gossip key file: one line of standard base64.
func EncodeGossipKey(key []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(key) + "\n")
}

// ParseGossipKey reads the text written by EncodeGossipKey; surrounding whitespace is ignored.
func ParseGossipKey(text []byte) ([]byte, error) {
	if len(text) > maxGossipKeyText {
		return nil, fmt.Errorf("%w: %d bytes of text, a key file holds one line of %d", ErrBadGossipKey, len(text), base64.StdEncoding.EncodedLen(GossipKeySize)+1)
	}
	line := bytes.TrimSpace(text)
	key := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
	n, err := base64.StdEncoding.Strict().Decode(key, line)
	if err != nil {
		return nil, fmt.Errorf("%w: not standard base64: %v", ErrBadGossipKey, err)
	}
	if n != GossipKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadGossipKey, n, GossipKeySize)
	}
	return key[:n], nil
}

// ReadGossipKey reads a gossip key file.
func ReadGossipKey(path string) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip key: %w", err)
	}
	key, err := ParseGossipKey(text)
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	return key, nil
}
