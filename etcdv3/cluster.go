package etcdv3

import (
	"context"
	"net/url"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/coordkit/coordkit/coord"
)

type clusterServer struct {
	*Server
	pb.UnimplementedClusterServer
}

// member is m as etcd describes a member: coordkit's observers are etcd's
// learners. Only the answering member knows its client URLs.
func (s *Server) member(m coord.Member) *pb.Member {
	pm := &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: []string{s.peerScheme + "://" + m.Address}, IsLearner: !m.Voter}
	if m.ID == s.n.ID() {
		pm.ClientURLs = s.clientURLs
	}
	return pm
}

func (s *Server) memberList(ctx context.Context) ([]*pb.Member, []coord.Member, error) {
	ms, err := s.n.Members(ctx)
	if err != nil {
		return nil, nil, toGRPC(err)
	}
	out := make([]*pb.Member, len(ms))
	for i, m := range ms {
		out[i] = s.member(m)
	}
	return out, ms, nil
}

// named returns the name of the member with Raft ID id.
func (s *Server) named(ctx context.Context, id uint64) (string, error) {
	_, ms, err := s.memberList(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if m.ID == id {
			return m.Name, nil
		}
	}
	return "", rpctypes.ErrGRPCMemberNotFound
}

// MemberList lists the members: voters, and observers as learners.
func (s clusterServer) MemberList(ctx context.Context, _ *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	ms, _, err := s.memberList(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.MemberListResponse{Header: s.emptyHeader(), Members: ms}, nil
}

// memberName is the name MemberAdd gives a member: etcd's MemberAdd
// carries no name, and a coordkit member's ID derives from its name and
// address, so the new member must start with this name.
func memberName(addr string) string {
	return "member-" + strings.NewReplacer(":", "-", ".", "-", "[", "", "]", "").Replace(addr)
}

// MemberAdd adds a voter, or a learner as an observer, at the one peer URL
// given. The member is named after its address (member-10-0-0-4-2380 for
// 10.0.0.4:2380): start it with that name.
func (s clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if len(r.PeerURLs) != 1 {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	u, err := url.Parse(r.PeerURLs[0])
	if err != nil || u.Host == "" {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	var opts []coord.MemberOption
	if r.IsLearner {
		opts = append(opts, coord.AsObserver())
	}
	m, err := s.n.AddMember(ctx, memberName(u.Host), u.Host, opts...)
	if err != nil {
		return nil, toGRPC(err)
	}
	ms, _, err := s.memberList(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.MemberAddResponse{Header: s.emptyHeader(), Member: s.member(*m), Members: ms}, nil
}

// MemberRemove removes the member with the given ID.
func (s clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	name, err := s.named(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if err := s.n.RemoveMember(ctx, name); err != nil {
		return nil, toGRPC(err)
	}
	ms, _, err := s.memberList(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.MemberRemoveResponse{Header: s.emptyHeader(), Members: ms}, nil
}

// MemberPromote makes a learner (an observer) a voter.
func (s clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	name, err := s.named(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if err := s.n.PromoteMember(ctx, name); err != nil {
		return nil, toGRPC(err)
	}
	ms, _, err := s.memberList(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.MemberPromoteResponse{Header: s.emptyHeader(), Members: ms}, nil
}

// MemberUpdate is refused: a coordkit member's address is part of its
// identity.
func (clusterServer) MemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, unsupported("MemberUpdate (a member's peer address is part of its identity: remove it and add it again)")
}
