// The webtransport-go v0.12 peer client: dials with webtransport.Transport and runs the shared
// scenarios of ../echo. v0.12 refuses a server that does not advertise the reset_stream_at QUIC
// transport parameter (draft-ietf-quic-reliable-stream-reset): see README, "How it is built".
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"

	"wtpeer/echo"
)

func main() {
	echo.Main(func(ctx context.Context, url string, tlsConf *tls.Config) (int, *echo.Session, error) {
		// The library's default QUIC config (datagrams, stream reset partial delivery on), and its
		// default dial, wrapped only to keep the connection for echo.Session.ConnClosed.
		var qconn *quic.Conn
		d := &webtransport.Transport{
			TLSClientConfig: tlsConf,
			DialAddr: func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
				c, err := quic.DialAddrEarly(ctx, addr, tlsConf, conf)
				qconn = c
				return c, err
			},
		}
		rsp, s, err := d.Dial(ctx, url, nil)
		status := 0
		if rsp != nil {
			status = rsp.StatusCode
		}
		if err != nil {
			return status, nil, err
		}
		return status, &echo.Session{
			OpenBidi:        func(ctx context.Context) (io.ReadWriteCloser, error) { return s.OpenStreamSync(ctx) },
			OpenUni:         func(ctx context.Context) (io.WriteCloser, error) { return s.OpenUniStreamSync(ctx) },
			AcceptUni:       func(ctx context.Context) (io.Reader, error) { return s.AcceptUniStream(ctx) },
			AcceptBidi:      func(ctx context.Context) (io.ReadWriteCloser, error) { return s.AcceptStream(ctx) },
			SendDatagram:    s.SendDatagram,
			ReceiveDatagram: s.ReceiveDatagram,
			Close: func(code uint32, reason string) error {
				return s.CloseWithError(webtransport.SessionErrorCode(code), reason)
			},
			CloseOf: func(err error) (uint32, string, bool, bool) {
				var se *webtransport.SessionError
				if !errors.As(err, &se) {
					return 0, "", false, false
				}
				return uint32(se.ErrorCode), se.Message, se.Remote, true
			},
			ConnClosed: qconn.Context().Done(),
		}, nil
	})
}
