//! `burner local up --prometheus`, through the library: a real Prometheus scrapes all four
//! control-plane programs with the credentials burner generates, its HTTP API refuses
//! requests without them, every query of the shipped profiles is valid PromQL to it, and the
//! metrics-endpoint file and profiles sit beside the kubeconfig.
//!
//! Needs Debian's `prometheus` package (`.ci/run` installs it).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use burner::local::prometheus::{CONTROL_PLANE_PROFILE, SLO_ALERTS_PROFILE};
use burner::local::{LocalCluster, PrometheusAccess};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The first scrapes come within one 5 s interval of the start; this leaves room for a slow
/// machine without letting a broken target hang the test.
const FIRST_SCRAPES: Duration = Duration::from_secs(60);

#[test]
fn prometheus_scrapes_the_control_plane_behind_basic_auth() {
    let mut options = common::options_for("prometheus");
    options.prometheus = true;
    let outcome = common::run_on_harness(async move {
        let cluster = LocalCluster::start(&options)
            .await
            .context("cannot start the cluster with Prometheus")?;
        let checked = check(&cluster).await;
        let stopped = cluster.stop().await;
        checked?;
        stopped.context("cannot stop the cluster")
    });
    if let Err(error) = outcome {
        panic!("{error:#}");
    }
}

async fn check(cluster: &LocalCluster) -> anyhow::Result<()> {
    let access = cluster
        .prometheus()
        .context("the cluster has no Prometheus")?;
    let port = port_of(&access.url)?;

    every_component_is_up(access, port).await?;
    requests_without_the_password_are_refused(access, port).await?;
    the_shipped_profiles_are_valid_promql(access, port).await?;
    the_record_and_the_metrics_endpoint_file_say_how_to_reach_it(cluster, access)
}

async fn every_component_is_up(access: &PrometheusAccess, port: u16) -> anyhow::Result<()> {
    let expected = ["apiserver", "controller-manager", "etcd", "scheduler"];
    let deadline = tokio::time::Instant::now() + FIRST_SCRAPES;
    loop {
        let result = query(access, port, "up").await?;
        let up: BTreeMap<String, String> = result
            .as_array()
            .context("`up` is not a vector")?
            .iter()
            .map(|series| {
                (
                    series["metric"]["job"].as_str().unwrap_or("?").to_string(),
                    series["value"][1].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect();
        if expected
            .iter()
            .all(|job| up.get(*job).map(String::as_str) == Some("1"))
        {
            ensure!(up.len() == expected.len(), "unexpected jobs: {up:?}");
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "not every target was up within {FIRST_SCRAPES:?}: {up:?}; targets: {}",
                get(port, "/api/v1/targets", Some(access)).await?.1
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The apiserver's own series carry the label kube-burner's profiles select it by.
    let labelled = query(
        access,
        port,
        r#"count(apiserver_request_total{job="apiserver", apiserver="kube-apiserver"})"#,
    )
    .await?;
    ensure!(
        labelled.as_array().is_some_and(|r| !r.is_empty()),
        "no apiserver series labelled apiserver=\"kube-apiserver\": {labelled}"
    );
    Ok(())
}

async fn requests_without_the_password_are_refused(
    access: &PrometheusAccess,
    port: u16,
) -> anyhow::Result<()> {
    for path in ["/api/v1/query?query=up", "/-/ready", "/metrics"] {
        let (status, _) = get(port, path, None).await?;
        ensure!(
            status == 401,
            "GET {path} without credentials answered {status}"
        );
    }
    let wrong = PrometheusAccess {
        password: format!("{}x", access.password),
        ..access.clone()
    };
    let (status, _) = get(port, "/api/v1/query?query=up", Some(&wrong)).await?;
    ensure!(status == 401, "a wrong password was answered {status}");
    Ok(())
}

/// Each query of the metric profile (with `{{.elapsed}}` as kube-burner renders it) and
/// each expression of the alert profile is accepted by this Prometheus.
async fn the_shipped_profiles_are_valid_promql(
    access: &PrometheusAccess,
    port: u16,
) -> anyhow::Result<()> {
    let metrics: Vec<Value> = serde_saphyr::from_str(CONTROL_PLANE_PROFILE)?;
    let alerts: Vec<Value> = serde_saphyr::from_str(SLO_ALERTS_PROFILE)?;
    let queries = metrics
        .iter()
        .map(|m| &m["query"])
        .chain(alerts.iter().map(|a| &a["expr"]));
    let mut checked = 0;
    for text in queries {
        let text = text.as_str().context("a query is not a string")?;
        query(access, port, &text.replace("{{.elapsed}}", "60s"))
            .await
            .with_context(|| format!("the query {text}"))?;
        checked += 1;
    }
    ensure!(checked == metrics.len() + alerts.len());
    Ok(())
}

fn the_record_and_the_metrics_endpoint_file_say_how_to_reach_it(
    cluster: &LocalCluster,
    access: &PrometheusAccess,
) -> anyhow::Result<()> {
    let record = cluster.record();
    ensure!(
        record.components.iter().any(|c| c.name == "prometheus"),
        "{record:?}"
    );
    let prometheus = record.prometheus.as_ref().context("no prometheus record")?;
    ensure!(prometheus.url == access.url && prometheus.username == access.username);
    ensure!(prometheus.password()? == access.password);
    let mode = std::fs::metadata(&prometheus.password_file)?
        .permissions()
        .mode();
    ensure!(mode & 0o777 == 0o600, "the password file has mode {mode:o}");
    let on_disk = cluster.state().read_record()?.context("no cluster.json")?;
    ensure!(on_disk.prometheus.as_ref() == Some(prometheus));

    let endpoint_file = cluster
        .kubeconfig()
        .parent()
        .context("the kubeconfig has no folder")?
        .join("metrics-endpoint.yaml");
    ensure!(prometheus.metrics_endpoint == endpoint_file);
    let endpoints: Value = serde_saphyr::from_str(&std::fs::read_to_string(&endpoint_file)?)?;
    let endpoint = &endpoints[0];
    ensure!(endpoint["endpoint"] == access.url.as_str(), "{endpoints}");
    ensure!(endpoint["username"] == access.username.as_str());
    ensure!(endpoint["password"] == access.password.as_str());
    ensure!(endpoint["step"] == "5s" && endpoint["indexer"]["type"] == "local");
    for (key, shipped) in [
        ("metrics", CONTROL_PLANE_PROFILE),
        ("alerts", SLO_ALERTS_PROFILE),
    ] {
        let path = endpoint[key][0]
            .as_str()
            .with_context(|| format!("no {key} profile in {endpoints}"))?;
        ensure!(std::fs::read_to_string(path)? == shipped, "{path} differs");
    }
    Ok(())
}

/// Runs an instant query and returns `data.result`; an error unless Prometheus answers 200
/// with status `success`.
async fn query(access: &PrometheusAccess, port: u16, promql: &str) -> anyhow::Result<Value> {
    let path = format!("/api/v1/query?query={}", percent_encode(promql));
    let (status, body) = get(port, &path, Some(access)).await?;
    let answer: Value = serde_json::from_str(&body).with_context(|| format!("{status}: {body}"))?;
    ensure!(
        status == 200 && answer["status"] == "success",
        "{status}: {body}"
    );
    Ok(answer["data"]["result"].clone())
}

/// A plain HTTP/1.0 GET on loopback: the status code and the body.
async fn get(
    port: u16,
    path: &str,
    access: Option<&PrometheusAccess>,
) -> anyhow::Result<(u16, String)> {
    use base64::Engine;
    let authorization = access
        .map(|a| {
            let credentials = format!("{}:{}", a.username, a.password);
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            )
        })
        .unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{authorization}\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .context("Prometheus did not answer within 10 s")??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("not an HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status in {head}"))?;
    Ok((status, body.to_string()))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn port_of(url: &str) -> anyhow::Result<u16> {
    let port = url
        .strip_prefix("http://127.0.0.1:")
        .with_context(|| format!("{url} is not on 127.0.0.1"))?;
    Ok(port.parse()?)
}
