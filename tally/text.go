package tally

import (
	"fmt"
	"strings"
	"time"
)

// Text renders the minutes for people: French headings, as the minutes of a French election
// are read and archived. It is derived from the JSON; only the JSON is signed.
func (m *Minutes) Text() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("PROCÈS-VERBAL DE DÉPOUILLEMENT")
	w("==============================")
	w("")
	w("Élection : %s", electionTitle(m))
	w("Ouverture du scrutin : %s", frenchTime(m.OpenedAt))
	w("Clôture du scrutin : %s", frenchTime(m.ClosedAt))
	w("Dépouillement : %s", frenchTime(&m.TalliedAt))
	if m.Policy != "" {
		w("Règle d'accès à la clé de l'élection : %s", m.Policy)
	}
	if len(m.Fragments) > 0 {
		w("Clé reconstituée avec les fragments de : %s", strings.Join(m.Fragments, ", "))
	}
	if r := m.Result; r != nil {
		writeBox(w, r)
		for _, sc := range r.Scrutins {
			writeScrutin(w, sc)
		}
	}
	if obs := observations(m.Result); len(obs) > 0 {
		w("")
		w("Observations")
		for _, o := range obs {
			w("  - %s", o)
		}
	}
	w("")
	w("Signataires")
	for _, s := range m.Signatories {
		w("  - %s", signatoryLine(s))
	}
	return b.String()
}

func electionTitle(m *Minutes) string {
	if m.ElectionName == "" {
		return m.ElectionID
	}
	return fmt.Sprintf("%s (%s)", m.ElectionName, m.ElectionID)
}

func frenchTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "non renseigné"
	}
	return t.Format("02/01/2006 15:04:05 (UTC-07:00)")
}

func writeBox(w func(string, ...any), r *Result) {
	w("")
	w("Urne")
	w("  Bulletins dans l'urne : %d", r.Ballots)
	w("  Émargements : %d", r.Emargements)
	w("  Empreinte de l'urne (racine de Merkle des empreintes SHA-256) : %s", r.BoxDigest)
	w("  Bulletins non attribuables à un scrutin : %d", len(r.Rejected))
	for _, rj := range r.Rejected {
		w("    %s : %s", rj.Fingerprint, frenchReason(rj))
	}
}

func frenchReason(r Rejected) string {
	switch r.Reason {
	case ReasonUndecryptable:
		return "bulletin indéchiffrable (altéré)"
	case ReasonMalformedVote:
		return "vote mal formé"
	case ReasonUnknownScrutin:
		return "scrutin inconnu " + r.Scrutin
	}
	return "bulletin mal formé"
}

// observations are the anomalies of a result, in French (Anomalies gives them in English).
func observations(r *Result) []string {
	if r == nil {
		return nil
	}
	var out []string
	if r.Ballots != r.Emargements {
		out = append(out, fmt.Sprintf("l'urne contient %d bulletins mais la liste d'émargement compte %d entrées", r.Ballots, r.Emargements))
	}
	if n := len(r.Rejected); n > 0 {
		out = append(out, fmt.Sprintf("%d bulletin(s) non attribuable(s) à un scrutin (voir ci-dessus)", n))
	}
	return out
}

func writeScrutin(w func(string, ...any), sc ScrutinCount) {
	w("")
	title := sc.ID
	if sc.Name != "" {
		title = fmt.Sprintf("%s (%s)", sc.Name, sc.ID)
	}
	w("Scrutin : %s", title)
	w("  Votants : %d", sc.Ballots)
	w("  Bulletins blancs : %d", sc.Blank)
	w("  Bulletins nuls : %d", sc.Void)
	w("  Suffrages exprimés : %d", sc.Expressed)
	for _, l := range sc.Lists {
		name := l.ID
		if l.Name != "" {
			name = fmt.Sprintf("%s (%s)", l.Name, l.ID)
		}
		w("  Liste %s : %d voix (%s)", name, l.Votes, percent(l.Votes, sc.Expressed))
		for _, mk := range l.Marks {
			w("    candidat %s : %d", mk.Candidate, mk.Count)
		}
	}
}

// percent is votes/expressed with two decimals and a decimal comma, rounded half up in
// integer arithmetic so that every machine prints the same minutes.
func percent(votes, expressed int) string {
	if expressed == 0 {
		return "0,00 %"
	}
	bp := (int64(votes)*20000 + int64(expressed)) / (2 * int64(expressed))
	return fmt.Sprintf("%d,%02d %%", bp/100, bp%100)
}

func signatoryLine(s Signatory) string {
	parts := []string{s.Name}
	if s.FullName != "" {
		parts = append(parts, s.FullName)
	}
	if s.Role != "" {
		parts = append(parts, s.Role)
	}
	return strings.Join(parts, ", ")
}
