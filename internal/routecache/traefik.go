// Package routecache keeps a Traefik proxy host's routing on its disk: it
// polls the control plane's /v1/traefik/proxy-config and writes each new
// document to a file Traefik's file provider watches. Traefik reads the
// file at start, so a proxy restarted while the control plane or its
// database is down still routes every host it knew (and serves their
// certificates from acme.json); the file changes only when a good
// document arrives, never on an error.
package routecache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"
)

// Traefik follows the control plane's proxy document.
type Traefik struct {
	ControlPlane string        // base URL, e.g. http://10.50.0.1:8080
	Token        string        // proxy token
	Out          string        // file written for Traefik's file provider
	Interval     time.Duration // default 5s, as Traefik's own HTTP provider
	HTTP         *http.Client
	Logger       *zap.Logger

	etag string
}

// Run polls until ctx ends. Errors are logged; the file keeps the last
// good document.
func (s *Traefik) Run(ctx context.Context) error {
	if s.Interval <= 0 {
		s.Interval = 5 * time.Second
	}
	if s.HTTP == nil {
		s.HTTP = &http.Client{Timeout: 20 * time.Second}
	}
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(filepath.Dir(s.Out), 0o700); err != nil {
		return err
	}
	failing := false
	for {
		changed, err := s.Once(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !failing {
				s.Logger.Warn("traefik routes: control plane unreachable, Traefik keeps the last good routes", zap.String("file", s.Out), zap.Error(err))
			}
			failing = true
		default:
			if failing {
				s.Logger.Info("traefik routes: control plane reachable again")
			}
			failing = false
			if changed {
				s.Logger.Info("traefik routes: updated", zap.String("file", s.Out))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.Interval):
		}
	}
}

// Once fetches the document and writes it when it changed.
func (s *Traefik) Once(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.ControlPlane, "/")+"/v1/traefik/proxy-config", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	if s.etag != "" {
		if _, err := os.Stat(s.Out); err == nil {
			req.Header.Set("If-None-Match", s.etag)
		}
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return false, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("control plane answered %d: %s", resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 300)]))
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return false, errors.New("the control plane's document is not a JSON object")
	}
	// Traefik's file provider reads YAML (or TOML) files.
	out, err := yaml.Marshal(doc)
	if err != nil {
		return false, err
	}
	out = append([]byte("# Routes from the control plane (/v1/traefik/proxy-config), kept by `wisehosting traefik-routes`.\n"), out...)
	s.etag = resp.Header.Get("ETag")
	if old, err := os.ReadFile(s.Out); err == nil && bytes.Equal(old, out) {
		return false, nil
	}
	return true, writeAtomic(s.Out, out)
}

// writeAtomic replaces path in one rename, so Traefik never reads half a
// document.
func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".routes-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
