package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Sealer encrypts values at rest. The associated data names the storage location
// (bucket "/" key), so a value moved to another key fails to open.
type Sealer interface {
	Seal(aad, plaintext []byte) []byte
	Open(aad, ciphertext []byte) ([]byte, error)
}

// Buckets and meta keys. allBuckets is in key order: Digest and snapshots walk it.
// coreBuckets are those of the first version: a database without the others is older, and
// gets them at its read-write open.
var (
	bucketAccounts   = []byte("accounts")
	bucketBox        = []byte("box")
	bucketEmargement = []byte("emargement")
	bucketHomonyms   = []byte("homonyms")
	bucketLists      = []byte("lists")
	bucketLogins     = []byte("logins")
	bucketMeta       = []byte("meta")
	bucketOutbox     = []byte("outbox")
	bucketScrutins   = []byte("scrutins")
	bucketSessions   = []byte("sessions")
	bucketVoters     = []byte("voters")
	allBuckets       = [][]byte{bucketAccounts, bucketBox, bucketEmargement, bucketHomonyms,
		bucketLists, bucketLogins, bucketMeta, bucketOutbox, bucketRegister, bucketScrutins, bucketSessions, bucketVoters}
	coreBuckets = [][]byte{bucketBox, bucketEmargement, bucketMeta, bucketVoters}
	// retiredBuckets are left by earlier versions and hold nothing this one reads: the
	// journal was a second hash chain beside the register, which now carries its details. A
	// database that has one opens; its read-write open drops it, and a snapshot streaming one
	// restores without it.
	retiredBuckets = [][]byte{[]byte("journal")}

	keyAppliedIndex = []byte("applied_index")
	keyCounters     = []byte("counters")
	keyElection     = []byte("election")
)

// Phases of the election, numbered like urnepb.ElectionPhase. The numbers are those of the
// wire and the disk; the lifecycle runs draft -> sealed -> open -> closed -> tallied -> archived.
const (
	PhaseNone     int32 = 0
	PhaseDraft    int32 = 1
	PhaseOpen     int32 = 2
	PhaseClosed   int32 = 3
	PhaseSealed   int32 = 4
	PhaseTallied  int32 = 5
	PhaseArchived int32 = 6
)

var phaseNames = map[int32]string{
	PhaseNone: "none", PhaseDraft: "draft", PhaseSealed: "sealed", PhaseOpen: "open",
	PhaseClosed: "closed", PhaseTallied: "tallied", PhaseArchived: "archived",
}

// PhaseName is the lower-case name of a phase.
func PhaseName(p int32) string {
	if name, ok := phaseNames[p]; ok {
		return name
	}
	return fmt.Sprintf("phase-%d", p)
}

func phaseName(p int32) string { return PhaseName(p) }

// location is the associated data of a sealed value: bucket "/" key.
func location(bucket, key []byte) []byte {
	aad := make([]byte, 0, len(bucket)+1+len(key))
	aad = append(append(append(aad, bucket...), '/'), key...)
	return aad
}

// putSealed seals plain under bucket/key. bbolt keeps key and the sealed value until
// commit, so neither may be reused by the caller.
func putSealed(tx *bolt.Tx, s Sealer, bucket, key, plain []byte) error {
	if err := tx.Bucket(bucket).Put(key, s.Seal(location(bucket, key), plain)); err != nil {
		return storageErr("write %s: %w", bucket, err)
	}
	return nil
}

// getOpened returns the plaintext under bucket/key, or ok=false when absent. A value that
// does not open is a storage failure: wrong key or tampered file.
func getOpened(tx *bolt.Tx, s Sealer, bucket, key []byte) (plain []byte, ok bool, err error) {
	sealed := tx.Bucket(bucket).Get(key)
	if sealed == nil {
		return nil, false, nil
	}
	plain, err = s.Open(location(bucket, key), sealed)
	if err != nil {
		return nil, false, storageErr("open a sealed value of bucket %s: %w", bucket, err)
	}
	return plain, true, nil
}

func getMessage(tx *bolt.Tx, s Sealer, bucket, key []byte, m proto.Message) (bool, error) {
	plain, ok, err := getOpened(tx, s, bucket, key)
	if !ok || err != nil {
		return false, err
	}
	if err := proto.Unmarshal(plain, m); err != nil {
		return false, storageErr("decode %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func putMessage(tx *bolt.Tx, s Sealer, bucket, key []byte, m proto.Message) error {
	plain, err := marshalOptions.Marshal(m)
	if err != nil {
		return storageErr("encode %s/%s: %w", bucket, key, err)
	}
	return putSealed(tx, s, bucket, key, plain)
}

func readAppliedIndex(tx *bolt.Tx, s Sealer) (uint64, error) {
	plain, ok, err := getOpened(tx, s, bucketMeta, keyAppliedIndex)
	if !ok || err != nil {
		return 0, err
	}
	if len(plain) != 8 {
		return 0, storageErr("applied index of %d bytes, want 8", len(plain))
	}
	return binary.BigEndian.Uint64(plain), nil
}

func writeAppliedIndex(tx *bolt.Tx, s Sealer, index uint64) error {
	return putSealed(tx, s, bucketMeta, keyAppliedIndex, binary.BigEndian.AppendUint64(nil, index))
}

// readElection returns nil when no election was created.
func readElection(tx *bolt.Tx, s Sealer) (*fsmpb.ElectionState, error) {
	e := &fsmpb.ElectionState{}
	ok, err := getMessage(tx, s, bucketMeta, keyElection, e)
	if !ok {
		return nil, err
	}
	return e, nil
}

func readCounters(tx *bolt.Tx, s Sealer) (*fsmpb.Counters, error) {
	c := &fsmpb.Counters{}
	if _, err := getMessage(tx, s, bucketMeta, keyCounters, c); err != nil {
		return nil, err
	}
	return c, nil
}

// voterKey is the lookup key of a voter in the roll and the émargement: a keyed hash, so
// the file never names a voter.
func voterKey(indexKey []byte, voterID string) []byte {
	return voterKeyWith(hmac.New(sha256.New, indexKey), voterID)
}

// voterKeyWith computes voterKey with mac, an HMAC-SHA256 keyed with the index key.
func voterKeyWith(mac hash.Hash, voterID string) []byte {
	mac.Reset()
	mac.Write([]byte(voterID))
	return mac.Sum(nil)
}

// castCheck binds an émargement to its request and ballot without storing the fingerprint:
// linking the two needs the request id as well as the index key.
func castCheck(indexKey []byte, requestID string, fingerprint []byte) []byte {
	return castCheckWith(hmac.New(sha256.New, indexKey), requestID, fingerprint)
}

func castCheckWith(mac hash.Hash, requestID string, fingerprint []byte) []byte {
	mac.Reset()
	mac.Write([]byte("cast"))
	mac.Write(binary.AppendUvarint(nil, uint64(len(requestID))))
	mac.Write([]byte(requestID))
	mac.Write(fingerprint)
	return mac.Sum(nil)
}

// keyedHash is HMAC-SHA256(index key, label | len | part | ...): the lookup key of a record
// that would otherwise name a person (a login identifier, a name and date of birth).
func keyedHash(mac hash.Hash, label string, parts ...[]byte) []byte {
	mac.Reset()
	mac.Write([]byte(label))
	for _, p := range parts {
		mac.Write(binary.AppendUvarint(nil, uint64(len(p))))
		mac.Write(p)
	}
	return mac.Sum(nil)
}

// keyCount counts a bucket's keys with a cursor, which sees what the transaction wrote;
// bbolt's Bucket.Stats reads committed pages only, and applies share a transaction until it
// commits (commit.go).
func keyCount(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// isEmpty tells whether a bucket has no key, as the transaction sees it.
func isEmpty(b *bolt.Bucket) bool {
	k, _ := b.Cursor().First()
	return k == nil
}

// seqKey is the key of an append-only record (outbox): its sequence, big-endian.
func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func createBuckets(tx *bolt.Tx) error {
	for _, name := range retiredBuckets {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("drop retired bucket %s: %w", name, err)
		}
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

func retired(name []byte) bool {
	return slices.ContainsFunc(retiredBuckets, func(b []byte) bool { return bytes.Equal(b, name) })
}
