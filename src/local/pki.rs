//! Certificates and keys of a local cluster, generated in-process (no openssl).
//!
//! One CA signs everything: the serving certificates of kube-apiserver,
//! kube-controller-manager and kube-scheduler (so burner can verify them when it probes
//! health), and the client certificates the components, the admin and Prometheus use. The
//! service-account signing key is an ECDSA P-256 key, which kube-apiserver accepts for
//! ES256 tokens. Certificates keep rcgen's default validity (1975 to 4096): the cluster is
//! throwaway and must never fail because a laptop slept through an expiry date.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The first address of the service CIDR burner gives the apiserver; the in-cluster
/// `kubernetes` Service gets it, so the serving certificate names it.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// The Kubernetes user Prometheus scrapes the control plane as.
pub const PROMETHEUS_USER: &str = "burner:prometheus";
/// The bootstrap group whose ClusterRole (`system:monitoring`) may GET `/metrics`.
pub const MONITORING_GROUP: &str = "system:monitoring";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Paths of a certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertAndKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file the control plane needs, written under `<state-dir>/pki`.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    pub ca: CertAndKey,
    pub apiserver_serving: CertAndKey,
    pub controller_manager_serving: CertAndKey,
    pub scheduler_serving: CertAndKey,
    pub admin_client: CertAndKey,
    pub controller_manager_client: CertAndKey,
    pub scheduler_client: CertAndKey,
    /// For scraping `/metrics`: user [`PROMETHEUS_USER`] in the group `system:monitoring`,
    /// which Kubernetes' bootstrap RBAC allows to read the metrics and health endpoints of
    /// the apiserver and, through delegated authorization, of the controller-manager and the
    /// scheduler.
    pub prometheus_client: CertAndKey,
    /// Private key that signs service-account tokens.
    pub service_account_key: PathBuf,
    /// Its public half, which verifies them.
    pub service_account_public_key: PathBuf,
}

/// Who a client certificate says its holder is, in Kubernetes terms.
struct ClientIdentity<'a> {
    user: &'a str,
    groups: &'a [&'a str],
}

impl ClusterPki {
    /// Generates a new CA and every certificate under `dir`.
    pub fn generate(dir: &Path) -> Result<Self, PkiError> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let (ca, issuer) = generate_ca(dir)?;
        let loopback_names = ["localhost".to_string()];
        let loopback_ips = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let apiserver_names = [
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ];
        let apiserver_ips = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(KUBERNETES_SERVICE_IP),
        ];

        let service_account_key = dir.join("service-account.key");
        let service_account_public_key = dir.join("service-account.pub");
        let sa_key = new_key("the service-account key")?;
        write_private(&service_account_key, &sa_key.serialize_pem())?;
        fs::write(&service_account_public_key, sa_key.public_key_pem()).map_err(|source| {
            PkiError::Write {
                path: service_account_public_key.clone(),
                source,
            }
        })?;

        Ok(Self {
            apiserver_serving: issue_serving(
                dir,
                "kube-apiserver",
                &apiserver_names,
                &apiserver_ips,
                &issuer,
            )?,
            controller_manager_serving: issue_serving(
                dir,
                "kube-controller-manager",
                &loopback_names,
                &loopback_ips,
                &issuer,
            )?,
            scheduler_serving: issue_serving(
                dir,
                "kube-scheduler",
                &loopback_names,
                &loopback_ips,
                &issuer,
            )?,
            admin_client: issue_client(
                dir,
                "admin",
                ClientIdentity {
                    user: "burner-admin",
                    groups: &["system:masters"],
                },
                &issuer,
            )?,
            controller_manager_client: issue_client(
                dir,
                "kube-controller-manager-client",
                ClientIdentity {
                    user: "system:kube-controller-manager",
                    groups: &[],
                },
                &issuer,
            )?,
            scheduler_client: issue_client(
                dir,
                "kube-scheduler-client",
                ClientIdentity {
                    user: "system:kube-scheduler",
                    groups: &[],
                },
                &issuer,
            )?,
            prometheus_client: issue_client(
                dir,
                "prometheus-client",
                ClientIdentity {
                    user: PROMETHEUS_USER,
                    groups: &[MONITORING_GROUP],
                },
                &issuer,
            )?,
            service_account_key,
            service_account_public_key,
            ca,
        })
    }
}

fn new_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Generate { what, source })
}

fn generate_ca(dir: &Path) -> Result<(CertAndKey, Issuer<'static, KeyPair>), PkiError> {
    let what = "the cluster CA";
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "burner-local-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = new_key(what)?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::Generate { what, source })?;
    let files = write_pair(dir, "ca", &cert.pem(), &key.serialize_pem())?;
    Ok((files, Issuer::new(params, key)))
}

fn issue_serving(
    dir: &Path,
    name: &str,
    dns_names: &[String],
    ips: &[IpAddr],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<CertAndKey, PkiError> {
    let what = "a serving certificate";
    let mut params = CertificateParams::new(dns_names.to_vec())
        .map_err(|source| PkiError::Generate { what, source })?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    sign_and_write(dir, &format!("{name}-serving"), params, issuer, what)
}

fn issue_client(
    dir: &Path,
    file_stem: &str,
    identity: ClientIdentity<'_>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<CertAndKey, PkiError> {
    let what = "a client certificate";
    let mut params = CertificateParams::default();
    // Kubernetes reads the user from the common name and the groups from the organizations.
    params
        .distinguished_name
        .push(DnType::CommonName, identity.user);
    for group in identity.groups {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *group);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    sign_and_write(dir, file_stem, params, issuer, what)
}

fn sign_and_write(
    dir: &Path,
    file_stem: &str,
    params: CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    what: &'static str,
) -> Result<CertAndKey, PkiError> {
    let key = new_key(what)?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| PkiError::Generate { what, source })?;
    write_pair(dir, file_stem, &cert.pem(), &key.serialize_pem())
}

fn write_pair(
    dir: &Path,
    stem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<CertAndKey, PkiError> {
    let files = CertAndKey {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    fs::write(&files.cert, cert_pem).map_err(|source| PkiError::Write {
        path: files.cert.clone(),
        source,
    })?;
    write_private(&files.key, key_pem)?;
    Ok(files)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_owner_only(path, pem.as_bytes()).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file only its owner can read: keys, and kubeconfigs that embed keys.
pub(super) fn write_owner_only(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_pem_files_with_private_keys_readable_by_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::generate(dir.path()).unwrap();
        for pair in [
            &pki.ca,
            &pki.apiserver_serving,
            &pki.admin_client,
            &pki.prometheus_client,
        ] {
            let cert = fs::read_to_string(&pair.cert).unwrap();
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
            let mode = fs::metadata(&pair.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", pair.key.display());
        }
        let sa = fs::read_to_string(&pki.service_account_key).unwrap();
        assert!(sa.starts_with("-----BEGIN PRIVATE KEY-----"), "{sa}");
    }
}
