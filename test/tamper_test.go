package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node"
)

// loseOneBallot makes a stopped node silently lose one ballot: with the node's own key it
// rewrites its state database without the first ballot of the box, and with the counters
// adjusted so the database still opens. Its applied index does not change, so the node
// replays nothing to repair it.
func loseOneBallot(t *testing.T, dir, id string) error {
	t.Helper()
	cfg, err := node.LoadConfig(cluster.NodeConfigPath(dir, id))
	if err != nil {
		return err
	}
	kek, err := keyring.LoadKEK(keyring.KEKSource(cfg.KEK))
	if err != nil {
		return err
	}
	kr, err := keyring.Open(filepath.Join(cfg.DataDir, "keyring"), kek)
	if err != nil {
		return err
	}
	f, err := fsm.Open(filepath.Join(cfg.DataDir, "fsm.db"), kr, nil)
	if err != nil {
		return err
	}
	defer f.Close()
	snap, err := f.FullSnapshot()
	if err != nil {
		return err
	}
	sink := &memSink{}
	err = snap.Persist(sink)
	snap.Release()
	if err != nil {
		return err
	}
	rewritten, err := dropFirstBallot(sink.Bytes())
	if err != nil {
		return err
	}
	return f.Restore(io.NopCloser(bytes.NewReader(rewritten)))
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "tamper" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// dropFirstBallot rewrites a state snapshot stream (see fsm/snapshot.go) without its first box
// record, one ballot fewer in the counters, and a new trailer.
func dropFirstBallot(stream []byte) ([]byte, error) {
	out := bytes.NewBuffer(nil)
	out.Write(stream[:20])
	p, count, dropped := 20, uint64(0), false
	for stream[p] == 0x01 {
		bucket, key, value, next := splitRecord(stream, p)
		p = next
		switch {
		case !dropped && string(bucket) == "box":
			dropped = true
			continue
		case string(bucket) == "meta" && string(key) == "counters":
			c := &fsmpb.Counters{}
			if err := proto.Unmarshal(value, c); err != nil {
				return nil, err
			}
			c.Ballots--
			b, err := proto.Marshal(c)
			if err != nil {
				return nil, err
			}
			value = b
		}
		writeRecord(out, bucket, key, value)
		count++
	}
	if !dropped {
		return nil, errors.New("the box is empty: no ballot to lose")
	}
	out.WriteByte(0x00)
	_ = binary.Write(out, binary.BigEndian, count)
	sum := sha256.Sum256(out.Bytes())
	out.Write(sum[:])
	return out.Bytes(), nil
}

func splitRecord(s []byte, p int) (bucket, key, value []byte, next int) {
	p++
	bl := int(s[p])
	bucket, p = s[p+1:p+1+bl], p+1+bl
	kl := int(binary.BigEndian.Uint16(s[p:]))
	key, p = s[p+2:p+2+kl], p+2+kl
	vl := int(binary.BigEndian.Uint32(s[p:]))
	value, p = s[p+4:p+4+vl], p+4+vl
	return bucket, key, value, p
}

func writeRecord(out *bytes.Buffer, bucket, key, value []byte) {
	out.WriteByte(0x01)
	out.WriteByte(byte(len(bucket)))
	out.Write(bucket)
	_ = binary.Write(out, binary.BigEndian, uint16(len(key)))
	out.Write(key)
	_ = binary.Write(out, binary.BigEndian, uint32(len(value)))
	out.Write(value)
}
