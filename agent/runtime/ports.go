//go:build remote && containers_image_openpgp

package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ListeningPorts asks ss for the TCP ports listening on the host (any
// address). It runs `ss -Htln` as an argv list.
func ListeningPorts(ctx context.Context) (map[int]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ss", "-H", "-t", "-l", "-n").Output()
	if err != nil {
		return nil, fmt.Errorf("ss -Htln: %w", err)
	}
	return ParseSS(out)
}

// ParseSS reads the output of `ss -Htln` (State Recv-Q Send-Q Local:Port
// Peer:Port …) into the set of local ports.
func ParseSS(out []byte) (map[int]bool, error) {
	ports := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		local := f[3]
		if len(f) >= 5 && !strings.Contains(local, ":") {
			// Some ss builds print the Netid column first.
			local = f[4]
		}
		i := strings.LastIndexByte(local, ':')
		if i < 0 {
			return nil, fmt.Errorf("ss: unexpected local address %q", local)
		}
		p, err := strconv.Atoi(local[i+1:])
		if err != nil {
			if local[i+1:] == "*" {
				continue
			}
			return nil, fmt.Errorf("ss: unexpected port in %q", local)
		}
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("ss: port %d out of range", p)
		}
		ports[p] = true
	}
	return ports, sc.Err()
}

// ErrNoFreePort means every port of the range is taken.
var ErrNoFreePort = errors.New("no free host port in the configured range")

// FreePort picks a host port in the configured range that nothing listens
// on, no managed container (running or stopped) has bound, and no
// concurrent Run is about to bind. The port stays reserved until the Run
// that asked for it returns.
func (r *Runtime) FreePort(ctx context.Context) (int, error) {
	busy, err := r.cfg.Ports(ctx)
	if err != nil {
		return 0, err
	}
	cs, err := r.List(ctx)
	if err != nil {
		return 0, err
	}
	for _, c := range cs {
		busy[c.HostPort] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for p, t := range r.reserved {
		if now.Sub(t) > 10*time.Minute {
			delete(r.reserved, p)
		}
	}
	n := r.cfg.PortMax - r.cfg.PortMin + 1
	start := rand.IntN(n) // spread ports: a just-freed port is not reused at once
	for i := 0; i < n; i++ {
		p := r.cfg.PortMin + (start+i)%n
		if busy[p] {
			continue
		}
		if _, ok := r.reserved[p]; ok {
			continue
		}
		r.reserved[p] = now
		return p, nil
	}
	return 0, ErrNoFreePort
}

func (r *Runtime) release(p int) {
	r.mu.Lock()
	delete(r.reserved, p)
	r.mu.Unlock()
}

// EphemeralRangeFile is where Linux keeps the range of ports it gives to
// outgoing connections.
const EphemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// ReadEphemeralRange reads the kernel's ephemeral port range from file.
func ReadEphemeralRange(file string) (lo, hi int, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%s: unexpected content %q", file, b)
	}
	if lo, err = strconv.Atoi(f[0]); err == nil {
		hi, err = strconv.Atoi(f[1])
	}
	if err != nil || lo <= 0 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("%s: unexpected content %q", file, b)
	}
	return lo, hi, nil
}

// CheckPortRange refuses an app port range that overlaps the kernel's
// ephemeral range: the kernel may give one of its ports to an outgoing
// connection at any time, and the app's bind then fails. A host without
// the file (not Linux) is not checked.
func CheckPortRange(min, max int, file string) error {
	lo, hi, err := ReadEphemeralRange(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if min <= hi && lo <= max {
		return fmt.Errorf("the app port range %d-%d overlaps the kernel's ephemeral port range %d-%d (%s): "+
			"choose a range outside it (e.g. -port-range 20000-29999) or narrow net.ipv4.ip_local_port_range", min, max, lo, hi, file)
	}
	return nil
}

// addrInUse reports whether a container failed to start because its host
// port was taken between the check and the bind.
func addrInUse(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "address already in use")
}

// holdPort keeps a port that failed to bind out of the choice for a while
// (something else owns it, maybe only briefly).
func (r *Runtime) holdPort(p int) {
	r.mu.Lock()
	r.reserved[p] = time.Now()
	r.mu.Unlock()
}
