//! What a gateway sends to open its push stream, built in one place for the
//! gateway and for every test that subscribes like one.

use tonic::metadata::errors::InvalidMetadataValue;

use crate::proto::SubscribeRequest;

/// A `Subscribe` request from `gateway_id`, with `authorization` (the whole
/// header value, e.g. `Bearer <token>`) as the push listener checks it; no
/// header when `None`.
///
/// # Errors
/// `authorization` is not a valid header value.
pub fn subscribe_request(
    gateway_id: &str,
    authorization: Option<&str>,
) -> Result<tonic::Request<SubscribeRequest>, InvalidMetadataValue> {
    let mut request = tonic::Request::new(SubscribeRequest {
        gateway_id: gateway_id.to_owned(),
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse()?);
    }
    Ok(request)
}
