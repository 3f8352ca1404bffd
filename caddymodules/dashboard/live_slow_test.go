package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wisehosting/wisehosting/internal/logbus"
)

// A live log client that stops reading is dropped: the stream neither
// holds the lines in memory nor slows the bus. The client's socket takes
// 4 KiB at a time, so the server's writes block once its own buffer is
// full; the stream must then end on its own.
func TestLiveLogsDropASlowClient(t *testing.T) {
	f := startOps(t)
	bus := f.bus()
	u := "ws" + strings.TrimPrefix(f.base, "http") + fmt.Sprintf("/api/apps/%d/logs/live", f.appA)
	h := http.Header{}
	h.Set("Origin", f.base)
	h.Set("Cookie", "wh_session="+f.alice.cookie)
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return serr
		}}
		return nd.DialContext(ctx, network, addr)
	}}
	conn, resp, err := d.Dial(u, h)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	defer conn.Close()

	// 8,000 lines of 2 KB (16 MB) while the client reads nothing.
	text := strings.Repeat("x", 2000)
	for i := 0; i < 80; i++ {
		batch := make([]logbus.Line, 100)
		for j := range batch {
			batch[j] = logbus.Line{AppID: f.appA, Stream: "stdout", Text: text}
		}
		bus.Publish(batch...)
		time.Sleep(5 * time.Millisecond)
	}
	// The server gives up within its write deadline (10 s); afterwards the
	// client reads what was buffered and then finds the stream closed,
	// not a stream that goes on.
	time.Sleep(12 * time.Second)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	lines := 0
	for {
		var fr frame
		err := conn.ReadJSON(&fr)
		if err == nil {
			lines += len(fr.Lines)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the stream of a client that stopped reading was still open (%d lines read)", lines)
		}
		if websocket.IsCloseError(err, 4401, 4404) {
			t.Fatalf("closed for another reason: %v", err)
		}
		t.Logf("dropped after %d of 8000 lines: %v", lines, err)
		if lines >= 8000 {
			t.Fatalf("every line was delivered: the client was not slow enough to test anything")
		}
		return
	}
}
