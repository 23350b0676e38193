// Package echo runs one scenario against the test echo server (__test__/support/echo-server.mjs)
// through a webtransport-go client and prints one JSON object as its last stdout line; the exit
// code is 0 only when the scenario passed. Each version module (../v0.11, ../v0.12) dials with its
// own webtransport-go and adapts the session to Session: the scenarios are written once, so the
// versions differ only in what their library does.
//
//	wtgo-client --url URL --cert-hash HEX [--timeout-ms N] SCENARIO [ARGS]
//
//	bidi-echo <bytes>           a client bidi stream, echoed back on itself
//	uni-echo <bytes>            a client uni stream, echoed back on a server-opened uni stream
//	datagrams <count>           distinct datagrams, each echoed (lost ones are resent, 10 rounds)
//	client-close <code> <text>  the client closes the session (CLOSE_WEBTRANSPORT_SESSION)
//	server-close <code> <text>  the client asks the server to close; reports what arrived
//
// The echo scenarios end with a clean close (code 0); a close that does not return in time fails
// the run, since webtransport-go waits for the server to end the CONNECT stream.
package echo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Session is what the scenarios use of a webtransport-go session. The libraries' method sets
// match across versions, but their stream types belong to each module, hence functions.
type Session struct {
	OpenBidi func(context.Context) (io.ReadWriteCloser, error)
	OpenUni  func(context.Context) (io.WriteCloser, error)
	// AcceptUni waits for a server-opened uni stream.
	AcceptUni func(context.Context) (io.Reader, error)
	// AcceptBidi waits for a server-opened bidi stream; once the session ends it returns why.
	AcceptBidi      func(context.Context) (io.ReadWriteCloser, error)
	SendDatagram    func([]byte) error
	ReceiveDatagram func(context.Context) ([]byte, error)
	// Close sends CLOSE_WEBTRANSPORT_SESSION and returns once the server ended the CONNECT stream.
	Close func(code uint32, reason string) error
	// CloseOf reads a session-closed error: the code and reason, and whether the peer closed.
	CloseOf func(error) (code uint32, reason string, remote bool, ok bool)
	// ConnClosed is done once the QUIC connection is closed and its CONNECTION_CLOSE sent. The
	// library closes the connection when the session ends, from a goroutine of its own: a run
	// waits for that before it exits, or the exit could beat the packet and leave the server to
	// find out at its idle timeout, which no long-lived client would do.
	ConnClosed <-chan struct{}
}

// Dial opens a session; status is the CONNECT response's (0 when none arrived).
type Dial func(ctx context.Context, url string, tlsConf *tls.Config) (status int, s *Session, err error)

// Main parses the command line, runs the scenario and exits.
func Main(dial Dial) {
	url := flag.String("url", "", "https URL of the echo server")
	certHash := flag.String("cert-hash", "", "hex SHA-256 of the server's DER certificate (pinned)")
	timeoutMs := flag.Int("timeout-ms", 20000, "bound for the whole run")
	flag.Parse()
	out := map[string]any{"ok": false, "go": runtime.Version()}
	for _, dep := range buildDeps() {
		out[dep[0]] = dep[1]
	}
	args := flag.Args()
	if len(args) == 0 || *url == "" || *certHash == "" {
		finish(out, errors.New("usage: --url URL --cert-hash HEX [--timeout-ms N] SCENARIO [ARGS]"))
	}
	out["scenario"] = args[0]
	tlsConf, err := pinnedTLS(*certHash)
	if err != nil {
		finish(out, err)
	}
	timeout := time.Duration(*timeoutMs) * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	// out is written by the run and read here only after the run returned, or never (timeout).
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() { done <- run(ctx, dial, *url, tlsConf, args, out, &mu) }()
	select {
	case err = <-done:
	case <-time.After(timeout + 2*time.Second):
		// A blocking read or close that ignores ctx: report where it hung instead of hanging.
		mu.Lock()
		err = fmt.Errorf("timed out after %v at stage %v", timeout, out["stage"])
	}
	finish(out, err)
}

func run(ctx context.Context, dial Dial, url string, tlsConf *tls.Config, args []string, out map[string]any, mu *sync.Mutex) error {
	set := func(k string, v any) { mu.Lock(); out[k] = v; mu.Unlock() }
	set("stage", "dial")
	status, s, err := dial(ctx, url, tlsConf)
	set("status", status)
	if err != nil {
		set("errorType", fmt.Sprintf("%T", err))
		return err
	}
	set("stage", "scenario")
	result := map[string]any{}
	err = scenario(ctx, s, args, result)
	mu.Lock()
	for k, v := range result {
		out[k] = v
	}
	mu.Unlock()
	if err != nil {
		return err
	}
	if args[0] != "client-close" && args[0] != "server-close" {
		set("stage", "close")
		if err := s.Close(0, ""); err != nil {
			return fmt.Errorf("closing the session: %w", err)
		}
		set("closed", true)
	}
	set("stage", "connection close")
	select {
	case <-s.ConnClosed:
		return nil
	case <-time.After(2 * time.Second):
		return errors.New("the QUIC connection was still open 2 s after the session ended")
	}
}

func scenario(ctx context.Context, s *Session, args []string, out map[string]any) error {
	intArg := func(i int) (int, error) {
		if len(args) <= i {
			return 0, fmt.Errorf("%s: missing argument %d", args[0], i)
		}
		return strconv.Atoi(args[i])
	}
	switch args[0] {
	case "bidi-echo", "uni-echo":
		n, err := intArg(1)
		if err != nil {
			return err
		}
		if args[0] == "bidi-echo" {
			return bidiEcho(ctx, s, n, out)
		}
		return uniEcho(ctx, s, n, out)
	case "datagrams":
		n, err := intArg(1)
		if err != nil {
			return err
		}
		return datagrams(ctx, s, n, out)
	case "client-close", "server-close":
		code, err := intArg(1)
		if err != nil {
			return err
		}
		reason := ""
		if len(args) > 2 {
			reason = args[2]
		}
		if args[0] == "client-close" {
			return clientClose(ctx, s, uint32(code), reason, out)
		}
		return serverClose(ctx, s, uint32(code), reason, out)
	}
	return fmt.Errorf("unknown scenario %q", args[0])
}

// pattern is n bytes that differ by position and seed, so a shifted or mixed-up echo shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31+i>>8) ^ seed
	}
	return b
}

func compare(sent, received []byte, out map[string]any) error {
	out["bytes"] = len(sent)
	out["received"] = len(received)
	out["match"] = bytes.Equal(sent, received)
	if !bytes.Equal(sent, received) {
		return fmt.Errorf("echo differs: sent %d bytes, received %d", len(sent), len(received))
	}
	return nil
}

func bidiEcho(ctx context.Context, s *Session, n int, out map[string]any) error {
	str, err := s.OpenBidi(ctx)
	if err != nil {
		return fmt.Errorf("opening a bidi stream: %w", err)
	}
	payload := pattern(n, 1)
	// Written while the echo is read: the server echoes as it reads, so the two go together.
	wrote := make(chan error, 1)
	go func() {
		_, err := str.Write(payload)
		if err == nil {
			err = str.Close()
		}
		wrote <- err
	}()
	received, err := io.ReadAll(str)
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-wrote; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return compare(payload, received, out)
}

func uniEcho(ctx context.Context, s *Session, n int, out map[string]any) error {
	type accepted struct {
		r   io.Reader
		err error
	}
	incoming := make(chan accepted, 1)
	go func() {
		r, err := s.AcceptUni(ctx)
		incoming <- accepted{r, err}
	}()
	w, err := s.OpenUni(ctx)
	if err != nil {
		return fmt.Errorf("opening a uni stream: %w", err)
	}
	payload := pattern(n, 2)
	if _, err := w.Write(payload); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("finishing the uni stream: %w", err)
	}
	in := <-incoming
	if in.err != nil {
		return fmt.Errorf("accepting the server's uni stream: %w", in.err)
	}
	received, err := io.ReadAll(in.r)
	if err != nil {
		return fmt.Errorf("reading the server's uni stream: %w", err)
	}
	return compare(payload, received, out)
}

func datagrams(ctx context.Context, s *Session, count int, out map[string]any) error {
	body := func(i int) []byte { return fmt.Appendf(nil, "datagram-%04d-%s", i, bytes.Repeat([]byte{'x'}, 100)) }
	var mu sync.Mutex
	got := make(map[int]bool)
	malformed := 0
	arrived := make(chan struct{}, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		for {
			d, err := s.ReceiveDatagram(readCtx)
			if err != nil {
				return
			}
			var i int
			_, scanErr := fmt.Sscanf(string(d), "datagram-%04d-", &i)
			mu.Lock()
			if scanErr != nil || i < 0 || i >= count || !bytes.Equal(d, body(i)) {
				malformed++
			} else {
				got[i] = true
			}
			mu.Unlock()
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	}()
	// quic-go's HTTP/3 layer keeps at most 32 received datagrams per session (streamDatagramQueueLen
	// in http3/state_tracking_stream.go) and drops the rest: echoes of a burst of 100 come back
	// faster than the reader takes them, even on loopback. Resend the missing ones, 10 rounds at most.
	sent, rounds := 0, 0
	for rounds < 10 {
		mu.Lock()
		missing := []int{}
		for i := range count {
			if !got[i] {
				missing = append(missing, i)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		rounds++
		for _, i := range missing {
			if err := s.SendDatagram(body(i)); err != nil {
				return fmt.Errorf("sending datagram %d: %w", i, err)
			}
			sent++
		}
		wait := time.After(500 * time.Millisecond)
	waiting:
		for {
			select {
			case <-arrived:
				mu.Lock()
				all := len(got) == count
				mu.Unlock()
				if all {
					break waiting
				}
			case <-wait:
				break waiting
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	out["count"] = count
	out["sent"] = sent
	out["rounds"] = rounds
	out["received"] = len(got)
	out["malformed"] = malformed
	if len(got) != count || malformed != 0 {
		return fmt.Errorf("%d of %d datagrams echoed, %d malformed", len(got), count, malformed)
	}
	return nil
}

func clientClose(ctx context.Context, s *Session, code uint32, reason string, out map[string]any) error {
	// An echo first, so the session is in use on both sides when it is closed.
	if err := bidiEcho(ctx, s, 64, map[string]any{}); err != nil {
		return fmt.Errorf("echo before closing: %w", err)
	}
	started := time.Now()
	if err := s.Close(code, reason); err != nil {
		return fmt.Errorf("closing the session: %w", err)
	}
	out["code"] = code
	out["reason"] = reason
	out["closeMs"] = time.Since(started).Milliseconds()
	return nil
}

func serverClose(ctx context.Context, s *Session, code uint32, reason string, out map[string]any) error {
	str, err := s.OpenBidi(ctx)
	if err != nil {
		return fmt.Errorf("opening a bidi stream: %w", err)
	}
	if _, err := fmt.Fprintf(str, "close %d %s\n", code, reason); err != nil {
		return fmt.Errorf("writing the close command: %w", err)
	}
	// The server opens no stream: this returns when the session ends, with the reason why.
	_, err = s.AcceptBidi(ctx)
	if err == nil {
		return errors.New("the server opened a stream instead of closing the session")
	}
	gotCode, gotReason, remote, ok := s.CloseOf(err)
	out["sessionError"] = err.Error()
	if !ok {
		return fmt.Errorf("the session ended without a session close: %w", err)
	}
	out["remote"] = remote
	out["code"] = gotCode
	out["reason"] = gotReason
	if !remote || gotCode != code || gotReason != reason {
		return fmt.Errorf("expected a remote close %d %q, got %d %q (remote %v)", code, reason, gotCode, gotReason, remote)
	}
	return nil
}

// pinnedTLS trusts exactly the certificate whose SHA-256 is hexHash, as a browser's
// serverCertificateHashes does: the chain check is off, the hash check below replaces it.
func pinnedTLS(hexHash string) (*tls.Config, error) {
	want, err := hex.DecodeString(hexHash)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("--cert-hash must be %d hex bytes", sha256.Size)
	}
	return &tls.Config{
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the server sent no certificate")
			}
			if got := sha256.Sum256(raw[0]); !bytes.Equal(got[:], want) {
				return fmt.Errorf("certificate hash mismatch: got %x", got)
			}
			return nil
		},
	}, nil
}

// buildDeps reports the webtransport-go and quic-go versions this binary was built with, so a
// result says which library it speaks for.
func buildDeps() [][2]string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	var deps [][2]string
	for _, m := range info.Deps {
		switch m.Path {
		case "github.com/quic-go/webtransport-go":
			deps = append(deps, [2]string{"webtransportGo", m.Version})
		case "github.com/quic-go/quic-go":
			deps = append(deps, [2]string{"quicGo", m.Version})
		}
	}
	return deps
}

func finish(out map[string]any, err error) {
	if err != nil {
		out["error"] = err.Error()
	} else {
		out["ok"] = true
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}
