// Package errs is the one vocabulary of errors meant for people: a kind
// (invalid input, not found, forbidden, conflict, unauthorized) and a
// sentence that can be shown as is. Service packages return them; the HTTP
// layer maps a kind to a status in one place (caddymodules/api.Fail), and
// any other error is an internal failure that is logged, never shown.
//
// Database constraint violations become kinded errors by the violated
// constraint's name (Constraint), never by matching error text.
package errs

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Kind is what went wrong, from the caller's side.
type Kind int

const (
	// Internal: not the caller's fault; the message is not shown.
	Internal Kind = iota
	// Invalid: the request must change (a field out of range, a name taken
	// by a rule); 422.
	Invalid
	// NotFound: no such thing for this caller; 404.
	NotFound
	// Forbidden: the caller may not do this (role, plan, policy); 403.
	Forbidden
	// Conflict: the thing's current state does not allow it (already a
	// member, a name already used); 409.
	Conflict
	// Unauthorized: the caller is not signed in or the credential is
	// wrong; 401.
	Unauthorized
)

// Status is the HTTP status of a kind: the one mapping of the project.
func (k Kind) Status() int {
	switch k {
	case Invalid:
		return http.StatusUnprocessableEntity
	case NotFound:
		return http.StatusNotFound
	case Forbidden:
		return http.StatusForbidden
	case Conflict:
		return http.StatusConflict
	case Unauthorized:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// Error is an error for a person: Msg is a sentence shown as is. Field,
// when set, names the input at fault (for forms). Err is an optional cause
// for logs and errors.Is.
type Error struct {
	Kind  Kind
	Msg   string
	Field string
	Err   error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind with msg.
func New(kind Kind, msg string) *Error { return &Error{Kind: kind, Msg: msg} }

// Invalidf, NotFoundf, Forbiddenf and Conflictf format a sentence of their kind.
func Invalidf(format string, a ...any) error   { return New(Invalid, fmt.Sprintf(format, a...)) }
func NotFoundf(format string, a ...any) error  { return New(NotFound, fmt.Sprintf(format, a...)) }
func Forbiddenf(format string, a ...any) error { return New(Forbidden, fmt.Sprintf(format, a...)) }
func Conflictf(format string, a ...any) error  { return New(Conflict, fmt.Sprintf(format, a...)) }

// Field is an Invalid error about one input field.
func Field(field, msg string) error { return &Error{Kind: Invalid, Field: field, Msg: msg} }

// Wrap gives err a kind and a sentence, keeping it as the cause.
func Wrap(kind Kind, msg string, err error) error { return &Error{Kind: kind, Msg: msg, Err: err} }

// As returns the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns the kind of err: that of its first *Error, NotFound for
// pgx.ErrNoRows (a lookup scoped to the caller found nothing), else
// Internal.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return NotFound
	}
	return Internal
}

// Is reports whether err is of kind.
func Is(err error, kind Kind) bool { return err != nil && KindOf(err) == kind }

// Constraint returns, when err violates one of the named database
// constraints, the error given for that constraint (wrapping err), and err
// unchanged otherwise. The key is pgconn.PgError.ConstraintName, which is
// stable, unlike the message text.
func Constraint(err error, byName map[string]*Error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.ConstraintName == "" {
		return err
	}
	e, ok := byName[pe.ConstraintName]
	if !ok {
		return err
	}
	return &Error{Kind: e.Kind, Msg: e.Msg, Field: e.Field, Err: err}
}
