package node

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// auditor gathers what a node runs for the activity register: the stamper, the integrity
// checker, their metrics and the trusted authorities' certificates.
type auditor struct {
	metrics *auditMetrics
	stamper *stamper
	checker *checker
	trusted []*x509.Certificate
	build   buildSource
	conns   *connLog
}

// buildSource tells the digest of the build this node runs. The election's seal is to record
// it; until the seal exists, it is recorded when the election is created.
type buildSource interface {
	BuildDigest() ([]byte, error)
}

// binaryFile hashes the executable file on disk: a binary swapped under a running node shows.
type binaryFile struct{ path string }

func (b binaryFile) BuildDigest() ([]byte, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return nil, fmt.Errorf("open the node binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash the node binary %s: %w", b.path, err)
	}
	return h.Sum(nil), nil
}

// newAuditor reads the authorities' certificates and finds the binary to watch.
func newAuditor(n *Node) (*auditor, error) {
	authorities, err := n.cfg.loadAuthorities()
	if err != nil {
		return nil, err
	}
	path := n.cfg.BinaryPath
	if path == "" {
		if path, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the node binary: %w", err)
		}
	}
	a := &auditor{metrics: newAuditMetrics(n.reg, n), build: binaryFile{path: path}, conns: newConnLog(n)}
	for _, t := range authorities {
		a.trusted = append(a.trusted, t.Cert)
	}
	a.stamper = newStamper(n, authorities)
	a.checker = newChecker(n)
	return a, nil
}

// start runs the auditor's loops until the node stops.
func (a *auditor) start(n *Node) {
	n.wg.Add(2)
	go a.stamper.run()
	go a.checker.run()
}

// observeApplied is the state machine's observer: metrics, and the stamper's milestones.
func (n *Node) observeApplied(t fsmpb.CommandType, code fsmpb.ResponseCode) {
	n.metrics.Applied(t, code)
	n.auditor.stamper.observe(t, code)
}

// recordBuildOnce records, on the leader, the build the election runs with, once an election
// exists and none is recorded yet.
func (n *Node) recordBuildOnce(ctx context.Context) {
	if _, _, err := n.fsm.Election(); err != nil {
		return
	}
	if _, _, ok, err := n.fsm.SealedBuild(); ok || err != nil {
		return
	}
	digest, err := n.auditor.build.BuildDigest()
	if err != nil {
		n.log.Warn("cannot record the election's build", "err", err)
		return
	}
	if _, _, err := n.proposeOwn(ctx, fsmpb.CommandType_COMMAND_RECORD_BUILD, &fsmpb.RecordBuild{Sha256: digest, Version: Version}); err != nil {
		n.log.Warn("recording the election's build failed", "err", err)
	}
}

// boundText keeps a text within what a recorded event may hold, as valid UTF-8.
func boundText(s string) string {
	if len(s) > 4000 {
		s = s[:4000]
	}
	return strings.ToValidUTF8(s, "")
}
