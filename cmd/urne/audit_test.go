package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/tsa/tsatest"
)

// writeExport writes a register of four entries, the third a timestamp over the second.
func writeExport(t *testing.T, dir string, a *tsatest.Authority, tamper func(es []*audit.Entry) []*audit.Entry) string {
	t.Helper()
	var es []*audit.Entry
	add := func(e *audit.Entry) {
		if len(es) > 0 {
			e.Prev = es[len(es)-1].Hash()
		}
		e.Seq, e.Time = uint64(len(es)+1), int64(len(es)+1)*1e18
		es = append(es, e)
	}
	add(&audit.Entry{Actor: "client:organizer", Action: "create election", Object: "election x", Outcome: "ok"})
	add(&audit.Entry{Actor: "client:organizer", Action: "open election", Object: "election x", Outcome: "ok"})
	head := es[1].Hash()
	add(&audit.Entry{Actor: "node:a", Action: "timestamp", Object: "register entry 2", Outcome: "ok",
		Stamp: &audit.Stamp{Seq: 2, Head: head, Authority: a.Name, Token: a.Token(t, head[:])}})
	add(&audit.Entry{Actor: "client:app", Action: "cast", Object: "ballot box of election x", Outcome: "ok"})
	if tamper != nil {
		es = tamper(es)
	}
	var buf bytes.Buffer
	w, _ := audit.NewWriter(&buf, audit.Header{Election: "x"})
	for _, e := range es {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	path := filepath.Join(dir, "register.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	a := tsatest.NewAuthority(t, "Test TSA")
	cert := filepath.Join(dir, "tsa.crt")
	if err := os.WriteFile(cert, a.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	honest := writeExport(t, t.TempDir(), a, nil)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"audit", "verify", "--file", honest, "--tsa-cert", cert, "-o", "json"}, &out, &errOut); code != 0 {
		t.Fatalf("honest export: exit %d: %s", code, errOut.String())
	}
	var res verifyResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || !res.OK || res.Entries != 4 || len(res.Stamps) != 1 || res.Unstamped != 2 {
		t.Fatalf("result %+v (%v)", res, err)
	}
	forger := tsatest.NewAuthority(t, "Test TSA")
	tests := []struct {
		name   string
		tamper func(es []*audit.Entry) []*audit.Entry
		want   string
	}{
		{"changed", func(es []*audit.Entry) []*audit.Entry { es[0].Object = "election y"; return es }, "entry 1 "},
		{"dropped", func(es []*audit.Entry) []*audit.Entry { return append(es[:1], es[2:]...) }, "entry 2 "},
		{"inserted", func(es []*audit.Entry) []*audit.Entry {
			x := *es[1]
			return append(es[:2], append([]*audit.Entry{&x}, es[2:]...)...)
		}, "entry 2 "},
		{"reordered", func(es []*audit.Entry) []*audit.Entry { es[0], es[1] = es[1], es[0]; return es }, "entry 1 "},
		{"forged token", func(es []*audit.Entry) []*audit.Entry {
			es[2].Stamp.Token = forger.Token(t, es[2].Stamp.Head[:])
			return es
		}, "entry 3 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tampered := writeExport(t, t.TempDir(), a, tt.tamper)
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"audit", "verify", "--file", tampered, "--tsa-cert", cert}, &out, &errOut)
			if code != 2 || !strings.Contains(out.String(), "FAILED: "+tt.want) || !strings.Contains(errOut.String(), "does not verify") {
				t.Fatalf("exit %d, out %q, err %q", code, out.String(), errOut.String())
			}
		})
	}
}
