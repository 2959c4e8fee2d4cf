package fsm

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Drill reports live in the meta bucket under "drill/<name>", one record per drill name: the
// last run and the leader-stamped time of the last success, which the overdue check and the
// metrics read on every node.
const (
	drillKeyPrefix     = "drill/"
	maxDrillName       = 32
	maxDrillReport     = 64 << 10
	maxDrillSummaryLen = 1024
)

// checkRecordDrill bounds a drill report before it is proposed and again when applied.
func checkRecordDrill(p *fsmpb.RecordDrill) error {
	if n := len(p.Name); n == 0 || n > maxDrillName {
		return fmt.Errorf("%w: drill name of %d bytes, want 1 to %d", ErrInvalid, n, maxDrillName)
	}
	for _, c := range []byte(p.Name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: drill name %q: only a-z, 0-9 and '-'", ErrInvalid, p.Name)
		}
	}
	if len(p.Summary) > maxDrillSummaryLen {
		return fmt.Errorf("%w: drill summary of %d bytes, limit %d", ErrInvalid, len(p.Summary), maxDrillSummaryLen)
	}
	if len(p.Report) > maxDrillReport {
		return fmt.Errorf("%w: drill report of %d bytes, limit %d", ErrInvalid, len(p.Report), maxDrillReport)
	}
	if p.RtoNanos < 0 || p.StartedAtUnixNano < 0 || p.FinishedAtUnixNano < p.StartedAtUnixNano {
		return fmt.Errorf("%w: drill times out of order", ErrInvalid)
	}
	return nil
}

// applyRecordDrill keeps the run as the drill's last one and, when it passed, as its last
// success. Reports are operational records: they need no election.
func applyRecordDrill(s *applyState, c *fsmpb.Command, p *fsmpb.RecordDrill) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	key := []byte(drillKeyPrefix + p.Name)
	rec := &fsmpb.DrillRecord{}
	if _, err := getMessage(s.tx, s.sealer, bucketMeta, key, rec); err != nil {
		return nil, err
	}
	rec.Last, rec.LastRecordedAtUnixNano = p, c.StampedAtUnixNano
	rec.Runs++
	if p.Ok {
		rec.LastSuccessAtUnixNano, rec.LastSuccessRtoNanos = c.StampedAtUnixNano, p.RtoNanos
	} else {
		rec.Failures++
	}
	if err := putMessage(s.tx, s.sealer, bucketMeta, key, rec); err != nil {
		return nil, err
	}
	return &fsmpb.Response{}, nil
}

// Drills returns the record of every drill name, in name order, and the applied index they
// reflect.
func (f *FSM) Drills() ([]*fsmpb.DrillRecord, uint64, error) {
	var out []*fsmpb.DrillRecord
	var index uint64
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		if index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		c := tx.Bucket(bucketMeta).Cursor()
		prefix := []byte(drillKeyPrefix)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rec := &fsmpb.DrillRecord{}
			if _, err := getMessage(tx, f.sealer, bucketMeta, append([]byte(nil), k...), rec); err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("fsm: read drill records: %w", err)
	}
	return out, index, nil
}
