package fsm

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

const (
	typeConfigure = fsmpb.CommandType_COMMAND_CONFIGURE_ELECTION
	typeScrutin   = fsmpb.CommandType_COMMAND_PUT_SCRUTIN
	typeList      = fsmpb.CommandType_COMMAND_PUT_CANDIDATE_LIST
	typeKey       = fsmpb.CommandType_COMMAND_SET_ELECTION_KEY
	typeSeal      = fsmpb.CommandType_COMMAND_SEAL_ELECTION
	typeTick      = fsmpb.CommandType_COMMAND_TICK
	typeTally     = fsmpb.CommandType_COMMAND_RECORD_TALLY
	typeArchive   = fsmpb.CommandType_COMMAND_ARCHIVE_ELECTION
	typeIssue     = fsmpb.CommandType_COMMAND_ISSUE_IDENTIFIERS
	typeDone      = fsmpb.CommandType_COMMAND_OUTBOX_DONE
	typeLogin     = fsmpb.CommandType_COMMAND_RECORD_LOGIN
	typeOTP       = fsmpb.CommandType_COMMAND_REQUEST_OTP
	typeVerify    = fsmpb.CommandType_COMMAND_VERIFY_OTP
	typeUnlock    = fsmpb.CommandType_COMMAND_UNLOCK_ACCOUNT
)

// Times of the legal test election: the window opens two hours after the harness clock
// starts and lasts two days.
var (
	opensAt  = baseTime.Add(2 * time.Hour)
	closesAt = opensAt.Add(48 * time.Hour)
	build    = bytes.Repeat([]byte{0xbd}, BuildDigestSize)
)

const fakeBcrypt = "$2a$04$abcdefghijklmnopqrstuu"

func legalConfig() *fsmpb.ElectionConfig {
	return &fsmpb.ElectionConfig{
		Organizer: "Le Cnam", Controller: "Le Cnam", Processor: "Urne hosting",
		OpensAtUnixNano: opensAt.UnixNano(), ClosesAtUnixNano: closesAt.UnixNano(),
		Bureau: []*fsmpb.BureauMember{
			{Name: "Ada President", Email: "president@example.org", Function: "president"},
			{Name: "Bob Secretary", Email: "secretary@example.org", Function: "secretary"},
		},
		OrganizerEmails: []string{"organizers@example.org", "president@example.org"},
	}
}

func legalVoter(id, college string) *fsmpb.VoterRecord {
	return &fsmpb.VoterRecord{VoterId: id, Name: "Name of " + id, Email: id + "@example.org",
		DateOfBirth: "1980-01-01", SecretHash: []byte(fakeBcrypt + id), College: college}
}

func femaleMale() []*fsmpb.Candidate {
	return []*fsmpb.Candidate{
		{Name: "Alice", Sex: "F", DateOfBirth: "1970-05-01"},
		{Name: "Bruno", Sex: "M", DateOfBirth: "1975-05-01"},
	}
}

// draftLegal creates a civil-service election with everything sealing needs: configuration,
// scrutin "ct" for collège A, a list, the key, and voters alice, bob (A) and carol (B).
func (h *harness) draftLegal() {
	h.t.Helper()
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "CT 2026", Profile: ProfileCivilService})
	h.mustApply(typeConfigure, &fsmpb.ConfigureElection{Config: legalConfig()})
	h.mustApply(typeScrutin, &fsmpb.PutScrutin{Scrutin: &fsmpb.Scrutin{ScrutinId: "ct", Name: "Comité technique",
		Colleges: []string{"A"}, Seats: 2, ListRule: &fsmpb.ListRule{GenderBalance: true, WomenSharePermille: 500, Alternate: true}}})
	h.mustApply(typeList, &fsmpb.PutCandidateList{List: &fsmpb.CandidateList{ScrutinId: "ct", ListId: "L1", Name: "Liste 1", Candidates: femaleMale()}})
	h.mustApply(typeKey, &fsmpb.SetElectionKey{PublicKey: []byte("election public key"), Policy: []byte("president and 2 of 3 delegates")})
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{
		legalVoter("alice", "A"), legalVoter("bob", "A"), legalVoter("carol", "B")}})
}

// openLegal drafts, seals and opens the legal election (as the bureau, at the window).
func (h *harness) openLegal() {
	h.t.Helper()
	h.draftLegal()
	h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
	h.setClock(opensAt)
	h.as(ActorBureau, func() { h.mustApply(typeOpen, &fsmpb.Transition{BuildDigest: build}) })
}

// as runs fn with commands coming from actor.
func (h *harness) as(actor string, fn func()) {
	h.t.Helper()
	was := h.actor
	h.actor = actor
	defer func() { h.actor = was }()
	fn()
}

// setClock moves the leader clock so that the next entry is stamped at t.
func (h *harness) setClock(t time.Time) { h.shift = t.Sub(stampTime(h.last + 1)) }

func (h *harness) election() *fsmpb.ElectionResult {
	h.t.Helper()
	e, _, err := h.f.Election()
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

func (h *harness) outbox() []*fsmpb.OutboxMessage {
	h.t.Helper()
	out, err := h.f.Outbox(1000)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// lastMessageTo returns the newest outbox message to an address.
func (h *harness) lastMessageTo(to string) *fsmpb.OutboxMessage {
	h.t.Helper()
	var found *fsmpb.OutboxMessage
	for _, m := range h.outbox() {
		if m.To == to {
			found = m
		}
	}
	if found == nil {
		h.t.Fatalf("no outbox message to %s", to)
	}
	return found
}

var (
	identifierRE = regexp.MustCompile(`est : ([A-Z2-9]{12})`)
	codeRE       = regexp.MustCompile(`: ([0-9]{6}) `)
)

// identifierOf reads the identifier last mailed to a voter.
func (h *harness) identifierOf(voterID string) string {
	h.t.Helper()
	m := identifierRE.FindStringSubmatch(h.lastMessageTo(voterID + "@example.org").Body)
	if m == nil {
		h.t.Fatalf("no identifier in the email to %s", voterID)
	}
	return m[1]
}

// codeSentTo reads the code last sent by SMS to a phone.
func (h *harness) codeSentTo(phone string) string {
	h.t.Helper()
	m := codeRE.FindStringSubmatch(h.lastMessageTo(phone).Body)
	if m == nil {
		h.t.Fatalf("no code in the SMS to %s", phone)
	}
	return m[1]
}

func tokenHash(token string) []byte {
	d := digestOf([]byte(token))
	return d[:]
}

// login runs the whole authentication of a voter and returns the session hash and nonce.
func (h *harness) login(voterID, phone string) ([]byte, []byte) {
	h.t.Helper()
	id := h.identifierOf(voterID)
	challenge := tokenHash("challenge of " + voterID + phone)
	h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: id, SecretOk: true, ChallengeHash: challenge})
	h.mustApply(typeOTP, &fsmpb.RequestOTP{ChallengeHash: challenge, Phone: phone})
	session := tokenHash("session of " + voterID + phone)
	res := h.mustApply(typeVerify, &fsmpb.VerifyOTP{ChallengeHash: challenge, Code: h.codeSentTo(phone), SessionHash: session}).GetAuth()
	if !res.Accepted {
		h.t.Fatalf("login of %s refused: %v", voterID, res)
	}
	return session, res.EnvelopeNonce
}

// wantMessage fails unless resp's message contains every fragment.
func wantMessage(t testing.TB, resp *fsmpb.Response, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if !strings.Contains(resp.Message, f) {
			t.Fatalf("message %q lacks %q", resp.Message, f)
		}
	}
}

// refusedLeavesNoTrace applies a command that must be refused with want, and checks that
// the state is as a no-op would leave it.
func (h *harness) refusedLeavesNoTrace(typ fsmpb.CommandType, payload proto.Message, want error) *fsmpb.Response {
	h.t.Helper()
	before := h.digestWithoutIndex()
	resp := h.apply(typ, payload)
	wantCode(h.t, resp, want)
	if !bytes.Equal(before, h.digestWithoutIndex()) {
		h.t.Fatalf("refused %s (%v) changed the state", typ, resp.Message)
	}
	return resp
}

// digestWithoutIndex hashes every record but the applied index.
func (h *harness) digestWithoutIndex() []byte {
	h.t.Helper()
	var all []byte
	err := h.f.view(func(tx *bolt.Tx) error {
		return walkPlain(tx, h.f.sealer, func(bucket, key, plain []byte) error {
			// The applied index and the activity register move with every entry, refused or not.
			if bytes.Equal(bucket, bucketMeta) && (bytes.Equal(key, keyAppliedIndex) || bytes.Equal(key, keyRegisterHead)) ||
				bytes.Equal(bucket, bucketRegister) {
				return nil
			}
			all = append(append(append(all, bucket...), key...), plain...)
			return nil
		})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	d := digestOf(all)
	return d[:]
}

// bucketLen counts the keys of a bucket.
func (h *harness) bucketLen(name []byte) int {
	n := 0
	err := h.f.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}
