//! Error responses that many routes document alike, for the `responses(…)`
//! list of `#[utoipa::path]`.
//!
//! Each type is one response: its status, one wording for every route that
//! names it, and a [`Problem`] body (`application/problem+json`). A list mixes
//! them with the route's own tuples:
//!
//! ```text
//! responses(
//!     (status = 200, description = "The account", body = Account),
//!     AdminSessionRequired, MalformedId,
//!     (status = 404, description = "No such account", body = Problem))
//! ```
//!
//! They only document: no handler returns them (errors are [`ApiError`]s),
//! and the [`Problem`] schema they refer to is registered by the backend's
//! document. A route whose answer for the status says more (e.g. a 400 for a
//! bad id *or* a bad body) keeps its own tuple instead. Errors that only one
//! module's routes repeat are declared there with [`problem_responses!`].
//!
//! [`ApiError`]: crate::ApiError
//! [`Problem`]: crate::Problem
//! [`problem_responses!`]: crate::problem_responses

/// Declares documentation-only response types, each one error response: its
/// status, its description and a [`Problem`] body (`application/problem+json`).
/// A module declares with it the errors its own routes repeat (`No such game`).
///
/// ```
/// galaxy_core::problem_responses! {
///     /// 404 of the `/things/{id}` routes.
///     pub(crate) struct NoSuchThing = (404, "No such thing");
/// }
///
/// #[utoipa::path(get, path = "/things/{id}",
///     responses((status = 200, description = "The thing"), NoSuchThing))]
/// async fn thing() {}
/// ```
#[macro_export]
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $vis:vis struct $name:ident = ($status:literal, $description:literal);)+) => {$(
        $(#[$doc])*
        #[derive(::utoipa::IntoResponses)]
        #[response(status = $status, description = $description, content_type = "application/problem+json")]
        #[allow(dead_code, reason = "documentation only: no handler builds the body")]
        $vis struct $name(pub $crate::Problem);
    )+};
}

problem_responses! {
    /// 401: the route needs a user session (`UserPrincipal`) and the request
    /// has no bearer token, or one that is unknown, revoked or expired.
    pub struct UserSessionRequired = (401, "Missing, invalid or expired session");

    /// 401: the route needs an admin session (`AdminPrincipal`) and the
    /// request has no bearer token, or one that is unknown, revoked or expired.
    pub struct AdminSessionRequired = (401, "Missing, invalid or expired admin session");

    /// 400: a UUID path segment (`{id}`, `{game_id}`, …) does not parse; the
    /// extractor answers `validation_failed` before the handler runs.
    pub struct MalformedId = (400, "Not a UUID (`validation_failed`)");

    /// 400: `page` or `page_size` is out of range or not a number
    /// ([`PageQuery`](crate::PageQuery)), on a listing with no other query.
    pub struct BadPage = (400, "Bad page parameters (`validation_failed`)");
}

#[cfg(test)]
mod tests {
    use utoipa::IntoResponses;
    use utoipa::openapi::RefOr;

    use super::*;

    /// Every type gives one response of its status, with a problem+json
    /// body that refers to the Problem schema.
    #[test]
    fn each_is_one_problem_response() {
        for (responses, status) in [
            (UserSessionRequired::responses(), "401"),
            (AdminSessionRequired::responses(), "401"),
            (MalformedId::responses(), "400"),
            (BadPage::responses(), "400"),
        ] {
            assert_eq!(responses.len(), 1);
            let Some(RefOr::T(response)) = responses.get(status) else {
                panic!("no inline {status} response");
            };
            assert!(!response.description.is_empty());
            let content = &response.content["application/problem+json"];
            assert!(
                matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location == "#/components/schemas/Problem"),
                "{status}: the body is not the Problem schema"
            );
        }
    }
}
