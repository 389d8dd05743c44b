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
    let probe = async {
        let mut stream = TcpStream::connect(("127.0.0.1", client_port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(body)) => body.contains(r#""health":"true""#),
        _ => false,
    }
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
