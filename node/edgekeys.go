package node

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/urne-vote/urne/ballot"
)

// envelopeKey opens envelopes with the cluster's RSA envelope key, which every node holds so
// that the node receiving a cast opens it (the cost spreads over the cluster).
type envelopeKey struct{ priv *rsa.PrivateKey }

func (k envelopeKey) OpenEnvelope(sessionID string, envelope []byte) ([]byte, []byte, error) {
	return ballot.OpenEnvelope(k.priv, sessionID, envelope)
}

// receiptKey signs receipts with the cluster's Ed25519 key.
type receiptKey struct{ priv ed25519.PrivateKey }

func (k receiptKey) SignReceipt(electionID string, fingerprint []byte, emargedAt time.Time) ([]byte, error) {
	return ballot.SignReceipt(k.priv, ballot.Receipt{ElectionID: electionID, Fingerprint: fingerprint, EmargedAt: emargedAt})
}

// loadEdgeKeys reads the envelope and receipt keys named by the config, unless the embedder
// supplied its own.
func (n *Node) loadEdgeKeys() error {
	if n.opts.Envelopes == nil && n.cfg.EnvelopeKeyFile != "" {
		data, err := os.ReadFile(n.cfg.EnvelopeKeyFile)
		if err != nil {
			return fmt.Errorf("envelope key: %w", err)
		}
		priv, err := ballot.ParseEnvelopePrivateKeyPEM(data)
		if err != nil {
			return fmt.Errorf("envelope key %s: %w", n.cfg.EnvelopeKeyFile, err)
		}
		n.opts.Envelopes = envelopeKey{priv}
	}
	if n.opts.Receipts == nil && n.cfg.ReceiptKeyFile != "" {
		priv, err := ReadReceiptKey(n.cfg.ReceiptKeyFile)
		if err != nil {
			return err
		}
		n.opts.Receipts = receiptKey{priv}
	}
	return nil
}

// MarshalReceiptKey encodes the cluster's receipt signing key as PKCS#8 PEM.
func MarshalReceiptKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ReadReceiptKey reads a PKCS#8 PEM Ed25519 key.
func ReadReceiptKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("receipt key %s: no PKCS#8 PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("receipt key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("receipt key %s: %T, want Ed25519", path, k)
	}
	return priv, nil
}
