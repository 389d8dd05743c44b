//! Building a Kubernetes API client from a kubeconfig, the way a load tester needs it.
//!
//! kube's default client retries 429, 503 and 504 responses on its own. A load tester must
//! see those responses and count its own retries, so burner turns that retry off.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Where to find the cluster: a kubeconfig file and, optionally, one of its contexts.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The kubeconfig file; `None` means `$KUBECONFIG`, then `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use; `None` means the file's current context.
    pub context: Option<String>,
}

impl ClientOptions {
    /// Options for one kubeconfig file and its current context.
    pub fn for_kubeconfig(path: impl Into<PathBuf>) -> Self {
        Self {
            kubeconfig: Some(path.into()),
            context: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("cannot load a kubeconfig (tried $KUBECONFIG and ~/.kube/config)")]
    InferKubeconfig(#[source] KubeconfigError),
    #[error("invalid kubeconfig")]
    InMemoryKubeconfig(#[source] KubeconfigError),
    #[error("cannot build a client from the kubeconfig")]
    Build(#[source] kube::Error),
}

/// Builds a client for the cluster the options name, with kube's automatic retries off.
pub async fn connect(options: &ClientOptions) -> Result<kube::Client, ClientError> {
    let context_options = KubeConfigOptions {
        context: options.context.clone(),
        ..Default::default()
    };
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = read_kubeconfig(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &context_options)
                .await
                .map_err(|source| ClientError::ReadKubeconfig {
                    path: path.clone(),
                    source,
                })?
        }
        None => kube::Config::from_kubeconfig(&context_options)
            .await
            .map_err(ClientError::InferKubeconfig)?,
    };
    client_from_config(config)
}

/// Builds a client from a kubeconfig held in memory, using its current context.
pub async fn connect_in_memory(kubeconfig: Kubeconfig) -> Result<kube::Client, ClientError> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(ClientError::InMemoryKubeconfig)?;
    client_from_config(config)
}

fn client_from_config(mut config: kube::Config) -> Result<kube::Client, ClientError> {
    config.default_retry = false;
    kube::Client::try_from(config).map_err(ClientError::Build)
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, ClientError> {
    Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
        path: path.to_path_buf(),
        source,
    })
}
