package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
)

// Sign-in. With OIDC configured the console signs people in by the
// authorization code flow with PKCE (S256): /console/oidc/login sends the
// browser to the provider with a fresh state, nonce and code challenge,
// kept server-side under a short-lived cookie (SameSite=Lax: the
// provider's redirect back is a cross-site navigation); the callback
// checks the state, exchanges the code with the verifier, verifies the ID
// token (issuer, audience = client_id, signature, expiry, nonce) and maps
// its groups exactly as for API JWTs. Without OIDC the person pastes a
// paytrail token. Either way the session cookie is new, HttpOnly and
// SameSite=Strict.

var errSignInFailed = newError(http.StatusUnauthorized, "unauthenticated", "sign-in failed: the token is unknown, revoked or malformed")

func (s *Server) renderSignIn(c *gin.Context, status int, e *Error) {
	csrf := randomToken()
	v := s.console.sessions.newPre(&preSession{csrf: csrf})
	s.setCookie(c, preCookie, v, int(loginTimeout/time.Second), http.SameSiteStrictMode)
	s.render(c, status, "signin", &pageData{Title: "Sign in", Error: e, CSRF: csrf,
		Data: struct{ OIDC bool }{s.console.oidc != nil}})
}

func (s *Server) consoleSignInPage(c *gin.Context) {
	if v, _ := c.Cookie(sessionCookie); v != "" {
		if _, ok := s.console.sessions.get(v); ok {
			c.Redirect(http.StatusSeeOther, "/console/")
			return
		}
	}
	s.renderSignIn(c, http.StatusOK, nil)
}

// consoleSignIn signs in with a pasted paytrail token (POST: the token is
// never in a URL).
func (s *Server) consoleSignIn(c *gin.Context) {
	v, _ := c.Cookie(preCookie)
	want := "" // no sign-in form was served to this browser: refused
	if pre, ok := s.console.sessions.getPre(v, true); ok {
		want = pre.csrf
	}
	if !s.checkCSRF(c, want) {
		return
	}
	token := strings.TrimSpace(c.PostForm("token"))
	r, _ := http.NewRequestWithContext(c, http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	p, err := auth.Bearer{Lookup: s.principals}.Authenticate(c, r)
	if errors.Is(err, auth.ErrUnauthenticated) {
		s.denySignIn(c, nil, errSignInFailed)
		return
	}
	if err != nil {
		s.renderSignIn(c, toError(err).Status, toError(err))
		return
	}
	if !s.startSession(c, p, auth.HashToken(token), nil, time.Time{}) {
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/")
}

// consoleOIDCLogin starts the authorization code flow.
func (s *Server) consoleOIDCLogin(c *gin.Context) {
	if s.console.oidc == nil {
		s.renderError(c, "", errNotFound)
		return
	}
	oc, err := s.console.oidc.OAuth2(c)
	if err != nil {
		s.log.Warn("console sign-in: identity provider unavailable", "err", err)
		s.renderSignIn(c, http.StatusServiceUnavailable, newError(http.StatusServiceUnavailable, "issuer_unavailable",
			"the identity provider cannot be reached right now; try again in a moment"))
		return
	}
	s.redirectURL(c, oc)
	pre := &preSession{state: randomToken(), nonce: randomToken(), verifier: oauth2.GenerateVerifier()}
	v := s.console.sessions.newPre(pre)
	s.setCookie(c, preCookie, v, int(loginTimeout/time.Second), http.SameSiteLaxMode)
	c.Redirect(http.StatusFound, oc.AuthCodeURL(pre.state, oauth2.S256ChallengeOption(pre.verifier),
		oauth2.SetAuthURLParam("nonce", pre.nonce)))
}

var errLoginFailed = newError(http.StatusUnauthorized, "unauthenticated", "sign-in with your identity provider failed; try again")

// consoleOIDCCallback finishes the flow: state, code exchange with the
// PKCE verifier, ID token and nonce, role mapping.
func (s *Server) consoleOIDCCallback(c *gin.Context) {
	if s.console.oidc == nil {
		s.renderError(c, "", errNotFound)
		return
	}
	v, _ := c.Cookie(preCookie)
	pre, ok := s.console.sessions.getPre(v, true)
	s.setCookie(c, preCookie, "", -1, http.SameSiteLaxMode)
	if !ok || pre.state == "" || !constantEqual(c.Query("state"), pre.state) {
		s.denySignIn(c, nil, newError(http.StatusBadRequest, "invalid_state", "this sign-in was not started here or has expired; start again"))
		return
	}
	if c.Query("error") != "" || c.Query("code") == "" {
		s.denySignIn(c, nil, errLoginFailed)
		return
	}
	oc, err := s.console.oidc.OAuth2(c)
	if err != nil {
		s.renderSignIn(c, http.StatusServiceUnavailable, newError(http.StatusServiceUnavailable, "issuer_unavailable",
			"the identity provider cannot be reached right now; try again in a moment"))
		return
	}
	s.redirectURL(c, oc)
	ctx, cancel := context.WithTimeout(s.console.oidc.HTTPContext(c), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, c.Query("code"), oauth2.VerifierOption(pre.verifier))
	if err != nil {
		s.log.Warn("console sign-in: code exchange failed", "err", err)
		s.denySignIn(c, nil, errLoginFailed)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		s.denySignIn(c, nil, errLoginFailed)
		return
	}
	p, expires, err := s.console.oidc.VerifyIDToken(ctx, raw, pre.nonce)
	var re *auth.RoleError
	switch {
	case errors.As(err, &re):
		s.denySignIn(c, &auth.Principal{ID: re.Subject, Name: re.Name}, toError(err))
		return
	case err != nil:
		s.log.Warn("console sign-in: ID token refused", "err", err)
		s.denySignIn(c, nil, errLoginFailed)
		return
	}
	if !s.startSession(c, p, "", p, expires) {
		return
	}
	// A page, not a redirect: the provider's redirect here was a cross-site
	// navigation, on which the browser would not send the new SameSite=
	// Strict cookie. A same-site navigation from this page does.
	s.render(c, http.StatusOK, "continue", &pageData{Title: "Signed in"})
}

// redirectURL fills in the callback URL, when not configured, from the
// request's own host (the provider checks it against the URIs registered
// for the client, so a forged Host header only makes sign-in fail).
func (s *Server) redirectURL(c *gin.Context, oc *oauth2.Config) {
	if oc.RedirectURL != "" {
		return
	}
	scheme := "http"
	if s.consoleCookieSecure(c) {
		scheme = "https"
	}
	oc.RedirectURL = scheme + "://" + c.Request.Host + "/console/oidc/callback"
}

func (s *Server) consoleSignOut(c *gin.Context) {
	ss := sessionOf(c)
	s.console.sessions.revoke(ss.key)
	s.setCookie(c, sessionCookie, "", -1, http.SameSiteStrictMode)
	c.Redirect(http.StatusSeeOther, "/console/sign-in")
}

func constantEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
