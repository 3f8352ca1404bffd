package logbus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"go.uber.org/zap"
)

func seed(t testing.TB, db *pgtest.DB) (teamA, teamB, appA int64) {
	ctx := context.Background()
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('a', 'a') RETURNING id").Scan(&teamA)
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('b', 'b') RETURNING id").Scan(&teamB)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", teamA).Scan(&appA)
	return
}

func TestRingAndSubscribe(t *testing.T) {
	b := New(Config{RingSize: 3})
	ch, cancel := b.Subscribe(7, 10)
	for i := 1; i <= 5; i++ {
		b.Publish(Line{AppID: 7, Text: fmt.Sprint(i)})
	}
	got := b.Recent(7, 10)
	if len(got) != 3 || got[0].Text != "3" || got[2].Text != "5" {
		t.Fatalf("recent %+v", got)
	}
	if got := b.Recent(7, 2); got[0].Text != "4" || got[1].Text != "5" {
		t.Fatalf("recent 2 %+v", got)
	}
	if len(ch) != 5 || (<-ch).Text != "1" {
		t.Fatal("subscriber missed lines")
	}
	cancel()
	b.Publish(Line{AppID: 7, Text: "6"})
	if len(ch) != 4 {
		t.Fatal("cancelled subscriber still receives")
	}
	if r := b.Recent(8, 5); len(r) != 0 {
		t.Fatal("other app's ring not empty")
	}
	// A slow subscriber does not block publishers.
	slow, _ := b.Subscribe(9, 1)
	for i := 0; i < 100; i++ {
		b.Publish(Line{AppID: 9, Text: "x"})
	}
	if len(slow) != 1 {
		t.Fatal("slow subscriber buffer")
	}
	long := strings.Repeat("y", MaxLineBytes+10)
	b.Publish(Line{AppID: 9, Text: long})
	if l := b.Recent(9, 1)[0].Text; len(l) != MaxLineBytes {
		t.Fatalf("line not truncated: %d", len(l))
	}
}

// Lines written by one control plane are history for the next one, and
// only for the owning team.
func TestPersistedHistoryAndScope(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	teamA, teamB, app := seed(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	b := New(Config{Pool: db.Pool, FlushInterval: 20 * time.Millisecond})
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	for i := 0; i < 50; i++ {
		b.Publish(Line{AppID: app, Stream: "stdout", Text: fmt.Sprintf("request %d ok", i)})
	}
	b.Publish(Line{AppID: app, Stream: "stderr", Text: "panic: boom"})
	cancel()
	<-done // stop flushes what is pending

	arch := &Archive{Pool: db.Pool}
	hist, err := arch.Search(context.Background(), Search{TeamID: teamA, AppID: app, Limit: 10})
	if err != nil || len(hist) != 10 || hist[0].Line != "panic: boom" {
		t.Fatalf("history %+v %v", hist, err)
	}
	found, _ := arch.Search(context.Background(), Search{TeamID: teamA, AppID: app, Query: "PANIC", Limit: 10})
	if len(found) != 1 || found[0].Stream != "stderr" {
		t.Fatalf("search %+v", found)
	}
	if page, _ := arch.Search(context.Background(), Search{TeamID: teamA, AppID: app, Stream: "stdout", Before: hist[9].ID, Limit: 5}); len(page) != 5 || page[0].ID >= hist[9].ID {
		t.Fatalf("next page %+v", page)
	}
	if leak, _ := arch.Search(context.Background(), Search{TeamID: teamB, AppID: app}); len(leak) != 0 {
		t.Fatalf("another team read the logs: %+v", leak)
	}
	// Retention.
	db.Pool.Exec(context.Background(), "UPDATE runtime_logs SET ts = now() - interval '30 days' WHERE line LIKE 'request 1%'")
	n, err := New(Config{Pool: db.Pool, Retention: 24 * time.Hour}).Sweep(context.Background(), db.Pool)
	if err != nil || n != 11 { // request 1, 10..19
		t.Fatalf("swept %d %v", n, err)
	}
}

// A database outage keeps lines pending; they are written when it returns.
func TestFlushRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, _, app := seed(t, db)
	b := New(Config{Pool: db.Pool})
	b.Publish(Line{AppID: app, Text: "kept"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a failing write
	if err := b.Flush(ctx); err == nil {
		t.Fatal("flush with a cancelled context succeeded")
	}
	b.Publish(Line{AppID: app + 1000, Text: "of a deleted app"})
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.Dropped() != 1 {
		t.Fatalf("dropped %d", b.Dropped())
	}
	var n int
	db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM runtime_logs WHERE line = 'kept'").Scan(&n)
	if n != 1 {
		t.Fatalf("%d rows", n)
	}
}

// BenchmarkIngest: lines/s through the bus into Postgres (COPY batches),
// 10 apps, 120-byte lines, including the final flush.
func BenchmarkIngest(b *testing.B) {
	db := pgtest.New(b)
	_, _, app := seed(b, db)
	apps := []int64{app}
	for i := 0; i < 9; i++ {
		var id int64
		if err := db.Pool.QueryRow(context.Background(), "INSERT INTO apps (team_id, slug, name) SELECT team_id, $1, 'x' FROM apps WHERE id = $2 RETURNING id", fmt.Sprintf("x%d", i), app).Scan(&id); err != nil {
			b.Fatal(err)
		}
		apps = append(apps, id)
	}
	logger, _ := zap.NewDevelopment()
	bus := New(Config{Pool: db.Pool, Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bus.Run(ctx); close(done) }()
	n := max(b.N, 200_000)
	text := strings.Repeat("x", 100) + " GET /api 200"
	batch := make([]Line, 100)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = Line{AppID: apps[(i+j)%len(apps)], Stream: "stdout", Text: text}
		}
		bus.Publish(batch...)
	}
	cancel()
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	var stored int
	db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM runtime_logs").Scan(&stored)
	if stored != n || bus.Dropped() != 0 {
		b.Fatalf("only %d of %d lines stored", stored, n)
	}
	b.ReportMetric(float64(stored)/elapsed.Seconds(), "lines/s")
}

// Lines with NUL bytes, invalid UTF-8 and characters cut in half are
// stored (cleaned), and so are every other tenant's lines after them.
func TestCopyStoresLinesThatOnceFailedTheBatch(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	teamA, _, app := seed(t, db)
	var other int64
	db.Pool.QueryRow(context.Background(), "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'o', 'o') RETURNING id", teamA).Scan(&other)
	b := New(Config{Pool: db.Pool})
	long := strings.Repeat("€", MaxLineBytes/3+5) // cut at 8192 bytes would split a character
	b.Publish(
		Line{AppID: app, Text: "nul\x00inside"},
		Line{AppID: app, Text: "half a euro \xe2\x82"},
		Line{AppID: app, Text: long},
		Line{AppID: other, Text: "other tenant"},
	)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, _ := db.Pool.Query(context.Background(), "SELECT line FROM runtime_logs ORDER BY id")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(got) != 4 || got[0] != "nulinside" || got[1] != "half a euro \uFFFD" || got[3] != "other tenant" {
		t.Fatalf("%q %v", got, err)
	}
	if len(got[2]) > MaxLineBytes || !strings.HasSuffix(got[2], "€ …") || b.Dropped() != 0 {
		t.Fatalf("long line %d bytes, ends %q; dropped %d", len(got[2]), got[2][len(got[2])-8:], b.Dropped())
	}
}

// Rows the database refuses are found by splitting the batch and dropped
// (counted, named by app); the rest of the batch is stored and the queue
// moves on.
func TestRefusedRowsAreSplitOutAndDropped(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, _, app := seed(t, db)
	drops := map[string]int{}
	b := New(Config{Pool: db.Pool, OnDrop: func(a int64, n int, reason string) {
		if a == app {
			drops[reason] += n
		}
	}})
	// Bypass the cleaning at Publish: rows as a broken edge would pass them.
	var batch []entry
	stored := 0
	d := &delivery{done: func() { stored++ }}
	for i := range 100 {
		text := fmt.Sprintf("line %d", i)
		if i == 17 || i == 60 {
			text = "bad\x00row"
		}
		if i == 61 {
			text = "cut \xe2\x82"
		}
		batch = append(batch, entry{Line: Line{AppID: app, TS: time.Now(), Stream: "stdout", Text: text}, d: d})
	}
	d.left = len(batch)
	b.pending = batch
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM runtime_logs WHERE app_id = $1", app).Scan(&n)
	if n != 97 || drops["invalid"] != 3 || b.Dropped() != 3 || stored != 1 || len(b.pending) != 0 {
		t.Fatalf("stored %d rows, drops %v, dropped %d, delivery done %d times, pending %d", n, drops, b.Dropped(), stored, len(b.pending))
	}
	// The next batch goes through.
	b.Publish(Line{AppID: app, Text: "after"})
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM runtime_logs WHERE line = 'after'").Scan(&n)
	if n != 1 {
		t.Fatal("the queue did not move on")
	}
}

// A sender that waits for its lines hears back only after they are
// committed; a full backlog refuses new deliveries instead of dropping.
func TestPublishStoredWaitsForCommit(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, _, app := seed(t, db)
	b := New(Config{Pool: db.Pool, MaxPending: 3})
	done := 0
	if !b.PublishStored(func() { done++ }, Line{AppID: app, Text: "a"}, Line{AppID: app, Text: "b"}) {
		t.Fatal("refused")
	}
	if b.PublishStored(func() { done++ }, Line{AppID: app, Text: "c"}, Line{AppID: app, Text: "d"}) {
		t.Fatal("accepted past MaxPending")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Flush(ctx); err == nil || done != 0 {
		t.Fatalf("failed write: err %v, done %d", err, done)
	}
	if err := b.Flush(context.Background()); err != nil || done != 1 {
		t.Fatalf("err %v, done %d", err, done)
	}
	var n int
	db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM runtime_logs").Scan(&n)
	if n != 2 {
		t.Fatalf("%d rows", n)
	}
}
