//! The registry view every request reads, from memory. A change made through this
//! process replaces the view at once; changes made elsewhere (another Lambda instance,
//! the `llm-local` CLI next to a running server) are picked up within `window`, by
//! reloading the whole registry (a few hundred entries at most) in the background of
//! the first request after the window.

use super::seed::seed_entries;
use super::view::RegistryView;
use crate::pricing::Catalog;
use crate::store::{RegistryStore, StoreError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub struct RegistryCache {
    store: Arc<dyn RegistryStore>,
    catalog: &'static Catalog,
    window: Duration,
    current: RwLock<(Instant, Arc<RegistryView>)>,
    /// One reload at a time: the others keep using the current view meanwhile.
    reloading: tokio::sync::Mutex<()>,
}

impl RegistryCache {
    /// A cache that shows the seed until its first read of the store, which the first
    /// request makes.
    pub fn new(store: Arc<dyn RegistryStore>, catalog: &'static Catalog, window: Duration) -> Self {
        let seed = RegistryView::build(seed_entries(catalog), catalog, true);
        let stale = Instant::now()
            .checked_sub(window + Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        RegistryCache {
            store,
            catalog,
            window,
            current: RwLock::new((stale, Arc::new(seed))),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the registry once; a store that holds no entry yet is shown as its seed
    /// (only a Lambda function without write access to the registry sees that).
    pub async fn load(
        store: Arc<dyn RegistryStore>,
        catalog: &'static Catalog,
        window: Duration,
    ) -> Result<RegistryCache, StoreError> {
        let cache = RegistryCache::new(store, catalog, window);
        cache.refresh().await?;
        Ok(cache)
    }

    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        &self.store
    }

    pub fn catalog(&self) -> &'static Catalog {
        self.catalog
    }

    fn snapshot(&self) -> (Instant, Arc<RegistryView>) {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        (guard.0, guard.1.clone())
    }

    /// The current view, reloaded first when it is older than the window. A failed
    /// reload keeps the view it had (logged): routing on a registry a few seconds old
    /// beats failing every request while the store is unreachable.
    pub async fn view(&self) -> Arc<RegistryView> {
        let (at, view) = self.snapshot();
        if at.elapsed() < self.window {
            return view;
        }
        let Ok(_one) = self.reloading.try_lock() else {
            return view;
        };
        match self.refresh().await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(error = %e, "registry reload failed; routing on the previous view");
                self.install(view.clone());
                view
            }
        }
    }

    /// Reads the registry now and installs it: after a change through this process.
    pub async fn refresh(&self) -> Result<Arc<RegistryView>, StoreError> {
        let view = Arc::new(build(self.store.as_ref(), self.catalog).await?);
        self.install(view.clone());
        Ok(view)
    }

    fn install(&self, view: Arc<RegistryView>) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = (Instant::now(), view);
    }
}

async fn build(store: &dyn RegistryStore, catalog: &Catalog) -> Result<RegistryView, StoreError> {
    let entries = store.list_llms().await?;
    if entries.is_empty() {
        // Never seeded: the admin API keeps at least one entry once there is one.
        return Ok(RegistryView::build(seed_entries(catalog), catalog, true));
    }
    Ok(RegistryView::build(entries, catalog, false))
}
