package test

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// TestPreparedRollLogin: a voter imported with a prepared bcrypt hash (urne election prepare)
// logs in with the secret like a voter imported with the secret itself; a malformed prepared
// hash stops the import with a clear error and adds nobody.
func TestPreparedRollLogin(t *testing.T) {
	lc := startLegalCluster(t)
	ctx := harness.Context(t, 2*time.Minute)
	must(t, "create", errOf(lc.organizer.CreateElectionProfile(ctx, "test-election", "CT 2026", client.ProfileCivilService)))
	lc.opensAt = lc.clock.Now().Add(time.Minute)
	must(t, "configure", errOf(lc.organizer.ConfigureElection(ctx, &urnepb.ElectionConfig{
		Organizer: "Le Cnam", Controller: "Le Cnam", Processor: "Urne hosting",
		OpensAtUnixNano: lc.opensAt.UnixNano(), ClosesAtUnixNano: lc.opensAt.Add(24 * time.Hour).UnixNano(),
		Bureau: []*urnepb.BureauMember{{Name: "Ada", Email: "president@example.org", Function: "president"}},
	})))
	must(t, "scrutin", errOf(lc.organizer.PutScrutin(ctx, &urnepb.Scrutin{ScrutinId: "ct", Name: "CT", Colleges: []string{"A"}, Seats: 2,
		ListRule: &urnepb.ListRule{GenderBalance: true, WomenSharePermille: 500}})))
	must(t, "list", errOf(lc.organizer.PutCandidateList(ctx, &urnepb.CandidateList{ScrutinId: "ct", ListId: "L1", Name: "Liste 1",
		Candidates: []*urnepb.Candidate{{Name: "Alice", Sex: "F", DateOfBirth: "1970-01-01"}, {Name: "Bruno", Sex: "M", DateOfBirth: "1971-01-01"}}})))
	must(t, "key", errOf(lc.bureau.SetElectionKey(ctx, lc.electionKey.Public().MarshalPEM(), []byte("president and 2 of 3 delegates"))))

	voter := func(id string) *urnepb.Voter {
		return &urnepb.Voter{VoterId: id, Name: "Voter " + id, Email: id + "@example.org", DateOfBirth: "1980-01-01", College: "A"}
	}
	bad := voter("v9")
	bad.SecretBcrypt = "1234"
	_, err := lc.organizer.ImportVoters(ctx, harness.Slice([]*urnepb.Voter{bad}))
	wantErr(t, "import of a malformed prepared hash", err, client.ErrInvalid)

	prepared, err := node.PrepareSecret("5678", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	plain, pre := voter("v1"), voter("v2")
	plain.Secret, pre.SecretBcrypt = "1234", string(prepared)
	res, err := lc.organizer.ImportVoters(ctx, harness.Slice([]*urnepb.Voter{plain, pre}))
	if err != nil || res.TotalVoters != 2 {
		t.Fatalf("import: %v, %v (a refused import must add nobody)", res, err)
	}
	again, err := lc.organizer.ImportVoters(ctx, harness.Slice([]*urnepb.Voter{pre}))
	if err != nil || again.Unchanged != 1 {
		t.Fatalf("importing the prepared voter again: %v, %v (want unchanged)", again, err)
	}
	if _, err := lc.bureau.SealElection(ctx); err != nil {
		t.Fatalf("seal: %v", err)
	}
	if _, err := lc.organizer.IssueIdentifiers(ctx, ""); err != nil {
		t.Fatalf("issue identifiers: %v", err)
	}
	v2 := lc.identifier(t, "v2")
	lc.clock.Advance(2 * time.Minute)
	if _, err := lc.bureau.OpenElection(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	_, err = lc.app.Login(ctx, v2, "0000")
	wantErr(t, "wrong secret against a prepared hash", err, client.ErrAuthFailed)
	if _, err := lc.app.Login(ctx, v2, " 5678 "); err != nil {
		t.Fatalf("login with the secret of a prepared hash: %v", err)
	}
}
