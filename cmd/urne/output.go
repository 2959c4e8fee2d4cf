package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Output formats of -o.
const (
	formatText = "text"
	formatJSON = "json"
)

// exitError ends the command with a code after its result has been printed: a demo whose
// check found violations, a digest that differs. The message goes to stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// app holds what every command shares: where output goes and in which format.
type app struct {
	stdout, stderr io.Writer
	format         string
	// progressOn is true when stderr is a terminal: only then do long operations draw progress.
	progressOn bool

	mu      sync.Mutex
	emitted bool
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdout: stdout, stderr: stderr, format: formatText, progressOn: isTerminal(stderr)}
}

// isTerminal reports whether w is a character device (a terminal), without a terminal library.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (a *app) checkFormat() error {
	if a.format != formatText && a.format != formatJSON {
		return fmt.Errorf("output format %q: want text or json", a.format)
	}
	return nil
}

func (a *app) jsonOutput() bool { return a.format == formatJSON }

// emit prints a command's result: v as one JSON document with -o json, human otherwise.
// A command calls it once; a second call is a bug that would break the one-document rule.
func (a *app) emit(v any, human func(w io.Writer)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.emitted {
		return errors.New("internal error: a command printed two results")
	}
	a.emitted = true
	if a.jsonOutput() {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(a.stdout)
	return nil
}

// streaming marks the result as printed by a command that writes its text result as it
// arrives (a listing too long to gather first).
func (a *app) streaming() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.emitted = true
}

// finish turns a command's error into the exit code. Errors go to stderr; with -o json a
// command that printed nothing yet prints {"error": ...} so stdout still holds one document.
func (a *app) finish(err error) int {
	if err == nil {
		return 0
	}
	fprintf(a.stderr, "urne: %v\n", err)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jsonOutput() && !a.emitted {
		a.emitted = true
		enc := json.NewEncoder(a.stdout)
		_ = enc.Encode(map[string]string{"error": err.Error()})
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.code > 0 {
		return ee.code
	}
	return 1
}

// say prints a line of narration for long commands (demo, dev up): on stdout in text mode,
// on stderr with -o json so that stdout keeps its one document.
func (a *app) say(format string, args ...any) {
	w := a.stdout
	if a.jsonOutput() {
		w = a.stderr
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fprintf(w, format+"\n", args...)
}

// progress draws a transient status line on stderr, only when stderr is a terminal.
func (a *app) progress(format string, args ...any) {
	if !a.progressOn {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fprintf(a.stderr, "\r\033[K"+format, args...)
}

// progressDone ends a progress line.
func (a *app) progressDone() {
	if !a.progressOn {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fprintf(a.stderr, "\r\033[K")
}

// ticker calls fn every interval until the returned stop function is called, only when
// progress is shown.
func (a *app) ticker(interval time.Duration, fn func()) (stop func()) {
	if !a.progressOn {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(done); wg.Wait(); a.progressDone() }
}

// fprintf writes to a terminal or pipe; a failed write to stdout or stderr has nowhere to be reported.
func fprintf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

// table writes aligned columns; rows are tab-separated.
func table(w io.Writer, header string, rows []string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fprintf(tw, "%s\n", header)
	for _, r := range rows {
		fprintf(tw, "%s\n", r)
	}
	_ = tw.Flush()
}

// newServerLogger logs JSON lines to w at the configured level.
func newServerLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// millis renders a duration in milliseconds with one decimal, for latency columns.
func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
