package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/client"
)

// Defaults of `urne backup schedule`.
const (
	defaultBackupEvery = time.Hour
	defaultBackupKeep  = 24
	archiveSuffix      = ".urnebak"
)

// scheduleFlags are the inputs of `urne backup schedule`.
type scheduleFlags struct {
	dir   string
	every time.Duration
	keep  int
	count int
}

// scheduleReport is the JSON of `urne backup schedule` once it stops.
type scheduleReport struct {
	Dir     string       `json:"dir"`
	Saved   []backupView `json:"saved"`
	Failed  []string     `json:"failed"`
	Removed []string     `json:"removed"`
}

func (a *app) backupScheduleCommand() *cobra.Command {
	f := &scheduleFlags{}
	var conn *connFlags
	var sf *secretFlags
	cmd := &cobra.Command{
		Use:   "schedule --cluster DIR --dir BACKUPDIR [--every 1h] [--keep N]",
		Short: "Save a backup into a folder at a fixed interval, keeping the newest N",
		Long: "Run in the foreground (under systemd, or a container of its own), save a backup into\n" +
			"BACKUPDIR every --every, named urne-<election>-<UTC time>" + archiveSuffix + ", and after each\n" +
			"success remove the oldest archives of this election beyond --keep. A failed backup is\n" +
			"reported and retried at the next tick; it never removes an older archive. It stops on\n" +
			"SIGINT/SIGTERM or after --count backups, prints what it did, and exits non-zero if the\n" +
			"last attempt failed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.every <= 0 || f.keep < 1 || f.dir == "" {
				return errors.New("--dir is required, --every must be positive and --keep at least 1")
			}
			secret, err := sf.secret(conn.cluster)
			if err != nil {
				return err
			}
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			r, lastErr := a.schedule(cmd.Context(), c, t, secret, f)
			if err := a.emit(r, func(w io.Writer) {
				fprintf(w, "%d backups saved, %d failed, %d old archives removed\n", len(r.Saved), len(r.Failed), len(r.Removed))
			}); err != nil {
				return err
			}
			if lastErr != nil {
				return &exitError{code: 1, msg: "the last scheduled backup failed: " + lastErr.Error()}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.dir, "dir", "", "folder the archives go to")
	cmd.Flags().DurationVar(&f.every, "every", defaultBackupEvery, "interval between two backups")
	cmd.Flags().IntVar(&f.keep, "keep", defaultBackupKeep, "archives of this election to keep")
	cmd.Flags().IntVar(&f.count, "count", 0, "stop after this many backups (0: run until stopped)")
	conn = addConnFlags(cmd, roleOperator)
	sf = addSecretFlags(cmd)
	return cmd
}

// schedule runs the backup loop; it returns what it did and the error of the last attempt.
func (a *app) schedule(ctx context.Context, c *client.Client, t *clusterTarget, secret *backup.Secret, f *scheduleFlags) (*scheduleReport, error) {
	r := &scheduleReport{Dir: f.dir, Saved: []backupView{}, Failed: []string{}, Removed: []string{}}
	var lastErr error
	for i := 0; f.count == 0 || i < f.count; i++ {
		if i > 0 && !waitUntil(ctx, time.Now().Add(f.every), nil) {
			break
		}
		lastErr = a.scheduledBackup(ctx, c, t, secret, f, r)
		if ctx.Err() != nil {
			break
		}
	}
	return r, lastErr
}

func (a *app) scheduledBackup(ctx context.Context, c *client.Client, t *clusterTarget, secret *backup.Secret, f *scheduleFlags, r *scheduleReport) error {
	election := "cluster"
	if t.file != nil {
		election = t.file.ElectionID
	}
	name := fmt.Sprintf("urne-%s-%s%s", election, time.Now().UTC().Format("20060102T150405.000Z"), archiveSuffix)
	v, err := a.saveBackup(ctx, c, t, secret, filepath.Join(f.dir, name))
	if err != nil {
		r.Failed = append(r.Failed, fmt.Sprintf("%s: %v", time.Now().UTC().Format(time.RFC3339), err))
		a.say("backup failed: %v", err)
		return err
	}
	r.Saved = append(r.Saved, v)
	a.say("saved %s: index %d, %s", v.File, v.Index, humanBytes(uint64(v.Bytes)))
	removed, err := pruneArchives(f.dir, "urne-"+election+"-", f.keep)
	r.Removed = append(r.Removed, removed...)
	for _, p := range removed {
		a.say("removed %s (keeping the newest %d)", p, f.keep)
	}
	return err
}

// pruneArchives removes the oldest archives named prefix*suffix in dir beyond keep. Names
// carry the UTC time, so their order is their age.
func pruneArchives(dir, prefix string, keep int) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, prefix+"*"+archiveSuffix))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches)
	var removed []string
	for len(matches) > keep {
		if err := os.Remove(matches[0]); err != nil {
			return removed, err
		}
		removed = append(removed, matches[0])
		matches = matches[1:]
	}
	return removed, nil
}
