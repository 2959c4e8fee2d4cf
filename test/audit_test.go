package test

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// registerOf lists the register of node id as it stands there.
func registerOf(t *testing.T, c *harness.Cluster, cl *client.Client, id string) []*audit.Entry {
	t.Helper()
	var out []*audit.Entry
	err := cl.RegisterEntries(harness.Context(t, 30*time.Second), 1, func(_ client.RegisterInfo, raw []byte) error {
		e := &audit.Entry{}
		if err := e.UnmarshalBinary(raw); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	}, client.OnEndpoint(c.GRPC(id)), client.Stale())
	if err != nil {
		t.Fatalf("register of %s: %v", id, err)
	}
	return out
}

// TestRegisterRecordsTheElection runs an election on a 3-node cluster and checks that every
// node holds the same register: who did what, each cast without its voter, and a chain that
// verifies offline once exported.
func TestRegisterRecordsTheElection(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 5)
	app := c.Client("app")
	ctx := harness.Context(t, time.Minute)
	for i := 1; i <= 3; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(ctx, v, ballotOf(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := app.Cast(ctx, "v000001", ballotOf("again")); err == nil {
		t.Fatal("second cast accepted")
	}
	if _, err := c.Client("organizer").CloseElection(ctx); err != nil {
		t.Fatal(err)
	}
	leader := c.WaitLeader()
	if _, err := c.Client("operator").RotateKey(ctx, c.GRPC(leader)); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
	org := c.Client("organizer")
	var first []byte
	for _, id := range c.Running() {
		var buf bytes.Buffer
		w, _ := audit.NewWriter(&buf, audit.Header{})
		for _, e := range registerOf(t, c, org, id) {
			if e.Action == "export" {
				break // each listing records itself: compare what came before the first one
			}
			if err := w.Write(e); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		if first == nil {
			first = buf.Bytes()
		} else if !bytes.Equal(first, buf.Bytes()) {
			t.Fatalf("the register of %s differs from another node's", id)
		}
	}
	rep, err := audit.Verify(bytes.NewReader(first), nil)
	if err != nil {
		t.Fatal(err)
	}
	text := string(first)
	for _, want := range []string{`"actor":"client:organizer","action":"create election"`, `"action":"import voters"`,
		`"actor":"client:app","action":"cast","object":"ballot box of election test-election","outcome":"ok","detail":"3 ballots in the box"`,
		`"outcome":"refused: already_voted"`, `"action":"close election"`, `"ip":"127.0.0.1"`,
		`"actor":"client:operator","action":"key rotation","object":"keyring of node ` + leader,
		`"actor":"system","action":"membership change","object":"raft configuration","outcome":"ok","detail":"voters: `} {
		if !strings.Contains(text, want) {
			t.Errorf("register lacks %s", want)
		}
	}
	if strings.Contains(text, "v000001") || rep.Entries < 8 {
		t.Fatalf("register names a voter or is short (%d entries):\n%s", rep.Entries, text)
	}
	checkDownloadsRecorded(t, c)
}

// checkDownloadsRecorded takes a backup and exports the émargement, and finds both, with who
// asked, in the register.
func checkDownloadsRecorded(t *testing.T, c *harness.Cluster) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	c.IssueClient("bureau")
	var emarged int
	if err := c.Client("bureau").ExportEmargement(ctx, func(*urnepb.EmargementEntry) error { emarged++; return nil }); err != nil {
		t.Fatal(err)
	}
	stream, err := c.Client("operator").Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		t.Fatal(err)
	}
	harness.Poll(t, 20*time.Second, func() error {
		var found []string
		for _, e := range registerOf(t, c, c.Client("organizer"), c.WaitLeader()) {
			switch {
			case e.Actor == "client:bureau" && e.Action == "export" && e.Object == "émargement list" &&
				strings.HasPrefix(e.Detail, fmt.Sprintf("%d entries, served by node ", emarged)):
				found = append(found, "émargement")
			case e.Actor == "client:operator" && e.Action == "backup" && e.Outcome == "ok" && strings.HasPrefix(e.Detail, "at index "):
				found = append(found, "backup")
			}
		}
		if !slices.Contains(found, "émargement") || !slices.Contains(found, "backup") {
			return fmt.Errorf("downloads recorded: %v", found)
		}
		return nil
	})
}
