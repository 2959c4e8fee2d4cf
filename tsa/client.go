package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/digitorus/timestamp"
)

// DefaultTimeout bounds one request to one authority.
const DefaultTimeout = 10 * time.Second

// maxResponseSize bounds what is read from an authority.
const maxResponseSize = MaxTokenSize + 4<<10

// Authority is one RFC 3161 timestamp authority: where to ask, and the certificate its
// tokens must verify against.
type Authority struct {
	Name string
	URL  string
	Cert *x509.Certificate
}

// Client asks authorities for tokens, in order, until one gives a token that verifies.
type Client struct {
	Authorities []Authority
	// Timeout bounds one request to one authority; DefaultTimeout when zero.
	Timeout time.Duration
	// HTTP is the client used; http.DefaultClient when nil.
	HTTP *http.Client
}

// Stamped is a token obtained from one authority.
type Stamped struct {
	Authority string
	Token     []byte
	Info      *Token
}

// Stamp obtains a token over a SHA-256 digest. Authorities are tried in order; the error,
// when all fail, wraps ErrNoAuthority and says why each one failed.
func (c *Client) Stamp(ctx context.Context, digest []byte) (*Stamped, error) {
	if len(c.Authorities) == 0 {
		return nil, fmt.Errorf("%w: no authority is configured", ErrNoAuthority)
	}
	var errs []error
	for _, a := range c.Authorities {
		s, err := c.stampWith(ctx, a, digest)
		if err == nil {
			return s, nil
		}
		errs = append(errs, fmt.Errorf("authority %s (%s): %w", a.Name, a.URL, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrNoAuthority, errors.Join(errs...))
}

func (c *Client) stampWith(ctx context.Context, a Authority, digest []byte) (*Stamped, error) {
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	req, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest, Certificates: true, Nonce: nonce}).Marshal()
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	body, err := c.post(ctx, a.URL, req)
	if err != nil {
		return nil, err
	}
	token, err := tokenOf(body)
	if err != nil {
		return nil, err
	}
	info, err := Verify(token, digest, []*x509.Certificate{a.Cert})
	if err != nil {
		return nil, err
	}
	if info.Nonce == nil || info.Nonce.Cmp(nonce) != 0 {
		return nil, fmt.Errorf("%w: the token does not echo the request's nonce (a replayed answer?)", ErrBadToken)
	}
	return &Stamped{Authority: a.Name, Token: token, Info: info}, nil
}

// post sends one request, bounded by the client's timeout.
func (c *Client) post(ctx context.Context, url string, query []byte) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(query))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	return body, nil
}

// tokenOf extracts the token from a DER TimeStampResp, refusing an answer that grants none.
func tokenOf(resp []byte) (token []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			token, err = nil, fmt.Errorf("%w: %v", ErrBadToken, r)
		}
	}()
	ts, err := timestamp.ParseResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: the authority's answer: %v", ErrBadToken, err)
	}
	return ts.RawToken, nil
}
