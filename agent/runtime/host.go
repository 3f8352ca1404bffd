//go:build remote && containers_image_openpgp

package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/system"
)

// Disk quota support of the container storage, as reported to the control
// plane in the worker's hello.
const (
	QuotaXFS   = "xfs-prjquota"
	QuotaBtrfs = "btrfs"
	QuotaNone  = "none"
)

// DiskQuota describes whether per-container disk limits are enforced.
type DiskQuota struct {
	Mode      string // QuotaXFS, QuotaBtrfs or QuotaNone
	GraphRoot string
	Driver    string
	FSType    string
	Options   string
	Reason    string // why not, when Mode is QuotaNone
}

// Enforced reports whether a container's DiskMB is applied.
func (q DiskQuota) Enforced() bool { return q.Mode != QuotaNone }

// ProbeDiskQuota asks Podman where its storage lives and findmnt what
// filesystem that is. Quotas work for the overlay driver on XFS mounted
// with prjquota, and for the btrfs driver.
func (r *Runtime) ProbeDiskQuota(ctx context.Context) (DiskQuota, error) {
	info, err := system.Info(r.connFor(ctx), nil)
	if err != nil {
		return DiskQuota{}, fmt.Errorf("podman info: %w", err)
	}
	q := DiskQuota{Mode: QuotaNone}
	if info.Store != nil {
		q.GraphRoot, q.Driver = info.Store.GraphRoot, info.Store.GraphDriverName
	}
	if q.GraphRoot == "" {
		q.Reason = "podman reported no storage root"
		return q, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "findmnt", "-n", "-o", "FSTYPE,OPTIONS", "--target", q.GraphRoot).Output()
	if err != nil {
		return q, fmt.Errorf("findmnt --target %s: %w", q.GraphRoot, err)
	}
	q.FSType, q.Options = ParseFindmnt(out)
	q.Mode, q.Reason = QuotaMode(q.Driver, q.FSType, q.Options)
	return q, nil
}

// ParseFindmnt reads `findmnt -n -o FSTYPE,OPTIONS` output.
func ParseFindmnt(out []byte) (fstype, options string) {
	line, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) > 0 {
		fstype = f[0]
	}
	if len(f) > 1 {
		options = f[1]
	}
	return fstype, options
}

// QuotaMode decides the quota support from the storage driver and the
// mount of its root.
func QuotaMode(driver, fstype, options string) (mode, reason string) {
	opts := map[string]bool{}
	for _, o := range strings.Split(options, ",") {
		opts[o] = true
	}
	switch {
	case driver == "overlay" && fstype == "xfs" && (opts["prjquota"] || opts["pquota"]):
		return QuotaXFS, ""
	case driver == "btrfs" && fstype == "btrfs":
		return QuotaBtrfs, ""
	case fstype == "xfs":
		return QuotaNone, "the storage is on XFS mounted without prjquota"
	default:
		return QuotaNone, fmt.Sprintf("storage driver %s on %s has no per-container quota", driver, fstype)
	}
}

// Shape limits the egress of the network namespace of process pid to
// kbit kilobits per second, with tc (token bucket filter) run inside the
// namespace through nsenter. kbit 0 removes the limit.
func Shape(ctx context.Context, pid int, dev string, kbit int) error {
	if pid <= 0 {
		return errors.New("shape: no process to enter")
	}
	return ShapeNetns(ctx, []string{"--target", strconv.Itoa(pid), "--net"}, dev, kbit)
}

// ShapeNetns is Shape for a namespace named by nsenter arguments, e.g.
// {"--net=/run/netns/x"}.
func ShapeNetns(ctx context.Context, ns []string, dev string, kbit int) error {
	if kbit < 0 {
		return fmt.Errorf("shape: negative rate %d", kbit)
	}
	if dev == "" || strings.HasPrefix(dev, "-") || strings.ContainsAny(dev, " /\x00") || len(dev) > 15 {
		return fmt.Errorf("shape: invalid device %q", dev)
	}
	argv := append([]string{"nsenter"}, ns...)
	argv = append(argv, "--", "tc", "qdisc")
	if kbit == 0 {
		argv = append(argv, "del", "dev", dev, "root")
	} else {
		// Burst: at least 10 ms worth of traffic and one MTU-sized packet.
		burst := max(kbit*1000/8/100, 1600)
		argv = append(argv, "replace", "dev", dev, "root", "tbf", "rate", strconv.Itoa(kbit)+"kbit",
			"burst", strconv.Itoa(burst), "latency", "50ms")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if kbit == 0 && strings.Contains(msg, "No such file") || strings.Contains(msg, "Cannot delete qdisc with handle of zero") {
			return nil // nothing to remove
		}
		return fmt.Errorf("tc: %v: %s", err, msg)
	}
	return nil
}

// ShapeContainer applies Shape to a running container's eth0.
func (r *Runtime) ShapeContainer(ctx context.Context, id string, kbit int) error {
	d, err := containers.Inspect(r.connFor(ctx), id, nil)
	if err != nil {
		return err
	}
	if d.State == nil || d.State.Pid <= 0 {
		return errors.New("shape: container is not running")
	}
	return Shape(ctx, d.State.Pid, "eth0", kbit)
}
