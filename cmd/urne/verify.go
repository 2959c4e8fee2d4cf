package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/ceremony"
	"github.com/urne-vote/urne/tally"
)

func (a *app) verifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify election documents without trusting the cluster",
	}
	cmd.AddCommand(a.verifyPVCommand(), a.verifyReceiptCommand(), a.verifyDestructionCommand())
	return cmd
}

func (a *app) verifyPVCommand() *cobra.Command {
	var pvFile, members string
	var sigFiles []string
	cmd := &cobra.Command{
		Use:   "pv --pv FILE --sig FILE... --members FILE",
		Short: "Check that the minutes are signed, unaltered, by every signatory they name",
		Long: "The members file is the ceremony's public record (ceremony.json) or any JSON object with\n" +
			"\"members\": [{\"name\", \"public_key\" (PEM)}]. Exit code 1 with the reason when a signature\n" +
			"is missing, unknown, or does not verify over the exact bytes of the minutes.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return a.verifyPV(pvFile, sigFiles, members) },
	}
	fl := cmd.Flags()
	fl.StringVar(&pvFile, "pv", "", "minutes file (pv.json)")
	fl.StringSliceVar(&sigFiles, "sig", nil, "signature files (repeat, or comma-separated)")
	fl.StringVar(&members, "members", "", "members' public keys: ceremony.json")
	for _, name := range []string{"pv", "members"} {
		must(cmd.MarkFlagRequired(name))
	}
	return cmd
}

func (a *app) verifyPV(pvFile string, sigFiles []string, membersFile string) error {
	pv, err := readBounded(pvFile, maxInputFile)
	if err != nil {
		return err
	}
	keys, err := loadMemberKeys(membersFile)
	if err != nil {
		return err
	}
	var sigs []*tally.Signature
	for _, path := range sigFiles {
		b, err := readBounded(path, maxInputFile)
		if err != nil {
			return err
		}
		s, err := tally.ParseSignature(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		sigs = append(sigs, s)
	}
	m, err := tally.VerifyPV(pv, sigs, keys)
	if err != nil {
		return err
	}
	return a.emitVerifiedPV(m, sigs)
}

// loadMemberKeys reads the "members" of a ceremony record.
func loadMemberKeys(path string) (map[string]ed25519.PublicKey, error) {
	b, err := readBounded(path, maxInputFile)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Members []ceremony.MemberKey `json:"members"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("members file %s: %w", path, err)
	}
	if len(doc.Members) == 0 {
		return nil, fmt.Errorf("members file %s names no member", path)
	}
	keys := make(map[string]ed25519.PublicKey, len(doc.Members))
	for _, mk := range doc.Members {
		pub, err := ballot.ParseSigningPublicKeyPEM([]byte(mk.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("members file %s, key of %q: %w", path, mk.Name, err)
		}
		keys[mk.Name] = pub
	}
	return keys, nil
}

// verifiedPV is the JSON of `verify pv`.
type verifiedPV struct {
	Verified   bool     `json:"verified"`
	ElectionID string   `json:"election_id"`
	SignedBy   []string `json:"signed_by"`
	Ballots    int      `json:"ballots"`
	BoxDigest  string   `json:"box_digest"`
}

func (a *app) emitVerifiedPV(m *tally.Minutes, sigs []*tally.Signature) error {
	v := verifiedPV{Verified: true, ElectionID: m.ElectionID, Ballots: m.Result.Ballots, BoxDigest: m.Result.BoxDigest.String()}
	for _, s := range sigs {
		v.SignedBy = append(v.SignedBy, s.Member)
	}
	return a.emit(v, func(w io.Writer) {
		fprintf(w, "minutes of election %s verified: signed by %v\n", v.ElectionID, v.SignedBy)
		fprintf(w, "%d ballots, box digest %s\n", v.Ballots, v.BoxDigest)
	})
}
