//! [`ApiError`]: every failure of a service's HTTP API as a status code and a JSON body
//! `{"error": "<what happened and what to do>", "code": "<stable identifier>", ...}`.
//!
//! Refusals say what is wrong without repeating what the client sent: a malformed body, path
//! or query is described by what was expected, never echoed, and authentication failures never
//! repeat a token or a certificate's name.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::{MembershipError, TransferError};
use raft_std::RequestError;
use serde_json::{json, Map, Value};

use crate::http::BodyTimedOut;

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Extra fields for the body (`leader`, `current` …).
    details: Map<String, Value>,
}

impl ApiError {
    /// An error with this status, stable `code` and human-readable message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Map::new() }
    }

    /// A 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Adds a field to the JSON body.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.details.insert(field.to_string(), value.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details;
        body.insert("error".into(), self.message.into());
        body.insert("code".into(), self.code.into());
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The rest of the body may still be on its way: do not read it, close.
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        use StatusCode as S;
        let message = error.to_string();
        let unavailable = |code| ApiError::new(S::SERVICE_UNAVAILABLE, code, message.clone());
        match error {
            RequestError::NotLeader { leader } => unavailable("no_leader").with("leader", json!(leader)),
            RequestError::Timeout { .. } => unavailable("timeout"),
            RequestError::ShuttingDown => unavailable("shutting_down"),
            RequestError::Storage(_) => ApiError::new(S::INTERNAL_SERVER_ERROR, "storage_failed", message),
            RequestError::Membership(error) => match error {
                MembershipError::Invalid(_) => ApiError::new(S::BAD_REQUEST, "invalid_change", message),
                MembershipError::ChangeInProgress => {
                    ApiError::new(S::CONFLICT, "change_in_progress", message)
                }
                MembershipError::NotLeader { leader } | MembershipError::LeadershipLost { leader } => {
                    unavailable("outcome_unknown").with("leader", json!(leader))
                }
                _ => ApiError::new(S::CONFLICT, "change_refused", message),
            },
            RequestError::Transfer(error) => match error {
                TransferError::NotVoter(_) => ApiError::new(S::BAD_REQUEST, "not_a_voter", message),
                TransferError::InProgress => ApiError::new(S::CONFLICT, "transfer_in_progress", message),
                _ => unavailable("transfer_failed"),
            },
            RequestError::Proposal(_) => ApiError::new(S::INTERNAL_SERVER_ERROR, "outcome_unknown", message),
            RequestError::CatchUp { id, match_index, last_index, .. } => unavailable("catch_up_timeout")
                .with("id", id)
                .with("match_index", match_index)
                .with("last_index", last_index),
            RequestError::Protocol(_) => ApiError::new(S::BAD_GATEWAY, "protocol", message),
            // The leader's own roles file refused the client (every node needs the same one).
            RequestError::Denied(_) => ApiError::new(S::FORBIDDEN, "forbidden", message),
            _ => ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

/// Whether `error` or one of its sources is a `T`.
fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<T>() {
            return true;
        }
        next = error.source();
    }
    false
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        body_failure(rejection.status(), &rejection)
    }
}

/// A body that could not be read: too slow, too large, or cut off.
fn body_failure(status: StatusCode, rejection: &(dyn std::error::Error + 'static)) -> ApiError {
    if caused_by::<BodyTimedOut>(rejection) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive within the server's body timeout; send it in one go",
        );
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            "body_too_large",
            "the request body is larger than this server accepts (its --http-max-body-bytes)",
        );
    }
    ApiError::new(status, "bad_request", "the request body could not be read")
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        match rejection {
            JsonRejection::JsonDataError(_) => ApiError::new(
                status,
                "bad_request",
                "the JSON body has a missing, unknown or mistyped field; see the API reference",
            ),
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::new(status, "bad_request", "the body is not valid JSON")
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                status,
                "bad_request",
                "send the body with the header content-type: application/json",
            ),
            JsonRejection::BytesRejection(rejection) => rejection.into(),
            other => body_failure(status, &other),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(
            rejection.status(),
            "bad_request",
            "a part of the path is not valid for this endpoint (a node id is a positive integer)",
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(
            rejection.status(),
            "bad_request",
            "the query string has an unknown or invalid parameter; see the API reference",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_their_headers() {
        let response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "who?").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "later").into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", "slow").into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
