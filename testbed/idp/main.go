// Command idp is the testbed's OIDC identity provider: github.com/oauth2-proxy/mockoidc
// (discovery, authorize, token, userinfo, JWKS) on a fixed address with a fixed client, plus
// a login form for one static user, so a scripted browser logs in the way it would at Entra ID.
// Dex is not used: see testbed/README.md.
package main

import (
	"crypto/subtle"
	"flag"
	"fmt"
	"html"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/oauth2-proxy/mockoidc"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (127.0.0.1 only in tests)")
	clientID := flag.String("client-id", "zerotrust-aks", "the one OAuth client's id")
	clientSecret := flag.String("client-secret", "zerotrust-aks-secret", "the one OAuth client's secret")
	user := flag.String("username", "jane", "the static user's login name (preferred_username)")
	password := flag.String("password", "", "the static user's password; empty: no login form, log in at once")
	email := flag.String("email", "jane@example.com", "the static user's email claim")
	groups := flag.String("groups", "zerotrust-users", "comma-separated groups claim")
	issuerFile := flag.String("issuer-file", "", "write the issuer URL to this file once listening")
	flag.Parse()

	m, err := mockoidc.NewServer(nil)
	if err != nil {
		log.Fatal(err)
	}
	m.ClientID, m.ClientSecret = *clientID, *clientSecret
	staticUser := &mockoidc.MockUser{Subject: *user, Email: *email, EmailVerified: true,
		PreferredUsername: *user, Groups: strings.Split(*groups, ",")}
	// mockoidc starts a session for the next queued user on every authorize request; the form
	// only lets a request through with the right password (or at once without --password).
	login := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Discovery offers client_secret_basic, but mockoidc reads the client's
			// credentials from the form only: move them there.
			if id, secret, ok := r.BasicAuth(); ok && r.URL.Path == mockoidc.TokenEndpoint {
				if err := r.ParseForm(); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				r.Form.Set("client_id", id)
				r.Form.Set("client_secret", secret)
			}
			if r.URL.Path != mockoidc.AuthorizationEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if *password != "" && !(r.Method == http.MethodPost &&
				subtle.ConstantTimeCompare([]byte(r.PostForm.Get("login")), []byte(*user)) == 1 &&
				subtle.ConstantTimeCompare([]byte(r.PostForm.Get("password")), []byte(*password)) == 1) {
				status := http.StatusOK
				if r.Method == http.MethodPost {
					status = http.StatusUnauthorized
				}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(status)
				fmt.Fprint(w, `<!doctype html><title>Log in</title><form method="post" action="`+mockoidc.AuthorizationEndpoint+`">`)
				for k, vs := range r.URL.Query() {
					for _, v := range vs {
						fmt.Fprintf(w, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
					}
				}
				fmt.Fprint(w, `<input name="login" placeholder="login"><input name="password" type="password"><button type="submit">Log in</button></form>`)
				return
			}
			m.QueueUser(staticUser)
			next.ServeHTTP(w, r)
		})
	}
	if err := m.AddMiddleware(login); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		log.Fatal(err)
	}
	log.Printf("issuer %s client-id %s user %s", m.Issuer(), m.ClientID, *user)
	if *issuerFile != "" {
		if err := os.WriteFile(*issuerFile, []byte(m.Issuer()+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	select {}
}
