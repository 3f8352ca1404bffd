package gitproviders

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Provider names, as they appear in webhook URLs and the apps table.
const (
	GitHub    = "github"
	GitLab    = "gitlab"
	Bitbucket = "bitbucket"
	Codeberg  = "codeberg" // Gitea/Forgejo API and webhook format
)

// Providers lists every supported provider.
var Providers = []string{GitHub, GitLab, Bitbucket, Codeberg}

// Known reports whether p is a supported provider.
func Known(p string) bool {
	for _, k := range Providers {
		if p == k {
			return true
		}
	}
	return false
}

// Event kinds after normalisation.
const (
	EventPush        = "push"
	EventPullRequest = "pull_request"
	EventPing        = "ping"
	EventOther       = "other"
)

// Pull request actions after normalisation.
const (
	PROpened  = "opened"  // opened or reopened
	PRUpdated = "updated" // new commits pushed
	PRClosed  = "closed"  // closed or merged
	PROther   = "other"   // labels, comments, …
)

// Event is a provider's webhook delivery reduced to what the deploy pipeline
// needs.
type Event struct {
	Provider   string
	Kind       string
	DeliveryID string
	// Push: the branch (without refs/heads/) and the new head commit.
	Branch  string
	Commit  string
	Message string
	Deleted bool // the push deleted the branch
	// Pull request.
	PR *PullRequest
}

// PullRequest is a pull/merge request event.
type PullRequest struct {
	Number     int
	Action     string
	HeadBranch string
	HeadSHA    string
	Title      string
	// Fork: the head is in another repository than the base. HeadRepo
	// is then that repository's https clone URL.
	Fork     bool
	HeadRepo string
}

var (
	// ErrBadSignature means the delivery is not signed with the app's secret.
	ErrBadSignature = errors.New("webhook signature does not match")
	// ErrNoSignature means the delivery carries no signature at all.
	ErrNoSignature = errors.New("webhook is not signed")
)

func hmacHex(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return []byte(hex.EncodeToString(m.Sum(nil)))
}

// VerifySignature checks a delivery with each provider's real scheme, in
// constant time:
//   - GitHub:    X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>
//   - Bitbucket: X-Hub-Signature: sha256=<hex HMAC-SHA256(body)>
//   - Codeberg:  X-Gitea-Signature (or X-Forgejo-Signature): <hex HMAC-SHA256(body)>
//   - GitLab:    X-Gitlab-Token: <the secret itself>
func VerifySignature(provider string, secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		return errors.New("app has no webhook secret")
	}
	var got string
	switch provider {
	case GitHub:
		got = h.Get("X-Hub-Signature-256")
	case Bitbucket:
		got = h.Get("X-Hub-Signature")
	case Codeberg:
		if got = h.Get("X-Gitea-Signature"); got == "" {
			got = h.Get("X-Forgejo-Signature")
		}
	case GitLab:
		tok := h.Get("X-Gitlab-Token")
		if tok == "" {
			return ErrNoSignature
		}
		if subtle.ConstantTimeCompare([]byte(tok), secret) != 1 {
			return ErrBadSignature
		}
		return nil
	default:
		return fmt.Errorf("unknown provider %q", provider)
	}
	if got == "" {
		return ErrNoSignature
	}
	if provider != Codeberg {
		var ok bool
		if got, ok = strings.CutPrefix(got, "sha256="); !ok {
			return ErrBadSignature
		}
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), hmacHex(secret, body)) != 1 {
		return ErrBadSignature
	}
	return nil
}

// Sign returns the signature header a provider would send for body; the
// test servers and TestDeliver-style tools use it.
func Sign(provider string, secret, body []byte) (header, value string) {
	switch provider {
	case GitHub:
		return "X-Hub-Signature-256", "sha256=" + string(hmacHex(secret, body))
	case Bitbucket:
		return "X-Hub-Signature", "sha256=" + string(hmacHex(secret, body))
	case Codeberg:
		return "X-Gitea-Signature", string(hmacHex(secret, body))
	case GitLab:
		return "X-Gitlab-Token", string(secret)
	}
	return "", ""
}

// DeliveryID returns the provider's unique id of a delivery.
func DeliveryID(provider string, h http.Header) string {
	switch provider {
	case GitHub:
		return h.Get("X-GitHub-Delivery")
	case GitLab:
		if id := h.Get("X-Gitlab-Webhook-UUID"); id != "" {
			return id
		}
		return h.Get("X-Gitlab-Event-UUID")
	case Bitbucket:
		return h.Get("X-Request-UUID")
	case Codeberg:
		if id := h.Get("X-Gitea-Delivery"); id != "" {
			return id
		}
		return h.Get("X-Forgejo-Delivery")
	}
	return ""
}

// ParseEvent decodes a verified delivery. Unknown event types are returned
// as EventOther, not as errors, so providers' new events are ignored
// politely.
func ParseEvent(provider string, h http.Header, body []byte) (*Event, error) {
	ev := &Event{Provider: provider, Kind: EventOther, DeliveryID: DeliveryID(provider, h)}
	var err error
	switch provider {
	case GitHub:
		err = parseGitHubLike(ev, h.Get("X-GitHub-Event"), body)
	case Codeberg:
		kind := h.Get("X-Gitea-Event")
		if kind == "" {
			kind = h.Get("X-Forgejo-Event")
		}
		err = parseGitHubLike(ev, kind, body)
	case GitLab:
		err = parseGitLab(ev, h.Get("X-Gitlab-Event"), body)
	case Bitbucket:
		err = parseBitbucket(ev, h.Get("X-Event-Key"), body)
	default:
		return nil, fmt.Errorf("unknown provider %q", provider)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding %s webhook: %w", provider, err)
	}
	return ev, nil
}

const zeroSHA = "0000000000000000000000000000000000000000"

// GitHub and Gitea share the push and pull_request payload shapes.
func parseGitHubLike(ev *Event, kind string, body []byte) error {
	switch kind {
	case "ping":
		ev.Kind = EventPing
		return nil
	case "push":
		var p struct {
			Ref        string `json:"ref"`
			After      string `json:"after"`
			Deleted    bool   `json:"deleted"`
			HeadCommit *struct {
				ID      string `json:"id"`
				Message string `json:"message"`
			} `json:"head_commit"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		ev.Kind = EventPush
		ev.Branch, _ = strings.CutPrefix(p.Ref, "refs/heads/")
		if !strings.HasPrefix(p.Ref, "refs/heads/") {
			ev.Kind = EventOther // tags
		}
		ev.Commit = p.After
		ev.Deleted = p.Deleted || p.After == zeroSHA
		if p.HeadCommit != nil {
			ev.Message = p.HeadCommit.Message
		}
		return nil
	case "pull_request":
		var p struct {
			Action      string `json:"action"`
			Number      int    `json:"number"`
			PullRequest struct {
				Title string `json:"title"`
				Head  struct {
					Ref  string  `json:"ref"`
					SHA  string  `json:"sha"`
					Repo *ghRepo `json:"repo"`
				} `json:"head"`
			} `json:"pull_request"`
			Repository *ghRepo `json:"repository"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		ev.Kind = EventPullRequest
		pr := &PullRequest{Number: p.Number, HeadBranch: p.PullRequest.Head.Ref, HeadSHA: p.PullRequest.Head.SHA, Title: p.PullRequest.Title}
		// A head repository that is gone (deleted fork) or is not the hook's
		// repository is a fork: never trusted with the parent's secrets.
		if h, b := p.PullRequest.Head.Repo, p.Repository; h == nil || b == nil || !strings.EqualFold(h.FullName, b.FullName) {
			pr.Fork = true
			if h != nil {
				pr.HeadRepo = h.CloneURL
			}
		}
		switch p.Action {
		case "opened", "reopened":
			pr.Action = PROpened
		case "synchronize", "synchronized":
			pr.Action = PRUpdated
		case "closed":
			pr.Action = PRClosed
		default:
			pr.Action = PROther
		}
		ev.PR = pr
		return nil
	}
	return nil
}

func parseGitLab(ev *Event, kind string, body []byte) error {
	switch kind {
	case "Push Hook":
		var p struct {
			Ref         string `json:"ref"`
			After       string `json:"after"`
			CheckoutSHA string `json:"checkout_sha"`
			Commits     []struct {
				ID      string `json:"id"`
				Message string `json:"message"`
			} `json:"commits"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		ev.Kind = EventPush
		ev.Branch, _ = strings.CutPrefix(p.Ref, "refs/heads/")
		ev.Commit = p.After
		if p.CheckoutSHA != "" {
			ev.Commit = p.CheckoutSHA
		}
		ev.Deleted = p.After == zeroSHA
		for _, c := range p.Commits {
			if c.ID == ev.Commit {
				ev.Message = c.Message
			}
		}
		return nil
	case "Merge Request Hook":
		var p struct {
			ObjectAttributes struct {
				IID          int    `json:"iid"`
				Action       string `json:"action"`
				Title        string `json:"title"`
				SourceBranch string `json:"source_branch"`
				SourceID     int64  `json:"source_project_id"`
				TargetID     int64  `json:"target_project_id"`
				Source       struct {
					HTTPURL string `json:"git_http_url"`
				} `json:"source"`
				LastCommit struct {
					ID string `json:"id"`
				} `json:"last_commit"`
			} `json:"object_attributes"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		oa := p.ObjectAttributes
		ev.Kind = EventPullRequest
		pr := &PullRequest{Number: oa.IID, HeadBranch: oa.SourceBranch, HeadSHA: oa.LastCommit.ID, Title: oa.Title}
		if oa.SourceID != oa.TargetID {
			pr.Fork, pr.HeadRepo = true, oa.Source.HTTPURL
		}
		switch oa.Action {
		case "open", "reopen":
			pr.Action = PROpened
		case "update":
			pr.Action = PRUpdated
		case "close", "merge":
			pr.Action = PRClosed
		default:
			pr.Action = PROther
		}
		ev.PR = pr
		return nil
	case "System Hook":
		return nil
	}
	return nil
}

func parseBitbucket(ev *Event, kind string, body []byte) error {
	switch kind {
	case "diagnostics:ping":
		ev.Kind = EventPing
		return nil
	case "repo:push":
		var p struct {
			Push struct {
				Changes []struct {
					New *struct {
						Type   string `json:"type"`
						Name   string `json:"name"`
						Target struct {
							Hash    string `json:"hash"`
							Message string `json:"message"`
						} `json:"target"`
					} `json:"new"`
					Old *struct {
						Type string `json:"type"`
						Name string `json:"name"`
					} `json:"old"`
				} `json:"changes"`
			} `json:"push"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		// A push can carry several ref changes; the pipeline tracks one
		// branch, so report the last branch change (Bitbucket orders them).
		for _, c := range p.Push.Changes {
			switch {
			case c.New != nil && c.New.Type == "branch":
				ev.Kind, ev.Branch, ev.Commit, ev.Message, ev.Deleted = EventPush, c.New.Name, c.New.Target.Hash, c.New.Target.Message, false
			case c.New == nil && c.Old != nil && c.Old.Type == "branch":
				ev.Kind, ev.Branch, ev.Commit, ev.Deleted = EventPush, c.Old.Name, "", true
			}
		}
		return nil
	case "pullrequest:created", "pullrequest:updated", "pullrequest:fulfilled", "pullrequest:rejected":
		var p struct {
			PullRequest struct {
				ID     int    `json:"id"`
				Title  string `json:"title"`
				Source struct {
					Branch struct {
						Name string `json:"name"`
					} `json:"branch"`
					Commit struct {
						Hash string `json:"hash"`
					} `json:"commit"`
					Repository struct {
						FullName string `json:"full_name"`
					} `json:"repository"`
				} `json:"source"`
				Destination struct {
					Repository struct {
						FullName string `json:"full_name"`
					} `json:"repository"`
				} `json:"destination"`
			} `json:"pullrequest"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		ev.Kind = EventPullRequest
		pr := &PullRequest{Number: p.PullRequest.ID, HeadBranch: p.PullRequest.Source.Branch.Name,
			HeadSHA: p.PullRequest.Source.Commit.Hash, Title: p.PullRequest.Title}
		if src, dst := p.PullRequest.Source.Repository.FullName, p.PullRequest.Destination.Repository.FullName; !strings.EqualFold(src, dst) {
			pr.Fork = true
			if validRepo(src) == nil {
				pr.HeadRepo = "https://bitbucket.org/" + src + ".git"
			}
		}
		switch kind {
		case "pullrequest:created":
			pr.Action = PROpened
		case "pullrequest:updated":
			pr.Action = PRUpdated
		default:
			pr.Action = PRClosed
		}
		ev.PR = pr
		return nil
	}
	return nil
}
