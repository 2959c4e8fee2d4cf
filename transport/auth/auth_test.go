package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/urne-vote/urne/transport/pki"
	"github.com/urne-vote/urne/transport/urnepb"
)

// stubOperator and stubElection answer with the caller's identity as the interceptors set it.
type stubOperator struct {
	urnepb.UnimplementedOperatorServer
}

func (stubOperator) Node(ctx context.Context, _ *urnepb.NodeRequest) (*urnepb.NodeInfo, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no identity in context")
	}
	return &urnepb.NodeInfo{Id: id.String()}, nil
}

func (stubOperator) RemoveServer(context.Context, *urnepb.RemoveServerRequest) (*urnepb.RemoveServerResponse, error) {
	return &urnepb.RemoveServerResponse{}, nil
}

type stubElection struct {
	urnepb.UnimplementedElectionServer
}

func (stubElection) ListFingerprints(_ *urnepb.ReadRequest, stream grpc.ServerStreamingServer[urnepb.FingerprintPage]) error {
	id, ok := IdentityFrom(stream.Context())
	if !ok {
		return status.Error(codes.Internal, "no identity in context")
	}
	return stream.Send(&urnepb.FingerprintPage{Fingerprints: [][]byte{[]byte(id.String())}})
}

var testPolicy = Policy{
	urnepb.Operator_RemoveServer_FullMethodName:     {PrincipalOperator},
	urnepb.Operator_Node_FullMethodName:             {PrincipalNode, PrincipalOperator},
	urnepb.Election_ListFingerprints_FullMethodName: {PrincipalObserver},
}

// logBuffer collects slog text output from the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testElection struct {
	id string
	ca *pki.CA
}

func newTestElection(t *testing.T, id string) testElection {
	t.Helper()
	ca, err := pki.NewCA(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testElection{id: id, ca: ca}
}

// issue returns a certificate for a client role, or for a node when role is "node".
func (e testElection) issue(t *testing.T, role string) (certPEM, keyPEM []byte) {
	t.Helper()
	var err error
	if role == pki.KindNode {
		certPEM, keyPEM, err = e.ca.IssueNode("n9", []string{"127.0.0.1"})
	} else {
		certPEM, keyPEM, err = e.ca.IssueClient(role)
	}
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// clientTLS trusts e's nodes and presents a certificate of holder's CA for role.
func (e testElection) clientTLS(t *testing.T, holder testElection, role string) *tls.Config {
	t.Helper()
	cert, key := e.issue(t, pki.RoleObserver)
	cfg, err := pki.ClientConfig(e.ca.CertPEM(), cert, key, e.id, "")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(holder.issue(t, role))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg
}

// serve runs a gRPC server of e on loopback whose interceptors expect election checkedFor;
// with serverTLS nil it runs without TLS.
func serve(t *testing.T, serverTLS *tls.Config, checkedFor string) (addr string, log *logBuffer) {
	t.Helper()
	log = &logBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(UnaryInterceptor(testPolicy, checkedFor, logger)),
		grpc.StreamInterceptor(StreamInterceptor(testPolicy, checkedFor, logger)),
	}
	if serverTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	urnepb.RegisterOperatorServer(srv, stubOperator{})
	urnepb.RegisterElectionServer(srv, stubElection{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), log
}

func (e testElection) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, key, err := e.ca.IssueNode("n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ServerConfig(e.ca.CertPEM(), cert, key, e.id)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// call invokes method on conn and returns the identity the handler saw, or the error.
func call(conn *grpc.ClientConn, method string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch method {
	case "health":
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return "", err
	case urnepb.Operator_Node_FullMethodName:
		info, err := urnepb.NewOperatorClient(conn).Node(ctx, &urnepb.NodeRequest{})
		return info.GetId(), err
	case urnepb.Operator_RemoveServer_FullMethodName:
		_, err := urnepb.NewOperatorClient(conn).RemoveServer(ctx, &urnepb.RemoveServerRequest{Id: "n2"})
		return "", err
	case urnepb.Operator_RotateKey_FullMethodName:
		_, err := urnepb.NewOperatorClient(conn).RotateKey(ctx, &urnepb.RotateKeyRequest{})
		return "", err
	case urnepb.Election_ListFingerprints_FullMethodName:
		return listFingerprints(ctx, conn)
	}
	panic("unknown method " + method)
}

func listFingerprints(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	stream, err := urnepb.NewElectionClient(conn).ListFingerprints(ctx, &urnepb.ReadRequest{})
	if err != nil {
		return "", err
	}
	page, err := stream.Recv()
	if err != nil {
		return "", err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(page.GetFingerprints()[0]), nil
}

func TestPolicyEnforced(t *testing.T) {
	e1 := newTestElection(t, "e1")
	addr, log := serve(t, e1.serverTLS(t), "e1")
	tests := []struct {
		role, method string
		wantCode     codes.Code
		wantMsg      string // in the error, or the identity the handler saw
	}{
		{pki.RoleOperator, urnepb.Operator_RemoveServer_FullMethodName, codes.OK, ""},
		{pki.RoleOperator, urnepb.Operator_Node_FullMethodName, codes.OK, "urne://e1/client/operator"},
		{pki.KindNode, urnepb.Operator_Node_FullMethodName, codes.OK, "urne://e1/node/n9"},
		{pki.RoleApp, "health", codes.OK, ""},
		{pki.RoleApp, urnepb.Operator_RemoveServer_FullMethodName, codes.PermissionDenied,
			"urne://e1/client/app (client:app) may not call /urne.v1.Operator/RemoveServer"},
		{pki.KindNode, urnepb.Operator_RemoveServer_FullMethodName, codes.PermissionDenied, "(node) may not call"},
		{pki.RoleOperator, urnepb.Operator_RotateKey_FullMethodName, codes.PermissionDenied, "not in the access policy"},
		{pki.RoleObserver, urnepb.Election_ListFingerprints_FullMethodName, codes.OK, "urne://e1/client/observer"},
		{pki.RoleApp, urnepb.Election_ListFingerprints_FullMethodName, codes.PermissionDenied, "may not call /urne.v1.Election/ListFingerprints"},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+tt.method, func(t *testing.T) {
			conn := dial(t, addr, credentials.NewTLS(e1.clientTLS(t, e1, tt.role)))
			got, err := call(conn, tt.method)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) || err == nil && got != tt.wantMsg {
				t.Fatalf("got %q, %v; want %q", got, err, tt.wantMsg)
			}
		})
	}
	if !strings.Contains(log.String(), `msg="denied RPC" method=/urne.v1.Operator/RemoveServer identity=urne://e1/client/app`) {
		t.Fatalf("denial not logged:\n%s", log.String())
	}
}

func TestForeignElectionRefused(t *testing.T) {
	e1, e2 := newTestElection(t, "e1"), newTestElection(t, "e2")
	addr, _ := serve(t, e1.serverTLS(t), "e1")
	// The client trusts e1's nodes but holds e2's operator certificate: the TLS layer refuses it.
	conn := dial(t, addr, credentials.NewTLS(e1.clientTLS(t, e2, pki.RoleOperator)))
	if _, err := call(conn, "health"); status.Code(err) != codes.Unavailable {
		t.Fatalf("foreign certificate: %v, want Unavailable", err)
	}
	// A client of e2 refuses e1's node itself, naming both.
	conn = dial(t, addr, credentials.NewTLS(e2.clientTLS(t, e2, pki.RoleOperator)))
	_, err := call(conn, "health")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "is not signed by the CA of election e2") {
		t.Fatalf("dialing another election's node: %v", err)
	}
}

func TestInterceptorChecksElection(t *testing.T) {
	e1 := newTestElection(t, "e1")
	// TLS accepts e1, but the interceptors guard e3: only their own check can refuse.
	addr, _ := serve(t, e1.serverTLS(t), "e3")
	conn := dial(t, addr, credentials.NewTLS(e1.clientTLS(t, e1, pki.RoleOperator)))
	_, err := call(conn, urnepb.Operator_Node_FullMethodName)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "certificate is for election e1, this cluster runs election e3") {
		t.Fatalf("election mismatch: %v", err)
	}
}

func TestPlaintextRefused(t *testing.T) {
	addr, _ := serve(t, nil, "e1")
	conn := dial(t, addr, insecure.NewCredentials())
	for _, method := range []string{"health", urnepb.Operator_Node_FullMethodName} {
		if _, err := call(conn, method); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "not mutual TLS") {
			t.Fatalf("%s without TLS: %v", method, err)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		ok     bool
	}{
		{"valid", testPolicy, true},
		{"method without slash", Policy{"urne.v1.Operator/Node": {PrincipalNode}}, false},
		{"method without service package", Policy{"/Operator/Node": {PrincipalNode}}, false},
		{"method without name", Policy{"/urne.v1.Operator/": {PrincipalNode}}, false},
		{"bare role", Policy{"/urne.v1.Operator/Node": {"operator"}}, false},
		{"bad role", Policy{"/urne.v1.Operator/Node": {"client:op erator"}}, false},
		{"new role", Policy{"/urne.v1.Operator/Node": {"client:auditor"}}, true},
	}
	for _, tt := range tests {
		if err := tt.policy.Validate(); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadPolicy)) {
			t.Errorf("%s: Validate = %v", tt.name, err)
		}
	}
}

func TestIdentityFromBareContext(t *testing.T) {
	if _, ok := IdentityFrom(context.Background()); ok {
		t.Fatal("identity found in a context the interceptors never saw")
	}
	want := pki.Identity{ElectionID: "e1", Kind: pki.KindClient, Name: pki.RoleApp}
	if got, ok := IdentityFrom(ContextWithIdentity(context.Background(), want)); !ok || got != want {
		t.Fatalf("IdentityFrom = %+v, %v", got, ok)
	}
}
