//! Object templates from `http://` and `https://` addresses, as kube-burner allows.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long a template download may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The text at `url`, or why not. Config loading is synchronous and may run inside burner's
/// async runtime, so the download runs on a thread of its own with a small runtime.
pub(super) fn fetch(url: &str) -> Result<String, String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime to download with: {e}"))?;
        runtime.block_on(async {
            tokio::time::timeout(TIMEOUT, get(&url))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {}s", TIMEOUT.as_secs())))
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the download failed unexpectedly".into()))
}

async fn get(url: &str) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no trusted certificates to check the server with: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let response = client.get(uri).await.map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
        format!("{e}{cause}")
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the server answered {status}"));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the download broke off: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the template is not UTF-8 text".into())
}
