//! Bearer-token authentication for `/api/v1`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

use crate::store::{TokenInfo, TokenRole, db};

/// Who is calling; inserted by [`require_token`].
#[derive(Clone, Debug)]
pub struct Caller(pub TokenInfo);

impl Caller {
    /// Refuses callers below `role` (admin > operator > viewer).
    pub fn require(&self, role: TokenRole) -> Result<(), ApiError> {
        let rank = |r: TokenRole| match r {
            TokenRole::Admin => 3,
            TokenRole::Operator => 2,
            TokenRole::Viewer => 1,
        };
        if rank(self.0.role) >= rank(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; the token has {}",
                role.as_str(),
                self.0.role.as_str()
            )))
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// A caller with at least the operator role, checked before the request
/// body is read (so a weaker token gets 403 whatever it sent).
pub struct RequireOperator(pub Caller);

/// A caller with the admin role, checked before the request body is read.
pub struct RequireAdmin(pub Caller);

macro_rules! role_extractor {
    ($name:ident, $role:expr) => {
        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require($role)?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(RequireOperator, TokenRole::Operator);
role_extractor!(RequireAdmin, TokenRole::Admin);

const MAX_TOKEN_LEN: usize = 256;

pub async fn require_token(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
        .map(str::to_owned);
    let Some(token) = presented else {
        return ApiError::unauthorized("missing or malformed Authorization: Bearer <token> header")
            .into_response();
    };
    match app.store.call(move |c| db::verify_token(c, &token)).await {
        Ok(Some(info)) => {
            req.extensions_mut().insert(Caller(info));
            next.run(req).await
        }
        Ok(None) => ApiError::unauthorized("unknown or revoked token").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
