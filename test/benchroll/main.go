// Command benchroll writes a synthetic prepared voter roll for the import benchmark: N voters
// with the ids the load generator casts for (v000001...), distinct names and dates of birth, and secret_bcrypt hashes at the given cost.
// Hashing a million secrets would take a day of CPU, so -distinct hashes are computed and
// reused: the cluster cannot tell, and the import does the same work per voter.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/node"
)

func main() {
	voters := flag.Int("voters", 1_000_000, "voters to write")
	distinct := flag.Int("distinct", 32, "distinct bcrypt hashes to compute and reuse")
	cost := flag.Int("cost", 10, "bcrypt cost")
	out := flag.String("out", "roll.prepared.csv", "file to write")
	flag.Parse()
	if err := run(*voters, *distinct, *cost, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchroll:", err)
		os.Exit(1)
	}
}

func run(voters, distinct, cost int, out string) error {
	hashes := make([][]byte, max(distinct, 1))
	for i := range hashes {
		h, err := node.PrepareSecret(fmt.Sprintf("secret-%06d", i), cost)
		if err != nil {
			return err
		}
		hashes[i] = h
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "voter_id,name,email,date_of_birth,secret_bcrypt,composante,college,secteur")
	for i := range voters {
		id := workload.VoterID(workload.DefaultVoterPrefix, i+1)
		fmt.Fprintf(w, "%s,Voter %d,%s@example.org,19%02d-%02d-%02d,%s,IUT,%c,Nord\n",
			id, i, id, 50+i%50, 1+i%12, 1+i%28, hashes[i%len(hashes)], "ABC"[i%3])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
