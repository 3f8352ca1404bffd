package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/teams"
)

// personalTeam gives a new account a team it owns, on the plan registry's
// default plan, named after the person. Its slug is made from the e-mail's
// local part and a random suffix (slugs are unique across teams).
func (h *Handler) personalTeam(ctx context.Context, userID int64, email, name, ip string) error {
	label := strings.TrimSpace(name)
	if label == "" {
		label, _, _ = strings.Cut(email, "@")
	}
	if len(label) > 80 {
		label = label[:80]
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	slug := teamSlug(email) + "-" + hex.EncodeToString(suffix)
	plan := h.wh.PlanRegistry().Default()
	return pgx.BeginFunc(ctx, h.wh.Pool(), func(tx pgx.Tx) error {
		t, err := teams.Create(ctx, tx, label+"'s team", slug, plan, userID)
		if err != nil {
			return err
		}
		return accounts.Audit(ctx, tx, t.ID, userID, "team.create", slug, ip, map[string]any{"plan": plan, "reason": "sign-up"})
	})
}

// teamSlug makes the start of a slug from an e-mail's local part: lower
// case letters and digits, other runs become one dash, at most 40
// characters, "team" when nothing is left.
func teamSlug(email string) string {
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	var b strings.Builder
	dash := false
	for _, r := range local {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		return "team"
	}
	return s
}
