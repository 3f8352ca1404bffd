package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/certstore"
)

// certStorage serves the proxies' certificate storage (certstore.Client's
// other side): certificate keys only, locks by holder, proxy token.
type certStorage struct{ rt *routing }

func (cs *certStorage) db() certstore.DB { return certstore.DB{Pool: cs.rt.wh.Pool()} }

// Lock TTLs a proxy may ask for.
const (
	minLockTTL = time.Second
	maxLockTTL = 10 * time.Minute
)

// certStorageRoutes serves the certificate storage of proxies in proxy mode.
func (h *Handler) certStorageRoutes(mux *http.ServeMux) {
	cs := &certStorage{rt: &routing{wh: h.wh, logger: h.logger}}
	mux.HandleFunc("GET "+certstore.PathValue, cs.auth(cs.get))
	mux.HandleFunc("PUT "+certstore.PathValue, cs.auth(cs.put))
	mux.HandleFunc("DELETE "+certstore.PathValue, cs.auth(cs.delete))
	mux.HandleFunc("GET "+certstore.PathStat, cs.auth(cs.stat))
	mux.HandleFunc("GET "+certstore.PathList, cs.auth(cs.list))
	mux.HandleFunc("POST "+certstore.PathLock, cs.auth(cs.lock))
	mux.HandleFunc("POST "+certstore.PathUnlock, cs.auth(cs.unlock))
}

func (cs *certStorage) auth(next func(context.Context, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !cs.rt.authorized(w, r) {
			return
		}
		// A database that hangs must not hang a proxy's TLS handshake:
		// the proxy falls back to its local copy on 503.
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		next(ctx, w, r)
	}
}

// fail answers a storage error: missing keys 404, the rest 503 (the proxy
// then answers from its local copy).
func (cs *certStorage) fail(w http.ResponseWriter, op string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		WriteError(w, http.StatusNotFound, "no such key")
		return
	}
	cs.rt.logger.Error("certificate storage", zap.String("op", op), zap.Error(err))
	WriteError(w, http.StatusServiceUnavailable, "the certificate storage is unavailable (database unreachable)")
}

func (cs *certStorage) key(w http.ResponseWriter, r *http.Request, dirOK bool) (string, bool) {
	k := r.URL.Query().Get("key")
	if certstore.CheckKey(k) == nil || dirOK && certstore.CheckPrefix(k) == nil {
		return k, true
	}
	WriteError(w, http.StatusBadRequest, "key is not a certificate storage key")
	return "", false
}

func (cs *certStorage) get(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	k, ok := cs.key(w, r, false)
	if !ok {
		return
	}
	v, mod, err := cs.db().Get(ctx, k)
	if err != nil {
		cs.fail(w, "load", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(v)))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(certstore.HeaderModified, mod.UTC().Format(time.RFC3339Nano))
	w.Write(v)
}

func (cs *certStorage) put(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	k, ok := cs.key(w, r, false)
	if !ok {
		return
	}
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, certstore.MaxValueLen))
	if err != nil {
		WriteError(w, http.StatusRequestEntityTooLarge, "the value is larger than 1 MiB")
		return
	}
	if err := cs.db().Put(ctx, k, v); err != nil {
		cs.fail(w, "store", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (cs *certStorage) delete(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	k, ok := cs.key(w, r, true)
	if !ok {
		return
	}
	if err := cs.db().Delete(ctx, k); err != nil {
		cs.fail(w, "delete", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (cs *certStorage) stat(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	k, ok := cs.key(w, r, true)
	if !ok {
		return
	}
	ki, err := cs.db().Stat(ctx, k)
	if err != nil {
		cs.fail(w, "stat", err)
		return
	}
	WriteJSON(w, http.StatusOK, ki)
}

// list lists one level, as certmagic does; recursive listings are not
// offered.
func (cs *certStorage) list(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("prefix")
	if certstore.CheckPrefix(p) != nil {
		WriteError(w, http.StatusBadRequest, "prefix is not a certificate storage directory")
		return
	}
	keys, err := cs.db().List(ctx, p, false)
	if err != nil {
		cs.fail(w, "list", err)
		return
	}
	WriteJSON(w, http.StatusOK, certstore.ListResponse{Keys: keys})
}

func (cs *certStorage) lockRequest(w http.ResponseWriter, r *http.Request) (certstore.LockRequest, bool) {
	var req certstore.LockRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		WriteError(w, http.StatusBadRequest, "the body must be a JSON lock request")
		return req, false
	}
	if certstore.CheckLockName(req.Name) != nil {
		WriteError(w, http.StatusBadRequest, "name is not a valid lock name")
		return req, false
	}
	if certstore.CheckHolder(req.Holder) != nil {
		WriteError(w, http.StatusBadRequest, "holder must be 16 to 64 lowercase hex digits")
		return req, false
	}
	return req, true
}

func (cs *certStorage) lock(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	req, ok := cs.lockRequest(w, r)
	if !ok {
		return
	}
	ttl := time.Duration(req.TTLms) * time.Millisecond
	if ttl < minLockTTL || ttl > maxLockTTL {
		WriteError(w, http.StatusBadRequest, "ttl_ms must be between 1000 and 600000")
		return
	}
	held, err := cs.db().TryLock(ctx, req.Name, req.Holder, ttl)
	if err != nil {
		cs.fail(w, "lock", err)
		return
	}
	WriteJSON(w, http.StatusOK, certstore.LockResponse{Held: held})
}

func (cs *certStorage) unlock(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	req, ok := cs.lockRequest(w, r)
	if !ok {
		return
	}
	if err := cs.db().Unlock(ctx, req.Name, req.Holder); err != nil {
		cs.fail(w, "unlock", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
