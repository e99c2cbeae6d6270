package etcdv3

import (
	"context"
	"io"
	"slices"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/coordkit/coordkit/coord"
)

type maintenanceServer struct {
	*Server
	pb.UnimplementedMaintenanceServer
}

// Version is the etcd API version the server reports in Status.
const Version = "3.7.0"

// Alarm lists the alarms: NOSPACE (once for any shard at its quota,
// reported as this member's) and CORRUPT (once for each member an
// integrity check found diverged, with its ID); or, to deactivate, disarms
// the alarms of the kind asked (every kind for NONE), as etcdctl alarm
// disarm expects. Activating one is refused: coordkit raises them itself.
func (s maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	switch r.Action {
	case pb.AlarmRequest_ACTIVATE:
		return nil, unsupported("activating an alarm")
	case pb.AlarmRequest_DEACTIVATE:
		var kinds []string
		switch r.Alarm {
		case pb.AlarmType_NONE:
		case pb.AlarmType_NOSPACE:
			kinds = []string{coord.AlarmNoSpace}
		case pb.AlarmType_CORRUPT:
			kinds = []string{coord.AlarmCorrupt}
		default:
			return &pb.AlarmResponse{Header: s.emptyHeader()}, nil
		}
		before, err := s.alarms(ctx)
		if err != nil {
			return nil, err
		}
		before = slices.DeleteFunc(before, func(a *pb.AlarmMember) bool {
			return r.Alarm != pb.AlarmType_NONE && a.Alarm != r.Alarm
		})
		if err := s.n.DisarmAlarms(ctx, kinds...); err != nil {
			return nil, toGRPC(err)
		}
		return &pb.AlarmResponse{Header: s.emptyHeader(), Alarms: before}, nil
	}
	as, err := s.alarms(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.AlarmResponse{Header: s.emptyHeader(), Alarms: as}, nil
}

func (s maintenanceServer) alarms(ctx context.Context) ([]*pb.AlarmMember, error) {
	as, err := s.n.Alarms(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	var out []*pb.AlarmMember
	noSpace, corrupt := false, map[uint64]bool{}
	for _, a := range as {
		switch a.Kind {
		case coord.AlarmNoSpace:
			if !noSpace {
				out = append(out, &pb.AlarmMember{MemberID: s.n.ID(), Alarm: pb.AlarmType_NOSPACE})
			}
			noSpace = true
		case coord.AlarmCorrupt:
			for _, id := range a.MemberIDs {
				if !corrupt[id] {
					out = append(out, &pb.AlarmMember{MemberID: id, Alarm: pb.AlarmType_CORRUPT})
				}
				corrupt[id] = true
			}
		}
	}
	return out, nil
}

// Status describes this member, from shard 0's point of view: its leader,
// term and applied index. DbSize is the store as Config.MaxStoreBytes
// counts it (coordkit has no database file), DbSizeQuota that quota.
func (s maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := s.n.Status(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	sh := st.Shards[0]
	resp := &pb.StatusResponse{Version: Version, StorageVersion: Version, Leader: sh.Leader, RaftIndex: sh.AppliedIndex,
		RaftTerm: sh.Term, RaftAppliedIndex: sh.AppliedIndex,
		Header: &pb.ResponseHeader{ClusterId: s.n.ClusterID(), MemberId: s.n.ID(), Revision: int64(sh.Revision), RaftTerm: sh.Term}}
	if ms, err := s.n.Members(ctx); err == nil {
		for _, m := range ms {
			if m.ID == s.n.ID() {
				resp.IsLearner = !m.Voter
			}
		}
	}
	// etcd reports its bbolt file; coordkit has none. The store as the
	// quota counts it stands for it, summed over the shards.
	for _, sh := range st.Shards {
		resp.DbSize += sh.StoreBytes
		if sh.NoSpace {
			resp.Errors = append(resp.Errors, "memberID:"+strconv.FormatUint(s.n.ID(), 16)+" alarm:NOSPACE")
		}
		if sh.Corrupt {
			resp.Errors = append(resp.Errors, "shard "+strconv.Itoa(sh.Shard)+" alarm:CORRUPT (see etcdctl alarm list)")
		}
	}
	resp.DbSize = max(resp.DbSize, 1) // etcdctl divides by it
	resp.DbSizeInUse = resp.DbSize
	resp.DbSizeQuota = max(st.MaxStoreBytes, 0)
	if st.DiskLow {
		resp.Errors = append(resp.Errors, "coordkit: the disk holding the data directory is below its reserve; writes are refused")
	}
	return resp, nil
}

// Defragment does nothing: coordkit's store needs no defragmentation.
func (s maintenanceServer) Defragment(context.Context, *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	return &pb.DefragmentResponse{Header: s.emptyHeader()}, nil
}

// Snapshot streams a backup of every shard (Node.Snapshot): coordkit's
// format, which Node.Restore reads, not a bbolt file.
func (s maintenanceServer) Snapshot(_ *pb.SnapshotRequest, stream pb.Maintenance_SnapshotServer) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.n.Snapshot(stream.Context(), pw)
		pw.CloseWithError(err)
		done <- err
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			if serr := stream.Send(&pb.SnapshotResponse{Header: s.emptyHeader(), Blob: append([]byte(nil), buf[:n]...),
				RemainingBytes: 1, Version: Version}); serr != nil {
				pr.CloseWithError(serr)
				<-done
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			<-done
			return toGRPC(err)
		}
	}
	if err := <-done; err != nil {
		return toGRPC(err)
	}
	return stream.Send(&pb.SnapshotResponse{Header: s.emptyHeader(), RemainingBytes: 0, Version: Version})
}

// MoveLeader hands the leadership of every shard this member leads to the
// member with the given ID.
func (s maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	name, err := s.named(ctx, r.TargetID)
	if err != nil {
		return nil, err
	}
	st, err := s.n.Status(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	for _, sh := range st.Shards {
		if sh.Leader != s.n.ID() {
			continue
		}
		if err := s.n.MoveLeader(ctx, sh.Shard, name); err != nil {
			return nil, toGRPC(err)
		}
	}
	return &pb.MoveLeaderResponse{Header: s.emptyHeader()}, nil
}

// Hash is refused.
func (maintenanceServer) Hash(context.Context, *pb.HashRequest) (*pb.HashResponse, error) {
	return nil, unsupported("Hash")
}

// HashKV is refused.
func (maintenanceServer) HashKV(context.Context, *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	return nil, unsupported("HashKV")
}

// Downgrade is refused.
func (maintenanceServer) Downgrade(context.Context, *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, unsupported("Downgrade")
}
