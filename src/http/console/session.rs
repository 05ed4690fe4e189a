//! The console's session: the platform token in an HttpOnly, SameSite=Strict cookie,
//! verified on every request like a bearer token (so any process sharing the secret
//! serves it), and the CSRF token derived from it. Sign-in takes a pasted token.

use axum::{
    Form,
    extract::{FromRequestParts, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use serde_json::{Value, json};

use super::{page, problem_page};
use crate::{
    definition::Role,
    engine::Actor,
    http::{AppState, error::ApiError},
};

/// The cookie holding the platform token.
pub const COOKIE: &str = "gradsign_session";

/// A signed-in person: who they are, the token they signed in with, the CSRF token of
/// their forms.
pub struct Session {
    pub actor: Actor,
    pub token: String,
    pub csrf: String,
}

impl Session {
    /// What the navigation shows of the person and the pages their role may open.
    pub fn me(&self) -> Value {
        let role = self.actor.role;
        let title = role.title();
        let name = self
            .actor
            .person
            .as_ref()
            .and_then(|p| p.name.clone().or(Some(p.sub.clone())))
            .unwrap_or_default();
        json!({
            "name": name,
            "role": role.to_string(),
            "role_zh": title.zh,
            "role_en": title.en,
            "school": self.actor.school,
            "reviews": matches!(role, Role::SchoolReviewer | Role::SchoolAdmin | Role::PlatformAdmin),
            "school_admin": matches!(role, Role::SchoolAdmin | Role::PlatformAdmin),
            "platform_admin": role == Role::PlatformAdmin,
        })
    }

    /// Refuses a form without this session's CSRF token.
    pub fn check_form(&self, state: &AppState, form: &[(String, String)]) -> Result<(), ApiError> {
        let sent = field(form, "csrf").unwrap_or_default();
        if state.keys.form_token_matches(&self.token, sent) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "the form's CSRF token is missing or not this session's; reload the page and try again",
                "表单校验码缺失或已失效，请刷新页面后重试",
            ))
        }
    }
}

/// The first value of a form field.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Why there is no session: the page sends the browser to sign in.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/console/signin").into_response()
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, COOKIE).ok_or(SignInFirst)?;
        let actor = state.keys.verify(&token).map_err(|_| SignInFirst)?;
        if parts.method != axum::http::Method::GET && !same_origin(&parts.headers) {
            return Err(SignInFirst);
        }
        Ok(Session {
            csrf: state.keys.form_token(&token),
            actor,
            token,
        })
    }
}

/// A cookie's value from the `Cookie` header.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A form posted from another site is refused even before its CSRF token is read: the
/// browser says where it came from (`Sec-Fetch-Site`; else `Origin`, which is `null`
/// under our `Referrer-Policy: no-referrer` and then says nothing).
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None | Some("null") => true,
        Some(origin) => host.is_some_and(|host| origin.split_once("://").is_some_and(|(_, h)| h == host)),
    }
}

fn secure(state: &AppState) -> &'static str {
    if state.engine.settings.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(value: &str, max_age: i64, state: &AppState) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        secure(state)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("gradsign_session=; Path=/; Max-Age=0"))
}

/// The sign-in page: paste the token the platform issued.
pub async fn signin_form() -> Response {
    page(StatusCode::OK, "signin.html", None, json!({}))
}

/// Signs in with a pasted token, checked as a bearer token is, and sets the cookie.
pub async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if !same_origin(&headers) {
        return problem_page(
            None,
            ApiError::forbidden("sign in from the console's own page", "请从控制台登录页登录"),
        );
    }
    let token = field(&form, "token").unwrap_or_default().trim().to_string();
    let refused = |en: String| {
        page(
            StatusCode::UNAUTHORIZED,
            "signin.html",
            None,
            json!({ "error": { "zh": "令牌无效或已过期，请从平台重新获取", "en": en } }),
        )
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return refused("paste the token the platform issued".into());
    }
    let actor = match state.keys.verify(&token) {
        Ok(a) => a,
        Err(e) => return refused(e.to_string()),
    };
    tracing::info!(who = %actor.who(), "signed in to the console");
    let mut response = Redirect::to("/console/inbox").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&token, 12 * 3600, &state));
    response
}

/// Signs out: the cookie is cleared.
pub async fn signout(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = session.check_form(&state, &form) {
        return problem_page(Some(&session), e);
    }
    let mut response = Redirect::to("/console/signin").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0, &state));
    response
}
