package recovery

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Errors of a promotion, besides ErrUnsafe.
var (
	// ErrNotNeeded: the cluster still has a leader; nothing is to be promoted.
	ErrNotNeeded = errors.New("the cluster has a leader")
	// ErrOtherSideAlive: a node outside the promoted datacenter answers: promoting would make
	// two clusters.
	ErrOtherSideAlive = errors.New("a node of another datacenter answers")
)

// Processes starts and stops the node processes of a cluster folder: the local processes of
// `urne dev`, or any supervisor offering the same.
type Processes interface {
	// Running reports whether a process of node id runs under this supervisor.
	Running(id string) bool
	// Stop stops node id gracefully and waits until it is gone.
	Stop(id string) error
	// Kill stops node id at once (SIGKILL) and waits until it is gone.
	Kill(id string) error
	// Start starts node id and waits until it answers.
	Start(ctx context.Context, id string) error
}

// PromoteOptions say which datacenter survives and how to reach and run its nodes.
type PromoteOptions struct {
	// Dir is the cluster folder; the surviving nodes' folders and data must be in it.
	Dir   string
	File  *client.ClusterFile
	DC    string
	Force bool
	// Client asks nodes with the operator certificate.
	Client *client.Client
	Procs  Processes
	// Wait bounds the wait for the recovered leader and the re-added voters.
	Wait time.Duration
	Logf func(format string, args ...any)
}

// SurvivorState is what is known of one node of the surviving datacenter.
type SurvivorState struct {
	ID string `json:"id"`
	// Answered: the node answered; CommitIndex is the commit index it knew.
	Answered bool `json:"answered"`
	// OnDisk: the node was stopped and its data read from disk.
	OnDisk       bool   `json:"on_disk"`
	LastIndex    uint64 `json:"last_index"`
	LastTerm     uint64 `json:"last_term"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	Error        string `json:"error,omitempty"`
}

// PromoteReport says what a promotion found and did.
type PromoteReport struct {
	DC     string `json:"dc"`
	Chosen string `json:"chosen"`
	// KnownCommit is the highest index any survivor knew committed or had applied.
	KnownCommit uint64          `json:"known_commit"`
	Survivors   []SurvivorState `json:"survivors"`
	// Problems are what could not be proven; a promotion with problems ran only with Force.
	Problems []string `json:"problems"`
	Forced   bool     `json:"forced"`
	Voters   []string `json:"voters"`
	Seconds  float64  `json:"seconds"`
	// LeaderAt is when the recovered node was first seen leading.
	LeaderAt time.Time `json:"leader_at"`
}

// Promote makes the surviving datacenter dc a cluster on its own, when the other one is lost
// and the survivors have no quorum (a 2+2 layout). It proves first, from what the survivors
// answer (or their data on disk, once stopped), that the most up-to-date survivor holds every
// entry any survivor knew committed, and refuses otherwise unless forced. It then stops the
// survivors, makes the chosen one the only voter (node.RecoverAlone), starts it, and starts the
// others, which its leader adds back and autopilot promotes to voters.
func Promote(ctx context.Context, o PromoteOptions) (*PromoteReport, error) {
	start := time.Now()
	survivors, others := splitDC(o.File, o.DC)
	if len(survivors) == 0 {
		return nil, fmt.Errorf("no node of the cluster is in datacenter %q", o.DC)
	}
	r := &PromoteReport{DC: o.DC, Forced: o.Force, Problems: []string{}}
	if err := o.checkOthers(ctx, others); err != nil {
		return r, err
	}
	answers, leader := o.askUntilLeaderless(ctx, survivors)
	if leader != "" {
		return r, fmt.Errorf("%w: %s leads; promote-dc is only for a datacenter left without quorum", ErrNotNeeded, leader)
	}
	r.Survivors = o.survey(survivors, answers)
	if err := o.judge(r); err != nil {
		return r, err
	}
	if err := o.stopSurvivors(survivors, answers); err != nil {
		return r, err
	}
	r.Survivors = o.resurvey(r.Survivors)
	if err := o.judge(r); err != nil {
		o.restart(ctx, survivors, "")
		return r, err
	}
	if err := o.recover(ctx, r, survivors); err != nil {
		return r, err
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

func splitDC(f *client.ClusterFile, dc string) (in, out []client.ClusterNode) {
	for _, n := range f.Nodes {
		if n.Datacenter == dc {
			in = append(in, n)
		} else {
			out = append(out, n)
		}
	}
	return in, out
}

func (o PromoteOptions) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// checkOthers refuses when a node of another datacenter answers, force or not: it may still
// form a quorum or come back into one, and two clusters would then take ballots.
func (o PromoteOptions) checkOthers(ctx context.Context, others []client.ClusterNode) error {
	var alive []string
	for i, a := range o.ask(ctx, others) {
		if a.err == nil {
			alive = append(alive, others[i].ID)
		}
	}
	if len(alive) > 0 {
		return fmt.Errorf("%w: %s; stop them (or fence them off) before promoting %s", ErrOtherSideAlive, strings.Join(alive, ", "), o.DC)
	}
	return nil
}

type answer struct {
	info *urnepb.NodeInfo
	err  error
}

// ask asks every node at once for its Node info, each with a short timeout.
func (o PromoteOptions) ask(ctx context.Context, nodes []client.ClusterNode) []answer {
	out := make([]answer, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			out[i].info, out[i].err = o.Client.Node(ctx, n.GRPC)
		})
	}
	wg.Wait()
	return out
}

// leaderGrace is how long a survivor that still says it leads gets to notice it lost its
// quorum: a leader steps down once its lease passes without hearing from a majority.
const leaderGrace = 5 * time.Second

// askUntilLeaderless asks the survivors until none of them leads, for up to leaderGrace, and
// returns their last answers and the leader, if one remains.
func (o PromoteOptions) askUntilLeaderless(ctx context.Context, nodes []client.ClusterNode) ([]answer, string) {
	deadline := time.Now().Add(leaderGrace)
	for {
		answers := o.ask(ctx, nodes)
		leader := leaderOf(answers)
		if leader == "" || time.Now().After(deadline) || ctx.Err() != nil {
			return answers, leader
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func leaderOf(answers []answer) string {
	for _, a := range answers {
		if a.err == nil && a.info.GetRaftState() == "Leader" {
			return a.info.GetId()
		}
	}
	return ""
}

// survey records what each survivor answered, or reads the data of those that did not.
func (o PromoteOptions) survey(nodes []client.ClusterNode, answers []answer) []SurvivorState {
	out := make([]SurvivorState, len(nodes))
	for i, n := range nodes {
		if a := answers[i]; a.err == nil {
			out[i] = SurvivorState{ID: n.ID, Answered: true, LastIndex: a.info.GetLastIndex(), LastTerm: a.info.GetLastLogTerm(),
				CommitIndex: a.info.GetCommitIndex(), AppliedIndex: a.info.GetAppliedIndex()}
			continue
		}
		out[i] = o.fromDisk(SurvivorState{ID: n.ID}, n)
	}
	return out
}

// resurvey reads every stopped survivor's data again: the log cannot have moved without a
// leader, but disk is what recovery will use. What they answered before stays known.
func (o PromoteOptions) resurvey(states []SurvivorState) []SurvivorState {
	out := slices.Clone(states)
	for i, s := range out {
		n, _ := o.File.Node(s.ID)
		out[i] = o.fromDisk(s, n)
	}
	return out
}

func (o PromoteOptions) fromDisk(s SurvivorState, n client.ClusterNode) SurvivorState {
	cfg, err := node.LoadConfig(filepath.Join(o.Dir, filepath.FromSlash(n.Config)))
	var ls node.LocalState
	if err == nil {
		ls, err = node.InspectDataDir(cfg)
	}
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.OnDisk, s.Error = true, ""
	s.LastIndex, s.LastTerm, s.AppliedIndex = ls.LastIndex, ls.LastTerm, max(s.AppliedIndex, ls.AppliedIndex)
	return s
}

// judge picks the survivor to recover and lists what cannot be proven; it refuses when the
// list is not empty, unless forced.
func (o PromoteOptions) judge(r *PromoteReport) error {
	chosen, commit, problems := Choose(r.Survivors)
	r.Chosen, r.KnownCommit, r.Problems = chosen, commit, problems
	if len(problems) > 0 && !o.Force {
		return fmt.Errorf("%w: %s (run again with --force to promote anyway)", ErrUnsafe, strings.Join(problems, "; "))
	}
	if chosen == "" {
		return fmt.Errorf("no survivor of %s can be recovered: %s", o.DC, strings.Join(problems, "; "))
	}
	return nil
}

// Choose returns the survivor with the most up-to-date log (last term, then last index), the
// highest index any survivor knew committed or applied, and what keeps the choice from being
// proven safe: a survivor known neither by its answer nor by its data, or a chosen log that
// ends before an index known committed.
func Choose(states []SurvivorState) (chosen string, knownCommit uint64, problems []string) {
	problems = []string{}
	var best *SurvivorState
	for i := range states {
		s := &states[i]
		if !s.Answered && !s.OnDisk {
			problems = append(problems, fmt.Sprintf("%s neither answers nor has readable data here (%s): it may hold acknowledged writes the others lack", s.ID, s.Error))
			continue
		}
		knownCommit = max(knownCommit, s.CommitIndex, s.AppliedIndex)
		if best == nil || s.LastTerm > best.LastTerm || s.LastTerm == best.LastTerm && s.LastIndex > best.LastIndex {
			best = s
		}
	}
	if best == nil {
		return "", knownCommit, append(problems, "no survivor could be surveyed")
	}
	if best.LastIndex < knownCommit {
		problems = append(problems, fmt.Sprintf("the most up-to-date survivor %s ends at index %d, but index %d was known committed: entries would be lost",
			best.ID, best.LastIndex, knownCommit))
	}
	return best.ID, knownCommit, problems
}

// stopSurvivors stops the survivors that run here; one that answers but does not run here runs
// elsewhere and must be stopped by its operator first.
func (o PromoteOptions) stopSurvivors(nodes []client.ClusterNode, answers []answer) error {
	for i, n := range nodes {
		if o.Procs.Running(n.ID) {
			o.logf("stopping %s", n.ID)
			if err := o.Procs.Stop(n.ID); err != nil {
				return err
			}
		} else if answers[i].err == nil {
			return fmt.Errorf("%s answers but does not run here: stop it on its host, then run promote-dc again", n.ID)
		}
	}
	return nil
}

// recover makes the chosen survivor the only voter, starts it and the others, and waits
// until every survivor votes again.
func (o PromoteOptions) recover(ctx context.Context, r *PromoteReport, survivors []client.ClusterNode) error {
	n, _ := o.File.Node(r.Chosen)
	cfg, err := node.LoadConfig(filepath.Join(o.Dir, filepath.FromSlash(n.Config)))
	if err != nil {
		return err
	}
	o.logf("recovering %s alone (last index %d, known commit %d)", r.Chosen, survivorOf(r, r.Chosen).LastIndex, r.KnownCommit)
	if err := node.RecoverAlone(cfg, nil); err != nil {
		return err
	}
	if err := o.Procs.Start(ctx, r.Chosen); err != nil {
		return err
	}
	if err := o.waitLeader(ctx, n.GRPC); err != nil {
		return err
	}
	r.LeaderAt = time.Now()
	// Only survivors whose data was read are started again: one with no data would bootstrap
	// the old configuration from its config file, a vote dc1 could count on if it came back.
	var again []client.ClusterNode
	for _, n := range survivors {
		if s := survivorOf(r, n.ID); s.OnDisk && n.ID != r.Chosen {
			again = append(again, n)
		} else if !s.OnDisk {
			o.logf("not starting %s: its data could not be read; add it back as a new node", n.ID)
		}
	}
	o.logf("%s leads; starting the other survivors", r.Chosen)
	o.restart(ctx, again, "")
	var err2 error
	r.Voters, err2 = o.waitVoters(ctx, append(again, n))
	return err2
}

func survivorOf(r *PromoteReport, id string) SurvivorState {
	for _, s := range r.Survivors {
		if s.ID == id {
			return s
		}
	}
	return SurvivorState{}
}

// restart starts every survivor but skip, best effort.
func (o PromoteOptions) restart(ctx context.Context, nodes []client.ClusterNode, skip string) {
	for _, n := range nodes {
		if n.ID == skip {
			continue
		}
		if err := o.Procs.Start(ctx, n.ID); err != nil {
			o.logf("starting %s: %v", n.ID, err)
		}
	}
}

func (o PromoteOptions) waitLeader(ctx context.Context, endpoint string) error {
	return poll(ctx, o.wait(), func(ctx context.Context) error {
		info, err := o.Client.Node(ctx, endpoint)
		if err != nil {
			return err
		}
		if info.GetRaftState() != "Leader" {
			return fmt.Errorf("%s is %s", info.GetId(), info.GetRaftState())
		}
		return nil
	})
}

// waitVoters waits until every survivor is a voter of the configuration the leader has.
func (o PromoteOptions) waitVoters(ctx context.Context, survivors []client.ClusterNode) ([]string, error) {
	var voters []string
	err := poll(ctx, o.wait(), func(ctx context.Context) error {
		resp, err := o.Client.Peers(ctx)
		if err != nil {
			return err
		}
		voters = voters[:0]
		for _, p := range resp.GetPeers() {
			if p.GetSuffrage() == "voter" {
				voters = append(voters, p.GetId())
			}
		}
		for _, n := range survivors {
			if !slices.Contains(voters, n.ID) {
				return fmt.Errorf("%s is not a voter yet (voters: %s)", n.ID, strings.Join(voters, ", "))
			}
		}
		return nil
	})
	return voters, err
}

func (o PromoteOptions) wait() time.Duration {
	if o.Wait > 0 {
		return o.Wait
	}
	return time.Minute
}

// poll calls try until it succeeds or d passes, each call bounded by a few seconds.
func poll(ctx context.Context, d time.Duration, try func(ctx context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := try(tctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("gave up after %v: %w", d, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
