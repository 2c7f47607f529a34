"""Auth-flow tests: the login flow through real oauth2-proxy, IdP and nginx."""
