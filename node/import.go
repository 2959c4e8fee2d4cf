package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// importBatch is the number of voters, or of homonym claims, per command of an import: the
// most a command holds.
const importBatch = fsm.MaxVotersPerCommand

// importInFlight bounds the import commands committing at once: while one is applied, the
// next ones are replicated, and raft hands consecutive ones to the state machine together.
// Memory stays bounded by that many batches of about a megabyte each.
const importInFlight = 8

// ImportVoters receives the whole roll into a sealed spool, then commits it in two passes:
// the homonym keys in their order, then the voters in the order of their keys. Both trees
// of the roll are keyed by keyed hashes, so a roll committed as it arrives lands every
// voter on a different page of each tree and every commit rewrites as many pages as it
// holds voters; in key order, consecutive voters share pages and each pass writes its tree
// about once. Homonyms within the roll are refused before anything is proposed. A failure
// stops the import, which is idempotent: the caller runs it again.
func (s *electionService) ImportVoters(stream urnepb.Election_ImportVotersServer) error {
	ctx := stream.Context()
	index, err := s.n.fsm.RollIndex()
	if err != nil {
		return toStatus(err)
	}
	spool, err := newRollSpool(s.n.cfg.DataDir, s.n.keys, index)
	if err != nil {
		return toStatus(err)
	}
	defer spool.close()
	start := time.Now()
	if err := s.receiveRoll(stream, spool); err != nil {
		return err
	}
	if err := spool.checkHomonyms(); err != nil {
		return toStatus(err)
	}
	received := time.Now()
	if err := s.commitClaims(ctx, spool); err != nil {
		return err
	}
	claimed := time.Now()
	total, err := s.commitVoters(ctx, spool)
	if err != nil {
		return err
	}
	s.n.log.Info("roll imported", "voters", spool.count, "imported", total.Imported, "rectified", total.Rectified,
		"unchanged", total.Unchanged, "receive_seconds", received.Sub(start).Seconds(),
		"homonym_keys_seconds", claimed.Sub(received).Seconds(), "voters_seconds", time.Since(claimed).Seconds())
	return stream.SendAndClose(total)
}

// receiveRoll spools the streamed roll, its secrets replaced by their sealed or slow hashes.
// One goroutine receives while another spools.
func (s *electionService) receiveRoll(stream urnepb.Election_ImportVotersServer, spool *rollSpool) error {
	chunks := make(chan []*urnepb.Voter, importInFlight)
	g, ctx := errgroup.WithContext(stream.Context())
	g.Go(func() error {
		defer close(chunks)
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			select {
			case chunks <- req.Voters:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	g.Go(func() error {
		defer func() {
			for range chunks { // let the receiver end
			}
		}()
		var batch []*fsmpb.VoterRecord
		var secrets, prepared []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := s.n.secrets.sealPrepared(secrets, prepared, batch); err != nil {
				return toStatus(fmt.Errorf("%w: %v", fsm.ErrInvalid, err))
			}
			if err := s.n.secrets.hashSecrets(secrets, batch); err != nil {
				return toStatus(fmt.Errorf("hash voter secrets: %w", err))
			}
			for _, v := range batch {
				if err := spool.add(v); err != nil {
					return toStatus(err)
				}
			}
			batch, secrets, prepared = batch[:0], secrets[:0], prepared[:0]
			return nil
		}
		for chunk := range chunks {
			for _, v := range chunk {
				batch = append(batch, voterRecord(v))
				secrets = append(secrets, v.Secret)
				prepared = append(prepared, v.SecretBcrypt)
				if len(batch) == importBatch {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return flush()
	})
	return g.Wait()
}

// commitClaims proposes the roll's homonym keys in their order and waits for all of them.
func (s *electionService) commitClaims(ctx context.Context, spool *rollSpool) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(importInFlight)
	for claims := range spool.claims(importBatch) {
		g.Go(func() error {
			_, err := s.commitImport(ctx, &fsmpb.ImportVoters{Claims: claims})
			return err
		})
	}
	return g.Wait()
}

// commitVoters proposes the roll's voters in the order of their keys and adds up what the
// state machine did with them.
func (s *electionService) commitVoters(ctx context.Context, spool *rollSpool) (*urnepb.ImportVotersResponse, error) {
	var (
		mu    sync.Mutex
		total urnepb.ImportVotersResponse
	)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(importInFlight)
	for voters, err := range spool.voters(importBatch) {
		if err != nil {
			g.Go(func() error { return toStatus(err) })
			break
		}
		g.Go(func() error {
			r, err := s.commitImport(ctx, &fsmpb.ImportVoters{Voters: voters})
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			total.Imported += r.GetImported()
			total.Unchanged += r.GetUnchanged()
			total.Rectified += r.GetRectified()
			total.TotalVoters = max(total.TotalVoters, r.GetTotalVoters())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return &total, nil
}

// commitImport commits one command of an import, proposing it again while raft leaves its
// outcome open or finds no leader.
func (s *electionService) commitImport(ctx context.Context, p *fsmpb.ImportVoters) (*fsmpb.ImportResult, error) {
	cmd, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_IMPORT_VOTERS, p)
	if err != nil {
		return nil, toStatus(err)
	}
	cmd.Actor = actorFrom(ctx)
	deadline := time.Now().Add(importRetryWindow)
	for attempt := 1; ; attempt++ {
		resp, _, err := s.n.Propose(ctx, cmd)
		if err == nil {
			err = responseError(resp)
		}
		if err == nil {
			return resp.GetImport(), nil
		}
		pause := min(time.Duration(attempt)*importRetryPause, importRetryPauseMax)
		if !retryableImport(err) || time.Now().Add(pause).After(deadline) || sleepCtx(ctx, pause) != nil {
			s.n.metrics.rejected(err)
			return nil, toStatus(err)
		}
	}
}

// An import command whose outcome raft left open, or that found no leader, is proposed again
// for up to importRetryWindow: importing the same voters twice changes nothing, so a long
// import survives leader changes (it then reports those voters as unchanged), even a run of
// elections on an overloaded cluster.
const (
	importRetryWindow   = 30 * time.Second
	importRetryPause    = 500 * time.Millisecond
	importRetryPauseMax = 2 * time.Second
)

func retryableImport(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrOutcomeUnknown)
}

// voterRecord is a voter of the API without its secret, which only its hash replaces.
func voterRecord(v *urnepb.Voter) *fsmpb.VoterRecord {
	return &fsmpb.VoterRecord{VoterId: v.VoterId, Name: v.Name, Email: v.Email, DateOfBirth: v.DateOfBirth,
		Composante: v.Composante, College: v.College, Secteur: v.Secteur}
}
