package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/urne-vote/urne/client"
)

// Example casts one ballot on the cluster whose folder `urne cluster init` wrote, with the
// credentials of the election app.
func Example() {
	cfg, cluster, err := client.LoadClusterDir("./election-cluster", "app")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	requestID := client.NewRequestID() // keep it with the voter's session to retry safely
	ballot := []byte("ciphertext produced by the voter's device")
	resp, err := c.CastWithRequestID(ctx, requestID, "v000001", ballot)
	switch {
	case err == nil:
		fmt.Printf("election %s: receipt %x\n", cluster.ElectionID, resp.GetReceipt().GetFingerprint())
	case errors.Is(err, client.ErrAlreadyVoted):
		fmt.Println("this voter has already voted")
	case errors.Is(err, client.ErrWrongPhase):
		fmt.Println("the election is not open")
	case errors.Is(err, client.ErrOutcomeUnknown):
		// The ballot may be in the box: cast again later with the same request id, which
		// returns the first receipt if it was recorded.
		fmt.Println("cast again with request id", requestID)
	default:
		log.Fatal(err)
	}
}
