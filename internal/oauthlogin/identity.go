package oauthlogin

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Identity is what a provider says about the person who signed in.
type Identity struct {
	// Subject is the provider's stable, never reused account id.
	Subject string
	Email   string
	// EmailVerified: the provider confirmed the person controls Email.
	EmailVerified bool
	Name          string
}

// ErrNoSubject means the answer has no usable account id.
var ErrNoSubject = errors.New("the provider's answer has no account id")

// ParseIdentity reads a provider's userinfo answer (user) and, for
// GitHub, Bitbucket and Gitea, its e-mail list (emails, may be empty).
// Bytes come from the network: anything malformed is an error, never a
// guessed identity.
func ParseIdentity(provider string, user, emails []byte) (Identity, error) {
	var id Identity
	var err error
	switch provider {
	case "google":
		id, err = parseGoogle(user)
	case "github":
		id, err = parseGitHub(user, emails)
	case "gitlab":
		id, err = parseGitLab(user)
	case "bitbucket":
		id, err = parseBitbucket(user, emails)
	case "codeberg":
		id, err = parseGitea(user, emails)
	default:
		return Identity{}, fmt.Errorf("unknown provider %q", provider)
	}
	if err != nil {
		return Identity{}, err
	}
	if id.Subject == "" || len(id.Subject) > 200 || !utf8.ValidString(id.Subject) {
		return Identity{}, ErrNoSubject
	}
	if !plausibleEmail(id.Email) {
		id.Email, id.EmailVerified = "", false
	}
	id.Name = cleanName(id.Name)
	return id, nil
}

func plausibleEmail(e string) bool {
	if e == "" || len(e) > 254 || !utf8.ValidString(e) {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	if at < 1 || at == len(e)-1 {
		return false
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func cleanName(n string) string {
	n = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, n)
	if utf8.RuneCountInString(n) > 100 {
		n = string([]rune(n)[:100])
	}
	return strings.TrimSpace(n)
}

// numericID reads a JSON number id (GitHub, GitLab, Gitea) as a decimal
// string; zero, negative and fractional ids are refused.
func numericID(raw json.Number) (string, error) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n <= 0 {
		return "", ErrNoSubject
	}
	return strconv.FormatInt(n, 10), nil
}

func decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

// flexBool reads true/false, and "true"/"false" as some Google endpoints
// send it.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true", `"true"`:
		*f = true
	case "false", `"false"`, "null":
		*f = false
	default:
		return fmt.Errorf("not a boolean: %.20s", b)
	}
	return nil
}

// Google's OpenID Connect userinfo: {"sub", "email", "email_verified", "name"}.
func parseGoogle(user []byte) (Identity, error) {
	var u struct {
		Sub           string   `json:"sub"`
		Email         string   `json:"email"`
		EmailVerified flexBool `json:"email_verified"`
		Name          string   `json:"name"`
	}
	if err := decode(user, &u); err != nil {
		return Identity{}, err
	}
	return Identity{Subject: u.Sub, Email: u.Email, EmailVerified: bool(u.EmailVerified), Name: u.Name}, nil
}

// GitHub: GET /user {"id", "login", "name", "email"} and GET /user/emails
// [{"email", "primary", "verified"}]: the primary verified address wins.
func parseGitHub(user, emails []byte) (Identity, error) {
	id, err := parseNumericUser(user)
	if err != nil {
		return id, err
	}
	if email, verified, ok := primaryEmail(emails); ok && verified {
		id.Email, id.EmailVerified = email, true
	}
	return id, nil
}

// parseNumericUser reads the user document of GitHub ({"id", "login",
// "name", "email"}) and of Gitea and Forgejo ({"id", "login", "full_name",
// "email"}): a numeric id, and the display name, else the login, as name.
func parseNumericUser(user []byte) (Identity, error) {
	var u struct {
		ID       json.Number `json:"id"`
		Login    string      `json:"login"`
		Name     string      `json:"name"`
		FullName string      `json:"full_name"`
		Email    string      `json:"email"`
	}
	if err := decode(user, &u); err != nil {
		return Identity{}, err
	}
	sub, err := numericID(u.ID)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Subject: sub, Email: u.Email, Name: cmp.Or(u.Name, u.FullName, u.Login)}, nil
}

// GitLab: GET /api/v4/user {"id", "username", "name", "email",
// "confirmed_at"}; GitLab's primary e-mail is confirmed when confirmed_at
// is set.
func parseGitLab(user []byte) (Identity, error) {
	var u struct {
		ID          json.Number `json:"id"`
		Username    string      `json:"username"`
		Name        string      `json:"name"`
		Email       string      `json:"email"`
		ConfirmedAt *string     `json:"confirmed_at"`
	}
	if err := decode(user, &u); err != nil {
		return Identity{}, err
	}
	sub, err := numericID(u.ID)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Subject: sub, Email: u.Email, Name: u.Name, EmailVerified: u.ConfirmedAt != nil && *u.ConfirmedAt != ""}
	if id.Name == "" {
		id.Name = u.Username
	}
	return id, nil
}

// Bitbucket: GET /2.0/user {"uuid", "username", "display_name"} and GET
// /2.0/user/emails {"values": [{"email", "is_primary", "is_confirmed"}]}.
func parseBitbucket(user, emails []byte) (Identity, error) {
	var u struct {
		UUID        string `json:"uuid"`
		Username    string `json:"username"`
		DisplayName string `json:"display_name"`
	}
	if err := decode(user, &u); err != nil {
		return Identity{}, err
	}
	id := Identity{Subject: u.UUID, Name: u.DisplayName}
	if id.Name == "" {
		id.Name = u.Username
	}
	if len(emails) > 0 {
		var page struct {
			Values []struct {
				Email       string `json:"email"`
				IsPrimary   bool   `json:"is_primary"`
				IsConfirmed bool   `json:"is_confirmed"`
			} `json:"values"`
		}
		if err := decode(emails, &page); err == nil {
			for _, e := range page.Values {
				if e.IsPrimary {
					id.Email, id.EmailVerified = e.Email, e.IsConfirmed
				}
			}
		}
	}
	return id, nil
}

// Gitea and Forgejo (Codeberg): GET /api/v1/user {"id", "login",
// "full_name", "email"} and GET /api/v1/user/emails [{"email",
// "verified", "primary"}].
func parseGitea(user, emails []byte) (Identity, error) {
	id, err := parseNumericUser(user)
	if err != nil {
		return id, err
	}
	if email, verified, ok := primaryEmail(emails); ok {
		id.Email, id.EmailVerified = email, verified
	}
	return id, nil
}

// primaryEmail reads a GitHub- or Gitea-style e-mail list
// ([{"email", "primary", "verified"}]) and returns its primary address (the
// last one marked primary); ok is false when the list is missing,
// malformed or has no primary address.
func primaryEmail(emails []byte) (email string, verified, ok bool) {
	if len(emails) == 0 {
		return "", false, false
	}
	var list []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := decode(emails, &list); err != nil {
		return "", false, false
	}
	for _, e := range list {
		if e.Primary {
			email, verified, ok = e.Email, e.Verified, true
		}
	}
	return email, verified, ok
}
