//! [`ApiError`]: every failure of the HTTP API as a status code and a JSON body
//! `{"error": "<what happened and what to do>", "code": "<stable identifier>", ...}`.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::{MembershipError, TransferError};
use raft_std::RequestError;
use serde_json::{json, Map, Value};

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Extra fields for the body (`leader`, `current`, `key` …).
    details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Map::new() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Adds a field to the JSON body.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.details.insert(field.to_string(), value.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details;
        body.insert("error".into(), self.message.into());
        body.insert("code".into(), self.code.into());
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
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
            _ => ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

macro_rules! rejection_to_bad_request {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> Self {
                ApiError::new(rejection.status(), "bad_request", rejection.body_text())
            }
        }
    )*};
}

rejection_to_bad_request!(BytesRejection, JsonRejection, PathRejection, QueryRejection);
