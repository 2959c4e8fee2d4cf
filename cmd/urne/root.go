// Command urne is Urne's one binary: it runs a node, writes a cluster's keys and configuration,
// runs local clusters for demos and tests, and drives elections and operator tasks.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code. Tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newApp(stdout, stderr)
	root := a.rootCommand()
	// Errors cobra finds before it parses flags (an unknown command) must still honour -o json.
	a.format = outputFlag(args)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return a.finish(root.ExecuteContext(ctx))
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "urne",
		Short: "Urne: a replicated, encrypted runtime for online elections",
		Long: "Urne runs one election on its own Raft cluster spread over two datacenters and a\n" +
			"tiebreaker site, with every byte at rest encrypted and automatic failover.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return a.checkFormat()
		},
	}
	root.PersistentFlags().StringVarP(&a.format, "output", "o", formatText, "output format: text or json (one JSON document on stdout)")
	root.AddCommand(
		a.versionCommand(),
		a.clusterCommand(),
		a.serverCommand(),
		a.devCommand(),
		a.statusCommand(),
		a.electionCommand(),
		a.operatorCommand(),
		a.auditCommand(),
		a.integrityCommand(),
		a.backupCommand(),
		a.archiveCommand(),
		a.destructionCommand(),
		a.drillCommand(),
		a.chaosCommand(),
		a.benchCommand(),
		a.demoCommand(),
		a.keysCommand(),
		a.tallyCommand(),
		a.verifyCommand(),
	)
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := struct {
				Version string `json:"version"`
			}{node.Version}
			return a.emit(v, func(w io.Writer) { fprintf(w, "urne %s\n", node.Version) })
		},
	}
}

func (a *app) serverCommand() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "server --config FILE",
		Short: "Run one node until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := node.LoadConfig(configPath)
			if err != nil {
				return err
			}
			opts := node.Options{Logger: newServerLogger(a.stderr, cfg.LogLevel)}
			// The root context is cancelled by SIGINT and SIGTERM: node.Run then shuts down
			// gracefully (leadership handed over, stores closed).
			if err := node.Run(cmd.Context(), cfg, opts); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "node configuration file (node.json)")
	must(cmd.MarkFlagRequired("config"))
	return cmd
}

// outputFlag finds the value of -o/--output in args, the way the flag parser will.
func outputFlag(args []string) string {
	format := formatText
	for i, arg := range args {
		switch {
		case arg == "--":
			return format
		case arg == "-o" || arg == "--output":
			if i+1 < len(args) {
				format = args[i+1]
			}
		case strings.HasPrefix(arg, "--output="):
			format = strings.TrimPrefix(arg, "--output=")
		case strings.HasPrefix(arg, "-o") && !strings.HasPrefix(arg, "--"):
			format = strings.TrimPrefix(strings.TrimPrefix(arg, "-o"), "=")
		}
	}
	return format
}

// must panics on errors that only a programming mistake can cause (flag names).
func must(err error) {
	if err != nil {
		panic(err)
	}
}
