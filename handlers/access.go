package handlers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/views"
)

// GuessCounter counts passphrase tries per client address, shared by every
// process (access.Guesses, in Redis).
type GuessCounter interface {
	// Add counts one try from addr and returns the tries in the current
	// window (this one included) and the time left in it; the window
	// starts at the address's first try.
	Add(ctx context.Context, addr string, window time.Duration) (n int64, left time.Duration, err error)
	// Refund takes back a try that Add counted.
	Refund(ctx context.Context, addr string) error
}

// Grant cookie names: the __Host- prefix over HTTPS, as for the session.
const (
	grantCookie       = "parley_access"
	secureGrantCookie = "__Host-parley_access"
)

func grantCookieName(r *http.Request) string {
	if session.IsHTTPS(r) {
		return secureGrantCookie
	}
	return grantCookie
}

// requireAccess lets a request through to next when this Parley's access
// mode allows it (access.Gate.Allowed). It runs after the session
// middleware: a grant is bound to the session's owner. In header mode a
// request that names its user gets that user's owner instead of its
// cookie's, so that a person's conversations follow them.
func requireAccess(d Deps, next http.Handler) http.Handler {
	g := d.Access
	switch g.Mode() {
	case access.Open:
		return next
	case access.Code:
		if d.Guesses == nil {
			panic("handlers: code access needs Deps.Guesses")
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		granted := false
		switch g.Mode() {
		case access.Code:
			if c, err := r.Cookie(grantCookieName(r)); err == nil {
				granted = g.Granted(session.Owner(r.Context()), c.Value)
			}
		case access.Header:
			if user, ok := g.User(r.Header); ok {
				granted = true
				r = r.WithContext(session.WithOwner(r.Context(), g.Owner(user)))
			}
		}
		if !granted {
			// Pages without access (the read-only view of a shared link)
			// invite the person in instead of offering "Start your own".
			r = r.WithContext(views.WithStartOwn(r.Context(), startOwnText(g.Mode())))
		}
		if g.Allowed(r.Method, r.URL.Path, granted) {
			next.ServeHTTP(w, r)
			return
		}
		refuseAccess(d, w, r)
	})
}

func startOwnText(m access.Mode) string {
	if m == access.Header {
		return "Sign in to start your own"
	}
	return "Enter the passphrase to start your own"
}

// refuseAccess answers a request that needs access it does not have. The
// Datastar client gets a 403 whose words show in the composer; a page or a
// plain form gets the passphrase page (401, code mode) or the sign-in page
// (403, header mode).
func refuseAccess(d Deps, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	code := d.Access.Mode() == access.Code
	if isDatastar(r) {
		msg := "Sign in again to go on: your sign-in did not reach Parley (it may have expired). Reload the page."
		if code {
			msg = "This Parley is private. Reload the page and enter the passphrase to go on."
		}
		respond(d, w, r, "", badRequest(http.StatusForbidden, "%s", msg), nil)
		return
	}
	if code {
		passphrasePage(d, w, r, http.StatusUnauthorized, access.ReturnPath(r.Method, r.URL), "")
		return
	}
	render(w, r, http.StatusForbidden, views.SignInRequired(d.Assets))
}

// passphrasePage asks for the passphrase, then sends the person to next.
// 401 tells clients the page needs credentials; the challenge names no
// scheme a browser would open a dialog for.
func passphrasePage(d Deps, w http.ResponseWriter, r *http.Request, status int, next, errText string) {
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Passphrase realm="Parley"`)
	}
	render(w, r, status, views.AccessPage(d.Assets, views.AccessForm{Next: access.LocalPath(next), Error: errText}))
}

// handleAccess serves POST /access: the passphrase form (code mode). A
// right passphrase gets a grant cookie bound to the browser's owner and
// the current passphrase, and a 303 to where the person was going. Wrong
// ones are counted per client address across processes: after
// access.MaxGuesses in access.GuessWindow every try is refused (429) until
// the window ends, whatever the cookies.
func handleAccess(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := d.Access
		if g.Mode() != access.Code {
			notFound(d, w, r)
			return
		}
		if err := readForm(d, w, r); err != nil {
			status, msg := statusOf(d, err)
			passphrasePage(d, w, r, status, "/", msg)
			return
		}
		next := access.LocalPath(r.PostFormValue("next"))
		addr := d.Clients.Of(r)
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		// The try is counted before the passphrase is compared, so that
		// tries sent at once cannot all slip under the limit.
		n, left, err := d.Guesses.Add(ctx, addr, access.GuessWindow)
		if err != nil {
			d.Log.Error("count a passphrase try", "err", err)
			passphrasePage(d, w, r, http.StatusServiceUnavailable, next,
				"The server cannot check passphrases right now. Try again in a few seconds.")
			return
		}
		if n > access.MaxGuesses {
			w.Header().Set("Retry-After", fmt.Sprint(seconds(left)))
			passphrasePage(d, w, r, http.StatusTooManyRequests, next, fmt.Sprintf(
				"Too many wrong passphrases were tried from your network. Wait %s, then try again.", minutes(left)))
			return
		}
		if !g.CodeMatches(r.PostFormValue("code")) {
			d.Log.Warn("wrong passphrase", "client", addr, "tries", n)
			tries := access.MaxGuesses - int(n)
			msg := fmt.Sprintf("That passphrase is not right. %d %s left before a %d-minute wait.",
				tries, countWord(tries, "try", "tries"), int(access.GuessWindow/time.Minute))
			if tries == 0 {
				w.Header().Set("Retry-After", fmt.Sprint(seconds(left)))
				msg = fmt.Sprintf("That passphrase is not right, and that was the last try: wait %s, then try again.", minutes(left))
			}
			passphrasePage(d, w, r, http.StatusUnauthorized, next, msg)
			return
		}
		if err := d.Guesses.Refund(ctx, addr); err != nil {
			d.Log.Warn("refund a passphrase try; it ages out", "err", err)
		}
		owner := session.Owner(r.Context())
		http.SetCookie(w, &http.Cookie{
			Name:     grantCookieName(r),
			Value:    g.Grant(owner),
			Path:     "/",
			MaxAge:   int(g.MaxAge().Seconds()),
			HttpOnly: true,
			Secure:   session.IsHTTPS(r),
			SameSite: http.SameSiteLaxMode,
		})
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
}

func seconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

func minutes(d time.Duration) string {
	m := int((d + time.Minute - 1) / time.Minute)
	m = max(1, m)
	return fmt.Sprintf("%d %s", m, countWord(m, "minute", "minutes"))
}

func countWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
