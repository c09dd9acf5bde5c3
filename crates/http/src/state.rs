use platform::Config;
use services::{
    catalog::CatalogService, identity::IdentityService, inventory::InventoryService,
    pagination::CursorCodec,
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};
use store::Db;

/// Everything a handler may need, built once by the binary and passed in. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub identity: IdentityService,
    pub catalog: CatalogService,
    pub inventory: InventoryService,
    pub cursors: CursorCodec,
    pub started: Instant,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        identity: IdentityService,
        cursors: CursorCodec,
    ) -> Self {
        let catalog = CatalogService::new(
            db.clone(),
            cursors.clone(),
            config.low_stock_threshold,
            config.expose_stock_counts,
        );
        let inventory = InventoryService::new(db.clone(), cursors.clone());
        Self {
            config,
            db,
            identity,
            catalog,
            inventory,
            cursors,
            started: Instant::now(),
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on `/ready` answers 503 so load balancers drain this instance.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
