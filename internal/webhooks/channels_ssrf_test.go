package webhooks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

// listener counts every request a loopback server receives.
func listener(t *testing.T, addr string, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

// Saving a channel makes no request at all: a matrix:// channel with a
// user name used to log in to its host the moment it was saved, with the
// service's own client, following redirects.
func TestSavingAChannelMakesNoRequest(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	srv, hits := listener(t, "127.0.0.1:0", nil)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, u := range []string{
		"matrix://user:pass@" + host + "/?disableTLS=yes",
		"matrix://:token@" + host + "/?disableTLS=yes&rooms=!room",
		"ntfy://" + host + "/topic?scheme=http",
		"gotify://" + host + "/Aaaaaaaaaaaaaaa?disabletls=yes",
		"generic://" + host + "/x?disabletls=yes",
		"mattermost://" + host + "/token?disabletls=yes",
	} {
		if _, err := f.svc.CreateChannel(ctx, f.teamA, 0, u, nil); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("saving channels sent %d requests", n)
	}
	// Services that cannot promise to use the guarded client are refused
	// with a sentence.
	for _, u := range []string{"smtp://u:p@" + host + "/?to=a@b.c", "rocketchat://" + host + "/token/a", "mqtt://" + host + "/t", "logger://"} {
		_, err := f.svc.CreateChannel(ctx, f.teamA, 0, u, nil)
		if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// A channel whose server redirects its login to an internal address (the
// control plane's admin endpoint) reaches that address at no hop, whether
// the client follows redirects or not, and the answer of the server is
// never repeated to the user: only its host and status.
func TestChannelRedirectToInternalRefusedHopByHop(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	admin, adminHits := listener(t, "127.0.0.2:0", nil)
	evil, _ := listener(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/login") {
			http.Redirect(w, r, admin.URL+"/stop", http.StatusTemporaryRedirect)
			return
		}
		http.Error(w, "secret-internal-detail", http.StatusInternalServerError)
	})
	host := strings.TrimPrefix(evil.URL, "http://")
	ch, err := f.svc.CreateChannel(ctx, f.teamA, 0, "matrix://user:pass@"+host+"/?disableTLS=yes", nil)
	if err != nil {
		t.Fatal(err)
	}
	echo, err := f.svc.CreateChannel(ctx, f.teamA, 0, "generic://"+host+"/hook?disabletls=yes", nil)
	if err != nil {
		t.Fatal(err)
	}
	only := netip.MustParsePrefix("127.0.0.1/32") // the "public" server; 127.0.0.2 stays internal
	for _, follow := range []bool{false, true} {
		d := f.dispatcher(httpx.GuardOptions{Allow: []netip.Prefix{only}, FollowRedirects: follow})
		err := f.svc.TestDeliver(ctx, d, f.teamA, ch.ID)
		if err == nil || strings.Contains(err.Error(), "secret-internal-detail") {
			t.Fatalf("follow=%v: %v", follow, err)
		}
		if follow && !errors.Is(err, httpx.ErrBlockedAddress) {
			t.Fatalf("redirect hop not refused by the guard: %v", err)
		}
		err = f.svc.TestDeliver(ctx, d, f.teamA, echo.ID)
		if err == nil || strings.Contains(err.Error(), "secret-internal-detail") || !strings.Contains(err.Error(), "127.0.0.1 answered HTTP 500") {
			t.Fatalf("error of the target: %v", err)
		}
	}
	if n := adminHits.Load(); n != 0 {
		t.Fatalf("the internal address received %d requests", n)
	}
	var stored string
	f.db.Pool.QueryRow(ctx, "SELECT string_agg(last_error, ' | ') FROM webhook_deliveries").Scan(&stored)
	if strings.Contains(stored, "secret-internal-detail") {
		t.Fatalf("stored errors repeat the target: %s", stored)
	}
}

// A webhook that gets no answer is reported by host only: the client's own
// error would repeat the whole URL, token included, which is write-only.
func TestWebhookFailureNamesHostOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, target := range []string{"http://" + closed + "/hook?token=s3cretvalue", "http://127.0.0.2:9/hook?token=s3cretvalue"} {
		w, _, err := f.svc.Create(ctx, f.teamA, 0, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = f.svc.TestDeliver(ctx, f.dispatcher(loopbackOnly), f.teamA, w.ID)
		if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "/hook") {
			t.Fatalf("%s: %v", target, err)
		}
	}
	var stored string
	f.db.Pool.QueryRow(ctx, "SELECT string_agg(last_error, ' | ') FROM webhook_deliveries").Scan(&stored)
	if strings.Contains(stored, "s3cret") || !strings.Contains(stored, "could not reach 127.0.0.1") || !strings.Contains(stored, "not allowed: 127.0.0.2") {
		t.Fatalf("stored errors: %s", stored)
	}
}

// Every accepted service sends through the guarded client: with every
// name resolving to loopback (refused), each send ends at the guard and
// the loopback listener receives nothing. A service that dialed on its own
// would reach the listener or a real resolver instead.
func TestEveryChannelServiceSendsThroughTheGuard(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	srv, hits := listener(t, "127.0.0.1:0", nil)
	host := strings.TrimPrefix(srv.URL, "http://")
	toLoopback := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	d := f.dispatcher(httpx.GuardOptions{Resolve: toLoopback})
	urls := map[string]string{
		"discord":    "discord://token@123456789",
		"slack":      "slack://hook:T00000000-B00000000-XXXXXXXXXXXXXXXXXXXXXXXX@webhook",
		"telegram":   "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=123456",
		"matrix":     "matrix://user:pass@" + host + "/?disableTLS=yes&rooms=!room",
		"ntfy":       "ntfy://" + host + "/topic?scheme=http",
		"gotify":     "gotify://" + host + "/Aaaaaaaaaaaaaaa?disabletls=yes",
		"mattermost": "mattermost://" + host + "/token?disabletls=yes",
		"googlechat": "googlechat://chat.googleapis.com/v1/spaces/FOO/messages?key=bar&token=baz",
		"pushover":   "pushover://shoutrrr:token@userkey/?devices=dev",
		"zulip":      "zulip://bot%40example.com:key@zulip.example.com?stream=x&topic=y",
		"generic":    "generic://" + host + "/x?disabletls=yes",
		"teams":      "teams://?host=" + url.QueryEscape("https://prod-00.westus.logic.azure.com:443/workflows/abc123/triggers/manual/paths/invoke?api-version=2016-06-00&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=XXXXXXXX"),
	}
	for scheme := range channelServices {
		if scheme == "hangouts" { // the same service as googlechat
			continue
		}
		u, ok := urls[scheme]
		if !ok {
			t.Errorf("%s is accepted but not tested here", scheme)
			continue
		}
		ch, err := f.svc.CreateChannel(ctx, f.teamA, 0, u, nil)
		if err != nil {
			t.Errorf("%s: %v", scheme, err)
			continue
		}
		if err := f.svc.TestDeliver(ctx, d, f.teamA, ch.ID); !errors.Is(err, httpx.ErrBlockedAddress) {
			t.Errorf("%s: send not stopped by the guard: %v", scheme, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback listener received %d requests", n)
	}
}
