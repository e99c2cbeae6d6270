package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// options is what the command line asks for.
type options struct {
	cfg coord.Config
	// clientAddr is the host:port the HTTP API listens on; "" for none.
	clientAddr string
	// clientTLS, when set, serves the HTTP API over TLS (requiring client
	// certificates with --client-cert-auth).
	clientTLS *tls.Config
	// bearer, when set, is the token every API request must carry.
	bearer   string
	pprof    bool
	logLevel slog.Level
	// etcdAPI serves etcd's v3 gRPC API on the client URL too.
	etcdAPI bool
	// restore is the backup to load on the first start of a founding
	// member; "" for none.
	restore string
	// retentionEvery is how often the member applies the retention of the
	// topics under httpapi.DefaultTopicsPrefix while it leads their shard;
	// 0 for never.
	retentionEvery time.Duration
}

// usageError is a bad command line: main exits with status 2 for it, as the
// flag package does.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// parseFlags turns etcd-style flags into options. Errors are *usageError and
// name the flag. For -h it writes the usage text to stderr and returns
// flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("coordkit", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by the caller
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: coordkit [flags]\n\nRuns one coordkit member, configured like an etcd member.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		name         = fs.String("name", "default", "human-readable `name` of this member, unique in the cluster")
		dataDir      = fs.String("data-dir", "", "`path` to the data directory (default \"<name>.coordkit\")")
		peerURL      = fs.String("listen-peer-urls", "http://127.0.0.1:2380", "`URL` (or host:port) to listen on for Raft traffic; peers dial the same address")
		clientURL    = fs.String("listen-client-urls", "http://127.0.0.1:2379", "`URL` (or host:port) to serve the HTTP API on; empty for none")
		initial      = fs.String("initial-cluster", "", "founding members as `name=URL,...` (default: this member alone)")
		token        = fs.String("initial-cluster-token", "", "cluster `token`; members with different tokens never talk (default \"coordkit-cluster\")")
		state        = fs.String("initial-cluster-state", "new", "`state`: new to found a cluster, existing to join one after member add")
		observer     = fs.Bool("observer", false, "join as a non-voting member (needs --initial-cluster-state existing)")
		caFile       = fs.String("peer-trusted-ca-file", "", "`path` to the CA certificate that signs every member's certificate (peer TLS)")
		certFile     = fs.String("peer-cert-file", "", "`path` to this member's peer TLS certificate")
		keyFile      = fs.String("peer-key-file", "", "`path` to this member's peer TLS key")
		secretFile   = fs.String("cluster-secret-file", "", "`path` to a file holding the cluster secret (at least 16 bytes; every member the same) that members prove to each other and to --listen-admin-urls; default: the one a lone founding member generated in its data directory")
		insecure     = fs.Bool("insecure-peers", false, "allow plaintext peer traffic on a non-loopback address")
		shards       = fs.Int("shards", 0, "`number` of Raft groups keys are spread over, fixed when the cluster is founded (0: default 1, or what the data directory holds)")
		heartbeat    = fs.Int("heartbeat-interval", 100, "time (in `milliseconds`) of a heartbeat interval")
		election     = fs.Int("election-timeout", 1000, "time (in `milliseconds`) for an election to timeout")
		logLevelFlag = fs.String("log-level", "info", "`level` of logs written to stderr: debug, info, warn or error")
		seeds        = fs.String("join-seeds", "", "admin `addresses` (host:port,...) of running members to ask for admission as an observer (with --observer and --initial-cluster-state existing; no member add needed); srv:NAME looks up the DNS SRV record NAME at each attempt")
		discSRV      = fs.String("discovery-srv", "", "`domain` whose SRV record _coordkit-admin._tcp.DOMAIN lists the seeds' admin addresses, looked up at each attempt (with --observer; like etcd's --discovery-srv)")
		adminURL     = fs.String("listen-admin-urls", "", "`URL` (or host:port) to answer observers' admission requests on; empty for none")
		grace        = fs.Duration("observer-grace-period", 0, "how long an observer may be unreachable before the cluster removes it (`duration`, e.g. 1m; 0: default 1m; negative: never)")
		certFileC    = fs.String("cert-file", "", "`path` to the HTTP API's TLS certificate (serves https)")
		keyFileC     = fs.String("key-file", "", "`path` to the HTTP API's TLS key")
		trustedCA    = fs.String("trusted-ca-file", "", "`path` to the CA that signs client certificates (with --client-cert-auth)")
		etcdAPI      = fs.Bool("etcd-api", true, "also serve etcd's v3 gRPC API on --listen-client-urls, for etcdctl and etcd clients (off with --bearer-token-file unless --client-cert-auth: etcd clients cannot send the token)")
		clientAuth   = fs.Bool("client-cert-auth", false, "require HTTP API clients to present a certificate signed by --trusted-ca-file")
		bearerFile   = fs.String("bearer-token-file", "", "`path` to a file holding a token every HTTP API request must carry as 'Authorization: Bearer TOKEN' (/health and /metrics excepted)")
		pprofFlag    = fs.Bool("enable-pprof", false, "serve Go's pprof under /debug/pprof/ on the client URL")
		compactMode  = fs.String("auto-compaction-mode", "revision", "`mode` of automatic history compaction: revision (the only one: keep the last --auto-compaction-retention revisions of each shard)")
		retention    = fs.Int64("auto-compaction-retention", 10000, "`revisions` of history each shard keeps for watches and old reads; 0 turns automatic compaction off")
		snapCount    = fs.Uint64("snapshot-count", 100000, "`number` of applied entries between snapshots; the Raft log behind a snapshot is compacted")
		diskReserve  = fs.Int64("disk-reserve-bytes", 64<<20, "free `bytes` on the data directory's filesystem below which this member takes no writes (they fail with 'no space: the member's disk is nearly full') until space is freed; 0 turns the check off")
		restore      = fs.String("restore", "", "`path` to a backup (coordctl snapshot save) to load into the new cluster once it is ready, on this member's first start (its data directory new); ignored on later starts; give it to one founding member")
		quota        = fs.Int64("quota-backend-bytes", 0, "bound on each shard's store, in `bytes`: past it, writes that grow it are refused until the NOSPACE alarm is disarmed (0: the default, 1 GiB; negative: none)")
		corruptCheck = fs.Duration("corrupt-check-time", 0, "`interval` between integrity checks of each shard, started by its leader: members compare hashes of their copies and a mismatch raises the CORRUPT alarm (0: the default, 30m; negative: only coordctl check hash)")
		retentionDur = fs.Duration("pubsub-retention-interval", 5*time.Second, "`interval` at which the member leading the topics' shard applies the retention of the topics under /topics (0: never)")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return nil, err
		}
		return nil, usagef("%v (-h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q: member takes flags only", fs.Arg(0))
	}

	o := &options{}
	if *name == "" {
		return nil, usagef("--name: must not be empty")
	}
	o.cfg.Name = *name
	o.cfg.DataDir = *dataDir
	if o.cfg.DataDir == "" {
		o.cfg.DataDir = *name + ".coordkit"
	}

	var err error
	if o.cfg.RaftAddress, err = hostPort(*peerURL); err != nil {
		return nil, usagef("--listen-peer-urls: %v", err)
	}
	if *clientURL != "" {
		if o.clientAddr, err = hostPort(*clientURL); err != nil {
			return nil, usagef("--listen-client-urls: %v", err)
		}
	}
	if *initial != "" {
		if o.cfg.InitialCluster, err = parseInitialCluster(*initial); err != nil {
			return nil, usagef("--initial-cluster: %v", err)
		}
		addr, ok := o.cfg.InitialCluster[o.cfg.Name]
		if !ok {
			return nil, usagef("--initial-cluster: does not name this member %q (--name)", o.cfg.Name)
		}
		if addr != o.cfg.RaftAddress {
			return nil, usagef("--initial-cluster: gives %q the address %s, but --listen-peer-urls is %s", o.cfg.Name, addr, o.cfg.RaftAddress)
		}
	}
	o.cfg.ClusterToken = *token
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return nil, usagef("--cluster-secret-file: %v", err)
		}
		o.cfg.ClusterSecret = strings.TrimSpace(string(b))
		if o.cfg.ClusterSecret == "" {
			return nil, usagef("--cluster-secret-file: %s is empty", *secretFile)
		}
	}

	switch *state {
	case "new":
	case "existing":
		o.cfg.Join = true
	default:
		return nil, usagef("--initial-cluster-state: %q is neither new nor existing", *state)
	}
	if *observer && !o.cfg.Join {
		return nil, usagef("--observer: needs --initial-cluster-state existing (a cluster is founded by voters; add the observer with member add first)")
	}
	o.cfg.Observer = *observer
	if *restore != "" {
		if o.cfg.Join {
			return nil, usagef("--restore: needs --initial-cluster-state new (a member that joins gets the keys from the cluster)")
		}
		if err := regularFile(*restore); err != nil {
			return nil, usagef("--restore: %v", err)
		}
		o.restore = *restore
	}

	switch {
	case *caFile == "" && *certFile == "" && *keyFile == "":
	case *caFile == "":
		return nil, usagef("--peer-trusted-ca-file: required with --peer-cert-file and --peer-key-file")
	case *certFile == "":
		return nil, usagef("--peer-cert-file: required with --peer-trusted-ca-file and --peer-key-file")
	case *keyFile == "":
		return nil, usagef("--peer-key-file: required with --peer-trusted-ca-file and --peer-cert-file")
	default:
		o.cfg.TLS = &coord.TLSConfig{CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile}
	}
	o.cfg.InsecurePeers = *insecure

	if *shards < 0 {
		return nil, usagef("--shards: %d is negative", *shards)
	}
	o.cfg.Shards = *shards
	if *heartbeat <= 0 {
		return nil, usagef("--heartbeat-interval: %d ms is not positive", *heartbeat)
	}
	if *election <= 0 {
		return nil, usagef("--election-timeout: %d ms is not positive", *election)
	}
	if *election < 5**heartbeat {
		return nil, usagef("--election-timeout: %d ms is below 5 heartbeats (--heartbeat-interval %d ms)", *election, *heartbeat)
	}
	if *compactMode != "revision" {
		return nil, usagef("--auto-compaction-mode: %q is not supported; only revision is", *compactMode)
	}
	switch {
	case *retention < 0:
		return nil, usagef("--auto-compaction-retention: %d revisions is negative (0 turns compaction off)", *retention)
	case *retention == 0:
		o.cfg.HistoryRetention = -1
	case *retention != 10000:
		o.cfg.HistoryRetention = *retention
	}
	if *snapCount == 0 {
		return nil, usagef("--snapshot-count: must be positive")
	}
	if *snapCount != 100000 {
		o.cfg.SnapshotEntries = *snapCount
	}
	switch {
	case *diskReserve < 0:
		return nil, usagef("--disk-reserve-bytes: must not be negative")
	case *diskReserve == 0:
		o.cfg.DiskReserve = -1
	case *diskReserve != 64<<20:
		o.cfg.DiskReserve = *diskReserve
	}
	o.cfg.MaxStoreBytes = *quota
	o.cfg.HashCheckInterval = *corruptCheck
	if *retentionDur < 0 {
		return nil, usagef("--pubsub-retention-interval: must not be negative")
	}
	o.retentionEvery = *retentionDur
	o.cfg.HeartbeatInterval = time.Duration(*heartbeat) * time.Millisecond
	o.cfg.ElectionTimeout = time.Duration(*election) * time.Millisecond

	if *seeds != "" {
		if !o.cfg.Observer {
			return nil, usagef("--join-seeds: needs --observer (voters are added with member add)")
		}
		for _, seed := range strings.Split(*seeds, ",") {
			seed = strings.TrimSpace(seed)
			if name, ok := strings.CutPrefix(seed, "srv:"); ok && name != "" {
				o.cfg.JoinSeeds = append(o.cfg.JoinSeeds, seed)
				continue
			}
			a, err := hostPort(seed)
			if err != nil {
				return nil, usagef("--join-seeds: %v", err)
			}
			o.cfg.JoinSeeds = append(o.cfg.JoinSeeds, a)
		}
	}
	if *discSRV != "" {
		if !o.cfg.Observer {
			return nil, usagef("--discovery-srv: needs --observer (voters are added with member add)")
		}
		o.cfg.JoinSeeds = append(o.cfg.JoinSeeds, "srv:_coordkit-admin._tcp."+strings.TrimSuffix(*discSRV, "."))
	}
	if *adminURL != "" {
		if o.cfg.AdminAddress, err = hostPort(*adminURL); err != nil {
			return nil, usagef("--listen-admin-urls: %v", err)
		}
	}
	o.cfg.ObserverGracePeriod = *grace

	switch {
	case *certFileC == "" && *keyFileC == "":
		if *clientAuth || *trustedCA != "" {
			return nil, usagef("--client-cert-auth and --trusted-ca-file need --cert-file and --key-file (TLS on the client URL)")
		}
	case *certFileC == "" || *keyFileC == "":
		return nil, usagef("--cert-file and --key-file: give both or neither")
	default:
		cert, err := tls.LoadX509KeyPair(*certFileC, *keyFileC)
		if err != nil {
			return nil, usagef("--cert-file: %v", err)
		}
		// h2 for gRPC (the etcd API), as net/http negotiates it.
		o.clientTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
		if *clientAuth {
			if *trustedCA == "" {
				return nil, usagef("--client-cert-auth: needs --trusted-ca-file")
			}
			pem, err := os.ReadFile(*trustedCA)
			if err != nil {
				return nil, usagef("--trusted-ca-file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, usagef("--trusted-ca-file: %s holds no PEM certificate", *trustedCA)
			}
			o.clientTLS.ClientCAs = pool
			o.clientTLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	if *bearerFile != "" {
		b, err := os.ReadFile(*bearerFile)
		if err != nil {
			return nil, usagef("--bearer-token-file: %v", err)
		}
		if o.bearer = strings.TrimSpace(string(b)); o.bearer == "" {
			return nil, usagef("--bearer-token-file: %s is empty", *bearerFile)
		}
	}
	o.pprof = *pprofFlag
	// etcd clients authenticate with certificates or etcd's own users,
	// never with the API's bearer token: with a token and no client
	// certificates, serving the etcd API would leave it open.
	o.etcdAPI = *etcdAPI && (o.bearer == "" || o.clientTLS != nil && o.clientTLS.ClientCAs != nil)

	switch strings.ToLower(*logLevelFlag) {
	case "debug":
		o.logLevel = slog.LevelDebug
	case "info":
		o.logLevel = slog.LevelInfo
	case "warn":
		o.logLevel = slog.LevelWarn
	case "error":
		o.logLevel = slog.LevelError
	default:
		return nil, usagef("--log-level: %q is not one of debug, info, warn, error", *logLevelFlag)
	}
	return o, nil
}

// regularFile checks that path names a regular file this process can open.
func regularFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	return err
}

// hostPort accepts "host:port" or "http://host:port" (https too, as etcd
// writes peer URLs under TLS) and returns host:port. etcd takes a
// comma-separated list; a member here listens on one address.
func hostPort(s string) (string, error) {
	if strings.Contains(s, ",") {
		return "", fmt.Errorf("%q: only one URL is supported", s)
	}
	addr := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("%q is not a URL: %v", s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", fmt.Errorf("%q: scheme %q is neither http nor https", s, u.Scheme)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", fmt.Errorf("%q: only scheme://host:port is allowed", s)
		}
		addr = u.Host
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port or http://host:port", s)
	}
	if host == "" {
		return "", fmt.Errorf("%q has no host", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q: port %q is not 1..65535", s, port)
	}
	return addr, nil
}

// parseInitialCluster parses "a=http://10.0.0.1:2380,b=10.0.0.2:2380".
func parseInitialCluster(s string) (map[string]string, error) {
	m := map[string]string{}
	byAddr := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("%q is not name=URL", part)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %q is named twice", name)
		}
		addr, err := hostPort(u)
		if err != nil {
			return nil, fmt.Errorf("member %q: %v", name, err)
		}
		if other, dup := byAddr[addr]; dup {
			return nil, fmt.Errorf("members %q and %q share the address %s", other, name, addr)
		}
		m[name], byAddr[addr] = addr, name
	}
	return m, nil
}

// configFlags maps the coord.Config fields that coord.Open names in its
// ErrInvalidConfig errors to the flags that set them.
var configFlags = []struct{ field, flag string }{
	{"Name", "--name"},
	{"DataDir", "--data-dir"},
	{"RaftAddress", "--listen-peer-urls"},
	{"InitialCluster", "--initial-cluster"},
	{"ClusterToken", "--initial-cluster-token"},
	{"Observer", "--observer"},
	{"TLS.CAFile", "--peer-trusted-ca-file"},
	{"TLS.CertFile", "--peer-cert-file"},
	{"TLS", "--peer-trusted-ca-file"},
	{"Shards", "--shards"},
	{"HeartbeatInterval", "--heartbeat-interval"},
	{"ElectionTimeout", "--election-timeout"},
}

// flagError turns coord.Open's refusal of the Config (ErrInvalidConfig, for
// example a TLS file that does not load, or --shards differing from the
// data directory's) into a *usageError naming the flag. Other errors are
// returned unchanged.
func flagError(err error) error {
	if !errors.Is(err, coord.ErrInvalidConfig) {
		return err
	}
	msg := err.Error()
	for _, f := range configFlags {
		if strings.Contains(msg, coord.ErrInvalidConfig.Error()+": "+f.field+":") {
			return usagef("%s: %s", f.flag, msg)
		}
	}
	return &usageError{msg: msg}
}
