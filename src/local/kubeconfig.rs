//! Kubeconfig files for the local cluster: the admin's, and one per control-plane
//! component. Certificates are embedded, so a kubeconfig can be copied elsewhere and still
//! work while the cluster runs.

use std::fs;
use std::io;
use std::path::Path;

use base64::Engine;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

use super::pki::{CertAndKey, write_owner_only};

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigWriteError {
    #[error("cannot read {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot serialize the kubeconfig")]
    Serialize(#[source] serde_saphyr::SerializeError),
}

/// Builds a kubeconfig with one cluster, one user and one context, all named `name`.
pub fn build(
    name: &str,
    server: &str,
    ca_cert: &Path,
    client: &CertAndKey,
) -> Result<Kubeconfig, KubeconfigWriteError> {
    let encode = |path: &Path| -> Result<String, KubeconfigWriteError> {
        let bytes = fs::read(path).map_err(|source| KubeconfigWriteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let cluster = Cluster {
        server: Some(server.to_string()),
        certificate_authority_data: Some(encode(ca_cert)?),
        ..Default::default()
    };
    let user = AuthInfo {
        client_certificate_data: Some(encode(&client.cert)?),
        client_key_data: Some(encode(&client.key)?.into()),
        ..Default::default()
    };
    Ok(Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.to_string(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.to_string(),
            auth_info: Some(user),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: name.to_string(),
            context: Some(Context {
                cluster: name.to_string(),
                user: Some(name.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(name.to_string()),
        kind: Some("Config".to_string()),
        api_version: Some("v1".to_string()),
        ..Default::default()
    })
}

/// Writes a kubeconfig readable by its owner only (it holds a private key).
pub fn write(path: &Path, kubeconfig: &Kubeconfig) -> Result<(), KubeconfigWriteError> {
    let text = serde_saphyr::to_string(kubeconfig).map_err(KubeconfigWriteError::Serialize)?;
    write_owner_only(path, text.as_bytes()).map_err(|source| KubeconfigWriteError::Write {
        path: path.to_path_buf(),
        source,
    })
}
