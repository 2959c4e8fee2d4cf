// Package mailtest owns the SMTP server of tests: a real server (emersion/go-smtp) on
// loopback that keeps every message it receives.
package mailtest

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one email received.
type Message struct {
	From string
	To   []string
	Data string
}

// Server is a running SMTP server.
type Server struct {
	Addr string

	mu       sync.Mutex
	messages []Message
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{server: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Messages returns the messages received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Find returns the first message whose text contains every needle.
func (s *Server) Find(needles ...string) (Message, error) {
	for _, m := range s.Messages() {
		all := true
		for _, n := range needles {
			all = all && strings.Contains(m.Data, n)
		}
		if all {
			return m, nil
		}
	}
	return Message{}, fmt.Errorf("none of the %d messages received contains all of %q", len(s.Messages()), needles)
}

type session struct {
	server *Server
	msg    Message
}

func (s *session) Reset()        { s.msg = Message{} }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.msg.From = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.Data = string(b)
	s.server.mu.Lock()
	s.server.messages = append(s.server.messages, s.msg)
	s.server.mu.Unlock()
	return nil
}
