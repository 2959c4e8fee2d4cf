package fsm

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// The activity register lives in its own bucket: key = entry number (8 bytes big-endian),
// value = the entry's stored form (audit.Entry.MarshalBinary), sealed like every value. The
// meta record register_head holds the number and hash of the last entry, so that a dropped
// last entry is caught as surely as one in the middle.
var (
	bucketRegister  = []byte("register")
	keyRegisterHead = []byte("register_head")
)

// actorSystem names the author of commands proposed with no caller.
const actorSystem = "system"

// registerHead is the number and hash of the last entry; zero for an empty register.
type registerHead struct {
	seq  uint64
	hash audit.Hash
}

// registerState is the head as the commands of one batch move it.
type registerState struct {
	head   registerHead
	loaded bool
	dirty  bool // moved since loaded: flush writes it
}

func readRegisterHead(tx *bolt.Tx, s Sealer) (registerHead, error) {
	plain, ok, err := getOpened(tx, s, bucketMeta, keyRegisterHead)
	if !ok || err != nil {
		return registerHead{}, err
	}
	if len(plain) != 8+audit.HashSize {
		return registerHead{}, storageErr("register head of %d bytes, want %d", len(plain), 8+audit.HashSize)
	}
	h := registerHead{seq: binary.BigEndian.Uint64(plain)}
	copy(h.hash[:], plain[8:])
	return h, nil
}

func registerKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// record appends the register entry of one applied command. It runs for every command entry,
// refused or not, in the transaction of the command. It is the one place where the register
// grows, so every action traced is traced the same way.
//
// It also keeps the running digest of the ballot box, the other record that follows every
// command whatever its handler.
func (s *applyState) record(index uint64, c *fsmpb.Command, resp *fsmpb.Response) error {
	if _, err := s.registerHead(); err != nil {
		return err
	}
	base := describe(s, c, resp)
	base.RaftIndex = index
	if c != nil {
		base.Time = c.StampedAtUnixNano
		base.Actor = actorOf(c)
	}
	entries := s.notedEntries(c.GetType(), base)
	for _, e := range entries {
		if c != nil {
			s.attachConnection(e, c)
		}
		if err := s.appendEntry(e); err != nil {
			return err
		}
	}
	return s.notice(noticeOf(c, resp), entries[len(entries)-1])
}

// registerHead returns the head as this batch has moved it, reading it once per batch.
func (s *applyState) registerHead() (registerHead, error) {
	if !s.register.loaded {
		head, err := readRegisterHead(s.tx, s.sealer)
		if err != nil {
			return registerHead{}, err
		}
		s.register = registerState{head: head, loaded: true}
	}
	return s.register.head, nil
}

// appendEntry links e to the head, stores it and moves the head.
func (s *applyState) appendEntry(e *audit.Entry) error {
	head, err := s.registerHead()
	if err != nil {
		return err
	}
	e.Seq, e.Prev = head.seq+1, head.hash
	b, err := e.MarshalBinary()
	if err != nil {
		return storageErr("encode register entry %d: %w", e.Seq, err)
	}
	if err := putSealed(s.tx, s.sealer, bucketRegister, registerKey(e.Seq), b); err != nil {
		return err
	}
	s.register.head, s.register.dirty = registerHead{seq: e.Seq, hash: e.Hash()}, true
	return nil
}

// flushRegisterHead stores the head as the transaction's entries moved it: once per
// transaction, not once per entry.
func (s *applyState) flushRegisterHead() error {
	if !s.register.dirty {
		return nil
	}
	record := binary.BigEndian.AppendUint64(nil, s.register.head.seq)
	return putSealed(s.tx, s.sealer, bucketMeta, keyRegisterHead, append(record, s.register.head.hash[:]...))
}

func actorOf(c *fsmpb.Command) string {
	if p := c.GetActor().GetPrincipal(); p != "" {
		return clip(p)
	}
	return actorSystem
}

// attachConnection keeps the caller's address, with a salt only the election can derive, so
// that the digest outliving the erased address does not give it away. A cast never carries
// one: nothing in the register may help to tell who cast which ballot.
func (s *applyState) attachConnection(e *audit.Entry, c *fsmpb.Command) {
	ip := c.GetActor().GetIp()
	if ip == "" || c.Type == fsmpb.CommandType_COMMAND_CAST || s.election == nil {
		return
	}
	mac := hmac.New(sha256.New, s.election.IndexKey)
	mac.Write([]byte("audit-connection"))
	mac.Write(binary.BigEndian.AppendUint64(nil, s.register.head.seq+1))
	e.SetConnection(&audit.Connection{IP: clip(ip), ConnectedAt: c.StampedAtUnixNano,
		Retention: audit.RetentionLogs, Salt: mac.Sum(nil)[:16]})
}

// clip bounds a caller-supplied text to what an entry may hold.
func clip(v string) string { return clipTo(v, 256) }

func clipTo(v string, n int) string {
	if len(v) > n {
		v = v[:n]
	}
	return strings.ToValidUTF8(v, "?")
}

// describe turns a command and its answer into an entry: action, object, outcome, detail.
func describe(s *applyState, c *fsmpb.Command, resp *fsmpb.Response) *audit.Entry {
	if c == nil {
		return &audit.Entry{Actor: actorSystem, Action: "invalid command", Object: "command log", Outcome: outcome(resp, true)}
	}
	election := "election"
	if s.election != nil {
		election = "election " + s.election.ElectionId
	}
	e := &audit.Entry{Outcome: outcome(resp, c.Type == fsmpb.CommandType_COMMAND_CAST)}
	switch c.Type {
	case fsmpb.CommandType_COMMAND_CREATE_ELECTION:
		e.Action, e.Object = "create election", election
	case fsmpb.CommandType_COMMAND_IMPORT_VOTERS:
		e.Action, e.Object = "import voters", "voter roll of "+election
		if r := resp.GetImport(); r != nil {
			e.Detail = fmt.Sprintf("%d imported or rectified, %d unchanged, %d on the roll", r.Imported, r.Unchanged, r.TotalVoters)
			if r.Claimed > 0 {
				e.Detail += fmt.Sprintf(", %d homonym keys claimed", r.Claimed)
			}
		}
	case fsmpb.CommandType_COMMAND_OPEN_ELECTION:
		e.Action, e.Object = "open election", election
	case fsmpb.CommandType_COMMAND_CLOSE_ELECTION:
		e.Action, e.Object = "close election", election
	case fsmpb.CommandType_COMMAND_CAST:
		// No voter id, request id, fingerprint or refusal message: only that a cast happened.
		e.Action, e.Object = "cast", "ballot box of "+election
		e.Detail = fmt.Sprintf("%d ballots in the box", s.counters.Ballots)
	case fsmpb.CommandType_COMMAND_RECORD_DRILL:
		describeDrill(e, c)
	case fsmpb.CommandType_COMMAND_OUTBOX_DONE:
		describeDelivery(e, c)
	case fsmpb.CommandType_COMMAND_NOOP:
		e.Action, e.Object = "no-op", "cluster"
	case fsmpb.CommandType_COMMAND_REGISTER_STAMP:
		describeStamp(e, c, resp)
	case fsmpb.CommandType_COMMAND_RECORD_EVENT:
		describeEvent(e, c)
	case fsmpb.CommandType_COMMAND_RECORD_BUILD:
		e.Action, e.Object = "record build", "node binary"
		p := &fsmpb.RecordBuild{}
		if proto.Unmarshal(c.Payload, p) == nil {
			e.Detail = clip(fmt.Sprintf("sha256 %x, version %s", p.Sha256, p.Version))
		}
	case fsmpb.CommandType_COMMAND_TICK:
		e.Action, e.Object = "tick", "deadlines and retention periods"
	case fsmpb.CommandType_COMMAND_REQUEST_DESTRUCTION, fsmpb.CommandType_COMMAND_AUTHORIZE_DESTRUCTION:
		e.Action, e.Object = actionNames[c.Type], "election data"
	case fsmpb.CommandType_COMMAND_RECORD_ERASURE:
		describeErasure(e, c)
	default:
		e.Action, e.Object = fmt.Sprintf("command type %d", c.Type), election
		if name, ok := actionNames[c.Type]; ok {
			e.Action = name
		}
	}
	return e
}

// actionNames name the commands whose handlers note their details (register_notes.go); the
// name stands alone when the command is refused or changes nothing.
var actionNames = map[fsmpb.CommandType]string{
	fsmpb.CommandType_COMMAND_CONFIGURE_ELECTION:    JournalElectionConfigured,
	fsmpb.CommandType_COMMAND_PUT_SCRUTIN:           JournalScrutinPut,
	fsmpb.CommandType_COMMAND_PUT_CANDIDATE_LIST:    JournalListPut,
	fsmpb.CommandType_COMMAND_SET_ELECTION_KEY:      JournalKeySet,
	fsmpb.CommandType_COMMAND_SEAL_ELECTION:         JournalSealed,
	fsmpb.CommandType_COMMAND_RECORD_TALLY:          JournalTallied,
	fsmpb.CommandType_COMMAND_ARCHIVE_ELECTION:      JournalArchived,
	fsmpb.CommandType_COMMAND_ISSUE_IDENTIFIERS:     JournalIdentifiersIssued,
	fsmpb.CommandType_COMMAND_RECORD_LOGIN:          "login",
	fsmpb.CommandType_COMMAND_REQUEST_OTP:           "request code",
	fsmpb.CommandType_COMMAND_VERIFY_OTP:            "verify code",
	fsmpb.CommandType_COMMAND_UNLOCK_ACCOUNT:        JournalAccountUnlocked,
	fsmpb.CommandType_COMMAND_REQUEST_DESTRUCTION:   JournalDestructionRequested,
	fsmpb.CommandType_COMMAND_AUTHORIZE_DESTRUCTION: "authorize destruction",
}

func describeDrill(e *audit.Entry, c *fsmpb.Command) {
	e.Action, e.Object = "drill", "cluster"
	p := &fsmpb.RecordDrill{}
	if proto.Unmarshal(c.Payload, p) != nil {
		return
	}
	result := "failed"
	if p.Ok {
		result = "succeeded"
	}
	e.Object, e.Detail = clip("drill "+p.Name), clip(result+": "+p.Summary)
}

// describeDelivery names the provider that delivered an outbox message, never the recipient
// or a provider's error text, which may quote the address.
func describeDelivery(e *audit.Entry, c *fsmpb.Command) {
	e.Action, e.Object = "deliver message", "outbox"
	p := &fsmpb.OutboxDone{}
	if proto.Unmarshal(c.Payload, p) != nil {
		return
	}
	e.Object, e.Detail = fmt.Sprintf("outbox message %d", p.Seq), "not delivered, to be retried"
	if p.Delivered {
		e.Detail = clip("delivered by " + p.Detail)
	}
}

// outcome is "ok" or "refused: <reason>"; secret hides the message, which may name a ballot.
func outcome(resp *fsmpb.Response, secret bool) string {
	if resp.GetCode() == fsmpb.ResponseCode_RESPONSE_OK {
		return audit.OutcomeOK
	}
	reason := strings.ToLower(strings.TrimPrefix(resp.GetCode().String(), "RESPONSE_"))
	if secret {
		return audit.OutcomeRefused + ": " + reason
	}
	return clip(audit.OutcomeRefused + ": " + reason + ": " + resp.GetMessage())
}

func describeStamp(e *audit.Entry, c *fsmpb.Command, resp *fsmpb.Response) {
	e.Action, e.Object = "timestamp", "activity register"
	p := &fsmpb.RegisterStamp{}
	if err := proto.Unmarshal(c.Payload, p); err != nil {
		return
	}
	e.Object = fmt.Sprintf("register entry %d", p.Seq)
	if resp.GetCode() != fsmpb.ResponseCode_RESPONSE_OK {
		return
	}
	var head audit.Hash
	copy(head[:], p.Head)
	e.Stamp = &audit.Stamp{Seq: p.Seq, Head: head, Authority: clip(p.Authority), Token: p.Token}
}

func describeEvent(e *audit.Entry, c *fsmpb.Command) {
	p := &fsmpb.RecordEvent{}
	if err := proto.Unmarshal(c.Payload, p); err != nil {
		e.Action, e.Object = "event", "cluster"
		return
	}
	e.Action, e.Object, e.Detail = clip(p.Action), clip(p.Object), clipTo(p.Detail, maxEventText)
	if e.Outcome == audit.OutcomeOK {
		e.Outcome = clip(p.Outcome)
	}
}
