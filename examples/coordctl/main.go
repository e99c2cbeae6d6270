// Command coordctl is a command-line client of coordkit's HTTP API (package
// coord/httpapi), in the manner of etcdctl.
//
// Usage:
//
//	coordctl [global flags] COMMAND [flags] [args]
//
// Commands:
//
//	put KEY VALUE                              set KEY to VALUE
//	get KEY [--prefix] [--serializable] [--limit N]
//	                                           read KEY, or every key starting with it
//	del KEY [--prefix]                         delete KEY, or every key starting with it
//	member list                                list the cluster's members
//	member add NAME ADDR [--observer] [--force]
//	                                           add a member whose Raft address is ADDR
//	member remove NAME [--force]               remove a member
//	member promote NAME [--force]              turn an observer into a voter
//	endpoint status                            every endpoint's view of every shard
//	endpoint health                            check every endpoint's health
//
// Global flags, accepted before the command or among its flags:
//
//	--endpoints URLS   comma-separated http://host:port list (default
//	                   http://127.0.0.1:2379, or $COORDCTL_ENDPOINTS)
//	-w, --write-out F  output format: simple (default), json or table
//	--timeout D        bound on the whole command (default 5s)
//
// A command's flags may come before or after its arguments; "--" ends the
// flags, for a key or value that starts with "-":
//
//	coordctl put -- -k -v
//	coordctl get /config/ --prefix -w table
//	coordctl --endpoints http://10.0.0.1:2379,http://10.0.0.2:2379 member list -w table
//
// Commands other than endpoint status and health try the endpoints in order
// until one answers. A request moves on to the next endpoint when it could
// not connect; a read also moves on when the connection broke later, but a
// write then stops, since it may have been applied. endpoint status and
// endpoint health ask every endpoint.
//
// Output: simple prints plain text (get prints each key and then its value
// on lines of their own, as etcdctl does; bytes are printed as they are),
// json prints the API's response as received (keys and values in base64),
// table draws a table for get, member list and endpoint status and health,
// and prints as simple for the other commands.
//
// Errors go to standard error as "Error: <message>" and the exit status is 1.
//
// coordctl talks plain HTTP, or HTTPS with an https:// endpoint and the
// system's roots; the API has no authentication of its own (see
// coord/httpapi).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const (
	defaultEndpoints = "http://127.0.0.1:2379"
	defaultTimeout   = 5 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command, with args excluding the program name; it
// returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{
		stdout: stdout, stderr: stderr,
		globals: globals{endpoints: defaultEndpoints, writeOut: "simple", timeout: defaultTimeout},
	}
	if env := os.Getenv("COORDCTL_ENDPOINTS"); env != "" {
		c.endpoints = env
	}
	err := c.main(args)
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
}

type globals struct {
	endpoints string
	writeOut  string
	timeout   time.Duration
}

// register adds the global flags to fs, with their current values as
// defaults, so that a command's flag set accepts them too.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.endpoints, "endpoints", g.endpoints, "comma-separated `URLs` of the HTTP API (env COORDCTL_ENDPOINTS)")
	fs.StringVar(&g.writeOut, "w", g.writeOut, "output `format`: simple, json or table")
	fs.StringVar(&g.writeOut, "write-out", g.writeOut, "output `format`: simple, json or table")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound on the whole command")
}

type cli struct {
	globals
	stdout, stderr io.Writer
	transport      *http.Transport
}

type command struct {
	name  string // one or two words
	usage string
	run   func(c *cli, args []string) error
}

var commands = []command{
	{"put", "put KEY VALUE", (*cli).put},
	{"get", "get KEY [--prefix] [--serializable] [--limit N]", (*cli).get},
	{"del", "del KEY [--prefix]", (*cli).del},
	{"member list", "member list", (*cli).memberList},
	{"member add", "member add NAME ADDR [--observer] [--force]", (*cli).memberAdd},
	{"member remove", "member remove NAME [--force]", (*cli).memberRemove},
	{"member promote", "member promote NAME [--force]", (*cli).memberPromote},
	{"endpoint status", "endpoint status", (*cli).endpointStatus},
	{"endpoint health", "endpoint health", (*cli).endpointHealth},
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
	if rest[0] == "help" {
		c.usage(c.stdout)
		return nil
	}
	for _, cmd := range commands {
		words := strings.Fields(cmd.name)
		if len(rest) >= len(words) && strings.Join(rest[:len(words)], " ") == cmd.name {
			return cmd.run(c, rest[len(words):])
		}
	}
	subs := map[string]string{"member": "list, add, remove or promote", "endpoint": "status or health"}
	if want, ok := subs[rest[0]]; ok {
		if len(rest) == 1 {
			return fmt.Errorf("%s needs a subcommand: %s", rest[0], want)
		}
		return fmt.Errorf("unknown command %q: want %s %s", rest[0]+" "+rest[1], rest[0], want)
	}
	return fmt.Errorf("unknown command %q: see %q", rest[0], "coordctl help")
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: coordctl [--endpoints URLS] [-w simple|json|table] [--timeout D] COMMAND [flags] [args]")
	fmt.Fprintln(w, "\nCommands:")
	for _, cmd := range commands {
		fmt.Fprintln(w, "  "+cmd.usage)
	}
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
	if len(pos) != want {
		return nil, fmt.Errorf("%s takes %d argument(s), got %d; usage: coordctl %s", fs.Name(), want, len(pos), usage)
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
