//! Bearer tokens: HS256 JWTs that the web platform signs for its logged-in user, naming
//! the role, the party, (for school staff) the school and the person (`sub`, `name`).
//! A token without `sub` (minted before tokens named people) still works; it acts as
//! its role. `gradsign dev-token` mints
//! them for local use with the same secret.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{
    definition::Role,
    engine::{Actor, Person},
};

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
    /// For staff of one college (二级学院) of the school: the college, as the students'
    /// records name it. They reach only that college's students' cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub college: Option<String>,
    /// The person: the platform's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The person's name, as history and the signing record show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub iat: i64,
    pub exp: i64,
    /// Not valid before this moment (seconds since the epoch), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// How far the platform's clock and ours may disagree, in seconds, for `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Keys the console's CSRF tokens (an HMAC of the session under the same secret), so
    /// every process sharing the secret accepts them and none keeps a session in memory.
    form_key: Vec<u8>,
}

impl Keys {
    pub fn new(secret: &str) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            form_key: secret.as_bytes().to_vec(),
        }
    }

    /// The CSRF token of a console session: HMAC-SHA256 of the session (its token), hex.
    pub fn form_token(&self, session: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.form_key).expect("HMAC takes any key length");
        mac.update(b"console-form\n");
        mac.update(session.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `sent` is the CSRF token of `session` (compared in constant time).
    pub fn form_token_matches(&self, session: &str, sent: &str) -> bool {
        let expected = self.form_token(session);
        expected.len() == sent.len()
            && expected
                .bytes()
                .zip(sent.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Signs a token for `actor`, valid for `valid_for`.
    pub fn mint(&self, actor: &Actor, valid_for: chrono::Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            role: actor.role,
            party: actor.party.clone(),
            school: actor.school.clone(),
            college: actor.college.clone(),
            sub: actor.person.as_ref().map(|p| p.sub.clone()),
            name: actor.person.as_ref().and_then(|p| p.name.clone()),
            iat: now,
            exp: now + valid_for.num_seconds(),
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Checks signature, expiry, `nbf` (both with [`LEEWAY_SECS`]) and that the claims
    /// fit the role. The reason given is one of a few plain sentences: the library's own
    /// wording says more about it than about the token.
    pub fn verify(&self, token: &str) -> Result<Actor, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            AuthError::Invalid(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                    ErrorKind::InvalidSignature => "the token's signature does not match",
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                    ErrorKind::MissingRequiredClaim(_) => "the token has no expiry (exp)",
                    _ => "the token is malformed or its claims are not a gradsign token's",
                }
                .into(),
            )
        })?;
        actor_from(data.claims)
    }
}

/// The actor a token names, refusing claims that do not fit the role.
pub fn actor_from(claims: Claims) -> Result<Actor, AuthError> {
    let needs = |what: &str| AuthError::Invalid(format!("role {} needs a {what} claim", claims.role));
    match claims.role {
        Role::System => {
            return Err(AuthError::Invalid("role system cannot be given by a token".into()));
        }
        Role::Student | Role::Employer if claims.party.is_none() => return Err(needs("party")),
        Role::SchoolReviewer | Role::SchoolAdmin if claims.school.is_none() => {
            return Err(needs("school"));
        }
        _ => {}
    }
    if claims.college.is_some() && !matches!(claims.role, Role::SchoolReviewer | Role::SchoolAdmin) {
        return Err(AuthError::Invalid(format!(
            "role {} cannot have a college claim (only school staff serve a college)",
            claims.role
        )));
    }
    if claims.college.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(AuthError::Invalid("the token's college is empty".into()));
    }
    if claims.sub.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(AuthError::Invalid("the token's sub is empty".into()));
    }
    if claims.name.is_some() && claims.sub.is_none() {
        return Err(AuthError::Invalid("a token with a name needs a sub".into()));
    }
    Ok(Actor {
        role: claims.role,
        party: claims.party,
        school: claims.school,
        college: claims.college,
        person: claims.sub.map(|sub| Person { sub, name: claims.name }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn student() -> Actor {
        Actor {
            role: Role::Student,
            party: Some("S1".into()),
            school: Some("10212".into()),
            college: None,
            person: Some(Person {
                sub: "u1".into(),
                name: Some("李明".into()),
            }),
        }
    }

    #[test]
    fn a_minted_token_verifies_to_the_same_actor() {
        let keys = Keys::new("secret");
        let token = keys.mint(&student(), chrono::Duration::hours(1));
        assert_eq!(keys.verify(&token).unwrap(), student());
    }

    #[test]
    fn a_token_without_sub_acts_as_its_role() {
        let keys = Keys::new("secret");
        let now = chrono::Utc::now().timestamp();
        let old = serde_json::json!({ "role": "school_reviewer", "school": "10212", "iat": now, "exp": now + 600 });
        let actor = keys.verify(&signed("secret", &old)).unwrap();
        assert_eq!(actor.person, None);
        assert_eq!(actor.who(), "school_reviewer@10212");
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = Keys::new("other").mint(&student(), chrono::Duration::hours(1));
        assert!(matches!(Keys::new("secret").verify(&token), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = Keys::new("secret");
        let token = keys.mint(&student(), chrono::Duration::hours(-2));
        assert!(keys.verify(&token).is_err());
    }

    fn signed(keys_secret: &str, claims: &serde_json::Value) -> String {
        let key = EncodingKey::from_secret(keys_secret.as_bytes());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_beyond_the_leeway() {
        let keys = Keys::new("secret");
        let now = chrono::Utc::now().timestamp();
        let claims = |nbf: i64| serde_json::json!({ "role": "student", "party": "S1", "iat": now, "exp": now + 600, "nbf": nbf });
        let early = keys.verify(&signed("secret", &claims(now + 60))).unwrap_err();
        assert_eq!(early, AuthError::Invalid("the token is not valid yet (nbf)".into()));
        assert!(keys.verify(&signed("secret", &claims(now - 1))).is_ok());
    }

    #[test]
    fn expiry_has_at_most_five_seconds_of_leeway() {
        let keys = Keys::new("secret");
        let now = chrono::Utc::now().timestamp();
        let token = signed(
            "secret",
            &serde_json::json!({ "role": "student", "party": "S1", "iat": now - 600, "exp": now - 10 }),
        );
        assert_eq!(
            keys.verify(&token).unwrap_err(),
            AuthError::Invalid("the token has expired".into())
        );
    }

    #[test]
    fn a_student_token_without_a_party_is_refused() {
        let claims = Claims {
            role: Role::Student,
            party: None,
            school: None,
            college: None,
            sub: None,
            name: None,
            iat: 0,
            exp: i64::MAX,
            nbf: None,
        };
        assert!(actor_from(claims).is_err());
    }
}
