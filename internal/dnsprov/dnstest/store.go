package dnstest

import (
	"net/http"
	"sync"
	"testing"
)

// Store is what a stand-in keeps behind its API: the records, the
// failures queued for the next calls and the call counts. Its methods
// take Mu; the stand-in's handler holds Mu while it answers a call.
type Store[R any] struct {
	Mu       sync.Mutex
	Stored   []R
	Seq      int // the last record id given
	Failures []int
	// Writes counts successful changes; Requests every call, refused ones
	// included.
	Writes, Requests int
}

// Records returns a copy of the stored records.
func (s *Store[R]) Records() []R {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return append([]R(nil), s.Stored...)
}

// Clear removes every record.
func (s *Store[R]) Clear() {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.Stored = nil
}

// FailNext makes the next len(codes) API calls fail with those statuses,
// the way providers do when they rate-limit (429 with Retry-After) or have
// an outage (5xx).
func (s *Store[R]) FailNext(codes ...int) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.Failures = append(s.Failures, codes...)
}

// Begin counts a call and returns the status of the next queued failure,
// to be answered instead (with Retry-After set for a 429), or 0. The
// caller holds Mu.
func (s *Store[R]) Begin(w http.ResponseWriter) int {
	s.Requests++
	if len(s.Failures) == 0 {
		return 0
	}
	code := s.Failures[0]
	s.Failures = s.Failures[1:]
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	return code
}

// Insert stores rec under the next id, which setID writes into it. The
// caller holds Mu.
func (s *Store[R]) Insert(rec R, setID func(rec *R, id int)) R {
	s.Seq++
	setID(&rec, s.Seq)
	s.Stored = append(s.Stored, rec)
	return rec
}

// Add stores rec as if it had been created elsewhere (the provider's
// dashboard, an import), without validation: what the API then answers is
// untrusted input to the client.
func (s *Store[R]) Add(rec R, setID func(rec *R, id int)) R {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return s.Insert(rec, setID)
}

// Serve answers DNS for zone from the stored records (see the package
// Serve); asDNS tells what a stored record answers.
func (s *Store[R]) Serve(t testing.TB, zone string, asDNS func(R) Record) string {
	return Serve(t, zone, func() []Record {
		s.Mu.Lock()
		defer s.Mu.Unlock()
		out := make([]Record, len(s.Stored))
		for i, r := range s.Stored {
			out[i] = asDNS(r)
		}
		return out
	})
}
