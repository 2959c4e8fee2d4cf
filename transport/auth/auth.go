// Package auth owns who may call which RPC: identities from client certificates, checked per
// method against a policy that denies whatever it does not name.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/urne-vote/urne/transport/pki"
)

// Principals a policy names: every node alike, or a client by role.
const (
	PrincipalNode      = pki.KindNode
	PrincipalOperator  = pki.KindClient + ":" + pki.RoleOperator
	PrincipalOrganizer = pki.KindClient + ":" + pki.RoleOrganizer
	PrincipalApp       = pki.KindClient + ":" + pki.RoleApp
	PrincipalBureau    = pki.KindClient + ":" + pki.RoleBureau
	PrincipalObserver  = pki.KindClient + ":" + pki.RoleObserver
)

// ErrBadPolicy: a policy names a method or principal that cannot match anything.
var ErrBadPolicy = errors.New("invalid access policy")

// openServices any verified peer may call: load balancers and tools probe health, and
// reflection only describes the API.
var openServices = []string{"/grpc.health.v1.Health/", "/grpc.reflection."}

// Principal is how a policy names an identity: "node" or "client:<role>".
func Principal(id pki.Identity) string {
	if id.Kind == pki.KindNode {
		return PrincipalNode
	}
	return id.Kind + ":" + id.Name
}

// Policy maps a full gRPC method name ("/urne.v1.Operator/RemoveServer") to the principals
// allowed to call it. A method it does not name is denied to everyone.
type Policy map[string][]string

// Allows reports whether principal may call method.
func (p Policy) Allows(method, principal string) bool {
	for _, prefix := range openServices {
		if strings.HasPrefix(method, prefix) {
			return true
		}
	}
	return slices.Contains(p[method], principal)
}

// Validate checks that every method is a full gRPC method name and every principal is "node"
// or "client:<role>", so a typo fails at start-up instead of silently denying a method.
func (p Policy) Validate() error {
	for method, principals := range p {
		if !validMethod(method) {
			return fmt.Errorf("%w: method %q is not of the form /package.Service/Method", ErrBadPolicy, method)
		}
		for _, principal := range principals {
			if err := validPrincipal(principal); err != nil {
				return fmt.Errorf("%w: method %s: %v", ErrBadPolicy, method, err)
			}
		}
	}
	return nil
}

func validMethod(method string) bool {
	service, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return strings.HasPrefix(method, "/") && ok && strings.Contains(service, ".") && name != "" && !strings.Contains(name, "/")
}

func validPrincipal(principal string) error {
	if principal == PrincipalNode {
		return nil
	}
	role, ok := strings.CutPrefix(principal, pki.KindClient+":")
	if !ok {
		return fmt.Errorf("principal %q is neither %q nor %q", principal, PrincipalNode, "client:<role>")
	}
	return pki.ValidateName(role)
}

type identityKey struct{}

// IdentityFrom is the verified identity of the caller, set by the interceptors.
func IdentityFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(pki.Identity)
	return id, ok
}

// ContextWithIdentity is what the interceptors do to a request context; handlers' tests use it.
func ContextWithIdentity(ctx context.Context, id pki.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// RefusalObserver hears of every call the interceptors refuse: the caller's address, the
// principal when the certificate named one, the method and why.
type RefusalObserver func(remote net.Addr, principal, method string, reason error)

// UnaryInterceptor checks every unary call against p; see checker.authorize.
func UnaryInterceptor(p Policy, electionID string, logger *slog.Logger, observers ...RefusalObserver) grpc.UnaryServerInterceptor {
	c := newChecker(p, electionID, logger, observers)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := c.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor checks every streaming call against p.
func StreamInterceptor(p Policy, electionID string, logger *slog.Logger, observers ...RefusalObserver) grpc.StreamServerInterceptor {
	c := newChecker(p, electionID, logger, observers)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := c.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identifiedStream{ServerStream: ss, ctx: ctx})
	}
}

// identifiedStream hands the handler a context that carries the caller's identity.
type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identifiedStream) Context() context.Context { return s.ctx }

type checker struct {
	policy     Policy
	electionID string
	logger     *slog.Logger
	observers  []RefusalObserver
}

func newChecker(p Policy, electionID string, logger *slog.Logger, observers []RefusalObserver) *checker {
	if logger == nil {
		logger = slog.Default()
	}
	return &checker{policy: p, electionID: electionID, logger: logger, observers: observers}
}

func (c *checker) refused(p *peer.Peer, principal, method string, reason error) {
	var remote net.Addr
	if p != nil {
		remote = p.Addr
	}
	for _, o := range c.observers {
		o(remote, principal, method, reason)
	}
}

// authorize identifies the caller from its TLS certificate, checks its election and the policy,
// and returns the context carrying its identity.
func (c *checker) authorize(ctx context.Context, method string) (context.Context, error) {
	p, _ := peer.FromContext(ctx)
	id, err := c.identify(p)
	if err != nil {
		c.logger.Warn("refused RPC", "method", method, "remote", remoteOf(p), "reason", err.Error())
		c.refused(p, "", method, err)
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if !c.policy.Allows(method, Principal(id)) {
		err := c.denial(method, id)
		c.logger.Warn("denied RPC", "method", method, "identity", id.String(), "remote", remoteOf(p), "reason", err.Error())
		c.refused(p, Principal(id), method, err)
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	return ContextWithIdentity(ctx, id), nil
}

func (c *checker) identify(p *peer.Peer) (pki.Identity, error) {
	if p == nil {
		return pki.Identity{}, errors.New("no peer information on the call")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return pki.Identity{}, fmt.Errorf("connection is not mutual TLS: a certificate of election %s is required", c.electionID)
	}
	id, err := pki.PeerIdentity(info.State)
	if err != nil {
		return pki.Identity{}, fmt.Errorf("client certificate: %w", err)
	}
	if id.ElectionID != c.electionID {
		return pki.Identity{}, fmt.Errorf("certificate is for election %s, this cluster runs election %s", id.ElectionID, c.electionID)
	}
	return id, nil
}

func (c *checker) denial(method string, id pki.Identity) error {
	if _, known := c.policy[method]; !known {
		return fmt.Errorf("method %s is not open to anyone (it is not in the access policy)", method)
	}
	return fmt.Errorf("%s (%s) may not call %s", id, Principal(id), method)
}

func remoteOf(p *peer.Peer) string {
	if p == nil || p.Addr == nil {
		return "unknown"
	}
	return p.Addr.String()
}
