package infra

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// sshUser is what a user name in infra.yaml may be (it becomes part of an
// ssh argument, so nothing that ssh could read as an option).
var sshUser = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// SSHArgs returns the ssh command line (argv, "ssh" first) that opens a
// session on the host called name: its public address (else its mesh
// address), ssh_user (default root), ssh_port (default 22) and ssh_key
// with a leading ~ expanded. Extra arguments (a remote command) follow
// after "--".
func (c *Config) SSHArgs(name string, extra ...string) ([]string, error) {
	var h *Host
	for i := range c.Hosts {
		if c.Hosts[i].Name == name {
			h = &c.Hosts[i]
		}
	}
	if h == nil {
		var names []string
		for _, x := range c.Hosts {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("no host %q in infra.yaml (%s)", name, strings.Join(names, ", "))
	}
	addr := h.PublicIP
	if addr == "" {
		addr = h.MeshIP
	}
	if addr == "" {
		return nil, fmt.Errorf("host %s has neither public_ip nor mesh_ip", name)
	}
	user := h.SSHUser
	if user == "" {
		user = "root"
	}
	if !sshUser.MatchString(user) {
		return nil, fmt.Errorf("host %s: ssh_user %q is not a user name", name, user)
	}
	port := h.SSHPort
	if port == 0 {
		port = 22
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("host %s: ssh_port %d", name, port)
	}
	args := []string{"ssh", "-p", strconv.Itoa(port)}
	if h.SSHKey != "" {
		key, err := expandHome(h.SSHKey)
		if err != nil {
			return nil, err
		}
		args = append(args, "-i", key)
	}
	args = append(args, user+"@"+addr)
	if len(extra) > 0 {
		args = append(append(args, "--"), extra...)
	}
	return args, nil
}

// expandHome replaces a leading ~ (alone or before /) by the home
// directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("ssh_key starts with ~ but the home directory is unknown")
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}
