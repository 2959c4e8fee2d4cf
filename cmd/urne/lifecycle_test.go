package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/test/harness"
)

const sampleElection = `{
  "organizer": "Le Cnam", "controller": "Le Cnam", "processor": "Urne hosting",
  "organizer_emails": ["elections@example.org"],
  "opens_at": "%OPENS%", "closes_at": "%CLOSES%",
  "session_timeout": "20m", "code_validity": "5m",
  "bureau": [{"name": "Ada", "email": "ada@example.org", "function": "president"}],
  "scrutins": [{
    "id": "ct", "name": "Comité technique", "colleges": ["A"], "seats": 2,
    "list_rule": {"gender_balance": true, "women_share": 0.5, "alternate": true},
    "lists": [{"id": "L1", "name": "Liste 1", "candidates": [
      {"name": "Alice", "sex": "F", "date_of_birth": "1970-01-01"},
      {"name": "Bruno", "sex": "M", "date_of_birth": "1971-01-01"}]}]
  }]
}`

func electionJSON(opens time.Time) string {
	r := strings.NewReplacer("%OPENS%", opens.Format(time.RFC3339), "%CLOSES%", opens.Add(48*time.Hour).Format(time.RFC3339))
	return r.Replace(sampleElection)
}

func TestParseElectionFile(t *testing.T) {
	f, err := parseElectionFile(strings.NewReader(electionJSON(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))))
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	if cfg.SessionTimeoutNanos != int64(20*time.Minute) || cfg.ClosesAtUnixNano-cfg.OpensAtUnixNano != int64(48*time.Hour) || len(cfg.Bureau) != 1 ||
		len(cfg.OrganizerEmails) != 1 {
		t.Fatalf("config = %v", cfg)
	}
	scrutins, lists := f.scrutins()
	if len(scrutins) != 1 || scrutins[0].ListRule.WomenSharePermille != 500 || len(lists) != 1 || lists[0].ScrutinId != "ct" {
		t.Fatalf("scrutins %v, lists %v", scrutins, lists)
	}
	for input, want := range map[string]string{
		`{"organiser": "typo"}`:                                        `unknown field "organiser"`,
		`{"opens_at": "2026-12-01T08:00:00Z"}`:                         "give both opens_at and closes_at",
		`{"session_timeout": "forever"}`:                               `duration "forever"`,
		`{"scrutins": [{"id": "a"}, {"id": "a"}]}`:                     `scrutin id "a" is empty or given twice`,
		`{"scrutins": [{"id": "a", "list_rule": {"women_share": 2}}]}`: "women_share 2 is not between 0 and 1",
		`{} {}`: "data after the JSON object",
	} {
		if _, err := parseElectionFile(strings.NewReader(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", input, err, want)
		}
	}
}

func FuzzElectionFile(f *testing.F) {
	f.Add(electionJSON(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)))
	f.Add(`{"scrutins": [{"id": "a", "lists": [{"id": "L", "candidates": [{"sex": "X"}]}]}]}`)
	f.Add(`{"session_timeout": "-1s"}`)
	f.Fuzz(func(t *testing.T, input string) {
		ef, err := parseElectionFile(strings.NewReader(input))
		if err != nil {
			return
		}
		ef.config()
		scrutins, lists := ef.scrutins()
		if len(scrutins) != len(ef.Scrutins) {
			t.Fatalf("%d scrutins in the file, %d sent", len(ef.Scrutins), len(scrutins))
		}
		for _, l := range lists {
			if l.ScrutinId == "" {
				t.Fatal("a list lost its scrutin")
			}
		}
	})
}

// TestLifecycleCommands runs the legal path's commands against an in-process node: create,
// configure, import with the legal fields, key, seal as the bureau, refusal after sealing,
// identifiers, register and account.
func TestLifecycleCommands(t *testing.T) {
	c := harness.New(t, "1")
	dir := t.TempDir()
	cli := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := runCLI(t, append(args, "--cluster", c.Dir, "-o", "json")...)
		if code != 0 {
			t.Fatalf("urne %s exited %d: %s", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if _, stderr, code := runCLI(t, "cluster", "issue-client", "--dir", c.Dir, "--role", "bureau"); code != 0 {
		t.Fatalf("issue-client: %s", stderr)
	}
	cli("election", "create", "--name", "CT 2026", "--profile", "civil-service")
	cli("election", "configure", "--file", write("election.json", electionJSON(time.Now().Add(time.Hour).Truncate(time.Second))))
	cli("election", "import", "--file", write("roll.csv", "voter_id,name,email,date_of_birth,secret,collège\n"+
		"v1,Ada Lovelace,ada@example.org,10/12/1985,1234,A\nv2,Bob,bob@example.org,1990-01-01,5678,A\n"))
	cli("election", "key", "--public-key", write("election.pem", "-----BEGIN PUBLIC KEY-----\n...\n"))
	var sealed electionView
	decodeOne(t, cli("election", "seal"), &sealed)
	if sealed.Phase != "sealed" {
		t.Fatalf("after seal: %+v", sealed)
	}
	_, stderr, code := runCLI(t, "election", "configure", "--file", filepath.Join(dir, "election.json"), "--cluster", c.Dir)
	if code == 0 || !strings.Contains(stderr, "was sealed at") {
		t.Fatalf("configure after sealing exited %d: %s", code, stderr)
	}
	if out := cli("election", "issue-identifiers", "--role", "organizer"); !strings.Contains(out, `"issued": 2`) {
		t.Fatalf("issue-identifiers: %s", out)
	}
	register := cli("audit", "export")
	for _, want := range []string{`"action":"seal election","object":"election`, `"action":"configure election"`,
		`"action":"issue identifiers"`, `"detail":"2 identifiers issued, 0 voters without one"`} {
		if !strings.Contains(register, want) {
			t.Fatalf("the register lacks %s:\n%s", want, register)
		}
	}
	var acc accountView
	decodeOne(t, cli("operator", "account", "--voter", "v1"), &acc)
	if !acc.HasIdentifier || acc.Locked {
		t.Fatalf("account: %+v", acc)
	}
}
