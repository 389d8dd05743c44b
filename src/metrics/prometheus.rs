//! A small client of Prometheus's HTTP query API (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/status/buildinfo`), with the endpoint's credentials, a timeout per request
//! and retries of what may pass (no answer, 5xx, 429).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::config::metrics::{EndpointAuth, MetricsEndpoint};

/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of a query that failed in a way another attempt may not.
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("no answer from {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: StatusCode,
        message: String,
    },
    /// Prometheus refused the query itself (`bad_data`: a syntax error, a bad range).
    #[error("{message}")]
    BadQuery { message: String },
    #[error("{url} sent an answer that is not Prometheus's: {message}")]
    Malformed { url: String, message: String },
}

impl PromError {
    /// Whether another attempt may succeed.
    fn may_pass(&self) -> bool {
        match self {
            PromError::Unreachable { .. } => true,
            PromError::Refused { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            PromError::BadQuery { .. } | PromError::Malformed { .. } => false,
        }
    }
}

/// One series of a query's answer: its labels (without `__name__`) and samples as
/// (seconds since the epoch, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(f64, f64)>,
}

/// A Prometheus to query.
#[derive(Clone)]
pub struct Prometheus {
    url: String,
    authorization: Option<HeaderValue>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .finish()
    }
}

impl Prometheus {
    pub fn new(endpoint: &MetricsEndpoint) -> Result<Self, PromError> {
        let authorization = match &endpoint.auth {
            EndpointAuth::None => None,
            EndpointAuth::Bearer(token) => HeaderValue::from_str(&format!("Bearer {token}")).ok(),
            EndpointAuth::Basic { username, password } => {
                use base64::Engine;
                let pair = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                HeaderValue::from_str(&format!("Basic {pair}")).ok()
            }
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if endpoint.skip_tls_verify {
            builder.with_tls_config(any_certificate_config())
        } else {
            builder
                .with_native_roots()
                .map_err(|e| PromError::Unreachable {
                    url: endpoint.url.clone(),
                    message: format!("no trusted certificates to check it with: {e}"),
                })?
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(Self {
            url: endpoint.url.clone(),
            authorization: authorization.map(|mut value| {
                value.set_sensitive(true);
                value
            }),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Prometheus's version; an error when it cannot be reached or refuses the credentials.
    pub async fn version(&self) -> Result<String, PromError> {
        #[derive(Deserialize)]
        struct BuildInfo {
            version: String,
        }
        let info: BuildInfo = self.get("/api/v1/status/buildinfo", &[]).await?;
        Ok(info.version)
    }

    /// An instant query at `at`.
    pub async fn instant(&self, query: &str, at: SystemTime) -> Result<Vec<Series>, PromError> {
        let time = seconds(at);
        let result: QueryResult = self
            .get("/api/v1/query", &[("query", query), ("time", &time)])
            .await?;
        result.into_series(&self.url)
    }

    /// A range query from `start` to `end` every `step`.
    pub async fn range(
        &self,
        query: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<Vec<Series>, PromError> {
        let (start, end, step) = (seconds(start), seconds(end), step.as_secs_f64().to_string());
        let result: QueryResult = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", query),
                    ("start", &start),
                    ("end", &end),
                    ("step", &step),
                ],
            )
            .await?;
        result.into_series(&self.url)
    }

    /// GETs an API path, retrying what may pass, and decodes the `data` of the answer.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T, PromError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.get_once(path, params).await {
                Err(error) if error.may_pass() && attempt < ATTEMPTS => {
                    tracing::debug!(url = self.url, path, %error, attempt, "query failed; trying again");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    async fn get_once<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T, PromError> {
        let mut uri = format!("{}{path}", self.url);
        for (i, (key, value)) in params.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(key);
            uri.push('=');
            uri.push_str(&percent_encode(value));
        }
        let unreachable = |message: String| PromError::Unreachable {
            url: self.url.clone(),
            message,
        };
        let mut request = Request::get(&uri);
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| unreachable(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let cause =
                    std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
                unreachable(format!("{e}{cause}"))
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(format!("the answer broke off: {e}")))?
                .to_bytes();
            Ok::<_, PromError>((status, body))
        };
        let (status, body) = tokio::time::timeout(QUERY_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", QUERY_TIMEOUT.as_secs())))??;
        decode(&self.url, status, &body)
    }
}

/// Prometheus's envelope: `{status, data}` or `{status: "error", errorType, error}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    error_type: Option<String>,
    error: Option<String>,
}

fn decode<T: serde::de::DeserializeOwned>(
    url: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, PromError> {
    let envelope: Result<Envelope<T>, _> = serde_json::from_slice(body);
    match envelope {
        Ok(Envelope {
            status: answer,
            data: Some(data),
            ..
        }) if answer == "success" && status.is_success() => Ok(data),
        Ok(Envelope {
            error_type, error, ..
        }) if error_type.as_deref() == Some("bad_data") => Err(PromError::BadQuery {
            message: error.unwrap_or_default(),
        }),
        Ok(Envelope {
            error_type, error, ..
        }) if !status.is_success() => Err(PromError::Refused {
            url: url.to_string(),
            status,
            message: format!(
                "{}: {}",
                error_type.unwrap_or_default(),
                error.unwrap_or_default()
            ),
        }),
        Ok(_) => Err(PromError::Malformed {
            url: url.to_string(),
            message: "no data in a successful answer".into(),
        }),
        Err(_) if !status.is_success() => Err(PromError::Refused {
            url: url.to_string(),
            status,
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
        }),
        Err(e) => Err(PromError::Malformed {
            url: url.to_string(),
            message: e.to_string(),
        }),
    }
}

/// The `data` of a query's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResult {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

impl QueryResult {
    fn into_series(self, url: &str) -> Result<Vec<Series>, PromError> {
        let malformed = |message: String| PromError::Malformed {
            url: url.to_string(),
            message,
        };
        match self.result_type.as_str() {
            "vector" | "matrix" => {
                let raw: Vec<RawSeries> =
                    serde_json::from_value(self.result).map_err(|e| malformed(e.to_string()))?;
                Ok(raw
                    .into_iter()
                    .map(|series| {
                        let mut labels = series.metric;
                        labels.remove("__name__");
                        let samples = series
                            .value
                            .into_iter()
                            .chain(series.values)
                            .map(|(at, value)| (at, parse_value(&value)))
                            .collect();
                        Series { labels, samples }
                    })
                    .collect())
            }
            "scalar" => {
                let (at, value): (f64, String) =
                    serde_json::from_value(self.result).map_err(|e| malformed(e.to_string()))?;
                Ok(vec![Series {
                    labels: BTreeMap::new(),
                    samples: vec![(at, parse_value(&value))],
                }])
            }
            other => Err(malformed(format!("a result of type `{other}`"))),
        }
    }
}

/// Prometheus writes sample values as strings, with `NaN`, `+Inf` and `-Inf`.
fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

/// A time as Prometheus takes it: seconds since the epoch, with milliseconds.
fn seconds(at: SystemTime) -> String {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters pass).
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len() * 3 / 2);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// TLS that accepts any server certificate (kube-burner's default `skipTLSVerify: true`).
fn any_certificate_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth()
}

/// Accepts any server certificate (`skipTLSVerify`), still verifying the handshake's
/// signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode_into_series_without_the_metric_name() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"etcd"},"values":[[1700000000,"1"],[1700000005,"NaN"]]}]}}"#;
        let result: QueryResult = decode("u", StatusCode::OK, body).unwrap();
        let series = result.into_series("u").unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(
            series[0].labels,
            [("job".to_string(), "etcd".to_string())].into()
        );
        assert_eq!(series[0].samples[0], (1_700_000_000.0, 1.0));
        assert!(series[0].samples[1].1.is_nan());

        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[1700000000.5,"+Inf"]}]}}"#;
        let result: QueryResult = decode("u", StatusCode::OK, body).unwrap();
        assert_eq!(
            result.into_series("u").unwrap()[0].samples,
            vec![(1_700_000_000.5, f64::INFINITY)]
        );
        let body =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"2.5"]}}"#;
        let result: QueryResult = decode("u", StatusCode::OK, body).unwrap();
        assert_eq!(
            result.into_series("u").unwrap()[0].samples,
            vec![(1_700_000_000.0, 2.5)]
        );
    }

    #[test]
    fn errors_say_whether_the_query_or_the_server_failed() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \")\""}"#;
        let error = decode::<QueryResult>("u", StatusCode::BAD_REQUEST, body).unwrap_err();
        assert!(matches!(error, PromError::BadQuery { .. }), "{error}");
        assert!(!error.may_pass());
        assert!(error.to_string().contains("1:5: parse error"));

        let error =
            decode::<QueryResult>("u", StatusCode::UNAUTHORIZED, b"Unauthorized\n").unwrap_err();
        assert!(
            matches!(error, PromError::Refused { status, .. } if status == StatusCode::UNAUTHORIZED)
        );
        assert!(!error.may_pass());
        assert!(error.to_string().contains("401"), "{error}");

        let error =
            decode::<QueryResult>("u", StatusCode::SERVICE_UNAVAILABLE, b"busy").unwrap_err();
        assert!(error.may_pass());
    }

    #[test]
    fn query_parameters_are_percent_encoded() {
        assert_eq!(
            percent_encode("sum(rate(x{verb!=\"WATCH\"}[5m])) by (verb)"),
            "sum%28rate%28x%7Bverb%21%3D%22WATCH%22%7D%5B5m%5D%29%29%20by%20%28verb%29"
        );
        assert_eq!(percent_encode("a+b&c"), "a%2Bb%26c");
    }

    #[test]
    fn times_are_seconds_with_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(seconds(at), "1700000000.123");
    }
}
