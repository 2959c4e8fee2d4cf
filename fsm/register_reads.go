package fsm

import (
	"crypto/x509"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/audit"
)

func readRegisterEntry(tx *bolt.Tx, s Sealer, seq uint64) (*audit.Entry, error) {
	plain, ok, err := getOpened(tx, s, bucketRegister, registerKey(seq))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: register entry %d is missing", ErrCorrupt, seq)
	}
	e := &audit.Entry{}
	if err := e.UnmarshalBinary(plain); err != nil {
		return nil, fmt.Errorf("%w: register entry %d: %v", ErrCorrupt, seq, err)
	}
	return e, nil
}

// RegisterHead returns the number of entries of the activity register, the hash of the last
// one, and the applied index they reflect.
func (f *FSM) RegisterHead() (seq uint64, hash audit.Hash, index uint64, err error) {
	err = f.view(func(tx *bolt.Tx) error {
		if index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		head, err := readRegisterHead(tx, f.sealer)
		seq, hash = head.seq, head.hash
		return err
	})
	if err != nil {
		return 0, audit.Hash{}, 0, fmt.Errorf("fsm: read register head: %w", err)
	}
	return seq, hash, index, nil
}

// RegisterEntries calls fn with every entry from number from on, in order, inside one read
// transaction (a slow fn delays a concurrent Restore). Stored entries are returned as they
// are: checking them is VerifyRegister's job.
func (f *FSM) RegisterEntries(from uint64, fn func(*audit.Entry) error) error {
	return f.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRegister).Cursor()
		for k, v := c.Seek(registerKey(max(from, 1))); k != nil; k, v = c.Next() {
			e, err := decodeRegisterValue(f.sealer, k, v)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// VerifyRegister checks the whole register in one read transaction: each entry is stored
// under its own number, chains to its predecessor, every token is valid for trusted, and the
// head record names the last entry. A failure names the first bad entry.
func (f *FSM) VerifyRegister(trusted []*x509.Certificate) (*audit.Report, error) {
	rep, _, err := f.VerifyRegisterPart(trusted, 1, 0)
	return rep, err
}

// VerifyRegisterPart checks entries from on, at most budget of them (0: up to the end), as
// VerifyRegister checks them all: the first chains to entry from-1 as stored, a token in the
// part that stamps an earlier entry is checked against that entry as stored, and the head
// record names the last entry of the register. It returns the entry where the next part
// begins: 1 once the part reached the end. Parts that follow one another from entry 1 to the
// end check every link of the chain once.
func (f *FSM) VerifyRegisterPart(trusted []*x509.Certificate, from, budget uint64) (*audit.Report, uint64, error) {
	var rep *audit.Report
	next := uint64(1)
	err := f.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRegister)
		var last registerHead
		if k, sealed := b.Cursor().Last(); k != nil {
			e, err := openRegisterValue(f.sealer, k, sealed)
			if err != nil {
				return err
			}
			last = registerHead{seq: e.Seq, hash: e.Hash()}
		}
		if from > last.seq+1 || from == 0 { // a register restored to an earlier state
			from = 1
		}
		hashOf := func(seq uint64) (audit.Hash, error) {
			sealed := b.Get(registerKey(seq))
			if sealed == nil {
				return audit.Hash{}, &audit.BadEntryError{Seq: seq, Reason: "missing"}
			}
			e, err := openRegisterValue(f.sealer, registerKey(seq), sealed)
			if err != nil {
				return audit.Hash{}, err
			}
			return e.Hash(), nil
		}
		v := audit.NewVerifier(trusted)
		if from > 1 {
			head, err := hashOf(from - 1)
			if err != nil {
				return err
			}
			v = audit.Resume(trusted, from-1, head, hashOf)
		}
		c := b.Cursor()
		k, sealed := c.Seek(registerKey(from))
		for n := uint64(0); k != nil && (budget == 0 || n < budget); k, sealed = c.Next() {
			e, err := openRegisterValue(f.sealer, k, sealed)
			if err != nil {
				return err
			}
			if err := v.Add(e, audit.Hash{}, 0); err != nil {
				return err
			}
			n++
		}
		rep = v.Report()
		if k != nil {
			next = rep.Entries + 1
		}
		return checkHeadRecord(tx, f.sealer, last)
	})
	if err != nil {
		return nil, from, fmt.Errorf("fsm: activity register: %w", err)
	}
	return rep, next, nil
}

func decodeRegisterValue(s Sealer, k, sealed []byte) (*audit.Entry, error) {
	plain, err := s.Open(location(bucketRegister, k), sealed)
	if err != nil {
		return nil, storageErr("open register entry %x: %w", k, err)
	}
	e := &audit.Entry{}
	if err := e.UnmarshalBinary(plain); err != nil {
		return nil, fmt.Errorf("%w: register entry %x: %v", ErrCorrupt, k, err)
	}
	return e, nil
}

// openRegisterValue decodes an entry and checks it is stored under its own number.
func openRegisterValue(s Sealer, k, sealed []byte) (*audit.Entry, error) {
	e, err := decodeRegisterValue(s, k, sealed)
	if err != nil {
		return nil, err
	}
	if len(k) != 8 || string(k) != string(registerKey(e.Seq)) {
		return nil, &audit.BadEntryError{Seq: e.Seq, Reason: fmt.Sprintf("stored under key %x, not under its own number", k)}
	}
	return e, nil
}

// checkHeadRecord compares the meta head record with the last entry: entries cut from the end
// leave a chain that verifies, but not this record.
func checkHeadRecord(tx *bolt.Tx, s Sealer, last registerHead) error {
	head, err := readRegisterHead(tx, s)
	if err != nil {
		return err
	}
	if head != last {
		return &audit.BadEntryError{Seq: last.seq + 1, Reason: fmt.Sprintf(
			"missing: the register head names entry %d (%s), the register ends at entry %d (%s)",
			head.seq, head.hash, last.seq, last.hash)}
	}
	return nil
}
