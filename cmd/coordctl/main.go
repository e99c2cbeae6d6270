// Command coordctl is a command-line client of coordkit's HTTP API (package
// coord/httpapi), in the manner of etcdctl.
//
// Usage:
//
//	coordctl [global flags] COMMAND [flags] [args]
//
// Commands:
//
//	put KEY VALUE [--lease ID]                 set KEY to VALUE, attached to a lease
//	get KEY [--prefix] [--serializable] [--limit N]
//	                                           read KEY, or every key starting with it
//	del KEY [--prefix]                         delete KEY, or every key starting with it
//	ls [DIR] [--serializable]                  list the keys and directories right under
//	                                           DIR (default /), as ls -p does
//	txn                                        run a transaction read from stdin, in
//	                                           etcdctl's interactive format
//	watch KEY [--prefix] [--rev N] [--prev-kv] print the changes to KEY (or to every key
//	                                           starting with it) until interrupted
//	compact REV [--shard N]                    discard the history of a shard before REV
//	lease grant TTL_SECONDS                    grant a lease
//	lease keep-alive ID [--once]               renew a lease every third of its TTL
//	                                           until interrupted, or once
//	lease revoke ID                            revoke a lease, deleting its keys
//	lease timetolive ID [--keys]               a lease's TTL and remaining time
//	lease list                                 list the leases
//	lock NAME [--ttl SECONDS] [--wait D] [-- COMMAND [ARGS...]]
//	                                           hold a lock while COMMAND runs, or
//	                                           until interrupted
//	elect NAME VALUE [--ttl SECONDS]           campaign, and hold the leadership
//	                                           until interrupted
//	elect --listen NAME                        print the election's leader and
//	                                           every change of it
//	snapshot save FILE                         save a backup of every shard
//	snapshot restore FILE                      load a backup into a cluster with no key
//	svc list [SERVICE] [--dir DIR] [--passing-only] [--serializable]
//	                                           list the services registered, or the
//	                                           instances of SERVICE
//	svc watch SERVICE [--dir DIR] [--from-rev N]
//	                                           print SERVICE's instances, then every
//	                                           change, until interrupted
//	topic publish TOPIC MESSAGE [--dir DIR] [--msg-id ID]
//	                                           publish MESSAGE to TOPIC (once per ID
//	                                           within the topic's duplicate window)
//	topic tail TOPIC [--from F] [--dir DIR]    print TOPIC's messages from F (now,
//	                                           earliest, an offset, an RFC 3339 time or
//	                                           a duration ago) until interrupted
//	topic stats TOPIC [--dir DIR]              TOPIC's message count, bytes and offsets
//	topic retention TOPIC [--max-messages N] [--max-bytes N] [--max-age D]
//	                [--duplicate-window D] [--dir DIR]
//	                                           set what TOPIC keeps (applied by the
//	                                           member leading its shard)
//	member list                                list the cluster's members
//	member add NAME ADDR [--observer] [--force]
//	                                           add a member whose Raft address is ADDR
//	member remove NAME [--force]               remove a member
//	member promote NAME [--force]              turn an observer into a voter
//	move-leader MEMBER [--shard N|all]         hand the leadership of shard N (default
//	                                           0), or of every shard, to MEMBER
//	endpoint status                            every endpoint's view of every shard
//	endpoint health                            check every endpoint's health
//	alarm list                                 list the alarms raised
//	alarm disarm [--alarm NOSPACE|CORRUPT]     clear every alarm, or one kind
//	check hash                                 compare every member's hash of each
//	                                           shard; exit 1 when they differ
//	help [COMMAND]                             describe coordctl, or a command
//	completion bash|zsh|fish|powershell        print a shell completion script
//
// Global flags, accepted before the command or among its flags:
//
//	--endpoints URLS   comma-separated http://host:port list (default
//	                   http://127.0.0.1:2379, or $COORDCTL_ENDPOINTS)
//	-w, --write-out F  output format: simple (default), json or table
//	--timeout D        bound on the whole command (default 5s); see below
//	                   for the commands that run until interrupted and
//	                   for snapshot restore
//
// A command's flags may come before or after its arguments; "--" ends the
// flags, for a key or value that starts with "-", and before a lock's
// COMMAND when that has flags of its own:
//
//	coordctl put -- -k -v
//	coordctl get /config/ --prefix -w table
//	coordctl --endpoints http://10.0.0.1:2379,http://10.0.0.2:2379 member list -w table
//	coordctl lock backups -- tar czf /backup/db.tgz /srv/db
//
// Commands other than endpoint status and health try the endpoints in order
// until one answers. A request moves on to the next endpoint when it could
// not connect; a read also moves on when the connection broke later, but a
// write then stops, since it may have been applied. endpoint status and
// endpoint health ask every endpoint. The streams of watch, svc watch,
// topic tail, lock, elect and snapshot save move on after any failure to
// open them: what a stream holds is released when its connection breaks.
// snapshot restore moves on only when it could not connect.
//
// Lease IDs are printed and read in hexadecimal, as etcdctl does.
//
// Output: simple prints plain text (get prints each key and then its value
// on lines of their own, as etcdctl does; bytes are printed as they are),
// json prints the API's response as received (keys and values in base64;
// for move-leader, endpoint status and health, what coordctl gathered),
// table draws a table for get, ls, member list, move-leader, endpoint
// status and health, lease timetolive and lease list, alarm list, svc list
// and topic stats, and prints as simple for the other commands.
//
// ls prints the names of DIR's children relative to DIR, one a line, a
// directory's with a trailing "/" (a key and a directory may share a
// name: /a and /a/b give "a" and "a/"); with -w table, each key's value,
// version, mod revision and lease.
//
// Errors go to standard error as "Error: <message>" and the exit status is 1
// (lock with a COMMAND exits with COMMAND's status, see below).
//
// # Commands that run until interrupted
//
// watch, svc watch, topic tail, lease keep-alive, lock, elect and elect
// --listen run until SIGINT
// or SIGTERM (which end them with status 0 once they have let go of what
// they held) or until their stream fails (status 1). --timeout bounds each
// request they make and the opening of a watch or an observation, but not
// the wait for a lock or a leadership. An open stream that stays silent for
// 15 s (the server sends a heartbeat at least every 10 s) is taken as a
// lost connection.
//
// watch prints, for every event, its type (PUT or DELETE), then with
// --prev-kv the previous key and value, then the key and value, each on a
// line of its own, as etcdctl does (a deleted key's value is an empty
// line). With -w json it prints every line of the stream but heartbeats,
// the first one ({"created":true}) included. A watch that fails says from
// which revision to resume it with --rev.
//
// lock takes the lock NAME on a session of the server's with a TTL of
// --ttl seconds (default 10): if coordctl dies, the lock is released as
// soon as the member sees the connection close, and if the member dies,
// once the TTL has passed.
// --wait gives up when the lock is not free within that long. With a
// COMMAND, coordctl runs it once the lock is held, with the environment
// variables COORD_LOCK_NAME, COORD_LOCK_KEY (the lock's key, quoted when not
// printable) and COORD_LOCK_FENCE (the lock's fencing token, a decimal
// number larger than that of every earlier holder: pass it along with
// guarded writes, so that their target can refuse a holder that lost the
// lock), and stdin, stdout and stderr of its own; it releases the lock
// when COMMAND exits and exits with COMMAND's status (128+N when COMMAND
// was killed by signal N). coordctl prints nothing of its own then. If the
// lock is lost while COMMAND runs, coordctl says so on stderr, sends
// COMMAND a SIGTERM (COMMAND's own children are not signalled), waits for
// it to exit, and exits with status 1 whatever COMMAND's status: the work
// COMMAND did may have overlapped with another holder's. While COMMAND
// runs, coordctl passes a SIGTERM on to it and ignores SIGINT (a terminal's
// Ctrl-C reaches COMMAND directly), and it waits for COMMAND to exit, so as
// not to let go of the lock while COMMAND still runs (SIGKILL coordctl to
// give up: the member then releases the lock). Without a COMMAND, lock prints
// the lock's key and its fence, each on a line (-w json: the stream's
// first line), holds the lock until interrupted, then releases it.
//
// svc watch prints the instances present, each as "added, " and the row
// svc list prints for it (ID, ADDR, STATUS, WEIGHT, METADATA, REVISION),
// then "synced", then every change (added, updated or removed) the same
// way; with -w json, every line of the stream. A svc watch that fails says
// from which revision to resume it with --from-rev, which prints only the
// changes after that revision.
//
// topic tail prints each message's payload on a line of its own (-w json:
// every line of the stream, with offsets and times); one that fails says
// from which offset to resume it with --from.
//
// elect campaigns for NAME with VALUE (--ttl as for lock); once elected it
// prints the leader's key and value, each on a line (-w json: the stream's
// first line), and holds the leadership until interrupted, then resigns.
// If the leadership is lost it says so and exits with status 1. elect
// --listen prints the key and value of the current leader, and of every
// new one (-w json: every line, {"leader":null} when there is none).
//
// snapshot save writes the backup to FILE.part, checks its SHA-256 trailer
// (so that a transfer cut short is never taken for a backup), syncs it and
// renames it to FILE. --timeout bounds the wait for each part of it.
//
// snapshot restore checks FILE's trailer as save does, then sends it to a
// member, which loads it into the cluster if the cluster holds no key
// (restore into a new cluster, as etcdutl snapshot restore does): keys get
// new revisions, and keys that were attached to a lease are skipped.
// --timeout bounds each silence of the upload, not the restore, which
// takes as long as the backup's size needs; once the member has the whole
// backup, it restores it to the end even if coordctl is interrupted.
//
// move-leader asks for the transfer and waits until the member that
// answers sees MEMBER lead, within --timeout; it says who led before, as
// that member saw it. Moving the leadership to the leader does nothing.
//
// svc and topic read the registry (coord/registry) and the topics
// (coord/pubsub) under --dir, by default /services and /topics, as the
// HTTP API does.
//
// coordctl talks plain HTTP, or HTTPS with an https:// endpoint: the
// server's certificate is checked against --cacert (else the system's
// roots); --cert and --key present a client certificate to members that
// require one (--client-cert-auth); --bearer-token-file (or the environment
// variable COORDCTL_BEARER_TOKEN) sends "Authorization: Bearer TOKEN" to
// members started with --bearer-token-file.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

const (
	defaultEndpoints = "http://127.0.0.1:2379"
	defaultTimeout   = 5 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, signals: notifySignals}))
}

// env is what a run of coordctl takes from its process; tests fake it.
type env struct {
	stdin          io.Reader // a lock's COMMAND reads it; nil for none
	stdout, stderr io.Writer
	// signals starts the delivery of SIGINT and SIGTERM on the returned
	// channel, for the commands that run until interrupted; stop ends it.
	signals func() (sigs <-chan os.Signal, stop func())
}

func notifySignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}

// exitStatus is an error that only sets the exit status: that of a lock's
// COMMAND, which has said what it had to say.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run is the whole command, with args excluding the program name; it
// returns the exit status.
func run(args []string, e env) int {
	c := &cli{
		env:     e,
		globals: globals{endpoints: defaultEndpoints, writeOut: "simple", timeout: defaultTimeout},
	}
	if env := os.Getenv("COORDCTL_ENDPOINTS"); env != "" {
		c.endpoints = env
	}
	err := c.main(args)
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	var status exitStatus
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &status):
		return int(status)
	default:
		fmt.Fprintf(c.stderr, "Error: %v\n", err)
		return 1
	}
}

type globals struct {
	endpoints string
	writeOut  string
	timeout   time.Duration
	// TLS and credentials, as etcdctl's --cacert, --cert and --key.
	cacert, cert, key string
	tokenFile         string
}

// register adds the global flags to fs, with their current values as
// defaults, so that a command's flag set accepts them too.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.endpoints, "endpoints", g.endpoints, "comma-separated `URLs` of the HTTP API (env COORDCTL_ENDPOINTS)")
	fs.StringVar(&g.writeOut, "w", g.writeOut, "output `format`: simple, json or table")
	fs.StringVar(&g.writeOut, "write-out", g.writeOut, "output `format`: simple, json or table")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound on the whole command (on each request, for the commands that run until interrupted)")
	fs.StringVar(&g.cacert, "cacert", g.cacert, "`path` to the CA certificate that signs the members' HTTPS certificates")
	fs.StringVar(&g.cert, "cert", g.cert, "`path` to this client's certificate, for members that require one (--client-cert-auth)")
	fs.StringVar(&g.key, "key", g.key, "`path` to this client's key")
	fs.StringVar(&g.tokenFile, "bearer-token-file", g.tokenFile, "`path` to a file holding the members' bearer token (env COORDCTL_BEARER_TOKEN gives the token itself)")
}

type cli struct {
	globals
	env
	transport *http.Transport
	token     string // sent as "Authorization: Bearer token" when set
}

type command struct {
	name  string // one or two words
	usage string
	short string // one line for help
	run   func(c *cli, args []string) error
}

var commands = []command{
	{"put", "put KEY VALUE [--lease ID]", "set KEY to VALUE", (*cli).put},
	{"get", "get KEY [--prefix] [--serializable] [--limit N] [--rev R] [--keys-only] [--count-only]", "read a key or a range", (*cli).get},
	{"del", "del KEY [--prefix]", "delete a key or a range", (*cli).del},
	{"ls", lsUsage, "list a directory's keys and subdirectories", (*cli).ls},
	{"txn", txnUsage, "run a transaction read from stdin (etcdctl's format)", (*cli).txn},
	{"watch", watchUsage, "print the changes to a key or a range until interrupted", (*cli).watch},
	{"compact", compactUsage, "remove a shard's history before a revision", (*cli).compact},
	{"lease grant", "lease grant TTL_SECONDS", "create a lease", (*cli).leaseGrant},
	{"lease keep-alive", "lease keep-alive ID [--once]", "renew a lease until interrupted, or once", (*cli).leaseKeepAlive},
	{"lease revoke", "lease revoke ID", "end a lease and delete its keys", (*cli).leaseRevoke},
	{"lease timetolive", "lease timetolive ID [--keys]", "show a lease's TTL and keys", (*cli).leaseTimeToLive},
	{"lease list", "lease list", "list the leases", (*cli).leaseList},
	{"lock", lockUsage, "hold a lock until interrupted, or while a command runs", (*cli).lock},
	{"elect", electUsage, "campaign for a leadership, or follow an election", (*cli).elect},
	{"snapshot save", "snapshot save FILE", "write a backup to FILE", (*cli).snapshotSave},
	{"snapshot restore", "snapshot restore FILE", "load a backup into a cluster that holds no key", (*cli).snapshotRestore},
	{"svc list", svcListUsage, "list the services, or a service's instances", (*cli).svcList},
	{"svc watch", svcWatchUsage, "print a service's instances and their changes until interrupted", (*cli).svcWatch},
	{"topic publish", topicPublishUsage, "publish a message to a topic", (*cli).topicPublish},
	{"topic tail", topicTailUsage, "print a topic's messages until interrupted", (*cli).topicTail},
	{"topic stats", topicStatsUsage, "show a topic's message count, bytes and offsets", (*cli).topicStats},
	{"topic retention", topicRetentionUsage, "set what a topic keeps", (*cli).topicRetention},
	{"member list", "member list", "list the members", (*cli).memberList},
	{"member add", "member add NAME ADDR [--observer] [--force]", "add a voter or an observer", (*cli).memberAdd},
	{"member remove", "member remove NAME [--force]", "remove a member", (*cli).memberRemove},
	{"member promote", "member promote NAME [--force]", "make an observer a voter", (*cli).memberPromote},
	{"move-leader", moveLeaderUsage, "hand a shard's leadership to a voter", (*cli).moveLeader},
	{"endpoint status", "endpoint status", "show each endpoint's member status", (*cli).endpointStatus},
	{"endpoint health", "endpoint health", "check each endpoint's health", (*cli).endpointHealth},
	{"alarm list", "alarm list", "list the alarms raised (NOSPACE: a shard at its quota; CORRUPT: copies diverged)", (*cli).alarmList},
	{"alarm disarm", alarmDisarmUsage, "clear every alarm, or one kind", (*cli).alarmDisarm},
	{"check hash", "check hash", "compare every member's hash of each shard (integrity check)", (*cli).checkHash},
}

// subcommands are the commands that take a subcommand, with the list of
// them for errors.
var subcommands = map[string]string{
	"member":   "list, add, remove or promote",
	"endpoint": "status or health",
	"lease":    "grant, keep-alive, revoke, timetolive or list",
	"snapshot": "save or restore",
	"svc":      "list or watch",
	"topic":    "publish, tail, stats or retention",
	"alarm":    "list or disarm",
	"check":    "hash",
}

// tree is the command tree, for dispatch, help per command and shell
// completion (github.com/spf13/cobra). Each command parses its own flags
// with package flag (parse), as before: cobra's flags (spf13/pflag) do not
// take Go's single-dash long flags (-endpoints), which coordctl accepts.
func (c *cli) tree() *cobra.Command {
	root := &cobra.Command{Use: "coordctl", Short: "coordctl is a command-line client of coordkit's HTTP API, in the manner of etcdctl",
		SilenceErrors: true, SilenceUsage: true, CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			return fmt.Errorf("unknown command %q: see %q", args[0], "coordctl help")
		}}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	parents := map[string]*cobra.Command{}
	for word, list := range subcommands {
		parents[word] = &cobra.Command{Use: word, Short: word + " commands: " + list, Args: cobra.ArbitraryArgs,
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				switch {
				case len(args) == 0:
					return fmt.Errorf("%s needs a subcommand: %s", word, list)
				case args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
					return cmd.Help()
				}
				return fmt.Errorf("unknown command %q: want %s %s", word+" "+args[0], word, list)
			}}
		root.AddCommand(parents[word])
	}
	for _, cmd := range commands {
		words := strings.Fields(cmd.name)
		parent, use := root, cmd.usage
		if len(words) == 2 {
			parent, use = parents[words[0]], strings.TrimPrefix(cmd.usage, words[0]+" ")
		}
		parent.AddCommand(&cobra.Command{Use: use, Short: cmd.short,
			Long:               cmd.short + ".\n\nIts flags, and the global ones: coordctl " + cmd.name + " -h",
			DisableFlagParsing: true, Args: cobra.ArbitraryArgs,
			RunE: func(_ *cobra.Command, args []string) error { return cmd.run(c, args) }})
	}
	return root
}

func (c *cli) main(args []string) error {
	fs := flag.NewFlagSet("coordctl", flag.ContinueOnError)
	c.register(fs)
	if err := quietParse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
			return err
		}
		return fmt.Errorf("%v; see %q", err, "coordctl help")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		c.usage(c.stderr)
		return errors.New("no command given")
	}
	if rest[0] == "help" && len(rest) == 1 {
		c.usage(c.stdout)
		return nil
	}
	root := c.tree()
	root.SetArgs(rest)
	return root.Execute()
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: coordctl [--endpoints URLS] [-w simple|json|table] [--timeout D] COMMAND [flags] [args]")
	fmt.Fprintln(w, "\nCommands:")
	for _, cmd := range commands {
		fmt.Fprintln(w, "  "+cmd.usage)
	}
	fmt.Fprintln(w, "\n\"coordctl help COMMAND\" and \"coordctl COMMAND -h\" describe a command; \"coordctl completion bash|zsh|fish|powershell\"\nprints a shell completion script.")
	fmt.Fprintln(w, "\nGlobal flags (before the command or among its flags):")
	fs := flag.NewFlagSet("coordctl", flag.ContinueOnError)
	fs.SetOutput(w)
	g := c.globals
	g.register(fs)
	fs.PrintDefaults()
}

// parse parses a command's flags, which may be interleaved with its
// positional arguments, and checks that there are want of those. The global
// flags are accepted too.
func (c *cli) parse(fs *flag.FlagSet, usage string, args []string, want int) ([]string, error) {
	return c.parseN(fs, usage, args, want, want)
}

// parseN is parse for a command taking from least to most positional
// arguments; most < 0 means no limit.
func (c *cli) parseN(fs *flag.FlagSet, usage string, args []string, least, most int) ([]string, error) {
	c.register(fs)
	var pos []string
	// Everything after the first "--" is positional.
	for i, a := range args {
		if a == "--" {
			args, pos = args[:i], append(pos, args[i+1:]...)
			break
		}
	}
	var head []string
	for {
		if err := quietParse(fs, args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(c.stdout, "Usage: coordctl %s\n", usage)
				fs.SetOutput(c.stdout)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, fmt.Errorf("%v; usage: coordctl %s", err, usage)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		head = append(head, rest[0])
		args = rest[1:]
	}
	pos = append(head, pos...)
	switch {
	case least == most && len(pos) != least:
		return nil, fmt.Errorf("%s takes %d argument(s), got %d; usage: coordctl %s", fs.Name(), least, len(pos), usage)
	case len(pos) < least:
		return nil, fmt.Errorf("%s takes at least %d argument(s), got %d; usage: coordctl %s", fs.Name(), least, len(pos), usage)
	case most >= 0 && len(pos) > most:
		return nil, fmt.Errorf("%s takes at most %d argument(s), got %d; usage: coordctl %s", fs.Name(), most, len(pos), usage)
	}
	return pos, c.check()
}

// quietParse parses args with fs, leaving the reporting of errors and of
// -h to the caller, so that an error is printed once, as "Error: ...".
func quietParse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs.Parse(args)
}

// check validates the global flags once every flag set has been parsed.
func (c *cli) check() error {
	switch c.writeOut {
	case "simple", "json", "table":
	default:
		return fmt.Errorf("unknown output format %q: want simple, json or table", c.writeOut)
	}
	if c.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %v", c.timeout)
	}
	if err := c.credentials(); err != nil {
		return err
	}
	_, err := c.endpointList()
	return err
}

// endpointList parses --endpoints: a URL without a scheme gets http://.
func (c *cli) endpointList() ([]string, error) {
	var eps []string
	for _, e := range strings.Split(c.endpoints, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("bad endpoint %q: want http://host:port", e)
		}
		eps = append(eps, strings.TrimRight(e, "/"))
	}
	if len(eps) == 0 {
		return nil, errors.New("no endpoints given (--endpoints)")
	}
	return eps, nil
}
