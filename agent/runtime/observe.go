//go:build remote && containers_image_openpgp

package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
)

// Stats is one container's resource use.
type Stats struct {
	ContainerID string
	CPUPercent  float64
	MemBytes    int64
	MemLimit    int64
	NetRx       int64
	NetTx       int64
	BlockRead   int64
	BlockWrite  int64
}

// Stats samples the resource use of running containers once.
func (r *Runtime) Stats(ctx context.Context, ids []string) ([]Stats, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	stream := false
	ch, err := containers.Stats(r.connFor(ctx), ids, &containers.StatsOptions{Stream: &stream})
	if err != nil {
		return nil, err
	}
	var out []Stats
	for rep := range ch {
		if rep.Error != nil {
			err = rep.Error
			continue
		}
		for _, s := range rep.Stats {
			st := Stats{ContainerID: s.ContainerID, CPUPercent: s.CPU, MemBytes: int64(s.MemUsage), MemLimit: int64(s.MemLimit),
				BlockRead: int64(s.BlockInput), BlockWrite: int64(s.BlockOutput)}
			for _, n := range s.Network {
				st.NetRx += int64(n.RxBytes)
				st.NetTx += int64(n.TxBytes)
			}
			out = append(out, st)
		}
	}
	if len(out) == 0 && err != nil {
		return nil, err
	}
	return out, nil
}

// DiskUsage returns the size of each managed container's writable layer.
func (r *Runtime) DiskUsage(ctx context.Context) (map[string]int64, error) {
	all, size := true, true
	list, err := containers.List(r.connFor(ctx), &containers.ListOptions{All: &all, Size: &size,
		Filters: map[string][]string{"label": {LabelManaged + "=" + r.managed()}}})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(list))
	for _, c := range list {
		if c.Size != nil {
			out[c.ID] = c.Size.RwSize
		}
	}
	return out, nil
}

// Follow streams a container's output lines to fn, with the time Podman
// recorded for each, until ctx ends or the container stops (then it
// returns nil). Lines after the given time are included. fn sees the
// lines of both streams in the order of the container's log, so a reader
// that follows again from a time can count its way back to a line.
//
// Podman may report whole seconds (Podman 4 does), so several lines can
// share a time. A line still open when the stream breaks (not when the
// container stops) is not given to fn: following again from before it
// reads it whole.
func (r *Runtime) Follow(ctx context.Context, id string, since time.Time, fn func(stream, line string, at time.Time)) error {
	yes := true
	s := since.UTC().Format(time.RFC3339Nano)
	ctx = r.connFor(ctx)
	conn, err := bindings.GetClient(ctx)
	if err != nil {
		return err
	}
	params, err := (&containers.LogOptions{Follow: &yes, Stdout: &yes, Stderr: &yes, Since: &s, Timestamps: &yes}).ToParams()
	if err != nil {
		return err
	}
	resp, err := conn.DoRequest(ctx, nil, http.MethodGet, "/containers/%s/logs", params, nil, id)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !resp.IsSuccess() {
		return resp.Process(nil)
	}
	// One reader for both streams: the bindings' Logs hands stdout and
	// stderr to two channels, which loses their order.
	var lines partialLines
	buf := make([]byte, 1024)
	for {
		fd, n, err := containers.DemuxHeader(resp.Body, buf)
		var frame []byte
		if err == nil {
			frame, err = containers.DemuxFrame(resp.Body, buf, n)
		}
		if errors.Is(err, io.EOF) && ctx.Err() == nil {
			// The container stopped: what it left unterminated is a line.
			for _, stream := range []string{"stdout", "stderr"} {
				if p, ok := lines.open[stream]; ok {
					fn(stream, p.text, p.at)
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		stream := "stdout"
		switch fd {
		case 0, 1:
		case 2:
			stream = "stderr"
		case 3:
			return errors.New("podman log stream: " + string(frame))
		default:
			return fmt.Errorf("podman log stream: unknown stream %d", fd)
		}
		if at, line, ok := lines.feed(stream, string(frame)); ok {
			fn(stream, line, at)
		}
	}
}

// partialLines joins the pieces of a line Podman recorded in parts (its
// log marks a line partial when the app's write reached the log in more
// than one read): a frame without a final newline continues in the next
// frame of its stream. A line is given the time of its first piece.
type partialLines struct {
	open map[string]partialLine
}

type partialLine struct {
	at   time.Time
	text string
}

// feed takes one frame ("<time> <text>", with a newline unless partial)
// and returns a complete line when there is one.
func (p *partialLines) feed(stream, frame string) (time.Time, string, bool) {
	complete := strings.HasSuffix(frame, "\n")
	at, text := splitTimestamp(strings.TrimRight(frame, "\r\n"))
	if prev, ok := p.open[stream]; ok {
		at, text = prev.at, prev.text+text
		delete(p.open, stream)
	}
	if !complete && len(text) < 64<<10 {
		if p.open == nil {
			p.open = map[string]partialLine{}
		}
		p.open[stream] = partialLine{at: at, text: text}
		return time.Time{}, "", false
	}
	return at, text, true
}

// splitTimestamp separates the RFC 3339 time Podman puts before a log
// line; a line without one gets the current time.
func splitTimestamp(l string) (time.Time, string) {
	if i := strings.IndexByte(l, ' '); i > 0 {
		if at, err := time.Parse(time.RFC3339Nano, l[:i]); err == nil {
			return at, l[i+1:]
		}
	}
	return time.Now(), l
}

// Tail returns the last n lines a container wrote (stdout and stderr,
// each line prefixed by its stream when it is stderr), oldest first.
func (r *Runtime) Tail(ctx context.Context, id string, n int) ([]string, error) {
	yes, no := true, false
	tail := strconv.Itoa(n)
	stdout, stderr := make(chan string, n+1), make(chan string, n+1)
	var lines []string
	done := make(chan error, 1)
	go func() {
		done <- containers.Logs(r.connFor(ctx), id, &containers.LogOptions{Follow: &no, Stdout: &yes, Stderr: &yes, Tail: &tail, Timestamps: &no}, stdout, stderr)
	}()
	var err error
	for finished := false; !finished || len(stdout)+len(stderr) > 0; {
		select {
		case l := <-stdout:
			lines = append(lines, strings.TrimRight(l, "\r\n"))
		case l := <-stderr:
			lines = append(lines, "stderr: "+strings.TrimRight(l, "\r\n"))
		case err = <-done:
			finished = true
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, err
}
