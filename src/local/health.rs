//! Probing whether each program serves: etcd's `/health` and Prometheus's `/-/ready` over
//! plain HTTP on loopback, and the `/livez`, `/readyz` and `/healthz` endpoints of the
//! Kubernetes components over HTTPS, verified against the cluster's own CA.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::kubeconfig::{self, KubeconfigWriteError};
use super::pki::CertAndKey;
use crate::exec::client::{ClientError, connect_in_memory};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the etcd serving on `client_port` reports itself healthy.
pub async fn etcd_is_healthy(client_port: u16) -> bool {
    plain_get(client_port, "/health", None)
        .await
        .is_some_and(|body| body.contains(r#""health":"true""#))
}

/// The version etcd reports, as `v3.6.16`.
pub async fn etcd_version(client_port: u16) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Version {
        etcdserver: String,
    }
    let response = plain_get(client_port, "/version", None).await?;
    let body = response.split_once("\r\n\r\n")?.1;
    let version: Version = serde_json::from_str(body).ok()?;
    Some(format!("v{}", version.etcdserver))
}

/// Whether the Prometheus serving on `port` answers `/-/ready` with 200, asked with the
/// basic-auth credentials its web configuration requires for every path.
pub async fn prometheus_is_ready(port: u16, username: &str, password: &str) -> bool {
    let authorization = basic_authorization(username, password);
    plain_get(port, "/-/ready", Some(&authorization))
        .await
        .is_some_and(|response| status_code(&response) == Some(200))
}

/// One scrape target as Prometheus reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub job: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    pub last_error: String,
}

/// The targets of the Prometheus on `port` (`/api/v1/targets`), or `None` when it does not
/// answer with them.
pub async fn prometheus_targets(
    port: u16,
    username: &str,
    password: &str,
) -> Option<Vec<ScrapeTarget>> {
    let authorization = basic_authorization(username, password);
    let response = plain_get(port, "/api/v1/targets?state=active", Some(&authorization)).await?;
    if status_code(&response) != Some(200) {
        return None;
    }
    parse_targets(response.split_once("\r\n\r\n")?.1)
}

fn parse_targets(body: &str) -> Option<Vec<ScrapeTarget>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Data,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        active_targets: Vec<Target>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Target {
        labels: std::collections::BTreeMap<String, String>,
        health: String,
        last_error: String,
    }
    let answer: Answer = serde_json::from_str(body).ok()?;
    Some(
        answer
            .data
            .active_targets
            .into_iter()
            .map(|t| ScrapeTarget {
                job: t.labels.get("job").cloned().unwrap_or_default(),
                health: t.health,
                last_error: t.last_error,
            })
            .collect(),
    )
}

/// The value of an `Authorization` header for HTTP basic auth.
fn basic_authorization(username: &str, password: &str) -> String {
    use base64::Engine;
    let credentials = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// The status code of a raw HTTP response.
fn status_code(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

/// A plain-HTTP GET on loopback, returning the whole response (etcd and Prometheus speak
/// HTTP/1.0 here; no client library is needed for a few fixed requests).
async fn plain_get(port: u16, path: &str, authorization: Option<&str>) -> Option<String> {
    let request = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let authorization = authorization
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        let head = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{authorization}\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(PROBE_TIMEOUT, request)
        .await
        .ok()?
        .ok()
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigWriteError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A client for the health endpoints of one HTTPS server of the cluster.
pub struct HealthProbe {
    client: kube::Client,
}

impl HealthProbe {
    /// A probe for `https://127.0.0.1:<port>`, trusting only the cluster CA.
    pub async fn new(port: u16, ca_cert: &Path, client: &CertAndKey) -> Result<Self, ProbeError> {
        let server = format!("https://127.0.0.1:{port}");
        let kubeconfig = kubeconfig::build("probe", &server, ca_cert, client)?;
        Ok(Self {
            client: connect_in_memory(kubeconfig).await?,
        })
    }

    /// Whether every path answers `ok`.
    pub async fn all_ok(&self, paths: &[&str]) -> bool {
        for path in paths {
            let Ok(request) = http::Request::get(*path).body(Vec::new()) else {
                return false;
            };
            match tokio::time::timeout(PROBE_TIMEOUT, self.client.request_text(request)).await {
                Ok(Ok(body)) if body.trim() == "ok" => {}
                _ => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_encodes_user_and_password() {
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn targets_are_read_from_prometheus_answer() {
        let body = r#"{"status":"success","data":{"activeTargets":[
            {"labels":{"instance":"127.0.0.1:1","job":"etcd"},"health":"up","lastError":"","scrapeUrl":"http://127.0.0.1:1/metrics"},
            {"labels":{"instance":"127.0.0.1:2","job":"scheduler"},"health":"down","lastError":"server returned HTTP status 403 Forbidden"}
        ],"droppedTargets":[]}}"#;
        assert_eq!(
            parse_targets(body).unwrap(),
            [
                ScrapeTarget {
                    job: "etcd".into(),
                    health: "up".into(),
                    last_error: String::new(),
                },
                ScrapeTarget {
                    job: "scheduler".into(),
                    health: "down".into(),
                    last_error: "server returned HTTP status 403 Forbidden".into(),
                },
            ]
        );
        assert_eq!(parse_targets("not json"), None);
    }

    #[test]
    fn status_code_reads_the_status_line() {
        assert_eq!(status_code("HTTP/1.0 200 OK\r\n\r\nready"), Some(200));
        assert_eq!(status_code("HTTP/1.1 401 Unauthorized\r\n"), Some(401));
        assert_eq!(status_code(""), None);
    }
}
