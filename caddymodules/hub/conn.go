package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// conn is one worker's connection.
type conn struct {
	h        *Handler
	id       int64
	name     string
	worker   workers.Worker // the row when the connection was opened
	key      wsproto.Key    // session key
	ws       *websocket.Conn
	tokenExp time.Time
	remote   string
	via      string

	send  chan []byte
	seq   atomic.Uint64 // outbound sequence
	in    wsproto.Window
	dedup *wsproto.Dedup

	closeOnce sync.Once
	done      chan struct{}
	reason    atomic.Value // string

	lastSeen time.Time // read pump only
}

var errSlowConsumer = errors.New("worker is not reading: send queue full, disconnected")

func (c *conn) enqueue(msgType string, payload []byte) error {
	env, err := wsproto.Seal(c.key, msgType, c.seq.Add(1), time.Now(), json.RawMessage(payload))
	if err != nil {
		return err
	}
	frame, _ := json.Marshal(env)
	select {
	case <-c.done:
		return errNotConnected
	default:
	}
	select {
	case c.send <- frame:
		return nil
	default:
		c.close("slow consumer: send queue full")
		return errSlowConsumer
	}
}

func (c *conn) close(reason string) {
	c.closeOnce.Do(func() {
		c.reason.Store(reason)
		close(c.done)
		msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(reason, 100))
		c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.ws.Close()
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// handshake sends the challenge and waits for the signed hello. Only a
// hello that verifies under the session key registers the connection (and
// closes an older one of the same worker); anything else closes it, and it
// has then been sent nothing but the challenge.
func (c *conn) handshake(serverNonce string) {
	fail := func(reason string) {
		c.h.logger.Warn("hub: handshake failed, connection not registered", zap.Int64("worker", c.id),
			zap.String("name", c.name), zap.String("remote", c.remote), zap.String("reason", reason))
		c.close("handshake failed: " + reason)
	}
	env, err := wsproto.Seal(c.key, wsproto.TypeChallenge, c.seq.Add(1), time.Now(), wsproto.Challenge{Nonce: serverNonce})
	if err != nil {
		fail(err.Error())
		return
	}
	frame, _ := json.Marshal(env)
	c.ws.SetWriteDeadline(time.Now().Add(time.Duration(c.h.WriteTimeout)))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		fail("writing the challenge: " + err.Error())
		return
	}
	c.ws.SetReadLimit(c.h.MaxFrameBytes)
	c.ws.SetReadDeadline(time.Now().Add(time.Duration(c.h.HandshakeTimeout)))
	kind, frame, err := c.ws.ReadMessage()
	if err != nil {
		fail("no hello: " + err.Error())
		return
	}
	if kind != websocket.TextMessage {
		fail("binary frame instead of the hello")
		return
	}
	hello, err := wsproto.Open(c.key, &c.in, frame, time.Now())
	if err != nil {
		fail("hello: " + err.Error())
		return
	}
	if hello.T != wsproto.TypeHello {
		fail("first frame is " + hello.T + ", not the hello")
		return
	}
	if old := reg.add(c); old != nil {
		c.h.logger.Warn("hub: worker proved its key on a new connection, closed the previous one",
			zap.Int64("worker", c.id), zap.String("name", c.name), zap.String("remote", c.remote), zap.String("previous_remote", old.remote))
	}
	c.h.logger.Info(fmt.Sprintf("hub: worker %d (%s) connected via %s", c.id, c.name, c.via), zap.String("remote", c.remote))
	go c.writePump()
	go c.readPump(hello)
}

func (c *conn) readPump(hello *wsproto.Envelope) {
	defer func() {
		c.close("read pump ended")
		reg.remove(c)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		workers.Seen(ctx, c.h.wh.Pool(), c.id)
		cancel()
		reason, _ := c.reason.Load().(string)
		c.h.logger.Info("hub: worker disconnected", zap.Int64("worker", c.id), zap.String("name", c.name), zap.String("reason", reason))
	}()
	ping := time.Duration(c.h.PingInterval)
	c.ws.SetReadDeadline(time.Now().Add(2 * ping))
	c.ws.SetPongHandler(func(string) error {
		c.ws.SetReadDeadline(time.Now().Add(2 * ping))
		c.heartbeat() // an idle worker's pongs are its heartbeat
		return nil
	})
	c.dedup.First(hello.I)
	c.handle(hello)
	for {
		kind, frame, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.h.logger.Warn("hub: frame too large, closing", zap.Int64("worker", c.id), zap.Int64("limit", c.h.MaxFrameBytes))
				c.close("frame too large")
			} else if _, ok := c.reason.Load().(string); !ok {
				c.reason.Store(err.Error())
			}
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(2 * ping))
		if kind != websocket.TextMessage {
			c.reject("binary frames are not part of the protocol")
			return
		}
		env, err := wsproto.Open(c.key, &c.in, frame, time.Now())
		if err != nil {
			c.reject(err.Error())
			return
		}
		if !c.dedup.First(env.I) {
			continue // redelivered
		}
		c.handle(env)
	}
}

// reject closes the connection over a bad frame, with a logged reason.
func (c *conn) reject(reason string) {
	c.h.logger.Warn("hub: rejected frame, closing connection", zap.Int64("worker", c.id), zap.String("name", c.name), zap.String("reason", reason))
	c.close("rejected frame: " + reason)
}

// heartbeat records that the worker is alive, at most every 10 seconds
// (read pump only).
func (c *conn) heartbeat() {
	if time.Since(c.lastSeen) < 10*time.Second {
		return
	}
	c.lastSeen = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := workers.Seen(ctx, c.h.wh.Pool(), c.id); err != nil {
		c.h.logger.Warn("hub: recording heartbeat", zap.Int64("worker", c.id), zap.Error(err))
	}
}

func (c *conn) handle(env *wsproto.Envelope) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.heartbeat()
	switch env.T {
	case wsproto.TypePing:
		c.enqueue(wsproto.TypePong, env.P)
		return
	case wsproto.TypePong:
		return
	case wsproto.TypeHello:
		var hello wsproto.Hello
		if err := json.Unmarshal(env.P, &hello); err != nil {
			c.reject("hello: " + err.Error())
			return
		}
		if d := workers.Disagreement(c.worker, &hello); d != "" {
			c.h.logger.Warn("hub: hello disagrees with the operator's placement; ignored",
				zap.Int64("worker", c.id), zap.String("name", c.name), zap.String("hello", d))
		}
		if err := workers.Connected(ctx, c.h.wh.Pool(), c.id, &hello); err != nil {
			c.h.logger.Error("hub: recording hello", zap.Int64("worker", c.id), zap.Error(err))
			c.retry(env.T)
			return
		}
	}
	handled, err := c.h.wh.Workers().Dispatch(ctx, c.id, env.T, env.P)
	if err != nil {
		c.h.logger.Warn("hub: handling message", zap.Int64("worker", c.id), zap.String("type", env.T), zap.Error(err))
		c.retry(env.T)
	}
	if !handled && env.T != wsproto.TypeHello {
		if ce := c.h.logger.Check(zap.DebugLevel, "hub: no handler for message"); ce != nil {
			ce.Write(zap.Int64("worker", c.id), zap.String("type", env.T))
		}
	}
}

// retry asks the worker to send a message of this type again: a handler
// failed (the database, most often), and nothing is dropped silently.
// Results are acknowledged one by one and need no retry to be resent; the
// retry only makes it sooner.
func (c *conn) retry(msgType string) {
	p, _ := json.Marshal(wsproto.Retry{Type: msgType})
	c.enqueue(wsproto.TypeRetry, p)
}

func (c *conn) writePump() {
	ping := time.NewTicker(time.Duration(c.h.PingInterval))
	defer ping.Stop()
	wt := time.Duration(c.h.WriteTimeout)
	for {
		select {
		case <-c.done:
			return
		case frame := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(wt))
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.close("write failed: " + err.Error())
				return
			}
		case <-ping.C:
			c.ws.SetWriteDeadline(time.Now().Add(wt))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.close("ping failed: " + err.Error())
				return
			}
			// Revocation takes effect within one ping interval.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			wk, err := workers.Get(ctx, c.h.wh.Pool(), c.id)
			cancel()
			if errors.Is(err, workers.ErrNotFound) || (err == nil && wk.Revoked()) {
				c.h.logger.Warn("hub: worker revoked, closing connection", zap.Int64("worker", c.id))
				c.close("worker revoked")
				return
			}
		}
	}
}
