package gitproviders

import (
	"net/http"
	"os"
	"testing"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// headers builds the headers each provider really sends with a delivery.
func headers(provider, event, delivery string, secret, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	switch provider {
	case GitHub:
		h.Set("X-GitHub-Event", event)
		h.Set("X-GitHub-Delivery", delivery)
		h.Set("User-Agent", "GitHub-Hookshot/044aadd")
	case GitLab:
		h.Set("X-Gitlab-Event", event)
		h.Set("X-Gitlab-Event-UUID", delivery)
		h.Set("X-Gitlab-Webhook-UUID", delivery)
	case Bitbucket:
		h.Set("X-Event-Key", event)
		h.Set("X-Request-UUID", delivery)
		h.Set("X-Hook-UUID", "cb7c4bb4-4f66-4b30-9b2c-56d9c3ee4e43")
	case Codeberg:
		h.Set("X-Gitea-Event", event)
		h.Set("X-Gitea-Delivery", delivery)
		h.Set("X-Forgejo-Event", event)
	}
	k, v := Sign(provider, secret, body)
	h.Set(k, v)
	return h
}

func TestParseProviderFixtures(t *testing.T) {
	secret := []byte("s3cret-webhook-key")
	cases := []struct {
		provider, event, file string
		want                  Event
		pr                    *PullRequest
	}{
		{GitHub, "push", "github_push.json", Event{Kind: EventPush, Branch: "main", Commit: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Message: "Update README.md"}, nil},
		{GitHub, "pull_request", "github_pull_request.json", Event{Kind: EventPullRequest}, &PullRequest{Number: 1, Action: PROpened, HeadBranch: "changes", HeadSHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Title: "Update the README with new information"}},
		{GitLab, "Push Hook", "gitlab_push.json", Event{Kind: EventPush, Branch: "master", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Message: "fixed readme"}, nil},
		{GitLab, "Merge Request Hook", "gitlab_merge_request.json", Event{Kind: EventPullRequest}, &PullRequest{Number: 1, Action: PROpened, HeadBranch: "ms-viewport", HeadSHA: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Title: "MS-Viewport"}},
		{Bitbucket, "repo:push", "bitbucket_push.json", Event{Kind: EventPush, Branch: "main", Commit: "709d658dc5b6d6afcd46049c2f332ee3f515a67d", Message: "new commit message\n"}, nil},
		{Bitbucket, "pullrequest:created", "bitbucket_pullrequest_created.json", Event{Kind: EventPullRequest}, &PullRequest{Number: 7, Action: PROpened, HeadBranch: "feature/pricing", HeadSHA: "d3022fc0ca3d", Title: "Add a pricing page"}},
		{Codeberg, "push", "codeberg_push.json", Event{Kind: EventPush, Branch: "develop", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Message: "Webhooks Yay!"}, nil},
		{Codeberg, "pull_request", "codeberg_pull_request.json", Event{Kind: EventPullRequest}, &PullRequest{Number: 12, Action: PRUpdated, HeadBranch: "dark-mode", HeadSHA: "a2b4c6d8e0f1a2b4c6d8e0f1a2b4c6d8e0f1a2b4", Title: "Add dark mode"}},
	}
	for _, c := range cases {
		t.Run(c.provider+"/"+c.file, func(t *testing.T) {
			body := fixture(t, c.file)
			h := headers(c.provider, c.event, "delivery-1", secret, body)
			if err := VerifySignature(c.provider, secret, h, body); err != nil {
				t.Fatalf("verify: %v", err)
			}
			ev, err := ParseEvent(c.provider, h, body)
			if err != nil {
				t.Fatal(err)
			}
			if ev.DeliveryID != "delivery-1" {
				t.Errorf("delivery id %q", ev.DeliveryID)
			}
			if ev.Kind != c.want.Kind || ev.Branch != c.want.Branch || ev.Commit != c.want.Commit || ev.Message != c.want.Message {
				t.Errorf("event %+v, want %+v", *ev, c.want)
			}
			if (ev.PR == nil) != (c.pr == nil) || (c.pr != nil && *ev.PR != *c.pr) {
				t.Errorf("pr %+v, want %+v", ev.PR, c.pr)
			}
		})
	}
}

func TestSignatureRejections(t *testing.T) {
	secret := []byte("right-secret")
	body := fixture(t, "github_push.json")
	for _, p := range Providers {
		t.Run(p, func(t *testing.T) {
			h := headers(p, "push", "d", secret, body)
			if err := VerifySignature(p, secret, h, body); err != nil {
				t.Fatalf("good signature rejected: %v", err)
			}
			// Wrong secret.
			if err := VerifySignature(p, []byte("wrong-secret"), h, body); err == nil {
				t.Error("wrong secret accepted")
			}
			// Body modified after signing.
			mod := append([]byte(nil), body...)
			mod[10] ^= 1
			if p != GitLab { // GitLab's token does not cover the body
				if err := VerifySignature(p, secret, h, mod); err == nil {
					t.Error("modified body accepted")
				}
			}
			// No signature header at all.
			k, _ := Sign(p, secret, body)
			h.Del(k)
			if p == Codeberg {
				h.Del("X-Forgejo-Signature")
			}
			if err := VerifySignature(p, secret, h, body); err != ErrNoSignature {
				t.Errorf("unsigned: %v", err)
			}
		})
	}
	// GitHub's header without the sha256= prefix is not accepted.
	h := http.Header{}
	h.Set("X-Hub-Signature-256", string(hmacHex(secret, body)))
	if err := VerifySignature(GitHub, secret, h, body); err != ErrBadSignature {
		t.Errorf("unprefixed signature: %v", err)
	}
	if err := VerifySignature(GitHub, nil, h, body); err == nil {
		t.Error("empty secret accepted")
	}
}

func TestBranchDeletionAndTags(t *testing.T) {
	h := http.Header{}
	h.Set("X-GitHub-Event", "push")
	ev, err := ParseEvent(GitHub, h, []byte(`{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000","deleted":true}`))
	if err != nil || !ev.Deleted || ev.Kind != EventPush {
		t.Fatalf("deletion: %+v %v", ev, err)
	}
	ev, err = ParseEvent(GitHub, h, []byte(`{"ref":"refs/tags/v1.0","after":"abc"}`))
	if err != nil || ev.Kind != EventOther {
		t.Fatalf("tag push must not deploy: %+v %v", ev, err)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, name := range []string{"github_push.json", "gitlab_push.json", "bitbucket_push.json", "codeberg_pull_request.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"push":{"changes":[{"new":null,"old":{"type":"branch"}}]}}`))
	events := map[string][2]string{
		GitHub: {"push", "pull_request"}, GitLab: {"Push Hook", "Merge Request Hook"},
		Bitbucket: {"repo:push", "pullrequest:updated"}, Codeberg: {"push", "pull_request"},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for p, evs := range events {
			for _, e := range evs {
				h := headers(p, e, "x", []byte("k"), body)
				ev, err := ParseEvent(p, h, body)
				if err == nil && ev.Kind == EventPullRequest && ev.PR == nil {
					t.Fatalf("%s %s: pull request event without PR", p, e)
				}
			}
		}
	})
}

// A pull request whose head is in another repository is a fork; one in
// the hook's own repository is not (GitHub, GitLab, Bitbucket shapes).
func TestForkPullRequests(t *testing.T) {
	gh := func(head string) []byte {
		return []byte(`{"action":"opened","number":3,"pull_request":{"title":"t","head":{"ref":"f","sha":"abc1234",
			"repo":{"full_name":"` + head + `","clone_url":"https://github.com/` + head + `.git"}}},"repository":{"full_name":"acme/site"}}`)
	}
	for _, c := range []struct {
		provider, event string
		body            []byte
		fork            bool
		headRepo        string
	}{
		{GitHub, "pull_request", gh("acme/site"), false, ""},
		{GitHub, "pull_request", gh("mallory/site"), true, "https://github.com/mallory/site.git"},
		{GitHub, "pull_request", []byte(`{"action":"opened","number":3,"pull_request":{"head":{"ref":"f","sha":"abc1234","repo":null}},"repository":{"full_name":"acme/site"}}`), true, ""},
		{GitLab, "Merge Request Hook", []byte(`{"object_attributes":{"iid":3,"action":"open","source_branch":"f","source_project_id":9,"target_project_id":4,
			"source":{"git_http_url":"https://gitlab.com/mallory/site.git"},"last_commit":{"id":"abc1234"}}}`), true, "https://gitlab.com/mallory/site.git"},
		{Bitbucket, "pullrequest:created", []byte(`{"pullrequest":{"id":3,"source":{"branch":{"name":"f"},"commit":{"hash":"abc1234"},
			"repository":{"full_name":"mallory/site"}},"destination":{"repository":{"full_name":"acme/site"}}}}`), true, "https://bitbucket.org/mallory/site.git"},
	} {
		ev, err := ParseEvent(c.provider, headers(c.provider, c.event, "d", []byte("s"), c.body), c.body)
		if err != nil || ev.PR == nil || ev.PR.Fork != c.fork || ev.PR.HeadRepo != c.headRepo {
			t.Errorf("%s %s: %+v %v", c.provider, c.body, ev, err)
		}
	}
	// The fixtures (same repository) are not forks.
	for _, f := range []struct{ provider, event, file string }{
		{GitHub, "pull_request", "github_pull_request.json"}, {GitLab, "Merge Request Hook", "gitlab_merge_request.json"},
		{Bitbucket, "pullrequest:created", "bitbucket_pullrequest_created.json"}, {Codeberg, "pull_request", "codeberg_pull_request.json"},
	} {
		body := fixture(t, f.file)
		ev, err := ParseEvent(f.provider, headers(f.provider, f.event, "d", []byte("s"), body), body)
		if err != nil || ev.PR == nil || ev.PR.Fork {
			t.Errorf("%s fixture: %+v %v", f.provider, ev, err)
		}
	}
}
