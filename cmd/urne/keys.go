package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/ceremony"
	"github.com/urne-vote/urne/tally"
)

// Files of a ceremony folder.
const (
	ceremonyRecordFile = "ceremony.json"
	electionKeysFile   = "election-public.pem"
	fragmentsDir       = "fragments"
	signingDir         = "signing"
	maxInputFile       = 16 << 20
)

func (a *app) keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Election key ceremony and bureau signing keys (offline)",
	}
	cmd.AddCommand(a.keysCeremonyCommand(), a.keysSignCommand())
	return cmd
}

type ceremonyFlags struct {
	policy, holders, out, election, passDir string
	suites                                  []string
	kdf                                     ceremony.KDFParams
}

func (a *app) keysCeremonyCommand() *cobra.Command {
	var f ceremonyFlags
	cmd := &cobra.Command{
		Use:   "ceremony --policy FILE --holders FILE --out DIR",
		Short: "Create the election key, split it into passphrase-locked fragments, and the bureau's signing keys",
		Long: "Run offline, on a bureau member's machine. The policy file holds the access policy as text,\n" +
			"e.g. and(or(president, deputy), 2-of(delegate-a, delegate-b, delegate-c)), or as JSON.\n" +
			"The holders file is a JSON array of {name, role, full_name}. Each holder and bureau member\n" +
			"types a passphrase (or --passphrase-dir holds one file per person). The folder receives\n" +
			"ceremony.json and election-public.pem (public: they go to the cluster and into the seal),\n" +
			"fragments/NAME.json and signing/NAME.json (one locked file to hand to each person).",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return a.runCeremony(f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policy, "policy", "", "access policy file (text or JSON)")
	fl.StringVar(&f.holders, "holders", "", "holders file: JSON array of {name, role, full_name}")
	fl.StringVar(&f.out, "out", "", "folder to write; it must not hold a ceremony already")
	fl.StringVar(&f.election, "election", "", "election id written in every file")
	fl.StringVar(&f.passDir, "passphrase-dir", "", "folder with one passphrase file per person (default: ask on the terminal)")
	fl.StringSliceVar(&f.suites, "suites", []string{"rsa", "hpke"}, "ballot suites to create an election key for")
	fl.Uint32Var(&f.kdf.Time, "kdf-time", ceremony.DefaultKDF.Time, "argon2id passes")
	fl.Uint32Var(&f.kdf.MemoryKiB, "kdf-memory-kib", ceremony.DefaultKDF.MemoryKiB, "argon2id memory in KiB")
	fl.Uint8Var(&f.kdf.Threads, "kdf-threads", ceremony.DefaultKDF.Threads, "argon2id lanes")
	for _, name := range []string{"policy", "holders", "out"} {
		must(cmd.MarkFlagRequired(name))
	}
	return cmd
}

func (a *app) runCeremony(f ceremonyFlags) error {
	policy, people, opts, err := loadCeremonyInput(f)
	if err != nil {
		return err
	}
	if err := ceremony.Check(policy, people, opts); err != nil {
		return err
	}
	if err := prepareCeremonyDir(f.out); err != nil {
		return err
	}
	pass, err := a.collectPassphrases(f.passDir, policy, people)
	if err != nil {
		return err
	}
	res, err := ceremony.Run(policy, people, pass, opts)
	for _, p := range pass {
		clear(p)
	}
	if err != nil {
		return err
	}
	if err := writeCeremony(f.out, res); err != nil {
		return err
	}
	return a.emitCeremony(f.out, res)
}

func loadCeremonyInput(f ceremonyFlags) (*ceremony.Policy, []ceremony.Person, ceremony.Options, error) {
	opts := ceremony.Options{ElectionID: f.election, KDF: f.kdf}
	policyText, err := readBounded(f.policy, maxInputFile)
	if err != nil {
		return nil, nil, opts, fmt.Errorf("policy: %w", err)
	}
	policy, err := ceremony.ParsePolicy(string(policyText))
	if err != nil {
		return nil, nil, opts, err
	}
	holders, err := readBounded(f.holders, maxInputFile)
	if err != nil {
		return nil, nil, opts, fmt.Errorf("holders: %w", err)
	}
	people, err := ceremony.ParseHolders(holders)
	if err != nil {
		return nil, nil, opts, err
	}
	for _, name := range f.suites {
		s, err := ballot.ParseSuite(strings.TrimSpace(name))
		if err != nil {
			return nil, nil, opts, err
		}
		opts.Suites = append(opts.Suites, s)
	}
	return policy, people, opts, nil
}

func prepareCeremonyDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ceremonyRecordFile)); err == nil {
		return fmt.Errorf("%s already holds a ceremony (%s): choose another folder", dir, ceremonyRecordFile)
	}
	for _, d := range []string{dir, filepath.Join(dir, fragmentsDir), filepath.Join(dir, signingDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) collectPassphrases(dir string, policy *ceremony.Policy, people []ceremony.Person) (map[string][]byte, error) {
	src := &passphrases{dir: dir}
	out := map[string][]byte{}
	for _, name := range ceremony.Receivers(policy, people) {
		p, err := src.get(name, personLabel(people, name), true)
		if err != nil {
			return nil, err
		}
		out[name] = p
	}
	return out, nil
}

func personLabel(people []ceremony.Person, name string) string {
	for _, p := range people {
		if p.Name == name && p.FullName != "" {
			return fmt.Sprintf("%s (%s, %s)", name, p.FullName, p.Role)
		}
	}
	return name
}

func writeCeremony(dir string, res *ceremony.Result) error {
	record, err := res.PublicKeys.Marshal()
	if err != nil {
		return err
	}
	var pemText []byte
	for _, k := range res.PublicKeys.ElectionKeys {
		pemText = append(pemText, k.PEM...)
	}
	for _, group := range []struct {
		sub   string
		files []*ceremony.LockedFile
	}{{fragmentsDir, res.Fragments}, {signingDir, res.SigningKeys}} {
		for _, lf := range group.files {
			b, err := lf.Marshal()
			if err != nil {
				return err
			}
			if err := writeNew(filepath.Join(dir, group.sub, lf.Owner+".json"), b, 0o600); err != nil {
				return err
			}
		}
	}
	if err := writeNew(filepath.Join(dir, electionKeysFile), pemText, 0o644); err != nil {
		return err
	}
	// The record is written last: its presence marks a complete ceremony folder.
	return writeNew(filepath.Join(dir, ceremonyRecordFile), record, 0o644)
}

// ceremonyReport is the JSON of `keys ceremony`.
type ceremonyReport struct {
	Dir          string                 `json:"dir"`
	ElectionID   string                 `json:"election_id,omitempty"`
	CeremonyID   string                 `json:"ceremony_id"`
	Policy       string                 `json:"policy"`
	ElectionKeys []ceremony.ElectionKey `json:"election_keys"`
	Fragments    []string               `json:"fragments"`
	SigningKeys  []string               `json:"signing_keys"`
}

func (a *app) emitCeremony(dir string, res *ceremony.Result) error {
	pk := res.PublicKeys
	r := ceremonyReport{Dir: dir, ElectionID: pk.ElectionID, CeremonyID: pk.CeremonyID.String(), Policy: pk.Policy}
	for _, k := range pk.ElectionKeys {
		r.ElectionKeys = append(r.ElectionKeys, ceremony.ElectionKey{Suite: k.Suite, KeyID: k.KeyID})
	}
	for _, f := range res.Fragments {
		r.Fragments = append(r.Fragments, filepath.Join(dir, fragmentsDir, f.Owner+".json"))
	}
	for _, f := range res.SigningKeys {
		r.SigningKeys = append(r.SigningKeys, filepath.Join(dir, signingDir, f.Owner+".json"))
	}
	return a.emit(r, func(w io.Writer) {
		fprintf(w, "ceremony %s for election %q under policy %s\n", r.CeremonyID, r.ElectionID, r.Policy)
		for _, k := range r.ElectionKeys {
			fprintf(w, "  election key %-4s %s\n", k.Suite, k.KeyID)
		}
		fprintf(w, "public: %s, %s\n", filepath.Join(dir, ceremonyRecordFile), filepath.Join(dir, electionKeysFile))
		fprintf(w, "hand each person their file, then delete it from this machine:\n")
		for _, p := range append(r.Fragments, r.SigningKeys...) {
			fprintf(w, "  %s\n", p)
		}
	})
}

func (a *app) keysSignCommand() *cobra.Command {
	var keyFile, file, out, passDir string
	cmd := &cobra.Command{
		Use:   "sign --key FILE --file PV",
		Short: "Sign the minutes (or any file) with a bureau member's locked signing key",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return a.signFile(keyFile, file, out, passDir)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keyFile, "key", "", "the member's locked signing key (signing/NAME.json)")
	fl.StringVar(&file, "file", "", "file to sign, e.g. pv.json")
	fl.StringVar(&out, "out", "", "signature file to write (default FILE.NAME.sig)")
	fl.StringVar(&passDir, "passphrase-dir", "", "folder with one passphrase file per person (default: ask on the terminal)")
	must(cmd.MarkFlagRequired("key"))
	must(cmd.MarkFlagRequired("file"))
	return cmd
}

func (a *app) signFile(keyFile, file, out, passDir string) error {
	raw, err := readBounded(keyFile, maxInputFile)
	if err != nil {
		return err
	}
	locked, err := ceremony.ParseLockedFile(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	data, err := readBounded(file, maxInputFile)
	if err != nil {
		return err
	}
	pass, err := (&passphrases{dir: passDir}).get(locked.Owner, locked.Owner, false)
	if err != nil {
		return err
	}
	key, err := locked.UnlockSigningKey(pass)
	clear(pass)
	if err != nil {
		return err
	}
	sig, err := tally.SignMinutes(data, locked.Owner, key).Marshal()
	clear(key)
	if err != nil {
		return err
	}
	if out == "" {
		out = file + "." + locked.Owner + ".sig"
	}
	if err := writeNew(out, sig, 0o644); err != nil {
		return err
	}
	v := struct {
		Member    string `json:"member"`
		Signature string `json:"signature"`
	}{locked.Owner, out}
	return a.emit(v, func(w io.Writer) { fprintf(w, "%s signed %s: %s\n", locked.Owner, file, out) })
}
