package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/urne-vote/urne/transport/urnepb"
)

// Profiles of an election, chosen when it is created.
const (
	// ProfileTest takes opaque casts without a session: benchmarks, demos, tests.
	ProfileTest = "test"
	// ProfileCivilService follows the civil-service decrees: the full authentication and
	// envelope path, a 24 hour to 8 day window, the bureau's acts reserved to the bureau.
	ProfileCivilService = "civil-service"
)

// unary runs one unary call with the given retry rules.
func unary[T any](c *Client, ctx context.Context, cl call, fn func(context.Context, urnepb.ElectionClient) (T, error)) (T, error) {
	var resp T
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = fn(ctx, election(cc))
		return err
	})
	return resp, err
}

// CreateElectionProfile records the election this cluster runs, with its profile.
func (c *Client) CreateElectionProfile(ctx context.Context, electionID, name, profile string) (*urnepb.ElectionState, error) {
	req := &urnepb.CreateElectionRequest{ElectionId: electionID, Name: name, Profile: profile}
	return unary(c, ctx, leaderWrite("create election"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.CreateElection(ctx, req)
	})
}

// ConfigureElection sets who runs the election, its window and its bureau (draft only).
func (c *Client) ConfigureElection(ctx context.Context, cfg *urnepb.ElectionConfig) (*urnepb.ElectionState, error) {
	return unary(c, ctx, leaderWrite("configure election"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.ConfigureElection(ctx, &urnepb.ConfigureElectionRequest{Config: cfg})
	})
}

// PutScrutin adds or replaces a scrutin (draft only).
func (c *Client) PutScrutin(ctx context.Context, s *urnepb.Scrutin) (*urnepb.ElectionState, error) {
	return unary(c, ctx, leaderWrite("put scrutin"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.PutScrutin(ctx, &urnepb.PutScrutinRequest{Scrutin: s})
	})
}

// PutCandidateList files or replaces a candidate list; the scrutin's rule is checked.
func (c *Client) PutCandidateList(ctx context.Context, l *urnepb.CandidateList) (*urnepb.ElectionState, error) {
	return unary(c, ctx, leaderWrite("put candidate list"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.PutCandidateList(ctx, &urnepb.PutCandidateListRequest{List: l})
	})
}

// SetElectionKey records the public key made by the key ceremony and the policy of its fragments.
func (c *Client) SetElectionKey(ctx context.Context, publicKey, policy []byte) (*urnepb.ElectionState, error) {
	return unary(c, ctx, leaderWrite("set election key"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.SetElectionKey(ctx, &urnepb.SetElectionKeyRequest{PublicKey: publicKey, Policy: policy})
	})
}

// SealElection seals the election: after it, nothing that the seal covers may change.
func (c *Client) SealElection(ctx context.Context) (*urnepb.ElectionState, error) {
	return unary(c, ctx, leaderWrite("seal election"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.SealElection(ctx, &urnepb.TransitionRequest{RequestId: NewRequestID()})
	})
}

// RecordTally records the digests of the results and of the signed minutes of the tally.
func (c *Client) RecordTally(ctx context.Context, resultsDigest, minutesDigest []byte) (*urnepb.ElectionState, error) {
	req := &urnepb.RecordTallyRequest{ResultsDigest: resultsDigest, MinutesDigest: minutesDigest}
	return unary(c, ctx, leaderWrite("record tally"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.RecordTally(ctx, req)
	})
}

// ArchiveElection ends the election's life in the cluster.
func (c *Client) ArchiveElection(ctx context.Context) (*urnepb.ElectionState, error) {
	return c.ArchiveElectionSealed(ctx, nil)
}

// ArchiveElectionSealed ends the election's life in the cluster, recording the digest of its
// sealed archive (the SHA-256 of the archive's manifest, see package archive).
func (c *Client) ArchiveElectionSealed(ctx context.Context, archiveDigest []byte) (*urnepb.ElectionState, error) {
	req := &urnepb.TransitionRequest{RequestId: NewRequestID(), ArchiveDigest: archiveDigest}
	return unary(c, ctx, leaderWrite("archive election"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ElectionState, error) {
		return e.ArchiveElection(ctx, req)
	})
}

// ListScrutins reads the scrutins and their candidate lists.
func (c *Client) ListScrutins(ctx context.Context, opts ...ReadOption) (*urnepb.ScrutinsResponse, error) {
	cl, consistency := readCall("list scrutins", opts)
	return unary(c, ctx, cl, func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.ScrutinsResponse, error) {
		return e.ListScrutins(ctx, &urnepb.ReadRequest{Consistency: consistency})
	})
}

// IssueIdentifiers sends a random identifier by email to every voter without one, or a new
// one to voterID. Issuing again is harmless: voters who have one are skipped.
func (c *Client) IssueIdentifiers(ctx context.Context, voterID string) (*urnepb.IssueIdentifiersResponse, error) {
	return unary(c, ctx, leaderWrite("issue identifiers"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.IssueIdentifiersResponse, error) {
		return e.IssueIdentifiers(ctx, &urnepb.IssueIdentifiersRequest{VoterId: voterID})
	})
}

// Login checks a voter's identifier and non-trivial secret. A wrong pair is ErrAuthFailed
// (the message says how many attempts are left), a locked account ErrLocked.
// Every retry of the call carries the same request id: the cluster recognizes it and counts no
// second failure.
func (c *Client) Login(ctx context.Context, identifier, secret string) (*urnepb.LoginResponse, error) {
	req := &urnepb.LoginRequest{Identifier: identifier, Secret: secret, RequestId: NewRequestID()}
	login := leaderWrite("login")
	login.route = route{kind: toEach} // the secret is checked where it arrives
	return unary(c, ctx, login, func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.LoginResponse, error) {
		return e.Login(ctx, req)
	})
}

// RequestCode sends a one-time code by SMS to phone for the login of challengeToken.
// Its retries carry one request id: the cluster sends no second code for them.
func (c *Client) RequestCode(ctx context.Context, challengeToken, phone string) (*urnepb.RequestCodeResponse, error) {
	req := &urnepb.RequestCodeRequest{ChallengeToken: challengeToken, Phone: phone, RequestId: NewRequestID()}
	return unary(c, ctx, leaderWrite("request code"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.RequestCodeResponse, error) {
		return e.RequestCode(ctx, req)
	})
}

// VerifyCode checks the one-time code and returns the voting session.
// Its retries carry one request id: a retry of a wrong code counts no second failure, and a
// retry of a right one returns the session the first opened.
func (c *Client) VerifyCode(ctx context.Context, challengeToken, code string) (*urnepb.VerifyCodeResponse, error) {
	req := &urnepb.VerifyCodeRequest{ChallengeToken: challengeToken, Code: code, RequestId: NewRequestID()}
	return unary(c, ctx, leaderWrite("verify code"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.VerifyCodeResponse, error) {
		return e.VerifyCode(ctx, req)
	})
}

// CastSealed casts an envelope (sealed for the session's id and nonce) into a scrutin. As for
// CastWithRequestID, every retry must reuse requestID: the cluster then returns the first receipt.
func (c *Client) CastSealed(ctx context.Context, requestID, sessionToken, scrutinID string, envelope []byte) (*urnepb.CastResponse, error) {
	if requestID == "" {
		return nil, fmt.Errorf("cast: %w: empty request id", ErrInvalid)
	}
	req := &urnepb.CastSealedRequest{RequestId: requestID, SessionToken: sessionToken, ScrutinId: scrutinID, Envelope: envelope}
	cast := leaderWrite("cast sealed")
	cast.route = route{kind: toEach} // the envelope is opened where it arrives
	return unary(c, ctx, cast, func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.CastResponse, error) {
		return e.CastSealed(ctx, req)
	})
}

// UnlockAccount unlocks a voter's account (operators only); the reason is journaled.
func (c *Client) UnlockAccount(ctx context.Context, voterID, reason string) (*urnepb.AccountStatus, error) {
	return unary(c, ctx, leaderWrite("unlock account"), func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.AccountStatus, error) {
		return e.UnlockAccount(ctx, &urnepb.UnlockAccountRequest{VoterId: voterID, Reason: reason})
	})
}

// GetAccount reads a voter's authentication state.
func (c *Client) GetAccount(ctx context.Context, voterID string, opts ...ReadOption) (*urnepb.AccountStatus, error) {
	cl, consistency := readCall("get account", opts)
	return unary(c, ctx, cl, func(ctx context.Context, e urnepb.ElectionClient) (*urnepb.AccountStatus, error) {
		return e.GetAccount(ctx, &urnepb.GetAccountRequest{VoterId: voterID, Consistency: consistency})
	})
}

// ExportEmargement calls fn with every line of the émargement list. As with Fingerprints,
// the listing moves to another node only before fn is first called.
func (c *Client) ExportEmargement(ctx context.Context, fn func(*urnepb.EmargementEntry) error, opts ...ReadOption) error {
	cl, consistency := readCall("export émargement", opts)
	cl.stream = true
	return c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := election(cc).ExportEmargement(ctx, &urnepb.ReadRequest{Consistency: consistency})
		if err != nil {
			return err
		}
		return deliverPages(stream, cc.Target(), func(p *urnepb.EmargementPage) []*urnepb.EmargementEntry { return p.Entries }, fn)
	})
}

// ExportBox streams the frozen ballot box for the tally (bureau, once the election is
// closed): header once, then ballot with every inner ballot in fingerprint order. As with
// Fingerprints, the export moves to another node only before header is called.
func (c *Client) ExportBox(ctx context.Context, header func(*urnepb.BoxHeader) error, ballot func(*urnepb.BoxBallot) error, opts ...ReadOption) error {
	cl, consistency := readCall("export box", opts)
	cl.stream = true
	return c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := election(cc).ExportBox(ctx, &urnepb.ReadRequest{Consistency: consistency})
		if err != nil {
			return err
		}
		sawHeader := false
		steps := func(p *urnepb.BoxPage) []func() error {
			var out []func() error
			if h := p.GetHeader(); h != nil && !sawHeader {
				sawHeader = true
				out = append(out, func() error { return header(h) })
			}
			for _, b := range p.GetBallots() {
				out = append(out, func() error {
					if !sawHeader {
						return errors.New("export box: the node sent ballots before the header")
					}
					return ballot(b)
				})
			}
			return out
		}
		if err := deliverPages(stream, cc.Target(), steps, func(step func() error) error { return step() }); err != nil {
			return err
		}
		if !sawHeader {
			return stop{errors.New("export box: the node ended the export without its header")}
		}
		return nil
	})
}

// deliverPages hands each entry of a paged stream to fn; a break after the first entry is final.
func deliverPages[P any, E any](stream grpc.ServerStreamingClient[P], endpoint string, entries func(*P) []E, fn func(E) error) error {
	delivered := 0
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && delivered > 0 {
			return stop{fmt.Errorf("stream broke after %d entries: %w", delivered, asError(err, endpoint))}
		}
		if err != nil {
			return err
		}
		for _, e := range entries(page) {
			if err := fn(e); err != nil {
				return stop{err}
			}
			delivered++
		}
	}
}
