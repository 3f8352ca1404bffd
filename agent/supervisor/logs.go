//go:build remote && containers_image_openpgp

package supervisor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/logline"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Batches close at this many lines or bytes of text (a frame stays far
// below the 1 MiB frame limit).
const (
	batchLines = 1000
	batchBytes = 256 << 10
)

// spoolConfig bounds what the shipper holds while the control plane has
// not confirmed it.
type spoolConfig struct {
	// Dir holds batches beyond MemoryLines, and every unconfirmed batch
	// when the agent stops; "" keeps everything in memory.
	Dir string
	// MemoryLines is how many lines wait in memory. Default 10 000.
	MemoryLines int
	// DiskBytes bounds Dir. Default 256 MiB.
	DiskBytes int64
	// AckTimeout is how long a batch waits for its ack before it is sent
	// again. Default 20s.
	AckTimeout time.Duration
	// Window is how many batches wait for acks at once. Default 4.
	Window int
	// RetryDelay is the pause before a batch the control plane could not
	// take is sent again. Default 1s.
	RetryDelay time.Duration
}

func (c *spoolConfig) defaults() {
	if c.MemoryLines <= 0 {
		c.MemoryLines = 10_000
	}
	if c.DiskBytes <= 0 {
		c.DiskBytes = 256 << 20
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 20 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 4
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
}

// batch is lines sent together under one id until the control plane
// acknowledges that it committed them.
type batch struct {
	id        string
	lines     []wsproto.LogLine // nil while only on disk
	n         int
	file      string // spool file, "" when only in memory
	size      int64  // bytes of file
	sentAt    time.Time
	notBefore time.Time
}

// shipper ships log lines to the control plane: lines are batched (every
// 250 ms or batchLines), each batch is sent with an id and kept until the
// control plane acknowledges it after its lines are committed, and sent
// again after a refusal, a timeout or a reconnect. Up to MemoryLines wait
// in memory; beyond that batches move to the spool directory, bounded by
// DiskBytes, past which the oldest batches are dropped (counted and
// logged). Spooled batches survive an agent restart.
type shipper struct {
	cfg    spoolConfig
	send   SendFunc
	logger *zap.Logger

	mu        sync.Mutex
	open      []wsproto.LogLine
	openBytes int
	q         []*batch
	memLines  int // lines held in memory (open and batches)
	diskBytes int64
	seq       uint64
	dropped   int
	kick      chan struct{}
	// cursors is, per container, where the lines added end; it is
	// written next to the spool whenever a batch is, so a new process
	// follows each container from where the spool ends.
	cursors map[string]logCursor
}

// logCursor is where a container's shipped output ends: every line
// before TS (Unix nanoseconds) and the first N lines at TS, in the order
// of the container's log. Podman may report whole seconds, so many lines
// share a time and a time alone does not say where to resume.
type logCursor struct {
	TS int64 `json:"ts"`
	N  int   `json:"n"`
}

// UnmarshalJSON also reads the earlier form, the time of the last line
// alone (every line at that time shipped).
func (c *logCursor) UnmarshalJSON(b []byte) error {
	var ts int64
	if json.Unmarshal(b, &ts) == nil {
		*c = logCursor{TS: ts, N: math.MaxInt32}
		return nil
	}
	type plain logCursor
	return json.Unmarshal(b, (*plain)(c))
}

// advance moves the cursor past a line at ts that follows it in the log.
// A line timed before the cursor (the clock went back) leaves it.
func (c *logCursor) advance(ts int64) {
	switch {
	case ts > c.TS:
		*c = logCursor{TS: ts, N: 1}
	case ts == c.TS:
		c.N++
	}
}

// resume tells, for the lines of a log read again from just before the
// cursor's time, which ones the cursor says were shipped.
type resume struct {
	at   logCursor
	seen int
}

// shipped reports whether the next line, at ts, was shipped already.
func (r *resume) shipped(ts int64) bool {
	switch {
	case ts < r.at.TS:
		return true
	case ts == r.at.TS:
		r.seen++
		return r.seen <= r.at.N
	}
	return false
}

// cursorFile holds the cursors in the spool directory.
const cursorFile = "cursors.json"

func newShipper(send SendFunc, cfg spoolConfig, logger *zap.Logger) *shipper {
	cfg.defaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	sh := &shipper{cfg: cfg, send: send, logger: logger, kick: make(chan struct{}, 1), cursors: map[string]logCursor{}}
	if cfg.Dir != "" {
		if err := sh.load(); err != nil {
			logger.Warn("supervisor: log spool unusable; unconfirmed log lines are kept in memory only", zap.String("dir", cfg.Dir), zap.Error(err))
			sh.cfg.Dir = ""
		}
	}
	return sh
}

// load queues the batches a previous run left in the spool directory.
func (sh *shipper) load() error {
	if err := os.MkdirAll(sh.cfg.Dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(sh.cfg.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries { // sorted by name: by sequence
		seq, id, n, ok := parseSpoolName(e.Name())
		info, err := e.Info()
		if !ok || err != nil || !info.Mode().IsRegular() {
			continue
		}
		sh.q = append(sh.q, &batch{id: id, n: n, file: filepath.Join(sh.cfg.Dir, e.Name()), size: info.Size()})
		sh.diskBytes += info.Size()
		sh.seq = max(sh.seq, seq)
	}
	if len(sh.q) > 0 {
		sh.logger.Info("supervisor: resending spooled log batches", zap.Int("batches", len(sh.q)))
	}
	if body, err := os.ReadFile(filepath.Join(sh.cfg.Dir, cursorFile)); err == nil {
		if err := json.Unmarshal(body, &sh.cursors); err != nil || sh.cursors == nil {
			sh.cursors = map[string]logCursor{}
		}
	}
	return nil
}

// durable reports whether unconfirmed lines are kept on disk.
func (sh *shipper) durable() bool { return sh.cfg.Dir != "" }

// resumeAt returns where the lines of a container that were queued end
// (queued by this process, or by an earlier one and written down).
func (sh *shipper) resumeAt(container string) (logCursor, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ts, ok := sh.cursors[container]
	return ts, ok
}

// forgetCursor drops the cursor of a removed container.
func (sh *shipper) forgetCursor(container string) {
	sh.mu.Lock()
	delete(sh.cursors, container)
	sh.mu.Unlock()
}

// saveCursors writes the cursors next to the spool (mu held); a batch
// written before them holds every line up to them.
func (sh *shipper) saveCursors() error {
	body, err := json.Marshal(sh.cursors)
	if err != nil {
		return err
	}
	name := filepath.Join(sh.cfg.Dir, cursorFile)
	if err := os.WriteFile(name+".tmp", body, 0o600); err != nil {
		return err
	}
	return os.Rename(name+".tmp", name)
}

func spoolName(seq uint64, id string, n int) string {
	return fmt.Sprintf("%020d-%s-%d.logs", seq, id, n)
}

func parseSpoolName(name string) (seq uint64, id string, n int, ok bool) {
	parts := strings.Split(strings.TrimSuffix(name, ".logs"), "-")
	if len(parts) != 3 || !strings.HasSuffix(name, ".logs") {
		return 0, "", 0, false
	}
	seq, err1 := strconv.ParseUint(parts[0], 10, 64)
	n, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || parts[1] == "" {
		return 0, "", 0, false
	}
	return seq, parts[1], n, true
}

func newBatchID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// add queues one line, made storable here already: valid UTF-8, no NUL,
// cut on a character boundary.
func (sh *shipper) add(l wsproto.LogLine) { sh.addFrom("", l) }

// addFrom queues a line a container printed and moves its cursor (with
// the line, so a cursor written down never passes a line not in a batch).
// A container's lines come in the order of its log, from one reader at a
// time.
func (sh *shipper) addFrom(container string, l wsproto.LogLine) {
	l.Line = logline.Clean(l.Line, logline.MaxBytes)
	l.Stream = logline.Stream(l.Stream)
	sh.mu.Lock()
	if container != "" {
		c := sh.cursors[container]
		c.advance(l.TS)
		sh.cursors[container] = c
	}
	sh.open = append(sh.open, l)
	sh.openBytes += len(l.Line)
	sh.memLines++
	sealed := len(sh.open) >= batchLines || sh.openBytes >= batchBytes || sh.memLines > sh.cfg.MemoryLines
	if sealed {
		sh.seal()
	}
	sh.bound()
	sh.mu.Unlock()
	if sealed {
		sh.wake()
	}
}

func (sh *shipper) wake() {
	select {
	case sh.kick <- struct{}{}:
	default:
	}
}

// seal closes the open batch (mu held).
func (sh *shipper) seal() {
	if len(sh.open) == 0 {
		return
	}
	b := &batch{id: newBatchID(), lines: sh.open, n: len(sh.open)}
	sh.q = append(sh.q, b)
	sh.open, sh.openBytes = nil, 0
	if sh.cfg.Dir != "" {
		// On disk at once (its lines stay in memory too): a batch
		// survives the agent being killed, not only stopped.
		err := sh.save(b)
		if err == nil {
			err = sh.saveCursors()
		}
		if err != nil {
			sh.logger.Warn("supervisor: writing log spool", zap.Error(err))
		}
	}
}

// bound keeps memory and disk within their limits (mu held): the newest
// batches in memory move to disk; past the disk bound, or without a
// spool, the oldest batches are dropped.
func (sh *shipper) bound() {
	for i := len(sh.q) - 1; sh.memLines > sh.cfg.MemoryLines && i >= 0 && sh.cfg.Dir != ""; i-- {
		b := sh.q[i]
		if b.lines == nil || !b.sentAt.IsZero() {
			continue
		}
		if err := sh.spill(b); err != nil {
			sh.logger.Warn("supervisor: writing log spool", zap.Error(err))
			break
		}
	}
	for sh.memLines > sh.cfg.MemoryLines || sh.diskBytes > sh.cfg.DiskBytes {
		i := slices.IndexFunc(sh.q, func(b *batch) bool {
			if sh.memLines > sh.cfg.MemoryLines && b.lines == nil {
				return false
			}
			return b.sentAt.IsZero()
		})
		if i < 0 {
			return
		}
		b := sh.q[i]
		sh.forget(i)
		sh.dropped += b.n
	}
}

// spill writes b to the spool and frees its lines (mu held).
func (sh *shipper) spill(b *batch) error {
	if err := sh.save(b); err != nil {
		return err
	}
	sh.memLines -= len(b.lines)
	b.lines = nil
	return nil
}

// save writes b to the spool unless it is there (mu held).
func (sh *shipper) save(b *batch) error {
	if b.file == "" {
		sh.seq++
		body, err := json.Marshal(wsproto.Logs{Batch: b.id, Lines: b.lines})
		if err != nil {
			return err
		}
		name := filepath.Join(sh.cfg.Dir, spoolName(sh.seq, b.id, b.n))
		tmp := name + ".tmp"
		if err := os.WriteFile(tmp, body, 0o600); err != nil {
			os.Remove(tmp)
			return err
		}
		if err := os.Rename(tmp, name); err != nil {
			os.Remove(tmp)
			return err
		}
		b.file, b.size = name, int64(len(body))
		sh.diskBytes += b.size
	}
	return nil
}

// forget removes q[i] with its spool file (mu held).
func (sh *shipper) forget(i int) {
	b := sh.q[i]
	sh.q = slices.Delete(sh.q, i, i+1)
	sh.memLines -= len(b.lines)
	if b.file != "" {
		os.Remove(b.file)
		sh.diskBytes -= b.size
	}
}

func (sh *shipper) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sh.persist()
			return
		case <-t.C:
		case <-sh.kick:
		}
		sh.flush(ctx)
	}
}

// persist writes every unconfirmed batch to the spool (agent stopping).
func (sh *shipper) persist() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.seal()
	if sh.cfg.Dir == "" {
		return
	}
	for _, b := range sh.q {
		if b.lines != nil {
			if err := sh.spill(b); err != nil {
				sh.logger.Warn("supervisor: writing log spool at stop", zap.Error(err))
				return
			}
		}
	}
}

// flush closes the open batch and sends every batch that is due, up to the
// window of batches waiting for acks. It does not wait for acks.
func (sh *shipper) flush(ctx context.Context) {
	sh.mu.Lock()
	if len(sh.q) < sh.cfg.Window {
		// While batches wait for acks, new lines gather into one larger
		// batch instead of many small ones.
		sh.seal()
	}
	if sh.dropped > 0 {
		sh.logger.Warn("supervisor: log lines dropped: the control plane did not confirm them and the buffer is full",
			zap.Int("lines", sh.dropped), zap.Int("memory_lines", sh.cfg.MemoryLines), zap.Int64("spool_bytes", sh.cfg.DiskBytes))
		sh.dropped = 0
	}
	sh.mu.Unlock()
	for ctx.Err() == nil {
		b, lines := sh.next()
		if b == nil {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := sh.send(sctx, wsproto.TypeLogs, wsproto.Logs{Batch: b.id, Lines: lines})
		cancel()
		if err != nil {
			sh.mu.Lock()
			b.sentAt, b.notBefore = time.Time{}, time.Now().Add(sh.cfg.RetryDelay)
			sh.mu.Unlock()
			return
		}
	}
}

// next picks the oldest batch due for sending and marks it sent.
func (sh *shipper) next() (*batch, []wsproto.LogLine) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := time.Now()
	waiting := 0
	for _, b := range sh.q {
		if !b.sentAt.IsZero() && now.Sub(b.sentAt) < sh.cfg.AckTimeout {
			waiting++
		}
	}
	for i := 0; i < len(sh.q) && waiting < sh.cfg.Window; i++ {
		b := sh.q[i]
		if (!b.sentAt.IsZero() && now.Sub(b.sentAt) < sh.cfg.AckTimeout) || now.Before(b.notBefore) {
			continue
		}
		lines := b.lines
		if lines == nil {
			body, err := os.ReadFile(b.file)
			var msg wsproto.Logs
			if err == nil {
				err = json.Unmarshal(body, &msg)
			}
			if err != nil {
				sh.logger.Warn("supervisor: unreadable log spool file dropped", zap.String("file", b.file), zap.Error(err))
				sh.forget(i)
				i--
				continue
			}
			lines = msg.Lines
		}
		b.sentAt = now
		return b, lines
	}
	return nil, nil
}

// HandleLogsAck settles a batch the control plane answered.
func (s *Supervisor) HandleLogsAck(_ context.Context, p json.RawMessage) error {
	var a wsproto.LogsAck
	if err := json.Unmarshal(p, &a); err != nil {
		return fmt.Errorf("decoding logs ack: %w", err)
	}
	s.logs.acked(a)
	return nil
}

func (sh *shipper) acked(a wsproto.LogsAck) {
	sh.mu.Lock()
	i := slices.IndexFunc(sh.q, func(b *batch) bool { return b.id == a.Batch })
	if i >= 0 {
		if a.Retry {
			sh.q[i].sentAt, sh.q[i].notBefore = time.Time{}, time.Now().Add(sh.cfg.RetryDelay)
		} else {
			sh.forget(i)
		}
	}
	sh.mu.Unlock()
	if i >= 0 && !a.Retry {
		sh.wake()
	}
}

// pending is how many lines wait for the control plane's ack.
func (sh *shipper) pending() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := len(sh.open)
	for _, b := range sh.q {
		n += b.n
	}
	return n
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
	if len(w.buf) > logline.MaxBytes {
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
