package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/urne-vote/urne/transport/auth"
	"github.com/urne-vote/urne/transport/raftlayer"
	"github.com/urne-vote/urne/transport/urnepb"
)

// maxMessageSize bounds every gRPC message a node accepts.
const maxMessageSize = 8 << 20

// Principals of the access policy.
const (
	pNode      = "node"
	pOperator  = "client:operator"
	pOrganizer = "client:organizer"
	pApp       = "client:app"
	pBureau    = "client:bureau"
	pObserver  = "client:observer"
)

// policy says who may call each method; anything not listed is refused. The organizer builds
// the election; the bureau seals, opens, closes, records the tally and reads the émargement;
// the election app carries the voters' requests; the operator runs the cluster and alone
// unlocks accounts; observers and experts read. A legal election's state machine checks the
// role again for the bureau's acts.
var policy = auth.Policy{
	urnepb.Election_CreateElection_FullMethodName:   {pOrganizer, pOperator},
	urnepb.Election_ImportVoters_FullMethodName:     {pOrganizer, pOperator},
	urnepb.Election_OpenElection_FullMethodName:     {pBureau, pOrganizer, pOperator},
	urnepb.Election_CloseElection_FullMethodName:    {pBureau, pOrganizer, pOperator},
	urnepb.Election_Cast_FullMethodName:             {pApp},
	urnepb.Election_GetElection_FullMethodName:      {pApp, pOrganizer, pOperator, pBureau, pObserver, pNode},
	urnepb.Election_Counts_FullMethodName:           {pApp, pOrganizer, pOperator, pBureau, pObserver, pNode},
	urnepb.Election_HasVoted_FullMethodName:         {pApp, pOrganizer, pOperator, pBureau},
	urnepb.Election_ListFingerprints_FullMethodName: {pApp, pOrganizer, pOperator, pBureau, pObserver, pNode},

	urnepb.Election_ConfigureElection_FullMethodName: {pOrganizer},
	urnepb.Election_PutScrutin_FullMethodName:        {pOrganizer},
	urnepb.Election_PutCandidateList_FullMethodName:  {pOrganizer},
	urnepb.Election_SetElectionKey_FullMethodName:    {pOrganizer, pBureau},
	urnepb.Election_SealElection_FullMethodName:      {pBureau, pOrganizer, pOperator},
	urnepb.Election_RecordTally_FullMethodName:       {pBureau},
	urnepb.Election_ArchiveElection_FullMethodName:   {pBureau, pOrganizer},
	urnepb.Election_ListScrutins_FullMethodName:      {pApp, pOrganizer, pOperator, pBureau, pObserver},
	urnepb.Election_IssueIdentifiers_FullMethodName:  {pOrganizer, pOperator},
	urnepb.Election_Login_FullMethodName:             {pApp},
	urnepb.Election_RequestCode_FullMethodName:       {pApp},
	urnepb.Election_VerifyCode_FullMethodName:        {pApp},
	urnepb.Election_CastSealed_FullMethodName:        {pApp},
	urnepb.Election_UnlockAccount_FullMethodName:     {pOperator},
	urnepb.Election_GetAccount_FullMethodName:        {pOperator},
	urnepb.Election_ExportEmargement_FullMethodName:  {pBureau},
	urnepb.Election_ExportBox_FullMethodName:         {pBureau},

	urnepb.Operator_Node_FullMethodName:               {pOperator, pOrganizer, pApp, pBureau, pObserver, pNode},
	urnepb.Operator_Peers_FullMethodName:              {pOperator, pNode},
	urnepb.Operator_TransferLeadership_FullMethodName: {pOperator, pNode},
	urnepb.Operator_RemoveServer_FullMethodName:       {pOperator, pNode},
	urnepb.Operator_RotateKey_FullMethodName:          {pOperator},
	urnepb.Operator_StateDigest_FullMethodName:        {pOperator, pNode},
	urnepb.Operator_Backup_FullMethodName:             {pOperator},
	urnepb.Operator_RecordDrill_FullMethodName:        {pOperator},
	urnepb.Operator_DrillStatus_FullMethodName:        {pOperator, pNode},
	urnepb.Operator_HoldNonvoter_FullMethodName:       {pOperator},
	urnepb.Operator_ChangeSuffrage_FullMethodName:     {pOperator, pNode},
	// The processor asks for the destruction, the controller (the organizer) authorizes it.
	urnepb.Operator_RequestDestruction_FullMethodName:   {pOperator},
	urnepb.Operator_AuthorizeDestruction_FullMethodName: {pOrganizer},
	urnepb.Operator_Destruction_FullMethodName:          {pOperator, pOrganizer, pBureau, pObserver, pNode},
	urnepb.Operator_RecordBackupErasure_FullMethodName:  {pOperator},

	urnepb.Audit_RegisterEntries_FullMethodName: {pBureau, pObserver, pOrganizer, pOperator, pNode},
	urnepb.Audit_CheckIntegrity_FullMethodName:  {pBureau, pOrganizer, pOperator, pNode},

	urnepb.Chaos_Inject_FullMethodName: {pOperator},
	urnepb.Chaos_Heal_FullMethodName:   {pOperator},
	urnepb.Chaos_List_FullMethodName:   {pOperator},
	urnepb.Chaos_Kill_FullMethodName:   {pOperator},

	urnepb.Internal_Apply_FullMethodName:       {pNode},
	urnepb.Internal_ReadIndex_FullMethodName:   {pNode},
	urnepb.Internal_ServerStats_FullMethodName: {pNode},
}

// startGRPC serves the election, operator, internal, health and reflection services over TLS
// with client certificates.
func (n *Node) startGRPC() error {
	ln, err := net.Listen("tcp", n.cfg.Bind.GRPC)
	if err != nil {
		return fmt.Errorf("grpc listener: %w", err)
	}
	n.grpc = grpc.NewServer(
		grpc.Creds(observedCreds{TransportCredentials: credentials.NewTLS(n.serverTLS), observe: n.auditor.conns.handshake}),
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor(policy, n.cfg.ElectionID, n.log, n.auditor.conns.refused), n.metrics.unaryInterceptor),
		grpc.ChainStreamInterceptor(auth.StreamInterceptor(policy, n.cfg.ElectionID, n.log, n.auditor.conns.refused)),
	)
	urnepb.RegisterElectionServer(n.grpc, &electionService{n: n})
	urnepb.RegisterOperatorServer(n.grpc, &operatorService{n: n})
	urnepb.RegisterInternalServer(n.grpc, &internalService{n: n})
	urnepb.RegisterAuditServer(n.grpc, &auditService{n: n})
	urnepb.RegisterChaosServer(n.grpc, &chaosService{n: n})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(n.grpc, hs)
	reflection.Register(n.grpc)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(ln); err != nil {
			n.log.Error("grpc server stopped", "err", err)
		}
	}()
	return nil
}

// peerConns keeps one gRPC connection per peer address, for forwarding and stats.
type peerConns struct {
	creds  credentials.TransportCredentials
	dialer raftlayer.Dialer

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerConns(tlsConf *tls.Config, dialer raftlayer.Dialer) *peerConns {
	return &peerConns{creds: credentials.NewTLS(tlsConf), dialer: dialer, conns: map[string]*grpc.ClientConn{}}
}

// get returns the connection to addr, creating it on first use (grpc connects lazily).
func (p *peerConns) get(addr string) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, fmt.Errorf("no address")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(p.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize))}
	if p.dialer != nil {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return p.dialer.DialContext(ctx, "tcp", a)
		}))
	}
	c, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// Close closes every connection.
func (p *peerConns) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = map[string]*grpc.ClientConn{}
}
