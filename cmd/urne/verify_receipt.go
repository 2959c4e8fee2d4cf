package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/tally"
)

type receiptFlags struct {
	receipt, fingerprints, digest, pv, key string
}

func (a *app) verifyReceiptCommand() *cobra.Command {
	var f receiptFlags
	cmd := &cobra.Command{
		Use:   "receipt --receipt FILE --fingerprints FILE (--box-digest HEX | --pv FILE)",
		Short: "Check that a voter's ballot is in the counted box",
		Long: "Checks the receipt's signature (with --key, the cluster's receipt public key), finds its\n" +
			"fingerprint in the published list, checks that the list hashes to the box digest of the\n" +
			"minutes, and prints the inclusion proof, which docs/BALLOT.md shows how to check by hand.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return a.verifyReceipt(f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.receipt, "receipt", "", "the voter's receipt (JSON)")
	fl.StringVar(&f.fingerprints, "fingerprints", "", "published fingerprint list (fingerprints.txt)")
	fl.StringVar(&f.digest, "box-digest", "", "box digest (hex), as the minutes give it")
	fl.StringVar(&f.pv, "pv", "", "minutes file to take the box digest from")
	fl.StringVar(&f.key, "key", "", "the cluster's receipt public key (PEM); without it the signature is not checked")
	must(cmd.MarkFlagRequired("receipt"))
	must(cmd.MarkFlagRequired("fingerprints"))
	return cmd
}

// receiptCheck is the JSON of `verify receipt`.
type receiptCheck struct {
	ElectionID     string                 `json:"election_id"`
	Fingerprint    string                 `json:"fingerprint"`
	SignatureValid *bool                  `json:"signature_valid,omitempty"`
	InBox          bool                   `json:"in_box"`
	BoxDigest      string                 `json:"box_digest"`
	Proof          *ballot.InclusionProof `json:"proof"`
}

func (a *app) verifyReceipt(f receiptFlags) error {
	sr, err := readReceipt(f.receipt)
	if err != nil {
		return err
	}
	check := receiptCheck{ElectionID: sr.ElectionID, Fingerprint: sr.Fingerprint.String()}
	if f.key != "" {
		if err := checkReceiptSignature(f.key, sr); err != nil {
			return err
		}
		ok := true
		check.SignatureValid = &ok
	}
	digest, err := boxDigestFrom(f)
	if err != nil {
		return err
	}
	fps, err := readFingerprints(f.fingerprints)
	if err != nil {
		return err
	}
	if root := ballot.MerkleRoot(fps); !bytes.Equal(root, digest) {
		return fmt.Errorf("the fingerprint list hashes to %x, not to the box digest %x: it is not the list of the counted box", root, digest)
	}
	proof, err := ballot.ProveFingerprint(fps, sr.Fingerprint)
	if err != nil {
		return fmt.Errorf("ballot %s is NOT in the counted box: %w", sr.Fingerprint, err)
	}
	if err := ballot.VerifyProof(digest, sr.Fingerprint, proof); err != nil {
		return err
	}
	check.InBox, check.BoxDigest, check.Proof = true, hex.EncodeToString(digest), proof
	return a.emit(check, func(w io.Writer) { printReceiptCheck(w, check) })
}

func readReceipt(path string) (*ballot.SignedReceipt, error) {
	b, err := readBounded(path, maxInputFile)
	if err != nil {
		return nil, err
	}
	var sr ballot.SignedReceipt
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("receipt %s: %w", path, err)
	}
	if len(sr.Fingerprint) != 32 {
		return nil, fmt.Errorf("receipt %s holds no 32-byte fingerprint", path)
	}
	return &sr, nil
}

func checkReceiptSignature(keyFile string, sr *ballot.SignedReceipt) error {
	pemText, err := readBounded(keyFile, maxInputFile)
	if err != nil {
		return err
	}
	pub, err := ballot.ParseSigningPublicKeyPEM(pemText)
	if err != nil {
		return err
	}
	return ballot.VerifyReceipt(pub, sr.Receipt, sr.Signature)
}

func boxDigestFrom(f receiptFlags) ([]byte, error) {
	switch {
	case f.digest != "" && f.pv != "":
		return nil, errors.New("give the box digest either with --box-digest or with --pv, not both")
	case f.digest != "":
		d, err := hex.DecodeString(strings.TrimSpace(f.digest))
		if err != nil || len(d) != 32 {
			return nil, fmt.Errorf("--box-digest %q is not 64 hex digits", f.digest)
		}
		return d, nil
	case f.pv != "":
		b, err := readBounded(f.pv, maxInputFile)
		if err != nil {
			return nil, err
		}
		m, err := tally.ParseMinutes(b)
		if err != nil {
			return nil, err
		}
		return m.Result.BoxDigest, nil
	}
	return nil, errors.New("give the box digest with --box-digest or --pv")
}

// readFingerprints reads one hex fingerprint per line.
func readFingerprints(path string) ([][]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = file.Close() }()
	var fps [][]byte
	sc := bufio.NewScanner(file)
	for line := 1; sc.Scan(); line++ {
		fp, err := hex.DecodeString(strings.TrimSpace(sc.Text()))
		if err != nil || len(fp) != 32 {
			return nil, fmt.Errorf("%s line %d is not a 64-hex-digit fingerprint", path, line)
		}
		fps = append(fps, fp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return fps, nil
}

func printReceiptCheck(w io.Writer, c receiptCheck) {
	if c.SignatureValid != nil {
		fprintf(w, "receipt signature: valid\n")
	} else {
		fprintf(w, "receipt signature: not checked (no --key)\n")
	}
	fprintf(w, "ballot %s is in the counted box of election %s\n", c.Fingerprint, c.ElectionID)
	fprintf(w, "leaf %d of %d, box digest %s\n", c.Proof.Index, c.Proof.Size, c.BoxDigest)
	fprintf(w, "inclusion proof (start with r = SHA-256(00 || fingerprint)):\n")
	for i, s := range c.Proof.Path {
		fprintf(w, "  %2d  %-5s %s\n", i+1, s.Side, s.Hash)
	}
}
