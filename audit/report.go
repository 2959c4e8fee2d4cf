package audit

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText turns an export into the human-readable register: one line per entry, time,
// actor, action, object, outcome and detail, then a count.
func WriteText(w io.Writer, r *Reader) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Activity register of election %s\n\n", orDash(r.Header.Election))
	fmt.Fprintln(tw, "#\tTIME (UTC)\tACTOR\tACTION\tOBJECT\tOUTCOME\tDETAIL")
	var n uint64
	for {
		e, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n++
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, when(e),
			orDash(e.Actor), e.Action, orDash(e.Object), e.Outcome, describeExtras(e))
	}
	fmt.Fprintf(tw, "\n%d entries\n", n)
	return tw.Flush()
}

// describeExtras joins the detail, the connection and the stamp of an entry into one cell.
func describeExtras(e *Entry) string {
	var parts []string
	if e.Detail != "" {
		parts = append(parts, e.Detail)
	}
	switch {
	case e.Connection != nil:
		parts = append(parts, fmt.Sprintf("from %s at %s (kept %s)", e.Connection.IP,
			formatTime(e.Connection.ConnectedAt), e.Connection.Retention))
	case e.HasConnection:
		parts = append(parts, "connection details erased after retention")
	}
	if e.Stamp != nil {
		parts = append(parts, fmt.Sprintf("timestamp over entry %d by %s", e.Stamp.Seq, e.Stamp.Authority))
	}
	return strings.ReplaceAll(strings.Join(parts, "; "), "\t", " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, "\t", " ")
}

// when formats the entry's time; the bootstrap configuration entry has none.
func when(e *Entry) string {
	if e.Time == 0 {
		return "-"
	}
	return e.When().Format("2006-01-02 15:04:05.000")
}
