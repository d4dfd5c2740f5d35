//! A client's credentials on the wire: which `Authorization` a request
//! carries, and answering a 401's challenge, basic or the bearer-token
//! dance (<https://distribution.github.io/distribution/spec/auth/token/>).

use ureq::http::{Method, Request, Response};
use ureq::Body;

use crate::auth_file::Credentials;
use crate::challenge::{self, Challenge};
use crate::client::{network, Client};
use crate::error::{Error, ErrorKind, Result};
use crate::url::{encode, Origin};

impl Client {
    /// The `Authorization` value for a request needing `scopes`, if the
    /// registry has asked for one.
    pub(crate) fn authorization(&self, scopes: &[String]) -> Option<String> {
        let state = self.auth.lock().expect("no panic holds the auth lock");
        if let Some(t) = state.tokens.get(&scopes.join(" ")) {
            return Some(format!("Bearer {t}"));
        }
        if state.basic {
            return self
                .opts
                .credentials
                .as_ref()
                .map(Credentials::basic_header);
        }
        None
    }

    /// Gets what a 401's challenge asks for; whether the request is worth
    /// sending again.
    pub(crate) fn answer_challenge(
        &self,
        resp: &Response<Body>,
        scopes: &[String],
    ) -> Result<bool> {
        let challenge = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(challenge::parse)
            .next();
        match challenge {
            Some(Challenge::Basic) => {
                if self.opts.credentials.is_none() {
                    return Ok(false);
                }
                self.auth
                    .lock()
                    .expect("no panic holds the auth lock")
                    .basic = true;
                Ok(true)
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let token = self.fetch_token(&realm, service.as_deref(), scope, scopes)?;
                self.auth
                    .lock()
                    .expect("no panic holds the auth lock")
                    .tokens
                    .insert(scopes.join(" "), token);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A bearer token from the realm the registry named
    /// (<https://distribution.github.io/distribution/spec/auth/token/>),
    /// asked for with the credentials, if any.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        challenged: Option<String>,
        scopes: &[String],
    ) -> Result<String> {
        let realm_origin = Origin::parse(realm).ok_or_else(|| {
            Error::new(
                ErrorKind::Server,
                format!("{}: the token realm {realm:?} is not a URL", self.registry),
            )
        })?;
        if realm_origin.scheme != "https" && !self.opts.insecure {
            return Err(Error::new(
                ErrorKind::Refused,
                format!(
                    "{}: refusing to send credentials to a plain-HTTP token realm ({})",
                    self.registry, realm_origin.authority
                ),
            ));
        }
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", encode(s)));
        }
        let mut all: Vec<String> = scopes.to_vec();
        if let Some(c) = challenged {
            if !all.contains(&c) {
                all.push(c);
            }
        }
        for s in &all {
            query.push(format!("scope={}", encode(s)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", query.join("&"));
        let mut b = Request::builder().method(Method::GET).uri(&url);
        if let Some(c) = &self.opts.credentials {
            b = b.header("authorization", c.basic_header());
        }
        let what = format!(
            "{}: the token service at {}",
            self.registry, realm_origin.authority
        );
        let req = b
            .body(())
            .map_err(|e| Error::with(ErrorKind::Server, what.clone(), e))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| network(&self.registry, "the token request", e))?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 if self.opts.credentials.is_some() => {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "{what} refused the credentials; run `strata login {}` again",
                        self.registry
                    ),
                ))
            }
            401 | 403 => {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "{what} wants credentials; run `strata login {}`",
                        self.registry
                    ),
                ))
            }
            s => {
                return Err(Error::new(
                    ErrorKind::Server,
                    format!("{what} answered {s}"),
                ))
            }
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| network(&self.registry, "the token request", e))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| Error::new(ErrorKind::Server, format!("{what} sent no JSON")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Error::new(ErrorKind::Server, format!("{what} sent no token")))
    }
}
