package archive

import (
	"bytes"
	"encoding/json"
	"time"
)

// ManifestFormat names the manifest of this version.
const (
	ManifestFormat  = "urne-election-archive"
	ManifestVersion = 1
)

// Manifest describes an archive and lists its members with their SHA-256. It is the last
// record of the sealed content; its own SHA-256 is the archive's digest, which the cluster
// records when the election is archived.
type Manifest struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	ElectionID string    `json:"election_id"`
	Name       string    `json:"name,omitempty"`
	Profile    string    `json:"profile,omitempty"`
	Phase      string    `json:"phase"`
	Index      uint64    `json:"index"`
	TakenAt    time.Time `json:"taken_at"`
	NodeID     string    `json:"node_id,omitempty"`
	// StateDigest is the state digest at Index, comparable with `urne operator digest`.
	StateDigest string `json:"state_digest"`
	// Build is the node binary the election ran with, as the cluster recorded it.
	Build *Build `json:"build,omitempty"`
	// Creator is the version of the urne binary that wrote the archive.
	Creator       string   `json:"creator,omitempty"`
	Counts        Counts   `json:"counts"`
	Register      Register `json:"register"`
	SealDigest    string   `json:"seal_digest,omitempty"`
	BoxRoot       string   `json:"box_root,omitempty"`
	ResultsDigest string   `json:"results_digest,omitempty"`
	MinutesDigest string   `json:"minutes_digest,omitempty"`
	Members       []Member `json:"members"`
}

// Build is a recorded node binary.
type Build struct {
	SHA256  string `json:"sha256"`
	Version string `json:"version,omitempty"`
}

// Counts are the election's counters at the archive's index.
type Counts struct {
	Voters      uint64 `json:"voters"`
	Emargements uint64 `json:"emargements"`
	Ballots     uint64 `json:"ballots"`
}

// Register is the activity register's extent in the archive.
type Register struct {
	Entries uint64 `json:"entries"`
	Head    string `json:"head,omitempty"`
	Stamps  int    `json:"stamps"`
}

// Member is one file of the archive.
type Member struct {
	Name   string `json:"name"`
	What   string `json:"what,omitempty"`
	Bytes  uint64 `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func decodeManifest(js []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	m := &Manifest{}
	if err := dec.Decode(m); err != nil {
		return nil, formatErr("the manifest does not decode: %v", err)
	}
	if m.Format != ManifestFormat || m.Version != ManifestVersion {
		return nil, formatErr("manifest format %q version %d; this build reads %q version %d", m.Format, m.Version, ManifestFormat, ManifestVersion)
	}
	return m, nil
}
