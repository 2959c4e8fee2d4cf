package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urne-vote/urne/transport/urnepb"
)

// maxElectionFile bounds the election description `election configure` reads.
const maxElectionFile = 4 << 20

// electionFile is the description of an election an organizer writes: who runs it, its
// window and bureau, its scrutins and their candidate lists. Unknown fields are refused.
type electionFile struct {
	Organizer      string       `json:"organizer"`
	OrganizerEmail []string     `json:"organizer_emails"`
	Controller     string       `json:"controller"`
	Processor      string       `json:"processor"`
	OpensAt        time.Time    `json:"opens_at"`
	ClosesAt       time.Time    `json:"closes_at"`
	SessionTimeout jsonDuration `json:"session_timeout"`
	CodeValidity   jsonDuration `json:"code_validity"`
	// DeletionAt is the processing register's deletion date; absent: two years after the vote.
	DeletionAt time.Time       `json:"deletion_at"`
	Bureau     []bureauMember  `json:"bureau"`
	Scrutins   []scrutinInFile `json:"scrutins"`
}

type bureauMember struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Function string `json:"function"`
	Phone    string `json:"phone"`
}

type scrutinInFile struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Composantes []string     `json:"composantes"`
	Colleges    []string     `json:"colleges"`
	Secteurs    []string     `json:"secteurs"`
	Seats       uint32       `json:"seats"`
	ListRule    listRule     `json:"list_rule"`
	Lists       []listInFile `json:"lists"`
}

type listRule struct {
	GenderBalance bool    `json:"gender_balance"`
	WomenShare    float64 `json:"women_share"`
	Alternate     bool    `json:"alternate"`
	MaxCandidates uint32  `json:"max_candidates"`
}

type listInFile struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Candidates []candidate `json:"candidates"`
}

type candidate struct {
	Name        string `json:"name"`
	Sex         string `json:"sex"`
	DateOfBirth string `json:"date_of_birth"`
}

// jsonDuration reads "15m" or "5m" from JSON.
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"15m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a positive Go duration such as \"15m\"", s)
	}
	*d = jsonDuration(v)
	return nil
}

// parseElectionFile reads an election description, refusing unknown fields, trailing data
// and anything over maxElectionFile bytes.
func parseElectionFile(r io.Reader) (*electionFile, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxElectionFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxElectionFile {
		return nil, fmt.Errorf("election file is larger than %d bytes", maxElectionFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f electionFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("election file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("election file: data after the JSON object")
	}
	return &f, f.check()
}

func (f *electionFile) check() error {
	if f.OpensAt.IsZero() != f.ClosesAt.IsZero() {
		return errors.New("election file: give both opens_at and closes_at, or neither")
	}
	ids := map[string]bool{}
	for _, s := range f.Scrutins {
		if s.ID == "" || ids[s.ID] {
			return fmt.Errorf("election file: scrutin id %q is empty or given twice", s.ID)
		}
		ids[s.ID] = true
		if s.ListRule.WomenShare < 0 || s.ListRule.WomenShare > 1 {
			return fmt.Errorf("election file: scrutin %q: women_share %v is not between 0 and 1", s.ID, s.ListRule.WomenShare)
		}
	}
	return nil
}

// config is the API form of the file's configuration.
func (f *electionFile) config() *urnepb.ElectionConfig {
	cfg := &urnepb.ElectionConfig{Organizer: f.Organizer, Controller: f.Controller, Processor: f.Processor,
		SessionTimeoutNanos: int64(f.SessionTimeout), OtpValidityNanos: int64(f.CodeValidity), OrganizerEmails: f.OrganizerEmail}
	if !f.OpensAt.IsZero() {
		cfg.OpensAtUnixNano, cfg.ClosesAtUnixNano = f.OpensAt.UnixNano(), f.ClosesAt.UnixNano()
	}
	if !f.DeletionAt.IsZero() {
		cfg.DeletionAtUnixNano = f.DeletionAt.UnixNano()
	}
	for _, m := range f.Bureau {
		cfg.Bureau = append(cfg.Bureau, &urnepb.BureauMember{Name: m.Name, Email: m.Email, Function: m.Function, Phone: m.Phone})
	}
	return cfg
}

// scrutins are the API form of the file's scrutins and lists.
func (f *electionFile) scrutins() ([]*urnepb.Scrutin, []*urnepb.CandidateList) {
	var scrutins []*urnepb.Scrutin
	var lists []*urnepb.CandidateList
	for _, s := range f.Scrutins {
		r := s.ListRule
		scrutins = append(scrutins, &urnepb.Scrutin{ScrutinId: s.ID, Name: s.Name, Composantes: s.Composantes,
			Colleges: s.Colleges, Secteurs: s.Secteurs, Seats: s.Seats, ListRule: &urnepb.ListRule{
				GenderBalance: r.GenderBalance, WomenSharePermille: uint32(r.WomenShare*1000 + 0.5),
				Alternate: r.Alternate, MaxCandidates: r.MaxCandidates}})
		for _, l := range s.Lists {
			list := &urnepb.CandidateList{ScrutinId: s.ID, ListId: l.ID, Name: l.Name}
			for _, c := range l.Candidates {
				list.Candidates = append(list.Candidates, &urnepb.Candidate{Name: c.Name, Sex: c.Sex, DateOfBirth: c.DateOfBirth})
			}
			lists = append(lists, list)
		}
	}
	return scrutins, lists
}
