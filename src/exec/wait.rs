//! Waiting, by watch, until objects are gone.

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;

/// Watches until no object that matches `selector` and `counts` is left.
pub(super) async fn until_gone(
    api: &Api<DynamicObject>,
    selector: &str,
    counts: impl Fn(&DynamicObject) -> bool,
) {
    let mut present = std::collections::HashSet::new();
    let mut listed = false;
    let mut events =
        watcher::watcher(api.clone(), watcher::Config::default().labels(selector)).boxed();
    loop {
        match events.try_next().await {
            Ok(Some(watcher::Event::Init)) => present.clear(),
            Ok(Some(watcher::Event::InitApply(o) | watcher::Event::Apply(o))) => {
                if counts(&o) {
                    present.insert(o.metadata.uid.unwrap_or_default());
                }
            }
            Ok(Some(watcher::Event::Delete(o))) => {
                present.remove(&o.metadata.uid.unwrap_or_default());
            }
            Ok(Some(watcher::Event::InitDone)) => listed = true,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("watch failed; retrying: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        if listed && present.is_empty() {
            return;
        }
    }
}
