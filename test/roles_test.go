package test

import (
	"context"
	"crypto/tls"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/pki"
)

// expectedAccess is the access matrix, written out independently of the node's policy: for
// every RPC, the principals that may call it. A method missing here fails the test.
var expectedAccess = map[string]string{
	"Election/CreateElection":       "operator organizer",
	"Election/ImportVoters":         "operator organizer",
	"Election/OpenElection":         "bureau operator organizer",
	"Election/CloseElection":        "bureau operator organizer",
	"Election/Cast":                 "app",
	"Election/GetElection":          "app bureau node observer operator organizer",
	"Election/Counts":               "app bureau node observer operator organizer",
	"Election/HasVoted":             "app bureau operator organizer",
	"Election/ListFingerprints":     "app bureau node observer operator organizer",
	"Election/ConfigureElection":    "organizer",
	"Election/PutScrutin":           "organizer",
	"Election/PutCandidateList":     "organizer",
	"Election/SetElectionKey":       "bureau organizer",
	"Election/SealElection":         "bureau operator organizer",
	"Election/RecordTally":          "bureau",
	"Election/ArchiveElection":      "bureau organizer",
	"Election/ListScrutins":         "app bureau observer operator organizer",
	"Election/IssueIdentifiers":     "operator organizer",
	"Election/Login":                "app",
	"Election/RequestCode":          "app",
	"Election/VerifyCode":           "app",
	"Election/CastSealed":           "app",
	"Election/UnlockAccount":        "operator",
	"Election/GetAccount":           "operator",
	"Election/ExportEmargement":     "bureau",
	"Election/ExportBox":            "bureau",
	"Operator/Node":                 "app bureau node observer operator organizer",
	"Operator/Peers":                "node operator",
	"Operator/TransferLeadership":   "node operator",
	"Operator/RemoveServer":         "node operator",
	"Operator/RotateKey":            "operator",
	"Operator/StateDigest":          "node operator",
	"Operator/Backup":               "operator",
	"Operator/RecordDrill":          "operator",
	"Operator/DrillStatus":          "node operator",
	"Operator/HoldNonvoter":         "operator",
	"Operator/ChangeSuffrage":       "node operator",
	"Operator/RequestDestruction":   "operator",
	"Operator/AuthorizeDestruction": "organizer",
	"Operator/Destruction":          "bureau node observer operator organizer",
	"Operator/RecordBackupErasure":  "operator",
	"Audit/RegisterEntries":         "bureau node observer operator organizer",
	"Audit/CheckIntegrity":          "bureau node operator organizer",
	"Internal/Apply":                "node",
	"Internal/ReadIndex":            "node",
	"Internal/ServerStats":          "node",
}

var principals = []string{"app", "bureau", "node", "observer", "operator", "organizer"}

// TestEveryRPCAgainstEveryRole calls every method of the API with the certificate of every
// role over real mutual TLS, and compares who got past the access check with the matrix.
func TestEveryRPCAgainstEveryRole(t *testing.T) {
	c := harness.New(t, "1")
	c.IssueClient("bureau")
	c.IssueClient("observer")
	conns := map[string]*grpc.ClientConn{}
	for _, p := range principals {
		conns[p] = dialAs(t, c, p)
	}
	methods := apiMethods(t)
	if len(methods) != len(expectedAccess) {
		t.Errorf("the API has %d methods, the matrix lists %d", len(methods), len(expectedAccess))
	}
	for _, m := range methods {
		want, listed := expectedAccess[m.name]
		if !listed {
			t.Errorf("%s is not in the access matrix", m.name)
			continue
		}
		var got []string
		for _, p := range principals {
			if passesAccessCheck(t, conns[p], m) {
				got = append(got, p)
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != want {
			t.Errorf("%s: allowed to [%s], want [%s]", m.name, strings.Join(got, " "), want)
		}
	}
}

type apiMethod struct {
	name     string // Service/Method
	full     string
	desc     protoreflect.MethodDescriptor
	streamed bool
}

// apiMethods lists every method of the four services from their descriptors.
func apiMethods(t *testing.T) []apiMethod {
	var out []apiMethod
	for _, service := range []string{"urne.v1.Election", "urne.v1.Operator", "urne.v1.Audit", "urne.v1.Internal"} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
		if err != nil {
			t.Fatal(err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			short := strings.TrimPrefix(service, "urne.v1.") + "/" + string(md.Name())
			out = append(out, apiMethod{name: short, full: "/" + service + "/" + string(md.Name()), desc: md,
				streamed: md.IsStreamingClient() || md.IsStreamingServer()})
		}
	}
	return out
}

// passesAccessCheck sends an empty request: the interceptor's refusal is PermissionDenied
// without an Urne reason; anything else (an answer, or the method's own error) passed it.
func passesAccessCheck(t *testing.T, cc *grpc.ClientConn, m apiMethod) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := dynamicpb.NewMessage(m.desc.Input())
	resp := dynamicpb.NewMessage(m.desc.Output())
	var err error
	if m.streamed {
		err = callStream(ctx, cc, m, req, resp)
	} else {
		err = cc.Invoke(ctx, m.full, req, resp)
	}
	st := status.Convert(err)
	if st.Code() != codes.PermissionDenied {
		return true
	}
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return true // refused by the election's rules, past the access check
		}
	}
	return false
}

func callStream(ctx context.Context, cc *grpc.ClientConn, m apiMethod, req, resp *dynamicpb.Message) error {
	desc := &grpc.StreamDesc{ClientStreams: m.desc.IsStreamingClient(), ServerStreams: m.desc.IsStreamingServer()}
	s, err := cc.NewStream(ctx, desc, m.full)
	if err != nil {
		return err
	}
	if !desc.ClientStreams {
		if err := s.SendMsg(req); err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	return s.RecvMsg(resp)
}

// dialAs connects to the cluster's node with the certificate of a principal: a client role,
// or a node's own certificate for "node".
func dialAs(t *testing.T, c *harness.Cluster, principal string) *grpc.ClientConn {
	t.Helper()
	id := c.File.Nodes[0].ID
	tlsCfg := mustTLS(t, c, principal, id)
	cc, err := grpc.NewClient(c.GRPC(id), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func mustTLS(t *testing.T, c *harness.Cluster, principal, nodeID string) *tls.Config {
	t.Helper()
	if principal != "node" {
		cfg, _, err := client.LoadClusterDir(c.Dir, principal)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.TLS
	}
	files := c.Config(nodeID).TLS
	caPEM, certPEM, keyPEM, err := pki.LoadFiles(files.CA, files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ClientConfig(caPEM, certPEM, keyPEM, c.File.ElectionID, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
