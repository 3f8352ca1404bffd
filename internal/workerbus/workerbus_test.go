package workerbus

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

type fakeHub struct{ sent []string }

func (f *fakeHub) Send(id int64, typ string, p json.RawMessage) error {
	f.sent = append(f.sent, typ+":"+string(p))
	return nil
}
func (f *fakeHub) Connected(id int64) bool { return id == 1 }

func TestBus(t *testing.T) {
	var b Bus
	if err := b.Send(1, "x", 1); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("no sender: %v", err)
	}
	h := &fakeHub{}
	b.SetSender(h)
	if err := b.Send(1, "job.assign", map[string]int{"job_id": 7}); err != nil {
		t.Fatal(err)
	}
	if len(h.sent) != 1 || h.sent[0] != `job.assign:{"job_id":7}` {
		t.Fatalf("sent %v", h.sent)
	}
	var got int64
	cancel := b.Handle("job.ack", func(ctx context.Context, w int64, p json.RawMessage) error { got = w; return nil })
	if ok, err := b.Dispatch(context.Background(), 5, "job.ack", nil); !ok || err != nil || got != 5 {
		t.Fatalf("dispatch: %v %v %d", ok, err, got)
	}
	cancel()
	if ok, _ := b.Dispatch(context.Background(), 6, "job.ack", nil); ok {
		t.Fatal("handler still registered after cancel")
	}
	if !b.Connected(1) || b.Connected(2) {
		t.Fatal("Connected not delegated")
	}
}
