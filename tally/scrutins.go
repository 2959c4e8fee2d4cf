package tally

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CheckScrutins compares, scrutin by scrutin, the ballots counted with the émargement entries
// the cluster exported, records each scrutin's entries in res, and returns ErrMismatch naming
// every scrutin that differs (a scrutin with entries but no ballot included). The result
// stays usable so the minutes can record the discrepancy.
func CheckScrutins(res *Result, emargements map[string]int) error {
	left := maps.Clone(emargements)
	var bad []string
	for i := range res.Scrutins {
		sc := &res.Scrutins[i]
		n := left[sc.ID]
		delete(left, sc.ID)
		sc.Emargements = &n
		if n != sc.Ballots {
			bad = append(bad, fmt.Sprintf("%s (%d ballots, %d émargements)", sc.ID, sc.Ballots, n))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(left)) {
		if left[id] != 0 {
			n := left[id]
			res.Scrutins = append(res.Scrutins, ScrutinCount{ID: id, Emargements: &n})
			bad = append(bad, fmt.Sprintf("%s (0 ballots, %d émargements)", id, n))
		}
	}
	if len(bad) > 0 {
		return errorf(ErrMismatch, "ballots and émargement entries differ in scrutin %s", strings.Join(bad, ", "))
	}
	return nil
}
