//! Finding the control-plane programs, and building them from Go modules when they are
//! missing.
//!
//! The programs are built by `tools/build-control-plane.sh` from the tool modules in
//! `tools/` into a per-version cache (`~/.cache/burner/k8s/<version>/bin`, ...). The
//! script and the modules' go.mod and go.sum are compiled into burner, so an installed
//! `burner` can build them on a fresh machine without the source tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::state::home_dir;

const VERSIONS_ENV: &str = include_str!("../../tools/versions.env");
const BUILD_SCRIPT: &str = include_str!("../../tools/build-control-plane.sh");
const TOOL_MODULE_FILES: [(&str, &str); 4] = [
    ("k8s/go.mod", include_str!("../../tools/k8s/go.mod")),
    ("k8s/go.sum", include_str!("../../tools/k8s/go.sum")),
    ("etcd/go.mod", include_str!("../../tools/etcd/go.mod")),
    ("etcd/go.sum", include_str!("../../tools/etcd/go.sum")),
];

/// The versions burner runs, as pinned in `tools/versions.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneVersions {
    pub kubernetes: String,
    pub etcd: String,
}

impl ControlPlaneVersions {
    pub fn pinned() -> Self {
        parse_versions(VERSIONS_ENV).expect("tools/versions.env names both versions")
    }
}

fn parse_versions(text: &str) -> Option<ControlPlaneVersions> {
    let value = |key: &str| {
        text.lines()
            .filter_map(|line| line.trim().split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_string())
    };
    Some(ControlPlaneVersions {
        kubernetes: value("K8S_VERSION")?,
        etcd: value("ETCD_VERSION")?,
    })
}

/// Paths of the four programs a local cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneBinaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
}

impl ControlPlaneBinaries {
    /// The programs in one folder (`--bin-dir`).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kube_scheduler: dir.join("kube-scheduler"),
        }
    }

    /// The programs in burner's build cache for the pinned versions.
    pub fn in_cache(cache: &Path, versions: &ControlPlaneVersions) -> Self {
        let k8s = cache.join("k8s").join(&versions.kubernetes).join("bin");
        Self {
            etcd: cache.join("etcd").join(&versions.etcd).join("bin/etcd"),
            kube_apiserver: k8s.join("kube-apiserver"),
            kube_controller_manager: k8s.join("kube-controller-manager"),
            kube_scheduler: k8s.join("kube-scheduler"),
        }
    }

    pub fn all(&self) -> [&Path; 4] {
        [
            &self.etcd,
            &self.kube_apiserver,
            &self.kube_controller_manager,
            &self.kube_scheduler,
        ]
    }

    /// The programs that are not there (or not executable).
    pub fn missing(&self) -> Vec<PathBuf> {
        self.all()
            .into_iter()
            .filter(|path| !is_executable(path))
            .map(Path::to_path_buf)
            .collect()
    }
}

/// The build cache: `$BURNER_CACHE_DIR`, else `$XDG_CACHE_HOME/burner`, else `~/.cache/burner`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BURNER_CACHE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".cache"))
        .join("burner")
}

#[derive(Debug, thiserror::Error)]
pub enum BinariesError {
    #[error(
        "control-plane programs are missing:\n  {}\nGo is not installed, so burner cannot build them. \
         Install Go 1.26 or newer and run the command again (burner then builds them, which takes \
         tens of minutes the first time), run tools/build-control-plane.sh from burner's source \
         tree, or pass --bin-dir with a folder holding etcd, kube-apiserver, \
         kube-controller-manager and kube-scheduler",
        list(.missing)
    )]
    MissingNoGo { missing: Vec<PathBuf> },
    #[error("control-plane programs are missing from --bin-dir:\n  {}", list(.missing))]
    MissingInBinDir { missing: Vec<PathBuf> },
    #[error("cannot prepare the build of the control-plane programs in {dir}")]
    PrepareBuild {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("building the control-plane programs failed ({status}); the output above says why")]
    BuildFailed { status: std::process::ExitStatus },
    #[error("the build finished but these programs are still missing:\n  {}", list(.missing))]
    StillMissing { missing: Vec<PathBuf> },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Where to look for the programs and whether burner may build them.
#[derive(Debug, Clone, Default)]
pub struct BinariesSource {
    /// A folder holding all four programs; never built into.
    pub bin_dir: Option<PathBuf>,
    /// The Go toolchain to build with; `None` means look for `go` on PATH.
    pub go: Option<PathBuf>,
}

/// Returns the programs, building the missing ones first when Go is available. The build's
/// output goes to this process's stderr, so a person sees its progress.
pub async fn ensure(source: &BinariesSource) -> Result<ControlPlaneBinaries, BinariesError> {
    if let Some(dir) = &source.bin_dir {
        let binaries = ControlPlaneBinaries::in_dir(dir);
        let missing = binaries.missing();
        return if missing.is_empty() {
            Ok(binaries)
        } else {
            Err(BinariesError::MissingInBinDir { missing })
        };
    }
    let cache = cache_dir();
    let binaries = ControlPlaneBinaries::in_cache(&cache, &ControlPlaneVersions::pinned());
    let missing = binaries.missing();
    if missing.is_empty() {
        return Ok(binaries);
    }
    let Some(go) = source.go.clone().or_else(|| find_on_path("go")) else {
        return Err(BinariesError::MissingNoGo { missing });
    };
    tracing::info!(
        missing = missing.len(),
        "building the control-plane programs from Go modules into {}",
        cache.display()
    );
    run_build(&go, &cache).await?;
    let missing = binaries.missing();
    if missing.is_empty() {
        Ok(binaries)
    } else {
        Err(BinariesError::StillMissing { missing })
    }
}

/// Writes the embedded build script and tool modules to a scratch folder and runs it.
async fn run_build(go: &Path, cache: &Path) -> Result<(), BinariesError> {
    let scratch = cache.join("build-src");
    let prepare = || -> io::Result<()> {
        fs::create_dir_all(scratch.join("k8s"))?;
        fs::create_dir_all(scratch.join("etcd"))?;
        fs::write(scratch.join("versions.env"), VERSIONS_ENV)?;
        fs::write(scratch.join("build-control-plane.sh"), BUILD_SCRIPT)?;
        for (name, text) in TOOL_MODULE_FILES {
            fs::write(scratch.join(name), text)?;
        }
        Ok(())
    };
    prepare().map_err(|source| BinariesError::PrepareBuild {
        dir: scratch.clone(),
        source,
    })?;
    // The script finds go on PATH; put the chosen toolchain first.
    let go_dir = go.parent().unwrap_or(Path::new("/"));
    let path = std::env::join_paths(
        std::iter::once(go_dir.to_path_buf()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )
    .unwrap_or_default();
    let status = tokio::process::Command::new("bash")
        .arg(scratch.join("build-control-plane.sh"))
        .env("BURNER_CACHE_DIR", cache)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .await
        .map_err(|source| BinariesError::PrepareBuild {
            dir: scratch.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BinariesError::BuildFailed { status })
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_versions_are_the_ones_the_tool_modules_require() {
        let versions = ControlPlaneVersions::pinned();
        assert!(
            TOOL_MODULE_FILES[0]
                .1
                .contains(&format!("k8s.io/kubernetes {}", versions.kubernetes))
        );
        assert!(
            TOOL_MODULE_FILES[2]
                .1
                .contains(&format!("go.etcd.io/etcd/server/v3 {}", versions.etcd))
        );
    }

    #[test]
    fn parses_versions_ignoring_comments() {
        let parsed = parse_versions("# c\nK8S_VERSION=v1.2.3\nETCD_VERSION= v3.4.5\n").unwrap();
        assert_eq!(parsed.kubernetes, "v1.2.3");
        assert_eq!(parsed.etcd, "v3.4.5");
        assert_eq!(parse_versions("K8S_VERSION=v1"), None);
    }

    #[tokio::test]
    async fn a_bin_dir_missing_programs_is_an_error_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let source = BinariesSource {
            bin_dir: Some(dir.path().to_path_buf()),
            go: None,
        };
        let err = ensure(&source).await.unwrap_err().to_string();
        assert!(
            err.contains("kube-apiserver") && err.contains("etcd"),
            "{err}"
        );
    }
}
