package supervisor

import (
	"bytes"
	"context"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Lines longer than this are cut (a minified bundle printed by a build
// must not become a 10 MB message).
const maxLine = 8 << 10

// shipper batches log lines to the control plane: a batch goes out every
// 250 ms or at 200 lines. While disconnected it keeps the newest 10 000
// lines and drops older ones.
type shipper struct {
	send   SendFunc
	logger *zap.Logger

	mu      sync.Mutex
	lines   []wsproto.LogLine
	dropped int
	kick    chan struct{}
}

func newShipper(send SendFunc, logger *zap.Logger) *shipper {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &shipper{send: send, logger: logger, kick: make(chan struct{}, 1)}
}

func (sh *shipper) add(l wsproto.LogLine) {
	if len(l.Line) > maxLine {
		l.Line = l.Line[:maxLine]
		for !utf8.ValidString(l.Line) && len(l.Line) > 0 {
			l.Line = l.Line[:len(l.Line)-1]
		}
		l.Line += " …"
	}
	sh.mu.Lock()
	sh.lines = append(sh.lines, l)
	if over := len(sh.lines) - 10000; over > 0 {
		sh.lines = append(sh.lines[:0], sh.lines[over:]...)
		sh.dropped += over
	}
	n := len(sh.lines)
	sh.mu.Unlock()
	if n >= 200 {
		select {
		case sh.kick <- struct{}{}:
		default:
		}
	}
}

func (sh *shipper) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sh.flush(context.Background())
			return
		case <-t.C:
		case <-sh.kick:
		}
		sh.flush(ctx)
	}
}

// flush sends what is buffered; on failure the lines stay for the next try.
func (sh *shipper) flush(ctx context.Context) {
	for {
		sh.mu.Lock()
		n := min(len(sh.lines), 500)
		if n == 0 {
			sh.mu.Unlock()
			return
		}
		batch := append([]wsproto.LogLine(nil), sh.lines[:n]...)
		dropped := sh.dropped
		sh.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := sh.send(sctx, wsproto.TypeLogs, wsproto.Logs{Lines: batch})
		cancel()
		if err != nil {
			return
		}
		sh.mu.Lock()
		sh.lines = sh.lines[min(n, len(sh.lines)):]
		sh.dropped -= dropped
		sh.mu.Unlock()
		if dropped > 0 {
			sh.logger.Warn("supervisor: log lines dropped while disconnected", zap.Int("lines", dropped))
		}
	}
}

// writer turns a byte stream (build output) into lines of one deployment.
func (sh *shipper) writer(appID, deploymentID int64, stream string) *lineWriter {
	return &lineWriter{sh: sh, app: appID, dep: deploymentID, stream: stream}
}

type lineWriter struct {
	sh       *shipper
	app, dep int64
	stream   string
	buf      []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) emit(b []byte) {
	line := string(bytes.TrimRight(b, "\r"))
	if line == "" {
		return
	}
	w.sh.add(wsproto.LogLine{AppID: w.app, DeploymentID: w.dep, TS: time.Now().UnixNano(), Stream: w.stream, Line: line})
}

// Close emits a last unterminated line.
func (w *lineWriter) Close() error {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	return nil
}
