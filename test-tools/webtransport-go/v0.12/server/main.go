// The webtransport-go v0.12 peer server: an independent server for the tests of this package's
// WebTransport *client*. v0.12 is the webtransport-go that speaks draft-15/16 with WebTransport
// flow control (SETTINGS_WT_INITIAL_MAX_*, the WT_MAX_* capsules): a client tested against it
// meets a second, independent implementation of those limits, not only its own server's.
//
// It does what __test__/support/echo-server.mjs does, on webtransport.Server: a client bidi
// stream is echoed back on itself, then finished; a client uni stream is read whole, then sent
// back on a server-opened uni stream; every datagram is sent back as it came. A bidi stream whose
// first bytes are a command line makes the server act instead:
//
//	open-bidi / open-uni            a server stream carrying 'server bidi' / 'server uni'
//	close <code> <reason>           CLOSE_WEBTRANSPORT_SESSION with that code and reason
//	reset <code>                    RESET_STREAM on this stream's send side
//	stop <code>                     STOP_SENDING on its receive side, then its send side finished
//	burst[-reuse] <count> <size>    datagrams numbered in their first 4 bytes, then 'sent'
//	drain                           answers 'drain unsupported' (v0.12 cannot send a drain)
//
// Usage:
//
//	wtgo-server [--cert F --key F] [--port N] [--protocols a,b]
//	            [--wt-max-streams N] [--wt-max-uni-streams N] [--wt-max-data BYTES]
//
// Listens on 127.0.0.1 only; without --cert/--key it makes a self-signed ECDSA P-256 certificate
// valid 10 days. --protocols feeds webtransport.Server.ApplicationProtocols (the library answers
// wt-protocol). The --wt-max-* flags are the WebTransport flow-control limits it announces (0:
// not announced); flow control is on for a session only when the client announces limits too.
// A request for /status/<code> (a 3-digit status) is answered with that status and no session.
//
// It prints one JSON line per event, as tools/wt-server does:
// {"ready":true,"port":N,"pid":N,"certHash":"<sha256 hex>",...} once listening;
// {"session":{...}} per session (path, offered and chosen protocol, :protocol token, the client's
// WebTransport flow-control settings); {"sessionClosed":{"path","code","reason","remote","via"}};
// {"streamError":{...}} for a client reset or stop seen while echoing; {"upgradeFailed":{...}}.
// It exits when stdin reaches its end or on SIGTERM/SIGINT.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

// The WebTransport flow-control settings (draft-ietf-webtrans-http3 §11.2), to report what the
// client announced.
const (
	settingMaxData        = 0x2b61
	settingMaxStreamsUni  = 0x2b64
	settingMaxStreamsBidi = 0x2b65
)

// uniLimit bounds what a uni stream may carry, since it is buffered whole before it is echoed.
const uniLimit = 64 << 20

var stdout = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

func emit(v any) {
	stdout.Lock()
	defer stdout.Unlock()
	_ = stdout.enc.Encode(v)
}

type connKey struct{}

func main() {
	certFile := flag.String("cert", "", "PEM certificate (with --key); default: a self-signed one")
	keyFile := flag.String("key", "", "PEM private key")
	port := flag.Int("port", 0, "UDP port on 127.0.0.1 (0: any)")
	protocols := flag.String("protocols", "", "comma-separated subprotocols the server supports")
	maxStreams := flag.Int64("wt-max-streams", 100, "SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI (0: not sent)")
	maxUniStreams := flag.Int64("wt-max-uni-streams", 100, "SETTINGS_WT_INITIAL_MAX_STREAMS_UNI (0: not sent)")
	maxData := flag.Int64("wt-max-data", 16<<20, "SETTINGS_WT_INITIAL_MAX_DATA (0: not sent)")
	flag.Parse()
	if flag.NArg() > 0 || (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(os.Stderr, "usage: wtgo-server [--cert F --key F] [--port N] [--protocols a,b] [--wt-max-streams N] [--wt-max-uni-streams N] [--wt-max-data BYTES]")
		os.Exit(2)
	}
	cert, err := certificate(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wtgo-server:", err)
		os.Exit(1)
	}
	hash := sha256.Sum256(cert.Certificate[0])
	var supported []string
	for _, p := range strings.Split(*protocols, ",") {
		if p = strings.TrimSpace(p); p != "" {
			supported = append(supported, p)
		}
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: *port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "wtgo-server:", err)
		os.Exit(1)
	}

	config := &webtransport.Config{MaxIncomingStreams: *maxStreams, MaxIncomingUniStreams: *maxUniStreams, MaxIncomingData: *maxData}
	h3 := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
		// What the library's own example uses; Serve turns both on anyway.
		QUICConfig: &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
		// The QUIC connection, for the close that ended a session (ConfigureHTTP3Server keeps this
		// and adds its own).
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
	server := &webtransport.Server{
		H3:                   h3,
		Config:               config,
		ApplicationProtocols: supported,
		// A test client may send any Origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	h3.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(server, config, w, r) })
	go func() {
		err := server.Serve(udp)
		fmt.Fprintln(os.Stderr, "wtgo-server: serve:", err)
		os.Exit(1)
	}()

	emit(map[string]any{
		"ready": true, "port": udp.LocalAddr().(*net.UDPAddr).Port, "pid": os.Getpid(),
		"certHash": hex.EncodeToString(hash[:]), "library": "webtransport-go " + depVersion(),
		"protocols":   supported,
		"flowControl": map[string]int64{"maxStreams": *maxStreams, "maxUniStreams": *maxUniStreams, "maxData": *maxData},
	})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	os.Exit(0)
}

var statusPath = regexp.MustCompile(`^/status/([1-5][0-9][0-9])$`)

func handle(server *webtransport.Server, config *webtransport.Config, w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if m := statusPath.FindStringSubmatch(path); m != nil {
		code, _ := strconv.Atoi(m[1])
		w.WriteHeader(code)
		return
	}
	sess, err := server.Upgrade(w, r)
	if err != nil {
		emit(map[string]any{"upgradeFailed": map[string]any{"path": path, "method": r.Method, "protocolToken": r.Proto, "error": err.Error()}})
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	conn, _ := r.Context().Value(connKey{}).(*quic.Conn)
	// Upgrade waited for the client's SETTINGS.
	clientFC := map[string]any{"maxStreams": nil, "maxUniStreams": nil, "maxData": nil}
	flowControl := false
	if s, ok := w.(http3.Settingser); ok {
		other := s.Settings().Other
		for name, id := range map[string]uint64{"maxStreams": settingMaxStreamsBidi, "maxUniStreams": settingMaxStreamsUni, "maxData": settingMaxData} {
			if v, ok := other[id]; ok {
				clientFC[name] = v
				flowControl = flowControl || v > 0
			}
		}
	}
	// As webtransport.Config.sessionFlowControl decides: on when both ends announce a limit.
	flowControl = flowControl && (config.MaxIncomingStreams > 0 || config.MaxIncomingUniStreams > 0 || config.MaxIncomingData > 0)
	var offered any
	if v := r.Header.Values("Wt-Available-Protocols"); len(v) > 0 {
		offered = strings.Join(v, ", ")
	}
	var chosen any
	if p := sess.SessionState().ApplicationProtocol; p != "" {
		chosen = p
	}
	// Whether the client's QUIC sent the reset_stream_at transport parameter: v0.12's server
	// requires it of its own QUIC only (ServeQUICConn checks .Local), so a client without it,
	// such as any quinn-based one, gets sessions anyway.
	var resetStreamAt any
	if conn != nil {
		resetStreamAt = conn.ConnectionState().SupportsStreamResetPartialDelivery.Remote
	}
	emit(map[string]any{"session": map[string]any{
		"path": path, "availableProtocols": offered, "protocol": chosen, "protocolToken": r.Proto,
		"origin": nilIfEmpty(r.Header.Get("Origin")), "clientFlowControl": clientFC, "flowControl": flowControl,
		"clientResetStreamAt": resetStreamAt,
	}})
	go serve(sess, conn, path)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func serve(sess *webtransport.Session, conn *quic.Conn, path string) {
	ctx := context.Background()
	go func() {
		for {
			d, err := sess.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			_ = sess.SendDatagram(d)
		}
	}()
	go func() {
		for {
			str, err := sess.AcceptUniStream(ctx)
			if err != nil {
				return
			}
			go echoUni(sess, str)
		}
	}()
	for {
		str, err := sess.AcceptStream(ctx)
		if err != nil {
			reportEnd(path, err, conn)
			return
		}
		go handleBidi(sess, str, path)
	}
}

func reportEnd(path string, err error, conn *quic.Conn) {
	end := map[string]any{"path": path}
	var se *webtransport.SessionError
	if errors.As(err, &se) {
		end["code"], end["reason"], end["remote"], end["via"] = uint32(se.ErrorCode), se.Message, se.Remote, "capsule"
		emit(map[string]any{"sessionClosed": end})
		return
	}
	// The session saw its CONNECT stream fail; the QUIC connection's close, if that is why, says
	// with which code. It is closed by then, or about to be.
	var cause error
	if conn != nil {
		select {
		case <-conn.Context().Done():
			cause = context.Cause(conn.Context())
		case <-time.After(500 * time.Millisecond):
		}
	}
	end["error"] = err.Error()
	var ae *quic.ApplicationError
	if errors.As(cause, &ae) {
		end["code"], end["reason"], end["remote"], end["via"] = uint64(ae.ErrorCode), ae.ErrorMessage, ae.Remote, "connection-close"
	} else {
		end["code"], end["reason"], end["remote"], end["via"] = nil, nil, "unknown", "error"
		if cause != nil {
			end["quicError"] = cause.Error()
		}
	}
	emit(map[string]any{"sessionClosed": end})
}

func reportStreamError(path, kind string, err error) {
	var se *webtransport.StreamError
	var code any
	if errors.As(err, &se) {
		if !se.Remote {
			return
		}
		code = uint32(se.ErrorCode)
	}
	emit(map[string]any{"streamError": map[string]any{"path": path, "kind": kind, "code": code, "error": err.Error()}})
}

var (
	closeCommand = regexp.MustCompile(`^close ([0-9]+)(?: ([^\n]*))?\n`)
	codeCommand  = regexp.MustCompile(`^(reset|stop) ([0-9]+)\n`)
	burstCommand = regexp.MustCompile(`^burst(-reuse)? ([0-9]+) ([0-9]+)\n`)
)

// drain reads a stream to its end: webtransport-go counts a stream against the session's
// incoming stream limit until both of its sides are done.
func drain(r io.Reader) {
	go func() { _, _ = io.Copy(io.Discard, r) }()
}

func handleBidi(sess *webtransport.Session, str *webtransport.Stream, path string) {
	buf := make([]byte, 64<<10)
	n, err := str.Read(buf)
	if n == 0 {
		if errors.Is(err, io.EOF) {
			_ = str.Close()
		} else if err != nil {
			reportStreamError(path, "read", err)
			str.CancelWrite(0)
		}
		return
	}
	head := buf[:n]
	ctx := context.Background()
	switch {
	case bytes.HasPrefix(head, []byte("open-bidi\n")):
		if s, err := sess.OpenStreamSync(ctx); err == nil {
			drain(s)
			_, _ = s.Write([]byte("server bidi"))
			_ = s.Close()
		}
		drain(str)
		_ = str.Close()
		return
	case bytes.HasPrefix(head, []byte("open-uni\n")):
		if s, err := sess.OpenUniStreamSync(ctx); err == nil {
			_, _ = s.Write([]byte("server uni"))
			_ = s.Close()
		}
		drain(str)
		_ = str.Close()
		return
	case bytes.HasPrefix(head, []byte("drain\n")):
		drain(str)
		_, _ = str.Write([]byte("drain unsupported"))
		_ = str.Close()
		return
	}
	if m := closeCommand.FindSubmatch(head); m != nil {
		if code, err := strconv.ParseUint(string(m[1]), 10, 32); err == nil {
			_ = sess.CloseWithError(webtransport.SessionErrorCode(code), string(m[2]))
			return
		}
	}
	if m := codeCommand.FindSubmatch(head); m != nil {
		if code, err := strconv.ParseUint(string(m[2]), 10, 32); err == nil {
			if string(m[1]) == "reset" {
				str.CancelWrite(webtransport.StreamErrorCode(code))
				drain(str)
			} else {
				str.CancelRead(webtransport.StreamErrorCode(code))
				_ = str.Close()
			}
			return
		}
	}
	if m := burstCommand.FindSubmatch(head); m != nil {
		count, err1 := strconv.ParseUint(string(m[2]), 10, 32)
		size, err2 := strconv.ParseUint(string(m[3]), 10, 32)
		if err1 == nil && err2 == nil && count <= 100_000 && size >= 4 && size <= 65_535 {
			datagram := make([]byte, size)
			for i := range uint32(count) {
				binary.BigEndian.PutUint32(datagram, i)
				_ = sess.SendDatagram(datagram)
			}
			drain(str)
			_, _ = str.Write([]byte("sent"))
			_ = str.Close()
			return
		}
	}
	// An echo: what came first, then the rest as it comes.
	for {
		if _, werr := str.Write(buf[:n]); werr != nil {
			reportStreamError(path, "write", werr)
			str.CancelRead(0)
			return
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			reportStreamError(path, "read", err)
			str.CancelWrite(0)
			return
		}
		n, err = str.Read(buf)
	}
	_ = str.Close()
}

func echoUni(sess *webtransport.Session, str *webtransport.ReceiveStream) {
	data, err := io.ReadAll(io.LimitReader(str, uniLimit+1))
	if err != nil {
		return
	}
	if len(data) > uniLimit {
		str.CancelRead(0)
		return
	}
	out, err := sess.OpenUniStreamSync(context.Background())
	if err != nil {
		return
	}
	_, _ = out.Write(data)
	_ = out.Close()
}

// certificate loads the PEM pair, or makes what certificate-hash pinning accepts: ECDSA P-256,
// valid for at most 14 days (10 here, from an hour ago).
func certificate(certFile, keyFile string) (tls.Certificate, error) {
	if certFile != "" {
		return tls.LoadX509KeyPair(certFile, keyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now().Add(-time.Hour)
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// depVersion is the webtransport-go version this binary was built with, so that the ready line
// says which library answered.
func depVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "github.com/quic-go/webtransport-go" {
				return m.Version
			}
		}
	}
	return "(unknown)"
}
