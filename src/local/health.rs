//! Probing whether each control-plane program serves: etcd's `/health` over plain HTTP on
//! loopback, and the `/livez`, `/readyz` and `/healthz` endpoints of the Kubernetes
//! components over HTTPS, verified against the cluster's own CA.

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
    plain_get(client_port, "/health")
        .await
        .is_some_and(|body| body.contains(r#""health":"true""#))
}

/// The version etcd reports, as `v3.6.16`.
pub async fn etcd_version(client_port: u16) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Version {
        etcdserver: String,
    }
    let response = plain_get(client_port, "/version").await?;
    let body = response.split_once("\r\n\r\n")?.1;
    let version: Version = serde_json::from_str(body).ok()?;
    Some(format!("v{}", version.etcdserver))
}

/// A plain-HTTP GET on loopback, returning the whole response (etcd speaks HTTP/1.0 here;
/// no client library is needed for two fixed requests).
async fn plain_get(port: u16, path: &str) -> Option<String> {
    let request = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let head = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
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
